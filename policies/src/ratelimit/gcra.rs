//! GCRA (the generic cell rate algorithm): the rate half of a plan as one stored number per
//! key, the theoretical arrival time (TAT). Local and Redis modes share this math: the Redis
//! script mirrors only [`Gcra::admits`], and every figure a client sees (remaining, reset,
//! retry-after) is computed here from what the script returns, so both modes answer alike.
//!
//! Times are microseconds on one clock (any epoch). With emission interval `T` = window ÷
//! requests and capacity `B` (the burst), a request at `now` is admitted when
//! `max(TAT, now) − now ≤ (B − 1)·T`, and then `TAT ← max(TAT, now) + T`. From a full
//! bucket, any span `d` admits at most `B + ⌊d ÷ T⌋` requests: the rate plus one burst.
//!
//! `T` is rounded *up* to a whole microsecond, so rounding can only make the limit
//! stricter (by less than one microsecond per request), never looser.

/// Why a rate could not be turned into GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("a rate needs at least 1 request per at least 1 second")]
    Zero,
    #[error("a burst must be at least 1")]
    ZeroBurst,
}

/// One rate as GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// `T`: microseconds between two requests at the sustained rate (rounded up).
    interval_us: u64,
    /// `B`: how many requests may arrive at once from a full bucket.
    burst: u32,
}

/// What one decision found for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraStep {
    pub allowed: bool,
    /// The TAT to store: the new one when allowed, the unchanged one when refused.
    pub tat: u64,
    /// Requests that would still be admitted right now, after this one.
    pub remaining: u32,
    /// Microseconds until the bucket is full again (nothing of the burst used).
    pub reset_us: u64,
    /// Microseconds until a request would be admitted (0 when allowed).
    pub retry_after_us: u64,
}

impl Gcra {
    /// `requests` per `per_seconds`, with `burst` requests at once (default: `requests`).
    pub fn new(requests: u32, per_seconds: u32, burst: Option<u32>) -> Result<Self, RateError> {
        if requests == 0 || per_seconds == 0 {
            return Err(RateError::Zero);
        }
        let burst = burst.unwrap_or(requests);
        if burst == 0 {
            return Err(RateError::ZeroBurst);
        }
        let window_us = u64::from(per_seconds) * 1_000_000;
        Ok(Gcra {
            interval_us: window_us.div_ceil(u64::from(requests)),
            burst,
        })
    }

    /// The same rate shared by `nodes` nodes: each admits 1/`nodes` of the rate and of the
    /// burst (at least one request). Used while Redis is unreachable and nodes fall back to
    /// local limits.
    pub fn divided(self, nodes: u32) -> Gcra {
        let nodes = nodes.max(1);
        Gcra {
            interval_us: self.interval_us.saturating_mul(u64::from(nodes)),
            burst: self.burst.div_ceil(nodes).max(1),
        }
    }

    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `τ = (B − 1)·T`: how far the TAT may run ahead of `now` and still admit.
    pub fn tolerance_us(&self) -> u64 {
        u64::from(self.burst - 1).saturating_mul(self.interval_us)
    }

    /// The admission rule alone (what the Redis script mirrors): `tat0` is `max(TAT, now)`.
    pub fn admits(&self, tat0: u64, now: u64) -> bool {
        tat0.saturating_sub(now) <= self.tolerance_us()
    }

    /// Decides one request at `now` for a key whose stored TAT is `tat` (`None`: never seen,
    /// or evicted while idle, which is the same thing).
    pub fn decide(&self, tat: Option<u64>, now: u64) -> GcraStep {
        let tat0 = tat.map_or(now, |t| t.max(now));
        if self.admits(tat0, now) {
            let new = tat0.saturating_add(self.interval_us);
            GcraStep {
                allowed: true,
                tat: new,
                remaining: self.remaining(new, now),
                reset_us: new - now,
                retry_after_us: 0,
            }
        } else {
            GcraStep {
                allowed: false,
                tat: tat0,
                remaining: 0,
                reset_us: tat0 - now,
                retry_after_us: tat0 - now - self.tolerance_us(),
            }
        }
    }

    /// The state at `now` without consuming anything: what a request refused by something
    /// else (the quota) reports for the rate. `allowed` says whether a request would pass.
    pub fn peek(&self, tat: Option<u64>, now: u64) -> GcraStep {
        let tat0 = tat.map_or(now, |t| t.max(now));
        let allowed = self.admits(tat0, now);
        GcraStep {
            allowed,
            tat: tat0,
            remaining: self.remaining(tat0, now),
            reset_us: tat0 - now,
            retry_after_us: if allowed {
                0
            } else {
                tat0 - now - self.tolerance_us()
            },
        }
    }

    /// Requests admissible at `now` with the TAT at `tat` (≥ `now`): `⌊(B·T − (tat − now)) ÷ T⌋`.
    fn remaining(&self, tat: u64, now: u64) -> u32 {
        let capacity = u128::from(self.burst) * u128::from(self.interval_us);
        let used = u128::from(tat.saturating_sub(now));
        let left = capacity.saturating_sub(used) / u128::from(self.interval_us.max(1));
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    /// A TAT at or before `now` carries no information: the key is as good as absent, so
    /// dropping it is lossless. Limiters evict such keys first.
    pub fn is_idle(tat: u64, now: u64) -> bool {
        tat <= now
    }
}

/// Whole seconds for a header: rounded up, so a client that waits that long is admitted.
pub fn ceil_seconds(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn parameters() {
        let g = Gcra::new(10, 1, Some(5)).unwrap();
        assert_eq!(
            (g.interval_us(), g.burst(), g.tolerance_us()),
            (100_000, 5, 400_000)
        );
        // Rounded up: never looser than asked.
        assert_eq!(Gcra::new(3, 1, None).unwrap().interval_us(), 333_334);
        assert_eq!(Gcra::new(0, 1, None), Err(RateError::Zero));
        assert_eq!(Gcra::new(1, 0, None), Err(RateError::Zero));
        assert_eq!(Gcra::new(1, 1, Some(0)), Err(RateError::ZeroBurst));
        let d = Gcra::new(10, 1, Some(5)).unwrap().divided(2);
        assert_eq!((d.interval_us(), d.burst()), (200_000, 3));
        assert_eq!(Gcra::new(10, 1, Some(1)).unwrap().divided(4).burst(), 1);
    }

    #[test]
    fn fresh_key_admits_exactly_the_burst_at_one_instant() {
        for (requests, per, burst) in [(10, 1, 5), (1, 1, 1), (100, 60, 100), (7, 3, 20)] {
            let g = Gcra::new(requests, per, Some(burst)).unwrap();
            let now = 1_000 * S;
            let mut tat = None;
            for i in 0..burst {
                let s = g.decide(tat, now);
                assert!(s.allowed, "{requests}/{per}s burst {burst}: request {i}");
                assert_eq!(s.remaining, burst - i - 1);
                tat = Some(s.tat);
            }
            let s = g.decide(tat, now);
            assert!(!s.allowed);
            assert_eq!(s.remaining, 0);
            // The next one is admitted exactly one interval later, not a microsecond before.
            assert_eq!(s.retry_after_us, g.interval_us());
            assert!(!g.decide(tat, now + g.interval_us() - 1).allowed);
            assert!(g.decide(tat, now + g.interval_us()).allowed);
        }
    }

    /// Data-driven: (offset µs from start, expected admitted?) for 10 req/s, burst 3.
    #[test]
    fn boundaries_table() {
        let g = Gcra::new(10, 1, Some(3)).unwrap();
        let t0 = 5 * S;
        let table: &[(u64, bool, u32)] = &[
            (0, true, 2),
            (0, true, 1),
            (0, true, 0),
            (0, false, 0),
            (99_999, false, 0),
            (100_000, true, 0),
            (100_000, false, 0),
            (150_000, false, 0),
            (200_000, true, 0),
            // Idle long enough to refill completely: the full burst again.
            (1_000_000, true, 2),
            (1_000_000, true, 1),
            (1_000_000, true, 0),
            (1_000_000, false, 0),
        ];
        let mut tat = None;
        for (i, &(at, allowed, remaining)) in table.iter().enumerate() {
            let s = g.decide(tat, t0 + at);
            assert_eq!(
                (s.allowed, s.remaining),
                (allowed, remaining),
                "row {i}: {s:?}"
            );
            tat = Some(s.tat);
        }
    }

    #[test]
    fn reset_and_retry_after() {
        let g = Gcra::new(2, 1, Some(2)).unwrap(); // T = 0.5 s
        let s1 = g.decide(None, 0);
        assert_eq!((s1.reset_us, s1.retry_after_us), (500_000, 0));
        let s2 = g.decide(Some(s1.tat), 0);
        assert_eq!(s2.reset_us, S);
        let s3 = g.decide(Some(s2.tat), 0);
        assert!(!s3.allowed);
        assert_eq!((s3.reset_us, s3.retry_after_us), (S, 500_000));
        assert_eq!(ceil_seconds(s3.retry_after_us), 1);
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(0), 0);
        assert!(Gcra::is_idle(s2.tat, S) && !Gcra::is_idle(s2.tat, S - 1));
        // Peeking consumes nothing and agrees with deciding.
        let p = g.peek(Some(s1.tat), 0);
        assert_eq!((p.allowed, p.remaining, p.tat), (true, 1, s1.tat));
        let p = g.peek(Some(s2.tat), 0);
        assert_eq!(
            (p.allowed, p.remaining, p.retry_after_us),
            (false, 0, 500_000)
        );
    }

    #[test]
    fn sustained_overload_admits_rate_plus_one_burst() {
        // 3× the allowed rate for 10 s: at most rate·10 s + burst get through.
        let g = Gcra::new(20, 1, Some(10)).unwrap();
        let mut tat = None;
        let mut admitted = 0u64;
        let step = S / 60;
        for i in 0..600u64 {
            let s = g.decide(tat, i * step);
            admitted += u64::from(s.allowed);
            tat = Some(s.tat);
        }
        assert!(admitted <= 20 * 10 + 10, "{admitted}");
        assert!(admitted >= 20 * 10, "{admitted}");
    }
}
