//! `Tape`: the instance representation the validators run on.
//!
//! Building a `serde_json::Value` costs an allocation per string, array and object and a
//! hashed insert per member; on a 1 KB order that is five times the cost of reading the
//! JSON (measured in `bench/README.md`). A tape is one `Vec` of slots in document order,
//! with strings borrowed from the request body wherever they hold no escape, so parsing
//! allocates once (the `Vec`) for most bodies. `jsonschema` validates it directly through
//! its custom-representation traits ([`jsonschema::json`]), with the crate's own semantics
//! for every keyword: only the storage differs.
//!
//! Reading: a [`Scanner`] writes plain well-formed JSON straight onto the tape in one pass
//! (the bench's 1 KB order in about the time `serde_json` takes only to check its syntax).
//! Everything else, every malformed body included, goes through `serde_json`'s reader,
//! which stays the reference: the scanner accepts nothing `serde_json` refuses, builds the
//! same tape (property-tested on generated and on mutated documents), and every error text
//! a client sees is `serde_json`'s.
//!
//! Layout: a scalar is one slot; an array is its header slot followed by its elements; an
//! object is its header followed by `key, value` pairs (the key a string slot). A header
//! knows its member count and where its subtree ends, so a sibling is one step away.
//!
//! Every tape starts with a wrapper object of one member (`{"sN": instance}`): the shape
//! the compiled validator set expects (see `schema::CompiledSchema`). Its key is filled in
//! by [`Tape::set_entry`] just before validation.

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// The error text a too-deep document fails with (see [`Tape::parse`]).
pub(crate) const TOO_DEEP: &str = "too deep";

/// One slot of a tape.
#[derive(Debug, Clone, PartialEq)]
enum Slot<'s> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'s, str>),
    /// `len` elements follow; the subtree ends before slot `end`.
    Array {
        len: u32,
        end: u32,
    },
    /// `len` key/value pairs follow; the subtree ends before slot `end`.
    Object {
        len: u32,
        end: u32,
    },
}

/// A JSON document as a tape (see the module docs), wrapped as `{"<entry>": instance}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tape<'s> {
    slots: Vec<Slot<'s>>,
}

/// Where the instance starts: after the wrapper header and its key.
#[cfg(test)]
const INSTANCE: u32 = 2;

impl<'s> Tape<'s> {
    fn wrapper(capacity: usize) -> Self {
        let mut slots = Vec::with_capacity(capacity + 2);
        slots.push(Slot::Object { len: 1, end: 0 });
        slots.push(Slot::String(Cow::Borrowed("")));
        Tape { slots }
    }

    fn close_wrapper(&mut self) {
        let end = self.end();
        self.slots[0] = Slot::Object { len: 1, end };
    }

    fn end(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Parses a JSON body, nesting at most `max_depth` arrays and objects. Errors are
    /// `serde_json`'s (a depth overflow's text starts with [`TOO_DEEP`]); trailing
    /// characters other than whitespace are an error.
    ///
    /// Plain well-formed documents take the [`Scanner`]; anything it does not take (every
    /// malformed document, and a few rare well-formed shapes) goes through `serde_json`,
    /// which is the reference: the scanner only ever accepts what `serde_json` accepts,
    /// with the same tape, and every error text is `serde_json`'s.
    pub fn parse(bytes: &'s [u8], max_depth: usize) -> Result<Self, serde_json::Error> {
        match Scanner::scan(bytes, max_depth) {
            Some(tape) => Ok(tape),
            None => Self::parse_with_serde(bytes, max_depth),
        }
    }

    /// Objects of short members take about one slot per 10 bytes (the bench order: a line
    /// of 5 members is 11 slots in 110 bytes); reserving one per 8 spares the regrowth, and
    /// reserved memory is not touched until used.
    fn capacity_for(bytes: &[u8]) -> usize {
        bytes.len() / 8 + 8
    }

    /// [`Tape::parse`] through `serde_json`'s reader.
    fn parse_with_serde(bytes: &'s [u8], max_depth: usize) -> Result<Self, serde_json::Error> {
        let mut tape = Tape::wrapper(Self::capacity_for(bytes));
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Builder {
            tape: &mut tape,
            remaining: max_depth,
        }
        .deserialize(&mut de)?;
        de.end()?;
        tape.close_wrapper();
        Ok(tape)
    }

    /// The tape of a value decoded elsewhere (parameters, form and multipart bodies).
    pub fn from_value(value: &'s Value) -> Self {
        let mut tape = Tape::wrapper(8);
        tape.push_value(value);
        tape.close_wrapper();
        tape
    }

    fn push_value(&mut self, value: &'s Value) {
        match value {
            Value::Null => self.slots.push(Slot::Null),
            Value::Bool(b) => self.slots.push(Slot::Bool(*b)),
            Value::Number(n) => self.slots.push(Slot::Number(n.clone())),
            Value::String(s) => self.slots.push(Slot::String(Cow::Borrowed(s))),
            Value::Array(items) => {
                let at = self.open(Slot::Array { len: 0, end: 0 });
                items.iter().for_each(|v| self.push_value(v));
                self.close(at, items.len());
            }
            Value::Object(members) => {
                let at = self.open(Slot::Object { len: 0, end: 0 });
                for (k, v) in members {
                    self.slots.push(Slot::String(Cow::Borrowed(k)));
                    self.push_value(v);
                }
                self.close(at, members.len());
            }
        }
    }

    fn open(&mut self, header: Slot<'s>) -> usize {
        self.slots.push(header);
        self.slots.len() - 1
    }

    fn close(&mut self, at: usize, len: usize) {
        let end = self.end();
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.slots[at] = match self.slots[at] {
            Slot::Array { .. } => Slot::Array { len, end },
            _ => Slot::Object { len, end },
        };
    }

    /// Names the wrapper's one member: the validator set's entry for the schema.
    pub(crate) fn set_entry(&mut self, key: &'s str) {
        self.slots[1] = Slot::String(Cow::Borrowed(key));
    }

    /// The root node: the wrapper object.
    pub(crate) fn root(&self) -> TapeNode<'_> {
        TapeNode { tape: self, at: 0 }
    }

    /// The instance as a `serde_json::Value`.
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        self.node(INSTANCE).value()
    }

    /// The node at slot `at` (whose lifetime is that of `&self`).
    fn node(&self, at: u32) -> TapeNode<'_> {
        TapeNode { tape: self, at }
    }

    fn slot(&self, at: u32) -> &Slot<'s> {
        // Every index handed out points inside the tape (built by `open`/`close`).
        &self.slots[at as usize]
    }

    /// The slot after the subtree at `at`.
    fn next(&self, at: u32) -> u32 {
        match self.slot(at) {
            Slot::Array { end, .. } | Slot::Object { end, .. } => *end,
            _ => at + 1,
        }
    }
}

/// The deepest nesting of arrays and objects `serde_json` reads (its recursion limit of 128
/// counts down to zero on the 128th level); deeper documents are left to it, for its error.
const SERDE_MAX_NESTING: usize = 127;

/// The fast path of [`Tape::parse`]: one pass over the bytes straight onto the tape,
/// without `serde`'s visitor calls. It takes RFC 8259 JSON as `serde_json` reads it and
/// gives up (`None`) at the first thing it does not handle itself: any syntax error, a
/// lone surrogate escape, a document deeper than the limit, invalid UTF-8, a float out of
/// range. Numbers are bit-for-bit what `serde_json` makes of them (see [`Scanner::number`]).
struct Scanner<'s> {
    text: &'s str,
    pos: usize,
    tape: Tape<'s>,
}

impl<'s> Scanner<'s> {
    fn scan(bytes: &'s [u8], max_depth: usize) -> Option<Tape<'s>> {
        // The whole body at once (ASCII runs are checked a word at a time); every slice
        // taken below starts and ends at an ASCII byte, so it is valid UTF-8 too.
        let text = std::str::from_utf8(bytes).ok()?;
        let mut scanner = Scanner {
            text,
            pos: 0,
            tape: Tape::wrapper(Tape::capacity_for(bytes)),
        };
        scanner.skip_whitespace();
        scanner.value(max_depth.min(SERDE_MAX_NESTING))?;
        scanner.skip_whitespace();
        if scanner.pos != bytes.len() {
            return None;
        }
        scanner.tape.close_wrapper();
        Some(scanner.tape)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `word` (a literal) if it is next.
    fn literal(&mut self, word: &str, slot: Slot<'s>) -> Option<()> {
        if !self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            return None;
        }
        self.pos += word.len();
        self.tape.slots.push(slot);
        Some(())
    }

    /// One value; `remaining` arrays or objects may still open (as `Builder::nested`).
    fn value(&mut self, remaining: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.container(Slot::Object { len: 0, end: 0 }, remaining.checked_sub(1)?),
            b'[' => self.container(Slot::Array { len: 0, end: 0 }, remaining.checked_sub(1)?),
            b'"' => {
                let s = self.string()?;
                self.tape.slots.push(Slot::String(s));
                Some(())
            }
            b't' => self.literal("true", Slot::Bool(true)),
            b'f' => self.literal("false", Slot::Bool(false)),
            b'n' => self.literal("null", Slot::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An array or an object (`header` says which; the cursor on its opening bracket).
    fn container(&mut self, header: Slot<'s>, remaining: usize) -> Option<()> {
        let object = matches!(header, Slot::Object { .. });
        let close = if object { b'}' } else { b']' };
        let at = self.tape.open(header);
        self.pos += 1;
        self.skip_whitespace();
        let mut len = 0usize;
        if self.peek()? == close {
            self.pos += 1;
        } else {
            loop {
                if object {
                    self.key()?;
                }
                self.value(remaining)?;
                len += 1;
                self.skip_whitespace();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    c if c == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.tape.close(at, len);
        Some(())
    }

    /// A member's key and its colon, up to the value.
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        let key = self.string()?;
        self.tape.slots.push(Slot::String(key));
        self.skip_whitespace();
        if self.peek()? != b':' {
            return None;
        }
        self.pos += 1;
        self.skip_whitespace();
        Some(())
    }

    /// A string (the cursor on its opening quote): borrowed from the text unless it holds
    /// an escape.
    fn string(&mut self) -> Option<Cow<'s, str>> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        // Eight bytes at a time up to the first quote, backslash or control byte.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let found = stops(u64::from_le_bytes(word));
            if found != 0 {
                i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        loop {
            match *bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some(Cow::Borrowed(&self.text[start..i]));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
        // Escapes: copy the plain run so far, then decode.
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.text[start..i]);
        let mut run = i;
        loop {
            match *bytes.get(i)? {
                b'"' => {
                    out.push_str(&self.text[run..i]);
                    self.pos = i + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(&self.text[run..i]);
                    let escaped = *bytes.get(i + 1)?;
                    i += 2;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let (c, used) = unicode_escape(&bytes[i..])?;
                            out.push(c);
                            i += used;
                        }
                        _ => return None,
                    }
                    run = i;
                }
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
    }

    /// A number, checked against RFC 8259's grammar here. Integers of up to 18 digits are
    /// exact in an `i64` or `u64` and made here; fractions and exponents are parsed by the
    /// standard library, correctly rounded as `serde_json` is (the workspace builds it with
    /// `float_roundtrip`), so the two agree bit for bit; longer integers go to `serde_json`.
    fn number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let digits_at = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
        let start = self.pos;
        let negative = bytes[start] == b'-';
        let int_start = start + usize::from(negative);
        let mut i = int_start;
        // The magnitude as the digits go by (exact up to 18 digits, used only then).
        let mut magnitude = 0u64;
        match bytes.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while let Some(&d @ b'0'..=b'9') = bytes.get(i) {
                    magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                    i += 1;
                }
            }
            _ => return None,
        }
        let integer_digits = i - int_start;
        let mut float = false;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits_at(i) {
                return None;
            }
            while digits_at(i) {
                i += 1;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits_at(i) {
                return None;
            }
            while digits_at(i) {
                i += 1;
            }
            float = true;
        }
        self.pos = i;
        let text = &self.text[start..i];
        let number = if float {
            // Out of range is an error in `serde_json` (`None` here: it writes the error).
            Number::from_f64(text.parse::<f64>().ok().filter(|f| f.is_finite())?)?
        } else if integer_digits <= 18 {
            match (negative, magnitude) {
                (false, m) => Number::from(m),
                // `-0` is a float in `serde_json`.
                (true, 0) => Number::from_f64(-0.0)?,
                (true, m) => Number::from(-i64::try_from(m).ok()?),
            }
        } else {
            serde_json::from_str::<Number>(text).ok()?
        };
        self.tape.slots.push(Slot::Number(number));
        Some(())
    }
}

/// The bytes of `word` (little-endian) that end a plain string run, as a mask with the high
/// bit of each such byte set: `"`, `\` and controls (below 0x20). The lowest set bit marks
/// the first one exactly (bits above it may be spurious, from the borrow).
fn stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

/// The character of a `\u` escape (`bytes` just after the `u`), joining a surrogate pair;
/// the bytes it used. `None` for bad hex and lone surrogates.
fn unicode_escape(bytes: &[u8]) -> Option<(char, usize)> {
    let hex = |b: &[u8]| -> Option<u32> {
        let digits = std::str::from_utf8(b.get(..4)?).ok()?;
        if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    let first = hex(bytes)?;
    match first {
        0xD800..=0xDBFF => {
            if bytes.get(4..6)? != b"\\u" {
                return None;
            }
            let second = hex(&bytes[6..])?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            Some((char::from_u32(c)?, 10))
        }
        0xDC00..=0xDFFF => None,
        c => Some((char::from_u32(c)?, 4)),
    }
}

/// Builds the tape from `serde_json`'s reader, counting nesting.
struct Builder<'t, 's> {
    tape: &'t mut Tape<'s>,
    remaining: usize,
}

impl Builder<'_, '_> {
    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        self.remaining
            .checked_sub(1)
            .ok_or_else(|| E::custom(TOO_DEEP))
    }
}

impl<'de> DeserializeSeed<'de> for Builder<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.tape.slots.push(Slot::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.tape.slots.push(Slot::Number(v.into()));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.tape.slots.push(Slot::Number(v.into()));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As `serde_json::Value` does: JSON has no NaN or infinity.
        self.tape
            .slots
            .push(Number::from_f64(v).map_or(Slot::Null, Slot::Number));
        Ok(())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.tape.slots.push(Slot::String(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.tape.slots.push(Slot::String(Cow::Owned(v.to_owned())));
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.tape.slots.push(Slot::String(Cow::Owned(v)));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.tape.slots.push(Slot::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let remaining = self.nested()?;
        let at = self.tape.open(Slot::Array { len: 0, end: 0 });
        let mut len = 0usize;
        loop {
            let element = Builder {
                tape: &mut *self.tape,
                remaining,
            };
            if seq.next_element_seed(element)?.is_none() {
                break;
            }
            len += 1;
        }
        self.tape.close(at, len);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let remaining = self.nested()?;
        let at = self.tape.open(Slot::Object { len: 0, end: 0 });
        let mut len = 0usize;
        loop {
            // `serde_json` hands every key to `deserialize_any` as a string (borrowed when
            // it has no escape), so the value builder makes its slot too.
            let key = Builder {
                tape: &mut *self.tape,
                remaining,
            };
            if map.next_key_seed(key)?.is_none() {
                break;
            }
            map.next_value_seed(Builder {
                tape: &mut *self.tape,
                remaining,
            })?;
            len += 1;
        }
        self.tape.close(at, len);
        Ok(())
    }
}

/// The [`Json`] representation of tapes, for `jsonschema::options_for`.
#[derive(Debug)]
pub struct TapeJson;

impl Json for TapeJson {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = Tape<'static>;

    /// A lookup scans the members (no hash index), so a pass over them is at least as cheap
    /// as a few lookups.
    const KEYS_PER_LOOKUP: usize = 8;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>(
        buffer: &mut Tape<'static>,
        string: &str,
        f: impl FnOnce(TapeNode<'_>) -> T,
    ) -> T {
        buffer.slots.clear();
        buffer
            .slots
            .push(Slot::String(Cow::Owned(string.to_owned())));
        f(buffer.node(0))
    }
}

/// One node of a tape: the tape and a slot index (cheap to copy).
#[derive(Debug, Clone, Copy)]
pub struct TapeNode<'a> {
    tape: &'a Tape<'a>,
    at: u32,
}

impl<'a> TapeNode<'a> {
    fn slot(&self) -> &'a Slot<'a> {
        self.tape.slot(self.at)
    }

    fn value(&self) -> Value {
        match self.slot() {
            Slot::Null => Value::Null,
            Slot::Bool(b) => Value::Bool(*b),
            Slot::Number(n) => Value::Number(n.clone()),
            Slot::String(s) => Value::String(s.to_string()),
            Slot::Array { .. } => Value::Array(self.elements().map(|n| n.value()).collect()),
            Slot::Object { len, .. } => {
                let mut map = Map::with_capacity(*len as usize);
                for (k, v) in self.members() {
                    map.insert(k.to_owned(), v.value());
                }
                Value::Object(map)
            }
        }
    }

    fn elements(&self) -> Elements<'a> {
        let (len, first) = match self.slot() {
            Slot::Array { len, .. } => (*len, self.at + 1),
            _ => (0, self.at),
        };
        Elements {
            tape: self.tape,
            at: first,
            left: len,
        }
    }

    fn members(&self) -> Members<'a> {
        let (len, first) = match self.slot() {
            Slot::Object { len, .. } => (*len, self.at + 1),
            _ => (0, self.at),
        };
        Members {
            tape: self.tape,
            at: first,
            left: len,
        }
    }
}

impl<'a> Node<'a, TapeJson> for TapeNode<'a> {
    type Object = TapeNode<'a>;
    type Array = TapeNode<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<TapeNode<'a>> {
        matches!(self.slot(), Slot::Object { .. }).then_some(*self)
    }

    fn as_array(&self) -> Option<TapeNode<'a>> {
        matches!(self.slot(), Slot::Array { .. }).then_some(*self)
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.slot() {
            Slot::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self.slot() {
            Slot::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.slot() {
            Slot::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.slot(), Slot::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.slot() {
            Slot::Null => JsonType::Null,
            Slot::Bool(_) => JsonType::Boolean,
            Slot::Number(_) => JsonType::Number,
            Slot::String(_) => JsonType::String,
            Slot::Array { .. } => JsonType::Array,
            Slot::Object { .. } => JsonType::Object,
        }
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        let Slot::String(s) = self.slot() else {
            return None;
        };
        // A code point takes one to four bytes: the count lies in `ceil(bytes / 4)..=bytes`.
        let bytes = s.len() as u64;
        let fewest = bytes.div_ceil(4);
        if bytes < min || fewest > max {
            return Some(false);
        }
        if min <= fewest && bytes <= max {
            return Some(true);
        }
        Some((min..=max).contains(&(s.chars().count() as u64)))
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match (self.slot(), expected) {
            (Slot::String(s), Value::String(e)) => s == e,
            (Slot::String(_), _) => false,
            (Slot::Null, e) => e.is_null(),
            (Slot::Bool(b), e) => e.as_bool() == Some(*b),
            _ => jsonschema::json::cmp::equal(&self.value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.value())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            std::ptr::from_ref::<Tape<'a>>(self.tape) as usize,
            self.at,
        ))
    }
}

impl<'a> Object<'a, TapeJson> for TapeNode<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        match self.slot() {
            Slot::Object { len, .. } => *len as usize,
            _ => 0,
        }
    }

    fn get(&self, key: &Box<str>) -> Option<TapeNode<'a>> {
        // The last of duplicate keys wins, as in `serde_json::Value`.
        let mut found = None;
        for (name, value) in self.members() {
            if name == key.as_ref() {
                found = Some(value);
            }
        }
        found
    }

    fn members(&self) -> Members<'a> {
        TapeNode::members(self)
    }
}

impl<'a> Array<'a, TapeJson> for TapeNode<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        match self.slot() {
            Slot::Array { len, .. } => *len as usize,
            _ => 0,
        }
    }

    fn elements(&self) -> Elements<'a> {
        TapeNode::elements(self)
    }
}

/// The members of an object node, in document order.
#[derive(Debug)]
pub struct Members<'a> {
    tape: &'a Tape<'a>,
    at: u32,
    left: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = match self.tape.slot(self.at) {
            Slot::String(s) => s.as_ref(),
            _ => "",
        };
        let value = self.tape.node(self.at + 1);
        self.at = self.tape.next(self.at + 1);
        Some((name, value))
    }
}

/// The elements of an array node.
#[derive(Debug)]
pub struct Elements<'a> {
    tape: &'a Tape<'a>,
    at: u32,
    left: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let node = self.tape.node(self.at);
        self.at = self.tape.next(self.at);
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_every_kind_and_borrows_plain_strings() {
        let text = br#"{"a": [1, -2, 2.5, true, null, "x"], "b\u0041": {"c": "d\n"}, "e": {}}"#;
        let tape = Tape::parse(text, 16).expect("parses");
        assert_eq!(
            tape.to_value(),
            serde_json::from_slice::<Value>(text).expect("json")
        );
        // The wrapper's placeholder key and `a`, `x`, `c`, `e` are borrowed (from the body);
        // the escaped key `bA` and value `d\n` are not.
        let borrowed = tape
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::String(Cow::Borrowed(_))))
            .count();
        let owned = tape
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::String(Cow::Owned(_))))
            .count();
        assert_eq!((borrowed, owned), (5, 2), "{:?}", tape.slots);
    }

    #[test]
    fn refuses_what_serde_json_refuses_and_counts_depth() {
        assert!(Tape::parse(b"[[[1]]]", 3).is_ok());
        let deep = Tape::parse(b"[[[[1]]]]", 3).expect_err("too deep");
        assert!(deep.to_string().starts_with(TOO_DEEP), "{deep}");
        assert!(Tape::parse(br#"{"a": "[[[[\"[[[["}"#, 1).is_ok());
        for bad in [
            &b"{\"a\": 1"[..],
            b"[1,]",
            b"01",
            b"\"\\x\"",
            b"[1] x",
            b"",
            b"nul",
        ] {
            assert!(
                Tape::parse(bad, 8).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Whitespace after the document is fine.
        assert!(Tape::parse(b" [1] \n", 8).is_ok());
    }

    #[test]
    fn duplicate_keys_resolve_to_the_last_like_value() {
        let tape = Tape::parse(br#"{"k": 1, "k": "two"}"#, 8).expect("parses");
        let root = tape.root();
        let instance = Object::get(&root, &TapeJson::prepare_key("")).expect("entry");
        let value = Object::get(&instance, &TapeJson::prepare_key("k")).expect("k");
        assert_eq!(value.as_string().as_deref(), Some("two"));
        assert_eq!(Object::len(&instance), 2);
    }

    #[test]
    fn accessors_follow_the_json_model() {
        let value = json!({"s": "héllo", "n": 42, "f": 1.5, "neg": -3, "a": [1, [2], {}], "o": {"x": null}});
        let tape = Tape::from_value(&value);
        let root = tape.root();
        let doc = Object::get(&root, &TapeJson::prepare_key("")).expect("entry");
        let get = |k: &str| Object::get(&doc, &TapeJson::prepare_key(k)).expect(k);
        assert_eq!(get("s").string_length(), Some(5));
        assert_eq!(get("s").string_length_within(5, 5), Some(true));
        assert_eq!(get("s").string_length_within(6, 9), Some(false));
        assert_eq!(get("n").as_number().and_then(|n| n.as_u64()), Some(42));
        assert_eq!(get("neg").as_number().and_then(|n| n.as_i64()), Some(-3));
        assert_eq!(get("f").as_number().and_then(|n| n.as_f64()), Some(1.5));
        assert_eq!(Array::len(&get("a")), 3);
        assert_eq!(
            Array::elements(&get("a"))
                .map(|e| e.json_type())
                .collect::<Vec<_>>(),
            [JsonType::Number, JsonType::Array, JsonType::Object]
        );
        assert!(
            Object::get(&get("o"), &TapeJson::prepare_key("x"))
                .expect("x")
                .is_null()
        );
        assert!(get("n").equals_value(&json!(42.0)));
        assert!(!get("n").equals_value(&json!("42")));
        assert!(get("s").equals_value(&json!("héllo")));
        assert!(get("a").equals_value(&json!([1.0, [2], {}])));
        let ids: std::collections::HashSet<_> = ["s", "n", "f", "a", "o"]
            .iter()
            .map(|k| get(k).identity())
            .collect();
        assert_eq!(ids.len(), 5, "every node has its own identity");
    }

    /// What the scanner makes of `text`, checked against `serde_json`: whatever it takes,
    /// `serde_json` takes too, with the same tape (slot for slot, numbers bit for bit).
    fn scan_agrees(text: &[u8], max_depth: usize) -> Option<Tape<'_>> {
        let fast = Scanner::scan(text, max_depth);
        if let Some(fast) = &fast {
            let reference = Tape::parse_with_serde(text, max_depth);
            assert_eq!(
                Some(fast),
                reference.as_ref().ok(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
            for (a, b) in fast.slots.iter().zip(&reference.expect("parses").slots) {
                if let (Slot::Number(a), Slot::Number(b)) = (a, b) {
                    assert_eq!(a.as_f64().map(f64::to_bits), b.as_f64().map(f64::to_bits));
                    assert_eq!((a.is_u64(), a.is_i64()), (b.is_u64(), b.is_i64()));
                }
            }
        }
        fast
    }

    #[test]
    fn the_scanner_takes_plain_json_as_serde_json_does() {
        for text in [
            &br#"{"a": [1, -2, 2.5, true, null, "x"], "b\u0041": {"c": "d\n"}, "e": {}}"#[..],
            br#""\ud83d\ude00 \u00e9 \/ \b\f\r\t \"\\""#,
            "\"h\u{e9}llo \u{1F600}\"".as_bytes(),
            b"0",
            b"-0",
            b"-0.0",
            b"123456789012345678",
            b"-123456789012345678",
            b"1234567890123456789",
            b"18446744073709551615",
            b"18446744073709551616",
            b"-9223372036854775808",
            b"-9223372036854775809",
            b"1.5E+3",
            b"2e-308",
            b"0.1",
            b"1e-400",
            b"5e-324",
            b"1.7976931348623157e308",
            b"0.30000000000000004",
            b"123.456e-7",
            b"-1.5e+300",
            b"1E2",
            b"[0.5,-0e0,1e0]",
            b" \t\r\n[ ] ",
            b"[[], {}, [{}]]",
        ] {
            let tape = scan_agrees(text, 16);
            assert!(tape.is_some(), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn stops_finds_the_first_quote_backslash_or_control_in_a_word() {
        for at in 0..8 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for filler in [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                    let mut word = [filler; 8];
                    word[at] = stop;
                    // A second stop later must not hide the first.
                    if at < 7 {
                        word[7] = b'"';
                    }
                    let found = stops(u64::from_le_bytes(word));
                    assert_eq!(found.trailing_zeros() / 8, at as u32, "{word:?}");
                }
            }
        }
        for plain in [
            *b"abcdefgh",
            *b"  !#$%&'",
            [0x20, 0x7f, 0x80, 0xc3, 0xa9, 0xff, 0x5b, 0x5d],
        ] {
            assert_eq!(stops(u64::from_le_bytes(plain)), 0, "{plain:?}");
        }
    }

    #[test]
    fn the_scanner_leaves_the_rest_to_serde_json() {
        // Malformed, or well-formed but past what the scanner handles itself: `serde_json`
        // decides (and writes the error).
        for text in [
            &br#""\ud800""#[..],
            br#""\udc00 x""#,
            br#""\ud800\u0041""#,
            br#""\u12G4""#,
            b"\"tab\there\"",
            b"\xEF\xBB\xBF[1]",
            b"[1] [2]",
            b"1e400",
            b"1E400",
            b"-1e309",
            b"1.e5",
            b"1e",
            b"1e+",
            b"00.5",
            b"-01",
            b"-",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"[1,]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"{,}",
            b"tru",
            b"nulll",
            b"\"\xff\"",
        ] {
            assert!(
                Scanner::scan(text, 16).is_none(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        // Depth: the same limit as the serde path, and never past `serde_json`'s own.
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        assert!(scan_agrees(&nested(3), 3).is_some());
        assert!(Scanner::scan(&nested(4), 3).is_none());
        assert!(scan_agrees(&nested(127), 500).is_some());
        assert!(Scanner::scan(&nested(128), 500).is_none());
        assert!(
            Tape::parse(&nested(128), 500).is_err(),
            "serde_json's limit"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-z\"\\\\é\n\u{1}\u{7f}\u{1F600}/ ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c\"]{0,3}", inner), 0..6)
                    .prop_map(|kv| { Value::Object(kv.into_iter().collect()) }),
            ]
        })
    }

    /// Schemas touching every keyword family, checked against the same schema compiled for
    /// `serde_json::Value`: the two representations must agree on every instance.
    fn schemas() -> Vec<Value> {
        vec![
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0}}}),
            json!({"type": "object", "additionalProperties": false, "properties": {"a": {}, "b": {"type": ["string", "null"], "maxLength": 3}}}),
            json!({"type": "array", "items": {"type": "number", "exclusiveMaximum": 10}, "minItems": 1, "uniqueItems": true}),
            json!({"enum": [1, "a", null, [1, 2], {"a": 1}]}),
            json!({"const": {"a": [true, 1.0]}}),
            json!({"oneOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "array", "contains": {"type": "object"}}]}),
            json!({"propertyNames": {"maxLength": 1}, "minProperties": 1}),
            json!({"patternProperties": {"^[ab]": {"type": "boolean"}}, "dependentRequired": {"a": ["b"]}}),
            json!({"prefixItems": [{"type": "null"}], "items": false}),
            json!({"not": {"type": "object", "properties": {"": {"multipleOf": 2}}}}),
            json!({"$defs": {"t": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/t"}}]}}, "$ref": "#/$defs/t"}),
            json!({"type": "object", "unevaluatedProperties": false, "allOf": [{"properties": {"a": true}}], "if": {"required": ["b"]}, "then": {"properties": {"b": true}}}),
        ]
    }

    proptest! {
        #[test]
        fn text_and_value_give_the_same_tape(value in arb_json()) {
            let text = serde_json::to_vec(&value).expect("serialises");
            let parsed = Tape::parse(&text, 64).expect("parses");
            prop_assert_eq!(parsed.to_value(), value.clone());
            prop_assert_eq!(Tape::from_value(&value).to_value(), value);
        }

        #[test]
        fn the_scanner_takes_every_serialised_document(value in arb_json()) {
            for text in [serde_json::to_vec(&value), serde_json::to_vec_pretty(&value)] {
                let text = text.expect("serialises");
                prop_assert!(scan_agrees(&text, 64).is_some());
            }
        }

        #[test]
        fn validators_agree_with_serde_json(value in arb_json()) {
            for schema in schemas() {
                let on_value = jsonschema::validator_for(&schema).expect("compiles");
                let on_tape = jsonschema::options_for::<TapeJson>().build(&schema).expect("compiles");
                // The wrapper is the root resource: local `$ref`s need its `$defs`.
                let wrapped = json!({"$defs": schema.get("$defs").cloned().unwrap_or(json!({})), "properties": {"x": schema.clone()}});
                let wrapped_tape = jsonschema::options_for::<TapeJson>().build(&wrapped).expect("compiles");
                let text = serde_json::to_vec(&value).expect("serialises");
                let mut tape = Tape::parse(&text, 64).expect("parses");
                tape.set_entry("x");
                let root = tape.root();
                let instance = Object::get(&root, &TapeJson::prepare_key("x")).expect("entry");
                let expected = on_value.is_valid(&value);
                prop_assert_eq!(on_tape.is_valid(instance), expected, "schema {}", schema);
                prop_assert_eq!(wrapped_tape.is_valid(root), expected, "wrapped schema {}", schema);
                let errors_value: Vec<String> = on_value.iter_errors(&value).map(|e| e.to_string()).collect();
                let errors_tape: Vec<String> = on_tape.iter_errors(instance).map(|e| e.to_string()).collect();
                prop_assert_eq!(errors_tape, errors_value, "schema {}", schema);
            }
        }
    }

    /// What the mutation property inserts or swaps in: structure, number and string
    /// pieces, literals cut short, escapes gone wrong.
    const EDITS: &[&str] = &[
        "",
        ",",
        ":",
        "[",
        "]",
        "{",
        "}",
        "\"",
        " ",
        "0",
        "-",
        ".",
        "e",
        "+",
        "1e999",
        "00",
        "t",
        "tru",
        "nul",
        "\\",
        "\\u",
        "\\ud800",
        "\\uDC00",
        "\\x",
        "\u{0}",
        "\u{1f}",
        "\u{1F600}",
        ",]",
        ",}",
        "[1,]",
        "\"a\":",
        "-0",
        "1.",
        ".5",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn the_scanner_reads_decimals_as_serde_json_does(
            text in "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
        ) {
            // Agreement, bit for bit, is checked in `scan_agrees`; and a number both take or
            // both refuse (out of range).
            let fast = scan_agrees(text.as_bytes(), 8);
            let reference = Tape::parse_with_serde(text.as_bytes(), 8);
            prop_assert_eq!(fast.is_some(), reference.is_ok(), "{}", text);
        }
    }

    proptest! {
        // Edits that break a document are many; the ones that break it subtly (a comma
        // before a bracket, a digit after a zero) are few: many cases.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_scanner_never_takes_what_serde_json_refuses(
            value in arb_json(),
            at in any::<prop::sample::Index>(),
            edit in prop::sample::select(EDITS),
            cut in any::<bool>(),
        ) {
            // A serialised document with an edit somewhere: mostly malformed, sometimes
            // still valid.
            let mut text = serde_json::to_string(&value).expect("serialises");
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            if cut {
                let end = text[i..].char_indices().nth(1).map_or(text.len(), |(n, _)| i + n);
                text.replace_range(i..end, edit);
            } else {
                text.insert_str(i, edit);
            }
            scan_agrees(text.as_bytes(), 8);
        }
    }
}
