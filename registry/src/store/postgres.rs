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

use super::sql::impl_store;
use super::{Backend, ChangeFilter, PageRequest, Store, StoreError};
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
    use super::redact;

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
