//! Shared helpers for the protocol tests: reading `schema/` and the seed
//! documents, and the round-trip equivalence rule.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod uart_samples;

pub use specwire_testsupport::workspace;

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn manifest(family: &str) -> Value {
    read_json(
        &workspace()
            .join("schema")
            .join(family)
            .join("manifest.json"),
    )
}

/// The bundled schema the generated code embeds.
pub fn bundle(family: &str) -> Value {
    let text = match family {
        "discovery" => specwire_protocol::discovery::SCHEMA,
        "task" => specwire_protocol::task::SCHEMA,
        "subscription" => specwire_protocol::subscription::SCHEMA,
        "chat" => specwire_protocol::chat::SCHEMA,
        other => panic!("no JSON family {other}"),
    };
    serde_json::from_str(text).expect("embedded schema is JSON")
}

pub const JSON_FAMILIES: &[&str] = &["discovery", "task", "subscription", "chat"];

/// The round-trip rule: decoding then re-serializing gives the same JSON,
/// up to one documented normalisation of the generated types: an optional
/// member that was `null`, `{}` or `[]` may be omitted. Everything else,
/// timestamps included, must come back exactly.
pub fn equivalent(original: &Value, reserialized: &Value) -> Result<(), String> {
    equivalent_at(original, reserialized, "")
}

fn equivalent_at(original: &Value, again: &Value, path: &str) -> Result<(), String> {
    match (original, again) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}/{key}");
                match b.get(key) {
                    Some(other) => equivalent_at(value, other, &here)?,
                    None if is_empty(value) => {}
                    None => return Err(format!("{here} was dropped")),
                }
            }
            for key in b.keys() {
                if !a.contains_key(key) {
                    return Err(format!("{path}/{key} was added"));
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| equivalent_at(x, y, &format!("{path}/{i}"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Removes `//` comments that sit outside JSON strings (the seeds annotate
/// examples that way; `ws://` inside a string must survive).
pub fn strip_line_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for next in chars.by_ref() {
                if next == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON example found in a seed document.
pub struct SeedExample {
    pub seed: String,
    pub text: String,
}

/// The seed documents, when `shared/` sits beside the checkout (as in CI).
pub fn seeds_dir() -> Option<PathBuf> {
    let dir = workspace().parent()?.join("shared/spec/seeds");
    dir.is_dir().then_some(dir)
}

/// Every ```json block of every seed, plus every `{...}` object inside the
/// plain ``` blocks (seed 003 writes its message flows that way).
pub fn seed_examples(dir: &Path) -> Vec<SeedExample> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("seed dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for path in entries {
        let seed = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("seed text");
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```") {
            let after = &rest[start + 3..];
            let (lang, body_start) = match after.find('\n') {
                Some(nl) => (&after[..nl], nl + 1),
                None => break,
            };
            let body_and_more = &after[body_start..];
            let Some(end) = body_and_more.find("```") else {
                break;
            };
            let body = &body_and_more[..end];
            match lang.trim() {
                "json" => out.push(SeedExample {
                    seed: seed.clone(),
                    text: strip_line_comments(body),
                }),
                "" => {
                    for object in top_level_objects(body) {
                        out.push(SeedExample {
                            seed: seed.clone(),
                            text: object,
                        });
                    }
                }
                _ => {}
            }
            rest = &body_and_more[end + 3..];
        }
    }
    out
}

/// Balanced `{...}` regions starting at the beginning of a line.
fn top_level_objects(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] == b'\n') {
            let mut depth = 0;
            let mut in_string = false;
            for j in i..bytes.len() {
                match bytes[j] {
                    b'"' if j == 0 || bytes[j - 1] != b'\\' => in_string = !in_string,
                    b'{' if !in_string => depth += 1,
                    b'}' if !in_string => {
                        depth -= 1;
                        if depth == 0 {
                            out.push(body[i..=j].to_owned());
                            i = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        i += 1;
    }
    out
}
