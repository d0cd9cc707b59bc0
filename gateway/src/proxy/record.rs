//! The access record of one request, made in the `logging` hook from what the other hooks
//! left in the [`RequestCtx`]. Pure bookkeeping: no I/O, a few allocations.
//!
//! **Invariant:** no secret is copied into a record. Headers are never recorded (except the
//! user agent); credentials appear only as the key id or token subject that identity put in
//! the context; the query string keeps parameter names but not the values of parameters the
//! spec marks `x-sensitive` or whose names look like credentials.

use super::RequestCtx;
use crate::metrics::Outcome;
use gatehouse_policies::lifecycle::Stage;
use gatehouse_policies::problem::ProblemKind;
use gatehouse_policies::redact;
use gatehouse_registry::access::{AccessFlags, AccessRecord, Decision};
use gatehouse_registry::model::{from_unix_ms, unix_ms};
use pingora::proxy::Session;
use std::time::Duration;
use time::OffsetDateTime;

/// Longest raw path (with query) kept in a record.
const MAX_PATH: usize = 2_048;
/// Longest user agent kept in a record.
const MAX_USER_AGENT: usize = 256;

/// The decision an outcome stands for.
pub fn decision(outcome: Outcome) -> Decision {
    match outcome {
        Outcome::Proxied | Outcome::Mocked => Decision::Allowed,
        Outcome::Refused => Decision::Refused,
        Outcome::UpstreamFailed | Outcome::Aborted => Decision::Failed,
    }
}

/// Builds the record; takes the request id out of the context (the request is over).
pub fn access_record(
    session: &Session,
    ctx: &mut RequestCtx,
    status: u16,
    outcome: Outcome,
    elapsed: Duration,
) -> AccessRecord {
    let req = session.req_header();
    let operation = ctx.routed.as_ref().and_then(|r| r.operation());
    let template = match operation {
        Some(op) => Some(op.template.clone()),
        None => ctx
            .routed
            .as_ref()
            .and_then(|r| r.major.paths.get(r.path))
            .map(|p| p.template.clone()),
    };
    let mut path = req.uri.path().to_owned();
    if let Some(query) = req.uri.query() {
        path.push('?');
        path.push_str(&redact::redact_query(query, |name| {
            operation.is_some_and(|op| op.is_sensitive_query(name))
        }));
    }
    let mut flags = ctx.access_flags;
    if ctx
        .major
        .as_ref()
        .is_some_and(|m| m.lifecycle.stage == Stage::Deprecated)
    {
        flags.insert(AccessFlags::DEPRECATED);
    }
    if ctx.reason == Some(ProblemKind::Brownout) {
        flags.insert(AccessFlags::BROWNOUT);
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    AccessRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: from_unix_ms(unix_ms(OffsetDateTime::from(ctx.started_at))),
        // Empty only when the request failed before it was read (a malformed request line).
        request_id: match std::mem::take(&mut ctx.request_id) {
            id if id.is_empty() => super::headers::new_request_id(),
            id => id,
        },
        trace_id: ctx.trace.as_ref().map(|t| t.trace_id().to_owned()),
        consumer: ctx.consumer().map(str::to_owned),
        key_id: ctx.key_id.clone(),
        subject: ctx.subject.clone(),
        api: ctx.major.as_ref().map(|m| m.api.clone()),
        major: ctx.major.as_ref().map(|m| m.major),
        version: ctx.major.as_ref().map(|m| m.version.clone()),
        operation: operation.map(|op| op.name.clone()),
        method: req.method.as_str().to_owned(),
        path_template: template,
        path: redact::clip(&path, MAX_PATH),
        status,
        decision: decision(outcome),
        reason: ctx.reason.map(ProblemKind::type_uri),
        duration_us: micros(elapsed),
        upstream_us: micros(ctx.upstream_time),
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
        client_addr: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string()),
        user_agent: req
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| redact::clip(&String::from_utf8_lossy(v.as_bytes()), MAX_USER_AGENT)),
        flags,
    }
}
