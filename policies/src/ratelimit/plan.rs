//! A plan compiled for the hot path: GCRA parameters, the policy names the headers carry,
//! per-operation overrides, and what to do when the shared store (Redis) is unreachable.
//!
//! Policy names: the plan's rate is `"<plan>"`, an operation override is
//! `"<plan>/<operationId>"`, the quota is `"<plan>/quota"`.

use super::gcra::{Gcra, RateError};
use super::headers::{LimitItem, PolicyItem};
use super::quota::{Quota, Window};
use super::{Decision, gcra};
use std::collections::HashMap;

/// When the shared limit store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnFailure {
    /// Admit under a local limit of the plan's rate ÷ live nodes.
    #[default]
    Open,
    /// Refuse (503) until the store is back.
    Closed,
}

/// One rate with its name and the figures the `RateLimit-Policy` item shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    pub name: String,
    pub requests: u32,
    pub per_seconds: u32,
    pub gcra: Gcra,
    /// The precomputed `RateLimit-Policy` item of this rate alone.
    pub policy_item: String,
}

impl RatePolicy {
    pub fn new(
        name: String,
        requests: u32,
        per_seconds: u32,
        burst: Option<u32>,
    ) -> Result<Self, RateError> {
        let gcra = Gcra::new(requests, per_seconds, burst)?;
        let policy_item = super::headers::policy_field([PolicyItem {
            name: &name,
            quota: u64::from(requests),
            window_s: u64::from(per_seconds),
        }]);
        Ok(RatePolicy {
            name,
            requests,
            per_seconds,
            gcra,
            policy_item,
        })
    }
}

/// A plan, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLimits {
    pub name: String,
    pub rate: RatePolicy,
    pub quota: Option<Quota>,
    /// The quota's policy name (`<plan>/quota`).
    pub quota_name: String,
    /// Stricter (or looser) rates of single operations, by operation id.
    pub overrides: HashMap<String, RatePolicy>,
    pub on_failure: OnFailure,
}

impl PlanLimits {
    /// The rate that applies to an operation, and whether it is an override (then the
    /// operation has its own bucket).
    pub fn rate_for(&self, operation_id: Option<&str>) -> (&RatePolicy, bool) {
        match operation_id.and_then(|op| self.overrides.get(op)) {
            Some(r) => (r, true),
            None => (&self.rate, false),
        }
    }

    /// The `RateLimit-Policy` value for a request under `rate` at `unix_ms` (the quota's
    /// window is the current calendar period, so its `w` varies with the month).
    pub fn policy_field(&self, rate: &RatePolicy, unix_ms: i64) -> String {
        let mut out = rate.policy_item.clone();
        if let Some(q) = &self.quota {
            let w = Window::containing(q.period, unix_ms);
            out.push_str(", ");
            out.push_str(&super::headers::policy_field([PolicyItem {
                name: &self.quota_name,
                quota: q.limit,
                window_s: w.seconds(),
            }]));
        }
        out
    }

    /// The `RateLimit` value for a decision under `rate`.
    pub fn limit_field(&self, rate: &RatePolicy, decision: &Decision) -> String {
        let rate_item = LimitItem {
            name: &rate.name,
            remaining: u64::from(decision.rate.remaining),
            reset_s: gcra::ceil_seconds(decision.rate.reset_us),
        };
        let quota_item = decision.quota.map(|q| LimitItem {
            name: &self.quota_name,
            remaining: q.remaining,
            reset_s: gcra::ceil_seconds(q.reset_us),
        });
        super::headers::limit_field(std::iter::once(rate_item).chain(quota_item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::quota::Period;

    fn plan() -> PlanLimits {
        let mut overrides = HashMap::new();
        overrides.insert(
            "submitOrder".to_owned(),
            RatePolicy::new("partner/submitOrder".into(), 2, 1, Some(1)).unwrap(),
        );
        PlanLimits {
            name: "partner".into(),
            rate: RatePolicy::new("partner".into(), 20, 1, Some(10)).unwrap(),
            quota: Some(Quota {
                limit: 1000,
                period: Period::Month,
            }),
            quota_name: "partner/quota".into(),
            overrides,
            on_failure: OnFailure::Open,
        }
    }

    #[test]
    fn overrides_and_fields() {
        let p = plan();
        assert_eq!(
            p.rate_for(Some("submitOrder")).0.name,
            "partner/submitOrder"
        );
        assert!(p.rate_for(Some("submitOrder")).1);
        assert_eq!(p.rate_for(Some("getOrder")).0.name, "partner");
        assert!(!p.rate_for(None).1);
        // 2026-02-10: February has 28 days.
        let feb = 1_770_681_600_000;
        assert_eq!(
            p.policy_field(&p.rate, feb),
            r#""partner";q=20;w=1, "partner/quota";q=1000;w=2419200"#
        );
    }
}
