//! Request identity and forwarding headers: `X-Request-Id`, W3C `traceparent`,
//! `X-Forwarded-For/-Proto/-Host`, and what must never cross the gateway (client credentials,
//! hop-by-hop fields).
//!
//! Pure functions over header values, so they are tested without a socket.

/// Credentials the gateway consumes and never forwards.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "proxy-authorization"];

/// Hop-by-hop fields (RFC 9110 section 7.6.1) removed from upstream responses. Pingora strips
/// them from requests itself (its standard upstream request policy) and manages `Connection`
/// and `Transfer-Encoding` framing on both sides.
pub const HOP_BY_HOP_RESPONSE: [&str; 5] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "trailer",
    "upgrade",
];

/// Accepts a client's `X-Request-Id` when it is 1-128 visible ASCII characters without
/// separators that would break logs or CSV exports; otherwise the gateway makes its own.
pub fn accept_request_id(value: &[u8]) -> Option<&str> {
    if value.is_empty()
        || value.len() > 128
        || !value.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
    {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// A fresh request id: a UUIDv7 (time-ordered, so access records sort by it).
pub fn new_request_id() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// A W3C trace context as forwarded upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The `traceparent` value sent upstream.
    pub traceparent: String,
    /// Whether it came from the client (kept) or was started here.
    pub started_here: bool,
}

impl Trace {
    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or("")
    }
}

/// Keeps a valid `traceparent` (version `00`, non-zero ids, lower-case hex) or starts a new
/// trace with random ids and the sampled flag.
pub fn trace_context(incoming: Option<&[u8]>) -> Trace {
    if let Some(v) = incoming.and_then(valid_traceparent) {
        return Trace {
            traceparent: v.to_owned(),
            started_here: false,
        };
    }
    let trace: u128 = rand::random::<u128>().max(1);
    let parent: u64 = rand::random::<u64>().max(1);
    Trace {
        traceparent: format!("00-{trace:032x}-{parent:016x}-01"),
        started_here: true,
    }
}

fn valid_traceparent(v: &[u8]) -> Option<&str> {
    // 00-<32 hex>-<16 hex>-<2 hex>
    if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let (trace, parent, flags) = (&v[3..35], &v[36..52], &v[53..55]);
    if !hex(trace) || !hex(parent) || !hex(flags) {
        return None;
    }
    if trace.iter().all(|&b| b == b'0') || parent.iter().all(|&b| b == b'0') {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// The `X-Forwarded-For` to send: the client's list with the peer address appended.
pub fn forwarded_for(
    existing: Option<&[u8]>,
    client_ip: Option<std::net::IpAddr>,
) -> Option<String> {
    let existing = existing
        .and_then(|e| std::str::from_utf8(e).ok())
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match (existing, client_ip) {
        (Some(e), Some(ip)) => Some(format!("{e}, {ip}")),
        (None, Some(ip)) => Some(ip.to_string()),
        (Some(e), None) => Some(e.to_owned()),
        (None, None) => None,
    }
}

/// Parsed `Prefer` preferences that steer a mock (`code=404`, `example=name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockPreference {
    pub code: Option<u16>,
    pub example: Option<String>,
}

/// Parses every `Prefer` value (RFC 7240: comma-separated `token[=value]`, parameters after
/// `;` ignored, values optionally quoted).
pub fn mock_preference<'a>(values: impl Iterator<Item = &'a [u8]>) -> MockPreference {
    let mut pref = MockPreference::default();
    for v in values {
        let Ok(text) = std::str::from_utf8(v) else {
            continue;
        };
        for item in text.split(',') {
            let item = item.split(';').next().unwrap_or("").trim();
            let Some((k, val)) = item.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "code" => pref.code = val.parse().ok().filter(|c| (100..600).contains(c)),
                "example" if !val.is_empty() => pref.example = Some(val.to_owned()),
                _ => {}
            }
        }
    }
    pref
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        assert_eq!(accept_request_id(b"abc-123"), Some("abc-123"));
        assert_eq!(accept_request_id(b""), None);
        assert_eq!(accept_request_id(b"a b"), None);
        assert_eq!(accept_request_id(b"a\"b"), None);
        assert_eq!(accept_request_id(&[b'a'; 129]), None);
        let id = new_request_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(new_request_id() > id || new_request_id() != id);
    }

    #[test]
    fn traceparent_is_kept_or_started() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = trace_context(Some(good));
        assert!(!t.started_here);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"garbage",
        ] {
            let t = trace_context(Some(bad));
            assert!(t.started_here);
            assert_eq!(t.traceparent.len(), 55);
            assert!(valid_traceparent(t.traceparent.as_bytes()).is_some());
        }
    }

    #[test]
    fn forwarded_for_appends_the_peer() {
        let ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(forwarded_for(None, ip).as_deref(), Some("10.1.2.3"));
        assert_eq!(
            forwarded_for(Some(b"198.51.100.7"), ip).as_deref(),
            Some("198.51.100.7, 10.1.2.3")
        );
        assert_eq!(forwarded_for(None, None), None);
    }

    #[test]
    fn prefer_selects_code_and_example() {
        let p = mock_preference([&b"code=404"[..]].into_iter());
        assert_eq!(p.code, Some(404));
        let p = mock_preference([&b"respond-async, example=\"out_of_stock\"; x=y"[..]].into_iter());
        assert_eq!((p.code, p.example.as_deref()), (None, Some("out_of_stock")));
        let p = mock_preference([&b"code=99"[..], b"code=abc"].into_iter());
        assert_eq!(p.code, None);
    }
}
