//! The diff report: findings, their severities and counts, and the three renderings the
//! CLI and the admin API print (text, Markdown for a pull-request comment, JSON).
//!
//! The JSON shape is part of the CLI contract:
//! `{"summary":{"breaking":n,"warning":n,"info":n},"findings":[...]}`.

use serde::Serialize;
use std::fmt::Write as _;

/// How much a change hurts existing clients. Ordered: `Info < Warning < Breaking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Breaking,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Breaking => "breaking",
        }
    }
}

/// The `--fail-on` threshold of `gatehouse spec diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Fail on a breaking change (the default).
    #[default]
    Breaking,
    /// Fail on a breaking change or a warning.
    Warning,
    /// Never fail: report only.
    Never,
}

impl std::str::FromStr for FailOn {
    type Err = UnknownFailOn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "breaking" => Ok(FailOn::Breaking),
            "warning" => Ok(FailOn::Warning),
            "never" => Ok(FailOn::Never),
            other => Err(UnknownFailOn {
                value: other.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a fail-on level; use breaking, warning or never")]
pub struct UnknownFailOn {
    pub value: String,
}

/// One difference between two versions of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable check id from the catalogue (`docs/checks.md`).
    pub id: &'static str,
    pub severity: Severity,
    /// `METHOD /path` of the operation concerned, when there is one.
    pub operation: Option<String>,
    /// Its `operationId` (from the new version, else the old), to join with access logs.
    pub operation_id: Option<String>,
    /// Where the change is in the old document (JSON pointer), when it exists there.
    pub old_pointer: Option<String>,
    /// Where the change is in the new document (JSON pointer), when it exists there.
    pub new_pointer: Option<String>,
    /// One sentence for a human.
    pub message: String,
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub breaking: usize,
    pub warning: usize,
    pub info: usize,
}

/// The result of a diff: findings, breaking first, then in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Builds a report: orders findings (most severe first, stable) and counts them.
    pub fn new(mut findings: Vec<Finding>) -> Report {
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        Report {
            summary: Summary {
                breaking: count(Severity::Breaking),
                warning: count(Severity::Warning),
                info: count(Severity::Info),
            },
            findings,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn has_breaking(&self) -> bool {
        self.summary.breaking > 0
    }

    /// Whether the report fails a `--fail-on` threshold (exit code 1).
    pub fn fails(&self, on: FailOn) -> bool {
        match on {
            FailOn::Breaking => self.summary.breaking > 0,
            FailOn::Warning => self.summary.breaking + self.summary.warning > 0,
            FailOn::Never => false,
        }
    }

    /// The breaking findings: what the publish gate refuses with 409.
    pub fn breaking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Breaking)
    }

    fn headline(&self) -> String {
        let s = self.summary;
        format!(
            "{} breaking, {} {}, {} info",
            s.breaking,
            s.warning,
            if s.warning == 1 {
                "warning"
            } else {
                "warnings"
            },
            s.info
        )
    }

    /// Plain text for terminals: a headline, then one block per finding.
    pub fn to_text(&self) -> String {
        if self.is_empty() {
            return "No changes.\n".to_owned();
        }
        let mut out = format!("{}\n", self.headline());
        for f in &self.findings {
            out.push('\n');
            let _ = write!(out, "{:<8} {}", f.severity.as_str(), f.id);
            if let Some(op) = operation_label(f) {
                let _ = write!(out, "  {op}");
            }
            let _ = writeln!(out, "\n         {}", f.message);
            match (&f.old_pointer, &f.new_pointer) {
                (Some(o), Some(n)) if o == n => {
                    let _ = writeln!(out, "         at {o}");
                }
                (o, n) => {
                    if let Some(o) = o {
                        let _ = writeln!(out, "         old {o}");
                    }
                    if let Some(n) = n {
                        let _ = writeln!(out, "         new {n}");
                    }
                }
            }
        }
        out
    }

    /// Markdown for a pull-request comment: a headline, a table of breaking changes and
    /// warnings, and the compatible changes folded away.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("### API changes: {}\n\n", self.headline());
        if self.is_empty() {
            out.push_str("No changes.\n");
            return out;
        }
        let (loud, quiet): (Vec<&Finding>, Vec<&Finding>) = self
            .findings
            .iter()
            .partition(|f| f.severity > Severity::Info);
        let table = |rows: &[&Finding]| {
            let mut t = String::from(
                "| severity | check | operation | change |\n| --- | --- | --- | --- |\n",
            );
            for f in rows {
                let _ = writeln!(
                    t,
                    "| {} | `{}` | {} | {} |",
                    if f.severity == Severity::Breaking {
                        "**breaking**"
                    } else {
                        f.severity.as_str()
                    },
                    f.id,
                    operation_label(f)
                        .map(|o| format!("`{}`", cell(&o)))
                        .unwrap_or_default(),
                    cell(&f.message)
                );
            }
            t
        };
        if !loud.is_empty() {
            out.push_str(&table(&loud));
        }
        if !quiet.is_empty() {
            if !loud.is_empty() {
                out.push('\n');
            }
            let _ = write!(
                out,
                "<details><summary>{} compatible change{}</summary>\n\n{}\n</details>\n",
                quiet.len(),
                if quiet.len() == 1 { "" } else { "s" },
                table(&quiet)
            );
        }
        out
    }

    /// The JSON of the CLI contract.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn operation_label(f: &Finding) -> Option<String> {
    match (&f.operation, &f.operation_id) {
        (Some(op), Some(id)) => Some(format!("{op} ({id})")),
        (Some(op), None) => Some(op.clone()),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    }
}

/// Escapes text for one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
