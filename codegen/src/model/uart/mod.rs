//! The uart family: `schema/uart/protocol.json` (shape fixed by
//! `schema/meta/uart-protocol.schema.json`), checked into a model that both
//! the Rust emission (`crate::uart`) and the docs read.
//!
//! [`Protocol::from_json`] deserialises every entry and checks that the
//! document is consistent (names resolve, ids are unique, lengths come from
//! earlier fields), naming the offending entry in the error; the emitting
//! code never has to handle a dangling reference. The byte layouts
//! ([`Slot`]s: offsets, sizes, what sits there) are worked out here once.
//! Everything keeps document order, so output is deterministic.

mod document;
mod fields;
mod layout;
mod names;
mod parse;
#[cfg(test)]
mod tests;
mod types;

pub use layout::{Pos, Slot, SlotKind};
pub use names::{pascal, snake};
pub use types::{
    CommandDef, DataTypeDef, EnumDef, EnumValueDef, Example, ExampleKind, Field, Framing, IntTy,
    Kind, KindShape, Len, OpcodeDef, Protocol, Record, ReplyKindDef, ReplyRef, Transport,
    ValueType,
};
