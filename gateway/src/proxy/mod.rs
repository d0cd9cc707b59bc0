//! The gateway's one Pingora `ProxyHttp` implementation. Each hook is thin: it calls one named
//! function per concern and keeps what later hooks need in the typed [`RequestCtx`].
//!
//! Hooks in the order Pingora runs them, and the check each one owns:
//!
//! | hook | runs | owns |
//! | --- | --- | --- |
//! | `new_ctx` | per request, first | start time, empty context |
//! | `request_filter` | after the request header is read | request id and trace, [`route`] (404/405/410, 400 on bad paths), `authenticate` (401) and `authorize` (403: subscription, OpenAPI scopes), `rate_limit` (429 problem+json with `Retry-After`, or 503 while Redis is down and the plan fails closed); [`validate`](validate::check_request) (400/411/413/415: parameters, content type, the body read and buffered here); answers `mock://` targets and every refusal itself |
//! | `upstream_peer` | before each attempt (again on retry) | weighted target choice with passive health, timeouts |
//! | `fail_to_connect` | a connection attempt failed | health, metrics, retry decision (idempotent, another target) |
//! | `upstream_request_filter` | before the request header goes upstream | upstream path (base + operation path), `Host`, forwarding and trace headers, credentials removed, `X-Consumer` set (the bearer token kept only where the API opts in), `Expect` dropped when the body was read already |
//! | `request_body_filter` | per request body chunk sent upstream | the body read by `validate`, replayed byte for byte ([`validate::replay`]) |
//! | `error_while_proxy` | an error after the connection was made | health, metrics, retry only for an idempotent request on a reused connection before anything was answered |
//! | `upstream_response_filter` | upstream response header arrived | target marked healthy |
//! | `upstream_response_body_filter` | per response body chunk | end of upstream time (for the overhead metric) |
//! | `response_filter` | before the response header goes downstream | `X-Request-Id`, lifecycle headers, `RateLimit-Policy`/`RateLimit`, hop-by-hop fields removed; response validation starts (`enforce` holds the header) |
//! | `response_body_filter` | per response body chunk | response validation (`report` collects, `enforce` holds; judged at the end) |
//! | `fail_to_proxy` | the request failed for good | the 502/503/504 problem+json answer |
//! | `logging` | once, at the very end | first writes a response `enforce` held ([`validate::release`]: no later async hook exists), then metrics, the access record (`record.rs`), the request's debug log line |

mod headers;
mod record;
mod respond;
mod route;
mod upstream;
pub mod validate;

pub use headers::{CREDENTIAL_HEADERS, MockPreference};
pub use respond::{GatewayError, Reply};
pub use route::{Refusal, Routed, route};

use crate::access::AccessLog;
use crate::holder::{Live, SnapshotHolder};
use crate::identity::{Caller, Identity};
use crate::limits::{RateLimits, Verdict};
use crate::metrics::{Metrics, Outcome, RouteSeries, UpstreamErrorKind};
use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_policies::problem::ProblemKind;
use gatehouse_registry::access::AccessFlags;
use gatehouse_registry::snapshot::{MajorEntry, TargetKind, UpstreamEntry};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, HttpProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The most attempts one request makes (first try plus retries).
const MAX_ATTEMPTS: usize = 3;

/// The gateway proxy: reads the live snapshot, never the store.
#[derive(Debug)]
pub struct Gateway {
    holder: Arc<SnapshotHolder>,
    metrics: Arc<Metrics>,
    identity: Arc<Identity>,
    limits: Arc<RateLimits>,
    access: AccessLog,
}

impl Gateway {
    /// A gateway with local rate limits and no access log.
    pub fn new(holder: Arc<SnapshotHolder>, identity: Arc<Identity>) -> Self {
        let limits = Arc::new(RateLimits::local(holder.metrics().clone()));
        Self::with_limits(holder, identity, limits)
    }

    /// A gateway deciding rate limits with `limits` (local or Redis).
    pub fn with_limits(
        holder: Arc<SnapshotHolder>,
        identity: Arc<Identity>,
        limits: Arc<RateLimits>,
    ) -> Self {
        let metrics = holder.metrics().clone();
        Gateway {
            holder,
            metrics,
            identity,
            limits,
            access: AccessLog::disabled(),
        }
    }

    /// Emits one access record per request into `access`.
    #[must_use]
    pub fn with_access_log(mut self, access: AccessLog) -> Self {
        self.access = access;
        self
    }
}

/// The Pingora service of the gateway, listening on `listen` (e.g. `127.0.0.1:8080`), for the
/// caller to add to its `pingora::server::Server`.
///
/// Recommended `ServerConf` (see `bench/README.md` for the measurements behind it):
/// `threads` = the cores given to the proxy, `work_stealing: false` (each thread keeps its own
/// connections; less cross-thread wake-up), `grace_period_seconds: Some(1..5)` and
/// `graceful_shutdown_timeout_seconds: Some(5..30)`: on SIGTERM in-flight requests finish,
/// and tests stop quickly with SIGINT.
pub fn proxy_service(
    server_conf: &Arc<ServerConf>,
    holder: Arc<SnapshotHolder>,
    identity: Arc<Identity>,
    listen: &str,
) -> Service<HttpProxy<Gateway>> {
    let limits = Arc::new(RateLimits::local(holder.metrics().clone()));
    proxy_service_with_limits(server_conf, holder, identity, limits, listen)
}

/// [`proxy_service`] with the node's rate limiting (local, or shared through Redis).
pub fn proxy_service_with_limits(
    server_conf: &Arc<ServerConf>,
    holder: Arc<SnapshotHolder>,
    identity: Arc<Identity>,
    limits: Arc<RateLimits>,
    listen: &str,
) -> Service<HttpProxy<Gateway>> {
    gateway_service(
        server_conf,
        Gateway::with_limits(holder, identity, limits),
        listen,
    )
}

/// [`proxy_service`] for a gateway built by the caller (e.g. with an access log).
pub fn gateway_service(
    server_conf: &Arc<ServerConf>,
    gateway: Gateway,
    listen: &str,
) -> Service<HttpProxy<Gateway>> {
    let mut svc =
        pingora::proxy::http_proxy_service_with_name(server_conf, gateway, "gatehouse proxy");
    svc.add_tcp(listen);
    svc
}

/// The target slots a request has tried, at most [`MAX_ATTEMPTS`].
#[derive(Debug, Default, Clone, Copy)]
struct Tried {
    slots: [usize; MAX_ATTEMPTS],
    len: usize,
}

impl Tried {
    fn push(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(self.len) {
            *s = slot;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[usize] {
        &self.slots[..self.len.min(MAX_ATTEMPTS)]
    }
}

/// Per-request state shared by the hooks.
#[derive(Debug)]
pub struct RequestCtx {
    started: Instant,
    /// Wall-clock arrival, for the access record.
    started_at: SystemTime,
    /// `X-Request-Id`: the client's, or a new UUIDv7.
    pub request_id: String,
    /// The `traceparent` forwarded upstream.
    pub trace: Option<headers::Trace>,
    /// The snapshot this request is served from (kept for its whole life).
    live: Option<Arc<Live>>,
    /// The matched operation, once routing succeeded.
    pub routed: Option<Routed>,
    /// Who is calling, once authenticated.
    pub caller: Option<Caller>,
    /// `RateLimit-Policy` and `RateLimit` of an admitted limited request, for every answer.
    pub rate_limit: Option<(String, String)>,
    /// The target of the current attempt.
    chosen: Option<upstream::Chosen>,
    /// Target slots already tried (inline: no allocation per request).
    tried: Tried,
    /// Upstream attempts made.
    attempts: usize,
    /// The last upstream failure seen.
    last_failure: Option<UpstreamErrorKind>,
    upstream_started: Option<Instant>,
    upstream_time: Duration,
    /// Set when the gateway answered by itself.
    outcome: Option<Outcome>,
    series: Option<Arc<RouteSeries>>,
    /// Request body replay and the response check (`validate`).
    pub validation: validate::ValidationCtx,
    /// The version routed to, also when routing refused the request after finding it (410,
    /// unknown path, 405): the access record names it.
    major: Option<Arc<MajorEntry>>,
    /// The problem the gateway answered with, if it answered by itself.
    reason: Option<ProblemKind>,
    /// The id of the API key presented (never the key).
    pub key_id: Option<String>,
    /// The `sub` of the bearer token presented (never the token).
    pub subject: Option<String>,
    /// Facts for the access record beyond the status (response validation failed, …).
    pub access_flags: AccessFlags,
}

impl RequestCtx {
    /// The consumer the credential identified, once authenticated.
    pub fn consumer(&self) -> Option<&str> {
        self.caller.as_ref().map(|c| c.consumer.as_str())
    }

    fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            started_at: SystemTime::now(),
            request_id: String::new(),
            trace: None,
            live: None,
            routed: None,
            caller: None,
            rate_limit: None,
            chosen: None,
            tried: Tried::default(),
            attempts: 0,
            last_failure: None,
            upstream_started: None,
            upstream_time: Duration::ZERO,
            outcome: None,
            series: None,
            validation: validate::ValidationCtx::default(),
            major: None,
            reason: None,
            key_id: None,
            subject: None,
            access_flags: AccessFlags::empty(),
        }
    }

    fn upstream(&self) -> Option<&Arc<UpstreamEntry>> {
        self.routed.as_ref()?.major.upstream.as_ref()
    }

    fn idempotent(&self) -> bool {
        self.routed
            .as_ref()
            .and_then(Routed::operation)
            .is_some_and(|o| o.idempotent)
    }

    fn stop_upstream_clock(&mut self) {
        if let Some(s) = self.upstream_started.take() {
            self.upstream_time += s.elapsed();
        }
    }
}

impl Gateway {
    /// Request id and trace context: kept from the client when valid, made otherwise.
    fn identify(session: &Session, ctx: &mut RequestCtx) {
        let req = session.req_header();
        ctx.request_id = req
            .headers
            .get("x-request-id")
            .and_then(|v| headers::accept_request_id(v.as_bytes()))
            .map_or_else(headers::new_request_id, str::to_owned);
        ctx.trace = Some(headers::trace_context(
            req.headers.get("traceparent").map(|v| v.as_bytes()),
        ));
    }

    /// Routing: the API, the major, the lifecycle verdict, the operation.
    fn route(&self, session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let live = self.holder.load();
        let req = session.req_header();
        let api_version = req.headers.get("api-version").and_then(|v| v.to_str().ok());
        let result = route::route(
            &live,
            &req.method,
            req.uri.path(),
            api_version,
            SystemTime::now(),
        );
        ctx.live = Some(live);
        match result {
            Ok(routed) => {
                ctx.series = Some(self.metrics.route(&routed.major.api, routed.major.major));
                ctx.major = Some(routed.major.clone());
                ctx.routed = Some(routed);
                Ok(())
            }
            Err(refusal) => {
                ctx.series = Some(match refusal.major() {
                    Some(m) => self.metrics.route(&m.api, m.major),
                    None => self.metrics.unrouted(),
                });
                ctx.major = refusal.major().cloned();
                Err(GatewayError::Route(refusal))
            }
        }
    }

    /// Authentication (401) then authorization (403): who is calling, whether a
    /// subscription covers this API and major, and whether the operation's OpenAPI
    /// `security` scopes are held. Lookups only; see [`crate::identity`].
    fn authenticate(&self, session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let (Some(live), Some(routed)) = (ctx.live.as_ref(), ctx.routed.as_ref()) else {
            return Err(GatewayError::Internal);
        };
        let Some(operation) = routed.operation() else {
            return Err(GatewayError::Internal);
        };
        let headers = &session.req_header().headers;
        let snapshot = &live.snapshot;
        let caller = self
            .identity
            .authenticate(
                snapshot,
                headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
                headers.get("x-api-key").map(|v| v.as_bytes()),
                SystemTime::now(),
            )
            .map_err(GatewayError::Identity)?;
        // Known before authorization, so a 403 is recorded with the consumer it refused.
        ctx.key_id.clone_from(&caller.key_id);
        ctx.subject = caller.token.as_ref().map(|t| t.consumer.clone());
        let caller = ctx.caller.insert(caller);
        crate::identity::authorize(snapshot, caller, &routed.major, operation)
            .map_err(GatewayError::Identity)
    }

    /// Rate limits and quotas: the plan of the consumer's subscription to the routed API
    /// decides, per consumer × API (× operation where the plan overrides it). Requests
    /// without a known consumer, or without a subscription plan, are not limited here
    /// (authorization refused them already). Admitted: the headers are kept for the answer.
    async fn rate_limit(&self, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let (Some(live), Some(routed), Some(consumer)) = (&ctx.live, &ctx.routed, ctx.consumer())
        else {
            return Ok(());
        };
        let Some(plan) = live.snapshot.limits_for(consumer, &routed.major.api) else {
            return Ok(());
        };
        let operation = routed.operation().map(|o| o.name.as_str());
        let verdict = self
            .limits
            .check(plan, consumer, &routed.major.api, operation)
            .await;
        match verdict {
            Verdict::Decided {
                decision,
                policy,
                limit,
                refused_by,
                ..
            } => match (decision.exceeded(), refused_by) {
                (Some(exceeded), Some(policy_name)) => Err(GatewayError::RateLimited {
                    exceeded,
                    policy_name,
                    retry_after_s: gatehouse_policies::ratelimit::gcra::ceil_seconds(
                        decision.retry_after_us(),
                    )
                    .max(1),
                    policy_field: policy,
                    limit_field: limit,
                }),
                _ => {
                    ctx.rate_limit = Some((policy, limit));
                    Ok(())
                }
            },
            Verdict::Unavailable => Err(GatewayError::RateLimitUnavailable),
        }
    }

    /// Validation: parameters, content type and body against the operation, the body read
    /// and kept for the upstream (`validate`).
    async fn validate(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        validate::check_request(session, ctx).await.map_err(|r| {
            if let Some(s) = &ctx.series {
                s.validation_refused(r.status());
            }
            GatewayError::Validation(r)
        })
    }

    /// Picks the target of the next attempt.
    fn select_target(ctx: &mut RequestCtx) -> Result<upstream::Chosen, GatewayError> {
        let no_upstream = |ctx: &RequestCtx| match &ctx.routed {
            Some(r) => GatewayError::NoUpstream {
                api: r.major.api.clone(),
                major: r.major.major,
            },
            None => GatewayError::Internal,
        };
        let (Some(live), Some(up)) = (ctx.live.as_ref(), ctx.upstream()) else {
            return Err(no_upstream(ctx));
        };
        match upstream::choose(live, up, ctx.tried.as_slice()) {
            Some(c) => {
                ctx.tried.push(c.slot);
                ctx.chosen = Some(c);
                Ok(c)
            }
            None => Err(no_upstream(ctx)),
        }
    }

    /// Answers from the operation's examples (`mock://`).
    fn mock_reply(session: &Session, ctx: &RequestCtx) -> Reply {
        let Some(routed) = ctx.routed.as_ref() else {
            return GatewayError::Internal.reply(&ctx.request_id, SystemTime::now());
        };
        let Some(op) = routed.operation() else {
            return GatewayError::Internal.reply(&ctx.request_id, SystemTime::now());
        };
        let pref = headers::mock_preference(
            session
                .req_header()
                .headers
                .get_all("prefer")
                .iter()
                .map(|v| v.as_bytes()),
        );
        match op.mocks.select(pref.code, pref.example.as_deref()) {
            Some((example, honoured)) => {
                let mut headers = routed.major.lifecycle_headers.clone();
                if honoured {
                    let applied = match (&pref.example, pref.code) {
                        (Some(name), _) if example.name.as_deref() == Some(name.as_str()) => {
                            format!("example={name}")
                        }
                        _ => format!("code={}", example.status),
                    };
                    headers.push(("preference-applied", applied));
                }
                Reply {
                    status: example.status,
                    headers,
                    content_type: example.content_type.clone(),
                    body: example.body.clone(),
                    problem: None,
                }
            }
            None => GatewayError::NoMockResponse {
                operation: op.name.clone(),
            }
            .reply(&ctx.request_id, SystemTime::now()),
        }
    }

    /// Writes a complete answer of the gateway's own.
    async fn send(
        session: &mut Session,
        ctx: &mut RequestCtx,
        reply: Reply,
    ) -> pingora::Result<()> {
        ctx.reason = reply.problem;
        let mut h = ResponseHeader::build(reply.status, Some(reply.headers.len() + 5))?;
        h.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some((policy, limit)) = &ctx.rate_limit {
            h.insert_header("ratelimit-policy", policy.as_str())?;
            h.insert_header("ratelimit", limit.as_str())?;
        }
        if let Some(ct) = &reply.content_type {
            h.insert_header("content-type", ct.as_str())?;
        }
        for (name, value) in &reply.headers {
            h.append_header(*name, value.as_str())?;
        }
        let bodyless = reply.status == 204 || reply.status == 304;
        if !bodyless {
            h.insert_header("content-length", reply.body.len().to_string())?;
        }
        let head = session.req_header().method == http::Method::HEAD;
        let send_body = !head && !bodyless && !reply.body.is_empty();
        session
            .write_response_header(Box::new(h), !send_body)
            .await?;
        if send_body {
            session.write_response_body(Some(reply.body), true).await?;
        }
        Ok(())
    }

    /// Records one failed attempt at the current target.
    fn attempt_failed(&self, ctx: &mut RequestCtx, kind: UpstreamErrorKind) {
        ctx.stop_upstream_clock();
        ctx.last_failure = Some(kind);
        self.metrics.upstream_error(kind);
        if let (Some(live), Some(c)) = (&ctx.live, ctx.chosen)
            && let Some(h) = live.health.get(c.slot)
            && h.record_failure()
        {
            tracing::warn!(
                request_id = %ctx.request_id,
                trace_id = ctx.trace.as_ref().map_or("", |t| t.trace_id()),
                target_url = ctx
                    .upstream()
                    .and_then(|u| u.targets.get(c.index))
                    .map_or("", |t| t.url.as_str()),
                kind = kind.as_str(),
                "upstream target ejected for a while after consecutive failures"
            );
        }
    }

    /// Whether a failed attempt may be retried on another target.
    fn may_retry(ctx: &RequestCtx) -> bool {
        ctx.idempotent()
            && ctx.tried.as_slice().len() < MAX_ATTEMPTS
            && match (&ctx.live, ctx.upstream()) {
                (Some(live), Some(up)) => upstream::has_untried(live, up, ctx.tried.as_slice()),
                _ => false,
            }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// Runs first for every request. Default state; no I/O.
    fn new_ctx(&self) -> RequestCtx {
        self.metrics.request_started();
        RequestCtx::new()
    }

    /// Runs once the request header is read, before any upstream work. Owns identification,
    /// routing and (in later issues) authentication, rate limits and validation. Every
    /// refusal and every `mock://` answer is written here, and `true` ends the request.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        Self::identify(session, ctx);
        let mut checked = self
            .route(session, ctx)
            .and_then(|()| self.authenticate(session, ctx));
        if checked.is_ok() {
            checked = self.rate_limit(ctx).await;
        }
        if checked.is_ok() {
            checked = Self::validate(session, ctx).await;
        }
        let checked = checked.and_then(|()| Self::select_target(ctx));
        match checked {
            Ok(chosen) if chosen.mock => {
                let reply = Self::mock_reply(session, ctx);
                ctx.outcome = Some(if reply.status < 500 {
                    Outcome::Mocked
                } else {
                    Outcome::UpstreamFailed
                });
                Self::send(session, ctx, reply).await?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) => {
                let reply = e.reply(&ctx.request_id, SystemTime::now());
                let refused = matches!(e, GatewayError::RateLimitUnavailable);
                ctx.outcome = Some(if reply.status >= 500 && !refused {
                    if matches!(e, GatewayError::NoUpstream { .. }) {
                        self.metrics.upstream_error(UpstreamErrorKind::NoTarget);
                    }
                    Outcome::UpstreamFailed
                } else {
                    Outcome::Refused
                });
                Self::send(session, ctx, reply).await?;
                Ok(true)
            }
        }
    }

    /// Runs before each attempt. The first attempt uses the target `request_filter` chose;
    /// a retry chooses another one that was not tried yet.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        if ctx.attempts > 0 {
            // A retry: the previous attempt's target is in `tried` already.
            ctx.stop_upstream_clock();
            Self::select_target(ctx).map_err(|_| Error::new(ErrorType::ConnectError).into_up())?;
        }
        ctx.attempts += 1;
        ctx.upstream_started = Some(Instant::now());
        let (Some(live), Some(up), Some(c)) = (ctx.live.as_ref(), ctx.upstream(), ctx.chosen)
        else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let addr = live
            .addrs
            .get(c.slot)
            .copied()
            .flatten()
            .filter(|_| {
                up.targets
                    .get(c.index)
                    .is_some_and(|t| matches!(t.kind, TargetKind::Http(_)))
            })
            .ok_or_else(|| Error::new(ErrorType::ConnectNoRoute).into_up())?;
        Ok(Box::new(upstream::peer(addr, up)))
    }

    /// Runs when connecting to the chosen target failed. Nothing was sent, so an idempotent
    /// request may be retried on another target.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let kind = upstream::classify(&e).unwrap_or(UpstreamErrorKind::ConnectOther);
        self.attempt_failed(ctx, kind);
        e.set_retry(Self::may_retry(ctx));
        e
    }

    /// Runs before the request header goes upstream: the upstream path, `Host`, forwarding
    /// and trace headers; the client's credentials are removed here.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let (Some(routed), Some(up), Some(c)) = (ctx.routed.as_ref(), ctx.upstream(), ctx.chosen)
        else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let Some(TargetKind::Http(target)) = up.targets.get(c.index).map(|t| &t.kind) else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let mut path =
            gatehouse_policies::routing::join_upstream_path(&target.base_path, &routed.rest);
        if let Some(q) = session.req_header().uri.query() {
            path.push('?');
            path.push_str(q);
        }
        let uri = http::Uri::try_from(path).map_err(|_| Error::new(ErrorType::InternalError))?;
        upstream_request.set_uri(uri);
        for name in CREDENTIAL_HEADERS {
            upstream_request.remove_header(name);
        }
        // Whoever the client claims to be, the upstream hears who the gateway verified.
        upstream_request.remove_header("x-consumer");
        if let Some(caller) = &ctx.caller {
            upstream_request.insert_header("x-consumer", caller.consumer.as_str())?;
            if routed.major.forward_bearer
                && caller.kind == gatehouse_policies::identity::CredentialKind::Bearer
                && let Some(auth) = session
                    .req_header()
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .cloned()
            {
                upstream_request.insert_header(http::header::AUTHORIZATION, auth)?;
            }
        }
        let original_host = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .cloned();
        upstream_request.insert_header(http::header::HOST, target.authority.as_str())?;
        upstream_request.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(t) = &ctx.trace {
            upstream_request.insert_header("traceparent", t.traceparent.as_str())?;
        }
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(xff) = headers::forwarded_for(
            session
                .req_header()
                .headers
                .get("x-forwarded-for")
                .map(|v| v.as_bytes()),
            client_ip,
        ) {
            upstream_request.insert_header("x-forwarded-for", xff)?;
        }
        upstream_request.insert_header("x-forwarded-proto", "http")?;
        match original_host {
            Some(h) => upstream_request.insert_header("x-forwarded-host", h)?,
            None => {
                upstream_request.remove_header("x-forwarded-host");
            }
        }
        validate::upstream_request(upstream_request, ctx);
        Ok(())
    }

    /// Runs per request body chunk on its way upstream: a body `validate` read is replayed.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        validate::replay(body, ctx);
        Ok(())
    }

    /// Runs on an error after the connection was made. Retried only for an idempotent request
    /// whose failure Pingora marks retryable (a reused pooled connection that the upstream had
    /// closed: nothing of the request was processed) and only before any answer was relayed.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer {peer}"));
        let kind = upstream::classify(&e).unwrap_or(UpstreamErrorKind::Protocol);
        if *e.esource() == pingora::ErrorSource::Upstream {
            self.attempt_failed(ctx, kind);
        }
        let nothing_relayed = session.response_written().is_none();
        if nothing_relayed && Self::may_retry(ctx) && !session.as_ref().retry_buffer_truncated() {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    /// Runs when the upstream's response header arrives: the target answered.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some(live), Some(c)) = (&ctx.live, ctx.chosen)
            && let Some(h) = live.health.get(c.slot)
        {
            h.record_success();
        }
        Ok(())
    }

    /// Runs per upstream body chunk; the last one stops the upstream clock.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        if end_of_stream {
            ctx.stop_upstream_clock();
        }
        Ok(None)
    }

    /// Runs before a relayed response header goes downstream: request id, lifecycle headers,
    /// hop-by-hop fields removed.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for name in headers::HOP_BY_HOP_RESPONSE {
            upstream_response.remove_header(name);
        }
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some((policy, limit)) = &ctx.rate_limit {
            upstream_response.insert_header("ratelimit-policy", policy.as_str())?;
            upstream_response.insert_header("ratelimit", limit.as_str())?;
        }
        if let Some(r) = &ctx.routed {
            for (name, value) in &r.major.lifecycle_headers {
                upstream_response.insert_header(*name, value.as_str())?;
            }
        }
        validate::on_response_header(session, upstream_response, ctx)
    }

    /// Runs per response body chunk on its way downstream: response validation.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        validate::on_response_body(body, end_of_stream, ctx);
        Ok(None)
    }

    /// Runs when the request failed for good: answers 502/503/504 problem+json when nothing
    /// was sent downstream yet (500 for the gateway's own failures).
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        ctx.stop_upstream_clock();
        if ctx.request_id.is_empty() {
            Self::identify(session, ctx);
        }
        let error = match (upstream::classify(e).or(ctx.last_failure), e.esource()) {
            (_, pingora::ErrorSource::Downstream) => None,
            (Some(kind), _) => {
                let (api, major) = ctx
                    .routed
                    .as_ref()
                    .map(|r| (r.major.api.clone(), r.major.major))
                    .unwrap_or_default();
                ctx.outcome = Some(Outcome::UpstreamFailed);
                Some(GatewayError::Upstream { kind, api, major })
            }
            (None, _) => {
                ctx.outcome = Some(Outcome::Aborted);
                Some(GatewayError::Internal)
            }
        };
        let Some(error) = error else {
            ctx.outcome = Some(Outcome::Aborted);
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if session.response_written().is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let reply = error.reply(&ctx.request_id, SystemTime::now());
        let status = reply.status;
        // Pingora closes the downstream connection after a failed proxy attempt; say so, or a
        // pooling client reuses the socket and sees a reset.
        session.set_keepalive(None);
        tracing::warn!(
            request_id = %ctx.request_id,
            trace_id = ctx.trace.as_ref().map_or("", |t| t.trace_id()),
            status,
            error = %e,
            "the request failed for good"
        );
        if let Err(write_error) = Self::send(session, ctx, reply).await {
            tracing::debug!(
                request_id = %ctx.request_id,
                error = %write_error,
                "could not send the error answer"
            );
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Runs once per request at the very end, whatever happened: metrics, the access record
    /// (handed to the access log without waiting), and a debug line with the request and
    /// trace ids.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        validate::release(session, ctx).await;
        self.metrics.request_finished();
        ctx.stop_upstream_clock();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let outcome = ctx.outcome.unwrap_or(if e.is_some() || status == 0 {
            Outcome::Aborted
        } else {
            Outcome::Proxied
        });
        let elapsed = ctx.started.elapsed();
        let series = ctx.series.take().unwrap_or_else(|| self.metrics.unrouted());
        series.observe(status, outcome, elapsed, ctx.upstream_time);
        self.metrics
            .consumer_outcome(&series, ctx.consumer(), outcome);
        tracing::debug!(
            request_id = %ctx.request_id,
            trace_id = ctx.trace.as_ref().map_or("", |t| t.trace_id()),
            method = %session.req_header().method,
            status,
            outcome = outcome.as_str(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        if self.access.is_enabled() {
            let record = record::access_record(session, ctx, status, outcome, elapsed);
            self.access.emit(record);
        }
    }
}
