//! Access-log writer throughput, measured by hand (no assertions, nothing timed in tests):
//!
//! ```text
//! cargo run --release -p gatehouse-gateway --example access_writer                      # SQLite
//! GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p gatehouse-gateway --example access_writer -- postgres        # PostgreSQL
//! cargo run --release -p gatehouse-gateway --example access_writer -- sqlite 500000     # more records
//! ```
//!
//! (No curl line: this example drives the pipeline directly, without a gateway.)
//!
//! Emits N realistic access records (default 200,000) into the real pipeline (bounded queue,
//! batching writer, store: SQLite in WAL mode in a temporary directory, or a fresh schema in
//! the PostgreSQL database the variable names, dropped afterwards) as fast as one thread
//! can, with a queue large enough to hold them all, and reports how fast the writer gets them
//! into the store: records per second, from the first emit to the last commit. Then the same
//! with a store outage: the records go to the spool, and it times the replay. The machine is
//! shared and noisy: compare figures from one run only.

use gatehouse_gateway::access::{AccessLog, AccessLogConfig, AccessStats};
use gatehouse_registry::access::{AccessFlags, AccessRecord, Decision};
use gatehouse_registry::model::{from_unix_ms, unix_ms};
use gatehouse_registry::store::{self, Store};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn record(i: u64, at: OffsetDateTime) -> AccessRecord {
    AccessRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at,
        request_id: uuid::Uuid::now_v7().to_string(),
        trace_id: Some(format!("{:032x}", u128::from(i) * 7_919)),
        consumer: Some(
            ["b2b-portal", "ecommerce-storefront", "edi-gateway"][(i % 3) as usize].into(),
        ),
        key_id: Some(format!("gh_k{:08x}", i % 3)),
        subject: None,
        api: Some("inventory".into()),
        major: Some(2),
        version: Some("2.1.0".into()),
        operation: Some("getAvailability".into()),
        method: "GET".into(),
        path_template: Some("/availability/{sku}".into()),
        path: format!("/inventory/v2/availability/SKU-{i}?warehouse=WH-BOS-09"),
        status: 200,
        decision: Decision::Allowed,
        reason: None,
        duration_us: 1_800 + i % 500,
        upstream_us: 1_500,
        bytes_in: 0,
        bytes_out: 612,
        client_addr: Some("10.20.30.40".into()),
        user_agent: Some("b2b-portal/4.2 (+https://portal.northwind.example)".into()),
        flags: AccessFlags::empty(),
    }
}

/// Waits until `n` records are in the store, polling the counters.
async fn settled(stats: &AccessStats, n: u64) {
    while stats.written.load(Ordering::Relaxed) + stats.replayed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn run(store: Arc<dyn Store>, n: u64, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut config = AccessLogConfig::new(dir);
    config.queue_capacity = usize::try_from(n)?;
    let (log, writer) = AccessLog::start(config, store.clone())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(writer.run(stop_rx));
    // One record first, so the store is prepared (partitions) before the clock starts.
    let now = from_unix_ms(unix_ms(OffsetDateTime::now_utc()));
    log.emit(record(0, now));
    settled(log.stats(), 1).await;

    let start = Instant::now();
    for i in 1..=n {
        log.emit(record(i, now));
    }
    let emitted = start.elapsed();
    settled(log.stats(), n + 1).await;
    let took = start.elapsed();
    let s = log.stats().status();
    println!(
        "{:?}: {n} records emitted in {:.0} ms ({:.2} µs each), in the store after {:.2} s: {:.0} records/s (batches of up to 1000; spooled {}, dropped {})",
        store.backend(),
        emitted.as_secs_f64() * 1000.0,
        emitted.as_secs_f64() * 1e6 / n as f64,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        s.spooled,
        s.dropped,
    );
    let _ = stop_tx.send(true);
    task.await?;
    Ok(())
}

/// Spool then replay: records spooled by a log without a writer are replayed by a second
/// pipeline started on the same spool (as after a restart).
async fn replay(store: Arc<dyn Store>, n: u64, dir: &std::path::Path) -> anyhow::Result<()> {
    // Spool directly: a log whose writer is gone sends every record to the spool, as when
    // the queue is full.
    let mut config = AccessLogConfig::new(dir);
    config.queue_capacity = 1;
    let (log, writer) = AccessLog::start(config.clone(), store.clone())?;
    drop(writer); // the queue is closed: every emit goes to the spool
    let now = from_unix_ms(unix_ms(OffsetDateTime::now_utc()));
    let start = Instant::now();
    for i in 0..n {
        log.emit(record(i, now));
    }
    let spooled = start.elapsed();
    drop(log);
    let (log, writer) = AccessLog::start(config, store.clone())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let task = tokio::spawn(writer.run(stop_rx));
    settled(log.stats(), n).await;
    let took = start.elapsed();
    println!(
        "{:?}: {n} records spooled in {:.2} s ({:.0}/s), replayed into the store in {:.2} s: {:.0} records/s",
        store.backend(),
        spooled.as_secs_f64(),
        n as f64 / spooled.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let _ = stop_tx.send(true);
    task.await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "sqlite".into());
    let n: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (url, cleanup) = match backend.as_str() {
        "sqlite" => (
            format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
            None,
        ),
        "postgres" => {
            let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
                .map_err(|_| anyhow::anyhow!("set GATEHOUSE_TEST_POSTGRES_URL"))?;
            let schema = format!("gh_bench_{}", uuid::Uuid::new_v4().simple());
            admin_sql(&base, &format!("CREATE SCHEMA {schema}")).await?;
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                Some((base, schema)),
            )
        }
        other => anyhow::bail!("unknown backend `{other}`: sqlite or postgres"),
    };
    let store = store::open(&url).await?;
    let outcome = async {
        run(store.clone(), n, &dir.path().join("a")).await?;
        replay(store.clone(), n, &dir.path().join("b")).await
    }
    .await;
    drop(store);
    if let Some((base, schema)) = cleanup {
        admin_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await?;
    }
    outcome
}

async fn admin_sql(url: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    Ok(())
}
