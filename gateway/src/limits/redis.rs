//! Cluster mode: limits shared by every node through Redis, one atomic round trip per
//! decision (`decide.lua` by `EVALSHA`, loaded again on `NOSCRIPT`).
//!
//! Why the `redis` crate: one multiplexed connection per node carries every request's
//! script call concurrently (pipelined on one socket, no pool to size), `Script` does the
//! `EVALSHA`-then-`SCRIPT LOAD` dance, and with `default-features = false` plus
//! `tokio-comp` and `script` it adds no TLS stack, no cluster client and no connection
//! manager. Reconnection is ours (below): it must also drive the fallback and the health
//! report, which a transparent reconnecting manager would hide.
//!
//! Health: a background task ([`Cluster::run`]) heartbeats every second into a sorted set
//! (`heartbeat.lua`), which tells every node how many nodes are live. Any failed call marks
//! the cluster degraded: the connection is dropped, requests stop waiting on Redis and use
//! the local fallback at once, and the task probes every 250 ms until a new connection
//! answers, then swaps it in. Nothing on the request path ever waits for a reconnect.

use super::RedisFailureKind;
use arc_swap::ArcSwapOption;
use gatehouse_policies::ratelimit::{Decision, Gcra, LimitKey, Quota, Window};
use redis::aio::MultiplexedConnection;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;

/// How long one decision may wait for Redis before the node falls back.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Heartbeat period while connected.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Probe period while degraded.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// A node missing heartbeats for this long is no longer counted as live.
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// The sorted set of live nodes.
const NODES_KEY: &str = "gh:rl:nodes";

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("not connected to Redis")]
    NotConnected,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the rate-limit script answered {0} values, expected 5")]
    BadReply(usize),
}

impl ClusterError {
    /// A coarse kind, safe to show on `/readyz` (no addresses, no server text).
    pub fn kind(&self) -> RedisFailureKind {
        match self {
            ClusterError::NotConnected => RedisFailureKind::NotConnected,
            ClusterError::Redis(e) if e.is_timeout() => RedisFailureKind::Timeout,
            ClusterError::Redis(e) if e.is_connection_refusal() => RedisFailureKind::Refused,
            ClusterError::Redis(e) if e.is_io_error() || e.is_connection_dropped() => {
                RedisFailureKind::ConnectionLost
            }
            ClusterError::Redis(_) | ClusterError::BadReply(_) => RedisFailureKind::ServerError,
        }
    }
}

/// What `/readyz` shows about Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub connected: bool,
    pub live_nodes: u32,
    pub degraded_since: Option<OffsetDateTime>,
    pub last_error: Option<RedisFailureKind>,
    pub last_error_at: Option<OffsetDateTime>,
    /// Times the node fell back from Redis.
    pub degradations: u64,
}

#[derive(Debug, Default)]
struct Health {
    degraded_since: Option<OffsetDateTime>,
    last_error: Option<RedisFailureKind>,
    last_error_at: Option<OffsetDateTime>,
    degradations: u64,
}

/// The Redis side of cluster mode.
pub struct Cluster {
    client: redis::Client,
    conn: ArcSwapOption<MultiplexedConnection>,
    decide: redis::Script,
    heartbeat: redis::Script,
    node_id: String,
    live_nodes: AtomicU32,
    /// Set from the first failure until a probe succeeds.
    degraded: AtomicBool,
    health: Mutex<Health>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("connected", &self.conn.load().is_some())
            .field("live_nodes", &self.live_nodes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The Redis key of a rate: `gh:rl:{consumer|api}:r[:operation]`. The hash tag keeps a
/// consumer's rate and quota keys in one slot should Redis ever be clustered.
pub fn rate_key(key: &LimitKey<'_>) -> String {
    let mut k = String::with_capacity(16 + key.consumer.len() + key.api.len());
    let _ = write!(k, "gh:rl:{{{}|{}}}:r", key.consumer, key.api);
    if let Some(op) = key.operation {
        k.push(':');
        k.push_str(op);
    }
    k
}

/// The Redis key of a quota counter in the period starting at `start_ms`.
pub fn quota_key(key: &LimitKey<'_>, window: Window) -> String {
    format!(
        "gh:rl:{{{}|{}}}:q:{}",
        key.consumer, key.api, window.start_ms
    )
}

impl Cluster {
    /// A cluster client for `url` (not connected yet: see [`Cluster::connect`]).
    pub fn new(url: &str, node_id: String) -> Result<Self, ClusterError> {
        Ok(Cluster {
            client: redis::Client::open(url)?,
            conn: ArcSwapOption::empty(),
            decide: redis::Script::new(include_str!("decide.lua")),
            heartbeat: redis::Script::new(include_str!("heartbeat.lua")),
            node_id,
            live_nodes: AtomicU32::new(1),
            degraded: AtomicBool::new(true),
            health: Mutex::new(Health::default()),
        })
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connects, loads the scripts and heartbeats once; on success requests use Redis.
    pub async fn connect(&self) -> Result<(), ClusterError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.decide.prepare_invoke().load_async(&mut conn).await?;
        self.heartbeat
            .prepare_invoke()
            .load_async(&mut conn)
            .await?;
        let live = self.beat(&mut conn).await?;
        self.live_nodes.store(live.max(1), Ordering::Relaxed);
        self.conn.store(Some(Arc::new(conn)));
        if self.degraded.swap(false, Ordering::AcqRel) {
            let since = self.health().degraded_since.take();
            match since {
                Some(since) => tracing::info!(
                    down_for_s = (OffsetDateTime::now_utc() - since).whole_seconds(),
                    live_nodes = live,
                    "rate limits are back on Redis"
                ),
                None => tracing::info!(live_nodes = live, "rate limits on Redis"),
            }
        }
        Ok(())
    }

    async fn beat(&self, conn: &mut MultiplexedConnection) -> Result<u32, ClusterError> {
        let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(5_000);
        let live: u32 = self
            .heartbeat
            .key(NODES_KEY)
            .arg(&self.node_id)
            .arg(ttl)
            .invoke_async(conn)
            .await?;
        Ok(live)
    }

    /// Records a failure and drops the connection: requests fall back until a probe works.
    pub fn fail(&self, error: &ClusterError) {
        let kind = error.kind();
        self.conn.store(None);
        let now = OffsetDateTime::now_utc();
        let first = !self.degraded.swap(true, Ordering::AcqRel);
        let mut h = self.health();
        h.last_error = Some(kind);
        h.last_error_at = Some(now);
        if first {
            h.degraded_since = Some(now);
            h.degradations += 1;
            drop(h);
            tracing::warn!(
                error = %error,
                live_nodes = self.live_nodes(),
                "Redis is unreachable: rate limits fall back to local limits"
            );
        }
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Nodes seen alive in the last heartbeat (at least 1; the last value while degraded).
    pub fn live_nodes(&self) -> u32 {
        self.live_nodes.load(Ordering::Relaxed).max(1)
    }

    pub fn status(&self) -> ClusterStatus {
        let h = self.health();
        ClusterStatus {
            connected: self.conn.load().is_some(),
            live_nodes: self.live_nodes(),
            degraded_since: h.degraded_since,
            last_error: h.last_error,
            last_error_at: h.last_error_at,
            degradations: h.degradations,
        }
    }

    /// One decision on Redis. `now_us`: `None` uses the Redis server's clock (production);
    /// tests pass a fake one. `unix_ms` (node clock) chooses the quota period.
    pub async fn decide(
        &self,
        key: &LimitKey<'_>,
        rate: &Gcra,
        quota: Option<&Quota>,
        now_us: Option<u64>,
        unix_ms: i64,
    ) -> Result<Decision, ClusterError> {
        let Some(conn) = self.conn.load_full() else {
            return Err(ClusterError::NotConnected);
        };
        let mut conn = MultiplexedConnection::clone(&conn);
        let rk = rate_key(key);
        let window = quota.map(|q| Window::containing(q.period, unix_ms));
        let mut call = self.decide.prepare_invoke();
        match (quota, window) {
            (Some(q), Some(w)) => {
                // Kept a day past its period so nodes with skewed clocks still agree.
                let ttl_ms = (w.end_ms - unix_ms).max(0) + 86_400_000;
                call.key(&rk)
                    .key(quota_key(key, w))
                    .arg(now_us.map_or_else(String::new, |n| n.to_string()))
                    .arg(rate.interval_us())
                    .arg(rate.burst())
                    .arg(q.limit)
                    .arg(ttl_ms);
            }
            _ => {
                call.key(&rk)
                    .key(&rk)
                    .arg(now_us.map_or_else(String::new, |n| n.to_string()))
                    .arg(rate.interval_us())
                    .arg(rate.burst())
                    .arg(0)
                    .arg(0);
            }
        }
        let reply: Vec<i64> = call.invoke_async(&mut conn).await?;
        let [admitted, tat0, now, used_before, _why] = reply[..] else {
            return Err(ClusterError::BadReply(reply.len()));
        };
        let (tat0, now) = (
            u64::try_from(tat0).unwrap_or(0),
            u64::try_from(now).unwrap_or(0),
        );
        let used_before = u64::try_from(used_before).unwrap_or(0);
        let decision =
            Decision::from_state(rate, quota.zip(window), tat0, now, used_before, unix_ms);
        if decision.allowed() != (admitted == 1) {
            // The script and the Rust math disagree: a bug. Trust the script (it stored).
            tracing::error!(
                admitted,
                ?decision,
                "rate-limit script and local math disagree"
            );
        }
        Ok(decision)
    }

    /// Keeps the connection healthy until `stop` turns true: heartbeats while connected,
    /// probes while degraded. Leaves the live-node set on the way out.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let wait = if self.is_degraded() {
                PROBE_EVERY
            } else {
                HEARTBEAT_EVERY
            };
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
            match self.conn.load_full() {
                Some(conn) => {
                    let mut conn = MultiplexedConnection::clone(&conn);
                    match self.beat(&mut conn).await {
                        Ok(live) => self.live_nodes.store(live.max(1), Ordering::Relaxed),
                        Err(e) => self.fail(&e),
                    }
                }
                None => {
                    if let Err(e) = self.connect().await {
                        let mut h = self.health();
                        h.last_error = Some(e.kind());
                        h.last_error_at = Some(OffsetDateTime::now_utc());
                    }
                }
            }
        }
        if let Some(conn) = self.conn.load_full() {
            let mut conn = MultiplexedConnection::clone(&conn);
            let _: Result<i64, _> = redis::cmd("ZREM")
                .arg(NODES_KEY)
                .arg(&self.node_id)
                .query_async(&mut conn)
                .await;
        }
    }
}
