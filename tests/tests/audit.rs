//! The audit trail through a real `gatehouse serve` process: every request through the
//! gateway, refusals included, becomes exactly one access record on either backend; none is
//! lost or duplicated when the store stops mid-run; everything queued is flushed on SIGTERM;
//! no secret the client sent lands in any column; a million records export with flat memory;
//! the deprecation-readiness report counts calls to a deprecated version; and the CLI names a
//! tampered change-log entry.
//!
//! PostgreSQL variants need `GATEHOUSE_TEST_POSTGRES_URL` (and `initdb`/`pg_ctl` for the
//! outage test); they are skipped without it outside CI.

#![allow(clippy::unwrap_used)] // tests may unwrap (clippy.toml allows it only inside #[test])

use gatehouse_tests::PgSchema;
use gatehouse_tests::pg::ThrowawayPostgres;
use gatehouse_tests::{
    EchoUpstream, GatehouseProcess, ServeOptions, TEST_API_KEY, client, eventually,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the tests send as credentials: none of it may appear in any record (nor may the
/// harness's real key, [`TEST_API_KEY`], sent with every other request).
const SECRET_KEY: &str = "ghk_5ec7e7ee.SECRETKEY0123456789abcdefSECRET";
const SECRET_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.SECRETSIGNATURE";
const SECRET_QUERY: &str = "QUERYSECRET9876543210";

/// One request of a test: what was sent and what came back.
#[derive(Debug, Clone)]
struct Sent {
    request_id: String,
    method: &'static str,
    path: String,
    status: u16,
}

/// Starts a node with the `echo` API (major 1) proxied to a real upstream, and waits until
/// the gateway routes it. Returns the node, the upstream and the instant after which every
/// access record is the test's own.
async fn node_with_echo(opts: ServeOptions) -> (GatehouseProcess, EchoUpstream, OffsetDateTime) {
    let upstream = EchoUpstream::start("erp").await;
    let gh = GatehouseProcess::start(opts).await;
    gh.admin()
        .register_echo("echo", "1.0.0", &[(&upstream.url(""), 100)])
        .await;
    let c = client();
    let url = gh.url("/echo/v1/items");
    let routed = eventually(Duration::from_secs(15), || {
        let (c, url) = (c.clone(), url.clone());
        async move { (c.get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    assert!(
        routed.is_some(),
        "echo never became routable:\n{}",
        gh.logs()
    );
    // Records carry their arrival time in whole milliseconds: start one ms later.
    // (Waiting out at most 2 ms of wall clock, not a sleep: the next records must carry a
    // later millisecond than every setup request.)
    let t0 = OffsetDateTime::now_utc() + time::Duration::milliseconds(2);
    while OffsetDateTime::now_utc() < t0 {
        tokio::task::yield_now().await;
    }
    (gh, upstream, t0)
}

/// Sends `n` requests of a fixed mix (proxied with the harness's real API key, refused in
/// six ways: unknown path, API and major, a method not allowed, an unknown API key, a bearer
/// token no issuer signed; a POST with a body), carrying a sensitive query parameter.
/// Request ids are `<tag>-<i>`.
async fn drive(gh: &GatehouseProcess, tag: &str, n: usize) -> Vec<Sent> {
    let c = client();
    // Without the harness's default `X-API-Key`, to present a bearer token alone.
    let bare = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let (method, path) = match i % 14 {
            0..=5 | 12 | 13 => (
                "GET",
                format!("/echo/v1/items?sku=SKU-{i}&api_key={SECRET_QUERY}"),
            ),
            6 | 7 => ("GET", "/echo/v1/nowhere".to_owned()),
            8 => ("GET", "/nosuchapi/v1/items".to_owned()),
            9 => ("PATCH", "/echo/v1/items".to_owned()),
            10 => ("GET", "/echo/v9/items".to_owned()),
            _ => ("POST", "/echo/v1/items".to_owned()),
        };
        let request_id = format!("{tag}-{i}");
        let client = if i % 14 == 13 { &bare } else { &c };
        let mut req = client
            .request(method.parse().unwrap(), gh.url(&path))
            .header("x-request-id", &request_id)
            .header("user-agent", "audit-test/1.0");
        match i % 14 {
            12 => req = req.header("x-api-key", SECRET_KEY),
            13 => req = req.header("authorization", format!("Bearer {SECRET_TOKEN}")),
            _ => {}
        }
        if method == "POST" {
            req = req
                .header("content-type", "application/json")
                .body(format!("{{\"note\":\"{}\"}}", "x".repeat(90)));
        }
        let status = req.send().await.unwrap().status().as_u16();
        sent.push(Sent {
            request_id,
            method,
            path,
            status,
        });
    }
    sent
}

/// Every access record at or after `from`, exported as NDJSON through the admin API.
async fn export(gh: &GatehouseProcess, from: OffsetDateTime) -> Vec<Value> {
    let from = from.format(&Rfc3339).unwrap().replace('+', "%2B");
    let resp = gh
        .admin()
        .get_accept(
            &format!("/audit/access?from={from}"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls the export until it holds `n` records; fails with what it saw otherwise.
async fn wait_for(
    gh: &GatehouseProcess,
    from: OffsetDateTime,
    n: usize,
    deadline: Duration,
) -> Vec<Value> {
    let last = &std::sync::atomic::AtomicUsize::new(0);
    let got = eventually(deadline, || async move {
        let records = export(gh, from).await;
        last.store(records.len(), std::sync::atomic::Ordering::Relaxed);
        (records.len() >= n).then_some(records)
    })
    .await;
    let access = access_status(gh).await;
    let last = last.load(std::sync::atomic::Ordering::Relaxed);
    got.unwrap_or_else(|| {
        panic!(
            "{last} of {n} records after {deadline:?}; access log: {access}\n{}",
            gh.logs()
        )
    })
}

/// The access log's counters from `/readyz`.
async fn access_status(gh: &GatehouseProcess) -> Value {
    let (_, ready) = gh.admin().get("/readyz").await;
    ready["detail"]["access_log"].clone()
}

/// Exactly one record per request sent, and nothing else in the window.
#[track_caller]
fn assert_exactly_once(records: &[Value], sent: &[Sent]) {
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "a request was recorded twice");
    let expected: HashSet<&str> = sent.iter().map(|s| s.request_id.as_str()).collect();
    assert_eq!(
        distinct, expected,
        "recorded requests differ from those sent"
    );
    assert_eq!(records.len(), sent.len());
}

/// Checks each record against what the client saw, and that no secret is anywhere in it.
#[track_caller]
fn assert_records_match(records: &[Value], sent: &[Sent]) {
    let by_id: BTreeMap<&str, &Value> = records
        .iter()
        .map(|r| (r["request_id"].as_str().unwrap(), r))
        .collect();
    for s in sent {
        let r = by_id[s.request_id.as_str()];
        assert_eq!(r["status"].as_u64(), Some(u64::from(s.status)), "{r}");
        assert_eq!(r["method"], s.method, "{r}");
        assert_eq!(r["user_agent"], "audit-test/1.0");
        assert_eq!(r["client_addr"], "127.0.0.1");
        assert_eq!(r["trace_id"].as_str().map(str::len), Some(32), "{r}");
        let expect_decision = if s.status < 400 { "allowed" } else { "refused" };
        assert_eq!(r["decision"], expect_decision, "{r}");
        if s.path.starts_with("/echo/v1/items") {
            assert_eq!(
                (&r["api"], &r["major"], &r["version"]),
                (&Value::from("echo"), &Value::from(1), &Value::from("1.0.0")),
                "{r}"
            );
        }
        match (s.method, s.status) {
            ("GET", 200) => {
                assert_eq!(r["operation"], "listItems");
                assert_eq!(r["path_template"], "/items");
                let path = r["path"].as_str().unwrap();
                assert!(
                    path.contains("sku=SKU-") && path.contains("api_key=[redacted]"),
                    "{path}"
                );
                let (total, upstream) = (
                    r["duration_us"].as_u64().unwrap(),
                    r["upstream_us"].as_u64().unwrap(),
                );
                assert!(upstream > 0 && upstream <= total, "{r}");
                assert!(r["bytes_out"].as_u64().unwrap() > 0);
                assert_eq!(r["reason"], Value::Null);
            }
            ("POST", 200) => {
                assert_eq!(r["operation"], "createItem");
                assert_eq!(r["bytes_in"].as_u64(), Some(101), "{r}");
            }
            (_, 404) if s.path.starts_with("/nosuchapi") => {
                assert_eq!(r["api"], Value::Null);
                assert_eq!(r["reason"], "urn:gatehouse:problem:unknown-api");
            }
            (_, 404) if s.path.contains("/v9/") => {
                assert_eq!(r["reason"], "urn:gatehouse:problem:unknown-version");
            }
            (_, 404) => {
                assert_eq!(r["reason"], "urn:gatehouse:problem:unknown-path");
                assert_eq!(r["api"], "echo");
                assert_eq!(r["operation"], Value::Null);
            }
            (_, 405) => assert_eq!(r["reason"], "urn:gatehouse:problem:method-not-allowed"),
            (_, 401) => {
                assert_eq!(r["reason"], "urn:gatehouse:problem:unauthorized");
                assert_eq!(r["api"], "echo");
                assert_eq!((&r["consumer"], &r["key_id"]), (&Value::Null, &Value::Null));
            }
            other => panic!("unexpected answer {other:?} for {s:?}"),
        }
        let text = r.to_string();
        for secret in [
            SECRET_KEY,
            SECRET_TOKEN,
            SECRET_QUERY,
            "SECRETSIGNATURE",
            TEST_API_KEY,
        ] {
            assert!(!text.contains(secret), "a secret leaked into {text}");
        }
        if s.status == 200 {
            assert_eq!(r["key_id"], TEST_API_KEY.split('.').next().unwrap(), "{r}");
            assert!(r["consumer"].is_string(), "{r}");
        }
    }
}

/// The CSV export of the window, searched for every secret the test sent.
async fn assert_no_secret_in_export(gh: &GatehouseProcess, from: OffsetDateTime, rows: usize) {
    let from = from.format(&Rfc3339).unwrap().replace('+', "%2B");
    let csv = gh
        .admin()
        .get_accept(&format!("/audit/access?from={from}"), "text/csv")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.lines().count(),
        rows + 1,
        "header and one line per record"
    );
    for secret in [
        SECRET_KEY,
        SECRET_TOKEN,
        SECRET_QUERY,
        "SECRETSIGNATURE",
        "Bearer",
        TEST_API_KEY,
        TEST_API_KEY.split('.').nth(1).unwrap(),
    ] {
        assert!(!csv.contains(secret), "`{secret}` is in the CSV export");
    }
}

async fn n_requests_give_n_records(database_url: Option<String>) {
    let (gh, _up, t0) = node_with_echo(ServeOptions {
        database_url,
        config_toml: Some("access_flush_ms = 50\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let sent = drive(&gh, "n", 120).await;
    assert!(sent.iter().any(|s| s.status == 405) && sent.iter().any(|s| s.status == 404));
    assert_eq!(
        sent.iter().filter(|s| s.status == 401).count(),
        2 * (120 / 14)
    );
    let records = wait_for(&gh, t0, sent.len(), Duration::from_secs(20)).await;
    assert_exactly_once(&records, &sent);
    assert_records_match(&records, &sent);
    assert_no_secret_in_export(&gh, t0, sent.len()).await;
    let status = access_status(&gh).await;
    assert_eq!(status["dropped"], 0, "{status}");
    assert_eq!(status["store_up"], true, "{status}");
    // The JSON pages walk the same records with a cursor.
    let from = t0.format(&Rfc3339).unwrap().replace('+', "%2B");
    let mut paged = 0;
    let mut cursor = String::new();
    loop {
        let (s, page) = gh
            .admin()
            .get(&format!("/audit/access?from={from}&limit=50{cursor}"))
            .await;
        assert_eq!(s, 200, "{page}");
        paged += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, sent.len());
    // Filters: refusals of the echo API.
    let (_, refused) = gh
        .admin()
        .get(&format!(
            "/audit/access?from={from}&api=echo&major=1&decision=refused&limit=1000"
        ))
        .await;
    let want = sent
        .iter()
        .filter(|s| s.status >= 400 && s.path.starts_with("/echo/v1/"))
        .count();
    assert_eq!(refused["items"].as_array().unwrap().len(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_give_exactly_n_access_records_on_sqlite() {
    n_requests_give_n_records(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_give_exactly_n_access_records_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    n_requests_give_n_records(Some(schema.url().to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_store_loses_and_duplicates_nothing() {
    use sqlx::Connection;
    let (gh, _up, t0) = node_with_echo(ServeOptions {
        config_toml: Some("access_flush_ms = 20\naccess_store_timeout_ms = 300\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let mut sent = drive(&gh, "before", 36).await;
    wait_for(&gh, t0, sent.len(), Duration::from_secs(20)).await;

    // Another writer holds SQLite's write lock: the store is "slow", batches time out.
    let mut lock = sqlx::SqliteConnection::connect(&gh.sqlite_url())
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    sent.extend(drive(&gh, "during", 36).await);
    let g = &gh;
    let spooled = eventually(Duration::from_secs(20), || async move {
        let s = access_status(g).await;
        (s["spooled"].as_u64()? >= 36).then_some(s)
    })
    .await;
    assert!(
        spooled.is_some(),
        "nothing was spooled: {}",
        access_status(&gh).await
    );
    sqlx::raw_sql("ROLLBACK").execute(&mut lock).await.unwrap();
    drop(lock);

    sent.extend(drive(&gh, "after", 36).await);
    let records = wait_for(&gh, t0, sent.len(), Duration::from_secs(30)).await;
    assert_exactly_once(&records, &sent);
    let settled = eventually(Duration::from_secs(20), || async move {
        let s = access_status(g).await;
        (s["spool_bytes"] == 0 && s["replayed"] == s["spooled"]).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("the spool did not drain:\n{}", gh.logs()));
    assert_eq!(settled["dropped"], 0, "{settled}");
    assert_eq!(settled["store_up"], true, "{settled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_server_loses_and_duplicates_nothing() {
    if gatehouse_tests::pg::shared_url().is_none() {
        return;
    }
    let Some(pg) = ThrowawayPostgres::start() else {
        return;
    };
    assert!(pg.wait_ready(Duration::from_secs(30)).await, "{}", pg.log());
    let (gh, _up, t0) = node_with_echo(ServeOptions {
        database_url: Some(pg.url()),
        config_toml: Some("access_flush_ms = 20\naccess_store_timeout_ms = 500\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let mut sent = drive(&gh, "before", 36).await;
    wait_for(&gh, t0, sent.len(), Duration::from_secs(20)).await;

    pg.stop_server();
    // The gateway keeps serving from its snapshot; the records go to the spool.
    sent.extend(drive(&gh, "during", 36).await);
    assert!(sent.iter().rev().take(36).any(|s| s.status == 200));
    let g = &gh;
    let spooled = eventually(Duration::from_secs(30), || async move {
        let s = access_status(g).await;
        (s["spooled"].as_u64()? >= 36).then_some(s)
    })
    .await;
    assert!(
        spooled.is_some(),
        "nothing was spooled: {}",
        access_status(&gh).await
    );
    assert_eq!(access_status(&gh).await["store_up"], false);

    pg.start_server();
    assert!(pg.wait_ready(Duration::from_secs(30)).await, "{}", pg.log());
    sent.extend(drive(&gh, "after", 36).await);
    let records = wait_for(&gh, t0, sent.len(), Duration::from_secs(60)).await;
    assert_exactly_once(&records, &sent);
    let settled = eventually(Duration::from_secs(30), || async move {
        let s = access_status(g).await;
        (s["spool_bytes"] == 0 && s["replayed"] == s["spooled"]).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("the spool did not drain:\n{}", gh.logs()));
    assert_eq!(settled["dropped"], 0, "{settled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_queued_record() {
    // Batches linger for ten minutes: only the shutdown flush can write these records.
    let (mut gh, _up, t0) = node_with_echo(ServeOptions {
        config_toml: Some("access_flush_ms = 600000\naccess_batch = 10000\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let sent = drive(&gh, "flush", 60).await;
    let status = access_status(&gh).await;
    assert_eq!(
        status["written"], 0,
        "nothing is written before shutdown: {status}"
    );
    assert!(gh.terminate(Duration::from_secs(60)), "{}", gh.logs());
    assert!(gh.logs().contains("access log flushed"), "{}", gh.logs());

    let store = gatehouse_registry::store::open(&gh.sqlite_url())
        .await
        .unwrap();
    let filter = gatehouse_registry::access::AccessFilter {
        from: Some(t0),
        ..Default::default()
    };
    use futures::StreamExt;
    let records: Vec<_> = store
        .stream_access(filter)
        .map(Result::unwrap)
        .collect()
        .await;
    let ids: HashSet<String> = records.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(records.len(), sent.len(), "{}", gh.logs());
    assert_eq!(ids, sent.iter().map(|s| s.request_id.clone()).collect());
    let spool = gh.data_dir().join("access-spool");
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "spool not empty: {left:?}");
}

/// `INSERT … SELECT` of `n` synthetic records, straight into the node's SQLite database.
async fn bulk_insert_sqlite(url: &str, n: u64) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO access_log (at, id, request_id, trace_id, consumer, key_id, subject, api, \
           major, version, operation, method, path_template, path, status, decision, reason, \
           duration_us, upstream_us, bytes_in, bytes_out, client_addr, user_agent, flags) \
         SELECT $2 + i, printf('bulk-%012d', i), 'bulk-' || i, \
           printf('%032x', i), 'consumer-' || (i % 7), 'gh_k' || (i % 7), NULL, 'inventory', \
           2, '2.1.0', 'getAvailability', 'GET', '/availability/{sku}', \
           '/inventory/v2/availability/SKU-' || i, 200, 'allowed', NULL, 1500, 1200, 0, 512, \
           '10.0.0.1', 'bulk/1.0', 0 FROM n",
    )
    .bind(i64::try_from(n).unwrap())
    .bind(recent_base_ms(n))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// Bulk rows in PostgreSQL with `generate_series`.
async fn bulk_insert_postgres(schema: &PgSchema, n: u64) {
    gatehouse_tests::pg::exec(
        schema.url(),
        &format!(
            "INSERT INTO access_log (at, id, request_id, trace_id, consumer, key_id, subject, api, \
               major, version, operation, method, path_template, path, status, decision, reason, \
               duration_us, upstream_us, bytes_in, bytes_out, client_addr, user_agent, flags) \
             SELECT {base} + i, 'bulk-' || lpad(i::text, 12, '0'), 'bulk-' || i, \
               lpad(to_hex(i), 32, '0'), 'consumer-' || (i % 7), 'gh_k' || (i % 7), NULL, \
               'inventory', 2, '2.1.0', 'getAvailability', 'GET', '/availability/{{sku}}', \
               '/inventory/v2/availability/SKU-' || i, 200, 'allowed', NULL, 1500, 1200, 0, 512, \
               '10.0.0.1', 'bulk/1.0', 0 FROM generate_series(1, {n}) AS s(i)",
            base = recent_base_ms(n)
        ),
    )
    .await
    .unwrap();
}

/// A start time for `n` bulk records one millisecond apart that end a minute ago: recent
/// enough for retention to keep them, and in partitions the node created.
fn recent_base_ms(n: u64) -> i64 {
    let now_ms =
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    now_ms - 60_000 - i64::try_from(n).unwrap()
}

/// Streams the CSV export of every record, counting lines and sampling the server's RSS.
/// Returns (lines, baseline RSS, peak RSS) in KiB.
async fn export_measuring_rss(gh: &GatehouseProcess) -> (u64, u64, u64) {
    // Warm up: the first export allocates what every export needs (buffers, statements).
    let warm = gh
        .admin()
        .get_accept("/audit/access?limit=1000", "text/csv")
        .await;
    assert_eq!(warm.text().await.unwrap().lines().count(), 1_001);
    let baseline = gh.rss_kib();
    // The harness client gives up after 10 s; an export of a million rows takes longer.
    let mut resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .get(gh.admin_url("/audit/access"))
        .bearer_auth(&gh.token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (mut lines, mut peak, mut since_sample) = (0u64, baseline, 0usize);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        since_sample += chunk.len();
        if since_sample >= 4 << 20 {
            since_sample = 0;
            peak = peak.max(gh.rss_kib());
        }
    }
    (lines, baseline, peak.max(gh.rss_kib()))
}

const EXPORT_ROWS: u64 = 1_000_000;
/// Growth of the server's RSS allowed during the export: a fraction of the export's size
/// (about 300 MB), so only a streaming server passes.
const EXPORT_RSS_GROWTH_KIB: u64 = 48 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_record_csv_export_streams_with_flat_memory_on_sqlite() {
    let gh = GatehouseProcess::start(ServeOptions::default()).await;
    let start = Instant::now();
    bulk_insert_sqlite(&gh.sqlite_url(), EXPORT_ROWS).await;
    let inserted = start.elapsed();
    let (lines, baseline, peak) = export_measuring_rss(&gh).await;
    eprintln!(
        "sqlite: {EXPORT_ROWS} rows inserted in {inserted:?}, exported in {:?}; RSS {baseline} KiB -> peak {peak} KiB",
        start.elapsed() - inserted
    );
    let logs = gh.logs();
    let tail = &logs[logs.len().saturating_sub(3000)..];
    assert_eq!(
        lines,
        EXPORT_ROWS + 1,
        "header plus one line per record\n{tail}"
    );
    assert!(
        peak.saturating_sub(baseline) < EXPORT_RSS_GROWTH_KIB,
        "RSS grew from {baseline} to {peak} KiB during the export"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_record_csv_export_streams_with_flat_memory_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let gh = GatehouseProcess::start(ServeOptions {
        database_url: Some(schema.url().to_owned()),
        ..ServeOptions::default()
    })
    .await;
    let start = Instant::now();
    bulk_insert_postgres(&schema, EXPORT_ROWS).await;
    let inserted = start.elapsed();
    let (lines, baseline, peak) = export_measuring_rss(&gh).await;
    eprintln!(
        "postgres: {EXPORT_ROWS} rows inserted in {inserted:?}, exported in {:?}; RSS {baseline} KiB -> peak {peak} KiB",
        start.elapsed() - inserted
    );
    drop(gh);
    drop(schema);
    assert_eq!(lines, EXPORT_ROWS + 1, "header plus one line per record");
    assert!(
        peak.saturating_sub(baseline) < EXPORT_RSS_GROWTH_KIB,
        "RSS grew from {baseline} to {peak} KiB during the export"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_report_counts_calls_to_a_deprecated_version() {
    let gh = GatehouseProcess::start(ServeOptions {
        seed: true,
        config_toml: Some("access_flush_ms = 20\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let c = client();
    for i in 0..5 {
        let r = c
            .get(gh.url(&format!("/inventory/v1/availability/SKU-1004{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("deprecation"));
    }
    for _ in 0..3 {
        let r = c
            .get(gh.url("/inventory/v1/warehouses"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Not deprecated: not in the report.
    c.get(gh.url("/inventory/v2/warehouses"))
        .send()
        .await
        .unwrap();
    let g = &gh;
    let report = eventually(Duration::from_secs(20), || async move {
        let (s, report) = g.admin().get("/reports/deprecations").await;
        assert_eq!(s, 200, "{report}");
        let item = report["items"]
            .as_array()?
            .iter()
            .find(|i| i["api"] == "inventory" && i["major"] == 1)?
            .clone();
        (item["calls_30d"] == 8).then_some(item)
    })
    .await
    .unwrap_or_else(|| panic!("the report never counted the calls:\n{}", gh.logs()));
    assert_eq!(report["calls_7d"], 8, "{report}");
    assert_eq!(report["ready"], false);
    assert_eq!(report["successor"], "2.1.0");
    let sunset = OffsetDateTime::parse(report["sunset_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let days = (sunset - OffsetDateTime::now_utc()).whole_days();
    let reported = report["days_to_sunset"].as_i64().unwrap();
    assert!(
        reported == days || reported == days + 1,
        "{reported} vs {days}"
    );
    // Before identity, calls are anonymous: one consumer entry, per operation.
    let consumers = report["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 1, "{report}");
    let ops: BTreeMap<&str, (u64, u64)> = consumers[0]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["operation"].as_str().unwrap(),
                (
                    o["calls_7d"].as_u64().unwrap(),
                    o["calls_30d"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(ops["getAvailability"], (5, 5));
    assert_eq!(ops["listWarehouses"], (3, 3));
    // The access records of deprecated calls say so.
    let (_, page) = gh.admin().get("/audit/access?api=inventory&major=1").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["flags"] == serde_json::json!(["deprecated"])),
        "{page}"
    );
    // And so does the CLI.
    let out = std::process::Command::new(gatehouse_tests::gatehouse_bin())
        .args([
            "reports",
            "deprecations",
            "--admin-url",
            &format!("http://{}", gh.admin),
        ])
        .env("GATEHOUSE_TOKEN", &gh.token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("getAvailability"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_the_access_log_and_names_a_tampered_change_entry() {
    let (gh, _up, t0) = node_with_echo(ServeOptions {
        config_toml: Some("access_flush_ms = 20\n".into()),
        ..ServeOptions::default()
    })
    .await;
    let sent = drive(&gh, "cli", 24).await;
    wait_for(&gh, t0, sent.len(), Duration::from_secs(20)).await;
    let cli = |args: &[&str]| {
        std::process::Command::new(gatehouse_tests::gatehouse_bin())
            .args(args)
            .args(["--admin-url", &format!("http://{}", gh.admin)])
            .env("GATEHOUSE_TOKEN", &gh.token)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "audit", "access", "--since", "1h", "--format", "csv", "--api", "echo",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let echo = sent.iter().filter(|s| s.path.starts_with("/echo/")).count();
    // Plus the requests that waited for the route, before t0.
    assert!(csv.lines().count() > echo, "{csv}");
    assert!(csv.starts_with("at,id,request_id,"));
    assert!(csv.contains("cli-0,"));
    let out = cli(&[
        "audit", "access", "--since", "1h", "--format", "table", "--status", "405",
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        table.lines().filter(|l| l.contains("cli-")).count(),
        sent.iter().filter(|s| s.status == 405).count(),
        "{table}"
    );

    // An intact chain prints its head; the anchor is found later.
    let out = cli(&["audit", "verify"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let head = text
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap()
        .to_owned();
    assert!(
        cli(&["audit", "verify", "--anchor", &head])
            .status
            .success()
    );

    // Behind the registry's back: edit entry 2.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&gh.sqlite_url())
        .await
        .unwrap();
    sqlx::raw_sql("UPDATE change_log SET reason = 'nothing to see' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    let out = cli(&["audit", "verify"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("entry 2 was edited"), "{text}");
    let out = cli(&["audit", "verify", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["first_bad"]["seq"], &v["first_bad"]["kind"]),
        (&Value::from(2), &Value::from("edited"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logging_can_be_turned_off() {
    let (gh, _up, t0) = node_with_echo(ServeOptions {
        args: vec!["--access-log".into(), "off".into()],
        ..ServeOptions::default()
    })
    .await;
    let sent = drive(&gh, "off", 12).await;
    assert_eq!(sent.len(), 12);
    assert!(export(&gh, t0).await.is_empty());
    assert_eq!(access_status(&gh).await["enabled"], false);
    let metrics = gh.metrics().await;
    assert!(
        metrics.contains("gatehouse_access_records_queued_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gatehouse_consumer_requests_total{api=\"echo\",major=\"1\",consumer=\"(none)\""
        ),
        "{metrics}"
    );
}
