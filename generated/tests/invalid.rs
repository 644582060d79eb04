//! For every JSON message, broken variants of its example are rejected and
//! the error names the member that was broken.
//!
//! The variants are derived from the schema, not written by hand, so a new
//! message is covered the day it is added: remove the deepest required
//! member; give the deepest typed member a value of another JSON type; put
//! a value outside an `enum` where there is one.

mod support;

use serde_json::{json, Value};
use specwire_protocol::device::LineProtocol;
use specwire_protocol::{Direction, JsonFamily};
use support::*;

#[derive(Debug)]
enum Variant {
    /// Remove `property` from the object at `object`.
    RemoveRequired { object: String, property: String },
    /// Put `replacement` at `pointer`.
    Replace {
        pointer: String,
        replacement: Value,
        why: &'static str,
    },
}

fn resolve<'a>(bundle: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        schema = &bundle["$defs"][name];
    }
    schema
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Walks the example and its schema together, collecting every variant.
fn collect(bundle: &Value, schema: &Value, value: &Value, pointer: &str, out: &mut Vec<Variant>) {
    let schema = resolve(bundle, schema);
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, member) in object {
            let Some(member_schema) = properties.get(key) else {
                continue;
            };
            let here = format!("{pointer}/{}", escape(key));
            if required.contains(&key.as_str()) {
                out.push(Variant::RemoveRequired {
                    object: pointer.to_owned(),
                    property: key.clone(),
                });
            }
            let resolved = resolve(bundle, member_schema);
            if let Some(replacement) = wrong_type_for(resolved) {
                out.push(Variant::Replace {
                    pointer: here.clone(),
                    replacement,
                    why: "wrong type",
                });
            }
            if resolved
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|e| e.iter().all(Value::is_string))
                || resolved.get("const").is_some_and(Value::is_string)
            {
                out.push(Variant::Replace {
                    pointer: here.clone(),
                    replacement: json!("__not_allowed__"),
                    why: "not in enum",
                });
            }
            collect(bundle, member_schema, member, &here, out);
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            collect(bundle, items, item, &format!("{pointer}/{index}"), out);
        }
    }
}

/// A value of a JSON type the schema does not allow, when the schema says
/// which types it allows.
fn wrong_type_for(schema: &Value) -> Option<Value> {
    let allowed: Vec<&str> = match schema.get("type")? {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    if !allowed.contains(&"boolean") {
        Some(json!(true))
    } else {
        Some(json!({"unexpected": "object"}))
    }
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

fn apply(value: &Value, variant: &Variant) -> (Value, String) {
    let mut broken = value.clone();
    match variant {
        Variant::RemoveRequired { object, property } => {
            broken
                .pointer_mut(object)
                .and_then(Value::as_object_mut)
                .expect("object")
                .remove(property);
            (broken, object.clone())
        }
        Variant::Replace {
            pointer,
            replacement,
            ..
        } => {
            *broken.pointer_mut(pointer).expect("member") = replacement.clone();
            (broken, pointer.clone())
        }
    }
}

#[test]
fn every_message_rejects_broken_variants_at_the_right_path() {
    let mut total = 0;
    for family_name in JSON_FAMILIES {
        let family = JsonFamily::from_name(family_name).expect("family");
        let manifest = manifest(family_name);
        let bundle = bundle(family_name);
        for message in manifest["messages"].as_array().expect("messages") {
            let name = message["name"].as_str().expect("name");
            let direction = Direction::parse(message["direction"].as_str().expect("direction"));
            let example = manifest["examples"]
                .as_array()
                .expect("examples")
                .iter()
                .find(|e| e["message"] == name)
                .map(|e| e["value"].clone())
                .unwrap_or_else(|| panic!("{family_name}/{name}: no example"));
            let mut variants = Vec::new();
            collect(&bundle, &bundle["$defs"][name], &example, "", &mut variants);
            // The deepest variant of each kind: the most precise path.
            let mut chosen: Vec<&Variant> = Vec::new();
            for kind in ["required", "wrong type", "not in enum"] {
                let best = variants
                    .iter()
                    .filter(|v| match v {
                        Variant::RemoveRequired { .. } => kind == "required",
                        Variant::Replace { why, .. } => *why == kind,
                    })
                    .max_by_key(|v| match v {
                        Variant::RemoveRequired { object, .. } => depth(object) + 1,
                        Variant::Replace { pointer, .. } => depth(pointer),
                    });
                chosen.extend(best);
            }
            assert!(
                chosen.len() >= 2,
                "{family_name}/{name}: fewer than two invalid variants: {variants:?}"
            );
            for variant in chosen {
                let (broken, path) = apply(&example, variant);
                let violations = family.violations_of(name, &broken).expect("message exists");
                assert!(
                    violations.iter().any(|v| v.instance_path == path),
                    "{family_name}/{name}: {variant:?} gave {violations:?}, expected an error at {path:?}"
                );
                assert!(
                    family
                        .validate(&broken, direction)
                        .map(|found| found != name)
                        .unwrap_or(true),
                    "{family_name}/{name}: {variant:?} still decodes as {name}"
                );
                total += 1;
            }
        }
    }
    assert!(total >= 100, "only {total} variants");
}

#[test]
fn errors_name_field_rule_and_expected_value() {
    let family = JsonFamily::from_name("task").expect("task");
    let mut update = manifest("task")["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .find(|e| e["message"] == "TaskStatusUpdate")
        .expect("example")["value"]
        .clone();
    update["payload"]["progressPercentage"] = json!(101);
    match family.validate(&update, None) {
        Err(specwire_protocol::DecodeError::Invalid {
            message,
            violations,
            ..
        }) => {
            assert_eq!(message, "TaskStatusUpdate");
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].instance_path, "/payload/progressPercentage");
            assert_eq!(violations[0].keyword, "maximum");
            assert_eq!(violations[0].expected, Some(json!(100)));
        }
        other => panic!("expected one violation, got {other:?}"),
    }
    // format is asserted
    update["payload"]["progressPercentage"] = json!(50);
    update["timestamp"] = json!("yesterday");
    let error = family.validate(&update, None).expect_err("bad date-time");
    assert!(error.to_string().contains("/timestamp"), "{error}");
}

#[test]
fn unknown_type_and_non_objects_are_named() {
    let family = JsonFamily::from_name("task").expect("task");
    let error = family
        .validate(&json!({"type": "Bogus"}), None)
        .expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "unknown task message: no message has /type = \"Bogus\""
    );
    let error = family.validate(&json!([1, 2]), None).expect_err("array");
    assert!(
        error
            .to_string()
            .contains("expected a JSON object, found an array"),
        "{error}"
    );
}

#[test]
fn every_device_line_kind_rejects_broken_frames() {
    use specwire_protocol::device::Line;
    // Two or more frames per line kind that its pattern must refuse.
    let cases: &[(&str, &[&str])] = &[
        ("Register", &["id:", "id:a:b", "id:two words", "ID:lamp"]),
        ("Subscribe", &["", "s ", "sub"]),
        (
            "Command",
            &["cmd:lamp", "cmd::led", "cmd:lamp:", "cmd:la mp:led"],
        ),
        ("Ping", &["", "ping ", "PING"]),
        ("DeviceData", &[""]),
        ("Pong", &["", "pong!"]),
        ("HubPing", &["", "pingg"]),
        ("Error", &["error:", "error", "err:x"]),
        ("DataBroadcast", &[":data", "lamp", "la mp:x"]),
        ("DeviceCommand", &["", ":x", "two words"]),
    ];
    let manifest = manifest("device");
    for message in manifest["messages"].as_array().expect("messages") {
        let name = message["name"].as_str().expect("name");
        let broken = cases
            .iter()
            .find(|(kind, _)| *kind == name)
            .unwrap_or_else(|| panic!("device/{name} has no broken frames in this test"))
            .1;
        // DeviceData accepts any non-empty text by design, so only the
        // empty frame can break it.
        assert!(name == "DeviceData" || broken.len() >= 2, "device/{name}");
        for text in broken {
            assert!(
                Line::parse_as(name, text).is_err(),
                "device/{name} accepted {text:?}"
            );
        }
    }
}
