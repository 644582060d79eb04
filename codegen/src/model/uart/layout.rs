//! Byte layouts: where each field of a command, reply, layout, struct or
//! opcode payload sits in a body, worked out once from the checked model.
//!
//! An offset is constant bytes plus the symbolic sizes of the
//! variable-length fields before it (`1 + message.length`), counted from the
//! start of the body or, inside a repeated list item, from the start of the
//! item (`+2`). The docs print these rows as tables.

use anyhow::{Context, Result};

use super::types::{CommandDef, Field, Kind, KindShape, Len, Protocol, Record, ReplyKindDef};

/// A byte offset (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    in_item: bool,
    fixed: u64,
    vars: Vec<String>,
}

impl Pos {
    /// `n` bytes from the start of the body.
    pub fn at(n: u64) -> Self {
        Pos {
            in_item: false,
            fixed: n,
            vars: Vec::new(),
        }
    }

    /// The start of a list item.
    pub fn item() -> Self {
        Pos {
            in_item: true,
            fixed: 0,
            vars: Vec::new(),
        }
    }

    /// `1 + message.length`, or `+2` inside an item.
    pub fn show(&self) -> String {
        let mut parts = Vec::new();
        if self.fixed > 0 || self.vars.is_empty() {
            parts.push(self.fixed.to_string());
        }
        parts.extend(self.vars.iter().cloned());
        let sign = if self.in_item { "+" } else { "" };
        format!("{sign}{}", parts.join(" + "))
    }

    /// After `n` more bytes.
    pub fn plus(&self, n: u64) -> Self {
        let mut next = self.clone();
        next.fixed = next.fixed.saturating_add(n);
        next
    }

    /// After a field whose size is the symbol `size`.
    pub fn plus_var(&self, size: &str) -> Self {
        let mut next = self.clone();
        next.vars.push(size.to_string());
        next
    }
}

/// What occupies a [`Slot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// A command's five name bytes.
    CommandName { name: String, wire: [u8; 5] },
    /// A reply's kind byte.
    KindByte { byte: u8, ch: char },
    /// A fixed-size field: `ty` is `u8`, `u16`, `u32` or `uuid`.
    Fixed {
        ty: &'static str,
        size: u64,
        konst: Option<u64>,
        enumeration: Option<String>,
    },
    /// Every remaining byte of the body.
    Rest,
    /// The length byte of string `of`.
    StrLength { of: String },
    /// A string's UTF-8 bytes.
    Str,
    /// Bytes whose length is field `from`; `enclosing` when `from` is a field
    /// of the layout that lists this struct rather than of the struct itself.
    Bytes { from: String, enclosing: bool },
    /// Bytes whose length the data-type table gives for field `key`.
    TableBytes { key: String },
    /// The count byte of list `of`.
    ListCount { of: String },
    /// `count` items of struct `item`, each `item_size` bytes when fixed.
    ListItems {
        item: String,
        count: String,
        item_size: Option<u64>,
    },
}

/// One row of a byte layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub offset: String,
    pub size: String,
    /// The field's path (`nodes[i].addr`); empty for the head of a body.
    pub path: String,
    pub kind: SlotKind,
    /// The field's description from the document.
    pub description: Option<String>,
}

impl Protocol {
    /// A command body: the five name bytes, then the arguments.
    pub fn command_layout(&self, command: &CommandDef) -> Result<Vec<Slot>> {
        let mut slots = vec![Slot {
            offset: "0".into(),
            size: "5".into(),
            path: String::new(),
            kind: SlotKind::CommandName {
                name: command.name.clone(),
                wire: command.wire,
            },
            description: None,
        }];
        self.rows(
            &command.record.fields,
            Pos::at(5),
            "",
            Some(&[]),
            &mut slots,
        )
        .with_context(|| format!("layout of command `{}`", command.name))?;
        Ok(slots)
    }

    /// A reply body: the kind byte, then every field the document lists.
    pub fn reply_kind_layout(&self, kind: &ReplyKindDef) -> Result<Vec<Slot>> {
        let mut slots = vec![self.kind_slot(kind)];
        self.rows(&kind.fields, Pos::at(1), "", Some(&[]), &mut slots)
            .with_context(|| format!("layout of reply kind `{}`", kind.name))?;
        Ok(slots)
    }

    /// A reply layout: the result bytes after `S`, so from offset 1.
    pub fn reply_layout(&self, layout: &Record) -> Result<Vec<Slot>> {
        let mut slots = Vec::new();
        self.rows(&layout.fields, Pos::at(1), "", Some(&[]), &mut slots)
            .with_context(|| format!("layout of `{}`", layout.name))?;
        Ok(slots)
    }

    /// A struct on its own: offsets relative to the start of the item, and
    /// no enclosing layout to take lengths from.
    pub fn struct_layout(&self, record: &Record) -> Result<Vec<Slot>> {
        let mut slots = Vec::new();
        self.rows(&record.fields, Pos::item(), "", None, &mut slots)
            .with_context(|| format!("layout of `{}`", record.name))?;
        Ok(slots)
    }

    /// An opcode's payload, at its place in the message reply.
    pub fn opcode_layout(&self, payload: &Record) -> Result<Vec<Slot>> {
        let mut slots = Vec::new();
        let start = self.payload_start()?;
        self.rows(&payload.fields, start, "", Some(&[]), &mut slots)
            .with_context(|| format!("payload layout of opcode `{}`", payload.name))?;
        Ok(slots)
    }

    /// Where the payload of the message reply kind starts: after its kind
    /// byte, its head fields and the opcode byte (its last field is the
    /// payload; the model checked that there is exactly one such kind).
    fn payload_start(&self) -> Result<Pos> {
        let message = self
            .reply_kinds
            .iter()
            .find(|k| matches!(k.shape, KindShape::Message(_)))
            .context("no reply kind carries the opcode table")?;
        let before = message.fields.len().saturating_sub(1);
        self.rows(
            &message.fields[..before],
            Pos::at(1),
            "",
            Some(&[]),
            &mut Vec::new(),
        )
    }

    fn kind_slot(&self, kind: &ReplyKindDef) -> Slot {
        Slot {
            offset: "0".into(),
            size: "1".into(),
            path: String::new(),
            kind: SlotKind::KindByte {
                byte: kind.byte,
                ch: kind.ch,
            },
            description: None,
        }
    }

    /// Rows for `fields` starting at `pos`; returns the position after
    /// them. `prefix` names the enclosing list item (`nodes[i].`); `outer`
    /// holds the field names of the enclosing layouts, which a `lengthFrom`
    /// may refer to (`None` for a struct shown on its own).
    fn rows(
        &self,
        fields: &[Field],
        mut pos: Pos,
        prefix: &str,
        outer: Option<&[String]>,
        slots: &mut Vec<Slot>,
    ) -> Result<Pos> {
        let mut earlier: Vec<String> = outer.unwrap_or_default().to_vec();
        for field in fields {
            let path = format!("{prefix}{}", field.json);
            let slot = |offset: &Pos, size: String, path: String, kind: SlotKind| Slot {
                offset: offset.show(),
                size,
                path,
                kind,
                description: field.description.clone(),
            };
            match &field.kind {
                Kind::Int { .. } | Kind::Enum { .. } | Kind::Uuid => {
                    let size = field.kind.fixed_size().unwrap_or(0);
                    let (ty, konst, enumeration) = match &field.kind {
                        Kind::Int { ty, konst } => (ty.name(), *konst, None),
                        Kind::Enum { name } => ("u8", None, Some(name.clone())),
                        _ => ("uuid", None, None),
                    };
                    let kind = SlotKind::Fixed {
                        ty,
                        size,
                        konst,
                        enumeration,
                    };
                    slots.push(slot(&pos, size.to_string(), path, kind));
                    pos = pos.plus(size);
                }
                Kind::Rest => slots.push(slot(&pos, "n".into(), path, SlotKind::Rest)),
                Kind::Str => {
                    let length = format!("{path}.length");
                    let of = path.clone();
                    slots.push(Slot {
                        offset: pos.show(),
                        size: "1".into(),
                        path: length.clone(),
                        kind: SlotKind::StrLength { of },
                        description: None,
                    });
                    pos = pos.plus(1);
                    slots.push(slot(&pos, length.clone(), path, SlotKind::Str));
                    pos = pos.plus_var(&length);
                }
                Kind::Bytes(Len::Field(from)) => {
                    let enclosing = !earlier.contains(from);
                    let kind = SlotKind::Bytes {
                        from: from.clone(),
                        enclosing,
                    };
                    slots.push(slot(&pos, from.clone(), path, kind));
                    pos = pos.plus_var(from);
                }
                Kind::Bytes(Len::Table { key }) => {
                    let size = format!("length({key})");
                    let kind = SlotKind::TableBytes {
                        key: format!("{prefix}{key}"),
                    };
                    slots.push(slot(&pos, size.clone(), path, kind));
                    pos = pos.plus_var(&size);
                }
                Kind::List { item } => {
                    pos = self.list_rows(field, item, &path, pos, &earlier, slots)?;
                }
            }
            earlier.push(field.json.clone());
        }
        Ok(pos)
    }

    /// The count byte, the items as a group, then one item's rows.
    fn list_rows(
        &self,
        field: &Field,
        item: &str,
        path: &str,
        mut pos: Pos,
        earlier: &[String],
        slots: &mut Vec<Slot>,
    ) -> Result<Pos> {
        let record = self.struct_named(item).with_context(|| {
            format!(
                "list `{}` has item `{item}`, which is not in `structs`",
                field.json
            )
        })?;
        let count = format!("{path}.count");
        slots.push(Slot {
            offset: pos.show(),
            size: "1".into(),
            path: count.clone(),
            kind: SlotKind::ListCount {
                of: path.to_owned(),
            },
            description: None,
        });
        pos = pos.plus(1);
        let item_size = fixed_record_size(record);
        let group = match item_size {
            Some(n) => format!("{count} × {n}"),
            None => format!("{count} × item"),
        };
        slots.push(Slot {
            offset: pos.show(),
            size: group.clone(),
            path: format!("{path}[i]"),
            kind: SlotKind::ListItems {
                item: item.to_owned(),
                count,
                item_size,
            },
            description: field.description.clone(),
        });
        let mut outer = earlier.to_vec();
        outer.push(field.json.clone());
        self.rows(
            &record.fields,
            Pos::item(),
            &format!("{path}[i]."),
            Some(&outer),
            slots,
        )
        .with_context(|| format!("item `{item}` of list `{}`", field.json))?;
        Ok(pos.plus_var(&group))
    }
}

/// The size of one item when every field has a fixed size.
fn fixed_record_size(record: &Record) -> Option<u64> {
    record
        .fields
        .iter()
        .try_fold(0u64, |total, f| total.checked_add(f.kind.fixed_size()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_symbolic_after_variable_fields() {
        let p = Pos::at(1).plus_var("message.length");
        assert_eq!(p.show(), "1 + message.length");
        assert_eq!(p.plus(2).show(), "3 + message.length");
        assert_eq!(Pos::item().plus(2).show(), "+2");
        assert_eq!(Pos::item().plus(2).plus_var("length").show(), "+2 + length");
    }
}
