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

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

struct Pipe {
    abort: AbortHandle,
    frozen: Arc<AtomicBool>,
}

struct ProxyShared {
    target: Mutex<SocketAddr>,
    refuse: AtomicBool,
    pipes: Mutex<Vec<Pipe>>,
    accepted: watch::Sender<usize>,
    from_clients: watch::Sender<usize>,
}

/// Forwards TCP connections from `127.0.0.1:PORT` to a target. It can cut
/// every current connection, freeze them (bytes are read and dropped, so
/// the connection looks alive but nothing gets through), refuse new ones,
/// and change its target.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: JoinHandle<()>,
}

/// Copies `from` to `to` until either ends; while `frozen`, drops what it
/// reads. Counts the bytes read in `counter` (when given).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
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

impl Proxy {
    /// Listens on an ephemeral loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            target: Mutex::new(target),
            refuse: AtomicBool::new(false),
            pipes: Mutex::new(Vec::new()),
            accepted: watch::channel(0).0,
            from_clients: watch::channel(0).0,
        });
        let accept = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    shared.accepted.send_modify(|count| *count += 1);
                    if shared.refuse.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = *shared.target.lock().unwrap();
                    let frozen = Arc::new(AtomicBool::new(false));
                    let pipe = tokio::spawn({
                        let frozen = Arc::clone(&frozen);
                        let shared = Arc::clone(&shared);
                        async move {
                            let Ok(outbound) = TcpStream::connect(target).await else {
                                return;
                            };
                            let _ = outbound.set_nodelay(true);
                            let _ = inbound.set_nodelay(true);
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
                    });
                    shared.pipes.lock().unwrap().push(Pipe {
                        abort: pipe.abort_handle(),
                        frozen,
                    });
                }
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    /// `ws://` and the proxy's address.
    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every current connection (both sides see the TCP close).
    pub fn cut(&self) {
        for pipe in self.shared.pipes.lock().unwrap().drain(..) {
            pipe.abort.abort();
        }
    }

    /// Makes every current connection a black hole in both directions
    /// (connections made later are not affected).
    pub fn freeze(&self) {
        for pipe in self.shared.pipes.lock().unwrap().iter() {
            pipe.frozen.store(true, Ordering::SeqCst);
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

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
