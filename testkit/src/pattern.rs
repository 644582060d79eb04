//! `pattern` support: turn an ECMA-262 pattern into a generator for matching strings.
//!
//! Generation goes through proptest's `string_regex_parsed`, which speaks Rust regex
//! syntax, so the pattern is first rewritten where the two dialects differ in ways that
//! matter here, anchors are dropped and unbounded repetitions capped. Every generated
//! string is still checked against the schema's own ECMA semantics by a validator.

use std::sync::Arc;

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};
use serde_json::{json, Value};

use crate::UnsupportedSchema;

/// How far an unbounded repetition (`*`, `+`, `{n,}`) may go past its minimum, and how
/// far a bounded one is allowed to: keeps generated strings short.
const REPEAT_SLACK: u32 = 8;

/// Samples taken when compiling a pattern, and how many must match for it to be usable.
const SAMPLES: usize = 32;
const MIN_MATCHING: usize = 8;

/// A compiled `pattern` keyword.
pub(crate) struct Pattern {
    pub source: String,
    pub ptr: String,
    hir: Hir,
    check: jsonschema::Validator,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Pattern {
    /// Compiles `source`, found at schema location `ptr`.
    pub(crate) fn compile(source: &str, ptr: &str) -> Result<Arc<Self>, UnsupportedSchema> {
        let check = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&json!({ "pattern": source }))
            .map_err(|e| UnsupportedSchema::new(ptr, format!("invalid pattern `{source}`: {e}")))?;
        let rewritten = rewrite_ecma(source)
            .map_err(|why| UnsupportedSchema::new(ptr, format!("pattern `{source}`: {why}")))?;
        let parsed = regex_syntax::Parser::new().parse(&rewritten).map_err(|e| {
            UnsupportedSchema::new(
                ptr,
                format!("pattern `{source}` cannot be parsed for generation: {e}"),
            )
        })?;
        let hir = simplify(&parsed)
            .map_err(|why| UnsupportedSchema::new(ptr, format!("pattern `{source}`: {why}")))?;
        let pattern = Arc::new(Self {
            source: source.to_owned(),
            ptr: ptr.to_owned(),
            hir,
            check,
        });
        pattern.sample_check()?;
        Ok(pattern)
    }

    /// `true` if the schema's (ECMA-262) reading of the pattern accepts `s`.
    pub(crate) fn matches(&self, s: &str) -> bool {
        self.check.is_valid(&Value::String(s.to_owned()))
    }

    /// Strings the rewritten pattern generates; not all need match (see [`Self::matches`]).
    pub(crate) fn raw_strategy(&self) -> Result<BoxedStrategy<String>, UnsupportedSchema> {
        proptest::string::string_regex_parsed(&self.hir)
            .map(Strategy::boxed)
            .map_err(|e| {
                UnsupportedSchema::new(
                    self.ptr.clone(),
                    format!("pattern `{}` cannot be generated: {e}", self.source),
                )
            })
    }

    /// Refuses patterns whose generated strings mostly fail the validator, which would
    /// otherwise surface later as proptest giving up on too many rejections.
    fn sample_check(&self) -> Result<(), UnsupportedSchema> {
        let strategy = self.raw_strategy()?;
        let mut runner = TestRunner::deterministic();
        let mut matching = 0;
        for _ in 0..SAMPLES {
            let tree = strategy.new_tree(&mut runner).map_err(|e| {
                UnsupportedSchema::new(self.ptr.clone(), format!("pattern `{}`: {e}", self.source))
            })?;
            if self.matches(&tree.current()) {
                matching += 1;
            }
        }
        if matching < MIN_MATCHING {
            return Err(UnsupportedSchema::new(
                self.ptr.clone(),
                format!(
                    "pattern `{}`: only {matching} of {SAMPLES} generated strings match it \
                     under ECMA-262 rules",
                    self.source
                ),
            ));
        }
        Ok(())
    }
}

/// Rewrites ECMA-262 escapes whose Rust meaning differs: `\d` and `\w` are ASCII-only in
/// ECMA but Unicode-aware in Rust, which would generate e.g. Arabic-Indic digits.
fn rewrite_ecma(source: &str) -> Result<String, String> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err("ends with a lone backslash".into());
                };
                let replacement = match (e, in_class) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[A-Za-z0-9_]",
                    ('W', false) => "[^A-Za-z0-9_]",
                    ('d', true) => "0-9",
                    ('w', true) => "A-Za-z0-9_",
                    ('D' | 'W', true) => {
                        return Err(format!("`\\{e}` inside a character class is not supported"))
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                out.push_str(replacement);
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal in Rust but closes an empty
                // class in ECMA; neither reading is worth guessing at.
                let rest = chars.as_str();
                if rest.starts_with(']') || rest.starts_with("^]") {
                    return Err("`[]` and `[^]` classes are not supported".into());
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Drops `^`/`$` anchors (generation produces whole strings anyway; JSON Schema patterns
/// are searches) and caps repetitions. Other look-arounds cannot be generated.
fn simplify(hir: &Hir) -> Result<Hir, String> {
    Ok(match hir.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0.clone()),
        HirKind::Class(class) => Hir::class(class.clone()),
        HirKind::Look(Look::Start | Look::End) => Hir::empty(),
        HirKind::Look(look) => {
            return Err(format!(
                "assertion {look:?} is not supported for generation"
            ))
        }
        HirKind::Repetition(rep) => {
            let ceiling = rep.min.saturating_add(REPEAT_SLACK);
            Hir::repetition(Repetition {
                min: rep.min,
                max: Some(rep.max.map_or(ceiling, |max| max.min(ceiling))),
                greedy: rep.greedy,
                sub: Box::new(simplify(&rep.sub)?),
            })
        }
        HirKind::Capture(cap) => Hir::capture(Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(simplify(&cap.sub)?),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(simplify).collect::<Result<_, _>>()?),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(simplify).collect::<Result<_, _>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecma_classes_become_ascii() {
        assert_eq!(
            rewrite_ecma(r"^\d{2}-[\w.]+$").as_deref(),
            Ok(r"^[0-9]{2}-[A-Za-z0-9_.]+$")
        );
        assert_eq!(rewrite_ecma(r"a\.b").as_deref(), Ok(r"a\.b"));
        assert!(rewrite_ecma(r"[\D]").is_err());
    }

    #[test]
    fn anchored_patterns_compile_and_generate_matches() {
        let p = Pattern::compile("^[a-z]{3}-\\d+$", "#/pattern").expect("compiles");
        let strategy = p.raw_strategy().expect("strategy");
        let mut runner = TestRunner::deterministic();
        for _ in 0..16 {
            let s = strategy.new_tree(&mut runner).expect("tree").current();
            assert!(p.matches(&s), "{s:?}");
            assert!(s.len() <= 3 + 1 + 9, "{s:?}");
        }
    }

    #[test]
    fn word_boundaries_are_refused_with_location() {
        let err = Pattern::compile("\\bfoo\\b", "#/$defs/X/pattern").expect_err("refused");
        assert_eq!(err.pointer, "#/$defs/X/pattern");
    }
}
