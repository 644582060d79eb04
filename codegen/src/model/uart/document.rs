//! The uart document as written: one serde shape per entry kind of
//! `schema/meta/uart-protocol.schema.json`, and the JSON access that names
//! the offending entry in every error. The checked model is built from
//! these (`parse.rs`).

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FieldDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub description: Option<String>,
    #[serde(rename = "const")]
    pub konst: Option<u64>,
    #[serde(rename = "enum")]
    pub enumeration: Option<String>,
    pub length_prefix: Option<String>,
    pub length_from: Option<String>,
    pub length_from_table: Option<String>,
    pub count_prefix: Option<String>,
    pub item: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CommandDoc {
    pub name: String,
    pub ident: String,
    pub handled_by: String,
    pub description: String,
    pub fields: Vec<FieldDoc>,
    pub reply: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ReplyKindDoc {
    pub name: String,
    pub byte: u8,
    pub char: String,
    pub description: String,
    pub fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StructDoc {
    pub name: String,
    pub description: String,
    pub fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct EnumDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub values: Vec<EnumValueDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct EnumValueDoc {
    pub name: String,
    pub value: u8,
    pub char: Option<String>,
    pub description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct OpcodeDoc {
    pub code: u8,
    pub name: String,
    pub ident: String,
    pub description: String,
    pub fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DataTypeDoc {
    pub name: String,
    pub id: u8,
    pub length: u64,
    pub value_type: String,
    pub unit: Option<String>,
    pub description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ExampleDoc {
    pub name: String,
    pub direction: String,
    pub kind: String,
    pub body: String,
}

pub(super) fn get<'a>(doc: &'a Value, key: &str) -> Result<&'a Value> {
    doc.get(key).with_context(|| format!("missing `{key}`"))
}

pub(super) fn get_str(doc: &Value, key: &str) -> Result<String> {
    get(doc, key)?
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("`{key}` is not a string"))
}

/// Deserialises every element of array `key`, naming the element (index and
/// `name_key`, when it has one) in the error.
pub(super) fn entries<T: for<'de> Deserialize<'de>>(
    doc: &Value,
    key: &str,
    name_key: &str,
) -> Result<Vec<T>> {
    let array = get(doc, key)?
        .as_array()
        .with_context(|| format!("`{key}` is not an array"))?;
    array
        .iter()
        .enumerate()
        .map(|(i, v)| T::deserialize(v).with_context(|| entry_label(key, i, v.get(name_key))))
        .collect()
}

pub(super) fn entry_label(key: &str, index: usize, name: Option<&Value>) -> String {
    match name {
        Some(Value::String(s)) => format!("{key}[{index}] `{s}`"),
        Some(other) => format!("{key}[{index}] `{other}`"),
        None => format!("{key}[{index}]"),
    }
}
