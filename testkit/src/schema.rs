//! Compiles a JSON Schema document into [`Node`]s: `$ref`s resolved, `allOf` members and
//! keyword siblings intersected, every constraint the generators and mutators need held
//! in typed form. Anything not understood is refused here, with its schema location.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::json::{as_i128, join, json_eq};
use crate::pattern::Pattern;
use crate::UnsupportedSchema;

type Result<T> = std::result::Result<T, UnsupportedSchema>;

/// Keywords of the 2020-12 vocabulary that constrain values and are not implemented.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "discriminator",
];

/// The JSON types, as a bit set. `NUMBER` admits integers too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TypeSet(u8);

impl TypeSet {
    pub const NULL: Self = Self(1);
    pub const BOOLEAN: Self = Self(2);
    pub const INTEGER: Self = Self(4);
    pub const NUMBER: Self = Self(8);
    pub const STRING: Self = Self(16);
    pub const ARRAY: Self = Self(32);
    pub const OBJECT: Self = Self(64);

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "string" => Self::STRING,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => return None,
        })
    }

    pub fn has(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn intersection(self, other: Self) -> Self {
        let numeric = Self::INTEGER.0 | Self::NUMBER.0;
        let mut bits = self.0 & other.0 & !numeric;
        // `number` also admits integers, so integers survive if each side admits them.
        if self.has(Self::NUMBER) && other.has(Self::NUMBER) {
            bits |= Self::NUMBER.0;
        } else if self.admits_number(true) && other.admits_number(true) {
            bits |= Self::INTEGER.0;
        }
        Self(bits)
    }

    /// Admits a number that is (`integer == true`) or is not an integer.
    pub fn admits_number(self, integer: bool) -> bool {
        self.has(Self::NUMBER) || (integer && self.has(Self::INTEGER))
    }
}

/// A compiled schema (or intersection of schemas) for one instance location.
#[derive(Debug)]
pub(crate) struct Node {
    /// Schema location, for error messages.
    pub ptr: String,
    /// Schema locations whose validators together accept exactly what this node accepts
    /// (or less): used to filter enumerations and to check mutations.
    pub sources: Vec<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `true`, `{}` or only annotations: anything goes.
    Any,
    /// `const` / `enum`, already filtered by every sibling constraint.
    Literals(Vec<Value>),
    Typed(Box<Typed>),
    Choice(Box<Choice>),
}

/// `oneOf` / `anyOf`.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub one_of: bool,
    /// Branch `i`, intersected with the combinator's siblings; `None` where that left
    /// nothing to generate.
    pub branches: Vec<Option<Arc<Node>>>,
    /// Schema location of each original branch (for exactly-one checks).
    pub branch_ptrs: Vec<String>,
    /// Schema location of the object holding the combinator.
    pub whole: String,
}

/// Constraints by JSON type, from `type` and the type-specific keywords.
#[derive(Debug, Clone, Default)]
pub(crate) struct Typed {
    /// Types allowed by `type` keywords; `None` if there was none (every type allowed).
    pub explicit: Option<TypeSet>,
    /// Types some keyword here constrains: what is generated when `explicit` is `None`.
    pub constrained: TypeSet,
    pub num: NumC,
    pub string: StrC,
    pub array: ArrC,
    pub object: ObjC,
}

impl Typed {
    /// The types values are generated from.
    pub fn generated(&self) -> TypeSet {
        self.explicit.unwrap_or(self.constrained)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub value: f64,
    /// The exact value when the schema wrote an integer.
    pub int: Option<i128>,
    pub exclusive: bool,
}

impl Bound {
    /// Smallest integer at or above this lower bound.
    pub fn int_lower(self) -> i128 {
        match self.int {
            Some(i) if self.exclusive => i + 1,
            Some(i) => i,
            None => {
                let c = self.value.ceil();
                // Float to int casts saturate, which is what a clamp wants here.
                let ci = c as i128;
                if self.exclusive && c == self.value {
                    ci.saturating_add(1)
                } else {
                    ci
                }
            }
        }
    }

    /// Largest integer at or below this upper bound.
    pub fn int_upper(self) -> i128 {
        match self.int {
            Some(i) if self.exclusive => i - 1,
            Some(i) => i,
            None => {
                let f = self.value.floor();
                let fi = f as i128;
                if self.exclusive && f == self.value {
                    fi.saturating_sub(1)
                } else {
                    fi
                }
            }
        }
    }

    /// True if `self` (a lower bound) is at least as strict as `other`.
    fn tighter_lower(self, other: Self) -> bool {
        self.value > other.value || (self.value == other.value && self.exclusive)
    }

    fn tighter_upper(self, other: Self) -> bool {
        self.value < other.value || (self.value == other.value && self.exclusive)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumC {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
    pub multiple_of: Option<MultipleOf>,
}

#[derive(Debug, Clone)]
pub(crate) struct MultipleOf {
    pub k: f64,
    pub check: Arc<Check>,
}

/// A standalone validator for one keyword, used where float arithmetic or regex
/// dialects make computing the answer ourselves error-prone.
pub(crate) struct Check(jsonschema::Validator);

impl Check {
    /// A validator for `{"format": name}` with format assertions on.
    pub fn format(name: &str) -> Option<Arc<Self>> {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&serde_json::json!({ "format": name }))
            .ok()
            .map(|v| Arc::new(Self(v)))
    }

    fn new(schema: &Value, ptr: &str) -> Result<Arc<Self>> {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .map(|v| Arc::new(Self(v)))
            .map_err(|e| UnsupportedSchema::new(ptr, format!("invalid keyword: {e}")))
    }

    pub fn is_valid(&self, value: &Value) -> bool {
        self.0.is_valid(value)
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DateTime,
    Date,
    Uuid,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StrC {
    pub min: u64,
    pub max: Option<u64>,
    pub patterns: Vec<Arc<Pattern>>,
    pub format: Option<Format>,
    pub base64: bool,
}

/// `items`/`additionalProperties`: what applies to members no other keyword names.
#[derive(Debug, Clone, Default)]
pub(crate) enum Rest {
    /// Absent or `true`.
    #[default]
    Any,
    /// `false`.
    Forbidden,
    Schema(Arc<Node>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ArrC {
    pub prefix: Vec<Arc<Node>>,
    pub items: Rest,
    pub min: u64,
    pub max: Option<u64>,
    pub unique: bool,
}

impl ArrC {
    pub fn node_at(&self, index: usize) -> Option<&Arc<Node>> {
        match (self.prefix.get(index), &self.items) {
            (Some(node), _) => Some(node),
            (None, Rest::Schema(node)) => Some(node),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObjC {
    pub props: Vec<(String, Arc<Node>)>,
    pub required: Vec<String>,
    pub additional: Rest,
    pub min: u64,
    pub max: Option<u64>,
    pub names: Option<Arc<Node>>,
}

impl ObjC {
    pub fn prop(&self, name: &str) -> Option<&Arc<Node>> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    }

    /// The schema a property called `name` is checked against, if any constrains it.
    pub fn node_for(&self, name: &str) -> Option<&Arc<Node>> {
        match (self.prop(name), &self.additional) {
            (Some(node), _) => Some(node),
            (None, Rest::Schema(node)) => Some(node),
            _ => None,
        }
    }
}

/// Validators for every subschema of the document, by schema location.
pub(crate) struct Checker(jsonschema::ValidatorMap);

impl Checker {
    /// `true` if every schema at `ptrs` accepts `value`; unknown locations reject, which
    /// only ever makes callers more cautious.
    pub fn valid(&self, ptrs: &[String], value: &Value) -> bool {
        ptrs.iter()
            .all(|p| self.0.get(p).is_some_and(|v| v.is_valid(value)))
    }

    fn require(&self, ptr: &str) -> Result<()> {
        if self.0.contains_key(ptr) {
            Ok(())
        } else {
            Err(UnsupportedSchema::new(
                ptr,
                "the validator compiled no subschema at this location",
            ))
        }
    }
}

/// A compiled document, ready for generation.
pub(crate) struct Compiled {
    pub node: Arc<Node>,
    pub checker: Arc<Checker>,
}

impl Compiled {
    pub fn root(schema: &Value) -> Result<Self> {
        let checker = Arc::new(build_checker(schema)?);
        let node = Ctx::new(schema, &checker).compile(schema, "#")?;
        Ok(Self { node, checker })
    }

    pub fn def(root: &Value, name: &str) -> Result<Self> {
        let ptr = join("#/$defs", name);
        let def = root
            .get("$defs")
            .and_then(|defs| defs.get(name))
            .ok_or_else(|| UnsupportedSchema::new(ptr.clone(), "no such definition"))?;
        let checker = Arc::new(build_checker(root)?);
        let node = Ctx::new(root, &checker).compile(def, &ptr)?;
        Ok(Self { node, checker })
    }
}

fn build_checker(root: &Value) -> Result<Checker> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build_map(root)
        .map(Checker)
        .map_err(|e| {
            // Point at the reference that failed to resolve, if that was the trouble.
            let ptr = foreign_ref(root, "#").unwrap_or_else(|| "#".to_owned());
            UnsupportedSchema::new(ptr, format!("the validator refused the schema: {e}"))
        })
}

/// Location of the first `$ref` that is not a local JSON Pointer.
fn foreign_ref(schema: &Value, ptr: &str) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if !(r == "#" || r.starts_with("#/")) {
                    return Some(join(ptr, "$ref"));
                }
            }
            map.iter().find_map(|(k, v)| foreign_ref(v, &join(ptr, k)))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| foreign_ref(v, &join(ptr, &i.to_string()))),
        _ => None,
    }
}

struct Ctx<'a> {
    root: &'a Value,
    checker: &'a Checker,
    /// Compiled `$ref` targets, so shared definitions are compiled once.
    cache: HashMap<String, Arc<Node>>,
    /// `$ref` targets being compiled, to refuse recursion instead of overflowing.
    active: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(root: &'a Value, checker: &'a Checker) -> Self {
        Self {
            root,
            checker,
            cache: HashMap::new(),
            active: Vec::new(),
        }
    }

    fn compile(&mut self, schema: &Value, ptr: &str) -> Result<Arc<Node>> {
        match schema {
            Value::Bool(true) => Ok(leaf(ptr, Kind::Any)),
            Value::Bool(false) => Err(UnsupportedSchema::unsatisfiable(
                ptr,
                "the `false` schema admits no value",
            )),
            Value::Object(map) => self.compile_object(map, ptr),
            _ => Err(UnsupportedSchema::new(
                ptr,
                "a schema must be an object or a boolean",
            )),
        }
    }

    fn compile_object(&mut self, map: &Map<String, Value>, ptr: &str) -> Result<Arc<Node>> {
        for key in map.keys() {
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(UnsupportedSchema::new(
                    join(ptr, key),
                    format!("keyword `{key}` is not supported"),
                ));
            }
        }
        if map.contains_key("$id") && ptr != "#" {
            return Err(UnsupportedSchema::new(
                join(ptr, "$id"),
                "`$id` below the root changes `$ref` resolution and is not supported",
            ));
        }

        let mut parts: Vec<Arc<Node>> = Vec::new();
        if let Some(typed) = self.compile_typed(map, ptr)? {
            parts.push(node(ptr, Kind::Typed(Box::new(typed))));
        }
        if let Some(literals) = literals(map, ptr)? {
            parts.push(node(ptr, Kind::Literals(literals)));
        }
        for (keyword, one_of) in [("oneOf", true), ("anyOf", false)] {
            if let Some(branches) = map.get(keyword) {
                parts.push(self.compile_choice(branches, &join(ptr, keyword), ptr, one_of)?);
            }
        }
        if let Some(reference) = map.get("$ref") {
            parts.push(self.compile_ref(reference, &join(ptr, "$ref"))?);
        }
        if let Some(members) = map.get("allOf") {
            let at = join(ptr, "allOf");
            let members = members
                .as_array()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| UnsupportedSchema::new(at.clone(), "must be a non-empty array"))?;
            for (i, member) in members.iter().enumerate() {
                parts.push(self.compile(member, &join(&at, &i.to_string()))?);
            }
        }

        let single = parts.len() == 1;
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Ok(leaf(ptr, Kind::Any));
        };
        let mut acc = first;
        for part in parts {
            acc = self.intersect(&acc, &part, ptr)?;
        }
        if single {
            return Ok(acc);
        }
        // The object at `ptr` is the conjunction of its parts, so its validator is the
        // exact check for everything merged here.
        self.checker.require(ptr)?;
        let kind = match &acc.kind {
            Kind::Literals(values) => {
                Kind::Literals(self.filter_literals(values, &[ptr.to_owned()], ptr)?)
            }
            other => other.clone(),
        };
        Ok(Arc::new(Node {
            ptr: ptr.to_owned(),
            sources: vec![ptr.to_owned()],
            kind,
        }))
    }

    fn compile_ref(&mut self, reference: &Value, at: &str) -> Result<Arc<Node>> {
        let Some(target) = reference.as_str() else {
            return Err(UnsupportedSchema::new(at, "`$ref` must be a string"));
        };
        if !(target == "#" || target.starts_with("#/")) || target.contains('%') {
            return Err(UnsupportedSchema::new(
                at,
                format!("only local JSON Pointer references like `#/$defs/Name` are supported, not `{target}`"),
            ));
        }
        if let Some(done) = self.cache.get(target) {
            return Ok(done.clone());
        }
        if self.active.iter().any(|a| a == target) {
            return Err(UnsupportedSchema::new(
                at,
                format!("recursive reference to `{target}` is not supported"),
            ));
        }
        let schema = self
            .root
            .pointer(&target[1..])
            .ok_or_else(|| UnsupportedSchema::new(at, format!("`{target}` does not resolve")))?;
        self.active.push(target.to_owned());
        let compiled = self.compile(schema, target);
        self.active.pop();
        let compiled = compiled?;
        self.cache.insert(target.to_owned(), compiled.clone());
        Ok(compiled)
    }

    fn compile_choice(
        &mut self,
        branches: &Value,
        at: &str,
        holder: &str,
        one_of: bool,
    ) -> Result<Arc<Node>> {
        let branches = branches
            .as_array()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| UnsupportedSchema::new(at, "must be a non-empty array"))?;
        self.checker.require(holder)?;
        let mut compiled = Vec::with_capacity(branches.len());
        let mut branch_ptrs = Vec::with_capacity(branches.len());
        for (i, branch) in branches.iter().enumerate() {
            let ptr = join(at, &i.to_string());
            self.checker.require(&ptr)?;
            compiled.push(match self.compile(branch, &ptr) {
                Ok(node) => Some(node),
                Err(e) if e.unsatisfiable => None,
                Err(e) => return Err(e),
            });
            branch_ptrs.push(ptr);
        }
        choice_node(
            holder,
            vec![holder.to_owned()],
            Choice {
                one_of,
                branches: compiled,
                branch_ptrs,
                whole: holder.to_owned(),
            },
        )
    }

    fn compile_typed(&mut self, map: &Map<String, Value>, ptr: &str) -> Result<Option<Typed>> {
        let mut t = Typed::default();
        let mut seen = false;
        let at = |k: &str| join(ptr, k);

        if let Some(ty) = map.get("type") {
            seen = true;
            let names: Vec<&Value> = match ty {
                Value::Array(names) => names.iter().collect(),
                one => vec![one],
            };
            let mut set = TypeSet::default();
            for name in names {
                let parsed = name.as_str().and_then(TypeSet::parse).ok_or_else(|| {
                    UnsupportedSchema::new(at("type"), format!("unknown type {name}"))
                })?;
                set = set.union(parsed);
            }
            if set.is_empty() {
                return Err(UnsupportedSchema::unsatisfiable(
                    at("type"),
                    "no type allowed",
                ));
            }
            t.explicit = Some(set);
        }

        // Numbers.
        for (key, upper, exclusive) in [
            ("minimum", false, false),
            ("exclusiveMinimum", false, true),
            ("maximum", true, false),
            ("exclusiveMaximum", true, true),
        ] {
            if let Some(v) = map.get(key) {
                let n = v
                    .as_number()
                    .filter(|n| n.as_f64().is_some_and(f64::is_finite))
                    .ok_or_else(|| UnsupportedSchema::new(at(key), "must be a finite number"))?;
                let bound = Bound {
                    value: n.as_f64().unwrap_or_default(),
                    int: as_i128(n),
                    exclusive,
                };
                let slot = if upper { &mut t.num.hi } else { &mut t.num.lo };
                *slot = Some(match *slot {
                    Some(old)
                        if !(if upper {
                            bound.tighter_upper(old)
                        } else {
                            bound.tighter_lower(old)
                        }) =>
                    {
                        old
                    }
                    _ => bound,
                });
                t.constrained = t.constrained.union(TypeSet::NUMBER);
            }
        }
        if let Some(v) = map.get("multipleOf") {
            let k = v
                .as_f64()
                .filter(|k| k.is_finite() && *k > 0.0)
                .ok_or_else(|| {
                    UnsupportedSchema::new(at("multipleOf"), "must be a positive number")
                })?;
            t.num.multiple_of = Some(MultipleOf {
                k,
                check: Check::new(&serde_json::json!({ "multipleOf": v }), &at("multipleOf"))?,
            });
            t.constrained = t.constrained.union(TypeSet::NUMBER);
        }

        // Strings.
        let mut string = false;
        if let Some(v) = map.get("minLength") {
            t.string.min = count(v, &at("minLength"))?;
            string = true;
        }
        if let Some(v) = map.get("maxLength") {
            t.string.max = Some(count(v, &at("maxLength"))?);
            string = true;
        }
        if let Some(v) = map.get("pattern") {
            let source = v
                .as_str()
                .ok_or_else(|| UnsupportedSchema::new(at("pattern"), "must be a string"))?;
            t.string
                .patterns
                .push(Pattern::compile(source, &at("pattern"))?);
            string = true;
        }
        if let Some(v) = map.get("format") {
            t.string.format = Some(match v.as_str() {
                Some("date-time") => Format::DateTime,
                Some("date") => Format::Date,
                Some("uuid") => Format::Uuid,
                _ => {
                    return Err(UnsupportedSchema::new(
                        at("format"),
                        format!("format {v} is not supported (date-time, date and uuid are)"),
                    ))
                }
            });
            string = true;
        }
        if map.get("contentEncoding").and_then(Value::as_str) == Some("base64") {
            t.string.base64 = true;
            string = true;
        }
        if string {
            t.constrained = t.constrained.union(TypeSet::STRING);
        }

        // Arrays.
        let mut array = false;
        if let Some(v) = map.get("prefixItems") {
            let items = v
                .as_array()
                .ok_or_else(|| UnsupportedSchema::new(at("prefixItems"), "must be an array"))?;
            for (i, item) in items.iter().enumerate() {
                t.array
                    .prefix
                    .push(self.compile(item, &join(&at("prefixItems"), &i.to_string()))?);
            }
            array = true;
        }
        if let Some(v) = map.get("items") {
            t.array.items = self.compile_rest(v, &at("items"))?;
            array = true;
        }
        if let Some(v) = map.get("minItems") {
            t.array.min = count(v, &at("minItems"))?;
            array = true;
        }
        if let Some(v) = map.get("maxItems") {
            t.array.max = Some(count(v, &at("maxItems"))?);
            array = true;
        }
        if let Some(v) = map.get("uniqueItems") {
            t.array.unique = v
                .as_bool()
                .ok_or_else(|| UnsupportedSchema::new(at("uniqueItems"), "must be a boolean"))?;
            array = true;
        }
        if array {
            t.constrained = t.constrained.union(TypeSet::ARRAY);
        }

        // Objects.
        let mut object = false;
        if let Some(v) = map.get("properties") {
            let props = v
                .as_object()
                .ok_or_else(|| UnsupportedSchema::new(at("properties"), "must be an object"))?;
            for (name, schema) in props {
                let node = self.compile(schema, &join(&at("properties"), name))?;
                t.object.props.push((name.clone(), node));
            }
            object = true;
        }
        if let Some(v) = map.get("required") {
            let names = v.as_array().ok_or_else(|| {
                UnsupportedSchema::new(at("required"), "must be an array of strings")
            })?;
            for name in names {
                let name = name.as_str().ok_or_else(|| {
                    UnsupportedSchema::new(at("required"), "must be an array of strings")
                })?;
                if !t.object.required.iter().any(|r| r == name) {
                    t.object.required.push(name.to_owned());
                }
            }
            object = true;
        }
        if let Some(v) = map.get("additionalProperties") {
            t.object.additional = self.compile_rest(v, &at("additionalProperties"))?;
            object = true;
        }
        if let Some(v) = map.get("minProperties") {
            t.object.min = count(v, &at("minProperties"))?;
            object = true;
        }
        if let Some(v) = map.get("maxProperties") {
            t.object.max = Some(count(v, &at("maxProperties"))?);
            object = true;
        }
        if let Some(v) = map.get("propertyNames") {
            t.object.names = Some(self.compile(v, &at("propertyNames"))?);
            object = true;
        }
        if object {
            t.constrained = t.constrained.union(TypeSet::OBJECT);
        }

        Ok((seen || !t.constrained.is_empty()).then_some(t))
    }

    fn compile_rest(&mut self, schema: &Value, ptr: &str) -> Result<Rest> {
        Ok(match schema {
            Value::Bool(true) => Rest::Any,
            Value::Bool(false) => Rest::Forbidden,
            other => match self.compile(other, ptr)? {
                node if matches!(node.kind, Kind::Any) => Rest::Any,
                node => Rest::Schema(node),
            },
        })
    }

    fn filter_literals(
        &self,
        values: &[Value],
        sources: &[String],
        at: &str,
    ) -> Result<Vec<Value>> {
        let kept: Vec<Value> = values
            .iter()
            .filter(|v| self.checker.valid(sources, v))
            .cloned()
            .collect();
        if kept.is_empty() {
            Err(UnsupportedSchema::unsatisfiable(
                at,
                "no `const`/`enum` value satisfies the other constraints",
            ))
        } else {
            Ok(kept)
        }
    }

    /// The node admitting what both `a` and `b` admit.
    fn intersect(&self, a: &Arc<Node>, b: &Arc<Node>, at: &str) -> Result<Arc<Node>> {
        let sources: Vec<String> = a.sources.iter().chain(&b.sources).cloned().collect();
        match (&a.kind, &b.kind) {
            (Kind::Any, _) => Ok(b.clone()),
            (_, Kind::Any) => Ok(a.clone()),
            (Kind::Literals(values), _) => {
                let kept = self.filter_literals(values, &b.sources, at)?;
                Ok(Arc::new(Node {
                    ptr: at.to_owned(),
                    sources,
                    kind: Kind::Literals(kept),
                }))
            }
            (_, Kind::Literals(_)) => self.intersect(b, a, at),
            (Kind::Choice(c), _) => self.distribute(c, b, sources, at),
            (_, Kind::Choice(c)) => self.distribute(c, a, sources, at),
            (Kind::Typed(x), Kind::Typed(y)) => {
                let merged = self.merge_typed(x, y, at)?;
                Ok(Arc::new(Node {
                    ptr: at.to_owned(),
                    sources,
                    kind: Kind::Typed(Box::new(merged)),
                }))
            }
        }
    }

    /// `oneOf`/`anyOf` ∩ X is the combinator over branch ∩ X.
    fn distribute(
        &self,
        c: &Choice,
        other: &Arc<Node>,
        sources: Vec<String>,
        at: &str,
    ) -> Result<Arc<Node>> {
        let mut branches = Vec::with_capacity(c.branches.len());
        for branch in &c.branches {
            branches.push(match branch {
                None => None,
                Some(b) => match self.intersect(b, other, at) {
                    Ok(node) => Some(node),
                    Err(e) if e.unsatisfiable => None,
                    Err(e) => return Err(e),
                },
            });
        }
        choice_node(
            at,
            sources,
            Choice {
                branches,
                ..c.clone()
            },
        )
    }

    fn merge_typed(&self, a: &Typed, b: &Typed, at: &str) -> Result<Typed> {
        let explicit = match (a.explicit, b.explicit) {
            (Some(x), Some(y)) => Some(x.intersection(y)),
            (x, y) => x.or(y),
        };
        let merged = Typed {
            explicit,
            constrained: a.constrained.union(b.constrained),
            num: merge_num(&a.num, &b.num, at)?,
            string: merge_str(&a.string, &b.string, at)?,
            array: self.merge_arr(&a.array, &b.array, at)?,
            object: self.merge_obj(&a.object, &b.object, at)?,
        };
        if merged.generated().is_empty() && merged.explicit.is_some() {
            return Err(UnsupportedSchema::unsatisfiable(
                at,
                "the `type`s allowed do not overlap",
            ));
        }
        Ok(merged)
    }

    fn merge_rest(&self, a: &Rest, b: &Rest, at: &str) -> Result<Rest> {
        Ok(match (a, b) {
            (Rest::Forbidden, _) | (_, Rest::Forbidden) => Rest::Forbidden,
            (Rest::Any, other) | (other, Rest::Any) => other.clone(),
            (Rest::Schema(x), Rest::Schema(y)) => Rest::Schema(self.intersect(x, y, at)?),
        })
    }

    fn merge_arr(&self, a: &ArrC, b: &ArrC, at: &str) -> Result<ArrC> {
        let prefix_meets_items =
            |p: &ArrC, q: &ArrC| !p.prefix.is_empty() && !matches!(q.items, Rest::Any);
        if (!a.prefix.is_empty() && !b.prefix.is_empty())
            || prefix_meets_items(a, b)
            || prefix_meets_items(b, a)
        {
            return Err(UnsupportedSchema::new(
                at,
                "merging two array shapes that both constrain positions is not supported",
            ));
        }
        Ok(ArrC {
            prefix: if a.prefix.is_empty() {
                b.prefix.clone()
            } else {
                a.prefix.clone()
            },
            items: self.merge_rest(&a.items, &b.items, at)?,
            min: a.min.max(b.min),
            max: min_opt(a.max, b.max),
            unique: a.unique || b.unique,
        })
    }

    fn merge_obj(&self, a: &ObjC, b: &ObjC, at: &str) -> Result<ObjC> {
        if a.names.is_some() && b.names.is_some() {
            return Err(UnsupportedSchema::new(
                at,
                "merging two `propertyNames` is not supported",
            ));
        }
        let mut required = a.required.clone();
        for r in &b.required {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
        let mut props = Vec::new();
        // A property declared on one side meets the other side's declaration, or else its
        // `additionalProperties`.
        for (mine, theirs) in [(a, b), (b, a)] {
            for (name, node) in &mine.props {
                if props.iter().any(|(n, _): &(String, Arc<Node>)| n == name) {
                    continue;
                }
                let other = match (theirs.prop(name), &theirs.additional) {
                    (Some(n), _) => Some(n.clone()),
                    (None, Rest::Schema(n)) => Some(n.clone()),
                    (None, Rest::Any) => None,
                    (None, Rest::Forbidden) if required.contains(name) => {
                        return Err(UnsupportedSchema::unsatisfiable(
                            at,
                            format!("required property `{name}` is forbidden by `additionalProperties: false`"),
                        ))
                    }
                    // Optional and forbidden on the other side: it can only be absent.
                    (None, Rest::Forbidden) => continue,
                };
                let node = match other {
                    Some(o) => self.intersect(node, &o, &join(at, name))?,
                    None => node.clone(),
                };
                props.push((name.clone(), node));
            }
        }
        Ok(ObjC {
            props,
            required,
            additional: self.merge_rest(&a.additional, &b.additional, at)?,
            min: a.min.max(b.min),
            max: min_opt(a.max, b.max),
            names: a.names.clone().or_else(|| b.names.clone()),
        })
    }
}

fn merge_num(a: &NumC, b: &NumC, at: &str) -> Result<NumC> {
    let pick = |x: Option<Bound>, y: Option<Bound>, upper: bool| match (x, y) {
        (Some(p), Some(q)) => Some(
            if (upper && q.tighter_upper(p)) || (!upper && q.tighter_lower(p)) {
                q
            } else {
                p
            },
        ),
        (p, q) => p.or(q),
    };
    let multiple_of = match (&a.multiple_of, &b.multiple_of) {
        (Some(x), Some(y)) if x.k != y.k => {
            return Err(UnsupportedSchema::new(
                at,
                "merging two different `multipleOf`s is not supported",
            ))
        }
        (x, y) => x.clone().or_else(|| y.clone()),
    };
    Ok(NumC {
        lo: pick(a.lo, b.lo, false),
        hi: pick(a.hi, b.hi, true),
        multiple_of,
    })
}

fn merge_str(a: &StrC, b: &StrC, at: &str) -> Result<StrC> {
    let format = match (a.format, b.format) {
        (Some(x), Some(y)) if x != y => {
            return Err(UnsupportedSchema::unsatisfiable(
                at,
                "two different `format`s",
            ))
        }
        (x, y) => x.or(y),
    };
    Ok(StrC {
        min: a.min.max(b.min),
        max: min_opt(a.max, b.max),
        patterns: a.patterns.iter().chain(&b.patterns).cloned().collect(),
        format,
        base64: a.base64 || b.base64,
    })
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn count(v: &Value, ptr: &str) -> Result<u64> {
    v.as_u64()
        .ok_or_else(|| UnsupportedSchema::new(ptr, "must be a non-negative integer"))
}

/// `const` and `enum` of one schema object, intersected with each other.
fn literals(map: &Map<String, Value>, ptr: &str) -> Result<Option<Vec<Value>>> {
    let mut values = match map.get("enum") {
        Some(Value::Array(values)) if !values.is_empty() => Some(values.clone()),
        Some(_) => {
            return Err(UnsupportedSchema::new(
                join(ptr, "enum"),
                "must be a non-empty array",
            ))
        }
        None => None,
    };
    if let Some(c) = map.get("const") {
        values = Some(match values {
            Some(vs) if !vs.iter().any(|v| json_eq(v, c)) => {
                return Err(UnsupportedSchema::unsatisfiable(
                    ptr,
                    "`const` is not in `enum`",
                ))
            }
            _ => vec![c.clone()],
        });
    }
    Ok(values)
}

fn leaf(ptr: &str, kind: Kind) -> Arc<Node> {
    Arc::new(Node {
        ptr: ptr.to_owned(),
        sources: Vec::new(),
        kind,
    })
}

fn node(ptr: &str, kind: Kind) -> Arc<Node> {
    Arc::new(Node {
        ptr: ptr.to_owned(),
        sources: vec![ptr.to_owned()],
        kind,
    })
}

fn choice_node(ptr: &str, sources: Vec<String>, choice: Choice) -> Result<Arc<Node>> {
    if choice.branches.iter().all(Option::is_none) {
        return Err(UnsupportedSchema::unsatisfiable(
            ptr,
            "no `oneOf`/`anyOf` branch can be satisfied",
        ));
    }
    Ok(Arc::new(Node {
        ptr: ptr.to_owned(),
        sources,
        kind: Kind::Choice(Box::new(choice)),
    }))
}
