//! A family manifest (`schema/<family>/manifest.json`), typed: the shape
//! is fixed by `schema/meta/family-manifest.schema.json`, which the loader
//! checks first.

use serde::Deserialize;
use serde_json::Value;

/// A family manifest: everything the code and the docs are made from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub family: String,
    pub title: String,
    pub summary: String,
    pub sources: Vec<String>,
    /// Points where the spec was silent and specwire decided.
    #[serde(default)]
    pub decisions: Vec<String>,
    pub transport: Transport,
    pub encoding: Encoding,
    pub definitions: Option<String>,
    pub discriminator: Option<Discriminator>,
    pub registry: Option<Registry>,
    pub messages: Vec<MessageEntry>,
    pub exchanges: Vec<Exchange>,
    pub sequences: Vec<Sequence>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    pub kind: String,
    pub default_host: String,
    pub default_port: u16,
    /// WebSocket paths the server accepts.
    #[serde(default)]
    pub paths: Vec<String>,
    /// How messages are delimited on the transport.
    pub framing: String,
    pub max_message_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    Json,
    TextLines,
}

impl Encoding {
    /// `json` or `text-lines`, as the manifest writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::TextLines => "text-lines",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Discriminator {
    pub pointers: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    pub name: String,
    pub schema: String,
    pub description: String,
    pub default: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageEntry {
    pub name: String,
    pub direction: String,
    /// Who sends it when the direction alone does not say.
    pub sender: Option<String>,
    pub summary: String,
    pub schema: Option<String>,
    #[serde(rename = "match", default)]
    pub match_rules: Vec<MatchEntry>,
    pub pattern: Option<String>,
    pub format: Option<String>,
    #[serde(default)]
    pub fields: Vec<LineField>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MatchEntry {
    pub pointer: String,
    #[serde(rename = "const")]
    pub constant: Option<Value>,
    pub present: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineField {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    pub request: String,
    pub replies: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sequence {
    pub title: String,
    pub participants: Vec<String>,
    pub steps: Vec<SequenceStep>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SequenceStep {
    pub from: String,
    pub to: String,
    /// A message name of the family, or free text for a step that is not a
    /// message.
    pub message: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub message: String,
    pub source: String,
    pub description: Option<String>,
    pub value: Option<Value>,
    pub text: Option<String>,
}
