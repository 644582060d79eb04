//! The networking core every family's runtime is built on: nothing here
//! knows a family's messages.
//!
//! - Servers: [`ws::serve`] (WebSocket) and [`tcp::serve`] (raw TCP with a
//!   framing codec) share one [accept loop](server): limits per IP and in
//!   all, TLS, handshake timeouts, graceful shutdown. A family plugs in a
//!   [`WsService`] / [`TcpService`] that makes one session per connection;
//!   a session answers through its connection's bounded [`Outbox`].
//! - [`inbound`]: size → rate → JSON → recognise → schema → decode for any
//!   [`JsonProtocol`](specwire_wire::json::JsonProtocol), returning a
//!   [`Rejection`] the family maps to its own error reply.
//! - [`client`]: connecting with timeouts (`ws`, `wss`, `tcp`, `tls`),
//!   [`Backoff`] with jitter and a [`retry`] loop.
//! - [`auth`]: the [`Authenticator`] trait and [`ApiKeys`]; [`jwt`]: HS256
//!   tokens, minted and verified (algorithm pinned).
//! - [`json_stream`]: the codec for a TCP stream of JSON values (chat);
//!   [`frame_codec`]: the codec for byte-stuffed frames (the uart gateway).
//! - [`limits`]: the [`Limits`] all of the above apply.
//!
//! The task family is the first user: `task::Provider` is a
//! [`WsService`] whose session runs [`Inbound::receive`] on every text
//! frame; `task::TaskClient` connects with a [`Connector`] under
//! [`retry`]. See [`ws`] and [`tcp`] for a whole echo server each.

pub mod auth;
pub mod client;
pub mod frame_codec;
pub mod http;
pub mod inbound;
pub mod json_stream;
pub mod jwt;
pub mod limits;
pub mod outbox;
pub mod server;
pub mod tcp;
pub mod ws;

pub use auth::{ApiKeys, AuthError, Authenticator, Credential, Identity};
pub use client::{
    connect, connect_tcp, retry, Attempt, Backoff, ConnectError, Connector, HandshakeResponse,
    RetryError, WsStream,
};
pub use inbound::{Inbound, Rejection};
pub use limits::Limits;
pub use outbox::{Outbox, SendError};
pub use server::{Peer, Server, ServerConfig};
pub use tcp::{TcpService, TcpSession};
pub use ws::{Text, WsService, WsSession};
