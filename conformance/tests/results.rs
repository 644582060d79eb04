//! What the suites' own tests read from a run: verdicts by case, the
//! cases with a verdict, and an explanation of everything that did not
//! pass (shared by the task, subscription and device suite tests).

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;

use specwire_conformance::verdict::CaseResult;

/// The verdict names of a run, by case id.
pub fn verdicts(results: &[CaseResult]) -> BTreeMap<&'static str, &'static str> {
    results
        .iter()
        .map(|result| (result.spec.id, result.verdict.name()))
        .collect()
}

/// The ids of the cases with verdict `name`.
pub fn with_verdict<'a>(results: &'a [CaseResult], name: &str) -> Vec<&'a str> {
    results
        .iter()
        .filter(|result| result.verdict.name() == name)
        .map(|result| result.spec.id)
        .collect()
}

/// Every non-passing case with its reason (and, for failures and harness
/// errors, its transcript): what an assertion message shows.
pub fn explain(results: &[CaseResult]) -> String {
    let mut text = String::new();
    for result in results {
        let name = result.verdict.name();
        if name == "pass" {
            continue;
        }
        text.push_str(&format!(
            "\n{} [{}]: {}",
            result.spec.id,
            name,
            result.verdict.reason().unwrap_or("")
        ));
        if name != "skip" {
            for line in result.transcript.lines() {
                text.push_str(&format!("\n      {line}"));
            }
        }
    }
    text
}
