//! The access-log writer: one task that drains the queue in batches (by size and by time)
//! into the store, spools what the store cannot take, replays the spool when the store is
//! back, and flushes everything on shutdown.
//!
//! Order: while anything waits in the spool, new batches are appended to it too, and the
//! spool is replayed oldest segment first; so records reach the store in the order they were
//! handed over, with no batch overtaking an older one. Replay runs in slices of at most
//! [`REPLAY_SLICE`], between which the queue is drained again, so the queue never backs up
//! behind a long replay.
//!
//! Failures: a store call that errs or outlasts `store_timeout` marks the store down; the
//! batch goes to the spool, and the store is tried again after a backoff (250 ms doubling to
//! 10 s) by replaying. A batch that timed out may have been committed after all: its replay
//! is then skipped by the store's `(at, id)` key, never duplicated.
//!
//! Housekeeping: before its first insert the writer has the store prepare (PostgreSQL: create
//! today's and the coming days' partitions, or the rows would land in the default
//! partition). Retention, which may delete a lot, runs hourly in a task of its own, so inserts
//! go on between its batches.

use super::spool::{SegmentReader, Spool, encode};
use super::{AccessLogConfig, AccessStats};
use gatehouse_registry::access::AccessRecord;
use gatehouse_registry::store::Store;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Records per replayed store transaction.
const REPLAY_CHUNK: usize = 5_000;
/// Longest stretch of replay before the queue is drained again.
const REPLAY_SLICE: Duration = Duration::from_millis(500);
/// Backoff bounds after a store failure.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often housekeeping (partitions, retention) runs.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3_600);
/// How long the writer idles before looking at the spool and housekeeping again.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long shutdown keeps replaying the spool into the store before leaving the rest on disk.
const SHUTDOWN_REPLAY: Duration = Duration::from_secs(5);

/// A segment being replayed, and the chunk read from it that is not in the store yet.
#[derive(Debug)]
struct Replay {
    reader: SegmentReader,
    chunk: Vec<AccessRecord>,
}

/// The writer task's state. Build it with [`super::AccessLog::start`].
#[derive(Debug)]
pub struct Writer {
    config: AccessLogConfig,
    store: Arc<dyn Store>,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<AccessStats>,
    rx: mpsc::Receiver<AccessRecord>,
    /// Whether the last store call failed.
    down: bool,
    /// No store call before this (after a failure).
    retry_at: Instant,
    backoff: Duration,
    replay: Option<Replay>,
    /// Whether the store was prepared: PostgreSQL needs today's partition before the first
    /// insert, or the rows would land in the default partition.
    prepared: bool,
    next_maintenance: Instant,
    /// The hourly housekeeping task, while it runs.
    maintenance: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    pub(super) fn new(
        config: AccessLogConfig,
        store: Arc<dyn Store>,
        spool: Arc<Mutex<Spool>>,
        stats: Arc<AccessStats>,
        rx: mpsc::Receiver<AccessRecord>,
    ) -> Self {
        let now = Instant::now();
        Writer {
            config,
            store,
            spool,
            stats,
            rx,
            down: false,
            retry_at: now,
            backoff: BACKOFF_MIN,
            replay: None,
            prepared: false,
            next_maintenance: now,
            maintenance: None,
        }
    }

    /// Runs until `stop` turns true (or its sender goes away), then drains the queue into the
    /// store (or the spool), replays what it can within a few seconds, and syncs the spool.
    /// Call it after the proxy has stopped: records handed over later go to the spool.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let mut batch = Vec::with_capacity(self.config.batch_size);
            let stopping = self.collect(&mut batch, &mut stop).await;
            if !batch.is_empty() {
                self.deliver(batch).await;
            }
            self.housekeeping();
            self.catch_up(REPLAY_SLICE).await;
            if stopping {
                break;
            }
        }
        self.shut_down().await;
    }

    /// Waits for records and gathers a batch: returns once it is full, once the first record
    /// has waited `flush_interval`, after an idle tick, or when told to stop (`true`).
    async fn collect(
        &mut self,
        batch: &mut Vec<AccessRecord>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let size = self.config.batch_size.max(1);
        let idle = if self.replay_pending() && Instant::now() >= self.retry_at {
            Duration::ZERO
        } else {
            IDLE_TICK
        };
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return true;
                }
            }
            n = self.rx.recv_many(batch, size) => {
                if n == 0 {
                    return true;
                }
            }
            () = tokio::time::sleep(idle) => return false,
        }
        // One wake-up per batch, not one per record (each is a cross-thread wake of this
        // task by a proxy thread): unless the queue already holds the rest of a batch, wait
        // out the flush interval once, then take what has arrived.
        let deadline = Instant::now() + self.config.flush_interval;
        if batch.len() < size && self.rx.len() < size - batch.len() {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return true;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        while batch.len() < size {
            match self.rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        self.stats
            .queue_depth
            .store(self.rx.len() as u64, std::sync::atomic::Ordering::Relaxed);
        false
    }

    /// Whether anything waits in the spool (or half-replayed in memory).
    fn replay_pending(&self) -> bool {
        self.replay.is_some() || !self.lock_spool().is_empty()
    }

    fn lock_spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One batch: straight into the store when nothing older waits and the store is up,
    /// otherwise (or when that fails) onto the spool.
    async fn deliver(&mut self, batch: Vec<AccessRecord>) {
        let direct = !self.down && !self.replay_pending();
        if direct && self.prepared_or_try().await {
            match self.insert(&batch).await {
                Ok(()) => {
                    AccessStats::add(&self.stats.written, batch.len() as u64);
                    return;
                }
                Err(error) => self.failed(&error),
            }
        }
        self.to_spool(&batch);
    }

    /// Inserts with the store timeout.
    async fn insert(&self, records: &[AccessRecord]) -> Result<(), String> {
        match tokio::time::timeout(self.config.store_timeout, self.store.insert_access(records))
            .await
        {
            Ok(Ok(_)) => {
                self.stats.store_ok();
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the store did not answer within {:?}",
                self.config.store_timeout
            )),
        }
    }

    fn failed(&mut self, error: &str) {
        self.stats.store_failed(error);
        self.down = true;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn recovered(&mut self) {
        self.down = false;
        self.backoff = BACKOFF_MIN;
    }

    /// Appends a batch to the spool and syncs it (outside the lock).
    fn to_spool(&self, batch: &[AccessRecord]) {
        let lines: Vec<Vec<u8>> = batch.iter().map(encode).collect();
        let (result, sync) = {
            let mut spool = self.lock_spool();
            let result = spool.append(&lines);
            let dropping = result.as_ref().map_or(true, |done| done.refused > 0);
            self.stats
                .set_spool(spool.bytes(), dropping || spool.is_full());
            (result, spool.sync_handle())
        };
        match result {
            Ok(done) => {
                AccessStats::add(&self.stats.spooled, done.written);
                AccessStats::add(&self.stats.dropped, done.refused);
            }
            Err(error) => {
                AccessStats::add(&self.stats.dropped, batch.len() as u64);
                self.stats.note_error(&error.to_string());
                tracing::error!(%error, records = batch.len(), "access records could not be spooled and are lost");
            }
        }
        if let Some(file) = sync
            && let Err(error) = file.sync_data()
        {
            tracing::warn!(%error, "syncing the access-log spool failed");
        }
    }

    /// Replays the spool into the store, oldest first, for at most `budget`. Stops at the
    /// first failure (and backs off).
    async fn catch_up(&mut self, budget: Duration) {
        let end = Instant::now() + budget;
        while Instant::now() < end && Instant::now() >= self.retry_at {
            if self.replay.is_none() {
                let next = self.lock_spool().next_to_replay();
                match next {
                    Ok(Some(segment)) => match SegmentReader::open(segment.clone()) {
                        Ok(reader) => {
                            self.replay = Some(Replay {
                                reader,
                                chunk: Vec::new(),
                            });
                        }
                        Err(error) => {
                            self.unreadable(segment.id, &error.to_string());
                            continue;
                        }
                    },
                    Ok(None) => return,
                    Err(error) => {
                        self.stats.note_error(&error.to_string());
                        tracing::error!(%error, "sealing the access-log spool failed");
                        return;
                    }
                }
            }
            if !self.prepared_or_try().await {
                return;
            }
            let Some(replay) = self.replay.as_mut() else {
                return;
            };
            if replay.chunk.is_empty() {
                match replay.reader.next_chunk(REPLAY_CHUNK) {
                    Ok(chunk) => replay.chunk = chunk,
                    Err(error) => {
                        let id = replay.reader.segment.id;
                        self.replay = None;
                        self.unreadable(id, &error.to_string());
                        continue;
                    }
                }
            }
            if replay.chunk.is_empty() {
                // The segment is done: every record in it is in the store.
                let reader = &replay.reader;
                let (id, corrupt, torn) = (reader.segment.id, reader.corrupt, reader.torn);
                if corrupt > 0 || torn {
                    AccessStats::add(&self.stats.spool_corrupt, corrupt + u64::from(torn));
                    tracing::warn!(
                        segment = id,
                        corrupt,
                        torn,
                        "spool segment had damaged lines; they were skipped"
                    );
                }
                self.replay = None;
                let removed = {
                    let mut spool = self.lock_spool();
                    let removed = spool.remove(id);
                    self.stats.set_spool(spool.bytes(), spool.is_full());
                    removed
                };
                if let Err(error) = removed {
                    // Not the store's fault: wait before trying again rather than spin.
                    tracing::error!(%error, "removing a replayed spool segment failed");
                    self.stats.note_error(&error.to_string());
                    self.retry_at = Instant::now() + BACKOFF_MAX;
                    return;
                }
                continue;
            }
            let chunk = std::mem::take(&mut replay.chunk);
            match self.insert(&chunk).await {
                Ok(()) => {
                    AccessStats::add(&self.stats.replayed, chunk.len() as u64);
                    self.recovered();
                }
                Err(error) => {
                    if let Some(r) = self.replay.as_mut() {
                        r.chunk = chunk;
                    }
                    self.failed(&error);
                    return;
                }
            }
        }
    }

    fn unreadable(&mut self, id: u64, error: &str) {
        AccessStats::add(&self.stats.spool_corrupt, 1);
        self.stats.note_error(error);
        tracing::error!(segment = id, %error, "a spool segment cannot be read; it is set aside as .unreadable");
        let mut spool = self.lock_spool();
        if let Err(e) = spool.quarantine(id) {
            tracing::error!(error = %e, "setting the unreadable spool segment aside failed");
        }
        self.stats.set_spool(spool.bytes(), spool.is_full());
    }

    /// Whether the store was prepared for inserts; tries now if not (and the store may be
    /// tried).
    async fn prepared_or_try(&mut self) -> bool {
        if !self.prepared && Instant::now() >= self.retry_at {
            let now = OffsetDateTime::now_utc();
            let run = self
                .store
                .maintain_access(now, self.config.partition_days_ahead, None);
            match tokio::time::timeout(self.config.store_timeout, run).await {
                Ok(Ok(report)) => {
                    self.prepared = true;
                    if !report.partitions_created.is_empty() {
                        tracing::info!(created = ?report.partitions_created, "access-log partitions created");
                    }
                }
                Ok(Err(e)) => self.failed(&format!("preparing the access log: {e}")),
                Err(_) => self.failed("preparing the access log timed out"),
            }
        }
        self.prepared
    }

    /// Starts the hourly housekeeping (partitions ahead, retention) in a task of its own, unless
    /// the previous one still runs.
    fn housekeeping(&mut self) {
        if let Some(task) = &self.maintenance {
            if !task.is_finished() {
                return;
            }
            self.maintenance = None;
        }
        if Instant::now() < self.next_maintenance {
            return;
        }
        self.next_maintenance = Instant::now() + MAINTENANCE_EVERY;
        let store = self.store.clone();
        let days_ahead = self.config.partition_days_ahead;
        let retention = self.config.retention;
        self.maintenance = Some(tokio::spawn(async move {
            let now = OffsetDateTime::now_utc();
            match store
                .maintain_access(now, days_ahead, retention.map(|r| now - r))
                .await
            {
                Ok(report) => {
                    if !report.partitions_created.is_empty()
                        || !report.partitions_dropped.is_empty()
                        || report.rows_deleted > 0
                    {
                        tracing::info!(
                            created = ?report.partitions_created,
                            dropped = ?report.partitions_dropped,
                            rows_deleted = report.rows_deleted,
                            "access-log housekeeping"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "access-log housekeeping failed; it runs again in an hour")
                }
            }
        }));
    }

    /// Drains what is queued, gives the spool a few seconds to reach the store, and syncs
    /// whatever is left on disk for the next start.
    async fn shut_down(mut self) {
        if let Some(task) = self.maintenance.take() {
            // An interrupted retention batch rolls back; the next start does it again.
            task.abort();
        }
        self.rx.close();
        let mut batch = Vec::with_capacity(self.config.batch_size);
        while self
            .rx
            .recv_many(&mut batch, self.config.batch_size.max(1))
            .await
            > 0
        {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(self.config.batch_size));
            self.deliver(full).await;
        }
        // Shutdown does not wait out a backoff: one more attempt, then the disk keeps the rest.
        self.retry_at = Instant::now();
        self.catch_up(SHUTDOWN_REPLAY).await;
        let left = {
            let mut spool = self.lock_spool();
            if let Err(error) = spool.seal_active() {
                tracing::error!(%error, "syncing the access-log spool at shutdown failed");
            }
            spool.bytes()
        };
        self.stats
            .queue_depth
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let s = self.stats.status();
        tracing::info!(
            written = s.written,
            spooled = s.spooled,
            replayed = s.replayed,
            dropped = s.dropped,
            spool_bytes = left,
            "access log flushed"
        );
    }
}
