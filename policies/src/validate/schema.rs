//! OpenAPI schemas → JSON Schema 2020-12, compiled once with the `jsonschema` crate, and
//! validation errors → precise [`FieldError`]s.
//!
//! Every schema an operation uses is converted into one *resource* per direction
//! (request, response): `{"$defs": {"s0": …, "s1": …}}`, where each `sN` is the converted
//! schema found at one JSON pointer of the document. Every `$ref` is rewritten to the
//! absolute `urn:gatehouse:<direction>#/$defs/sN` of its target, so references resolve
//! once, against the document, through one shared `jsonschema::Registry`, and recursive
//! schemas are plain reference cycles the crate already handles. Keying by pointer (not
//! by position in the converted tree) keeps the conversion free to restructure a schema
//! (the `nullable` wrap, the discriminator dispatch) without breaking references into it.
//!
//! Why two directions: `readOnly` properties are refused in requests and `writeOnly`
//! properties in responses, and a `required` read-only property is only required in
//! responses (OpenAPI 3.0.3, Schema Object). The same component therefore compiles to two
//! different schemas.

use super::tape::{Tape, TapeJson, TapeNode};
use crate::openapi::{Dialect, Document, Schema, escape_pointer};
use crate::problem::FieldError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{
    Draft, Keyword, Registry, Retrieve, ValidationError, ValidationOptions, Validator,
};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// Which side of the exchange a schema is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Parameters and request bodies: `readOnly` properties are refused.
    Request,
    /// Response bodies: `writeOnly` properties are refused.
    Response,
}

impl Direction {
    fn base(self) -> &'static str {
        match self {
            Direction::Request => "urn:gatehouse:request",
            Direction::Response => "urn:gatehouse:response",
        }
    }

    /// The OpenAPI flag whose properties this direction refuses.
    fn refused_flag(self) -> &'static str {
        match self {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        }
    }
}

/// The keyword the conversion puts in place of a property that must not be sent. A
/// custom keyword (rather than a `false` schema) so that the error says why.
const FORBIDDEN: &str = "x-gatehouse-forbidden";

/// Deepest schema nesting converted; deeper schemas are reported, not recursed into.
const MAX_SCHEMA_DEPTH: usize = 256;

/// Something found while converting that makes a schema unusable as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConvertProblem {
    /// A `$ref` that does not resolve inside the document.
    UnresolvedRef { pointer: String, reference: String },
    /// A schema nested deeper than [`MAX_SCHEMA_DEPTH`].
    TooDeep { pointer: String },
}

/// Converts the schemas of one document for one direction into one `$defs` resource.
#[derive(Debug)]
pub(crate) struct Converter<'d> {
    doc: &'d Document,
    dir: Direction,
    ids: HashMap<String, usize>,
    /// `(pointer, converted schema)` by id.
    defs: Vec<(String, Value)>,
    /// Ids reserved by a `$ref` whose target is not converted yet.
    queue: Vec<usize>,
    pub(crate) problems: Vec<ConvertProblem>,
}

impl<'d> Converter<'d> {
    pub(crate) fn new(doc: &'d Document, dir: Direction) -> Self {
        Self {
            doc,
            dir,
            ids: HashMap::new(),
            defs: Vec::new(),
            queue: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Converts a schema (and everything it references) and returns its id.
    pub(crate) fn add(&mut self, schema: &Schema) -> usize {
        if let Some(&id) = self.ids.get(&schema.pointer) {
            return id;
        }
        let id = self.reserve(&schema.pointer);
        let converted = self.convert(&schema.value, &schema.pointer, 0);
        self.defs[id].1 = converted;
        while let Some(next) = self.queue.pop() {
            let pointer = self.defs[next].0.clone();
            let converted = match self.doc.tree.pointer(&pointer) {
                Some(target) => self.convert(target, &pointer, 0),
                // Reported where the reference was met; `true` keeps the rest usable.
                None => Value::Bool(true),
            };
            self.defs[next].1 = converted;
        }
        id
    }

    /// The absolute reference of a def, as a one-keyword schema.
    fn entry_schema(&self, id: usize) -> Value {
        json!({ "$ref": format!("{}#/$defs/s{id}", self.dir.base()) })
    }

    /// The converted def, for inspection in tests.
    #[cfg(test)]
    pub(crate) fn def(&self, id: usize) -> &Value {
        &self.defs[id].1
    }

    /// The resource holding every converted schema, with the `set_aside` ones replaced
    /// by `true` (they failed to compile; no entry that reaches them is used).
    pub(crate) fn resource<T>(&self, set_aside: &HashMap<usize, T>) -> Value {
        let mut defs = Map::with_capacity(self.defs.len());
        for (id, (_, schema)) in self.defs.iter().enumerate() {
            let schema = if set_aside.contains_key(&id) {
                Value::Bool(true)
            } else {
                schema.clone()
            };
            defs.insert(format!("s{id}"), schema);
        }
        json!({ "$defs": defs })
    }

    /// Each converted def with its pointer: what meta-validation walks.
    pub(crate) fn defs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.defs.iter().map(|(p, v)| (p.as_str(), v))
    }

    fn reserve(&mut self, pointer: &str) -> usize {
        let id = self.defs.len();
        self.defs.push((pointer.to_owned(), Value::Bool(true)));
        self.ids.insert(pointer.to_owned(), id);
        id
    }

    /// Rewrites an internal reference (`#/components/schemas/Order`) to its def.
    fn ref_uri(&mut self, reference: &str, at: &str) -> Value {
        let pointer = decode_fragment(reference);
        let id = match (&pointer, self.ids.get(pointer.as_deref().unwrap_or(""))) {
            (Some(_), Some(&id)) => id,
            (Some(p), None) if self.doc.tree.pointer(p).is_some() => {
                let id = self.reserve(p);
                self.queue.push(id);
                id
            }
            _ => {
                self.problems.push(ConvertProblem::UnresolvedRef {
                    pointer: format!("{at}/$ref"),
                    reference: reference.to_owned(),
                });
                // A def that accepts everything keeps the other schemas compilable.
                let key = format!("unresolved:{reference}");
                match self.ids.get(&key) {
                    Some(&id) => id,
                    None => self.reserve(&key),
                }
            }
        };
        Value::String(format!("{}#/$defs/s{id}", self.dir.base()))
    }

    fn convert(&mut self, schema: &Value, at: &str, depth: usize) -> Value {
        if depth > MAX_SCHEMA_DEPTH {
            self.problems.push(ConvertProblem::TooDeep {
                pointer: at.to_owned(),
            });
            return Value::Bool(true);
        }
        match schema {
            Value::Object(map) => self.convert_object(map, at, depth),
            // Boolean schemas (3.1) and malformed ones go as they are; meta-validation
            // reports the malformed.
            other => other.clone(),
        }
    }

    fn convert_object(&mut self, map: &Map<String, Value>, at: &str, depth: usize) -> Value {
        let v30 = self.doc.dialect == Dialect::V30;
        if v30 {
            // 3.0: a Reference Object replaces the schema; its siblings are ignored.
            if let Some(Value::String(reference)) = map.get("$ref") {
                let uri = self.ref_uri(reference, at);
                return json!({ "$ref": uri });
            }
        }
        // 3.0 writes exclusive bounds as booleans beside `minimum`/`maximum`.
        let exclusive_min = v30 && map.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let exclusive_max = v30 && map.get("exclusiveMaximum") == Some(&Value::Bool(true));
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
            let child_at = format!("{at}/{}", escape_pointer(key));
            match key.as_str() {
                // Extensions are annotations; dropping them also keeps ours unforgeable.
                k if k.starts_with("x-") => {}
                // The document is the one base: nested ids and dialects would re-base refs.
                "$id" | "$schema" => {}
                // Handled after the loop, from `map`.
                "discriminator" | "nullable" if v30 => {}
                "discriminator" => {}
                // 3.0 annotations that are not JSON Schema keywords.
                "example" | "xml" | "externalDocs" if v30 => {}
                "exclusiveMinimum" | "exclusiveMaximum" if v30 && value.is_boolean() => {}
                "minimum" if exclusive_min => {
                    out.insert("exclusiveMinimum".into(), value.clone());
                }
                "maximum" if exclusive_max => {
                    out.insert("exclusiveMaximum".into(), value.clone());
                }
                "$ref" => {
                    let converted = match value.as_str() {
                        Some(reference) => self.ref_uri(reference, at),
                        None => value.clone(),
                    };
                    out.insert(key.clone(), converted);
                }
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => {
                    let converted = match value {
                        Value::Object(children) => {
                            let mut m = Map::with_capacity(children.len());
                            for (name, child) in children {
                                let at = format!("{child_at}/{}", escape_pointer(name));
                                m.insert(name.clone(), self.convert(child, &at, depth + 1));
                            }
                            Value::Object(m)
                        }
                        other => other.clone(),
                    };
                    out.insert(key.clone(), converted);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" | "items" if value.is_array() => {
                    let items = value.as_array().map_or(&[][..], Vec::as_slice);
                    let converted = items
                        .iter()
                        .enumerate()
                        .map(|(i, child)| {
                            self.convert(child, &format!("{child_at}/{i}"), depth + 1)
                        })
                        .collect();
                    out.insert(key.clone(), Value::Array(converted));
                }
                "items"
                | "additionalProperties"
                | "additionalItems"
                | "not"
                | "contains"
                | "if"
                | "then"
                | "else"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties"
                | "contentSchema" => {
                    out.insert(key.clone(), self.convert(value, &child_at, depth + 1));
                }
                // `enum`, `const`, `default`, `examples`, `required` and every other keyword
                // are data or scalars: copied as written.
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        self.refuse_directional_properties(map, &mut out);
        add_integer_format_bounds(&mut out);
        self.discriminator_dispatch(map, at, &mut out);
        if v30 && map.get("nullable") == Some(&Value::Bool(true)) {
            return make_nullable(out);
        }
        Value::Object(out)
    }

    /// Replaces each property this direction refuses (`readOnly` in requests, `writeOnly`
    /// in responses) with the forbidding keyword, and drops refused names from
    /// `required`, including names whose property is declared in an `allOf` member (the
    /// common `allOf: [{$ref: Base}, {required: [id]}]` shape).
    fn refuse_directional_properties(
        &self,
        original: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) {
        let flag = self.dir.refused_flag();
        let own: Vec<&String> = match original.get("properties") {
            Some(Value::Object(props)) => props
                .iter()
                .filter(|(_, schema)| self.has_flag(schema, flag))
                .map(|(name, _)| name)
                .collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Object(converted)) = out.get_mut("properties") {
            for name in &own {
                converted.insert((*name).clone(), json!({ FORBIDDEN: flag }));
            }
        }
        if let Some(Value::Array(required)) = out.get_mut("required") {
            let mut refused: HashSet<&str> = own.iter().map(|n| n.as_str()).collect();
            self.refused_in_all_of(original, flag, &mut refused, 0);
            if !refused.is_empty() {
                required.retain(|r| r.as_str().is_none_or(|name| !refused.contains(name)));
            }
        }
    }

    /// Names of refused properties declared by the `allOf` members of a schema (followed
    /// through `$ref`s and nested `allOf`s, to a bounded depth).
    fn refused_in_all_of<'a>(
        &'a self,
        schema: &'a Map<String, Value>,
        flag: &str,
        out: &mut HashSet<&'a str>,
        depth: usize,
    ) {
        let Some(Value::Array(members)) = schema.get("allOf") else {
            return;
        };
        if depth > 8 {
            return;
        }
        for member in members {
            let Some((Value::Object(member), _)) = self.doc.deref(member, "") else {
                continue;
            };
            if let Some(Value::Object(props)) = member.get("properties") {
                for (name, prop) in props {
                    if self.has_flag(prop, flag) {
                        out.insert(name.as_str());
                    }
                }
            }
            self.refused_in_all_of(member, flag, out, depth + 1);
        }
    }

    /// Whether a schema (following `$ref`s) carries `flag: true`. In 3.0 the siblings of a
    /// `$ref` are ignored, as everywhere else.
    fn has_flag(&self, schema: &Value, flag: &str) -> bool {
        let v30 = self.doc.dialect == Dialect::V30;
        let mut current = schema;
        for _ in 0..64 {
            let reference = current.get("$ref").and_then(Value::as_str);
            if !(v30 && reference.is_some()) && current.get(flag) == Some(&Value::Bool(true)) {
                return true;
            }
            match reference.and_then(|r| self.doc.resolve(r)) {
                Some(next) => current = next,
                None => return false,
            }
        }
        false
    }

    /// `oneOf`/`anyOf` with a `discriminator`: validate against the one branch the
    /// discriminator property names, so the errors are that branch's only. Falls back to
    /// the plain composition when a branch cannot be named (inline schemas, external
    /// mappings): still correct, only less precise.
    fn discriminator_dispatch(
        &mut self,
        original: &Map<String, Value>,
        at: &str,
        out: &mut Map<String, Value>,
    ) {
        let Some(disc) = original.get("discriminator").and_then(Value::as_object) else {
            return;
        };
        let Some(property) = disc.get("propertyName").and_then(Value::as_str) else {
            return;
        };
        let key = if original.contains_key("oneOf") {
            "oneOf"
        } else if original.contains_key("anyOf") {
            "anyOf"
        } else {
            // The allOf-inheritance form (discriminator on a base schema) selects a subtype
            // by name from the whole document; it is left to the plain schemas.
            return;
        };
        let Some(branches) = original.get(key).and_then(Value::as_array) else {
            return;
        };
        let mut cases: Vec<(String, String)> = Vec::new();
        if let Some(mapping) = disc.get("mapping").and_then(Value::as_object) {
            for (name, target) in mapping {
                let Some(target) = target.as_str() else {
                    return;
                };
                let reference = if target.starts_with('#') {
                    target.to_owned()
                } else if target.contains('/') || target.contains('.') {
                    return;
                } else {
                    format!("#/components/schemas/{}", escape_pointer(target))
                };
                cases.push((name.clone(), reference));
            }
        }
        for branch in branches {
            let Some(reference) = branch.get("$ref").and_then(Value::as_str) else {
                return;
            };
            if !cases.iter().any(|(_, r)| r == reference) {
                let name = reference.rsplit('/').next().unwrap_or(reference);
                cases.push((unescape_pointer(name), reference.to_owned()));
            }
        }
        if cases.is_empty() || cases.iter().any(|(_, r)| self.doc.resolve(r).is_none()) {
            return;
        }
        let names: Vec<Value> = cases
            .iter()
            .map(|(n, _)| Value::String(n.clone()))
            .collect();
        let mut dispatch = vec![json!({
            "type": "object",
            "required": [property],
            "properties": { property: { "enum": names } },
        })];
        for (name, reference) in &cases {
            let uri = self.ref_uri(reference, at);
            dispatch.push(json!({
                "if": { "required": [property], "properties": { property: { "const": name } } },
                "then": { "$ref": uri },
            }));
        }
        out.remove(key);
        match out.get_mut("allOf") {
            Some(Value::Array(all)) => all.extend(dispatch),
            _ => {
                out.insert("allOf".into(), Value::Array(dispatch));
            }
        }
    }
}

/// OpenAPI 3.0 `nullable: true`: null is accepted, whatever else the schema says.
///
/// `type` and `enum` take `null` in place. A schema that combines (`allOf`, `anyOf`,
/// `oneOf`, `not`) could still refuse null through its subschemas (the classic false
/// rejection of `{nullable: true, allOf: [{$ref: X}]}`), so it is wrapped as
/// `if null then accept else <schema>`: null passes, and every other value meets the
/// schema's own, precise errors (an `anyOf` wrap would hide them behind one summary).
fn make_nullable(mut out: Map<String, Value>) -> Value {
    match out.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            out.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
            types.push(Value::from("null"));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = out.get_mut("enum")
        && !options.contains(&Value::Null)
    {
        options.push(Value::Null);
    }
    let composes = ["allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| out.contains_key(*k));
    if composes {
        json!({ "if": { "type": "null" }, "else": Value::Object(out) })
    } else {
        Value::Object(out)
    }
}

/// `format: int32`/`int64` on a number: the range check, as `minimum`/`maximum` (formats
/// only apply to strings in JSON Schema). A bound already stricter is kept.
fn add_integer_format_bounds(out: &mut Map<String, Value>) {
    let (low, high): (i64, i64) = match out.get("format").and_then(Value::as_str) {
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("int64") => (i64::MIN, i64::MAX),
        _ => return,
    };
    let keep_min = out
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m >= low as f64);
    if !keep_min {
        out.insert("minimum".into(), Value::from(low));
    }
    let keep_max = out
        .get("maximum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m <= high as f64);
    if !keep_max {
        out.insert("maximum".into(), Value::from(high));
    }
}

/// `#/a/b%20c` → `/a/b c`, as [`crate::openapi::resolve_in`] reads references.
fn decode_fragment(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    let decoded = percent_encoding::percent_decode_str(fragment)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

// ---------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------

/// A compiled schema: the one validator of its document and direction, and the entry
/// (`sN`) under which this schema sits in it.
///
/// Why one validator per document: the crate compiles every `$ref` target a validator
/// reaches into that validator. Real APIs are densely connected graphs (GitHub's
/// `repository` reaches most of its 900 schemas), so one validator per operation would
/// compile the graph once per operation: measured on a synthetic 1,200-operation spec,
/// 130 s and 18 GB. A single root whose `properties` are the entries compiles each
/// schema once; the instance is validated as `{"sN": instance}`, which evaluates entry
/// `sN` only (a hash lookup), and the `/sN` prefix is taken off the error pointers.
#[derive(Debug, Clone)]
pub(crate) struct CompiledSchema {
    set: Arc<Validator<TapeJson>>,
    key: Arc<str>,
}

impl CompiledSchema {
    /// Whether two compiled schemas live in the same compiled validator.
    #[cfg(test)]
    pub(crate) fn shares_set_with(&self, other: &CompiledSchema) -> bool {
        Arc::ptr_eq(&self.set, &other.set)
    }
}

/// Why one converted schema did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaFailure {
    pub(crate) pointer: String,
    pub(crate) message: String,
}

/// At most this many build attempts, each after setting aside one more schema the crate
/// refused; a document with more broken schemas than this is refused as a whole.
const MAX_BUILD_ATTEMPTS: usize = 32;

/// Compiles the requested defs of one converter into one validator.
///
/// Each def is meta-validated against JSON Schema 2020-12 first, so that every malformed
/// schema is reported where it is written, all at once. What only the build detects (a
/// `pattern` that is not a valid regex) fails the build with a location; that def is set
/// aside (replaced by `true`) and the build is retried. Every entry that reaches a
/// set-aside def through `$ref` is a failure, never a silently weaker check.
pub(crate) fn compile_defs(
    converter: &Converter<'_>,
    wanted: &[usize],
) -> HashMap<usize, Result<CompiledSchema, SchemaFailure>> {
    let mut invalid: HashMap<usize, SchemaFailure> = HashMap::new();
    for (id, (pointer, def)) in converter.defs().enumerate() {
        if let Err(e) = jsonschema::draft202012::meta::validate(def) {
            invalid.insert(
                id,
                SchemaFailure {
                    pointer: join_pointer(pointer, e.instance_path().as_str()),
                    message: e.to_string(),
                },
            );
        }
    }
    let mut last_error = None;
    for _ in 0..MAX_BUILD_ATTEMPTS {
        match build_set(converter, wanted, &invalid) {
            Ok(out) => return out,
            Err(BuildFailure::Def(id, failure)) if !invalid.contains_key(&id) => {
                invalid.insert(id, failure);
            }
            Err(BuildFailure::Def(_, failure) | BuildFailure::Whole(failure)) => {
                last_error = Some(failure);
                break;
            }
        }
    }
    let failure = last_error.unwrap_or_else(|| SchemaFailure {
        pointer: String::new(),
        message: format!("more than {MAX_BUILD_ATTEMPTS} schemas cannot be compiled"),
    });
    let tainted = tainted(converter, &invalid);
    wanted
        .iter()
        .map(|&id| {
            let f = tainted.get(&id).cloned().unwrap_or_else(|| failure.clone());
            (id, Err(f))
        })
        .collect()
}

enum BuildFailure {
    /// The crate refused one def: its id and where.
    Def(usize, SchemaFailure),
    /// The crate refused something no def can be blamed for.
    Whole(SchemaFailure),
}

/// One build attempt with the `invalid` defs set aside.
fn build_set(
    converter: &Converter<'_>,
    wanted: &[usize],
    invalid: &HashMap<usize, SchemaFailure>,
) -> Result<HashMap<usize, Result<CompiledSchema, SchemaFailure>>, BuildFailure> {
    let mut out = HashMap::with_capacity(wanted.len());
    let mut entries = Map::new();
    let tainted = tainted(converter, invalid);
    for &id in wanted {
        // A def reaches others through `$ref`: any malformed def it reaches is its failure.
        match tainted.get(&id) {
            Some(failure) => {
                out.insert(id, Err(failure.clone()));
            }
            None => {
                entries.insert(format!("s{id}"), converter.entry_schema(id));
            }
        }
    }
    let whole = |e: &dyn std::fmt::Display| {
        BuildFailure::Whole(SchemaFailure {
            pointer: String::new(),
            message: e.to_string(),
        })
    };
    let resource = Draft::Draft202012.create_resource(converter.resource(invalid));
    let registry = Registry::new()
        .draft(Draft::Draft202012)
        .add(converter.dir.base(), resource)
        .and_then(|builder| builder.prepare())
        .map_err(|e| whole(&e))?;
    let keys: Vec<(usize, Arc<str>)> = wanted
        .iter()
        .filter(|id| !out.contains_key(*id))
        .map(|&id| (id, Arc::from(format!("s{id}"))))
        .collect();
    let root = json!({ "properties": entries });
    let set = validator_options(&registry).build(&root).map_err(|e| {
        let at = e.instance_path().as_str();
        match def_of(at) {
            Some(id) => BuildFailure::Def(
                id,
                SchemaFailure {
                    pointer: locate(converter, at).unwrap_or_default(),
                    message: e.to_string(),
                },
            ),
            None => whole(&e),
        }
    })?;
    let set = Arc::new(set);
    for (id, key) in keys {
        out.insert(
            id,
            Ok(CompiledSchema {
                set: Arc::clone(&set),
                key,
            }),
        );
    }
    Ok(out)
}

/// The def a resource location (`/$defs/s7/...`) is in.
fn def_of(location: &str) -> Option<usize> {
    let rest = location.strip_prefix("/$defs/s")?;
    rest[..rest.find('/').unwrap_or(rest.len())].parse().ok()
}

/// Every def that reaches a malformed one through `$ref`s (itself included), with the
/// failure it reaches. One pass over the reversed reference graph, so a bad schema in a
/// large, densely linked document costs linear time, not a walk per entry.
fn tainted(
    converter: &Converter<'_>,
    invalid: &HashMap<usize, SchemaFailure>,
) -> HashMap<usize, SchemaFailure> {
    let mut out = HashMap::new();
    if invalid.is_empty() {
        return out;
    }
    let prefix = format!("{}#/$defs/s", converter.dir.base());
    let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); converter.defs.len()];
    for (from, (_, def)) in converter.defs.iter().enumerate() {
        let mut targets = Vec::new();
        collect_refs(def, &prefix, &mut targets);
        for to in targets {
            if let Some(list) = referrers.get_mut(to) {
                list.push(from);
            }
        }
    }
    let mut bad: Vec<(&usize, &SchemaFailure)> = invalid.iter().collect();
    // Deterministic blame when a def reaches several bad ones.
    bad.sort_by_key(|(id, _)| **id);
    for (&id, failure) in bad {
        let mut stack = vec![id];
        while let Some(current) = stack.pop() {
            if out.contains_key(&current) {
                continue;
            }
            out.insert(current, failure.clone());
            if let Some(list) = referrers.get(current) {
                stack.extend(list.iter().copied());
            }
        }
    }
    out
}

fn collect_refs(value: &Value, prefix: &str, out: &mut Vec<usize>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(id) = v
                        .as_str()
                        .and_then(|s| s.strip_prefix(prefix))
                        .and_then(|n| n.parse().ok())
                    {
                        out.push(id);
                    }
                } else if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    collect_refs(v, prefix, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, prefix, out)),
        _ => {}
    }
}

/// Maps a location in the resource (`/$defs/s7/properties/code/pattern`) back to the
/// document (`/components/schemas/Order/properties/code/pattern`). Conversion keeps the
/// shape of a schema except where it wraps one, so this is exact in practice.
fn locate(converter: &Converter<'_>, location: &str) -> Option<String> {
    let rest = location.strip_prefix("/$defs/s")?;
    let (id, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let id: usize = id.parse().ok()?;
    converter
        .defs
        .get(id)
        .map(|(pointer, _)| join_pointer(pointer, tail))
}

fn join_pointer(base: &str, rest: &str) -> String {
    format!("{base}{rest}")
}

/// The one set of options every schema is built with. Instances are [`Tape`]s.
fn validator_options<'r>(
    registry: &'r Registry<'r>,
) -> ValidationOptions<'r, Arc<dyn Retrieve>, TapeJson> {
    jsonschema::options_for::<TapeJson>()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        // OpenAPI's own formats (OpenAPI Format Registry). Numbers get their int32/int64
        // range as bounds during conversion; these check the string spellings.
        .with_format("int32", |s: &str| s.parse::<i32>().is_ok())
        .with_format("int64", |s: &str| s.parse::<i64>().is_ok())
        .with_format("float", |s: &str| {
            s.parse::<f32>().is_ok_and(f32::is_finite)
        })
        .with_format("double", |s: &str| {
            s.parse::<f64>().is_ok_and(f64::is_finite)
        })
        .with_format("byte", is_base64)
        .with_keyword(FORBIDDEN, |_parent, value, _location| {
            let refused = match value.as_str() {
                Some("writeOnly") => RefusedProperty::WriteOnly,
                _ => RefusedProperty::ReadOnly,
            };
            Ok(Box::new(refused) as Box<dyn for<'i> Keyword<'i, TapeJson>>)
        })
}

/// RFC 4648 base64 (standard or URL-safe alphabet; padding optional, as clients differ).
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    padding <= 2
        && (padding == 0 || s.len().is_multiple_of(4))
        && body.len() % 4 != 1
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// The keyword behind [`FORBIDDEN`]: any value at all is an error.
#[derive(Debug, Clone, Copy)]
enum RefusedProperty {
    ReadOnly,
    WriteOnly,
}

impl<'i> Keyword<'i, TapeJson> for RefusedProperty {
    fn validate(&self, _instance: TapeNode<'i>) -> Result<(), ValidationError<'i>> {
        Err(ValidationError::custom(match self {
            RefusedProperty::ReadOnly => {
                "is read-only: the server sets it, so a request must not send it"
            }
            RefusedProperty::WriteOnly => {
                "is write-only: it may be sent in requests but must never appear in a response"
            }
        }))
    }

    fn is_valid(&self, _instance: TapeNode<'i>) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Where errors of one validation go and how their pointers are written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// The body: pointers are JSON Pointers into it.
    Body,
    /// A parameter: the pointer is its name; a position inside it goes in the message.
    Param { location: &'a str, name: &'a str },
}

/// Validates `instance` and appends at most `limit - out.len()` errors to `out`.
/// Returns whether the instance is valid. The fast `is_valid` runs first: valid
/// requests never pay for error collection.
pub(crate) fn check<'a>(
    schema: &'a CompiledSchema,
    mut instance: Tape<'a>,
    target: Target<'_>,
    limit: usize,
    out: &mut Vec<FieldError>,
) -> bool {
    instance.set_entry(&schema.key);
    let wrapper = instance.root();
    if schema.set.is_valid(wrapper) {
        return true;
    }
    // Every instance path starts with `/sN`, the entry; the client never saw it.
    let entry = schema.key.len() + 1;
    let mut found = Vec::new();
    for error in schema.set.iter_errors(wrapper) {
        describe(&error, entry, &mut found, 0);
        if out.len() + found.len() >= limit {
            break;
        }
    }
    if found.is_empty() {
        // The crate promised an error; never let an invalid instance pass silently.
        found.push(Described {
            pointer: String::new(),
            message: "does not match the schema".into(),
        });
    }
    for d in found {
        if out.len() >= limit {
            break;
        }
        out.push(match target {
            Target::Body => FieldError {
                location: "body".into(),
                pointer: d.pointer,
                message: d.message,
            },
            Target::Param { location, name } => FieldError {
                location: location.into(),
                pointer: name.into(),
                message: if d.pointer.is_empty() {
                    d.message
                } else {
                    format!("at {}: {}", d.pointer, d.message)
                },
            },
        });
    }
    false
}

/// One error before it is placed: a JSON pointer into the instance and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Described {
    pointer: String,
    message: String,
}

/// Turns one crate error into one or more precise errors: a missing property is pointed
/// at where it should be, each unexpected property at itself, and a failed `oneOf` /
/// `anyOf` whose intent is clear (one alternative failed deeper than on its type) reports
/// that alternative's own errors.
///
/// `entry` is the length of the `/sN` prefix every instance path has (see
/// [`CompiledSchema`]); it is cut off here.
fn describe(error: &ValidationError<'_>, entry: usize, out: &mut Vec<Described>, depth: usize) {
    let at = error
        .instance_path()
        .as_str()
        .get(entry..)
        .unwrap_or("")
        .to_owned();
    let instance: &Value = error.instance();
    let push = |out: &mut Vec<Described>, pointer: String, message: String| {
        out.push(Described { pointer, message });
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            push(
                out,
                format!("{at}/{}", escape_pointer(&name)),
                "is required but missing".into(),
            );
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                push(
                    out,
                    format!("{at}/{}", escape_pointer(name)),
                    "is not a property the schema allows here".into(),
                );
            }
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let keyword = error.kind().keyword().to_owned();
            // Alternatives that fail only because the value is of another type say little;
            // the others show what the client was trying to send.
            let plausible: Vec<(usize, &Vec<ValidationError<'static>>)> = context
                .iter()
                .enumerate()
                .filter(|(_, errs)| {
                    !errs.iter().all(|e| {
                        matches!(e.kind(), ValidationErrorKind::Type { .. })
                            && e.instance_path().as_str().get(entry..).unwrap_or("") == at
                    })
                })
                .collect();
            if let [(_, only)] = plausible.as_slice()
                && depth < 8
            {
                for e in only.iter() {
                    describe(e, entry, out, depth + 1);
                }
                return;
            }
            let shown: Vec<(usize, &Vec<ValidationError<'static>>)> = if plausible.is_empty() {
                context.iter().enumerate().collect()
            } else {
                plausible
            };
            let mut message = format!(
                "matches none of the {} alternatives ({keyword})",
                context.len()
            );
            for (i, errs) in shown.iter().take(4) {
                let mut inner = Vec::new();
                if let Some(first) = errs.first() {
                    describe(first, entry, &mut inner, depth + 1);
                }
                if let Some(d) = inner.first() {
                    let where_ = if d.pointer == at || d.pointer.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", d.pointer)
                    };
                    let _ = write!(message, "; alternative {}: {where_}{}", i + 1, d.message);
                }
            }
            push(out, at, message);
        }
        _ => {
            let message = message_for(error.kind(), instance);
            push(out, at, message);
        }
    }
}

/// A message a client developer can act on without reading the spec.
fn message_for(kind: &ValidationErrorKind, instance: &Value) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.as_str().to_owned(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("must be {expected}, got {}", describe_value(instance))
        }
        ValidationErrorKind::Enum { options } => {
            let listed = match options.as_ref() {
                Value::Array(items) => list_values(items),
                other => show(other),
            };
            format!("must be one of {listed}; got {}", show(instance))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("must be {}; got {}", show(expected_value), show(instance))
        }
        ValidationErrorKind::Format { format } => {
            format!(
                "must be {}; got {}",
                format_description(format),
                show(instance)
            )
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("must be >= {limit}; got {}", show(instance))
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be <= {limit}; got {}", show(instance))
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be > {limit}; got {}", show(instance))
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be < {limit}; got {}", show(instance))
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!(
                "must be a multiple of {multiple_of}; got {}",
                show(instance)
            )
        }
        ValidationErrorKind::MinLength { limit } => format!(
            "must be at least {limit} character{} long; got {}",
            plural(*limit),
            char_count(instance)
        ),
        ValidationErrorKind::MaxLength { limit } => format!(
            "must be at most {limit} character{} long; got {}",
            plural(*limit),
            char_count(instance)
        ),
        ValidationErrorKind::Pattern { pattern } => {
            format!("must match the pattern `{pattern}`; got {}", show(instance))
        }
        ValidationErrorKind::MinItems { limit } => format!(
            "must have at least {limit} item{}; got {}",
            plural(*limit),
            instance.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::MaxItems { limit } => format!(
            "must have at most {limit} item{}; got {}",
            plural(*limit),
            instance.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::UniqueItems => "must not contain duplicate items".into(),
        ValidationErrorKind::MinProperties { limit } => format!(
            "must have at least {limit} propert{}; got {}",
            if *limit == 1 { "y" } else { "ies" },
            instance.as_object().map_or(0, Map::len)
        ),
        ValidationErrorKind::MaxProperties { limit } => format!(
            "must have at most {limit} propert{}; got {}",
            if *limit == 1 { "y" } else { "ies" },
            instance.as_object().map_or(0, Map::len)
        ),
        ValidationErrorKind::Contains => "must contain at least one item the schema allows".into(),
        ValidationErrorKind::Not { .. } => "must not match the schema under `not`".into(),
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the alternatives (oneOf); it must match exactly one".into()
        }
        ValidationErrorKind::FalseSchema => "is not allowed here".into(),
        ValidationErrorKind::Custom { message, .. } => message.clone(),
        ValidationErrorKind::PropertyNames { error } => {
            format!("has a property name that is not allowed: {error}")
        }
        ValidationErrorKind::AdditionalItems { limit } => {
            format!("must have at most {limit} items")
        }
        ValidationErrorKind::UnevaluatedItems { .. } => {
            "has items the schema does not allow".into()
        }
        ValidationErrorKind::ContentEncoding { content_encoding } => {
            format!("must be {content_encoding}-encoded")
        }
        ValidationErrorKind::ContentMediaType { content_media_type } => {
            format!("must be a valid {content_media_type} document")
        }
        other => format!("fails `{}`", other.keyword()),
    }
}

fn format_description(format: &str) -> String {
    match format {
        "date" => "a date (RFC 3339 full-date, e.g. 2024-05-31)".into(),
        "date-time" => "a date-time (RFC 3339, e.g. 2024-05-31T12:00:00Z)".into(),
        "time" => "a time (RFC 3339 full-time, e.g. 12:00:00Z)".into(),
        "uuid" => "a UUID (e.g. 3fa85f64-5717-4562-b3fc-2c963f66afa6)".into(),
        "email" => "an email address".into(),
        "uri" => "an absolute URI (e.g. https://example.com/x)".into(),
        "uri-reference" => "a URI reference".into(),
        "hostname" => "a host name".into(),
        "ipv4" => "an IPv4 address".into(),
        "ipv6" => "an IPv6 address".into(),
        "duration" => "an ISO 8601 duration (e.g. P3D)".into(),
        "int32" => "a 32-bit integer".into(),
        "int64" => "a 64-bit integer".into(),
        "byte" => "base64-encoded bytes".into(),
        other => format!("a valid `{other}`"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn char_count(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// A value for a message: scalars as JSON (long strings cut), containers by kind.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 60 => {
            let cut: String = s.chars().take(57).collect();
            format!("{}…", Value::String(cut))
        }
        Value::Array(items) => format!(
            "an array of {} item{}",
            items.len(),
            plural(items.len() as u64)
        ),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => format!("string {}", show(v)),
        Value::Array(_) | Value::Object(_) => show(v),
    }
}

fn list_values(items: &[Value]) -> String {
    let mut shown: Vec<String> = items.iter().take(12).map(show).collect();
    if items.len() > 12 {
        shown.push(format!("… ({} in all)", items.len()));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Limits;

    fn doc(version: &str, schemas: &str) -> Document {
        let text = format!(
            "openapi: {version}\ninfo: {{title: t, version: 1.0.0}}\npaths: {{}}\ncomponents:\n  schemas:\n{schemas}"
        );
        crate::openapi::parse(text.as_bytes(), &Limits::default()).unwrap()
    }

    fn convert(doc: &Document, dir: Direction, name: &str) -> Value {
        let pointer = format!("/components/schemas/{name}");
        let value = doc.tree.pointer(&pointer).unwrap().clone();
        let mut c = Converter::new(doc, dir);
        let id = c.add(&Schema { pointer, value });
        c.def(id).clone()
    }

    #[test]
    fn nullable_adds_null_to_type_and_enum() {
        let d = doc(
            "3.0.3",
            "    A: {type: string, nullable: true, enum: [a, b], example: a, x-foo: 1}\n",
        );
        assert_eq!(
            convert(&d, Direction::Request, "A"),
            json!({"type": ["string", "null"], "enum": ["a", "b", null]})
        );
    }

    #[test]
    fn nullable_with_composition_is_wrapped() {
        let d = doc(
            "3.0.3",
            "    A: {nullable: true, allOf: [{$ref: '#/components/schemas/B'}]}\n    B: {type: object}\n",
        );
        let a = convert(&d, Direction::Request, "A");
        assert_eq!(a["if"], json!({"type": "null"}));
        assert!(
            a["else"]["allOf"][0]["$ref"]
                .as_str()
                .unwrap()
                .starts_with("urn:gatehouse:request#/$defs/s")
        );
    }

    #[test]
    fn boolean_exclusive_bounds_become_numeric() {
        let d = doc(
            "3.0.3",
            "    A: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: false}\n",
        );
        assert_eq!(
            convert(&d, Direction::Request, "A"),
            json!({"type": "number", "exclusiveMinimum": 0, "maximum": 10})
        );
    }

    #[test]
    fn ref_siblings_ignored_in_30_kept_in_31() {
        let schemas = "    A: {$ref: '#/components/schemas/B', description: d, maxLength: 1}\n    B: {type: string}\n";
        let a30 = convert(&doc("3.0.3", schemas), Direction::Request, "A");
        assert_eq!(a30.as_object().unwrap().len(), 1);
        let a31 = convert(&doc("3.1.0", schemas), Direction::Request, "A");
        assert_eq!(a31["maxLength"], 1);
    }

    #[test]
    fn read_only_is_refused_in_requests_only_and_not_required() {
        let schemas = "    A: {type: object, required: [id, name], properties: {id: {type: string, readOnly: true}, name: {type: string}, secret: {type: string, writeOnly: true}}}\n";
        let d = doc("3.0.3", schemas);
        let req = convert(&d, Direction::Request, "A");
        assert_eq!(req["properties"]["id"], json!({FORBIDDEN: "readOnly"}));
        assert_eq!(req["required"], json!(["name"]));
        assert_eq!(req["properties"]["secret"]["type"], "string");
        let resp = convert(&d, Direction::Response, "A");
        assert_eq!(
            resp["properties"]["secret"],
            json!({FORBIDDEN: "writeOnly"})
        );
        assert_eq!(resp["required"], json!(["id", "name"]));
    }

    #[test]
    fn read_only_declared_in_an_all_of_base_is_not_required_in_requests() {
        let schemas = "    Base: {type: object, properties: {id: {type: string, readOnly: true}}}\n    A: {allOf: [{$ref: '#/components/schemas/Base'}], required: [id, name], properties: {name: {type: string}}}\n";
        for version in ["3.0.3", "3.1.0"] {
            let d = doc(version, schemas);
            assert_eq!(
                convert(&d, Direction::Request, "A")["required"],
                json!(["name"])
            );
            assert_eq!(
                convert(&d, Direction::Response, "A")["required"],
                json!(["id", "name"])
            );
        }
    }

    #[test]
    fn int32_gets_bounds_and_keeps_stricter_ones() {
        let d = doc(
            "3.1.0",
            "    A: {type: integer, format: int32, minimum: 1}\n",
        );
        let a = convert(&d, Direction::Request, "A");
        assert_eq!(a["minimum"], 1);
        assert_eq!(a["maximum"], i64::from(i32::MAX));
    }

    #[test]
    fn base64_check() {
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGVsbG8"));
        assert!(is_base64(""));
        assert!(!is_base64("a"));
        assert!(!is_base64("aGVs*G8="));
    }
}
