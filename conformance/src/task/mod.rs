//! The task family's suite: cases against a provider's WebSocket endpoint.
//!
//! ```no_run
//! # async fn run() {
//! use specwire_conformance::{runner::Selection, task};
//!
//! let mut target = task::TaskTarget::new("ws://127.0.0.1:8080");
//! target.recipes = task::Recipes::from_json(r#"{"succeeds": {"operation": "noop"}}"#).unwrap();
//! target.service = Some("DiagnosticsService".into());
//! let results = task::run(&target, &Selection::default(), &mut ()).await;
//! # }
//! ```

mod cases;
pub mod generated;
mod observed;
mod session;
mod stimuli;
mod target;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::CaseSpec;

pub use observed::{Observed, Timing};
pub use session::{Conn, Event, Msg, TaskMsg};
pub(crate) use stimuli::assignment;
pub use target::{Ctx, Recipe, Recipes, TaskTarget};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::suite::{CaseContext, Registry, Run, Suite};
use crate::verdict::{CaseResult, Stop};

/// The family name.
pub const FAMILY: &str = "task";

/// The task family's suite.
pub struct TaskSuite;

impl Suite for TaskSuite {
    const FAMILY: &'static str = FAMILY;
    const RUN_LAST: &'static [&'static str] = cases::RUN_LAST;
    type Target = TaskTarget;
    type Shared = Observed;
    type Ctx = Ctx;
    type Step = generated::Step;

    fn registry() -> &'static Registry<Ctx> {
        &cases::CASES
    }

    fn context(target: Arc<TaskTarget>, case: CaseContext, shared: Arc<Observed>) -> Ctx {
        Ctx::new(target, case, shared)
    }

    fn describe(target: &TaskTarget) -> String {
        target.endpoint.clone()
    }

    /// Every wait inside a case is bounded already, each by one of these
    /// options, and no case waits for more than two tasks, eight replies
    /// and six settle periods in a row; the generated case runs within its
    /// session budget plus one session.
    fn case_limit(target: &TaskTarget, id: &str) -> Duration {
        let ordinary = target.task_timeout * 2 + target.reply_timeout * 8 + target.settle * 6;
        if Some(id) == Self::generated() {
            target.session_budget + ordinary
        } else {
            ordinary
        }
    }

    fn preflight_limit(target: &TaskTarget) -> Duration {
        target.reply_timeout * 3
    }

    async fn preflight(run: &Run<Self>) -> Result<(), String> {
        preflight(run).await
    }

    fn replay_dir(target: &TaskTarget) -> Option<&Path> {
        target.replay_dir.as_deref()
    }

    fn seed(target: &TaskTarget) -> Option<u64> {
        Some(target.seed)
    }

    fn replay_steps<'a>(
        ctx: &'a mut Ctx,
        steps: &'a [generated::Step],
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(generated::run(ctx, steps))
    }
}

/// The task cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    crate::suite::plan::<TaskSuite>(selection)
}

/// The longest case `id` may run against `target` before it is stopped
/// as a harness error ([`TaskSuite::case_limit`]).
pub fn case_limit(target: &TaskTarget, id: &str) -> Duration {
    TaskSuite::case_limit(target, id)
}

/// The longest a run of `plan` against `target` can take, whatever the
/// target does: the preflight and every case's limit. A target that stops
/// answering ends the run much sooner.
pub fn run_bound(target: &TaskTarget, plan: &[&'static CaseSpec]) -> Duration {
    crate::suite::run_bound::<TaskSuite>(target, plan)
}

/// Runs the selected cases against `target` ([`crate::suite::run`]).
pub async fn run(
    target: &TaskTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    crate::suite::run::<TaskSuite>(target, selection, observer).await
}

/// Runs a replay bundle's case again against `target`
/// ([`crate::suite::replay`]).
pub async fn replay(
    target: &TaskTarget,
    bundle: &Bundle<generated::Step>,
) -> Result<CaseResult, String> {
    crate::suite::replay::<TaskSuite>(target, bundle).await
}

/// Checks the target can be reached, answers something, and, without an
/// API key, does not demand one: otherwise every case would fail for the
/// same reason, one timeout after the other. Sends three messages every
/// reading of the profile answers (a `GetStatus` and an `AssignTask` of
/// unknown tasks, a message of an unknown type) and waits one reply
/// timeout for any answer.
async fn preflight(run: &Run<TaskSuite>) -> Result<(), String> {
    let target = &*run.target;
    let mut ctx = run.context("preflight");
    let describe = |stop: Stop| match stop {
        Stop::Harness(reason) | Stop::Fail(reason) | Stop::Skip(reason) => reason,
    };
    // Reachability only: a refused key is task.auth.accepted's failure,
    // and every other case's harness error, not a reason to run nothing.
    let mut conn = ctx.connect_raw().await.map_err(describe)?;
    let closed = |_| "the target closed the connection at once".to_owned();
    if let Some(key) = &target.api_key {
        let message = specwire_runtime::task::messages::authenticate(
            key,
            &target.client_id,
            Some("conformance-preflight"),
        );
        conn.send(&message.text).await.map_err(closed)?;
    }
    let id = format!(
        "conformance-preflight-{}",
        specwire_runtime::clock::new_id()
    );
    let query = specwire_runtime::task::messages::get_status(&id);
    let sent = Instant::now();
    conn.send(&query.text).await.map_err(closed)?;
    let assignment = stimuli::unknown_operation_task(&ctx);
    conn.assign(&assignment, None).await.map_err(closed)?;
    conn.send_invalid(&stimuli::unknown_type_message().1)
        .await
        .map_err(closed)?;
    let answers = conn
        .expect("any answer", target.reply_timeout, |msg| {
            target.api_key.is_none() || msg.kind() != "Ack"
        })
        .await;
    let _ = conn.close().await;
    match answers {
        Ok((reply, _)) => {
            run.shared.round_trip(sent.elapsed());
            if target.api_key.is_none() && reply.is_error(Some("UNAUTHORIZED")) {
                return Err("the target requires authentication: pass --api-key KEY".into());
            }
            Ok(())
        }
        Err(Stop::Fail(reason)) if reason.starts_with("no ") => Err(format!(
            "the target accepted a WebSocket connection but answered none of a GetStatus, an AssignTask and a message of an unknown type within {}: it does not speak the task protocol there, or it is stuck",
            humantime::format_duration(target.reply_timeout)
        )),
        Err(stop) => Err(describe(stop)),
    }
}

/// Listens on UDP discovery `port` for up to `wait` and returns the
/// advertisement whose endpoint is `endpoint` (and whose name is `service`,
/// when given).
pub async fn find_advertisement(
    port: u16,
    endpoint: &str,
    service: Option<&str>,
    wait: Duration,
) -> Result<Option<specwire_protocol::discovery::ServiceAdvertisement>, String> {
    use specwire_runtime::discovery::{RepositoryConfig, ServiceRepository};
    let repository = ServiceRepository::start(RepositoryConfig::new(port))
        .map_err(|error| format!("discovery on UDP port {port}: {error}"))?;
    let mut events = repository.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    let matches = |entry: &specwire_runtime::discovery::ServiceEntry| {
        entry.endpoint().trim_end_matches('/') == endpoint.trim_end_matches('/')
            && service.is_none_or(|name| entry.service_name() == name)
    };
    let found = loop {
        if let Some(entry) = repository
            .services()
            .into_iter()
            .find(|entry| matches(entry))
        {
            break Some(entry.advertisement);
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => break None,
        }
    };
    repository.shutdown().await;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_case_has_one_implementation_and_every_implementation_a_case() {
        crate::suite::assert_registry_matches_catalog::<TaskSuite>();
        assert!(TaskSuite::registry().get("task.no.such-case").is_none());
        assert!(TaskSuite::registry()
            .get("task.cancel.finished-code")
            .is_none());
        assert_eq!(TaskSuite::generated(), Some("task.generated.sessions"));
    }
}
