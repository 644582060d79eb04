//! Generated sessions for any family: sessions from consecutive seeds
//! within a budget, and a failing one shrunk (steps removed, later ones
//! first, while it still fails) with what is left of the budget, and, if
//! the family asks, run once more before it is reported. The failed
//! session is recorded in the [`CaseContext`] at once and after every
//! smaller failing session found, so its replay bundle is written however
//! the case ends.
//!
//! A family gives its step generator and the function that runs (and
//! judges) one session: [`SessionPlan`] and a [`SessionFn`] (or a closure
//! of that shape, for a session that needs what the case learnt first).

use std::fmt::Display;
use std::ops::DerefMut;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Serialize;

use super::context::{join, CaseContext};
use crate::verdict::Stop;

/// Runs one session of steps `S` in context `C` and judges it.
pub type SessionFn<C, S> = for<'a> fn(&'a mut C, &'a [S]) -> BoxFuture<'a, Result<(), Stop>>;

/// How a family's generated case runs its sessions.
pub struct SessionPlan<S> {
    /// The first seed; session `n` uses `seed + n`.
    pub seed: u64,
    /// How many sessions, at most.
    pub sessions: u64,
    /// How long they may take in all, shrinking included (at least one
    /// session always runs).
    pub budget: Duration,
    /// When the budget started (the case's start: what the case does
    /// before its sessions counts).
    pub started: Instant,
    /// Most sessions a shrink may run.
    pub shrink_runs: usize,
    /// A session's steps from its seed.
    pub steps: fn(u64) -> Vec<S>,
    /// Whether step `index` of `steps` may be removed when shrinking (a
    /// step others refer to may not); [`any_step`] for every step.
    pub removable: fn(&[S], usize) -> bool,
    /// Whether a shrunk session must fail once more, if the budget allows,
    /// before it is reported (else the original session is).
    pub recheck: bool,
    /// The option that sets the budget, for notes (`--session-budget`).
    pub budget_flag: &'static str,
}

impl<S> SessionPlan<S> {
    /// The plan of `sessions` sessions from `seed` within `budget`, which
    /// starts now; any step may go when shrinking, a shrunk session is
    /// not checked again, and `--session-budget` sets the budget.
    pub fn new(
        seed: u64,
        sessions: u64,
        budget: Duration,
        shrink_runs: usize,
        steps: fn(u64) -> Vec<S>,
    ) -> SessionPlan<S> {
        SessionPlan {
            seed,
            sessions,
            budget,
            started: Instant::now(),
            shrink_runs,
            steps,
            removable: any_step,
            recheck: false,
            budget_flag: "--session-budget",
        }
    }
}

/// [`SessionPlan::removable`] when any step may go.
pub fn any_step<S>(_: &[S], _: usize) -> bool {
    true
}

/// Runs the sessions of `plan` with `run`; the first that fails is
/// shrunk and reported (its seed, its steps, why).
pub async fn run_sessions<C, S, F>(ctx: &mut C, plan: &SessionPlan<S>, run: F) -> Result<(), Stop>
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
    F: for<'a> Fn(&'a mut C, &'a [S]) -> BoxFuture<'a, Result<(), Stop>>,
{
    let deadline = plan.started + plan.budget;
    for n in 0..plan.sessions {
        if n > 0 && Instant::now() >= deadline {
            ctx.note(&format!(
                "the session budget of {} allowed {n} of {} sessions ({})",
                humantime::format_duration(plan.budget),
                plan.sessions,
                plan.budget_flag
            ));
            break;
        }
        let seed = plan.seed.wrapping_add(n);
        let steps = (plan.steps)(seed);
        ctx.note(&format!("session seed {seed}: {}", join(&steps)));
        match run(ctx, &steps).await {
            Ok(()) => {}
            Err(Stop::Fail(reason)) => {
                return Err(report(ctx, plan, &run, seed, steps, reason, deadline).await)
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Shrinks a failing session within the budget, checks the result once
/// more if the plan asks and time is left, and makes the failure to
/// report.
async fn report<C, S, F>(
    ctx: &mut C,
    plan: &SessionPlan<S>,
    run: &F,
    seed: u64,
    steps: Vec<S>,
    reason: String,
    deadline: Instant,
) -> Stop
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
    F: for<'a> Fn(&'a mut C, &'a [S]) -> BoxFuture<'a, Result<(), Stop>>,
{
    ctx.session_failed(seed, &steps, &reason);
    ctx.note(&format!("session seed {seed} failed: {reason}; shrinking"));
    let (mut reported, mut why, stopped) = shrink(
        ctx,
        plan,
        run,
        seed,
        steps.clone(),
        reason.clone(),
        deadline,
    )
    .await;
    let mut note = stopped.unwrap_or_default();
    if plan.recheck && reported.len() < steps.len() {
        if Instant::now() >= deadline {
            note.push_str(
                " (the shrunk session was not checked again: the session budget ran out)",
            );
        } else {
            // Before reporting, the shrunk session must fail once more.
            ctx.note(&format!(
                "checking the shrunk session again: {}",
                join(&reported)
            ));
            match run(ctx, &reported).await {
                Err(Stop::Fail(again)) => why = again,
                outcome => {
                    let how = match outcome {
                        Ok(()) => "passed".to_owned(),
                        Err(stop) => format!("could not be run ({})", stop.verdict().name()),
                    };
                    note.push_str(&format!(
                        " (the shrunk session [{}] failed with \"{why}\" but {how} when checked again; reporting the original)",
                        join(&reported)
                    ));
                    reported = steps;
                    why = reason;
                }
            }
        }
    }
    ctx.session_failed(seed, &reported, &why);
    Stop::Fail(format!(
        "session with seed {seed} (rerun with --seed {seed}, or replay the bundle): steps [{}]: {why}{note}",
        join(&reported)
    ))
}

/// Removes steps while the session still fails, each removable one in
/// turn, later steps first; stops after [`SessionPlan::shrink_runs`]
/// runs, at `deadline`, or when a run cannot be carried out. Returns the
/// smallest failing session found, its reason, and why shrinking stopped
/// early, if it did.
async fn shrink<C, S, F>(
    ctx: &mut C,
    plan: &SessionPlan<S>,
    run: &F,
    seed: u64,
    mut steps: Vec<S>,
    mut reason: String,
    deadline: Instant,
) -> (Vec<S>, String, Option<String>)
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
    F: for<'a> Fn(&'a mut C, &'a [S]) -> BoxFuture<'a, Result<(), Stop>>,
{
    let mut runs = 0;
    let mut index = steps.len();
    while index > 0 && runs < plan.shrink_runs {
        index -= 1;
        if !(plan.removable)(&steps, index) {
            continue;
        }
        if Instant::now() >= deadline {
            let stopped = format!(
                " (shrinking stopped after {runs} runs: the session budget ran out; {})",
                plan.budget_flag
            );
            return (steps, reason, Some(stopped));
        }
        let mut candidate = steps.clone();
        candidate.remove(index);
        runs += 1;
        match run(ctx, &candidate).await {
            Err(Stop::Fail(why)) => {
                ctx.note(&format!(
                    "still fails without step {index}: {}",
                    join(&candidate)
                ));
                steps = candidate;
                reason = why;
                ctx.session_failed(seed, &steps, &reason);
            }
            Err(other) => {
                let stopped = format!(
                    " (shrinking stopped after {runs} runs: a run could not be carried out: {})",
                    other.verdict().reason().unwrap_or("")
                );
                return (steps, reason, Some(stopped));
            }
            Ok(()) => {}
        }
    }
    (steps, reason, None)
}

/// What a session generator knows of the state a session's steps build:
/// which steps it allows next, and the state after one.
pub trait StepState<S> {
    /// Whether `step` may come next.
    fn allows(&self, step: S) -> bool;
    /// The state after `step`.
    fn apply(&mut self, step: S);
}

/// `length` steps from `seed`: each drawn from the `candidates` the state
/// allows, in proportion to their weights (the generated-sessions cases
/// of every family draw their sessions this way).
pub fn weighted_steps<S: Copy>(
    seed: u64,
    length: usize,
    candidates: &[(S, u32)],
    mut state: impl StepState<S>,
) -> Vec<S> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut steps = Vec::with_capacity(length);
    while steps.len() < length {
        let allowed: Vec<(S, u32)> = candidates
            .iter()
            .copied()
            .filter(|(step, _)| state.allows(*step))
            .collect();
        let total: u32 = allowed.iter().map(|(_, weight)| weight).sum();
        if total == 0 {
            break;
        }
        let mut pick = rng.u32(..total);
        for (step, weight) in allowed {
            if pick < weight {
                state.apply(step);
                steps.push(step);
                break;
            }
            pick -= weight;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A context whose sessions fail while they hold a step above 5.
    struct Ctx {
        case: CaseContext,
    }
    crate::embeds_case_context!(Ctx);

    fn run<'a>(_: &'a mut Ctx, steps: &'a [u32]) -> BoxFuture<'a, Result<(), Stop>> {
        let big: Vec<u32> = steps.iter().copied().filter(|step| *step > 5).collect();
        Box::pin(async move {
            match big.first() {
                Some(step) => Err(Stop::Fail(format!("step {step} is big"))),
                None => Ok(()),
            }
        })
    }

    fn plan(seed: u64) -> SessionPlan<u32> {
        SessionPlan {
            seed,
            sessions: 3,
            budget: Duration::from_secs(5),
            started: Instant::now(),
            shrink_runs: 40,
            steps: |seed| (0..6).map(|n| (seed as u32 + n) % 10).collect(),
            removable: any_step,
            recheck: false,
            budget_flag: "--session-budget",
        }
    }

    #[tokio::test]
    async fn a_failing_session_is_shrunk_to_what_fails_and_recorded() {
        let mut ctx = Ctx {
            case: CaseContext::new("x.generated.sessions", Arc::default()),
        };
        // Seeds 0.. give steps 0..5, 1..6 (fails at 6), ...
        let stop = run_sessions(&mut ctx, &plan(0), run).await.unwrap_err();
        let Stop::Fail(reason) = stop else {
            panic!("a failure")
        };
        assert!(reason.contains("seed 1"), "{reason}");
        assert!(reason.contains("steps [6]"), "{reason}");
        let session = ctx.failed_session().expect("recorded");
        assert_eq!(session.steps, [serde_json::json!(6)]);
        let mut passing = Ctx {
            case: CaseContext::new("x.generated.sessions", Arc::default()),
        };
        let mut all_small = plan(0);
        all_small.steps = |_| vec![1, 2];
        assert_eq!(run_sessions(&mut passing, &all_small, run).await, Ok(()));
    }

    #[tokio::test]
    async fn unremovable_steps_stay_and_a_shrunk_session_that_passes_again_is_not_reported() {
        let mut ctx = Ctx {
            case: CaseContext::new("x.generated.sessions", Arc::default()),
        };
        let mut keep_first = plan(1);
        keep_first.removable = |_, index| index > 0;
        let stop = run_sessions(&mut ctx, &keep_first, run).await.unwrap_err();
        assert!(format!("{stop:?}").contains("steps [1, 6]"), "{stop:?}");
        // A session passes when it runs again: the shrunk one passes when
        // checked again, so the original is reported.
        let mut ctx = Ctx {
            case: CaseContext::new("x.generated.sessions", Arc::default()),
        };
        let mut rechecked = plan(1);
        rechecked.recheck = true;
        let ran = std::cell::RefCell::new(Vec::new());
        let stop = run_sessions(&mut ctx, &rechecked, |ctx: &mut Ctx, steps: &[u32]| {
            if ran.borrow().contains(&steps.to_vec()) {
                return Box::pin(async { Ok(()) });
            }
            ran.borrow_mut().push(steps.to_vec());
            run(ctx, steps)
        })
        .await
        .unwrap_err();
        let text = format!("{stop:?}");
        assert!(text.contains("steps [1, 2, 3, 4, 5, 6]"), "{text}");
        assert!(text.contains("passed when checked again"), "{text}");
    }
}
