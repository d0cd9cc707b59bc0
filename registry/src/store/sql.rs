//! What the SQLite and PostgreSQL stores share at run time, and [`impl_store!`], which
//! holds every query once.
//!
//! One SQL text serves both backends: both accept `$1, $2` placeholders, `ON CONFLICT … DO
//! UPDATE`, `COALESCE` and `substr`. The few real differences (how a write transaction
//! starts, how other nodes learn about a commit) are small inherent methods of each store
//! that the macro calls by name.
//!
//! What both backends do beyond the trait's documentation:
//! - References are checked inside the write transaction, before the write, so `NotFound`
//!   names the missing record (`team`, `api`, `consumer`, `plan`); updates of a missing
//!   record are `NotFound` for that record, and for versions the key is `api@version`.
//! - A refused write (duplicate, missing reference, claimed entity) rolls back whole and
//!   appends no change-log entry.
//! - `put_systems_of_record` stores every entry under its `api` argument; the entries' own
//!   `api` field is not consulted.
//! - Revoking a revoked key keeps the first revocation time (and still logs the request);
//!   `touch_keys` ignores unknown ids and never moves a last-used time back.
//! - The change-log `target` filter is a literal, case-sensitive prefix; `from` is
//!   inclusive and `to` exclusive.
//! - A `u64` beyond `i64::MAX` (a major, a quota) is refused with
//!   `StoreError::Database(sqlx::Error::Encode(_))`, never wrapped.

use super::StoreError;
use crate::model::*;
use time::OffsetDateTime;

/// Items per page when a caller asks for 0.
pub(super) const DEFAULT_LIMIT: u32 = 100;
/// The most items one page or change-log query returns.
pub(super) const MAX_LIMIT: u32 = 1_000;
/// Rows per multi-row `INSERT` of access records: 24 parameters each stays well within
/// SQLite's 32,766 and PostgreSQL's 65,535 bound parameters per statement.
pub(super) const ACCESS_ROWS_PER_STATEMENT: usize = 500;
/// Rows a streamed query hands over at once.
pub(super) const STREAM_CHUNK_ROWS: usize = 256;
/// Chunks a streamed query reads ahead of its consumer: with [`STREAM_CHUNK_ROWS`], the bound
/// on its memory (about a thousand rows).
pub(super) const STREAM_CHUNKS: usize = 4;

/// The SQL `LIMIT` for a requested page size: 0 means [`DEFAULT_LIMIT`], and no page is
/// larger than [`MAX_LIMIT`].
pub(super) fn limit(requested: u32) -> i64 {
    let limit = match requested {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    i64::from(limit)
}

/// The current time as the store keeps it (whole milliseconds), so that an entry read back
/// equals the entry written.
pub(super) fn now_ms() -> OffsetDateTime {
    from_unix_ms(unix_ms(OffsetDateTime::now_utc()))
}

/// Publishes a committed head sequence to subscribers; never moves the value back.
pub(super) fn publish(head: &tokio::sync::watch::Sender<i64>, seq: i64) {
    head.send_if_modified(|current| {
        if seq > *current {
            *current = seq;
            true
        } else {
            false
        }
    });
}

/// The change-log entry that follows `prev` (the newest entry's seq and hash, if any).
pub(super) fn next_entry(prev: Option<(i64, String)>, meta: &ChangeMeta) -> ChangeEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, ChangeEntry::GENESIS.to_owned()),
    };
    let mut entry = ChangeEntry {
        seq,
        at: now_ms(),
        actor: meta.actor.id.clone(),
        role: meta.actor.role,
        action: meta.action.clone(),
        target: meta.target.clone(),
        before_digest: meta.before_digest.clone(),
        after_digest: meta.after_digest.clone(),
        reason: meta.reason.clone(),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    entry
}

/// The versions of one or more APIs, by API then oldest semver first. Versions that are
/// not semver (the service never stores one) sort after the others, by text.
pub(super) fn sort_versions(versions: &mut [Version]) {
    versions.sort_by_cached_key(|v| {
        let parsed = semver::Version::parse(&v.version).ok();
        (v.api.clone(), parsed.is_none(), parsed, v.version.clone())
    });
}

// -- errors ------------------------------------------------------------------------------

/// Maps a failed insert: a unique violation means `entity` `key` already exists.
pub(super) fn duplicate(error: sqlx::Error, entity: &'static str, key: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate {
            entity,
            key: key.to_owned(),
        },
        _ => StoreError::Database(error),
    }
}

// -- references --------------------------------------------------------------------------

/// A record that another one refers to, checked inside the write transaction so that
/// `NotFound` names the record that is missing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Parent {
    Team,
    Api,
    Consumer,
    Plan,
}

impl Parent {
    pub(super) fn entity(self) -> &'static str {
        match self {
            Parent::Team => "team",
            Parent::Api => "api",
            Parent::Consumer => "consumer",
            Parent::Plan => "plan",
        }
    }

    pub(super) fn exists_sql(self) -> &'static str {
        match self {
            Parent::Team => "SELECT 1 FROM teams WHERE name = $1",
            Parent::Api => "SELECT 1 FROM apis WHERE slug = $1",
            Parent::Consumer => "SELECT 1 FROM consumers WHERE name = $1",
            Parent::Plan => "SELECT 1 FROM plans WHERE name = $1",
        }
    }
}

// -- the queries -------------------------------------------------------------------------

/// Implements [`Store`](super::Store) for `$store` on database `$db`.
///
/// `$store` must have fields `pool: sqlx::Pool<$db>` and `head` (something that derefs to a
/// `tokio::sync::watch::Sender<i64>`), and inherent methods:
/// - `begin_write(&self)`: a transaction that serialises with every other registry writer;
/// - `begin_untracked(&self)`: a write transaction that appends no change-log entry;
/// - `begin_read(&self)`: a transaction that reads one consistent state;
/// - `notify(tx, seq)`: called after the change-log insert, inside the transaction.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        impl $store {
            /// Fails with `NotFound` unless the record `parent` named `key` exists.
            async fn require(
                conn: &mut <$db as sqlx::Database>::Connection,
                parent: $crate::store::sql::Parent,
                key: &str,
            ) -> Result<(), StoreError> {
                let found = sqlx::query(parent.exists_sql())
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
                match found {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound {
                        entity: parent.entity(),
                        key: key.to_owned(),
                    }),
                }
            }

            /// Appends the change-log entry of this write, commits, and tells subscribers.
            async fn commit_write(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let prev: Option<(i64, String)> =
                    sqlx::query_as("SELECT seq, hash FROM change_log ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await?;
                let entry = $crate::store::sql::next_entry(prev, meta);
                sqlx::query(concat!(
                    "INSERT INTO change_log (",
                    $crate::store::rows::cols!(change_log),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(entry.seq)
                .bind(unix_ms(entry.at))
                .bind(&entry.actor)
                .bind(entry.role.as_str())
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.before_digest)
                .bind(&entry.after_digest)
                .bind(&entry.reason)
                .bind(&entry.prev_hash)
                .bind(&entry.hash)
                .execute(&mut *tx)
                .await?;
                Self::notify(&mut tx, entry.seq).await?;
                tx.commit().await?;
                $crate::store::sql::publish(&self.head, entry.seq);
                Ok(())
            }

            async fn read_head(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> Result<i64, StoreError> {
                let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(head)
            }

            async fn fetch_versions(
                conn: &mut <$db as sqlx::Database>::Connection,
                api: Option<&str>,
            ) -> Result<Vec<Version>, StoreError> {
                let rows: Vec<$crate::store::rows::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(versions),
                    " FROM versions WHERE ($1 IS NULL OR api = $1)"
                ))
                .bind(api)
                .fetch_all(&mut *conn)
                .await?;
                let mut versions: Vec<Version> = $crate::store::rows::convert(rows)?;
                $crate::store::sql::sort_versions(&mut versions);
                Ok(versions)
            }

            async fn fetch_upstreams(
                conn: &mut <$db as sqlx::Database>::Connection,
                api: Option<&str>,
            ) -> Result<Vec<Upstream>, StoreError> {
                let rows: Vec<$crate::store::rows::UpstreamRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(upstreams),
                    " FROM upstreams WHERE ($1 IS NULL OR api = $1) ORDER BY api, major"
                ))
                .bind(api)
                .fetch_all(&mut *conn)
                .await?;
                $crate::store::rows::convert(rows)
            }

            async fn fetch_issuers(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> Result<Vec<Issuer>, StoreError> {
                let rows: Vec<$crate::store::rows::IssuerRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(issuers),
                    " FROM issuers ORDER BY issuer"
                ))
                .fetch_all(&mut *conn)
                .await?;
                $crate::store::rows::convert(rows)
            }

            /// `SELECT <access_log columns> FROM access_log WHERE <filter>`, ready for an
            /// `ORDER BY`: every filter is a bound parameter.
            fn access_query(
                filter: &$crate::access::AccessFilter,
            ) -> sqlx::QueryBuilder<'static, $db> {
                let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(access_log),
                    " FROM access_log WHERE 1 = 1"
                ));
                if let Some(from) = filter.from {
                    q.push(" AND at >= ").push_bind(unix_ms(from));
                }
                if let Some(to) = filter.to {
                    q.push(" AND at < ").push_bind(unix_ms(to));
                }
                if let Some(consumer) = &filter.consumer {
                    q.push(" AND consumer = ").push_bind(consumer.clone());
                }
                if let Some(api) = &filter.api {
                    q.push(" AND api = ").push_bind(api.clone());
                }
                if let Some(major) = filter.major {
                    q.push(" AND major = ")
                        .push_bind($crate::store::rows::saturating_i64(major));
                }
                if let Some(status) = filter.status {
                    let (low, high) = status.range();
                    if low == high {
                        q.push(" AND status = ").push_bind(i64::from(low));
                    } else {
                        q.push(" AND status BETWEEN ")
                            .push_bind(i64::from(low))
                            .push(" AND ")
                            .push_bind(i64::from(high));
                    }
                }
                if let Some(decision) = filter.decision {
                    q.push(" AND decision = ").push_bind(decision.as_str());
                }
                if let Some(after) = &filter.after {
                    q.push(" AND (at, id) > (")
                        .push_bind(after.at_ms)
                        .push(", ")
                        .push_bind(after.id.clone())
                        .push(")");
                }
                q
            }

            async fn fetch_subscriptions(
                conn: &mut <$db as sqlx::Database>::Connection,
                consumer: Option<&str>,
            ) -> Result<Vec<Subscription>, StoreError> {
                let rows: Vec<$crate::store::rows::SubscriptionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(subscriptions),
                    " FROM subscriptions WHERE ($1 IS NULL OR consumer = $1) \
                     ORDER BY consumer, api"
                ))
                .bind(consumer)
                .fetch_all(&mut *conn)
                .await?;
                $crate::store::rows::convert(rows)
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
                self.head.subscribe()
            }

            async fn head_seq(&self) -> Result<i64, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::read_head(&mut conn).await
            }

            // -- teams -----------------------------------------------------------------------

            async fn create_team(&self, team: &Team, meta: &ChangeMeta) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO teams (name, contact, created_at) VALUES ($1, $2, $3)")
                    .bind(&team.name)
                    .bind(&team.contact)
                    .bind(unix_ms(team.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::store::sql::duplicate(e, "team", &team.name))?;
                self.commit_write(tx, meta).await
            }

            async fn update_team(&self, team: &Team, meta: &ChangeMeta) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Team, &team.name).await?;
                sqlx::query("UPDATE teams SET contact = $2 WHERE name = $1")
                    .bind(&team.name)
                    .bind(&team.contact)
                    .execute(&mut *tx)
                    .await?;
                self.commit_write(tx, meta).await
            }

            async fn get_team(&self, name: &str) -> Result<Option<Team>, StoreError> {
                let row: Option<$crate::store::rows::TeamRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(teams),
                    " FROM teams WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Team::from))
            }

            async fn list_teams(&self, page: &PageRequest) -> Result<Vec<Team>, StoreError> {
                let rows: Vec<$crate::store::rows::TeamRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(teams),
                    " FROM teams WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2"
                ))
                .bind(page.after.as_deref())
                .bind($crate::store::sql::limit(page.limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Team::from).collect())
            }

            // -- APIs ------------------------------------------------------------------------

            async fn create_api(&self, api: &Api, meta: &ChangeMeta) -> Result<(), StoreError> {
                let default_major =
                    api.default_major.map($crate::store::rows::to_i64).transpose()?;
                let max_body = $crate::store::rows::to_i64(api.validation.max_body_bytes)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Team, &api.team).await?;
                sqlx::query(concat!(
                    "INSERT INTO apis (",
                    $crate::store::rows::cols!(apis),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(&api.slug)
                .bind(&api.title)
                .bind(&api.description)
                .bind(&api.team)
                .bind(api.version_header)
                .bind(default_major)
                .bind(unix_ms(api.created_at))
                .bind(unix_ms(api.updated_at))
                .bind(i64::from(api.deprecation_notice_days))
                .bind(api.validation.request)
                .bind(api.validation.response.as_str())
                .bind(max_body)
                .bind(api.validation.reject_unknown_query_params)
                .bind(api.forward_bearer)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::duplicate(e, "api", &api.slug))?;
                self.commit_write(tx, meta).await
            }

            async fn update_api(&self, api: &Api, meta: &ChangeMeta) -> Result<(), StoreError> {
                let default_major =
                    api.default_major.map($crate::store::rows::to_i64).transpose()?;
                let max_body = $crate::store::rows::to_i64(api.validation.max_body_bytes)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, &api.slug).await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Team, &api.team).await?;
                sqlx::query(
                    "UPDATE apis SET title = $2, description = $3, team = $4, \
                     version_header = $5, default_major = $6, updated_at = $7, \
                     deprecation_notice_days = $8, request_validation = $9, \
                     response_validation = $10, max_body_bytes = $11, reject_unknown_query = $12, forward_bearer = $13 \
                     WHERE slug = $1",
                )
                .bind(&api.slug)
                .bind(&api.title)
                .bind(&api.description)
                .bind(&api.team)
                .bind(api.version_header)
                .bind(default_major)
                .bind(unix_ms(api.updated_at))
                .bind(i64::from(api.deprecation_notice_days))
                .bind(api.validation.request)
                .bind(api.validation.response.as_str())
                .bind(max_body)
                .bind(api.validation.reject_unknown_query_params)
                .bind(api.forward_bearer)
                .execute(&mut *tx)
                .await?;
                self.commit_write(tx, meta).await
            }

            async fn get_api(&self, slug: &str) -> Result<Option<Api>, StoreError> {
                let row: Option<$crate::store::rows::ApiRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(apis),
                    " FROM apis WHERE slug = $1"
                ))
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Api::try_from).transpose()
            }

            async fn list_apis(&self, page: &PageRequest) -> Result<Vec<Api>, StoreError> {
                let rows: Vec<$crate::store::rows::ApiRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(apis),
                    " FROM apis WHERE ($1 IS NULL OR slug > $1) ORDER BY slug LIMIT $2"
                ))
                .bind(page.after.as_deref())
                .bind($crate::store::sql::limit(page.limit))
                .fetch_all(&self.pool)
                .await?;
                $crate::store::rows::convert(rows)
            }

            // -- versions --------------------------------------------------------------------

            async fn create_version(
                &self,
                version: &Version,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let major = $crate::store::rows::to_i64(version.major)?;
                let brownouts = $crate::store::rows::to_json(&version.brownouts)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, &version.api).await?;
                sqlx::query(concat!(
                    "INSERT INTO versions (",
                    $crate::store::rows::cols!(versions),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17)"
                ))
                .bind(&version.api)
                .bind(&version.version)
                .bind(major)
                .bind(version.state.as_str())
                .bind(&version.spec_raw)
                .bind(&version.spec_json)
                .bind(&version.sha256)
                .bind(&version.content_type)
                .bind($crate::store::rows::opt_ms(version.deprecated_at))
                .bind($crate::store::rows::opt_ms(version.sunset_at))
                .bind(&version.successor)
                .bind(&version.deprecation_link)
                .bind(brownouts)
                .bind(&version.created_by)
                .bind(unix_ms(version.created_at))
                .bind(&version.updated_by)
                .bind(unix_ms(version.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    let key = format!("{}@{}", version.api, version.version);
                    $crate::store::sql::duplicate(e, "version", &key)
                })?;
                self.commit_write(tx, meta).await
            }

            async fn update_version(
                &self,
                version: &Version,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let brownouts = $crate::store::rows::to_json(&version.brownouts)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, &version.api).await?;
                let updated = sqlx::query(
                    "UPDATE versions SET state = $3, deprecated_at = $4, sunset_at = $5, \
                     successor = $6, deprecation_link = $7, brownouts = $8, updated_by = $9, \
                     updated_at = $10 WHERE api = $1 AND version = $2",
                )
                .bind(&version.api)
                .bind(&version.version)
                .bind(version.state.as_str())
                .bind($crate::store::rows::opt_ms(version.deprecated_at))
                .bind($crate::store::rows::opt_ms(version.sunset_at))
                .bind(&version.successor)
                .bind(&version.deprecation_link)
                .bind(brownouts)
                .bind(&version.updated_by)
                .bind(unix_ms(version.updated_at))
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound {
                        entity: "version",
                        key: format!("{}@{}", version.api, version.version),
                    });
                }
                self.commit_write(tx, meta).await
            }

            async fn get_version(
                &self,
                api: &str,
                version: &str,
            ) -> Result<Option<Version>, StoreError> {
                let row: Option<$crate::store::rows::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(versions),
                    " FROM versions WHERE api = $1 AND version = $2"
                ))
                .bind(api)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Version::try_from).transpose()
            }

            async fn list_versions(&self, api: &str) -> Result<Vec<Version>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::fetch_versions(&mut conn, Some(api)).await
            }

            // -- upstreams -------------------------------------------------------------------

            async fn put_upstream(
                &self,
                upstream: &Upstream,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let major = $crate::store::rows::to_i64(upstream.major)?;
                let targets = $crate::store::rows::to_json(&upstream.targets)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, &upstream.api).await?;
                sqlx::query(concat!(
                    "INSERT INTO upstreams (",
                    $crate::store::rows::cols!(upstreams),
                    ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (api, major) DO UPDATE SET \
                     targets = excluded.targets, \
                     connect_timeout_ms = excluded.connect_timeout_ms, \
                     read_timeout_ms = excluded.read_timeout_ms"
                ))
                .bind(&upstream.api)
                .bind(major)
                .bind(targets)
                .bind($crate::store::rows::from_u32(upstream.connect_timeout_ms))
                .bind($crate::store::rows::from_u32(upstream.read_timeout_ms))
                .execute(&mut *tx)
                .await?;
                self.commit_write(tx, meta).await
            }

            async fn list_upstreams(&self, api: Option<&str>) -> Result<Vec<Upstream>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::fetch_upstreams(&mut conn, api).await
            }

            // -- systems of record -----------------------------------------------------------

            async fn put_systems_of_record(
                &self,
                api: &str,
                entries: &[SystemOfRecord],
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, api).await?;
                for entry in entries {
                    let claimed: Option<(String, String)> = sqlx::query_as(
                        "SELECT system, api FROM systems_of_record WHERE entity = $1 AND api <> $2",
                    )
                    .bind(&entry.entity)
                    .bind(api)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((system, other)) = claimed {
                        return Err(StoreError::SystemOfRecordClaimed {
                            entity: entry.entity.clone(),
                            system,
                            api: other,
                        });
                    }
                }
                // Checked above: no entry is another API's, so replacing cannot steal one.
                sqlx::query("DELETE FROM systems_of_record WHERE api = $1")
                    .bind(api)
                    .execute(&mut *tx)
                    .await?;
                for entry in entries {
                    sqlx::query(
                        "INSERT INTO systems_of_record (entity, system, api) VALUES ($1, $2, $3)",
                    )
                    .bind(&entry.entity)
                    .bind(&entry.system)
                    .bind(api)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        $crate::store::sql::duplicate(e, "system of record", &entry.entity)
                    })?;
                }
                self.commit_write(tx, meta).await
            }

            async fn list_systems_of_record(&self) -> Result<Vec<SystemOfRecord>, StoreError> {
                let rows: Vec<$crate::store::rows::SystemOfRecordRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(systems_of_record),
                    " FROM systems_of_record ORDER BY entity"
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(SystemOfRecord::from).collect())
            }

            // -- consumers and keys ----------------------------------------------------------

            async fn create_consumer(
                &self,
                consumer: &Consumer,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO consumers (name, contact, created_at) VALUES ($1, $2, $3)")
                    .bind(&consumer.name)
                    .bind(&consumer.contact)
                    .bind(unix_ms(consumer.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::store::sql::duplicate(e, "consumer", &consumer.name))?;
                self.commit_write(tx, meta).await
            }

            async fn update_consumer(
                &self,
                consumer: &Consumer,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Consumer, &consumer.name)
                    .await?;
                sqlx::query("UPDATE consumers SET contact = $2 WHERE name = $1")
                    .bind(&consumer.name)
                    .bind(&consumer.contact)
                    .execute(&mut *tx)
                    .await?;
                self.commit_write(tx, meta).await
            }

            async fn get_consumer(&self, name: &str) -> Result<Option<Consumer>, StoreError> {
                let row: Option<$crate::store::rows::ConsumerRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(consumers),
                    " FROM consumers WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Consumer::from))
            }

            async fn list_consumers(&self, page: &PageRequest) -> Result<Vec<Consumer>, StoreError> {
                let rows: Vec<$crate::store::rows::ConsumerRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(consumers),
                    " FROM consumers WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2"
                ))
                .bind(page.after.as_deref())
                .bind($crate::store::sql::limit(page.limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Consumer::from).collect())
            }

            async fn create_key(&self, key: &ApiKey, meta: &ChangeMeta) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Consumer, &key.consumer)
                    .await?;
                sqlx::query(concat!(
                    "INSERT INTO api_keys (",
                    $crate::store::rows::cols!(api_keys),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(&key.id)
                .bind(&key.consumer)
                .bind(&key.hash)
                .bind(unix_ms(key.created_at))
                .bind($crate::store::rows::opt_ms(key.expires_at))
                .bind($crate::store::rows::opt_ms(key.revoked_at))
                .bind($crate::store::rows::opt_ms(key.last_used_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::duplicate(e, "api key", &key.id))?;
                self.commit_write(tx, meta).await
            }

            async fn list_keys(&self, consumer: &str) -> Result<Vec<ApiKey>, StoreError> {
                let rows: Vec<$crate::store::rows::ApiKeyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(api_keys),
                    " FROM api_keys WHERE consumer = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(consumer)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(ApiKey::from).collect())
            }

            async fn revoke_key(
                &self,
                consumer: &str,
                id: &str,
                at: OffsetDateTime,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                // A key revoked twice keeps the time of its first revocation.
                let updated = sqlx::query(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
                     WHERE consumer = $1 AND id = $2",
                )
                .bind(consumer)
                .bind(id)
                .bind(unix_ms(at))
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound {
                        entity: "api key",
                        key: id.to_owned(),
                    });
                }
                self.commit_write(tx, meta).await
            }

            async fn touch_keys(
                &self,
                used: &[(String, OffsetDateTime)],
            ) -> Result<(), StoreError> {
                if used.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_untracked().await?;
                for (id, at) in used {
                    // Batches from several nodes may arrive out of order: never move back.
                    sqlx::query(
                        "UPDATE api_keys SET last_used_at = $2 \
                         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(id)
                    .bind(unix_ms(*at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn save_quota_usage(
                &self,
                usage: &[QuotaUsage],
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_untracked().await?;
                for u in usage {
                    // Checkpoints of one node arrive in order; a newer period replaces an
                    // older one, and within a period the count never goes back.
                    sqlx::query(
                        "INSERT INTO quota_usage (consumer, api, period_start, period_end, used) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, api) DO UPDATE SET \
                         period_start = excluded.period_start, period_end = excluded.period_end, \
                         used = CASE WHEN quota_usage.period_start = excluded.period_start \
                         AND quota_usage.used > excluded.used THEN quota_usage.used \
                         ELSE excluded.used END \
                         WHERE quota_usage.period_start <= excluded.period_start",
                    )
                    .bind(&u.consumer)
                    .bind(&u.api)
                    .bind(u.period_start_ms)
                    .bind(u.period_end_ms)
                    .bind($crate::store::rows::to_i64(u.used)?)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("DELETE FROM quota_usage WHERE period_end <= $1")
                    .bind(unix_ms(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn load_quota_usage(
                &self,
                now: OffsetDateTime,
            ) -> Result<Vec<QuotaUsage>, StoreError> {
                let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT consumer, api, period_start, period_end, used FROM quota_usage \
                     WHERE period_end > $1 ORDER BY consumer, api",
                )
                .bind(unix_ms(now))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(consumer, api, period_start_ms, period_end_ms, used)| {
                        Ok(QuotaUsage {
                            consumer,
                            api,
                            period_start_ms,
                            period_end_ms,
                            used: u64::try_from(used).map_err(|e| StoreError::Corrupt {
                                what: "quota usage",
                                detail: e.to_string(),
                            })?,
                        })
                    })
                    .collect()
            }

            // -- plans and subscriptions -----------------------------------------------------

            async fn create_plan(&self, plan: &Plan, meta: &ChangeMeta) -> Result<(), StoreError> {
                let quota_requests = plan
                    .quota
                    .map(|q| $crate::store::rows::to_i64(q.requests))
                    .transpose()?;
                let overrides = $crate::store::rows::to_json(&plan.overrides)?;
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO plans (",
                    $crate::store::rows::cols!(plans),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .bind(&plan.name)
                .bind($crate::store::rows::from_u32(plan.rate.requests))
                .bind($crate::store::rows::from_u32(plan.rate.per_seconds))
                .bind(plan.rate.burst.map($crate::store::rows::from_u32))
                .bind(quota_requests)
                .bind(plan.quota.map(|q| $crate::store::rows::quota_period(q.period)))
                .bind(overrides)
                .bind(plan.on_redis_failure.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::duplicate(e, "plan", &plan.name))?;
                self.commit_write(tx, meta).await
            }

            async fn update_plan(&self, plan: &Plan, meta: &ChangeMeta) -> Result<(), StoreError> {
                let quota_requests = plan
                    .quota
                    .map(|q| $crate::store::rows::to_i64(q.requests))
                    .transpose()?;
                let overrides = $crate::store::rows::to_json(&plan.overrides)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Plan, &plan.name).await?;
                sqlx::query(
                    "UPDATE plans SET rate_requests = $2, rate_per_seconds = $3, rate_burst = $4, \
                     quota_requests = $5, quota_period = $6, overrides = $7, \
                     on_redis_failure = $8 WHERE name = $1",
                )
                .bind(&plan.name)
                .bind($crate::store::rows::from_u32(plan.rate.requests))
                .bind($crate::store::rows::from_u32(plan.rate.per_seconds))
                .bind(plan.rate.burst.map($crate::store::rows::from_u32))
                .bind(quota_requests)
                .bind(plan.quota.map(|q| $crate::store::rows::quota_period(q.period)))
                .bind(overrides)
                .bind(plan.on_redis_failure.as_str())
                .execute(&mut *tx)
                .await?;
                self.commit_write(tx, meta).await
            }

            async fn get_plan(&self, name: &str) -> Result<Option<Plan>, StoreError> {
                let row: Option<$crate::store::rows::PlanRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(plans),
                    " FROM plans WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Plan::try_from).transpose()
            }

            async fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
                let rows: Vec<$crate::store::rows::PlanRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(plans),
                    " FROM plans ORDER BY name"
                ))
                .fetch_all(&self.pool)
                .await?;
                $crate::store::rows::convert(rows)
            }

            async fn put_subscription(
                &self,
                sub: &Subscription,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let majors = $crate::store::rows::to_json(&sub.majors)?;
                let scopes = $crate::store::rows::to_json(&sub.scopes)?;
                let mut tx = self.begin_write().await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Consumer, &sub.consumer)
                    .await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Api, &sub.api).await?;
                Self::require(&mut tx, $crate::store::sql::Parent::Plan, &sub.plan).await?;
                sqlx::query(concat!(
                    "INSERT INTO subscriptions (",
                    $crate::store::rows::cols!(subscriptions),
                    ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, api) DO UPDATE SET \
                     majors = excluded.majors, plan = excluded.plan, scopes = excluded.scopes"
                ))
                .bind(&sub.consumer)
                .bind(&sub.api)
                .bind(majors)
                .bind(&sub.plan)
                .bind(scopes)
                .execute(&mut *tx)
                .await?;
                self.commit_write(tx, meta).await
            }

            async fn delete_subscription(
                &self,
                consumer: &str,
                api: &str,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let deleted =
                    sqlx::query("DELETE FROM subscriptions WHERE consumer = $1 AND api = $2")
                        .bind(consumer)
                        .bind(api)
                        .execute(&mut *tx)
                        .await?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::NotFound {
                        entity: "subscription",
                        key: format!("{consumer}/{api}"),
                    });
                }
                self.commit_write(tx, meta).await
            }

            async fn list_subscriptions(
                &self,
                consumer: Option<&str>,
            ) -> Result<Vec<Subscription>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::fetch_subscriptions(&mut conn, consumer).await
            }

            // -- trusted issuers -------------------------------------------------------------

            async fn create_issuer(
                &self,
                issuer: &Issuer,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let audiences = $crate::store::rows::to_json(&issuer.audiences)?;
                let algorithms = $crate::store::rows::to_json(&issuer.algorithms)?;
                let keys = issuer
                    .keys
                    .as_ref()
                    .map($crate::store::rows::to_json)
                    .transpose()?;
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO issuers (",
                    $crate::store::rows::cols!(issuers),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&issuer.id)
                .bind(&issuer.issuer)
                .bind(audiences)
                .bind(algorithms)
                .bind(&issuer.jwks_uri)
                .bind(keys)
                .bind(&issuer.consumer_claim)
                .bind(i64::from(issuer.leeway_seconds))
                .bind(unix_ms(issuer.created_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::duplicate(e, "issuer", &issuer.issuer))?;
                self.commit_write(tx, meta).await
            }

            async fn get_issuer(&self, id: &str) -> Result<Option<Issuer>, StoreError> {
                let row: Option<$crate::store::rows::IssuerRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(issuers),
                    " FROM issuers WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Issuer::try_from).transpose()
            }

            async fn list_issuers(&self) -> Result<Vec<Issuer>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::fetch_issuers(&mut conn).await
            }

            async fn delete_issuer(&self, id: &str, meta: &ChangeMeta) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query("DELETE FROM issuers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::NotFound {
                        entity: "issuer",
                        key: id.to_owned(),
                    });
                }
                self.commit_write(tx, meta).await
            }

            // -- admin tokens ----------------------------------------------------------------

            async fn create_token(
                &self,
                token: &AdminToken,
                meta: &ChangeMeta,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO admin_tokens (",
                    $crate::store::rows::cols!(admin_tokens),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .bind(&token.id)
                .bind(&token.hash)
                .bind(token.role.as_str())
                .bind(&token.team)
                .bind(unix_ms(token.created_at))
                .bind($crate::store::rows::opt_ms(token.revoked_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::duplicate(e, "admin token", &token.id))?;
                self.commit_write(tx, meta).await
            }

            async fn find_token(&self, hash: &str) -> Result<Option<AdminToken>, StoreError> {
                let row: Option<$crate::store::rows::AdminTokenRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(admin_tokens),
                    " FROM admin_tokens WHERE hash = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(AdminToken::try_from).transpose()
            }

            async fn count_tokens(&self) -> Result<u64, StoreError> {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
                    .fetch_one(&self.pool)
                    .await?;
                u64::try_from(count).map_err(|e| StoreError::Corrupt {
                    what: "admin token count",
                    detail: e.to_string(),
                })
            }

            // -- change log ------------------------------------------------------------------

            async fn list_changes(
                &self,
                filter: &ChangeFilter,
            ) -> Result<Vec<ChangeEntry>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(change_log),
                    " FROM change_log WHERE 1 = 1"
                ));
                if let Some(from) = filter.from {
                    q.push(" AND at >= ").push_bind(unix_ms(from));
                }
                if let Some(to) = filter.to {
                    q.push(" AND at < ").push_bind(unix_ms(to));
                }
                if let Some(actor) = &filter.actor {
                    q.push(" AND actor = ").push_bind(actor);
                }
                if let Some(action) = &filter.action {
                    q.push(" AND action = ").push_bind(action);
                }
                if let Some(target) = &filter.target {
                    q.push(" AND substr(target, 1, length(")
                        .push_bind(target)
                        .push(")) = ")
                        .push_bind(target);
                }
                if let Some(after) = filter.after_seq {
                    q.push(" AND seq > ").push_bind(after);
                }
                q.push(" ORDER BY seq LIMIT ")
                    .push_bind($crate::store::sql::limit(filter.limit));
                let rows: Vec<$crate::store::rows::ChangeRow> =
                    q.build_query_as().fetch_all(&self.pool).await?;
                $crate::store::rows::convert(rows)
            }

            async fn find_change(&self, hash: &str) -> Result<Option<ChangeEntry>, StoreError> {
                let row: Option<$crate::store::rows::ChangeRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(change_log),
                    " FROM change_log WHERE hash = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(ChangeEntry::try_from).transpose()
            }

            // -- access log ------------------------------------------------------------------

            async fn insert_access(
                &self,
                records: &[$crate::access::AccessRecord],
            ) -> Result<u64, StoreError> {
                if records.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_untracked().await?;
                let mut inserted = 0;
                for chunk in records.chunks($crate::store::sql::ACCESS_ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                        "INSERT INTO access_log (",
                        $crate::store::rows::cols!(access_log),
                        ") "
                    ));
                    q.push_values(chunk, |mut b, r| {
                        use $crate::store::rows::saturating_i64;
                        b.push_bind(unix_ms(r.at))
                            .push_bind(&r.id)
                            .push_bind(&r.request_id)
                            .push_bind(&r.trace_id)
                            .push_bind(&r.consumer)
                            .push_bind(&r.key_id)
                            .push_bind(&r.subject)
                            .push_bind(&r.api)
                            .push_bind(r.major.map(saturating_i64))
                            .push_bind(&r.version)
                            .push_bind(&r.operation)
                            .push_bind(&r.method)
                            .push_bind(&r.path_template)
                            .push_bind(&r.path)
                            .push_bind(i64::from(r.status))
                            .push_bind(r.decision.as_str())
                            .push_bind(&r.reason)
                            .push_bind(saturating_i64(r.duration_us))
                            .push_bind(saturating_i64(r.upstream_us))
                            .push_bind(saturating_i64(r.bytes_in))
                            .push_bind(saturating_i64(r.bytes_out))
                            .push_bind(&r.client_addr)
                            .push_bind(&r.user_agent)
                            .push_bind(i64::from(r.flags.bits()));
                    });
                    q.push(" ON CONFLICT DO NOTHING");
                    inserted += q.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn list_access(
                &self,
                filter: &$crate::access::AccessFilter,
            ) -> Result<Vec<$crate::access::AccessRecord>, StoreError> {
                let mut q = Self::access_query(filter);
                q.push(" ORDER BY at, id LIMIT ")
                    .push_bind($crate::store::sql::limit(filter.limit));
                let rows: Vec<$crate::store::rows::AccessRow> =
                    q.build_query_as().fetch_all(&self.pool).await?;
                $crate::store::rows::convert(rows)
            }

            fn stream_access(
                &self,
                filter: $crate::access::AccessFilter,
            ) -> futures::stream::BoxStream<
                'static,
                Result<$crate::access::AccessRecord, StoreError>,
            > {
                use futures::StreamExt as _;
                let pool = self.pool.clone();
                // Rows travel in small chunks: one channel hand-over per chunk, not per row.
                let (tx, rx) = tokio::sync::mpsc::channel::<
                    Vec<Result<$crate::access::AccessRecord, StoreError>>,
                >($crate::store::sql::STREAM_CHUNKS);
                tokio::spawn(async move {
                    let mut q = Self::access_query(&filter);
                    q.push(" ORDER BY at, id");
                    if filter.limit > 0 {
                        q.push(" LIMIT ").push_bind(i64::from(filter.limit));
                    }
                    let mut rows =
                        q.build_query_as::<$crate::store::rows::AccessRow>().fetch(&pool);
                    let size = $crate::store::sql::STREAM_CHUNK_ROWS;
                    let mut chunk = Vec::with_capacity(size);
                    while let Some(row) = rows.next().await {
                        let item = row
                            .map_err(StoreError::from)
                            .and_then($crate::access::AccessRecord::try_from);
                        let failed = item.is_err();
                        chunk.push(item);
                        if chunk.len() >= size || failed {
                            let full = std::mem::replace(&mut chunk, Vec::with_capacity(size));
                            // A closed receiver means the reader went away: stop reading.
                            if tx.send(full).await.is_err() || failed {
                                return;
                            }
                        }
                    }
                    if !chunk.is_empty() {
                        let _ = tx.send(chunk).await;
                    }
                });
                futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|chunk| (futures::stream::iter(chunk), rx))
                })
                .flatten()
                .boxed()
            }

            async fn operation_callers(
                &self,
                api: &str,
                major: u64,
                since: time::OffsetDateTime,
            ) -> Result<Vec<$crate::access::OperationCallers>, StoreError> {
                let rows: Vec<$crate::store::rows::CallersRow> = sqlx::query_as(
                    "SELECT consumer, operation, COUNT(*) AS calls, MAX(at) AS last_seen \
                     FROM access_log \
                     WHERE api = $1 AND major = $2 AND at >= $3 AND operation IS NOT NULL \
                     GROUP BY consumer, operation",
                )
                .bind(api)
                .bind($crate::store::rows::to_i64(major)?)
                .bind(unix_ms(since))
                .fetch_all(&self.pool)
                .await?;
                let mut callers: Vec<$crate::access::OperationCallers> =
                    $crate::store::rows::convert(rows)?;
                // Both backends agree on this order (they sort NULLs differently).
                callers.sort_by(|a, b| {
                    (&a.consumer, &a.operation).cmp(&(&b.consumer, &b.operation))
                });
                Ok(callers)
            }

            async fn maintain_access(
                &self,
                now: time::OffsetDateTime,
                days_ahead: u32,
                retain_after: Option<time::OffsetDateTime>,
            ) -> Result<$crate::store::AccessMaintenance, StoreError> {
                self.access_housekeeping(now, days_ahead, retain_after).await
            }

            // -- snapshot --------------------------------------------------------------------

            async fn load_contents(&self) -> Result<Contents, StoreError> {
                let mut tx = self.begin_read().await?;
                let generation = Self::read_head(&mut tx).await?;
                let teams: Vec<$crate::store::rows::TeamRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(teams),
                    " FROM teams ORDER BY name"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let apis: Vec<$crate::store::rows::ApiRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(apis),
                    " FROM apis ORDER BY slug"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let versions = Self::fetch_versions(&mut tx, None).await?;
                let upstreams = Self::fetch_upstreams(&mut tx, None).await?;
                let consumers: Vec<$crate::store::rows::ConsumerRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(consumers),
                    " FROM consumers ORDER BY name"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let keys: Vec<$crate::store::rows::ApiKeyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(api_keys),
                    " FROM api_keys ORDER BY id"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let plans: Vec<$crate::store::rows::PlanRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::store::rows::cols!(plans),
                    " FROM plans ORDER BY name"
                ))
                .fetch_all(&mut *tx)
                .await?;
                let subscriptions = Self::fetch_subscriptions(&mut tx, None).await?;
                let issuers = Self::fetch_issuers(&mut tx).await?;
                let generation_at: Option<i64> =
                    sqlx::query_scalar("SELECT at FROM change_log WHERE seq = $1")
                        .bind(generation)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(Contents {
                    generation,
                    generation_at: generation_at.map(from_unix_ms),
                    teams: teams.into_iter().map(Team::from).collect(),
                    apis: $crate::store::rows::convert(apis)?,
                    versions,
                    upstreams,
                    consumers: consumers.into_iter().map(Consumer::from).collect(),
                    keys: keys.into_iter().map(ApiKey::from).collect(),
                    plans: $crate::store::rows::convert(plans)?,
                    subscriptions,
                    issuers,
                })
            }
        }
    };
}
pub(super) use impl_store;
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(limit(0), 100);
        assert_eq!(limit(1), 1);
        assert_eq!(limit(1_000), 1_000);
        assert_eq!(limit(u32::MAX), 1_000);
    }

    #[test]
    fn entries_chain_from_genesis() {
        let meta = ChangeMeta {
            actor: Actor::system(),
            action: "team.create".into(),
            target: "team/ops".into(),
            reason: None,
            before_digest: None,
            after_digest: Some("ab".repeat(32)),
        };
        let first = next_entry(None, &meta);
        assert_eq!(
            (first.seq, first.prev_hash.as_str()),
            (1, ChangeEntry::GENESIS)
        );
        assert_eq!(first.hash, first.compute_hash());
        assert_eq!(
            first.at,
            from_unix_ms(unix_ms(first.at)),
            "whole milliseconds"
        );
        let second = next_entry(Some((first.seq, first.hash.clone())), &meta);
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        assert_eq!(second.hash, second.compute_hash());
    }

    #[test]
    fn versions_sort_by_api_then_semver() {
        let v = |api: &str, version: &str| Version {
            api: api.into(),
            version: version.into(),
            major: 0,
            state: LifecycleState::Draft,
            spec_raw: Vec::new(),
            spec_json: String::new(),
            sha256: String::new(),
            content_type: String::new(),
            deprecated_at: None,
            sunset_at: None,
            successor: None,
            deprecation_link: None,
            brownouts: Vec::new(),
            created_by: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_by: String::new(),
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let mut versions = vec![
            v("b", "1.0.0"),
            v("a", "not-semver"),
            v("a", "10.0.0"),
            v("a", "2.0.0"),
            v("a", "2.0.0-rc.1"),
        ];
        sort_versions(&mut versions);
        let order: Vec<(&str, &str)> = versions
            .iter()
            .map(|v| (v.api.as_str(), v.version.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("a", "2.0.0-rc.1"),
                ("a", "2.0.0"),
                ("a", "10.0.0"),
                ("a", "not-semver"),
                ("b", "1.0.0")
            ]
        );
    }
}
