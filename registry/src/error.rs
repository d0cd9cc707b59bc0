//! The registry's error type: every way a registry operation can be refused.
//!
//! The admin API turns these into problem+json in exactly one place (`admin::error`).

use crate::store::StoreError;
use gatehouse_policies::diff::Report;
use gatehouse_policies::lint::LintReport;
use gatehouse_policies::openapi::SpecError;
use gatehouse_policies::validate::CompileError;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("missing or invalid admin token")]
    Unauthenticated,
    #[error("role `{role}` may not {action}")]
    Forbidden { role: String, action: String },
    #[error("{entity} `{key}` does not exist")]
    NotFound { entity: &'static str, key: String },
    #[error("{entity} `{key}` already exists")]
    Duplicate { entity: &'static str, key: String },
    #[error("`{field}` is invalid: {message}")]
    Invalid { field: String, message: String },
    #[error("the request body is not valid JSON for this operation: {message}")]
    MalformedBody { message: String },
    #[error("the request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("`{parameter}` is invalid: {message}")]
    BadQuery { parameter: String, message: String },
    #[error("the spec is invalid: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error(
        "version `{version}` of `{api}` is {from}; it cannot become {to} (the lifecycle only moves forward: draft → published → deprecated → retired)"
    )]
    Transition {
        api: String,
        version: String,
        from: String,
        to: String,
    },
    #[error("{message}")]
    Conflict { message: String },
    /// The publish gate's lint refused the spec: a rule of severity error failed.
    #[error(
        "`{api}@{version}` fails {} governance rule(s) of severity error; fix them and register it again",
        report.summary.error
    )]
    LintFailed {
        api: String,
        version: String,
        /// Boxed: a report is large, and errors travel by value.
        report: Box<LintReport>,
    },
    /// The publish gate's compatibility check refused the spec: it breaks the latest
    /// published (or deprecated) version of the same major.
    #[error(
        "`{api}@{version}` breaks `{api}@{against}` (same major {major}) with {} breaking change(s); release it as a new major, or an admin may force it with a reason",
        report.summary.breaking
    )]
    BreakingChange {
        api: String,
        version: String,
        against: String,
        major: u64,
        report: Box<Report>,
    },
    /// `force` was asked for without a reason for the change log.
    #[error("forcing {what} needs a `reason`; it is recorded in the change log")]
    ReasonRequired { what: Forced },
    /// A deprecation's sunset is closer than the API's minimum notice.
    #[error(
        "`{api}@{version}` cannot be deprecated with a sunset of {sunset}: the API's minimum notice is {notice_days} days, so the sunset must be {earliest} or later"
    )]
    SunsetTooSoon {
        api: String,
        version: String,
        sunset: Instant,
        earliest: Instant,
        notice_days: u32,
    },
    /// A newer major is published, so a deprecation must name the successor.
    #[error(
        "`{api}@{version}` cannot be deprecated without a successor: `{api}@{newer}` is published in a newer major; name it (or another newer version) as `successor`"
    )]
    SuccessorRequired {
        api: String,
        version: String,
        newer: String,
    },
    /// A version may not be retired before its sunset.
    #[error(
        "`{api}@{version}` cannot be retired before its sunset ({sunset}); consumers were promised it answers until then"
    )]
    RetireBeforeSunset {
        api: String,
        version: String,
        sunset: Instant,
    },
    /// A version without a sunset may not be retired before the API's minimum notice has
    /// passed since its deprecation.
    #[error(
        "`{api}@{version}` has no sunset and was deprecated on {deprecated_at}; with the API's minimum notice of {notice_days} days it cannot be retired before {not_before}"
    )]
    RetireBeforeNotice {
        api: String,
        version: String,
        deprecated_at: Instant,
        not_before: Instant,
        notice_days: u32,
    },
    /// An entity already has a system of record, declared by another API.
    #[error(
        "entity `{entity}` already has a system of record: `{system}`, declared by API `{api}`; one entity has one authoritative system, so remove it from `{api}` first"
    )]
    SystemOfRecordClaimed {
        entity: String,
        system: String,
        api: String,
    },
    /// The spec parses, but some of its schemas cannot be compiled into validators.
    #[error(
        "the spec has {} schema(s) the gateway cannot compile into validators; first: {}",
        errors.len(),
        errors.first().map(ToString::to_string).unwrap_or_default()
    )]
    InvalidSchemas { errors: Vec<CompileError> },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { entity, key } => RegistryError::Duplicate { entity, key },
            StoreError::NotFound { entity, key } => RegistryError::NotFound { entity, key },
            StoreError::SystemOfRecordClaimed {
                entity,
                system,
                api,
            } => RegistryError::SystemOfRecordClaimed {
                entity,
                system,
                api,
            },
            other => RegistryError::Store(other),
        }
    }
}

/// What an admin may force past a refusal, with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// Registering a version that breaks its major (`POST …/versions?force=true`).
    BreakingChange,
    /// Deprecating with a short notice or without a required successor.
    Deprecation,
    /// Retiring before the sunset (or the notice).
    Retirement,
}

impl std::fmt::Display for Forced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Forced::BreakingChange => "a breaking change",
            Forced::Deprecation => "a deprecation past the lifecycle rules",
            Forced::Retirement => "a retirement before the sunset",
        })
    }
}

/// A point in time shown in an error message: RFC 3339, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant(pub OffsetDateTime);

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.replace_nanosecond(0).unwrap_or(self.0);
        match t.format(&time::format_description::well_known::Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{t}"),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
