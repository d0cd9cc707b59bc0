//! The admin API through its router, without a socket (`tower::ServiceExt::oneshot`), on
//! both backends: every `admin_test!` expands to a `sqlite` test (a fresh temporary file)
//! and a `postgres` test (a fresh schema, see `support`). It covers every route and its
//! refusals (401, 403 per role, 404, 409, 413, 422, 400, all problem+json), pagination,
//! spec ingest and its bad inputs, the change log of every write, and catalog apply.
//!
//! Assertions about `POST /apis/{slug}/versions` stay to its status and the fields
//! `version`, `major` and `state`: the publish gate adds findings of its own.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

mod support;

use axum::Router;
use axum::body::Body;
use gatehouse_registry::Registry;
use gatehouse_registry::admin::{self, AdminState, NodeStatus};
use gatehouse_registry::catalog::{self, Bundle};
use gatehouse_registry::store;
use http::{HeaderMap, Method, Request, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::TestDb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

// -- harness -----------------------------------------------------------------------------

/// The bootstrap token every test app starts with; its change-log actor is `bootstrap`.
const ADMIN_TOKEN: &str = "test-bootstrap-admin-token";

/// `/readyz` and `/metrics` are the node's business; the admin API only relays them.
struct FakeNode;

impl NodeStatus for FakeNode {
    fn readiness(&self) -> (bool, Value) {
        (true, json!({"node": "fake"}))
    }

    fn metrics(&self) -> String {
        "# TYPE gatehouse_fake_total counter\ngatehouse_fake_total 1\n".into()
    }
}

/// The admin router on a fresh store that knows one admin token.
struct App {
    router: Router,
}

async fn app(url: &str) -> App {
    let store = store::open(url).await.unwrap();
    let registry = Registry::new(store);
    assert!(registry.bootstrap_token(ADMIN_TOKEN).await.unwrap());
    App {
        router: admin::router(AdminState {
            registry,
            node: Arc::new(FakeNode),
        }),
    }
}

/// One test body, two tests: `name::sqlite` and `name::postgres`.
macro_rules! admin_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                TestDb::sqlite()
                    .run(|url| async move { ($body)(app(&url).await).await })
                    .await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = TestDb::postgres().await {
                    db.run(|url| async move { ($body)(app(&url).await).await })
                        .await;
                }
            }
        }
    };
}

/// A request being built: admin token by default.
struct Call<'a> {
    app: &'a App,
    method: Method,
    path: String,
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl App {
    fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            method,
            path: path.to_owned(),
            authorization: Some(format!("Bearer {ADMIN_TOKEN}")),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }

    fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// How many entries the change log holds, after checking its hash chain.
    async fn log_len(&self) -> u64 {
        let report = self.get("/audit/changes/verify").send().await.ok(200);
        assert_eq!(report["ok"], true, "the change log is broken: {report}");
        report["entries"].as_u64().unwrap()
    }

    /// Every change-log entry, walking `/audit/changes` page by page.
    async fn changes(&self) -> Vec<Value> {
        walk(self, "/audit/changes", 1000)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

impl Call<'_> {
    fn token(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    /// The raw `Authorization` header, or none at all.
    fn authorization(mut self, value: Option<&str>) -> Self {
        self.authorization = value.map(str::to_owned);
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn json(self, value: Value) -> Self {
        self.body("application/json", serde_json::to_vec(&value).unwrap())
    }

    fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.headers
            .push(("content-type".to_owned(), content_type.to_owned()));
        self.body = bytes.into();
        self
    }

    /// A body without a `Content-Type`.
    fn raw(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = bytes.into();
        self
    }

    async fn send(self) -> Reply {
        let mut request = Request::builder().method(self.method).uri(&self.path);
        if let Some(a) = &self.authorization {
            request = request.header(header::AUTHORIZATION, a);
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = self
            .app
            .router
            .clone()
            .oneshot(request.body(Body::from(self.body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
            what: self.path,
        }
    }
}

/// A response, read to the end.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    what: String,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Checks the status and returns the JSON body (`null` when empty).
    #[track_caller]
    fn ok(self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    /// Checks that this is an RFC 9457 problem with this status, and returns it.
    #[track_caller]
    fn problem(self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.what
        );
        let p: Value = serde_json::from_slice(&self.body).unwrap();
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:gatehouse:problem:")),
            "{}: type of {p}",
            self.what
        );
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: title of {p}",
            self.what
        );
        assert_eq!(p["status"], status, "{}: status member of {p}", self.what);
        assert!(
            p["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: detail of {p}",
            self.what
        );
        p
    }

    /// Checks that this is a 4xx problem (any), never a 5xx, and returns it.
    #[track_caller]
    fn client_error(self) -> Value {
        let status = self.status;
        assert!(
            (400..500).contains(&status),
            "{}: expected a 4xx, got {status}: {}",
            self.what,
            self.text()
        );
        self.problem(status)
    }
}

/// Walks a list from its first page to the end; returns the items of each page.
async fn walk(t: &App, path: &str, limit: u32) -> Vec<Vec<Value>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let page = t.get(&url).send().await.ok(200);
        let items = page["items"].as_array().unwrap().clone();
        assert!(
            items.len() <= limit as usize,
            "{url}: a page over its limit"
        );
        pages.push(items);
        assert!(pages.len() < 1000, "{path}: the cursor never ends");
        match &page["next_cursor"] {
            Value::Null => return pages,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("{url}: next_cursor is {other}"),
        }
    }
}

fn names(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

/// RFC 3339, `days` from now (a sunset at least 120 days ahead passes any notice rule).
fn days_from_now(days: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

/// A time of a response, in Unix milliseconds: the store keeps milliseconds, so a write's
/// response (made before storing) may carry more digits than a later read.
fn ms(v: &Value) -> i128 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap()
        .unix_timestamp_nanos()
        / 1_000_000
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// -- fixtures ----------------------------------------------------------------------------

/// A small spec that passes the governance lint: operation ids, a documented 4xx and 429
/// as problem+json, a contact, security, kebab-case paths. The comments and the spacing
/// are there so that "byte for byte" means something: a re-serialisation would lose them.
const SPEC_YAML: &str = "# Stock levels: a fixture of the admin API tests.
openapi: @OPENAPI@
info:
  title: Stock levels
  version: @VERSION@   # the registry takes the version from here
  contact:
    email: stock@example.com
security:
  - apiKey: []
paths:
  /items/{sku}:
    get:
      operationId: getItem
      summary: One item's stock
      parameters:
        - name: sku
          in: path
          required: true
          schema: {type: string}
      responses:
        '200':
          description: The item.
          content:
            application/json:
              schema: {type: object}
        '404':
          description: No such item.
          content:
            application/problem+json:
              schema: {type: object}
        '429':
          description: Too many requests.
          content:
            application/problem+json:
              schema: {type: object}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-API-Key}
";

/// The same spec as JSON, indented by hand (not as `serde_json` would write it).
const SPEC_JSON: &str = r#"{
    "openapi": "@OPENAPI@",
    "info": {"title": "Stock levels", "version": "@VERSION@",
             "contact": {"email": "stock@example.com"}},
    "security": [{"apiKey": []}],
    "paths": {
        "/items/{sku}": {
            "get": {
                "operationId": "getItem",
                "summary": "One item's stock",
                "parameters": [
                    {"name": "sku", "in": "path", "required": true, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The item.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "404": {"description": "No such item.",
                            "content": {"application/problem+json": {"schema": {"type": "object"}}}},
                    "429": {"description": "Too many requests.",
                            "content": {"application/problem+json": {"schema": {"type": "object"}}}}
                }
            }
        }
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    }
}
"#;

fn spec_yaml_of(openapi: &str, version: &str) -> Vec<u8> {
    SPEC_YAML
        .replace("@OPENAPI@", openapi)
        .replace("@VERSION@", version)
        .into_bytes()
}

fn spec_json_of(openapi: &str, version: &str) -> Vec<u8> {
    SPEC_JSON
        .replace("@OPENAPI@", openapi)
        .replace("@VERSION@", version)
        .into_bytes()
}

/// The fixture spec, OpenAPI 3.1 in YAML.
fn spec(version: &str) -> Vec<u8> {
    spec_yaml_of("3.1.0", version)
}

async fn register(t: &App, api: &str, version: &str) -> Value {
    t.post(&format!("/apis/{api}/versions"))
        .body("application/yaml", spec(version))
        .send()
        .await
        .ok(201)
}

async fn publish(t: &App, api: &str, version: &str) {
    t.post(&format!("/apis/{api}/versions/{version}/publish"))
        .send()
        .await
        .ok(200);
}

/// An admin-API token of another role.
#[derive(Debug, Clone)]
struct Token {
    id: String,
    secret: String,
}

async fn token(t: &App, body: Value) -> Token {
    let v = t.post("/tokens").json(body).send().await.ok(201);
    Token {
        id: v["id"].as_str().unwrap().to_owned(),
        secret: v["token"].as_str().unwrap().to_owned(),
    }
}

/// Who calls: the roles of CONTRACT.md, with the owner on both sides of its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Architect,
    /// Owner of `inventory-platform`, the team of the API `inventory`.
    Owner,
    /// Owner of `logistics`, which does not own `inventory`.
    OtherOwner,
    Auditor,
}

const EVERYONE: [Who; 5] = [
    Who::Admin,
    Who::Architect,
    Who::Owner,
    Who::OtherOwner,
    Who::Auditor,
];

impl Who {
    /// A suffix that keeps one role's writes apart from another's.
    fn tag(self) -> &'static str {
        match self {
            Who::Admin => "a",
            Who::Architect => "b",
            Who::Owner => "c",
            Who::OtherOwner => "d",
            Who::Auditor => "e",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Who::Admin => "admin",
            Who::Architect => "architect",
            Who::Owner | Who::OtherOwner => "owner",
            Who::Auditor => "auditor",
        }
    }
}

/// Two teams, the API `inventory` (team `inventory-platform`) with drafts 1.0.0 and 1.1.0,
/// the API `shipments` (team `logistics`), a plan `basic`, consumers `edi` (with a key) and
/// `portal`, and a token for every role.
struct World {
    architect: Token,
    owner: Token,
    other_owner: Token,
    auditor: Token,
    key_id: String,
    issuer_id: String,
}

impl World {
    /// The token and change-log actor of a role.
    fn of(&self, who: Who) -> (String, String) {
        let t = match who {
            Who::Admin => {
                return (ADMIN_TOKEN.to_owned(), "bootstrap".to_owned());
            }
            Who::Architect => &self.architect,
            Who::Owner => &self.owner,
            Who::OtherOwner => &self.other_owner,
            Who::Auditor => &self.auditor,
        };
        (t.secret.clone(), t.id.clone())
    }
}

async fn world(t: &App) -> World {
    for (name, contact) in [
        ("inventory-platform", "inventory@example.com"),
        ("logistics", "logistics@example.com"),
    ] {
        t.post("/teams")
            .json(json!({"name": name, "contact": contact}))
            .send()
            .await
            .ok(201);
    }
    for (slug, team) in [
        ("inventory", "inventory-platform"),
        ("shipments", "logistics"),
    ] {
        t.post("/apis")
            .json(json!({"slug": slug, "title": format!("The {slug} API"), "team": team}))
            .send()
            .await
            .ok(201);
    }
    register(t, "inventory", "1.0.0").await;
    register(t, "inventory", "1.1.0").await;
    t.post("/plans")
        .json(json!({"name": "basic", "rate": {"requests": 10, "per_seconds": 1}}))
        .send()
        .await
        .ok(201);
    for name in ["edi", "portal"] {
        t.post("/consumers")
            .json(json!({"name": name}))
            .send()
            .await
            .ok(201);
    }
    let key = t.post("/consumers/edi/keys").send().await.ok(201);
    let issuer = t
        .post("/issuers")
        .json(issuer_body("https://idp.world.example/"))
        .send()
        .await
        .ok(201);
    World {
        architect: token(t, json!({"role": "architect"})).await,
        owner: token(t, json!({"role": "owner", "team": "inventory-platform"})).await,
        other_owner: token(t, json!({"role": "owner", "team": "logistics"})).await,
        auditor: token(t, json!({"role": "auditor"})).await,
        key_id: key["id"].as_str().unwrap().to_owned(),
        issuer_id: issuer["id"].as_str().unwrap().to_owned(),
    }
}

/// A trusted issuer whose keys come from a JWKS URL (the registry does not fetch it).
fn issuer_body(issuer: &str) -> Value {
    json!({"issuer": issuer, "audiences": ["gatehouse"], "algorithms": ["RS256"],
           "jwks_uri": "http://idp.world.example/.well-known/jwks.json"})
}

// -- the route table ---------------------------------------------------------------------

/// Every route of the admin API (method, path template). A test holds it equal to the
/// paths of `/openapi.json`, so a route cannot be added without its documentation.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/teams"),
    ("GET", "/teams"),
    ("GET", "/teams/{name}"),
    ("POST", "/apis"),
    ("GET", "/apis"),
    ("GET", "/apis/{slug}"),
    ("PUT", "/apis/{slug}/validation"),
    ("GET", "/apis/{slug}/validation"),
    ("POST", "/apis/{slug}/versions"),
    ("GET", "/apis/{slug}/versions"),
    ("GET", "/apis/{slug}/versions/{version}"),
    ("GET", "/apis/{slug}/versions/{version}/spec"),
    ("POST", "/apis/{slug}/versions/{version}/publish"),
    ("POST", "/apis/{slug}/versions/{version}/deprecate"),
    ("POST", "/apis/{slug}/versions/{version}/retire"),
    ("PUT", "/apis/{slug}/majors/{major}/upstream"),
    ("GET", "/apis/{slug}/majors/{major}/upstream"),
    ("GET", "/apis/{slug}/upstreams"),
    ("GET", "/apis/{slug}/diff"),
    ("PUT", "/apis/{slug}/systems-of-record"),
    ("GET", "/apis/{slug}/systems-of-record"),
    ("GET", "/systems-of-record"),
    ("POST", "/plans"),
    ("GET", "/plans"),
    ("GET", "/plans/{name}"),
    ("POST", "/consumers"),
    ("GET", "/consumers"),
    ("GET", "/consumers/{name}"),
    ("POST", "/consumers/{name}/keys"),
    ("GET", "/consumers/{name}/keys"),
    ("DELETE", "/consumers/{name}/keys/{id}"),
    ("POST", "/consumers/{name}/subscriptions"),
    ("GET", "/consumers/{name}/subscriptions"),
    ("DELETE", "/consumers/{name}/subscriptions/{api}"),
    ("POST", "/issuers"),
    ("GET", "/issuers"),
    ("GET", "/issuers/{id}"),
    ("DELETE", "/issuers/{id}"),
    ("POST", "/tokens"),
    ("POST", "/apply"),
    ("GET", "/audit/changes"),
    ("GET", "/audit/changes/verify"),
    ("GET", "/audit/access"),
    ("GET", "/reports/deprecations"),
];

/// The routes that answer without a token.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// A route template with the world's names filled in.
fn concrete(template: &str) -> String {
    let name = if template.starts_with("/teams") {
        "logistics"
    } else if template.starts_with("/plans") {
        "basic"
    } else {
        "edi"
    };
    template
        .replace("{name}", name)
        .replace("{slug}", "inventory")
        .replace("{version}", "1.0.0")
        .replace("{major}", "1")
        .replace("{id}", "key-id")
        .replace("{api}", "inventory")
}

/// Where a write's change-log target comes from.
enum Target {
    Is(String),
    /// Named by the response (ids the server makes up).
    From(fn(&Value) -> String),
}

/// One write of the admin API as one role makes it.
struct Write {
    method: Method,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    status: u16,
    action: &'static str,
    target: Target,
}

/// Every write route, who may use it, and how each role's call looks. Each role touches
/// its own records (by [`Who::tag`]), so the allowed roles can all succeed in turn.
struct WriteRoute {
    route: (&'static str, &'static str),
    allowed: &'static [Who],
    make: fn(&World, Who) -> Write,
}

fn json_body(v: Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", serde_json::to_vec(&v).unwrap()))
}

/// The version of `inventory` whose lifecycle a role drives.
fn lifecycle_version(who: Who) -> &'static str {
    if who == Who::Owner { "1.1.0" } else { "1.0.0" }
}

/// The consumer whose subscription a role manages.
fn subscriber(who: Who) -> &'static str {
    if who == Who::Owner { "portal" } else { "edi" }
}

fn lifecycle(who: Who, step: &'static str, body: Value) -> Write {
    let v = lifecycle_version(who);
    Write {
        method: Method::POST,
        path: format!("/apis/inventory/versions/{v}/{step}"),
        body: json_body(body),
        status: 200,
        action: match step {
            "publish" => "version.publish",
            "deprecate" => "version.deprecate",
            _ => "version.retire",
        },
        target: Target::Is(format!("inventory@{v}")),
    }
}

fn write_routes() -> Vec<WriteRoute> {
    use Who::*;
    vec![
        WriteRoute {
            route: ("POST", "/teams"),
            allowed: &[Admin, Architect],
            make: |_, who| Write {
                method: Method::POST,
                path: "/teams".into(),
                body: json_body(
                    json!({"name": format!("team-{}", who.tag()), "contact": "t@example.com"}),
                ),
                status: 201,
                action: "team.create",
                target: Target::Is(format!("team/team-{}", who.tag())),
            },
        },
        WriteRoute {
            route: ("POST", "/apis"),
            allowed: &[Admin, Architect],
            make: |_, who| Write {
                method: Method::POST,
                path: "/apis".into(),
                body: json_body(
                    json!({"slug": format!("api-{}", who.tag()), "title": "An API",
                                       "team": "inventory-platform"}),
                ),
                status: 201,
                action: "api.create",
                target: Target::Is(format!("api/api-{}", who.tag())),
            },
        },
        WriteRoute {
            route: ("POST", "/apis/{slug}/versions"),
            allowed: &[Admin, Architect, Owner],
            make: |_, who| {
                let v = match who {
                    Admin => "1.10.0",
                    Architect => "1.11.0",
                    _ => "1.12.0",
                };
                Write {
                    method: Method::POST,
                    path: "/apis/inventory/versions".into(),
                    body: Some(("application/yaml", spec(v))),
                    status: 201,
                    action: "version.create",
                    target: Target::Is(format!("inventory@{v}")),
                }
            },
        },
        WriteRoute {
            route: ("POST", "/apis/{slug}/versions/{version}/publish"),
            allowed: &[Admin, Owner],
            make: |_, who| lifecycle(who, "publish", json!({"reason": "ready"})),
        },
        WriteRoute {
            route: ("POST", "/apis/{slug}/versions/{version}/deprecate"),
            allowed: &[Admin, Owner],
            make: |_, who| lifecycle(who, "deprecate", json!({"sunset": days_from_now(200)})),
        },
        WriteRoute {
            route: ("POST", "/apis/{slug}/versions/{version}/retire"),
            // Retiring before the sunset needs an admin's force with a reason (issue 7).
            allowed: &[Admin],
            make: |_, who| {
                lifecycle(
                    who,
                    "retire",
                    json!({"force": true, "reason": "retired early in a test"}),
                )
            },
        },
        WriteRoute {
            route: ("PUT", "/apis/{slug}/majors/{major}/upstream"),
            allowed: &[Admin, Architect, Owner],
            make: |_, _| Write {
                method: Method::PUT,
                path: "/apis/inventory/majors/1/upstream".into(),
                body: json_body(json!({"targets": [{"url": "mock://", "weight": 100}]})),
                status: 200,
                action: "upstream.put",
                target: Target::Is("inventory/v1".into()),
            },
        },
        WriteRoute {
            route: ("PUT", "/apis/{slug}/validation"),
            allowed: &[Admin, Architect, Owner],
            make: |_, _| Write {
                method: Method::PUT,
                path: "/apis/inventory/validation".into(),
                body: json_body(json!({"response": "report", "max_body_bytes": 65536})),
                status: 200,
                action: "api.validation",
                target: Target::Is("api/inventory".into()),
            },
        },
        WriteRoute {
            route: ("PUT", "/apis/{slug}/systems-of-record"),
            allowed: &[Admin, Architect],
            make: |_, who| Write {
                method: Method::PUT,
                path: "/apis/inventory/systems-of-record".into(),
                body: json_body(
                    json!([{"entity": format!("stock-{}", who.tag()), "system": "WMS"}]),
                ),
                status: 200,
                action: "systems-of-record.put",
                target: Target::Is("api/inventory".into()),
            },
        },
        WriteRoute {
            route: ("POST", "/plans"),
            allowed: &[Admin],
            make: |_, who| Write {
                method: Method::POST,
                path: "/plans".into(),
                body: json_body(json!({"name": format!("plan-{}", who.tag()),
                                       "rate": {"requests": 5, "per_seconds": 1}})),
                status: 201,
                action: "plan.create",
                target: Target::Is(format!("plan/plan-{}", who.tag())),
            },
        },
        WriteRoute {
            route: ("POST", "/consumers"),
            allowed: &[Admin],
            make: |_, who| Write {
                method: Method::POST,
                path: "/consumers".into(),
                body: json_body(json!({"name": format!("consumer-{}", who.tag())})),
                status: 201,
                action: "consumer.create",
                target: Target::Is(format!("consumer/consumer-{}", who.tag())),
            },
        },
        WriteRoute {
            route: ("POST", "/consumers/{name}/keys"),
            allowed: &[Admin],
            make: |_, _| Write {
                method: Method::POST,
                path: "/consumers/edi/keys".into(),
                body: json_body(json!({})),
                status: 201,
                action: "key.create",
                target: Target::From(|v| {
                    format!("consumer/edi/keys/{}", v["id"].as_str().unwrap())
                }),
            },
        },
        WriteRoute {
            route: ("DELETE", "/consumers/{name}/keys/{id}"),
            allowed: &[Admin],
            make: |w, _| Write {
                method: Method::DELETE,
                path: format!("/consumers/edi/keys/{}", w.key_id),
                body: None,
                status: 204,
                action: "key.revoke",
                target: Target::Is(format!("consumer/edi/keys/{}", w.key_id)),
            },
        },
        WriteRoute {
            route: ("POST", "/issuers"),
            allowed: &[Admin],
            make: |_, who| Write {
                method: Method::POST,
                path: "/issuers".into(),
                body: json_body(issuer_body(&format!("https://idp-{}.example/", who.tag()))),
                status: 201,
                action: "issuer.create",
                target: Target::From(|body| format!("issuer/{}", body["id"].as_str().unwrap())),
            },
        },
        WriteRoute {
            route: ("DELETE", "/issuers/{id}"),
            allowed: &[Admin],
            make: |w, _| Write {
                method: Method::DELETE,
                path: format!("/issuers/{}", w.issuer_id),
                body: None,
                status: 204,
                action: "issuer.delete",
                target: Target::Is(format!("issuer/{}", w.issuer_id)),
            },
        },
        WriteRoute {
            route: ("POST", "/consumers/{name}/subscriptions"),
            allowed: &[Admin, Owner],
            make: |_, who| Write {
                method: Method::POST,
                path: format!("/consumers/{}/subscriptions", subscriber(who)),
                body: json_body(json!({"api": "inventory", "plan": "basic", "majors": [1]})),
                status: 201,
                action: "subscription.put",
                target: Target::Is(format!(
                    "consumer/{}/subscriptions/inventory",
                    subscriber(who)
                )),
            },
        },
        WriteRoute {
            route: ("DELETE", "/consumers/{name}/subscriptions/{api}"),
            allowed: &[Admin, Owner],
            make: |_, who| Write {
                method: Method::DELETE,
                path: format!("/consumers/{}/subscriptions/inventory", subscriber(who)),
                body: None,
                status: 204,
                action: "subscription.delete",
                target: Target::Is(format!(
                    "consumer/{}/subscriptions/inventory",
                    subscriber(who)
                )),
            },
        },
        WriteRoute {
            route: ("POST", "/tokens"),
            allowed: &[Admin],
            make: |_, _| Write {
                method: Method::POST,
                path: "/tokens".into(),
                body: json_body(json!({"role": "auditor"})),
                status: 201,
                action: "token.create",
                target: Target::From(|v| format!("token/{}", v["id"].as_str().unwrap())),
            },
        },
        WriteRoute {
            route: ("POST", "/apply"),
            allowed: &[Admin],
            make: |_, who| {
                let bundle = json!({"catalog": {"teams": [
                    {"name": format!("applied-{}", who.tag()), "contact": "c@example.com"}
                ]}, "specs": {}});
                Write {
                    method: Method::POST,
                    path: "/apply".into(),
                    body: json_body(bundle),
                    status: 200,
                    action: "team.create",
                    target: Target::Is(format!("team/applied-{}", who.tag())),
                }
            },
        },
    ]
}

impl Write {
    async fn send(&self, t: &App, token: &str) -> Reply {
        let mut call = t.call(self.method.clone(), &self.path).token(token);
        if let Some((ct, bytes)) = &self.body {
            call = call.body(ct, bytes.clone());
        }
        call.send().await
    }
}

// -- node routes and the admin API's own document ----------------------------------------

admin_test!(
    node_routes_and_the_openapi_document_answer_without_a_token,
    |t: App| async move {
        let health = t.get("/healthz").authorization(None).send().await.ok(200);
        assert_eq!(health, json!({"status": "ok"}));
        let ready = t.get("/readyz").authorization(None).send().await.ok(200);
        assert_eq!(ready["ready"], true);
        assert_eq!(ready["detail"], json!({"node": "fake"}));
        let metrics = t.get("/metrics").authorization(None).send().await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(metrics.text().contains("gatehouse_fake_total 1"));
        let doc = t.get("/openapi.json").authorization(None).send().await;
        assert_eq!(doc.header("content-type"), Some("application/json"));
        assert_eq!(doc.ok(200)["openapi"], "3.1.0");
    }
);

admin_test!(
    the_openapi_document_passes_our_own_ingest_and_names_every_route,
    |t: App| async move {
        let reply = t.get("/openapi.json").authorization(None).send().await;
        assert_eq!(reply.status, 200);
        let parsed = gatehouse_policies::openapi::parse(&reply.body, &Default::default()).unwrap();
        assert_eq!(parsed.dialect, gatehouse_policies::openapi::Dialect::V31);
        let documented: BTreeSet<(String, String)> = parsed
            .operations()
            .map(|op| (op.method.as_str().to_uppercase(), op.path.clone()))
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented but not routed"
        );
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed but not documented"
        );
    }
);

admin_test!(
    every_response_carries_a_request_id_and_keeps_the_callers,
    |t: App| async move {
        let fresh = t.get("/healthz").send().await;
        assert!(fresh.header("x-request-id").is_some_and(|v| !v.is_empty()));
        let kept = t
            .get("/teams")
            .header("x-request-id", "req-42")
            .send()
            .await;
        assert_eq!(kept.header("x-request-id"), Some("req-42"));
        let refused = t
            .get("/teams")
            .authorization(None)
            .header("x-request-id", "req-43")
            .send()
            .await;
        assert_eq!(refused.header("x-request-id"), Some("req-43"));
    }
);

admin_test!(
    unknown_paths_are_404_and_undefined_methods_405_as_problems,
    |t: App| async move {
        let p = t.get("/nope").send().await.problem(404);
        assert_eq!(p["type"], "urn:gatehouse:problem:not-found");
        let p = t.delete("/teams").send().await.problem(405);
        assert_eq!(p["type"], "urn:gatehouse:problem:method-not-allowed");
        t.put("/healthz").send().await.problem(405);
    }
);

// -- 401 ---------------------------------------------------------------------------------

admin_test!(
    every_route_but_the_node_routes_refuses_a_missing_or_bad_token_with_401,
    |t: App| async move {
        let before = t.log_len().await;
        let bad = [
            None,
            Some("Bearer not-a-token"),
            Some("Bearer "),
            Some("Basic dXNlcjpwYXNz"),
            Some(ADMIN_TOKEN),
        ];
        let long = format!("Bearer {}", "x".repeat(600));
        for (method, template) in ROUTES {
            if PUBLIC.contains(template) {
                continue;
            }
            let path = concrete(template);
            for auth in bad.iter().copied().chain([Some(long.as_str())]) {
                let reply = t
                    .call(method.parse().unwrap(), &path)
                    .authorization(auth)
                    .json(json!({}))
                    .send()
                    .await;
                assert_eq!(
                    reply.header("www-authenticate"),
                    Some("Bearer realm=\"gatehouse-admin\""),
                    "{method} {path} with {auth:?}"
                );
                let p = reply.problem(401);
                assert_eq!(p["type"], "urn:gatehouse:problem:unauthorized");
            }
        }
        assert_eq!(t.log_len().await, before, "a refused call wrote something");
    }
);

// -- 403 and the role matrix ---------------------------------------------------------------

admin_test!(
    every_write_route_refuses_the_roles_it_does_not_allow_with_403,
    |t: App| async move {
        let w = world(&t).await;
        let before = t.log_len().await;
        let mut refused = 0;
        for route in write_routes() {
            for who in EVERYONE {
                if route.allowed.contains(&who) {
                    continue;
                }
                let write = (route.make)(&w, who);
                let (token, _) = w.of(who);
                let p = write.send(&t, &token).await.problem(403);
                assert_eq!(
                    p["type"], "urn:gatehouse:problem:forbidden",
                    "{:?}",
                    route.route
                );
                assert!(
                    p["detail"].as_str().unwrap().contains(who.role()),
                    "the 403 names the role: {p}"
                );
                refused += 1;
            }
        }
        assert!(refused >= 40, "only {refused} refusals were tried");
        assert_eq!(t.log_len().await, before, "a refused write was logged");
    }
);

admin_test!(auditors_may_write_nothing_at_all, |t: App| async move {
    let w = world(&t).await;
    let (auditor, _) = w.of(Who::Auditor);
    let before = t.log_len().await;
    for route in write_routes() {
        assert!(!route.allowed.contains(&Who::Auditor), "{:?}", route.route);
        let write = (route.make)(&w, Who::Admin);
        write.send(&t, &auditor).await.problem(403);
    }
    let writes: BTreeSet<_> = write_routes().iter().map(|r| r.route).collect();
    let all_writes: BTreeSet<_> = ROUTES
        .iter()
        .filter(|(m, _)| *m != "GET")
        .copied()
        .collect();
    assert_eq!(
        writes, all_writes,
        "the write table covers every write route"
    );
    assert_eq!(t.log_len().await, before);
});

admin_test!(every_role_may_read_every_read_route, |t: App| async move {
    let w = world(&t).await;
    for who in EVERYONE {
        let (token, _) = w.of(who);
        for (method, template) in ROUTES {
            if *method != "GET" {
                continue;
            }
            let path = match *template {
                "/apis/{slug}/majors/{major}/upstream" => continue,
                "/apis/{slug}/diff" => concrete("/apis/{slug}/diff?from=1.0.0&to=1.1.0"),
                "/issuers/{id}" => format!("/issuers/{}", w.issuer_id),
                other => concrete(other),
            };
            let reply = t.get(&path).token(&token).send().await;
            assert_eq!(reply.status, 200, "{who:?} GET {path}: {}", reply.text());
        }
    }
});

admin_test!(
    every_write_route_admits_the_roles_it_allows_and_logs_one_entry_per_write,
    |t: App| async move {
        let w = world(&t).await;
        for route in write_routes() {
            for who in route.allowed.iter().copied() {
                let write = (route.make)(&w, who);
                let (token, actor) = w.of(who);
                let before = t.log_len().await;
                let reply = write.send(&t, &token).await;
                let what = format!("{who:?} {} {}", write.method, write.path);
                assert_eq!(reply.status, write.status, "{what}: {}", reply.text());
                let body = if reply.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&reply.body).unwrap()
                };
                assert_eq!(t.log_len().await, before + 1, "{what}: one change entry");
                let changes = t.changes().await;
                let entry = changes.last().unwrap();
                assert_eq!(entry["action"], write.action, "{what}: {entry}");
                let target = match &write.target {
                    Target::Is(s) => s.clone(),
                    Target::From(f) => f(&body),
                };
                assert_eq!(entry["target"], target, "{what}: {entry}");
                assert_eq!(entry["actor"], actor, "{what}: {entry}");
                assert_eq!(entry["role"], who.role(), "{what}: {entry}");
            }
        }
        let report = t.get("/audit/changes/verify").send().await.ok(200);
        assert_eq!(report["ok"], true);
        assert_eq!(report["first_bad"], Value::Null);
    }
);

admin_test!(
    an_owner_drives_the_lifecycle_of_its_own_teams_apis_only,
    |t: App| async move {
        let w = world(&t).await;
        let (owner, _) = w.of(Who::Owner);
        let (other, _) = w.of(Who::OtherOwner);
        let (architect, _) = w.of(Who::Architect);
        register(&t, "shipments", "1.0.0").await;
        let publish_inventory = "/apis/inventory/versions/1.0.0/publish";
        t.post(publish_inventory)
            .token(&other)
            .send()
            .await
            .problem(403);
        t.post(publish_inventory)
            .token(&architect)
            .send()
            .await
            .problem(403);
        let v = t.post(publish_inventory).token(&owner).send().await.ok(200);
        assert_eq!(v["state"], "published");
        let publish_shipments = "/apis/shipments/versions/1.0.0/publish";
        t.post(publish_shipments)
            .token(&owner)
            .send()
            .await
            .problem(403);
        let v = t.post(publish_shipments).token(&other).send().await.ok(200);
        assert_eq!(v["state"], "published");
        // An owner may not create teams or APIs, declare systems of record, or manage
        // consumers, plans and tokens.
        t.post("/teams")
            .token(&owner)
            .json(json!({"name": "mine", "contact": "m@example.com"}))
            .send()
            .await
            .problem(403);
        t.post("/tokens")
            .token(&owner)
            .json(json!({"role": "admin"}))
            .send()
            .await
            .problem(403);
    }
);

admin_test!(
    deprecate_checks_the_role_before_the_input,
    |t: App| async move {
        let w = world(&t).await;
        publish(&t, "inventory", "1.0.0").await;
        let path = "/apis/inventory/versions/1.0.0/deprecate";
        for who in [Who::Auditor, Who::Architect, Who::OtherOwner] {
            let (token, _) = w.of(who);
            for body in [
                json!({"sunset": "2001-01-01T00:00:00Z"}),
                json!({"sunset": days_from_now(200), "successor": "9.9.9"}),
                json!({"sunset": days_from_now(200), "link": "ftp://x"}),
            ] {
                t.post(path)
                    .token(&token)
                    .json(body.clone())
                    .send()
                    .await
                    .problem(403);
            }
        }
    }
);

// -- 404 ---------------------------------------------------------------------------------

admin_test!(
    unknown_teams_apis_versions_consumers_plans_and_keys_are_404,
    |t: App| async move {
        world(&t).await;
        let before = t.log_len().await;
        let spec_body = ("application/yaml", spec("1.0.0"));
        let checks: Vec<(Method, &str, Option<Value>)> = vec![
            (Method::GET, "/teams/ghost", None),
            (Method::GET, "/apis/ghost", None),
            (Method::GET, "/apis/ghost/versions", None),
            (Method::GET, "/apis/ghost/versions/1.0.0", None),
            (Method::GET, "/apis/ghost/versions/1.0.0/spec", None),
            (Method::GET, "/apis/inventory/versions/9.9.9", None),
            (Method::GET, "/apis/inventory/versions/9.9.9/spec", None),
            (
                Method::POST,
                "/apis/ghost/versions/1.0.0/publish",
                Some(json!({})),
            ),
            (
                Method::POST,
                "/apis/inventory/versions/9.9.9/publish",
                Some(json!({})),
            ),
            (
                Method::POST,
                "/apis/inventory/versions/9.9.9/deprecate",
                Some(json!({"sunset": days_from_now(200)})),
            ),
            (
                Method::POST,
                "/apis/inventory/versions/9.9.9/retire",
                Some(json!({})),
            ),
            (
                Method::PUT,
                "/apis/ghost/majors/1/upstream",
                Some(json!({"targets": [{"url": "mock://", "weight": 1}]})),
            ),
            (Method::GET, "/apis/ghost/majors/1/upstream", None),
            (Method::GET, "/apis/inventory/majors/7/upstream", None),
            (Method::GET, "/apis/ghost/upstreams", None),
            (
                Method::PUT,
                "/apis/ghost/systems-of-record",
                Some(json!([{"entity": "x", "system": "ERP"}])),
            ),
            (Method::GET, "/apis/ghost/systems-of-record", None),
            (Method::GET, "/plans/ghost", None),
            (Method::GET, "/consumers/ghost", None),
            (Method::POST, "/consumers/ghost/keys", Some(json!({}))),
            (Method::GET, "/consumers/ghost/keys", None),
            (Method::DELETE, "/consumers/ghost/keys/k1", None),
            (Method::DELETE, "/consumers/edi/keys/no-such-key", None),
            (
                Method::POST,
                "/consumers/ghost/subscriptions",
                Some(json!({"api": "inventory", "plan": "basic"})),
            ),
            (
                Method::POST,
                "/consumers/edi/subscriptions",
                Some(json!({"api": "ghost", "plan": "basic"})),
            ),
            (
                Method::POST,
                "/consumers/edi/subscriptions",
                Some(json!({"api": "inventory", "plan": "ghost"})),
            ),
            (Method::GET, "/consumers/ghost/subscriptions", None),
            (
                Method::DELETE,
                "/consumers/edi/subscriptions/inventory",
                None,
            ),
            (Method::DELETE, "/consumers/edi/subscriptions/ghost", None),
            (
                Method::POST,
                "/apis",
                Some(json!({"slug": "new", "title": "New", "team": "ghost"})),
            ),
            (
                Method::POST,
                "/tokens",
                Some(json!({"role": "owner", "team": "ghost"})),
            ),
        ];
        for (method, path, body) in checks {
            let mut call = t.call(method.clone(), path);
            if let Some(b) = body {
                call = call.json(b);
            }
            let p = call.send().await.problem(404);
            assert_eq!(
                p["type"], "urn:gatehouse:problem:not-found",
                "{method} {path}"
            );
        }
        t.post("/apis/ghost/versions")
            .body(spec_body.0, spec_body.1)
            .send()
            .await
            .problem(404);
        publish(&t, "inventory", "1.0.0").await;
        let p = t
            .post("/apis/inventory/versions/1.0.0/deprecate")
            .json(json!({"sunset": days_from_now(200), "successor": "9.9.9"}))
            .send()
            .await
            .problem(404);
        assert!(p["detail"].as_str().unwrap().contains("9.9.9"), "{p}");
        assert_eq!(
            t.log_len().await,
            before + 1,
            "only the publish was written"
        );
    }
);

// -- 409 ---------------------------------------------------------------------------------

admin_test!(
    duplicate_teams_apis_versions_consumers_and_plans_are_409,
    |t: App| async move {
        world(&t).await;
        let before = t.log_len().await;
        let duplicates = [
            (
                "/teams",
                json!({"name": "logistics", "contact": "again@example.com"}),
            ),
            (
                "/apis",
                json!({"slug": "inventory", "title": "Again", "team": "logistics"}),
            ),
            ("/consumers", json!({"name": "edi"})),
            (
                "/plans",
                json!({"name": "basic", "rate": {"requests": 1, "per_seconds": 1}}),
            ),
        ];
        for (path, body) in duplicates {
            let p = t.post(path).json(body).send().await.problem(409);
            assert_eq!(p["type"], "urn:gatehouse:problem:conflict", "{path}");
            assert!(
                p["detail"].as_str().unwrap().contains("already exists"),
                "{p}"
            );
        }
        let p = t
            .post("/apis/inventory/versions")
            .body("application/yaml", spec("1.0.0"))
            .send()
            .await
            .problem(409);
        assert!(p["detail"].as_str().unwrap().contains("1.0.0"), "{p}");
        assert_eq!(t.log_len().await, before);
    }
);

admin_test!(
    a_system_of_record_claimed_by_another_api_is_409,
    |t: App| async move {
        world(&t).await;
        t.put("/apis/inventory/systems-of-record")
            .json(json!([{"entity": "inventory-balance", "system": "WMS"}]))
            .send()
            .await
            .ok(200);
        let p = t
            .put("/apis/shipments/systems-of-record")
            .json(json!([{"entity": "inventory-balance", "system": "TMS"}]))
            .send()
            .await
            .problem(409);
        assert!(p["detail"].as_str().unwrap().contains("inventory"), "{p}");
    }
);

// -- lifecycle ---------------------------------------------------------------------------

admin_test!(
    versions_move_from_draft_to_published_deprecated_retired_and_never_back,
    |t: App| async move {
        world(&t).await;
        let base = "/apis/inventory/versions/1.0.0";
        assert_eq!(t.get(base).send().await.ok(200)["state"], "draft");
        t.post(&format!("{base}/deprecate"))
            .json(json!({"sunset": days_from_now(200)}))
            .send()
            .await
            .problem(409);
        t.post(&format!("{base}/retire")).send().await.problem(409);
        let v = t.post(&format!("{base}/publish")).send().await.ok(200);
        assert_eq!(v["state"], "published");
        let p = t.post(&format!("{base}/publish")).send().await.problem(409);
        assert!(p["detail"].as_str().unwrap().contains("published"), "{p}");
        t.post(&format!("{base}/retire")).send().await.problem(409);

        publish(&t, "inventory", "1.1.0").await;
        let sunset = days_from_now(200);
        let v = t
            .post(&format!("{base}/deprecate"))
            .json(json!({"sunset": sunset, "successor": "1.1.0",
                         "link": "https://example.com/inventory-v1", "reason": "replaced"}))
            .send()
            .await
            .ok(200);
        assert_eq!(v["state"], "deprecated");
        assert_eq!(v["successor"], "1.1.0");
        assert_eq!(v["deprecation_link"], "https://example.com/inventory-v1");
        assert!(v["deprecated_at"].is_string());
        let sunset_at = OffsetDateTime::parse(v["sunset_at"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(
            sunset_at.unix_timestamp(),
            OffsetDateTime::parse(&sunset, &Rfc3339)
                .unwrap()
                .unix_timestamp()
        );
        // Deprecating again moves the dates, and keeps the first deprecation time.
        let later = t
            .post(&format!("{base}/deprecate"))
            .json(json!({"sunset": days_from_now(300), "successor": "1.1.0"}))
            .send()
            .await
            .ok(200);
        assert_eq!(later["state"], "deprecated");
        assert_eq!(ms(&later["deprecated_at"]), ms(&v["deprecated_at"]));
        assert_ne!(later["sunset_at"], v["sunset_at"]);

        let v = t
            .post(&format!("{base}/retire"))
            .json(json!({"force": true, "reason": "retired before the sunset in a test"}))
            .send()
            .await
            .ok(200);
        assert_eq!(v["state"], "retired");
        t.post(&format!("{base}/publish")).send().await.problem(409);
        t.post(&format!("{base}/retire")).send().await.problem(409);
        t.post(&format!("{base}/deprecate"))
            .json(json!({"sunset": days_from_now(200)}))
            .send()
            .await
            .problem(409);
        let api = t.get("/apis/inventory").send().await.ok(200);
        let states: Vec<(String, String)> = api["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["version"].as_str().unwrap().to_owned(),
                    v["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("1.0.0".to_owned(), "retired".to_owned()),
                ("1.1.0".to_owned(), "published".to_owned())
            ]
        );
    }
);

// -- 422: input validation ---------------------------------------------------------------

admin_test!(
    invalid_input_is_422_with_the_field_it_concerns,
    |t: App| async move {
        world(&t).await;
        publish(&t, "inventory", "1.0.0").await;
        let before = t.log_len().await;
        let sunset = days_from_now(200);
        let cases: Vec<(Method, &str, Value, &str)> = vec![
            (
                Method::POST,
                "/teams",
                json!({"name": "Inventory", "contact": "x@example.com"}),
                "/name",
            ),
            (
                Method::POST,
                "/teams",
                json!({"name": "a_b", "contact": "x@example.com"}),
                "/name",
            ),
            (
                Method::POST,
                "/teams",
                json!({"name": "", "contact": "x@example.com"}),
                "/name",
            ),
            (
                Method::POST,
                "/teams",
                json!({"name": "ends-", "contact": "x@example.com"}),
                "/name",
            ),
            (
                Method::POST,
                "/teams",
                json!({"name": "ok", "contact": "  "}),
                "/contact",
            ),
            (
                Method::POST,
                "/apis",
                json!({"slug": "Bad Slug", "title": "T", "team": "logistics"}),
                "/slug",
            ),
            (
                Method::POST,
                "/apis",
                json!({"slug": "1st", "title": "T", "team": "logistics"}),
                "/slug",
            ),
            (
                Method::POST,
                "/apis",
                json!({"slug": "fine", "title": " ", "team": "logistics"}),
                "/title",
            ),
            (Method::POST, "/consumers", json!({"name": "EDI"}), "/name"),
            (
                Method::POST,
                "/plans",
                json!({"name": "zero", "rate": {"requests": 0, "per_seconds": 1}}),
                "/rate",
            ),
            (
                Method::POST,
                "/plans",
                json!({"name": "zero", "rate": {"requests": 1, "per_seconds": 0}}),
                "/rate",
            ),
            (
                Method::POST,
                "/plans",
                json!({"name": "q", "rate": {"requests": 1, "per_seconds": 1},
                       "quota": {"requests": 0, "period": "month"}}),
                "/quota/requests",
            ),
            (
                Method::POST,
                "/plans",
                json!({"name": "Big Plan", "rate": {"requests": 1, "per_seconds": 1}}),
                "/name",
            ),
            (
                Method::PUT,
                "/apis/inventory/majors/1/upstream",
                json!({"targets": []}),
                "/targets",
            ),
            (
                Method::PUT,
                "/apis/inventory/majors/1/upstream",
                json!({"targets": [{"url": "ftp://erp", "weight": 1}]}),
                "/targets/0/url",
            ),
            (
                Method::PUT,
                "/apis/inventory/majors/1/upstream",
                json!({"targets": [{"url": "http://user:pw@erp", "weight": 1}]}),
                "/targets/0/url",
            ),
            (
                Method::PUT,
                "/apis/inventory/majors/1/upstream",
                json!({"targets": [{"url": "mock://", "weight": 0}]}),
                "/targets",
            ),
            (
                Method::PUT,
                "/apis/inventory/systems-of-record",
                json!([{"entity": "Stock Level", "system": "WMS"}]),
                "/0/entity",
            ),
            (
                Method::PUT,
                "/apis/inventory/systems-of-record",
                json!([{"entity": "stock", "system": ""}]),
                "/0/system",
            ),
            (
                Method::PUT,
                "/apis/inventory/systems-of-record",
                json!([{"entity": "stock", "system": "WMS"}, {"entity": "stock", "system": "ERP"}]),
                "/1/entity",
            ),
            (
                Method::POST,
                "/consumers/edi/subscriptions",
                json!({"api": "inventory", "plan": "basic", "scopes": ["inventory read"]}),
                "/scopes/0",
            ),
            (
                Method::POST,
                "/consumers/edi/keys",
                json!({"expires_at": "2001-01-01T00:00:00Z"}),
                "/expires_at",
            ),
            (Method::POST, "/tokens", json!({"role": "owner"}), "/team"),
            (
                Method::POST,
                "/tokens",
                json!({"role": "auditor", "team": "logistics"}),
                "/team",
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/deprecate",
                json!({"sunset": "2001-01-01T00:00:00Z"}),
                "/sunset",
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/deprecate",
                json!({"sunset": sunset, "link": "ftp://docs"}),
                "/link",
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/deprecate",
                json!({"sunset": sunset, "brownouts": [
                    {"start": days_from_now(20), "end": days_from_now(10)}]}),
                "/brownouts/0",
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/deprecate",
                json!({"sunset": sunset, "brownouts": [
                    {"start": days_from_now(20), "end": days_from_now(400)}]}),
                "/brownouts/0",
            ),
        ];
        for (method, path, body, pointer) in cases {
            let p = t
                .call(method.clone(), path)
                .json(body.clone())
                .send()
                .await
                .problem(422);
            assert_eq!(
                p["type"], "urn:gatehouse:problem:unprocessable",
                "{path} {body}"
            );
            assert_eq!(p["errors"][0]["in"], "body", "{path} {body}: {p}");
            assert_eq!(p["errors"][0]["pointer"], pointer, "{path} {body}: {p}");
        }
        assert_eq!(t.log_len().await, before, "an invalid write was logged");
    }
);

// -- 400: malformed bodies and bad query strings ----------------------------------------

admin_test!(
    malformed_json_bodies_are_400_problems,
    |t: App| async move {
        world(&t).await;
        let before = t.log_len().await;
        let cases: Vec<(Method, &str, Vec<u8>)> = vec![
            (Method::POST, "/teams", br#"{"name": "x""#.to_vec()),
            (Method::POST, "/teams", b"not json".to_vec()),
            (Method::POST, "/teams", b"".to_vec()),
            (Method::POST, "/teams", b"[]".to_vec()),
            (
                Method::POST,
                "/teams",
                br#"{"name": 7, "contact": "x"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/teams",
                br#"{"name": "x", "contact": "y", "colour": "red"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/teams",
                b"{\"name\": \"\xff\", \"contact\": \"y\"}".to_vec(),
            ),
            (
                Method::POST,
                "/apis",
                br#"{"slug": "x", "title": "X", "team": "logistics", "owner": 1}"#.to_vec(),
            ),
            (Method::POST, "/consumers", br#"{"name": null}"#.to_vec()),
            (
                Method::POST,
                "/plans",
                br#"{"name": "p", "rate": {"requests": -1, "per_seconds": 1}}"#.to_vec(),
            ),
            (
                Method::POST,
                "/plans",
                br#"{"name": "p", "rate": {"requests": 1, "per_seconds": 1, "speed": 2}}"#.to_vec(),
            ),
            (
                Method::POST,
                "/tokens",
                br#"{"role": "superuser"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/consumers/edi/keys",
                br#"{"expires_at": "tomorrow"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/consumers/edi/subscriptions",
                br#"{"api": "inventory", "plan": "basic", "majors": "all"}"#.to_vec(),
            ),
            (
                Method::PUT,
                "/apis/inventory/majors/1/upstream",
                br#"{"targets": [{"url": "mock://", "weight": 1, "tls": true}]}"#.to_vec(),
            ),
            (
                Method::PUT,
                "/apis/inventory/systems-of-record",
                br#"{"entity": "x"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/publish",
                br#"{"why": "x"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/apis/inventory/versions/1.0.0/deprecate",
                br#"{"sunset": "soon"}"#.to_vec(),
            ),
            (
                Method::POST,
                "/apply",
                br#"{"catalog": {"teams": "all"}, "specs": {}}"#.to_vec(),
            ),
            (
                Method::POST,
                "/apply",
                br#"{"catalog": {}, "specs": {}, "extra": 1}"#.to_vec(),
            ),
        ];
        for (method, path, body) in cases {
            let shown = String::from_utf8_lossy(&body).into_owned();
            let p = t
                .call(method.clone(), path)
                .body("application/json", body)
                .send()
                .await
                .problem(400);
            assert_eq!(
                p["type"], "urn:gatehouse:problem:bad-request",
                "{path} {shown}"
            );
        }
        assert_eq!(t.log_len().await, before);
    }
);

admin_test!(
    bad_query_strings_and_cursors_are_400_problems_naming_the_parameter,
    |t: App| async move {
        world(&t).await;
        let cases = [
            ("/teams?limit=many", "query"),
            ("/teams?limit=-1", "query"),
            ("/apis?limit=1.5", "query"),
            ("/consumers?limit=99999999999", "query"),
            ("/teams?cursor=not%20a%20cursor!", "cursor"),
            ("/apis?cursor=_w", "cursor"),
            ("/consumers?cursor=%2F%2F%2F", "cursor"),
            ("/audit/changes?cursor=YWJj", "cursor"),
            ("/audit/changes?cursor=***", "cursor"),
            ("/audit/changes?from=yesterday", "from"),
            ("/audit/changes?to=2026-13-45", "to"),
            ("/audit/changes?limit=x", "query"),
            ("/apply?dry_run=maybe", "query"),
        ];
        for (path, parameter) in cases {
            let call = if path.starts_with("/apply") {
                t.post(path).json(json!({"catalog": {}, "specs": {}}))
            } else {
                t.get(path)
            };
            let p = call.send().await.problem(400);
            assert_eq!(p["type"], "urn:gatehouse:problem:bad-request", "{path}");
            assert_eq!(p["errors"][0]["in"], "query", "{path}: {p}");
            assert_eq!(p["errors"][0]["pointer"], parameter, "{path}: {p}");
        }
        for method in [Method::GET, Method::PUT] {
            let p = t
                .call(method, "/apis/inventory/majors/one/upstream")
                .json(json!({"targets": [{"url": "mock://", "weight": 1}]}))
                .send()
                .await
                .problem(400);
            assert_eq!(p["errors"][0]["pointer"], "major", "{p}");
        }
    }
);

// -- 413 ---------------------------------------------------------------------------------

admin_test!(bodies_over_their_limit_are_413, |t: App| async move {
    world(&t).await;
    let before = t.log_len().await;
    // A spec over the default limit: a valid start, then padding in a comment.
    let mut big = spec("1.5.0");
    big.extend(b"# ");
    big.resize(
        gatehouse_policies::document::Limits::default().max_bytes + 1,
        b'x',
    );
    let p = t
        .post("/apis/inventory/versions")
        .body("application/yaml", big)
        .send()
        .await
        .problem(413);
    assert_eq!(p["type"], "urn:gatehouse:problem:payload-too-large");
    let mut json_body = br#"{"name": "big", "contact": ""#.to_vec();
    json_body.resize(1024 * 1024 + 1, b'x');
    t.post("/teams")
        .body("application/json", json_body)
        .send()
        .await
        .problem(413);
    assert_eq!(t.log_len().await, before);
});

// -- pagination --------------------------------------------------------------------------

admin_test!(
    lists_walk_to_the_end_with_limit_and_next_cursor,
    |t: App| async move {
        for i in 1..=7 {
            let name = format!("team-{i:02}");
            t.post("/teams")
                .json(json!({"name": name, "contact": "t@example.com"}))
                .send()
                .await
                .ok(201);
            t.post("/apis")
                .json(json!({"slug": format!("api-{i:02}"), "title": "T", "team": name}))
                .send()
                .await
                .ok(201);
            t.post("/consumers")
                .json(json!({"name": format!("consumer-{i:02}")}))
                .send()
                .await
                .ok(201);
        }
        for (path, key, prefix) in [
            ("/teams", "name", "team"),
            ("/apis", "slug", "api"),
            ("/consumers", "name", "consumer"),
        ] {
            let pages = walk(&t, path, 3).await;
            let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
            assert_eq!(sizes, [3, 3, 1], "{path}");
            let all: Vec<String> = pages.iter().flat_map(|p| names(p, key)).collect();
            let want: Vec<String> = (1..=7).map(|i| format!("{prefix}-{i:02}")).collect();
            assert_eq!(all, want, "{path}");
            // A limit that divides the list ends on an empty page without a cursor.
            let pages = walk(&t, path, 7).await;
            assert_eq!(
                pages.iter().map(Vec::len).collect::<Vec<_>>(),
                [7, 0],
                "{path}"
            );
            let one = t.get(&format!("{path}?limit=1000")).send().await.ok(200);
            assert_eq!(one["items"].as_array().unwrap().len(), 7);
            assert_eq!(one["next_cursor"], Value::Null);
        }
        // The change log pages by sequence: 1 bootstrap token + 21 writes.
        let pages = walk(&t, "/audit/changes", 5).await;
        let seqs: Vec<u64> = pages
            .iter()
            .flatten()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=22).collect::<Vec<u64>>());
        assert_eq!(pages.len(), 5);
    }
);

// -- spec ingest -------------------------------------------------------------------------

admin_test!(
    specs_in_openapi_3_0_and_3_1_as_json_and_yaml_are_stored_and_served_byte_for_byte,
    |t: App| async move {
        world(&t).await;
        let cases: [(&str, &str, &str, Vec<u8>); 4] = [
            (
                "3.0.3",
                "application/yaml",
                "2.0.0",
                spec_yaml_of("3.0.3", "2.0.0"),
            ),
            (
                "3.0.3",
                "application/json",
                "3.0.0",
                spec_json_of("3.0.3", "3.0.0"),
            ),
            (
                "3.1.0",
                "application/yaml",
                "4.0.0",
                spec_yaml_of("3.1.0", "4.0.0"),
            ),
            (
                "3.1.0",
                "application/json",
                "5.0.0-rc.1",
                spec_json_of("3.1.0", "5.0.0-rc.1"),
            ),
        ];
        for (openapi, content_type, version, bytes) in cases {
            let reply = t
                .post("/apis/inventory/versions")
                .body(content_type, bytes.clone())
                .send()
                .await;
            let location = reply.header("location").map(str::to_owned);
            let v = reply.ok(201);
            assert_eq!(v["version"], version, "{openapi} {content_type}");
            let major: u64 = version[..1].parse().unwrap();
            assert_eq!(v["major"], major);
            assert_eq!(v["state"], "draft");
            let path = format!("/apis/inventory/versions/{version}");
            assert_eq!(location.as_deref(), Some(path.as_str()));

            let served = t.get(&format!("{path}/spec")).send().await;
            assert_eq!(served.status, 200);
            assert_eq!(
                served.body, bytes,
                "{openapi} {content_type}: not byte for byte"
            );
            assert_eq!(served.header("content-type"), Some(content_type));
            let sha = sha256_hex(&bytes);
            assert_eq!(served.header("etag"), Some(format!("\"{sha}\"").as_str()));
            let view = t.get(&path).send().await.ok(200);
            assert_eq!(view["sha256"], sha);
            assert_eq!(view["content_type"], content_type);
            assert!(
                view.get("spec_raw").is_none(),
                "the view leaves the bytes out"
            );
        }
    }
);

admin_test!(
    a_spec_without_content_type_is_stored_as_sent_and_typed_by_its_first_byte,
    |t: App| async move {
        world(&t).await;
        let mut with_bom = "\u{feff}".as_bytes().to_vec();
        with_bom.extend(spec_yaml_of("3.1.0", "6.0.0"));
        let cases = [
            (spec_json_of("3.1.0", "2.0.0"), "2.0.0", "application/json"),
            (spec_yaml_of("3.0.3", "3.0.0"), "3.0.0", "application/yaml"),
            (with_bom, "6.0.0", "application/yaml"),
        ];
        for (bytes, version, content_type) in cases {
            let v = t
                .post("/apis/inventory/versions")
                .raw(bytes.clone())
                .send()
                .await
                .ok(201);
            assert_eq!(v["version"], version);
            let served = t
                .get(&format!("/apis/inventory/versions/{version}/spec"))
                .send()
                .await;
            assert_eq!(served.body, bytes, "{version}");
            assert_eq!(served.header("content-type"), Some(content_type));
        }
        let v = t
            .post("/apis/inventory/versions")
            .body("application/yaml; charset=utf-8", spec("7.0.0"))
            .send()
            .await
            .ok(201);
        assert_eq!(v["major"], 7);
    }
);

/// `levels` nested one-element sequences: `[[[…]]]`.
fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// A YAML "billion laughs": nine levels of ten aliases each, 10^9 nodes expanded.
fn alias_bomb() -> Vec<u8> {
    let mut s = String::from("openapi: 3.1.0\ninfo: {title: bomb, version: 1.0.0}\npaths: {}\n");
    s.push_str("x-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 10].join(",");
        s.push_str(&format!("x-{next}: &{next} [{refs}]\n"));
    }
    s.into_bytes()
}

admin_test!(
    bad_specs_are_refused_with_a_4xx_problem_and_nothing_is_written,
    |t: App| async move {
        world(&t).await;
        let before = t.log_len().await;
        let versions_before = t.get("/apis/inventory/versions").send().await.ok(200);
        let mut invalid_utf8 = spec("2.0.0");
        invalid_utf8.extend(b"x-note: \"caf\xe9\"\n");
        let mut duplicate_yaml = spec("2.0.0");
        duplicate_yaml.extend(b"components: {}\n");
        let duplicate_json = br#"{"openapi": "3.1.0", "info": {"title": "t", "version": "2.0.0"},
            "paths": {}, "paths": {}}"#
            .to_vec();
        let deep = format!(
            "{{\"openapi\": \"3.1.0\", \"info\": {{\"title\": \"t\", \"version\": \"2.0.0\"}}, \
             \"paths\": {{}}, \"x-deep\": {}}}",
            nested(300)
        )
        .into_bytes();
        let mut deep_yaml = spec("2.0.0");
        deep_yaml.extend(b"x-deep:\n");
        for level in 1..=200 {
            deep_yaml.extend(format!("{}k:\n", "  ".repeat(level)).into_bytes());
        }
        let external = String::from_utf8(spec("2.0.0"))
            .unwrap()
            .replace(
                "schema: {type: object}\n        '404'",
                "schema: {$ref: 'common.yaml#/components/schemas/Item'}\n        '404'",
            )
            .into_bytes();
        assert_ne!(external, spec("2.0.0"));
        let unresolved = String::from_utf8(spec("2.0.0"))
            .unwrap()
            .replace(
                "schema: {type: object}\n        '404'",
                "schema: {$ref: '#/components/schemas/Missing'}\n        '404'",
            )
            .into_bytes();
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            (
                "Swagger 2.0",
                b"swagger: '2.0'\ninfo: {title: old, version: 1.0.0}\npaths: {}\n".to_vec(),
                422,
                "Swagger",
            ),
            ("external $ref", external, 422, "external"),
            ("unresolved $ref", unresolved, 422, "does not exist"),
            ("alias bomb", alias_bomb(), 422, "alias"),
            // serde_json's own recursion limit (128) answers before the loader's depth
            // limit does; either way a clear 422.
            (
                "excessive JSON nesting",
                deep,
                422,
                "nests deeper|recursion limit",
            ),
            ("excessive YAML nesting", deep_yaml, 422, "nests deeper"),
            ("invalid UTF-8", invalid_utf8, 422, "UTF-8"),
            ("duplicate YAML key", duplicate_yaml, 422, "duplicate key"),
            ("duplicate JSON key", duplicate_json, 422, "duplicate key"),
            ("version v2", spec("v2"), 422, "semantic versioning"),
            ("version 2.0", spec("2.0"), 422, "semantic versioning"),
            ("empty body", Vec::new(), 422, "empty"),
            (
                "not OpenAPI",
                b"{\"hello\": \"world\"}".to_vec(),
                422,
                "openapi",
            ),
            (
                "OpenAPI 4",
                spec_yaml_of("4.0.0", "2.0.0"),
                422,
                "not supported",
            ),
            (
                "OpenAPI 2 in an openapi field",
                spec_yaml_of("2.0", "2.0.0"),
                422,
                "not supported",
            ),
            (
                "a list",
                b"- openapi\n- 3.1.0\n".to_vec(),
                422,
                "not an object",
            ),
            ("broken YAML", b"openapi: [3.1.0\n".to_vec(), 422, "YAML"),
            ("broken JSON", b"{\"openapi\": ".to_vec(), 422, "JSON"),
        ];
        for (name, bytes, status, needle) in cases {
            let started = Instant::now();
            let p = t
                .post("/apis/inventory/versions")
                .body("application/yaml", bytes)
                .send()
                .await
                .client_error();
            let took = started.elapsed();
            assert_eq!(p["status"], status, "{name}: {p}");
            assert_eq!(p["type"], "urn:gatehouse:problem:invalid-spec", "{name}");
            let detail = p["detail"].as_str().unwrap();
            assert!(
                needle
                    .split('|')
                    .any(|n| detail.to_lowercase().contains(&n.to_lowercase())),
                "{name}: `{needle}` not in `{detail}`"
            );
            // Every refusal is quick. Expanded, the alias bomb would be 10^9 nodes: minutes
            // and gigabytes; the loader counts alias sizes instead (its unit test holds it
            // under 2 s). The bound here is loose because the machine may be busy.
            assert!(
                took < Duration::from_secs(10),
                "{name} took {took:?} to refuse"
            );
        }
        let p = t
            .post("/apis/inventory/versions")
            .body("application/yaml", spec("v2"))
            .send()
            .await
            .problem(422);
        assert_eq!(p["errors"][0]["pointer"], "/info/version");
        let p = t
            .post("/apis/inventory/versions")
            .body(
                "application/yaml",
                &b"swagger: '2.0'\ninfo: {title: o, version: 1.0.0}\n"[..],
            )
            .send()
            .await
            .problem(422);
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("OpenAPI 3.0 and 3.1"),
            "{p}"
        );
        assert_eq!(t.log_len().await, before, "a refused spec was logged");
        assert_eq!(
            t.get("/apis/inventory/versions").send().await.ok(200),
            versions_before
        );
    }
);

// -- teams, APIs, upstreams, systems of record, plans ------------------------------------

admin_test!(
    teams_and_apis_are_created_read_and_listed,
    |t: App| async move {
        let team = t
            .post("/teams")
            .json(json!({"name": "inventory-platform", "contact": "inv@example.com"}))
            .send()
            .await
            .ok(201);
        assert_eq!(team["name"], "inventory-platform");
        assert_eq!(team["contact"], "inv@example.com");
        let read = t.get("/teams/inventory-platform").send().await.ok(200);
        assert_eq!(
            (&read["name"], &read["contact"]),
            (&team["name"], &team["contact"])
        );
        assert_eq!(ms(&read["created_at"]), ms(&team["created_at"]));
        let api = t
            .post("/apis")
            .json(
                json!({"slug": "inventory", "title": "Inventory", "team": "inventory-platform",
                         "description": "Stock.", "version_header": true, "default_major": 2}),
            )
            .send()
            .await
            .ok(201);
        assert_eq!(api["version_header"], true);
        assert_eq!(api["default_major"], 2);
        let shown = t.get("/apis/inventory").send().await.ok(200);
        assert_eq!(shown["title"], "Inventory");
        assert_eq!(shown["description"], "Stock.");
        assert_eq!(shown["versions"], json!([]));
        register(&t, "inventory", "2.0.0").await;
        let shown = t.get("/apis/inventory").send().await.ok(200);
        assert_eq!(shown["versions"][0]["version"], "2.0.0");
        let listed = t.get("/apis").send().await.ok(200);
        assert_eq!(
            names(listed["items"].as_array().unwrap(), "slug"),
            ["inventory"]
        );
        let versions = t.get("/apis/inventory/versions").send().await.ok(200);
        assert_eq!(versions["items"][0]["state"], "draft");
        assert_eq!(versions["next_cursor"], Value::Null);
    }
);

admin_test!(
    upstreams_are_put_read_and_listed_per_major,
    |t: App| async move {
        world(&t).await;
        let up = t
            .put("/apis/inventory/majors/v1/upstream")
            .json(
                json!({"targets": [{"url": "http://127.0.0.1:9000/erp", "weight": 90},
                                     {"url": "mock://", "weight": 10}],
                         "connect_timeout_ms": 250, "read_timeout_ms": 999999999}),
            )
            .send()
            .await
            .ok(200);
        assert_eq!(up["major"], 1);
        assert_eq!(up["connect_timeout_ms"], 250);
        assert_eq!(up["read_timeout_ms"], 300_000, "read timeouts are capped");
        assert_eq!(
            t.get("/apis/inventory/majors/1/upstream")
                .send()
                .await
                .ok(200),
            up
        );
        t.put("/apis/inventory/majors/2/upstream")
            .json(json!({"targets": [{"url": "mock://", "weight": 1}]}))
            .send()
            .await
            .ok(200);
        let listed = t.get("/apis/inventory/upstreams").send().await.ok(200);
        let majors: Vec<u64> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["major"].as_u64().unwrap())
            .collect();
        assert_eq!(majors, [1, 2]);
        t.get("/apis/shipments/majors/1/upstream")
            .send()
            .await
            .problem(404);
        assert_eq!(
            t.get("/apis/shipments/upstreams").send().await.ok(200)["items"],
            json!([])
        );
    }
);

admin_test!(
    systems_of_record_are_declared_per_api_and_listed_with_filters,
    |t: App| async move {
        world(&t).await;
        t.put("/apis/inventory/systems-of-record")
            .json(json!([{"entity": "inventory-balance", "system": "WMS"},
                         {"entity": "reorder-point", "system": "ERP"}]))
            .send()
            .await
            .ok(200);
        t.put("/apis/shipments/systems-of-record")
            .json(json!([{"entity": "shipment-milestones", "system": "TMS"}]))
            .send()
            .await
            .ok(200);
        let mine = t
            .get("/apis/inventory/systems-of-record")
            .send()
            .await
            .ok(200);
        assert_eq!(
            names(mine["items"].as_array().unwrap(), "entity"),
            ["inventory-balance", "reorder-point"]
        );
        let all = t.get("/systems-of-record").send().await.ok(200);
        assert_eq!(all["items"].as_array().unwrap().len(), 3);
        let wms = t.get("/systems-of-record?system=wms").send().await.ok(200);
        assert_eq!(
            wms["items"],
            json!([{"entity": "inventory-balance", "system": "WMS", "api": "inventory"}])
        );
        let one = t
            .get("/systems-of-record?entity=shipment-milestones")
            .send()
            .await
            .ok(200);
        assert_eq!(one["items"][0]["api"], "shipments");
        // A PUT replaces the API's declarations; the freed entity may be claimed elsewhere.
        t.put("/apis/inventory/systems-of-record")
            .json(json!([]))
            .send()
            .await
            .ok(200);
        t.put("/apis/shipments/systems-of-record")
            .json(json!([{"entity": "inventory-balance", "system": "TMS"}]))
            .send()
            .await
            .ok(200);
    }
);

admin_test!(plans_are_created_read_and_listed, |t: App| async move {
    let mut plan = json!({"name": "partner", "rate": {"requests": 20, "per_seconds": 1, "burst": 10},
                          "quota": {"requests": 100000, "period": "month"}});
    let created = t.post("/plans").json(plan.clone()).send().await.ok(201);
    // The Redis failure mode is always shown; it defaults to fail-open.
    plan["on_redis_failure"] = json!("open");
    assert_eq!(created, plan);
    assert_eq!(t.get("/plans/partner").send().await.ok(200), plan);
    assert_eq!(t.get("/plans").send().await.ok(200)["items"], json!([plan]));
});

// -- consumers, keys, subscriptions, tokens ----------------------------------------------

admin_test!(
    an_api_key_is_shown_once_and_never_listed_and_can_be_revoked,
    |t: App| async move {
        world(&t).await;
        let reply = t
            .post("/consumers/portal/keys")
            .json(json!({"expires_at": days_from_now(30)}))
            .send()
            .await;
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let created = reply.ok(201);
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["key"].as_str().unwrap().to_owned();
        assert!(secret.len() >= 32, "a key worth its name: {secret}");
        assert!(created["expires_at"].is_string());

        let keys = t.get("/consumers/portal/keys").send().await;
        assert!(!keys.text().contains(&secret), "the key is listed");
        let keys = keys.ok(200);
        assert_eq!(keys["items"][0]["id"], id.as_str());
        assert!(keys["items"][0].get("key").is_none());
        assert!(keys["items"][0].get("hash").is_none());
        let consumer = t.get("/consumers/portal").send().await;
        assert!(
            !consumer.text().contains(&secret),
            "the consumer shows the key"
        );
        assert_eq!(consumer.ok(200)["keys"][0]["id"], id.as_str());
        let changes = serde_json::to_string(&t.changes().await).unwrap();
        assert!(!changes.contains(&secret), "the change log holds the key");

        t.delete(&format!("/consumers/portal/keys/{id}"))
            .send()
            .await
            .ok(204);
        let keys = t.get("/consumers/portal/keys").send().await.ok(200);
        assert!(keys["items"][0]["revoked_at"].is_string());
        t.delete(&format!("/consumers/edi/keys/{id}"))
            .send()
            .await
            .problem(404);
    }
);

admin_test!(
    consumers_and_subscriptions_are_created_read_replaced_and_deleted,
    |t: App| async move {
        world(&t).await;
        let c = t
            .post("/consumers")
            .json(json!({"name": "field-sales", "contact": "sales@example.com"}))
            .send()
            .await
            .ok(201);
        assert_eq!(c["contact"], "sales@example.com");
        let sub = t
            .post("/consumers/field-sales/subscriptions")
            .json(
                json!({"api": "inventory", "plan": "basic", "majors": [2, 1, 2],
                         "scopes": ["inventory:read"]}),
            )
            .send()
            .await
            .ok(201);
        assert_eq!(
            sub["majors"],
            json!([1, 2]),
            "majors are sorted and deduplicated"
        );
        let again = t
            .post("/consumers/field-sales/subscriptions")
            .json(json!({"api": "inventory", "plan": "basic", "majors": [1]}))
            .send()
            .await
            .ok(201);
        assert_eq!(again["majors"], json!([1]), "a subscription is replaced");
        let listed = t
            .get("/consumers/field-sales/subscriptions")
            .send()
            .await
            .ok(200);
        assert_eq!(listed["items"], json!([again]));
        let shown = t.get("/consumers/field-sales").send().await.ok(200);
        assert_eq!(shown["subscriptions"], json!([again]));
        assert_eq!(shown["keys"], json!([]));
        let all = t.get("/consumers").send().await.ok(200);
        assert_eq!(
            names(all["items"].as_array().unwrap(), "name"),
            ["edi", "field-sales", "portal"]
        );
        t.delete("/consumers/field-sales/subscriptions/inventory")
            .send()
            .await
            .ok(204);
        t.delete("/consumers/field-sales/subscriptions/inventory")
            .send()
            .await
            .problem(404);
        assert_eq!(
            t.get("/consumers/field-sales/subscriptions")
                .send()
                .await
                .ok(200)["items"],
            json!([])
        );
    }
);

admin_test!(
    tokens_are_issued_once_per_role_and_work_at_once,
    |t: App| async move {
        world(&t).await;
        let reply = t
            .post("/tokens")
            .json(json!({"role": "owner", "team": "logistics"}))
            .send()
            .await;
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let issued = reply.ok(201);
        assert_eq!(issued["role"], "owner");
        assert_eq!(issued["team"], "logistics");
        let secret = issued["token"].as_str().unwrap();
        t.get("/apis").token(secret).send().await.ok(200);
        let changes = serde_json::to_string(&t.changes().await).unwrap();
        assert!(!changes.contains(secret), "the change log holds the token");
        for role in ["admin", "architect", "auditor"] {
            let issued = t
                .post("/tokens")
                .json(json!({"role": role}))
                .send()
                .await
                .ok(201);
            assert_eq!(issued["team"], Value::Null);
            t.get("/teams")
                .token(issued["token"].as_str().unwrap())
                .send()
                .await
                .ok(200);
        }
    }
);

// -- the change log ----------------------------------------------------------------------

admin_test!(
    the_change_log_is_filtered_by_actor_action_target_and_time_and_verifies,
    |t: App| async move {
        let w = world(&t).await;
        let (architect, architect_id) = w.of(Who::Architect);
        t.post("/teams")
            .token(&architect)
            .json(json!({"name": "pricing", "contact": "p@example.com"}))
            .send()
            .await
            .ok(201);
        let mine = t
            .get(&format!("/audit/changes?actor={architect_id}"))
            .send()
            .await
            .ok(200);
        assert_eq!(mine["items"].as_array().unwrap().len(), 1);
        assert_eq!(mine["items"][0]["target"], "team/pricing");
        assert_eq!(mine["items"][0]["role"], "architect");
        assert!(mine["items"][0]["after_digest"].is_string());
        assert_eq!(mine["items"][0]["before_digest"], Value::Null);

        let versions = t
            .get("/audit/changes?action=version.create")
            .send()
            .await
            .ok(200);
        assert_eq!(
            names(versions["items"].as_array().unwrap(), "target"),
            ["inventory@1.0.0", "inventory@1.1.0"]
        );
        let by_target = t
            .get("/audit/changes?target=inventory%40")
            .send()
            .await
            .ok(200);
        assert_eq!(by_target["items"].as_array().unwrap().len(), 2);
        let future = t
            .get(&format!(
                "/audit/changes?from={}",
                days_from_now(1).replace('+', "%2B")
            ))
            .send()
            .await
            .ok(200);
        assert_eq!(future["items"], json!([]));
        let past = t.get("/audit/changes?to=2000-01-01").send().await.ok(200);
        assert_eq!(past["items"], json!([]));
        let everything = t.get("/audit/changes?from=2000-01-01").send().await.ok(200);
        assert_eq!(
            everything["items"].as_array().unwrap().len() as u64,
            t.log_len().await
        );

        let (auditor, _) = w.of(Who::Auditor);
        let report = t
            .get("/audit/changes/verify")
            .token(&auditor)
            .send()
            .await
            .ok(200);
        assert_eq!(report["ok"], true);
        let changes = t.changes().await;
        assert_eq!(report["entries"], changes.len() as u64);
        assert_eq!(report["head"], changes.last().unwrap()["hash"]);
    }
);

// -- catalog apply -----------------------------------------------------------------------

fn bundled_catalog() -> Bundle {
    catalog::load_bundle(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/catalog.yaml"))
        .unwrap()
}

async fn apply(t: &App, bundle: &Bundle, dry_run: bool) -> Reply {
    let path = if dry_run {
        "/apply?dry_run=true"
    } else {
        "/apply"
    };
    t.post(path)
        .json(serde_json::to_value(bundle).unwrap())
        .send()
        .await
}

admin_test!(
    apply_dry_run_changes_nothing_then_apply_creates_then_a_second_apply_changes_nothing,
    |t: App| async move {
        let bundle = bundled_catalog();
        let before = t.log_len().await;
        let plan = apply(&t, &bundle, true).await.ok(200);
        assert_eq!(plan["dry_run"], true);
        assert_eq!(plan["changed"], true);
        assert!(plan["steps"].as_array().unwrap().len() > 20, "{plan}");
        assert_eq!(t.log_len().await, before, "a dry run wrote");
        assert_eq!(t.get("/apis").send().await.ok(200)["items"], json!([]));

        let done = apply(&t, &bundle, false).await.ok(200);
        assert_eq!(done["dry_run"], false);
        assert_eq!(done["changed"], true);
        assert_eq!(
            done["steps"], plan["steps"],
            "the dry run predicted the apply"
        );
        let apis = t.get("/apis").send().await.ok(200);
        assert_eq!(
            names(apis["items"].as_array().unwrap(), "slug"),
            [
                "credit",
                "inventory",
                "orders",
                "pricing",
                "returns",
                "shipments"
            ]
        );
        let inventory = t.get("/apis/inventory").send().await.ok(200);
        let states: Vec<&str> = inventory["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["deprecated", "published"]);
        let written = t.log_len().await;
        assert!(written > before);

        for dry_run in [true, false] {
            let again = apply(&t, &bundle, dry_run).await.ok(200);
            assert_eq!(again["changed"], false, "{again}");
            assert_eq!(again["steps"], json!([]));
        }
        assert_eq!(t.log_len().await, written, "a second apply wrote");
    }
);

admin_test!(
    apply_makes_a_changed_contact_an_update,
    |t: App| async move {
        let mut bundle = bundled_catalog();
        apply(&t, &bundle, false).await.ok(200);
        bundle.catalog.teams[0].contact = "new-contact@northwind.example".into();
        bundle.catalog.consumers[0].contact = Some("new-portal@northwind.example".into());
        let team = bundle.catalog.teams[0].name.clone();
        let consumer = bundle.catalog.consumers[0].name.clone();
        let before = t.log_len().await;
        let done = apply(&t, &bundle, false).await.ok(200);
        assert_eq!(done["changed"], true);
        let steps: Vec<(String, String)> = done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["action"].as_str().unwrap().to_owned(),
                    s["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("update".to_owned(), format!("team/{team}")),
                ("update".to_owned(), format!("consumer/{consumer}")),
            ]
        );
        assert_eq!(t.log_len().await, before + 2);
        let actions: Vec<String> = t.changes().await[before as usize..]
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(actions, ["team.update", "consumer.update"]);
        assert_eq!(
            t.get(&format!("/teams/{team}")).send().await.ok(200)["contact"],
            "new-contact@northwind.example"
        );
    }
);

admin_test!(
    apply_refuses_a_spec_changed_under_the_same_version_and_writes_nothing,
    |t: App| async move {
        let mut bundle = bundled_catalog();
        apply(&t, &bundle, false).await.ok(200);
        let before = t.log_len().await;
        // A contact change the reconciler would write first, then a spec whose bytes
        // changed while its info.version did not.
        bundle.catalog.teams[0].contact = "changed@northwind.example".into();
        let orders = bundle.specs.get_mut("orders/v1.yaml").unwrap();
        orders.push_str("\n# an edit that keeps info.version\n");
        for dry_run in [true, false] {
            let p = apply(&t, &bundle, dry_run).await.problem(409);
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.contains("orders@1.3.0"), "{detail}");
            assert!(detail.contains("info.version"), "{detail}");
        }
        assert_eq!(t.log_len().await, before, "a refused apply wrote");
        let team = &bundle.catalog.teams[0].name;
        assert_ne!(
            t.get(&format!("/teams/{team}")).send().await.ok(200)["contact"],
            "changed@northwind.example"
        );
    }
);

admin_test!(
    apply_refuses_a_lifecycle_that_goes_back_and_writes_nothing,
    |t: App| async move {
        let mut bundle = bundled_catalog();
        apply(&t, &bundle, false).await.ok(200);
        let before = t.log_len().await;
        bundle.catalog.teams[0].contact = "changed@northwind.example".into();
        let inventory = bundle
            .catalog
            .apis
            .iter_mut()
            .find(|a| a.slug == "inventory")
            .unwrap();
        inventory.versions[0].state = gatehouse_registry::model::LifecycleState::Published;
        inventory.versions[0].sunset = None;
        inventory.versions[0].successor = None;
        let p = apply(&t, &bundle, false).await.problem(409);
        assert!(
            p["detail"].as_str().unwrap().contains("never goes back"),
            "{p}"
        );
        assert_eq!(t.log_len().await, before, "a refused apply wrote");
    }
);

admin_test!(
    apply_refuses_a_bad_spec_in_the_bundle_before_writing,
    |t: App| async move {
        let mut bundle = bundled_catalog();
        bundle
            .specs
            .insert("returns/v1.yaml".into(), "swagger: '2.0'\n".into());
        let p = apply(&t, &bundle, false).await.problem(422);
        assert!(p["detail"].as_str().unwrap().contains("Swagger"), "{p}");
        bundle.specs.remove("returns/v1.yaml");
        let p = apply(&t, &bundle, false).await.problem(422);
        assert!(
            p["detail"].as_str().unwrap().contains("returns/v1.yaml"),
            "{p}"
        );
        assert_eq!(t.log_len().await, 1, "only the bootstrap token");
    }
);

// -- rate-limit plans --------------------------------------------------------------------

admin_test!(
    plans_carry_per_operation_overrides_and_a_redis_failure_mode,
    |t: App| async move {
        let plan = json!({
            "name": "partner",
            "rate": {"requests": 20, "per_seconds": 1, "burst": 10},
            "quota": {"requests": 100000, "period": "month"},
            "overrides": [{"operation_id": "submitOrder", "rate": {"requests": 2, "per_seconds": 1}}],
            "on_redis_failure": "closed"
        });
        assert_eq!(
            t.post("/plans").json(plan.clone()).send().await.ok(201),
            plan
        );
        assert_eq!(t.get("/plans/partner").send().await.ok(200), plan);
        // Defaults: no overrides (omitted), fail-open.
        let basic = t
            .post("/plans")
            .json(json!({"name": "basic", "rate": {"requests": 10, "per_seconds": 1}}))
            .send()
            .await
            .ok(201);
        assert_eq!(basic["on_redis_failure"], "open");
        assert!(basic.get("overrides").is_none(), "{basic}");
        let before = t.log_len().await;
        for (body, field) in [
            (
                json!({"name": "twice", "rate": {"requests": 1, "per_seconds": 1}, "overrides": [
                    {"operation_id": "a", "rate": {"requests": 1, "per_seconds": 1}},
                    {"operation_id": "a", "rate": {"requests": 2, "per_seconds": 1}}]}),
                "overrides/1/operation_id",
            ),
            (
                json!({"name": "zero", "rate": {"requests": 1, "per_seconds": 1}, "overrides": [
                    {"operation_id": "a", "rate": {"requests": 0, "per_seconds": 1}}]}),
                "overrides/0/rate",
            ),
            (
                json!({"name": "noburst", "rate": {"requests": 1, "per_seconds": 1, "burst": 0}}),
                "rate/burst",
            ),
            (
                json!({"name": "blank", "rate": {"requests": 1, "per_seconds": 1}, "overrides": [
                    {"operation_id": "", "rate": {"requests": 1, "per_seconds": 1}}]}),
                "overrides/0/operation_id",
            ),
        ] {
            let p = t.post("/plans").json(body).send().await.problem(422);
            assert!(p.to_string().contains(field), "{field}: {p}");
        }
        // A mode that does not exist, or an unknown member, is refused before any check.
        for body in [
            json!({"name": "odd", "rate": {"requests": 1, "per_seconds": 1}, "on_redis_failure": "maybe"}),
            json!({"name": "odd", "rate": {"requests": 1, "per_seconds": 1}, "overrides": [
                {"operation": "a", "rate": {"requests": 1, "per_seconds": 1}}]}),
        ] {
            t.post("/plans").json(body).send().await.problem(400);
        }
        assert_eq!(t.log_len().await, before);
    }
);
