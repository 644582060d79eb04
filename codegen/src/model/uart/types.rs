//! The checked uart model: what the Rust emission and the docs read.
//!
//! Every name in it resolves (enums, structs, layouts), every id is unique,
//! every length comes from an earlier field or from the record that lists
//! this one; [`super::Protocol::from_json`] guarantees it.

use serde::Deserialize;
use serde_json::Value;

use super::names::snake;

/// An integer field's wire type (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntTy {
    U8,
    U16,
    U32,
}

impl IntTy {
    pub fn max(self) -> u64 {
        match self {
            IntTy::U8 => u8::MAX.into(),
            IntTy::U16 => u16::MAX.into(),
            IntTy::U32 => u32::MAX.into(),
        }
    }

    /// `u8`, `u16`, `u32`.
    pub fn name(self) -> &'static str {
        match self {
            IntTy::U8 => "u8",
            IntTy::U16 => "u16",
            IntTy::U32 => "u32",
        }
    }

    /// Bytes on the wire.
    pub fn size(self) -> u64 {
        match self {
            IntTy::U8 => 1,
            IntTy::U16 => 2,
            IntTy::U32 => 4,
        }
    }
}

/// Where a `bytes` field's length comes from.
#[derive(Debug, Clone)]
pub enum Len {
    /// The length is the value of this (JSON-named) field: an earlier field of
    /// the same record, or a context parameter supplied by the enclosing one.
    Field(String),
    /// The length comes from the data-type table, keyed by the earlier field
    /// of that JSON name.
    Table { key: String },
}

/// A field's wire form.
#[derive(Debug, Clone)]
pub enum Kind {
    Int {
        ty: IntTy,
        konst: Option<u64>,
    },
    /// One byte, a value of the named enum.
    Enum {
        name: String,
    },
    Uuid,
    Bytes(Len),
    /// Every remaining byte of the body (last field only).
    Rest,
    /// A length byte, then that many bytes of UTF-8.
    Str,
    /// A count byte, then that many items of the named struct.
    List {
        item: String,
    },
}

impl Kind {
    /// Bytes on the wire when they do not depend on the value.
    pub fn fixed_size(&self) -> Option<u64> {
        match self {
            Kind::Int { ty, .. } => Some(ty.size()),
            Kind::Enum { .. } => Some(1),
            Kind::Uuid => Some(16),
            Kind::Bytes(_) | Kind::Rest | Kind::Str | Kind::List { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    /// The name in the document (camelCase).
    pub json: String,
    /// The Rust name (snake_case).
    pub rust: String,
    pub description: Option<String>,
    pub kind: Kind,
}

impl Field {
    pub fn is_const(&self) -> bool {
        matches!(self.kind, Kind::Int { konst: Some(_), .. })
    }

    /// Whether encoding this field can fail (a u8 prefix that may overflow, or
    /// a length that must agree with another field or the data-type table).
    pub fn fallible(&self) -> bool {
        matches!(self.kind, Kind::Bytes(_) | Kind::Str | Kind::List { .. })
    }

    /// The generated docs' note on the wire form.
    pub fn wire_note(&self) -> String {
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
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub description: String,
    pub fields: Vec<Field>,
    /// Context parameters (JSON names): lengths this record's fields (or its
    /// list items') take from the enclosing record. Empty for top-level ones.
    pub params: Vec<String>,
}

impl Record {
    pub fn fallible(&self) -> bool {
        self.fields.iter().any(Field::fallible)
    }

    pub fn stored(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.is_const())
    }
}

/// What follows `S` in the success reply to a command.
#[derive(Debug, Clone)]
pub enum ReplyRef {
    Empty,
    Bytes,
    Json,
    Layout(String),
}

#[derive(Debug, Clone)]
pub struct CommandDef {
    pub wire: [u8; 5],
    /// The five-byte name as text (`SEND-`).
    pub name: String,
    pub handled_by_gateway: bool,
    pub reply: ReplyRef,
    /// Named by the command's `ident`.
    pub record: Record,
}

impl CommandDef {
    /// `module` or `gateway`, as the document writes it.
    pub fn handled_by(&self) -> &'static str {
        if self.handled_by_gateway {
            "gateway"
        } else {
            "module"
        }
    }
}

#[derive(Debug, Clone)]
pub enum KindShape {
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

#[derive(Debug, Clone)]
pub struct ReplyKindDef {
    pub name: String,
    pub byte: u8,
    pub ch: char,
    pub description: String,
    /// Every field after the kind byte, as the document lists them.
    pub fields: Vec<Field>,
    pub shape: KindShape,
}

#[derive(Debug, Clone)]
pub struct EnumValueDef {
    pub name: String,
    pub value: u8,
    pub ch: Option<char>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub name: String,
    /// Always [`IntTy::U8`].
    pub ty: IntTy,
    pub values: Vec<EnumValueDef>,
}

#[derive(Debug, Clone)]
pub struct OpcodeDef {
    pub code: u8,
    pub name: String,
    /// Named by the opcode's `ident`.
    pub record: Record,
}

#[derive(Debug, Clone, Copy)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    Bytes,
}

impl ValueType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "u8" => Self::U8,
            "i8" => Self::I8,
            "u16" => Self::U16,
            "i16" => Self::I16,
            "u32" => Self::U32,
            "i32" => Self::I32,
            "bytes" => Self::Bytes,
            _ => return None,
        })
    }

    /// The document's name (`i16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::Bytes => "bytes",
        }
    }

    pub fn size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 => Some(4),
            Self::Bytes => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataTypeDef {
    /// lower_snake_case, as in the table.
    pub name: String,
    /// PascalCase, the Rust variant.
    pub variant: String,
    pub id: u8,
    pub length: usize,
    pub value: ValueType,
    pub unit: Option<String>,
    pub description: String,
}

/// The framing parameters (`framing`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Framing {
    pub start: u8,
    pub end: u8,
    pub escape: u8,
    pub escape_xor: u8,
    pub escaped: Vec<u8>,
    pub max_body: u64,
    pub description: String,
}

impl Framing {
    /// One whole frame for `body`: start byte, escaped body, end byte.
    pub fn frame(&self, body: &[u8]) -> Vec<u8> {
        let mut frame = vec![self.start];
        for &b in body {
            if self.escaped.contains(&b) {
                frame.push(self.escape);
                frame.push(b ^ self.escape_xor);
            } else {
                frame.push(b);
            }
        }
        frame.push(self.end);
        frame
    }
}

/// How the family travels (`transport`): a serial line to the module and a
/// local listener that speaks the same frames.
#[derive(Debug, Clone)]
pub struct Transport {
    pub module_timeout_ms: u64,
    /// The local listener's transport kind (`tcp`).
    pub local_kind: String,
    pub local_host: String,
    pub local_port: u16,
    pub local_description: Option<String>,
    pub serial_description: Option<String>,
    /// Every leaf of the object as written, `a.b` → value, in document order.
    pub entries: Vec<(String, Value)>,
}

impl Transport {
    /// What carries the family: `uart + tcp` with a serial line and a local
    /// listener.
    pub fn summary(&self) -> String {
        match self.serial_description {
            Some(_) => format!("uart + {}", self.local_kind),
            None => self.local_kind.clone(),
        }
    }
}

/// Whether an example body is a command or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    Command,
    Reply,
}

impl ExampleKind {
    /// `command` or `reply`.
    pub fn name(self) -> &'static str {
        match self {
            ExampleKind::Command => "command",
            ExampleKind::Reply => "reply",
        }
    }
}

/// One example body (`examples`).
#[derive(Debug, Clone)]
pub struct Example {
    pub name: String,
    pub direction: String,
    pub kind: ExampleKind,
    pub body: Vec<u8>,
}

/// The uart family: `schema/uart/protocol.json`, checked.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The family name (`uart`).
    pub family: String,
    pub title: String,
    pub summary: String,
    pub sources: Vec<String>,
    /// `big-endian`, the only order there is.
    pub byte_order: String,
    pub transport: Transport,
    pub framing: Framing,
    pub commands: Vec<CommandDef>,
    pub reply_kinds: Vec<ReplyKindDef>,
    pub layouts: Vec<Record>,
    pub structs: Vec<Record>,
    pub enums: Vec<EnumDef>,
    pub opcodes: Vec<OpcodeDef>,
    pub data_types: Vec<DataTypeDef>,
    pub examples: Vec<Example>,
}

impl Protocol {
    /// The struct called `name`.
    pub fn struct_named(&self, name: &str) -> Option<&Record> {
        self.structs.iter().find(|s| s.name == name)
    }
}
