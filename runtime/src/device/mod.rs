//! The **device** family: a hub for devices and clients speaking short
//! text lines over WebSocket (seed 002, PROFILE.md's device section).
//!
//! - [`DeviceHub`]: devices register with `id:<deviceId>` and send data
//!   (any other line), which every subscriber (`s`) receives as
//!   `<deviceId>:<data>`; clients send `cmd:<target>:<command>:<parameters>`
//!   to one device or `all`, checked against the [`Registry`]
//!   (`commands.json`); `ping` is answered `pong`; anything that cannot be
//!   handled gets `error:<reason>`, and accepted lines get no answer. The
//!   hub pings each device every 10 s and drops a device silent for 30 s.
//! - [`swarm`]: virtual devices for load and demos (`specwire simulate
//!   devices`).
//! - On the same port, plain HTTP serves the web console (`/`), the
//!   registry (`/commands.json`) and the device list (`/devices.json`).
//!
//! # Decisions where the spec is silent
//!
//! - A second `id:` naming an id another connection holds moves the id to
//!   the newer connection (a device that reconnected before its old
//!   connection timed out); the older connection gets
//!   `error:device id X was registered by a newer connection` and is
//!   closed. A connection's own second `id:` renames it. `all` cannot be
//!   registered.
//! - A registered device's `pong` (its answer to the hub's `ping`) is a
//!   sign of life, not data: it is not broadcast.
//! - Parameters are forwarded as sent; the hub checks the command and
//!   target, not the parameter values.
//! - Every connection's queue is bounded ([`Limits::max_queued`]); a
//!   subscriber that falls that far behind is closed with 1013, so a
//!   stalled reader costs at most its queue.
//!
//! [`Limits::max_queued`]: crate::net::Limits::max_queued

mod console;
mod hub;
pub mod registry;
mod session;
pub mod swarm;
mod table;

pub use hub::{DeviceHub, DeviceHubConfig, DeviceHubStats};
pub use registry::{Registry, RegistryError};
pub use table::DeviceInfo;
