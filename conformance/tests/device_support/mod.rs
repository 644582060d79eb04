//! Test support for the device suite's own tests: the reference hub on
//! loopback (plain or over TLS, with a short ping interval and stale
//! timeout), the suite run as results, and a fault proxy that sits
//! between the suite and the hub and breaks exactly one spec point
//! ([`proxy`]).
//!
//! Nothing here sleeps to synchronise: every wait is for a frame or a
//! connection, bounded by a timeout.

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use specwire_conformance::device::{self, DeviceTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_runtime::device::{DeviceHub, DeviceHubConfig, Registry};
use specwire_testsupport::within;
pub use specwire_testsupport::SelfSigned;

pub mod proxy;
#[path = "../results.rs"]
mod results;
mod rules;

#[allow(unused_imports)]
pub use proxy::{Fault, FaultProxy};
#[allow(unused_imports)]
pub use results::*;

/// The hub's ping interval (the suite is told the same).
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
/// The hub's stale timeout (the suite is told the same).
pub const STALE_TIMEOUT: Duration = Duration::from_secs(1);
/// A fixed first seed for the generated sessions.
pub const DEFAULT_SEED: u64 = 1;

/// The shipped registry (`schema/device/commands.json`).
pub fn registry() -> Registry {
    let text = include_str!("../../../schema/device/commands.json");
    Registry::parse(text.as_bytes(), "schema/device/commands.json")
        .expect("the shipped registry parses")
        .0
}

/// The settings a hub runs with (the suite is told [`PING_INTERVAL`] and
/// [`STALE_TIMEOUT`]; a test may run the hub with others).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Its ping interval.
    pub ping_interval: Duration,
    /// Its stale timeout.
    pub stale_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            ping_interval: PING_INTERVAL,
            stale_timeout: STALE_TIMEOUT,
        }
    }
}

/// The reference hub on `127.0.0.1:0`.
pub async fn start_hub(settings: Settings, tls: Option<&SelfSigned>) -> DeviceHub {
    let mut config = DeviceHubConfig::new(registry());
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.ping_interval = settings.ping_interval;
    config.stale_timeout = settings.stale_timeout;
    config.tls = tls.map(|certificate| {
        specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
            .expect("a TLS server configuration")
    });
    within("the reference hub's start", DeviceHub::start(config))
        .await
        .expect("start the reference hub")
}

/// The reference hub with its default test settings.
pub async fn start_reference(tls: Option<&SelfSigned>) -> DeviceHub {
    start_hub(Settings::default(), tls).await
}

/// A target for `endpoint`: the registry, the hub's interval and timeout,
/// short reply timeouts.
pub fn target(endpoint: &str) -> DeviceTarget {
    let mut target = DeviceTarget::new(endpoint, &registry());
    target.ping_interval = Some(PING_INTERVAL);
    target.stale_timeout = Some(STALE_TIMEOUT);
    target.reply_timeout = Duration::from_secs(2);
    target.seed = DEFAULT_SEED;
    target
}

/// Runs the cases `only` admits (all when empty) against `target`.
pub async fn run_results(target: &DeviceTarget, only: &[&str]) -> Vec<CaseResult> {
    results::run_only::<device::DeviceSuite>(target, only).await
}
