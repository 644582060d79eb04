//! Property tests of the generated uart codecs (`specwire_protocol::uart`):
//! decoders never panic on arbitrary bytes, and encode/decode are inverse
//! for generated values.

use proptest::prelude::*;
use specwire_protocol::uart::*;
use uuid::Uuid;

mod support;

use support::uart_samples::*;

// ---------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid::from_bytes)
}

fn arb_node_state() -> impl Strategy<Value = NodeState> {
    prop::sample::select(NodeState::ALL.to_vec())
}

fn arb_command() -> impl Strategy<Value = Command> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (any::<u16>(), bytes()).prop_map(|(dst, payload)| Send { dst, payload }.into()),
        (any::<u16>(), bytes()).prop_map(|(dst, payload)| SendTracked { dst, payload }.into()),
        bytes().prop_map(|payload| Broadcast { payload }.into()),
        Just(RestartRoot.into()),
        Just(Clean.into()),
        Just(State.into()),
        Just(NetworkInfo.into()),
        arb_node_state().prop_map(|state| NodeStatus { state }.into()),
        (any::<u8>(), any::<u16>()).prop_map(|(data_id, addr)| GetData { data_id, addr }.into()),
        Just(ActiveCount.into()),
        Just(Listen.into()),
    ]
}

fn arb_data_value() -> impl Strategy<Value = DataValue> {
    prop_oneof![
        any::<i16>().prop_map(DataValue::Temperature),
        any::<u16>().prop_map(DataValue::Humidity),
        any::<u8>().prop_map(DataValue::Battery),
        any::<u16>().prop_map(DataValue::Light),
        any::<u32>().prop_map(DataValue::Pressure),
        any::<u32>().prop_map(DataValue::Counter),
    ]
}

fn arb_node_entry() -> impl Strategy<Value = NodeEntry> {
    (any::<u16>(), arb_uuid()).prop_map(|(addr, uuid)| NodeEntry { addr, uuid })
}

fn arb_notification() -> impl Strategy<Value = Notification> {
    let known = [
        RootReset::OPCODE,
        DataUpdate::OPCODE,
        NetworkStatus::OPCODE,
        NodeConnected::OPCODE,
    ];
    prop_oneof![
        Just(RootReset.into()),
        prop::collection::vec(arb_data_value(), 0..12).prop_map(|values| DataUpdate {
            entries: values.into_iter().map(DataEntry::from).collect()
        }
        .into()),
        prop::collection::vec(arb_node_entry(), 0..6)
            .prop_map(|nodes| NetworkStatus { nodes }.into()),
        (any::<u16>(), arb_uuid()).prop_map(|(addr, uuid)| NodeConnected { addr, uuid }.into()),
        (
            any::<u8>().prop_filter("unlisted opcode", move |op| !known.contains(op)),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(opcode, payload)| Notification::Unknown { opcode, payload }),
    ]
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Success),
        // Up to 60 chars of at most 2 bytes each: always under the 255-byte limit.
        "[a-z é\u{0}\u{FF}]{0,60}".prop_map(|message| Reply::Failure { message }),
        (any::<u16>(), arb_notification())
            .prop_map(|(src, body)| Reply::Message(UnsolicitedMessage { src, body })),
    ]
}

fn arb_success() -> impl Strategy<Value = SuccessReply> {
    prop_oneof![
        prop::collection::vec(arb_node_entry(), 0..6)
            .prop_map(|nodes| SuccessReply::NodeList(NodeList { nodes })),
        (any::<u8>(), 0u8..6, 0usize..6).prop_flat_map(|(data_id, length, n)| {
            prop::collection::vec(
                (
                    any::<u16>(),
                    prop::collection::vec(any::<u8>(), usize::from(length)),
                )
                    .prop_map(|(addr, data)| NodeValue { addr, data }),
                n,
            )
            .prop_map(move |values| {
                SuccessReply::DataValues(DataValues {
                    data_id,
                    length,
                    values,
                })
            })
        }),
        any::<u8>().prop_map(|count| SuccessReply::Count(Count { count })),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(SuccessReply::Bytes),
        Just(SuccessReply::Empty),
    ]
}

/// Bytes that often start like a real body, so decoders get past the first
/// byte: a known command name or kind byte (maybe an opcode) then noise.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let noise = || prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        noise(),
        (prop::sample::select(Command::NAMES.to_vec()), noise()).prop_map(|(name, rest)| [
            &name[..],
            &rest
        ]
        .concat()),
        (prop::sample::select(Reply::KIND_BYTES.to_vec()), noise()).prop_map(|(kind, rest)| [
            &[kind][..],
            &rest
        ]
        .concat()),
        (any::<u16>(), 0u8..6, noise()).prop_map(|(src, op, rest)| [
            &[Reply::MESSAGE][..],
            &src.to_be_bytes(),
            &[op],
            &rest
        ]
        .concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn body_decoders_never_panic_and_reencode_exactly(body in arb_body()) {
        if let Ok(command) = Command::decode(&body) {
            prop_assert_eq!(command.encode(), body.clone());
        }
        if let Ok(reply) = Reply::decode(&body) {
            prop_assert_eq!(reply.encode(), Ok(body.clone()));
        }
        match decode_any(&body) {
            Ok(any) => {
                prop_assert_eq!(any.encode(), Ok(body.clone()));
                prop_assert!(!any.kind_name().is_empty());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        if body.len() > 1 {
            let _ = UnsolicitedMessage::decode(&body[1..]);
            let _ = Notification::decode(body[0], &body[1..]);
        }
    }

    #[test]
    fn layout_and_struct_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), length in 0usize..300) {
        if let Ok(v) = NodeList::decode(&bytes) { prop_assert_eq!(v.encode(), Ok(bytes.clone())); }
        if let Ok(v) = DataValues::decode(&bytes) { prop_assert_eq!(v.encode(), Ok(bytes.clone())); }
        if let Ok(v) = Count::decode(&bytes) { prop_assert_eq!(v.encode(), bytes.clone()); }
        if let Ok(v) = NodeEntry::decode(&bytes) { prop_assert_eq!(v.encode(), bytes.clone()); }
        if let Ok(v) = DataEntry::decode(&bytes) { prop_assert_eq!(v.encode(), Ok(bytes.clone())); }
        if let Ok(v) = NodeValue::decode(&bytes, length) { prop_assert_eq!(v.encode(length), Ok(bytes.clone())); }
        if let Ok((v, rest)) = NodeValue::decode_prefix(&bytes, length) {
            prop_assert_eq!([v.encode(length).unwrap_or_default(), rest.to_vec()].concat(), bytes.clone());
        }
        if let Ok(v) = DataUpdate::decode(&bytes) { prop_assert_eq!(v.encode(), Ok(bytes.clone())); }
        if let Ok(v) = NetworkStatus::decode(&bytes) { prop_assert_eq!(v.encode(), Ok(bytes.clone())); }
        if let Ok(v) = NodeConnected::decode(&bytes) { prop_assert_eq!(v.encode(), bytes.clone()); }
        let _ = RootReset::decode(&bytes);
        for shape in [SuccessShape::Empty, SuccessShape::Bytes, SuccessShape::Json, SuccessShape::NodeList, SuccessShape::DataValues, SuccessShape::Count] {
            let _ = shape.decode(&bytes);
        }
        for command in command_samples() {
            let _ = command.decode_success(&bytes);
        }
    }

    #[test]
    fn data_value_decoders_never_panic(id in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..8)) {
        if let Ok(v) = DataValue::decode_id(id, &bytes) {
            prop_assert_eq!(v.data_type().id(), id);
            prop_assert_eq!(v.encode(), bytes.clone());
        }
        for data_type in DataType::ALL {
            match DataValue::decode(data_type, &bytes) {
                Ok(v) => prop_assert_eq!(v.encode(), bytes.clone()),
                Err(_) => prop_assert_ne!(bytes.len(), data_type.length()),
            }
        }
    }

    #[test]
    fn commands_round_trip(command in arb_command(), chunk in 1usize..8) {
        let body = command.encode();
        prop_assert_eq!(Command::decode(&body), Ok(command.clone()));
        prop_assert_eq!(decode_any(&body), Ok(Body::Command(command)));
        let mut decoder = frame_decoder();
        let mut bodies = Vec::new();
        for part in encode_frame(&body).chunks(chunk) {
            decoder.decode(part, |b| bodies.push(b.to_vec()));
        }
        prop_assert_eq!(bodies, vec![body]);
    }

    #[test]
    fn replies_round_trip(reply in arb_reply(), chunk in 1usize..8) {
        let body = reply.encode().expect("generated replies fit the wire");
        prop_assert_eq!(Reply::decode(&body), Ok(reply.clone()));
        let mut decoder = frame_decoder();
        let mut bodies = Vec::new();
        for part in encode_frame(&body).chunks(chunk) {
            decoder.decode(part, |b| bodies.push(b.to_vec()));
        }
        prop_assert_eq!(bodies, vec![body]);
    }

    #[test]
    fn success_results_round_trip(result in arb_success()) {
        let bytes = result.encode().expect("generated results fit the wire");
        prop_assert_eq!(result.shape().decode(&bytes), Ok(result));
    }
}
