//! The report as one self-contained HTML page: inline CSS in the look of
//! the generated docs, no scripts, no external assets. Every piece of text
//! goes through askama's HTML escaping, transcript data included.

use askama::Template;

use super::{arrow, CaseReport, Outcome, Report};
use crate::transcript::Direction;

/// A piece of text that is either plain or a code span.
struct Seg {
    text: String,
    code: bool,
}

/// Splits Markdown code spans (`` `x` ``) out of catalog text; an unpaired
/// backtick is kept as text.
fn segs(text: &str) -> Vec<Seg> {
    let parts: Vec<&str> = text.split('`').collect();
    let paired = parts.len() % 2 == 1;
    let mut out: Vec<Seg> = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let code = index % 2 == 1 && (paired || index + 1 < parts.len());
        let text = if index % 2 == 1 && !code {
            format!("`{part}")
        } else {
            (*part).to_owned()
        };
        if !text.is_empty() {
            out.push(Seg { text, code });
        }
    }
    out
}

/// CSS class of an outcome's badge.
fn class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::StalePass => "stale",
        Outcome::Fail => "fail",
        Outcome::Warn => "warn",
        Outcome::ExpectedFail => "expected",
        Outcome::Skip => "skip",
        Outcome::HarnessError => "error",
    }
}

/// A badge: label and class.
struct Badge {
    label: String,
    class: &'static str,
}

struct Count {
    label: &'static str,
    value: usize,
    class: &'static str,
}

struct Row {
    id: &'static str,
    level: &'static str,
    badge: Badge,
    title: Vec<Seg>,
    spec: Vec<Seg>,
    reason: String,
    duration: String,
    detail: bool,
}

struct SectionView {
    id: String,
    title: String,
    counts: String,
    rows: Vec<Row>,
}

struct EntryView {
    at: String,
    connection: String,
    arrow: &'static str,
    direction: &'static str,
    kind: String,
    data: String,
}

struct Detail {
    id: &'static str,
    level: &'static str,
    badge: Badge,
    title: Vec<Seg>,
    spec: Vec<Seg>,
    source: &'static str,
    reason: String,
    duration: String,
    seed: Option<String>,
    replay: Option<String>,
    open: bool,
    entries: Vec<EntryView>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    family: String,
    target: String,
    started_at: String,
    duration: String,
    tool: String,
    format: &'static str,
    verdict: Badge,
    verdict_text: String,
    exit_code: u8,
    counts: Vec<Count>,
    stale: Vec<&'static str>,
    sections: Vec<SectionView>,
    details: Vec<Detail>,
}

fn badge(case: &CaseReport) -> Badge {
    let outcome = case.outcome();
    Badge {
        label: outcome.label().to_owned(),
        class: class(outcome),
    }
}

fn milliseconds(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn detail(case: &CaseReport) -> Detail {
    let outcome = case.outcome();
    Detail {
        id: case.id,
        level: case.level.as_str(),
        badge: badge(case),
        title: segs(case.title),
        spec: segs(case.spec),
        source: case.source,
        reason: case.reason.clone().unwrap_or_default(),
        duration: milliseconds(case.duration_ms),
        seed: case.seed.map(|seed| seed.to_string()),
        replay: case.replay.clone(),
        open: outcome.breaks_run(),
        entries: case
            .transcript
            .iter()
            .map(|entry| EntryView {
                at: format!("{:.1}", entry.at_ms),
                connection: if entry.connection == 0 {
                    "—".to_owned()
                } else {
                    format!("#{}", entry.connection)
                },
                arrow: arrow(entry.direction),
                direction: match entry.direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                    Direction::Note => "note",
                },
                kind: entry.kind.clone(),
                data: entry.data.clone(),
            })
            .collect(),
    }
}

fn section_counts(cases: &[&CaseReport]) -> String {
    let mut parts = Vec::new();
    for (outcome, name) in [
        (Outcome::Pass, "passed"),
        (Outcome::Fail, "failed"),
        (Outcome::Warn, "warned"),
        (Outcome::ExpectedFail, "failed as expected"),
        (Outcome::StalePass, "passed though expected to fail"),
        (Outcome::Skip, "skipped"),
        (Outcome::HarnessError, "harness error"),
    ] {
        let count = cases
            .iter()
            .filter(|case| case.outcome() == outcome)
            .count();
        if count > 0 {
            let plural = if count > 1 && outcome == Outcome::HarnessError {
                "s"
            } else {
                ""
            };
            parts.push(format!("{count} {name}{plural}"));
        }
    }
    parts.join(", ")
}

impl Report {
    /// The report as one self-contained HTML page (inline CSS, no scripts,
    /// nothing loaded from elsewhere): the run's header and counts, a table
    /// per spec section, and every failure and harness error with its
    /// transcript (in a `<details>` element, open for those that fail the
    /// run). Expected failures and stale expectations are marked.
    pub fn to_html(&self) -> Result<String, super::RenderError> {
        let s = &self.summary;
        let (verdict, verdict_text) = match self.exit_code() {
            1 => (
                Badge {
                    label: "FAILED".into(),
                    class: "fail",
                },
                format!(
                    "{} failed: the target does not conform.",
                    plural(s.must_failed, "MUST case", "MUST cases")
                ),
            ),
            3 => (
                Badge {
                    label: "INCOMPLETE".into(),
                    class: "error",
                },
                format!(
                    "No MUST case failed, but the suite could not carry out {}.",
                    plural(s.harness_error, "case", "cases")
                ),
            ),
            _ if s.should_failed > 0 => (
                Badge {
                    label: "PASSED, with warnings".into(),
                    class: "warn",
                },
                format!(
                    "No MUST case failed; {} not met.",
                    plural(s.should_failed, "SHOULD case", "SHOULD cases")
                ),
            ),
            _ => (
                Badge {
                    label: "PASSED".into(),
                    class: "pass",
                },
                "No MUST or SHOULD case failed.".to_owned(),
            ),
        };
        let counts = vec![
            Count {
                label: "cases",
                value: s.total,
                class: "total",
            },
            Count {
                label: "passed",
                value: s.pass,
                class: "pass",
            },
            Count {
                label: "MUST failed",
                value: s.must_failed,
                class: "fail",
            },
            Count {
                label: "SHOULD failed",
                value: s.should_failed,
                class: "warn",
            },
            Count {
                label: "expected failures",
                value: s.expected_failures,
                class: "expected",
            },
            Count {
                label: "stale expectations",
                value: s.stale_expectations,
                class: "stale",
            },
            Count {
                label: "skipped",
                value: s.skip,
                class: "skip",
            },
            Count {
                label: "harness errors",
                value: s.harness_error,
                class: "error",
            },
        ];
        let sections = self.sections();
        let details = sections
            .iter()
            .flat_map(|section| section.cases.iter())
            .filter(|case| matches!(case.verdict, "fail" | "harness-error"))
            .map(|case| detail(case))
            .collect();
        let sections = sections
            .iter()
            .map(|section| SectionView {
                id: format!("{}.{}", self.family, section.id),
                title: if section.title.is_empty() {
                    section.id.to_owned()
                } else {
                    section.title.to_owned()
                },
                counts: section_counts(&section.cases),
                rows: section
                    .cases
                    .iter()
                    .map(|case| Row {
                        id: case.id,
                        level: case.level.as_str(),
                        badge: badge(case),
                        title: segs(case.title),
                        spec: segs(case.spec),
                        reason: case.reason.clone().unwrap_or_default(),
                        duration: milliseconds(case.duration_ms),
                        detail: matches!(case.verdict, "fail" | "harness-error"),
                    })
                    .collect(),
            })
            .collect();
        let page = Page {
            family: self.family.clone(),
            target: self.target.clone(),
            started_at: self.started_at.clone(),
            duration: format!("{:.1} s", self.duration_ms / 1000.0),
            tool: self.tool.clone(),
            format: self.format,
            verdict,
            verdict_text,
            exit_code: self.exit_code(),
            counts,
            stale: self
                .cases
                .iter()
                .filter(|case| case.stale_expectation)
                .map(|case| case.id)
                .collect(),
            sections,
            details,
        };
        Ok(page.render()?)
    }
}

#[cfg(test)]
mod tests {
    use super::segs;

    #[test]
    fn code_spans_are_split_out() {
        let parts: Vec<(String, bool)> = segs("a `b` c `d")
            .into_iter()
            .map(|seg| (seg.text, seg.code))
            .collect();
        assert_eq!(
            parts,
            [
                ("a ".to_owned(), false),
                ("b".to_owned(), true),
                (" c ".to_owned(), false),
                ("`d".to_owned(), false)
            ]
        );
    }
}
