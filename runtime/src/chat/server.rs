//! The chat server: a [`TcpService`] over the shared accept loop, one
//! [`ChatSession`] per connection, one [`Room`] for all.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use specwire_protocol::chat as protocol;

use super::room::{Fanout, Room};
use super::session::ChatSession;
use crate::net::json_stream::JsonStreamCodec;
use crate::net::{tcp, Limits, Outbox, Peer, Server, ServerConfig, TcpService};

/// What `join_chat` does with a name someone already has (the profile
/// allows both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NamePolicy {
    /// Refuse with `Username already taken` (the default: a name then
    /// always means one person, and the joiner chooses another).
    #[default]
    Refuse,
    /// Append `_<the joiner's port>` (the seed's server), and a counter
    /// should that be taken too.
    SuffixPort,
}

/// What `get_users` (and the join response) list (the profile allows
/// both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserListing {
    /// Plain names (the default: peers' addresses are not every user's
    /// business).
    #[default]
    Names,
    /// `{username, address}` objects with each connection's `host:port`.
    WithAddress,
}

/// How a chat server runs.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Where to listen, TLS, limits. Default `127.0.0.1:65432`; the
    /// queue per connection ([`Limits::max_queued`]) is 4096 objects.
    pub server: ServerConfig,
    /// A taken name: refused or suffixed.
    pub names: NamePolicy,
    /// Users as names or with addresses.
    pub users: UserListing,
    /// Send the joiner `Welcome to the chat, NAME!` after its response.
    pub welcome: bool,
}

impl ChatConfig {
    /// The defaults, listening on `bind`.
    pub fn new(bind: SocketAddr) -> ChatConfig {
        let limits = Limits {
            max_message_bytes: protocol::MAX_MESSAGE_BYTES,
            max_frame_bytes: protocol::MAX_MESSAGE_BYTES,
            messages_per_second: None,
            max_queued: 4096,
            ..Limits::default()
        };
        ChatConfig {
            server: ServerConfig {
                bind,
                tls: None,
                limits,
            },
            names: NamePolicy::default(),
            users: UserListing::default(),
            welcome: false,
        }
    }
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig::new(SocketAddr::from(([127, 0, 0, 1], protocol::DEFAULT_PORT)))
    }
}

/// Counters, for tests, logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Connections open now.
    pub connections: usize,
    /// Joined users now.
    pub joined: usize,
    /// `send_message`s accepted, ever.
    pub messages: u64,
    /// Broadcast copies queued to connections.
    pub delivered: u64,
    /// Requests refused (`status: error`) or answered with a JSON-RPC error.
    pub errors: u64,
    /// Connections closed because their queue was full.
    pub slow_closed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub messages: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub slow_closed: AtomicU64,
}

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub names: NamePolicy,
    pub users: UserListing,
    pub welcome: bool,
    pub limits: Limits,
    pub counters: Counters,
    room: Mutex<Room>,
}

impl Shared {
    pub(crate) fn room(&self) -> MutexGuard<'_, Room> {
        self.room
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn count(&self, fanout: Fanout) {
        let c = &self.counters;
        c.delivered
            .fetch_add(fanout.delivered as u64, Ordering::Relaxed);
        if fanout.overflowed > 0 {
            c.slow_closed
                .fetch_add(fanout.overflowed as u64, Ordering::Relaxed);
        }
    }
}

struct ChatService(Arc<Shared>);

impl TcpService for ChatService {
    type Codec = JsonStreamCodec;
    type Out = Bytes;
    type Session = ChatSession;

    // Many idle connections: small buffers that grow when a message needs it.
    const BUFFER_CAPACITY: usize = 1024;

    fn codec(&self) -> JsonStreamCodec {
        JsonStreamCodec::new(self.0.limits.max_message_bytes)
    }

    /// The protocol has no heartbeat: a quiet user is not a dead one.
    fn idle_timeout(&self, _: &Limits) -> Option<Duration> {
        None
    }

    fn accept(&self, peer: Peer, outbox: Outbox<Bytes>) -> Option<ChatSession> {
        Some(ChatSession::new(Arc::clone(&self.0), peer, outbox))
    }
}

/// A running chat server. Dropping it aborts every connection;
/// [`ChatServer::shutdown`] is the graceful way.
///
/// ```no_run
/// use specwire_runtime::chat::{ChatConfig, ChatServer};
///
/// # async fn run() -> std::io::Result<()> {
/// let server = ChatServer::start(ChatConfig::new("127.0.0.1:0".parse().unwrap())).await?;
/// println!("chat on {}", server.endpoint());
/// server.shutdown(std::time::Duration::from_secs(2)).await;
/// # Ok(()) }
/// ```
pub struct ChatServer {
    server: Server,
    shared: Arc<Shared>,
}

impl ChatServer {
    /// Binds and starts serving.
    pub async fn start(config: ChatConfig) -> io::Result<ChatServer> {
        let shared = Arc::new(Shared {
            names: config.names,
            users: config.users,
            welcome: config.welcome,
            limits: config.server.limits.clone(),
            counters: Counters::default(),
            room: Mutex::new(Room::default()),
        });
        let server = tcp::serve(config.server, Arc::new(ChatService(Arc::clone(&shared)))).await?;
        tracing::info!(local_addr = %server.local_addr(), scheme = server.scheme(), "chat server listening");
        Ok(ChatServer { server, shared })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `tcp://ADDR` or `tls://ADDR`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The joined users' names, in join order.
    pub fn users(&self) -> Vec<String> {
        self.shared
            .room()
            .users()
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> ChatStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ChatStats {
            connections: self.server.connections(),
            joined: self.shared.room().len(),
            messages: load(&c.messages),
            delivered: load(&c.delivered),
            errors: load(&c.errors),
            slow_closed: load(&c.slow_closed),
        }
    }

    /// Stops accepting, writes what is queued and closes every connection
    /// (bounded by `grace`).
    pub async fn shutdown(self, grace: Duration) {
        self.server.shutdown(grace).await;
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
