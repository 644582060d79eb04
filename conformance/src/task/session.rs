//! A task connection as a case sees it: a [`Session`] of the task protocol
//! (every frame recorded, every message checked both ways) plus what only
//! task cases need: when each task was assigned (for the run's task
//! durations), the `GetStatus` barrier, and the still-open check.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

use specwire_protocol::task::Message;
use specwire_runtime::task::messages::{self, Assignment, Built};

use super::observed::Observed;
use crate::session::Session;
pub use crate::session::{Event, Msg, Outgoing};
use crate::verdict::Stop;

/// What a task message says about tasks.
pub trait TaskMsg {
    /// `payload.taskId`.
    fn task_id(&self) -> Option<&str>;
    /// Whether it is about `task_id`.
    fn is_about(&self, task_id: &str) -> bool;
    /// `payload.progressPercentage`.
    fn progress(&self) -> Option<i64>;
    /// A terminal message: `TaskResult`, `TaskFailed`, or a
    /// `TaskStatusUpdate` with status `Cancelled`.
    fn is_terminal(&self) -> bool;
}

impl TaskMsg for Msg {
    fn task_id(&self) -> Option<&str> {
        self.field("taskId")
    }

    fn is_about(&self, task_id: &str) -> bool {
        self.task_id() == Some(task_id)
    }

    fn progress(&self) -> Option<i64> {
        self.payload()
            .get("progressPercentage")
            .and_then(serde_json::Value::as_i64)
    }

    fn is_terminal(&self) -> bool {
        match self.kind() {
            "TaskResult" | "TaskFailed" => true,
            "TaskStatusUpdate" => self.status() == Some("Cancelled"),
            _ => false,
        }
    }
}

/// A connection to a task provider.
pub struct Conn {
    session: Session<Message>,
    observed: Arc<Observed>,
    /// When each task assigned on this connection was first assigned.
    assigned: HashMap<String, Instant>,
}

impl Deref for Conn {
    type Target = Session<Message>;

    fn deref(&self) -> &Session<Message> {
        &self.session
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Session<Message> {
        &mut self.session
    }
}

impl Conn {
    pub(crate) fn new(session: Session<Message>, observed: Arc<Observed>) -> Conn {
        Conn {
            session,
            observed,
            assigned: HashMap::new(),
        }
    }

    /// Sends an `AssignTask` (with `acknowledgment_id`, if any) and
    /// remembers when, so the task's duration can be measured at its end.
    pub async fn assign(
        &mut self,
        assignment: &Assignment,
        acknowledgment_id: Option<&str>,
    ) -> Result<Built, Stop> {
        let message = messages::assign(assignment, acknowledgment_id);
        self.send(&message.text).await?;
        self.assigned
            .entry(assignment.task_id.clone())
            .or_insert_with(Instant::now);
        Ok(message)
    }

    /// The terminal message of `task_id` arrived now: its duration goes
    /// into the run's timings (the generated sessions pace on them).
    pub fn ended(&self, task_id: &str) {
        if let Some(sent) = self.assigned.get(task_id) {
            self.observed.task_took(sent.elapsed());
        }
    }

    /// Sends a `GetStatus` for a task nobody assigned and reads until the
    /// target answers it (any reply naming that task or that message),
    /// then `settle` more: returns everything else that arrived. Messages
    /// the target queued before answering the probe are in it.
    ///
    /// A target that leaves the probe unanswered (another case's failure)
    /// costs one reply timeout in the whole run: later barriers only listen
    /// for `settle`.
    pub async fn barrier(&mut self, settle: std::time::Duration) -> Result<Vec<Msg>, Stop> {
        if self.observed.probe_unanswered() {
            self.note("the target left a GetStatus probe unanswered earlier: only listening");
            return self.collect(settle).await;
        }
        let probe_task = format!("conformance-probe-{}", specwire_runtime::clock::new_id());
        let probe = messages::get_status(&probe_task);
        self.send(&probe.text).await?;
        let sent = Instant::now();
        let message_id = probe.message_id.clone();
        let answered = |msg: &Msg| msg.is_about(&probe_task) || msg.related() == Some(&message_id);
        let timeout = self.reply_timeout;
        let mut seen = match self
            .expect("an answer to a GetStatus probe", timeout, answered)
            .await
        {
            Ok((_, before)) => {
                self.observed.round_trip(sent.elapsed());
                before
            }
            Err(Stop::Fail(reason)) if reason.starts_with("no ") => {
                // A target that does not answer GetStatus is another
                // case's failure; what arrived meanwhile is still the data.
                self.note("the probe got no answer; using what arrived meanwhile");
                self.observed.mark_probe_unanswered();
                Vec::new()
            }
            Err(other) => return Err(other),
        };
        seen.extend(self.collect(settle).await?);
        Ok(seen)
    }

    /// Checks that the connection is still open and usable: the target
    /// answers a `GetStatus` probe with anything at all, or a WebSocket
    /// ping with a pong, whichever comes first (a target that ignores one
    /// of them is another case's failure).
    pub async fn still_open(&mut self, after: &str) -> Result<(), Stop> {
        let closed = || Stop::Fail(format!("the target closed the connection after {after}"));
        if self.is_closed() {
            return Err(closed());
        }
        let probe = messages::get_status("conformance-still-open");
        self.send(&probe.text).await.map_err(|_| closed())?;
        self.ping(b"conformance-still-open")
            .await
            .map_err(|_| closed())?;
        self.waiting_for("any answer to a GetStatus probe or a ping");
        let timeout = self.reply_timeout;
        match self.next(timeout).await {
            Some(Event::Message(_)) | Some(Event::Pong(_)) => Ok(()),
            Some(Event::Closed(code)) => Err(Stop::Fail(format!(
                "the target closed the connection ({}) after {after}",
                code.map_or("no close code".into(), |code| format!("code {code}"))
            ))),
            None => Err(Stop::Fail(format!(
                "the connection is not usable after {after}: neither a GetStatus probe nor a ping was answered within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }
}
