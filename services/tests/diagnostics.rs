//! DiagnosticsService: every operation, its parameter checks, and prompt
//! cancellation of `sleep`.

mod common;

use std::time::{Duration, Instant};

use common::task;
use serde_json::json;
use specwire_runtime::task::{codes as standard, TaskContext, TaskError, TaskHandler};
use specwire_services::DiagnosticsService;
use specwire_testsupport::{within, within_for};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn noop_returns_an_empty_result_at_once() {
    let run = common::run(&DiagnosticsService::new(), task("noop", json!({}))).await;
    assert!(run.ok().is_empty());
    assert!(run.progress.is_empty());
}

#[tokio::test]
async fn echo_returns_its_parameters() {
    let parameters = json!({"a": 1, "nested": {"b": [true, null]}, "s": "x"});
    let run = common::run(&DiagnosticsService::new(), task("echo", parameters.clone())).await;
    assert_eq!(serde_json::Value::Object(run.ok().clone()), parameters);
    let run = common::run(&DiagnosticsService::new(), task("echo", json!({}))).await;
    assert!(run.ok().is_empty());
}

#[tokio::test]
async fn sleep_sleeps_in_steps_reporting_each() {
    let started = Instant::now();
    let run = common::run(
        &DiagnosticsService::new(),
        task("sleep", json!({"durationMs": 60, "steps": 4})),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(run.ok()["sleptMs"], 60);
    assert_eq!(run.percents(), [25, 50, 75, 100]);
    assert_eq!(
        run.progress[1].message.as_deref(),
        Some("slept 30 of 60 ms")
    );

    let run = common::run(
        &DiagnosticsService::new(),
        task("sleep", json!({"durationMs": 0})),
    )
    .await;
    assert_eq!(run.ok()["sleptMs"], 0);
    assert_eq!(run.progress.len(), 10, "default steps");
    run.assert_progress(10);

    let run = common::run(
        &DiagnosticsService::new(),
        task("sleep", json!({"durationMs": 7, "steps": 3.0})),
    )
    .await;
    assert_eq!(run.percents(), [33, 66, 100]);
}

#[tokio::test]
async fn sleep_stops_promptly_when_cancelled_mid_way() {
    let service = DiagnosticsService::new();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // 100 steps of 3 s: the first report comes after one step, the end
    // never; returning well within a step shows the sleep itself is cut.
    let running = tokio::spawn(service.run(
        task("sleep", json!({"durationMs": 300_000, "steps": 100})),
        TaskContext::new(tx, cancel.clone()),
    ));
    let first = rx.recv().await.expect("a first progress report");
    assert_eq!(first.percent, 1);
    cancel.cancel();
    let prompt = Duration::from_secs(2);
    let result = within_for(prompt, "sleep's return after a cancellation", running)
        .await
        .expect("no panic");
    assert_eq!(result.unwrap_err(), TaskError::cancelled());
    assert!(rx.try_recv().is_err(), "no report after the cancellation");
}

#[tokio::test]
async fn sleep_cancelled_before_it_starts_does_not_sleep() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let run = within(
        "the cancelled sleep's return",
        common::run_with(
            &DiagnosticsService::new(),
            task("sleep", json!({"durationMs": 600_000})),
            cancel,
        ),
    )
    .await;
    assert_eq!(run.err(), &TaskError::cancelled());
    assert!(run.progress.is_empty());
}

#[tokio::test]
async fn fail_fails_with_the_requested_code() {
    let service = DiagnosticsService::new();
    let run = common::run(&service, task("fail", json!({}))).await;
    assert_eq!(
        run.err(),
        &TaskError::new("SIMULATED_FAILURE", "Simulated failure.")
    );
    assert_eq!(run.err().code, specwire_services::codes::SIMULATED_FAILURE);

    let run = common::run(
        &service,
        task(
            "fail",
            json!({"code": "FILE_NOT_FOUND", "message": "Input file not found.",
                   "details": "Could not locate 'x.png'."}),
        ),
    )
    .await;
    assert_eq!(
        run.err(),
        &TaskError::new("FILE_NOT_FOUND", "Input file not found.")
            .with_details("Could not locate 'x.png'.")
    );

    for code in [json!("bad"), json!(""), json!("A-B"), json!(7)] {
        let run = common::run(&service, task("fail", json!({"code": code}))).await;
        assert_eq!(run.err().code, standard::INVALID_PARAMETERS, "{code}");
    }
}

#[tokio::test]
async fn out_of_range_and_unknown_are_refused() {
    let service = DiagnosticsService::new();
    for parameters in [
        json!({}),
        json!({"durationMs": -1}),
        json!({"durationMs": 600_001}),
        json!({"durationMs": 1.5}),
        json!({"durationMs": "10"}),
        json!({"durationMs": 10, "steps": 0}),
        json!({"durationMs": 10, "steps": 101}),
    ] {
        let run = common::run(&service, task("sleep", parameters.clone())).await;
        assert_eq!(run.err().code, standard::INVALID_PARAMETERS, "{parameters}");
        assert!(run.progress.is_empty());
    }
    let run = common::run(&service, task("explode", json!({}))).await;
    assert_eq!(run.err().code, standard::UNKNOWN_OPERATION);
}

#[test]
fn the_description_matches_the_operations() {
    let service = DiagnosticsService::new();
    let description = service.description();
    assert_eq!(description.name, "DiagnosticsService");
    assert_eq!(description.version, env!("CARGO_PKG_VERSION"));
    let operations: Vec<&str> = description
        .operations
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(operations, ["noop", "echo", "sleep", "fail"]);
}
