//! The store suite, written once and run on both backends: every `store_test!` expands to
//! an `sqlite` test (a fresh temporary file) and a `postgres` test (a fresh schema in the
//! database `GATEHOUSE_TEST_POSTGRES_URL` names, dropped afterwards).
//!
//! Without `GATEHOUSE_TEST_POSTGRES_URL` the `postgres` variants fail when `CI` is set (CI
//! must run them) and do nothing otherwise, so a laptop without PostgreSQL can still run
//! `cargo test`. On this machine:
//! `GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p gatehouse-registry`

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

use gatehouse_registry::model::*;
use gatehouse_registry::store::{
    self, Backend, ChangeFilter, PageRequest, PgStore, SqliteStore, Store, StoreError,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

// -- harness -----------------------------------------------------------------------------

mod support;
use support::{TestDb, connect_admin};

/// What a test body gets: the store, and the means to open another one on the same data.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

impl Ctx {
    /// A second store on the same database (another node, or the same node restarted).
    async fn open_another(&self) -> Arc<dyn Store> {
        store::open(&self.url).await.unwrap()
    }
}

/// Runs `body` on a fresh store of `db`, then removes the database, even if `body` panics.
async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    db.run(|url| async move {
        let store = store::open(&url).await.unwrap();
        body(Ctx { store, url }).await;
    })
    .await;
}

/// One test body, two tests: `name::sqlite` and `name::postgres`.
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(TestDb::sqlite(), $body).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = TestDb::postgres().await {
                    run(db, $body).await;
                }
            }
        }
    };
}

// -- fixtures ----------------------------------------------------------------------------

fn at(ms: i64) -> OffsetDateTime {
    from_unix_ms(1_700_000_000_000 + ms)
}

fn meta(action: &str, target: &str) -> ChangeMeta {
    ChangeMeta {
        actor: Actor {
            id: "tok_arch".into(),
            role: Role::Architect,
            team: None,
        },
        action: action.into(),
        target: target.into(),
        reason: None,
        before_digest: None,
        after_digest: None,
    }
}

fn m() -> ChangeMeta {
    meta("test.write", "test")
}

fn team(name: &str) -> Team {
    Team {
        name: name.into(),
        contact: format!("{name}@example.com"),
        created_at: at(1),
    }
}

fn api(slug: &str, team: &str) -> Api {
    Api {
        slug: slug.into(),
        title: format!("The {slug} API"),
        description: Some("What it does.".into()),
        team: team.into(),
        version_header: true,
        default_major: Some(1),
        created_at: at(2),
        updated_at: at(2),
    }
}

fn version(api: &str, v: &str) -> Version {
    let spec = format!("openapi: 3.1.0\ninfo:\n  title: {api}\n  version: {v}\npaths: {{}}\n");
    Version {
        api: api.into(),
        version: v.into(),
        major: semver::Version::parse(v).unwrap().major,
        state: LifecycleState::Draft,
        spec_raw: spec.into_bytes(),
        spec_json: format!(r#"{{"openapi":"3.1.0","info":{{"version":"{v}"}}}}"#),
        sha256: "ab".repeat(32),
        content_type: "application/yaml".into(),
        deprecated_at: None,
        sunset_at: None,
        successor: None,
        deprecation_link: None,
        brownouts: Vec::new(),
        created_by: "tok_arch".into(),
        created_at: at(3),
        updated_by: "tok_arch".into(),
        updated_at: at(3),
    }
}

fn consumer(name: &str) -> Consumer {
    Consumer {
        name: name.into(),
        contact: Some(format!("{name}@example.com")),
        created_at: at(4),
    }
}

fn key(id: &str, consumer: &str, created_ms: i64) -> ApiKey {
    ApiKey {
        id: id.into(),
        consumer: consumer.into(),
        hash: format!("hash-of-{id}"),
        created_at: at(created_ms),
        expires_at: Some(at(1_000_000)),
        revoked_at: None,
        last_used_at: None,
    }
}

fn plan(name: &str) -> Plan {
    Plan {
        name: name.into(),
        rate: Rate {
            requests: 100,
            per_seconds: 60,
            burst: Some(20),
        },
        quota: Some(Quota {
            requests: 1_000_000,
            period: QuotaPeriod::Month,
        }),
    }
}

fn subscription(consumer: &str, api: &str, plan: &str) -> Subscription {
    Subscription {
        consumer: consumer.into(),
        api: api.into(),
        majors: vec![1, 2],
        plan: plan.into(),
        scopes: vec!["inventory:read".into()],
    }
}

fn token(id: &str, role: Role) -> AdminToken {
    AdminToken {
        id: id.into(),
        hash: format!("hash-of-{id}"),
        role,
        team: None,
        created_at: at(5),
        revoked_at: None,
    }
}

/// A team `ops` with an API `inventory`.
async fn with_api(store: &dyn Store) {
    store.create_team(&team("ops"), &m()).await.unwrap();
    store
        .create_api(&api("inventory", "ops"), &m())
        .await
        .unwrap();
}

fn page(after: Option<&str>, limit: u32) -> PageRequest {
    PageRequest {
        after: after.map(str::to_owned),
        limit,
    }
}

#[track_caller]
fn assert_duplicate<T: std::fmt::Debug>(result: Result<T, StoreError>, entity: &str, key: &str) {
    match result {
        Err(StoreError::Duplicate { entity: e, key: k }) => {
            assert_eq!((e, k.as_str()), (entity, key));
        }
        other => panic!("expected Duplicate {entity} `{key}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, entity: &str, key: &str) {
    match result {
        Err(StoreError::NotFound { entity: e, key: k }) => {
            assert_eq!((e, k.as_str()), (entity, key));
        }
        other => panic!("expected NotFound {entity} `{key}`, got {other:?}"),
    }
}

/// Every entry, by ascending seq.
async fn all_changes(store: &dyn Store) -> Vec<ChangeEntry> {
    store
        .list_changes(&ChangeFilter {
            limit: 1_000,
            ..ChangeFilter::default()
        })
        .await
        .unwrap()
}

/// Recomputes every hash and link of the chain, which must start at seq 1.
#[track_caller]
fn assert_valid_chain(entries: &[ChangeEntry]) {
    let mut prev = ChangeEntry::GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as i64 + 1, "seq of entry {i}");
        assert_eq!(entry.prev_hash, prev, "prev_hash of seq {}", entry.seq);
        assert_eq!(
            entry.hash,
            entry.compute_hash(),
            "hash of seq {}",
            entry.seq
        );
        prev = entry.hash.clone();
    }
}

// -- records -----------------------------------------------------------------------------

store_test!(teams_create_get_list_update, |t: Ctx| async move {
    let s = &*t.store;
    assert_eq!(s.get_team("ops").await.unwrap(), None);
    s.create_team(&team("ops"), &m()).await.unwrap();
    s.create_team(&team("billing"), &m()).await.unwrap();
    assert_eq!(s.get_team("ops").await.unwrap(), Some(team("ops")));

    let mut changed = team("ops");
    changed.contact = "ops-oncall@example.com".into();
    changed.created_at = at(999);
    s.update_team(&changed, &m()).await.unwrap();
    let stored = s.get_team("ops").await.unwrap().unwrap();
    assert_eq!(stored.contact, "ops-oncall@example.com");
    assert_eq!(stored.created_at, at(1), "update replaces the contact only");

    let names: Vec<String> = s
        .list_teams(&PageRequest::default())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["billing", "ops"]);

    assert_duplicate(s.create_team(&team("ops"), &m()).await, "team", "ops");
    assert_not_found(s.update_team(&team("ghost"), &m()).await, "team", "ghost");
});

store_test!(apis_create_get_list_update, |t: Ctx| async move {
    let s = &*t.store;
    assert_not_found(
        s.create_api(&api("inventory", "nobody"), &m()).await,
        "team",
        "nobody",
    );
    with_api(s).await;
    assert_eq!(
        s.get_api("inventory").await.unwrap(),
        Some(api("inventory", "ops"))
    );
    assert_eq!(s.get_api("orders").await.unwrap(), None);
    assert_duplicate(
        s.create_api(&api("inventory", "ops"), &m()).await,
        "api",
        "inventory",
    );

    let mut bare = api("orders", "ops");
    bare.description = None;
    bare.version_header = false;
    bare.default_major = None;
    s.create_api(&bare, &m()).await.unwrap();
    assert_eq!(s.get_api("orders").await.unwrap(), Some(bare));

    s.create_team(&team("fulfilment"), &m()).await.unwrap();
    let mut changed = api("inventory", "fulfilment");
    changed.title = "Inventory availability".into();
    changed.description = None;
    changed.version_header = false;
    changed.default_major = Some(2);
    changed.created_at = at(500);
    changed.updated_at = at(600);
    s.update_api(&changed, &m()).await.unwrap();
    let stored = s.get_api("inventory").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Api {
            created_at: at(2),
            ..changed.clone()
        }
    );

    let mut moved = changed.clone();
    moved.team = "nobody".into();
    assert_not_found(s.update_api(&moved, &m()).await, "team", "nobody");
    assert_not_found(
        s.update_api(&api("ghost", "ops"), &m()).await,
        "api",
        "ghost",
    );

    let slugs: Vec<String> = s
        .list_apis(&PageRequest::default())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.slug)
        .collect();
    assert_eq!(slugs, ["inventory", "orders"]);
});

store_test!(
    versions_create_get_update_and_semver_order,
    |t: Ctx| async move {
        let s = &*t.store;
        assert_not_found(
            s.create_version(&version("inventory", "1.0.0"), &m()).await,
            "api",
            "inventory",
        );
        with_api(s).await;
        s.create_api(&api("orders", "ops"), &m()).await.unwrap();
        for v in ["1.10.0", "2.0.0", "1.2.0", "2.0.0-beta.1", "1.9.0"] {
            s.create_version(&version("inventory", v), &m())
                .await
                .unwrap();
        }
        s.create_version(&version("orders", "0.1.0"), &m())
            .await
            .unwrap();
        assert_duplicate(
            s.create_version(&version("inventory", "1.9.0"), &m()).await,
            "version",
            "inventory@1.9.0",
        );

        let listed: Vec<String> = s
            .list_versions("inventory")
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(
            listed,
            ["1.2.0", "1.9.0", "1.10.0", "2.0.0-beta.1", "2.0.0"]
        );
        assert!(s.list_versions("nothing").await.unwrap().is_empty());
        assert_eq!(
            s.get_version("inventory", "1.9.0").await.unwrap(),
            Some(version("inventory", "1.9.0"))
        );
        assert_eq!(s.get_version("inventory", "3.0.0").await.unwrap(), None);

        let mut deprecated = version("inventory", "1.9.0");
        deprecated.state = LifecycleState::Deprecated;
        deprecated.deprecated_at = Some(at(10));
        deprecated.sunset_at = Some(at(20));
        deprecated.successor = Some("2.0.0".into());
        deprecated.deprecation_link = Some("https://docs.example.com/inventory/v1".into());
        deprecated.brownouts = vec![Brownout {
            start: at(15),
            end: at(16),
        }];
        deprecated.updated_by = "tok_owner".into();
        deprecated.updated_at = at(10);
        let mut attempt = deprecated.clone();
        attempt.spec_raw = b"something else".to_vec();
        attempt.spec_json = "{}".into();
        attempt.created_by = "someone".into();
        s.update_version(&attempt, &m()).await.unwrap();
        assert_eq!(
            s.get_version("inventory", "1.9.0").await.unwrap(),
            Some(deprecated),
            "lifecycle fields change, the spec and its creation never do"
        );

        assert_not_found(
            s.update_version(&version("inventory", "9.9.9"), &m()).await,
            "version",
            "inventory@9.9.9",
        );
        assert_not_found(
            s.update_version(&version("ghost", "1.0.0"), &m()).await,
            "api",
            "ghost",
        );
    }
);

store_test!(spec_raw_round_trips_byte_for_byte, |t: Ctx| async move {
    let s = &*t.store;
    with_api(s).await;
    let mut raw = b"\xEF\xBB\xBFopenapi: 3.1.0\r\ninfo:\r\n".to_vec();
    raw.extend_from_slice("  title: \"Entrepôt – disponibilité\"\r\n".as_bytes());
    raw.extend_from_slice(b"  version: 1.0.0   \r\n\tpaths: {}\r\n\r\n\0\r\n");
    let mut v = version("inventory", "1.0.0");
    v.spec_raw = raw.clone();
    s.create_version(&v, &m()).await.unwrap();

    let got = s.get_version("inventory", "1.0.0").await.unwrap().unwrap();
    assert_eq!(got.spec_raw, raw);
    let listed = s.list_versions("inventory").await.unwrap();
    assert_eq!(listed[0].spec_raw, raw);
    let contents = s.load_contents().await.unwrap();
    assert_eq!(contents.versions[0].spec_raw, raw);
});

store_test!(upstreams_put_replace_list, |t: Ctx| async move {
    let s = &*t.store;
    let up = |api: &str, major: u64, url: &str| Upstream {
        api: api.into(),
        major,
        targets: vec![
            Target {
                url: url.into(),
                weight: 90,
            },
            Target {
                url: "mock://".into(),
                weight: 10,
            },
        ],
        connect_timeout_ms: Upstream::DEFAULT_CONNECT_TIMEOUT_MS,
        read_timeout_ms: Upstream::DEFAULT_READ_TIMEOUT_MS,
    };
    assert_not_found(
        s.put_upstream(&up("inventory", 1, "http://wms:8080"), &m())
            .await,
        "api",
        "inventory",
    );
    with_api(s).await;
    s.create_api(&api("orders", "ops"), &m()).await.unwrap();
    s.put_upstream(&up("orders", 1, "http://erp:8080"), &m())
        .await
        .unwrap();
    s.put_upstream(&up("inventory", 2, "http://wms2:8080"), &m())
        .await
        .unwrap();
    s.put_upstream(&up("inventory", 1, "http://wms:8080"), &m())
        .await
        .unwrap();

    let mut replaced = up("inventory", 1, "http://wms-new:8080");
    replaced.connect_timeout_ms = 250;
    replaced.read_timeout_ms = u32::MAX;
    s.put_upstream(&replaced, &m()).await.unwrap();

    assert_eq!(
        s.list_upstreams(Some("inventory")).await.unwrap(),
        [replaced.clone(), up("inventory", 2, "http://wms2:8080")]
    );
    assert_eq!(
        s.list_upstreams(None).await.unwrap(),
        [
            replaced,
            up("inventory", 2, "http://wms2:8080"),
            up("orders", 1, "http://erp:8080")
        ]
    );
    assert!(s.list_upstreams(Some("ghost")).await.unwrap().is_empty());
});

store_test!(systems_of_record_one_per_entity, |t: Ctx| async move {
    let s = &*t.store;
    let sor = |entity: &str, system: &str, api: &str| SystemOfRecord {
        entity: entity.into(),
        system: system.into(),
        api: api.into(),
    };
    assert_not_found(
        s.put_systems_of_record("inventory", &[sor("stock", "WMS", "inventory")], &m())
            .await,
        "api",
        "inventory",
    );
    with_api(s).await;
    s.create_api(&api("orders", "ops"), &m()).await.unwrap();
    s.put_systems_of_record(
        "inventory",
        &[
            sor("stock", "WMS", "inventory"),
            sor("product", "ERP", "inventory"),
        ],
        &m(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_systems_of_record().await.unwrap(),
        [
            sor("product", "ERP", "inventory"),
            sor("stock", "WMS", "inventory")
        ]
    );

    let head = s.head_seq().await.unwrap();
    let refused = s
        .put_systems_of_record(
            "orders",
            &[sor("order", "ERP", "orders"), sor("stock", "ERP", "orders")],
            &m(),
        )
        .await;
    match refused {
        Err(StoreError::SystemOfRecordClaimed {
            entity,
            system,
            api,
        }) => {
            assert_eq!(
                (entity.as_str(), system.as_str(), api.as_str()),
                ("stock", "WMS", "inventory")
            );
        }
        other => panic!("expected SystemOfRecordClaimed, got {other:?}"),
    }
    assert_eq!(
        s.head_seq().await.unwrap(),
        head,
        "a refused write logs nothing"
    );
    assert_eq!(
        s.list_systems_of_record().await.unwrap().len(),
        2,
        "nothing changed"
    );

    // Replacing drops what the API no longer declares, which frees it for another API.
    s.put_systems_of_record("inventory", &[sor("stock", "WMS2", "inventory")], &m())
        .await
        .unwrap();
    s.put_systems_of_record("orders", &[sor("product", "PIM", "orders")], &m())
        .await
        .unwrap();
    assert_eq!(
        s.list_systems_of_record().await.unwrap(),
        [
            sor("product", "PIM", "orders"),
            sor("stock", "WMS2", "inventory")
        ]
    );
    assert_duplicate(
        s.put_systems_of_record(
            "inventory",
            &[
                sor("stock", "WMS", "inventory"),
                sor("stock", "ERP", "inventory"),
            ],
            &m(),
        )
        .await,
        "system of record",
        "stock",
    );
    s.put_systems_of_record("inventory", &[], &m())
        .await
        .unwrap();
    assert_eq!(
        s.list_systems_of_record().await.unwrap(),
        [sor("product", "PIM", "orders")]
    );
});

store_test!(consumers_create_get_list_update, |t: Ctx| async move {
    let s = &*t.store;
    s.create_consumer(&consumer("b2b-portal"), &m())
        .await
        .unwrap();
    let mut edi = consumer("edi");
    edi.contact = None;
    s.create_consumer(&edi, &m()).await.unwrap();
    assert_eq!(s.get_consumer("edi").await.unwrap(), Some(edi));
    assert_eq!(s.get_consumer("nobody").await.unwrap(), None);
    assert_duplicate(
        s.create_consumer(&consumer("edi"), &m()).await,
        "consumer",
        "edi",
    );

    let mut changed = consumer("b2b-portal");
    changed.contact = None;
    s.update_consumer(&changed, &m()).await.unwrap();
    assert_eq!(s.get_consumer("b2b-portal").await.unwrap(), Some(changed));
    assert_not_found(
        s.update_consumer(&consumer("ghost"), &m()).await,
        "consumer",
        "ghost",
    );

    let names: Vec<String> = s
        .list_consumers(&PageRequest::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["b2b-portal", "edi"]);
});

store_test!(keys_create_list_revoke_touch, |t: Ctx| async move {
    let s = &*t.store;
    assert_not_found(
        s.create_key(&key("gh_k1", "edi", 10), &m()).await,
        "consumer",
        "edi",
    );
    s.create_consumer(&consumer("edi"), &m()).await.unwrap();
    s.create_consumer(&consumer("portal"), &m()).await.unwrap();
    s.create_key(&key("gh_k1", "edi", 10), &m()).await.unwrap();
    let mut k2 = key("gh_k2", "edi", 20);
    k2.expires_at = None;
    s.create_key(&k2, &m()).await.unwrap();
    s.create_key(&key("gh_k3", "portal", 30), &m())
        .await
        .unwrap();
    assert_duplicate(
        s.create_key(&key("gh_k1", "edi", 40), &m()).await,
        "api key",
        "gh_k1",
    );
    let mut same_hash = key("gh_k4", "edi", 40);
    same_hash.hash = key("gh_k1", "edi", 0).hash;
    assert_duplicate(s.create_key(&same_hash, &m()).await, "api key", "gh_k4");

    assert_eq!(
        s.list_keys("edi").await.unwrap(),
        [k2.clone(), key("gh_k1", "edi", 10)],
        "newest first"
    );
    assert!(s.list_keys("nobody").await.unwrap().is_empty());

    s.revoke_key("edi", "gh_k1", at(50), &m()).await.unwrap();
    s.revoke_key("edi", "gh_k1", at(60), &m()).await.unwrap();
    let keys = s.list_keys("edi").await.unwrap();
    assert_eq!(
        keys[1].revoked_at,
        Some(at(50)),
        "the first revocation stands"
    );
    assert_eq!(keys[0].revoked_at, None);
    assert_not_found(
        s.revoke_key("portal", "gh_k1", at(70), &m()).await,
        "api key",
        "gh_k1",
    );
    assert_not_found(
        s.revoke_key("edi", "gh_nope", at(70), &m()).await,
        "api key",
        "gh_nope",
    );

    let head = s.head_seq().await.unwrap();
    s.touch_keys(&[]).await.unwrap();
    s.touch_keys(&[
        ("gh_k1".into(), at(100)),
        ("gh_k3".into(), at(200)),
        ("gh_unknown".into(), at(300)),
    ])
    .await
    .unwrap();
    // An older batch arriving late never moves a last-used time back.
    s.touch_keys(&[("gh_k1".into(), at(90)), ("gh_k2".into(), at(95))])
        .await
        .unwrap();
    assert_eq!(
        s.head_seq().await.unwrap(),
        head,
        "touching keys is not a change"
    );
    let edi = s.list_keys("edi").await.unwrap();
    assert_eq!(edi[1].last_used_at, Some(at(100)));
    assert_eq!(edi[0].last_used_at, Some(at(95)));
    assert_eq!(
        s.list_keys("portal").await.unwrap()[0].last_used_at,
        Some(at(200))
    );
});

store_test!(plans_create_get_list_update, |t: Ctx| async move {
    let s = &*t.store;
    s.create_plan(&plan("gold"), &m()).await.unwrap();
    let mut bronze = plan("bronze");
    bronze.rate.burst = None;
    bronze.quota = None;
    s.create_plan(&bronze, &m()).await.unwrap();
    assert_eq!(s.get_plan("gold").await.unwrap(), Some(plan("gold")));
    assert_eq!(s.get_plan("bronze").await.unwrap(), Some(bronze.clone()));
    assert_eq!(s.get_plan("tin").await.unwrap(), None);
    assert_duplicate(s.create_plan(&plan("gold"), &m()).await, "plan", "gold");

    let mut gold = plan("gold");
    gold.rate = Rate {
        requests: u32::MAX,
        per_seconds: 1,
        burst: None,
    };
    gold.quota = Some(Quota {
        requests: 5_000,
        period: QuotaPeriod::Day,
    });
    s.update_plan(&gold, &m()).await.unwrap();
    assert_eq!(s.list_plans().await.unwrap(), [bronze, gold]);
    assert_not_found(s.update_plan(&plan("tin"), &m()).await, "plan", "tin");
});

store_test!(subscriptions_put_replace_delete, |t: Ctx| async move {
    let s = &*t.store;
    let sub = subscription("edi", "inventory", "gold");
    assert_not_found(s.put_subscription(&sub, &m()).await, "consumer", "edi");
    s.create_consumer(&consumer("edi"), &m()).await.unwrap();
    assert_not_found(s.put_subscription(&sub, &m()).await, "api", "inventory");
    with_api(s).await;
    assert_not_found(s.put_subscription(&sub, &m()).await, "plan", "gold");
    s.create_plan(&plan("gold"), &m()).await.unwrap();
    s.create_plan(&plan("silver"), &m()).await.unwrap();
    s.put_subscription(&sub, &m()).await.unwrap();

    s.create_api(&api("orders", "ops"), &m()).await.unwrap();
    s.create_consumer(&consumer("b2b"), &m()).await.unwrap();
    let orders = Subscription {
        majors: Vec::new(),
        scopes: Vec::new(),
        ..subscription("edi", "orders", "gold")
    };
    s.put_subscription(&orders, &m()).await.unwrap();
    let other = subscription("b2b", "inventory", "silver");
    s.put_subscription(&other, &m()).await.unwrap();

    let replaced = Subscription {
        majors: vec![3],
        plan: "silver".into(),
        scopes: vec!["inventory:read".into(), "inventory:reserve".into()],
        ..sub.clone()
    };
    s.put_subscription(&replaced, &m()).await.unwrap();
    assert_eq!(
        s.list_subscriptions(Some("edi")).await.unwrap(),
        [replaced.clone(), orders.clone()]
    );
    assert_eq!(
        s.list_subscriptions(None).await.unwrap(),
        [other.clone(), replaced, orders.clone()]
    );

    s.delete_subscription("edi", "inventory", &m())
        .await
        .unwrap();
    assert_eq!(s.list_subscriptions(Some("edi")).await.unwrap(), [orders]);
    assert_not_found(
        s.delete_subscription("edi", "inventory", &m()).await,
        "subscription",
        "edi/inventory",
    );
    assert!(
        s.list_subscriptions(Some("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
});

store_test!(admin_tokens_create_find_count, |t: Ctx| async move {
    let s = &*t.store;
    assert_eq!(s.count_tokens().await.unwrap(), 0);
    s.create_token(&token("gh_t1", Role::Admin), &m())
        .await
        .unwrap();
    let owner = AdminToken {
        team: Some("ops".into()),
        revoked_at: Some(at(6)),
        ..token("gh_t2", Role::Owner)
    };
    s.create_token(&owner, &m()).await.unwrap();
    s.create_token(&token("gh_t3", Role::Auditor), &m())
        .await
        .unwrap();
    assert_eq!(s.count_tokens().await.unwrap(), 3);
    assert_eq!(
        s.find_token("hash-of-gh_t1").await.unwrap(),
        Some(token("gh_t1", Role::Admin))
    );
    assert_eq!(s.find_token("hash-of-gh_t2").await.unwrap(), Some(owner));
    assert_eq!(s.find_token("hash-of-nothing").await.unwrap(), None);
    assert_duplicate(
        s.create_token(&token("gh_t1", Role::Architect), &m()).await,
        "admin token",
        "gh_t1",
    );
    let same_hash = AdminToken {
        hash: "hash-of-gh_t3".into(),
        ..token("gh_t4", Role::Architect)
    };
    assert_duplicate(
        s.create_token(&same_hash, &m()).await,
        "admin token",
        "gh_t4",
    );
    assert_eq!(s.count_tokens().await.unwrap(), 3);
});

store_test!(pagination_by_natural_key, |t: Ctx| async move {
    let s = &*t.store;
    // Bytewise order on both backends: upper case before lower case.
    for name in [
        "delta", "Bravo", "alpha", "echo", "charlie", "foxtrot", "golf",
    ] {
        s.create_team(&team(name), &m()).await.unwrap();
        s.create_consumer(&consumer(name), &m()).await.unwrap();
    }
    s.create_api(&api("b-api", "alpha"), &m()).await.unwrap();
    s.create_api(&api("a-api", "alpha"), &m()).await.unwrap();
    s.create_api(&api("c-api", "alpha"), &m()).await.unwrap();

    let names = |teams: Vec<Team>| teams.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_teams(&page(None, 3)).await.unwrap()),
        ["Bravo", "alpha", "charlie"]
    );
    assert_eq!(
        names(s.list_teams(&page(Some("charlie"), 3)).await.unwrap()),
        ["delta", "echo", "foxtrot"]
    );
    assert_eq!(
        names(s.list_teams(&page(Some("foxtrot"), 3)).await.unwrap()),
        ["golf"]
    );
    assert!(
        s.list_teams(&page(Some("golf"), 3))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        names(s.list_teams(&page(Some("c"), 2)).await.unwrap()),
        ["charlie", "delta"],
        "`after` need not be an existing key"
    );
    assert_eq!(
        s.list_teams(&page(None, 0)).await.unwrap().len(),
        7,
        "0 means the default"
    );

    let consumers: Vec<String> = s
        .list_consumers(&page(Some("delta"), 2))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(consumers, ["echo", "foxtrot"]);

    let apis: Vec<String> = s
        .list_apis(&page(Some("a-api"), 1))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.slug)
        .collect();
    assert_eq!(apis, ["b-api"]);
});

store_test!(default_page_size_is_100, |t: Ctx| async move {
    let s = &*t.store;
    for i in 0..105 {
        s.create_consumer(&consumer(&format!("c{i:03}")), &m())
            .await
            .unwrap();
    }
    let first = s.list_consumers(&page(None, 0)).await.unwrap();
    assert_eq!(first.len(), 100);
    assert_eq!(first[99].name, "c099");
    assert_eq!(
        s.list_consumers(&page(None, 5_000)).await.unwrap().len(),
        105
    );
    let changes = s.list_changes(&ChangeFilter::default()).await.unwrap();
    assert_eq!(
        changes.len(),
        100,
        "0 means the default for the change log too"
    );
});

// -- change log --------------------------------------------------------------------------

store_test!(every_write_appends_one_chained_entry, |t: Ctx| async move {
    let s = &*t.store;
    let mut expected: i64 = 0;

    let full = ChangeMeta {
        actor: Actor {
            id: "tok_owner".into(),
            role: Role::Owner,
            team: Some("ops".into()),
        },
        action: "team.create".into(),
        target: "team/ops".into(),
        reason: Some("onboarding".into()),
        before_digest: None,
        after_digest: Some(digest(&team("ops"))),
    };
    s.create_team(&team("ops"), &full).await.unwrap();
    expected += 1;
    s.update_team(&team("ops"), &m()).await.unwrap();
    expected += 1;
    s.create_api(&api("inventory", "ops"), &m()).await.unwrap();
    expected += 1;
    s.update_api(&api("inventory", "ops"), &m()).await.unwrap();
    expected += 1;
    s.create_version(&version("inventory", "1.0.0"), &m())
        .await
        .unwrap();
    expected += 1;
    s.update_version(&version("inventory", "1.0.0"), &m())
        .await
        .unwrap();
    expected += 1;
    let upstream = Upstream {
        api: "inventory".into(),
        major: 1,
        targets: vec![],
        connect_timeout_ms: 1,
        read_timeout_ms: 1,
    };
    s.put_upstream(&upstream, &m()).await.unwrap();
    expected += 1;
    s.put_systems_of_record("inventory", &[], &m())
        .await
        .unwrap();
    expected += 1;
    s.create_consumer(&consumer("edi"), &m()).await.unwrap();
    expected += 1;
    s.update_consumer(&consumer("edi"), &m()).await.unwrap();
    expected += 1;
    s.create_key(&key("gh_k1", "edi", 1), &m()).await.unwrap();
    expected += 1;
    s.revoke_key("edi", "gh_k1", at(2), &m()).await.unwrap();
    expected += 1;
    s.touch_keys(&[("gh_k1".into(), at(3))]).await.unwrap();
    s.create_plan(&plan("gold"), &m()).await.unwrap();
    expected += 1;
    s.update_plan(&plan("gold"), &m()).await.unwrap();
    expected += 1;
    s.put_subscription(&subscription("edi", "inventory", "gold"), &m())
        .await
        .unwrap();
    expected += 1;
    s.delete_subscription("edi", "inventory", &m())
        .await
        .unwrap();
    expected += 1;
    s.create_token(&token("gh_t1", Role::Admin), &m())
        .await
        .unwrap();
    expected += 1;

    // Refused writes log nothing.
    s.create_team(&team("ops"), &m()).await.unwrap_err();
    s.create_api(&api("orders", "nobody"), &m())
        .await
        .unwrap_err();
    s.delete_subscription("edi", "inventory", &m())
        .await
        .unwrap_err();

    let entries = all_changes(s).await;
    assert_eq!(entries.len() as i64, expected);
    assert_eq!(s.head_seq().await.unwrap(), expected);
    assert_valid_chain(&entries);

    let first = &entries[0];
    assert_eq!(first.prev_hash, ChangeEntry::GENESIS);
    assert_eq!(
        (
            first.actor.as_str(),
            first.role,
            first.action.as_str(),
            first.target.as_str()
        ),
        ("tok_owner", Role::Owner, "team.create", "team/ops")
    );
    assert_eq!(first.reason.as_deref(), Some("onboarding"));
    assert_eq!(first.before_digest, None);
    assert_eq!(first.after_digest, Some(digest(&team("ops"))));
    let now = OffsetDateTime::now_utc();
    assert!(first.at <= now && now - first.at < time::Duration::minutes(5));
});

store_test!(change_log_filters, |t: Ctx| async move {
    let s = &*t.store;
    let as_actor = |actor: &str, action: &str, target: &str| ChangeMeta {
        actor: Actor {
            id: actor.into(),
            role: Role::Admin,
            team: None,
        },
        ..meta(action, target)
    };
    s.create_team(&team("ops"), &as_actor("alice", "team.create", "team/ops"))
        .await
        .unwrap();
    s.create_api(
        &api("inventory", "ops"),
        &as_actor("alice", "api.create", "inventory"),
    )
    .await
    .unwrap();
    s.create_api(
        &api("inventory-x", "ops"),
        &as_actor("bob", "api.create", "inventory-x"),
    )
    .await
    .unwrap();
    s.create_version(
        &version("inventory", "1.0.0"),
        &as_actor("bob", "version.create", "inventory@1.0.0"),
    )
    .await
    .unwrap();
    s.create_api(
        &api("orders", "ops"),
        &as_actor("carol", "api.create", "orders"),
    )
    .await
    .unwrap();
    s.create_consumer(
        &consumer("c"),
        &as_actor("carol", "consumer.create", "a%b_c"),
    )
    .await
    .unwrap();
    s.create_consumer(
        &consumer("d"),
        &as_actor("carol", "consumer.create", "aXbYc"),
    )
    .await
    .unwrap();

    let seqs = |filter: ChangeFilter| async move {
        s.list_changes(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<i64>>()
    };
    let all = all_changes(s).await;
    assert_eq!(all.len(), 7);
    assert_valid_chain(&all);

    assert_eq!(
        seqs(ChangeFilter {
            actor: Some("bob".into()),
            ..Default::default()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        seqs(ChangeFilter {
            action: Some("api.create".into()),
            ..Default::default()
        })
        .await,
        [2, 3, 5]
    );
    assert_eq!(
        seqs(ChangeFilter {
            target: Some("inventory".into()),
            ..Default::default()
        })
        .await,
        [2, 3, 4]
    );
    assert_eq!(
        seqs(ChangeFilter {
            target: Some("inventory@".into()),
            ..Default::default()
        })
        .await,
        [4]
    );
    assert_eq!(
        seqs(ChangeFilter {
            target: Some("a%b".into()),
            ..Default::default()
        })
        .await,
        [6],
        "the target prefix is literal text, not a LIKE pattern"
    );
    assert_eq!(
        seqs(ChangeFilter {
            target: Some("INVENTORY".into()),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new(),
        "the target prefix is case-sensitive"
    );
    assert_eq!(
        seqs(ChangeFilter {
            actor: Some("alice".into()),
            action: Some("api.create".into()),
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        seqs(ChangeFilter {
            after_seq: Some(4),
            ..Default::default()
        })
        .await,
        [5, 6, 7]
    );
    assert_eq!(
        seqs(ChangeFilter {
            after_seq: Some(2),
            limit: 2,
            ..Default::default()
        })
        .await,
        [3, 4]
    );

    // Times: `from` is inclusive, `to` exclusive. Entries may share a millisecond, so the
    // expectation is computed from the entries themselves.
    let from = all[2].at;
    let to = all[5].at + time::Duration::milliseconds(1);
    let expected: Vec<i64> = all
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .map(|e| e.seq)
        .collect();
    assert!(
        expected.contains(&3) && expected.contains(&6),
        "{expected:?}"
    );
    assert_eq!(
        seqs(ChangeFilter {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await,
        expected
    );
    assert!(
        seqs(ChangeFilter {
            to: Some(all[0].at),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        seqs(ChangeFilter {
            from: Some(all[6].at + time::Duration::milliseconds(1)),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
});

store_test!(
    concurrent_writers_never_fork_the_chain,
    |t: Ctx| async move {
        let other = t.open_another().await;
        let mut writers = Vec::new();
        for i in 0..24 {
            let store = if i % 2 == 0 {
                Arc::clone(&t.store)
            } else {
                Arc::clone(&other)
            };
            writers.push(tokio::spawn(async move {
                store
                    .create_team(&team(&format!("team-{i:02}")), &m())
                    .await
                    .unwrap();
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let entries = all_changes(&*t.store).await;
        assert_eq!(entries.len(), 24);
        assert_valid_chain(&entries);
        assert_eq!(other.head_seq().await.unwrap(), 24);
    }
);

// -- head, subscriptions, snapshot --------------------------------------------------------

store_test!(subscribe_sees_the_head_move, |t: Ctx| async move {
    let s = &*t.store;
    let mut rx = s.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    assert_eq!(s.head_seq().await.unwrap(), 0);
    s.create_team(&team("ops"), &m()).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|seq| *seq >= 1))
        .await
        .expect("the head reaches subscribers within a second")
        .map(|seq| *seq)
        .unwrap();
    assert_eq!(seen, 1);
    s.create_team(&team("billing"), &m()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|seq| *seq >= 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.head_seq().await.unwrap(), 2);

    // A store opened later starts from the current head.
    let later = t.open_another().await;
    assert_eq!(*later.subscribe().borrow(), 2);
});

store_test!(load_contents_is_one_consistent_read, |t: Ctx| async move {
    let s = &*t.store;
    let empty = s.load_contents().await.unwrap();
    assert_eq!(empty.generation, 0);
    assert!(empty.apis.is_empty() && empty.teams.is_empty());

    with_api(s).await;
    for v in ["1.10.0", "1.2.0"] {
        s.create_version(&version("inventory", v), &m())
            .await
            .unwrap();
    }
    s.create_consumer(&consumer("edi"), &m()).await.unwrap();
    s.create_key(&key("gh_k1", "edi", 1), &m()).await.unwrap();
    s.create_plan(&plan("gold"), &m()).await.unwrap();
    s.put_subscription(&subscription("edi", "inventory", "gold"), &m())
        .await
        .unwrap();
    let upstream = Upstream {
        api: "inventory".into(),
        major: 1,
        targets: vec![Target {
            url: "mock://".into(),
            weight: 1,
        }],
        connect_timeout_ms: 100,
        read_timeout_ms: 200,
    };
    s.put_upstream(&upstream, &m()).await.unwrap();
    s.create_token(&token("gh_t1", Role::Admin), &m())
        .await
        .unwrap();

    let contents = s.load_contents().await.unwrap();
    assert_eq!(contents.generation, s.head_seq().await.unwrap());
    assert_eq!(contents.generation, 10);
    assert_eq!(contents.teams, [team("ops")]);
    assert_eq!(contents.apis, [api("inventory", "ops")]);
    let versions: Vec<&str> = contents
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(versions, ["1.2.0", "1.10.0"]);
    assert_eq!(contents.upstreams, [upstream]);
    assert_eq!(contents.consumers, [consumer("edi")]);
    assert_eq!(contents.keys, [key("gh_k1", "edi", 1)]);
    assert_eq!(contents.plans, [plan("gold")]);
    assert_eq!(
        contents.subscriptions,
        [subscription("edi", "inventory", "gold")]
    );
});

store_test!(reopening_keeps_the_data, |t: Ctx| async move {
    with_api(&*t.store).await;
    let again = t.open_another().await;
    assert_eq!(again.backend(), t.store.backend());
    assert_eq!(
        again.get_api("inventory").await.unwrap(),
        Some(api("inventory", "ops"))
    );
    assert_eq!(again.head_seq().await.unwrap(), 2);
    again.create_consumer(&consumer("edi"), &m()).await.unwrap();
    assert_valid_chain(&all_changes(&*t.store).await);
});

// -- backend-specific --------------------------------------------------------------------

#[tokio::test]
async fn postgres_notify_reaches_another_store() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    run(db, |t: Ctx| async move {
        assert_eq!(t.store.backend(), Backend::Postgres);
        let other = t.open_another().await;
        let mut rx = other.subscribe();
        for (i, name) in ["ops", "billing", "fulfilment"].into_iter().enumerate() {
            t.store.create_team(&team(name), &m()).await.unwrap();
            let want = i as i64 + 1;
            tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|seq| *seq >= want))
                .await
                .unwrap_or_else(|_| panic!("the other store did not see seq {want} within 1 s"))
                .unwrap();
        }
        assert_eq!(*rx.borrow(), 3);
    })
    .await;
}

#[tokio::test]
async fn postgres_listener_ends_with_the_store() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let TestDb::Postgres { admin_url, .. } = &db else {
        unreachable!()
    };
    let admin_url = admin_url.clone();
    run(db, |t: Ctx| async move {
        let app = format!("gh_drop_{}", uuid::Uuid::new_v4().simple());
        let store = PgStore::open(&format!("{}&application_name={app}", t.url))
            .await
            .unwrap();
        store.head_seq().await.unwrap();
        let mut admin = connect_admin(&admin_url).await;
        assert!(
            connections(&mut admin, &app).await >= 2,
            "a pool connection and the listener"
        );
        drop(store);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while connections(&mut admin, &app).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "connections of a dropped store are still open"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn postgres_listener_reconnects_after_losing_its_connection() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let TestDb::Postgres { admin_url, .. } = &db else {
        unreachable!()
    };
    let admin_url = admin_url.clone();
    run(db, |t: Ctx| async move {
        let app = format!("gh_relisten_{}", uuid::Uuid::new_v4().simple());
        let listening = PgStore::open(&format!("{}&application_name={app}", t.url))
            .await
            .unwrap();
        let mut rx = listening.subscribe();
        let mut admin = connect_admin(&admin_url).await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&app)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, [true], "exactly one listener connection");

        // Written by another node while the listener may still be reconnecting: either the
        // notification or the catch-up read after reconnecting must deliver it.
        t.store.create_team(&team("ops"), &m()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|seq| *seq >= 1))
            .await
            .expect("the listener came back and caught up")
            .unwrap();
        t.store.create_team(&team("billing"), &m()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|seq| *seq >= 2))
            .await
            .expect("notifications flow again after reconnecting")
            .unwrap();
    })
    .await;
}

/// How many connections with this `application_name` the server has.
async fn connections(admin: &mut sqlx::PgConnection, app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn sqlite_creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/registry.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.create_team(&team("ops"), &m()).await.unwrap();
    assert!(path.is_file());
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    with_api(&store).await;
    assert_eq!(
        store.get_api("inventory").await.unwrap(),
        Some(api("inventory", "ops"))
    );
    assert_valid_chain(&all_changes(&store).await);
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    assert_eq!(
        other.head_seq().await.unwrap(),
        0,
        "each in-memory store is private"
    );
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in [
        "mysql://db/x",
        "sqlite://db?mode=bogus",
        "postgres://db:notaport/x",
    ] {
        match store::open(url).await {
            Err(StoreError::BadUrl { .. }) => {}
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
    match PgStore::open("postgres://app:s3cret@db:notaport/x").await {
        Err(StoreError::BadUrl { url }) => assert!(!url.contains("s3cret"), "{url}"),
        other => panic!("expected BadUrl, got {other:?}"),
    }
}
