//! A loopback TCP server for tests: accepts on `127.0.0.1:0` and runs a
//! handler on each connection in a task of its own, until dropped. Hostile
//! targets, fault proxies and [`Proxy`](crate::Proxy) are a handler each.
//!
//! ```no_run
//! # async fn demo() {
//! use specwire_testsupport::Acceptor;
//! // A target that accepts and never says a word.
//! let silent = Acceptor::start(|stream| async move {
//!     let _held = stream;
//!     std::future::pending::<()>().await;
//! })
//! .await;
//! let _endpoint = silent.endpoint();
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Accepts loopback TCP connections and serves each with a handler; drop
/// stops accepting and aborts every connection.
pub struct Acceptor {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl Acceptor {
    /// Listens on an ephemeral loopback port; every accepted connection
    /// (Nagle off) goes to `serve`, whose future runs in its own task.
    pub async fn start<F, Fut>(mut serve: F) -> Acceptor
    where
        F: FnMut(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback listener");
        let addr = listener.local_addr().expect("the listener's address");
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let connection = serve(stream);
                    let mut set = connections.lock().unwrap();
                    while set.try_join_next().is_some() {}
                    set.spawn(connection);
                }
            }
        });
        Acceptor {
            addr,
            accept,
            connections,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` and the listening address.
    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Aborts every current connection (its socket drops, so the peer
    /// sees the TCP close); new ones are still accepted.
    pub fn abort_connections(&self) {
        if let Ok(mut set) = self.connections.lock() {
            set.abort_all();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.accept.abort();
        self.abort_connections();
    }
}

/// Connects to `target` within [`PATIENCE`](crate::PATIENCE), Nagle off;
/// `None` when it refuses or does not answer (a proxy then drops its
/// client).
pub async fn connect(target: SocketAddr) -> Option<TcpStream> {
    let connecting = TcpStream::connect(target);
    let stream = tokio::time::timeout(crate::PATIENCE, connecting)
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    Some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_connection_is_served_and_abort_closes_it() {
        let echo = Acceptor::start(|mut stream| async move {
            let mut byte = [0u8; 1];
            while stream.read_exact(&mut byte).await.is_ok() {
                let _ = stream.write_all(&byte).await;
            }
        })
        .await;
        let mut client = connect(echo.addr()).await.expect("connect");
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        crate::within("the echo", client.read_exact(&mut byte))
            .await
            .unwrap();
        assert_eq!(&byte, b"x");
        echo.abort_connections();
        let read = crate::within("the close", client.read(&mut byte)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
