//! A loopback TCP proxy for fault tests: between a client and a server,
//! it can cut every connection, freeze them (bytes read and dropped, so
//! the connection looks alive but nothing gets through), refuse new ones,
//! and change its target. Tests use it to make a peer vanish, go silent or
//! move without touching the peer's code.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) {
//! let proxy = specwire_testsupport::Proxy::start(server).await;
//! // ... connect a client to proxy.endpoint() ...
//! proxy.freeze(); // the client's keepalive must notice
//! proxy.cut(); // both sides see the TCP close
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::accept::{connect, Acceptor};

struct ProxyShared {
    target: Mutex<SocketAddr>,
    refuse: AtomicBool,
    /// The frozen flag of every current connection.
    pipes: Mutex<Vec<Arc<AtomicBool>>>,
    accepted: watch::Sender<usize>,
    from_clients: watch::Sender<usize>,
}

/// Forwards TCP connections from `127.0.0.1:PORT` to a target. It can cut
/// every current connection, freeze them (bytes are read and dropped, so
/// the connection looks alive but nothing gets through), refuse new ones,
/// and change its target.
pub struct Proxy {
    shared: Arc<ProxyShared>,
    acceptor: Acceptor,
}

/// Copies `from` to `to` until either ends; while `frozen`, drops what it
/// reads. Counts the bytes read in `counter` (when given).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    counter: Option<Arc<ProxyShared>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if let Some(shared) = &counter {
            shared.from_clients.send_modify(|count| *count += read);
        }
        if frozen.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Forwards one client connection to `target` both ways.
async fn forward(
    inbound: TcpStream,
    target: SocketAddr,
    frozen: Arc<AtomicBool>,
    shared: Arc<ProxyShared>,
) {
    let Some(outbound) = connect(target).await else {
        return;
    };
    let (client_read, client_write) = inbound.into_split();
    let (provider_read, provider_write) = outbound.into_split();
    tokio::join!(
        pump(
            client_read,
            provider_write,
            Arc::clone(&frozen),
            Some(shared)
        ),
        pump(provider_read, client_write, frozen, None),
    );
}

impl Proxy {
    /// Listens on an ephemeral loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let shared = Arc::new(ProxyShared {
            target: Mutex::new(target),
            refuse: AtomicBool::new(false),
            pipes: Mutex::new(Vec::new()),
            accepted: watch::channel(0).0,
            from_clients: watch::channel(0).0,
        });
        let acceptor = Acceptor::start({
            let shared = Arc::clone(&shared);
            move |inbound| {
                shared.accepted.send_modify(|count| *count += 1);
                let refused = shared.refuse.load(Ordering::SeqCst);
                let target = *shared.target.lock().unwrap();
                let frozen = Arc::new(AtomicBool::new(false));
                if !refused {
                    shared.pipes.lock().unwrap().push(Arc::clone(&frozen));
                }
                let shared = Arc::clone(&shared);
                async move {
                    if !refused {
                        forward(inbound, target, frozen, shared).await;
                    }
                }
            }
        })
        .await;
        Proxy { shared, acceptor }
    }

    /// `ws://` and the proxy's address.
    pub fn endpoint(&self) -> String {
        self.acceptor.endpoint()
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr()
    }

    /// Drops every current connection (both sides see the TCP close).
    pub fn cut(&self) {
        self.shared.pipes.lock().unwrap().clear();
        self.acceptor.abort_connections();
    }

    /// Makes every current connection a black hole in both directions
    /// (connections made later are not affected).
    pub fn freeze(&self) {
        for frozen in self.shared.pipes.lock().unwrap().iter() {
            frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Whether new connections are accepted and dropped at once.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Forwards new connections to `target`.
    pub fn retarget(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> watch::Receiver<usize> {
        self.shared.accepted.subscribe()
    }

    /// Bytes received from clients so far (forwarded or dropped).
    pub fn client_bytes(&self) -> watch::Receiver<usize> {
        self.shared.from_clients.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{within, Acceptor};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo() -> Acceptor {
        Acceptor::start(|mut stream| async move {
            let mut byte = [0u8; 1];
            while stream.read_exact(&mut byte).await.is_ok() {
                let _ = stream.write_all(&byte).await;
            }
        })
        .await
    }

    async fn round_trip(client: &mut TcpStream) {
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        within("the echo", client.read_exact(&mut byte))
            .await
            .unwrap();
        assert_eq!(&byte, b"x");
    }

    #[tokio::test]
    async fn forwards_freezes_and_cuts() {
        let server = echo().await;
        let proxy = Proxy::start(server.addr()).await;
        let mut client = connect(proxy.addr()).await.expect("connect");
        round_trip(&mut client).await;
        assert_eq!(*proxy.accepted().borrow(), 1);
        proxy.freeze();
        client.write_all(b"y").await.unwrap();
        let mut bytes = proxy.client_bytes();
        within("the frozen byte", bytes.wait_for(|count| *count == 2))
            .await
            .unwrap();
        proxy.cut();
        let mut byte = [0u8; 1];
        let read = within("the cut", client.read(&mut byte)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let mut again = connect(proxy.addr()).await.expect("reconnect");
        round_trip(&mut again).await;
    }
}
