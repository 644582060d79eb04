//! The uart page: framing, commands, reply kinds, layouts, structs, enums,
//! opcodes, the data-type table and framed examples, from the checked uart
//! model; every byte-layout table is the model's [`Slot`]s.

use anyhow::Result;

use super::conformance::FamilyCases;
use super::rich::{byte_size, compact_json, Rich};
use crate::model::uart::{ExampleKind, KindShape, Protocol, Record, ReplyRef, Slot, SlotKind};

#[derive(Debug)]
pub(super) struct UartPage {
    pub(super) family: String,
    pub(super) title: String,
    pub(super) summary: Rich,
    pub(super) sources: Vec<Rich>,
    pub(super) transport: Vec<(String, Rich)>,
    pub(super) local_port: Option<u64>,
    /// What carries the family (`uart + tcp`).
    pub(super) transport_summary: String,
    pub(super) framing: FramingView,
    pub(super) byte_order: String,
    pub(super) commands: Vec<CommandView>,
    pub(super) reply_kinds: Vec<ReplyKindView>,
    pub(super) reply_layouts: Vec<StructView>,
    pub(super) structs: Vec<StructView>,
    pub(super) enums: Vec<EnumView>,
    pub(super) opcodes: Vec<OpcodeView>,
    pub(super) data_types: Vec<DataTypeView>,
    pub(super) examples: Vec<UartExampleView>,
    pub(super) conformance: FamilyCases,
}

#[derive(Debug)]
pub(super) struct FramingView {
    pub(super) start: String,
    pub(super) end: String,
    pub(super) escape: String,
    pub(super) escape_xor: String,
    pub(super) max_body: String,
    pub(super) description: Rich,
    pub(super) escapes: Vec<(String, String)>,
}

#[derive(Debug)]
pub(super) struct CommandView {
    pub(super) name: Rich,
    /// The bare command text, for the HTML headings.
    pub(super) name_text: String,
    pub(super) ident: String,
    pub(super) anchor: String,
    pub(super) handled_by: String,
    pub(super) description: Rich,
    pub(super) reply: Rich,
    pub(super) layout: Vec<LayoutRow>,
}

#[derive(Debug)]
pub(super) struct ReplyKindView {
    pub(super) name: String,
    pub(super) anchor: String,
    pub(super) byte: String,
    pub(super) char_: Rich,
    pub(super) description: Rich,
    pub(super) layout: Vec<LayoutRow>,
}

#[derive(Debug)]
pub(super) struct StructView {
    pub(super) name: String,
    pub(super) anchor: String,
    pub(super) description: Rich,
    pub(super) note: String,
    pub(super) layout: Vec<LayoutRow>,
}

#[derive(Debug)]
pub(super) struct EnumView {
    pub(super) name: String,
    pub(super) anchor: String,
    pub(super) ty: String,
    pub(super) values: Vec<EnumValueView>,
}

#[derive(Debug)]
pub(super) struct EnumValueView {
    pub(super) name: String,
    pub(super) value: String,
    pub(super) char_: Rich,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct OpcodeView {
    pub(super) code: String,
    pub(super) name: Rich,
    pub(super) name_text: String,
    pub(super) ident: String,
    pub(super) anchor: String,
    pub(super) description: Rich,
    pub(super) layout: Vec<LayoutRow>,
}

#[derive(Debug)]
pub(super) struct DataTypeView {
    pub(super) id: String,
    pub(super) name: Rich,
    pub(super) length: u64,
    pub(super) value_type: String,
    pub(super) unit: String,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct UartExampleView {
    pub(super) name: String,
    pub(super) direction: String,
    pub(super) kind: String,
    pub(super) body: String,
    pub(super) frame: String,
    pub(super) summary: Rich,
}

/// One row of a byte-layout table.
#[derive(Debug, Clone)]
pub(super) struct LayoutRow {
    pub(super) offset: String,
    pub(super) size: String,
    pub(super) field: Rich,
    pub(super) ty: Rich,
    pub(super) description: Rich,
}

pub(super) fn hex_byte(b: u8) -> String {
    format!("0x{b:02X}")
}

pub(super) fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn uart_page(p: &Protocol) -> Result<UartPage> {
    let f = &p.framing;
    let framing = FramingView {
        start: hex_byte(f.start),
        end: hex_byte(f.end),
        escape: hex_byte(f.escape),
        escape_xor: hex_byte(f.escape_xor),
        max_body: byte_size(f.max_body),
        description: Rich::from_md(&f.description),
        escapes: f
            .escaped
            .iter()
            .map(|&b| (hex_byte(b), hex_bytes(&[f.escape, b ^ f.escape_xor])))
            .collect(),
    };
    let mut commands = Vec::new();
    for c in &p.commands {
        let ident = &c.record.name;
        let reply = match &c.reply {
            ReplyRef::Empty => Rich::new().code("S").text(" alone"),
            ReplyRef::Bytes => Rich::new().code("S").text(" then the module's bytes"),
            ReplyRef::Json => Rich::new().code("S").text(" then UTF-8 JSON"),
            ReplyRef::Layout(layout) => Rich::new().code("S").text(" then ").link(
                layout,
                &format!("#layout-{layout}"),
                true,
            ),
        };
        commands.push(CommandView {
            name: Rich::new().code(&c.name),
            name_text: c.name.clone(),
            ident: ident.clone(),
            anchor: format!("cmd-{ident}"),
            handled_by: c.handled_by().to_string(),
            description: Rich::from_md(&c.record.description),
            reply,
            layout: rows(&p.command_layout(c)?),
        });
    }
    let mut reply_kinds = Vec::new();
    for k in &p.reply_kinds {
        reply_kinds.push(ReplyKindView {
            name: k.name.clone(),
            anchor: format!("reply-{}", k.name),
            byte: hex_byte(k.byte),
            char_: Rich::new().code(&k.ch.to_string()),
            description: Rich::from_md(&k.description),
            layout: rows(&p.reply_kind_layout(k)?),
        });
    }
    Ok(UartPage {
        family: p.family.clone(),
        title: p.title.clone(),
        summary: Rich::from_md(&p.summary),
        sources: p.sources.iter().map(|s| Rich::from_md(s)).collect(),
        transport: p
            .transport
            .entries
            .iter()
            .map(|(path, value)| {
                let text = match value {
                    serde_json::Value::String(s) => Rich::from_md(s),
                    other => Rich::new().code(&compact_json(other)),
                };
                (path.clone(), text)
            })
            .collect(),
        local_port: Some(u64::from(p.transport.local_port)),
        transport_summary: p.transport.summary(),
        framing,
        byte_order: p.byte_order.clone(),
        commands,
        reply_kinds,
        reply_layouts: struct_views(
            &p.layouts,
            "layout",
            "Offsets count from the start of the reply body; byte 0 is S.",
            |l| p.reply_layout(l),
        )?,
        structs: struct_views(
            &p.structs,
            "struct",
            "Offsets are relative to the start of the item.",
            |s| p.struct_layout(s),
        )?,
        enums: enums(p),
        opcodes: opcodes(p)?,
        data_types: data_types(p),
        examples: examples(p),
        conformance: FamilyCases::default(),
    })
}

fn struct_views(
    records: &[Record],
    prefix: &str,
    note: &str,
    layout: impl Fn(&Record) -> Result<Vec<Slot>>,
) -> Result<Vec<StructView>> {
    records
        .iter()
        .map(|r| {
            Ok(StructView {
                name: r.name.clone(),
                anchor: format!("{prefix}-{}", r.name),
                description: Rich::from_md(&r.description),
                note: note.to_string(),
                layout: rows(&layout(r)?),
            })
        })
        .collect()
}

fn enums(p: &Protocol) -> Vec<EnumView> {
    p.enums
        .iter()
        .map(|e| EnumView {
            name: e.name.clone(),
            anchor: format!("enum-{}", e.name),
            ty: e.ty.name().to_string(),
            values: e
                .values
                .iter()
                .map(|v| EnumValueView {
                    name: v.name.clone(),
                    value: hex_byte(v.value),
                    char_: v
                        .ch
                        .map(|c| Rich::new().code(&c.to_string()))
                        .unwrap_or_else(|| Rich::new().text("—")),
                    description: Rich::from_md(&v.description),
                })
                .collect(),
        })
        .collect()
}

fn opcodes(p: &Protocol) -> Result<Vec<OpcodeView>> {
    p.opcodes
        .iter()
        .map(|o| {
            let ident = &o.record.name;
            Ok(OpcodeView {
                code: hex_byte(o.code),
                name: Rich::new().code(&o.name),
                name_text: o.name.clone(),
                ident: ident.clone(),
                anchor: format!("op-{ident}"),
                description: Rich::from_md(&o.record.description),
                layout: rows(&p.opcode_layout(&o.record)?),
            })
        })
        .collect()
}

fn data_types(p: &Protocol) -> Vec<DataTypeView> {
    p.data_types
        .iter()
        .map(|d| DataTypeView {
            id: hex_byte(d.id),
            name: Rich::new().code(&d.name),
            length: u64::try_from(d.length).unwrap_or(u64::MAX),
            value_type: d.value.name().to_string(),
            unit: d.unit.as_deref().unwrap_or("—").to_string(),
            description: Rich::from_md(&d.description),
        })
        .collect()
}

fn examples(p: &Protocol) -> Vec<UartExampleView> {
    p.examples
        .iter()
        .map(|e| UartExampleView {
            name: e.name.clone(),
            direction: e.direction.clone(),
            summary: example_summary(p, e.kind, &e.body),
            kind: e.kind.name().to_string(),
            body: hex_bytes(&e.body),
            frame: hex_bytes(&p.framing.frame(&e.body)),
        })
        .collect()
}

/// What an example body starts with: the command, or the reply kind (and
/// opcode for the message kind), so the hex can be read against the tables.
/// The model checked that the command or kind exists.
fn example_summary(p: &Protocol, kind: ExampleKind, body: &[u8]) -> Rich {
    match kind {
        ExampleKind::Command => {
            let head = body.get(..5).unwrap_or(body);
            match p.commands.iter().find(|c| c.wire.as_slice() == head) {
                Some(c) => Rich::new().link(&c.name, &format!("#cmd-{}", c.record.name), true),
                None => Rich::new().code(&String::from_utf8_lossy(head)),
            }
        }
        ExampleKind::Reply => {
            let kind = body
                .first()
                .and_then(|&first| p.reply_kinds.iter().find(|k| k.byte == first));
            let Some(kind) = kind else {
                return Rich::new();
            };
            let mut r = Rich::new().link(&kind.name, &format!("#reply-{}", kind.name), false);
            // For the message kind the opcode follows the head fields.
            if let KindShape::Message(head) = &kind.shape {
                let at = head
                    .iter()
                    .try_fold(1u64, |at, f| at.checked_add(f.kind.fixed_size()?))
                    .and_then(|at| usize::try_from(at).ok());
                let opcode = at
                    .and_then(|at| body.get(at))
                    .and_then(|&op| p.opcodes.iter().find(|o| o.code == op));
                if let Some(o) = opcode {
                    r = r
                        .text(", opcode ")
                        .link(&o.name, &format!("#op-{}", o.record.name), true);
                }
            }
            r
        }
    }
}

/// A byte layout as table rows.
fn rows(slots: &[Slot]) -> Vec<LayoutRow> {
    slots.iter().map(row).collect()
}

fn row(slot: &Slot) -> LayoutRow {
    let description = slot
        .description
        .as_deref()
        .map(Rich::from_md)
        .unwrap_or_default();
    let path = Rich::new().code(&slot.path);
    let (field, ty, description) = match &slot.kind {
        SlotKind::CommandName { name, wire } => (
            Rich::new().text("command"),
            Rich::new().text("ASCII"),
            Rich::new().code(name).text(" = ").code(&hex_bytes(wire)),
        ),
        SlotKind::KindByte { byte, ch } => (
            Rich::new().text("kind"),
            Rich::new().text("u8"),
            Rich::new()
                .code(&hex_byte(*byte))
                .text(" (")
                .code(&ch.to_string())
                .text(")"),
        ),
        SlotKind::Fixed {
            ty,
            size,
            konst,
            enumeration,
        } => {
            let mut t = Rich::new().text(ty);
            if let Some(c) = konst {
                let digits = usize::try_from(size * 2).unwrap_or(2);
                t = t.text(" = ").code(&format!("0x{c:0digits$X}"));
            }
            if let Some(e) = enumeration {
                t = t.text(", enum ").link(e, &format!("#enum-{e}"), true);
            }
            (path, t, description)
        }
        SlotKind::Rest => (
            path,
            Rich::new().text("bytes (rest of the body)"),
            description,
        ),
        SlotKind::StrLength { of } => (
            path,
            Rich::new().text("u8"),
            Rich::new().text("Length of ").code(of).text(" in bytes."),
        ),
        SlotKind::Str => (path, Rich::new().text("UTF-8 text"), description),
        SlotKind::Bytes { from, enclosing } => {
            let mut t = Rich::new().text("bytes, length = ").code(from);
            if *enclosing {
                t = t.text(" (a field of the enclosing layout)");
            }
            (path, t, description)
        }
        SlotKind::TableBytes { key } => (
            path,
            Rich::new()
                .text("bytes, length from the ")
                .link("data-type table", "#data-types", false)
                .text(" for ")
                .code(key),
            description,
        ),
        SlotKind::ListCount { of } => (
            path,
            Rich::new().text("u8"),
            Rich::new().text("Number of ").code(of).text(" items."),
        ),
        SlotKind::ListItems {
            item,
            count,
            item_size,
        } => {
            let mut d = Rich::new().text("Repeated ").code(count).text(" times");
            if let Some(n) = item_size {
                d = d.text(&format!(", {n} bytes each"));
            }
            d = d.text(".");
            if !description.is_empty() {
                d = d.text(" ").append(&description);
            }
            let t = Rich::new()
                .text("list of ")
                .link(item, &format!("#struct-{item}"), true);
            (path, t, d)
        }
    };
    LayoutRow {
        offset: slot.offset.clone(),
        size: slot.size.clone(),
        field,
        ty,
        description,
    }
}
