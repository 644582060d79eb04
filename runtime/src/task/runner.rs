//! Running admitted tasks on their handlers: the provider's state shared
//! by every connection ([`Shared`]), the slots that bound how many tasks
//! run at once, and how a handler's end (result, error, panic,
//! cancellation) becomes the task's end in the [store](super::store).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use specwire_protocol::task::TaskStatusUpdatePayloadStatus;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::access::AccessPolicy;
use super::handler::{Progress, Task, TaskContext, TaskError, TaskHandler, TaskOutput};
use super::messages::TaskState;
use super::store::TaskStore;
use crate::net::Limits;

/// Counters, for [`ProviderStats`](super::ProviderStats).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) runs: AtomicU64,
    pub(super) errors: AtomicU64,
}

/// What every connection of a provider shares.
pub(super) struct Shared {
    pub(super) services: HashMap<String, Arc<dyn TaskHandler>>,
    pub(super) access: AccessPolicy,
    pub(super) limits: Limits,
    pub(super) store: Arc<TaskStore>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) cancel_grace: Duration,
    pub(super) counters: Counters,
    /// Set by `shutdown`: new tasks are refused.
    pub(super) shutting_down: AtomicBool,
    /// Set when the provider is dropped: tasks end silently (no goodbye).
    pub(super) dropped: AtomicBool,
}

/// Starts an admitted task. With a free slot the handler is polled once
/// right here, on the connection's task, so a task that is done at once (a
/// no-op, a refusal the handler finds) ends without a spawn or a thread
/// hop; otherwise the rest runs on a task of its own. Without a free slot
/// the task is `Queued` until one frees up.
pub(super) fn start(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
) {
    match Arc::clone(&shared.slots).try_acquire_owned() {
        Ok(permit) => run_in_slot(shared, handler, task, cancel, permit),
        Err(_) => {
            let queued = TaskState::Waiting(TaskStatusUpdatePayloadStatus::Queued);
            if shared.store.advance(&task.task_id, queued) {
                tokio::spawn(wait_for_slot(shared, handler, task, cancel));
            }
        }
    }
}

async fn wait_for_slot(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
) {
    let permit = tokio::select! {
        permit = Arc::clone(&shared.slots).acquire_owned() => match permit {
            Ok(permit) => permit,
            Err(_) => return, // the semaphore is never closed
        },
        () = cancel.cancelled() => return end_cancelled(&shared, &task.task_id),
    };
    run_in_slot(shared, handler, task, cancel, permit);
}

type Outcome = std::thread::Result<Result<TaskOutput, TaskError>>;

fn run_in_slot(
    shared: Arc<Shared>,
    handler: Arc<dyn TaskHandler>,
    task: Task,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let task_id = task.task_id.clone();
    let report = {
        let store = Arc::clone(&shared.store);
        let task_id = task_id.clone();
        Arc::new(move |progress: Progress| store.progress(&task_id, progress))
    };
    let context = TaskContext::direct(report, cancel.clone());
    // `run` itself may panic before it returns a future: guard both.
    let mut run = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.run(task, context))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind(),
        Err(panic) => return settle(&shared, &task_id, &cancel, Some(Err(panic))),
    };
    // The first poll, with a waker that does nothing: if the handler is
    // not done, the spawned task polls it again with its own waker, and a
    // future must use the waker of its latest poll.
    let mut first = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(std::pin::Pin::new(&mut run), &mut first) {
        std::task::Poll::Ready(outcome) => {
            settle(&shared, &task_id, &cancel, Some(outcome));
            drop(permit);
        }
        std::task::Poll::Pending => {
            shared.store.advance(&task_id, TaskState::Processing);
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    biased;
                    outcome = &mut run => Some(outcome),
                    () = cancel.cancelled() => {
                        // Already reported as Cancelled; give the handler a
                        // moment to stop before its future is dropped.
                        let _ = tokio::time::timeout(shared.cancel_grace, &mut run).await;
                        None
                    }
                };
                settle(&shared, &task_id, &cancel, outcome);
                drop(permit);
            });
        }
    }
}

/// Records how the handler ended, unless the task was cancelled first: a
/// handler that stopped because it was cancelled reports whatever it likes
/// (usually `TaskError::cancelled()`); the task's end is the cancellation,
/// already recorded by whoever cancelled it.
fn settle(shared: &Shared, task_id: &str, cancel: &CancellationToken, outcome: Option<Outcome>) {
    if cancel.is_cancelled() {
        return end_cancelled(shared, task_id);
    }
    match outcome {
        Some(Ok(result)) => {
            shared.store.finish(task_id, result);
        }
        Some(Err(_panic)) => {
            tracing::error!(task_id, "task handler panicked");
            shared.store.finish(
                task_id,
                Err(TaskError::internal("the service failed unexpectedly")),
            );
        }
        None => {}
    }
}

/// A task whose token was cancelled ends as `Cancelled` if nobody ended it
/// yet (a task admitted while the provider was shutting down), except when
/// the provider was dropped: then it ends without a word.
fn end_cancelled(shared: &Shared, task_id: &str) {
    if !shared.dropped.load(Ordering::SeqCst) {
        shared
            .store
            .cancel_open(task_id, "the provider is shutting down");
    }
}
