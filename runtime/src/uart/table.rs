//! The data-type table a gateway decodes `DATA_UPDATE`s with: the
//! schema's (`schema/uart/protocol.json`) by default, or a deployment's
//! own, loaded from a JSON file checked against the schema's rules for
//! the table (`schema/meta/uart-protocol.schema.json`).
//!
//! ```
//! use specwire_runtime::uart::table::DataTypeTable;
//!
//! let table = DataTypeTable::schema_default();
//! let temperature = table.get(1).unwrap();
//! assert_eq!((temperature.name.as_str(), temperature.length), ("temperature", 2));
//! // 0x0866 = 2150 steps of 0.01 °C.
//! assert_eq!(temperature.show(&[0x08, 0x66]), "21.50 °C");
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// How a value's bytes are read (big-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// One unsigned byte.
    U8,
    /// One signed byte.
    I8,
    /// Two bytes, unsigned.
    U16,
    /// Two bytes, signed.
    I16,
    /// Four bytes, unsigned.
    U32,
    /// Four bytes, signed.
    I32,
    /// Opaque bytes.
    Bytes,
}

impl ValueType {
    fn size(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 => Some(4),
            ValueType::Bytes => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::Bytes => "bytes",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTypeSpec {
    /// The name (`temperature`).
    pub name: String,
    /// The one-byte id on the wire.
    pub id: u8,
    /// Bytes per value.
    pub length: usize,
    /// How the bytes are read.
    pub value_type: ValueType,
    /// One step of the value (`0.01 °C`, `%`, `lux`).
    #[serde(default)]
    pub unit: Option<String>,
    /// What it measures.
    #[serde(default)]
    pub description: String,
}

impl DataTypeSpec {
    /// The raw value as a number, when it is one.
    pub fn number(&self, raw: &[u8]) -> Option<i64> {
        let be = |n: usize| -> Option<u64> {
            (raw.len() == n).then(|| raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        };
        Some(match self.value_type {
            ValueType::U8 | ValueType::U16 | ValueType::U32 => be(raw.len())? as i64,
            ValueType::I8 => i64::from(*raw.first()? as i8),
            ValueType::I16 => i64::from(i16::from_be_bytes(raw.try_into().ok()?)),
            ValueType::I32 => i64::from(i32::from_be_bytes(raw.try_into().ok()?)),
            ValueType::Bytes => return None,
        })
    }

    /// The unit's scale and symbol: `0.01 °C` → (0.01, "°C"), `lux` →
    /// (1, "lux"), `1` → (1, "").
    pub fn scale(&self) -> (f64, &str) {
        let unit = self.unit.as_deref().unwrap_or("").trim();
        let (number, symbol) = unit.split_once(' ').unwrap_or((unit, ""));
        match number.parse::<f64>() {
            Ok(scale) => (scale, symbol.trim()),
            Err(_) => (1.0, unit),
        }
    }

    /// The value scaled to its unit, when it is a number.
    pub fn scaled(&self, raw: &[u8]) -> Option<f64> {
        self.number(raw).map(|n| n as f64 * self.scale().0)
    }

    /// The value for people: scaled with its unit, or hex for bytes.
    pub fn show(&self, raw: &[u8]) -> String {
        let (scale, symbol) = self.scale();
        match self.number(raw) {
            Some(n) => {
                let decimals = if scale < 1.0 {
                    (-scale.log10()).ceil().max(0.0) as usize
                } else {
                    0
                };
                let value = format!("{:.*}", decimals, n as f64 * scale);
                if symbol.is_empty() {
                    value
                } else {
                    format!("{value} {symbol}")
                }
            }
            None => specwire_wire::to_hex(raw),
        }
    }
}

/// Why a table file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Unreadable.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Not a table the schema allows.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// The table, by id.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTypeTable {
    by_id: BTreeMap<u8, DataTypeSpec>,
}

/// The family's protocol document, whose `dataTypes` is the default table.
const PROTOCOL: &str = include_str!("../../../schema/uart/protocol.json");

/// The schema's rules for one table row (from the uart meta-schema).
const META_SCHEMA: &str = include_str!("../../../schema/meta/uart-protocol.schema.json");

impl DataTypeTable {
    /// The table in `schema/uart/protocol.json`.
    pub fn schema_default() -> DataTypeTable {
        // Parsed and checked once; the tests check it parses (codegen
        // checks the schema itself).
        static DEFAULT: std::sync::OnceLock<DataTypeTable> = std::sync::OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                DataTypeTable::parse(PROTOCOL.as_bytes()).unwrap_or(DataTypeTable {
                    by_id: BTreeMap::new(),
                })
            })
            .clone()
    }

    /// A table from `{"dataTypes": [...]}` in `path`, checked against the
    /// schema's rules for the table: names, one-byte ids, lengths that fit
    /// the value type, ids and names unique.
    pub fn load(path: &Path) -> Result<DataTypeTable, TableError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|error| TableError::Read {
            path: shown.clone(),
            error,
        })?;
        DataTypeTable::parse(&text).map_err(|problem| TableError::Invalid {
            path: shown,
            problem,
        })
    }

    /// [`load`](Self::load) from bytes.
    pub fn parse(text: &[u8]) -> Result<DataTypeTable, String> {
        let value: Value =
            serde_json::from_slice(text).map_err(|error| format!("not JSON: {error}"))?;
        check_against_schema(&value)?;
        let rows: Vec<DataTypeSpec> = serde_json::from_value(value["dataTypes"].clone())
            .map_err(|error| error.to_string())?;
        let mut by_id = BTreeMap::new();
        for row in rows {
            if let Some(size) = row.value_type.size() {
                if size != row.length {
                    return Err(format!(
                        "`{}`: valueType {} is {size} bytes but length is {}",
                        row.name,
                        row.value_type.name(),
                        row.length
                    ));
                }
            }
            if by_id
                .values()
                .any(|other: &DataTypeSpec| other.name == row.name)
            {
                return Err(format!("the name `{}` is used twice", row.name));
            }
            let id = row.id;
            if by_id.insert(id, row).is_some() {
                return Err(format!("the id {id} is used twice"));
            }
        }
        if by_id.is_empty() {
            return Err("the table lists no data types".to_owned());
        }
        Ok(DataTypeTable { by_id })
    }

    /// The row for `id`.
    pub fn get(&self, id: u8) -> Option<&DataTypeSpec> {
        self.by_id.get(&id)
    }

    /// Every row, by id.
    pub fn rows(&self) -> impl Iterator<Item = &DataTypeSpec> {
        self.by_id.values()
    }

    /// A `DATA_UPDATE` payload (`count(1) (dataId(1) data)*`) as
    /// `(dataId, bytes)` pairs; an unknown id makes the rest unreadable.
    pub fn split_update<'a>(&self, payload: &'a [u8]) -> Result<Vec<(u8, &'a [u8])>, String> {
        let (&count, mut rest) = payload
            .split_first()
            .ok_or("an empty DATA_UPDATE payload")?;
        let mut values = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (&id, after) = rest.split_first().ok_or("a DATA_UPDATE cut short")?;
            let row = self
                .get(id)
                .ok_or_else(|| format!("data id {id} is not in the data-type table"))?;
            if after.len() < row.length {
                return Err(format!("a DATA_UPDATE cut short in `{}`", row.name));
            }
            let (data, after) = after.split_at(row.length);
            values.push((id, data));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(format!("{} bytes after the last value", rest.len()));
        }
        Ok(values)
    }
}

/// Checks `value` with the meta-schema's `dataTypes` rule.
fn check_against_schema(value: &Value) -> Result<(), String> {
    let meta: Value = serde_json::from_str(META_SCHEMA).map_err(|error| error.to_string())?;
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": meta["$defs"],
        "type": "object",
        "required": ["dataTypes"],
        "properties": {"dataTypes": meta["properties"]["dataTypes"]},
    });
    let validator = jsonschema::validator_for(&schema).map_err(|error| error.to_string())?;
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::uart::DataType;

    #[test]
    fn the_default_table_is_the_generated_one() {
        let table = DataTypeTable::schema_default();
        assert_eq!(table.rows().count(), DataType::ALL.len());
        for data_type in DataType::ALL {
            let row = table.get(data_type.id()).unwrap();
            assert_eq!(
                (row.name.as_str(), row.length),
                (data_type.name(), data_type.length())
            );
        }
        let temperature = table.get(1).unwrap();
        assert_eq!(temperature.show(&(-1234i16).to_be_bytes()), "-12.34 °C");
        assert_eq!(table.get(3).unwrap().show(&[87]), "87 %");
        assert_eq!(table.get(6).unwrap().show(&[0, 0, 1, 0]), "256");
    }

    #[test]
    fn a_table_file_is_checked_against_the_schema_s_rules() {
        let good = br#"{"dataTypes": [{"name": "co2", "id": 9, "length": 2, "valueType": "u16", "unit": "ppm", "description": "CO2."}]}"#;
        let table = DataTypeTable::parse(good).unwrap();
        assert_eq!(table.get(9).unwrap().show(&[0x01, 0x90]), "400 ppm");
        let bad: [(&[u8], &str); 4] = [
            (br#"{"dataTypes": [{"name": "Bad Name", "id": 1, "length": 1, "valueType": "u8", "description": ""}]}"#, "/dataTypes/0/name"),
            (br#"{"dataTypes": [{"name": "a", "id": 1, "length": 1, "valueType": "u16", "description": ""}]}"#, "2 bytes but length is 1"),
            (br#"{"dataTypes": [{"name": "a", "id": 1, "length": 1, "valueType": "u8", "description": ""}, {"name": "b", "id": 1, "length": 1, "valueType": "u8", "description": ""}]}"#, "id 1 is used twice"),
            (b"{}", "dataTypes"),
        ];
        for (text, expected) in bad {
            let error = DataTypeTable::parse(text).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn updates_split_by_the_table_s_lengths() {
        let table = DataTypeTable::schema_default();
        let payload = [2, 1, 0x08, 0x66, 3, 87];
        let values = table.split_update(&payload).unwrap();
        assert_eq!(values, [(1, &[0x08, 0x66][..]), (3, &[87][..])]);
        assert!(table.split_update(&[1, 99, 0]).unwrap_err().contains("99"));
        assert!(table.split_update(&[2, 3, 87]).is_err());
        assert!(table.split_update(&[]).is_err());
    }
}
