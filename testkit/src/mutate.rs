//! Single mutations that turn a value a [`Node`] accepts into one it rejects.
//!
//! Every candidate violates a constraint that applies at its location unconditionally
//! (a `type`, bound, `enum`, `required`, ...), so the whole document fails. The one
//! exception is a location inside a `oneOf`/`anyOf` branch, where another branch might
//! accept the change: there each candidate is run through a validator of the combinator
//! and kept only if it fails, and its reported pointer moves up to the combinator.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::json::{as_i128, float_value, int_value, join, json_eq};
use crate::schema::{
    ArrC, Check, Checker, Choice, Compiled, Format, Kind, Node, NumC, ObjC, Rest, StrC, TypeSet,
    Typed,
};
use crate::{Mutation, MutationKind};

/// Candidates of one kind at one location; [`crate::invalid_value`] picks a group, then a
/// member, so locations with many possible values do not crowd out the rest.
pub(crate) type Group = Vec<(Value, Mutation)>;

/// Sizes beyond which growing a string, array or object to break a maximum is skipped.
const MAX_GROWTH: u64 = 4096;

pub(crate) struct Mutator {
    checker: Arc<Checker>,
    formats: Vec<(Format, Arc<Check>)>,
}

impl Mutator {
    pub fn new(compiled: &Compiled) -> Self {
        Self {
            checker: compiled.checker.clone(),
            formats: [
                (Format::DateTime, "date-time"),
                (Format::Date, "date"),
                (Format::Uuid, "uuid"),
            ]
            .into_iter()
            .filter_map(|(f, name)| Some((f, Check::format(name)?)))
            .collect(),
        }
    }

    /// All candidate mutations of `value`, grouped.
    pub fn groups(&self, node: &Node, value: &Value) -> Vec<Group> {
        self.at(node, value, "")
    }

    fn at(&self, node: &Node, v: &Value, path: &str) -> Vec<Group> {
        match &node.kind {
            Kind::Any => Vec::new(),
            Kind::Literals(values) => {
                let group: Group = not_in(values, v)
                    .into_iter()
                    .map(|c| change(path, MutationKind::NotInEnum, c))
                    .collect();
                non_empty(group).into_iter().collect()
            }
            Kind::Typed(t) => self.typed(t, v, path),
            Kind::Choice(c) => self.choice(c, v, path),
        }
    }

    fn choice(&self, c: &Choice, v: &Value, path: &str) -> Vec<Group> {
        let Some(index) = c
            .branch_ptrs
            .iter()
            .position(|p| self.checker.valid(std::slice::from_ref(p), v))
        else {
            return Vec::new();
        };
        let Some(Some(branch)) = c.branches.get(index) else {
            return Vec::new();
        };
        let whole = std::slice::from_ref(&c.whole);
        self.at(branch, v, path)
            .into_iter()
            .filter_map(|group| {
                let kept: Group = group
                    .into_iter()
                    .filter(|(candidate, _)| !self.checker.valid(whole, candidate))
                    .map(|(candidate, mut m)| {
                        // Validators report a failed combinator at its own location.
                        m.pointer = path.to_owned();
                        (candidate, m)
                    })
                    .collect();
                (!kept.is_empty()).then_some(kept)
            })
            .collect()
    }

    fn typed(&self, t: &Typed, v: &Value, path: &str) -> Vec<Group> {
        let mut groups = Vec::new();
        if let Some(allowed) = t.explicit {
            let group: Group = wrong_types(allowed)
                .into_iter()
                .map(|c| change(path, MutationKind::WrongType, c))
                .collect();
            groups.extend(non_empty(group));
        }
        match v {
            Value::String(s) => self.string(&t.string, s, path, &mut groups),
            Value::Number(n) => {
                let floats = t.generated().has(TypeSet::NUMBER);
                number(&t.num, n, floats, path, &mut groups);
            }
            Value::Array(items) => self.array(&t.array, items, path, &mut groups),
            Value::Object(map) => self.object(&t.object, map, path, &mut groups),
            Value::Null | Value::Bool(_) => {}
        }
        groups
    }

    fn string(&self, c: &StrC, s: &str, path: &str, groups: &mut Vec<Group>) {
        let len = s.chars().count() as u64;
        let mut push = |kind, candidate: String| {
            groups.push(vec![change(path, kind, Value::String(candidate))]);
        };
        if c.min > 0 && len >= c.min {
            push(
                MutationKind::OutOfRange,
                s.chars().take(to_usize(c.min - 1)).collect(),
            );
        }
        if let Some(max) = c.max.filter(|max| *max < MAX_GROWTH && len <= *max) {
            push(
                MutationKind::OutOfRange,
                format!("{s}{}", "x".repeat(to_usize(max + 1 - len))),
            );
        }
        for p in &c.patterns {
            let candidates = [
                String::new(),
                "!".to_owned(),
                " ".to_owned(),
                "\u{1F600}".to_owned(),
                "0".to_owned(),
                "a".to_owned(),
                format!("{s}!"),
                format!("!{s}"),
                format!("{s} "),
                "~~~~~~~~".to_owned(),
            ];
            if let Some(bad) = candidates.into_iter().find(|c| !p.matches(c)) {
                push(MutationKind::PatternMismatch, bad);
            }
        }
        if let Some(format) = c.format {
            if let Some(bad) = self.bad_format(format, s) {
                push(MutationKind::BadFormat, bad);
            }
        }
    }

    /// A near miss of `s` for its format (month 13, a non-hex digit), else an obvious miss;
    /// either way confirmed by the validator's own format check.
    fn bad_format(&self, format: Format, s: &str) -> Option<String> {
        let check = &self.formats.iter().find(|(f, _)| *f == format)?.1;
        let near = match format {
            Format::DateTime | Format::Date => s
                .get(..5)
                .zip(s.get(7..))
                .map(|(head, tail)| format!("{head}13{tail}")),
            Format::Uuid => s.get(1..).map(|tail| format!("g{tail}")),
        };
        near.into_iter()
            .chain(["not-a-date".to_owned(), String::new()])
            .find(|c| !check.is_valid(&Value::String(c.clone())))
    }

    fn array(&self, c: &ArrC, items: &[Value], path: &str, groups: &mut Vec<Group>) {
        let len = items.len() as u64;
        if c.min > 0 && len >= c.min {
            let shorter = items[..to_usize(c.min - 1)].to_vec();
            groups.push(vec![change(
                path,
                MutationKind::OutOfRange,
                Value::Array(shorter),
            )]);
        }
        if let Some(max) = c.max.filter(|max| *max < MAX_GROWTH && len <= *max) {
            let filler = items.last().cloned().unwrap_or(Value::Null);
            let mut longer = items.to_vec();
            longer.resize(to_usize(max + 1), filler);
            groups.push(vec![change(
                path,
                MutationKind::OutOfRange,
                Value::Array(longer),
            )]);
        }
        if let (true, Some(first)) = (c.unique, items.first()) {
            let mut doubled = items.to_vec();
            // Grow only where `maxItems` leaves room, so the change breaks nothing else.
            if c.max.is_none_or(|max| len < max) {
                doubled.push(first.clone());
            } else if let [_, .., last] = doubled.as_mut_slice() {
                *last = first.clone();
            }
            if doubled.len() > 1 {
                groups.push(vec![change(
                    path,
                    MutationKind::DuplicateItems,
                    Value::Array(doubled),
                )]);
            }
        }
        for (i, item) in items.iter().enumerate() {
            let Some(node) = c.node_at(i) else { continue };
            for group in self.at(node, item, &join(path, &i.to_string())) {
                groups.push(rewrap(group, |candidate| {
                    let mut copy = items.to_vec();
                    copy[i] = candidate;
                    Value::Array(copy)
                }));
            }
        }
    }

    fn object(&self, c: &ObjC, map: &Map<String, Value>, path: &str, groups: &mut Vec<Group>) {
        let object = |m: Map<String, Value>| Value::Object(m);
        let removed: Group = c
            .required
            .iter()
            .filter(|r| map.contains_key(*r))
            .map(|r| {
                let mut copy = map.clone();
                copy.shift_remove(r);
                change(path, MutationKind::RemoveRequired, object(copy))
            })
            .collect();
        groups.extend(non_empty(removed));

        // Names for added properties: declared ones have schemas of their own.
        let fresh = |from: &Map<String, Value>, n: usize| {
            (0..)
                .map(|i| format!("__specwire_extra{i}"))
                .filter(|k| !from.contains_key(k) && c.prop(k).is_none())
                .take(n)
                .collect::<Vec<_>>()
        };
        if matches!(c.additional, Rest::Forbidden) {
            let mut copy = map.clone();
            copy.extend(fresh(map, 1).into_iter().map(|k| (k, Value::Null)));
            groups.push(vec![change(
                path,
                MutationKind::ExtraPropertyWhereForbidden,
                object(copy),
            )]);
        }
        let len = map.len() as u64;
        if let Some(max) = c.max.filter(|max| *max < MAX_GROWTH && len <= *max) {
            let mut copy = map.clone();
            copy.extend(
                fresh(map, to_usize(max + 1 - len))
                    .into_iter()
                    .map(|k| (k, Value::Null)),
            );
            groups.push(vec![change(path, MutationKind::OutOfRange, object(copy))]);
        }
        if c.min > 0 && len >= c.min {
            let copy: Map<String, Value> = map
                .iter()
                .take(to_usize(c.min - 1))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            groups.push(vec![change(path, MutationKind::OutOfRange, object(copy))]);
        }
        if let Some(Kind::Literals(names)) = c.names.as_ref().map(|n| &n.kind) {
            let bad = (0..)
                .map(|i| format!("__specwire_not_a_name{i}"))
                .find(|k| !map.contains_key(k) && !names.iter().any(|n| n.as_str() == Some(k)));
            if let Some(bad) = bad {
                // Rename the first key so that the property count stays put.
                let copy: Map<String, Value> = match map.iter().next() {
                    Some((first, _)) => map
                        .iter()
                        .map(|(k, v)| (if k == first { bad.clone() } else { k.clone() }, v.clone()))
                        .collect(),
                    None => std::iter::once((bad, Value::Null)).collect(),
                };
                groups.push(vec![change(path, MutationKind::NotInEnum, object(copy))]);
            }
        }
        for (key, child) in map {
            let Some(node) = c.node_for(key) else {
                continue;
            };
            for group in self.at(node, child, &join(path, key)) {
                groups.push(rewrap(group, |candidate| {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), candidate);
                    Value::Object(copy)
                }));
            }
        }
    }
}

fn number(c: &NumC, n: &serde_json::Number, floats: bool, path: &str, groups: &mut Vec<Group>) {
    let mut push = |kind, candidate: Option<Value>| {
        if let Some(candidate) = candidate {
            groups.push(vec![change(path, kind, candidate)]);
        }
    };
    // Integers below/above a bound satisfy both `integer` and `number`, so prefer them;
    // fall back to a float only where the integer arithmetic would be inexact.
    let exact = |b: crate::schema::Bound| b.int.is_some() || b.value.abs() < 9.0e15;
    if let Some(b) = c.lo {
        let candidate = if exact(b) {
            int_value(b.int_lower() - 1)
        } else if floats {
            let f = if b.exclusive {
                b.value
            } else {
                b.value - b.value.abs().max(1.0)
            };
            float_value(f)
        } else {
            None
        };
        push(MutationKind::OutOfRange, candidate);
    }
    if let Some(b) = c.hi {
        let candidate = if exact(b) {
            int_value(b.int_upper() + 1)
        } else if floats {
            let f = if b.exclusive {
                b.value
            } else {
                b.value + b.value.abs().max(1.0)
            };
            float_value(f)
        } else {
            None
        };
        push(MutationKind::OutOfRange, candidate);
    }
    if let Some(m) = &c.multiple_of {
        let candidate = match as_i128(n) {
            Some(i) if m.k.fract() == 0.0 && m.k >= 2.0 => int_value(i + 1),
            _ if floats => n.as_f64().and_then(|f| float_value(f + m.k / 2.0)),
            _ => None,
        };
        // Floating-point grids are fiddly: only keep what the validator itself rejects.
        push(
            MutationKind::NotMultipleOf,
            candidate.filter(|v| !m.check.is_valid(v)),
        );
    }
}

/// One representative of each JSON type `allowed` rejects.
fn wrong_types(allowed: TypeSet) -> Vec<Value> {
    let mut reps = Vec::new();
    if !allowed.has(TypeSet::NULL) {
        reps.push(Value::Null);
    }
    if !allowed.has(TypeSet::BOOLEAN) {
        reps.push(Value::Bool(true));
    }
    if !allowed.admits_number(true) {
        reps.push(json!(7));
    }
    if !allowed.admits_number(false) {
        reps.push(json!(0.5));
    }
    if !allowed.has(TypeSet::STRING) {
        reps.push(json!("7"));
    }
    if !allowed.has(TypeSet::ARRAY) {
        reps.push(json!([]));
    }
    if !allowed.has(TypeSet::OBJECT) {
        reps.push(json!({}));
    }
    reps
}

/// Values close to `v` (same type where possible) that are not among `values`.
fn not_in(values: &[Value], v: &Value) -> Vec<Value> {
    let near = match v {
        Value::String(s) => Some(Value::String(format!("{s}_x"))),
        Value::Number(n) => match as_i128(n) {
            Some(i) => int_value(i + 1),
            None => n.as_f64().and_then(|f| float_value(f + 0.5)),
        },
        Value::Bool(b) => Some(Value::Bool(!b)),
        Value::Null => Some(Value::String("null".into())),
        Value::Array(_) | Value::Object(_) => Some(Value::Null),
    };
    let mut out: Vec<Value> = Vec::new();
    for candidate in
        near.into_iter()
            .chain([json!("__specwire_not_in_enum"), json!(-424242), Value::Null])
    {
        if !values.iter().any(|x| json_eq(x, &candidate))
            && !out.iter().any(|x| json_eq(x, &candidate))
        {
            out.push(candidate);
        }
        if out.len() == 2 {
            break;
        }
    }
    out
}

fn change(path: &str, kind: MutationKind, value: Value) -> (Value, Mutation) {
    (
        value,
        Mutation {
            pointer: path.to_owned(),
            changed: path.to_owned(),
            kind,
        },
    )
}

fn rewrap(group: Group, wrap: impl Fn(Value) -> Value) -> Group {
    group.into_iter().map(|(v, m)| (wrap(v), m)).collect()
}

fn non_empty(group: Group) -> Option<Group> {
    (!group.is_empty()).then_some(group)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `true` if every value the node generates has at least one mutation, so that
/// [`crate::invalid_value`] never filters forever. Conservative for combinators: it asks
/// that each branch qualify and trusts the combinator check to leave some candidates.
pub(crate) fn always_mutable(node: &Node) -> bool {
    match &node.kind {
        Kind::Any => false,
        Kind::Literals(_) => true,
        Kind::Choice(c) => c.branches.iter().flatten().all(|b| always_mutable(b)),
        Kind::Typed(t) => typed_always_mutable(t),
    }
}

fn typed_always_mutable(t: &Typed) -> bool {
    let every_type = [
        TypeSet::NULL,
        TypeSet::BOOLEAN,
        TypeSet::NUMBER,
        TypeSet::STRING,
        TypeSet::ARRAY,
        TypeSet::OBJECT,
    ];
    if t.explicit
        .is_some_and(|ts| !every_type.iter().all(|x| ts.has(*x)))
    {
        return true;
    }
    let generated = t.generated();
    let number = t.num.lo.is_some() || t.num.hi.is_some() || t.num.multiple_of.is_some();
    let string = t.string.min > 0
        || t.string.max.is_some()
        || !t.string.patterns.is_empty()
        || t.string.format.is_some();
    let array = t.array.min > 0 || t.array.max.is_some();
    let object = !t.object.required.is_empty()
        || matches!(t.object.additional, Rest::Forbidden)
        || t.object.min > 0
        || t.object.max.is_some()
        || t.object
            .required
            .iter()
            .any(|r| t.object.prop(r).is_some_and(|n| always_mutable(n)));
    let checks = [
        (TypeSet::NULL, false),
        (TypeSet::BOOLEAN, false),
        (TypeSet::INTEGER, number),
        (TypeSet::NUMBER, number),
        (TypeSet::STRING, string),
        (TypeSet::ARRAY, array),
        (TypeSet::OBJECT, object),
    ];
    !generated.is_empty() && checks.iter().all(|(ty, ok)| !generated.has(*ty) || *ok)
}
