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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use specwire_protocol::task::{self as protocol, Message};
use specwire_protocol::JsonProtocol;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::access::AccessPolicy;
use super::handler::{ServiceDescription, TaskHandler};
use super::runner::{Counters, Shared};
use super::session::Session;
use super::store::{Retention, TaskStore};
use crate::discovery::Presence;
use crate::net::http::{Request, Response};
use crate::net::{self, Limits, Outbox, Peer, Server, ServerConfig, Text, WsService};

/// How long connections may take to close after a shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

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

/// A running provider. Dropping it stops accepting and aborts every
/// connection without a goodbye; [`Provider::shutdown`] is the graceful way.
pub struct Provider {
    server: Server,
    shared: Arc<Shared>,
    /// Cancels running tasks (the store's tokens are its children).
    tasks_shutdown: CancellationToken,
}

/// The provider as the WebSocket server sees it: every upgrade, whatever
/// its path, gets a task session.
struct TaskService(Arc<Shared>);

impl WsService for TaskService {
    type Session = Session;

    const SHUTDOWN_REASON: &'static str = "provider shutting down";

    fn accept(&self, _: &Request, peer: Peer, outbox: Outbox<Text>) -> Result<Session, Response> {
        Ok(Session::new(Arc::clone(&self.0), peer.id, outbox))
    }
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
            limits: config.limits.clone(),
            store,
            slots: Arc::new(Semaphore::new(config.capacity.max(1))),
            cancel_grace: config.cancel_grace,
            counters: Counters::default(),
            shutting_down: Default::default(),
            dropped: Default::default(),
        });
        let server_config = ServerConfig {
            bind: config.bind,
            tls: config.tls,
            limits: config.limits,
        };
        let service = Arc::new(TaskService(Arc::clone(&shared)));
        let server = net::ws::serve(server_config, service).await?;
        tracing::info!(local_addr = %server.local_addr(), scheme = server.scheme(), "task provider listening");
        Ok(Provider {
            server,
            shared,
            tasks_shutdown,
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

    /// The endpoint with `host` instead of the bound address (for
    /// advertising a provider bound to a wildcard address).
    pub fn endpoint_for(&self, host: &str) -> String {
        self.server.endpoint_for(host)
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
            connections: self.server.connections(),
            runs: counters.runs.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops gracefully: stops accepting, lets running tasks finish for up
    /// to `grace`, cancels the rest (clients get `Cancelled`), announces
    /// `Offline`, and closes every connection with the close handshake.
    pub async fn shutdown(self, grace: Duration) {
        self.server.stop_accepting();
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
        self.server.shutdown(CLOSE_GRACE).await;
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // Connections go first and tasks end without a word: a dropped
        // provider looks like a crashed one (after `shutdown` it is gone
        // already and this does nothing).
        self.shared.dropped.store(true, Ordering::SeqCst);
        self.server.abort();
        self.tasks_shutdown.cancel();
    }
}
