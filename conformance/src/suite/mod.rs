//! One runner for every family: a family is a [`Suite`] (its target, its
//! context, its case table, what runs last, its generated sessions), and
//! [`plan`], [`run`], [`run_bound`] and [`replay`] are written once over
//! it: case limits, the run's bound, a blocked run (the circuit breaker of
//! [`RunLog`]), observer calls, replay bundles.
//!
//! Adding a family's suite: a target type, a context that embeds a
//! [`CaseContext`] (`Deref`), a [`Registry`] made with
//! [`cases!`](crate::cases), and an `impl Suite`; the registry test is one
//! call of [`check`] (`every catalog ID has exactly one implementation, and
//! every implementation a catalog ID`). A family's generated sessions
//! can run through [`run_sessions`] (seeds, budget, shrinking).

mod context;
mod registry;
mod sessions;

use std::fmt::Display;
use std::future::Future;
use std::ops::DerefMut;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use specwire_protocol::conformance::{cases_of, CaseSpec};

pub(crate) use context::lock;
pub use context::{join, CaseContext, FailedSession, RunLog};
pub use registry::{check, Case, CaseFn, Registry};
pub use sessions::{any_step, run_sessions, weighted_steps, SessionFn, SessionPlan, StepState};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::verdict::{CaseResult, Stop, Verdict};

/// The catalog section whose case runs the family's generated sessions.
pub const GENERATED_SECTION: &str = "generated";

/// A family's conformance suite.
pub trait Suite: Sized + 'static {
    /// The family name (`task`).
    const FAMILY: &'static str;
    /// Cases that must run after every other: they judge the whole run.
    const RUN_LAST: &'static [&'static str];
    /// The target and how to test it.
    type Target: Clone + Send + Sync + 'static;
    /// What the family's cases of one run share, beside the [`RunLog`].
    type Shared: Default + Send + Sync + 'static;
    /// A case's view of the target; embeds a [`CaseContext`].
    type Ctx: DerefMut<Target = CaseContext> + Send;
    /// One step of a generated session (an uninhabited type when the family
    /// has none).
    type Step: Serialize + DeserializeOwned + Display + Clone + Send + Sync;

    /// The family's case table.
    fn registry() -> &'static Registry<Self::Ctx>;

    /// A case's context.
    fn context(
        target: Arc<Self::Target>,
        case: CaseContext,
        shared: Arc<Self::Shared>,
    ) -> Self::Ctx;

    /// The target, for reports and bundles.
    fn describe(target: &Self::Target) -> String;

    /// The longest case `id` may run against `target` before it is stopped
    /// as a harness error.
    fn case_limit(target: &Self::Target, id: &str) -> Duration;

    /// The longest the preflight may take.
    fn preflight_limit(target: &Self::Target) -> Duration;

    /// Checks the target can be tested at all; an error blocks every case
    /// with its reason.
    fn preflight(run: &Run<Self>) -> impl Future<Output = Result<(), String>> + Send;

    /// Where replay bundles of failed cases go (`None`: not written).
    fn replay_dir(target: &Self::Target) -> Option<&Path>;

    /// The first seed of the generated sessions, if the family has them.
    fn seed(target: &Self::Target) -> Option<u64>;

    /// Runs a generated session of exactly `steps` (a replay).
    fn replay_steps<'a>(
        ctx: &'a mut Self::Ctx,
        steps: &'a [Self::Step],
    ) -> BoxFuture<'a, Result<(), Stop>>;

    /// The case that runs the generated sessions: the family's case in the
    /// catalog's `generated` section.
    fn generated() -> Option<&'static str> {
        cases_of(Self::FAMILY)
            .find(|spec| spec.section == GENERATED_SECTION)
            .map(|spec| spec.id)
    }
}

/// One run of suite `S`: the target and what its cases share.
pub struct Run<S: Suite> {
    /// The target.
    pub target: Arc<S::Target>,
    /// What the run learnt, whatever the family.
    pub log: Arc<RunLog>,
    /// What the family's cases share.
    pub shared: Arc<S::Shared>,
}

impl<S: Suite> Run<S> {
    /// A fresh run against `target`.
    pub fn new(target: &S::Target) -> Run<S> {
        Run {
            target: Arc::new(target.clone()),
            log: Arc::default(),
            shared: Arc::default(),
        }
    }

    /// The context of case `id` (or of the preflight).
    pub fn context(&self, id: &'static str) -> S::Ctx {
        S::context(
            Arc::clone(&self.target),
            CaseContext::new(id, Arc::clone(&self.log)),
            Arc::clone(&self.shared),
        )
    }
}

/// The cases of `S` that `selection` admits, in the order they run.
pub fn plan<S: Suite>(selection: &Selection) -> Vec<&'static CaseSpec> {
    let (last, mut first): (Vec<_>, Vec<_>) = cases_of(S::FAMILY)
        .filter(|spec| selection.admits(spec.id))
        .partition(|spec| S::RUN_LAST.contains(&spec.id));
    first.extend(last);
    first
}

/// The longest a run of `plan` against `target` can take, whatever the
/// target does: the preflight and every case's limit.
pub fn run_bound<S: Suite>(target: &S::Target, plan: &[&'static CaseSpec]) -> Duration {
    plan.iter()
        .map(|spec| S::case_limit(target, spec.id))
        .sum::<Duration>()
        + S::preflight_limit(target)
}

/// Runs the selected cases of `S` against `target`, one after the other,
/// reporting each to `observer`. The run ends within [`run_bound`]; once
/// the target is found unusable, the cases end at once as harness errors
/// naming why.
pub async fn run<S: Suite>(
    target: &S::Target,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    let plan = plan::<S>(selection);
    let run = Run::<S>::new(target);
    if let Err(reason) = S::preflight(&run).await {
        run.log.block(reason);
    }
    let mut results = Vec::with_capacity(plan.len());
    for (index, spec) in plan.iter().enumerate() {
        observer.started(spec, index, plan.len());
        let result = run_case(&run, spec).await;
        observer.finished(&result);
        results.push(result);
    }
    results
}

async fn run_case<S: Suite>(run: &Run<S>, spec: &'static CaseSpec) -> CaseResult {
    let started = Instant::now();
    let target = &*run.target;
    let mut ctx = run.context(spec.id);
    run.log.case_started();
    let limit = S::case_limit(target, spec.id);
    let verdict = match (run.log.blocked(), S::registry().get(spec.id)) {
        (Some(reason), _) => Verdict::HarnessError { reason },
        (None, None) => unimplemented(spec.id),
        (None, Some(case)) => match tokio::time::timeout(limit, case(&mut ctx)).await {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(stop)) => stop.verdict(),
            Err(_) => out_of_time(&ctx, limit),
        },
    };
    let transcript = ctx.transcript();
    let session = ctx.take_failed_session();
    let replay = match (&verdict, S::replay_dir(target)) {
        (Verdict::Fail { reason }, Some(dir)) => {
            let bundle = Bundle {
                format: crate::replay::FORMAT.into(),
                family: S::FAMILY.into(),
                case: spec.id.into(),
                target: S::describe(target),
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
        seed: S::seed(target).filter(|_| S::generated() == Some(spec.id)),
        replay,
    }
}

fn unimplemented(id: &str) -> Verdict {
    Verdict::HarnessError {
        reason: format!("{id} has no implementation in this build"),
    }
}

/// The verdict of a case stopped at its limit: the failure it had found,
/// if any (a generated session that failed, still shrinking), else a
/// harness error saying what it was waiting for.
fn out_of_time(ctx: &CaseContext, limit: Duration) -> Verdict {
    let limit = humantime::format_duration(limit);
    if let Some(session) = ctx.failed_session() {
        return Verdict::Fail {
            reason: format!(
                "session with seed {} (replay the bundle): steps [{}]: {} (the case reached its limit of {limit} before shrinking ended; this is the smallest failing session found)",
                session.seed, session.described, session.reason
            ),
        };
    }
    let waiting = ctx
        .log()
        .last_wait()
        .map_or_else(String::new, |what| format!("; it was waiting for {what}"));
    Verdict::HarnessError {
        reason: format!("the case did not finish within its limit of {limit}{waiting}"),
    }
}

/// Runs a replay bundle's case of `S` again against `target`: a generated
/// session with exactly the bundle's steps, any other case by its ID.
pub async fn replay<S: Suite>(
    target: &S::Target,
    bundle: &Bundle<S::Step>,
) -> Result<CaseResult, String> {
    let spec = specwire_protocol::conformance::case(&bundle.case)
        .filter(|spec| spec.family == S::FAMILY)
        .ok_or_else(|| format!("`{}` is not a {} case", bundle.case, S::FAMILY))?;
    let started = Instant::now();
    let run = Run::<S>::new(target);
    let mut ctx = run.context(spec.id);
    let outcome = match &bundle.steps {
        Some(steps) => S::replay_steps(&mut ctx, steps).await,
        None => match S::registry().get(spec.id) {
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

/// Panics, naming every problem, unless `S`'s registry and the catalog
/// agree in both directions ([`check`]).
#[cfg(test)]
pub(crate) fn assert_registry_matches_catalog<S: Suite>() {
    if let Err(problems) = check(S::FAMILY, S::registry(), S::RUN_LAST) {
        panic!("{}", problems.join("\n"));
    }
}

/// Makes a family's context (a struct with a `case: CaseContext` field)
/// deref to its [`CaseContext`].
#[macro_export]
macro_rules! embeds_case_context {
    ($ctx:ty) => {
        impl ::std::ops::Deref for $ctx {
            type Target = $crate::suite::CaseContext;

            fn deref(&self) -> &$crate::suite::CaseContext {
                &self.case
            }
        }

        impl ::std::ops::DerefMut for $ctx {
            fn deref_mut(&mut self) -> &mut $crate::suite::CaseContext {
                &mut self.case
            }
        }
    };
}

/// The step type of a family without generated sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum NoStep {}

impl Display for NoStep {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}
