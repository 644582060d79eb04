//! Tests of the generated uart codecs (`specwire_protocol::uart`): the
//! document's examples, round trips of every command, layout, opcode payload
//! and data type, golden bytes. Error cases are in `uart_errors.rs`, property
//! tests in `uart_properties.rs`.

use specwire_protocol::uart::*;
use specwire_wire::{parse_hex, to_hex};
use uuid::Uuid;

mod support;

use support::uart_samples::*;

fn protocol() -> serde_json::Value {
    let path = specwire_testsupport::workspace().join("schema/uart/protocol.json");
    let text = std::fs::read_to_string(path).expect("read schema/uart/protocol.json");
    serde_json::from_str(&text).expect("parse schema/uart/protocol.json")
}

fn hex(text: &str) -> Vec<u8> {
    parse_hex(text).expect("valid hex in test")
}

/// Streams `body` wrapped in a frame, with line noise before it, through a
/// fresh decoder in chunks of every size from 1 to the frame length, and
/// checks that exactly `body` comes out each time.
fn assert_frames_back(body: &[u8]) {
    let frame = encode_frame(body);
    assert_eq!(decode_frame(&frame).as_deref(), Ok(body));
    let mut stream = vec![0x00, 0x13, FRAME_END];
    stream.extend_from_slice(&frame);
    for chunk in 1..=stream.len() {
        let mut decoder = frame_decoder();
        let mut bodies = Vec::new();
        for part in stream.chunks(chunk) {
            decoder.decode(part, |b| bodies.push(b.to_vec()));
        }
        assert_eq!(bodies, [body.to_vec()], "chunk size {chunk}");
    }
}

fn uuid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

#[test]
fn command_sample_covers_every_command() {
    let samples = command_samples();
    for command in &samples {
        // Exhaustive on purpose: a new command is a compile error here.
        match command {
            Command::Send(_)
            | Command::SendTracked(_)
            | Command::Broadcast(_)
            | Command::RestartRoot(_)
            | Command::Clean(_)
            | Command::State(_)
            | Command::NetworkInfo(_)
            | Command::NodeStatus(_)
            | Command::GetData(_)
            | Command::ActiveCount(_)
            | Command::Listen(_) => {}
        }
    }
    let mut names: Vec<[u8; 5]> = samples.iter().map(Command::name_bytes).collect();
    let mut all = Command::NAMES.to_vec();
    names.sort();
    all.sort();
    assert_eq!(names, all);
}

#[test]
fn notification_samples_cover_every_opcode() {
    for n in notification_samples() {
        match n {
            Notification::RootReset(_)
            | Notification::DataUpdate(_)
            | Notification::NetworkStatus(_)
            | Notification::NodeConnected(_)
            | Notification::Unknown { .. } => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The document's examples.
// ---------------------------------------------------------------------------

#[test]
fn every_example_decodes_reencodes_and_survives_framing() {
    let doc = protocol();
    let examples = doc["examples"].as_array().expect("examples array");
    assert!(!examples.is_empty());
    for example in examples {
        let name = example["name"].as_str().expect("example name");
        let body = hex(example["body"].as_str().expect("example body"));
        let kind = example["kind"].as_str().expect("example kind");
        let reencoded = match kind {
            "command" => {
                let command = Command::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    matches!(decode_any(&body), Ok(Body::Command(c)) if c == command),
                    "{name}"
                );
                command.encode()
            }
            "reply" => {
                let reply = Reply::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    matches!(decode_any(&body), Ok(Body::Reply(r)) if r == reply),
                    "{name}"
                );
                reply.encode().unwrap_or_else(|e| panic!("{name}: {e}"))
            }
            other => panic!("{name}: unknown example kind {other}"),
        };
        assert_eq!(to_hex(&reencoded), to_hex(&body), "{name}");
        assert_eq!(
            decode_any(&body).map(|b| b.encode()),
            Ok(Ok(body.clone())),
            "{name}"
        );
        assert_frames_back(&body);
    }
}

#[test]
fn examples_decode_to_the_documented_values() {
    assert_eq!(
        Command::decode(&hex("53 45 4e 44 2d 01 02 68 69")),
        Ok(Command::Send(Send {
            dst: 0x0102,
            payload: b"hi".to_vec()
        }))
    );
    assert_eq!(
        Command::decode(&hex("42 43 41 53 54 00 00 ff")),
        Ok(Command::Broadcast(Broadcast {
            payload: vec![0xFF]
        }))
    );
    assert_eq!(
        Command::decode(&hex("4e 53 54 41 54 41")),
        Ok(Command::NodeStatus(NodeStatus {
            state: NodeState::Active
        }))
    );
    let get = Command::decode(&hex("5b 47 45 54 5d 01 00 00")).expect("[GET]");
    assert_eq!(
        get,
        Command::GetData(GetData {
            data_id: 1,
            addr: 0
        })
    );
    let Command::GetData(g) = &get else {
        unreachable!()
    };
    assert_eq!(g.data_type(), Some(DataType::Temperature));

    assert_eq!(Reply::decode(&hex("53")), Ok(Reply::Success(vec![])));
    assert_eq!(
        Reply::decode(&hex("46 0e 6d 6f 64 75 6c 65 20 74 69 6d 65 6f 75 74")),
        Ok(Reply::Failure {
            message: "module timeout".into()
        })
    );

    let update = Reply::decode(&hex("4d 00 07 02 02 01 08 66 03 57")).expect("data update");
    let Reply::Message(UnsolicitedMessage {
        src: 7,
        body: Notification::DataUpdate(DataUpdate { entries }),
    }) = &update
    else {
        panic!("not a data update: {update:?}")
    };
    let values: Vec<DataValue> = entries
        .iter()
        .map(|e| e.value().expect("typed value"))
        .collect();
    assert_eq!(
        values,
        [DataValue::Temperature(2150), DataValue::Battery(87)]
    );
    assert_eq!(
        entries[0].data_type().map(DataType::unit),
        Some(Some("0.01 °C"))
    );

    let connected = Reply::decode(&hex(
        "4d 00 01 04 00 07 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff",
    ))
    .expect("node connected");
    let want_uuid: Uuid = "00112233-4455-6677-8899-aabbccddeeff"
        .parse()
        .expect("uuid");
    assert_eq!(
        connected,
        Reply::Message(UnsolicitedMessage {
            src: 1,
            body: NodeConnected {
                addr: 7,
                uuid: want_uuid
            }
            .into()
        })
    );
}

// ---------------------------------------------------------------------------
// Round trips of hand-built values.
// ---------------------------------------------------------------------------

#[test]
fn every_command_round_trips() {
    for command in command_samples() {
        let body = command.encode();
        assert_eq!(body[..5], command.name_bytes(), "{command:?}");
        assert_eq!(body[..5], *command.name().as_bytes());
        assert_eq!(Command::decode(&body), Ok(command.clone()));
        assert_eq!(decode_any(&body), Ok(Body::Command(command.clone())));
        let mut appended = vec![0xAB];
        command.encode_into(&mut appended);
        assert_eq!(appended[1..], body[..]);
        assert_frames_back(&body);
    }
}

#[test]
fn command_structs_encode_the_same_as_the_enum() {
    let send = Send {
        dst: 1,
        payload: vec![2],
    };
    assert_eq!(send.encode(), Command::from(send.clone()).encode());
    let mut args = Vec::new();
    send.encode_args_into(&mut args);
    assert_eq!(args, [0, 1, 2]);
    assert_eq!(Send::decode_args(&args), Ok(send));
    assert_eq!(Broadcast::DST, 0);
}

#[test]
fn every_layout_round_trips_and_is_typed_by_its_command() {
    for sample in layout_samples() {
        let bytes = sample.encode().expect("encodable sample");
        assert_eq!(sample.shape().decode(&bytes), Ok(sample.clone()));
        // The same bytes as a whole Success reply.
        let reply = Reply::Success(bytes.clone());
        let body = reply.encode().expect("encode");
        assert_eq!(body[0], Reply::SUCCESS);
        assert_eq!(Reply::decode(&body), Ok(reply));
        // decode_prefix hands back what follows.
        let mut with_tail = bytes.clone();
        with_tail.extend_from_slice(&[9, 9]);
        match &sample {
            SuccessReply::NodeList(v) => assert_eq!(
                NodeList::decode_prefix(&with_tail),
                Ok((v.clone(), &[9u8, 9][..]))
            ),
            SuccessReply::DataValues(v) => {
                assert_eq!(
                    DataValues::decode_prefix(&with_tail),
                    Ok((v.clone(), &[9u8, 9][..]))
                )
            }
            SuccessReply::Count(v) => assert_eq!(
                Count::decode_prefix(&with_tail),
                Ok((v.clone(), &[9u8, 9][..]))
            ),
            other => panic!("not a layout: {other:?}"),
        }
    }
    let by_command = [
        (
            Command::from(NodeStatus {
                state: NodeState::Active,
            }),
            SuccessShape::NodeList,
        ),
        (
            GetData {
                data_id: 1,
                addr: 0,
            }
            .into(),
            SuccessShape::DataValues,
        ),
        (ActiveCount.into(), SuccessShape::Count),
        (NetworkInfo.into(), SuccessShape::Json),
        (State.into(), SuccessShape::Bytes),
        (
            Send {
                dst: 1,
                payload: vec![],
            }
            .into(),
            SuccessShape::Empty,
        ),
        (Listen.into(), SuccessShape::Empty),
    ];
    for (command, shape) in by_command {
        assert_eq!(command.success_shape(), shape, "{command:?}");
    }
    let count = Command::from(ActiveCount).decode_success(&[3]);
    assert_eq!(count, Ok(SuccessReply::Count(Count { count: 3 })));
    let json = Command::from(NetworkInfo).decode_success(br#"{"nodes":[1,2]}"#);
    assert_eq!(
        json,
        Ok(SuccessReply::Json(serde_json::json!({"nodes": [1, 2]})))
    );
    assert_eq!(
        SuccessReply::Json(serde_json::json!({"a": 1})).encode(),
        Ok(br#"{"a":1}"#.to_vec())
    );
    let state = Command::from(State).decode_success(&[0xFF, 0]);
    assert_eq!(state, Ok(SuccessReply::Bytes(vec![0xFF, 0])));
    assert_eq!(
        Command::from(Clean).decode_success(&[]),
        Ok(SuccessReply::Empty)
    );
}

#[test]
fn every_struct_round_trips() {
    let entry = NodeEntry {
        addr: 0xFAFF,
        uuid: uuid(3),
    };
    let bytes = entry.encode();
    assert_eq!(bytes.len(), 18);
    assert_eq!(NodeEntry::decode(&bytes), Ok(entry));

    let value = NodeValue {
        addr: 2,
        data: vec![1, 2, 3],
    };
    let bytes = value.encode(3).expect("length agrees");
    assert_eq!(bytes, [0, 2, 1, 2, 3]);
    assert_eq!(NodeValue::decode(&bytes, 3), Ok(value.clone()));
    assert_eq!(
        NodeValue::decode_prefix(&bytes, 1),
        Ok((
            NodeValue {
                addr: 2,
                data: vec![1]
            },
            &[2u8, 3][..]
        ))
    );

    for v in data_value_samples() {
        let entry = DataEntry::from(v);
        assert_eq!(entry.data_type(), Some(v.data_type()));
        let bytes = entry.encode().expect("table length");
        assert_eq!(bytes.len(), 1 + v.data_type().length());
        assert_eq!(DataEntry::decode(&bytes), Ok(entry.clone()));
        assert_eq!(entry.value(), Ok(v));
    }
}

#[test]
fn every_opcode_payload_round_trips() {
    for notification in notification_samples() {
        let mut payload = Vec::new();
        notification
            .encode_payload_into(&mut payload)
            .expect("encodable");
        assert_eq!(
            Notification::decode(notification.opcode(), &payload),
            Ok(notification.clone())
        );
        let message = UnsolicitedMessage {
            src: 0xFEFF,
            body: notification.clone(),
        };
        let reply = Reply::Message(message.clone());
        let body = reply.encode().expect("encodable");
        assert_eq!(
            body[..4],
            [Reply::MESSAGE, 0xFE, 0xFF, notification.opcode()]
        );
        assert_eq!(Reply::decode(&body), Ok(reply.clone()));
        assert_eq!(UnsolicitedMessage::decode(&body[1..]), Ok(message));
        assert_frames_back(&body);
    }
    assert_eq!(RootReset::OPCODE, 1);
    assert_eq!(DataUpdate::NAME, "DATA_UPDATE");
    assert_eq!(
        Notification::from(NodeConnected {
            addr: 1,
            uuid: uuid(1)
        })
        .name(),
        Some("NOD")
    );
    assert_eq!(
        Notification::Unknown {
            opcode: 9,
            payload: vec![]
        }
        .name(),
        None
    );
}

#[test]
fn every_data_type_round_trips() {
    assert_eq!(DataType::ALL.len(), 6);
    for data_type in DataType::ALL {
        assert_eq!(DataType::from_id(data_type.id()), Some(data_type));
        assert!(!data_type.name().is_empty() && !data_type.description().is_empty());
    }
    assert_eq!(DataType::Temperature.name(), "temperature");
    assert_eq!(DataType::Pressure.unit(), Some("Pa"));
    assert_eq!(DataType::Pressure.length(), 4);
    assert_eq!(DataType::from_id(0), None);
    for v in data_value_samples() {
        let bytes = v.encode();
        assert_eq!(bytes.len(), v.data_type().length(), "{v:?}");
        assert_eq!(DataValue::decode(v.data_type(), &bytes), Ok(v));
        assert_eq!(DataValue::decode_id(v.data_type().id(), &bytes), Ok(v));
    }
    // Big-endian and signed.
    assert_eq!(DataValue::Temperature(-2).encode(), [0xFF, 0xFE]);
    assert_eq!(
        DataValue::decode(DataType::Temperature, &[0xFF, 0xFE]),
        Ok(DataValue::Temperature(-2))
    );
    assert_eq!(DataValue::Pressure(0x0102_0304).encode(), [1, 2, 3, 4]);
}

#[test]
fn enum_helpers() {
    assert_eq!(NodeState::ALL.map(NodeState::value), [b'A', b'D', b'N']);
    assert_eq!(NodeState::from_value(b'D'), Some(NodeState::Disconnected));
    assert_eq!(NodeState::try_from(b'N'), Ok(NodeState::NeverAnnounced));
    assert_eq!(u8::from(NodeState::Active), 65);
    assert_eq!(NodeState::Active.as_char(), Some('A'));
    assert_eq!(NodeState::NeverAnnounced.name(), "NeverAnnounced");
    assert!(NodeState::try_from(b'X').is_err());
}

// ---------------------------------------------------------------------------
// Golden bytes.
// ---------------------------------------------------------------------------

#[test]
fn golden_bodies() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Send {
                dst: 0x0102,
                payload: b"hi".to_vec(),
            }
            .encode(),
            "53 45 4e 44 2d 01 02 68 69",
        ),
        (
            Broadcast {
                payload: vec![0xFF],
            }
            .encode(),
            "42 43 41 53 54 00 00 ff",
        ),
        (RestartRoot.encode(), "52 53 54 2d 52"),
        (
            NodeStatus {
                state: NodeState::Disconnected,
            }
            .encode(),
            "4e 53 54 41 54 44",
        ),
        (
            GetData {
                data_id: 5,
                addr: 0x0A0B,
            }
            .encode(),
            "5b 47 45 54 5d 05 0a 0b",
        ),
        (Reply::Success(vec![]).encode().unwrap(), "53"),
        (
            Reply::Failure {
                message: "é".into(),
            }
            .encode()
            .unwrap(),
            "46 02 c3 a9",
        ),
        (
            DataValues {
                data_id: 1,
                length: 2,
                values: vec![
                    NodeValue {
                        addr: 7,
                        data: vec![0x08, 0x66],
                    },
                    NodeValue {
                        addr: 9,
                        data: vec![0xFF, 0x38],
                    },
                ],
            }
            .encode()
            .unwrap(),
            "01 02 02 00 07 08 66 00 09 ff 38",
        ),
        (
            NodeList {
                nodes: vec![NodeEntry {
                    addr: 0x0102,
                    uuid: uuid(0x11),
                }],
            }
            .encode()
            .unwrap(),
            "01 01 02 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11",
        ),
        (Count { count: 4 }.encode(), "04"),
        (
            Reply::Message(UnsolicitedMessage {
                src: 7,
                body: DataUpdate {
                    entries: vec![
                        DataValue::Temperature(2150).into(),
                        DataValue::Battery(87).into(),
                    ],
                }
                .into(),
            })
            .encode()
            .unwrap(),
            "4d 00 07 02 02 01 08 66 03 57",
        ),
        (
            Reply::Message(UnsolicitedMessage {
                src: 0,
                body: RootReset.into(),
            })
            .encode()
            .unwrap(),
            "4d 00 00 01",
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(to_hex(&bytes), want);
    }
}

#[test]
fn golden_frames_escape_special_bytes() {
    // dst 0xFAFE and payload FF: all three special bytes inside the body.
    let body = Send {
        dst: 0xFAFE,
        payload: vec![0xFF],
    }
    .encode();
    assert_eq!(to_hex(&body), "53 45 4e 44 2d fa fe ff");
    assert_eq!(
        to_hex(&encode_frame(&body)),
        "ff 53 45 4e 44 2d fa 00 fa 04 fa 05 fe"
    );
    let mut batch = Vec::new();
    encode_frame_into(&body, &mut batch);
    encode_frame_into(&Reply::Success(vec![]).encode().unwrap(), &mut batch);
    assert_eq!(
        to_hex(&batch),
        "ff 53 45 4e 44 2d fa 00 fa 04 fa 05 fe ff 53 fe"
    );
    let mut decoder = frame_decoder();
    assert_eq!(decoder.decode_vec(&batch), [body, vec![0x53]]);
    assert_eq!(decoder.max_body(), MAX_BODY);
    assert_eq!(FRAMING.escaped, [FRAME_START, FRAME_END, FRAME_ESCAPE]);
    assert_eq!(
        (FRAME_START, FRAME_END, FRAME_ESCAPE, FRAME_ESCAPE_XOR),
        (0xFF, 0xFE, 0xFA, 0xFA)
    );
}

#[test]
fn transport_constants() {
    assert_eq!(DEFAULT_LOCAL_PORT, 50010);
    assert_eq!(DEFAULT_LOCAL_HOST, "127.0.0.1");
    assert_eq!(MODULE_TIMEOUT, std::time::Duration::from_millis(2000));
    assert_eq!(MODULE_TIMEOUT_MS, 2000);
}

#[test]
fn kind_names() {
    let cases = [
        ("53 45 4e 44 2d 01 02", "Command/SEND-"),
        ("5b 47 45 54 5d 01 00 00", "Command/[GET]"),
        ("4c 53 54 4e 2d", "Command/LSTN-"),
        ("53", "Reply/S"),
        ("53 45 4e 44 58", "Reply/S"),
        ("46 00", "Reply/F"),
        ("4d 00 07 02 00", "Reply/M/DataUpdate"),
        ("4d 00 07 01", "Reply/M/RootReset"),
        ("4d 00 07 09 aa", "Reply/M/Unknown(0x09)"),
    ];
    for (body, want) in cases {
        assert_eq!(describe_body(&hex(body)).as_deref(), Ok(want), "{body}");
    }
    let command = Command::from(SendTracked {
        dst: 1,
        payload: vec![],
    });
    assert_eq!((command.name(), command.ident()), ("SENDI", "SendTracked"));
    assert_eq!(command.handled_by(), HandledBy::Module);
    assert_eq!(Command::from(ActiveCount).handled_by(), HandledBy::Gateway);
    let reply = Reply::Failure {
        message: String::new(),
    };
    assert_eq!((reply.kind_byte(), reply.kind_name()), (b'F', "Failure"));
}

#[test]
fn unknown_opcodes_are_kept_verbatim() {
    let body = hex("4d 12 34 7f de ad be ef");
    let reply = Reply::decode(&body).expect("unknown opcode is not an error");
    assert_eq!(
        reply,
        Reply::Message(UnsolicitedMessage {
            src: 0x1234,
            body: Notification::Unknown {
                opcode: 0x7F,
                payload: hex("de ad be ef")
            }
        })
    );
    assert_eq!(reply.encode(), Ok(body));
}
