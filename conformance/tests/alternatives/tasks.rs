//! The alternatives provider's task table and task execution.
//!
//! One mutex guards the table, and every message about a task is queued to
//! its connection while that lock is held. So the decisions that race (a
//! cancel against the task's own end, a status query against a progress
//! step) are made once, under the lock; each connection sees a task's
//! messages in order, with progress never decreasing, the `Ack` of an
//! assign before the task's first update, exactly one terminal message,
//! and nothing live after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{error_message, stopped, Peer, Request, Shared, Switch, SERVICE};

/// One operation of [`SERVICE`] and its advertised settings `(type, name)`.
pub(super) struct Operation {
    pub key: &'static str,
    pub settings: &'static [(&'static str, &'static str)],
}

/// What the service offers (and advertises).
pub(super) const OPERATIONS: &[Operation] = &[
    Operation {
        key: "sleep",
        settings: &[("int", "durationMs"), ("int", "steps")],
    },
    Operation {
        key: "noop",
        settings: &[],
    },
    Operation {
        key: "fail",
        settings: &[("string", "code")],
    },
];

/// The advertised `capabilities`.
pub(super) fn capabilities() -> Value {
    let capabilities: Vec<Value> = OPERATIONS
        .iter()
        .map(|operation| {
            let settings: Vec<Value> = operation
                .settings
                .iter()
                .map(|(kind, name)| json!({ *kind: name }))
                .collect();
            json!({"key": operation.key, "settings": settings})
        })
        .collect();
    Value::Array(capabilities)
}

/// The default `fail` code (and the only one under `CustomErrorCodes`).
const ALT_FAILURE: &str = "ALT_FAILURE";

/// What a task does once it has a slot.
enum Job {
    Sleep { duration_ms: u64, steps: u64 },
    Noop,
    Fail { code: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    Failed,
    Cancelled,
}

/// A task's terminal message, as first sent: the payload for fresh copies,
/// the text for `ReassignStoredTerminal`.
struct Terminal {
    outcome: Outcome,
    kind: &'static str,
    payload: Map<String, Value>,
    text: String,
}

impl Terminal {
    fn new(shared: &Shared, outcome: Outcome, payload: Map<String, Value>) -> Terminal {
        let kind = match outcome {
            Outcome::Completed => "TaskResult",
            Outcome::Failed => "TaskFailed",
            Outcome::Cancelled => "TaskStatusUpdate",
        };
        let text = shared.message(kind, payload.clone()).to_string();
        Terminal {
            outcome,
            kind,
            payload,
            text,
        }
    }

    /// The terminal message again, as an answer to a query or a re-assign.
    fn replay(&self, shared: &Shared) -> String {
        if shared.switch() == Switch::ReassignStoredTerminal {
            self.text.clone()
        } else {
            shared.message(self.kind, self.payload.clone()).to_string()
        }
    }
}

enum Phase {
    /// Waiting for a slot.
    Queued,
    /// Has a slot (its runner may not have begun yet).
    Running,
    Done(Terminal),
}

/// A `CancelTask` that lost the race, answered after the terminal message.
struct LosingCancel {
    peer: Arc<Peer>,
    related: Option<String>,
}

struct Task {
    /// The connection that assigned it: its live updates go there only.
    owner: Arc<Peer>,
    phase: Phase,
    progress: u8,
    /// Wakes the runner when the task is cancelled.
    wake: Arc<Notify>,
    losing_cancels: Vec<LosingCancel>,
}

impl Task {
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Queued => "Queued",
            _ => "Processing",
        }
    }
}

/// Every task this provider has seen (none is ever forgotten: fixtures
/// live for one test).
pub(super) struct Table {
    entries: Mutex<HashMap<String, Task>>,
    slots: Arc<Semaphore>,
    capacity: usize,
    runs: AtomicUsize,
    runners: Mutex<JoinSet<()>>,
}

impl Table {
    pub(super) fn new(capacity: usize) -> Table {
        Table {
            entries: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            runs: AtomicUsize::new(0),
            runners: Mutex::new(JoinSet::new()),
        }
    }

    pub(super) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Tasks holding a slot now.
    pub(super) fn running(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Running tasks / capacity, 0.0–1.0.
    pub(super) fn load(&self) -> f64 {
        self.running() as f64 / self.capacity as f64
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Task>> {
        // A panic elsewhere must not turn every later message into one.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, runner: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut runners = self.runners.lock().unwrap_or_else(PoisonError::into_inner);
        // Reap finished runners so the set does not grow with every task.
        while runners.try_join_next().is_some() {}
        runners.spawn(runner);
    }

    /// Waits (bounded) for the runners, which stop at shutdown; aborts the rest.
    pub(super) async fn stop_runners(&self) {
        let mut runners =
            std::mem::take(&mut *self.runners.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while runners.join_next().await.is_some() {}
        })
        .await;
    }

    /// A queued task got its slot, or a running one's runner begins: true
    /// when it is still to run (not cancelled meanwhile).
    fn start(&self, shared: &Shared, task_id: &str) -> bool {
        let mut entries = self.lock();
        let Some(task) = entries.get_mut(task_id) else {
            return false;
        };
        if let Phase::Done(_) = task.phase {
            return false;
        }
        task.phase = Phase::Running;
        self.runs.fetch_add(1, Ordering::SeqCst);
        if shared.switch() == Switch::AllStatusUpdates {
            task.owner
                .send(&update(shared, task_id, "Processing", task.progress));
        }
        true
    }

    /// A step is done: false when the task ended meanwhile (cancelled).
    fn progress(&self, shared: &Shared, task_id: &str, progress: u8) -> bool {
        let mut entries = self.lock();
        let Some(task) = entries.get_mut(task_id) else {
            return false;
        };
        if !matches!(task.phase, Phase::Running) {
            return false;
        }
        task.progress = task.progress.max(progress);
        if shared.switch() != Switch::NoStatusUpdates {
            task.owner
                .send(&update(shared, task_id, "Processing", task.progress));
        }
        true
    }

    /// The task's own end, unless a cancel ended it first; then the
    /// cancels that lost the race are answered.
    fn finish(
        &self,
        shared: &Shared,
        task_id: &str,
        outcome: Outcome,
        payload: Map<String, Value>,
    ) {
        let mut entries = self.lock();
        let Some(task) = entries.get_mut(task_id) else {
            return;
        };
        if let Phase::Done(_) = task.phase {
            return;
        }
        let terminal = Terminal::new(shared, outcome, payload);
        task.owner.send_text(terminal.text.clone());
        task.phase = Phase::Done(terminal);
        for losing in std::mem::take(&mut task.losing_cancels) {
            if shared.switch() != Switch::CancelLosesRaceSilently {
                losing.peer.send(&error_message(
                    shared,
                    finished_cancel_code(shared),
                    "the task finished before the cancel took effect",
                    losing.related.as_deref(),
                    Some(task_id),
                ));
            }
        }
    }
}

/// `CancelTask` of a finished task gets this code.
fn finished_cancel_code(shared: &Shared) -> &'static str {
    match shared.switch() {
        Switch::FinishedCancelCode => "TASK_COMPLETED",
        Switch::CustomErrorCodes => "ALREADY_DONE",
        _ => "TASK_ALREADY_FINISHED",
    }
}

/// A `TaskStatusUpdate` about a live task.
fn update(shared: &Shared, task_id: &str, status: &str, progress: u8) -> Value {
    shared.message(
        "TaskStatusUpdate",
        status_payload(task_id, status, progress),
    )
}

fn status_payload(task_id: &str, status: &str, progress: u8) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("taskId".into(), task_id.into());
    payload.insert("status".into(), status.into());
    payload.insert("progressPercentage".into(), progress.into());
    payload
}

fn result_payload(task_id: &str, data: Value) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("taskId".into(), task_id.into());
    payload.insert("status".into(), "Completed".into());
    payload.insert("resultData".into(), data);
    payload
}

/// A `TaskFailed` payload.
pub(super) fn failed_payload(task_id: &str, code: &str, text: &str) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("taskId".into(), task_id.into());
    payload.insert("status".into(), "Failed".into());
    payload.insert("errorCode".into(), code.into());
    payload.insert("errorMessage".into(), text.into());
    payload
}

/// Upper snake case, as the schema wants error codes.
fn is_error_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|first| first.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Does `value` have the JSON type an advertised setting type names?
fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "int" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "bool" => value.is_boolean(),
        _ => value.is_string(),
    }
}

/// What the task will do, or why it cannot run (code, reason).
fn prepare(
    shared: &Shared,
    service: &str,
    operation: &str,
    parameters: &Map<String, Value>,
) -> Result<Job, (&'static str, String)> {
    if service != SERVICE {
        return Err((
            "UNKNOWN_OPERATION",
            format!("no such service (offered: {SERVICE})"),
        ));
    }
    let Some(spec) = OPERATIONS.iter().find(|spec| spec.key == operation) else {
        return Err((
            "UNKNOWN_OPERATION",
            format!("{SERVICE} has no such operation (offered: sleep, noop, fail)"),
        ));
    };
    // Unadvertised parameters are accepted (and ignored).
    for (kind, name) in spec.settings {
        if parameters
            .get(*name)
            .is_some_and(|value| !type_matches(kind, value))
        {
            return Err(("INVALID_PARAMETERS", format!("`{name}` must be {kind}")));
        }
    }
    let int = |name: &str, default: i64| {
        parameters
            .get(name)
            .and_then(|value| value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX)))
            .unwrap_or(default)
    };
    Ok(match spec.key {
        // Out-of-range values are clamped rather than refused: progress
        // stays strictly increasing with at most 100 steps.
        "sleep" => Job::Sleep {
            duration_ms: int("durationMs", 300).clamp(0, 600_000) as u64,
            steps: int("steps", 3).clamp(1, 100) as u64,
        },
        "noop" => Job::Noop,
        _ => {
            let asked = parameters.get("code").and_then(Value::as_str);
            let code = match shared.switch() {
                Switch::CustomErrorCodes => ALT_FAILURE,
                _ => asked.unwrap_or(ALT_FAILURE),
            };
            if !is_error_code(code) {
                return Err((
                    "INVALID_PARAMETERS",
                    "`code` must be upper snake case".into(),
                ));
            }
            Job::Fail {
                code: code.to_owned(),
            }
        }
    })
}

/// Answers a message about a task the table knows with its state.
fn answer_known(request: &Request, task_id: &str, task: &Task) {
    let shared = request.shared;
    match &task.phase {
        Phase::Done(terminal) => request.reply_text(terminal.replay(shared)),
        _ => request.reply(&update(shared, task_id, task.status(), task.progress)),
    }
}

/// `AssignTask`: a known task is answered with its state and never run
/// again; a task that cannot run ends at once (and is remembered, failed);
/// any other is admitted, with a slot if one is free, and runs.
pub(super) fn assign(request: &Request, client: Option<&str>, payload: &Map<String, Value>) {
    let shared = request.shared;
    let peer = request.peer;
    let task_id = request.task_id.clone().expect("checked: a usable taskId");
    let text = |member: &str| {
        payload
            .get(member)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (service, operation) = (text("serviceName"), text("operation"));
    let no_parameters = Map::new();
    let parameters = payload
        .get("taskParameters")
        .and_then(Value::as_object)
        .unwrap_or(&no_parameters);
    let mut entries = shared.tasks.lock();
    if let Some(task) = entries.get(&task_id) {
        return answer_known(request, &task_id, task);
    }
    let job = if shared.allows(client, service, operation) {
        prepare(shared, service, operation, parameters)
    } else {
        Err(("FORBIDDEN", "this client may not run that operation".into()))
    };
    let wake = Arc::new(Notify::new());
    let job = match job {
        Ok(job) => job,
        Err((code, reason)) => {
            let terminal = Terminal::new(
                shared,
                Outcome::Failed,
                failed_payload(&task_id, code, &reason),
            );
            request.ack(true);
            peer.send_text(terminal.text.clone());
            let task = Task {
                owner: Arc::clone(peer),
                phase: Phase::Done(terminal),
                progress: 0,
                wake,
                losing_cancels: Vec::new(),
            };
            entries.insert(task_id, task);
            return;
        }
    };
    // Taken under the lock, so a task is Queued exactly when no slot was free.
    let permit = Arc::clone(&shared.tasks.slots).try_acquire_owned().ok();
    request.ack(false);
    if shared.switch() == Switch::AllStatusUpdates {
        peer.send(&update(shared, &task_id, "Accepted", 0));
        if permit.is_none() {
            peer.send(&update(shared, &task_id, "Queued", 0));
        }
    }
    let task = Task {
        owner: Arc::clone(peer),
        phase: if permit.is_some() {
            Phase::Running
        } else {
            Phase::Queued
        },
        progress: 0,
        wake: Arc::clone(&wake),
        losing_cancels: Vec::new(),
    };
    entries.insert(task_id.clone(), task);
    drop(entries);
    shared
        .tasks
        .spawn(run(Arc::clone(shared), task_id, job, permit, wake));
}

/// `CancelTask`: a live task ends now in `Cancelled` (sent to its owner and
/// to the canceller), unless the switch makes the cancel lose the race.
pub(super) fn cancel(request: &Request, task_id: &str) {
    let shared = request.shared;
    let mut entries = shared.tasks.lock();
    let Some(task) = entries.get_mut(task_id) else {
        return request.error("TASK_NOT_FOUND", "no such task here");
    };
    if let Phase::Done(_) = task.phase {
        return request.error(
            finished_cancel_code(shared),
            "the task has already finished",
        );
    }
    request.ack(false);
    if matches!(
        shared.switch(),
        Switch::CancelLosesRace | Switch::CancelLosesRaceSilently
    ) {
        task.losing_cancels.push(LosingCancel {
            peer: Arc::clone(request.peer),
            related: request.message_id.clone(),
        });
        return;
    }
    let payload = status_payload(task_id, "Cancelled", task.progress);
    let terminal = Terminal::new(shared, Outcome::Cancelled, payload);
    task.owner.send_text(terminal.text.clone());
    if request.peer.id != task.owner.id {
        request.peer.send_text(terminal.text.clone());
    }
    task.phase = Phase::Done(terminal);
    task.wake.notify_one();
}

/// `GetStatus`: the live state, or the terminal message.
pub(super) fn status(request: &Request, task_id: &str) {
    let entries = request.shared.tasks.lock();
    match entries.get(task_id) {
        Some(task) => answer_known(request, task_id, task),
        None => request.error("TASK_NOT_FOUND", "no such task here"),
    }
}

/// `GetResult`: the outcome, once there is one.
pub(super) fn result(request: &Request, task_id: &str) {
    let shared = request.shared;
    let entries = shared.tasks.lock();
    let Some(task) = entries.get(task_id) else {
        return request.error("TASK_NOT_FOUND", "no such task here");
    };
    match &task.phase {
        Phase::Done(terminal) if terminal.outcome == Outcome::Cancelled => {
            request.error("CANCELLED", "the task was cancelled: it has no result")
        }
        Phase::Done(terminal) => request.reply_text(terminal.replay(shared)),
        _ => request.error("RESULT_NOT_READY", "the task is still running"),
    }
}

/// Runs one admitted task: waits for a slot unless it has one, then does
/// its job step by step, checking under the lock after each step that it
/// has not been cancelled. Stops at once on cancel or shutdown.
async fn run(
    shared: Arc<Shared>,
    task_id: String,
    job: Job,
    permit: Option<OwnedSemaphorePermit>,
    wake: Arc<Notify>,
) {
    let mut shutdown = shared.shutdown.clone();
    // Held until the task ends: the slot, and the advertised load.
    let _slot = match permit {
        Some(permit) => permit,
        None => tokio::select! {
            permit = Arc::clone(&shared.tasks.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = wake.notified() => return,
            () = stopped(&mut shutdown) => return,
        },
    };
    if !shared.tasks.start(&shared, &task_id) {
        return;
    }
    let (outcome, payload) = match job {
        Job::Sleep { duration_ms, steps } => {
            let step = Duration::from_millis(duration_ms / steps);
            for done in 1..=steps {
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    () = wake.notified() => return,
                    () = stopped(&mut shutdown) => return,
                }
                let progress = (done * 100 / steps) as u8;
                if !shared.tasks.progress(&shared, &task_id, progress) {
                    return;
                }
            }
            let data = json!({"sleptMs": duration_ms});
            (Outcome::Completed, result_payload(&task_id, data))
        }
        Job::Noop => (Outcome::Completed, result_payload(&task_id, json!({}))),
        Job::Fail { code } => {
            let payload = failed_payload(&task_id, &code, "the fail operation failed, as asked");
            (Outcome::Failed, payload)
        }
    };
    shared.tasks.finish(&shared, &task_id, outcome, payload);
}
