//! The PostgreSQL store: what several `gatehouse serve` nodes share.
//!
//! Backend-specific behaviour:
//! - Every write transaction starts with `LOCK TABLE change_log IN SHARE ROW EXCLUSIVE
//!   MODE`. The mode conflicts with itself, so writers on every node queue on it, and each
//!   reads the head its predecessor committed (READ COMMITTED takes a fresh snapshot per
//!   statement): the chain never forks. Readers are never blocked by it.
//! - Inside the same transaction, after the change-log insert, the writer runs
//!   `SELECT pg_notify('gatehouse_changes', '<seq>')`; PostgreSQL delivers it on commit.
//! - A background task started by [`PgStore::open`] listens on `gatehouse_changes` on its own
//!   connection and feeds [`Store::subscribe`]. A notification is only a wake-up: the task
//!   re-reads the head from this store's own tables, because the channel is shared by every
//!   schema of the database. After a lost connection it reconnects (with backoff while the
//!   server is unreachable) and re-reads the head, so commits made meanwhile are not missed.
//!   The task ends when the store is dropped.
//! - `load_contents` reads in one `REPEATABLE READ, READ ONLY` transaction.
//! - Key columns use the `"C"` collation, so lists order bytewise as on SQLite.
//! - The access log is partitioned by UTC day (`access_log_pYYYYMMDD`). Housekeeping creates
//!   partitions ahead of time and drops those past retention, each partition in its own
//!   short transaction under an advisory lock, so nodes doing it at once do not collide and
//!   one failure (a default partition already holding rows of that day) does not stop the
//!   rest.

use super::sql::impl_store;
use super::{AccessMaintenance, Backend, ChangeFilter, PageRequest, Store, StoreError};
use crate::model::*;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// The notification channel every node listens on. The payload is the new head sequence.
pub const CHANGES_CHANNEL: &str = "gatehouse_changes";

/// Connections each store keeps at most (the listener's own connection is extra).
const MAX_CONNECTIONS: u32 = 10;
/// The advisory lock that serialises access-log partition maintenance across nodes.
const PARTITION_LOCK: i64 = 0x6761_7465_6175_6469; // "gateaudi"
/// One day in milliseconds: the width of an access-log partition.
const DAY_MS: i64 = 86_400_000;

/// Backoff bounds of the listener while the server cannot be reached.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The registry on PostgreSQL. See the module documentation for what is specific to it.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    head: Arc<watch::Sender<i64>>,
    listener: AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to the database `url` names, applies the migrations (under sqlx's advisory
    /// lock, so nodes starting together do not race), and starts listening for changes.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl { url: redact(url) })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;

        // Listen before reading the head: a commit in between is then either in the head
        // read or notified, never lost.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let mut listener = PgListener::connect_with(&listener_pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;

        let mut conn = pool.acquire().await?;
        let head = Self::read_head(&mut conn).await?;
        drop(conn);
        let head = Arc::new(watch::Sender::new(head));
        let task = tokio::spawn(listen(listener, pool.clone(), Arc::clone(&head)));
        Ok(PgStore {
            pool,
            head,
            listener: task.abort_handle(),
        })
    }

    /// A write transaction queued behind every other writer of the registry.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE change_log IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// A write that is not a registry change (last-used times): it must not queue behind
    /// registry writers, so it takes no lock.
    async fn begin_untracked(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// A read transaction that sees one snapshot throughout.
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }

    /// Tells every listening node (this one included) that `seq` is committed; PostgreSQL
    /// delivers the notification when the transaction commits, and drops it on rollback.
    async fn notify(tx: &mut Transaction<'static, Postgres>, seq: i64) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(seq.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl PgStore {
    /// Creates the daily partitions from yesterday to `days_ahead` after `now`, and drops the
    /// ones that end at or before `retain_after`.
    async fn access_housekeeping(
        &self,
        now: OffsetDateTime,
        days_ahead: u32,
        retain_after: Option<OffsetDateTime>,
    ) -> Result<AccessMaintenance, StoreError> {
        let mut report = AccessMaintenance::default();
        let today_ms = unix_ms(now).div_euclid(DAY_MS) * DAY_MS;
        for offset in -1..=i64::from(days_ahead) {
            let start = today_ms + offset * DAY_MS;
            let name = partition_name(start);
            let created = self.create_partition(&name, start).await;
            match created {
                Ok(true) => report.partitions_created.push(name),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(partition = %name, %error, "creating an access-log partition failed");
                }
            }
        }
        let Some(cutoff) = retain_after else {
            return Ok(report);
        };
        let cutoff_ms = unix_ms(cutoff);
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'access_log'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut expired: Vec<(i64, String)> = partitions
            .into_iter()
            .filter_map(|name| partition_start(&name).map(|start| (start, name)))
            .filter(|(start, _)| start + DAY_MS <= cutoff_ms)
            .collect();
        expired.sort();
        for (_, name) in expired {
            let dropped = self.drop_partition(&name).await;
            match dropped {
                Ok(_) => report.partitions_dropped.push(name),
                Err(error) => {
                    tracing::warn!(partition = %name, %error, "dropping an access-log partition failed");
                }
            }
        }
        report.rows_deleted = sqlx::query("DELETE FROM access_log_default WHERE at < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(report)
    }

    /// A transaction holding the partition-maintenance advisory lock.
    async fn begin_partition_work(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Creates the partition `name` for the day starting at `start` unless it exists.
    async fn create_partition(&self, name: &str, start: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_partition_work().await?;
        if partition_exists(&mut tx, name).await? {
            return Ok(false);
        }
        sqlx::query(&format!(
            "CREATE TABLE {name} PARTITION OF access_log FOR VALUES FROM ({start}) TO ({})",
            start + DAY_MS
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn drop_partition(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_partition_work().await?;
        sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Whether a table named `name` is a partition of this schema's access log.
async fn partition_exists(
    tx: &mut Transaction<'static, Postgres>,
    name: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'access_log'::regclass AND c.relname = $1",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// `access_log_pYYYYMMDD` for the UTC day starting at `start_ms`.
fn partition_name(start_ms: i64) -> String {
    let day = from_unix_ms(start_ms).date();
    format!(
        "access_log_p{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The start (Unix ms) of the day a partition name stands for.
fn partition_start(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("access_log_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(unix_ms(date.midnight().assume_utc()))
}

impl_store!(PgStore, Postgres, Backend::Postgres);

/// Feeds `head` from notifications until the store aborts the task.
async fn listen(mut listener: PgListener, pool: PgPool, head: Arc<watch::Sender<i64>>) {
    let mut backoff = BACKOFF_MIN;
    let mut resync = false;
    loop {
        if resync {
            // Any statement reconnects the listener and re-issues its LISTEN; only then is
            // reading the head sure to cover every commit the notifications will not.
            let reconnected = sqlx::query("SELECT 1").execute(&mut listener).await;
            match reconnected {
                Ok(_) => match refresh(&pool, &head).await {
                    Ok(()) => {
                        resync = false;
                        backoff = BACKOFF_MIN;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "store listener: reading the change-log head failed");
                        backoff = wait(backoff).await;
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "store listener: reconnecting failed");
                    backoff = wait(backoff).await;
                }
            }
            continue;
        }
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                // Payloads at or below what we know are old news (or another schema's).
                let news = notification
                    .payload()
                    .parse::<i64>()
                    .map_or(true, |seq| seq > *head.borrow());
                if news {
                    resync = refresh(&pool, &head).await.is_err();
                }
            }
            // The connection was lost and has been re-established: catch up.
            Ok(None) => resync = true,
            Err(error) => {
                tracing::warn!(%error, "store listener: connection lost");
                backoff = wait(backoff).await;
                resync = true;
            }
        }
    }
}

/// Reads this store's change-log head and publishes it.
async fn refresh(pool: &PgPool, head: &watch::Sender<i64>) -> Result<(), sqlx::Error> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log")
        .fetch_one(pool)
        .await?;
    super::sql::publish(head, seq);
    Ok(())
}

/// Sleeps for `backoff` and returns the next, doubled and capped, backoff.
async fn wait(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(BACKOFF_MAX)
}

/// The URL with its password (in the user info or a `password=` parameter) replaced, fit
/// for an error message.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::{partition_name, partition_start, redact};

    #[test]
    fn partition_names_are_utc_days() {
        let start = 1_772_409_600_000; // 2026-03-02T00:00:00Z
        assert_eq!(partition_name(start), "access_log_p20260302");
        assert_eq!(partition_name(start + 86_399_999), "access_log_p20260302");
        assert_eq!(partition_start("access_log_p20260302"), Some(start));
        assert_eq!(partition_start("access_log_default"), None);
        assert_eq!(partition_start("access_log_p2026030"), None);
    }

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/gh"),
            "postgres://app:***@db:5432/gh"
        );
        assert_eq!(redact("postgres://app@db/gh"), "postgres://app@db/gh");
        assert_eq!(
            redact("postgres://db/gh?user=a@b&password=x&sslmode=require"),
            "postgres://db/gh?user=a@b&password=***&sslmode=require"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
