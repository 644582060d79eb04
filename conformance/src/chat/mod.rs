//! The chat family's suite: cases against a chat server's TCP endpoint
//! (seed 003, PROFILE.md's chat section).
//!
//! The stream is JSON objects one after the other; the suite reads it with
//! the runtime's own stream decoder, checks every object the server sends
//! against the chat schema (`chat.schema.valid` judges them over the whole
//! run) and notes what followed each (`chat.framing.newline`). Requests
//! carry no id: a response answers the oldest unanswered request of its
//! connection, and broadcasts are told apart by the profile's rule (a
//! `type` and no `status`) ([`conn`]).
//!
//! Every case uses usernames and message markers of its own, so repeated
//! runs against one server, and other clients on it, do not disturb it;
//! it judges only broadcasts that name its users or carry its markers.
//! That a broadcast did not arrive is shown by ordering, never by waiting
//! ([`ChatConn::sync`](conn::ChatConn::sync)): only a disconnect, which the
//! server notices when it notices, is waited for (bounded by the reply
//! timeout). The framing cases write requests in pieces, byte by byte,
//! several at once, with and without white space, pretty-printed; pieces
//! meant to arrive apart are a few milliseconds apart.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! use specwire_conformance::{chat, runner::Selection};
//!
//! let target = chat::ChatTarget::new("127.0.0.1:65432")?;
//! let results = chat::run(&target, &Selection::default(), &mut ()).await;
//! # Ok(()) }
//! ```

mod cases;
pub mod conn;
pub mod generated;
pub mod requests;
mod target;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::CaseSpec;

pub use target::{ChatShared, ChatTarget, Ctx, Endings};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::suite::{CaseContext, Registry, Run, Suite};
use crate::verdict::{CaseResult, Stop};

/// The family name.
pub const FAMILY: &str = "chat";

/// The chat family's suite.
pub struct ChatSuite;

impl Suite for ChatSuite {
    const FAMILY: &'static str = FAMILY;
    const RUN_LAST: &'static [&'static str] = cases::RUN_LAST;
    type Target = ChatTarget;
    type Shared = ChatShared;
    type Ctx = Ctx;
    type Step = generated::Step;

    fn registry() -> &'static Registry<Ctx> {
        &cases::CASES
    }

    fn context(target: Arc<ChatTarget>, case: CaseContext, shared: Arc<ChatShared>) -> Ctx {
        Ctx::new(target, case, shared)
    }

    fn describe(target: &ChatTarget) -> String {
        target.endpoint()
    }

    /// Every wait inside a case is bounded by the reply timeout, and no
    /// case waits for more than twenty in a row; the generated case takes
    /// its session budget and one more session.
    fn case_limit(target: &ChatTarget, id: &str) -> Duration {
        if Some(id) == Self::generated() {
            target.session_budget + generated::session_bound(target.reply_timeout)
        } else {
            target.reply_timeout * 20
        }
    }

    fn preflight_limit(target: &ChatTarget) -> Duration {
        target.reply_timeout * 3
    }

    async fn preflight(run: &Run<Self>) -> Result<(), String> {
        preflight(run).await
    }

    fn replay_dir(target: &ChatTarget) -> Option<&Path> {
        target.replay_dir.as_deref()
    }

    fn seed(target: &ChatTarget) -> Option<u64> {
        Some(target.seed)
    }

    fn replay_steps<'a>(
        ctx: &'a mut Ctx,
        steps: &'a [generated::Step],
    ) -> BoxFuture<'a, Result<(), Stop>> {
        generated::boxed(ctx, steps)
    }
}

/// The chat cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    crate::suite::plan::<ChatSuite>(selection)
}

/// Runs the selected cases against `target` ([`crate::suite::run`]).
pub async fn run(
    target: &ChatTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    crate::suite::run::<ChatSuite>(target, selection, observer).await
}

/// Runs a replay bundle's case again against `target`
/// ([`crate::suite::replay`]).
pub async fn replay(
    target: &ChatTarget,
    bundle: &Bundle<generated::Step>,
) -> Result<CaseResult, String> {
    crate::suite::replay::<ChatSuite>(target, bundle).await
}

/// Checks the server can be reached and answers a `get_users` with any
/// response: otherwise every case would fail for the same reason, one
/// timeout after the other.
async fn preflight(run: &Run<ChatSuite>) -> Result<(), String> {
    let mut ctx = run.context("preflight");
    let describe = |stop: Stop| match stop {
        Stop::Harness(reason) | Stop::Fail(reason) | Stop::Skip(reason) => reason,
    };
    let mut conn = ctx
        .connect("a preflight connection")
        .await
        .map_err(describe)?;
    let answer = conn
        .request(&requests::get_users(), "`get_users` (preflight)")
        .await;
    conn.disconnect();
    match answer {
        Ok(_) => Ok(()),
        Err(Stop::Fail(reason)) if reason.starts_with("no ") => Err(format!(
            "the target accepted a TCP connection but answered no `get_users` within {}: it does not speak the chat protocol there, or it is stuck",
            humantime::format_duration(run.target.reply_timeout)
        )),
        Err(stop) => Err(describe(stop)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_case_has_one_implementation_and_every_implementation_a_case() {
        crate::suite::assert_registry_matches_catalog::<ChatSuite>();
        assert_eq!(ChatSuite::generated(), Some("chat.generated.sessions"));
        assert!(ChatSuite::registry().get("chat.no.such-case").is_none());
    }

    #[test]
    fn targets_are_host_and_port() {
        let target = ChatTarget::new("127.0.0.1:65432").unwrap();
        assert_eq!(target.endpoint(), "tcp://127.0.0.1:65432");
        assert_eq!(
            ChatTarget::new("tcp://localhost:1").unwrap().address,
            "localhost:1"
        );
        for bad in [
            "127.0.0.1",
            "ws://127.0.0.1:1",
            ":1",
            "host:99999",
            "tcp://h:1/x",
        ] {
            assert!(ChatTarget::new(bad).is_err(), "{bad}");
        }
    }
}
