//! A family's conformance case catalog (`schema/<family>/conformance.json`).

use serde::Deserialize;
use serde_json::Value;

pub use specwire_wire::catalog::Level;

/// A family's conformance case catalog (`schema/<family>/conformance.json`):
/// the cases the conformance suite implements, by stable ID.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conformance {
    pub family: String,
    pub sections: Vec<ConformanceSection>,
    /// In file order.
    #[serde(deserialize_with = "needs_in_order")]
    pub needs: Vec<Need>,
    pub cases: Vec<Case>,
}

/// A group of cases; its id is the second part of their IDs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConformanceSection {
    pub id: String,
    pub title: String,
}

/// Something a case needs from the run beyond the target's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub description: String,
}

/// One conformance case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `<family>.<section>.<name>`, unique across all families.
    pub id: String,
    pub level: Level,
    pub section: String,
    pub title: String,
    /// The spec sentence it checks (Markdown code spans).
    pub spec: String,
    pub source: String,
    /// What passes: every outcome the spec allows (Markdown).
    pub accepts: String,
    #[serde(default)]
    pub needs: Vec<String>,
}

impl Conformance {
    /// The section called `id`.
    pub fn section(&self, id: &str) -> Option<&ConformanceSection> {
        self.sections.iter().find(|section| section.id == id)
    }

    /// The need called `name`.
    pub fn need(&self, name: &str) -> Option<&Need> {
        self.needs.iter().find(|need| need.name == name)
    }
}

/// `needs` is an object; its members keep their file order (serde_json's
/// `preserve_order`), which is the order the docs list them in.
fn needs_in_order<'de, D>(deserializer: D) -> Result<Vec<Need>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map = serde_json::Map::<String, Value>::deserialize(deserializer)?;
    map.into_iter()
        .map(|(name, description)| match description {
            Value::String(description) => Ok(Need { name, description }),
            other => Err(serde::de::Error::custom(format!(
                "need {name:?}: the description must be a string, not {other}"
            ))),
        })
        .collect()
}
