//! Data-driven tests of the lint rules: one good spec that passes every rule, and per rule
//! a mutation that fails it and one that must still pass, in OpenAPI 3.0 and 3.1; then
//! the ruleset overrides, the reports and the docs.

use gatehouse_policies::document::Limits;
use gatehouse_policies::lint::{
    self, LintOptions, LintReport, LintSeverity, Ruleset, RulesetError, Setting,
};
use gatehouse_policies::openapi::{self, Document};

const GOOD: &str = r#"openapi: 3.1.0
info: {title: Orders, version: 1.0.0, contact: {email: orders@example.com}}
security: [{key: []}]
paths:
  /orders:
    get:
      operationId: listOrders
      summary: List orders
      parameters:
        - {name: limit, in: query, schema: {type: integer}}
        - {name: cursor, in: query, schema: {type: string}}
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/OrderPage'}}}}
        '400': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
  /orders/{order_number}:
    get:
      operationId: getOrder
      summary: Get an order
      parameters:
        - {name: order_number, in: path, required: true, schema: {type: string}}
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
        '404': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
  responses:
    Problem:
      description: a problem
      content: {application/problem+json: {schema: {$ref: '#/components/schemas/Problem'}}}
  schemas:
    Order: {type: object, properties: {number: {type: string}}}
    OrderPage: {type: object, required: [items, next_cursor], properties: {items: {type: array, items: {$ref: '#/components/schemas/Order'}}, next_cursor: {type: string}}}
    Problem: {type: object, properties: {type: {type: string}, title: {type: string}}}
"#;

fn parse(text: &str) -> Document {
    openapi::parse(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("test spec does not parse: {e}\n{text}"))
}

fn lint_text(text: &str, has_plan: bool) -> LintReport {
    lint::lint(&parse(text), &Ruleset::builtin(), &LintOptions { has_plan })
}

/// The good spec with `edits` applied (each `from` must occur).
fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = GOOD.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "edit does not apply: {from}");
        text = text.replacen(from, to, 1);
    }
    text
}

struct Case {
    rule: &'static str,
    edits: Vec<(&'static str, &'static str)>,
    has_plan: bool,
    fails: bool,
}

fn fail(rule: &'static str, edits: &[(&'static str, &'static str)]) -> Case {
    Case {
        rule,
        edits: edits.to_vec(),
        has_plan: true,
        fails: true,
    }
}

fn pass(rule: &'static str, edits: &[(&'static str, &'static str)]) -> Case {
    Case {
        rule,
        edits: edits.to_vec(),
        has_plan: true,
        fails: false,
    }
}

const GET_ORDER_404: &str = "        '404': {$ref: '#/components/responses/Problem'}\n";
/// All of `getOrder`'s error responses (its 404 and 429), up to `components:`.
const GET_ORDER_ERRORS: &str = "        '404': {$ref: '#/components/responses/Problem'}\n        '429': {$ref: '#/components/responses/Problem'}\ncomponents:";
const SCHEMAS: &str = "\n  schemas:\n";

fn cases() -> Vec<Case> {
    vec![
        fail(
            "operation-id-present",
            &[("      operationId: getOrder\n", "")],
        ),
        pass("operation-id-present", &[]),
        fail(
            "operation-id-unique",
            &[("operationId: getOrder", "operationId: listOrders")],
        ),
        pass(
            "operation-id-unique",
            &[("operationId: getOrder", "operationId: getOrderByNumber")],
        ),
        fail(
            "operation-summary",
            &[("      summary: Get an order\n", "      summary: '  '\n")],
        ),
        fail("operation-summary", &[("      summary: List orders\n", "")]),
        pass("operation-summary", &[]),
        fail(
            "operation-4xx-response",
            &[(
                GET_ORDER_ERRORS,
                "        '500': {$ref: '#/components/responses/Problem'}\ncomponents:",
            )],
        ),
        fail(
            "operation-4xx-response",
            &[(
                GET_ORDER_ERRORS,
                "        default: {$ref: '#/components/responses/Problem'}\ncomponents:",
            )],
        ),
        pass(
            "operation-4xx-response",
            &[(
                GET_ORDER_ERRORS,
                "        4XX: {$ref: '#/components/responses/Problem'}\ncomponents:",
            )],
        ),
        fail(
            "error-responses-problem-json",
            &[(
                GET_ORDER_404,
                "        '404': {description: gone, content: {application/json: {schema: {type: object}}}}\n",
            )],
        ),
        fail(
            "error-responses-problem-json",
            &[(GET_ORDER_404, "        '404': {description: gone}\n")],
        ),
        fail(
            "error-responses-problem-json",
            &[(
                GET_ORDER_404,
                "        '404': {$ref: '#/components/responses/Problem'}\n        default: {description: oops}\n",
            )],
        ),
        pass(
            "error-responses-problem-json",
            &[(
                GET_ORDER_404,
                "        '404': {description: gone, content: {'application/problem+json; charset=utf-8': {schema: {type: object}}, application/json: {schema: {type: object}}}}\n",
            )],
        ),
        fail(
            "info-version-semver",
            &[("version: 1.0.0", "version: ' 1.0.0 '")],
        ),
        pass(
            "info-version-semver",
            &[("version: 1.0.0", "version: 2.1.0-rc.1")],
        ),
        fail(
            "info-contact",
            &[(", contact: {email: orders@example.com}", "")],
        ),
        fail(
            "info-contact",
            &[(
                "contact: {email: orders@example.com}",
                "contact: {name: Orders team}",
            )],
        ),
        pass(
            "info-contact",
            &[(
                "contact: {email: orders@example.com}",
                "contact: {url: 'https://orders.example.com'}",
            )],
        ),
        fail(
            "operation-security-defined",
            &[("security: [{key: []}]\n", "")],
        ),
        fail(
            "operation-security-defined",
            &[(
                "      operationId: getOrder\n",
                "      operationId: getOrder\n      security: []\n",
            )],
        ),
        fail(
            "operation-security-defined",
            &[(
                "      operationId: getOrder\n",
                "      operationId: getOrder\n      security: [{key: []}, {}]\n",
            )],
        ),
        pass(
            "operation-security-defined",
            &[
                ("security: [{key: []}]\n", ""),
                (
                    "      operationId: getOrder\n",
                    "      operationId: getOrder\n      security: [{key: []}]\n",
                ),
                (
                    "      operationId: listOrders\n",
                    "      operationId: listOrders\n      security: [{key: []}]\n",
                ),
            ],
        ),
        fail(
            "no-unused-components",
            &[(SCHEMAS, "\n  schemas:\n    Unused: {type: string}\n")],
        ),
        fail(
            "no-unused-components",
            &[(
                "    key: {type: apiKey, in: header, name: X-API-Key}\n",
                "    key: {type: apiKey, in: header, name: X-API-Key}\n    bearer: {type: http, scheme: bearer}\n",
            )],
        ),
        fail(
            "no-unused-components",
            &[(
                "  responses:\n    Problem:",
                "  parameters:\n    Spare: {name: spare, in: query, schema: {type: string}}\n  responses:\n    Problem:",
            )],
        ),
        // A schema reachable only from itself, or mentioned only inside example data, is unused.
        fail(
            "no-unused-components",
            &[(
                SCHEMAS,
                "\n  schemas:\n    Tree: {type: object, properties: {children: {type: array, items: {$ref: '#/components/schemas/Tree'}}}}\n",
            )],
        ),
        fail(
            "no-unused-components",
            &[
                (SCHEMAS, "\n  schemas:\n    Hidden: {type: string}\n"),
                (
                    "Order: {type: object, properties: {number: {type: string}}}",
                    "Order: {type: object, example: {$ref: '#/components/schemas/Hidden'}, properties: {number: {type: string}}}",
                ),
            ],
        ),
        // A discriminator mapping, a response named `default` and a property named
        // `default` all reach components.
        pass(
            "no-unused-components",
            &[
                (
                    SCHEMAS,
                    "\n  schemas:\n    Cat: {type: object}\n    Dog: {type: object}\n",
                ),
                (
                    "Order: {type: object, properties: {number: {type: string}}}",
                    "Order: {type: object, properties: {number: {type: string}, pet: {oneOf: [{type: object}], discriminator: {propertyName: kind, mapping: {cat: '#/components/schemas/Cat', dog: Dog}}}}}",
                ),
            ],
        ),
        pass(
            "no-unused-components",
            &[
                (
                    "  responses:\n    Problem:",
                    "  responses:\n    Fallback: {description: error, content: {application/problem+json: {schema: {$ref: '#/components/schemas/Problem'}}}}\n    Problem:",
                ),
                (
                    GET_ORDER_404,
                    "        '404': {$ref: '#/components/responses/Problem'}\n        default: {$ref: '#/components/responses/Fallback'}\n",
                ),
            ],
        ),
        pass(
            "no-unused-components",
            &[
                (SCHEMAS, "\n  schemas:\n    Setting: {type: string}\n"),
                (
                    "Order: {type: object, properties: {number: {type: string}}}",
                    "Order: {type: object, properties: {number: {type: string}, default: {$ref: '#/components/schemas/Setting'}}}",
                ),
            ],
        ),
        fail(
            "path-segments-kebab-case",
            &[("  /orders:\n", "  /purchaseOrders:\n")],
        ),
        fail(
            "path-segments-kebab-case",
            &[("  /orders:\n", "  /purchase_orders:\n")],
        ),
        pass(
            "path-segments-kebab-case",
            &[
                ("  /orders:\n", "  /v2/purchase-orders.json:\n"),
                (
                    "  /orders/{order_number}:\n",
                    "  /orders/{order_number}:cancel:\n",
                ),
            ],
        ),
        fail(
            "collection-paginated",
            &[
                (", next_cursor: {type: string}}", "}"),
                ("required: [items, next_cursor]", "required: [items]"),
            ],
        ),
        fail(
            "collection-paginated",
            &[(
                "      parameters:\n        - {name: limit, in: query, schema: {type: integer}}\n        - {name: cursor, in: query, schema: {type: string}}\n",
                "",
            )],
        ),
        fail(
            "collection-paginated",
            &[(
                "{$ref: '#/components/schemas/OrderPage'}",
                "{type: array, items: {$ref: '#/components/schemas/Order'}}",
            )],
        ),
        pass(
            "collection-paginated",
            &[(
                "{$ref: '#/components/schemas/OrderPage'}",
                "{type: array, maxItems: 10, items: {$ref: '#/components/schemas/Order'}}",
            )],
        ),
        pass(
            "collection-paginated",
            &[
                (", next_cursor: {type: string}}", "}"),
                ("required: [items, next_cursor]", "required: [items]"),
                (
                    "        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/OrderPage'}}}}\n",
                    "        '200': {description: ok, headers: {Link: {schema: {type: string}}}, content: {application/json: {schema: {$ref: '#/components/schemas/OrderPage'}}}}\n",
                ),
            ],
        ),
        pass(
            "collection-paginated",
            &[(
                "{$ref: '#/components/schemas/OrderPage'}",
                "{allOf: [{$ref: '#/components/schemas/OrderPage'}]}",
            )],
        ),
        fail(
            "rate-limit-429",
            &[(
                "        '429': {$ref: '#/components/responses/Problem'}\n  /orders/{order_number}:",
                "  /orders/{order_number}:",
            )],
        ),
        Case {
            rule: "rate-limit-429",
            edits: vec![(
                "        '429': {$ref: '#/components/responses/Problem'}\n  /orders/{order_number}:",
                "  /orders/{order_number}:",
            )],
            has_plan: false,
            fails: false,
        },
        pass("rate-limit-429", &[]),
    ]
}

#[test]
fn the_good_spec_passes_every_rule_in_both_dialects() {
    for version in ["3.1.0", "3.0.3"] {
        let report = lint_text(
            &GOOD.replace("openapi: 3.1.0", &format!("openapi: {version}")),
            true,
        );
        assert!(
            report.findings.is_empty(),
            "{version}\n{}",
            report.to_text()
        );
        assert!(!report.has_errors());
    }
}

#[test]
fn every_rule_fails_its_bad_spec_and_passes_its_good_one() {
    let mut failures = Vec::new();
    for case in cases() {
        for version in ["3.1.0", "3.0.3"] {
            let text = edit(&case.edits).replace("openapi: 3.1.0", &format!("openapi: {version}"));
            let report = lint_text(&text, case.has_plan);
            let hits: Vec<_> = report
                .findings
                .iter()
                .filter(|f| f.rule == case.rule)
                .collect();
            if hits.is_empty() == case.fails {
                failures.push(format!(
                    "{} (OpenAPI {version}, plan {}): expected {}, got\n{}",
                    case.rule,
                    case.has_plan,
                    if case.fails { "a finding" } else { "none" },
                    report.to_text()
                ));
            }
            let default = lint::rule(case.rule).expect("known rule").default;
            for f in hits {
                assert_eq!(f.severity, default, "{}", case.rule);
                assert!(f.pointer.starts_with('/'), "{}: {}", case.rule, f.pointer);
                assert!(
                    parse(&text).tree.pointer(&f.pointer).is_some(),
                    "{}: {} is not in the document",
                    case.rule,
                    f.pointer
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_rule_has_a_failing_and_a_passing_case() {
    let cases = cases();
    for rule in lint::RULES {
        assert!(
            cases.iter().any(|c| c.rule == rule.id && c.fails),
            "{} has no failing case",
            rule.id
        );
        assert!(
            cases.iter().any(|c| c.rule == rule.id && !c.fails),
            "{} has no passing case",
            rule.id
        );
    }
}

#[test]
fn duplicate_operation_ids_are_reported_at_the_later_operation() {
    let report = lint_text(
        &edit(&[("operationId: getOrder", "operationId: listOrders")]),
        true,
    );
    let dupes: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "operation-id-unique")
        .collect();
    assert_eq!(dupes.len(), 1);
    assert_eq!(
        dupes[0].pointer,
        "/paths/~1orders~1{order_number}/get/operationId"
    );
    assert!(
        dupes[0].message.contains("`GET /orders`"),
        "{}",
        dupes[0].message
    );
}

#[test]
fn a_shared_error_response_fails_once() {
    let report = lint_text(
        &GOOD.replace(
            "content: {application/problem+json:",
            "content: {application/json:",
        ),
        true,
    );
    let hits: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "error-responses-problem-json")
        .collect();
    assert_eq!(hits.len(), 1, "{}", report.to_text());
    assert_eq!(hits[0].pointer, "/components/responses/Problem");
}

#[test]
fn kebab_case_messages_suggest_the_spelling() {
    let report = lint_text(&edit(&[("  /orders:\n", "  /purchaseOrders:\n")]), true);
    let f = report
        .findings
        .iter()
        .find(|f| f.rule == "path-segments-kebab-case")
        .expect("a finding");
    assert!(f.message.contains("`purchase-orders`"), "{}", f.message);
}

#[test]
fn a_version_refused_at_ingest_is_reported_as_the_semver_rule() {
    let err = openapi::parse(
        GOOD.replace("version: 1.0.0", "version: v1").as_bytes(),
        &Limits::default(),
    )
    .expect_err("not semver");
    let f = lint::finding_for_spec_error(&err).expect("a lint finding");
    assert_eq!(f.rule, "info-version-semver");
    assert_eq!(f.severity, LintSeverity::Error);
    assert_eq!(f.pointer, "/info/version");
    let other = openapi::parse(b"swagger: '2.0'\n", &Limits::default()).expect_err("swagger");
    assert!(lint::finding_for_spec_error(&other).is_none());
}

// ---------------------------------------------------------------------------------------
// Rulesets.

#[test]
fn a_ruleset_overrides_severities_and_turns_rules_off() {
    let ruleset = Ruleset::from_yaml(
        b"rules:\n  operation-summary: error\n  no-unused-components: off\n  info-contact: info\n",
    )
    .expect("valid ruleset");
    assert_eq!(
        ruleset.severity("operation-summary"),
        Some(LintSeverity::Error)
    );
    assert_eq!(ruleset.severity("no-unused-components"), None);
    assert_eq!(ruleset.severity("info-contact"), Some(LintSeverity::Info));
    assert_eq!(
        ruleset.severity("operation-id-present"),
        Some(LintSeverity::Error),
        "untouched rules keep their default"
    );
    let text = edit(&[
        ("      summary: Get an order\n", ""),
        (SCHEMAS, "\n  schemas:\n    Unused: {type: string}\n"),
        (", contact: {email: orders@example.com}", ""),
    ]);
    let doc = parse(&text);
    let builtin = lint::lint(&doc, &Ruleset::builtin(), &LintOptions::default());
    let rules = |r: &LintReport| -> Vec<(&str, LintSeverity)> {
        r.findings.iter().map(|f| (f.rule, f.severity)).collect()
    };
    assert_eq!(
        rules(&builtin),
        vec![
            ("info-contact", LintSeverity::Error),
            ("operation-summary", LintSeverity::Warning),
            ("no-unused-components", LintSeverity::Warning),
        ]
    );
    let custom = lint::lint(&doc, &ruleset, &LintOptions::default());
    assert_eq!(
        rules(&custom),
        vec![
            ("operation-summary", LintSeverity::Error),
            ("info-contact", LintSeverity::Info),
        ]
    );
    assert!(custom.has_errors());
    let json = Ruleset::from_yaml(br#"{"rules": {"operation-summary": "off"}}"#).expect("json");
    assert_eq!(json.severity("operation-summary"), None);
    let mut set = Ruleset::builtin();
    set.set("rate-limit-429", Setting::Warning).expect("known");
    assert_eq!(set.severity("rate-limit-429"), Some(LintSeverity::Warning));
}

#[test]
fn a_ruleset_with_a_typo_is_refused() {
    assert_eq!(
        Ruleset::from_yaml(b"rules:\n  operation-sumary: off\n"),
        Err(RulesetError::UnknownRule {
            rule: "operation-sumary".into()
        })
    );
    assert!(matches!(
        Ruleset::from_yaml(b"rule:\n  operation-summary: off\n"),
        Err(RulesetError::Shape { .. })
    ));
    assert!(matches!(
        Ruleset::from_yaml(b"rules:\n  operation-summary: loud\n"),
        Err(RulesetError::Shape { .. })
    ));
    assert!(matches!(
        Ruleset::from_yaml(b"rules: [a, b]\n"),
        Err(RulesetError::Shape { .. })
    ));
    assert!(matches!(
        Ruleset::from_yaml(b"rules:\n  a: off\n  a: on\n"),
        Err(RulesetError::Load(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Reports, the bundled catalog and the docs.

#[test]
fn reports_render_as_text_and_json() {
    let report = lint_text(
        &edit(&[
            ("      summary: Get an order\n", ""),
            ("      operationId: getOrder\n", ""),
        ]),
        true,
    );
    assert!(report.has_errors());
    let json = report.to_json();
    assert_eq!(json["summary"]["error"], 1);
    assert_eq!(json["summary"]["warning"], 1);
    assert_eq!(json["summary"]["info"], 0);
    assert_eq!(json["findings"][0]["rule"], "operation-id-present");
    assert_eq!(json["findings"][0]["severity"], "error");
    assert_eq!(
        json["findings"][0]["pointer"],
        "/paths/~1orders~1{order_number}/get"
    );
    assert!(json["findings"][0]["message"].is_string());
    let text = report.to_text();
    assert!(text.starts_with("1 error, 1 warning, 0 info\n"), "{text}");
    assert!(text.contains("operation-summary"), "{text}");
    assert_eq!(LintReport::new(Vec::new()).to_text(), "No problems.\n");
}

#[test]
fn the_bundled_catalog_passes_its_own_lint() {
    let dir = format!("{}/../specs", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for api in std::fs::read_dir(&dir).expect("specs/") {
        let api = api.expect("entry").path();
        if !api.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&api).expect("api dir") {
            let path = file.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read spec");
            let doc = openapi::parse(&bytes, &Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let report = lint::lint(&doc, &Ruleset::builtin(), &LintOptions { has_plan: true });
            assert!(
                !report.has_errors(),
                "{}:\n{}",
                path.display(),
                report.to_text()
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} bundled specs found");
}

#[test]
fn docs_list_every_rule() {
    const START: &str = "<!-- rules:start -->\n";
    const END: &str = "<!-- rules:end -->";
    let path = format!("{}/../docs/lint-rules.md", env!("CARGO_MANIFEST_DIR"));
    let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
    let table = lint::rules_markdown();
    if std::env::var_os("GATEHOUSE_WRITE_DOCS").is_some() {
        let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
            panic!("docs/lint-rules.md lacks the rules:start/rules:end markers");
        };
        doc.replace_range(start + START.len()..end, &table);
        std::fs::write(&path, &doc).expect("write docs/lint-rules.md");
    }
    assert!(
        doc.contains(&table),
        "docs/lint-rules.md must contain the rule table exactly as lint::rules_markdown() renders it:\n{table}"
    );
    for rule in lint::RULES {
        assert!(
            doc.contains(&format!("### `{}`", rule.id)),
            "docs/lint-rules.md has no section for {}",
            rule.id
        );
    }
}
