//! What a case concluded, and the result record the reports are made of.

use std::time::Duration;

use serde::Serialize;
use specwire_protocol::conformance::CaseSpec;

use crate::transcript::Transcript;

/// A case's verdict. Failures, skips and harness errors are kept apart:
/// only a `Fail` says something about the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The target did what the spec says.
    Pass,
    /// The target broke the spec point; `reason` says how.
    Fail {
        /// What was expected and what happened.
        reason: String,
    },
    /// The case could not run against this target as configured (an option
    /// it needs was not given, ...).
    Skip {
        /// Why, naming the missing option.
        reason: String,
    },
    /// The suite could not carry out the case (the target could not be
    /// reached, a local socket failed): says nothing about conformance.
    HarnessError {
        /// What went wrong.
        reason: String,
    },
}

impl Verdict {
    /// `pass`, `fail`, `skip` or `harness-error`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "fail",
            Verdict::Skip { .. } => "skip",
            Verdict::HarnessError { .. } => "harness-error",
        }
    }

    /// The reason, for anything but a pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Pass => None,
            Verdict::Fail { reason }
            | Verdict::Skip { reason }
            | Verdict::HarnessError { reason } => Some(reason),
        }
    }
}

/// Why a case stopped early; `?` in a case body turns these into its
/// verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The spec point is broken.
    Fail(String),
    /// The case does not apply here.
    Skip(String),
    /// The suite itself could not go on.
    Harness(String),
}

impl Stop {
    /// The verdict this stop gives.
    pub fn verdict(self) -> Verdict {
        match self {
            Stop::Fail(reason) => Verdict::Fail { reason },
            Stop::Skip(reason) => Verdict::Skip { reason },
            Stop::Harness(reason) => Verdict::HarnessError { reason },
        }
    }
}

/// Shorthand for a failed check.
pub fn fail<T>(reason: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Fail(reason.into()))
}

/// Fails with `reason` unless `condition` holds.
pub fn check(condition: bool, reason: impl FnOnce() -> String) -> Result<(), Stop> {
    if condition {
        Ok(())
    } else {
        Err(Stop::Fail(reason()))
    }
}

/// One case's outcome, with everything a report shows.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub spec: &'static CaseSpec,
    /// Its verdict.
    pub verdict: Verdict,
    /// How long it ran.
    pub duration: Duration,
    /// Every frame or datagram sent and received.
    pub transcript: Transcript,
    /// For generated cases: the seed that reproduces the run.
    pub seed: Option<u64>,
    /// For failed generated cases: where the replay bundle was written.
    pub replay: Option<String>,
}
