//! Compiles a JSON Schema document into [`Node`]s: `$ref`s resolved, `allOf` members and
//! keyword siblings intersected, every constraint the generators and mutators need held
//! in typed form. Anything not understood is refused here, with its schema location.

use std::sync::Arc;

use serde_json::Value;

use crate::json::join;
use crate::pattern::Pattern;
use crate::UnsupportedSchema;

use compile::Ctx;

mod compile;
mod intersect;

type Result<T> = std::result::Result<T, UnsupportedSchema>;

/// Keywords of the 2020-12 vocabulary that constrain values and are not implemented.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "discriminator",
];

/// The JSON types, as a bit set. `NUMBER` admits integers too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TypeSet(u8);

impl TypeSet {
    pub const NULL: Self = Self(1);
    pub const BOOLEAN: Self = Self(2);
    pub const INTEGER: Self = Self(4);
    pub const NUMBER: Self = Self(8);
    pub const STRING: Self = Self(16);
    pub const ARRAY: Self = Self(32);
    pub const OBJECT: Self = Self(64);

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "string" => Self::STRING,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => return None,
        })
    }

    pub fn has(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn intersection(self, other: Self) -> Self {
        let numeric = Self::INTEGER.0 | Self::NUMBER.0;
        let mut bits = self.0 & other.0 & !numeric;
        // `number` also admits integers, so integers survive if each side admits them.
        if self.has(Self::NUMBER) && other.has(Self::NUMBER) {
            bits |= Self::NUMBER.0;
        } else if self.admits_number(true) && other.admits_number(true) {
            bits |= Self::INTEGER.0;
        }
        Self(bits)
    }

    /// Admits a number that is (`integer == true`) or is not an integer.
    pub fn admits_number(self, integer: bool) -> bool {
        self.has(Self::NUMBER) || (integer && self.has(Self::INTEGER))
    }
}

/// A compiled schema (or intersection of schemas) for one instance location.
#[derive(Debug)]
pub(crate) struct Node {
    /// Schema location, for error messages.
    pub ptr: String,
    /// Schema locations whose validators together accept exactly what this node accepts
    /// (or less): used to filter enumerations and to check mutations.
    pub sources: Vec<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `true`, `{}` or only annotations: anything goes.
    Any,
    /// `const` / `enum`, already filtered by every sibling constraint.
    Literals(Vec<Value>),
    Typed(Box<Typed>),
    Choice(Box<Choice>),
}

/// `oneOf` / `anyOf`.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub one_of: bool,
    /// Branch `i`, intersected with the combinator's siblings; `None` where that left
    /// nothing to generate.
    pub branches: Vec<Option<Arc<Node>>>,
    /// Schema location of each original branch (for exactly-one checks).
    pub branch_ptrs: Vec<String>,
    /// Schema location of the object holding the combinator.
    pub whole: String,
}

/// Constraints by JSON type, from `type` and the type-specific keywords.
#[derive(Debug, Clone, Default)]
pub(crate) struct Typed {
    /// Types allowed by `type` keywords; `None` if there was none (every type allowed).
    pub explicit: Option<TypeSet>,
    /// Types some keyword here constrains: what is generated when `explicit` is `None`.
    pub constrained: TypeSet,
    pub num: NumC,
    pub string: StrC,
    pub array: ArrC,
    pub object: ObjC,
}

impl Typed {
    /// The types values are generated from.
    pub fn generated(&self) -> TypeSet {
        self.explicit.unwrap_or(self.constrained)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    pub value: f64,
    /// The exact value when the schema wrote an integer.
    pub int: Option<i128>,
    pub exclusive: bool,
}

impl Bound {
    /// Smallest integer at or above this lower bound.
    pub fn int_lower(self) -> i128 {
        match self.int {
            Some(i) if self.exclusive => i + 1,
            Some(i) => i,
            None => {
                let c = self.value.ceil();
                // Float to int casts saturate, which is what a clamp wants here.
                let ci = c as i128;
                if self.exclusive && c == self.value {
                    ci.saturating_add(1)
                } else {
                    ci
                }
            }
        }
    }

    /// Largest integer at or below this upper bound.
    pub fn int_upper(self) -> i128 {
        match self.int {
            Some(i) if self.exclusive => i - 1,
            Some(i) => i,
            None => {
                let f = self.value.floor();
                let fi = f as i128;
                if self.exclusive && f == self.value {
                    fi.saturating_sub(1)
                } else {
                    fi
                }
            }
        }
    }

    /// True if `self` (a lower bound) is at least as strict as `other`.
    fn tighter_lower(self, other: Self) -> bool {
        self.value > other.value || (self.value == other.value && self.exclusive)
    }

    fn tighter_upper(self, other: Self) -> bool {
        self.value < other.value || (self.value == other.value && self.exclusive)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumC {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
    pub multiple_of: Option<MultipleOf>,
}

#[derive(Debug, Clone)]
pub(crate) struct MultipleOf {
    pub k: f64,
    pub check: Arc<Check>,
}

/// A standalone validator for one keyword, used where float arithmetic or regex
/// dialects make computing the answer ourselves error-prone.
pub(crate) struct Check(jsonschema::Validator);

impl Check {
    /// A validator for `{"format": name}` with format assertions on.
    pub fn format(name: &str) -> Option<Arc<Self>> {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&serde_json::json!({ "format": name }))
            .ok()
            .map(|v| Arc::new(Self(v)))
    }

    fn new(schema: &Value, ptr: &str) -> Result<Arc<Self>> {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .map(|v| Arc::new(Self(v)))
            .map_err(|e| UnsupportedSchema::new(ptr, format!("invalid keyword: {e}")))
    }

    pub fn is_valid(&self, value: &Value) -> bool {
        self.0.is_valid(value)
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DateTime,
    Date,
    Uuid,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StrC {
    pub min: u64,
    pub max: Option<u64>,
    pub patterns: Vec<Arc<Pattern>>,
    pub format: Option<Format>,
    pub base64: bool,
}

/// `items`/`additionalProperties`: what applies to members no other keyword names.
#[derive(Debug, Clone, Default)]
pub(crate) enum Rest {
    /// Absent or `true`.
    #[default]
    Any,
    /// `false`.
    Forbidden,
    Schema(Arc<Node>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ArrC {
    pub prefix: Vec<Arc<Node>>,
    pub items: Rest,
    pub min: u64,
    pub max: Option<u64>,
    pub unique: bool,
}

impl ArrC {
    pub fn node_at(&self, index: usize) -> Option<&Arc<Node>> {
        match (self.prefix.get(index), &self.items) {
            (Some(node), _) => Some(node),
            (None, Rest::Schema(node)) => Some(node),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObjC {
    pub props: Vec<(String, Arc<Node>)>,
    pub required: Vec<String>,
    pub additional: Rest,
    pub min: u64,
    pub max: Option<u64>,
    pub names: Option<Arc<Node>>,
}

impl ObjC {
    pub fn prop(&self, name: &str) -> Option<&Arc<Node>> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    }

    /// The schema a property called `name` is checked against, if any constrains it.
    pub fn node_for(&self, name: &str) -> Option<&Arc<Node>> {
        match (self.prop(name), &self.additional) {
            (Some(node), _) => Some(node),
            (None, Rest::Schema(node)) => Some(node),
            _ => None,
        }
    }
}

/// Validators for every subschema of the document, by schema location.
pub(crate) struct Checker(jsonschema::ValidatorMap);

impl Checker {
    /// `true` if every schema at `ptrs` accepts `value`; unknown locations reject, which
    /// only ever makes callers more cautious.
    pub fn valid(&self, ptrs: &[String], value: &Value) -> bool {
        ptrs.iter()
            .all(|p| self.0.get(p).is_some_and(|v| v.is_valid(value)))
    }

    fn require(&self, ptr: &str) -> Result<()> {
        if self.0.contains_key(ptr) {
            Ok(())
        } else {
            Err(UnsupportedSchema::new(
                ptr,
                "the validator compiled no subschema at this location",
            ))
        }
    }
}

/// A compiled document, ready for generation.
pub(crate) struct Compiled {
    pub node: Arc<Node>,
    pub checker: Arc<Checker>,
}

impl Compiled {
    pub fn root(schema: &Value) -> Result<Self> {
        let checker = Arc::new(build_checker(schema)?);
        let node = Ctx::new(schema, &checker).compile(schema, "#")?;
        Ok(Self { node, checker })
    }

    pub fn def(root: &Value, name: &str) -> Result<Self> {
        let ptr = join("#/$defs", name);
        let def = root
            .get("$defs")
            .and_then(|defs| defs.get(name))
            .ok_or_else(|| UnsupportedSchema::new(ptr.clone(), "no such definition"))?;
        let checker = Arc::new(build_checker(root)?);
        let node = Ctx::new(root, &checker).compile(def, &ptr)?;
        Ok(Self { node, checker })
    }
}

fn build_checker(root: &Value) -> Result<Checker> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build_map(root)
        .map(Checker)
        .map_err(|e| {
            // Point at the reference that failed to resolve, if that was the trouble.
            let ptr = foreign_ref(root, "#").unwrap_or_else(|| "#".to_owned());
            UnsupportedSchema::new(ptr, format!("the validator refused the schema: {e}"))
        })
}

/// Location of the first `$ref` that is not a local JSON Pointer.
fn foreign_ref(schema: &Value, ptr: &str) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if !(r == "#" || r.starts_with("#/")) {
                    return Some(join(ptr, "$ref"));
                }
            }
            map.iter().find_map(|(k, v)| foreign_ref(v, &join(ptr, k)))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| foreign_ref(v, &join(ptr, &i.to_string()))),
        _ => None,
    }
}
