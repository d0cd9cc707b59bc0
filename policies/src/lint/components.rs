//! The `no-unused-components` rule: which components nothing reaches.
//!
//! Reachability, not mere mention: references are collected from everything outside
//! `components` (paths, webhooks, top-level security), then followed into the components
//! they reach, transitively. A schema only referenced by itself or by another unused
//! component is unused. Security schemes are used by name in `security` requirements.
//! Literal data (`example`, `default`, `enum`, `const`, example `value`s) is skipped: a
//! `$ref` key there is data, not a reference.

use super::Hit;
use crate::openapi::Document;
use serde_json::Value;
use std::collections::HashSet;

/// The component kinds the rule checks, with how a message names one.
const KINDS: [(&str, &str); 7] = [
    ("schemas", "Schema"),
    ("parameters", "Parameter"),
    ("responses", "Response"),
    ("requestBodies", "Request body"),
    ("examples", "Example"),
    ("headers", "Header"),
    ("securitySchemes", "Security scheme"),
];

/// Keys whose object value maps names to values (never to keywords): a property named
/// `default` or a response named `default` is not literal data.
const NAME_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "responses",
    "paths",
    "webhooks",
    "headers",
    "content",
    "callbacks",
    "links",
    "encoding",
];

pub(super) fn unused(doc: &Document) -> Vec<Hit> {
    let Some(components) = doc.tree.get("components").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Found::default();
    if let Some(root) = doc.tree.as_object() {
        for (key, value) in root {
            if key != "components" {
                keyword(key, value, &mut found);
            }
        }
    }
    let mut reached: HashSet<(String, String)> = HashSet::new();
    while let Some(reference) = found.refs.pop() {
        let segments = segments(&reference);
        let [first, kind, name, ..] = segments.as_slice() else {
            continue;
        };
        if first != "components" || !reached.insert((kind.clone(), name.clone())) {
            continue;
        }
        if let Some(target) = components.get(kind).and_then(|k| k.get(name)) {
            walk(target, Mode::Keywords, &mut found);
        }
    }
    let mut hits = Vec::new();
    for (kind, label) in KINDS {
        let Some(entries) = components.get(kind).and_then(Value::as_object) else {
            continue;
        };
        for name in entries.keys() {
            let used = if kind == "securitySchemes" {
                found.schemes.contains(name)
            } else {
                reached.contains(&(kind.to_owned(), name.clone()))
            };
            if !used {
                hits.push(Hit {
                    pointer: format!(
                        "/components/{kind}/{}",
                        crate::openapi::escape_pointer(name)
                    ),
                    message: if kind == "securitySchemes" {
                        format!("{label} `{name}` is never required by any operation.")
                    } else {
                        format!("{label} `{name}` is never referenced.")
                    },
                });
            }
        }
    }
    hits
}

#[derive(Default)]
struct Found {
    refs: Vec<String>,
    schemes: HashSet<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// An object whose keys are keywords (`type`, `$ref`, `example`…).
    Keywords,
    /// An object whose keys are names (property names, status codes, media types…).
    Names,
    /// An OpenAPI Example Object: its `value` is data.
    Example,
}

impl Mode {
    fn keywords_of(key: &str, value: &Value) -> Mode {
        if NAME_MAPS.contains(&key) && value.is_object() {
            Mode::Names
        } else {
            Mode::Keywords
        }
    }
}

fn walk(value: &Value, mode: Mode, found: &mut Found) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref").filter(|_| mode != Mode::Names) {
                found.refs.push(r.clone());
            }
            for (key, child) in map {
                match mode {
                    Mode::Names => walk(child, Mode::Keywords, found),
                    Mode::Example if key == "value" => {}
                    Mode::Example => walk(child, Mode::Keywords, found),
                    Mode::Keywords => keyword(key, child, found),
                }
            }
        }
        Value::Array(items) => {
            let inner = if mode == Mode::Names {
                Mode::Keywords
            } else {
                mode
            };
            for item in items {
                walk(item, inner, found);
            }
        }
        _ => {}
    }
}

fn keyword(key: &str, child: &Value, found: &mut Found) {
    match (key, child) {
        ("example" | "default" | "enum" | "const", _) => {}
        // OpenAPI `examples` is a map of Example Objects; JSON Schema `examples` is data.
        ("examples", Value::Object(named)) => {
            for example in named.values() {
                walk(example, Mode::Example, found);
            }
        }
        ("examples", _) => {}
        ("security", Value::Array(requirements)) => {
            for requirement in requirements.iter().filter_map(Value::as_object) {
                found.schemes.extend(requirement.keys().cloned());
            }
        }
        // `discriminator.mapping` values name schemas, by reference or by bare name.
        ("mapping", Value::Object(mapping)) => {
            for target in mapping.values().filter_map(Value::as_str) {
                found.refs.push(if target.starts_with('#') {
                    target.to_owned()
                } else {
                    format!("#/components/schemas/{target}")
                });
            }
        }
        _ => walk(child, Mode::keywords_of(key, child), found),
    }
}

/// The decoded segments of an internal reference (`#/components/schemas/a~1b`).
fn segments(reference: &str) -> Vec<String> {
    let pointer = reference.strip_prefix('#').unwrap_or(reference);
    let decoded = percent_encoding::percent_decode_str(pointer).decode_utf8_lossy();
    decoded
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}
