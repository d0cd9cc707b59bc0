//! The data plane end to end, in process: the real Pingora service of `gatehouse-gateway`
//! with snapshots installed directly, real upstream servers, a real HTTP client. No store,
//! so these run without `gatehouse serve`; `dataplane.rs` covers the same through it.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_registry::model::{Brownout, Contents, LifecycleState};
use gatehouse_tests::{
    EchoUpstream, InProcessGateway, client, dead_port, echo_contents, echo_spec, eventually,
    raw_get, records,
};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

async fn problem(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "status {status}"
    );
    let body: Value = resp.json().await.unwrap();
    let rid = headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(body["instance"], rid, "instance is the request id");
    assert_eq!(body["status"], status);
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_header_and_default_routing_reach_the_right_upstream_path() {
    let one = EchoUpstream::start("one").await;
    let two = EchoUpstream::start("two").await;
    let gw = InProcessGateway::start(&echo_contents(
        &[(&one.url(""), 1)],
        &[(&two.url("/erp/api/"), 1)],
    ))
    .await;
    let c = client();

    let v: Value = c
        .get(gw.url("/echo/v2/items/7?x=1&y=%2F"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["upstream"], "two");
    assert_eq!(v["path"], "/erp/api/items/7");
    assert_eq!(v["query"], "x=1&y=%2F");

    let v: Value = c
        .get(gw.url("/echo/items/7"))
        .header("API-Version", "2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["upstream"].as_str(), v["path"].as_str()),
        (Some("two"), Some("/erp/api/items/7"))
    );

    // No version anywhere: the API's default major (1).
    let v: Value = c
        .get(gw.url("/echo/items/7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["upstream"].as_str(), v["path"].as_str()),
        (Some("one"), Some("/items/7"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_problem_json_with_request_ids() {
    let up = EchoUpstream::start("one").await;
    let mut contents = echo_contents(&[(&up.url(""), 1)], &[(&up.url(""), 1)]);
    contents.versions.push(records::version(
        "echo",
        "3.0.0",
        LifecycleState::Draft,
        &echo_spec("3.0.0"),
    ));
    let gw = InProcessGateway::start(&contents).await;
    let c = client();

    let (s, _, b) = problem(c.get(gw.url("/nothing/v1/items")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (404, Some("urn:gatehouse:problem:unknown-api"))
    );

    // Drafts are not routable, and the answer lists the majors that are.
    let (s, _, b) = problem(c.get(gw.url("/echo/v3/items")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (404, Some("urn:gatehouse:problem:unknown-version"))
    );
    assert_eq!(b["available_majors"], serde_json::json!([1, 2]));

    let (s, _, b) = problem(c.get(gw.url("/echo/v1/nothing")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (404, Some("urn:gatehouse:problem:unknown-path"))
    );

    let (s, h, b) = problem(c.patch(gw.url("/echo/v1/items/1")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (405, Some("urn:gatehouse:problem:method-not-allowed"))
    );
    assert_eq!(h.get("allow").unwrap(), "GET, PUT, DELETE");

    let (s, _, _) = problem(
        c.get(gw.url("/echo/v1/items"))
            .header("API-Version", "2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(up.hits(), 0, "no refused request reached the upstream");

    // A client's request id is kept on refusals too.
    let resp = c
        .get(gw.url("/nothing"))
        .header("X-Request-Id", "client-chose-this")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chose-this");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_to_the_upstream_and_back() {
    let up = EchoUpstream::start("one").await;
    let gw =
        InProcessGateway::start(&echo_contents(&[(&up.url(""), 1)], &[(&up.url(""), 1)])).await;
    let c = client();
    let resp = c
        .get(gw.url("/echo/v1/items/1"))
        // The harness's API key (X-API-Key) identifies the caller; an Authorization of
        // another scheme beside it is ignored. Neither may reach the upstream.
        .header("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
        .header("X-Consumer", "someone-else")
        .header("X-Forwarded-For", "198.51.100.7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(rid.len(), 36, "a UUID was generated: {rid}");
    assert!(
        resp.headers().get("keep-alive").is_none(),
        "hop-by-hop removed"
    );
    let v: Value = resp.json().await.unwrap();
    let h = &v["headers"];
    assert!(h.get("authorization").is_none(), "{h}");
    assert!(h.get("x-api-key").is_none(), "{h}");
    assert_eq!(h["x-consumer"], gatehouse_tests::TEST_CONSUMER, "{h}");
    assert_eq!(h["x-request-id"], rid.as_str());
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], gw.addr.to_string());
    assert_eq!(h["host"], up.addr.to_string());
    assert_eq!(
        h["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    // Without one, a trace is started.
    let v: Value = c
        .get(gw.url("/echo/v1/items/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tp = v["headers"]["traceparent"].as_str().unwrap();
    assert!(tp.starts_with("00-") && tp.len() == 55, "{tp}");
}

fn lifecycle_contents(up: &str, edit: impl FnOnce(&mut Contents)) -> Contents {
    let mut c = echo_contents(&[(up, 1)], &[(up, 1)]);
    let v1 = &mut c.versions[0];
    v1.state = LifecycleState::Deprecated;
    v1.deprecated_at = Some(OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap());
    v1.successor = Some("2.0.0".into());
    v1.deprecation_link = Some("https://dev.example/echo/v1".into());
    edit(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecation_sunset_successor_and_brownout() {
    let up = EchoUpstream::start("one").await;
    let now = OffsetDateTime::now_utc();
    let sunset = (now + time::Duration::days(30))
        .replace_nanosecond(0)
        .unwrap();
    let gw = InProcessGateway::start(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].sunset_at = Some(sunset);
    }))
    .await;
    let c = client();

    // Deprecated, before the sunset: served, with the lifecycle headers.
    let resp = c.get(gw.url("/echo/v1/items/1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["deprecation"], "@1767225600");
    let sunset_header = h["sunset"].to_str().unwrap();
    let parsed = time::OffsetDateTime::parse(
        sunset_header,
        &time::format_description::well_known::Rfc2822,
    )
    .unwrap();
    assert_eq!(parsed.unix_timestamp(), sunset.unix_timestamp());
    let link = h["link"].to_str().unwrap();
    assert!(
        link.contains("</echo/v2>; rel=\"successor-version\""),
        "{link}"
    );
    assert!(
        link.contains("<https://dev.example/echo/v1>; rel=\"deprecation\""),
        "{link}"
    );
    // The successor carries none of them.
    let resp = c.get(gw.url("/echo/v2/items/1")).send().await.unwrap();
    assert!(resp.headers().get("deprecation").is_none());

    // A brownout window around now: 410 that must not be cached, naming the successor.
    gw.install(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].sunset_at = Some(sunset);
        c.versions[0].brownouts = vec![Brownout {
            start: now - time::Duration::minutes(1),
            end: now + time::Duration::minutes(10),
        }];
    }))
    .await;
    let (s, h, b) = problem(c.get(gw.url("/echo/v1/items/1")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (410, Some("urn:gatehouse:problem:version-brownout"))
    );
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.contains_key("retry-after"));
    assert_eq!(b["successor"], "/echo/v2");
    assert!(h.contains_key("deprecation"));

    // A window that has closed: served again.
    gw.install(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].brownouts = vec![Brownout {
            start: now - time::Duration::minutes(10),
            end: now - time::Duration::minutes(5),
        }];
    }))
    .await;
    assert_eq!(
        c.get(gw.url("/echo/v1/items/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Past the sunset: 410 gone, cacheable.
    gw.install(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].sunset_at = Some(now - time::Duration::seconds(1));
    }))
    .await;
    let (s, h, b) = problem(c.get(gw.url("/echo/v1/items/1")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (410, Some("urn:gatehouse:problem:version-retired"))
    );
    assert_eq!(h["cache-control"], "public, max-age=3600");
    assert!(b["detail"].as_str().unwrap().contains("/echo/v2"));

    // A sunset a moment ahead flips to 410 by itself, with no new snapshot.
    gw.install(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].sunset_at =
            Some(OffsetDateTime::now_utc() + time::Duration::milliseconds(400));
    }))
    .await;
    let flipped = eventually(Duration::from_secs(5), || {
        let c = c.clone();
        let url = gw.url("/echo/v1/items/1");
        async move {
            let s = c.get(url).send().await.ok()?.status().as_u16();
            (s == 410).then_some(())
        }
    })
    .await;
    assert!(flipped.is_some(), "the sunset passed without a 410");

    // Retired: 410 on every path, even unknown ones.
    gw.install(&lifecycle_contents(&up.url(""), |c| {
        c.versions[0].state = LifecycleState::Retired;
    }))
    .await;
    let (s, _, b) = problem(c.get(gw.url("/echo/v1/whatever")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (410, Some("urn:gatehouse:problem:version-retired"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_80_20_lands_within_5_points() {
    let a = EchoUpstream::start("legacy-erp").await;
    let b = EchoUpstream::start("cloud-erp").await;
    let gw = InProcessGateway::start(&echo_contents(
        &[(&a.url(""), 80), (&b.url(""), 20)],
        &[(&a.url(""), 1)],
    ))
    .await;
    let c = client();
    let mut to_a = 0;
    for _ in 0..1000 {
        let v: Value = c
            .get(gw.url("/echo/v1/items/1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["upstream"] == "legacy-erp" {
            to_a += 1;
        }
    }
    assert!(
        (750..=850).contains(&to_a),
        "{to_a} of 1000 went to the 80% target"
    );
    assert_eq!(a.hits() + b.hits(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_dead_upstreams_retries_and_passive_health() {
    let alive = EchoUpstream::start("alive").await;
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let mut contents = echo_contents(&[(&alive.url(""), 1)], &[(&dead, 1)]);
    contents.upstreams[0].read_timeout_ms = 300;
    let gw = InProcessGateway::start(&contents).await;
    let c = client();

    // Read timeout → 504.
    let (s, _, b) = problem(c.get(gw.url("/echo/v1/slow?ms=3000")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (504, Some("urn:gatehouse:problem:upstream-timeout"))
    );
    // Within the timeout → 200.
    assert_eq!(
        c.get(gw.url("/echo/v1/slow?ms=10"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Connection refused, no other target → 503.
    let (s, _, b) = problem(c.get(gw.url("/echo/v2/items/1")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (503, Some("urn:gatehouse:problem:upstream-unavailable"))
    );
    assert!(
        !b["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no addresses leak"
    );

    // One dead target beside a live one: idempotent requests are retried on the live one.
    gw.install(&echo_contents(
        &[(&alive.url(""), 1)],
        &[(&dead, 50), (&alive.url(""), 50)],
    ))
    .await;
    for _ in 0..20 {
        let r = c.get(gw.url("/echo/v2/items/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // After two failures the dead target is ejected: POSTs (never retried) now land too.
    for _ in 0..20 {
        let r = c
            .post(gw.url("/echo/v2/items"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = gw.holder.metrics().render();
    assert!(
        metrics.contains("gatehouse_upstream_errors_total{kind=\"connect_refused\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_upstream_errors_total{kind=\"read_timeout\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_dropped_while_snapshots_swap_under_load() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let gw = Arc::new(
        InProcessGateway::start(&echo_contents(&[(&a.url(""), 1)], &[(&a.url(""), 1)])).await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (gw, stop, ok) = (gw.clone(), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.get(gw.url("/echo/v1/items/1")).send().await {
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
    for i in 0..60u32 {
        let target = if i % 2 == 0 { b.url("") } else { a.url("") };
        let mut contents = echo_contents(&[(&target, 1)], &[(&a.url(""), 1)]);
        contents.generation = i64::from(i) + 2;
        gw.install(&contents).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let failures = w.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "load was too light to prove anything"
    );
    assert!(a.hits() > 0 && b.hits() > 0);
    assert_eq!(gw.holder.status().generation, 61);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_normalisation_cannot_reach_another_version() {
    let one = EchoUpstream::start("v1").await;
    let two = EchoUpstream::start("v2").await;
    let gw =
        InProcessGateway::start(&echo_contents(&[(&one.url(""), 1)], &[(&two.url(""), 1)])).await;
    for target in [
        "/echo/v2/../v1/items/1",
        "/echo/v2/./items/1",
        "/echo/v2/%2e%2e/v1/items/1",
        "/echo/v2/%2E%2E/v1/items/1",
        "/echo/v2/.%2e/v1/items/1",
        "/echo/v2/items/..%2F..%2Fv1%2Fitems%2F1",
        "/echo/v2//items/1",
        "//echo/v1/items/1",
        "/echo/v2/items/1%00",
    ] {
        let (status, text) = raw_get(gw.addr, target, "").await;
        assert_eq!(status, 400, "{target}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("x-request-id"),
            "{target}"
        );
    }
    // An encoded slash stays inside its segment: a parameter value, never a separator.
    let (status, text) = raw_get(gw.addr, "/echo/v2/items/a%2Fb", "").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"path\":\"/items/a%2Fb\""), "{text}");
    assert!(text.contains("\"upstream\":\"v2\""), "{text}");
    // Unreserved escapes are decoded once: %76%32 is `v2`.
    let (status, text) = raw_get(gw.addr, "/echo/%76%32/items/%31", "").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"path\":\"/items/1\""), "{text}");
    assert_eq!(one.hits(), 0, "nothing reached v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_targets_answer_from_the_spec_examples() {
    let gw = InProcessGateway::start(&echo_contents(&[("mock://", 1)], &[("mock://", 1)])).await;
    let c = client();
    let resp = c.get(gw.url("/echo/v1/items/1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["name"], "widget");

    let resp = c
        .get(gw.url("/echo/v1/items/1"))
        .header("Prefer", "example=gadget")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["preference-applied"], "example=gadget");
    assert_eq!(resp.json::<Value>().await.unwrap()["name"], "gadget");

    let resp = c
        .get(gw.url("/echo/v1/items/1"))
        .header("Prefer", "code=404")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    let resp = c
        .post(gw.url("/echo/v1/items"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = c.delete(gw.url("/echo/v1/items/1")).send().await.unwrap();
    assert_eq!(resp.status(), 204);

    // Metrics are recorded after the response is sent: poll for them.
    let line =
        "gatehouse_requests_total{api=\"echo\",major=\"1\",class=\"2xx\",outcome=\"mocked\"} 4";
    let seen = eventually(Duration::from_secs(5), || async {
        gw.holder.metrics().render().contains(line).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{}", gw.holder.metrics().render());
}
