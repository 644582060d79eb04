//! Reading and writing binary bodies: the hand-written half of the generated
//! uart codecs.
//!
//! `specwire_protocol::uart` is generated from `schema/uart/protocol.json`:
//! one struct per command, layout and opcode, each with `decode` and
//! `encode`. What those codecs share does not depend on the document and
//! lives here instead:
//!
//! - [`Reader`], a bounds-checked cursor over a body: every read returns the
//!   bytes or [`DecodeError::Truncated`], so a decoder never indexes out of
//!   range and never panics, whatever the input;
//! - [`DecodeError`], why a body (or part of one) could not be decoded;
//! - [`EncodeError`], why a value could not be encoded: its Rust form holds
//!   something the wire cannot carry (more than 255 items behind a count
//!   byte, a length that disagrees with its length field).
//!
//! The generated module re-exports both errors, so
//! `specwire_protocol::uart::DecodeError` is this [`DecodeError`].
//!
//! ```
//! use specwire_wire::binary::{DecodeError, Reader};
//!
//! // A body: a big-endian u16, then a string behind a length byte.
//! let body = [0x01, 0x02, 3, b'a', b'b', b'c'];
//! let mut reader = Reader::new(&body);
//! let dst = u16::from_be_bytes(reader.array("Send.dst")?);
//! let name = reader.string_u8("Send.name")?;
//! reader.finish("Send arguments")?;
//! assert_eq!((dst, name.as_str()), (0x0102, "abc"));
//!
//! // Reading past the end is an error, not a panic.
//! let mut short = Reader::new(&body[..1]);
//! assert_eq!(
//!     short.array::<2>("Send.dst"),
//!     Err(DecodeError::Truncated { what: "Send.dst", needed: 2, available: 1 })
//! );
//! # Ok::<(), DecodeError>(())
//! ```

/// Why a body (or part of one) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body has no bytes at all.
    #[error("empty body")]
    Empty,
    /// The first five bytes are not a known command.
    #[error("unknown command \"{}\"", .0.escape_ascii())]
    UnknownCommand([u8; 5]),
    /// The body ends inside `what`.
    #[error("truncated {what}: needs {needed} bytes, {available} available")]
    Truncated {
        /// What was being read (`Type.field`).
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// Bytes are left over after a complete `what`.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// What was complete.
        what: &'static str,
        /// How many bytes followed it.
        count: usize,
    },
    /// A `const` field does not have its fixed value.
    #[error("{what} must be {expected}, got {actual}")]
    BadConst {
        /// The field (`Type.field`).
        what: &'static str,
        /// The fixed value.
        expected: u64,
        /// The value in the body.
        actual: u64,
    },
    /// An enum field holds a value the enum does not list.
    #[error("unknown {enum_name} value {value:#04x} in {what}")]
    UnknownEnumValue {
        /// The field (`Type.field`).
        what: &'static str,
        /// The enum's name.
        enum_name: &'static str,
        /// The byte in the body.
        value: u8,
    },
    /// A data id that is not in the data-type table.
    #[error("unknown data type id {0}")]
    UnknownDataType(u8),
    /// A reply whose first byte is not a known reply kind.
    #[error("unknown reply kind {0:#04x}")]
    UnknownReplyKind(u8),
    /// A string field that is not valid UTF-8.
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 {
        /// The field (`Type.field`).
        what: &'static str,
    },
    /// A JSON result that does not parse.
    #[error("invalid JSON result: {0}")]
    InvalidJson(String),
    /// A body that starts with neither a known command nor a reply kind.
    #[error("body of {len} bytes starting {first:#04x} is neither a known command nor a reply")]
    Unrecognized {
        /// The first byte.
        first: u8,
        /// The body length.
        len: usize,
    },
}

/// Why a value could not be encoded: the Rust value holds something the
/// wire cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A list longer than its count prefix allows.
    #[error("{what} has {count} items; its count byte allows at most {max}")]
    TooManyItems {
        /// The field (`Type.field`).
        what: &'static str,
        /// Items in the list.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string longer than its length prefix allows.
    #[error("{what} is {len} bytes; its length byte allows at most {max}")]
    TooLong {
        /// The field (`Type.field`).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes whose length disagrees with the field that gives it.
    #[error("{what} is {actual} bytes but {length_field} says {expected}")]
    LengthMismatch {
        /// The bytes field (`Type.field`).
        what: &'static str,
        /// The document name of the length field.
        length_field: &'static str,
        /// The length the field gives.
        expected: usize,
        /// The actual length.
        actual: usize,
    },
    /// Bytes whose length disagrees with the data-type table.
    #[error("{what} is {actual} bytes but data type {data_id} is {expected} bytes")]
    DataLengthMismatch {
        /// The bytes field (`Type.field`).
        what: &'static str,
        /// The data id.
        data_id: u8,
        /// The table's length.
        expected: usize,
        /// The actual length.
        actual: usize,
    },
    /// A data id that is not in the data-type table.
    #[error("unknown data type id {0}")]
    UnknownDataType(u8),
}

/// Bounds-checked cursor over a body. Every read returns the bytes or
/// [`DecodeError::Truncated`], so decoders never index out of range.
///
/// `what` names the thing being read (`Type.field`) in the error.
#[derive(Debug)]
pub struct Reader<'a> {
    unread: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { unread: input }
    }

    /// The next `N` bytes as an array (integers, UUIDs, prefixes).
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let Some((head, tail)) = self.unread.split_first_chunk::<N>() else {
            return Err(DecodeError::Truncated {
                what,
                needed: N,
                available: self.unread.len(),
            });
        };
        self.unread = tail;
        Ok(*head)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let Some((head, tail)) = self.unread.split_at_checked(n) else {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                available: self.unread.len(),
            });
        };
        self.unread = tail;
        Ok(head)
    }

    /// Every remaining byte; the reader is at the end afterwards.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.unread)
    }

    /// The unread bytes, without consuming them.
    pub fn remaining(&self) -> &'a [u8] {
        self.unread
    }

    /// A length byte, then that many bytes of UTF-8.
    pub fn string_u8(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let [len] = self.array(what)?;
        let bytes = self.take(usize::from(len), what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// Fails if bytes are left after a complete `what`.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.unread.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.unread.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let body = [1, 2, 3];
        let mut reader = Reader::new(&body);
        assert_eq!(reader.take(2, "a"), Ok(&body[..2]));
        assert_eq!(reader.remaining(), &body[2..]);
        assert_eq!(
            reader.take(2, "b"),
            Err(DecodeError::Truncated {
                what: "b",
                needed: 2,
                available: 1
            })
        );
        assert_eq!(reader.rest(), &body[2..]);
        assert_eq!(reader.finish("c"), Ok(()));
    }

    #[test]
    fn strings_must_be_utf8_and_bodies_complete() {
        let mut reader = Reader::new(&[1, 0xFF]);
        assert_eq!(
            reader.string_u8("s"),
            Err(DecodeError::InvalidUtf8 { what: "s" })
        );
        assert_eq!(
            Reader::new(&[0]).finish("x"),
            Err(DecodeError::TrailingBytes {
                what: "x",
                count: 1
            })
        );
    }
}
