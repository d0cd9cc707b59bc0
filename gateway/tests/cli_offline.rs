//! The offline spec commands, run as the built binary: `gatehouse spec lint` and
//! `gatehouse spec diff`, their formats and their exit codes (0 clean, 1 a finding, 2 a
//! usage error or an unreadable or invalid file).

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; the helpers outside #[test] fns are test code too"
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn gatehouse(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        // Offline commands must not need the admin API: point it nowhere.
        .env("GATEHOUSE_ADMIN_URL", "http://127.0.0.1:9")
        .env_remove("GATEHOUSE_TOKEN")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts an exit code, showing the output when it differs.
#[track_caller]
fn expect(run: &Run, code: i32) {
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

fn bundled(path: &str) -> String {
    format!("{}/../specs/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A spec that passes the built-in lint, with a plan.
fn spec(version: &str) -> String {
    format!(
        r##"openapi: 3.1.0
info:
  title: Stock
  version: {version}
  contact: {{email: stock@example.com}}
security:
  - apiKey: []
paths:
  /items/{{sku}}:
    get:
      operationId: getItem
      summary: Get an item's stock
      parameters:
        - {{name: sku, in: path, required: true, schema: {{type: string}}}}
      responses:
        '200':
          description: The item.
          content:
            application/json:
              schema: {{$ref: '#/components/schemas/Item'}}
        '404': {{$ref: '#/components/responses/Problem'}}
        '429': {{$ref: '#/components/responses/Problem'}}
components:
  securitySchemes:
    apiKey: {{type: apiKey, in: header, name: X-API-Key}}
  responses:
    Problem:
      description: A problem.
      content:
        application/problem+json:
          schema: {{type: object}}
  schemas:
    Item:
      type: object
      required: [sku, status]
      properties:
        sku: {{type: string}}
        status: {{type: string, enum: [in-stock, out-of-stock]}}
"##
    )
}

struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn missing(&self) -> String {
        Path::new(self.dir.path())
            .join("nope.yaml")
            .display()
            .to_string()
    }
}

// -- spec lint ---------------------------------------------------------------------------

#[test]
fn lint_passes_a_clean_spec_with_exit_0() {
    let f = Files::new();
    let file = f.write("ok.yaml", &spec("1.0.0"));
    let run = gatehouse(&["spec", "lint", &file, "--has-plan"]);
    expect(&run, 0);
    assert_eq!(run.stdout, "No problems.\n");
    let run = gatehouse(&["spec", "lint", &file, "--format", "json"]);
    expect(&run, 0);
    assert_eq!(
        run.json()["summary"],
        serde_json::json!({"error": 0, "warning": 0, "info": 0})
    );
}

#[test]
fn lint_fails_a_rule_of_severity_error_with_exit_1() {
    let f = Files::new();
    let file = f.write(
        "bad.yaml",
        &spec("1.0.0").replace("      operationId: getItem\n", ""),
    );
    let run = gatehouse(&["spec", "lint", &file]);
    expect(&run, 1);
    assert!(
        run.stdout.starts_with("1 error, 0 warnings, 0 info\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("operation-id-present"),
        "{}",
        run.stdout
    );
    let json = gatehouse(&["spec", "lint", &file, "--format", "json"]);
    expect(&json, 1);
    let report = json.json();
    assert_eq!(report["summary"]["error"], 1);
    assert_eq!(report["findings"][0]["rule"], "operation-id-present");
    assert_eq!(
        report["findings"][0]["pointer"],
        "/paths/~1items~1{sku}/get"
    );
}

#[test]
fn lint_warnings_alone_exit_0() {
    let f = Files::new();
    let file = f.write(
        "warn.yaml",
        &spec("1.0.0").replace("      summary: Get an item's stock\n", ""),
    );
    let run = gatehouse(&["spec", "lint", &file, "--format", "json"]);
    expect(&run, 0);
    assert_eq!(run.json()["summary"]["warning"], 1);
}

#[test]
fn lint_has_plan_asks_for_429() {
    let f = Files::new();
    let file = f.write(
        "no429.yaml",
        &spec("1.0.0").replace(
            "        '429': {$ref: '#/components/responses/Problem'}\n",
            "",
        ),
    );
    expect(&gatehouse(&["spec", "lint", &file]), 0);
    let run = gatehouse(&["spec", "lint", &file, "--has-plan"]);
    expect(&run, 1);
    assert!(run.stdout.contains("rate-limit-429"), "{}", run.stdout);
}

#[test]
fn lint_ruleset_file_overrides_severities() {
    let f = Files::new();
    let file = f.write(
        "bad.yaml",
        &spec("1.0.0").replace("      operationId: getItem\n", ""),
    );
    let off = f.write("off.yaml", "rules:\n  operation-id-present: off\n");
    expect(&gatehouse(&["spec", "lint", &file, "--ruleset", &off]), 0);
    let warn = f.write("warn.yaml", "rules:\n  operation-id-present: warning\n");
    let run = gatehouse(&[
        "spec",
        "lint",
        &file,
        "--ruleset",
        &warn,
        "--format",
        "json",
    ]);
    expect(&run, 0);
    assert_eq!(run.json()["findings"][0]["severity"], "warning");
    let strict = f.write("strict.yaml", "rules:\n  no-unused-components: error\n");
    let unused = f.write(
        "unused.yaml",
        &format!("{}    Spare: {{type: string}}\n", spec("1.0.0")),
    );
    expect(&gatehouse(&["spec", "lint", &unused]), 0);
    expect(
        &gatehouse(&["spec", "lint", &unused, "--ruleset", &strict]),
        1,
    );
}

#[test]
fn lint_reports_a_non_semver_version_as_its_rule() {
    let f = Files::new();
    let file = f.write("v.yaml", &spec("v1"));
    let run = gatehouse(&["spec", "lint", &file, "--format", "json"]);
    expect(&run, 1);
    assert_eq!(run.json()["findings"][0]["rule"], "info-version-semver");
}

#[test]
fn lint_refuses_bad_input_with_exit_2() {
    let f = Files::new();
    let run = gatehouse(&["spec", "lint", &f.missing()]);
    expect(&run, 2);
    assert!(
        run.stderr.contains("cannot read") && run.stderr.contains("nope.yaml"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    let swagger = f.write(
        "swagger.yaml",
        "swagger: '2.0'\ninfo: {title: x, version: 1.0.0}\n",
    );
    let run = gatehouse(&["spec", "lint", &swagger]);
    expect(&run, 2);
    assert!(
        run.stderr.contains("is not a valid OpenAPI document"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Swagger"), "{}", run.stderr);

    let junk = f.write("junk.yaml", "a: [unclosed\n");
    expect(&gatehouse(&["spec", "lint", &junk]), 2);

    let ok = f.write("ok.yaml", &spec("1.0.0"));
    let typo = f.write("typo.yaml", "rules:\n  operation-id-presnt: off\n");
    let run = gatehouse(&["spec", "lint", &ok, "--ruleset", &typo]);
    expect(&run, 2);
    assert!(run.stderr.contains("operation-id-presnt"), "{}", run.stderr);
    expect(
        &gatehouse(&["spec", "lint", &ok, "--ruleset", &f.missing()]),
        2,
    );

    // Usage errors.
    expect(&gatehouse(&["spec", "lint"]), 2);
    expect(&gatehouse(&["spec", "lint", &ok, "--format", "xml"]), 2);
}

#[test]
fn the_bundled_catalog_lints_with_zero_errors() {
    for spec in [
        "inventory/v1.yaml",
        "inventory/v2.yaml",
        "orders/v1.yaml",
        "shipments/v1.yaml",
        "returns/v1.yaml",
        "pricing/v1.yaml",
        "credit/v1.yaml",
    ] {
        let run = gatehouse(&[
            "spec",
            "lint",
            &bundled(spec),
            "--has-plan",
            "--format",
            "json",
        ]);
        expect(&run, 0);
        assert_eq!(run.json()["summary"]["error"], 0, "{spec}");
    }
}

// -- spec diff ---------------------------------------------------------------------------

#[test]
fn diff_of_a_breaking_change_exits_1_in_every_format() {
    let old = bundled("inventory/v1.yaml");
    let new = bundled("inventory/v2.yaml");
    let text = gatehouse(&["spec", "diff", &old, &new]);
    expect(&text, 1);
    assert!(text.stdout.contains(" breaking, "), "{}", text.stdout);
    assert!(text.stdout.contains("\nbreaking "), "{}", text.stdout);

    let json = gatehouse(&["spec", "diff", &old, &new, "--format", "json"]);
    expect(&json, 1);
    let report = json.json();
    let breaking = report["summary"]["breaking"].as_u64().unwrap();
    assert!(breaking > 0);
    let first = &report["findings"][0];
    assert_eq!(first["severity"], "breaking");
    for key in ["id", "operation", "old_pointer", "new_pointer", "message"] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }

    let md = gatehouse(&["spec", "diff", &old, &new, "--format", "markdown"]);
    expect(&md, 1);
    assert!(md.stdout.starts_with("### API changes: "), "{}", md.stdout);
    assert!(md.stdout.contains("| **breaking** |"), "{}", md.stdout);

    expect(
        &gatehouse(&["spec", "diff", &old, &new, "--fail-on", "never"]),
        0,
    );
}

#[test]
fn diff_of_identical_specs_exits_0() {
    let v2 = bundled("inventory/v2.yaml");
    let run = gatehouse(&["spec", "diff", &v2, &v2]);
    expect(&run, 0);
    assert_eq!(run.stdout, "No changes.\n");
    let run = gatehouse(&["spec", "diff", &v2, &v2, "--format", "json"]);
    expect(&run, 0);
    assert_eq!(run.json()["findings"], serde_json::json!([]));
}

#[test]
fn diff_fail_on_sets_the_threshold() {
    let f = Files::new();
    let old = f.write("old.yaml", &spec("1.0.0"));
    // A response enum that gains a value is a warning: clients may not handle it.
    let new = f.write(
        "new.yaml",
        &spec("1.1.0").replace(
            "[in-stock, out-of-stock]",
            "[in-stock, out-of-stock, backordered]",
        ),
    );
    let run = gatehouse(&["spec", "diff", &old, &new, "--format", "json"]);
    expect(&run, 0);
    let report = run.json();
    assert_eq!(report["summary"]["breaking"], 0);
    assert!(
        report["summary"]["warning"].as_u64().unwrap() >= 1,
        "{report}"
    );
    expect(
        &gatehouse(&["spec", "diff", &old, &new, "--fail-on", "warning"]),
        1,
    );
    expect(
        &gatehouse(&["spec", "diff", &old, &new, "--fail-on", "breaking"]),
        0,
    );
    // Removing the value again narrows the response: compatible, and still reported.
    let back = gatehouse(&["spec", "diff", &new, &old, "--format", "json"]);
    expect(&back, 0);
    assert!(!back.json()["findings"].as_array().unwrap().is_empty());
}

#[test]
fn diff_judges_sunsets_against_today() {
    let f = Files::new();
    let deprecated = spec("1.0.0").replace(
        "      operationId: getItem\n",
        "      operationId: getItem\n      deprecated: true\n      x-sunset: '2027-01-31'\n",
    );
    let old = f.write("old.yaml", &deprecated);
    let other = f.write(
        "new.yaml",
        &deprecated.replace(
            "  /items/{sku}:\n    get:",
            "  /items/{sku}/stock:\n    get:",
        ),
    );
    // Before the sunset, removing the operation breaks its clients; after, it does not.
    expect(
        &gatehouse(&["spec", "diff", &old, &other, "--today", "2027-01-30"]),
        1,
    );
    expect(
        &gatehouse(&["spec", "diff", &old, &other, "--today", "2027-02-01"]),
        0,
    );
}

#[test]
fn diff_refuses_bad_input_with_exit_2() {
    let f = Files::new();
    let ok = f.write("ok.yaml", &spec("1.0.0"));
    let run = gatehouse(&["spec", "diff", &f.missing(), &ok]);
    expect(&run, 2);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
    let external = f.write(
        "ext.yaml",
        &spec("1.0.0").replace("'#/components/schemas/Item'", "'other.yaml#/Item'"),
    );
    let run = gatehouse(&["spec", "diff", &ok, &external]);
    expect(&run, 2);
    assert!(
        run.stderr
            .contains("ext.yaml is not a valid OpenAPI document"),
        "{}",
        run.stderr
    );
    let run = gatehouse(&["spec", "diff", &ok, &ok, "--today", "someday"]);
    expect(&run, 2);
    assert!(run.stderr.contains("--today"), "{}", run.stderr);
    expect(&gatehouse(&["spec", "diff", &ok]), 2);
    expect(
        &gatehouse(&["spec", "diff", &ok, &ok, "--fail-on", "always"]),
        2,
    );
    expect(
        &gatehouse(&["spec", "diff", &ok, &ok, "--format", "html"]),
        2,
    );
}
