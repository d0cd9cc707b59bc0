//! The built-in lint rules, one function each: a document in, the places that fail out.
//! Severities and on/off are decided by the ruleset, not here.

use super::ruleset::*;
use super::{Hit, LintOptions};
use crate::openapi::{Document, Method, Operation, ParamIn, ResponseStatus};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Query parameters that page through a collection.
pub const PAGE_PARAMETERS: &[&str] = &[
    "limit",
    "cursor",
    "page",
    "page_size",
    "per_page",
    "offset",
    "page_token",
];
/// Response properties that lead to the next page.
pub const NEXT_PAGE_PROPERTIES: &[&str] = &[
    "next_cursor",
    "next",
    "links",
    "next_page",
    "next_page_token",
];

/// Runs one rule.
pub(super) fn run(id: &str, doc: &Document, opts: &LintOptions) -> Vec<Hit> {
    match id {
        OPERATION_ID_PRESENT => operation_id_present(doc),
        OPERATION_ID_UNIQUE => operation_id_unique(doc),
        OPERATION_SUMMARY => operation_summary(doc),
        OPERATION_4XX_RESPONSE => operation_4xx_response(doc),
        ERROR_RESPONSES_PROBLEM_JSON => error_responses_problem_json(doc),
        INFO_VERSION_SEMVER => info_version_semver(doc),
        INFO_CONTACT => info_contact(doc),
        OPERATION_SECURITY_DEFINED => operation_security_defined(doc),
        NO_UNUSED_COMPONENTS => super::components::unused(doc),
        PATH_SEGMENTS_KEBAB_CASE => path_segments_kebab_case(doc),
        COLLECTION_PAGINATED => collection_paginated(doc),
        RATE_LIMIT_429 if opts.has_plan => rate_limit_429(doc),
        _ => Vec::new(),
    }
}

fn name(op: &Operation) -> String {
    format!("`{} {}`", op.method, op.path)
}

fn blank(text: Option<&str>) -> bool {
    text.is_none_or(|t| t.trim().is_empty())
}

fn operation_id_present(doc: &Document) -> Vec<Hit> {
    doc.operations()
        .filter(|op| blank(op.operation_id.as_deref()))
        .map(|op| Hit {
            pointer: op.pointer.clone(),
            message: format!("Operation {} has no operationId.", name(op)),
        })
        .collect()
}

fn operation_id_unique(doc: &Document) -> Vec<Hit> {
    let mut first: HashMap<&str, &Operation> = HashMap::new();
    let mut hits = Vec::new();
    for op in doc.operations() {
        let Some(id) = op
            .operation_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
        else {
            continue;
        };
        match first.get(id) {
            Some(earlier) => hits.push(Hit {
                pointer: format!("{}/operationId", op.pointer),
                message: format!(
                    "operationId `{id}` of {} is already used by {}.",
                    name(op),
                    name(earlier)
                ),
            }),
            None => {
                first.insert(id, op);
            }
        }
    }
    hits
}

fn operation_summary(doc: &Document) -> Vec<Hit> {
    doc.operations()
        .filter(|op| blank(op.summary.as_deref()))
        .map(|op| Hit {
            pointer: op.pointer.clone(),
            message: format!("Operation {} has no summary.", name(op)),
        })
        .collect()
}

fn operation_4xx_response(doc: &Document) -> Vec<Hit> {
    doc.operations()
        .filter(|op| {
            !op.responses.iter().any(|r| match r.status {
                ResponseStatus::Code(c) => (400..500).contains(&c),
                ResponseStatus::Range(class) => class == 4,
                ResponseStatus::Default => false,
            })
        })
        .map(|op| Hit {
            pointer: format!("{}/responses", op.pointer),
            message: format!(
                "Operation {} documents no 4xx response; document at least how a bad request is refused.",
                name(op)
            ),
        })
        .collect()
}

fn is_problem_json(media: &str) -> bool {
    media
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(crate::problem::CONTENT_TYPE))
}

fn error_responses_problem_json(doc: &Document) -> Vec<Hit> {
    let mut hits = Vec::new();
    for op in doc.operations() {
        // HEAD responses never carry a body.
        if op.method == Method::Head {
            continue;
        }
        for r in op.responses.iter().filter(|r| r.status.is_error()) {
            if r.content.iter().any(|m| is_problem_json(&m.media_type)) {
                continue;
            }
            let offered = if r.content.is_empty() {
                "declares no body".to_owned()
            } else {
                format!(
                    "offers {}",
                    r.content
                        .iter()
                        .map(|m| format!("`{}`", m.media_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            hits.push(Hit {
                pointer: r.pointer.clone(),
                message: format!(
                    "The {} response of {} {offered}; error responses must offer `application/problem+json`.",
                    r.status,
                    name(op)
                ),
            });
        }
    }
    hits
}

fn info_version_semver(doc: &Document) -> Vec<Hit> {
    // Ingest already refuses what is not semver; this catches what it tolerates
    // (surrounding blanks) so the stored text is exactly the version the registry uses.
    let canonical = doc.info.version.to_string();
    match doc.tree.pointer("/info/version") {
        Some(Value::String(s)) if *s == canonical => Vec::new(),
        other => vec![Hit {
            pointer: "/info/version".to_owned(),
            message: format!(
                "`info.version` is written `{}`; write it as plain semantic versioning: `{canonical}`.",
                other
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .unwrap_or_default()
            ),
        }],
    }
}

fn info_contact(doc: &Document) -> Vec<Hit> {
    match &doc.info.contact {
        None => vec![Hit {
            pointer: "/info".to_owned(),
            message: "The spec has no `info.contact`; name an email or URL where its owners can be reached.".to_owned(),
        }],
        Some(c) if blank(c.email.as_deref()) && blank(c.url.as_deref()) => vec![Hit {
            pointer: "/info/contact".to_owned(),
            message: "`info.contact` has neither an email nor a URL; a name alone cannot be reached.".to_owned(),
        }],
        Some(_) => Vec::new(),
    }
}

fn operation_security_defined(doc: &Document) -> Vec<Hit> {
    let mut hits = Vec::new();
    for op in doc.operations() {
        let pointer = if op.security.is_some() {
            format!("{}/security", op.pointer)
        } else {
            op.pointer.clone()
        };
        let security = op.effective_security(doc);
        if security.is_empty() {
            hits.push(Hit {
                pointer,
                message: format!(
                    "Operation {} has no security requirement and would be public; require a scheme.",
                    name(op)
                ),
            });
        } else if security.iter().any(|r| r.schemes.is_empty()) {
            hits.push(Hit {
                pointer,
                message: format!(
                    "Operation {} allows anonymous calls (an empty `{{}}` security alternative).",
                    name(op)
                ),
            });
        }
    }
    hits
}

fn kebab(piece: &str) -> bool {
    piece.split('-').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A kebab-case spelling of a segment, for the message.
fn to_kebab(piece: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in piece.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c == '_' || c == ' ' {
            out.push('-');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

fn path_segments_kebab_case(doc: &Document) -> Vec<Hit> {
    let mut hits = Vec::new();
    for item in &doc.paths {
        for segment in item.template.split('/').filter(|s| !s.is_empty()) {
            // Only the static text is checked: templates are names of the API's choosing,
            // and `.json` extensions or `:cancel` custom methods are allowed separators.
            let mut stat = String::new();
            let mut depth = 0u32;
            for c in segment.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ if depth == 0 => stat.push(c),
                    _ => {}
                }
            }
            let bad = stat
                .split(['.', ':'])
                .filter(|p| !p.is_empty())
                .find(|p| !kebab(p));
            if let Some(piece) = bad {
                hits.push(Hit {
                    pointer: item.pointer.clone(),
                    message: format!(
                        "Path `{}` has segment `{segment}`, which is not kebab-case; write `{}`.",
                        item.template,
                        segment.replace(piece, &to_kebab(piece))
                    ),
                });
                break;
            }
        }
    }
    hits
}

/// What the pagination rule needs from a schema: its type, properties and bound, with
/// `$ref`s followed and `allOf` merged.
#[derive(Default)]
struct Shape<'a> {
    is_array: bool,
    is_object: bool,
    bounded: bool,
    properties: BTreeMap<&'a str, (&'a Value, String)>,
}

impl<'a> Shape<'a> {
    fn of(doc: &'a Document, value: &'a Value, pointer: &str) -> Shape<'a> {
        let mut shape = Shape::default();
        shape.absorb(doc, value, pointer, &mut HashSet::new(), 0);
        shape
    }

    fn absorb(
        &mut self,
        doc: &'a Document,
        value: &'a Value,
        pointer: &str,
        seen: &mut HashSet<String>,
        depth: usize,
    ) {
        // `allOf` chains through `$ref`s are bounded by `seen`; the depth bounds the stack.
        if depth > 32 {
            return;
        }
        let Some((v, at)) = doc.deref(value, pointer) else {
            return;
        };
        if !seen.insert(at.clone()) {
            return;
        }
        let types: Vec<&str> = match v.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        self.is_array |= types.contains(&"array") || (types.is_empty() && v.get("items").is_some());
        self.is_object |=
            types.contains(&"object") || (types.is_empty() && v.get("properties").is_some());
        self.bounded |= v.get("maxItems").is_some();
        if let Some(Value::Object(props)) = v.get("properties") {
            for (name, schema) in props {
                let p = format!("{at}/properties/{}", crate::openapi::escape_pointer(name));
                self.properties.entry(name.as_str()).or_insert((schema, p));
            }
        }
        if let Some(Value::Array(branches)) = v.get("allOf") {
            for (i, b) in branches.iter().enumerate() {
                self.absorb(doc, b, &format!("{at}/allOf/{i}"), seen, depth + 1);
            }
        }
    }
}

fn is_json(media: &str) -> bool {
    let m = media.split(';').next().unwrap_or(media).trim();
    m.eq_ignore_ascii_case("application/json") || m.to_ascii_lowercase().ends_with("+json")
}

fn collection_paginated(doc: &Document) -> Vec<Hit> {
    let mut hits = Vec::new();
    for op in doc.operations().filter(|op| op.method == Method::Get) {
        let Some(ok) = op
            .responses
            .iter()
            .find(|r| r.status == ResponseStatus::Code(200))
        else {
            continue;
        };
        let Some(schema) = ok
            .content
            .iter()
            .filter(|m| is_json(&m.media_type))
            .find_map(|m| m.schema.as_ref())
        else {
            continue;
        };
        let shape = Shape::of(doc, &schema.value, &schema.pointer);
        if shape.is_array {
            if !shape.bounded {
                hits.push(Hit {
                    pointer: schema.pointer.clone(),
                    message: format!(
                        "Operation {} returns a bare array; return an object with `items` and `next_cursor` so the collection can be paged.",
                        name(op)
                    ),
                });
            }
            continue;
        }
        let Some((items, items_at)) = shape.properties.get("items") else {
            continue;
        };
        let items = Shape::of(doc, items, items_at);
        if !items.is_array || items.bounded {
            continue;
        }
        let has_next = NEXT_PAGE_PROPERTIES
            .iter()
            .any(|p| shape.properties.contains_key(p))
            || ok
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("Link"));
        if !has_next {
            hits.push(Hit {
                pointer: schema.pointer.clone(),
                message: format!(
                    "Operation {} returns a collection without a next-page link; add `next_cursor` (or `next`, `links`, a `Link` header).",
                    name(op)
                ),
            });
        }
        let has_param = op
            .parameters
            .iter()
            .any(|p| p.location == ParamIn::Query && PAGE_PARAMETERS.contains(&p.name.as_str()));
        if !has_param {
            hits.push(Hit {
                pointer: op.pointer.clone(),
                message: format!(
                    "Operation {} returns a collection but takes no paging query parameter (`limit`, `cursor`, `page`…).",
                    name(op)
                ),
            });
        }
    }
    hits
}

fn rate_limit_429(doc: &Document) -> Vec<Hit> {
    doc.operations()
        .filter(|op| {
            !op.responses
                .iter()
                .any(|r| r.status == ResponseStatus::Code(429))
        })
        .map(|op| Hit {
            pointer: format!("{}/responses", op.pointer),
            message: format!(
                "Operation {} does not document 429; the API has a rate-limit plan, so the gateway will answer 429 with `Retry-After`.",
                name(op)
            ),
        })
        .collect()
}
