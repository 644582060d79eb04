//! Keeping a provider busy through its advertised endpoint, so that
//! `discovery.advertisement.load-range` judges the `load` of a busy
//! provider and not only an idle one's (where a fraction and a percentage
//! both read 0).
//!
//! The suite speaks the task protocol for this with the task suite's own
//! connection ([`crate::task::Ctx`]): it authenticates when given a key,
//! assigns [`LoadPlan::tasks`] runs of the `succeeds` task at once, waits
//! until the provider has taken them (a `GetStatus` probe is answered),
//! sends a discovery request while they run, then cancels them and closes.
//! Everything said on that connection goes into the case's transcript.

use std::sync::Arc;
use std::time::Duration;

use specwire_runtime::task::messages;

use super::target::{Ctx, LoadPlan};
use super::wire::{Exchange, Until};
use crate::suite::CaseContext;
use crate::task::{Observed, Recipes, TaskTarget};
use crate::verdict::Stop;

/// Runs `plan` against the provider at `endpoint` (its service named
/// `service`) and returns a request's exchange made while it is busy.
pub(crate) async fn while_busy(
    ctx: &mut Ctx,
    plan: &LoadPlan,
    endpoint: &str,
    service: &str,
) -> Result<Exchange, Stop> {
    let mut target = TaskTarget::new(endpoint);
    target.api_key = plan.api_key.clone();
    target.client_id = plan.client_id.clone();
    target.extra_roots = ctx.target.extra_roots.clone();
    target.service = Some(service.to_owned());
    target.reply_timeout = ctx.target.connect_timeout;
    target.recipes = Recipes {
        succeeds: Some(plan.recipe.clone()),
        fails: None,
    };
    let target = Arc::new(target);
    let mut session = crate::task::Ctx::new(
        Arc::clone(&target),
        CaseContext::new(ctx.case(), Arc::default()),
        Arc::new(Observed::default()),
    );
    ctx.note(&format!(
        "keeping {service} busy: {} runs of {} at once on {endpoint}",
        plan.tasks, plan.recipe.operation
    ));
    let outcome = async {
        let recipe = session.succeeds()?;
        let mut conn = session.connect().await?;
        let mut assigned = Vec::with_capacity(plan.tasks);
        for _ in 0..plan.tasks {
            let assignment = crate::task::assignment(&recipe, &target.client_id);
            conn.assign(&assignment, None).await?;
            assigned.push(assignment.task_id);
        }
        // Answered in order: the provider has taken every task.
        conn.barrier(Duration::ZERO).await?;
        let exchange = ctx.exchange(Until::FirstAnswer).await;
        for id in &assigned {
            let cancel = messages::cancel(id, Some(&target.client_id), None);
            if conn.send(&cancel.text).await.is_err() {
                break;
            }
        }
        let _ = conn.close().await;
        exchange
    }
    .await;
    ctx.absorb(&session.transcript());
    outcome.map_err(|stop| match stop {
        // The provider's task side refusing is not a discovery failure.
        Stop::Fail(reason) | Stop::Harness(reason) => Stop::Harness(format!(
            "could not keep the provider busy through {endpoint} (--tasks, --api-key): {reason}"
        )),
        skip => skip,
    })
}
