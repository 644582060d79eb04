//! specwire's tokio runtime for the **discovery** and **task** families.
//!
//! - [`discovery`]: an [`Advertiser`](discovery::Advertiser) that announces
//!   a provider's services over UDP broadcast, and a
//!   [`ServiceRepository`](discovery::ServiceRepository) that keeps a
//!   client's view of them and selects an instance.
//! - [`task`]: a [`Provider`](task::Provider) that serves
//!   [`TaskHandler`](task::TaskHandler)s over WebSocket (acks, idempotency,
//!   status and result queries, cancellation, auth, rate and size limits,
//!   optional TLS), and a [`TaskClient`](task::TaskClient) that assigns
//!   tasks with acks, retries and recovery after a dropped connection.
//! - [`net`]: the networking core every family plugs into: WebSocket and
//!   TCP servers, the inbound message pipeline, connecting with backoff,
//!   authentication.
//! - [`tls`]: loading certificates and keys for `wss://`.
//! - [`uart`]: the uart family: a simulated mesh root module on a
//!   pseudo-terminal ([`ModuleSimulator`](uart::ModuleSimulator)), for
//!   exercising a gateway without hardware.
//!
//! Every message sent or received is one of the generated
//! `specwire_protocol` types and is checked against its schema.

pub mod chat;
pub mod clock;
pub mod device;
pub mod discovery;
pub mod net;
pub mod subscription;
pub mod task;
pub mod tls;
pub mod uart;
