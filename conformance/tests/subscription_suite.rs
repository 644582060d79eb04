//! Tests of the subscription suite itself.

mod subscription_support;

use std::time::{Duration, Instant};

use subscription_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes() {
    let hub = start_reference(None).await;
    let target = target(&hub.endpoint());
    let started = Instant::now();
    let results = run_results(&target, &[]).await;
    eprintln!("{} cases in {:?}", results.len(), started.elapsed());
    for result in &results {
        eprintln!(
            "{} {} {:?}",
            result.spec.id,
            result.verdict.name(),
            result.duration
        );
    }
    let explained = explain(&results);
    assert!(
        with_verdict(&results, "fail").is_empty()
            && with_verdict(&results, "harness-error").is_empty(),
        "{explained}"
    );
    hub.shutdown(Duration::from_secs(1)).await;
}
