//! Every example (manifest and seed) validates, is recognised as its
//! message, and round-trips through the generated Rust type.

mod support;

use serde_json::Value;
use specwire_protocol::device::LineProtocol;
use specwire_protocol::JsonProtocol;
use specwire_protocol::{chat, device, discovery, subscription, task, Direction, JsonFamily};
use support::*;

/// Decodes with the family's generated enum and re-serializes.
fn decode_roundtrip(
    family: &str,
    value: &Value,
    direction: Direction,
) -> Result<(String, Value), String> {
    macro_rules! via {
        ($module:ident) => {
            $module::Message::decode_from(value.clone(), Some(direction))
                .map(|m| {
                    (
                        m.name().to_owned(),
                        serde_json::to_value(&m).expect("serializes"),
                    )
                })
                .map_err(|e| e.to_string())
        };
    }
    match family {
        "discovery" => via!(discovery),
        "task" => via!(task),
        "subscription" => via!(subscription),
        "chat" => via!(chat),
        other => Err(format!("no family {other}")),
    }
}

#[test]
fn manifest_examples_decode_as_their_message_and_round_trip() {
    let mut checked = 0;
    for family in JSON_FAMILIES {
        let manifest = manifest(family);
        for example in manifest["examples"].as_array().expect("examples") {
            let expected = example["message"].as_str().expect("message");
            let value = &example["value"];
            let direction = manifest["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .find(|m| m["name"] == expected)
                .and_then(|m| Direction::parse(m["direction"].as_str()?))
                .expect("direction");
            let (name, again) = decode_roundtrip(family, value, direction)
                .unwrap_or_else(|e| panic!("{family}/{expected}: {e}\n{value:#}"));
            assert_eq!(
                name, expected,
                "{family}: example recognised as the wrong message: {value}"
            );
            if let Err(difference) = equivalent(value, &again) {
                panic!(
                    "{family}/{expected} does not round-trip: {difference}\n{value:#}\n{again:#}"
                );
            }
            // What the type writes is still valid.
            let family_enum = JsonFamily::from_name(family).expect("json family");
            assert_eq!(
                family_enum
                    .validate(&again, Some(direction))
                    .map_err(|e| e.to_string()),
                Ok(expected)
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} examples checked");
}

#[test]
fn every_message_has_an_example() {
    for family in JSON_FAMILIES.iter().chain(&["device"]) {
        let manifest = manifest(family);
        for message in manifest["messages"].as_array().expect("messages") {
            let name = message["name"].as_str().expect("name");
            let covered = manifest["examples"]
                .as_array()
                .expect("examples")
                .iter()
                .any(|e| e["message"] == name);
            assert!(covered, "{family}/{name} has no example in its manifest");
        }
    }
}

#[test]
fn device_examples_parse_and_write_back_identically() {
    let manifest = manifest("device");
    for example in manifest["examples"].as_array().expect("examples") {
        let text = example["text"].as_str().expect("text");
        let expected = example["message"].as_str().expect("message");
        let direction = manifest["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["name"] == expected)
            .and_then(|m| specwire_protocol::Direction::parse(m["direction"].as_str()?))
            .expect("direction");
        // Any message of its direction parses it (the hub's DataBroadcast
        // and DeviceCommand overlap: only the receiver knows which it gets).
        device::Line::parse_from(text, Some(direction)).unwrap_or_else(|e| panic!("{text}: {e}"));
        let line = device::Line::parse_as(expected, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(line.name(), expected, "{text:?}");
        assert_eq!(line.to_text(), text);
    }
}

#[test]
fn device_line_fields_are_extracted() {
    let line = device::Line::parse("cmd:all:say:time: 12:00").expect("parses");
    assert_eq!(
        line,
        device::Line::Command(device::Command {
            target: "all".into(),
            command: "say".into(),
            parameters: Some("time: 12:00".into()),
        })
    );
    let line = device::Line::parse("cmd:lamp-1:reset").expect("parses");
    assert_eq!(
        line,
        device::Line::Command(device::Command {
            target: "lamp-1".into(),
            command: "reset".into(),
            parameters: None
        })
    );
    assert!(matches!(
        device::Line::parse(""),
        Err(device::LineError::Empty)
    ));
    assert!(
        device::Line::parse_from("id:", Some(specwire_protocol::Direction::ClientToServer))
            .map(|l| l.name() == "DeviceData")
            .unwrap_or(false)
    );
    assert!(device::Line::parse_from(
        "nocolon",
        Some(specwire_protocol::Direction::ServerToClient)
    )
    .map(|l| l.name() == "DeviceCommand")
    .unwrap_or(false));
}

#[test]
fn shipped_command_registry_is_valid() {
    let path = workspace().join("schema/device/commands.json");
    let bytes = std::fs::read(&path).expect("commands.json");
    let registry = device::parse_registry(&bytes).expect("valid registry");
    assert!(registry.commands.iter().any(|c| c.name.as_str() == "led"));
    let broken = br#"{"commands": [{"name": "bad:name", "description": "x"}]}"#;
    match device::parse_registry(broken) {
        Err(specwire_protocol::DecodeError::Invalid { violations, .. }) => {
            assert_eq!(violations[0].instance_path, "/commands/0/name");
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// Seed examples that are not messages: format templates, not instances.
const NOT_MESSAGES: &[(&str, &str)] = &[
    ("001_15f03a8b6e994ed8.txt", "\"type\": \"message_type\""),
    ("001_15f03a8b6e994ed8.txt", "\"data\": { ... }"),
];

#[test]
fn every_seed_json_example_validates() {
    let Some(dir) = seeds_dir() else {
        eprintln!("skipped: ../shared/spec/seeds is not beside this checkout");
        return;
    };
    let examples = seed_examples(&dir);
    let mut valid = 0;
    let mut excused = Vec::new();
    for example in &examples {
        if let Some(&(_, marker)) = NOT_MESSAGES
            .iter()
            .find(|(seed, marker)| *seed == example.seed && example.text.contains(marker))
        {
            excused.push(marker);
            continue;
        }
        let value: Value = serde_json::from_str(&example.text).unwrap_or_else(|e| {
            panic!(
                "{}: example is not JSON ({e}):\n{}",
                example.seed, example.text
            )
        });
        let accepted = JsonFamily::ALL
            .iter()
            .find_map(|family| family.validate(&value, None).ok());
        assert!(
            accepted.is_some(),
            "{}: no family accepts\n{value:#}",
            example.seed
        );
        valid += 1;
    }
    // Every exception is used exactly once: none hides a real example.
    assert_eq!(
        excused.len(),
        NOT_MESSAGES.len(),
        "exceptions used: {excused:?}"
    );
    assert!(valid >= 60, "only {valid} seed examples found");
}

#[test]
fn strip_line_comments_keeps_urls() {
    let text = "{\"endpoint\": \"ws://x:1\", // note\n\"a\": 1}";
    assert_eq!(
        strip_line_comments(text),
        "{\"endpoint\": \"ws://x:1\", \n\"a\": 1}"
    );
}

#[test]
fn subscription_direction_disambiguates_ping() {
    let bare_ping = serde_json::json!({"type": "ping"});
    let decoded = subscription::Message::decode(bare_ping.clone()).expect("client ping");
    assert_eq!(decoded.name(), "ClientPing");
    let err = subscription::Message::decode_from(
        bare_ping,
        Some(specwire_protocol::Direction::ServerToClient),
    )
    .expect_err("a server ping needs id and timestamp");
    assert!(err.to_string().contains("ServerPing"), "{err}");
}

#[test]
fn task_type_constant_is_enforced_by_the_type() {
    // A message struct cannot be deserialized with another type's tag.
    let value = serde_json::json!({"type": "Ack", "messageId": "m", "timestamp": "2025-07-02T11:50:00Z", "payload": {"taskId": "t"}});
    assert!(serde_json::from_value::<task::GetStatus>(value).is_err());
}
