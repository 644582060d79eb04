//! Bundling a family's schema files into one self-contained document.
//!
//! typify panics on a `$ref` into another file, and a validator is simplest
//! to embed as one document, so every family becomes
//! `{"$schema", "$id", "title", "$defs": {...}}` where each message's schema
//! sits at `$defs/<MessageName>`, the shared definitions and every
//! message-local `$defs` entry are hoisted beside them, and every `$ref` is
//! rewritten to `#/$defs/<Name>`. Two definitions with one name are an error,
//! never a silent overwrite.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::files::read_json;
use super::manifest::Manifest;

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Bundles the message schemas and shared definitions of one JSON family.
pub fn bundle_family(dir: &Path, manifest: &Manifest) -> Result<Value> {
    let mut defs = Map::new();
    if let Some(definitions) = &manifest.definitions {
        let document = read_json(&dir.join(definitions))?;
        hoist_defs(&document, definitions, &mut defs)?;
    }
    for message in &manifest.messages {
        let Some(file) = &message.schema else {
            continue;
        };
        let mut document = read_json(&dir.join(file))?;
        hoist_defs(&document, file, &mut defs)?;
        if let Some(object) = document.as_object_mut() {
            object.remove("$defs");
            object.remove("$schema");
            object.remove("$id");
        }
        insert_unique(&mut defs, &message.name, document, file)?;
    }
    let mut rewritten = Value::Object(defs);
    rewrite_refs(&mut rewritten, &manifest.family)?;
    Ok(document_with(&manifest.family, &manifest.title, rewritten))
}

/// Bundles one standalone schema file (e.g. the device command registry):
/// its root becomes `$defs/<name>`.
pub fn bundle_single(dir: &Path, file: &str, name: &str) -> Result<Value> {
    let mut document = read_json(&dir.join(file))?;
    let mut defs = Map::new();
    hoist_defs(&document, file, &mut defs)?;
    let title = document
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_owned();
    if let Some(object) = document.as_object_mut() {
        object.remove("$defs");
        object.remove("$schema");
        object.remove("$id");
    }
    insert_unique(&mut defs, name, document, file)?;
    let mut rewritten = Value::Object(defs);
    rewrite_refs(&mut rewritten, file)?;
    Ok(document_with(name, &title, rewritten))
}

fn document_with(id: &str, title: &str, defs: Value) -> Value {
    let mut root = Map::new();
    root.insert("$schema".into(), Value::String(DRAFT.into()));
    root.insert("$id".into(), Value::String(format!("urn:specwire:{id}")));
    root.insert("title".into(), Value::String(title.into()));
    root.insert("$defs".into(), defs);
    Value::Object(root)
}

fn hoist_defs(document: &Value, file: &str, defs: &mut Map<String, Value>) -> Result<()> {
    if let Some(local) = document.get("$defs") {
        let local = local
            .as_object()
            .with_context(|| format!("{file}: $defs must be an object"))?;
        for (name, schema) in local {
            insert_unique(defs, name, schema.clone(), file)?;
        }
    }
    Ok(())
}

fn insert_unique(
    defs: &mut Map<String, Value>,
    name: &str,
    schema: Value,
    file: &str,
) -> Result<()> {
    if defs.contains_key(name) {
        bail!("{file}: definition {name:?} is defined twice in its family; rename one");
    }
    defs.insert(name.to_owned(), schema);
    Ok(())
}

/// Rewrites `other.schema.json#/$defs/X` and `#/$defs/X` to `#/$defs/X`.
fn rewrite_refs(value: &mut Value, family: &str) -> Result<()> {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref") {
                let Some((_, fragment)) = reference.split_once('#') else {
                    bail!("{family}: $ref {reference:?} has no #/$defs/ fragment");
                };
                let Some(name) = fragment.strip_prefix("/$defs/") else {
                    bail!("{family}: $ref {reference:?} must point into $defs");
                };
                if name.contains('/') {
                    bail!("{family}: $ref {reference:?} must name a definition, not a path inside one");
                }
                *reference = format!("#/$defs/{name}");
            }
            for child in object.values_mut() {
                rewrite_refs(child, family)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_refs(item, family)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `$ref` in a bundled document must resolve.
pub fn dangling_refs(bundle: &Value) -> Vec<String> {
    fn walk(value: &Value, defs: &Map<String, Value>, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(reference)) = object.get("$ref") {
                    let name = reference.trim_start_matches("#/$defs/");
                    if !defs.contains_key(name) {
                        out.push(reference.clone());
                    }
                }
                object.values().for_each(|child| walk(child, defs, out));
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, defs, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(defs) = bundle.get("$defs").and_then(Value::as_object) {
        walk(bundle, defs, &mut out);
    }
    out
}
