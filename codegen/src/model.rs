//! Loading `schema/`: every family's manifest and schema files, checked
//! against the meta-schemas, bundled, with every example validated.
//!
//! Nothing here writes files: [`SchemaTree::load`] either returns the whole
//! tree, ready for the generators, or the list of every problem it found
//! (so a maintainer sees all broken examples at once, not one per run).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::bundle::{bundle_family, bundle_single};

/// The meta-schema every family manifest follows.
pub const MANIFEST_META: &str = "meta/family-manifest.schema.json";
/// The meta-schema of `uart/protocol.json`.
pub const UART_META: &str = "meta/uart-protocol.schema.json";
/// The binary family's document.
pub const UART_PROTOCOL: &str = "uart/protocol.json";

/// A family manifest (`schema/<family>/manifest.json`), as far as codegen
/// needs typed access; the docs renderer reads the raw JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub family: String,
    pub title: String,
    pub summary: String,
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
    pub max_message_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    Json,
    TextLines,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Discriminator {
    pub pointers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    pub name: String,
    pub schema: String,
    pub default: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageEntry {
    pub name: String,
    pub direction: String,
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
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    pub request: String,
    pub replies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sequence {
    pub participants: Vec<String>,
    pub steps: Vec<SequenceStep>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SequenceStep {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub message: String,
    pub source: String,
    pub value: Option<Value>,
    pub text: Option<String>,
}

/// One JSON or text-lines family, loaded and bundled.
#[derive(Debug, Clone)]
pub struct Family {
    pub manifest: Manifest,
    /// The manifest as written, for the docs.
    pub manifest_json: Value,
    /// json: every message and definition under `$defs`, refs local.
    pub bundle: Option<Value>,
    /// text-lines: the registry schema, bundled the same way.
    pub registry_schema: Option<Value>,
    /// text-lines: the registry document shipped with the schema.
    pub registry_default: Option<Value>,
}

/// All of `schema/`.
#[derive(Debug, Clone)]
pub struct SchemaTree {
    pub root: PathBuf,
    pub families: Vec<Family>,
    /// `uart/protocol.json`.
    pub uart: Value,
}

/// Problems found while loading; each names the file and what is wrong.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
}

impl SchemaTree {
    /// Loads and checks `schema_dir`. `Err` carries every problem found.
    pub fn load(schema_dir: &Path) -> Result<SchemaTree, Problems> {
        let mut problems = Problems::default();
        let tree = load_inner(schema_dir, &mut problems);
        match tree {
            Ok(tree) if problems.0.is_empty() => Ok(tree),
            Ok(_) => Err(problems),
            Err(error) => {
                problems.push(format!("{error:#}"));
                Err(problems)
            }
        }
    }

    /// The JSON families (json encoding), in folder order.
    pub fn json_families(&self) -> impl Iterator<Item = &Family> {
        self.families
            .iter()
            .filter(|family| family.manifest.encoding == Encoding::Json)
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn load_inner(schema_dir: &Path, problems: &mut Problems) -> Result<SchemaTree> {
    let manifest_meta = compile_meta(&schema_dir.join(MANIFEST_META))?;
    let uart_meta = compile_meta(&schema_dir.join(UART_META))?;

    let mut family_dirs: Vec<PathBuf> = fs::read_dir(schema_dir)
        .with_context(|| format!("reading {}", schema_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir() && path.file_name().is_some_and(|name| name != "meta"))
        .collect();
    family_dirs.sort();

    let mut families = Vec::new();
    let mut uart = None;
    for dir in family_dirs {
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.join("protocol.json").exists() {
            let path = dir.join("protocol.json");
            let document = read_json(&path)?;
            report_meta(&uart_meta, &document, &rel(schema_dir, &path), problems);
            uart = Some(document);
            continue;
        }
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.exists() {
            problems.push(format!(
                "schema/{name}: a family folder needs manifest.json (or protocol.json)"
            ));
            continue;
        }
        let manifest_json = read_json(&manifest_path)?;
        let manifest_rel = rel(schema_dir, &manifest_path);
        if !report_meta(&manifest_meta, &manifest_json, &manifest_rel, problems) {
            continue;
        }
        let manifest: Manifest = serde_json::from_value(manifest_json.clone())
            .with_context(|| format!("{manifest_rel} does not match codegen's manifest model"))?;
        if manifest.family != name {
            problems.push(format!(
                "{manifest_rel}: family is {:?} but the folder is {name:?}",
                manifest.family
            ));
        }
        families.push(load_family(&dir, manifest, manifest_json, problems)?);
    }
    let uart = uart.context("schema/uart/protocol.json is missing")?;
    Ok(SchemaTree {
        root: schema_dir.to_path_buf(),
        families,
        uart,
    })
}

fn load_family(
    dir: &Path,
    manifest: Manifest,
    manifest_json: Value,
    problems: &mut Problems,
) -> Result<Family> {
    let family = manifest.family.clone();
    let names: BTreeSet<&str> = manifest.messages.iter().map(|m| m.name.as_str()).collect();
    if names.len() != manifest.messages.len() {
        problems.push(format!(
            "schema/{family}/manifest.json: message names are not unique"
        ));
    }
    for exchange in &manifest.exchanges {
        for name in std::iter::once(&exchange.request).chain(&exchange.replies) {
            if !names.contains(name.as_str()) {
                problems.push(format!(
                    "schema/{family}/manifest.json: exchange names unknown message {name}"
                ));
            }
        }
    }
    for sequence in &manifest.sequences {
        for step in &sequence.steps {
            for who in [&step.from, &step.to] {
                if !sequence.participants.contains(who) {
                    problems.push(format!("schema/{family}/manifest.json: sequence step names unknown participant {who}"));
                }
            }
        }
    }
    for message in &manifest.messages {
        match manifest.encoding {
            Encoding::Json if message.schema.is_none() => {
                problems.push(format!(
                    "schema/{family}/manifest.json: json message {} needs a schema",
                    message.name
                ));
            }
            Encoding::TextLines if message.pattern.is_none() || message.format.is_none() => {
                problems.push(format!(
                    "schema/{family}/manifest.json: text message {} needs pattern and format",
                    message.name
                ));
            }
            _ => {}
        }
    }

    let mut loaded = Family {
        manifest,
        manifest_json,
        bundle: None,
        registry_schema: None,
        registry_default: None,
    };
    match loaded.manifest.encoding {
        Encoding::Json => {
            let bundle = bundle_family(dir, &loaded.manifest)?;
            for reference in crate::bundle::dangling_refs(&bundle) {
                problems.push(format!(
                    "schema/{family}: $ref {reference} names no definition"
                ));
            }
            check_schema(&bundle, &format!("schema/{family} (bundled)"), problems);
            check_unused_files(dir, &loaded.manifest, problems);
            check_json_examples(&loaded.manifest, &bundle, problems);
            loaded.bundle = Some(bundle);
        }
        Encoding::TextLines => {
            check_text_examples(&loaded.manifest, problems);
            if let Some(registry) = &loaded.manifest.registry {
                let schema = bundle_single(dir, &registry.schema, &registry.name)?;
                check_schema(
                    &schema,
                    &format!("schema/{family}/{}", registry.schema),
                    problems,
                );
                let default = read_json(&dir.join(&registry.default))?;
                match definition_validator(&schema, &registry.name) {
                    Ok(validator) => {
                        for error in validator.iter_errors(&default) {
                            problems.push(format!(
                                "schema/{family}/{}: {} at {:?}",
                                registry.default,
                                error,
                                error.instance_path().as_str()
                            ));
                        }
                    }
                    Err(error) => {
                        problems.push(format!("schema/{family}/{}: {error:#}", registry.schema))
                    }
                }
                loaded.registry_schema = Some(schema);
                loaded.registry_default = Some(default);
            }
        }
    }
    Ok(loaded)
}

/// Every `*.schema.json` in a family folder must be used by the manifest:
/// a forgotten file is a message nobody generates.
fn check_unused_files(dir: &Path, manifest: &Manifest, problems: &mut Problems) {
    let mut used: BTreeSet<String> = manifest
        .messages
        .iter()
        .filter_map(|m| m.schema.clone())
        .collect();
    if let Some(definitions) = &manifest.definitions {
        used.insert(definitions.clone());
    }
    if let Ok(entries) = fs::read_dir(dir) {
        let mut unused: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".schema.json") && !used.contains(name))
            .collect();
        unused.sort();
        for name in unused {
            problems.push(format!(
                "schema/{}/{name}: not named by manifest.json",
                manifest.family
            ));
        }
    }
}

/// Checks a schema document against the JSON Schema 2020-12 meta-schema.
fn check_schema(schema: &Value, what: &str, problems: &mut Problems) {
    if let Err(error) = jsonschema::meta::validate(schema) {
        problems.push(format!(
            "{what}: not a valid JSON Schema 2020-12 document: {error} at {}",
            error.instance_path().as_str()
        ));
    }
}

/// A validator for `$defs/<definition>` of a bundled document.
pub fn definition_validator(bundle: &Value, definition: &str) -> Result<jsonschema::Validator> {
    let mut schema = bundle.clone();
    if let Some(root) = schema.as_object_mut() {
        root.insert(
            "$ref".into(),
            Value::String(format!("#/$defs/{definition}")),
        );
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|error| anyhow::anyhow!("{definition}: {error}"))
}

fn check_json_examples(manifest: &Manifest, bundle: &Value, problems: &mut Problems) {
    let mut validators = BTreeMap::new();
    for message in &manifest.messages {
        match definition_validator(bundle, &message.name) {
            Ok(validator) => {
                validators.insert(message.name.clone(), validator);
            }
            Err(error) => problems.push(format!("schema/{}: {error:#}", manifest.family)),
        }
    }
    for (index, example) in manifest.examples.iter().enumerate() {
        let place = format!(
            "schema/{}/manifest.json examples[{index}] ({}, from {})",
            manifest.family, example.message, example.source
        );
        let Some(value) = &example.value else {
            problems.push(format!("{place}: a json family's example needs `value`"));
            continue;
        };
        let Some(validator) = validators.get(&example.message) else {
            problems.push(format!("{place}: names no message of the family"));
            continue;
        };
        for error in validator.iter_errors(value) {
            problems.push(format!(
                "{place}: {error} at {:?}",
                error.instance_path().as_str()
            ));
        }
        // The discriminator must pick this very message, or decoding would
        // validate it against the wrong schema.
        let picked = detect(manifest, value);
        if !picked.iter().any(|name| *name == example.message) {
            problems.push(format!(
                "{place}: the discriminator picks {picked:?}, not {}",
                example.message
            ));
        }
    }
}

/// The manifest's discriminator rules, applied as the generated code does.
pub fn detect<'m>(manifest: &'m Manifest, value: &Value) -> Vec<&'m str> {
    specwire_wire::json::most_specific(manifest.messages.iter().filter_map(|message| {
        let holds = message.match_rules.iter().all(|rule| match &rule.constant {
            Some(constant) => value.pointer(&rule.pointer) == Some(constant),
            None => value.pointer(&rule.pointer).is_some(),
        });
        holds.then_some((message.name.as_str(), message.match_rules.len()))
    }))
}

fn check_text_examples(manifest: &Manifest, problems: &mut Problems) {
    for (index, example) in manifest.examples.iter().enumerate() {
        let place = format!(
            "schema/{}/manifest.json examples[{index}] ({})",
            manifest.family, example.message
        );
        let Some(text) = &example.text else {
            problems.push(format!(
                "{place}: a text-lines family's example needs `text`"
            ));
            continue;
        };
        let Some(message) = manifest.messages.iter().find(|m| m.name == example.message) else {
            problems.push(format!("{place}: names no message of the family"));
            continue;
        };
        let Some(pattern) = &message.pattern else {
            continue;
        };
        match regress::Regex::new(pattern) {
            Ok(regex) => {
                if regex
                    .find(text)
                    .is_none_or(|found| found.range() != (0..text.len()))
                {
                    problems.push(format!("{place}: {text:?} does not match {pattern:?}"));
                }
            }
            Err(error) => problems.push(format!(
                "schema/{}: pattern of {}: {error}",
                manifest.family, message.name
            )),
        }
    }
    for message in &manifest.messages {
        let Some(pattern) = &message.pattern else {
            continue;
        };
        if let Err(error) = regress::Regex::new(pattern) {
            problems.push(format!(
                "schema/{}: pattern of {}: {error}",
                manifest.family, message.name
            ));
        }
        for field in &message.fields {
            if !pattern.contains(&format!("(?<{}>", field.name)) {
                problems.push(format!(
                    "schema/{}: field {} of {} is not a named group of its pattern",
                    manifest.family, field.name, message.name
                ));
            }
        }
    }
}

fn compile_meta(path: &Path) -> Result<jsonschema::Validator> {
    let meta = read_json(path)?;
    jsonschema::meta::validate(&meta).map_err(|error| {
        anyhow::anyhow!("{} is not a valid JSON Schema: {error}", path.display())
    })?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&meta)
        .map_err(|error| anyhow::anyhow!("{} does not compile: {error}", path.display()))
}

fn report_meta(
    meta: &jsonschema::Validator,
    document: &Value,
    what: &str,
    problems: &mut Problems,
) -> bool {
    let mut ok = true;
    for error in meta.iter_errors(document) {
        ok = false;
        problems.push(format!(
            "{what}: {error} at {:?} (against its meta-schema)",
            error.instance_path().as_str()
        ));
    }
    ok
}

fn rel(schema_dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(schema_dir).unwrap_or(path);
    format!("schema/{}", relative.display())
}
