//! A subscription connection as a case sees it: a [`Session`] of the
//! subscription protocol (every frame recorded, every message checked both
//! ways) plus what the family needs: every message the server sends is
//! also checked for its `id` and `timestamp` and its events are kept for
//! the run ([`Observed`]); server `ping`s are answered with a `pong` of
//! the same `id` as a good client does; sends are paced under the
//! target's rate limit; and the requests cases use as tools (subscribe,
//! unsubscribe, ping, publish, the marker event that proves what did not
//! arrive).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use specwire_protocol::subscription::Message;
use tokio::time::Instant;

use super::events::{self, label_of, Kind, Resource};
use super::observed::{envelope_fault, Observed};
use crate::session::Session;
pub use crate::session::{Event, Msg};
use crate::verdict::Stop;

/// What a subscription message says.
pub trait SubMsg {
    /// `data.action` of a subscription reply.
    fn action(&self) -> Option<&str>;
    /// `error` of an `error` message.
    fn error_text(&self) -> Option<&str>;
    /// The label of an event the suite published.
    fn label(&self) -> Option<&str>;
    /// `id`.
    fn id(&self) -> Option<&str>;
    /// A member of `data`.
    fn data_str(&self, name: &str) -> Option<&str>;
}

impl SubMsg for Msg {
    fn action(&self) -> Option<&str> {
        (self.kind() == "system_status")
            .then(|| self.data_str("action"))
            .flatten()
    }

    fn error_text(&self) -> Option<&str> {
        (self.kind() == "error")
            .then(|| self.value.get("error").and_then(Value::as_str))
            .flatten()
    }

    fn label(&self) -> Option<&str> {
        label_of(&self.value)
    }

    fn id(&self) -> Option<&str> {
        self.value.get("id").and_then(Value::as_str)
    }

    fn data_str(&self, name: &str) -> Option<&str> {
        self.value
            .get("data")
            .and_then(|data| data.get(name))
            .and_then(Value::as_str)
    }
}

/// A short description of a subscription message for reasons.
pub fn describe(msg: &Msg) -> String {
    if let Some(text) = msg.error_text() {
        return format!("error {text:?}");
    }
    if let Some(action) = msg.action() {
        return format!(
            "system_status {action} {}:{} {}",
            msg.data_str("resourceType").unwrap_or("?"),
            msg.data_str("resourceId").unwrap_or("?"),
            msg.data_str("status").unwrap_or("(no status)")
        );
    }
    match (msg.kind(), msg.label()) {
        ("", _) => "a non-message".into(),
        (kind, Some(label)) => format!("{kind} [{label}]"),
        (kind, None) => match msg.id() {
            Some(id) => format!("{kind} {id:?}"),
            None => kind.to_owned(),
        },
    }
}

/// Paces sends under a rate limit: a bucket of half the limit, refilled
/// at half the limit per second, so the suite never trips a limit it was
/// told of (the rate case sends unpaced).
#[derive(Debug)]
struct Pacer {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(limit: u32) -> Pacer {
        let rate = (f64::from(limit) / 2.0).max(1.0);
        Pacer {
            rate,
            capacity: rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    async fn take(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.last = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

/// A connection to a subscription server.
pub struct Conn {
    session: Session<Message>,
    observed: Arc<Observed>,
    pacer: Option<Pacer>,
    /// The user its token names.
    pub user: String,
    /// The task its path subscribed (`/ws/tasks/{marker}`), when it was
    /// opened as a tool connection: [`Conn::window`] publishes there.
    pub marker: Option<String>,
    /// How long a reply may take.
    pub timeout: Duration,
}

impl Conn {
    pub(crate) fn new(
        session: Session<Message>,
        observed: Arc<Observed>,
        rate_limit: Option<u32>,
        user: &str,
    ) -> Conn {
        let timeout = session.reply_timeout;
        Conn {
            session,
            observed,
            pacer: rate_limit.map(Pacer::new),
            user: user.to_owned(),
            marker: None,
            timeout,
        }
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        self.session.note(text);
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Sends no longer paced (the rate case).
    pub fn unpaced(&mut self) {
        self.pacer = None;
    }

    async fn pace(&mut self) {
        if let Some(pacer) = &mut self.pacer {
            pacer.take().await;
        }
    }

    /// Sends a message the schema must accept (a harness error otherwise).
    pub async fn send(&mut self, value: &Value) -> Result<(), Stop> {
        self.pace().await;
        self.session.send_value(value).await
    }

    /// Sends deliberately invalid text, unchecked.
    pub async fn send_invalid(&mut self, text: &str) -> Result<(), Stop> {
        self.pace().await;
        self.session.send_invalid(text).await
    }

    /// Starts the close handshake.
    pub async fn close(&mut self) -> Result<(), Stop> {
        self.session.close().await
    }

    /// The next event within `timeout`, each message checked and kept for
    /// the run; a server `ping` is answered (and returned too).
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let event = self.session.next(timeout).await?;
        if let Event::Message(msg) = &event {
            if let Some(problem) = &msg.invalid {
                self.observed.invalid(&msg.text, problem);
            }
            if let Some(fault) = envelope_fault(&msg.value) {
                self.observed
                    .envelope_problem(format!("{fault}: {}", msg.text));
            }
            if events::id_prefix(&msg.value).is_some() {
                self.observed.event(&msg.value);
            }
            if msg.kind() == "ping" {
                if let Some(id) = msg.id() {
                    let pong = json!({"type": "pong", "id": id,
                                      "timestamp": specwire_runtime::clock::now_rfc3339()});
                    // A closed connection shows at the next read.
                    let _ = self.send(&pong).await;
                }
            }
        }
        Some(event)
    }

    /// Reads until a message matches `wanted`; returns it and the
    /// messages before it. Fails when nothing matches within `timeout` or
    /// the connection closes.
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Msg) -> bool,
    ) -> Result<(Msg, Vec<Msg>), Stop> {
        self.session.waiting_for(what);
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Message(msg)) if wanted(&msg) => return Ok((msg, before)),
                Some(Event::Message(msg)) => before.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(code)) => {
                    return Err(Stop::Fail(format!(
                        "the server closed the connection ({}) while the suite waited for {what}",
                        code.map_or("no close code".into(), |code| format!("code {code}"))
                    )))
                }
                None => {
                    let seen: Vec<String> = before.iter().map(describe).collect();
                    return Err(Stop::Fail(format!(
                        "no {what} within {}{}",
                        humantime::format_duration(timeout),
                        if seen.is_empty() {
                            " (nothing arrived)".to_owned()
                        } else {
                            format!(" (got: {})", seen.join(", "))
                        }
                    )));
                }
            }
        }
    }

    /// Every message until the connection closes or `timeout` passes, and
    /// the close code (`Some(None)`: closed without a code; `None`: still
    /// open).
    pub async fn until_closed(&mut self, timeout: Duration) -> (Vec<Msg>, Option<Option<u16>>) {
        self.session
            .waiting_for("the server to close the connection");
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Message(msg)) => seen.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(code)) => return (seen, Some(code)),
                None => return (seen, None),
            }
        }
    }

    /// Sends a subscribe (`action` `subscribe`) or unsubscribe request and
    /// waits for its answer: a subscription reply or an `error`. The
    /// reply's content is the caller's to judge.
    pub async fn request(&mut self, action: &str, resource: &Resource) -> Result<Msg, Stop> {
        self.send(&events::request(action, resource)).await?;
        let timeout = self.timeout;
        let (reply, _) = self
            .expect(
                &format!("an answer to {action} {resource}"),
                timeout,
                |msg| msg.action().is_some() || msg.kind() == "error",
            )
            .await?;
        Ok(reply)
    }

    /// Subscribes to `resource` as a tool: any subscription reply will do
    /// (its content is `subscription.subscribe.reply`'s point); an `error`
    /// leaves nothing to judge.
    pub async fn subscribe(&mut self, resource: &Resource) -> Result<(), Stop> {
        self.tool_request("subscribe", resource).await
    }

    /// Unsubscribes from `resource` as a tool, like [`Conn::subscribe`].
    pub async fn unsubscribe(&mut self, resource: &Resource) -> Result<(), Stop> {
        self.tool_request("unsubscribe", resource).await
    }

    async fn tool_request(&mut self, action: &str, resource: &Resource) -> Result<(), Stop> {
        let reply = self
            .request(action, resource)
            .await
            .map_err(|stop| nothing_to_judge(stop, "subscription.subscribe.reply"))?;
        match reply.error_text() {
            None => Ok(()),
            Some(text) => Err(Stop::Skip(format!(
                "nothing to judge: {action} {resource} was refused with error {text:?} (subscription.subscribe.reply reports that)"
            ))),
        }
    }

    /// Subscribes to the user its own token names.
    pub async fn subscribe_own_user(&mut self) -> Result<(), Stop> {
        let user = Resource::new(Kind::User, self.user.clone());
        self.subscribe(&user).await
    }

    /// Sends a `ping` with a fresh id and waits for a `pong` (any `id`:
    /// whether it is the ping's is `subscription.heartbeat.client-ping`'s
    /// point); returns it and what came before.
    pub async fn ping(&mut self) -> Result<(Msg, Vec<Msg>), Stop> {
        let id = format!("ping-{}", events::label());
        self.send(&events::ping(&id)).await?;
        let timeout = self.timeout;
        self.expect("a pong", timeout, |msg| msg.kind() == "pong")
            .await
    }

    /// Checks the connection is still open and served after `after`: a
    /// `ping` is answered. Returns what came before the pong.
    pub async fn still_open(&mut self, after: &str) -> Result<Vec<Msg>, Stop> {
        if self.is_closed() {
            return Err(Stop::Fail(format!(
                "the server closed the connection after {after}"
            )));
        }
        match self.ping().await {
            Ok((_, before)) => Ok(before),
            Err(Stop::Fail(reason)) => Err(Stop::Fail(format!(
                "the connection is not served after {after}: {reason}"
            ))),
            Err(other) => Err(other),
        }
    }

    /// Publishes `event` (this must be an admin connection). Any answer is
    /// left unread: whether a valid publish gets none is
    /// `subscription.publish.accepted`'s point.
    pub async fn publish(&mut self, event: &Value) -> Result<(), Stop> {
        self.send(&events::publish(event)).await
    }

    /// Reads until the events labelled `labels` have all arrived; returns
    /// every message read. Fails naming the missing ones.
    pub async fn until_labels(&mut self, labels: &[String], what: &str) -> Result<Vec<Msg>, Stop> {
        let mut seen: Vec<Msg> = Vec::new();
        let missing = |seen: &[Msg]| -> Vec<String> {
            labels
                .iter()
                .filter(|label| !seen.iter().any(|msg| msg.label() == Some(label.as_str())))
                .cloned()
                .collect()
        };
        let deadline = Instant::now() + self.timeout;
        while !missing(&seen).is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let wanted = missing(&seen);
            match self
                .expect(what, left, |msg| {
                    msg.label()
                        .is_some_and(|label| wanted.iter().any(|w| w == label))
                })
                .await
            {
                Ok((msg, before)) => {
                    seen.extend(before);
                    seen.push(msg);
                }
                Err(Stop::Fail(reason)) => {
                    return Err(Stop::Fail(format!(
                        "{reason}; missing {} of {} events",
                        missing(&seen).len(),
                        labels.len()
                    )))
                }
                Err(other) => return Err(other),
            }
        }
        Ok(seen)
    }

    /// Has `admin` publish an event to this connection's marker task and
    /// reads until it arrives: returns everything that came before it.
    /// Events are delivered in publication order, so what was published
    /// before the marker and is not among these did not reach this
    /// connection. No marker arriving leaves nothing to judge.
    pub async fn window(&mut self, admin: &mut Conn) -> Result<Vec<Msg>, Stop> {
        let Some(marker) = self.marker.clone() else {
            return Err(Stop::Harness(
                "a connection without a marker task was asked for a window (a suite bug)".into(),
            ));
        };
        let label = events::label();
        let event = events::task_event(
            events::EventKind::TaskProgress,
            &marker,
            &format!("{marker}-experiment"),
            &label,
        );
        admin.publish(&event).await?;
        let timeout = self.timeout;
        let (_, before) = self
            .expect(
                "a later event to the connection's path task (the marker)",
                timeout,
                |msg| msg.label() == Some(label.as_str()),
            )
            .await
            .map_err(|stop| nothing_to_judge(stop, "subscription.path.resource-subscribed"))?;
        Ok(before)
    }
}

/// A `Fail` that only says nothing came in time becomes a skip naming the
/// case that reports the absence: the caller's point cannot be judged.
/// Other stops pass through.
pub fn nothing_to_judge(stop: Stop, reporter: &str) -> Stop {
    match stop {
        Stop::Fail(reason) if reason.starts_with("no ") => Stop::Skip(format!(
            "nothing to judge: {reason} ({reporter} reports that)"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_lets_a_burst_of_half_the_limit_through_then_paces() {
        // 100 a second, a bucket of 100.
        let mut pacer = Pacer::new(200);
        let started = Instant::now();
        for _ in 0..100 {
            pacer.take().await;
        }
        let burst = started.elapsed();
        assert!(burst < Duration::from_millis(50), "{burst:?}");
        for _ in 0..10 {
            pacer.take().await;
        }
        let paced = started.elapsed();
        assert!(paced >= Duration::from_millis(85), "{paced:?}");
    }

    #[test]
    fn missing_answers_are_nothing_to_judge() {
        let skipped = nothing_to_judge(Stop::Fail("no pong within 1s".into()), "x.y.z");
        assert!(matches!(skipped, Stop::Skip(reason) if reason.contains("x.y.z")));
        let failed = nothing_to_judge(Stop::Fail("closed".into()), "x.y.z");
        assert_eq!(failed, Stop::Fail("closed".into()));
    }
}
