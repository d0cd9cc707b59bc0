//! Consumer identity on the hot path: the proxy's `authenticate` and `authorize` steps, the
//! verified-token cache, and the batched last-used times of API keys.
//!
//! **Invariant:** nothing here waits on I/O. Keys, issuers and subscriptions come from the
//! snapshot, fetched key sets from the [`JwksCache`] (an atomic load); an unknown `kid` only
//! asks the cache for a refresh and is refused at once. Decisions are the pure ones of
//! `gatehouse_policies::identity`; this module only looks things up and caches.
//!
//! **Boundary:** a credential is never logged, never put in an error text, never forwarded
//! (the proxy strips `X-API-Key` always and `Authorization` unless the API opts in).

use crate::jwks::JwksCache;
use gatehouse_policies::identity::{
    self, AuthError, CredentialKind, Decision, Presented, Refusal, TokenError, UnverifiedToken,
    VerifiedToken,
};
use gatehouse_registry::snapshot::{MajorEntry, OperationEntry, Snapshot};
use gatehouse_registry::store::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// Verified tokens kept at most (by SHA-256 of the token).
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub consumer: String,
    pub kind: CredentialKind,
    /// The id of the API key presented (`ghk_<8 hex>`; never the key).
    pub key_id: Option<String>,
    /// For a bearer token, what it verified to (scopes come from it).
    pub token: Option<Arc<VerifiedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    token: Arc<VerifiedToken>,
    /// Unix seconds after which the entry is dead (`exp` plus the issuer's leeway).
    valid_until: i64,
    /// The snapshot generation and key epoch it was verified under: an issuer removed or a
    /// key rotated out invalidates every entry at once.
    generation: i64,
    epoch: u64,
}

/// Verified tokens by the SHA-256 of the token, until they expire. Bounded: when full,
/// expired entries go first, then everything (a full cache under a flood of distinct
/// valid tokens only costs re-verification).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], CachedToken>>,
}

impl TokenCache {
    fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        generation: i64,
        epoch: u64,
    ) -> Option<Arc<VerifiedToken>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = entries.get(key)?;
        (now <= e.valid_until && e.generation == generation && e.epoch == epoch)
            .then(|| e.token.clone())
    }

    fn put(&self, key: [u8; 32], entry: CachedToken, now: i64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            entries.retain(|_, e| e.valid_until >= now);
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, entry);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Last-used times of API keys, collected in memory and written in batches.
#[derive(Debug, Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<String, i64>>,
    flushed: AtomicU64,
}

impl KeyUsage {
    /// Notes a use (Unix ms). Allocates only the first time a key is seen in a batch.
    pub fn record(&self, key_id: &str, now_ms: i64) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match pending.get_mut(key_id) {
            Some(t) => *t = (*t).max(now_ms),
            None => {
                pending.insert(key_id.to_owned(), now_ms);
            }
        }
    }

    /// Writes what was collected with one `touch_keys` call; on failure the batch is merged
    /// back for the next try.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: HashMap<String, i64> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if batch.is_empty() {
            return;
        }
        let used: Vec<(String, OffsetDateTime)> = batch
            .iter()
            .map(|(id, ms)| (id.clone(), gatehouse_registry::model::from_unix_ms(*ms)))
            .collect();
        match store.touch_keys(&used).await {
            Ok(()) => {
                self.flushed.fetch_add(used.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, keys = used.len(), "could not record API-key use; retrying later");
                for (id, ms) in batch {
                    self.record(&id, ms);
                }
            }
        }
    }

    /// Key uses written so far.
    pub fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Relaxed)
    }
}

/// Flushes `usage` every `every` until the task is aborted.
pub async fn run_usage_flusher(usage: Arc<KeyUsage>, store: Arc<dyn Store>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        usage.flush(&*store).await;
    }
}

/// The gateway's identity state: shared by every request.
#[derive(Debug)]
pub struct Identity {
    pub jwks: Arc<JwksCache>,
    pub tokens: TokenCache,
    pub usage: Arc<KeyUsage>,
}

fn unix_secs(now: SystemTime) -> i64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Identity {
    pub fn new(jwks: Arc<JwksCache>) -> Self {
        Identity {
            jwks,
            tokens: TokenCache::default(),
            usage: Arc::new(KeyUsage::default()),
        }
    }

    /// Who the request is from: `X-API-Key` or `Authorization: Bearer`.
    pub fn authenticate(
        &self,
        snapshot: &Snapshot,
        authorization: Option<&[u8]>,
        api_key: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Caller, Refusal> {
        match identity::presented(authorization, api_key)? {
            Presented::ApiKey(key) => self.api_key(snapshot, key, now),
            Presented::Bearer(token) => self.bearer(snapshot, token, now),
        }
    }

    fn api_key(&self, snapshot: &Snapshot, key: &str, now: SystemTime) -> Result<Caller, Refusal> {
        let now_ms = unix_secs(now).saturating_mul(1000);
        let id = identity::api_key_id(key).ok_or(AuthError::UnknownKey)?;
        let record = snapshot.credentials.key(id);
        identity::check_api_key(key, record, now_ms)?;
        let consumer = record.map(|r| r.consumer.clone()).unwrap_or_default();
        self.usage.record(id, now_ms);
        Ok(Caller {
            consumer,
            kind: CredentialKind::ApiKey,
            key_id: Some(id.to_owned()),
            token: None,
        })
    }

    fn bearer(&self, snapshot: &Snapshot, token: &str, now: SystemTime) -> Result<Caller, Refusal> {
        let now_s = unix_secs(now);
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let epoch = self.jwks.epoch();
        let verified = match self.tokens.get(&hash, now_s, snapshot.generation, epoch) {
            Some(v) => v,
            None => {
                let v = Arc::new(self.verify(snapshot, token, now_s)?);
                let leeway = snapshot
                    .credentials
                    .issuer(&v.issuer)
                    .map_or(0, |i| i64::try_from(i.policy.leeway_seconds).unwrap_or(0));
                self.tokens.put(
                    hash,
                    CachedToken {
                        token: v.clone(),
                        valid_until: v.expires_at.saturating_add(leeway),
                        generation: snapshot.generation,
                        epoch,
                    },
                    now_s,
                );
                v
            }
        };
        Ok(Caller {
            consumer: verified.consumer.clone(),
            kind: CredentialKind::Bearer,
            key_id: None,
            token: Some(verified),
        })
    }

    fn verify(
        &self,
        snapshot: &Snapshot,
        token: &str,
        now_s: i64,
    ) -> Result<VerifiedToken, AuthError> {
        let parsed = UnverifiedToken::parse(token)?;
        let issuer = parsed
            .issuer()
            .and_then(|iss| snapshot.credentials.issuer(iss))
            .ok_or(TokenError::UnknownIssuer)?;
        let fetched = issuer
            .jwks_uri
            .as_ref()
            .and_then(|_| self.jwks.keys(&issuer.policy.issuer));
        let result = match &fetched {
            Some(set) if issuer.inline_keys.is_empty() => parsed.verify(&issuer.policy, set, now_s),
            Some(set) => parsed.verify(&issuer.policy, &issuer.inline_keys.merged(set), now_s),
            None => parsed.verify(&issuer.policy, &issuer.inline_keys, now_s),
        };
        if let Err(TokenError::UnknownKid { .. }) = &result
            && issuer.jwks_uri.is_some()
        {
            // Refused now; the key set is refreshed in the background (rate-limited).
            self.jwks.request_refresh(&issuer.policy.issuer);
        }
        Ok(result?)
    }
}

/// Whether the caller may call the routed operation: a subscription covering the API and
/// major, then the operation's scopes (the token's, or the subscription's for API keys).
pub fn authorize(
    snapshot: &Snapshot,
    caller: &Caller,
    major: &MajorEntry,
    operation: &OperationEntry,
) -> Result<(), Refusal> {
    let grant = snapshot
        .credentials
        .grant(&caller.consumer, &major.api)
        .filter(|g| identity::covers(&g.majors, major.major))
        .ok_or_else(|| Refusal::NotSubscribed {
            consumer: clip(&caller.consumer),
            api: major.api.clone(),
            major: major.major,
        })?;
    let held: &[String] = match &caller.token {
        Some(t) => &t.scopes,
        None => &grant.scopes,
    };
    match operation.security.decide(caller.kind, held) {
        Decision::Allow => Ok(()),
        Decision::InsufficientScope { missing } => Err(Refusal::InsufficientScope { missing }),
        Decision::CredentialNotAccepted { accepted } => {
            Err(Refusal::CredentialNotAccepted { accepted })
        }
    }
}

/// Keeps a claimed consumer name short in answers (it comes from a token).
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
