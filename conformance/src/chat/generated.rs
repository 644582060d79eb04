//! `chat.generated.sessions`: random sessions from a seed, judged against
//! a model of the room.
//!
//! A session has three client slots (`C0`..`C2`). Its steps: a client
//! joins under a fresh name (connecting first if it has no connection;
//! after a leave it joins again on the same connection), sends a message
//! carrying a fresh marker, lists the users, leaves (and stays
//! connected), or disconnects without leaving. A step the session's state
//! does not allow (a send from a client that is not joined, ...: left over
//! after shrinking) is skipped.
//!
//! Ordering, never waiting: every step is a request answered before the
//! next is sent, so a broadcast it causes is queued before any later
//! request of any connection is handled; a client is synced (a
//! `get_users` answered) before it disconnects, and every open client at
//! the end. Only a disconnect is waited for: the server notices it when it
//! notices it, so the session waits (bounded by the reply timeout) for the
//! announcement on the first other joined client. With no other client
//! joined there is no one to tell; the name may then be listed, and a
//! later joiner may be told, until the session ends.
//!
//! The case judges what only sequences show: every join, leave and
//! disconnect reaches every other client joined at the time, once, and no
//! one else; every message reaches every other client joined at the time
//! and no one else (not its sender, not a client that left, even one that
//! joined again under a new name afterwards); `get_users` lists exactly
//! the session's joined users. Broadcasts are matched by the name they
//! mention or the marker they carry, and only the session's own: their
//! wording, `count`, trimming, the name in a `chat` broadcast and a
//! welcome to the joiner are other cases' points.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::conn::{chat_carrying, is_success, names, shown, system_naming, users, ChatConn};
use super::requests;
use super::target::Ctx;
use crate::session::Msg;
use crate::suite::{run_sessions, weighted_steps, SessionPlan, StepState};
use crate::verdict::{fail, Stop};

/// Client slots.
pub const SLOTS: u8 = 3;
/// How many sessions.
pub const SESSIONS: u64 = 8;
/// Steps in a session.
pub const LENGTH: usize = 16;
/// Most sessions a shrink may run.
const SHRINK_RUNS: usize = 40;

/// One step of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "step", content = "client")]
pub enum Step {
    /// Client `c` joins under a fresh name (connecting if it must).
    Join(u8),
    /// Client `c` sends a message with a fresh marker.
    Send(u8),
    /// Client `c` lists the users.
    Users(u8),
    /// Client `c` leaves and stays connected.
    Leave(u8),
    /// Client `c` closes its connection without leaving.
    Disconnect(u8),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Join(c) => write!(f, "join C{c}"),
            Step::Send(c) => write!(f, "send C{c}"),
            Step::Users(c) => write!(f, "users C{c}"),
            Step::Leave(c) => write!(f, "leave C{c}"),
            Step::Disconnect(c) => write!(f, "disconnect C{c}"),
        }
    }
}

/// Where a client slot is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Slot {
    /// No connection.
    #[default]
    Closed,
    /// Connected, not joined (it left).
    Open,
    /// Joined.
    Joined,
}

/// The slots: the model's view of the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots(pub [Slot; SLOTS as usize]);

impl Slots {
    fn get(&self, c: u8) -> Slot {
        self.0.get(usize::from(c)).copied().unwrap_or_default()
    }

    /// Whether `step` can be carried out now.
    pub fn allows(&self, step: Step) -> bool {
        match step {
            Step::Join(c) => c < SLOTS && self.get(c) != Slot::Joined,
            Step::Send(c) | Step::Users(c) | Step::Leave(c) => self.get(c) == Slot::Joined,
            Step::Disconnect(c) => self.get(c) != Slot::Closed,
        }
    }

    /// The state after `step` (which it allows).
    pub fn apply(&mut self, step: Step) {
        let (c, slot) = match step {
            Step::Join(c) => (c, Slot::Joined),
            Step::Leave(c) => (c, Slot::Open),
            Step::Disconnect(c) => (c, Slot::Closed),
            Step::Send(_) | Step::Users(_) => return,
        };
        if let Some(entry) = self.0.get_mut(usize::from(c)) {
            *entry = slot;
        }
    }
}

/// Every step a session could take, with its weight.
fn candidates() -> Vec<(Step, u32)> {
    (0..SLOTS)
        .flat_map(|c| {
            [
                (Step::Join(c), 4),
                (Step::Send(c), 4),
                (Step::Users(c), 2),
                (Step::Leave(c), 1),
                (Step::Disconnect(c), 1),
            ]
        })
        .collect()
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

/// What a broadcast is recognised by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A `system` broadcast naming this user.
    Name(String),
    /// A `chat` broadcast carrying this marker.
    Marker(String),
}

impl Key {
    fn matches(&self, msg: &Msg) -> bool {
        match self {
            Key::Name(name) => system_naming(msg, name),
            Key::Marker(marker) => chat_carrying(msg, marker),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Name(name) => write!(f, "announcements of {name}"),
            Key::Marker(marker) => write!(f, "message {marker}"),
        }
    }
}

/// How many broadcasts of a key a connection is owed: exactly `exact`,
/// and up to `tolerated` more.
#[derive(Clone, Copy, Debug, Default)]
struct Owed {
    exact: u32,
    tolerated: u32,
}

/// A running session: its clients, what each received, what is owed.
#[derive(Default)]
struct Session {
    clients: BTreeMap<u8, ChatConn>,
    /// The name each joined slot has.
    joined: BTreeMap<u8, String>,
    /// Every broadcast each connection received, by connection number.
    seen: BTreeMap<u32, Vec<Msg>>,
    /// A label for each connection number (`C1#4`).
    labels: BTreeMap<u32, String>,
    /// The names each connection joined under (a welcome may name them).
    own: BTreeMap<u32, BTreeSet<String>>,
    /// Every name the session used.
    names: BTreeSet<String>,
    /// Names that disconnected with no one joined to be told: they may be
    /// listed, and a later joiner may be told of them.
    unwitnessed: BTreeSet<String>,
    keys: BTreeSet<Key>,
    owed: BTreeMap<(u32, Key), Owed>,
}

impl Session {
    /// Moves what `slot`'s client received into `seen`.
    fn collect(&mut self, slot: u8) {
        if let Some(conn) = self.clients.get_mut(&slot) {
            let number = conn.number();
            let inbox = conn.take_inbox();
            self.seen.entry(number).or_default().extend(inbox);
        }
    }

    /// Every other joined client is owed one broadcast of `key`.
    fn owe_others(&mut self, from: u8, key: &Key) {
        self.keys.insert(key.clone());
        let others: Vec<u32> = self
            .joined
            .keys()
            .filter(|slot| **slot != from)
            .filter_map(|slot| self.clients.get(slot).map(ChatConn::number))
            .collect();
        for number in others {
            self.owed.entry((number, key.clone())).or_default().exact += 1;
        }
    }

    /// Syncs `slot`'s client and keeps what it received.
    async fn sync(&mut self, slot: u8) -> Result<(), Stop> {
        let conn = self.client(slot)?;
        let number = conn.number();
        let seen = conn.sync().await?;
        self.seen.entry(number).or_default().extend(seen);
        Ok(())
    }

    fn number(&self, slot: u8) -> Option<u32> {
        self.clients.get(&slot).map(ChatConn::number)
    }

    /// The client in `slot`, which the model says exists.
    fn client(&mut self, slot: u8) -> Result<&mut ChatConn, Stop> {
        self.clients
            .get_mut(&slot)
            .ok_or_else(|| Stop::Harness(format!("C{slot} has no connection (a suite bug)")))
    }
}

/// Runs one session and judges it.
pub async fn run(ctx: &mut Ctx, steps: &[Step]) -> Result<(), Stop> {
    let mut session = Session::default();
    let outcome = match drive(ctx, &mut session, steps).await {
        Ok(()) => judge(&session),
        Err(stop) => Err(stop),
    };
    for conn in session.clients.values_mut() {
        conn.disconnect();
    }
    outcome
}

/// Carries out `steps`, then syncs every open client.
async fn drive(ctx: &mut Ctx, session: &mut Session, steps: &[Step]) -> Result<(), Stop> {
    let mut slots = Slots::default();
    for step in steps {
        if !slots.allows(*step) {
            ctx.note(&format!("{step}: not possible here, skipped"));
            continue;
        }
        slots.apply(*step);
        take(ctx, session, *step).await.map_err(|stop| match stop {
            Stop::Skip(reason) | Stop::Fail(reason) => Stop::Fail(format!("{step}: {reason}")),
            harness => harness,
        })?;
    }
    let open: Vec<u8> = session.clients.keys().copied().collect();
    for slot in open {
        session.sync(slot).await.map_err(|stop| match stop {
            Stop::Skip(reason) => Stop::Fail(format!("the final sync of C{slot}: {reason}")),
            other => other,
        })?;
    }
    Ok(())
}

/// Carries out one (allowed) step.
async fn take(ctx: &mut Ctx, session: &mut Session, step: Step) -> Result<(), Stop> {
    match step {
        Step::Join(c) => join(ctx, session, c).await,
        Step::Send(c) => {
            let marker = ctx.fresh("m");
            session.owe_others(c, &Key::Marker(marker.clone()));
            let conn = session.client(c)?;
            let response = conn
                .request(
                    &requests::send(&format!("{marker} from C{c}")),
                    "`send_message`",
                )
                .await?;
            session.collect(c);
            expect_success(&response, "`send_message`")
        }
        Step::Users(c) => {
            let response = session
                .client(c)?
                .request(&requests::get_users(), "`get_users`")
                .await?;
            session.collect(c);
            judge_listing(session, &response)
        }
        Step::Leave(c) => {
            let Some(name) = session.joined.remove(&c) else {
                return Ok(());
            };
            session.owe_others(c, &Key::Name(name));
            let response = session
                .client(c)?
                .request(&requests::leave(), "`leave_chat`")
                .await?;
            session.collect(c);
            expect_success(&response, "`leave_chat`")
        }
        Step::Disconnect(c) => disconnect(session, c).await,
    }
}

fn expect_success(response: &Msg, what: &str) -> Result<(), Stop> {
    if is_success(response) {
        Ok(())
    } else {
        fail(format!("{what} got {}", shown(response)))
    }
}

/// Client `c` joins under a fresh name, connecting first if it must.
async fn join(ctx: &mut Ctx, session: &mut Session, c: u8) -> Result<(), Stop> {
    if !session.clients.contains_key(&c) {
        let conn = ctx.connect(&format!("C{c}")).await?;
        let number = conn.number();
        session.labels.insert(number, format!("C{c}#{number}"));
        session.clients.insert(c, conn);
    }
    let name = ctx.fresh("g");
    let number = session.number(c).unwrap_or_default();
    // A later joiner may hear of a disconnect no one was there to hear of.
    for gone in session.unwitnessed.clone() {
        session
            .owed
            .entry((number, Key::Name(gone)))
            .or_default()
            .tolerated += 1;
    }
    let given = session.client(c)?.join(&name).await?;
    session.collect(c);
    session.names.insert(given.clone());
    session.own.entry(number).or_default().insert(given.clone());
    session.owe_others(c, &Key::Name(given.clone()));
    session.joined.insert(c, given);
    Ok(())
}

/// Client `c` closes its connection, synced first; when it was joined,
/// the first other joined client (synced before the close, so the next
/// broadcast naming the user is the one about the close) waits for the
/// announcement.
async fn disconnect(session: &mut Session, c: u8) -> Result<(), Stop> {
    session.sync(c).await?;
    let witness = session.joined.keys().copied().find(|slot| *slot != c);
    if let (Some(witness), true) = (witness, session.joined.contains_key(&c)) {
        session.sync(witness).await?;
    }
    if let Some(mut conn) = session.clients.remove(&c) {
        conn.disconnect();
    }
    let Some(name) = session.joined.remove(&c) else {
        return Ok(());
    };
    let key = Key::Name(name.clone());
    session.owe_others(c, &key);
    let Some(witness) = witness else {
        session.unwitnessed.insert(name);
        return Ok(());
    };
    let conn = session.client(witness)?;
    let number = conn.number();
    let what =
        format!("a `system` broadcast naming {name} (C{c} disconnected without `leave_chat`)");
    let told = conn.expect_broadcast(&what, |msg| key.matches(msg)).await?;
    session.seen.entry(number).or_default().push(told);
    session.collect(witness);
    Ok(())
}

/// A `get_users` response lists exactly the session's joined users (and
/// perhaps names no one was there to hear leave).
fn judge_listing(session: &Session, response: &Msg) -> Result<(), Stop> {
    let Some(listed) = users(response).filter(|_| is_success(response)) else {
        return fail(format!(
            "`get_users` got {}, not `status: success` with `users`",
            shown(response)
        ));
    };
    let listed: BTreeSet<&str> = names(&listed)
        .into_iter()
        .filter(|name| session.names.contains(*name))
        .collect();
    let joined: BTreeSet<&str> = session.joined.values().map(String::as_str).collect();
    let missing: Vec<&&str> = joined.difference(&listed).collect();
    let extra: Vec<&&str> = listed
        .difference(&joined)
        .filter(|name| !session.unwitnessed.contains(**name))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    fail(format!(
        "`get_users` lists the session's users {listed:?}; the room has {joined:?} (missing: {missing:?}, not in the room: {extra:?})"
    ))
}

/// Every owed broadcast arrived as often as owed, and no other.
fn judge(session: &Session) -> Result<(), Stop> {
    let mut wrong = Vec::new();
    let empty = Vec::new();
    for (number, label) in &session.labels {
        let seen = session.seen.get(number).unwrap_or(&empty);
        let own = session.own.get(number);
        for key in &session.keys {
            if let Key::Name(name) = key {
                if own.is_some_and(|own| own.contains(name)) {
                    continue;
                }
            }
            let got = seen.iter().filter(|msg| key.matches(msg)).count() as u32;
            let owed = session
                .owed
                .get(&(*number, key.clone()))
                .copied()
                .unwrap_or_default();
            if got < owed.exact || got > owed.exact + owed.tolerated {
                let expected = if owed.tolerated > 0 {
                    format!("{} to {}", owed.exact, owed.exact + owed.tolerated)
                } else {
                    owed.exact.to_string()
                };
                wrong.push(format!("{label} got {got} of {key} (owed {expected})"));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        fail(format!(
            "broadcasts did not match the room (counted before the response to a later request): {}",
            wrong.join("; ")
        ))
    }
}

/// How long one session may take at most, for the case limit: every
/// wait of every step (at most four: a disconnect's two syncs and the
/// announcement) and of the final syncs a full reply timeout.
pub fn session_bound(reply_timeout: Duration) -> Duration {
    reply_timeout * (4 * LENGTH as u32 + u32::from(SLOTS) + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_a_function_of_the_seed_allowed_and_varied() {
        assert_eq!(steps(7), steps(7));
        assert_ne!(steps(7), steps(8));
        let mut kinds = std::collections::HashSet::new();
        let mut rejoins = 0;
        for seed in 0..200 {
            let steps = steps(seed);
            assert_eq!(steps.len(), LENGTH);
            let mut slots = Slots::default();
            for step in &steps {
                assert!(slots.allows(*step), "seed {seed}: {step}");
                if let Step::Join(c) = step {
                    if slots.get(*c) == Slot::Open {
                        rejoins += 1;
                    }
                }
                slots.apply(*step);
                kinds.insert(std::mem::discriminant(step));
            }
        }
        assert_eq!(kinds.len(), 5);
        assert!(rejoins > 20, "{rejoins}");
    }

    #[test]
    fn steps_round_trip_through_json_and_read_well() {
        for step in steps(3) {
            let text = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<Step>(&text).unwrap(), step, "{text}");
        }
        assert_eq!(Step::Disconnect(2).to_string(), "disconnect C2");
        assert_eq!(
            serde_json::to_string(&Step::Join(1)).unwrap(),
            r#"{"step":"join","client":1}"#
        );
        assert!(!Slots::default().allows(Step::Join(SLOTS)));
    }
}
