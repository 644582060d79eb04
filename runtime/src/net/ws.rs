//! A WebSocket server any family's session plugs into.
//!
//! The server does everything that is not about the protocol's messages:
//! the [accept loop](super::server) with its limits and TLS, the HTTP
//! handshake (bounded in time), keepalive (a ping after
//! [`Limits::keepalive`](super::Limits::keepalive) of silence, the
//! connection closed after twice that), writing the connection's
//! [`Outbox`] in order, the close handshake, and graceful shutdown.
//!
//! A family supplies a [`WsService`]: it sees each handshake's HTTP
//! request (path, query, headers) and returns a [`WsSession`] for the
//! connection or refuses with an HTTP response (404 for an unknown path,
//! 401 for a missing token); it may also answer plain HTTP requests (a
//! status page on the same port). The session gets every text and binary
//! frame and answers through the outbox it was given, which anything else
//! (a task table, a hub fanning out) may also hold.
//!
//! ```no_run
//! use std::sync::Arc;
//! use specwire_runtime::net::http::{response, Request, Response, StatusCode};
//! use specwire_runtime::net::{ws, Outbox, Peer, ServerConfig, Text, WsService, WsSession};
//!
//! struct Echo;
//! struct EchoSession(Outbox<Text>);
//!
//! impl WsService for Echo {
//!     type Session = EchoSession;
//!     fn accept(&self, request: &Request, _: Peer, outbox: Outbox<Text>) -> Result<EchoSession, Response> {
//!         match request.uri().path() {
//!             "/echo" => Ok(EchoSession(outbox)),
//!             _ => Err(response(StatusCode::NOT_FOUND, "try /echo")),
//!         }
//!     }
//! }
//!
//! impl WsSession for EchoSession {
//!     fn on_text(&mut self, text: &str) {
//!         let _ = self.0.send(text.to_owned().into());
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = ws::serve(ServerConfig::new("127.0.0.1:0".parse().unwrap()), Arc::new(Echo)).await?;
//! println!("{}/echo", server.endpoint());
//! server.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::handshake::server::{create_response, write_response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::http::{self, Request, Response};
use super::limits::Limits;
use super::outbox::{write_queued, CloseOnDrop, Outbox};
use super::server::{Peer, Serve, Server, ServerConfig, Stream};

/// How long a close handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The text of one WebSocket message, as queued in an [`Outbox`]: a
/// reference-counted UTF-8 buffer, so a hub fanning one event out to many
/// connections queues the same bytes to each (`clone` is cheap).
pub type Text = tokio_tungstenite::tungstenite::Utf8Bytes;

/// A family's WebSocket server side: admits connections and makes their
/// sessions.
pub trait WsService: Send + Sync + 'static {
    /// One connection's state.
    type Session: WsSession;

    /// The close reason sent to every connection on shutdown.
    const SHUTDOWN_REASON: &'static str = "server shutting down";

    /// The close code and reason when a connection's outbox overflows
    /// (the peer reads too slowly): 1008 by default.
    const OVERFLOW_CLOSE: (u16, &'static str) = (1008, "outbox full: reading too slowly");

    /// A WebSocket upgrade `request` from `peer` arrived. Return its
    /// session (which answers through `outbox`), or an HTTP response that
    /// refuses the upgrade (a 4xx or 5xx status; its body is sent too).
    #[allow(clippy::result_large_err)] // once per connection, not per message
    fn accept(
        &self,
        request: &Request,
        peer: Peer,
        outbox: Outbox<Text>,
    ) -> Result<Self::Session, Response>;

    /// A plain HTTP request (not a WebSocket upgrade) arrived. `None`, the
    /// default, closes the connection without an answer.
    fn http(&self, request: &Request, peer: Peer) -> Option<Response> {
        let _ = (request, peer);
        None
    }
}

/// One WebSocket connection's protocol logic. Its methods are called on
/// the connection's task, one frame at a time; they should not block
/// (spawn what takes long and answer through the outbox).
pub trait WsSession: Send + 'static {
    /// A text frame (a whole message) arrived.
    fn on_text(&mut self, text: &str);

    /// A binary frame arrived. Ignored by default.
    fn on_binary(&mut self, bytes: &[u8]) {
        let _ = bytes;
    }

    /// The connection ended, however it ended.
    fn on_close(&mut self) {}
}

/// Binds and serves WebSocket connections with `service`'s sessions.
pub async fn serve<S: WsService>(config: ServerConfig, service: Arc<S>) -> io::Result<Server> {
    let limits = config.limits.clone();
    let handler = Arc::new(Handler { service, limits });
    Server::start(config, ("ws", "wss"), handler).await
}

struct Handler<S> {
    service: Arc<S>,
    limits: Limits,
}

impl<S: WsService> Serve for Handler<S> {
    async fn serve<T: Stream>(
        self: Arc<Self>,
        stream: T,
        peer: Peer,
        closing: CancellationToken,
    ) -> Result<(), String> {
        // Boxed: the handshake's state (timers, the request, the buffers) is
        // freed when it ends, so an idle connection's task holds only what
        // the connection loop needs (BENCHMARKS.md: bytes per idle connection).
        let Some((ws, session, outbox)) = Box::pin(self.handshake(stream, peer)).await? else {
            return Ok(());
        };
        let mut connection = Connection {
            session,
            outbox,
            keepalive: self.limits.keepalive,
            write_timeout: self.limits.write_timeout,
        };
        let result = connection.run::<_, S>(ws, closing).await;
        connection.session.on_close();
        result
    }
}

/// A connection the service accepted: its WebSocket, session and outbox.
type Accepted<T, X> = (WebSocketStream<T>, X, Outbox<Text>);

impl<S: WsService> Handler<S> {
    /// Reads the request and upgrades, refuses, or answers it as plain
    /// HTTP (`None`: answered, nothing more to do).
    async fn handshake<T: Stream>(
        &self,
        mut stream: T,
        peer: Peer,
    ) -> Result<Option<Accepted<T, S::Session>>, String> {
        let (request, tail) = tokio::time::timeout(
            self.limits.handshake_timeout,
            http::read_request(&mut stream),
        )
        .await
        .map_err(|_| "WebSocket handshake timed out".to_owned())??;
        let upgrade = match create_response(&request) {
            Ok(upgrade) => upgrade,
            Err(error) => {
                return match self.service.http(&request, peer) {
                    Some(response) => self.answer(&mut stream, &response).await.map(|()| None),
                    None => Err(format!("WebSocket handshake: {error}")),
                }
            }
        };
        let outbox = Outbox::with_capacity(self.limits.max_queued);
        let session = match self.service.accept(&request, peer, outbox.clone()) {
            Ok(session) => session,
            Err(refusal) => return self.answer(&mut stream, &refusal).await.map(|()| None),
        };
        drop(request);
        let mut head = Vec::new();
        write_response(&mut head, &upgrade).map_err(|error| error.to_string())?;
        let written = async {
            tokio::io::AsyncWriteExt::write_all(&mut stream, &head).await?;
            tokio::io::AsyncWriteExt::flush(&mut stream).await
        };
        tokio::time::timeout(self.limits.handshake_timeout, written)
            .await
            .map_err(|_| "WebSocket handshake timed out".to_owned())?
            .map_err(|error| format!("WebSocket handshake: {error}"))?;
        let config = Some(websocket_config(&self.limits));
        let ws = WebSocketStream::from_partially_read(stream, tail, Role::Server, config).await;
        Ok(Some((ws, session, outbox)))
    }
}

impl<S: WsService> Handler<S> {
    async fn answer<T: Stream>(&self, stream: &mut T, response: &Response) -> Result<(), String> {
        tokio::time::timeout(
            self.limits.handshake_timeout,
            http::answer(stream, response),
        )
        .await
        .map_err(|_| "HTTP answer timed out".to_owned())?
        .map_err(|error| format!("HTTP answer: {error}"))
    }
}

fn websocket_config(limits: &Limits) -> WebSocketConfig {
    // Small buffers: idle connections are the common case and should cost
    // little memory; large messages still work, they just take more reads.
    // The write buffer is not allocated up front; frames fed between
    // flushes go out in one write.
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

struct Connection<X> {
    session: X,
    outbox: Outbox<Text>,
    keepalive: Duration,
    write_timeout: Duration,
}

impl<X: WsSession> Connection<X> {
    /// Reads frames, hands them to the session, and writes whatever the
    /// session and others queue, in order.
    async fn run<T: Stream, S: WsService>(
        &mut self,
        mut ws: WebSocketStream<T>,
        closing: CancellationToken,
    ) -> Result<(), String> {
        let outbox = self.outbox.clone();
        let _closed_when_done = CloseOnDrop(outbox.clone());
        let keepalive = self.keepalive;
        let write_timeout = self.write_timeout;
        let idle = tokio::time::sleep(keepalive);
        tokio::pin!(idle);
        let mut pinged = false;
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let Some(frame) = frame else { return Ok(()) };
                    let frame = frame.map_err(|error| error.to_string())?;
                    idle.as_mut().reset(tokio::time::Instant::now() + keepalive);
                    pinged = false;
                    match frame {
                        Frame::Text(text) => self.session.on_text(text.as_str()),
                        Frame::Binary(bytes) => self.session.on_binary(&bytes),
                        // tungstenite answers pings and completes the close
                        // handshake itself; the stream then ends.
                        Frame::Ping(_) | Frame::Pong(_) | Frame::Close(_) | Frame::Frame(_) => {}
                    }
                    // Write what this frame produced before reading more.
                    write_queued(&mut ws, &outbox, Frame::Text, write_timeout).await?;
                }
                () = outbox.ready() => write_queued(&mut ws, &outbox, Frame::Text, write_timeout).await?,
                () = &mut idle => {
                    if pinged {
                        return Box::pin(close(ws, CloseCode::Away, "no pong")).await;
                    }
                    pinged = true;
                    idle.as_mut().reset(tokio::time::Instant::now() + keepalive);
                    ws.send(Frame::Ping(Vec::new().into())).await.map_err(|error| error.to_string())?;
                }
                () = closing.cancelled() => {
                    write_queued(&mut ws, &outbox, Frame::Text, write_timeout).await?;
                    return Box::pin(close(ws, CloseCode::Away, S::SHUTDOWN_REASON)).await;
                }
            }
            if outbox.is_closed() {
                write_queued(&mut ws, &outbox, Frame::Text, write_timeout).await?;
                let (code, reason) = if outbox.overflowed() {
                    S::OVERFLOW_CLOSE
                } else {
                    outbox.end_reason().unwrap_or((1000, ""))
                };
                return Box::pin(close(ws, CloseCode::from(code), reason)).await;
            }
        }
    }
}

/// Sends a close frame and waits (bounded) for the peer's.
async fn close<T: Stream>(
    mut ws: WebSocketStream<T>,
    code: CloseCode,
    reason: &str,
) -> Result<(), String> {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    ws.close(Some(frame))
        .await
        .map_err(|error| error.to_string())?;
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
    Ok(())
}
