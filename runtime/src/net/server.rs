//! The accept loop every server shares: bind, connection limits in all and
//! per IP address, optional TLS with a time limit, one task per connection,
//! and graceful shutdown with a grace period.
//!
//! What runs on a connection is the protocol layer's business:
//! [`ws`](super::ws) speaks WebSocket over it, [`tcp`](super::tcp) a framing
//! codec. Both return a [`Server`], the handle to the running loop:
//!
//! ```no_run
//! # async fn run(server: specwire_runtime::net::Server) {
//! println!("serving on {}", server.endpoint());
//! // Stop accepting, close every connection politely, wait up to 5 s.
//! server.shutdown(std::time::Duration::from_secs(5)).await;
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::limits::Limits;

/// Where and how a server listens.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks one.
    pub bind: SocketAddr,
    /// Serve TLS (`wss://`) with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connection, size, rate and keepalive limits.
    pub limits: Limits,
}

impl ServerConfig {
    /// Plain (no TLS) on `bind` with the default limits.
    pub fn new(bind: SocketAddr) -> ServerConfig {
        ServerConfig {
            bind,
            tls: None,
            limits: Limits::default(),
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// A number unique among this server's connections.
    pub id: u64,
}

/// Anything stream-like a connection runs over (TCP or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// What runs on each accepted connection, after TLS.
pub(crate) trait Serve: Send + Sync + 'static {
    /// Serves one connection until it ends; `closing` is cancelled when
    /// the server shuts down.
    fn serve<S: Stream>(
        self: Arc<Self>,
        stream: S,
        peer: Peer,
        closing: CancellationToken,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Open connections, in all and per IP address.
#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next_id: AtomicU64,
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Counts {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if self.open.load(Ordering::Relaxed) >= limits.max_connections
            || from_ip >= limits.max_connections_per_ip
        {
            return None;
        }
        per_ip.insert(ip, from_ip + 1);
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.counts.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

type Connections = Arc<tokio::sync::Mutex<JoinSet<()>>>;

/// A running server. Dropping it stops accepting and aborts every
/// connection without a goodbye; [`Server::shutdown`] is the graceful way.
pub struct Server {
    local_addr: SocketAddr,
    scheme: &'static str,
    counts: Arc<Counts>,
    closing: CancellationToken,
    accept_loop: tokio::task::JoinHandle<()>,
    connections: Connections,
}

impl Server {
    /// Binds and starts accepting; `schemes` are the URL schemes without
    /// and with TLS (`("ws", "wss")`).
    pub(crate) async fn start<H: Serve>(
        config: ServerConfig,
        schemes: (&'static str, &'static str),
        handler: Arc<H>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let acceptor = config.tls.map(tokio_rustls::TlsAcceptor::from);
        let scheme = if acceptor.is_some() {
            schemes.1
        } else {
            schemes.0
        };
        let counts = Arc::new(Counts::default());
        let closing = CancellationToken::new();
        let connections = Connections::default();
        let accept_loop = tokio::spawn(accept(
            Accept {
                listener,
                tls: acceptor,
                limits: config.limits,
                counts: Arc::clone(&counts),
                closing: closing.clone(),
                connections: Arc::clone(&connections),
            },
            handler,
        ));
        Ok(Server {
            local_addr,
            scheme,
            counts,
            closing,
            accept_loop,
            connections,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `SCHEME://ADDR` (`ws://127.0.0.1:8080`, `wss://...`, `tcp://...`).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    /// The endpoint with `host` instead of the bound address (for
    /// advertising a server bound to a wildcard address).
    pub fn endpoint_for(&self, host: &str) -> String {
        format!("{}://{}:{}", self.scheme, host, self.local_addr.port())
    }

    /// The URL scheme (`ws`, `wss`, `tcp`, `tls`).
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.counts.open.load(Ordering::Relaxed)
    }

    /// Stops accepting; open connections go on.
    pub fn stop_accepting(&self) {
        self.accept_loop.abort();
    }

    /// Stops accepting and asks every connection to close (each writes what
    /// is queued and closes politely); waits up to `grace` for them, then
    /// aborts the rest.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_accepting();
        self.closing.cancel();
        let mut connections = self.connections.lock().await;
        let closing = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, closing).await.is_err() {
            connections.abort_all();
            // Aborted tasks end at their next poll; wait for that, so
            // every connection is gone (and counted out) on return.
            while connections.join_next().await.is_some() {}
        }
    }

    /// Stops accepting and aborts every connection at once, without a
    /// goodbye (what dropping the server does).
    pub fn abort(&self) {
        self.stop_accepting();
        if let Ok(mut connections) = self.connections.try_lock() {
            connections.abort_all();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.abort();
    }
}

struct Accept {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    counts: Arc<Counts>,
    closing: CancellationToken,
    connections: Connections,
}

async fn accept<H: Serve>(state: Accept, handler: Arc<H>) {
    loop {
        let (stream, addr) = match state.listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = state.counts.admit(addr.ip(), &state.limits) else {
            tracing::warn!(peer = %addr, "connection refused: too many connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr,
            id: state.counts.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let handler = Arc::clone(&handler);
        let tls = state.tls.clone();
        let closing = state.closing.clone();
        let timeout = state.limits.handshake_timeout;
        let mut set = state.connections.lock().await;
        // Reap finished connections so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let result = handshake_and_serve(stream, peer, tls, timeout, handler, closing).await;
            drop(slot);
            if let Err(error) = result {
                tracing::debug!(peer = %peer.addr, %error, "connection ended with an error");
            }
        });
    }
}

async fn handshake_and_serve<H: Serve>(
    stream: TcpStream,
    peer: Peer,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeout: Duration,
    handler: Arc<H>,
    closing: CancellationToken,
) -> Result<(), String> {
    match tls {
        Some(acceptor) => {
            let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|error| format!("TLS handshake: {error}"))?;
            // Boxed: the TLS connection's state is several KiB larger, and
            // inline it would size every plain connection's task too.
            Box::pin(handler.serve(stream, peer, closing)).await
        }
        None => handler.serve(stream, peer, closing).await,
    }
}
