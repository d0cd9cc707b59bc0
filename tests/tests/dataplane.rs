//! The data plane through a real `gatehouse serve` process: registry changes made through
//! the admin API reach the gateway's snapshot within a second, and the gateway routes,
//! refuses, mocks and proxies to real upstreams.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_tests::{
    EchoUpstream, GatehouseProcess, ServeOptions, client, dead_port, eventually, raw_get,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Polls `url` until it answers `status`; returns how long that took.
async fn until_status(url: &str, status: u16, deadline: Duration) -> Option<Duration> {
    let start = Instant::now();
    let c = client();
    eventually(deadline, || {
        let (c, url) = (c.clone(), url.to_owned());
        async move {
            let s = c.get(url).send().await.ok()?.status().as_u16();
            (s == status).then_some(())
        }
    })
    .await
    .map(|()| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_catalog_answers_through_the_gateway_from_mock() {
    let gh = GatehouseProcess::start(ServeOptions {
        seed: true,
        ..ServeOptions::default()
    })
    .await;
    let c = client();
    let resp = c
        .get(gh.url("/inventory/v2/availability/SKU-10042"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gh.logs());
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["sku"], "SKU-10042");

    // A named example, and an error example by status.
    let resp = c
        .get(gh.url("/inventory/v2/availability/SKU-20417"))
        .header("Prefer", "example=out_of_stock")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["network"]["available_to_promise"],
        0
    );
    let resp = c
        .get(gh.url("/inventory/v2/warehouses/WH-BOS-09"))
        .header("Prefer", "code=404")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Header routing and the default major (2) of inventory.
    let resp = c
        .get(gh.url("/inventory/warehouses"))
        .header("API-Version", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // v1 is deprecated with a sunset and a successor in the catalog.
    assert!(resp.headers().contains_key("deprecation"));
    assert!(resp.headers().contains_key("sunset"));
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("</inventory/v2>; rel=\"successor-version\""),
        "{link}"
    );
    let resp = c.get(gh.url("/inventory/warehouses")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("deprecation"));

    // A POST with a body is answered from the spec too.
    let resp = c
        .post(gh.url("/inventory/v2/batch-inquiries"))
        .header("content-type", "application/json")
        .body(r#"{"lines":[{"sku":"SKU-10042","quantity":1,"unit_of_measure":"each"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // readyz shows the snapshot; metrics count what was served.
    let (s, ready) = gh.admin().get("/readyz").await;
    assert_eq!(s, 200);
    assert!(
        ready["detail"]["snapshot"]["generation"].as_i64().unwrap() > 0,
        "{ready}"
    );
    let metrics = gh.metrics().await;
    assert!(
        metrics.contains("gatehouse_requests_total{api=\"inventory\",major=\"2\""),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_snapshot_generation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_registered_through_the_admin_api_is_routable_within_a_second() {
    let up = EchoUpstream::start("erp").await;
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    assert_eq!(
        client()
            .get(gh.url("/echo/v1/items/1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    admin
        .register_echo("echo", "1.0.0", &[(&up.url("/base"), 1)])
        .await;
    let took = until_status(&gh.url("/echo/v1/items/1"), 200, Duration::from_secs(1)).await;
    assert!(took.is_some(), "not routable within 1 s:\n{}", gh.logs());
    let v: Value = client()
        .get(gh.url("/echo/v1/items/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/base/items/1");

    // A second major registered as a draft is not routable until published.
    let (s, b) = admin
        .post("/apis/echo/versions", &gatehouse_tests::echo_spec("2.0.0"))
        .await;
    assert_eq!(s, 201, "{b}");
    admin.set_upstream("echo", 2, &[(&up.url(""), 1)]).await;
    let r = client()
        .get(gh.url("/echo/v2/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["available_majors"], json!([1]));
    let (s, b) = admin
        .post("/apis/echo/versions/2.0.0/publish", &json!({}))
        .await;
    assert!(s < 300, "{b}");
    let took = until_status(&gh.url("/echo/v2/items/1"), 200, Duration::from_secs(1)).await;
    assert!(took.is_some(), "publish not live within 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecation_brownout_sunset_and_retirement_through_the_admin_api() {
    let up = EchoUpstream::start("erp").await;
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    admin
        .register_echo("echo", "1.0.0", &[(&up.url(""), 1)])
        .await;
    admin
        .register_echo("echo", "2.0.0", &[(&up.url(""), 1)])
        .await;
    let url = gh.url("/echo/v1/items/1");
    assert!(
        until_status(&url, 200, Duration::from_secs(1))
            .await
            .is_some()
    );

    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (s, b) = admin
        .post(
            "/apis/echo/versions/1.0.0/deprecate",
            &json!({
                // At least the API's minimum notice (90 days by default) ahead.
                "sunset": fmt(now + time::Duration::days(120)),
                "successor": "2.0.0",
                "link": "https://dev.example/echo/v1",
                "brownouts": [{
                    "start": fmt(now + time::Duration::seconds(2)),
                    "end": fmt(now + time::Duration::seconds(4)),
                }],
            }),
        )
        .await;
    assert!(s < 300, "deprecate: {s} {b}");
    let c = client();
    let deprecated = eventually(Duration::from_secs(1), || {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c.get(url).send().await.ok()?;
            r.headers().contains_key("deprecation").then_some(r)
        }
    })
    .await
    .expect("deprecation headers within 1 s");
    assert_eq!(deprecated.status(), 200);
    assert!(deprecated.headers().contains_key("sunset"));
    assert!(
        deprecated.headers()["link"]
            .to_str()
            .unwrap()
            .contains("</echo/v2>; rel=\"successor-version\"")
    );

    // The brownout window opens and closes by itself (time, not a registry change).
    assert!(
        until_status(&url, 410, Duration::from_secs(5))
            .await
            .is_some(),
        "no brownout"
    );
    let r = c.get(&url).send().await.unwrap();
    if r.status() == 410 {
        assert_eq!(r.headers()["cache-control"], "no-store");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["type"], "urn:gatehouse:problem:version-brownout");
        assert_eq!(b["successor"], "/echo/v2");
    }
    assert!(
        until_status(&url, 200, Duration::from_secs(5))
            .await
            .is_some(),
        "brownout never ended"
    );

    // Retiring before the sunset takes an admin's force and a reason.
    let (s, b) = admin
        .post(
            "/apis/echo/versions/1.0.0/retire",
            &json!({"force": true, "reason": "the data plane's 410 is under test"}),
        )
        .await;
    assert!(s < 300, "retire: {s} {b}");
    assert!(
        until_status(&url, 410, Duration::from_secs(1))
            .await
            .is_some(),
        "retire not live"
    );
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=3600");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["type"], "urn:gatehouse:problem:version-retired");
    assert!(b["detail"].as_str().unwrap().contains("/echo/v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_timeouts_and_a_dead_upstream_through_serve() {
    let legacy = EchoUpstream::start("legacy").await;
    let cloud = EchoUpstream::start("cloud").await;
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    admin
        .register_echo(
            "echo",
            "1.0.0",
            &[(&legacy.url(""), 80), (&cloud.url(""), 20)],
        )
        .await;
    let url = gh.url("/echo/v1/items/1");
    assert!(
        until_status(&url, 200, Duration::from_secs(1))
            .await
            .is_some()
    );
    let c = client();
    let mut to_legacy = 0;
    for _ in 0..1000 {
        let v: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
        if v["upstream"] == "legacy" {
            to_legacy += 1;
        }
    }
    assert!(
        (750..=850).contains(&to_legacy),
        "{to_legacy} of 1000 at 80%"
    );

    // The registry's read timeout (1 s in register_echo) → 504.
    let r = c.get(gh.url("/echo/v1/slow?ms=3000")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Every target dead → 503.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    admin.set_upstream("echo", 1, &[(&dead, 1)]).await;
    assert!(
        until_status(&url, 503, Duration::from_secs(1))
            .await
            .is_some()
    );
    let b: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["type"], "urn:gatehouse:problem:upstream-unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_normalisation_cannot_reach_another_version_through_serve() {
    let v1 = EchoUpstream::start("v1").await;
    let v2 = EchoUpstream::start("v2").await;
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let admin = gh.admin();
    admin
        .register_echo("echo", "1.0.0", &[(&v1.url(""), 1)])
        .await;
    admin
        .register_echo("echo", "2.0.0", &[(&v2.url(""), 1)])
        .await;
    assert!(
        until_status(&gh.url("/echo/v2/items/1"), 200, Duration::from_secs(1))
            .await
            .is_some()
    );
    for target in [
        "/echo/v2/../v1/items/1",
        "/echo/v2/%2e%2e/v1/items/1",
        "/echo/v2/%2E%2e%2Fv1/items/1",
        "/echo/v2/items/..%2F..%2Fv1%2Fitems%2F1",
        "/echo/v2//items/1",
    ] {
        let (status, text) = raw_get(gh.proxy, target, "").await;
        assert_eq!(status, 400, "{target}: {text}");
    }
    let (status, text) = raw_get(gh.proxy, "/echo/v2/items/a%2F..%2Fb", "").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(v1.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_dropped_while_the_registry_changes_under_load() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let gh = Arc::new(GatehouseProcess::start(ServeOptions::default()).await);
    let admin = gh.admin();
    admin
        .register_echo("echo", "1.0.0", &[(&a.url(""), 1)])
        .await;
    let url = gh.url("/echo/v1/items/1");
    assert!(
        until_status(&url, 200, Duration::from_secs(1))
            .await
            .is_some()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (url, stop, ok) = (url.clone(), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    for i in 0..20 {
        let target = if i % 2 == 0 { b.url("") } else { a.url("") };
        admin.set_upstream("echo", 1, &[(&target, 1)]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let failures = w.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert!(a.hits() > 0 && b.hits() > 0, "the swaps took effect");
}

/// Two nodes sharing PostgreSQL: a change made through one node's admin API reaches the
/// other node's gateway within a second (LISTEN/NOTIFY, polling as the fallback). Runs when
/// `GATEHOUSE_TEST_POSTGRES_URL` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_sharing_postgres_routes_a_new_version_within_a_second() {
    // A fresh schema: a shared one would carry other runs' tokens and migrations.
    let Some(schema) = gatehouse_tests::PgSchema::create().await else {
        return;
    };
    let url = schema.url().to_owned();
    let up = EchoUpstream::start("erp").await;
    let (admin_node, gateway_node) =
        GatehouseProcess::pair_sharing(&url, "gh_test_fresh_postgres_bootstrap").await;
    // A slug of its own: the shared database outlives test runs.
    let slug = format!("echo{}", gatehouse_tests::free_port());
    admin_node
        .admin()
        .register_echo(&slug, "1.0.0", &[(&up.url(""), 1)])
        .await;
    let took = until_status(
        &gateway_node.url(&format!("/{slug}/v1/items/1")),
        200,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        took.is_some(),
        "second node not routable within 1 s:\n{}",
        gateway_node.logs()
    );
}
