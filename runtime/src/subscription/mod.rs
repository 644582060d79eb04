//! The **subscription** family: an event hub and a subscriber (seed 001,
//! PROFILE.md's subscription section).
//!
//! - [`Hub`]: a WebSocket server on `/ws/experiments/{id}`,
//!   `/ws/tasks/{id}`, `/ws/projects/{id}` and `/ws/user` (anything else
//!   is a 404 in the handshake). Each connection shows an HS256 JWT
//!   ([`net::jwt`](crate::net::jwt)) in `?token=` or
//!   `Authorization: Bearer`; a missing or bad one gets one `error` and a
//!   close 1008. The path's resource is subscribed on connect; more are
//!   subscribed and unsubscribed by message. Events enter through
//!   [`Hub::publish`] / [`Hub::publish_json`] or an admin connection's
//!   `{"type":"publish","data":<event>}`, are checked against their
//!   schema, and reach every connection subscribed to the event's
//!   resource or one above it ([`resource`] says how the hub knows what is
//!   above), once per connection, in publication order.
//! - [`Subscriber`]: the client side; reconnects with backoff, subscribes
//!   again, answers pings, and tells a reconnect (a possible gap) apart
//!   from a quiet stream.
//! - Limits: connections per user, per IP and in all (each refused with
//!   an `error` and a close 1008), messages per second per connection
//!   (`Rate limit exceeded`), and a bounded queue per connection.
//!
//! # Slow subscribers
//!
//! Each connection's queue holds at most [`HubConfig::queue`] messages
//! (1,024 by default; an event's bytes are shared by every queue it is in,
//! so a queued event costs a pointer per connection). A subscriber that
//! falls that far behind is closed with code 1013 ("try again later") and
//! counted in [`HubStats::slow_closed`]; it misses what it did not read,
//! and its client sees a reconnect, which the [`Subscriber`] reports as a
//! possible gap. A subscriber that stops reading altogether also stalls
//! the socket's writes: when its queue then fills, the connection is
//! dropped at once (no close frame could get through), and a write stalled
//! longer than [`Limits::write_timeout`] is dropped too. Either way a
//! stalled subscriber costs the hub at most its queue plus the socket's
//! buffers.
//!
//! [`Limits::write_timeout`]: crate::net::Limits::write_timeout

pub mod client;
mod hub;
mod messages;
pub mod resource;
mod session;
mod table;

pub use crate::net::jwt::{self as token, Secret};
pub use client::{Subscriber, SubscriberConfig, Update};
pub use hub::{Hub, HubConfig, HubStats, PublishError};
pub use messages::text as error_text;
pub use resource::{ParseResourceError, Resource};
