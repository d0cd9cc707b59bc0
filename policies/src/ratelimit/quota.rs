//! Quotas: contracted volumes per calendar day or month, in UTC. A quota is a counter per
//! consumer × API and period; the period's start names the counter, so a new period starts
//! from zero without anyone resetting anything.
//!
//! Calendar math is done here on Unix milliseconds (days from civil dates, Howard Hinnant's
//! algorithm), so the policy crate needs no date library and time stays a parameter.

/// A quota period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A UTC calendar day, 00:00 to 24:00.
    Day,
    /// A UTC calendar month, the 1st 00:00 to the next month's 1st.
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The period containing an instant: `[start_ms, end_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// The period of kind `period` that contains `unix_ms`.
    pub fn containing(period: Period, unix_ms: i64) -> Window {
        let day = unix_ms.div_euclid(DAY_MS);
        match period {
            Period::Day => Window {
                start_ms: day * DAY_MS,
                end_ms: (day + 1) * DAY_MS,
            },
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Window {
                    start_ms: days_from_civil(y, m, 1) * DAY_MS,
                    end_ms: days_from_civil(ny, nm, 1) * DAY_MS,
                }
            }
        }
    }

    /// The period's length in whole seconds (the `w` of its `RateLimit-Policy` item).
    pub fn seconds(&self) -> u64 {
        u64::try_from((self.end_ms - self.start_ms) / 1000).unwrap_or(0)
    }

    /// Microseconds from `unix_ms` to the end of the period (0 once it ended).
    pub fn reset_us(&self, unix_ms: i64) -> u64 {
        u64::try_from(self.end_ms.saturating_sub(unix_ms))
            .unwrap_or(0)
            .saturating_mul(1000)
    }
}

/// A quota: `limit` requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

/// What one quota decision found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStep {
    pub allowed: bool,
    /// Requests counted in this period, this one included when allowed.
    pub used: u64,
    /// Requests left in this period after this one.
    pub remaining: u64,
    /// Microseconds until the period ends and the counter starts again from zero.
    pub reset_us: u64,
}

impl Quota {
    /// The same quota shared by `nodes` nodes (while Redis is unreachable).
    pub fn divided(self, nodes: u32) -> Quota {
        Quota {
            limit: self.limit.div_ceil(u64::from(nodes.max(1))).max(1),
            period: self.period,
        }
    }

    /// Decides one request given `used` requests counted before it in `window`.
    pub fn decide(&self, used: u64, window: Window, unix_ms: i64) -> QuotaStep {
        let reset_us = window.reset_us(unix_ms);
        if used >= self.limit {
            QuotaStep {
                allowed: false,
                used,
                remaining: 0,
                reset_us,
            }
        } else {
            QuotaStep {
                allowed: true,
                used: used + 1,
                remaining: self.limit - used - 1,
                reset_us,
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: u32, d: u32, h: i64, min: i64, s: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + (h * 3600 + min * 60 + s) * 1000
    }

    #[test]
    fn civil_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    /// Data-driven: instant → period bounds, at and around the edges (UTC).
    #[test]
    fn windows_at_the_edges() {
        let table = [
            (
                Period::Day,
                ms(2026, 3, 2, 0, 0, 0),
                ms(2026, 3, 2, 0, 0, 0),
                ms(2026, 3, 3, 0, 0, 0),
            ),
            (
                Period::Day,
                ms(2026, 3, 2, 23, 59, 59) + 999,
                ms(2026, 3, 2, 0, 0, 0),
                ms(2026, 3, 3, 0, 0, 0),
            ),
            (
                Period::Month,
                ms(2026, 1, 31, 23, 59, 59),
                ms(2026, 1, 1, 0, 0, 0),
                ms(2026, 2, 1, 0, 0, 0),
            ),
            (
                Period::Month,
                ms(2026, 2, 1, 0, 0, 0),
                ms(2026, 2, 1, 0, 0, 0),
                ms(2026, 3, 1, 0, 0, 0),
            ),
            // Leap February; December rolls the year.
            (
                Period::Month,
                ms(2028, 2, 29, 12, 0, 0),
                ms(2028, 2, 1, 0, 0, 0),
                ms(2028, 3, 1, 0, 0, 0),
            ),
            (
                Period::Month,
                ms(2026, 12, 31, 23, 0, 0),
                ms(2026, 12, 1, 0, 0, 0),
                ms(2027, 1, 1, 0, 0, 0),
            ),
            (Period::Day, -1, -DAY_MS, 0),
        ];
        for (period, at, start, end) in table {
            let w = Window::containing(period, at);
            assert_eq!((w.start_ms, w.end_ms), (start, end), "{period:?} at {at}");
        }
        assert_eq!(
            Window::containing(Period::Month, ms(2028, 2, 10, 0, 0, 0)).seconds(),
            29 * 86_400
        );
        assert_eq!(Window::containing(Period::Day, 0).seconds(), 86_400);
    }

    #[test]
    fn a_quota_runs_out_exactly_and_reports_the_period_end() {
        let q = Quota {
            limit: 3,
            period: Period::Day,
        };
        let now = ms(2026, 3, 2, 18, 0, 0);
        let w = Window::containing(q.period, now);
        let steps: Vec<_> = (0..5).map(|used| q.decide(used, w, now)).collect();
        assert_eq!(
            steps
                .iter()
                .map(|s| (s.allowed, s.remaining))
                .collect::<Vec<_>>(),
            vec![(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        assert_eq!(steps[0].reset_us, 6 * 3600 * 1_000_000);
        assert_eq!(
            Quota {
                limit: 5,
                period: Period::Month
            }
            .divided(2)
            .limit,
            3
        );
    }
}
