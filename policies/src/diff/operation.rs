//! Comparison of one operation present in both versions: parameters, request body,
//! responses (status, media types, headers, bodies) and security requirements.

use super::Raw;
use super::checks::{Check, Scope};
use super::schema::{Node, SchemaDiff, is_structured};
use crate::openapi::{
    Document, MediaType, Operation, ParamIn, Parameter, Response, ResponseStatus,
    SecurityRequirement, escape_pointer,
};
use std::collections::{BTreeMap, BTreeSet};

/// Both versions of one operation and their documents.
pub(super) struct OperationPair<'a> {
    pub old_doc: &'a Document,
    pub new_doc: &'a Document,
    pub old: &'a Operation,
    pub new: &'a Operation,
}

impl<'a> OperationPair<'a> {
    pub fn compare(&self, out: &mut Vec<Raw>) {
        self.parameters(out);
        self.request_body(out);
        self.responses(out);
        self.security(out);
    }

    fn raw(check: Check, old: Option<String>, new: Option<String>, message: String) -> Raw {
        Raw {
            info: check.info(),
            old,
            new,
            message,
        }
    }

    fn parameters(&self, out: &mut Vec<Raw>) {
        let old_path = template_names(&self.old.path);
        let new_path = template_names(&self.new.path);
        let mut matched_new: Vec<&Parameter> = Vec::new();
        for p in &self.old.parameters {
            let counterpart = if p.location == ParamIn::Path {
                // Path parameters are matched by position: renaming one keeps the URL.
                old_path
                    .iter()
                    .position(|n| *n == p.name)
                    .and_then(|i| new_path.get(i))
                    .and_then(|name| self.new.parameter(ParamIn::Path, name))
            } else {
                self.new.parameter(p.location, &p.name)
            };
            match counterpart {
                Some(n) => {
                    matched_new.push(n);
                    self.parameter_pair(p, n, out);
                }
                None => {
                    let moved =
                        self.new.parameters.iter().find(|n| {
                            n.location != p.location && n.name.eq_ignore_ascii_case(&p.name)
                        });
                    match moved {
                        Some(n) => {
                            matched_new.push(n);
                            out.push(Self::raw(
                                Check::ParameterLocationChanged,
                                Some(p.pointer.clone()),
                                Some(n.pointer.clone()),
                                format!(
                                    "Parameter `{}` moved from {} to {}; clients send it in the old place.",
                                    p.name,
                                    p.location.as_str(),
                                    n.location.as_str()
                                ),
                            ));
                        }
                        None => out.push(Self::raw(
                            Check::ParameterRemoved,
                            Some(p.pointer.clone()),
                            None,
                            format!(
                                "{} was removed; calls that send it still succeed but the value is ignored.",
                                param_label(p)
                            ),
                        )),
                    }
                }
            }
        }
        for n in &self.new.parameters {
            if matched_new.iter().any(|m| std::ptr::eq(*m, n)) {
                continue;
            }
            let (check, what) = if n.required {
                (
                    Check::ParameterAddedRequired,
                    "was added as required; existing calls lack it",
                )
            } else {
                (Check::ParameterAdded, "was added")
            };
            out.push(Self::raw(
                check,
                None,
                Some(n.pointer.clone()),
                format!("{} {what}.", param_label(n)),
            ));
        }
    }

    fn parameter_pair(&self, o: &Parameter, n: &Parameter, out: &mut Vec<Raw>) {
        let ptrs = || (Some(o.pointer.clone()), Some(n.pointer.clone()));
        let label = param_label(n);
        if o.name != n.name {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::PathParameterRenamed,
                a,
                b,
                format!(
                    "Path parameter `{}` was renamed to `{}`; the URL is unchanged.",
                    o.name, n.name
                ),
            ));
        }
        if !o.required && n.required {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::ParameterBecameRequired,
                a,
                b,
                format!("{label} became required; calls without it are refused."),
            ));
        } else if o.required && !n.required {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::ParameterBecameOptional,
                a,
                b,
                format!("{label} became optional."),
            ));
        }
        if !o.deprecated && n.deprecated {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::ParameterBecameDeprecated,
                a,
                b,
                format!("{label} is now deprecated."),
            ));
        }
        // Style and explode only change the wire format of arrays and objects.
        let structured = o
            .schema
            .as_ref()
            .is_some_and(|s| is_structured(self.old_doc, &s.value, &s.pointer));
        if structured && o.style != n.style {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::ParameterStyleChanged,
                a,
                b,
                format!(
                    "{label} changed style from `{}` to `{}`; clients serialize it the old way.",
                    o.style.as_str(),
                    n.style.as_str()
                ),
            ));
        }
        if structured && o.explode != n.explode {
            let (a, b) = ptrs();
            out.push(Self::raw(
                Check::ParameterExplodeChanged,
                a,
                b,
                format!(
                    "{label} changed `explode` from {} to {}; clients serialize it the old way.",
                    o.explode, n.explode
                ),
            ));
        }
        let (os, ns) = (o.schema.as_ref(), n.schema.as_ref());
        if os.is_none() && ns.is_none() {
            return;
        }
        let mut d = SchemaDiff::new(self.old_doc, self.new_doc, Scope::Parameter, label);
        d.compare(
            os.map(|s| Node::new(&s.value, s.pointer.clone()))
                .unwrap_or_else(|| Node::any(o.pointer.clone())),
            ns.map(|s| Node::new(&s.value, s.pointer.clone()))
                .unwrap_or_else(|| Node::any(n.pointer.clone())),
            "",
        );
        out.append(&mut d.found);
    }

    fn request_body(&self, out: &mut Vec<Raw>) {
        match (&self.old.request_body, &self.new.request_body) {
            (None, None) => {}
            (None, Some(n)) => {
                let (check, what) = if n.required {
                    (
                        Check::RequestBodyAddedRequired,
                        "now requires a request body; existing calls send none",
                    )
                } else {
                    (
                        Check::RequestBodyAdded,
                        "now accepts an optional request body",
                    )
                };
                out.push(Self::raw(
                    check,
                    None,
                    Some(n.pointer.clone()),
                    format!("The operation {what}."),
                ));
            }
            (Some(o), None) => out.push(Self::raw(
                Check::RequestBodyRemoved,
                Some(o.pointer.clone()),
                None,
                "The request body was removed; what clients send is ignored or refused.".into(),
            )),
            (Some(o), Some(n)) => {
                if !o.required && n.required {
                    out.push(Self::raw(
                        Check::RequestBodyBecameRequired,
                        Some(o.pointer.clone()),
                        Some(n.pointer.clone()),
                        "The request body became required; calls without one are refused.".into(),
                    ));
                } else if o.required && !n.required {
                    out.push(Self::raw(
                        Check::RequestBodyBecameOptional,
                        Some(o.pointer.clone()),
                        Some(n.pointer.clone()),
                        "The request body became optional.".into(),
                    ));
                }
                for om in &o.content {
                    match find_media(&n.content, &om.media_type) {
                        None => out.push(Self::raw(
                            Check::RequestBodyMediaTypeRemoved,
                            Some(om.pointer.clone()),
                            None,
                            format!(
                                "The request body no longer accepts `{}`; clients sending it get 415.",
                                om.media_type
                            ),
                        )),
                        Some(nm) => self.media_schemas(
                            Scope::RequestBody,
                            format!("Request body `{}`", nm.media_type),
                            om,
                            nm,
                            out,
                        ),
                    }
                }
                for nm in &n.content {
                    if find_media(&o.content, &nm.media_type).is_none() {
                        out.push(Self::raw(
                            Check::RequestBodyMediaTypeAdded,
                            None,
                            Some(nm.pointer.clone()),
                            format!("The request body now also accepts `{}`.", nm.media_type),
                        ));
                    }
                }
            }
        }
    }

    fn media_schemas(
        &self,
        scope: Scope,
        label: String,
        om: &MediaType,
        nm: &MediaType,
        out: &mut Vec<Raw>,
    ) {
        if om.schema.is_none() && nm.schema.is_none() {
            return;
        }
        let mut d = SchemaDiff::new(self.old_doc, self.new_doc, scope, label);
        d.compare(
            om.schema
                .as_ref()
                .map(|s| Node::new(&s.value, s.pointer.clone()))
                .unwrap_or_else(|| Node::any(om.pointer.clone())),
            nm.schema
                .as_ref()
                .map(|s| Node::new(&s.value, s.pointer.clone()))
                .unwrap_or_else(|| Node::any(nm.pointer.clone())),
            "",
        );
        out.append(&mut d.found);
    }

    fn responses(&self, out: &mut Vec<Raw>) {
        for o in &self.old.responses {
            let counterpart = self
                .new
                .responses
                .iter()
                .find(|n| n.status == o.status)
                .or_else(|| match o.status {
                    // A code folded into its range (`200` → `2XX`) is still documented.
                    ResponseStatus::Code(c) => {
                        let class = u8::try_from(c / 100).ok()?;
                        self.new
                            .responses
                            .iter()
                            .find(|n| n.status == ResponseStatus::Range(class))
                    }
                    _ => None,
                });
            match counterpart {
                Some(n) => self.response_pair(o, n, out),
                None if o.status.is_success() => out.push(Self::raw(
                    Check::ResponseSuccessStatusRemoved,
                    Some(o.pointer.clone()),
                    None,
                    format!(
                        "The {} response was removed; clients expecting it will fail.",
                        o.status
                    ),
                )),
                None => out.push(Self::raw(
                    Check::ResponseErrorStatusRemoved,
                    Some(o.pointer.clone()),
                    None,
                    format!("The {} response is no longer documented.", o.status),
                )),
            }
        }
        for n in &self.new.responses {
            if covered_by(&self.old.responses, n.status) {
                continue;
            }
            let (check, what) = if n.status.is_success() {
                (
                    Check::ResponseSuccessStatusAdded,
                    "clients written for the old success statuses may not handle it",
                )
            } else {
                (Check::ResponseErrorStatusAdded, "it is now documented")
            };
            out.push(Self::raw(
                check,
                None,
                Some(n.pointer.clone()),
                format!("A {} response was added; {what}.", n.status),
            ));
        }
    }

    fn response_pair(&self, o: &Response, n: &Response, out: &mut Vec<Raw>) {
        for om in &o.content {
            match find_media(&n.content, &om.media_type) {
                None => out.push(Self::raw(
                    Check::ResponseMediaTypeRemoved,
                    Some(om.pointer.clone()),
                    None,
                    format!(
                        "The {} response no longer comes as `{}`; clients that asked for it get 406 or another type.",
                        o.status, om.media_type
                    ),
                )),
                Some(nm) => self.media_schemas(
                    Scope::ResponseBody,
                    format!("Response {} `{}`", n.status, nm.media_type),
                    om,
                    nm,
                    out,
                ),
            }
        }
        for nm in &n.content {
            if find_media(&o.content, &nm.media_type).is_none() {
                out.push(Self::raw(
                    Check::ResponseMediaTypeAdded,
                    None,
                    Some(nm.pointer.clone()),
                    format!(
                        "The {} response may now come as `{}`.",
                        n.status, nm.media_type
                    ),
                ));
            }
        }
        let header_at =
            |r: &Response, name: &str| format!("{}/headers/{}", r.pointer, escape_pointer(name));
        for oh in &o.headers {
            let nh = n
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(&oh.name));
            let label = format!("Response {} header `{}`", n.status, oh.name);
            match nh {
                None => {
                    let (check, what) = if oh.required {
                        (
                            Check::ResponseRequiredHeaderRemoved,
                            "was removed although it was required",
                        )
                    } else {
                        (Check::ResponseHeaderRemoved, "was removed")
                    };
                    out.push(Self::raw(
                        check,
                        Some(header_at(o, &oh.name)),
                        None,
                        format!("{label} {what}."),
                    ));
                }
                Some(nh) => {
                    if oh.required && !nh.required {
                        out.push(Self::raw(
                            Check::ResponseHeaderBecameOptional,
                            Some(header_at(o, &oh.name)),
                            Some(header_at(n, &nh.name)),
                            format!("{label} became optional; clients that rely on it may fail."),
                        ));
                    }
                    if let (Some(os), Some(ns)) = (&oh.schema, &nh.schema) {
                        let mut d = SchemaDiff::new(
                            self.old_doc,
                            self.new_doc,
                            Scope::ResponseHeader,
                            label,
                        );
                        d.compare(
                            Node::new(&os.value, os.pointer.clone()),
                            Node::new(&ns.value, ns.pointer.clone()),
                            "",
                        );
                        out.append(&mut d.found);
                    }
                }
            }
        }
        for nh in &n.headers {
            if !o
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&nh.name))
            {
                out.push(Self::raw(
                    Check::ResponseHeaderAdded,
                    None,
                    Some(header_at(n, &nh.name)),
                    format!("Response {} header `{}` was added.", n.status, nh.name),
                ));
            }
        }
    }

    fn security(&self, out: &mut Vec<Raw>) {
        let old = alternatives(self.old.effective_security(self.old_doc));
        let new = alternatives(self.new.effective_security(self.new_doc));
        // Where the requirement is written: the operation's own, else the document's,
        // else (no security anywhere) the operation itself.
        let at = |op: &Operation, doc: &Document| {
            if op.security.is_some() {
                format!("{}/security", op.pointer)
            } else if doc.tree.get("security").is_some() {
                "/security".to_owned()
            } else {
                op.pointer.clone()
            }
        };
        for a in &old {
            if new.iter().any(|b| implies(a, b)) {
                continue;
            }
            // Same schemes, more scopes: callers must get a new token, not a new credential.
            let same_schemes = new
                .iter()
                .filter(|b| b.keys().eq(a.keys()))
                .min_by_key(|b| extra_scopes(a, b).len());
            let (check, message) = match same_schemes {
                Some(b) => (
                    Check::SecurityScopeAdded,
                    format!(
                        "Callers using {} now also need scope{} {}.",
                        show_alternative(a),
                        if extra_scopes(a, b).len() == 1 {
                            ""
                        } else {
                            "s"
                        },
                        extra_scopes(a, b)
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                None => (
                    Check::SecurityRequirementAdded,
                    format!(
                        "Callers using {} are no longer enough: the operation now requires {}.",
                        show_alternative(a),
                        new.iter()
                            .map(show_alternative)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ),
            };
            out.push(Self::raw(
                check,
                Some(at(self.old, self.old_doc)),
                Some(at(self.new, self.new_doc)),
                message,
            ));
        }
        let anonymous = |alts: &[Alternative]| alts.iter().any(|a| a.is_empty());
        if !anonymous(&old) && anonymous(&new) {
            out.push(Self::raw(
                Check::SecurityRequirementRemoved,
                Some(at(self.old, self.old_doc)),
                Some(at(self.new, self.new_doc)),
                "The operation can now be called without credentials.".into(),
            ));
        }
    }
}

/// One security alternative: scheme name → scopes. Empty means anonymous access.
type Alternative<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

fn alternatives(reqs: &[SecurityRequirement]) -> Vec<Alternative<'_>> {
    if reqs.is_empty() {
        return vec![Alternative::new()];
    }
    reqs.iter()
        .map(|r| {
            r.schemes
                .iter()
                .map(|(name, scopes)| (name.as_str(), scopes.iter().map(String::as_str).collect()))
                .collect()
        })
        .collect()
}

/// Whether a caller satisfying `have` also satisfies `need`.
fn implies(have: &Alternative, need: &Alternative) -> bool {
    need.iter()
        .all(|(scheme, scopes)| have.get(scheme).is_some_and(|h| scopes.is_subset(h)))
}

fn extra_scopes<'a>(have: &Alternative<'a>, need: &Alternative<'a>) -> Vec<&'a str> {
    need.iter()
        .flat_map(|(scheme, scopes)| {
            scopes
                .iter()
                .filter(move |s| !have.get(scheme).is_some_and(|h| h.contains(*s)))
                .copied()
        })
        .collect()
}

fn show_alternative(a: &Alternative) -> String {
    if a.is_empty() {
        return "no credentials".to_owned();
    }
    a.iter()
        .map(|(scheme, scopes)| {
            if scopes.is_empty() {
                format!("`{scheme}`")
            } else {
                format!(
                    "`{scheme}` [{}]",
                    scopes.iter().copied().collect::<Vec<_>>().join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn param_label(p: &Parameter) -> String {
    let location = match p.location {
        ParamIn::Path => "Path",
        ParamIn::Query => "Query",
        ParamIn::Header => "Header",
        ParamIn::Cookie => "Cookie",
    };
    format!("{location} parameter `{}`", p.name)
}

/// The parameter names of a path template, in order.
pub(super) fn template_names(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Media types compare without parameters and case (`application/json; charset=utf-8`).
fn media_key(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or(media)
        .trim()
        .to_ascii_lowercase()
}

fn find_media<'m>(content: &'m [MediaType], media: &str) -> Option<&'m MediaType> {
    content.iter().find(|m| m.media_type == media).or_else(|| {
        content
            .iter()
            .find(|m| media_key(&m.media_type) == media_key(media))
    })
}

/// Whether the old responses already documented this status (exactly, by range, or, for
/// errors, by `default`).
fn covered_by(old: &[Response], status: ResponseStatus) -> bool {
    old.iter().any(|o| match (o.status, status) {
        (a, b) if a == b => true,
        (ResponseStatus::Range(r), ResponseStatus::Code(c)) => u16::from(r) == c / 100,
        (ResponseStatus::Default, s) => !s.is_success(),
        _ => false,
    })
}
