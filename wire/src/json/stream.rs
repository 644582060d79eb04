//! Cutting a byte stream into JSON values: the framing of the chat family
//! (PROFILE.md, chat), where the stream is JSON objects back to back,
//! optionally separated by white space, with no length prefix and no
//! delimiter a sender must write.
//!
//! [`JsonStreamDecoder`] finds where each top-level `{...}` (or `[...]`)
//! ends by counting its brackets outside strings; it does not parse, so the
//! caller parses each [`StreamItem::Value`] and answers a malformed one (a
//! parse error) without losing its place in the stream. It is resumable:
//! bytes already scanned are never scanned again, so a value that arrives
//! one byte per read costs the same as one that arrives whole, and several
//! values in one read come out one by one.
//!
//! # Recovery
//!
//! - White space (space, tab, CR, LF) between values is skipped.
//! - A byte that cannot start a value (anything but `{`, `[` and white
//!   space) starts a *junk run*, reported once as [`StreamItem::Junk`] as
//!   soon as its first byte is seen and skipped up to the next `\n`, `{` or
//!   `[`. So `hello\n` is one parse error, and `oops{"method":...}` is one
//!   parse error followed by the request.
//! - A value longer than the limit is reported once as
//!   [`StreamItem::TooLarge`] when it crosses the limit (or when it is
//!   complete, if it arrived at once); the rest of it is scanned to find
//!   its end but never buffered. The buffer therefore never holds more than
//!   the limit plus one read.
//! - A value that never closes (`{"a":1` and nothing more) holds everything
//!   after it until its brackets balance or it crosses the limit: without
//!   a delimiter there is no earlier point at which to give up on it.
//!
//! The items are the same however the stream is split into reads (the
//! property tests check it on arbitrary bytes).
//!
//! ```
//! use bytes::BytesMut;
//! use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};
//!
//! let mut decoder = JsonStreamDecoder::new(1024);
//! let mut buffer = BytesMut::new();
//! let mut items = Vec::new();
//! for chunk in [&b"{\"a\":"[..], b"1}  {\"b\"", b":[2]}\nnot json\n[3]"] {
//!     buffer.extend_from_slice(chunk);
//!     while let Some(item) = decoder.decode(&mut buffer) {
//!         items.push(item);
//!     }
//! }
//! assert_eq!(
//!     items,
//!     [
//!         StreamItem::Value("{\"a\":1}".into()),
//!         StreamItem::Value("{\"b\":[2]}".into()),
//!         StreamItem::Junk,
//!         StreamItem::Value("[3]".into()),
//!     ]
//! );
//! ```

use bytes::{Buf, Bytes, BytesMut};
use memchr::{memchr2, memchr3};

/// One thing found in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// One top-level `{...}` or `[...]`, exactly as sent. Its brackets
    /// balance outside strings; whether it is valid JSON is for the parser
    /// to say.
    Value(Bytes),
    /// A run of bytes that cannot start a value (reported once per run).
    Junk,
    /// A value longer than the limit; its bytes are skipped.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Where the decoder is in the stream.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Between values, skipping white space.
    Between,
    /// Inside a junk run that was already reported.
    Junk,
    /// Inside a value.
    Value(ValueScan),
}

/// The scan of one value, resumable at any byte.
#[derive(Clone, Copy, Debug)]
struct ValueScan {
    open: u8,
    close: u8,
    /// Brackets of the value's own kind open so far (the other kind cannot
    /// end the value, so it need not be counted).
    depth: u64,
    in_string: bool,
    /// The previous byte, inside a string, was a backslash.
    escaped: bool,
    /// Bytes of the value already scanned (still in the buffer, or, when
    /// `skipping`, already discarded).
    scanned: usize,
    /// Over the limit and reported: the bytes are discarded as scanned.
    skipping: bool,
}

/// A resumable splitter of a byte stream into JSON values; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct JsonStreamDecoder {
    max_value_bytes: usize,
    mode: Mode,
}

fn is_json_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

impl JsonStreamDecoder {
    /// A decoder that refuses values longer than `max_value_bytes`.
    pub fn new(max_value_bytes: usize) -> JsonStreamDecoder {
        JsonStreamDecoder {
            max_value_bytes,
            mode: Mode::Between,
        }
    }

    /// The limit on one value, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Whether the decoder is between values (nothing partial is held).
    pub fn is_between_values(&self) -> bool {
        matches!(self.mode, Mode::Between)
    }

    /// Takes the next item off the front of `buffer`; `None` when more
    /// bytes are needed (what was scanned is remembered, so call again
    /// after appending the next read to the same buffer).
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Option<StreamItem> {
        loop {
            match self.mode {
                Mode::Between => {
                    let start = buffer.iter().position(|&byte| !is_json_space(byte));
                    let Some(start) = start else {
                        buffer.clear();
                        return None;
                    };
                    buffer.advance(start);
                    self.mode = match buffer[0] {
                        b'{' => Mode::Value(ValueScan::new(b'{', b'}')),
                        b'[' => Mode::Value(ValueScan::new(b'[', b']')),
                        _ => {
                            self.mode = Mode::Junk;
                            return Some(StreamItem::Junk);
                        }
                    };
                }
                Mode::Junk => match memchr3(b'\n', b'{', b'[', buffer) {
                    None => {
                        buffer.clear();
                        return None;
                    }
                    Some(end) => {
                        let newline = buffer[end] == b'\n';
                        buffer.advance(end + usize::from(newline));
                        self.mode = Mode::Between;
                    }
                },
                Mode::Value(mut scan) => {
                    let end = scan.run(buffer);
                    let (item, mode) = self.value_step(&mut scan, buffer, end);
                    self.mode = mode.unwrap_or(Mode::Value(scan));
                    match item {
                        Step::Item(item) => return Some(item),
                        Step::NeedMore => return None,
                        Step::Continue => {}
                    }
                }
            }
        }
    }

    /// What a scan that reached `end` (the value's length, when it closed)
    /// means for the buffer; the new mode when the value is done.
    fn value_step(
        &self,
        scan: &mut ValueScan,
        buffer: &mut BytesMut,
        end: Option<usize>,
    ) -> (Step, Option<Mode>) {
        let limit = self.max_value_bytes;
        match end {
            Some(end) if scan.skipping => {
                buffer.advance(end);
                (Step::Continue, Some(Mode::Between))
            }
            Some(end) if end > limit => {
                buffer.advance(end);
                (
                    Step::Item(StreamItem::TooLarge { limit }),
                    Some(Mode::Between),
                )
            }
            Some(end) => {
                let value = buffer.split_to(end).freeze();
                (Step::Item(StreamItem::Value(value)), Some(Mode::Between))
            }
            None if scan.skipping => {
                scan.scanned = 0;
                buffer.clear();
                (Step::NeedMore, None)
            }
            None if scan.scanned > limit => {
                scan.skipping = true;
                scan.scanned = 0;
                buffer.clear();
                (Step::Item(StreamItem::TooLarge { limit }), None)
            }
            None => (Step::NeedMore, None),
        }
    }
}

enum Step {
    Item(StreamItem),
    NeedMore,
    Continue,
}

impl ValueScan {
    fn new(open: u8, close: u8) -> ValueScan {
        ValueScan {
            open,
            close,
            depth: 0,
            in_string: false,
            escaped: false,
            scanned: 0,
            skipping: false,
        }
    }

    /// Scans `bytes[self.scanned..]`; the value's length once its closing
    /// bracket is found, else `None` with everything scanned.
    fn run(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = self.scanned;
        while at < bytes.len() {
            if self.escaped {
                self.escaped = false;
                at += 1;
            } else if self.in_string {
                match memchr2(b'"', b'\\', &bytes[at..]) {
                    None => at = bytes.len(),
                    Some(offset) => {
                        at += offset;
                        if bytes[at] == b'"' {
                            self.in_string = false;
                        } else {
                            self.escaped = true;
                        }
                        at += 1;
                    }
                }
            } else {
                match memchr3(self.open, self.close, b'"', &bytes[at..]) {
                    None => at = bytes.len(),
                    Some(offset) => {
                        at += offset;
                        let byte = bytes[at];
                        at += 1;
                        if byte == b'"' {
                            self.in_string = true;
                        } else if byte == self.open {
                            self.depth += 1;
                        } else {
                            self.depth -= 1;
                            if self.depth == 0 {
                                self.scanned = at;
                                return Some(at);
                            }
                        }
                    }
                }
            }
        }
        self.scanned = bytes.len();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut JsonStreamDecoder, chunks: &[&[u8]]) -> Vec<StreamItem> {
        let mut buffer = BytesMut::new();
        let mut items = Vec::new();
        for chunk in chunks {
            buffer.extend_from_slice(chunk);
            while let Some(item) = decoder.decode(&mut buffer) {
                items.push(item);
            }
        }
        items
    }

    fn value(text: &str) -> StreamItem {
        StreamItem::Value(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn brackets_inside_strings_and_escaped_quotes_do_not_end_a_value() {
        let text = r#"{"a":"}{\"}","b":{"c":"\\"}}"#;
        let mut decoder = JsonStreamDecoder::new(1024);
        assert_eq!(all(&mut decoder, &[text.as_bytes()]), [value(text)]);
        // Byte by byte, the escape split from what it escapes.
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(all(&mut decoder, &chunks), [value(text)]);
    }

    #[test]
    fn junk_is_reported_once_per_run_and_the_next_value_follows() {
        let mut decoder = JsonStreamDecoder::new(1024);
        // Three runs: two lines, then a stray `}` before the value.
        let items = all(&mut decoder, &[b"hello world\nagain", b" more\n}{\"x\":1}"]);
        let junk = StreamItem::Junk;
        assert_eq!(
            items,
            [junk.clone(), junk.clone(), junk, value("{\"x\":1}")]
        );
        let items = all(&mut decoder, &[b"oops{\"y\":2}"]);
        assert_eq!(items, [StreamItem::Junk, value("{\"y\":2}")]);
    }

    #[test]
    fn an_oversized_value_is_reported_once_and_skipped_without_buffering() {
        let mut decoder = JsonStreamDecoder::new(16);
        let mut buffer = BytesMut::new();
        let mut items = Vec::new();
        buffer.extend_from_slice(b"{\"big\":\"");
        assert_eq!(decoder.decode(&mut buffer), None);
        for _ in 0..100 {
            buffer.extend_from_slice(b"xxxxxxxx{}}}");
            while let Some(item) = decoder.decode(&mut buffer) {
                items.push(item);
            }
            assert!(buffer.len() <= 16 + 12);
        }
        buffer.extend_from_slice(b"\"} {\"ok\":1}");
        while let Some(item) = decoder.decode(&mut buffer) {
            items.push(item);
        }
        assert_eq!(
            items,
            [StreamItem::TooLarge { limit: 16 }, value("{\"ok\":1}")]
        );
        // A value that arrives whole but over the limit.
        let items = all(&mut decoder, &[b"{\"aaaaaaaaaaaaaaaaaaaa\":1}[]"]);
        assert_eq!(items, [StreamItem::TooLarge { limit: 16 }, value("[]")]);
    }

    #[test]
    fn an_unclosed_value_waits_and_white_space_alone_is_consumed() {
        let mut decoder = JsonStreamDecoder::new(1024);
        let mut buffer = BytesMut::from(&b" \r\n\t "[..]);
        assert_eq!(decoder.decode(&mut buffer), None);
        assert!(buffer.is_empty() && decoder.is_between_values());
        buffer.extend_from_slice(b"{\"a\":[1,");
        assert_eq!(decoder.decode(&mut buffer), None);
        assert!(!decoder.is_between_values());
        buffer.extend_from_slice(b"2]}");
        assert_eq!(decoder.decode(&mut buffer), Some(value("{\"a\":[1,2]}")));
    }
}
