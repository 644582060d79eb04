//! One connection to a chat server as a case sees it: a
//! [`Session`] of chat messages over TCP that tells responses from
//! broadcasts and keeps the broadcasts for the case.
//!
//! The profile's rule decides what an object is: a response has a
//! `status` (or an `error` and a `code`), a broadcast a `type` and no
//! `status`. Requests carry no id, so a response answers the oldest
//! request not yet answered; every request of a case is answered before
//! the next is sent, except where a case pipelines on purpose and counts
//! the responses itself.
//!
//! The ordering tool is [`ChatConn::sync`]: a `get_users` whose response
//! comes after everything the server queued for this connection before it
//! handled the request. A request sent on one connection after another
//! connection's request was answered is handled after it, so the response
//! to a `sync` proves which of that request's broadcasts did not arrive,
//! without waiting. A client that is not joined (or left) gets
//! `status: error` for it, which orders as well.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use specwire_protocol::chat::Message as Chat;
use tokio::time::Instant;

use super::requests;
use super::target::ChatShared;
use crate::session::{Event, Msg, Session};
use crate::verdict::Stop;

/// What an object from the server is, by the profile's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `status`, or an `error` and a `code`: it answers a request.
    Response,
    /// A `type` and no `status`.
    Broadcast,
    /// Neither (not JSON, not an object, ...): `chat.schema.valid`'s point.
    Other,
}

/// What `msg` is.
pub fn kind(msg: &Msg) -> Kind {
    match msg.value.as_object() {
        Some(object)
            if object.contains_key("status")
                || (object.contains_key("error") && object.contains_key("code")) =>
        {
            Kind::Response
        }
        Some(object) if object.contains_key("type") => Kind::Broadcast,
        _ => Kind::Other,
    }
}

/// A string member of `msg`.
pub fn text<'a>(msg: &'a Msg, member: &str) -> Option<&'a str> {
    msg.value.get(member).and_then(Value::as_str)
}

/// `status`.
pub fn status(msg: &Msg) -> Option<&str> {
    text(msg, "status")
}

/// Whether it is `{"status": "success", ...}`.
pub fn is_success(msg: &Msg) -> bool {
    status(msg) == Some("success")
}

/// Whether it is `{"status": "error", ...}`.
pub fn is_refusal(msg: &Msg) -> bool {
    status(msg) == Some("error")
}

/// The JSON-RPC `code`, when it has one and an `error`.
pub fn code(msg: &Msg) -> Option<i64> {
    msg.value.get("error")?;
    msg.value.get("code").and_then(Value::as_i64)
}

/// One entry of a `users` list: a plain name or `{username, address}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: String,
    /// `host:port`, when listed.
    pub address: Option<String>,
}

/// The `users` of a response (`None` when it has no such array); entries
/// that are neither form are left out (the schema case reports them).
pub fn users(msg: &Msg) -> Option<Vec<User>> {
    let entries = msg.value.get("users")?.as_array()?;
    Some(
        entries
            .iter()
            .filter_map(|entry| match entry {
                Value::String(name) => Some(User {
                    name: name.clone(),
                    address: None,
                }),
                Value::Object(object) => Some(User {
                    name: object.get("username")?.as_str()?.to_owned(),
                    address: object
                        .get("address")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                _ => None,
            })
            .collect(),
    )
}

/// The names of `users`.
pub fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|user| user.name.as_str()).collect()
}

/// Whether `msg` is a `chat` broadcast whose text carries `marker`.
pub fn chat_carrying(msg: &Msg, marker: &str) -> bool {
    text(msg, "type") == Some("chat") && text(msg, "message").is_some_and(|m| m.contains(marker))
}

/// Whether `msg` is a `system` broadcast whose text names `name`.
pub fn system_naming(msg: &Msg, name: &str) -> bool {
    text(msg, "type") == Some("system") && text(msg, "message").is_some_and(|m| m.contains(name))
}

/// `msg` as a reason shows it: its text, cut after 160 characters.
pub fn shown(msg: &Msg) -> String {
    let text = msg.text.trim();
    match text.char_indices().nth(160) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `msgs` as a reason shows them, or `nothing`.
pub fn shown_all(msgs: &[&Msg]) -> String {
    if msgs.is_empty() {
        "nothing".to_owned()
    } else {
        msgs.iter()
            .map(|msg| shown(msg))
            .collect::<Vec<_>>()
            .join(", ")
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

/// A connection to a chat server.
pub struct ChatConn {
    session: Session<Chat>,
    number: u32,
    shared: Arc<ChatShared>,
    /// Everything received that is not a response, not yet taken.
    inbox: Vec<Msg>,
    /// The name the server gave it, while joined (as far as the suite
    /// knows).
    pub name: Option<String>,
}

impl ChatConn {
    pub(crate) fn new(session: Session<Chat>, number: u32, shared: Arc<ChatShared>) -> ChatConn {
        ChatConn {
            session,
            number,
            shared,
            inbox: Vec::new(),
            name: None,
        }
    }

    /// Its number in the transcript.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        self.session.note(text);
    }

    /// How long a response may take.
    pub fn timeout(&self) -> Duration {
        self.session.reply_timeout
    }

    /// Whether the connection is closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Sends a request the schema must accept (a harness error
    /// otherwise), ended by `\n`.
    pub async fn send(&mut self, request: &Value) -> Result<(), Stop> {
        self.session.send_value(request).await
    }

    /// Sends deliberately invalid text, unchecked, ended by `\n`.
    pub async fn send_invalid(&mut self, text: &str) -> Result<(), Stop> {
        self.session.send_invalid(text).await
    }

    /// Writes `bytes` exactly as given (one write).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.session.write_raw(bytes).await
    }

    /// The next event before `deadline`, noting how the server's objects
    /// ended.
    async fn next(&mut self, deadline: Instant) -> Option<Event> {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = self.session.next(left).await;
        self.shared.record(self.session.take_endings());
        event
    }

    /// The next response (broadcasts before it go to the inbox). Fails
    /// when none comes in time (the reason starts with `no `) or the
    /// connection closes.
    pub async fn response(&mut self, what: &str) -> Result<Msg, Stop> {
        let timeout = self.timeout();
        self.session.waiting_for(&format!("the response to {what}"));
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline).await {
                Some(Event::Message(msg)) if kind(&msg) == Kind::Response => return Ok(msg),
                Some(Event::Message(msg)) => self.inbox.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(_)) => {
                    return Err(Stop::Fail(format!(
                        "the server closed the connection while the suite waited for the response to {what}"
                    )))
                }
                None => {
                    return Err(Stop::Fail(format!(
                        "no response to {what} within {}",
                        humantime::format_duration(timeout)
                    )))
                }
            }
        }
    }

    /// Sends `request` and returns its response.
    pub async fn request(&mut self, request: &Value, what: &str) -> Result<Msg, Stop> {
        self.send(request).await?;
        self.response(what).await
    }

    /// Sends deliberately invalid `text` and returns its response.
    pub async fn request_invalid(&mut self, text: &str, what: &str) -> Result<Msg, Stop> {
        self.send_invalid(text).await?;
        self.response(what).await
    }

    /// Everything received so far that is not a response, taken.
    pub fn take_inbox(&mut self) -> Vec<Msg> {
        std::mem::take(&mut self.inbox)
    }

    /// Sends `get_users` and reads until its response: returns what came
    /// before it that was not a response (and had not been taken), with
    /// the response. Whatever the server queued for this connection before
    /// it handled the request is among them. No response in time leaves
    /// the caller nothing to judge (a skip naming `chat.users.listed`); a
    /// close is a failure.
    pub async fn sync_with_response(&mut self) -> Result<(Vec<Msg>, Msg), Stop> {
        let response = self
            .request(&requests::get_users(), "a `get_users` sent to sync")
            .await
            .map_err(|stop| nothing_to_judge(stop, "chat.users.listed"))?;
        Ok((self.take_inbox(), response))
    }

    /// [`sync_with_response`](Self::sync_with_response) without the
    /// response.
    pub async fn sync(&mut self) -> Result<Vec<Msg>, Stop> {
        Ok(self.sync_with_response().await?.0)
    }

    /// Waits (bounded by the reply timeout) for a broadcast `wanted`
    /// selects, looking at the inbox first; the messages before it stay in
    /// the inbox. Used only where the server decides the moment (a
    /// disconnect it notices): elsewhere, [`sync`](Self::sync).
    pub async fn expect_broadcast(
        &mut self,
        what: &str,
        wanted: impl Fn(&Msg) -> bool,
    ) -> Result<Msg, Stop> {
        if let Some(at) = self.inbox.iter().position(&wanted) {
            return Ok(self.inbox.remove(at));
        }
        let timeout = self.timeout();
        self.session.waiting_for(what);
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline).await {
                Some(Event::Message(msg)) if wanted(&msg) => return Ok(msg),
                Some(Event::Message(msg)) => self.inbox.push(msg),
                Some(Event::Pong(_)) => {}
                Some(Event::Closed(_)) => {
                    return Err(Stop::Fail(format!(
                        "the server closed the connection while the suite waited for {what}"
                    )))
                }
                None => {
                    let got: Vec<&Msg> = self.inbox.iter().collect();
                    return Err(Stop::Fail(format!(
                        "no {what} within {} (got: {})",
                        humantime::format_duration(timeout),
                        shown_all(&got)
                    )));
                }
            }
        }
    }

    /// Joins as `name` (a tool: any `status: success` will do; the
    /// response's content is `chat.join.success`'s point). Returns the
    /// name given: the response's `username` when it has one, else
    /// `name` trimmed. Anything else leaves the caller nothing to judge.
    pub async fn join(&mut self, name: &str) -> Result<String, Stop> {
        let response = self
            .request(&requests::join(name), &format!("`join_chat` as {name:?}"))
            .await
            .map_err(|stop| nothing_to_judge(stop, "chat.join.success"))?;
        if !is_success(&response) {
            return Err(Stop::Skip(format!(
                "nothing to judge: joining as {name:?} got {} (chat.join.success reports that)",
                shown(&response)
            )));
        }
        let given = text(&response, "username")
            .unwrap_or_else(|| name.trim())
            .to_owned();
        self.name = Some(given.clone());
        Ok(given)
    }

    /// Closes the connection at once (no `leave_chat`).
    pub fn disconnect(&mut self) {
        self.shared.record(self.session.take_endings());
        self.session.disconnect();
        self.name = None;
    }
}

/// Closes every connection in `conns`.
pub fn disconnect_all(conns: &mut [&mut ChatConn]) {
    for conn in conns.iter_mut() {
        conn.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Msg {
        Msg {
            value: serde_json::from_str(text).unwrap_or(Value::Null),
            text: text.to_owned(),
            invalid: None,
        }
    }

    #[test]
    fn objects_are_told_apart_by_the_profiles_rule() {
        assert_eq!(
            kind(&msg(r#"{"status":"error","message":"x"}"#)),
            Kind::Response
        );
        assert_eq!(kind(&msg(r#"{"error":"x","code":-32700}"#)), Kind::Response);
        assert_eq!(
            kind(&msg(r#"{"type":"chat","message":"m","username":"a"}"#)),
            Kind::Broadcast
        );
        assert_eq!(
            kind(&msg(r#"{"type":"x","status":"success"}"#)),
            Kind::Response
        );
        assert_eq!(kind(&msg(r#"{"error":"x"}"#)), Kind::Other);
        assert_eq!(kind(&msg("not json")), Kind::Other);
    }

    #[test]
    fn users_come_in_both_forms() {
        let plain = msg(r#"{"status":"success","users":["a","b"],"count":2}"#);
        assert_eq!(names(&users(&plain).unwrap()), ["a", "b"]);
        let addressed =
            msg(r#"{"status":"success","users":[{"username":"a","address":"127.0.0.1:5"}, 3]}"#);
        let listed = users(&addressed).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].address.as_deref(), Some("127.0.0.1:5"));
        assert_eq!(users(&msg(r#"{"status":"success"}"#)), None);
        assert_eq!(code(&msg(r#"{"error":"x","code":-32601}"#)), Some(-32601));
        assert_eq!(code(&msg(r#"{"code":-32601}"#)), None);
    }

    #[test]
    fn broadcasts_are_matched_by_marker_and_name() {
        let chat = msg(r#"{"type":"chat","message":"hi m0001 there","username":"a"}"#);
        assert!(chat_carrying(&chat, "m0001"));
        assert!(!system_naming(&chat, "m0001"));
        let system =
            msg(r#"{"type":"system","message":"x-a0001 has left the chat!","username":"SYSTEM"}"#);
        assert!(system_naming(&system, "x-a0001"));
        assert!(!chat_carrying(&system, "x-a0001"));
        let long = "y".repeat(400);
        assert!(shown(&msg(&format!("\"{long}\""))).ends_with('…'));
    }
}
