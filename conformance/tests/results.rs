//! What the suites' own tests read from a run and check of it: verdicts by
//! case, the cases with a verdict, an explanation of everything that did
//! not pass, a clean run, precision (one fault, one failing case),
//! stability, the catalog, replay bundles (shared by the task,
//! subscription and device suite tests).

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::de::DeserializeOwned;
use specwire_conformance::replay::Bundle;
use specwire_conformance::runner::Selection;
use specwire_conformance::suite::Suite;
use specwire_conformance::verdict::CaseResult;

/// Runs the cases of `S` that `only` admits (all when empty) against
/// `target`.
pub async fn run_only<S: Suite>(target: &S::Target, only: &[&str]) -> Vec<CaseResult> {
    let selection = Selection {
        only: only.iter().map(|id| (*id).to_owned()).collect(),
        skip: Vec::new(),
    };
    specwire_conformance::suite::run::<S>(target, &selection, &mut ()).await
}

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

/// Checks a run against a correct target: nothing fails, nothing is a
/// harness error, every case of `family` ran and the skipped ones are
/// exactly `skipped`. Returns the verdicts (for [`Stable`]).
pub fn assert_clean(
    what: &str,
    family: &str,
    seed: u64,
    results: &[CaseResult],
    skipped: &[&str],
) -> BTreeMap<&'static str, &'static str> {
    let explained = explain(results);
    assert!(
        with_verdict(results, "fail").is_empty()
            && with_verdict(results, "harness-error").is_empty(),
        "{what} (seed {seed}): the reference target must pass:{explained}"
    );
    assert_eq!(
        with_verdict(results, "skip"),
        skipped,
        "{what}: skipped cases:{explained}"
    );
    assert_eq!(
        results.len(),
        specwire_protocol::conformance::cases_of(family).count(),
        "{what}: every case ran"
    );
    verdicts(results)
}

/// Every case of the run is a harness error (an untrusted certificate
/// says nothing about conformance).
pub fn assert_all_harness_errors(results: &[CaseResult]) {
    assert!(!results.is_empty());
    assert_eq!(
        with_verdict(results, "harness-error").len(),
        results.len(),
        "an untrusted certificate says nothing about conformance:{}",
        explain(results)
    );
}

/// Precision: the failing cases are exactly `expected` and every other
/// case keeps its verdict (pass).
pub fn assert_only(results: &[CaseResult], what: &str, expected: &[&str]) {
    assert_only_allowing(results, what, expected, &[]);
}

/// As [`assert_only`], but the cases in `may_fail` may fail or pass (they
/// must still be judged) and are left out of the rest.
pub fn assert_only_allowing(
    results: &[CaseResult],
    what: &str,
    expected: &[&str],
    may_fail: &[&str],
) {
    let explained = explain(results);
    for result in results
        .iter()
        .filter(|result| may_fail.contains(&result.spec.id))
    {
        let name = result.verdict.name();
        assert!(
            name == "pass" || name == "fail",
            "{what}: {} is {name}:{explained}",
            result.spec.id
        );
    }
    let judged: Vec<&CaseResult> = results
        .iter()
        .filter(|result| !may_fail.contains(&result.spec.id) || expected.contains(&result.spec.id))
        .collect();
    let failed: Vec<&str> = judged
        .iter()
        .filter(|result| result.verdict.name() == "fail")
        .map(|result| result.spec.id)
        .collect();
    assert_eq!(failed, expected, "{what}: the failing cases:{explained}");
    let others: Vec<(&str, &str)> = judged
        .iter()
        .filter(|result| !expected.contains(&result.spec.id) && result.verdict.name() != "pass")
        .map(|result| (result.spec.id, result.verdict.name()))
        .collect();
    assert!(
        others.is_empty(),
        "{what}: every other case keeps its verdict (pass): {others:?}{explained}"
    );
}

/// Stability: the verdicts of repeated runs, each the same as the first.
#[derive(Default)]
pub struct Stable {
    first: Option<BTreeMap<&'static str, &'static str>>,
}

impl Stable {
    /// Run `run`'s verdicts: the first are kept, the later must equal them.
    pub fn check(&mut self, run: u64, verdicts: BTreeMap<&'static str, &'static str>) {
        match &self.first {
            None => self.first = Some(verdicts),
            Some(first) => assert_eq!(&verdicts, first, "run {run} differs from run 0"),
        }
    }
}

/// The catalog and suite `S`'s implementations match, and its cases are
/// MUST and SHOULD ones.
pub fn assert_catalog_matches<S: Suite>() {
    let checked = specwire_conformance::suite::check(S::FAMILY, S::registry(), S::RUN_LAST);
    assert_eq!(checked, Ok(()));
    let levels: BTreeSet<_> = specwire_protocol::conformance::cases_of(S::FAMILY)
        .map(|spec| spec.level.as_str())
        .collect();
    assert_eq!(levels, ["MUST", "SHOULD"].into());
}

/// The replay bundle of case `id`'s failure, read back with steps `S`.
pub fn replay_bundle<S: DeserializeOwned>(results: &[CaseResult], id: &str) -> Bundle<S> {
    let result = results
        .iter()
        .find(|result| result.spec.id == id)
        .expect("the case ran");
    let path = result.replay.as_ref().expect("a replay bundle");
    Bundle::<serde_json::Value>::read(Path::new(path))
        .expect("the bundle reads back")
        .typed::<S>()
        .expect("the family's steps")
}
