//! Test harness shared by store-level suites: a fresh database per test on each backend
//! (SQLite: a temporary file; PostgreSQL: a new schema in `GATEHOUSE_TEST_POSTGRES_URL`,
//! dropped afterwards), and raw SQL for tests that tamper with what the store wrote.
//!
//! Without `GATEHOUSE_TEST_POSTGRES_URL` the PostgreSQL variants fail when `CI` is set and do
//! nothing otherwise.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "test code: a failure panics, and not every suite uses every helper"
)]

use futures::FutureExt;
use gatehouse_registry::store::{self, Store};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tempfile::TempDir;

pub const PG_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// The PostgreSQL URL to test against; `None` only where skipping is allowed (no `CI`).
pub fn postgres_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{PG_URL_VAR} is required when CI is set")
        }
        _ => {
            eprintln!("{PG_URL_VAR} is not set: this PostgreSQL variant did not run");
            None
        }
    }
}

/// A fresh, empty database for one test, and what it takes to remove it.
pub enum TestDb {
    Sqlite {
        _dir: TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        schema: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        TestDb::Sqlite { _dir: dir, url }
    }

    /// A new schema, and a URL whose connections use it (`search_path`).
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = postgres_url()?;
        let schema = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
        exec_pg(&admin_url, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        Some(TestDb::Postgres {
            admin_url,
            schema,
            url,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    async fn cleanup(self) {
        if let TestDb::Postgres {
            admin_url, schema, ..
        } = self
        {
            exec_pg(&admin_url, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

async fn exec_pg(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

/// What a test body gets: the store, and its URL (for raw SQL or a second store).
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub url: String,
}

impl Ctx {
    /// Runs statements directly on the test's database, behind the store's back.
    pub async fn exec(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            exec_pg(&self.url, sql).await;
        }
    }
}

/// Runs `body` on a fresh store of `db`, then removes the database, even if `body` panics.
pub async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = db.url().to_owned();
    let store = store::open(&url).await.unwrap();
    let outcome = AssertUnwindSafe(body(Ctx { store, url }))
        .catch_unwind()
        .await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One test body, two tests: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                support::run(support::TestDb::sqlite(), $body).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = support::TestDb::postgres().await {
                    support::run(db, $body).await;
                }
            }
        }
    };
}
