//! What one run of the task suite has learnt about the target beside the
//! generic [`RunLog`](crate::suite::RunLog), shared by every case and
//! connection of the run: how fast the target answers and how long its
//! tasks take (the generated sessions pace their waits on it), whether
//! authenticating with `--api-key` failed, whether it leaves `GetStatus`
//! probes unanswered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::suite::lock;

/// How many timings of each kind are kept (the most recent).
const KEEP: usize = 64;

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

/// The task run's shared observations.
#[derive(Debug, Default)]
pub struct Observed {
    timing: Mutex<Timing>,
    authentication: Mutex<Option<String>>,
    probe_unanswered: AtomicBool,
}

impl Observed {
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

    /// Why authenticating with `--api-key` failed, once it did: the cases
    /// that need an authenticated connection stop at once with it.
    pub fn authentication_failed(&self) -> Option<String> {
        lock(&self.authentication).clone()
    }

    /// Authenticating with `--api-key` failed.
    pub fn fail_authentication(&self, reason: String) {
        lock(&self.authentication).get_or_insert(reason);
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
}
