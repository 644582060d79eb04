//! The event hub: a WebSocket server that authenticates subscribers with
//! JWTs, keeps their subscriptions, and routes published events to them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use specwire_protocol::subscription::{self as protocol, Message, PublishData};
use specwire_protocol::{Direction, JsonProtocol};
use tokio_util::sync::CancellationToken;

use super::messages::{self, Ids};
use super::resource::{route, Resource};
use super::session::HubSession;
use super::table::{Admission, Table};
use crate::net::http::{bearer_token, response, Request, Response, StatusCode};
use crate::net::jwt::{Jwt, Secret};
use crate::net::{self, Authenticator, Credential, Limits, Outbox, Peer, Server, ServerConfig};
use crate::net::{Text, WsService};

/// How a hub runs.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Where to listen. Default `127.0.0.1:8081`; port 0 picks one.
    pub bind: SocketAddr,
    /// The HS256 secret tokens are signed with.
    pub secret: Secret,
    /// How often every connection gets a JSON `ping`.
    pub ping_interval: Duration,
    /// Connections per user (`sub`).
    pub user_limit: usize,
    /// Connections per IP address.
    pub ip_limit: usize,
    /// Connections in all.
    pub max_connections: usize,
    /// Messages per second a connection may send (bursts of as many);
    /// `None`: unlimited.
    pub rate_limit: Option<f64>,
    /// Messages that may wait to be written to one connection. A
    /// subscriber that falls this far behind is closed with 1013.
    pub queue: usize,
    /// Experiments whose project and owner the hub remembers (see
    /// [`resource`](super::resource) on routing).
    pub known_experiments: usize,
    /// Serve `wss://` with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Message size, handshake time, keepalive, write timeout. The
    /// connection counts, rate and queue above override these.
    pub limits: Limits,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8081)),
            secret: Secret::new(Vec::new()),
            ping_interval: Duration::from_secs(30),
            user_limit: 10,
            ip_limit: 50,
            max_connections: 1000,
            rate_limit: Some(50.0),
            queue: 1024,
            known_experiments: 100_000,
            tls: None,
            limits: Limits {
                max_message_bytes: protocol::MAX_MESSAGE_BYTES,
                ..Limits::default()
            },
        }
    }
}

impl HubConfig {
    /// The server's limits: the configured ones, with room above the
    /// connection limits so that a refused client still gets its `error`
    /// (the profile refuses over-limit connections with a message, which
    /// needs the handshake); beyond that room, connections are dropped
    /// before any handshake.
    fn server_limits(&self) -> Limits {
        let room = |limit: usize| limit.saturating_add(limit / 4).saturating_add(16);
        Limits {
            max_connections: room(self.max_connections),
            max_connections_per_ip: room(self.ip_limit),
            messages_per_second: self.rate_limit,
            burst: self
                .rate_limit
                .map_or(1, |rate| rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32),
            max_queued: self.queue,
            ..self.limits.clone()
        }
    }
}

/// Counters, for tests, logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Authenticated connections open now.
    pub connections: usize,
    /// Events published (in process or by admins).
    pub published: u64,
    /// Event copies queued to connections.
    pub delivered: u64,
    /// Connections closed because their queue was full.
    pub slow_closed: u64,
    /// Connections refused for a missing or invalid token.
    pub refused_auth: u64,
    /// Connections refused by a connection limit.
    pub refused_limit: u64,
    /// `error` replies to messages.
    pub errors: u64,
    /// Experiments whose project and owner the hub knows.
    pub known_experiments: usize,
}

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// Not a valid message of the family.
    #[error("{0}")]
    Invalid(specwire_protocol::DecodeError),
    /// A valid message, but not an event (a `ping`, a reply, ...).
    #[error(
        "`{0}` is not an event: publish experiment_*, task_*, worker_* or system_status events"
    )]
    NotAnEvent(&'static str),
    /// The event could not be written as JSON (a bug).
    #[error("encoding the event: {0}")]
    Encode(serde_json::Error),
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub slow_closed: AtomicU64,
    pub refused_auth: AtomicU64,
    pub refused_limit: AtomicU64,
    pub errors: AtomicU64,
}

/// What every connection's session shares.
pub(crate) struct Shared {
    pub jwt: Jwt,
    pub ids: Ids,
    pub limits: Limits,
    pub admission: Admission,
    pub counters: Counters,
    table: Mutex<Table>,
}

impl Shared {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Routes `event`, whose JSON text is `raw` (sent as is), to every
    /// connection it reaches; returns how many.
    pub(crate) fn publish(&self, event: &PublishData, raw: &str) -> usize {
        let route = route(event);
        let text = Text::from(raw.trim().to_owned());
        let fanout = self.table().fan_out(route, &text);
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.counters
            .delivered
            .fetch_add(fanout.delivered as u64, Ordering::Relaxed);
        if fanout.overflowed > 0 {
            tracing::warn!(
                count = fanout.overflowed,
                "closing subscribers whose queue is full"
            );
            self.counters
                .slow_closed
                .fetch_add(fanout.overflowed as u64, Ordering::Relaxed);
        }
        fanout.delivered
    }
}

/// The event variants of the family's messages.
fn as_event(message: Message) -> Result<PublishData, &'static str> {
    use Message as M;
    Ok(match message {
        M::ExperimentCreated(e) => e.into(),
        M::ExperimentUpdated(e) => e.into(),
        M::ExperimentProgress(e) => e.into(),
        M::ExperimentCompleted(e) => e.into(),
        M::ExperimentFailed(e) => e.into(),
        M::TaskCreated(e) => e.into(),
        M::TaskUpdated(e) => e.into(),
        M::TaskProgress(e) => e.into(),
        M::TaskCompleted(e) => e.into(),
        M::TaskFailed(e) => e.into(),
        M::WorkerRegistered(e) => e.into(),
        M::WorkerUpdated(e) => e.into(),
        M::WorkerOffline(e) => e.into(),
        M::SystemStatus(e) => e.into(),
        other => return Err(other.name()),
    })
}

/// A running hub. Dropping it aborts every connection; [`Hub::shutdown`]
/// is the graceful way.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use specwire_runtime::net::jwt::Secret;
/// use specwire_runtime::subscription::{Hub, HubConfig};
///
/// let hub = Hub::start(HubConfig {
///     bind: "127.0.0.1:0".parse().unwrap(),
///     secret: Secret::new(b"from a file, in real life".to_vec()),
///     ..HubConfig::default()
/// })
/// .await?;
/// println!("{}/ws/experiments/exp-1?token=...", hub.endpoint());
/// hub.publish_json(r#"{"type":"experiment_progress","id":"exp_exp-1_1","timestamp":"2024-01-15T10:32:00Z",
///     "data":{"experimentId":"exp-1","totalTasks":10,"completedTasks":5,"failedTasks":0,
///     "runningTasks":1,"progressPercent":50.0,"lastUpdated":"2024-01-15T10:32:00Z"}}"#).unwrap();
/// hub.shutdown(std::time::Duration::from_secs(2)).await;
/// # Ok(()) }
/// ```
pub struct Hub {
    server: Server,
    shared: Arc<Shared>,
    heartbeat: CancellationToken,
}

impl Hub {
    /// Binds and starts serving.
    pub async fn start(config: HubConfig) -> io::Result<Hub> {
        if config.secret.as_bytes().is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the hub needs a JWT secret",
            ));
        }
        Message::family().warm_up().map_err(io::Error::other)?;
        let limits = config.server_limits();
        let shared = Arc::new(Shared {
            jwt: Jwt::hs256(&config.secret),
            ids: Ids::new(),
            limits: limits.clone(),
            admission: Admission {
                per_user: config.user_limit,
                per_ip: config.ip_limit,
                total: config.max_connections,
            },
            counters: Counters::default(),
            table: Mutex::new(Table::new(config.known_experiments)),
        });
        let server_config = ServerConfig {
            bind: config.bind,
            tls: config.tls,
            limits,
        };
        let service = Arc::new(HubService(Arc::clone(&shared)));
        let server = net::ws::serve(server_config, service).await?;
        let heartbeat = CancellationToken::new();
        tokio::spawn(heartbeat_loop(
            Arc::clone(&shared),
            config.ping_interval,
            heartbeat.clone(),
        ));
        tracing::info!(local_addr = %server.local_addr(), scheme = server.scheme(), "subscription hub listening");
        Ok(Hub {
            server,
            shared,
            heartbeat,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `ws://ADDR` or `wss://ADDR`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// Publishes an event given as JSON text: checked against its schema,
    /// then routed (its text sent as is). Returns the connections reached.
    pub fn publish_json(&self, text: &str) -> Result<usize, PublishError> {
        let value: Value = serde_json::from_str(text).map_err(PublishError::NotJson)?;
        let message = Message::decode_from(value, Some(Direction::ServerToClient))
            .map_err(PublishError::Invalid)?;
        let event = as_event(message).map_err(PublishError::NotAnEvent)?;
        Ok(self.shared.publish(&event, text))
    }

    /// Publishes a typed event. Returns the connections reached.
    pub fn publish(&self, event: &PublishData) -> Result<usize, PublishError> {
        let text = serde_json::to_string(event).map_err(PublishError::Encode)?;
        self.publish_json(&text)
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        let counters = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let table = self.shared.table();
        HubStats {
            connections: table.len(),
            published: load(&counters.published),
            delivered: load(&counters.delivered),
            slow_closed: load(&counters.slow_closed),
            refused_auth: load(&counters.refused_auth),
            refused_limit: load(&counters.refused_limit),
            errors: load(&counters.errors),
            known_experiments: table.known_experiments(),
        }
    }

    /// Stops accepting, closes every connection with the close handshake
    /// (bounded by `grace`).
    pub async fn shutdown(self, grace: Duration) {
        self.heartbeat.cancel();
        self.server.shutdown(grace).await;
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.heartbeat.cancel();
        self.server.abort();
    }
}

/// Every `interval`, a JSON `ping` (each with its own id) to every
/// connection: one timer for the hub, not one per connection.
async fn heartbeat_loop(shared: Arc<Shared>, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let table = shared.table();
                for outbox in table.outboxes() {
                    let _ = outbox.send(messages::ping(&shared.ids));
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// The hub as the WebSocket server sees it.
struct HubService(Arc<Shared>);

impl WsService for HubService {
    type Session = HubSession;

    const SHUTDOWN_REASON: &'static str = "hub shutting down";
    const OVERFLOW_CLOSE: (u16, &'static str) = (1013, "subscriber too slow: queue full");

    fn accept(
        &self,
        request: &Request,
        peer: Peer,
        outbox: Outbox<Text>,
    ) -> Result<HubSession, Response> {
        let shared = &self.0;
        let path = request.uri().path();
        if !Resource::is_known_path(path) {
            return Err(response(
                StatusCode::NOT_FOUND,
                "no such path: connect to /ws/experiments/{id}, /ws/tasks/{id}, /ws/projects/{id} or /ws/user\n",
            ));
        }
        let identity = match bearer_token(request) {
            None => Err(messages::text::AUTHENTICATION_REQUIRED),
            Some(token) => shared
                .jwt
                .authenticate(&Credential::Bearer(token))
                .map_err(|_| messages::text::INVALID_TOKEN),
        };
        let identity = match identity {
            Ok(identity) => identity,
            Err(text) => {
                shared.counters.refused_auth.fetch_add(1, Ordering::Relaxed);
                return Ok(HubSession::refuse(outbox, &shared.ids, text));
            }
        };
        let user = identity.client_id.clone().unwrap_or_default();
        let Some(resource) = Resource::from_path(path, &user) else {
            return Err(response(StatusCode::NOT_FOUND, "no such path\n"));
        };
        let admitted = {
            let mut table = shared.table();
            let admitted = table.admit(
                peer.id,
                &user,
                peer.addr.ip(),
                outbox.clone(),
                shared.admission,
            );
            if admitted.is_ok() {
                table.subscribe(peer.id, resource);
            }
            admitted
        };
        match admitted {
            Ok(()) => Ok(HubSession::new(
                Arc::clone(shared),
                peer.id,
                outbox,
                identity,
            )),
            Err(refusal) => {
                shared
                    .counters
                    .refused_limit
                    .fetch_add(1, Ordering::Relaxed);
                Ok(HubSession::refuse(outbox, &shared.ids, refusal.text()))
            }
        }
    }
}
