//! Byte-stuffed uart framing (PROFILE.md, uart family).
//!
//! A frame on the wire is `0xFF`, the escaped body, `0xFE`. Inside the body the
//! three special bytes are sent as [`ESC`] followed by the byte XOR `0xFA`:
//!
//! | body byte | on the wire |
//! |-----------|-------------|
//! | `0xFF`    | `FA 05`     |
//! | `0xFE`    | `FA 04`     |
//! | `0xFA`    | `FA 00`     |
//!
//! Every other byte is sent as is, so a delimiter never appears inside a body
//! and a receiver can always resynchronise on the next `0xFF`.
//!
//! Use [`encode_frame`] / [`encoded_frame`] to send, [`FrameDecoder`] to receive
//! from a byte stream in arbitrary chunks, and [`decode_frame`] when you hold
//! exactly one whole frame.
//!
//! ```
//! use specwire_wire::frame::{encoded_frame, FrameDecoder};
//!
//! let wire = encoded_frame(&[0x01, 0xFF, 0x02]);
//! assert_eq!(wire, [0xFF, 0x01, 0xFA, 0x05, 0x02, 0xFE]);
//!
//! // The decoder copes with any chunking, even between 0xFA and its escaped byte.
//! let mut decoder = FrameDecoder::new();
//! let mut frames = Vec::new();
//! for chunk in wire.chunks(3) {
//!     decoder.decode(chunk, |body| frames.push(body.to_vec()));
//! }
//! assert_eq!(frames, [vec![0x01, 0xFF, 0x02]]);
//! assert_eq!(decoder.stats().frames, 1);
//! ```

use memchr::{memchr, memchr2, memchr3};

/// Start-of-frame delimiter.
pub const START: u8 = 0xFF;
/// End-of-frame delimiter.
pub const END: u8 = 0xFE;
/// Escape marker; the next byte is the original byte XOR [`ESC_XOR`].
pub const ESC: u8 = 0xFA;
/// Value XOR-ed into an escaped byte (chosen so `FA` escapes to `00`).
pub const ESC_XOR: u8 = 0xFA;
/// Default limit on an unescaped body, so a stream without an end byte cannot
/// grow the decoder's buffer without bound.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Maps the byte after [`ESC`] back to the body byte, or `None` if it is not
/// one of the three valid escapes (`05`, `04`, `00`).
#[inline]
fn unescape_byte(b: u8) -> Option<u8> {
    let v = b ^ ESC_XOR;
    matches!(v, START | END | ESC).then_some(v)
}

/// Appends the escaped form of `body` (no delimiters) to `out`.
///
/// Runs without special bytes are copied in bulk, so the common case is a
/// single `memchr3` plus one `extend_from_slice`.
pub fn escape_into(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len());
    let mut rest = body;
    while let Some(i) = memchr3(START, END, ESC, rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(&[ESC, rest[i] ^ ESC_XOR]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends one complete frame (`FF`, escaped `body`, `FE`) to `out`.
///
/// Appending rather than returning lets callers batch many frames into one
/// write buffer without extra allocations.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + 2);
    out.push(START);
    escape_into(body, out);
    out.push(END);
}

/// Returns one complete frame for `body` in a new `Vec`.
pub fn encoded_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2 + body.len() / 16);
    encode_frame(body, &mut out);
    out
}

/// Reverses [`escape_into`]: turns an escaped body (no delimiters) back into
/// the original bytes.
///
/// Fails on a delimiter inside the body, an invalid escape, or an escape
/// marker as the last byte.
pub fn unescape(escaped: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut pos = 0;
    while let Some(i) = memchr3(START, END, ESC, &escaped[pos..]) {
        let at = pos + i;
        out.extend_from_slice(&escaped[pos..at]);
        if escaped[at] != ESC {
            return Err(FrameError::UnescapedDelimiter { offset: at });
        }
        let Some(&next) = escaped.get(at + 1) else {
            return Err(FrameError::TruncatedEscape { offset: at });
        };
        let Some(v) = unescape_byte(next) else {
            return Err(FrameError::BadEscape {
                offset: at,
                byte: next,
            });
        };
        out.push(v);
        pos = at + 2;
    }
    out.extend_from_slice(&escaped[pos..]);
    Ok(out)
}

/// Why [`decode_frame`] or [`unescape`] rejected its input. Offsets are byte
/// positions in the input given to that function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The input is empty or does not begin with the start byte.
    #[error("frame does not start with 0xFF")]
    MissingStart,
    /// The input ends before the end byte (possibly right after an `0xFA`).
    #[error("frame has no closing 0xFE")]
    MissingEnd,
    /// `0xFA` followed by something other than `05`, `04` or `00`.
    #[error(
        "bad escape at offset {offset}: 0xfa followed by {byte:#04x} (expected 0x05, 0x04 or 0x00)"
    )]
    BadEscape {
        /// Offset of the `0xFA` byte.
        offset: usize,
        /// The byte that followed it.
        byte: u8,
    },
    /// A raw `0xFF` inside a frame, or a raw `0xFF`/`0xFE` inside an escaped body.
    #[error("unescaped delimiter at offset {offset}")]
    UnescapedDelimiter {
        /// Offset of the delimiter byte.
        offset: usize,
    },
    /// An escaped body ends with a lone `0xFA`.
    #[error("escape byte 0xfa at offset {offset} is the last byte")]
    TruncatedEscape {
        /// Offset of the `0xFA` byte.
        offset: usize,
    },
    /// Bytes follow the closing `0xFE`.
    #[error("trailing bytes after the closing 0xfe, starting at offset {offset}")]
    TrailingBytes {
        /// Offset of the first byte after the frame.
        offset: usize,
    },
    /// The frame is `FF FE` with nothing in between.
    #[error("frame body is empty")]
    Empty,
    /// The unescaped body is longer than the limit.
    #[error("frame body is longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
}

/// Decodes exactly one whole frame (`FF`, escaped body, `FE`) into its body.
///
/// Strict on purpose: anything a [`FrameDecoder`] would drop or skip is an
/// error here, so it suits tests, CLIs and fixtures. Bodies longer than
/// [`DEFAULT_MAX_BODY`] are rejected as [`FrameError::TooLong`].
pub fn decode_frame(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    if bytes.first() != Some(&START) {
        return Err(FrameError::MissingStart);
    }
    let max = DEFAULT_MAX_BODY;
    let too_long = FrameError::TooLong { max };
    let mut body = Vec::new();
    let mut pos = 1;
    loop {
        let rest = &bytes[pos..];
        let Some(i) = memchr3(START, END, ESC, rest) else {
            return Err(if body.len() + rest.len() > max {
                too_long
            } else {
                FrameError::MissingEnd
            });
        };
        if body.len() + i > max {
            return Err(too_long);
        }
        body.extend_from_slice(&rest[..i]);
        let at = pos + i;
        match bytes[at] {
            START => return Err(FrameError::UnescapedDelimiter { offset: at }),
            END => {
                return if at + 1 != bytes.len() {
                    Err(FrameError::TrailingBytes { offset: at + 1 })
                } else if body.is_empty() {
                    Err(FrameError::Empty)
                } else {
                    Ok(body)
                };
            }
            _ => {
                let Some(&next) = bytes.get(at + 1) else {
                    return Err(FrameError::MissingEnd);
                };
                let Some(v) = unescape_byte(next) else {
                    return Err(FrameError::BadEscape {
                        offset: at,
                        byte: next,
                    });
                };
                if body.len() >= max {
                    return Err(too_long);
                }
                body.push(v);
                pos = at + 2;
            }
        }
    }
}

/// Counters kept by a [`FrameDecoder`] since it was created or [`reset`](FrameDecoder::reset).
///
/// Every `0xFF` the decoder sees opens a frame, and every opened frame ends as
/// exactly one of `frames` or a drop, so
/// `frames + dropped() + (1 if in a frame else 0)` equals the number of `0xFF`
/// bytes seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DecoderStats {
    /// Frames delivered to the callback.
    pub frames: u64,
    /// Frames dropped because `0xFA` was followed by an invalid byte.
    pub dropped_bad_escape: u64,
    /// Frames cut short by a raw `0xFF` (the `0xFF` starts the next frame).
    pub dropped_truncated: u64,
    /// Frames whose unescaped body exceeded the decoder's maximum.
    pub dropped_oversize: u64,
    /// `FF FE` frames with an empty body.
    pub dropped_empty: u64,
    /// Bytes seen outside any frame (before a `0xFF`). The tail of a frame that
    /// was already dropped is not counted here.
    pub garbage_bytes: u64,
}

impl DecoderStats {
    /// Total frames dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_bad_escape
            + self.dropped_truncated
            + self.dropped_oversize
            + self.dropped_empty
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside a frame, waiting for `0xFF`; bytes here are garbage.
    Hunt,
    /// Inside a frame, collecting body bytes.
    Body,
    /// Inside a frame, the previous byte was `0xFA`.
    Escape,
    /// The current frame was dropped; ignore bytes until `0xFF` (new frame) or
    /// `0xFE` (end of the dropped frame).
    Skip,
}

/// Streaming decoder: feed it bytes as they arrive, in chunks of any size, and
/// it calls back with each complete, unescaped frame body.
///
/// The body buffer is reused between frames, so the hot path does not
/// allocate; the callback borrows the body and must copy it to keep it. The
/// decoder never panics, whatever the input; malformed frames are dropped and
/// counted in [`stats`](Self::stats).
///
/// ```
/// use specwire_wire::frame::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new();
/// let mut bodies = Vec::new();
/// // Garbage, a good frame, a bad escape (FA 99), an empty frame, a good frame.
/// let input = [0x00, 0xFF, 0x01, 0xFE, 0xFF, 0xFA, 0x99, 0xFE, 0xFF, 0xFE, 0xFF, 0x02, 0xFE];
/// decoder.decode(&input, |body| bodies.push(body.to_vec()));
/// assert_eq!(bodies, [vec![0x01], vec![0x02]]);
/// let stats = decoder.stats();
/// assert_eq!((stats.frames, stats.dropped_bad_escape, stats.dropped_empty), (2, 1, 1));
/// assert_eq!(stats.garbage_bytes, 1);
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    /// Body of the frame being collected; cleared, not freed, between frames.
    body: Vec<u8>,
    max_body: usize,
    stats: DecoderStats,
}

/// How [`FrameDecoder::scan_body`] stopped; each carries the input offset reached.
enum Run {
    /// At a delimiter, or at an `0xFA` that is invalid or whose second byte is
    /// in the next chunk (not yet consumed).
    Special(usize),
    /// The body outgrew the limit; bytes up to here hold no delimiter.
    Oversize(usize),
    /// The whole input was body bytes.
    End,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts bodies up to [`DEFAULT_MAX_BODY`] bytes.
    pub fn new() -> Self {
        Self::with_max_body(DEFAULT_MAX_BODY)
    }

    /// A decoder that drops (as oversize) any frame whose unescaped body is
    /// longer than `max_body` bytes. The buffer grows on demand, not up front.
    pub fn with_max_body(max_body: usize) -> Self {
        Self {
            state: State::Hunt,
            body: Vec::new(),
            max_body,
            stats: DecoderStats::default(),
        }
    }

    /// The body size limit this decoder was built with.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Counters since creation or the last [`reset`](Self::reset).
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Whether a frame has been opened by `0xFF` and is still being collected.
    pub fn in_frame(&self) -> bool {
        matches!(self.state, State::Body | State::Escape)
    }

    /// Returns to the state of a fresh decoder (same limit): any partial frame
    /// is discarded without being counted, and the counters go to zero. Use it
    /// when the byte stream itself restarts, e.g. the port was reopened.
    pub fn reset(&mut self) {
        self.state = State::Hunt;
        self.body.clear();
        self.stats = DecoderStats::default();
    }

    /// Feeds `input` and calls `on_frame` with the body of every frame that
    /// completes inside it. Partial frames are kept for the next call.
    ///
    /// Runs of ordinary bytes are found with `memchr` and copied in bulk, and
    /// valid escapes are undone inline; only delimiters, bad escapes and
    /// chunk boundaries go through the state machine. That keeps decoding
    /// above 1 GB/s on typical frames (see `benches/frame_decode.rs`).
    pub fn decode(&mut self, input: &[u8], mut on_frame: impl FnMut(&[u8])) {
        let mut rest = input;
        while let Some((&first, tail)) = rest.split_first() {
            match self.state {
                // The next frame usually starts right away: skip the memchr call.
                State::Hunt if first == START => {
                    self.open_frame();
                    rest = tail;
                }
                State::Hunt => match memchr(START, rest) {
                    None => {
                        self.stats.garbage_bytes += rest.len() as u64;
                        return;
                    }
                    Some(i) => {
                        self.stats.garbage_bytes += i as u64;
                        self.open_frame();
                        rest = &rest[i + 1..];
                    }
                },
                State::Skip => match memchr2(START, END, rest) {
                    None => return,
                    Some(i) => {
                        if rest[i] == START {
                            self.open_frame();
                        } else {
                            self.state = State::Hunt;
                        }
                        rest = &rest[i + 1..];
                    }
                },
                State::Body => match self.scan_body(rest) {
                    Run::End => return,
                    Run::Oversize(i) => {
                        self.stats.dropped_oversize += 1;
                        self.state = State::Skip;
                        rest = &rest[i..];
                    }
                    Run::Special(i) => {
                        let byte = rest[i];
                        rest = &rest[i + 1..];
                        match byte {
                            START => {
                                self.stats.dropped_truncated += 1;
                                self.open_frame();
                            }
                            END => {
                                self.state = State::Hunt;
                                if self.body.is_empty() {
                                    self.stats.dropped_empty += 1;
                                } else {
                                    self.stats.frames += 1;
                                    on_frame(&self.body);
                                }
                            }
                            _ => self.state = State::Escape,
                        }
                    }
                },
                State::Escape => {
                    rest = tail;
                    match unescape_byte(first) {
                        Some(_) if self.body.len() >= self.max_body => {
                            self.stats.dropped_oversize += 1;
                            self.state = State::Skip;
                        }
                        Some(v) => {
                            self.body.push(v);
                            self.state = State::Body;
                        }
                        None => {
                            self.stats.dropped_bad_escape += 1;
                            match first {
                                START => self.open_frame(),
                                END => self.state = State::Hunt,
                                _ => self.state = State::Skip,
                            }
                        }
                    }
                }
            }
        }
    }

    /// Convenience over [`decode`](Self::decode) that collects owned bodies.
    /// Allocates per frame; prefer `decode` on hot paths.
    pub fn decode_vec(&mut self, input: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        self.decode(input, |body| frames.push(body.to_vec()));
        frames
    }

    fn open_frame(&mut self) {
        self.body.clear();
        self.state = State::Body;
    }

    /// Appends body bytes from `input`, unescaping valid escapes on the way,
    /// until a delimiter, an escape it cannot finish here (invalid, or split
    /// from its second byte by the chunk boundary), the size limit, or the end.
    ///
    /// Each run up to the next special byte is found with `memchr3` and copied
    /// in one go; valid escapes are handled right here rather than through the
    /// state machine, since they are the most common special byte.
    fn scan_body(&mut self, input: &[u8]) -> Run {
        let max = self.max_body;
        let mut i = 0;
        loop {
            let rest = &input[i..];
            let special = memchr3(START, END, ESC, rest);
            let run = special.unwrap_or(rest.len());
            // `body.len() <= max_body` holds between runs, so no underflow.
            if run > max - self.body.len() {
                return Run::Oversize(i);
            }
            self.body.extend_from_slice(&rest[..run]);
            i += run;
            if special.is_none() {
                return Run::End;
            }
            if input[i] == ESC {
                if let Some(v) = input.get(i + 1).and_then(|&b| unescape_byte(b)) {
                    if self.body.len() >= max {
                        return Run::Oversize(i);
                    }
                    self.body.push(v);
                    i += 2;
                    continue;
                }
            }
            return Run::Special(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_byte_accepts_only_three_escapes() {
        let valid: Vec<(u8, u8)> = (0..=255u8)
            .filter_map(|b| unescape_byte(b).map(|v| (b, v)))
            .collect();
        assert_eq!(valid, [(0x00, 0xFA), (0x04, 0xFE), (0x05, 0xFF)]);
    }

    #[test]
    fn escape_into_appends() {
        let mut out = vec![0x11];
        escape_into(&[0xFA, 0x01], &mut out);
        assert_eq!(out, [0x11, 0xFA, 0x00, 0x01]);
    }

    #[test]
    fn unescape_reverses_escape_and_reports_errors() {
        assert_eq!(unescape(&[0xFA, 0x05, 0x01]), Ok(vec![0xFF, 0x01]));
        assert_eq!(unescape(&[]), Ok(vec![]));
        assert_eq!(
            unescape(&[0x01, 0xFA]),
            Err(FrameError::TruncatedEscape { offset: 1 })
        );
        assert_eq!(
            unescape(&[0xFA, 0x06]),
            Err(FrameError::BadEscape {
                offset: 0,
                byte: 0x06
            })
        );
        assert_eq!(
            unescape(&[0x01, 0xFE]),
            Err(FrameError::UnescapedDelimiter { offset: 1 })
        );
    }

    #[test]
    fn oversize_by_escape_byte_is_dropped() {
        let mut d = FrameDecoder::with_max_body(2);
        // Body would be 01 02 FF: three bytes, the third from an escape.
        let frames = d.decode_vec(&[0xFF, 0x01, 0x02, 0xFA, 0x05, 0xFE, 0xFF, 0x03, 0xFE]);
        assert_eq!(frames, [vec![0x03]]);
        assert_eq!(d.stats().dropped_oversize, 1);
        assert_eq!(d.stats().garbage_bytes, 0);
    }

    #[test]
    fn exactly_max_body_is_accepted() {
        let mut d = FrameDecoder::with_max_body(3);
        let frames = d.decode_vec(&encoded_frame(&[0xFA, 0x01, 0xFF]));
        assert_eq!(frames, [vec![0xFA, 0x01, 0xFF]]);
    }

    #[test]
    fn zero_max_body_drops_everything_without_panicking() {
        let mut d = FrameDecoder::with_max_body(0);
        let frames = d.decode_vec(&[0xFF, 0x01, 0xFE, 0xFF, 0xFA, 0x00, 0xFE, 0xFF, 0xFE]);
        assert!(frames.is_empty());
        let s = d.stats();
        assert_eq!((s.dropped_oversize, s.dropped_empty), (2, 1));
    }

    #[test]
    fn reset_clears_partial_frame_and_stats() {
        let mut d = FrameDecoder::new();
        d.decode(&[0x00, 0xFF, 0x01, 0xFA], |_| {});
        assert!(d.in_frame());
        d.reset();
        assert!(!d.in_frame());
        assert_eq!(d.stats(), DecoderStats::default());
        // The 0x05 that would have completed the escape is now garbage.
        assert_eq!(d.decode_vec(&[0x05, 0xFF, 0x07, 0xFE]), [vec![0x07]]);
        assert_eq!(d.stats().garbage_bytes, 1);
    }

    #[test]
    fn error_messages_are_readable() {
        let e = FrameError::BadEscape {
            offset: 3,
            byte: 0x99,
        };
        assert_eq!(
            e.to_string(),
            "bad escape at offset 3: 0xfa followed by 0x99 (expected 0x05, 0x04 or 0x00)"
        );
        assert_eq!(
            FrameError::TooLong { max: 10 }.to_string(),
            "frame body is longer than 10 bytes"
        );
    }
}
