//! Test support for the task suite's own tests: the reference provider on
//! loopback (plain, with an API key and ACL, or over TLS), the suite run
//! as a map of verdicts, and a fault proxy that sits between the suite and
//! the reference provider and breaks exactly one spec point.
//!
//! Nothing here sleeps to synchronise: every wait is for a frame, a
//! connection or a task, bounded by a timeout.

// Each test uses a different part of this module.
#![allow(dead_code)]

use specwire_protocol::JsonProtocol;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_conformance::task::{self, Recipes, TaskTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_protocol::discovery::ServiceAdvertisement;
use specwire_protocol::task::Message;
use specwire_protocol::Direction;
use specwire_runtime::clock::new_id;
use specwire_runtime::discovery::{AdvertisedService, Presence};
use specwire_runtime::task::messages::{self, TaskReport, TaskState};
use specwire_runtime::task::{AccessPolicy, Provider, ProviderConfig, TaskHandler, TaskOutput};
pub use specwire_testsupport::SelfSigned;
use specwire_testsupport::{within, Acceptor, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;

mod proxy;
#[path = "../results.rs"]
mod results;
mod rewrite;

// Each test uses a different part of this module.
#[allow(unused_imports)]
pub use proxy::{Fault, FaultProxy};
pub use results::*;

/// The API key of the authenticated reference provider.
pub const API_KEY: &str = "specwire-suite-test-key";
/// The suite's client id: granted everything.
pub const SUITE_CLIENT: &str = "suite-client";
/// A client granted only `DiagnosticsService/echo`: the `succeeds` task
/// (`sleep`) is forbidden to it.
pub const FORBIDDEN_CLIENT: &str = "forbidden-client";
/// The service the recipes use.
pub const SERVICE: &str = "DiagnosticsService";
/// Tasks of `succeeds` take this long: long enough that a `CancelTask`
/// sent right after the assign always wins, short enough to keep runs fast.
pub const SLEEP_MS: u64 = 200;
/// A fixed first seed for the generated sessions (see
/// [`seed_with_reassign_then_cancel`]).
pub const DEFAULT_SEED: u64 = 1;

/// How the reference provider is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No authentication, no ACL.
    Open,
    /// `Authenticate` with [`API_KEY`]; [`SUITE_CLIENT`] may do anything,
    /// [`FORBIDDEN_CLIENT`] only `DiagnosticsService/echo`.
    Keyed,
}

/// The reference provider (`reference_services()`) on `127.0.0.1:0`.
pub async fn start_reference(access: Access, tls: Option<&SelfSigned>) -> Provider {
    let access = match access {
        Access::Open => AccessPolicy::open(),
        Access::Keyed => AccessPolicy::api_keys([API_KEY])
            .grant(SUITE_CLIENT, "*", "*")
            .grant(FORBIDDEN_CLIENT, SERVICE, "echo"),
    };
    let tls = tls.map(|certificate| {
        specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
            .expect("a TLS server configuration")
    });
    let config = ProviderConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        access,
        tls,
        // Never queue: several suite runs may share a machine with 2 cores.
        capacity: 64,
        cancel_grace: Duration::from_secs(2),
        ..ProviderConfig::default()
    };
    let starting = Provider::start(config, specwire_services::reference_services());
    within("the reference provider's start", starting)
        .await
        .expect("start the reference provider")
}

/// The advertisement of the reference `DiagnosticsService` at `endpoint`.
pub fn diagnostics_advertisement(endpoint: &str) -> ServiceAdvertisement {
    let description = specwire_services::DiagnosticsService::new()
        .description()
        .clone();
    AdvertisedService::new(description, endpoint).advertisement(Presence::IDLE, None)
}

/// A target for `endpoint` with the recipes, service, advertisement and
/// short timeouts the tests use, and (for [`Access::Keyed`]) the key and
/// client ids.
pub fn target(endpoint: &str, access: Access) -> TaskTarget {
    let mut target = TaskTarget::new(endpoint);
    let recipes = json!({
        "succeeds": {"serviceName": SERVICE, "operation": "sleep",
                     "taskParameters": {"durationMs": SLEEP_MS, "steps": 2}},
        "fails": {"serviceName": SERVICE, "operation": "fail",
                  "taskParameters": {"code": "SIMULATED"}}
    });
    target.recipes = Recipes::from_json(&recipes.to_string()).expect("the recipes parse");
    target.service = Some(SERVICE.into());
    target.advertisement = Some(diagnostics_advertisement(endpoint));
    target.reply_timeout = Duration::from_secs(2);
    target.task_timeout = Duration::from_secs(10);
    target.settle = Duration::from_millis(50);
    if access == Access::Keyed {
        target.api_key = Some(API_KEY.into());
        target.client_id = SUITE_CLIENT.into();
        target.forbidden_client = Some(FORBIDDEN_CLIENT.into());
    }
    target
}

/// Runs the cases `only` admits (all when empty) against `target`.
pub async fn run_results(target: &TaskTarget, only: &[&str]) -> Vec<CaseResult> {
    results::run_only::<task::TaskSuite>(target, only).await
}

/// Runs the suite and returns case id → verdict name.
pub async fn run_suite(target: TaskTarget, only: &[&str]) -> BTreeMap<&'static str, &'static str> {
    verdicts(&run_results(&target, only).await)
}

/// The first seed from [`DEFAULT_SEED`] whose own session assigns a task
/// again and later cancels it: with it, the very first session of the
/// generated case fails behind [`Fault::CloseOnReassignThenCancel`].
pub fn seed_whose_first_session_reassigns_then_cancels() -> u64 {
    (DEFAULT_SEED..DEFAULT_SEED + 10_000)
        .find(|&seed| reassigns_then_cancels(seed))
        .expect("some seed re-assigns then cancels")
}

/// Whether generated session `seed` assigns a task again and later
/// cancels that task (what [`Fault::CloseOnReassignThenCancel`] reacts to).
fn reassigns_then_cancels(seed: u64) -> bool {
    use specwire_conformance::task::generated::{steps, Step};
    let steps = steps(seed, 10);
    steps.iter().enumerate().any(|(at, step)| match step {
        Step::AssignAgain(n) => steps[at + 1..].contains(&Step::Cancel(*n)),
        _ => false,
    })
}

/// The first seed from [`DEFAULT_SEED`] on whose sessions (the
/// generated case runs `SESSIONS` consecutive seeds) include a re-assign
/// followed by a cancel of the same task. Computed once per test process
/// (drawing sessions is not free).
pub fn seed_with_reassign_then_cancel() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let sessions = specwire_conformance::task::generated::SESSIONS;
        let mut cache = HashMap::new();
        let mut hit = |seed: u64| {
            *cache
                .entry(seed)
                .or_insert_with(|| reassigns_then_cancels(seed))
        };
        (DEFAULT_SEED..DEFAULT_SEED + 10_000)
            .find(|&seed| (seed..seed + sessions).any(&mut hit))
            .expect("some seed re-assigns then cancels")
    })
}
