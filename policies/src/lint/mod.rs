//! The lint engine: the governance ruleset a spec must pass before it is published.
//!
//! Pure: a [`Document`], a [`Ruleset`] (built-in severities, possibly overridden by a YAML
//! file) and [`LintOptions`] in, a [`LintReport`] out. `gatehouse spec lint` prints it
//! and exits 1 on [`LintReport::has_errors`]; the publish gate refuses with 422 on the same.
//! The rules are documented in `docs/lint-rules.md`.

mod components;
mod rules;
mod ruleset;

pub use rules::{NEXT_PAGE_PROPERTIES, PAGE_PARAMETERS};
pub use ruleset::*;

use crate::openapi::{Document, SpecError};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;

/// What the lint needs to know besides the document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// The API is sold under a rate-limit plan: every operation must document 429.
    pub has_plan: bool,
}

/// A rule failing at one place, before the ruleset gives it a severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub pointer: String,
    pub message: String,
}

/// One failed rule at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    pub rule: &'static str,
    pub severity: LintSeverity,
    /// JSON pointer into the document.
    pub pointer: String,
    pub message: String,
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LintSummary {
    pub error: usize,
    pub warning: usize,
    pub info: usize,
}

/// The result of a lint: `{"summary": {...}, "findings": [...]}` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LintReport {
    pub summary: LintSummary,
    pub findings: Vec<LintFinding>,
}

/// Lints a document with a ruleset.
pub fn lint(doc: &Document, ruleset: &Ruleset, opts: &LintOptions) -> LintReport {
    let mut findings = Vec::new();
    let mut seen = HashSet::new();
    for rule in RULES {
        let Some(severity) = ruleset.severity(rule.id) else {
            continue;
        };
        for hit in rules::run(rule.id, doc, opts) {
            // A shared component (one `$ref`d error response) fails once, not per use.
            if seen.insert((rule.id, hit.pointer.clone())) {
                findings.push(LintFinding {
                    rule: rule.id,
                    severity,
                    pointer: hit.pointer,
                    message: hit.message,
                });
            }
        }
    }
    LintReport::new(findings)
}

/// The lint finding for a refusal at ingest that a rule also covers (a non-semver
/// `info.version`), so that `gatehouse spec lint` reports it in its own format.
pub fn finding_for_spec_error(error: &SpecError) -> Option<LintFinding> {
    match error {
        SpecError::VersionNotSemver { .. } => Some(LintFinding {
            rule: INFO_VERSION_SEMVER,
            severity: LintSeverity::Error,
            pointer: "/info/version".to_owned(),
            message: error.to_string(),
        }),
        _ => None,
    }
}

impl LintReport {
    /// Builds a report: most severe first (stable), and counted.
    pub fn new(mut findings: Vec<LintFinding>) -> LintReport {
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let count = |s: LintSeverity| findings.iter().filter(|f| f.severity == s).count();
        LintReport {
            summary: LintSummary {
                error: count(LintSeverity::Error),
                warning: count(LintSeverity::Warning),
                info: count(LintSeverity::Info),
            },
            findings,
        }
    }

    /// Whether a rule of severity error failed: exit 1, or 422 at publish.
    pub fn has_errors(&self) -> bool {
        self.summary.error > 0
    }

    /// Plain text for terminals.
    pub fn to_text(&self) -> String {
        let s = self.summary;
        if self.findings.is_empty() {
            return "No problems.\n".to_owned();
        }
        let mut out = format!(
            "{} error{}, {} warning{}, {} info\n",
            s.error,
            if s.error == 1 { "" } else { "s" },
            s.warning,
            if s.warning == 1 { "" } else { "s" },
            s.info
        );
        for f in &self.findings {
            let _ = write!(
                out,
                "\n{:<8} {}  {}\n         {}\n",
                f.severity.as_str(),
                f.rule,
                f.pointer,
                f.message
            );
        }
        out
    }

    /// The JSON of the CLI contract.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The rule catalogue as the Markdown table of `docs/lint-rules.md`.
pub fn rules_markdown() -> String {
    let mut out = String::from(
        "| rule | default | what it asks | why this severity |\n| --- | --- | --- | --- |\n",
    );
    for r in RULES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.id,
            r.default.as_str(),
            r.summary,
            r.why
        );
    }
    out
}
