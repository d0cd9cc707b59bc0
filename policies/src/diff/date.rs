//! Calendar dates for `x-sunset` comparisons. The diff never reads the clock: the caller
//! passes "today" as a [`Date`].

use std::fmt;
use std::str::FromStr;
use std::time::UNIX_EPOCH;

/// A civil (proleptic Gregorian) date, compared day by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a date (use YYYY-MM-DD, an RFC 3339 date-time or an HTTP-date)")]
pub struct InvalidDate {
    pub text: String,
}

impl Date {
    /// A date from its parts, or `None` when it does not exist (e.g. 2026-02-30).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(Date { year, month, day })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn from_unix_days(days: i64) -> Option<Date> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u8::try_from(doy - (153 * mp + 2) / 5 + 1).ok()?;
        let month = u8::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).ok()?;
        let year = i32::try_from(yoe + era * 400 + i64::from(month <= 2)).ok()?;
        Date::new(year, month, day)
    }
}

impl FromStr for Date {
    type Err = InvalidDate;

    /// Reads `2026-09-30`, an RFC 3339 date-time (its date part, as written) or an
    /// HTTP-date such as `Wed, 30 Sep 2026 00:00:00 GMT` (the `Sunset` header's form).
    fn from_str(text: &str) -> Result<Date, InvalidDate> {
        let invalid = || InvalidDate {
            text: text.to_owned(),
        };
        let t = text.trim();
        let date_part = t.get(..10).and_then(ymd);
        if let Some(date) =
            date_part.filter(|_| t.len() == 10 || t[10..].starts_with(['T', 't', ' ']))
        {
            return Ok(date);
        }
        let time = httpdate::parse_http_date(t).map_err(|_| invalid())?;
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid())?
            .as_secs();
        let days = i64::try_from(secs / 86_400).map_err(|_| invalid())?;
        Date::from_unix_days(days).ok_or_else(invalid)
    }
}

fn ymd(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = u8::try_from(digits(5..7)?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    Date::new(year, month, day)
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_spellings() {
        let d = Date::new(2026, 9, 30).unwrap();
        assert_eq!("2026-09-30".parse::<Date>().unwrap(), d);
        assert_eq!("2026-09-30T23:59:59Z".parse::<Date>().unwrap(), d);
        assert_eq!("Wed, 30 Sep 2026 00:00:00 GMT".parse::<Date>().unwrap(), d);
        assert_eq!(d.to_string(), "2026-09-30");
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "soon",
            "2026-9-30",
            "2026-09-30x",
            "",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("2100-02-29".parse::<Date>().is_err());
    }

    #[test]
    fn orders_by_day() {
        let a: Date = "2026-01-31".parse().unwrap();
        let b: Date = "2026-02-01".parse().unwrap();
        assert!(a < b);
    }

    #[test]
    fn unix_days_round_trip_known_dates() {
        assert_eq!(Date::from_unix_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix_days(19_723), Date::new(2024, 1, 1));
        assert_eq!(Date::from_unix_days(-1), Date::new(1969, 12, 31));
    }
}
