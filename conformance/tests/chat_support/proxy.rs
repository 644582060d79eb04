//! The fault proxy: a TCP proxy in front of the reference chat server
//! that breaks exactly one spec point ([`Fault`]). This file holds the
//! connection layer (accept, connect upstream, relay both ways, inject
//! objects into other connections, close); what each fault does to the
//! bytes and objects is in [`rules`](super::rules).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use specwire_testsupport::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub use super::rules::Fault;
use super::rules::{ConnState, Out};

/// What the proxy knows of one connection.
pub struct Peer {
    /// The name it joined under, while joined.
    pub name: Option<String>,
    /// It sent `leave_chat` (answered success) and has not joined since.
    pub left: bool,
    /// It joined again after leaving (on the same connection).
    pub rejoined: bool,
    /// Objects to send to its client.
    pub inject: mpsc::UnboundedSender<Vec<u8>>,
}

/// What every connection of one proxy shares.
pub struct Shared {
    pub upstream: SocketAddr,
    pub fault: Fault,
    /// Every open connection, by the proxy's number.
    pub peers: Mutex<HashMap<u64, Peer>>,
    /// Names whose client sent `leave_chat`.
    pub left_names: Mutex<HashSet<String>>,
    /// Names whose client closed its connection while joined.
    pub disconnected_names: Mutex<HashSet<String>>,
    next: AtomicU64,
}

impl Shared {
    /// Sends `bytes` to the client of every connection `filter` selects.
    pub fn inject(&self, filter: impl Fn(u64, &Peer) -> bool, bytes: &[u8]) {
        for (id, peer) in lock(&self.peers).iter() {
            if filter(*id, peer) {
                let _ = peer.inject.send(bytes.to_vec());
            }
        }
    }

    /// Updates connection `id`'s entry.
    pub fn update<T>(&self, id: u64, change: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        lock(&self.peers).get_mut(&id).map(change)
    }

    /// Whether another connection than `id` is joined as `name`.
    pub fn held_by_other(&self, id: u64, name: &str) -> bool {
        lock(&self.peers)
            .iter()
            .any(|(other, peer)| *other != id && peer.name.as_deref() == Some(name))
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP proxy in front of a chat server, applying one [`Fault`].
pub struct FaultProxy {
    acceptor: Acceptor,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of the server at
    /// `upstream`.
    pub async fn start(upstream: SocketAddr, fault: Fault) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream,
            fault,
            peers: Mutex::new(HashMap::new()),
            left_names: Mutex::new(HashSet::new()),
            disconnected_names: Mutex::new(HashSet::new()),
            next: AtomicU64::new(1),
        });
        let acceptor = Acceptor::start(move |stream| {
            let shared = Arc::clone(&shared);
            async move { serve(stream, shared).await }
        })
        .await;
        FaultProxy { acceptor }
    }

    /// `HOST:PORT` of the proxy.
    pub fn address(&self) -> String {
        self.acceptor.addr().to_string()
    }
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    // Nagle off both ways: the suite's writes reach the server as they
    // reach the proxy.
    let _ = server.set_nodelay(true);
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    let (inject, mut injected) = mpsc::unbounded_channel();
    lock(&shared.peers).insert(
        id,
        Peer {
            name: None,
            left: false,
            rejoined: false,
            inject,
        },
    );
    let mut state = ConnState::new(id, Arc::clone(&shared));
    let mut from_client = [0u8; 16384];
    let mut from_server = [0u8; 16384];
    loop {
        let outs = tokio::select! {
            biased;
            Some(bytes) = injected.recv() => vec![Out::ToClient(bytes)],
            read = client.read(&mut from_client) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => state.on_client(&from_client[..n]),
            },
            read = server.read(&mut from_server) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => state.on_server(&from_server[..n]),
            },
        };
        if !deliver(&mut client, &mut server, outs).await {
            break;
        }
    }
    // However the connection ends (the client's end read, or a write to
    // it failing because it is gone), the server learns it only now.
    state.client_closed();
    lock(&shared.peers).remove(&id);
}

/// Writes `outs` in order; false when the connection is to end.
async fn deliver(client: &mut TcpStream, server: &mut TcpStream, outs: Vec<Out>) -> bool {
    for out in outs {
        let written = match out {
            Out::ToClient(bytes) => client.write_all(&bytes).await,
            Out::ToServer(bytes) => server.write_all(&bytes).await,
            Out::Close => return false,
        };
        if written.is_err() {
            return false;
        }
    }
    true
}
