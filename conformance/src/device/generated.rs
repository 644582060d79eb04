//! `device.generated.sessions`: random sessions from a seed, judged
//! against a model of the hub's table.
//!
//! A session has two client slots (`C0`, `C1`; a client subscribes when
//! it opens) and two device slots (`D0`, `D1`; a device registers a fresh
//! id when it joins). Its steps: devices join and leave, clients open and
//! close, devices send data, clients send registry commands to a device
//! or to `all`, clients `ping`, and clients send lines only a device may
//! send (refused, answers not judged). A step the session's state does
//! not allow (data from a device that has not joined, ...: left over
//! after shrinking) is skipped.
//!
//! Ordering, never waiting: before a membership change (join, leave,
//! open, close), every connection that sent something since is confirmed
//! (a `ping` answered), and a joining or opening connection is confirmed
//! after its `id:` or `s`; at the end every connection is confirmed
//! twice. So every data line and command meets the table the model
//! holds, and every delivery has arrived before the last `pong`.
//!
//! The case judges what only sequences show: every data line reaches
//! every client open when it was sent and no device but (possibly) its
//! sender; every command reaches every device it targeted then, and no
//! other connection of the session; every `ping` is answered; the hub
//! closes no connection. Lines are matched by a marker in the data or the
//! parameters, so their framing (`device.data.broadcast`,
//! `device.command.to-one`), duplicates, the answers to refused lines and
//! whether a device gets its own data (`device.data.not-echoed`) are
//! their own cases' points.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::commands::Pick;
use super::conn::LineConn;
use super::target::Ctx;
use crate::suite::{run_sessions, weighted_steps, SessionPlan, StepState};
use crate::verdict::{fail, Stop};

/// Client and device slots per kind.
pub const SLOTS: u8 = 2;
/// How many sessions.
pub const SESSIONS: u64 = 8;
/// Steps in a session.
pub const LENGTH: usize = 16;
/// Most sessions a shrink may run.
const SHRINK_RUNS: usize = 40;

/// Where a command goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum To {
    /// The device in this slot.
    Device(u8),
    /// `all`.
    All,
}

/// One step of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "arg")]
pub enum Step {
    /// Device slot `d` connects and registers a fresh id.
    Join(u8),
    /// Device slot `d` closes its connection.
    Leave(u8),
    /// Client slot `c` connects and subscribes.
    Open(u8),
    /// Client slot `c` closes its connection.
    Close(u8),
    /// Device slot `d` sends a data line.
    Data(u8),
    /// Client slot `c` sends a registry command.
    Command(u8, To),
    /// Client slot `c` sends `ping` and waits for its `pong`.
    Ping(u8),
    /// Client slot `c` sends a line only a device may send.
    Refused(u8),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Join(d) => write!(f, "join D{d}"),
            Step::Leave(d) => write!(f, "leave D{d}"),
            Step::Open(c) => write!(f, "open C{c}"),
            Step::Close(c) => write!(f, "close C{c}"),
            Step::Data(d) => write!(f, "data D{d}"),
            Step::Command(c, To::Device(d)) => write!(f, "cmd C{c}>D{d}"),
            Step::Command(c, To::All) => write!(f, "cmd C{c}>all"),
            Step::Ping(c) => write!(f, "ping C{c}"),
            Step::Refused(c) => write!(f, "refused C{c}"),
        }
    }
}

/// Which slots are in use: the model's view of the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    /// Device slots that joined (and did not leave).
    pub devices: BTreeSet<u8>,
    /// Client slots that are open.
    pub clients: BTreeSet<u8>,
}

impl Slots {
    /// Whether `step` can be carried out now.
    pub fn allows(&self, step: Step) -> bool {
        match step {
            Step::Join(d) => !self.devices.contains(&d),
            Step::Leave(d) | Step::Data(d) => self.devices.contains(&d),
            Step::Open(c) => !self.clients.contains(&c),
            Step::Close(c) | Step::Ping(c) | Step::Refused(c) => self.clients.contains(&c),
            Step::Command(c, to) => {
                self.clients.contains(&c)
                    && match to {
                        To::Device(d) => self.devices.contains(&d),
                        To::All => true,
                    }
            }
        }
    }

    /// The state after `step` (which it allows).
    pub fn apply(&mut self, step: Step) {
        match step {
            Step::Join(d) => {
                self.devices.insert(d);
            }
            Step::Leave(d) => {
                self.devices.remove(&d);
            }
            Step::Open(c) => {
                self.clients.insert(c);
            }
            Step::Close(c) => {
                self.clients.remove(&c);
            }
            _ => {}
        }
    }
}

/// Every step a session could take, with its weight.
fn candidates() -> Vec<(Step, u32)> {
    let mut all = Vec::new();
    for n in 0..SLOTS {
        all.extend([
            (Step::Join(n), 3),
            (Step::Leave(n), 1),
            (Step::Open(n), 3),
            (Step::Close(n), 1),
            (Step::Data(n), 4),
            (Step::Command(n, To::All), 2),
            (Step::Ping(n), 1),
            (Step::Refused(n), 1),
        ]);
        for d in 0..SLOTS {
            all.push((Step::Command(n, To::Device(d)), 2));
        }
    }
    all
}

/// A session's steps from `seed`: each allowed by the state before it.
pub fn steps(seed: u64) -> Vec<Step> {
    weighted_steps(seed, LENGTH, &candidates(), Slots::default())
}

impl StepState<Step> for Slots {
    fn allows(&self, step: Step) -> bool {
        Slots::allows(self, step)
    }

    fn apply(&mut self, step: Step) {
        Slots::apply(self, step);
    }
}

/// The case: [`SESSIONS`] sessions from consecutive seeds within the
/// target's session budget, a failing one shrunk.
pub(crate) async fn sessions(ctx: &mut Ctx) -> Result<(), Stop> {
    let plan = SessionPlan::new(
        ctx.target.seed,
        SESSIONS,
        ctx.target.session_budget,
        SHRINK_RUNS,
        steps,
    );
    run_sessions(ctx, &plan, boxed).await
}

/// [`run`], boxed (a [`SessionFn`](crate::suite::SessionFn)).
pub(crate) fn boxed<'a>(ctx: &'a mut Ctx, steps: &'a [Step]) -> BoxFuture<'a, Result<(), Stop>> {
    Box::pin(run(ctx, steps))
}

/// What a line must reach, and must not.
struct Expectation {
    /// The step that sent it, for reasons.
    step: String,
    /// What identifies it in a received line.
    matcher: Matcher,
    /// The connections it must reach.
    to: BTreeSet<u32>,
    /// A connection that may get it or not (a device's own data).
    tolerated: Option<u32>,
}

enum Matcher {
    /// A line containing this marker.
    Contains(String),
    /// Exactly this line.
    Exactly(String),
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Contains(marker) => text.contains(marker.as_str()),
            Matcher::Exactly(line) => text == line,
        }
    }
}

/// A running session: its connections, what each received, what is owed.
struct Session {
    devices: BTreeMap<u8, (LineConn, String)>,
    clients: BTreeMap<u8, LineConn>,
    /// Connections that sent something since they were last confirmed.
    dirty: BTreeSet<u32>,
    /// Every line each connection received, by connection number.
    seen: BTreeMap<u32, Vec<String>>,
    /// A name for each connection number (`C0#3`, `D1#4`).
    names: BTreeMap<u32, String>,
    expected: Vec<Expectation>,
    picks: Vec<Pick>,
    sent: usize,
}

impl Session {
    fn conn(&mut self, number: u32) -> Option<&mut LineConn> {
        self.clients
            .values_mut()
            .find(|conn| conn.number() == number)
            .or_else(|| {
                self.devices
                    .values_mut()
                    .map(|(conn, _)| conn)
                    .find(|conn| conn.number() == number)
            })
    }

    /// Confirms `number` (a `ping` answered), keeping what came before.
    async fn confirm(&mut self, number: u32) -> Result<(), Stop> {
        let name = self.names.get(&number).cloned().unwrap_or_default();
        let Some(conn) = self.conn(number) else {
            return Ok(());
        };
        let before = conn.sync().await.map_err(|stop| match stop {
            Stop::Skip(reason) | Stop::Fail(reason) => Stop::Fail(format!("on {name}: {reason}")),
            other => other,
        })?;
        self.seen
            .entry(number)
            .or_default()
            .extend(before.into_iter().map(|line| line.text));
        self.dirty.remove(&number);
        Ok(())
    }

    /// Confirms every connection that sent something since its last
    /// confirmation.
    async fn confirm_dirty(&mut self) -> Result<(), Stop> {
        let dirty: Vec<u32> = self.dirty.iter().copied().collect();
        for number in dirty {
            self.confirm(number).await?;
        }
        Ok(())
    }

    fn open_numbers(&self) -> Vec<u32> {
        self.clients
            .values()
            .map(LineConn::number)
            .chain(self.devices.values().map(|(conn, _)| conn.number()))
            .collect()
    }

    async fn send(&mut self, number: u32, line: &str) -> Result<(), Stop> {
        if let Some(conn) = self.conn(number) {
            conn.send(line).await?;
            self.dirty.insert(number);
        }
        Ok(())
    }
}

/// Runs one session and judges it.
pub async fn run(ctx: &mut Ctx, steps: &[Step]) -> Result<(), Stop> {
    let picks: Vec<Pick> = ctx.commands().marking().into_iter().cloned().collect();
    let mut session = Session {
        devices: BTreeMap::new(),
        clients: BTreeMap::new(),
        dirty: BTreeSet::new(),
        seen: BTreeMap::new(),
        names: BTreeMap::new(),
        expected: Vec::new(),
        picks,
        sent: 0,
    };
    let outcome = drive(ctx, &mut session, steps).await;
    let outcome = match outcome {
        Ok(()) => judge(&session),
        Err(stop) => Err(stop),
    };
    for conn in session.clients.values_mut() {
        conn.close().await;
    }
    for (conn, _) in session.devices.values_mut() {
        conn.close().await;
    }
    outcome
}

/// Carries out `steps`, then confirms every connection twice.
async fn drive(ctx: &mut Ctx, session: &mut Session, steps: &[Step]) -> Result<(), Stop> {
    let mut slots = Slots::default();
    for step in steps {
        if !slots.allows(*step) {
            ctx.note(&format!("{step}: not possible here, skipped"));
            continue;
        }
        if matches!(
            step,
            Step::Join(_) | Step::Leave(_) | Step::Open(_) | Step::Close(_)
        ) {
            session.confirm_dirty().await?;
        }
        slots.apply(*step);
        take(ctx, session, *step).await?;
    }
    for _ in 0..2 {
        for number in session.open_numbers() {
            session.confirm(number).await?;
        }
    }
    Ok(())
}

/// Carries out one (allowed) step.
async fn take(ctx: &mut Ctx, session: &mut Session, step: Step) -> Result<(), Stop> {
    match step {
        Step::Join(d) => {
            let id = ctx.fresh("g");
            let mut conn = ctx.connect(&format!("D{d} ({id})")).await?;
            conn.answer_pings = true;
            let number = conn.number();
            session
                .names
                .insert(number, format!("D{d}#{number} ({id})"));
            conn.send(&format!("id:{id}")).await?;
            session.devices.insert(d, (conn, id));
            session.confirm(number).await?;
        }
        Step::Open(c) => {
            let mut conn = ctx.connect(&format!("C{c}")).await?;
            let number = conn.number();
            session.names.insert(number, format!("C{c}#{number}"));
            conn.send("s").await?;
            session.clients.insert(c, conn);
            session.confirm(number).await?;
        }
        Step::Leave(d) => {
            if let Some(number) = session.devices.get(&d).map(|(conn, _)| conn.number()) {
                session.confirm(number).await?;
            }
            if let Some((mut conn, _)) = session.devices.remove(&d) {
                conn.close().await;
            }
        }
        Step::Close(c) => {
            if let Some(number) = session.clients.get(&c).map(LineConn::number) {
                session.confirm(number).await?;
            }
            if let Some(mut conn) = session.clients.remove(&c) {
                conn.close().await;
            }
        }
        Step::Data(d) => {
            let Some(number) = session.devices.get(&d).map(|(conn, _)| conn.number()) else {
                return Ok(());
            };
            let marker = format!("m{:07}=", ctx.marker());
            let to = session.clients.values().map(LineConn::number).collect();
            session.expected.push(Expectation {
                step: step.to_string(),
                matcher: Matcher::Contains(marker.clone()),
                to,
                tolerated: Some(number),
            });
            session.send(number, &format!("{marker}1")).await?;
        }
        Step::Command(c, to) => command(ctx, session, step, c, to).await?,
        Step::Ping(c) => {
            if let Some(number) = session.clients.get(&c).map(LineConn::number) {
                session.confirm(number).await?;
            }
        }
        Step::Refused(c) => {
            if let Some(number) = session.clients.get(&c).map(LineConn::number) {
                let line = format!("note={} from a client", ctx.marker());
                session.send(number, &line).await?;
            }
        }
    }
    Ok(())
}

/// A command step: a registry command whose parameters carry a marker.
async fn command(
    ctx: &mut Ctx,
    session: &mut Session,
    step: Step,
    client: u8,
    to: To,
) -> Result<(), Stop> {
    let Some(number) = session.clients.get(&client).map(LineConn::number) else {
        return Ok(());
    };
    if session.picks.is_empty() {
        ctx.note(&format!(
            "{step}: skipped (no registry command takes a parameter that can carry a marker)"
        ));
        return Ok(());
    }
    let pick = session.picks[session.sent % session.picks.len()].clone();
    session.sent += 1;
    let parameters = pick.parameters(ctx.marker());
    let (target, receivers): (String, BTreeSet<u32>) = match to {
        To::Device(d) => match session.devices.get(&d) {
            Some((conn, id)) => (id.clone(), [conn.number()].into()),
            None => return Ok(()),
        },
        To::All => (
            "all".to_owned(),
            session
                .devices
                .values()
                .map(|(conn, _)| conn.number())
                .collect(),
        ),
    };
    session.expected.push(Expectation {
        step: step.to_string(),
        matcher: Matcher::Exactly(pick.delivered(parameters.as_deref())),
        to: receivers,
        tolerated: None,
    });
    session
        .send(number, &pick.line(&target, parameters.as_deref()))
        .await
}

/// Every owed delivery arrived, and no other.
fn judge(session: &Session) -> Result<(), Stop> {
    let name = |number: &u32| {
        session
            .names
            .get(number)
            .cloned()
            .unwrap_or_else(|| format!("#{number}"))
    };
    let mut missing = Vec::new();
    let mut stray = Vec::new();
    let empty = Vec::new();
    for expectation in &session.expected {
        for number in session.names.keys() {
            let seen = session.seen.get(number).unwrap_or(&empty);
            let got = seen.iter().any(|text| expectation.matcher.matches(text));
            let owed = expectation.to.contains(number);
            if owed && !got {
                missing.push(format!("{} to {}", expectation.step, name(number)));
            } else if got && !owed && expectation.tolerated != Some(*number) {
                stray.push(format!("{} at {}", expectation.step, name(number)));
            }
        }
    }
    if !missing.is_empty() {
        return fail(format!(
            "lines the table owes did not arrive (before a later `pong` did): {}",
            missing.join(", ")
        ));
    }
    if !stray.is_empty() {
        return fail(format!(
            "lines reached connections the table does not send them to: {}",
            stray.join(", ")
        ));
    }
    Ok(())
}

/// How long one session may take at most, for the case limit: every
/// wait of every step (confirmations, connects, closes) and of the final
/// confirmations a full reply timeout.
pub fn session_bound(reply_timeout: Duration) -> Duration {
    reply_timeout * (7 * LENGTH as u32 + 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_a_function_of_the_seed_allowed_and_varied() {
        assert_eq!(steps(7), steps(7));
        assert_ne!(steps(7), steps(8));
        let mut kinds = std::collections::HashSet::new();
        let mut all_to_two = 0;
        for seed in 0..200 {
            let steps = steps(seed);
            assert_eq!(steps.len(), LENGTH);
            let mut slots = Slots::default();
            for step in &steps {
                assert!(slots.allows(*step), "seed {seed}: {step}");
                if matches!(step, Step::Command(_, To::All)) && slots.devices.len() == 2 {
                    all_to_two += 1;
                }
                slots.apply(*step);
                kinds.insert(std::mem::discriminant(step));
            }
        }
        assert_eq!(kinds.len(), 8);
        assert!(all_to_two > 20, "{all_to_two}");
    }

    #[test]
    fn steps_round_trip_through_json_and_read_well() {
        for step in steps(3) {
            let text = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<Step>(&text).unwrap(), step, "{text}");
        }
        assert_eq!(Step::Command(1, To::Device(0)).to_string(), "cmd C1>D0");
        assert_eq!(Step::Command(0, To::All).to_string(), "cmd C0>all");
        assert_eq!(
            serde_json::to_string(&Step::Command(0, To::All)).unwrap(),
            r#"{"step":"command","arg":[0,"all"]}"#
        );
    }

    #[test]
    fn markers_match_what_they_mark() {
        assert!(Matcher::Contains("m0000012=".into()).matches("c1-g0001:m0000012=1"));
        assert!(!Matcher::Contains("m0000012=".into()).matches("m00000123=1"));
        assert!(Matcher::Exactly("say:m1".into()).matches("say:m1"));
        assert!(!Matcher::Exactly("say:m1".into()).matches("say:m1x"));
    }
}
