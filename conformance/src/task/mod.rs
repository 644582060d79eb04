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
mod session;
mod target;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use specwire_protocol::conformance::{cases_of, CaseSpec};

pub use cases::{implementation, CaseFn, RUN_LAST};
pub use session::{Conn, Event, Msg};
pub use target::{Ctx, Recipe, Recipes, TaskTarget};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::transcript::Transcript;
use crate::verdict::{CaseResult, Stop, Verdict};

/// The family name.
pub const FAMILY: &str = "task";

/// The task cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    let (last, mut first): (Vec<_>, Vec<_>) = cases_of(FAMILY)
        .filter(|spec| selection.admits(spec.id))
        .partition(|spec| RUN_LAST.contains(&spec.id));
    first.extend(last);
    first
}

/// Checks the target can be reached and, without an API key, does not
/// demand one: otherwise every case would fail for the same reason.
async fn preflight(target: &TaskTarget) -> Result<(), String> {
    let invalid = Arc::new(Mutex::new(Vec::new()));
    let mut ctx = Ctx::new(target, invalid);
    // Reachability only: a refused key is task.auth.accepted's failure,
    // and every other case's harness error, not a reason to run nothing.
    let mut conn = ctx.connect_raw().await.map_err(|stop| match stop {
        Stop::Harness(reason) | Stop::Fail(reason) | Stop::Skip(reason) => reason,
    })?;
    if target.api_key.is_none() {
        let id = format!(
            "conformance-preflight-{}",
            specwire_runtime::clock::new_id()
        );
        let query = specwire_runtime::task::messages::get_status(&id);
        conn.send(&query.text)
            .await
            .map_err(|_| "the target closed the connection at once".to_owned())?;
        if let Ok((reply, _)) = conn
            .expect("an answer", target.reply_timeout, |msg| {
                msg.kind() == "Error" || msg.is_about(&id)
            })
            .await
        {
            if reply.is_error(Some("UNAUTHORIZED")) {
                return Err("the target requires authentication: pass --api-key KEY".into());
            }
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// Runs the selected cases against `target`, one after the other,
/// reporting each to `observer`.
pub async fn run(
    target: &TaskTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    let plan = plan(selection);
    let blocked = preflight(target).await.err();
    let invalid = Arc::new(Mutex::new(Vec::new()));
    // A safety net: every wait inside a case is bounded already.
    let case_limit = target.task_timeout * 4 + Duration::from_secs(60);
    let mut results = Vec::with_capacity(plan.len());
    for (index, spec) in plan.iter().enumerate() {
        observer.started(spec, index, plan.len());
        let started = Instant::now();
        let mut ctx = Ctx::new(target, Arc::clone(&invalid));
        let verdict = match (&blocked, implementation(spec.id)) {
            (Some(reason), _) => Verdict::HarnessError {
                reason: reason.clone(),
            },
            (None, None) => Verdict::HarnessError {
                reason: format!("{} has no implementation in this build", spec.id),
            },
            (None, Some(case)) => match tokio::time::timeout(case_limit, case(&mut ctx)).await {
                Ok(Ok(())) => Verdict::Pass,
                Ok(Err(stop)) => stop.verdict(),
                Err(_) => Verdict::HarnessError {
                    reason: format!("the case did not finish within {case_limit:?}"),
                },
            },
        };
        let transcript = if blocked.is_some() {
            Transcript::new()
        } else {
            ctx.transcript()
        };
        let session = ctx.failed_session.take();
        let replay = match (&verdict, &target.replay_dir) {
            (Verdict::Fail { reason }, Some(dir)) => {
                let bundle = Bundle {
                    format: crate::replay::FORMAT.into(),
                    family: FAMILY.into(),
                    case: spec.id.into(),
                    target: target.endpoint.clone(),
                    reason: reason.clone(),
                    seed: session.as_ref().map(|(seed, _)| *seed),
                    steps: session.map(|(_, steps)| steps),
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
        let result = CaseResult {
            spec,
            verdict,
            duration: started.elapsed(),
            transcript,
            seed: (spec.id == "task.generated.sessions").then_some(target.seed),
            replay,
        };
        observer.finished(&result);
        results.push(result);
    }
    results
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
    let invalid = Arc::new(Mutex::new(Vec::new()));
    let mut ctx = Ctx::new(target, invalid);
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
