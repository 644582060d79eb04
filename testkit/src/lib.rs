//! Proptest strategies that generate JSON values from a JSON Schema (draft 2020-12).
//!
//! [`valid_value`] turns a schema document into a strategy whose values validate against
//! it; [`invalid_value`] starts from such a value and applies exactly one [`Mutation`]
//! chosen so that the result no longer validates, and says where it broke the value.
//! Tests of specwire's generated types use them to feed decoders realistic messages, and
//! the conformance suite to check that broken messages are refused.
//!
//! ```
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use serde_json::json;
//!
//! let schema = json!({
//!     "$schema": "https://json-schema.org/draft/2020-12/schema",
//!     "$defs": {
//!         "Level": {"enum": ["debug", "info", "warn"]}
//!     },
//!     "type": "object",
//!     "properties": {
//!         "level": {"$ref": "#/$defs/Level"},
//!         "at": {"type": "string", "format": "date-time"},
//!         "retries": {"type": "integer", "minimum": 0, "maximum": 5}
//!     },
//!     "required": ["level", "at"],
//!     "additionalProperties": false
//! });
//! let validator = jsonschema::options()
//!     .should_validate_formats(true)
//!     .build(&schema)?;
//!
//! let mut runner = TestRunner::deterministic();
//! let value = specwire_testkit::valid_value(&schema)?
//!     .new_tree(&mut runner)
//!     .map_err(|e| e.to_string())?
//!     .current();
//! assert!(validator.is_valid(&value));
//!
//! let (broken, mutation) = specwire_testkit::invalid_value(&schema)?
//!     .new_tree(&mut runner)
//!     .map_err(|e| e.to_string())?
//!     .current();
//! assert!(!validator.is_valid(&broken));
//! println!("{mutation}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Supported schemas
//!
//! Local `$ref`s (`#/...`, typically `#/$defs/Name`, not recursive), `type` (a name or an
//! array, including `"null"`), `const`, `enum`, `properties`, `required`,
//! `additionalProperties` (`false`, `true` or a schema), `minProperties`, `maxProperties`,
//! `propertyNames`, `items`, `prefixItems`, `minItems`, `maxItems`, `uniqueItems`,
//! `minLength`, `maxLength` (in characters), `pattern`, `format` (`date-time`, `date`,
//! `uuid`), `contentEncoding: base64` (generation only; validators treat it as an
//! annotation), `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//! `oneOf`, `anyOf` and `allOf`. `allOf` members, `$ref` siblings and `oneOf`/`anyOf`
//! siblings are intersected: object shapes are merged and enumerations filtered.
//!
//! Documents are read as draft 2020-12 whatever their `$schema` says. `$ref`s into other
//! documents, recursive `$ref`s and `$id` below the root are refused.
//!
//! `pattern`s are generated with proptest's regex strategies: `^`/`$` anchors are dropped
//! (generated strings are whole matches anyway), unbounded repetitions are capped, and
//! `\d`/`\w` are narrowed to ASCII as in ECMA-262. Every generated string is then checked
//! against the pattern by the validator's own (ECMA-262) regex engine.
//!
//! Annotations (`title`, `description`, `examples`, `default`, `$comment`, `x-*`, ...)
//! are ignored, and so are keywords outside the 2020-12 vocabulary, as validators ignore
//! them. Vocabulary keywords that constrain values but are not implemented here (`not`,
//! `if`/`then`/`else`, `contains`, `patternProperties`, `dependentRequired`,
//! `unevaluatedProperties`, other `format`s, ...) make the constructors return
//! [`UnsupportedSchema`] naming the schema location, so nobody silently gets data the
//! schema rejects. So do patterns the generator cannot reproduce (look-around, word
//! boundaries, or any pattern whose sampled strings do not match it under ECMA-262 rules).
//!
//! # Shape of generated values
//!
//! Optional properties are present about half the time. Extra properties are generated
//! only where `additionalProperties` is a schema, where `minProperties` needs them, or
//! when [`Options::extra_properties`] asks. Arrays and strings are kept short (see
//! [`Options`]) unless the schema's minimums demand more. Numbers are finite; integers
//! without an upper (lower) bound stay within `i64`, which is what generated Rust types
//! hold. Strategies are built once per call and are cheap to clone; they are not `Send`.
//!
//! # Mutations
//!
//! [`invalid_value`] only applies a mutation it can prove breaks the value: a type none of
//! the applicable `type` keywords allows, a value outside an enumeration, a bound crossed
//! by one, and so on. Inside a `oneOf`/`anyOf` branch each candidate is additionally run
//! through a validator of the combinator, so a change that happens to match another
//! branch is never returned. If the schema gives no point that every generated value can
//! be broken at (for example `{}` or `true`), `invalid_value` returns
//! [`UnsupportedSchema`] instead of a strategy.

mod generate;
mod json;
mod mutate;
mod pattern;
mod schema;

use std::fmt;
use std::sync::Arc;

use proptest::strategy::{BoxedStrategy, Strategy};
use serde_json::Value;

/// A schema, or part of one, that these strategies cannot honour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedSchema {
    /// Location of the offending schema as a URI fragment JSON Pointer, e.g.
    /// `#/$defs/Message/properties/at/pattern`.
    pub pointer: String,
    /// What is unsupported, or why no value can satisfy the schema there.
    pub reason: String,
    /// Set when the schema is well understood but admits no value at `pointer` (for
    /// example `minLength` above `maxLength`); such a `oneOf`/`anyOf` branch is skipped.
    pub(crate) unsatisfiable: bool,
}

impl UnsupportedSchema {
    pub(crate) fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            reason: reason.into(),
            unsatisfiable: false,
        }
    }

    pub(crate) fn unsatisfiable(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            reason: reason.into(),
            unsatisfiable: true,
        }
    }
}

impl fmt::Display for UnsupportedSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported schema at {}: {}", self.pointer, self.reason)
    }
}

impl std::error::Error for UnsupportedSchema {}

/// One change that made a valid value invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    /// RFC 6901 JSON Pointer of the instance location a validator reports as broken.
    ///
    /// This equals [`Mutation::changed`] except when the change sits inside a
    /// `oneOf`/`anyOf` branch: validators then report the failure at the combinator's
    /// location, and `pointer` is that (outermost) location.
    pub pointer: String,
    /// RFC 6901 JSON Pointer of the value that was changed (for `RemoveRequired`,
    /// `ExtraPropertyWhereForbidden` and property-count changes: the object).
    pub changed: String,
    /// What was done there.
    pub kind: MutationKind,
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |p: &str| {
            if p.is_empty() {
                "(root)".to_owned()
            } else {
                p.to_owned()
            }
        };
        write!(f, "{:?} at {}", self.kind, at(&self.changed))?;
        if self.pointer != self.changed {
            write!(f, " (reported at {})", at(&self.pointer))?;
        }
        Ok(())
    }
}

/// The kinds of change [`invalid_value`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MutationKind {
    /// A property listed in `required` was removed.
    RemoveRequired,
    /// The value was replaced by one of a JSON type `type` does not allow.
    WrongType,
    /// A bound was crossed: `minimum`/`maximum` (and the exclusive forms), `minLength`/
    /// `maxLength`, `minItems`/`maxItems` or `minProperties`/`maxProperties`.
    OutOfRange,
    /// The value (or, under `propertyNames`, a key) was replaced by one outside `enum`/`const`.
    NotInEnum,
    /// A string was replaced by one that does not match `pattern`.
    PatternMismatch,
    /// A string was replaced by one that is not of its `format` (e.g. `date-time`).
    BadFormat,
    /// A property was added to an object with `additionalProperties: false`.
    ExtraPropertyWhereForbidden,
    /// A number was moved off its `multipleOf` grid.
    NotMultipleOf,
    /// An item was duplicated in an array with `uniqueItems: true`.
    DuplicateItems,
}

/// Size limits and switches for generation. [`Options::default`] suits unit tests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Most items in a generated array unless `minItems` or `prefixItems` need more.
    pub max_items: usize,
    /// Most characters in a generated free-form string unless `minLength` needs more.
    pub max_string_len: usize,
    /// Most extra (not declared) properties in a generated object.
    pub max_extra_properties: usize,
    /// Also generate extra properties where `additionalProperties` is absent or `true`.
    pub extra_properties: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_items: 8,
            max_string_len: 24,
            max_extra_properties: 3,
            extra_properties: false,
        }
    }
}

impl Options {
    /// Like [`valid_value`], with these options.
    pub fn valid_value(&self, schema: &Value) -> Result<BoxedStrategy<Value>, UnsupportedSchema> {
        let compiled = schema::Compiled::root(schema)?;
        generate::Generator::new(self, &compiled).strategy(&compiled.node)
    }

    /// Like [`valid_value_for_def`], with these options.
    pub fn valid_value_for_def(
        &self,
        root: &Value,
        def_name: &str,
    ) -> Result<BoxedStrategy<Value>, UnsupportedSchema> {
        let compiled = schema::Compiled::def(root, def_name)?;
        generate::Generator::new(self, &compiled).strategy(&compiled.node)
    }

    /// Like [`invalid_value`], with these options.
    pub fn invalid_value(
        &self,
        schema: &Value,
    ) -> Result<BoxedStrategy<(Value, Mutation)>, UnsupportedSchema> {
        self.invalid(&schema::Compiled::root(schema)?)
    }

    /// Like [`invalid_value_for_def`], with these options.
    pub fn invalid_value_for_def(
        &self,
        root: &Value,
        def_name: &str,
    ) -> Result<BoxedStrategy<(Value, Mutation)>, UnsupportedSchema> {
        self.invalid(&schema::Compiled::def(root, def_name)?)
    }

    fn invalid(
        &self,
        compiled: &schema::Compiled,
    ) -> Result<BoxedStrategy<(Value, Mutation)>, UnsupportedSchema> {
        if !mutate::always_mutable(&compiled.node) {
            return Err(UnsupportedSchema::new(
                compiled.node.ptr.clone(),
                "no mutation is guaranteed to invalidate the values this schema admits",
            ));
        }
        let valid = generate::Generator::new(self, compiled).strategy(&compiled.node)?;
        let mutator = Arc::new(mutate::Mutator::new(compiled));
        let node = compiled.node.clone();
        Ok(valid
            .prop_map(move |value| mutator.groups(&node, &value))
            // Rare: e.g. an object whose only mutable parts are optional and absent.
            .prop_filter("no mutation applies to this value", |groups| {
                !groups.is_empty()
            })
            .prop_flat_map(|groups| {
                proptest::sample::select(groups).prop_flat_map(proptest::sample::select)
            })
            .boxed())
    }
}

/// Strategy for values that validate against `schema`, a whole schema document.
///
/// `schema` may carry root `$defs` and refer to them with `"$ref": "#/$defs/Name"`.
///
/// # Errors
///
/// [`UnsupportedSchema`] if the schema uses a constraint this crate does not implement,
/// has a recursive `$ref`, or admits no value.
pub fn valid_value(schema: &Value) -> Result<BoxedStrategy<Value>, UnsupportedSchema> {
    Options::default().valid_value(schema)
}

/// Strategy for values that validate against `root["$defs"][def_name]`, resolving `$ref`s
/// against `root`.
///
/// # Errors
///
/// As [`valid_value`], and if `root` has no such definition.
pub fn valid_value_for_def(
    root: &Value,
    def_name: &str,
) -> Result<BoxedStrategy<Value>, UnsupportedSchema> {
    Options::default().valid_value_for_def(root, def_name)
}

/// Strategy for values that do not validate against `schema`, each with the one
/// [`Mutation`] that broke an otherwise valid value.
///
/// # Errors
///
/// As [`valid_value`], and if the schema has no point at which every generated value can
/// be made invalid (for example `{}`), rather than returning a strategy that cannot
/// produce anything.
pub fn invalid_value(
    schema: &Value,
) -> Result<BoxedStrategy<(Value, Mutation)>, UnsupportedSchema> {
    Options::default().invalid_value(schema)
}

/// [`invalid_value`] for `root["$defs"][def_name]`, resolving `$ref`s against `root`.
///
/// # Errors
///
/// As [`invalid_value`], and if `root` has no such definition.
pub fn invalid_value_for_def(
    root: &Value,
    def_name: &str,
) -> Result<BoxedStrategy<(Value, Mutation)>, UnsupportedSchema> {
    Options::default().invalid_value_for_def(root, def_name)
}
