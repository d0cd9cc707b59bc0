//! Harness for the end-to-end tests: real upstream HTTP servers, a real gateway (in-process
//! Pingora server, or a `gatehouse serve` process), a real HTTP client, and builders for the
//! registry records they are configured from.
//!
//! Tests poll with a deadline ([`eventually`]) and never sleep for a fixed time.

pub mod pg;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gatehouse_gateway::holder::{self, SnapshotHolder};
use gatehouse_gateway::metrics::Metrics;
use gatehouse_registry::model::{Api, Contents, LifecycleState, Target, Upstream, Version};
use gatehouse_registry::snapshot::Snapshot;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A port on which nothing listens: connecting is refused.
pub fn dead_port() -> u16 {
    free_port()
}

/// Polls `check` until it returns `Some` or `deadline` passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until something accepts connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, deadline: Duration) -> bool {
    eventually(deadline, || async move {
        tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
    })
    .await
    .is_some()
}

/// A real upstream: answers every path with a JSON echo of what it received.
///
/// `GET /slow?ms=N` waits N milliseconds first; a path containing `/status/NNN` answers that
/// status. The echo names the upstream, so tests can see where a request landed.
#[derive(Debug)]
pub struct EchoUpstream {
    pub addr: SocketAddr,
    pub name: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct EchoState {
    name: String,
    hits: Arc<AtomicUsize>,
}

async fn echo(
    State(st): State<EchoState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.hits.fetch_add(1, Ordering::Relaxed);
    let query = uri.query().unwrap_or("");
    if uri.path().starts_with("/slow") {
        let ms = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = uri
        .path()
        .split("/status/")
        .nth(1)
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(v.to_str().unwrap_or("").to_owned()),
            )
        })
        .collect();
    let body = json!({
        "upstream": st.name,
        "method": method.as_str(),
        "path": uri.path(),
        "query": query,
        "headers": headers,
        "body_len": body.len(),
    });
    (
        status,
        [
            ("content-type", "application/json"),
            ("keep-alive", "timeout=5"),
        ],
        body.to_string(),
    )
        .into_response()
}

impl EchoUpstream {
    pub async fn start(name: &str) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let state = EchoState {
            name: name.to_owned(),
            hits: hits.clone(),
        };
        let app = Router::new().fallback(echo).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EchoUpstream {
            addr,
            name: name.to_owned(),
            hits,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` plus an optional base path.
    pub fn url(&self, base: &str) -> String {
        format!("http://{}{}", self.addr, base)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The OpenAPI document of the test API `echo` at `version`: items, a slow operation, files
/// with a path parameter, and examples for the mock.
pub fn echo_spec(version: &str) -> Value {
    let ok = |example: Value| json!({"description": "ok", "content": {"application/json": {"example": example}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Echo", "version": version},
        "paths": {
            "/items": {
                "get": {"operationId": "listItems", "responses": {"200": ok(json!({"items": []}))}},
                "post": {"operationId": "createItem", "responses": {"201": ok(json!({"id": "new"}))}}
            },
            "/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"operationId": "getItem", "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"examples": {
                        "widget": {"value": {"id": "1", "name": "widget"}},
                        "gadget": {"value": {"id": "2", "name": "gadget"}}
                    }}}},
                    "404": {"description": "missing", "content": {"application/problem+json": {
                        "example": {"type": "about:blank", "status": 404}}}}
                }},
                "put": {"operationId": "putItem", "responses": {"200": ok(json!({"id": "1"}))}},
                "delete": {"operationId": "deleteItem", "responses": {"204": {"description": "gone"}}}
            },
            "/slow": {
                "get": {"operationId": "slow", "responses": {"200": ok(json!({}))}}
            },
            "/status/{code}": {
                "parameters": [{"name": "code", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"operationId": "status", "responses": {"200": ok(json!({}))}}
            }
        }
    })
}

/// Builders of registry records for in-process gateways.
pub mod records {
    use super::*;

    pub fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub fn api(slug: &str, version_header: bool, default_major: Option<u64>) -> Api {
        Api {
            slug: slug.into(),
            title: slug.into(),
            description: None,
            team: "test".into(),
            version_header,
            default_major,
            created_at: now(),
            updated_at: now(),
        }
    }

    pub fn version(api: &str, version: &str, state: LifecycleState, spec: &Value) -> Version {
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Version {
            api: api.into(),
            version: version.into(),
            major,
            state,
            spec_raw: spec.to_string().into_bytes(),
            spec_json: spec.to_string(),
            sha256: String::new(),
            content_type: "application/json".into(),
            deprecated_at: None,
            sunset_at: None,
            successor: None,
            deprecation_link: None,
            brownouts: Vec::new(),
            created_by: "test".into(),
            created_at: now(),
            updated_by: "test".into(),
            updated_at: now(),
        }
    }

    pub fn upstream(api: &str, major: u64, targets: &[(&str, u32)]) -> Upstream {
        Upstream {
            api: api.into(),
            major,
            targets: targets
                .iter()
                .map(|(url, weight)| Target {
                    url: (*url).to_owned(),
                    weight: *weight,
                })
                .collect(),
            connect_timeout_ms: 500,
            read_timeout_ms: 2_000,
        }
    }
}

/// A gateway running in this process: the real Pingora service from `gatehouse-gateway`,
/// serving snapshots the test installs directly (no store).
pub struct InProcessGateway {
    pub addr: SocketAddr,
    pub holder: Arc<SnapshotHolder>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for InProcessGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessGateway")
            .field("addr", &self.addr)
            .finish()
    }
}

struct StopSignal(tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        if let Some(rx) = self.0.lock().await.take() {
            let _ = rx.await;
        }
        pingora::server::ShutdownSignal::FastShutdown
    }
}

impl InProcessGateway {
    /// Starts a gateway serving a snapshot compiled from `contents`.
    pub async fn start(contents: &Contents) -> Self {
        let holder = Arc::new(SnapshotHolder::new(Arc::new(Metrics::new())));
        let gw = Self::start_with(holder).await;
        gw.install(contents).await;
        gw
    }

    /// Starts a gateway around an existing holder (e.g. one fed by a reloader).
    pub async fn start_with(holder: Arc<SnapshotHolder>) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let conf = pingora::server::configuration::ServerConf {
            threads: 2,
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            ..Default::default()
        };
        let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
        let svc = gatehouse_gateway::proxy::proxy_service(
            &server.configuration,
            holder.clone(),
            &addr.to_string(),
        );
        server.add_service(svc);
        server.bootstrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            server.run(pingora::server::RunArgs {
                shutdown_signal: Box::new(StopSignal(tokio::sync::Mutex::new(Some(rx)))),
            });
        });
        assert!(
            wait_listening(addr, Duration::from_secs(10)).await,
            "gateway did not start listening on {addr}"
        );
        InProcessGateway {
            addr,
            holder,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Compiles and installs a new snapshot (what the reloader does after a store change).
    pub async fn install(&self, contents: &Contents) {
        let snapshot = Snapshot::compile(contents, OffsetDateTime::now_utc()).expect("compile");
        let addrs = holder::resolve_targets(&snapshot).await;
        self.holder.install(Arc::new(snapshot), addrs);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client that never pools across tests and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A raw HTTP/1.1 request over TCP, for paths a client library would normalise away
/// (`..`, `%2e%2e`, `//`). Returns the status and the whole response text.
pub async fn raw_get(addr: SocketAddr, target: &str, extra_headers: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The contents of a registry with one API `echo` whose majors 1 and 2 are published, each
/// served by the given targets.
pub fn echo_contents(v1_targets: &[(&str, u32)], v2_targets: &[(&str, u32)]) -> Contents {
    Contents {
        generation: 1,
        apis: vec![records::api("echo", true, Some(1))],
        versions: vec![
            records::version(
                "echo",
                "1.0.0",
                LifecycleState::Published,
                &echo_spec("1.0.0"),
            ),
            records::version(
                "echo",
                "2.0.0",
                LifecycleState::Published,
                &echo_spec("2.0.0"),
            ),
        ],
        upstreams: vec![
            records::upstream("echo", 1, v1_targets),
            records::upstream("echo", 2, v2_targets),
        ],
        ..Contents::default()
    }
}

/// The workspace root (where `specs/` and `target/` live).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// The `gatehouse` binary: `GATEHOUSE_BIN`, or the workspace's debug build, brought up to
/// date once per test process (`cargo test -p gatehouse-tests` does not build other
/// packages' binaries).
pub fn gatehouse_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("GATEHOUSE_BIN") {
            return p.into();
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "gatehouse-gateway",
                "--bin",
                "gatehouse",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the gatehouse binary failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        target.join("debug").join("gatehouse")
    })
    .clone()
}

/// How to start a `gatehouse serve` process.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Apply the bundled catalog to an empty registry.
    pub seed: bool,
    /// `None`: SQLite in the temp data dir.
    pub database_url: Option<String>,
    /// `all`, `gateway` or `admin`.
    pub role: &'static str,
    /// A TOML configuration written to the data dir and passed with `--config`.
    pub config_toml: Option<String>,
    /// More command-line arguments of `serve`.
    pub args: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            seed: false,
            database_url: None,
            role: "all",
            config_toml: None,
            args: Vec::new(),
        }
    }
}

/// A real `gatehouse serve` process on free ports with a temporary data dir, stopped with
/// SIGINT (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct GatehouseProcess {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// An admin token (`GATEHOUSE_BOOTSTRAP_TOKEN`).
    pub token: String,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl GatehouseProcess {
    pub async fn start(opts: ServeOptions) -> Self {
        Self::start_with_token(opts, &format!("gh_test_bootstrap_token_{}", free_port())).await
    }

    pub async fn start_with_token(opts: ServeOptions, token: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = std::fs::File::create(dir.path().join("gatehouse.log")).expect("log file");
        let mut cmd = std::process::Command::new(gatehouse_bin());
        if let Some(toml) = &opts.config_toml {
            let path = dir.path().join("gatehouse.toml");
            std::fs::write(&path, toml).expect("write config");
            cmd.arg("serve").arg("--config").arg(path);
        } else {
            cmd.arg("serve");
        }
        cmd.args(&opts.args);
        cmd.arg("--data-dir")
            .arg(dir.path())
            .arg("--proxy-listen")
            .arg(proxy.to_string())
            .arg("--admin-listen")
            .arg(admin.to_string())
            .arg("--role")
            .arg(opts.role)
            .arg("--seed-catalog")
            .arg(workspace_root().join("specs/catalog.yaml"))
            .env("GATEHOUSE_BOOTSTRAP_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if !opts.seed {
            cmd.arg("--no-seed");
        }
        if let Some(url) = &opts.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let child = cmd.spawn().expect("start gatehouse serve");
        let p = GatehouseProcess {
            proxy,
            admin,
            token: token.to_owned(),
            child,
            dir,
        };
        let mut p = p;
        let end = Instant::now() + Duration::from_secs(60);
        let (mut admin_up, mut proxy_up) = (opts.role == "gateway", opts.role == "admin");
        while !(admin_up && proxy_up) && Instant::now() < end {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("gatehouse serve exited ({status}):\n{}", p.logs());
            }
            if !admin_up {
                admin_up = client()
                    .get(p.admin_url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            }
            if !proxy_up {
                proxy_up = tokio::net::TcpStream::connect(proxy).await.is_ok();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            admin_up && proxy_up,
            "gatehouse serve did not start:\n{}",
            p.logs()
        );
        p
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's data dir (SQLite database, access-log spool, logs).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `sqlite://…` of the node's default database.
    pub fn sqlite_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("gatehouse.db").display()
        )
    }

    /// Resident memory of the process in KiB (`VmRSS`), 0 once it is gone.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Stops the process gracefully (SIGTERM) and waits for it to exit; returns whether it
    /// exited successfully. The data dir stays until the value is dropped.
    pub fn terminate(&mut self, deadline: Duration) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "gatehouse serve did not stop within {deadline:?}:\n{}",
            self.logs()
        );
    }

    /// What the process printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    /// An admin-API client with this node's token.
    pub fn admin(&self) -> Admin {
        Admin {
            base: format!("http://{}", self.admin),
            token: self.token.clone(),
            http: client(),
        }
    }
}

impl Drop for GatehouseProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thin admin-API client: JSON in, `(status, JSON)` out.
#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// A GET with an `Accept` header, answering the raw response (for exports).
    pub async fn get_accept(&self, path: &str, accept: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .header("accept", accept)
            .send()
            .await
            .expect("admin request")
    }

    /// Registers team (if needed), API `slug` and publishes `version` of the echo spec,
    /// served by `targets`. Panics with the admin API's answer when a step fails.
    pub async fn register_echo(&self, slug: &str, version: &str, targets: &[(&str, u32)]) {
        let (s, b) = self
            .post(
                "/teams",
                &json!({"name": "test", "contact": "test@example.com"}),
            )
            .await;
        assert!(s == 201 || s == 409, "team: {s} {b}");
        let (s, b) = self
            .post(
                "/apis",
                &json!({"slug": slug, "title": slug, "team": "test", "version_header": true}),
            )
            .await;
        assert!(s == 201 || s == 409, "api: {s} {b}");
        let (s, b) = self
            .post(&format!("/apis/{slug}/versions"), &echo_spec(version))
            .await;
        assert_eq!(s, 201, "version: {b}");
        let (s, b) = self
            .post(
                &format!("/apis/{slug}/versions/{version}/publish"),
                &json!({}),
            )
            .await;
        assert!(s == 200 || s == 201, "publish: {s} {b}");
        self.set_upstream(slug, major_of(version), targets).await;
    }

    pub async fn set_upstream(&self, slug: &str, major: u64, targets: &[(&str, u32)]) {
        let targets: Vec<Value> = targets
            .iter()
            .map(|(url, weight)| json!({"url": url, "weight": weight}))
            .collect();
        let (s, b) = self
            .put(
                &format!("/apis/{slug}/majors/{major}/upstream"),
                &json!({"targets": targets, "connect_timeout_ms": 500, "read_timeout_ms": 1000}),
            )
            .await;
        assert!(s == 200 || s == 201, "upstream: {s} {b}");
    }
}

fn major_of(version: &str) -> u64 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

pub mod process;

pub use process::{
    AdminClient, CliRun, Gatehouse, GatehouseBuilder, PG_URL_VAR, PgSchema, Reply, cli, free_addr,
    run,
};
