//! The task provider: a WebSocket server that runs tasks on
//! [`TaskHandler`]s.
//!
//! The provider owns the protocol; handlers only do the work. Per
//! connection it checks size and rate limits, parses and validates every
//! message against the schema, enforces `Authenticate` and the ACL, sends
//! `Ack`s before any other reply, and answers every problem with an
//! `Error` while keeping the connection open. Across connections it keeps
//! the task table ([`store`](super::store)): idempotent re-assigns,
//! `GetStatus`, `GetResult` and `CancelTask` work from any connection of
//! the same client. It pings idle connections and closes with the close
//! handshake.
//!
//! ```no_run
//! # async fn run(handler: std::sync::Arc<dyn specwire_runtime::task::TaskHandler>) -> std::io::Result<()> {
//! use specwire_runtime::task::{Provider, ProviderConfig};
//!
//! let provider = Provider::start(ProviderConfig::default(), vec![handler]).await?;
//! println!("serving on {}", provider.endpoint());
//! provider.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use specwire_protocol::task::{self as protocol, Message, TaskStatusUpdatePayloadStatus};
use specwire_protocol::{DecodeError, Direction, JsonProtocol};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::access::AccessPolicy;
use super::handler::{
    codes, Progress, ServiceDescription, Task, TaskContext, TaskError, TaskHandler, TaskOutput,
};
use super::limits::{Limits, RateLimiter};
use super::messages::{self, TaskState};
use super::outbox::{CloseOnDrop, Outbox};
use super::store::{Admission, Cancellation, Lookup, Requester, Retention, Subscriber, TaskStore};
use crate::discovery::Presence;

/// How a provider runs.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Where to listen. Default `127.0.0.1:8080`; port 0 picks one.
    pub bind: SocketAddr,
    /// API keys and ACL.
    pub access: AccessPolicy,
    /// Size, rate, connection and keepalive limits.
    pub limits: Limits,
    /// Serve `wss://` with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Tasks that run at once; more wait as `Queued`. Also the divisor of
    /// the advertised load.
    pub capacity: usize,
    /// How long finished tasks are remembered for re-assigns and queries.
    pub retention: Duration,
    /// How many finished tasks are remembered at most.
    pub max_finished: usize,
    /// How long a cancelled handler may take to stop before it is dropped.
    pub cancel_grace: Duration,
}

impl Default for ProviderConfig {
    fn default() -> ProviderConfig {
        ProviderConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], protocol::DEFAULT_PORT)),
            access: AccessPolicy::open(),
            limits: Limits::default(),
            tls: None,
            capacity: std::thread::available_parallelism().map_or(2, |n| n.get()),
            retention: Duration::from_secs(3600),
            max_finished: 100_000,
            cancel_grace: Duration::from_secs(5),
        }
    }
}

/// Counters, for tests, logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderStats {
    /// Connections open now.
    pub connections: usize,
    /// Handler runs started, ever. Re-assigns never add to it.
    pub runs: u64,
    /// `Error` replies sent.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    runs: AtomicU64,
    errors: AtomicU64,
    next_connection: AtomicU64,
}

struct Shared {
    services: HashMap<String, Arc<dyn TaskHandler>>,
    access: AccessPolicy,
    limits: Limits,
    store: Arc<TaskStore>,
    slots: Arc<Semaphore>,
    cancel_grace: Duration,
    counters: Counters,
    /// Cancelled to close every connection.
    closing: CancellationToken,
    /// Set by `shutdown`: new tasks are refused.
    shutting_down: std::sync::atomic::AtomicBool,
    /// Set when the provider is dropped: tasks end silently (no goodbye).
    dropped: std::sync::atomic::AtomicBool,
}

/// A running provider. Dropping it stops accepting and aborts every
/// connection without a goodbye; [`Provider::shutdown`] is the graceful way.
pub struct Provider {
    local_addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    /// Cancels running tasks (the store's tokens are its children).
    tasks_shutdown: CancellationToken,
    accept_loop: tokio::task::JoinHandle<()>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Provider {
    /// Binds and starts serving `services`.
    pub async fn start(
        config: ProviderConfig,
        services: Vec<Arc<dyn TaskHandler>>,
    ) -> io::Result<Provider> {
        let mut by_name = HashMap::new();
        for service in services {
            let name = service.description().name.clone();
            if by_name.insert(name.clone(), service).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("two services are called {name}"),
                ));
            }
        }
        // Compile the validators now, not on the first message.
        Message::family().warm_up().map_err(io::Error::other)?;
        let listener = TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let tasks_shutdown = CancellationToken::new();
        let store = TaskStore::new(
            Retention {
                keep_for: config.retention,
                max_finished: config.max_finished,
            },
            config.capacity,
            tasks_shutdown.clone(),
        );
        let shared = Arc::new(Shared {
            services: by_name,
            access: config.access,
            limits: config.limits,
            store,
            slots: Arc::new(Semaphore::new(config.capacity.max(1))),
            cancel_grace: config.cancel_grace,
            counters: Counters::default(),
            closing: CancellationToken::new(),
            shutting_down: Default::default(),
            dropped: Default::default(),
        });
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let acceptor = config.tls.map(tokio_rustls::TlsAcceptor::from);
        let scheme = if acceptor.is_some() { "wss" } else { "ws" };
        let accept_loop = tokio::spawn(accept(
            listener,
            acceptor,
            Arc::clone(&shared),
            Arc::clone(&connections),
        ));
        tracing::info!(%local_addr, scheme, "task provider listening");
        Ok(Provider {
            local_addr,
            scheme,
            shared,
            tasks_shutdown,
            accept_loop,
            connections,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://ADDR` or `wss://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    /// The endpoint with `host` instead of the bound address (for
    /// advertising a provider bound to a wildcard address).
    pub fn endpoint_for(&self, host: &str) -> String {
        format!("{}://{}:{}", self.scheme, host, self.local_addr.port())
    }

    /// The services it runs.
    pub fn services(&self) -> Vec<ServiceDescription> {
        let mut services: Vec<_> = self
            .shared
            .services
            .values()
            .map(|service| service.description().clone())
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        services
    }

    /// Status and load, updated as tasks start and end: what an
    /// [`Advertiser`](crate::discovery::Advertiser) announces.
    pub fn presence(&self) -> watch::Receiver<Presence> {
        self.shared.store.presence()
    }

    /// Counters.
    pub fn stats(&self) -> ProviderStats {
        let counters = &self.shared.counters;
        ProviderStats {
            connections: counters.connections.load(Ordering::Relaxed),
            runs: counters.runs.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops gracefully: stops accepting, lets running tasks finish for up
    /// to `grace`, cancels the rest (clients get `Cancelled`), announces
    /// `Offline`, and closes every connection with the close handshake.
    pub async fn shutdown(self, grace: Duration) {
        self.accept_loop.abort();
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        let mut presence = self.shared.store.presence();
        while self.shared.store.active() > 0 && Instant::now() < deadline {
            // Each task's end changes the presence; wait for that, bounded.
            let _ = tokio::time::timeout_at(deadline.into(), presence.changed()).await;
        }
        self.shared
            .store
            .cancel_all("the provider is shutting down");
        self.tasks_shutdown.cancel();
        self.shared.store.go_offline();
        self.shared.closing.cancel();
        let mut connections = self.connections.lock().await;
        let closing = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .is_err()
        {
            connections.abort_all();
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.accept_loop.abort();
        // Connections go first and tasks end without a word: a dropped
        // provider looks like a crashed one (after `shutdown` it is gone
        // already and this does nothing).
        self.shared.dropped.store(true, Ordering::SeqCst);
        if let Ok(mut connections) = self.connections.try_lock() {
            connections.abort_all();
        }
        self.tasks_shutdown.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = shared.counters.connections.load(Ordering::Relaxed);
        if open >= shared.limits.max_connections {
            tracing::warn!(%peer, open, "connection refused: too many connections");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let mut set = connections.lock().await;
        // Reap finished connections so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            shared.counters.connections.fetch_add(1, Ordering::Relaxed);
            let result = handshake_and_serve(stream, tls, Arc::clone(&shared)).await;
            shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

fn websocket_config(limits: &Limits) -> WebSocketConfig {
    // Small buffers: idle connections are the common case and should cost
    // little memory; large messages still work, they just take more reads.
    // The write buffer is not allocated up front; frames fed between
    // flushes go out in one write.
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

async fn handshake_and_serve(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) -> Result<(), String> {
    match tls {
        Some(acceptor) => {
            let timeout = shared.limits.handshake_timeout;
            let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|error| format!("TLS handshake: {error}"))?;
            // Boxed: the TLS connection's state is several KiB larger, and
            // inline it would size every plain connection's task too.
            Box::pin(upgrade_and_serve(stream, shared)).await
        }
        None => upgrade_and_serve(stream, shared).await,
    }
}

/// The WebSocket handshake (bounded in time), then the connection.
async fn upgrade_and_serve<S>(stream: S, shared: Arc<Shared>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = Some(websocket_config(&shared.limits));
    let ws = tokio::time::timeout(
        shared.limits.handshake_timeout,
        tokio_tungstenite::accept_async_with_config(stream, config),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_owned())?
    .map_err(|error| format!("WebSocket handshake: {error}"))?;
    serve(ws, shared).await
}

/// One connection: reads frames, answers them, and writes whatever the
/// session and the task table queue for it, in order.
async fn serve<S>(mut ws: WebSocketStream<S>, shared: Arc<Shared>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let outbox = Outbox::new();
    let _closed_when_done = CloseOnDrop(outbox.clone());
    let connection = shared
        .counters
        .next_connection
        .fetch_add(1, Ordering::Relaxed);
    let mut session = Session {
        shared: Arc::clone(&shared),
        subscriber: Subscriber {
            connection,
            outbox: outbox.clone(),
        },
        client_id: None,
        authenticated: !shared.access.requires_authentication(),
        limiter: shared
            .limits
            .messages_per_second
            .map(|rate| RateLimiter::new(rate, shared.limits.burst)),
    };
    let keepalive = shared.limits.keepalive;
    let idle = tokio::time::sleep(keepalive);
    tokio::pin!(idle);
    let mut pinged = false;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(frame) = frame else { return Ok(()) };
                let frame = frame.map_err(|error| error.to_string())?;
                idle.as_mut().reset(tokio::time::Instant::now() + keepalive);
                pinged = false;
                match frame {
                    Frame::Text(text) => session.handle_text(text.as_str()),
                    Frame::Binary(bytes) => session.error(
                        codes::INVALID_MESSAGE,
                        &format!("binary frame of {} bytes: task messages are JSON text frames", bytes.len()),
                        None,
                        None,
                    ),
                    // tungstenite answers pings and completes the close
                    // handshake itself; the stream then ends.
                    Frame::Ping(_) | Frame::Pong(_) | Frame::Close(_) | Frame::Frame(_) => {}
                }
                // Write what this frame produced before reading more.
                write_queued(&mut ws, &outbox).await?;
            }
            () = outbox.ready() => write_queued(&mut ws, &outbox).await?,
            () = &mut idle => {
                if pinged {
                    return Box::pin(close(ws, CloseCode::Away, "no pong")).await;
                }
                pinged = true;
                idle.as_mut().reset(tokio::time::Instant::now() + keepalive);
                ws.send(Frame::Ping(Vec::new().into())).await.map_err(|error| error.to_string())?;
            }
            () = shared.closing.cancelled() => {
                write_queued(&mut ws, &outbox).await?;
                return Box::pin(close(ws, CloseCode::Away, "provider shutting down")).await;
            }
        }
    }
}

/// Writes everything queued, in one flush.
async fn write_queued<S>(ws: &mut WebSocketStream<S>, outbox: &Outbox) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let queued = outbox.take();
    if queued.is_empty() {
        return Ok(());
    }
    for text in queued {
        ws.feed(Frame::text(text))
            .await
            .map_err(|error| error.to_string())?;
    }
    ws.flush().await.map_err(|error| error.to_string())
}

/// Sends a close frame and waits (bounded) for the peer's.
async fn close<S>(mut ws: WebSocketStream<S>, code: CloseCode, reason: &str) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    ws.close(Some(frame))
        .await
        .map_err(|error| error.to_string())?;
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}

struct Session {
    shared: Arc<Shared>,
    subscriber: Subscriber,
    /// The authenticated `clientId`.
    client_id: Option<String>,
    authenticated: bool,
    limiter: Option<RateLimiter>,
}

/// `messageId` and `payload.taskId` of a message, when they are usable
/// ids (1–256 characters): what an `Error` reply names. A broken id is not
/// echoed, or the reply itself would break the schema.
fn ids(value: &Value) -> (Option<&str>, Option<&str>) {
    let usable = |id: &&str| !id.is_empty() && id.chars().count() <= 256;
    let message_id = value
        .get("messageId")
        .and_then(Value::as_str)
        .filter(usable);
    let task_id = value
        .get("payload")
        .and_then(|payload| payload.get("taskId"))
        .and_then(Value::as_str)
        .filter(usable);
    (message_id, task_id)
}

impl Session {
    fn send(&self, text: String) {
        // Fails only when the connection is already gone.
        let _ = self.subscriber.outbox.send(text);
    }

    fn error(&self, code: &str, message: &str, related: Option<&str>, task_id: Option<&str>) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.send(messages::error(code, message, related, task_id));
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            owner: self
                .client_id
                .as_deref()
                .filter(|_| self.shared.access.requires_authentication()),
            subscriber: &self.subscriber,
        }
    }

    fn handle_text(&mut self, text: &str) {
        let limit = self.shared.limits.max_message_bytes;
        if text.len() > limit {
            return self.error(
                codes::MESSAGE_TOO_LARGE,
                &format!(
                    "message of {} bytes is over the {limit}-byte limit",
                    text.len()
                ),
                None,
                None,
            );
        }
        if let Some(limiter) = &mut self.limiter {
            if !limiter.admit(Instant::now()) {
                return self.error(
                    codes::RATE_LIMITED,
                    "too many messages on this connection; slow down",
                    None,
                    None,
                );
            }
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("not JSON: {error}"),
                    None,
                    None,
                )
            }
        };
        // Owned copies, so the value can be moved into the decoder.
        let (related, task_id) = ids(&value);
        let (related, task_id) = (related.map(str::to_owned), task_id.map(str::to_owned));
        let (related, task_id) = (related.as_deref(), task_id.as_deref());
        let name = match value.get("type").and_then(Value::as_str) {
            Some(name) => match protocol::MESSAGES.iter().find(|spec| spec.name == name) {
                Some(spec) if spec.direction == Direction::ClientToServer => spec.name,
                Some(spec) => {
                    return self.error(
                        codes::UNKNOWN_TYPE,
                        &format!("`{}` is sent by providers, not to them", spec.name),
                        related,
                        task_id,
                    )
                }
                None => {
                    return self.error(
                        codes::UNKNOWN_TYPE,
                        &format!("unknown message type `{name}`"),
                        related,
                        task_id,
                    )
                }
            },
            None => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    "a task message is a JSON object with a string `type`",
                    related,
                    task_id,
                )
            }
        };
        let message = match Message::decode_from(value, Some(Direction::ClientToServer)) {
            Ok(message) => message,
            Err(error) => {
                let detail = match &error {
                    DecodeError::Invalid { violations, .. } => violations
                        .iter()
                        .take(3)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("invalid {name}: {detail}"),
                    related,
                    task_id,
                );
            }
        };
        self.handle(message, related);
    }

    fn ack(&self, acknowledgment_id: Option<&protocol::AcknowledgmentId>, task_id: Option<&str>) {
        if let Some(id) = acknowledgment_id {
            self.send(messages::ack(id, task_id));
        }
    }

    fn handle(&mut self, message: Message, related: Option<&str>) {
        if let Message::Authenticate(auth) = &message {
            if self.shared.access.key_is_valid(&auth.payload.api_key) {
                self.authenticated = true;
                self.client_id = Some(auth.payload.client_id.0.clone());
                self.ack(auth.acknowledgment_id.as_ref(), None);
            } else {
                self.authenticated = !self.shared.access.requires_authentication();
                self.client_id = None;
                self.error(codes::UNAUTHORIZED, "invalid API key", related, None);
            }
            return;
        }
        if !self.authenticated {
            // Seed §7: a key inside AssignTask authenticates too.
            let inline = match &message {
                Message::AssignTask(assign) => assign.payload.api_key.as_deref(),
                _ => None,
            };
            match inline {
                Some(key) if self.shared.access.key_is_valid(key) => {
                    self.authenticated = true;
                    if let Message::AssignTask(assign) = &message {
                        self.client_id = assign
                            .payload
                            .callback_client_id
                            .as_ref()
                            .map(|id| id.0.clone());
                    }
                }
                _ => {
                    let task_id = match &message {
                        Message::AssignTask(m) => Some(m.payload.task_id.0.as_str()),
                        Message::CancelTask(m) => Some(m.payload.task_id.0.as_str()),
                        Message::GetStatus(m) => Some(m.payload.task_id.0.as_str()),
                        Message::GetResult(m) => Some(m.payload.task_id.0.as_str()),
                        _ => None,
                    };
                    return self.error(
                        codes::UNAUTHORIZED,
                        "authenticate first: send Authenticate with a valid API key",
                        related,
                        task_id,
                    );
                }
            }
        }
        match message {
            Message::AssignTask(assign) => self.assign(assign, related),
            Message::CancelTask(cancel) => {
                let task_id = cancel.payload.task_id.0.as_str();
                self.ack(cancel.acknowledgment_id.as_ref(), Some(task_id));
                match self.shared.store.cancel(task_id, &self.requester()) {
                    Cancellation::Cancelled => {}
                    Cancellation::AlreadyFinished => self.error(
                        codes::TASK_ALREADY_FINISHED,
                        &format!("task {task_id} already ended"),
                        related,
                        Some(task_id),
                    ),
                    Cancellation::NotFound => self.not_found(task_id, related),
                }
            }
            Message::GetStatus(query) => {
                let task_id = query.payload.task_id.0.as_str();
                self.ack(query.acknowledgment_id.as_ref(), Some(task_id));
                if self.shared.store.lookup(task_id, false, &self.requester()) == Lookup::NotFound {
                    self.not_found(task_id, related);
                }
            }
            Message::GetResult(query) => {
                let task_id = query.payload.task_id.0.as_str();
                self.ack(query.acknowledgment_id.as_ref(), Some(task_id));
                match self.shared.store.lookup(task_id, true, &self.requester()) {
                    Lookup::Sent => {}
                    Lookup::NotReady => self.error(
                        codes::RESULT_NOT_READY,
                        &format!("task {task_id} has not ended yet"),
                        related,
                        Some(task_id),
                    ),
                    Lookup::NotFound => self.not_found(task_id, related),
                }
            }
            // Provider → client messages were refused before decoding, and
            // Authenticate was handled above.
            Message::Authenticate(_)
            | Message::Ack(_)
            | Message::TaskStatusUpdate(_)
            | Message::TaskResult(_)
            | Message::TaskFailed(_)
            | Message::Error(_) => {}
        }
    }

    fn not_found(&self, task_id: &str, related: Option<&str>) {
        self.error(
            codes::TASK_NOT_FOUND,
            &format!("no task {task_id} here"),
            related,
            Some(task_id),
        );
    }

    fn assign(&mut self, assign: protocol::AssignTask, related: Option<&str>) {
        let payload = assign.payload;
        let task_id = payload.task_id.0.as_str();
        let requester = self.requester();
        let store = &self.shared.store;
        if store.is_foreign(task_id, requester.owner) {
            return self.error(
                codes::INVALID_MESSAGE,
                &format!("taskId {task_id} belongs to another client"),
                related,
                Some(task_id),
            );
        }
        self.ack(assign.acknowledgment_id.as_ref(), Some(task_id));
        match store.attach_if_known(task_id, &requester) {
            Some(Admission::Foreign) => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                )
            }
            Some(_) => return,
            None => {}
        }
        let client_id = self
            .client_id
            .clone()
            .or_else(|| payload.callback_client_id.as_ref().map(|id| id.0.clone()));
        let service_name = payload.service_name.0.as_str();
        let operation = payload.operation.0.as_str();
        let parameters = payload.task_parameters.map(|p| p.0).unwrap_or_default();
        let refuse = |failure: TaskError| {
            if let Admission::Foreign =
                store.refuse(task_id, client_id.as_deref(), failure, &requester)
            {
                self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                );
            }
        };
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return refuse(TaskError::new(
                codes::SHUTTING_DOWN,
                "the provider is shutting down; assign the task elsewhere",
            ));
        }
        let Some(service) = self.shared.services.get(service_name) else {
            let mut offered: Vec<_> = self.shared.services.keys().map(String::as_str).collect();
            offered.sort_unstable();
            return refuse(TaskError::new(
                codes::UNKNOWN_OPERATION,
                format!(
                    "no service {service_name} here (offered: {})",
                    offered.join(", ")
                ),
            ));
        };
        if !self
            .shared
            .access
            .allows(client_id.as_deref(), service_name, operation)
        {
            return refuse(TaskError::new(
                codes::FORBIDDEN,
                format!(
                    "client {} may not run {service_name}/{operation}",
                    client_id.as_deref().unwrap_or("(anonymous)")
                ),
            ));
        }
        let Some(spec) = service.description().find(operation) else {
            let offered: Vec<_> = service
                .description()
                .operations
                .iter()
                .map(|op| op.name.as_str())
                .collect();
            return refuse(TaskError::new(
                codes::UNKNOWN_OPERATION,
                format!(
                    "{service_name} has no operation {operation} (offered: {})",
                    offered.join(", ")
                ),
            ));
        };
        let unadvertised = match spec.check(&parameters) {
            Ok(unadvertised) => unadvertised,
            Err(problem) => return refuse(TaskError::invalid_parameters(problem)),
        };
        // PROFILE.md: parameters not advertised are allowed but warned about.
        let note = (!unadvertised.is_empty()).then(|| {
            tracing::warn!(
                task_id,
                ?unadvertised,
                "task has parameters the operation does not advertise"
            );
            format!(
                "ignoring parameters {service_name}/{operation} does not advertise: {}",
                unadvertised.join(", ")
            )
        });
        let cancel = match store.admit(task_id, client_id.as_deref(), note, &requester) {
            Admission::Accepted(cancel) => cancel,
            Admission::Known => return,
            Admission::Foreign => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                )
            }
        };
        let task = Task {
            task_id: task_id.to_owned(),
            operation: operation.to_owned(),
            parameters,
            client_id,
        };
        self.shared.counters.runs.fetch_add(1, Ordering::Relaxed);
        start(Arc::clone(&self.shared), Arc::clone(service), task, cancel);
    }
}

/// Starts an admitted task. With a free slot the handler is polled once
/// right here, on the connection's task, so a task that is done at once (a
/// no-op, a refusal the handler finds) ends without a spawn or a thread
/// hop; otherwise the rest runs on a task of its own. Without a free slot
/// the task is `Queued` until one frees up.
fn start(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
) {
    match Arc::clone(&shared.slots).try_acquire_owned() {
        Ok(permit) => run_in_slot(shared, handler, task, cancel, permit),
        Err(_) => {
            let queued = TaskState::Waiting(TaskStatusUpdatePayloadStatus::Queued);
            if shared.store.advance(&task.task_id, queued) {
                tokio::spawn(wait_for_slot(shared, handler, task, cancel));
            }
        }
    }
}

async fn wait_for_slot(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
) {
    let permit = tokio::select! {
        permit = Arc::clone(&shared.slots).acquire_owned() => match permit {
            Ok(permit) => permit,
            Err(_) => return, // the semaphore is never closed
        },
        () = cancel.cancelled() => return end_cancelled(&shared, &task.task_id),
    };
    run_in_slot(shared, handler, task, cancel, permit);
}

type Outcome = std::thread::Result<Result<TaskOutput, TaskError>>;

fn run_in_slot(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let task_id = task.task_id.clone();
    let report = {
        let store = Arc::clone(&shared.store);
        let task_id = task_id.clone();
        Arc::new(move |progress: Progress| store.progress(&task_id, progress))
    };
    let context = TaskContext::direct(report, cancel.clone());
    // `run` itself may panic before it returns a future: guard both.
    let mut run = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.run(task, context))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind(),
        Err(panic) => return settle(&shared, &task_id, &cancel, Some(Err(panic))),
    };
    // The first poll, with a waker that does nothing: if the handler is
    // not done, the spawned task polls it again with its own waker, and a
    // future must use the waker of its latest poll.
    let mut first = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(std::pin::Pin::new(&mut run), &mut first) {
        std::task::Poll::Ready(outcome) => {
            settle(&shared, &task_id, &cancel, Some(outcome));
            drop(permit);
        }
        std::task::Poll::Pending => {
            shared.store.advance(&task_id, TaskState::Processing);
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    biased;
                    outcome = &mut run => Some(outcome),
                    () = cancel.cancelled() => {
                        // Already reported as Cancelled; give the handler a
                        // moment to stop before its future is dropped.
                        let _ = tokio::time::timeout(shared.cancel_grace, &mut run).await;
                        None
                    }
                };
                settle(&shared, &task_id, &cancel, outcome);
                drop(permit);
            });
        }
    }
}

/// Records how the handler ended, unless the task was cancelled first: a
/// handler that stopped because it was cancelled reports whatever it likes
/// (usually `TaskError::cancelled()`); the task's end is the cancellation,
/// already recorded by whoever cancelled it.
fn settle(shared: &Shared, task_id: &str, cancel: &CancellationToken, outcome: Option<Outcome>) {
    if cancel.is_cancelled() {
        return end_cancelled(shared, task_id);
    }
    match outcome {
        Some(Ok(result)) => {
            shared.store.finish(task_id, result);
        }
        Some(Err(_panic)) => {
            tracing::error!(task_id, "task handler panicked");
            shared.store.finish(
                task_id,
                Err(TaskError::internal("the service failed unexpectedly")),
            );
        }
        None => {}
    }
}

/// A task whose token was cancelled ends as `Cancelled` if nobody ended it
/// yet (a task admitted while the provider was shutting down), except when
/// the provider was dropped: then it ends without a word.
fn end_cancelled(shared: &Shared, task_id: &str) {
    if !shared.dropped.load(Ordering::SeqCst) {
        shared
            .store
            .cancel_open(task_id, "the provider is shutting down");
    }
}

#[cfg(test)]
mod tests {
    //! The message pipeline without a network: arbitrary text, and valid
    //! and schema-mutated client messages, go through one session; every
    //! reply must be a valid provider message and nothing may panic.

    use super::*;
    use crate::task::{BoxFuture, Operation, TaskOutput};
    use proptest::prelude::*;
    use specwire_protocol::task::SCHEMA;

    struct Noop(ServiceDescription);

    impl TaskHandler for Noop {
        fn description(&self) -> &ServiceDescription {
            &self.0
        }

        fn run(&self, _: Task, _: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
            Box::pin(async { Ok(TaskOutput::new()) })
        }
    }

    fn shared() -> Arc<Shared> {
        let service: Arc<dyn TaskHandler> = Arc::new(Noop(
            ServiceDescription::new("S", "1").operation(Operation::new("op")),
        ));
        let shutdown = CancellationToken::new();
        Arc::new(Shared {
            services: [("S".to_owned(), service)].into_iter().collect(),
            access: AccessPolicy::open(),
            limits: Limits::default(),
            store: TaskStore::new(
                Retention {
                    keep_for: Duration::from_secs(60),
                    max_finished: 100,
                },
                2,
                shutdown,
            ),
            slots: Arc::new(Semaphore::new(2)),
            cancel_grace: Duration::from_millis(10),
            counters: Counters::default(),
            closing: CancellationToken::new(),
            shutting_down: Default::default(),
            dropped: Default::default(),
        })
    }

    /// Feeds `text` to a fresh session; returns the replies' types.
    fn replies(text: &str) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _context = runtime.enter();
        let shared = shared();
        let outbox = Outbox::new();
        let mut session = Session {
            shared,
            subscriber: Subscriber {
                connection: 1,
                outbox: outbox.clone(),
            },
            client_id: None,
            authenticated: true,
            limiter: None,
        };
        session.handle_text(text);
        let mut kinds = Vec::new();
        for reply in outbox.take() {
            let value: Value = serde_json::from_str(&reply).unwrap();
            let message = Message::decode_from(value, Some(Direction::ServerToClient))
                .unwrap_or_else(|error| panic!("invalid reply {reply}: {error}"));
            kinds.push(message.name().to_owned());
        }
        kinds
    }

    fn client_message(valid: bool) -> BoxedStrategy<Value> {
        let root: Value = serde_json::from_str(SCHEMA).unwrap();
        let names = [
            "Authenticate",
            "AssignTask",
            "CancelTask",
            "GetStatus",
            "GetResult",
        ];
        let strategies: Vec<BoxedStrategy<Value>> = names
            .iter()
            .map(|name| {
                if valid {
                    specwire_testkit::valid_value_for_def(&root, name).unwrap()
                } else {
                    specwire_testkit::invalid_value_for_def(&root, name)
                        .unwrap()
                        .prop_map(|(value, _)| value)
                        .boxed()
                }
            })
            .collect();
        proptest::strategy::Union::new(strategies).boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_gets_exactly_one_error(text in any::<String>()) {
            let kinds = replies(&text);
            // Arbitrary text is never a valid client message.
            prop_assert_eq!(kinds, vec!["Error".to_owned()]);
        }

        #[test]
        fn arbitrary_bytes_as_text_get_exactly_one_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            prop_assume!(serde_json::from_str::<Value>(&text).map_or(true, |v| !v.is_object()));
            prop_assert_eq!(replies(&text), vec!["Error".to_owned()]);
        }

        #[test]
        fn schema_breaking_messages_get_one_error(value in client_message(false)) {
            prop_assert_eq!(replies(&value.to_string()), vec!["Error".to_owned()]);
        }

        #[test]
        fn valid_messages_get_valid_replies(value in client_message(true)) {
            let kinds = replies(&value.to_string());
            let acknowledged = value.get("acknowledgmentId").is_some();
            if acknowledged {
                prop_assert_eq!(kinds.first().map(String::as_str), Some("Ack"), "{}", value);
            }
            match value["type"].as_str() {
                Some("Authenticate") => prop_assert_eq!(kinds.len(), usize::from(acknowledged)),
                // Unknown service (random names): TaskFailed, or Accepted for "S"/"op".
                Some("AssignTask") => prop_assert!(kinds.iter().any(|kind| kind == "TaskFailed" || kind == "TaskStatusUpdate"), "{:?}", kinds),
                // Nothing is known in a fresh provider.
                _ => prop_assert_eq!(kinds.last().map(String::as_str), Some("Error")),
            }
        }
    }
}
