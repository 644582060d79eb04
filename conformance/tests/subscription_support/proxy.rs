//! The fault proxy: a WebSocket proxy in front of the reference hub that
//! breaks exactly one spec point ([`Fault`]). This file holds the
//! connection layer: the handshake (read from the client's request head,
//! replayed upstream with the same path, query and `Authorization`, a
//! refusal passed back with its status) and the relay loop; what each
//! fault does to the handshake and to the messages is in
//! [`rules`](super::rules).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::subscription::Hub;
use specwire_testsupport::Acceptor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

pub use super::rules::Fault;
use super::rules::{Action, ConnState, Handshake, Request};

/// What every connection of one proxy shares: the hub, the fault, and the
/// hierarchy learnt from the publishes that pass (experiment → project,
/// owner), which the routing faults need.
pub struct Shared {
    pub upstream: SocketAddr,
    pub fault: Fault,
    pub hierarchy: Mutex<HashMap<String, (String, String)>>,
}

/// A WebSocket proxy in front of a hub, applying one [`Fault`].
pub struct FaultProxy {
    acceptor: Acceptor,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `hub` (plain `ws://`).
    pub async fn start(hub: &Hub, fault: Fault) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: hub.local_addr(),
            fault,
            hierarchy: Mutex::new(HashMap::new()),
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

/// The client's request head, peeked (left in the socket for the
/// WebSocket accept to read).
async fn peek_head(client: &TcpStream) -> Option<String> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), client.peek(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        let head = &buffer[..read];
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&head[..end]).into_owned());
        }
        if read == buffer.len() {
            return None;
        }
        // The rest of the head is on its way.
        tokio::task::yield_now().await;
    }
}

/// The request line's target and the `Authorization: Bearer` token.
fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.lines();
    let target = lines.next()?.split_whitespace().nth(1)?.to_owned();
    let bearer = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim().strip_prefix("Bearer ").map(str::to_owned))
            .flatten()
    });
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target, None),
    };
    let query_token = query.as_deref().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    });
    Some(Request {
        path,
        query_token,
        bearer,
    })
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some(request) = peek_head(&client).await.as_deref().and_then(parse_head) else {
        return;
    };
    let (upstream_request, mut state) = match ConnState::handshake(&shared, request) {
        Handshake::Refuse(text) => {
            // Upgrade, then the refusal the profile prescribes, by the proxy.
            if let Ok(mut down) = tokio_tungstenite::accept_async(client).await {
                let _ = down.send(Frame::text(super::rules::error(&text))).await;
                let _ = down
                    .send(Frame::Close(Some(CloseFrame {
                        code: CloseCode::Policy,
                        reason: text.into(),
                    })))
                    .await;
                drain(&mut down).await;
            }
            return;
        }
        Handshake::Upstream(request, state) => (request, state),
    };
    let url = format!("ws://{}{}", shared.upstream, upstream_request.target());
    let Ok(mut http) = url.as_str().into_client_request() else {
        return;
    };
    if let Some(token) = &upstream_request.bearer {
        if let Ok(value) = format!("Bearer {token}").parse() {
            http.headers_mut().insert("authorization", value);
        }
    }
    let up = match tokio_tungstenite::connect_async(http).await {
        Ok((up, _)) => up,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status();
            let answer = format!(
                "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Refused")
            );
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
        Err(_) => return,
    };
    let Ok(down) = tokio_tungstenite::accept_async(client).await else {
        return;
    };
    relay(down, up, &mut state).await;
}

type Down = tokio_tungstenite::WebSocketStream<TcpStream>;
type Up = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Reads the client's side to its end (after a close was sent).
async fn drain(down: &mut Down) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = down.next().await {}
    })
    .await;
}

/// How long a held event waits for the next one ([`Fault::Reorder`]).
const HOLD: Duration = Duration::from_millis(100);

async fn relay(mut down: Down, mut up: Up, state: &mut ConnState) {
    loop {
        let hold = async {
            if state.holding() {
                tokio::time::sleep(HOLD).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let actions = tokio::select! {
            frame = down.next() => match frame {
                Some(Ok(Frame::Text(text))) => state.on_client(text.as_str()),
                Some(Ok(Frame::Close(frame))) => {
                    let _ = up.send(Frame::Close(frame)).await;
                    let _ = down.flush().await;
                    drain(&mut down).await;
                    return;
                }
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Binary(_) | Frame::Frame(_))) => Vec::new(),
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
            () = hold => state.release(),
        };
        for action in actions {
            let sent = match action {
                Action::ToClient(text) => down.send(Frame::text(text)).await.is_ok(),
                Action::ToHub(text) => up.send(Frame::text(text)).await.is_ok(),
            };
            if !sent {
                return;
            }
        }
    }
}
