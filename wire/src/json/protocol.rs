//! [`JsonProtocol`]: what every generated JSON family's `Message` enum is,
//! so that servers, clients and the conformance suite are written once,
//! generic over the family.
//!
//! The generated code supplies only data and the two functions that need
//! the concrete variants ([`JsonProtocol::index`] and
//! [`JsonProtocol::from_validated`]); decoding, naming and encoding are
//! provided here once.
//!
//! ```
//! use specwire_wire::json::{Direction, Family, JsonProtocol, LazyValidator, MatchRule, MessageSpec, Transport};
//!
//! #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Ping { r#type: String }
//!
//! #[derive(Clone, Debug, PartialEq, serde::Serialize)]
//! #[serde(untagged)]
//! enum Message { Ping(Ping) }
//!
//! const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"Ping":{"type":"object","required":["type"],"properties":{"type":{"const":"ping"}}}}}"#;
//! static MESSAGES: &[MessageSpec] = &[MessageSpec {
//!     name: "Ping",
//!     direction: Direction::ClientToServer,
//!     rules: &[MatchRule::Const { pointer: "/type", value: "\"ping\"" }],
//! }];
//! static VALIDATORS: [LazyValidator; 1] = [LazyValidator::new(SCHEMA, "Ping")];
//! static TABLE: Family = Family::new("demo", &["/type"], MESSAGES, &VALIDATORS);
//!
//! impl JsonProtocol for Message {
//!     const TRANSPORT: Transport = Transport {
//!         kind: "websocket", default_host: "127.0.0.1", default_port: 8080, max_message_bytes: 1 << 20,
//!     };
//!     fn family() -> &'static Family { &TABLE }
//!     fn index(&self) -> usize { match self { Message::Ping(_) => 0 } }
//!     fn from_validated(index: usize, value: serde_json::Value) -> Result<Self, serde_json::Error> {
//!         debug_assert_eq!(index, 0);
//!         serde_json::from_value(value).map(Message::Ping)
//!     }
//! }
//!
//! let message = Message::from_slice(br#"{"type":"ping"}"#)?;
//! assert_eq!(message.name(), "Ping");
//! assert_eq!(message.to_json()?, r#"{"type":"ping"}"#);
//! assert!(Message::from_slice(br#"{"type":"pong"}"#).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde_json::Value;

use super::{DecodeError, Direction, Family, MessageSpec};

/// Where a family's messages travel, from its manifest's `transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// `websocket`, `tcp` or `udp-broadcast`.
    pub kind: &'static str,
    /// Default host to bind or connect to.
    pub default_host: &'static str,
    /// Default port.
    pub default_port: u16,
    /// Largest message a receiver must accept, in bytes.
    pub max_message_bytes: usize,
}

/// Any message of one JSON family: implemented by each generated family's
/// `Message` enum.
///
/// Decoding is always parse → recognise (the discriminator rules of
/// [`Family`]) → validate against that message's schema → deserialize the
/// generated type; nothing is decoded that its schema rejects.
pub trait JsonProtocol:
    serde::Serialize + Clone + fmt::Debug + PartialEq + Send + Sync + Sized + 'static
{
    /// Where the family's messages travel.
    const TRANSPORT: Transport;

    /// The family's message table and validators.
    fn family() -> &'static Family;

    /// This message's position in [`Family::messages`].
    fn index(&self) -> usize;

    /// Builds message `index` from a value its schema has accepted.
    fn from_validated(index: usize, value: Value) -> Result<Self, serde_json::Error>;

    /// The family name (`task`).
    fn family_name() -> &'static str {
        Self::family().name
    }

    /// The message's entry in the family table.
    fn spec(&self) -> &'static MessageSpec {
        &Self::family().messages[self.index()]
    }

    /// The message name (`AssignTask`, ...).
    fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Who sends this message.
    fn direction(&self) -> Direction {
        self.spec().direction
    }

    /// Recognises and validates `value` without building the Rust value;
    /// returns the message's index in the family table. With `direction`,
    /// only messages sent that way are considered.
    fn recognise(value: &Value, direction: Option<Direction>) -> Result<usize, DecodeError> {
        Self::family().validate_from(value, direction)
    }

    /// Recognises, validates and decodes an already-parsed value, considering
    /// only messages sent in `direction` (when given).
    fn decode_from(value: Value, direction: Option<Direction>) -> Result<Self, DecodeError> {
        let index = Self::recognise(&value, direction)?;
        Self::from_validated(index, value)
            .map_err(|source| Self::family().type_mismatch(index, source))
    }

    /// Recognises, validates and decodes an already-parsed value.
    fn decode(value: Value) -> Result<Self, DecodeError> {
        Self::decode_from(value, None)
    }

    /// Parses, recognises, validates and decodes one message.
    fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value: Value = serde_json::from_slice(bytes).map_err(DecodeError::NotJson)?;
        Self::decode(value)
    }

    /// The message as a JSON value.
    fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The message as JSON text.
    fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}
