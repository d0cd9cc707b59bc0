//! The rule catalogue with its default severities, and the YAML ruleset file that
//! overrides them per rule (a severity or `off`).
//!
//! ```yaml
//! rules:
//!   operation-summary: error
//!   no-unused-components: off
//! ```
//!
//! Unknown rule ids and unknown keys are refused: a typo must not silently turn a rule off.

use crate::document::{self, Limits, LoadError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How much a failed rule matters. Ordered: `Info < Warning < Error`; an error fails
/// `gatehouse spec lint` and refuses a publish with 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LintSeverity {
    Info,
    Warning,
    Error,
}

impl LintSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            LintSeverity::Info => "info",
            LintSeverity::Warning => "warning",
            LintSeverity::Error => "error",
        }
    }
}

/// One rule of the built-in set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub default: LintSeverity,
    /// What the rule asks, in one line.
    pub summary: &'static str,
    /// Why a governance team wants it at that severity.
    pub why: &'static str,
}

pub const OPERATION_ID_PRESENT: &str = "operation-id-present";
pub const OPERATION_ID_UNIQUE: &str = "operation-id-unique";
pub const OPERATION_SUMMARY: &str = "operation-summary";
pub const OPERATION_4XX_RESPONSE: &str = "operation-4xx-response";
pub const ERROR_RESPONSES_PROBLEM_JSON: &str = "error-responses-problem-json";
pub const INFO_VERSION_SEMVER: &str = "info-version-semver";
pub const INFO_CONTACT: &str = "info-contact";
pub const OPERATION_SECURITY_DEFINED: &str = "operation-security-defined";
pub const NO_UNUSED_COMPONENTS: &str = "no-unused-components";
pub const PATH_SEGMENTS_KEBAB_CASE: &str = "path-segments-kebab-case";
pub const COLLECTION_PAGINATED: &str = "collection-paginated";
pub const RATE_LIMIT_429: &str = "rate-limit-429";

/// The built-in ruleset, in report order.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: OPERATION_ID_PRESENT,
        default: LintSeverity::Error,
        summary: "Every operation has an `operationId`.",
        why: "Access records, impact reports and generated clients name operations by it.",
    },
    RuleInfo {
        id: OPERATION_ID_UNIQUE,
        default: LintSeverity::Error,
        summary: "No two operations share an `operationId`.",
        why: "A duplicate makes the access log and the diff's impact report ambiguous and breaks client generators.",
    },
    RuleInfo {
        id: OPERATION_SUMMARY,
        default: LintSeverity::Warning,
        summary: "Every operation has a non-blank `summary`.",
        why: "The catalog and the change reports show it; its absence hurts readers, not callers.",
    },
    RuleInfo {
        id: OPERATION_4XX_RESPONSE,
        default: LintSeverity::Error,
        summary: "Every operation documents at least one 4xx response (a code or `4XX`).",
        why: "Consumers must know how a refusal looks; the gateway itself answers 400, 401, 403 and 404.",
    },
    RuleInfo {
        id: ERROR_RESPONSES_PROBLEM_JSON,
        default: LintSeverity::Error,
        summary: "Every 4xx, 5xx and `default` response offers `application/problem+json`.",
        why: "Gateway refusals are RFC 9457 problem details; upstream errors must look the same so clients handle one shape.",
    },
    RuleInfo {
        id: INFO_VERSION_SEMVER,
        default: LintSeverity::Error,
        summary: "`info.version` is written as plain semantic versioning (`2.1.0`).",
        why: "The registry derives the major version, and so the route and the compatibility rules, from it.",
    },
    RuleInfo {
        id: INFO_CONTACT,
        default: LintSeverity::Error,
        summary: "`info.contact` names an email or a URL.",
        why: "Consumers and auditors need someone to reach about the API; a name alone cannot be reached.",
    },
    RuleInfo {
        id: OPERATION_SECURITY_DEFINED,
        default: LintSeverity::Error,
        summary: "Every operation has a non-empty effective `security`, with no anonymous `{}` alternative.",
        why: "The gateway authorizes by the spec: an operation without security would be public by accident.",
    },
    RuleInfo {
        id: NO_UNUSED_COMPONENTS,
        default: LintSeverity::Warning,
        summary: "Every component (schema, parameter, response, request body, example, header, security scheme) is used.",
        why: "Dead components mislead readers and hide drift; they do not affect callers.",
    },
    RuleInfo {
        id: PATH_SEGMENTS_KEBAB_CASE,
        default: LintSeverity::Error,
        summary: "Static path segments are kebab-case (`/batch-inquiries`), lower case letters and digits.",
        why: "Paths cannot be fixed later without a breaking change, so consistency is enforced at the first publish.",
    },
    RuleInfo {
        id: COLLECTION_PAGINATED,
        default: LintSeverity::Error,
        summary: "A GET whose 200 response is a collection is paginated (see docs/lint-rules.md).",
        why: "An unbounded list grows with the business until it times out through the gateway.",
    },
    RuleInfo {
        id: RATE_LIMIT_429,
        default: LintSeverity::Error,
        summary: "When the API is sold under a plan, every operation documents `429`.",
        why: "The gateway will answer 429 with `Retry-After`; the contract must say so. Checked only with a plan.",
    },
];

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// What a ruleset file may say about one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    Error,
    Warning,
    Info,
    Off,
}

impl Setting {
    fn severity(self) -> Option<LintSeverity> {
        match self {
            Setting::Error => Some(LintSeverity::Error),
            Setting::Warning => Some(LintSeverity::Warning),
            Setting::Info => Some(LintSeverity::Info),
            Setting::Off => None,
        }
    }
}

/// The ruleset file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesetFile {
    #[serde(default)]
    rules: BTreeMap<String, Setting>,
}

/// Why a ruleset file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesetError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "the ruleset is not valid: {reason} (expected `rules: {{<rule-id>: error|warning|info|off}}`)"
    )]
    Shape { reason: String },
    #[error("the ruleset names rule `{rule}`, which does not exist")]
    UnknownRule { rule: String },
}

/// The built-in rules with their severities, possibly overridden.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    overrides: BTreeMap<&'static str, Setting>,
}

impl Ruleset {
    /// The built-in ruleset with its default severities.
    pub fn builtin() -> Ruleset {
        Ruleset::default()
    }

    /// The built-in ruleset overridden by a YAML (or JSON) ruleset file.
    pub fn from_yaml(bytes: &[u8]) -> Result<Ruleset, RulesetError> {
        // A ruleset is small; tight limits keep a hostile file cheap to refuse.
        let limits = Limits {
            max_bytes: 256 * 1024,
            max_depth: 16,
            max_nodes: 10_000,
        };
        let tree = document::load(bytes, &limits)?;
        let file: RulesetFile = serde_json::from_value(tree).map_err(|e| RulesetError::Shape {
            reason: e.to_string(),
        })?;
        let mut set = Ruleset::builtin();
        for (id, setting) in file.rules {
            set.set(&id, setting)?;
        }
        Ok(set)
    }

    /// Overrides one rule.
    pub fn set(&mut self, id: &str, setting: Setting) -> Result<(), RulesetError> {
        let rule = rule(id).ok_or_else(|| RulesetError::UnknownRule {
            rule: id.to_owned(),
        })?;
        self.overrides.insert(rule.id, setting);
        Ok(())
    }

    /// The severity a rule runs at, or `None` when it is off.
    pub fn severity(&self, id: &str) -> Option<LintSeverity> {
        match self.overrides.get(id) {
            Some(setting) => setting.severity(),
            None => rule(id).map(|r| r.default),
        }
    }
}
