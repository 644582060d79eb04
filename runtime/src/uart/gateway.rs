//! The uart gateway: the [link](super::link) to the module, the
//! [node store](super::store), and the local TCP API (default
//! `127.0.0.1:50010`) speaking the same frames as the UART.
//!
//! On the TCP API a connection's first frame decides what it is:
//! - `LSTN-` is answered `S` and makes it the listener: it gets every later
//!   `M` body from the module verbatim. A newer `LSTN-` replaces the older
//!   listener, which is closed.
//! - Any other first frame is one request: one reply, then the gateway
//!   closes the connection. `NSTAT`, `[GET]`, `ACT-C` and `NINFO` are
//!   answered from the store; module commands are relayed over the UART
//!   (one at a time; `F module timeout` after the module timeout).
//!
//! With [`GatewayConfig::monitor`] set, a WebSocket [monitor](super::monitor)
//! beside the API sends every `M` frame and store change as JSON.
//!
//! ```no_run
//! use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let gateway = Gateway::start(GatewayConfig::new("/dev/ttyUSB0")).await?;
//! println!("local API on {}", gateway.local_addr());
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use specwire_protocol::uart::{
    Command, Count, DataValues, HandledBy, NodeEntry, NodeList, DEFAULT_LOCAL_PORT,
};
use tokio::sync::broadcast;

use super::link::{failure, Link, LinkConfig, LinkCounters, LinkEvent};
use super::monitor::Monitor;
use super::store::{Change, NodeStore};
use super::table::DataTypeTable;
use crate::net::frame_codec::FrameCodec;
use crate::net::{tcp, Limits, Outbox, Peer, Server, ServerConfig, TcpService, TcpSession};

/// Changes and `M` frames for in-process listeners (the monitor): the
/// newest are kept when a listener falls this far behind.
pub const EVENT_CAPACITY: usize = 1024;

/// How a gateway runs.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The serial side.
    pub link: LinkConfig,
    /// The local TCP API. Default `127.0.0.1:50010`.
    pub server: ServerConfig,
    /// The data-type table `DATA_UPDATE`s are read with.
    pub table: DataTypeTable,
    /// Values kept per node and data type.
    pub history: usize,
    /// The WebSocket monitor (`None`: no monitor). Its default address is
    /// `127.0.0.1:50011`.
    pub monitor: Option<ServerConfig>,
}

impl GatewayConfig {
    /// Defaults for the module on `serial`.
    pub fn new(serial: impl Into<PathBuf>) -> GatewayConfig {
        let bind = SocketAddr::from(([127, 0, 0, 1], DEFAULT_LOCAL_PORT));
        let limits = Limits {
            max_queued: 4096,
            max_connections: 1024,
            max_connections_per_ip: 1024,
            ..Limits::default()
        };
        GatewayConfig {
            link: LinkConfig::new(serial),
            server: ServerConfig {
                bind,
                tls: None,
                limits,
            },
            table: DataTypeTable::schema_default(),
            history: 100,
            monitor: None,
        }
    }
}

/// What the gateway tells in-process listeners.
#[derive(Clone, Debug)]
pub enum GatewayEvent {
    /// An `M` body from the module (kind byte included), and what it
    /// changed in the store (empty when the store could not read it).
    Message {
        /// The body.
        body: Arc<Vec<u8>>,
        /// The store's changes.
        changes: Vec<Change>,
        /// When it arrived.
        at: SystemTime,
    },
    /// The serial port opened (`detail` `None`) or is gone (why).
    Link {
        /// Why it is closed; `None` when it opened.
        detail: Option<String>,
        /// When.
        at: SystemTime,
    },
}

/// Counters of the TCP side.
#[derive(Debug, Default)]
pub struct ApiCounters {
    /// Requests answered (listeners included).
    pub requests: AtomicU64,
    /// `M` bodies forwarded to the listener.
    pub forwarded: AtomicU64,
    /// `M` bodies the store could not read.
    pub unreadable: AtomicU64,
    /// Listeners replaced by a newer one.
    pub listeners_replaced: AtomicU64,
}

/// What the API's sessions, the link's callback and the monitor share.
pub(super) struct Shared {
    store: Mutex<NodeStore>,
    listener: Mutex<Option<(u64, Outbox<Vec<u8>>)>>,
    link: Link,
    /// The serial device.
    pub(super) serial: PathBuf,
    /// Why the port is closed, while it is.
    link_down: Mutex<Option<String>>,
    pub(super) events: broadcast::Sender<GatewayEvent>,
    counters: ApiCounters,
}

impl Shared {
    pub(super) fn store(&self) -> MutexGuard<'_, NodeStore> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn listener(&self) -> MutexGuard<'_, Option<(u64, Outbox<Vec<u8>>)>> {
        self.listener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn link_down(&self) -> MutexGuard<'_, Option<String>> {
        self.link_down
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the port is open, and why not when it is not.
    pub(super) fn link_state(&self) -> (bool, Option<String>) {
        let open = self.link.counters().open.load(Ordering::Relaxed);
        (open, if open { None } else { self.link_down().clone() })
    }

    /// Every counter, by the names the monitor's schema gives them.
    pub(super) fn counters(&self) -> Vec<(&'static str, u64)> {
        let link = self.link.counters();
        let api = &self.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            ("framesIn", read(&link.frames_in)),
            ("framesOut", read(&link.frames_out)),
            ("framesDropped", read(&link.frames_dropped)),
            ("timeouts", read(&link.timeouts)),
            ("lateReplies", read(&link.late_replies)),
            ("unknownFrames", read(&link.unknown_frames)),
            ("opened", read(&link.opened)),
            ("requests", read(&api.requests)),
            ("forwarded", read(&api.forwarded)),
            ("unreadable", read(&api.unreadable)),
            ("listenersReplaced", read(&api.listeners_replaced)),
        ]
    }
}

/// A running gateway.
pub struct Gateway {
    server: Server,
    monitor: Option<Monitor>,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Opens the serial side (retrying in the background until the port
    /// is there) and binds the local API (and the monitor, if configured).
    pub async fn start(config: GatewayConfig) -> io::Result<Gateway> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let store = NodeStore::new(config.table, config.history);
        let serial = config.link.path.clone();
        // The link's callback reaches the shared state it is part of.
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let weak = weak.clone();
            let link = Link::start(config.link, move |event| {
                if let Some(shared) = weak.upgrade() {
                    on_link_event(&shared, event);
                }
            });
            Shared {
                store: Mutex::new(store),
                listener: Mutex::new(None),
                link,
                serial,
                link_down: Mutex::new(None),
                events,
                counters: ApiCounters::default(),
            }
        });
        let server = tcp::serve(config.server, Arc::new(Api(Arc::clone(&shared)))).await?;
        tracing::info!(local_addr = %server.local_addr(), "uart gateway listening");
        let monitor = match config.monitor {
            Some(monitor) => Some(Monitor::start(monitor, Arc::clone(&shared)).await?),
            None => None,
        };
        Ok(Gateway {
            server,
            monitor,
            shared,
        })
    }

    /// The local API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The monitor's address, when it runs.
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(Monitor::local_addr)
    }

    /// The link's counters (frames in/out, drops, timeouts).
    pub fn link_counters(&self) -> &LinkCounters {
        self.shared.link.counters()
    }

    /// The TCP side's counters.
    pub fn api_counters(&self) -> &ApiCounters {
        &self.shared.counters
    }

    /// Runs `read` on the node store.
    pub fn with_store<T>(&self, read: impl FnOnce(&NodeStore) -> T) -> T {
        read(&self.shared.store())
    }

    /// `M` frames and store changes as they happen.
    pub fn events(&self) -> broadcast::Receiver<GatewayEvent> {
        self.shared.events.subscribe()
    }

    /// Stops accepting and closes the connections (bounded by `grace`).
    pub async fn shutdown(self, grace: Duration) {
        if let Some(monitor) = &self.monitor {
            monitor.shutdown(grace).await;
        }
        self.server.shutdown(grace).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn on_link_event(shared: &Shared, event: LinkEvent<'_>) {
    match event {
        LinkEvent::Message(body) => on_message(shared, body),
        LinkEvent::Opened => {
            *shared.link_down() = None;
            let _ = shared.events.send(GatewayEvent::Link {
                detail: None,
                at: SystemTime::now(),
            });
        }
        LinkEvent::Lost(reason) => {
            *shared.link_down() = Some(reason.to_owned());
            let _ = shared.events.send(GatewayEvent::Link {
                detail: Some(reason.to_owned()),
                at: SystemTime::now(),
            });
        }
    }
}

/// An `M` body from the module: into the store, to the listener, to
/// in-process listeners.
fn on_message(shared: &Shared, body: &[u8]) {
    let at = SystemTime::now();
    let changes = match shared.store().apply(&body[1..], at) {
        Ok(changes) => changes,
        Err(reason) => {
            tracing::debug!(%reason, "an M frame the store cannot read");
            shared.counters.unreadable.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        }
    };
    let mut listener = shared.listener();
    if let Some((_, outbox)) = listener.as_ref() {
        if outbox.send(body.to_vec()).is_ok() {
            shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        } else {
            *listener = None;
        }
    }
    drop(listener);
    let _ = shared.events.send(GatewayEvent::Message {
        body: Arc::new(body.to_vec()),
        changes,
        at,
    });
}

struct Api(Arc<Shared>);

impl TcpService for Api {
    type Codec = FrameCodec;
    type Out = Vec<u8>;
    type Session = ApiSession;

    fn codec(&self) -> FrameCodec {
        FrameCodec::default()
    }

    /// A listener may wait silently for as long as it likes.
    fn idle_timeout(&self, _: &Limits) -> Option<Duration> {
        None
    }

    fn accept(&self, peer: Peer, outbox: Outbox<Vec<u8>>) -> Option<ApiSession> {
        Some(ApiSession {
            shared: Arc::clone(&self.0),
            peer,
            outbox,
            answered: false,
        })
    }
}

/// One local connection.
pub struct ApiSession {
    shared: Arc<Shared>,
    peer: Peer,
    outbox: Outbox<Vec<u8>>,
    /// Its first frame has been handled; later ones are ignored.
    answered: bool,
}

impl ApiSession {
    /// Replies and closes (a request connection).
    fn reply_and_close(&self, body: Vec<u8>) {
        let _ = self.outbox.send(body);
        self.outbox.end();
    }

    fn listen(&self) {
        let _ = self.outbox.send(vec![b'S']);
        let older = self
            .shared
            .listener()
            .replace((self.peer.id, self.outbox.clone()));
        if let Some((_, older)) = older {
            older.end();
            self.shared
                .counters
                .listeners_replaced
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl TcpSession for ApiSession {
    type Frame = Vec<u8>;

    fn on_frame(&mut self, body: Vec<u8>) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        self.shared
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let command = match Command::decode(&body) {
            Ok(command) => command,
            Err(error) => return self.reply_and_close(failure(&format!("bad command: {error}"))),
        };
        match &command {
            Command::Listen(_) => self.listen(),
            _ if command.handled_by() == HandledBy::Gateway => {
                let reply = answer_locally(&self.shared.store(), &command);
                self.reply_and_close(reply);
            }
            _ => {
                let shared = Arc::clone(&self.shared);
                let outbox = self.outbox.clone();
                tokio::spawn(async move {
                    let reply = shared.link.command(body).await;
                    let _ = outbox.send(reply);
                    outbox.end();
                });
            }
        }
    }

    fn on_close(&mut self) {
        let mut listener = self.shared.listener();
        if listener.as_ref().is_some_and(|(id, _)| *id == self.peer.id) {
            *listener = None;
        }
    }
}

/// The reply to a command the gateway answers from its store.
fn answer_locally(store: &NodeStore, command: &Command) -> Vec<u8> {
    let mut reply = vec![b'S'];
    let written = match command {
        Command::NodeStatus(status) => {
            let nodes = store
                .nodes_in(status.state)
                .into_iter()
                .map(|(addr, uuid)| NodeEntry {
                    addr,
                    uuid: uuid::Uuid::from_bytes(uuid),
                })
                .collect();
            NodeList { nodes }
                .encode_into(&mut reply)
                .map_err(|e| e.to_string())
        }
        Command::GetData(get) => match store.table().get(get.data_id) {
            None => Err(format!("unknown data type {}", get.data_id)),
            Some(row) => {
                let values = store
                    .latest(get.data_id, get.addr)
                    .into_iter()
                    .map(|(addr, data)| specwire_protocol::uart::NodeValue { addr, data })
                    .collect();
                DataValues {
                    data_id: get.data_id,
                    length: row.length as u8,
                    values,
                }
                .encode_into(&mut reply)
                .map_err(|e| e.to_string())
            }
        },
        Command::ActiveCount(_) => {
            let count = store.active_count().min(255) as u8;
            Count { count }.encode_into(&mut reply);
            Ok(())
        }
        Command::NetworkInfo(_) => {
            reply.extend_from_slice(store.describe().to_string().as_bytes());
            Ok(())
        }
        other => Err(format!("{} is not answered by the gateway", other.name())),
    };
    match written {
        Ok(()) => reply,
        Err(reason) => failure(&reason),
    }
}
