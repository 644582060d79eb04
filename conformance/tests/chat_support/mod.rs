//! Test support for the chat suite's own tests: the reference server on
//! loopback (with its default choices, or with every alternative the
//! profile allows), the suite run as results, and a fault proxy that sits
//! between the suite and the server and breaks exactly one spec point
//! ([`proxy`], [`rules`]).
//!
//! Nothing here sleeps to synchronise: every wait is for bytes or a
//! connection, bounded by a timeout.

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use specwire_conformance::chat::{ChatSuite, ChatTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_runtime::chat::{ChatConfig, ChatServer, NamePolicy, UserListing};
use specwire_testsupport::within;

pub mod proxy;
#[path = "../results.rs"]
mod results;
mod rules;
mod scan;

#[allow(unused_imports)]
pub use proxy::FaultProxy;
#[allow(unused_imports)]
pub use results::*;
#[allow(unused_imports)]
pub use rules::Fault;

/// A fixed first seed for the generated sessions.
pub const DEFAULT_SEED: u64 = 1;

/// Which of the profile's alternatives the server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choices {
    /// The reference server's defaults: a taken name is refused, users
    /// are plain names, no welcome.
    Default,
    /// The other alternative of each: a taken name gets the joiner's
    /// port, users come with their address, the joiner is welcomed.
    Alternatives,
}

/// The reference server on `127.0.0.1:0` with `choices`.
pub async fn start_server(choices: Choices) -> ChatServer {
    let mut config = ChatConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    if choices == Choices::Alternatives {
        config.names = NamePolicy::SuffixPort;
        config.users = UserListing::WithAddress;
        config.welcome = true;
    }
    within(
        "the reference chat server's start",
        ChatServer::start(config),
    )
    .await
    .expect("start the reference chat server")
}

/// A target for `address` (`HOST:PORT`): short reply timeouts, the
/// default seed, a 5 s session budget.
pub fn target(address: &str) -> ChatTarget {
    let mut target = ChatTarget::new(address).expect("a HOST:PORT target");
    target.reply_timeout = Duration::from_secs(2);
    target.seed = DEFAULT_SEED;
    target.session_budget = Duration::from_secs(5);
    target
}

/// Runs the cases `only` admits (all when empty) against `target`.
pub async fn run_results(target: &ChatTarget, only: &[&str]) -> Vec<CaseResult> {
    results::run_only::<ChatSuite>(target, only).await
}
