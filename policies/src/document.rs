//! Safe loading of untrusted JSON and YAML text into a `serde_json::Value`.
//!
//! Specs and catalogs arrive from users, so loading is defensive: a size limit, a nesting
//! limit, duplicate mapping keys refused (YAML and JSON alike: silently keeping the last
//! one hides mistakes), invalid UTF-8 refused, and YAML aliases counted so that an alias
//! bomb ("billion laughs") is refused after a bounded amount of work instead of expanding.
//!
//! YAML goes through `yaml-rust2`'s event parser (YAML 1.2, maintained; `serde_yaml` is
//! archived) so that every limit is checked while the tree is built, never after.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Limits applied while loading a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes the loaded tree may hold, aliases expanded. Bounds alias bombs.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_depth: 128,
            max_nodes: 2_000_000,
        }
    }
}

/// Why a document could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the document is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the document is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("the document is empty")]
    Empty,
    #[error("the document nests deeper than {limit} levels (at line {line})")]
    TooDeep { limit: usize, line: usize },
    #[error(
        "the document expands to more than {limit} nodes (YAML aliases are expanded; an alias bomb is refused)"
    )]
    TooManyNodes { limit: usize },
    #[error("duplicate key `{key}` at line {line}")]
    DuplicateKey { key: String, line: usize },
    #[error("invalid JSON: {message}")]
    Json { message: String },
    #[error("invalid YAML: {message}")]
    Yaml { message: String },
    #[error("unsupported YAML: {message} (at line {line})")]
    UnsupportedYaml { message: String, line: usize },
}

/// Loads JSON or YAML text (told apart by the first non-blank character) into a JSON value.
pub fn load(bytes: &[u8], limits: &Limits) -> Result<Value, LoadError> {
    if bytes.len() > limits.max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LoadError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().chars().next() {
        None => Err(LoadError::Empty),
        Some('{') | Some('[') => load_json(text, limits),
        Some(_) => load_yaml(text, limits),
    }
}

/// Loads JSON text, refusing duplicate keys and excessive nesting.
pub fn load_json(text: &str, limits: &Limits) -> Result<Value, LoadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut state = JsonState {
        limits: *limits,
        depth: 0,
        nodes: 0,
        failure: None,
    };
    let value = (StrictValue { state: &mut state })
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match value {
        Ok(v) => Ok(v),
        Err(e) => Err(state.failure.take().unwrap_or(LoadError::Json {
            message: e.to_string(),
        })),
    }
}

struct JsonState {
    limits: Limits,
    depth: usize,
    nodes: usize,
    /// The typed reason a visitor failed, kept because serde's error type is stringly.
    failure: Option<LoadError>,
}

impl JsonState {
    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.fail(LoadError::TooManyNodes {
                limit: self.limits.max_nodes,
            }));
        }
        Ok(())
    }

    fn fail<E: de::Error>(&mut self, err: LoadError) -> E {
        let message = err.to_string();
        self.failure = Some(err);
        E::custom(message)
    }
}

struct StrictValue<'a> {
    state: &'a mut JsonState,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.state.count()?;
        self.state.depth += 1;
        if self.state.depth > self.state.limits.max_depth {
            let limit = self.state.limits.max_depth;
            return Err(self.state.fail(LoadError::TooDeep { limit, line: 0 }));
        }
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue {
            state: &mut *self.state,
        })? {
            items.push(v);
        }
        self.state.depth -= 1;
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.state.count()?;
        self.state.depth += 1;
        if self.state.depth > self.state.limits.max_depth {
            let limit = self.state.limits.max_depth;
            return Err(self.state.fail(LoadError::TooDeep { limit, line: 0 }));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue {
                state: &mut *self.state,
            })?;
            if out.contains_key(&key) {
                return Err(self.state.fail(LoadError::DuplicateKey { key, line: 0 }));
            }
            out.insert(key, value);
        }
        self.state.depth -= 1;
        Ok(Value::Object(out))
    }
}

/// Loads YAML text (one document) with every limit checked while the tree is built.
pub fn load_yaml(text: &str, limits: &Limits) -> Result<Value, LoadError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = YamlBuilder {
        limits: *limits,
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        root: None,
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| LoadError::Yaml {
            message: e.to_string(),
        })?;
        let line = mark.line();
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart if builder.root.is_some() => {
                return Err(LoadError::UnsupportedYaml {
                    message: "more than one document in the stream".into(),
                    line,
                });
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
            Event::Alias(id) => {
                let value = builder
                    .anchors
                    .get(id)
                    .and_then(|a| a.as_ref())
                    .cloned()
                    .ok_or(LoadError::UnsupportedYaml {
                        message: "alias to an unknown or unfinished anchor".into(),
                        line,
                    })?;
                builder.add_nodes(value.1)?;
                builder.push_value(value.0, 0, value.1, line)?;
            }
            Event::Scalar(raw, style, anchor, tag) => {
                builder.add_nodes(1)?;
                let value = scalar(raw, style, tag.as_ref().map(|t| t.suffix.as_str()), line)?;
                builder.push_value(value, anchor, 1, line)?;
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Frame::Seq(Vec::new()), anchor, line)?;
            }
            Event::MappingStart(anchor, _) => {
                builder.open(
                    Frame::Map {
                        map: Map::new(),
                        key: None,
                    },
                    anchor,
                    line,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(line)?,
        }
    }
    builder.root.ok_or(LoadError::Empty)
}

enum Frame {
    Seq(Vec<Value>),
    Map {
        map: Map<String, Value>,
        key: Option<String>,
    },
}

struct Open {
    frame: Frame,
    anchor: usize,
    /// Node count at the time the container opened, to size it for aliases.
    nodes_at_open: usize,
}

struct YamlBuilder {
    limits: Limits,
    stack: Vec<Open>,
    /// Anchored values with their node counts, by anchor id.
    anchors: Vec<Option<(Value, usize)>>,
    nodes: usize,
    root: Option<Value>,
}

impl YamlBuilder {
    fn add_nodes(&mut self, n: usize) -> Result<(), LoadError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(LoadError::TooManyNodes {
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, anchor: usize, line: usize) -> Result<(), LoadError> {
        self.add_nodes(1)?;
        if self.stack.len() >= self.limits.max_depth {
            return Err(LoadError::TooDeep {
                limit: self.limits.max_depth,
                line,
            });
        }
        self.stack.push(Open {
            frame,
            anchor,
            nodes_at_open: self.nodes - 1,
        });
        Ok(())
    }

    fn close(&mut self, line: usize) -> Result<(), LoadError> {
        let open = self.stack.pop().ok_or(LoadError::UnsupportedYaml {
            message: "unbalanced collection end".into(),
            line,
        })?;
        let size = self.nodes - open.nodes_at_open;
        let value = match open.frame {
            Frame::Seq(items) => Value::Array(items),
            Frame::Map { map, key: None } => Value::Object(map),
            Frame::Map { key: Some(_), .. } => {
                return Err(LoadError::UnsupportedYaml {
                    message: "mapping key without a value".into(),
                    line,
                });
            }
        };
        self.push_value(value, open.anchor, size, line)
    }

    fn push_value(
        &mut self,
        value: Value,
        anchor: usize,
        size: usize,
        line: usize,
    ) -> Result<(), LoadError> {
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some((value.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Open {
                frame: Frame::Seq(items),
                ..
            }) => {
                items.push(value);
                Ok(())
            }
            Some(Open {
                frame: Frame::Map { map, key },
                ..
            }) => match key.take() {
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_owned(),
                        _ => {
                            return Err(LoadError::UnsupportedYaml {
                                message: "a mapping key must be a scalar".into(),
                                line,
                            });
                        }
                    };
                    if k == "<<" {
                        return Err(LoadError::UnsupportedYaml {
                            message: "merge keys (`<<`) are not supported".into(),
                            line,
                        });
                    }
                    if map.contains_key(&k) {
                        return Err(LoadError::DuplicateKey { key: k, line });
                    }
                    *key = Some(k);
                    Ok(())
                }
                Some(k) => {
                    map.insert(k, value);
                    Ok(())
                }
            },
        }
    }
}

/// Resolves a scalar with the YAML 1.2 core schema (plain scalars only are typed).
fn scalar(
    raw: String,
    style: TScalarStyle,
    tag: Option<&str>,
    line: usize,
) -> Result<Value, LoadError> {
    match tag {
        Some("str") => return Ok(Value::String(raw)),
        Some("int") | Some("float") | Some("bool") | Some("null") | None => {}
        Some(other) => {
            return Err(LoadError::UnsupportedYaml {
                message: format!("tag `!{other}` is not supported"),
                line,
            });
        }
    }
    if style != TScalarStyle::Plain && tag.is_none() {
        return Ok(Value::String(raw));
    }
    Ok(match raw.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            // JSON has no infinities or NaN; keep the text rather than inventing a number.
            Value::String(raw)
        }
        s => parse_number(s).unwrap_or(Value::String(raw)),
    })
}

fn parse_number(s: &str) -> Option<Value> {
    let first = s.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-' || *first == b'+' || *first == b'.') {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::from);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Value::from);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(u) = s.parse::<u64>() {
            return Some(Value::from(u));
        }
    }
    // YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let valid_float = {
        let (mantissa, exp) = match digits.find(['e', 'E']) {
            Some(i) => (&digits[..i], Some(&digits[i + 1..])),
            None => (digits, None),
        };
        let mantissa_ok = !mantissa.is_empty()
            && mantissa != "."
            && mantissa.bytes().filter(|b| *b == b'.').count() <= 1
            && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let exp_ok = exp.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        });
        mantissa_ok && exp_ok
    };
    if valid_float {
        return s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(s: &str) -> Result<Value, LoadError> {
        load(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn yaml_core_schema_scalars() {
        let v = yaml(
            "a: 1\nb: -2.5\nc: true\nd: ~\ne: '1'\nf: 1.0.0\ng: 0x1F\nh: abc\ni: 2026-01-01\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a":1,"b":-2.5,"c":true,"d":null,"e":"1","f":"1.0.0","g":31,"h":"abc","i":"2026-01-01"})
        );
    }

    #[test]
    fn json_and_yaml_give_the_same_tree() {
        let j = load(
            br#"{"openapi":"3.1.0","x":[1,{"y":null}]}"#,
            &Limits::default(),
        )
        .unwrap();
        let y = yaml("openapi: 3.1.0\nx:\n  - 1\n  - y: null\n").unwrap();
        assert_eq!(j, y);
    }

    #[test]
    fn duplicate_keys_are_refused_in_both_syntaxes() {
        assert!(matches!(
            yaml("a: 1\nb: 2\na: 3\n"),
            Err(LoadError::DuplicateKey { key, line: 3 }) if key == "a"
        ));
        assert!(matches!(
            load(br#"{"a":1,"a":2}"#, &Limits::default()),
            Err(LoadError::DuplicateKey { key, .. }) if key == "a"
        ));
    }

    #[test]
    fn alias_bomb_is_refused_fast() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let prev = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        // 10^30 nodes if expanded; the budget stops the expansion after at most
        // `max_nodes` nodes of work, which is what makes the refusal fast.
        let small = Limits {
            max_nodes: 10_000,
            ..Limits::default()
        };
        assert!(matches!(
            load(doc.as_bytes(), &small),
            Err(LoadError::TooManyNodes { limit: 10_000 })
        ));
        assert!(matches!(yaml(&doc), Err(LoadError::TooManyNodes { .. })));
    }

    #[test]
    fn aliases_within_budget_expand() {
        let v = yaml("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(v, json!({"base":{"x":1},"other":{"x":1}}));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(matches!(
            load(deep.as_bytes(), &Limits::default()),
            Err(LoadError::TooDeep { .. }) | Err(LoadError::Json { .. })
        ));
        let deep_yaml = (0..200)
            .map(|i| format!("{}k:", "  ".repeat(i)))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(yaml(&deep_yaml), Err(LoadError::TooDeep { .. })));
    }

    #[test]
    fn invalid_utf8_size_and_empty() {
        assert!(matches!(
            load(b"a: \xff\xfe", &Limits::default()),
            Err(LoadError::InvalidUtf8 { offset: 3 })
        ));
        let small = Limits {
            max_bytes: 4,
            ..Limits::default()
        };
        assert!(matches!(
            load(b"a: 12345", &small),
            Err(LoadError::TooLarge { size: 8, limit: 4 })
        ));
        assert!(matches!(yaml("   \n"), Err(LoadError::Empty)));
    }

    #[test]
    fn merge_keys_and_custom_tags_are_refused() {
        assert!(matches!(
            yaml("a: &a {x: 1}\nb:\n  <<: *a\n"),
            Err(LoadError::UnsupportedYaml { .. })
        ));
        assert!(matches!(
            yaml("a: !python/object 1\n"),
            Err(LoadError::UnsupportedYaml { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
            let _ = load(s.as_bytes(), &Limits::default());
        }

        #[test]
        fn json_round_trips(v in arb_json()) {
            let text = serde_json::to_string(&v).unwrap();
            proptest::prop_assert_eq!(load(text.as_bytes(), &Limits::default()).unwrap(), v);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
