//! The fault proxy: a WebSocket proxy in front of the reference device
//! hub that breaks exactly one spec point ([`Fault`]). This file holds
//! the connection layer (accept, connect upstream, relay, inject lines
//! into other connections, close a connection on a fault's timer); what
//! each fault does to the lines is in [`rules`](super::rules).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::device::DeviceHub;
use specwire_testsupport::Acceptor;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

pub use super::rules::Fault;
use super::rules::{Action, ConnState};

/// What the proxy knows of one connection.
pub struct Peer {
    /// The device id it registered, if any.
    pub device: Option<String>,
    /// Whether it sent `s`.
    pub subscribed: bool,
    /// Lines to send to its client.
    pub inject: mpsc::UnboundedSender<String>,
}

/// What every connection of one proxy shares.
pub struct Shared {
    pub upstream: SocketAddr,
    pub fault: Fault,
    /// The registry's command names.
    pub commands: Vec<String>,
    /// Every open connection, by the proxy's number.
    pub peers: Mutex<HashMap<u64, Peer>>,
    /// Delivered command lines the fault watches for, and what becomes
    /// of them (`None`: dropped on subscribed devices; `Some`: replaced).
    pub watched: Mutex<HashMap<String, Option<String>>>,
    next: AtomicU64,
}

impl Shared {
    /// Sends `text` to the client of connection `id`.
    pub fn inject(&self, id: u64, text: &str) {
        if let Some(peer) = lock(&self.peers).get(&id) {
            let _ = peer.inject.send(text.to_owned());
        }
    }

    /// The connections `filter` selects (by number).
    pub fn select(&self, filter: impl Fn(u64, &Peer) -> bool) -> Vec<u64> {
        lock(&self.peers)
            .iter()
            .filter(|(id, peer)| filter(**id, peer))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether `id` is a device id some connection holds.
    pub fn is_device(&self, id: &str) -> bool {
        lock(&self.peers)
            .values()
            .any(|peer| peer.device.as_deref() == Some(id))
    }

    /// Updates connection `id`'s entry.
    pub fn update(&self, id: u64, change: impl FnOnce(&mut Peer)) {
        if let Some(peer) = lock(&self.peers).get_mut(&id) {
            change(peer);
        }
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A WebSocket proxy in front of a device hub, applying one [`Fault`].
pub struct FaultProxy {
    acceptor: Acceptor,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `hub` (plain `ws://`).
    pub async fn start(hub: &DeviceHub, fault: Fault) -> FaultProxy {
        let commands = super::registry()
            .commands()
            .map(|command| command.name.clone())
            .collect();
        let shared = Arc::new(Shared {
            upstream: hub.local_addr(),
            fault,
            commands,
            peers: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        });
        let acceptor = Acceptor::start(move |stream| {
            let shared = Arc::clone(&shared);
            async move { serve(stream, shared).await }
        })
        .await;
        FaultProxy { acceptor }
    }

    /// `ws://ADDR` of the proxy.
    pub fn endpoint(&self) -> String {
        self.acceptor.endpoint()
    }
}

type Down = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let Ok(down) = tokio_tungstenite::accept_async(client).await else {
        return;
    };
    let url = format!("ws://{}/", shared.upstream);
    // Nagle off, as on the client side: no delayed-ACK stalls.
    let Ok((up, _)) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await
    else {
        return;
    };
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    let (inject, injected) = mpsc::unbounded_channel();
    lock(&shared.peers).insert(
        id,
        Peer {
            device: None,
            subscribed: false,
            inject,
        },
    );
    let mut state = ConnState::new(id, Arc::clone(&shared));
    relay(down, up, injected, &mut state).await;
    lock(&shared.peers).remove(&id);
}

/// Reads the client's side to its end (after a close was sent).
async fn drain(down: &mut Down) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = down.next().await {}
    })
    .await;
}

async fn relay<U>(
    mut down: Down,
    mut up: U,
    mut injected: mpsc::UnboundedReceiver<String>,
    state: &mut ConnState,
) where
    U: futures_util::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Frame>
        + Unpin,
{
    loop {
        let deadline = state.deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        let actions = tokio::select! {
            biased;
            Some(text) = injected.recv() => vec![Action::ToClient(text)],
            frame = down.next() => match frame {
                Some(Ok(Frame::Text(text))) => state.on_client(text.as_str()),
                Some(Ok(Frame::Close(frame))) => {
                    let _ = up.send(Frame::Close(frame)).await;
                    let _ = down.flush().await;
                    drain(&mut down).await;
                    return;
                }
                Some(Ok(Frame::Binary(bytes))) => vec![Action::ToHub(Frame::Binary(bytes))],
                Some(Ok(_)) => Vec::new(),
                _ => return,
            },
            frame = up.next() => match frame {
                Some(Ok(Frame::Text(text))) => state.on_hub(text.as_str()),
                Some(Ok(Frame::Close(frame))) => {
                    let _ = down.send(Frame::Close(frame)).await;
                    drain(&mut down).await;
                    return;
                }
                Some(Ok(_)) => Vec::new(),
                _ => return,
            },
            () = timer => vec![Action::Close],
        };
        for action in actions {
            let sent = match action {
                Action::ToClient(text) => down.send(Frame::text(text)).await.is_ok(),
                Action::ToHub(frame) => up.send(frame).await.is_ok(),
                Action::Close => {
                    let close = CloseFrame {
                        code: CloseCode::Away,
                        reason: "stale (fault proxy)".into(),
                    };
                    let _ = down.send(Frame::Close(Some(close))).await;
                    let _ = up.send(Frame::Close(None)).await;
                    drain(&mut down).await;
                    return;
                }
            };
            if !sent {
                return;
            }
        }
    }
}
