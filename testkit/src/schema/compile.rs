//! Reading a schema object into a [`Node`]: keywords by JSON type, `$ref`s
//! (cached, recursion refused), `oneOf`/`anyOf`, `const`/`enum`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::*;
use crate::json::{as_i128, join, json_eq};
use crate::pattern::Pattern;
use crate::UnsupportedSchema;

pub(super) struct Ctx<'a> {
    pub(super) root: &'a Value,
    pub(super) checker: &'a Checker,
    /// Compiled `$ref` targets, so shared definitions are compiled once.
    cache: HashMap<String, Arc<Node>>,
    /// `$ref` targets being compiled, to refuse recursion instead of overflowing.
    active: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(root: &'a Value, checker: &'a Checker) -> Self {
        Self {
            root,
            checker,
            cache: HashMap::new(),
            active: Vec::new(),
        }
    }

    pub(super) fn compile(&mut self, schema: &Value, ptr: &str) -> Result<Arc<Node>> {
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

        self.number_keywords(map, ptr, &mut t)?;
        self.string_keywords(map, ptr, &mut t)?;
        self.array_keywords(map, ptr, &mut t)?;
        self.object_keywords(map, ptr, &mut t)?;
        Ok((seen || !t.constrained.is_empty()).then_some(t))
    }

    /// `minimum`, `maximum` (exclusive or not) and `multipleOf`.
    fn number_keywords(&self, map: &Map<String, Value>, ptr: &str, t: &mut Typed) -> Result<()> {
        let at = |k: &str| join(ptr, k);
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
        Ok(())
    }

    /// `minLength`, `maxLength`, `pattern`, `format`, `contentEncoding`.
    fn string_keywords(&self, map: &Map<String, Value>, ptr: &str, t: &mut Typed) -> Result<()> {
        let at = |k: &str| join(ptr, k);
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
        Ok(())
    }

    /// `prefixItems`, `items`, `minItems`, `maxItems`, `uniqueItems`.
    fn array_keywords(&mut self, map: &Map<String, Value>, ptr: &str, t: &mut Typed) -> Result<()> {
        let at = |k: &str| join(ptr, k);
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
        Ok(())
    }

    /// `properties`, `required`, `additionalProperties`, the counts and `propertyNames`.
    fn object_keywords(
        &mut self,
        map: &Map<String, Value>,
        ptr: &str,
        t: &mut Typed,
    ) -> Result<()> {
        let at = |k: &str| join(ptr, k);
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
        Ok(())
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

    pub(super) fn filter_literals(
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

pub(super) fn leaf(ptr: &str, kind: Kind) -> Arc<Node> {
    Arc::new(Node {
        ptr: ptr.to_owned(),
        sources: Vec::new(),
        kind,
    })
}

pub(super) fn node(ptr: &str, kind: Kind) -> Arc<Node> {
    Arc::new(Node {
        ptr: ptr.to_owned(),
        sources: vec![ptr.to_owned()],
        kind,
    })
}

pub(super) fn choice_node(ptr: &str, sources: Vec<String>, choice: Choice) -> Result<Arc<Node>> {
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
