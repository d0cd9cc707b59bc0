//! The snapshot holder and its reloader: the one place the gateway learns about registry
//! changes.
//!
//! **Invariant:** the hot path only ever calls [`SnapshotHolder::load`], which is one atomic
//! load (`arc-swap`); it never waits for the store. A request keeps the `Arc<Live>` it loaded
//! for its whole life, so a swap never pulls a snapshot from under a request in flight.
//!
//! [`run_reloader`] rebuilds on every [`Store::subscribe`] change and also polls
//! [`Store::head_seq`] every 500 ms (a dropped notification, a PostgreSQL `LISTEN` connection
//! that died), so a change is live within a second. A build that fails keeps the previous
//! snapshot serving and is recorded three ways: an `error` log line, the
//! `gatehouse_snapshot_build_failures_total` counter, and [`SnapshotHolder::status`] (which
//! `GET /readyz` shows). The metrics also learn every head the reloader sees and, per
//! installed snapshot, how long after its newest change's commit it went live.

use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use gatehouse_registry::snapshot::{Snapshot, TargetKind};
use gatehouse_registry::store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often the reloader asks the store for its head sequence.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// After a failed build, the same head is retried no sooner than this.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);
/// Consecutive failures after which a target is skipped.
pub const FAILURES_TO_EJECT: u32 = 2;
/// How long an ejected target is skipped.
pub const EJECT_FOR: Duration = Duration::from_secs(5);
/// Time allowed to resolve one upstream host name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the gateway serves from: the snapshot plus gateway-side per-target state aligned with
/// [`Snapshot::target_urls`].
#[derive(Debug)]
pub struct Live {
    pub snapshot: Arc<Snapshot>,
    /// Passive health per target slot; the same `Arc` survives snapshot swaps for a URL.
    pub health: Box<[Arc<TargetHealth>]>,
    /// The resolved address per target slot (`None`: mock, or the name did not resolve).
    pub addrs: Box<[Option<SocketAddr>]>,
}

/// Passive health of one upstream target: failures seen by real requests.
#[derive(Debug, Default)]
pub struct TargetHealth {
    consecutive_failures: AtomicU32,
    /// Milliseconds on the process clock until which the target is skipped (0: never).
    down_until_ms: AtomicU64,
}

/// Milliseconds since the first call: a cheap monotonic clock for health windows.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl TargetHealth {
    /// Whether the target is currently being skipped.
    pub fn is_ejected(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        until != 0 && clock_ms() < until
    }

    /// Records a failed attempt (refused, timed out, reset). Returns true when this failure
    /// ejected the target.
    pub fn record_failure(&self) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= FAILURES_TO_EJECT {
            let until = clock_ms() + u64::try_from(EJECT_FOR.as_millis()).unwrap_or(5_000);
            let was = self.down_until_ms.swap(until, Ordering::Relaxed);
            return was == 0 || was <= clock_ms();
        }
        false
    }

    /// Records a response from the target: it is healthy again.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.down_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// What `GET /readyz` and the metrics show about snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// Generation of the snapshot being served (0 before the first build).
    pub generation: i64,
    pub built_at: OffsetDateTime,
    /// Whether a snapshot was ever built from the store (the gateway is ready).
    pub loaded: bool,
    /// The last failure, kept until a later build succeeds.
    pub last_error: Option<String>,
    pub last_error_at: Option<OffsetDateTime>,
    pub build_failures: u64,
}

#[derive(Debug)]
struct StatusInner {
    loaded: bool,
    last_error: Option<String>,
    last_error_at: Option<OffsetDateTime>,
}

/// Holds the live snapshot and what is known about its builds.
#[derive(Debug)]
pub struct SnapshotHolder {
    live: ArcSwap<Live>,
    status: Mutex<StatusInner>,
    build_failures: AtomicU64,
    /// Health by target URL, so that it survives swaps. Touched only when installing.
    health_book: Mutex<HashMap<String, Arc<TargetHealth>>>,
    metrics: Arc<Metrics>,
}

impl SnapshotHolder {
    /// A holder serving an empty snapshot until the first build.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let empty = Arc::new(Snapshot::empty(OffsetDateTime::now_utc()));
        SnapshotHolder {
            live: ArcSwap::from_pointee(Live {
                snapshot: empty,
                health: Box::new([]),
                addrs: Box::new([]),
            }),
            status: Mutex::new(StatusInner {
                loaded: false,
                last_error: None,
                last_error_at: None,
            }),
            build_failures: AtomicU64::new(0),
            health_book: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The live view. Hot path: one atomic load and a reference-count increment.
    pub fn load(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load().snapshot.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Installs a freshly built snapshot with resolved target addresses (`addrs` aligned with
    /// `snapshot.target_urls`; missing entries count as unresolved).
    pub fn install(&self, snapshot: Arc<Snapshot>, mut addrs: Vec<Option<SocketAddr>>) {
        addrs.resize(snapshot.target_urls.len(), None);
        let health: Box<[Arc<TargetHealth>]> = {
            let mut book = self
                .health_book
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget targets that are gone, keep the others' state.
            book.retain(|url, _| snapshot.target_urls.contains(url));
            snapshot
                .target_urls
                .iter()
                .map(|url| book.entry(url.clone()).or_default().clone())
                .collect()
        };
        self.metrics
            .record_snapshot(snapshot.generation, snapshot.built_at);
        self.metrics.record_unchecked_schemas(
            snapshot
                .apis()
                .flat_map(|a| a.majors.values())
                .map(|m| m.validators.errors.len())
                .sum(),
        );
        self.live.store(Arc::new(Live {
            snapshot,
            health,
            addrs: addrs.into_boxed_slice(),
        }));
        let mut st = self.lock_status();
        st.loaded = true;
        st.last_error = None;
        st.last_error_at = None;
    }

    /// Records a failed build: the previous snapshot keeps serving.
    pub fn record_failure(&self, error: &dyn std::fmt::Display) {
        let n = self.build_failures.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.record_snapshot_failure();
        let text = error.to_string();
        tracing::error!(
            error = %text,
            failures = n,
            "snapshot build failed; the previous snapshot keeps serving"
        );
        let mut st = self.lock_status();
        st.last_error = Some(text);
        st.last_error_at = Some(OffsetDateTime::now_utc());
    }

    /// The state `GET /readyz` shows.
    pub fn status(&self) -> SnapshotStatus {
        let live = self.live.load();
        let st = self.lock_status();
        SnapshotStatus {
            generation: live.snapshot.generation,
            built_at: live.snapshot.built_at,
            loaded: st.loaded,
            last_error: st.last_error.clone(),
            last_error_at: st.last_error_at,
            build_failures: self.build_failures.load(Ordering::Relaxed),
        }
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why one rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the registry failed: {0}")]
    Store(#[from] gatehouse_registry::store::StoreError),
    #[error(transparent)]
    Compile(#[from] gatehouse_registry::snapshot::SnapshotError),
    #[error("the snapshot build task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Reads the store, compiles and installs a snapshot. Returns the generation installed.
pub async fn rebuild(store: &dyn Store, holder: &SnapshotHolder) -> Result<i64, ReloadError> {
    let contents = store.load_contents().await?;
    let previous = holder.snapshot();
    let committed_at = contents.generation_at;
    // Compiling parses every spec (and compiles the validators of changed versions): keep it
    // off the proxy's async threads.
    let snapshot = tokio::task::spawn_blocking(move || {
        let snapshot =
            Snapshot::compile_reusing(&contents, OffsetDateTime::now_utc(), Some(&previous));
        if let Ok(s) = &snapshot {
            log_unchecked_schemas(s, &previous);
        }
        snapshot
    })
    .await??;
    let addrs = resolve_targets(&snapshot).await;
    let generation = snapshot.generation;
    holder.install(Arc::new(snapshot), addrs);
    holder
        .metrics()
        .record_sync(committed_at, OffsetDateTime::now_utc());
    tracing::info!(generation, "snapshot installed");
    Ok(generation)
}

/// Logs the schemas a snapshot leaves unchecked, once per compiled version (not again when
/// the next snapshot reuses its validators).
fn log_unchecked_schemas(snapshot: &Snapshot, previous: &Snapshot) {
    for api in snapshot.apis() {
        for (major, entry) in &api.majors {
            let reused = previous
                .api(&api.slug)
                .and_then(|a| a.majors.get(major))
                .is_some_and(|p| Arc::ptr_eq(&p.validators, &entry.validators));
            if reused {
                continue;
            }
            for e in &entry.validators.errors {
                tracing::warn!(
                    api = %api.slug,
                    version = %entry.version,
                    pointer = e.pointer(),
                    error = %e,
                    "schema left unchecked: it does not compile"
                );
            }
        }
    }
}

/// Resolves every HTTP target once per build. IP literals need no lookup; a name that does
/// not resolve leaves its slot empty, and requests to it fail over or answer 503.
pub async fn resolve_targets(snapshot: &Snapshot) -> Vec<Option<SocketAddr>> {
    let mut addrs = vec![None; snapshot.target_urls.len()];
    for api in snapshot.apis() {
        for major in api.majors.values() {
            let Some(up) = &major.upstream else { continue };
            for t in &up.targets {
                let TargetKind::Http(h) = &t.kind else {
                    continue;
                };
                if addrs[t.slot].is_some() {
                    continue;
                }
                addrs[t.slot] = match h.addr {
                    Some(a) => Some(a),
                    None => {
                        let lookup = tokio::net::lookup_host((h.host.as_str(), h.port));
                        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                            Ok(Ok(mut it)) => it.next(),
                            Ok(Err(e)) => {
                                tracing::warn!(url = %t.url, error = %e, "upstream host does not resolve");
                                None
                            }
                            Err(_) => {
                                tracing::warn!(url = %t.url, "upstream host resolution timed out");
                                None
                            }
                        }
                    }
                };
            }
        }
    }
    addrs
}

/// Keeps the holder's snapshot in step with the store until `shutdown` turns true (or its
/// sender is dropped). Builds once at start, then on every change notification and whenever
/// the polled head sequence differs from the last one built.
pub async fn run_reloader(
    store: Arc<dyn Store>,
    holder: Arc<SnapshotHolder>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = store.subscribe();
    let mut watching = true;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = ReloadState::default();
    state.attempt(store.as_ref(), &holder, None).await;
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    tracing::debug!("snapshot reloader stopping");
                    return;
                }
            }
            changed = changes.changed(), if watching => {
                match changed {
                    Ok(()) => {
                        let seq = *changes.borrow_and_update();
                        holder.metrics().record_head(seq);
                        state.attempt(store.as_ref(), &holder, Some(seq)).await;
                    }
                    // The store dropped its notifier: polling alone carries on.
                    Err(_) => watching = false,
                }
            }
            _ = ticker.tick() => {
                match store.head_seq().await {
                    Ok(seq) => {
                        holder.metrics().record_head(seq);
                        state.attempt(store.as_ref(), &holder, Some(seq)).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "polling the registry head failed"),
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct ReloadState {
    /// The generation of the snapshot installed last.
    built: Option<i64>,
    /// A head whose build failed, and when it may be retried.
    failed: Option<(i64, Instant)>,
}

impl ReloadState {
    /// Builds unless `seq` is already served, or failed recently. `None` forces a build.
    async fn attempt(&mut self, store: &dyn Store, holder: &SnapshotHolder, seq: Option<i64>) {
        if let Some(seq) = seq {
            if self.built.is_some_and(|b| b >= seq) {
                return;
            }
            if let Some((failed_seq, retry_at)) = self.failed
                && failed_seq == seq
                && Instant::now() < retry_at
            {
                return;
            }
        }
        match rebuild(store, holder).await {
            Ok(generation) => {
                self.built = Some(generation);
                self.failed = None;
            }
            Err(e) => {
                holder.record_failure(&e);
                self.failed = Some((seq.unwrap_or(-1), Instant::now() + RETRY_FAILED_AFTER));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_ejected_after_consecutive_failures_and_restored_by_a_success() {
        let h = TargetHealth::default();
        assert!(!h.is_ejected());
        assert!(!h.record_failure());
        assert!(!h.is_ejected());
        assert!(h.record_failure());
        assert!(h.is_ejected());
        h.record_success();
        assert!(!h.is_ejected());
    }

    #[test]
    fn health_survives_a_swap_for_the_same_url() {
        let holder = SnapshotHolder::new(Arc::new(Metrics::new()));
        let snap = |urls: &[&str]| {
            let mut s = Snapshot::empty(OffsetDateTime::now_utc());
            s.target_urls = urls.iter().map(|u| (*u).to_owned()).collect();
            Arc::new(s)
        };
        holder.install(snap(&["http://a", "http://b"]), vec![]);
        let before = holder.load().health[1].clone();
        holder.install(snap(&["http://b"]), vec![]);
        let after = holder.load();
        assert!(Arc::ptr_eq(&before, &after.health[0]));
        assert_eq!(after.addrs.len(), 1);
        assert!(holder.status().loaded);
    }

    #[test]
    fn a_failure_is_recorded_and_cleared_by_the_next_install() {
        let holder = SnapshotHolder::new(Arc::new(Metrics::new()));
        holder.record_failure(&"boom");
        let st = holder.status();
        assert_eq!(
            (st.build_failures, st.last_error.as_deref()),
            (1, Some("boom"))
        );
        assert!(!st.loaded);
        holder.install(Arc::new(Snapshot::empty(OffsetDateTime::now_utc())), vec![]);
        let st = holder.status();
        assert_eq!(
            (st.build_failures, st.last_error, st.loaded),
            (1, None, true)
        );
    }
}
