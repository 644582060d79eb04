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
use serde_json::Value;

pub mod bundle;
mod catalog;
mod files;
mod manifest;
pub mod uart;

use bundle::{bundle_family, bundle_single};
pub use catalog::{Case, Conformance, ConformanceSection, Level, Need};
pub use files::read_json;
pub use manifest::{
    Discriminator, Encoding, Example, Exchange, LineField, Manifest, MatchEntry, MessageEntry,
    Registry, Sequence, SequenceStep, Transport,
};

/// The meta-schema every family manifest follows.
pub const MANIFEST_META: &str = "meta/family-manifest.schema.json";
/// The meta-schema of `uart/protocol.json`.
pub const UART_META: &str = "meta/uart-protocol.schema.json";
/// The binary family's document.
pub const UART_PROTOCOL: &str = "uart/protocol.json";
/// The meta-schema of every `<family>/conformance.json`.
pub const CONFORMANCE_META: &str = "meta/conformance-cases.schema.json";
/// A family's conformance case catalog, relative to its folder (optional).
/// A family with more than one kind of implementation to check (uart:
/// modules and gateways) has one catalog per suite instead,
/// `conformance.<suite>.json`, named `<family>-<suite>`.
pub const CONFORMANCE_FILE: &str = "conformance.json";
/// Schemas of documents specwire writes (the conformance report, ...):
/// standalone JSON Schemas, not a family. Each is checked against the
/// 2020-12 meta-schema; nothing is generated from them.
pub const REPORTS_DIR: &str = "reports";
/// Folders of `schema/` that are not families.
const NOT_FAMILIES: &[&str] = &["meta", REPORTS_DIR];

/// One JSON or text-lines family, loaded and bundled.
#[derive(Debug, Clone)]
pub struct Family {
    pub manifest: Manifest,
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
    /// The binary family, `uart/protocol.json`, checked.
    pub uart: uart::Protocol,
    /// Every `<family>/conformance.json` and `<family>/conformance.<suite>.json`
    /// there is, in catalog order (the order of [`SchemaTree::family_names`],
    /// a family's suites by name).
    pub conformance: Vec<Conformance>,
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

    /// Every family name in the generated `FAMILIES` order: the manifest
    /// families in folder order, then `uart`.
    pub fn family_names(&self) -> Vec<&str> {
        self.families
            .iter()
            .map(|family| family.manifest.family.as_str())
            .chain(std::iter::once(self.uart.family.as_str()))
            .collect()
    }

    /// The conformance catalog of `family`, when it has one.
    pub fn conformance_of(&self, family: &str) -> Option<&Conformance> {
        self.conformance
            .iter()
            .find(|catalog| catalog.family == family)
    }

    /// The JSON families (json encoding), in folder order.
    pub fn json_families(&self) -> impl Iterator<Item = &Family> {
        self.families
            .iter()
            .filter(|family| family.manifest.encoding == Encoding::Json)
    }
}

fn load_inner(schema_dir: &Path, problems: &mut Problems) -> Result<SchemaTree> {
    let manifest_meta = compile_meta(&schema_dir.join(MANIFEST_META))?;
    let uart_meta = compile_meta(&schema_dir.join(UART_META))?;
    let conformance_meta = compile_meta(&schema_dir.join(CONFORMANCE_META))?;

    let mut family_dirs: Vec<PathBuf> = fs::read_dir(schema_dir)
        .with_context(|| format!("reading {}", schema_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|name| !NOT_FAMILIES.iter().any(|skip| name == *skip))
        })
        .collect();
    family_dirs.sort();
    check_report_schemas(schema_dir, problems)?;

    let mut families = Vec::new();
    let mut uart = None;
    // (folder, file, catalog) for every catalog file, put in catalog order below.
    let mut catalogs: Vec<(String, String, Conformance)> = Vec::new();
    for dir in family_dirs {
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (path, expected) in catalog_files(&dir, &name)? {
            if let Some(catalog) =
                load_conformance(schema_dir, &path, &expected, &conformance_meta, problems)
            {
                catalogs.push((name.clone(), rel(schema_dir, &path), catalog));
            }
        }
        if dir.join("protocol.json").exists() {
            let path = dir.join("protocol.json");
            let document = read_json(&path)?;
            let what = rel(schema_dir, &path);
            if report_meta(&uart_meta, &document, &what, problems) {
                match uart::Protocol::from_json(&document) {
                    Ok(protocol) => uart = Some(protocol),
                    Err(error) => problems.push(format!("{what}: {error:#}")),
                }
            }
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
        let manifest: Manifest = serde_json::from_value(manifest_json)
            .with_context(|| format!("{manifest_rel} does not match codegen's manifest model"))?;
        if manifest.family != name {
            problems.push(format!(
                "{manifest_rel}: family is {:?} but the folder is {name:?}",
                manifest.family
            ));
        }
        families.push(load_family(&dir, manifest, problems)?);
    }
    let uart = match uart {
        Some(uart) => uart,
        // Why it did not load is among the problems already.
        None if !problems.0.is_empty() => anyhow::bail!("schema/uart/protocol.json did not load"),
        None => anyhow::bail!("schema/uart/protocol.json is missing"),
    };
    let mut tree = SchemaTree {
        root: schema_dir.to_path_buf(),
        families,
        uart,
        conformance: Vec::new(),
    };
    // Catalog order is `FAMILIES` order. A catalog in a folder that did not
    // load as a family is dropped: that folder's problem is reported already.
    let order = tree.family_names();
    let mut ordered: Vec<(usize, String, Conformance)> = catalogs
        .into_iter()
        .filter_map(|(folder, file, catalog)| {
            let position = order.iter().position(|family| *family == folder)?;
            Some((position, file, catalog))
        })
        .collect();
    ordered.sort_by(|(a, _, one), (b, _, other)| a.cmp(b).then(one.family.cmp(&other.family)));
    check_case_ids(&ordered, problems);
    tree.conformance = ordered.into_iter().map(|(_, _, catalog)| catalog).collect();
    Ok(tree)
}

/// Every `reports/*.schema.json` must be a valid JSON Schema 2020-12 document.
fn check_report_schemas(schema_dir: &Path, problems: &mut Problems) -> Result<()> {
    let dir = schema_dir.join(REPORTS_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(".schema.json"))
        })
        .collect();
    files.sort();
    for path in files {
        match read_json(&path) {
            Ok(schema) => check_schema(&schema, &rel(schema_dir, &path), problems),
            Err(error) => problems.push(format!("{error:#}")),
        }
    }
    Ok(())
}

/// The catalog files of the family folder `dir` (called `folder`), each
/// with the catalog name it must declare: `conformance.json` → `folder`,
/// `conformance.<suite>.json` → `folder-suite`. In name order.
fn catalog_files(dir: &Path, folder: &str) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let expected = if file == CONFORMANCE_FILE {
            folder.to_string()
        } else if let Some(suite) = file
            .strip_prefix("conformance.")
            .and_then(|rest| rest.strip_suffix(".json"))
        {
            format!("{folder}-{suite}")
        } else {
            continue;
        };
        files.push((path, expected));
    }
    files.sort();
    Ok(files)
}

/// Loads the catalog at `path`, which must be called `expected`, and
/// reports everything wrong with it that can be seen from the file alone.
/// `None` when it is too broken to use (the problems say why).
fn load_conformance(
    schema_dir: &Path,
    path: &Path,
    expected: &str,
    meta: &jsonschema::Validator,
    problems: &mut Problems,
) -> Option<Conformance> {
    let what = rel(schema_dir, path);
    let document = match read_json(path) {
        Ok(document) => document,
        Err(error) => {
            problems.push(format!("{error:#}"));
            return None;
        }
    };
    if !report_meta(meta, &document, &what, problems) {
        return None;
    }
    let catalog: Conformance = match serde_json::from_value(document) {
        Ok(catalog) => catalog,
        Err(error) => {
            problems.push(format!(
                "{what}: does not match codegen's conformance model: {error}"
            ));
            return None;
        }
    };
    let family = &catalog.family;
    if family != expected {
        problems.push(format!(
            "{what}: family is {family:?} but the file's folder and name make it {expected:?}"
        ));
    }
    let mut sections = BTreeSet::new();
    for section in &catalog.sections {
        if !sections.insert(section.id.as_str()) {
            problems.push(format!("{what}: section {} is declared twice", section.id));
        }
    }
    for case in &catalog.cases {
        let id = &case.id;
        if !sections.contains(case.section.as_str()) {
            problems.push(format!(
                "{what}: case {id}: section {:?} is not declared in `sections`",
                case.section
            ));
        }
        let prefix = format!("{family}.{}.", case.section);
        if !id.starts_with(&prefix) {
            problems.push(format!(
                "{what}: case {id}: the id must start with {prefix:?} (family, then section)"
            ));
        }
        for need in &case.needs {
            if catalog.need(need).is_none() {
                problems.push(format!(
                    "{what}: case {id}: need {need:?} is not declared in `needs`"
                ));
            }
        }
    }
    Some(catalog)
}

/// Case IDs are unique across the whole tree: reports, replay bundles and
/// the suite name a case by its ID alone.
fn check_case_ids(catalogs: &[(usize, String, Conformance)], problems: &mut Problems) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, file, catalog) in catalogs {
        for case in &catalog.cases {
            match seen.get(case.id.as_str()) {
                Some(first) => problems.push(format!(
                    "{file}: case id {} is not unique (already used in {first})",
                    case.id
                )),
                None => {
                    seen.insert(&case.id, file);
                }
            }
        }
    }
}

fn load_family(dir: &Path, manifest: Manifest, problems: &mut Problems) -> Result<Family> {
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
        bundle: None,
        registry_schema: None,
        registry_default: None,
    };
    match loaded.manifest.encoding {
        Encoding::Json => {
            let bundle = bundle_family(dir, &loaded.manifest)?;
            for reference in bundle::dangling_refs(&bundle) {
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
