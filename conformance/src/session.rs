//! One connection to the target, generic over the family's protocol
//! (`P: JsonProtocol`): every frame sent and received goes into the case's
//! transcript, every message the suite sends is checked against `P`'s
//! client schemas first (unless the case marks it deliberately invalid),
//! and every message the target sends is checked against `P`'s server
//! schemas. A broken message of the target is logged for the family's
//! validity case and otherwise handed to the case as it is, so one fault
//! fails the case about it and no other.
//!
//! The link is a WebSocket (task, subscription) or a TCP stream of JSON
//! objects (chat: objects one after the other, optionally separated by
//! white space), cut into objects by the same
//! [`JsonStreamDecoder`](specwire_wire::json::stream::JsonStreamDecoder)
//! the runtime reads requests with. On a TCP stream the session also notes
//! what followed each object (chat's senders SHOULD end each with `\n`:
//! [`Session::take_endings`]) and can write bytes exactly as a case
//! composes them ([`Session::write_raw`]), to drive the framing cases.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use specwire_protocol::Direction as Wire;
use specwire_protocol::JsonProtocol;
use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::suite::{lock, RunLog};
use crate::transcript::{hex, Direction, Transcript};
use crate::verdict::Stop;
use specwire_runtime::net::WsStream as WebSocket;

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

    /// A string member of `payload`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.payload().get(name).and_then(Value::as_str)
    }

    /// `payload.status`.
    pub fn status(&self) -> Option<&str> {
        self.field("status")
    }

    /// `payload.errorCode` of an `Error`.
    pub fn error_code(&self) -> Option<&str> {
        self.field("errorCode")
    }

    /// `payload.acknowledgmentId` of an `Ack`.
    pub fn acknowledgment_id(&self) -> Option<&str> {
        self.field("acknowledgmentId")
    }

    /// `payload.relatedMessageId` of an `Error`.
    pub fn related(&self) -> Option<&str> {
        self.field("relatedMessageId")
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

/// What a case sends: checked against the schema first, or deliberately
/// invalid (malformed JSON, an unknown type, a broken envelope) and sent
/// as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// A message the schema must accept; a suite bug otherwise.
    Valid(&'a str),
    /// Deliberately invalid: not checked.
    Invalid(&'a str),
}

/// Why `text` is not a message of family `P` the suite may send (one its
/// schema accepts, sent in `direction`), if it is not: the suite checks
/// what it sends, so a bug shared by a reference runtime and the judge
/// cannot hide.
pub fn refused<P: JsonProtocol>(text: &str, direction: Wire) -> Option<String> {
    let problem = match serde_json::from_str::<Value>(text) {
        Ok(value) => P::decode_from(value, Some(direction))
            .err()
            .map(|error| error.to_string()),
        Err(error) => Some(format!("not JSON: {error}")),
    };
    problem.map(|problem| {
        format!(
            "the suite was about to send a message that breaks the {} schema ({problem}); a bug of the suite: {text}",
            P::family_name()
        )
    })
}

/// The connection under a session.
pub enum Link {
    /// A WebSocket.
    WebSocket(Box<WebSocket>),
    /// A TCP stream of JSON objects.
    Tcp(Box<TcpReader>),
}

impl Link {
    /// A TCP stream of JSON objects, read with objects of at most
    /// `max_object_bytes`.
    pub fn tcp(stream: TcpStream, max_object_bytes: usize) -> Link {
        Link::Tcp(Box::new(TcpReader {
            stream,
            buffer: BytesMut::new(),
            decoder: JsonStreamDecoder::new(max_object_bytes),
            unended: None,
            endings: Vec::new(),
        }))
    }
}

/// How an object of a TCP stream ended: what followed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// The object as received.
    pub text: String,
    /// Whether `\n` (or `\r\n`) followed it directly.
    pub newline: bool,
}

/// A TCP stream of JSON objects being read: the bytes of the next object,
/// the decoder's place, and what followed the objects read so far.
pub struct TcpReader {
    stream: TcpStream,
    buffer: BytesMut,
    decoder: JsonStreamDecoder,
    /// The last object and the (fewer than two) bytes seen after it, while
    /// they do not tell how it ended.
    unended: Option<(String, Vec<u8>)>,
    endings: Vec<Ending>,
}

impl TcpReader {
    /// The object `text` was just taken off the buffer: what follows it
    /// is at the buffer's front, or yet to come.
    fn ended(&mut self, text: String) {
        let after = self.buffer.iter().take(2).copied().collect();
        self.unended = Some((text, after));
        self.settle();
    }

    /// New bytes arrived (before the decoder sees them).
    fn read(&mut self, bytes: &[u8]) {
        if let Some((_, after)) = self.unended.as_mut() {
            after.extend(bytes.iter().take(2));
        }
        self.buffer.extend_from_slice(bytes);
        self.settle();
    }

    /// Records how the last object ended once the bytes after it tell:
    /// `\n` or `\r\n` is a newline, anything else is not.
    fn settle(&mut self) {
        let known = match &self.unended {
            Some((_, after)) => !(after.is_empty() || after.as_slice() == b"\r"),
            None => false,
        };
        if !known {
            return;
        }
        if let Some((text, after)) = self.unended.take() {
            let newline = after.starts_with(b"\n") || after.starts_with(b"\r\n");
            self.endings.push(Ending { text, newline });
        }
    }
}

/// The bytes at the front of `buffer` up to the end of their line (or the
/// next `{` or `[`): a run that cannot start an object, as text.
fn junk_line(buffer: &[u8]) -> String {
    let end = buffer
        .iter()
        .position(|byte| matches!(byte, b'\n' | b'{' | b'['))
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end])
        .trim_end()
        .to_owned()
}

/// A connection to the target speaking family `P`.
pub struct Session<P: JsonProtocol> {
    link: Option<Link>,
    id: u32,
    transcript: Arc<Mutex<Transcript>>,
    log: Arc<RunLog>,
    /// Replies shorter waits wait for.
    pub reply_timeout: Duration,
    /// Endings of a TCP stream that ended, not yet taken.
    endings: Vec<Ending>,
    protocol: PhantomData<fn() -> P>,
}

impl<P: JsonProtocol> Session<P> {
    /// A session over `link`, number `id` in `transcript`.
    pub fn new(
        link: Link,
        id: u32,
        transcript: Arc<Mutex<Transcript>>,
        log: Arc<RunLog>,
        reply_timeout: Duration,
    ) -> Session<P> {
        Session {
            link: Some(link),
            id,
            transcript,
            log,
            reply_timeout,
            endings: Vec::new(),
            protocol: PhantomData,
        }
    }

    /// Whether the target closed the connection.
    pub fn is_closed(&self) -> bool {
        self.link.is_none()
    }

    fn record(&self, direction: Direction, kind: &str, data: &str) {
        lock(&self.transcript).record(direction, self.id, kind, data);
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        lock(&self.transcript).note(self.id, text);
    }

    /// The case now waits for `what` (a case that runs out of time says
    /// what it waited for).
    pub fn waiting_for(&self, what: &str) {
        self.log.waiting_for(what);
    }

    /// Why `text` is not a message the suite may send, if it is not.
    pub fn refuse(text: &str) -> Option<String> {
        refused::<P>(text, Wire::ClientToServer)
    }

    /// Sends `outgoing`; a valid one is checked against the schema first
    /// (a harness error when it fails). A send that fails means the target
    /// closed the connection: a failure of the case.
    pub async fn send_outgoing(&mut self, outgoing: Outgoing<'_>) -> Result<(), Stop> {
        let text = match outgoing {
            Outgoing::Valid(text) => {
                if let Some(problem) = Self::refuse(text) {
                    self.note(&problem);
                    return Err(Stop::Harness(problem));
                }
                text
            }
            Outgoing::Invalid(text) => text,
        };
        self.record(Direction::Sent, "text", text);
        self.send_frame(Frame::text(text.to_owned())).await
    }

    /// Sends a message the schema must accept.
    pub async fn send(&mut self, text: &str) -> Result<(), Stop> {
        self.send_outgoing(Outgoing::Valid(text)).await
    }

    /// Sends a JSON value the schema must accept.
    pub async fn send_value(&mut self, value: &Value) -> Result<(), Stop> {
        self.send(&value.to_string()).await
    }

    /// Sends deliberately invalid text, unchecked.
    pub async fn send_invalid(&mut self, text: &str) -> Result<(), Stop> {
        self.send_outgoing(Outgoing::Invalid(text)).await
    }

    /// Sends a ping with `payload` (WebSocket only).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Stop> {
        self.record(Direction::Sent, "ping", &hex(payload));
        self.send_frame(Frame::Ping(payload.to_vec().into())).await
    }

    /// Starts the close handshake with code 1000 (on TCP: ends the
    /// suite's half of the stream).
    pub async fn close(&mut self) -> Result<(), Stop> {
        self.record(Direction::Sent, "close", "1000");
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "conformance case done".into(),
        };
        self.send_frame(Frame::Close(Some(frame))).await
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        let timeout = self.reply_timeout;
        let sending = async {
            match self.link.as_mut() {
                None => Ok(false),
                Some(Link::WebSocket(ws)) => ws
                    .send(frame)
                    .await
                    .map(|()| true)
                    .map_err(|error| error.to_string()),
                Some(Link::Tcp(tcp)) => match frame {
                    Frame::Text(text) => {
                        let mut bytes = text.as_bytes().to_vec();
                        bytes.push(b'\n');
                        tcp.stream
                            .write_all(&bytes)
                            .await
                            .map(|()| true)
                            .map_err(|error| error.to_string())
                    }
                    Frame::Binary(bytes) => tcp
                        .stream
                        .write_all(&bytes)
                        .await
                        .map(|()| true)
                        .map_err(|error| error.to_string()),
                    Frame::Close(_) => tcp
                        .stream
                        .shutdown()
                        .await
                        .map(|()| true)
                        .map_err(|error| error.to_string()),
                    _ => Err("a TCP stream has no WebSocket control frames".to_owned()),
                },
            }
        };
        match tokio::time::timeout(timeout, sending).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(Stop::Fail("the target had closed the connection".into())),
            Ok(Err(error)) => {
                self.note(&format!("send failed: {error}"));
                self.drop_link();
                Err(Stop::Fail(format!(
                    "the target closed the connection (send failed: {error})"
                )))
            }
            Err(_) => Err(Stop::Fail(format!(
                "the target did not take a frame within {timeout:?}"
            ))),
        }
    }

    /// The next event within `timeout`; `None` when nothing came.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        match self.link.as_ref()? {
            Link::WebSocket(_) => self.next_frame(deadline).await,
            Link::Tcp(..) => self.next_object(deadline).await,
        }
    }

    async fn next_frame(&mut self, deadline: tokio::time::Instant) -> Option<Event> {
        loop {
            let Some(Link::WebSocket(ws)) = self.link.as_mut() else {
                return None;
            };
            let frame = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
            let event = match frame {
                None => self.ended("the stream ended"),
                Some(Err(error)) => self.ended(&format!("connection error: {error}")),
                Some(Ok(Frame::Text(text))) => {
                    self.record(Direction::Received, "text", text.as_str());
                    Event::Message(self.check(text.as_str().to_owned()))
                }
                Some(Ok(Frame::Binary(bytes))) => {
                    self.record(Direction::Received, "binary", &hex(&bytes));
                    let msg = Msg {
                        value: Value::Null,
                        text: String::new(),
                        invalid: Some(format!(
                            "a binary frame of {} bytes ({} messages are JSON text)",
                            bytes.len(),
                            P::family_name()
                        )),
                    };
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

    /// The next JSON object of a TCP stream.
    async fn next_object(&mut self, deadline: tokio::time::Instant) -> Option<Event> {
        loop {
            let Some(Link::Tcp(tcp)) = self.link.as_mut() else {
                return None;
            };
            let text = match tcp.decoder.decode(&mut tcp.buffer) {
                Some(StreamItem::Value(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    tcp.ended(text.clone());
                    Some(text)
                }
                Some(StreamItem::Junk) => None,
                Some(StreamItem::TooLarge { limit }) => {
                    let note = format!("an object of more than {limit} bytes (skipped)");
                    self.record(Direction::Received, "text", &note);
                    let msg = Msg {
                        value: Value::Null,
                        text: note.clone(),
                        invalid: Some(note),
                    };
                    self.log_invalid(&msg);
                    return Some(Event::Message(msg));
                }
                None => {
                    let mut chunk = [0u8; 8192];
                    match tokio::time::timeout_at(deadline, tcp.stream.read(&mut chunk))
                        .await
                        .ok()?
                    {
                        Ok(0) => return Some(self.ended("the stream ended")),
                        Ok(read) => tcp.read(&chunk[..read]),
                        Err(error) => {
                            return Some(self.ended(&format!("connection error: {error}")))
                        }
                    }
                    continue;
                }
            };
            let Some(text) = text else {
                // Bytes that cannot start an object: report them as what
                // they are, up to the end of the line.
                let junk = junk_line(&tcp.buffer);
                self.record(Direction::Received, "text", &junk);
                return Some(Event::Message(self.check(junk)));
            };
            self.record(Direction::Received, "text", &text);
            return Some(Event::Message(self.check(text)));
        }
    }

    /// Writes `bytes` exactly as given (TCP only: no `\n` is added, no
    /// check is made), recorded as a `write` with white space visible. A
    /// case that drives a stream's framing composes them.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if !matches!(self.link, Some(Link::Tcp(_)) | None) {
            return Err(Stop::Harness("raw writes need a TCP stream".into()));
        }
        self.record(
            Direction::Sent,
            "write",
            &format!("{:?}", String::from_utf8_lossy(bytes)),
        );
        self.send_frame(Frame::Binary(bytes.to_vec().into())).await
    }

    /// How the objects read since the last call ended (TCP only): whether
    /// `\n` followed each. An object nothing has followed yet is left for
    /// a later call.
    pub fn take_endings(&mut self) -> Vec<Ending> {
        let mut endings = std::mem::take(&mut self.endings);
        if let Some(Link::Tcp(tcp)) = self.link.as_mut() {
            endings.append(&mut tcp.endings);
        }
        endings
    }

    /// Drops the connection at once, without any closing handshake (on
    /// TCP: the socket closes).
    pub fn disconnect(&mut self) {
        if self.drop_link() {
            self.record(Direction::Note, "close", "the suite closed the connection");
        }
    }

    fn ended(&mut self, why: &str) -> Event {
        self.record(Direction::Note, "close", why);
        self.drop_link();
        Event::Closed(None)
    }

    /// Drops the connection, keeping what is known of its objects'
    /// endings.
    fn drop_link(&mut self) -> bool {
        match self.link.take() {
            Some(Link::Tcp(tcp)) => {
                self.endings.extend(tcp.endings);
                true
            }
            Some(Link::WebSocket(_)) => true,
            None => false,
        }
    }

    fn check(&self, text: String) -> Msg {
        let (value, invalid) = match serde_json::from_str::<Value>(&text) {
            Ok(value) => {
                // A server sends its replies and its broadcasts.
                let broadcast = !P::family()
                    .candidates(&value, Some(Wire::Broadcast))
                    .is_empty();
                let direction = if broadcast {
                    Wire::Broadcast
                } else {
                    Wire::ServerToClient
                };
                let invalid = P::decode_from(value.clone(), Some(direction))
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
            self.log.invalid(format!("{problem}: {}", msg.text));
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
        self.waiting_for(what);
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
        self.waiting_for("the settle time (messages that must not come)");
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::chat::Message as Chat;
    use specwire_protocol::task::Message as Task;

    #[test]
    fn the_suites_own_messages_are_checked_before_sending() {
        let status = specwire_runtime::task::messages::get_status("t-1");
        assert_eq!(Session::<Task>::refuse(&status.text), None);
        let refused = Session::<Task>::refuse(r#"{"type": "GetStatus"}"#).expect("refused");
        assert!(refused.contains("breaks the task schema"), "{refused}");
        assert!(Session::<Task>::refuse("{").unwrap().contains("not JSON"));
    }

    #[tokio::test]
    async fn a_tcp_stream_of_json_objects_is_read_object_by_object() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(br#"{"a": 1} {"b""#).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            stream.write_all(b": 2}\nnot json").await.unwrap();
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let transcript = Arc::new(Mutex::new(Transcript::new()));
        let log = Arc::new(RunLog::default());
        let mut session = Session::<Chat>::new(
            Link::tcp(stream, 1024),
            1,
            Arc::clone(&transcript),
            Arc::clone(&log),
            Duration::from_secs(5),
        );
        let wait = Duration::from_secs(5);
        let Some(Event::Message(first)) = session.next(wait).await else {
            panic!("a message")
        };
        assert_eq!(first.value["a"], 1);
        assert!(first.invalid.is_some(), "not a chat message");
        let Some(Event::Message(second)) = session.next(wait).await else {
            panic!("a message")
        };
        assert_eq!(second.text, r#"{"b": 2}"#);
        server.await.unwrap();
        let Some(Event::Message(third)) = session.next(wait).await else {
            panic!("a message")
        };
        assert!(third.invalid.unwrap().contains("not JSON"));
        assert_eq!(third.text, "not json");
        assert_eq!(session.next(wait).await, Some(Event::Closed(None)));
        assert_eq!(log.invalid_messages().len(), 3);
        let endings: Vec<bool> = session
            .take_endings()
            .iter()
            .map(|ending| ending.newline)
            .collect();
        assert_eq!(
            endings,
            [false, true],
            "a space after the first, `\\n` after the second"
        );
    }

    #[tokio::test]
    async fn raw_writes_go_out_as_given_and_a_broadcast_is_a_server_message() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen, wait) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 5];
            stream.read_exact(&mut got).await.unwrap();
            stream
                .write_all(b"{\"type\":\"system\",\"message\":\"x\",\"username\":\"SYSTEM\"}\r")
                .await
                .unwrap();
            // The `\n` goes once the suite has read the object and its `\r`.
            wait.await.unwrap();
            stream.write_all(b"\n").await.unwrap();
            got
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let mut session = Session::<Chat>::new(
            Link::tcp(stream, 1024),
            1,
            Arc::new(Mutex::new(Transcript::new())),
            Arc::new(RunLog::default()),
            Duration::from_secs(5),
        );
        session.write_raw(b"{\"a\"").await.unwrap();
        session.write_raw(b"}").await.unwrap();
        let Some(Event::Message(broadcast)) = session.next(Duration::from_secs(5)).await else {
            panic!("a message")
        };
        assert_eq!(broadcast.invalid, None, "a broadcast is a server message");
        assert!(
            session.take_endings().is_empty(),
            "`\\r` alone does not tell"
        );
        seen.send(()).unwrap();
        assert_eq!(
            session.next(Duration::from_secs(5)).await,
            Some(Event::Closed(None))
        );
        let endings = session.take_endings();
        assert!(endings.len() == 1 && endings[0].newline, "{endings:?}");
        assert_eq!(server.await.unwrap(), b"{\"a\"}");
    }
}
