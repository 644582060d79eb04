//! `task.generated.sessions`: random sessions on one connection, from a
//! seed, judged by the rules every session must keep.
//!
//! A session is a short sequence of steps: assign a new task, assign one
//! again, cancel, ask its status or result (of known and unknown tasks),
//! garbage (text that is not JSON, an unknown type) and messages drawn
//! from the client schemas, sent without waiting. The case judges what
//! only sequences show, and leaves each single rule to its own case (so
//! one fault fails one case): the target keeps the connection open through
//! any mix, answers every step the profile says must be answered (a lower
//! bound, [`owed`], since an `Error` for garbage names no message and a
//! cancel may be answered by the task's end), says something about every
//! task the session assigned, and never talks about tasks the session did
//! not name. Every alternative the profile allows passes: no `Ack`s, no
//! status updates, a cancel that loses the race, a re-assign answered with
//! the stored terminal message.
//!
//! Waits are paced on the target ([`Pace`]): its slowest round trip and
//! longest task in this run, not a fixed deadline, so a correct target
//! costs seconds and a failing session a few more. The whole case has a
//! budget ([`TaskTarget::session_budget`](super::TaskTarget::session_budget),
//! `--session-budget`): sessions stop starting when it is spent, and a
//! failing session is shrunk with what is left of it. A failure names the
//! seed and the steps, so the same session runs again with `--seed`, and
//! its replay bundle is written however far shrinking got.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::{self, Assignment};

use super::session::{Conn, Event, Msg, Outgoing, TaskMsg};
use super::stimuli::{assignment, unknown_operation_task, unknown_type_message};
use super::target::Ctx;
pub use crate::suite::join;
use crate::suite::{run_sessions, SessionPlan};
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

/// The shortest a session waits for its answers: a loaded two-core
/// machine stalls for a few hundred milliseconds now and then, and a
/// verdict must not depend on that.
const WAIT_FLOOR: Duration = Duration::from_secs(1);

/// How long a session waits for the answers it is owed, derived from what
/// the target has shown in this run rather than a fixed deadline: its
/// slowest round trip and its longest task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The slowest round trip seen (a request and its answer).
    pub round_trip: Duration,
    /// The longest task seen, from `AssignTask` to its end.
    pub task: Duration,
    /// No wait is longer: the task timeout.
    pub ceiling: Duration,
}

impl Pace {
    /// The pace from the run's observations; what is missing is measured
    /// now: a `GetStatus` round trip, and one run of the `succeeds` task
    /// (tasks of unknown operations end at once, at round-trip speed).
    pub async fn learn(ctx: &mut Ctx) -> Result<Pace, Stop> {
        let ceiling = ctx.target.task_timeout;
        if ctx.observed().timing().round_trip().is_none() {
            let mut conn = ctx.connect().await?;
            conn.barrier(Duration::ZERO).await?;
        }
        let round_trip = ctx
            .observed()
            .timing()
            .round_trip()
            .unwrap_or(ctx.target.reply_timeout);
        let mut task = ctx.observed().timing().task();
        if task.is_none() {
            if let Ok(recipe) = ctx.succeeds() {
                let mut conn = ctx.connect().await?;
                let assignment = assignment(&recipe, &ctx.target.client_id);
                conn.assign(&assignment, None).await?;
                let id = assignment.task_id.clone();
                let ended = conn
                    .expect("the end of a `succeeds` task", ceiling, |msg| {
                        msg.is_about(&id) && msg.is_terminal()
                    })
                    .await;
                if ended.is_ok() {
                    conn.ended(&id);
                }
                task = ctx.observed().timing().task();
            }
        }
        Ok(Pace {
            round_trip,
            task: task.unwrap_or(round_trip),
            ceiling,
        })
    }

    /// How long `steps` may take to be answered: every task it assigns
    /// run one after the other, twice over, plus four round trips a step,
    /// at least [`WAIT_FLOOR`], at most the task timeout.
    pub fn answer_wait(&self, steps: &[Step]) -> Duration {
        let assigns = steps.iter().filter(|step| **step == Step::Assign).count();
        let tasks = self.task * u32::try_from(2 * assigns + 1).unwrap_or(u32::MAX);
        let trips = self.round_trip * u32::try_from(4 * steps.len()).unwrap_or(u32::MAX);
        (WAIT_FLOOR + tasks + trips).min(self.ceiling)
    }
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round trips up to {} ms, tasks up to {} ms",
            self.round_trip.as_millis(),
            self.task.as_millis()
        )
    }
}

/// The case: [`SESSIONS`] sessions from consecutive seeds, within the
/// target's session budget (at least one session always runs), paced on
/// what the target showed. A failing session is shrunk with what is left
/// of the budget (every step but the first assign, and an assign only
/// when nothing later refers to its task: [`removable`]), checked once
/// more, and reported with its replay bundle however far shrinking got.
pub(crate) async fn sessions(ctx: &mut Ctx) -> Result<(), Stop> {
    let started = Instant::now();
    let pace = Pace::learn(ctx).await?;
    ctx.note(&format!("pacing on what the target showed: {pace}"));
    let plan = SessionPlan {
        started,
        removable: |steps, index| index > 0 && removable(steps, index),
        recheck: true,
        ..SessionPlan::new(
            ctx.target.seed,
            SESSIONS,
            ctx.target.session_budget,
            SHRINK_RUNS,
            |seed| steps(seed, LENGTH),
        )
    };
    run_sessions(ctx, &plan, move |ctx, steps| {
        Box::pin(async move { run_paced(ctx, steps, &pace).await })
    })
    .await
}

/// Most sessions a shrink may run (the budget may stop it sooner).
const SHRINK_RUNS: usize = 24;

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

/// How many answers (not counting `Ack`s) a session is owed at least: one
/// per step the profile says must be answered, each a message of its own.
/// An `AssignTask` is owed its task's end; a repeated one, a `GetStatus`
/// and a `GetResult` an answer each; an unknown task's `GetStatus`,
/// garbage, an unknown type and every schema-drawn message an answer
/// (an `Error`, or the normal answer of a lenient provider). A `CancelTask`
/// is owed nothing of its own: the task's end may answer it, and when the
/// task's own result wins the race, nothing else need come.
pub fn owed(steps: &[Step]) -> usize {
    let mut tasks = 0;
    let mut owed = 0;
    for step in steps {
        match step {
            Step::Assign => {
                tasks += 1;
                owed += 1;
            }
            Step::AssignAgain(n) | Step::Status(n) | Step::Result(n) => {
                if *n < tasks {
                    owed += 1;
                }
            }
            Step::Cancel(_) => {}
            Step::StatusUnknown
            | Step::Garbage(_)
            | Step::UnknownType
            | Step::Valid(_)
            | Step::Invalid(_) => owed += 1,
        }
    }
    owed
}

/// Runs one session and checks it, pacing its wait on the target.
pub async fn run(ctx: &mut Ctx, steps: &[Step]) -> Result<(), Stop> {
    let pace = Pace::learn(ctx).await?;
    run_paced(ctx, steps, &pace).await
}

/// Sends every step at once; returns the tasks assigned and the task ids
/// the session named otherwise (unknown tasks, drawn messages).
async fn send_steps(
    ctx: &Ctx,
    conn: &mut Conn,
    steps: &[Step],
) -> Result<(Vec<Assignment>, BTreeSet<String>), Stop> {
    let recipe = ctx.succeeds().ok();
    let mut tasks: Vec<Assignment> = Vec::new();
    let mut named = BTreeSet::new();
    for step in steps {
        match step {
            Step::Assign => {
                let assignment = match &recipe {
                    Some(recipe) => assignment(recipe, &ctx.target.client_id),
                    None => unknown_operation_task(ctx),
                };
                conn.assign(&assignment, None).await?;
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
                named.insert(id);
            }
            Step::Garbage(text) => conn.send_invalid(text).await?,
            Step::Valid(text) | Step::Invalid(text) => {
                let outgoing = match step {
                    Step::Valid(_) => Outgoing::Valid(text),
                    _ => Outgoing::Invalid(text),
                };
                // Whatever task it names may be answered about.
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                    if let Some(id) = value
                        .pointer("/payload/taskId")
                        .and_then(serde_json::Value::as_str)
                    {
                        named.insert(id.to_owned());
                    }
                }
                conn.send_outgoing(outgoing).await?;
            }
            Step::UnknownType => conn.send_invalid(&unknown_type_message().1).await?,
        }
    }
    Ok((tasks, named))
}

/// Runs one session and judges what only sequences show.
async fn run_paced(ctx: &mut Ctx, steps: &[Step], pace: &Pace) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let (tasks, named) = send_steps(ctx, &mut conn, steps).await?;
    let owed = owed(steps);
    let wait = pace.answer_wait(steps);
    let answers = |seen: &[Msg]| seen.iter().filter(|msg| msg.kind() != "Ack").count();
    let silent = |seen: &[Msg]| -> Vec<String> {
        tasks
            .iter()
            .filter(|task| !seen.iter().any(|msg| msg.is_about(&task.task_id)))
            .map(|task| task.task_id.clone())
            .collect()
    };
    // Wait (paced) until the answers owed came and every task assigned was
    // named at least once, then settle.
    conn.waiting_for(&format!(
        "{owed} answers to a generated session (at most {})",
        humantime::format_duration(wait)
    ));
    let mut seen: Vec<Msg> = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while answers(&seen) < owed || !silent(&seen).is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match conn.next(left).await {
            Some(Event::Message(msg)) => seen.push(msg),
            Some(Event::Pong(_)) => {}
            Some(Event::Closed(_)) => {
                return fail("the target closed the connection during the session")
            }
            None => break,
        }
    }
    seen.extend(conn.barrier(ctx.target.settle).await?);
    let within = format!(
        "within {} (paced on {pace}; the task timeout caps it)",
        humantime::format_duration(wait)
    );
    let got = answers(&seen);
    if got < owed {
        return fail(format!(
            "{owed} of its steps must each be answered, but only {got} answers (Acks not counted) came {within}: some step went unanswered"
        ));
    }
    if let Some(id) = silent(&seen).first() {
        return fail(format!(
            "task {id}, assigned in the session, got no message about it {within}"
        ));
    }
    let known: BTreeSet<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
    // Which task an Ack names is task.ack.task-id's point.
    for msg in seen.iter().filter(|msg| msg.kind() != "Ack") {
        if let Some(id) = msg.task_id() {
            if !known.contains(id) && !named.contains(id) && !id.starts_with("conformance-probe-") {
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
    use specwire_protocol::JsonProtocol;

    #[test]
    fn drawn_steps_keep_or_break_their_schema() {
        let (mut valid, mut invalid) = (0, 0);
        for seed in 0..60 {
            for step in steps(seed, 10) {
                match step {
                    Step::Valid(text) => {
                        valid += 1;
                        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert!(
                            specwire_protocol::task::Message::recognise(&value, None).is_ok(),
                            "{text}"
                        );
                    }
                    Step::Invalid(text) => {
                        invalid += 1;
                        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert!(
                            specwire_protocol::task::Message::recognise(&value, None).is_err(),
                            "{text}"
                        );
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
