//! The access-log pipeline: one record per gateway request, from the proxy's `logging` hook
//! to the store, losing nothing and never slowing the proxy.
//!
//! ```text
//! proxy `logging` ──try_send──▶ bounded queue ──▶ writer task ──batch──▶ store (SQLite | PostgreSQL)
//!        │ (queue full)                             │ store slow/down, or spool not empty
//!        └───────────────▶ spool (data dir) ◀───────┘      ──replay, oldest first──▶ store
//! ```
//!
//! **Invariant:** [`AccessLog::emit`] never waits for the store or the writer: it is a
//! `try_send` on a bounded channel. Only when the queue is full does it append the one record
//! to the spool itself (a short, unsynced write to local disk under a mutex).
//!
//! **Invariant:** a record is lost only when the spool is at its size limit (then it is
//! counted as dropped, `/readyz` says not ready and the `gatehouse_access_spool_full` gauge
//! is 1), or when the disk refuses a write. Every record carries a unique id, and the store
//! keeps a record once by `(at, id)`, so a batch retried after a timeout or a segment
//! replayed after a crash is never duplicated.
//!
//! Counters (`/metrics`, `/readyz`): queued (accepted into the queue), written (into the
//! store from the queue), spooled (onto disk), replayed (from disk into the store), dropped.
//! When everything has settled: queued + overflow = written + spooled + dropped, and every
//! spooled record is eventually replayed.

mod spool;
mod writer;

pub use spool::{Spool, SpoolError};
pub use writer::Writer;

use gatehouse_registry::access::AccessRecord;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// How the pipeline runs (validated form; see `config.rs` for the settings).
#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    /// Records waiting in memory at most.
    pub queue_capacity: usize,
    /// Records per store transaction at most.
    pub batch_size: usize,
    /// How long the first record of a batch waits for others.
    pub flush_interval: Duration,
    /// A store call slower than this counts as a failure: the batch goes to the spool.
    pub store_timeout: Duration,
    /// Where the spool lives (`<data dir>/access-spool`).
    pub spool_dir: PathBuf,
    /// The spool's size limit.
    pub spool_max_bytes: u64,
    /// Size at which a spool segment is sealed.
    pub spool_segment_bytes: u64,
    /// Records kept for this long (`None`: forever).
    pub retention: Option<Duration>,
    /// PostgreSQL partitions created this many days ahead.
    pub partition_days_ahead: u32,
}

impl AccessLogConfig {
    /// The defaults, spooling under `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        AccessLogConfig {
            queue_capacity: 65_536,
            batch_size: 1_000,
            flush_interval: Duration::from_millis(200),
            store_timeout: Duration::from_secs(5),
            spool_dir: data_dir.join("access-spool"),
            spool_max_bytes: 1024 * 1024 * 1024,
            spool_segment_bytes: 16 * 1024 * 1024,
            retention: Some(Duration::from_secs(90 * 86_400)),
            partition_days_ahead: 7,
        }
    }
}

/// The pipeline's counters and state, shared by the proxy, the writer and the node.
#[derive(Debug, Default)]
pub struct AccessStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped: AtomicU64,
    /// Spool lines skipped on replay (bad checksum) and torn tails seen.
    pub spool_corrupt: AtomicU64,
    /// Store calls that failed or timed out.
    pub store_errors: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub queue_depth: AtomicU64,
    /// The last store call succeeded (starts true: nothing failed yet).
    store_down: AtomicBool,
    spool_full: AtomicBool,
    enabled: AtomicBool,
    last_error: Mutex<Option<(String, OffsetDateTime)>>,
}

/// A point-in-time copy of [`AccessStats`], for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessStatus {
    pub enabled: bool,
    pub store_up: bool,
    pub spool_full: bool,
    pub spool_bytes: u64,
    pub queue_depth: u64,
    pub queued: u64,
    pub written: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub dropped: u64,
    pub spool_corrupt: u64,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}

impl AccessStats {
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn is_spool_full(&self) -> bool {
        self.spool_full.load(Ordering::Relaxed)
    }

    pub(crate) fn set_spool(&self, bytes: u64, full: bool) {
        self.spool_bytes.store(bytes, Ordering::Relaxed);
        let was = self.spool_full.swap(full, Ordering::Relaxed);
        if full && !was {
            tracing::error!(
                spool_bytes = bytes,
                "the access-log spool is full: access records are being DROPPED until the store catches up"
            );
        } else if was && !full {
            tracing::warn!(
                spool_bytes = bytes,
                "the access-log spool has room again; no more records are dropped"
            );
        }
    }

    pub(crate) fn store_ok(&self) {
        if self.store_down.swap(false, Ordering::Relaxed) {
            tracing::info!("the access-log store answers again");
        }
    }

    pub(crate) fn store_failed(&self, error: &str) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        if !self.store_down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "the access-log store failed; records go to the spool");
        }
        self.note_error(error);
    }

    pub(crate) fn note_error(&self, error: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((error.to_owned(), OffsetDateTime::now_utc()));
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn status(&self) -> AccessStatus {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AccessStatus {
            enabled: self.is_enabled(),
            store_up: !self.store_down.load(Ordering::Relaxed),
            spool_full: self.is_spool_full(),
            spool_bytes: load(&self.spool_bytes),
            queue_depth: load(&self.queue_depth),
            queued: load(&self.queued),
            written: load(&self.written),
            spooled: load(&self.spooled),
            replayed: load(&self.replayed),
            dropped: load(&self.dropped),
            spool_corrupt: load(&self.spool_corrupt),
            last_error: last.as_ref().map(|(e, _)| e.clone()),
            last_error_at: last.map(|(_, at)| at),
        }
    }

    /// The pipeline's series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let s = self.status();
        for (name, help, value) in [
            (
                "gatehouse_access_records_queued_total",
                "Access records accepted into the in-memory queue.",
                s.queued,
            ),
            (
                "gatehouse_access_records_written_total",
                "Access records written to the store from the queue.",
                s.written,
            ),
            (
                "gatehouse_access_records_spooled_total",
                "Access records written to the spool on local disk (store slow or down, or queue full).",
                s.spooled,
            ),
            (
                "gatehouse_access_records_replayed_total",
                "Access records replayed from the spool into the store.",
                s.replayed,
            ),
            (
                "gatehouse_access_records_dropped_total",
                "Access records lost because the spool was at its size limit (should stay 0).",
                s.dropped,
            ),
            (
                "gatehouse_access_spool_corrupt_total",
                "Spool lines skipped on replay (bad checksum, torn tail).",
                s.spool_corrupt,
            ),
            (
                "gatehouse_access_store_errors_total",
                "Access-log store calls that failed or timed out.",
                self.store_errors.load(Ordering::Relaxed),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        }
        for (name, help, value) in [
            (
                "gatehouse_access_queue_depth",
                "Access records waiting in memory.",
                s.queue_depth,
            ),
            (
                "gatehouse_access_spool_bytes",
                "Bytes of access records waiting in the spool.",
                s.spool_bytes,
            ),
            (
                "gatehouse_access_spool_full",
                "1 while the spool is at its size limit and records are dropped.",
                u64::from(s.spool_full),
            ),
            (
                "gatehouse_access_store_up",
                "1 while the access-log store accepts writes.",
                u64::from(s.store_up),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
    }
}

/// The proxy's handle on the pipeline: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AccessLog {
    inner: Option<Arc<Inner>>,
    stats: Arc<AccessStats>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<AccessRecord>,
    spool: Arc<Mutex<Spool>>,
}

impl AccessLog {
    /// A log that records nothing (`--access-log off`).
    pub fn disabled() -> Self {
        AccessLog {
            inner: None,
            stats: Arc::new(AccessStats::default()),
        }
    }

    /// Opens the spool and returns the proxy's handle and the writer to run (on the
    /// control-plane runtime, with [`Writer::run`]).
    pub fn start(
        config: AccessLogConfig,
        store: Arc<dyn gatehouse_registry::store::Store>,
    ) -> Result<(AccessLog, Writer), SpoolError> {
        let stats = Arc::new(AccessStats::default());
        stats.enabled.store(true, Ordering::Relaxed);
        let spool = Spool::open(
            &config.spool_dir,
            config.spool_max_bytes,
            config.spool_segment_bytes,
        )?;
        if !spool.is_empty() {
            tracing::info!(
                spool_bytes = spool.bytes(),
                "access records left in the spool by a previous run will be replayed"
            );
        }
        stats.set_spool(spool.bytes(), spool.is_full());
        let spool = Arc::new(Mutex::new(spool));
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let log = AccessLog {
            inner: Some(Arc::new(Inner {
                tx,
                spool: spool.clone(),
            })),
            stats: stats.clone(),
        };
        let writer = Writer::new(config, store, spool, stats, rx);
        Ok((log, writer))
    }

    pub fn stats(&self) -> &Arc<AccessStats> {
        &self.stats
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands one record to the pipeline. Never waits: a full queue sends the record straight
    /// to the spool; a full spool drops it (counted).
    pub fn emit(&self, record: AccessRecord) {
        let Some(inner) = &self.inner else { return };
        match inner.tx.try_send(record) {
            Ok(()) => {
                AccessStats::add(&self.stats.queued, 1);
                self.stats.queue_depth.store(
                    (inner.tx.max_capacity() - inner.tx.capacity()) as u64,
                    Ordering::Relaxed,
                );
            }
            Err(
                mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record),
            ) => {
                // The queue is full (or the writer has stopped during shutdown): this one
                // record goes to the spool directly and is replayed with the rest.
                let line = spool::encode(&record);
                let mut spool = inner.spool.lock().unwrap_or_else(PoisonError::into_inner);
                match spool.append(&[line]) {
                    Ok(done) => {
                        AccessStats::add(&self.stats.spooled, done.written);
                        AccessStats::add(&self.stats.dropped, done.refused);
                        self.stats
                            .set_spool(spool.bytes(), done.refused > 0 || spool.is_full());
                    }
                    Err(error) => {
                        AccessStats::add(&self.stats.dropped, 1);
                        self.stats.note_error(&error.to_string());
                        tracing::error!(%error, "an access record could not be spooled and is lost");
                    }
                }
            }
        }
    }
}
