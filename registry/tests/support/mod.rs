//! Fresh databases for the registry's integration tests: a temporary SQLite file, or a new
//! PostgreSQL schema in the database `GATEHOUSE_TEST_POSTGRES_URL` names.
//!
//! Without `GATEHOUSE_TEST_POSTGRES_URL` the PostgreSQL variants fail when `CI` is set (CI
//! must run them) and do nothing otherwise, so a laptop without PostgreSQL can still run
//! `cargo test`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; these helpers are test code"
)]
#![allow(
    dead_code,
    reason = "each test target uses a different part of the support"
)]

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use tempfile::TempDir;

pub const PG_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// The PostgreSQL URL to test against; `None` only where skipping is allowed (no `CI`).
pub fn postgres_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{PG_URL_VAR} is required when CI is set: the suite must run on PostgreSQL \
             (e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        ),
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
        let url = format!(
            "sqlite://{}",
            dir.path().join("nested/dir/gatehouse.db").display()
        );
        TestDb::Sqlite { _dir: dir, url }
    }

    /// A new schema, and a URL whose connections use it (`search_path`).
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = postgres_url()?;
        let schema = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect_admin(&admin_url).await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
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

    pub async fn cleanup(self) {
        if let TestDb::Postgres {
            admin_url, schema, ..
        } = self
        {
            let mut admin = connect_admin(&admin_url).await;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }

    /// Runs `body` with this database's URL, then removes the database, even if `body`
    /// panics.
    pub async fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let outcome = AssertUnwindSafe(body(self.url().to_owned()))
            .catch_unwind()
            .await;
        self.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

pub async fn connect_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"))
}
