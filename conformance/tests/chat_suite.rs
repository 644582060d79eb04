//! Tests of the chat suite itself.
//!
//! - Recall and no false alarms: the suite passes against the reference
//!   server with its default choices and with every alternative the
//!   profile allows (a taken name suffixed with the port, users with
//!   addresses, a welcome to the joiner), well within 10 s.
//! - Stability: repeated runs against one server give identical verdicts.
//! - The catalog and the implementations match.
//! - Precision: for each MUST case (and the SHOULD ones), a server with
//!   one deliberate fault (a [`FaultProxy`] in front of the reference
//!   server) fails that case and no other.

mod chat_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_support::*;
use specwire_conformance::chat::ChatTarget;
use specwire_conformance::verdict::CaseResult;

/// Runs the whole suite against `target`; nothing fails, nothing is a
/// harness error, nothing is skipped. Returns the verdicts.
async fn expect_clean_run(what: &str, target: &ChatTarget) -> BTreeMap<&'static str, &'static str> {
    let started = Instant::now();
    let results = run_results(target, &[]).await;
    let took = started.elapsed();
    let verdicts = assert_clean(what, "chat", target.seed, &results, &[]);
    let mut by_time: Vec<&CaseResult> = results.iter().collect();
    by_time.sort_by_key(|result| std::cmp::Reverse(result.duration));
    let slowest: Vec<String> = by_time
        .iter()
        .take(4)
        .map(|result| format!("{} {:?}", result.spec.id, result.duration))
        .collect();
    eprintln!(
        "{what}: {} cases in {took:?} (slowest: {})",
        results.len(),
        slowest.join(", ")
    );
    assert!(took < Duration::from_secs(10), "{what}: {took:?}");
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes_with_its_defaults() {
    let server = start_server(Choices::Default).await;
    expect_clean_run("defaults", &target(&server.local_addr().to_string())).await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes_with_every_alternative() {
    let server = start_server(Choices::Alternatives).await;
    expect_clean_run("alternatives", &target(&server.local_addr().to_string())).await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_stable_over_runs_against_one_server() {
    let server = start_server(Choices::Default).await;
    let mut stable = Stable::default();
    for run in 0..3 {
        let mut target = target(&server.local_addr().to_string());
        // Another generated-session seed each run: any seed must pass.
        target.seed = DEFAULT_SEED + run * 1000;
        stable.check(run, expect_clean_run(&format!("run {run}"), &target).await);
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn the_catalog_and_the_implementations_match() {
    assert_catalog_matches::<specwire_conformance::chat::ChatSuite>();
}
