//! Building the checked uart model from the document: every name resolves,
//! every id is unique, every length comes from somewhere; errors name the
//! offending entry (`commands[7] `NSTAT``).

use std::collections::BTreeSet;

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::document::{
    entries, entry_label, get, get_str, CommandDoc, DataTypeDoc, EnumDoc, ExampleDoc, FieldDoc,
    OpcodeDoc, ReplyKindDoc, StructDoc,
};
use super::fields::{check_top_level_params, parse_fields, resolve_struct_params};
use super::names::{check_type_ident, pascal, single_char, Unique};
use super::types::{
    CommandDef, DataTypeDef, EnumDef, EnumValueDef, Example, ExampleKind, Field, Framing, IntTy,
    Kind, KindShape, OpcodeDef, Protocol, Record, ReplyKindDef, ReplyRef, Transport, ValueType,
};

/// Type names the generated module defines itself (or relies on from the
/// prelude); a document entry with one of these names would clash.
const RESERVED_TYPES: &[&str] = &[
    "Body",
    "Command",
    "DataType",
    "DataValue",
    "DecodeError",
    "EncodeError",
    "Framing",
    "HandledBy",
    "Notification",
    "Reader",
    "Reply",
    "SuccessReply",
    "SuccessShape",
    "UnsolicitedMessage",
    "Box",
    "Err",
    "None",
    "Ok",
    "Option",
    "Result",
    "Self",
    "Some",
    "String",
    "Vec",
    "FrameDecoder",
    "FrameError",
    "DecoderStats",
];

impl Protocol {
    /// Checks the uart document (shape fixed by
    /// `schema/meta/uart-protocol.schema.json`) and builds the model.
    ///
    /// Fails, with context naming the entry, when the document is
    /// inconsistent: an unknown struct, enum or layout name, a `lengthFrom`
    /// that names no earlier field, a duplicate command name, opcode or
    /// data-type id, and the like.
    pub fn from_json(doc: &Value) -> Result<Self> {
        ensure!(
            get(doc, "byteOrder")?.as_str() == Some("big-endian"),
            "`byteOrder` must be \"big-endian\""
        );
        let framing = Framing::deserialize(get(doc, "framing")?).context("framing")?;
        check_framing(&framing).context("framing")?;
        let transport = parse_transport(get(doc, "transport")?).context("transport")?;

        let mut type_names = Unique::new("type name");
        for reserved in RESERVED_TYPES {
            type_names.add((*reserved).to_owned())?;
        }

        let enums = parse_enums(doc, &mut type_names)?;
        let data_types = parse_data_types(doc)?;
        // Structs first: layouts, commands and opcodes refer to them.
        let structs = parse_structs(doc, &enums, &mut type_names)?;
        let layouts = parse_layouts(doc, &enums, &structs, &mut type_names)?;
        let commands = parse_commands(doc, &enums, &structs, &layouts, &mut type_names)?;
        let opcodes = parse_opcodes(doc, &enums, &structs, &mut type_names)?;
        let reply_kinds = parse_reply_kinds(doc, &enums, &structs)?;
        let examples = parse_examples(doc)?;

        let protocol = Protocol {
            family: get_str(doc, "family")?,
            title: get_str(doc, "title")?,
            summary: get_str(doc, "summary")?,
            sources: serde_json::from_value(get(doc, "sources")?.clone()).context("sources")?,
            byte_order: get_str(doc, "byteOrder")?,
            transport,
            framing,
            commands,
            reply_kinds,
            layouts,
            structs,
            enums,
            opcodes,
            data_types,
            examples,
        };
        check_listed(&protocol)?;
        check_examples(&protocol)?;
        Ok(protocol)
    }
}

fn parse_structs(
    doc: &Value,
    enums: &[EnumDef],
    type_names: &mut Unique<String>,
) -> Result<Vec<Record>> {
    let struct_docs: Vec<StructDoc> = entries(doc, "structs", "name")?;
    let mut structs = Vec::new();
    for (i, s) in struct_docs.into_iter().enumerate() {
        let label = entry_label("structs", i, Some(&Value::String(s.name.clone())));
        let record = (|| {
            check_type_ident(&s.name)?;
            type_names.add(s.name.clone())?;
            let fields = parse_fields(&s.fields, enums, false)?;
            Ok::<_, anyhow::Error>(Record {
                name: s.name,
                description: s.description,
                fields,
                params: Vec::new(),
            })
        })()
        .context(label)?;
        structs.push(record);
    }
    resolve_struct_params(&mut structs)?;
    Ok(structs)
}

fn parse_layouts(
    doc: &Value,
    enums: &[EnumDef],
    structs: &[Record],
    type_names: &mut Unique<String>,
) -> Result<Vec<Record>> {
    let layout_docs: Vec<StructDoc> = entries(doc, "replyLayouts", "name")?;
    let mut layouts = Vec::new();
    for (i, s) in layout_docs.into_iter().enumerate() {
        let label = entry_label("replyLayouts", i, Some(&Value::String(s.name.clone())));
        let record = (|| {
            check_type_ident(&s.name)?;
            type_names.add(s.name.clone())?;
            ensure!(
                !matches!(s.name.as_str(), "Empty" | "Bytes" | "Json"),
                "layout name `{}` clashes with a built-in reply shape",
                s.name
            );
            top_level(s.name, s.description, &s.fields, enums, structs)
        })()
        .context(label)?;
        layouts.push(record);
    }
    Ok(layouts)
}

fn parse_commands(
    doc: &Value,
    enums: &[EnumDef],
    structs: &[Record],
    layouts: &[Record],
    type_names: &mut Unique<String>,
) -> Result<Vec<CommandDef>> {
    let command_docs: Vec<CommandDoc> = entries(doc, "commands", "name")?;
    let mut wire_names = Unique::new("command name");
    let mut commands = Vec::new();
    for (i, c) in command_docs.into_iter().enumerate() {
        let label = entry_label("commands", i, Some(&Value::String(c.name.clone())));
        let command = (|| {
            let wire: [u8; 5] = c
                .name
                .as_bytes()
                .try_into()
                .ok()
                .filter(|w: &[u8; 5]| w.iter().all(|b| (0x20..=0x7e).contains(b)))
                .with_context(|| {
                    format!("command name {:?} is not 5 printable ASCII bytes", c.name)
                })?;
            wire_names.add(c.name.clone())?;
            check_type_ident(&c.ident)?;
            type_names.add(c.ident.clone())?;
            let handled_by_gateway = match c.handled_by.as_str() {
                "module" => false,
                "gateway" => true,
                other => bail!("unknown handledBy `{other}`"),
            };
            let reply = match c.reply.as_str() {
                "empty" => ReplyRef::Empty,
                "bytes" => ReplyRef::Bytes,
                "json" => ReplyRef::Json,
                name => {
                    ensure!(
                        layouts.iter().any(|l| l.name == name),
                        "reply `{name}` is neither empty/bytes/json nor a replyLayouts entry"
                    );
                    ReplyRef::Layout(name.to_owned())
                }
            };
            let record = top_level(c.ident, c.description, &c.fields, enums, structs)?;
            Ok(CommandDef {
                wire,
                name: c.name,
                handled_by_gateway,
                reply,
                record,
            })
        })()
        .context(label)?;
        commands.push(command);
    }
    ensure!(!commands.is_empty(), "`commands` is empty");
    Ok(commands)
}

fn parse_opcodes(
    doc: &Value,
    enums: &[EnumDef],
    structs: &[Record],
    type_names: &mut Unique<String>,
) -> Result<Vec<OpcodeDef>> {
    let opcode_docs: Vec<OpcodeDoc> = entries(doc, "opcodes", "name")?;
    let mut codes = Unique::new("opcode");
    let mut opcode_names = Unique::new("opcode name");
    let mut opcodes = Vec::new();
    for (i, o) in opcode_docs.into_iter().enumerate() {
        let label = entry_label("opcodes", i, Some(&Value::String(o.name.clone())));
        let opcode = (|| {
            codes.add(o.code)?;
            opcode_names.add(o.name.clone())?;
            check_type_ident(&o.ident)?;
            ensure!(
                o.ident != "Unknown",
                "opcode ident `Unknown` is reserved for unlisted opcodes"
            );
            type_names.add(o.ident.clone())?;
            let record = top_level(o.ident, o.description, &o.fields, enums, structs)?;
            Ok(OpcodeDef {
                code: o.code,
                name: o.name,
                record,
            })
        })()
        .context(label)?;
        opcodes.push(opcode);
    }
    Ok(opcodes)
}

/// A struct that takes a length from its encloser must be listed by
/// something; otherwise the field its lengthFrom names exists nowhere.
fn check_listed(p: &Protocol) -> Result<()> {
    let lists = |fields: &[Field], name: &str| {
        fields
            .iter()
            .any(|f| matches!(&f.kind, Kind::List { item } if item == name))
    };
    for (i, s) in p.structs.iter().enumerate() {
        if let Some(param) = s.params.first() {
            let listed = p.structs.iter().any(|o| lists(&o.fields, &s.name))
                || p.layouts.iter().any(|o| lists(&o.fields, &s.name))
                || p.commands.iter().any(|c| lists(&c.record.fields, &s.name))
                || p.opcodes.iter().any(|o| lists(&o.record.fields, &s.name))
                || p.reply_kinds.iter().any(|k| match &k.shape {
                    KindShape::Message(f) | KindShape::Fields(f) => lists(f, &s.name),
                    KindShape::Unit | KindShape::Rest => false,
                });
            ensure!(
                listed,
                "{}: lengthFrom `{param}` names no earlier field, and no layout lists this struct to supply it",
                entry_label("structs", i, Some(&Value::String(s.name.clone())))
            );
        }
    }
    Ok(())
}

fn parse_examples(doc: &Value) -> Result<Vec<Example>> {
    let docs: Vec<ExampleDoc> = entries(doc, "examples", "name")?;
    let mut out = Vec::new();
    for (i, e) in docs.into_iter().enumerate() {
        let label = entry_label("examples", i, Some(&Value::String(e.name.clone())));
        let example = (|| {
            let kind = match e.kind.as_str() {
                "command" => ExampleKind::Command,
                "reply" => ExampleKind::Reply,
                other => bail!("example kind `{other}` is neither `command` nor `reply`"),
            };
            let body = parse_hex(&e.body).context("body")?;
            Ok(Example {
                name: e.name,
                direction: e.direction,
                kind,
                body,
            })
        })()
        .context(label)?;
        out.push(example);
    }
    Ok(out)
}

fn parse_hex(s: &str) -> Result<Vec<u8>> {
    s.split_whitespace()
        .map(|b| {
            ensure!(b.len() == 2, "{b:?} is not a two-digit hex byte");
            u8::from_str_radix(b, 16).map_err(|_| anyhow::anyhow!("{b:?} is not a hex byte"))
        })
        .collect()
}

/// Every example starts with a known command, or a known reply kind.
fn check_examples(p: &Protocol) -> Result<()> {
    for (i, e) in p.examples.iter().enumerate() {
        let label = entry_label("examples", i, Some(&Value::String(e.name.clone())));
        match e.kind {
            ExampleKind::Command => {
                let head = e.body.get(..5).unwrap_or(&e.body);
                ensure!(
                    p.commands.iter().any(|c| c.wire.as_slice() == head),
                    "{label}: example command {:?} is not in `commands`",
                    String::from_utf8_lossy(head)
                );
            }
            ExampleKind::Reply => {
                let Some(&first) = e.body.first() else {
                    bail!("{label}: an example reply body is empty");
                };
                ensure!(
                    p.reply_kinds.iter().any(|k| k.byte == first),
                    "{label}: example reply kind 0x{first:02X} is not in `replyKinds`"
                );
            }
        }
    }
    Ok(())
}

fn check_framing(f: &Framing) -> Result<()> {
    let specials: BTreeSet<u8> = [f.start, f.end, f.escape].into();
    ensure!(
        specials.len() == 3,
        "start, end and escape must be three different bytes"
    );
    let escaped: BTreeSet<u8> = f.escaped.iter().copied().collect();
    ensure!(
        escaped.len() == f.escaped.len() && escaped == specials,
        "`escaped` must list exactly the start, end and escape bytes"
    );
    ensure!(f.max_body >= 1, "maxBody must be at least 1");
    ensure!(
        usize::try_from(f.max_body).is_ok(),
        "maxBody does not fit a usize"
    );
    Ok(())
}

fn parse_transport(t: &Value) -> Result<Transport> {
    let module_timeout_ms = get(t, "moduleTimeoutMs")?
        .as_u64()
        .context("`moduleTimeoutMs` is not a non-negative integer")?;
    let local = get(t, "local")?;
    let local_kind = get_str(local, "kind").context("local")?;
    let local_host = get_str(local, "defaultHost").context("local")?;
    let local_port = get(local, "defaultPort")
        .context("local")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("`local.defaultPort` is not a port number")?;
    let mut entries = Vec::new();
    flatten("", t, &mut entries);
    Ok(Transport {
        module_timeout_ms,
        local_kind,
        local_host,
        local_port,
        local_description: local
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        serial_description: t.get("serial").and_then(Value::as_str).map(str::to_owned),
        entries,
    })
}

/// The leaves of a free-form object as `a.b` → value, in document order.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

fn parse_enums(doc: &Value, type_names: &mut Unique<String>) -> Result<Vec<EnumDef>> {
    let docs: Vec<EnumDoc> = entries(doc, "enums", "name")?;
    let mut out = Vec::new();
    for (i, e) in docs.into_iter().enumerate() {
        let label = entry_label("enums", i, Some(&Value::String(e.name.clone())));
        let def = (|| {
            check_type_ident(&e.name)?;
            type_names.add(e.name.clone())?;
            ensure!(e.ty == "u8", "enum type must be u8, got `{}`", e.ty);
            ensure!(!e.values.is_empty(), "enum has no values");
            let mut names = Unique::new("enum value name");
            let mut values = Unique::new("enum value");
            let mut defs = Vec::new();
            for v in e.values {
                check_type_ident(&v.name)?;
                names.add(v.name.clone())?;
                values.add(v.value)?;
                let ch = v.char.as_deref().map(single_char).transpose()?;
                defs.push(EnumValueDef {
                    name: v.name,
                    value: v.value,
                    ch,
                    description: v.description,
                });
            }
            Ok(EnumDef {
                name: e.name,
                ty: IntTy::U8,
                values: defs,
            })
        })()
        .context(label)?;
        out.push(def);
    }
    Ok(out)
}

fn parse_data_types(doc: &Value) -> Result<Vec<DataTypeDef>> {
    let docs: Vec<DataTypeDoc> = entries(doc, "dataTypes", "name")?;
    ensure!(!docs.is_empty(), "`dataTypes` is empty");
    let mut ids = Unique::new("data-type id");
    let mut names = Unique::new("data-type name");
    let mut out = Vec::new();
    for (i, d) in docs.into_iter().enumerate() {
        let label = entry_label("dataTypes", i, Some(&Value::String(d.name.clone())));
        let def = (|| {
            ensure!(
                d.name.starts_with(|c: char| c.is_ascii_lowercase())
                    && d.name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "data-type name `{}` is not lower_snake_case",
                d.name
            );
            ids.add(d.id)?;
            let variant = pascal(&d.name);
            check_type_ident(&variant)?;
            names.add(variant.clone())?;
            let value = ValueType::parse(&d.value_type)
                .with_context(|| format!("unknown valueType `{}`", d.value_type))?;
            let length = usize::try_from(d.length)
                .ok()
                .filter(|l| (1..=255).contains(l))
                .with_context(|| format!("length {} is outside 1..=255", d.length))?;
            if let Some(size) = value.size() {
                ensure!(
                    size == length,
                    "valueType `{}` is {size} bytes but length is {length}",
                    d.value_type
                );
            }
            Ok(DataTypeDef {
                name: d.name,
                variant,
                id: d.id,
                length,
                value,
                unit: d.unit,
                description: d.description,
            })
        })()
        .context(label)?;
        out.push(def);
    }
    Ok(out)
}

fn parse_reply_kinds(
    doc: &Value,
    enums: &[EnumDef],
    structs: &[Record],
) -> Result<Vec<ReplyKindDef>> {
    let docs: Vec<ReplyKindDoc> = entries(doc, "replyKinds", "name")?;
    let mut bytes = Unique::new("reply kind byte");
    let mut names = Unique::new("reply kind name");
    let mut messages = 0;
    let mut out = Vec::new();
    for (i, k) in docs.into_iter().enumerate() {
        let label = entry_label("replyKinds", i, Some(&Value::String(k.name.clone())));
        let def = (|| {
            check_type_ident(&k.name)?;
            names.add(k.name.clone())?;
            bytes.add(k.byte)?;
            let ch = single_char(&k.char)?;
            ensure!(
                u32::from(ch) == u32::from(k.byte),
                "char {ch:?} does not match byte {}",
                k.byte
            );
            let all = parse_fields(&k.fields, enums, true)?;
            check_top_level_params(&k.name, &all, structs)?;
            let mut fields = all.clone();
            let n = fields.len();
            let is_message = n >= 2
                && fields[n - 2].json == "opcode"
                && matches!(fields[n - 2].kind, Kind::Int { ty: IntTy::U8, konst: None })
                && fields[n - 1].json == "payload"
                && matches!(fields[n - 1].kind, Kind::Rest);
            let shape = if fields.is_empty() {
                KindShape::Unit
            } else if n == 1 && matches!(fields[0].kind, Kind::Rest) {
                KindShape::Rest
            } else if is_message {
                messages += 1;
                fields.truncate(n - 2);
                ensure!(
                    fields.iter().all(|f| f.json != "body"),
                    "a message field may not be called `body` (UnsolicitedMessage.body holds the payload)"
                );
                KindShape::Message(fields)
            } else {
                KindShape::Fields(fields)
            };
            Ok(ReplyKindDef {
                name: k.name,
                byte: k.byte,
                ch,
                description: k.description,
                fields: all,
                shape,
            })
        })()
        .context(label)?;
        out.push(def);
    }
    ensure!(
        messages == 1,
        "replyKinds: exactly one kind must end in `opcode` (u8) and `payload` (rest) to carry the opcode table, found {messages}"
    );
    Ok(out)
}

/// A command, opcode or layout: fields that need no context from outside.
fn top_level(
    name: String,
    description: String,
    fields: &[FieldDoc],
    enums: &[EnumDef],
    structs: &[Record],
) -> Result<Record> {
    let fields = parse_fields(fields, enums, true)?;
    check_top_level_params(&name, &fields, structs)?;
    Ok(Record {
        name,
        description,
        fields,
        params: Vec::new(),
    })
}
