//! The registry's operations: who may do what, what input is valid, and what a change
//! records. The admin API and the catalog reconciler both call these; the store below only
//! keeps integrity.

pub use crate::audit::{BadEntry, ChainReport, DeprecationReport};

use crate::access::{AccessFilter, AccessRecord};
use crate::audit;
use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::secret::{self, SecretKind};
use crate::store::{ChangeFilter, PageRequest, Store, StoreError};
use futures::stream::BoxStream;
use gatehouse_policies::document::Limits;
use gatehouse_policies::openapi::{self, Document};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use time::OffsetDateTime;

/// The registry: a store plus the rules around it.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    spec_limits: Limits,
}

/// Which operation a role check is for; also the words of a 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read anything.
    Read,
    /// Create teams and APIs, declare systems of record.
    Architect,
    /// Register versions, configure upstreams, move lifecycle, manage subscriptions of one
    /// API: the API's owning team may, and so may admins (and architects, except lifecycle).
    Versions,
    Lifecycle,
    Upstreams,
    Subscriptions,
    /// Consumers, keys, plans, tokens, catalog apply.
    Admin,
}

impl Permission {
    fn words(self) -> &'static str {
        match self {
            Permission::Read => "read the registry",
            Permission::Architect => "register APIs, teams or systems of record",
            Permission::Versions => "register versions of this API",
            Permission::Lifecycle => "change the lifecycle of this API",
            Permission::Upstreams => "configure upstreams of this API",
            Permission::Subscriptions => "manage subscriptions to this API",
            Permission::Admin => "manage consumers, keys, plans and tokens",
        }
    }
}

/// Input of `POST /apis`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewApi {
    pub slug: String,
    pub title: String,
    pub team: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version_header: Option<bool>,
    #[serde(default)]
    pub default_major: Option<u64>,
}

/// Input of `POST …/deprecate`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// When the version stops answering (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sunset: Option<OffsetDateTime>,
    /// The successor version (e.g. `2.1.0`).
    #[serde(default)]
    pub successor: Option<String>,
    /// A page explaining the deprecation.
    #[serde(default)]
    pub link: Option<String>,
    /// Scheduled brownouts before the sunset.
    #[serde(default)]
    pub brownouts: Vec<Brownout>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `PUT /apis/{slug}/majors/{major}/upstream`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamInput {
    pub targets: Vec<Target>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u32>,
    #[serde(default)]
    pub read_timeout_ms: Option<u32>,
}

/// Input of `POST /consumers/{name}/subscriptions`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    pub api: String,
    #[serde(default)]
    pub majors: Vec<u64>,
    pub plan: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A version as the admin API shows it: everything but the spec bytes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionView {
    pub api: String,
    pub version: String,
    pub major: u64,
    pub state: LifecycleState,
    pub sha256: String,
    pub content_type: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deprecated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sunset_at: Option<OffsetDateTime>,
    pub successor: Option<String>,
    pub deprecation_link: Option<String>,
    pub brownouts: Vec<Brownout>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub updated_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Version> for VersionView {
    fn from(v: &Version) -> Self {
        VersionView {
            api: v.api.clone(),
            version: v.version.clone(),
            major: v.major,
            state: v.state,
            sha256: v.sha256.clone(),
            content_type: v.content_type.clone(),
            deprecated_at: v.deprecated_at,
            sunset_at: v.sunset_at,
            successor: v.successor.clone(),
            deprecation_link: v.deprecation_link.clone(),
            brownouts: v.brownouts.clone(),
            created_by: v.created_by.clone(),
            created_at: v.created_at,
            updated_by: v.updated_by.clone(),
            updated_at: v.updated_at,
        }
    }
}

/// An API key as listed: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    pub id: String,
    pub consumer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            consumer: k.consumer.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new API key or token: the secret appears here once and nowhere else.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IssuedSecret {
    pub id: String,
    /// Named `key` in the API-key response and `token` in the token response.
    #[serde(skip)]
    pub secret: String,
}

/// The result of registering a version.
#[derive(Debug, Clone)]
pub struct Registered {
    pub version: Version,
    pub document: Document,
}

/// Names of teams, APIs, consumers and plans: lower-case kebab-case, 1-63 characters.
pub fn check_name(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            field: field.to_owned(),
            message: format!(
                "`{value}` must be lower-case kebab-case: a letter, then letters, digits or dashes (at most 63)"
            ),
        })
    }
}

fn non_empty(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(RegistryError::Invalid {
            field: field.to_owned(),
            message: "must not be empty".into(),
        });
    }
    Ok(())
}

fn meta(actor: &Actor, action: &str, target: String) -> ChangeMeta {
    ChangeMeta {
        actor: actor.clone(),
        action: action.to_owned(),
        target,
        reason: None,
        before_digest: None,
        after_digest: None,
    }
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            spec_limits: Limits::default(),
        }
    }

    /// Uses other limits for spec ingest (the default is 10 MiB, depth 128).
    #[must_use]
    pub fn with_spec_limits(mut self, limits: Limits) -> Self {
        self.spec_limits = limits;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn spec_limits(&self) -> &Limits {
        &self.spec_limits
    }

    // -- authentication and authorisation ------------------------------------------------

    /// Finds the actor behind a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Actor> {
        let found = self.store.find_token(&secret::hash(token)).await?;
        match found {
            Some(t) if t.revoked_at.is_none() && secret::verify(token, &t.hash) => Ok(Actor {
                id: t.id,
                role: t.role,
                team: t.team,
            }),
            _ => Err(RegistryError::Unauthenticated),
        }
    }

    /// Checks a permission; see [`authorize`].
    pub fn authorize(
        &self,
        actor: &Actor,
        permission: Permission,
        team: Option<&str>,
    ) -> Result<()> {
        authorize(actor, permission, team)
    }

    /// Creates an admin token (admins only; the first admin token comes from
    /// `GATEHOUSE_BOOTSTRAP_TOKEN`, see [`Registry::bootstrap_token`]).
    pub async fn create_token(
        &self,
        actor: &Actor,
        role: Role,
        team: Option<String>,
    ) -> Result<IssuedSecret> {
        self.authorize(actor, Permission::Admin, None)?;
        if role != Role::Owner && team.is_some() {
            return Err(RegistryError::Invalid {
                field: "team".into(),
                message: "only owner tokens belong to a team".into(),
            });
        }
        if role == Role::Owner {
            let t = team.as_deref().ok_or(RegistryError::Invalid {
                field: "team".into(),
                message: "an owner token needs the team it owns".into(),
            })?;
            self.require_team(t).await?;
        }
        let new = secret::generate(SecretKind::AdminToken);
        self.store_token(actor, &new.id, &new.hash, role, team)
            .await?;
        Ok(IssuedSecret {
            id: new.id,
            secret: new.secret,
        })
    }

    /// Stores the bootstrap token as an admin token, if no token exists yet. Returns whether
    /// it did.
    pub async fn bootstrap_token(&self, token: &str) -> Result<bool> {
        if token.len() < 16 {
            return Err(RegistryError::Invalid {
                field: "GATEHOUSE_BOOTSTRAP_TOKEN".into(),
                message: "must be at least 16 characters".into(),
            });
        }
        if self.store.count_tokens().await? > 0 {
            return Ok(false);
        }
        self.store_token(
            &Actor::system(),
            "bootstrap",
            &secret::hash(token),
            Role::Admin,
            None,
        )
        .await?;
        Ok(true)
    }

    async fn store_token(
        &self,
        actor: &Actor,
        id: &str,
        hash: &str,
        role: Role,
        team: Option<String>,
    ) -> Result<()> {
        let token = AdminToken {
            id: id.to_owned(),
            hash: hash.to_owned(),
            role,
            team: team.clone(),
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
        };
        let mut m = meta(actor, "token.create", format!("token/{id}"));
        m.after_digest = Some(digest(
            &serde_json::json!({"id": id, "role": role, "team": team}),
        ));
        self.store.create_token(&token, &m).await?;
        Ok(())
    }

    // -- teams ---------------------------------------------------------------------------

    pub async fn create_team(&self, actor: &Actor, name: &str, contact: &str) -> Result<Team> {
        self.authorize(actor, Permission::Architect, None)?;
        check_name("name", name)?;
        non_empty("contact", contact)?;
        let team = Team {
            name: name.to_owned(),
            contact: contact.to_owned(),
            created_at: OffsetDateTime::now_utc(),
        };
        let mut m = meta(actor, "team.create", format!("team/{name}"));
        m.after_digest = Some(digest(&team));
        self.store.create_team(&team, &m).await?;
        Ok(team)
    }

    pub async fn update_team(&self, actor: &Actor, name: &str, contact: &str) -> Result<Team> {
        self.authorize(actor, Permission::Architect, None)?;
        non_empty("contact", contact)?;
        let before = self.require_team(name).await?;
        let team = Team {
            contact: contact.to_owned(),
            ..before.clone()
        };
        let mut m = meta(actor, "team.update", format!("team/{name}"));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&team));
        self.store.update_team(&team, &m).await?;
        Ok(team)
    }

    async fn require_team(&self, name: &str) -> Result<Team> {
        self.store
            .get_team(name)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                entity: "team",
                key: name.to_owned(),
            })
    }

    // -- APIs ----------------------------------------------------------------------------

    pub async fn create_api(&self, actor: &Actor, input: NewApi) -> Result<Api> {
        self.authorize(actor, Permission::Architect, None)?;
        check_name("slug", &input.slug)?;
        non_empty("title", &input.title)?;
        self.require_team(&input.team).await?;
        let now = OffsetDateTime::now_utc();
        let api = Api {
            slug: input.slug,
            title: input.title,
            description: input.description,
            team: input.team,
            version_header: input.version_header.unwrap_or(false),
            default_major: input.default_major,
            created_at: now,
            updated_at: now,
        };
        let mut m = meta(actor, "api.create", format!("api/{}", api.slug));
        m.after_digest = Some(digest(&api));
        self.store.create_api(&api, &m).await?;
        Ok(api)
    }

    /// Replaces an API's descriptive fields (used by catalog apply).
    pub async fn update_api(&self, actor: &Actor, input: NewApi) -> Result<Api> {
        self.authorize(actor, Permission::Architect, None)?;
        non_empty("title", &input.title)?;
        let before = self.require_api(&input.slug).await?;
        self.require_team(&input.team).await?;
        let api = Api {
            title: input.title,
            description: input.description,
            team: input.team,
            version_header: input.version_header.unwrap_or(false),
            default_major: input.default_major,
            updated_at: OffsetDateTime::now_utc(),
            ..before.clone()
        };
        let mut m = meta(actor, "api.update", format!("api/{}", api.slug));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&api));
        self.store.update_api(&api, &m).await?;
        Ok(api)
    }

    pub async fn require_api(&self, slug: &str) -> Result<Api> {
        self.store
            .get_api(slug)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                entity: "API",
                key: slug.to_owned(),
            })
    }

    // -- versions ------------------------------------------------------------------------

    /// Parses and checks a spec without registering it.
    pub fn parse_spec(&self, bytes: &[u8]) -> Result<Document> {
        Ok(openapi::parse(bytes, &self.spec_limits)?)
    }

    /// Registers a new version (state `draft`) from the spec's bytes.
    pub async fn register_version(
        &self,
        actor: &Actor,
        slug: &str,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<Registered> {
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Versions, Some(&api.team))?;
        let document = self.parse_spec(bytes)?;
        let version_text = document.info.version.to_string();
        let spec_json =
            serde_json::to_string(&document.tree).map_err(|e| RegistryError::Invalid {
                field: "spec".into(),
                message: e.to_string(),
            })?;
        let content_type = match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            Some(c) if c.contains("json") => "application/json",
            Some(c) if c.contains("yaml") => "application/yaml",
            _ if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
                "application/json"
            }
            _ => "application/yaml",
        };
        let now = OffsetDateTime::now_utc();
        let version = Version {
            api: api.slug.clone(),
            version: version_text.clone(),
            major: document.info.version.major,
            state: LifecycleState::Draft,
            spec_raw: bytes.to_vec(),
            spec_json,
            sha256: hex::encode(Sha256::digest(bytes)),
            content_type: content_type.to_owned(),
            deprecated_at: None,
            sunset_at: None,
            successor: None,
            deprecation_link: None,
            brownouts: Vec::new(),
            created_by: actor.id.clone(),
            created_at: now,
            updated_by: actor.id.clone(),
            updated_at: now,
        };
        let mut m = meta(
            actor,
            "version.create",
            format!("{}@{}", api.slug, version_text),
        );
        m.after_digest = Some(digest(&VersionView::from(&version)));
        self.store.create_version(&version, &m).await?;
        Ok(Registered { version, document })
    }

    pub async fn require_version(&self, slug: &str, version: &str) -> Result<Version> {
        self.require_api(slug).await?;
        self.store
            .get_version(slug, version)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                entity: "version",
                key: format!("{slug}@{version}"),
            })
    }

    /// `draft` → `published`.
    pub async fn publish(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        reason: Option<String>,
    ) -> Result<Version> {
        self.transition(
            actor,
            slug,
            version,
            LifecycleState::Published,
            reason,
            |v| {
                if v.state != LifecycleState::Draft {
                    return Err(v.state);
                }
                Ok(())
            },
        )
        .await
    }

    /// `published` (or already `deprecated`, to change its dates) → `deprecated`.
    pub async fn deprecate(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        d: Deprecation,
    ) -> Result<Version> {
        // The role first: a caller who may not deprecate learns nothing from the input checks.
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Lifecycle, Some(&api.team))?;
        let now = OffsetDateTime::now_utc();
        if d.sunset.is_some_and(|s| s <= now) {
            return Err(RegistryError::Invalid {
                field: "sunset".into(),
                message: "must be in the future".into(),
            });
        }
        for (i, b) in d.brownouts.iter().enumerate() {
            if b.end <= b.start {
                return Err(RegistryError::Invalid {
                    field: format!("brownouts/{i}"),
                    message: "end must be after start".into(),
                });
            }
            if d.sunset.is_some_and(|s| b.end > s) {
                return Err(RegistryError::Invalid {
                    field: format!("brownouts/{i}"),
                    message: "a brownout must end before the sunset".into(),
                });
            }
        }
        if let Some(succ) = &d.successor {
            self.require_version(slug, succ).await?;
        }
        if d.link
            .as_ref()
            .is_some_and(|l| !(l.starts_with("https://") || l.starts_with("http://")))
        {
            return Err(RegistryError::Invalid {
                field: "link".into(),
                message: "must be an http(s) URL".into(),
            });
        }
        let reason = d.reason.clone();
        self.transition(
            actor,
            slug,
            version,
            LifecycleState::Deprecated,
            reason,
            move |v| {
                if !matches!(
                    v.state,
                    LifecycleState::Published | LifecycleState::Deprecated
                ) {
                    return Err(v.state);
                }
                if v.state == LifecycleState::Published {
                    v.deprecated_at = Some(now);
                }
                v.sunset_at = d.sunset;
                v.successor = d.successor.clone();
                v.deprecation_link = d.link.clone();
                v.brownouts = d.brownouts.clone();
                Ok(())
            },
        )
        .await
    }

    /// `deprecated` → `retired`.
    pub async fn retire(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        reason: Option<String>,
    ) -> Result<Version> {
        self.transition(actor, slug, version, LifecycleState::Retired, reason, |v| {
            if v.state != LifecycleState::Deprecated {
                return Err(v.state);
            }
            Ok(())
        })
        .await
    }

    async fn transition(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        to: LifecycleState,
        reason: Option<String>,
        change: impl FnOnce(&mut Version) -> std::result::Result<(), LifecycleState>,
    ) -> Result<Version> {
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Lifecycle, Some(&api.team))?;
        let before = self.require_version(slug, version).await?;
        let mut after = before.clone();
        change(&mut after).map_err(|from| RegistryError::Transition {
            api: slug.to_owned(),
            version: version.to_owned(),
            from: from.to_string(),
            to: to.to_string(),
        })?;
        after.state = to;
        after.updated_by = actor.id.clone();
        after.updated_at = OffsetDateTime::now_utc();
        let action = match to {
            LifecycleState::Draft => "version.draft",
            LifecycleState::Published => "version.publish",
            LifecycleState::Deprecated => "version.deprecate",
            LifecycleState::Retired => "version.retire",
        };
        let mut m = meta(actor, action, format!("{slug}@{version}"));
        m.reason = reason;
        m.before_digest = Some(digest(&VersionView::from(&before)));
        m.after_digest = Some(digest(&VersionView::from(&after)));
        self.store.update_version(&after, &m).await?;
        Ok(after)
    }

    // -- upstreams -----------------------------------------------------------------------

    pub async fn put_upstream(
        &self,
        actor: &Actor,
        slug: &str,
        major: u64,
        input: UpstreamInput,
    ) -> Result<Upstream> {
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Upstreams, Some(&api.team))?;
        if input.targets.is_empty() {
            return Err(RegistryError::Invalid {
                field: "targets".into(),
                message: "at least one target is needed".into(),
            });
        }
        for (i, t) in input.targets.iter().enumerate() {
            check_target_url(&t.url).map_err(|message| RegistryError::Invalid {
                field: format!("targets/{i}/url"),
                message,
            })?;
        }
        if input.targets.iter().all(|t| t.weight == 0) {
            return Err(RegistryError::Invalid {
                field: "targets".into(),
                message: "at least one target needs a weight above 0".into(),
            });
        }
        let upstream = Upstream {
            api: slug.to_owned(),
            major,
            targets: input.targets,
            connect_timeout_ms: input
                .connect_timeout_ms
                .unwrap_or(Upstream::DEFAULT_CONNECT_TIMEOUT_MS)
                .clamp(1, 60_000),
            read_timeout_ms: input
                .read_timeout_ms
                .unwrap_or(Upstream::DEFAULT_READ_TIMEOUT_MS)
                .clamp(1, 300_000),
        };
        let before = self
            .store
            .list_upstreams(Some(slug))
            .await?
            .into_iter()
            .find(|u| u.major == major);
        let mut m = meta(actor, "upstream.put", format!("{slug}/v{major}"));
        m.before_digest = before.as_ref().map(digest);
        m.after_digest = Some(digest(&upstream));
        self.store.put_upstream(&upstream, &m).await?;
        Ok(upstream)
    }

    // -- systems of record ---------------------------------------------------------------

    pub async fn put_systems_of_record(
        &self,
        actor: &Actor,
        slug: &str,
        entries: Vec<EntitySystem>,
    ) -> Result<Vec<SystemOfRecord>> {
        self.require_api(slug).await?;
        self.authorize(actor, Permission::Architect, None)?;
        let mut records: Vec<SystemOfRecord> = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            check_name(&format!("{i}/entity"), &e.entity)?;
            non_empty(&format!("{i}/system"), &e.system)?;
            if records.iter().any(|r| r.entity == e.entity) {
                return Err(RegistryError::Invalid {
                    field: format!("{i}/entity"),
                    message: format!("entity `{}` is listed twice", e.entity),
                });
            }
            records.push(SystemOfRecord {
                entity: e.entity,
                system: e.system,
                api: slug.to_owned(),
            });
        }
        let before: Vec<SystemOfRecord> = self
            .store
            .list_systems_of_record()
            .await?
            .into_iter()
            .filter(|r| r.api == slug)
            .collect();
        let mut m = meta(actor, "systems-of-record.put", format!("api/{slug}"));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&records));
        self.store.put_systems_of_record(slug, &records, &m).await?;
        Ok(records)
    }

    // -- plans ---------------------------------------------------------------------------

    pub async fn create_plan(&self, actor: &Actor, plan: Plan) -> Result<Plan> {
        self.authorize(actor, Permission::Admin, None)?;
        check_plan(&plan)?;
        let mut m = meta(actor, "plan.create", format!("plan/{}", plan.name));
        m.after_digest = Some(digest(&plan));
        self.store.create_plan(&plan, &m).await?;
        Ok(plan)
    }

    pub async fn update_plan(&self, actor: &Actor, plan: Plan) -> Result<Plan> {
        self.authorize(actor, Permission::Admin, None)?;
        check_plan(&plan)?;
        let before =
            self.store
                .get_plan(&plan.name)
                .await?
                .ok_or_else(|| RegistryError::NotFound {
                    entity: "plan",
                    key: plan.name.clone(),
                })?;
        let mut m = meta(actor, "plan.update", format!("plan/{}", plan.name));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&plan));
        self.store.update_plan(&plan, &m).await?;
        Ok(plan)
    }

    // -- consumers, keys, subscriptions --------------------------------------------------

    pub async fn create_consumer(
        &self,
        actor: &Actor,
        name: &str,
        contact: Option<String>,
    ) -> Result<Consumer> {
        self.authorize(actor, Permission::Admin, None)?;
        check_name("name", name)?;
        let consumer = Consumer {
            name: name.to_owned(),
            contact,
            created_at: OffsetDateTime::now_utc(),
        };
        let mut m = meta(actor, "consumer.create", format!("consumer/{name}"));
        m.after_digest = Some(digest(&consumer));
        self.store.create_consumer(&consumer, &m).await?;
        Ok(consumer)
    }

    pub async fn update_consumer(
        &self,
        actor: &Actor,
        name: &str,
        contact: Option<String>,
    ) -> Result<Consumer> {
        self.authorize(actor, Permission::Admin, None)?;
        let before = self.require_consumer(name).await?;
        let consumer = Consumer {
            contact,
            ..before.clone()
        };
        let mut m = meta(actor, "consumer.update", format!("consumer/{name}"));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&consumer));
        self.store.update_consumer(&consumer, &m).await?;
        Ok(consumer)
    }

    pub async fn require_consumer(&self, name: &str) -> Result<Consumer> {
        self.store
            .get_consumer(name)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                entity: "consumer",
                key: name.to_owned(),
            })
    }

    /// Issues an API key; the secret is returned once.
    pub async fn create_key(
        &self,
        actor: &Actor,
        consumer: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(KeyView, String)> {
        self.authorize(actor, Permission::Admin, None)?;
        self.require_consumer(consumer).await?;
        let now = OffsetDateTime::now_utc();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(RegistryError::Invalid {
                field: "expires_at".into(),
                message: "must be in the future".into(),
            });
        }
        let new = secret::generate(SecretKind::ApiKey);
        let key = ApiKey {
            id: new.id.clone(),
            consumer: consumer.to_owned(),
            hash: new.hash.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let mut m = meta(
            actor,
            "key.create",
            format!("consumer/{consumer}/keys/{}", key.id),
        );
        m.after_digest = Some(digest(&KeyView::from(&key)));
        self.store.create_key(&key, &m).await?;
        Ok((KeyView::from(&key), new.secret))
    }

    pub async fn revoke_key(&self, actor: &Actor, consumer: &str, id: &str) -> Result<()> {
        self.authorize(actor, Permission::Admin, None)?;
        self.require_consumer(consumer).await?;
        let mut m = meta(
            actor,
            "key.revoke",
            format!("consumer/{consumer}/keys/{id}"),
        );
        m.before_digest = self
            .store
            .list_keys(consumer)
            .await?
            .iter()
            .find(|k| k.id == id)
            .map(|k| digest(&KeyView::from(k)));
        self.store
            .revoke_key(consumer, id, OffsetDateTime::now_utc(), &m)
            .await?;
        Ok(())
    }

    pub async fn put_subscription(
        &self,
        actor: &Actor,
        consumer: &str,
        input: SubscriptionInput,
    ) -> Result<Subscription> {
        let api = self.require_api(&input.api).await?;
        self.authorize(actor, Permission::Subscriptions, Some(&api.team))?;
        self.require_consumer(consumer).await?;
        if self.store.get_plan(&input.plan).await?.is_none() {
            return Err(RegistryError::NotFound {
                entity: "plan",
                key: input.plan,
            });
        }
        for (i, s) in input.scopes.iter().enumerate() {
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(RegistryError::Invalid {
                    field: format!("scopes/{i}"),
                    message: "a scope is a non-empty token without spaces".into(),
                });
            }
        }
        let mut majors = input.majors;
        majors.sort_unstable();
        majors.dedup();
        let sub = Subscription {
            consumer: consumer.to_owned(),
            api: input.api,
            majors,
            plan: input.plan,
            scopes: input.scopes,
        };
        let before = self
            .store
            .list_subscriptions(Some(consumer))
            .await?
            .into_iter()
            .find(|s| s.api == sub.api);
        let mut m = meta(
            actor,
            "subscription.put",
            format!("consumer/{consumer}/subscriptions/{}", sub.api),
        );
        m.before_digest = before.as_ref().map(digest);
        m.after_digest = Some(digest(&sub));
        self.store.put_subscription(&sub, &m).await?;
        Ok(sub)
    }

    pub async fn delete_subscription(
        &self,
        actor: &Actor,
        consumer: &str,
        api_slug: &str,
    ) -> Result<()> {
        let api = self.require_api(api_slug).await?;
        self.authorize(actor, Permission::Subscriptions, Some(&api.team))?;
        let before = self
            .store
            .list_subscriptions(Some(consumer))
            .await?
            .into_iter()
            .find(|s| s.api == api_slug)
            .ok_or_else(|| RegistryError::NotFound {
                entity: "subscription",
                key: format!("{consumer}/{api_slug}"),
            })?;
        let mut m = meta(
            actor,
            "subscription.delete",
            format!("consumer/{consumer}/subscriptions/{api_slug}"),
        );
        m.before_digest = Some(digest(&before));
        self.store
            .delete_subscription(consumer, api_slug, &m)
            .await?;
        Ok(())
    }

    // -- change log ----------------------------------------------------------------------

    pub async fn list_changes(
        &self,
        actor: &Actor,
        filter: &ChangeFilter,
    ) -> Result<Vec<ChangeEntry>> {
        self.authorize(actor, Permission::Read, None)?;
        Ok(self.store.list_changes(filter).await?)
    }

    /// Walks the whole change log and checks every link and hash; names the first entry
    /// edited, removed or reordered. With `anchor` (a head hash kept outside the system), also
    /// checks that the log still reaches it: a log cut short is otherwise undetectable.
    pub async fn verify_changes(&self, actor: &Actor, anchor: Option<&str>) -> Result<ChainReport> {
        self.authorize(actor, Permission::Read, None)?;
        let mut report = ChainReport {
            ok: true,
            entries: 0,
            head_seq: 0,
            head: ChangeEntry::GENESIS.to_owned(),
            first_bad: None,
            anchor: None,
        };
        let mut anchor_at = None;
        let mut after = None;
        let mut expected_seq = 1;
        'walk: loop {
            let page = self
                .store
                .list_changes(&ChangeFilter {
                    after_seq: after,
                    limit: 1000,
                    ..ChangeFilter::default()
                })
                .await?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                report.entries += 1;
                // The predecessor is looked up only when the link is broken.
                let predecessor = if e.seq == expected_seq && e.prev_hash != report.head {
                    self.store.find_change(&e.prev_hash).await?
                } else {
                    None
                };
                if let Some(bad) =
                    audit::classify(expected_seq, &report.head, e, predecessor.as_ref())
                {
                    report.ok = false;
                    report.first_bad = Some(bad);
                    break 'walk;
                }
                if anchor == Some(e.hash.as_str()) {
                    anchor_at = Some(e.seq);
                }
                report.head = e.hash.clone();
                report.head_seq = e.seq;
                expected_seq = e.seq + 1;
            }
            after = page.last().map(|e| e.seq);
        }
        if let Some(anchor) = anchor {
            audit::check_anchor(&mut report, anchor, anchor_at);
        }
        Ok(report)
    }

    // -- access log ----------------------------------------------------------------------

    /// One page of the access log (every role may read it; only the gateway writes it).
    pub async fn list_access(
        &self,
        actor: &Actor,
        filter: &AccessFilter,
    ) -> Result<Vec<AccessRecord>> {
        self.authorize(actor, Permission::Read, None)?;
        Ok(self.store.list_access(filter).await?)
    }

    /// The whole access log matching `filter`, streamed (for exports).
    pub fn stream_access(
        &self,
        actor: &Actor,
        filter: AccessFilter,
    ) -> Result<BoxStream<'static, std::result::Result<AccessRecord, StoreError>>> {
        self.authorize(actor, Permission::Read, None)?;
        Ok(self.store.stream_access(filter))
    }

    /// For each deprecated version: the consumers still calling it, per operation, over the
    /// last 7 and 30 days, and the days left to its sunset.
    pub async fn deprecation_report(
        &self,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<DeprecationReport> {
        self.authorize(actor, Permission::Read, None)?;
        let mut items = Vec::new();
        let mut page = PageRequest {
            after: None,
            limit: 1000,
        };
        loop {
            let apis = self.store.list_apis(&page).await?;
            for api in &apis {
                for v in self.store.list_versions(&api.slug).await? {
                    if v.state != LifecycleState::Deprecated {
                        continue;
                    }
                    let month = self
                        .store
                        .operation_callers(&v.api, v.major, now - time::Duration::days(30))
                        .await?;
                    let week = self
                        .store
                        .operation_callers(&v.api, v.major, now - time::Duration::days(7))
                        .await?;
                    items.push(audit::deprecated_version(&v, &month, &week, now));
                }
            }
            match apis.last() {
                Some(last) if apis.len() >= 1000 => page.after = Some(last.slug.clone()),
                _ => break,
            }
        }
        Ok(DeprecationReport {
            generated_at: now,
            items,
        })
    }
}

/// Checks a permission; `team` is the owning team of the API concerned, if any.
pub fn authorize(actor: &Actor, permission: Permission, team: Option<&str>) -> Result<()> {
    let owns = actor.role == Role::Owner && team.is_some() && actor.team.as_deref() == team;
    let allowed = match permission {
        Permission::Read => true,
        Permission::Architect => matches!(actor.role, Role::Admin | Role::Architect),
        Permission::Versions | Permission::Upstreams => {
            matches!(actor.role, Role::Admin | Role::Architect) || owns
        }
        Permission::Lifecycle | Permission::Subscriptions => actor.role == Role::Admin || owns,
        Permission::Admin => actor.role == Role::Admin,
    };
    if allowed {
        Ok(())
    } else {
        Err(RegistryError::Forbidden {
            role: match (&actor.team, actor.role) {
                (Some(t), Role::Owner) => format!("owner of team {t}"),
                (_, r) => r.as_str().to_owned(),
            },
            action: permission.words().to_owned(),
        })
    }
}

/// One `{entity, system}` of `PUT /apis/{slug}/systems-of-record`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EntitySystem {
    pub entity: String,
    pub system: String,
}

fn check_plan(plan: &Plan) -> Result<()> {
    check_name("name", &plan.name)?;
    if plan.rate.requests == 0 || plan.rate.per_seconds == 0 {
        return Err(RegistryError::Invalid {
            field: "rate".into(),
            message: "requests and per_seconds must be at least 1".into(),
        });
    }
    if plan.quota.is_some_and(|q| q.requests == 0) {
        return Err(RegistryError::Invalid {
            field: "quota/requests".into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// Upstream targets: `mock://`, or `http://host[:port][/base]`.
fn check_target_url(url: &str) -> std::result::Result<(), String> {
    if url == "mock://" || url.starts_with("mock://") {
        return Ok(());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` must be mock:// or http://host:port"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || rest.contains(['?', '#']) {
        return Err(format!(
            "`{url}` must be http://host[:port][/base-path], without credentials, query or fragment"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        for ok in ["inventory", "b2b-portal", "a1"] {
            assert!(check_name("x", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Inventory", "1abc", "a_b", "a-", &"a".repeat(64), "a b"] {
            assert!(check_name("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_urls() {
        assert!(check_target_url("mock://").is_ok());
        assert!(check_target_url("http://127.0.0.1:9000").is_ok());
        assert!(check_target_url("http://erp.internal/api").is_ok());
        assert!(check_target_url("ftp://x").is_err());
        assert!(check_target_url("http://user:pw@x").is_err());
        assert!(check_target_url("http://").is_err());
    }

    #[test]
    fn role_matrix() {
        use Permission::*;
        let actor = |role, team: Option<&str>| Actor {
            id: "t".into(),
            role,
            team: team.map(str::to_owned),
        };
        let admin = actor(Role::Admin, None);
        let architect = actor(Role::Architect, None);
        let owner = actor(Role::Owner, Some("inv"));
        let auditor = actor(Role::Auditor, None);
        for p in [
            Read,
            Architect,
            Versions,
            Lifecycle,
            Upstreams,
            Subscriptions,
            Admin,
        ] {
            assert!(authorize(&admin, p, Some("inv")).is_ok());
            assert_eq!(authorize(&auditor, p, Some("inv")).is_ok(), p == Read);
        }
        assert!(authorize(&architect, Versions, Some("inv")).is_ok());
        assert!(authorize(&architect, Lifecycle, Some("inv")).is_err());
        assert!(authorize(&owner, Lifecycle, Some("inv")).is_ok());
        assert!(authorize(&owner, Lifecycle, Some("other")).is_err());
        assert!(authorize(&owner, Architect, None).is_err());
        assert!(authorize(&owner, Subscriptions, Some("inv")).is_ok());
        assert!(authorize(&owner, Admin, None).is_err());
    }
}
