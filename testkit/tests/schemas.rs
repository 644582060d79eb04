//! Every generated value must validate, and every mutated one must not, with the
//! validator blaming the mutation's pointer (or something below it).

use std::cell::RefCell;
use std::collections::BTreeSet;

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use specwire_testkit::{Mutation, MutationKind};

const CASES: u32 = 64;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("test schema compiles")
}

/// `path` equals `pointer` or lies below it, comparing whole reference tokens.
fn at_or_below(path: &str, pointer: &str) -> bool {
    path == pointer || path.starts_with(&format!("{pointer}/"))
}

fn check_valid(schema: &Value, strategy: BoxedStrategy<Value>) {
    let validator = validator(schema);
    runner()
        .run(&strategy, |value| {
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {:?}", e, e.instance_path().as_str()))
                .collect();
            proptest::prop_assert!(errors.is_empty(), "{value} is invalid: {errors:?}");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

fn check_invalid(schema: &Value, strategy: BoxedStrategy<(Value, Mutation)>) {
    let validator = validator(schema);
    runner()
        .run(&strategy, |(value, mutation)| {
            let paths: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.instance_path().as_str().to_owned())
                .collect();
            proptest::prop_assert!(!paths.is_empty(), "{mutation} left {value} valid");
            proptest::prop_assert!(
                paths.iter().any(|p| at_or_below(p, &mutation.pointer)),
                "{mutation}: errors at {paths:?} in {value}"
            );
            proptest::prop_assert!(at_or_below(&mutation.changed, &mutation.pointer));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Mutation kinds seen over a fixed sample, to show each schema exercises what it should.
fn kinds_seen(strategy: &BoxedStrategy<(Value, Mutation)>) -> BTreeSet<String> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let seen = RefCell::new(BTreeSet::new());
    for _ in 0..128 {
        let (_, m) = strategy
            .new_tree(&mut runner)
            .expect("strategy produces values")
            .current();
        seen.borrow_mut().insert(format!("{:?}", m.kind));
    }
    seen.into_inner()
}

fn assert_kinds(schema: &Value, expected: &[MutationKind]) {
    let strategy = specwire_testkit::invalid_value(schema).expect("supported");
    let seen = kinds_seen(&strategy);
    for kind in expected {
        assert!(
            seen.contains(&format!("{kind:?}")),
            "{kind:?} never seen; saw {seen:?}"
        );
    }
}

/// A valid and an invalid proptest per schema.
macro_rules! schema_tests {
    ($($name:ident => $schema:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn generated_values_validate() {
                let schema = $schema;
                check_valid(&schema, specwire_testkit::valid_value(&schema).expect("supported"));
            }

            #[test]
            fn mutated_values_fail_where_reported() {
                let schema = $schema;
                check_invalid(&schema, specwire_testkit::invalid_value(&schema).expect("supported"));
            }
        }
    )*};
}

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

fn nested_refs() -> Value {
    json!({
        "$schema": DRAFT,
        "$defs": {
            "Header": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "sent": {"type": "string", "format": "date-time"},
                    "seq": {"type": "integer", "minimum": 0, "maximum": 65535}
                },
                "required": ["id", "sent", "seq"],
                "additionalProperties": false
            },
            "Level": {"type": "string", "enum": ["debug", "info", "warn", "error"]},
            "Body": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": 40},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 6},
                        "uniqueItems": true,
                        "maxItems": 4
                    }
                },
                "required": ["text"],
                "additionalProperties": false
            }
        },
        "title": "Log record",
        "type": "object",
        "properties": {
            "header": {"$ref": "#/$defs/Header", "description": "Who and when."},
            "level": {"$ref": "#/$defs/Level"},
            "body": {"$ref": "#/$defs/Body"},
            "x-internal": {"type": "boolean"}
        },
        "required": ["header", "level", "body"],
        "additionalProperties": false
    })
}

fn enums_and_nullables() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "state": {"enum": ["idle", "busy", null]},
            "mode": {"type": ["integer", "null"], "minimum": 1, "maximum": 3},
            "label": {"type": ["string", "null"], "maxLength": 8},
            "flag": {"const": true},
            "code": {"type": "integer", "enum": [1, 2, 3, "x"]}
        },
        "required": ["state", "mode", "label", "code"]
    })
}

fn one_key_map() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "object",
        "propertyNames": {"enum": ["string", "number", "bool"]},
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 10}
    })
}

fn patterns() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "mac": {"type": "string", "pattern": "^([0-9A-F]{2}:){5}[0-9A-F]{2}$"},
            "cmd": {"type": "string", "pattern": "^[A-Z\\[\\]-]{5}$"},
            "name": {"type": "string", "pattern": "^\\w+$", "maxLength": 12},
            "version": {"type": "string", "pattern": "^\\d+\\.\\d+(\\.\\d+)?$"}
        },
        "required": ["mac", "cmd", "name", "version"]
    })
}

fn date_times() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "array",
        "items": {"type": "string", "format": "date-time"},
        "minItems": 1,
        "maxItems": 5
    })
}

fn integer_ranges() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "u8": {"type": "integer", "minimum": 0, "maximum": 255},
            "u64": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64},
            "negative": {"type": "integer", "exclusiveMaximum": 0},
            "even": {"type": "integer", "multipleOf": 2, "minimum": -10, "maximum": 10},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "price": {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 100},
            "temp": {"type": "number", "minimum": -40.5, "exclusiveMaximum": 85.25}
        },
        "required": ["u8", "u64", "negative", "even", "ratio", "price", "temp"]
    })
}

fn bounded_arrays() -> Value {
    json!({
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "items": false,
                "minItems": 2
            },
            "set": {
                "type": "array",
                "items": {"enum": [1, 2, 3, 4]},
                "uniqueItems": true,
                "minItems": 2,
                "maxItems": 4
            },
            "matrix": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
                "maxItems": 3
            }
        },
        "required": ["pair", "set", "matrix"]
    })
}

fn tagged_union() -> Value {
    json!({
        "$schema": DRAFT,
        "$defs": {
            "Ping": {
                "type": "object",
                "properties": {
                    "kind": {"const": "ping"},
                    "seq": {"type": "integer", "minimum": 0, "maximum": 255}
                },
                "required": ["kind", "seq"],
                "additionalProperties": false
            },
            "Data": {
                "type": "object",
                "properties": {
                    "kind": {"const": "data"},
                    "dst": {"type": "integer", "minimum": 0, "maximum": 65535},
                    "payload": {"type": "string", "contentEncoding": "base64"}
                },
                "required": ["kind", "dst", "payload"],
                "additionalProperties": false
            }
        },
        "oneOf": [{"$ref": "#/$defs/Ping"}, {"$ref": "#/$defs/Data"}]
    })
}

fn union_in_property() -> Value {
    json!({
        "$schema": DRAFT,
        "$defs": {
            "Ping": {
                "type": "object",
                "properties": {"kind": {"const": "ping"}},
                "required": ["kind"]
            },
            "Text": {
                "type": "object",
                "properties": {
                    "kind": {"const": "text"},
                    "body": {"type": "string", "maxLength": 5}
                },
                "required": ["kind", "body"]
            }
        },
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date"},
            "event": {"oneOf": [{"$ref": "#/$defs/Ping"}, {"$ref": "#/$defs/Text"}]},
            "either": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 10}]}
        },
        "required": ["at", "event", "either"]
    })
}

fn merged_all_of() -> Value {
    json!({
        "$schema": DRAFT,
        "$defs": {
            "Base": {
                "type": "object",
                "properties": {"id": {"type": "integer", "minimum": 1}},
                "required": ["id"]
            }
        },
        "allOf": [
            {"$ref": "#/$defs/Base"},
            {
                "properties": {
                    "id": {"maximum": 9},
                    "ok": {"type": "boolean"},
                    "tags": {"type": "object", "additionalProperties": {"type": "integer"}}
                },
                "required": ["ok"]
            }
        ]
    })
}

schema_tests! {
    nested_refs => nested_refs();
    enums_and_nullables => enums_and_nullables();
    one_key_map => one_key_map();
    patterns => patterns();
    date_times => date_times();
    integer_ranges => integer_ranges();
    bounded_arrays => bounded_arrays();
    tagged_union => tagged_union();
    union_in_property => union_in_property();
    merged_all_of => merged_all_of();
}

#[test]
fn each_schema_exercises_its_mutations() {
    use MutationKind::*;
    assert_kinds(
        &nested_refs(),
        &[
            RemoveRequired,
            WrongType,
            OutOfRange,
            NotInEnum,
            BadFormat,
            ExtraPropertyWhereForbidden,
        ],
    );
    assert_kinds(&enums_and_nullables(), &[NotInEnum, OutOfRange, WrongType]);
    assert_kinds(&one_key_map(), &[NotInEnum, OutOfRange]);
    assert_kinds(&patterns(), &[PatternMismatch, OutOfRange]);
    assert_kinds(&date_times(), &[BadFormat, OutOfRange]);
    assert_kinds(&integer_ranges(), &[OutOfRange, NotMultipleOf]);
    assert_kinds(&bounded_arrays(), &[OutOfRange, DuplicateItems]);
    assert_kinds(
        &tagged_union(),
        &[NotInEnum, RemoveRequired, ExtraPropertyWhereForbidden],
    );
}

#[test]
fn mutations_inside_a_union_are_reported_at_the_union() {
    let strategy = specwire_testkit::invalid_value(&union_in_property()).expect("supported");
    let mut runner = TestRunner::deterministic();
    let mut saw_moved = false;
    for _ in 0..200 {
        let (_, m) = strategy.new_tree(&mut runner).expect("tree").current();
        if m.changed.starts_with("/event/") {
            assert_eq!(m.pointer, "/event", "{m}");
            saw_moved = true;
        }
    }
    assert!(saw_moved);
}

#[test]
fn union_values_match_exactly_one_branch() {
    let schema = tagged_union();
    let strategy = specwire_testkit::valid_value(&schema).expect("supported");
    let mut runner = TestRunner::deterministic();
    let mut kinds = BTreeSet::new();
    for _ in 0..64 {
        let v = strategy.new_tree(&mut runner).expect("tree").current();
        kinds.insert(v["kind"].as_str().map(str::to_owned));
    }
    assert_eq!(kinds.len(), 2, "both shapes generated: {kinds:?}");
}

#[test]
fn definitions_are_generated_by_name() {
    let root = nested_refs();
    let wrapper = {
        let mut w = root.clone();
        w["$ref"] = json!("#/$defs/Header");
        for key in [
            "type",
            "properties",
            "required",
            "additionalProperties",
            "title",
        ] {
            w.as_object_mut().expect("object").remove(key);
        }
        w
    };
    check_valid(
        &wrapper,
        specwire_testkit::valid_value_for_def(&root, "Header").expect("supported"),
    );
    check_invalid(
        &wrapper,
        specwire_testkit::invalid_value_for_def(&root, "Header").expect("supported"),
    );
    let missing = specwire_testkit::valid_value_for_def(&root, "Nope").expect_err("no such def");
    assert_eq!(missing.pointer, "#/$defs/Nope");
}

#[test]
fn optional_properties_appear_about_half_the_time() {
    let schema = json!({
        "type": "object",
        "properties": {"a": {"type": "boolean"}},
    });
    let strategy = specwire_testkit::valid_value(&schema).expect("supported");
    let mut runner = TestRunner::deterministic();
    let present = (0..400)
        .filter(|_| {
            let v = strategy.new_tree(&mut runner).expect("tree").current();
            v.get("a").is_some()
        })
        .count();
    assert!((120..=280).contains(&present), "{present} of 400");
}

#[test]
fn extra_properties_only_when_asked() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    let mut runner = TestRunner::deterministic();
    let plain = specwire_testkit::valid_value(&schema).expect("supported");
    for _ in 0..32 {
        let v = plain.new_tree(&mut runner).expect("tree").current();
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    }
    let mut options = specwire_testkit::Options::default();
    options.extra_properties = true;
    let extra = options.valid_value(&schema).expect("supported");
    let validator = validator(&schema);
    let mut most = 0;
    for _ in 0..64 {
        let v = extra.new_tree(&mut runner).expect("tree").current();
        assert!(validator.is_valid(&v), "{v}");
        most = most.max(v.as_object().map_or(0, |o| o.len()));
    }
    assert!(most > 1);
}

#[test]
fn sizes_stay_small() {
    let schema = json!({"type": "array", "items": {"type": "string"}});
    let strategy = specwire_testkit::valid_value(&schema).expect("supported");
    let mut runner = TestRunner::deterministic();
    for _ in 0..64 {
        let v = strategy.new_tree(&mut runner).expect("tree").current();
        let items = v.as_array().expect("array");
        assert!(items.len() <= 8);
        assert!(items
            .iter()
            .all(|s| s.as_str().is_some_and(|s| s.chars().count() <= 24)));
    }
}

#[test]
fn unsupported_constraints_are_refused_with_their_location() {
    let cases = [
        (
            json!({"properties": {"a": {"not": {"type": "null"}}}}),
            "#/properties/a/not",
        ),
        (
            json!({"$defs": {"E": {"type": "string", "format": "email"}}, "$ref": "#/$defs/E"}),
            "#/$defs/E/format",
        ),
        (
            json!({"type": "string", "pattern": "^\\bword\\b$"}),
            "#/pattern",
        ),
        (
            json!({"type": "object", "patternProperties": {"^x": {}}}),
            "#/patternProperties",
        ),
        (
            json!({"items": {"$ref": "https://example.com/other.json"}}),
            "#/items/$ref",
        ),
        (
            json!({"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}, "$ref": "#/$defs/Node"}),
            "#/$defs/Node/properties/next/$ref",
        ),
    ];
    for (schema, pointer) in cases {
        let err = specwire_testkit::valid_value(&schema).expect_err("refused");
        assert_eq!(err.pointer, pointer, "{err}");
        assert!(err.to_string().contains(pointer));
    }
}

#[test]
fn unsatisfiable_schemas_are_refused() {
    for schema in [
        json!({"type": "string", "minLength": 5, "maxLength": 2}),
        json!({"type": "integer", "minimum": 3, "maximum": 2}),
        json!({"allOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"type": "object", "required": ["a"], "additionalProperties": false}),
        json!({"type": "string", "enum": [1, 2]}),
    ] {
        assert!(specwire_testkit::valid_value(&schema).is_err(), "{schema}");
    }
}

#[test]
fn schemas_without_a_breakable_point_have_no_invalid_strategy() {
    for schema in [json!({}), json!(true), json!({"description": "anything"})] {
        assert!(specwire_testkit::valid_value(&schema).is_ok());
        let err = specwire_testkit::invalid_value(&schema).expect_err("nothing to break");
        assert_eq!(err.pointer, "#");
    }
}
