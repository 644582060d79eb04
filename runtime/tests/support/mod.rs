//! Shared helpers for the task integration tests: a test service, a
//! provider on an ephemeral loopback port, a raw WebSocket client that
//! checks every provider message against the schema, a TCP proxy that can
//! drop connections (`specwire_testsupport::Proxy`), a scriptable fake
//! provider, and a self-signed certificate (`specwire_testsupport`).
//!
//! Nothing here sleeps to synchronise: every wait is for a message, an
//! event or a condition, bounded by [`PATIENCE`].

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use specwire_protocol::JsonProtocol;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use specwire_protocol::task::Message;
use specwire_protocol::Direction;
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::{self, Assignment, Built};
use specwire_runtime::task::{
    Backoff, BoxFuture, ClientConfig, Operation, ParamType, Parameter, Provider, ProviderConfig,
    ServiceDescription, Task, TaskContext, TaskError, TaskHandler, TaskOutput,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use specwire_testsupport::{eventually, within, within_for, Proxy, SelfSigned, PATIENCE};

/// The test service's name.
pub const SERVICE: &str = "TestService";

/// A fresh task id.
pub fn task_id() -> String {
    format!("task-{}", new_id())
}

/// A JSON object literal as a map.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

// ---------------------------------------------------------------------------
// The test service
// ---------------------------------------------------------------------------

/// `TestService`: `noop`, `echo` (`text`: string, required), `gated`
/// (progress 10, waits for [`TestService::open`] or cancellation, progress
/// 60, `{"done": true}`), `fail` (`SIMULATED`), `panic` (panics inside the
/// task's future) and `panic_early` (panics in `run` itself, before a
/// future exists). It counts the runs of every task id and records which
/// gated tasks saw their cancellation.
pub struct TestService {
    description: ServiceDescription,
    runs: Arc<Mutex<HashMap<String, usize>>>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    cancelled: Arc<watch::Sender<HashSet<String>>>,
}

impl TestService {
    pub fn new() -> Arc<TestService> {
        let description = ServiceDescription::new(SERVICE, "1.0.0")
            .operation(Operation::new("noop"))
            .operation(
                Operation::new("echo").parameter(Parameter::required("text", ParamType::String)),
            )
            .operation(Operation::new("gated"))
            .operation(Operation::new("fail"))
            .operation(Operation::new("panic"))
            .operation(Operation::new("panic_early"));
        Arc::new(TestService {
            description,
            runs: Arc::new(Mutex::new(HashMap::new())),
            gates: Mutex::new(HashMap::new()),
            cancelled: Arc::new(watch::channel(HashSet::new()).0),
        })
    }

    /// How many times the handler ran `task_id`.
    pub fn runs(&self, task_id: &str) -> usize {
        self.runs.lock().unwrap().get(task_id).copied().unwrap_or(0)
    }

    /// Handler runs over all task ids.
    pub fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }

    fn gate(&self, task_id: &str) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap();
        Arc::clone(
            gates
                .entry(task_id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(0))),
        )
    }

    /// Lets the gated task `task_id` go on (before or after it started).
    pub fn open(&self, task_id: &str) {
        self.gate(task_id).add_permits(1);
    }

    /// Whether the gated task `task_id` saw its cancellation.
    pub fn saw_cancellation(&self, task_id: &str) -> bool {
        self.cancelled.borrow().contains(task_id)
    }

    /// Waits until the gated task `task_id` has seen its cancellation.
    pub async fn wait_cancelled(&self, task_id: &str) {
        let mut seen = self.cancelled.subscribe();
        within(&format!("{task_id} to see its cancellation"), async {
            seen.wait_for(|set| set.contains(task_id))
                .await
                .expect("the service is alive");
        })
        .await;
    }
}

impl TaskHandler for TestService {
    fn description(&self) -> &ServiceDescription {
        &self.description
    }

    fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(task.task_id.clone())
            .or_default() += 1;
        if task.operation == "panic_early" {
            panic!("simulated panic in TaskHandler::run before the future exists");
        }
        let gate = self.gate(&task.task_id);
        let cancelled = Arc::clone(&self.cancelled);
        Box::pin(async move {
            match task.operation.as_str() {
                "noop" => Ok(TaskOutput::new()),
                "echo" => Ok(object(json!({"echo": task.parameters["text"]}))),
                "gated" => {
                    context.progress(10, "waiting for the gate");
                    tokio::select! {
                        permit = gate.acquire() => permit.expect("gates are never closed").forget(),
                        () = context.cancellation().cancelled() => {
                            cancelled.send_modify(|set| {
                                set.insert(task.task_id.clone());
                            });
                            return Err(TaskError::cancelled());
                        }
                    }
                    context.progress(60, "through the gate");
                    Ok(object(json!({"done": true})))
                }
                "fail" => Err(TaskError::new("SIMULATED", "simulated failure")
                    .with_details("the test asked for it")),
                "panic" => panic!("simulated panic inside the task"),
                other => Err(TaskError::internal(format!("TestService cannot {other}"))),
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Providers and clients
// ---------------------------------------------------------------------------

/// A provider of a fresh [`TestService`] on `127.0.0.1:0`, configured by
/// `tweak` on top of test defaults (capacity 8, 2 s cancel grace).
pub async fn start_provider(
    tweak: impl FnOnce(&mut ProviderConfig),
) -> (Provider, Arc<TestService>) {
    let service = TestService::new();
    let provider = start_provider_with(Arc::clone(&service), tweak).await;
    (provider, service)
}

/// As [`start_provider`] with a given service.
pub async fn start_provider_with(
    service: Arc<TestService>,
    tweak: impl FnOnce(&mut ProviderConfig),
) -> Provider {
    let mut config = ProviderConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        capacity: 8,
        cancel_grace: Duration::from_secs(2),
        ..ProviderConfig::default()
    };
    tweak(&mut config);
    let handler: Arc<dyn TaskHandler> = service;
    within(
        "the provider to start",
        Provider::start(config, vec![handler]),
    )
    .await
    .expect("start the provider")
}

/// Client settings for tests: short connect timeout and backoff.
pub fn client_config(endpoint: impl Into<String>) -> ClientConfig {
    let mut config = ClientConfig::new(endpoint);
    config.connect_timeout = Duration::from_secs(2);
    config.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        factor: 2.0,
        jitter: 0.5,
    };
    config.connect_attempts = 5;
    config
}

// ---------------------------------------------------------------------------
// Message builders and accessors
// ---------------------------------------------------------------------------

/// An assignment for `TestService`.
pub fn assignment(task_id: &str, operation: &str, parameters: Value) -> Assignment {
    assignment_to(task_id, SERVICE, operation, parameters)
}

/// An assignment for any service.
pub fn assignment_to(
    task_id: &str,
    service: &str,
    operation: &str,
    parameters: Value,
) -> Assignment {
    Assignment {
        task_id: task_id.to_owned(),
        service: service.to_owned(),
        operation: operation.to_owned(),
        parameters: object(parameters),
        client_id: None,
    }
}

/// `AssignTask` for `TestService`, with an `acknowledgmentId` when given.
pub fn assign(task_id: &str, operation: &str, parameters: Value, ack: Option<&str>) -> Built {
    messages::assign(&assignment(task_id, operation, parameters), ack)
}

/// `AssignTask` carrying `payload.apiKey` and `callbackClientId`.
pub fn assign_with_key(task_id: &str, operation: &str, api_key: &str, client_id: &str) -> Built {
    let mut assignment = assignment(task_id, operation, json!({}));
    assignment.client_id = Some(client_id.to_owned());
    let built = messages::assign(&assignment, None);
    let mut value: Value = serde_json::from_str(&built.text).unwrap();
    value["payload"]["apiKey"] = json!(api_key);
    Built {
        message_id: built.message_id,
        text: value.to_string(),
    }
}

pub fn kind(value: &Value) -> &str {
    value["type"].as_str().unwrap_or_default()
}

pub fn payload(value: &Value) -> &Value {
    &value["payload"]
}

/// `payload.status` (`TaskStatusUpdate`, `TaskResult`, `TaskFailed`).
pub fn status(value: &Value) -> &str {
    value["payload"]["status"].as_str().unwrap_or_default()
}

pub fn progress(value: &Value) -> i64 {
    value["payload"]["progressPercentage"]
        .as_i64()
        .unwrap_or_else(|| panic!("no progressPercentage in {value}"))
}

pub fn task_of(value: &Value) -> &str {
    value["payload"]["taskId"].as_str().unwrap_or_default()
}

/// `payload.errorCode` of an `Error` or `TaskFailed`.
pub fn error_code(value: &Value) -> &str {
    value["payload"]["errorCode"].as_str().unwrap_or_default()
}

/// Asserts `value` is an `Error` with `code`, answering `related` (when
/// given) about `task` (when given).
pub fn assert_error(value: &Value, code: &str, related: Option<&str>, task: Option<&str>) {
    assert_eq!(kind(value), "Error", "expected Error {code}, got {value}");
    assert_eq!(error_code(value), code, "{value}");
    assert!(
        !payload(value)["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "an Error explains itself: {value}"
    );
    if let Some(related) = related {
        assert_eq!(
            payload(value)["relatedMessageId"].as_str(),
            Some(related),
            "{value}"
        );
    }
    if let Some(task) = task {
        assert_eq!(payload(value)["taskId"].as_str(), Some(task), "{value}");
    }
}

/// Asserts `value` is an `Ack` for `ack` about `task` (when given).
pub fn assert_ack(value: &Value, ack: &str, task: Option<&str>) {
    assert_eq!(kind(value), "Ack", "expected Ack, got {value}");
    assert_eq!(
        payload(value)["acknowledgmentId"].as_str(),
        Some(ack),
        "{value}"
    );
    if let Some(task) = task {
        assert_eq!(payload(value)["taskId"].as_str(), Some(task), "{value}");
    }
}

/// Asserts `value` is a `TaskStatusUpdate` for `task` with `status`.
pub fn assert_update(value: &Value, task: &str, expected: &str) {
    assert_eq!(
        kind(value),
        "TaskStatusUpdate",
        "expected {expected}, got {value}"
    );
    assert_eq!(task_of(value), task, "{value}");
    assert_eq!(status(value), expected, "{value}");
}

/// Asserts `value` is the `TaskResult` of `task` with `result`.
pub fn assert_result(value: &Value, task: &str, result: Value) {
    assert_eq!(
        kind(value),
        "TaskResult",
        "expected TaskResult, got {value}"
    );
    assert_eq!(task_of(value), task, "{value}");
    assert_eq!(status(value), "Completed", "{value}");
    // `resultData` is optional in the schema; an empty one may be left out.
    let data = payload(value)
        .get("resultData")
        .cloned()
        .unwrap_or_else(|| json!({}));
    assert_eq!(data, result, "{value}");
}

/// Asserts `value` is the `TaskFailed` of `task` with `code`.
pub fn assert_failed(value: &Value, task: &str, code: &str) {
    assert_eq!(
        kind(value),
        "TaskFailed",
        "expected TaskFailed, got {value}"
    );
    assert_eq!(task_of(value), task, "{value}");
    assert_eq!(status(value), "Failed", "{value}");
    assert_eq!(error_code(value), code, "{value}");
}

/// Whether `value` ends its task.
pub fn is_terminal(value: &Value) -> bool {
    matches!(kind(value), "TaskResult" | "TaskFailed")
        || (kind(value) == "TaskStatusUpdate" && status(value) == "Cancelled")
}

/// Checks a provider's text message: JSON, a known provider → client
/// message, valid against its schema. Returns the parsed value.
pub fn check_provider_message(text: &str) -> Value {
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("provider sent non-JSON ({error}): {text}"));
    let message = Message::from_slice(text.as_bytes())
        .unwrap_or_else(|error| panic!("provider message breaks the schema ({error}): {text}"));
    assert_eq!(Some(message.name()), value["type"].as_str(), "{text}");
    assert_eq!(
        message.spec().direction,
        Direction::ServerToClient,
        "provider sent a client message: {text}"
    );
    value
}

/// Receives the updates of `task` until one with `progress` arrives;
/// returns them all (each checked to be a non-terminal update of `task`).
pub async fn updates_until(client: &mut WsClient, task: &str, wanted: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    within(&format!("{task} to reach {wanted}%"), async {
        loop {
            let value = client.recv().await;
            assert_eq!(kind(&value), "TaskStatusUpdate", "{value}");
            assert_eq!(task_of(&value), task, "{value}");
            assert!(
                matches!(status(&value), "Accepted" | "Queued" | "Processing"),
                "{value}"
            );
            let reached = progress(&value) >= wanted;
            seen.push(value);
            if reached {
                return seen;
            }
        }
    })
    .await
}

/// Assigns a gated task with an ack and waits until it reports 10%.
pub async fn start_gated(client: &mut WsClient) -> String {
    let id = task_id();
    let ack = new_id();
    client
        .send(&assign(&id, "gated", json!({}), Some(&ack)))
        .await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    updates_until(client, &id, 10).await;
    id
}

// ---------------------------------------------------------------------------
// A raw WebSocket client
// ---------------------------------------------------------------------------

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket connection to a provider. Every wait is bounded by
/// [`PATIENCE`]; every text message received is checked against the
/// schema.
pub struct WsClient {
    ws: Socket,
}

impl WsClient {
    pub async fn connect(endpoint: &str) -> WsClient {
        let (ws, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(endpoint),
        )
        .await
        .unwrap_or_else(|error| panic!("connect to {endpoint}: {error}"));
        WsClient { ws }
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        within("a frame to be sent", self.ws.send(frame))
            .await
            .expect("send a frame");
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        self.send_frame(Frame::text(text)).await;
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends a built message; returns its `messageId`.
    pub async fn send(&mut self, built: &Built) -> String {
        self.send_text(built.text.clone()).await;
        built.message_id.clone()
    }

    /// The next frame (of any kind), or `None` when the stream ended.
    pub async fn next_frame(&mut self) -> Option<Result<Frame, tungstenite::Error>> {
        within("a frame from the provider", self.ws.next()).await
    }

    /// The next text message (skipping pings and pongs), checked against
    /// the schema.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some(Ok(Frame::Text(text))) => return check_provider_message(text.as_str()),
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Receives until `accept` holds; returns the messages before it and
    /// the one that matched.
    pub async fn recv_until(
        &mut self,
        what: &str,
        mut accept: impl FnMut(&Value) -> bool,
    ) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        within(what, async {
            loop {
                let value = self.recv().await;
                if accept(&value) {
                    return (before, value);
                }
                before.push(value);
            }
        })
        .await
    }

    /// Sends `built` and returns the next message.
    pub async fn request(&mut self, built: &Built) -> Value {
        self.send(built).await;
        self.recv().await
    }

    /// Sends a probe (`GetStatus` for an unknown task) and returns every
    /// message that arrived before the `Error` answering it: the provider
    /// answers in order, so these are all it had queued. Proves the
    /// connection is still open and served.
    pub async fn barrier(&mut self) -> Vec<Value> {
        let probe = messages::get_status(&format!("probe-{}", new_id()));
        self.send(&probe).await;
        let (before, answer) = self
            .recv_until("the probe's answer", |value| {
                kind(value) == "Error"
                    && payload(value)["relatedMessageId"].as_str() == Some(&probe.message_id)
            })
            .await;
        assert!(
            matches!(error_code(&answer), "TASK_NOT_FOUND" | "UNAUTHORIZED"),
            "{answer}"
        );
        before
    }

    /// As [`barrier`](Self::barrier), asserting nothing came before the
    /// probe's answer.
    pub async fn assert_quiet(&mut self) {
        let before = self.barrier().await;
        assert!(before.is_empty(), "unexpected messages: {before:#?}");
    }

    /// Reads until the stream ends or fails; returns the close frame seen
    /// (if any). Text messages on the way are not expected.
    pub async fn closed(&mut self) -> Option<Option<tungstenite::protocol::CloseFrame>> {
        let mut close = None;
        loop {
            match self.next_frame().await {
                None | Some(Err(_)) => return close,
                Some(Ok(Frame::Close(frame))) => close = Some(frame),
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
                Some(Ok(other)) => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    pub fn inner(&mut self) -> &mut Socket {
        &mut self.ws
    }
}

// ---------------------------------------------------------------------------
// A fake provider the test scripts message by message
// ---------------------------------------------------------------------------

/// A WebSocket server that hands every text message it receives to the
/// test and sends whatever the test gives it, one connection at a time.
pub struct FakeProvider {
    addr: SocketAddr,
    incoming: mpsc::UnboundedReceiver<Value>,
    outgoing: mpsc::UnboundedSender<String>,
    server: JoinHandle<()>,
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("fake address");
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<String>();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                loop {
                    tokio::select! {
                        frame = ws.next() => match frame {
                            Some(Ok(Frame::Text(text))) => {
                                let value: Value = serde_json::from_str(text.as_str())
                                    .expect("the client sends JSON");
                                let _ = incoming_tx.send(value);
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                        Some(text) = outgoing_rx.recv() => {
                            if ws.send(Frame::text(text)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        FakeProvider {
            addr,
            incoming,
            outgoing,
            server,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The next message a client sent, checked against the schema as a
    /// client → provider message.
    pub async fn recv(&mut self) -> Value {
        let value = within("a message from the client", self.incoming.recv())
            .await
            .expect("the fake provider is running");
        let message = Message::decode(value.clone())
            .unwrap_or_else(|error| panic!("client message breaks the schema ({error}): {value}"));
        assert_eq!(message.spec().direction, Direction::ClientToServer);
        value
    }

    /// Messages received and not yet taken, without waiting.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut values = Vec::new();
        while let Ok(value) = self.incoming.try_recv() {
            values.push(value);
        }
        values
    }

    pub fn send(&self, text: String) {
        self.outgoing
            .send(text)
            .expect("the fake provider is running");
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}
