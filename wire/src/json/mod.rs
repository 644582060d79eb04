//! Recognising and validating JSON messages: the hand-written half of the
//! generated JSON families.
//!
//! Every generated family module (`specwire_protocol::task`, ...) describes
//! its messages as a static table of [`MessageSpec`]s (name, direction, the
//! discriminator rules that recognise it) and owns one [`LazyValidator`] per
//! message. Decoding a received value is then always the same three steps:
//!
//! 1. [`candidates`] picks the messages whose discriminator rules hold, most
//!    specific first, so the schema used is the real message's and errors
//!    name the real field (a top-level `oneOf` would only say "no match");
//! 2. the message's validator checks every constraint of the schema (the
//!    generated Rust types do not enforce bounds or patterns);
//! 3. the generated type is deserialized from the already-parsed value.
//!
//! ```
//! use specwire_wire::json::{candidates, Direction, MatchRule, MessageSpec};
//! static SPECS: &[MessageSpec] = &[MessageSpec {
//!     name: "Ping",
//!     direction: Direction::ClientToServer,
//!     rules: &[MatchRule::Const { pointer: "/type", value: "\"ping\"" }],
//! }];
//! let value = serde_json::json!({"type": "ping"});
//! assert_eq!(candidates(SPECS, &value, None), vec![0]);
//! ```

mod protocol;
pub mod stream;

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

pub use protocol::{JsonProtocol, Transport};

/// Who sends a message, as the family manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by a client (or device, or requester) to the server.
    ClientToServer,
    /// Sent by the server (provider, hub) to one client.
    ServerToClient,
    /// Sent to everyone listening.
    Broadcast,
}

impl Direction {
    /// The manifest spelling (`client-to-server`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client-to-server",
            Direction::ServerToClient => "server-to-client",
            Direction::Broadcast => "broadcast",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "client-to-server" => Some(Direction::ClientToServer),
            "server-to-client" => Some(Direction::ServerToClient),
            "broadcast" => Some(Direction::Broadcast),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One discriminator condition of a message.
#[derive(Clone, Copy, Debug)]
pub enum MatchRule {
    /// The member at `pointer` equals `value` (JSON text, e.g. `"\"ping\""`).
    Const {
        /// JSON Pointer of the member.
        pointer: &'static str,
        /// The JSON text it must equal.
        value: &'static str,
    },
    /// The member at `pointer` exists.
    Present {
        /// JSON Pointer of the member.
        pointer: &'static str,
    },
}

impl MatchRule {
    fn pointer(&self) -> &'static str {
        match *self {
            MatchRule::Const { pointer, .. } | MatchRule::Present { pointer } => pointer,
        }
    }

    /// Whether the rule holds, given the member its pointer names.
    fn holds_for(&self, member: Option<&Value>) -> bool {
        match (*self, member) {
            (MatchRule::Present { .. }, member) => member.is_some(),
            (MatchRule::Const { .. }, None) => false,
            // Discriminators are almost always strings: compare without
            // parsing the expected JSON text.
            (
                MatchRule::Const {
                    value: expected, ..
                },
                Some(Value::String(found)),
            ) => {
                expected.len() == found.len() + 2
                    && expected.starts_with('"')
                    && expected[1..expected.len() - 1] == **found
            }
            (
                MatchRule::Const {
                    value: expected, ..
                },
                Some(other),
            ) => serde_json::from_str::<Value>(expected)
                .map(|expected| &expected == other)
                .unwrap_or(false),
        }
    }
}

/// An array index token: digits, no leading zero (RFC 6901).
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// Resolves an RFC 6901 pointer without allocating (unlike
/// `Value::pointer`, which this sits on the hot path of every decode).
pub fn resolve<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for token in pointer.strip_prefix('/')?.split('/') {
        current = match current {
            Value::Object(map) if token.contains('~') => {
                map.get(&token.replace("~1", "/").replace("~0", "~"))?
            }
            // Messages have a handful of members: comparing keys beats
            // hashing one (SipHash) until maps get larger.
            Value::Object(map) if map.len() <= 8 => {
                map.iter().find(|(key, _)| key.as_str() == token)?.1
            }
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => items.get(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A message of a family, as the generated code describes it.
#[derive(Clone, Copy, Debug)]
pub struct MessageSpec {
    /// The message name, as in the manifest (`AssignTask`).
    pub name: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// All must hold for a value to be this message.
    pub rules: &'static [MatchRule],
}

/// Indices into `specs` of the messages `value` could be, best first.
///
/// A message qualifies when all its rules hold; among those, the ones with
/// the most rules win (so `system_status` + `data.action = subscribe` beats
/// `system_status` alone). Several winners remain only when messages share
/// their rules and differ by direction; `direction` narrows them.
pub fn candidates(
    specs: &[MessageSpec],
    value: &Value,
    direction: Option<Direction>,
) -> Vec<usize> {
    // Messages share a few discriminator pointers: resolve each once. The
    // pointers are the same `&'static str`s, so an address comparison
    // usually settles it before a string comparison is needed.
    const CACHED: usize = 8;
    let mut resolved: [(&str, Option<&Value>); CACHED] = [("", None); CACHED];
    let mut cached = 0;
    let mut member = |pointer: &'static str| -> Option<&Value> {
        for &(known, found) in &resolved[..cached] {
            if std::ptr::eq(known, pointer) || known == pointer {
                return found;
            }
        }
        let found = resolve(value, pointer);
        if cached < CACHED {
            resolved[cached] = (pointer, found);
            cached += 1;
        }
        found
    };
    most_specific(specs.iter().enumerate().filter_map(|(index, spec)| {
        let sent = direction.is_none_or(|d| d == spec.direction);
        let holds = sent
            && spec
                .rules
                .iter()
                .all(|rule| rule.holds_for(member(rule.pointer())));
        holds.then_some((index, spec.rules.len()))
    }))
}

/// Of `(item, rule count)` pairs whose rules all hold, in order, keeps the
/// items with the most rules: the one rule of message recognition, shared
/// with codegen's example checks.
pub fn most_specific<T>(matches: impl IntoIterator<Item = (T, usize)>) -> Vec<T> {
    let mut best = 0;
    let mut found = Vec::new();
    for (item, score) in matches {
        if score > best {
            best = score;
            found.clear();
        }
        if score == best {
            found.push(item);
        }
    }
    found
}

/// A JSON family as the generated code describes it: its messages, how to
/// tell them apart, and one validator per message (same order).
///
/// The generated family modules are thin wrappers over this, so the
/// recognise-then-validate logic exists once.
pub struct Family {
    /// The family name (`task`).
    pub name: &'static str,
    /// The members that tell messages apart, for error messages.
    pub discriminator: &'static [&'static str],
    /// Every message, in manifest order.
    pub messages: &'static [MessageSpec],
    /// `validators[i]` checks `messages[i]`.
    pub validators: &'static [LazyValidator],
    /// Built on first use; see [`Dispatch`].
    dispatch: OnceLock<Option<Dispatch>>,
}

/// A shortcut for the common shape of a family, where every message's
/// first rule is a string `const` at one pointer (`/type`): the value found
/// there picks the few messages worth checking, by binary search, instead
/// of trying every message's rules.
struct Dispatch {
    pointer: &'static str,
    /// (unquoted constant, message index), sorted by constant then index.
    by_value: Vec<(&'static str, usize)>,
}

impl Dispatch {
    fn build(messages: &'static [MessageSpec]) -> Option<Dispatch> {
        let mut pointer = None;
        let mut by_value = Vec::with_capacity(messages.len());
        for (index, spec) in messages.iter().enumerate() {
            let MatchRule::Const { pointer: p, value } = *spec.rules.first()? else {
                return None;
            };
            if *pointer.get_or_insert(p) != p {
                return None;
            }
            let unquoted = value.strip_prefix('"')?.strip_suffix('"')?;
            // Escapes would need decoding before comparing; not worth it.
            if unquoted.contains('\\') {
                return None;
            }
            by_value.push((unquoted, index));
        }
        by_value.sort_unstable();
        Some(Dispatch {
            pointer: pointer?,
            by_value,
        })
    }

    fn candidates(
        &self,
        messages: &[MessageSpec],
        value: &Value,
        direction: Option<Direction>,
    ) -> Vec<usize> {
        let Some(Value::String(found)) = resolve(value, self.pointer) else {
            return Vec::new();
        };
        let start = self
            .by_value
            .partition_point(|(constant, _)| *constant < found.as_str());
        let narrowed = self.by_value[start..]
            .iter()
            .take_while(|(constant, _)| constant == found)
            .map(|&(_, index)| index);
        // The remaining rules and the tie-breaks are the general ones.
        most_specific(narrowed.filter_map(|index| {
            let spec = &messages[index];
            let sent = direction.is_none_or(|d| d == spec.direction);
            let holds = sent
                && spec.rules[1..]
                    .iter()
                    .all(|rule| rule.holds_for(resolve(value, rule.pointer())));
            holds.then_some((index, spec.rules.len()))
        }))
    }
}

impl Family {
    /// Describes a family; `validators[i]` must check `messages[i]`.
    pub const fn new(
        name: &'static str,
        discriminator: &'static [&'static str],
        messages: &'static [MessageSpec],
        validators: &'static [LazyValidator],
    ) -> Family {
        Family {
            name,
            discriminator,
            messages,
            validators,
            dispatch: OnceLock::new(),
        }
    }

    /// The messages `value` could be, best first (see [`candidates`]).
    pub fn candidates(&self, value: &Value, direction: Option<Direction>) -> Vec<usize> {
        match self.dispatch.get_or_init(|| Dispatch::build(self.messages)) {
            Some(dispatch) => dispatch.candidates(self.messages, value, direction),
            None => candidates(self.messages, value, direction),
        }
    }

    /// Recognises and validates `value`; returns the message's index in
    /// `messages`. With several candidates (messages that share their
    /// discriminator and differ by direction) the first whose schema
    /// accepts the value wins; if none does, the first one's errors are
    /// reported.
    pub fn validate_from(
        &self,
        value: &Value,
        direction: Option<Direction>,
    ) -> Result<usize, DecodeError> {
        let found = self.candidates(value, direction);
        let Some(&first) = found.first() else {
            return Err(DecodeError::UnknownMessage {
                family: self.name,
                detail: describe_discriminator(value, self.discriminator),
            });
        };
        let chosen = if found.len() > 1 {
            found
                .iter()
                .copied()
                .find(|&index| self.validators[index].is_valid(value))
                .unwrap_or(first)
        } else {
            first
        };
        let violations = self.validators[chosen].violations(value);
        if violations.is_empty() {
            Ok(chosen)
        } else {
            Err(DecodeError::Invalid {
                family: self.name,
                message: self.messages[chosen].name,
                violations,
            })
        }
    }

    /// Every violation of message `name`'s schema by `value` (`None` when
    /// the family has no such message).
    pub fn violations_of(&self, name: &str, value: &Value) -> Option<Vec<Violation>> {
        let index = self.messages.iter().position(|spec| spec.name == name)?;
        Some(self.validators[index].violations(value))
    }

    /// Compiles every validator now instead of on first use.
    pub fn warm_up(&self) -> Result<(), String> {
        self.validators.iter().try_for_each(LazyValidator::warm_up)
    }

    /// Wraps a serde error from decoding message `index` (the schema
    /// accepted the value but the Rust type did not).
    pub fn type_mismatch(&self, index: usize, source: serde_json::Error) -> DecodeError {
        DecodeError::TypeMismatch {
            family: self.name,
            message: self.messages.get(index).map_or("?", |spec| spec.name),
            source,
        }
    }
}

/// One failed schema rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Violation {
    /// JSON Pointer (RFC 6901) of the offending member; `""` is the whole message.
    #[serde(rename = "instancePath")]
    pub instance_path: String,
    /// JSON Pointer of the rule in the family's bundled schema.
    #[serde(rename = "schemaPath")]
    pub schema_path: String,
    /// The schema keyword violated (`required`, `maximum`, `pattern`, ...).
    pub keyword: String,
    /// What the schema expects at that keyword, when it is a plain value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// The validator's explanation.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.instance_path.is_empty() {
            "(root)"
        } else {
            &self.instance_path
        };
        write!(f, "{path}: {} [{}", self.message, self.keyword)?;
        match &self.expected {
            Some(expected)
                if shows_plainly(expected)
                    && !matches!(
                        self.keyword.as_str(),
                        "required" | "type" | "pattern" | "additionalProperties"
                    ) =>
            {
                write!(f, ", expected {expected}]")
            }
            _ => f.write_str("]"),
        }
    }
}

/// Whether an expected value is worth printing: a bound, a const, an enum
/// of scalars; not a subschema (a `oneOf` would quote every branch).
fn shows_plainly(expected: &Value) -> bool {
    match expected {
        Value::Object(_) => false,
        Value::Array(items) => items
            .iter()
            .all(|item| !item.is_object() && !item.is_array()),
        _ => true,
    }
}

/// Why a JSON value is not a valid message of a family.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// No message of the family matches the discriminator.
    #[error("unknown {family} message: {detail}")]
    UnknownMessage {
        /// The family tried.
        family: &'static str,
        /// What the discriminator members held.
        detail: String,
    },
    /// The value is the named message but breaks its schema.
    #[error("invalid {family}/{message}: {}", first_violation(.violations))]
    Invalid {
        /// The family.
        family: &'static str,
        /// The message the discriminator picked.
        message: &'static str,
        /// Every failed rule.
        violations: Vec<Violation>,
    },
    /// The schema accepted the value but the generated type did not: a bug
    /// in the schema or codegen, reported rather than hidden.
    #[error("{family}/{message} passed its schema but not its Rust type: {source}")]
    TypeMismatch {
        /// The family.
        family: &'static str,
        /// The message.
        message: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

fn first_violation(violations: &[Violation]) -> String {
    match violations {
        [] => "no details".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// Describes the discriminator members of `value` for an "unknown message" error.
pub fn describe_discriminator(value: &Value, pointers: &[&str]) -> String {
    if !value.is_object() {
        return format!("expected a JSON object, found {}", json_kind(value));
    }
    let shown: Vec<String> = pointers
        .iter()
        .filter_map(|pointer| {
            value
                .pointer(pointer)
                .map(|found| format!("{pointer} = {found}"))
        })
        .collect();
    if shown.is_empty() {
        format!("none of {} is present", pointers.join(", "))
    } else {
        format!("no message has {}", shown.join(", "))
    }
}

/// `object`, `array`, `string`, ... for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A validator for one message, compiled on first use and shared after.
///
/// The bundled family schema is embedded in the binary as text; the
/// validator for `definition` is that document with a root `$ref` to
/// `#/$defs/<definition>`, with `format` asserted.
pub struct LazyValidator {
    bundle: &'static str,
    definition: &'static str,
    compiled: OnceLock<Result<Compiled, String>>,
}

struct Compiled {
    validator: jsonschema::Validator,
    schema: Value,
}

impl LazyValidator {
    /// A validator for `$defs/<definition>` of the bundled schema `bundle`.
    pub const fn new(bundle: &'static str, definition: &'static str) -> Self {
        LazyValidator {
            bundle,
            definition,
            compiled: OnceLock::new(),
        }
    }

    fn compiled(&self) -> Result<&Compiled, &str> {
        self.compiled
            .get_or_init(|| compile(self.bundle, self.definition))
            .as_ref()
            .map_err(String::as_str)
    }

    /// Compiles now, so the first message does not pay for it.
    pub fn warm_up(&self) -> Result<(), String> {
        self.compiled().map(|_| ()).map_err(str::to_owned)
    }

    /// Every violation of the schema by `value`; empty when valid.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        let compiled = match self.compiled() {
            Ok(compiled) => compiled,
            Err(message) => {
                return vec![Violation {
                    instance_path: String::new(),
                    schema_path: String::new(),
                    keyword: "$schema".to_owned(),
                    expected: None,
                    message: message.to_owned(),
                }]
            }
        };
        // Fast path: a valid message (the common case) costs one pass and
        // builds no error objects.
        if compiled.validator.is_valid(value) {
            return Vec::new();
        }
        compiled
            .validator
            .iter_errors(value)
            .map(|error| {
                let schema_path = error.schema_path().as_str().to_owned();
                let keyword = error.kind().keyword().to_owned();
                let expected = compiled.schema.pointer(&schema_path).cloned();
                Violation {
                    instance_path: error.instance_path().as_str().to_owned(),
                    schema_path,
                    keyword,
                    expected,
                    message: error.to_string(),
                }
            })
            .collect()
    }

    /// `true` when `value` is valid.
    pub fn is_valid(&self, value: &Value) -> bool {
        self.compiled()
            .map(|compiled| compiled.validator.is_valid(value))
            .unwrap_or(false)
    }
}

/// Keywords that only annotate: a `$ref` beside nothing else is replaced by
/// its target.
const ANNOTATIONS: &[&str] = &[
    "$ref",
    "description",
    "title",
    "examples",
    "default",
    "$comment",
];

/// Replaces every non-recursive `{"$ref": "#/$defs/X"}` by the definition.
fn inline_refs(value: &mut Value, defs: &Value, stack: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            let target = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix("#/$defs/"))
                .filter(|name| !name.contains('/') && !stack.iter().any(|seen| seen == name))
                .map(str::to_owned);
            if let Some(name) = target {
                let only_annotations = object.keys().all(|key| ANNOTATIONS.contains(&key.as_str()));
                if let (true, Some(definition)) = (only_annotations, defs.get(&name)) {
                    let mut replacement = definition.clone();
                    stack.push(name);
                    inline_refs(&mut replacement, defs, stack);
                    stack.pop();
                    *value = replacement;
                    return;
                }
            }
            object
                .values_mut()
                .for_each(|child| inline_refs(child, defs, stack));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| inline_refs(item, defs, stack)),
        _ => {}
    }
}

fn compile(bundle: &str, definition: &str) -> Result<Compiled, String> {
    let bundle: Value =
        serde_json::from_str(bundle).map_err(|e| format!("embedded schema is not JSON: {e}"))?;
    let defs = bundle
        .get("$defs")
        .ok_or_else(|| "embedded schema has no $defs".to_owned())?;
    let mut schema = defs
        .get(definition)
        .cloned()
        .ok_or_else(|| format!("embedded schema has no definition {definition}"))?;
    // Validating through a `$ref` costs an indirection per member, and the
    // bundles reference small shared definitions everywhere: inline every
    // non-recursive one. Schema paths in errors then follow the message's
    // own structure (`/properties/payload/...`).
    inline_refs(&mut schema, defs, &mut vec![definition.to_owned()]);
    if let Some(root) = schema.as_object_mut() {
        root.insert("$schema".to_owned(), bundle["$schema"].clone());
        // Kept for any `$ref` that could not be inlined (recursion).
        root.insert("$defs".to_owned(), defs.clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("embedded schema for {definition} does not compile: {e}"))?;
    Ok(Compiled { validator, schema })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static SPECS: &[MessageSpec] = &[
        MessageSpec {
            name: "Status",
            direction: Direction::ServerToClient,
            rules: &[MatchRule::Const {
                pointer: "/type",
                value: "\"system_status\"",
            }],
        },
        MessageSpec {
            name: "Subscribe",
            direction: Direction::ClientToServer,
            rules: &[
                MatchRule::Const {
                    pointer: "/type",
                    value: "\"system_status\"",
                },
                MatchRule::Const {
                    pointer: "/data/action",
                    value: "\"subscribe\"",
                },
            ],
        },
        MessageSpec {
            name: "RpcError",
            direction: Direction::ServerToClient,
            rules: &[MatchRule::Present { pointer: "/code" }],
        },
        MessageSpec {
            name: "Number",
            direction: Direction::ServerToClient,
            rules: &[MatchRule::Const {
                pointer: "/n",
                value: "3",
            }],
        },
    ];

    #[test]
    fn resolve_follows_rfc_6901() {
        let value = json!({"a": {"b/c": [1, {"d~e": 2}]}, "": 3});
        assert_eq!(resolve(&value, ""), Some(&value));
        assert_eq!(resolve(&value, "/a/b~1c/0"), Some(&json!(1)));
        assert_eq!(resolve(&value, "/a/b~1c/1/d~0e"), Some(&json!(2)));
        assert_eq!(resolve(&value, "/"), Some(&json!(3)));
        assert_eq!(resolve(&value, "/a/b~1c/9"), None);
        assert_eq!(resolve(&value, "/a/b~1c/x"), None);
        assert_eq!(resolve(&value, "a"), None);
        for pointer in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/1/d~0e",
            "/zz",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/-1",
        ] {
            assert_eq!(
                resolve(&value, pointer),
                value.pointer(pointer),
                "{pointer}"
            );
        }
    }

    #[test]
    fn most_specific_match_wins() {
        let sub = json!({"type": "system_status", "data": {"action": "subscribe"}});
        assert_eq!(candidates(SPECS, &sub, None), vec![1]);
        let status = json!({"type": "system_status", "data": {}});
        assert_eq!(candidates(SPECS, &status, None), vec![0]);
        assert_eq!(candidates(SPECS, &json!({"code": 1}), None), vec![2]);
        assert_eq!(candidates(SPECS, &json!({"n": 3}), None), vec![3]);
        assert!(candidates(SPECS, &json!({"n": 4}), None).is_empty());
        assert!(candidates(SPECS, &json!([1]), None).is_empty());
        assert!(candidates(SPECS, &sub, Some(Direction::ServerToClient)) == vec![0]);
    }

    #[test]
    fn dispatch_agrees_with_the_linear_scan() {
        static TYPED: &[MessageSpec] = &[
            MessageSpec {
                name: "A",
                direction: Direction::ClientToServer,
                rules: &[MatchRule::Const {
                    pointer: "/type",
                    value: "\"x\"",
                }],
            },
            MessageSpec {
                name: "B",
                direction: Direction::ServerToClient,
                rules: &[MatchRule::Const {
                    pointer: "/type",
                    value: "\"x\"",
                }],
            },
            MessageSpec {
                name: "C",
                direction: Direction::ClientToServer,
                rules: &[
                    MatchRule::Const {
                        pointer: "/type",
                        value: "\"x\"",
                    },
                    MatchRule::Present { pointer: "/extra" },
                ],
            },
            MessageSpec {
                name: "D",
                direction: Direction::ClientToServer,
                rules: &[MatchRule::Const {
                    pointer: "/type",
                    value: "\"y\"",
                }],
            },
        ];
        static NO_VALIDATORS: [LazyValidator; 0] = [];
        let family = Family::new("t", &["/type"], TYPED, &NO_VALIDATORS);
        let dispatch = Dispatch::build(TYPED).expect("dispatchable");
        assert_eq!(dispatch.pointer, "/type");
        for value in [
            json!({"type": "x"}),
            json!({"type": "x", "extra": 1}),
            json!({"type": "y"}),
            json!({"type": "z"}),
            json!({"type": 1}),
            json!({}),
            json!([]),
        ] {
            for direction in [
                None,
                Some(Direction::ClientToServer),
                Some(Direction::ServerToClient),
            ] {
                assert_eq!(
                    family.candidates(&value, direction),
                    candidates(TYPED, &value, direction),
                    "{value} {direction:?}"
                );
            }
        }
        // Mixed pointers fall back to the scan.
        assert!(Dispatch::build(SPECS).is_none());
    }

    #[test]
    fn subschemas_are_not_quoted_as_expected_values() {
        let violation = |keyword: &str, expected: Value| Violation {
            instance_path: "/data".into(),
            schema_path: String::new(),
            keyword: keyword.into(),
            expected: Some(expected),
            message: "no".into(),
        };
        let one_of = violation(
            "oneOf",
            serde_json::json!([{"type": "object"}, {"type": "string"}]),
        );
        assert_eq!(one_of.to_string(), "/data: no [oneOf]");
        let bound = violation("maximum", serde_json::json!(100));
        assert_eq!(bound.to_string(), "/data: no [maximum, expected 100]");
        let choices = violation("enum", serde_json::json!(["a", "b"]));
        assert_eq!(
            choices.to_string(),
            "/data: no [enum, expected [\"a\",\"b\"]]"
        );
    }

    #[test]
    fn validator_reports_path_keyword_and_expected_value() {
        static BUNDLE: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{
            "M":{"type":"object","required":["p"],"properties":{"p":{"type":"integer","maximum":100},"t":{"type":"string","format":"date-time"}}}}}"#;
        static M: LazyValidator = LazyValidator::new(BUNDLE, "M");
        assert!(M.violations(&json!({"p": 3})).is_empty());
        let v = M.violations(&json!({"p": 101}));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].instance_path, "/p");
        assert_eq!(v[0].keyword, "maximum");
        assert_eq!(v[0].expected, Some(json!(100)));
        let v = M.violations(&json!({"p": 1, "t": "yesterday"}));
        assert_eq!(v[0].keyword, "format");
        let v = M.violations(&json!({}));
        assert_eq!(v[0].keyword, "required");
        assert!(v[0].to_string().starts_with("(root): "));
    }
}
