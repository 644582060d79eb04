//! Fields and lengths: parsing each field's wire form, and working out
//! which lengths a record takes from the record that encloses it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::document::{entry_label, FieldDoc};
use super::names::{check_type_ident, snake, Unique};
use super::types::{EnumDef, Field, IntTy, Kind, Len, Record};

/// Local and parameter names used by the generated encoders and decoders; a
/// field with one of these Rust names would shadow them.
const RESERVED_FIELDS: &[&str] = &[
    "reader", "out", "input", "element", "self", "super", "crate",
];

pub(super) fn check_top_level_params(
    name: &str,
    fields: &[Field],
    structs: &[Record],
) -> Result<()> {
    let params = record_params(name, fields, &|item| {
        structs
            .iter()
            .find(|s| s.name == item)
            .map(|s| s.params.clone())
            .with_context(|| format!("unknown struct `{item}`"))
    })?;
    if let Some(p) = params.first() {
        bail!("lengthFrom `{p}` names no earlier field of `{name}` (nor of anything that encloses it)");
    }
    Ok(())
}

pub(super) fn parse_fields(
    docs: &[FieldDoc],
    enums: &[EnumDef],
    allow_rest: bool,
) -> Result<Vec<Field>> {
    let mut names = Unique::new("field name");
    let mut fields: Vec<Field> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let field = parse_field(d, enums).with_context(|| format!("field `{}`", d.name))?;
        names
            .add(field.rust.clone())
            .with_context(|| format!("field `{}`", d.name))?;
        if matches!(field.kind, Kind::Rest) {
            ensure!(
                allow_rest,
                "field `{}`: `rest` is not allowed in a struct (structs are list items)",
                d.name
            );
            ensure!(
                i + 1 == docs.len(),
                "field `{}`: `rest` must be the last field",
                d.name
            );
        }
        match &field.kind {
            Kind::Bytes(Len::Field(from)) => {
                if let Some(earlier) = fields.iter().find(|f| &f.json == from) {
                    ensure!(
                        matches!(earlier.kind, Kind::Int { .. }),
                        "field `{}`: lengthFrom `{from}` is not an integer field",
                        d.name
                    );
                } else {
                    ensure!(
                        !docs[i + 1..].iter().any(|later| &later.name == from),
                        "field `{}`: lengthFrom `{from}` names a later field; the length must come first",
                        d.name
                    );
                }
            }
            Kind::Bytes(Len::Table { key }) => {
                let ok = fields.iter().any(|f| {
                    &f.json == key
                        && matches!(
                            f.kind,
                            Kind::Int {
                                ty: IntTy::U8,
                                konst: None
                            }
                        )
                });
                ensure!(
                    ok,
                    "field `{}`: lengthFromTable needs an earlier non-const u8 field `{key}`",
                    d.name
                );
            }
            _ => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

fn parse_field(d: &FieldDoc, enums: &[EnumDef]) -> Result<Field> {
    ensure!(
        d.name.starts_with(|c: char| c.is_ascii_lowercase())
            && d.name.chars().all(|c| c.is_ascii_alphanumeric()),
        "field name `{}` is not camelCase",
        d.name
    );
    let rust = snake(&d.name);
    ensure!(
        !RESERVED_FIELDS.contains(&rust.as_str()),
        "field name `{}` is reserved by the generated code",
        d.name
    );
    // Which optional attributes each type accepts; anything else is an error
    // rather than being silently ignored.
    let present = [
        ("const", d.konst.is_some()),
        ("enum", d.enumeration.is_some()),
        ("lengthPrefix", d.length_prefix.is_some()),
        ("lengthFrom", d.length_from.is_some()),
        ("lengthFromTable", d.length_from_table.is_some()),
        ("countPrefix", d.count_prefix.is_some()),
        ("item", d.item.is_some()),
    ];
    let allowed: &[&str] = match d.ty.as_str() {
        "u8" => &["const", "enum"],
        "u16" | "u32" => &["const"],
        "bytes" => &["lengthFrom", "lengthFromTable"],
        "string" => &["lengthPrefix"],
        "list" => &["countPrefix", "item"],
        _ => &[],
    };
    for (attr, is_present) in present {
        ensure!(
            !is_present || allowed.contains(&attr),
            "`{attr}` does not apply to type `{}`",
            d.ty
        );
    }
    let int = |ty: IntTy| -> Result<Kind> {
        if let Some(k) = d.konst {
            ensure!(k <= ty.max(), "const {k} does not fit a {}", ty.name());
        }
        Ok(Kind::Int { ty, konst: d.konst })
    };
    let kind = match d.ty.as_str() {
        "u8" => match &d.enumeration {
            Some(name) => {
                ensure!(
                    d.konst.is_none(),
                    "a field cannot be both `const` and `enum`"
                );
                ensure!(
                    enums.iter().any(|e| &e.name == name),
                    "unknown enum `{name}`"
                );
                Kind::Enum { name: name.clone() }
            }
            None => int(IntTy::U8)?,
        },
        "u16" => int(IntTy::U16)?,
        "u32" => int(IntTy::U32)?,
        "uuid" => Kind::Uuid,
        "bytes" => match (&d.length_from, &d.length_from_table) {
            (Some(from), None) => Kind::Bytes(Len::Field(from.clone())),
            (None, Some(table)) => {
                ensure!(table == "dataTypes", "unknown lengthFromTable `{table}`");
                Kind::Bytes(Len::Table {
                    key: "dataId".into(),
                })
            }
            _ => bail!("`bytes` needs exactly one of lengthFrom and lengthFromTable"),
        },
        "rest" => Kind::Rest,
        "string" => {
            ensure!(
                d.length_prefix.as_deref() == Some("u8"),
                "`string` needs lengthPrefix \"u8\""
            );
            Kind::Str
        }
        "list" => {
            ensure!(
                d.count_prefix.as_deref() == Some("u8"),
                "`list` needs countPrefix \"u8\""
            );
            let item = d.item.clone().context("`list` needs `item`")?;
            Kind::List { item }
        }
        other => bail!("unknown field type `{other}`"),
    };
    if let Kind::List { item } = &kind {
        check_type_ident(item)?;
    }
    Ok(Field {
        json: d.name.clone(),
        rust,
        description: d.description.clone(),
        kind,
    })
}

/// The context parameters of a record: `lengthFrom` names (its own, or its
/// list items') that no earlier field of the record supplies.
fn record_params(
    name: &str,
    fields: &[Field],
    item_params: &dyn Fn(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let mut params: Vec<String> = Vec::new();
    let add = |p: &str, params: &mut Vec<String>| {
        if !params.iter().any(|q| q == p) {
            params.push(p.to_owned());
        }
    };
    for (i, f) in fields.iter().enumerate() {
        let earlier = &fields[..i];
        match &f.kind {
            Kind::Bytes(Len::Field(from)) if !earlier.iter().any(|e| &e.json == from) => {
                add(from, &mut params)
            }
            Kind::List { item } => {
                let needed = item_params(item).with_context(|| format!("{name}.{}", f.json))?;
                for p in needed {
                    match earlier.iter().find(|e| e.json == p) {
                        Some(e) => ensure!(
                            matches!(e.kind, Kind::Int { .. }),
                            "{name}.{}: `{p}`, the length of `{item}` data, is not an integer field",
                            f.json
                        ),
                        None => add(&p, &mut params),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(params)
}

/// Fills `params` of every struct (items first), rejecting list cycles and
/// structs that need a length nobody can supply.
pub(super) fn resolve_struct_params(structs: &mut [Record]) -> Result<()> {
    fn visit(
        name: &str,
        structs: &[Record],
        memo: &RefCell<BTreeMap<String, Vec<String>>>,
        visiting: &RefCell<Vec<String>>,
    ) -> Result<Vec<String>> {
        if let Some(p) = memo.borrow().get(name) {
            return Ok(p.clone());
        }
        let record = structs
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("unknown struct `{name}`"))?;
        ensure!(
            !visiting.borrow().iter().any(|v| v == name),
            "struct `{name}` contains itself through list items"
        );
        visiting.borrow_mut().push(name.to_owned());
        let params = record_params(name, &record.fields, &|item| {
            visit(item, structs, memo, visiting)
        })?;
        visiting.borrow_mut().pop();
        memo.borrow_mut().insert(name.to_owned(), params.clone());
        Ok(params)
    }
    let memo = RefCell::new(BTreeMap::new());
    let visiting = RefCell::new(Vec::new());
    let mut all = Vec::new();
    for (i, s) in structs.iter().enumerate() {
        let label = entry_label("structs", i, Some(&Value::String(s.name.clone())));
        all.push(visit(&s.name, structs, &memo, &visiting).context(label)?);
    }
    for (s, params) in structs.iter_mut().zip(all) {
        s.params = params;
    }
    Ok(())
}
