//! Types and schemas never disagree.
//!
//! For every message of every JSON family, values generated from the schema
//! (specwire-testkit) decode into the generated Rust type, and what that
//! type serializes is again accepted by the validator as the same message.
//! Values broken by one mutation are rejected, with an error at the
//! mutated member.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use specwire_protocol::device::LineProtocol;
use specwire_protocol::JsonProtocol;
use specwire_protocol::{chat, discovery, subscription, task, DecodeError, Direction, JsonFamily};
use support::*;

fn decode(
    family: &str,
    value: Value,
    direction: Option<Direction>,
) -> Result<(&'static str, Value), DecodeError> {
    macro_rules! via {
        ($module:ident) => {
            $module::Message::decode_from(value, direction)
                .map(|m| (m.name(), serde_json::to_value(&m).expect("serializes")))
        };
    }
    match family {
        "discovery" => via!(discovery),
        "task" => via!(task),
        "subscription" => via!(subscription),
        _ => via!(chat),
    }
}

fn messages(family: &str) -> Vec<(String, Direction)> {
    manifest(family)["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                Direction::parse(m["direction"].as_str().expect("direction")).expect("direction"),
            )
        })
        .collect()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn generated_values_decode_and_serialize_back_to_valid_messages() {
    for family in JSON_FAMILIES {
        let bundle = bundle(family);
        let family_enum = JsonFamily::from_name(family).expect("family");
        for (name, direction) in messages(family) {
            let strategy = specwire_testkit::valid_value_for_def(&bundle, &name)
                .unwrap_or_else(|e| panic!("{family}/{name}: {e}"));
            runner(48)
                .run(&strategy, |value| {
                    let violations = family_enum.violations_of(&name, &value).expect("message");
                    prop_assert!(violations.is_empty(), "generator produced an invalid {name}: {violations:?}");
                    let (decoded_as, again) = decode(family, value.clone(), Some(direction))
                        .map_err(|e| TestCaseError::fail(format!("{family}/{name}: {e}\n{value:#}")))?;
                    // Messages sharing a discriminator (ping/pong) may
                    // decode as their twin; both must accept the value.
                    if decoded_as == name {
                        let again_violations = family_enum.violations_of(&name, &again).expect("message");
                        prop_assert!(
                            again_violations.is_empty(),
                            "{family}/{name}: the Rust type wrote an invalid message: {again_violations:?}\n{again:#}"
                        );
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{family}/{name}: {e}"));
        }
    }
}

#[test]
fn mutated_values_are_rejected_at_the_mutated_member() {
    for family in JSON_FAMILIES {
        let bundle = bundle(family);
        let family_enum = JsonFamily::from_name(family).expect("family");
        for (name, _) in messages(family) {
            let Ok(strategy) = specwire_testkit::invalid_value_for_def(&bundle, &name) else {
                continue;
            };
            runner(32)
                .run(&strategy, |(value, mutation)| {
                    let violations = family_enum.violations_of(&name, &value).expect("message");
                    prop_assert!(
                        !violations.is_empty(),
                        "{family}/{name}: {mutation:?} left it valid:\n{value:#}"
                    );
                    prop_assert!(
                        violations
                            .iter()
                            .any(|v| v.instance_path.starts_with(&mutation.pointer)
                                || mutation.pointer.starts_with(&v.instance_path)),
                        "{family}/{name}: {mutation:?} reported at {:?}",
                        violations
                            .iter()
                            .map(|v| &v.instance_path)
                            .collect::<Vec<_>>()
                    );
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{family}/{name}: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    /// Arbitrary bytes into every JSON decoder: an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = task::Message::from_slice(&bytes);
        let _ = discovery::Message::from_slice(&bytes);
        let _ = subscription::Message::from_slice(&bytes);
        let _ = chat::Message::from_slice(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = specwire_protocol::device::Line::parse(text);
        }
        let _ = specwire_protocol::device::parse_registry(&bytes);
    }

    /// Arbitrary JSON shapes (not just bytes) into every family.
    #[test]
    fn arbitrary_json_never_panics_a_validator(value in arbitrary_json()) {
        for family in JsonFamily::ALL {
            let _ = family.validate(&value, None);
        }
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("AssignTask"),
            Just("ping"),
            Just("system_status"),
            Just("join_chat"),
            Just("ServiceAdvertisement")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("payload".to_owned()),
                    Just("data".to_owned()),
                    Just("method".to_owned()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
