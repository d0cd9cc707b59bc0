//! [`LocalLimiter`]: GCRA rates and quota counters in this process, over a sharded map with
//! bounded memory.
//!
//! Why not `governor`'s keyed limiter: one keyed limiter has one quota for all its keys
//! (plans differ per key), and its store grows with every distinct key until someone calls
//! `retain_recent`, so a burst of a million distinct keys between two sweeps grows memory
//! without bound. Here each shard has a hard capacity, and the state per key is the GCRA TAT
//! shared with the Redis mode (see [`super::gcra`]).
//!
//! **Invariant:** memory is bounded by the capacity given to [`LocalLimiter::new`], whatever
//! the keys. Eviction is lossless first: a TAT at or before now means "never seen", so idle
//! keys are dropped without changing any decision. Only when a shard is full of active keys
//! are the ones nearest to idle (smallest TAT) dropped, an eighth of the shard at a time, so
//! eviction stays O(1) amortised per insert. A dropped active key may admit one extra burst;
//! it never refuses more than it should.
//!
//! Quota counters carry their consumer and API names (they are checkpointed to the store and
//! restored at start, [`LocalLimiter::dirty_quotas`], [`LocalLimiter::restore_quota`]); they
//! are few (one per subscription in use), and a counter whose period ended is dead.

use super::quota::Window;
use super::{Decision, LimitRequest, Limiter, Now};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards: enough that two proxy threads rarely meet on one lock.
const SHARDS: usize = 64;

/// One quota counter, as checkpointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub consumer: String,
    pub api: String,
    pub window: Window,
    pub used: u64,
}

#[derive(Debug)]
struct QuotaCell {
    consumer: Box<str>,
    api: Box<str>,
    window: Window,
    used: u64,
    /// Changed since the last checkpoint.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Shard {
    /// Rate fingerprint → TAT (µs).
    rates: HashMap<u128, u64>,
    /// Quota fingerprint → counter.
    quotas: HashMap<u128, QuotaCell>,
}

/// The in-process limiter.
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Box<[Mutex<Shard>]>,
    /// Keys per shard (rates and quotas each).
    shard_capacity: usize,
}

impl Default for LocalLimiter {
    /// Room for about a million active rate keys (≈ 50 MiB at worst, allocated only as keys
    /// arrive).
    fn default() -> Self {
        LocalLimiter::new(1 << 20)
    }
}

impl LocalLimiter {
    /// A limiter that keeps at most about `capacity` rate keys and as many quota counters.
    pub fn new(capacity: usize) -> Self {
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS).max(8),
        }
    }

    fn shard(&self, fingerprint: u128) -> MutexGuard<'_, Shard> {
        // The low bits of a hash: uniform.
        let i = usize::try_from(fingerprint % SHARDS as u128).unwrap_or(0);
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The most keys this limiter will hold (rates; quotas have the same bound).
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    /// Rate keys held now.
    pub fn rate_keys(&self) -> usize {
        self.each_shard(|s| s.rates.len())
    }

    /// Quota counters held now.
    pub fn quota_keys(&self) -> usize {
        self.each_shard(|s| s.quotas.len())
    }

    /// Slots allocated by the maps (what memory follows), rates and quotas together.
    pub fn allocated_slots(&self) -> usize {
        self.each_shard(|s| s.rates.capacity() + s.quotas.capacity())
    }

    fn each_shard(&self, f: impl Fn(&Shard) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| f(&s.lock().unwrap_or_else(PoisonError::into_inner)))
            .sum()
    }

    /// Drops idle rate keys and dead quota counters everywhere, and gives memory back after
    /// a flood. Lossless; call it every few seconds from a background task.
    pub fn sweep(&self, now: Now) {
        for s in self.shards.iter() {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            s.rates.retain(|_, tat| *tat > now.rate_us);
            s.quotas.retain(|_, q| q.window.end_ms > now.unix_ms);
            if s.rates.capacity() > 4 * s.rates.len().max(64) {
                s.rates.shrink_to_fit();
            }
            if s.quotas.capacity() > 4 * s.quotas.len().max(64) {
                s.quotas.shrink_to_fit();
            }
        }
    }

    /// Quota counters changed since the last call, for the checkpoint; marks them clean.
    pub fn dirty_quotas(&self) -> Vec<QuotaUsage> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            for q in s.quotas.values_mut().filter(|q| q.dirty) {
                q.dirty = false;
                out.push(QuotaUsage {
                    consumer: q.consumer.to_string(),
                    api: q.api.to_string(),
                    window: q.window,
                    used: q.used,
                });
            }
        }
        out
    }

    /// Puts back a checkpointed counter (at start). A counter of an ended period is ignored;
    /// one already counting in the same period keeps the larger count.
    pub fn restore_quota(&self, usage: &QuotaUsage, now: Now) {
        if usage.window.end_ms <= now.unix_ms {
            return;
        }
        let key = super::LimitKey {
            consumer: &usage.consumer,
            api: &usage.api,
            operation: None,
        };
        let fp = key.quota_fingerprint();
        let mut s = self.shard(fp);
        let cap = self.shard_capacity;
        make_room_for_quota(&mut s, fp, cap, now);
        let cell = s.quotas.entry(fp).or_insert_with(|| QuotaCell {
            consumer: usage.consumer.as_str().into(),
            api: usage.api.as_str().into(),
            window: usage.window,
            used: 0,
            dirty: false,
        });
        if cell.window == usage.window {
            cell.used = cell.used.max(usage.used);
        } else if cell.window.start_ms < usage.window.start_ms {
            cell.window = usage.window;
            cell.used = usage.used;
        }
    }
}

/// Makes room for one more rate key: lossless first, then the keys nearest to idle.
fn make_room_for_rate(s: &mut Shard, fp: u128, cap: usize, now: u64) {
    if s.rates.len() < cap || s.rates.contains_key(&fp) {
        return;
    }
    s.rates.retain(|_, tat| *tat > now);
    let target = cap - cap / 8;
    if s.rates.len() > target {
        let mut tats: Vec<u64> = s.rates.values().copied().collect();
        let cut = tats.len() - target;
        let (_, &mut threshold, _) = tats.select_nth_unstable(cut - 1);
        s.rates.retain(|_, tat| *tat > threshold);
    }
}

/// Makes room for one more quota counter: dead periods first, then the smallest counts.
fn make_room_for_quota(s: &mut Shard, fp: u128, cap: usize, now: Now) {
    if s.quotas.len() < cap || s.quotas.contains_key(&fp) {
        return;
    }
    s.quotas.retain(|_, q| q.window.end_ms > now.unix_ms);
    let target = cap - cap / 8;
    if s.quotas.len() > target {
        let mut used: Vec<u64> = s.quotas.values().map(|q| q.used).collect();
        let cut = used.len() - target;
        let (_, &mut threshold, _) = used.select_nth_unstable(cut - 1);
        s.quotas.retain(|_, q| q.used > threshold);
    }
}

impl Limiter for LocalLimiter {
    fn check(&self, request: &LimitRequest<'_>, now: Now) -> Decision {
        let rate_fp = request.key.rate_fingerprint();
        // 1. Reserve a unit of the quota (refused: the rate is not consumed).
        let mut reserved = None;
        let quota_step = match request.quota {
            None => None,
            Some(q) => {
                let fp = request.key.quota_fingerprint();
                let window = Window::containing(q.period, now.unix_ms);
                let mut s = self.shard(fp);
                make_room_for_quota(&mut s, fp, self.shard_capacity, now);
                let cell = s.quotas.entry(fp).or_insert_with(|| QuotaCell {
                    consumer: request.key.consumer.into(),
                    api: request.key.api.into(),
                    window,
                    used: 0,
                    dirty: false,
                });
                if cell.window != window {
                    cell.window = window;
                    cell.used = 0;
                    cell.dirty = true;
                }
                let step = q.decide(cell.used, window, now.unix_ms);
                if !step.allowed {
                    drop(s);
                    let tat = self.shard(rate_fp).rates.get(&rate_fp).copied();
                    return Decision {
                        rate: request.rate.peek(tat, now.rate_us),
                        quota: Some(step),
                    };
                }
                cell.used = step.used;
                cell.dirty = true;
                reserved = Some((fp, window));
                Some(step)
            }
        };
        // 2. The rate.
        let rate_step = {
            let mut s = self.shard(rate_fp);
            let step = request
                .rate
                .decide(s.rates.get(&rate_fp).copied(), now.rate_us);
            if step.allowed {
                make_room_for_rate(&mut s, rate_fp, self.shard_capacity, now.rate_us);
                s.rates.insert(rate_fp, step.tat);
            }
            step
        };
        // 3. Refused by the rate: give the quota unit back.
        let quota_step = match (rate_step.allowed, reserved, quota_step) {
            (false, Some((fp, window)), Some(mut q)) => {
                let mut s = self.shard(fp);
                if let Some(cell) = s.quotas.get_mut(&fp)
                    && cell.window == window
                {
                    cell.used = cell.used.saturating_sub(1);
                }
                q.used -= 1;
                q.remaining += 1;
                Some(q)
            }
            (_, _, q) => q,
        };
        Decision {
            rate: rate_step,
            quota: quota_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::quota::{Period, Quota};
    use super::super::{Exceeded, Gcra, LimitKey};
    use super::*;

    const S: u64 = 1_000_000;
    /// 2026-03-02 12:00:00 UTC.
    const NOON: i64 = 1_772_452_800_000;

    /// A fake clock: both clocks advance together.
    #[derive(Debug, Clone, Copy)]
    struct Clock(u64);
    impl Clock {
        fn now(self) -> Now {
            Now {
                rate_us: 1_000 * S + self.0,
                unix_ms: NOON + i64::try_from(self.0 / 1000).unwrap(),
            }
        }
    }

    fn key(consumer: &str) -> LimitKey<'_> {
        LimitKey {
            consumer,
            api: "orders",
            operation: None,
        }
    }

    #[test]
    fn limit_and_burst_are_exact_at_the_boundaries() {
        let l = LocalLimiter::new(1024);
        let g = Gcra::new(10, 1, Some(5)).unwrap();
        let req = LimitRequest {
            key: key("a"),
            rate: &g,
            quota: None,
        };
        let t = Clock(0);
        for i in 0..5 {
            assert!(l.check(&req, t.now()).allowed(), "burst request {i}");
        }
        let refused = l.check(&req, t.now());
        assert_eq!(refused.exceeded(), Some(Exceeded::Rate));
        assert_eq!(refused.retry_after_us(), 100_000);
        assert!(!l.check(&req, Clock(99_999).now()).allowed());
        assert!(l.check(&req, Clock(100_000).now()).allowed());
        assert!(!l.check(&req, Clock(100_000).now()).allowed());
        // Keys are independent; an override has its own bucket.
        let other = LimitRequest {
            key: key("b"),
            ..req
        };
        assert!(l.check(&other, t.now()).allowed());
        let op = LimitRequest {
            key: LimitKey {
                operation: Some("submitOrder"),
                ..key("a")
            },
            ..req
        };
        assert!(l.check(&op, Clock(100_000).now()).allowed());
    }

    #[test]
    fn a_quota_runs_out_and_resets_on_its_period() {
        let l = LocalLimiter::new(1024);
        let g = Gcra::new(1000, 1, None).unwrap();
        let q = Quota {
            limit: 3,
            period: Period::Day,
        };
        let req = LimitRequest {
            key: key("a"),
            rate: &g,
            quota: Some(&q),
        };
        let mut at = Clock(0);
        for remaining in [2, 1, 0] {
            let d = l.check(&req, at.now());
            assert!(d.allowed());
            assert_eq!(d.quota.unwrap().remaining, remaining);
            at.0 += S;
        }
        let d = l.check(&req, at.now());
        assert_eq!(d.exceeded(), Some(Exceeded::Quota));
        // Noon + 3 s: 12 h minus 3 s until midnight UTC.
        assert_eq!(d.retry_after_us(), (12 * 3600 - 3) * S);
        // The refused request consumed nothing of the rate: all 1000 of the burst are left.
        assert_eq!(d.rate.remaining, 1000);
        // One microsecond before midnight: still refused; at midnight: a new period.
        let before_midnight = Clock(12 * 3600 * S - 1_000);
        assert!(!l.check(&req, before_midnight.now()).allowed());
        let midnight = Clock(12 * 3600 * S);
        let d = l.check(&req, midnight.now());
        assert!(d.allowed());
        assert_eq!(d.quota.unwrap().remaining, 2);
    }

    #[test]
    fn a_rate_refusal_does_not_count_against_the_quota() {
        let l = LocalLimiter::new(1024);
        let g = Gcra::new(1, 1, Some(1)).unwrap();
        let q = Quota {
            limit: 10,
            period: Period::Month,
        };
        let req = LimitRequest {
            key: key("a"),
            rate: &g,
            quota: Some(&q),
        };
        assert_eq!(l.check(&req, Clock(0).now()).quota.unwrap().remaining, 9);
        let d = l.check(&req, Clock(0).now());
        assert_eq!(d.exceeded(), Some(Exceeded::Rate));
        assert_eq!(d.quota.unwrap().remaining, 9);
        assert_eq!(l.check(&req, Clock(S).now()).quota.unwrap().remaining, 8);
    }

    #[test]
    fn quotas_checkpoint_and_restore() {
        let l = LocalLimiter::new(1024);
        let g = Gcra::new(1000, 1, None).unwrap();
        let q = Quota {
            limit: 5,
            period: Period::Month,
        };
        let req = LimitRequest {
            key: key("a"),
            rate: &g,
            quota: Some(&q),
        };
        for _ in 0..3 {
            assert!(l.check(&req, Clock(0).now()).allowed());
        }
        let dirty = l.dirty_quotas();
        assert_eq!(dirty.len(), 1);
        assert_eq!((dirty[0].consumer.as_str(), dirty[0].used), ("a", 3));
        assert!(l.dirty_quotas().is_empty(), "clean after a checkpoint");
        // A restarted node.
        let fresh = LocalLimiter::new(1024);
        fresh.restore_quota(&dirty[0], Clock(0).now());
        assert_eq!(l.check(&req, Clock(0).now()).quota.unwrap().remaining, 1);
        assert_eq!(
            fresh.check(&req, Clock(0).now()).quota.unwrap().remaining,
            1
        );
        // A counter of a period that ended is not restored.
        let mut old = dirty[0].clone();
        old.window.end_ms = NOON;
        let empty = LocalLimiter::new(1024);
        empty.restore_quota(&old, Clock(S).now());
        assert_eq!(empty.quota_keys(), 0);
    }

    #[test]
    fn a_million_distinct_keys_stay_within_the_capacity() {
        let capacity = 4096;
        let l = LocalLimiter::new(capacity);
        let g = Gcra::new(1, 60, Some(1)).unwrap();
        let mut peak_slots = 0;
        for i in 0..1_000_000u32 {
            let name = i.to_string();
            let req = LimitRequest {
                key: key(&name),
                rate: &g,
                quota: None,
            };
            // Every key stays active (TAT a minute ahead) the whole time: the lossy path.
            assert!(l.check(&req, Clock(u64::from(i)).now()).allowed());
            if i % 50_000 == 0 {
                peak_slots = peak_slots.max(l.allocated_slots());
                assert!(l.rate_keys() <= l.capacity(), "{} keys", l.rate_keys());
            }
        }
        assert!(l.rate_keys() <= l.capacity());
        // Allocation follows the capacity, not the number of keys seen.
        assert!(peak_slots <= 4 * l.capacity(), "{peak_slots} slots");
        // Idle keys go away by themselves.
        l.sweep(Clock(10 * 60 * S).now());
        assert_eq!(l.rate_keys(), 0);
        assert!(
            l.allocated_slots() <= 2 * 64 * 64 * 2,
            "{}",
            l.allocated_slots()
        );
    }

    #[test]
    fn idle_keys_are_evicted_losslessly_before_active_ones() {
        let l = LocalLimiter::new(64 * 8); // 8 keys per shard
        let slow = Gcra::new(1, 60, Some(1)).unwrap();
        let fast = Gcra::new(1000, 1, Some(1)).unwrap();
        let req = LimitRequest {
            key: key("active"),
            rate: &slow,
            quota: None,
        };
        assert!(l.check(&req, Clock(0).now()).allowed());
        // 100 000 other keys over 50 s, each idle a millisecond after it was seen.
        for i in 0..100_000u64 {
            let name = format!("idle-{i}");
            let r = LimitRequest {
                key: key(&name),
                rate: &fast,
                quota: None,
            };
            assert!(l.check(&r, Clock(i * 500).now()).allowed());
        }
        assert!(l.rate_keys() <= l.capacity());
        // The active key kept its state through the churn: still refused until its minute.
        assert!(!l.check(&req, Clock(59 * S).now()).allowed());
        assert!(l.check(&req, Clock(60 * S).now()).allowed());
    }
}
