//! Field tables: walking a bundled JSON Schema through its `$ref`s, one row
//! per member, with its type, presence and constraints.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{Map, Value};

use super::rich::{compact_json, message_anchor, Rich};

/// One row of a field table.
#[derive(Debug, Clone)]
pub(super) struct FieldRow {
    pub(super) path: Rich,
    pub(super) ty: Rich,
    pub(super) presence: String,
    pub(super) constraints: Vec<Rich>,
    pub(super) description: Rich,
}

/// Deeper nesting than this is treated as a broken schema rather than walked.
pub(super) const MAX_DEPTH: usize = 32;

pub(super) struct SchemaWalker<'a> {
    /// The document `#/...` references resolve against.
    pub(super) root: &'a Value,
    /// `$defs` names that are messages of the family. A reference to one is
    /// linked, not expanded, so `Publish.data` in the subscription family does
    /// not repeat fourteen event tables.
    pub(super) messages: &'a BTreeSet<String>,
    pub(super) what: String,
}

/// A schema with its `$ref` chain followed: the keywords of every layer
/// merged, the referencing side winning (a `description` next to a `$ref`
/// overrides the target's).
pub(super) struct Resolved {
    pub(super) merged: Map<String, Value>,
    /// `$defs` names along the chain, outermost first.
    pub(super) chain: Vec<String>,
}

impl SchemaWalker<'_> {
    pub(super) fn message_schema(&self, name: &str) -> Result<&Value> {
        self.root
            .get("$defs")
            .and_then(|d| d.get(name))
            .ok_or_else(|| anyhow!("{} has no `$defs/{name}`", self.what))
    }

    pub(super) fn lookup(&self, reference: &str) -> Result<&Value> {
        let Some(pointer) = reference.strip_prefix('#') else {
            bail!(
                "`$ref` {reference:?} in {} is not local; the docs expect a bundled schema",
                self.what
            );
        };
        if pointer.is_empty() {
            return Ok(self.root);
        }
        self.root
            .pointer(pointer)
            .ok_or_else(|| anyhow!("`$ref` {reference:?} in {} does not resolve", self.what))
    }

    pub(super) fn resolve(&self, schema: &Value) -> Result<Resolved> {
        let mut layers: Vec<&Map<String, Value>> = Vec::new();
        let mut chain = Vec::new();
        let mut seen = BTreeSet::new();
        let mut current = schema;
        let mut never = false;
        loop {
            let layer = match current {
                Value::Object(m) => m,
                // `true` accepts anything; `false` nothing.
                Value::Bool(true) => break,
                Value::Bool(false) => {
                    never = true;
                    break;
                }
                other => bail!(
                    "a schema in {} is neither an object nor a boolean: {}",
                    self.what,
                    compact_json(other)
                ),
            };
            layers.push(layer);
            let Some(reference) = layer.get("$ref") else {
                break;
            };
            let reference = reference
                .as_str()
                .ok_or_else(|| anyhow!("a `$ref` in {} is not a string", self.what))?;
            ensure!(
                seen.insert(reference.to_string()),
                "`$ref` {reference:?} in {} is part of a reference cycle",
                self.what
            );
            // RFC 6901 unescaping: `~1` before `~0`.
            if let Some(name) = reference.strip_prefix("#/$defs/") {
                chain.push(name.replace("~1", "/").replace("~0", "~"));
            }
            current = self.lookup(reference)?;
        }
        let mut merged = Map::new();
        for layer in layers.iter().rev() {
            for (k, v) in layer.iter() {
                if k != "$ref" {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        if never {
            merged.insert("not".into(), Value::Object(Map::new()));
        }
        Ok(Resolved { merged, chain })
    }

    /// The rows of an object schema's members (the schema itself gets no row).
    pub(super) fn root_fields(&self, schema: &Value, name: &str) -> Result<Vec<FieldRow>> {
        let resolved = self.resolve(schema)?;
        let mut stack = vec![name.to_string()];
        stack.extend(resolved.chain.iter().cloned());
        let mut rows = Vec::new();
        self.members(&resolved.merged, "", None, &mut rows, &mut stack, 0)
            .with_context(|| format!("field table of `{name}`"))?;
        Ok(rows)
    }

    pub(super) fn members(
        &self,
        node: &Map<String, Value>,
        prefix: &str,
        alternative: Option<usize>,
        rows: &mut Vec<FieldRow>,
        stack: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        ensure!(
            depth <= MAX_DEPTH,
            "schema nesting deeper than {MAX_DEPTH} at `{prefix}`"
        );
        let required: BTreeSet<&str> = opt_arr(node, "required", "a schema")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let presence = |required: bool| {
            let p = if required { "required" } else { "optional" };
            match alternative {
                Some(i) => format!("{p} (alt. {i})"),
                None => p.to_string(),
            }
        };
        if let Some(props) = node.get("properties") {
            let props = as_obj(props, &format!("`properties` at `{prefix}`"))?;
            for (name, sub) in props {
                let path = join_path(prefix, name);
                self.field(
                    sub,
                    &path,
                    presence(required.contains(name.as_str())),
                    rows,
                    stack,
                    depth + 1,
                )?;
            }
        }
        if let Some(pp) = node.get("patternProperties") {
            let pp = as_obj(pp, &format!("`patternProperties` at `{prefix}`"))?;
            for (pattern, sub) in pp {
                let path = join_path(prefix, &format!("<{pattern}>"));
                self.field(sub, &path, presence(false), rows, stack, depth + 1)?;
            }
        }
        if let Some(ap) = node.get("additionalProperties") {
            if ap.is_object() {
                let path = join_path(prefix, "*");
                self.field(ap, &path, presence(false), rows, stack, depth + 1)?;
            }
        }
        for keyword in ["oneOf", "anyOf"] {
            for (i, alt) in opt_arr(node, keyword, "a schema")?.iter().enumerate() {
                let r = self.resolve(alt)?;
                if self.message_ref(&r).is_some() || r.chain.iter().any(|n| stack.contains(n)) {
                    continue;
                }
                let pushed = r.chain.len();
                stack.extend(r.chain.iter().cloned());
                self.members(&r.merged, prefix, Some(i + 1), rows, stack, depth + 1)?;
                stack.truncate(stack.len() - pushed);
            }
        }
        for sub in opt_arr(node, "allOf", "a schema")? {
            let r = self.resolve(sub)?;
            if r.chain.iter().any(|n| stack.contains(n)) {
                continue;
            }
            let pushed = r.chain.len();
            stack.extend(r.chain.iter().cloned());
            self.members(&r.merged, prefix, alternative, rows, stack, depth + 1)?;
            stack.truncate(stack.len() - pushed);
        }
        Ok(())
    }

    /// The message a schema refers to, when it is a reference to one.
    pub(super) fn message_ref<'r>(&self, r: &'r Resolved) -> Option<&'r str> {
        r.chain
            .first()
            .filter(|n| self.messages.contains(*n))
            .map(String::as_str)
    }

    pub(super) fn field(
        &self,
        schema: &Value,
        path: &str,
        presence: String,
        rows: &mut Vec<FieldRow>,
        stack: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        ensure!(
            depth <= MAX_DEPTH,
            "schema nesting deeper than {MAX_DEPTH} at `{path}`"
        );
        let r = self
            .resolve(schema)
            .with_context(|| format!("field `{path}`"))?;
        let description = description_of(&r.merged);
        if let Some(name) = self.message_ref(&r) {
            rows.push(FieldRow {
                path: Rich::new().code(path),
                ty: Rich::new().text("message ").link(
                    name,
                    &format!("#{}", message_anchor(name)),
                    true,
                ),
                presence,
                constraints: Vec::new(),
                description,
            });
            return Ok(());
        }
        if let Some(name) = r.chain.iter().find(|n| stack.contains(n)) {
            // A cycle: show the row, point at the shape, stop.
            rows.push(FieldRow {
                path: Rich::new().code(path),
                ty: self.type_of(&r.merged)?,
                presence,
                constraints: vec![Rich::new().text("recursive: the same shape as ").code(name)],
                description,
            });
            return Ok(());
        }
        rows.push(FieldRow {
            path: Rich::new().code(path),
            ty: self.type_of(&r.merged)?,
            presence,
            constraints: self
                .constraints_of(&r.merged, path)
                .with_context(|| format!("field `{path}`"))?,
            description,
        });
        let pushed = r.chain.len();
        stack.extend(r.chain.iter().cloned());
        self.members(&r.merged, path, None, rows, stack, depth + 1)?;
        if let Some(items) = r.merged.get("items") {
            if items.is_object() {
                self.field(
                    items,
                    &format!("{path}[]"),
                    "item".to_string(),
                    rows,
                    stack,
                    depth + 1,
                )?;
            }
        }
        stack.truncate(stack.len() - pushed);
        Ok(())
    }

    /// The type column: `const "X"`, `enum a | b`, a type union, or for
    /// `oneOf`/`anyOf` the union of the alternatives.
    pub(super) fn type_of(&self, m: &Map<String, Value>) -> Result<Rich> {
        if let Some(c) = m.get("const") {
            return Ok(Rich::new().text("const ").code(&compact_json(c)));
        }
        if let Some(e) = m.get("enum") {
            let values = e
                .as_array()
                .ok_or_else(|| anyhow!("`enum` must be an array"))?;
            let mut r = Rich::new().text("enum ");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    r = r.text(" | ");
                }
                r = r.code(&enum_value_text(v));
            }
            return Ok(r);
        }
        if let Some(t) = m.get("type") {
            return Ok(Rich::new().text(&type_names(t)?.join(" | ")));
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(alts) = m.get(keyword) {
                let alts = alts
                    .as_array()
                    .ok_or_else(|| anyhow!("`{keyword}` must be an array"))?;
                let mut r = Rich::new();
                let mut plain: Vec<String> = Vec::new();
                let mut first = true;
                for alt in alts {
                    let resolved = self.resolve(alt)?;
                    if let Some(name) = self.message_ref(&resolved) {
                        if !first {
                            r = r.text(" | ");
                        }
                        r = r.link(name, &format!("#{}", message_anchor(name)), true);
                        first = false;
                    } else {
                        let base = base_type(&resolved.merged)?;
                        if !plain.contains(&base) {
                            if !first {
                                r = r.text(" | ");
                            }
                            r = r.text(&base);
                            first = false;
                            plain.push(base);
                        }
                    }
                }
                return Ok(r);
            }
        }
        Ok(Rich::new().text(&base_type(m)?))
    }

    pub(super) fn constraints_of(&self, m: &Map<String, Value>, path: &str) -> Result<Vec<Rich>> {
        let mut out = Vec::new();
        if let Some(f) = m.get("format") {
            out.push(Rich::new().text("format ").code(&value_text(f)));
        }
        for k in [
            "minLength",
            "maxLength",
            "minimum",
            "exclusiveMinimum",
            "maximum",
            "exclusiveMaximum",
            "multipleOf",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
        ] {
            if let Some(v) = m.get(k) {
                ensure!(v.is_number(), "`{k}` must be a number");
                out.push(Rich::new().text(&format!("{k} {v}")));
            }
            if k == "maxLength" {
                // The pattern reads best right after the length bounds.
                if let Some(p) = m.get("pattern") {
                    let p = p
                        .as_str()
                        .ok_or_else(|| anyhow!("`pattern` must be a string"))?;
                    out.push(Rich::new().text("pattern ").code(p));
                }
            }
        }
        if m.get("uniqueItems") == Some(&Value::Bool(true)) {
            out.push(Rich::new().text("uniqueItems"));
        }
        if let Some(pn) = m.get("propertyNames") {
            let r = self.resolve(pn)?;
            let mut c = Rich::new()
                .text("propertyNames: ")
                .append(&self.type_of(&r.merged)?);
            for extra in self.constraints_of(&r.merged, path)? {
                c = c.text(", ").append(&extra);
            }
            out.push(c);
        }
        match m.get("additionalProperties") {
            Some(Value::Bool(false)) => out.push(Rich::new().text("additionalProperties false")),
            Some(Value::Bool(true)) => out.push(Rich::new().text("additionalProperties true")),
            Some(Value::Object(_)) => out.push(
                Rich::new()
                    .text("additionalProperties: see ")
                    .code(&join_path(path, "*")),
            ),
            _ => {}
        }
        if m.get("unevaluatedProperties") == Some(&Value::Bool(false)) {
            out.push(Rich::new().text("unevaluatedProperties false"));
        }
        for (keyword, lead) in [
            ("oneOf", "oneOf: exactly one alternative matches"),
            ("anyOf", "anyOf: at least one alternative matches"),
        ] {
            let Some(alts) = m.get(keyword) else {
                continue;
            };
            let alts = alts
                .as_array()
                .ok_or_else(|| anyhow!("`{keyword}` must be an array"))?;
            out.push(Rich::new().text(lead));
            for (i, alt) in alts.iter().enumerate() {
                let r = self.resolve(alt)?;
                // Message alternatives are already links in the type column.
                if self.message_ref(&r).is_some() {
                    continue;
                }
                let mut c = Rich::new()
                    .text(&format!("alt. {}: ", i + 1))
                    .append(&self.type_of(&r.merged)?);
                for extra in self.constraints_of(&r.merged, path)? {
                    c = c.text(", ").append(&extra);
                }
                let d = description_of(&r.merged);
                if !d.is_empty() {
                    c = c.text(" — ").append(&d);
                }
                out.push(c);
            }
        }
        if let Some(all) = m.get("allOf").and_then(Value::as_array) {
            out.push(Rich::new().text(&format!("allOf: {} schemas", all.len())));
        }
        if let Some(not) = m.get("not") {
            if not.as_object().is_some_and(Map::is_empty) {
                out.push(Rich::new().text("never valid"));
            } else {
                let r = self.resolve(not)?;
                out.push(Rich::new().text("not ").append(&self.type_of(&r.merged)?));
            }
        }
        if let Some(d) = m.get("default") {
            out.push(Rich::new().text("default ").code(&compact_json(d)));
        }
        if let Some(known) = m.get("x-known-values").and_then(Value::as_array) {
            let mut c = Rich::new().text("known values: ");
            for (i, v) in known.iter().enumerate() {
                if i > 0 {
                    c = c.text(", ");
                }
                c = c.code(&enum_value_text(v));
            }
            out.push(c);
        }
        if m.get("deprecated") == Some(&Value::Bool(true)) {
            out.push(Rich::new().text("deprecated"));
        }
        Ok(out)
    }
}

pub(super) fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn type_names(t: &Value) -> Result<Vec<String>> {
    match t {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("`type` entries must be strings"))
            })
            .collect(),
        _ => bail!("`type` must be a string or an array of strings"),
    }
}

/// The JSON type(s) a schema accepts, in one word where possible.
pub(super) fn base_type(m: &Map<String, Value>) -> Result<String> {
    if let Some(t) = m.get("type") {
        return Ok(type_names(t)?.join(" | "));
    }
    let of_value = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(c) = m.get("const") {
        return Ok(of_value(c).to_string());
    }
    if let Some(Value::Array(values)) = m.get("enum") {
        let mut kinds: Vec<&str> = Vec::new();
        for v in values {
            let k = of_value(v);
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        return Ok(kinds.join(" | "));
    }
    if m.contains_key("properties") || m.contains_key("additionalProperties") {
        return Ok("object".to_string());
    }
    if m.contains_key("items") {
        return Ok("array".to_string());
    }
    if m.contains_key("not") && m.len() == 1 {
        return Ok("never".to_string());
    }
    Ok("any".to_string())
}

/// A string as itself (unless that would be ambiguous), anything else as JSON.
pub(super) fn enum_value_text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && s.trim() == s => s.clone(),
        other => compact_json(other),
    }
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => compact_json(other),
    }
}

pub(super) fn description_of(m: &Map<String, Value>) -> Rich {
    m.get("description")
        .or_else(|| m.get("title"))
        .and_then(Value::as_str)
        .map(Rich::from_md)
        .unwrap_or_default()
}

/// `v` as an object; the error says what `what` is.
pub(super) fn as_obj<'v>(v: &'v Value, what: &str) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| anyhow!("{what} must be a JSON object"))
}

/// Array member `key` of `m`, empty when it is absent.
pub(super) fn opt_arr<'v>(m: &'v Map<String, Value>, key: &str, what: &str) -> Result<&'v [Value]> {
    match m.get(key) {
        None => Ok(&[]),
        Some(v) => v
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow!("`{key}` of {what} must be an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_merge_with_the_referencing_side_winning() {
        let root = serde_json::json!({
            "$defs": {
                "A": {"type": "string", "description": "target", "maxLength": 3},
                "Loop": {"$ref": "#/$defs/Loop"}
            }
        });
        let names = BTreeSet::new();
        let w = SchemaWalker {
            root: &root,
            messages: &names,
            what: "test".into(),
        };
        let r = w
            .resolve(&serde_json::json!({"$ref": "#/$defs/A", "description": "site"}))
            .unwrap();
        assert_eq!(r.merged["description"], "site");
        assert_eq!(r.merged["maxLength"], 3);
        assert_eq!(r.chain, vec!["A".to_string()]);
        assert!(w
            .resolve(&serde_json::json!({"$ref": "#/$defs/Loop"}))
            .is_err());
        assert!(w
            .resolve(&serde_json::json!({"$ref": "other.json#/$defs/A"}))
            .is_err());
    }

    #[test]
    fn recursive_schemas_stop() {
        let root = serde_json::json!({
            "$defs": {
                "Msg": {"type": "object", "properties": {"node": {"$ref": "#/$defs/Node"}}},
                "Node": {"type": "object", "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                }}
            }
        });
        let names: BTreeSet<String> = ["Msg".to_string()].into();
        let w = SchemaWalker {
            root: &root,
            messages: &names,
            what: "test".into(),
        };
        let rows = w.root_fields(&root["$defs"]["Msg"], "Msg").unwrap();
        let paths: Vec<&str> = rows.iter().map(|r| r.path.segs[0].text.as_str()).collect();
        assert_eq!(paths, vec!["node", "node.children", "node.children[]"]);
        assert!(rows[2].constraints[0].md.contains("recursive"));
    }
}
