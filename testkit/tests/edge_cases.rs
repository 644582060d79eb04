//! Less common shapes: overlapping unions, merges, forced extra properties, tuples,
//! mixed type lists. Each must generate valid values and sound mutations.

use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

fn cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "overlapping anyOf",
            json!({"anyOf": [
                {"type": "string", "maxLength": 3},
                {"type": "string", "pattern": "^a"}
            ]}),
        ),
        (
            "nullable ref via oneOf",
            json!({
                "$defs": {"P": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
                "oneOf": [{"type": "null"}, {"$ref": "#/$defs/P"}]
            }),
        ),
        (
            "float bounds",
            json!({"type": "object", "properties": {
            "a": {"type": "number", "exclusiveMinimum": 0.1, "exclusiveMaximum": 0.2},
            "b": {"type": "integer", "minimum": 0.5, "maximum": 3.5},
            "c": {"type": "number", "multipleOf": 0.1, "minimum": -1, "maximum": 1},
            "d": {"type": "number", "minimum": 1e300}
        }, "required": ["a", "b", "c", "d"]}),
        ),
        (
            "allOf with a closed side",
            json!({"allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"], "additionalProperties": false},
                {"properties": {"a": {"minimum": 0}, "c": {"type": "boolean"}}}
            ]}),
        ),
        (
            "forced extra properties",
            json!({"type": "object", "properties": {"a": {"type": "null"}}, "minProperties": 3}),
        ),
        (
            "tuple with rest",
            json!({"type": "array", "prefixItems": [{"const": "v1"}, {"type": "integer"}], "items": {"type": "boolean"}, "maxItems": 5}),
        ),
        (
            "mixed type list",
            json!({"type": ["string", "integer", "boolean", "null", "array", "object"], "minLength": 2, "maximum": 7, "maxItems": 2, "required": ["k"]}),
        ),
        (
            "pattern keyed map",
            json!({"type": "object", "propertyNames": {"pattern": "^[a-z]{2,4}$"}, "additionalProperties": {"type": "integer"}, "maxProperties": 3}),
        ),
        ("const object", json!({"const": {"a": [1, 2], "b": null}})),
        (
            "array of unions",
            json!({"type": "array", "minItems": 1, "items": {"oneOf": [
                {"type": "object", "properties": {"t": {"const": "a"}, "n": {"type": "integer", "maximum": 0}}, "required": ["t"], "additionalProperties": false},
                {"type": "object", "properties": {"t": {"const": "b"}, "s": {"type": "string", "format": "uuid"}}, "required": ["t", "s"]}
            ]}}),
        ),
        (
            "unique tuple",
            json!({"type": "array", "prefixItems": [{"enum": [1, 2]}, {"enum": [1, 2]}], "items": false, "uniqueItems": true, "minItems": 2}),
        ),
        (
            "bounded formats",
            json!({"type": "object", "properties": {
            "d": {"type": "string", "format": "date", "maxLength": 10},
            "blob": {"type": "string", "contentEncoding": "base64", "minLength": 4, "maxLength": 16}
        }, "required": ["d", "blob"]}),
        ),
        (
            "enum filtered by type",
            json!({"type": ["string", "null"], "enum": ["a", 1, null, true]}),
        ),
        (
            "nested oneOf in oneOf",
            json!({"oneOf": [
                {"type": "object", "properties": {"k": {"const": 1}, "v": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]}}, "required": ["k", "v"]},
                {"type": "object", "properties": {"k": {"const": 2}}, "required": ["k"]}
            ]}),
        ),
        (
            "ref siblings",
            json!({
                "$defs": {"S": {"type": "string", "minLength": 1}},
                "type": "object",
                "properties": {"s": {"$ref": "#/$defs/S", "maxLength": 4, "description": "short"}},
                "required": ["s"]
            }),
        ),
    ]
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("test schema compiles")
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn generated_values_validate() {
    for (name, schema) in cases() {
        let validator = validator(&schema);
        let strategy =
            specwire_testkit::valid_value(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        runner()
            .run(&strategy, |v| {
                let errors: Vec<String> =
                    validator.iter_errors(&v).map(|e| e.to_string()).collect();
                proptest::prop_assert!(errors.is_empty(), "{v}: {errors:?}");
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn mutated_values_fail_where_reported() {
    for (name, schema) in cases() {
        let validator = validator(&schema);
        let strategy =
            specwire_testkit::invalid_value(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        runner()
            .run(&strategy, |(v, m)| {
                let paths: Vec<String> = validator
                    .iter_errors(&v)
                    .map(|e| e.instance_path().as_str().to_owned())
                    .collect();
                proptest::prop_assert!(!paths.is_empty(), "{m} left {v} valid");
                proptest::prop_assert!(
                    paths
                        .iter()
                        .any(|p| p == &m.pointer || p.starts_with(&format!("{}/", m.pointer))),
                    "{m}: errors at {paths:?} in {v}"
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
