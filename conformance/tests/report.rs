//! The report forms (JSON, JUnit XML, HTML) and the exit status, built from
//! synthetic results over real catalog cases.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use quick_xml::events::Event;
use serde_json::Value;
use specwire_conformance::report::{Outcome, Report, FORMAT};
use specwire_conformance::runner::ExpectedFailures;
use specwire_conformance::transcript::{Direction, Transcript};
use specwire_conformance::verdict::{CaseResult, Verdict};
use specwire_protocol::conformance::{CaseSpec, Level, CASES};

const TARGET: &str = "ws://127.0.0.1:9000";

/// Data a hostile or broken target could send: markup, quotes, ampersands.
const NASTY: &str = r#"{"type":"Error","payload":{"message":"<script>alert(\"&amp;\")</script> & \"quoted\" 'single' </td></table>"}}"#;

fn must(index: usize) -> &'static CaseSpec {
    CASES
        .iter()
        .filter(|case| case.family == "task" && case.level == Level::Must)
        .nth(index)
        .expect("enough task MUST cases")
}

fn should(index: usize) -> &'static CaseSpec {
    CASES
        .iter()
        .filter(|case| case.family == "task" && case.level == Level::Should)
        .nth(index)
        .expect("enough task SHOULD cases")
}

fn transcript() -> Transcript {
    let mut transcript = Transcript::new();
    transcript.note(1, "connected to ws://127.0.0.1:9000");
    transcript.record(
        Direction::Sent,
        1,
        "text",
        r#"{"type":"AssignTask","messageId":"m-1"}"#,
    );
    transcript.record(Direction::Received, 1, "text", NASTY);
    transcript.record(Direction::Received, 1, "binary", "3c7363726970743e");
    transcript.record(Direction::Sent, 1, "close", "1000");
    transcript
}

fn result(spec: &'static CaseSpec, verdict: Verdict) -> CaseResult {
    let transcript = if matches!(verdict, Verdict::Pass | Verdict::Skip { .. }) {
        Transcript::new()
    } else {
        transcript()
    };
    CaseResult {
        spec,
        verdict,
        duration: Duration::from_millis(42),
        transcript,
        seed: None,
        replay: None,
    }
}

fn pass(spec: &'static CaseSpec) -> CaseResult {
    result(spec, Verdict::Pass)
}

fn fail(spec: &'static CaseSpec) -> CaseResult {
    result(
        spec,
        Verdict::Fail {
            reason: format!(
                "expected an Ack, got <script>alert(1)</script> for {}",
                spec.id
            ),
        },
    )
}

fn skip(spec: &'static CaseSpec) -> CaseResult {
    result(
        spec,
        Verdict::Skip {
            reason: "needs --tasks FILE with a `succeeds` task".into(),
        },
    )
}

fn harness(spec: &'static CaseSpec) -> CaseResult {
    result(
        spec,
        Verdict::HarnessError {
            reason: "could not connect: connection refused \"&\"".into(),
        },
    )
}

fn expect(ids: &[&str]) -> ExpectedFailures {
    ExpectedFailures(ids.iter().map(|id| (*id).to_owned()).collect())
}

fn report(results: &[CaseResult], expected: &ExpectedFailures) -> Report {
    Report::new(
        "task",
        TARGET,
        SystemTime::now(),
        Duration::from_millis(1234),
        results,
        expected,
    )
}

/// One case of every outcome: MUST pass, MUST fail, SHOULD fail, skip,
/// harness error, expected failure, stale expectation, and a failed
/// generated case with seed and replay bundle.
fn mixed() -> (Vec<CaseResult>, ExpectedFailures) {
    let mut generated = fail(must(6));
    generated.seed = Some(u64::MAX);
    generated.replay = Some("target/replays/<session> & co.json".into());
    let results = vec![
        pass(must(0)),
        fail(must(1)),
        fail(should(0)),
        skip(must(2)),
        harness(must(3)),
        fail(must(4)),
        pass(must(5)),
        generated,
    ];
    (results, expect(&[must(4).id, must(5).id]))
}

fn mixed_report() -> Report {
    let (results, expected) = mixed();
    report(&results, &expected)
}

// ---------------------------------------------------------------------------
// Summary and exit status

#[test]
fn summary_counts_every_outcome() {
    let report = mixed_report();
    let s = &report.summary;
    assert_eq!(s.total, 8);
    assert_eq!(s.pass, 2);
    assert_eq!(s.fail, 4);
    assert_eq!(s.skip, 1);
    assert_eq!(s.harness_error, 1);
    assert_eq!(s.must_failed, 2);
    assert_eq!(s.should_failed, 1);
    assert_eq!(s.expected_failures, 1);
    assert_eq!(s.stale_expectations, 1);
    assert_eq!(report.exit_code(), 1);
    let outcomes: Vec<Outcome> = report.cases.iter().map(|case| case.outcome()).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Pass,
            Outcome::Fail,
            Outcome::Warn,
            Outcome::Skip,
            Outcome::HarnessError,
            Outcome::ExpectedFail,
            Outcome::StalePass,
            Outcome::Fail,
        ]
    );
}

#[test]
fn exit_status_follows_must_failures_and_harness_errors() {
    let none = ExpectedFailures::default();
    let exit =
        |results: &[CaseResult], expected: &ExpectedFailures| report(results, expected).exit_code();

    assert_eq!(
        exit(&[pass(must(0)), pass(should(0))], &none),
        0,
        "all pass"
    );
    assert_eq!(exit(&[], &none), 0, "nothing ran");
    assert_eq!(
        exit(&[pass(must(0)), fail(must(1))], &none),
        1,
        "a MUST failure"
    );
    assert_eq!(
        exit(&[pass(must(0)), fail(should(0))], &none),
        0,
        "SHOULD failures only warn"
    );
    assert_eq!(
        exit(&[pass(must(0)), harness(must(1))], &none),
        3,
        "harness errors only"
    );
    assert_eq!(
        exit(&[fail(must(0)), harness(must(1))], &none),
        1,
        "a MUST failure outranks a harness error"
    );
    assert_eq!(
        exit(&[skip(must(0))], &none),
        0,
        "skips do not fail the run"
    );

    let expected = expect(&[must(0).id]);
    let only_expected = report(&[fail(must(0)), pass(must(1))], &expected);
    assert_eq!(
        only_expected.exit_code(),
        0,
        "expected failures do not count"
    );
    assert_eq!(only_expected.summary.must_failed, 0);
    assert_eq!(only_expected.summary.expected_failures, 1);
    assert_eq!(only_expected.summary.fail, 1);
    assert!(only_expected.cases[0].expected_failure);

    let stale = report(&[pass(must(0))], &expected);
    assert_eq!(
        stale.exit_code(),
        0,
        "a stale expectation does not fail the run"
    );
    assert_eq!(stale.summary.stale_expectations, 1);
    assert!(stale.cases[0].stale_expectation && !stale.cases[0].expected_failure);
    assert!(stale.to_text(false).contains("remove them from the file"));

    // Skipped or erroring cases listed in --expect-fail are neither.
    let neither = report(&[skip(must(0))], &expected);
    assert_eq!(
        neither.summary.stale_expectations + neither.summary.expected_failures,
        0
    );
}

#[test]
fn text_summary_groups_by_section_in_catalog_order() {
    let report = mixed_report();
    let text = report.to_text(false);
    for case in &report.cases {
        assert!(text.contains(case.id), "{} missing from\n{text}", case.id);
    }
    assert!(text.contains("WARN") && text.contains("FAIL (expected)") && text.contains("ERROR"));
    assert!(text.contains(
        "8 cases: 2 passed, 4 failed (2 MUST, 1 SHOULD, 1 expected), 1 skipped, 1 harness errors"
    ));
    let positions: Vec<usize> = report
        .cases
        .iter()
        .map(|case| text.find(case.section_title).expect("section title shown"))
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    // The catalog lists sections in order and cases by section, so run
    // order and section order agree here.
    assert_eq!(positions, sorted);
    assert!(report.to_text(true).contains("\x1b[31mFAIL\x1b[0m"));
}

// ---------------------------------------------------------------------------
// JSON and its schema

fn schema() -> Value {
    let path =
        specwire_testsupport::workspace().join("schema/reports/conformance-report.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    let schema = schema();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema 2020-12 document");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn problems(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| format!("{error} at {}", error.instance_path().as_str()))
        .collect()
}

#[test]
fn json_validates_against_its_schema() {
    let validator = validator();
    let (results, expected) = mixed();
    let json: Value = serde_json::from_str(
        &report(&results, &expected)
            .to_json()
            .expect("the JSON report renders"),
    )
    .expect("JSON");
    assert_eq!(problems(&validator, &json), Vec::<String>::new());
    assert_eq!(json["format"], FORMAT);
    assert_eq!(json["cases"].as_array().map(Vec::len), Some(8));
    // Every optional field appears somewhere, so the schema saw it.
    let generated = &json["cases"][7];
    assert_eq!(generated["seed"], serde_json::json!(u64::MAX));
    assert!(generated["replay"].is_string());
    assert!(json["cases"][0].get("reason").is_none());
    assert_eq!(json["cases"][1]["transcript"][2]["data"], NASTY);
    assert_eq!(json["cases"][1]["transcript"][2]["direction"], "received");

    for results in [
        vec![],
        vec![pass(must(0))],
        vec![harness(must(0)), skip(should(0))],
    ] {
        let json: Value = serde_json::from_str(
            &report(&results, &ExpectedFailures::default())
                .to_json()
                .expect("the JSON report renders"),
        )
        .expect("JSON");
        assert_eq!(problems(&validator, &json), Vec::<String>::new());
    }
}

#[test]
fn schema_rejects_what_to_json_never_writes() {
    let validator = validator();
    let json: Value =
        serde_json::from_str(&mixed_report().to_json().expect("the JSON report renders"))
            .expect("JSON");
    let broken = |pointer: &str, change: &dyn Fn(&mut Value)| {
        let mut copy = json.clone();
        change(
            copy.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer} exists")),
        );
        assert!(!validator.is_valid(&copy), "{pointer}: change not caught");
    };
    let add = |value: &mut Value| {
        value
            .as_object_mut()
            .expect("object")
            .insert("extra".into(), Value::Bool(true));
    };
    broken("", &add);
    broken("/summary", &add);
    broken("/cases/1", &add);
    broken("/cases/1/transcript/0", &add);
    broken("/format", &|value| {
        *value = "specwire-conformance-report/2".into()
    });
    broken("/startedAt", &|value| *value = "yesterday".into());
    broken("/cases/1/id", &|value| *value = "Task Envelope".into());
    broken("/cases/1/level", &|value| *value = "MAY".into());
    broken("/cases/1/verdict", &|value| *value = "error".into());
    broken("/cases/1/transcript/0/direction", &|value| {
        *value = "sideways".into()
    });
    broken("/cases/1/transcript/0/atMs", &|value| *value = (-1).into());
    broken("/cases/1", &|value| {
        value.as_object_mut().expect("object").remove("reason");
    });
    broken("/cases/0", &|value| {
        value
            .as_object_mut()
            .expect("object")
            .insert("reason".into(), "why".into());
    });
    broken("/cases/0/expectedFailure", &|value| *value = true.into());
    broken("/cases/1/staleExpectation", &|value| *value = true.into());
    broken("/summary", &|value| {
        value.as_object_mut().expect("object").remove("mustFailed");
    });
}

// ---------------------------------------------------------------------------
// JUnit

/// Element counts of an XML document, checked for well-formedness on the way.
fn elements(xml: &str) -> BTreeMap<String, usize> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut counts = BTreeMap::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => {
                depth += 1;
                *counts
                    .entry(String::from_utf8_lossy(element.name().as_ref()).into_owned())
                    .or_insert(0) += 1;
            }
            Ok(Event::Empty(element)) => {
                *counts
                    .entry(String::from_utf8_lossy(element.name().as_ref()).into_owned())
                    .or_insert(0) += 1;
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(error) => panic!(
                "not well-formed XML at {}: {error}\n{xml}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    counts
}

#[test]
fn junit_has_a_suite_per_section_and_a_case_per_case() {
    let report = mixed_report();
    let xml = report.to_junit().expect("the JUnit report renders");
    assert!(xml.starts_with("<?xml"));
    let counts = elements(&xml);
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    let sections: BTreeSet<&str> = report.cases.iter().map(|case| case.section).collect();
    assert_eq!(count("testsuites"), 1);
    assert_eq!(count("testsuite"), sections.len());
    assert_eq!(count("testcase"), 8);
    assert_eq!(count("failure"), 2, "the two unexpected MUST failures");
    assert_eq!(count("error"), 1, "the harness error");
    assert_eq!(count("skipped"), 2, "the skip and the expected failure");
    assert_eq!(
        count("system-out"),
        2,
        "the SHOULD warning and the stale expectation"
    );
    assert!(
        !xml.contains("<script>"),
        "markup from the target is escaped"
    );
}

#[test]
fn junit_carries_reasons_transcripts_and_times() {
    let report = mixed_report();
    let junit = quick_junit::Report::deserialize_from_str(
        &report.to_junit().expect("the JUnit report renders"),
    )
    .expect("quick-junit reads it back");
    assert_eq!(
        (junit.tests, junit.failures, junit.errors, junit.skipped),
        (8, 2, 1, 2)
    );
    assert!(junit.timestamp.is_some());
    assert_eq!(junit.time, Some(Duration::from_millis(1234)));
    let cases: BTreeMap<&str, (&str, &quick_junit::TestCase)> = junit
        .test_suites
        .iter()
        .flat_map(|suite| {
            suite
                .test_cases
                .iter()
                .map(move |case| (case.name.as_str(), (suite.name.as_str(), case)))
        })
        .collect();
    for case in &report.cases {
        let (suite, test) = cases
            .get(case.id)
            .unwrap_or_else(|| panic!("{} missing", case.id));
        let class = format!("task.{}", case.section);
        assert_eq!(*suite, class);
        assert_eq!(test.classname.as_deref(), Some(class.as_str()));
        assert_eq!(test.time, Some(Duration::from_millis(42)));
        let property = |name: &str| {
            test.properties
                .iter()
                .find(|property| property.name.as_str() == name)
                .map(|property| property.value.as_str().to_owned())
        };
        assert_eq!(property("level").as_deref(), Some(case.level.as_str()));
        assert_eq!(property("verdict").as_deref(), Some(case.verdict));
        let reason = case.reason.as_deref().unwrap_or_default();
        match (&test.status, case.outcome()) {
            (quick_junit::TestCaseStatus::Success { .. }, Outcome::Pass) => {
                assert!(test.system_out.is_none())
            }
            (quick_junit::TestCaseStatus::Success { .. }, Outcome::Warn) => {
                let out = test.system_out.as_deref().expect("a warning");
                assert!(out.starts_with(&format!("warning: SHOULD not met: {reason}")));
                assert!(out.contains(NASTY), "the transcript is in the warning");
            }
            (quick_junit::TestCaseStatus::Success { .. }, Outcome::StalePass) => {
                assert!(test
                    .system_out
                    .as_deref()
                    .expect("a note")
                    .contains("--expect-fail"));
            }
            (
                quick_junit::TestCaseStatus::NonSuccess {
                    kind,
                    message,
                    ty,
                    description,
                    ..
                },
                outcome @ (Outcome::Fail | Outcome::HarnessError),
            ) => {
                let (want_kind, want_ty) = if outcome == Outcome::Fail {
                    (quick_junit::NonSuccessKind::Failure, "MUST")
                } else {
                    (quick_junit::NonSuccessKind::Error, "harness-error")
                };
                assert_eq!(*kind, want_kind);
                assert_eq!(ty.as_deref(), Some(want_ty));
                assert_eq!(message.as_deref(), Some(reason));
                let description = description.as_deref().expect("details");
                assert!(description.contains(NASTY), "transcript in:\n{description}");
                assert!(description.contains("#1 ← [binary] 3c7363726970743e"));
                if let Some(seed) = case.seed {
                    assert!(description.contains(&format!("seed: {seed}")));
                }
            }
            (quick_junit::TestCaseStatus::Skipped { message, ty, .. }, Outcome::Skip) => {
                assert_eq!(ty.as_deref(), Some("skip"));
                assert_eq!(message.as_deref(), Some(reason));
            }
            (
                quick_junit::TestCaseStatus::Skipped {
                    message,
                    ty,
                    description,
                },
                Outcome::ExpectedFail,
            ) => {
                assert_eq!(ty.as_deref(), Some("expected-failure"));
                assert_eq!(
                    message.as_deref(),
                    Some(format!("expected failure: {reason}").as_str())
                );
                assert!(description.as_deref().expect("details").contains(NASTY));
            }
            (status, outcome) => panic!("{}: {outcome:?} written as {status:?}", case.id),
        }
    }
    let suite = &junit.test_suites[0];
    let title = suite
        .properties
        .iter()
        .find(|property| property.name.as_str() == "title")
        .expect("a title");
    assert_eq!(title.value.as_str(), report.cases[0].section_title);
}

#[test]
fn junit_of_an_empty_run_is_valid() {
    let xml = report(&[], &ExpectedFailures::default())
        .to_junit()
        .expect("the JUnit report renders");
    let counts = elements(&xml);
    assert_eq!(counts.get("testsuites"), Some(&1));
    assert_eq!(counts.get("testcase"), None);
}

// ---------------------------------------------------------------------------
// HTML

/// Escapes text the way askama does.
fn escape(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Reverses HTML escaping (askama's numeric entities and the named ones),
/// in one pass so `&#38;amp;` reads back as `&amp;`.
fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(index) = rest.find('&') {
        out.push_str(&rest[..index]);
        rest = &rest[index..];
        let end = rest.find(';').expect("entity closed");
        out.push(match &rest[1..end] {
            "#60" | "lt" => '<',
            "#62" | "gt" => '>',
            "#34" | "quot" => '"',
            "#39" | "#x27" => '\'',
            "#38" | "amp" => '&',
            other => panic!("unexpected entity &{other};"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The unescaped text of every cell opened by `opening`; escaped text has
/// no `<`, so the next `</td>` ends the cell.
fn cells(html: &str, opening: &str) -> Vec<String> {
    html.match_indices(opening)
        .map(|(index, _)| {
            let rest = &html[index + opening.len()..];
            let text = &rest[..rest.find("</td>").expect("cell closed")];
            assert!(!text.contains('<'), "markup in a text cell: {text}");
            unescape(text)
        })
        .collect()
}

#[test]
fn html_shows_every_case_and_escapes_the_transcript() {
    let report = mixed_report();
    let html = report.to_html().expect("the HTML report renders");
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..200.min(html.len())]
    );
    for case in &report.cases {
        assert!(
            html.contains(&format!("<code>{}</code>", case.id)),
            "{} missing",
            case.id
        );
    }
    // No markup from the target or a reason gets through, and what is
    // shown reads back as what was received.
    assert!(
        !html.to_lowercase().contains("<script"),
        "raw <script> in the page"
    );
    assert!(!html.contains("</td></table>\"") && !html.contains("'single' </td>"));
    let data = cells(&html, "<td class=\"data\">");
    assert!(
        data.iter().any(|cell| cell == NASTY),
        "the received frame, escaped: {data:?}"
    );
    let reasons = cells(&html, "<td class=\"reason\">");
    assert!(reasons.contains(&report.cases[1].reason.clone().expect("a reason")));
    assert!(html.contains(&escape("target/replays/<session> & co.json")));
    // Header and counts.
    assert!(html.contains(TARGET));
    assert!(html.contains(&report.started_at));
    assert!(html.contains("FAILED") && html.contains("Exit status 1."));
    for (label, value) in [
        ("MUST failed", 2),
        ("SHOULD failed", 1),
        ("harness errors", 1),
        ("stale expectations", 1),
    ] {
        assert!(
            html.contains(&format!("<strong>{value}</strong>{label}")),
            "count {label}"
        );
    }
    // Marks.
    assert!(html.contains("FAIL (expected)"));
    assert!(html.contains("PASS (expected to fail: stale)"));
    assert!(html.contains("WARN"));
    assert!(html.contains(&format!(
        "remove <a href=\"#{0}\"><code>{0}</code></a> from the file",
        must(5).id
    )));
}

#[test]
fn html_details_every_failure_and_harness_error_with_its_transcript() {
    let report = mixed_report();
    let html = report.to_html().expect("the HTML report renders");
    for case in &report.cases {
        let anchor = format!("id=\"failure-{}\"", case.id);
        let detailed = matches!(case.verdict, "fail" | "harness-error");
        assert_eq!(
            html.contains(&anchor),
            detailed,
            "{}: detail shown = {detailed}",
            case.id
        );
        if detailed {
            let start = html.find(&anchor).expect("detail");
            let section = &html[start..];
            let section = &section[..section.find("</details>").expect("transcript")];
            assert!(section.contains(&escape(NASTY)), "{}: transcript", case.id);
            assert!(section.contains("<td class=\"dir\" title=\"received\">←</td>"));
            assert!(section.contains("<td class=\"dir\" title=\"sent\">→</td>"));
            assert!(section.contains("<td>#1</td>"));
            assert!(section.contains("3c7363726970743e"));
            // Open for what fails the run, closed for warnings and expected failures.
            assert_eq!(
                section.contains("<details open>"),
                case.outcome().breaks_run(),
                "{}",
                case.id
            );
        }
    }
    assert!(
        html.contains(&format!("<code>{}</code>", u64::MAX)),
        "seed shown"
    );
}

#[test]
fn html_is_self_contained() {
    let html = mixed_report().to_html().expect("the HTML report renders");
    let lower = html.to_lowercase();
    for needle in [
        "src=", "<link", "<script", "<iframe", "<img", "@import", "url(", "http://", "https://",
    ] {
        assert!(
            !lower.contains(needle),
            "`{needle}` in a self-contained page"
        );
    }
    // Every link stays in the page.
    for (index, _) in lower.match_indices("href=\"") {
        let target = &lower[index + 6..];
        assert!(
            target.starts_with('#'),
            "link out of the page: {}",
            &target[..40.min(target.len())]
        );
    }
    assert!(html.contains("<style>"));
}

#[test]
fn html_of_an_empty_run_renders() {
    let html = report(&[], &ExpectedFailures::default())
        .to_html()
        .expect("the HTML report renders");
    assert!(html.contains("No case ran.") && html.contains("PASSED"));
}
