//! The discovery family: UDP broadcast advertisements and the client-side
//! service repository (seed 000 §4, PROFILE.md "discovery").
//!
//! - [`Advertiser`] (provider side): announces a provider's services on
//!   start-up, on every change of its [`Presence`], as a heartbeat, and in
//!   answer to every request; announces `Offline` on a graceful shutdown.
//! - [`ServiceRepository`] (client side): asks providers to advertise,
//!   keeps what it hears, expires silent instances after three missed
//!   heartbeats and selects an instance ([`select_instance`]).
//! - [`bind_discovery_socket`], [`send_to_all`], [`loopback_broadcast`],
//!   [`interface_broadcasts`]: the UDP plumbing both use.
//!
//! Every participant binds the discovery port (default 50001) on
//! `0.0.0.0` with `SO_REUSEADDR`/`SO_REUSEPORT`, so providers and clients
//! share it on one host. By default they send to `127.255.255.255`, which
//! reaches this host only; for a LAN, put the interfaces' broadcast
//! addresses in the targets. Every datagram sent is a generated message
//! checked against the schema; every datagram received is validated, and
//! anything else is counted in [`DiscoveryStats`] and dropped.
//!
//! A provider and a client on one host:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use specwire_runtime::discovery::{
//!     AdvertisedService, Advertiser, AdvertiserConfig, Presence, RepositoryConfig,
//!     ServiceRepository,
//! };
//! use specwire_runtime::task::{Operation, ServiceDescription};
//!
//! // Provider: advertise one service on the default port.
//! let description = ServiceDescription::new("ImageProcessingService", "1.2.0")
//!     .operation(Operation::new("resizeImage"));
//! let service = AdvertisedService::new(description, "ws://127.0.0.1:8080");
//! let (presence, presence_rx) = tokio::sync::watch::channel(Presence::IDLE);
//! let advertiser = Advertiser::start(AdvertiserConfig::default(), vec![service], presence_rx)?;
//!
//! // Client: find an instance that offers `resizeImage`.
//! let repository = ServiceRepository::start(RepositoryConfig::default())?;
//! let instance = repository
//!     .wait_for("ImageProcessingService", Some("resizeImage"), Duration::from_secs(3))
//!     .await;
//! if let Some(instance) = instance {
//!     println!("{} at {}", instance.service_id(), instance.endpoint());
//! }
//!
//! drop(presence);
//! advertiser.shutdown().await; // the repository sees `Offline`
//! # Ok(())
//! # }
//! ```

mod advertiser;
mod repository;
mod socket;

pub use advertiser::{AdvertisedService, Advertiser, AdvertiserConfig};
pub use repository::{
    select_instance, RepositoryConfig, RepositoryEvent, ServiceEntry, ServiceRepository,
};
pub use socket::{
    bind_discovery_socket, interface_broadcasts, loopback_broadcast, send_to_all, DiscoveryStats,
    RECEIVE_BUFFER_BYTES,
};

use specwire_protocol::discovery::ServiceAdvertisementStatus;

/// A provider's current status and load, as its advertisements report
/// them. The task provider publishes it on a `tokio::sync::watch` channel;
/// the advertiser announces every change at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Presence {
    /// `Online`, `Busy`, `Degraded` or `Offline`.
    pub status: ServiceAdvertisementStatus,
    /// 0.0–1.0.
    pub load: f64,
}

impl Presence {
    /// Online with no load.
    pub const IDLE: Presence = Presence {
        status: ServiceAdvertisementStatus::Online,
        load: 0.0,
    };
}
