//! What each [`Fault`] does: one deliberate deviation from one spec point
//! of the chat profile, applied by the fault proxy to the bytes the suite
//! writes (the framing faults, which look at how each read of the proxy
//! cuts the stream), to the server's responses (paired with their
//! requests: responses come in request order), or to its broadcasts.
//!
//! The proxy keeps the responses in request order itself: an answer it
//! makes up (a parse error for bytes it drops, a success for a request it
//! keeps from the server) waits in the same queue as the requests it
//! forwarded.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{json, Value};

use super::proxy::{lock, Shared};
use super::scan::{Scanner, Segment};

/// One deliberate deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing changes.
    None,
    /// A read of at least 8 bytes that starts an object and ends inside
    /// it: the object is dropped and answered -32700 (a server that
    /// parses each read on its own).
    NoReassembly,
    /// A read of 1–3 bytes that are not all white space is dropped (a
    /// server that ignores tiny reads).
    DropTinyReads,
    /// A read of two or three whole objects, each followed directly by
    /// `\n`: only the first reaches the server.
    FirstOfReadOnly,
    /// A line holding several whole objects is answered with one -32700
    /// (a line-based server).
    SeveralPerLine,
    /// White space between objects other than a single `\n` (before the
    /// first: any) is answered -32700 (a server that parses blank lines).
    StrayWhitespaceError,
    /// An object with a newline inside it is answered -32700.
    MultiLineUnsupported,
    /// No `\n` after the server's objects.
    NoNewline,
    /// A name with a non-ASCII character is refused.
    RefuseNonAscii,
    /// Joins are not announced.
    JoinNotAnnounced,
    /// A taken name is accepted as it is (`get_users` shows no second
    /// name).
    TakenAccepted,
    /// A name longer than 50 characters after trimming is accepted.
    AcceptLongNames,
    /// A blank name is accepted.
    AcceptBlankNames,
    /// A name longer than 50 characters before trimming is refused.
    RefusePaddedNames,
    /// A `chat` broadcast names `anonymous` as its sender.
    BroadcastWrongName,
    /// A message comes back to its sender too.
    EchoToSender,
    /// A message longer than 1000 characters after trimming is accepted.
    AcceptLongMessages,
    /// A blank message is accepted.
    AcceptBlankMessages,
    /// A message longer than 1000 characters before trimming is refused.
    RefusePaddedMessages,
    /// `get_users` leaves the caller out.
    UsersWithoutSelf,
    /// `get_users` has no `count`.
    DropCount,
    /// A `leave_chat` is not announced.
    LeaveNotAnnounced,
    /// Messages also reach clients that left (and stayed connected).
    BroadcastToLeft,
    /// A disconnect is not announced.
    DisconnectNotAnnounced,
    /// Requests before `join_chat` are answered success.
    ServeBeforeJoin,
    /// -32700 becomes -32600.
    ParseErrorCode,
    /// -32601 becomes -32600.
    UnknownMethodCode,
    /// -32602 becomes -32603.
    BadParamsCode,
    /// The connection is closed after a parse error.
    CloseOnParseError,
    /// A response that arrives while three or more later requests wait is
    /// sent after the next response.
    SwapPipelined,
    /// `system` broadcasts name `system`, not `SYSTEM` (the schema's
    /// const).
    SystemLowercase,
    /// A client that left and joined again on the same connection gets no
    /// `chat` broadcasts.
    DeafAfterRejoin,
}

/// What the proxy does next.
pub enum Out {
    /// Write these bytes to the client.
    ToClient(Vec<u8>),
    /// Write these bytes to the server.
    ToServer(Vec<u8>),
    /// Close both sides.
    Close,
}

/// A request the client is owed a response to.
enum Pending {
    /// Forwarded to the server: its response comes from there.
    Forwarded(Value),
    /// Answered by the proxy: sent once everything before it is.
    Answer(Vec<u8>),
}

fn line(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn parse_error() -> Vec<u8> {
    line(&json!({"error": "Parse error", "code": -32700}))
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn chars(text: Option<&str>) -> Option<usize> {
    text.map(|text| text.chars().count())
}

fn trimmed_chars(text: Option<&str>) -> Option<usize> {
    text.map(|text| text.trim().chars().count())
}

/// One connection's state.
pub struct ConnState {
    id: u64,
    shared: Arc<Shared>,
    client_scan: Scanner,
    server_scan: Scanner,
    pending: VecDeque<Pending>,
    /// [`Fault::NoReassembly`]: the object being dropped.
    discarding: bool,
    /// [`Fault::SeveralPerLine`]: the line so far and its whole objects;
    /// [`Fault::MultiLineUnsupported`], [`Fault::ServeBeforeJoin`]: the
    /// object so far.
    held_in: Vec<u8>,
    line_objects: Vec<Vec<u8>>,
    /// [`Fault::StrayWhitespaceError`]: the bytes since the last object.
    run: Vec<u8>,
    ever_joined: bool,
    /// [`Fault::SwapPipelined`]: a response held back.
    held_out: Option<Vec<u8>>,
}

impl ConnState {
    pub fn new(id: u64, shared: Arc<Shared>) -> ConnState {
        ConnState {
            id,
            shared,
            client_scan: Scanner::default(),
            server_scan: Scanner::default(),
            pending: VecDeque::new(),
            discarding: false,
            held_in: Vec::new(),
            line_objects: Vec::new(),
            run: Vec::new(),
            ever_joined: false,
            held_out: None,
        }
    }

    fn fault(&self) -> Fault {
        self.shared.fault
    }

    fn name(&self) -> Option<String> {
        lock(&self.shared.peers)
            .get(&self.id)
            .and_then(|peer| peer.name.clone())
    }

    /// The client closed its side.
    pub fn client_closed(&mut self) {
        if let Some(name) = self.name() {
            lock(&self.shared.disconnected_names).insert(name);
        }
    }

    /// The whole request `object` reaches the server (now, or with the
    /// bytes the caller forwards): its response is owed. A `leave_chat`
    /// names its user as leaving before the server can announce it.
    fn owe(&mut self, object: &[u8]) {
        let request: Value = serde_json::from_slice(object).unwrap_or(Value::Null);
        if request.get("method").and_then(Value::as_str) == Some("leave_chat") {
            if let Some(name) = self.name() {
                lock(&self.shared.left_names).insert(name);
            }
        }
        self.pending.push_back(Pending::Forwarded(request));
    }

    /// `object` goes to the server: its response is owed.
    fn forward(&mut self, object: &[u8], outs: &mut Vec<Out>) {
        self.owe(object);
        outs.push(Out::ToServer(object.to_vec()));
    }

    /// Answers the client `answer` in its turn.
    fn answer(&mut self, answer: Vec<u8>) {
        self.pending.push_back(Pending::Answer(answer));
    }

    /// Sends the proxy's own answers that are next in turn.
    fn flush(&mut self, outs: &mut Vec<Out>) {
        while let Some(Pending::Answer(_)) = self.pending.front() {
            if let Some(Pending::Answer(bytes)) = self.pending.pop_front() {
                outs.push(Out::ToClient(bytes));
            }
        }
    }

    /// A read from the client.
    pub fn on_client(&mut self, chunk: &[u8]) -> Vec<Out> {
        let fault = self.fault();
        let tiny = (1..=3).contains(&chunk.len()) && chunk.iter().any(|byte| !is_space(*byte));
        if fault == Fault::DropTinyReads && tiny {
            return Vec::new();
        }
        let segments = self.client_scan.feed(chunk);
        let mut outs = Vec::new();
        match fault {
            Fault::FirstOfReadOnly if first_of_read(&segments) => {
                if let Some(Segment::Object {
                    complete: Some(object),
                    ..
                }) = segments.first()
                {
                    self.forward(object, &mut outs);
                    outs.push(Out::ToServer(b"\n".to_vec()));
                }
            }
            Fault::NoReassembly => self.no_reassembly(chunk.len(), segments, &mut outs),
            Fault::SeveralPerLine => self.by_line(segments, &mut outs),
            Fault::MultiLineUnsupported | Fault::ServeBeforeJoin => {
                self.by_object(segments, &mut outs)
            }
            _ => {
                for segment in &segments {
                    match segment {
                        Segment::Between(bytes) => self.run.extend(bytes),
                        Segment::Object {
                            started, complete, ..
                        } => {
                            let stray = !(self.run.is_empty() || self.run == b"\n");
                            if *started && fault == Fault::StrayWhitespaceError && stray {
                                self.answer(parse_error());
                            }
                            if *started {
                                self.run.clear();
                            }
                            if let Some(object) = complete {
                                self.owe(object);
                            }
                        }
                    }
                }
                outs.push(Out::ToServer(chunk.to_vec()));
            }
        }
        self.flush(&mut outs);
        outs
    }

    fn no_reassembly(&mut self, read: usize, segments: Vec<Segment>, outs: &mut Vec<Out>) {
        for segment in segments {
            match segment {
                Segment::Between(bytes) => outs.push(Out::ToServer(bytes)),
                Segment::Object {
                    bytes,
                    started,
                    complete,
                } => {
                    if self.discarding {
                        self.discarding = complete.is_none();
                    } else if started && complete.is_none() && read >= 8 {
                        self.discarding = true;
                        self.answer(parse_error());
                    } else if let Some(object) = complete {
                        self.owe(&object);
                        outs.push(Out::ToServer(bytes));
                    } else {
                        outs.push(Out::ToServer(bytes));
                    }
                }
            }
        }
    }

    fn by_line(&mut self, segments: Vec<Segment>, outs: &mut Vec<Out>) {
        for segment in segments {
            match segment {
                Segment::Object {
                    bytes, complete, ..
                } => {
                    self.held_in.extend(bytes);
                    self.line_objects.extend(complete);
                }
                Segment::Between(bytes) => {
                    for byte in bytes {
                        self.held_in.push(byte);
                        if byte != b'\n' {
                            continue;
                        }
                        let line = std::mem::take(&mut self.held_in);
                        let objects = std::mem::take(&mut self.line_objects);
                        if objects.len() >= 2 {
                            self.answer(parse_error());
                            continue;
                        }
                        for object in &objects {
                            self.owe(object);
                        }
                        outs.push(Out::ToServer(line));
                    }
                }
            }
        }
    }

    fn by_object(&mut self, segments: Vec<Segment>, outs: &mut Vec<Out>) {
        for segment in segments {
            match segment {
                Segment::Between(bytes) => outs.push(Out::ToServer(bytes)),
                Segment::Object {
                    bytes, complete, ..
                } => match complete {
                    None => self.held_in.extend(bytes),
                    Some(object) => {
                        self.held_in.clear();
                        match self.answered_here(&object) {
                            Some(answer) => self.answer(answer),
                            None => self.forward(&object, outs),
                        }
                    }
                },
            }
        }
    }

    /// The proxy's own answer to a whole `object`, if its fault makes one.
    fn answered_here(&self, object: &[u8]) -> Option<Vec<u8>> {
        match self.fault() {
            Fault::MultiLineUnsupported if object.contains(&b'\n') => Some(parse_error()),
            Fault::ServeBeforeJoin if !self.ever_joined => {
                let request: Value = serde_json::from_slice(object).ok()?;
                match request.get("method")?.as_str()? {
                    "get_users" => Some(line(&json!({
                        "status": "success", "message": "Users retrieved successfully",
                        "users": [], "count": 0
                    }))),
                    "send_message" | "leave_chat" => {
                        Some(line(&json!({"status": "success", "message": "OK"})))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A read from the server.
    pub fn on_server(&mut self, chunk: &[u8]) -> Vec<Out> {
        let mut outs = Vec::new();
        for segment in self.server_scan.feed(chunk) {
            if let Segment::Object {
                complete: Some(object),
                ..
            } = segment
            {
                self.server_object(&object, &mut outs);
            }
        }
        outs
    }

    fn emit(&self, value: Option<&Value>, original: &[u8], outs: &mut Vec<Out>) {
        let mut bytes = match value {
            Some(value) => value.to_string().into_bytes(),
            None => original.to_vec(),
        };
        if self.fault() != Fault::NoNewline {
            bytes.push(b'\n');
        }
        outs.push(Out::ToClient(bytes));
    }

    fn server_object(&mut self, object: &[u8], outs: &mut Vec<Out>) {
        let Ok(mut value) = serde_json::from_slice::<Value>(object) else {
            self.emit(None, object, outs);
            return;
        };
        let response = value.get("status").is_some()
            || (value.get("error").is_some() && value.get("code").is_some());
        if !response {
            if let Some(changed) = self.broadcast(&mut value) {
                self.emit(changed.then_some(&value), object, outs);
            }
            return;
        }
        let request = match self.pending.pop_front() {
            Some(Pending::Forwarded(request)) => request,
            _ => Value::Null,
        };
        self.track(&request, &value);
        let (changed, after) = self.response(&request, &mut value);
        let waiting = self
            .pending
            .iter()
            .filter(|pending| matches!(pending, Pending::Forwarded(_)))
            .count();
        if self.fault() == Fault::SwapPipelined && self.held_out.is_none() && waiting >= 3 {
            let mut held = Vec::new();
            self.emit(changed.then_some(&value), object, &mut held);
            if let Some(Out::ToClient(bytes)) = held.pop() {
                self.held_out = Some(bytes);
            }
            return;
        }
        self.emit(changed.then_some(&value), object, outs);
        if let Some(bytes) = self.held_out.take() {
            outs.push(Out::ToClient(bytes));
        }
        outs.extend(after);
        self.flush(outs);
    }

    /// What the server's response to `request` says about the
    /// connection: joined (under which name), left.
    fn track(&mut self, request: &Value, response: &Value) {
        if response.get("status").and_then(Value::as_str) != Some("success") {
            return;
        }
        match request.get("method").and_then(Value::as_str) {
            Some("join_chat") => {
                let name = response
                    .get("username")
                    .and_then(Value::as_str)
                    .or_else(|| request.pointer("/params/username").and_then(Value::as_str))
                    .map(|name| name.trim().to_owned());
                self.ever_joined = true;
                self.shared.update(self.id, |peer| {
                    peer.rejoined = peer.left;
                    peer.left = false;
                    peer.name = name;
                });
            }
            Some("leave_chat") => {
                self.shared.update(self.id, |peer| {
                    peer.name = None;
                    peer.left = true;
                    peer.rejoined = false;
                });
            }
            _ => {}
        }
    }

    /// Applies the fault to a response; whether it changed it, and what
    /// follows it.
    fn response(&mut self, request: &Value, response: &mut Value) -> (bool, Vec<Out>) {
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        let username = request.pointer("/params/username").and_then(Value::as_str);
        let message = request.pointer("/params/message").and_then(Value::as_str);
        let status = response.get("status").and_then(Value::as_str);
        let (ok, refused) = (status == Some("success"), status == Some("error"));
        let code = response.get("code").and_then(Value::as_i64);
        let joining = method == "join_chat";
        let sending = method == "send_message";
        let success = |text: &str| json!({"status": "success", "message": text});
        let refusal = |text: &str| json!({"status": "error", "message": text});
        let mut after = Vec::new();
        let replaced = match self.fault() {
            Fault::TakenAccepted
                if joining
                    && refused
                    && username
                        .is_some_and(|name| self.shared.held_by_other(self.id, name.trim())) =>
            {
                Some(success("Joined chat"))
            }
            Fault::AcceptLongNames if joining && refused && trimmed_chars(username) > Some(50) => {
                Some(success("Joined chat"))
            }
            Fault::AcceptBlankNames if joining && refused && trimmed_chars(username) == Some(0) => {
                Some(success("Joined chat"))
            }
            Fault::RefusePaddedNames if joining && ok && chars(username) > Some(50) => {
                Some(refusal("Username too long"))
            }
            Fault::RefuseNonAscii
                if joining && ok && username.is_some_and(|name| !name.is_ascii()) =>
            {
                Some(refusal("Invalid username"))
            }
            Fault::AcceptLongMessages
                if sending && refused && trimmed_chars(message) > Some(1000) =>
            {
                Some(success("Message sent successfully"))
            }
            Fault::AcceptBlankMessages
                if sending && refused && trimmed_chars(message) == Some(0) =>
            {
                Some(success("Message sent successfully"))
            }
            Fault::RefusePaddedMessages if sending && ok && chars(message) > Some(1000) => {
                Some(refusal("Message too long"))
            }
            Fault::ParseErrorCode if code == Some(-32700) => {
                Some(json!({"error": "Parse error", "code": -32600}))
            }
            Fault::UnknownMethodCode if code == Some(-32601) => {
                Some(json!({"error": "Method not found", "code": -32600}))
            }
            Fault::BadParamsCode if code == Some(-32602) => {
                Some(json!({"error": "Invalid params", "code": -32603}))
            }
            _ => None,
        };
        if let Some(replacement) = replaced {
            *response = replacement;
            return (true, after);
        }
        let changed = match self.fault() {
            Fault::DropCount if method == "get_users" && ok => response
                .as_object_mut()
                .and_then(|object| object.remove("count"))
                .is_some(),
            Fault::UsersWithoutSelf if method == "get_users" && ok => self.without_self(response),
            Fault::CloseOnParseError if code == Some(-32700) => {
                after.push(Out::Close);
                false
            }
            Fault::EchoToSender | Fault::BroadcastToLeft if sending && ok => {
                let broadcast = line(&json!({
                    "type": "chat",
                    "message": message.unwrap_or("").trim(),
                    "username": self.name().unwrap_or_default(),
                }));
                if self.fault() == Fault::EchoToSender {
                    after.push(Out::ToClient(broadcast));
                } else {
                    self.shared
                        .inject(|_, peer| peer.left && peer.name.is_none(), &broadcast);
                }
                false
            }
            _ => false,
        };
        (changed, after)
    }

    /// Removes the caller from a `get_users` response; whether it was
    /// there.
    fn without_self(&self, response: &mut Value) -> bool {
        let Some(me) = self.name() else {
            return false;
        };
        let Some(users) = response.get_mut("users").and_then(Value::as_array_mut) else {
            return false;
        };
        let before = users.len();
        users.retain(|user| {
            let name = user
                .as_str()
                .or_else(|| user.get("username").and_then(Value::as_str));
            name != Some(me.as_str())
        });
        let after = users.len();
        if let Some(count) = response.get_mut("count") {
            *count = json!(after);
        }
        after != before
    }

    /// Applies the fault to a broadcast: `None` drops it, else whether it
    /// changed.
    fn broadcast(&self, value: &mut Value) -> Option<bool> {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let names = |set: &std::sync::Mutex<std::collections::HashSet<String>>| {
            lock(set).iter().any(|name| message.contains(name.as_str()))
        };
        let (chat, system) = (kind == "chat", kind == "system");
        let left = message.contains("has left");
        let dropped = match self.fault() {
            Fault::JoinNotAnnounced => system && message.contains("has joined"),
            Fault::LeaveNotAnnounced => system && left && names(&self.shared.left_names),
            Fault::DisconnectNotAnnounced => {
                system && left && names(&self.shared.disconnected_names)
            }
            Fault::DeafAfterRejoin => {
                chat && lock(&self.shared.peers)
                    .get(&self.id)
                    .is_some_and(|peer| peer.rejoined && peer.name.is_some())
            }
            _ => false,
        };
        if dropped {
            return None;
        }
        let (member, text) = match self.fault() {
            Fault::BroadcastWrongName if chat => ("username", "anonymous"),
            Fault::SystemLowercase if system => ("username", "system"),
            _ => return Some(false),
        };
        if let Some(object) = value.as_object_mut() {
            object.insert(member.to_owned(), json!(text));
        }
        Some(true)
    }
}

/// Whether a read is two or three whole objects, each followed directly
/// by `\n` and nothing else.
fn first_of_read(segments: &[Segment]) -> bool {
    let objects = segments.len() / 2;
    segments.len() % 2 == 0
        && (2..=3).contains(&objects)
        && segments.chunks(2).all(|pair| {
            matches!(
                pair,
                [
                    Segment::Object {
                        started: true,
                        complete: Some(_),
                        ..
                    },
                    Segment::Between(between),
                ] if between == b"\n"
            )
        })
}
