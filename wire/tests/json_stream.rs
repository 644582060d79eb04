//! Property tests of the JSON stream decoder: any split of any sequence of
//! values decodes to the same values; arbitrary bytes never panic, decode
//! to the same items however they are split, and never make the buffer
//! hold more than the limit plus one read.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;
use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};

/// Feeds `bytes` cut at `cuts` (sorted, deduplicated offsets) and collects
/// the items; asserts the buffer bound after every read.
fn decode_split(bytes: &[u8], cuts: &[usize], limit: usize) -> Vec<StreamItem> {
    let mut decoder = JsonStreamDecoder::new(limit);
    let mut buffer = BytesMut::new();
    let mut items = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(start, bytes.len());
        let chunk = &bytes[start..cut];
        buffer.extend_from_slice(chunk);
        while let Some(item) = decoder.decode(&mut buffer) {
            items.push(item);
        }
        assert!(
            buffer.len() <= limit + chunk.len(),
            "buffer holds {} bytes after a read of {} (limit {limit})",
            buffer.len(),
            chunk.len()
        );
        start = cut;
    }
    items
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Strings full of what the scanner must not be fooled by.
        "[a-z{}\\[\\]\"\\\\ \n\u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"{}]{0,6}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A top-level value: an object or an array.
fn top_level() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..5)
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        prop::collection::vec(json_value(), 0..5).prop_map(Value::Array),
    ]
}

fn separator() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,4}"
}

fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len.max(1), 0..24).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_of_valid_values_gives_the_same_values(
        values in prop::collection::vec((top_level(), any::<bool>(), separator()), 1..8),
        seed in any::<u64>(),
    ) {
        let mut stream = String::new();
        for (value, pretty, gap) in &values {
            let text = if *pretty {
                serde_json::to_string_pretty(value).unwrap()
            } else {
                serde_json::to_string(value).unwrap()
            };
            stream.push_str(&text);
            stream.push_str(gap);
        }
        let bytes = stream.as_bytes();
        // Cuts derived from the seed, plus the extreme: byte by byte.
        let mut cut_at: Vec<usize> = (0..24u64)
            .map(|i| (seed.rotate_left(i as u32 * 7) as usize) % (bytes.len() + 1))
            .collect();
        cut_at.sort_unstable();
        cut_at.dedup();
        let byte_by_byte: Vec<usize> = (1..bytes.len()).collect();
        for cuts in [cut_at, byte_by_byte, Vec::new()] {
            let items = decode_split(bytes, &cuts, 1 << 20);
            let decoded: Vec<Value> = items
                .iter()
                .map(|item| match item {
                    StreamItem::Value(bytes) => serde_json::from_slice(bytes).unwrap(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            let expected: Vec<Value> = values.iter().map(|(value, ..)| value.clone()).collect();
            prop_assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn arbitrary_bytes_decode_the_same_however_split_and_stay_bounded(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => prop::sample::select(b"{}[]\"\\ \n".to_vec()),
            ],
            0..600,
        ),
        limit in 1usize..80,
        split in cuts(600),
    ) {
        let whole = decode_split(&bytes, &[], limit);
        let split = decode_split(&bytes, &split, limit);
        prop_assert_eq!(&whole, &split);
        let byte_by_byte: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(&whole, &decode_split(&bytes, &byte_by_byte, limit));
        for item in &whole {
            if let StreamItem::Value(value) = item {
                prop_assert!(value.len() <= limit);
                prop_assert!(value[0] == b'{' || value[0] == b'[', "a value starts with a bracket");
            }
        }
    }
}
