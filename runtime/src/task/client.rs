//! The task client: assigns tasks to one provider and follows them to
//! their end, through dropped connections.
//!
//! A [`TaskClient`] owns one connection, run by a background session task:
//! it connects with exponential backoff and jitter, authenticates, and
//! sends every `AssignTask` with an `acknowledgmentId`, re-sending the same
//! `taskId` until it is acknowledged (at-least-once delivery; the
//! provider's idempotency makes it one run). After a dropped connection it
//! reconnects and asks for each open task's state with `GetStatus`, then
//! keeps polling tasks it has not heard about for a while. Every task
//! ends in an outcome or a [`ClientError`]: the session never leaves a
//! caller waiting forever.
//!
//! ```no_run
//! # async fn run() -> Result<(), specwire_runtime::task::ClientError> {
//! use specwire_runtime::task::{ClientConfig, TaskClient, TaskEvent};
//!
//! let client = TaskClient::connect(ClientConfig::new("ws://127.0.0.1:8080")).await?;
//! let mut task = client
//!     .assign("DiagnosticsService", "sleep", serde_json::json!({"durationMs": 500}))
//!     .await?;
//! while let Some(event) = task.next().await {
//!     match event {
//!         TaskEvent::Progress(update) => println!("{}%", update.progress),
//!         TaskEvent::Finished(outcome) => println!("{outcome:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use specwire_protocol::task::{Message, TaskStatusUpdatePayloadStatus};
use specwire_protocol::{Direction, JsonProtocol};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::handler::{codes, TaskError, TaskOutput};
use super::messages::{self, Assignment};
use crate::clock::new_id;

/// Exponential backoff with jitter between connection attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per failure.
    pub factor: f64,
    /// Each delay is scaled by a random factor in `1 - jitter ..= 1`, so
    /// many clients do not retry in step.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX).min(64);
        let base = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let scale = 1.0 - jitter * fastrand::f64();
        Duration::from_secs_f64((capped * scale).max(0.0))
    }
}

/// How a client connects and retries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub endpoint: String,
    /// `clientId` for `Authenticate` and `callbackClientId`.
    pub client_id: String,
    /// Sent in `Authenticate` first thing on every connection.
    pub api_key: Option<String>,
    /// Extra CA certificates (PEM) to trust for `wss://`.
    pub extra_roots: Vec<PathBuf>,
    /// Connection and handshake time limit per attempt.
    pub connect_timeout: Duration,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// Consecutive failed connection attempts before open tasks fail with
    /// [`ClientError::Unavailable`].
    pub connect_attempts: u32,
    /// How long to wait for an `Ack` before re-sending.
    pub ack_timeout: Duration,
    /// How many times an `AssignTask` is sent before giving up.
    pub assign_attempts: u32,
    /// A task not heard about for this long gets a `GetStatus`.
    pub poll_interval: Duration,
    /// A connection silent this long gets a ping; silent twice as long, it
    /// is considered dead and replaced.
    pub keepalive: Duration,
}

impl ClientConfig {
    /// Defaults for `endpoint`: a new client id, no key, 8 connection
    /// attempts, 2 s ack timeout, 5 sends, 5 s polls.
    pub fn new(endpoint: impl Into<String>) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            client_id: new_id(),
            api_key: None,
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            connect_attempts: 8,
            ack_timeout: Duration::from_secs(2),
            assign_attempts: 5,
            poll_interval: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Why a client or a task could not go on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a `ws://` or `wss://` URL, or TLS setup failed.
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached after every attempt.
    #[error("provider {endpoint} unavailable after {attempts} attempts: {last_error}")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// Connection attempts made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// The provider refused the API key.
    #[error("provider refused authentication: {0}")]
    Unauthorized(String),
    /// The provider never acknowledged the task.
    #[error("task {task_id} was not acknowledged after {attempts} sends")]
    NotAcknowledged {
        /// The task.
        task_id: String,
        /// Sends made.
        attempts: u32,
    },
    /// The provider answered the task with an `Error`.
    #[error("provider refused task {task_id}: {code}: {message}")]
    Refused {
        /// The task.
        task_id: String,
        /// `errorCode`.
        code: String,
        /// `errorMessage`.
        message: String,
    },
    /// After a reconnect the provider no longer knew the task (restarted).
    #[error("provider lost task {task_id} (it answered TASK_NOT_FOUND after a reconnect)")]
    Lost {
        /// The task.
        task_id: String,
    },
    /// The client was closed before the task ended.
    #[error("the client was closed")]
    Closed,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutcome {
    /// `TaskResult`: its `resultData`.
    Completed(TaskOutput),
    /// `TaskFailed`.
    Failed(TaskError),
    /// `TaskStatusUpdate` `Cancelled`, with the last progress.
    Cancelled {
        /// Progress when it was cancelled.
        progress: u8,
    },
}

/// A non-terminal `TaskStatusUpdate`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// `Accepted`, `Queued` or `Processing`.
    pub status: TaskStatusUpdatePayloadStatus,
    /// 0–100, never lower than an earlier update's.
    pub progress: u8,
    /// The provider's note.
    pub message: Option<String>,
    /// `estimatedTimeRemainingSeconds`.
    pub remaining_seconds: Option<f64>,
}

/// What happens to a task.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// Progress; any number of these.
    Progress(StatusUpdate),
    /// The end; always the last event.
    Finished(Result<TaskOutcome, ClientError>),
}

enum Command {
    Assign {
        assignment: Assignment,
        events: mpsc::UnboundedSender<TaskEvent>,
        accepted: oneshot::Sender<Result<(), ClientError>>,
    },
    Cancel {
        task_id: String,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A connection to one provider. Cheap to share behind an `Arc`; every
/// method may be called concurrently.
pub struct TaskClient {
    commands: mpsc::UnboundedSender<Command>,
    client_id: String,
}

/// One assigned task: its events, and a way to cancel it.
pub struct TaskHandle {
    task_id: String,
    events: mpsc::UnboundedReceiver<TaskEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl TaskHandle {
    /// The `taskId`.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The next event; `None` after [`TaskEvent::Finished`].
    pub async fn next(&mut self) -> Option<TaskEvent> {
        self.events.recv().await
    }

    /// Asks the provider to cancel the task; its end still arrives as an
    /// event (`Cancelled`, or the outcome it reached first).
    pub fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel {
            task_id: self.task_id.clone(),
        });
    }

    /// Waits for the end, skipping progress.
    pub async fn outcome(mut self) -> Result<TaskOutcome, ClientError> {
        while let Some(event) = self.events.recv().await {
            if let TaskEvent::Finished(outcome) = event {
                return outcome;
            }
        }
        Err(ClientError::Closed)
    }
}

impl TaskClient {
    /// Connects (with retries) and authenticates; fails when the provider
    /// stays unreachable or refuses the key.
    pub async fn connect(config: ClientConfig) -> Result<TaskClient, ClientError> {
        if !(config.endpoint.starts_with("ws://") || config.endpoint.starts_with("wss://")) {
            return Err(ClientError::Config(format!(
                "endpoint `{}` is not a ws:// or wss:// URL",
                config.endpoint
            )));
        }
        let tls = if config.endpoint.starts_with("wss://") {
            Some(
                crate::tls::client_config(&config.extra_roots)
                    .map_err(|error| ClientError::Config(error.to_string()))?,
            )
        } else {
            None
        };
        let mut session = Session {
            client_id: config.client_id.clone(),
            config,
            tls,
            ws: None,
            tasks: HashMap::new(),
            by_ack: HashMap::new(),
            by_message: HashMap::new(),
            fatal: None,
        };
        session.reconnect().await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let client_id = session.client_id.clone();
        tokio::spawn(session.run(receiver));
        Ok(TaskClient {
            commands,
            client_id,
        })
    }

    /// The `clientId` this client uses.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Assigns a task with a fresh `taskId`; returns once the provider
    /// acknowledged it (or answered about it).
    pub async fn assign(
        &self,
        service: &str,
        operation: &str,
        parameters: Value,
    ) -> Result<TaskHandle, ClientError> {
        self.assign_with_id(&new_id(), service, operation, parameters)
            .await
    }

    /// As [`assign`](Self::assign) with the caller's `taskId` (re-using one
    /// is how a caller resumes a task after a restart).
    pub async fn assign_with_id(
        &self,
        task_id: &str,
        service: &str,
        operation: &str,
        parameters: Value,
    ) -> Result<TaskHandle, ClientError> {
        let parameters = match parameters {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ClientError::Config(format!(
                    "task parameters must be a JSON object, not {}",
                    super::handler::json_type(&other)
                )))
            }
        };
        let (events, receiver) = mpsc::unbounded_channel();
        let (accepted, accepted_rx) = oneshot::channel();
        let assignment = Assignment {
            task_id: task_id.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            parameters,
            client_id: Some(self.client_id.clone()),
        };
        self.commands
            .send(Command::Assign {
                assignment,
                events,
                accepted,
            })
            .map_err(|_| ClientError::Closed)?;
        accepted_rx.await.map_err(|_| ClientError::Closed)??;
        Ok(TaskHandle {
            task_id: task_id.to_owned(),
            events: receiver,
            commands: self.commands.clone(),
        })
    }

    /// Closes the connection with the close handshake. Tasks still open
    /// end with [`ClientError::Closed`].
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Close { done }).is_ok() {
            let _ = wait.await;
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct OpenTask {
    assignment: Assignment,
    acknowledgment_id: String,
    acknowledged: bool,
    sends: u32,
    /// When to re-send (unacknowledged) or poll (acknowledged).
    due: Instant,
    progress: u8,
    events: mpsc::UnboundedSender<TaskEvent>,
    accepted: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// Whether a `GetStatus` after a reconnect is outstanding: a
    /// `TASK_NOT_FOUND` then means the provider lost the task.
    recovering: bool,
    /// The caller asked to cancel: sent again after a reconnect, since the
    /// first `CancelTask` may have been lost with the connection.
    cancel_requested: bool,
}

struct Session {
    config: ClientConfig,
    client_id: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    ws: Option<Socket>,
    tasks: HashMap<String, OpenTask>,
    by_ack: HashMap<String, String>,
    /// `messageId` → `taskId` of messages sent, for `relatedMessageId`.
    by_message: HashMap<String, String>,
    /// Set when going on is pointless (bad API key).
    fatal: Option<ClientError>,
}

impl Session {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut idle_deadline = Instant::now() + self.config.keepalive;
        let mut pinged = false;
        let mut commands_open = true;
        loop {
            if !commands_open && self.tasks.is_empty() {
                self.close_socket().await;
                return;
            }
            if self.ws.is_none() && (!self.tasks.is_empty() || !commands_open) {
                if let Err(error) = self.reconnect().await {
                    self.fail_all(error);
                    continue;
                }
                idle_deadline = Instant::now() + self.config.keepalive;
                pinged = false;
            }
            let next_due = self
                .tasks
                .values()
                .map(|task| task.due)
                .min()
                .unwrap_or(idle_deadline)
                .min(idle_deadline);
            let frame = async {
                match self.ws.as_mut() {
                    Some(ws) => ws.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv(), if commands_open => match command {
                    Some(Command::Close { done }) => {
                        self.close_socket().await;
                        self.fail_all(ClientError::Closed);
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.command(command).await,
                    None => commands_open = false,
                },
                frame = frame => match frame {
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + self.config.keepalive;
                        pinged = false;
                        if let Frame::Text(text) = frame {
                            self.receive(text.as_str());
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "connection to provider failed");
                        self.ws = None;
                    }
                    None => self.ws = None,
                },
                () = tokio::time::sleep_until(next_due) => {
                    let now = Instant::now();
                    if now >= idle_deadline {
                        if pinged {
                            tracing::debug!("provider silent; reconnecting");
                            self.ws = None;
                        } else if let Some(ws) = self.ws.as_mut() {
                            pinged = true;
                            if ws.send(Frame::Ping(Vec::new().into())).await.is_err() {
                                self.ws = None;
                            }
                        }
                        idle_deadline = now + self.config.keepalive;
                    }
                    self.tick(now).await;
                }
            }
        }
    }

    async fn close_socket(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "client closing".into(),
            };
            let closing = async {
                ws.close(Some(frame)).await.ok()?;
                while let Some(Ok(_)) = ws.next().await {}
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
        }
    }

    /// Connects and authenticates, retrying with backoff; then re-sends
    /// unacknowledged tasks and asks about acknowledged ones.
    async fn reconnect(&mut self) -> Result<(), ClientError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        let mut last_error = String::new();
        let attempts = self.config.connect_attempts.max(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.config.backoff.delay(attempt - 1)).await;
            }
            match self.connect_once().await {
                Ok(ws) => {
                    self.ws = Some(ws);
                    self.resume().await;
                    return Ok(());
                }
                Err(ClientError::Unauthorized(message)) => {
                    let error = ClientError::Unauthorized(message);
                    self.fatal = Some(error.clone());
                    return Err(error);
                }
                Err(error) => {
                    tracing::debug!(attempt, %error, "connection attempt failed");
                    last_error = error.to_string();
                }
            }
        }
        Err(ClientError::Unavailable {
            endpoint: self.config.endpoint.clone(),
            attempts,
            last_error,
        })
    }

    async fn connect_once(&self) -> Result<Socket, ClientError> {
        let connector = self
            .tls
            .as_ref()
            .map(|config| tokio_tungstenite::Connector::Rustls(Arc::clone(config)));
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            self.config.endpoint.as_str(),
            None,
            true,
            connector,
        );
        let (mut ws, _) = tokio::time::timeout(self.config.connect_timeout, connecting)
            .await
            .map_err(|_| ClientError::Config("connection timed out".into()))?
            .map_err(|error| ClientError::Config(error.to_string()))?;
        if let Some(key) = &self.config.api_key {
            let acknowledgment_id = new_id();
            let message = messages::authenticate(key, &self.client_id, Some(&acknowledgment_id));
            ws.send(Frame::text(message.text))
                .await
                .map_err(|error| ClientError::Config(error.to_string()))?;
            let answer = async {
                while let Some(frame) = ws.next().await {
                    let Ok(Frame::Text(text)) = frame else {
                        continue;
                    };
                    match Message::from_slice(text.as_bytes()) {
                        Ok(Message::Ack(ack))
                            if ack.payload.acknowledgment_id.0 == acknowledgment_id =>
                        {
                            return Ok(());
                        }
                        Ok(Message::Error(error)) => {
                            return Err(ClientError::Unauthorized(format!(
                                "{}: {}",
                                error.payload.error_code.0, error.payload.error_message
                            )));
                        }
                        _ => {}
                    }
                }
                Err(ClientError::Config(
                    "connection closed during authentication".into(),
                ))
            };
            tokio::time::timeout(self.config.connect_timeout, answer)
                .await
                .map_err(|_| ClientError::Config("no answer to Authenticate".into()))??;
        }
        Ok(ws)
    }

    /// After a (re)connect: unacknowledged tasks are sent again, the others
    /// are asked about.
    async fn resume(&mut self) {
        let now = Instant::now();
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for task_id in ids {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if task.acknowledged {
                task.recovering = true;
                task.due = now + self.config.poll_interval;
                let cancel = task.cancel_requested;
                let message = messages::get_status(&task_id);
                self.send(&task_id, message).await;
                if cancel {
                    let message = messages::cancel(&task_id, Some(&self.client_id), None);
                    self.send(&task_id, message).await;
                }
            } else {
                self.send_assign(&task_id, now).await;
            }
        }
    }

    async fn send(&mut self, task_id: &str, message: messages::Built) {
        self.by_message
            .insert(message.message_id, task_id.to_owned());
        if let Some(ws) = self.ws.as_mut() {
            if let Err(error) = ws.send(Frame::text(message.text)).await {
                tracing::debug!(%error, "send failed; reconnecting");
                self.ws = None;
            }
        }
    }

    async fn send_assign(&mut self, task_id: &str, now: Instant) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.sends >= self.config.assign_attempts.max(1) {
            let attempts = task.sends;
            return self.finish(
                task_id,
                Err(ClientError::NotAcknowledged {
                    task_id: task_id.to_owned(),
                    attempts,
                }),
            );
        }
        task.sends += 1;
        task.due = now + self.config.ack_timeout;
        let message = messages::assign(&task.assignment, Some(&task.acknowledgment_id));
        self.send(task_id, message).await;
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Assign {
                assignment,
                events,
                accepted,
            } => {
                if let Some(error) = &self.fatal {
                    let _ = accepted.send(Err(error.clone()));
                    return;
                }
                let task_id = assignment.task_id.clone();
                let acknowledgment_id = new_id();
                self.by_ack
                    .insert(acknowledgment_id.clone(), task_id.clone());
                self.tasks.insert(
                    task_id.clone(),
                    OpenTask {
                        assignment,
                        acknowledgment_id,
                        acknowledged: false,
                        sends: 0,
                        due: Instant::now(),
                        progress: 0,
                        events,
                        accepted: Some(accepted),
                        recovering: false,
                        cancel_requested: false,
                    },
                );
                if self.ws.is_some() {
                    self.send_assign(&task_id, Instant::now()).await;
                }
            }
            Command::Cancel { task_id } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.cancel_requested = true;
                    let message = messages::cancel(&task_id, Some(&self.client_id), None);
                    self.send(&task_id, message).await;
                }
            }
            Command::Close { .. } => {}
        }
    }

    /// Timers: re-send unacknowledged tasks, poll quiet ones.
    async fn tick(&mut self, now: Instant) {
        let due: Vec<(String, bool)> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.due <= now)
            .map(|(id, task)| (id.clone(), task.acknowledged))
            .collect();
        for (task_id, acknowledged) in due {
            if self.ws.is_none() {
                return;
            }
            if acknowledged {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.due = now + self.config.poll_interval;
                }
                let message = messages::get_status(&task_id);
                self.send(&task_id, message).await;
            } else {
                self.send_assign(&task_id, now).await;
            }
        }
    }

    fn acknowledge(&mut self, task_id: &str) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            if !task.acknowledged {
                task.acknowledged = true;
                task.due = Instant::now() + self.config.poll_interval;
            }
            if let Some(accepted) = task.accepted.take() {
                let _ = accepted.send(Ok(()));
            }
        }
    }

    /// Something was heard about the task: it is alive, poll later.
    fn heard(&mut self, task_id: &str) {
        self.acknowledge(task_id);
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.recovering = false;
            task.due = Instant::now() + self.config.poll_interval;
        }
    }

    fn receive(&mut self, text: &str) {
        let message = match serde_json::from_str::<Value>(text)
            .map_err(specwire_protocol::DecodeError::NotJson)
            .and_then(|value| Message::decode_from(value, Some(Direction::ServerToClient)))
        {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "provider sent a message that breaks the schema; ignored");
                return;
            }
        };
        match message {
            Message::Ack(ack) => {
                let task_id = ack
                    .payload
                    .task_id
                    .map(|id| id.0)
                    .or_else(|| self.by_ack.get(&ack.payload.acknowledgment_id.0).cloned());
                if let Some(task_id) = task_id {
                    self.acknowledge(&task_id);
                }
            }
            Message::TaskStatusUpdate(update) => {
                let task_id = update.payload.task_id.0.as_str();
                let progress = update
                    .payload
                    .progress_percentage
                    .map_or(0, |p| u8::try_from(p.0.clamp(0, 100)).unwrap_or(100));
                if update.payload.status == TaskStatusUpdatePayloadStatus::Cancelled {
                    return self.finish(task_id, Ok(TaskOutcome::Cancelled { progress }));
                }
                self.heard(task_id);
                if let Some(task) = self.tasks.get_mut(task_id) {
                    // Repeated states (after GetStatus polls) are not news.
                    if progress < task.progress {
                        return;
                    }
                    task.progress = progress;
                    let _ = task.events.send(TaskEvent::Progress(StatusUpdate {
                        status: update.payload.status,
                        progress,
                        message: update.payload.message,
                        remaining_seconds: update.payload.estimated_time_remaining_seconds,
                    }));
                }
            }
            Message::TaskResult(result) => {
                let task_id = result.payload.task_id.0;
                self.finish(
                    &task_id,
                    Ok(TaskOutcome::Completed(result.payload.result_data)),
                );
            }
            Message::TaskFailed(failed) => {
                let payload = failed.payload;
                let failure = TaskError {
                    code: payload.error_code.0,
                    message: payload.error_message,
                    details: payload.details,
                };
                self.finish(&payload.task_id.0, Ok(TaskOutcome::Failed(failure)));
            }
            Message::Error(error) => self.error(error.payload),
            _ => {}
        }
    }

    fn error(&mut self, payload: specwire_protocol::task::ErrorPayload) {
        let task_id = payload.task_id.map(|id| id.0).or_else(|| {
            payload
                .related_message_id
                .as_ref()
                .and_then(|id| self.by_message.get(id).cloned())
        });
        let code = payload.error_code.0;
        let Some(task_id) = task_id else {
            tracing::warn!(%code, message = %payload.error_message, "provider error");
            if code == codes::UNAUTHORIZED {
                let error = ClientError::Unauthorized(payload.error_message);
                self.fatal = Some(error.clone());
                self.fail_all(error);
            }
            return;
        };
        let Some(task) = self.tasks.get(&task_id) else {
            return;
        };
        match code.as_str() {
            // Still running: keep waiting (and polling).
            codes::RESULT_NOT_READY | codes::TASK_ALREADY_FINISHED => self.heard(&task_id),
            // Re-sent on the next ack timeout.
            codes::RATE_LIMITED => {}
            codes::TASK_NOT_FOUND if task.acknowledged => {
                if task.recovering || task.acknowledged {
                    self.finish(
                        &task_id,
                        Err(ClientError::Lost {
                            task_id: task_id.clone(),
                        }),
                    );
                }
            }
            _ => self.finish(
                &task_id,
                Err(ClientError::Refused {
                    task_id: task_id.clone(),
                    code,
                    message: payload.error_message,
                }),
            ),
        }
    }

    fn finish(&mut self, task_id: &str, outcome: Result<TaskOutcome, ClientError>) {
        let Some(mut task) = self.tasks.remove(task_id) else {
            return;
        };
        self.by_ack.remove(&task.acknowledgment_id);
        self.by_message.retain(|_, id| id != task_id);
        match task.accepted.take() {
            // Refused before it was acknowledged: `assign` returns the error.
            Some(accepted) if outcome.is_err() => {
                let _ = accepted.send(outcome.clone().map(|_| ()));
            }
            Some(accepted) => {
                let _ = accepted.send(Ok(()));
            }
            None => {}
        }
        let _ = task.events.send(TaskEvent::Finished(outcome));
    }

    fn fail_all(&mut self, error: ClientError) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for task_id in ids {
            self.finish(&task_id, Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session_with_task() -> (Session, mpsc::UnboundedReceiver<TaskEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let mut session = Session {
            config: ClientConfig::new("ws://127.0.0.1:9"),
            client_id: "c".into(),
            tls: None,
            ws: None,
            tasks: HashMap::new(),
            by_ack: HashMap::new(),
            by_message: HashMap::new(),
            fatal: None,
        };
        session.tasks.insert(
            "t".into(),
            OpenTask {
                assignment: Assignment {
                    task_id: "t".into(),
                    service: "S".into(),
                    operation: "op".into(),
                    parameters: Map::new(),
                    client_id: None,
                },
                acknowledgment_id: "a".into(),
                acknowledged: true,
                sends: 1,
                due: Instant::now(),
                progress: 0,
                events,
                accepted: None,
                recovering: false,
                cancel_requested: false,
            },
        );
        (session, receiver)
    }

    fn provider_message() -> BoxedStrategy<Value> {
        let root: Value = serde_json::from_str(specwire_protocol::task::SCHEMA).unwrap();
        let names = [
            "Ack",
            "TaskStatusUpdate",
            "TaskResult",
            "TaskFailed",
            "Error",
        ];
        let strategies: Vec<BoxedStrategy<Value>> = names
            .iter()
            .map(|name| {
                specwire_testkit::valid_value_for_def(&root, name)
                    .unwrap()
                    .prop_map(|mut value| {
                        // Half of them about the open task.
                        if let Some(task_id) = value.pointer_mut("/payload/taskId") {
                            if fastrand::bool() {
                                *task_id = Value::from("t");
                            }
                        }
                        value
                    })
                    .boxed()
            })
            .collect();
        proptest::strategy::Union::new(strategies).boxed()
    }

    proptest! {
        #[test]
        fn arbitrary_provider_text_never_panics(text in any::<String>()) {
            let (mut session, _events) = session_with_task();
            session.receive(&text);
            prop_assert!(session.tasks.contains_key("t"));
        }

        #[test]
        fn provider_messages_keep_the_event_stream_well_formed(values in proptest::collection::vec(provider_message(), 1..8)) {
            let (mut session, mut events) = session_with_task();
            for value in &values {
                session.receive(&value.to_string());
            }
            let mut seen = Vec::new();
            while let Ok(event) = events.try_recv() {
                seen.push(event);
            }
            // At most one Finished, always last, and progress never goes down.
            let finished = seen.iter().filter(|e| matches!(e, TaskEvent::Finished(_))).count();
            prop_assert!(finished <= 1);
            if finished == 1 {
                prop_assert!(matches!(seen.last(), Some(TaskEvent::Finished(_))));
                prop_assert!(!session.tasks.contains_key("t"));
            }
            let progress: Vec<u8> = seen
                .iter()
                .filter_map(|e| match e { TaskEvent::Progress(update) => Some(update.progress), _ => None })
                .collect();
            prop_assert!(progress.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", progress);
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
        };
        for attempt in 0..100 {
            let delay = backoff.delay(attempt);
            let base = (0.1 * 2f64.powi(attempt.min(60) as i32)).min(1.0);
            assert!(delay.as_secs_f64() <= base + 1e-9, "{attempt}: {delay:?}");
            assert!(
                delay.as_secs_f64() >= base * 0.5 - 1e-9,
                "{attempt}: {delay:?}"
            );
        }
        let fixed = Backoff {
            jitter: 0.0,
            ..backoff
        };
        assert_eq!(fixed.delay(0), Duration::from_millis(100));
        assert_eq!(fixed.delay(3), Duration::from_millis(800));
        assert_eq!(fixed.delay(10), Duration::from_secs(1));
    }
}
