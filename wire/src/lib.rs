//! The hand-written wire layer of specwire: what the generated protocol code
//! builds on but cannot derive from a schema.
//!
//! Generated protocol code serialises a message into a body and hands it to
//! [`encode_frame`]; on the receive side a [`FrameDecoder`] turns a raw byte
//! stream, chunked however the port delivers it, back into bodies. This crate
//! is hand-written and small so the framing rules (PROFILE.md, uart family)
//! live in exactly one place.
//!
//! - [`frame`]: the codec: `0xFF`, escaped body, `0xFE`, where `FF`/`FE`/`FA`
//!   in the body become `FA 05`/`FA 04`/`FA 00`.
//! - [`hex`]: parsing and printing hex text for CLIs and fixtures.
//! - [`binary`]: the bounds-checked [`binary::Reader`] and the decode/encode
//!   errors of the generated uart codecs.
//! - [`json`]: recognising and validating the JSON families' messages
//!   ([`json::JsonProtocol`], implemented by every generated `Message`).
//! - [`text`]: recognising the text-line families' frames
//!   ([`text::LineProtocol`], implemented by the generated device `Line`).
//! - [`catalog`]: the kinds (`CaseSpec`, `Level`, ...) the generated
//!   conformance case catalog is made of.
//!
//! ```
//! use specwire_wire::{encode_frame, parse_hex, to_hex, FrameDecoder};
//!
//! // Two frames back to back, as a transmitter would batch them.
//! let mut wire = Vec::new();
//! encode_frame(&[0x53, 0xFE], &mut wire);
//! encode_frame(&[0x01, 0x02], &mut wire);
//! assert_eq!(to_hex(&wire), "ff 53 fa 04 fe ff 01 02 fe");
//!
//! // A receiver sees line noise first, then the stream split at odd places.
//! let mut rx = parse_hex("00 13 ff 53 fa")?;
//! rx.extend(parse_hex("04 fe ff 01 02 fe")?);
//! let mut decoder = FrameDecoder::new();
//! let mut bodies = Vec::new();
//! for chunk in rx.chunks(5) {
//!     decoder.decode(chunk, |body| bodies.push(to_hex(body)));
//! }
//! assert_eq!(bodies, ["53 fe", "01 02"]);
//! assert_eq!(decoder.stats().garbage_bytes, 2);
//! # Ok::<(), specwire_wire::HexError>(())
//! ```

// `deny`, not `forbid`: the one exception is the SSE2 bitmap in `frame::scan`,
// allowed there alone and property-tested against a scalar reference.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod binary;
pub mod catalog;
pub mod frame;
pub mod hex;
pub mod json;
pub mod text;

pub use frame::{
    decode_frame, encode_frame, encoded_frame, escape_into, unescape, DecoderStats, FrameDecoder,
    FrameError, DEFAULT_MAX_BODY,
};
pub use hex::{parse_hex, to_hex, HexError};
