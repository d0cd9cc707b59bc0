//! Access records: one per gateway request, refusals included. What the gateway writes, what
//! the store keeps, how auditors filter, page and export them, and who still calls a version.
//!
//! A record never holds a secret: credentials are named by their key id or token subject,
//! never their value, and the raw path's query string has the values of sensitive parameters
//! removed before the record is made (`gatehouse_policies::redact`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// What the gateway decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Passed every check and was answered by the upstream (or its mock).
    Allowed,
    /// Refused by the gateway itself (4xx: routing, lifecycle, identity, limits, validation).
    Refused,
    /// Allowed, but no answer came: the upstream failed (502/503/504), the gateway failed, or
    /// the client went away.
    Failed,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Allowed, Decision::Refused, Decision::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Refused => "refused",
            Decision::Failed => "failed",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decision (allowed, refused, failed)")]
pub struct UnknownDecision(pub String);

impl FromStr for Decision {
    type Err = UnknownDecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDecision(s.to_owned()))
    }
}

/// Facts about a request beyond its status, kept as a bit set (`flags` column) and shown as
/// a list of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessFlags(u8);

impl AccessFlags {
    /// The upstream's response did not match the operation's contract.
    pub const RESPONSE_INVALID: AccessFlags = AccessFlags(1);
    /// The version called is deprecated.
    pub const DEPRECATED: AccessFlags = AccessFlags(2);
    /// The version was in a scheduled brownout (and answered 410).
    pub const BROWNOUT: AccessFlags = AccessFlags(4);

    const NAMES: [(AccessFlags, &'static str); 3] = [
        (AccessFlags::RESPONSE_INVALID, "response_invalid"),
        (AccessFlags::DEPRECATED, "deprecated"),
        (AccessFlags::BROWNOUT, "brownout"),
    ];

    pub fn empty() -> Self {
        AccessFlags(0)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        AccessFlags(bits & 0b111)
    }

    pub fn contains(self, other: AccessFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: AccessFlags) {
        self.0 |= other.0;
    }

    /// The names of the flags set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        AccessFlags::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl Serialize for AccessFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for AccessFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<String> = Vec::deserialize(d)?;
        let mut flags = AccessFlags::empty();
        for name in names {
            match AccessFlags::NAMES.iter().find(|(_, n)| *n == name) {
                Some((f, _)) => flags.insert(*f),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "`{name}` is not an access flag"
                    )));
                }
            }
        }
        Ok(flags)
    }
}

/// One gateway request as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// A UUIDv7 the gateway gives the record: with `at`, the key that makes replays idempotent.
    pub id: String,
    /// When the request arrived (whole milliseconds).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `X-Request-Id`: the client's or the gateway's.
    pub request_id: String,
    /// The W3C trace id (32 hex digits) forwarded upstream.
    pub trace_id: Option<String>,
    /// The consumer the credential identified, when identity got that far.
    pub consumer: Option<String>,
    /// The id of the API key used (never the key).
    pub key_id: Option<String>,
    /// The `sub` of the bearer token used (never the token).
    pub subject: Option<String>,
    pub api: Option<String>,
    pub major: Option<u64>,
    /// The semantic version that served the major, e.g. `2.1.0`.
    pub version: Option<String>,
    /// The operation id (or `METHOD /template`) matched.
    pub operation: Option<String>,
    pub method: String,
    /// The matched path template, e.g. `/availability/{sku}`.
    pub path_template: Option<String>,
    /// The raw path and query, sensitive query values removed.
    pub path: String,
    /// The status sent to the client (0: none was sent).
    pub status: u16,
    pub decision: Decision,
    /// The problem `type` of the gateway's own answer (refusals and failures).
    pub reason: Option<String>,
    /// Total time, microseconds.
    pub duration_us: u64,
    /// Time spent waiting for the upstream, microseconds.
    pub upstream_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The peer's IP address.
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    pub flags: AccessFlags,
}

/// The status filter of the access log: an exact code (`404`) or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Code(u16),
    /// 1 to 5.
    Class(u8),
}

impl StatusFilter {
    /// The inclusive range of codes this filter matches.
    pub fn range(self) -> (u16, u16) {
        match self {
            StatusFilter::Code(c) => (c, c),
            StatusFilter::Class(c) => (u16::from(c) * 100, u16::from(c) * 100 + 99),
        }
    }
}

impl FromStr for StatusFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a status (e.g. 404) or a class (e.g. 4xx)");
        let lower = s.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u8>() {
                Ok(c @ 1..=5) => Ok(StatusFilter::Class(c)),
                _ => Err(bad()),
            };
        }
        match s.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(StatusFilter::Code(code)),
            _ => Err(bad()),
        }
    }
}

/// Where a page of the access log ends: the key of its last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCursor {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub id: String,
}

impl AccessCursor {
    /// The cursor after `record`.
    pub fn after(record: &AccessRecord) -> Self {
        AccessCursor {
            at_ms: crate::model::unix_ms(record.at),
            id: record.id.clone(),
        }
    }

    /// `<at_ms>:<id>`; the admin API wraps it in base64.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.at_ms, self.id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once(':')?;
        Some(AccessCursor {
            at_ms: at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// Filters of the access log (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// Records at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Records before this time (exclusive).
    pub to: Option<OffsetDateTime>,
    pub consumer: Option<String>,
    pub api: Option<String>,
    pub major: Option<u64>,
    pub status: Option<StatusFilter>,
    pub decision: Option<Decision>,
    /// Only records after this one (the cursor).
    pub after: Option<AccessCursor>,
    /// Pages: 0 means 100, larger values are capped at 1000. Streams: 0 means no limit.
    pub limit: u32,
}

/// Calls of one consumer to one operation of an API major, in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationCallers {
    /// `None`: calls no credential identified.
    pub consumer: Option<String>,
    pub operation: String,
    pub calls: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// The columns of a CSV export, in order; also the field order of each row.
pub const CSV_COLUMNS: [&str; 24] = [
    "at",
    "id",
    "request_id",
    "trace_id",
    "consumer",
    "key_id",
    "subject",
    "api",
    "major",
    "version",
    "operation",
    "method",
    "path_template",
    "path",
    "status",
    "decision",
    "reason",
    "duration_us",
    "upstream_us",
    "bytes_in",
    "bytes_out",
    "client_addr",
    "user_agent",
    "flags",
];

/// The CSV header line (RFC 4180, CRLF-terminated).
pub fn csv_header() -> String {
    let mut line = CSV_COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// Appends one field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(out: &mut String, value: &str) {
    if value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

impl AccessRecord {
    /// The record as one CSV line in [`CSV_COLUMNS`] order (times RFC 3339, flags joined by
    /// `|`), CRLF-terminated. Written straight into one buffer: exports call it per row.
    pub fn to_csv_line(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(384);
        let text = |out: &mut String, v: &str| {
            out.push(',');
            csv_field(out, v);
        };
        let opt = |out: &mut String, v: &Option<String>| {
            out.push(',');
            if let Some(v) = v {
                csv_field(out, v);
            }
        };
        let at = self
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        out.push_str(&at);
        text(&mut out, &self.id);
        text(&mut out, &self.request_id);
        opt(&mut out, &self.trace_id);
        opt(&mut out, &self.consumer);
        opt(&mut out, &self.key_id);
        opt(&mut out, &self.subject);
        opt(&mut out, &self.api);
        out.push(',');
        if let Some(m) = self.major {
            let _ = write!(out, "{m}");
        }
        opt(&mut out, &self.version);
        opt(&mut out, &self.operation);
        text(&mut out, &self.method);
        opt(&mut out, &self.path_template);
        text(&mut out, &self.path);
        let _ = write!(out, ",{},{}", self.status, self.decision.as_str());
        opt(&mut out, &self.reason);
        let _ = write!(
            out,
            ",{},{},{},{}",
            self.duration_us, self.upstream_us, self.bytes_in, self.bytes_out
        );
        opt(&mut out, &self.client_addr);
        opt(&mut out, &self.user_agent);
        out.push(',');
        for (i, name) in self.flags.names().enumerate() {
            if i > 0 {
                out.push('|');
            }
            out.push_str(name);
        }
        out.push_str("\r\n");
        out
    }

    /// The record as one line of NDJSON (its JSON form and `\n`).
    pub fn to_ndjson_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record() -> AccessRecord {
        AccessRecord {
            id: "0190a0b0-0000-7000-8000-000000000001".into(),
            at: datetime!(2026-03-02 12:00:00.123 UTC),
            request_id: "req-1".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            consumer: Some("b2b-portal".into()),
            key_id: Some("gh_k7f3a9c2".into()),
            subject: None,
            api: Some("inventory".into()),
            major: Some(2),
            version: Some("2.1.0".into()),
            operation: Some("getAvailability".into()),
            method: "GET".into(),
            path_template: Some("/availability/{sku}".into()),
            path: "/inventory/v2/availability/SKU-1?note=a,\"b\"".into(),
            status: 200,
            decision: Decision::Allowed,
            reason: None,
            duration_us: 1500,
            upstream_us: 1200,
            bytes_in: 0,
            bytes_out: 321,
            client_addr: Some("127.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            flags: AccessFlags::DEPRECATED,
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let line = record().to_csv_line();
        assert!(
            line.starts_with("2026-03-02T12:00:00.123Z,0190a0b0-"),
            "{line}"
        );
        assert!(
            line.contains(",\"/inventory/v2/availability/SKU-1?note=a,\"\"b\"\"\","),
            "{line}"
        );
        assert!(line.ends_with(",curl/8,deprecated\r\n"), "{line}");
        assert_eq!(csv_header().split(',').count(), CSV_COLUMNS.len());
        let mut plain = record();
        plain.path = "/inventory/v2/availability/SKU-1".into();
        plain.flags.insert(AccessFlags::BROWNOUT);
        let line = plain.to_csv_line();
        assert_eq!(line.split(',').count(), CSV_COLUMNS.len(), "{line}");
        assert!(line.ends_with(",deprecated|brownout\r\n"), "{line}");
        plain.major = None;
        plain.trace_id = None;
        assert_eq!(plain.to_csv_line().split(',').count(), CSV_COLUMNS.len());
    }

    #[test]
    fn json_round_trips_with_flag_names() {
        let r = record();
        let line = r.to_ndjson_line();
        assert!(line.contains("\"flags\":[\"deprecated\"]"), "{line}");
        let back: AccessRecord = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn status_filters() {
        assert_eq!("404".parse(), Ok(StatusFilter::Code(404)));
        assert_eq!("5xx".parse(), Ok(StatusFilter::Class(5)));
        assert_eq!(StatusFilter::Class(4).range(), (400, 499));
        assert!("6xx".parse::<StatusFilter>().is_err());
        assert!("99".parse::<StatusFilter>().is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let c = AccessCursor::after(&record());
        assert_eq!(AccessCursor::decode(&c.encode()), Some(c));
        assert_eq!(AccessCursor::decode("nope"), None);
    }
}
