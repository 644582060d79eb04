//! A raw TCP server any framed protocol plugs into: the same
//! [accept loop](super::server) as the WebSocket server (limits, TLS,
//! shutdown), with a [`tokio_util::codec`] codec cutting the byte stream
//! into frames and writing frames back.
//!
//! A family supplies a [`TcpService`]: its codec (a JSON stream for chat,
//! byte-stuffed frames for uart) and a [`TcpSession`] per connection that
//! gets every decoded frame and answers through its [`Outbox`]. A codec
//! error closes the connection (a codec that resynchronises instead simply
//! does not return one). There is no ping in raw TCP: by default a
//! connection silent for twice [`Limits::keepalive`](super::Limits::keepalive)
//! is closed; a protocol without a heartbeat (chat) turns that off with
//! [`TcpService::idle_timeout`]. On shutdown, what is queued is written and
//! the write side is shut.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tokio_util::codec::LinesCodec;
//! use specwire_runtime::net::{tcp, Outbox, Peer, ServerConfig, TcpService, TcpSession};
//!
//! struct Echo;
//! struct EchoSession(Outbox<String>);
//!
//! impl TcpService for Echo {
//!     type Codec = LinesCodec;
//!     type Out = String;
//!     type Session = EchoSession;
//!     fn codec(&self) -> LinesCodec { LinesCodec::new_with_max_length(1024) }
//!     fn accept(&self, _: Peer, outbox: Outbox<String>) -> Option<EchoSession> {
//!         Some(EchoSession(outbox))
//!     }
//! }
//!
//! impl TcpSession for EchoSession {
//!     type Frame = String;
//!     fn on_frame(&mut self, line: String) {
//!         let _ = self.0.send(line);
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = tcp::serve(ServerConfig::new("127.0.0.1:0".parse().unwrap()), Arc::new(Echo)).await?;
//! println!("{}", server.endpoint());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;
use std::{fmt, io};

use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;

use super::limits::Limits;
use super::outbox::{write_queued, CloseOnDrop, Outbox};
use super::server::{Peer, Serve, Server, ServerConfig, Stream};

/// How long writing what is left may take when a connection closes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How much of a batch of queued messages is encoded before it is written.
const WRITE_SLICE: usize = 16 * 1024;

/// Gives back buffer capacity a burst grew (a `BytesMut` keeps what it
/// grew to): an idle connection then costs its initial buffers only.
fn release_grown_buffers<T, C>(framed: &mut Framed<T, C>, capacity: usize) {
    let grown = |buffer: &bytes::BytesMut| buffer.is_empty() && buffer.capacity() > 2 * capacity;
    if grown(framed.write_buffer()) {
        *framed.write_buffer_mut() = bytes::BytesMut::new();
    }
    if grown(framed.read_buffer()) {
        *framed.read_buffer_mut() = bytes::BytesMut::with_capacity(capacity);
    }
}

/// A family's raw-TCP server side.
pub trait TcpService: Send + Sync + 'static {
    /// Cuts the stream into frames and writes [`Out`](Self::Out)s.
    type Codec: Decoder<Item = <Self::Session as TcpSession>::Frame, Error: fmt::Display + Send>
        + Encoder<Self::Out, Error: fmt::Display + Send>
        + Send
        + 'static;
    /// What sessions send.
    type Out: Send + 'static;
    /// One connection's state.
    type Session: TcpSession;

    /// A fresh codec for one connection.
    fn codec(&self) -> Self::Codec;

    /// Bytes reserved for each connection's read and write buffers at
    /// first (they grow as needed): small for protocols that hold many
    /// idle connections.
    const BUFFER_CAPACITY: usize = 8 * 1024;

    /// How long a connection may stay silent before it is closed (`None`:
    /// forever). Default: twice `limits.keepalive`.
    fn idle_timeout(&self, limits: &Limits) -> Option<Duration> {
        Some(limits.keepalive * 2)
    }

    /// A connection from `peer` arrived; `None` closes it at once.
    fn accept(&self, peer: Peer, outbox: Outbox<Self::Out>) -> Option<Self::Session>;
}

/// One TCP connection's protocol logic, called on the connection's task
/// one frame at a time.
pub trait TcpSession: Send + 'static {
    /// What the codec decodes.
    type Frame: Send;

    /// A frame arrived.
    fn on_frame(&mut self, frame: Self::Frame);

    /// The connection ended, however it ended.
    fn on_close(&mut self) {}
}

/// Binds and serves TCP connections with `service`'s codec and sessions.
pub async fn serve<S: TcpService>(config: ServerConfig, service: Arc<S>) -> io::Result<Server> {
    let limits = config.limits.clone();
    Server::start(
        config,
        ("tcp", "tls"),
        Arc::new(Handler { service, limits }),
    )
    .await
}

struct Handler<S> {
    service: Arc<S>,
    limits: Limits,
}

impl<S: TcpService> Serve for Handler<S> {
    async fn serve<T: Stream>(
        self: Arc<Self>,
        stream: T,
        peer: Peer,
        closing: CancellationToken,
    ) -> Result<(), String> {
        let outbox = Outbox::with_capacity(self.limits.max_queued);
        let Some(mut session) = self.service.accept(peer, outbox.clone()) else {
            return Ok(());
        };
        let mut framed = Framed::with_capacity(stream, self.service.codec(), S::BUFFER_CAPACITY);
        // A batch of queued messages is written in slices of this size, so
        // the write buffer never grows far past it.
        framed.set_backpressure_boundary(WRITE_SLICE.max(S::BUFFER_CAPACITY));
        let silence = self.service.idle_timeout(&self.limits);
        let result = run(
            framed,
            &mut session,
            &outbox,
            &self.limits,
            (silence, S::BUFFER_CAPACITY),
            closing,
        )
        .await;
        session.on_close();
        result
    }
}

async fn run<T, C, X, O>(
    mut framed: Framed<T, C>,
    session: &mut X,
    outbox: &Outbox<O>,
    limits: &Limits,
    (silence, capacity): (Option<Duration>, usize),
    closing: CancellationToken,
) -> Result<(), String>
where
    T: Stream,
    X: TcpSession,
    C: Decoder<Item = X::Frame> + Encoder<O>,
    <C as Decoder>::Error: fmt::Display,
    <C as Encoder<O>>::Error: fmt::Display,
{
    let _closed_when_done = CloseOnDrop(outbox.clone());
    // Without an idle limit the timer never fires (a year is forever here).
    let silence = silence.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let idle = tokio::time::sleep(silence);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            frame = framed.next() => {
                let Some(frame) = frame else { return Ok(()) };
                let frame = frame.map_err(|error| error.to_string())?;
                idle.as_mut().reset(tokio::time::Instant::now() + silence);
                session.on_frame(frame);
                write_queued(&mut framed, outbox, |item| item, limits.write_timeout).await?;
            }
            () = outbox.ready() => write_queued(&mut framed, outbox, |item| item, limits.write_timeout).await?,
            () = &mut idle => return Err("peer silent".to_owned()),
            () = closing.cancelled() => break,
        }
        release_grown_buffers(&mut framed, capacity);
        if outbox.is_closed() {
            break;
        }
    }
    let finish = async {
        write_queued(&mut framed, outbox, |item| item, limits.write_timeout).await?;
        SinkExt::<O>::close(&mut framed)
            .await
            .map_err(|error| error.to_string())
    };
    tokio::time::timeout(CLOSE_TIMEOUT, finish)
        .await
        .map_err(|_| "closing timed out".to_owned())?
}
