//! Bodies: media-type matching, JSON with a nesting limit, and a small synchronous
//! `multipart/form-data` reader for bodies the gateway has already buffered.
//!
//! Why not `multer`: it is built on async streams, and the gateway validates a body only
//! once it holds all of it (at most the body limit), so a slice reader is all it takes
//! and keeps `policies` free of runtimes.

use super::params::{Shape, coerce_field, insert_field};
use super::tape::{TOO_DEEP, Tape};
use memchr::memmem;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A media type or range, lower-cased, parameters dropped (`charset` never decides a
/// match): `application/json`, `application/*`, `*/*`.
/// Borrowed from the text it was parsed from unless that had to be lower-cased (a request's
/// `Content-Type` is parsed on every request; declared ranges are kept as `'static`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaRange<'t> {
    pub(crate) kind: Cow<'t, str>,
    pub(crate) subtype: Cow<'t, str>,
}

/// `s` in lower case, borrowed when it already is.
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

impl<'t> MediaRange<'t> {
    /// Parses `type/subtype[; params]`; `None` when it is not of that form.
    pub(crate) fn parse(text: &'t str) -> Option<MediaRange<'t>> {
        let essence = text.split(';').next()?.trim();
        let (kind, subtype) = essence.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-*".contains(&b))
        };
        if !valid(kind) || !valid(subtype) {
            return None;
        }
        Some(MediaRange {
            kind: lowercase(kind),
            subtype: lowercase(subtype),
        })
    }

    /// The range, owning its text.
    pub(crate) fn into_owned(self) -> MediaRange<'static> {
        MediaRange {
            kind: Cow::Owned(self.kind.into_owned()),
            subtype: Cow::Owned(self.subtype.into_owned()),
        }
    }

    /// How specific a declared range is: an exact type beats `type/*`, which beats `*/*`.
    pub(crate) fn specificity(&self) -> u8 {
        match (&*self.kind, &*self.subtype) {
            ("*", _) => 0,
            (_, "*") => 1,
            _ => 2,
        }
    }

    /// Whether this (declared) range covers an actual content type.
    pub(crate) fn covers(&self, actual: &MediaRange<'_>) -> bool {
        match (&*self.kind, &*self.subtype) {
            ("*", _) => true,
            (k, "*") => k == actual.kind,
            (k, s) => k == actual.kind && s == actual.subtype,
        }
    }

    /// How a body of this (actual) type is read.
    pub(crate) fn body_kind(&self) -> BodyKind {
        match (&*self.kind, &*self.subtype) {
            ("application", "json") => BodyKind::Json,
            (_, s) if s.ends_with("+json") => BodyKind::Json,
            ("application", "x-www-form-urlencoded") => BodyKind::Form,
            ("multipart", "form-data") => BodyKind::Multipart,
            _ => BodyKind::Other,
        }
    }
}

/// How a body is turned into a JSON instance for its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Json,
    Form,
    Multipart,
    /// Not read: only the content type and size are checked.
    Other,
}

/// A parameter of a `Content-Type` value (e.g. `boundary`), unquoted.
pub(crate) fn media_param<'a>(content_type: &'a str, name: &str) -> Option<Cow<'a, str>> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(
            match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(quoted) if quoted.contains('\\') => Cow::Owned(quoted.replace('\\', "")),
                Some(quoted) => Cow::Borrowed(quoted),
                None => Cow::Borrowed(v),
            },
        )
    })
}

/// Parses JSON, refusing nesting deeper than `max_depth` as soon as it is reached.
///
/// The depth is counted while the tree is built (a [`DeserializeSeed`] in place of
/// `Value`'s own `Deserialize`), so the limit costs no second pass over the bytes and a
/// hostile body is stopped at the first level too many. serde_json's own recursion limit
/// (128) still applies above it.
pub(crate) fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Limited {
        remaining: max_depth,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    value.map_err(|e| json_error(&e, max_depth))
}

/// [`parse_json`] onto a [`Tape`] (what request and response bodies are validated on):
/// the same limits and the same error texts, without building a `Value`.
pub(crate) fn parse_json_tape(bytes: &[u8], max_depth: usize) -> Result<Tape<'_>, String> {
    Tape::parse(bytes, max_depth).map_err(|e| json_error(&e, max_depth))
}

fn json_error(e: &serde_json::Error, max_depth: usize) -> String {
    let text = e.to_string();
    if text.starts_with(TOO_DEEP) {
        format!("nests arrays and objects deeper than the limit of {max_depth} levels ({text})")
    } else {
        format!("is not valid JSON: {text}")
    }
}

/// Builds a `Value` allowing `remaining` more levels of arrays and objects.
#[derive(Debug, Clone, Copy)]
struct Limited {
    remaining: usize,
}

impl Limited {
    fn nested<E: de::Error>(self) -> Result<Limited, E> {
        match self.remaining.checked_sub(1) {
            Some(remaining) => Ok(Limited { remaining }),
            None => Err(E::custom(TOO_DEEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Limited {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Limited {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity; `from_f64` only refuses those.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part<'b> {
    pub(crate) name: Option<String>,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: &'b [u8],
}

/// Splits a buffered `multipart/form-data` body (RFC 7578 / RFC 2046 section 5.1).
pub(crate) fn parse_multipart<'b>(body: &'b [u8], boundary: &str) -> Result<Vec<Part<'b>>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("has a multipart boundary that is empty or longer than 70 characters".into());
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let next_delimiter = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(next_delimiter.as_bytes());
    // The first delimiter may open the body or follow a preamble.
    let mut at = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        finder
            .find(body)
            .map(|i| i + next_delimiter.len())
            .ok_or_else(|| format!("has no `--{boundary}` delimiter"))?
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let Some(start) = rest[padding..].strip_prefix(b"\r\n") else {
            return Err("has a multipart delimiter line that does not end with CRLF".into());
        };
        let start_at = at + padding + 2;
        let Some(len) = finder.find(start) else {
            return Err(format!("is not closed by `--{boundary}--`"));
        };
        parts.push(parse_part(&body[start_at..start_at + len])?);
        at = start_at + len + next_delimiter.len();
    }
}

fn parse_part(raw: &[u8]) -> Result<Part<'_>, String> {
    let (head, body) = if let Some(body) = raw.strip_prefix(b"\r\n") {
        (&b""[..], body)
    } else {
        let split = memmem::find(raw, b"\r\n\r\n")
            .ok_or("has a multipart part without the blank line that ends its headers")?;
        (&raw[..split], &raw[split + 4..])
    };
    let head = String::from_utf8_lossy(head);
    let mut part = Part {
        name: None,
        filename: None,
        content_type: None,
        body,
    };
    for line in head.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            let pseudo = format!("x/x;{}", value.split_once(';').map_or("", |(_, p)| p));
            part.name = media_param(&pseudo, "name").map(Cow::into_owned);
            part.filename = media_param(&pseudo, "filename")
                .or_else(|| media_param(&pseudo, "filename*"))
                .map(Cow::into_owned);
        } else if name.eq_ignore_ascii_case("content-type") {
            part.content_type = Some(value.trim().to_owned());
        }
    }
    Ok(part)
}

/// Turns multipart parts into an object typed by the body schema. File parts (with a
/// filename, or bytes that are not UTF-8) are checked for presence only: they become an
/// empty string, which any `format: binary` string accepts. JSON parts are parsed.
/// On error: the JSON pointer of the field and the message.
pub(crate) fn multipart_instance(
    parts: &[Part<'_>],
    shape: &Shape,
    max_depth: usize,
) -> Result<Value, (String, String)> {
    let mut object = Map::new();
    for part in parts {
        let Some(name) = &part.name else {
            continue;
        };
        let pointer = format!("/{}", crate::openapi::escape_pointer(name));
        let is_json = part
            .content_type
            .as_deref()
            .and_then(MediaRange::parse)
            .is_some_and(|m| m.body_kind() == BodyKind::Json);
        let value = if is_json {
            parse_json(part.body, max_depth).map_err(|m| (pointer.clone(), m))?
        } else {
            match (&part.filename, std::str::from_utf8(part.body)) {
                (None, Ok(text)) => coerce_field(text, &shape.property(name)),
                _ => Value::String(String::new()),
            }
        };
        insert_field(&mut object, name, shape, value);
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::params::Types;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn media_ranges() {
        let json = MediaRange::parse("Application/JSON; charset=utf-8").unwrap();
        assert_eq!(json.kind, "application");
        assert_eq!(json.body_kind(), BodyKind::Json);
        let any_app = MediaRange::parse("application/*").unwrap();
        assert!(any_app.covers(&json));
        assert_eq!(any_app.specificity(), 1);
        assert!(MediaRange::parse("*/*").unwrap().covers(&json));
        assert!(!MediaRange::parse("text/*").unwrap().covers(&json));
        assert_eq!(
            MediaRange::parse("application/vnd.acme.order+json")
                .unwrap()
                .body_kind(),
            BodyKind::Json
        );
        assert_eq!(MediaRange::parse("json"), None);
        assert_eq!(MediaRange::parse("a/b c"), None);
        assert_eq!(
            media_param("multipart/form-data; boundary=\"a b\"", "boundary").as_deref(),
            Some("a b")
        );
        assert_eq!(
            media_param("multipart/form-data; BOUNDARY=xyz", "boundary").as_deref(),
            Some("xyz")
        );
    }

    #[test]
    fn json_depth_limit() {
        assert!(parse_json(b"[[[1]]]", 3).is_ok());
        assert!(
            parse_json(b"[[[[1]]]]", 3)
                .unwrap_err()
                .contains("deeper than the limit of 3")
        );
        // Brackets inside strings do not count, escaped quotes do not end them.
        assert!(parse_json(br#"{"a": "[[[[\"[[[["}"#, 1).is_ok());
        assert!(
            parse_json(b"{\"a\": 1", 8)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_json(b"\"unterminated \\", 8).is_err());
    }

    #[test]
    fn multipart_parts() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"qty\"\r\n\r\n3\r\n--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"a\": [1]}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\r\n--XyZ--\r\n";
        let parts = parse_multipart(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name.as_deref(), Some("qty"));
        assert_eq!(parts[2].filename.as_deref(), Some("a.bin"));
        assert_eq!(parts[2].body, b"\x00\xff");
        let mut props = BTreeMap::new();
        props.insert("qty".to_owned(), Shape::Scalar(Types::INTEGER));
        let shape = Shape::Object {
            props,
            additional: Some(Box::new(Shape::Any)),
            explicit_additional: false,
        };
        assert_eq!(
            multipart_instance(&parts, &shape, 8),
            Ok(json!({"qty": 3, "meta": {"a": [1]}, "file": ""}))
        );
    }

    #[test]
    fn multipart_errors() {
        assert!(parse_multipart(b"no delimiter", "b").is_err());
        assert!(
            parse_multipart(
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
                "b"
            )
            .is_err()
        );
        assert!(parse_multipart(b"--b\r\nno blank line\r\n--b--", "b").is_err());
        assert!(parse_multipart(b"--bX", "b").is_err());
        assert_eq!(parse_multipart(b"--b--", "b"), Ok(vec![]));
    }
}
