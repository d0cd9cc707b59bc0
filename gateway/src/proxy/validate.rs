//! `validate`: request and response validation against the routed version's compiled
//! validators (compiled at snapshot time, never here), and the replay of a body read early.
//!
//! **Request** (from `request_filter`, before an upstream is chosen, so nothing of a refused
//! request reaches the upstream, not even its header):
//! 1. a `Content-Length` over the API's limit is 413 at once, the body left unread;
//! 2. a body whose `Content-Type` the operation does not accept is 415 at once, unread;
//! 3. for an operation that declares a request body, the body is read and buffered up to
//!    the limit (413 the moment it is passed, chunked bodies included), then parameters and
//!    body are validated together (400 listing every violation, bounded);
//! 4. operations without a request body are validated on their parameters only, and any
//!    body streams through as usual.
//!
//! **Replay.** Once `request_filter` has read the body, Pingora 0.9 forwards to the upstream
//! only what its retry buffer holds (its 64 KiB `FixedBuffer`, unusable once more than that
//! was written to it). So the retry buffer is switched on just before the last 64 KiB of a
//! `Content-Length` body are read (before the first read for small and chunked bodies), and
//! [`replay`] swaps the buffered tail Pingora sends for the whole body: the upstream receives
//! the exact bytes the client sent, on every attempt. A chunked body over 64 KiB cannot be
//! replayed that way and is answered 411 (send `Content-Length`) after it validated.
//!
//! **Response** (per API: `off`, `report`, `enforce`). `report` keeps the chunks (shared
//! `Bytes`, no copy) while they stream to the client and validates at the end: a metric, a
//! log line and [`ResponseVerdict`] in the context for the access record. `enforce` must
//! decide before anything is sent, so `response_filter` turns the header into an
//! informational one that the downstream session is told to ignore, keeps the real header,
//! swallows the body chunks, validates at the end, and [`release`] (first thing in
//! `logging`, the only async hook Pingora runs after the last body chunk) writes the real
//! response, or a 502 problem+json in its place. Bodyless responses (HEAD, 204, 304,
//! `Content-Length: 0`) are checked and reported, never replaced.

use super::respond::GatewayError;
use super::{Gateway, Reply, RequestCtx};
use crate::metrics::{Outcome, ResponseCheck};
use bytes::{Bytes, BytesMut};
use gatehouse_policies::openapi::Method;
use gatehouse_policies::problem::{FieldError, Problem, ProblemKind};
use gatehouse_policies::validate::{CompiledOperation, RequestParts, RequestRejection};
use gatehouse_registry::model::ResponseValidation;
use gatehouse_registry::snapshot::PathLookup;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::SystemTime;

/// What Pingora's retry buffer holds (`BODY_BUF_LIMIT` in pingora-core 0.9): the most a
/// replay can start from.
pub const REPLAY_WINDOW: usize = 64 * 1024;

/// The most of a response body the gateway buffers to validate it. A larger response is
/// relayed unchecked (`report`, or `enforce` with a `Content-Length` over it) and counted as
/// `unchecked`; a chunked one that grows past it under `enforce` is answered 502.
pub const RESPONSE_BUFFER_LIMIT: usize = 4 * 1024 * 1024;

/// The status of the informational header an `enforce` response hides behind until it is
/// validated (never sent: the downstream session ignores informational headers).
const HOLD_STATUS: u16 = 103;

/// Why validation refused a request. Each maps to one problem in `respond`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400, 413 or 415, from the compiled validator.
    Rejected(RequestRejection),
    /// 411: a valid chunked body too large for Pingora to replay (see the module docs).
    LengthRequired { replayable: usize },
    /// 400: the client stopped sending, or sent a malformed body framing.
    BodyUnreadable,
}

impl Refusal {
    /// The problem body (the caller adds the `instance`).
    pub fn problem(&self) -> Problem {
        match self {
            Refusal::Rejected(r) => r.to_problem(),
            Refusal::LengthRequired { replayable } => Problem::new(
                ProblemKind::LengthRequired,
                format!(
                    "a chunked request body over {} KiB cannot be forwarded after validation; \
                     send it with a Content-Length",
                    replayable / 1024
                ),
            ),
            Refusal::BodyUnreadable => Problem::new(
                ProblemKind::BadRequest,
                "the request body could not be read completely",
            ),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.problem().status
    }
}

/// The verdict on an upstream response, kept in the context for the access record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// It matches the operation's declared responses.
    Conforming,
    /// It does not (at most the API's error bound); `enforced`: replaced by a 502.
    Violations {
        errors: Vec<FieldError>,
        enforced: bool,
    },
    /// Not checked: the body was larger than [`RESPONSE_BUFFER_LIMIT`].
    TooLarge,
}

/// What validation keeps in the per-request context.
#[derive(Debug, Default)]
pub struct ValidationCtx {
    /// The request body read before choosing an upstream: replayed to every attempt.
    replay: Option<Bytes>,
    /// The attempt (`RequestCtx::attempts`) that last received the replay.
    replayed_at: usize,
    /// The client sent `Expect: 100-continue`, which was answered here: the upstream gets
    /// the whole body at once and must not see the expectation.
    drop_expect: bool,
    response: ResponseState,
    /// How the upstream response was judged; `None` when it was not checked (validation
    /// off for the API, a mocked answer, a refusal). For the access record (issue 8).
    pub response_verdict: Option<ResponseVerdict>,
}

/// The response check in progress.
#[derive(Debug, Default)]
enum ResponseState {
    #[default]
    Idle,
    /// `report`: the chunks as they went to the client.
    Collect(Collected),
    /// `enforce`: the real header, held with the body until validated.
    Hold {
        header: Box<ResponseHeader>,
        body: Collected,
    },
    /// `enforce`, validated: what [`release`] writes.
    Release(Box<Held>),
}

#[derive(Debug)]
enum Held {
    Original {
        header: Box<ResponseHeader>,
        body: Bytes,
    },
    Refused(Reply),
}

/// Body chunks of one response, shared with the stream (`Bytes` clones, no copy).
#[derive(Debug)]
struct Collected {
    status: u16,
    content_type: Option<String>,
    chunks: Gathered,
    over: bool,
}

impl Collected {
    fn new(status: u16, content_type: Option<String>) -> Self {
        Collected {
            status,
            content_type,
            chunks: Gathered::default(),
            over: false,
        }
    }

    fn push(&mut self, chunk: &Bytes) {
        if self.over || chunk.is_empty() {
            return;
        }
        if self.chunks.len + chunk.len() > RESPONSE_BUFFER_LIMIT {
            self.over = true;
            self.chunks = Gathered::default();
        } else {
            self.chunks.push(chunk.clone());
        }
    }

    fn body(&self) -> Bytes {
        self.chunks.joined()
    }
}

/// Chunks of one body, kept until they are needed as one buffer. Most bodies come in one
/// chunk, which is kept as it is: no vector, no copy.
#[derive(Debug, Default)]
struct Gathered {
    first: Option<Bytes>,
    more: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.more.push(chunk);
        }
    }

    /// One buffer: the single chunk shared, or every chunk copied into one.
    fn joined(&self) -> Bytes {
        match (&self.first, self.more.as_slice()) {
            (None, _) => Bytes::new(),
            (Some(one), []) => one.clone(),
            (Some(first), more) => {
                let mut all = BytesMut::with_capacity(self.len);
                all.extend_from_slice(first);
                for c in more {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        }
    }
}

fn header_str(h: &http::HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(h: &http::HeaderMap) -> Option<usize> {
    header_str(h, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

/// The routed operation's validator, when the API validates requests.
fn request_validator(ctx: &RequestCtx) -> Option<Arc<CompiledOperation>> {
    let routed = ctx.routed.as_ref()?;
    if !routed.major.validation.request {
        return None;
    }
    routed.operation()?.validator.clone()
}

/// Validates the request (see the module docs). On a refusal the connection is marked to
/// close whenever part of the body is left unread, so it is never parsed as a request.
pub(super) async fn check_request(
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), Refusal> {
    let Some(op) = request_validator(ctx) else {
        return Ok(());
    };
    let limit = op.max_body_bytes();
    let has_body = !session.is_body_empty();
    let (declared_len, chunked, content_type_ok, expect_continue) = {
        let h = &session.req_header().headers;
        let ct = header_str(h, http::header::CONTENT_TYPE);
        (
            content_length(h),
            content_length(h).is_none() && h.contains_key(http::header::TRANSFER_ENCODING),
            !has_body || !op.declares_request_body() || op.accepts_content_type(ct.unwrap_or("")),
            header_str(h, http::header::EXPECT)
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue")),
        )
    };
    if let Some(size) = declared_len.filter(|&n| n > limit) {
        session.set_keepalive(None);
        return Err(Refusal::Rejected(RequestRejection::PayloadTooLarge {
            size,
            limit,
        }));
    }
    if !content_type_ok {
        session.set_keepalive(None);
        let content_type = header_str(&session.req_header().headers, http::header::CONTENT_TYPE);
        return Err(Refusal::Rejected(RequestRejection::UnsupportedMediaType {
            content_type: content_type.map(str::to_owned),
            accepted: op.accepted_content_types().to_vec(),
        }));
    }
    let body = if has_body && op.declares_request_body() {
        if expect_continue {
            ctx.validation.drop_expect = true;
            session
                .write_continue_response()
                .await
                .map_err(|_| Refusal::BodyUnreadable)?;
        }
        let read = read_body(session, declared_len, limit).await;
        if read.is_err() {
            session.set_keepalive(None);
        }
        Some(read?)
    } else {
        None
    };
    validate_parts(session, ctx, &op, body.as_ref().map(|b| &b.bytes[..]))?;
    if let Some(b) = body {
        if !b.replayable {
            // Only a chunked body over the window (or a first read over it) gets here.
            tracing::debug!(len = b.bytes.len(), chunked, "body cannot be replayed");
            return Err(Refusal::LengthRequired {
                replayable: REPLAY_WINDOW,
            });
        }
        ctx.validation.replay = Some(b.bytes);
    }
    Ok(())
}

/// A body read in `request_filter`.
struct ReadBody {
    bytes: Bytes,
    /// Whether Pingora's retry buffer holds its tail intact (see the module docs).
    replayable: bool,
}

/// Reads the whole body, at most `limit` bytes (413 beyond), switching Pingora's retry
/// buffer on for the last [`REPLAY_WINDOW`] bytes.
async fn read_body(
    session: &mut Session,
    declared_len: Option<usize>,
    limit: usize,
) -> Result<ReadBody, Refusal> {
    let mut chunks = Gathered::default();
    let mut buffering = false;
    let mut after_buffering = 0usize;
    loop {
        let len = chunks.len;
        let remaining = declared_len.map_or(0, |n| n.saturating_sub(len));
        if !buffering && remaining <= REPLAY_WINDOW {
            session.as_downstream_mut().enable_retry_buffering();
            buffering = true;
        }
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                let size = len + chunk.len();
                if size > limit {
                    return Err(Refusal::Rejected(RequestRejection::PayloadTooLarge {
                        size,
                        limit,
                    }));
                }
                if buffering {
                    after_buffering += chunk.len();
                }
                chunks.push(chunk);
                // Done (the `Content-Length` reached, or the last chunk read): asking again
                // would only return `None`, through another timed read.
                if session.is_body_done() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading the request body failed");
                return Err(Refusal::BodyUnreadable);
            }
        }
    }
    let replayable = chunks.len == 0
        || (buffering
            && after_buffering > 0
            && after_buffering <= REPLAY_WINDOW
            && !session.as_downstream().retry_buffer_truncated());
    Ok(ReadBody {
        bytes: chunks.joined(),
        replayable,
    })
}

/// Runs the compiled validator over the request's parameters and (buffered) body.
fn validate_parts(
    session: &Session,
    ctx: &RequestCtx,
    op: &CompiledOperation,
    body: Option<&[u8]>,
) -> Result<(), Refusal> {
    let req = session.req_header();
    // Routing matched the path already; only path parameters need the match again.
    let lookup = ctx.routed.as_ref().filter(|_| op.reads_path()).map(|r| {
        r.major
            .lookup(Method::from_http(req.method.as_str()), &r.rest)
    });
    let path_params: &[(&str, &str)] = match &lookup {
        Some(PathLookup::Found { params, .. }) => params,
        _ => &[],
    };
    let headers: Vec<(&str, &str)> = if op.reads_headers() {
        req.headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect()
    } else {
        Vec::new()
    };
    let parts = RequestParts {
        path_params,
        query: req.uri.query(),
        headers: &headers,
        content_type: header_str(&req.headers, http::header::CONTENT_TYPE),
        body,
    };
    op.validate_request(&parts).map_err(Refusal::Rejected)
}

/// `request_body_filter`: swaps the chunk Pingora replays from its retry buffer for the
/// whole body read in `request_filter`, once per attempt.
pub(super) fn replay(body: &mut Option<Bytes>, ctx: &mut RequestCtx) {
    let Some(full) = &ctx.validation.replay else {
        return;
    };
    if body.as_ref().is_some_and(|b| !b.is_empty()) && ctx.validation.replayed_at != ctx.attempts {
        *body = Some(full.clone());
        ctx.validation.replayed_at = ctx.attempts;
    }
}

/// `upstream_request_filter`: a body read here goes upstream whole, so an `Expect:
/// 100-continue` the gateway already answered is not passed on.
pub(super) fn upstream_request(upstream: &mut pingora::http::RequestHeader, ctx: &RequestCtx) {
    if ctx.validation.drop_expect {
        upstream.remove_header(&http::header::EXPECT);
    }
}

/// `response_filter`: starts the response check the API asks for.
pub(super) fn on_response_header(
    session: &mut Session,
    header: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    let Some(routed) = ctx.routed.as_ref() else {
        return Ok(());
    };
    let mode = routed.major.validation.response;
    if mode == ResponseValidation::Off {
        return Ok(());
    }
    let Some(op) = routed.operation().and_then(|o| o.validator.clone()) else {
        return Ok(());
    };
    let status = header.status.as_u16();
    if header.status.is_informational() || !op.validates_responses() {
        return Ok(());
    }
    let content_type = header_str(&header.headers, http::header::CONTENT_TYPE).map(str::to_owned);
    let declared_len = content_length(&header.headers);
    let bodyless = session.req_header().method == http::Method::HEAD
        || matches!(status, 204 | 304)
        || declared_len == Some(0);
    if bodyless {
        // Pingora sends such a header as the whole response: check it, report it.
        let verdict = op.validate_response(status, content_type.as_deref(), &[]);
        conclude(ctx, status, verdict, false);
        return Ok(());
    }
    if declared_len.is_some_and(|n| n > RESPONSE_BUFFER_LIMIT) {
        conclude_too_large(ctx);
        return Ok(());
    }
    let collected = Collected::new(status, content_type);
    ctx.validation.response = match mode {
        ResponseValidation::Report => ResponseState::Collect(collected),
        ResponseValidation::Enforce => {
            let real = Box::new(header.clone());
            header.set_status(HOLD_STATUS)?;
            session.set_ignore_info_resp(true);
            ResponseState::Hold {
                header: real,
                body: collected,
            }
        }
        ResponseValidation::Off => ResponseState::Idle,
    };
    Ok(())
}

/// `response_body_filter`: collects (`report`) or holds (`enforce`) the body, and judges it
/// at the end.
pub(super) fn on_response_body(body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) {
    match &mut ctx.validation.response {
        ResponseState::Idle | ResponseState::Release(_) => {}
        ResponseState::Collect(c) => {
            if let Some(b) = body.as_ref() {
                c.push(b);
            }
            if end {
                finish_collect(ctx);
            }
        }
        ResponseState::Hold { body: held, .. } => {
            if let Some(b) = body.take() {
                held.push(&b);
            }
            if end {
                finish_hold(ctx);
            }
        }
    }
}

fn finish_collect(ctx: &mut RequestCtx) {
    let ResponseState::Collect(c) = std::mem::take(&mut ctx.validation.response) else {
        return;
    };
    if c.over {
        conclude_too_large(ctx);
        return;
    }
    let Some(op) = response_validator(ctx) else {
        return;
    };
    let verdict = op.validate_response(c.status, c.content_type.as_deref(), &c.body());
    conclude(ctx, c.status, verdict, false);
}

fn finish_hold(ctx: &mut RequestCtx) {
    let ResponseState::Hold { header, body } = std::mem::take(&mut ctx.validation.response) else {
        return;
    };
    let Some(op) = response_validator(ctx) else {
        return;
    };
    let bytes = body.body();
    let verdict = if body.over {
        Err(vec![FieldError {
            location: "body".into(),
            pointer: String::new(),
            message: format!(
                "is over the {} MiB the gateway buffers to validate a response",
                RESPONSE_BUFFER_LIMIT / (1024 * 1024)
            ),
        }])
    } else {
        op.validate_response(body.status, body.content_type.as_deref(), &bytes)
    };
    let held = match &verdict {
        Ok(()) => Held::Original {
            header,
            body: bytes,
        },
        Err(errors) => Held::Refused(
            GatewayError::NonConformingResponse {
                status: body.status,
                errors: errors.clone(),
            }
            .reply(&ctx.request_id, SystemTime::now()),
        ),
    };
    if matches!(held, Held::Refused(_)) {
        ctx.outcome = Some(Outcome::UpstreamFailed);
    }
    conclude(ctx, body.status, verdict, true);
    ctx.validation.response = ResponseState::Release(Box::new(held));
}

fn response_validator(ctx: &RequestCtx) -> Option<Arc<CompiledOperation>> {
    ctx.routed.as_ref()?.operation()?.validator.clone()
}

/// Records a verdict: the context (access record), the metric, and a log line when the
/// response does not conform.
fn conclude(
    ctx: &mut RequestCtx,
    status: u16,
    verdict: Result<(), Vec<FieldError>>,
    enforced: bool,
) {
    let verdict = match verdict {
        Ok(()) => {
            if let Some(s) = &ctx.series {
                s.response_checked(ResponseCheck::Conforming);
            }
            ResponseVerdict::Conforming
        }
        Err(errors) => {
            if let Some(s) = &ctx.series {
                s.response_checked(if enforced {
                    ResponseCheck::Enforced
                } else {
                    ResponseCheck::Reported
                });
            }
            if let Some(r) = &ctx.routed {
                let summary: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{} {}: {}", e.location, e.pointer, e.message))
                    .collect();
                tracing::warn!(
                    api = %r.major.api,
                    version = %r.major.version,
                    operation = r.operation().map_or("", |o| o.name.as_str()),
                    status,
                    request_id = %ctx.request_id,
                    enforced,
                    violations = ?summary,
                    "upstream response does not match the API's contract"
                );
            }
            ResponseVerdict::Violations { errors, enforced }
        }
    };
    ctx.validation.response_verdict = Some(verdict);
}

fn conclude_too_large(ctx: &mut RequestCtx) {
    if let Some(s) = &ctx.series {
        s.response_checked(ResponseCheck::Unchecked);
    }
    ctx.validation.response_verdict = Some(ResponseVerdict::TooLarge);
}

/// `logging`, first: writes a response `enforce` held, once validated: the upstream's own
/// header and body, or the 502 problem in their place. Nothing when nothing is held (or the
/// request failed meanwhile and `fail_to_proxy` answered).
pub(super) async fn release(session: &mut Session, ctx: &mut RequestCtx) {
    let ResponseState::Release(held) = std::mem::take(&mut ctx.validation.response) else {
        return;
    };
    if session.response_written().is_some() {
        return;
    }
    let written = match *held {
        Held::Original { header, body } => {
            let head = session.req_header().method == http::Method::HEAD;
            match session.write_response_header(header, body.is_empty()).await {
                Ok(()) if !body.is_empty() && !head => {
                    session.write_response_body(Some(body), true).await
                }
                other => other,
            }
        }
        Held::Refused(reply) => Gateway::send(session, ctx, reply).await,
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not write the validated response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_without_copying_a_single_one() {
        let mut g = Gathered::default();
        assert!(g.joined().is_empty());
        let one = Bytes::from_static(b"abc");
        g.push(one.clone());
        assert_eq!(g.joined().as_ptr(), one.as_ptr());
        assert!(g.more.is_empty(), "one chunk needs no vector");
        g.push(Bytes::from_static(b"de"));
        g.push(Bytes::from_static(b"f"));
        assert_eq!(&g.joined()[..], b"abcdef");
        assert_eq!(g.len, 6);
    }

    #[test]
    fn collected_bodies_stop_at_the_limit() {
        let mut c = Collected::new(200, None);
        c.push(&Bytes::from(vec![b'x'; RESPONSE_BUFFER_LIMIT]));
        assert!(!c.over);
        c.push(&Bytes::from_static(b"y"));
        assert!(c.over);
        assert!(
            c.chunks.first.is_none() && c.chunks.len == 0,
            "an oversized body is not kept"
        );
    }

    #[test]
    fn refusals_have_their_status_and_problem() {
        let r = Refusal::LengthRequired {
            replayable: REPLAY_WINDOW,
        };
        assert_eq!(r.status(), 411);
        assert!(r.problem().detail.contains("64 KiB"));
        assert_eq!(Refusal::BodyUnreadable.status(), 400);
        let r = Refusal::Rejected(RequestRejection::PayloadTooLarge { size: 9, limit: 8 });
        assert_eq!(r.status(), 413);
        assert_eq!(r.problem().extensions["limit"], 8);
    }
}
