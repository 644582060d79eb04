//! Tests of the alternatives provider (`alternatives/`), the fixture that
//! shows, one switch at a time, behaviours PROFILE.md allows but the
//! reference provider does not choose. Each switch's test proves the switch
//! really shows its behaviour (each fails if the fixture ignores its
//! switch), and every message the fixture sends is checked against the
//! schemas on receipt.
//!
//! Raw clients only (tokio-tungstenite, UDP sockets), loopback only, a
//! private discovery port per test. Nothing sleeps to synchronise: absence
//! is proven with a barrier (a `GetStatus` whose `Error` comes after
//! everything queued before it), and every wait is bounded.

mod alternatives;

use specwire_protocol::JsonProtocol;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use alternatives::{AltConfig, AltProvider, Switch, SERVICE};
use chrono::{DateTime, FixedOffset};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_protocol::Direction;
use specwire_testsupport::{free_udp_port, within, PATIENCE};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// A client message with a fresh envelope.
fn message(kind: &str, payload: Value) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({"type": kind, "messageId": new_id(), "timestamp": now, "payload": payload})
}

fn with_ack(mut message: Value, ack_id: &str) -> Value {
    message["acknowledgmentId"] = ack_id.into();
    message
}

fn assign(task_id: &str, operation: &str, parameters: Value) -> Value {
    let payload = json!({"taskId": task_id, "serviceName": SERVICE, "operation": operation,
                         "taskParameters": parameters});
    message("AssignTask", payload)
}

fn sleep(task_id: &str, duration_ms: u64, steps: u64) -> Value {
    assign(
        task_id,
        "sleep",
        json!({"durationMs": duration_ms, "steps": steps}),
    )
}

fn about(kind: &str, task_id: &str) -> Value {
    message(kind, json!({"taskId": task_id}))
}

fn kind(message: &Value) -> &str {
    message["type"].as_str().unwrap_or_default()
}

fn code(message: &Value) -> &str {
    message["payload"]["errorCode"].as_str().unwrap_or_default()
}

fn status(message: &Value) -> &str {
    message["payload"]["status"].as_str().unwrap_or_default()
}

fn progress(message: &Value) -> u64 {
    message["payload"]["progressPercentage"]
        .as_u64()
        .expect("a progress")
}

fn is_terminal(message: &Value) -> bool {
    matches!(kind(message), "TaskResult" | "TaskFailed") || status(message) == "Cancelled"
}

/// Asserts `message` is an `Error` with `code` answering `request`.
fn assert_error(message: &Value, code_wanted: &str, request: &Value) {
    assert_eq!(
        (kind(message), code(message)),
        ("Error", code_wanted),
        "{message}"
    );
    let related = &message["payload"]["relatedMessageId"];
    assert_eq!(related, &request["messageId"], "{message}");
}

/// A raw WebSocket client that validates everything it receives.
struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    async fn connect(endpoint: &str) -> Client {
        let connecting = tokio_tungstenite::connect_async_with_config(endpoint, None, true);
        let connected = within("the connection", connecting).await;
        Client {
            socket: connected.expect("connected").0,
        }
    }

    async fn send(&mut self, message: &Value) {
        self.send_frame(Frame::text(message.to_string())).await;
    }

    async fn send_frame(&mut self, frame: Frame) {
        let sent = within("a frame sent", self.socket.send(frame)).await;
        sent.expect("sent");
    }

    async fn frame(&mut self) -> Frame {
        let next = within("a frame", self.socket.next()).await;
        next.expect("open").expect("a frame")
    }

    /// The next message, as text and JSON; it must be a valid provider message.
    async fn recv_raw(&mut self) -> (String, Value) {
        loop {
            match self.frame().await {
                Frame::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    let direction = Some(Direction::ServerToClient);
                    if let Err(error) =
                        specwire_protocol::task::Message::recognise(&value, direction)
                    {
                        panic!("the fixture sent an invalid message: {error}: {text}");
                    }
                    return (text.as_str().to_owned(), value);
                }
                Frame::Ping(_) | Frame::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        self.recv_raw().await.1
    }

    /// Sends `request`; the next message.
    async fn ask(&mut self, request: &Value) -> Value {
        self.send(request).await;
        self.recv().await
    }

    /// Sends `request`; the next message must be an `Error` `code` about it.
    async fn refused(&mut self, request: &Value, code: &str) -> Value {
        let answer = self.ask(request).await;
        assert_error(&answer, code, request);
        answer
    }

    /// Everything up to the first message `last` accepts, included.
    async fn until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.recv().await;
            let done = last(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Everything up to and including `task_id`'s terminal message.
    async fn until_terminal(&mut self, task_id: &str) -> Vec<Value> {
        self.until(|m| m["payload"]["taskId"] == task_id && is_terminal(m))
            .await
    }

    /// Everything up to and including the `Error` answering `request`.
    async fn until_error_for(&mut self, request: &Value) -> Vec<Value> {
        let id = &request["messageId"];
        self.until(|m| kind(m) == "Error" && &m["payload"]["relatedMessageId"] == id)
            .await
    }

    /// Everything queued before a `GetStatus` of an unknown task is
    /// answered: replies keep their order, so this is all there was.
    async fn barrier(&mut self) -> Vec<Value> {
        let probe = about("GetStatus", &format!("barrier-{}", new_id()));
        self.send(&probe).await;
        let mut seen = self.until_error_for(&probe).await;
        assert_eq!(code(&seen.pop().unwrap()), "TASK_NOT_FOUND");
        seen
    }
}

/// Shuts the provider down while the clients read on, so each completes
/// the close handshake at once (the provider would otherwise wait, bounded,
/// for close replies that a client not reading never sends).
async fn stop(provider: AltProvider, clients: Vec<Client>) {
    let closing = clients.into_iter().map(|mut client| async move {
        let drain = async { while let Some(Ok(_)) = client.socket.next().await {} };
        within("the close", drain).await;
    });
    tokio::join!(provider.shutdown(), futures_util::future::join_all(closing));
}

/// A provider with `switch` and a client connected to it.
async fn start(config: AltConfig) -> (AltProvider, Client) {
    let provider = AltProvider::start(config).await;
    let client = Client::connect(&provider.endpoint()).await;
    (provider, client)
}

/// Requires key `alt-key`; alice may do anything on the service, bob only `noop`.
fn keyed(switch: Switch) -> AltConfig {
    let grant = |client: &str, operation: &str| (client.into(), SERVICE.into(), operation.into());
    AltConfig {
        api_keys: vec!["alt-key".into()],
        grants: vec![grant("alice", "*"), grant("bob", "noop")],
        ..AltConfig::new(switch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sleep_reports_progress_then_result() {
    let (provider, mut client) = start(AltConfig::new(Switch::Plain)).await;
    client
        .send(&with_ack(sleep("t-sleep", 150, 3), "ack-1"))
        .await;
    let seen = client.until_terminal("t-sleep").await;
    assert_eq!(kind(&seen[0]), "Ack");
    let ack = json!({"acknowledgmentId": "ack-1", "taskId": "t-sleep"});
    assert_eq!(seen[0]["payload"], ack);
    let updates = &seen[1..seen.len() - 1];
    assert!(
        updates.iter().all(|m| status(m) == "Processing"),
        "{seen:?}"
    );
    assert_eq!(
        updates.iter().map(progress).collect::<Vec<_>>(),
        [33, 66, 100]
    );
    let result = seen.last().unwrap();
    assert_eq!(kind(result), "TaskResult");
    assert_eq!(result["payload"]["resultData"], json!({"sleptMs": 150}));
    for message in &seen {
        // UTC with milliseconds: 2026-01-01T00:00:00.000Z
        let timestamp = message["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with('Z') && timestamp.len() == 24,
            "{timestamp}"
        );
    }
    // Queries after the end: fresh copies of the terminal message.
    for query in ["GetResult", "GetStatus"] {
        let again = client.ask(&about(query, "t-sleep")).await;
        assert_eq!(
            (kind(&again), &again["payload"]),
            ("TaskResult", &result["payload"])
        );
        assert_ne!(again["messageId"], result["messageId"]);
    }
    assert_eq!(provider.runs(), 1);
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_answers_malformed_messages_and_stays_open() {
    let (provider, mut client) = start(AltConfig::new(Switch::Plain)).await;
    for text in ["not json", "[1, 2]"] {
        client.send_frame(Frame::text(text)).await;
        let error = client.recv().await;
        assert_eq!(code(&error), "INVALID_MESSAGE");
        assert!(error["payload"].get("relatedMessageId").is_none());
    }
    let no_type = json!({"type": 5, "messageId": "m-no-type", "payload": {}});
    client.refused(&no_type, "INVALID_MESSAGE").await;
    // Unknown types are not acked.
    let unknown = with_ack(message("AltNoSuchMessage", json!({})), "ack-u");
    client.refused(&unknown, "UNKNOWN_TYPE").await;
    // A known type with a broken member: Ack, then the Error.
    let payload = json!({"taskId": 7, "serviceName": SERVICE, "operation": "noop"});
    let broken = with_ack(message("AssignTask", payload), "ack-b");
    let ack = client.ask(&broken).await;
    assert_eq!(ack["payload"], json!({"acknowledgmentId": "ack-b"}));
    assert_error(&client.recv().await, "INVALID_MESSAGE", &broken);
    client
        .refused(&message("GetStatus", json!("t")), "INVALID_MESSAGE")
        .await;
    // A rejected query is still acked first under Plain.
    let unknown_task = with_ack(about("GetStatus", "t-nobody"), "ack-g");
    assert_eq!(kind(&client.ask(&unknown_task).await), "Ack");
    let error = client.recv().await;
    assert_error(&error, "TASK_NOT_FOUND", &unknown_task);
    assert_eq!(error["payload"]["taskId"], "t-nobody");
    client.send_frame(Frame::binary(vec![1u8, 2, 3])).await;
    assert_eq!(code(&client.recv().await), "INVALID_MESSAGE");
    client.send_frame(Frame::Ping(b"alt".to_vec().into())).await;
    assert_eq!(client.frame().await, Frame::Pong(b"alt".to_vec().into()));
    // Unknown members and unadvertised parameters are ignored.
    let mut extra = assign("t-extra", "noop", json!({"unadvertised": true}));
    extra["x-client-note"] = json!([1, 2]);
    extra["payload"]["x-more"] = json!({"a": 1});
    let result = client.ask(&extra).await;
    assert_eq!(
        (kind(&result), &result["payload"]["resultData"]),
        ("TaskResult", &json!({}))
    );
    // Over 1 MiB: answered normally.
    let blob = "x".repeat((1 << 20) + 1000);
    let big = assign("t-big", "noop", json!({"blob": blob}));
    assert_eq!(kind(&client.ask(&big).await), "TaskResult");
    assert_eq!(provider.runs(), 2);
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_assigns_that_cannot_run_fail_at_once() {
    let (provider, mut client) = start(AltConfig::new(Switch::Plain)).await;
    let other_service = json!({"taskId": "t-svc", "serviceName": "NoService", "operation": "noop"});
    let cases = [
        (assign("t-op", "nothing", json!({})), "UNKNOWN_OPERATION"),
        (message("AssignTask", other_service), "UNKNOWN_OPERATION"),
        (
            assign("t-str", "sleep", json!({"durationMs": "100"})),
            "INVALID_PARAMETERS",
        ),
        (
            assign("t-float", "sleep", json!({"durationMs": 100.0})),
            "INVALID_PARAMETERS",
        ),
    ];
    for (request, wanted) in cases {
        assert_eq!(
            kind(&client.ask(&with_ack(request.clone(), "ack-r")).await),
            "Ack"
        );
        let failed = client.recv().await;
        assert_eq!((kind(&failed), code(&failed)), ("TaskFailed", wanted));
        assert_eq!(failed["payload"]["taskId"], request["payload"]["taskId"]);
    }
    // The fail operation runs, and fails with the code asked for.
    let simulated = assign("t-fail", "fail", json!({"code": "SIMULATED"}));
    let failed = client.ask(&simulated).await;
    assert_eq!(
        (kind(&failed), code(&failed), status(&failed)),
        ("TaskFailed", "SIMULATED", "Failed")
    );
    assert_eq!(
        code(&client.ask(&assign("t-fail2", "fail", json!({}))).await),
        "ALT_FAILURE"
    );
    assert_eq!(
        code(&client.ask(&about("GetResult", "t-fail")).await),
        "SIMULATED"
    );
    assert_eq!(provider.runs(), 2);
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_cancel_and_queries() {
    let (provider, mut client) = start(AltConfig::new(Switch::Plain)).await;
    let first = client.ask(&sleep("t-c", 4000, 40)).await;
    assert_eq!((status(&first), progress(&first)), ("Processing", 2));
    let not_ready = about("GetResult", "t-c");
    client.send(&not_ready).await;
    let answer = client.until_error_for(&not_ready).await;
    assert_eq!(code(answer.last().unwrap()), "RESULT_NOT_READY");
    client
        .send(&with_ack(about("CancelTask", "t-c"), "ack-c"))
        .await;
    let seen = client.until_terminal("t-c").await;
    let ack = seen.iter().position(|m| kind(m) == "Ack").expect("an Ack");
    let cancelled = seen.last().unwrap();
    assert!(ack < seen.len() - 1 && status(cancelled) == "Cancelled");
    // The Cancelled message carries the last progress reported.
    let reported = [&first].into_iter().chain(&answer).chain(&seen);
    let last = reported
        .filter(|m| status(m) == "Processing")
        .map(progress)
        .max();
    assert_eq!(Some(progress(cancelled)), last);
    // Nothing live after the terminal message.
    assert!(client.barrier().await.is_empty());
    client
        .refused(&about("CancelTask", "t-c"), "TASK_ALREADY_FINISHED")
        .await;
    client
        .refused(&about("GetResult", "t-c"), "CANCELLED")
        .await;
    assert_eq!(
        status(&client.ask(&about("GetStatus", "t-c")).await),
        "Cancelled"
    );
    for query in ["CancelTask", "GetStatus", "GetResult"] {
        client
            .refused(&about(query, "t-none"), "TASK_NOT_FOUND")
            .await;
    }
    // A cancel from another connection reaches both.
    client.send(&sleep("t-c2", 4000, 1)).await;
    let mut other = Client::connect(&provider.endpoint()).await;
    assert_eq!(
        status(&other.ask(&about("CancelTask", "t-c2")).await),
        "Cancelled"
    );
    assert_eq!(status(&client.recv().await), "Cancelled");
    assert_eq!(provider.runs(), 2);
    stop(provider, vec![client, other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_task_is_answered_with_its_state_and_never_runs_twice() {
    let (provider, mut client) = start(AltConfig::new(Switch::Plain)).await;
    let first = sleep("t-idem", 300, 1);
    client.send(&first).await;
    let mut again = first.clone();
    again["messageId"] = new_id().into();
    let ack = client.ask(&with_ack(again.clone(), "ack-again")).await;
    assert_eq!(
        ack["payload"],
        json!({"acknowledgmentId": "ack-again", "taskId": "t-idem"})
    );
    let state = client.recv().await;
    assert_eq!(
        (kind(&state), status(&state)),
        ("TaskStatusUpdate", "Processing")
    );
    let result = client.until_terminal("t-idem").await.pop().unwrap();
    assert_eq!(kind(&result), "TaskResult");
    // From another connection, after the end: a fresh copy.
    let mut other = Client::connect(&provider.endpoint()).await;
    let copy = other.ask(&again).await;
    assert_eq!(copy["payload"], result["payload"]);
    assert_ne!(copy["messageId"], result["messageId"]);
    assert!(client.barrier().await.is_empty());
    assert_eq!(provider.runs(), 1);
    stop(provider, vec![client, other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_for_rejected_acks_only_what_it_processes() {
    let (provider, mut client) = start(AltConfig::new(Switch::NoAckForRejected)).await;
    let unknown = with_ack(about("GetStatus", "t-nobody"), "ack-1");
    client.refused(&unknown, "TASK_NOT_FOUND").await;
    let broken = with_ack(message("CancelTask", json!({})), "ack-2");
    client.refused(&broken, "INVALID_MESSAGE").await;
    let cannot_run = with_ack(assign("t-op", "nothing", json!({})), "ack-3");
    assert_eq!(code(&client.ask(&cannot_run).await), "UNKNOWN_OPERATION");
    let noop = with_ack(assign("t-noop", "noop", json!({})), "ack-4");
    assert_eq!(
        client.ask(&noop).await["payload"]["acknowledgmentId"],
        "ack-4"
    );
    assert_eq!(kind(&client.recv().await), "TaskResult");
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_status_updates_sends_only_the_terminal_message() {
    let (provider, mut client) = start(AltConfig::new(Switch::NoStatusUpdates)).await;
    client.send(&sleep("t-q", 600, 3)).await;
    client.send(&about("GetStatus", "t-q")).await;
    let seen = client.until_terminal("t-q").await;
    let kinds: Vec<(&str, &str)> = seen.iter().map(|m| (kind(m), status(m))).collect();
    assert_eq!(
        kinds,
        [
            ("TaskStatusUpdate", "Processing"),
            ("TaskResult", "Completed")
        ]
    );
    assert!(client.barrier().await.is_empty());
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_status_updates_sends_accepted_queued_and_processing() {
    let config = AltConfig {
        capacity: 1,
        ..AltConfig::new(Switch::AllStatusUpdates)
    };
    let (provider, mut client) = start(config).await;
    client.send(&sleep("t-1", 200, 2)).await;
    client.send(&sleep("t-2", 200, 2)).await;
    let mut seen = client.until_terminal("t-2").await;
    seen.extend(client.barrier().await);
    let is_about = |m: &Value, task_id: &str| m["payload"]["taskId"] == task_id;
    let updates = |task_id: &str| -> Vec<String> {
        let updates = seen
            .iter()
            .filter(|m| is_about(m, task_id) && !is_terminal(m));
        updates
            .map(|m| format!("{} {}", status(m), progress(m)))
            .collect()
    };
    let processing = ["Processing 0", "Processing 50", "Processing 100"];
    assert_eq!(updates("t-1"), [&["Accepted 0"][..], &processing].concat());
    assert_eq!(
        updates("t-2"),
        [&["Accepted 0", "Queued 0"][..], &processing].concat()
    );
    // The second waited for the first's slot.
    let first_done = seen
        .iter()
        .position(|m| is_about(m, "t-1") && is_terminal(m));
    let second_runs = seen
        .iter()
        .position(|m| is_about(m, "t-2") && status(m) == "Processing");
    assert!(first_done.unwrap() < second_runs.unwrap());
    stop(provider, vec![client]).await;
}

/// Assigns a short sleep and cancels it at once (asking for an Ack): the
/// task still ends in its result. Returns the cancel.
async fn cancel_a_short_sleep(client: &mut Client) -> Value {
    client.send(&sleep("t-race", 200, 2)).await;
    let cancel = with_ack(about("CancelTask", "t-race"), "ack-cancel");
    client.send(&cancel).await;
    let seen = client.until_terminal("t-race").await;
    assert_eq!(kind(seen.last().unwrap()), "TaskResult", "{seen:?}");
    assert!(seen.iter().any(|m| kind(m) == "Ack"));
    cancel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_loses_race_answers_after_the_result() {
    let (provider, mut client) = start(AltConfig::new(Switch::CancelLosesRace)).await;
    let cancel = cancel_a_short_sleep(&mut client).await;
    let error = client.recv().await;
    assert_error(&error, "TASK_ALREADY_FINISHED", &cancel);
    assert_eq!(error["payload"]["taskId"], "t-race");
    assert!(client.barrier().await.is_empty());
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_loses_race_silently_never_answers_the_cancel() {
    let (provider, mut client) = start(AltConfig::new(Switch::CancelLosesRaceSilently)).await;
    cancel_a_short_sleep(&mut client).await;
    assert!(client.barrier().await.is_empty());
    stop(provider, vec![client]).await;
}

/// Runs a `noop` task to its end, then cancels it: the Error's code.
async fn cancel_finished_code(switch: Switch) -> String {
    let (provider, mut client) = start(AltConfig::new(switch)).await;
    assert_eq!(
        kind(&client.ask(&assign("t-done", "noop", json!({}))).await),
        "TaskResult"
    );
    let cancel = about("CancelTask", "t-done");
    let error = client.ask(&cancel).await;
    assert_eq!(error["payload"]["relatedMessageId"], cancel["messageId"]);
    stop(provider, vec![client]).await;
    code(&error).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_cancel_code_is_task_completed() {
    assert_eq!(
        cancel_finished_code(Switch::FinishedCancelCode).await,
        "TASK_COMPLETED"
    );
    assert_eq!(
        cancel_finished_code(Switch::Plain).await,
        "TASK_ALREADY_FINISHED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_error_codes_beyond_the_standard_list() {
    assert_eq!(
        cancel_finished_code(Switch::CustomErrorCodes).await,
        "ALREADY_DONE"
    );
    let (provider, mut client) = start(AltConfig::new(Switch::CustomErrorCodes)).await;
    let blob = "x".repeat((1 << 20) + 1000);
    client
        .refused(
            &assign("t-big", "noop", json!({"blob": blob})),
            "PAYLOAD_TOO_LARGE",
        )
        .await;
    // Refused, not run; the connection stays open.
    client
        .refused(&about("GetStatus", "t-big"), "TASK_NOT_FOUND")
        .await;
    let simulated = assign("t-fail", "fail", json!({"code": "SIMULATED"}));
    let failed = client.ask(&simulated).await;
    assert_eq!(
        (kind(&failed), code(&failed)),
        ("TaskFailed", "ALT_FAILURE")
    );
    assert_eq!(provider.runs(), 1);
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassign_stored_terminal_repeats_the_very_same_message() {
    let (provider, mut client) = start(AltConfig::new(Switch::ReassignStoredTerminal)).await;
    let request = assign("t-stored", "noop", json!({}));
    client.send(&request).await;
    let (original, _) = client.recv_raw().await;
    client.send(&request).await;
    client.send(&about("GetStatus", "t-stored")).await;
    client.send(&about("GetResult", "t-stored")).await;
    for _ in 0..3 {
        assert_eq!(client.recv_raw().await.0, original);
    }
    assert_eq!(provider.runs(), 1);
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_fields_on_every_message_still_valid() {
    let (provider, mut client) = start(AltConfig::new(Switch::ExtraFields)).await;
    client.send(&with_ack(sleep("t-x", 100, 1), "ack-x")).await;
    let mut seen = client.until_terminal("t-x").await;
    let kinds: Vec<&str> = seen.iter().map(kind).collect();
    assert_eq!(kinds, ["Ack", "TaskStatusUpdate", "TaskResult"]);
    seen.push(client.ask(&about("GetStatus", "t-none")).await);
    for message in &seen {
        assert_eq!(message["x-alt-trace"], json!({"hop": 1}), "{message}");
        assert!(message["payload"]["altNote"].is_string(), "{message}");
    }
    let advertisement = provider.advertisement();
    assert_eq!(advertisement["x-alt-trace"], json!({"hop": 1}));
    specwire_protocol::discovery::Message::recognise(&advertisement, None)
        .expect("a valid advertisement");
    stop(provider, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_timestamps_with_fractions_still_valid() {
    let (provider, mut client) = start(AltConfig::new(Switch::OffsetTimestamps)).await;
    client
        .send(&with_ack(assign("t-ts", "noop", json!({})), "ack-ts"))
        .await;
    let mut seen = client.until_terminal("t-ts").await;
    seen.push(provider.advertisement());
    specwire_protocol::discovery::Message::recognise(&seen[2], None)
        .expect("a valid advertisement");
    assert_eq!(seen.len(), 3);
    for message in &seen {
        // Six fraction digits: 2026-12-03T15:30:00.123456+05:30
        let timestamp = message["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with("+05:30") && timestamp.len() == 32,
            "{timestamp}"
        );
        let parsed = DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339");
        assert_eq!(parsed.offset(), &FixedOffset::east_opt(19800).unwrap());
    }
    stop(provider, vec![client]).await;
}

/// An `AssignTask` of `noop` with an inline key and client id.
fn inline(task_id: &str, key: &str, client: &str) -> Value {
    let mut request = assign(task_id, "noop", json!({}));
    request["payload"]["apiKey"] = key.into();
    request["payload"]["callbackClientId"] = client.into();
    request
}

fn authenticate(key: &str, client: &str) -> Value {
    message("Authenticate", json!({"apiKey": key, "clientId": client}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_authentication_and_acl() {
    let (provider, mut alice) = start(keyed(Switch::Plain)).await;
    alice
        .refused(&about("GetStatus", "t-any"), "UNAUTHORIZED")
        .await;
    // Plain does not take a key inside AssignTask.
    alice
        .refused(&inline("t-inline", "alt-key", "alice"), "UNAUTHORIZED")
        .await;
    let wrong = with_ack(authenticate("nope", "alice"), "ack-w");
    assert_eq!(kind(&alice.ask(&wrong).await), "Ack");
    assert_error(&alice.recv().await, "UNAUTHORIZED", &wrong);
    let right = with_ack(authenticate("alt-key", "alice"), "ack-r");
    assert_eq!(
        alice.ask(&right).await["payload"],
        json!({"acknowledgmentId": "ack-r"})
    );
    alice.send(&sleep("t-alice", 100, 1)).await;
    assert_eq!(
        kind(alice.until_terminal("t-alice").await.last().unwrap()),
        "TaskResult"
    );
    let mut bob = Client::connect(&provider.endpoint()).await;
    bob.send(&authenticate("alt-key", "bob")).await;
    let forbidden = bob.ask(&sleep("t-bob-sleep", 100, 1)).await;
    assert_eq!(
        (kind(&forbidden), code(&forbidden)),
        ("TaskFailed", "FORBIDDEN")
    );
    assert_eq!(
        kind(&bob.ask(&assign("t-bob-noop", "noop", json!({}))).await),
        "TaskResult"
    );
    // Tasks are visible to every connection.
    assert_eq!(
        kind(&bob.ask(&about("GetResult", "t-alice")).await),
        "TaskResult"
    );
    assert_eq!(provider.runs(), 2);
    stop(provider, vec![alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_in_assign_authenticates_the_connection() {
    let (provider, mut client) = start(keyed(Switch::ApiKeyInAssign)).await;
    let early = about("GetStatus", "t-any");
    client.refused(&early, "UNAUTHORIZED").await;
    let refused = client.ask(&inline("t-wrong", "nope", "alice")).await;
    assert_eq!(
        (kind(&refused), code(&refused)),
        ("TaskFailed", "UNAUTHORIZED")
    );
    assert_eq!(refused["payload"]["taskId"], "t-wrong");
    // Still unauthenticated.
    client.refused(&early, "UNAUTHORIZED").await;
    let right = with_ack(inline("t-key", "alt-key", "alice"), "ack-k");
    assert_eq!(kind(&client.ask(&right).await), "Ack");
    assert_eq!(kind(&client.recv().await), "TaskResult");
    // Now authenticated as alice: a plain query works.
    assert_eq!(
        kind(&client.ask(&about("GetStatus", "t-key")).await),
        "TaskResult"
    );
    // The inline client id is the one authorised.
    let mut mallory = Client::connect(&provider.endpoint()).await;
    let forbidden = mallory
        .ask(&inline("t-mallory", "alt-key", "mallory"))
        .await;
    assert_eq!(code(&forbidden), "FORBIDDEN");
    assert_eq!(provider.runs(), 1);
    stop(provider, vec![client, mallory]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_switch_serves_a_task() {
    let mut distinct = Switch::ALL.to_vec();
    distinct.dedup();
    assert_eq!(distinct.len(), 14);
    for &switch in Switch::ALL {
        let (provider, mut client) = start(AltConfig::new(switch)).await;
        client.send(&assign("t-any", "noop", json!({}))).await;
        let seen = client.until_terminal("t-any").await;
        assert_eq!(kind(seen.last().unwrap()), "TaskResult", "{switch:?}");
        stop(provider, vec![client]).await;
    }
}

// Discovery.

/// A socket sharing the discovery port, as every participant binds it.
fn listener(port: u16) -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    UdpSocket::from_std(socket.into()).unwrap()
}

/// An ephemeral socket that broadcasts a request and gets the unicast answer.
async fn request(port: u16, client_id: &str) -> UdpSocket {
    let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    socket.set_broadcast(true).unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let request = json!({"discoveryType": "ClientServiceDiscoveryRequest", "clientId": client_id,
                         "timestamp": now});
    let to = ("127.255.255.255", port);
    socket
        .send_to(request.to_string().as_bytes(), to)
        .await
        .unwrap();
    socket
}

/// The next advertisement of `service_id` on `socket` that `wanted`
/// accepts (each must be valid), and the ones skipped before it.
async fn advertisement(
    socket: &UdpSocket,
    service_id: &Value,
    wanted: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let mut skipped = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        let received = within("a datagram", socket.recv_from(&mut buffer)).await;
        let (length, _) = received.unwrap();
        let value: Value = serde_json::from_slice(&buffer[..length]).expect("JSON");
        if value["discoveryType"] != "ServiceAdvertisement" || &value["serviceId"] != service_id {
            continue;
        }
        specwire_protocol::discovery::Message::recognise(&value, None)
            .expect("a valid advertisement");
        if wanted(&value) {
            return (value, skipped);
        }
        skipped.push(value);
    }
}

/// Asks once; the (unicast) answer to `client_id`.
async fn ask(port: u16, service_id: &Value, client_id: &str) -> Value {
    let asker = request(port, client_id).await;
    advertisement(&asker, service_id, |ad| {
        ad["respondsToClientId"] == client_id
    })
    .await
    .0
}

/// A provider with discovery on a free port; the port and its service id.
async fn discovering(config: AltConfig) -> (AltProvider, u16, Value) {
    let port = free_udp_port();
    let config = AltConfig {
        discovery_port: Some(port),
        capacity: 2,
        ..config
    };
    let provider = AltProvider::start(config).await;
    let service_id = provider.advertisement()["serviceId"].clone();
    (provider, port, service_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_answers_a_request_on_both_sockets() {
    let (provider, port, service_id) = discovering(AltConfig::new(Switch::Plain)).await;
    let shared = listener(port);
    let asker = request(port, "client-a").await;
    let answers = |ad: &Value| ad["respondsToClientId"] == "client-a";
    let (unicast, _) = advertisement(&asker, &service_id, answers).await;
    let (broadcast, _) = advertisement(&shared, &service_id, answers).await;
    let capabilities = json!([
        {"key": "sleep", "settings": [{"int": "durationMs"}, {"int": "steps"}]},
        {"key": "noop", "settings": []},
        {"key": "fail", "settings": [{"string": "code"}]}
    ]);
    assert!(service_id.as_str().unwrap().starts_with("alt-"));
    for answer in [&unicast, &broadcast] {
        assert_eq!(
            (&answer["serviceName"], &answer["serviceVersion"]),
            (&json!(SERVICE), &json!("0.1.0"))
        );
        assert_eq!(answer["endpoint"], provider.endpoint().as_str());
        assert_eq!(
            (&answer["status"], answer["load"].as_f64()),
            (&json!("Online"), Some(0.0))
        );
        assert_eq!(answer["capabilities"], capabilities);
    }
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_announces_itself_then_heartbeats_at_the_configured_period() {
    let port = free_udp_port();
    // Bound before the provider starts, so its start-up announcement is heard.
    let shared = listener(port);
    let config = AltConfig {
        discovery_port: Some(port),
        heartbeat: Duration::from_millis(200),
        ..AltConfig::new(Switch::Plain)
    };
    let provider = AltProvider::start(config).await;
    let service_id = provider.advertisement()["serviceId"].clone();
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < 4 {
        let (heartbeat, _) = advertisement(&shared, &service_id, |_| true).await;
        assert!(heartbeat.get("respondsToClientId").is_none());
        let timestamp = heartbeat["timestamp"].as_str().unwrap();
        times.push(DateTime::parse_from_rfc3339(timestamp).unwrap());
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((150..1500).contains(&gap), "heartbeats {gap} ms apart");
    }
    provider.shutdown().await;
}

/// Starts a 10 s task on `provider` (its slot is taken before the Ack).
async fn load(provider: &AltProvider) -> Client {
    let mut client = Client::connect(&provider.endpoint()).await;
    assert_eq!(
        kind(
            &client
                .ask(&with_ack(sleep("t-load", 10_000, 1), "ack-l"))
                .await
        ),
        "Ack"
    );
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_loaded_while_a_task_runs() {
    let (provider, port, service_id) = discovering(AltConfig::new(Switch::BusyWhenLoaded)).await;
    assert_eq!(ask(port, &service_id, "idle").await["status"], "Online");
    let mut client = load(&provider).await;
    let loaded = ask(port, &service_id, "loaded").await;
    assert_eq!(
        (&loaded["status"], loaded["load"].as_f64()),
        (&json!("Busy"), Some(0.5))
    );
    assert_eq!(provider.advertisement()["status"], "Busy");
    assert_eq!(
        status(&client.ask(&about("CancelTask", "t-load")).await),
        "Cancelled"
    );
    // The slot is freed when the runner wakes: ask until it shows.
    let deadline = Instant::now() + PATIENCE;
    while ask(port, &service_id, "after").await["status"] != "Online" {
        assert!(Instant::now() < deadline, "still Busy after the task ended");
    }
    stop(provider, vec![client]).await;
    // Plain stays Online under load (only the load says it).
    let (plain, _, _) = discovering(AltConfig::new(Switch::Plain)).await;
    let client = load(&plain).await;
    let advertised = plain.advertisement();
    assert_eq!(
        (&advertised["status"], advertised["load"].as_f64()),
        (&json!("Online"), Some(0.5))
    );
    stop(plain, vec![client]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_always() {
    let (provider, port, service_id) = discovering(AltConfig::new(Switch::Degraded)).await;
    assert_eq!(ask(port, &service_id, "who").await["status"], "Degraded");
    assert_eq!(provider.advertisement()["status"], "Degraded");
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_offline_closes_with_1001_and_frees_the_ports() {
    let (provider, port, service_id) = discovering(AltConfig::new(Switch::Plain)).await;
    let shared = listener(port);
    let endpoint = provider.endpoint();
    let mut client = load(&provider).await;
    let stopping = tokio::spawn(provider.shutdown());
    let (offline, _) = advertisement(&shared, &service_id, |ad| ad["status"] == "Offline").await;
    assert!(offline.get("respondsToClientId").is_none());
    match client.frame().await {
        Frame::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Reading on completes the close handshake.
    let end = within("the end of the close handshake", client.socket.next()).await;
    assert!(!matches!(end, Some(Ok(Frame::Text(_)))));
    within("the bounded shutdown", stopping).await.unwrap();
    assert!(tokio_tungstenite::connect_async(endpoint.as_str())
        .await
        .is_err());
    drop(shared);
    std::net::UdpSocket::bind(("0.0.0.0", port)).expect("the discovery port is free");
}
