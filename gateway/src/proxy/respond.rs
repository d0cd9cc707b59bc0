//! The one place where the gateway's own refusals and upstream failures become HTTP answers:
//! status, `application/problem+json` body (RFC 9457, `instance` = the request id) and the
//! headers that go with them (`Allow`, `Cache-Control`, `Retry-After`, lifecycle headers).
//!
//! **Invariant:** no other module builds a problem body for the proxy, and no text from an
//! upstream error (addresses, OS messages) ever reaches a client.

use super::route::Refusal;
use crate::metrics::UpstreamErrorKind;
use bytes::Bytes;
use gatehouse_policies::problem::{self, Problem, ProblemKind};
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

/// Keeps echoed client input short in details.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
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
                    format!("there is no API `{}`", clip(api)),
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
                            clip(rest)
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
