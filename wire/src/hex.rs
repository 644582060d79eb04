//! Hex text <-> bytes, for CLIs and fixtures that show frames to people.
//!
//! [`parse_hex`] is lenient about layout (what people paste from logic
//! analysers and logs) but strict about content, and points at the offending
//! line and column. [`to_hex`] prints the one canonical form.
//!
//! ```
//! use specwire_wire::hex::{parse_hex, to_hex};
//!
//! assert_eq!(parse_hex("ff 53 fe")?, [0xFF, 0x53, 0xFE]);
//! assert_eq!(parse_hex("FF53FE")?, [0xFF, 0x53, 0xFE]);
//! assert_eq!(parse_hex("ff:53:fe\n0xff 0x01fe")?, [0xFF, 0x53, 0xFE, 0xFF, 0x01, 0xFE]);
//! assert_eq!(to_hex(&[0xFF, 0x53, 0xFE]), "ff 53 fe");
//!
//! let err = parse_hex("ff 5 fe").unwrap_err();
//! assert_eq!(err.to_string(), "odd number of hex digits (1) in group at line 1, column 4; each byte needs two digits");
//! # Ok::<(), specwire_wire::hex::HexError>(())
//! ```

/// Why [`parse_hex`] rejected its input. `offset` is a byte offset into the
/// text; `line` and `column` are 1-based (column counts characters) for
/// messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// A character that is neither a hex digit nor a separator.
    #[error("invalid character {ch:?} at line {line}, column {column} (expected hex digits, whitespace, ':' or ',')")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Byte offset of the character.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A group of digits whose length is odd, so it does not make whole bytes.
    #[error("odd number of hex digits ({digits}) in group at line {line}, column {column}; each byte needs two digits")]
    OddDigits {
        /// Number of digits in the group (without any `0x`).
        digits: usize,
        /// Byte offset where the group starts.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A `0x` prefix with no digits after it.
    #[error("'0x' prefix without digits at line {line}, column {column}")]
    MissingDigits {
        /// Byte offset of the `0x`.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
}

/// 1-based (line, column) of byte `offset` in `text`, column in characters.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b':' || b == b','
}

fn digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Parses hex text into bytes.
///
/// Groups of hex digits (either case) are separated by whitespace (including
/// newlines), `:` or `,`; each group may start with `0x`/`0X` and must have an
/// even number of digits, so `"ff 53 fe"`, `"FF53FE"`, `"ff:53:fe"` and
/// `"0xff 0x53fe"` all parse. Empty or separator-only text gives no bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut i = 0;
    while i < bytes.len() {
        if is_separator(bytes[i]) {
            i += 1;
            continue;
        }
        let group = i;
        if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
        }
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        if i < bytes.len() && !is_separator(bytes[i]) {
            // Every byte before `i` is ASCII, so `i` is on a char boundary.
            let ch = text
                .get(i..)
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{FFFD}');
            let (line, column) = line_col(text, i);
            return Err(HexError::InvalidChar {
                ch,
                offset: i,
                line,
                column,
            });
        }
        let digits = &bytes[digits_start..i];
        if digits.is_empty() {
            let (line, column) = line_col(text, group);
            return Err(HexError::MissingDigits {
                offset: group,
                line,
                column,
            });
        }
        if digits.len() % 2 != 0 {
            let (line, column) = line_col(text, group);
            return Err(HexError::OddDigits {
                digits: digits.len(),
                offset: group,
                line,
                column,
            });
        }
        out.extend(
            digits
                .chunks_exact(2)
                .map(|pair| digit(pair[0]) << 4 | digit(pair[1])),
        );
    }
    Ok(out)
}

/// Formats bytes as lowercase hex pairs separated by single spaces
/// (`"ff 53 fe"`), the form [`parse_hex`] reads back.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_layouts() {
        let want = vec![0xFF, 0x53, 0xFE];
        for text in [
            "ff 53 fe",
            "FF53FE",
            "ff:53:fe",
            "  ff\n53\r\n\tfe \n",
            "0xff 0x53 0xfe",
            "0XFF,0x53fe",
            "0xff53fe",
            "Ff, 53, fE",
        ] {
            assert_eq!(parse_hex(text), Ok(want.clone()), "{text:?}");
        }
        assert_eq!(parse_hex(""), Ok(vec![]));
        assert_eq!(parse_hex(" \n:, "), Ok(vec![]));
        assert_eq!(parse_hex("00 0a"), Ok(vec![0x00, 0x0A]));
    }

    #[test]
    fn odd_digits_points_at_group() {
        assert_eq!(
            parse_hex("ff\n 0x535 fe"),
            Err(HexError::OddDigits {
                digits: 3,
                offset: 4,
                line: 2,
                column: 2
            })
        );
        assert_eq!(
            parse_hex("f"),
            Err(HexError::OddDigits {
                digits: 1,
                offset: 0,
                line: 1,
                column: 1
            })
        );
    }

    #[test]
    fn invalid_char_points_at_char() {
        assert_eq!(
            parse_hex("ff 5g"),
            Err(HexError::InvalidChar {
                ch: 'g',
                offset: 4,
                line: 1,
                column: 5
            })
        );
        assert_eq!(
            parse_hex("ff\nffé"),
            Err(HexError::InvalidChar {
                ch: 'é',
                offset: 5,
                line: 2,
                column: 3
            })
        );
        // A prefix only counts at the start of a group.
        assert!(matches!(
            parse_hex("ff0x53"),
            Err(HexError::InvalidChar { ch: 'x', .. })
        ));
        let err = parse_hex("ff zz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid character 'z' at line 1, column 4 (expected hex digits, whitespace, ':' or ',')"
        );
    }

    #[test]
    fn bare_prefix_is_an_error() {
        assert_eq!(
            parse_hex("ff 0x"),
            Err(HexError::MissingDigits {
                offset: 3,
                line: 1,
                column: 4
            })
        );
    }

    #[test]
    fn to_hex_round_trips() {
        assert_eq!(to_hex(&[]), "");
        assert_eq!(to_hex(&[0x00, 0xAB, 0x0F]), "00 ab 0f");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(parse_hex(&to_hex(&all)), Ok(all));
    }
}
