//! A JSON or text-lines family's page: its manifest (transport, messages,
//! exchanges, sequences, examples) and, per message, the field table of its
//! bundled schema.

use std::collections::BTreeSet;

use anyhow::{bail, ensure, Context, Result};

use super::conformance::FamilyCases;
use super::rich::{byte_size, compact_json, md_fence, message_anchor, pretty_json, Rich};
use super::schema::{description_of, FieldRow, SchemaWalker};
use super::sequence::{sequence_view, SequenceView};
use crate::model::{Encoding, Example, Family, Manifest, MessageEntry, Registry};

#[derive(Debug)]
pub(super) struct FamilyPage {
    pub(super) family: String,
    pub(super) title: String,
    pub(super) summary: Rich,
    pub(super) sources: Vec<Rich>,
    pub(super) decisions: Vec<Rich>,
    pub(super) transport: TransportView,
    pub(super) encoding: String,
    pub(super) is_json: bool,
    pub(super) definitions: Option<Rich>,
    pub(super) discriminator: Option<DiscriminatorView>,
    pub(super) messages: Vec<MessageView>,
    pub(super) exchanges: Vec<ExchangeView>,
    pub(super) sequences: Vec<SequenceView>,
    pub(super) registry: Option<RegistryView>,
    pub(super) conformance: FamilyCases,
}

#[derive(Debug)]
pub(super) struct TransportView {
    pub(super) kind: String,
    pub(super) address: Rich,
    pub(super) port: u64,
    pub(super) paths: Vec<Rich>,
    pub(super) framing: Rich,
    pub(super) max_message: Option<String>,
}

#[derive(Debug)]
pub(super) struct DiscriminatorView {
    pub(super) pointers: Vec<Rich>,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct MessageView {
    pub(super) name: String,
    pub(super) anchor: String,
    pub(super) direction: String,
    pub(super) sender: String,
    pub(super) summary: Rich,
    /// The schema's own description (json families).
    pub(super) description: Rich,
    pub(super) schema_file: Option<Rich>,
    /// json: the match conditions, each rendered as one line.
    pub(super) recognition: Vec<Rich>,
    /// text-lines: the anchored regex.
    pub(super) pattern: Option<Rich>,
    /// text-lines: the named groups.
    pub(super) groups: Vec<GroupView>,
    pub(super) fields: Vec<FieldRow>,
    pub(super) examples: Vec<ExampleView>,
}

#[derive(Debug)]
pub(super) struct GroupView {
    pub(super) name: Rich,
    pub(super) presence: String,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct ExampleView {
    pub(super) source: Rich,
    pub(super) description: Option<Rich>,
    pub(super) body: String,
    pub(super) lang: &'static str,
    pub(super) fence: String,
}

#[derive(Debug)]
pub(super) struct ExchangeView {
    pub(super) request: Rich,
    pub(super) replies: Rich,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct RegistryView {
    pub(super) name: String,
    pub(super) schema_file: Rich,
    pub(super) description: Rich,
    pub(super) schema_description: Rich,
    pub(super) fields: Vec<FieldRow>,
}

pub(super) fn family_page(f: &Family) -> Result<FamilyPage> {
    let m = &f.manifest;
    let family = m.family.clone();
    // The name becomes a file name and a link target.
    ensure!(
        !family.is_empty()
            && family.starts_with(|c: char| c.is_ascii_lowercase())
            && family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "family name {family:?} must match ^[a-z][a-z0-9-]*$"
    );
    let is_json = m.encoding == Encoding::Json;
    let t = &m.transport;
    let transport = TransportView {
        kind: t.kind.clone(),
        address: Rich::new().code(&format!("{}:{}", t.default_host, t.default_port)),
        port: u64::from(t.default_port),
        paths: t.paths.iter().map(|p| Rich::new().code(p)).collect(),
        framing: Rich::from_md(&t.framing),
        max_message: t.max_message_bytes.map(byte_size),
    };
    let discriminator = m.discriminator.as_ref().map(|d| DiscriminatorView {
        pointers: d.pointers.iter().map(|p| Rich::new().code(p)).collect(),
        description: Rich::from_md(&d.description),
    });

    // Message names first: exchanges, sequences and `$ref`s link to them.
    let mut names = BTreeSet::new();
    for msg in &m.messages {
        ensure!(
            names.insert(msg.name.clone()),
            "message `{}` is listed twice",
            msg.name
        );
    }
    for (i, ex) in m.examples.iter().enumerate() {
        ensure!(
            names.contains(&ex.message),
            "`examples[{i}]` is for `{}`, which is not a message of this family",
            ex.message
        );
    }

    let empty = serde_json::Value::Null;
    let walker = SchemaWalker {
        root: f.bundle.as_ref().unwrap_or(&empty),
        messages: &names,
        what: "the bundled schema".to_string(),
    };
    let mut messages = Vec::with_capacity(m.messages.len());
    for (i, msg) in m.messages.iter().enumerate() {
        let view = message_view(msg, is_json, &walker, &m.examples)
            .with_context(|| format!("message `messages[{i}]`"))?;
        messages.push(view);
    }
    let sequences = m
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| sequence_view(s, &names).with_context(|| format!("`sequences[{i}]`")))
        .collect::<Result<Vec<_>>>()?;

    Ok(FamilyPage {
        summary: Rich::from_md(&m.summary),
        sources: m.sources.iter().map(|s| Rich::from_md(s)).collect(),
        decisions: m.decisions.iter().map(|s| Rich::from_md(s)).collect(),
        definitions: m.definitions.as_deref().map(|d| Rich::new().code(d)),
        title: m.title.clone(),
        encoding: m.encoding.as_str().to_string(),
        exchanges: exchanges(m, &names)?,
        registry: registry_view(m.registry.as_ref(), f.registry_schema.as_ref())?,
        family,
        transport,
        is_json,
        discriminator,
        messages,
        sequences,
        conformance: FamilyCases::default(),
    })
}

fn exchanges(m: &Manifest, names: &BTreeSet<String>) -> Result<Vec<ExchangeView>> {
    let mut exchanges = Vec::new();
    for (i, e) in m.exchanges.iter().enumerate() {
        let what = format!("`exchanges[{i}]`");
        let mut replies = Rich::new();
        for (j, r) in e.replies.iter().enumerate() {
            if j > 0 {
                replies = replies.text(", ");
            }
            replies = message_link(replies, r, names)
                .with_context(|| format!("reply `{r}` of {what}"))?;
        }
        if e.replies.is_empty() {
            replies = replies.text("none");
        }
        exchanges.push(ExchangeView {
            request: message_link(Rich::new(), &e.request, names)
                .with_context(|| format!("request of {what}"))?,
            replies,
            description: Rich::from_md(&e.description),
        });
    }
    Ok(exchanges)
}

fn registry_view(
    registry: Option<&Registry>,
    schema: Option<&serde_json::Value>,
) -> Result<Option<RegistryView>> {
    let (r, schema) = match (registry, schema) {
        (None, None) => return Ok(None),
        (Some(_), None) => bail!("the manifest names a registry but no registry schema was given"),
        (None, Some(_)) => bail!("a registry schema was given but the manifest names no registry"),
        (Some(r), Some(schema)) => (r, schema),
    };
    let empty = BTreeSet::new();
    let rw = SchemaWalker {
        root: schema,
        messages: &empty,
        what: format!("the registry schema `{}`", r.name),
    };
    // The registry schema is bundled like a family (its root under
    // `$defs/<name>`); a schema file as written works too.
    let root = schema
        .get("$defs")
        .and_then(|d| d.get(&r.name))
        .unwrap_or(schema);
    let resolved = rw.resolve(root)?;
    Ok(Some(RegistryView {
        schema_file: Rich::new().code(&r.schema),
        description: Rich::from_md(&r.description),
        schema_description: description_of(&resolved.merged),
        fields: rw.root_fields(root, &r.name)?,
        name: r.name.clone(),
    }))
}

pub(super) fn message_link(r: Rich, name: &str, names: &BTreeSet<String>) -> Result<Rich> {
    ensure!(
        names.contains(name),
        "`{name}` is not a message of this family"
    );
    Ok(r.link(name, &format!("#{}", message_anchor(name)), true))
}

fn message_view(
    m: &MessageEntry,
    is_json: bool,
    walker: &SchemaWalker<'_>,
    examples: &[Example],
) -> Result<MessageView> {
    let name = m.name.as_str();
    let mut view = MessageView {
        name: name.to_string(),
        anchor: message_anchor(name),
        direction: m.direction.clone(),
        sender: m.sender.as_deref().unwrap_or("—").to_string(),
        summary: Rich::from_md(&m.summary),
        description: Rich::new(),
        schema_file: m.schema.as_deref().map(|s| Rich::new().code(s)),
        recognition: Vec::new(),
        pattern: None,
        groups: Vec::new(),
        fields: Vec::new(),
        examples: Vec::new(),
    };

    if is_json {
        for (i, c) in m.match_rules.iter().enumerate() {
            let line = match (&c.constant, c.present) {
                (Some(v), None) => Rich::new()
                    .code(&c.pointer)
                    .text(" equals ")
                    .code(&compact_json(v)),
                (None, Some(true)) => Rich::new().code(&c.pointer).text(" is present"),
                _ => bail!("`match[{i}]` must have either `const` or `present: true`"),
            };
            view.recognition.push(line);
        }
        let schema = walker.message_schema(name)?;
        view.description = description_of(&walker.resolve(schema)?.merged);
        view.fields = walker.root_fields(schema, name)?;
    } else {
        let pattern = m
            .pattern
            .as_deref()
            .context("a text-lines message needs `pattern`")?;
        view.pattern = Some(Rich::new().code(pattern));
        for g in &m.fields {
            view.groups.push(GroupView {
                name: Rich::new().code(&g.name),
                presence: if g.optional { "optional" } else { "required" }.to_string(),
                description: Rich::from_md(&g.description),
            });
        }
    }

    for (i, e) in examples.iter().enumerate() {
        if e.message != name {
            continue;
        }
        let (body, lang) = match (&e.value, &e.text) {
            (Some(v), None) => (pretty_json(v), "json"),
            (None, Some(t)) => (t.clone(), "text"),
            _ => bail!("`examples[{i}]` must have either `value` (json) or `text` (a string)"),
        };
        view.examples.push(ExampleView {
            source: Rich::from_md(&e.source),
            description: e.description.as_deref().map(Rich::from_md),
            fence: md_fence(&body),
            body,
            lang,
        });
    }
    Ok(view)
}
