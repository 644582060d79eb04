//! The discovery family: UDP broadcast advertisements and the client-side
//! service repository.

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
