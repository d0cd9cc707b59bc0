//! How records sit in tables: one row struct per table (decoded by `sqlx::FromRow` on either
//! backend), conversions between rows and domain records, and how values are encoded.
//!
//! Times are BIGINT Unix milliseconds, lists are JSON text, `u64` values live in BIGINT
//! columns (values beyond `i64::MAX` are refused, never wrapped), and a row that does not
//! convert back is reported as [`StoreError::Corrupt`].

use super::StoreError;
use crate::access::{AccessFlags, AccessRecord, Decision, OperationCallers};
use crate::model::*;
use std::str::FromStr;
use time::OffsetDateTime;

/// A value the schema cannot hold (a `u64` beyond `i64::MAX`, a list that does not
/// serialise): refused as sqlx refuses values it cannot encode.
fn unencodable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(Box::new(error)))
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

// -- encoding ----------------------------------------------------------------------------

/// A `u64` as the BIGINT column that keeps it.
pub(super) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(unencodable)
}

pub(super) fn opt_ms(value: Option<OffsetDateTime>) -> Option<i64> {
    value.map(unix_ms)
}

/// A list as the JSON text column that keeps it.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(unencodable)
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn to_u64(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| corrupt(what, e))
}

fn to_u32(what: &'static str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| corrupt(what, e))
}

/// A `u32` plan figure as its BIGINT column.
pub(super) fn from_u32(value: u32) -> i64 {
    i64::from(value)
}

/// The text of a quota period column.
pub(super) fn quota_period(period: QuotaPeriod) -> &'static str {
    match period {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Month => "month",
    }
}

// -- rows --------------------------------------------------------------------------------

/// The column list of each table, in the order of its row struct, for `concat!`.
macro_rules! cols {
    (teams) => {
        "name, contact, created_at"
    };
    (apis) => {
        "slug, title, description, team, version_header, default_major, created_at, updated_at, \
         deprecation_notice_days, request_validation, response_validation, max_body_bytes, \
         reject_unknown_query, forward_bearer"
    };
    (versions) => {
        "api, version, major, state, spec_raw, spec_json, sha256, content_type, deprecated_at, \
         sunset_at, successor, deprecation_link, brownouts, created_by, created_at, updated_by, \
         updated_at"
    };
    (upstreams) => {
        "api, major, targets, connect_timeout_ms, read_timeout_ms"
    };
    (systems_of_record) => {
        "entity, system, api"
    };
    (consumers) => {
        "name, contact, created_at"
    };
    (api_keys) => {
        "id, consumer, hash, created_at, expires_at, revoked_at, last_used_at"
    };
    (plans) => {
        "name, rate_requests, rate_per_seconds, rate_burst, quota_requests, quota_period, \
         overrides, on_redis_failure"
    };
    (subscriptions) => {
        "consumer, api, majors, plan, scopes"
    };
    (issuers) => {
        "id, issuer, audiences, algorithms, jwks_uri, inline_keys, consumer_claim, \
         leeway_seconds, created_at"
    };
    (admin_tokens) => {
        "id, hash, role, team, created_at, revoked_at"
    };
    (change_log) => {
        "seq, at, actor, role, action, target, before_digest, after_digest, reason, prev_hash, \
         hash"
    };
    (access_log) => {
        "at, id, request_id, trace_id, consumer, key_id, subject, api, major, version, operation, \
         method, path_template, path, status, decision, reason, duration_us, upstream_us, \
         bytes_in, bytes_out, client_addr, user_agent, flags"
    };
}
pub(super) use cols;

#[derive(sqlx::FromRow)]
pub(super) struct TeamRow {
    name: String,
    contact: String,
    created_at: i64,
}

impl From<TeamRow> for Team {
    fn from(row: TeamRow) -> Self {
        Team {
            name: row.name,
            contact: row.contact,
            created_at: from_unix_ms(row.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiRow {
    slug: String,
    title: String,
    description: Option<String>,
    team: String,
    version_header: bool,
    default_major: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deprecation_notice_days: i64,
    request_validation: bool,
    response_validation: String,
    max_body_bytes: i64,
    reject_unknown_query: bool,
    forward_bearer: bool,
}

impl TryFrom<ApiRow> for Api {
    type Error = StoreError;

    fn try_from(row: ApiRow) -> Result<Self, StoreError> {
        Ok(Api {
            slug: row.slug,
            title: row.title,
            description: row.description,
            team: row.team,
            version_header: row.version_header,
            default_major: row
                .default_major
                .map(|m| to_u64("api default_major", m))
                .transpose()?,
            deprecation_notice_days: u32::try_from(row.deprecation_notice_days).map_err(|_| {
                StoreError::Corrupt {
                    what: "api deprecation_notice_days",
                    detail: row.deprecation_notice_days.to_string(),
                }
            })?,
            validation: ValidationSettings {
                request: row.request_validation,
                response: ResponseValidation::from_str(&row.response_validation)
                    .map_err(|e| corrupt("api response_validation", e))?,
                max_body_bytes: to_u64("api max_body_bytes", row.max_body_bytes)?,
                reject_unknown_query_params: row.reject_unknown_query,
            },
            created_at: from_unix_ms(row.created_at),
            updated_at: from_unix_ms(row.updated_at),
            forward_bearer: row.forward_bearer,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    api: String,
    version: String,
    major: i64,
    state: String,
    spec_raw: Vec<u8>,
    spec_json: String,
    sha256: String,
    content_type: String,
    deprecated_at: Option<i64>,
    sunset_at: Option<i64>,
    successor: Option<String>,
    deprecation_link: Option<String>,
    brownouts: String,
    created_by: String,
    created_at: i64,
    updated_by: String,
    updated_at: i64,
}

impl TryFrom<VersionRow> for Version {
    type Error = StoreError;

    fn try_from(row: VersionRow) -> Result<Self, StoreError> {
        Ok(Version {
            major: to_u64("version major", row.major)?,
            state: LifecycleState::from_str(&row.state).map_err(|e| corrupt("version state", e))?,
            brownouts: from_json("version brownouts", &row.brownouts)?,
            api: row.api,
            version: row.version,
            spec_raw: row.spec_raw,
            spec_json: row.spec_json,
            sha256: row.sha256,
            content_type: row.content_type,
            deprecated_at: row.deprecated_at.map(from_unix_ms),
            sunset_at: row.sunset_at.map(from_unix_ms),
            successor: row.successor,
            deprecation_link: row.deprecation_link,
            created_by: row.created_by,
            created_at: from_unix_ms(row.created_at),
            updated_by: row.updated_by,
            updated_at: from_unix_ms(row.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UpstreamRow {
    api: String,
    major: i64,
    targets: String,
    connect_timeout_ms: i64,
    read_timeout_ms: i64,
}

impl TryFrom<UpstreamRow> for Upstream {
    type Error = StoreError;

    fn try_from(row: UpstreamRow) -> Result<Self, StoreError> {
        Ok(Upstream {
            major: to_u64("upstream major", row.major)?,
            targets: from_json("upstream targets", &row.targets)?,
            connect_timeout_ms: to_u32("upstream connect_timeout_ms", row.connect_timeout_ms)?,
            read_timeout_ms: to_u32("upstream read_timeout_ms", row.read_timeout_ms)?,
            api: row.api,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SystemOfRecordRow {
    entity: String,
    system: String,
    api: String,
}

impl From<SystemOfRecordRow> for SystemOfRecord {
    fn from(row: SystemOfRecordRow) -> Self {
        SystemOfRecord {
            entity: row.entity,
            system: row.system,
            api: row.api,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ConsumerRow {
    name: String,
    contact: Option<String>,
    created_at: i64,
}

impl From<ConsumerRow> for Consumer {
    fn from(row: ConsumerRow) -> Self {
        Consumer {
            name: row.name,
            contact: row.contact,
            created_at: from_unix_ms(row.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    consumer: String,
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        ApiKey {
            id: row.id,
            consumer: row.consumer,
            hash: row.hash,
            created_at: from_unix_ms(row.created_at),
            expires_at: row.expires_at.map(from_unix_ms),
            revoked_at: row.revoked_at.map(from_unix_ms),
            last_used_at: row.last_used_at.map(from_unix_ms),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PlanRow {
    name: String,
    rate_requests: i64,
    rate_per_seconds: i64,
    rate_burst: Option<i64>,
    quota_requests: Option<i64>,
    quota_period: Option<String>,
    overrides: String,
    on_redis_failure: String,
}

impl TryFrom<PlanRow> for Plan {
    type Error = StoreError;

    fn try_from(row: PlanRow) -> Result<Self, StoreError> {
        let quota = match (row.quota_requests, row.quota_period.as_deref()) {
            (None, None) => None,
            (Some(requests), Some(period)) => Some(Quota {
                requests: to_u64("plan quota_requests", requests)?,
                period: match period {
                    "day" => QuotaPeriod::Day,
                    "month" => QuotaPeriod::Month,
                    other => return Err(corrupt("plan quota_period", other)),
                },
            }),
            _ => {
                return Err(corrupt(
                    "plan quota",
                    "requests and period must be set together",
                ));
            }
        };
        Ok(Plan {
            rate: Rate {
                requests: to_u32("plan rate_requests", row.rate_requests)?,
                per_seconds: to_u32("plan rate_per_seconds", row.rate_per_seconds)?,
                burst: row
                    .rate_burst
                    .map(|b| to_u32("plan rate_burst", b))
                    .transpose()?,
            },
            quota,
            overrides: from_json("plan overrides", &row.overrides)?,
            on_redis_failure: match row.on_redis_failure.as_str() {
                "open" => RedisFailure::Open,
                "closed" => RedisFailure::Closed,
                other => return Err(corrupt("plan on_redis_failure", other)),
            },
            name: row.name,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    consumer: String,
    api: String,
    majors: String,
    plan: String,
    scopes: String,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;

    fn try_from(row: SubscriptionRow) -> Result<Self, StoreError> {
        Ok(Subscription {
            majors: from_json("subscription majors", &row.majors)?,
            scopes: from_json("subscription scopes", &row.scopes)?,
            consumer: row.consumer,
            api: row.api,
            plan: row.plan,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IssuerRow {
    id: String,
    issuer: String,
    audiences: String,
    algorithms: String,
    jwks_uri: Option<String>,
    inline_keys: Option<String>,
    consumer_claim: String,
    leeway_seconds: i64,
    created_at: i64,
}

impl TryFrom<IssuerRow> for Issuer {
    type Error = StoreError;

    fn try_from(row: IssuerRow) -> Result<Self, StoreError> {
        Ok(Issuer {
            audiences: from_json("issuer audiences", &row.audiences)?,
            algorithms: from_json("issuer algorithms", &row.algorithms)?,
            keys: row
                .inline_keys
                .as_deref()
                .map(|k| from_json("issuer inline_keys", k))
                .transpose()?,
            leeway_seconds: to_u32("issuer leeway_seconds", row.leeway_seconds)?,
            created_at: from_unix_ms(row.created_at),
            id: row.id,
            issuer: row.issuer,
            jwks_uri: row.jwks_uri,
            consumer_claim: row.consumer_claim,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AdminTokenRow {
    id: String,
    hash: String,
    role: String,
    team: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<AdminTokenRow> for AdminToken {
    type Error = StoreError;

    fn try_from(row: AdminTokenRow) -> Result<Self, StoreError> {
        Ok(AdminToken {
            role: Role::from_str(&row.role).map_err(|e| corrupt("admin token role", e))?,
            id: row.id,
            hash: row.hash,
            team: row.team,
            created_at: from_unix_ms(row.created_at),
            revoked_at: row.revoked_at.map(from_unix_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ChangeRow {
    seq: i64,
    at: i64,
    actor: String,
    role: String,
    action: String,
    target: String,
    before_digest: Option<String>,
    after_digest: Option<String>,
    reason: Option<String>,
    prev_hash: String,
    hash: String,
}

impl TryFrom<ChangeRow> for ChangeEntry {
    type Error = StoreError;

    fn try_from(row: ChangeRow) -> Result<Self, StoreError> {
        Ok(ChangeEntry {
            role: Role::from_str(&row.role).map_err(|e| corrupt("change log role", e))?,
            seq: row.seq,
            at: from_unix_ms(row.at),
            actor: row.actor,
            action: row.action,
            target: row.target,
            before_digest: row.before_digest,
            after_digest: row.after_digest,
            reason: row.reason,
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccessRow {
    at: i64,
    id: String,
    request_id: String,
    trace_id: Option<String>,
    consumer: Option<String>,
    key_id: Option<String>,
    subject: Option<String>,
    api: Option<String>,
    major: Option<i64>,
    version: Option<String>,
    operation: Option<String>,
    method: String,
    path_template: Option<String>,
    path: String,
    status: i64,
    decision: String,
    reason: Option<String>,
    duration_us: i64,
    upstream_us: i64,
    bytes_in: i64,
    bytes_out: i64,
    client_addr: Option<String>,
    user_agent: Option<String>,
    flags: i64,
}

impl TryFrom<AccessRow> for AccessRecord {
    type Error = StoreError;

    fn try_from(row: AccessRow) -> Result<Self, StoreError> {
        Ok(AccessRecord {
            at: from_unix_ms(row.at),
            major: row.major.map(|m| to_u64("access major", m)).transpose()?,
            status: u16::try_from(row.status).map_err(|e| corrupt("access status", e))?,
            decision: Decision::from_str(&row.decision)
                .map_err(|e| corrupt("access decision", e))?,
            duration_us: to_u64("access duration_us", row.duration_us)?,
            upstream_us: to_u64("access upstream_us", row.upstream_us)?,
            bytes_in: to_u64("access bytes_in", row.bytes_in)?,
            bytes_out: to_u64("access bytes_out", row.bytes_out)?,
            flags: AccessFlags::from_bits(
                u8::try_from(row.flags).map_err(|e| corrupt("access flags", e))?,
            ),
            id: row.id,
            request_id: row.request_id,
            trace_id: row.trace_id,
            consumer: row.consumer,
            key_id: row.key_id,
            subject: row.subject,
            api: row.api,
            version: row.version,
            operation: row.operation,
            method: row.method,
            path_template: row.path_template,
            path: row.path,
            reason: row.reason,
            client_addr: row.client_addr,
            user_agent: row.user_agent,
        })
    }
}

/// A `u64` counter or size as its BIGINT column; values beyond `i64::MAX` are clamped
/// (a duration or byte count that large is not a real request).
pub(super) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
pub(super) struct CallersRow {
    consumer: Option<String>,
    operation: String,
    calls: i64,
    last_seen: i64,
}

impl TryFrom<CallersRow> for OperationCallers {
    type Error = StoreError;

    fn try_from(row: CallersRow) -> Result<Self, StoreError> {
        Ok(OperationCallers {
            calls: to_u64("caller count", row.calls)?,
            last_seen: from_unix_ms(row.last_seen),
            consumer: row.consumer,
            operation: row.operation,
        })
    }
}

/// Converts fetched rows into domain records, failing on the first unreadable one.
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_beyond_i64_is_refused_not_wrapped() {
        assert_eq!(to_i64(7).ok(), Some(7));
        assert!(matches!(
            to_i64(u64::MAX),
            Err(StoreError::Database(sqlx::Error::Encode(_)))
        ));
    }
}
