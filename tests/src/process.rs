//! Process-level harness: runs the real `gatehouse` binary and talks to it over
//! HTTP, as a user would.
//!
//! - [`Gatehouse`]: `gatehouse serve` on free ports with a temporary `--data-dir` and a
//!   bootstrap token; waits for `/healthz` (polling, with a deadline) and kills the process
//!   when dropped. Built with [`Gatehouse::builder`] (`.arg()`, `.env()`, `.data_dir()`).
//! - [`AdminClient`]: a small client of the admin API that returns every reply, refusals
//!   included, for the test to judge.
//! - [`Gatehouse::cli`] / [`cli`]: the binary's client commands, wired to a server.
//! - [`PgSchema`]: a fresh PostgreSQL schema for `--database-url`, dropped afterwards.
//!
//! The harness builds nothing: it runs `target/debug/gatehouse` (or `GATEHOUSE_BIN`), which
//! `.ci/run` and `make test` build before the tests.

use crate::{gatehouse_bin, workspace_root};
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long `gatehouse serve` may take to answer `/healthz` (migrations and seeding
/// included, on a debug build of a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(25);

/// A command running the `gatehouse` binary from the workspace root, with no `GATEHOUSE_*`
/// setting inherited from the caller's environment.
pub fn cli() -> Command {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.current_dir(workspace_root()).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct CliRun {
    /// The exit code (`-1` when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to its end.
pub fn run(cmd: &mut Command) -> CliRun {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl CliRun {
    /// Checks the exit code; returns stdout.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Stdout parsed as JSON (`--output json`), after checking for exit code 0.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.expect(0);
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"))
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free port")
}

/// How to start a `gatehouse serve`.
#[derive(Debug)]
pub struct GatehouseBuilder {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    data_dir: Option<PathBuf>,
    token: String,
}

/// A running `gatehouse serve`, killed when dropped.
#[derive(Debug)]
pub struct Gatehouse {
    child: Child,
    admin: SocketAddr,
    proxy: SocketAddr,
    token: String,
    data_dir: PathBuf,
    log: PathBuf,
    /// The temporary data dir when the builder made one, and the log's directory.
    _dirs: (Option<TempDir>, TempDir),
}

impl Gatehouse {
    /// `gatehouse serve` with a fresh data dir and a bootstrap token: the README's run path.
    pub async fn start() -> Gatehouse {
        Gatehouse::builder().start().await
    }

    pub fn builder() -> GatehouseBuilder {
        GatehouseBuilder {
            args: Vec::new(),
            envs: Vec::new(),
            data_dir: None,
            token: format!("gh-test-bootstrap-{}", std::process::id()),
        }
    }

    /// The admin API, e.g. `http://127.0.0.1:41234`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The gateway.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// The bootstrap token (an admin token).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What the server has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of the admin API with the bootstrap token.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.admin_url(), Some(&self.token))
    }

    /// A `gatehouse` client command aimed at this server, with the bootstrap token as
    /// `GATEHOUSE_TOKEN` (override it with `.env("GATEHOUSE_TOKEN", …)`).
    pub fn cli(&self) -> Command {
        let mut cmd = cli();
        cmd.env("GATEHOUSE_ADMIN_URL", self.admin_url())
            .env("GATEHOUSE_TOKEN", &self.token);
        cmd
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatehouseBuilder {
    /// An extra argument of `gatehouse serve`.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// An environment variable of the server process.
    #[must_use]
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Uses this data dir (kept by the caller, e.g. across a restart) instead of a fresh one.
    #[must_use]
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// The `GATEHOUSE_BOOTSTRAP_TOKEN` to start with.
    #[must_use]
    pub fn bootstrap_token(mut self, token: &str) -> Self {
        self.token = token.to_owned();
        self
    }

    /// Starts the server and waits until `/healthz` answers. A port taken between choosing
    /// it and binding it is retried with new ports.
    pub async fn start(self) -> Gatehouse {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_start().await {
                Ok(gatehouse) => return gatehouse,
                Err(log) if attempt < 3 && port_taken(&log) => {}
                Err(log) => panic!(
                    "gatehouse serve did not become healthy within {START_DEADLINE:?}\n\
                     --- its log\n{log}"
                ),
            }
        }
    }

    async fn try_start(&self) -> Result<Gatehouse, String> {
        let owned = match &self.data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("cannot make a data dir")),
        };
        let data_dir = match (&self.data_dir, &owned) {
            (Some(dir), _) => dir.clone(),
            (None, Some(tmp)) => tmp.path().to_owned(),
            (None, None) => unreachable!("one of the two is set"),
        };
        let log_dir = tempfile::tempdir().expect("cannot make a log dir");
        let log = log_dir.path().join("gatehouse.log");
        let log_file = std::fs::File::create(&log).expect("cannot create the log file");
        let (admin, proxy) = (free_addr(), free_addr());
        let mut cmd = cli();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--admin-listen")
            .arg(admin.to_string())
            .arg("--proxy-listen")
            .arg(proxy.to_string())
            .args(&self.args)
            .env("GATEHOUSE_BOOTSTRAP_TOKEN", &self.token)
            .env("GATEHOUSE_LOG", "info")
            .stdout(log_file.try_clone().expect("cannot share the log file"))
            .stderr(log_file);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", gatehouse_bin().display()));
        let mut gatehouse = Gatehouse {
            child,
            admin,
            proxy,
            token: self.token.clone(),
            data_dir,
            log,
            _dirs: (owned, log_dir),
        };
        let health = format!("{}/healthz", gatehouse.admin_url());
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = gatehouse.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", gatehouse.log()));
            }
            let healthy = http
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(gatehouse);
            }
            if Instant::now() > deadline {
                return Err(gatehouse.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn port_taken(log: &str) -> bool {
    log.contains("cannot listen") || log.to_lowercase().contains("address already in use")
}

// -- the admin API client ----------------------------------------------------------------

/// A client of the admin API. Every call returns the [`Reply`], refusals included.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A response of the admin API, read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks the status; returns the JSON body (`null` when empty).
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.text()))
        }
    }
}

impl AdminClient {
    pub fn new(base: &str, token: Option<&str>) -> AdminClient {
        AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    /// The same client with another token (`None`: no `Authorization` at all).
    pub fn with_token(&self, token: Option<&str>) -> AdminClient {
        AdminClient {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    /// POSTs raw bytes (a spec) with a content type.
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with this client's token and reads the whole reply.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the admin API at {} did not answer: {e}", self.base));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("the admin API's reply broke off: {e}"))
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

// -- PostgreSQL --------------------------------------------------------------------------

/// The variable naming the PostgreSQL database tests may create schemas in.
pub const PG_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// A fresh schema in the database `GATEHOUSE_TEST_POSTGRES_URL` names, and a URL whose
/// connections use it. Dropped (with everything in it) when this value is dropped.
#[derive(Debug)]
pub struct PgSchema {
    admin_url: String,
    schema: String,
    url: String,
}

impl PgSchema {
    /// A new schema; `None` when `GATEHOUSE_TEST_POSTGRES_URL` is unset and `CI` is not
    /// (CI must run the PostgreSQL tests, so there the missing variable is a failure).
    pub async fn create() -> Option<PgSchema> {
        let admin_url = match std::env::var(PG_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var_os("CI").is_some() => panic!(
                "{PG_URL_VAR} is required when CI is set: the end-to-end tests must run on \
                 PostgreSQL (e.g. {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            ),
            _ => {
                eprintln!("{PG_URL_VAR} is not set: this PostgreSQL test did not run");
                return None;
            }
        };
        let schema = format!("gh_e2e_{}", uuid::Uuid::new_v4().simple());
        execute(&admin_url, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        Some(PgSchema {
            admin_url,
            schema,
            url,
        })
    }

    /// The `--database-url` of this schema.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its
        // own with a runtime of its own does the cleanup.
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(execute(&url, &sql)))
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("cannot drop the test schema {}", self.schema);
        }
    }
}

async fn execute(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}
