//! `subscription.generated.sessions`: random sessions from a seed, judged
//! against a model of the routing table.
//!
//! A session runs on one subscriber connection (its path's task is
//! outside the session's resources) and one admin publisher, over a small
//! hierarchy of its own: users `U` (the subscriber) and `V`, projects
//! `P0`, `P1`, experiments `E0` (in `P0`, owned by `U`) and `E1` (in `P1`,
//! owned by `V`), told by two `experiment_created` before the steps, tasks
//! `T0`, `T1` of `E0` and `T2` of `E1`, a worker and a `system` resource.
//! Its steps: subscribe and unsubscribe (each waits for its answer, and
//! for the publishes before it to be routed: a `ping` on the admin
//! connection is answered after them, so every publish meets the
//! subscriptions the model holds), publishes of
//! every event kind, pings, malformed JSON and unknown types (followed by
//! nothing: their answers are other cases' points).
//!
//! The case judges what only sequences show and leaves each single rule
//! to its own case (so one fault fails one case): every event the table
//! routes to the subscriptions held at its publication arrives, no other
//! event of the session does, every subscribe, unsubscribe and ping is
//! answered, and the connection stays open. Duplicates and order are
//! `subscription.routing.once-per-connection`'s and
//! `subscription.routing.publication-order`'s. Events are counted up to a
//! final event to the connection's path task, which arrives after every
//! event published before it.
//!
//! The case has a budget ([`SubscriptionTarget::session_budget`](super::SubscriptionTarget::session_budget)):
//! sessions stop starting when it is spent, and a failing session is
//! shrunk with what is left; its replay bundle is written however far
//! shrinking got.

use std::collections::BTreeSet;
use std::fmt;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cases::{unknown_type_message, MALFORMED};
use super::events::{self, EventKind, Experiment, Kind, Resource};
use super::session::{describe, Conn, Msg, SubMsg};
use super::target::Ctx;
pub use crate::suite::join;
use crate::suite::{run_sessions, SessionPlan};
use crate::verdict::{fail, Stop};

/// A resource of a session's hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "slot", content = "n")]
pub enum Slot {
    /// Task `T{n}` (`T0`, `T1` of `E0`; `T2` of `E1`).
    Task(u8),
    /// Experiment `E{n}`.
    Experiment(u8),
    /// Project `P{n}`.
    Project(u8),
    /// The subscriber's own user `U`.
    OwnUser,
    /// The worker.
    Worker,
    /// The `system` resource.
    System,
}

impl Slot {
    /// Every slot.
    pub const ALL: [Slot; 10] = [
        Slot::Task(0),
        Slot::Task(1),
        Slot::Task(2),
        Slot::Experiment(0),
        Slot::Experiment(1),
        Slot::Project(0),
        Slot::Project(1),
        Slot::OwnUser,
        Slot::Worker,
        Slot::System,
    ];
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Task(n) => write!(f, "T{n}"),
            Slot::Experiment(n) => write!(f, "E{n}"),
            Slot::Project(n) => write!(f, "P{n}"),
            Slot::OwnUser => f.write_str("U"),
            Slot::Worker => f.write_str("W"),
            Slot::System => f.write_str("S"),
        }
    }
}

/// The experiment of task `n`.
fn experiment_of(task: u8) -> u8 {
    u8::from(task >= 2)
}

/// One step of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "arg")]
pub enum Step {
    /// Subscribe to a slot (and wait for the answer).
    Subscribe(Slot),
    /// Unsubscribe from a slot (and wait for the answer).
    Unsubscribe(Slot),
    /// Publish an event of this kind about this slot (a task, an
    /// experiment, the worker; `system_status` about `System`).
    Publish(EventKind, Slot),
    /// A client `ping`.
    Ping,
    /// Text that is not JSON.
    Garbage,
    /// A message of an unknown type.
    UnknownType,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Subscribe(slot) => write!(f, "subscribe {slot}"),
            Step::Unsubscribe(slot) => write!(f, "unsubscribe {slot}"),
            Step::Publish(kind, slot) => write!(f, "publish {} {slot}", kind.as_str()),
            Step::Ping => f.write_str("ping"),
            Step::Garbage => f.write_str("garbage"),
            Step::UnknownType => f.write_str("unknown-type"),
        }
    }
}

/// The slots an event about `slot` is routed to, up the table (the
/// `system` level and "all" are [`delivered`]'s).
pub fn route(slot: Slot) -> Vec<Slot> {
    match slot {
        Slot::Task(n) => {
            let experiment = experiment_of(n);
            let mut up = vec![
                Slot::Task(n),
                Slot::Experiment(experiment),
                Slot::Project(experiment),
            ];
            if experiment == 0 {
                up.push(Slot::OwnUser);
            }
            up
        }
        Slot::Experiment(n) => {
            let mut up = vec![Slot::Experiment(n), Slot::Project(n)];
            if n == 0 {
                up.push(Slot::OwnUser);
            }
            up
        }
        other => vec![other],
    }
}

/// The subscriptions among `held` an event of `kind` about `slot`
/// matches; with `all` true when it reaches every connection.
pub fn matching(kind: EventKind, slot: Slot, held: &BTreeSet<Slot>) -> (Vec<Slot>, bool) {
    if kind == EventKind::SystemStatus {
        return (Vec::new(), true);
    }
    let mut matched: Vec<Slot> = route(slot)
        .into_iter()
        .filter(|slot| held.contains(slot))
        .collect();
    if slot == Slot::Worker && held.contains(&Slot::System) {
        matched.push(Slot::System);
    }
    (matched, false)
}

/// Whether the model delivers an event of `kind` about `slot` to a
/// connection holding `held`.
pub fn delivered(kind: EventKind, slot: Slot, held: &BTreeSet<Slot>) -> bool {
    let (matched, all) = matching(kind, slot, held);
    all || !matched.is_empty()
}

/// Every publish of `steps` with the subscriptions held when it is made.
pub fn publications(steps: &[Step]) -> Vec<(EventKind, Slot, BTreeSet<Slot>)> {
    let mut held = BTreeSet::new();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Subscribe(slot) => {
                held.insert(*slot);
            }
            Step::Unsubscribe(slot) => {
                held.remove(slot);
            }
            Step::Publish(kind, slot) => out.push((*kind, *slot, held.clone())),
            _ => {}
        }
    }
    out
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// A publish step drawn from `rng`: any kind, about a fitting slot.
fn draw_publish(rng: &mut fastrand::Rng) -> Step {
    match rng.u8(..10) {
        0..=3 => Step::Publish(pick(rng, &EventKind::TASK), Slot::Task(rng.u8(..3))),
        4..=6 => Step::Publish(
            pick(rng, &EventKind::EXPERIMENT),
            Slot::Experiment(rng.u8(..2)),
        ),
        7 | 8 => Step::Publish(pick(rng, &EventKind::WORKER), Slot::Worker),
        _ => Step::Publish(EventKind::SystemStatus, Slot::System),
    }
}

/// A session's steps from `seed`.
pub fn steps(seed: u64, length: usize) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut held: BTreeSet<Slot> = BTreeSet::new();
    let mut steps = Vec::with_capacity(length);
    while steps.len() < length {
        let step = match rng.u8(..20) {
            0..=5 => Step::Subscribe(pick(&mut rng, &Slot::ALL)),
            6..=8 => match held.iter().nth(rng.usize(..held.len().max(1))) {
                Some(slot) => Step::Unsubscribe(*slot),
                None => Step::Unsubscribe(pick(&mut rng, &Slot::ALL)),
            },
            9..=15 => draw_publish(&mut rng),
            16 | 17 => Step::Ping,
            18 => Step::Garbage,
            _ => Step::UnknownType,
        };
        match &step {
            Step::Subscribe(slot) => {
                held.insert(*slot);
            }
            Step::Unsubscribe(slot) => {
                held.remove(slot);
            }
            _ => {}
        }
        steps.push(step);
    }
    steps
}

/// How many sessions and how long each.
pub const SESSIONS: u64 = 8;
/// Steps in a session.
pub const LENGTH: usize = 14;

/// The session's resources, named afresh for each run of it.
struct Universe {
    user: String,
    experiments: [Experiment; 2],
    tasks: [String; 3],
    worker: String,
    system: String,
}

impl Universe {
    fn fresh(ctx: &mut Ctx) -> Universe {
        let user = ctx.fresh("user");
        let first = ctx.experiment(Some(&user));
        let second = ctx.experiment(None);
        Universe {
            experiments: [first, second],
            tasks: [ctx.fresh("task"), ctx.fresh("task"), ctx.fresh("task")],
            worker: ctx.fresh("worker"),
            system: ctx.fresh("system"),
            user,
        }
    }

    fn resource(&self, slot: Slot) -> Resource {
        let experiment = |n: u8| &self.experiments[usize::from(n.min(1))];
        match slot {
            Slot::Task(n) => Resource::new(Kind::Task, self.tasks[usize::from(n.min(2))].clone()),
            Slot::Experiment(n) => Resource::new(Kind::Experiment, experiment(n).id.clone()),
            Slot::Project(n) => Resource::new(Kind::Project, experiment(n).project.clone()),
            Slot::OwnUser => Resource::new(Kind::User, self.user.clone()),
            Slot::Worker => Resource::new(Kind::Worker, self.worker.clone()),
            Slot::System => Resource::new(Kind::System, self.system.clone()),
        }
    }

    /// The event of `kind` about `slot`, labelled `label`.
    fn event(&self, kind: EventKind, slot: Slot, label: &str) -> Value {
        match slot {
            Slot::Task(n) => {
                let experiment = &self.experiments[usize::from(experiment_of(n))];
                events::task_event(
                    kind,
                    &self.tasks[usize::from(n.min(2))],
                    &experiment.id,
                    label,
                )
            }
            Slot::Experiment(n) => {
                events::experiment_event(kind, &self.experiments[usize::from(n.min(1))], label)
            }
            Slot::Worker => events::worker_event(kind, &self.worker, label),
            _ => events::system_event(label),
        }
    }
}

/// The case: [`SESSIONS`] sessions from consecutive seeds, within the
/// target's session budget (at least one session always runs), a failing
/// one shrunk ([`run_sessions`]).
pub(crate) async fn sessions(ctx: &mut Ctx) -> Result<(), Stop> {
    let plan = SessionPlan::new(
        ctx.target.seed,
        SESSIONS,
        ctx.target.session_budget,
        SHRINK_RUNS,
        |seed| steps(seed, LENGTH),
    );
    run_sessions(ctx, &plan, boxed).await
}

/// [`run`], boxed (a [`SessionFn`](crate::suite::SessionFn)).
pub(crate) fn boxed<'a>(ctx: &'a mut Ctx, steps: &'a [Step]) -> BoxFuture<'a, Result<(), Stop>> {
    Box::pin(run(ctx, steps))
}

/// Most sessions a shrink may run (the budget may stop it sooner).
const SHRINK_RUNS: usize = 40;

/// What a session saw, and what it owes.
#[derive(Default)]
struct Seen {
    messages: Vec<Msg>,
    pings: usize,
}

/// Sends a subscribe or unsubscribe and reads until it is answered with
/// a subscription reply (an `error` may be an earlier bad message's).
async fn request(
    conn: &mut Conn,
    seen: &mut Seen,
    action: &str,
    resource: &Resource,
) -> Result<(), Stop> {
    conn.send(&events::request(action, resource)).await?;
    let timeout = conn.timeout;
    let (reply, before) = conn
        .expect(&format!("a reply to {action} {resource}"), timeout, |msg| {
            msg.action().is_some()
        })
        .await?;
    seen.messages.extend(before);
    seen.messages.push(reply);
    Ok(())
}

/// Runs one session and judges it.
pub async fn run(ctx: &mut Ctx, steps: &[Step]) -> Result<(), Stop> {
    let universe = Universe::fresh(ctx);
    let user = universe.user.clone();
    let mut conn = ctx.connect_as(&user, false).await?;
    let mut admin = ctx.admin().await?;
    let mut unexpected: Vec<String> = Vec::new();
    for experiment in &universe.experiments {
        let label = events::label();
        admin
            .publish(&events::experiment_event(
                EventKind::ExperimentCreated,
                experiment,
                &label,
            ))
            .await?;
        unexpected.push(label);
    }
    let mut held = BTreeSet::new();
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut seen = Seen::default();
    // Publishes not yet known to be routed: a subscription change waits
    // for them (the admin's ping is answered after them), so each event
    // meets the subscriptions the model holds.
    let mut unrouted = true;
    for step in steps {
        if matches!(step, Step::Subscribe(_) | Step::Unsubscribe(_)) && unrouted {
            admin.still_open("publishing").await?;
            unrouted = false;
        }
        match step {
            Step::Subscribe(slot) => {
                request(&mut conn, &mut seen, "subscribe", &universe.resource(*slot)).await?;
                held.insert(*slot);
            }
            Step::Unsubscribe(slot) => {
                request(
                    &mut conn,
                    &mut seen,
                    "unsubscribe",
                    &universe.resource(*slot),
                )
                .await?;
                held.remove(slot);
            }
            Step::Publish(kind, slot) => {
                unrouted = true;
                let label = events::label();
                admin.publish(&universe.event(*kind, *slot, &label)).await?;
                if delivered(*kind, *slot, &held) {
                    expected.push((label, step.to_string()));
                } else {
                    unexpected.push(label);
                }
            }
            Step::Ping => {
                seen.pings += 1;
                conn.send(&events::ping(&format!("ping-{}", events::label())))
                    .await?;
            }
            Step::Garbage => conn.send_invalid(MALFORMED).await?,
            Step::UnknownType => conn.send_invalid(&unknown_type_message()).await?,
        }
    }
    judge(&mut conn, &mut admin, seen, &expected, &unexpected).await
}

/// Reads the rest (every ping answered, then every event up to a final
/// one) and judges what the session saw.
async fn judge(
    conn: &mut Conn,
    admin: &mut Conn,
    mut seen: Seen,
    expected: &[(String, String)],
    unexpected: &[String],
) -> Result<(), Stop> {
    // A last ping: once every ping is answered, the connection has read
    // every step.
    seen.pings += 1;
    conn.send(&events::ping(&format!("ping-{}", events::label())))
        .await?;
    let pongs = |messages: &[Msg]| messages.iter().filter(|msg| msg.kind() == "pong").count();
    let timeout = conn.timeout;
    while pongs(&seen.messages) < seen.pings {
        let wanted = seen.pings - pongs(&seen.messages);
        match conn
            .expect("a pong", timeout, |msg| msg.kind() == "pong")
            .await
        {
            Ok((pong, before)) => {
                seen.messages.extend(before);
                seen.messages.push(pong);
            }
            Err(Stop::Fail(reason)) => {
                return fail(format!(
                    "{wanted} of the session's {} pings went unanswered: {reason}",
                    seen.pings
                ))
            }
            Err(other) => return Err(other),
        }
    }
    let window = conn.window(admin).await.map_err(|stop| match stop {
        Stop::Skip(reason) => Stop::Fail(format!(
            "the connection's path task got no event after the session: {reason}"
        )),
        other => other,
    })?;
    seen.messages.extend(window);
    let arrived = |label: &str| seen.messages.iter().any(|msg| msg.label() == Some(label));
    let missing: Vec<&str> = expected
        .iter()
        .filter(|(label, _)| !arrived(label))
        .map(|(_, step)| step.as_str())
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "events the table routes to the connection's subscriptions did not arrive (before a later event did): {}",
            missing.join(", ")
        ));
    }
    let stray: Vec<String> = seen
        .messages
        .iter()
        .filter(|msg| {
            msg.label()
                .is_some_and(|label| unexpected.iter().any(|u| u == label))
        })
        .map(describe)
        .collect();
    if !stray.is_empty() {
        return fail(format!(
            "events no subscription of the connection matched arrived: {}",
            stray.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_a_function_of_the_seed_and_cover_every_kind() {
        assert_eq!(steps(7, LENGTH), steps(7, LENGTH));
        assert_ne!(steps(7, LENGTH), steps(8, LENGTH));
        let mut kinds = std::collections::HashSet::new();
        let mut delivered_somewhere = 0;
        for seed in 0..200 {
            let steps = steps(seed, LENGTH);
            assert_eq!(steps.len(), LENGTH);
            for step in &steps {
                kinds.insert(std::mem::discriminant(step));
            }
            delivered_somewhere += publications(&steps)
                .iter()
                .filter(|(kind, slot, held)| delivered(*kind, *slot, held))
                .count();
        }
        assert_eq!(kinds.len(), 6);
        assert!(delivered_somewhere > 200, "{delivered_somewhere}");
    }

    #[test]
    fn the_model_routes_up_the_table() {
        let held: BTreeSet<Slot> = [Slot::Project(0)].into();
        assert!(delivered(EventKind::TaskUpdated, Slot::Task(1), &held));
        assert!(!delivered(EventKind::TaskUpdated, Slot::Task(2), &held));
        assert!(delivered(
            EventKind::ExperimentCreated,
            Slot::Experiment(0),
            &held
        ));
        let user: BTreeSet<Slot> = [Slot::OwnUser].into();
        assert!(delivered(EventKind::TaskCreated, Slot::Task(0), &user));
        assert!(!delivered(
            EventKind::ExperimentFailed,
            Slot::Experiment(1),
            &user
        ));
        let task: BTreeSet<Slot> = [Slot::Task(0)].into();
        assert!(!delivered(
            EventKind::ExperimentUpdated,
            Slot::Experiment(0),
            &task
        ));
        assert!(delivered(
            EventKind::SystemStatus,
            Slot::System,
            &BTreeSet::new()
        ));
        let system: BTreeSet<Slot> = [Slot::System].into();
        assert!(delivered(EventKind::WorkerOffline, Slot::Worker, &system));
        assert!(!delivered(EventKind::TaskCreated, Slot::Task(0), &system));
        let (matched, _) = matching(EventKind::TaskCreated, Slot::Task(0), &Slot::ALL.into());
        assert_eq!(matched.len(), 4);
    }

    #[test]
    fn steps_round_trip_through_json() {
        for step in steps(3, LENGTH) {
            let text = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<Step>(&text).unwrap(), step, "{text}");
        }
    }
}
