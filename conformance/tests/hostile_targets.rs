//! The task suite against targets that misbehave in ways that used to make
//! it hang: one that accepts connections and never answers, one that
//! never completes the WebSocket handshake, one that answers only some
//! messages, and a provider whose `Ack`s misspell `acknowledgmentId`
//! (with an API key, so every connection authenticates). Whatever the
//! target does, the run ends within the bound the options predict
//! ([`task::run_bound`]), no case runs into its own limit, and every case
//! that could not be carried out says why.

mod task_support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_conformance::runner::Selection;
use specwire_conformance::task::{self, TaskTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_testsupport::{within_for, Acceptor};
use task_support::*;
use tokio_tungstenite::tungstenite::Message as Frame;

/// How a hand-made hostile target behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hostility {
    /// Completes the WebSocket handshake, then reads and never writes.
    Silent,
    /// Accepts TCP connections and never answers the HTTP upgrade.
    NoHandshake,
    /// Answers an `AssignTask` at once with `TaskFailed UNKNOWN_OPERATION`
    /// and nothing else, ever.
    OnlyAssign,
}

/// Serves `hostility` on 127.0.0.1:0 until dropped.
async fn start_hostile(hostility: Hostility) -> Acceptor {
    Acceptor::start(move |stream| serve(stream, hostility)).await
}

async fn serve(stream: tokio::net::TcpStream, hostility: Hostility) {
    if hostility == Hostility::NoHandshake {
        // Hold the connection open without a word until the peer leaves.
        let mut stream = stream;
        let mut sink = [0u8; 1024];
        use tokio::io::AsyncReadExt;
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(frame)) = ws.next().await {
        let Frame::Text(text) = frame else { continue };
        if hostility != Hostility::OnlyAssign {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if message["type"] != "AssignTask" {
            continue;
        }
        let reply = json!({
            "type": "TaskFailed", "messageId": specwire_runtime::clock::new_id(),
            "timestamp": specwire_runtime::clock::now_rfc3339(),
            "payload": {"taskId": message["payload"]["taskId"], "status": "Failed",
                        "errorCode": "UNKNOWN_OPERATION", "errorMessage": "nothing runs here"}
        });
        if ws.send(Frame::text(reply.to_string())).await.is_err() {
            return;
        }
    }
}

/// Short waits: every hostile run stays well under a minute.
fn short(mut target: TaskTarget) -> TaskTarget {
    target.reply_timeout = Duration::from_millis(500);
    target.task_timeout = Duration::from_secs(2);
    target.settle = Duration::from_millis(50);
    target.session_budget = Duration::from_secs(5);
    target
}

/// Runs the whole suite against `target` under an outer limit a little
/// above the predicted bound, and checks what every run must keep: it
/// ends, no case ran into its limit, every non-pass says why.
async fn bounded_run(label: &str, target: &TaskTarget) -> (Vec<CaseResult>, Duration) {
    let selection = Selection::default();
    let plan = task::plan(&selection);
    let bound = task::run_bound(target, &plan);
    let started = Instant::now();
    let results = within_for(
        bound + Duration::from_secs(10),
        &format!("{label}: the run's end (its bound is {bound:?})"),
        task::run(target, &selection, &mut ()),
    )
    .await;
    let elapsed = started.elapsed();
    eprintln!("{label}: {} cases in {elapsed:?}", results.len());
    assert_eq!(results.len(), plan.len());
    for result in &results {
        let reason = result.verdict.reason().unwrap_or("");
        assert!(
            !reason.contains("did not finish within its limit"),
            "{label}: {} ran into its limit: {reason}",
            result.spec.id
        );
        if result.verdict.name() != "pass" {
            assert!(
                !reason.is_empty(),
                "{label}: {} has no reason",
                result.spec.id
            );
        }
    }
    (results, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_target_is_a_harness_error_for_every_case_at_once() {
    let hostile = start_hostile(Hostility::Silent).await;
    let target = short(target(&hostile.endpoint(), Access::Open));
    let (results, _) = bounded_run("silent", &target).await;
    for result in &results {
        assert_eq!(result.verdict.name(), "harness-error", "{}", result.spec.id);
        assert!(
            result
                .verdict
                .reason()
                .unwrap()
                .contains("answered none of"),
            "{:?}",
            result.verdict
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_handshakes_is_a_harness_error_for_every_case() {
    let hostile = start_hostile(Hostility::NoHandshake).await;
    let target = short(target(&hostile.endpoint(), Access::Open));
    let (results, _) = bounded_run("no handshake", &target).await;
    for result in &results {
        assert_eq!(result.verdict.name(), "harness-error", "{}", result.spec.id);
        assert!(
            result.verdict.reason().unwrap().contains("handshake"),
            "{:?}",
            result.verdict
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_answering_only_assign_task_fails_without_hanging() {
    let hostile = start_hostile(Hostility::OnlyAssign).await;
    let target = short(target(&hostile.endpoint(), Access::Open));
    let (results, _) = bounded_run("only AssignTask", &target).await;
    let verdicts = verdicts(&results);
    // What it answers is judged; what it leaves unanswered fails.
    assert_eq!(verdicts["task.assign.unknown-operation"], "pass");
    assert_eq!(verdicts["task.query.status-unknown"], "fail");
    assert_eq!(verdicts["task.errors.unknown-type"], "fail");
    assert_eq!(verdicts["task.cancel.unknown"], "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelled_acks_fail_the_ack_cases_and_nothing_hangs() {
    // The reference provider behind a proxy that renames acknowledgmentId
    // in every Ack, Authenticate's included: the suite still
    // authenticates (any Ack accepts), and the misspelling is judged where
    // it belongs.
    let provider = start_reference(Access::Keyed, None).await;
    let proxy = FaultProxy::start(&provider, Some(API_KEY), Fault::MisspelledAck).await;
    let target = short(target(&proxy.endpoint(), Access::Keyed));
    let (results, _) = bounded_run("misspelled Acks", &target).await;
    let explained = explain(&results);
    assert_eq!(
        with_verdict(&results, "fail"),
        ["task.ack.first-reply", "task.envelope.valid-replies"],
        "{explained}"
    );
    // Which task an unrecognisable Ack names cannot be judged.
    assert_eq!(
        with_verdict(&results, "skip"),
        ["task.ack.task-id"],
        "{explained}"
    );
    assert!(
        with_verdict(&results, "harness-error").is_empty(),
        "{explained}"
    );
    drop(proxy);
    provider.shutdown(Duration::from_secs(1)).await;
}
