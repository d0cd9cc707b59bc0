//! The admin API's identity routes, driven through the router without a socket: trusted
//! issuers (admin-only writes, validation, never any key material back), API keys listed
//! without secrets, and the `owner` role managing subscriptions to its own team's APIs only.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gatehouse_registry::admin::{self, AdminState, NodeStatus};
use gatehouse_registry::model::{Actor, Plan, Rate, Role};
use gatehouse_registry::service::NewApi;
use gatehouse_registry::{Registry, store};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Node;

impl NodeStatus for Node {
    fn readiness(&self) -> (bool, Value) {
        (true, Value::Null)
    }
    fn metrics(&self) -> String {
        String::new()
    }
}

struct App {
    router: axum::Router,
    registry: Registry,
    admin: String,
    _dir: tempfile::TempDir,
}

impl App {
    /// A registry on a fresh SQLite file with an admin token, teams `inv` and `ord`, an API
    /// for each, a consumer `portal` and a plan `basic`.
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gh.db").display());
        let registry = Registry::new(store::open(&url).await.unwrap());
        let admin = "gha_00000000.bootstrap-admin-token-for-tests".to_owned();
        assert!(registry.bootstrap_token(&admin).await.unwrap());
        let root = Actor::system();
        for (team, api) in [("inv", "inventory"), ("ord", "orders")] {
            registry
                .create_team(&root, team, "t@example.com")
                .await
                .unwrap();
            registry
                .create_api(
                    &root,
                    NewApi {
                        slug: api.into(),
                        title: api.into(),
                        team: team.into(),
                        description: None,
                        version_header: None,
                        default_major: None,
                        forward_bearer: None,
                        deprecation_notice_days: None,
                        validation: None,
                    },
                )
                .await
                .unwrap();
        }
        registry
            .create_consumer(&root, "portal", None)
            .await
            .unwrap();
        registry
            .create_plan(
                &root,
                Plan {
                    name: "basic".into(),
                    rate: Rate {
                        requests: 10,
                        per_seconds: 1,
                        burst: None,
                    },
                    quota: None,
                    overrides: Vec::new(),
                    on_redis_failure: Default::default(),
                },
            )
            .await
            .unwrap();
        let router = admin::router(AdminState {
            registry: registry.clone(),
            node: Arc::new(Node),
        });
        App {
            router,
            registry,
            admin,
            _dir: dir,
        }
    }

    async fn call(&self, token: &str, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(if body.is_null() {
                Body::empty()
            } else {
                Body::from(body.to_string())
            })
            .unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn token(&self, role: &str, team: Option<&str>) -> String {
        let (status, body) = self
            .call(
                &self.admin,
                "POST",
                "/tokens",
                json!({"role": role, "team": team}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

const SECRET_K: &str = "c2hhcmVkLXNlY3JldC1vZi0zMi1ieXRlcy1vci1tb3JlISE";

fn hs_issuer() -> Value {
    json!({
        "issuer": "https://partners.example/",
        "audiences": ["gatehouse"],
        "algorithms": ["HS256"],
        "keys": [{"kty": "oct", "kid": "hs-1", "k": SECRET_K}],
        "consumer_claim": "client_id",
    })
}

#[tokio::test]
async fn issuers_are_created_listed_shown_and_removed_by_admins_only() {
    let app = App::new().await;
    let auditor = app.token("auditor", None).await;
    let architect = app.token("architect", None).await;

    let (status, _) = app.call(&architect, "POST", "/issuers", hs_issuer()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, created) = app.call(&app.admin, "POST", "/issuers", hs_issuer()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("iss_") && id.len() == 20, "{id}");
    assert_eq!(created["consumer_claim"], "client_id");
    assert_eq!(created["leeway_seconds"], 60);
    assert_eq!(
        created["inline_keys"],
        json!([{"kid": "hs-1", "kty": "oct", "alg": null}])
    );
    assert!(
        !created.to_string().contains(SECRET_K),
        "the secret came back"
    );

    let (status, again) = app.call(&app.admin, "POST", "/issuers", hs_issuer()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    let (status, list) = app.call(&auditor, "GET", "/issuers", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(SECRET_K));

    // By id or by the issuer URL, percent-encoded.
    let by_url = "/issuers/https%3A%2F%2Fpartners.example%2F";
    let (status, shown) = app.call(&auditor, "GET", by_url, Value::Null).await;
    assert_eq!(
        (status, shown["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    let (status, _) = app
        .call(&auditor, "DELETE", &format!("/issuers/{id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(&app.admin, "DELETE", by_url, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(&app.admin, "DELETE", &format!("/issuers/{id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let changes = app
        .registry
        .store()
        .list_changes(&Default::default())
        .await
        .unwrap();
    let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
    assert!(
        actions.ends_with(&["issuer.create", "issuer.delete"]),
        "{actions:?}"
    );
}

#[tokio::test]
async fn issuer_input_is_checked_before_anything_is_stored() {
    let app = App::new().await;
    let rsa_n = base64_of(256);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"issuer": "", "audiences": ["a"], "algorithms": ["RS256"], "jwks_uri": "https://x/"}),
            "/issuer",
        ),
        (
            json!({"issuer": "i", "audiences": [], "algorithms": ["RS256"], "jwks_uri": "https://x/"}),
            "/audiences",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["none"], "jwks_uri": "https://x/"}),
            "/algorithms/0",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": [], "jwks_uri": "https://x/"}),
            "/algorithms",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"]}),
            "/jwks_uri",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "jwks_uri": "ftp://x/"}),
            "/jwks_uri",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["HS256"], "jwks_uri": "https://x/"}),
            "/algorithms",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "jwks_uri": "https://x/", "consumer_claim": "email"}),
            "/consumer_claim",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "jwks_uri": "https://x/", "leeway_seconds": 3600}),
            "/leeway_seconds",
        ),
        // An RSA key cannot serve an HS256-only issuer (no RS/HS confusion by configuration).
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["HS256"], "keys": [{"kty": "RSA", "n": rsa_n, "e": "AQAB"}]}),
            "/keys/0",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["HS256"], "keys": [{"kty": "oct", "k": "c2hvcnQ"}]}),
            "/keys/0",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "keys": [{"kty": "RSA", "n": rsa_n, "e": "AQAB", "d": "AQAB"}]}),
            "/keys",
        ),
        (
            json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "keys": {"nope": []}}),
            "/keys",
        ),
    ];
    for (body, pointer) in cases {
        let (status, problem) = app.call(&app.admin, "POST", "/issuers", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(
            problem["errors"][0]["pointer"], pointer,
            "{body}: {problem}"
        );
    }
    let (status, _) = app
        .call(&app.admin, "POST", "/issuers", json!({"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "jwks_uri": "https://x/", "extra": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = app.call(&app.admin, "GET", "/issuers", Value::Null).await;
    assert_eq!(list["items"], json!([]));
}

fn base64_of(bytes: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0xc5u8; bytes])
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked_in_place() {
    let app = App::new().await;
    let (status, issued) = app
        .call(&app.admin, "POST", "/consumers/portal/keys", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = issued["key"].as_str().unwrap().to_owned();
    let id = issued["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("{id}.")));

    let auditor = app.token("auditor", None).await;
    let (status, list) = app
        .call(&auditor, "GET", "/consumers/portal/keys", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(
        !list.to_string().contains(&secret[13..]),
        "the secret is listed"
    );

    let (status, _) = app
        .call(
            &auditor,
            "DELETE",
            &format!("/consumers/portal/keys/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            &app.admin,
            "DELETE",
            &format!("/consumers/portal/keys/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app
        .call(&auditor, "GET", "/consumers/portal/keys", Value::Null)
        .await;
    assert!(list["items"][0]["revoked_at"].is_string());
}

#[tokio::test]
async fn owners_manage_subscriptions_to_their_own_teams_apis_only() {
    let app = App::new().await;
    let owner = app.token("owner", Some("inv")).await;
    let sub = |api: &str| json!({"api": api, "plan": "basic", "scopes": ["read"]});

    let (status, body) = app
        .call(
            &owner,
            "POST",
            "/consumers/portal/subscriptions",
            sub("inventory"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call(
            &owner,
            "POST",
            "/consumers/portal/subscriptions",
            sub("orders"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, _) = app
        .call(
            &app.admin,
            "POST",
            "/consumers/portal/subscriptions",
            sub("orders"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(
            &owner,
            "DELETE",
            "/consumers/portal/subscriptions/orders",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            &owner,
            "DELETE",
            "/consumers/portal/subscriptions/inventory",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Owners manage subscriptions, not consumers or keys.
    let (status, _) = app
        .call(&owner, "POST", "/consumers/portal/keys", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let role = app
        .registry
        .authenticate(&owner)
        .await
        .map(|a| a.role)
        .unwrap();
    assert_eq!(role, Role::Owner);
}
