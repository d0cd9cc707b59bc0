//! The registry store: one trait, two backends (SQLite, the embedded default; PostgreSQL).
//!
//! Every write method takes a [`ChangeMeta`] and appends one hash-chained change-log entry
//! in the same transaction as the write: a write without its log entry cannot happen.
//! Writers are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a table lock on the change
//! log) so the chain never forks. After a commit, subscribers of [`Store::subscribe`] learn
//! the new head sequence (PostgreSQL: through `LISTEN/NOTIFY`, so other nodes learn it too).
//!
//! The store never decides policy (roles, lifecycle rules, spec validity): the service layer
//! does, then calls the store. The store only enforces integrity: uniqueness, references,
//! and that one entity has one system of record.

mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub use crate::access::{AccessCursor, AccessFilter, OperationCallers, StatusFilter};

use crate::access::AccessRecord;
use crate::model::*;
use async_trait::async_trait;
use futures::stream::BoxStream;
use time::OffsetDateTime;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a store call failed. Database text never reaches an HTTP client: the admin API maps
/// `Database` to a generic 503 and logs the details.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} `{key}` already exists")]
    Duplicate { entity: &'static str, key: String },
    #[error("{entity} `{key}` does not exist")]
    NotFound { entity: &'static str, key: String },
    #[error("entity `{entity}` already has system of record `{system}` declared by API `{api}`")]
    SystemOfRecordClaimed {
        entity: String,
        system: String,
        api: String,
    },
    #[error("invalid database URL `{url}`: use sqlite://PATH or postgres://…")]
    BadUrl { url: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} cannot be read: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// One page of a list: items after `after` (a natural key), at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    /// 0 means 100; larger values are capped at 1000.
    pub limit: u32,
}

/// Filters of the change log (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Entries at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Entries before this time (exclusive, so consecutive windows do not overlap).
    pub to: Option<OffsetDateTime>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries whose target starts with this text (e.g. `inventory` matches `inventory@2.1.0`).
    pub target: Option<String>,
    /// Only entries with `seq` greater than this (the cursor).
    pub after_seq: Option<i64>,
    /// 0 means 100; larger values are capped at 1000.
    pub limit: u32,
}

/// The registry's storage. Implemented by [`SqliteStore`] and [`PgStore`].
///
/// Reads return `Ok(None)` / empty lists for what does not exist; writes return
/// `StoreError::NotFound` when a record they name (team, API, consumer, plan) does not exist
/// and `StoreError::Duplicate` when a unique key is taken.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The backend this store runs on.
    fn backend(&self) -> Backend;

    /// A receiver that sees the change-log head sequence after every committed write (on
    /// PostgreSQL also writes made by other nodes). Receivers never see a value go back.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64>;

    /// The sequence of the newest change-log entry (0 when empty). Cheap: used for polling.
    async fn head_seq(&self) -> Result<i64, StoreError>;

    // -- teams ---------------------------------------------------------------------------
    async fn create_team(&self, team: &Team, meta: &ChangeMeta) -> Result<(), StoreError>;
    /// Replaces the team's contact.
    async fn update_team(&self, team: &Team, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn get_team(&self, name: &str) -> Result<Option<Team>, StoreError>;
    async fn list_teams(&self, page: &PageRequest) -> Result<Vec<Team>, StoreError>;

    // -- APIs ----------------------------------------------------------------------------
    async fn create_api(&self, api: &Api, meta: &ChangeMeta) -> Result<(), StoreError>;
    /// Replaces title, description, team, version_header, default_major,
    /// deprecation_notice_days, validation, forward_bearer and updated_at.
    async fn update_api(&self, api: &Api, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn get_api(&self, slug: &str) -> Result<Option<Api>, StoreError>;
    async fn list_apis(&self, page: &PageRequest) -> Result<Vec<Api>, StoreError>;

    // -- versions ------------------------------------------------------------------------
    async fn create_version(&self, version: &Version, meta: &ChangeMeta) -> Result<(), StoreError>;
    /// Replaces the lifecycle fields (state, deprecated_at, sunset_at, successor,
    /// deprecation_link, brownouts, updated_by, updated_at). The spec never changes.
    async fn update_version(&self, version: &Version, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn get_version(&self, api: &str, version: &str) -> Result<Option<Version>, StoreError>;
    /// Every version of an API, oldest semver first.
    async fn list_versions(&self, api: &str) -> Result<Vec<Version>, StoreError>;

    // -- upstreams -----------------------------------------------------------------------
    /// Creates or replaces the upstream of (api, major).
    async fn put_upstream(&self, upstream: &Upstream, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn list_upstreams(&self, api: Option<&str>) -> Result<Vec<Upstream>, StoreError>;

    // -- systems of record ---------------------------------------------------------------
    /// Replaces the API's declarations. Refuses (`SystemOfRecordClaimed`) an entity that
    /// another API already declares.
    async fn put_systems_of_record(
        &self,
        api: &str,
        entries: &[SystemOfRecord],
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    /// Every declaration, ordered by entity.
    async fn list_systems_of_record(&self) -> Result<Vec<SystemOfRecord>, StoreError>;

    // -- consumers and keys --------------------------------------------------------------
    async fn create_consumer(
        &self,
        consumer: &Consumer,
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    /// Replaces the consumer's contact.
    async fn update_consumer(
        &self,
        consumer: &Consumer,
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    async fn get_consumer(&self, name: &str) -> Result<Option<Consumer>, StoreError>;
    async fn list_consumers(&self, page: &PageRequest) -> Result<Vec<Consumer>, StoreError>;
    async fn create_key(&self, key: &ApiKey, meta: &ChangeMeta) -> Result<(), StoreError>;
    /// The consumer's keys, newest first, revoked ones included.
    async fn list_keys(&self, consumer: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks a key revoked. `NotFound` when the consumer has no such key.
    async fn revoke_key(
        &self,
        consumer: &str,
        id: &str,
        at: OffsetDateTime,
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    /// Records last-used times in one batch. Not a registry change: no change-log entry.
    async fn touch_keys(&self, used: &[(String, OffsetDateTime)]) -> Result<(), StoreError>;

    // -- quota checkpoints (local rate-limit mode) ----------------------------------------
    /// Saves quota counters, one per (consumer, api). Runs every few seconds from the
    /// gateway's checkpoint task, never per request. A counter of a newer period replaces
    /// the stored one; within a period the stored count never goes back. Counters whose
    /// period ended before `now` are deleted. Not a registry change: no change-log entry.
    async fn save_quota_usage(
        &self,
        usage: &[QuotaUsage],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The counters of periods still running at `now`. Read once when a node starts.
    async fn load_quota_usage(&self, now: OffsetDateTime) -> Result<Vec<QuotaUsage>, StoreError>;

    // -- plans and subscriptions ---------------------------------------------------------
    async fn create_plan(&self, plan: &Plan, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn update_plan(&self, plan: &Plan, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn get_plan(&self, name: &str) -> Result<Option<Plan>, StoreError>;
    async fn list_plans(&self) -> Result<Vec<Plan>, StoreError>;
    /// Creates or replaces the subscription of (consumer, api).
    async fn put_subscription(
        &self,
        sub: &Subscription,
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    /// Removes the subscription of (consumer, api). `NotFound` when there is none.
    async fn delete_subscription(
        &self,
        consumer: &str,
        api: &str,
        meta: &ChangeMeta,
    ) -> Result<(), StoreError>;
    /// Subscriptions, of one consumer or of all.
    async fn list_subscriptions(
        &self,
        consumer: Option<&str>,
    ) -> Result<Vec<Subscription>, StoreError>;

    // -- trusted issuers -----------------------------------------------------------------
    /// `Duplicate` (entity `issuer`) when the issuer URL or its id is taken.
    async fn create_issuer(&self, issuer: &Issuer, meta: &ChangeMeta) -> Result<(), StoreError>;
    async fn get_issuer(&self, id: &str) -> Result<Option<Issuer>, StoreError>;
    /// Every issuer, ordered by issuer URL.
    async fn list_issuers(&self) -> Result<Vec<Issuer>, StoreError>;
    /// Removes an issuer. `NotFound` when there is none with this id.
    async fn delete_issuer(&self, id: &str, meta: &ChangeMeta) -> Result<(), StoreError>;

    // -- admin tokens --------------------------------------------------------------------
    async fn create_token(&self, token: &AdminToken, meta: &ChangeMeta) -> Result<(), StoreError>;
    /// The token with this hash, revoked or not.
    async fn find_token(&self, hash: &str) -> Result<Option<AdminToken>, StoreError>;
    async fn count_tokens(&self) -> Result<u64, StoreError>;

    // -- change log ----------------------------------------------------------------------
    /// Entries matching the filter, by ascending `seq`.
    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<ChangeEntry>, StoreError>;

    /// The entry whose hash is `hash`, if any (the verifier uses it to tell a reordered
    /// entry from an edited one).
    async fn find_change(&self, hash: &str) -> Result<Option<ChangeEntry>, StoreError>;

    // -- access log ----------------------------------------------------------------------
    /// Inserts a batch of access records in one transaction (multi-row statements). A record
    /// whose key `(at, id)` is already stored is skipped, so the same batch may be retried or
    /// replayed any number of times and is kept once. Returns how many rows were new. Called
    /// only by the gateway's access-log writer; not a registry change (no change-log entry).
    async fn insert_access(&self, records: &[AccessRecord]) -> Result<u64, StoreError>;

    /// One page of the access records matching `filter`, by ascending `(at, id)`.
    async fn list_access(&self, filter: &AccessFilter) -> Result<Vec<AccessRecord>, StoreError>;

    /// Every access record matching `filter` (`limit` 0: no limit), by ascending `(at, id)`,
    /// streamed from the database as it is read: a background task fetches rows and hands them
    /// over a small bounded channel, so memory stays flat however many rows match. Dropping
    /// the stream stops the query. An error ends the stream after being yielded.
    fn stream_access(
        &self,
        filter: AccessFilter,
    ) -> BoxStream<'static, Result<AccessRecord, StoreError>>;

    /// Who called `api` major `major` at or after `since`: one row per (consumer, operation)
    /// with the number of calls and the last one, ordered by consumer (anonymous first), then
    /// operation. Records without an operation (unknown paths) are left out. Serves the
    /// deprecation-readiness report and the publish gate's impact analysis.
    async fn operation_callers(
        &self,
        api: &str,
        major: u64,
        since: OffsetDateTime,
    ) -> Result<Vec<OperationCallers>, StoreError>;

    /// Access-log housekeeping, run by the writer at start and then hourly. PostgreSQL creates
    /// the daily partitions from yesterday to `days_ahead` days after `now`. With `retain_after`,
    /// records older than it go: PostgreSQL drops whole daily partitions that end at or before
    /// it, SQLite deletes rows in small batches (so the writer is never locked out for long).
    async fn maintain_access(
        &self,
        now: OffsetDateTime,
        days_ahead: u32,
        retain_after: Option<OffsetDateTime>,
    ) -> Result<AccessMaintenance, StoreError>;

    // -- snapshot ------------------------------------------------------------------------
    /// Everything the gateway compiles, read in one transaction so it is consistent.
    async fn load_contents(&self) -> Result<Contents, StoreError>;
}

/// What one run of [`Store::maintain_access`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessMaintenance {
    /// Partitions created (PostgreSQL).
    pub partitions_created: Vec<String>,
    /// Partitions dropped by retention (PostgreSQL).
    pub partitions_dropped: Vec<String>,
    /// Rows deleted by retention (SQLite; PostgreSQL: from the default partition).
    pub rows_deleted: u64,
}

/// Opens the store a URL names (`sqlite://path` or `postgres://…`), applying migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::BadUrl {
            url: url.to_owned(),
        })
    }
}
