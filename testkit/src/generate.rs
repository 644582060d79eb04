//! Strategies producing values that a compiled [`Node`] accepts.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat};
use proptest::prelude::*;
use proptest::strategy::Union;
use serde_json::{Map, Value};

use crate::json::{all_distinct, dedup, float_value, int_value};
use crate::schema::{
    ArrC, Bound, Checker, Choice, Compiled, Format, Kind, Node, NumC, ObjC, Rest, StrC, TypeSet,
    Typed,
};
use crate::{Options, UnsupportedSchema};

type Result<T> = std::result::Result<T, UnsupportedSchema>;

/// Where unbounded integers are kept: the range of `i64`, which is what generated Rust
/// types use for an unbounded `integer`.
const INT_FLOOR: i128 = i64::MIN as i128;
const INT_CEILING: i128 = i64::MAX as i128;
/// Largest integer a JSON number here can hold.
const INT_MAX: i128 = u64::MAX as i128;
/// Span used for a float range open on one side, or both.
const FLOAT_SPAN: f64 = 1.0e6;
/// Refuse minimums that would make generation itself slow.
const MAX_MINIMUM: u64 = 4096;

pub(crate) struct Generator<'a> {
    opts: &'a Options,
    checker: Arc<Checker>,
    /// Strategies by node identity: shared `$ref` targets are built once.
    cache: HashMap<usize, BoxedStrategy<Value>>,
}

impl<'a> Generator<'a> {
    pub fn new(opts: &'a Options, compiled: &Compiled) -> Self {
        Self {
            opts,
            checker: compiled.checker.clone(),
            cache: HashMap::new(),
        }
    }

    pub fn strategy(&mut self, node: &Arc<Node>) -> Result<BoxedStrategy<Value>> {
        let key = Arc::as_ptr(node) as usize;
        if let Some(done) = self.cache.get(&key) {
            return Ok(done.clone());
        }
        let strategy = match &node.kind {
            Kind::Any => any_scalar(),
            Kind::Literals(values) => proptest::sample::select(values.clone()).boxed(),
            Kind::Typed(t) => self.typed(t, &node.ptr)?,
            Kind::Choice(c) => self.choice(c, &node.ptr)?,
        };
        self.cache.insert(key, strategy.clone());
        Ok(strategy)
    }

    fn choice(&mut self, c: &Choice, ptr: &str) -> Result<BoxedStrategy<Value>> {
        let mut options = Vec::new();
        let mut first_err = None;
        for branch in c.branches.iter().flatten() {
            match self.strategy(branch) {
                Ok(s) => options.push(s),
                Err(e) if e.unsatisfiable => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if options.is_empty() {
            return Err(first_err.unwrap_or_else(|| {
                UnsupportedSchema::unsatisfiable(ptr, "no branch can be generated")
            }));
        }
        let union = Union::new(options).boxed();
        if !c.one_of {
            return Ok(union);
        }
        // A value built for one branch may satisfy another too, which `oneOf` forbids.
        let checker = self.checker.clone();
        let branches = c.branch_ptrs.clone();
        Ok(union
            .prop_filter("must match exactly one oneOf branch", move |v| {
                branches
                    .iter()
                    .filter(|p| checker.valid(std::slice::from_ref(p), v))
                    .count()
                    == 1
            })
            .boxed())
    }

    fn typed(&mut self, t: &Typed, ptr: &str) -> Result<BoxedStrategy<Value>> {
        let types = t.generated();
        let mut options = Vec::new();
        let mut first_err = None;
        let mut add = |r: Result<BoxedStrategy<Value>>| -> Result<()> {
            match r {
                Ok(s) => options.push(s),
                // Another allowed type may still be satisfiable.
                Err(e) if e.unsatisfiable => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
            Ok(())
        };
        if types.has(TypeSet::NULL) {
            add(Ok(Just(Value::Null).boxed()))?;
        }
        if types.has(TypeSet::BOOLEAN) {
            add(Ok(any::<bool>().prop_map(Value::Bool).boxed()))?;
        }
        if types.has(TypeSet::NUMBER) {
            add(number(&t.num, ptr))?;
        } else if types.has(TypeSet::INTEGER) {
            add(integer(&t.num, ptr))?;
        }
        if types.has(TypeSet::STRING) {
            add(self.string(&t.string, ptr))?;
        }
        if types.has(TypeSet::ARRAY) {
            let r = self.array(&t.array, ptr);
            add(r)?;
        }
        if types.has(TypeSet::OBJECT) {
            let r = self.object(&t.object, ptr);
            add(r)?;
        }
        match options.len() {
            0 => Err(first_err
                .unwrap_or_else(|| UnsupportedSchema::unsatisfiable(ptr, "no type to generate"))),
            1 => Ok(options.remove(0)),
            _ => Ok(Union::new(options).boxed()),
        }
    }

    fn string(&mut self, s: &StrC, ptr: &str) -> Result<BoxedStrategy<Value>> {
        if s.max.is_some_and(|max| s.min > max) {
            return Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "`minLength` exceeds `maxLength`",
            ));
        }
        if s.min > MAX_MINIMUM {
            return Err(UnsupportedSchema::new(
                ptr,
                "`minLength` is too large to generate",
            ));
        }
        let base = match (s.format, s.patterns.first()) {
            (Some(_), Some(p)) => {
                return Err(UnsupportedSchema::new(
                    p.ptr.clone(),
                    "`pattern` together with `format` is not supported",
                ))
            }
            (Some(Format::DateTime), None) => date_time(),
            (Some(Format::Date), None) => date(),
            (Some(Format::Uuid), None) => uuid(),
            (None, Some(p)) => p.raw_strategy()?,
            (None, None) if s.base64 => base64(s.min),
            (None, None) => {
                let cap = (self.opts.max_string_len as u64).max(s.min);
                let hi = s.max.map_or(cap, |max| max.min(cap));
                free_string(to_usize(s.min), to_usize(hi))
            }
        };
        let (min, max) = (s.min, s.max);
        let patterns = s.patterns.clone();
        Ok(base
            .prop_filter("string length and pattern", move |x| {
                let len = x.chars().count() as u64;
                len >= min
                    && max.is_none_or(|max| len <= max)
                    && patterns.iter().all(|p| p.matches(x))
            })
            .prop_map(Value::String)
            .boxed())
    }

    fn array(&mut self, a: &ArrC, ptr: &str) -> Result<BoxedStrategy<Value>> {
        if a.min > MAX_MINIMUM {
            return Err(UnsupportedSchema::new(
                ptr,
                "`minItems` is too large to generate",
            ));
        }
        let prefix_len = a.prefix.len() as u64;
        let default_hi = a.min.max(self.opts.max_items as u64).max(prefix_len);
        let mut hi = a.max.map_or(default_hi, |max| max.min(default_hi));
        if matches!(a.items, Rest::Forbidden) {
            hi = hi.min(prefix_len);
        }
        if a.min > hi {
            return Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "`minItems` cannot be met within `maxItems` and `items`",
            ));
        }
        let (lo, hi) = (to_usize(a.min), to_usize(hi));
        let item = match &a.items {
            Rest::Schema(node) => self.strategy(node)?,
            // Forbidden: `hi` keeps every index inside `prefixItems`; never drawn from.
            Rest::Any | Rest::Forbidden => any_scalar(),
        };
        let prefix = a
            .prefix
            .iter()
            .map(|node| self.strategy(node))
            .collect::<Result<Vec<_>>>()?;
        let items: BoxedStrategy<Vec<Value>> = match (prefix.is_empty(), a.unique) {
            (true, false) => proptest::collection::vec(item, lo..=hi).boxed(),
            (true, true) => (lo..=hi)
                // Draw spares so that dropping duplicates still tends to leave enough.
                .prop_flat_map(move |n| {
                    proptest::collection::vec(item.clone(), n + 4).prop_map(move |items| {
                        let mut items = dedup(items);
                        items.truncate(n);
                        items
                    })
                })
                .prop_filter("uniqueItems needs enough distinct items", move |v| {
                    v.len() >= lo
                })
                .boxed(),
            (false, unique) => {
                let prefix = Rc::new(prefix);
                (lo..=hi)
                    .prop_flat_map(move |n| {
                        (0..n)
                            .map(|i| prefix.get(i).cloned().unwrap_or_else(|| item.clone()))
                            .collect::<Vec<_>>()
                    })
                    .prop_filter("uniqueItems", move |v| !unique || all_distinct(v))
                    .boxed()
            }
        };
        Ok(items.prop_map(Value::Array).boxed())
    }

    fn object(&mut self, o: &ObjC, ptr: &str) -> Result<BoxedStrategy<Value>> {
        let checker = self.checker.clone();
        let name_ok = |name: &str| {
            o.names
                .as_ref()
                .is_none_or(|names| checker.valid(&names.sources, &Value::String(name.to_owned())))
        };
        let mut entries: Vec<(String, bool, BoxedStrategy<Value>)> = Vec::new();
        let declared: Vec<(String, bool)> = o
            .props
            .iter()
            .map(|(name, _)| (name.clone(), o.required.contains(name)))
            .collect();
        for (name, required) in declared {
            if !name_ok(&name) {
                if required {
                    return Err(UnsupportedSchema::unsatisfiable(
                        ptr,
                        format!("required property `{name}` fails `propertyNames`"),
                    ));
                }
                continue;
            }
            let Some(node) = o.prop(&name).cloned() else {
                continue;
            };
            match self.strategy(&node) {
                Ok(s) => entries.push((name, required, s)),
                // An optional property nothing satisfies is simply never present.
                Err(e) if e.unsatisfiable && !required => {}
                Err(e) => return Err(e),
            }
        }
        for name in &o.required {
            if o.prop(name).is_some() {
                continue;
            }
            if !name_ok(name) {
                return Err(UnsupportedSchema::unsatisfiable(
                    ptr,
                    format!("required property `{name}` fails `propertyNames`"),
                ));
            }
            let s = match &o.additional {
                Rest::Schema(node) => self.strategy(node)?,
                Rest::Any => any_scalar(),
                Rest::Forbidden => {
                    return Err(UnsupportedSchema::unsatisfiable(
                        ptr,
                        format!(
                        "required property `{name}` is forbidden by `additionalProperties: false`"
                    ),
                    ))
                }
            };
            entries.push((name.clone(), true, s));
        }

        let n_required = entries.iter().filter(|e| e.1).count() as u64;
        if o.max.is_some_and(|max| n_required > max) {
            return Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "more required properties than `maxProperties`",
            ));
        }
        if o.max.is_some_and(|max| o.min > max) {
            return Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "`minProperties` exceeds `maxProperties`",
            ));
        }

        let taken: Vec<String> = o
            .props
            .iter()
            .map(|(n, _)| n.clone())
            .chain(o.required.iter().cloned())
            .collect();
        let extra = match &o.additional {
            Rest::Forbidden => None,
            Rest::Schema(node) => Some((self.strategy(node)?, self.opts.max_extra_properties)),
            Rest::Any => Some((
                any_scalar(),
                if self.opts.extra_properties {
                    self.opts.max_extra_properties
                } else {
                    0
                },
            )),
        };
        let keys = match o.names.as_ref().map(|n| (&n.kind, n)) {
            None => Keys::Free(free_key()),
            Some((Kind::Literals(names), _)) => Keys::Fixed(
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|n| !taken.iter().any(|t| t == n))
                    .map(str::to_owned)
                    .collect(),
            ),
            Some((_, node)) => Keys::Free(
                self.strategy(node)?
                    .prop_filter_map("property names are strings", |v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .boxed(),
            ),
        };
        let available = match (&extra, &keys) {
            (None, _) => 0,
            (Some(_), Keys::Fixed(names)) => names.len() as u64,
            (Some(_), Keys::Free(_)) => u64::MAX,
        };
        if o.min > (entries.len() as u64).saturating_add(available) {
            return Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "`minProperties` cannot be met with the properties allowed",
            ));
        }

        let plan = Rc::new(ObjectPlan {
            names: entries.iter().map(|e| (e.0.clone(), e.1)).collect(),
            min: o.min,
            max: o.max,
            taken,
            extra,
            keys,
        });
        let values: Vec<BoxedStrategy<(bool, Value)>> = entries
            .into_iter()
            .map(|(_, required, s)| {
                if required {
                    s.prop_map(|v| (true, v)).boxed()
                } else {
                    (any::<bool>(), s).boxed()
                }
            })
            .collect();
        let declared_plan = plan.clone();
        Ok(values
            .prop_map(move |vals| declared_plan.declared(vals))
            .prop_flat_map(move |map| plan.extras(map))
            .boxed())
    }
}

enum Keys {
    /// Names from a `propertyNames` enumeration, minus declared ones.
    Fixed(Vec<String>),
    Free(BoxedStrategy<String>),
}

struct ObjectPlan {
    /// Declared properties in order, with whether each is required.
    names: Vec<(String, bool)>,
    min: u64,
    max: Option<u64>,
    /// Names an extra property must not take (they have schemas of their own).
    taken: Vec<String>,
    /// Value strategy for extra properties and how many to add at most.
    extra: Option<(BoxedStrategy<Value>, usize)>,
    keys: Keys,
}

impl ObjectPlan {
    /// The declared properties to include: required ones, the optional ones drawn, then
    /// adjusted to honour `minProperties`/`maxProperties`.
    fn declared(&self, values: Vec<(bool, Value)>) -> Map<String, Value> {
        let mut include: Vec<bool> = values.iter().map(|(inc, _)| *inc).collect();
        let mut count = include.iter().filter(|i| **i).count() as u64;
        for (i, (_, required)) in self.names.iter().enumerate() {
            if count >= self.min {
                break;
            }
            if !required && !include[i] {
                include[i] = true;
                count += 1;
            }
        }
        for (i, (_, required)) in self.names.iter().enumerate().rev() {
            if self.max.is_none_or(|max| count <= max) {
                break;
            }
            if !required && include[i] {
                include[i] = false;
                count -= 1;
            }
        }
        self.names
            .iter()
            .zip(values)
            .zip(include)
            .filter(|(_, inc)| *inc)
            .map(|(((name, _), (_, v)), _)| (name.clone(), v))
            .collect()
    }

    fn extras(&self, map: Map<String, Value>) -> BoxedStrategy<Value> {
        let have = map.len() as u64;
        let Some((value, cap)) = &self.extra else {
            return Just(Value::Object(map)).boxed();
        };
        let lo = self.min.saturating_sub(have);
        let room = self.max.map_or(u64::MAX, |max| max.saturating_sub(have));
        let hi = room.min((*cap as u64).max(lo));
        match &self.keys {
            Keys::Fixed(names) => {
                let hi = hi.min(names.len() as u64);
                if lo > hi {
                    return Just(Value::Object(map)).boxed();
                }
                let value = value.clone();
                proptest::sample::subsequence(names.clone(), to_usize(lo)..=to_usize(hi))
                    .prop_flat_map(move |keys| {
                        let map = map.clone();
                        proptest::collection::vec(value.clone(), keys.len()).prop_map(move |vals| {
                            let mut map = map.clone();
                            map.extend(keys.iter().cloned().zip(vals));
                            Value::Object(map)
                        })
                    })
                    .boxed()
            }
            Keys::Free(key) => {
                let taken = self.taken.clone();
                let lo = to_usize(lo);
                proptest::collection::vec((key.clone(), value.clone()), lo..=to_usize(hi))
                    .prop_filter_map(
                        "extra property names must be new and distinct",
                        move |pairs| {
                            let mut map = map.clone();
                            let before = map.len();
                            for (k, v) in pairs {
                                if !taken.contains(&k) && !map.contains_key(&k) {
                                    map.insert(k, v);
                                }
                            }
                            (map.len() - before >= lo).then_some(Value::Object(map))
                        },
                    )
                    .boxed()
            }
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Integers within the bounds, emphasising zero and the bounds themselves.
fn int_range(lo: i128, hi: i128) -> BoxedStrategy<i128> {
    let mut parts: Vec<(u32, BoxedStrategy<i128>)> = vec![(2, (lo..=hi).boxed())];
    let (near_lo, near_hi) = (lo.max(-100), hi.min(100));
    if near_lo <= near_hi {
        parts.push((4, (near_lo..=near_hi).boxed()));
    }
    parts.push((1, (lo..=lo.saturating_add(8).min(hi)).boxed()));
    parts.push((1, (hi.saturating_sub(8).max(lo)..=hi).boxed()));
    Union::new_weighted(parts).boxed()
}

fn integer(num: &NumC, ptr: &str) -> Result<BoxedStrategy<Value>> {
    integers(num, ptr).map(|s| s.prop_filter_map("fits a JSON integer", int_value).boxed())
}

fn integers(num: &NumC, ptr: &str) -> Result<BoxedStrategy<i128>> {
    let lo = num.lo.map_or(INT_FLOOR, Bound::int_lower).max(INT_FLOOR);
    let hi = num.hi.map_or(INT_CEILING, Bound::int_upper).min(INT_MAX);
    if lo > hi {
        return Err(UnsupportedSchema::unsatisfiable(
            ptr,
            "no integer lies within the bounds",
        ));
    }
    let Some(m) = &num.multiple_of else {
        return Ok(int_range(lo, hi));
    };
    if m.k.fract() != 0.0 || m.k >= 9.0e15 {
        return Err(UnsupportedSchema::new(
            ptr,
            "`multipleOf` for integers must be a modest whole number",
        ));
    }
    let k = m.k as i128;
    let (lo_n, hi_n) = (
        lo.div_euclid(k) + i128::from(lo.rem_euclid(k) != 0),
        hi.div_euclid(k),
    );
    if lo_n > hi_n {
        return Err(UnsupportedSchema::unsatisfiable(
            ptr,
            "no multiple of `multipleOf` lies within the bounds",
        ));
    }
    Ok(int_range(lo_n, hi_n).prop_map(move |n| n * k).boxed())
}

fn in_bounds(num: &NumC, f: f64) -> bool {
    let above = num.lo.is_none_or(|b| {
        if b.exclusive {
            f > b.value
        } else {
            f >= b.value
        }
    });
    let below = num.hi.is_none_or(|b| {
        if b.exclusive {
            f < b.value
        } else {
            f <= b.value
        }
    });
    f.is_finite() && above && below
}

/// Finite floats within the bounds, plus integers where any fit.
fn number(num: &NumC, ptr: &str) -> Result<BoxedStrategy<Value>> {
    let (lo, hi) = match (num.lo, num.hi) {
        (Some(l), Some(h)) => (l.value, h.value),
        (Some(l), None) => (l.value, l.value + FLOAT_SPAN),
        (None, Some(h)) => (h.value - FLOAT_SPAN, h.value),
        (None, None) => (-FLOAT_SPAN, FLOAT_SPAN),
    };
    let empty = lo > hi
        || (lo == hi
            && (num.lo.is_some_and(|b| b.exclusive) || num.hi.is_some_and(|b| b.exclusive)));
    if empty {
        return Err(UnsupportedSchema::unsatisfiable(
            ptr,
            "no number lies within the bounds",
        ));
    }
    let num2 = num.clone();
    let floats: BoxedStrategy<f64> = match &num.multiple_of {
        Some(m) => {
            let k = m.k;
            let lo_n = (lo / k).ceil().max(-FLOAT_SPAN);
            let hi_n = (hi / k).floor().min(FLOAT_SPAN);
            if lo_n > hi_n {
                return Err(UnsupportedSchema::unsatisfiable(
                    ptr,
                    "no multiple of `multipleOf` lies within the bounds",
                ));
            }
            let check = m.check.clone();
            // Casts are exact: both ends are whole numbers within ±FLOAT_SPAN.
            ((lo_n as i64)..=(hi_n as i64))
                .prop_map(move |n| n as f64 * k)
                // Rounding may put n·k just off the grid as the validator sees it.
                .prop_filter("multipleOf as the validator computes it", move |f| {
                    float_value(*f).is_some_and(|v| check.is_valid(&v))
                })
                .boxed()
        }
        None if lo == hi => Just(lo).boxed(),
        // A span wider than f64::MAX cannot be sampled uniformly; such a range straddles
        // zero, so a narrower window inside it still honours both bounds.
        None if !(hi - lo).is_finite() => (lo.max(-1.0e307)..=hi.min(1.0e307)).boxed(),
        None => (lo..=hi).boxed(),
    };
    let floats = floats
        .prop_filter_map("finite and within bounds", move |f| {
            in_bounds(&num2, f).then(|| float_value(f)).flatten()
        })
        .boxed();
    match integer(num, ptr) {
        Ok(ints) => Ok(prop_oneof![floats, ints].boxed()),
        Err(_) => Ok(floats),
    }
}

/// Mostly lowercase ASCII, with some of everything a careless decoder trips on.
fn text_char() -> BoxedStrategy<char> {
    prop_oneof![
        8 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('A', 'Z'),
        2 => proptest::char::range('0', '9'),
        1 => proptest::sample::select(vec![' ', '-', '_', '.', ':', '/', '"', '\\']),
        1 => proptest::sample::select(vec!['é', 'ß', 'Ω', '中', '\u{1F600}', '\u{7F}', '\n']),
    ]
    .boxed()
}

fn free_string(lo: usize, hi: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(text_char(), lo..=hi)
        .prop_map(String::from_iter)
        .boxed()
}

fn free_key() -> BoxedStrategy<String> {
    (
        proptest::char::range('a', 'z'),
        proptest::collection::vec(
            prop_oneof![
                proptest::char::range('a', 'z'),
                Just('_'),
                proptest::char::range('0', '9')
            ],
            0..8,
        ),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
        .boxed()
}

/// Null, booleans, small integers and short strings: for places any value may go.
pub(crate) fn any_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-100i64..=100).prop_map(Value::from),
        free_string(0, 8).prop_map(Value::String),
    ]
    .boxed()
}

fn naive_date() -> BoxedStrategy<NaiveDate> {
    (1900i32..=2200, 1u32..=12, 1u32..=31)
        .prop_filter_map("a real calendar day", |(y, m, d)| {
            // Clamp the day into the month rather than reject a third of the draws.
            (0..4).find_map(|back| NaiveDate::from_ymd_opt(y, m, d.saturating_sub(back)))
        })
        .boxed()
}

/// RFC 3339 date-times with `Z` or numeric offsets and 0–9 fractional digits.
fn date_time() -> BoxedStrategy<String> {
    let precision = proptest::sample::select(vec![
        SecondsFormat::Secs,
        SecondsFormat::Millis,
        SecondsFormat::Micros,
        SecondsFormat::Nanos,
        SecondsFormat::AutoSi,
    ]);
    let offset_minutes = prop_oneof![Just(0i32), -(23 * 60 + 59)..=(23 * 60 + 59)];
    (
        naive_date(),
        (0u32..24, 0u32..60, 0u32..60, 0u32..1_000_000_000),
        offset_minutes,
        precision,
    )
        .prop_filter_map(
            "a representable date-time",
            |(date, (h, m, s, ns), off, precision)| {
                let time = NaiveTime::from_hms_nano_opt(h, m, s, ns)?;
                let offset = FixedOffset::east_opt(off * 60)?;
                let dt = NaiveDateTime::new(date, time)
                    .and_local_timezone(offset)
                    .single()?;
                Some(dt.to_rfc3339_opts(precision, true))
            },
        )
        .boxed()
}

fn date() -> BoxedStrategy<String> {
    naive_date()
        .prop_map(|d| d.format("%Y-%m-%d").to_string())
        .boxed()
}

/// Random (version 4) UUIDs, hyphenated, in lower or upper case.
fn uuid() -> BoxedStrategy<String> {
    (any::<[u8; 16]>(), any::<bool>())
        .prop_map(|(mut b, upper)| {
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let s = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            if upper {
                s.to_uppercase()
            } else {
                s
            }
        })
        .boxed()
}

/// Standard base64 (with padding) of a few random bytes, at least `min` characters long.
fn base64(min: u64) -> BoxedStrategy<String> {
    let lo = to_usize(min.div_ceil(4) * 3);
    proptest::collection::vec(any::<u8>(), lo..=lo + 12)
        .prop_map(|bytes| encode_base64(&bytes))
        .boxed()
}

fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(encode_base64(b""), "");
        assert_eq!(encode_base64(b"f"), "Zg==");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(encode_base64(b"foo"), "Zm9v");
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn bounds_round_towards_the_inside() {
        let b = |value: f64, exclusive| Bound {
            value,
            int: None,
            exclusive,
        };
        assert_eq!(b(0.5, false).int_lower(), 1);
        assert_eq!(b(1.0, true).int_lower(), 2);
        assert_eq!(b(1.5, true).int_upper(), 1);
        assert_eq!(b(2.0, true).int_upper(), 1);
    }
}
