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
//! # Decoding speed
//!
//! [`FrameDecoder::decode`] has two paths with the same results:
//!
//! - a block scan for the common case, inside a frame with at least 128 bytes
//!   of input left: each 64-byte block becomes a bitmap of its `FF`/`FE`/`FA`
//!   bytes (AVX2 when the CPU has it, else SSE2, else portable SWAR; see the
//!   private `scan` module), and the loop jumps from one special byte to the
//!   next with `trailing_zeros`. The run before each one is appended to the
//!   reused body buffer as a fixed 64-byte copy, valid escapes are undone
//!   inline, and `FE FF` between frames delivers one body and starts the next
//!   without leaving the loop;
//! - a byte-exact state machine with `memchr` for everything else: garbage
//!   between frames, raw `FF` in a frame, bad escapes, empty frames, bodies
//!   within 64 bytes of the size limit, and the last bytes of each input.
//!
//! The block scan stops, without consuming it, at anything it does not
//! handle, so the rules (resync, drops, counters, the size limit, any
//! chunking) live in the state machine alone. Property tests check both
//! paths together against a byte-at-a-time reference decoder, and every
//! bitmap function against a scalar one. On the benchmark stream
//! (`benches/frame_decode.rs`: random 64–256-byte bodies) decoding runs at
//! about a fifth of memcpy speed; see BENCHMARKS.md.
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

mod scan;

use scan::BLOCK;

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
    body: BodyBuf,
    max_body: usize,
    stats: DecoderStats,
}

/// The decoder's body buffer: `buf[..len]` is the body, and `buf` keeps
/// [`BLOCK`] bytes of slack past `len` once the block scan has used it, so a
/// run can be appended by copying a whole fixed-size block (a few vector
/// moves, no `memcpy` call) and then counting only the bytes that belong.
#[derive(Clone, Default)]
struct BodyBuf {
    buf: Vec<u8>,
    len: usize,
}

impl std::fmt::Debug for BodyBuf {
    /// Only the body, not the slack.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl BodyBuf {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Makes `buf` at least `len + extra` bytes long. Grows by doubling, so
    /// the buffer still only grows as large bodies actually arrive.
    #[inline]
    fn reserve(&mut self, extra: usize) {
        let need = self.len + extra;
        if need > self.buf.len() {
            self.grow(need);
        }
    }

    #[cold]
    fn grow(&mut self, need: usize) {
        let size = need.max(2 * self.buf.len()).max(2 * BLOCK);
        self.buf.resize(size, 0);
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.reserve(1);
        self.buf[self.len] = byte;
        self.len += 1;
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `block[..keep]` (`keep <= BLOCK`) by copying all of `block`,
    /// a fixed-size copy the compiler turns into a few vector moves.
    #[inline(always)]
    fn extend_from_block(&mut self, block: &[u8], keep: usize) {
        self.reserve(BLOCK);
        self.buf[self.len..self.len + BLOCK].copy_from_slice(&block[..BLOCK]);
        self.len += keep;
    }
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
            body: BodyBuf::default(),
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
    /// Inside a frame the input is walked 64 bytes at a time with a bitmap
    /// of its special bytes (see [decoding speed](crate::frame#decoding-speed)):
    /// runs of ordinary bytes are copied in bulk, valid escapes are undone
    /// inline, and a frame that ends with `FE` directly followed by the next
    /// `FF` is delivered without leaving that loop. Everything else (garbage,
    /// raw `FF` inside a frame, bad escapes, empty frames, bodies near the
    /// size limit, the last < 128 bytes of the input) goes through the
    /// byte-exact state machine, with `memchr` for the runs.
    pub fn decode(&mut self, input: &[u8], mut on_frame: impl FnMut(&[u8])) {
        self.decode_with(input, &mut on_frame, |decoder, rest, on_frame| {
            decoder.scan_blocks(rest, on_frame)
        });
    }

    /// [`decode`](Self::decode) with the block scan as a parameter, so the
    /// unit tests can run it with each bitmap function, not only the one
    /// this CPU dispatches to.
    #[inline(always)]
    fn decode_with<F: FnMut(&[u8])>(
        &mut self,
        input: &[u8],
        on_frame: &mut F,
        scan_blocks: impl Fn(&mut Self, &[u8], &mut F) -> usize,
    ) {
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
                // The block scan first, then the byte-exact path for whatever
                // it stopped at (it leaves the state `Body` or `Hunt`).
                State::Body if rest.len() >= 2 * BLOCK => {
                    rest = &rest[scan_blocks(self, rest, on_frame)..];
                    if self.state == State::Body {
                        rest = self.body_step(rest, on_frame);
                    }
                }
                State::Body => rest = self.body_step(rest, on_frame),
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

    /// One step of the `Body` state through [`scan_body`](Self::scan_body):
    /// consumes body bytes up to the next delimiter, unfinished escape or size
    /// limit, acts on it, and returns the input after it.
    fn body_step<'a>(&mut self, rest: &'a [u8], on_frame: &mut impl FnMut(&[u8])) -> &'a [u8] {
        match self.scan_body(rest) {
            Run::End => &[],
            Run::Oversize(i) => {
                self.stats.dropped_oversize += 1;
                self.state = State::Skip;
                &rest[i..]
            }
            Run::Special(i) => {
                match rest[i] {
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
                            on_frame(self.body.as_slice());
                        }
                    }
                    _ => self.state = State::Escape,
                }
                &rest[i + 1..]
            }
        }
    }

    #[inline]
    fn open_frame(&mut self) {
        self.body.clear();
        self.state = State::Body;
    }

    /// The fast path of [`decode`](Self::decode) for the `Body` state: walks
    /// `input` in [`BLOCK`]-byte blocks using a bitmap of their special bytes
    /// (see [`scan`]), copying each run before a special byte into the body,
    /// undoing valid escapes, and delivering frames whose `FE` is directly
    /// followed by the next `FF`.
    ///
    /// It stops at anything else and leaves it to the state machine, which
    /// handles it exactly as it would without this loop: a raw `FF`, an
    /// empty frame, an invalid escape, an `FE` not followed by `FF` (the state
    /// is then `Hunt`), a body within [`BLOCK`] bytes of the size limit, or
    /// fewer than `2 * BLOCK` bytes left. Returns the offset reached; bytes
    /// before it are consumed.
    fn scan_blocks(&mut self, input: &[u8], on_frame: &mut impl FnMut(&[u8])) -> usize {
        scan::dispatch(BlockScan {
            decoder: self,
            input,
            on_frame,
        })
    }

    /// The loop of [`scan_blocks`](Self::scan_blocks), with the bitmap
    /// function that [`scan::dispatch`] picked for this CPU.
    #[inline(always)]
    fn scan_blocks_with(
        &mut self,
        input: &[u8],
        on_frame: &mut impl FnMut(&[u8]),
        special_mask: impl Fn(&[u8; BLOCK]) -> u64,
    ) -> usize {
        // First byte not yet consumed. At the start of a block it is the
        // block's first byte, or the second when the first was consumed with
        // the special byte before it (an escaped byte, or the `FF` after `FE`).
        let mut cursor = 0;
        let mut base = 0;
        // The block and the one after it: a run is copied as the whole BLOCK
        // bytes from its start, and an escape at the last position reads one
        // byte further.
        while let Some(window) = input.get(base..base + 2 * BLOCK) {
            // A block adds at most BLOCK body bytes (each input byte gives at
            // most one), so checking the limit here covers every run and
            // escape in it; frames close to the limit take the exact path.
            // (`body.len() <= max_body` always holds, so no underflow.)
            if self.max_body - self.body.len() < BLOCK {
                return cursor;
            }
            // Room for those bytes plus the 64-byte copy that writes them.
            self.body.reserve(2 * BLOCK);
            let block: &[u8; BLOCK] = window[..BLOCK].try_into().expect("BLOCK bytes");
            let mut mask = special_mask(block) & bits_from(cursor - base);
            while mask != 0 {
                let at = mask.trailing_zeros() as usize;
                let from = cursor - base;
                self.body
                    .extend_from_block(&window[from..from + BLOCK], at - from);
                match block[at] {
                    ESC => match unescape_byte(window[at + 1]) {
                        Some(v) => self.body.push(v),
                        None => return base + at,
                    },
                    END if !self.body.is_empty() => {
                        self.stats.frames += 1;
                        on_frame(self.body.as_slice());
                        if window[at + 1] != START {
                            self.state = State::Hunt;
                            return base + at + 1;
                        }
                        // `FE FF`: the next frame starts at once.
                        self.body.clear();
                    }
                    _ => return base + at,
                }
                // Both kinds consume the special byte and the one after it.
                cursor = base + at + 2;
                mask &= bits_from(at + 2);
            }
            let from = cursor - base;
            if from < BLOCK {
                self.body
                    .extend_from_block(&window[from..from + BLOCK], BLOCK - from);
                cursor = base + BLOCK;
            }
            base += BLOCK;
        }
        cursor
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

/// [`FrameDecoder::scan_blocks`] as a [`scan::Kernel`], so that
/// [`scan::dispatch`] can compile it for the CPU's instruction set.
struct BlockScan<'a, 'b, F> {
    decoder: &'b mut FrameDecoder,
    input: &'a [u8],
    on_frame: &'b mut F,
}

impl<F: FnMut(&[u8])> scan::Kernel for BlockScan<'_, '_, F> {
    type Output = usize;

    #[inline(always)]
    fn run(self, mask: impl Fn(&[u8; BLOCK]) -> u64) -> usize {
        self.decoder
            .scan_blocks_with(self.input, self.on_frame, mask)
    }
}

/// The bits at positions `from` and above (none when `from >= 64`).
#[inline(always)]
fn bits_from(from: usize) -> u64 {
    u64::MAX.checked_shl(from as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A bitmap function, as the block scan takes it.
    type MaskFn = fn(&[u8; BLOCK]) -> u64;

    /// Decodes `input` in `chunk`-byte pieces with the block scan fixed to one
    /// bitmap function (`None`: whatever `decode` dispatches to).
    fn decode_using(
        input: &[u8],
        chunk: usize,
        mask: Option<MaskFn>,
    ) -> (Vec<Vec<u8>>, DecoderStats, bool) {
        let mut d = FrameDecoder::new();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut on_frame = |body: &[u8]| frames.push(body.to_vec());
            match mask {
                None => d.decode(piece, &mut on_frame),
                Some(mask) => d.decode_with(piece, &mut on_frame, |d, rest, f| {
                    d.scan_blocks_with(rest, f, mask)
                }),
            }
        }
        (frames, d.stats(), d.in_frame())
    }

    /// Every bitmap function this machine can run in the block scan. (The
    /// integration tests compare `decode`, i.e. the dispatched one, with a
    /// byte-at-a-time reference decoder.)
    fn masks() -> Vec<(&'static str, MaskFn)> {
        #[allow(unused_mut)]
        let mut masks: Vec<(&'static str, MaskFn)> = vec![
            ("scalar", scan::special_mask_scalar),
            ("swar", scan::special_mask_swar),
        ];
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        masks.push(("sse2", scan::special_mask_sse2));
        masks
    }

    fn wire_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => any::<u8>(),
            1 => Just(START),
            1 => Just(END),
            2 => Just(ESC),
            1 => prop::sample::select(vec![0x05u8, 0x04, 0x00]),
        ]
    }

    proptest! {
        /// The block scan gives the same frames and stats whichever bitmap
        /// function it runs with, on good frames mixed with raw bytes.
        #[test]
        fn block_scan_agrees_across_bitmap_functions(
            parts in prop::collection::vec(
                (
                    prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => wire_byte()], 0..400),
                    prop::collection::vec(wire_byte(), 0..6),
                ),
                0..12,
            ),
            chunk in prop_oneof![Just(usize::MAX), 1usize..300],
        ) {
            let mut input = Vec::new();
            for (body, raw) in &parts {
                encode_frame(body, &mut input);
                input.extend(raw);
            }
            let want = decode_using(&input, chunk, None);
            for (name, mask) in masks() {
                prop_assert_eq!(&decode_using(&input, chunk, Some(mask)), &want, "{}", name);
            }
        }
    }

    #[test]
    fn block_scan_runs_on_long_frames() {
        // Guards against the fast path silently never running: after the
        // opening FF it should consume all but the last 128 bytes or so.
        let mut wire = Vec::new();
        for i in 0..20u8 {
            encode_frame(&[i; 100], &mut wire);
            encode_frame(&[0xFA, i, 0xFF, 0xFE], &mut wire);
        }
        let mut d = FrameDecoder::new();
        d.open_frame();
        let mut frames = 0;
        let used = d.scan_blocks(&wire[1..], &mut |_: &[u8]| frames += 1);
        assert!(used + 2 * BLOCK >= wire.len(), "{used} of {}", wire.len());
        assert!(frames >= 38, "{frames}");
    }

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
