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

/// The API key the harness's clients present (`X-API-Key`), so that data-plane tests pass
/// the gateway's identity checks. In-process gateways get it with every snapshot
/// ([`with_test_identity`]); `gatehouse serve` processes get it written to their store at
/// start (for the consumer [`TEST_CONSUMER`], or `b2b-portal` when the bundled catalog is
/// seeded). Identity itself is tested with real keys and tokens in `tests/identity.rs`.
pub const TEST_API_KEY: &str = "ghk_7e57c0de.dGVzdC1rZXktb2YtdGhlLWhhcm5lc3Mtbm90LWEtc2VjcmV0IQ";
/// The key id of [`TEST_API_KEY`].
pub const TEST_KEY_ID: &str = "ghk_7e57c0de";
/// The consumer the harness's key belongs to.
pub const TEST_CONSUMER: &str = "test-consumer";

/// `contents` plus the harness's consumer, its key, and a subscription to every API in it
/// (every major, under a plan `test-plan`), for in-process gateways.
pub fn with_test_identity(contents: &Contents) -> Contents {
    use gatehouse_registry::model::{ApiKey, Consumer, Subscription};
    let mut c = contents.clone();
    if !c.consumers.iter().any(|x| x.name == TEST_CONSUMER) {
        c.consumers.push(Consumer {
            name: TEST_CONSUMER.into(),
            contact: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        });
    }
    if !c.keys.iter().any(|k| k.id == TEST_KEY_ID) {
        c.keys.push(ApiKey {
            id: TEST_KEY_ID.into(),
            consumer: TEST_CONSUMER.into(),
            hash: gatehouse_registry::secret::hash(TEST_API_KEY),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        });
    }
    for api in &contents.apis {
        if !c
            .subscriptions
            .iter()
            .any(|s| s.consumer == TEST_CONSUMER && s.api == api.slug)
        {
            c.subscriptions.push(Subscription {
                consumer: TEST_CONSUMER.into(),
                api: api.slug.clone(),
                majors: Vec::new(),
                plan: "test-plan".into(),
                scopes: Vec::new(),
            });
        }
    }
    c
}

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

/// The publish gate's ruleset for `gatehouse serve` processes under test: the built-in
/// one, minus the rules [`echo_spec`] does not meet on purpose. The echo API is a test
/// double: public (the data-plane tests call it without credentials), with no contact and
/// no documented refusals, so that what the tests observe is the gateway's own behaviour.
/// Every other rule, and the compatibility check, still applies.
pub fn echo_ruleset(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("echo-ruleset.yaml");
    std::fs::write(
        &path,
        "rules:\n  operation-security-defined: off\n  info-contact: off\n  \
         operation-4xx-response: off\n  rate-limit-429: off\n",
    )
    .expect("write the echo ruleset");
    path
}

/// [`echo_spec`] with every operation behind an API key (`X-API-Key`), so the gateway
/// identifies the consumer (and limits it under its subscription's plan).
pub fn secured_echo_spec(version: &str) -> Value {
    let mut spec = echo_spec(version);
    spec["components"] = json!({"securitySchemes": {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }});
    spec["security"] = json!([{"apiKey": []}]);
    spec
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
            deprecation_notice_days: Api::DEFAULT_DEPRECATION_NOTICE_DAYS,
            validation: Default::default(),
            forward_bearer: false,
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
        let jwks = gatehouse_gateway::jwks::JwksCache::new(Default::default());
        tokio::spawn(gatehouse_gateway::jwks::run_sync(
            jwks.clone(),
            holder.clone(),
            Duration::from_millis(100),
        ));
        let identity = Arc::new(gatehouse_gateway::identity::Identity::new(jwks));
        let svc = gatehouse_gateway::proxy::proxy_service(
            &server.configuration,
            holder.clone(),
            identity,
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
        let contents = with_test_identity(contents);
        let snapshot = Snapshot::compile(&contents, OffsetDateTime::now_utc()).expect("compile");
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

/// A client that never pools across tests and never follows redirects, presenting the
/// harness's [`TEST_API_KEY`].
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-api-key",
        reqwest::header::HeaderValue::from_static(TEST_API_KEY),
    );
    reqwest::Client::builder()
        .default_headers(headers)
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
    let lower = extra_headers.to_ascii_lowercase();
    let key = if lower.contains("x-api-key:") || lower.contains("authorization:") {
        String::new()
    } else {
        format!("X-API-Key: {TEST_API_KEY}\r\n")
    };
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{key}{extra_headers}\r\n"
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
    /// Extra environment for the process (e.g. `GATEHOUSE_JWKS_MIN_REFRESH_SECONDS`).
    pub env: Vec<(&'static str, String)>,
    /// `--redis-url`: cluster-wide rate limits.
    pub redis_url: Option<String>,
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
            env: Vec::new(),
            redis_url: None,
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
    opts: ServeOptions,
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
        // Before the node starts, so its first snapshot (built before it listens) has it.
        let database_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("gatehouse.db").display()));
        let consumer = if opts.seed {
            "b2b-portal"
        } else {
            TEST_CONSUMER
        };
        plant_test_key(&database_url, consumer).await;
        let child = Self::spawn(&opts, dir.path(), proxy, admin, token);
        let mut p = GatehouseProcess {
            proxy,
            admin,
            token: token.to_owned(),
            opts,
            child,
            dir,
        };
        p.wait_started().await;
        p
    }

    fn spawn(
        opts: &ServeOptions,
        dir: &std::path::Path,
        proxy: SocketAddr,
        admin: SocketAddr,
        token: &str,
    ) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gatehouse.log"))
            .expect("log file");
        let mut cmd = std::process::Command::new(gatehouse_bin());
        if let Some(toml) = &opts.config_toml {
            let path = dir.join("gatehouse.toml");
            std::fs::write(&path, toml).expect("write config");
            cmd.arg("serve").arg("--config").arg(path);
        } else {
            cmd.arg("serve");
        }
        cmd.args(&opts.args);
        cmd.arg("--data-dir")
            .arg(dir)
            .arg("--proxy-listen")
            .arg(proxy.to_string())
            .arg("--admin-listen")
            .arg(admin.to_string())
            .arg("--role")
            .arg(opts.role)
            .arg("--seed-catalog")
            .arg(workspace_root().join("specs/catalog.yaml"))
            .arg("--lint-ruleset")
            .arg(echo_ruleset(dir))
            .env("GATEHOUSE_BOOTSTRAP_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if !opts.seed {
            cmd.arg("--no-seed");
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(url) = &opts.database_url {
            cmd.arg("--database-url").arg(url);
        }
        if let Some(url) = &opts.redis_url {
            cmd.arg("--redis-url").arg(url);
        }
        cmd.spawn().expect("start gatehouse serve")
    }

    async fn wait_started(&mut self) {
        let end = Instant::now() + Duration::from_secs(60);
        let role = self.opts.role;
        let (mut admin_up, mut proxy_up) = (role == "gateway", role == "admin");
        while !(admin_up && proxy_up) && Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gatehouse serve exited ({status}):\n{}", self.logs());
            }
            if !admin_up {
                admin_up = client()
                    .get(self.admin_url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            }
            if !proxy_up {
                proxy_up = tokio::net::TcpStream::connect(self.proxy).await.is_ok();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            admin_up && proxy_up,
            "gatehouse serve did not start:\n{}",
            self.logs()
        );
    }

    /// Stops the process (SIGINT: a graceful stop, so it finishes its last writes) and
    /// starts it again on the same ports and data dir: a node restart.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(
            &self.opts,
            self.dir.path(),
            self.proxy,
            self.admin,
            &self.token,
        );
        self.wait_started().await;
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The node's Prometheus text (`GET /metrics`).
    pub async fn metrics(&self) -> String {
        let resp = client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.expect("the metrics text")
    }

    /// Two nodes sharing the database at `url` under one admin `token`: the first runs
    /// everything, the second only the gateway (`--role gateway`).
    pub async fn pair_sharing(url: &str, token: &str) -> (Self, Self) {
        let all = Self::start_with_token(
            ServeOptions {
                database_url: Some(url.to_owned()),
                ..ServeOptions::default()
            },
            token,
        )
        .await;
        let gateway = Self::start_with_token(
            ServeOptions {
                database_url: Some(url.to_owned()),
                role: "gateway",
                ..ServeOptions::default()
            },
            token,
        )
        .await;
        (all, gateway)
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
        self.stop();
    }
}

/// Writes the harness's consumer and [`TEST_API_KEY`] straight into a node's store (the
/// admin API only issues random keys). Idempotent: nodes sharing a database plant it once.
async fn plant_test_key(database_url: &str, consumer: &str) {
    use gatehouse_registry::model::{Actor, ApiKey, ChangeMeta, Consumer};
    use gatehouse_registry::store::StoreError;
    let store = gatehouse_registry::store::open(database_url)
        .await
        .expect("open the node's store");
    let meta = |action: &str| ChangeMeta {
        actor: Actor::system(),
        action: action.into(),
        target: format!("consumer/{consumer}"),
        reason: Some("test harness".into()),
        before_digest: None,
        after_digest: None,
    };
    let ok = |r: Result<(), StoreError>| match r {
        Ok(()) | Err(StoreError::Duplicate { .. }) => {}
        Err(e) => panic!("planting the test key: {e}"),
    };
    if store.get_consumer(consumer).await.expect("read").is_none() {
        ok(store
            .create_consumer(
                &Consumer {
                    name: consumer.into(),
                    contact: None,
                    created_at: OffsetDateTime::now_utc(),
                },
                &meta("consumer.create"),
            )
            .await);
    }
    ok(store
        .create_key(
            &ApiKey {
                id: TEST_KEY_ID.into(),
                consumer: consumer.into(),
                hash: gatehouse_registry::secret::hash(TEST_API_KEY),
                created_at: OffsetDateTime::now_utc(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
            &meta("key.create"),
        )
        .await);
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
        self.register_spec(slug, version, &echo_spec(version), targets)
            .await;
    }

    /// Like [`Admin::register_echo`] with a spec of the caller's.
    pub async fn register_spec(
        &self,
        slug: &str,
        version: &str,
        spec: &Value,
        targets: &[(&str, u32)],
    ) {
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
        let (s, b) = self.post(&format!("/apis/{slug}/versions"), spec).await;
        assert_eq!(s, 201, "version: {b}");
        let (s, b) = self
            .post(
                &format!("/apis/{slug}/versions/{version}/publish"),
                &json!({}),
            )
            .await;
        assert!(s == 200 || s == 201, "publish: {s} {b}");
        self.set_upstream(slug, major_of(version), targets).await;
        self.subscribe_test_consumer(slug).await;
    }

    /// Subscribes the harness's consumer to every major of `slug` (plan `test-plan`).
    pub async fn subscribe_test_consumer(&self, slug: &str) {
        let (s, b) = self
            .post(
                "/plans",
                &json!({"name": "test-plan", "rate": {"requests": 100000, "per_seconds": 1}}),
            )
            .await;
        assert!(s == 201 || s == 409, "plan: {s} {b}");
        let (s, b) = self
            .post(
                &format!("/consumers/{TEST_CONSUMER}/subscriptions"),
                &json!({"api": slug, "plan": "test-plan"}),
            )
            .await;
        assert_eq!(s, 201, "subscription: {b}");
    }

    /// Creates a consumer subscribed to `api` under `plan` and returns a new API key of it.
    pub async fn consumer_with_key(&self, name: &str, api: &str, plan: &str) -> String {
        let (s, b) = self.post("/consumers", &json!({"name": name})).await;
        assert!(s == 201 || s == 409, "consumer: {s} {b}");
        let (s, b) = self
            .post(
                &format!("/consumers/{name}/subscriptions"),
                &json!({"api": api, "plan": plan}),
            )
            .await;
        assert!(s == 200 || s == 201, "subscription: {s} {b}");
        let (s, b) = self
            .post(&format!("/consumers/{name}/keys"), &json!({}))
            .await;
        assert_eq!(s, 201, "key: {b}");
        b["key"].as_str().expect("the key").to_owned()
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

/// What a [`RecordingUpstream`] saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_sha256: String,
    pub body_len: usize,
}

/// Canned answers by path: status, content type, body.
type Canned = Arc<std::sync::Mutex<Vec<(String, u16, String, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Recording {
    connections: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    canned: Canned,
}

/// A real upstream that records what reaches it: every TCP connection accepted (so a test
/// can prove that nothing of a refused request arrived, not even its header) and, per
/// request, the method, target, headers and the SHA-256 of the body exactly as received.
///
/// It answers `200 application/json {"sha256": "<hex>", "len": N}` unless a canned answer
/// was set for the path ([`RecordingUpstream::answer`]).
#[derive(Debug)]
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    canned: Canned,
    task: tokio::task::JoinHandle<()>,
}

async fn record(
    State(st): State<Recording>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&body));
    let seen = Seen {
        method: method.as_str().to_owned(),
        target: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_sha256: sha.clone(),
        body_len: body.len(),
    };
    st.seen.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
    let canned = st
        .canned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(p, ..)| p == uri.path())
        .cloned();
    match canned {
        Some((_, status, content_type, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        None => (
            StatusCode::OK,
            [("content-type", "application/json".to_owned())],
            json!({"sha256": sha, "len": body.len()}).to_string(),
        )
            .into_response(),
    }
}

impl RecordingUpstream {
    pub async fn start() -> Self {
        use axum::serve::ListenerExt;
        let st = Recording::default();
        let app = Router::new().fallback(record).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let connections = st.connections.clone();
        let listener = listener.tap_io(move |_| {
            connections.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RecordingUpstream {
            addr,
            connections: st.connections,
            seen: st.seen,
            canned: st.canned,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Answers requests for `path` with this status, content type and body.
    pub fn answer(&self, path: &str, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        self.canned.lock().unwrap_or_else(|e| e.into_inner()).push((
            path.to_owned(),
            status,
            content_type.to_owned(),
            body.into(),
        ));
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hex SHA-256 of `bytes` (what a [`RecordingUpstream`] reports).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The shared Redis of this machine for tests (`GATEHOUSE_TEST_REDIS_URL`); `None` only
/// where skipping is allowed (no `CI`): CI always runs the Redis paths.
pub fn redis_url() -> Option<String> {
    const VAR: &str = "GATEHOUSE_TEST_REDIS_URL";
    match std::env::var(VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{VAR} is required when CI is set (e.g. {VAR}=redis://127.0.0.1:6379)")
        }
        _ => {
            eprintln!("{VAR} is not set: this Redis test did not run");
            None
        }
    }
}

/// A `redis-server` of the test's own, on its own port, so that the test can kill it and
/// start it again (outage and recovery). Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = RedisServer {
            port: free_port(),
            child: None,
            dir,
        };
        s.restart().await;
        s
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server (apt-get install -y redis-server)");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        assert!(
            wait_listening(addr, Duration::from_secs(10)).await,
            "redis-server did not start on {addr}"
        );
    }

    /// Kills the server at once (SIGKILL): an outage, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub mod process;

pub use process::{
    AdminClient, CliRun, Gatehouse, GatehouseBuilder, PG_URL_VAR, PgSchema, Reply, cli, free_addr,
    run,
};
