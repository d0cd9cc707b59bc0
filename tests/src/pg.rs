//! PostgreSQL for end-to-end tests beyond a fresh schema ([`crate::PgSchema`]): raw SQL
//! behind the node's back, and a whole throwaway server the test owns and can stop and start
//! (`initdb` and `pg_ctl` from `/usr/lib/postgresql/*/bin`, on a free port in a temporary
//! directory).
//!
//! Without `GATEHOUSE_TEST_POSTGRES_URL` the PostgreSQL tests are skipped, except under `CI`
//! where they must run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::PG_URL_VAR;

/// The shared server's URL; `None` (the test is skipped) only outside CI.
pub fn shared_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!("{PG_URL_VAR} is required when CI is set"),
        _ => {
            eprintln!("{PG_URL_VAR} is not set: this PostgreSQL test did not run");
            None
        }
    }
}

/// Runs SQL on the database `url` names (e.g. a [`crate::PgSchema`]'s URL).
pub async fn exec(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    Ok(())
}

/// A PostgreSQL server of the test's own, in a temporary directory, trusting local
/// connections. Stopped (and its files removed) when dropped.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl ThrowawayPostgres {
    /// The directory with `initdb` and `pg_ctl`, if PostgreSQL is installed.
    fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    /// Runs a PostgreSQL tool; as root, as the `postgres` user (the server refuses root).
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        // The effective user id, from /proc (no libc call needed).
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
        });
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Initialises and starts a server on a free port. `None` when PostgreSQL is not installed
    /// (and not required: outside CI).
    pub fn start() -> Option<ThrowawayPostgres> {
        let Some(bin) = Self::bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL binaries are required when CI is set"
            );
            eprintln!("no PostgreSQL binaries under /usr/lib/postgresql: test skipped");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
        let pg = ThrowawayPostgres {
            bin,
            dir,
            port: crate::free_port(),
        };
        let status = pg
            .tool("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(pg.data())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let status = self
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("start")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(status.success(), "pg_ctl start failed: {}", self.log());
    }

    /// Stops the server at once (`-m fast`: open connections are closed).
    pub fn stop_server(&self) {
        let status = self
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Waits until the server answers a query.
    pub async fn wait_ready(&self, deadline: Duration) -> bool {
        let url = self.url();
        crate::eventually(deadline, || {
            let url = url.clone();
            async move { exec(&url, "SELECT 1").await.ok() }
        })
        .await
        .is_some()
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
