//! `task.generated.sessions`: random sessions on one connection, from a
//! seed, judged by the rules every session must keep.
//!
//! A session is a short sequence of steps: assign a new task, assign one
//! again, cancel, ask its status or result (of known and unknown tasks),
//! and garbage (text that is not JSON, an unknown type), sent without
//! waiting. The case judges what only sequences show, and leaves each
//! single rule to its own case (so one fault fails one case): the target
//! keeps the connection open through any mix, answers at least once per
//! step, and never talks about tasks the session did not name. A failure
//! names the seed and the steps, so the same session runs again with
//! `--seed`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::json;
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::{self, Assignment};

use super::cases::{assignment, unknown_operation_task};
use super::session::Msg;
use super::target::Ctx;
use crate::verdict::{fail, Stop};

/// One step of a session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "arg")]
pub enum Step {
    /// A new task (the `succeeds` recipe, or an unknown operation).
    Assign,
    /// The `n`th task assigned so far, again.
    AssignAgain(usize),
    /// Cancel the `n`th task.
    Cancel(usize),
    /// `GetStatus` of the `n`th task.
    Status(usize),
    /// `GetResult` of the `n`th task.
    Result(usize),
    /// `GetStatus` of a task nobody assigned.
    StatusUnknown,
    /// Text that is not JSON.
    Garbage(String),
    /// A message of an unknown type.
    UnknownType,
    /// A client message drawn from its schema (`AssignTask`, `CancelTask`,
    /// `GetStatus`, `GetResult` with random content): answered by a
    /// `TaskFailed`, an `Error` or a state message.
    Valid(String),
    /// A client message with one schema rule broken (the testkit's
    /// mutations): answered by an `Error`.
    Invalid(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Assign => f.write_str("assign"),
            Step::AssignAgain(n) => write!(f, "assign-again #{n}"),
            Step::Cancel(n) => write!(f, "cancel #{n}"),
            Step::Status(n) => write!(f, "get-status #{n}"),
            Step::Result(n) => write!(f, "get-result #{n}"),
            Step::StatusUnknown => f.write_str("get-status unknown"),
            Step::Garbage(text) => write!(f, "garbage {text:?}"),
            Step::UnknownType => f.write_str("unknown-type"),
            Step::Valid(text) => write!(f, "schema-valid {text}"),
            Step::Invalid(text) => write!(f, "schema-invalid {text}"),
        }
    }
}

/// Client messages the schema-drawn steps are made of. `Authenticate` is
/// left out: a random key would end the session's authentication, and a
/// valid one is not answered without an `acknowledgmentId`.
const DRAWN: &[&str] = &["AssignTask", "CancelTask", "GetStatus", "GetResult"];

/// A message drawn from `name`'s schema (broken in one place when
/// `valid` is false), deterministically from `rng`.
fn drawn(rng: &mut fastrand::Rng, valid: bool) -> Option<String> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let name = DRAWN[rng.usize(..DRAWN.len())];
    static ROOT: std::sync::OnceLock<Option<serde_json::Value>> = std::sync::OnceLock::new();
    let root = ROOT
        .get_or_init(|| serde_json::from_str(specwire_protocol::task::SCHEMA).ok())
        .as_ref()?;
    let mut options = specwire_testkit::Options::default();
    options.max_string_len = 24;
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&rng.u64(..).to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let value = if valid {
        options
            .valid_value_for_def(root, name)
            .ok()?
            .new_tree(&mut runner)
            .ok()?
            .current()
    } else {
        options
            .invalid_value_for_def(root, name)
            .ok()?
            .new_tree(&mut runner)
            .ok()?
            .current()
            .0
    };
    Some(value.to_string())
}

/// A session's steps from `seed`.
pub fn steps(seed: u64, length: usize) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut steps = vec![Step::Assign];
    let mut tasks = 1;
    while steps.len() < length {
        let pick = |rng: &mut fastrand::Rng| rng.usize(..tasks);
        let step = match rng.u8(..10) {
            8 => match drawn(&mut rng, true) {
                Some(text) => Step::Valid(text),
                None => continue,
            },
            9 => match drawn(&mut rng, false) {
                Some(text) => Step::Invalid(text),
                None => continue,
            },
            0 => {
                tasks += 1;
                Step::Assign
            }
            1 => Step::AssignAgain(pick(&mut rng)),
            2 => Step::Cancel(pick(&mut rng)),
            3 => Step::Status(pick(&mut rng)),
            4 => Step::Result(pick(&mut rng)),
            5 => Step::StatusUnknown,
            6 => {
                let garbage = ["{", "[1,", "null", "\"text\"", "{\"type\":", "}{", "\u{0}"];
                Step::Garbage(garbage[rng.usize(..garbage.len())].to_owned())
            }
            _ => Step::UnknownType,
        };
        steps.push(step);
    }
    steps
}

/// How many sessions and how long each.
pub const SESSIONS: u64 = 8;
const LENGTH: usize = 10;

pub(crate) async fn sessions(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let base = ctx.target.seed;
    for n in 0..SESSIONS {
        let seed = base.wrapping_add(n);
        let steps = steps(seed, LENGTH);
        ctx.note(&format!("session seed {seed}: {}", join(&steps)));
        let reason = match run(ctx, &steps).await {
            Ok(()) => continue,
            Err(Stop::Fail(reason)) => reason,
            Err(other) => return Err(other),
        };
        ctx.note(&format!("session seed {seed} failed: {reason}; shrinking"));
        let (shrunk, shrunk_reason) = shrink(ctx, steps.clone(), reason.clone()).await?;
        // Before reporting, the shrunk session must fail once more.
        ctx.note(&format!(
            "checking the shrunk session again: {}",
            join(&shrunk)
        ));
        let (reported, reason, note) = match run(ctx, &shrunk).await {
            Err(Stop::Fail(again)) => (shrunk, again, String::new()),
            Err(other) => return Err(other),
            Ok(()) => {
                let note = format!(
                    " (the shrunk session [{}] failed with \"{shrunk_reason}\" but passed when checked again; reporting the original)",
                    join(&shrunk)
                );
                (steps, reason, note)
            }
        };
        let steps = reported;
        ctx.failed_session = Some((seed, steps.clone()));
        return fail(format!(
            "session with seed {seed} (rerun with --seed {seed}, or replay the bundle): steps [{}]: {reason}{note}",
            join(&steps)
        ));
    }
    Ok(())
}

/// Most sessions a shrink may run.
const SHRINK_RUNS: usize = 24;

/// Removes steps while the session still fails: each step but the first
/// assign in turn, later steps first (references to the `n`th task stay
/// valid because a removed `Assign` is only tried when nothing refers to a
/// task at or after it). Returns the smallest failing session and its
/// reason.
async fn shrink(
    ctx: &mut Ctx<'_>,
    mut steps: Vec<Step>,
    mut reason: String,
) -> Result<(Vec<Step>, String), Stop> {
    let mut runs = 0;
    let mut index = steps.len();
    while index > 1 && runs < SHRINK_RUNS {
        index -= 1;
        if !removable(&steps, index) {
            continue;
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
            }
            Err(other) => return Err(other),
            Ok(()) => {}
        }
    }
    Ok((steps, reason))
}

/// Whether step `index` can go without breaking a later reference.
fn removable(steps: &[Step], index: usize) -> bool {
    if steps[index] != Step::Assign {
        return true;
    }
    let number = steps[..index]
        .iter()
        .filter(|step| **step == Step::Assign)
        .count();
    !steps[index + 1..].iter().any(|step| match step {
        Step::AssignAgain(n) | Step::Cancel(n) | Step::Status(n) | Step::Result(n) => *n >= number,
        _ => false,
    })
}

fn join(steps: &[Step]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one session and checks it.
pub async fn run(ctx: &mut Ctx<'_>, steps: &[Step]) -> Result<(), Stop> {
    let recipe = ctx.succeeds().ok();
    let mut conn = ctx.connect().await?;
    let mut tasks: Vec<Assignment> = Vec::new();
    let mut asked_unknown = BTreeSet::new();
    for step in steps {
        match step {
            Step::Assign => {
                let assignment = match &recipe {
                    Some(recipe) => assignment(recipe, &ctx.target.client_id),
                    None => unknown_operation_task(ctx),
                };
                conn.send(&messages::assign(&assignment, None).text).await?;
                tasks.push(assignment);
            }
            Step::AssignAgain(n) => {
                if let Some(assignment) = tasks.get(*n) {
                    conn.send(&messages::assign(assignment, None).text).await?;
                }
            }
            Step::Cancel(n) => {
                if let Some(assignment) = tasks.get(*n) {
                    conn.send(&messages::cancel(&assignment.task_id, None, None).text)
                        .await?;
                }
            }
            Step::Status(n) | Step::Result(n) => {
                if let Some(assignment) = tasks.get(*n) {
                    let query = match step {
                        Step::Status(_) => messages::get_status(&assignment.task_id),
                        _ => messages::get_result(&assignment.task_id),
                    };
                    conn.send(&query.text).await?;
                }
            }
            Step::StatusUnknown => {
                let id = format!("conformance-unknown-{}", new_id());
                conn.send(&messages::get_status(&id).text).await?;
                asked_unknown.insert(id);
            }
            Step::Garbage(text) => {
                conn.send(text).await?;
            }
            Step::Valid(text) | Step::Invalid(text) => {
                // Whatever task it names may be answered about.
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                    if let Some(id) = value
                        .pointer("/payload/taskId")
                        .and_then(serde_json::Value::as_str)
                    {
                        asked_unknown.insert(id.to_owned());
                    }
                }
                conn.send(text).await?;
            }
            Step::UnknownType => {
                let text = json!({
                    "type": "SpecwireNoSuchMessage", "messageId": new_id(),
                    "timestamp": specwire_runtime::clock::now_rfc3339(), "payload": {}
                })
                .to_string();
                conn.send(&text).await?;
            }
        }
    }
    // Every step is answered: wait (bounded) until at least as many
    // messages as steps arrived, then settle.
    let mut seen: Vec<Msg> = Vec::new();
    let deadline = tokio::time::Instant::now() + ctx.target.task_timeout;
    while seen.len() < steps.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match conn.next(left).await {
            Some(super::session::Event::Message(msg)) => seen.push(msg),
            Some(super::session::Event::Pong(_)) => {}
            Some(super::session::Event::Closed(_)) => {
                return fail("the target closed the connection during the session")
            }
            None => break,
        }
    }
    seen.extend(conn.barrier(ctx.target.settle).await?);
    if seen.len() < steps.len() {
        return fail(format!(
            "{} steps got only {} messages back: some step went unanswered",
            steps.len(),
            seen.len()
        ));
    }
    let known: BTreeSet<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
    for msg in &seen {
        if let Some(id) = msg.task_id() {
            if !known.contains(id)
                && !asked_unknown.contains(id)
                && !id.starts_with("conformance-probe-")
            {
                return fail(format!(
                    "a message about task {id}, which this session never named: {}",
                    msg.describe()
                ));
            }
        }
    }
    conn.still_open("the session").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_steps_keep_or_break_their_schema() {
        let (mut valid, mut invalid) = (0, 0);
        for seed in 0..60 {
            for step in steps(seed, 10) {
                match step {
                    Step::Valid(text) => {
                        valid += 1;
                        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert!(specwire_protocol::task::validate(&value).is_ok(), "{text}");
                    }
                    Step::Invalid(text) => {
                        invalid += 1;
                        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert!(specwire_protocol::task::validate(&value).is_err(), "{text}");
                    }
                    _ => {}
                }
            }
        }
        assert!(
            valid > 50 && invalid > 50,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn steps_are_a_function_of_the_seed() {
        assert_eq!(steps(7, 10), steps(7, 10));
        assert_ne!(steps(7, 10), steps(8, 10));
        for seed in 0..200 {
            let steps = steps(seed, 10);
            assert_eq!(steps.len(), 10);
            assert_eq!(steps[0], Step::Assign);
            let assigned = steps.iter().filter(|step| **step == Step::Assign).count();
            for step in &steps {
                if let Step::AssignAgain(n) | Step::Cancel(n) | Step::Status(n) | Step::Result(n) =
                    step
                {
                    assert!(*n < assigned);
                }
            }
        }
    }
}
