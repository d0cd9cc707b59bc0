//! The registry's operations: who may do what, what input is valid, and what a change
//! records. The admin API and the catalog reconciler both call these; the store below only
//! keeps integrity.

pub use crate::audit::{BadEntry, ChainReport, DeprecationReport};

use crate::access::{AccessFilter, AccessRecord};
use crate::audit;
use crate::error::{Forced, Instant, RegistryError, Result};
use crate::model::*;
use crate::secret::{self, SecretKind};
use crate::store::{ChangeFilter, PageRequest, Store, StoreError};
use futures::stream::BoxStream;
use gatehouse_policies::diff::{self, Finding, Report, Summary};
use gatehouse_policies::document::Limits;
use gatehouse_policies::lint::{self, LintOptions, LintReport, Ruleset};
use gatehouse_policies::openapi::{self, Document, SpecError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The registry: a store plus the rules around it.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    spec_limits: Limits,
    clock: Clock,
    /// The governance ruleset of the publish gate (the built-in one unless the operator
    /// gives another, `gatehouse serve --lint-ruleset`).
    ruleset: Ruleset,
}

/// Where the registry reads the time: the system clock, or a fixed one in tests (the
/// lifecycle rules compare sunsets and notices with "now").
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
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
    /// Set the API's validation policy (same holders as `Upstreams`).
    Validation,
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
            Permission::Validation => "configure validation of this API",
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
    /// Minimum days between a deprecation and its sunset (default 90).
    #[serde(default)]
    pub deprecation_notice_days: Option<u32>,
    /// The validation policy; absent: the defaults on create, unchanged on update.
    #[serde(default)]
    pub validation: Option<ValidationSettings>,
    /// Whether the caller's bearer token is forwarded to the upstream (default false).
    #[serde(default)]
    pub forward_bearer: Option<bool>,
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
    /// An admin's override of the notice and successor rules (needs a `reason`).
    #[serde(default)]
    pub force: bool,
}

/// An admin's override of a governance refusal; the reason goes into the change log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Override {
    pub force: bool,
    /// Why; recorded in the change log with or without `force`.
    pub reason: Option<String>,
}

impl Override {
    /// No override, and no reason.
    pub fn none() -> Override {
        Override::default()
    }

    /// An override with its reason.
    pub fn forced(reason: impl Into<String>) -> Override {
        Override {
            force: true,
            reason: Some(reason.into()),
        }
    }
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

/// Input of `POST /issuers`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerInput {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A JWKS document (`{"keys": [...]}`) or a bare array of JWKs.
    #[serde(default)]
    pub keys: Option<serde_json::Value>,
    #[serde(default)]
    pub consumer_claim: Option<String>,
    #[serde(default)]
    pub leeway_seconds: Option<u32>,
}

/// An issuer as the admin API shows it: inline keys by id and type only, never their
/// material (an `oct` key is a shared secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IssuerView {
    pub id: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub jwks_uri: Option<String>,
    pub inline_keys: Vec<InlineKeyView>,
    pub consumer_claim: String,
    pub leeway_seconds: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One inline key as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InlineKeyView {
    pub kid: Option<String>,
    pub kty: String,
    pub alg: Option<String>,
}

impl From<&Issuer> for IssuerView {
    fn from(i: &Issuer) -> Self {
        let str_of = |k: &serde_json::Value, m: &str| {
            k.get(m)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let inline_keys = i
            .keys
            .as_ref()
            .and_then(|k| k.get("keys"))
            .and_then(serde_json::Value::as_array)
            .map(|keys| {
                keys.iter()
                    .map(|k| InlineKeyView {
                        kid: str_of(k, "kid"),
                        kty: str_of(k, "kty").unwrap_or_default(),
                        alg: str_of(k, "alg"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        IssuerView {
            id: i.id.clone(),
            issuer: i.issuer.clone(),
            audiences: i.audiences.clone(),
            algorithms: i.algorithms.clone(),
            jwks_uri: i.jwks_uri.clone(),
            inline_keys,
            consumer_claim: i.consumer_claim.clone(),
            leeway_seconds: i.leeway_seconds,
            created_at: i.created_at,
        }
    }
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
    /// What the publish gate found (and let through).
    pub findings: GateFindings,
}

/// What the publish gate found in a version it accepted: the `findings` of the 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateFindings {
    /// Every lint finding (none of severity error, or the gate would have refused).
    pub lint: LintReport,
    /// The comparison with the version this one succeeds, when there is one.
    pub compatibility: Option<Compatibility>,
}

/// A version compared with the one it succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compatibility {
    /// The version compared against: the latest published (or deprecated) version of the
    /// same major, else of the nearest older major.
    pub against: String,
    pub against_major: u64,
    /// Same major: a breaking finding refuses the version unless an admin forces it. A
    /// new major may break: its findings are the migration guide's skeleton.
    pub same_major: bool,
    /// Whether an admin forced the version past breaking findings.
    pub forced: bool,
    pub summary: Summary,
    pub findings: Vec<Finding>,
}

/// The diff between two registered versions (`GET /apis/{slug}/diff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionDiff {
    pub api: String,
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub report: Report,
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
            clock: Clock::system(),
            ruleset: Ruleset::builtin(),
        }
    }

    /// Lints at the publish gate with another ruleset (the built-in rules with the
    /// operator's severities, as `gatehouse spec lint --ruleset` reads them).
    #[must_use]
    pub fn with_ruleset(mut self, ruleset: Ruleset) -> Self {
        self.ruleset = ruleset;
        self
    }

    /// Reads the time from another clock (tests of the lifecycle rules).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the registry's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Uses other limits for spec ingest (the default is 32 MiB, depth 128).
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
            created_at: self.now(),
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
            created_at: self.now(),
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
        let deprecation_notice_days = check_notice(input.deprecation_notice_days)?;
        let now = self.now();
        let api = Api {
            slug: input.slug,
            title: input.title,
            description: input.description,
            team: input.team,
            version_header: input.version_header.unwrap_or(false),
            default_major: input.default_major,
            deprecation_notice_days,
            validation: check_validation(input.validation.unwrap_or_default())?,
            forward_bearer: input.forward_bearer.unwrap_or(false),
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
        let deprecation_notice_days = check_notice(input.deprecation_notice_days)?;
        let validation = match input.validation {
            Some(v) => check_validation(v)?,
            None => before.validation,
        };
        let api = Api {
            title: input.title,
            description: input.description,
            team: input.team,
            version_header: input.version_header.unwrap_or(false),
            default_major: input.default_major,
            deprecation_notice_days,
            validation,
            updated_at: self.now(),
            forward_bearer: input.forward_bearer.unwrap_or(before.forward_bearer),
            ..before.clone()
        };
        let mut m = meta(actor, "api.update", format!("api/{}", api.slug));
        m.before_digest = Some(digest(&before));
        m.after_digest = Some(digest(&api));
        self.store.update_api(&api, &m).await?;
        Ok(api)
    }

    /// Replaces an API's validation policy (`PUT /apis/{slug}/validation`).
    pub async fn put_validation(
        &self,
        actor: &Actor,
        slug: &str,
        settings: ValidationSettings,
    ) -> Result<Api> {
        let before = self.require_api(slug).await?;
        self.authorize(actor, Permission::Validation, Some(&before.team))?;
        let api = Api {
            validation: check_validation(settings)?,
            updated_at: OffsetDateTime::now_utc(),
            ..before.clone()
        };
        let mut m = meta(actor, "api.validation", format!("api/{slug}"));
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

    // -- versions and the publish gate ---------------------------------------------------

    /// Parses and checks a spec without registering it.
    pub fn parse_spec(&self, bytes: &[u8]) -> Result<Document> {
        Ok(openapi::parse(bytes, &self.spec_limits)?)
    }

    /// Registers a new version (state `draft`) from the spec's bytes, through the publish
    /// gate:
    ///
    /// 1. ownership: the caller may register versions of this API (and only an admin may
    ///    force, with a reason);
    /// 2. validity: the spec ingests (422 `invalid-spec`), and the version is new (409);
    /// 3. lint: the registry's ruleset (the built-in one by default), with `has_plan`
    ///    always set because every call through the gateway is made under a plan (422
    ///    `lint-failed` on an error);
    /// 4. compatibility: against the latest published or deprecated version of the same
    ///    major, a breaking finding refuses (409 `breaking-change`) unless forced; a new
    ///    major is compared with the nearest older major and may break.
    ///
    /// The reason of `gate` (forced or not) goes into the change-log entry of the version.
    pub async fn register_version(
        &self,
        actor: &Actor,
        slug: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        gate: &Override,
    ) -> Result<Registered> {
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Versions, Some(&api.team))?;
        check_override(actor, gate, Forced::BreakingChange)?;
        let document = self.parse_spec(bytes)?;
        check_routes(&document)?;
        check_validators(&document)?;
        let version_text = document.info.version.to_string();
        if self.store.get_version(slug, &version_text).await?.is_some() {
            return Err(RegistryError::Duplicate {
                entity: "version",
                key: format!("{slug}@{version_text}"),
            });
        }
        let major = document.info.version.major;

        let lint = lint::lint(&document, &self.ruleset, &LintOptions { has_plan: true });
        if lint.has_errors() {
            return Err(RegistryError::LintFailed {
                api: api.slug,
                version: version_text,
                report: Box::new(lint),
            });
        }

        let mut compatibility = None;
        if let Some(baseline) = self.baseline(slug, &document.info.version).await? {
            let old = self.stored_document(&baseline)?;
            let report = diff::diff_with(&old, &document, &self.diff_options());
            let same_major = baseline.major == major;
            if same_major && report.has_breaking() && !gate.force {
                return Err(RegistryError::BreakingChange {
                    api: api.slug,
                    version: version_text,
                    against: baseline.version,
                    major,
                    report: Box::new(report),
                });
            }
            compatibility = Some(Compatibility {
                against: baseline.version,
                against_major: baseline.major,
                same_major,
                forced: same_major && report.has_breaking(),
                summary: report.summary,
                findings: report.findings,
            });
        }

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
        let now = self.now();
        let version = Version {
            api: api.slug.clone(),
            version: version_text.clone(),
            major,
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
        m.reason = match (&compatibility, gate.reason.as_deref()) {
            (Some(c), Some(reason)) if c.forced => Some(format!(
                "{reason} (forced past {} breaking change(s) against {})",
                c.summary.breaking, c.against
            )),
            (_, reason) => reason.map(str::to_owned),
        };
        m.after_digest = Some(digest(&VersionView::from(&version)));
        self.store.create_version(&version, &m).await?;
        Ok(Registered {
            version,
            document,
            findings: GateFindings {
                lint,
                compatibility,
            },
        })
    }

    /// The version a new one is compared with: the latest published or deprecated version
    /// of the same major, else the latest of the nearest older major that has one.
    async fn baseline(&self, slug: &str, new: &semver::Version) -> Result<Option<Version>> {
        let live: Vec<Version> = self
            .store
            .list_versions(slug)
            .await?
            .into_iter()
            .filter(|v| {
                matches!(
                    v.state,
                    LifecycleState::Published | LifecycleState::Deprecated
                )
            })
            .collect();
        // `list_versions` is oldest semver first, so the last match is the latest.
        if let Some(same) = live.iter().rev().find(|v| v.major == new.major) {
            return Ok(Some(same.clone()));
        }
        Ok(live.into_iter().rev().find(|v| v.major < new.major))
    }

    /// The parsed form of a stored version. It ingested when it was registered, so a
    /// failure now means the store holds something it should not.
    fn stored_document(&self, v: &Version) -> Result<Document> {
        openapi::parse(&v.spec_raw, &self.spec_limits).map_err(|e| {
            RegistryError::Store(StoreError::Corrupt {
                what: "stored spec",
                detail: format!("{}@{}: {e}", v.api, v.version),
            })
        })
    }

    /// Today, for the diff's `x-sunset` rules.
    fn diff_options(&self) -> diff::Options {
        let now = self.now();
        diff::Options {
            today: diff::Date::new(now.year(), u8::from(now.month()), now.day()),
        }
    }

    /// The diff report between two registered versions of an API.
    pub async fn diff_versions(
        &self,
        actor: &Actor,
        slug: &str,
        from: &str,
        to: &str,
    ) -> Result<VersionDiff> {
        self.authorize(actor, Permission::Read, None)?;
        let old = self.require_version(slug, from).await?;
        let new = self.require_version(slug, to).await?;
        let report = diff::diff_with(
            &self.stored_document(&old)?,
            &self.stored_document(&new)?,
            &self.diff_options(),
        );
        Ok(VersionDiff {
            api: slug.to_owned(),
            from: old.version,
            to: new.version,
            report,
        })
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

    // -- lifecycle -----------------------------------------------------------------------

    /// The API and the version a lifecycle move starts from, after the role check.
    async fn lifecycle_start(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
    ) -> Result<(Api, Version)> {
        let api = self.require_api(slug).await?;
        self.authorize(actor, Permission::Lifecycle, Some(&api.team))?;
        let before = self.require_version(slug, version).await?;
        Ok((api, before))
    }

    /// `draft` → `published`.
    pub async fn publish(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        reason: Option<String>,
    ) -> Result<Version> {
        let (_, before) = self.lifecycle_start(actor, slug, version).await?;
        if before.state != LifecycleState::Draft {
            return Err(transition_error(&before, LifecycleState::Published));
        }
        let after = before.clone();
        self.commit_transition(actor, before, after, LifecycleState::Published, reason)
            .await
    }

    /// `published` → `deprecated` (or, on a deprecated version, new dates).
    ///
    /// Rules (an admin may force past the first three with a reason):
    /// - a sunset is required, and on a published version (or when an already deprecated
    ///   version's sunset moves earlier) it must be at least the API's minimum notice
    ///   ahead;
    /// - when a newer major of the API is published, a successor must be named;
    /// - the successor must exist, be newer, and be published or deprecated (not forcible).
    pub async fn deprecate(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        d: Deprecation,
    ) -> Result<Version> {
        let (api, before) = self.lifecycle_start(actor, slug, version).await?;
        let gate = Override {
            force: d.force,
            reason: d.reason.clone(),
        };
        check_override(actor, &gate, Forced::Deprecation)?;
        if !matches!(
            before.state,
            LifecycleState::Published | LifecycleState::Deprecated
        ) {
            return Err(transition_error(&before, LifecycleState::Deprecated));
        }
        let now = self.now();
        let notice = Duration::days(i64::from(api.deprecation_notice_days));
        match d.sunset {
            None if !d.force => {
                return Err(RegistryError::Invalid {
                    field: "sunset".into(),
                    message: format!(
                        "a deprecation needs a sunset date at least {} days ahead (the API's minimum notice)",
                        api.deprecation_notice_days
                    ),
                });
            }
            Some(s) if s <= now && !d.force => {
                return Err(RegistryError::Invalid {
                    field: "sunset".into(),
                    message: "must be in the future".into(),
                });
            }
            Some(s) if !d.force => {
                // Notice is owed when the version is newly deprecated, and when an existing
                // sunset is brought forward; pushing it back is always allowed.
                let shortened = before.state == LifecycleState::Published
                    || before.sunset_at.is_none_or(|current| s < current);
                if shortened && s < now + notice {
                    return Err(RegistryError::SunsetTooSoon {
                        api: api.slug,
                        version: before.version,
                        sunset: Instant(s),
                        earliest: Instant(now + notice),
                        notice_days: api.deprecation_notice_days,
                    });
                }
            }
            _ => {}
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
        if d.link
            .as_ref()
            .is_some_and(|link| !(link.starts_with("https://") || link.starts_with("http://")))
        {
            return Err(RegistryError::Invalid {
                field: "link".into(),
                message: "must be an http(s) URL".into(),
            });
        }
        let versions = self.store.list_versions(slug).await?;
        let current = semver_of(&before)?;
        if let Some(succ) = &d.successor {
            let found = versions
                .iter()
                .find(|v| &v.version == succ)
                .ok_or_else(|| RegistryError::NotFound {
                    entity: "version",
                    key: format!("{slug}@{succ}"),
                })?;
            if semver_of(found)? <= current {
                return Err(RegistryError::Invalid {
                    field: "successor".into(),
                    message: format!("`{succ}` is not newer than `{}`", before.version),
                });
            }
            if !matches!(
                found.state,
                LifecycleState::Published | LifecycleState::Deprecated
            ) {
                return Err(RegistryError::Invalid {
                    field: "successor".into(),
                    message: format!("`{succ}` is {}; a successor must be published", found.state),
                });
            }
        } else if !d.force {
            let newer = versions
                .iter()
                .rev()
                .find(|v| v.major > before.major && v.state == LifecycleState::Published);
            if let Some(newer) = newer {
                return Err(RegistryError::SuccessorRequired {
                    api: api.slug,
                    version: before.version,
                    newer: newer.version.clone(),
                });
            }
        }
        let mut after = before.clone();
        if before.state == LifecycleState::Published {
            after.deprecated_at = Some(now);
        }
        after.sunset_at = d.sunset;
        after.successor = d.successor.clone();
        after.deprecation_link = d.link.clone();
        after.brownouts = d.brownouts.clone();
        self.commit_transition(
            actor,
            before,
            after,
            LifecycleState::Deprecated,
            reason_text(&gate),
        )
        .await
    }

    /// `deprecated` → `retired`: not before the sunset, or, for a version without one, not
    /// before the API's minimum notice has passed since its deprecation. An admin may
    /// force an earlier retirement with a reason.
    pub async fn retire(
        &self,
        actor: &Actor,
        slug: &str,
        version: &str,
        gate: Override,
    ) -> Result<Version> {
        let (api, before) = self.lifecycle_start(actor, slug, version).await?;
        check_override(actor, &gate, Forced::Retirement)?;
        if before.state != LifecycleState::Deprecated {
            return Err(transition_error(&before, LifecycleState::Retired));
        }
        let now = self.now();
        if !gate.force {
            match before.sunset_at {
                Some(sunset) if now < sunset => {
                    return Err(RegistryError::RetireBeforeSunset {
                        api: api.slug,
                        version: before.version,
                        sunset: Instant(sunset),
                    });
                }
                Some(_) => {}
                None => {
                    // Consumers were never given a date: they get the minimum notice,
                    // counted from the deprecation (which every deprecated version has).
                    let deprecated_at = before.deprecated_at.unwrap_or(now);
                    let not_before =
                        deprecated_at + Duration::days(i64::from(api.deprecation_notice_days));
                    if now < not_before {
                        return Err(RegistryError::RetireBeforeNotice {
                            api: api.slug,
                            version: before.version,
                            deprecated_at: Instant(deprecated_at),
                            not_before: Instant(not_before),
                            notice_days: api.deprecation_notice_days,
                        });
                    }
                }
            }
        }
        let after = before.clone();
        self.commit_transition(
            actor,
            before,
            after,
            LifecycleState::Retired,
            reason_text(&gate),
        )
        .await
    }

    /// Writes a lifecycle move with its change-log entry.
    async fn commit_transition(
        &self,
        actor: &Actor,
        before: Version,
        mut after: Version,
        to: LifecycleState,
        reason: Option<String>,
    ) -> Result<Version> {
        after.state = to;
        after.updated_by = actor.id.clone();
        after.updated_at = self.now();
        let action = match to {
            LifecycleState::Draft => "version.draft",
            LifecycleState::Published => "version.publish",
            LifecycleState::Deprecated => "version.deprecate",
            LifecycleState::Retired => "version.retire",
        };
        let mut m = meta(actor, action, format!("{}@{}", before.api, before.version));
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
            created_at: self.now(),
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
        let now = self.now();
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
        self.store.revoke_key(consumer, id, self.now(), &m).await?;
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

    // -- trusted issuers -----------------------------------------------------------------

    /// Trusts a JWT issuer (admins only). Checks everything the gateway will rely on: the
    /// algorithms are ones Gatehouse verifies, inline keys parse and fit the algorithms,
    /// HS256 only with inline keys (a shared secret is never fetched from a URL), and a
    /// `jwks_uri` is an absolute http(s) URL.
    pub async fn create_issuer(&self, actor: &Actor, input: IssuerInput) -> Result<IssuerView> {
        self.authorize(actor, Permission::Admin, None)?;
        let issuer = check_issuer(input)?;
        let mut m = meta(actor, "issuer.create", format!("issuer/{}", issuer.id));
        m.after_digest = Some(digest(&issuer));
        self.store.create_issuer(&issuer, &m).await?;
        Ok(IssuerView::from(&issuer))
    }

    /// Every trusted issuer, without key material.
    pub async fn list_issuers(&self, actor: &Actor) -> Result<Vec<IssuerView>> {
        self.authorize(actor, Permission::Read, None)?;
        Ok(self
            .store
            .list_issuers()
            .await?
            .iter()
            .map(IssuerView::from)
            .collect())
    }

    /// Finds an issuer by id (`iss_…`) or by its issuer URL.
    pub async fn require_issuer(&self, id_or_url: &str) -> Result<Issuer> {
        let id = if id_or_url.starts_with("iss_") {
            id_or_url.to_owned()
        } else {
            Issuer::id_for(id_or_url)
        };
        self.store
            .get_issuer(&id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                entity: "issuer",
                key: id_or_url.to_owned(),
            })
    }

    /// Stops trusting an issuer (admins only); its tokens are refused from the next snapshot.
    pub async fn delete_issuer(&self, actor: &Actor, id_or_url: &str) -> Result<()> {
        self.authorize(actor, Permission::Admin, None)?;
        let before = self.require_issuer(id_or_url).await?;
        let mut m = meta(actor, "issuer.delete", format!("issuer/{}", before.id));
        m.before_digest = Some(digest(&before));
        self.store.delete_issuer(&before.id, &m).await?;
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
        Permission::Versions | Permission::Upstreams | Permission::Validation => {
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

/// Checks an override before anything else: only admins force, and never without a reason.
fn check_override(actor: &Actor, gate: &Override, what: Forced) -> Result<()> {
    if !gate.force {
        return Ok(());
    }
    if actor.role != Role::Admin {
        return Err(RegistryError::Forbidden {
            role: match (&actor.team, actor.role) {
                (Some(t), Role::Owner) => format!("owner of team {t}"),
                (_, r) => r.as_str().to_owned(),
            },
            action: format!("force {what} (admins only)"),
        });
    }
    if gate.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(RegistryError::ReasonRequired { what });
    }
    Ok(())
}

/// The change-log reason of a lifecycle move: a forced one says so.
fn reason_text(gate: &Override) -> Option<String> {
    match (&gate.reason, gate.force) {
        (Some(r), true) => Some(format!("{r} (forced past the lifecycle rules)")),
        (reason, _) => reason.clone(),
    }
}

fn transition_error(v: &Version, to: LifecycleState) -> RegistryError {
    RegistryError::Transition {
        api: v.api.clone(),
        version: v.version.clone(),
        from: v.state.to_string(),
        to: to.to_string(),
    }
}

/// The semantic version of a stored version (checked at registration).
fn semver_of(v: &Version) -> Result<semver::Version> {
    semver::Version::parse(&v.version).map_err(|e| {
        RegistryError::Store(StoreError::Corrupt {
            what: "version",
            detail: format!("{}@{}: {e}", v.api, v.version),
        })
    })
}

/// An API's minimum deprecation notice: the default when unset, at most ten years.
fn check_notice(days: Option<u32>) -> Result<u32> {
    let days = days.unwrap_or(Api::DEFAULT_DEPRECATION_NOTICE_DAYS);
    if days > Api::MAX_DEPRECATION_NOTICE_DAYS {
        return Err(RegistryError::Invalid {
            field: "deprecation_notice_days".into(),
            message: format!("must be at most {}", Api::MAX_DEPRECATION_NOTICE_DAYS),
        });
    }
    Ok(days)
}

/// A validation policy's limits: a body limit of 1 byte to 64 MiB.
fn check_validation(settings: ValidationSettings) -> Result<ValidationSettings> {
    let max = ValidationSettings::MAX_MAX_BODY_BYTES;
    if settings.max_body_bytes == 0 || settings.max_body_bytes > max {
        return Err(RegistryError::Invalid {
            field: "validation/max_body_bytes".into(),
            message: format!("must be between 1 and {max} bytes"),
        });
    }
    Ok(settings)
}

/// Refuses a spec the gateway could not validate against: every operation's parameter,
/// body and response schemas must compile (`policies::validate`), each problem named by
/// its JSON pointer. The snapshot compiles the same way, so a registered version never
/// serves with a schema left unchecked.
pub(crate) fn check_validators(document: &Document) -> Result<()> {
    use gatehouse_policies::validate::{CompileOptions, compile_document};
    let (_, errors) = compile_document(document, &CompileOptions::default());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::InvalidSchemas { errors })
    }
}

/// Validates `POST /issuers` input into the record to store.
fn check_issuer(input: IssuerInput) -> Result<Issuer> {
    use gatehouse_policies::identity::{Alg, ConsumerClaim, KeySet, jwt::MAX_LEEWAY_SECONDS};
    let invalid = |field: &str, message: String| RegistryError::Invalid {
        field: field.to_owned(),
        message,
    };
    let issuer = input.issuer.trim().to_owned();
    if issuer.is_empty() || issuer.len() > 512 || issuer.chars().any(char::is_control) {
        return Err(invalid(
            "issuer",
            "must be the exact `iss` value, 1-512 characters".into(),
        ));
    }
    if input.audiences.is_empty()
        || input
            .audiences
            .iter()
            .any(|a| a.trim().is_empty() || a.len() > 512)
    {
        return Err(invalid(
            "audiences",
            "name at least one audience; `aud` is always checked".into(),
        ));
    }
    let mut algorithms: Vec<Alg> = Vec::new();
    for (i, a) in input.algorithms.iter().enumerate() {
        let alg: Alg = a
            .parse()
            .map_err(|e: gatehouse_policies::identity::jwt::UnknownAlg| {
                invalid(&format!("algorithms/{i}"), e.to_string())
            })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(invalid(
            "algorithms",
            "name the algorithms this issuer signs with".into(),
        ));
    }
    let consumer_claim = input.consumer_claim.unwrap_or_else(|| "sub".into());
    if ConsumerClaim::parse(&consumer_claim).is_none() {
        return Err(invalid(
            "consumer_claim",
            "must be `sub`, `azp` or `client_id`".into(),
        ));
    }
    let leeway_seconds = input.leeway_seconds.unwrap_or(60);
    if u64::from(leeway_seconds) > MAX_LEEWAY_SECONDS {
        return Err(invalid(
            "leeway_seconds",
            format!("at most {MAX_LEEWAY_SECONDS}"),
        ));
    }
    if let Some(uri) = &input.jwks_uri {
        let ok = (uri.starts_with("https://") || uri.starts_with("http://"))
            && uri.parse::<http::Uri>().is_ok_and(|u| u.host().is_some())
            && !uri.contains('@');
        if !ok {
            return Err(invalid(
                "jwks_uri",
                "must be an absolute http(s) URL without credentials".into(),
            ));
        }
        if algorithms.iter().any(|a| a.is_symmetric()) {
            return Err(invalid(
                "algorithms",
                "HS256 keys are shared secrets: give them inline in `keys`, never by URL".into(),
            ));
        }
    }
    let keys = match input.keys {
        None => None,
        Some(v) => {
            // A bare array of JWKs is accepted as shorthand for a key set.
            let doc = match v {
                serde_json::Value::Array(list) => serde_json::json!({ "keys": list }),
                other => other,
            };
            let (set, skipped) =
                KeySet::from_value(&doc).map_err(|e| invalid("keys", e.to_string()))?;
            if let Some(s) = skipped.first() {
                return Err(invalid(&format!("keys/{}", s.index), s.reason.clone()));
            }
            if doc["keys"].as_array().is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.get("kty") != Some(&"oct".into()) && k.get("d").is_some())
            }) {
                return Err(invalid(
                    "keys",
                    "give public keys only: a private key (`d`) does not belong here".into(),
                ));
            }
            for (i, key) in set.keys().iter().enumerate() {
                if !algorithms.iter().any(|a| key.accepts(*a)) {
                    return Err(invalid(
                        &format!("keys/{i}"),
                        format!(
                            "a {} key cannot verify any of the issuer's algorithms",
                            key.kind.as_str()
                        ),
                    ));
                }
            }
            if set.is_empty() {
                return Err(invalid("keys", "the key set is empty".into()));
            }
            Some(doc)
        }
    };
    if input.jwks_uri.is_none() && keys.is_none() {
        return Err(invalid(
            "jwks_uri",
            "give `jwks_uri`, inline `keys`, or both".into(),
        ));
    }
    Ok(Issuer {
        id: Issuer::id_for(&issuer),
        issuer,
        audiences: input.audiences,
        algorithms: algorithms.iter().map(|a| a.as_str().to_owned()).collect(),
        jwks_uri: input.jwks_uri,
        keys,
        consumer_claim,
        leeway_seconds,
        created_at: OffsetDateTime::now_utc(),
    })
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
    check_rate("rate", &plan.rate)?;
    let mut seen = std::collections::HashSet::new();
    for (i, o) in plan.overrides.iter().enumerate() {
        let id = &o.operation_id;
        if id.is_empty() || id.len() > 200 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(RegistryError::Invalid {
                field: format!("overrides/{i}/operation_id"),
                message: "must be an operationId: 1-200 visible ASCII characters".into(),
            });
        }
        if !seen.insert(id.as_str()) {
            return Err(RegistryError::Invalid {
                field: format!("overrides/{i}/operation_id"),
                message: format!("`{id}` is overridden twice"),
            });
        }
        check_rate(&format!("overrides/{i}/rate"), &o.rate)?;
    }
    Ok(())
}

fn check_rate(field: &str, rate: &Rate) -> Result<()> {
    if rate.requests == 0 || rate.per_seconds == 0 {
        return Err(RegistryError::Invalid {
            field: field.to_owned(),
            message: "requests and per_seconds must be at least 1".into(),
        });
    }
    if rate.burst == Some(0) {
        return Err(RegistryError::Invalid {
            field: format!("{field}/burst"),
            message: "must be at least 1 when set".into(),
        });
    }
    Ok(())
}

/// Upstream targets: `mock://`, or `http://host[:port][/base]`.
fn check_target_url(url: &str) -> std::result::Result<(), String> {
    crate::snapshot::parse_target_url(url)
        .map(|_| ())
        .map_err(|e| format!("`{url}`: {e} (use mock:// or http://host[:port][/base-path])"))
}

/// Refuses a spec whose paths the gateway's router cannot hold (two templates that differ
/// only in parameter names, which OpenAPI forbids too): the snapshot compiles the same
/// router, so a registered version is always routable.
fn check_routes(document: &Document) -> Result<()> {
    crate::snapshot::compile_router(document)
        .map(|_| ())
        .map_err(|(template, _)| {
            RegistryError::InvalidSpec(SpecError::InvalidValue {
                pointer: format!(
                    "/paths/{}",
                    gatehouse_policies::openapi::escape_pointer(&template)
                ),
                value: template,
                expected: "a path the gateway can route: templates that differ only in \
                           parameter names must not define the same method, and a path \
                           segment holds at most one parameter",
            })
        })
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
    fn validation_policies_are_bounded_and_default_field_by_field() {
        let with = |n| ValidationSettings {
            max_body_bytes: n,
            ..ValidationSettings::default()
        };
        assert!(check_validation(with(1)).is_ok());
        assert!(check_validation(with(ValidationSettings::MAX_MAX_BODY_BYTES)).is_ok());
        for bad in [0, ValidationSettings::MAX_MAX_BODY_BYTES + 1] {
            match check_validation(with(bad)) {
                Err(RegistryError::Invalid { field, .. }) => {
                    assert_eq!(field, "validation/max_body_bytes");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let input: NewApi = serde_json::from_str(
            r#"{"slug": "a", "title": "A", "team": "t", "validation": {"response": "report"}}"#,
        )
        .unwrap();
        let v = input.validation.unwrap();
        assert_eq!(v.response, ResponseValidation::Report);
        assert!(v.request);
        assert_eq!(v.max_body_bytes, 1024 * 1024);
        assert!(
            serde_json::from_str::<ValidationSettings>(r#"{"response": "warn"}"#).is_err(),
            "unknown modes are refused"
        );
    }

    #[test]
    fn a_spec_whose_schema_does_not_compile_is_refused_naming_its_pointer() {
        let text = br#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1.0.0"},
            "paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "query",
            "schema": {"type": "string", "pattern": "(unclosed"}}],
            "responses": {"200": {"description": "ok"}}}}}}"#;
        let doc = openapi::parse(text, &Limits::default()).unwrap();
        match check_validators(&doc) {
            Err(RegistryError::InvalidSchemas { errors }) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(
                    errors[0].pointer(),
                    "/paths/~1a/get/parameters/0/schema/pattern"
                );
            }
            other => panic!("{other:?}"),
        }
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
