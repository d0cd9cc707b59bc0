//! The audit trail at the store and service level, on both backends: access records kept
//! exactly once, paged, filtered and streamed; callers per operation; retention and
//! partitions; and change-log verification naming the entry that was edited, removed or
//! reordered behind the store's back.
//!
//! `GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p gatehouse-registry --test audit`

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

mod support;

use futures::StreamExt;
use gatehouse_registry::Registry;
use gatehouse_registry::access::{
    AccessCursor, AccessFilter, AccessFlags, AccessRecord, Decision, StatusFilter,
};
use gatehouse_registry::audit::Tamper;
use gatehouse_registry::model::*;
use gatehouse_registry::store::Backend;
use gatehouse_registry::store::{self, Store};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// What a test body gets: a fresh store, and its URL for raw SQL behind its back.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

impl Ctx {
    async fn open(url: String) -> Ctx {
        Ctx {
            store: store::open(&url).await.unwrap(),
            url,
        }
    }

    /// Runs statements directly on the test's database.
    async fn exec(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = support::connect_admin(&self.url).await;
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// One test body, two tests: `name::sqlite` and `name::postgres`.
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                support::TestDb::sqlite()
                    .run(|url| async move { ($body)(Ctx::open(url).await).await })
                    .await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = support::TestDb::postgres().await {
                    db.run(|url| async move { ($body)(Ctx::open(url).await).await })
                        .await;
                }
            }
        }
    };
}

/// A fixed instant, whole milliseconds (what the store keeps).
fn base() -> OffsetDateTime {
    from_unix_ms(unix_ms(OffsetDateTime::now_utc()))
}

/// Record `i` of a synthetic workload: three consumers, two APIs, a mix of outcomes.
fn record(i: u64, at: OffsetDateTime) -> AccessRecord {
    let consumers = [Some("b2b-portal"), Some("edi"), None];
    let (status, decision, reason) = match i % 5 {
        0 => (
            404,
            Decision::Refused,
            Some("urn:gatehouse:problem:unknown-path"),
        ),
        1 => (
            503,
            Decision::Failed,
            Some("urn:gatehouse:problem:upstream-unavailable"),
        ),
        _ => (200, Decision::Allowed, None),
    };
    let major = 1 + i % 2;
    AccessRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: at + Duration::milliseconds(i64::try_from(i).unwrap()),
        request_id: format!("req-{i}"),
        trace_id: Some(format!("{i:032x}")),
        consumer: consumers[(i % 3) as usize].map(str::to_owned),
        key_id: Some("gh_k7f3a9c2".into()),
        subject: None,
        api: Some(if i % 4 == 3 { "orders" } else { "inventory" }.into()),
        major: Some(major),
        version: Some(format!("{major}.2.0")),
        operation: (status != 404).then(|| format!("op{}", i % 3)),
        method: "GET".into(),
        path_template: Some("/availability/{sku}".into()),
        path: format!("/inventory/v{major}/availability/SKU-{i}?api_key=[redacted]"),
        status,
        decision,
        reason: reason.map(str::to_owned),
        duration_us: 1_000 + i,
        upstream_us: 900,
        bytes_in: 0,
        bytes_out: 512,
        client_addr: Some("127.0.0.1".into()),
        user_agent: Some("test, \"quoted\" agent".into()),
        flags: if major == 1 {
            AccessFlags::DEPRECATED
        } else {
            AccessFlags::empty()
        },
    }
}

fn workload(n: u64, at: OffsetDateTime) -> Vec<AccessRecord> {
    (0..n).map(|i| record(i, at)).collect()
}

/// Every record matching `filter`, page by page.
async fn all_pages(t: &Ctx, mut filter: AccessFilter) -> Vec<AccessRecord> {
    let mut out = Vec::new();
    loop {
        let page = t.store.list_access(&filter).await.unwrap();
        let full = page.len() as u32 >= filter.limit.clamp(1, 1000);
        out.extend(page);
        if !full {
            return out;
        }
        filter.after = out.last().map(AccessCursor::after);
    }
}

backend_test!(
    access_records_are_kept_once_and_paged_in_order,
    |t: Ctx| async move {
        let records = workload(1_203, base());
        assert_eq!(t.store.insert_access(&records).await.unwrap(), 1_203);
        // A retried or replayed batch is kept once.
        assert_eq!(t.store.insert_access(&records[..700]).await.unwrap(), 0);
        assert_eq!(t.store.insert_access(&[]).await.unwrap(), 0);
        let mut expected = records.clone();
        expected.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let pages = all_pages(
            &t,
            AccessFilter {
                limit: 500,
                ..AccessFilter::default()
            },
        )
        .await;
        assert_eq!(
            pages, expected,
            "every field round-trips, in (at, id) order"
        );
        // The default page is 100.
        let first = t.store.list_access(&AccessFilter::default()).await.unwrap();
        assert_eq!(first.len(), 100);
    }
);

backend_test!(access_filters_combine, |t: Ctx| async move {
    let start = base();
    let records = workload(300, start);
    t.store.insert_access(&records).await.unwrap();
    let count = |filter: AccessFilter| {
        let t = &t;
        async move {
            all_pages(
                t,
                AccessFilter {
                    limit: 1000,
                    ..filter
                },
            )
            .await
            .len()
        }
    };
    let want = |f: &dyn Fn(&AccessRecord) -> bool| records.iter().filter(|r| f(r)).count();
    assert_eq!(
        count(AccessFilter {
            consumer: Some("edi".into()),
            ..AccessFilter::default()
        })
        .await,
        want(&|r| r.consumer.as_deref() == Some("edi"))
    );
    assert_eq!(
        count(AccessFilter {
            api: Some("inventory".into()),
            major: Some(1),
            ..AccessFilter::default()
        })
        .await,
        want(&|r| r.api.as_deref() == Some("inventory") && r.major == Some(1))
    );
    assert_eq!(
        count(AccessFilter {
            status: Some(StatusFilter::Code(404)),
            ..AccessFilter::default()
        })
        .await,
        want(&|r| r.status == 404)
    );
    assert_eq!(
        count(AccessFilter {
            status: Some(StatusFilter::Class(5)),
            ..AccessFilter::default()
        })
        .await,
        want(&|r| r.status >= 500)
    );
    assert_eq!(
        count(AccessFilter {
            decision: Some(Decision::Refused),
            consumer: Some("b2b-portal".into()),
            ..AccessFilter::default()
        })
        .await,
        want(&|r| r.decision == Decision::Refused && r.consumer.as_deref() == Some("b2b-portal"))
    );
    // `from` is inclusive, `to` exclusive.
    let from = start + Duration::milliseconds(100);
    let to = start + Duration::milliseconds(150);
    assert_eq!(
        count(AccessFilter {
            from: Some(from),
            to: Some(to),
            ..AccessFilter::default()
        })
        .await,
        50
    );
});

backend_test!(
    access_stream_reads_everything_in_order,
    |t: Ctx| async move {
        let records = workload(2_500, base());
        for chunk in records.chunks(1_000) {
            t.store.insert_access(chunk).await.unwrap();
        }
        let streamed: Vec<AccessRecord> = t
            .store
            .stream_access(AccessFilter::default())
            .map(Result::unwrap)
            .collect()
            .await;
        let mut expected = records.clone();
        expected.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        assert_eq!(streamed, expected);
        // A limit and a cursor apply to streams too.
        let tail: Vec<AccessRecord> = t
            .store
            .stream_access(AccessFilter {
                after: Some(AccessCursor::after(&expected[2_000])),
                limit: 10,
                ..AccessFilter::default()
            })
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(tail, expected[2_001..2_011]);
        // Dropping a stream half-way is fine, and the store keeps serving.
        let mut s = t.store.stream_access(AccessFilter::default());
        assert!(s.next().await.is_some());
        drop(s);
        assert_eq!(
            t.store
                .list_access(&AccessFilter::default())
                .await
                .unwrap()
                .len(),
            100
        );
    }
);

backend_test!(
    operation_callers_per_consumer_and_operation,
    |t: Ctx| async move {
        let now = base();
        let old = now - Duration::days(20);
        let mut records = workload(60, old);
        records.extend(workload(30, now - Duration::hours(1)));
        t.store.insert_access(&records).await.unwrap();
        let month = t
            .store
            .operation_callers("inventory", 1, now - Duration::days(30))
            .await
            .unwrap();
        let week = t
            .store
            .operation_callers("inventory", 1, now - Duration::days(7))
            .await
            .unwrap();
        let expect = |since: OffsetDateTime| {
            let mut m = std::collections::BTreeMap::new();
            for r in records.iter().filter(|r| {
                r.api.as_deref() == Some("inventory")
                    && r.major == Some(1)
                    && r.at >= since
                    && r.operation.is_some()
            }) {
                let e = m
                    .entry((r.consumer.clone(), r.operation.clone().unwrap()))
                    .or_insert((0u64, r.at));
                e.0 += 1;
                e.1 = e.1.max(r.at);
            }
            m.into_iter()
                .map(|((c, o), (n, last))| (c, o, n, last))
                .collect::<Vec<_>>()
        };
        let got = |v: &[gatehouse_registry::access::OperationCallers]| {
            v.iter()
                .map(|c| {
                    (
                        c.consumer.clone(),
                        c.operation.clone(),
                        c.calls,
                        c.last_seen,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(got(&month), expect(now - Duration::days(30)));
        assert_eq!(got(&week), expect(now - Duration::days(7)));
        assert!(!week.is_empty() && month.len() >= week.len());
        assert!(
            t.store
                .operation_callers("inventory", 9, now - Duration::days(30))
                .await
                .unwrap()
                .is_empty()
        );
    }
);

backend_test!(access_retention_and_partitions, |t: Ctx| async move {
    let now = base();
    let old_day = now - Duration::days(10);
    // Partitions for the old days first (PostgreSQL), then records in them.
    let early = t.store.maintain_access(old_day, 0, None).await.unwrap();
    let report = t.store.maintain_access(now, 2, None).await.unwrap();
    match t.store.backend() {
        Backend::Postgres => {
            assert_eq!(early.partitions_created.len(), 2, "{early:?}");
            assert_eq!(report.partitions_created.len(), 4, "{report:?}");
            // Idempotent.
            let again = t.store.maintain_access(now, 2, None).await.unwrap();
            assert!(again.partitions_created.is_empty(), "{again:?}");
        }
        Backend::Sqlite => assert!(report.partitions_created.is_empty()),
    }
    let old = workload(20, old_day);
    let fresh = workload(15, now);
    // Far in the future: PostgreSQL keeps it in the default partition.
    let future = workload(1, now + Duration::days(400));
    t.store.insert_access(&old).await.unwrap();
    t.store.insert_access(&fresh).await.unwrap();
    t.store.insert_access(&future).await.unwrap();
    let all = AccessFilter {
        limit: 1000,
        ..AccessFilter::default()
    };
    assert_eq!(t.store.list_access(&all).await.unwrap().len(), 36);

    let report = t
        .store
        .maintain_access(now, 2, Some(now - Duration::days(5)))
        .await
        .unwrap();
    match t.store.backend() {
        Backend::Postgres => {
            assert_eq!(report.partitions_dropped.len(), 2, "{report:?}");
            assert_eq!(
                report.rows_deleted, 0,
                "the default partition held no old rows"
            );
        }
        Backend::Sqlite => assert_eq!(report.rows_deleted, 20),
    }
    let left = t.store.list_access(&all).await.unwrap();
    assert_eq!(left.len(), 16);
    assert!(left.iter().all(|r| r.at >= now));
});

// -- change-log verification -------------------------------------------------------------

/// A registry with a chain of `n` entries (one team each).
async fn chain_of(t: &Ctx, n: usize) -> Registry {
    let registry = Registry::new(t.store.clone());
    for i in 0..n {
        registry
            .create_team(&Actor::system(), &format!("team-{i}"), "ops@example.com")
            .await
            .unwrap();
    }
    let report = registry
        .verify_changes(&Actor::system(), None)
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, n as u64);
    registry
}

/// Verifies and returns the first bad entry's (seq, kind).
async fn first_bad(registry: &Registry) -> (i64, Tamper) {
    let report = registry
        .verify_changes(&Actor::system(), None)
        .await
        .unwrap();
    assert!(!report.ok, "{report:?}");
    let bad = report.first_bad.unwrap();
    (bad.seq, bad.kind)
}

backend_test!(verify_names_an_edited_entry, |t: Ctx| async move {
    let registry = chain_of(&t, 6).await;
    t.exec("UPDATE change_log SET actor = 'mallory' WHERE seq = 4")
        .await;
    assert_eq!(first_bad(&registry).await, (4, Tamper::Edited));
});

backend_test!(verify_names_a_removed_entry, |t: Ctx| async move {
    let registry = chain_of(&t, 6).await;
    t.exec("DELETE FROM change_log WHERE seq = 3").await;
    assert_eq!(first_bad(&registry).await, (3, Tamper::Removed));
});

backend_test!(verify_names_reordered_entries, |t: Ctx| async move {
    let registry = chain_of(&t, 6).await;
    t.exec(
        "UPDATE change_log SET seq = -2 WHERE seq = 2; \
         UPDATE change_log SET seq = 2 WHERE seq = 5; \
         UPDATE change_log SET seq = 5 WHERE seq = -2;",
    )
    .await;
    assert_eq!(first_bad(&registry).await, (2, Tamper::Reordered));
});

backend_test!(
    verify_with_an_anchor_detects_truncation,
    |t: Ctx| async move {
        let registry = chain_of(&t, 6).await;
        let anchored = registry
            .verify_changes(&Actor::system(), None)
            .await
            .unwrap();
        let head = anchored.head.clone();
        let report = registry
            .verify_changes(&Actor::system(), Some(&head))
            .await
            .unwrap();
        assert!(report.ok);
        assert_eq!(report.anchor.unwrap().seq, Some(6));
        // Cut the tail: the chain is still consistent, the anchor is not in it.
        t.exec("DELETE FROM change_log WHERE seq >= 5").await;
        let report = registry
            .verify_changes(&Actor::system(), None)
            .await
            .unwrap();
        assert!(report.ok, "without an anchor a cut tail is invisible");
        let report = registry
            .verify_changes(&Actor::system(), Some(&head))
            .await
            .unwrap();
        assert!(!report.ok);
        let bad = report.first_bad.unwrap();
        assert_eq!((bad.seq, bad.kind), (5, Tamper::Removed), "{}", bad.message);
    }
);

backend_test!(
    contents_say_when_their_generation_was_committed,
    |t: Ctx| async move {
        let empty = t.store.load_contents().await.unwrap();
        assert_eq!((empty.generation, empty.generation_at), (0, None));
        let before = base();
        chain_of(&t, 2).await;
        let contents = t.store.load_contents().await.unwrap();
        assert_eq!(contents.generation, 2);
        assert!(contents.generation_at.unwrap() >= before);
    }
);
