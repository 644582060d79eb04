//! Generator for the uart family's binary codecs.
//!
//! [`generate`] reads `schema/uart/protocol.json` (shape fixed by
//! `schema/meta/uart-protocol.schema.json`) and produces the Rust source of
//! module `specwire_protocol::uart`: framing constants and wrappers over
//! `specwire_wire`, one struct per command, layout, struct and opcode, the
//! `Command`, `Reply`, `Notification`, `SuccessReply` and `Body` enums, the
//! data-type table as `DataType`/`DataValue`. The reader and the decode and
//! encode errors are hand-written (`specwire_wire::binary`); the module
//! re-exports the errors.
//!
//! The generator works in two passes. [`Model::from_json`] deserialises every
//! entry and checks that the document is consistent (names resolve, ids are
//! unique, lengths come from earlier fields), naming the offending entry in
//! the error. [`Gen`] then emits tokens from the checked model only, so the
//! emitting code never has to handle a dangling reference. Output follows
//! document order and uses no hash maps, so it is deterministic.
//!
//! Conventions of the generated code (also stated in its module docs):
//! - decoders never panic: all reads go through the bounds-checked
//!   `specwire_wire::binary::Reader`, and malformed input is a `DecodeError`;
//! - `encode` is infallible for a type whose Rust form always fits the wire,
//!   and returns `Result<_, EncodeError>` for a type that contains a u8 count
//!   or length prefix or a length tied to another field (the rule is per type
//!   and derived from the document);
//! - a `lengthFrom` length field stays in the struct and is checked on encode
//!   rather than derived, so decode then encode reproduces the bytes even when
//!   the list that would carry the length is empty;
//! - `const` fields are not stored: encode writes the constant and decode
//!   checks it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context, Result};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use serde::Deserialize;
use serde_json::Value;

/// Generates the Rust source of module `specwire_protocol::uart` from the uart
/// protocol document.
///
/// Fails, with context naming the entry, when the document is inconsistent:
/// an unknown struct, enum or layout name, a `lengthFrom` that names no
/// earlier field, a duplicate command name, opcode or data-type id, and the
/// like.
pub fn generate(protocol: &Value) -> Result<TokenStream> {
    let model = Model::from_json(protocol).context("uart protocol document")?;
    Ok(Gen::new(&model).emit())
}

// ---------------------------------------------------------------------------
// Document shapes (serde), one per entry kind of the meta-schema.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FieldDoc {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    description: Option<String>,
    #[serde(rename = "const")]
    konst: Option<u64>,
    #[serde(rename = "enum")]
    enumeration: Option<String>,
    length_prefix: Option<String>,
    length_from: Option<String>,
    length_from_table: Option<String>,
    count_prefix: Option<String>,
    item: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CommandDoc {
    name: String,
    ident: String,
    handled_by: String,
    description: String,
    fields: Vec<FieldDoc>,
    reply: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplyKindDoc {
    name: String,
    byte: u8,
    char: String,
    description: String,
    fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StructDoc {
    name: String,
    description: String,
    fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnumDoc {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    values: Vec<EnumValueDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnumValueDoc {
    name: String,
    value: u8,
    char: Option<String>,
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpcodeDoc {
    code: u8,
    name: String,
    ident: String,
    description: String,
    fields: Vec<FieldDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DataTypeDoc {
    name: String,
    id: u8,
    length: u64,
    value_type: String,
    unit: Option<String>,
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FramingDoc {
    start: u8,
    end: u8,
    escape: u8,
    escape_xor: u8,
    escaped: Vec<u8>,
    max_body: u64,
    description: String,
}

// ---------------------------------------------------------------------------
// Checked model.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum IntTy {
    U8,
    U16,
    U32,
}

impl IntTy {
    fn tokens(self) -> TokenStream {
        match self {
            IntTy::U8 => quote!(u8),
            IntTy::U16 => quote!(u16),
            IntTy::U32 => quote!(u32),
        }
    }

    fn max(self) -> u64 {
        match self {
            IntTy::U8 => u8::MAX.into(),
            IntTy::U16 => u16::MAX.into(),
            IntTy::U32 => u32::MAX.into(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            IntTy::U8 => "u8",
            IntTy::U16 => "u16",
            IntTy::U32 => "u32",
        }
    }

    /// `usize` from a value of this type. `usize::from` has no u32 impl; on a
    /// target with a 16-bit usize, saturating makes an over-large length fail
    /// the bounds check (decode) or the length check (encode) instead of
    /// wrapping.
    fn to_usize(self, value: TokenStream) -> TokenStream {
        match self {
            IntTy::U8 | IntTy::U16 => quote!(usize::from(#value)),
            IntTy::U32 => quote!(usize::try_from(#value).unwrap_or(usize::MAX)),
        }
    }
}

enum Len {
    /// The length is the value of this (JSON-named) field: an earlier field of
    /// the same record, or a context parameter supplied by the enclosing one.
    Field(String),
    /// The length comes from the data-type table, keyed by the earlier field
    /// of that JSON name.
    Table { key: String },
}

enum Kind {
    Int { ty: IntTy, konst: Option<u64> },
    Enum { name: String },
    Uuid,
    Bytes(Len),
    Rest,
    Str,
    List { item: String },
}

struct Field {
    /// The name in the document (camelCase).
    json: String,
    /// The Rust name (snake_case).
    rust: String,
    description: Option<String>,
    kind: Kind,
}

impl Field {
    fn ident(&self) -> Ident {
        ident(&self.rust)
    }

    fn is_const(&self) -> bool {
        matches!(self.kind, Kind::Int { konst: Some(_), .. })
    }

    fn const_ident(&self) -> Ident {
        format_ident!("{}", self.rust.to_ascii_uppercase())
    }

    /// Whether encoding this field can fail (a u8 prefix that may overflow, or
    /// a length that must agree with another field or the data-type table).
    fn fallible(&self) -> bool {
        matches!(self.kind, Kind::Bytes(_) | Kind::Str | Kind::List { .. })
    }

    fn wire_note(&self) -> String {
        match &self.kind {
            Kind::Int {
                ty: IntTy::U8,
                konst: None,
            } => "Wire: one byte.".into(),
            Kind::Int { ty, konst: None } => format!("Wire: `{}`, big-endian.", ty.name()),
            Kind::Int { ty, konst: Some(k) } => {
                format!("Wire: `{}`, big-endian, always {k}.", ty.name())
            }
            Kind::Enum { name } => format!("Wire: one byte, a [`{name}`] value."),
            Kind::Uuid => "Wire: 16 bytes, the UUID in big-endian (RFC 4122) order.".into(),
            Kind::Bytes(Len::Field(from)) => format!(
                "Wire: raw bytes; their length is the `{}` field (checked on encode).",
                snake(from)
            ),
            Kind::Bytes(Len::Table { key }) => format!(
                "Wire: raw bytes; their length is the data-type table's length for `{}` \
                 (see [`DataType::length`]; checked on encode).",
                snake(key)
            ),
            Kind::Rest => "Wire: every remaining byte of the body.".into(),
            Kind::Str => "Wire: a length byte, then that many bytes of UTF-8.".into(),
            Kind::List { item } => {
                format!("Wire: a count byte, then that many [`{item}`] items.")
            }
        }
    }
}

/// A struct-like entry (command arguments, layout, struct, opcode payload).
struct Record {
    name: String,
    description: String,
    fields: Vec<Field>,
    /// Context parameters (JSON names): lengths this record's fields (or its
    /// list items') take from the enclosing record. Empty for top-level ones.
    params: Vec<String>,
}

impl Record {
    fn fallible(&self) -> bool {
        self.fields.iter().any(Field::fallible)
    }

    fn stored(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.is_const())
    }
}

enum ReplyRef {
    Empty,
    Bytes,
    Json,
    Layout(String),
}

struct CommandDef {
    wire: [u8; 5],
    name: String,
    handled_by_gateway: bool,
    reply: ReplyRef,
    record: Record,
}

enum KindShape {
    /// No fields: a unit variant.
    Unit,
    /// A single `rest` field: a tuple variant over its bytes.
    Rest,
    /// Fields before `opcode` + `payload`: a tuple variant over
    /// `UnsolicitedMessage`, whose `body` is typed by the opcode table.
    Message(Vec<Field>),
    /// Anything else: a struct variant with these fields.
    Fields(Vec<Field>),
}

struct ReplyKindDef {
    name: String,
    byte: u8,
    ch: char,
    description: String,
    shape: KindShape,
}

struct EnumValueDef {
    name: String,
    value: u8,
    ch: Option<char>,
    description: String,
}

struct EnumDef {
    name: String,
    values: Vec<EnumValueDef>,
}

struct OpcodeDef {
    code: u8,
    name: String,
    record: Record,
}

#[derive(Clone, Copy)]
enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    Bytes,
}

impl ValueType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "u8" => Self::U8,
            "i8" => Self::I8,
            "u16" => Self::U16,
            "i16" => Self::I16,
            "u32" => Self::U32,
            "i32" => Self::I32,
            "bytes" => Self::Bytes,
            other => bail!("unknown valueType `{other}`"),
        })
    }

    fn size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 => Some(4),
            Self::Bytes => None,
        }
    }

    fn tokens(self, length: usize) -> TokenStream {
        match self {
            Self::U8 => quote!(u8),
            Self::I8 => quote!(i8),
            Self::U16 => quote!(u16),
            Self::I16 => quote!(i16),
            Self::U32 => quote!(u32),
            Self::I32 => quote!(i32),
            Self::Bytes => {
                let n = Literal::usize_unsuffixed(length);
                quote!([u8; #n])
            }
        }
    }
}

struct DataTypeDef {
    name: String,
    variant: String,
    id: u8,
    length: usize,
    value: ValueType,
    unit: Option<String>,
    description: String,
}

struct Transport {
    module_timeout_ms: u64,
    local_host: String,
    local_port: u16,
    local_description: Option<String>,
    serial_description: Option<String>,
}

struct Model {
    title: String,
    summary: String,
    sources: Vec<String>,
    transport: Transport,
    framing: FramingDoc,
    commands: Vec<CommandDef>,
    reply_kinds: Vec<ReplyKindDef>,
    layouts: Vec<Record>,
    structs: Vec<Record>,
    enums: Vec<EnumDef>,
    opcodes: Vec<OpcodeDef>,
    data_types: Vec<DataTypeDef>,
}

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

/// Local and parameter names used by the generated encoders and decoders; a
/// field with one of these Rust names would shadow them.
const RESERVED_FIELDS: &[&str] = &[
    "reader", "out", "input", "element", "self", "super", "crate",
];

fn get<'a>(doc: &'a Value, key: &str) -> Result<&'a Value> {
    doc.get(key).with_context(|| format!("missing `{key}`"))
}

fn get_str(doc: &Value, key: &str) -> Result<String> {
    get(doc, key)?
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("`{key}` is not a string"))
}

/// Deserialises every element of array `key`, naming the element (index and
/// `name_key`, when it has one) in the error.
fn entries<T: for<'de> Deserialize<'de>>(doc: &Value, key: &str, name_key: &str) -> Result<Vec<T>> {
    let array = get(doc, key)?
        .as_array()
        .with_context(|| format!("`{key}` is not an array"))?;
    array
        .iter()
        .enumerate()
        .map(|(i, v)| T::deserialize(v).with_context(|| entry_label(key, i, v.get(name_key))))
        .collect()
}

fn entry_label(key: &str, index: usize, name: Option<&Value>) -> String {
    match name {
        Some(Value::String(s)) => format!("{key}[{index}] `{s}`"),
        Some(other) => format!("{key}[{index}] `{other}`"),
        None => format!("{key}[{index}]"),
    }
}

fn check_type_ident(name: &str) -> Result<()> {
    let mut chars = name.chars();
    ensure!(
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric()),
        "`{name}` is not a PascalCase identifier"
    );
    Ok(())
}

/// `dataId` -> `data_id`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `temperature` / `air_quality` -> `Temperature` / `AirQuality`.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `Success` / `NodeState` -> `SUCCESS` / `NODE_STATE`.
fn screaming(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An identifier, raw (`r#type`) when the name is a keyword.
fn ident(name: &str) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

fn single_char(s: &str) -> Result<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => bail!("`char` must be exactly one character, got {s:?}"),
    }
}

/// Names seen so far in one namespace; `add` fails on a repeat.
struct Unique<T: Ord + std::fmt::Debug> {
    what: &'static str,
    seen: BTreeSet<T>,
}

impl<T: Ord + std::fmt::Debug> Unique<T> {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            seen: BTreeSet::new(),
        }
    }

    fn add(&mut self, value: T) -> Result<()> {
        let message = format!("duplicate {} {value:?}", self.what);
        ensure!(self.seen.insert(value), message);
        Ok(())
    }
}

impl Model {
    fn from_json(doc: &Value) -> Result<Self> {
        ensure!(
            get(doc, "byteOrder")?.as_str() == Some("big-endian"),
            "`byteOrder` must be \"big-endian\""
        );
        let framing = FramingDoc::deserialize(get(doc, "framing")?).context("framing")?;
        check_framing(&framing).context("framing")?;
        let transport = parse_transport(get(doc, "transport")?).context("transport")?;

        let mut type_names = Unique::new("type name");
        for reserved in RESERVED_TYPES {
            type_names.add((*reserved).to_owned())?;
        }

        let enums = parse_enums(doc, &mut type_names)?;
        let data_types = parse_data_types(doc)?;

        // Structs first: layouts, commands and opcodes refer to them.
        let struct_docs: Vec<StructDoc> = entries(doc, "structs", "name")?;
        let mut structs = Vec::new();
        for (i, s) in struct_docs.into_iter().enumerate() {
            let label = entry_label("structs", i, Some(&Value::String(s.name.clone())));
            let record = (|| {
                check_type_ident(&s.name)?;
                type_names.add(s.name.clone())?;
                let fields = parse_fields(&s.fields, &enums, false)?;
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
                top_level(s.name, s.description, &s.fields, &enums, &structs)
            })()
            .context(label)?;
            layouts.push(record);
        }

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
                let record = top_level(c.ident, c.description, &c.fields, &enums, &structs)?;
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
                let record = top_level(o.ident, o.description, &o.fields, &enums, &structs)?;
                Ok(OpcodeDef {
                    code: o.code,
                    name: o.name,
                    record,
                })
            })()
            .context(label)?;
            opcodes.push(opcode);
        }

        let reply_kinds = parse_reply_kinds(doc, &enums, &structs)?;

        // A struct that takes a length from its encloser must be listed by
        // something; otherwise the field its lengthFrom names exists nowhere.
        let lists = |fields: &[Field], name: &str| {
            fields
                .iter()
                .any(|f| matches!(&f.kind, Kind::List { item } if item == name))
        };
        for (i, s) in structs.iter().enumerate() {
            if let Some(p) = s.params.first() {
                let listed = structs.iter().any(|o| lists(&o.fields, &s.name))
                    || layouts.iter().any(|o| lists(&o.fields, &s.name))
                    || commands.iter().any(|c| lists(&c.record.fields, &s.name))
                    || opcodes.iter().any(|o| lists(&o.record.fields, &s.name))
                    || reply_kinds.iter().any(|k| match &k.shape {
                        KindShape::Message(f) | KindShape::Fields(f) => lists(f, &s.name),
                        KindShape::Unit | KindShape::Rest => false,
                    });
                ensure!(
                    listed,
                    "{}: lengthFrom `{p}` names no earlier field, and no layout lists this struct to supply it",
                    entry_label("structs", i, Some(&Value::String(s.name.clone())))
                );
            }
        }

        Ok(Model {
            title: get_str(doc, "title")?,
            summary: get_str(doc, "summary")?,
            sources: serde_json::from_value(get(doc, "sources")?.clone()).context("sources")?,
            transport,
            framing,
            commands,
            reply_kinds,
            layouts,
            structs,
            enums,
            opcodes,
            data_types,
        })
    }
}

fn check_framing(f: &FramingDoc) -> Result<()> {
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
    let local_host = get_str(local, "defaultHost").context("local")?;
    let local_port = get(local, "defaultPort")
        .context("local")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("`local.defaultPort` is not a port number")?;
    Ok(Transport {
        module_timeout_ms,
        local_host,
        local_port,
        local_description: local
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        serial_description: t.get("serial").and_then(Value::as_str).map(str::to_owned),
    })
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
            let value = ValueType::parse(&d.value_type)?;
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
            let mut fields = parse_fields(&k.fields, enums, true)?;
            check_top_level_params(&k.name, &fields, structs)?;
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
            Ok(ReplyKindDef { name: k.name, byte: k.byte, ch, description: k.description, shape })
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

fn check_top_level_params(name: &str, fields: &[Field], structs: &[Record]) -> Result<()> {
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

fn parse_fields(docs: &[FieldDoc], enums: &[EnumDef], allow_rest: bool) -> Result<Vec<Field>> {
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
fn resolve_struct_params(structs: &mut [Record]) -> Result<()> {
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

// ---------------------------------------------------------------------------
// Emission.
// ---------------------------------------------------------------------------

/// `#[doc = " line"]` per line of `text` (the leading space makes
/// prettyplease print `/// line`).
fn docs(text: &str) -> TokenStream {
    let lines = text.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!(" {l}")
        }
    });
    quote!(#(#[doc = #lines])*)
}

fn inner_docs(text: &str) -> TokenStream {
    let lines = text.lines().map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!(" {l}")
        }
    });
    quote!(#(#![doc = #lines])*)
}

fn hex(b: u8) -> TokenStream {
    let lit = syn::LitInt::new(&format!("0x{b:02X}"), Span::call_site());
    quote!(#lit)
}

/// `b'S'` for printable ASCII, else `0x..`.
fn byte_lit(b: u8) -> TokenStream {
    if b.is_ascii_graphic() && b != b'\'' && b != b'\\' {
        let lit = Literal::byte_character(b);
        quote!(#lit)
    } else {
        hex(b)
    }
}

fn int_lit(ty: IntTy, v: u64) -> TokenStream {
    let lit = match ty {
        IntTy::U8 => Literal::u8_suffixed(v as u8),
        IntTy::U16 => Literal::u16_suffixed(v as u16),
        IntTy::U32 => Literal::u32_suffixed(v as u32),
    };
    quote!(#lit)
}

/// Where a record's fields live while its code is emitted.
#[derive(Clone, Copy)]
struct Scope<'a> {
    /// Type name used in error labels (`what`).
    owner: &'a str,
    /// The record's fields; a length name that is not one of them is a
    /// context parameter (a `usize` argument of the same name).
    fields: &'a [Field],
    /// Whether `Self::CONST` names the record's const fields (true for
    /// structs; enum variants use literals).
    self_consts: bool,
}

impl Scope<'_> {
    fn what(&self, f: &Field) -> String {
        format!("{}.{}", self.owner, f.rust)
    }

    fn own(&self, json: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.json == json)
    }

    fn const_expr(&self, f: &Field, ty: IntTy, k: u64) -> TokenStream {
        if self.self_consts {
            let c = f.const_ident();
            quote!(Self::#c)
        } else {
            int_lit(ty, k)
        }
    }

    /// A length (as usize) named `json`, while decoding: decoded fields are
    /// locals and context parameters are already usize.
    fn len_decode(&self, json: &str) -> TokenStream {
        match self.own(json) {
            Some(Field {
                kind: Kind::Int { ty, .. },
                ..
            }) => {
                let id = ident(&snake(json));
                ty.to_usize(quote!(#id))
            }
            _ => {
                let id = ident(&snake(json));
                quote!(#id)
            }
        }
    }

    /// A length (as usize) named `json`, while encoding: stored fields are
    /// reference bindings, const fields are constants, parameters are usize.
    fn len_encode(&self, json: &str) -> TokenStream {
        match self.own(json) {
            Some(
                f @ Field {
                    kind: Kind::Int { ty, konst },
                    ..
                },
            ) => {
                let value = match konst {
                    Some(k) => self.const_expr(f, *ty, *k),
                    None => {
                        let id = f.ident();
                        quote!(*#id)
                    }
                };
                ty.to_usize(value)
            }
            _ => {
                let id = ident(&snake(json));
                quote!(#id)
            }
        }
    }
}

/// Code for one record's fields.
struct FieldsCode {
    /// Statements that decode every field into a local of its Rust name.
    decode: Vec<TokenStream>,
    /// Statements that encode every stored field from a reference binding of
    /// its Rust name (and const fields from their constant).
    encode: Vec<TokenStream>,
    /// `a, b` for `Self { a, b }`, patterns and constructors.
    stored: Vec<Ident>,
}

/// The parts of a record's code that every kind of record shares.
struct RecordCore {
    def: TokenStream,
    consts: TokenStream,
    read: TokenStream,
    encode_body: TokenStream,
}

struct Gen<'m> {
    m: &'m Model,
    /// Whether the emitted code looks lengths up in the data-type table, so
    /// that the table helpers are emitted only then (no dead code, no `allow`).
    uses_table: Cell<bool>,
}

impl<'m> Gen<'m> {
    fn new(m: &'m Model) -> Self {
        Self {
            m,
            uses_table: Cell::new(false),
        }
    }

    /// The context parameters and fallibility of list item `name`. The model
    /// checked every item name, so the fallback is never taken.
    fn item_info(&self, name: &str) -> (&'m [String], bool) {
        self.m
            .structs
            .iter()
            .find(|s| s.name == name)
            .map_or((&[][..], false), |s| (s.params.as_slice(), s.fallible()))
    }

    fn field_type(&self, f: &Field) -> TokenStream {
        match &f.kind {
            Kind::Int { ty, .. } => ty.tokens(),
            Kind::Enum { name } => {
                let n = format_ident!("{name}");
                quote!(#n)
            }
            Kind::Uuid => quote!(uuid::Uuid),
            Kind::Bytes(_) | Kind::Rest => quote!(Vec<u8>),
            Kind::Str => quote!(String),
            Kind::List { item } => {
                let n = format_ident!("{item}");
                quote!(Vec<#n>)
            }
        }
    }

    fn field_doc(f: &Field) -> TokenStream {
        let text = match &f.description {
            Some(d) => format!("{d}\n\n{}", f.wire_note()),
            None => f.wire_note(),
        };
        docs(&text)
    }

    fn fields_code(&self, sc: Scope<'_>) -> FieldsCode {
        let mut decode = Vec::new();
        let mut encode = Vec::new();
        let mut stored = Vec::new();
        for f in sc.fields {
            let id = f.ident();
            let what = sc.what(f);
            match &f.kind {
                Kind::Int { ty, konst } => {
                    let t = ty.tokens();
                    decode.push(quote! { let #id = #t::from_be_bytes(reader.array(#what)?); });
                    match konst {
                        Some(k) => {
                            let kv = sc.const_expr(f, *ty, *k);
                            let k64 = Literal::u64_unsuffixed(*k);
                            decode.push(quote! {
                                if #id != #kv {
                                    return Err(DecodeError::BadConst { what: #what, expected: #k64, actual: u64::from(#id) });
                                }
                            });
                            encode.push(if *ty == IntTy::U8 {
                                quote! { out.push(#kv); }
                            } else {
                                quote! { out.extend_from_slice(&#kv.to_be_bytes()); }
                            });
                        }
                        None => {
                            encode.push(if *ty == IntTy::U8 {
                                quote! { out.push(*#id); }
                            } else {
                                quote! { out.extend_from_slice(&#id.to_be_bytes()); }
                            });
                        }
                    }
                }
                Kind::Enum { name } => {
                    let e = format_ident!("{name}");
                    decode.push(quote! {
                        let #id = u8::from_be_bytes(reader.array(#what)?);
                        let #id = #e::from_value(#id).ok_or(DecodeError::UnknownEnumValue { what: #what, enum_name: #name, value: #id })?;
                    });
                    encode.push(quote! { out.push(#id.value()); });
                }
                Kind::Uuid => {
                    decode.push(quote! { let #id = uuid::Uuid::from_bytes(reader.array(#what)?); });
                    encode.push(quote! { out.extend_from_slice(#id.as_bytes()); });
                }
                Kind::Bytes(Len::Field(from)) => {
                    let len_d = sc.len_decode(from);
                    let len_e = sc.len_encode(from);
                    decode.push(quote! { let #id = reader.take(#len_d, #what)?.to_vec(); });
                    encode.push(quote! {
                        if #id.len() != #len_e {
                            return Err(EncodeError::LengthMismatch { what: #what, length_field: #from, expected: #len_e, actual: #id.len() });
                        }
                        out.extend_from_slice(#id);
                    });
                }
                Kind::Bytes(Len::Table { key }) => {
                    self.uses_table.set(true);
                    let k = ident(&snake(key));
                    decode.push(
                        quote! { let #id = reader.take(table_length(#k)?, #what)?.to_vec(); },
                    );
                    encode.push(quote! {
                        check_table_length(*#k, #id.len(), #what)?;
                        out.extend_from_slice(#id);
                    });
                }
                Kind::Rest => {
                    decode.push(quote! { let #id = reader.rest().to_vec(); });
                    encode.push(quote! { out.extend_from_slice(#id); });
                }
                Kind::Str => {
                    decode.push(quote! { let #id = reader.string_u8(#what)?; });
                    encode.push(quote! {
                        out.push(u8::try_from(#id.len()).map_err(|_| EncodeError::TooLong { what: #what, len: #id.len(), max: 255 })?);
                        out.extend_from_slice(#id.as_bytes());
                    });
                }
                Kind::List { item } => {
                    let (item_params, item_fallible) = self.item_info(item);
                    let t = format_ident!("{item}");
                    let args_d: Vec<TokenStream> =
                        item_params.iter().map(|p| sc.len_decode(p)).collect();
                    let args_e: Vec<TokenStream> =
                        item_params.iter().map(|p| sc.len_encode(p)).collect();
                    let count_what = format!("{what} count");
                    decode.push(quote! {
                        let #id = (0..u8::from_be_bytes(reader.array(#count_what)?))
                            .map(|_| #t::read(reader #(, #args_d)*))
                            .collect::<Result<Vec<_>, _>>()?;
                    });
                    let q = if item_fallible { quote!(?) } else { quote!() };
                    encode.push(quote! {
                        out.push(u8::try_from(#id.len()).map_err(|_| EncodeError::TooManyItems { what: #what, count: #id.len(), max: 255 })?);
                        for element in #id {
                            element.encode_into(out #(, #args_e)*)#q;
                        }
                    });
                }
            }
            if !f.is_const() {
                stored.push(id);
            }
        }
        FieldsCode {
            decode,
            encode,
            stored,
        }
    }

    fn param_decls(params: &[String]) -> Vec<TokenStream> {
        params
            .iter()
            .map(|p| {
                let id = ident(&snake(p));
                quote!(#id: usize)
            })
            .collect()
    }

    fn param_names(params: &[String]) -> Vec<Ident> {
        params.iter().map(|p| ident(&snake(p))).collect()
    }

    fn param_doc(params: &[String]) -> String {
        if params.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = params
                .iter()
                .map(|p| {
                    format!(
                        "\n\n`{0}`: the enclosing record's `{0}` field (a length).",
                        snake(p)
                    )
                })
                .collect();
            list.concat()
        }
    }

    /// The struct definition, associated consts and private `read` of a
    /// record, plus its `encode_into` body (the caller picks the signature).
    fn record_core(&self, r: &Record, extra_doc: &str) -> RecordCore {
        let name = format_ident!("{}", r.name);
        let doc = docs(&format!("{}{extra_doc}", r.description));
        let sc = Scope {
            owner: &r.name,
            fields: &r.fields,
            self_consts: true,
        };
        let code = self.fields_code(sc);
        let stored_defs: Vec<TokenStream> = r
            .stored()
            .map(|f| {
                let fd = Self::field_doc(f);
                let id = f.ident();
                let t = self.field_type(f);
                quote!(#fd pub #id: #t)
            })
            .collect();
        let def = if stored_defs.is_empty() {
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
                pub struct #name;
            }
        } else {
            quote! {
                #doc
                #[derive(Debug, Clone, PartialEq, Eq, Hash)]
                pub struct #name { #(#stored_defs,)* }
            }
        };
        let consts: Vec<TokenStream> = r
            .fields
            .iter()
            .filter_map(|f| match &f.kind {
                Kind::Int { ty, konst: Some(k) } => {
                    let c = f.const_ident();
                    let t = ty.tokens();
                    let v = Literal::u64_unsuffixed(*k);
                    let d = docs(&format!(
                        "The fixed value of `{}` (not stored; written on encode, checked on decode).",
                        f.rust
                    ));
                    Some(quote!(#d pub const #c: #t = #v;))
                }
                _ => None,
            })
            .collect();
        let decls = Self::param_decls(&r.params);
        let decode = &code.decode;
        let stored = &code.stored;
        let ctor = if stored.is_empty() {
            quote!(Self)
        } else {
            quote!(Self { #(#stored),* })
        };
        let reader_name = if r.fields.is_empty() {
            quote!(_reader)
        } else {
            quote!(reader)
        };
        let read = quote! {
            fn read(#reader_name: &mut Reader<'_> #(, #decls)*) -> Result<Self, DecodeError> {
                #(#decode)*
                Ok(#ctor)
            }
        };
        let encode = &code.encode;
        let bind = if stored.is_empty() {
            quote!()
        } else {
            quote!(let Self { #(#stored),* } = self;)
        };
        let ok = if r.fallible() {
            quote!(Ok(()))
        } else {
            quote!()
        };
        let encode_body = quote! { #bind #(#encode)* #ok };
        RecordCore {
            def,
            consts: quote!(#(#consts)*),
            read,
            encode_body,
        }
    }

    fn encode_ret(fallible: bool) -> TokenStream {
        if fallible {
            quote!(-> Result<(), EncodeError>)
        } else {
            quote!()
        }
    }

    /// Extra methods for records with a `dataId` key or a table-sized field.
    fn data_helpers(&self, r: &Record) -> TokenStream {
        let mut out = TokenStream::new();
        let key = r.fields.iter().find(|f| {
            f.json == "dataId"
                && matches!(
                    f.kind,
                    Kind::Int {
                        ty: IntTy::U8,
                        konst: None
                    }
                )
        });
        if let Some(key) = key {
            let k = key.ident();
            out.extend(quote! {
                /// The data-type table entry for `data_id`, if the id is known.
                pub fn data_type(&self) -> Option<DataType> {
                    DataType::from_id(self.#k)
                }
            });
        }
        let table = r
            .fields
            .iter()
            .find(|f| matches!(f.kind, Kind::Bytes(Len::Table { .. })));
        if let (Some(key), Some(table)) = (key, table) {
            let k = key.ident();
            let t = table.ident();
            let doc = docs(&format!(
                "`{}` decoded as the typed value of data type `{}`.",
                table.rust, key.rust
            ));
            out.extend(quote! {
                #doc
                pub fn value(&self) -> Result<DataValue, DecodeError> {
                    DataValue::decode_id(self.#k, &self.#t)
                }
            });
        }
        out
    }

    fn impl_from_data_value(&self, r: &Record) -> TokenStream {
        let only_key_and_table = r.fields.len() == 2
            && r.fields[0].json == "dataId"
            && matches!(
                r.fields[0].kind,
                Kind::Int {
                    ty: IntTy::U8,
                    konst: None
                }
            )
            && matches!(r.fields[1].kind, Kind::Bytes(Len::Table { .. }));
        if !only_key_and_table {
            return TokenStream::new();
        }
        let name = format_ident!("{}", r.name);
        let k = r.fields[0].ident();
        let t = r.fields[1].ident();
        quote! {
            impl From<DataValue> for #name {
                fn from(value: DataValue) -> Self {
                    Self { #k: value.data_type().id(), #t: value.encode() }
                }
            }
        }
    }

    /// A layout, struct or opcode payload: `decode_prefix`, `decode`,
    /// `encode_into`, `encode`.
    fn record(&self, r: &Record, extra_doc: &str, consts: TokenStream) -> TokenStream {
        let name = format_ident!("{}", r.name);
        let param_doc = Self::param_doc(&r.params);
        let RecordCore {
            def,
            consts: field_consts,
            read,
            encode_body,
        } = self.record_core(r, extra_doc);
        let decls = Self::param_decls(&r.params);
        let names = Self::param_names(&r.params);
        let fallible = r.fallible();
        let ret = Self::encode_ret(fallible);
        let out_name = if r.fields.is_empty() {
            quote!(_out)
        } else {
            quote!(out)
        };
        let label = r.name.clone();
        let (encode_ret, encode_tail) = if fallible {
            (
                quote!(Result<Vec<u8>, EncodeError>),
                quote! { self.encode_into(&mut out #(, #names)*)?; Ok(out) },
            )
        } else {
            (
                quote!(Vec<u8>),
                quote! { self.encode_into(&mut out #(, #names)*); out },
            )
        };
        let decode_prefix_doc = docs(&format!(
            "Decodes one `{label}` from the front of `input` and returns it with the bytes after it.{param_doc}"
        ));
        let decode_doc = docs(&format!(
            "Decodes exactly one `{label}`: trailing bytes are an error.{param_doc}"
        ));
        let encode_doc = docs(if fallible {
            "Appends the wire form to `out`. Fails (having written part of it) when a count or length does not fit or disagrees with its length field."
        } else {
            "Appends the wire form to `out`."
        });
        let helpers = self.data_helpers(r);
        let from = self.impl_from_data_value(r);
        quote! {
            #def
            impl #name {
                #consts
                #field_consts
                #decode_prefix_doc
                pub fn decode_prefix(input: &[u8] #(, #decls)*) -> Result<(Self, &[u8]), DecodeError> {
                    let mut reader = Reader::new(input);
                    let value = Self::read(&mut reader #(, #names)*)?;
                    Ok((value, reader.remaining()))
                }
                #decode_doc
                pub fn decode(input: &[u8] #(, #decls)*) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(input);
                    let value = Self::read(&mut reader #(, #names)*)?;
                    reader.finish(#label)?;
                    Ok(value)
                }
                #encode_doc
                pub fn encode_into(&self, #out_name: &mut Vec<u8> #(, #decls)*) #ret {
                    #encode_body
                }
                /// The wire form in a new `Vec`.
                pub fn encode(&self #(, #decls)*) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
                #helpers
                #read
            }
            #from
        }
    }

    // -- module parts --------------------------------------------------------

    fn module_doc(&self) -> TokenStream {
        let m = self.m;
        let mut transport = String::new();
        if let Some(serial) = &m.transport.serial_description {
            transport.push_str(&format!("\n\n# Transport\n\n- Serial: {serial}"));
            if let Some(local) = &m.transport.local_description {
                transport.push_str(&format!("\n- Local (TCP, [`DEFAULT_LOCAL_PORT`]): {local}"));
            }
        }
        let sources = m
            .sources
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "{title}: {summary}\n\n\
             Generated from `schema/uart/protocol.json` (sources: {sources}).\n\n\
             # Conventions\n\n\
             - A *body* is the unescaped content of one frame. [`encode_frame`] wraps a body \
             for the wire; [`frame_decoder`] and [`decode_frame`] unwrap it.\n\
             - Integers are big-endian.\n\
             - Decoding never panics: every read is bounds-checked and malformed input is a \
             [`DecodeError`]. Top-level `decode` functions reject trailing bytes; \
             `decode_prefix` returns them.\n\
             - `encode` is infallible for a type whose Rust form always fits the wire. A type \
             with a u8 count or length prefix, or with bytes whose length is tied to another \
             field or to the data-type table, returns `Result<_, EncodeError>` instead: more \
             than 255 items, a string over 255 bytes or a length that disagrees cannot be sent.\n\
             - A length field named by `lengthFrom` is kept in the struct and checked on \
             encode, not derived, so decode then encode gives back the same bytes even when \
             the list that would carry the length is empty.\n\
             - A `const` field is not stored: encode writes the constant, decode checks it \
             ([`DecodeError::BadConst`]).\n\
             - Unsolicited messages whose opcode is not in the table decode as \
             [`Notification::Unknown`] and re-encode verbatim, so a listener can forward every \
             `M` body.{transport}",
            title = m.title,
            summary = m.summary,
        );
        inner_docs(&text)
    }

    fn framing(&self) -> TokenStream {
        let f = &self.m.framing;
        let t = &self.m.transport;
        let start = hex(f.start);
        let end = hex(f.end);
        let escape = hex(f.escape);
        let xor = hex(f.escape_xor);
        let escaped: Vec<TokenStream> = f.escaped.iter().map(|b| hex(*b)).collect();
        let n_escaped = Literal::usize_unsuffixed(f.escaped.len());
        let max_body = Literal::usize_unsuffixed(usize::try_from(f.max_body).unwrap_or(usize::MAX));
        let timeout = Literal::u64_unsuffixed(t.module_timeout_ms);
        let host = &t.local_host;
        let port = Literal::u16_unsuffixed(t.local_port);
        let framing_doc = docs(&f.description);
        let local_doc = docs(&format!(
            "Default TCP port of the gateway's local listener.{}",
            t.local_description
                .as_deref()
                .map(|d| format!("\n\n{d}"))
                .unwrap_or_default()
        ));
        quote! {
            /// Start-of-frame byte.
            pub const FRAME_START: u8 = #start;
            /// End-of-frame byte.
            pub const FRAME_END: u8 = #end;
            /// Escape byte: the next byte is the body byte XOR [`FRAME_ESCAPE_XOR`].
            pub const FRAME_ESCAPE: u8 = #escape;
            /// Value XOR-ed into an escaped byte.
            pub const FRAME_ESCAPE_XOR: u8 = #xor;
            /// Body bytes that are always escaped.
            pub const FRAME_ESCAPED: [u8; #n_escaped] = [#(#escaped),*];
            /// Longest body accepted; longer frames are dropped.
            pub const MAX_BODY: usize = #max_body;
            /// How long the gateway waits for the module to answer a command it forwarded, in milliseconds.
            pub const MODULE_TIMEOUT_MS: u64 = #timeout;
            /// [`MODULE_TIMEOUT_MS`] as a `Duration`.
            pub const MODULE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(MODULE_TIMEOUT_MS);
            /// Default host of the gateway's local listener.
            pub const DEFAULT_LOCAL_HOST: &str = #host;
            #local_doc
            pub const DEFAULT_LOCAL_PORT: u16 = #port;

            // The codec itself is hand-written in specwire_wire; fail the
            // build if the document and that crate ever disagree.
            const _: () = assert!(
                FRAME_START == specwire_wire::frame::START
                    && FRAME_END == specwire_wire::frame::END
                    && FRAME_ESCAPE == specwire_wire::frame::ESC
                    && FRAME_ESCAPE_XOR == specwire_wire::frame::ESC_XOR
                    && MAX_BODY == specwire_wire::DEFAULT_MAX_BODY,
                "schema/uart/protocol.json framing differs from specwire_wire"
            );

            /// The framing parameters as one value, for tools that print or compare them.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct Framing {
                /// [`FRAME_START`].
                pub start: u8,
                /// [`FRAME_END`].
                pub end: u8,
                /// [`FRAME_ESCAPE`].
                pub escape: u8,
                /// [`FRAME_ESCAPE_XOR`].
                pub escape_xor: u8,
                /// [`FRAME_ESCAPED`].
                pub escaped: &'static [u8],
                /// [`MAX_BODY`].
                pub max_body: usize,
            }

            #framing_doc
            pub const FRAMING: Framing = Framing {
                start: FRAME_START,
                end: FRAME_END,
                escape: FRAME_ESCAPE,
                escape_xor: FRAME_ESCAPE_XOR,
                escaped: &FRAME_ESCAPED,
                max_body: MAX_BODY,
            };

            pub use specwire_wire::{DecoderStats, FrameDecoder, FrameError};

            /// One complete frame (start byte, escaped `body`, end byte) for `body`.
            pub fn encode_frame(body: &[u8]) -> Vec<u8> {
                specwire_wire::encoded_frame(body)
            }

            /// Appends one complete frame for `body` to `out` (batches frames in one buffer).
            pub fn encode_frame_into(body: &[u8], out: &mut Vec<u8>) {
                specwire_wire::encode_frame(body, out);
            }

            /// Decodes exactly one whole frame into its body (strict: any garbage is an error).
            pub fn decode_frame(frame: &[u8]) -> Result<Vec<u8>, FrameError> {
                specwire_wire::decode_frame(frame)
            }

            /// A streaming frame decoder limited to [`MAX_BODY`].
            pub fn frame_decoder() -> FrameDecoder {
                FrameDecoder::with_max_body(MAX_BODY)
            }
        }
    }

    /// The data-type table lookups the codecs call, when they call them.
    fn table_helpers(&self) -> TokenStream {
        let table = self.uses_table.get().then(|| {
            quote! {
                /// The data-type table's length for `id`.
                fn table_length(id: u8) -> Result<usize, DecodeError> {
                    DataType::from_id(id).map(DataType::length).ok_or(DecodeError::UnknownDataType(id))
                }

                /// Checks `len` against the data-type table's length for `data_id`.
                fn check_table_length(data_id: u8, len: usize, what: &'static str) -> Result<(), EncodeError> {
                    let data_type = DataType::from_id(data_id).ok_or(EncodeError::UnknownDataType(data_id))?;
                    if len == data_type.length() {
                        Ok(())
                    } else {
                        Err(EncodeError::DataLengthMismatch { what, data_id, expected: data_type.length(), actual: len })
                    }
                }
            }
        });
        quote!(#table)
    }

    fn enums(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for e in &self.m.enums {
            let name = format_ident!("{}", e.name);
            let ename = &e.name;
            let n = Literal::usize_unsuffixed(e.values.len());
            let variants: Vec<Ident> = e
                .values
                .iter()
                .map(|v| format_ident!("{}", v.name))
                .collect();
            let values: Vec<TokenStream> = e.values.iter().map(|v| byte_lit(v.value)).collect();
            let names: Vec<&str> = e.values.iter().map(|v| v.name.as_str()).collect();
            let defs = e.values.iter().map(|v| {
                let d = docs(&v.description);
                let id = format_ident!("{}", v.name);
                let val = byte_lit(v.value);
                quote!(#d #id = #val)
            });
            let chars = e.values.iter().any(|v| v.ch.is_some()).then(|| {
                let arms = e.values.iter().map(|v| {
                    let id = format_ident!("{}", v.name);
                    match v.ch {
                        Some(c) => quote!(Self::#id => Some(#c)),
                        None => quote!(Self::#id => None),
                    }
                });
                quote! {
                    /// The letter the document gives this value, if any.
                    pub const fn as_char(self) -> Option<char> {
                        match self { #(#arms,)* }
                    }
                }
            });
            out.extend(quote! {
                #[doc = concat!("The `", #ename, "` enum (one byte on the wire).")]
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
                #[repr(u8)]
                pub enum #name { #(#defs,)* }

                impl #name {
                    /// Every value, in document order.
                    pub const ALL: [Self; #n] = [#(Self::#variants),*];

                    /// The wire byte.
                    pub const fn value(self) -> u8 {
                        self as u8
                    }

                    /// The value for a wire byte, if listed.
                    pub const fn from_value(value: u8) -> Option<Self> {
                        match value {
                            #(#values => Some(Self::#variants),)*
                            _ => None,
                        }
                    }

                    /// The value's name.
                    pub const fn name(self) -> &'static str {
                        match self { #(Self::#variants => #names,)* }
                    }

                    #chars
                }

                impl From<#name> for u8 {
                    fn from(value: #name) -> u8 {
                        value.value()
                    }
                }

                impl TryFrom<u8> for #name {
                    type Error = DecodeError;

                    fn try_from(value: u8) -> Result<Self, DecodeError> {
                        Self::from_value(value).ok_or(DecodeError::UnknownEnumValue { what: #ename, enum_name: #ename, value })
                    }
                }
            });
        }
        out
    }

    fn data_types(&self) -> TokenStream {
        let dts = &self.m.data_types;
        let n = Literal::usize_unsuffixed(dts.len());
        let variants: Vec<Ident> = dts.iter().map(|d| format_ident!("{}", d.variant)).collect();
        let ids: Vec<Literal> = dts.iter().map(|d| Literal::u8_unsuffixed(d.id)).collect();
        let lengths: Vec<Literal> = dts
            .iter()
            .map(|d| Literal::usize_unsuffixed(d.length))
            .collect();
        let names: Vec<&str> = dts.iter().map(|d| d.name.as_str()).collect();
        let descriptions: Vec<&str> = dts.iter().map(|d| d.description.as_str()).collect();
        let units: Vec<TokenStream> = dts
            .iter()
            .map(|d| match &d.unit {
                Some(u) => quote!(Some(#u)),
                None => quote!(None),
            })
            .collect();
        let type_defs = dts.iter().map(|d| {
            let doc = docs(&format!(
                "{} Id {}, {} bytes{}.",
                d.description,
                d.id,
                d.length,
                d.unit
                    .as_deref()
                    .map(|u| format!(", unit {u}"))
                    .unwrap_or_default()
            ));
            let v = format_ident!("{}", d.variant);
            quote!(#doc #v)
        });
        let value_defs = dts.iter().map(|d| {
            let doc = docs(&format!(
                "{}{}",
                d.description,
                d.unit
                    .as_deref()
                    .map(|u| format!(" Unit: {u}."))
                    .unwrap_or_default()
            ));
            let v = format_ident!("{}", d.variant);
            let t = d.value.tokens(d.length);
            quote!(#doc #v(#t))
        });
        let decode_arms = dts.iter().map(|d| {
            let v = format_ident!("{}", d.variant);
            let what = format!("DataValue::{}", d.variant);
            match d.value {
                ValueType::Bytes => quote!(DataType::#v => Self::#v(reader.array(#what)?)),
                other => {
                    let t = other.tokens(d.length);
                    quote!(DataType::#v => Self::#v(#t::from_be_bytes(reader.array(#what)?)))
                }
            }
        });
        let encode_arms = dts.iter().map(|d| {
            let v = format_ident!("{}", d.variant);
            match d.value {
                ValueType::Bytes => quote!(Self::#v(value) => out.extend_from_slice(value)),
                _ => quote!(Self::#v(value) => out.extend_from_slice(&value.to_be_bytes())),
            }
        });
        quote! {
            /// The data-type table: what a node can report, with the byte length of
            /// each value.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub enum DataType { #(#type_defs,)* }

            impl DataType {
                /// Every data type, in table order.
                pub const ALL: [Self; #n] = [#(Self::#variants),*];

                /// The data id on the wire.
                pub const fn id(self) -> u8 {
                    match self { #(Self::#variants => #ids,)* }
                }

                /// The data type with this id, if the table lists it.
                pub const fn from_id(id: u8) -> Option<Self> {
                    match id {
                        #(#ids => Some(Self::#variants),)*
                        _ => None,
                    }
                }

                /// Length in bytes of one value.
                pub const fn length(self) -> usize {
                    match self { #(Self::#variants => #lengths,)* }
                }

                /// The table's name (`temperature`).
                pub const fn name(self) -> &'static str {
                    match self { #(Self::#variants => #names,)* }
                }

                /// The unit of one step of the value, if the table gives one.
                pub const fn unit(self) -> Option<&'static str> {
                    match self { #(Self::#variants => #units,)* }
                }

                /// The table's description.
                pub const fn description(self) -> &'static str {
                    match self { #(Self::#variants => #descriptions,)* }
                }
            }

            /// One value of a data type, typed by the table's `valueType`
            /// (big-endian on the wire).
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum DataValue { #(#value_defs,)* }

            impl DataValue {
                /// Which data type this is a value of.
                pub const fn data_type(&self) -> DataType {
                    match self { #(Self::#variants(_) => DataType::#variants,)* }
                }

                /// Decodes a value of `data_type` from exactly `bytes`.
                pub fn decode(data_type: DataType, bytes: &[u8]) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(bytes);
                    let value = match data_type { #(#decode_arms,)* };
                    reader.finish("DataValue")?;
                    Ok(value)
                }

                /// Decodes a value of the data type with id `data_id` from exactly `bytes`.
                pub fn decode_id(data_id: u8, bytes: &[u8]) -> Result<Self, DecodeError> {
                    let data_type = DataType::from_id(data_id).ok_or(DecodeError::UnknownDataType(data_id))?;
                    Self::decode(data_type, bytes)
                }

                /// Appends the value's bytes (exactly [`DataType::length`] of them) to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) {
                    match self { #(#encode_arms,)* }
                }

                /// The value's bytes in a new `Vec`.
                pub fn encode(&self) -> Vec<u8> {
                    let mut out = Vec::with_capacity(self.data_type().length());
                    self.encode_into(&mut out);
                    out
                }
            }
        }
    }

    fn structs(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for s in &self.m.structs {
            out.extend(self.record(s, "", TokenStream::new()));
        }
        for l in &self.m.layouts {
            let users: Vec<String> = self
                .m
                .commands
                .iter()
                .filter(|c| matches!(&c.reply, ReplyRef::Layout(n) if n == &l.name))
                .map(|c| format!("`{}`", c.name))
                .collect();
            let extra = if users.is_empty() {
                "\n\nA reply layout.".to_owned()
            } else {
                format!("\n\nThe success result of {}.", users.join(", "))
            };
            out.extend(self.record(l, &extra, TokenStream::new()));
        }
        out
    }

    fn commands(&self) -> TokenStream {
        let cmds = &self.m.commands;
        let fallible = cmds.iter().any(|c| c.record.fallible());
        let mut out = TokenStream::new();
        for c in cmds {
            let r = &c.record;
            let name = format_ident!("{}", r.name);
            let wire = Literal::byte_string(&c.wire);
            let by = if c.handled_by_gateway {
                "the gateway"
            } else {
                "the module"
            };
            let reply = match &c.reply {
                ReplyRef::Empty => "`S` alone".to_owned(),
                ReplyRef::Bytes => "`S` then opaque bytes".to_owned(),
                ReplyRef::Json => "`S` then UTF-8 JSON".to_owned(),
                ReplyRef::Layout(l) => format!("`S` then a [`{l}`]"),
            };
            let extra = format!(
                "\n\nWire name `{}`, handled by {by}; success reply: {reply}.",
                c.name
            );
            let RecordCore {
                def,
                consts,
                read,
                encode_body,
            } = self.record_core(r, &extra);
            let own_fallible = r.fallible();
            let ret = Self::encode_ret(own_fallible);
            let outer_ret = Self::encode_ret(fallible);
            let q = if own_fallible { quote!(?) } else { quote!() };
            let ok = if fallible { quote!(Ok(())) } else { quote!() };
            let (encode_ret, encode_tail) = if fallible {
                (
                    quote!(Result<Vec<u8>, EncodeError>),
                    quote! { self.encode_into(&mut out)?; Ok(out) },
                )
            } else {
                (quote!(Vec<u8>), quote! { self.encode_into(&mut out); out })
            };
            let out_name = if r.fields.is_empty() {
                quote!(_out)
            } else {
                quote!(out)
            };
            let what = format!("{} arguments", r.name);
            let helpers = self.data_helpers(r);
            out.extend(quote! {
                #def
                impl #name {
                    /// The command's five ASCII bytes.
                    pub const NAME: [u8; 5] = *#wire;
                    #consts

                    /// Decodes the arguments (the body after the five-byte name).
                    pub fn decode_args(args: &[u8]) -> Result<Self, DecodeError> {
                        let mut reader = Reader::new(args);
                        let value = Self::read(&mut reader)?;
                        reader.finish(#what)?;
                        Ok(value)
                    }

                    /// Appends the arguments (without the name) to `out`.
                    pub fn encode_args_into(&self, #out_name: &mut Vec<u8>) #ret {
                        #encode_body
                    }

                    /// Appends the whole body (name and arguments) to `out`.
                    pub fn encode_into(&self, out: &mut Vec<u8>) #outer_ret {
                        out.extend_from_slice(&Self::NAME);
                        self.encode_args_into(out)#q;
                        #ok
                    }

                    /// The whole body in a new `Vec`.
                    pub fn encode(&self) -> #encode_ret {
                        let mut out = Vec::new();
                        #encode_tail
                    }

                    #helpers
                    #read
                }

                impl From<#name> for Command {
                    fn from(command: #name) -> Self {
                        Self::#name(command)
                    }
                }
            });
        }

        let idents: Vec<Ident> = cmds
            .iter()
            .map(|c| format_ident!("{}", c.record.name))
            .collect();
        let ident_strs: Vec<&str> = cmds.iter().map(|c| c.record.name.as_str()).collect();
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        let n = Literal::usize_unsuffixed(cmds.len());
        let variant_docs = cmds
            .iter()
            .map(|c| docs(&format!("`{}`: {}", c.name, c.record.description)));
        let handled: Vec<TokenStream> = cmds
            .iter()
            .map(|c| {
                if c.handled_by_gateway {
                    quote!(HandledBy::Gateway)
                } else {
                    quote!(HandledBy::Module)
                }
            })
            .collect();
        let shapes: Vec<TokenStream> = cmds
            .iter()
            .map(|c| match &c.reply {
                ReplyRef::Empty => quote!(SuccessShape::Empty),
                ReplyRef::Bytes => quote!(SuccessShape::Bytes),
                ReplyRef::Json => quote!(SuccessShape::Json),
                ReplyRef::Layout(l) => {
                    let l = format_ident!("{l}");
                    quote!(SuccessShape::#l)
                }
            })
            .collect();
        let encode_arms: Vec<TokenStream> = idents
            .iter()
            .map(|i| quote!(Self::#i(command) => command.encode_into(out)))
            .collect();
        let (encode_ret, encode_tail) = if fallible {
            (
                quote!(Result<Vec<u8>, EncodeError>),
                quote! { self.encode_into(&mut out)?; Ok(out) },
            )
        } else {
            (quote!(Vec<u8>), quote! { self.encode_into(&mut out); out })
        };
        let outer_ret = Self::encode_ret(fallible);
        out.extend(quote! {
            /// Who answers a command.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum HandledBy {
                /// The gateway forwards it over the UART; the root module answers.
                Module,
                /// The gateway answers it from its own state.
                Gateway,
            }

            /// A client-to-gateway (or gateway-to-module) command: five ASCII bytes,
            /// then the arguments.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Command { #(#variant_docs #idents(#idents),)* }

            impl Command {
                /// Every command name, in document order.
                pub const NAMES: [[u8; 5]; #n] = [#(#idents::NAME),*];

                /// Whether `name` is exactly a known five-byte command name.
                pub fn is_known_name(name: &[u8]) -> bool {
                    Self::NAMES.iter().any(|known| known.as_slice() == name)
                }

                /// The five-byte name as text (`"SEND-"`).
                pub fn name(&self) -> &'static str {
                    match self { #(Self::#idents(_) => #names,)* }
                }

                /// The five-byte name.
                pub fn name_bytes(&self) -> [u8; 5] {
                    match self { #(Self::#idents(_) => #idents::NAME,)* }
                }

                /// The Rust name of the command (`"Send"`).
                pub fn ident(&self) -> &'static str {
                    match self { #(Self::#idents(_) => #ident_strs,)* }
                }

                /// Who answers this command.
                pub fn handled_by(&self) -> HandledBy {
                    match self { #(Self::#idents(_) => #handled,)* }
                }

                /// How the result bytes of a success reply to this command are laid out.
                pub fn success_shape(&self) -> SuccessShape {
                    match self { #(Self::#idents(_) => #shapes,)* }
                }

                /// Decodes the result bytes of a success reply to this command.
                pub fn decode_success(&self, result: &[u8]) -> Result<SuccessReply, DecodeError> {
                    self.success_shape().decode(result)
                }

                /// Decodes a command body: the five-byte name, then its arguments.
                pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                    let Some((name, args)) = body.split_first_chunk::<5>() else {
                        return Err(if body.is_empty() {
                            DecodeError::Empty
                        } else {
                            DecodeError::Truncated { what: "command name", needed: 5, available: body.len() }
                        });
                    };
                    match *name {
                        #(#idents::NAME => #idents::decode_args(args).map(Self::#idents),)*
                        _ => Err(DecodeError::UnknownCommand(*name)),
                    }
                }

                /// Appends the body (name and arguments) to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #outer_ret {
                    match self { #(#encode_arms,)* }
                }

                /// The body in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        });
        out
    }

    fn success(&self) -> TokenStream {
        let layouts = &self.m.layouts;
        let names: Vec<Ident> = layouts
            .iter()
            .map(|l| format_ident!("{}", l.name))
            .collect();
        let shape_docs: Vec<TokenStream> = layouts
            .iter()
            .map(|l| docs(&format!("A [`{}`]: {}", l.name, l.description)))
            .collect();
        let encode_arms = layouts.iter().map(|l| {
            let n = format_ident!("{}", l.name);
            if l.fallible() {
                quote!(Self::#n(value) => value.encode())
            } else {
                quote!(Self::#n(value) => Ok(value.encode()))
            }
        });
        quote! {
            /// How the result bytes of a success reply are laid out, by command.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum SuccessShape {
                /// No result bytes.
                Empty,
                /// Opaque bytes (the module's own).
                Bytes,
                /// UTF-8 JSON.
                Json,
                #(#shape_docs #names,)*
            }

            impl SuccessShape {
                /// Decodes result bytes of this shape. Trailing bytes are an error.
                pub fn decode(self, result: &[u8]) -> Result<SuccessReply, DecodeError> {
                    match self {
                        Self::Empty => {
                            if result.is_empty() {
                                Ok(SuccessReply::Empty)
                            } else {
                                Err(DecodeError::TrailingBytes { what: "empty success result", count: result.len() })
                            }
                        }
                        Self::Bytes => Ok(SuccessReply::Bytes(result.to_vec())),
                        Self::Json => serde_json::from_slice(result)
                            .map(SuccessReply::Json)
                            .map_err(|e| DecodeError::InvalidJson(e.to_string())),
                        #(Self::#names => #names::decode(result).map(SuccessReply::#names),)*
                    }
                }
            }

            /// The typed result of a success reply (see [`Command::decode_success`]).
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub enum SuccessReply {
                /// No result bytes.
                Empty,
                /// Opaque bytes.
                Bytes(Vec<u8>),
                /// A JSON document.
                Json(serde_json::Value),
                #(#shape_docs #names(#names),)*
            }

            impl SuccessReply {
                /// The shape of this result.
                pub fn shape(&self) -> SuccessShape {
                    match self {
                        Self::Empty => SuccessShape::Empty,
                        Self::Bytes(_) => SuccessShape::Bytes,
                        Self::Json(_) => SuccessShape::Json,
                        #(Self::#names(_) => SuccessShape::#names,)*
                    }
                }

                /// The result bytes (what follows the success kind byte). JSON is
                /// written compactly, so it need not match the bytes it was decoded from.
                pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
                    match self {
                        Self::Empty => Ok(Vec::new()),
                        Self::Bytes(bytes) => Ok(bytes.clone()),
                        Self::Json(value) => Ok(value.to_string().into_bytes()),
                        #(#encode_arms,)*
                    }
                }
            }
        }
    }

    fn notifications(&self) -> TokenStream {
        let ops = &self.m.opcodes;
        let mut out = TokenStream::new();
        for o in ops {
            let code = hex(o.code);
            let name = &o.name;
            let consts = quote! {
                /// The opcode byte.
                pub const OPCODE: u8 = #code;
                /// The opcode's name in the table.
                pub const NAME: &str = #name;
            };
            let extra = format!("\n\nPayload of opcode {:#04x} `{}`.", o.code, o.name);
            out.extend(self.record(&o.record, &extra, consts));
            let id = format_ident!("{}", o.record.name);
            out.extend(quote! {
                impl From<#id> for Notification {
                    fn from(payload: #id) -> Self {
                        Self::#id(payload)
                    }
                }
            });
        }
        let idents: Vec<Ident> = ops
            .iter()
            .map(|o| format_ident!("{}", o.record.name))
            .collect();
        let ident_strs: Vec<&str> = ops.iter().map(|o| o.record.name.as_str()).collect();
        let variant_docs = ops.iter().map(|o| {
            docs(&format!(
                "Opcode {:#04x} `{}`: {}",
                o.code, o.name, o.record.description
            ))
        });
        let fallible = ops.iter().any(|o| o.record.fallible());
        let arms: Vec<TokenStream> = ops
            .iter()
            .map(|o| {
                let i = format_ident!("{}", o.record.name);
                if o.record.fallible() || !fallible {
                    quote!(Self::#i(payload) => payload.encode_into(out))
                } else {
                    quote!(Self::#i(payload) => { payload.encode_into(out); Ok(()) })
                }
            })
            .collect();
        let unknown_arm = if fallible {
            quote!(Self::Unknown { payload, .. } => { out.extend_from_slice(payload); Ok(()) })
        } else {
            quote!(Self::Unknown { payload, .. } => out.extend_from_slice(payload))
        };
        let ret = Self::encode_ret(fallible);

        // The message kind's fields before opcode + payload.
        let head: &[Field] = self
            .m
            .reply_kinds
            .iter()
            .find_map(|k| match &k.shape {
                KindShape::Message(head) => Some(head.as_slice()),
                _ => None,
            })
            .unwrap_or(&[]);
        let sc = Scope {
            owner: "UnsolicitedMessage",
            fields: head,
            self_consts: false,
        };
        let code = self.fields_code(sc);
        let head_defs = head.iter().filter(|f| !f.is_const()).map(|f| {
            let d = Self::field_doc(f);
            let id = f.ident();
            let t = self.field_type(f);
            quote!(#d pub #id: #t)
        });
        let decode = &code.decode;
        let encode = &code.encode;
        let stored = &code.stored;
        let msg_fallible = fallible || head.iter().any(Field::fallible);
        let msg_ret = Self::encode_ret(msg_fallible);
        let q = if fallible { quote!(?) } else { quote!() };
        let ok = if msg_fallible {
            quote!(Ok(()))
        } else {
            quote!()
        };
        let (encode_ret, encode_tail) = if msg_fallible {
            (
                quote!(Result<Vec<u8>, EncodeError>),
                quote! { self.encode_into(&mut out)?; Ok(out) },
            )
        } else {
            (quote!(Vec<u8>), quote! { self.encode_into(&mut out); out })
        };
        out.extend(quote! {
            /// The payload of an unsolicited message, typed by the opcode table.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Notification {
                #(#variant_docs #idents(#idents),)*
                /// An opcode the table does not list, kept verbatim so that a
                /// listener still receives every message.
                Unknown {
                    /// The opcode byte.
                    opcode: u8,
                    /// The payload bytes.
                    payload: Vec<u8>,
                },
            }

            impl Notification {
                /// The opcode byte.
                pub fn opcode(&self) -> u8 {
                    match self {
                        #(Self::#idents(_) => #idents::OPCODE,)*
                        Self::Unknown { opcode, .. } => *opcode,
                    }
                }

                /// The opcode's name in the table, or `None` for an unlisted opcode.
                pub fn name(&self) -> Option<&'static str> {
                    match self {
                        #(Self::#idents(_) => Some(#idents::NAME),)*
                        Self::Unknown { .. } => None,
                    }
                }

                /// The Rust name (`"DataUpdate"`), or `"Unknown"`.
                pub fn ident(&self) -> &'static str {
                    match self {
                        #(Self::#idents(_) => #ident_strs,)*
                        Self::Unknown { .. } => "Unknown",
                    }
                }

                /// A short label: the Rust name, or `Unknown(0x..)` with the opcode.
                pub fn label(&self) -> String {
                    match self {
                        Self::Unknown { opcode, .. } => format!("Unknown({opcode:#04x})"),
                        other => other.ident().to_owned(),
                    }
                }

                /// Decodes `payload` by `opcode`. A listed opcode must have a
                /// well-formed payload; an unlisted one is kept as [`Self::Unknown`].
                pub fn decode(opcode: u8, payload: &[u8]) -> Result<Self, DecodeError> {
                    match opcode {
                        #(#idents::OPCODE => #idents::decode(payload).map(Self::#idents),)*
                        _ => Ok(Self::Unknown { opcode, payload: payload.to_vec() }),
                    }
                }

                /// Appends the payload (without the opcode) to `out`.
                pub fn encode_payload_into(&self, out: &mut Vec<u8>) #ret {
                    match self {
                        #(#arms,)*
                        #unknown_arm
                    }
                }
            }

            /// An unsolicited message from the network (the `M` reply kind).
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub struct UnsolicitedMessage {
                #(#head_defs,)*
                /// The opcode and payload.
                pub body: Notification,
            }

            impl UnsolicitedMessage {
                /// Decodes the bytes after the kind byte.
                pub fn decode(input: &[u8]) -> Result<Self, DecodeError> {
                    let mut reader = Reader::new(input);
                    #(#decode)*
                    let opcode = u8::from_be_bytes(reader.array("UnsolicitedMessage.opcode")?);
                    let body = Notification::decode(opcode, reader.rest())?;
                    Ok(Self { #(#stored,)* body })
                }

                /// Appends the bytes after the kind byte to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #msg_ret {
                    let Self { #(#stored,)* body } = self;
                    #(#encode)*
                    out.push(body.opcode());
                    body.encode_payload_into(out)#q;
                    #ok
                }

                /// The bytes after the kind byte in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        });
        out
    }

    fn replies(&self) -> TokenStream {
        let kinds = &self.m.reply_kinds;
        let mut variants = Vec::new();
        let mut consts = Vec::new();
        let mut decode_arms = Vec::new();
        let mut encode_arms = Vec::new();
        let mut byte_arms = Vec::new();
        let mut label_arms = Vec::new();
        let mut fallible = false;
        for k in kinds {
            let v = format_ident!("{}", k.name);
            let c = format_ident!("{}", screaming(&k.name));
            let b = byte_lit(k.byte);
            let cdoc = docs(&format!("Kind byte of [`Reply::{}`] (`{}`).", k.name, k.ch));
            consts.push(quote!(#cdoc pub const #c: u8 = #b;));
            let vdoc = docs(&format!("`{}`: {}", k.ch, k.description));
            let ch = k.ch.to_string();
            byte_arms.push(match &k.shape {
                KindShape::Unit => quote!(Self::#v => Self::#c),
                KindShape::Rest | KindShape::Message(_) => quote!(Self::#v(_) => Self::#c),
                KindShape::Fields(_) => quote!(Self::#v { .. } => Self::#c),
            });
            match &k.shape {
                KindShape::Unit => {
                    variants.push(quote!(#vdoc #v));
                    let what = format!("{} reply", k.name);
                    decode_arms.push(quote! {
                        Self::#c => {
                            Reader::new(rest).finish(#what)?;
                            Ok(Self::#v)
                        }
                    });
                    encode_arms.push(quote!(Self::#v => out.push(Self::#c)));
                    label_arms.push(quote!(Self::#v => #ch.to_owned()));
                }
                KindShape::Rest => {
                    variants.push(quote!(#vdoc #v(Vec<u8>)));
                    decode_arms.push(quote!(Self::#c => Ok(Self::#v(rest.to_vec()))));
                    encode_arms.push(quote! {
                        Self::#v(bytes) => {
                            out.push(Self::#c);
                            out.extend_from_slice(bytes);
                        }
                    });
                    label_arms.push(quote!(Self::#v(_) => #ch.to_owned()));
                }
                KindShape::Message(head) => {
                    variants.push(quote!(#vdoc #v(UnsolicitedMessage)));
                    decode_arms
                        .push(quote!(Self::#c => UnsolicitedMessage::decode(rest).map(Self::#v)));
                    let msg_fallible = self.m.opcodes.iter().any(|o| o.record.fallible())
                        || head.iter().any(Field::fallible);
                    fallible |= msg_fallible;
                    let q = if msg_fallible { quote!(?) } else { quote!() };
                    encode_arms.push(quote! {
                        Self::#v(message) => {
                            out.push(Self::#c);
                            message.encode_into(out)#q;
                        }
                    });
                    let fmt = format!("{ch}/{{}}");
                    label_arms
                        .push(quote!(Self::#v(message) => format!(#fmt, message.body.label())));
                }
                KindShape::Fields(fields) => {
                    fallible |= fields.iter().any(Field::fallible);
                    let defs = fields.iter().filter(|f| !f.is_const()).map(|f| {
                        let d = Self::field_doc(f);
                        let id = f.ident();
                        let t = self.field_type(f);
                        quote!(#d #id: #t)
                    });
                    variants.push(quote!(#vdoc #v { #(#defs,)* }));
                    let sc = Scope {
                        owner: &k.name,
                        fields,
                        self_consts: false,
                    };
                    let code = self.fields_code(sc);
                    let decode = &code.decode;
                    let encode = &code.encode;
                    let stored = &code.stored;
                    let what = format!("{} reply", k.name);
                    decode_arms.push(quote! {
                        Self::#c => {
                            let mut reader = Reader::new(rest);
                            #(#decode)*
                            reader.finish(#what)?;
                            Ok(Self::#v { #(#stored),* })
                        }
                    });
                    encode_arms.push(quote! {
                        Self::#v { #(#stored),* } => {
                            out.push(Self::#c);
                            #(#encode)*
                        }
                    });
                    label_arms.push(quote!(Self::#v { .. } => #ch.to_owned()));
                }
            }
        }
        let bytes: Vec<Ident> = kinds
            .iter()
            .map(|k| format_ident!("{}", screaming(&k.name)))
            .collect();
        let n = Literal::usize_unsuffixed(kinds.len());
        let name_arms = kinds.iter().map(|k| {
            let v = format_ident!("{}", k.name);
            let s = &k.name;
            match &k.shape {
                KindShape::Unit => quote!(Self::#v => #s),
                KindShape::Rest | KindShape::Message(_) => quote!(Self::#v(_) => #s),
                KindShape::Fields(_) => quote!(Self::#v { .. } => #s),
            }
        });
        let ret = Self::encode_ret(fallible);
        let ok = if fallible { quote!(Ok(())) } else { quote!() };
        let (encode_ret, encode_tail) = if fallible {
            (
                quote!(Result<Vec<u8>, EncodeError>),
                quote! { self.encode_into(&mut out)?; Ok(out) },
            )
        } else {
            (quote!(Vec<u8>), quote! { self.encode_into(&mut out); out })
        };
        quote! {
            /// A module-to-gateway or gateway-to-client body: one kind byte, then
            /// the kind's fields.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Reply { #(#variants,)* }

            impl Reply {
                #(#consts)*
                /// Every kind byte, in document order.
                pub const KIND_BYTES: [u8; #n] = [#(Self::#bytes),*];

                /// Whether `byte` is a known kind byte.
                pub fn is_kind_byte(byte: u8) -> bool {
                    Self::KIND_BYTES.contains(&byte)
                }

                /// The kind byte.
                pub fn kind_byte(&self) -> u8 {
                    match self { #(#byte_arms,)* }
                }

                /// The kind's name (`"Success"`).
                pub fn kind_name(&self) -> &'static str {
                    match self { #(#name_arms,)* }
                }

                /// A short label: the kind letter, and for messages the
                /// notification (`"M/DataUpdate"`).
                pub fn label(&self) -> String {
                    match self { #(#label_arms,)* }
                }

                /// Decodes a reply body.
                pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                    let Some((&kind, rest)) = body.split_first() else {
                        return Err(DecodeError::Empty);
                    };
                    match kind {
                        #(#decode_arms,)*
                        _ => Err(DecodeError::UnknownReplyKind(kind)),
                    }
                }

                /// Appends the body to `out`.
                pub fn encode_into(&self, out: &mut Vec<u8>) #ret {
                    match self { #(#encode_arms,)* }
                    #ok
                }

                /// The body in a new `Vec`.
                pub fn encode(&self) -> #encode_ret {
                    let mut out = Vec::new();
                    #encode_tail
                }
            }
        }
    }

    fn body(&self) -> TokenStream {
        let cmd_fallible = self.m.commands.iter().any(|c| c.record.fallible());
        let reply_fallible = self.m.reply_kinds.iter().any(|k| match &k.shape {
            KindShape::Unit | KindShape::Rest => false,
            KindShape::Message(head) => {
                self.m.opcodes.iter().any(|o| o.record.fallible())
                    || head.iter().any(Field::fallible)
            }
            KindShape::Fields(fields) => fields.iter().any(Field::fallible),
        });
        let cmd = if cmd_fallible {
            quote!(command.encode())
        } else {
            quote!(Ok(command.encode()))
        };
        let reply = if reply_fallible {
            quote!(reply.encode())
        } else {
            quote!(Ok(reply.encode()))
        };
        quote! {
            /// Any uart body: a command or a reply.
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub enum Body {
                /// A command (five-byte name first).
                Command(Command),
                /// A reply (kind byte first).
                Reply(Reply),
            }

            impl Body {
                /// What the body is: `Command/SEND-`, `Reply/S`, `Reply/M/DataUpdate`.
                pub fn kind_name(&self) -> String {
                    match self {
                        Self::Command(command) => format!("Command/{}", command.name()),
                        Self::Reply(reply) => format!("Reply/{}", reply.label()),
                    }
                }

                /// The body bytes.
                pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
                    match self {
                        Self::Command(command) => #cmd,
                        Self::Reply(reply) => #reply,
                    }
                }
            }

            /// Decodes any body: a command when the first five bytes are a known
            /// command name, else a reply when the first byte is a kind byte.
            ///
            /// Command names win: an unknown five-byte name that starts with a
            /// kind byte (`SENDX...`) decodes as a reply of that kind.
            pub fn decode_any(body: &[u8]) -> Result<Body, DecodeError> {
                let Some(&first) = body.first() else {
                    return Err(DecodeError::Empty);
                };
                if body.get(..5).is_some_and(Command::is_known_name) {
                    return Command::decode(body).map(Body::Command);
                }
                if Reply::is_kind_byte(first) {
                    return Reply::decode(body).map(Body::Reply);
                }
                Err(DecodeError::Unrecognized { first, len: body.len() })
            }

            /// [`decode_any`], then [`Body::kind_name`]: `"Command/SEND-"`, `"Reply/M/NodeConnected"`.
            pub fn describe_body(body: &[u8]) -> Result<String, DecodeError> {
                decode_any(body).map(|body| body.kind_name())
            }
        }
    }

    fn emit(&self) -> TokenStream {
        let module_doc = self.module_doc();
        let framing = self.framing();
        let imports = quote! {
            use specwire_wire::binary::Reader;
            pub use specwire_wire::binary::{DecodeError, EncodeError};
        };
        let enums = self.enums();
        let data = self.data_types();
        let structs = self.structs();
        let commands = self.commands();
        let success = self.success();
        let notifications = self.notifications();
        let replies = self.replies();
        let body = self.body();
        // Last: it emits only the helpers the parts above used.
        let table = self.table_helpers();
        quote! {
            #module_doc
            #imports
            #framing
            #enums
            #data
            #structs
            #commands
            #success
            #notifications
            #replies
            #body
            #table
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/uart/protocol.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("read protocol.json"))
            .expect("parse protocol.json")
    }

    fn render(doc: &Value) -> Result<String> {
        let tokens = generate(doc)?;
        let file: syn::File = syn::parse2(tokens)?;
        Ok(prettyplease::unparse(&file))
    }

    fn error_of(doc: &Value) -> String {
        format!("{:#}", generate(doc).expect_err("generate should fail"))
    }

    #[test]
    fn generates_parseable_deterministic_code() {
        let doc = protocol();
        let a = render(&doc).expect("generate");
        let b = render(&doc).expect("generate");
        assert_eq!(a, b);
        for needle in [
            "pub enum Command",
            "pub struct Send",
            "pub enum DataValue",
            "pub fn decode_any",
            "pub enum Notification",
        ] {
            assert!(a.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn case_helpers() {
        assert_eq!(snake("dataId"), "data_id");
        assert_eq!(pascal("air_quality"), "AirQuality");
        assert_eq!(screaming("NodeState"), "NODE_STATE");
        assert_eq!(ident("type").to_string(), "r#type");
    }

    #[test]
    fn rejects_unknown_item_struct() {
        let mut doc = protocol();
        doc["replyLayouts"][0]["fields"][0]["item"] = "Nope".into();
        let e = error_of(&doc);
        assert!(
            e.contains("replyLayouts[0] `NodeList`") && e.contains("unknown struct `Nope`"),
            "{e}"
        );
    }

    #[test]
    fn rejects_unknown_enum_and_layout() {
        let mut doc = protocol();
        doc["commands"][7]["fields"][0]["enum"] = "Nope".into();
        let e = error_of(&doc);
        assert!(
            e.contains("commands[7] `NSTAT`") && e.contains("unknown enum `Nope`"),
            "{e}"
        );

        let mut doc = protocol();
        doc["commands"][7]["reply"] = "Nope".into();
        let e = error_of(&doc);
        assert!(
            e.contains("commands[7] `NSTAT`") && e.contains("reply `Nope`"),
            "{e}"
        );
    }

    #[test]
    fn rejects_missing_length_field() {
        let mut doc = protocol();
        doc["replyLayouts"][1]["fields"][1]["name"] = "size".into();
        let e = error_of(&doc);
        assert!(
            e.contains("replyLayouts[1] `DataValues`") && e.contains("lengthFrom `length`"),
            "{e}"
        );

        let mut doc = protocol();
        doc["structs"][1]["fields"][1]["lengthFrom"] = "addr2".into();
        doc["replyLayouts"][1]["fields"][1]["name"] = "addr2".into();
        // Now NodeValue takes `addr2` from DataValues, which has it: fine.
        assert!(generate(&doc).is_ok());
    }

    #[test]
    fn rejects_unsupplied_length_and_misplaced_rest() {
        let mut doc = protocol();
        // Nothing lists NodeValue any more, so its `length` comes from nowhere.
        doc["replyLayouts"][1]["fields"]
            .as_array_mut()
            .expect("fields")
            .pop();
        let e = error_of(&doc);
        assert!(
            e.contains("structs[1] `NodeValue`") && e.contains("lengthFrom `length`"),
            "{e}"
        );

        let mut doc = protocol();
        doc["commands"][0]["fields"]
            .as_array_mut()
            .expect("fields")
            .reverse();
        let e = error_of(&doc);
        assert!(
            e.contains("commands[0] `SEND-`") && e.contains("must be the last field"),
            "{e}"
        );
    }

    #[test]
    fn rejects_duplicates() {
        let mut doc = protocol();
        doc["opcodes"][1]["code"] = 1.into();
        let e = error_of(&doc);
        assert!(
            e.contains("opcodes[1] `DATA_UPDATE`") && e.contains("duplicate opcode 1"),
            "{e}"
        );

        let mut doc = protocol();
        doc["commands"][1]["name"] = "SEND-".into();
        let e = error_of(&doc);
        assert!(
            e.contains("commands[1]") && e.contains("duplicate command name"),
            "{e}"
        );

        let mut doc = protocol();
        doc["dataTypes"][2]["id"] = 1.into();
        let e = error_of(&doc);
        assert!(
            e.contains("dataTypes[2] `battery`") && e.contains("duplicate data-type id 1"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_data_type_length_and_const() {
        let mut doc = protocol();
        doc["dataTypes"][0]["length"] = 4.into();
        let e = error_of(&doc);
        assert!(
            e.contains("dataTypes[0] `temperature`") && e.contains("2 bytes but length is 4"),
            "{e}"
        );

        let mut doc = protocol();
        doc["commands"][2]["fields"][0]["const"] = 70000.into();
        let e = error_of(&doc);
        assert!(
            e.contains("commands[2] `BCAST`") && e.contains("does not fit a u16"),
            "{e}"
        );
    }
}
