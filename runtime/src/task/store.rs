//! The provider's task table: every task it has accepted or refused, its
//! state, and the connections that hear about it.
//!
//! One lock guards the table, and every message about a task is queued to
//! its subscribers while that lock is held, so each connection sees a
//! task's messages in state order and nothing after its terminal message.
//! Finished tasks are kept for a retention period (and up to a count) so
//! re-assigns, `GetStatus` and `GetResult` still find them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use specwire_protocol::task::TaskStatusUpdatePayloadStatus;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::handler::{Progress, TaskError, TaskOutput};
use super::messages::{self, TaskReport, TaskState};
use crate::discovery::Presence;
use specwire_protocol::discovery::ServiceAdvertisementStatus;

pub(crate) use crate::net::{Outbox, Text};

/// A connection that hears about a task.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    pub(crate) connection: u64,
    pub(crate) outbox: Outbox<Text>,
}

/// Who asks: the authenticated client (if any) and the connection.
#[derive(Clone, Debug)]
pub(crate) struct Requester<'a> {
    pub(crate) owner: Option<&'a str>,
    pub(crate) subscriber: &'a Subscriber,
}

#[derive(Debug)]
struct Entry {
    /// The authenticated client that assigned it; others cannot see it.
    owner: Option<String>,
    /// `originalClientId` to echo.
    client_id: Option<String>,
    state: TaskState,
    progress: u8,
    note: Option<String>,
    subscribers: Vec<Subscriber>,
    cancel: CancellationToken,
}

impl Entry {
    fn report(&self, task_id: &str) -> String {
        messages::report(&TaskReport {
            task_id,
            state: &self.state,
            progress: self.progress,
            note: self.note.as_deref(),
            client_id: self.client_id.as_deref(),
        })
    }

    fn visible_to(&self, owner: Option<&str>) -> bool {
        self.owner.is_none() || self.owner.as_deref() == owner
    }

    fn subscribe(&mut self, subscriber: &Subscriber) {
        self.subscribers.retain(|known| !known.outbox.is_closed());
        if !self
            .subscribers
            .iter()
            .any(|known| known.connection == subscriber.connection)
        {
            self.subscribers.push(subscriber.clone());
        }
    }

    fn publish(&mut self, text: &str) {
        // One buffer for every subscriber. A closed outbox is a gone
        // connection: forget it.
        let text = Text::from(text);
        self.subscribers
            .retain(|subscriber| subscriber.outbox.send(text.clone()).is_ok());
    }
}

/// What an `AssignTask` for a task id found.
pub(crate) enum Admission {
    /// New: run it with this cancellation token.
    Accepted(CancellationToken),
    /// Known: its current state was sent to the requester.
    Known,
    /// Known but assigned by another authenticated client.
    Foreign,
}

/// What `CancelTask` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancellation {
    Cancelled,
    AlreadyFinished,
    NotFound,
}

/// What `GetStatus`/`GetResult` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The report was sent.
    Sent,
    /// `GetResult` before the end.
    NotReady,
    NotFound,
}

/// How long and how many finished tasks are remembered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retention {
    pub(crate) keep_for: Duration,
    pub(crate) max_finished: usize,
}

struct Table {
    tasks: HashMap<String, Entry>,
    /// Finished task ids, oldest first.
    finished: VecDeque<(Instant, String)>,
    /// Tasks accepted and not ended.
    active: usize,
}

pub(crate) struct TaskStore {
    table: Mutex<Table>,
    retention: Retention,
    capacity: usize,
    presence: watch::Sender<Presence>,
    /// Cancelled on provider shutdown; every task token is its child.
    shutdown: CancellationToken,
}

impl TaskStore {
    pub(crate) fn new(
        retention: Retention,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Arc<TaskStore> {
        let (presence, _) = watch::channel(Presence::IDLE);
        Arc::new(TaskStore {
            table: Mutex::new(Table {
                tasks: HashMap::new(),
                finished: VecDeque::new(),
                active: 0,
            }),
            retention,
            capacity: capacity.max(1),
            presence,
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every
        // mutation is a single assignment), so poisoning is not fatal.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn presence(&self) -> watch::Receiver<Presence> {
        self.presence.subscribe()
    }

    fn publish_presence(&self, active: usize) {
        let load = (active as f64 / self.capacity as f64).min(1.0);
        let status = if active >= self.capacity {
            ServiceAdvertisementStatus::Busy
        } else {
            ServiceAdvertisementStatus::Online
        };
        self.presence.send_if_modified(|presence| {
            let next = Presence { status, load };
            if *presence == next || presence.status == ServiceAdvertisementStatus::Offline {
                false
            } else {
                *presence = next;
                true
            }
        });
    }

    /// Marks the provider offline (shutdown).
    pub(crate) fn go_offline(&self) {
        self.presence.send_replace(Presence {
            status: ServiceAdvertisementStatus::Offline,
            load: 0.0,
        });
    }

    /// Sends the known task's state to `requester` and subscribes it.
    pub(crate) fn attach_if_known(
        &self,
        task_id: &str,
        requester: &Requester<'_>,
    ) -> Option<Admission> {
        let mut table = self.lock();
        let entry = table.tasks.get_mut(task_id)?;
        Some(Self::attach(entry, task_id, requester))
    }

    fn attach(entry: &mut Entry, task_id: &str, requester: &Requester<'_>) -> Admission {
        if !entry.visible_to(requester.owner) {
            return Admission::Foreign;
        }
        let _ = requester
            .subscriber
            .outbox
            .send(entry.report(task_id).into());
        if !entry.state.is_terminal() {
            entry.subscribe(requester.subscriber);
        }
        Admission::Known
    }

    /// Records a new task as `Accepted`, or finds it already known (a
    /// concurrent duplicate). `Accepted` is announced only with a `note`
    /// (unadvertised parameters): otherwise the next message (`Queued`,
    /// `Processing` or the outcome) follows at once, and a task that ends
    /// on its first poll costs two messages (`Ack`, outcome), not four.
    pub(crate) fn admit(
        &self,
        task_id: &str,
        client_id: Option<&str>,
        note: Option<String>,
        requester: &Requester<'_>,
    ) -> Admission {
        let mut table = self.lock();
        if let Some(entry) = table.tasks.get_mut(task_id) {
            return Self::attach(entry, task_id, requester);
        }
        let cancel = self.shutdown.child_token();
        let mut entry = Entry {
            owner: requester.owner.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            state: TaskState::Waiting(TaskStatusUpdatePayloadStatus::Accepted),
            progress: 0,
            note,
            subscribers: vec![requester.subscriber.clone()],
            cancel: cancel.clone(),
        };
        if entry.note.is_some() {
            let report = entry.report(task_id);
            entry.publish(&report);
            entry.note = None;
        }
        table.tasks.insert(task_id.to_owned(), entry);
        table.active += 1;
        let active = table.active;
        self.evict(&mut table);
        drop(table);
        self.publish_presence(active);
        Admission::Accepted(cancel)
    }

    /// Records a task that cannot run and sends its `TaskFailed`.
    pub(crate) fn refuse(
        &self,
        task_id: &str,
        client_id: Option<&str>,
        failure: TaskError,
        requester: &Requester<'_>,
    ) -> Admission {
        let mut table = self.lock();
        if let Some(entry) = table.tasks.get_mut(task_id) {
            return Self::attach(entry, task_id, requester);
        }
        let mut entry = Entry {
            owner: requester.owner.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            state: TaskState::Failed(failure),
            progress: 0,
            note: None,
            subscribers: vec![requester.subscriber.clone()],
            cancel: CancellationToken::new(),
        };
        let report = entry.report(task_id);
        entry.publish(&report);
        entry.subscribers.clear();
        table.tasks.insert(task_id.to_owned(), entry);
        table
            .finished
            .push_back((Instant::now(), task_id.to_owned()));
        self.evict(&mut table);
        Admission::Known
    }

    /// Moves a waiting task to `status` (`Queued`/`Processing`). False when
    /// it already ended (cancelled while waiting).
    pub(crate) fn advance(&self, task_id: &str, state: TaskState) -> bool {
        let mut table = self.lock();
        let Some(entry) = table.tasks.get_mut(task_id) else {
            return false;
        };
        if entry.state.is_terminal() {
            return false;
        }
        if entry.state != state {
            entry.state = state;
            let report = entry.report(task_id);
            entry.publish(&report);
        }
        true
    }

    /// Records progress; lower values than the last one and reports after
    /// the end are dropped.
    pub(crate) fn progress(&self, task_id: &str, progress: Progress) {
        let mut table = self.lock();
        let Some(entry) = table.tasks.get_mut(task_id) else {
            return;
        };
        if entry.state.is_terminal() || progress.percent < entry.progress {
            return;
        }
        if progress.percent == entry.progress && progress.message == entry.note {
            return;
        }
        entry.progress = progress.percent;
        entry.note = progress.message;
        entry.state = TaskState::Processing;
        let report = entry.report(task_id);
        entry.publish(&report);
    }

    /// Ends a task with its handler's outcome, unless it already ended
    /// (cancelled). Returns whether this call ended it.
    pub(crate) fn finish(&self, task_id: &str, outcome: Result<TaskOutput, TaskError>) -> bool {
        let state = match outcome {
            Ok(output) => TaskState::Completed(output),
            Err(failure) => TaskState::Failed(failure),
        };
        self.end(task_id, state, None)
    }

    fn end(&self, task_id: &str, state: TaskState, note: Option<String>) -> bool {
        let mut table = self.lock();
        let Some(entry) = table.tasks.get_mut(task_id) else {
            return false;
        };
        if entry.state.is_terminal() {
            return false;
        }
        entry.state = state;
        if note.is_some() {
            entry.note = note;
        }
        let report = entry.report(task_id);
        entry.publish(&report);
        entry.subscribers.clear();
        entry.cancel.cancel();
        table
            .finished
            .push_back((Instant::now(), task_id.to_owned()));
        table.active = table.active.saturating_sub(1);
        let active = table.active;
        self.evict(&mut table);
        drop(table);
        self.publish_presence(active);
        true
    }

    /// `CancelTask`: ends a running or waiting task as `Cancelled` (sent to
    /// its subscribers and to the requester) and cancels its handler.
    pub(crate) fn cancel(&self, task_id: &str, requester: &Requester<'_>) -> Cancellation {
        {
            let mut table = self.lock();
            let Some(entry) = table.tasks.get_mut(task_id) else {
                return Cancellation::NotFound;
            };
            if !entry.visible_to(requester.owner) {
                return Cancellation::NotFound;
            }
            if entry.state.is_terminal() {
                return Cancellation::AlreadyFinished;
            }
            entry.subscribe(requester.subscriber);
        }
        if self.end(task_id, TaskState::Cancelled, None) {
            Cancellation::Cancelled
        } else {
            Cancellation::AlreadyFinished
        }
    }

    /// Whether `task_id` is known and belongs to another client.
    pub(crate) fn is_foreign(&self, task_id: &str, owner: Option<&str>) -> bool {
        self.lock()
            .tasks
            .get(task_id)
            .is_some_and(|entry| !entry.visible_to(owner))
    }

    /// Ends the task as `Cancelled` with `note` unless it already ended.
    pub(crate) fn cancel_open(&self, task_id: &str, note: &str) {
        self.end(task_id, TaskState::Cancelled, Some(note.to_owned()));
    }

    /// Ends every task that has not ended (provider shutdown).
    pub(crate) fn cancel_all(&self, note: &str) {
        let open: Vec<String> = {
            let table = self.lock();
            table
                .tasks
                .iter()
                .filter(|(_, entry)| !entry.state.is_terminal())
                .map(|(id, _)| id.clone())
                .collect()
        };
        for task_id in open {
            self.end(&task_id, TaskState::Cancelled, Some(note.to_owned()));
        }
    }

    /// `GetStatus` (`result_only == false`) or `GetResult`: sends the
    /// task's report to the requester and subscribes it to later updates.
    pub(crate) fn lookup(
        &self,
        task_id: &str,
        result_only: bool,
        requester: &Requester<'_>,
    ) -> Lookup {
        let mut table = self.lock();
        let Some(entry) = table.tasks.get_mut(task_id) else {
            return Lookup::NotFound;
        };
        if !entry.visible_to(requester.owner) {
            return Lookup::NotFound;
        }
        if result_only && !entry.state.is_terminal() {
            entry.subscribe(requester.subscriber);
            return Lookup::NotReady;
        }
        match Self::attach(entry, task_id, requester) {
            Admission::Known => Lookup::Sent,
            _ => Lookup::NotFound,
        }
    }

    /// Tasks accepted and not ended.
    pub(crate) fn active(&self) -> usize {
        self.lock().active
    }

    /// Forgets finished tasks past the retention period or count.
    fn evict(&self, table: &mut Table) {
        let now = Instant::now();
        while let Some((finished_at, _)) = table.finished.front() {
            let too_many = table.finished.len() > self.retention.max_finished;
            let too_old = now.saturating_duration_since(*finished_at) > self.retention.keep_for;
            if !(too_many || too_old) {
                break;
            }
            if let Some((_, task_id)) = table.finished.pop_front() {
                table.tasks.remove(&task_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use specwire_protocol::JsonProtocol;

    fn store() -> Arc<TaskStore> {
        TaskStore::new(
            Retention {
                keep_for: Duration::from_secs(3600),
                max_finished: 2,
            },
            2,
            CancellationToken::new(),
        )
    }

    fn subscriber(connection: u64) -> (Subscriber, Outbox<Text>) {
        let outbox = Outbox::new();
        (
            Subscriber {
                connection,
                outbox: outbox.clone(),
            },
            outbox,
        )
    }

    fn drain(inbox: &mut Outbox<Text>) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        for text in inbox.take() {
            let value: Value = serde_json::from_str(&text).unwrap();
            specwire_protocol::task::Message::recognise(&value, None).unwrap();
            let kind = value["type"].as_str().unwrap().to_owned();
            let status = value["payload"]["status"].as_str().unwrap_or("").to_owned();
            seen.push((kind, status));
        }
        seen
    }

    fn pair(kind: &str, status: &str) -> (String, String) {
        (kind.to_owned(), status.to_owned())
    }

    #[test]
    fn life_of_a_task_ends_once() {
        let store = store();
        let (sub, mut inbox) = subscriber(1);
        let requester = Requester {
            owner: None,
            subscriber: &sub,
        };
        assert!(matches!(
            store.admit("t", None, None, &requester),
            Admission::Accepted(_)
        ));
        assert!(store.advance("t", TaskState::Processing));
        store.progress(
            "t",
            Progress {
                percent: 50,
                message: None,
            },
        );
        store.progress(
            "t",
            Progress {
                percent: 40,
                message: None,
            },
        );
        assert!(store.finish("t", Ok(TaskOutput::new())));
        assert!(!store.finish("t", Err(TaskError::internal("late"))));
        store.progress(
            "t",
            Progress {
                percent: 90,
                message: None,
            },
        );
        assert_eq!(store.cancel("t", &requester), Cancellation::AlreadyFinished);
        assert_eq!(
            drain(&mut inbox),
            [
                pair("TaskStatusUpdate", "Processing"),
                pair("TaskStatusUpdate", "Processing"),
                pair("TaskResult", "Completed"),
            ]
        );
        assert_eq!(store.active(), 0);
    }

    #[test]
    fn duplicates_get_the_current_state_and_owners_are_respected() {
        let store = store();
        let (a, mut inbox_a) = subscriber(1);
        let (b, mut inbox_b) = subscriber(2);
        let alice = Requester {
            owner: Some("alice"),
            subscriber: &a,
        };
        let bob = Requester {
            owner: Some("bob"),
            subscriber: &b,
        };
        assert!(matches!(
            store.admit("t", None, None, &alice),
            Admission::Accepted(_)
        ));
        assert!(matches!(
            store.admit("t", None, None, &alice),
            Admission::Known
        ));
        assert!(matches!(
            store.admit("t", None, None, &bob),
            Admission::Foreign
        ));
        assert_eq!(store.lookup("t", false, &bob), Lookup::NotFound);
        assert_eq!(store.cancel("t", &bob), Cancellation::NotFound);
        assert_eq!(store.lookup("t", true, &alice), Lookup::NotReady);
        assert_eq!(store.cancel("t", &alice), Cancellation::Cancelled);
        assert_eq!(
            drain(&mut inbox_a),
            [
                pair("TaskStatusUpdate", "Accepted"),
                pair("TaskStatusUpdate", "Cancelled"),
            ]
        );
        assert!(drain(&mut inbox_b).is_empty());
    }

    #[test]
    fn finished_tasks_are_evicted_by_count() {
        let store = store();
        let (sub, _inbox) = subscriber(1);
        let requester = Requester {
            owner: None,
            subscriber: &sub,
        };
        for id in ["a", "b", "c"] {
            store.refuse(id, None, TaskError::internal("x"), &requester);
        }
        assert_eq!(store.lookup("a", false, &requester), Lookup::NotFound);
        assert_eq!(store.lookup("c", false, &requester), Lookup::Sent);
    }

    #[test]
    fn presence_follows_load() {
        let store = store();
        let presence = store.presence();
        let (sub, _inbox) = subscriber(1);
        let requester = Requester {
            owner: None,
            subscriber: &sub,
        };
        store.admit("a", None, None, &requester);
        assert_eq!(presence.borrow().load, 0.5);
        store.admit("b", None, None, &requester);
        assert_eq!(presence.borrow().status, ServiceAdvertisementStatus::Busy);
        store.cancel_all("bye");
        assert_eq!(*presence.borrow(), Presence::IDLE);
        store.go_offline();
        assert_eq!(
            presence.borrow().status,
            ServiceAdvertisementStatus::Offline
        );
    }
}
