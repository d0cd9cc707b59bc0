//! Property tests over generated specs: a spec never differs from itself, nor from the
//! same spec with every component reference inlined (structure, not names); any two specs
//! diff and lint without panicking, with catalogue ids and pointers that resolve.

use gatehouse_policies::diff;
use gatehouse_policies::lint::{self, LintOptions, Ruleset};
use gatehouse_policies::openapi::{self, Document};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A generated schema before component references are placed: `Ref(k)` points at
/// component `k` modulo the number of components.
#[derive(Debug, Clone)]
enum Gen {
    Leaf(Value),
    Object {
        props: Vec<(String, Gen, bool)>,
        closed: bool,
    },
    Array {
        items: Box<Gen>,
        max: Option<u64>,
        unique: bool,
    },
    OneOf(Vec<Gen>),
    AllOf(Vec<Gen>),
    Ref(usize),
    Nullable(Box<Gen>),
}

fn leaf() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (
            prop::option::of(1u64..40),
            prop::option::of(prop::sample::select(vec!["date", "uuid", "email"])),
            prop::option::of(prop::collection::vec("[a-z]{1,4}", 1..4)),
            prop::option::of(Just("^[A-Z]+$")),
        )
            .prop_map(|(max, format, values, pattern)| {
                let mut s = json!({"type": "string"});
                if let Some(m) = max {
                    s["maxLength"] = json!(m);
                }
                if let Some(f) = format {
                    s["format"] = json!(f);
                }
                if let Some(v) = values {
                    s["enum"] = json!(v);
                }
                if let Some(p) = pattern {
                    s["pattern"] = json!(p);
                }
                Gen::Leaf(s)
            }),
        (
            prop::option::of(-10i64..10),
            prop::option::of(10i64..100),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["int32", "int64"])),
        )
            .prop_map(|(min, max, exclusive, format)| {
                let mut s = json!({"type": "integer"});
                if let Some(m) = min {
                    s["minimum"] = json!(m);
                }
                if let Some(m) = max {
                    s["maximum"] = json!(m);
                }
                if exclusive && max.is_some() {
                    s["x-exclusive"] = json!(true);
                }
                if let Some(f) = format {
                    s["format"] = json!(f);
                }
                Gen::Leaf(s)
            }),
        Just(Gen::Leaf(json!({"type": "boolean"}))),
        Just(Gen::Leaf(json!({"type": "number", "format": "double"}))),
        Just(Gen::Leaf(json!({}))),
    ]
}

fn schema(components: usize) -> impl Strategy<Value = Gen> {
    let leaf = if components > 0 {
        prop_oneof![3 => leaf(), 1 => (0..components).prop_map(Gen::Ref)].boxed()
    } else {
        leaf().boxed()
    };
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::vec(("[a-z]{1,6}", inner.clone(), any::<bool>()), 0..4),
                any::<bool>()
            )
                .prop_map(|(props, closed)| Gen::Object { props, closed }),
            (inner.clone(), prop::option::of(1u64..20), any::<bool>()).prop_map(
                |(items, max, unique)| Gen::Array {
                    items: Box::new(items),
                    max,
                    unique
                }
            ),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Gen::OneOf),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Gen::AllOf),
            inner.prop_map(|g| Gen::Nullable(Box::new(g))),
        ]
    })
}

/// Renders a generated schema in a dialect's spelling.
fn render(g: &Gen, v31: bool, components: usize) -> Value {
    match g {
        Gen::Leaf(s) => {
            let mut s = s.clone();
            if let Some(obj) = s.as_object_mut() {
                // Exclusivity: a boolean beside `maximum` in 3.0, a number of its own in 3.1.
                if obj.remove("x-exclusive").is_some() {
                    if v31 {
                        if let Some(max) = obj.remove("maximum") {
                            obj.insert("exclusiveMaximum".into(), max);
                        }
                    } else {
                        obj.insert("exclusiveMaximum".into(), json!(true));
                    }
                }
            }
            s
        }
        Gen::Object { props, closed } => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (name, p, req) in props {
                if properties.contains_key(name) {
                    continue;
                }
                properties.insert(name.clone(), render(p, v31, components));
                if *req {
                    required.push(json!(name));
                }
            }
            let mut s = json!({"type": "object", "properties": properties});
            if !required.is_empty() {
                s["required"] = Value::Array(required);
            }
            if *closed {
                s["additionalProperties"] = json!(false);
            }
            s
        }
        Gen::Array { items, max, unique } => {
            let mut s = json!({"type": "array", "items": render(items, v31, components)});
            if let Some(m) = max {
                s["maxItems"] = json!(m);
            }
            if *unique {
                s["uniqueItems"] = json!(true);
            }
            s
        }
        Gen::OneOf(branches) => json!({
            "oneOf": branches.iter().map(|b| render(b, v31, components)).collect::<Vec<_>>()
        }),
        Gen::AllOf(branches) => json!({
            "allOf": branches.iter().map(|b| render(b, v31, components)).collect::<Vec<_>>()
        }),
        Gen::Ref(k) if components > 0 => {
            json!({"$ref": format!("#/components/schemas/C{}", k % components)})
        }
        Gen::Ref(_) => json!({"type": "string"}),
        Gen::Nullable(inner) => {
            let inner = render(inner, v31, components);
            if v31 {
                json!({"anyOf": [inner, {"type": "null"}]})
            } else {
                json!({"nullable": true, "allOf": [inner]})
            }
        }
    }
}

#[derive(Debug, Clone)]
struct GenOp {
    method: &'static str,
    params: Vec<(String, &'static str, bool, Gen)>,
    body: Option<(bool, Gen)>,
    response: Gen,
    deprecated: bool,
    secured: bool,
}

#[derive(Debug, Clone)]
struct GenDoc {
    v31: bool,
    components: Vec<Gen>,
    paths: Vec<(bool, Vec<GenOp>)>,
}

fn op(components: usize) -> impl Strategy<Value = GenOp> {
    (
        prop::sample::select(vec!["get", "post", "put", "delete"]),
        prop::collection::vec(
            (
                "[a-z]{1,5}",
                prop::sample::select(vec!["query", "header"]),
                any::<bool>(),
                schema(components),
            ),
            0..3,
        ),
        prop::option::of((any::<bool>(), schema(components))),
        schema(components),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(method, params, body, response, deprecated, secured)| GenOp {
                method,
                params,
                body,
                response,
                deprecated,
                secured,
            },
        )
}

/// A generated document. Components may reference each other (and so recurse) only when
/// `linked` is set.
fn doc(linked: bool) -> impl Strategy<Value = GenDoc> {
    (any::<bool>(), 0usize..4).prop_flat_map(move |(v31, n)| {
        // A component that is a bare `$ref` could loop on itself, which ingest refuses.
        let component = if linked {
            schema(n)
                .prop_map(|g| match g {
                    Gen::Ref(k) => Gen::Object {
                        props: vec![("link".to_owned(), Gen::Ref(k), false)],
                        closed: false,
                    },
                    g => g,
                })
                .boxed()
        } else {
            schema(0).boxed()
        };
        (
            Just(v31),
            prop::collection::vec(component, n),
            prop::collection::vec((any::<bool>(), prop::collection::vec(op(n), 1..3)), 1..4),
        )
            .prop_map(|(v31, components, paths)| GenDoc {
                v31,
                components,
                paths,
            })
    })
}

fn build(g: &GenDoc) -> Value {
    let n = g.components.len();
    let mut paths = Map::new();
    for (i, (with_param, ops)) in g.paths.iter().enumerate() {
        let template = if *with_param {
            format!("/r{i}/{{id}}")
        } else {
            format!("/r{i}")
        };
        let mut item = Map::new();
        for (j, o) in ops.iter().enumerate() {
            if item.contains_key(o.method) {
                continue;
            }
            let mut parameters: Vec<Value> = Vec::new();
            if *with_param {
                parameters.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            for (name, location, required, s) in &o.params {
                if parameters.iter().any(|p| p["name"] == json!(name)) {
                    continue;
                }
                parameters.push(json!({"name": name, "in": location, "required": required, "schema": render(s, g.v31, n)}));
            }
            let mut operation = json!({
                "operationId": format!("op{i}x{j}"),
                "parameters": parameters,
                "deprecated": o.deprecated,
                "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": render(&o.response, g.v31, n)}}},
                    "404": {"description": "missing"}
                }
            });
            if let Some((required, s)) = &o.body {
                operation["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": render(s, g.v31, n)}}});
            }
            if o.secured {
                operation["security"] = json!([{"key": []}]);
            }
            item.insert(o.method.to_owned(), operation);
        }
        paths.insert(template, Value::Object(item));
    }
    let schemas: Map<String, Value> = g
        .components
        .iter()
        .enumerate()
        .map(|(k, c)| (format!("C{k}"), render(c, g.v31, n)))
        .collect();
    json!({
        "openapi": if g.v31 { "3.1.0" } else { "3.0.3" },
        "info": {"title": "Generated", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}}
        }
    })
}

fn parse(tree: Value) -> Document {
    openapi::parse_value(tree).unwrap_or_else(|e| panic!("generated spec refused: {e}"))
}

/// Replaces every component schema reference by a copy of its target (components must
/// not reference each other, or this would not end).
fn inline(value: &Value, schemas: &Map<String, Value>) -> Value {
    match value {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|name| schemas.get(name));
            if let Some(target) = target {
                return inline(target, schemas);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline(v, schemas)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, schemas)).collect()),
        other => other.clone(),
    }
}

fn check_report(
    report: &diff::Report,
    old: &Document,
    new: &Document,
) -> Result<(), TestCaseError> {
    let s = report.summary;
    prop_assert_eq!(s.breaking + s.warning + s.info, report.findings.len());
    for f in &report.findings {
        let info = diff::lookup(f.id);
        prop_assert!(info.is_some(), "unknown id {}", f.id);
        prop_assert_eq!(info.map(|i| i.severity), Some(f.severity));
        prop_assert!(f.message.ends_with('.'), "{}", f.message);
        if let Some(p) = &f.old_pointer {
            prop_assert!(
                old.tree.pointer(p).is_some(),
                "{}: old pointer {} does not resolve",
                f.id,
                p
            );
        }
        if let Some(p) = &f.new_pointer {
            prop_assert!(
                new.tree.pointer(p).is_some(),
                "{}: new pointer {} does not resolve",
                f.id,
                p
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // Integration tests have no `lib.rs` beside them to store regressions next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_spec_never_differs_from_itself(g in doc(true)) {
        let d = parse(build(&g));
        let report = diff::diff(&d, &d);
        prop_assert!(report.is_empty(), "{}", report.to_text());
    }

    #[test]
    fn inlining_references_is_not_a_change(g in doc(false)) {
        let tree = build(&g);
        let schemas = tree["components"]["schemas"].as_object().cloned().unwrap_or_default();
        let mut inlined = inline(&tree, &schemas);
        inlined["components"]["schemas"] = json!({});
        let (a, b) = (parse(tree), parse(inlined));
        let forward = diff::diff(&a, &b);
        prop_assert!(forward.is_empty(), "{}", forward.to_text());
        let backward = diff::diff(&b, &a);
        prop_assert!(backward.is_empty(), "{}", backward.to_text());
    }

    #[test]
    fn any_two_specs_diff_into_catalogue_findings_with_resolving_pointers(
        old in doc(true),
        new in doc(true),
    ) {
        let (a, b) = (parse(build(&old)), parse(build(&new)));
        check_report(&diff::diff(&a, &b), &a, &b)?;
    }

    #[test]
    fn lint_pointers_resolve(g in doc(true), has_plan in any::<bool>()) {
        let d = parse(build(&g));
        let report = lint::lint(&d, &Ruleset::builtin(), &LintOptions { has_plan });
        for f in &report.findings {
            prop_assert!(d.tree.pointer(&f.pointer).is_some(), "{}: {}", f.rule, f.pointer);
        }
    }
}
