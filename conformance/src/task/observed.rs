//! What one run of the task suite has learnt about the target, shared by
//! every case and connection of the run: the messages that broke the schema
//! (for `task.envelope.valid-replies`), how fast the target answers and how
//! long its tasks take (the generated sessions pace their waits on it), why
//! the run cannot go on (a refused API key, a target that stopped accepting
//! connections), and what the running case is waiting for (a case that runs
//! out of time says so).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many timings of each kind are kept (the most recent).
const KEEP: usize = 64;

/// Connections in a row that could not be opened before the run stops
/// trying: a target that went away would otherwise cost every remaining
/// case its connect timeout.
const CONNECT_FAILURES_TO_STOP: u32 = 2;

/// Round trips and task durations seen so far.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    round_trips: Vec<Duration>,
    tasks: Vec<Duration>,
}

fn push(samples: &mut Vec<Duration>, sample: Duration) {
    if samples.len() == KEEP {
        samples.remove(0);
    }
    samples.push(sample);
}

impl Timing {
    /// The slowest recent round trip (a request and its answer), if any was
    /// seen: waits derived from it are generous on a loaded machine.
    pub fn round_trip(&self) -> Option<Duration> {
        self.round_trips.iter().max().copied()
    }

    /// The longest task seen, from its `AssignTask` to its terminal message.
    pub fn task(&self) -> Option<Duration> {
        self.tasks.iter().max().copied()
    }
}

/// What the running case waits for, and since when.
#[derive(Clone, Debug)]
struct Waiting {
    what: String,
    since: Instant,
}

/// The run's shared observations.
#[derive(Debug, Default)]
pub struct Observed {
    invalid: Mutex<Vec<String>>,
    timing: Mutex<Timing>,
    blocked: Mutex<Option<String>>,
    authentication: Mutex<Option<String>>,
    connect_failures: AtomicU32,
    probe_unanswered: AtomicBool,
    waiting: Mutex<Option<Waiting>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Observed {
    /// A message of the target broke the schema.
    pub fn invalid(&self, problem: String) {
        lock(&self.invalid).push(problem);
    }

    /// Every schema break seen so far.
    pub fn invalid_messages(&self) -> Vec<String> {
        lock(&self.invalid).clone()
    }

    /// A request was answered after `elapsed`.
    pub fn round_trip(&self, elapsed: Duration) {
        push(&mut lock(&self.timing).round_trips, elapsed);
    }

    /// A task ended `elapsed` after its `AssignTask` was sent.
    pub fn task_took(&self, elapsed: Duration) {
        push(&mut lock(&self.timing).tasks, elapsed);
    }

    /// The timings seen so far.
    pub fn timing(&self) -> Timing {
        lock(&self.timing).clone()
    }

    /// Why no case can run any more, if something said so.
    pub fn blocked(&self) -> Option<String> {
        lock(&self.blocked).clone()
    }

    /// From now on every case is a harness error with `reason`.
    pub fn block(&self, reason: String) {
        lock(&self.blocked).get_or_insert(reason);
    }

    /// Why authenticating with `--api-key` failed, once it did: the cases
    /// that need an authenticated connection stop at once with it.
    pub fn authentication_failed(&self) -> Option<String> {
        lock(&self.authentication).clone()
    }

    /// Authenticating with `--api-key` failed.
    pub fn fail_authentication(&self, reason: String) {
        lock(&self.authentication).get_or_insert(reason);
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

    /// Whether the target left a `GetStatus` probe unanswered once: later
    /// barriers then only listen for the settle time instead of waiting for
    /// an answer that does not come.
    pub fn probe_unanswered(&self) -> bool {
        self.probe_unanswered.load(Ordering::Relaxed)
    }

    /// A `GetStatus` probe went unanswered.
    pub fn mark_probe_unanswered(&self) {
        self.probe_unanswered.store(true, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_keep_the_slowest_recent_sample() {
        let observed = Observed::default();
        assert!(observed.timing().round_trip().is_none());
        observed.round_trip(Duration::from_millis(3));
        observed.round_trip(Duration::from_millis(9));
        observed.round_trip(Duration::from_millis(1));
        assert_eq!(
            observed.timing().round_trip(),
            Some(Duration::from_millis(9))
        );
        for _ in 0..KEEP {
            observed.round_trip(Duration::from_millis(2));
        }
        // The old 9 ms sample has aged out.
        assert_eq!(
            observed.timing().round_trip(),
            Some(Duration::from_millis(2))
        );
        observed.task_took(Duration::from_millis(300));
        assert_eq!(observed.timing().task(), Some(Duration::from_millis(300)));
    }

    #[test]
    fn connection_failures_in_a_row_block_the_run() {
        let observed = Observed::default();
        observed.connect_failed("refused");
        observed.connected();
        observed.connect_failed("refused");
        assert!(observed.blocked().is_none(), "not in a row");
        observed.connect_failed("refused again");
        let reason = observed.blocked().expect("blocked");
        assert!(reason.contains("refused again"), "{reason}");
        // The first reason stays.
        observed.block("later".into());
        assert_eq!(observed.blocked(), Some(reason));
    }

    #[test]
    fn the_last_wait_names_what_and_how_long() {
        let observed = Observed::default();
        assert!(observed.last_wait().is_none());
        observed.waiting_for("an answer to GetStatus");
        assert!(observed
            .last_wait()
            .unwrap()
            .starts_with("an answer to GetStatus (for "));
        observed.case_started();
        assert!(observed.last_wait().is_none());
    }
}
