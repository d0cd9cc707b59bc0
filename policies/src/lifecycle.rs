//! Lifecycle on the wire: the `Deprecation`, `Sunset` and `Link` headers of a version, and
//! the decision "does this version answer 410 now?". Time is a parameter.
//!
//! - `Deprecation: @<unix seconds>` (RFC 9745, a structured-field date).
//! - `Sunset: <IMF-fixdate>` (RFC 8594), whenever a sunset is set.
//! - `Link: <…>; rel="successor-version"` (RFC 5829) and `Link: <…>; rel="deprecation"`
//!   (RFC 9745), in one `Link` field.
//!
//! A version answers 410 when it is retired, when it is deprecated and its sunset has passed,
//! or when it is deprecated and `now` falls inside one of its brownout windows `[start, end)`.
//! The headers do not depend on `now`, so the snapshot computes them once per version;
//! [`Lifecycle::verdict`] is the only per-request work (a few comparisons).

use crate::problem::ProblemKind;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lifecycle stages the gateway routes (drafts are never routed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Published,
    Deprecated,
    Retired,
}

/// A brownout window: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

impl Window {
    pub fn contains(&self, now: SystemTime) -> bool {
        self.start <= now && now < self.end
    }
}

/// Everything the gateway knows about where a version stands in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub stage: Stage,
    /// When the version was (or will be) deprecated.
    pub deprecated_at: Option<SystemTime>,
    pub sunset_at: Option<SystemTime>,
    /// A URI reference to the successor, e.g. `/inventory/v2`.
    pub successor: Option<String>,
    /// A link to human-readable deprecation information.
    pub deprecation_link: Option<String>,
    pub brownouts: Vec<Window>,
}

/// Why a version answers 410.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    Retired,
    PastSunset { sunset: SystemTime },
    Brownout { until: SystemTime },
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    Gone(GoneReason),
}

impl GoneReason {
    /// The problem kind of the 410.
    pub fn kind(self) -> ProblemKind {
        match self {
            GoneReason::Brownout { .. } => ProblemKind::Brownout,
            GoneReason::Retired | GoneReason::PastSunset { .. } => ProblemKind::Gone,
        }
    }

    /// The explicit `Cache-Control` of the 410. A retirement is final, so caches may keep the
    /// answer for an hour; a brownout is temporary and must not be cached at all.
    pub fn cache_control(self) -> &'static str {
        match self {
            GoneReason::Brownout { .. } => "no-store",
            GoneReason::Retired | GoneReason::PastSunset { .. } => "public, max-age=3600",
        }
    }

    /// `Retry-After` seconds for a brownout: when the window closes (rounded up).
    pub fn retry_after(self, now: SystemTime) -> Option<u64> {
        match self {
            GoneReason::Brownout { until } => {
                let left = until.duration_since(now).unwrap_or(Duration::ZERO);
                Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
            }
            _ => None,
        }
    }

    /// The problem's `detail` for `{api}` version `{version}`.
    pub fn detail(self, api: &str, version: &str, successor: Option<&str>) -> String {
        let what = match self {
            GoneReason::Retired => format!("{api} {version} is retired"),
            GoneReason::PastSunset { sunset } => format!(
                "{api} {version} passed its sunset on {}",
                httpdate::fmt_http_date(sunset)
            ),
            GoneReason::Brownout { until } => format!(
                "{api} {version} is deprecated and in a scheduled brownout until {}",
                httpdate::fmt_http_date(until)
            ),
        };
        match successor {
            Some(s) => format!("{what}; use its successor {s}"),
            None => what,
        }
    }
}

/// Seconds since the Unix epoch, clamped at 0 for earlier times.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Lifecycle {
    /// A published version with nothing scheduled.
    pub fn published() -> Self {
        Lifecycle {
            stage: Stage::Published,
            deprecated_at: None,
            sunset_at: None,
            successor: None,
            deprecation_link: None,
            brownouts: Vec::new(),
        }
    }

    /// The response headers this version carries, on success and on 410 alike. Computed once
    /// when the snapshot is built.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.stage != Stage::Published
            && let Some(at) = self.deprecated_at
        {
            out.push(("deprecation", format!("@{}", unix_seconds(at))));
        }
        if let Some(sunset) = self.sunset_at {
            out.push(("sunset", httpdate::fmt_http_date(sunset)));
        }
        let mut links = Vec::new();
        if self.stage != Stage::Published {
            if let Some(s) = &self.successor {
                links.push(format!("<{s}>; rel=\"successor-version\""));
            }
            if let Some(d) = &self.deprecation_link {
                links.push(format!("<{d}>; rel=\"deprecation\"; type=\"text/html\""));
            }
        }
        if !links.is_empty() {
            out.push(("link", links.join(", ")));
        }
        out
    }

    /// Whether this version answers 410 at `now`, and why.
    pub fn verdict(&self, now: SystemTime) -> Verdict {
        match self.stage {
            Stage::Published => Verdict::Serve,
            Stage::Retired => Verdict::Gone(GoneReason::Retired),
            Stage::Deprecated => {
                if let Some(sunset) = self.sunset_at
                    && sunset <= now
                {
                    return Verdict::Gone(GoneReason::PastSunset { sunset });
                }
                match self.brownouts.iter().find(|w| w.contains(now)) {
                    Some(w) => Verdict::Gone(GoneReason::Brownout { until: w.end }),
                    None => Verdict::Serve,
                }
            }
        }
    }

    /// Whether any 410 can happen at all (a cheap pre-check for the hot path).
    pub fn may_refuse(&self) -> bool {
        self.stage != Stage::Published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn deprecated() -> Lifecycle {
        Lifecycle {
            stage: Stage::Deprecated,
            deprecated_at: Some(at(1_688_169_599)),
            sunset_at: Some(at(1_700_000_000)),
            successor: Some("/inventory/v2".into()),
            deprecation_link: Some("https://dev.northwind.example/inventory/v1-sunset".into()),
            brownouts: vec![Window {
                start: at(1_690_000_000),
                end: at(1_690_003_600),
            }],
        }
    }

    #[test]
    fn deprecated_versions_carry_rfc_9745_and_8594_headers() {
        let h = deprecated().headers();
        assert_eq!(
            h,
            vec![
                ("deprecation", "@1688169599".to_owned()),
                ("sunset", "Tue, 14 Nov 2023 22:13:20 GMT".to_owned()),
                (
                    "link",
                    "</inventory/v2>; rel=\"successor-version\", \
                     <https://dev.northwind.example/inventory/v1-sunset>; rel=\"deprecation\"; type=\"text/html\""
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn published_versions_carry_only_a_sunset_when_one_is_set() {
        assert!(Lifecycle::published().headers().is_empty());
        let mut l = Lifecycle::published();
        l.sunset_at = Some(at(0));
        l.successor = Some("/x/v2".into());
        assert_eq!(
            l.headers(),
            vec![("sunset", "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())]
        );
    }

    #[test]
    fn verdict_table() {
        let d = deprecated();
        let cases = [
            (d.clone(), at(1_689_999_999), Verdict::Serve),
            (
                d.clone(),
                at(1_690_000_000),
                Verdict::Gone(GoneReason::Brownout {
                    until: at(1_690_003_600),
                }),
            ),
            (d.clone(), at(1_690_003_600), Verdict::Serve),
            (d.clone(), at(1_699_999_999), Verdict::Serve),
            (
                d.clone(),
                at(1_700_000_000),
                Verdict::Gone(GoneReason::PastSunset {
                    sunset: at(1_700_000_000),
                }),
            ),
            (
                Lifecycle {
                    stage: Stage::Retired,
                    ..d.clone()
                },
                at(0),
                Verdict::Gone(GoneReason::Retired),
            ),
            // Brownouts and sunsets only bite deprecated versions.
            (
                Lifecycle {
                    stage: Stage::Published,
                    ..d.clone()
                },
                at(1_700_000_001),
                Verdict::Serve,
            ),
        ];
        for (l, now, want) in cases {
            assert_eq!(
                l.verdict(now),
                want,
                "{:?} at {}",
                l.stage,
                unix_seconds(now)
            );
        }
    }

    #[test]
    fn gone_answers_say_how_long_to_cache_and_name_the_successor() {
        let b = GoneReason::Brownout {
            until: at(1_690_003_600),
        };
        assert_eq!(b.kind(), ProblemKind::Brownout);
        assert_eq!(b.cache_control(), "no-store");
        assert_eq!(b.retry_after(at(1_690_000_000)), Some(3600));
        assert_eq!(
            b.retry_after(at(1_690_000_000) + Duration::from_millis(1)),
            Some(3600)
        );
        let r = GoneReason::Retired;
        assert_eq!(r.kind(), ProblemKind::Gone);
        assert_eq!(r.cache_control(), "public, max-age=3600");
        assert_eq!(r.retry_after(at(0)), None);
        assert_eq!(
            r.detail("inventory", "1.4.0", Some("/inventory/v2")),
            "inventory 1.4.0 is retired; use its successor /inventory/v2"
        );
        assert!(
            GoneReason::PastSunset {
                sunset: at(1_700_000_000)
            }
            .detail("inventory", "1.4.0", None)
            .ends_with("Tue, 14 Nov 2023 22:13:20 GMT")
        );
    }
}
