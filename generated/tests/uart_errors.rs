//! Error cases of the generated uart codecs (`specwire_protocol::uart`):
//! every malformed body is refused with a precise error, in each entry
//! point's own terms, and encoding refuses what cannot be encoded.

use specwire_protocol::uart::*;
use specwire_wire::parse_hex;
use uuid::Uuid;

fn hex(text: &str) -> Vec<u8> {
    parse_hex(text).expect("valid hex in test")
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

/// Bodies that break one rule each, with the error each must give.
const BAD_BODIES: &[(&str, DecodeError)] = &[
    (
        "53 45 4e 44 2d 01",
        DecodeError::Truncated {
            what: "Send.dst",
            needed: 2,
            available: 1,
        },
    ),
    (
        "52 53 54 2d 52 00",
        DecodeError::TrailingBytes {
            what: "RestartRoot arguments",
            count: 1,
        },
    ),
    (
        "42 43 41 53 54 00 05 ff",
        DecodeError::BadConst {
            what: "Broadcast.dst",
            expected: 0,
            actual: 5,
        },
    ),
    (
        "4e 53 54 41 54 58",
        DecodeError::UnknownEnumValue {
            what: "NodeStatus.state",
            enum_name: "NodeState",
            value: b'X',
        },
    ),
    ("4d 00 07 02 01 09 00 00", DecodeError::UnknownDataType(9)),
    (
        "4d 00 07 02 02 01 08 66",
        DecodeError::Truncated {
            what: "DataEntry.data_id",
            needed: 1,
            available: 0,
        },
    ),
    (
        "46 02 c3 28",
        DecodeError::InvalidUtf8 {
            what: "Failure.message",
        },
    ),
    (
        "46 05 61",
        DecodeError::Truncated {
            what: "Failure.message",
            needed: 5,
            available: 1,
        },
    ),
    (
        "46 01 61 62",
        DecodeError::TrailingBytes {
            what: "Failure reply",
            count: 1,
        },
    ),
    (
        "4d 00 01 04 00 07 00",
        DecodeError::Truncated {
            what: "NodeConnected.uuid",
            needed: 16,
            available: 1,
        },
    ),
    (
        "4d 00 07 01 00",
        DecodeError::TrailingBytes {
            what: "RootReset",
            count: 1,
        },
    ),
    (
        "4d 00",
        DecodeError::Truncated {
            what: "UnsolicitedMessage.src",
            needed: 2,
            available: 1,
        },
    ),
    ("00 01", DecodeError::Unrecognized { first: 0, len: 2 }),
];

#[test]
fn decode_errors_are_precise() {
    assert_eq!(decode_any(&[]), Err(DecodeError::Empty));
    for (body, want) in BAD_BODIES {
        assert_eq!(decode_any(&hex(body)), Err(want.clone()), "{body}");
    }
}

#[test]
fn the_entry_points_report_errors_in_their_own_terms() {
    assert_eq!(
        Command::decode(b"HELLO"),
        Err(DecodeError::UnknownCommand(*b"HELLO"))
    );
    assert_eq!(
        Command::decode(b"SEN"),
        Err(DecodeError::Truncated {
            what: "command name",
            needed: 5,
            available: 3
        })
    );
    assert_eq!(Command::decode(b""), Err(DecodeError::Empty));
    assert_eq!(
        Reply::decode(b"X"),
        Err(DecodeError::UnknownReplyKind(b'X'))
    );
    assert_eq!(Reply::decode(b""), Err(DecodeError::Empty));
}

#[test]
fn value_decode_errors_are_precise() {
    assert_eq!(
        DataValue::decode(DataType::Pressure, &[1, 2]),
        Err(DecodeError::Truncated {
            what: "DataValue::Pressure",
            needed: 4,
            available: 2
        })
    );
    assert_eq!(
        DataValue::decode(DataType::Battery, &[1, 2]),
        Err(DecodeError::TrailingBytes {
            what: "DataValue",
            count: 1
        })
    );
    assert_eq!(
        DataValue::decode_id(42, &[1]),
        Err(DecodeError::UnknownDataType(42))
    );
    assert_eq!(
        DataEntry::decode(&[42, 1]),
        Err(DecodeError::UnknownDataType(42))
    );
    assert_eq!(
        Count::decode(&[1, 2]),
        Err(DecodeError::TrailingBytes {
            what: "Count",
            count: 1
        })
    );
    assert_eq!(
        SuccessShape::Empty.decode(&[1]),
        Err(DecodeError::TrailingBytes {
            what: "empty success result",
            count: 1
        })
    );
    assert!(matches!(
        SuccessShape::Json.decode(b"{"),
        Err(DecodeError::InvalidJson(_))
    ));
    assert!(matches!(
        SuccessShape::Json.decode(b""),
        Err(DecodeError::InvalidJson(_))
    ));
    // A DataValues list item is cut short by the enclosing length field.
    assert_eq!(
        DataValues::decode(&hex("01 02 01 00 07 08")),
        Err(DecodeError::Truncated {
            what: "NodeValue.data",
            needed: 2,
            available: 1
        })
    );
}

#[test]
fn decode_error_messages_read_well() {
    let cases = [
        (DecodeError::Empty, "empty body"),
        (
            DecodeError::UnknownCommand(*b"HELLO"),
            "unknown command \"HELLO\"",
        ),
        (
            DecodeError::UnknownCommand([0, b'A', 0xFF, b'"', b'\\']),
            r#"unknown command "\x00A\xff\"\\""#,
        ),
        (
            DecodeError::Truncated {
                what: "Send.dst",
                needed: 2,
                available: 1,
            },
            "truncated Send.dst: needs 2 bytes, 1 available",
        ),
        (
            DecodeError::TrailingBytes {
                what: "Count",
                count: 3,
            },
            "3 trailing bytes after Count",
        ),
        (
            DecodeError::BadConst {
                what: "Broadcast.dst",
                expected: 0,
                actual: 5,
            },
            "Broadcast.dst must be 0, got 5",
        ),
        (
            DecodeError::UnknownEnumValue {
                what: "NodeStatus.state",
                enum_name: "NodeState",
                value: 0x58,
            },
            "unknown NodeState value 0x58 in NodeStatus.state",
        ),
        (DecodeError::UnknownDataType(9), "unknown data type id 9"),
        (
            DecodeError::UnknownReplyKind(0x58),
            "unknown reply kind 0x58",
        ),
        (
            DecodeError::InvalidUtf8 {
                what: "Failure.message",
            },
            "invalid UTF-8 in Failure.message",
        ),
        (
            DecodeError::Unrecognized { first: 0, len: 2 },
            "body of 2 bytes starting 0x00 is neither a known command nor a reply",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(error.to_string(), want);
    }
}

#[test]
fn encode_errors() {
    let nodes = vec![
        NodeEntry {
            addr: 0,
            uuid: Uuid::nil()
        };
        256
    ];
    assert_eq!(
        NodeList {
            nodes: nodes.clone()
        }
        .encode(),
        Err(EncodeError::TooManyItems {
            what: "NodeList.nodes",
            count: 256,
            max: 255
        })
    );
    assert!(NodeList {
        nodes: nodes[..255].to_vec()
    }
    .encode()
    .is_ok());
    assert_eq!(
        Reply::Failure {
            message: "x".repeat(256)
        }
        .encode(),
        Err(EncodeError::TooLong {
            what: "Failure.message",
            len: 256,
            max: 255
        })
    );
    assert_eq!(
        Reply::Failure {
            message: "x".repeat(255)
        }
        .encode()
        .map(|b| b.len()),
        Ok(257)
    );
    let mismatch = DataValues {
        data_id: 1,
        length: 2,
        values: vec![NodeValue {
            addr: 1,
            data: vec![1, 2, 3],
        }],
    };
    assert_eq!(
        mismatch.encode(),
        Err(EncodeError::LengthMismatch {
            what: "NodeValue.data",
            length_field: "length",
            expected: 2,
            actual: 3
        })
    );
    assert_eq!(
        mismatch.encode().unwrap_err().to_string(),
        "NodeValue.data is 3 bytes but length says 2"
    );
    let unknown = DataUpdate {
        entries: vec![DataEntry {
            data_id: 42,
            data: vec![],
        }],
    };
    assert_eq!(unknown.encode(), Err(EncodeError::UnknownDataType(42)));
    let wrong = DataEntry {
        data_id: 1,
        data: vec![1],
    };
    assert_eq!(
        wrong.encode(),
        Err(EncodeError::DataLengthMismatch {
            what: "DataEntry.data",
            data_id: 1,
            expected: 2,
            actual: 1
        })
    );
    let message = Reply::Message(UnsolicitedMessage {
        src: 1,
        body: unknown.into(),
    });
    assert_eq!(message.encode(), Err(EncodeError::UnknownDataType(42)));
    assert_eq!(
        Body::Reply(message).encode(),
        Err(EncodeError::UnknownDataType(42))
    );
}
