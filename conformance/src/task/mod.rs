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
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use specwire_protocol::conformance::{cases_of, CaseSpec};

pub(crate) use cases::assignment;
pub use cases::{implementation, CaseFn, RUN_LAST};
pub use observed::{Observed, Timing};
pub use session::{Conn, Event, Msg};
pub use target::{Ctx, FailedSession, Recipe, Recipes, TaskTarget};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::verdict::{CaseResult, Stop, Verdict};

/// The family name.
pub const FAMILY: &str = "task";

/// The generated case: it has its own budget.
pub const GENERATED: &str = "task.generated.sessions";

/// The task cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    let (last, mut first): (Vec<_>, Vec<_>) = cases_of(FAMILY)
        .filter(|spec| selection.admits(spec.id))
        .partition(|spec| RUN_LAST.contains(&spec.id));
    first.extend(last);
    first
}

/// The longest case `id` may run against `target` before it is stopped
/// as a harness error. Every wait inside a case is bounded already, each
/// by one of these options, and no case waits for more than two tasks,
/// eight replies and six settle periods in a row; the generated case runs
/// within its session budget plus one session.
pub fn case_limit(target: &TaskTarget, id: &str) -> Duration {
    let ordinary = target.task_timeout * 2 + target.reply_timeout * 8 + target.settle * 6;
    if id == GENERATED {
        target.session_budget + ordinary
    } else {
        ordinary
    }
}

/// The longest a run of `plan` against `target` can take, whatever the
/// target does: the preflight and every case's limit. A target that stops
/// answering ends the run much sooner (see [`Observed`]).
pub fn run_bound(target: &TaskTarget, plan: &[&'static CaseSpec]) -> Duration {
    plan.iter()
        .map(|spec| case_limit(target, spec.id))
        .sum::<Duration>()
        + target.reply_timeout * 3
}

/// Checks the target can be reached, answers something, and, without an
/// API key, does not demand one: otherwise every case would fail for the
/// same reason, one timeout after the other. Sends three messages every
/// reading of the profile answers (a `GetStatus` and an `AssignTask` of
/// unknown tasks, a message of an unknown type) and waits one reply
/// timeout for any answer.
async fn preflight(target: &TaskTarget, observed: &Arc<Observed>) -> Result<(), String> {
    let mut ctx = Ctx::new(target, Arc::clone(observed));
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
    let assignment = cases::unknown_operation_task(&ctx);
    conn.assign(&assignment, None).await.map_err(closed)?;
    conn.send(&cases::unknown_type_message().1)
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
            observed.round_trip(sent.elapsed());
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

/// Runs the selected cases against `target`, one after the other,
/// reporting each to `observer`. The run ends within
/// [`run_bound`]; once the target is found unusable (unreachable, answering
/// nothing, refusing the API key), the cases that need it end at once as
/// harness errors naming why.
pub async fn run(
    target: &TaskTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    let plan = plan(selection);
    let observed = Arc::new(Observed::default());
    if let Err(reason) = preflight(target, &observed).await {
        observed.block(reason);
    }
    let mut results = Vec::with_capacity(plan.len());
    for (index, spec) in plan.iter().enumerate() {
        observer.started(spec, index, plan.len());
        let result = run_case(target, spec, &observed).await;
        observer.finished(&result);
        results.push(result);
    }
    results
}

async fn run_case(
    target: &TaskTarget,
    spec: &'static CaseSpec,
    observed: &Arc<Observed>,
) -> CaseResult {
    let started = Instant::now();
    let mut ctx = Ctx::new(target, Arc::clone(observed));
    observed.case_started();
    let limit = case_limit(target, spec.id);
    let verdict = match (observed.blocked(), implementation(spec.id)) {
        (Some(reason), _) => Verdict::HarnessError { reason },
        (None, None) => Verdict::HarnessError {
            reason: format!("{} has no implementation in this build", spec.id),
        },
        (None, Some(case)) => match tokio::time::timeout(limit, case(&mut ctx)).await {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(stop)) => stop.verdict(),
            Err(_) => out_of_time(&ctx, observed, limit),
        },
    };
    let transcript = ctx.transcript();
    let session = ctx.failed_session.take();
    let replay = match (&verdict, &target.replay_dir) {
        (Verdict::Fail { reason }, Some(dir)) => {
            let bundle = Bundle {
                format: crate::replay::FORMAT.into(),
                family: FAMILY.into(),
                case: spec.id.into(),
                target: target.endpoint.clone(),
                reason: reason.clone(),
                seed: session.as_ref().map(|session| session.seed),
                steps: session.map(|session| session.steps),
                transcript: transcript.entries().to_vec(),
            };
            match bundle.write(dir) {
                Ok(path) => Some(path.display().to_string()),
                Err(error) => {
                    tracing::warn!(%error, "could not write a replay bundle");
                    None
                }
            }
        }
        _ => None,
    };
    CaseResult {
        spec,
        verdict,
        duration: started.elapsed(),
        transcript,
        seed: (spec.id == GENERATED).then_some(target.seed),
        replay,
    }
}

/// The verdict of a case stopped at its limit: the failure it had found,
/// if any (a generated session that failed, still shrinking), else a
/// harness error saying what it was waiting for.
fn out_of_time(ctx: &Ctx<'_>, observed: &Observed, limit: Duration) -> Verdict {
    let limit = humantime::format_duration(limit);
    if let Some(session) = &ctx.failed_session {
        return Verdict::Fail {
            reason: format!(
                "session with seed {} (replay the bundle): steps [{}]: {} (the case reached its limit of {limit} before shrinking ended; this is the smallest failing session found)",
                session.seed,
                generated::join(&session.steps),
                session.reason
            ),
        };
    }
    let waiting = observed
        .last_wait()
        .map_or_else(String::new, |what| format!("; it was waiting for {what}"));
    Verdict::HarnessError {
        reason: format!("the case did not finish within its limit of {limit}{waiting}"),
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

/// Runs a replay bundle's case again against `target`: a generated
/// session with exactly the bundle's steps, any other case by its ID.
pub async fn replay(target: &TaskTarget, bundle: &Bundle) -> Result<CaseResult, String> {
    let spec = specwire_protocol::conformance::case(&bundle.case)
        .filter(|spec| spec.family == FAMILY)
        .ok_or_else(|| format!("`{}` is not a task case", bundle.case))?;
    let started = Instant::now();
    let mut ctx = Ctx::new(target, Arc::new(Observed::default()));
    let outcome = match &bundle.steps {
        Some(steps) => generated::run(&mut ctx, steps).await,
        None => match implementation(spec.id) {
            Some(case) => case(&mut ctx).await,
            None => return Err(format!("{} has no implementation in this build", spec.id)),
        },
    };
    let verdict = match outcome {
        Ok(()) => Verdict::Pass,
        Err(stop) => stop.verdict(),
    };
    Ok(CaseResult {
        spec,
        verdict,
        duration: started.elapsed(),
        transcript: ctx.transcript(),
        seed: bundle.seed,
        replay: None,
    })
}
