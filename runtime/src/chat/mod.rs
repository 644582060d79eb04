//! The chat family (seed 003, PROFILE.md chat) over raw TCP: a stream of
//! JSON objects, requests answered in order, broadcasts to the other
//! joined clients.
//!
//! - [`ChatServer`] ([`ChatConfig`]): the server, a [`TcpService`](crate::net::TcpService)
//!   over the shared accept loop with the [JSON stream codec](crate::net::json_stream).
//!   Its choices where the profile allows two: a taken name is refused
//!   ([`NamePolicy`]), users are listed as plain names ([`UserListing`]),
//!   no welcome message; each can be switched to the other alternative.
//! - [`ChatClient`] / [`ChatEvents`]: a client for any chat server.
//!
//! Each connection's queue is bounded ([`Limits::max_queued`](crate::net::Limits::max_queued),
//! 4096 objects by default). A reader that falls that far behind is
//! disconnected once what is queued is written (or at once when its
//! socket is not draining), and announced to the others as having left:
//! dropping single broadcasts would leave a client with a silently
//! wrong picture of the room.
//!
//! ```no_run
//! use std::time::Duration;
//! use specwire_runtime::chat::{ChatClient, ChatConfig, ChatServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ChatServer::start(ChatConfig::new("127.0.0.1:0".parse()?)).await?;
//! let address = server.local_addr().to_string();
//! let (alice, _) = ChatClient::connect(&address, Duration::from_secs(5)).await?;
//! let (bob, mut bob_events) = ChatClient::connect(&address, Duration::from_secs(5)).await?;
//! alice.join("Alice").await?;
//! bob.join("Bob").await?;
//! alice.send("hello").await?;
//! println!("{:?}", bob_events.next().await);
//! # Ok(()) }
//! ```

mod client;
pub mod messages;
mod room;
mod server;
mod session;

pub use client::{ChatClient, ChatError, ChatEvent, ChatEvents, Joined, EVENT_QUEUE};
pub use server::{ChatConfig, ChatServer, ChatStats, NamePolicy, UserListing};
pub use session::ChatSession;
