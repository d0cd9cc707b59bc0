//! Schema rules, data-driven: each OpenAPI rule in its 3.0 and its 3.1 spelling, with
//! valid instances (must pass) and invalid ones (must fail, first error at the pointer
//! given), in the request direction, the response direction, or both.

use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi::{self, Document};
use gatehouse_policies::problem::FieldError;
use gatehouse_policies::validate::{
    CompileOptions, CompiledOperation, RequestParts, RequestRejection,
};

/// Which validation a rule is checked through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    Request,
    Response,
}

/// One rule, one spelling.
struct Rule<'a> {
    name: &'a str,
    /// `components.schemas` entries (YAML, indented 4); the body schema is `Body`.
    v30: &'a str,
    v31: &'a str,
    dirs: &'a [Dir],
    valid: &'a [&'a str],
    /// `(instance, pointer of the first error)`.
    invalid: &'a [(&'a str, &'a str)],
}

fn spec(version: &str, schemas: &str) -> Document {
    let text = format!(
        r##"openapi: {version}
info: {{title: rules, version: 1.0.0}}
paths:
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {{$ref: '#/components/schemas/Body'}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {{$ref: '#/components/schemas/Body'}}
components:
  schemas:
{schemas}"##
    );
    openapi::parse(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("spec {version} does not parse: {e}\n{text}"))
}

fn compiled(doc: &Document) -> CompiledOperation {
    let op = doc.operations().next().expect("one operation");
    CompiledOperation::compile(doc, op, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("does not compile: {e}"))
}

fn run(op: &CompiledOperation, dir: Dir, body: &str) -> Result<(), Vec<FieldError>> {
    match dir {
        Dir::Request => op
            .validate_request(&RequestParts {
                content_type: Some("application/json"),
                body: Some(body.as_bytes()),
                ..RequestParts::default()
            })
            .map_err(|r| match r {
                RequestRejection::Invalid { errors } => errors,
                other => panic!("expected a 400, got {other:?}"),
            }),
        Dir::Response => op.validate_response(200, Some("application/json"), body.as_bytes()),
    }
}

fn check_rules(rules: &[Rule<'_>]) -> usize {
    let mut checked = 0;
    for rule in rules {
        for (version, schemas) in [("3.0.3", rule.v30), ("3.1.0", rule.v31)] {
            let doc = spec(version, schemas);
            let op = compiled(&doc);
            for &dir in rule.dirs {
                for valid in rule.valid {
                    let got = run(&op, dir, valid);
                    assert!(
                        got.is_ok(),
                        "[{}] {version} {dir:?}: {valid} should pass, got {got:?}",
                        rule.name
                    );
                    checked += 1;
                }
                for (invalid, pointer) in rule.invalid {
                    let errors = run(&op, dir, invalid).err().unwrap_or_else(|| {
                        panic!("[{}] {version} {dir:?}: {invalid} should fail", rule.name)
                    });
                    assert_eq!(
                        errors[0].pointer, *pointer,
                        "[{}] {version} {dir:?}: {invalid}: {errors:?}",
                        rule.name
                    );
                    assert!(errors.iter().all(|e| e.location == "body"));
                    checked += 1;
                }
            }
        }
    }
    checked
}

const BOTH: &[Dir] = &[Dir::Request, Dir::Response];

#[test]
fn nullable_and_compositions() {
    let customer =
        "    Customer: {type: object, required: [id], properties: {id: {type: string}}}\n";
    let card = "    Card: {type: object, required: [number], properties: {number: {type: string}}}\n    Transfer: {type: object, required: [iban], properties: {iban: {type: string}}}\n";
    let rules = [
        Rule {
            name: "nullable type",
            v30: "    Body: {type: string, nullable: true}\n",
            v31: "    Body: {type: [string, 'null']}\n",
            dirs: BOTH,
            valid: &["\"a\"", "null"],
            invalid: &[("5", "")],
        },
        Rule {
            name: "nullable enum",
            v30: "    Body: {type: string, enum: [a, b], nullable: true}\n",
            v31: "    Body: {type: [string, 'null'], enum: [a, b, null]}\n",
            dirs: BOTH,
            valid: &["\"a\"", "null"],
            invalid: &[("\"c\"", ""), ("1", "")],
        },
        Rule {
            name: "not nullable refuses null",
            v30: "    Body: {type: string, nullable: false}\n",
            v31: "    Body: {type: string}\n",
            dirs: BOTH,
            valid: &["\"a\""],
            invalid: &[("null", "")],
        },
        Rule {
            name: "nullable + allOf $ref (the classic false rejection)",
            v30: &format!(
                "    Body: {{type: object, properties: {{customer: {{nullable: true, allOf: [{{$ref: '#/components/schemas/Customer'}}]}}}}}}\n{customer}"
            ),
            v31: &format!(
                "    Body: {{type: object, properties: {{customer: {{anyOf: [{{$ref: '#/components/schemas/Customer'}}, {{type: 'null'}}]}}}}}}\n{customer}"
            ),
            dirs: BOTH,
            valid: &[
                r#"{"customer": null}"#,
                r#"{"customer": {"id": "c1"}}"#,
                "{}",
            ],
            invalid: &[
                (r#"{"customer": {}}"#, "/customer/id"),
                (r#"{"customer": 5}"#, "/customer"),
                (r#"{"customer": {"id": 7}}"#, "/customer/id"),
            ],
        },
        Rule {
            name: "nullable + oneOf",
            v30: &format!(
                "    Body: {{nullable: true, oneOf: [{{$ref: '#/components/schemas/Card'}}, {{$ref: '#/components/schemas/Transfer'}}]}}\n{card}"
            ),
            v31: &format!(
                "    Body: {{oneOf: [{{$ref: '#/components/schemas/Card'}}, {{$ref: '#/components/schemas/Transfer'}}, {{type: 'null'}}]}}\n{card}"
            ),
            dirs: BOTH,
            valid: &["null", r#"{"number": "1"}"#, r#"{"iban": "X"}"#],
            invalid: &[("{}", ""), (r#"{"number": "1", "iban": "X"}"#, "")],
        },
        Rule {
            name: "nullable + anyOf",
            v30: &format!(
                "    Body: {{nullable: true, anyOf: [{{$ref: '#/components/schemas/Card'}}, {{$ref: '#/components/schemas/Transfer'}}]}}\n{card}"
            ),
            v31: &format!(
                "    Body: {{anyOf: [{{$ref: '#/components/schemas/Card'}}, {{$ref: '#/components/schemas/Transfer'}}, {{type: 'null'}}]}}\n{card}"
            ),
            dirs: BOTH,
            valid: &["null", r#"{"number": "1", "iban": "X"}"#],
            invalid: &[("{}", ""), ("\"x\"", "")],
        },
        Rule {
            name: "nullable + enum + allOf",
            v30: "    Body: {nullable: true, enum: [a, b], allOf: [{type: string}]}\n",
            v31: "    Body: {enum: [a, b, null], anyOf: [{type: string}, {type: 'null'}]}\n",
            dirs: BOTH,
            valid: &["null", "\"a\""],
            invalid: &[("\"c\"", "")],
        },
        Rule {
            name: "nullable + not",
            v30: "    Body: {nullable: true, not: {type: integer}}\n",
            v31: "    Body: {not: {type: integer}}\n",
            dirs: BOTH,
            valid: &["null", "\"a\""],
            invalid: &[("3", "")],
        },
    ];
    let n = check_rules(&rules);
    assert!(n >= 80, "{n} checks");
}

#[test]
fn numeric_bounds_refs_and_annotations() {
    let rules = [
        Rule {
            name: "exclusive bounds",
            v30: "    Body: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: true}\n",
            v31: "    Body: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 10}\n",
            dirs: BOTH,
            valid: &["0.5", "9.99"],
            invalid: &[("0", ""), ("10", ""), ("-1", "")],
        },
        Rule {
            name: "inclusive bounds (exclusive: false)",
            v30: "    Body: {type: integer, minimum: 0, exclusiveMinimum: false, maximum: 10}\n",
            v31: "    Body: {type: integer, minimum: 0, maximum: 10}\n",
            dirs: BOTH,
            valid: &["0", "10"],
            invalid: &[("11", ""), ("1.5", "")],
        },
        Rule {
            name: "example and x- extensions are not keywords",
            v30: "    Body: {type: object, example: {a: nope}, x-nullable: true, properties: {a: {type: integer, example: text, x-internal: true}}}\n",
            v31: "    Body: {type: object, examples: [{a: nope}], x-nullable: true, properties: {a: {type: integer, examples: [text]}}}\n",
            dirs: BOTH,
            valid: &[r#"{"a": 1}"#, "{}"],
            invalid: &[(r#"{"a": "text"}"#, "/a"), ("null", "")],
        },
        Rule {
            name: "$ref to a $ref",
            v30: "    Body: {$ref: '#/components/schemas/Alias'}\n    Alias: {$ref: '#/components/schemas/Sku'}\n    Sku: {type: string, pattern: '^[A-Z]{3}-[0-9]+$'}\n",
            v31: "    Body: {$ref: '#/components/schemas/Alias'}\n    Alias: {$ref: '#/components/schemas/Sku'}\n    Sku: {type: string, pattern: '^[A-Z]{3}-[0-9]+$'}\n",
            dirs: BOTH,
            valid: &["\"ABC-1\""],
            invalid: &[("\"abc\"", "")],
        },
    ];
    check_rules(&rules);
}

/// 3.0 ignores the siblings of `$ref`; 3.1 (JSON Schema 2020-12) applies them.
#[test]
fn ref_siblings_ignored_in_30_applied_in_31() {
    let schemas = "    Body: {type: object, properties: {code: {$ref: '#/components/schemas/Code', maxLength: 2}}}\n    Code: {type: string, maxLength: 5}\n";
    let body = r#"{"code": "abcd"}"#;
    let op30 = compiled(&spec("3.0.3", schemas));
    assert_eq!(run(&op30, Dir::Request, body), Ok(()));
    assert!(run(&op30, Dir::Request, r#"{"code": "abcdef"}"#).is_err());
    let op31 = compiled(&spec("3.1.0", schemas));
    let errors = run(&op31, Dir::Request, body).unwrap_err();
    assert_eq!(errors[0].pointer, "/code");
    assert!(
        errors[0].message.contains("at most 2 characters"),
        "{errors:?}"
    );
}

#[test]
fn discriminator_picks_the_branch() {
    let payment = |disc: &str| {
        format!(
            "    Body: {{oneOf: [{{$ref: '#/components/schemas/Card'}}, {{$ref: '#/components/schemas/Transfer'}}], discriminator: {disc}}}\n    Card: {{type: object, required: [kind, number], properties: {{kind: {{type: string}}, number: {{type: string, pattern: '^[0-9]{{16}}$'}}}}}}\n    Transfer: {{type: object, required: [kind, iban], properties: {{kind: {{type: string}}, iban: {{type: string}}}}}}\n"
        )
    };
    let mapped = payment(
        "{propertyName: kind, mapping: {card: Card, transfer: '#/components/schemas/Transfer'}}",
    );
    let rules = [Rule {
        name: "discriminator with mapping",
        v30: &mapped,
        v31: &mapped,
        dirs: BOTH,
        valid: &[
            r#"{"kind": "card", "number": "1234567812345678"}"#,
            r#"{"kind": "transfer", "iban": "DE00"}"#,
            // Matches both branches: plain oneOf would refuse it, the discriminator decides.
            r#"{"kind": "card", "number": "1234567812345678", "iban": "DE00"}"#,
        ],
        invalid: &[
            (r#"{"kind": "card", "number": "12"}"#, "/number"),
            (r#"{"kind": "card", "iban": "DE00"}"#, "/number"),
            (r#"{"kind": "cash"}"#, "/kind"),
            (r#"{"number": "1234567812345678"}"#, "/kind"),
            ("[]", ""),
        ],
    }];
    check_rules(&rules);
    // Only the selected branch's errors are reported.
    for version in ["3.0.3", "3.1.0"] {
        let op = compiled(&spec(version, &mapped));
        let errors = run(&op, Dir::Request, r#"{"kind": "card", "number": "12"}"#).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("pattern"), "{errors:?}");
        let errors = run(&op, Dir::Request, r#"{"kind": "cash"}"#).unwrap_err();
        assert!(
            errors[0].message.contains("\"card\", \"transfer\""),
            "{errors:?}"
        );
    }
    // Implicit mapping: the schema names.
    let implicit = payment("{propertyName: kind}");
    let rules = [Rule {
        name: "discriminator, implicit names",
        v30: &implicit,
        v31: &implicit,
        dirs: BOTH,
        valid: &[r#"{"kind": "Card", "number": "1234567812345678"}"#],
        invalid: &[(r#"{"kind": "card", "number": "1234567812345678"}"#, "/kind")],
    }];
    check_rules(&rules);
    // Inline branches cannot be named: plain oneOf still validates.
    let inline = "    Body: {oneOf: [{type: object, required: [a]}, {type: object, required: [b]}], discriminator: {propertyName: kind}}\n";
    let rules = [Rule {
        name: "discriminator over inline branches falls back to oneOf",
        v30: inline,
        v31: inline,
        dirs: BOTH,
        valid: &[r#"{"a": 1}"#],
        invalid: &[("{}", ""), (r#"{"a": 1, "b": 2}"#, "")],
    }];
    check_rules(&rules);
}

#[test]
fn read_only_and_write_only_by_direction() {
    let order = "    Body: {type: object, required: [id, sku], properties: {id: {$ref: '#/components/schemas/Id'}, sku: {type: string}, password: {type: string, writeOnly: true}, created: {type: string, format: date-time, readOnly: true}}}\n    Id: {type: string, readOnly: true}\n";
    let rules = [
        Rule {
            name: "readOnly refused in requests, not required there",
            v30: order,
            v31: order,
            dirs: &[Dir::Request],
            valid: &[r#"{"sku": "a"}"#, r#"{"sku": "a", "password": "p"}"#],
            invalid: &[
                (r#"{"id": "x", "sku": "a"}"#, "/id"),
                (
                    r#"{"sku": "a", "created": "2024-01-01T00:00:00Z"}"#,
                    "/created",
                ),
                ("{}", "/sku"),
            ],
        },
        Rule {
            name: "writeOnly refused in responses, readOnly required there",
            v30: order,
            v31: order,
            dirs: &[Dir::Response],
            valid: &[r#"{"id": "x", "sku": "a", "created": "2024-01-01T00:00:00Z"}"#],
            invalid: &[
                (r#"{"sku": "a"}"#, "/id"),
                (r#"{"id": "x", "sku": "a", "password": "p"}"#, "/password"),
            ],
        },
    ];
    check_rules(&rules);
    let op = compiled(&spec("3.0.3", order));
    let errors = run(&op, Dir::Request, r#"{"id": "x", "sku": "a"}"#).unwrap_err();
    assert!(errors[0].message.contains("read-only"), "{errors:?}");
    let errors = run(
        &op,
        Dir::Response,
        r#"{"id": "x", "sku": "a", "password": "p"}"#,
    )
    .unwrap_err();
    assert!(errors[0].message.contains("write-only"), "{errors:?}");
}

#[test]
fn formats() {
    let formats = "    Body: {type: object, properties: {d: {type: string, format: date}, dt: {type: string, format: date-time}, u: {type: string, format: uuid}, e: {type: string, format: email}, uri: {type: string, format: uri}, i32: {type: integer, format: int32}, i64: {type: integer, format: int64}, s64: {type: string, format: int64}, b: {type: string, format: byte}, ip: {type: string, format: ipv4}, custom: {type: string, format: sku-code}}}\n";
    let rules = [Rule {
        name: "formats",
        v30: formats,
        v31: formats,
        dirs: BOTH,
        valid: &[
            r#"{"d": "2024-02-29", "dt": "2024-05-31T12:00:00Z", "u": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "e": "a@example.com", "uri": "https://example.com/x", "i32": 2147483647, "i64": -9223372036854775808, "s64": "9223372036854775807", "b": "aGVsbG8=", "ip": "10.0.0.1", "custom": "anything"}"#,
        ],
        invalid: &[
            (r#"{"d": "2023-02-29"}"#, "/d"),
            (r#"{"d": "31/05/2024"}"#, "/d"),
            (r#"{"dt": "2024-05-31 12:00"}"#, "/dt"),
            (r#"{"u": "not-a-uuid"}"#, "/u"),
            (r#"{"e": "nobody"}"#, "/e"),
            (r#"{"uri": "no scheme"}"#, "/uri"),
            (r#"{"i32": 2147483648}"#, "/i32"),
            (r#"{"i64": 9223372036854775808}"#, "/i64"),
            (r#"{"s64": "9223372036854775808"}"#, "/s64"),
            (r#"{"b": "a*b"}"#, "/b"),
            (r#"{"ip": "10.0.0.256"}"#, "/ip"),
        ],
    }];
    check_rules(&rules);
    let op = compiled(&spec("3.1.0", formats));
    let errors = run(&op, Dir::Request, r#"{"d": "31/05/2024"}"#).unwrap_err();
    assert_eq!(
        errors[0].message,
        "must be a date (RFC 3339 full-date, e.g. 2024-05-31); got \"31/05/2024\""
    );
}

#[test]
fn recursive_schemas() {
    let tree = "    Body: {$ref: '#/components/schemas/Node'}\n    Node: {type: object, required: [name], properties: {name: {type: string}, children: {type: array, items: {$ref: '#/components/schemas/Node'}}}}\n";
    let mutual = "    Body: {$ref: '#/components/schemas/A'}\n    A: {type: object, properties: {b: {$ref: '#/components/schemas/B'}}}\n    B: {type: object, properties: {a: {$ref: '#/components/schemas/A'}, n: {type: integer}}}\n";
    let rules = [
        Rule {
            name: "self-recursive",
            v30: tree,
            v31: tree,
            dirs: BOTH,
            valid: &[r#"{"name": "r", "children": [{"name": "a", "children": [{"name": "b"}]}]}"#],
            invalid: &[(
                r#"{"name": "r", "children": [{"name": "a", "children": [{"name": "b"}, {}]}]}"#,
                "/children/0/children/1/name",
            )],
        },
        Rule {
            name: "mutually recursive",
            v30: mutual,
            v31: mutual,
            dirs: BOTH,
            valid: &[r#"{"b": {"a": {"b": {"n": 1}}}}"#],
            invalid: &[(r#"{"b": {"a": {"b": {"n": "x"}}}}"#, "/b/a/b/n")],
        },
    ];
    check_rules(&rules);
}

#[test]
fn error_pointers_and_messages_are_exact() {
    let schemas = "    Body: {type: object, additionalProperties: false, required: [lines], properties: {lines: {type: array, minItems: 1, items: {$ref: '#/components/schemas/Line'}}, note: {type: string, maxLength: 3}}}\n    Line: {type: object, required: [sku, qty], properties: {sku: {type: string, pattern: '^[A-Z]+$'}, qty: {type: integer, minimum: 1}}}\n";
    for version in ["3.0.3", "3.1.0"] {
        let op = compiled(&spec(version, schemas));
        let body = r#"{"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 2}, {"qty": 0}], "extra": true, "note": "long"}"#;
        let errors = run(&op, Dir::Request, body).unwrap_err();
        let mut got: Vec<(String, String)> = errors
            .iter()
            .map(|e| (e.pointer.clone(), e.message.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    "/extra".to_owned(),
                    "is not a property the schema allows here".to_owned()
                ),
                ("/lines/3/qty".to_owned(), "must be >= 1; got 0".to_owned()),
                (
                    "/lines/3/sku".to_owned(),
                    "is required but missing".to_owned()
                ),
                (
                    "/note".to_owned(),
                    "must be at most 3 characters long; got 4".to_owned()
                ),
            ],
            "{version}"
        );
        let errors = run(
            &op,
            Dir::Request,
            r#"{"lines": [{"sku": "a1", "qty": "2"}]}"#,
        )
        .unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages.contains(&"must be integer, got string \"2\""),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"must match the pattern `^[A-Z]+$`; got \"a1\""),
            "{messages:?}"
        );
    }
}
