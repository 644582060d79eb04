//! Black-box tests of the uart framing: golden vectors, the streaming decoder's
//! drop/resync rules under every chunking, and property tests against a naive
//! byte-at-a-time reference decoder.
//!
//! The decoder has two paths: a 64-byte block scan for the common case (runs,
//! valid escapes, `FE FF` between frames; it needs 128 bytes of input and a
//! body at least 64 bytes under the limit) and the byte-exact state machine
//! for everything else. The `fast_path` tests use inputs long enough for the
//! block scan, put every special byte at every position around a block
//! boundary, and compare frames and stats with the reference model.

use proptest::prelude::*;
use specwire_wire::{
    decode_frame, encode_frame, encoded_frame, parse_hex, unescape, DecoderStats, FrameDecoder,
    FrameError, DEFAULT_MAX_BODY,
};

fn hex(text: &str) -> Vec<u8> {
    parse_hex(text).expect("test vector is valid hex")
}

/// Feeds `input` split at `splits` (sorted offsets) and returns frames + stats.
fn decode_split(
    decoder: &mut FrameDecoder,
    input: &[u8],
    splits: &[usize],
) -> (Vec<Vec<u8>>, DecoderStats) {
    let mut frames = Vec::new();
    let mut start = 0;
    for &s in splits.iter().chain(std::iter::once(&input.len())) {
        let s = s.clamp(start, input.len());
        decoder.decode(&input[start..s], |b| frames.push(b.to_vec()));
        start = s;
    }
    (frames, decoder.stats())
}

fn decode_all(input: &[u8]) -> (Vec<Vec<u8>>, DecoderStats) {
    decode_split(&mut FrameDecoder::new(), input, &[])
}

// ---------------------------------------------------------------- golden vectors

const GOLDEN: &[(&str, &str)] = &[
    ("ff", "ff fa 05 fe"),
    ("fe", "ff fa 04 fe"),
    ("fa", "ff fa 00 fe"),
    ("ff fe fa", "ff fa 05 fa 04 fa 00 fe"),
    ("fa fa ff ff", "ff fa 00 fa 00 fa 05 fa 05 fe"),
    ("01 02 03 53 7f 80 fb fd", "ff 01 02 03 53 7f 80 fb fd fe"),
    ("00", "ff 00 fe"),
    ("05 04 00", "ff 05 04 00 fe"),
    (
        "10 ff 20 fe 30 fa 40",
        "ff 10 fa 05 20 fa 04 30 fa 00 40 fe",
    ),
];

#[test]
fn golden_encode() {
    for (body, wire) in GOLDEN {
        assert_eq!(encoded_frame(&hex(body)), hex(wire), "body {body}");
    }
}

#[test]
fn golden_decode_frame() {
    for (body, wire) in GOLDEN {
        assert_eq!(decode_frame(&hex(wire)), Ok(hex(body)), "wire {wire}");
    }
}

#[test]
fn golden_streaming() {
    let mut stream = Vec::new();
    for (_, wire) in GOLDEN {
        stream.extend(hex(wire));
    }
    let (frames, stats) = decode_all(&stream);
    let want: Vec<Vec<u8>> = GOLDEN.iter().map(|(b, _)| hex(b)).collect();
    assert_eq!(frames, want);
    assert_eq!(stats.frames, GOLDEN.len() as u64);
    assert_eq!(stats.dropped(), 0);
    assert_eq!(stats.garbage_bytes, 0);
}

#[test]
fn encode_frame_appends_and_unescape_inverts() {
    let mut out = hex("aa");
    encode_frame(&hex("ff 01"), &mut out);
    encode_frame(&hex("02"), &mut out);
    assert_eq!(out, hex("aa ff fa 05 01 fe ff 02 fe"));
    assert_eq!(
        unescape(&hex("fa 05 fa 04 fa 00 11")),
        Ok(hex("ff fe fa 11"))
    );
}

#[test]
fn round_trip_all_byte_values() {
    let body: Vec<u8> = (0..=255).rev().chain(0..=255).collect();
    let wire = encoded_frame(&body);
    assert_eq!(wire.len(), body.len() + 2 + 6);
    assert_eq!(decode_frame(&wire), Ok(body.clone()));
    assert_eq!(decode_all(&wire).0, [body]);
}

// ---------------------------------------------------------------- decode_frame errors

#[test]
fn decode_frame_errors() {
    let cases: &[(&str, FrameError)] = &[
        ("", FrameError::MissingStart),
        ("01 ff 02 fe", FrameError::MissingStart),
        ("ff 01 02", FrameError::MissingEnd),
        ("ff", FrameError::MissingEnd),
        ("ff 01 fa", FrameError::MissingEnd),
        (
            "ff 01 fa 06 fe",
            FrameError::BadEscape {
                offset: 2,
                byte: 0x06,
            },
        ),
        (
            "ff 01 fa fe",
            FrameError::BadEscape {
                offset: 2,
                byte: 0xFE,
            },
        ),
        (
            "ff 01 ff 02 fe",
            FrameError::UnescapedDelimiter { offset: 2 },
        ),
        ("ff 01 fe 00", FrameError::TrailingBytes { offset: 3 }),
        ("ff 01 fe ff 02 fe", FrameError::TrailingBytes { offset: 3 }),
        ("ff fe", FrameError::Empty),
    ];
    for (wire, want) in cases {
        assert_eq!(
            decode_frame(&hex(wire)).as_ref(),
            Err(want),
            "wire {wire:?}"
        );
    }
}

#[test]
fn decode_frame_too_long() {
    let ok = encoded_frame(&vec![0x11; DEFAULT_MAX_BODY]);
    assert_eq!(decode_frame(&ok).map(|b| b.len()), Ok(DEFAULT_MAX_BODY));
    let max = DEFAULT_MAX_BODY;
    for body in [vec![0x11; max + 1], {
        let mut b = vec![0x11; max];
        b.push(0xFF);
        b
    }] {
        assert_eq!(
            decode_frame(&encoded_frame(&body)),
            Err(FrameError::TooLong { max })
        );
    }
    // Too long and unterminated: the size is the more useful complaint.
    let mut open = vec![0xFF];
    open.extend(vec![0x11; max + 1]);
    assert_eq!(decode_frame(&open), Err(FrameError::TooLong { max }));
}

#[test]
fn frame_error_messages() {
    let msgs = [
        (FrameError::MissingStart, "frame does not start with 0xFF"),
        (FrameError::MissingEnd, "frame has no closing 0xFE"),
        (
            FrameError::UnescapedDelimiter { offset: 4 },
            "unescaped delimiter at offset 4",
        ),
        (
            FrameError::TrailingBytes { offset: 9 },
            "trailing bytes after the closing 0xfe, starting at offset 9",
        ),
        (FrameError::Empty, "frame body is empty"),
    ];
    for (err, msg) in msgs {
        assert_eq!(err.to_string(), msg);
    }
}

// ---------------------------------------------------------------- streaming rules

#[test]
fn resync_after_garbage() {
    let (frames, stats) = decode_all(&hex("00 13 fe fa 05 ff 53 fe 77 88 ff 54 fe"));
    assert_eq!(frames, [hex("53"), hex("54")]);
    assert_eq!(stats.garbage_bytes, 7);
    assert_eq!(stats.dropped(), 0);
}

#[test]
fn truncated_frame_is_dropped_and_ff_starts_next() {
    let (frames, stats) = decode_all(&hex("ff 01 02 ff 03 fe"));
    assert_eq!(frames, [hex("03")]);
    assert_eq!(stats.dropped_truncated, 1);
    assert_eq!(stats.dropped(), 1);
    // Repeated start bytes: each one truncates the (empty) frame before it.
    let (frames, stats) = decode_all(&hex("ff ff ff 04 fe"));
    assert_eq!(frames, [hex("04")]);
    assert_eq!(stats.dropped_truncated, 2);
}

#[test]
fn bad_escape_skips_to_next_ff() {
    // FA 99: drop, skip the rest (including an FE and a bogus 'frame' tail).
    let (frames, stats) = decode_all(&hex("ff 01 fa 99 02 03 ff 04 fe"));
    assert_eq!(frames, [hex("04")]);
    assert_eq!(stats.dropped_bad_escape, 1);
    assert_eq!(
        stats.garbage_bytes, 0,
        "tail of a dropped frame is not garbage"
    );

    // FA FF: drop, and that FF starts the next frame.
    let (frames, stats) = decode_all(&hex("ff 01 fa ff 05 fe"));
    assert_eq!(frames, [hex("05")]);
    assert_eq!(stats.dropped_bad_escape, 1);
    assert_eq!(stats.dropped_truncated, 0);

    // FA FE: the frame simply ends dropped; what follows is garbage until FF.
    let (frames, stats) = decode_all(&hex("ff 01 fa fe 33 ff 06 fe"));
    assert_eq!(frames, [hex("06")]);
    assert_eq!(stats.dropped_bad_escape, 1);
    assert_eq!(stats.garbage_bytes, 1);

    // After the skip ends at FE, bytes before the next FF are garbage again.
    let (frames, stats) = decode_all(&hex("ff fa 01 02 fe 44 55 ff 07 fe"));
    assert_eq!(frames, [hex("07")]);
    assert_eq!(stats.dropped_bad_escape, 1);
    assert_eq!(stats.garbage_bytes, 2);
}

#[test]
fn empty_frame_is_dropped() {
    let (frames, stats) = decode_all(&hex("ff fe ff 08 fe ff fe"));
    assert_eq!(frames, [hex("08")]);
    assert_eq!(stats.dropped_empty, 2);
    assert_eq!(stats.frames, 1);
}

#[test]
fn oversize_frame_is_dropped_and_skipped() {
    let mut d = FrameDecoder::with_max_body(4);
    assert_eq!(d.max_body(), 4);
    let mut input = encoded_frame(&hex("01 02 03 04")); // exactly max: ok
    input.extend(encoded_frame(&hex("01 02 03 04 05"))); // one over
    input.extend(hex("ff 01 02 03 04 05 06 fa 99")); // over, then a bad escape: one drop
    input.extend(encoded_frame(&hex("09")));
    let (frames, stats) = decode_split(&mut d, &input, &[]);
    assert_eq!(frames, [hex("01 02 03 04"), hex("09")]);
    assert_eq!(stats.dropped_oversize, 2);
    assert_eq!(stats.dropped_bad_escape, 0);
    assert_eq!(stats.dropped_truncated, 0);
    assert_eq!(stats.frames, 2);
}

#[test]
fn default_max_body_is_64k() {
    let mut d = FrameDecoder::new();
    assert_eq!(d.max_body(), 64 * 1024);
    let mut input = encoded_frame(&vec![0x42; 64 * 1024]);
    input.extend(encoded_frame(&vec![0x42; 64 * 1024 + 1]));
    let frames = d.decode_vec(&input);
    assert_eq!(frames.len(), 1);
    assert_eq!(d.stats().dropped_oversize, 1);
}

#[test]
fn dropped_sums_all_reasons() {
    let stats = DecoderStats {
        frames: 100,
        dropped_bad_escape: 1,
        dropped_truncated: 2,
        dropped_oversize: 4,
        dropped_empty: 8,
        garbage_bytes: 1000,
    };
    assert_eq!(stats.dropped(), 15);
}

/// A stream that exercises every rule; used for the chunking tests.
fn mixed_stream() -> Vec<u8> {
    let mut s = hex("00 fe fa 13"); // garbage
    s.extend(encoded_frame(&hex("ff fe fa 01")));
    s.extend(hex("ff 01 02")); // truncated by the next FF
    s.extend(encoded_frame(&hex("fa")));
    s.extend(hex("ff 01 fa 99 02 fe")); // bad escape, skipped
    s.extend(hex("ff fe")); // empty
    s.extend(hex("ff 03 fa ff 04 fe")); // bad escape whose FF starts a frame
    s.extend(hex("ff 05 fa fe 66")); // bad escape ending the frame, then garbage
    s.extend(encoded_frame(&[0x77; 40])); // oversize for max 32
    s.extend(encoded_frame(&hex("10 20 30")));
    s.extend(hex("ff 01")); // left open at the end
    s
}

#[test]
fn every_chunking_matches_one_chunk() {
    let input = mixed_stream();
    let whole = decode_split(&mut FrameDecoder::with_max_body(32), &input, &[]);
    assert_eq!(
        whole.0,
        [hex("ff fe fa 01"), hex("fa"), hex("04"), hex("10 20 30")]
    );
    let s = whole.1;
    assert_eq!(
        (
            s.frames,
            s.dropped_truncated,
            s.dropped_bad_escape,
            s.dropped_empty,
            s.dropped_oversize,
            s.garbage_bytes
        ),
        (4, 1, 3, 1, 1, 5)
    );

    // Every single split point and every pair of split points.
    for a in 0..=input.len() {
        let got = decode_split(&mut FrameDecoder::with_max_body(32), &input, &[a]);
        assert_eq!(got, whole, "split at {a}");
        for b in a..=input.len() {
            let got = decode_split(&mut FrameDecoder::with_max_body(32), &input, &[a, b]);
            assert_eq!(got, whole, "split at {a}, {b}");
        }
    }
    // Every fixed chunk size, down to one byte at a time.
    for size in 1..=input.len() {
        let splits: Vec<usize> = (size..input.len()).step_by(size).collect();
        let got = decode_split(&mut FrameDecoder::with_max_body(32), &input, &splits);
        assert_eq!(got, whole, "chunk size {size}");
    }
}

#[test]
fn empty_input_is_a_no_op() {
    let mut d = FrameDecoder::new();
    d.decode(&[], |_| panic!("no frame expected"));
    d.decode(&hex("ff 01"), |_| panic!("no frame expected"));
    d.decode(&[], |_| panic!("no frame expected"));
    assert!(d.in_frame());
    assert_eq!(d.decode_vec(&hex("fe")), [hex("01")]);
    assert!(!d.in_frame());
}

// ---------------------------------------------------------------- reference model

/// Straightforward byte-at-a-time statement of the decoder rules, written
/// independently of the memchr fast path so the property tests can compare.
fn reference_decode(input: &[u8], max: usize) -> (Vec<Vec<u8>>, DecoderStats, bool) {
    #[derive(PartialEq)]
    enum S {
        Hunt,
        Body,
        Esc,
        Skip,
    }
    let mut st = S::Hunt;
    let mut body = Vec::new();
    let mut frames = Vec::new();
    let mut stats = DecoderStats::default();
    for &b in input {
        st = match st {
            S::Hunt if b == 0xFF => {
                body.clear();
                S::Body
            }
            S::Hunt => {
                stats.garbage_bytes += 1;
                S::Hunt
            }
            S::Skip if b == 0xFF => {
                body.clear();
                S::Body
            }
            S::Skip if b == 0xFE => S::Hunt,
            S::Skip => S::Skip,
            S::Body => match b {
                0xFF => {
                    stats.dropped_truncated += 1;
                    body.clear();
                    S::Body
                }
                0xFE if body.is_empty() => {
                    stats.dropped_empty += 1;
                    S::Hunt
                }
                0xFE => {
                    stats.frames += 1;
                    frames.push(body.clone());
                    S::Hunt
                }
                0xFA => S::Esc,
                _ if body.len() == max => {
                    stats.dropped_oversize += 1;
                    S::Skip
                }
                _ => {
                    body.push(b);
                    S::Body
                }
            },
            S::Esc => match b {
                0x05 | 0x04 | 0x00 if body.len() == max => {
                    stats.dropped_oversize += 1;
                    S::Skip
                }
                0x05 | 0x04 | 0x00 => {
                    body.push(b ^ 0xFA);
                    S::Body
                }
                0xFF => {
                    stats.dropped_bad_escape += 1;
                    body.clear();
                    S::Body
                }
                0xFE => {
                    stats.dropped_bad_escape += 1;
                    S::Hunt
                }
                _ => {
                    stats.dropped_bad_escape += 1;
                    S::Skip
                }
            },
        };
    }
    let open = st == S::Body || st == S::Esc;
    (frames, stats, open)
}

// ---------------------------------------------------------------- properties

/// Bytes biased towards the ones the framing cares about.
fn wire_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        1 => Just(0xFF),
        1 => Just(0xFE),
        1 => Just(0xFA),
        1 => prop::sample::select(vec![0x05u8, 0x04, 0x00]),
    ]
}

fn splits(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut s: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    s.sort_unstable();
    s
}

proptest! {
    /// (a) encode -> streaming decoder with random chunk splits returns every body.
    #[test]
    fn prop_round_trip_chunked(
        bodies in prop::collection::vec(
            prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => wire_byte()], 1..300),
            0..8,
        ),
        raw_splits in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for body in &bodies {
            encode_frame(body, &mut wire);
            prop_assert_eq!(&decode_frame(&encoded_frame(body)), &Ok(body.clone()));
        }
        let splits = splits(wire.len(), &raw_splits);
        let (frames, stats) = decode_split(&mut FrameDecoder::new(), &wire, &splits);
        prop_assert_eq!(&frames, &bodies);
        prop_assert_eq!(stats.frames, bodies.len() as u64);
        prop_assert_eq!(stats.dropped(), 0);
        prop_assert_eq!(stats.garbage_bytes, 0);
    }

    /// (b) arbitrary bytes never panic anything, the counters stay consistent,
    /// and the fast decoder agrees with the reference model under any chunking.
    #[test]
    fn prop_arbitrary_input(
        input in prop::collection::vec(wire_byte(), 0..400),
        raw_splits in prop::collection::vec(any::<usize>(), 0..12),
        max in prop_oneof![Just(DEFAULT_MAX_BODY), 0usize..12],
    ) {
        let _ = decode_frame(&input);
        let _ = unescape(&input);
        let _ = parse_hex(&String::from_utf8_lossy(&input));

        let splits = splits(input.len(), &raw_splits);
        let mut d = FrameDecoder::with_max_body(max);
        let (frames, stats) = decode_split(&mut d, &input, &splits);
        let (want_frames, want_stats, want_open) = reference_decode(&input, max);
        prop_assert_eq!(&frames, &want_frames);
        prop_assert_eq!(stats, want_stats);
        prop_assert_eq!(d.in_frame(), want_open);

        let ff = input.iter().filter(|&&b| b == 0xFF).count() as u64;
        prop_assert!(stats.frames + stats.dropped() <= ff);
        prop_assert_eq!(stats.frames + stats.dropped() + u64::from(d.in_frame()), ff);
        prop_assert_eq!(stats.frames, frames.len() as u64);
        prop_assert!(stats.garbage_bytes <= input.len() as u64);
        prop_assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= max));
    }

    /// Long special-free runs, including bodies that cross a small limit
    /// mid-run or at an escape, match the reference.
    #[test]
    fn prop_long_runs_match_reference(
        input in prop::collection::vec(prop_oneof![40 => any::<u8>(), 1 => wire_byte()], 0..3000),
        raw_splits in prop::collection::vec(any::<usize>(), 0..8),
        max in prop_oneof![Just(DEFAULT_MAX_BODY), 0usize..300],
    ) {
        let splits = splits(input.len(), &raw_splits);
        let mut d = FrameDecoder::with_max_body(max);
        let (frames, stats) = decode_split(&mut d, &input, &splits);
        let (want_frames, want_stats, want_open) = reference_decode(&input, max);
        prop_assert_eq!(&frames, &want_frames);
        prop_assert_eq!(stats, want_stats);
        prop_assert_eq!(d.in_frame(), want_open);
    }

    /// (b) parse_hex on arbitrary text never panics, and accepts what to_hex prints.
    #[test]
    fn prop_parse_hex_total(text in ".{0,64}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_hex(&text);
        prop_assert_eq!(parse_hex(&specwire_wire::to_hex(&bytes)), Ok(bytes));
    }

    /// (c) garbage without 0xFF in front of a valid frame does not hide it.
    #[test]
    fn prop_garbage_prefix(
        garbage in prop::collection::vec(any::<u8>().prop_filter("no FF", |&b| b != 0xFF), 0..64),
        body in prop::collection::vec(any::<u8>(), 1..128),
        raw_splits in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut input = garbage.clone();
        encode_frame(&body, &mut input);
        let splits = splits(input.len(), &raw_splits);
        let (frames, stats) = decode_split(&mut FrameDecoder::new(), &input, &splits);
        prop_assert_eq!(frames, vec![body]);
        prop_assert_eq!(stats.garbage_bytes, garbage.len() as u64);
        prop_assert_eq!(stats.dropped(), 0);
    }
}

// ---------------------------------------------------------------- fast path vs reference

/// Decodes `input` split at `splits` with a fresh decoder and asserts that
/// frames, stats and the open-frame flag equal the reference model's.
fn assert_matches_reference(
    input: &[u8],
    splits: &[usize],
    max: usize,
) -> Result<(), TestCaseError> {
    let mut d = FrameDecoder::with_max_body(max);
    let (frames, stats) = decode_split(&mut d, input, splits);
    let (want_frames, want_stats, want_open) = reference_decode(input, max);
    prop_assert_eq!(frames, want_frames, "splits {:?}, max {}", splits, max);
    prop_assert_eq!(stats, want_stats, "splits {:?}, max {}", splits, max);
    prop_assert_eq!(d.in_frame(), want_open);
    Ok(())
}

/// Two-byte patterns the block scan treats differently: valid escapes, bad
/// escapes (including ones whose second byte is a delimiter), `FE FF`
/// between frames, `FE` followed by garbage, and raw `FF`s.
const PATTERNS: &[[u8; 2]] = &[
    [0xFA, 0x05],
    [0xFA, 0x04],
    [0xFA, 0x00],
    [0xFA, 0x99],
    [0xFA, 0xFA],
    [0xFA, 0xFF],
    [0xFA, 0xFE],
    [0xFE, 0xFF],
    [0xFE, 0x00],
    [0xFE, 0xFE],
    [0xFF, 0x01],
    [0xFF, 0xFE],
];

#[test]
fn fast_path_every_pattern_at_every_block_offset() {
    for pattern in PATTERNS {
        for offset in 0..200 {
            // FF, `offset` ordinary bytes, the pattern, more body, and a good
            // frame after it, so the pattern lands on every position of the
            // first blocks, including the last byte of a block with its
            // partner in the next one.
            let mut input = vec![0xFF];
            input.extend(std::iter::repeat_n(0x41, offset));
            input.extend(pattern);
            input.extend(std::iter::repeat_n(0x42, 150));
            input.push(0xFE);
            input.extend(encoded_frame(&[0x43; 150]));
            let whole = [];
            let around = [offset, offset + 1, offset + 2, offset + 3];
            for splits in [&whole[..], &around[..]] {
                for max in [DEFAULT_MAX_BODY, 64, 100, offset + 1, offset + 70] {
                    assert_matches_reference(&input, splits, max)
                        .unwrap_or_else(|e| panic!("pattern {pattern:02x?} at {offset}: {e}"));
                }
            }
        }
    }
}

#[test]
fn fast_path_frames_back_to_back_at_every_alignment() {
    // Many frames with escapes, each shifted by one more byte, so their
    // delimiters and escapes fall on every block position.
    let mut input = Vec::new();
    let mut bodies = Vec::new();
    for len in 1..200usize {
        let body: Vec<u8> = (0..len)
            .map(|i| [0x10, 0xFF, 0x20, 0x30, 0xFE, 0x40, 0xFA][(i * i + len) % 7])
            .collect();
        encode_frame(&body, &mut input);
        bodies.push(body);
    }
    let (frames, stats) = decode_all(&input);
    assert_eq!(frames, bodies);
    assert_eq!(stats.frames, bodies.len() as u64);
    assert_eq!(stats.dropped(), 0);
    for chunk in [1, 7, 64, 127, 128, 129, 1000] {
        let splits: Vec<usize> = (chunk..input.len()).step_by(chunk).collect();
        assert_matches_reference(&input, &splits, DEFAULT_MAX_BODY).unwrap();
    }
}

/// One piece of a generated stream.
#[derive(Debug, Clone)]
enum Piece {
    /// A correctly encoded frame.
    Frame(Vec<u8>),
    /// Bytes as they are: garbage, broken frames, stray delimiters.
    Raw(Vec<u8>),
    /// An encoded frame cut short after this many bytes.
    Cut(Vec<u8>, usize),
    /// An encoded frame with one byte replaced.
    Corrupt(Vec<u8>, usize, u8),
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Typical bodies: few specials.
        3 => prop::collection::vec(any::<u8>(), 0..300),
        // Dense in special bytes.
        2 => prop::collection::vec(wire_byte(), 0..300),
        // Long runs with the odd special.
        1 => prop::collection::vec(prop_oneof![30 => any::<u8>(), 1 => wire_byte()], 0..700),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => body_bytes().prop_map(Piece::Frame),
        1 => prop::collection::vec(wire_byte(), 0..80).prop_map(Piece::Raw),
        1 => (body_bytes(), any::<usize>()).prop_map(|(b, n)| Piece::Cut(b, n)),
        1 => (body_bytes(), any::<usize>(), wire_byte()).prop_map(|(b, i, v)| Piece::Corrupt(b, i, v)),
    ]
}

fn render(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Frame(body) => encode_frame(body, &mut out),
            Piece::Raw(bytes) => out.extend(bytes),
            Piece::Cut(body, n) => {
                let wire = encoded_frame(body);
                out.extend(&wire[..n % wire.len()]);
            }
            Piece::Corrupt(body, i, v) => {
                let mut wire = encoded_frame(body);
                let at = i % wire.len();
                wire[at] = *v;
                out.extend(wire);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Long streams of good, cut, corrupted and garbage frames, dense or
    /// sparse in special bytes, under any chunking and size limit: the
    /// decoder (block scan and state machine together) gives exactly the
    /// reference model's frames and stats.
    #[test]
    fn prop_fast_path_streams_match_reference(
        pieces in prop::collection::vec(piece(), 0..24),
        raw_splits in prop::collection::vec(any::<usize>(), 0..24),
        max in prop_oneof![3 => Just(DEFAULT_MAX_BODY), 1 => 0usize..400, 1 => 60usize..140],
    ) {
        let input = render(&pieces);
        assert_matches_reference(&input, &splits(input.len(), &raw_splits), max)?;
    }

    /// Arbitrary bytes dense in special bytes, long enough for the block scan.
    #[test]
    fn prop_fast_path_dense_bytes_match_reference(
        input in prop::collection::vec(prop_oneof![1 => any::<u8>(), 1 => wire_byte()], 0..3000),
        raw_splits in prop::collection::vec(any::<usize>(), 0..16),
        max in prop_oneof![Just(DEFAULT_MAX_BODY), 0usize..300],
    ) {
        assert_matches_reference(&input, &splits(input.len(), &raw_splits), max)?;
    }

    /// Bytes fed one chunk of a fixed size at a time, for every chunk size
    /// around the block scan's 128-byte minimum.
    #[test]
    fn prop_fast_path_fixed_chunks_match_reference(
        pieces in prop::collection::vec(piece(), 0..12),
        chunk in prop_oneof![1usize..8, 60usize..200],
    ) {
        let input = render(&pieces);
        let splits: Vec<usize> = (chunk..input.len()).step_by(chunk).collect();
        assert_matches_reference(&input, &splits, DEFAULT_MAX_BODY)?;
    }
}
