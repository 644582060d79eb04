//! One connection to a device hub as a case sees it: WebSocket text
//! frames, each one line of the device grammar.
//!
//! Every frame sent and received goes into the case's transcript. Every
//! line the suite sends is checked against the client-to-server grammar
//! first (a suite bug is a harness error, so a bug shared by a reference
//! hub and the judge cannot hide); every line the hub sends is checked
//! against the server-to-client grammar, and a line that breaks it is
//! logged for `device.grammar.hub-lines` and otherwise handed to the case
//! as it is, so one fault fails the case about it and no other.
//!
//! A device connection answers the hub's `ping` lines with `pong`, as a
//! good device does ([`LineConn::answer_pings`]), unless a liveness case
//! wants it deaf. The ordering tool is [`LineConn::sync`]: a `ping` whose
//! `pong` comes after everything the hub queued for this connection before
//! it handled the `ping`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_protocol::device::{Line as Grammar, LineProtocol};
use specwire_protocol::Direction as Wire;
use specwire_runtime::net::WsStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::suite::{lock, RunLog};
use crate::transcript::{hex, Direction, Transcript};
use crate::verdict::Stop;

/// A line from the hub, parsed but not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The text as received (empty for a binary frame).
    pub text: String,
    /// Why it breaks the server-to-client grammar, if it does.
    pub invalid: Option<String>,
}

impl Line {
    /// Whether it is the hub's liveness `ping`.
    pub fn is_hub_ping(&self) -> bool {
        self.text == "ping"
    }

    /// Whether it answers a `ping` as far as a tool is concerned: `pong`
    /// in any letter case (its exact text is `device.ping.pong`'s point).
    pub fn is_pong(&self) -> bool {
        self.text.eq_ignore_ascii_case("pong")
    }

    /// Whether it is an `error:` line.
    pub fn is_error(&self) -> bool {
        self.text.starts_with("error:")
    }
}

/// What arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A text (or binary) frame.
    Line(Line),
    /// A close frame (its code) or the end of the stream.
    Closed(Option<u16>),
}

/// Why `text` is not a line the suite may send, if it is not.
pub fn refused(text: &str) -> Option<String> {
    Grammar::parse_from(text, Some(Wire::ClientToServer))
        .err()
        .map(|error| {
            format!(
                "the suite was about to send a line the device grammar does not allow ({error}); a bug of the suite: {text:?}"
            )
        })
}

/// Why `text` breaks the server-to-client grammar, if it does.
pub fn hub_line_fault(text: &str) -> Option<String> {
    Grammar::parse_from(text, Some(Wire::ServerToClient))
        .err()
        .map(|error| error.to_string())
}

/// The lines of `lines` that are not the hub's `ping`s, as text.
pub fn not_pings(lines: &[Line]) -> Vec<&str> {
    lines
        .iter()
        .filter(|line| !line.is_hub_ping())
        .map(|line| line.text.as_str())
        .collect()
}

/// The lines of `lines` that contain `needle`, as text.
pub fn carrying<'a>(lines: &'a [Line], needle: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|line| line.text.contains(needle))
        .map(|line| line.text.as_str())
        .collect()
}

/// `lines` quoted and `, `-separated, for reasons.
pub fn quoted(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|line| format!("{line:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A connection to a device hub.
pub struct LineConn {
    ws: Option<Box<WsStream>>,
    id: u32,
    transcript: Arc<Mutex<Transcript>>,
    log: Arc<RunLog>,
    /// How long a reply may take.
    pub timeout: Duration,
    /// Whether the hub's `ping` lines are answered with `pong`.
    pub answer_pings: bool,
}

impl LineConn {
    /// A connection over `ws`, number `id` in `transcript`.
    pub fn new(
        ws: WsStream,
        id: u32,
        transcript: Arc<Mutex<Transcript>>,
        log: Arc<RunLog>,
        timeout: Duration,
    ) -> LineConn {
        LineConn {
            ws: Some(Box::new(ws)),
            id,
            transcript,
            log,
            timeout,
            answer_pings: false,
        }
    }

    /// Its number in the transcript.
    pub fn number(&self) -> u32 {
        self.id
    }

    /// Whether the hub closed the connection.
    pub fn is_closed(&self) -> bool {
        self.ws.is_none()
    }

    fn record(&self, direction: Direction, kind: &str, data: &str) {
        lock(&self.transcript).record(direction, self.id, kind, data);
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        lock(&self.transcript).note(self.id, text);
    }

    /// The case now waits for `what`.
    pub fn waiting_for(&self, what: &str) {
        self.log.waiting_for(what);
    }

    /// Sends a line the client-to-server grammar must allow (a harness
    /// error otherwise). A send that fails means the hub closed the
    /// connection: a failure.
    pub async fn send(&mut self, text: &str) -> Result<(), Stop> {
        if let Some(problem) = refused(text) {
            self.note(&problem);
            return Err(Stop::Harness(problem));
        }
        self.record(Direction::Sent, "text", text);
        self.send_frame(Frame::text(text.to_owned())).await
    }

    /// Starts the close handshake and waits (bounded) for the hub's
    /// answer, so the hub has let the connection go before the next case.
    pub async fn close(&mut self) {
        if self.ws.is_none() {
            return;
        }
        self.record(Direction::Sent, "close", "1000");
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "conformance case done".into(),
        };
        if self.send_frame(Frame::Close(Some(frame))).await.is_err() {
            return;
        }
        let deadline = Instant::now() + self.timeout;
        while self.ws.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Closed(_)) | None => break,
                Some(Event::Line(_)) => {}
            }
        }
        self.ws = None;
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        let timeout = self.timeout;
        let Some(ws) = self.ws.as_mut() else {
            return Err(Stop::Fail("the hub had closed the connection".into()));
        };
        match tokio::time::timeout(timeout, ws.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                self.note(&format!("send failed: {error}"));
                self.ws = None;
                Err(Stop::Fail(format!(
                    "the hub closed the connection (send failed: {error})"
                )))
            }
            Err(_) => Err(Stop::Fail(format!(
                "the hub did not take a frame within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    /// The next event within `timeout`; `None` when nothing came. A hub
    /// `ping` is answered when [`LineConn::answer_pings`] is set (and
    /// returned too).
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let ws = self.ws.as_mut()?;
            let frame = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
            let event = match frame {
                None => self.ended("the stream ended"),
                Some(Err(error)) => self.ended(&format!("connection error: {error}")),
                Some(Ok(Frame::Text(text))) => {
                    let text = text.as_str().to_owned();
                    self.record(Direction::Received, "text", &text);
                    let line = self.check(text);
                    if line.is_hub_ping() && self.answer_pings {
                        // A closed connection shows at the next read.
                        let _ = self.send("pong").await;
                    }
                    Event::Line(line)
                }
                Some(Ok(Frame::Binary(bytes))) => {
                    self.record(Direction::Received, "binary", &hex(&bytes));
                    let problem = format!(
                        "a binary frame of {} bytes (device lines are text frames)",
                        bytes.len()
                    );
                    self.log_invalid(&problem, &hex(&bytes));
                    Event::Line(Line {
                        text: String::new(),
                        invalid: Some(problem),
                    })
                }
                Some(Ok(Frame::Close(frame))) => {
                    let code = frame.as_ref().map(|frame| u16::from(frame.code));
                    self.record(
                        Direction::Received,
                        "close",
                        &code.map_or("no code".into(), |code| code.to_string()),
                    );
                    self.ws = None;
                    Event::Closed(code)
                }
                // tungstenite answers WebSocket pings itself.
                Some(Ok(Frame::Ping(payload))) => {
                    self.record(Direction::Received, "ping", &hex(&payload));
                    continue;
                }
                Some(Ok(Frame::Pong(_) | Frame::Frame(_))) => continue,
            };
            return Some(event);
        }
    }

    fn ended(&mut self, why: &str) -> Event {
        self.record(Direction::Note, "close", why);
        self.ws = None;
        Event::Closed(None)
    }

    fn check(&self, text: String) -> Line {
        let invalid = hub_line_fault(&text);
        if let Some(problem) = &invalid {
            self.log_invalid(problem, &text);
        }
        Line { text, invalid }
    }

    fn log_invalid(&self, problem: &str, text: &str) {
        self.note(&format!("that line breaks the device grammar: {problem}"));
        self.log.invalid(format!("{problem}: {text:?}"));
    }

    /// Reads until a line matches `wanted`; returns it and the lines read
    /// before it. Fails when nothing matches within `timeout` (the reason
    /// starts with `no `) or the connection closes.
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Line) -> bool,
    ) -> Result<(Line, Vec<Line>), Stop> {
        self.waiting_for(what);
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Line(line)) if wanted(&line) => return Ok((line, before)),
                Some(Event::Line(line)) => before.push(line),
                Some(Event::Closed(code)) => {
                    return Err(Stop::Fail(format!(
                        "the hub closed the connection ({}) while the suite waited for {what}{}",
                        code.map_or("no close code".into(), |code| format!("code {code}")),
                        got(&before)
                    )))
                }
                None => {
                    return Err(Stop::Fail(format!(
                        "no {what} within {}{}",
                        humantime::format_duration(timeout),
                        got(&before)
                    )))
                }
            }
        }
    }

    /// Sends `ping` and reads until its `pong` (any letter case): returns
    /// the lines that came before it. Whatever the hub queued for this
    /// connection before it handled the `ping` is among them. No `pong`
    /// in time leaves the caller nothing to judge (a skip naming
    /// `device.ping.pong`); a close is a failure.
    pub async fn sync(&mut self) -> Result<Vec<Line>, Stop> {
        self.send("ping").await?;
        let timeout = self.timeout;
        match self
            .expect("the `pong` of a later `ping`", timeout, Line::is_pong)
            .await
        {
            Ok((_, before)) => Ok(before),
            Err(stop) => Err(nothing_to_judge(stop, "device.ping.pong")),
        }
    }

    /// Sends `ping` and reads until its `pong` or the end of the
    /// connection: either shows the hub has handled what was sent before
    /// (an `error:` for it is among the lines read, before the `pong`).
    /// Returns the lines read (the last is the `pong`, unless the
    /// connection closed), and whether it closed.
    pub async fn handled(&mut self) -> Result<(Vec<Line>, bool), Stop> {
        if self.is_closed() {
            return Ok((Vec::new(), true));
        }
        self.send("ping").await?;
        let timeout = self.timeout;
        self.waiting_for("the `pong` of a later `ping`, or the end of the connection");
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Line(line)) => {
                    let done = line.is_pong();
                    seen.push(line);
                    if done {
                        return Ok((seen, false));
                    }
                }
                Some(Event::Closed(_)) => return Ok((seen, true)),
                None => {
                    return Err(Stop::Skip(format!(
                        "nothing to judge: the `pong` of a later `ping` did not come within {}{} (device.ping.pong reports that)",
                        humantime::format_duration(timeout),
                        got(&seen)
                    )))
                }
            }
        }
    }

    /// Every line until the connection closes or `timeout` passes, and
    /// the close (`Some(code)`) if it came.
    pub async fn until_closed(&mut self, timeout: Duration) -> (Vec<Line>, Option<Option<u16>>) {
        self.waiting_for("the hub to close the connection");
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(Event::Line(line)) => seen.push(line),
                Some(Event::Closed(code)) => return (seen, Some(code)),
                None => return (seen, None),
            }
        }
    }
}

/// ` (got: ...)` for the lines in `seen`, or ` (nothing arrived)`.
fn got(seen: &[Line]) -> String {
    if seen.is_empty() {
        " (nothing arrived)".to_owned()
    } else {
        let texts: Vec<&str> = seen.iter().map(|line| line.text.as_str()).collect();
        format!(" (got: {})", quoted(&texts))
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

    #[test]
    fn the_suites_lines_and_the_hubs_are_checked_against_their_grammar() {
        for text in [
            "id:lamp-1",
            "s",
            "ping",
            "cmd:all:say:time: 12:00",
            "temp=1",
        ] {
            assert_eq!(refused(text), None, "{text}");
        }
        assert!(refused("").unwrap().contains("a bug of the suite"));
        for text in ["pong", "ping", "error:why", "lamp-1:", "reset", "say:a b:c"] {
            assert_eq!(hub_line_fault(text), None, "{text}");
        }
        for text in ["", " pong", ":x", "hello world", "error reason"] {
            assert!(hub_line_fault(text).is_some(), "{text:?}");
        }
    }

    #[test]
    fn lines_are_told_apart_as_the_cases_need() {
        let line = |text: &str| Line {
            text: text.into(),
            invalid: None,
        };
        assert!(line("PONG").is_pong() && line("pong").is_pong());
        assert!(!line("pong ").is_pong());
        assert!(line("error:x").is_error());
        let lines = [line("ping"), line("ok"), line("lamp:m1")];
        assert_eq!(not_pings(&lines), ["ok", "lamp:m1"]);
        assert_eq!(carrying(&lines, "m1"), ["lamp:m1"]);
        assert_eq!(quoted(&["a", "b"]), "\"a\", \"b\"");
    }
}
