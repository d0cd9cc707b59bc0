//! The SQLite store: the embedded default, one file (`sqlite://data/gatehouse.db`).
//!
//! Backend-specific behaviour:
//! - The file and its parent directory are created when missing. The database runs in WAL
//!   mode with `synchronous = NORMAL` (a crash may lose the last commits, never corrupt the
//!   file), foreign keys on, and a 5 s busy timeout.
//! - Every write transaction starts with `BEGIN IMMEDIATE`, which takes the database's write
//!   lock up front: writers queue on it (within the busy timeout) instead of failing on a
//!   lock upgrade, and each reads the change-log head the previous writer committed, so the
//!   chain never forks.
//! - Reads see one consistent state per transaction (WAL snapshots), so `load_contents`
//!   needs nothing more than a deferred `BEGIN`.
//! - [`Store::subscribe`] sees this process's own commits only: SQLite has no
//!   notifications, and another process writing the same file is noticed by polling
//!   [`Store::head_seq`].
//! - The access log has no partitions; retention deletes old rows in batches of
//!   [`RETENTION_BATCH`], each its own short write transaction, so the access-log writer is
//!   never locked out for long.
//! - `sqlite::memory:` (and `mode=memory`) opens a private in-memory database on a single
//!   connection, which must stay open for the data to live: handy for tests.

use super::sql::impl_store;
use super::{AccessMaintenance, Backend, ChangeFilter, PageRequest, Store, StoreError};
use crate::model::*;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// How long a writer waits for another one to release the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Access records deleted per retention transaction.
pub const RETENTION_BATCH: i64 = 10_000;

/// The registry on an SQLite file. See the module documentation for what is specific to it.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    head: watch::Sender<i64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database `url` names and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let bad_url = || StoreError::BadUrl {
            url: url.to_owned(),
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| bad_url())?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as its connection: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().connect_with(options).await?
        };
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let mut conn = pool.acquire().await?;
        let head = Self::read_head(&mut conn).await?;
        drop(conn);
        Ok(SqliteStore {
            pool,
            head: watch::Sender::new(head),
        })
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// A write that is not a registry change (last-used times): SQLite has one write lock,
    /// so it is taken the same way.
    async fn begin_untracked(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.begin_write().await
    }

    /// A read transaction: WAL gives it one snapshot from its first read on.
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Nothing to do: other processes on the same file poll `head_seq`.
    async fn notify(_tx: &mut Transaction<'static, Sqlite>, _seq: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SqliteStore {
    /// Retention only: SQLite needs no partitions.
    async fn access_housekeeping(
        &self,
        _now: OffsetDateTime,
        _days_ahead: u32,
        retain_after: Option<OffsetDateTime>,
    ) -> Result<AccessMaintenance, StoreError> {
        let mut report = AccessMaintenance::default();
        let Some(cutoff) = retain_after else {
            return Ok(report);
        };
        loop {
            let mut tx = self.begin_untracked().await?;
            let deleted = sqlx::query(
                "DELETE FROM access_log WHERE (at, id) IN \
                 (SELECT at, id FROM access_log WHERE at < $1 ORDER BY at LIMIT $2)",
            )
            .bind(unix_ms(cutoff))
            .bind(RETENTION_BATCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            report.rows_deleted += deleted;
            if deleted < RETENTION_BATCH.unsigned_abs() {
                return Ok(report);
            }
        }
    }
}

impl_store!(SqliteStore, Sqlite, Backend::Sqlite);
