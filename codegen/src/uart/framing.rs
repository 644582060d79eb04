//! The module docs and the framing constants and wrappers.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::core::Gen;
use super::tokens::{docs, hex, inner_docs};

impl Gen<'_> {
    pub(super) fn module_doc(&self) -> TokenStream {
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

    pub(super) fn framing(&self) -> TokenStream {
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
    pub(super) fn table_helpers(&self) -> TokenStream {
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
}
