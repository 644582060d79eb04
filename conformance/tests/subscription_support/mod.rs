//! Test support for the subscription suite's own tests: the reference hub
//! on loopback (plain or over TLS, with the limits the suite is told
//! of), the suite run as results, and a fault proxy that sits between the
//! suite and the hub and breaks exactly one spec point ([`proxy`]).
//!
//! Nothing here sleeps to synchronise: every wait is for a frame or a
//! connection, bounded by a timeout.

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use specwire_conformance::subscription::{self, SubscriptionTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_runtime::subscription::{Hub, HubConfig, Secret};
use specwire_testsupport::within;
pub use specwire_testsupport::SelfSigned;

pub mod proxy;
#[path = "../results.rs"]
mod results;
pub mod rules;

#[allow(unused_imports)]
pub use proxy::{Fault, FaultProxy};
#[allow(unused_imports)]
pub use results::*;

/// The secret the reference hub verifies tokens with.
pub const SECRET: &[u8] = b"specwire-subscription-suite-test-secret";
/// Its connections per user.
pub const USER_LIMIT: u32 = 3;
/// Its connections per IP.
pub const IP_LIMIT: u32 = 24;
/// Its messages per second on a connection.
pub const RATE_LIMIT: u32 = 40;
/// How often it sends its JSON ping.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
/// A fixed first seed for the generated sessions.
pub const DEFAULT_SEED: u64 = 1;

/// The settings a hub runs with (the suite is told [`USER_LIMIT`],
/// [`IP_LIMIT`], [`RATE_LIMIT`]; a test may run the hub with others).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Connections per user.
    pub user_limit: u32,
    /// Connections per IP.
    pub ip_limit: u32,
    /// Messages per second (`None`: unlimited).
    pub rate_limit: Option<u32>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            user_limit: USER_LIMIT,
            ip_limit: IP_LIMIT,
            rate_limit: Some(RATE_LIMIT),
        }
    }
}

/// The reference hub on `127.0.0.1:0`.
pub async fn start_hub(settings: Settings, tls: Option<&SelfSigned>) -> Hub {
    let tls = tls.map(|certificate| {
        specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
            .expect("a TLS server configuration")
    });
    let config = HubConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        secret: Secret::new(SECRET.to_vec()),
        ping_interval: PING_INTERVAL,
        user_limit: settings.user_limit as usize,
        ip_limit: settings.ip_limit as usize,
        rate_limit: settings.rate_limit.map(f64::from),
        tls,
        ..HubConfig::default()
    };
    within("the reference hub's start", Hub::start(config))
        .await
        .expect("start the reference hub")
}

/// The reference hub with its default test settings.
pub async fn start_reference(tls: Option<&SelfSigned>) -> Hub {
    start_hub(Settings::default(), tls).await
}

/// A target for `endpoint`: the secret, the limits, a heartbeat wait and
/// short timeouts.
pub fn target(endpoint: &str) -> SubscriptionTarget {
    let mut target = SubscriptionTarget::new(endpoint, SECRET.to_vec());
    target.user_limit = Some(USER_LIMIT);
    target.ip_limit = Some(IP_LIMIT);
    target.rate_limit = Some(RATE_LIMIT);
    target.ping_wait = Some(Duration::from_secs(3));
    target.reply_timeout = Duration::from_secs(2);
    target.seed = DEFAULT_SEED;
    target
}

/// Runs the cases `only` admits (all when empty) against `target`.
pub async fn run_results(target: &SubscriptionTarget, only: &[&str]) -> Vec<CaseResult> {
    results::run_only::<subscription::SubscriptionSuite>(target, only).await
}
