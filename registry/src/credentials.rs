//! The identity part of the compiled snapshot: API keys by their visible id, trusted issuers
//! with their policies and inline keys, and subscriptions by consumer and API.
//!
//! **Invariant:** built once per snapshot from [`Contents`], immutable afterwards; lookups on
//! the hot path are hash-map reads that never allocate. Revoking a key or removing an issuer
//! is a registry change, so it reaches every node with the next snapshot (within a second).
//! Keys fetched from a `jwks_uri` are not here: the gateway's JWKS cache holds them, because
//! they change without any registry change.

use crate::model::{Contents, Issuer, unix_ms};
use gatehouse_policies::identity::{
    Alg, ApiKeyRecord, ConsumerClaim, IssuerPolicy, JwksError, KeySet,
};
use std::collections::HashMap;

/// Why the identity part of a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("issuer `{issuer}`: algorithm `{alg}` is not supported")]
    Algorithm { issuer: String, alg: String },
    #[error("issuer `{issuer}`: consumer claim `{claim}` is not supported")]
    ConsumerClaim { issuer: String, claim: String },
    #[error("issuer `{issuer}`: its inline keys are not a key set: {source}")]
    Keys {
        issuer: String,
        #[source]
        source: JwksError,
    },
}

/// One trusted issuer, compiled.
#[derive(Debug)]
pub struct IssuerEntry {
    pub id: String,
    pub policy: IssuerPolicy,
    /// Keys given in the registry (may be empty when all come from `jwks_uri`).
    pub inline_keys: KeySet,
    pub jwks_uri: Option<String>,
}

/// What one subscription grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Majors covered; empty means every major.
    pub majors: Vec<u64>,
    pub plan: String,
    /// Scopes granted to API-key calls.
    pub scopes: Vec<String>,
}

/// The compiled identity index of a snapshot.
#[derive(Debug, Default)]
pub struct Credentials {
    keys: HashMap<String, ApiKeyRecord>,
    issuers: HashMap<String, IssuerEntry>,
    /// consumer → API → grant.
    grants: HashMap<String, HashMap<String, Grant>>,
}

impl Credentials {
    /// Compiles keys, issuers and subscriptions. Fails on an issuer the registry should
    /// never have accepted, so a bad record cannot silently weaken verification.
    pub fn compile(contents: &Contents) -> Result<Credentials, CredentialsError> {
        let keys = contents
            .keys
            .iter()
            .filter_map(|k| {
                ApiKeyRecord::from_hex(
                    &k.hash,
                    k.consumer.clone(),
                    k.expires_at.map(unix_ms),
                    k.revoked_at.is_some(),
                )
                .map(|r| (k.id.clone(), r))
            })
            .collect();
        let mut issuers = HashMap::with_capacity(contents.issuers.len());
        for i in &contents.issuers {
            issuers.insert(i.issuer.clone(), compile_issuer(i)?);
        }
        let mut grants: HashMap<String, HashMap<String, Grant>> = HashMap::new();
        for s in &contents.subscriptions {
            grants.entry(s.consumer.clone()).or_default().insert(
                s.api.clone(),
                Grant {
                    majors: s.majors.clone(),
                    plan: s.plan.clone(),
                    scopes: s.scopes.clone(),
                },
            );
        }
        Ok(Credentials {
            keys,
            issuers,
            grants,
        })
    }

    /// The key with this visible id (`ghk_…`), revoked or not.
    pub fn key(&self, id: &str) -> Option<&ApiKeyRecord> {
        self.keys.get(id)
    }

    /// The trusted issuer whose `iss` is exactly this.
    pub fn issuer(&self, iss: &str) -> Option<&IssuerEntry> {
        self.issuers.get(iss)
    }

    /// Every trusted issuer (for the JWKS cache to know what to fetch).
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerEntry> {
        self.issuers.values()
    }

    /// The consumer's subscription to an API.
    pub fn grant(&self, consumer: &str, api: &str) -> Option<&Grant> {
        self.grants.get(consumer)?.get(api)
    }
}

fn compile_issuer(i: &Issuer) -> Result<IssuerEntry, CredentialsError> {
    let mut algorithms = Vec::with_capacity(i.algorithms.len());
    for a in &i.algorithms {
        algorithms.push(Alg::parse(a).ok_or_else(|| CredentialsError::Algorithm {
            issuer: i.issuer.clone(),
            alg: a.clone(),
        })?);
    }
    let consumer_claim =
        ConsumerClaim::parse(&i.consumer_claim).ok_or_else(|| CredentialsError::ConsumerClaim {
            issuer: i.issuer.clone(),
            claim: i.consumer_claim.clone(),
        })?;
    let inline_keys = match &i.keys {
        None => KeySet::default(),
        Some(doc) => {
            KeySet::from_value(doc)
                .map_err(|source| CredentialsError::Keys {
                    issuer: i.issuer.clone(),
                    source,
                })?
                .0
        }
    };
    Ok(IssuerEntry {
        id: i.id.clone(),
        policy: IssuerPolicy {
            issuer: i.issuer.clone(),
            audiences: i.audiences.clone(),
            algorithms,
            consumer_claim,
            leeway_seconds: u64::from(i.leeway_seconds),
        },
        inline_keys,
        jwks_uri: i.jwks_uri.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, Subscription};
    use serde_json::json;
    use time::OffsetDateTime;

    #[test]
    fn compiles_keys_issuers_and_grants() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let contents = Contents {
            keys: vec![
                ApiKey {
                    id: "ghk_00000001".into(),
                    consumer: "portal".into(),
                    hash: "ab".repeat(32),
                    created_at: now,
                    expires_at: None,
                    revoked_at: Some(now),
                    last_used_at: None,
                },
                ApiKey {
                    id: "ghk_00000002".into(),
                    consumer: "portal".into(),
                    hash: "not hex".into(),
                    created_at: now,
                    expires_at: None,
                    revoked_at: None,
                    last_used_at: None,
                },
            ],
            subscriptions: vec![Subscription {
                consumer: "portal".into(),
                api: "orders".into(),
                majors: vec![1],
                plan: "gold".into(),
                scopes: vec!["orders:read".into()],
            }],
            issuers: vec![Issuer {
                id: Issuer::id_for("https://idp/"),
                issuer: "https://idp/".into(),
                audiences: vec!["gh".into()],
                algorithms: vec!["HS256".into()],
                jwks_uri: None,
                keys: Some(json!({"keys": [{"kty": "oct", "kid": "a", "k": "A".repeat(43)}]})),
                consumer_claim: "client_id".into(),
                leeway_seconds: 5,
                created_at: now,
            }],
            ..Contents::default()
        };
        let c = Credentials::compile(&contents).unwrap();
        assert!(c.key("ghk_00000001").unwrap().revoked);
        assert!(
            c.key("ghk_00000002").is_none(),
            "a corrupt hash is never matched"
        );
        let issuer = c.issuer("https://idp/").unwrap();
        assert_eq!(issuer.policy.consumer_claim, ConsumerClaim::ClientId);
        assert_eq!(issuer.inline_keys.kids(), ["a"]);
        assert_eq!(c.grant("portal", "orders").unwrap().majors, [1]);
        assert!(c.grant("portal", "inventory").is_none());

        let mut bad = contents.clone();
        bad.issuers[0].algorithms = vec!["none".into()];
        assert!(matches!(
            Credentials::compile(&bad),
            Err(CredentialsError::Algorithm { .. })
        ));
    }
}
