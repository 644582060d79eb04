//! Hand-built values of every uart command, data value, success layout and
//! notification: what the round-trip and property tests start from.

use specwire_protocol::uart::*;
use uuid::Uuid;

fn uuid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

// ---------------------------------------------------------------------------
// Samples: one hand-built value per command, layout, opcode and data type.
// ---------------------------------------------------------------------------

/// One value of every command. The match in `command_sample_covers` fails to
/// compile when a command is added without a sample here.
pub fn command_samples() -> Vec<Command> {
    vec![
        Send {
            dst: 0x0102,
            payload: b"hi".to_vec(),
        }
        .into(),
        SendTracked {
            dst: 0xFFFE,
            payload: vec![0xFA, 0xFF, 0xFE, 0x00],
        }
        .into(),
        Broadcast {
            payload: vec![0xFF],
        }
        .into(),
        RestartRoot.into(),
        Clean.into(),
        State.into(),
        NetworkInfo.into(),
        NodeStatus {
            state: NodeState::NeverAnnounced,
        }
        .into(),
        GetData {
            data_id: 1,
            addr: 0,
        }
        .into(),
        ActiveCount.into(),
        Listen.into(),
    ]
}

pub fn data_value_samples() -> Vec<DataValue> {
    let mut out = Vec::new();
    for data_type in DataType::ALL {
        // Exhaustive: a new data type needs samples here.
        match data_type {
            DataType::Temperature => out.extend([
                DataValue::Temperature(2150),
                DataValue::Temperature(-4000),
                DataValue::Temperature(i16::MIN),
            ]),
            DataType::Humidity => {
                out.extend([DataValue::Humidity(0), DataValue::Humidity(u16::MAX)])
            }
            DataType::Battery => out.extend([DataValue::Battery(87), DataValue::Battery(0xFF)]),
            DataType::Light => out.push(DataValue::Light(0xFAFE)),
            DataType::Pressure => out.push(DataValue::Pressure(101_325)),
            DataType::Counter => out.push(DataValue::Counter(u32::MAX)),
        }
    }
    out
}

pub fn layout_samples() -> Vec<SuccessReply> {
    vec![
        SuccessReply::NodeList(NodeList { nodes: vec![] }),
        SuccessReply::NodeList(NodeList {
            nodes: vec![
                NodeEntry {
                    addr: 1,
                    uuid: uuid(0xAA),
                },
                NodeEntry {
                    addr: 0xFFFF,
                    uuid: uuid(0xFF),
                },
            ],
        }),
        SuccessReply::DataValues(DataValues {
            data_id: 2,
            length: 2,
            values: vec![],
        }),
        SuccessReply::DataValues(DataValues {
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
        }),
        SuccessReply::DataValues(DataValues {
            data_id: 200,
            length: 0,
            values: vec![NodeValue {
                addr: 3,
                data: vec![],
            }],
        }),
        SuccessReply::Count(Count { count: 0 }),
        SuccessReply::Count(Count { count: 255 }),
    ]
}

pub fn notification_samples() -> Vec<Notification> {
    vec![
        RootReset.into(),
        DataUpdate { entries: vec![] }.into(),
        DataUpdate {
            entries: data_value_samples()
                .into_iter()
                .map(DataEntry::from)
                .collect(),
        }
        .into(),
        NetworkStatus {
            nodes: vec![NodeEntry {
                addr: 0x0102,
                uuid: uuid(1),
            }],
        }
        .into(),
        NodeConnected {
            addr: 7,
            uuid: uuid(0xFE),
        }
        .into(),
        Notification::Unknown {
            opcode: 0x99,
            payload: vec![1, 2, 3],
        },
        Notification::Unknown {
            opcode: 0,
            payload: vec![],
        },
    ]
}
