//! Test support for the task suite's own tests: the reference provider on
//! loopback (plain, with an API key and ACL, or over TLS), the suite run
//! as a map of verdicts, and a fault proxy that sits between the suite and
//! the reference provider and breaks exactly one spec point.
//!
//! Nothing here sleeps to synchronise: every wait is for a frame, a
//! connection or a task, bounded by a timeout.

// Each test uses a different part of this module.
#![allow(dead_code)]

use specwire_protocol::JsonProtocol;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_conformance::runner::Selection;
use specwire_conformance::task::{self, Recipes, TaskTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_protocol::discovery::ServiceAdvertisement;
use specwire_protocol::task::Message;
use specwire_protocol::Direction;
use specwire_runtime::clock::new_id;
use specwire_runtime::discovery::{AdvertisedService, Presence};
use specwire_runtime::task::messages::{self, TaskReport, TaskState};
use specwire_runtime::task::{AccessPolicy, Provider, ProviderConfig, TaskHandler, TaskOutput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as Frame;

/// The API key of the authenticated reference provider.
pub const API_KEY: &str = "specwire-suite-test-key";
/// The suite's client id: granted everything.
pub const SUITE_CLIENT: &str = "suite-client";
/// A client granted only `DiagnosticsService/echo`: the `succeeds` task
/// (`sleep`) is forbidden to it.
pub const FORBIDDEN_CLIENT: &str = "forbidden-client";
/// The service the recipes use.
pub const SERVICE: &str = "DiagnosticsService";
/// Tasks of `succeeds` take this long: long enough that a `CancelTask`
/// sent right after the assign always wins, short enough to keep runs fast.
pub const SLEEP_MS: u64 = 200;
/// A fixed first seed for the generated sessions (see
/// [`seed_with_reassign_then_cancel`]).
pub const DEFAULT_SEED: u64 = 1;

/// Longest any single harness wait (connecting, a handshake) may take.
const PATIENCE: Duration = Duration::from_secs(5);

/// How the reference provider is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No authentication, no ACL.
    Open,
    /// `Authenticate` with [`API_KEY`]; [`SUITE_CLIENT`] may do anything,
    /// [`FORBIDDEN_CLIENT`] only `DiagnosticsService/echo`.
    Keyed,
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM files
/// in a temporary directory removed on drop.
pub struct SelfSigned {
    _dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    pub fn new() -> SelfSigned {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a certificate");
        let dir = tempfile::Builder::new()
            .prefix("specwire-suite-tls-")
            .tempdir()
            .expect("make a temporary directory");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key.pem");
        SelfSigned {
            _dir: dir,
            cert,
            key,
        }
    }
}

/// The reference provider (`reference_services()`) on `127.0.0.1:0`.
pub async fn start_reference(access: Access, tls: Option<&SelfSigned>) -> Provider {
    let access = match access {
        Access::Open => AccessPolicy::open(),
        Access::Keyed => AccessPolicy::api_keys([API_KEY])
            .grant(SUITE_CLIENT, "*", "*")
            .grant(FORBIDDEN_CLIENT, SERVICE, "echo"),
    };
    let tls = tls.map(|certificate| {
        specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
            .expect("a TLS server configuration")
    });
    let config = ProviderConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        access,
        tls,
        // Never queue: several suite runs may share a machine with 2 cores.
        capacity: 64,
        cancel_grace: Duration::from_secs(2),
        ..ProviderConfig::default()
    };
    tokio::time::timeout(
        PATIENCE,
        Provider::start(config, specwire_services::reference_services()),
    )
    .await
    .expect("the provider starts in time")
    .expect("start the reference provider")
}

/// The advertisement of the reference `DiagnosticsService` at `endpoint`.
pub fn diagnostics_advertisement(endpoint: &str) -> ServiceAdvertisement {
    let description = specwire_services::DiagnosticsService::new()
        .description()
        .clone();
    AdvertisedService::new(description, endpoint).advertisement(Presence::IDLE, None)
}

/// A target for `endpoint` with the recipes, service, advertisement and
/// short timeouts the tests use, and (for [`Access::Keyed`]) the key and
/// client ids.
pub fn target(endpoint: &str, access: Access) -> TaskTarget {
    let mut target = TaskTarget::new(endpoint);
    let recipes = json!({
        "succeeds": {"serviceName": SERVICE, "operation": "sleep",
                     "taskParameters": {"durationMs": SLEEP_MS, "steps": 2}},
        "fails": {"serviceName": SERVICE, "operation": "fail",
                  "taskParameters": {"code": "SIMULATED"}}
    });
    target.recipes = Recipes::from_json(&recipes.to_string()).expect("the recipes parse");
    target.service = Some(SERVICE.into());
    target.advertisement = Some(diagnostics_advertisement(endpoint));
    target.reply_timeout = Duration::from_secs(2);
    target.task_timeout = Duration::from_secs(10);
    target.settle = Duration::from_millis(50);
    if access == Access::Keyed {
        target.api_key = Some(API_KEY.into());
        target.client_id = SUITE_CLIENT.into();
        target.forbidden_client = Some(FORBIDDEN_CLIENT.into());
    }
    target
}

/// Runs the cases `only` admits (all when empty) against `target`.
pub async fn run_results(target: &TaskTarget, only: &[&str]) -> Vec<CaseResult> {
    let selection = Selection {
        only: only.iter().map(|id| (*id).to_owned()).collect(),
        skip: Vec::new(),
    };
    task::run(target, &selection, &mut ()).await
}

/// The verdict names of a run, by case id.
pub fn verdicts(results: &[CaseResult]) -> BTreeMap<&'static str, &'static str> {
    results
        .iter()
        .map(|result| (result.spec.id, result.verdict.name()))
        .collect()
}

/// Runs the suite and returns case id → verdict name.
pub async fn run_suite(target: TaskTarget, only: &[&str]) -> BTreeMap<&'static str, &'static str> {
    verdicts(&run_results(&target, only).await)
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

/// The first seed from [`DEFAULT_SEED`] whose own session assigns a task
/// again and later cancels it: with it, the very first session of the
/// generated case fails behind [`Fault::CloseOnReassignThenCancel`].
pub fn seed_whose_first_session_reassigns_then_cancels() -> u64 {
    (DEFAULT_SEED..DEFAULT_SEED + 10_000)
        .find(|&seed| reassigns_then_cancels(seed))
        .expect("some seed re-assigns then cancels")
}

/// Whether generated session `seed` assigns a task again and later
/// cancels that task (what [`Fault::CloseOnReassignThenCancel`] reacts to).
fn reassigns_then_cancels(seed: u64) -> bool {
    use specwire_conformance::task::generated::{steps, Step};
    let steps = steps(seed, 10);
    steps.iter().enumerate().any(|(at, step)| match step {
        Step::AssignAgain(n) => steps[at + 1..].contains(&Step::Cancel(*n)),
        _ => false,
    })
}

/// The first seed from [`DEFAULT_SEED`] on whose sessions (the
/// generated case runs `SESSIONS` consecutive seeds) include a re-assign
/// followed by a cancel of the same task. Computed once per test process
/// (drawing sessions is not free).
pub fn seed_with_reassign_then_cancel() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let sessions = specwire_conformance::task::generated::SESSIONS;
        let mut cache = HashMap::new();
        let mut hit = |seed: u64| {
            *cache
                .entry(seed)
                .or_insert_with(|| reassigns_then_cancels(seed))
        };
        (DEFAULT_SEED..DEFAULT_SEED + 10_000)
            .find(|&seed| (seed..seed + sessions).any(&mut hit))
            .expect("some seed re-assigns then cancels")
    })
}

// ---------------------------------------------------------------------------
// The fault proxy
// ---------------------------------------------------------------------------

/// One deliberate fault: the provider behind the proxy breaks exactly one
/// spec point and stays valid otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A transparent proxy: the control.
    None,
    /// `Error` messages carry a timestamp that is not a date-time.
    InvalidErrorTimestamp,
    /// A client message with unknown top-level members is refused with
    /// `Error INVALID_MESSAGE` (by the proxy, not forwarded).
    RefuseUnknownFields,
    /// `Ack`s (but `Authenticate`'s) come after the next message.
    LateAck,
    /// The first live `TaskResult` of a task is sent twice.
    DuplicateResult,
    /// Before the first live `TaskResult`, an update with a lower progress.
    ProgressGoesBack,
    /// After a task's first terminal message, a `Processing` update.
    UpdateAfterTerminal,
    /// A `fail` task's live `TaskFailed` is delivered as `Cancelled`.
    FailedAsCancelled,
    /// `UNKNOWN_OPERATION` for an unknown operation of a known service
    /// becomes `INTERNAL`.
    UnknownOperationCode,
    /// `UNKNOWN_OPERATION` for an unknown service becomes `INTERNAL`.
    UnknownServiceCode,
    /// `TaskFailed INVALID_PARAMETERS` becomes `INTERNAL`.
    InvalidParametersCode,
    /// `INVALID_MESSAGE` answering a schema-breaking `AssignTask` becomes
    /// `INTERNAL`.
    BrokenEnvelopeCode,
    /// A repeated `AssignTask` of a finished task runs it again (upstream
    /// under a new task id, mapped back).
    ReassignRunsAgain,
    /// `CancelTask` of a finished task is answered with `Cancelled`.
    CancelFinishedTerminates,
    /// `TASK_NOT_FOUND` answering `CancelTask` becomes `INTERNAL`.
    CancelUnknownCode,
    /// After a live `Cancelled`, a `TaskResult` for the task.
    ResultAfterCancel,
    /// `TASK_NOT_FOUND` answering `GetStatus` becomes `INTERNAL`.
    StatusUnknownCode,
    /// `TASK_NOT_FOUND` answering `GetResult` becomes `INTERNAL`.
    ResultUnknownCode,
    /// `GetStatus` of a finished task is answered with `Processing`.
    StatusFinishedProcessing,
    /// `GetResult` of a completed task gets `Error RESULT_NOT_READY`.
    ResultFinishedNotReady,
    /// `GetResult` of a failed task gets `Error RESULT_NOT_READY`.
    ResultFailedNotReady,
    /// `INVALID_MESSAGE` answering text that is not JSON becomes
    /// `UNKNOWN_TYPE`.
    MalformedJsonCode,
    /// `INVALID_MESSAGE` answering a schema-breaking message other than
    /// `AssignTask` becomes `INTERNAL`.
    WrongTypesCode,
    /// `UNKNOWN_TYPE` becomes `INVALID_MESSAGE`.
    UnknownTypeCode,
    /// The `TaskResult` of a task that was running when text that is not
    /// JSON arrived is dropped.
    LoseResultOnGarbage,
    /// Any terminal message (`Cancelled` too) of a task that was running
    /// when text that is not JSON arrived is dropped.
    LoseEndOnGarbage,
    /// The proxy authenticates upstream itself on connect: messages before
    /// `Authenticate` are served.
    ServeBeforeAuthenticate,
    /// A wrong key in `Authenticate` is replaced by the right one.
    AcceptWrongKey,
    /// `Authenticate` is refused with `Error UNAUTHORIZED`, whatever the key.
    RefuseRightKey,
    /// `TaskFailed FORBIDDEN` becomes `UNKNOWN_OPERATION`.
    ForbiddenCode,
    /// Pings never reach the provider, so no pong comes back.
    NoPong,
    /// A close frame from the client drops the TCP connection: no close
    /// frame back.
    NoCloseReply,
    /// A `CancelTask` of a task assigned twice on the connection closes it.
    CloseOnReassignThenCancel,
    // SHOULD points: the same precision, for the warnings.
    /// A message over 1 MiB drops the connection.
    DropOnLargeMessage,
    /// `Ack`s that name a task name another one.
    AckWrongTaskId,
    /// `Error`s that name a message name another one.
    ErrorWrongRelated,
    // Hostile, for the time bounds (not a single spec point).
    /// Every `Ack` spells `acknowledgmentId` as `acknowledgementId`.
    MisspelledAck,
}

impl Fault {
    /// Faults that need the WebSocket frames themselves: the proxy passes
    /// bytes through and inspects the client's frames.
    fn is_raw(self) -> bool {
        matches!(self, Fault::NoPong | Fault::NoCloseReply)
    }
}

/// A WebSocket proxy in front of a provider, applying one [`Fault`].
pub struct FaultProxy {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

/// What the proxy knows about the provider behind it.
#[derive(Clone, Debug)]
struct Upstream {
    endpoint: String,
    addr: SocketAddr,
    /// The services it serves.
    services: HashSet<String>,
    /// Its API key, if it requires one.
    api_key: Option<String>,
    /// A client id its ACL grants everything.
    client_id: String,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `provider` (plain
    /// `ws://`), which requires `api_key` (if any).
    pub async fn start(provider: &Provider, api_key: Option<&str>, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let upstream = Arc::new(Upstream {
            endpoint: provider.endpoint(),
            addr: provider.local_addr(),
            services: provider
                .services()
                .into_iter()
                .map(|service| service.name)
                .collect(),
            api_key: api_key.map(str::to_owned),
            client_id: SUITE_CLIENT.to_owned(),
        });
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let upstream = Arc::clone(&upstream);
                    let mut set = connections.lock().unwrap();
                    while set.try_join_next().is_some() {}
                    if fault.is_raw() {
                        set.spawn(serve_raw(stream, upstream.addr, fault));
                    } else {
                        set.spawn(serve_messages(stream, upstream, fault));
                    }
                }
            }
        });
        FaultProxy {
            addr,
            accept,
            connections,
        }
    }

    /// `ws://ADDR` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut set) = self.connections.lock() {
            set.abort_all();
        }
    }
}

// ---- raw mode: bytes through, client frames inspected ---------------------

/// Passes bytes both ways; in the client → provider direction, after the
/// HTTP upgrade request, parses the (masked) frames and drops pings
/// ([`Fault::NoPong`]) or drops the connection on a close frame
/// ([`Fault::NoCloseReply`]).
async fn serve_raw(client: TcpStream, upstream: SocketAddr, fault: Fault) {
    let Ok(Ok(provider)) = tokio::time::timeout(PATIENCE, TcpStream::connect(upstream)).await
    else {
        return;
    };
    let _ = provider.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut provider_read, mut provider_write) = provider.into_split();
    let down = async {
        let _ = tokio::io::copy(&mut provider_read, &mut client_write).await;
    };
    let up = async {
        let mut buffer: Vec<u8> = Vec::new();
        let mut upgraded = false;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            buffer.extend_from_slice(&chunk[..read]);
            if !upgraded {
                let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
                    continue;
                };
                let request: Vec<u8> = buffer.drain(..end + 4).collect();
                if provider_write.write_all(&request).await.is_err() {
                    return;
                }
                upgraded = true;
            }
            while let Some((opcode, length)) = frame_at(&buffer) {
                let frame: Vec<u8> = buffer.drain(..length).collect();
                match (fault, opcode) {
                    (Fault::NoPong, 0x9) => continue,
                    (Fault::NoCloseReply, 0x8) => return,
                    _ => {
                        if provider_write.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    // Either side ending ends both: the sockets drop here.
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}

/// The opcode and total length of the complete frame at the start of
/// `buffer`, if it holds one.
fn frame_at(buffer: &[u8]) -> Option<(u8, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    let masked = buffer[1] & 0x80 != 0;
    let (payload, mut header) = match buffer[1] & 0x7f {
        126 => {
            let bytes = buffer.get(2..4)?;
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if masked {
        header += 4;
    }
    let total = header + usize::try_from(payload).ok()?;
    (buffer.len() >= total).then_some((opcode, total))
}

// ---- message mode: one upstream connection per client connection ----------

/// What the proxy does with one message.
#[derive(Debug)]
enum Action {
    ToClient(String),
    ToProvider(String),
    /// Drop both connections without a word.
    Drop,
}

/// How the provider ended a task, as seen on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    Failed,
    Cancelled,
}

/// What the proxy knows about a task assigned on this connection.
#[derive(Clone, Debug, Default)]
struct TaskInfo {
    service: String,
    operation: String,
    /// Times the client assigned it.
    assigned: u32,
    /// Its first (live) terminal message, once seen.
    ended: Option<Ending>,
    /// Highest progress reported.
    progress: u8,
    /// Was running when text that is not JSON arrived.
    doomed: bool,
}

/// What a client message was, for mapping the provider's `Error` replies
/// (by `relatedMessageId`) to the situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Cancel,
    Status,
    Result,
    /// An `AssignTask` that breaks the schema.
    BrokenAssign,
    /// Another client message that breaks the schema.
    BrokenOther,
}

/// One connection's state.
struct ConnState {
    fault: Fault,
    upstream: Arc<Upstream>,
    tasks: HashMap<String, TaskInfo>,
    asked: HashMap<String, Asked>,
    /// `acknowledgmentId`s of `Authenticate` messages.
    auth_acks: HashSet<String>,
    /// `Ack`s held back ([`Fault::LateAck`]).
    held: Vec<String>,
    /// Texts that were not JSON, not yet answered.
    garbage_pending: usize,
    /// Upstream task id → the client's ([`Fault::ReassignRunsAgain`]).
    aliases: HashMap<String, String>,
}

fn set_code(value: &mut Value, code: &str) -> String {
    value["payload"]["errorCode"] = json!(code);
    value.to_string()
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn report(task_id: &str, state: &TaskState, progress: u8) -> String {
    messages::report(&TaskReport {
        task_id,
        state,
        progress,
        note: None,
        client_id: None,
    })
}

impl ConnState {
    fn new(fault: Fault, upstream: Arc<Upstream>) -> ConnState {
        ConnState {
            fault,
            upstream,
            tasks: HashMap::new(),
            asked: HashMap::new(),
            auth_acks: HashSet::new(),
            held: Vec::new(),
            garbage_pending: 0,
            aliases: HashMap::new(),
        }
    }

    /// What to send upstream as soon as the connection is open.
    fn opening(&self) -> Vec<Action> {
        match (self.fault, &self.upstream.api_key) {
            (Fault::ServeBeforeAuthenticate, Some(key)) => {
                // No acknowledgmentId: the provider answers nothing.
                let message = messages::authenticate(key, &self.upstream.client_id, None);
                vec![Action::ToProvider(message.text)]
            }
            _ => Vec::new(),
        }
    }

    fn finished(&self, task_id: &str) -> Option<Ending> {
        self.tasks.get(task_id).and_then(|task| task.ended)
    }

    fn on_client(&mut self, text: String) -> Vec<Action> {
        let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
            self.garbage_pending += 1;
            if matches!(
                self.fault,
                Fault::LoseResultOnGarbage | Fault::LoseEndOnGarbage
            ) {
                for task in self.tasks.values_mut() {
                    if task.ended.is_none() {
                        task.doomed = true;
                    }
                }
            }
            return vec![Action::ToProvider(text)];
        };
        let kind = str_at(&value, "/type").unwrap_or_default().to_owned();
        let message_id = str_at(&value, "/messageId").unwrap_or_default().to_owned();
        let task_id = str_at(&value, "/payload/taskId").map(str::to_owned);
        let valid = Message::decode_from(value.clone(), Some(Direction::ClientToServer)).is_ok();
        let client_kind = matches!(
            kind.as_str(),
            "Authenticate" | "AssignTask" | "CancelTask" | "GetStatus" | "GetResult"
        );
        if client_kind && !valid {
            let asked = if kind == "AssignTask" {
                Asked::BrokenAssign
            } else {
                Asked::BrokenOther
            };
            self.asked.insert(message_id.clone(), asked);
            return vec![Action::ToProvider(text)];
        }
        if !valid {
            return vec![Action::ToProvider(text)];
        }
        match kind.as_str() {
            "Authenticate" => {
                if let Some(ack) = str_at(&value, "/acknowledgmentId") {
                    self.auth_acks.insert(ack.to_owned());
                }
                let key = self.upstream.api_key.clone().unwrap_or_default();
                match self.fault {
                    Fault::AcceptWrongKey if str_at(&value, "/payload/apiKey") != Some(&key) => {
                        value["payload"]["apiKey"] = json!(key);
                        return vec![Action::ToProvider(value.to_string())];
                    }
                    Fault::RefuseRightKey => {
                        let error = messages::error(
                            "UNAUTHORIZED",
                            "invalid API key",
                            Some(&message_id),
                            None,
                        );
                        return vec![Action::ToClient(error)];
                    }
                    _ => {}
                }
            }
            "AssignTask" => {
                let id = task_id.clone().unwrap_or_default();
                let task = self.tasks.entry(id.clone()).or_default();
                task.assigned += 1;
                if task.assigned == 1 {
                    task.service = str_at(&value, "/payload/serviceName")
                        .unwrap_or_default()
                        .into();
                    task.operation = str_at(&value, "/payload/operation")
                        .unwrap_or_default()
                        .into();
                }
                if self.fault == Fault::ReassignRunsAgain && task.ended.is_some() {
                    let alias = format!("{id}-again-{}", new_id());
                    self.aliases.insert(alias.clone(), id);
                    value["payload"]["taskId"] = json!(alias);
                    return vec![Action::ToProvider(value.to_string())];
                }
            }
            "CancelTask" => {
                let id = task_id.clone().unwrap_or_default();
                self.asked.insert(message_id.clone(), Asked::Cancel);
                if self.fault == Fault::CloseOnReassignThenCancel
                    && self.tasks.get(&id).is_some_and(|task| task.assigned > 1)
                {
                    return vec![Action::Drop];
                }
                if self.fault == Fault::CancelFinishedTerminates && self.finished(&id).is_some() {
                    let progress = self.tasks[&id].progress;
                    return vec![Action::ToClient(report(
                        &id,
                        &TaskState::Cancelled,
                        progress,
                    ))];
                }
            }
            "GetStatus" => {
                let id = task_id.clone().unwrap_or_default();
                self.asked.insert(message_id.clone(), Asked::Status);
                if self.fault == Fault::StatusFinishedProcessing && self.finished(&id).is_some() {
                    let progress = self.tasks[&id].progress;
                    return vec![Action::ToClient(report(
                        &id,
                        &TaskState::Processing,
                        progress,
                    ))];
                }
            }
            "GetResult" => {
                let id = task_id.clone().unwrap_or_default();
                self.asked.insert(message_id.clone(), Asked::Result);
                let not_ready = matches!(
                    (self.fault, self.finished(&id)),
                    (Fault::ResultFinishedNotReady, Some(Ending::Completed))
                        | (Fault::ResultFailedNotReady, Some(Ending::Failed))
                );
                if not_ready {
                    let error = messages::error(
                        "RESULT_NOT_READY",
                        "the result is not ready",
                        Some(&message_id),
                        Some(&id),
                    );
                    return vec![Action::ToClient(error)];
                }
            }
            _ => {}
        }
        if self.fault == Fault::DropOnLargeMessage && text.len() > 1024 * 1024 {
            return vec![Action::Drop];
        }
        if self.fault == Fault::RefuseUnknownFields {
            let envelope = [
                "type",
                "messageId",
                "timestamp",
                "payload",
                "acknowledgmentId",
            ];
            let extra = value
                .as_object()
                .is_some_and(|object| object.keys().any(|key| !envelope.contains(&key.as_str())));
            if extra {
                let error = messages::error(
                    "INVALID_MESSAGE",
                    "unknown members",
                    Some(&message_id),
                    task_id.as_deref(),
                );
                return vec![Action::ToClient(error)];
            }
        }
        vec![Action::ToProvider(text)]
    }

    fn on_provider(&mut self, text: String) -> Vec<Action> {
        let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
            return vec![Action::ToClient(text)];
        };
        // Replies about a task run again under another id speak of the
        // client's task.
        if let Some(original) =
            str_at(&value, "/payload/taskId").and_then(|id| self.aliases.get(id))
        {
            value["payload"]["taskId"] = json!(original.clone());
        }
        let kind = str_at(&value, "/type").unwrap_or_default().to_owned();
        let task_id = str_at(&value, "/payload/taskId").map(str::to_owned);
        let status = str_at(&value, "/payload/status")
            .unwrap_or_default()
            .to_owned();
        let code = str_at(&value, "/payload/errorCode")
            .unwrap_or_default()
            .to_owned();
        let related = str_at(&value, "/payload/relatedMessageId").map(str::to_owned);
        let asked = related
            .as_deref()
            .and_then(|id| self.asked.get(id))
            .copied();
        let ending = match (kind.as_str(), status.as_str()) {
            ("TaskResult", _) => Some(Ending::Completed),
            ("TaskFailed", _) => Some(Ending::Failed),
            ("TaskStatusUpdate", "Cancelled") => Some(Ending::Cancelled),
            _ => None,
        };
        // The first terminal message of a task assigned on this connection:
        // the live one, not a reply to a query or a re-assign.
        let mut live_end = None;
        let mut task = None;
        if let Some(id) = &task_id {
            if let Some(info) = self.tasks.get_mut(id) {
                if let Some(progress) = value
                    .pointer("/payload/progressPercentage")
                    .and_then(Value::as_u64)
                {
                    info.progress = info.progress.max(progress.min(100) as u8);
                }
                if info.ended.is_none() {
                    if let Some(ending) = ending {
                        info.ended = Some(ending);
                        live_end = Some(ending);
                    }
                }
                task = Some(info.clone());
            }
        }
        let id = task_id.clone().unwrap_or_default();
        let mut out = Vec::new();
        let mut forward = true;
        match self.fault {
            Fault::InvalidErrorTimestamp if kind == "Error" => {
                value["timestamp"] = json!("not a timestamp");
            }
            Fault::AckWrongTaskId if kind == "Ack" && task_id.is_some() => {
                value["payload"]["taskId"] = json!(format!("not-{id}"));
            }
            Fault::MisspelledAck if kind == "Ack" => {
                if let Some(payload) = value["payload"].as_object_mut() {
                    if let Some(id) = payload.remove("acknowledgmentId") {
                        payload.insert("acknowledgementId".into(), id);
                    }
                }
            }
            Fault::ErrorWrongRelated if kind == "Error" && related.is_some() => {
                value["payload"]["relatedMessageId"] = json!(new_id());
            }
            Fault::LateAck if kind == "Ack" => {
                let ack = str_at(&value, "/payload/acknowledgmentId").unwrap_or_default();
                if !self.auth_acks.contains(ack) {
                    self.held.push(value.to_string());
                    return Vec::new();
                }
            }
            Fault::DuplicateResult if live_end == Some(Ending::Completed) => {
                let mut again = value.clone();
                again["messageId"] = json!(new_id());
                out.push(Action::ToClient(value.to_string()));
                out.push(Action::ToClient(again.to_string()));
                forward = false;
            }
            Fault::ProgressGoesBack if live_end == Some(Ending::Completed) => {
                let progress = task.as_ref().map_or(0, |task| task.progress);
                if progress > 0 {
                    out.push(Action::ToClient(report(
                        &id,
                        &TaskState::Processing,
                        progress / 2,
                    )));
                }
            }
            Fault::UpdateAfterTerminal if live_end.is_some() => {
                let progress = task.as_ref().map_or(0, |task| task.progress);
                out.push(Action::ToClient(value.to_string()));
                out.push(Action::ToClient(report(
                    &id,
                    &TaskState::Processing,
                    progress,
                )));
                forward = false;
            }
            Fault::FailedAsCancelled
                if live_end == Some(Ending::Failed)
                    && task.as_ref().is_some_and(|task| task.operation == "fail") =>
            {
                let progress = task.as_ref().map_or(0, |task| task.progress);
                out.push(Action::ToClient(report(
                    &id,
                    &TaskState::Cancelled,
                    progress,
                )));
                forward = false;
            }
            Fault::UnknownOperationCode | Fault::UnknownServiceCode
                if kind == "TaskFailed" && code == "UNKNOWN_OPERATION" =>
            {
                let known = task
                    .as_ref()
                    .is_some_and(|task| self.upstream.services.contains(&task.service));
                if known == (self.fault == Fault::UnknownOperationCode) {
                    out.push(Action::ToClient(set_code(&mut value, "INTERNAL")));
                    forward = false;
                }
            }
            Fault::InvalidParametersCode
                if kind == "TaskFailed" && code == "INVALID_PARAMETERS" =>
            {
                out.push(Action::ToClient(set_code(&mut value, "INTERNAL")));
                forward = false;
            }
            Fault::BrokenEnvelopeCode
                if kind == "Error"
                    && code == "INVALID_MESSAGE"
                    && asked == Some(Asked::BrokenAssign) =>
            {
                out.push(Action::ToClient(set_code(&mut value, "INTERNAL")));
                forward = false;
            }
            Fault::WrongTypesCode
                if kind == "Error"
                    && code == "INVALID_MESSAGE"
                    && asked == Some(Asked::BrokenOther) =>
            {
                out.push(Action::ToClient(set_code(&mut value, "INTERNAL")));
                forward = false;
            }
            Fault::CancelUnknownCode | Fault::StatusUnknownCode | Fault::ResultUnknownCode
                if kind == "Error" && code == "TASK_NOT_FOUND" =>
            {
                let wanted = match self.fault {
                    Fault::CancelUnknownCode => Asked::Cancel,
                    Fault::StatusUnknownCode => Asked::Status,
                    _ => Asked::Result,
                };
                if asked == Some(wanted) {
                    out.push(Action::ToClient(set_code(&mut value, "INTERNAL")));
                    forward = false;
                }
            }
            Fault::ResultAfterCancel if live_end == Some(Ending::Cancelled) => {
                out.push(Action::ToClient(value.to_string()));
                out.push(Action::ToClient(report(
                    &id,
                    &TaskState::Completed(TaskOutput::new()),
                    100,
                )));
                forward = false;
            }
            Fault::MalformedJsonCode
                if kind == "Error"
                    && code == "INVALID_MESSAGE"
                    && related.is_none()
                    && self.garbage_pending > 0 =>
            {
                self.garbage_pending -= 1;
                out.push(Action::ToClient(set_code(&mut value, "UNKNOWN_TYPE")));
                forward = false;
            }
            Fault::UnknownTypeCode if kind == "Error" && code == "UNKNOWN_TYPE" => {
                out.push(Action::ToClient(set_code(&mut value, "INVALID_MESSAGE")));
                forward = false;
            }
            Fault::LoseResultOnGarbage | Fault::LoseEndOnGarbage
                if task.as_ref().is_some_and(|task| task.doomed)
                    && (live_end == Some(Ending::Completed)
                        || (live_end.is_some() && self.fault == Fault::LoseEndOnGarbage)) =>
            {
                forward = false;
            }
            Fault::ForbiddenCode if kind == "TaskFailed" && code == "FORBIDDEN" => {
                out.push(Action::ToClient(set_code(&mut value, "UNKNOWN_OPERATION")));
                forward = false;
            }
            _ => {}
        }
        if forward {
            out.push(Action::ToClient(value.to_string()));
        }
        // Held Acks go out after the message that followed them.
        out.extend(self.held.drain(..).map(Action::ToClient));
        out
    }

    /// Held `Ack`s, when nothing followed them in time.
    fn release(&mut self) -> Vec<Action> {
        self.held.drain(..).map(Action::ToClient).collect()
    }
}

/// How long a held `Ack` waits for a message to follow it.
const HOLD: Duration = Duration::from_millis(100);

async fn serve_messages(stream: TcpStream, upstream: Arc<Upstream>, fault: Fault) {
    let Ok(Ok(mut client)) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::accept_async(stream)).await
    else {
        return;
    };
    // No Nagle: small messages in a row must not wait for delayed ACKs.
    let connecting =
        tokio_tungstenite::connect_async_with_config(upstream.endpoint.as_str(), None, true);
    let Ok(Ok((mut provider, _))) = tokio::time::timeout(PATIENCE, connecting).await else {
        let _ = client.close(None).await;
        return;
    };
    let mut state = ConnState::new(fault, upstream);
    let mut actions = state.opening();
    loop {
        for action in actions.drain(..) {
            let sent = match action {
                Action::ToClient(text) => client.send(Frame::text(text)).await,
                Action::ToProvider(text) => provider.send(Frame::text(text)).await,
                Action::Drop => return,
            };
            if sent.is_err() {
                return;
            }
        }
        let holding = !state.held.is_empty();
        tokio::select! {
            frame = client.next() => match frame {
                Some(Ok(Frame::Text(text))) => actions = state.on_client(text.as_str().to_owned()),
                Some(Ok(Frame::Binary(bytes))) => {
                    if provider.send(Frame::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Close(_))) => {
                    // Reading on flushes tungstenite's close reply; then
                    // the client ends the stream.
                    let drain = async { while let Some(Ok(_)) = client.next().await {} };
                    let _ = tokio::time::timeout(PATIENCE, drain).await;
                    let _ = tokio::time::timeout(PATIENCE, provider.close(None)).await;
                    return;
                }
                // tungstenite answers pings itself.
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
            frame = provider.next() => match frame {
                Some(Ok(Frame::Text(text))) => actions = state.on_provider(text.as_str().to_owned()),
                Some(Ok(Frame::Binary(bytes))) => {
                    if client.send(Frame::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Close(frame))) => {
                    let _ = tokio::time::timeout(PATIENCE, client.close(frame)).await;
                    return;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
            () = tokio::time::sleep(HOLD), if holding => actions = state.release(),
        }
    }
}
