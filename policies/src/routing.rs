//! Request-path normalisation and version selection: which API, which major, which path.
//!
//! The gateway normalises a request path exactly once, here, and every later step (the
//! router, the upstream URL, the access record) sees only the normalised form. The rules
//! are chosen so that a path can never reach a version or a path the raw URL does not name:
//!
//! - **Percent-decoding of unreserved characters only** (RFC 3986 section 6.2.2.2:
//!   `A-Z a-z 0-9 - . _ ~`); every other escape is kept, with its hex digits upper-cased.
//!   So `%2F`/`%2f` stays `%2F`: an encoded slash is data inside one segment, never a
//!   separator.
//! - **Dot-segments are refused, not resolved.** A segment that is `.` or `..` after
//!   decoding (so `%2E`, `%2e%2E`, `.%2E` too) makes the path invalid (400). Clients resolve
//!   dot-segments before sending (RFC 3986 section 5.2.4, done by every browser and curl);
//!   one that arrives on the wire is a bug or a probe, and resolving it would let
//!   `/inventory/v2/../v1/x` reach v1 while the version segment the client typed says v2.
//!   The same holds for a segment whose pieces between encoded slashes or backslashes are
//!   dot-segments (`a%2F..%2Fb`), so an upstream that decodes `%2F` before resolving
//!   dot-segments cannot be walked out of its prefix either.
//! - **Empty segments are refused**: `//` anywhere (400). Collapsing them would make two
//!   spellings of one resource and hide what an upstream might treat differently. A single
//!   trailing slash is kept as written (it is a different path, and usually a 404).
//! - **Only RFC 3986 path characters** are accepted: no raw spaces, controls, backslashes
//!   or non-ASCII bytes, and no `%00`-`%1F`/`%7F` escapes (400). A malformed escape (`%G1`,
//!   `%4`) is refused too.
//!
//! After normalisation, [`split`] takes the API slug, the `v{major}` segment if there is
//! one, and the rest; [`select_major`] decides the major from the path, the `API-Version`
//! header where the API allows it, or the API's default.

use std::fmt;

/// Why a request path was refused before routing (400 `bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with `/`")]
    NotAbsolute,
    #[error("the request path contains an empty segment (`//`)")]
    EmptySegment,
    #[error("the request path contains a dot-segment (`.` or `..`, possibly percent-encoded)")]
    DotSegment,
    #[error("the request path contains a malformed percent-escape at byte {at}")]
    BadEscape { at: usize },
    #[error("the request path contains a character that is not allowed in a URL path at byte {at}")]
    BadCharacter { at: usize },
    #[error("the request path contains an encoded control character at byte {at}")]
    EncodedControl { at: usize },
}

/// Normalises a request path (without query) as described in the module docs.
///
/// Returns the path unchanged (borrowed) in the common case where nothing needs rewriting,
/// so the hot path allocates only for paths that carry escapes.
pub fn normalize(raw: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    use std::borrow::Cow;
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // First pass: validate, and learn whether any escape needs rewriting.
    let mut needs_rewrite = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => (h, l),
                _ => return Err(PathError::BadEscape { at: i }),
            };
            let v = hex(hi) << 4 | hex(lo);
            if v < 0x20 || v == 0x7f {
                return Err(PathError::EncodedControl { at: i });
            }
            if is_unreserved(v) || hi.is_ascii_lowercase() || lo.is_ascii_lowercase() {
                needs_rewrite = true;
            }
            i += 3;
            continue;
        }
        if !is_path_char(b) {
            return Err(PathError::BadCharacter { at: i });
        }
        i += 1;
    }
    let normalized: Cow<'_, str> = if needs_rewrite {
        let mut out = String::with_capacity(raw.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let v = hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]);
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                    out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
                }
                i += 3;
            } else {
                out.push(char::from(b));
                i += 1;
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    // Second pass on the decoded form: segments. The leading `/` gives an empty first piece.
    let path = normalized.as_ref();
    let body = &path[1..];
    if !body.is_empty() {
        let mut segments = body.split('/').peekable();
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            if seg.is_empty() && !last {
                return Err(PathError::EmptySegment);
            }
            if seg == "." || seg == ".." {
                return Err(PathError::DotSegment);
            }
            // Defence in depth for upstreams that decode `%2F`/`%5C` before resolving
            // dot-segments: a segment like `a%2F..%2F..%2Fv1` would climb there.
            if (seg.contains("%2F") || seg.contains("%5C"))
                && seg
                    .split("%2F")
                    .flat_map(|piece| piece.split("%5C"))
                    .any(|piece| piece == "." || piece == "..")
            {
                return Err(PathError::DotSegment);
            }
        }
    }
    Ok(normalized)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` (without `%`, handled apart) plus `/`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
        || b == b'/'
}

/// A normalised path taken apart: `/{api}/v{major}/{rest}` or `/{api}/{rest}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    /// The API slug: the first segment.
    pub api: &'a str,
    /// The major named by a `v{major}` second segment, when there is one.
    pub path_major: Option<u64>,
    /// The operation path: what follows the API (and version) segments, starting with `/`
    /// (`/` when nothing follows).
    pub rest: &'a str,
}

/// Parses a `v{major}` segment: `v` then decimal digits without a leading zero (`v0` is
/// allowed). Anything else (`V2`, `v02`, `v2.1`) is not a version segment.
pub fn parse_version_segment(seg: &str) -> Option<u64> {
    let digits = seg.strip_prefix('v')?;
    parse_major(digits)
}

/// Parses a major as written in a path segment or in `API-Version`: decimal digits, no sign,
/// no leading zero (except `0`), at most 9 digits.
pub fn parse_major(digits: &str) -> Option<u64> {
    if digits.is_empty()
        || digits.len() > 9
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Splits a normalised path. `None` when there is no API segment (`/`).
pub fn split(path: &str) -> Option<Split<'_>> {
    let body = path.strip_prefix('/')?;
    let (api, after_api) = match body.find('/') {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    if api.is_empty() {
        return None;
    }
    // `after_api` is "" or starts with '/'.
    if let Some(seg_body) = after_api.strip_prefix('/') {
        let (seg, after_seg) = match seg_body.find('/') {
            Some(i) => (&seg_body[..i], &seg_body[i..]),
            None => (seg_body, ""),
        };
        if let Some(major) = parse_version_segment(seg) {
            return Some(Split {
                api,
                path_major: Some(major),
                rest: if after_seg.is_empty() { "/" } else { after_seg },
            });
        }
    }
    Some(Split {
        api,
        path_major: None,
        rest: if after_api.is_empty() { "/" } else { after_api },
    })
}

/// How the major of a request was chosen (recorded in the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MajorSource {
    /// The `v{major}` path segment.
    Path,
    /// The `API-Version` header.
    Header,
    /// The API's default major.
    Default,
}

impl MajorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MajorSource::Path => "path",
            MajorSource::Header => "header",
            MajorSource::Default => "default",
        }
    }
}

/// What an API allows for choosing a major (compiled from the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionPolicy {
    /// `/{api}/{path}` with `API-Version: {major}` is routed.
    pub header_allowed: bool,
    /// The major for `/{api}/{path}` without a header.
    pub default_major: Option<u64>,
}

/// Why no major could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MajorError {
    /// 400: the header is not a major.
    #[error("the API-Version header `{value}` is not a major version number (e.g. `2`)")]
    BadHeader { value: String },
    /// 400: the path and the header name different majors.
    #[error("the path names major {path} but the API-Version header names {header}")]
    Disagree { path: u64, header: u64 },
    /// 404: no version in the path, and neither header routing nor a default applies.
    #[error("no major version given: use /{api}/v{{major}}/…{hint}")]
    Missing { api: String, hint: &'static str },
}

/// Decides the major for a split path, the `API-Version` header value (if any) and the API's
/// policy. A path major always wins; a header that disagrees with it is refused rather than
/// ignored, so a client never silently talks to a version it did not ask for.
pub fn select_major(
    split: &Split<'_>,
    header: Option<&str>,
    policy: VersionPolicy,
) -> Result<(u64, MajorSource), MajorError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let parsed_header = match header {
        Some(h) if policy.header_allowed || split.path_major.is_some() => Some(
            parse_major(h.strip_prefix('v').unwrap_or(h)).ok_or_else(|| MajorError::BadHeader {
                value: h.chars().take(32).collect(),
            })?,
        ),
        _ => None,
    };
    if let Some(path) = split.path_major {
        return match parsed_header {
            Some(h) if h != path => Err(MajorError::Disagree { path, header: h }),
            _ => Ok((path, MajorSource::Path)),
        };
    }
    if policy.header_allowed
        && let Some(h) = parsed_header
    {
        return Ok((h, MajorSource::Header));
    }
    match policy.default_major {
        Some(d) => Ok((d, MajorSource::Default)),
        None => Err(MajorError::Missing {
            api: split.api.to_owned(),
            hint: if policy.header_allowed {
                " or send an API-Version header"
            } else {
                ""
            },
        }),
    }
}

/// Joins an upstream base path (`/erp/api` or empty) and an operation path (`/orders/7`)
/// without doubling or losing the slash.
pub fn join_upstream_path(base: &str, rest: &str) -> String {
    let base = base.trim_end_matches('/');
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    out.push_str(base);
    if !rest.starts_with('/') {
        out.push('/');
    }
    out.push_str(rest);
    out
}

impl fmt::Display for Split<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path_major {
            Some(m) => write!(f, "/{}/v{}{}", self.api, m, self.rest),
            None => write!(f, "/{}{}", self.api, self.rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(|c| c.into_owned())
    }

    #[test]
    fn plain_paths_are_borrowed_unchanged() {
        let p = "/inventory/v2/availability/SKU-10042";
        assert!(matches!(normalize(p), Ok(std::borrow::Cow::Borrowed(_))));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept_upper_case() {
        assert_eq!(norm("/inv/v2/a%41%7e").unwrap(), "/inv/v2/aA~");
        assert_eq!(norm("/inv/v2/a%2fb").unwrap(), "/inv/v2/a%2Fb");
        assert_eq!(norm("/inv/v2/a%2Fb").unwrap(), "/inv/v2/a%2Fb");
        assert_eq!(norm("/inv/v2/%c3%a9").unwrap(), "/inv/v2/%C3%A9");
        assert_eq!(norm("/inv/v2/a%20b").unwrap(), "/inv/v2/a%20b");
    }

    #[test]
    fn encoded_slash_never_becomes_a_separator() {
        // `%2F` stays inside one segment: the version segment here is not `v1`.
        let p = norm("/inventory/v2%2Fv1/x").unwrap();
        assert_eq!(p, "/inventory/v2%2Fv1/x");
        let s = split(&p).unwrap();
        assert_eq!((s.path_major, s.rest), (None, "/v2%2Fv1/x"));
        assert_eq!(
            norm("/inventory/v2%2F..%2Fv1/x"),
            Err(PathError::DotSegment)
        );
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for p in [
            "/inventory/v2/../v1/x",
            "/inventory/v2/./x",
            "/inventory/v2/%2E%2E/v1/x",
            "/inventory/v2/%2e%2e/v1/x",
            "/inventory/v2/.%2E/v1/x",
            "/inventory/v2/%2E/x",
            "/inventory/v2/x/..",
            "/..",
        ] {
            assert_eq!(norm(p), Err(PathError::DotSegment), "{p}");
        }
        // Dot pieces between encoded slashes are refused too (an upstream might decode first).
        assert_eq!(
            norm("/inventory/v2/a%2F..%2F..%2Fv1"),
            Err(PathError::DotSegment)
        );
        assert_eq!(norm("/inventory/v2/a%5c..%5cb"), Err(PathError::DotSegment));
        // Dots that are not whole segments are data.
        assert_eq!(norm("/a/v1/x..y/.z").unwrap(), "/a/v1/x..y/.z");
    }

    #[test]
    fn empty_segments_are_refused_but_a_trailing_slash_is_kept() {
        assert_eq!(norm("//inventory/v2/x"), Err(PathError::EmptySegment));
        assert_eq!(norm("/inventory//v2/x"), Err(PathError::EmptySegment));
        assert_eq!(norm("/inventory/v2//x"), Err(PathError::EmptySegment));
        assert_eq!(norm("/inventory/v2/x/").unwrap(), "/inventory/v2/x/");
        assert_eq!(norm("/").unwrap(), "/");
    }

    #[test]
    fn bad_bytes_and_escapes_are_refused() {
        assert_eq!(norm("inventory"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
        assert_eq!(norm("/a b"), Err(PathError::BadCharacter { at: 2 }));
        assert_eq!(norm("/a\\b"), Err(PathError::BadCharacter { at: 2 }));
        assert_eq!(norm("/a%"), Err(PathError::BadEscape { at: 2 }));
        assert_eq!(norm("/a%4"), Err(PathError::BadEscape { at: 2 }));
        assert_eq!(norm("/a%G1"), Err(PathError::BadEscape { at: 2 }));
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedControl { at: 2 }));
        assert_eq!(norm("/a%7F"), Err(PathError::EncodedControl { at: 2 }));
        assert_eq!(norm("/é"), Err(PathError::BadCharacter { at: 1 }));
    }

    #[test]
    fn split_finds_api_major_and_rest() {
        let s = split("/inventory/v2/availability/SKU-1").unwrap();
        assert_eq!(
            (s.api, s.path_major, s.rest),
            ("inventory", Some(2), "/availability/SKU-1")
        );
        let s = split("/inventory/availability/SKU-1").unwrap();
        assert_eq!(
            (s.api, s.path_major, s.rest),
            ("inventory", None, "/availability/SKU-1")
        );
        let s = split("/inventory/v2").unwrap();
        assert_eq!((s.path_major, s.rest), (Some(2), "/"));
        let s = split("/inventory").unwrap();
        assert_eq!((s.path_major, s.rest), (None, "/"));
        let s = split("/inventory/v02/x").unwrap();
        assert_eq!((s.path_major, s.rest), (None, "/v02/x"));
        let s = split("/inventory/V2/x").unwrap();
        assert_eq!(s.path_major, None);
        assert!(split("/").is_none());
    }

    #[test]
    fn version_segments() {
        assert_eq!(parse_version_segment("v0"), Some(0));
        assert_eq!(parse_version_segment("v12"), Some(12));
        assert_eq!(parse_version_segment("v"), None);
        assert_eq!(parse_version_segment("v01"), None);
        assert_eq!(parse_version_segment("v2.1"), None);
        assert_eq!(parse_version_segment("v+2"), None);
        assert_eq!(parse_version_segment("v9999999999"), None);
    }

    const HEADER_AND_DEFAULT: VersionPolicy = VersionPolicy {
        header_allowed: true,
        default_major: Some(1),
    };

    #[test]
    fn major_selection_table() {
        let in_path = split("/inv/v2/x").unwrap();
        let bare = split("/inv/x").unwrap();
        let none = VersionPolicy::default();
        type Case<'a> = (
            &'a Split<'a>,
            Option<&'a str>,
            VersionPolicy,
            Result<(u64, MajorSource), ()>,
        );
        let cases: Vec<Case<'_>> = vec![
            (&in_path, None, none, Ok((2, MajorSource::Path))),
            (&in_path, Some("2"), none, Ok((2, MajorSource::Path))),
            (&in_path, Some("1"), HEADER_AND_DEFAULT, Err(())),
            (
                &bare,
                Some("2"),
                HEADER_AND_DEFAULT,
                Ok((2, MajorSource::Header)),
            ),
            (
                &bare,
                Some("v2"),
                HEADER_AND_DEFAULT,
                Ok((2, MajorSource::Header)),
            ),
            (
                &bare,
                None,
                HEADER_AND_DEFAULT,
                Ok((1, MajorSource::Default)),
            ),
            (&bare, Some("two"), HEADER_AND_DEFAULT, Err(())),
            // Header not allowed: ignored, the default applies.
            (
                &bare,
                Some("2"),
                VersionPolicy {
                    header_allowed: false,
                    default_major: Some(1),
                },
                Ok((1, MajorSource::Default)),
            ),
            (&bare, Some("2"), none, Err(())),
            (&bare, None, none, Err(())),
        ];
        for (split, header, policy, want) in cases {
            let got = select_major(split, header, policy).map_err(|_| ());
            assert_eq!(got, want, "{split} {header:?} {policy:?}");
        }
        assert!(matches!(
            select_major(&in_path, Some("1"), none),
            Err(MajorError::Disagree { path: 2, header: 1 })
        ));
        assert!(matches!(
            select_major(&bare, None, none),
            Err(MajorError::Missing { .. })
        ));
    }

    #[test]
    fn upstream_paths_join_cleanly() {
        assert_eq!(join_upstream_path("", "/orders/7"), "/orders/7");
        assert_eq!(join_upstream_path("/erp/", "/orders/7"), "/erp/orders/7");
        assert_eq!(join_upstream_path("/erp", "/"), "/erp/");
        assert_eq!(join_upstream_path("/erp", "x"), "/erp/x");
    }

    /// RFC 3986 section 5.2.4 `remove_dot_segments`, used as the oracle of the property tests:
    /// what a naive upstream would do with the path we forward.
    fn remove_dot_segments(path: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        for seg in path.split('/').skip(1) {
            match seg {
                "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }

    fn percent_decode_all(path: &str) -> String {
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("v1".to_owned()),
            Just("v2".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("%2E%2E".to_owned()),
            Just("%2e".to_owned()),
            Just("%2F".to_owned()),
            Just("%2f..%2f".to_owned()),
            Just("".to_owned()),
            Just("%5C".to_owned()),
            "[a-zA-Z0-9._~%-]{0,6}",
        ]
    }

    fn raw_path() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("inventory".to_owned()), "[a-z.%]{1,4}"],
            prop::collection::vec(segment(), 0..6),
            any::<bool>(),
        )
            .prop_map(|(api, segs, trailing)| {
                let mut p = format!("/{api}");
                for s in segs {
                    p.push('/');
                    p.push_str(&s);
                }
                if trailing {
                    p.push('/');
                }
                p
            })
    }

    proptest! {
        /// No normalised path escapes its `/{api}/v{major}` prefix: the prefix is literally
        /// what the raw URL names, and neither resolving dot-segments nor decoding every
        /// escape (what a careless upstream might do) can move the operation path above it.
        #[test]
        fn normalised_paths_never_escape_their_version_prefix(raw in raw_path()) {
            if let Ok(path) = normalize(&raw)
                && let Some(s) = split(&path)
                && let Some(major) = s.path_major
            {
                let prefix = format!("/{}/v{}", s.api, major);
                // The raw URL's own first two segments (split on raw `/` only) are
                // the API and `v{major}`, once their escapes are decoded.
                let raw_segs: Vec<String> =
                    raw.split('/').skip(1).take(2).map(percent_decode_all).collect();
                prop_assert_eq!(&raw_segs[0], s.api);
                prop_assert_eq!(raw_segs[1].clone(), format!("v{major}"));
                prop_assert!(path.starts_with(&prefix));
                // The operation path is stable under dot-segment removal...
                let rest = s.rest;
                let resolved = remove_dot_segments(rest);
                let rest_no_trailing = rest.trim_end_matches('/');
                let resolved_no_trailing = resolved.trim_end_matches('/');
                prop_assert_eq!(resolved_no_trailing, rest_no_trailing);
                // ...and even fully decoded it never climbs out of the prefix.
                let decoded = percent_decode_all(&format!("{prefix}{rest}"));
                let climbed = remove_dot_segments(&decoded.replace('\\', "/"));
                prop_assert!(
                    climbed.starts_with(&prefix),
                    "{raw} -> {path} decodes to {decoded} -> {climbed}"
                );
            }
        }

        /// Normalisation is idempotent and never produces a dot or empty segment.
        #[test]
        fn normalisation_is_idempotent(raw in raw_path()) {
            if let Ok(path) = normalize(&raw) {
                let again = normalize(&path).map(|c| c.into_owned());
                prop_assert_eq!(again.as_deref(), Ok(path.as_ref()));
                let body = &path[1..];
                let segs: Vec<&str> = body.split('/').collect();
                for (i, seg) in segs.iter().enumerate() {
                    prop_assert!(*seg != "." && *seg != "..");
                    prop_assert!(!seg.is_empty() || i + 1 == segs.len());
                }
            }
        }

        /// Arbitrary bytes never panic, and what is accepted is plain ASCII path text.
        #[test]
        fn arbitrary_input_is_accepted_or_refused_without_panic(raw in "\\PC{0,40}") {
            if let Ok(path) = normalize(&raw) {
                prop_assert!(path.bytes().all(|b| b.is_ascii_graphic()));
                let _ = split(&path);
            }
        }
    }
}
