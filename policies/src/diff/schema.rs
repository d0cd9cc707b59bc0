//! Structural comparison of two JSON schemas, one from each version of a spec.
//!
//! Schemas are compared by what they accept, never by component name: `$ref`s are
//! followed on both sides, `allOf` branches are merged into one set of facts, and
//! `oneOf`/`anyOf` alternatives are matched to each other (same `$ref`, then equal
//! structure, then the closest). Both dialects are read into the same [`Facts`]: 3.0
//! `nullable` and boolean `exclusiveMaximum`, 3.1 type arrays with `null`, numeric
//! exclusive bounds and the `anyOf: [X, {type: 'null'}]` idiom.
//!
//! Recursion stops at pairs of (old pointer, new pointer) already compared for this site,
//! so a recursive schema terminates and a change inside it is reported once, at the
//! first place the walk meets it. A budget bounds the work on hostile inputs.

use super::Raw;
use super::checks::{CheckInfo, SchemaChange, Scope};
use super::report::Severity;
use crate::openapi::{Dialect, Document, escape_pointer};
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// The schema that accepts everything: stands in where one side has no schema at all.
static ANY: Value = Value::Bool(true);

/// Pairs of schema nodes one site may compare (dry runs included) before the walk gives
/// up: bounds the work a hostile spec can cause.
const BUDGET: usize = 100_000;
/// Deepest nesting of compared schemas: bounds the stack on long `$ref` chains.
const MAX_DEPTH: usize = 200;
/// Deepest `allOf` nesting merged into one set of facts.
const MAX_ALL_OF_DEPTH: usize = 32;
/// Beyond this many alternative pairs, alternatives are paired by position.
const MAX_ALTERNATIVE_PAIRS: usize = 64;

/// A schema where it sits in its document.
#[derive(Debug, Clone)]
pub(super) struct Node<'a> {
    pub value: &'a Value,
    pub pointer: String,
}

impl<'a> Node<'a> {
    pub fn new(value: &'a Value, pointer: impl Into<String>) -> Node<'a> {
        Node {
            value,
            pointer: pointer.into(),
        }
    }

    /// The schema that accepts anything, standing in for a missing one. `pointer` is
    /// where findings about it are reported: the nearest place that exists (the object
    /// without `items`, the parameter without `schema`), so every pointer resolves.
    pub fn any(pointer: impl Into<String>) -> Node<'static> {
        Node::new(&ANY, pointer)
    }
}

/// Compares the schemas of one site (a parameter, a body media type, a response header).
pub(super) struct SchemaDiff<'a> {
    old: &'a Document,
    new: &'a Document,
    scope: Scope,
    /// How the site reads in a sentence, e.g. "Request body `application/json`".
    label: String,
    visited: HashSet<(String, String)>,
    /// Shared with the dry runs of alternative matching, so they cannot multiply the work.
    budget: Rc<Cell<usize>>,
    /// Distances between alternatives already measured, shared with the dry runs: without
    /// it nested `oneOf`s re-measure the same pairs exponentially often.
    distances: Rc<RefCell<HashMap<(String, String), usize>>>,
    depth: usize,
    /// Set once a limit stopped the walk, so that it is reported once.
    truncated: bool,
    pub found: Vec<Raw>,
}

impl<'a> SchemaDiff<'a> {
    pub fn new(
        old: &'a Document,
        new: &'a Document,
        scope: Scope,
        label: impl Into<String>,
    ) -> Self {
        SchemaDiff {
            old,
            new,
            scope,
            label: label.into(),
            visited: HashSet::new(),
            budget: Rc::new(Cell::new(BUDGET)),
            distances: Rc::default(),
            depth: 0,
            truncated: false,
            found: Vec::new(),
        }
    }

    /// Compares two schemas; `path` is the human location inside the site ("" at its root).
    pub fn compare(&mut self, old: Node<'a>, new: Node<'a>, path: &str) {
        let left = self.budget.get();
        if left == 0 || self.depth >= MAX_DEPTH {
            // A gate must not pass what it did not look at: say where the walk stopped.
            if !self.truncated {
                self.truncated = true;
                self.found.push(Raw {
                    info: super::checks::Check::SchemaComparisonTruncated.info(),
                    message: format!(
                        "{}{}: the schemas nest too deep or are too large to compare fully; changes past this point were not checked.",
                        self.label,
                        at(path)
                    ),
                    old: Some(old.pointer),
                    new: Some(new.pointer),
                });
            }
            return;
        }
        self.budget.set(left - 1);
        self.depth += 1;
        self.compare_resolved(old, new, path);
        self.depth -= 1;
    }

    fn compare_resolved(&mut self, old: Node<'a>, new: Node<'a>, path: &str) {
        let (Some((ov, op)), Some((nv, np))) = (
            self.old.deref(old.value, &old.pointer),
            self.new.deref(new.value, &new.pointer),
        ) else {
            return;
        };
        if !self.visited.insert((op.clone(), np.clone())) {
            return;
        }
        let of = Facts::of(self.old, ov, &op);
        let nf = Facts::of(self.new, nv, &np);
        match (&of.alternatives, &nf.alternatives) {
            (None, None) => self.compare_facts(&of, &nf, path),
            (Some(o), Some(n)) => {
                // Keywords next to the alternatives (`type: object` beside `oneOf`) still apply.
                self.compare_facts(&of, &nf, path);
                self.compare_alternatives(o.clone(), n.clone(), path);
            }
            // One side is a plain schema: treat it as the only alternative, so that
            // `string` → `oneOf: [string, integer]` reads as one alternative added.
            (Some(o), None) => {
                self.compare_alternatives(o.clone(), vec![Node::new(nv, np.clone())], path)
            }
            (None, Some(n)) => {
                self.compare_alternatives(vec![Node::new(ov, op.clone())], n.clone(), path)
            }
        }
    }

    fn emit(&mut self, change: SchemaChange, of: &Facts, nf: &Facts, path: &str, what: String) {
        let info = change.info(self.scope);
        let message = format!(
            "{}{}: {}{}.",
            self.label,
            at(path),
            what,
            consequence(info, self.scope)
        );
        self.found.push(Raw {
            info,
            old: Some(of.pointer.clone()),
            new: Some(nf.pointer.clone()),
            message,
        });
    }

    fn emit_check(&mut self, raw: Raw) {
        self.found.push(raw);
    }

    fn compare_facts(&mut self, of: &Facts<'a>, nf: &Facts<'a>, path: &str) {
        if !self.compare_types(of, nf, path) {
            // Unrelated types: what follows (bounds, properties) would only be noise.
            return;
        }
        if of.constrained() && nf.constrained() {
            if of.null && !nf.null {
                self.emit(
                    SchemaChange::NullableRemoved,
                    of,
                    nf,
                    path,
                    "`null` is no longer allowed".into(),
                );
            } else if !of.null && nf.null {
                self.emit(
                    SchemaChange::NullableAdded,
                    of,
                    nf,
                    path,
                    "`null` is now allowed".into(),
                );
            }
        }
        self.compare_format(of, nf, path);
        self.compare_enum(of, nf, path);
        self.compare_counts(of, nf, path);
        self.compare_numbers(of, nf, path);
        self.compare_pattern(of, nf, path);
        if of.unique != nf.unique {
            let (change, what) = if nf.unique {
                (SchemaChange::UniqueItemsAdded, "items must now be unique")
            } else {
                (
                    SchemaChange::UniqueItemsRemoved,
                    "items no longer have to be unique",
                )
            };
            self.emit(change, of, nf, path, what.into());
        }
        if of.is_object() || nf.is_object() {
            self.compare_properties(of, nf, path);
            self.compare_additional(of, nf, path);
        }
        self.compare_items(of, nf, path);
    }

    /// Returns false when the types are unrelated and the comparison should stop here.
    fn compare_types(&mut self, of: &Facts, nf: &Facts, path: &str) -> bool {
        let (change, keep_going) = match (&of.types, &nf.types) {
            (None, None) => return true,
            (None, Some(_)) => (SchemaChange::TypeNarrowed, true),
            (Some(_), None) => (SchemaChange::TypeWidened, true),
            (Some(o), Some(n)) => {
                let old_in_new = o.iter().all(|t| covered(t, n));
                let new_in_old = n.iter().all(|t| covered(t, o));
                match (old_in_new, new_in_old) {
                    (true, true) => return true,
                    (true, false) => (SchemaChange::TypeWidened, true),
                    (false, true) => (SchemaChange::TypeNarrowed, true),
                    (false, false) => (SchemaChange::TypeChanged, false),
                }
            }
        };
        let what = format!(
            "type changed from {} to {}",
            show_types(&of.types),
            show_types(&nf.types)
        );
        self.emit(change, of, nf, path, what);
        keep_going
    }

    fn compare_format(&mut self, of: &Facts, nf: &Facts, path: &str) {
        let (change, what) = match (of.format, nf.format) {
            (o, n) if o == n => return,
            (None, Some(n)) => (SchemaChange::FormatNarrowed, format!("format `{n}` added")),
            (Some(o), None) => (SchemaChange::FormatWidened, format!("format `{o}` removed")),
            (Some(o), Some(n)) => {
                let what = format!("format changed from `{o}` to `{n}`");
                match (format_rank(o), format_rank(n)) {
                    (Some((fo, ro)), Some((fnew, rn))) if fo == fnew => {
                        if rn < ro {
                            (SchemaChange::FormatNarrowed, what)
                        } else {
                            (SchemaChange::FormatWidened, what)
                        }
                    }
                    _ => (SchemaChange::FormatChanged, what),
                }
            }
            (None, None) => return,
        };
        self.emit(change, of, nf, path, what);
    }

    fn compare_enum(&mut self, of: &Facts, nf: &Facts, path: &str) {
        match (&of.enumeration, &nf.enumeration) {
            (None, None) => {}
            (Some(o), Some(n)) => {
                let removed: Vec<&Value> = o.iter().filter(|v| !n.contains(v)).copied().collect();
                let added: Vec<&Value> = n.iter().filter(|v| !o.contains(v)).copied().collect();
                if !removed.is_empty() {
                    let what = format!(
                        "enum value{} {} removed",
                        plural(removed.len()),
                        show_values(&removed)
                    );
                    self.emit(SchemaChange::EnumValueRemoved, of, nf, path, what);
                }
                if !added.is_empty() {
                    let what = format!(
                        "enum value{} {} added",
                        plural(added.len()),
                        show_values(&added)
                    );
                    self.emit(SchemaChange::EnumValueAdded, of, nf, path, what);
                }
            }
            (None, Some(n)) => {
                let what = format!("values are now restricted to {}", show_values(n));
                self.emit(SchemaChange::EnumAdded, of, nf, path, what);
            }
            (Some(o), None) => {
                let what = format!(
                    "the enum {} was removed: any value is allowed",
                    show_values(o)
                );
                self.emit(SchemaChange::EnumRemoved, of, nf, path, what);
            }
        }
    }

    fn compare_counts(&mut self, of: &Facts, nf: &Facts, path: &str) {
        use SchemaChange as C;
        let uppers = [
            (
                "maxLength",
                of.max_length,
                nf.max_length,
                C::MaxLengthDecreased,
                C::MaxLengthIncreased,
            ),
            (
                "maxItems",
                of.max_items,
                nf.max_items,
                C::MaxItemsDecreased,
                C::MaxItemsIncreased,
            ),
        ];
        for (keyword, o, n, lowered, raised) in uppers {
            let (change, what) = match (o, n) {
                (None, Some(n)) => (lowered, format!("`{keyword}: {n}` added")),
                (Some(o), None) => (raised, format!("`{keyword}: {o}` removed")),
                (Some(o), Some(n)) if n < o => {
                    (lowered, format!("`{keyword}` lowered from {o} to {n}"))
                }
                (Some(o), Some(n)) if n > o => {
                    (raised, format!("`{keyword}` raised from {o} to {n}"))
                }
                _ => continue,
            };
            self.emit(change, of, nf, path, what);
        }
        let lowers = [
            (
                "minLength",
                of.min_length,
                nf.min_length,
                C::MinLengthIncreased,
                C::MinLengthDecreased,
            ),
            (
                "minItems",
                of.min_items,
                nf.min_items,
                C::MinItemsIncreased,
                C::MinItemsDecreased,
            ),
        ];
        for (keyword, o, n, raised, lowered) in lowers {
            let (change, what) = match (o, n) {
                (None, Some(n)) => (raised, format!("`{keyword}: {n}` added")),
                (Some(o), None) => (lowered, format!("`{keyword}: {o}` removed")),
                (Some(o), Some(n)) if n > o => {
                    (raised, format!("`{keyword}` raised from {o} to {n}"))
                }
                (Some(o), Some(n)) if n < o => {
                    (lowered, format!("`{keyword}` lowered from {o} to {n}"))
                }
                _ => continue,
            };
            self.emit(change, of, nf, path, what);
        }
    }

    fn compare_numbers(&mut self, of: &Facts, nf: &Facts, path: &str) {
        // Upper bound: lower value, or same value made exclusive, is tighter.
        let upper = match (&of.maximum, &nf.maximum) {
            (None, None) => None,
            (None, Some(n)) => Some((
                SchemaChange::MaximumDecreased,
                format!("values must now be {}", n.show_upper()),
            )),
            (Some(o), None) => Some((
                SchemaChange::MaximumIncreased,
                format!("the upper bound ({}) was removed", o.show_upper()),
            )),
            (Some(o), Some(n)) => {
                let tighter =
                    n.value < o.value || (n.value == o.value && n.exclusive && !o.exclusive);
                let looser =
                    n.value > o.value || (n.value == o.value && !n.exclusive && o.exclusive);
                let what = format!(
                    "values must now be {} (was {})",
                    n.show_upper(),
                    o.show_upper()
                );
                if tighter {
                    Some((SchemaChange::MaximumDecreased, what))
                } else if looser {
                    Some((SchemaChange::MaximumIncreased, what))
                } else {
                    None
                }
            }
        };
        if let Some((change, what)) = upper {
            self.emit(change, of, nf, path, what);
        }
        let lower = match (&of.minimum, &nf.minimum) {
            (None, None) => None,
            (None, Some(n)) => Some((
                SchemaChange::MinimumIncreased,
                format!("values must now be {}", n.show_lower()),
            )),
            (Some(o), None) => Some((
                SchemaChange::MinimumDecreased,
                format!("the lower bound ({}) was removed", o.show_lower()),
            )),
            (Some(o), Some(n)) => {
                let tighter =
                    n.value > o.value || (n.value == o.value && n.exclusive && !o.exclusive);
                let looser =
                    n.value < o.value || (n.value == o.value && !n.exclusive && o.exclusive);
                let what = format!(
                    "values must now be {} (was {})",
                    n.show_lower(),
                    o.show_lower()
                );
                if tighter {
                    Some((SchemaChange::MinimumIncreased, what))
                } else if looser {
                    Some((SchemaChange::MinimumDecreased, what))
                } else {
                    None
                }
            }
        };
        if let Some((change, what)) = lower {
            self.emit(change, of, nf, path, what);
        }
    }

    fn compare_pattern(&mut self, of: &Facts, nf: &Facts, path: &str) {
        let (change, what) = match (of.pattern, nf.pattern) {
            (o, n) if o == n => return,
            (None, Some(n)) => (SchemaChange::PatternAdded, format!("pattern `{n}` added")),
            (Some(o), None) => (
                SchemaChange::PatternRemoved,
                format!("pattern `{o}` removed"),
            ),
            (Some(o), Some(n)) => (
                SchemaChange::PatternChanged,
                format!("pattern changed from `{o}` to `{n}`"),
            ),
            (None, None) => return,
        };
        self.emit(change, of, nf, path, what);
    }

    fn compare_properties(&mut self, of: &Facts<'a>, nf: &Facts<'a>, path: &str) {
        use super::checks::Check as K;
        let request = self.scope.is_request();
        let mut names: Vec<&str> = Vec::new();
        for name in of.property_names().chain(nf.property_names()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            let (op, np) = (of.property(name), nf.property(name));
            let (o_req, n_req) = (of.required.contains(name), nf.required.contains(name));
            // Clients never send `readOnly` properties and never receive `writeOnly` ones.
            let hidden = |doc: &Document, node: Option<&Node>| {
                node.is_some_and(|n| {
                    let (ro, wo) = access(doc, n);
                    if request { ro } else { wo }
                })
            };
            let (o_hidden, n_hidden) = (hidden(self.old, op), hidden(self.new, np));
            let o_exists = (op.is_some() || o_req) && !o_hidden;
            let n_exists = (np.is_some() || n_req) && !n_hidden;
            // A property only `required` names has no schema of its own: point at the object.
            let o_at = op.map_or_else(|| of.pointer.clone(), |n| n.pointer.clone());
            let n_at = np.map_or_else(|| nf.pointer.clone(), |n| n.pointer.clone());
            let child = join(path, name);
            let raw = |check: K, old: Option<String>, new: Option<String>, what: &str| Raw {
                info: check.info(),
                old,
                new,
                message: format!("{}: property `{child}` {what}.", self.label),
            };
            match (o_exists, n_exists) {
                (true, true) => {
                    let check = match (request, o_req, n_req) {
                        (true, false, true) => Some((
                            K::RequestPropertyBecameRequired,
                            "became required; requests without it are refused",
                        )),
                        (true, true, false) => {
                            Some((K::RequestPropertyBecameOptional, "became optional"))
                        }
                        (false, true, false) => Some((
                            K::ResponsePropertyBecameOptional,
                            "became optional; clients that rely on it may fail when it is absent",
                        )),
                        (false, false, true) => {
                            Some((K::ResponsePropertyBecameRequired, "is now always present"))
                        }
                        _ => None,
                    };
                    if let Some((check, what)) = check {
                        self.emit_check(raw(check, Some(o_at), Some(n_at), what));
                    }
                    if let (Some(o), Some(n)) = (op, np) {
                        self.compare(o.clone(), n.clone(), &child);
                    }
                }
                (true, false) => {
                    let (check, what) = match (request, o_req, nf.additional.is_closed()) {
                        (true, _, true) => (
                            K::RequestPropertyRemoved,
                            "was removed and the object forbids unlisted properties; requests sending it are refused",
                        ),
                        (true, _, false) => (
                            K::RequestPropertyNoLongerDocumented,
                            "was removed; requests may still send it but it is ignored",
                        ),
                        (false, true, _) => (
                            K::ResponseRequiredPropertyRemoved,
                            "was removed although responses always carried it",
                        ),
                        (false, false, _) => (K::ResponsePropertyRemoved, "was removed"),
                    };
                    self.emit_check(raw(check, Some(o_at), None, what));
                }
                (false, true) => {
                    let (check, what) = match (request, n_req) {
                        (true, true) => (
                            K::RequestPropertyAddedRequired,
                            "was added as required; existing requests lack it",
                        ),
                        (true, false) => (K::RequestPropertyAdded, "was added"),
                        (false, _) => (K::ResponsePropertyAdded, "was added"),
                    };
                    self.emit_check(raw(check, None, Some(n_at), what));
                }
                (false, false) => {}
            }
        }
    }

    fn compare_additional(&mut self, of: &Facts<'a>, nf: &Facts<'a>, path: &str) {
        match (&of.additional, &nf.additional) {
            (Additional::Closed, Additional::Closed) | (Additional::Open, Additional::Open) => {}
            (_, Additional::Closed) => self.emit(
                SchemaChange::AdditionalPropertiesClosed,
                of,
                nf,
                path,
                "the object no longer allows properties it does not list".into(),
            ),
            (Additional::Closed, _) => self.emit(
                SchemaChange::AdditionalPropertiesOpened,
                of,
                nf,
                path,
                "the object now allows properties it does not list".into(),
            ),
            (Additional::Schema(o), Additional::Schema(n)) => {
                self.compare(o.clone(), n.clone(), &join(path, "*"))
            }
            (Additional::Open, Additional::Schema(n)) => {
                self.compare(Node::any(of.pointer.clone()), n.clone(), &join(path, "*"))
            }
            (Additional::Schema(o), Additional::Open) => {
                self.compare(o.clone(), Node::any(nf.pointer.clone()), &join(path, "*"))
            }
        }
    }

    fn compare_items(&mut self, of: &Facts<'a>, nf: &Facts<'a>, path: &str) {
        let child = format!("{path}[]");
        match (&of.items, &nf.items) {
            (Some(o), Some(n)) => self.compare(o.clone(), n.clone(), &child),
            (None, Some(n)) if of.is_array() => {
                self.compare(Node::any(of.pointer.clone()), n.clone(), &child)
            }
            (Some(o), None) if nf.is_array() => {
                self.compare(o.clone(), Node::any(nf.pointer.clone()), &child)
            }
            _ => {}
        }
    }

    /// Matches alternatives: same `$ref`, then equal structure, then the closest
    /// compatible one; what is left was added or removed.
    fn compare_alternatives(&mut self, olds: Vec<Node<'a>>, news: Vec<Node<'a>>, path: &str) {
        let mut old_free: Vec<bool> = vec![true; olds.len()];
        let mut new_free: Vec<bool> = vec![true; news.len()];
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (i, o) in olds.iter().enumerate() {
            let Some(r) = reference(o.value) else {
                continue;
            };
            if let Some(j) =
                (0..news.len()).find(|&j| new_free[j] && reference(news[j].value) == Some(r))
            {
                old_free[i] = false;
                new_free[j] = false;
                pairs.push((i, j));
            }
        }
        if olds.len() * news.len() <= MAX_ALTERNATIVE_PAIRS {
            // Equal structure first, so that a renamed component pairs with itself.
            for (i, o) in olds.iter().enumerate() {
                if !old_free[i] {
                    continue;
                }
                if let Some(j) =
                    (0..news.len()).find(|&j| new_free[j] && self.distance(o, &news[j]) == 0)
                {
                    old_free[i] = false;
                    new_free[j] = false;
                    pairs.push((i, j));
                }
            }
            for (i, o) in olds.iter().enumerate() {
                if !old_free[i] {
                    continue;
                }
                let best = (0..news.len())
                    .filter(|&j| new_free[j] && self.compatible(o, &news[j]))
                    .min_by_key(|&j| self.distance(o, &news[j]));
                if let Some(j) = best {
                    old_free[i] = false;
                    new_free[j] = false;
                    pairs.push((i, j));
                }
            }
        } else {
            for i in 0..olds.len().min(news.len()) {
                if old_free[i] && new_free[i] {
                    old_free[i] = false;
                    new_free[i] = false;
                    pairs.push((i, i));
                }
            }
        }
        for (i, j) in pairs {
            let child = format!("{path}(alt {})", j + 1);
            self.compare(olds[i].clone(), news[j].clone(), &child);
        }
        for (i, o) in olds.iter().enumerate().filter(|(i, _)| old_free[*i]) {
            let info = SchemaChange::AlternativeRemoved.info(self.scope);
            let message = format!(
                "{}{}: alternative {} ({}) was removed{}.",
                self.label,
                at(path),
                i + 1,
                describe(self.old, o),
                consequence(info, self.scope)
            );
            self.found.push(Raw {
                info,
                old: Some(o.pointer.clone()),
                new: None,
                message,
            });
        }
        for (j, n) in news.iter().enumerate().filter(|(j, _)| new_free[*j]) {
            let info = SchemaChange::AlternativeAdded.info(self.scope);
            let message = format!(
                "{}{}: alternative {} ({}) was added{}.",
                self.label,
                at(path),
                j + 1,
                describe(self.new, n),
                consequence(info, self.scope)
            );
            self.found.push(Raw {
                info,
                old: None,
                new: Some(n.pointer.clone()),
                message,
            });
        }
    }

    /// How many findings comparing two alternatives would give (0: same structure).
    fn distance(&self, old: &Node<'a>, new: &Node<'a>) -> usize {
        let key = (old.pointer.clone(), new.pointer.clone());
        if let Some(d) = self.distances.borrow().get(&key) {
            return *d;
        }
        let mut dry = SchemaDiff {
            old: self.old,
            new: self.new,
            scope: self.scope,
            label: String::new(),
            visited: self.visited.clone(),
            budget: Rc::clone(&self.budget),
            distances: Rc::clone(&self.distances),
            depth: self.depth,
            truncated: false,
            found: Vec::new(),
        };
        dry.compare(old.clone(), new.clone(), "");
        let d = dry.found.len();
        self.distances.borrow_mut().insert(key, d);
        d
    }

    fn compatible(&self, old: &Node<'a>, new: &Node<'a>) -> bool {
        let of = self
            .old
            .deref(old.value, &old.pointer)
            .map(|(v, p)| Facts::of(self.old, v, &p));
        let nf = self
            .new
            .deref(new.value, &new.pointer)
            .map(|(v, p)| Facts::of(self.new, v, &p));
        match (of.and_then(|f| f.types), nf.and_then(|f| f.types)) {
            (Some(o), Some(n)) => {
                o.iter().any(|t| covered(t, &n)) || n.iter().any(|t| covered(t, &o))
            }
            _ => true,
        }
    }
}

/// Whether the schema takes a structured value (array or object), for which the
/// parameter `style` and `explode` change the wire format.
pub(super) fn is_structured(doc: &Document, value: &Value, pointer: &str) -> bool {
    let Some((v, at)) = doc.deref(value, pointer) else {
        return false;
    };
    let facts = Facts::of(doc, v, &at);
    match &facts.types {
        Some(types) => types.contains("array") || types.contains("object"),
        // An untyped schema may take anything, structured values included.
        None => facts.enumeration.is_none(),
    }
}

/// What the schema says about a property being `readOnly` / `writeOnly`.
fn access(doc: &Document, node: &Node) -> (bool, bool) {
    let Some((v, at)) = doc.deref(node.value, &node.pointer) else {
        return (false, false);
    };
    let f = Facts::of(doc, v, &at);
    (f.read_only, f.write_only)
}

/// Whether an object may hold properties it does not list.
#[derive(Debug, Clone)]
enum Additional<'a> {
    Open,
    Closed,
    Schema(Node<'a>),
}

impl Additional<'_> {
    fn is_closed(&self) -> bool {
        matches!(self, Additional::Closed)
    }
}

/// A numeric bound as written, and whether it is exclusive.
#[derive(Debug, Clone)]
struct Bound {
    value: f64,
    text: String,
    exclusive: bool,
}

impl Bound {
    fn show_upper(&self) -> String {
        if self.exclusive {
            format!("below {}", self.text)
        } else {
            format!("at most {}", self.text)
        }
    }

    fn show_lower(&self) -> String {
        if self.exclusive {
            format!("above {}", self.text)
        } else {
            format!("at least {}", self.text)
        }
    }
}

/// What one schema (with its `allOf` branches merged) says about the values it accepts,
/// read the same way from both dialects.
#[derive(Debug, Clone)]
struct Facts<'a> {
    pointer: String,
    /// Allowed types other than `null`; `None` when the schema does not restrict them.
    types: Option<BTreeSet<&'a str>>,
    /// Whether `null` is explicitly allowed.
    null: bool,
    format: Option<&'a str>,
    /// Allowed values other than `null` (`enum`, or `const` as a one-value enum).
    enumeration: Option<Vec<&'a Value>>,
    max_length: Option<u64>,
    min_length: Option<u64>,
    max_items: Option<u64>,
    min_items: Option<u64>,
    maximum: Option<Bound>,
    minimum: Option<Bound>,
    pattern: Option<&'a str>,
    unique: bool,
    properties: Vec<(&'a str, Node<'a>)>,
    required: BTreeSet<&'a str>,
    additional: Additional<'a>,
    items: Option<Node<'a>>,
    alternatives: Option<Vec<Node<'a>>>,
    read_only: bool,
    write_only: bool,
}

impl<'a> Facts<'a> {
    /// Reads an already dereferenced schema.
    fn of(doc: &'a Document, value: &'a Value, pointer: &str) -> Facts<'a> {
        let mut f = Facts {
            pointer: pointer.to_owned(),
            types: None,
            null: false,
            format: None,
            enumeration: None,
            max_length: None,
            min_length: None,
            max_items: None,
            min_items: None,
            maximum: None,
            minimum: None,
            pattern: None,
            unique: false,
            properties: Vec::new(),
            required: BTreeSet::new(),
            additional: Additional::Open,
            items: None,
            alternatives: None,
            read_only: false,
            write_only: false,
        };
        let mut seen = HashSet::new();
        f.absorb(doc, value, pointer, &mut seen, 0);
        f.strip_null_alternatives(doc, &mut seen);
        f.infer_types();
        f
    }

    fn absorb(
        &mut self,
        doc: &'a Document,
        value: &'a Value,
        pointer: &str,
        seen: &mut HashSet<String>,
        depth: usize,
    ) {
        if depth > MAX_ALL_OF_DEPTH {
            return;
        }
        let Some((v, at)) = doc.deref(value, pointer) else {
            return;
        };
        if !seen.insert(at.clone()) {
            return;
        }
        let m = match v {
            Value::Object(m) => m,
            // The `false` schema accepts nothing.
            Value::Bool(false) => {
                self.types = Some(BTreeSet::new());
                return;
            }
            _ => return,
        };
        match m.get("type") {
            Some(Value::String(t)) => self.add_types(std::iter::once(t.as_str())),
            Some(Value::Array(ts)) => self.add_types(ts.iter().filter_map(Value::as_str)),
            _ => {}
        }
        // `nullable` is OpenAPI 3.0 only; in 3.1 it is an unknown keyword and ignored.
        if doc.dialect == Dialect::V30 && m.get("nullable") == Some(&Value::Bool(true)) {
            self.null = true;
        }
        if let Some(Value::Array(values)) = m.get("enum") {
            self.add_enum(values.iter());
        }
        if let Some(c) = m.get("const") {
            self.add_enum(std::iter::once(c));
        }
        if self.format.is_none() {
            self.format = m.get("format").and_then(Value::as_str);
        }
        if self.pattern.is_none() {
            self.pattern = m.get("pattern").and_then(Value::as_str);
        }
        tighten_max(&mut self.max_length, count(m, "maxLength"));
        tighten_min(&mut self.min_length, count(m, "minLength"));
        tighten_max(&mut self.max_items, count(m, "maxItems"));
        tighten_min(&mut self.min_items, count(m, "minItems"));
        self.unique |= m.get("uniqueItems") == Some(&Value::Bool(true));
        self.read_only |= m.get("readOnly") == Some(&Value::Bool(true));
        self.write_only |= m.get("writeOnly") == Some(&Value::Bool(true));
        self.absorb_bounds(m);
        if let Some(Value::Object(props)) = m.get("properties") {
            for (name, schema) in props {
                if self.property(name).is_none() {
                    let p = format!("{at}/properties/{}", escape_pointer(name));
                    self.properties.push((name.as_str(), Node::new(schema, p)));
                }
            }
        }
        if let Some(Value::Array(req)) = m.get("required") {
            self.required.extend(req.iter().filter_map(Value::as_str));
        }
        match m.get("additionalProperties") {
            Some(Value::Bool(false)) => self.additional = Additional::Closed,
            Some(s @ Value::Object(_)) if !self.additional.is_closed() => {
                self.additional =
                    Additional::Schema(Node::new(s, format!("{at}/additionalProperties")));
            }
            _ => {}
        }
        // 3.1: `unevaluatedProperties: false` closes the object as well.
        if m.get("unevaluatedProperties") == Some(&Value::Bool(false)) {
            self.additional = Additional::Closed;
        }
        if let (None, Some(items @ (Value::Object(_) | Value::Bool(_)))) =
            (&self.items, m.get("items"))
        {
            self.items = Some(Node::new(items, format!("{at}/items")));
        }
        if self.alternatives.is_none() {
            for keyword in ["oneOf", "anyOf"] {
                if let Some(Value::Array(branches)) = m.get(keyword) {
                    self.alternatives = Some(
                        branches
                            .iter()
                            .enumerate()
                            .map(|(i, b)| Node::new(b, format!("{at}/{keyword}/{i}")))
                            .collect(),
                    );
                    break;
                }
            }
        }
        if let Some(Value::Array(branches)) = m.get("allOf") {
            for (i, b) in branches.iter().enumerate() {
                self.absorb(doc, b, &format!("{at}/allOf/{i}"), seen, depth + 1);
            }
        }
    }

    fn absorb_bounds(&mut self, m: &Map<String, Value>) {
        let bound = |key: &str, exclusive: bool| {
            m.get(key).and_then(|v| match v {
                Value::Number(n) => n.as_f64().map(|value| Bound {
                    value,
                    text: n.to_string(),
                    exclusive,
                }),
                _ => None,
            })
        };
        // 3.0 spells exclusivity as a boolean beside `maximum`; 3.1 as a number of its own.
        let excl_max = m.get("exclusiveMaximum") == Some(&Value::Bool(true));
        let excl_min = m.get("exclusiveMinimum") == Some(&Value::Bool(true));
        for b in [bound("maximum", excl_max), bound("exclusiveMaximum", true)]
            .into_iter()
            .flatten()
        {
            let tighter = match &self.maximum {
                None => true,
                Some(cur) => b.value < cur.value || (b.value == cur.value && b.exclusive),
            };
            if tighter {
                self.maximum = Some(b);
            }
        }
        for b in [bound("minimum", excl_min), bound("exclusiveMinimum", true)]
            .into_iter()
            .flatten()
        {
            let tighter = match &self.minimum {
                None => true,
                Some(cur) => b.value > cur.value || (b.value == cur.value && b.exclusive),
            };
            if tighter {
                self.minimum = Some(b);
            }
        }
    }

    fn add_types(&mut self, names: impl Iterator<Item = &'a str>) {
        let mut set = BTreeSet::new();
        for name in names {
            if name == "null" {
                self.null = true;
            } else {
                set.insert(name);
            }
        }
        self.types = Some(match self.types.take() {
            None => set,
            // Under `allOf` both apply: keep what each side allows (integer within number).
            Some(existing) => existing
                .iter()
                .filter(|t| covered(t, &set))
                .chain(set.iter().filter(|t| covered(t, &existing)))
                .copied()
                .collect(),
        });
    }

    fn add_enum(&mut self, values: impl Iterator<Item = &'a Value>) {
        let mut list = Vec::new();
        for v in values {
            if v.is_null() {
                self.null = true;
            } else if !list.contains(&v) {
                list.push(v);
            }
        }
        self.enumeration = Some(match self.enumeration.take() {
            None => list,
            Some(existing) => existing.into_iter().filter(|v| list.contains(v)).collect(),
        });
    }

    /// Reads `oneOf`/`anyOf` branches that only allow `null` as nullability, and a lone
    /// remaining branch as the schema itself: `anyOf: [{$ref: X}, {type: 'null'}]` is a
    /// nullable X.
    fn strip_null_alternatives(&mut self, doc: &'a Document, seen: &mut HashSet<String>) {
        // A loop, not recursion: the lone branch may itself be a nullable wrapper.
        while let Some(branches) = self.alternatives.take() {
            let mut rest = Vec::new();
            for b in branches {
                if is_null_schema(doc, &b) {
                    self.null = true;
                } else {
                    rest.push(b);
                }
            }
            let plain = self.types.is_none()
                && self.enumeration.is_none()
                && self.properties.is_empty()
                && self.items.is_none();
            match (rest.pop(), rest.is_empty()) {
                (None, _) => {}
                (Some(only), true) if plain => {
                    self.absorb(doc, only.value, &only.pointer, seen, 1);
                }
                (Some(last), _) => {
                    rest.push(last);
                    self.alternatives = Some(rest);
                    return;
                }
            }
        }
    }

    /// Infers the type of schemas that leave `type` out but say it otherwise.
    fn infer_types(&mut self) {
        if self.types.is_some() || self.alternatives.is_some() {
            return;
        }
        if let Some(values) = &self.enumeration {
            let types: BTreeSet<&'a str> = values.iter().map(|v| json_type(v)).collect();
            if !types.is_empty() {
                self.types = Some(types);
            }
        } else if !self.properties.is_empty() || !matches!(self.additional, Additional::Open) {
            self.types = Some(BTreeSet::from(["object"]));
        } else if self.items.is_some() {
            self.types = Some(BTreeSet::from(["array"]));
        }
    }

    /// Whether the schema restricts values enough for `null` to be a question.
    fn constrained(&self) -> bool {
        self.types.is_some() || self.enumeration.is_some()
    }

    fn is_object(&self) -> bool {
        match &self.types {
            Some(t) => t.contains("object"),
            None => !self.properties.is_empty() || !self.required.is_empty(),
        }
    }

    fn is_array(&self) -> bool {
        self.types.as_ref().is_some_and(|t| t.contains("array"))
    }

    fn property(&self, name: &str) -> Option<&Node<'a>> {
        self.properties
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, node)| node)
    }

    /// Listed properties, then names only `required` mentions.
    fn property_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.properties.iter().map(|(n, _)| *n).chain(
            self.required
                .iter()
                .copied()
                .filter(|r| self.property(r).is_none()),
        )
    }
}

fn is_null_schema(doc: &Document, node: &Node) -> bool {
    let Some((v, _)) = doc.deref(node.value, &node.pointer) else {
        return false;
    };
    match v.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.len() == 1 && ts[0] == "null",
        _ => {
            v.get("const") == Some(&Value::Null)
                || v.get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(|e| e.len() == 1 && e[0].is_null())
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether type `t` is allowed by `set` (an integer is a number).
fn covered(t: &str, set: &BTreeSet<&str>) -> bool {
    set.contains(t) || (t == "integer" && set.contains("number"))
}

/// A non-negative count keyword (`maxLength`, `minItems`…); `0` minimums mean none.
fn count(m: &Map<String, Value>, key: &str) -> Option<u64> {
    let n = m.get(key)?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

fn tighten_max(current: &mut Option<u64>, new: Option<u64>) {
    if let Some(n) = new {
        *current = Some(current.map_or(n, |c| c.min(n)));
    }
}

fn tighten_min(current: &mut Option<u64>, new: Option<u64>) {
    if let Some(n) = new.filter(|n| *n > 0) {
        *current = Some(current.map_or(n, |c| c.max(n)));
    }
}

/// Widths of the numeric formats, in order: a wider one accepts every narrower value.
fn format_rank(format: &str) -> Option<(&'static str, u8)> {
    Some(match format {
        "int32" => ("integer", 0),
        "int64" => ("integer", 1),
        "float" => ("number", 0),
        "double" => ("number", 1),
        _ => return None,
    })
}

fn reference(value: &Value) -> Option<&str> {
    value.get("$ref").and_then(Value::as_str)
}

/// A short name for an alternative: its component name, else its types.
fn describe(doc: &Document, node: &Node) -> String {
    if let Some(r) = reference(node.value) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("`{}`", name.replace("~1", "/").replace("~0", "~"));
    }
    let facts = doc
        .deref(node.value, &node.pointer)
        .map(|(v, p)| Facts::of(doc, v, &p));
    match facts.and_then(|f| f.types) {
        Some(t) if !t.is_empty() => show_types(&Some(t)),
        _ => "a schema".to_owned(),
    }
}

fn show_types(types: &Option<BTreeSet<&str>>) -> String {
    match types {
        None => "any type".to_owned(),
        Some(t) if t.is_empty() => "`null` only".to_owned(),
        Some(t) => t
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn show_values(values: &[&Value]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("`{v}`"))
        .collect();
    if values.len() > SHOWN {
        parts.push(format!("and {} more", values.len() - SHOWN));
    }
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The human path of a property inside a site.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    }
}

/// Why a change matters, appended to its sentence.
fn consequence(info: CheckInfo, scope: Scope) -> &'static str {
    match (info.severity, scope.is_request()) {
        (Severity::Breaking, true) => "; requests that were valid may now be refused",
        (Severity::Breaking, false) => "; clients may receive values they were not written for",
        (Severity::Warning, false) => "; clients may receive values outside the old contract",
        _ => "",
    }
}
