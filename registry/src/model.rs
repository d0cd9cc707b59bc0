//! The registry's domain records: what the store keeps and the snapshot is compiled from.
//!
//! Times are `OffsetDateTime` in UTC; the store keeps them as Unix milliseconds so that both
//! backends agree to the millisecond. Secrets never appear here: keys and tokens are hashes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// An owning team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub name: String,
    pub contact: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A capability API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub team: String,
    /// Whether `/{api}/{path}` with an `API-Version: {major}` header is routed.
    pub version_header: bool,
    /// The major served to `/{api}/{path}` without a version header, when set.
    pub default_major: Option<u64>,
    /// The minimum notice, in days, between deprecating a version and its sunset (and,
    /// for a version without a sunset, between its deprecation and its retirement).
    pub deprecation_notice_days: u32,
    /// How the gateway checks this API's requests and responses against its spec.
    #[serde(default)]
    pub validation: ValidationSettings,
    /// Whether the caller's bearer token reaches the upstream (`Authorization`). Off by
    /// default: the upstream learns the caller from `X-Consumer`; an upstream that checks
    /// the token itself (defence in depth, fine-grained claims) opts in. API keys never go.
    #[serde(default)]
    pub forward_bearer: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Api {
    /// The minimum deprecation notice of an API that does not set one.
    pub const DEFAULT_DEPRECATION_NOTICE_DAYS: u32 = 90;
    /// The longest minimum notice an API may ask for (ten years).
    pub const MAX_DEPRECATION_NOTICE_DAYS: u32 = 3650;
}

/// Per-API validation policy (`docs/validation.md`): what the gateway checks against the
/// routed version's spec. Every field has a default, so `{}` is the default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationSettings {
    /// Validate requests (parameters, content type, body) before any upstream work.
    pub request: bool,
    /// What to do with upstream responses that do not match the spec.
    pub response: ResponseValidation,
    /// The largest request body accepted, in bytes (413 above).
    pub max_body_bytes: u64,
    /// Refuse query parameters the operation does not declare (400).
    pub reject_unknown_query_params: bool,
}

impl ValidationSettings {
    /// The default request body limit: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
    /// The largest body limit an API may set: 64 MiB (the gateway buffers a body this big).
    pub const MAX_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            request: true,
            response: ResponseValidation::Off,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            reject_unknown_query_params: false,
        }
    }
}

/// Response validation: `off`, `report` (a metric, a log line and a flag on the access
/// record) or `enforce` (502 problem+json instead of a non-conforming response).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseValidation {
    #[default]
    Off,
    Report,
    Enforce,
}

impl ResponseValidation {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseValidation::Off => "off",
            ResponseValidation::Report => "report",
            ResponseValidation::Enforce => "enforce",
        }
    }
}

impl fmt::Display for ResponseValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a response validation mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a response validation mode (off, report, enforce)")]
pub struct UnknownResponseValidation(pub String);

impl FromStr for ResponseValidation {
    type Err = UnknownResponseValidation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" => ResponseValidation::Off,
            "report" => ResponseValidation::Report,
            "enforce" => ResponseValidation::Enforce,
            other => return Err(UnknownResponseValidation(other.to_owned())),
        })
    }
}

/// Lifecycle of a version: `draft` → `published` → `deprecated` → `retired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    Draft,
    Published,
    Deprecated,
    Retired,
}

impl LifecycleState {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Draft => "draft",
            LifecycleState::Published => "published",
            LifecycleState::Deprecated => "deprecated",
            LifecycleState::Retired => "retired",
        }
    }

    /// Whether the gateway routes requests to a version in this state (retired versions
    /// are routed only to answer 410).
    pub fn is_routable(self) -> bool {
        !matches!(self, LifecycleState::Draft)
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lifecycle state (draft, published, deprecated, retired)")]
pub struct UnknownState(pub String);

impl FromStr for LifecycleState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "draft" => LifecycleState::Draft,
            "published" => LifecycleState::Published,
            "deprecated" => LifecycleState::Deprecated,
            "retired" => LifecycleState::Retired,
            other => return Err(UnknownState(other.to_owned())),
        })
    }
}

/// A scheduled brownout: during `[start, end)` a deprecated version already answers 410.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownout {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// One registered version of an API, with its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub api: String,
    /// Semantic version from the spec's `info.version`, e.g. `2.1.0`.
    pub version: String,
    pub major: u64,
    pub state: LifecycleState,
    /// The spec exactly as uploaded.
    pub spec_raw: Vec<u8>,
    /// The parsed form: the loaded document as compact JSON (what the model is built from).
    pub spec_json: String,
    /// Hex SHA-256 of `spec_raw`.
    pub sha256: String,
    /// `application/yaml` or `application/json`, as uploaded.
    pub content_type: String,
    pub deprecated_at: Option<OffsetDateTime>,
    pub sunset_at: Option<OffsetDateTime>,
    /// The successor version string (e.g. `2.1.0`), when one is named.
    pub successor: Option<String>,
    /// A link to human-readable deprecation information (RFC 9745 `rel="deprecation"`).
    pub deprecation_link: Option<String>,
    pub brownouts: Vec<Brownout>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_by: String,
    pub updated_at: OffsetDateTime,
}

/// One target of an upstream, with its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `http://host:port[/base]` or `mock://`.
    pub url: String,
    pub weight: u32,
}

/// Where a major version of an API is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub api: String,
    pub major: u64,
    pub targets: Vec<Target>,
    pub connect_timeout_ms: u32,
    pub read_timeout_ms: u32,
}

impl Upstream {
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 1_000;
    pub const DEFAULT_READ_TIMEOUT_MS: u32 = 10_000;
}

/// "System X is authoritative for entity E", declared by an API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemOfRecord {
    pub entity: String,
    pub system: String,
    pub api: String,
}

/// An application calling APIs through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub name: String,
    pub contact: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An API key, without its secret: only the hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The visible key id, also the key's prefix (e.g. `gh_k7f3a9c2`).
    pub id: String,
    pub consumer: String,
    /// Hex SHA-256 of the whole key. Keys carry 256 bits of randomness, so a fast hash is
    /// not reversible; a slow password hash would only cost latency on every request.
    pub hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A trusted JWT issuer: whose tokens the gateway accepts, for which audiences, signed how,
/// and with which keys (fetched from `jwks_uri`, given inline, or both).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuer {
    /// `iss_` and the first 8 bytes of SHA-256 of `issuer` in hex: stable for an issuer, so
    /// a client can compute it (see [`Issuer::id_for`]).
    pub id: String,
    /// The exact `iss` claim value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Allowed algorithms (JOSE names: `RS256`, `ES256`, `EdDSA`, `HS256`, …).
    pub algorithms: Vec<String>,
    /// Where the key set is fetched from (in the background, never per request).
    pub jwks_uri: Option<String>,
    /// Keys given inline: a JWKS document `{"keys": [...]}`. May hold HS256 shared secrets,
    /// so it is never shown back by the admin API and never printed by `Debug`.
    pub keys: Option<serde_json::Value>,
    /// Which claim names the consumer: `sub`, `azp` or `client_id`.
    pub consumer_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Issuer {
    /// The id of an issuer URL: `iss_` + 16 hex digits of its SHA-256.
    pub fn id_for(issuer: &str) -> String {
        use sha2::{Digest, Sha256};
        format!(
            "iss_{}",
            hex::encode(&Sha256::digest(issuer.as_bytes())[..8])
        )
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("jwks_uri", &self.jwks_uri)
            .field("keys", &self.keys.as_ref().map(|_| "<redacted>"))
            .field("consumer_claim", &self.consumer_claim)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish_non_exhaustive()
    }
}

/// Quota periods for contracted volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub requests: u32,
    pub per_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: u64,
    pub period: QuotaPeriod,
}

/// A stricter (or looser) rate for one operation of the APIs a plan covers, e.g. order
/// submission under a plan whose inquiry rate is high. The operation gets its own bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOverride {
    /// The OpenAPI `operationId`.
    pub operation_id: String,
    pub rate: Rate,
}

/// What the gateway does when cluster-wide limits (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailure {
    /// Keep serving under a local limit of the rate ÷ live nodes.
    #[default]
    Open,
    /// Refuse with 503 until Redis answers again.
    Closed,
}

impl RedisFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Open => "open",
            RedisFailure::Closed => "closed",
        }
    }
}

/// A rate-limit plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    pub rate: Rate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Per-operation rates; an operation not listed shares the plan's rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<RateOverride>,
    #[serde(default)]
    pub on_redis_failure: RedisFailure,
}

/// What a consumer may call: an API (some or all majors) under a plan, with granted scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub consumer: String,
    pub api: String,
    /// The majors covered; empty means every major.
    pub majors: Vec<u64>,
    pub plan: String,
    pub scopes: Vec<String>,
}

/// Roles of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Does everything.
    Admin,
    /// Registers APIs and versions.
    Architect,
    /// Moves its own team's APIs through their lifecycle.
    Owner,
    /// Reads everything, writes nothing.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Architect => "architect",
            Role::Owner => "owner",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role (admin, architect, owner, auditor)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "admin" => Role::Admin,
            "architect" => Role::Architect,
            "owner" => Role::Owner,
            "auditor" => Role::Auditor,
            other => return Err(UnknownRole(other.to_owned())),
        })
    }
}

/// An admin-API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// The visible token id (its prefix).
    pub id: String,
    pub hash: String,
    pub role: Role,
    /// For `owner` tokens: the team whose APIs they may manage.
    pub team: Option<String>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who did a write, and why: recorded with it in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token id, or `system` for seeding and `cli` for local commands.
    pub id: String,
    pub role: Role,
    pub team: Option<String>,
}

impl Actor {
    /// The actor of writes the node makes by itself (seeding the bundled catalog).
    pub fn system() -> Self {
        Actor {
            id: "system".into(),
            role: Role::Admin,
            team: None,
        }
    }
}

/// What a write records in the change log beside the change itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMeta {
    pub actor: Actor,
    /// A verb such as `api.create` or `version.deprecate`.
    pub action: String,
    /// What was changed, e.g. `inventory@2.1.0` or `consumer/b2b-portal`.
    pub target: String,
    pub reason: Option<String>,
    /// Hex SHA-256 of the record before the write (`None`: created); see [`digest`].
    pub before_digest: Option<String>,
    /// Hex SHA-256 of the record after the write (`None`: deleted); see [`digest`].
    pub after_digest: Option<String>,
}

/// The digest of a record for the change log: hex SHA-256 of its compact JSON.
pub fn digest<T: Serialize>(record: &T) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(record).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// One entry of the change log. `hash` chains over `prev_hash` and the entry's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub target: String,
    /// Hex SHA-256 of the canonical JSON of the record before the write (`None`: created).
    pub before_digest: Option<String>,
    /// Hex SHA-256 of the canonical JSON of the record after the write (`None`: deleted).
    pub after_digest: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl ChangeEntry {
    /// The `prev_hash` of the first entry.
    pub const GENESIS: &'static str =
        "0000000000000000000000000000000000000000000000000000000000000000";

    /// The hash this entry must carry: SHA-256 over its predecessor's hash and its own
    /// canonical content (every field but `hash`, in a fixed order, times in Unix ms).
    pub fn compute_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!([
            self.seq,
            unix_ms(self.at),
            self.actor,
            self.role.as_str(),
            self.action,
            self.target,
            self.before_digest,
            self.after_digest,
            self.reason,
            self.prev_hash,
        ]);
        let mut h = Sha256::new();
        h.update(canonical.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// Milliseconds since the Unix epoch: how the store keeps every time.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`unix_ms`]; out-of-range values clamp to the epoch.
pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Everything the gateway needs, read from the store in one consistent pass.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// The change-log sequence this read reflects; the snapshot generation.
    pub generation: i64,
    /// When the change-log entry `generation` was committed (`None` for an empty log): the
    /// gateway measures how long a change took to reach its snapshot from it.
    pub generation_at: Option<OffsetDateTime>,
    pub teams: Vec<Team>,
    pub apis: Vec<Api>,
    pub versions: Vec<Version>,
    pub upstreams: Vec<Upstream>,
    pub consumers: Vec<Consumer>,
    pub keys: Vec<ApiKey>,
    pub plans: Vec<Plan>,
    pub subscriptions: Vec<Subscription>,
    /// Trusted JWT issuers, with their inline keys.
    pub issuers: Vec<Issuer>,
}

/// A quota counter of the local limiter, checkpointed so that quotas survive a restart.
/// Not a registry change: saving one appends no change-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub consumer: String,
    pub api: String,
    /// The period being counted, `[start, end)`, Unix milliseconds.
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub used: u64,
}
