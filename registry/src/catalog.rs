//! Declarative catalogs: `gatehouse apply -f catalog.yaml` and the seed of an empty registry.
//!
//! A catalog names teams, plans, APIs (with versions by spec file, lifecycle and dates,
//! upstreams, systems of record) and consumers with their subscriptions, never secrets. Apply
//! compares it with the registry and makes only the differences, in dependency order, through
//! the same [`Registry`] operations the admin API uses (so every step is role-checked and in
//! the change log). A second apply of the same catalog finds nothing to do.
//!
//! Nothing is deleted except subscriptions of consumers the catalog declares (their list is
//! authoritative); APIs, versions and consumers absent from the catalog are left alone.
//! Every spec is parsed before the first write, so a bad catalog changes nothing.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::service::{
    Deprecation, EntitySystem, NewApi, Permission, Registry, SubscriptionInput, UpstreamInput,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// The catalog file's shape.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub teams: Vec<TeamSpec>,
    #[serde(default)]
    pub plans: Vec<Plan>,
    #[serde(default)]
    pub apis: Vec<ApiSpec>,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    pub name: String,
    pub contact: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    pub slug: String,
    pub title: String,
    pub team: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version_header: bool,
    #[serde(default)]
    pub default_major: Option<u64>,
    #[serde(default)]
    pub systems_of_record: Vec<EntitySystem>,
    #[serde(default)]
    pub versions: Vec<VersionSpec>,
    #[serde(default)]
    pub upstreams: Vec<UpstreamSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// The spec file, relative to the catalog file.
    pub spec: String,
    #[serde(default = "published")]
    pub state: LifecycleState,
    /// RFC 3339 time or `YYYY-MM-DD`.
    #[serde(default)]
    pub sunset: Option<String>,
    #[serde(default)]
    pub successor: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub brownouts: Vec<Brownout>,
}

fn published() -> LifecycleState {
    LifecycleState::Published
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub major: u64,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u32>,
    #[serde(default)]
    pub read_timeout_ms: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub name: String,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionInput>,
}

/// A catalog with the text of every spec it names: what the CLI sends to `POST /apply`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub catalog: Catalog,
    /// Spec path (as the catalog names it) → spec text.
    pub specs: BTreeMap<String, String>,
}

/// One thing apply did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    /// `create`, `update`, `register`, `publish`, `deprecate`, `retire`, `delete`.
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// What apply found and did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub changed: bool,
    pub steps: Vec<Step>,
}

/// Parses an RFC 3339 time, or a date (`YYYY-MM-DD`, midnight UTC).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Reads a catalog file and every spec it names into a bundle.
pub fn load_bundle(path: &Path) -> Result<Bundle> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| RegistryError::Invalid {
            field: p.display().to_string(),
            message: format!("cannot be read: {e}"),
        })
    };
    let text = read(path)?;
    let catalog = parse_catalog(&text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut specs = BTreeMap::new();
    for api in &catalog.apis {
        for v in &api.versions {
            if specs.contains_key(&v.spec) {
                continue;
            }
            let bytes = read(&base.join(&v.spec))?;
            let text = String::from_utf8(bytes).map_err(|_| RegistryError::Invalid {
                field: v.spec.clone(),
                message: "is not UTF-8".into(),
            })?;
            specs.insert(v.spec.clone(), text);
        }
    }
    Ok(Bundle { catalog, specs })
}

/// Parses catalog text (YAML or JSON) with the project's safe loader.
pub fn parse_catalog(bytes: &[u8]) -> Result<Catalog> {
    let tree = gatehouse_policies::document::load(bytes, &Default::default()).map_err(|e| {
        RegistryError::Invalid {
            field: "catalog".into(),
            message: e.to_string(),
        }
    })?;
    serde_json::from_value(tree).map_err(|e| RegistryError::Invalid {
        field: "catalog".into(),
        message: e.to_string(),
    })
}

struct Reconciler<'a> {
    registry: &'a Registry,
    actor: &'a Actor,
    dry_run: bool,
    steps: Vec<Step>,
}

impl Reconciler<'_> {
    fn step(&mut self, action: &str, target: String, detail: impl Into<String>) -> bool {
        self.steps.push(Step {
            action: action.to_owned(),
            target,
            detail: detail.into(),
        });
        !self.dry_run
    }
}

/// Reconciles the registry to the bundle's catalog.
pub async fn apply(
    registry: &Registry,
    actor: &Actor,
    bundle: &Bundle,
    dry_run: bool,
) -> Result<ApplyReport> {
    registry.authorize(actor, Permission::Admin, None)?;
    let catalog = &bundle.catalog;
    // Check everything that can be checked before the first write.
    let mut parsed = BTreeMap::new();
    for api in &catalog.apis {
        for v in &api.versions {
            let text = bundle
                .specs
                .get(&v.spec)
                .ok_or_else(|| RegistryError::Invalid {
                    field: format!("apis/{}/versions/spec", api.slug),
                    message: format!("`{}` is not in the bundle", v.spec),
                })?;
            let doc = registry
                .parse_spec(text.as_bytes())
                .map_err(|e| RegistryError::Invalid {
                    field: v.spec.clone(),
                    message: e.to_string(),
                })?;
            if let Some(s) = &v.sunset {
                parse_instant(s).ok_or_else(|| RegistryError::Invalid {
                    field: format!("{}/sunset", v.spec),
                    message: format!("`{s}` is not an RFC 3339 time or a date"),
                })?;
            }
            let version = doc.info.version.to_string();
            // Versions are immutable and lifecycle never goes back: refuse both here, before
            // the first write, so that a refused catalog changes nothing.
            if let Some(cur) = registry.store().get_version(&api.slug, &version).await? {
                if cur.sha256 != hex::encode(Sha256::digest(text.as_bytes())) {
                    return Err(RegistryError::Conflict {
                        message: format!(
                            "{}@{version} is already registered with different content; versions are immutable, so bump info.version in {}",
                            api.slug, v.spec
                        ),
                    });
                }
                if v.state < cur.state {
                    return Err(RegistryError::Conflict {
                        message: format!(
                            "{}@{version} is {}; the catalog says {}, and lifecycle never goes back",
                            api.slug, cur.state, v.state
                        ),
                    });
                }
            }
            parsed.insert(v.spec.clone(), version);
        }
    }

    let mut plan = Reconciler {
        registry,
        actor,
        dry_run,
        steps: Vec::new(),
    };
    apply_teams(&mut plan, catalog).await?;
    apply_plans(&mut plan, catalog).await?;
    for api in &catalog.apis {
        apply_api(&mut plan, api, bundle, &parsed).await?;
    }
    apply_consumers(&mut plan, catalog).await?;
    Ok(ApplyReport {
        dry_run,
        changed: !plan.steps.is_empty(),
        steps: plan.steps,
    })
}

async fn apply_teams(plan: &mut Reconciler<'_>, catalog: &Catalog) -> Result<()> {
    let (r, a) = (plan.registry, plan.actor);
    for t in &catalog.teams {
        match r.store().get_team(&t.name).await? {
            None => {
                if plan.step("create", format!("team/{}", t.name), "new team") {
                    r.create_team(a, &t.name, &t.contact).await?;
                }
            }
            Some(cur) if cur.contact != t.contact => {
                if plan.step(
                    "update",
                    format!("team/{}", t.name),
                    format!("contact {} → {}", cur.contact, t.contact),
                ) {
                    r.update_team(a, &t.name, &t.contact).await?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn apply_plans(plan: &mut Reconciler<'_>, catalog: &Catalog) -> Result<()> {
    let (r, a) = (plan.registry, plan.actor);
    for p in &catalog.plans {
        match r.store().get_plan(&p.name).await? {
            None => {
                if plan.step("create", format!("plan/{}", p.name), "new plan") {
                    r.create_plan(a, p.clone()).await?;
                }
            }
            Some(cur) if &cur != p => {
                if plan.step(
                    "update",
                    format!("plan/{}", p.name),
                    "rate or quota changed",
                ) {
                    r.update_plan(a, p.clone()).await?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn apply_api(
    plan: &mut Reconciler<'_>,
    spec: &ApiSpec,
    bundle: &Bundle,
    parsed: &BTreeMap<String, String>,
) -> Result<()> {
    let (r, a) = (plan.registry, plan.actor);
    let input = NewApi {
        slug: spec.slug.clone(),
        title: spec.title.clone(),
        team: spec.team.clone(),
        description: spec.description.clone(),
        version_header: Some(spec.version_header),
        default_major: spec.default_major,
    };
    let target = format!("api/{}", spec.slug);
    let exists = match r.store().get_api(&spec.slug).await? {
        None => {
            if plan.step("create", target, "new API") {
                r.create_api(a, input).await?;
            }
            !plan.dry_run
        }
        Some(cur) => {
            let differs = cur.title != spec.title
                || cur.description != spec.description
                || cur.team != spec.team
                || cur.version_header != spec.version_header
                || cur.default_major != spec.default_major;
            if differs
                && plan.step(
                    "update",
                    target,
                    "title, description, team or routing changed",
                )
            {
                r.update_api(a, input).await?;
            }
            true
        }
    };

    // Register every version first, so successors named by deprecations exist.
    for v in &spec.versions {
        let version = parsed.get(&v.spec).cloned().unwrap_or_default();
        let text = bundle
            .specs
            .get(&v.spec)
            .map(String::as_str)
            .unwrap_or_default();
        let current = if exists {
            r.store().get_version(&spec.slug, &version).await?
        } else {
            None
        };
        match current {
            None => {
                if plan.step(
                    "register",
                    format!("{}@{version}", spec.slug),
                    format!("from {}", v.spec),
                ) {
                    let ct = if v.spec.ends_with(".json") {
                        "application/json"
                    } else {
                        "application/yaml"
                    };
                    r.register_version(a, &spec.slug, text.as_bytes(), Some(ct))
                        .await?;
                }
            }
            Some(cur) => {
                let sha = hex::encode(Sha256::digest(text.as_bytes()));
                if cur.sha256 != sha {
                    return Err(RegistryError::Conflict {
                        message: format!(
                            "{}@{version} is already registered with different content; versions are immutable, so bump info.version in {}",
                            spec.slug, v.spec
                        ),
                    });
                }
            }
        }
    }
    for v in &spec.versions {
        let version = parsed.get(&v.spec).cloned().unwrap_or_default();
        apply_lifecycle(plan, &spec.slug, &version, v, exists).await?;
    }

    for u in &spec.upstreams {
        let want = Upstream {
            api: spec.slug.clone(),
            major: u.major,
            targets: u.targets.clone(),
            connect_timeout_ms: u
                .connect_timeout_ms
                .unwrap_or(Upstream::DEFAULT_CONNECT_TIMEOUT_MS),
            read_timeout_ms: u
                .read_timeout_ms
                .unwrap_or(Upstream::DEFAULT_READ_TIMEOUT_MS),
        };
        let current = if exists {
            r.store()
                .list_upstreams(Some(&spec.slug))
                .await?
                .into_iter()
                .find(|c| c.major == u.major)
        } else {
            None
        };
        if current.as_ref() != Some(&want)
            && plan.step(
                if current.is_some() {
                    "update"
                } else {
                    "create"
                },
                format!("{}/v{}/upstream", spec.slug, u.major),
                want.targets
                    .iter()
                    .map(|t| format!("{} ({})", t.url, t.weight))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        {
            let input = UpstreamInput {
                targets: u.targets.clone(),
                connect_timeout_ms: u.connect_timeout_ms,
                read_timeout_ms: u.read_timeout_ms,
            };
            r.put_upstream(a, &spec.slug, u.major, input).await?;
        }
    }

    let mut current: Vec<(String, String)> = if exists {
        r.store()
            .list_systems_of_record()
            .await?
            .into_iter()
            .filter(|s| s.api == spec.slug)
            .map(|s| (s.entity, s.system))
            .collect()
    } else {
        Vec::new()
    };
    let mut want: Vec<(String, String)> = spec
        .systems_of_record
        .iter()
        .map(|e| (e.entity.clone(), e.system.clone()))
        .collect();
    current.sort();
    want.sort();
    if current != want
        && plan.step(
            "update",
            format!("api/{}/systems-of-record", spec.slug),
            want.iter()
                .map(|(e, s)| format!("{e} → {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    {
        r.put_systems_of_record(a, &spec.slug, spec.systems_of_record.clone())
            .await?;
    }
    Ok(())
}

async fn apply_lifecycle(
    plan: &mut Reconciler<'_>,
    slug: &str,
    version: &str,
    v: &VersionSpec,
    exists: bool,
) -> Result<()> {
    let (r, a) = (plan.registry, plan.actor);
    let current = if exists || !plan.dry_run {
        r.store().get_version(slug, version).await?
    } else {
        None
    };
    let state = current.as_ref().map_or(LifecycleState::Draft, |c| c.state);
    let target = format!("{slug}@{version}");
    if v.state < state {
        return Err(RegistryError::Conflict {
            message: format!(
                "{target} is {state}; the catalog says {}, and lifecycle never goes back",
                v.state
            ),
        });
    }
    let deprecation = Deprecation {
        sunset: v.sunset.as_deref().and_then(parse_instant),
        successor: v.successor.clone(),
        link: v.link.clone(),
        brownouts: v.brownouts.clone(),
        reason: Some("catalog apply".into()),
    };
    if state == LifecycleState::Draft
        && v.state >= LifecycleState::Published
        && plan.step("publish", target.clone(), "draft → published")
    {
        r.publish(a, slug, version, Some("catalog apply".into()))
            .await?;
    }
    let deprecation_differs = current.as_ref().is_some_and(|c| {
        c.state == LifecycleState::Deprecated
            && (c.sunset_at != deprecation.sunset
                || c.successor != deprecation.successor
                || c.deprecation_link != deprecation.link
                || c.brownouts != deprecation.brownouts)
    });
    if ((state < LifecycleState::Deprecated && v.state >= LifecycleState::Deprecated)
        || (v.state == LifecycleState::Deprecated && deprecation_differs))
        && plan.step(
            "deprecate",
            target.clone(),
            match &v.sunset {
                Some(s) => format!("sunset {s}"),
                None => "no sunset".into(),
            },
        )
    {
        r.deprecate(a, slug, version, deprecation).await?;
    }
    if state < LifecycleState::Retired
        && v.state == LifecycleState::Retired
        && plan.step("retire", target, "deprecated → retired")
    {
        r.retire(a, slug, version, Some("catalog apply".into()))
            .await?;
    }
    Ok(())
}

async fn apply_consumers(plan: &mut Reconciler<'_>, catalog: &Catalog) -> Result<()> {
    let (r, a) = (plan.registry, plan.actor);
    for c in &catalog.consumers {
        let current = r.store().get_consumer(&c.name).await?;
        match &current {
            None => {
                if plan.step("create", format!("consumer/{}", c.name), "new consumer") {
                    r.create_consumer(a, &c.name, c.contact.clone()).await?;
                }
            }
            Some(cur) if cur.contact != c.contact => {
                if plan.step("update", format!("consumer/{}", c.name), "contact changed") {
                    r.update_consumer(a, &c.name, c.contact.clone()).await?;
                }
            }
            Some(_) => {}
        }
        let existing = if current.is_some() {
            r.store().list_subscriptions(Some(&c.name)).await?
        } else {
            Vec::new()
        };
        for s in &c.subscriptions {
            let mut majors = s.majors.clone();
            majors.sort_unstable();
            majors.dedup();
            let want = Subscription {
                consumer: c.name.clone(),
                api: s.api.clone(),
                majors,
                plan: s.plan.clone(),
                scopes: s.scopes.clone(),
            };
            let cur = existing.iter().find(|e| e.api == s.api);
            if cur != Some(&want)
                && plan.step(
                    if cur.is_some() { "update" } else { "create" },
                    format!("consumer/{}/subscriptions/{}", c.name, s.api),
                    format!("plan {}", s.plan),
                )
            {
                r.put_subscription(a, &c.name, s.clone()).await?;
            }
        }
        for e in existing
            .iter()
            .filter(|e| !c.subscriptions.iter().any(|s| s.api == e.api))
        {
            if plan.step(
                "delete",
                format!("consumer/{}/subscriptions/{}", c.name, e.api),
                "not in the catalog",
            ) {
                r.delete_subscription(a, &c.name, &e.api).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(
            parse_instant("2027-06-30").unwrap().unix_timestamp(),
            1_814_313_600
        );
        assert_eq!(
            parse_instant("2027-06-30T00:00:00Z")
                .unwrap()
                .unix_timestamp(),
            1_814_313_600
        );
        assert!(parse_instant("June").is_none());
    }

    #[test]
    fn the_bundled_catalog_loads_and_every_spec_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/catalog.yaml");
        let bundle = load_bundle(&path).unwrap();
        assert!(bundle.catalog.apis.len() >= 6);
        for (name, text) in &bundle.specs {
            gatehouse_policies::openapi::parse(text.as_bytes(), &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse_catalog(b"teams: []\nextra: 1\n").is_err());
        assert!(parse_catalog(b"apis:\n  - {slug: a, title: A, team: t, colour: red}\n").is_err());
    }
}
