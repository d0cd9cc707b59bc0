//! Parameter decoding: from raw path segments, query strings, headers and cookies to JSON
//! values typed by the parameter's schema, ready for its compiled validator.
//!
//! Decoding follows the OpenAPI `style`/`explode` table: path `simple`, `label`, `matrix`;
//! query `form`, `spaceDelimited`, `pipeDelimited`, `deepObject`; header `simple`; cookie
//! `form`. Raw text is split on its delimiters *before* percent-decoding, so an encoded
//! delimiter (`%2C`) stays inside its value. Each piece is then coerced to the schema's
//! type (`"42"` → `42` when the schema says integer); a piece that does not fit stays a
//! string, and the schema's own error says what was expected.

use crate::openapi::{Dialect, Document, ParamStyle};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Shapes: what a schema says about the JSON type of a decoded value
// ---------------------------------------------------------------------------------------

/// A set of JSON types a schema admits. Empty means "unknown": keep strings as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Types(u8);

impl Types {
    pub(crate) const STRING: Types = Types(1);
    pub(crate) const INTEGER: Types = Types(2);
    pub(crate) const NUMBER: Types = Types(4);
    pub(crate) const BOOLEAN: Types = Types(8);
    pub(crate) const NULL: Types = Types(16);
    pub(crate) const ARRAY: Types = Types(32);
    pub(crate) const OBJECT: Types = Types(64);

    fn has(self, other: Types) -> bool {
        self.0 & other.0 != 0
    }

    fn with(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    fn is_unknown(self) -> bool {
        self.0 == 0
    }

    fn parse(name: &str) -> Types {
        match name {
            "string" => Types::STRING,
            "integer" => Types::INTEGER,
            "number" => Types::NUMBER,
            "boolean" => Types::BOOLEAN,
            "null" => Types::NULL,
            "array" => Types::ARRAY,
            "object" => Types::OBJECT,
            _ => Types::default(),
        }
    }

    fn of_value(v: &Value) -> Types {
        match v {
            Value::Null => Types::NULL,
            Value::Bool(_) => Types::BOOLEAN,
            Value::Number(n) if n.is_f64() => Types::NUMBER,
            Value::Number(_) => Types::INTEGER,
            Value::String(_) => Types::STRING,
            Value::Array(_) => Types::ARRAY,
            Value::Object(_) => Types::OBJECT,
        }
    }
}

/// The structure a decoded parameter (or form field) takes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Shape {
    /// One value of these types.
    Scalar(Types),
    /// A list of values of these types.
    Array(Types),
    /// Named values; `additional` is `None` when the schema forbids other names.
    Object {
        props: BTreeMap<String, Shape>,
        additional: Option<Box<Shape>>,
        /// Whether `additionalProperties` is written out (true or a schema): only then
        /// does an exploded form object claim query keys it does not name.
        explicit_additional: bool,
    },
    /// Unknown: strings stay strings.
    #[default]
    Any,
}

/// Bounds work on hostile documents: `$ref` chains and nesting.
const MAX_SHAPE_DEPTH: usize = 16;

impl Shape {
    /// Reads the shape of a schema, following `$ref`s and merging compositions.
    pub(crate) fn of(doc: &Document, schema: &Value) -> Shape {
        shape_of(doc, schema, 0)
    }

    /// The shape of one property (for form and multipart fields).
    pub(crate) fn property(&self, name: &str) -> Shape {
        match self {
            Shape::Object {
                props, additional, ..
            } => props
                .get(name)
                .cloned()
                .or_else(|| additional.as_deref().cloned())
                .unwrap_or(Shape::Any),
            _ => Shape::Any,
        }
    }

    fn scalar_types(&self) -> Types {
        match self {
            Shape::Scalar(t) | Shape::Array(t) => *t,
            Shape::Object { .. } => Types::OBJECT,
            Shape::Any => Types::default(),
        }
    }
}

fn shape_of(doc: &Document, schema: &Value, depth: usize) -> Shape {
    if depth > MAX_SHAPE_DEPTH {
        return Shape::Any;
    }
    let Some((schema, _)) = doc.deref(schema, "") else {
        return Shape::Any;
    };
    let types = types_of(doc, schema, depth);
    if types.has(Types::ARRAY) {
        let items = find_keyword(doc, schema, "items", depth)
            .map(|items| types_of(doc, items, depth + 1))
            .unwrap_or_default();
        return Shape::Array(items);
    }
    if types.has(Types::OBJECT) {
        let mut props = BTreeMap::new();
        collect_properties(doc, schema, depth, &mut props);
        let additional_schema = find_keyword(doc, schema, "additionalProperties", depth);
        let additional = match additional_schema {
            Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) | None => Some(Box::new(Shape::Any)),
            Some(s) => Some(Box::new(shape_of(doc, s, depth + 1))),
        };
        return Shape::Object {
            props,
            additional,
            explicit_additional: additional_schema.is_some_and(|s| s != &Value::Bool(false)),
        };
    }
    if types.is_unknown() {
        Shape::Any
    } else {
        Shape::Scalar(types)
    }
}

/// The JSON types a schema admits, as far as coercion needs to know: `type`, else the
/// union over `allOf`/`anyOf`/`oneOf`, else what its keywords imply.
fn types_of(doc: &Document, schema: &Value, depth: usize) -> Types {
    if depth > MAX_SHAPE_DEPTH {
        return Types::default();
    }
    let Some((schema, _)) = doc.deref(schema, "") else {
        return Types::default();
    };
    let mut types = match schema.get("type") {
        Some(Value::String(t)) => Types::parse(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .fold(Types::default(), |acc, t| acc.with(Types::parse(t))),
        _ => Types::default(),
    };
    if types.is_unknown() {
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                for b in branches {
                    types = types.with(types_of(doc, b, depth + 1));
                }
            }
        }
    }
    if types.is_unknown() {
        if schema.get("properties").is_some() || schema.get("additionalProperties").is_some() {
            types = Types::OBJECT;
        } else if schema.get("items").is_some() {
            types = Types::ARRAY;
        } else if let Some(Value::Array(options)) = schema.get("enum") {
            types = options
                .iter()
                .fold(Types::default(), |acc, v| acc.with(Types::of_value(v)));
        } else if let Some(c) = schema.get("const") {
            types = Types::of_value(c);
        }
    }
    if doc.dialect == Dialect::V30 && schema.get("nullable") == Some(&Value::Bool(true)) {
        types = types.with(Types::NULL);
    }
    types
}

/// A keyword of the schema or, failing that, of its composed subschemas.
fn find_keyword<'a>(
    doc: &'a Document,
    schema: &'a Value,
    key: &str,
    depth: usize,
) -> Option<&'a Value> {
    if depth > MAX_SHAPE_DEPTH {
        return None;
    }
    let (schema, _) = doc.deref(schema, "")?;
    if let Some(v) = schema.get(key) {
        return Some(v);
    }
    ["allOf", "anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(|b| find_keyword(doc, b, key, depth + 1))
}

fn collect_properties(
    doc: &Document,
    schema: &Value,
    depth: usize,
    out: &mut BTreeMap<String, Shape>,
) {
    if depth > MAX_SHAPE_DEPTH {
        return;
    }
    let Some((schema, _)) = doc.deref(schema, "") else {
        return;
    };
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, s) in props {
            out.entry(name.clone())
                .or_insert_with(|| shape_of(doc, s, depth + 1));
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            for b in branches {
                collect_properties(doc, b, depth + 1, out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Coercion and percent-decoding
// ---------------------------------------------------------------------------------------

/// Coerces one decoded text to the schema's type, or keeps it a string.
pub(crate) fn coerce(text: &str, types: Types) -> Value {
    if types.is_unknown() {
        return Value::String(text.to_owned());
    }
    if types.has(Types::INTEGER) || types.has(Types::NUMBER) {
        // Only JSON number syntax: Rust's parser would also take `inf`, `+1` or `1.`.
        let looks_numeric = text
            .bytes()
            .next()
            .is_some_and(|b| b == b'-' || b.is_ascii_digit())
            && !text.bytes().any(|b| b.is_ascii_whitespace());
        if looks_numeric && let Ok(n) = serde_json::from_str::<Number>(text) {
            return Value::Number(n);
        }
    }
    if types.has(Types::BOOLEAN) {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if types.has(Types::NULL) && !types.has(Types::STRING) && (text.is_empty() || text == "null") {
        return Value::Null;
    }
    Value::String(text.to_owned())
}

/// How raw text is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoding {
    /// RFC 3986 percent-decoding (path segments, cookies).
    Percent,
    /// Percent-decoding with `+` as a space: query strings and form bodies, as browsers
    /// and most servers write and read them.
    Form,
    /// As written (header values).
    None,
}

/// Why raw text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotUtf8;

pub(crate) fn decode(raw: &str, how: Decoding) -> Result<Cow<'_, str>, NotUtf8> {
    match how {
        Decoding::None => Ok(Cow::Borrowed(raw)),
        Decoding::Percent => percent_decode_str(raw).decode_utf8().map_err(|_| NotUtf8),
        Decoding::Form => {
            if raw.contains('+') {
                let spaced = raw.replace('+', " ");
                percent_decode_str(&spaced)
                    .decode_utf8()
                    .map(|c| Cow::Owned(c.into_owned()))
                    .map_err(|_| NotUtf8)
            } else {
                percent_decode_str(raw).decode_utf8().map_err(|_| NotUtf8)
            }
        }
    }
}

const NOT_UTF8: &str = "is not valid UTF-8 once percent-decoded";

/// Splits raw (still encoded) text on a style's delimiter. The space and pipe delimiters
/// are matched in their encoded spellings too, since clients send them either way.
fn split_raw(raw: &str, delim: Delim) -> Vec<&str> {
    match delim {
        Delim::Comma => raw.split(',').collect(),
        Delim::Dot => raw.split('.').collect(),
        Delim::Space => split_any(raw, &[" ", "+", "%20"]),
        Delim::Pipe => split_any(raw, &["|", "%7C", "%7c"]),
    }
}

fn split_any<'a>(raw: &'a str, delims: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = raw.as_bytes();
    while i < bytes.len() {
        if let Some(d) = delims.iter().find(|d| bytes[i..].starts_with(d.as_bytes())) {
            out.push(&raw[start..i]);
            i += d.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&raw[start..]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delim {
    Comma,
    Dot,
    Space,
    Pipe,
}

/// Decodes one delimited value (`blue,black,brown`, `R,100,G,200`, `R=100,G=200`) into the
/// parameter's shape.
fn decode_delimited(
    raw: &str,
    shape: &Shape,
    delim: Delim,
    pairs_with_equals: bool,
    how: Decoding,
) -> Result<Value, String> {
    let piece = |text: &str| -> Result<String, String> {
        let d = decode(text, how).map_err(|_| NOT_UTF8.to_owned())?;
        Ok(if how == Decoding::None {
            d.trim().to_owned()
        } else {
            d.into_owned()
        })
    };
    match shape {
        Shape::Array(items) => {
            if raw.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            split_raw(raw, delim)
                .into_iter()
                .map(|p| piece(p).map(|t| coerce(&t, *items)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Shape::Object { .. } => {
            let mut object = Map::new();
            if raw.is_empty() {
                return Ok(Value::Object(object));
            }
            let parts = split_raw(raw, delim);
            if pairs_with_equals {
                for p in parts {
                    let (k, v) = p.split_once('=').ok_or_else(|| {
                        format!("must be a list of name=value pairs; `{p}` has no `=`")
                    })?;
                    let k = piece(k)?;
                    let v = piece(v)?;
                    let types = shape.property(&k).scalar_types();
                    object.insert(k, coerce(&v, types));
                }
            } else {
                if !parts.len().is_multiple_of(2) {
                    return Err(format!(
                        "must be a list of name{d}value pairs (an even number of items); got {}",
                        parts.len(),
                        d = match delim {
                            Delim::Comma => ",",
                            Delim::Dot => ".",
                            Delim::Space => " ",
                            Delim::Pipe => "|",
                        }
                    ));
                }
                for kv in parts.chunks(2) {
                    let k = piece(kv[0])?;
                    let v = piece(kv[1])?;
                    let types = shape.property(&k).scalar_types();
                    object.insert(k, coerce(&v, types));
                }
            }
            Ok(Value::Object(object))
        }
        Shape::Scalar(types) => Ok(coerce(&piece(raw)?, *types)),
        Shape::Any => Ok(Value::String(piece(raw)?)),
    }
}

// ---------------------------------------------------------------------------------------
// Path
// ---------------------------------------------------------------------------------------

/// Decodes a path parameter from its raw (still percent-encoded) segment.
pub(crate) fn decode_path(
    name: &str,
    raw: &str,
    style: ParamStyle,
    explode: bool,
    shape: &Shape,
) -> Result<Value, String> {
    match style {
        ParamStyle::Label => {
            let rest = raw.strip_prefix('.').ok_or_else(|| {
                format!("must use label style: a `.` before the value (e.g. `.{raw}`)")
            })?;
            let delim = if explode || !rest.contains(',') {
                // The 3.0 style table writes unexploded label arrays `.a.b.c`, RFC 6570
                // (and OpenAPI 3.1.1) `.a,b,c`; both are read.
                Delim::Dot
            } else {
                Delim::Comma
            };
            match shape {
                Shape::Scalar(_) | Shape::Any => {
                    decode_delimited(rest, shape, delim, false, Decoding::Percent)
                }
                _ => decode_delimited(rest, shape, delim, explode, Decoding::Percent),
            }
        }
        ParamStyle::Matrix => decode_matrix(name, raw, explode, shape),
        // `simple` (and any style the location does not define, reported at compile time).
        _ => decode_delimited(raw, shape, Delim::Comma, explode, Decoding::Percent),
    }
}

fn decode_matrix(name: &str, raw: &str, explode: bool, shape: &Shape) -> Result<Value, String> {
    let expected = || format!("must use matrix style: `;{name}=value`");
    let Some(rest) = raw.strip_prefix(';') else {
        return Err(expected());
    };
    let exploded_collection = explode && matches!(shape, Shape::Array(_) | Shape::Object { .. });
    if !exploded_collection {
        // `;color`, `;color=blue`, `;color=blue,black`, `;color=R,100,G,200`
        let value = match rest.strip_prefix(name) {
            Some("") => "",
            Some(v) if v.starts_with('=') => &v[1..],
            _ => return Err(expected()),
        };
        return decode_delimited(value, shape, Delim::Comma, false, Decoding::Percent);
    }
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(';').collect()
    };
    match shape {
        // `;color=blue;color=black;color=brown`
        Shape::Array(items) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                let value = match p.split_once('=') {
                    Some((k, v)) if k == name => v,
                    _ if p == name => "",
                    _ => return Err(format!("must repeat `;{name}=value` for each item")),
                };
                let text = decode(value, Decoding::Percent).map_err(|_| NOT_UTF8.to_owned())?;
                out.push(coerce(&text, *items));
            }
            Ok(Value::Array(out))
        }
        // `;R=100;G=200;B=150`
        _ => {
            let mut object = Map::new();
            for p in parts {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| format!("must be `;name=value` pairs; `{p}` has no `=`"))?;
                let k = decode(k, Decoding::Percent).map_err(|_| NOT_UTF8.to_owned())?;
                let v = decode(v, Decoding::Percent).map_err(|_| NOT_UTF8.to_owned())?;
                let types = shape.property(&k).scalar_types();
                object.insert(k.into_owned(), coerce(&v, types));
            }
            Ok(Value::Object(object))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------

/// One `key=value` of a query string: the key decoded, the value still raw so that
/// styles split it before decoding.
#[derive(Debug, Clone)]
pub(crate) struct QueryPair<'q> {
    pub(crate) key: Cow<'q, str>,
    pub(crate) raw_value: &'q str,
    /// Set when a declared parameter consumed the pair; the rest are "unknown".
    pub(crate) claimed: bool,
}

/// Splits a raw query string. A key that is not valid UTF-8 once decoded is returned as
/// an error with the raw key.
pub(crate) fn parse_query(query: &str) -> Result<Vec<QueryPair<'_>>, String> {
    let mut out = Vec::new();
    for part in query.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(k, Decoding::Form).map_err(|_| k.to_owned())?;
        out.push(QueryPair {
            key,
            raw_value: v,
            claimed: false,
        });
    }
    Ok(out)
}

/// Decodes a query parameter; `Ok(None)` when the request does not carry it.
pub(crate) fn decode_query(
    name: &str,
    style: ParamStyle,
    explode: bool,
    shape: &Shape,
    pairs: &mut [QueryPair<'_>],
) -> Result<Option<Value>, String> {
    match style {
        ParamStyle::DeepObject => decode_deep_object(name, shape, pairs),
        // Exploded objects: each property is its own `key=value` (`R=100&G=200`).
        _ if explode && matches!(shape, Shape::Object { .. }) => {
            let Shape::Object {
                props,
                additional,
                explicit_additional,
            } = shape
            else {
                return Ok(None);
            };
            let mut object = Map::new();
            for pair in pairs.iter_mut() {
                // Other parameters decode first (see `CompiledOperation::compile`), so a
                // claimed pair is theirs.
                let known = props.get(pair.key.as_ref());
                if pair.claimed || !(known.is_some() || *explicit_additional) {
                    continue;
                }
                let field_shape = known
                    .cloned()
                    .or_else(|| additional.as_deref().cloned())
                    .unwrap_or(Shape::Any);
                let text =
                    decode(pair.raw_value, Decoding::Form).map_err(|_| NOT_UTF8.to_owned())?;
                pair.claimed = true;
                object.insert(
                    pair.key.to_string(),
                    coerce(&text, field_shape.scalar_types()),
                );
            }
            Ok((!object.is_empty()).then_some(Value::Object(object)))
        }
        _ => {
            let mut values: Vec<&str> = Vec::new();
            for pair in pairs.iter_mut().filter(|p| p.key == name) {
                pair.claimed = true;
                values.push(pair.raw_value);
            }
            if values.is_empty() {
                return Ok(None);
            }
            let delim = match style {
                ParamStyle::SpaceDelimited => Delim::Space,
                ParamStyle::PipeDelimited => Delim::Pipe,
                _ => Delim::Comma,
            };
            match shape {
                // `color=blue&color=black` (exploded), or one delimited value.
                Shape::Array(items) if explode => values
                    .into_iter()
                    .map(|raw| {
                        decode(raw, Decoding::Form)
                            .map(|t| coerce(&t, *items))
                            .map_err(|_| NOT_UTF8.to_owned())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| Some(Value::Array(v))),
                _ if values.len() > 1 => Err(format!(
                    "is given {} times but takes one value{}",
                    values.len(),
                    if matches!(shape, Shape::Array(_)) {
                        " (this array is sent delimited in one value, not repeated)"
                    } else {
                        ""
                    }
                )),
                _ => decode_delimited(values[0], shape, delim, false, Decoding::Form).map(Some),
            }
        }
    }
}

/// `color[R]=100&color[G]=200` → `{"R": 100, "G": 200}`; nested brackets
/// (`filter[price][gte]=10`) build nested objects.
fn decode_deep_object(
    name: &str,
    shape: &Shape,
    pairs: &mut [QueryPair<'_>],
) -> Result<Option<Value>, String> {
    let mut object = Map::new();
    let mut found = false;
    for pair in pairs.iter_mut() {
        let Some(rest) = pair.key.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('[') {
            continue;
        }
        let mut path = Vec::new();
        let mut rest = rest;
        while let Some(inner) = rest.strip_prefix('[') {
            let Some((segment, after)) = inner.split_once(']') else {
                return Err(format!(
                    "has a malformed key `{}`: a `[` without `]`",
                    pair.key
                ));
            };
            path.push(segment.to_owned());
            rest = after;
        }
        if !rest.is_empty() {
            return Err(format!("has a malformed key `{}`", pair.key));
        }
        pair.claimed = true;
        found = true;
        let text = decode(pair.raw_value, Decoding::Form).map_err(|_| NOT_UTF8.to_owned())?;
        insert_deep(&mut object, &path, shape, &text)?;
    }
    Ok(found.then_some(Value::Object(object)))
}

fn insert_deep(
    object: &mut Map<String, Value>,
    path: &[String],
    shape: &Shape,
    text: &str,
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let field = shape.property(first);
    if rest.is_empty() {
        let value = match &field {
            Shape::Array(items) => {
                // `a[tags]=x&a[tags]=y` collects; one value is a one-item list.
                let item = coerce(text, *items);
                match object.remove(first) {
                    Some(Value::Array(mut list)) => {
                        list.push(item);
                        Value::Array(list)
                    }
                    _ => Value::Array(vec![item]),
                }
            }
            other => coerce(text, other.scalar_types()),
        };
        object.insert(first.clone(), value);
        return Ok(());
    }
    let entry = object
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    match entry {
        Value::Object(inner) => insert_deep(inner, rest, &field, text),
        _ => Err(format!("sets `{first}` both as a value and as an object")),
    }
}

// ---------------------------------------------------------------------------------------
// Headers and cookies
// ---------------------------------------------------------------------------------------

/// Decodes a header parameter (`simple` style) from its value; several header lines of
/// the same name are joined with `,` first (RFC 9110 section 5.3).
pub(crate) fn decode_header(value: &str, explode: bool, shape: &Shape) -> Result<Value, String> {
    match shape {
        Shape::Scalar(_) | Shape::Any => {
            decode_delimited(value.trim(), shape, Delim::Comma, false, Decoding::None)
        }
        _ => decode_delimited(value.trim(), shape, Delim::Comma, explode, Decoding::None),
    }
}

/// Splits `Cookie` header values into `(name, raw value)` pairs.
pub(crate) fn parse_cookies<'h>(headers: impl Iterator<Item = &'h str>) -> Vec<(&'h str, &'h str)> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|c| {
            let c = c.trim();
            let (k, v) = c.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect()
}

/// Decodes a cookie parameter (`form` style); `Ok(None)` when absent.
pub(crate) fn decode_cookie(
    name: &str,
    explode: bool,
    shape: &Shape,
    cookies: &[(&str, &str)],
) -> Result<Option<Value>, String> {
    let values: Vec<&str> = cookies
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    // Cookie values are often not percent-encoded at all; text that does not decode
    // cleanly is taken as written.
    let how = if values.iter().all(|v| decode(v, Decoding::Percent).is_ok()) {
        Decoding::Percent
    } else {
        Decoding::None
    };
    match shape {
        Shape::Array(items) if explode && values.len() > 1 => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                let text = decode(v, how).map_err(|_| NOT_UTF8.to_owned())?;
                out.push(coerce(&text, *items));
            }
            Ok(Some(Value::Array(out)))
        }
        _ if values.len() > 1 => Err(format!(
            "is sent in {} cookies but takes one value",
            values.len()
        )),
        _ => decode_delimited(values[0], shape, Delim::Comma, false, how).map(Some),
    }
}

// ---------------------------------------------------------------------------------------
// Form bodies
// ---------------------------------------------------------------------------------------

/// Decodes an `application/x-www-form-urlencoded` body into an object typed by the body
/// schema: repeated keys make arrays where the schema says array (the default `form`,
/// `explode: true` encoding).
pub(crate) fn decode_form_body(body: &str, shape: &Shape) -> Result<Value, String> {
    let pairs = parse_query(body).map_err(|k| format!("field `{k}` {NOT_UTF8}"))?;
    let mut object = Map::new();
    for pair in pairs {
        let text = decode(pair.raw_value, Decoding::Form)
            .map_err(|_| format!("field `{}` {NOT_UTF8}", pair.key))?;
        insert_field(
            &mut object,
            &pair.key,
            shape,
            coerce_field(&text, &shape.property(&pair.key)),
        );
    }
    Ok(Value::Object(object))
}

/// Coerces one form or multipart field by its property's shape.
pub(crate) fn coerce_field(text: &str, shape: &Shape) -> Value {
    coerce(text, shape.scalar_types())
}

/// Inserts a field value; a repeated name becomes (or extends) an array.
pub(crate) fn insert_field(
    object: &mut Map<String, Value>,
    key: &str,
    shape: &Shape,
    value: Value,
) {
    let is_array = matches!(shape.property(key), Shape::Array(_));
    match object.get_mut(key) {
        Some(Value::Array(list)) if is_array => list.push(value),
        Some(existing) => {
            // Repeated but not declared an array: keep every value so the schema's type
            // error shows what was sent.
            let first = std::mem::take(existing);
            *existing = Value::Array(vec![first, value]);
        }
        None if is_array => {
            object.insert(key.to_owned(), Value::Array(vec![value]));
        }
        None => {
            object.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Shape {
        let mut props = BTreeMap::new();
        for k in ["R", "G", "B"] {
            props.insert(k.to_owned(), Shape::Scalar(Types::INTEGER));
        }
        Shape::Object {
            props,
            additional: None,
            explicit_additional: false,
        }
    }
    fn arr() -> Shape {
        Shape::Array(Types::STRING)
    }
    fn s() -> Shape {
        Shape::Scalar(Types::STRING)
    }
    fn rgb() -> Value {
        json!({"R": 100, "G": 200, "B": 150})
    }
    fn colors() -> Value {
        json!(["blue", "black", "brown"])
    }

    /// The OpenAPI style examples table, path styles (`color` is the parameter).
    #[test]
    fn path_style_table() {
        use ParamStyle::*;
        let cases: Vec<(ParamStyle, bool, &str, Shape, Value)> = vec![
            (Simple, false, "blue", s(), json!("blue")),
            (Simple, false, "blue,black,brown", arr(), colors()),
            (Simple, true, "blue,black,brown", arr(), colors()),
            (Simple, false, "R,100,G,200,B,150", obj(), rgb()),
            (Simple, true, "R=100,G=200,B=150", obj(), rgb()),
            (Label, false, ".blue", s(), json!("blue")),
            (Label, false, ".blue.black.brown", arr(), colors()),
            (Label, false, ".blue,black,brown", arr(), colors()),
            (Label, true, ".blue.black.brown", arr(), colors()),
            (Label, false, ".R.100.G.200.B.150", obj(), rgb()),
            (Label, false, ".R,100,G,200,B,150", obj(), rgb()),
            (Label, true, ".R=100.G=200.B=150", obj(), rgb()),
            (Matrix, false, ";color=blue", s(), json!("blue")),
            (Matrix, true, ";color=blue", s(), json!("blue")),
            (Matrix, false, ";color=blue,black,brown", arr(), colors()),
            (
                Matrix,
                true,
                ";color=blue;color=black;color=brown",
                arr(),
                colors(),
            ),
            (Matrix, false, ";color=R,100,G,200,B,150", obj(), rgb()),
            (Matrix, true, ";R=100;G=200;B=150", obj(), rgb()),
            (Matrix, false, ";color", s(), json!("")),
            (Simple, false, "a%2Cb,c%20d", arr(), json!(["a,b", "c d"])),
        ];
        for (style, explode, raw, shape, want) in cases {
            let got = decode_path("color", raw, style, explode, &shape);
            assert_eq!(got, Ok(want), "{style:?} explode={explode} {raw}");
        }
    }

    #[test]
    fn path_style_errors() {
        assert!(decode_path("color", "blue", ParamStyle::Label, false, &s()).is_err());
        assert!(decode_path("color", "color=blue", ParamStyle::Matrix, false, &s()).is_err());
        assert!(decode_path("color", ";other=blue", ParamStyle::Matrix, false, &s()).is_err());
        assert!(decode_path("color", "R,100,G", ParamStyle::Simple, false, &obj()).is_err());
        assert!(decode_path("color", "R100", ParamStyle::Simple, true, &obj()).is_err());
        assert!(decode_path("color", "%FF", ParamStyle::Simple, false, &s()).is_err());
    }

    fn query(
        q: &str,
        style: ParamStyle,
        explode: bool,
        shape: &Shape,
    ) -> (Result<Option<Value>, String>, Vec<bool>) {
        let mut pairs = parse_query(q).unwrap();
        let got = decode_query("color", style, explode, shape, &mut pairs);
        (got, pairs.iter().map(|p| p.claimed).collect())
    }

    /// The OpenAPI style examples table, query styles.
    #[test]
    fn query_style_table() {
        use ParamStyle::*;
        let cases: Vec<(ParamStyle, bool, &str, Shape, Value)> = vec![
            (Form, false, "color=", s(), json!("")),
            (Form, true, "color=blue", s(), json!("blue")),
            (Form, false, "color=blue,black,brown", arr(), colors()),
            (
                Form,
                true,
                "color=blue&color=black&color=brown",
                arr(),
                colors(),
            ),
            (Form, false, "color=R,100,G,200,B,150", obj(), rgb()),
            (Form, true, "R=100&G=200&B=150", obj(), rgb()),
            (
                SpaceDelimited,
                false,
                "color=blue%20black%20brown",
                arr(),
                colors(),
            ),
            (
                SpaceDelimited,
                false,
                "color=blue+black+brown",
                arr(),
                colors(),
            ),
            (
                SpaceDelimited,
                true,
                "color=blue&color=black&color=brown",
                arr(),
                colors(),
            ),
            (
                SpaceDelimited,
                false,
                "color=R%20100%20G%20200%20B%20150",
                obj(),
                rgb(),
            ),
            (
                PipeDelimited,
                false,
                "color=blue|black|brown",
                arr(),
                colors(),
            ),
            (
                PipeDelimited,
                false,
                "color=blue%7Cblack%7Cbrown",
                arr(),
                colors(),
            ),
            (
                PipeDelimited,
                true,
                "color=blue&color=black&color=brown",
                arr(),
                colors(),
            ),
            (
                PipeDelimited,
                false,
                "color=R|100|G|200|B|150",
                obj(),
                rgb(),
            ),
            (
                DeepObject,
                true,
                "color[R]=100&color[G]=200&color[B]=150",
                obj(),
                rgb(),
            ),
            (
                DeepObject,
                true,
                "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
                obj(),
                rgb(),
            ),
            (Form, true, "color=a+b%2Bc", s(), json!("a b+c")),
            (Form, false, "color=a%2Cb,c", arr(), json!(["a,b", "c"])),
        ];
        for (style, explode, q, shape, want) in cases {
            let (got, claimed) = query(q, style, explode, &shape);
            assert_eq!(got, Ok(Some(want)), "{style:?} explode={explode} {q}");
            assert!(claimed.iter().all(|c| *c), "{q}: every pair claimed");
        }
    }

    #[test]
    fn query_absent_repeated_and_unclaimed() {
        let (got, _) = query("other=1", ParamStyle::Form, true, &s());
        assert_eq!(got, Ok(None));
        let (got, _) = query("color=a&color=b", ParamStyle::Form, true, &s());
        assert!(got.unwrap_err().contains("2 times"));
        let (_, claimed) = query("R=1&X=2", ParamStyle::Form, true, &obj());
        assert_eq!(claimed, vec![true, false]);
        let (got, _) = query("color[R=1", ParamStyle::DeepObject, true, &obj());
        assert!(got.is_err());
    }

    #[test]
    fn deep_object_nests() {
        let mut inner = BTreeMap::new();
        inner.insert("gte".to_owned(), Shape::Scalar(Types::NUMBER));
        let mut props = BTreeMap::new();
        props.insert(
            "price".to_owned(),
            Shape::Object {
                props: inner,
                additional: None,
                explicit_additional: false,
            },
        );
        let shape = Shape::Object {
            props,
            additional: Some(Box::new(Shape::Any)),
            explicit_additional: false,
        };
        let mut pairs = parse_query("filter[price][gte]=10.5&filter[name]=x").unwrap();
        let got = decode_query("filter", ParamStyle::DeepObject, true, &shape, &mut pairs);
        assert_eq!(got, Ok(Some(json!({"price": {"gte": 10.5}, "name": "x"}))));
    }

    #[test]
    fn headers_and_cookies() {
        assert_eq!(
            decode_header(" blue, black ,brown", false, &arr()),
            Ok(colors())
        );
        assert_eq!(decode_header("R=100, G=200,B=150", true, &obj()), Ok(rgb()));
        assert_eq!(decode_header("R,100,G,200,B,150", false, &obj()), Ok(rgb()));
        let cookies = parse_cookies(["color=blue,black,brown; id=5", "x=1"].into_iter());
        assert_eq!(
            decode_cookie("color", false, &arr(), &cookies),
            Ok(Some(colors()))
        );
        assert_eq!(
            decode_cookie("id", true, &Shape::Scalar(Types::INTEGER), &cookies),
            Ok(Some(json!(5)))
        );
        assert_eq!(decode_cookie("nope", true, &s(), &cookies), Ok(None));
    }

    #[test]
    fn coercion_follows_the_schema_types() {
        let int = Types::INTEGER;
        assert_eq!(coerce("42", int), json!(42));
        assert_eq!(coerce("-1.5", Types::NUMBER), json!(-1.5));
        assert_eq!(
            coerce("1.5", int),
            json!(1.5),
            "the schema reports the non-integer"
        );
        assert_eq!(coerce("abc", int), json!("abc"));
        assert_eq!(coerce("inf", Types::NUMBER), json!("inf"));
        assert_eq!(coerce("+1", Types::NUMBER), json!("+1"));
        assert_eq!(coerce(" 1", Types::NUMBER), json!(" 1"));
        assert_eq!(coerce("true", Types::BOOLEAN), json!(true));
        assert_eq!(coerce("yes", Types::BOOLEAN), json!("yes"));
        assert_eq!(coerce("", Types::INTEGER.with(Types::NULL)), json!(null));
        assert_eq!(coerce("", Types::STRING.with(Types::NULL)), json!(""));
        assert_eq!(coerce("5", Types::STRING), json!("5"));
        assert_eq!(coerce("5", Types::default()), json!("5"));
    }

    #[test]
    fn form_bodies() {
        let mut props = BTreeMap::new();
        props.insert("qty".to_owned(), Shape::Scalar(Types::INTEGER));
        props.insert("tags".to_owned(), Shape::Array(Types::STRING));
        let shape = Shape::Object {
            props,
            additional: Some(Box::new(Shape::Any)),
            explicit_additional: false,
        };
        assert_eq!(
            decode_form_body("qty=3&tags=a&tags=b+c&note=hi%21", &shape),
            Ok(json!({"qty": 3, "tags": ["a", "b c"], "note": "hi!"}))
        );
        assert_eq!(
            decode_form_body("qty=1&qty=2", &shape),
            Ok(json!({"qty": [1, 2]}))
        );
    }
}
