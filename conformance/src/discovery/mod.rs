//! The discovery family's suite: cases against a provider's UDP
//! discovery side (seed 000 §4, PROFILE.md "discovery").
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use specwire_conformance::{discovery, runner::Selection};
//!
//! let mut target = discovery::DiscoveryTarget::new(50001);
//! target.service = Some("ImageProcessingService".into());
//! target.heartbeat_wait = Duration::from_secs(35);
//! let results = discovery::run(&target, &Selection::default(), &mut ()).await;
//! # }
//! ```
//!
//! # How the suite listens
//!
//! The suite attaches to a provider that is already running; it never
//! starts, stops or configures it. Each case binds the shared discovery
//! port on the wildcard address with `SO_REUSEADDR`/`SO_REUSEPORT`
//! ([`bind_discovery_socket`](specwire_runtime::discovery::bind_discovery_socket)),
//! where broadcasts arrive: heartbeats and answers sent to the provider's
//! targets. For each request it binds a fresh ephemeral socket, sends a
//! valid `ClientServiceDiscoveryRequest` with a fresh `clientId` from it to
//! [`target_address`](DiscoveryTarget::target_address)`:`[`port`](DiscoveryTarget::port),
//! and listens on both: only a unicast to the request's source reaches the
//! ephemeral socket. (With a unicast `target_address` on the provider's own
//! host, the kernel may hand the request to the suite's shared socket
//! instead of the provider: use a broadcast address there.)
//!
//! Every datagram sent and received goes into the case's transcript (kind
//! `datagram`; socket #1 is the shared port, the others are ephemeral
//! sockets and WebSocket connections) and every received one is validated.
//! A datagram of the target that breaks the schema is logged for
//! `discovery.advertisement.valid` and otherwise read leniently: each case
//! reads only the fields its point is about, so one fault fails one case.
//! Requests of other clients are not the target's and are not judged.
//! With [`service`](DiscoveryTarget::service), only advertisements with that
//! `serviceName` are judged; everything else on the shared port is recorded
//! and ignored.
//!
//! # Answers and heartbeats
//!
//! - An **answer** to a request is an advertisement naming the request's
//!   `clientId` in `respondsToClientId`, on either socket, or any
//!   advertisement unicast to the request's fresh ephemeral socket (nothing
//!   else can be sent there). A broadcast naming another client answers
//!   someone else and is ignored.
//! - A **heartbeat** is an advertisement on the shared port, while the case
//!   sends nothing, that answers no request: one without
//!   `respondsToClientId`, or one naming a client whose request the suite
//!   neither sent nor saw within the listening window. In the first
//!   [`reply_timeout`](DiscoveryTarget::reply_timeout) (1 s) of the wait, an
//!   unknown `respondsToClientId` may answer a request sent before the
//!   suite listened, and is not judged. The two heartbeat cases share one
//!   wait: the first to run waits up to
//!   [`heartbeat_wait`](DiscoveryTarget::heartbeat_wait) for the first
//!   heartbeat (then [`settle`](DiscoveryTarget::settle) more for the
//!   provider's other services), the other reuses what it saw.
//!
//! # Verdicts
//!
//! - `discovery.request.answered-within-1s` fails when the first answer
//!   comes more than [`reply_timeout`](DiscoveryTarget::reply_timeout) after
//!   the request (measured with `Instant` from just before sending to
//!   receipt), or none comes within the listening window
//!   ([`listen`](DiscoveryTarget::listen), 3 s), which tells a late answer
//!   from none.
//! - `discovery.request.unicast-answer` fails when no advertisement reaches
//!   the ephemeral socket within the window. It quotes the same spec
//!   sentence as the previous case, so a provider that never answers fails
//!   both; a provider that answers only by broadcast fails only this one,
//!   and one that answers late only the previous one.
//! - `discovery.request.answer-to-targets` fails when no advertisement
//!   naming the request's `clientId` arrives on the shared port within the
//!   window: the provider answered only by unicast (or not at all). Same
//!   sentence again: a silent provider fails all three request cases.
//! - `discovery.request.responds-to-client-id` fails when an advertisement
//!   unicast to the request's source (an answer) lacks the request's
//!   `clientId` or names another.
//! - `discovery.heartbeat.omits-responds-to` fails when a heartbeat carries
//!   `respondsToClientId`; `discovery.heartbeat.interval` (SHOULD) fails
//!   when no heartbeat comes within `heartbeat_wait`, whatever it carries.
//!   Both skip when `heartbeat_wait` is zero.
//! - `discovery.advertisement.settings-types` judges the raw JSON of every
//!   advertisement of its exchange: each setting is a one-key object whose
//!   key is `string`, `int`, `float` or `bool` and whose value is a string.
//!   The schema says the same; that rule (like `load`'s range) is left to
//!   its own case by `discovery.advertisement.valid`, so one fault fails
//!   one case.
//! - `discovery.advertisement.load-range` judges the `load` of every
//!   advertisement of the run so far (a number from 0.0 to 1.0). With
//!   [`load`](DiscoveryTarget::load) (`--tasks`), it first keeps the
//!   provider busy through its advertised endpoint and asks again while it
//!   is (the `load` module); without it, an idle provider's loads cannot
//!   tell a fraction from a percentage, and the case skips unless one was
//!   out of range.
//! - `discovery.advertisement.endpoint-reachable` (SHOULD) opens a
//!   WebSocket to each distinct `ws://`/`wss://` endpoint advertised in its
//!   exchange (answers and heartbeats), within
//!   [`connect_timeout`](DiscoveryTarget::connect_timeout), and closes it
//!   with code 1000. A refused connection, a failed or late handshake fails.
//!   A `wss://` endpoint whose certificate the suite does not trust (the
//!   platform's roots plus [`extra_roots`](DiscoveryTarget::extra_roots))
//!   makes the case skip, naming the option: the server is there, but the
//!   handshake cannot be checked, and failing would punish self-signed
//!   deployments the spec allows.
//! - `discovery.advertisement.online-status` fails when an answer says
//!   `Offline`.
//! - `discovery.socket.shared-port` probes the discovery port from the
//!   provider's host (skips when the answer came from another host): a
//!   socket with only `SO_REUSEADDR`, and one with only `SO_REUSEPORT`, must
//!   each be able to bind it beside the sockets there ([`port`] explains
//!   why that tells which option a socket lacks). A refusal names the
//!   sockets on the port and, where `/proc` shows them, their processes.
//! - `discovery.advertisement.valid` runs last: it sends one more request,
//!   then fails if any datagram of the target in the whole run broke the
//!   schema. Without `service`, anything on the port that is not a valid
//!   discovery message counts; with it, only advertisements of that service
//!   and anything unicast to the suite.
//!
//! A case with nothing to judge (no answer, no heartbeat, no advertisement)
//! skips and names the case that reports the absence: only that case
//! fails, and no verdict claims a check that did not happen.

mod cases;
mod load;
pub mod port;
mod target;
mod wire;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::CaseSpec;

pub use target::{Ctx, DiscoveryTarget, LoadPlan, RunState};
pub use wire::{Datagram, Exchange, Until, Via};

use crate::runner::{Observer, Selection};
use crate::suite::{CaseContext, NoStep, Registry, Run, Suite};
use crate::verdict::{CaseResult, Stop};

/// The family name.
pub const FAMILY: &str = "discovery";

/// The discovery family's suite.
pub struct DiscoverySuite;

impl Suite for DiscoverySuite {
    const FAMILY: &'static str = FAMILY;
    const RUN_LAST: &'static [&'static str] = cases::RUN_LAST;
    type Target = DiscoveryTarget;
    type Shared = Mutex<RunState>;
    type Ctx = Ctx;
    type Step = NoStep;

    fn registry() -> &'static Registry<Ctx> {
        &cases::CASES
    }

    fn context(
        target: Arc<DiscoveryTarget>,
        case: CaseContext,
        shared: Arc<Mutex<RunState>>,
    ) -> Ctx {
        Ctx::new(target, case, shared)
    }

    fn describe(target: &DiscoveryTarget) -> String {
        target.describe()
    }

    /// A safety net: every wait inside a case is bounded already.
    fn case_limit(target: &DiscoveryTarget, _: &str) -> Duration {
        target.heartbeat_wait
            + target.window() * 2
            + target.settle * 4
            + target.connect_timeout * 8
            + Duration::from_secs(60)
    }

    fn preflight_limit(_: &DiscoveryTarget) -> Duration {
        Duration::ZERO
    }

    /// Compiles the validators now: not while an answer is being timed.
    async fn preflight(_: &Run<Self>) -> Result<(), String> {
        <specwire_protocol::discovery::Message as specwire_protocol::JsonProtocol>::family()
            .warm_up()
            .map_err(|error| format!("the discovery schema does not compile: {error}"))
    }

    fn replay_dir(_: &DiscoveryTarget) -> Option<&Path> {
        None
    }

    fn seed(_: &DiscoveryTarget) -> Option<u64> {
        None
    }

    fn replay_steps<'a>(_: &'a mut Ctx, steps: &'a [NoStep]) -> BoxFuture<'a, Result<(), Stop>> {
        match steps.first() {
            Some(step) => match *step {},
            None => Box::pin(async {
                Err(Stop::Harness(
                    "the discovery suite has no generated sessions".into(),
                ))
            }),
        }
    }
}

/// The discovery cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    crate::suite::plan::<DiscoverySuite>(selection)
}

/// Runs the selected cases against `target` ([`crate::suite::run`]).
pub async fn run(
    target: &DiscoveryTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    crate::suite::run::<DiscoverySuite>(target, selection, observer).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::conformance::cases_of;

    #[test]
    fn every_catalog_case_has_one_implementation_and_every_implementation_a_case() {
        crate::suite::assert_registry_matches_catalog::<DiscoverySuite>();
        assert!(DiscoverySuite::registry()
            .get("discovery.no.such-case")
            .is_none());
        assert_eq!(DiscoverySuite::generated(), None);
    }

    #[test]
    fn the_plan_runs_valid_last_and_follows_the_selection() {
        let plan = plan(&Selection::default());
        assert_eq!(plan.len(), cases_of(FAMILY).count());
        assert_eq!(plan.last().unwrap().id, "discovery.advertisement.valid");
        let only = Selection {
            only: vec!["discovery.heartbeat".into()],
            skip: vec![],
        };
        let ids: Vec<&str> = super::plan(&only).iter().map(|spec| spec.id).collect();
        assert_eq!(
            ids,
            [
                "discovery.heartbeat.omits-responds-to",
                "discovery.heartbeat.interval"
            ]
        );
    }

    #[test]
    fn target_defaults() {
        let target = DiscoveryTarget::new(50001);
        assert_eq!(target.destination().to_string(), "127.255.255.255:50001");
        assert_eq!(target.heartbeat_wait, Duration::from_secs(35));
        assert_eq!(target.window(), Duration::from_secs(3));
        let short = DiscoveryTarget {
            listen: Duration::from_millis(10),
            ..DiscoveryTarget::new(1)
        };
        assert_eq!(short.window(), Duration::from_secs(1));
    }
}
