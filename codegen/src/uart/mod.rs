//! Generator for the uart family's binary codecs.
//!
//! [`generate`] turns the checked uart model ([`crate::model::uart`], loaded
//! from `schema/uart/protocol.json`) into the Rust source of
//! module `specwire_protocol::uart`: framing constants and wrappers over
//! `specwire_wire`, one struct per command, layout, struct and opcode, the
//! `Command`, `Reply`, `Notification`, `SuccessReply` and `Body` enums, the
//! data-type table as `DataType`/`DataValue`. The reader and the decode and
//! encode errors are hand-written (`specwire_wire::binary`); the module
//! re-exports the errors.
//!
//! The model was checked when `schema/` was loaded (names resolve, ids are
//! unique, lengths come from earlier fields), so the emitting code never
//! has to handle a dangling reference. One submodule per thing generated:
//! `framing` (module docs, framing constants), `tables` (enums, data
//! types), `records` (structs and reply layouts), `commands`,
//! `notifications` (opcode payloads), `replies` (reply kinds, any body);
//! `core` holds the field codecs they share. Output follows document order
//! and uses no hash maps, so it is deterministic.
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

mod commands;
mod core;
mod framing;
mod notifications;
mod records;
mod replies;
mod tables;
mod tokens;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::uart::Protocol;
use core::Gen;

/// Generates the Rust source of module `specwire_protocol::uart` from the
/// checked uart model.
pub fn generate(protocol: &Protocol) -> TokenStream {
    let gen = Gen::new(protocol);
    let module_doc = gen.module_doc();
    let framing = gen.framing();
    let imports = quote! {
        use specwire_wire::binary::Reader;
        pub use specwire_wire::binary::{DecodeError, EncodeError};
    };
    let enums = gen.enums();
    let data = gen.data_types();
    let structs = gen.structs();
    let commands = gen.commands();
    let success = gen.success();
    let notifications = gen.notifications();
    let replies = gen.replies();
    let body = gen.body();
    // Last: it emits only the helpers the parts above used.
    let table = gen.table_helpers();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn render(protocol: &Protocol) -> String {
        let file: syn::File = syn::parse2(generate(protocol)).expect("generated code parses");
        prettyplease::unparse(&file)
    }

    #[test]
    fn generates_parseable_deterministic_code() {
        let path = specwire_testsupport::workspace().join("schema/uart/protocol.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read protocol.json"))
                .expect("parse protocol.json");
        let protocol = Protocol::from_json(&doc).expect("model");
        let a = render(&protocol);
        let b = render(&protocol);
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
}
