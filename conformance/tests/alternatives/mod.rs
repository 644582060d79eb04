//! The alternatives provider: an independent implementation of the task
//! protocol and its UDP discovery side, written from PROFILE.md and seed
//! 000 §4–7 without the runtime's provider, advertiser or message builders.
//!
//! It exists to test the conformance suite, not to be a good provider: it
//! starts with one [`Switch`] at a time, and each switch shows one behaviour
//! the profile allows but the reference provider does not choose, so the
//! suite's tolerance for every alternative can be checked.
//!
//! Parsing is by hand and deliberately lenient (JSON types are checked,
//! lengths and formats are not, except where the fixture echoes a value
//! back and its own output must stay valid).
//!
//! Nothing here sleeps to synchronise: every wait is for a frame, a task
//! slot or a signal, and every wait that could hang is bounded.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

mod discovery;
mod tasks;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

/// The one service the fixture offers.
pub const SERVICE: &str = "AltService";

/// The one behaviour, beyond the fixture's defaults, that a provider shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// The fixture's own defaults.
    Plain,
    /// No `Ack` for a message the provider rejects: one answered with an `Error`, or an
    /// `AssignTask` that ends at once in `TaskFailed` (unknown operation/service, invalid
    /// parameters, forbidden). Messages it processes successfully are still acked first.
    NoAckForRejected,
    /// Never sends `Accepted`/`Queued`/`Processing` on its own: a task's only unsolicited
    /// message is its terminal one (GetStatus / a re-assign of a running task are still
    /// answered with a `TaskStatusUpdate` `Processing` (`Queued` while it waits for a
    /// slot), as the profile requires).
    NoStatusUpdates,
    /// Sends `Accepted` at once, `Queued` while waiting for a free slot, then `Processing`
    /// with progress.
    AllStatusUpdates,
    /// A `CancelTask` for a running task loses the race: the task runs to its own end
    /// (`TaskResult`), and then the cancel is answered with `Error TASK_ALREADY_FINISHED`.
    CancelLosesRace,
    /// As `CancelLosesRace`, but the cancel gets no reply at all (the terminal message is
    /// the answer).
    CancelLosesRaceSilently,
    /// `CancelTask` of a finished task gets `Error TASK_COMPLETED` (not TASK_ALREADY_FINISHED).
    FinishedCancelCode,
    /// A repeated `AssignTask` of a finished task is answered with the very same stored
    /// terminal message (same `messageId` and `timestamp`), not a fresh copy.
    ReassignStoredTerminal,
    /// Error codes beyond the standard list where the profile fixes none: a message over
    /// 1 MiB gets `Error PAYLOAD_TOO_LARGE` (the connection stays open); the `fail` operation
    /// ends in `TaskFailed ALT_FAILURE` whatever its `code` (a `code` that is not a string
    /// is still `INVALID_PARAMETERS`); cancelling a finished task gets `Error ALREADY_DONE`.
    CustomErrorCodes,
    /// Every message it sends carries unknown extra members, at the top level and inside
    /// `payload` (`"x-alt-trace": {"hop": 1}`, `"altNote": "..."`); advertisements get
    /// the top-level one.
    ExtraFields,
    /// Timestamps with an offset and fractions, e.g. `2026-12-03T15:30:00.123456+05:30`
    /// (the default is UTC `Z` with milliseconds).
    OffsetTimestamps,
    /// Also accepts `payload.apiKey` inside `AssignTask` (seed §7): with keys configured,
    /// an `AssignTask` carrying a valid key on an unauthenticated connection authenticates
    /// it (its `callbackClientId` is the client); a wrong inline key gets
    /// `TaskFailed UNAUTHORIZED`. `Authenticate` works as always.
    ApiKeyInAssign,
    /// Discovery: status `Busy` while any task runs (`Online` otherwise).
    BusyWhenLoaded,
    /// Discovery: status `Degraded` always.
    Degraded,
}

impl Switch {
    /// Every switch, for tests that iterate.
    pub const ALL: &'static [Switch] = &[
        Switch::Plain,
        Switch::NoAckForRejected,
        Switch::NoStatusUpdates,
        Switch::AllStatusUpdates,
        Switch::CancelLosesRace,
        Switch::CancelLosesRaceSilently,
        Switch::FinishedCancelCode,
        Switch::ReassignStoredTerminal,
        Switch::CustomErrorCodes,
        Switch::ExtraFields,
        Switch::OffsetTimestamps,
        Switch::ApiKeyInAssign,
        Switch::BusyWhenLoaded,
        Switch::Degraded,
    ];
}

/// How an [`AltProvider`] is set up.
#[derive(Clone, Debug)]
pub struct AltConfig {
    pub switch: Switch,
    /// API keys; empty: no authentication.
    pub api_keys: Vec<String>,
    /// ACL: (client id, service, operation), each may be `"*"`. With keys
    /// configured, a client not listed may do nothing (`TaskFailed FORBIDDEN`).
    pub grants: Vec<(String, String, String)>,
    /// Tasks that run at once; more wait (`Queued`).
    pub capacity: usize,
    /// Discovery: the UDP port (None: no discovery side).
    pub discovery_port: Option<u16>,
    /// Discovery: heartbeat period.
    pub heartbeat: Duration,
}

impl AltConfig {
    /// No keys, capacity 4, no discovery, heartbeat 30 s.
    pub fn new(switch: Switch) -> AltConfig {
        AltConfig {
            switch,
            api_keys: Vec::new(),
            grants: Vec::new(),
            capacity: 4,
            discovery_port: None,
            heartbeat: Duration::from_secs(30),
        }
    }
}

/// Messages waiting for one connection's writer. A peer that lets this
/// many pile up does not read: its connection is closed rather than letting
/// the fixture's memory grow or its task table block.
const QUEUE: usize = 1024;
/// Larger frames and messages close the connection (tungstenite's limit).
const HARD_LIMIT: usize = 16 << 20;
/// Over this, `CustomErrorCodes` refuses a message (PROFILE.md: 1 MiB).
const SOFT_LIMIT: usize = 1 << 20;
/// Longest a WebSocket handshake, one write, or a close may take.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a connection waits for the peer's close reply at shutdown.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What every part of one provider shares.
pub(crate) struct Shared {
    config: AltConfig,
    service_id: String,
    endpoint: String,
    tasks: tasks::Table,
    /// Becomes true once at shutdown.
    shutdown: watch::Receiver<bool>,
    next_peer: AtomicU64,
}

impl Shared {
    fn switch(&self) -> Switch {
        self.config.switch
    }

    /// Now, in the switch's timestamp style.
    fn timestamp(&self) -> String {
        let now = Utc::now();
        if self.switch() == Switch::OffsetTimestamps {
            // India's +05:30: an offset that is not a whole hour.
            let offset = FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("a valid offset");
            now.with_timezone(&offset)
                .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
                .to_string()
        } else {
            now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
    }

    /// A task message with a fresh envelope (and the switch's extras).
    fn message(&self, kind: &str, mut payload: Map<String, Value>) -> Value {
        let mut message = Map::new();
        message.insert("type".into(), kind.into());
        message.insert("messageId".into(), new_id().into());
        message.insert("timestamp".into(), self.timestamp().into());
        if self.switch() == Switch::ExtraFields {
            message.insert("x-alt-trace".into(), json!({"hop": 1}));
            payload.insert(
                "altNote".into(),
                "an extra member receivers must ignore".into(),
            );
        }
        message.insert("payload".into(), Value::Object(payload));
        Value::Object(message)
    }

    /// Whether clients must authenticate.
    fn keyed(&self) -> bool {
        !self.config.api_keys.is_empty()
    }

    fn key_is_valid(&self, key: &str) -> bool {
        self.config.api_keys.iter().any(|known| known == key)
    }

    /// The ACL (only with keys): may `client` run `service`/`operation`?
    fn allows(&self, client: Option<&str>, service: &str, operation: &str) -> bool {
        if !self.keyed() {
            return true;
        }
        let matches = |pattern: &str, value: Option<&str>| pattern == "*" || Some(pattern) == value;
        self.config.grants.iter().any(|(c, s, o)| {
            matches(c, client) && matches(s, Some(service)) && matches(o, Some(operation))
        })
    }
}

/// Resolves once `signal` is true (or its sender is gone). The watch's
/// borrow is dropped inside: held across a handler it would block the
/// sender.
async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|on| *on).await;
}

/// A fresh message id: 32 hex digits.
fn new_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// One connection's outgoing side, shared by its reader and by the tasks it
/// assigned (live updates go to the assigning connection only).
pub(crate) struct Peer {
    id: u64,
    queue: mpsc::Sender<String>,
    /// Set when the connection must end (queue overflow, peer gone).
    closing: watch::Sender<bool>,
}

impl Peer {
    /// Queues a message. Never blocks (callers hold the task table's lock);
    /// a full queue closes the connection (see [`QUEUE`]).
    fn send(&self, message: &Value) {
        self.send_text(message.to_string());
    }

    fn send_text(&self, text: String) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(text) {
            self.closing.send_replace(true);
        }
    }

    fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// The client message types the fixture handles: name, payload members
/// that must be strings, and those that must be strings when present.
const CLIENT_TYPES: &[(&str, &[&str], &[&str])] = &[
    ("Authenticate", &["apiKey", "clientId"], &[]),
    (
        "AssignTask",
        &["taskId", "serviceName", "operation"],
        &["callbackClientId", "apiKey"],
    ),
    ("CancelTask", &["taskId"], &["originalClientId"]),
    ("GetStatus", &["taskId"], &[]),
    ("GetResult", &["taskId"], &[]),
];

/// Provider → client types: known to the family, but not ones a client sends.
const PROVIDER_TYPES: &[&str] = &[
    "Ack",
    "TaskStatusUpdate",
    "TaskResult",
    "TaskFailed",
    "Error",
];

/// A string usable as an id the fixture echoes back (schema: 1–256 chars).
fn usable_id(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?;
    (!text.is_empty() && text.chars().count() <= 256).then(|| text.to_owned())
}

/// One received message being answered: acks it at most once, and always
/// before any other reply to it.
pub(crate) struct Request<'a> {
    shared: &'a Arc<Shared>,
    peer: &'a Arc<Peer>,
    /// For `relatedMessageId` (omitted when not a usable string).
    message_id: Option<String>,
    ack_id: Option<String>,
    task_id: Option<String>,
    acked: Cell<bool>,
}

impl Request<'_> {
    /// Sends the `Ack` if one was asked for and not sent yet; `rejected`
    /// says whether the message is refused (no Ack under `NoAckForRejected`).
    fn ack(&self, rejected: bool) {
        let Some(ack_id) = &self.ack_id else { return };
        if self.acked.replace(true) {
            return;
        }
        if rejected && self.shared.switch() == Switch::NoAckForRejected {
            return;
        }
        let mut payload = Map::new();
        payload.insert("acknowledgmentId".into(), ack_id.as_str().into());
        if let Some(task_id) = &self.task_id {
            payload.insert("taskId".into(), task_id.as_str().into());
        }
        self.peer.send(&self.shared.message("Ack", payload));
    }

    /// Refuses the message with an `Error` (after the Ack, if due).
    fn error(&self, code: &str, text: &str) {
        self.ack(true);
        self.peer.send(&error_message(
            self.shared,
            code,
            text,
            self.message_id.as_deref(),
            self.task_id.as_deref(),
        ));
    }

    /// A reply to this message, after the Ack.
    fn reply(&self, message: &Value) {
        self.ack(false);
        self.peer.send(message);
    }

    fn reply_text(&self, text: String) {
        self.ack(false);
        self.peer.send_text(text);
    }

    /// An `AssignTask` that ends at once in `message` (a `TaskFailed`).
    fn reject_task(&self, message: &Value) {
        self.ack(true);
        self.peer.send(message);
    }
}

fn error_message(
    shared: &Shared,
    code: &str,
    text: &str,
    related: Option<&str>,
    task_id: Option<&str>,
) -> Value {
    let mut payload = Map::new();
    payload.insert("errorCode".into(), code.into());
    payload.insert("errorMessage".into(), text.into());
    if let Some(related) = related {
        payload.insert("relatedMessageId".into(), related.into());
    }
    if let Some(task_id) = task_id {
        payload.insert("taskId".into(), task_id.into());
    }
    shared.message("Error", payload)
}

/// What one connection knows about its client.
#[derive(Default)]
struct Session {
    authenticated: bool,
    client: Option<String>,
}

/// A running provider. Dropping it without [`AltProvider::shutdown`] only
/// signals everything to stop.
pub struct AltProvider {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    advertiser: Option<discovery::Advertiser>,
}

impl AltProvider {
    /// Binds 127.0.0.1:0 (WebSocket) and, with a discovery port, 0.0.0.0:port (UDP).
    pub async fn start(config: AltConfig) -> AltProvider {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the WebSocket port");
        let address = listener.local_addr().expect("the WebSocket address");
        let (stop, shutdown) = watch::channel(false);
        let capacity = config.capacity.max(1);
        let shared = Arc::new(Shared {
            service_id: format!("alt-{}", new_id()),
            endpoint: format!("ws://{address}"),
            tasks: tasks::Table::new(capacity),
            shutdown,
            next_peer: AtomicU64::new(1),
            config,
        });
        let accept = tokio::spawn(accept_loop(Arc::clone(&shared), listener));
        let advertiser = shared.config.discovery_port.map(|port| {
            discovery::Advertiser::start(Arc::clone(&shared), port)
                .expect("bind the discovery port")
        });
        AltProvider {
            shared,
            stop,
            accept: Some(accept),
            advertiser,
        }
    }

    /// `ws://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.shared.endpoint.clone()
    }

    /// Its advertisement as JSON (what it would broadcast now, without
    /// `respondsToClientId`).
    pub fn advertisement(&self) -> Value {
        discovery::advertisement(&self.shared, None, None)
    }

    /// Handler runs started so far (each taskId runs at most once).
    pub fn runs(&self) -> usize {
        self.shared.tasks.runs()
    }

    /// Stops: with discovery, broadcasts one `Offline` advertisement first;
    /// closes every connection (close 1001), stops every task, frees the
    /// ports. Takes a few seconds at most.
    pub async fn shutdown(mut self) {
        if let Some(advertiser) = self.advertiser.take() {
            advertiser.stop().await;
        }
        self.stop.send_replace(true);
        if let Some(mut accept) = self.accept.take() {
            // Connections close within PATIENCE + CLOSE_WAIT; beyond, abort.
            let limit = PATIENCE + CLOSE_WAIT + Duration::from_secs(1);
            if tokio::time::timeout(limit, &mut accept).await.is_err() {
                accept.abort();
            }
        }
        self.shared.tasks.stop_runners().await;
    }
}

impl Drop for AltProvider {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Accepts connections until shutdown, then waits (bounded) for them to close.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(Arc::clone(&shared), stream));
                }
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    // Frees the port at once.
    drop(listener);
    let limit = PATIENCE + CLOSE_WAIT;
    let _ = tokio::time::timeout(limit, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    // Dropping the set aborts whatever is left.
}

/// One connection: a reader (this task) that answers messages in order,
/// and a writer fed by the peer's queue.
async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    // Small replies in a row must not wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(HARD_LIMIT))
        .max_frame_size(Some(HARD_LIMIT));
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(config));
    let Ok(Ok(socket)) = tokio::time::timeout(PATIENCE, handshake).await else {
        return;
    };
    let (sink, mut frames) = socket.split();
    let (queue, outgoing) = mpsc::channel(QUEUE);
    let (closing, closing_rx) = watch::channel(false);
    let peer = Arc::new(Peer {
        id: shared.next_peer.fetch_add(1, Ordering::Relaxed),
        queue,
        closing,
    });
    let writer = tokio::spawn(write_loop(
        sink,
        outgoing,
        closing_rx.clone(),
        shared.shutdown.clone(),
    ));
    read_loop(&shared, &peer, &mut frames, closing_rx).await;
    peer.close();
    let mut writer = writer;
    if tokio::time::timeout(PATIENCE, &mut writer).await.is_err() {
        writer.abort();
    }
}

type Frames = SplitStream<WebSocketStream<TcpStream>>;
type Sink = SplitSink<WebSocketStream<TcpStream>, Frame>;

async fn read_loop(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    frames: &mut Frames,
    mut closing: watch::Receiver<bool>,
) {
    let mut shutdown = shared.shutdown.clone();
    let mut session = Session::default();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(frame)) => on_frame(shared, peer, &mut session, frame),
                None | Some(Err(_)) => return,
            },
            () = stopped(&mut closing) => return,
            () = stopped(&mut shutdown) => {
                // The writer sends the close frame; read on (bounded) so the
                // peer's close reply completes the handshake.
                let drain = async { while let Some(Ok(_)) = frames.next().await {} };
                let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
                return;
            }
        }
    }
}

fn on_frame(shared: &Arc<Shared>, peer: &Arc<Peer>, session: &mut Session, frame: Frame) {
    match frame {
        Frame::Text(text) => handle_text(shared, peer, session, text.as_str()),
        Frame::Binary(_) => {
            let reason = "binary frames are not messages";
            peer.send(&error_message(
                shared,
                "INVALID_MESSAGE",
                reason,
                None,
                None,
            ));
        }
        // tungstenite answers pings and close frames itself; reading on
        // lets it flush those answers, and then the stream ends.
        _ => {}
    }
}

/// Sends queued messages in order; at shutdown, what is queued and then a
/// close frame (1001, going away).
async fn write_loop(
    mut sink: Sink,
    mut outgoing: mpsc::Receiver<String>,
    mut closing: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            text = outgoing.recv() => match text {
                Some(text) => if !send(&mut sink, Frame::text(text)).await { return },
                None => return,
            },
            () = stopped(&mut closing) => return,
            () = stopped(&mut shutdown) => {
                while let Ok(text) = outgoing.try_recv() {
                    if !send(&mut sink, Frame::text(text)).await {
                        return;
                    }
                }
                let frame = CloseFrame { code: CloseCode::Away, reason: "shutting down".into() };
                let _ = send(&mut sink, Frame::Close(Some(frame))).await;
                return;
            }
        }
    }
}

/// One frame out, bounded: false when the connection is unusable (a peer
/// that stops reading for [`PATIENCE`] is given up on).
async fn send(sink: &mut Sink, frame: Frame) -> bool {
    matches!(
        tokio::time::timeout(PATIENCE, sink.send(frame)).await,
        Ok(Ok(()))
    )
}

/// Answers one text message.
fn handle_text(shared: &Arc<Shared>, peer: &Arc<Peer>, session: &mut Session, text: &str) {
    let bare = |code: &str, reason: &str, related: Option<&str>| {
        peer.send(&error_message(shared, code, reason, related, None));
    };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return bare("INVALID_MESSAGE", "not JSON", None);
    };
    let Value::Object(map) = value else {
        return bare("INVALID_MESSAGE", "not a JSON object", None);
    };
    // `relatedMessageId` may be any string up to 256 characters.
    let message_id = map.get("messageId").and_then(Value::as_str);
    let message_id = message_id
        .filter(|id| id.chars().count() <= 256)
        .map(str::to_owned);
    let Some(name) = map.get("type").and_then(Value::as_str) else {
        return bare(
            "INVALID_MESSAGE",
            "`type` is missing or not a string",
            message_id.as_deref(),
        );
    };
    let Some(&kind) = CLIENT_TYPES.iter().find(|(known, ..)| *known == name) else {
        let (code, reason) = if PROVIDER_TYPES.contains(&name) {
            ("INVALID_MESSAGE", "a provider → client message type")
        } else {
            ("UNKNOWN_TYPE", "unknown message type")
        };
        return bare(code, reason, message_id.as_deref());
    };
    let payload = map.get("payload").and_then(Value::as_object);
    let request = Request {
        shared,
        peer,
        message_id,
        ack_id: usable_id(map.get("acknowledgmentId")),
        task_id: payload.and_then(|payload| usable_id(payload.get("taskId"))),
        acked: Cell::new(false),
    };
    if text.len() > SOFT_LIMIT && shared.switch() == Switch::CustomErrorCodes {
        return request.error("PAYLOAD_TOO_LARGE", "messages over 1 MiB are refused");
    }
    if let Err(problem) = check_members(kind, &map) {
        return request.error("INVALID_MESSAGE", &problem);
    }
    let payload = payload.expect("checked: payload is an object");
    dispatch(&request, session, kind.0, payload);
}

/// A client message type: name, required and optional string members.
type Kind = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// The JSON types of the members the fixture reads, and the ids it echoes.
fn check_members((_, required, optional): Kind, map: &Map<String, Value>) -> Result<(), String> {
    for member in ["messageId", "timestamp"] {
        if !map.get(member).is_some_and(Value::is_string) {
            return Err(format!("`{member}` is missing or not a string"));
        }
    }
    if let Some(ack_id) = map.get("acknowledgmentId") {
        if usable_id(Some(ack_id)).is_none() {
            return Err("`acknowledgmentId` is not a string of 1 to 256 characters".into());
        }
    }
    let Some(payload) = map.get("payload").and_then(Value::as_object) else {
        return Err("`payload` is missing or not an object".into());
    };
    for member in required {
        if !payload.get(*member).is_some_and(Value::is_string) {
            return Err(format!("`payload.{member}` is missing or not a string"));
        }
    }
    for member in optional {
        if payload.get(*member).is_some_and(|value| !value.is_string()) {
            return Err(format!("`payload.{member}` is not a string"));
        }
    }
    if payload.contains_key("taskId") && usable_id(payload.get("taskId")).is_none() {
        return Err("`payload.taskId` is not a string of 1 to 256 characters".into());
    }
    if payload
        .get("taskParameters")
        .is_some_and(|parameters| !parameters.is_object())
    {
        return Err("`payload.taskParameters` is not an object".into());
    }
    Ok(())
}

/// Authentication, then the message's own handling.
fn dispatch(request: &Request, session: &mut Session, name: &str, payload: &Map<String, Value>) {
    let shared = request.shared;
    let text = |member: &str| payload.get(member).and_then(Value::as_str);
    if name == "Authenticate" {
        let key = text("apiKey").unwrap_or_default();
        if shared.keyed() && !shared.key_is_valid(key) {
            return request.error("UNAUTHORIZED", "unknown API key");
        }
        session.authenticated = true;
        session.client = text("clientId").map(str::to_owned);
        return request.ack(false);
    }
    let inline_key =
        (name == "AssignTask" && shared.keyed() && shared.switch() == Switch::ApiKeyInAssign)
            .then(|| text("apiKey"))
            .flatten();
    if let Some(key) = inline_key {
        if !shared.key_is_valid(key) {
            // Refused before the task exists: it is not remembered.
            let task_id = request.task_id.as_deref().unwrap_or_default();
            let payload = tasks::failed_payload(task_id, "UNAUTHORIZED", "unknown inline API key");
            return request.reject_task(&shared.message("TaskFailed", payload));
        }
        if !session.authenticated {
            session.authenticated = true;
            session.client = text("callbackClientId").map(str::to_owned);
        }
    }
    if shared.keyed() && !session.authenticated {
        return request.error("UNAUTHORIZED", "authenticate first");
    }
    let task_id = request.task_id.as_deref().unwrap_or_default();
    match name {
        "AssignTask" => tasks::assign(request, session.client.as_deref(), payload),
        "CancelTask" => tasks::cancel(request, task_id),
        "GetStatus" => tasks::status(request, task_id),
        // GetResult: the only client type left.
        _ => tasks::result(request, task_id),
    }
}
