//! Rate limits on the hot path: which limiter decides a request (local, Redis, or the local
//! fallback while Redis is unreachable), the `RateLimit-Policy`/`RateLimit` values, metrics,
//! and what `/readyz` shows. The algorithms are `gatehouse_policies::ratelimit`; this module
//! only adds clocks, Redis and background upkeep.
//!
//! - Local mode (no `--redis-url`): [`LocalLimiter`] with a monotonic clock; quota counters
//!   are checkpointed to the store every [`CHECKPOINT_EVERY`] (never per request) and loaded
//!   at start, so quotas survive a restart.
//! - Cluster mode: [`redis::Cluster`], one script call per decision. While Redis is
//!   unreachable, a fail-open plan is enforced locally at its rate ÷ live nodes (the last
//!   count the heartbeat saw) and a fail-closed plan answers 503; the node returns to Redis
//!   by itself.
//!
//! **Invariant:** nothing here touches the store on a request; a request never waits for a
//! Redis reconnect (a degraded node skips Redis until the background probe succeeds).

pub mod redis;

use self::redis::Cluster;
use crate::metrics::Metrics;
use gatehouse_policies::ratelimit::local::{LocalLimiter, QuotaUsage};
use gatehouse_policies::ratelimit::{
    Decision, Exceeded, LimitKey, LimitRequest, Limiter, Now, OnFailure, PlanLimits, Window,
};
use gatehouse_registry::model;
use gatehouse_registry::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How often quota counters are written to the store in local mode.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// How often idle keys are swept from the local limiter.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Why Redis failed, coarsely (what `/readyz` and logs may show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailureKind {
    NotConnected,
    Timeout,
    Refused,
    ConnectionLost,
    ServerError,
}

impl RedisFailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFailureKind::NotConnected => "not_connected",
            RedisFailureKind::Timeout => "timeout",
            RedisFailureKind::Refused => "connection_refused",
            RedisFailureKind::ConnectionLost => "connection_lost",
            RedisFailureKind::ServerError => "server_error",
        }
    }
}

/// Which limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Redis,
    /// The local limiter standing in for Redis (rate ÷ live nodes).
    Fallback,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Local, Backend::Redis, Backend::Fallback];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis => "redis",
            Backend::Fallback => "fallback",
        }
    }
}

/// The answer for one limited request.
#[derive(Debug, Clone)]
pub enum Verdict {
    Decided {
        backend: Backend,
        decision: Decision,
        /// The `RateLimit-Policy` value.
        policy: String,
        /// The `RateLimit` value.
        limit: String,
        /// The name of the policy that refused (`None` when admitted).
        refused_by: Option<String>,
    },
    /// Redis is unreachable and the plan is fail-closed.
    Unavailable,
}

/// The node's rate limiting.
#[derive(Debug)]
pub struct RateLimits {
    local: LocalLimiter,
    cluster: Option<Arc<Cluster>>,
    origin: Instant,
    metrics: Arc<Metrics>,
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

impl RateLimits {
    /// Local mode.
    pub fn local(metrics: Arc<Metrics>) -> Self {
        RateLimits {
            local: LocalLimiter::default(),
            cluster: None,
            origin: Instant::now(),
            metrics,
        }
    }

    /// Cluster mode on `cluster` (connect it with [`RateLimits::start`]).
    pub fn clustered(metrics: Arc<Metrics>, cluster: Arc<Cluster>) -> Self {
        RateLimits {
            cluster: Some(cluster),
            ..RateLimits::local(metrics)
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The local limiter (local mode, and the fallback in cluster mode).
    pub fn local_limiter(&self) -> &LocalLimiter {
        &self.local
    }

    fn now(&self, unix_ms: i64) -> Now {
        Now {
            rate_us: u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX),
            unix_ms,
        }
    }

    /// Decides one request of `consumer` on `api` (operation `operation_id`) under `plan`.
    pub async fn check(
        &self,
        plan: &PlanLimits,
        consumer: &str,
        api: &str,
        operation_id: Option<&str>,
    ) -> Verdict {
        let (rate, own_bucket) = plan.rate_for(operation_id);
        let key = LimitKey {
            consumer,
            api,
            operation: operation_id.filter(|_| own_bucket),
        };
        let unix_ms = unix_ms_now();
        let (backend, decision) = match &self.cluster {
            None => {
                let request = LimitRequest {
                    key,
                    rate: &rate.gcra,
                    quota: plan.quota.as_ref(),
                };
                (
                    Backend::Local,
                    self.local.check(&request, self.now(unix_ms)),
                )
            }
            Some(cluster) => {
                let remote = if cluster.is_degraded() {
                    None
                } else {
                    match cluster
                        .decide(&key, &rate.gcra, plan.quota.as_ref(), None, unix_ms)
                        .await
                    {
                        Ok(d) => Some(d),
                        Err(e) => {
                            self.metrics.limits.redis_error();
                            cluster.fail(&e);
                            None
                        }
                    }
                };
                match (remote, plan.on_failure) {
                    (Some(d), _) => (Backend::Redis, d),
                    (None, OnFailure::Closed) => {
                        self.metrics.limits.unavailable();
                        return Verdict::Unavailable;
                    }
                    (None, OnFailure::Open) => {
                        let nodes = cluster.live_nodes();
                        let gcra = rate.gcra.divided(nodes);
                        let quota = plan.quota.map(|q| q.divided(nodes));
                        let request = LimitRequest {
                            key,
                            rate: &gcra,
                            quota: quota.as_ref(),
                        };
                        (
                            Backend::Fallback,
                            self.local.check(&request, self.now(unix_ms)),
                        )
                    }
                }
            }
        };
        let exceeded = decision.exceeded();
        self.metrics.limits.decided(backend, exceeded);
        Verdict::Decided {
            backend,
            policy: plan.policy_field(rate, unix_ms),
            limit: plan.limit_field(rate, &decision),
            refused_by: exceeded.map(|e| match e {
                Exceeded::Rate => rate.name.clone(),
                Exceeded::Quota => plan.quota_name.clone(),
            }),
            decision,
        }
    }

    /// Before serving: local mode restores the checkpointed quota counters; cluster mode
    /// tries Redis once (a failure starts the node degraded, and the probe keeps trying).
    pub async fn start(&self, store: &dyn Store) {
        if self.cluster.is_some() {
            self.connect_cluster().await;
        } else {
            self.restore_quotas(store).await;
        }
    }

    /// Cluster mode: one connection attempt (the background probe retries).
    pub async fn connect_cluster(&self) {
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster.connect().await {
                cluster.fail(&e);
            }
            self.metrics
                .limits
                .set_cluster(cluster.is_degraded(), cluster.live_nodes());
        }
    }

    /// Local mode: loads the quota counters of the running periods from the store.
    pub async fn restore_quotas(&self, store: &dyn Store) {
        match store.load_quota_usage(OffsetDateTime::now_utc()).await {
            Ok(rows) => {
                let now = self.now(unix_ms_now());
                for r in &rows {
                    let usage = QuotaUsage {
                        consumer: r.consumer.clone(),
                        api: r.api.clone(),
                        window: Window {
                            start_ms: r.period_start_ms,
                            end_ms: r.period_end_ms,
                        },
                        used: r.used,
                    };
                    self.local.restore_quota(&usage, now);
                }
                tracing::info!(counters = rows.len(), "quota counters restored");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load quota counters; quotas restart at zero");
            }
        }
    }

    /// Background upkeep until `stop` turns true: sweeping idle keys, checkpointing quotas
    /// (local mode; a last checkpoint on the way out), keeping Redis healthy (cluster mode).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let cluster_task = self
            .cluster
            .clone()
            .map(|c| tokio::spawn(c.run(stop.clone())));
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
        let mut gauges = tokio::time::interval(Duration::from_millis(500));
        for t in [&mut sweep, &mut checkpoint, &mut gauges] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                _ = sweep.tick() => {
                    self.local.sweep(self.now(unix_ms_now()));
                    self.metrics.limits.set_local_keys(self.local.rate_keys());
                }
                _ = checkpoint.tick(), if self.cluster.is_none() => {
                    self.checkpoint(store.as_ref()).await;
                }
                _ = gauges.tick(), if self.cluster.is_some() => {
                    if let Some(c) = &self.cluster {
                        self.metrics.limits.set_cluster(c.is_degraded(), c.live_nodes());
                    }
                }
            }
        }
        if self.cluster.is_none() {
            self.checkpoint(store.as_ref()).await;
        }
        if let Some(t) = cluster_task {
            let _ = t.await;
        }
    }

    /// Writes the quota counters that changed since the last checkpoint.
    pub async fn checkpoint(&self, store: &dyn Store) {
        let dirty = self.local.dirty_quotas();
        if dirty.is_empty() {
            return;
        }
        let rows: Vec<model::QuotaUsage> = dirty
            .into_iter()
            .map(|u| model::QuotaUsage {
                consumer: u.consumer,
                api: u.api,
                period_start_ms: u.window.start_ms,
                period_end_ms: u.window.end_ms,
                used: u.used,
            })
            .collect();
        if let Err(e) = store
            .save_quota_usage(&rows, OffsetDateTime::now_utc())
            .await
        {
            // Kept in memory; the next change marks them dirty again.
            tracing::warn!(error = %e, counters = rows.len(), "quota checkpoint failed");
        }
    }

    /// What `/readyz` shows. Degradation does not make the node unready: fail-open plans
    /// keep serving, and pulling every node at once would turn a Redis outage into a
    /// gateway outage.
    pub fn readiness(&self) -> Value {
        let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        match &self.cluster {
            None => json!({"mode": "local", "keys": self.local.rate_keys()}),
            Some(c) => {
                let st = c.status();
                json!({
                    "mode": "redis",
                    "degraded": !st.connected,
                    "live_nodes": st.live_nodes,
                    "degraded_since": st.degraded_since.map(fmt),
                    "degradations": st.degradations,
                    "last_error": st.last_error.map(RedisFailureKind::as_str),
                    "last_error_at": st.last_error_at.map(fmt),
                    "fallback": if st.connected {
                        Value::Null
                    } else {
                        json!(format!("fail-open plans: local limits of rate / {} nodes; fail-closed plans: 503", st.live_nodes))
                    },
                })
            }
        }
    }
}
