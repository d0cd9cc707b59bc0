//! Consumer identity through a real `gatehouse serve` process: API keys, JWTs from a real
//! JWKS endpoint served over HTTP by this test, subscriptions and OpenAPI scopes.
//!
//! Tokens are fixed vectors signed by an independent library (PyJWT, see
//! `tests/fixtures/jwt/make_vectors.py`): valid ones expire in 2100, the expired one in 2001,
//! so nothing here signs at test time. Tokens with random `kid`s (the flood) need no
//! signature: they are refused before any key is used.

#![allow(clippy::unwrap_used)] // tests may unwrap

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use gatehouse_tests::{EchoUpstream, GatehouseProcess, ServeOptions, eventually};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VECTORS: &str = include_str!("../fixtures/jwt/vectors.json");
/// The unknown-`kid` refresh interval the gateway runs with here.
const REFRESH_SECS: u64 = 2;

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn token(name: &str) -> String {
    vectors()["tokens"][name]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no vector {name}"))
        .to_owned()
}

/// A JWKS endpoint: serves the current key set, counts fetches, can be switched off.
struct JwksServer {
    addr: std::net::SocketAddr,
    body: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct JwksState {
    body: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(State(s): State<JwksState>) -> axum::response::Response {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    let body = s.body.lock().unwrap().to_string();
    (
        [
            ("content-type", "application/jwk-set+json"),
            ("cache-control", "public, max-age=600"),
        ],
        body,
    )
        .into_response()
}

impl JwksServer {
    async fn start(keys: Value) -> Self {
        let body = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/jwks.json", axum::routing::get(serve_jwks))
            .with_state(JwksState {
                body: body.clone(),
                fetches: fetches.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            addr,
            body,
            fetches,
            task,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: Value) {
        *self.body.lock().unwrap() = keys;
    }

    /// The identity provider goes down: connections are refused from now on.
    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain client: no harness key, so each request presents exactly what the test says.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The API of these tests: GET /items/{id} needs `inventory:read` (API key or OAuth2),
/// POST /orders needs `orders:write`.
fn shop_spec() -> Value {
    let mut spec = gatehouse_tests::echo_spec("1.0.0");
    spec["info"]["title"] = json!("Shop");
    spec["security"] = json!([{"apiKey": ["inventory:read"]}, {"oauth2": ["inventory:read"]}]);
    spec["paths"]["/orders"] = json!({"post": {
        "operationId": "submitOrder",
        "security": [{"oauth2": ["orders:write"]}, {"apiKey": ["orders:write"]}],
        "responses": {"201": {"description": "created"}}
    }});
    spec["components"] = json!({"securitySchemes": {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "oauth2": {"type": "oauth2", "flows": {"clientCredentials": {
            "tokenUrl": "https://idp.northwind.test/token",
            "scopes": {"inventory:read": "read", "orders:write": "write"}
        }}}
    }});
    spec
}

/// Registers the shop API on `gh` with upstream `up`, consumer `b2b-portal` subscribed
/// with `inventory:read`, consumer `no-subscriptions`, the main issuer (JWKS at `jwks`)
/// and the HS256 issuer (inline key).
async fn setup(gh: &GatehouseProcess, up: &EchoUpstream, jwks_uri: &str, slug: &str) {
    let a = gh.admin();
    let ok = |what: &str, (s, b): (u16, Value)| {
        assert!(s == 201 || s == 200 || s == 409, "{what}: {s} {b}");
    };
    ok(
        "team",
        a.post(
            "/teams",
            &json!({"name": "shop-team", "contact": "s@example.com"}),
        )
        .await,
    );
    ok(
        "api",
        a.post(
            "/apis",
            &json!({"slug": slug, "title": "Shop", "team": "shop-team"}),
        )
        .await,
    );
    ok(
        "version",
        a.post(&format!("/apis/{slug}/versions"), &shop_spec())
            .await,
    );
    ok(
        "publish",
        a.post(&format!("/apis/{slug}/versions/1.0.0/publish"), &json!({}))
            .await,
    );
    a.set_upstream(slug, 1, &[(&up.url(""), 1)]).await;
    ok(
        "plan",
        a.post(
            "/plans",
            &json!({"name": "shop-plan", "rate": {"requests": 100000, "per_seconds": 1}}),
        )
        .await,
    );
    for c in ["b2b-portal", "no-subscriptions"] {
        ok("consumer", a.post("/consumers", &json!({"name": c})).await);
    }
    ok(
        "subscription",
        a.post(
            "/consumers/b2b-portal/subscriptions",
            &json!({"api": slug, "plan": "shop-plan", "scopes": ["inventory:read"]}),
        )
        .await,
    );
    let v = vectors();
    let main = &v["issuers"]["main"];
    ok(
        "issuer",
        a.post(
            "/issuers",
            &json!({"issuer": main["issuer"], "audiences": main["audiences"],
                    "algorithms": main["algorithms"], "jwks_uri": jwks_uri}),
        )
        .await,
    );
    let hs = &v["issuers"]["hs"];
    ok(
        "hs issuer",
        a.post(
            "/issuers",
            &json!({"issuer": hs["issuer"], "audiences": hs["audiences"],
                    "algorithms": hs["algorithms"], "keys": hs["jwks"]}),
        )
        .await,
    );
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn call(gh: &GatehouseProcess, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = bare_client().request(method.parse().unwrap(), gh.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let www_authenticate = header("www-authenticate");
    let content_type = header("content-type");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        www_authenticate,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn bearer(gh: &GatehouseProcess, slug: &str, name: &str) -> Answer {
    let auth = format!("Bearer {}", token(name));
    call(
        gh,
        "GET",
        &format!("/{slug}/v1/items/1"),
        &[("authorization", &auth)],
    )
    .await
}

fn serve_options() -> ServeOptions {
    ServeOptions {
        env: vec![(
            "GATEHOUSE_JWKS_MIN_REFRESH_SECONDS",
            REFRESH_SECS.to_string(),
        )],
        ..ServeOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwt_and_api_key_identity_through_serve() {
    let v = vectors();
    let jwks = JwksServer::start(v["issuers"]["main"]["jwks"].clone()).await;
    let up = EchoUpstream::start("shop").await;
    let gh = GatehouseProcess::start(serve_options()).await;
    let slug = "shop";
    setup(&gh, &up, &jwks.uri(), slug).await;

    // The issuer's keys are fetched in the background; the first valid token gets through
    // once they are there (and the snapshot has the issuer).
    let ready = eventually(Duration::from_secs(10), || async {
        (bearer(&gh, slug, "rs256_valid").await.status == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "RS256 never accepted:\n{}", gh.logs());

    // -- valid tokens of every algorithm; what the upstream sees -------------------------
    for name in [
        "rs256_valid",
        "es256_valid",
        "eddsa_valid",
        "hs256_valid",
        "rs256_no_kid",
        "aud_list",
    ] {
        let a = bearer(&gh, slug, name).await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
        let seen = &a.body["headers"];
        assert_eq!(seen["x-consumer"], "b2b-portal", "{name}");
        assert!(
            seen.get("authorization").is_none(),
            "{name}: the token reached the upstream"
        );
        assert!(seen.get("x-api-key").is_none());
    }
    // A client cannot claim to be someone else.
    let auth = format!("Bearer {}", token("rs256_valid"));
    let a = call(
        &gh,
        "GET",
        &format!("/{slug}/v1/items/1"),
        &[("authorization", &auth), ("x-consumer", "admin")],
    )
    .await;
    assert_eq!(a.body["headers"]["x-consumer"], "b2b-portal");

    // -- refused tokens: 401 invalid_token, problem+json ---------------------------------
    for name in [
        "alg_none",
        "hs256_with_rsa_public_key",
        "expired",
        "not_yet_valid",
        "wrong_iss",
        "wrong_aud",
        "missing_sub",
        "missing_exp",
        "bad_signature",
        "jku_injection",
        "es256_key_with_rs256_header",
    ] {
        let a = bearer(&gh, slug, name).await;
        assert_eq!(a.status, 401, "{name}: {}", a.body);
        let challenge = a.www_authenticate.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(
            a.body["type"], "urn:gatehouse:problem:unauthorized",
            "{name}"
        );
    }

    // -- authorization: scopes from the spec, subscriptions -------------------------------
    let a = bearer(&gh, slug, "rs256_no_scope").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["missing_scopes"], json!(["inventory:read"]));
    assert!(
        a.www_authenticate
            .unwrap_or_default()
            .contains("error=\"insufficient_scope\", scope=\"inventory:read\"")
    );
    let a = call(
        &gh,
        "POST",
        &format!("/{slug}/v1/orders"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["type"], "urn:gatehouse:problem:insufficient-scope");
    assert_eq!(a.body["missing_scopes"], json!(["orders:write"]));
    let a = bearer(&gh, slug, "rs256_not_subscribed").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["type"], "urn:gatehouse:problem:forbidden");
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("no subscription")
    );

    // -- missing, malformed and oversized credentials ------------------------------------
    let path = format!("/{slug}/v1/items/1");
    let a = call(&gh, "GET", &path, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.www_authenticate.as_deref(),
        Some("Bearer realm=\"gatehouse\"")
    );
    for bad in [
        "Bearer",
        "Bearer a b c",
        "Bearer a\"b",
        "Basic dXNlcjpwdw==",
        "Bearer not.a.jwt",
    ] {
        let a = call(&gh, "GET", &path, &[("authorization", bad)]).await;
        assert_eq!(a.status, 401, "{bad}: {}", a.body);
    }
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let hits = up.hits();
    let a = call(&gh, "GET", &path, &[("authorization", &huge)]).await;
    assert!(
        a.status == 401 || a.status == 431 || a.status == 400,
        "64 KiB Authorization: {}",
        a.status
    );
    assert_eq!(up.hits(), hits, "a refused request reached the upstream");

    // -- API keys --------------------------------------------------------------------------
    let admin = gh.admin();
    let (s, issued) = admin.post("/consumers/b2b-portal/keys", &json!({})).await;
    assert_eq!(s, 201);
    let key = issued["key"].as_str().unwrap().to_owned();
    let key_id = issued["id"].as_str().unwrap().to_owned();
    let accepted = eventually(Duration::from_secs(2), || async {
        (call(&gh, "GET", &path, &[("x-api-key", &key)]).await.status == 200).then_some(())
    })
    .await;
    assert!(
        accepted.is_some(),
        "the new key was not accepted within 2 s"
    );
    let a = call(&gh, "GET", &path, &[("x-api-key", &key)]).await;
    assert_eq!(a.body["headers"]["x-consumer"], "b2b-portal");
    assert!(
        a.body["headers"].get("x-api-key").is_none(),
        "the key reached the upstream"
    );
    let a = call(
        &gh,
        "GET",
        &path,
        &[("x-api-key", &key), ("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status, 401, "two credentials");
    let a = call(
        &gh,
        "POST",
        &format!("/{slug}/v1/orders"),
        &[("x-api-key", &key)],
    )
    .await;
    assert_eq!(
        (a.status, a.body["missing_scopes"].clone()),
        (403, json!(["orders:write"]))
    );
    let forged = format!("{key_id}.{}", "A".repeat(43));
    assert_eq!(
        call(&gh, "GET", &path, &[("x-api-key", &forged)])
            .await
            .status,
        401
    );
    // Last used, written in a batch (every 5 s), never per request.
    let used = eventually(Duration::from_secs(8), || async {
        let (_, keys) = admin.get("/consumers/b2b-portal/keys").await;
        keys["items"]
            .as_array()?
            .iter()
            .find(|k| k["id"] == key_id.as_str())?["last_used_at"]
            .as_str()
            .map(|_| ())
    })
    .await;
    assert!(used.is_some(), "last_used_at was never recorded");
    let (s, _) = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/consumers/b2b-portal/keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let started = Instant::now();
    let refused = eventually(Duration::from_secs(1), || async {
        (call(&gh, "GET", &path, &[("x-api-key", &key)]).await.status == 401).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "revoked key still accepted after {:?}",
        started.elapsed()
    );

    // -- rotation: an unknown kid triggers a refresh; accepted without restart -----------
    let a = bearer(&gh, slug, "unknown_kid_rotated").await;
    assert_eq!(a.status, 401, "{}", a.body);
    jwks.publish(v["issuers"]["main"]["jwks_rotated"].clone());
    let rotated = eventually(Duration::from_secs(REFRESH_SECS * 3 + 2), || async {
        (bearer(&gh, slug, "unknown_kid_rotated").await.status == 200).then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "the rotated key was never picked up:\n{}",
        gh.logs()
    );

    // -- a flood of random kids: at most one fetch per interval --------------------------
    let before = jwks.fetches();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..25 {
        let (url, client) = (gh.url(&path), bare_client());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                let t = forged_token(&format!("random-{worker}-{i}"));
                let r = client
                    .get(&url)
                    .header("authorization", format!("Bearer {t}"))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap().iter().filter(|s| **s == 401).count();
    }
    let elapsed = started.elapsed();
    assert_eq!(refused, 1000);
    let fetched = jwks.fetches() - before;
    let allowed = 1 + (elapsed.as_secs_f64() / REFRESH_SECS as f64).ceil() as usize;
    assert!(
        fetched <= allowed,
        "{fetched} JWKS fetches for 1,000 unknown kids in {elapsed:?} (allowed {allowed})"
    );

    // -- the identity provider goes down: cached keys keep serving -----------------------
    jwks.stop();
    assert_eq!(bearer(&gh, slug, "jku_injection").await.status, 401); // asks for a refresh
    let failed = eventually(Duration::from_secs(REFRESH_SECS * 2 + 3), || async {
        gh.logs().contains("JWKS fetch failed").then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "no failed fetch was logged:\n{}",
        gh.logs()
    );
    for name in [
        "rs256_valid",
        "es256_valid",
        "eddsa_valid",
        "unknown_kid_rotated",
    ] {
        assert_eq!(
            bearer(&gh, slug, name).await.status,
            200,
            "{name} after the provider went down"
        );
    }

    // -- no secret in the logs -------------------------------------------------------------
    let logs = gh.logs();
    let secret_part = key.split_once('.').unwrap().1;
    assert!(
        !logs.contains(secret_part),
        "the API key secret is in the logs"
    );
    for name in ["rs256_valid", "hs256_valid", "alg_none", "bad_signature"] {
        let t = token(name);
        let signature = t.rsplit_once('.').unwrap().1;
        assert!(
            signature.is_empty() || !logs.contains(signature),
            "{name} is in the logs"
        );
        assert!(!logs.contains(&t), "{name} is in the logs");
    }
    let hs_secret = v["issuers"]["hs"]["jwks"]["keys"][0]["k"].as_str().unwrap();
    assert!(!logs.contains(hs_secret), "the HS256 secret is in the logs");
    let (_, issuers) = admin.get("/issuers").await;
    assert!(
        !issuers.to_string().contains(hs_secret),
        "the HS256 secret is listed"
    );
}

/// An unsigned token naming the main issuer and a `kid` it never published.
fn forged_token(kid: &str) -> String {
    use base64::Engine;
    let b = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = b(json!({"alg": "RS256", "kid": kid}));
    let claims = b(
        json!({"iss": "https://idp.northwind.test/", "aud": "gatehouse",
                           "sub": "b2b-portal", "exp": 4102444800u64}),
    );
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

/// A key revoked through one node's admin API is refused by another node sharing
/// PostgreSQL within a second. Runs when `GATEHOUSE_TEST_POSTGRES_URL` is set, in a schema
/// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_within_a_second_on_a_second_node() {
    let Ok(base) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("gh_identity_{}", gatehouse_tests::free_port());
    let mut admin_conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&base).await.unwrap()
    };
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin_conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let outcome = {
        let url = url.clone();
        tokio::spawn(async move { revoked_key_scenario(url).await })
    }
    .await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin_conn)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn revoked_key_scenario(url: String) {
    let up = EchoUpstream::start("shop").await;
    let (admin_node, gateway_node) =
        GatehouseProcess::pair_sharing(&url, "gh_test_identity_pg_bootstrap").await;
    let jwks = JwksServer::start(json!({"keys": []})).await;
    setup(&admin_node, &up, &jwks.uri(), "shop").await;
    let admin = admin_node.admin();
    let (s, issued) = admin.post("/consumers/b2b-portal/keys", &json!({})).await;
    assert_eq!(s, 201);
    let key = issued["key"].as_str().unwrap().to_owned();
    let id = issued["id"].as_str().unwrap().to_owned();
    let path = "/shop/v1/items/1";
    let live = eventually(Duration::from_secs(3), || async {
        (call(&gateway_node, "GET", path, &[("x-api-key", &key)])
            .await
            .status
            == 200)
            .then_some(())
    })
    .await;
    assert!(
        live.is_some(),
        "key never accepted on the second node:\n{}",
        gateway_node.logs()
    );
    let (s, _) = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/consumers/b2b-portal/keys/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let revoked = Instant::now();
    let refused = eventually(Duration::from_secs(1), || async {
        let a = call(&gateway_node, "GET", path, &[("x-api-key", &key)]).await;
        (a.status == 401).then_some(a)
    })
    .await;
    let a = refused.unwrap_or_else(|| {
        panic!(
            "revoked key still accepted on the second node after {:?}",
            revoked.elapsed()
        )
    });
    assert!(
        a.www_authenticate
            .unwrap_or_default()
            .contains("revoked API key")
    );
}

/// The caller's bearer token reaches the upstream only where the API sets `forward_bearer`;
/// `X-Consumer` always does. In-process gateway, issuer with an inline HS256 key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_reaches_the_upstream_only_where_the_api_opts_in() {
    use gatehouse_registry::model::{Consumer, Issuer, Subscription};
    let up = EchoUpstream::start("erp").await;
    let mut contents = gatehouse_tests::echo_contents(&[(&up.url(""), 1)], &[(&up.url(""), 1)]);
    let v = vectors();
    let hs = &v["issuers"]["hs"];
    let issuer = hs["issuer"].as_str().unwrap();
    contents.issuers.push(Issuer {
        id: Issuer::id_for(issuer),
        issuer: issuer.into(),
        audiences: vec!["gatehouse".into()],
        algorithms: vec!["HS256".into()],
        jwks_uri: None,
        keys: Some(hs["jwks"].clone()),
        consumer_claim: "sub".into(),
        leeway_seconds: 60,
        created_at: time::OffsetDateTime::now_utc(),
    });
    contents.consumers.push(Consumer {
        name: "b2b-portal".into(),
        contact: None,
        created_at: time::OffsetDateTime::now_utc(),
    });
    contents.subscriptions.push(Subscription {
        consumer: "b2b-portal".into(),
        api: "echo".into(),
        majors: vec![1],
        plan: "p".into(),
        scopes: Vec::new(),
    });
    let gw = gatehouse_tests::InProcessGateway::start(&contents).await;
    let auth = format!("Bearer {}", token("hs256_valid"));
    let seen = || async {
        let r = bare_client()
            .get(gw.url("/echo/v1/items/1"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["headers"].clone()
    };
    let h = seen().await;
    assert_eq!(h["x-consumer"], "b2b-portal");
    assert!(h.get("authorization").is_none(), "{h}");

    contents.apis[0].forward_bearer = true;
    gw.install(&contents).await;
    let h = seen().await;
    assert_eq!(h["authorization"], auth.as_str());
    assert_eq!(h["x-consumer"], "b2b-portal");

    // Only v1 is subscribed.
    let r = bare_client()
        .get(gw.url("/echo/v2/items/1"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
