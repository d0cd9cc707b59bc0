//! The foundation end to end, through the real `gatehouse` binary: the README's run path
//! (`serve` seeds the bundled catalog on a fresh data dir, on SQLite and on PostgreSQL),
//! restarts, `--no-seed`, and the CLI's client commands against a running server.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

use gatehouse_tests::{Gatehouse, PgSchema, cli, free_addr, run};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The six capability APIs of the bundled catalog, in list order.
const BUNDLED_APIS: [&str; 6] = [
    "credit",
    "inventory",
    "orders",
    "pricing",
    "returns",
    "shipments",
];

fn slugs(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap().to_owned())
        .collect()
}

/// A sunset date far enough ahead for any notice rule (YYYY-MM-DD).
fn sunset_date() -> String {
    let d = (OffsetDateTime::now_utc() + time::Duration::days(200)).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// How many entries the change log holds, after checking its hash chain.
async fn log_len(gh: &Gatehouse) -> u64 {
    let report = gh.admin().get("/audit/changes/verify").await.expect(200);
    assert_eq!(report["ok"], true, "{report}");
    report["entries"].as_u64().unwrap()
}

// -- serve -------------------------------------------------------------------------------

#[tokio::test]
async fn serve_seeds_the_bundled_catalog_and_the_bootstrap_token_lists_the_six_apis() {
    let gh = Gatehouse::start().await;
    let apis = gh.admin().get("/apis").await.expect(200);
    assert_eq!(slugs(&apis), BUNDLED_APIS);
    assert!(
        gh.data_dir().join("gatehouse.db").is_file(),
        "SQLite lives in the data dir"
    );
    let refused = gh.admin().with_token(None).get("/apis").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert!(refused.header("www-authenticate").is_some());
    let inventory = gh.admin().get("/apis/inventory").await.expect(200);
    let states: Vec<(&str, &str)> = inventory["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("1.4.0", "deprecated"), ("2.1.0", "published")]);
    let ready = gh.admin().with_token(None).get("/readyz").await.expect(200);
    assert_eq!(ready["ready"], true);
}

#[tokio::test]
async fn serve_on_postgres_seeds_the_bundled_catalog_and_lists_the_six_apis() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let gh = Gatehouse::builder()
        .arg("--database-url")
        .arg(schema.url())
        .start()
        .await;
    let apis = gh.admin().get("/apis").await.expect(200);
    assert_eq!(slugs(&apis), BUNDLED_APIS);
    assert!(
        !gh.data_dir().join("gatehouse.db").exists(),
        "no SQLite file beside PostgreSQL"
    );
    assert!(log_len(&gh).await > 30);
}

#[tokio::test]
async fn a_restart_keeps_the_data_does_not_seed_twice_and_ignores_a_new_bootstrap_token() {
    let dir = tempfile::tempdir().unwrap();
    let first = Gatehouse::builder().data_dir(dir.path()).start().await;
    first
        .admin()
        .post("/consumers", &json!({"name": "made-before-restart"}))
        .await
        .expect(201);
    let entries = log_len(&first).await;
    let token = first.token().to_owned();
    drop(first);

    let second = Gatehouse::builder()
        .data_dir(dir.path())
        .bootstrap_token("a-different-bootstrap-token")
        .start()
        .await;
    let old = second.admin().with_token(Some(&token));
    old.get("/consumers/made-before-restart").await.expect(200);
    assert_eq!(slugs(&old.get("/apis").await.expect(200)), BUNDLED_APIS);
    let report = old.get("/audit/changes/verify").await.expect(200);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["entries"], entries,
        "the restart wrote to the change log"
    );
    assert_eq!(
        second.admin().get("/apis").await.status,
        401,
        "a bootstrap token only counts while no token exists"
    );
}

#[tokio::test]
async fn no_seed_starts_with_an_empty_registry() {
    let gh = Gatehouse::builder().arg("--no-seed").start().await;
    let admin = gh.admin();
    assert_eq!(admin.get("/apis").await.expect(200)["items"], json!([]));
    assert_eq!(admin.get("/teams").await.expect(200)["items"], json!([]));
    assert_eq!(
        admin.get("/consumers").await.expect(200)["items"],
        json!([])
    );
    assert_eq!(log_len(&gh).await, 1, "only the bootstrap token");
}

// -- the CLI against a running server ------------------------------------------------------

#[tokio::test]
async fn token_create_prints_an_auditor_token_that_reads_but_cannot_write() {
    let gh = Gatehouse::start().await;
    let out = run(gh.cli().args(["token", "create", "--role", "auditor"]));
    let token = out.expect(0).trim().to_owned();
    assert!(token.starts_with("gha_"), "{token}");
    assert_eq!(token.lines().count(), 1, "the token alone on stdout");

    let as_auditor = gh.admin().with_token(Some(&token));
    assert_eq!(
        slugs(&as_auditor.get("/apis").await.expect(200)),
        BUNDLED_APIS
    );
    as_auditor.get("/audit/changes").await.expect(200);
    let refused = as_auditor
        .post(
            "/teams",
            &json!({"name": "auditors", "contact": "a@example.com"}),
        )
        .await;
    assert_eq!(refused.status, 403);

    let listed = run(gh
        .cli()
        .env("GATEHOUSE_TOKEN", &token)
        .args(["apis", "list"]));
    assert!(listed.expect(0).contains("inventory"));
    let write =
        run(gh
            .cli()
            .env("GATEHOUSE_TOKEN", &token)
            .args(["consumers", "create", "sneaky"]));
    write.expect(2);
    assert!(write.stderr.contains("403"), "{}", write.stderr);
    gh.admin().get("/consumers/sneaky").await.expect(404);
}

#[tokio::test]
async fn apis_list_and_show_print_tables_and_json() {
    let gh = Gatehouse::start().await;
    let table = run(gh.cli().args(["apis", "list"]));
    let table = table.expect(0);
    let header = table.lines().next().unwrap();
    for column in ["SLUG", "TITLE", "TEAM"] {
        assert!(header.contains(column), "{header}");
    }
    for slug in BUNDLED_APIS {
        assert!(
            table.lines().any(|l| l.trim_start().starts_with(slug)),
            "{slug} not in\n{table}"
        );
    }
    let json = run(gh.cli().args(["apis", "list", "--output", "json"])).json();
    assert_eq!(slugs(&json), BUNDLED_APIS);

    let shown = run(gh.cli().args(["apis", "show", "inventory"]));
    let shown = shown.expect(0);
    assert!(shown.contains("Inventory Availability"), "{shown}");
    assert!(
        shown.contains("1.4.0") && shown.contains("deprecated"),
        "{shown}"
    );
    assert!(
        shown.contains("2.1.0") && shown.contains("published"),
        "{shown}"
    );
    let json = run(gh
        .cli()
        .args(["--output", "json", "apis", "show", "inventory"]))
    .json();
    assert_eq!(json["team"], "inventory-platform");
    assert_eq!(json["versions"].as_array().unwrap().len(), 2);

    let missing = run(gh.cli().args(["apis", "show", "nope"]));
    missing.expect(2);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

#[tokio::test]
async fn versions_are_pushed_published_deprecated_and_retired_from_the_cli() {
    let gh = Gatehouse::start().await;
    let root = gatehouse_tests::workspace_root();
    let v13 = std::fs::read_to_string(root.join("specs/orders/v1.yaml")).unwrap();
    assert!(v13.contains("\n  version: 1.3.0\n"));
    let v14 = v13.replace("\n  version: 1.3.0\n", "\n  version: 1.4.0\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders-1.4.0.yaml");
    std::fs::write(&file, &v14).unwrap();

    let pushed = run(gh
        .cli()
        .args(["--output", "json", "versions", "push", "orders"])
        .arg(&file))
    .json();
    assert_eq!(pushed["version"], "1.4.0");
    assert_eq!(pushed["major"], 1);
    assert_eq!(pushed["state"], "draft");
    let spec = run(gh.cli().args(["versions", "spec", "orders", "1.4.0"]));
    assert_eq!(spec.expect(0), v14, "the stored spec, byte for byte");

    let published = run(gh.cli().args(["versions", "publish", "orders", "1.4.0"]));
    assert!(published.expect(0).contains("published"));
    let sunset = sunset_date();
    let deprecated = run(gh.cli().args([
        "--output",
        "json",
        "versions",
        "deprecate",
        "orders",
        "1.3.0",
        "--sunset",
        &sunset,
        "--successor",
        "1.4.0",
        "--link",
        "https://developer.northwind.example/orders/1.4",
    ]))
    .json();
    assert_eq!(deprecated["state"], "deprecated");
    assert_eq!(deprecated["successor"], "1.4.0");
    assert!(
        deprecated["sunset_at"]
            .as_str()
            .unwrap()
            .starts_with(&sunset),
        "{deprecated}"
    );
    let retired = run(gh
        .cli()
        .args(["--output", "json", "versions", "retire", "orders", "1.3.0"]))
    .json();
    assert_eq!(retired["state"], "retired");

    let listed = run(gh.cli().args(["versions", "list", "orders"]));
    let listed = listed.expect(0);
    let line = |v: &str| {
        listed
            .lines()
            .find(|l| l.trim_start().starts_with(v))
            .unwrap_or_else(|| panic!("{v} not in\n{listed}"))
            .to_owned()
    };
    assert!(line("1.3.0").contains("retired"), "{listed}");
    assert!(line("1.4.0").contains("published"), "{listed}");

    let again = run(gh.cli().args(["versions", "publish", "orders", "1.3.0"]));
    again.expect(2);
    assert!(again.stderr.contains("409"), "{}", again.stderr);
}

#[tokio::test]
async fn a_key_is_printed_once_never_listed_and_can_be_revoked() {
    let gh = Gatehouse::start().await;
    let created = run(gh.cli().args([
        "--output",
        "json",
        "consumers",
        "create",
        "route-planner",
        "--contact",
        "routing@example.com",
    ]))
    .json();
    assert_eq!(created["name"], "route-planner");
    let listed = run(gh.cli().args(["consumers", "list"]));
    assert!(listed.expect(0).contains("route-planner"));

    let out = run(gh.cli().args(["keys", "create", "route-planner"]));
    let key = out.expect(0).trim().to_owned();
    assert!(key.starts_with("ghk_"), "{key}");
    let id = key.split('.').next().unwrap().to_owned();
    assert!(
        out.stderr.contains(&id),
        "the key id is named: {}",
        out.stderr
    );

    let keys = run(gh.cli().args(["keys", "list", "route-planner"]));
    let keys_text = keys.expect(0);
    assert!(keys_text.contains(&id));
    assert!(!keys_text.contains(&key), "the key is listed");
    let keys_json = run(gh
        .cli()
        .args(["--output", "json", "keys", "list", "route-planner"]));
    assert!(!keys_json.stdout.contains(&key));
    assert_eq!(keys_json.json()["items"][0]["revoked_at"], Value::Null);
    let shown = run(gh.cli().args(["consumers", "show", "route-planner"]));
    assert!(
        !shown.expect(0).contains(&key),
        "the consumer shows the key"
    );

    let revoked = run(gh.cli().args(["keys", "revoke", "route-planner", &id]));
    assert!(revoked.expect(0).contains(&id));
    let keys_json = run(gh
        .cli()
        .args(["--output", "json", "keys", "list", "route-planner"]))
    .json();
    assert!(
        keys_json["items"][0]["revoked_at"].is_string(),
        "{keys_json}"
    );
    let changes = gh
        .admin()
        .get("/audit/changes?action=key.revoke")
        .await
        .expect(200);
    assert_eq!(
        changes["items"][0]["target"],
        format!("consumer/route-planner/keys/{id}")
    );
}

#[tokio::test]
async fn apply_dry_run_of_the_bundled_catalog_on_a_seeded_registry_reports_no_changes() {
    let gh = Gatehouse::start().await;
    let before = log_len(&gh).await;
    let out = run(gh
        .cli()
        .args(["apply", "-f", "specs/catalog.yaml", "--dry-run"]));
    assert!(out.expect(0).contains("no changes"), "{}", out.stdout);
    let report = run(gh
        .cli()
        .args(["--output", "json", "apply", "-f", "specs/catalog.yaml"]))
    .json();
    assert_eq!(report["changed"], false);
    assert_eq!(report["steps"], json!([]));
    assert_eq!(log_len(&gh).await, before);
}

#[tokio::test]
async fn audit_verify_exits_0_on_an_intact_change_log() {
    let gh = Gatehouse::start().await;
    let out = run(gh.cli().args(["audit", "verify"]));
    assert!(out.expect(0).contains("intact"), "{}", out.stdout);
    let report = run(gh.cli().args(["--output", "json", "audit", "verify"])).json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["entries"], log_len(&gh).await);
    let changes = run(gh
        .cli()
        .args(["audit", "changes", "--action", "api.create"]));
    let changes = changes.expect(0);
    assert_eq!(
        changes.lines().filter(|l| l.contains("api.create")).count(),
        6,
        "{changes}"
    );
}

#[test]
fn client_commands_exit_2_when_the_admin_api_is_unreachable() {
    let nobody = format!("http://{}", free_addr());
    for args in [
        &["apis", "list"][..],
        &["audit", "verify"],
        &["apply", "-f", "specs/catalog.yaml", "--dry-run"],
    ] {
        let out = run(cli()
            .env("GATEHOUSE_ADMIN_URL", &nobody)
            .env("GATEHOUSE_TOKEN", "whatever-token")
            .args(args));
        out.expect(2);
        assert!(
            out.stderr.contains("cannot reach the admin API"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = run(cli().args(["token", "create", "--role", "emperor"]));
    out.expect(2);
    let out = run(cli().args(["apply"]));
    out.expect(2);
}
