//! The report as JUnit XML, for CI systems that show test results.
//!
//! The JUnit counts agree with the exit status: `failures` are exactly the
//! MUST cases that failed unexpectedly (exit status 1) and `errors` the
//! harness errors (exit status 3). What does not fail the run is not a
//! JUnit failure:
//!
//! | outcome | JUnit |
//! | --- | --- |
//! | pass | passed test case |
//! | MUST fail | `<failure type="MUST" message="reason">` + details and transcript |
//! | SHOULD fail (a warning) | passed test case; `<system-out>` starts with `warning: SHOULD not met: reason`, then details and transcript |
//! | expected failure (`--expect-fail`) | `<skipped type="expected-failure" message="expected failure: reason">` + details and transcript (as pytest reports `xfail`) |
//! | stale expectation | passed test case; `<system-out>` says to remove it from the `--expect-fail` file |
//! | skip | `<skipped type="skip" message="reason">` |
//! | harness error | `<error type="harness-error" message="reason">` + transcript |
//!
//! Every test case also carries properties (`level`, `verdict`, `title`,
//! `spec`, `source`, and `seed`/`replay` when set), so a reader that knows
//! them can tell a warning from a pass.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{entry_line, CaseReport, Outcome, Report};

fn seconds(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_secs_f64(ms / 1000.0)
    } else {
        Duration::ZERO
    }
}

/// What the case checks, its seed and replay, and its transcript: the body
/// of a failure, an error or a warning.
fn details(case: &CaseReport) -> String {
    let mut out = format!(
        "{}\n{}: \u{201c}{}\u{201d} ({})\n",
        case.title,
        case.level.as_str(),
        case.spec,
        case.source
    );
    if let Some(seed) = case.seed {
        out.push_str(&format!("seed: {seed}\n"));
    }
    if let Some(replay) = &case.replay {
        out.push_str(&format!("replay: {replay}\n"));
    }
    if case.transcript.is_empty() {
        out.push_str("\ntranscript: nothing was sent or received\n");
    } else {
        out.push_str("\ntranscript:\n");
        for entry in &case.transcript {
            out.push_str(&entry_line(entry));
            out.push('\n');
        }
    }
    out
}

fn test_case(report: &Report, case: &CaseReport) -> TestCase {
    let reason = case.reason.as_deref().unwrap_or("");
    let mut warning = None;
    let status = match case.outcome() {
        Outcome::Pass => TestCaseStatus::success(),
        Outcome::StalePass => {
            warning = Some(format!(
                "listed in --expect-fail but passed: remove {} from the file\n",
                case.id
            ));
            TestCaseStatus::success()
        }
        Outcome::Warn => {
            warning = Some(format!(
                "warning: SHOULD not met: {reason}\n\n{}",
                details(case)
            ));
            TestCaseStatus::success()
        }
        Outcome::Fail => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_type("MUST")
                .set_message(reason)
                .set_description(details(case));
            status
        }
        Outcome::ExpectedFail => {
            let mut status = TestCaseStatus::skipped();
            status
                .set_type("expected-failure")
                .set_message(format!("expected failure: {reason}"))
                .set_description(details(case));
            status
        }
        Outcome::Skip => {
            let mut status = TestCaseStatus::skipped();
            status.set_type("skip").set_message(reason);
            status
        }
        Outcome::HarnessError => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status
                .set_type("harness-error")
                .set_message(reason)
                .set_description(details(case));
            status
        }
    };
    let mut test = TestCase::new(case.id, status);
    test.set_classname(format!("{}.{}", report.family, case.section))
        .set_time(seconds(case.duration_ms));
    test.add_properties([
        Property::new("level", case.level.as_str()),
        Property::new("verdict", case.verdict),
        Property::new("title", case.title),
        Property::new("spec", case.spec),
        Property::new("source", case.source),
    ]);
    if case.expected_failure {
        test.add_property(Property::new("expectedFailure", "true"));
    }
    if case.stale_expectation {
        test.add_property(Property::new("staleExpectation", "true"));
    }
    if let Some(seed) = case.seed {
        test.add_property(Property::new("seed", seed.to_string()));
    }
    if let Some(replay) = &case.replay {
        test.add_property(Property::new("replay", replay.as_str()));
    }
    if let Some(warning) = warning {
        test.set_system_out(warning);
    }
    test
}

impl Report {
    /// The report as JUnit XML: one `<testsuite>` per spec section (named
    /// `<family>.<section>`, its title in a `title` property), one
    /// `<testcase>` per case (named by case ID, classname
    /// `<family>.<section>`), times in seconds. The JUnit counts agree with
    /// the exit status; the module documentation lists how each outcome
    /// maps (a SHOULD failure is a passed test case with a warning in
    /// `<system-out>`, an expected failure is skipped).
    pub fn to_junit(&self) -> Result<String, super::RenderError> {
        let mut junit = quick_junit::Report::new(format!("specwire conformance {}", self.family));
        junit.set_time(seconds(self.duration_ms));
        if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&self.started_at) {
            junit.set_timestamp(started);
        }
        for section in self.sections() {
            let mut suite = TestSuite::new(format!("{}.{}", self.family, section.id));
            suite.add_properties([
                Property::new("title", section.title),
                Property::new("family", self.family.as_str()),
                Property::new("target", self.target.as_str()),
                Property::new("startedAt", self.started_at.as_str()),
                Property::new("tool", self.tool.as_str()),
            ]);
            suite.set_time(seconds(
                section.cases.iter().map(|case| case.duration_ms).sum(),
            ));
            suite.add_test_cases(section.cases.iter().map(|case| test_case(self, case)));
            junit.add_test_suite(suite);
        }
        Ok(junit.to_string()?)
    }
}
