//! RFC 9457 problem details: the one shape of every refusal, gateway and admin API alike.
//!
//! Each [`ProblemKind`] has a stable `type` URI (`urn:gatehouse:problem:<slug>`), a
//! default status and a title. Servers turn their typed errors into a [`Problem`] in
//! exactly one place each and serialise it with [`Problem::to_json`].

use serde::Serialize;
use serde_json::{Map, Value};

/// The media type of every refusal.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of refusal Gatehouse makes. The slug of each is part of the public interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    InsufficientScope,
    NotFound,
    UnknownApi,
    UnknownVersion,
    UnknownPath,
    MethodNotAllowed,
    Conflict,
    BreakingChange,
    Gone,
    Brownout,
    PayloadTooLarge,
    UnsupportedMediaType,
    LengthRequired,
    InvalidSpec,
    LintFailed,
    Unprocessable,
    RateLimited,
    QuotaExhausted,
    Internal,
    UpstreamError,
    UpstreamUnavailable,
    UpstreamTimeout,
    ResponseValidationFailed,
    StoreUnavailable,
    /// Cluster-wide limits are unreachable and the plan says to refuse (fail-closed).
    RateLimitUnavailable,
}

impl ProblemKind {
    /// The stable slug; the `type` URI is `urn:gatehouse:problem:<slug>`.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::ValidationFailed => "validation-failed",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::InsufficientScope => "insufficient-scope",
            ProblemKind::NotFound => "not-found",
            ProblemKind::UnknownApi => "unknown-api",
            ProblemKind::UnknownVersion => "unknown-version",
            ProblemKind::UnknownPath => "unknown-path",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::Conflict => "conflict",
            ProblemKind::BreakingChange => "breaking-change",
            ProblemKind::Gone => "version-retired",
            ProblemKind::Brownout => "version-brownout",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::LengthRequired => "length-required",
            ProblemKind::InvalidSpec => "invalid-spec",
            ProblemKind::LintFailed => "lint-failed",
            ProblemKind::Unprocessable => "unprocessable",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::QuotaExhausted => "quota-exhausted",
            ProblemKind::Internal => "internal",
            ProblemKind::UpstreamError => "upstream-error",
            ProblemKind::UpstreamUnavailable => "upstream-unavailable",
            ProblemKind::UpstreamTimeout => "upstream-timeout",
            ProblemKind::ResponseValidationFailed => "response-validation-failed",
            ProblemKind::StoreUnavailable => "store-unavailable",
            ProblemKind::RateLimitUnavailable => "rate-limit-unavailable",
        }
    }

    /// The `type` URI.
    pub fn type_uri(self) -> String {
        format!("urn:gatehouse:problem:{}", self.slug())
    }

    /// The HTTP status this kind answers with.
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::BadRequest | ProblemKind::ValidationFailed => 400,
            ProblemKind::Unauthorized => 401,
            ProblemKind::Forbidden | ProblemKind::InsufficientScope => 403,
            ProblemKind::NotFound
            | ProblemKind::UnknownApi
            | ProblemKind::UnknownVersion
            | ProblemKind::UnknownPath => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::Conflict | ProblemKind::BreakingChange => 409,
            ProblemKind::Gone | ProblemKind::Brownout => 410,
            ProblemKind::LengthRequired => 411,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::UnsupportedMediaType => 415,
            ProblemKind::InvalidSpec | ProblemKind::LintFailed | ProblemKind::Unprocessable => 422,
            ProblemKind::RateLimited | ProblemKind::QuotaExhausted => 429,
            ProblemKind::Internal => 500,
            ProblemKind::UpstreamError | ProblemKind::ResponseValidationFailed => 502,
            ProblemKind::UpstreamUnavailable
            | ProblemKind::StoreUnavailable
            | ProblemKind::RateLimitUnavailable => 503,
            ProblemKind::UpstreamTimeout => 504,
        }
    }

    /// A short, human-readable summary that does not change from occurrence to occurrence.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::ValidationFailed => "Request does not match the API's contract",
            ProblemKind::Unauthorized => "Missing or invalid credentials",
            ProblemKind::Forbidden => "Not allowed",
            ProblemKind::InsufficientScope => "Insufficient scope",
            ProblemKind::NotFound => "Not found",
            ProblemKind::UnknownApi => "Unknown API",
            ProblemKind::UnknownVersion => "Unknown API version",
            ProblemKind::UnknownPath => "No such operation",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Conflict => "Conflict",
            ProblemKind::BreakingChange => "Breaking change",
            ProblemKind::Gone => "API version retired",
            ProblemKind::Brownout => "API version in a scheduled brownout",
            ProblemKind::PayloadTooLarge => "Request body too large",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::LengthRequired => "Content-Length required",
            ProblemKind::InvalidSpec => "Invalid OpenAPI document",
            ProblemKind::LintFailed => "Spec fails the governance ruleset",
            ProblemKind::Unprocessable => "Unprocessable request",
            ProblemKind::RateLimited => "Rate limit exceeded",
            ProblemKind::QuotaExhausted => "Quota exhausted",
            ProblemKind::Internal => "Internal error",
            ProblemKind::UpstreamError => "Upstream error",
            ProblemKind::UpstreamUnavailable => "Upstream unavailable",
            ProblemKind::UpstreamTimeout => "Upstream timed out",
            ProblemKind::ResponseValidationFailed => {
                "Upstream response does not match the contract"
            }
            ProblemKind::StoreUnavailable => "Registry store unavailable",
            ProblemKind::RateLimitUnavailable => "Rate limits unavailable",
        }
    }
}

/// One violation inside a validation refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where: `body`, `path`, `query`, `header`, `cookie`, or another part of the request.
    #[serde(rename = "in")]
    pub location: String,
    /// A JSON pointer into the body, or the parameter's name.
    pub pointer: String,
    pub message: String,
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub status: u16,
    pub detail: String,
    /// The request id of the refused request (gateway), or the request path (admin API).
    pub instance: Option<String>,
    pub errors: Vec<FieldError>,
    /// Extension members, e.g. `available_majors` or `successor`.
    pub extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.status(),
            detail: detail.into(),
            instance: None,
            errors: Vec::new(),
            extensions: Map::new(),
        }
    }

    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    #[must_use]
    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body.
    pub fn to_value(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), self.kind.type_uri().into());
        body.insert("title".into(), self.kind.title().into());
        body.insert("status".into(), self.status.into());
        body.insert("detail".into(), self.detail.clone().into());
        if let Some(i) = &self.instance {
            body.insert("instance".into(), i.clone().into());
        }
        if !self.errors.is_empty() {
            body.insert(
                "errors".into(),
                serde_json::to_value(&self.errors).unwrap_or(Value::Null),
            );
        }
        for (k, v) in &self.extensions {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }

    /// The serialised body, ready to send with [`CONTENT_TYPE`].
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_9457_members() {
        let p = Problem::new(ProblemKind::ValidationFailed, "1 error")
            .with_instance("req-1")
            .with_errors(vec![FieldError {
                location: "body".into(),
                pointer: "/lines/3/sku".into(),
                message: "does not match pattern".into(),
            }])
            .with_extension("type", "ignored: members are not overridden");
        let v = p.to_value();
        assert_eq!(v["type"], "urn:gatehouse:problem:validation-failed");
        assert_eq!(v["status"], 400);
        assert_eq!(v["instance"], "req-1");
        assert_eq!(v["errors"][0]["in"], "body");
        assert_eq!(v["errors"][0]["pointer"], "/lines/3/sku");
    }

    #[test]
    fn slugs_are_unique() {
        use std::collections::HashSet;
        let kinds = [
            ProblemKind::BadRequest,
            ProblemKind::ValidationFailed,
            ProblemKind::Unauthorized,
            ProblemKind::Forbidden,
            ProblemKind::InsufficientScope,
            ProblemKind::NotFound,
            ProblemKind::UnknownApi,
            ProblemKind::UnknownVersion,
            ProblemKind::UnknownPath,
            ProblemKind::MethodNotAllowed,
            ProblemKind::Conflict,
            ProblemKind::BreakingChange,
            ProblemKind::Gone,
            ProblemKind::Brownout,
            ProblemKind::PayloadTooLarge,
            ProblemKind::UnsupportedMediaType,
            ProblemKind::LengthRequired,
            ProblemKind::InvalidSpec,
            ProblemKind::LintFailed,
            ProblemKind::Unprocessable,
            ProblemKind::RateLimited,
            ProblemKind::QuotaExhausted,
            ProblemKind::Internal,
            ProblemKind::UpstreamError,
            ProblemKind::UpstreamUnavailable,
            ProblemKind::UpstreamTimeout,
            ProblemKind::ResponseValidationFailed,
            ProblemKind::StoreUnavailable,
            ProblemKind::RateLimitUnavailable,
        ];
        let slugs: HashSet<_> = kinds.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), kinds.len());
    }
}
