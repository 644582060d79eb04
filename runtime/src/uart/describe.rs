//! `M` bodies for people and programs: names for opcodes, node addresses
//! in hex, values scaled with their units (the data-type table's), as a
//! line of text or as JSON. The client (`specwire uart listen`) prints
//! these.

use serde_json::{json, Value};
use specwire_protocol::uart::{NetworkStatus, NodeConnected};
use specwire_wire::to_hex;

use super::table::DataTypeTable;

/// A node address as the tools show it (`0x0102`).
pub fn addr(addr: u16) -> String {
    format!("0x{addr:04X}")
}

/// An `M` body (kind byte included) as JSON: `src`, `opcode` (the
/// table's name, or hex), and what the payload says.
pub fn message_json(body: &[u8], table: &DataTypeTable) -> Value {
    let [b'M', high, low, opcode, payload @ ..] = body else {
        return json!({"error": "not an M body", "raw": to_hex(body)});
    };
    let src = addr(u16::from_be_bytes([*high, *low]));
    let mut value = match *opcode {
        0x01 => json!({"opcode": "RST"}),
        0x02 => match table.split_update(payload) {
            Ok(values) => {
                let values: Vec<Value> = values
                    .iter()
                    .map(|(id, raw)| value_json(*id, raw, table))
                    .collect();
                json!({"opcode": "DATA_UPDATE", "values": values})
            }
            Err(reason) => {
                json!({"opcode": "DATA_UPDATE", "error": reason, "payload": to_hex(payload)})
            }
        },
        0x03 => match NetworkStatus::decode(payload) {
            Ok(status) => {
                let nodes: Vec<Value> = status
                    .nodes
                    .iter()
                    .map(|node| json!({"node": addr(node.addr), "uuid": node.uuid.to_string()}))
                    .collect();
                json!({"opcode": "NET", "nodes": nodes})
            }
            Err(error) => {
                json!({"opcode": "NET", "error": error.to_string(), "payload": to_hex(payload)})
            }
        },
        0x04 => match NodeConnected::decode(payload) {
            Ok(node) => {
                json!({"opcode": "NOD", "node": addr(node.addr), "uuid": node.uuid.to_string()})
            }
            Err(error) => {
                json!({"opcode": "NOD", "error": error.to_string(), "payload": to_hex(payload)})
            }
        },
        other => json!({"opcode": format!("0x{other:02X}"), "payload": to_hex(payload)}),
    };
    if let Some(object) = value.as_object_mut() {
        object.insert("src".to_owned(), json!(src));
    }
    value
}

/// One value of data type `id` as JSON: its table row's `name`, the `raw`
/// bytes in hex, the scaled `value`, its `unit` and `text`; only `id` and
/// `raw` for an id the table does not know.
pub fn value_json(id: u8, raw: &[u8], table: &DataTypeTable) -> Value {
    match table.get(id) {
        Some(row) => json!({
            "name": row.name, "id": id, "raw": to_hex(raw),
            "value": row.scaled(raw), "unit": row.scale().1, "text": row.show(raw),
        }),
        None => json!({"id": id, "raw": to_hex(raw)}),
    }
}

/// An `M` body as one line: `0x0002 DATA_UPDATE temperature=21.50 °C battery=87 %`.
pub fn message_text(body: &[u8], table: &DataTypeTable) -> String {
    let value = message_json(body, table);
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let head = format!("{} {}", text("src"), text("opcode"));
    if let Some(error) = value["error"].as_str() {
        return format!("{head} unreadable: {error} ({})", text("payload"));
    }
    let detail = match value["opcode"].as_str() {
        Some("DATA_UPDATE") => value["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}={}",
                    v["name"].as_str().unwrap_or("?"),
                    v["text"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some("NET") => {
            let nodes = value["nodes"].as_array().map(Vec::len).unwrap_or(0);
            let list: Vec<String> = value["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["node"].as_str().unwrap_or("?").to_owned())
                .collect();
            format!("{nodes} node(s): {}", list.join(", "))
        }
        Some("NOD") => format!("node {} uuid {}", text("node"), text("uuid")),
        Some("RST") => "root reset".to_owned(),
        _ => text("payload"),
    };
    format!("{head} {detail}").trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_updates_are_named_and_scaled() {
        let table = DataTypeTable::schema_default();
        let body = [b'M', 0x01, 0x02, 0x02, 2, 1, 0x08, 0x66, 3, 87];
        assert_eq!(
            message_text(&body, &table),
            "0x0102 DATA_UPDATE temperature=21.50 °C battery=87 %"
        );
        let json = message_json(&body, &table);
        assert_eq!(json["values"][0]["value"], 21.5);
        assert_eq!(
            message_text(&[b'M', 0, 0, 0x01], &table),
            "0x0000 RST root reset"
        );
        assert!(message_text(&[b'M', 0, 0, 0x02, 1, 99], &table).contains("unreadable"));
        assert_eq!(
            message_text(&[b'M', 0, 5, 0x7F, 0xAB], &table),
            "0x0005 0x7F ab"
        );
        assert!(message_json(b"S", &table)["error"].is_string());
    }
}
