//! The subscription family's suite: cases against an event hub's
//! WebSocket endpoint, given the HS256 secret its tokens are signed with.
//!
//! The suite mints its own tokens (and crafts the bad ones), and drives
//! routing through the profile's publish API: an admin connection (claim
//! `role: "admin"`) sends `{"type":"publish","data":<event>}`, so it works
//! against any hub. Every case uses resource ids of its own, waits for
//! deliveries with bounded timeouts, and proves that an event did not
//! arrive by a later event that does (events arrive in publication order),
//! never by waiting.
//!
//! ```no_run
//! # async fn run() {
//! use specwire_conformance::{runner::Selection, subscription};
//!
//! let mut target = subscription::SubscriptionTarget::new("ws://127.0.0.1:8081", b"secret".to_vec());
//! target.user_limit = Some(10);
//! let results = subscription::run(&target, &Selection::default(), &mut ()).await;
//! # }
//! ```

mod cases;
pub mod events;
pub mod generated;
mod observed;
mod session;
mod target;
pub mod tokens;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::CaseSpec;

pub use observed::{envelope_fault, Observed};
pub use session::{describe, Conn, Event, Msg, SubMsg};
pub use target::{Auth, Ctx, Opened, SubscriptionTarget};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::suite::{CaseContext, Registry, Run, Suite};
use crate::verdict::{CaseResult, Stop};

/// The family name.
pub const FAMILY: &str = "subscription";

/// The subscription family's suite.
pub struct SubscriptionSuite;

impl Suite for SubscriptionSuite {
    const FAMILY: &'static str = FAMILY;
    const RUN_LAST: &'static [&'static str] = cases::RUN_LAST;
    type Target = SubscriptionTarget;
    type Shared = Observed;
    type Ctx = Ctx;
    type Step = generated::Step;

    fn registry() -> &'static Registry<Ctx> {
        &cases::CASES
    }

    fn context(target: Arc<SubscriptionTarget>, case: CaseContext, shared: Arc<Observed>) -> Ctx {
        Ctx::new(target, case, shared)
    }

    fn describe(target: &SubscriptionTarget) -> String {
        target.endpoint.clone()
    }

    /// Every wait inside a case is bounded by the reply timeout, and no
    /// case waits for more than twenty in a row (the limit cases open a
    /// connection per allowed one, and wait for each); the heartbeat case
    /// adds `--ping-wait`, the generated case its session budget.
    fn case_limit(target: &SubscriptionTarget, id: &str) -> Duration {
        let ordinary = target.reply_timeout * 20;
        let limits = target.user_limit.max(target.ip_limit).unwrap_or(0);
        match id {
            "subscription.heartbeat.server-ping" => ordinary + target.ping_wait.unwrap_or_default(),
            "subscription.limits.per-user" | "subscription.limits.per-ip" => {
                ordinary + target.reply_timeout * (3 * limits + 6)
            }
            _ if Some(id) == Self::generated() => target.session_budget + ordinary,
            _ => ordinary,
        }
    }

    fn preflight_limit(target: &SubscriptionTarget) -> Duration {
        target.reply_timeout * 3
    }

    async fn preflight(run: &Run<Self>) -> Result<(), String> {
        preflight(run).await
    }

    fn replay_dir(target: &SubscriptionTarget) -> Option<&Path> {
        target.replay_dir.as_deref()
    }

    fn seed(target: &SubscriptionTarget) -> Option<u64> {
        Some(target.seed)
    }

    fn replay_steps<'a>(
        ctx: &'a mut Ctx,
        steps: &'a [generated::Step],
    ) -> BoxFuture<'a, Result<(), Stop>> {
        generated::boxed(ctx, steps)
    }
}

/// The subscription cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    crate::suite::plan::<SubscriptionSuite>(selection)
}

/// Runs the selected cases against `target` ([`crate::suite::run`]).
pub async fn run(
    target: &SubscriptionTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    crate::suite::run::<SubscriptionSuite>(target, selection, observer).await
}

/// Runs a replay bundle's case again against `target`
/// ([`crate::suite::replay`]).
pub async fn replay(
    target: &SubscriptionTarget,
    bundle: &Bundle<generated::Step>,
) -> Result<CaseResult, String> {
    crate::suite::replay::<SubscriptionSuite>(target, bundle).await
}

/// Checks the target can be reached, upgrades a tool connection and takes
/// the suite's token: otherwise every case would fail for the same
/// reason, one timeout after the other. A `ping` must get any answer
/// (what it is, is the cases' business).
async fn preflight(run: &Run<SubscriptionSuite>) -> Result<(), String> {
    let mut ctx = run.context("preflight");
    let describe_stop = |stop: Stop| match stop {
        Stop::Harness(reason) | Stop::Fail(reason) | Stop::Skip(reason) => reason,
    };
    let mut conn = ctx.connect().await.map_err(describe_stop)?;
    let ping = events::ping("conformance-preflight");
    conn.send(&ping).await.map_err(describe_stop)?;
    let timeout = run.target.reply_timeout;
    let answer = conn
        .expect("any answer to a ping", timeout, |msg| {
            msg.kind() == "pong" || msg.kind() == "error"
        })
        .await;
    let _ = conn.close().await;
    match answer {
        Ok((reply, _)) => match reply.error_text() {
            Some(text @ ("Invalid or expired token" | "Authentication required")) => Err(format!(
                "the target refused the suite's token with {text:?}: is --secret the secret the target verifies HS256 tokens with?"
            )),
            _ => Ok(()),
        },
        Err(Stop::Fail(reason)) if reason.starts_with("no ") => Err(format!(
            "the target upgraded a connection to /ws/tasks/... but answered no ping within {}: it does not speak the subscription protocol there, or it is stuck",
            humantime::format_duration(timeout)
        )),
        Err(stop) => Err(format!(
            "{} (check the endpoint and --secret)",
            describe_stop(stop)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_case_has_one_implementation_and_every_implementation_a_case() {
        crate::suite::assert_registry_matches_catalog::<SubscriptionSuite>();
        assert_eq!(
            SubscriptionSuite::generated(),
            Some("subscription.generated.sessions")
        );
        assert!(SubscriptionSuite::registry()
            .get("subscription.no.such-case")
            .is_none());
    }
}
