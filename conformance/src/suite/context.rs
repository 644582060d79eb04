//! What every family's case context embeds ([`CaseContext`]: the case's
//! transcript, the run's invalid-message log, notes, the failed generated
//! session), and what one run has learnt that is not about any family
//! ([`RunLog`]: schema breaks, why the run cannot go on, the circuit
//! breaker on connections, what the running case waits for).

use std::fmt::Display;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::transcript::{Direction, Transcript};

/// Connections in a row that could not be opened before the run stops
/// trying: a target that went away would otherwise cost every remaining
/// case its connect timeout.
const CONNECT_FAILURES_TO_STOP: u32 = 2;

/// Locks `mutex`, taking the data of a poisoned one (a panicking case
/// must not take the report with it).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the running case waits for, and since when.
#[derive(Clone, Debug)]
struct Waiting {
    what: String,
    since: Instant,
}

/// What one run has learnt, whatever the family, shared by every case and
/// connection of the run.
#[derive(Debug, Default)]
pub struct RunLog {
    invalid: Mutex<Vec<String>>,
    blocked: Mutex<Option<String>>,
    connect_failures: AtomicU32,
    waiting: Mutex<Option<Waiting>>,
}

impl RunLog {
    /// A message of the target broke the schema.
    pub fn invalid(&self, problem: String) {
        lock(&self.invalid).push(problem);
    }

    /// Every schema break seen so far.
    pub fn invalid_messages(&self) -> Vec<String> {
        lock(&self.invalid).clone()
    }

    /// Why no case can run any more, if something said so.
    pub fn blocked(&self) -> Option<String> {
        lock(&self.blocked).clone()
    }

    /// From now on every case is a harness error with `reason` (the first
    /// reason stays).
    pub fn block(&self, reason: String) {
        lock(&self.blocked).get_or_insert(reason);
    }

    /// A connection could not be opened; after a few in a row the run is
    /// blocked with `reason`.
    pub fn connect_failed(&self, reason: &str) {
        let failures = self.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= CONNECT_FAILURES_TO_STOP {
            self.block(format!(
                "the target stopped accepting connections ({failures} attempts in a row failed; the last: {reason})"
            ));
        }
    }

    /// A connection was opened.
    pub fn connected(&self) {
        self.connect_failures.store(0, Ordering::Relaxed);
    }

    /// The running case now waits for `what`.
    pub fn waiting_for(&self, what: &str) {
        *lock(&self.waiting) = Some(Waiting {
            what: what.to_owned(),
            since: Instant::now(),
        });
    }

    /// A new case starts: it waits for nothing yet.
    pub fn case_started(&self) {
        *lock(&self.waiting) = None;
    }

    /// What the running case was waiting for, and for how long, for the
    /// reason of a case that ran out of time.
    pub fn last_wait(&self) -> Option<String> {
        lock(&self.waiting).as_ref().map(|waiting| {
            format!(
                "{} (for {})",
                waiting.what,
                humantime::format_duration(round_to_millis(waiting.since.elapsed()))
            )
        })
    }
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX))
}

/// A generated session that failed: what its replay bundle holds. The
/// steps are kept as JSON (any family's steps), with their one-line
/// description.
#[derive(Clone, Debug)]
pub struct FailedSession {
    /// The session's seed.
    pub seed: u64,
    /// Its steps (shrunk as far as the budget allowed), as JSON.
    pub steps: Vec<Value>,
    /// The steps, `, `-separated, as the failure reason shows them.
    pub described: String,
    /// Why it failed.
    pub reason: String,
}

/// The part of a case's context that every family has: the case ID, the
/// transcript (shared with the case's sessions), the run's log, the
/// connection numbering, and the failed generated session, if any.
#[derive(Debug)]
pub struct CaseContext {
    case: &'static str,
    transcript: Arc<Mutex<Transcript>>,
    log: Arc<RunLog>,
    connections: u32,
    failed_session: Option<FailedSession>,
}

impl CaseContext {
    /// The context of case `case` in the run of `log`.
    pub fn new(case: &'static str, log: Arc<RunLog>) -> CaseContext {
        CaseContext {
            case,
            transcript: Arc::new(Mutex::new(Transcript::new())),
            log,
            connections: 0,
            failed_session: None,
        }
    }

    /// The case's ID.
    pub fn case(&self) -> &'static str {
        self.case
    }

    /// What the run has learnt so far, whatever the family.
    pub fn log(&self) -> &Arc<RunLog> {
        &self.log
    }

    /// The transcript so far.
    pub fn transcript(&self) -> Transcript {
        lock(&self.transcript).clone()
    }

    /// The transcript itself, for the case's sessions to record into.
    pub fn shared_transcript(&self) -> Arc<Mutex<Transcript>> {
        Arc::clone(&self.transcript)
    }

    /// Records an entry.
    pub fn record(&self, direction: Direction, connection: u32, kind: &str, data: &str) {
        lock(&self.transcript).record(direction, connection, kind, data);
    }

    /// A remark in the transcript, about no connection in particular.
    pub fn note(&self, text: &str) {
        self.note_on(0, text);
    }

    /// A remark about `connection`.
    pub fn note_on(&self, connection: u32, text: &str) {
        lock(&self.transcript).note(connection, text);
    }

    /// A number for the next socket or connection in the transcript.
    pub fn next_connection(&mut self) -> u32 {
        self.connections += 1;
        self.connections
    }

    /// Appends another transcript (a session of another family's context),
    /// its connections renumbered after this one's.
    pub fn absorb(&mut self, other: &Transcript) {
        let base = self.connections;
        let highest = other
            .entries()
            .iter()
            .map(|entry| entry.connection)
            .max()
            .unwrap_or(0);
        lock(&self.transcript).absorb(other, |connection| {
            if connection == 0 {
                0
            } else {
                base + connection
            }
        });
        self.connections += highest;
    }

    /// A message of the target broke the schema: noted here and logged for
    /// the run's validity case.
    pub fn invalid(&self, connection: u32, what: &str, problem: &str, logged: String) {
        self.note_on(
            connection,
            &format!("that {what} breaks the schema: {problem}"),
        );
        self.log.invalid(logged);
    }

    /// Every schema-breaking message of the target seen in the run so far.
    pub fn invalid_messages(&self) -> Vec<String> {
        self.log.invalid_messages()
    }

    /// The generated session `seed` failed with `steps` (so far): a replay
    /// bundle is written whatever ends the case.
    pub fn session_failed<S: Serialize + Display>(&mut self, seed: u64, steps: &[S], reason: &str) {
        self.failed_session = Some(FailedSession {
            seed,
            steps: steps
                .iter()
                .map(|step| {
                    serde_json::to_value(step).unwrap_or_else(|error| {
                        Value::String(format!("{step} (not serializable: {error})"))
                    })
                })
                .collect(),
            described: join(steps),
            reason: reason.to_owned(),
        });
    }

    /// The failed generated session, if any.
    pub fn failed_session(&self) -> Option<&FailedSession> {
        self.failed_session.as_ref()
    }

    /// Takes the failed generated session out.
    pub fn take_failed_session(&mut self) -> Option<FailedSession> {
        self.failed_session.take()
    }
}

/// `steps`, `, `-separated.
pub fn join<S: Display>(steps: &[S]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_in_a_row_block_the_run() {
        let log = RunLog::default();
        log.connect_failed("refused");
        log.connected();
        log.connect_failed("refused");
        assert!(log.blocked().is_none(), "not in a row");
        log.connect_failed("refused again");
        let reason = log.blocked().expect("blocked");
        assert!(reason.contains("refused again"), "{reason}");
        // The first reason stays.
        log.block("later".into());
        assert_eq!(log.blocked(), Some(reason));
    }

    #[test]
    fn the_last_wait_names_what_and_how_long() {
        let log = RunLog::default();
        assert!(log.last_wait().is_none());
        log.waiting_for("an answer to GetStatus");
        assert!(log
            .last_wait()
            .unwrap()
            .starts_with("an answer to GetStatus (for "));
        log.case_started();
        assert!(log.last_wait().is_none());
    }

    #[test]
    fn absorbed_connections_follow_this_contexts() {
        let mut context = CaseContext::new("x.y.z", Arc::default());
        assert_eq!(context.next_connection(), 1);
        let mut other = Transcript::new();
        other.note(2, "elsewhere");
        other.note(0, "general");
        context.absorb(&other);
        let connections: Vec<u32> = context
            .transcript()
            .entries()
            .iter()
            .map(|entry| entry.connection)
            .collect();
        assert_eq!(connections, [3, 0]);
        assert_eq!(context.next_connection(), 4);
    }
}
