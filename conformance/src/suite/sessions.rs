//! Generated sessions for any family: sessions from consecutive seeds
//! within a budget, and a failing one shrunk (steps removed, later ones
//! first, while it still fails) with what is left of the budget. The
//! failed session is recorded in the [`CaseContext`] at once and after
//! every smaller failing session found, so its replay bundle is written
//! however the case ends.
//!
//! A family gives its step generator and the function that runs (and
//! judges) one session: [`SessionPlan`] and [`SessionFn`].

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
    /// Most sessions a shrink may run.
    pub shrink_runs: usize,
    /// A session's steps from its seed.
    pub steps: fn(u64) -> Vec<S>,
    /// The option that sets the budget, for notes (`--session-budget`).
    pub budget_flag: &'static str,
}

/// Runs the sessions of `plan` with `run`; the first that fails is
/// shrunk and reported (its seed, its steps, why).
pub async fn run_sessions<C, S>(
    ctx: &mut C,
    plan: &SessionPlan<S>,
    run: SessionFn<C, S>,
) -> Result<(), Stop>
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
{
    let deadline = Instant::now() + plan.budget;
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
                return Err(report(ctx, plan, run, seed, steps, reason, deadline).await)
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Shrinks a failing session within the budget and makes the failure to
/// report.
async fn report<C, S>(
    ctx: &mut C,
    plan: &SessionPlan<S>,
    run: SessionFn<C, S>,
    seed: u64,
    steps: Vec<S>,
    reason: String,
    deadline: Instant,
) -> Stop
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
{
    ctx.session_failed(seed, &steps, &reason);
    ctx.note(&format!("session seed {seed} failed: {reason}; shrinking"));
    let (shrunk, why, stopped) = shrink(ctx, plan, run, seed, steps, reason, deadline).await;
    ctx.session_failed(seed, &shrunk, &why);
    Stop::Fail(format!(
        "session with seed {seed} (rerun with --seed {seed}, or replay the bundle): steps [{}]: {why}{}",
        join(&shrunk),
        stopped.unwrap_or_default()
    ))
}

/// Removes steps while the session still fails, each in turn, later steps
/// first; stops after [`SessionPlan::shrink_runs`] runs, at `deadline`,
/// or when a run cannot be carried out. Returns the smallest failing
/// session found, its reason, and why shrinking stopped early, if it did.
async fn shrink<C, S>(
    ctx: &mut C,
    plan: &SessionPlan<S>,
    run: SessionFn<C, S>,
    seed: u64,
    mut steps: Vec<S>,
    mut reason: String,
    deadline: Instant,
) -> (Vec<S>, String, Option<String>)
where
    C: DerefMut<Target = CaseContext>,
    S: Serialize + Display + Clone,
{
    let mut runs = 0;
    let mut index = steps.len();
    while index > 0 && runs < plan.shrink_runs {
        index -= 1;
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
            shrink_runs: 40,
            steps: |seed| (0..6).map(|n| (seed as u32 + n) % 10).collect(),
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
}
