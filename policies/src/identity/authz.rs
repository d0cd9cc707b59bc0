//! The authorization decision: what an operation's OpenAPI `security` requires against what
//! the caller holds.
//!
//! Semantics (OpenAPI 3.x, Security Requirement Object):
//! - The `security` list is an OR of requirements; within one requirement every named scheme
//!   must be satisfied (AND). An empty requirement (`{}`) is satisfied by anyone.
//! - `apiKey` schemes are satisfied by an API key (`X-API-Key`); the scopes listed against
//!   them (OpenAPI 3.1 allows "roles" for any scheme) must be among the scopes the
//!   consumer's subscription grants. `http` `bearer`, `oauth2` and `openIdConnect` schemes
//!   are satisfied by a verified JWT; their scopes must be in its `scope`/`scp` claim.
//! - Schemes Gatehouse cannot check (`http basic` and other HTTP schemes, `mutualTLS`) make
//!   their requirement unsatisfiable, so a spec cannot be weakened by naming one.
//! - One request presents one credential, so a requirement that ANDs an `apiKey` scheme with
//!   a bearer scheme is never satisfied.
//! - An operation without any `security` (none of its own, none in the document) requires no
//!   scope. The gateway still requires an identity and a subscription for every call: that
//!   is what a governed API is.
//!
//! The requirement is compiled once per operation ([`SecurityPolicy::compile`]) into the
//! snapshot; [`SecurityPolicy::decide`] runs per request and allocates only when refusing.

use crate::openapi::{SecurityRequirement, SecurityScheme};
use std::collections::BTreeMap;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    /// `X-API-Key`.
    ApiKey,
    /// `Authorization: Bearer <JWT>`.
    Bearer,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "API key (X-API-Key)",
            CredentialKind::Bearer => "bearer token (Authorization: Bearer)",
        }
    }
}

/// One alternative of an operation's security, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Alternative {
    /// The credential it needs; `None` when any credential will do (an empty requirement).
    kind: Option<CredentialKind>,
    /// Every scope it needs, sorted and unique.
    scopes: Vec<String>,
}

/// An operation's security requirements, compiled for request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// Satisfiable alternatives; empty means none is (the operation cannot be called).
    alternatives: Vec<Alternative>,
}

/// The outcome of [`SecurityPolicy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403 `insufficient_scope`: the closest alternative of the caller's credential kind
    /// lacks these scopes.
    InsufficientScope {
        missing: Vec<String>,
    },
    /// 401: no alternative accepts this kind of credential; `accepted` lists those that do
    /// (empty: no credential Gatehouse checks can satisfy the operation).
    CredentialNotAccepted {
        accepted: Vec<CredentialKind>,
    },
}

impl SecurityPolicy {
    /// No scope required: any authenticated caller.
    pub fn open() -> Self {
        SecurityPolicy {
            alternatives: vec![Alternative {
                kind: None,
                scopes: Vec::new(),
            }],
        }
    }

    /// Compiles an operation's effective `security` with the document's schemes.
    pub fn compile(
        requirements: &[SecurityRequirement],
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Self {
        if requirements.is_empty() {
            return SecurityPolicy::open();
        }
        let mut alternatives = Vec::new();
        'requirements: for req in requirements {
            let mut kind = None;
            let mut scopes: Vec<String> = Vec::new();
            for (name, wanted) in &req.schemes {
                let needs = match schemes.get(name) {
                    Some(SecurityScheme::ApiKey { .. }) => CredentialKind::ApiKey,
                    Some(SecurityScheme::Http { scheme, .. })
                        if scheme.eq_ignore_ascii_case("bearer") =>
                    {
                        CredentialKind::Bearer
                    }
                    Some(SecurityScheme::OAuth2 { .. } | SecurityScheme::OpenIdConnect { .. }) => {
                        CredentialKind::Bearer
                    }
                    // Basic and other HTTP schemes, mutual TLS, or a name the document does
                    // not define (ingest refuses those): never satisfied here.
                    _ => continue 'requirements,
                };
                match kind {
                    Some(k) if k != needs => continue 'requirements,
                    _ => kind = Some(needs),
                }
                scopes.extend(wanted.iter().cloned());
            }
            scopes.sort_unstable();
            scopes.dedup();
            let alt = Alternative { kind, scopes };
            if !alternatives.contains(&alt) {
                alternatives.push(alt);
            }
        }
        SecurityPolicy { alternatives }
    }

    /// Every scope any alternative names (for documentation and the admin API).
    pub fn scopes(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .alternatives
            .iter()
            .flat_map(|a| a.scopes.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether a caller holding `held` scopes through a `kind` credential may call.
    /// `held` need not be sorted.
    pub fn decide(&self, kind: CredentialKind, held: &[String]) -> Decision {
        let mut best: Option<Vec<&String>> = None;
        for alt in &self.alternatives {
            if alt.kind.is_some_and(|k| k != kind) {
                continue;
            }
            let missing: Vec<&String> = alt.scopes.iter().filter(|s| !held.contains(s)).collect();
            if missing.is_empty() {
                return Decision::Allow;
            }
            if best.as_ref().is_none_or(|b| missing.len() < b.len()) {
                best = Some(missing);
            }
        }
        match best {
            Some(missing) => Decision::InsufficientScope {
                missing: missing.into_iter().cloned().collect(),
            },
            None => {
                let mut accepted: Vec<CredentialKind> =
                    self.alternatives.iter().filter_map(|a| a.kind).collect();
                accepted.sort_unstable();
                accepted.dedup();
                Decision::CredentialNotAccepted { accepted }
            }
        }
    }
}

/// Whether a subscription covering `majors` (empty: every major) covers `major`.
pub fn covers(majors: &[u64], major: u64) -> bool {
    majors.is_empty() || majors.contains(&major)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::ParamIn;

    fn schemes() -> BTreeMap<String, SecurityScheme> {
        BTreeMap::from([
            (
                "apiKey".to_owned(),
                SecurityScheme::ApiKey {
                    name: "X-API-Key".into(),
                    location: ParamIn::Header,
                },
            ),
            (
                "oauth2".to_owned(),
                SecurityScheme::OAuth2 {
                    scopes: BTreeMap::new(),
                },
            ),
            (
                "bearer".to_owned(),
                SecurityScheme::Http {
                    scheme: "Bearer".into(),
                    bearer_format: Some("JWT".into()),
                },
            ),
            (
                "basic".to_owned(),
                SecurityScheme::Http {
                    scheme: "basic".into(),
                    bearer_format: None,
                },
            ),
            (
                "oidc".to_owned(),
                SecurityScheme::OpenIdConnect { url: "x".into() },
            ),
            ("mtls".to_owned(), SecurityScheme::MutualTls),
        ])
    }

    /// `[{"apiKey": ["a"]}, {"oauth2": ["a", "b"]}]` from `&[&[("apiKey", &["a"])], …]`.
    fn reqs(list: &[&[(&str, &[&str])]]) -> Vec<SecurityRequirement> {
        list.iter()
            .map(|r| SecurityRequirement {
                schemes: r
                    .iter()
                    .map(|(n, s)| ((*n).to_owned(), s.iter().map(|x| (*x).to_owned()).collect()))
                    .collect(),
            })
            .collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    use CredentialKind::{ApiKey, Bearer};

    #[test]
    fn decisions() {
        type Case<'a> = (
            &'a str,
            &'a [&'a [(&'a str, &'a [&'a str])]],
            CredentialKind,
            &'a [&'a str],
            Decision,
        );
        let allow = Decision::Allow;
        let missing = |m: &[&str]| Decision::InsufficientScope {
            missing: strings(m),
        };
        let only = |k: &[CredentialKind]| Decision::CredentialNotAccepted {
            accepted: k.to_vec(),
        };
        let catalog: &[&[(&str, &[&str])]] =
            &[&[("apiKey", &["inv:read"])], &[("oauth2", &["inv:read"])]];
        let cases: Vec<Case> = vec![
            ("no security: anyone", &[], ApiKey, &[], allow.clone()),
            (
                "empty requirement: anyone",
                &[&[]],
                Bearer,
                &[],
                allow.clone(),
            ),
            (
                "key with the scope",
                catalog,
                ApiKey,
                &["inv:read"],
                allow.clone(),
            ),
            (
                "token with the scope",
                catalog,
                Bearer,
                &["x", "inv:read"],
                allow.clone(),
            ),
            (
                "key without",
                catalog,
                ApiKey,
                &["other"],
                missing(&["inv:read"]),
            ),
            (
                "token without",
                catalog,
                Bearer,
                &[],
                missing(&["inv:read"]),
            ),
            (
                "AND within a requirement",
                &[&[("oauth2", &["a"]), ("bearer", &["b"])]],
                Bearer,
                &["a"],
                missing(&["b"]),
            ),
            (
                "OR picks the closest alternative",
                &[&[("oauth2", &["a", "b", "c"])], &[("oidc", &["a", "d"])]],
                Bearer,
                &["a"],
                missing(&["d"]),
            ),
            (
                "key where only tokens go",
                &[&[("oauth2", &["a"])]],
                ApiKey,
                &["a"],
                only(&[Bearer]),
            ),
            (
                "token where only keys go",
                &[&[("apiKey", &[])]],
                Bearer,
                &[],
                only(&[ApiKey]),
            ),
            (
                "basic is never satisfied",
                &[&[("basic", &[])]],
                Bearer,
                &[],
                only(&[]),
            ),
            (
                "mutual TLS is never satisfied",
                &[&[("mtls", &[])]],
                ApiKey,
                &[],
                only(&[]),
            ),
            (
                "key AND token is never satisfied",
                &[&[("apiKey", &[]), ("oauth2", &[])]],
                ApiKey,
                &[],
                only(&[]),
            ),
            (
                "an unsatisfiable alternative does not hide a good one",
                &[&[("basic", &[])], &[("apiKey", &["a"])]],
                ApiKey,
                &["a"],
                allow.clone(),
            ),
        ];
        for (name, requirements, kind, held, expect) in cases {
            let policy = SecurityPolicy::compile(&reqs(requirements), &schemes());
            assert_eq!(policy.decide(kind, &strings(held)), expect, "{name}");
        }
    }

    #[test]
    fn compiled_scopes_are_listed_once() {
        let p = SecurityPolicy::compile(
            &reqs(&[&[("apiKey", &["b", "a"])], &[("oauth2", &["a"])]]),
            &schemes(),
        );
        assert_eq!(p.scopes(), ["a", "b"]);
        assert!(SecurityPolicy::open().scopes().is_empty());
    }

    #[test]
    fn subscriptions_cover_listed_majors_or_all() {
        assert!(covers(&[], 7));
        assert!(covers(&[1, 2], 2));
        assert!(!covers(&[1], 2));
    }
}
