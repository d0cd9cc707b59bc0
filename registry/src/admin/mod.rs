//! The admin API (axum): teams, APIs, versions and their lifecycle, upstreams, systems of
//! record, plans, consumers, keys, subscriptions, trusted JWT issuers, tokens, catalog apply,
//! the change log, and the auditor's access log and reports (`audit.rs`).
//!
//! Handlers are thin: parse input, call [`Registry`], shape the output. Errors become
//! problem+json in `error.rs`, nowhere else. Node-level facts the registry cannot know
//! (readiness, metrics) come from the process through [`NodeStatus`].

mod audit;
pub mod error;
mod openapi_doc;

use crate::catalog::{self, Bundle};
use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::service::{
    Deprecation, EntitySystem, IssuerInput, KeyView, NewApi, Override, Registry, SubscriptionInput,
    UpstreamInput, VersionView,
};
use crate::store::{ChangeFilter, PageRequest};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

pub use openapi_doc::openapi_document;

/// What the running node reports about itself on `/readyz` and `/metrics`.
pub trait NodeStatus: Send + Sync + 'static {
    /// Whether the node is ready, with details (snapshot generation, last error, …).
    fn readiness(&self) -> (bool, Value);
    /// Prometheus text exposition of the node's metrics.
    fn metrics(&self) -> String;
}

/// The admin API's shared state.
#[derive(Clone)]
pub struct AdminState {
    pub registry: Registry,
    pub node: Arc<dyn NodeStatus>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// Largest JSON body accepted by non-spec routes.
const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest catalog bundle (catalog plus every spec it names).
const BUNDLE_LIMIT: usize = 64 * 1024 * 1024;

/// Builds the admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/teams", post(create_team).get(list_teams))
        .route("/teams/{name}", get(get_team))
        .route("/apis", post(create_api).get(list_apis))
        .route("/apis/{slug}", get(get_api))
        .route(
            "/apis/{slug}/validation",
            put(put_validation).get(get_validation),
        )
        .route(
            "/apis/{slug}/versions",
            post(register_version).get(list_versions),
        )
        .route("/apis/{slug}/versions/{version}", get(get_version))
        .route("/apis/{slug}/versions/{version}/spec", get(get_spec))
        .route("/apis/{slug}/versions/{version}/publish", post(publish))
        .route("/apis/{slug}/versions/{version}/deprecate", post(deprecate))
        .route("/apis/{slug}/versions/{version}/retire", post(retire))
        .route("/apis/{slug}/diff", get(diff_versions))
        .route(
            "/apis/{slug}/majors/{major}/upstream",
            put(put_upstream).get(get_upstream),
        )
        .route("/apis/{slug}/upstreams", get(list_upstreams))
        .route(
            "/apis/{slug}/systems-of-record",
            put(put_systems_of_record).get(api_systems_of_record),
        )
        .route("/systems-of-record", get(list_systems_of_record))
        .route("/plans", post(create_plan).get(list_plans))
        .route("/plans/{name}", get(get_plan))
        .route("/consumers", post(create_consumer).get(list_consumers))
        .route("/consumers/{name}", get(get_consumer))
        .route("/consumers/{name}/keys", post(create_key).get(list_keys))
        .route(
            "/consumers/{name}/keys/{id}",
            axum::routing::delete(revoke_key),
        )
        .route(
            "/consumers/{name}/subscriptions",
            post(put_subscription).get(list_subscriptions),
        )
        .route(
            "/consumers/{name}/subscriptions/{api}",
            axum::routing::delete(delete_subscription),
        )
        .route("/issuers", post(create_issuer).get(list_issuers))
        .route("/issuers/{id}", get(get_issuer).delete(delete_issuer))
        .route("/tokens", post(create_token))
        .route("/apply", post(apply))
        .route("/audit/changes", get(list_changes))
        .route("/audit/changes/verify", get(audit::verify_changes))
        .route("/audit/access", get(audit::list_access))
        .route("/reports/deprecations", get(audit::deprecations))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every admin response an `X-Request-Id` (kept from the request when present).
async fn request_id(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .filter(|v| v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        });
    let mut response = next.run(req).await;
    response.headers_mut().insert("x-request-id", id);
    response
}

async fn not_found() -> Response {
    RegistryError::NotFound {
        entity: "route",
        key: "this path".into(),
    }
    .into_response()
}

async fn method_not_allowed() -> Response {
    let p = gatehouse_policies::problem::Problem::new(
        gatehouse_policies::problem::ProblemKind::MethodNotAllowed,
        "this method is not defined for this path",
    );
    error::problem_response(&p)
}

// -- extractors ------------------------------------------------------------------------

/// The authenticated caller of a handler.
#[derive(Debug)]
pub struct Authed(pub Actor);

impl FromRequestParts<AdminState> for Authed {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 512)
            .ok_or(RegistryError::Unauthenticated)?;
        Ok(Authed(state.registry.authenticate(token).await?))
    }
}

/// Query parameters, refused as problem+json (axum's own `Query` answers plain text).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| RegistryError::BadQuery {
                parameter: "query".into(),
                message: std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), ToString::to_string),
            })
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| RegistryError::BodyTooLarge { limit })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|e| RegistryError::MalformedBody {
            message: format!("a JSON body is required ({e})"),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| RegistryError::MalformedBody {
        message: e.to_string(),
    })
}

async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T> {
    parse_json(&read_body(body, JSON_BODY_LIMIT).await?)
}

/// `?limit&cursor` of list routes.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl ListQuery {
    fn page(&self) -> Result<PageRequest> {
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest {
            after,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        })
    }
}

fn decode_cursor(c: &str) -> Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(RegistryError::BadQuery {
            parameter: "cursor".into(),
            message: "not a cursor this API returned".into(),
        })
}

fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// `{items, next_cursor}`: a next cursor only when the page was full.
fn page_of<T: serde::Serialize>(
    items: &[T],
    limit: u32,
    key: impl Fn(&T) -> String,
) -> Json<Value> {
    let next = if items.len() as u64 >= u64::from(limit) {
        items.last().map(|i| encode_cursor(&key(i)))
    } else {
        None
    };
    Json(json!({"items": items, "next_cursor": next}))
}

fn list_of<T: serde::Serialize>(items: &[T]) -> Json<Value> {
    Json(json!({"items": items, "next_cursor": null}))
}

fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// An optional `{reason}` body of lifecycle routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

/// The optional `{reason, force}` body of `…/retire`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForcibleReason {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    force: bool,
}

/// The header that may carry the reason of a registration (instead of `?reason=`).
pub const REASON_HEADER: &str = "x-gatehouse-reason";

// -- node ------------------------------------------------------------------------------

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let (ready, detail) = s.node.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready, "detail": detail}))).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.node.metrics(),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document().to_string(),
    )
        .into_response()
}

// -- teams -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
    contact: String,
}

async fn create_team(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let t: NewTeam = json_body(body).await?;
    Ok(created(
        s.registry.create_team(&a, &t.name, &t.contact).await?,
    ))
}

async fn list_teams(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    s.registry
        .authorize(&a, crate::service::Permission::Read, None)?;
    let page = q.page()?;
    let items = s.registry.store().list_teams(&page).await?;
    Ok(page_of(&items, page.limit, |t| t.name.clone()))
}

async fn get_team(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> Result<Json<Team>> {
    let team = s.registry.store().get_team(&name).await?;
    team.map(Json).ok_or(RegistryError::NotFound {
        entity: "team",
        key: name,
    })
}

// -- APIs ------------------------------------------------------------------------------

async fn create_api(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let input: NewApi = json_body(body).await?;
    Ok(created(s.registry.create_api(&a, input).await?))
}

async fn list_apis(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let page = q.page()?;
    let items = s.registry.store().list_apis(&page).await?;
    Ok(page_of(&items, page.limit, |a| a.slug.clone()))
}

async fn get_api(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let api = s.registry.require_api(&slug).await?;
    let versions: Vec<VersionView> = s
        .registry
        .store()
        .list_versions(&slug)
        .await?
        .iter()
        .map(VersionView::from)
        .collect();
    let mut v = serde_json::to_value(&api).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "versions".into(),
            serde_json::to_value(versions).unwrap_or(Value::Null),
        );
    }
    Ok(Json(v))
}

/// `PUT /apis/{slug}/validation`: replaces the API's validation policy (every field
/// optional, defaults otherwise); answers the stored policy.
async fn put_validation(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(slug): Path<String>,
    body: Body,
) -> Result<Json<ValidationSettings>> {
    let input: ValidationSettings = json_body(body).await?;
    Ok(Json(
        s.registry
            .put_validation(&a, &slug, input)
            .await?
            .validation,
    ))
}

async fn get_validation(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(slug): Path<String>,
) -> Result<Json<ValidationSettings>> {
    Ok(Json(s.registry.require_api(&slug).await?.validation))
}

// -- versions --------------------------------------------------------------------------

/// `?force&reason` of `POST /apis/{slug}/versions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterQuery {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    reason: Option<String>,
}

async fn register_version(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(slug): Path<String>,
    Query(q): Query<RegisterQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let limit = s.registry.spec_limits().max_bytes;
    let bytes = read_body(body, limit).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let header_reason = match headers.get(REASON_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| RegistryError::BadQuery {
                    parameter: REASON_HEADER.into(),
                    message: "must be visible ASCII text".into(),
                })?
                .to_owned(),
        ),
    };
    let gate = Override {
        force: q.force,
        reason: q.reason.or(header_reason),
    };
    let registered = s
        .registry
        .register_version(&a, &slug, &bytes, content_type, &gate)
        .await?;
    let v = &registered.version;
    let mut response = created(json!({
        "api": v.api,
        "version": v.version,
        "major": v.major,
        "state": v.state,
        "sha256": v.sha256,
        "findings": registered.findings,
    }));
    if let Ok(loc) = HeaderValue::from_str(&format!("/apis/{}/versions/{}", v.api, v.version)) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(response)
}

async fn list_versions(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    s.registry.require_api(&slug).await?;
    let items: Vec<VersionView> = s
        .registry
        .store()
        .list_versions(&slug)
        .await?
        .iter()
        .map(VersionView::from)
        .collect();
    Ok(list_of(&items))
}

async fn get_version(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path((slug, version)): Path<(String, String)>,
) -> Result<Json<VersionView>> {
    Ok(Json(VersionView::from(
        &s.registry.require_version(&slug, &version).await?,
    )))
}

async fn get_spec(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path((slug, version)): Path<(String, String)>,
) -> Result<Response> {
    let v = s.registry.require_version(&slug, &version).await?;
    let content_type = HeaderValue::from_str(&v.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let etag = HeaderValue::from_str(&format!("\"{}\"", v.sha256))
        .unwrap_or(HeaderValue::from_static("\"\""));
    Ok((
        [(header::CONTENT_TYPE, content_type), (header::ETAG, etag)],
        v.spec_raw,
    )
        .into_response())
}

async fn publish(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((slug, version)): Path<(String, String)>,
    body: Body,
) -> Result<Json<VersionView>> {
    let r: Reason = json_body(body).await?;
    Ok(Json(VersionView::from(
        &s.registry.publish(&a, &slug, &version, r.reason).await?,
    )))
}

async fn deprecate(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((slug, version)): Path<(String, String)>,
    body: Body,
) -> Result<Json<VersionView>> {
    let d: Deprecation = json_body(body).await?;
    Ok(Json(VersionView::from(
        &s.registry.deprecate(&a, &slug, &version, d).await?,
    )))
}

async fn retire(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((slug, version)): Path<(String, String)>,
    body: Body,
) -> Result<Json<VersionView>> {
    let r: ForcibleReason = json_body(body).await?;
    let gate = Override {
        force: r.force,
        reason: r.reason,
    };
    Ok(Json(VersionView::from(
        &s.registry.retire(&a, &slug, &version, gate).await?,
    )))
}

/// `?from&to` of `GET /apis/{slug}/diff`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    from: String,
    to: String,
}

/// The diff report between two versions: JSON, or Markdown for `Accept: text/markdown`
/// (a pull-request comment), or plain text for `Accept: text/plain`.
async fn diff_versions(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(slug): Path<String>,
    Query(q): Query<DiffQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let d = s.registry.diff_versions(&a, &slug, &q.from, &q.to).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants = |media: &str| {
        accept
            .split(',')
            .any(|m| m.split(';').next().unwrap_or("").trim() == media)
    };
    Ok(if wants("text/markdown") {
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            d.report.to_markdown(),
        )
            .into_response()
    } else if wants("text/plain") && !wants("application/json") {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            d.report.to_text(),
        )
            .into_response()
    } else {
        Json(d).into_response()
    })
}

// -- upstreams and systems of record ---------------------------------------------------

fn parse_major(text: &str) -> Result<u64> {
    text.trim_start_matches('v')
        .parse()
        .map_err(|_| RegistryError::BadQuery {
            parameter: "major".into(),
            message: format!("`{text}` is not a major version number"),
        })
}

async fn put_upstream(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((slug, major)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Upstream>> {
    let major = parse_major(&major)?;
    let input: UpstreamInput = json_body(body).await?;
    Ok(Json(
        s.registry.put_upstream(&a, &slug, major, input).await?,
    ))
}

async fn get_upstream(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path((slug, major)): Path<(String, String)>,
) -> Result<Json<Upstream>> {
    let major = parse_major(&major)?;
    s.registry.require_api(&slug).await?;
    s.registry
        .store()
        .list_upstreams(Some(&slug))
        .await?
        .into_iter()
        .find(|u| u.major == major)
        .map(Json)
        .ok_or(RegistryError::NotFound {
            entity: "upstream",
            key: format!("{slug}/v{major}"),
        })
}

async fn list_upstreams(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    s.registry.require_api(&slug).await?;
    Ok(list_of(
        &s.registry.store().list_upstreams(Some(&slug)).await?,
    ))
}

async fn put_systems_of_record(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(slug): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let entries: Vec<EntitySystem> = json_body(body).await?;
    Ok(list_of(
        &s.registry.put_systems_of_record(&a, &slug, entries).await?,
    ))
}

async fn api_systems_of_record(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    s.registry.require_api(&slug).await?;
    let items: Vec<SystemOfRecord> = s
        .registry
        .store()
        .list_systems_of_record()
        .await?
        .into_iter()
        .filter(|r| r.api == slug)
        .collect();
    Ok(list_of(&items))
}

#[derive(Debug, Deserialize)]
struct SorQuery {
    entity: Option<String>,
    system: Option<String>,
}

async fn list_systems_of_record(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Query(q): Query<SorQuery>,
) -> Result<Json<Value>> {
    let items: Vec<SystemOfRecord> = s
        .registry
        .store()
        .list_systems_of_record()
        .await?
        .into_iter()
        .filter(|r| q.entity.as_ref().is_none_or(|e| &r.entity == e))
        .filter(|r| {
            q.system
                .as_ref()
                .is_none_or(|e| r.system.eq_ignore_ascii_case(e))
        })
        .collect();
    Ok(list_of(&items))
}

// -- plans -----------------------------------------------------------------------------

async fn create_plan(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let plan: Plan = json_body(body).await?;
    Ok(created(s.registry.create_plan(&a, plan).await?))
}

async fn list_plans(State(s): State<AdminState>, Authed(_): Authed) -> Result<Json<Value>> {
    Ok(list_of(&s.registry.store().list_plans().await?))
}

async fn get_plan(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> Result<Json<Plan>> {
    s.registry
        .store()
        .get_plan(&name)
        .await?
        .map(Json)
        .ok_or(RegistryError::NotFound {
            entity: "plan",
            key: name,
        })
}

// -- consumers, keys, subscriptions ----------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConsumer {
    name: String,
    #[serde(default)]
    contact: Option<String>,
}

async fn create_consumer(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let c: NewConsumer = json_body(body).await?;
    Ok(created(
        s.registry.create_consumer(&a, &c.name, c.contact).await?,
    ))
}

async fn list_consumers(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let page = q.page()?;
    let items = s.registry.store().list_consumers(&page).await?;
    Ok(page_of(&items, page.limit, |c| c.name.clone()))
}

async fn get_consumer(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let consumer = s.registry.require_consumer(&name).await?;
    let subs = s.registry.store().list_subscriptions(Some(&name)).await?;
    let keys: Vec<KeyView> = s
        .registry
        .store()
        .list_keys(&name)
        .await?
        .iter()
        .map(KeyView::from)
        .collect();
    let mut v = serde_json::to_value(&consumer).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "subscriptions".into(),
            serde_json::to_value(subs).unwrap_or(Value::Null),
        );
        o.insert(
            "keys".into(),
            serde_json::to_value(keys).unwrap_or(Value::Null),
        );
    }
    Ok(Json(v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

async fn create_key(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response> {
    let k: NewKey = json_body(body).await?;
    let (view, secret) = s.registry.create_key(&a, &name, k.expires_at).await?;
    let mut v = serde_json::to_value(&view).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), Value::String(secret));
    }
    let mut response = created(v);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn list_keys(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    s.registry.require_consumer(&name).await?;
    let keys: Vec<KeyView> = s
        .registry
        .store()
        .list_keys(&name)
        .await?
        .iter()
        .map(KeyView::from)
        .collect();
    Ok(list_of(&keys))
}

async fn revoke_key(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.registry.revoke_key(&a, &name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_subscription(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response> {
    let input: SubscriptionInput = json_body(body).await?;
    Ok(created(
        s.registry.put_subscription(&a, &name, input).await?,
    ))
}

async fn list_subscriptions(
    State(s): State<AdminState>,
    Authed(_): Authed,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    s.registry.require_consumer(&name).await?;
    Ok(list_of(
        &s.registry.store().list_subscriptions(Some(&name)).await?,
    ))
}

async fn delete_subscription(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path((name, api)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.registry.delete_subscription(&a, &name, &api).await?;
    Ok(StatusCode::NO_CONTENT)
}

// -- trusted issuers -------------------------------------------------------------------

async fn create_issuer(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let input: IssuerInput = json_body(body).await?;
    let view = s.registry.create_issuer(&a, input).await?;
    let mut response = created(&view);
    if let Ok(loc) = HeaderValue::from_str(&format!("/issuers/{}", view.id)) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(response)
}

async fn list_issuers(State(s): State<AdminState>, Authed(a): Authed) -> Result<Json<Value>> {
    Ok(list_of(&s.registry.list_issuers(&a).await?))
}

/// `{id}` is the issuer id (`iss_…`) or the issuer URL, percent-encoded.
async fn get_issuer(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(id): Path<String>,
) -> Result<Json<crate::service::IssuerView>> {
    s.registry
        .authorize(&a, crate::service::Permission::Read, None)?;
    Ok(Json(crate::service::IssuerView::from(
        &s.registry.require_issuer(&id).await?,
    )))
}

async fn delete_issuer(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.registry.delete_issuer(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// -- tokens and apply ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    role: Role,
    #[serde(default)]
    team: Option<String>,
}

async fn create_token(
    State(s): State<AdminState>,
    Authed(a): Authed,
    body: Body,
) -> Result<Response> {
    let t: NewToken = json_body(body).await?;
    let issued = s.registry.create_token(&a, t.role, t.team.clone()).await?;
    let mut response =
        created(json!({"id": issued.id, "role": t.role, "team": t.team, "token": issued.secret}));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn apply(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Query(q): Query<ApplyQuery>,
    body: Body,
) -> Result<Json<catalog::ApplyReport>> {
    let bundle: Bundle = parse_json(&read_body(body, BUNDLE_LIMIT).await?)?;
    Ok(Json(
        catalog::apply(&s.registry, &a, &bundle, q.dry_run).await?,
    ))
}

// -- change log ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct ChangesQuery {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn parse_time(parameter: &str, text: &str) -> Result<OffsetDateTime> {
    crate::catalog::parse_instant(text).ok_or(RegistryError::BadQuery {
        parameter: parameter.into(),
        message: format!("`{text}` is not an RFC 3339 time or a date (YYYY-MM-DD)"),
    })
}

async fn list_changes(
    State(s): State<AdminState>,
    Authed(a): Authed,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = ChangeFilter {
        from: q
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: q.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
        actor: q.actor,
        action: q.action,
        target: q.target,
        after_seq: match q.cursor.as_deref() {
            None => None,
            Some(c) => Some(
                decode_cursor(c)?
                    .parse()
                    .map_err(|_| RegistryError::BadQuery {
                        parameter: "cursor".into(),
                        message: "not a cursor this API returned".into(),
                    })?,
            ),
        },
        limit,
    };
    let items = s.registry.list_changes(&a, &filter).await?;
    Ok(page_of(&items, limit, |e| e.seq.to_string()))
}
