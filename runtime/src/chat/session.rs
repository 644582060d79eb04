//! One chat connection: each value the stream decoder cuts goes through
//! the shared inbound pipeline, and each gets exactly one response, in
//! request order. Refusals of the request itself (`status: error`) and
//! protocol faults (`{"error","code"}` with the seed's JSON-RPC codes)
//! never close the connection.
//!
//! | what arrived | answer |
//! |---|---|
//! | bytes that cannot start a value, or a value that is not JSON | -32700 |
//! | JSON but not an object, no string `method`, over the size limit | -32600 |
//! | a `method` the server does not have | -32601 |
//! | a known method with `params` missing or of the wrong shape | -32602 |
//! | a username or message of the wrong length after trimming | `status: error` |
//! | `send_message`, `get_users`, `leave_chat` before `join_chat`; `join_chat` twice | `status: error` |

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use specwire_protocol::chat::Message;
use specwire_protocol::Direction;
use specwire_wire::json::stream::StreamItem;

use super::messages::{self, check_message, check_username, text, RpcCode};
use super::server::{NamePolicy, Shared, UserListing};
use crate::net::{Inbound, Outbox, Peer, Rejection, TcpSession};

/// The methods a request may name.
const METHODS: [&str; 4] = ["join_chat", "send_message", "get_users", "leave_chat"];

/// One connection's state.
pub struct ChatSession {
    shared: Arc<Shared>,
    peer: Peer,
    outbox: Outbox<Bytes>,
    inbound: Inbound,
    /// The name it joined as.
    joined: Option<String>,
}

impl ChatSession {
    pub(crate) fn new(shared: Arc<Shared>, peer: Peer, outbox: Outbox<Bytes>) -> ChatSession {
        let inbound = Inbound::new(&shared.limits, Direction::ClientToServer);
        ChatSession {
            shared,
            peer,
            outbox,
            inbound,
            joined: None,
        }
    }

    /// Queues `bytes` to this connection (a full queue closes it).
    fn reply(&self, bytes: Bytes) {
        if self.outbox.send(bytes).is_err() && self.outbox.overflowed() {
            self.shared
                .counters
                .slow_closed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn refuse(&self, message: &str) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.reply(messages::refusal(message));
    }

    fn rpc_error(&self, code: RpcCode, detail: Option<&str>) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.reply(messages::rpc_error(code, detail));
    }

    fn request(&mut self, bytes: &[u8]) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return self.rpc_error(RpcCode::ParseError, Some("not UTF-8"));
        };
        match self.inbound.receive::<Message>(text) {
            Ok(Message::JoinChat(join)) => self.join(&join.params.username),
            Ok(Message::SendMessage(send)) => self.send(&send.params.message),
            Ok(Message::GetUsers(_)) => self.get_users(),
            Ok(Message::LeaveChat(_)) => self.leave(),
            // A server's message: recognised as sent the other way, never here.
            Ok(_) => self.rpc_error(RpcCode::InvalidRequest, Some("not a request")),
            Err(rejection) => self.rejected(rejection),
        }
    }

    /// The answer to a request the pipeline refused.
    fn rejected(&mut self, rejection: Rejection) {
        match rejection {
            Rejection::TooLarge { limit, .. } => self.too_large(limit),
            Rejection::RateLimited => self.refuse(text::RATE_LIMITED),
            Rejection::NotJson(error) => {
                self.rpc_error(RpcCode::ParseError, Some(&error.to_string()))
            }
            Rejection::Invalid { value, error, .. } => {
                // The only rule on a string name or text is its length.
                let params = value.get("params");
                let string = |key| {
                    params
                        .and_then(|params| params.get(key))
                        .and_then(Value::as_str)
                };
                match (method(&value), string("username"), string("message")) {
                    (Some("join_chat"), Some(name), _) => {
                        self.refuse(check_username(name).err().unwrap_or(text::BAD_USERNAME))
                    }
                    (Some("send_message"), _, Some(message)) => {
                        self.refuse(check_message(message).err().unwrap_or(text::MESSAGE_EMPTY))
                    }
                    _ => self.rpc_error(RpcCode::InvalidParams, Some(&error.to_string())),
                }
            }
            Rejection::Unrecognised { value } | Rejection::WrongDirection { value, .. } => {
                match method(&value) {
                    Some(name) if METHODS.contains(&name) => {
                        self.rpc_error(RpcCode::InvalidParams, None)
                    }
                    Some(name) => {
                        let detail = format!("`{}`", name.chars().take(64).collect::<String>());
                        self.rpc_error(RpcCode::MethodNotFound, Some(&detail))
                    }
                    None if value.is_object() => {
                        self.rpc_error(RpcCode::InvalidRequest, Some("no `method`"))
                    }
                    None => self.rpc_error(RpcCode::InvalidRequest, Some("not an object")),
                }
            }
        }
    }

    fn too_large(&self, limit: usize) {
        let detail = format!("larger than {limit} bytes");
        self.rpc_error(RpcCode::InvalidRequest, Some(&detail));
    }

    fn join(&mut self, username: &str) {
        if let Some(name) = &self.joined {
            return self.refuse(&format!("Already joined as {name}"));
        }
        let name = match check_username(username) {
            Ok(name) => name,
            Err(reason) => return self.refuse(reason),
        };
        let shared = Arc::clone(&self.shared);
        let mut room = shared.room();
        let name = if !room.is_taken(name) {
            name.to_owned()
        } else if shared.names == NamePolicy::SuffixPort {
            let base = format!("{name}_{}", self.peer.addr.port());
            let mut candidate = base.clone();
            let mut n = 2;
            while room.is_taken(&candidate) {
                candidate = format!("{base}_{n}");
                n += 1;
            }
            candidate
        } else {
            drop(room);
            return self.refuse(text::NAME_TAKEN);
        };
        room.join(self.peer.id, &name, self.peer.addr, self.outbox.clone());
        let users = listing(&room.users().collect::<Vec<_>>(), shared.users);
        let message = format!("Joined chat as {name}");
        self.reply(messages::success(
            &message,
            json!({"username": name, "users": users}),
        ));
        if shared.welcome {
            self.reply(messages::system(&format!("Welcome to the chat, {name}!")));
        }
        let announcement = messages::system(&format!("{name} has joined the chat!"));
        shared.count(room.broadcast(&announcement, Some(self.peer.id)));
        drop(room);
        tracing::debug!(peer = %self.peer.addr, %name, "joined");
        self.joined = Some(name);
    }

    fn send(&mut self, message: &str) {
        let Some(name) = &self.joined else {
            return self.refuse(text::NOT_JOINED);
        };
        let message = match check_message(message) {
            Ok(message) => message,
            Err(reason) => return self.refuse(reason),
        };
        let broadcast = messages::chat(name, message);
        let room = self.shared.room();
        self.reply(messages::success("Message sent successfully", json!({})));
        self.shared
            .count(room.broadcast(&broadcast, Some(self.peer.id)));
        drop(room);
        self.shared
            .counters
            .messages
            .fetch_add(1, Ordering::Relaxed);
    }

    fn get_users(&mut self) {
        if self.joined.is_none() {
            return self.refuse(text::NOT_JOINED);
        }
        let room = self.shared.room();
        let users = listing(&room.users().collect::<Vec<_>>(), self.shared.users);
        drop(room);
        let count = users.len();
        self.reply(messages::success(
            "Users retrieved successfully",
            json!({"users": users, "count": count}),
        ));
    }

    fn leave(&mut self) {
        if self.joined.is_none() {
            return self.refuse(text::NOT_JOINED);
        }
        // The response is queued under the room's lock with the
        // announcement, so it is ordered with the broadcasts around it.
        let shared = Arc::clone(&self.shared);
        let mut room = shared.room();
        self.reply(messages::success("Left chat successfully", json!({})));
        self.depart(&mut room);
    }

    /// Removes this connection from the room and tells the others.
    fn depart(&mut self, room: &mut super::room::Room) {
        if let Some(name) = room.leave(self.peer.id) {
            let announcement = messages::system(&format!("{name} has left the chat!"));
            self.shared.count(room.broadcast(&announcement, None));
            tracing::debug!(peer = %self.peer.addr, %name, "left");
        }
        self.joined = None;
    }
}

/// The request's `method`, when it is a string.
fn method(value: &Value) -> Option<&str> {
    value.get("method").and_then(Value::as_str)
}

/// Users as the server lists them.
fn listing(users: &[(&str, std::net::SocketAddr)], style: UserListing) -> Vec<Value> {
    users
        .iter()
        .map(|(name, address)| match style {
            UserListing::Names => json!(name),
            UserListing::WithAddress => json!({"username": name, "address": address.to_string()}),
        })
        .collect()
}

impl TcpSession for ChatSession {
    type Frame = StreamItem;

    fn on_frame(&mut self, item: StreamItem) {
        match item {
            StreamItem::Value(bytes) => self.request(&bytes),
            StreamItem::Junk => self.rpc_error(RpcCode::ParseError, Some("not a JSON object")),
            StreamItem::TooLarge { limit } => self.too_large(limit),
        }
    }

    /// However the connection ended, a joined user is announced as left.
    fn on_close(&mut self) {
        if self.joined.is_some() {
            let shared = Arc::clone(&self.shared);
            let mut room = shared.room();
            self.depart(&mut room);
        }
    }
}
