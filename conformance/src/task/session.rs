//! One WebSocket connection to the target, as a case sees it: every frame
//! sent and received goes into the case's transcript, and every message
//! the target sends is checked against the schema. A broken message is
//! recorded for `task.envelope.valid-replies`, and otherwise handed to the
//! case as it is, so one fault fails the case about it and no other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use specwire_protocol::task::Message;
use specwire_protocol::Direction as Wire;
use specwire_protocol::JsonProtocol;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use specwire_runtime::task::messages::{self, Assignment, Built};

use super::observed::Observed;
use crate::transcript::{hex, Direction, Transcript};
use crate::verdict::Stop;

/// A message from the target, parsed but not trusted.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    /// The JSON value (`Null` when the text was not JSON).
    pub value: Value,
    /// The text as received.
    pub text: String,
    /// Why it breaks the schema, if it does.
    pub invalid: Option<String>,
}

impl Msg {
    /// `type`, or `""`.
    pub fn kind(&self) -> &str {
        self.value.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// `payload` (or `Null`).
    pub fn payload(&self) -> &Value {
        self.value.get("payload").unwrap_or(&Value::Null)
    }

    /// `payload.taskId`.
    pub fn task_id(&self) -> Option<&str> {
        self.payload().get("taskId").and_then(Value::as_str)
    }

    /// Whether it is about `task_id`.
    pub fn is_about(&self, task_id: &str) -> bool {
        self.task_id() == Some(task_id)
    }

    /// `payload.status`.
    pub fn status(&self) -> Option<&str> {
        self.payload().get("status").and_then(Value::as_str)
    }

    /// `payload.errorCode` of an `Error` or `TaskFailed`.
    pub fn error_code(&self) -> Option<&str> {
        self.payload().get("errorCode").and_then(Value::as_str)
    }

    /// `payload.progressPercentage`.
    pub fn progress(&self) -> Option<i64> {
        self.payload()
            .get("progressPercentage")
            .and_then(Value::as_i64)
    }

    /// `payload.acknowledgmentId` of an `Ack`.
    pub fn acknowledgment_id(&self) -> Option<&str> {
        self.payload()
            .get("acknowledgmentId")
            .and_then(Value::as_str)
    }

    /// `payload.relatedMessageId` of an `Error`.
    pub fn related(&self) -> Option<&str> {
        self.payload()
            .get("relatedMessageId")
            .and_then(Value::as_str)
    }

    /// A terminal message: `TaskResult`, `TaskFailed`, or a
    /// `TaskStatusUpdate` with status `Cancelled`.
    pub fn is_terminal(&self) -> bool {
        match self.kind() {
            "TaskResult" | "TaskFailed" => true,
            "TaskStatusUpdate" => self.status() == Some("Cancelled"),
            _ => false,
        }
    }

    /// An `Error` with `code` (any code when `None`).
    pub fn is_error(&self, code: Option<&str>) -> bool {
        self.kind() == "Error" && code.is_none_or(|code| self.error_code() == Some(code))
    }

    /// A one-line description for failure reasons.
    pub fn describe(&self) -> String {
        let mut text = self.kind().to_owned();
        if text.is_empty() {
            text = "a non-message".into();
        }
        if let Some(status) = self.status() {
            text.push_str(&format!(" {status}"));
        }
        if let Some(code) = self.error_code() {
            text.push_str(&format!(" {code}"));
        }
        text
    }
}

/// What arrived.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A text message.
    Message(Msg),
    /// A pong frame with this payload.
    Pong(Vec<u8>),
    /// A close frame (code) or the end of the stream.
    Closed(Option<u16>),
}

/// A connection to the target.
pub struct Conn {
    ws: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    id: u32,
    transcript: Arc<Mutex<Transcript>>,
    observed: Arc<Observed>,
    /// When each task assigned on this connection was first assigned.
    assigned: HashMap<String, Instant>,
    /// Replies shorter waits wait for.
    pub reply_timeout: Duration,
}

fn lock(transcript: &Mutex<Transcript>) -> std::sync::MutexGuard<'_, Transcript> {
    transcript
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Conn {
    pub(crate) fn new(
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        id: u32,
        transcript: Arc<Mutex<Transcript>>,
        observed: Arc<Observed>,
        reply_timeout: Duration,
    ) -> Conn {
        Conn {
            ws: Some(ws),
            id,
            transcript,
            observed,
            assigned: HashMap::new(),
            reply_timeout,
        }
    }

    fn record(&self, direction: Direction, kind: &str, data: &str) {
        lock(&self.transcript).record(direction, self.id, kind, data);
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        lock(&self.transcript).note(self.id, text);
    }

    /// Sends a text frame. A send that fails means the target closed the
    /// connection: a failure of the case.
    pub async fn send(&mut self, text: &str) -> Result<(), Stop> {
        self.record(Direction::Sent, "text", text);
        self.send_frame(Frame::text(text.to_owned())).await
    }

    /// Sends a JSON value.
    pub async fn send_value(&mut self, value: &Value) -> Result<(), Stop> {
        self.send(&value.to_string()).await
    }

    /// Sends an `AssignTask` (with `acknowledgment_id`, if any) and
    /// remembers when, so the task's duration can be measured at its end.
    pub async fn assign(
        &mut self,
        assignment: &Assignment,
        acknowledgment_id: Option<&str>,
    ) -> Result<Built, Stop> {
        let message = messages::assign(assignment, acknowledgment_id);
        self.send(&message.text).await?;
        self.assigned
            .entry(assignment.task_id.clone())
            .or_insert_with(Instant::now);
        Ok(message)
    }

    /// The case now waits for `what` (a case that runs out of time says
    /// what it waited for).
    pub fn waiting_for(&self, what: &str) {
        self.observed.waiting_for(what);
    }

    /// The terminal message of `task_id` arrived now: its duration goes
    /// into the run's timings (the generated sessions pace on them).
    pub fn ended(&self, task_id: &str) {
        if let Some(sent) = self.assigned.get(task_id) {
            self.observed.task_took(sent.elapsed());
        }
    }

    /// Sends a ping with `payload`.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Stop> {
        self.record(Direction::Sent, "ping", &hex(payload));
        self.send_frame(Frame::Ping(payload.to_vec().into())).await
    }

    /// Starts the close handshake with code 1000.
    pub async fn close(&mut self) -> Result<(), Stop> {
        self.record(Direction::Sent, "close", "1000");
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "conformance case done".into(),
        };
        self.send_frame(Frame::Close(Some(frame))).await
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        let Some(ws) = self.ws.as_mut() else {
            return Err(Stop::Fail("the target had closed the connection".into()));
        };
        match tokio::time::timeout(self.reply_timeout, ws.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                self.note(&format!("send failed: {error}"));
                self.ws = None;
                Err(Stop::Fail(format!(
                    "the target closed the connection (send failed: {error})"
                )))
            }
            Err(_) => Err(Stop::Fail(format!(
                "the target did not take a frame within {:?}",
                self.reply_timeout
            ))),
        }
    }

    /// The next event within `timeout`; `None` when nothing came.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ws = self.ws.as_mut()?;
            let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            let event = match frame {
                None => {
                    self.record(Direction::Note, "close", "the stream ended");
                    self.ws = None;
                    Event::Closed(None)
                }
                Some(Err(error)) => {
                    self.record(
                        Direction::Note,
                        "close",
                        &format!("connection error: {error}"),
                    );
                    self.ws = None;
                    Event::Closed(None)
                }
                Some(Ok(Frame::Text(text))) => {
                    self.record(Direction::Received, "text", text.as_str());
                    Event::Message(self.check(text.as_str().to_owned()))
                }
                Some(Ok(Frame::Binary(bytes))) => {
                    self.record(Direction::Received, "binary", &hex(&bytes));
                    let mut msg = self.check(String::new());
                    msg.invalid = Some(format!(
                        "a binary frame of {} bytes (task messages are JSON text)",
                        bytes.len()
                    ));
                    self.log_invalid(&msg);
                    Event::Message(msg)
                }
                Some(Ok(Frame::Pong(payload))) => {
                    self.record(Direction::Received, "pong", &hex(&payload));
                    Event::Pong(payload.to_vec())
                }
                Some(Ok(Frame::Ping(payload))) => {
                    // tungstenite answers it; keep reading.
                    self.record(Direction::Received, "ping", &hex(&payload));
                    continue;
                }
                Some(Ok(Frame::Close(frame))) => {
                    let code = frame.as_ref().map(|frame| u16::from(frame.code));
                    self.record(
                        Direction::Received,
                        "close",
                        &code.map_or("no code".into(), |code| code.to_string()),
                    );
                    Event::Closed(code)
                }
                Some(Ok(Frame::Frame(_))) => continue,
            };
            return Some(event);
        }
    }

    fn check(&self, text: String) -> Msg {
        let (value, invalid) = match serde_json::from_str::<Value>(&text) {
            Ok(value) => {
                let invalid = Message::decode_from(value.clone(), Some(Wire::ServerToClient))
                    .err()
                    .map(|error| error.to_string());
                (value, invalid)
            }
            Err(error) => (Value::Null, Some(format!("not JSON: {error}"))),
        };
        let msg = Msg {
            value,
            text,
            invalid,
        };
        self.log_invalid(&msg);
        msg
    }

    fn log_invalid(&self, msg: &Msg) {
        if let Some(problem) = &msg.invalid {
            self.note(&format!("that message breaks the schema: {problem}"));
            self.observed.invalid(format!("{problem}: {}", msg.text));
        }
    }

    /// Reads until a message matches `wanted`; returns it and the messages
    /// read before it. Fails when nothing matches within `timeout` or the
    /// connection closes.
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Msg) -> bool,
    ) -> Result<(Msg, Vec<Msg>), Stop> {
        self.observed.waiting_for(what);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Event::Message(msg)) if wanted(&msg) => return Ok((msg, before)),
                Some(Event::Message(msg)) => before.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(code)) => {
                    return Err(Stop::Fail(format!(
                        "the target closed the connection ({}) while the suite waited for {what}",
                        code.map_or("no close code".into(), |code| format!("code {code}"))
                    )))
                }
                None => {
                    let seen: Vec<String> = before.iter().map(Msg::describe).collect();
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

    /// Everything that arrives within `period`; fails if the connection
    /// closes.
    pub async fn collect(&mut self, period: Duration) -> Result<Vec<Msg>, Stop> {
        self.observed
            .waiting_for("the settle time (messages that must not come)");
        let deadline = tokio::time::Instant::now() + period;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Event::Message(msg)) => seen.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(_)) => {
                    return Err(Stop::Fail("the target closed the connection".into()))
                }
                None => return Ok(seen),
            }
        }
    }

    /// Sends a `GetStatus` for a task nobody assigned and reads until the
    /// target answers it (any reply naming that task or that message),
    /// then `settle` more: returns everything else that arrived. Messages
    /// the target queued before answering the probe are in it.
    ///
    /// A target that leaves the probe unanswered (another case's failure)
    /// costs one reply timeout in the whole run: later barriers only listen
    /// for `settle`.
    pub async fn barrier(&mut self, settle: Duration) -> Result<Vec<Msg>, Stop> {
        if self.observed.probe_unanswered() {
            self.note("the target left a GetStatus probe unanswered earlier: only listening");
            return self.collect(settle).await;
        }
        let probe_task = format!("conformance-probe-{}", specwire_runtime::clock::new_id());
        let probe = messages::get_status(&probe_task);
        self.send(&probe.text).await?;
        let sent = Instant::now();
        let message_id = probe.message_id.clone();
        let answered = |msg: &Msg| msg.is_about(&probe_task) || msg.related() == Some(&message_id);
        let timeout = self.reply_timeout;
        let mut seen = match self
            .expect("an answer to a GetStatus probe", timeout, answered)
            .await
        {
            Ok((_, before)) => {
                self.observed.round_trip(sent.elapsed());
                before
            }
            Err(Stop::Fail(reason)) if reason.starts_with("no ") => {
                // A target that does not answer GetStatus is another
                // case's failure; what arrived meanwhile is still the data.
                self.note("the probe got no answer; using what arrived meanwhile");
                self.observed.mark_probe_unanswered();
                Vec::new()
            }
            Err(other) => return Err(other),
        };
        seen.extend(self.collect(settle).await?);
        Ok(seen)
    }

    /// Checks that the connection is still open and usable: the target
    /// answers a `GetStatus` probe with anything at all, or a WebSocket
    /// ping with a pong, whichever comes first (a target that ignores one
    /// of them is another case's failure).
    pub async fn still_open(&mut self, after: &str) -> Result<(), Stop> {
        let closed = || Stop::Fail(format!("the target closed the connection after {after}"));
        if self.ws.is_none() {
            return Err(closed());
        }
        let probe = messages::get_status("conformance-still-open");
        self.send(&probe.text).await.map_err(|_| closed())?;
        self.ping(b"conformance-still-open")
            .await
            .map_err(|_| closed())?;
        self.observed
            .waiting_for("any answer to a GetStatus probe or a ping");
        let timeout = self.reply_timeout;
        match self.next(timeout).await {
            Some(Event::Message(_)) | Some(Event::Pong(_)) => Ok(()),
            Some(Event::Closed(code)) => Err(Stop::Fail(format!(
                "the target closed the connection ({}) after {after}",
                code.map_or("no close code".into(), |code| format!("code {code}"))
            ))),
            None => Err(Stop::Fail(format!(
                "the connection is not usable after {after}: neither a GetStatus probe nor a ping was answered within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }
}
