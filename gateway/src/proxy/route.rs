//! `route`: from method, path and `API-Version` to one operation of one routable version, or
//! a refusal. Reads only the snapshot; the time is a parameter.
//!
//! Order: normalise the path once (`policies::routing`), split `/{api}/v{major}/…`, find the
//! API, choose the major (path, header, default), find the major, apply the lifecycle (410
//! before anything else about the path, so a retired version answers 410 for every path),
//! then match the path template and the method.

use crate::holder::Live;
use gatehouse_policies::lifecycle::{GoneReason, Verdict};
use gatehouse_policies::openapi::Method;
use gatehouse_policies::routing::{self, MajorError, MajorSource, PathError};
use gatehouse_registry::snapshot::{MajorEntry, PathLookup};
use std::sync::Arc;
use std::time::SystemTime;

/// A request matched to an operation.
#[derive(Debug, Clone)]
pub struct Routed {
    pub major: Arc<MajorEntry>,
    /// Index of the path entry and of the operation within it.
    pub path: usize,
    pub operation: usize,
    pub major_source: MajorSource,
    /// The normalised operation path (without `/{api}/v{major}`), forwarded upstream.
    pub rest: String,
}

impl Routed {
    /// The operation entry (always present: the indices come from the lookup).
    pub fn operation(&self) -> Option<&gatehouse_registry::snapshot::OperationEntry> {
        self.major.operation(self.path, self.operation)
    }
}

/// Why routing refused a request. Each maps to one problem in `respond`.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 400: the path is malformed or tries to climb (`..`, `%2e%2e`, `//`).
    BadPath(PathError),
    /// 404: `/` or a path without an API segment.
    NoApi,
    /// 404: no API with this slug.
    UnknownApi { api: String },
    /// 400 or 404: the major could not be chosen.
    Major {
        error: MajorError,
        available: Vec<u64>,
    },
    /// 404: the API has no routable version with this major.
    UnknownMajor {
        api: String,
        major: u64,
        available: Vec<u64>,
    },
    /// 410: retired, past sunset, or in a brownout.
    Gone {
        major: Arc<MajorEntry>,
        reason: GoneReason,
    },
    /// 404: no path template matches.
    UnknownPath {
        major: Arc<MajorEntry>,
        rest: String,
    },
    /// 405: the path exists, the method does not.
    MethodNotAllowed {
        major: Arc<MajorEntry>,
        allow: String,
    },
}

impl Refusal {
    /// The routed version, when the refusal happened after the major was known (for labels
    /// and lifecycle headers).
    pub fn major(&self) -> Option<&Arc<MajorEntry>> {
        match self {
            Refusal::Gone { major, .. }
            | Refusal::UnknownPath { major, .. }
            | Refusal::MethodNotAllowed { major, .. } => Some(major),
            _ => None,
        }
    }
}

/// Routes one request against the live snapshot.
pub fn route(
    live: &Live,
    method: &http::Method,
    raw_path: &str,
    api_version: Option<&str>,
    now: SystemTime,
) -> Result<Routed, Refusal> {
    let path = routing::normalize(raw_path).map_err(Refusal::BadPath)?;
    let split = routing::split(&path).ok_or(Refusal::NoApi)?;
    let api = live
        .snapshot
        .api(split.api)
        .ok_or_else(|| Refusal::UnknownApi {
            api: split.api.to_owned(),
        })?;
    let (major_no, major_source) =
        routing::select_major(&split, api_version, api.policy).map_err(|error| Refusal::Major {
            error,
            available: api.available_majors(),
        })?;
    let major = api
        .majors
        .get(&major_no)
        .ok_or_else(|| Refusal::UnknownMajor {
            api: api.slug.clone(),
            major: major_no,
            available: api.available_majors(),
        })?;
    if major.lifecycle.may_refuse()
        && let Verdict::Gone(reason) = major.lifecycle.verdict(now)
    {
        return Err(Refusal::Gone {
            major: major.clone(),
            reason,
        });
    }
    match major.lookup(Method::from_http(method.as_str()), split.rest) {
        PathLookup::Found {
            path, operation, ..
        } => Ok(Routed {
            major: major.clone(),
            path,
            operation,
            major_source,
            rest: split.rest.to_owned(),
        }),
        PathLookup::MethodNotAllowed { allow } => Err(Refusal::MethodNotAllowed {
            major: major.clone(),
            allow: allow.to_owned(),
        }),
        PathLookup::NotFound => Err(Refusal::UnknownPath {
            major: major.clone(),
            rest: split.rest.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::respond::GatewayError;
    use gatehouse_policies::lifecycle::GoneReason;
    use gatehouse_registry::model::{Api, Brownout, Contents, LifecycleState, Version};
    use gatehouse_registry::snapshot::Snapshot;
    use serde_json::{Value, json};
    use time::OffsetDateTime;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-02 12:00 UTC);

    fn version(major: u64, state: LifecycleState) -> Version {
        let v = format!("{major}.0.0");
        let spec = json!({
            "openapi": "3.0.3",
            "info": {"title": "Inventory", "version": v},
            "paths": {
                "/items/{sku}": {
                    "get": {
                        "parameters": [{"name": "sku", "in": "path", "required": true, "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "ok"}}
                    }
                }
            }
        });
        Version {
            api: "inventory".into(),
            version: v,
            major,
            state,
            spec_raw: Vec::new(),
            spec_json: spec.to_string(),
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

    fn live(versions: Vec<Version>) -> Live {
        let contents = Contents {
            generation: 1,
            apis: vec![Api {
                slug: "inventory".into(),
                title: "Inventory".into(),
                description: None,
                team: "t".into(),
                version_header: true,
                default_major: None,
                deprecation_notice_days: Api::DEFAULT_DEPRECATION_NOTICE_DAYS,
                validation: Default::default(),
                forward_bearer: false,
                created_at: NOW,
                updated_at: NOW,
            }],
            versions,
            ..Contents::default()
        };
        Live {
            snapshot: Arc::new(Snapshot::compile(&contents, NOW).unwrap()),
            health: Box::new([]),
            addrs: Box::new([]),
        }
    }

    fn get(live: &Live, path: &str, header: Option<&str>) -> Result<Routed, Refusal> {
        route(
            live,
            &http::Method::GET,
            path,
            header,
            SystemTime::from(NOW),
        )
    }

    fn body(e: Refusal) -> (u16, Value, Vec<(&'static str, String)>) {
        let reply = GatewayError::Route(e).reply("req-1", SystemTime::from(NOW));
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["instance"], "req-1");
        assert_eq!(v["status"], reply.status);
        (reply.status, v, reply.headers)
    }

    #[test]
    fn path_and_header_routing() {
        let l = live(vec![
            version(1, LifecycleState::Published),
            version(2, LifecycleState::Published),
        ]);
        let r = get(&l, "/inventory/v2/items/SKU-1", None).unwrap();
        assert_eq!((r.major.major, r.rest.as_str()), (2, "/items/SKU-1"));
        let r = get(&l, "/inventory/items/SKU-1", Some("1")).unwrap();
        assert_eq!((r.major.major, r.major_source), (1, MajorSource::Header));
    }

    #[test]
    fn refusals_have_their_status_and_body() {
        let l = live(vec![
            version(1, LifecycleState::Published),
            version(2, LifecycleState::Published),
            version(3, LifecycleState::Draft),
        ]);
        let (s, v, _) = body(get(&l, "/nope/v1/items/x", None).unwrap_err());
        assert_eq!(
            (s, v["type"].as_str()),
            (404, Some("urn:gatehouse:problem:unknown-api"))
        );
        // Drafts are not routable: v3 is unknown, and the available majors are listed.
        let (s, v, _) = body(get(&l, "/inventory/v3/items/x", None).unwrap_err());
        assert_eq!(s, 404);
        assert_eq!(v["available_majors"], json!([1, 2]));
        assert!(v["detail"].as_str().unwrap().contains("v1, v2"));
        let (s, v, _) = body(get(&l, "/inventory/v2/nothing", None).unwrap_err());
        assert_eq!(
            (s, v["type"].as_str()),
            (404, Some("urn:gatehouse:problem:unknown-path"))
        );
        let e = route(
            &l,
            &http::Method::POST,
            "/inventory/v2/items/x",
            None,
            SystemTime::from(NOW),
        )
        .unwrap_err();
        let (s, _, headers) = body(e);
        assert_eq!(s, 405);
        assert!(headers.contains(&("allow", "GET".to_owned())));
        let (s, _, _) = body(get(&l, "/inventory/v2/../v1/items/x", None).unwrap_err());
        assert_eq!(s, 400);
        let (s, v, _) = body(get(&l, "/inventory/items/x", None).unwrap_err());
        assert_eq!(
            (s, v["type"].as_str()),
            (404, Some("urn:gatehouse:problem:unknown-version"))
        );
        let (s, _, _) = body(get(&l, "/inventory/v2/items/x", Some("1")).unwrap_err());
        assert_eq!(s, 400);
    }

    #[test]
    fn regression_encoded_dot_dot_cannot_reach_another_version() {
        let l = live(vec![
            version(1, LifecycleState::Published),
            version(2, LifecycleState::Retired),
        ]);
        for p in [
            "/inventory/v2/%2e%2e/v1/items/x",
            "/inventory/v2/..%2Fv1/items/x",
            "/inventory/v2/%2E%2E%2Fv1/items/x",
            "/inventory/v2//../v1/items/x",
        ] {
            match get(&l, p, None) {
                Ok(r) => panic!("{p} routed to v{}", r.major.major),
                Err(Refusal::BadPath(_) | Refusal::Gone { .. }) => {}
                Err(other) => panic!("{p}: {other:?}"),
            }
        }
    }

    #[test]
    fn retired_sunset_and_brownout_answer_410_naming_the_successor() {
        let mut v1 = version(1, LifecycleState::Deprecated);
        v1.successor = Some("2.0.0".into());
        v1.sunset_at = Some(datetime!(2026-06-01 0:00 UTC));
        v1.brownouts = vec![Brownout {
            start: datetime!(2026-03-02 11:00 UTC),
            end: datetime!(2026-03-02 12:30 UTC),
        }];
        let l = live(vec![v1, version(2, LifecycleState::Published)]);
        let e = get(&l, "/inventory/v1/items/x", None).unwrap_err();
        assert!(matches!(
            e,
            Refusal::Gone {
                reason: GoneReason::Brownout { .. },
                ..
            }
        ));
        let (s, v, headers) = body(e);
        assert_eq!(s, 410);
        assert_eq!(v["type"], "urn:gatehouse:problem:version-brownout");
        assert_eq!(v["successor"], "/inventory/v2");
        assert!(headers.contains(&("cache-control", "no-store".to_owned())));
        assert!(headers.contains(&("retry-after", "1800".to_owned())));
        assert!(
            headers
                .iter()
                .any(|(k, v)| *k == "link" && v.contains("successor-version"))
        );
        // Outside the window it serves, with its lifecycle headers compiled.
        let later = SystemTime::from(datetime!(2026-03-03 0:00 UTC));
        let r = route(&l, &http::Method::GET, "/inventory/v1/items/x", None, later).unwrap();
        assert!(
            r.major
                .lifecycle_headers
                .iter()
                .any(|(k, _)| *k == "sunset")
        );
        let after_sunset = SystemTime::from(datetime!(2026-06-01 0:00 UTC));
        let e = route(
            &l,
            &http::Method::GET,
            "/inventory/v1/items/x",
            None,
            after_sunset,
        )
        .unwrap_err();
        let (s, v, headers) = body(e);
        assert_eq!(
            (s, v["type"].as_str()),
            (410, Some("urn:gatehouse:problem:version-retired"))
        );
        assert!(headers.contains(&("cache-control", "public, max-age=3600".to_owned())));
    }
}
