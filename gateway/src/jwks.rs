//! The JWKS cache: each trusted issuer's `jwks_uri` key set, fetched in the background and
//! read lock-free on the hot path.
//!
//! **Invariant:** no request ever waits for a key set. [`JwksCache::keys`] is one atomic load
//! (`arc-swap`); a request whose `kid` is unknown is refused at once and only *asks* for a
//! refresh ([`JwksCache::request_refresh`]).
//!
//! Per issuer one background task (so fetches are single-flight by construction):
//! - fetches at start, then again when the response's `Cache-Control: max-age` runs out
//!   (bounded by [`JwksConfig::min_ttl`] and [`JwksConfig::max_ttl`]; [`JwksConfig::default_ttl`]
//!   without the header);
//! - on an unknown `kid` fetches at once, but never sooner than
//!   [`JwksConfig::min_refresh_interval`] after its previous fetch: a flood of tokens with
//!   random `kid`s costs the identity provider at most one fetch per interval;
//! - when a fetch fails (provider down, bad document), keeps serving the last good keys and
//!   retries with backoff (1 s doubling, at most the TTL bounds).
//!
//! [`run_sync`] follows the snapshot: it starts a task for each issuer with a `jwks_uri`,
//! stops tasks of issuers that are gone or moved, and forgets their keys.
//!
//! HTTP client: `reqwest` without TLS features, so `jwks_uri` must be `http://` in this
//! build (a JWKS is public data, but its integrity matters: in production put the provider
//! behind a TLS-terminating sidecar, or enable reqwest's `rustls-tls` feature in the
//! workspace, which this module needs no change for).

use crate::holder::SnapshotHolder;
use arc_swap::ArcSwap;
use gatehouse_policies::identity::KeySet;
use gatehouse_policies::identity::jwks::MAX_JWKS_BYTES;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// How the cache refreshes. Defaults suit production; tests shorten the interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// Unknown-`kid` refreshes happen at most once per this interval per issuer.
    pub min_refresh_interval: Duration,
    /// The shortest time a fetched set is kept before a scheduled refresh.
    pub min_ttl: Duration,
    /// The longest time a fetched set is kept before a scheduled refresh.
    pub max_ttl: Duration,
    /// The refresh period when the response has no `max-age`.
    pub default_ttl: Duration,
    /// Time allowed for one fetch (connect, send, read).
    pub fetch_timeout: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            min_refresh_interval: Duration::from_secs(10),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a fetch did not produce a key set (logged; the last good keys keep serving).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the provider answered {status}")]
    Status { status: u16 },
    #[error("the key set is over {max} bytes")]
    TooLarge { max: usize },
    #[error(transparent)]
    Jwks(#[from] gatehouse_policies::identity::JwksError),
}

/// The wake-up of one issuer's task.
#[derive(Debug, Default)]
struct Trigger {
    notify: Notify,
}

#[derive(Debug)]
struct Worker {
    uri: String,
    task: AbortHandle,
}

/// Key sets by issuer, and the tasks that keep them fresh.
#[derive(Debug)]
pub struct JwksCache {
    config: JwksConfig,
    client: reqwest::Client,
    sets: ArcSwap<HashMap<String, Arc<KeySet>>>,
    triggers: ArcSwap<HashMap<String, Arc<Trigger>>>,
    workers: Mutex<HashMap<String, Worker>>,
    /// Bumped whenever any key set changes: verified-token caches compare it.
    epoch: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
}

impl Drop for JwksCache {
    fn drop(&mut self) {
        let workers = self
            .workers
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for w in workers.values() {
            w.task.abort();
        }
    }
}

impl JwksCache {
    pub fn new(config: JwksConfig) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            // A key set URL is configuration, not input: no redirects to elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(JwksCache {
            config,
            client,
            sets: ArcSwap::from_pointee(HashMap::new()),
            triggers: ArcSwap::from_pointee(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The last good key set of an issuer. Hot path: one atomic load, no lock.
    pub fn keys(&self, issuer: &str) -> Option<Arc<KeySet>> {
        self.sets.load().get(issuer).cloned()
    }

    /// Asks for a refresh because a token named an unknown `kid`. Never blocks; the task
    /// decides when (at once, or when the minimum interval since its last fetch is over).
    pub fn request_refresh(&self, issuer: &str) {
        if let Some(t) = self.triggers.load().get(issuer) {
            t.notify.notify_one();
        }
    }

    /// Changes whenever any key set changes.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Fetches attempted and failed so far (for metrics and tests).
    pub fn counters(&self) -> (u64, u64) {
        (
            self.fetches.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Makes the running tasks match `wanted` (issuer → `jwks_uri`): starts the missing
    /// ones, stops those whose issuer is gone or whose URI changed, and forgets their keys.
    /// Must run inside a tokio runtime.
    pub fn sync(self: &Arc<Self>, wanted: &HashMap<String, String>) {
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale: Vec<String> = workers
            .iter()
            .filter(|(issuer, w)| wanted.get(*issuer) != Some(&w.uri))
            .map(|(issuer, _)| issuer.clone())
            .collect();
        let changed = !stale.is_empty() || wanted.keys().any(|i| !workers.contains_key(i));
        if !changed {
            return;
        }
        for issuer in &stale {
            if let Some(w) = workers.remove(issuer) {
                w.task.abort();
            }
        }
        let mut triggers: HashMap<String, Arc<Trigger>> = (**self.triggers.load()).clone();
        triggers.retain(|i, _| !stale.contains(i));
        for (issuer, uri) in wanted {
            if workers.contains_key(issuer) {
                continue;
            }
            let trigger = Arc::new(Trigger::default());
            triggers.insert(issuer.clone(), trigger.clone());
            let task = tokio::spawn(refresh_loop(
                Arc::downgrade(self),
                issuer.clone(),
                uri.clone(),
                trigger,
            ));
            workers.insert(
                issuer.clone(),
                Worker {
                    uri: uri.clone(),
                    task: task.abort_handle(),
                },
            );
        }
        self.triggers.store(Arc::new(triggers));
        if !stale.is_empty() {
            self.sets.rcu(|sets| {
                let mut sets = (**sets).clone();
                sets.retain(|i, _| !stale.contains(i));
                sets
            });
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn store(&self, issuer: &str, set: KeySet) {
        let set = Arc::new(set);
        self.sets.rcu(|sets| {
            let mut sets = (**sets).clone();
            sets.insert(issuer.to_owned(), set.clone());
            sets
        });
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// One fetch: the key set and how long to keep it.
    async fn fetch(&self, uri: &str) -> Result<(KeySet, Duration), FetchError> {
        let mut response = self
            .client
            .get(uri)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                status: response.status().as_u16(),
            });
        }
        let ttl = ttl_of(
            response
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            &self.config,
        );
        if response
            .content_length()
            .is_some_and(|l| l > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge {
                max: MAX_JWKS_BYTES,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge {
                    max: MAX_JWKS_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let (set, skipped) = KeySet::parse(&body)?;
        for s in skipped {
            tracing::warn!(uri, kid = ?s.kid, reason = %s.reason, "JWKS: key skipped");
        }
        Ok((set, ttl))
    }
}

/// How long to keep a fetched set, from its `Cache-Control`, within the configured bounds.
pub fn ttl_of(cache_control: Option<&str>, config: &JwksConfig) -> Duration {
    let Some(cc) = cache_control else {
        return config.default_ttl;
    };
    let mut ttl = None;
    for directive in cc.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return config.min_ttl;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            ttl = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    ttl.unwrap_or(config.default_ttl)
        .clamp(config.min_ttl, config.max_ttl)
}

/// The task of one issuer. Holds only a weak reference, so it ends with the cache.
async fn refresh_loop(
    cache: std::sync::Weak<JwksCache>,
    issuer: String,
    uri: String,
    trigger: Arc<Trigger>,
) {
    let Some(interval) = cache.upgrade().map(|c| c.config.min_refresh_interval) else {
        return;
    };
    let mut due = Instant::now();
    let mut last_fetch: Option<Instant> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let triggered = tokio::select! {
            () = tokio::time::sleep_until(due) => false,
            () = trigger.notify.notified() => true,
        };
        if triggered && let Some(last) = last_fetch {
            // Single flight and rate limit: an unknown kid waits for the interval to end.
            // Requests meanwhile are refused, not held.
            tokio::time::sleep_until(last + interval).await;
        }
        let Some(c) = cache.upgrade() else { return };
        run_fetch(&c, &issuer, &uri, &mut last_fetch, &mut due, &mut backoff).await;
    }
}

async fn run_fetch(
    cache: &JwksCache,
    issuer: &str,
    uri: &str,
    last_fetch: &mut Option<Instant>,
    due: &mut Instant,
    backoff: &mut Duration,
) {
    let started = Instant::now();
    *last_fetch = Some(started);
    cache.fetches.fetch_add(1, Ordering::Relaxed);
    match cache.fetch(uri).await {
        Ok((set, ttl)) => {
            tracing::debug!(
                issuer,
                uri,
                keys = set.len(),
                ttl_secs = ttl.as_secs(),
                "JWKS fetched"
            );
            cache.store(issuer, set);
            *due = started + ttl;
            *backoff = Duration::from_secs(1);
        }
        Err(error) => {
            cache.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(issuer, uri, %error, retry_in_secs = backoff.as_secs(),
                "JWKS fetch failed; the last good keys keep serving");
            *due = started + *backoff;
            *backoff = (*backoff * 2).min(cache.config.max_ttl.max(Duration::from_secs(1)));
        }
    }
}

/// Keeps the cache's tasks in line with the snapshot's issuers, checking every `every`.
pub async fn run_sync(cache: Arc<JwksCache>, holder: Arc<SnapshotHolder>, every: Duration) {
    let mut seen = i64::MIN;
    loop {
        let snapshot = holder.snapshot();
        if snapshot.generation != seen {
            seen = snapshot.generation;
            let wanted: HashMap<String, String> = snapshot
                .credentials
                .issuers()
                .filter_map(|i| Some((i.policy.issuer.clone(), i.jwks_uri.clone()?)))
                .collect();
            cache.sync(&wanted);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_max_age_within_bounds() {
        let c = JwksConfig::default();
        assert_eq!(ttl_of(None, &c), c.default_ttl);
        assert_eq!(
            ttl_of(Some("public, max-age=600"), &c),
            Duration::from_secs(600)
        );
        assert_eq!(ttl_of(Some("max-age=1"), &c), c.min_ttl);
        assert_eq!(ttl_of(Some("max-age=99999999"), &c), c.max_ttl);
        assert_eq!(ttl_of(Some("no-store"), &c), c.min_ttl);
        assert_eq!(ttl_of(Some("max-age=abc"), &c), c.default_ttl);
        assert_eq!(ttl_of(Some("MAX-AGE=120"), &c), Duration::from_secs(120));
    }
}
