//! The governance of the registry through its admin API, in process: the publish gate
//! (validity, lint, compatibility, forcing), the diff route, the lifecycle rules, systems
//! of record, and catalog apply under those rules.
//!
//! Every test runs twice, on SQLite and on PostgreSQL (when `GATEHOUSE_TEST_POSTGRES_URL`
//! is set; see `support`), against `admin::router` called with `tower::ServiceExt::oneshot`
//! and a registry whose clock the test moves.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

mod support;

use axum::Router;
use axum::body::Body;
use futures::FutureExt;
use gatehouse_registry::admin::{self, AdminState, NodeStatus};
use gatehouse_registry::catalog;
use gatehouse_registry::model::Actor;
use gatehouse_registry::service::{Clock, Registry};
use gatehouse_registry::store;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use support::TestDb;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

// -- harness -----------------------------------------------------------------------------

/// A node status for tests: always ready, no metrics.
struct TestNode;

impl NodeStatus for TestNode {
    fn readiness(&self) -> (bool, Value) {
        (true, json!({"test": true}))
    }

    fn metrics(&self) -> String {
        String::new()
    }
}

const ADMIN: &str = "gh_test_admin_token_0123456789";

/// 2026-11-27T12:00:00Z: the day the registry's clock starts at.
fn start() -> OffsetDateTime {
    time::macros::datetime!(2026-11-27 12:00 UTC)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

struct Harness {
    app: Router,
    registry: Registry,
    now: Arc<Mutex<OffsetDateTime>>,
    architect: String,
    owner: String,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    fn expect(&self, status: u16) -> &Resp {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        self
    }

    /// Asserts a problem+json refusal of this status and type slug; returns its body.
    #[track_caller]
    fn problem(&self, status: u16, slug: &str) -> Value {
        self.expect(status);
        assert_eq!(self.content_type(), "application/problem+json");
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("urn:gatehouse:problem:{slug}"),
            "{body}"
        );
        assert_eq!(body["status"], status);
        body
    }
}

impl Harness {
    async fn new(url: &str) -> Harness {
        let now = Arc::new(Mutex::new(start()));
        let clock = {
            let now = now.clone();
            Clock::from_fn(move || *now.lock().unwrap())
        };
        let registry = Registry::new(store::open(url).await.unwrap()).with_clock(clock);
        assert!(registry.bootstrap_token(ADMIN).await.unwrap());
        let app = admin::router(AdminState {
            registry: registry.clone(),
            node: Arc::new(TestNode),
        });
        let mut h = Harness {
            app,
            registry,
            now,
            architect: String::new(),
            owner: String::new(),
        };
        h.post_json(
            "/teams",
            ADMIN,
            json!({"name": "stock-team", "contact": "stock@example.com"}),
        )
        .await
        .expect(201);
        h.post_json(
            "/teams",
            ADMIN,
            json!({"name": "other-team", "contact": "other@example.com"}),
        )
        .await
        .expect(201);
        h.post_json(
            "/apis",
            ADMIN,
            json!({"slug": "stock", "title": "Stock", "team": "stock-team"}),
        )
        .await
        .expect(201);
        h.architect = h.token(json!({"role": "architect"})).await;
        h.owner = h
            .token(json!({"role": "owner", "team": "stock-team"}))
            .await;
        h
    }

    async fn token(&self, body: Value) -> String {
        let r = self.post_json("/tokens", ADMIN, body).await;
        r.expect(201).json()["token"].as_str().unwrap().to_owned()
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }

    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(Method::GET, path, token, &[], Vec::new()).await
    }

    async fn get_as(&self, path: &str, accept: &str) -> Resp {
        self.send(Method::GET, path, ADMIN, &[("accept", accept)], Vec::new())
            .await
    }

    async fn post_json(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(
            Method::POST,
            path,
            token,
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    async fn put_json(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(
            Method::PUT,
            path,
            token,
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// `POST /apis/stock/versions{query}` with a YAML spec.
    async fn register(&self, query: &str, token: &str, spec: &str) -> Resp {
        self.send(
            Method::POST,
            &format!("/apis/stock/versions{query}"),
            token,
            &[("content-type", "application/yaml")],
            spec.as_bytes().to_vec(),
        )
        .await
    }

    /// Registers and publishes a version (as admin); panics on refusal.
    async fn published(&self, spec: &str) {
        let r = self.register("", ADMIN, spec).await;
        let version = r.expect(201).json()["version"].as_str().unwrap().to_owned();
        self.post_json(
            &format!("/apis/stock/versions/{version}/publish"),
            ADMIN,
            json!({}),
        )
        .await
        .expect(200);
    }

    async fn deprecate(&self, version: &str, token: &str, body: Value) -> Resp {
        self.post_json(
            &format!("/apis/stock/versions/{version}/deprecate"),
            token,
            body,
        )
        .await
    }

    async fn retire(&self, version: &str, token: &str, body: Value) -> Resp {
        self.post_json(
            &format!("/apis/stock/versions/{version}/retire"),
            token,
            body,
        )
        .await
    }

    /// The change-log entries of one action on one target, oldest first.
    async fn changes(&self, action: &str, target: &str) -> Vec<Value> {
        let r = self
            .get(
                &format!("/audit/changes?action={action}&target={target}"),
                ADMIN,
            )
            .await;
        r.expect(200).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == target)
            .cloned()
            .collect()
    }
}

/// Runs `body` on a fresh registry over `db`, then removes the database, even on panic.
async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    let harness = Harness::new(db.url()).await;
    let outcome = AssertUnwindSafe(body(harness)).catch_unwind().await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Each named `async fn(Harness)` becomes `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::run(super::TestDb::sqlite(), super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::run(db, super::$name).await;
                    }
                }
            }
        )*
    };
}

on_both_backends!(
    lint_errors_refuse_with_422,
    invalid_specs_refuse_with_422_before_lint,
    breaking_changes_in_a_major_refuse_with_409,
    compatible_versions_list_their_findings,
    drafts_are_not_a_baseline,
    only_admins_force_and_only_with_a_reason,
    forced_versions_carry_the_reason_into_the_change_log,
    a_new_major_lists_what_it_breaks,
    diff_route_answers_json_markdown_and_404,
    deprecation_needs_a_sunset_with_the_minimum_notice,
    deprecation_notice_is_per_api,
    deprecation_needs_a_successor_when_a_newer_major_is_published,
    sunsets_may_move_later_but_not_closer_than_the_notice,
    retirement_waits_for_the_sunset,
    retirement_without_a_sunset_waits_for_the_notice,
    lifecycle_never_goes_back,
    forced_lifecycle_moves_are_admin_only_and_logged,
    systems_of_record_conflicts_name_the_first_api,
    systems_of_record_answer_who_is_authoritative,
    bundled_catalog_seeds_through_the_gate,
    bundled_catalog_seeds_even_inside_the_notice_window,
    catalog_changes_obey_the_lifecycle_rules,
);

// -- specs -------------------------------------------------------------------------------

/// A spec of the `stock` API that passes the built-in lint (with a plan).
fn spec(version: &str) -> String {
    format!(
        r##"openapi: 3.1.0
info:
  title: Stock
  version: {version}
  contact: {{email: stock@example.com}}
security:
  - apiKey: []
paths:
  /items/{{sku}}:
    get:
      operationId: getItem
      summary: Get an item's stock
      parameters:
        - {{name: sku, in: path, required: true, schema: {{type: string}}}}
      responses:
        '200':
          description: The item.
          content:
            application/json:
              schema: {{$ref: '#/components/schemas/Item'}}
        '404': {{$ref: '#/components/responses/Problem'}}
        '429': {{$ref: '#/components/responses/Problem'}}
components:
  securitySchemes:
    apiKey: {{type: apiKey, in: header, name: X-API-Key}}
  responses:
    Problem:
      description: A problem.
      content:
        application/problem+json:
          schema: {{type: object}}
  schemas:
    Item:
      type: object
      required: [sku, quantity]
      properties:
        sku: {{type: string}}
        quantity: {{type: integer}}
"##
    )
}

/// The spec with `quantity` gone from the response: breaking for clients that read it.
fn breaking(version: &str) -> String {
    spec(version)
        .replace("required: [sku, quantity]", "required: [sku]")
        .replace("        quantity: {type: integer}\n", "")
}

/// The spec with an optional response property added: compatible.
fn compatible(version: &str) -> String {
    spec(version).replace(
        "        quantity: {type: integer}\n",
        "        quantity: {type: integer}\n        warehouse: {type: string}\n",
    )
}

// -- the publish gate ----------------------------------------------------------------------

async fn lint_errors_refuse_with_422(h: Harness) {
    let no_id = spec("1.0.0").replace("      operationId: getItem\n", "");
    let p = h
        .register("", &h.architect, &no_id)
        .await
        .problem(422, "lint-failed");
    assert!(p["detail"].as_str().unwrap().contains("stock@1.0.0"), "{p}");
    assert_eq!(p["errors"][0]["in"], "body");
    assert_eq!(p["errors"][0]["pointer"], "/paths/~1items~1{sku}/get");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("operation-id-present: "),
        "{p}"
    );
    // The full report, warnings included, is in the extension member.
    assert_eq!(p["lint"]["summary"]["error"], 1);
    assert!(!p["lint"]["findings"].as_array().unwrap().is_empty());
    // Only errors refuse: a missing summary is a warning and passes.
    let no_summary = spec("1.0.0").replace("      summary: Get an item's stock\n", "");
    let ok = h.register("", &h.architect, &no_summary).await;
    let body = ok.expect(201).json();
    assert_eq!(body["findings"]["lint"]["summary"]["warning"], 1);
    assert_eq!(
        body["findings"]["lint"]["findings"][0]["rule"],
        "operation-summary"
    );
    // Nothing was stored by the refusal: 1.0.0 is the version that passed.
    h.get("/apis/stock/versions/1.0.0", ADMIN).await.expect(200);
    assert_eq!(h.changes("version.create", "stock@1.0.0").await.len(), 1);
}

async fn invalid_specs_refuse_with_422_before_lint(h: Harness) {
    let external = spec("1.0.0").replace("'#/components/schemas/Item'", "'other.yaml#/Item'");
    let p = h
        .register("", &h.architect, &external)
        .await
        .problem(422, "invalid-spec");
    assert!(
        p["errors"][0]["pointer"]
            .as_str()
            .unwrap()
            .ends_with("/$ref")
    );
    // Two templates that differ only in parameter names are one path: the gateway could
    // not route them, so the spec is refused with the pointer of the second.
    let colliding = spec("1.0.0").replace(
        "components:\n",
        "  /items/{code}:\n    get:\n      operationId: getByCode\n      summary: By code\n      \
         parameters:\n        - {name: code, in: path, required: true, schema: {type: string}}\n      \
         responses:\n        '200': {description: ok}\n        '404': {$ref: '#/components/responses/Problem'}\n        \
         '429': {$ref: '#/components/responses/Problem'}\ncomponents:\n",
    );
    let p = h
        .register("", &h.architect, &colliding)
        .await
        .problem(422, "invalid-spec");
    let pointer = p["errors"][0]["pointer"].as_str().unwrap();
    assert!(pointer.starts_with("/paths/~1items~1{"), "{p}");
    h.register("", &h.architect, &spec("1.0.0"))
        .await
        .expect(201);
    // A second registration of the same version is a duplicate, whatever it contains.
    h.register("", &h.architect, &breaking("1.0.0"))
        .await
        .problem(409, "conflict");
}

async fn breaking_changes_in_a_major_refuse_with_409(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let p = h
        .register("", &h.architect, &breaking("1.1.0"))
        .await
        .problem(409, "breaking-change");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("stock@1.1.0") && detail.contains("stock@1.0.0"),
        "{detail}"
    );
    let errors = p["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|e| e["in"] == "body"
                && e["message"].as_str().unwrap().contains("GET /items/{sku}")),
        "{p}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("response-")),
        "{p}"
    );
    let c = &p["compatibility"];
    assert_eq!(c["against"], "1.0.0");
    assert_eq!(c["summary"]["breaking"], errors.len());
    assert!(
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"].is_string() && f["severity"].is_string() && f["message"].is_string())
    );
    h.get("/apis/stock/versions/1.1.0", ADMIN).await.expect(404);
    // A deprecated version is still a baseline: its consumers are still served.
    h.deprecate(
        "1.0.0",
        ADMIN,
        json!({"sunset": rfc3339(h.now() + Duration::days(120))}),
    )
    .await
    .expect(200);
    h.register("", &h.architect, &breaking("1.1.0"))
        .await
        .problem(409, "breaking-change");
}

async fn compatible_versions_list_their_findings(h: Harness) {
    let first = h.register("", &h.architect, &spec("1.0.0")).await;
    let body = first.expect(201).json();
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["major"], 1);
    assert_eq!(body["state"], "draft");
    assert_eq!(body["findings"]["compatibility"], Value::Null);
    assert_eq!(body["findings"]["lint"]["summary"]["error"], 0);
    assert_eq!(
        first.headers["location"].to_str().unwrap(),
        "/apis/stock/versions/1.0.0"
    );
    h.post_json("/apis/stock/versions/1.0.0/publish", ADMIN, json!({}))
        .await
        .expect(200);
    let body = h
        .register("", &h.owner, &compatible("1.1.0"))
        .await
        .expect(201)
        .json();
    let c = &body["findings"]["compatibility"];
    assert_eq!(c["against"], "1.0.0");
    assert_eq!(c["against_major"], 1);
    assert_eq!(c["same_major"], true);
    assert_eq!(c["forced"], false);
    assert_eq!(c["summary"]["breaking"], 0);
    assert!(c["summary"]["info"].as_u64().unwrap() >= 1, "{c}");
}

async fn drafts_are_not_a_baseline(h: Harness) {
    // Nothing of major 1 was ever published, so nobody depends on 1.0.0 yet.
    h.register("", &h.architect, &spec("1.0.0"))
        .await
        .expect(201);
    let body = h
        .register("", &h.architect, &breaking("1.1.0"))
        .await
        .expect(201)
        .json();
    assert_eq!(body["findings"]["compatibility"], Value::Null);
}

async fn only_admins_force_and_only_with_a_reason(h: Harness) {
    h.published(&spec("1.0.0")).await;
    for token in [&h.architect, &h.owner] {
        let p = h
            .register("?force=true&reason=hotfix", token, &breaking("1.1.0"))
            .await
            .problem(403, "forbidden");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("force a breaking change"),
            "{p}"
        );
    }
    for query in [
        "?force=true",
        "?force=true&reason=",
        "?force=true&reason=%20%20",
    ] {
        let p = h
            .register(query, ADMIN, &breaking("1.1.0"))
            .await
            .problem(422, "unprocessable");
        assert_eq!(p["errors"][0]["in"], "query");
        assert_eq!(p["errors"][0]["pointer"], "reason");
    }
    h.register("?force=yes", ADMIN, &breaking("1.1.0"))
        .await
        .problem(400, "bad-request");
    h.get("/apis/stock/versions/1.1.0", ADMIN).await.expect(404);
}

async fn forced_versions_carry_the_reason_into_the_change_log(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let body = h
        .register(
            "?force=true&reason=quantity+leaked+reserved+stock%3B+agreed+with+all+consumers",
            ADMIN,
            &breaking("1.1.0"),
        )
        .await
        .expect(201)
        .json();
    let c = &body["findings"]["compatibility"];
    assert_eq!(c["forced"], true);
    assert_eq!(c["same_major"], true);
    assert!(c["summary"]["breaking"].as_u64().unwrap() >= 1);
    let entries = h.changes("version.create", "stock@1.1.0").await;
    assert_eq!(entries.len(), 1);
    let reason = entries[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("quantity leaked reserved stock; agreed with all consumers"),
        "{reason}"
    );
    assert!(
        reason.contains("forced past") && reason.contains("1.0.0"),
        "{reason}"
    );
    assert_eq!(entries[0]["role"], "admin");

    // The reason may come in a header instead, and a compatible version forced anyway
    // is not marked forced.
    let r = h
        .send(
            Method::POST,
            "/apis/stock/versions?force=true",
            ADMIN,
            &[
                ("content-type", "application/yaml"),
                ("x-gatehouse-reason", "routine release"),
            ],
            compatible("1.2.0").into_bytes(),
        )
        .await;
    assert_eq!(
        r.expect(201).json()["findings"]["compatibility"]["forced"],
        false
    );
    let entries = h.changes("version.create", "stock@1.2.0").await;
    assert_eq!(entries[0]["reason"], "routine release");
    // The chain still verifies.
    assert_eq!(
        h.get("/audit/changes/verify", ADMIN)
            .await
            .expect(200)
            .json()["ok"],
        true
    );
}

async fn a_new_major_lists_what_it_breaks(h: Harness) {
    h.published(&spec("1.0.0")).await;
    h.published(&compatible("1.1.0")).await;
    let body = h
        .register("", &h.architect, &breaking("2.0.0"))
        .await
        .expect(201)
        .json();
    assert_eq!(body["major"], 2);
    let c = &body["findings"]["compatibility"];
    assert_eq!(c["against"], "1.1.0", "the latest of the previous major");
    assert_eq!(c["against_major"], 1);
    assert_eq!(c["same_major"], false);
    assert_eq!(c["forced"], false);
    let breaking: Vec<&Value> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "breaking")
        .collect();
    assert!(!breaking.is_empty(), "{c}");
    assert_eq!(c["summary"]["breaking"], breaking.len());
    assert!(
        breaking
            .iter()
            .all(|f| f["operation"] == "GET /items/{sku}")
    );
    // No reason was given, so none is logged.
    assert_eq!(
        h.changes("version.create", "stock@2.0.0").await[0]["reason"],
        Value::Null
    );
}

async fn diff_route_answers_json_markdown_and_404(h: Harness) {
    h.register("", &h.architect, &spec("1.0.0"))
        .await
        .expect(201);
    h.register("", &h.architect, &breaking("2.0.0"))
        .await
        .expect(201);
    let r = h
        .get("/apis/stock/diff?from=1.0.0&to=2.0.0", &h.owner)
        .await;
    let body = r.expect(200).json();
    assert_eq!(body["api"], "stock");
    assert_eq!(body["from"], "1.0.0");
    assert_eq!(body["to"], "2.0.0");
    assert!(body["summary"]["breaking"].as_u64().unwrap() >= 1);
    assert!(body["findings"][0]["old_pointer"].is_string());
    // An auditor reads it too.
    let auditor = h.token(json!({"role": "auditor"})).await;
    h.get("/apis/stock/diff?from=1.0.0&to=2.0.0", &auditor)
        .await
        .expect(200);

    let md = h
        .get_as("/apis/stock/diff?from=1.0.0&to=2.0.0", "text/markdown")
        .await;
    md.expect(200);
    assert!(md.content_type().starts_with("text/markdown"));
    assert!(md.text().starts_with("### API changes: "), "{}", md.text());
    assert!(md.text().contains("**breaking**"));
    let text = h
        .get_as("/apis/stock/diff?from=1.0.0&to=2.0.0", "text/plain")
        .await;
    assert!(text.expect(200).content_type().starts_with("text/plain"));
    let same = h.get("/apis/stock/diff?from=1.0.0&to=1.0.0", ADMIN).await;
    assert_eq!(same.expect(200).json()["summary"]["breaking"], 0);

    let p = h
        .get("/apis/stock/diff?from=1.0.0&to=9.9.9", ADMIN)
        .await
        .problem(404, "not-found");
    assert!(p["detail"].as_str().unwrap().contains("stock@9.9.9"));
    h.get("/apis/nope/diff?from=1.0.0&to=2.0.0", ADMIN)
        .await
        .problem(404, "not-found");
    h.get("/apis/stock/diff?from=1.0.0", ADMIN)
        .await
        .problem(400, "bad-request");
}

// -- lifecycle rules ---------------------------------------------------------------------

async fn deprecation_needs_a_sunset_with_the_minimum_notice(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let p = h
        .deprecate("1.0.0", &h.owner, json!({}))
        .await
        .problem(422, "unprocessable");
    assert_eq!(p["errors"][0]["pointer"], "/sunset");
    assert!(p["detail"].as_str().unwrap().contains("90 days"), "{p}");

    let soon = h.now() + Duration::days(30);
    let p = h
        .deprecate("1.0.0", &h.owner, json!({"sunset": rfc3339(soon)}))
        .await
        .problem(422, "unprocessable");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("minimum notice is 90 days"), "{detail}");
    assert_eq!(p["errors"][0]["pointer"], "/sunset");
    assert_eq!(p["earliest_sunset"], rfc3339(h.now() + Duration::days(90)));
    h.deprecate(
        "1.0.0",
        &h.owner,
        json!({"sunset": rfc3339(h.now() - Duration::days(1))}),
    )
    .await
    .problem(422, "unprocessable");

    let body = h
        .deprecate(
            "1.0.0",
            &h.owner,
            json!({"sunset": rfc3339(h.now() + Duration::days(90)), "reason": "v1.1 is out"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(body["state"], "deprecated");
    assert_eq!(body["deprecated_at"], rfc3339(h.now()));
    let entries = h.changes("version.deprecate", "stock@1.0.0").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], "v1.1 is out");
}

async fn deprecation_notice_is_per_api(h: Harness) {
    let r = h
        .post_json(
            "/apis",
            &h.architect,
            json!({"slug": "quick", "title": "Quick", "team": "stock-team",
                   "deprecation_notice_days": 14}),
        )
        .await;
    assert_eq!(r.expect(201).json()["deprecation_notice_days"], 14);
    let stock = h.get("/apis/stock", ADMIN).await.expect(200).json();
    assert_eq!(stock["deprecation_notice_days"], 90);
    h.post_json(
        "/apis",
        ADMIN,
        json!({"slug": "forever", "title": "F", "team": "stock-team",
               "deprecation_notice_days": 3651}),
    )
    .await
    .problem(422, "unprocessable");

    let r = h
        .send(
            Method::POST,
            "/apis/quick/versions",
            ADMIN,
            &[("content-type", "application/yaml")],
            spec("1.0.0").into_bytes(),
        )
        .await;
    r.expect(201);
    h.post_json("/apis/quick/versions/1.0.0/publish", ADMIN, json!({}))
        .await
        .expect(200);
    let sunset = rfc3339(h.now() + Duration::days(15));
    h.post_json(
        "/apis/quick/versions/1.0.0/deprecate",
        &h.owner,
        json!({"sunset": sunset}),
    )
    .await
    .expect(200);
}

async fn deprecation_needs_a_successor_when_a_newer_major_is_published(h: Harness) {
    h.published(&spec("1.0.0")).await;
    h.register("", ADMIN, &breaking("2.0.0")).await.expect(201);
    let sunset = rfc3339(h.now() + Duration::days(100));
    // 2.0.0 is only a draft: no successor is owed yet, but a draft cannot be one.
    let p = h
        .deprecate(
            "1.0.0",
            &h.owner,
            json!({"sunset": sunset, "successor": "2.0.0"}),
        )
        .await
        .problem(422, "unprocessable");
    assert_eq!(p["errors"][0]["pointer"], "/successor");
    h.post_json("/apis/stock/versions/2.0.0/publish", ADMIN, json!({}))
        .await
        .expect(200);

    let p = h
        .deprecate("1.0.0", &h.owner, json!({"sunset": sunset}))
        .await
        .problem(422, "unprocessable");
    assert!(p["detail"].as_str().unwrap().contains("stock@2.0.0"), "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/successor");
    h.deprecate(
        "1.0.0",
        &h.owner,
        json!({"sunset": sunset, "successor": "9.0.0"}),
    )
    .await
    .problem(404, "not-found");
    h.deprecate(
        "1.0.0",
        &h.owner,
        json!({"sunset": sunset, "successor": "1.0.0"}),
    )
    .await
    .problem(422, "unprocessable");
    let body = h
        .deprecate(
            "1.0.0",
            &h.owner,
            json!({"sunset": sunset, "successor": "2.0.0"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(body["successor"], "2.0.0");
}

async fn sunsets_may_move_later_but_not_closer_than_the_notice(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let first = h.now() + Duration::days(100);
    h.deprecate("1.0.0", &h.owner, json!({"sunset": rfc3339(first)}))
        .await
        .expect(200);
    h.advance(Duration::days(30));
    // 70 days are left; moving the sunset later is always fine…
    let later = first + Duration::days(30);
    h.deprecate("1.0.0", &h.owner, json!({"sunset": rfc3339(later)}))
        .await
        .expect(200);
    // …but bringing it forward must still leave the minimum notice.
    let p = h
        .deprecate("1.0.0", &h.owner, json!({"sunset": rfc3339(first)}))
        .await
        .problem(422, "unprocessable");
    assert!(p["detail"].as_str().unwrap().contains("90 days"), "{p}");
    // Removing the sunset is refused too: it was a promise.
    h.deprecate("1.0.0", &h.owner, json!({}))
        .await
        .problem(422, "unprocessable");
    let v = h
        .get("/apis/stock/versions/1.0.0", ADMIN)
        .await
        .expect(200)
        .json();
    assert_eq!(v["sunset_at"], rfc3339(later));
    // deprecated_at is when it was first deprecated.
    assert_eq!(v["deprecated_at"], rfc3339(start()));
}

async fn retirement_waits_for_the_sunset(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let sunset = h.now() + Duration::days(90);
    h.deprecate("1.0.0", &h.owner, json!({"sunset": rfc3339(sunset)}))
        .await
        .expect(200);
    h.advance(Duration::days(89));
    let p = h
        .retire("1.0.0", &h.owner, json!({"reason": "early"}))
        .await
        .problem(409, "conflict");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("before its sunset") && detail.contains(&rfc3339(sunset)),
        "{detail}"
    );
    h.advance(Duration::days(1));
    let body = h
        .retire("1.0.0", &h.owner, json!({"reason": "sunset reached"}))
        .await
        .expect(200)
        .json();
    assert_eq!(body["state"], "retired");
    assert_eq!(
        h.changes("version.retire", "stock@1.0.0").await[0]["reason"],
        "sunset reached"
    );
}

async fn retirement_without_a_sunset_waits_for_the_notice(h: Harness) {
    // Only a forced deprecation can leave a version without a sunset.
    h.published(&spec("1.0.0")).await;
    h.deprecate(
        "1.0.0",
        ADMIN,
        json!({"force": true, "reason": "date to be agreed with partners"}),
    )
    .await
    .expect(200);
    h.advance(Duration::days(30));
    let p = h
        .retire("1.0.0", &h.owner, json!({}))
        .await
        .problem(409, "conflict");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("has no sunset"), "{detail}");
    assert!(
        detail.contains(&rfc3339(start() + Duration::days(90))),
        "{detail}"
    );
    h.advance(Duration::days(60));
    h.retire("1.0.0", &h.owner, json!({})).await.expect(200);
}

async fn lifecycle_never_goes_back(h: Harness) {
    h.published(&spec("1.0.0")).await;
    // published → published, and draft → deprecated/retired, are refused too.
    h.post_json("/apis/stock/versions/1.0.0/publish", ADMIN, json!({}))
        .await
        .problem(409, "conflict");
    h.register("", ADMIN, &compatible("1.1.0"))
        .await
        .expect(201);
    let sunset = rfc3339(h.now() + Duration::days(90));
    h.deprecate("1.1.0", ADMIN, json!({"sunset": sunset}))
        .await
        .problem(409, "conflict");
    h.retire("1.1.0", ADMIN, json!({}))
        .await
        .problem(409, "conflict");

    h.deprecate("1.0.0", &h.owner, json!({"sunset": sunset}))
        .await
        .expect(200);
    h.advance(Duration::days(91));
    h.retire("1.0.0", &h.owner, json!({})).await.expect(200);
    for (route, body) in [
        ("publish", json!({})),
        (
            "deprecate",
            json!({"sunset": rfc3339(h.now() + Duration::days(200))}),
        ),
        ("retire", json!({})),
    ] {
        let p = h
            .post_json(&format!("/apis/stock/versions/1.0.0/{route}"), ADMIN, body)
            .await
            .problem(409, "conflict");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("is retired") && detail.contains("only moves forward"),
            "{detail}"
        );
    }
    // Not even an admin's force goes back.
    h.deprecate(
        "1.0.0",
        ADMIN,
        json!({"sunset": rfc3339(h.now() + Duration::days(200)), "force": true, "reason": "oops"}),
    )
    .await
    .problem(409, "conflict");
}

async fn forced_lifecycle_moves_are_admin_only_and_logged(h: Harness) {
    h.published(&spec("1.0.0")).await;
    let soon = rfc3339(h.now() + Duration::days(7));
    h.deprecate(
        "1.0.0",
        &h.owner,
        json!({"sunset": soon, "force": true, "reason": "security"}),
    )
    .await
    .problem(403, "forbidden");
    let p = h
        .deprecate("1.0.0", ADMIN, json!({"sunset": soon, "force": true}))
        .await
        .problem(422, "unprocessable");
    assert_eq!(p["errors"][0]["in"], "body");
    assert_eq!(p["errors"][0]["pointer"], "/reason");
    h.deprecate(
        "1.0.0",
        ADMIN,
        json!({"sunset": soon, "force": true, "reason": "leaks reserved stock"}),
    )
    .await
    .expect(200);
    let entry = &h.changes("version.deprecate", "stock@1.0.0").await[0];
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("leaks reserved stock (forced"),
        "{entry}"
    );

    h.retire("1.0.0", &h.owner, json!({"force": true, "reason": "now"}))
        .await
        .problem(403, "forbidden");
    h.retire("1.0.0", ADMIN, json!({"force": true}))
        .await
        .problem(422, "unprocessable");
    h.retire(
        "1.0.0",
        ADMIN,
        json!({"force": true, "reason": "exploited in the wild"}),
    )
    .await
    .expect(200);
    let entry = &h.changes("version.retire", "stock@1.0.0").await[0];
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("exploited in the wild"),
        "{entry}"
    );
}

// -- systems of record -------------------------------------------------------------------

async fn systems_of_record_conflicts_name_the_first_api(h: Harness) {
    h.post_json(
        "/apis",
        ADMIN,
        json!({"slug": "credit", "title": "Credit", "team": "other-team"}),
    )
    .await
    .expect(201);
    h.put_json(
        "/apis/stock/systems-of-record",
        &h.architect,
        json!([{"entity": "customer-credit", "system": "ERP"}]),
    )
    .await
    .expect(200);
    let p = h
        .put_json(
            "/apis/credit/systems-of-record",
            &h.architect,
            json!([{"entity": "customer-credit", "system": "CRM"}]),
        )
        .await
        .problem(409, "conflict");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("`customer-credit`")
            && detail.contains("declared by API `stock`")
            && detail.contains("`ERP`"),
        "{detail}"
    );
    assert_eq!(
        p["claimed_by"],
        json!({"entity": "customer-credit", "system": "ERP", "api": "stock"})
    );
    // The refused write changed nothing; the owner of the claim may restate it.
    let list = h
        .get("/systems-of-record?entity=customer-credit", ADMIN)
        .await
        .expect(200)
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["api"], "stock");
    h.put_json(
        "/apis/stock/systems-of-record",
        &h.architect,
        json!([{"entity": "customer-credit", "system": "ERP"}]),
    )
    .await
    .expect(200);
    // Once `stock` lets go, `credit` may claim it.
    h.put_json("/apis/stock/systems-of-record", &h.architect, json!([]))
        .await
        .expect(200);
    h.put_json(
        "/apis/credit/systems-of-record",
        &h.architect,
        json!([{"entity": "customer-credit", "system": "ERP"}]),
    )
    .await
    .expect(200);
    // Owners declare nothing: systems of record are an architecture decision.
    h.put_json("/apis/stock/systems-of-record", &h.owner, json!([]))
        .await
        .problem(403, "forbidden");
}

async fn systems_of_record_answer_who_is_authoritative(h: Harness) {
    h.post_json(
        "/apis",
        ADMIN,
        json!({"slug": "credit", "title": "Credit", "team": "other-team"}),
    )
    .await
    .expect(201);
    h.put_json(
        "/apis/stock/systems-of-record",
        ADMIN,
        json!([{"entity": "inventory-balance", "system": "WMS"},
               {"entity": "item-master", "system": "ERP"}]),
    )
    .await
    .expect(200);
    h.put_json(
        "/apis/credit/systems-of-record",
        ADMIN,
        json!([{"entity": "customer-credit", "system": "ERP"}]),
    )
    .await
    .expect(200);
    let auditor = h.token(json!({"role": "auditor"})).await;
    let who = h
        .get("/systems-of-record?entity=customer-credit", &auditor)
        .await
        .expect(200)
        .json();
    assert_eq!(
        who,
        json!({"items": [{"entity": "customer-credit", "system": "ERP", "api": "credit"}],
               "next_cursor": null})
    );
    let all = h
        .get("/systems-of-record", &auditor)
        .await
        .expect(200)
        .json();
    let entities: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["entity"].as_str().unwrap())
        .collect();
    assert_eq!(
        entities,
        ["customer-credit", "inventory-balance", "item-master"]
    );
    let erp = h
        .get("/systems-of-record?system=erp", &auditor)
        .await
        .json();
    assert_eq!(erp["items"].as_array().unwrap().len(), 2);
    let both = h
        .get("/systems-of-record?entity=item-master&system=ERP", &auditor)
        .await
        .json();
    assert_eq!(both["items"][0]["api"], "stock");
    let none = h.get("/systems-of-record?entity=nothing", &auditor).await;
    assert_eq!(none.expect(200).json()["items"], json!([]));
    let per_api = h
        .get("/apis/credit/systems-of-record", &auditor)
        .await
        .json();
    assert_eq!(per_api["items"].as_array().unwrap().len(), 1);
}

// -- catalog apply -----------------------------------------------------------------------

fn bundled_catalog() -> catalog::Bundle {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/catalog.yaml");
    catalog::load_bundle(&path).unwrap()
}

async fn bundled_catalog_seeds_through_the_gate(h: Harness) {
    let bundle = bundled_catalog();
    let report = catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    assert!(report.changed);
    // Every bundled spec passed the gate's lint (zero errors) on its way in.
    let registered = report
        .steps
        .iter()
        .filter(|s| s.action == "register")
        .count();
    assert_eq!(registered, bundle.specs.len());
    let v1 = h
        .get("/apis/inventory/versions/1.4.0", ADMIN)
        .await
        .expect(200)
        .json();
    assert_eq!(v1["state"], "deprecated");
    assert_eq!(v1["sunset_at"], "2027-06-30T00:00:00Z");
    assert_eq!(v1["successor"], "2.1.0");
    let v2 = h.get("/apis/inventory/versions/2.1.0", ADMIN).await.json();
    assert_eq!(v2["state"], "published");
    // A second apply changes nothing.
    let again = catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    assert!(!again.changed, "{:?}", again.steps);
    // The successor was published before the deprecation named it.
    let log = h
        .get("/audit/changes?target=inventory@&limit=1000", ADMIN)
        .await
        .json();
    let order: Vec<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap()
            )
        })
        .collect();
    let at = |what: &str| order.iter().position(|o| o == what).unwrap();
    assert!(at("version.publish inventory@2.1.0") < at("version.deprecate inventory@1.4.0"));
}

async fn bundled_catalog_seeds_even_inside_the_notice_window(h: Harness) {
    // A fresh registry seeded on 2027-05-01: inventory 1.4.0's sunset (2027-06-30) is
    // closer than the 90 days' notice, but the version was never served here, so nobody
    // was owed notice; the catalog restates it, and the change log says so.
    *h.now.lock().unwrap() = time::macros::datetime!(2027-05-01 00:00 UTC);
    let bundle = bundled_catalog();
    catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    let v1 = h.get("/apis/inventory/versions/1.4.0", ADMIN).await.json();
    assert_eq!(v1["state"], "deprecated");
    let entry = &h.changes("version.deprecate", "inventory@1.4.0").await[0];
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("new to this registry") && reason.contains("forced"),
        "{reason}"
    );
    let again = catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    assert!(!again.changed, "{:?}", again.steps);
}

async fn catalog_changes_obey_the_lifecycle_rules(h: Harness) {
    let mut bundle = bundled_catalog();
    catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    // Deprecating an already published version with a short sunset is refused with the
    // rule's own error, and nothing is changed.
    let orders = bundle
        .catalog
        .apis
        .iter_mut()
        .find(|a| a.slug == "orders")
        .unwrap();
    orders.versions[0].state = gatehouse_registry::model::LifecycleState::Deprecated;
    orders.versions[0].sunset = Some("2027-01-15".into());
    let err = catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("orders@1.") && text.contains("minimum notice is 90 days"),
        "{text}"
    );
    // Retiring a deprecated version before its sunset is refused too.
    let mut early = bundled_catalog();
    let inventory = early
        .catalog
        .apis
        .iter_mut()
        .find(|a| a.slug == "inventory")
        .unwrap();
    inventory.versions[0].state = gatehouse_registry::model::LifecycleState::Retired;
    let err = catalog::apply(&h.registry, &Actor::system(), &early, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("before its sunset"), "{err}");
    // With notice to spare, the same catalog change goes through.
    orders_sunset(&mut bundle, "2027-06-30");
    catalog::apply(&h.registry, &Actor::system(), &bundle, false)
        .await
        .unwrap();
    let v = h.get("/apis/orders/versions", ADMIN).await.json();
    assert_eq!(v["items"][0]["state"], "deprecated");
    // A catalog's notice days reach the API.
    let mut slower = bundle.clone();
    slower.catalog.apis[0].deprecation_notice_days = Some(180);
    let report = catalog::apply(&h.registry, &Actor::system(), &slower, false)
        .await
        .unwrap();
    assert!(report.changed);
    let slug = slower.catalog.apis[0].slug.clone();
    let api = h.get(&format!("/apis/{slug}"), ADMIN).await.json();
    assert_eq!(api["deprecation_notice_days"], 180);
}

fn orders_sunset(bundle: &mut catalog::Bundle, sunset: &str) {
    let orders = bundle
        .catalog
        .apis
        .iter_mut()
        .find(|a| a.slug == "orders")
        .unwrap();
    orders.versions[0].sunset = Some(sunset.into());
}
