//! The compiled snapshot: everything the gateway's hot path reads, built once from the
//! registry's [`Contents`] and then never changed.
//!
//! **Invariant:** a `Snapshot` is immutable after [`Snapshot::compile`]; the gateway shares it
//! behind an `Arc` and swaps whole snapshots atomically. Nothing here does I/O or reads the
//! clock (`now` is a parameter), so a snapshot built twice from the same contents is the same.
//!
//! Per API it holds the routable majors: for each major, the latest version that is not a
//! draft (drafts are never routable; a retired latest version stays routable only to answer
//! 410). Per major: the parsed OpenAPI [`Document`], a compiled `matchit` router over the
//! spec's path templates, per-operation data (name, idempotency, mock examples), the
//! lifecycle (headers computed once, the 410 decision left to request time), the
//! upstream (weighted targets, timeouts), and the validation policy with every operation's
//! compiled validator ([`Validators`], `policies::validate`).
//!
//! **Invariant:** schemas are compiled here, once per routable version, never per request;
//! [`Snapshot::compile_reusing`] even carries a version's compiled validators over from the
//! previous snapshot when neither its spec nor its API's policy changed, so an unrelated
//! registry write does not recompile (GitHub's spec takes about a second).
//! **Decision:** a schema that does not compile does not fail the snapshot. It is left
//! unchecked (the rest of the operation is still validated) and listed in
//! [`Validators::errors`], which the gateway logs and counts. The registry refuses such
//! specs at registration, so this only happens to versions registered before that check
//! existed or after a validator change.

use crate::credentials::{Credentials, CredentialsError};
use crate::model::{
    Api, Contents, LifecycleState, Plan, QuotaPeriod, RedisFailure, ResponseValidation, Upstream,
    ValidationSettings, Version,
};
use bytes::Bytes;
use gatehouse_policies::identity::SecurityPolicy;
use gatehouse_policies::lifecycle::{Lifecycle, Stage, Window};
use gatehouse_policies::openapi::{self, Document, Method, Operation, ResponseStatus, SpecError};
use gatehouse_policies::ratelimit::{self, OnFailure, PlanLimits, RateError, RatePolicy};
use gatehouse_policies::routing::VersionPolicy;
use gatehouse_policies::validate::{
    CompileError, CompileOptions, CompiledOperation, OperationKey, compile_document,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// Why a snapshot could not be built. The gateway keeps serving the previous one.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the stored spec of {api} {version} is not JSON: {source}")]
    SpecJson {
        api: String,
        version: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the stored spec of {api} {version} is not a valid OpenAPI document: {source}")]
    Spec {
        api: String,
        version: String,
        #[source]
        source: SpecError,
    },
    #[error("{api} {version}: path `{template}` cannot be routed: {reason}")]
    Route {
        api: String,
        version: String,
        template: String,
        reason: String,
    },
    #[error("{api} major {major}: upstream target `{url}`: {source}")]
    Target {
        api: String,
        major: u64,
        url: String,
        #[source]
        source: TargetUrlError,
    },
    #[error("version {api} {version} belongs to no registered API")]
    OrphanVersion { api: String, version: String },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("plan {plan}: {source}")]
    Plan {
        plan: String,
        #[source]
        source: RateError,
    },
}

/// Why an upstream target URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("not a URL")]
    NotAUrl,
    #[error("scheme `{scheme}` is not supported: use http:// or mock://")]
    Scheme { scheme: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry a query or a fragment")]
    QueryOrFragment,
    #[error("the URL must not carry credentials")]
    Credentials,
}

/// The compiled, immutable view of the registry that the gateway serves from.
#[derive(Debug)]
pub struct Snapshot {
    /// The change-log sequence the contents reflect.
    pub generation: i64,
    /// When this snapshot was compiled.
    pub built_at: OffsetDateTime,
    apis: HashMap<String, ApiEntry>,
    /// Every distinct upstream target (by URL); [`TargetEntry::slot`] indexes it. The gateway
    /// keeps per-target state (passive health) aligned with this list across snapshots.
    pub target_urls: Vec<String>,
    /// API keys, trusted issuers and subscriptions.
    pub credentials: Credentials,
    /// Compiled plans by name.
    plans: HashMap<String, Arc<PlanLimits>>,
    /// The plan of each subscription: consumer → API → plan.
    limits: HashMap<String, HashMap<String, Arc<PlanLimits>>>,
}

/// One capability API and its routable majors.
#[derive(Debug)]
pub struct ApiEntry {
    pub slug: String,
    pub title: String,
    /// Header routing and default major.
    pub policy: VersionPolicy,
    pub majors: BTreeMap<u64, Arc<MajorEntry>>,
}

impl ApiEntry {
    /// The routable majors, ascending (for "unknown major" answers).
    pub fn available_majors(&self) -> Vec<u64> {
        self.majors.keys().copied().collect()
    }
}

/// One routable major of an API: the version that answers for `/{api}/v{major}`.
#[derive(Debug)]
pub struct MajorEntry {
    pub api: String,
    pub major: u64,
    /// The semantic version serving this major, e.g. `2.1.0`.
    pub version: String,
    pub lifecycle: Lifecycle,
    /// The lifecycle response headers (`deprecation`, `sunset`, `link`), computed once.
    pub lifecycle_headers: Vec<(&'static str, String)>,
    /// The successor as a URI reference (`/inventory/v2`), when one is named.
    pub successor: Option<String>,
    pub document: Arc<Document>,
    router: matchit::Router<usize>,
    pub paths: Vec<PathEntry>,
    /// Where requests go; `None` when no upstream is registered for this major (503).
    pub upstream: Option<Arc<UpstreamEntry>>,
    /// The API's validation policy, as the proxy applies it.
    pub validation: ValidationPolicy,
    /// This version's compiled validators (also referenced by each [`OperationEntry`]).
    pub validators: Arc<Validators>,
    /// Whether the caller's bearer token is forwarded upstream (the API's opt-in).
    pub forward_bearer: bool,
}

/// An API's validation policy, compiled for the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// Validate requests before any upstream work.
    pub request: bool,
    pub response: ResponseValidation,
    /// The request body limit in bytes (413 above).
    pub max_body_bytes: usize,
}

impl ValidationPolicy {
    fn of(settings: &ValidationSettings) -> Self {
        ValidationPolicy {
            request: settings.request,
            response: settings.response,
            max_body_bytes: usize::try_from(settings.max_body_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Whether anything needs compiled validators.
    pub fn is_active(&self) -> bool {
        self.request || self.response != ResponseValidation::Off
    }
}

/// The compiled validators of one routable version: one [`CompiledOperation`] per operation,
/// all sharing the document's compiled schemas.
#[derive(Debug, Default)]
pub struct Validators {
    /// What they were compiled from; equal fingerprints mean reusable validators.
    fingerprint: Option<Fingerprint>,
    pub operations: HashMap<OperationKey, Arc<CompiledOperation>>,
    /// What could not be compiled (left unchecked); empty for every version registered
    /// since the registry started refusing such specs.
    pub errors: Vec<CompileError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    version: String,
    sha256: String,
    spec_len: usize,
    options: CompileOptions,
}

/// One path template of a spec.
#[derive(Debug)]
pub struct PathEntry {
    /// The template as written in the spec, e.g. `/orders/{order_number}`.
    pub template: String,
    pub operations: Vec<OperationEntry>,
    /// The `Allow` header value for a 405: the defined methods, e.g. `GET, POST`.
    pub allow: String,
}

/// One operation, with what the gateway needs at request time.
#[derive(Debug)]
pub struct OperationEntry {
    pub method: Method,
    /// The path template of the operation as written in the spec. Path items whose
    /// templates differ only in parameter names (`/a/{id}` and `/a/{code}`, with different
    /// methods) share one route, so this may differ from [`PathEntry::template`].
    pub template: String,
    /// Router parameters (positional, `p<segment>`) → this operation's parameter names.
    param_names: Vec<RouteParam>,
    /// The operation id, or `METHOD /path`: for logs and metrics.
    pub name: String,
    /// Whether a failed attempt may be retried (RFC 9110 idempotent methods).
    pub idempotent: bool,
    /// Responses a `mock://` target answers with.
    pub mocks: MockSet,
    /// The compiled validator; `None` when the API's policy validates nothing.
    pub validator: Option<Arc<CompiledOperation>>,
    /// What the operation's OpenAPI `security` requires (credential kind and scopes).
    pub security: SecurityPolicy,
    /// Query parameters declared `x-sensitive: true`: their values never reach the access
    /// log (names that look like credentials are redacted anyway).
    pub sensitive_query: Vec<String>,
}

impl OperationEntry {
    /// Whether a segment of this operation's template holds several parameters.
    fn splits_segments(&self) -> bool {
        self.param_names.iter().any(|p| !p.split.is_empty())
    }

    /// Whether the spec marks the query parameter `name` sensitive.
    pub fn is_sensitive_query(&self, name: &str) -> bool {
        self.sensitive_query.iter().any(|n| n == name)
    }
}

/// The example responses of an operation.
#[derive(Debug, Default)]
pub struct MockSet {
    pub examples: Vec<MockExample>,
    /// The default answer: the lowest 2xx status with an example (else the lowest 2xx).
    pub default: Option<usize>,
}

/// One canned response built from the spec.
#[derive(Debug, Clone)]
pub struct MockExample {
    pub status: u16,
    /// `None` for a response without content (e.g. 204).
    pub content_type: Option<String>,
    /// The example's name in `examples`, `None` for `example`.
    pub name: Option<String>,
    pub body: Bytes,
}

impl MockSet {
    /// Selects the answer for `Prefer: code=…` and/or `Prefer: example=…`. A preference that
    /// matches nothing is ignored (RFC 7240), so the default answers. Returns the example and
    /// whether the preference was honoured.
    pub fn select(&self, code: Option<u16>, example: Option<&str>) -> Option<(&MockExample, bool)> {
        let by_example = example.and_then(|name| {
            self.examples
                .iter()
                .find(|e| e.name.as_deref() == Some(name) && code.is_none_or(|c| e.status == c))
        });
        if let Some(e) = by_example {
            return Some((e, true));
        }
        if let Some(c) = code
            && let Some(e) = self.examples.iter().find(|e| e.status == c)
        {
            return Some((e, true));
        }
        self.default
            .and_then(|i| self.examples.get(i))
            .map(|e| (e, false))
    }
}

/// Where a major is served, compiled.
#[derive(Debug)]
pub struct UpstreamEntry {
    pub targets: Vec<TargetEntry>,
    /// Sum of the weights.
    pub total_weight: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// One weighted target.
#[derive(Debug, Clone)]
pub struct TargetEntry {
    pub url: String,
    pub weight: u32,
    pub kind: TargetKind,
    /// Index into [`Snapshot::target_urls`].
    pub slot: usize,
}

/// What a target URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// Answers from the spec's examples inside the gateway.
    Mock,
    Http(HttpTarget),
}

/// A plain-HTTP upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Host as written (without brackets for IPv6).
    pub host: String,
    pub port: u16,
    /// The socket address when the host is an IP literal; names are resolved by the gateway.
    pub addr: Option<SocketAddr>,
    /// The `Host` header to send: `host[:port]` as written.
    pub authority: String,
    /// Path prefix prepended to the operation path, without a trailing slash (may be empty).
    pub base_path: String,
}

/// Parses an upstream target URL: `http://host[:port][/base]` or `mock://`.
pub fn parse_target_url(url: &str) -> Result<TargetKind, TargetUrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(TargetUrlError::NotAUrl)?;
    match scheme.to_ascii_lowercase().as_str() {
        "mock" => return Ok(TargetKind::Mock),
        "http" => {}
        other => {
            return Err(TargetUrlError::Scheme {
                scheme: other.to_owned(),
            });
        }
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(TargetUrlError::QueryOrFragment);
    }
    let uri: http::Uri = url.parse().map_err(|_| TargetUrlError::NotAUrl)?;
    let authority = uri.authority().ok_or(TargetUrlError::NoHost)?;
    if authority.as_str().contains('@') {
        return Err(TargetUrlError::Credentials);
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(TargetUrlError::NoHost);
    }
    let port = authority.port_u16().unwrap_or(80);
    let addr = host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port));
    Ok(TargetKind::Http(HttpTarget {
        addr,
        port,
        authority: authority.as_str().to_owned(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
        host,
    }))
}

impl UpstreamEntry {
    /// Picks a target by weight. `roll` is uniform in `0..total_weight`; targets for which
    /// `skip` says true (unhealthy, already tried) are left out and the roll is rescaled over
    /// the rest. Falls back to all targets when every one would be skipped, so a flapping
    /// health check never turns into a total outage. `None` only when all weights are 0.
    pub fn choose(&self, roll: u64, skip: impl Fn(&TargetEntry) -> bool) -> Option<usize> {
        let eligible: u64 = self
            .targets
            .iter()
            .filter(|t| !skip(t))
            .map(|t| u64::from(t.weight))
            .sum();
        let (total, use_skip) = if eligible > 0 {
            (eligible, true)
        } else {
            (self.total_weight, false)
        };
        if total == 0 {
            return None;
        }
        let mut point = roll % total;
        for (i, t) in self.targets.iter().enumerate() {
            if use_skip && skip(t) {
                continue;
            }
            let w = u64::from(t.weight);
            if point < w {
                return Some(i);
            }
            point -= w;
        }
        None
    }
}

/// What a lookup of a method and operation path within a major found.
#[derive(Debug, PartialEq, Eq)]
pub enum PathLookup<'a> {
    Found {
        path: usize,
        operation: usize,
        /// The path parameters by their spec names, raw (still percent-encoded).
        params: Vec<(&'a str, &'a str)>,
    },
    /// The path exists but not with this method: the `Allow` value.
    MethodNotAllowed {
        allow: &'a str,
    },
    NotFound,
}

impl MajorEntry {
    /// Matches an operation path (the normalised path without `/{api}/v{major}`).
    pub fn lookup<'a>(&'a self, method: Option<Method>, rest: &'a str) -> PathLookup<'a> {
        lookup_in(&self.router, &self.paths, method, rest)
    }

    /// The operation a `Found` lookup named.
    pub fn operation(&self, path: usize, operation: usize) -> Option<&OperationEntry> {
        self.paths.get(path)?.operations.get(operation)
    }
}

/// Matches `rest` against a compiled router (see [`MajorEntry::lookup`]).
fn lookup_in<'a>(
    router: &'a matchit::Router<usize>,
    paths: &'a [PathEntry],
    method: Option<Method>,
    rest: &'a str,
) -> PathLookup<'a> {
    let Ok(m) = router.at(rest) else {
        return PathLookup::NotFound;
    };
    let path_index = *m.value;
    let Some(entry) = paths.get(path_index) else {
        return PathLookup::NotFound;
    };
    let Some(method) = method.filter(|m| entry.operations.iter().any(|o| o.method == *m)) else {
        return PathLookup::MethodNotAllowed {
            allow: &entry.allow,
        };
    };
    // Operations of one method on one route differ in how their segments split
    // (`{base}...{head}` before `{basehead}`): the first whose parameters bind wins.
    let mut params = Vec::with_capacity(m.params.len());
    for (operation, op) in entry.operations.iter().enumerate() {
        if op.method != method {
            continue;
        }
        params.clear();
        let bound = m.params.iter().all(|(key, value)| {
            match op.param_names.iter().find(|p| p.key == key) {
                Some(p) => p.bind(value, &mut params),
                None => {
                    params.push((key, value));
                    true
                }
            }
        });
        if bound {
            return PathLookup::Found {
                path: path_index,
                operation,
                params,
            };
        }
    }
    // A segment of several parameters whose separators are missing.
    PathLookup::NotFound
}

impl Snapshot {
    /// An empty snapshot (generation 0): what a gateway serves before its first build.
    pub fn empty(now: OffsetDateTime) -> Self {
        Snapshot {
            generation: 0,
            built_at: now,
            apis: HashMap::new(),
            target_urls: Vec::new(),
            credentials: Credentials::default(),
            plans: HashMap::new(),
            limits: HashMap::new(),
        }
    }

    /// The compiled plan with this name.
    pub fn plan(&self, name: &str) -> Option<&Arc<PlanLimits>> {
        self.plans.get(name)
    }

    /// The plan limiting `consumer` on `api` (its subscription's plan), if subscribed.
    pub fn limits_for(&self, consumer: &str, api: &str) -> Option<&Arc<PlanLimits>> {
        self.limits.get(consumer)?.get(api)
    }

    /// The API with this slug.
    pub fn api(&self, slug: &str) -> Option<&ApiEntry> {
        self.apis.get(slug)
    }

    /// Every API, in no particular order.
    pub fn apis(&self) -> impl Iterator<Item = &ApiEntry> {
        self.apis.values()
    }

    /// Compiles the registry's contents. Fails as a whole on the first bad spec or target, so
    /// the gateway never serves a half-built view.
    pub fn compile(contents: &Contents, now: OffsetDateTime) -> Result<Snapshot, SnapshotError> {
        Self::compile_reusing(contents, now, None)
    }

    /// [`Snapshot::compile`], reusing the compiled validators of `previous` for every
    /// version whose spec (version, SHA-256, size) and validation options are unchanged.
    pub fn compile_reusing(
        contents: &Contents,
        now: OffsetDateTime,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, SnapshotError> {
        let settings: HashMap<&str, &ValidationSettings> = contents
            .apis
            .iter()
            .map(|a| (a.slug.as_str(), &a.validation))
            .collect();
        let mut apis: HashMap<String, ApiEntry> = contents
            .apis
            .iter()
            .map(|a| {
                (
                    a.slug.clone(),
                    ApiEntry {
                        slug: a.slug.clone(),
                        title: a.title.clone(),
                        policy: VersionPolicy {
                            header_allowed: a.version_header,
                            default_major: a.default_major,
                        },
                        majors: BTreeMap::new(),
                    },
                )
            })
            .collect();

        // The routable version of each (api, major): the highest semver that is not a draft.
        let mut routable: BTreeMap<(&str, u64), &Version> = BTreeMap::new();
        for v in &contents.versions {
            if !apis.contains_key(&v.api) {
                return Err(SnapshotError::OrphanVersion {
                    api: v.api.clone(),
                    version: v.version.clone(),
                });
            }
            if !v.state.is_routable() {
                continue;
            }
            let key = (v.api.as_str(), v.major);
            let newer = match routable.get(&key) {
                None => true,
                Some(cur) => semver_key(&v.version) > semver_key(&cur.version),
            };
            if newer {
                routable.insert(key, v);
            }
        }

        let api_records: HashMap<&str, &Api> =
            contents.apis.iter().map(|a| (a.slug.as_str(), a)).collect();
        let mut targets = TargetSlots::default();
        let upstreams: HashMap<(&str, u64), &Upstream> = contents
            .upstreams
            .iter()
            .map(|u| ((u.api.as_str(), u.major), u))
            .collect();

        for ((api, major), v) in routable {
            let upstream = match upstreams.get(&(api, major)) {
                Some(u) => Some(Arc::new(compile_upstream(u, &mut targets)?)),
                None => None,
            };
            let policy = settings
                .get(api)
                .map(|s| ValidationPolicy::of(s))
                .unwrap_or_else(|| ValidationPolicy::of(&ValidationSettings::default()));
            let reusable = previous
                .and_then(|p| p.api(api))
                .and_then(|a| a.majors.get(&major))
                .map(|m| m.validators.clone());
            let options = settings.get(api).map(|s| compile_options(s));
            let forward_bearer = api_records.get(api).is_some_and(|a| a.forward_bearer);
            let entry = compile_major(v, upstream, forward_bearer, policy, options, reusable)?;
            if let Some(a) = apis.get_mut(api) {
                a.majors.insert(major, Arc::new(entry));
            }
        }

        let plans: HashMap<String, Arc<PlanLimits>> = contents
            .plans
            .iter()
            .map(|p| Ok((p.name.clone(), Arc::new(compile_plan(p)?))))
            .collect::<Result<_, SnapshotError>>()?;
        let mut limits: HashMap<String, HashMap<String, Arc<PlanLimits>>> = HashMap::new();
        for sub in &contents.subscriptions {
            // The store refuses a subscription to a missing plan; a dangling one is unlimited
            // rather than a failed build.
            if let Some(p) = plans.get(&sub.plan) {
                limits
                    .entry(sub.consumer.clone())
                    .or_default()
                    .insert(sub.api.clone(), p.clone());
            }
        }

        Ok(Snapshot {
            generation: contents.generation,
            built_at: now,
            apis,
            target_urls: targets.urls,
            credentials: Credentials::compile(contents)?,
            plans,
            limits,
        })
    }
}

/// A plan for the hot path: GCRA parameters, policy names and header items computed once.
pub fn compile_plan(p: &Plan) -> Result<PlanLimits, SnapshotError> {
    let err = |source| SnapshotError::Plan {
        plan: p.name.clone(),
        source,
    };
    let rate = RatePolicy::new(
        p.name.clone(),
        p.rate.requests,
        p.rate.per_seconds,
        p.rate.burst,
    )
    .map_err(err)?;
    let overrides = p
        .overrides
        .iter()
        .map(|o| {
            RatePolicy::new(
                format!("{}/{}", p.name, o.operation_id),
                o.rate.requests,
                o.rate.per_seconds,
                o.rate.burst,
            )
            .map(|r| (o.operation_id.clone(), r))
            .map_err(err)
        })
        .collect::<Result<_, _>>()?;
    Ok(PlanLimits {
        name: p.name.clone(),
        rate,
        quota: p.quota.map(|q| ratelimit::Quota {
            limit: q.requests,
            period: match q.period {
                QuotaPeriod::Day => ratelimit::Period::Day,
                QuotaPeriod::Month => ratelimit::Period::Month,
            },
        }),
        quota_name: format!("{}/quota", p.name),
        overrides,
        on_failure: match p.on_redis_failure {
            RedisFailure::Open => OnFailure::Open,
            RedisFailure::Closed => OnFailure::Closed,
        },
    })
}

#[derive(Default)]
struct TargetSlots {
    urls: Vec<String>,
    index: HashMap<String, usize>,
}

impl TargetSlots {
    fn slot(&mut self, url: &str) -> usize {
        if let Some(&i) = self.index.get(url) {
            return i;
        }
        let i = self.urls.len();
        self.urls.push(url.to_owned());
        self.index.insert(url.to_owned(), i);
        i
    }
}

fn semver_key(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v).ok()
}

fn compile_upstream(u: &Upstream, slots: &mut TargetSlots) -> Result<UpstreamEntry, SnapshotError> {
    let mut targets = Vec::with_capacity(u.targets.len());
    for t in &u.targets {
        let kind = parse_target_url(&t.url).map_err(|source| SnapshotError::Target {
            api: u.api.clone(),
            major: u.major,
            url: t.url.clone(),
            source,
        })?;
        targets.push(TargetEntry {
            url: t.url.clone(),
            weight: t.weight,
            kind,
            slot: slots.slot(&t.url),
        });
    }
    Ok(UpstreamEntry {
        total_weight: targets.iter().map(|t| u64::from(t.weight)).sum(),
        targets,
        connect_timeout: Duration::from_millis(u64::from(u.connect_timeout_ms.max(1))),
        read_timeout: Duration::from_millis(u64::from(u.read_timeout_ms.max(1))),
    })
}

/// The compile options an API's policy asks for.
fn compile_options(settings: &ValidationSettings) -> CompileOptions {
    CompileOptions {
        max_body_bytes: usize::try_from(settings.max_body_bytes).unwrap_or(usize::MAX),
        reject_unknown_query_params: settings.reject_unknown_query_params,
        validate_responses: settings.response != ResponseValidation::Off,
        ..CompileOptions::default()
    }
}

/// Compiles (or reuses) the validators of one version and hands one to each operation.
fn attach_validators(
    v: &Version,
    document: &Document,
    paths: &mut [PathEntry],
    policy: ValidationPolicy,
    options: CompileOptions,
    previous: Option<Arc<Validators>>,
) -> Arc<Validators> {
    if !policy.is_active() {
        return Arc::new(Validators::default());
    }
    let fingerprint = Fingerprint {
        version: v.version.clone(),
        sha256: v.sha256.clone(),
        spec_len: v.spec_json.len(),
        options,
    };
    let validators = match previous {
        // An empty SHA-256 (hand-built contents) proves nothing: compile again.
        Some(p) if !v.sha256.is_empty() && p.fingerprint.as_ref() == Some(&fingerprint) => p,
        _ => {
            let (ops, errors) = compile_document(document, &fingerprint.options);
            Arc::new(Validators {
                fingerprint: Some(fingerprint),
                operations: ops.into_iter().map(|(k, op)| (k, Arc::new(op))).collect(),
                errors,
            })
        }
    };
    for path in paths.iter_mut() {
        for op in &mut path.operations {
            op.validator = validators
                .operations
                .get(&(op.method, op.template.clone()))
                .cloned();
        }
    }
    validators
}

fn compile_major(
    v: &Version,
    upstream: Option<Arc<UpstreamEntry>>,
    forward_bearer: bool,
    policy: ValidationPolicy,
    options: Option<CompileOptions>,
    previous: Option<Arc<Validators>>,
) -> Result<MajorEntry, SnapshotError> {
    let tree: serde_json::Value =
        serde_json::from_str(&v.spec_json).map_err(|source| SnapshotError::SpecJson {
            api: v.api.clone(),
            version: v.version.clone(),
            source,
        })?;
    let document = openapi::parse_value(tree).map_err(|source| SnapshotError::Spec {
        api: v.api.clone(),
        version: v.version.clone(),
        source,
    })?;
    let (router, mut paths) =
        compile_router(&document).map_err(|(template, reason)| SnapshotError::Route {
            api: v.api.clone(),
            version: v.version.clone(),
            template,
            reason,
        })?;
    let validators = attach_validators(
        v,
        &document,
        &mut paths,
        policy,
        options.unwrap_or_default(),
        previous,
    );
    let successor = v
        .successor
        .as_deref()
        .and_then(semver_key)
        .map(|s| format!("/{}/v{}", v.api, s.major));
    let lifecycle = Lifecycle {
        stage: match v.state {
            LifecycleState::Draft | LifecycleState::Published => Stage::Published,
            LifecycleState::Deprecated => Stage::Deprecated,
            LifecycleState::Retired => Stage::Retired,
        },
        // A deprecated version always says so, even if the date was not recorded.
        deprecated_at: v
            .deprecated_at
            .or(match v.state {
                LifecycleState::Deprecated | LifecycleState::Retired => Some(v.updated_at),
                _ => None,
            })
            .map(SystemTime::from),
        sunset_at: v.sunset_at.map(SystemTime::from),
        successor: successor.clone(),
        deprecation_link: v.deprecation_link.clone(),
        brownouts: v
            .brownouts
            .iter()
            .map(|b| Window {
                start: b.start.into(),
                end: b.end.into(),
            })
            .collect(),
    };
    Ok(MajorEntry {
        api: v.api.clone(),
        major: v.major,
        version: v.version.clone(),
        lifecycle_headers: lifecycle.headers(),
        lifecycle,
        successor,
        document: Arc::new(document),
        router,
        paths,
        upstream,
        validation: policy,
        validators,
        forward_bearer,
    })
}

type RouterParts = (matchit::Router<usize>, Vec<PathEntry>);

/// Compiles a document's path templates into a router. Public so that the registry can refuse
/// a spec the gateway could not route at registration time, rather than at snapshot build.
///
/// Parameters are renamed by position (`{p<segment>}`), so two templates that name the
/// parameter at the same position differently (`/orders/{id}` and `/orders/{number}/lines`)
/// do not conflict; each operation keeps its spec's names. Templates that differ only in
/// parameter names (`/a/{id}` for DELETE, `/a/{code}` for GET, as GitHub's spec has) share
/// one route when their methods differ. Errors name the template and the reason.
pub fn compile_router(doc: &Document) -> Result<RouterParts, (String, String)> {
    let mut router = matchit::Router::new();
    let mut paths: Vec<PathEntry> = Vec::with_capacity(doc.paths.len());
    // Positional route → index in `paths`: templates that differ only in parameter names
    // are one route to the router.
    let mut routes: HashMap<String, usize> = HashMap::with_capacity(doc.paths.len());
    for item in &doc.paths {
        let (route, param_names) =
            positional_route(&item.template).map_err(|e| (item.template.clone(), e))?;
        let operations = item.operations.iter().map(|op| {
            let mut entry = compile_operation(doc, op);
            entry.template.clone_from(&item.template);
            entry.param_names.clone_from(&param_names);
            entry
        });
        if let Some(&index) = routes.get(&route) {
            // OpenAPI calls such paths identical; real specs (GitHub's) still use them,
            // with different methods. Same method twice: the gateway could not choose.
            let entry = &mut paths[index];
            for op in operations {
                // The same method twice can be told apart only when exactly one of the two
                // splits a segment at literal separators: it is tried first.
                let clash = entry
                    .operations
                    .iter()
                    .find(|o| o.method == op.method && o.splits_segments() == op.splits_segments());
                if let Some(other) = clash {
                    return Err((
                        item.template.clone(),
                        format!(
                            "it is the same path as `{}` (only parameter names differ) and both \
                             define {}",
                            other.template,
                            op.method.as_str()
                        ),
                    ));
                }
                if op.splits_segments() {
                    entry.operations.insert(0, op);
                } else {
                    entry.operations.push(op);
                }
            }
            entry.allow = allow_header(&entry.operations);
            continue;
        }
        router
            .insert(route.clone(), paths.len())
            .map_err(|e| (item.template.clone(), e.to_string()))?;
        routes.insert(route, paths.len());
        let operations: Vec<OperationEntry> = operations.collect();
        paths.push(PathEntry {
            template: item.template.clone(),
            allow: allow_header(&operations),
            operations,
        });
    }
    Ok((router, paths))
}

/// The `Allow` value of a path: its methods, sorted.
fn allow_header(operations: &[OperationEntry]) -> String {
    let mut methods: Vec<Method> = operations.iter().map(|o| o.method).collect();
    methods.sort();
    methods.dedup();
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/orders/{order_number}/lines` → `/orders/{p1}/lines` and `[("p1", "order_number")]`.
/// Literal braces outside parameters are escaped for matchit.
fn positional_route(template: &str) -> Result<(String, Vec<RouteParam>), String> {
    let mut out = String::with_capacity(template.len());
    let mut params = Vec::new();
    for (i, seg) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let parts = segment_parts(seg);
        let names: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                SegmentPart::Param(n) => Some(n.as_str()),
                SegmentPart::Literal(_) => None,
            })
            .collect();
        let key = format!("p{i}");
        match names.len() {
            0 => out.push_str(&escape_braces(seg)),
            1 => {
                // One parameter, with literal text around it: the router matches the text.
                for part in &parts {
                    match part {
                        SegmentPart::Literal(l) => out.push_str(&escape_braces(l)),
                        SegmentPart::Param(_) => {
                            out.push('{');
                            out.push_str(&key);
                            out.push('}');
                        }
                    }
                }
                params.push(RouteParam {
                    key,
                    name: names[0].to_owned(),
                    split: Vec::new(),
                });
            }
            _ => {
                // Several (`{base}...{head}`): the router takes the whole segment, split at
                // the literal separators when matched. Two parameters with nothing between
                // them could be split anywhere.
                if parts
                    .windows(2)
                    .any(|w| matches!(w, [SegmentPart::Param(_), SegmentPart::Param(_)]))
                {
                    return Err(format!(
                        "segment `{seg}` puts two parameters side by side with no text between \
                         them, so no request can tell where one ends"
                    ));
                }
                out.push('{');
                out.push_str(&key);
                out.push('}');
                params.push(RouteParam {
                    key,
                    name: String::new(),
                    split: parts,
                });
            }
        }
    }
    Ok((out, params))
}

/// One path segment of a template, as literal text and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SegmentPart {
    Literal(String),
    Param(String),
}

fn segment_parts(seg: &str) -> Vec<SegmentPart> {
    let mut parts = Vec::new();
    let mut rest = seg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        if open > 0 {
            parts.push(SegmentPart::Literal(rest[..open].to_owned()));
        }
        parts.push(SegmentPart::Param(rest[open + 1..close].to_owned()));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(SegmentPart::Literal(rest.to_owned()));
    }
    parts
}

/// A router parameter and the spec's name(s) it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteParam {
    /// The router's name (`p<segment>`).
    key: String,
    /// The spec's name, for a segment with one parameter.
    name: String,
    /// For a segment with several parameters: its literal text and parameters in order.
    split: Vec<SegmentPart>,
}

impl RouteParam {
    /// Adds the spec's parameters carried by the router's `value` to `out`; false when a
    /// segment of several parameters does not hold its literal separators.
    fn bind<'a>(&'a self, value: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
        if self.split.is_empty() {
            out.push((self.name.as_str(), value));
            return true;
        }
        let mut rest = value;
        for (i, part) in self.split.iter().enumerate() {
            match part {
                SegmentPart::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                SegmentPart::Param(name) => {
                    let end = match self.split.get(i + 1) {
                        // The last literal of the segment is a suffix: its last occurrence.
                        Some(SegmentPart::Literal(l)) if i + 2 == self.split.len() => {
                            rest.rfind(l.as_str())
                        }
                        Some(SegmentPart::Literal(l)) => rest.find(l.as_str()),
                        _ => Some(rest.len()),
                    };
                    match end {
                        Some(end) if end > 0 => {
                            out.push((name.as_str(), &rest[..end]));
                            rest = &rest[end..];
                        }
                        _ => return false,
                    }
                }
            }
        }
        rest.is_empty()
    }
}

fn escape_braces(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

fn compile_operation(doc: &Document, op: &Operation) -> OperationEntry {
    OperationEntry {
        method: op.method,
        template: String::new(),
        param_names: Vec::new(),
        name: op.display_name(),
        idempotent: op.method.is_idempotent(),
        mocks: compile_mocks(op),
        validator: None,
        security: SecurityPolicy::compile(op.effective_security(doc), &doc.security_schemes),
        sensitive_query: sensitive_query(op, doc),
    }
}

/// The query parameters whose declaration (where it sits in the document, `$ref`s already
/// followed) says `x-sensitive: true`.
fn sensitive_query(op: &Operation, doc: &Document) -> Vec<String> {
    op.parameters
        .iter()
        .filter(|p| p.location == openapi::ParamIn::Query)
        .filter(|p| {
            doc.tree
                .pointer(&p.pointer)
                .and_then(|decl| decl.get("x-sensitive"))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        })
        .map(|p| p.name.clone())
        .collect()
}

fn compile_mocks(op: &Operation) -> MockSet {
    let mut examples = Vec::new();
    let mut bare_2xx: Option<u16> = None;
    for r in &op.responses {
        let status = match r.status {
            ResponseStatus::Code(c) => c,
            ResponseStatus::Range(class) => u16::from(class) * 100,
            ResponseStatus::Default => continue,
        };
        let mut any = false;
        for media in &r.content {
            for ex in &media.examples {
                let body = match (&ex.value, media.media_type.contains("json")) {
                    (serde_json::Value::String(s), false) => Bytes::from(s.clone().into_bytes()),
                    (value, _) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
                };
                examples.push(MockExample {
                    status,
                    content_type: Some(media.media_type.clone()),
                    name: ex.name.clone(),
                    body,
                });
                any = true;
            }
        }
        if !any && (200..300).contains(&status) && bare_2xx.is_none_or(|b| status < b) {
            bare_2xx = Some(status);
        }
    }
    let with_example = examples
        .iter()
        .enumerate()
        .filter(|(_, e)| (200..300).contains(&e.status))
        .min_by_key(|(i, e)| (e.status, *i))
        .map(|(i, _)| i);
    let default = with_example.or_else(|| {
        bare_2xx.map(|status| {
            examples.push(MockExample {
                status,
                content_type: None,
                name: None,
                body: Bytes::new(),
            });
            examples.len() - 1
        })
    });
    MockSet { examples, default }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Api, Brownout, Target};
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);

    fn api(slug: &str) -> Api {
        Api {
            slug: slug.into(),
            title: slug.into(),
            description: None,
            team: "t".into(),
            version_header: true,
            default_major: Some(1),
            deprecation_notice_days: Api::DEFAULT_DEPRECATION_NOTICE_DAYS,
            validation: Default::default(),
            forward_bearer: false,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn spec(version: &str) -> serde_json::Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Orders", "version": version},
            "paths": {
                "/orders": {
                    "get": {"operationId": "listOrders", "responses": {
                        "200": {"description": "ok", "content": {"application/json": {
                            "examples": {
                                "page": {"value": {"items": []}},
                                "full": {"value": {"items": [1]}}
                            }}}},
                        "404": {"description": "none", "content": {"application/problem+json": {
                            "example": {"status": 404}}}}
                    }},
                    "post": {"operationId": "createOrder", "responses": {
                        "201": {"description": "created", "content": {"application/json": {
                            "example": {"id": 7}}}},
                        "202": {"description": "accepted"}
                    }}
                },
                "/orders/{order_number}": {
                    "parameters": [{"name": "order_number", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "get": {"responses": {"204": {"description": "none"}}}
                },
                "/orders/{id}/lines": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "delete": {"responses": {"default": {"description": "x"}}}
                }
            }
        })
    }

    fn version(api: &str, v: &str, state: LifecycleState) -> Version {
        let sv = semver::Version::parse(v).unwrap();
        Version {
            api: api.into(),
            version: v.into(),
            major: sv.major,
            state,
            spec_raw: Vec::new(),
            spec_json: spec(v).to_string(),
            sha256: String::new(),
            content_type: "application/json".into(),
            deprecated_at: None,
            sunset_at: None,
            successor: None,
            deprecation_link: None,
            brownouts: Vec::new(),
            created_by: "t".into(),
            created_at: NOW,
            updated_by: "t".into(),
            updated_at: NOW,
        }
    }

    fn contents() -> Contents {
        Contents {
            generation: 42,
            apis: vec![api("orders")],
            versions: vec![
                version("orders", "1.0.0", LifecycleState::Deprecated),
                version("orders", "1.2.0", LifecycleState::Published),
                version("orders", "1.3.0", LifecycleState::Draft),
                version("orders", "2.0.0", LifecycleState::Published),
                version("orders", "3.0.0", LifecycleState::Draft),
            ],
            upstreams: vec![Upstream {
                api: "orders".into(),
                major: 1,
                targets: vec![
                    Target {
                        url: "http://127.0.0.1:9001/erp/".into(),
                        weight: 80,
                    },
                    Target {
                        url: "mock://".into(),
                        weight: 20,
                    },
                ],
                connect_timeout_ms: 250,
                read_timeout_ms: 2_000,
            }],
            ..Contents::default()
        }
    }

    #[test]
    fn the_latest_non_draft_version_of_each_major_is_routable() {
        let s = Snapshot::compile(&contents(), NOW).unwrap();
        assert_eq!(s.generation, 42);
        let a = s.api("orders").unwrap();
        assert_eq!(a.available_majors(), vec![1, 2]);
        assert_eq!(a.majors[&1].version, "1.2.0");
        assert_eq!(a.majors[&2].version, "2.0.0");
        assert!(a.majors[&2].upstream.is_none());
        assert!(s.api("inventory").is_none());
    }

    #[test]
    fn routes_match_templates_and_report_405_with_allow() {
        let s = Snapshot::compile(&contents(), NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&1];
        assert!(matches!(
            m.lookup(Some(Method::Get), "/orders"),
            PathLookup::Found {
                path: 0,
                operation: 0,
                ..
            }
        ));
        match m.lookup(Some(Method::Get), "/orders/SO-1%2F2") {
            PathLookup::Found { params, .. } => {
                assert_eq!(params, vec![("order_number", "SO-1%2F2")]);
            }
            other => panic!("{other:?}"),
        }
        // Differently named parameters at the same position do not conflict.
        match m.lookup(Some(Method::Delete), "/orders/9/lines") {
            PathLookup::Found { params, .. } => assert_eq!(params, vec![("id", "9")]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m.lookup(Some(Method::Put), "/orders"),
            PathLookup::MethodNotAllowed { allow: "GET, POST" }
        );
        assert_eq!(
            m.lookup(None, "/orders"),
            PathLookup::MethodNotAllowed { allow: "GET, POST" }
        );
        assert_eq!(m.lookup(Some(Method::Get), "/nope"), PathLookup::NotFound);
        assert_eq!(
            m.lookup(Some(Method::Get), "/orders/1/2/3"),
            PathLookup::NotFound
        );
    }

    #[test]
    fn mock_examples_default_to_the_lowest_2xx_and_honour_preferences() {
        let s = Snapshot::compile(&contents(), NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&1];
        let list = &m.paths[0].operations[0].mocks;
        let (e, honoured) = list.select(None, None).unwrap();
        assert_eq!(
            (e.status, e.name.as_deref(), honoured),
            (200, Some("page"), false)
        );
        assert_eq!(&e.body[..], br#"{"items":[]}"#);
        let (e, honoured) = list.select(None, Some("full")).unwrap();
        assert_eq!((e.name.as_deref(), honoured), (Some("full"), true));
        let (e, _) = list.select(Some(404), None).unwrap();
        assert_eq!(e.status, 404);
        assert_eq!(e.content_type.as_deref(), Some("application/problem+json"));
        let (e, honoured) = list.select(Some(418), None).unwrap();
        assert_eq!((e.status, honoured), (200, false));
        let create = &m.paths[0].operations[1].mocks;
        assert_eq!(create.select(None, None).unwrap().0.status, 201);
        let get_one = &m.paths[1].operations[0].mocks;
        let (e, _) = get_one.select(None, None).unwrap();
        assert_eq!(
            (e.status, e.content_type.as_deref(), e.body.len()),
            (204, None, 0)
        );
        let delete = &m.paths[2].operations[0].mocks;
        assert!(delete.select(None, None).is_none());
    }

    #[test]
    fn upstreams_compile_with_weights_slots_and_timeouts() {
        let s = Snapshot::compile(&contents(), NOW).unwrap();
        let up = s.api("orders").unwrap().majors[&1]
            .upstream
            .clone()
            .unwrap();
        assert_eq!(up.total_weight, 100);
        assert_eq!(up.connect_timeout, Duration::from_millis(250));
        assert_eq!(up.read_timeout, Duration::from_secs(2));
        match &up.targets[0].kind {
            TargetKind::Http(h) => {
                assert_eq!(h.addr, Some("127.0.0.1:9001".parse().unwrap()));
                assert_eq!(h.base_path, "/erp");
                assert_eq!(h.authority, "127.0.0.1:9001");
            }
            TargetKind::Mock => panic!("expected http"),
        }
        assert_eq!(up.targets[1].kind, TargetKind::Mock);
        assert_eq!(s.target_urls, vec!["http://127.0.0.1:9001/erp/", "mock://"]);
        assert_eq!(up.choose(0, |_| false), Some(0));
        assert_eq!(up.choose(79, |_| false), Some(0));
        assert_eq!(up.choose(80, |_| false), Some(1));
        assert_eq!(up.choose(180, |_| false), Some(1));
        // A skipped target gets nothing; when every target is skipped, all are eligible.
        assert_eq!(up.choose(0, |t| t.slot == 0), Some(1));
        assert_eq!(up.choose(0, |_| true), Some(0));
    }

    #[test]
    fn target_urls_are_checked() {
        assert_eq!(parse_target_url("mock://"), Ok(TargetKind::Mock));
        assert!(matches!(
            parse_target_url("https://erp.example"),
            Err(TargetUrlError::Scheme { .. })
        ));
        assert_eq!(parse_target_url("erp"), Err(TargetUrlError::NotAUrl));
        assert_eq!(
            parse_target_url("http://user:pw@erp.internal"),
            Err(TargetUrlError::Credentials)
        );
        assert_eq!(
            parse_target_url("http://erp/x?y=1"),
            Err(TargetUrlError::QueryOrFragment)
        );
        match parse_target_url("http://[::1]:8080").unwrap() {
            TargetKind::Http(h) => {
                assert_eq!(h.addr, Some("[::1]:8080".parse().unwrap()));
                assert_eq!(h.base_path, "");
            }
            TargetKind::Mock => panic!(),
        }
        match parse_target_url("http://erp.internal").unwrap() {
            TargetKind::Http(h) => assert_eq!((h.addr, h.port), (None, 80)),
            TargetKind::Mock => panic!(),
        }
    }

    #[test]
    fn lifecycle_is_compiled_with_successor_and_brownouts() {
        let mut c = contents();
        c.versions[1].state = LifecycleState::Deprecated;
        c.versions[1].deprecated_at = Some(datetime!(2026-01-01 0:00 UTC));
        c.versions[1].sunset_at = Some(datetime!(2026-06-30 0:00 UTC));
        c.versions[1].successor = Some("2.0.0".into());
        c.versions[1].brownouts = vec![Brownout {
            start: datetime!(2026-03-02 11:00 UTC),
            end: datetime!(2026-03-02 13:00 UTC),
        }];
        let s = Snapshot::compile(&c, NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&1];
        assert_eq!(m.successor.as_deref(), Some("/orders/v2"));
        assert_eq!(
            m.lifecycle_headers[0],
            ("deprecation", "@1767225600".to_owned())
        );
        assert_eq!(
            m.lifecycle_headers[1],
            ("sunset", "Tue, 30 Jun 2026 00:00:00 GMT".to_owned())
        );
        assert_eq!(
            m.lifecycle_headers[2],
            ("link", "</orders/v2>; rel=\"successor-version\"".to_owned())
        );
        assert!(matches!(
            m.lifecycle.verdict(SystemTime::from(NOW)),
            gatehouse_policies::lifecycle::Verdict::Gone(_)
        ));
    }

    #[test]
    fn bad_contents_fail_with_fielded_errors() {
        let mut c = contents();
        c.versions[1].spec_json = "{".into();
        assert!(matches!(
            Snapshot::compile(&c, NOW),
            Err(SnapshotError::SpecJson { ref version, .. }) if version == "1.2.0"
        ));
        let mut c = contents();
        c.upstreams[0].targets[0].url = "ftp://x".into();
        assert!(matches!(
            Snapshot::compile(&c, NOW),
            Err(SnapshotError::Target { major: 1, .. })
        ));
        let mut c = contents();
        c.versions[0].api = "ghost".into();
        assert!(matches!(
            Snapshot::compile(&c, NOW),
            Err(SnapshotError::OrphanVersion { .. })
        ));
    }

    #[test]
    fn every_operation_gets_its_compiled_validator_and_the_api_policy() {
        let mut c = contents();
        c.apis[0].validation.response = ResponseValidation::Enforce;
        c.apis[0].validation.max_body_bytes = 4_096;
        let s = Snapshot::compile(&c, NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&1];
        assert_eq!(m.validation.response, ResponseValidation::Enforce);
        assert_eq!(m.validation.max_body_bytes, 4_096);
        assert!(m.validators.errors.is_empty());
        for path in &m.paths {
            for op in &path.operations {
                let v = op.validator.as_ref().unwrap();
                assert_eq!(v.max_body_bytes(), 4_096);
                assert!(v.validates_responses());
                assert!(Arc::ptr_eq(
                    v,
                    &m.validators.operations[&(op.method, path.template.clone())]
                ));
            }
        }
        // Nothing to validate: nothing compiled.
        c.apis[0].validation.request = false;
        c.apis[0].validation.response = ResponseValidation::Off;
        let s = Snapshot::compile(&c, NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&1];
        assert!(m.validators.operations.is_empty());
        assert!(m.paths[0].operations[0].validator.is_none());
    }

    #[test]
    fn validators_are_reused_while_spec_and_policy_are_unchanged() {
        let mut c = contents();
        for v in &mut c.versions {
            v.sha256 = format!("sha-of-{}", v.version);
        }
        let first = Snapshot::compile(&c, NOW).unwrap();
        let validators =
            |s: &Snapshot, major: u64| s.api("orders").unwrap().majors[&major].validators.clone();
        c.generation += 1;
        let second = Snapshot::compile_reusing(&c, NOW, Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&validators(&first, 1), &validators(&second, 1)));
        assert!(Arc::ptr_eq(&validators(&first, 2), &validators(&second, 2)));
        // A new policy recompiles; so does a version without a digest.
        c.apis[0].validation.reject_unknown_query_params = true;
        c.versions[3].sha256 = String::new();
        let third = Snapshot::compile_reusing(&c, NOW, Some(&second)).unwrap();
        assert!(!Arc::ptr_eq(
            &validators(&second, 1),
            &validators(&third, 1)
        ));
        let fourth = Snapshot::compile_reusing(&c, NOW, Some(&third)).unwrap();
        assert!(Arc::ptr_eq(&validators(&third, 1), &validators(&fourth, 1)));
        assert!(!Arc::ptr_eq(
            &validators(&third, 2),
            &validators(&fourth, 2)
        ));
    }

    #[test]
    fn a_schema_that_does_not_compile_is_left_unchecked_not_fatal() {
        let mut c = contents();
        let mut spec = spec("2.0.0");
        spec["paths"]["/orders"]["post"]["requestBody"] = json!({"content": {"application/json":
            {"schema": {"type": "string", "pattern": "^[a-z"}}}});
        c.versions[3].spec_json = spec.to_string();
        let s = Snapshot::compile(&c, NOW).unwrap();
        let m = &s.api("orders").unwrap().majors[&2];
        assert_eq!(m.validators.errors.len(), 1, "{:?}", m.validators.errors);
        assert_eq!(
            m.validators.errors[0].pointer(),
            "/paths/~1orders/post/requestBody/content/application~1json/schema/pattern"
        );
        // The operation keeps its other checks (here: the content type).
        let create = m.paths[0].operations[1].validator.as_ref().unwrap();
        assert!(!create.accepts_content_type("text/plain"));
        assert!(create.accepts_content_type("application/json"));
    }

    #[test]
    fn plans_compile_per_subscription_with_overrides() {
        use crate::model::{Quota, Rate, RateOverride, Subscription};
        let mut c = contents();
        c.plans = vec![Plan {
            name: "partner".into(),
            rate: Rate {
                requests: 20,
                per_seconds: 1,
                burst: Some(10),
            },
            quota: Some(Quota {
                requests: 1000,
                period: QuotaPeriod::Day,
            }),
            overrides: vec![RateOverride {
                operation_id: "createOrder".into(),
                rate: Rate {
                    requests: 2,
                    per_seconds: 1,
                    burst: None,
                },
            }],
            on_redis_failure: RedisFailure::Closed,
        }];
        c.subscriptions = vec![Subscription {
            consumer: "edi".into(),
            api: "orders".into(),
            majors: vec![],
            plan: "partner".into(),
            scopes: vec![],
        }];
        let s = Snapshot::compile(&c, NOW).unwrap();
        let p = s.limits_for("edi", "orders").unwrap();
        assert!(Arc::ptr_eq(p, s.plan("partner").unwrap()));
        assert!(s.limits_for("edi", "inventory").is_none());
        assert!(s.limits_for("b2b", "orders").is_none());
        assert_eq!(p.on_failure, OnFailure::Closed);
        assert_eq!(p.rate.policy_item, r#""partner";q=20;w=1"#);
        let (r, own) = p.rate_for(Some("createOrder"));
        assert_eq!(
            (r.name.as_str(), own, r.gcra.burst()),
            ("partner/createOrder", true, 2)
        );
        assert_eq!(p.quota_name, "partner/quota");
        c.plans[0].overrides[0].rate.requests = 0;
        assert!(matches!(
            Snapshot::compile(&c, NOW),
            Err(SnapshotError::Plan { ref plan, .. }) if plan == "partner"
        ));
    }

    #[test]
    fn snapshots_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Snapshot>();
    }

    #[test]
    fn positional_routes() {
        let (route, params) = positional_route("/orders/{order_number}/lines/{line}").unwrap();
        assert_eq!(route, "/orders/{p2}/lines/{p4}");
        let names: Vec<(&str, &str)> = params
            .iter()
            .map(|p| (p.key.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(names, [("p2", "order_number"), ("p4", "line")]);
        assert_eq!(
            positional_route("/files/{name}.json").unwrap().0,
            "/files/{p2}.json"
        );
        // Several parameters in one segment: the router takes the segment whole.
        assert_eq!(
            positional_route("/repos/{owner}/{repo}/compare/{base}...{head}")
                .unwrap()
                .0,
            "/repos/{p2}/{p3}/compare/{p5}"
        );
        assert!(positional_route("/x/{a}{b}").is_err());
    }

    #[test]
    fn a_segment_of_several_parameters_is_split_at_its_separators() {
        let (_, params) = positional_route("/packages/{name}-{version}.zip").unwrap();
        let p = &params[0];
        let bind = |v: &'static str| {
            let mut out = Vec::new();
            p.bind(v, &mut out).then_some(out)
        };
        assert_eq!(
            bind("wrap-1.2.3.zip"),
            Some(vec![("name", "wrap"), ("version", "1.2.3")])
        );
        assert_eq!(
            bind("pallet-wrap-2.zip"),
            Some(vec![("name", "pallet"), ("version", "wrap-2")])
        );
        for bad in ["wrap.zip", "-1.zip", "wrap-1.tar", "wrap-.zip"] {
            assert_eq!(bind(bad), None, "{bad}");
        }
        let (_, params) = positional_route("/compare/{base}...{head}").unwrap();
        let mut out = Vec::new();
        assert!(params[0].bind("main...feature/x", &mut out));
        assert_eq!(out, [("base", "main"), ("head", "feature/x")]);
    }

    #[test]
    fn one_method_on_one_route_is_told_apart_by_how_its_segment_splits() {
        // GitHub: GET /compare/{basehead} and GET /compare/{base}...{head}.
        let op = |id: &str, names: &[&str]| {
            let params: Vec<serde_json::Value> = names
                .iter()
                .map(|n| serde_json::json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            serde_json::json!({"get": {"operationId": id, "parameters": params,
                "responses": {"200": {"description": "ok"}}}})
        };
        let doc = openapi::parse_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1.0.0"},
            "paths": {
                "/compare/{basehead}": op("basehead", &["basehead"]),
                "/compare/{base}...{head}": op("split", &["base", "head"])
            }
        }))
        .unwrap();
        let (router, paths) = compile_router(&doc).unwrap();
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].allow, "GET");
        let found = |path: &str| match lookup_in(&router, &paths, Some(Method::Get), path) {
            PathLookup::Found {
                operation, params, ..
            } => Some((paths[0].operations[operation].name.clone(), params.len())),
            _ => None,
        };
        assert_eq!(found("/compare/main...dev"), Some(("split".into(), 2)));
        assert_eq!(found("/compare/main"), Some(("basehead".into(), 1)));
    }

    #[test]
    fn templates_that_differ_only_in_names_share_a_route_per_method() {
        let op = |id: &str, name: &str| {
            serde_json::json!({"operationId": id, "parameters": [
                {"name": "org", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": name, "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}}})
        };
        let doc = |second: &str| {
            openapi::parse_value(serde_json::json!({
                "openapi": "3.1.0",
                "info": {"title": "t", "version": "1.0.0"},
                "paths": {
                    "/orgs/{org}/attestations/{attestation_id}": {"delete": op("del", "attestation_id")},
                    "/orgs/{org}/attestations/{subject_digest}": {second: op("get", "subject_digest")}
                }
            }))
            .unwrap()
        };
        let (router, paths) = compile_router(&doc("get")).unwrap();
        assert_eq!(paths.len(), 1);
        assert!(paths[0].allow.contains("GET") && paths[0].allow.contains("DELETE"));
        let m = router.at("/orgs/acme/attestations/sha256:1").unwrap();
        let entry = &paths[*m.value];
        let get = entry
            .operations
            .iter()
            .find(|o| o.method == Method::Get)
            .unwrap();
        assert_eq!(get.template, "/orgs/{org}/attestations/{subject_digest}");
        assert!(get.param_names.iter().any(|p| p.name == "subject_digest"));
        let del = entry
            .operations
            .iter()
            .find(|o| o.method == Method::Delete)
            .unwrap();
        assert!(del.param_names.iter().any(|p| p.name == "attestation_id"));
        // The same method under both: no way to choose.
        let (template, reason) = compile_router(&doc("delete")).unwrap_err();
        assert_eq!(template, "/orgs/{org}/attestations/{subject_digest}");
        assert!(reason.contains("DELETE"), "{reason}");
    }

    #[test]
    fn query_parameters_marked_sensitive_are_known_per_operation() {
        let doc = openapi::parse_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1.0.0"},
            "components": {"parameters": {"Ssn": {
                "name": "ssn", "in": "query", "x-sensitive": true, "schema": {"type": "string"}
            }}},
            "paths": {"/people": {
                "parameters": [{"name": "otp", "in": "query", "x-sensitive": true}],
                "get": {
                    "parameters": [
                        {"$ref": "#/components/parameters/Ssn"},
                        {"name": "name", "in": "query"},
                        {"name": "x-trace", "in": "header", "x-sensitive": true}
                    ],
                    "responses": {"200": {"description": "ok"}}
                }
            }}
        }))
        .unwrap();
        let (_, paths) = compile_router(&doc).unwrap();
        let op = &paths[0].operations[0];
        let mut names = op.sensitive_query.clone();
        names.sort();
        assert_eq!(names, ["otp", "ssn"]);
        assert!(op.is_sensitive_query("ssn"));
        assert!(!op.is_sensitive_query("name"));
    }
}
