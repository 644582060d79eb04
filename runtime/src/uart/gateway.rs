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

use super::link::{failure, Link, LinkConfig, LinkCounters};
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

struct Shared {
    store: Mutex<NodeStore>,
    listener: Mutex<Option<(u64, Outbox<Vec<u8>>)>>,
    link: Link,
    events: broadcast::Sender<GatewayEvent>,
    counters: ApiCounters,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, NodeStore> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn listener(&self) -> MutexGuard<'_, Option<(u64, Outbox<Vec<u8>>)>> {
        self.listener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running gateway.
pub struct Gateway {
    server: Server,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Opens the serial side (retrying in the background until the port
    /// is there) and binds the local API.
    pub async fn start(config: GatewayConfig) -> io::Result<Gateway> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let store = NodeStore::new(config.table, config.history);
        // The link's callback reaches the shared state it is part of.
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let weak = weak.clone();
            let link = Link::start(config.link, move |body| {
                if let Some(shared) = weak.upgrade() {
                    on_message(&shared, body);
                }
            });
            Shared {
                store: Mutex::new(store),
                listener: Mutex::new(None),
                link,
                events,
                counters: ApiCounters::default(),
            }
        });
        let server = tcp::serve(config.server, Arc::new(Api(Arc::clone(&shared)))).await?;
        tracing::info!(local_addr = %server.local_addr(), "uart gateway listening");
        Ok(Gateway { server, shared })
    }

    /// The local API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
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
        self.server.shutdown(grace).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
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
