//! Gateway metrics in the Prometheus text exposition format (version 0.0.4), served by the
//! admin API at `GET /metrics`.
//!
//! Hand-rolled on atomics rather than `prometheus-client`: there, a labelled family looks up
//! an owned label set per observation (allocating `String`s on the hot path). Here a request
//! resolves its `(api, major)` series once (a read lock and a hash, no allocation once the
//! series exists), and every later observation is a relaxed `fetch_add`. The label values
//! come from the snapshot, never from the raw request, so an attacker cannot grow the series
//! set: requests that match no API share one `api="(none)"` series.
//!
//! Series:
//! - `gatehouse_requests_total{api,major,class,outcome}`: counter.
//! - `gatehouse_request_duration_seconds{api,major}`: histogram of total latency.
//! - `gatehouse_overhead_duration_seconds{api,major}`: histogram of the gateway's own time
//!   (total minus the time waiting for the upstream).
//! - `gatehouse_consumer_requests_total{api,major,consumer,outcome}`: counter. Consumer
//!   names come from the registry (a credential identified them), never from the request, and
//!   their number is bounded: the first `consumer_limit` distinct consumers a node sees get a
//!   label of their own for good, every later one counts under `consumer="other"`; requests
//!   no credential identified count under `consumer="(none)"`. First-come rather than a
//!   re-ranked top-N, so a series never changes meaning and counters never go backwards.
//! - `gatehouse_upstream_errors_total{kind}`: counter.
//! - `gatehouse_snapshot_generation`, `gatehouse_snapshot_age_seconds`: gauges;
//!   `gatehouse_snapshot_build_failures_total`: counter.
//! - Synchronisation with the registry: `gatehouse_registry_head_generation` (the newest
//!   change the reloader has seen), `gatehouse_snapshot_behind` (head minus the generation
//!   served) and `gatehouse_snapshot_sync_seconds` (for the snapshot being served: from the
//!   commit of its newest change to its installation on this node).
//! - `gatehouse_requests_in_flight`: gauge.
//! - `gatehouse_request_validation_refusals_total{api,major,status}`: counter (400, 411, 413,
//!   415 answered by request validation).
//! - `gatehouse_response_validation_total{api,major,result}`: counter (`conforming`,
//!   `reported`, `enforced`, `unchecked`).
//! - `gatehouse_validation_unchecked_schemas`: gauge, schemas of the served snapshot that
//!   did not compile and are left unchecked.
//! - `gatehouse_ratelimit_decisions_total{backend,result}`: counter; backend `local`,
//!   `redis` or `fallback` (local limits standing in for Redis), result `allowed`,
//!   `rate_exceeded`, `quota_exceeded` or `unavailable` (fail-closed while degraded).
//! - `gatehouse_ratelimit_redis_errors_total`: counter; `gatehouse_ratelimit_redis_degraded`
//!   (1 while Redis is unreachable) and `gatehouse_ratelimit_live_nodes`: gauges (cluster
//!   mode); `gatehouse_ratelimit_local_keys`: gauge.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// How a request ended, from the gateway's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by an upstream.
    Proxied,
    /// Answered from the spec's examples (`mock://`).
    Mocked,
    /// Refused by the gateway itself (4xx: routing, lifecycle, later identity and limits).
    Refused,
    /// The gateway could not get an answer from the upstream (502/503/504).
    UpstreamFailed,
    /// The client went away or the gateway failed internally.
    Aborted,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Proxied,
        Outcome::Mocked,
        Outcome::Refused,
        Outcome::UpstreamFailed,
        Outcome::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Mocked => "mocked",
            Outcome::Refused => "refused",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::Aborted => "aborted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Kinds of upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectOther,
    ReadTimeout,
    WriteTimeout,
    /// The connection broke or the upstream sent something unusable.
    Protocol,
    /// No target could be chosen (none registered, none resolvable).
    NoTarget,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 7] = [
        UpstreamErrorKind::ConnectRefused,
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::ConnectOther,
        UpstreamErrorKind::ReadTimeout,
        UpstreamErrorKind::WriteTimeout,
        UpstreamErrorKind::Protocol,
        UpstreamErrorKind::NoTarget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "connect_refused",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::ConnectOther => "connect_error",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
            UpstreamErrorKind::WriteTimeout => "write_timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::NoTarget => "no_target",
        }
    }
}

/// The statuses request validation answers with, in counter order.
const VALIDATION_STATUSES: [u16; 4] = [400, 411, 413, 415];

/// The outcome of one response check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCheck {
    /// The response matched the contract.
    Conforming,
    /// It did not, and was relayed (`report`).
    Reported,
    /// It did not, and was replaced by a 502 (`enforce`).
    Enforced,
    /// Too large to buffer: relayed unchecked.
    Unchecked,
}

impl ResponseCheck {
    const ALL: [ResponseCheck; 4] = [
        ResponseCheck::Conforming,
        ResponseCheck::Reported,
        ResponseCheck::Enforced,
        ResponseCheck::Unchecked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseCheck::Conforming => "conforming",
            ResponseCheck::Reported => "reported",
            ResponseCheck::Enforced => "enforced",
            ResponseCheck::Unchecked => "unchecked",
        }
    }
}

/// Upper bounds (seconds) of the total-latency buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the overhead buckets: the gateway's own time is microseconds.
const OVERHEAD_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// A fixed-bucket histogram on atomics; sums are kept in microseconds.
#[derive(Debug)]
struct Histogram {
    bounds_us: &'static [u64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

fn bounds_us(bounds: &[f64]) -> Vec<u64> {
    bounds
        .iter()
        .map(|b| (b * 1_000_000.0).round() as u64)
        .collect()
}

fn latency_bounds_us() -> &'static [u64] {
    static B: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    B.get_or_init(|| bounds_us(&LATENCY_BUCKETS))
}

fn overhead_bounds_us() -> &'static [u64] {
    static B: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    B.get_or_init(|| bounds_us(&OVERHEAD_BUCKETS))
}

impl Histogram {
    fn new(bounds_us: &'static [u64]) -> Self {
        Histogram {
            bounds_us,
            buckets: (0..bounds_us.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // Non-cumulative buckets; made cumulative when rendered.
        let i = self.bounds_us.partition_point(|&b| b < us);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (b, bound) in self.buckets.iter().zip(bounds) {
            cumulative += b.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Requests per outcome.
type OutcomeCounters = [AtomicU64; 5];

/// The series of one `(api, major)`.
#[derive(Debug)]
pub struct RouteSeries {
    /// `[status class 1..=5][outcome]`.
    requests: [[AtomicU64; 5]; 5],
    latency: Histogram,
    overhead: Histogram,
    /// Request validation refusals by [`VALIDATION_STATUSES`].
    validation_refusals: [AtomicU64; 4],
    /// Response checks by [`ResponseCheck`].
    response_checks: [AtomicU64; 4],
    /// By consumer name; consumers beyond the label limit share `other`.
    consumers: RwLock<HashMap<String, Arc<OutcomeCounters>>>,
    anonymous: OutcomeCounters,
    other: Arc<OutcomeCounters>,
}

impl RouteSeries {
    fn new() -> Self {
        RouteSeries {
            requests: Default::default(),
            latency: Histogram::new(latency_bounds_us()),
            overhead: Histogram::new(overhead_bounds_us()),
            validation_refusals: Default::default(),
            response_checks: Default::default(),
            consumers: RwLock::new(HashMap::new()),
            anonymous: Default::default(),
            other: Arc::new(Default::default()),
        }
    }

    /// Records a request refused by validation with `status`.
    pub fn validation_refused(&self, status: u16) {
        if let Some(i) = VALIDATION_STATUSES.iter().position(|&s| s == status) {
            self.validation_refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the outcome of one response check.
    pub fn response_checked(&self, check: ResponseCheck) {
        self.response_checks[check as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished request.
    pub fn observe(&self, status: u16, outcome: Outcome, total: Duration, upstream: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests[class][outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(total);
        self.overhead.observe(total.saturating_sub(upstream));
    }
}

/// Rate-limit counters and gauges.
#[derive(Debug, Default)]
pub struct LimitMetrics {
    /// `[backend][allowed, rate_exceeded, quota_exceeded]`.
    decisions: [[AtomicU64; 3]; 3],
    unavailable: AtomicU64,
    redis_errors: AtomicU64,
    /// -1: not in cluster mode.
    degraded: AtomicI64,
    live_nodes: AtomicI64,
    local_keys: AtomicI64,
}

impl LimitMetrics {
    fn new() -> Self {
        LimitMetrics {
            degraded: AtomicI64::new(-1),
            ..LimitMetrics::default()
        }
    }

    pub fn decided(
        &self,
        backend: crate::limits::Backend,
        exceeded: Option<gatehouse_policies::ratelimit::Exceeded>,
    ) {
        use gatehouse_policies::ratelimit::Exceeded;
        let result = match exceeded {
            None => 0,
            Some(Exceeded::Rate) => 1,
            Some(Exceeded::Quota) => 2,
        };
        self.decisions[backend as usize][result].fetch_add(1, Ordering::Relaxed);
    }

    pub fn unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    pub fn redis_error(&self) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_cluster(&self, degraded: bool, live_nodes: u32) {
        self.degraded.store(i64::from(degraded), Ordering::Relaxed);
        self.live_nodes
            .store(i64::from(live_nodes), Ordering::Relaxed);
    }

    pub fn set_local_keys(&self, keys: usize) {
        self.local_keys
            .store(i64::try_from(keys).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        use crate::limits::Backend;
        out.push_str("# HELP gatehouse_ratelimit_decisions_total Rate-limit decisions by backend and result.\n");
        out.push_str("# TYPE gatehouse_ratelimit_decisions_total counter\n");
        for backend in Backend::ALL {
            for (i, result) in ["allowed", "rate_exceeded", "quota_exceeded"]
                .iter()
                .enumerate()
            {
                let n = self.decisions[backend as usize][i].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "gatehouse_ratelimit_decisions_total{{backend=\"{}\",result=\"{result}\"}} {n}",
                        backend.as_str()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "gatehouse_ratelimit_decisions_total{{backend=\"fallback\",result=\"unavailable\"}} {}",
            self.unavailable.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP gatehouse_ratelimit_redis_errors_total Failed Redis rate-limit calls.\n\
             # TYPE gatehouse_ratelimit_redis_errors_total counter\n\
             gatehouse_ratelimit_redis_errors_total {}\n\
             # HELP gatehouse_ratelimit_local_keys Rate keys held by the local limiter.\n\
             # TYPE gatehouse_ratelimit_local_keys gauge\n\
             gatehouse_ratelimit_local_keys {}\n",
            self.redis_errors.load(Ordering::Relaxed),
            self.local_keys.load(Ordering::Relaxed),
        );
        let degraded = self.degraded.load(Ordering::Relaxed);
        if degraded >= 0 {
            let _ = write!(
                out,
                "# HELP gatehouse_ratelimit_redis_degraded 1 while Redis is unreachable and local limits stand in.\n\
                 # TYPE gatehouse_ratelimit_redis_degraded gauge\n\
                 gatehouse_ratelimit_redis_degraded {degraded}\n\
                 # HELP gatehouse_ratelimit_live_nodes Gateway nodes seen alive by the Redis heartbeat.\n\
                 # TYPE gatehouse_ratelimit_live_nodes gauge\n\
                 gatehouse_ratelimit_live_nodes {}\n",
                self.live_nodes.load(Ordering::Relaxed)
            );
        }
    }
}

/// Series by API slug, then by major (few per API: a linear scan beats a second hash).
type RouteTable = HashMap<String, Vec<(u64, Arc<RouteSeries>)>>;

/// Consumer labels a node hands out before the rest count as `other`.
pub const DEFAULT_CONSUMER_LIMIT: usize = 50;

/// All gateway metrics. Shared behind an `Arc` by the proxy, the holder and the admin API.
#[derive(Debug)]
pub struct Metrics {
    routes: RwLock<RouteTable>,
    unrouted: Arc<RouteSeries>,
    upstream_errors: [AtomicU64; 7],
    in_flight: AtomicI64,
    snapshot_generation: AtomicI64,
    snapshot_built_at_ms: AtomicI64,
    snapshot_failures: AtomicU64,
    unchecked_schemas: AtomicU64,
    /// Rate limits.
    pub limits: LimitMetrics,
    /// Milliseconds from the commit of the served generation to its installation (-1: unknown).
    snapshot_sync_ms: AtomicI64,
    registry_head: AtomicI64,
    /// Consumers that have a label of their own.
    labelled: Mutex<HashSet<String>>,
    consumer_limit: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_consumer_limit(DEFAULT_CONSUMER_LIMIT)
    }

    /// Metrics that give at most `limit` consumers a label of their own.
    pub fn with_consumer_limit(limit: usize) -> Self {
        Metrics {
            routes: RwLock::new(HashMap::new()),
            unrouted: Arc::new(RouteSeries::new()),
            upstream_errors: Default::default(),
            in_flight: AtomicI64::new(0),
            snapshot_generation: AtomicI64::new(0),
            snapshot_built_at_ms: AtomicI64::new(0),
            snapshot_failures: AtomicU64::new(0),
            unchecked_schemas: AtomicU64::new(0),
            limits: LimitMetrics::new(),
            snapshot_sync_ms: AtomicI64::new(-1),
            registry_head: AtomicI64::new(0),
            labelled: Mutex::new(HashSet::new()),
            consumer_limit: limit,
        }
    }

    /// How many schemas of the served snapshot are left unchecked (did not compile).
    pub fn record_unchecked_schemas(&self, n: usize) {
        self.unchecked_schemas
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts one request of `consumer` (`None`: not identified) on a route's series. After
    /// the first request of a consumer on a route this is a read lock and a hash lookup.
    pub fn consumer_outcome(&self, series: &RouteSeries, consumer: Option<&str>, outcome: Outcome) {
        let Some(name) = consumer else {
            series.anonymous[outcome.index()].fetch_add(1, Ordering::Relaxed);
            return;
        };
        let known = series
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let counters = match known {
            Some(c) => c,
            None => {
                let labelled = {
                    let mut set = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
                    if set.contains(name) {
                        true
                    } else if set.len() < self.consumer_limit {
                        set.insert(name.to_owned());
                        true
                    } else {
                        false
                    }
                };
                let mut map = series.consumers.write().unwrap_or_else(|e| e.into_inner());
                map.entry(name.to_owned())
                    .or_insert_with(|| {
                        if labelled {
                            Arc::new(Default::default())
                        } else {
                            series.other.clone()
                        }
                    })
                    .clone()
            }
        };
        counters[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the newest registry generation the reloader has seen.
    pub fn record_head(&self, seq: i64) {
        self.registry_head.fetch_max(seq, Ordering::Relaxed);
    }

    /// Records how long the served snapshot took to arrive: from the commit of its newest
    /// change (`committed_at`) to now, when it is installed.
    pub fn record_sync(&self, committed_at: Option<OffsetDateTime>, installed_at: OffsetDateTime) {
        let ms = committed_at.map_or(-1, |c| {
            i64::try_from((installed_at - c).whole_milliseconds())
                .unwrap_or(i64::MAX)
                .max(0)
        });
        self.snapshot_sync_ms.store(ms, Ordering::Relaxed);
    }

    /// The series of a routed request; created on first use.
    pub fn route(&self, api: &str, major: u64) -> Arc<RouteSeries> {
        {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = routes
                .get(api)
                .and_then(|v| v.iter().find(|(m, _)| *m == major))
            {
                return s.1.clone();
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let majors = routes.entry(api.to_owned()).or_default();
        if let Some((_, s)) = majors.iter().find(|(m, _)| *m == major) {
            return s.clone();
        }
        let s = Arc::new(RouteSeries::new());
        majors.push((major, s.clone()));
        s
    }

    /// The series of requests that matched no API.
    pub fn unrouted(&self) -> Arc<RouteSeries> {
        self.unrouted.clone()
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(c) = self.upstream_errors.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn record_snapshot(&self, generation: i64, built_at: OffsetDateTime) {
        self.snapshot_generation
            .store(generation, Ordering::Relaxed);
        self.record_head(generation);
        let ms = i64::try_from(built_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        self.snapshot_built_at_ms.store(ms, Ordering::Relaxed);
    }

    pub fn record_snapshot_failure(&self) {
        self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.render_at(OffsetDateTime::now_utc())
    }

    fn render_at(&self, now: OffsetDateTime) -> String {
        let mut out = String::with_capacity(4096);
        let mut series: Vec<(String, String, Arc<RouteSeries>)> = {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            routes
                .iter()
                .flat_map(|(api, majors)| {
                    majors
                        .iter()
                        .map(move |(m, s)| (escape(api), m.to_string(), s.clone()))
                })
                .collect()
        };
        series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        series.push(("(none)".into(), String::new(), self.unrouted.clone()));

        out.push_str(
            "# HELP gatehouse_requests_total Requests by API, major, status class and outcome.\n",
        );
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        for (api, major, s) in &series {
            for (class, row) in s.requests.iter().enumerate() {
                for outcome in Outcome::ALL {
                    let n = row[outcome.index()].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "gatehouse_requests_total{{api=\"{api}\",major=\"{major}\",class=\"{}xx\",outcome=\"{}\"}} {n}",
                            class + 1,
                            outcome.as_str()
                        );
                    }
                }
            }
        }
        out.push_str(
            "# HELP gatehouse_consumer_requests_total Requests by API, major, consumer and outcome.\n",
        );
        out.push_str("# TYPE gatehouse_consumer_requests_total counter\n");
        for (api, major, s) in &series {
            let mut rows: Vec<(String, Arc<OutcomeCounters>)> = s
                .consumers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, c)| !Arc::ptr_eq(c, &s.other))
                .map(|(name, c)| (escape(name), c.clone()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let fixed = [("(none)", &s.anonymous), ("other", &*s.other)];
            let named = rows.iter().map(|(n, c)| (n.as_str(), &**c));
            for (consumer, counters) in named.chain(fixed) {
                for outcome in Outcome::ALL {
                    let n = counters[outcome.index()].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "gatehouse_consumer_requests_total{{api=\"{api}\",major=\"{major}\",consumer=\"{consumer}\",outcome=\"{}\"}} {n}",
                            outcome.as_str()
                        );
                    }
                }
            }
        }
        for (name, help, pick, bounds) in [
            (
                "gatehouse_request_duration_seconds",
                "Total time from request to the end of the response.",
                0,
                &LATENCY_BUCKETS[..],
            ),
            (
                "gatehouse_overhead_duration_seconds",
                "The gateway's own time: total minus the time spent waiting for the upstream.",
                1,
                &OVERHEAD_BUCKETS[..],
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (api, major, s) in &series {
                let h = if pick == 0 { &s.latency } else { &s.overhead };
                if h.count.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                h.render(
                    &mut out,
                    name,
                    &format!("api=\"{api}\",major=\"{major}\""),
                    bounds,
                );
            }
        }
        render_validation(&mut out, &series);
        out.push_str("# HELP gatehouse_upstream_errors_total Failed upstream attempts by kind.\n");
        out.push_str("# TYPE gatehouse_upstream_errors_total counter\n");
        for kind in UpstreamErrorKind::ALL {
            let n = self.upstream_errors[kind as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "gatehouse_upstream_errors_total{{kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
        let generation = self.snapshot_generation.load(Ordering::Relaxed);
        let head = self.registry_head.load(Ordering::Relaxed).max(generation);
        let built_ms = self.snapshot_built_at_ms.load(Ordering::Relaxed);
        let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let age = if built_ms == 0 {
            0.0
        } else {
            (now_ms - built_ms).max(0) as f64 / 1000.0
        };
        let _ = write!(
            out,
            "# HELP gatehouse_requests_in_flight Requests being served.\n\
             # TYPE gatehouse_requests_in_flight gauge\n\
             gatehouse_requests_in_flight {}\n\
             # HELP gatehouse_snapshot_generation Registry generation of the snapshot being served.\n\
             # TYPE gatehouse_snapshot_generation gauge\n\
             gatehouse_snapshot_generation {generation}\n\
             # HELP gatehouse_snapshot_age_seconds Seconds since the snapshot being served was built.\n\
             # TYPE gatehouse_snapshot_age_seconds gauge\n\
             gatehouse_snapshot_age_seconds {age}\n\
             # HELP gatehouse_snapshot_build_failures_total Snapshot builds that failed (the previous snapshot kept serving).\n\
             # TYPE gatehouse_snapshot_build_failures_total counter\n\
             gatehouse_snapshot_build_failures_total {}\n\
             # HELP gatehouse_validation_unchecked_schemas Schemas of the served snapshot that did not compile and are not checked.\n\
             # TYPE gatehouse_validation_unchecked_schemas gauge\n\
             gatehouse_validation_unchecked_schemas {}\n\
             # HELP gatehouse_registry_head_generation Newest registry generation (change-log sequence) this node has seen.\n\
             # TYPE gatehouse_registry_head_generation gauge\n\
             gatehouse_registry_head_generation {head}\n\
             # HELP gatehouse_snapshot_behind Registry generations committed but not yet in the snapshot being served.\n\
             # TYPE gatehouse_snapshot_behind gauge\n\
             gatehouse_snapshot_behind {}\n",
            self.in_flight.load(Ordering::Relaxed),
            self.snapshot_failures.load(Ordering::Relaxed),
            self.unchecked_schemas.load(Ordering::Relaxed),
            (head - generation).max(0),
        );
        self.limits.render(&mut out);
        let sync_ms = self.snapshot_sync_ms.load(Ordering::Relaxed);
        if sync_ms >= 0 {
            let _ = write!(
                out,
                "# HELP gatehouse_snapshot_sync_seconds For the snapshot being served: seconds from the commit of its newest registry change to its installation on this node.\n\
                 # TYPE gatehouse_snapshot_sync_seconds gauge\n\
                 gatehouse_snapshot_sync_seconds {}\n",
                sync_ms as f64 / 1000.0
            );
        }
        out
    }
}

/// The validation counters of every series (only non-zero samples).
fn render_validation(out: &mut String, series: &[(String, String, Arc<RouteSeries>)]) {
    out.push_str(
        "# HELP gatehouse_request_validation_refusals_total Requests refused by validation, by status.\n\
         # TYPE gatehouse_request_validation_refusals_total counter\n",
    );
    for (api, major, s) in series {
        for (status, n) in VALIDATION_STATUSES.iter().zip(&s.validation_refusals) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "gatehouse_request_validation_refusals_total{{api=\"{api}\",major=\"{major}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }
    out.push_str(
        "# HELP gatehouse_response_validation_total Upstream responses checked against the contract, by result.\n\
         # TYPE gatehouse_response_validation_total counter\n",
    );
    for (api, major, s) in series {
        for check in ResponseCheck::ALL {
            let n = s.response_checks[check as usize].load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "gatehouse_response_validation_total{{api=\"{api}\",major=\"{major}\",result=\"{}\"}} {n}",
                    check.as_str()
                );
            }
        }
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new();
        let s = m.route("inventory", 2);
        s.observe(
            200,
            Outcome::Proxied,
            Duration::from_micros(1_800),
            Duration::from_micros(1_700),
        );
        s.observe(
            404,
            Outcome::Refused,
            Duration::from_micros(30),
            Duration::ZERO,
        );
        assert!(Arc::ptr_eq(&s, &m.route("inventory", 2)));
        m.unrouted().observe(
            404,
            Outcome::Refused,
            Duration::from_micros(20),
            Duration::ZERO,
        );
        m.upstream_error(UpstreamErrorKind::ConnectRefused);
        m.record_snapshot(7, datetime!(2026-03-02 12:00 UTC));
        m.record_snapshot_failure();
        s.validation_refused(413);
        s.validation_refused(400);
        s.validation_refused(400);
        s.response_checked(ResponseCheck::Reported);
        m.record_unchecked_schemas(2);
        let text = m.render_at(datetime!(2026-03-02 12:00:03 UTC));
        for line in [
            "gatehouse_requests_total{api=\"inventory\",major=\"2\",class=\"2xx\",outcome=\"proxied\"} 1",
            "gatehouse_requests_total{api=\"inventory\",major=\"2\",class=\"4xx\",outcome=\"refused\"} 1",
            "gatehouse_requests_total{api=\"(none)\",major=\"\",class=\"4xx\",outcome=\"refused\"} 1",
            "gatehouse_request_duration_seconds_bucket{api=\"inventory\",major=\"2\",le=\"0.0025\"} 2",
            "gatehouse_request_duration_seconds_bucket{api=\"inventory\",major=\"2\",le=\"0.001\"} 1",
            "gatehouse_request_duration_seconds_count{api=\"inventory\",major=\"2\"} 2",
            "gatehouse_overhead_duration_seconds_bucket{api=\"inventory\",major=\"2\",le=\"0.000025\"} 0",
            "gatehouse_overhead_duration_seconds_bucket{api=\"inventory\",major=\"2\",le=\"0.00005\"} 1",
            "gatehouse_overhead_duration_seconds_bucket{api=\"inventory\",major=\"2\",le=\"0.0001\"} 2",
            "gatehouse_upstream_errors_total{kind=\"connect_refused\"} 1",
            "gatehouse_snapshot_generation 7",
            "gatehouse_snapshot_age_seconds 3",
            "gatehouse_snapshot_build_failures_total 1",
            "gatehouse_request_validation_refusals_total{api=\"inventory\",major=\"2\",status=\"400\"} 2",
            "gatehouse_request_validation_refusals_total{api=\"inventory\",major=\"2\",status=\"413\"} 1",
            "gatehouse_response_validation_total{api=\"inventory\",major=\"2\",result=\"reported\"} 1",
            "gatehouse_validation_unchecked_schemas 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Consumers: the limit's worth get a label, the rest share `other`.
        let m = Metrics::with_consumer_limit(2);
        let s = m.route("orders", 1);
        for c in ["b2b-portal", "edi", "marketplace", "b2b-portal"] {
            m.consumer_outcome(&s, Some(c), Outcome::Proxied);
        }
        m.consumer_outcome(&s, Some("marketplace"), Outcome::Refused);
        m.consumer_outcome(&s, Some("field-sales"), Outcome::Refused);
        m.consumer_outcome(&s, None, Outcome::Refused);
        m.record_head(9);
        m.record_snapshot(7, datetime!(2026-03-02 12:00 UTC));
        m.record_sync(
            Some(datetime!(2026-03-02 11:59:59.750 UTC)),
            datetime!(2026-03-02 12:00 UTC),
        );
        let consumers = m.render_at(datetime!(2026-03-02 12:00:03 UTC));
        for line in [
            "gatehouse_consumer_requests_total{api=\"orders\",major=\"1\",consumer=\"b2b-portal\",outcome=\"proxied\"} 2",
            "gatehouse_consumer_requests_total{api=\"orders\",major=\"1\",consumer=\"edi\",outcome=\"proxied\"} 1",
            "gatehouse_consumer_requests_total{api=\"orders\",major=\"1\",consumer=\"other\",outcome=\"proxied\"} 1",
            "gatehouse_consumer_requests_total{api=\"orders\",major=\"1\",consumer=\"other\",outcome=\"refused\"} 2",
            "gatehouse_consumer_requests_total{api=\"orders\",major=\"1\",consumer=\"(none)\",outcome=\"refused\"} 1",
            "gatehouse_registry_head_generation 9",
            "gatehouse_snapshot_behind 2",
            "gatehouse_snapshot_sync_seconds 0.25",
        ] {
            assert!(
                consumers.lines().any(|l| l == line),
                "missing {line}\n{consumers}"
            );
        }
        assert!(!consumers.contains("marketplace"));
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
    }
}
