//! Rate limits through real `gatehouse serve` processes: headers on every response of a
//! limited route (parsed as structured fields), 429 problem+json, per-operation overrides, a
//! tiny quota running out, quotas surviving a restart, two nodes sharing one limit through
//! Redis at three times the allowed rate, and the Redis outage path (fail-open, fail-closed,
//! recovery) with a `redis-server` of the test's own.
//!
//! The consumer is identified by its API key (the proxy's `authenticate`); every request here
//! sends one. The same paths are covered below the proxy by `limits.rs`.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_tests::{
    EchoUpstream, GatehouseProcess, RedisServer, ServeOptions, client, eventually, redis_url,
    secured_echo_spec,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A node serving API `echo` v1 (every operation behind an API key) from a real upstream,
/// with `plan` created and a consumer `partner` subscribed under it. Returns the key.
async fn node_with_plan(
    opts: ServeOptions,
    up: &EchoUpstream,
    plan: &Value,
) -> (GatehouseProcess, String) {
    node_with_consumer(opts, up, plan, "partner").await
}

/// [`node_with_plan`] with a consumer of the caller's name.
async fn node_with_consumer(
    opts: ServeOptions,
    up: &EchoUpstream,
    plan: &Value,
    consumer: &str,
) -> (GatehouseProcess, String) {
    let gh = GatehouseProcess::start(opts).await;
    let admin = gh.admin();
    admin
        .register_spec(
            "echo",
            "1.0.0",
            &secured_echo_spec("1.0.0"),
            &[(&up.url(""), 100)],
        )
        .await;
    let (s, b) = admin.post("/plans", plan).await;
    assert_eq!(s, 201, "plan: {b}");
    let key = admin
        .consumer_with_key(consumer, "echo", plan["name"].as_str().unwrap())
        .await;
    // The snapshot follows the registry within a second.
    let ready = eventually(Duration::from_secs(10), || {
        let (url, key) = (gh.url("/echo/v1/slow"), key.clone());
        async move {
            let r = client()
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .ok()?;
            r.headers().contains_key("ratelimit").then_some(())
        }
    })
    .await;
    assert!(
        ready.is_some(),
        "the route never became limited:\n{}",
        gh.logs()
    );
    (gh, key)
}

/// `(name, [(param, integer)])` per item of a structured-field list.
fn sf_list(field: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list = sfv::Parser::parse_list(field.as_bytes())
        .unwrap_or_else(|e| panic!("`{field}` is not a structured-field list: {e}"));
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let sfv::BareItem::String(name) = item.bare_item else {
                    panic!("`{field}`: a policy name must be an sf-string")
                };
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| match v {
                        sfv::BareItem::Integer(i) => (k.clone(), *i),
                        other => panic!("`{field}`: {k} is not an integer: {other:?}"),
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("`{field}`: an inner list"),
        })
        .collect()
}

fn param(item: &(String, Vec<(String, i64)>), name: &str) -> i64 {
    item.1.iter().find(|(k, _)| k == name).unwrap().1
}

async fn get(gh: &GatehouseProcess, path: &str, key: &str) -> reqwest::Response {
    client()
        .get(gh.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_on_every_response_429_and_overrides() {
    let up = EchoUpstream::start("erp").await;
    let plan = json!({
        "name": "tight",
        "rate": {"requests": 1, "per_seconds": 60, "burst": 3},
        "quota": {"requests": 1000, "period": "day"},
        "overrides": [{"operation_id": "createItem", "rate": {"requests": 1, "per_seconds": 60, "burst": 1}}]
    });
    let (gh, key) = node_with_plan(ServeOptions::default(), &up, &plan).await;
    // node_with_plan spent one request of the bucket; two are left of the burst of 3.
    for left in [1, 0] {
        let r = get(&gh, "/echo/v1/items", &key).await;
        assert_eq!(r.status(), 200);
        let policy = sf_list(r.headers()["ratelimit-policy"].to_str().unwrap());
        assert_eq!(policy[0].0, "tight");
        assert_eq!((param(&policy[0], "q"), param(&policy[0], "w")), (1, 60));
        assert_eq!(policy[1].0, "tight/quota");
        assert_eq!(param(&policy[1], "q"), 1000);
        let limit = sf_list(r.headers()["ratelimit"].to_str().unwrap());
        assert_eq!(
            (limit[0].0.as_str(), param(&limit[0], "r")),
            ("tight", left)
        );
        assert!(param(&limit[0], "t") > 0);
        assert_eq!(limit[1].0, "tight/quota");
    }
    let r = get(&gh, "/echo/v1/items", &key).await;
    assert_eq!(r.status(), 429);
    let h = r.headers().clone();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["content-type"], "application/problem+json");
    let limit = sf_list(h["ratelimit"].to_str().unwrap());
    assert_eq!(param(&limit[0], "r"), 0);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:gatehouse:problem:rate-limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["policy"], "tight");
    // The override has its own, stricter bucket: one request, then 429 naming it.
    let post = |gh: &GatehouseProcess| {
        client()
            .post(gh.url("/echo/v1/items"))
            .header("x-api-key", key.clone())
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let r = post(&gh).await.unwrap();
    assert_eq!(r.status(), 200, "{}", gh.logs());
    let policy = sf_list(r.headers()["ratelimit-policy"].to_str().unwrap());
    assert_eq!(policy[0].0, "tight/createItem");
    let r = post(&gh).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["policy"],
        "tight/createItem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_quota_runs_out_and_survives_a_restart() {
    let up = EchoUpstream::start("erp").await;
    let plan = json!({
        "name": "tiny",
        "rate": {"requests": 1000, "per_seconds": 1},
        "quota": {"requests": 5, "period": "day"}
    });
    let (mut gh, key) = node_with_plan(ServeOptions::default(), &up, &plan).await;
    // One request went in node_with_plan: 4 left; spend 2.
    for left in [3, 2] {
        let r = get(&gh, "/echo/v1/items", &key).await;
        assert_eq!(r.status(), 200);
        let limit = sf_list(r.headers()["ratelimit"].to_str().unwrap());
        assert_eq!(
            (limit[1].0.as_str(), param(&limit[1], "r")),
            ("tiny/quota", left)
        );
    }
    // A graceful stop writes the last checkpoint; the restarted node carries on counting.
    gh.restart().await;
    for left in [1, 0] {
        let r = get(&gh, "/echo/v1/items", &key).await;
        assert_eq!(r.status(), 200, "{}", gh.logs());
        let limit = sf_list(r.headers()["ratelimit"].to_str().unwrap());
        assert_eq!(param(&limit[1], "r"), left);
    }
    let r = get(&gh, "/echo/v1/items", &key).await;
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let to_midnight = 86_400
        - i64::from(now.hour()) * 3600
        - i64::from(now.minute()) * 60
        - i64::from(now.second());
    assert!(
        (retry - to_midnight).abs() <= 2,
        "Retry-After {retry}, midnight in {to_midnight}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:gatehouse:problem:quota-exhausted");
    assert_eq!(body["policy"], "tiny/quota");
}

/// Two `gatehouse serve` nodes (each its own SQLite, configured alike) share one Redis. For
/// 10 s a client offers three times the plan's rate, alternating nodes; together they admit
/// at most the plan's limit plus one burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_redis_admit_at_most_the_limit_plus_one_burst() {
    let Some(url) = redis_url() else { return };
    let up = EchoUpstream::start("erp").await;
    let plan_name = format!("shared-{}", uuid::Uuid::new_v4().simple());
    let plan = json!({"name": plan_name, "rate": {"requests": 20, "per_seconds": 1, "burst": 10}});
    let opts = ServeOptions {
        redis_url: Some(url),
        ..ServeOptions::default()
    };
    // The consumer name is in the Redis key: unique to this run.
    let consumer = format!("partner-{}", uuid::Uuid::new_v4().simple());
    let (a, key_a) = node_with_consumer(opts.clone(), &up, &plan, &consumer).await;
    let (b, key_b) = node_with_consumer(opts, &up, &plan, &consumer).await;
    // (The two set-up requests only make the bucket emptier: the bound below still holds.)
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for (url, key) in [
        (a.url("/echo/v1/items"), key_a),
        (b.url("/echo/v1/items"), key_b),
    ] {
        let (admitted, refused) = (admitted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            // 30 req/s per node: 60 in all, three times the plan's 20.
            let mut pace = tokio::time::interval(Duration::from_micros(33_333));
            while started.elapsed() < run {
                pace.tick().await;
                let s = c
                    .get(&url)
                    .header("x-api-key", &key)
                    .send()
                    .await
                    .unwrap()
                    .status();
                match s.as_u16() {
                    200 => admitted.fetch_add(1, Ordering::Relaxed),
                    429 => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected status {other}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (admitted, refused) = (
        admitted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let bound = (20.0 * elapsed).floor() as u64 + 10;
    eprintln!(
        "cluster accuracy (2 gatehouse nodes, Redis): offered {} in {elapsed:.2} s, admitted \
         {admitted} (limit + burst = {bound}, {:.1}% of it), refused {refused}",
        admitted + refused,
        100.0 * admitted as f64 / bound as f64
    );
    assert!(admitted + refused >= 450, "the load fell behind");
    assert!(admitted <= bound, "admitted {admitted} > {bound}");
    assert!(admitted >= 180, "admitted only {admitted}");
}

async fn readyz(gh: &GatehouseProcess) -> Value {
    client()
        .get(gh.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fail_open_fail_closed_and_recovery() {
    let mut redis = RedisServer::start().await;
    let up = EchoUpstream::start("erp").await;
    let open = json!({"name": "open", "rate": {"requests": 100, "per_seconds": 1}});
    let (gh, open_key) = node_with_plan(
        ServeOptions {
            redis_url: Some(redis.url()),
            ..ServeOptions::default()
        },
        &up,
        &open,
    )
    .await;
    let admin = gh.admin();
    let (s, b) = admin
        .post(
            "/plans",
            &json!({"name": "closed", "rate": {"requests": 100, "per_seconds": 1}, "on_redis_failure": "closed"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let closed_key = admin.consumer_with_key("strict", "echo", "closed").await;
    let ok = eventually(Duration::from_secs(10), || {
        let r = get(&gh, "/echo/v1/items", &closed_key);
        async move { (r.await.status() == 200).then_some(()) }
    })
    .await;
    assert!(ok.is_some());
    assert_eq!(
        readyz(&gh).await["detail"]["rate_limits"]["degraded"],
        false
    );

    redis.kill();
    // Fail-open: still served, on local limits.
    assert_eq!(get(&gh, "/echo/v1/items", &open_key).await.status(), 200);
    // Fail-closed: 503 problem+json.
    let r = get(&gh, "/echo/v1/items", &closed_key).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:gatehouse:problem:rate-limit-unavailable");
    let ready = readyz(&gh).await;
    assert_eq!(ready["detail"]["rate_limits"]["degraded"], true, "{ready}");
    let metrics = gh.metrics().await;
    assert!(
        metrics.contains(
            "gatehouse_ratelimit_decisions_total{backend=\"fallback\",result=\"allowed\"}"
        )
    );

    // Redis comes back: the node returns to it by itself.
    redis.restart().await;
    let back = eventually(Duration::from_secs(15), || {
        let r = get(&gh, "/echo/v1/items", &closed_key);
        async move { (r.await.status() == 200).then_some(()) }
    })
    .await;
    assert!(back.is_some(), "{}", gh.logs());
    assert_eq!(
        readyz(&gh).await["detail"]["rate_limits"]["degraded"],
        false
    );
}
