//! Rate limits below the proxy. Cluster mode against a real Redis: the script and the local
//! limiter answer alike (fake clocks), limit and burst hold exactly at the boundaries, a
//! quota runs out and resets on its period, two nodes share one limit, and the outage path
//! (a `redis-server` of the test's own, killed and started again) in fail-open and
//! fail-closed modes, with recovery. Local mode: quotas survive a restart.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_gateway::limits::redis::Cluster;
use gatehouse_gateway::limits::{Backend, RateLimits, Verdict};
use gatehouse_gateway::metrics::Metrics;
use gatehouse_policies::ratelimit::local::LocalLimiter;
use gatehouse_policies::ratelimit::{
    Exceeded, Gcra, LimitKey, LimitRequest, Limiter, Now, OnFailure, Period, PlanLimits, Quota,
};
use gatehouse_registry::model::{Plan, Quota as PlanQuota, QuotaPeriod, Rate, RedisFailure};
use gatehouse_registry::snapshot::compile_plan;
use gatehouse_tests::{RedisServer, eventually, redis_url};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const S: u64 = 1_000_000;
/// 2026-03-02 12:00:00 UTC.
const NOON_MS: i64 = 1_772_452_800_000;

/// A consumer name no other test run uses (tests share the machine's Redis).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn cluster(url: &str) -> Arc<Cluster> {
    let c = Arc::new(Cluster::new(url, unique("node")).unwrap());
    c.connect().await.unwrap();
    c
}

fn plan(name: &str, requests: u32, burst: u32, on_failure: RedisFailure) -> PlanLimits {
    compile_plan(&Plan {
        name: name.into(),
        rate: Rate {
            requests,
            per_seconds: 1,
            burst: Some(burst),
        },
        quota: None,
        overrides: Vec::new(),
        on_redis_failure: on_failure,
    })
    .unwrap()
}

#[tokio::test]
async fn redis_and_local_mode_answer_alike_at_every_boundary() {
    let Some(url) = redis_url() else { return };
    let c = cluster(&url).await;
    let local = LocalLimiter::new(1024);
    let consumer = unique("alike");
    let rate = Gcra::new(10, 1, Some(3)).unwrap();
    let quota = Quota {
        limit: 7,
        period: Period::Day,
    };
    // (µs after the start, with the quota?) — the burst, the exact interval edges, a
    // refill, then the quota running out, and the next day.
    let day = 86_400 * S;
    let steps: &[(u64, bool)] = &[
        (0, true),
        (0, true),
        (0, true),
        (0, true),
        (99_999, true),
        (100_000, true),
        (100_000, true),
        (150_000, true),
        (200_000, true),
        (5 * S, true),
        (5 * S, true),
        (5 * S, true),
        (5 * S, true),
        (5 * S, false),
        (12 * 3600 * S, true),
        (12 * 3600 * S + 1, true),
        (12 * 3600 * S + day, true),
    ];
    let t0 = 2_000_000 * S;
    for (i, &(at, with_quota)) in steps.iter().enumerate() {
        let key = LimitKey {
            consumer: &consumer,
            api: "orders",
            operation: None,
        };
        let q = with_quota.then_some(&quota);
        let unix_ms = NOON_MS + i64::try_from(at / 1000).unwrap();
        let now = Now {
            rate_us: t0 + at,
            unix_ms,
        };
        let expected = local.check(
            &LimitRequest {
                key,
                rate: &rate,
                quota: q,
            },
            now,
        );
        let got = c
            .decide(&key, &rate, q, Some(t0 + at), unix_ms)
            .await
            .unwrap();
        assert_eq!(got, expected, "step {i} at +{at} µs");
    }
}

#[tokio::test]
async fn limit_and_burst_are_exact_on_redis() {
    let Some(url) = redis_url() else { return };
    let c = cluster(&url).await;
    let consumer = unique("burst");
    let key = LimitKey {
        consumer: &consumer,
        api: "inventory",
        operation: None,
    };
    let rate = Gcra::new(20, 1, Some(10)).unwrap(); // T = 50 ms
    let t0 = 3_000_000 * S;
    for i in 0..10 {
        let d = c
            .decide(&key, &rate, None, Some(t0), NOON_MS)
            .await
            .unwrap();
        assert!(d.allowed(), "burst request {i}");
        assert_eq!(d.rate.remaining, 9 - i);
    }
    let d = c
        .decide(&key, &rate, None, Some(t0), NOON_MS)
        .await
        .unwrap();
    assert_eq!(d.exceeded(), Some(Exceeded::Rate));
    assert_eq!(d.retry_after_us(), 50_000);
    let at = |us| c.decide(&key, &rate, None, Some(t0 + us), NOON_MS);
    assert!(!at(49_999).await.unwrap().allowed());
    assert!(at(50_000).await.unwrap().allowed());
    assert!(!at(50_000).await.unwrap().allowed());
    // An override has its own bucket.
    let op = LimitKey {
        operation: Some("submitOrder"),
        ..key
    };
    assert!(
        c.decide(&op, &rate, None, Some(t0 + 50_000), NOON_MS)
            .await
            .unwrap()
            .allowed()
    );
}

#[tokio::test]
async fn a_quota_runs_out_and_resets_on_its_period_on_redis() {
    let Some(url) = redis_url() else { return };
    let c = cluster(&url).await;
    let consumer = unique("quota");
    let key = LimitKey {
        consumer: &consumer,
        api: "orders",
        operation: None,
    };
    let rate = Gcra::new(1000, 1, None).unwrap();
    let quota = Quota {
        limit: 3,
        period: Period::Month,
    };
    // 2026-03-31 23:59:59 UTC, then the first millisecond of April.
    let last_second = 1_775_001_599_000;
    let t0 = 4_000_000 * S;
    for left in [2, 1, 0] {
        let d = c
            .decide(&key, &rate, Some(&quota), Some(t0), last_second)
            .await
            .unwrap();
        assert_eq!(d.quota.unwrap().remaining, left);
    }
    let d = c
        .decide(&key, &rate, Some(&quota), Some(t0), last_second + 999)
        .await
        .unwrap();
    assert_eq!(d.exceeded(), Some(Exceeded::Quota));
    assert_eq!(d.retry_after_us(), 1_000);
    let d = c
        .decide(&key, &rate, Some(&quota), Some(t0 + S), last_second + 1_000)
        .await
        .unwrap();
    assert!(d.allowed());
    assert_eq!(d.quota.unwrap().remaining, 2);
}

/// Two nodes, one Redis, 3× the allowed rate for 10 s of the Redis server's own clock:
/// together they admit at most the plan's limit plus one burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_limit_in_real_time() {
    let Some(url) = redis_url() else { return };
    let (a, b) = (cluster(&url).await, cluster(&url).await);
    let consumer = Arc::new(unique("shared"));
    let rate = Gcra::new(20, 1, Some(10)).unwrap();
    let admitted = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let run = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for node in [a, b] {
        let (consumer, admitted, sent) = (consumer.clone(), admitted.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            // Each node is offered 30 req/s: 60 in all, three times the plan's 20.
            let mut pace = tokio::time::interval(Duration::from_micros(33_333));
            while started.elapsed() < run {
                pace.tick().await;
                let key = LimitKey {
                    consumer: &consumer,
                    api: "orders",
                    operation: None,
                };
                let d = node.decide(&key, &rate, None, None, 0).await.unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                admitted.fetch_add(u64::from(d.allowed()), Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (admitted, sent) = (
        admitted.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
    );
    // The bound for the span actually run (the last request may land just after 10 s).
    let bound = (20.0 * elapsed).floor() as u64 + 10;
    eprintln!(
        "cluster accuracy (redis, 2 nodes): sent {sent}, admitted {admitted} in {elapsed:.2} s; \
         limit + burst = {bound}"
    );
    assert!(sent >= 450, "the load generator fell behind: {sent}");
    assert!(admitted <= bound, "admitted {admitted} > {bound}");
    assert!(admitted >= 190, "admitted only {admitted}");
}

fn admitted(v: &Verdict) -> Option<(Backend, bool)> {
    match v {
        Verdict::Decided {
            backend, decision, ..
        } => Some((*backend, decision.allowed())),
        Verdict::Unavailable => None,
    }
}

/// Redis dies: fail-open plans fall back to local limits of rate ÷ live nodes at once,
/// fail-closed plans answer unavailable; the degradation shows in metrics and readiness;
/// the node returns to Redis by itself when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_open_or_closed_and_recovers() {
    // Runs everywhere: it needs only the redis-server binary.
    let mut server = RedisServer::start().await;
    let metrics = Arc::new(Metrics::new());
    let node = Arc::new(Cluster::new(&server.url(), unique("node-a")).unwrap());
    let limits = RateLimits::clustered(metrics.clone(), node.clone());
    limits.connect_cluster().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let upkeep = tokio::spawn(node.clone().run(stop_rx.clone()));
    // A second node heartbeating into the same Redis: live nodes = 2.
    let other = cluster(&server.url()).await;
    let other_upkeep = tokio::spawn(other.clone().run(stop_rx));
    let live = eventually(Duration::from_secs(10), || {
        let node = node.clone();
        async move { (node.live_nodes() == 2).then_some(()) }
    })
    .await;
    assert!(live.is_some(), "the heartbeat never saw two nodes");

    // 1 request/s with a burst of 10: on the fallback of two nodes, a burst of 5 and one
    // request every 2 s, so a slow machine cannot refill the bucket mid-test.
    let open = plan("open-plan", 1, 10, RedisFailure::Open);
    let closed = plan("closed-plan", 1, 10, RedisFailure::Closed);
    assert_eq!(open.on_failure, OnFailure::Open);
    let consumer = unique("outage");
    let v = limits.check(&open, &consumer, "orders", None).await;
    assert_eq!(admitted(&v), Some((Backend::Redis, true)));
    assert_eq!(
        admitted(&limits.check(&closed, &consumer, "orders", None).await),
        Some((Backend::Redis, true))
    );

    server.kill();
    // Fail-open: the very request that met the dead connection is decided locally, at
    // half the burst (two live nodes): 5 admitted at once, the sixth refused.
    let fallback_consumer = unique("fallback");
    for i in 0..5 {
        let v = limits
            .check(&open, &fallback_consumer, "orders", None)
            .await;
        assert_eq!(admitted(&v), Some((Backend::Fallback, true)), "request {i}");
    }
    let v = limits
        .check(&open, &fallback_consumer, "orders", None)
        .await;
    assert_eq!(admitted(&v), Some((Backend::Fallback, false)));
    // Fail-closed: refused.
    assert!(matches!(
        limits.check(&closed, &consumer, "orders", None).await,
        Verdict::Unavailable
    ));
    let ready = limits.readiness();
    assert_eq!(ready["mode"], "redis");
    assert_eq!(ready["degraded"], true, "{ready}");
    assert_eq!(ready["live_nodes"], 2);
    metrics
        .limits
        .set_cluster(node.is_degraded(), node.live_nodes());
    let text = metrics.render();
    for line in [
        "gatehouse_ratelimit_redis_degraded 1",
        "gatehouse_ratelimit_decisions_total{backend=\"fallback\",result=\"allowed\"} 5",
        "gatehouse_ratelimit_decisions_total{backend=\"fallback\",result=\"rate_exceeded\"} 1",
        "gatehouse_ratelimit_decisions_total{backend=\"fallback\",result=\"unavailable\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    // The failure is met by a request or by the heartbeat, whichever comes first.
    assert!(
        text.lines()
            .any(|l| l == "gatehouse_ratelimit_redis_errors_total 1")
            || text
                .lines()
                .any(|l| l == "gatehouse_ratelimit_redis_errors_total 0"),
        "{text}"
    );

    // Redis is back: the probe reconnects and decisions go to Redis again, by themselves.
    server.restart().await;
    let back = eventually(Duration::from_secs(10), || {
        let (limits, open, consumer) = (&limits, &open, consumer.clone());
        async move {
            let v = limits.check(open, &consumer, "orders", None).await;
            (admitted(&v) == Some((Backend::Redis, true))).then_some(())
        }
    })
    .await;
    assert!(back.is_some(), "never returned to Redis");
    assert_eq!(limits.readiness()["degraded"], false);
    assert_eq!(limits.readiness()["degradations"], 1);
    assert_eq!(
        admitted(&limits.check(&closed, &consumer, "orders", None).await),
        Some((Backend::Redis, true))
    );
    stop_tx.send(true).unwrap();
    upkeep.await.unwrap();
    other_upkeep.await.unwrap();
}

#[tokio::test]
async fn plan_quota_headers_name_every_policy() {
    let p = compile_plan(&Plan {
        name: "partner".into(),
        rate: Rate {
            requests: 2,
            per_seconds: 1,
            burst: Some(2),
        },
        quota: Some(PlanQuota {
            requests: 100,
            period: QuotaPeriod::Month,
        }),
        overrides: Vec::new(),
        on_redis_failure: RedisFailure::Open,
    })
    .unwrap();
    let limits = RateLimits::local(Arc::new(Metrics::new()));
    let consumer = unique("headers");
    let v = limits
        .check(&p, &consumer, "orders", Some("listOrders"))
        .await;
    let Verdict::Decided { policy, limit, .. } = v else {
        panic!("local limits are always decided")
    };
    let parsed = sfv::Parser::parse_list(policy.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 2, "{policy}");
    let parsed = sfv::Parser::parse_list(limit.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 2, "{limit}");
    assert!(
        limit.starts_with("\"partner\";r=1;t=1, \"partner/quota\";r=99;t="),
        "{limit}"
    );
}

/// Local mode: quota counters are checkpointed to the store (not per request) and a
/// restarted node carries on counting where the last checkpoint left off.
#[tokio::test]
async fn quotas_survive_a_restart_through_the_store_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let store = gatehouse_registry::store::open(&url).await.unwrap();
    let p = compile_plan(&Plan {
        name: "contract".into(),
        rate: Rate {
            requests: 1000,
            per_seconds: 1,
            burst: None,
        },
        quota: Some(PlanQuota {
            requests: 5,
            period: QuotaPeriod::Day,
        }),
        overrides: Vec::new(),
        on_redis_failure: RedisFailure::Open,
    })
    .unwrap();
    let quota_left = |v: &Verdict| match v {
        Verdict::Decided { decision, .. } => decision.quota.map(|q| (q.allowed, q.remaining)),
        Verdict::Unavailable => None,
    };
    let first = RateLimits::local(Arc::new(Metrics::new()));
    first.restore_quotas(store.as_ref()).await;
    for left in [4, 3, 2] {
        let v = first.check(&p, "edi-partner", "orders", None).await;
        assert_eq!(quota_left(&v), Some((true, left)));
    }
    first.checkpoint(store.as_ref()).await;
    drop(first);

    let store = gatehouse_registry::store::open(&url).await.unwrap();
    let second = RateLimits::local(Arc::new(Metrics::new()));
    second.restore_quotas(store.as_ref()).await;
    for expected in [Some((true, 1)), Some((true, 0)), Some((false, 0))] {
        let v = second.check(&p, "edi-partner", "orders", None).await;
        assert_eq!(quota_left(&v), expected);
    }
    // Another consumer's quota is its own.
    let v = second.check(&p, "b2b-portal", "orders", None).await;
    assert_eq!(quota_left(&v), Some((true, 4)));
}

/// What a decision costs, printed for the record (debug build, shared machine: only a
/// sanity bound is asserted). Local: a map lookup under a shard lock. Redis: one round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_latency_local_and_redis() {
    let local = LocalLimiter::default();
    let rate = Gcra::new(1_000_000, 1, None).unwrap();
    let names: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    let started = std::time::Instant::now();
    let n = 200_000u32;
    for i in 0..n {
        let key = LimitKey {
            consumer: &names[(i as usize) % names.len()],
            api: "orders",
            operation: None,
        };
        let req = LimitRequest {
            key,
            rate: &rate,
            quota: None,
        };
        let now = Now {
            rate_us: u64::from(i),
            unix_ms: NOON_MS,
        };
        assert!(local.check(&req, now).allowed());
    }
    let local_ns = started.elapsed().as_nanos() / u128::from(n);
    eprintln!("decision latency, local: {local_ns} ns per decision (10 000 keys)");

    let Some(url) = redis_url() else { return };
    let c = cluster(&url).await;
    let consumer = unique("latency");
    let key = LimitKey {
        consumer: &consumer,
        api: "orders",
        operation: None,
    };
    let mut samples = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let t = std::time::Instant::now();
        c.decide(&key, &rate, None, None, NOON_MS).await.unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    let (p50, p99) = (samples[1_000], samples[1_980]);
    // 64 decisions in flight on the one multiplexed connection.
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (c, consumer) = (c.clone(), consumer.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                let key = LimitKey {
                    consumer: &consumer,
                    api: "orders",
                    operation: None,
                };
                c.decide(&key, &rate, None, None, NOON_MS).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let per_s = 6_400.0 / started.elapsed().as_secs_f64();
    eprintln!(
        "decision latency, redis: p50 {p50:?}, p99 {p99:?} sequential; {per_s:.0} decisions/s \
         with 64 in flight on one multiplexed connection"
    );
    assert!(p50 < Duration::from_millis(20), "p50 {p50:?}");
}
