//! Rate limits and quotas as pure decisions. Time is always a parameter ([`Now`]).
//!
//! - [`gcra`]: the rate algorithm, one stored number (the TAT) per key; shared by the local
//!   limiter here and the gateway's Redis script, so both modes give the same answers.
//! - [`quota`]: calendar periods (UTC day, month) and the quota decision.
//! - [`headers`]: the IETF `RateLimit-Policy` and `RateLimit` fields.
//! - [`local`]: [`local::LocalLimiter`], the in-process [`Limiter`] with bounded memory.
//! - [`plan`]: a plan compiled for the hot path (policy names, overrides, failure mode).
//!
//! A request is limited under a [`LimitKey`]: consumer × API, plus the operation when the
//! plan overrides that operation's rate. A quota always counts per consumer × API.

pub mod gcra;
pub mod headers;
pub mod local;
pub mod plan;
pub mod quota;

pub use gcra::{Gcra, GcraStep, RateError};
pub use plan::{OnFailure, PlanLimits, RatePolicy};
pub use quota::{Period, Quota, QuotaStep, Window};

use std::hash::{Hash, Hasher};

/// Who a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitKey<'a> {
    pub consumer: &'a str,
    pub api: &'a str,
    /// Set only when the plan overrides this operation's rate (it then has its own bucket).
    pub operation: Option<&'a str>,
}

impl LimitKey<'_> {
    /// A 128-bit fingerprint of the rate key (two independent 64-bit hashes), so the local
    /// limiter stores no strings per key. Deterministic within a process.
    pub fn rate_fingerprint(&self) -> u128 {
        fingerprint(&(0u8, self.consumer, self.api, self.operation))
    }

    /// The fingerprint of the quota counter: consumer × API, whatever the operation.
    pub fn quota_fingerprint(&self) -> u128 {
        fingerprint(&(1u8, self.consumer, self.api))
    }
}

fn fingerprint<T: Hash>(value: &T) -> u128 {
    let half = |salt: u64| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        value.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f))
}

/// The two clocks a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Microseconds on the rate clock (monotonic locally; Redis `TIME` in cluster mode).
    pub rate_us: u64,
    /// Wall-clock Unix milliseconds, UTC: which quota period we are in.
    pub unix_ms: i64,
}

/// One decision to make: the key and the limits that apply to it.
#[derive(Debug, Clone, Copy)]
pub struct LimitRequest<'a> {
    pub key: LimitKey<'a>,
    pub rate: &'a Gcra,
    pub quota: Option<&'a Quota>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Rate,
    Quota,
}

/// The outcome of one decision, with everything the headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The rate's step. When the quota refused, the rate was not consumed and this is what
    /// the rate *would* have said (its remaining and reset are still true).
    pub rate: GcraStep,
    pub quota: Option<QuotaStep>,
}

impl Decision {
    /// What refused the request, if anything. The quota is checked first: a request the
    /// quota refuses does not consume the rate, and one the rate refuses is not counted.
    pub fn exceeded(&self) -> Option<Exceeded> {
        match self.quota {
            Some(q) if !q.allowed => Some(Exceeded::Quota),
            _ if !self.rate.allowed => Some(Exceeded::Rate),
            _ => None,
        }
    }

    pub fn allowed(&self) -> bool {
        self.exceeded().is_none()
    }

    /// The decision for a key whose stored state was `tat0` (= max(TAT, now)) and
    /// `used_before` quota units, made elsewhere (the Redis script) with the same rule. The
    /// figures come from the same functions as the local mode's, so both answer alike.
    pub fn from_state(
        rate: &Gcra,
        quota: Option<(&Quota, Window)>,
        tat0: u64,
        now_us: u64,
        used_before: u64,
        unix_ms: i64,
    ) -> Decision {
        let quota_step = quota.map(|(q, w)| q.decide(used_before, w, unix_ms));
        if let Some(q) = quota_step
            && !q.allowed
        {
            return Decision {
                rate: rate.peek(Some(tat0), now_us),
                quota: Some(q),
            };
        }
        let step = rate.decide(Some(tat0), now_us);
        let quota_step = match (step.allowed, quota_step) {
            // Refused by the rate: the unit was not counted.
            (false, Some(mut q)) => {
                q.used -= 1;
                q.remaining += 1;
                Some(q)
            }
            (_, q) => q,
        };
        Decision {
            rate: step,
            quota: quota_step,
        }
    }

    /// Microseconds until a retry can succeed (0 when allowed).
    pub fn retry_after_us(&self) -> u64 {
        match (self.exceeded(), self.quota) {
            (Some(Exceeded::Quota), Some(q)) => q.reset_us,
            (Some(Exceeded::Rate), _) => self.rate.retry_after_us,
            _ => 0,
        }
    }
}

/// Something that decides requests against limits, holding the per-key state.
///
/// `check` runs once per limited request, on the hot path; it must not block on I/O. It
/// records the request (consumes the rate, counts the quota) only when it is admitted.
pub trait Limiter: Send + Sync {
    fn check(&self, request: &LimitRequest<'_>, now: Now) -> Decision;
}
