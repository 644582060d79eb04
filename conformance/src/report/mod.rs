//! The run's report: a JSON document (its schema is
//! `schema/reports/conformance-report.schema.json`), a JUnit XML file for CI,
//! a self-contained HTML page, a terminal summary grouped by spec section,
//! and the exit status.
//!
//! Every form tells the same story as the exit status: a MUST case that
//! failed unexpectedly fails the run, a harness error makes it incomplete,
//! and everything else (SHOULD failures, expected failures, skips, stale
//! expectations) is shown but does not fail it. See [`Outcome`] for how each
//! case is classed, and [`Report::to_junit`] for how that maps onto JUnit.

mod html;
mod junit;

use std::time::{Duration, SystemTime};

use serde::Serialize;
use specwire_protocol::conformance::{Level, SECTIONS};

use crate::runner::ExpectedFailures;
use crate::transcript::{Direction, Entry};
use crate::verdict::{CaseResult, Verdict};

/// A report that could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The JSON report.
    #[error("the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// The JUnit report.
    #[error("the JUnit report: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    /// The HTML report.
    #[error("the HTML report: {0}")]
    Html(#[from] askama::Error),
}

/// The report format's name and version, in every JSON report.
pub const FORMAT: &str = "specwire-conformance-report/1";

/// Counts over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Cases run (or skipped).
    pub total: usize,
    /// Passed.
    pub pass: usize,
    /// Failed, expected failures included.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
    /// Harness errors.
    pub harness_error: usize,
    /// MUST cases that failed and were not expected to.
    pub must_failed: usize,
    /// SHOULD cases that failed and were not expected to (warnings).
    pub should_failed: usize,
    /// Failures listed in `--expect-fail`.
    pub expected_failures: usize,
    /// Cases listed in `--expect-fail` that did not fail.
    pub stale_expectations: usize,
}

/// One case in the report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseReport {
    /// Stable case ID.
    pub id: &'static str,
    /// `MUST` or `SHOULD`.
    pub level: Level,
    /// Section ID.
    pub section: &'static str,
    /// Section title.
    pub section_title: &'static str,
    /// What the case checks.
    pub title: &'static str,
    /// The spec sentence.
    pub spec: &'static str,
    /// Where the sentence is.
    pub source: &'static str,
    /// `pass`, `fail`, `skip`, `harness-error`.
    pub verdict: &'static str,
    /// Why, for anything but a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Listed in `--expect-fail`.
    pub expected_failure: bool,
    /// Listed in `--expect-fail` but did not fail.
    pub stale_expectation: bool,
    /// Milliseconds the case took.
    pub duration_ms: f64,
    /// Seed of a generated case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Replay bundle written for a failed generated case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// Frames sent and received.
    pub transcript: Vec<Entry>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`FORMAT`].
    pub format: &'static str,
    /// `specwire <version>`.
    pub tool: String,
    /// The family.
    pub family: String,
    /// The target (endpoint, or discovery port and address).
    pub target: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// How long the run took.
    pub duration_ms: f64,
    /// Counts.
    pub summary: Summary,
    /// Every case, in run order.
    pub cases: Vec<CaseReport>,
}

/// How a case is shown: its verdict, read together with its level and
/// `--expect-fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Passed, but listed in `--expect-fail`: the list should lose it.
    StalePass,
    /// A MUST case failed, unexpectedly: fails the run.
    Fail,
    /// A SHOULD case failed, unexpectedly: a warning.
    Warn,
    /// Failed, as `--expect-fail` said it would.
    ExpectedFail,
    /// Skipped.
    Skip,
    /// The suite could not carry the case out.
    HarnessError,
}

impl Outcome {
    /// The label the terminal summary and the HTML page show.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::StalePass => "PASS (expected to fail: stale)",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "WARN",
            Outcome::ExpectedFail => "FAIL (expected)",
            Outcome::Skip => "skip",
            Outcome::HarnessError => "ERROR",
        }
    }

    /// Whether the case makes the run fail (exit status 1) or incomplete
    /// (exit status 3).
    pub fn breaks_run(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::HarnessError)
    }
}

impl CaseReport {
    /// How the case is shown.
    pub fn outcome(&self) -> Outcome {
        match self.verdict {
            "pass" if self.stale_expectation => Outcome::StalePass,
            "pass" => Outcome::Pass,
            "fail" if self.expected_failure => Outcome::ExpectedFail,
            "fail" => match self.level {
                Level::Must => Outcome::Fail,
                Level::Should => Outcome::Warn,
            },
            "skip" => Outcome::Skip,
            _ => Outcome::HarnessError,
        }
    }
}

/// A section's cases, for the grouped views.
pub(crate) struct SectionCases<'a> {
    /// Section ID.
    pub id: &'static str,
    /// Section title (empty if the catalog does not know it).
    pub title: &'static str,
    /// Its cases, in run order.
    pub cases: Vec<&'a CaseReport>,
}

/// One transcript entry as a readable line (`  12.3 ms  #1 →  {...}`), as
/// [`Transcript::lines`](crate::transcript::Transcript::lines) writes it.
pub(crate) fn entry_line(entry: &Entry) -> String {
    let kind = if entry.kind == "text" || entry.kind == "note" {
        String::new()
    } else {
        format!("[{}] ", entry.kind)
    };
    format!(
        "{:>9.1} ms  #{} {} {kind}{}",
        entry.at_ms,
        entry.connection,
        arrow(entry.direction),
        entry.data
    )
}

/// `→` sent, `←` received, `·` a note.
pub(crate) fn arrow(direction: Direction) -> &'static str {
    match direction {
        Direction::Sent => "→",
        Direction::Received => "←",
        Direction::Note => "·",
    }
}

fn section_title(family: &str, section: &str) -> &'static str {
    SECTIONS
        .iter()
        .find(|candidate| candidate.family == family && candidate.id == section)
        .map_or("", |candidate| candidate.title)
}

impl Report {
    /// Builds the report of a run.
    pub fn new(
        family: &str,
        target: &str,
        started_at: SystemTime,
        duration: Duration,
        results: &[CaseResult],
        expected: &ExpectedFailures,
    ) -> Report {
        let mut summary = Summary {
            total: results.len(),
            ..Summary::default()
        };
        let cases = results
            .iter()
            .map(|result| {
                let spec = result.spec;
                let expected_failure = expected.contains(spec.id);
                let failed = matches!(result.verdict, Verdict::Fail { .. });
                match &result.verdict {
                    Verdict::Pass => summary.pass += 1,
                    Verdict::Fail { .. } => summary.fail += 1,
                    Verdict::Skip { .. } => summary.skip += 1,
                    Verdict::HarnessError { .. } => summary.harness_error += 1,
                }
                if failed && expected_failure {
                    summary.expected_failures += 1;
                } else if failed {
                    match spec.level {
                        Level::Must => summary.must_failed += 1,
                        Level::Should => summary.should_failed += 1,
                    }
                }
                let stale = expected_failure && result.verdict == Verdict::Pass;
                if stale {
                    summary.stale_expectations += 1;
                }
                CaseReport {
                    id: spec.id,
                    level: spec.level,
                    section: spec.section,
                    section_title: section_title(spec.family, spec.section),
                    title: spec.title,
                    spec: spec.spec,
                    source: spec.source,
                    verdict: result.verdict.name(),
                    reason: result.verdict.reason().map(str::to_owned),
                    expected_failure: expected_failure && failed,
                    stale_expectation: stale,
                    duration_ms: result.duration.as_secs_f64() * 1000.0,
                    seed: result.seed,
                    replay: result.replay.clone(),
                    transcript: result.transcript.entries().to_vec(),
                }
            })
            .collect();
        Report {
            format: FORMAT,
            tool: format!("specwire {}", env!("CARGO_PKG_VERSION")),
            family: family.to_owned(),
            target: target.to_owned(),
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            duration_ms: duration.as_secs_f64() * 1000.0,
            summary,
            cases,
        }
    }

    /// The process exit status: 0 when no MUST case failed unexpectedly and
    /// nothing stopped the harness, 1 when a MUST case failed, 3 when no
    /// MUST case failed but some could not be carried out.
    pub fn exit_code(&self) -> u8 {
        if self.summary.must_failed > 0 {
            1
        } else if self.summary.harness_error > 0 {
            3
        } else {
            0
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, RenderError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The cases grouped by section, sections in catalog order (unknown
    /// ones last), cases in run order.
    pub(crate) fn sections(&self) -> Vec<SectionCases<'_>> {
        let order = |section: &str| {
            SECTIONS
                .iter()
                .position(|candidate| candidate.family == self.family && candidate.id == section)
                .unwrap_or(usize::MAX)
        };
        let mut sections: Vec<(usize, SectionCases<'_>)> = Vec::new();
        for case in &self.cases {
            match sections
                .iter_mut()
                .find(|(_, section)| section.id == case.section)
            {
                Some((_, section)) => section.cases.push(case),
                None => sections.push((
                    order(case.section),
                    SectionCases {
                        id: case.section,
                        title: case.section_title,
                        cases: vec![case],
                    },
                )),
            }
        }
        sections.sort_by(|(a, x), (b, y)| a.cmp(b).then(x.id.cmp(y.id)));
        sections.into_iter().map(|(_, section)| section).collect()
    }

    /// A terminal summary grouped by section; `colour` adds ANSI colours.
    pub fn to_text(&self, colour: bool) -> String {
        let paint = |code: &str, text: &str| {
            if colour {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let mut out = format!(
            "specwire conformance {} against {}\n",
            self.family, self.target
        );
        for section in self.sections() {
            out.push_str(&format!("\n{}\n", paint("1", section.title)));
            for case in section.cases {
                let outcome = case.outcome();
                let code = match outcome {
                    Outcome::Pass => "32",
                    Outcome::Fail => "31",
                    Outcome::StalePass | Outcome::Warn | Outcome::ExpectedFail => "33",
                    Outcome::Skip => "2",
                    Outcome::HarnessError => "35",
                };
                let mark = paint(code, outcome.label());
                out.push_str(&format!(
                    "  {mark:<6} {:<6} {}  {}\n",
                    case.level.as_str(),
                    case.id,
                    case.title
                ));
                if let Some(reason) = &case.reason {
                    if case.verdict != "pass" {
                        out.push_str(&format!("           {}\n", paint("2", reason)));
                    }
                }
            }
        }
        let s = &self.summary;
        out.push_str(&format!(
            "\n{} cases: {} passed, {} failed ({} MUST, {} SHOULD, {} expected), {} skipped, {} harness errors, {:.1} s\n",
            s.total,
            s.pass,
            s.fail,
            s.must_failed,
            s.should_failed,
            s.expected_failures,
            s.skip,
            s.harness_error,
            self.duration_ms / 1000.0
        ));
        if s.stale_expectations > 0 {
            out.push_str(&format!(
                "{} case(s) listed in --expect-fail passed: remove them from the file\n",
                s.stale_expectations
            ));
        }
        out
    }
}
