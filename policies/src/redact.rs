//! What of a request may be written down: query strings with the values of sensitive
//! parameters removed, for access records and logs.
//!
//! A parameter is sensitive when its OpenAPI declaration says `x-sensitive: true` (the
//! caller passes those names) or when its name looks like a credential (`token`, `key`,
//! `password`, …): a client that puts its API key in the query string must not see it land
//! in the access log. Redaction keeps the parameter's name and drops its value, so an auditor
//! still sees that it was sent.

use percent_encoding::percent_decode_str;

/// What replaces the value of a sensitive parameter.
pub const REDACTED: &str = "[redacted]";

/// Fragments of parameter names that mark a credential, matched case-insensitively anywhere
/// in the (percent-decoded) name. Redacting too much is safe; too little is a leak.
const SENSITIVE_FRAGMENTS: [&str; 10] = [
    "token",
    "key",
    "password",
    "passwd",
    "secret",
    "signature",
    "credential",
    "auth",
    "session",
    "sig",
];

/// Whether a parameter name looks like it carries a credential.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_FRAGMENTS.iter().any(|f| lower.contains(f))
}

/// The query string with the value of every sensitive parameter replaced by [`REDACTED`].
///
/// `declared` says whether a (decoded) name is declared sensitive by the operation. Pairs are
/// kept in order, separators as sent; a parameter without `=` has no value to hide.
pub fn redact_query(query: &str, declared: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) => {
                let decoded = percent_decode_str(&name.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                out.push_str(name);
                out.push('=');
                if declared(&decoded) || is_sensitive_name(&decoded) {
                    out.push_str(REDACTED);
                } else {
                    out.push_str(&pair[name.len() + 1..]);
                }
            }
            None => out.push_str(pair),
        }
    }
    out
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when it was cut: keeps
/// one hostile request from writing megabytes into the access log.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_like_names_are_redacted_and_others_kept() {
        let none = |_: &str| false;
        let cases = [
            ("sku=SKU-1&warehouse=BOS", "sku=SKU-1&warehouse=BOS"),
            (
                "sku=1&api_key=gh_k_secret&q=x",
                "sku=1&api_key=[redacted]&q=x",
            ),
            ("access_token=abc", "access_token=[redacted]"),
            ("Password=hunter2&user=bob", "Password=[redacted]&user=bob"),
            ("api%5Fkey=s3cret", "api%5Fkey=[redacted]"),
            ("flag&token=", "flag&token=[redacted]"),
            ("", ""),
            ("a=1&&b=2", "a=1&&b=2"),
            ("x-sig=abc", "x-sig=[redacted]"),
        ];
        for (query, want) in cases {
            assert_eq!(redact_query(query, none), want, "{query}");
        }
    }

    #[test]
    fn declared_names_are_redacted() {
        let declared = |n: &str| n == "customer_ssn";
        assert_eq!(
            redact_query("customer_ssn=123-45-6789&sku=1", declared),
            "customer_ssn=[redacted]&sku=1"
        );
        // Declared names are matched decoded.
        assert_eq!(
            redact_query("customer%5Fssn=1", declared),
            "customer%5Fssn=[redacted]"
        );
    }

    #[test]
    fn clip_keeps_characters_whole() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("aé", 2), "a…");
    }
}
