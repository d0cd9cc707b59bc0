//! The one place where the gateway's own refusals and upstream failures become HTTP answers:
//! status, `application/problem+json` body (RFC 9457, `instance` = the request id) and the
//! headers that go with them (`Allow`, `Cache-Control`, `Retry-After`, lifecycle headers).
//!
//! **Invariant:** no other module builds a problem body for the proxy, and no text from an
//! upstream error (addresses, OS messages) ever reaches a client.

use super::route::Refusal;
use crate::metrics::UpstreamErrorKind;
use bytes::Bytes;
use gatehouse_policies::problem::{self, FieldError, Problem, ProblemKind};
use gatehouse_policies::ratelimit::Exceeded;
use gatehouse_policies::redact::clip;
use gatehouse_policies::routing::MajorError;
use gatehouse_registry::snapshot::MajorEntry;
use std::time::SystemTime;

/// Why the gateway answers by itself instead of relaying an upstream answer.
#[derive(Debug, Clone)]
pub enum GatewayError {
    Route(Refusal),
    /// The version has no upstream registered, or none of its targets has an address.
    NoUpstream {
        api: String,
        major: u64,
    },
    /// Every attempt at the upstream failed.
    Upstream {
        kind: UpstreamErrorKind,
        api: String,
        major: u64,
    },
    /// The operation is mocked but defines no response to mock.
    NoMockResponse {
        operation: String,
    },
    /// 400, 411, 413 or 415: the request does not match the operation (`validate`).
    Validation(super::validate::Refusal),
    /// 502: the upstream answered `status` with a response that does not match the
    /// operation, and the API enforces response validation.
    NonConformingResponse {
        status: u16,
        errors: Vec<FieldError>,
    },
    /// 401/403: the credential, the subscription or the operation's scopes.
    Identity(gatehouse_policies::identity::Refusal),
    /// A rate limit or quota of the consumer's plan is exhausted (429).
    RateLimited {
        exceeded: Exceeded,
        /// The policy that refused, as named in the headers (`plan`, `plan/op`, `plan/quota`).
        policy_name: String,
        retry_after_s: u64,
        /// The `RateLimit-Policy` and `RateLimit` values.
        policy_field: String,
        limit_field: String,
    },
    /// Cluster-wide limits are unreachable and the plan is fail-closed (503).
    RateLimitUnavailable,
    /// A bug or an unexpected state in the gateway.
    Internal,
}

/// A complete answer written by the gateway.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The problem this answer is (refusals and failures; `None` for mock answers): its
    /// `type` is the reason the access record gives.
    pub problem: Option<ProblemKind>,
}

fn majors_list(available: &[u64]) -> String {
    if available.is_empty() {
        return "none".into();
    }
    available
        .iter()
        .map(|m| format!("v{m}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl GatewayError {
    /// The answer for this error, for the request `request_id`, at `now`.
    pub fn reply(&self, request_id: &str, now: SystemTime) -> Reply {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let mut lifecycle_of: Option<&MajorEntry> = None;
        let problem = match self {
            GatewayError::Route(r) => match r {
                Refusal::BadPath(e) => Problem::new(ProblemKind::BadRequest, e.to_string()),
                Refusal::NoApi => Problem::new(
                    ProblemKind::UnknownApi,
                    "the path names no API: use /{api}/v{major}/{path}",
                ),
                Refusal::UnknownApi { api } => Problem::new(
                    ProblemKind::UnknownApi,
                    format!("there is no API `{}`", clip(api, 80)),
                ),
                Refusal::Major { error, available } => match error {
                    MajorError::Missing { .. } => {
                        Problem::new(ProblemKind::UnknownVersion, error.to_string())
                            .with_extension("available_majors", available.clone())
                    }
                    MajorError::BadHeader { .. } | MajorError::Disagree { .. } => {
                        Problem::new(ProblemKind::BadRequest, error.to_string())
                    }
                },
                Refusal::UnknownMajor {
                    api,
                    major,
                    available,
                } => Problem::new(
                    ProblemKind::UnknownVersion,
                    format!(
                        "{api} has no major version {major}; available: {}",
                        majors_list(available)
                    ),
                )
                .with_extension("available_majors", available.clone()),
                Refusal::Gone { major, reason } => {
                    lifecycle_of = Some(major);
                    headers.push(("cache-control", reason.cache_control().to_owned()));
                    if let Some(secs) = reason.retry_after(now) {
                        headers.push(("retry-after", secs.to_string()));
                    }
                    let mut p = Problem::new(
                        reason.kind(),
                        reason.detail(&major.api, &major.version, major.successor.as_deref()),
                    );
                    if let Some(s) = &major.successor {
                        p = p.with_extension("successor", s.clone());
                    }
                    p
                }
                Refusal::UnknownPath { major, rest } => {
                    lifecycle_of = Some(major);
                    Problem::new(
                        ProblemKind::UnknownPath,
                        format!(
                            "{} v{} ({}) has no operation at {}",
                            major.api,
                            major.major,
                            major.version,
                            clip(rest, 80)
                        ),
                    )
                }
                Refusal::MethodNotAllowed { major, allow } => {
                    lifecycle_of = Some(major);
                    headers.push(("allow", allow.clone()));
                    Problem::new(
                        ProblemKind::MethodNotAllowed,
                        format!("this path allows {allow}"),
                    )
                }
            },
            GatewayError::NoUpstream { api, major } => Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("{api} v{major} has no reachable upstream"),
            ),
            GatewayError::Upstream { kind, api, major } => {
                let (k, what) = match kind {
                    UpstreamErrorKind::ConnectRefused
                    | UpstreamErrorKind::ConnectOther
                    | UpstreamErrorKind::NoTarget => {
                        (ProblemKind::UpstreamUnavailable, "could not be reached")
                    }
                    UpstreamErrorKind::ConnectTimeout => (
                        ProblemKind::UpstreamUnavailable,
                        "did not accept a connection in time",
                    ),
                    UpstreamErrorKind::ReadTimeout | UpstreamErrorKind::WriteTimeout => {
                        (ProblemKind::UpstreamTimeout, "did not answer in time")
                    }
                    UpstreamErrorKind::Protocol => {
                        (ProblemKind::UpstreamError, "failed while answering")
                    }
                };
                Problem::new(k, format!("the upstream of {api} v{major} {what}"))
            }
            GatewayError::NoMockResponse { operation } => Problem::new(
                ProblemKind::UpstreamError,
                format!("the mock of {operation} has no response to answer with"),
            ),
            GatewayError::Validation(refusal) => refusal.problem(),
            // The violations are the upstream's, echoing no more of its body than the
            // client would have received without the check.
            GatewayError::NonConformingResponse { status, errors } => Problem::new(
                ProblemKind::ResponseValidationFailed,
                format!(
                    "the upstream answered {status} with a response that does not match the \
                     API's contract ({} violation(s)); it was withheld",
                    errors.len()
                ),
            )
            .with_errors(errors.clone()),
            GatewayError::Identity(refusal) => {
                if let Some(challenge) = refusal.www_authenticate() {
                    headers.push(("www-authenticate", challenge));
                }
                headers.push(("cache-control", "no-store".to_owned()));
                refusal.problem()
            }
            GatewayError::RateLimited {
                exceeded,
                policy_name,
                retry_after_s,
                policy_field,
                limit_field,
            } => {
                headers.push(("ratelimit-policy", policy_field.clone()));
                headers.push(("ratelimit", limit_field.clone()));
                headers.push(("retry-after", retry_after_s.to_string()));
                headers.push(("cache-control", "no-store".to_owned()));
                let (kind, what) = match exceeded {
                    Exceeded::Rate => (ProblemKind::RateLimited, "rate limit"),
                    Exceeded::Quota => (ProblemKind::QuotaExhausted, "quota"),
                };
                Problem::new(
                    kind,
                    format!(
                        "the {what} of policy \"{policy_name}\" is exhausted; retry in {retry_after_s} s"
                    ),
                )
                .with_extension("policy", policy_name.clone())
                .with_extension("retry_after", *retry_after_s)
            }
            GatewayError::RateLimitUnavailable => {
                headers.push(("retry-after", "1".to_owned()));
                headers.push(("cache-control", "no-store".to_owned()));
                Problem::new(
                    ProblemKind::RateLimitUnavailable,
                    "rate limits cannot be checked right now and this plan does not admit \
                     requests unchecked; retry shortly",
                )
            }
            GatewayError::Internal => Problem::new(
                ProblemKind::Internal,
                "the gateway failed to handle the request",
            ),
        };
        if let Some(m) = lifecycle_of {
            headers.extend(m.lifecycle_headers.iter().cloned());
        }
        let problem = problem.with_instance(request_id);
        Reply {
            status: problem.status,
            headers,
            content_type: Some(problem::CONTENT_TYPE.to_owned()),
            body: Bytes::from(problem.to_json()),
            problem: Some(problem.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_rate_refusal_is_429_naming_the_policy_with_retry_after_and_no_store() {
        let e = GatewayError::RateLimited {
            exceeded: Exceeded::Rate,
            policy_name: "partner/submitOrder".into(),
            retry_after_s: 2,
            policy_field: r#""partner/submitOrder";q=2;w=1"#.into(),
            limit_field: r#""partner/submitOrder";r=0;t=2"#.into(),
        };
        let r = e.reply("req-1", SystemTime::UNIX_EPOCH);
        assert_eq!(r.status, 429);
        assert_eq!(header(&r, "retry-after"), Some("2"));
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(
            header(&r, "ratelimit"),
            Some(r#""partner/submitOrder";r=0;t=2"#)
        );
        assert!(header(&r, "ratelimit-policy").is_some());
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "urn:gatehouse:problem:rate-limited");
        assert_eq!(body["policy"], "partner/submitOrder");
        assert_eq!(body["instance"], "req-1");
        assert_eq!(r.content_type.as_deref(), Some("application/problem+json"));
    }

    #[test]
    fn an_exhausted_quota_and_unreachable_limits_have_their_own_types() {
        let e = GatewayError::RateLimited {
            exceeded: Exceeded::Quota,
            policy_name: "partner/quota".into(),
            retry_after_s: 3600,
            policy_field: String::new(),
            limit_field: String::new(),
        };
        let r = e.reply("req-2", SystemTime::UNIX_EPOCH);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (r.status, body["type"].as_str()),
            (429, Some("urn:gatehouse:problem:quota-exhausted"))
        );
        let r = GatewayError::RateLimitUnavailable.reply("req-3", SystemTime::UNIX_EPOCH);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(body["type"], "urn:gatehouse:problem:rate-limit-unavailable");
        assert_eq!(header(&r, "retry-after"), Some("1"));
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
    }
}
