//! The breaking-change engine: compares two versions of a spec and reports what changed,
//! how much it hurts existing clients, where, and in words.
//!
//! Pure: two [`Document`]s and an [`Options`] (which carries "today" for `x-sunset`
//! rules) in, a [`Report`] out. The rule behind every severity: narrowing what a request
//! accepts, or widening what a response may return, breaks clients. The check ids and
//! their severities are the catalogue in [`checks`] (and `docs/checks.md`).
//!
//! Matching: paths by template with parameter names ignored (`/orders/{id}` is
//! `/orders/{order_number}`), operations by method, parameters by location and name (path
//! parameters by position), media types without parameters, responses by status (a code
//! may fold into its range), schemas by structure (see [`schema`]).

pub mod checks;
mod date;
mod operation;
mod report;
mod schema;

pub use checks::{Category, Check, CheckInfo, SchemaChange, Scope, catalogue, lookup};
pub use date::{Date, InvalidDate};
pub use report::{FailOn, Finding, Report, Severity, Summary, UnknownFailOn};

use crate::openapi::{Document, Operation, PathItem, SecurityScheme, escape_pointer};
use operation::OperationPair;
use std::collections::HashSet;

/// What the diff needs besides the two documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Today's date, to tell whether a deprecated operation's `x-sunset` has passed.
    /// Without it, removing a deprecated operation that has a sunset date is assumed to
    /// be early (breaking): the safe answer when the date is unknown.
    pub today: Option<Date>,
}

/// A finding before it is placed in an operation: what the comparers produce.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub info: CheckInfo,
    pub old: Option<String>,
    pub new: Option<String>,
    pub message: String,
}

/// Compares two versions of a spec with no date known (see [`Options::today`]).
pub fn diff(old: &Document, new: &Document) -> Report {
    diff_with(old, new, &Options::default())
}

/// Compares two versions of a spec.
pub fn diff_with(old: &Document, new: &Document, options: &Options) -> Report {
    let mut findings = Vec::new();
    for old_item in &old.paths {
        let key = path_key(&old_item.template);
        match new.paths.iter().find(|n| path_key(&n.template) == key) {
            Some(new_item) => compare_path(old, new, old_item, new_item, options, &mut findings),
            None => removed_path(old_item, options, &mut findings),
        }
    }
    for new_item in &new.paths {
        let key = path_key(&new_item.template);
        if !old.paths.iter().any(|o| path_key(&o.template) == key) {
            findings.push(place(
                None,
                Raw {
                    info: Check::PathAdded.info(),
                    old: None,
                    new: Some(new_item.pointer.clone()),
                    message: format!("Path `{}` was added.", new_item.template),
                },
            ));
        }
    }
    security_schemes(old, new, &mut findings);
    // The same change reached twice (two media types or statuses sharing one schema) is
    // one finding: keep the first.
    let mut seen = HashSet::new();
    findings.retain(|f: &Finding| {
        seen.insert((
            f.id,
            f.operation.clone(),
            f.old_pointer.clone(),
            f.new_pointer.clone(),
        ))
    });
    Report::new(findings)
}

fn compare_path(
    old: &Document,
    new: &Document,
    old_item: &PathItem,
    new_item: &PathItem,
    options: &Options,
    out: &mut Vec<Finding>,
) {
    for o in &old_item.operations {
        match new_item.operations.iter().find(|n| n.method == o.method) {
            Some(n) => {
                let mut raws = Vec::new();
                operation_changes(o, n, &mut raws);
                OperationPair {
                    old_doc: old,
                    new_doc: new,
                    old: o,
                    new: n,
                }
                .compare(&mut raws);
                out.extend(raws.into_iter().map(|r| place(Some((o, n)), r)));
            }
            None => {
                if let Some(raw) = removed_operation(o, options, false) {
                    out.push(place(Some((o, o)), raw));
                }
            }
        }
    }
    for n in &new_item.operations {
        if !old_item.operations.iter().any(|o| o.method == n.method) {
            out.push(place(
                Some((n, n)),
                Raw {
                    info: Check::OperationAdded.info(),
                    old: None,
                    new: Some(n.pointer.clone()),
                    message: format!("Operation `{} {}` was added.", n.method, n.path),
                },
            ));
        }
    }
}

/// Operation-level changes: identity and deprecation.
fn operation_changes(o: &Operation, n: &Operation, out: &mut Vec<Raw>) {
    let both = |check: Check, message: String| Raw {
        info: check.info(),
        old: Some(o.pointer.clone()),
        new: Some(n.pointer.clone()),
        message,
    };
    if o.operation_id.is_some() && o.operation_id != n.operation_id {
        out.push(both(
            Check::OperationIdChanged,
            format!(
                "The operationId changed from `{}` to {}; generated clients rename the method.",
                o.operation_id.as_deref().unwrap_or_default(),
                n.operation_id
                    .as_deref()
                    .map(|id| format!("`{id}`"))
                    .unwrap_or_else(|| "none".to_owned())
            ),
        ));
    }
    if !o.deprecated && n.deprecated {
        let when = n
            .sunset
            .as_deref()
            .map(|s| format!(" (sunset {s})"))
            .unwrap_or_default();
        out.push(both(
            Check::OperationBecameDeprecated,
            format!("The operation is now deprecated{when}."),
        ));
    }
    if o.deprecated && n.deprecated {
        let parse = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<Date>().ok());
        match (parse(&o.sunset), parse(&n.sunset)) {
            (Some(before), Some(after)) if after < before => out.push(both(
                Check::OperationSunsetBroughtForward,
                format!("The sunset date moved earlier, from {before} to {after}."),
            )),
            _ => {}
        }
    }
}

/// What removing one operation means, given its deprecation and sunset date. `in_path`
/// is set when the whole path went: plain removals are then reported once, as the path.
fn removed_operation(op: &Operation, options: &Options, in_path: bool) -> Option<Raw> {
    let raw = |check: Check, message: String| Raw {
        info: check.info(),
        old: Some(op.pointer.clone()),
        new: None,
        message,
    };
    let name = format!("`{} {}`", op.method, op.path);
    if !op.deprecated {
        return (!in_path).then(|| {
            raw(
                Check::OperationRemoved,
                format!("Operation {name} was removed without being deprecated first."),
            )
        });
    }
    let Some(sunset_text) = op.sunset.as_deref() else {
        return Some(raw(
            Check::DeprecatedOperationRemovedWithoutSunset,
            format!("Deprecated operation {name} was removed; it never announced a sunset date."),
        ));
    };
    let early = |why: String| {
        Some(raw(
            Check::OperationRemovedBeforeSunset,
            format!("Deprecated operation {name} was removed {why}."),
        ))
    };
    let Ok(sunset) = sunset_text.parse::<Date>() else {
        return early(format!(
            "but its `x-sunset` `{sunset_text}` is not a date, so it cannot be known to have passed"
        ));
    };
    match options.today {
        None => early(format!(
            "with a sunset of {sunset} and no date given to check it has passed"
        )),
        Some(today) if today < sunset => early(format!(
            "before its sunset date {sunset} (today is {today})"
        )),
        Some(_) => Some(raw(
            Check::DeprecatedOperationRemoved,
            format!("Deprecated operation {name} was removed after its sunset date {sunset}."),
        )),
    }
}

fn removed_path(item: &PathItem, options: &Options, out: &mut Vec<Finding>) {
    let live: Vec<String> = item
        .operations
        .iter()
        .filter(|o| !o.deprecated)
        .map(|o| o.method.to_string())
        .collect();
    // A path whose operations were all deprecated is judged operation by operation
    // below; one without operations had nothing to call.
    if !live.is_empty() {
        out.push(place(
            None,
            Raw {
                info: Check::PathRemoved.info(),
                old: Some(item.pointer.clone()),
                new: None,
                message: format!(
                    "Path `{}` was removed with operations that were not deprecated ({}).",
                    item.template,
                    live.join(", ")
                ),
            },
        ));
    }
    for op in &item.operations {
        if let Some(raw) = removed_operation(op, options, true) {
            out.push(place(Some((op, op)), raw));
        }
    }
}

/// Security schemes that kept their name but changed how a credential is presented.
fn security_schemes(old: &Document, new: &Document, out: &mut Vec<Finding>) {
    for (name, o) in &old.security_schemes {
        let Some(n) = new.security_schemes.get(name) else {
            continue;
        };
        let changed = match (o, n) {
            (
                SecurityScheme::ApiKey {
                    name: a,
                    location: la,
                },
                SecurityScheme::ApiKey {
                    name: b,
                    location: lb,
                },
            ) => !a.eq_ignore_ascii_case(b) || la != lb,
            (SecurityScheme::Http { scheme: a, .. }, SecurityScheme::Http { scheme: b, .. }) => {
                a != b
            }
            (SecurityScheme::OAuth2 { .. }, SecurityScheme::OAuth2 { .. })
            | (SecurityScheme::OpenIdConnect { .. }, SecurityScheme::OpenIdConnect { .. })
            | (SecurityScheme::MutualTls, SecurityScheme::MutualTls) => false,
            _ => true,
        };
        let used = new.operations().any(|op| {
            op.effective_security(new)
                .iter()
                .any(|r| r.schemes.contains_key(name))
        });
        if changed && used {
            let at = format!("/components/securitySchemes/{}", escape_pointer(name));
            out.push(place(
                None,
                Raw {
                    info: Check::SecuritySchemeChanged.info(),
                    old: Some(at.clone()),
                    new: Some(at),
                    message: format!(
                        "Security scheme `{name}` changed from {} to {}; existing credentials are presented the old way.",
                        show_scheme(o),
                        show_scheme(n)
                    ),
                },
            ));
        }
    }
}

fn show_scheme(s: &SecurityScheme) -> String {
    match s {
        SecurityScheme::ApiKey { name, location } => {
            format!("an API key in {} `{name}`", location.as_str())
        }
        SecurityScheme::Http { scheme, .. } => format!("HTTP `{scheme}`"),
        SecurityScheme::OAuth2 { .. } => "OAuth 2.0".to_owned(),
        SecurityScheme::OpenIdConnect { .. } => "OpenID Connect".to_owned(),
        SecurityScheme::MutualTls => "mutual TLS".to_owned(),
    }
}

/// Places a raw finding in its operation (old and new versions of it).
fn place(ops: Option<(&Operation, &Operation)>, raw: Raw) -> Finding {
    let (operation, operation_id) = match ops {
        Some((o, n)) => (
            Some(format!("{} {}", n.method, n.path)),
            n.operation_id.clone().or_else(|| o.operation_id.clone()),
        ),
        None => (None, None),
    };
    Finding {
        id: raw.info.id,
        severity: raw.info.severity,
        operation,
        operation_id,
        old_pointer: raw.old,
        new_pointer: raw.new,
        message: raw.message,
    }
}

/// A path template with parameter names erased: what a client's URL actually matches.
fn path_key(template: &str) -> String {
    let mut key = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                key.push('{');
            }
            '}' => {
                in_param = false;
                key.push('}');
            }
            _ if in_param => {}
            _ => key.push(c),
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_ignore_parameter_names() {
        assert_eq!(
            path_key("/orders/{order_number}/lines/{n}"),
            "/orders/{}/lines/{}"
        );
        assert_eq!(path_key("/orders/{id}"), path_key("/orders/{order_number}"));
        assert_ne!(path_key("/orders/{id}"), path_key("/order/{id}"));
    }

    #[test]
    fn catalogue_ids_are_unique_and_kebab_case() {
        let all = catalogue();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate check ids");
        for id in ids {
            assert!(
                id.split('-').all(|part| !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())),
                "{id} is not kebab-case"
            );
        }
    }
}
