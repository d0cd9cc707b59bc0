//! The IETF httpapi RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, the
//! structured-fields form):
//!
//! ```text
//! RateLimit-Policy: "partner-standard";q=20;w=1, "partner-standard/quota";q=100000;w=2678400
//! RateLimit: "partner-standard";r=19;t=1, "partner-standard/quota";r=99212;t=1296000
//! ```
//!
//! Both are RFC 9651 Lists with one Item per policy: the policy name as an sf-string, then
//! `q` (quota units) and `w` (window, seconds) in the policy field, `r` (remaining units) and
//! `t` (seconds until the quota is fully restored) in the limit field. Integers are clamped
//! to the 15 digits an sf-integer allows; names keep only printable ASCII.

use std::fmt::Write as _;

/// The largest sf-integer (RFC 9651 section 3.3.1).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// One item of `RateLimit-Policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyItem<'a> {
    pub name: &'a str,
    /// `q`: units the policy allows per window.
    pub quota: u64,
    /// `w`: the window in seconds.
    pub window_s: u64,
}

/// One item of `RateLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitItem<'a> {
    pub name: &'a str,
    /// `r`: units left.
    pub remaining: u64,
    /// `t`: seconds until the quota is restored.
    pub reset_s: u64,
}

/// Appends `s` as an sf-string: quoted, `\` and `"` escaped, anything outside printable
/// ASCII replaced by `_` (sf-strings cannot carry it).
pub fn push_sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
}

fn push_item(out: &mut String, name: &str, params: [(char, u64); 2]) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    push_sf_string(out, name);
    for (key, value) in params {
        let _ = write!(out, ";{key}={}", value.min(SF_INTEGER_MAX));
    }
}

/// The `RateLimit-Policy` field value.
pub fn policy_field<'a>(items: impl IntoIterator<Item = PolicyItem<'a>>) -> String {
    let mut out = String::with_capacity(64);
    for i in items {
        push_item(&mut out, i.name, [('q', i.quota), ('w', i.window_s)]);
    }
    out
}

/// The `RateLimit` field value.
pub fn limit_field<'a>(items: impl IntoIterator<Item = LimitItem<'a>>) -> String {
    let mut out = String::with_capacity(64);
    for i in items {
        push_item(&mut out, i.name, [('r', i.remaining), ('t', i.reset_s)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfv::{BareItem, ListEntry, Parser};

    fn parse(field: &str) -> Vec<(String, Vec<(String, i64)>)> {
        let list = Parser::parse_list(field.as_bytes()).expect("a structured-field list");
        list.into_iter()
            .map(|entry| match entry {
                ListEntry::Item(item) => {
                    let name = match item.bare_item {
                        BareItem::String(s) => s,
                        other => panic!("name is not an sf-string: {other:?}"),
                    };
                    let params = item
                        .params
                        .iter()
                        .map(|(k, v)| match v {
                            BareItem::Integer(i) => (k.clone(), *i),
                            other => panic!("{k} is not an integer: {other:?}"),
                        })
                        .collect();
                    (name, params)
                }
                ListEntry::InnerList(_) => panic!("inner list"),
            })
            .collect()
    }

    #[test]
    fn fields_parse_as_structured_field_lists() {
        let policy = policy_field([
            PolicyItem {
                name: "partner-standard",
                quota: 20,
                window_s: 1,
            },
            PolicyItem {
                name: "partner-standard/quota",
                quota: 100_000,
                window_s: 2_678_400,
            },
        ]);
        assert_eq!(
            policy,
            r#""partner-standard";q=20;w=1, "partner-standard/quota";q=100000;w=2678400"#
        );
        assert_eq!(
            parse(&policy),
            vec![
                (
                    "partner-standard".into(),
                    vec![("q".into(), 20), ("w".into(), 1)]
                ),
                (
                    "partner-standard/quota".into(),
                    vec![("q".into(), 100_000), ("w".into(), 2_678_400)]
                ),
            ]
        );
        let limit = limit_field([LimitItem {
            name: "p",
            remaining: 0,
            reset_s: 17,
        }]);
        assert_eq!(limit, r#""p";r=0;t=17"#);
        assert_eq!(
            parse(&limit),
            vec![("p".into(), vec![("r".into(), 0), ("t".into(), 17)])]
        );
    }

    #[test]
    fn odd_names_and_huge_numbers_stay_valid() {
        let f = limit_field([LimitItem {
            name: "a\"b\\c é",
            remaining: u64::MAX,
            reset_s: 1,
        }]);
        assert_eq!(f, r#""a\"b\\c _";r=999999999999999;t=1"#);
        let parsed = parse(&f);
        assert_eq!(parsed[0].0, "a\"b\\c _");
        assert_eq!(parsed[0].1[0].1, 999_999_999_999_999);
    }
}
