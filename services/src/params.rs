//! Reading `taskParameters` without trusting them.
//!
//! The runtime checks types and required-ness against the operation's
//! description before a handler runs, but handlers are also called directly
//! (tests, other embedders), so every read here checks again and turns a
//! problem into `INVALID_PARAMETERS` instead of panicking. The type rules
//! are the runtime's own ([`ParamType::accepts`]): an `int` is any JSON
//! number without a fractional part, so `3.0` is accepted as `3`.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};
use specwire_runtime::task::{json_type, ParamType, TaskError};

/// The parameter called `name`, if present, after checking its type.
fn typed<'a>(
    parameters: &'a Map<String, Value>,
    name: &str,
    kind: ParamType,
) -> Result<Option<&'a Value>, TaskError> {
    match parameters.get(name) {
        None => Ok(None),
        Some(value) if kind.accepts(value) => Ok(Some(value)),
        Some(value) => Err(TaskError::invalid_parameters(format!(
            "parameter `{name}` must be {kind}, got {}",
            json_type(value)
        ))),
    }
}

fn missing(name: &str, kind: ParamType) -> TaskError {
    TaskError::invalid_parameters(format!("parameter `{name}` ({kind}) is required"))
}

/// An optional string parameter.
pub(crate) fn string<'a>(
    parameters: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, TaskError> {
    Ok(typed(parameters, name, ParamType::String)?.and_then(Value::as_str))
}

/// A required string parameter.
pub(crate) fn required_string<'a>(
    parameters: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, TaskError> {
    string(parameters, name)?.ok_or_else(|| missing(name, ParamType::String))
}

/// An optional boolean parameter.
pub(crate) fn boolean(
    parameters: &Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, TaskError> {
    Ok(typed(parameters, name, ParamType::Bool)?.and_then(Value::as_bool))
}

/// An optional integer parameter, which must lie in `range`.
pub(crate) fn int_in(
    parameters: &Map<String, Value>,
    name: &str,
    range: RangeInclusive<i64>,
) -> Result<Option<i64>, TaskError> {
    let Some(value) = typed(parameters, name, ParamType::Int)? else {
        return Ok(None);
    };
    // `accepts` let through i64, u64 and integral floats; a u64 or a float
    // beyond i64 is simply out of every range we use.
    let number = value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|number| number.abs() < 9.0e18)
                .map(|number| number as i64)
        })
        .filter(|number| range.contains(number));
    match number {
        Some(number) => Ok(Some(number)),
        None => Err(out_of_range(name, value, range.start(), range.end())),
    }
}

/// A required integer parameter, which must lie in `range`.
pub(crate) fn required_int_in(
    parameters: &Map<String, Value>,
    name: &str,
    range: RangeInclusive<i64>,
) -> Result<i64, TaskError> {
    int_in(parameters, name, range)?.ok_or_else(|| missing(name, ParamType::Int))
}

/// An optional number parameter, which must be finite and lie in `range`.
pub(crate) fn float_in(
    parameters: &Map<String, Value>,
    name: &str,
    range: RangeInclusive<f64>,
) -> Result<Option<f64>, TaskError> {
    let Some(value) = typed(parameters, name, ParamType::Float)? else {
        return Ok(None);
    };
    match value.as_f64().filter(|number| range.contains(number)) {
        Some(number) => Ok(Some(number)),
        None => Err(out_of_range(name, value, range.start(), range.end())),
    }
}

fn out_of_range(
    name: &str,
    value: &Value,
    low: impl std::fmt::Display,
    high: impl std::fmt::Display,
) -> TaskError {
    TaskError::invalid_parameters(format!(
        "parameter `{name}` must be between {low} and {high}, got {value}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use specwire_runtime::task::codes;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ints_accept_integral_numbers_in_range() {
        let p = params(
            json!({"a": 3, "b": 3.0, "c": 3.5, "d": "3", "e": 0, "f": u64::MAX, "g": -1e300}),
        );
        assert_eq!(int_in(&p, "a", 1..=10), Ok(Some(3)));
        assert_eq!(int_in(&p, "b", 1..=10), Ok(Some(3)));
        assert_eq!(int_in(&p, "missing", 1..=10), Ok(None));
        for name in ["c", "d", "e", "f", "g"] {
            let error = int_in(&p, name, 1..=10).unwrap_err();
            assert_eq!(error.code, codes::INVALID_PARAMETERS, "{name}");
        }
        assert_eq!(
            int_in(&p, "e", 1..=10).unwrap_err().message,
            "parameter `e` must be between 1 and 10, got 0"
        );
        assert_eq!(
            required_int_in(&p, "missing", 1..=10).unwrap_err().message,
            "parameter `missing` (int) is required"
        );
    }

    #[test]
    fn strings_bools_and_floats_are_type_checked() {
        let p = params(json!({"s": "x", "n": 1, "b": true, "f": 2.5, "null": null}));
        assert_eq!(required_string(&p, "s"), Ok("x"));
        assert_eq!(
            required_string(&p, "n").unwrap_err().message,
            "parameter `n` must be string, got an integer"
        );
        assert!(string(&p, "null").is_err());
        assert_eq!(boolean(&p, "b"), Ok(Some(true)));
        assert!(boolean(&p, "s").is_err());
        assert_eq!(float_in(&p, "f", 0.0..=3.0), Ok(Some(2.5)));
        assert_eq!(float_in(&p, "n", 0.0..=3.0), Ok(Some(1.0)));
        assert!(float_in(&p, "f", 0.0..=2.0).is_err());
    }
}
