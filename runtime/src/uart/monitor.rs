//! The gateway's WebSocket monitor: a read-only JSON feed of what the
//! module says and what it changes, for dashboards and browsers (the
//! `monitor` family in `schema/monitor/`; the seed's unfinished
//! `web_socket_proxy_server.py`).
//!
//! A client connects to `/` and gets a `snapshot` (the serial side, the
//! counters, the node store as `NINFO` describes it), then, in the order
//! the gateway handled them: a `frame` for every `M` frame, followed by the
//! `node` and `data` changes it made in the store, and a `link` event when
//! the serial port disappears or opens again. What a client sends is
//! ignored. A plain HTTP `GET /` answers the snapshot alone.
//!
//! One task reads the gateway's event channel, renders each event once
//! and queues the same text to every client. Every client's queue is
//! bounded ([`Limits::max_queued`](crate::net::Limits::max_queued)); a
//! client that reads too slowly is closed with 1008, like every specwire
//! WebSocket. When the task itself falls more than
//! [`EVENT_CAPACITY`](super::gateway::EVENT_CAPACITY) events behind, every
//! client gets `lagged` and a fresh `snapshot`.
//!
//! A client registers and gets its snapshot under one lock that the task
//! also takes to send, so no event falls between the two; an event the
//! snapshot already shows may follow it (events are idempotent).
//!
//! ```no_run
//! use specwire_runtime::net::ServerConfig;
//! use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let gateway = Gateway::start(GatewayConfig {
//!     monitor: Some(ServerConfig::new("127.0.0.1:50011".parse().unwrap())),
//!     ..GatewayConfig::new("/dev/ttyUSB0")
//! })
//! .await?;
//! println!("ws://{}/", gateway.monitor_addr().unwrap());
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::describe::{addr, message_json, value_json};
use super::gateway::{GatewayEvent, Shared};
use super::store::Change;
use crate::clock::rfc3339;
use crate::net::http::{header, response, HeaderValue, Request, Response, StatusCode};
use crate::net::{ws, Outbox, Peer, Server, ServerConfig, Text, WsService, WsSession};

/// The path clients connect to.
pub const PATH: &str = "/";

/// The running monitor. Dropping it stops it.
pub struct Monitor {
    server: Server,
    task: JoinHandle<()>,
}

impl Monitor {
    /// Binds `config` and starts forwarding `shared`'s events.
    pub(super) async fn start(config: ServerConfig, shared: Arc<Shared>) -> io::Result<Monitor> {
        let clients = Arc::new(Clients::default());
        let events = shared.events.subscribe();
        let service = Arc::new(Service {
            shared: Arc::downgrade(&shared),
            clients: Arc::clone(&clients),
        });
        let server = ws::serve(config, service).await?;
        tracing::info!(monitor = %server.endpoint(), "uart gateway monitor listening");
        let task = tokio::spawn(forward(events, Arc::downgrade(&shared), clients));
        Ok(Monitor { server, task })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Closes the clients' connections (bounded by `grace`).
    pub(super) async fn shutdown(&self, grace: Duration) {
        self.task.abort();
        self.server.shutdown(grace).await;
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
        self.server.abort();
    }
}

/// The connected clients' queues, by connection id.
#[derive(Default)]
struct Clients(Mutex<Vec<(u64, Outbox<Text>)>>);

impl Clients {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Outbox<Text>)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `texts` to every client; a client whose queue is closed or
    /// full (the outbox then closes it) is forgotten.
    fn send(clients: &mut Vec<(u64, Outbox<Text>)>, texts: &[Text]) {
        clients.retain(|(_, outbox)| texts.iter().all(|text| outbox.send(text.clone()).is_ok()));
    }
}

/// Reads the gateway's events until it stops.
async fn forward(
    mut events: tokio::sync::broadcast::Receiver<GatewayEvent>,
    shared: Weak<Shared>,
    clients: Arc<Clients>,
) {
    loop {
        let texts = match events.recv().await {
            Ok(event) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                render(&event, &shared)
            }
            Err(RecvError::Lagged(skipped)) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let lagged =
                    json!({"type": "lagged", "at": rfc3339(SystemTime::now()), "skipped": skipped});
                let mut clients = clients.lock();
                // The snapshot is taken under the clients' lock, as when a
                // client connects.
                let texts = [text(&lagged), text(&snapshot(&shared))];
                Clients::send(&mut clients, &texts);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        Clients::send(&mut clients.lock(), &texts);
    }
}

fn text(value: &Value) -> Text {
    value.to_string().into()
}

/// The monitor messages for one gateway event.
fn render(event: &GatewayEvent, shared: &Shared) -> Vec<Text> {
    match event {
        GatewayEvent::Message { body, changes, at } => {
            let at = rfc3339(*at);
            let store = shared.store();
            let table = store.table();
            let mut texts = vec![text(&json!({
                "type": "frame",
                "at": at,
                "raw": specwire_wire::to_hex(body),
                "message": message_json(body, table),
            }))];
            texts.extend(changes.iter().map(|change| {
                text(&match change {
                    Change::Node {
                        addr: node,
                        state,
                        uuid,
                    } => json!({
                        "type": "node",
                        "at": at,
                        "node": addr(*node),
                        "state": state.as_char().map(String::from),
                        "uuid": uuid.map(|uuid| uuid::Uuid::from_bytes(uuid).to_string()),
                    }),
                    Change::Data { addr: node, values } => json!({
                        "type": "data",
                        "at": at,
                        "node": addr(*node),
                        "values": values
                            .iter()
                            .map(|(id, raw)| value_json(*id, raw, table))
                            .collect::<Vec<_>>(),
                    }),
                })
            }));
            texts
        }
        GatewayEvent::Link { detail, at } => vec![text(&json!({
            "type": "link",
            "at": rfc3339(*at),
            "link": link_json(shared, detail.is_none(), detail.as_deref()),
        }))],
    }
}

fn link_json(shared: &Shared, open: bool, detail: Option<&str>) -> Value {
    let mut link = json!({"path": shared.serial.display().to_string(), "open": open});
    if let (Some(detail), Some(object)) = (detail, link.as_object_mut()) {
        object.insert("detail".into(), detail.into());
    }
    link
}

/// The `snapshot` message: the serial side, the counters, the store.
fn snapshot(shared: &Shared) -> Value {
    let (open, detail) = shared.link_state();
    let counters: Map<String, Value> = shared
        .counters()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.into()))
        .collect();
    json!({
        "type": "snapshot",
        "at": rfc3339(SystemTime::now()),
        "link": link_json(shared, open, detail.as_deref()),
        "counters": counters,
        "network": shared.store().describe(),
    })
}

struct Service {
    shared: Weak<Shared>,
    clients: Arc<Clients>,
}

impl WsService for Service {
    type Session = Session;

    const SHUTDOWN_REASON: &'static str = "gateway shutting down";

    fn accept(
        &self,
        request: &Request,
        peer: Peer,
        outbox: Outbox<Text>,
    ) -> Result<Session, Response> {
        if request.uri().path() != PATH {
            return Err(response(
                StatusCode::NOT_FOUND,
                format!("the monitor is at {PATH}"),
            ));
        }
        let Some(shared) = self.shared.upgrade() else {
            return Err(response(
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway stopping",
            ));
        };
        let mut clients = self.clients.lock();
        // Cannot be full: the queue is new.
        let _ = outbox.send(text(&snapshot(&shared)));
        clients.push((peer.id, outbox));
        Ok(Session {
            id: peer.id,
            clients: Arc::clone(&self.clients),
        })
    }

    fn http(&self, request: &Request, _: Peer) -> Option<Response> {
        let shared = self.shared.upgrade()?;
        if request.uri().path() != PATH {
            return Some(response(
                StatusCode::NOT_FOUND,
                format!("the monitor is at {PATH}"),
            ));
        }
        let mut answer = response(StatusCode::OK, snapshot(&shared).to_string());
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Some(answer)
    }
}

/// One client; it only listens.
struct Session {
    id: u64,
    clients: Arc<Clients>,
}

impl WsSession for Session {
    fn on_text(&mut self, _: &str) {}

    fn on_close(&mut self) {
        self.clients.lock().retain(|(id, _)| *id != self.id);
    }
}
