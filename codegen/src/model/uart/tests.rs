//! The model's checks: each broken document names the entry at fault.

use serde_json::Value;

use super::types::Protocol;

fn protocol() -> Value {
    let path = specwire_testsupport::workspace().join("schema/uart/protocol.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read protocol.json"))
        .expect("parse protocol.json")
}

fn generate(doc: &Value) -> anyhow::Result<Protocol> {
    Protocol::from_json(doc)
}

fn error_of(doc: &Value) -> String {
    format!(
        "{:#}",
        generate(doc).expect_err("the model should reject it")
    )
}

#[test]
fn rejects_unknown_item_struct() {
    let mut doc = protocol();
    doc["replyLayouts"][0]["fields"][0]["item"] = "Nope".into();
    let e = error_of(&doc);
    assert!(
        e.contains("replyLayouts[0] `NodeList`") && e.contains("unknown struct `Nope`"),
        "{e}"
    );
}

#[test]
fn rejects_unknown_enum_and_layout() {
    let mut doc = protocol();
    doc["commands"][7]["fields"][0]["enum"] = "Nope".into();
    let e = error_of(&doc);
    assert!(
        e.contains("commands[7] `NSTAT`") && e.contains("unknown enum `Nope`"),
        "{e}"
    );

    let mut doc = protocol();
    doc["commands"][7]["reply"] = "Nope".into();
    let e = error_of(&doc);
    assert!(
        e.contains("commands[7] `NSTAT`") && e.contains("reply `Nope`"),
        "{e}"
    );
}

#[test]
fn rejects_missing_length_field() {
    let mut doc = protocol();
    doc["replyLayouts"][1]["fields"][1]["name"] = "size".into();
    let e = error_of(&doc);
    assert!(
        e.contains("replyLayouts[1] `DataValues`") && e.contains("lengthFrom `length`"),
        "{e}"
    );

    let mut doc = protocol();
    doc["structs"][1]["fields"][1]["lengthFrom"] = "addr2".into();
    doc["replyLayouts"][1]["fields"][1]["name"] = "addr2".into();
    // Now NodeValue takes `addr2` from DataValues, which has it: fine.
    assert!(generate(&doc).is_ok());
}

#[test]
fn rejects_unsupplied_length_and_misplaced_rest() {
    let mut doc = protocol();
    // Nothing lists NodeValue any more, so its `length` comes from nowhere.
    doc["replyLayouts"][1]["fields"]
        .as_array_mut()
        .expect("fields")
        .pop();
    let e = error_of(&doc);
    assert!(
        e.contains("structs[1] `NodeValue`") && e.contains("lengthFrom `length`"),
        "{e}"
    );

    let mut doc = protocol();
    doc["commands"][0]["fields"]
        .as_array_mut()
        .expect("fields")
        .reverse();
    let e = error_of(&doc);
    assert!(
        e.contains("commands[0] `SEND-`") && e.contains("must be the last field"),
        "{e}"
    );
}

#[test]
fn rejects_duplicates() {
    let mut doc = protocol();
    doc["opcodes"][1]["code"] = 1.into();
    let e = error_of(&doc);
    assert!(
        e.contains("opcodes[1] `DATA_UPDATE`") && e.contains("duplicate opcode 1"),
        "{e}"
    );

    let mut doc = protocol();
    doc["commands"][1]["name"] = "SEND-".into();
    let e = error_of(&doc);
    assert!(
        e.contains("commands[1]") && e.contains("duplicate command name"),
        "{e}"
    );

    let mut doc = protocol();
    doc["dataTypes"][2]["id"] = 1.into();
    let e = error_of(&doc);
    assert!(
        e.contains("dataTypes[2] `battery`") && e.contains("duplicate data-type id 1"),
        "{e}"
    );
}

#[test]
fn rejects_bad_data_type_length_and_const() {
    let mut doc = protocol();
    doc["dataTypes"][0]["length"] = 4.into();
    let e = error_of(&doc);
    assert!(
        e.contains("dataTypes[0] `temperature`") && e.contains("2 bytes but length is 4"),
        "{e}"
    );

    let mut doc = protocol();
    doc["commands"][2]["fields"][0]["const"] = 70000.into();
    let e = error_of(&doc);
    assert!(
        e.contains("commands[2] `BCAST`") && e.contains("does not fit a u16"),
        "{e}"
    );
}
