//! The command registry (`commands.json`): which commands a `cmd:` may
//! name, loaded at start-up from a file or an `http(s)://` URL.
//!
//! # What is accepted
//!
//! A registry written by someone else may carry more than
//! `schema/device/commands.schema.json` lists. By the profile's
//! forward-compatibility rule it is accepted with a warning for each
//! such thing (an unknown member, a parameter type the schema does not
//! name, which is then opaque text, a missing description); only what
//! cannot work is refused: no `commands` list, no commands, a command
//! without a usable name (non-empty, no `:` or white space), or two
//! commands of one name.
//!
//! ```
//! use specwire_runtime::device::Registry;
//!
//! let (registry, warnings) = Registry::parse(
//!     br#"{"commands": [{"name": "led", "description": "Set the LED",
//!          "parameters": [{"name": "color", "type": "rgb"}]}]}"#,
//!     "inline",
//! )?;
//! assert!(registry.command("led").is_some());
//! assert!(warnings[0].contains("rgb"));
//! assert!(Registry::parse(br#"{"commands": []}"#, "inline").is_err());
//! # Ok::<(), specwire_runtime::device::RegistryError>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use specwire_protocol::device::registry::ParameterSpecType;

/// How long fetching a registry from a URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest registry read (a registry is a few KB).
const MAX_REGISTRY_BYTES: u64 = 4 * 1024 * 1024;

/// Why a registry could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file or URL could not be read.
    #[error("cannot read the command registry from {origin}: {reason}")]
    Unreachable {
        /// Where from.
        origin: String,
        /// Why.
        reason: String,
    },
    /// It is not JSON.
    #[error("the command registry from {origin} is not JSON: {reason}")]
    NotJson {
        /// Where from.
        origin: String,
        /// Why.
        reason: String,
    },
    /// It is JSON but no hub could work with it.
    #[error("the command registry from {origin} is unusable: {reason}")]
    Unusable {
        /// Where from.
        origin: String,
        /// Why.
        reason: String,
    },
}

/// A parameter's type: one the schema names, or opaque text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterKind {
    /// `string`, `int`, `float`, `bool` or `color`.
    Known(ParameterSpecType),
    /// A type the schema does not name: passed on as text.
    Opaque(String),
}

/// One parameter of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ParameterKind,
    /// Whether it may be left out.
    pub optional: bool,
    /// What it is.
    pub description: String,
}

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Its name, as in `cmd:<target>:<name>`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its parameters, in order.
    pub parameters: Vec<Parameter>,
}

/// A loaded registry.
#[derive(Clone, Debug)]
pub struct Registry {
    commands: BTreeMap<String, Command>,
    version: Option<String>,
    document: String,
    origin: String,
}

impl Registry {
    /// Parses a registry document; the warnings say what was accepted
    /// beyond the schema.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<(Registry, Vec<String>), RegistryError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|error| RegistryError::NotJson {
                origin: origin.to_owned(),
                reason: error.to_string(),
            })?;
        let unusable = |reason: String| RegistryError::Unusable {
            origin: origin.to_owned(),
            reason,
        };
        let mut warnings = Vec::new();
        let root = value
            .as_object()
            .ok_or_else(|| unusable("it is not a JSON object".to_owned()))?;
        unknown_members(
            root,
            &["version", "commands"],
            "the registry",
            &mut warnings,
        );
        let list = root
            .get("commands")
            .and_then(Value::as_array)
            .ok_or_else(|| unusable("it has no `commands` list".to_owned()))?;
        if list.is_empty() {
            return Err(unusable("it lists no commands".to_owned()));
        }
        let mut commands = BTreeMap::new();
        for (index, item) in list.iter().enumerate() {
            let command = parse_command(item, index, &mut warnings).map_err(unusable)?;
            if commands.contains_key(&command.name) {
                return Err(unusable(format!(
                    "two commands are called `{}`",
                    command.name
                )));
            }
            commands.insert(command.name.clone(), command);
        }
        let version = root
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let document = String::from_utf8_lossy(bytes).into_owned();
        Ok((
            Registry {
                commands,
                version,
                document,
                origin: origin.to_owned(),
            },
            warnings,
        ))
    }

    /// Loads from a file path or an `http://` / `https://` URL.
    pub async fn load(source: &str) -> Result<(Registry, Vec<String>), RegistryError> {
        let bytes = if source.starts_with("http://") || source.starts_with("https://") {
            let url = source.to_owned();
            tokio::task::spawn_blocking(move || fetch(&url))
                .await
                .map_err(|error| RegistryError::Unreachable {
                    origin: source.to_owned(),
                    reason: error.to_string(),
                })??
        } else {
            let path = Path::new(source);
            tokio::fs::read(path)
                .await
                .map_err(|error| RegistryError::Unreachable {
                    origin: source.to_owned(),
                    reason: error.to_string(),
                })?
        };
        Registry::parse(&bytes, source)
    }

    /// The command called `name`.
    pub fn command(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    /// Every command, by name.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// The registry's `version`, if it has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The document as loaded (served to the web console).
    pub fn document(&self) -> &str {
        &self.document
    }

    /// Where it was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// GETs `url` with rustls, bounded in time and size.
fn fetch(url: &str) -> Result<Vec<u8>, RegistryError> {
    let unreachable = |reason: String| RegistryError::Unreachable {
        origin: url.to_owned(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|error| unreachable(error.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_REGISTRY_BYTES)
        .read_to_vec()
        .map_err(|error| unreachable(error.to_string()))
}

fn unknown_members(
    object: &Map<String, Value>,
    known: &[&str],
    what: &str,
    warnings: &mut Vec<String>,
) {
    for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
        warnings.push(format!(
            "{what} has a member the schema does not list: `{key}` (ignored)"
        ));
    }
}

fn usable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(':') && !name.chars().any(char::is_whitespace)
}

fn parse_command(
    item: &Value,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<Command, String> {
    let number = index + 1;
    let object = item
        .as_object()
        .ok_or_else(|| format!("command #{number} is not an object"))?;
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| usable_name(name))
        .ok_or_else(|| {
            format!("command #{number} has no usable `name` (non-empty, no `:` or white space)")
        })?
        .to_owned();
    let what = format!("command `{name}`");
    unknown_members(
        object,
        &["name", "description", "parameters"],
        &what,
        warnings,
    );
    let description = match object.get("description").and_then(Value::as_str) {
        Some(text) => text.to_owned(),
        None => {
            warnings.push(format!("{what} has no description"));
            String::new()
        }
    };
    let mut parameters = Vec::new();
    match object.get("parameters") {
        None => {}
        Some(Value::Array(list)) => {
            for (position, parameter) in list.iter().enumerate() {
                if let Some(parameter) = parse_parameter(parameter, &what, position, warnings) {
                    parameters.push(parameter);
                }
            }
        }
        Some(_) => warnings.push(format!("{what}: `parameters` is not a list (ignored)")),
    }
    Ok(Command {
        name,
        description,
        parameters,
    })
}

fn parse_parameter(
    value: &Value,
    command: &str,
    position: usize,
    warnings: &mut Vec<String>,
) -> Option<Parameter> {
    let number = position + 1;
    let Some(object) = value.as_object() else {
        warnings.push(format!(
            "{command}: parameter #{number} is not an object (ignored)"
        ));
        return None;
    };
    let name = match object.get("name").and_then(Value::as_str) {
        Some(name) => name.to_owned(),
        None => {
            warnings.push(format!("{command}: parameter #{number} has no name"));
            format!("parameter{number}")
        }
    };
    let what = format!("{command}, parameter `{name}`");
    unknown_members(
        object,
        &["name", "type", "description", "optional"],
        &what,
        warnings,
    );
    let kind = match object.get("type").and_then(Value::as_str) {
        Some(text) => match text.parse::<ParameterSpecType>() {
            Ok(known) => ParameterKind::Known(known),
            Err(_) => {
                warnings.push(format!("{what} has type `{text}`, which the schema does not name: taken as opaque text"));
                ParameterKind::Opaque(text.to_owned())
            }
        },
        None => {
            warnings.push(format!("{what} has no type: taken as opaque text"));
            ParameterKind::Opaque(String::new())
        }
    };
    Some(Parameter {
        name,
        kind,
        optional: object
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        description: object
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Registry, Vec<String>), RegistryError> {
        Registry::parse(text.as_bytes(), "test")
    }

    #[test]
    fn the_schema_s_own_registry_loads_without_warnings() {
        let text = include_str!("../../../schema/device/commands.json");
        let (registry, warnings) = parse(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(registry.commands().count(), 4);
        assert_eq!(registry.command("say").unwrap().parameters[0].name, "text");
        assert_eq!(registry.version(), Some("1"));
    }

    #[test]
    fn what_goes_beyond_the_schema_is_accepted_with_warnings() {
        let (registry, warnings) = parse(
            r#"{"commands": [{"name": "spin", "speed": 3, "parameters": [{"name": "rpm", "type": "uint16"}, {"type": "int"}]}], "vendor": "x"}"#,
        )
        .unwrap();
        let spin = registry.command("spin").unwrap();
        assert_eq!(
            spin.parameters[0].kind,
            ParameterKind::Opaque("uint16".into())
        );
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
    }

    #[test]
    fn what_cannot_work_is_refused() {
        for text in [
            "[]",
            "{}",
            r#"{"commands": []}"#,
            r#"{"commands": [{"description": "no name"}]}"#,
            r#"{"commands": [{"name": "a b"}]}"#,
            r#"{"commands": [{"name": "x:y"}]}"#,
            r#"{"commands": [{"name": "a"}, {"name": "a"}]}"#,
            "not json",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[tokio::test]
    async fn a_missing_file_is_unreachable() {
        let error = Registry::load("/nonexistent/commands.json")
            .await
            .unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { .. }),
            "{error}"
        );
    }
}
