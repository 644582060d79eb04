//! [`ChatClient`]: a connection to any chat server, with typed requests
//! and the broadcasts as a stream of [`ChatEvent`]s.
//!
//! Requests carry no id, so responses are matched by order: each request
//! is written and its reply slot queued under one lock, and the reader
//! hands each response to the oldest waiting slot. Objects with a `type`
//! and no `status` are broadcasts and go to [`ChatEvents`].
//!
//! ```no_run
//! use std::time::Duration;
//! use specwire_runtime::chat::{ChatClient, ChatEvent};
//!
//! # async fn run() -> Result<(), specwire_runtime::chat::ChatError> {
//! let (client, mut events) = ChatClient::connect("127.0.0.1:65432", Duration::from_secs(5)).await?;
//! let joined = client.join("Alice").await?;
//! println!("joined as {} with {:?}", joined.username, joined.users);
//! client.send("Hello everyone!").await?;
//! while let Some(event) = events.next().await {
//!     if let ChatEvent::Chat { username, message } = event {
//!         println!("{username}: {message}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Queues
//! Broadcasts wait in a queue of [`EVENT_QUEUE`] for the application to
//! take them; when it is full the reader waits, which also holds back
//! responses (they share the stream): read the events while making
//! requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::MaybeTlsStream;

use crate::net::{connect_tcp, ConnectError};

/// Broadcasts held for the application.
pub const EVENT_QUEUE: usize = 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No connection.
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    /// Reading or writing failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before answering.
    #[error("the server closed the connection")]
    Closed,
    /// No response within the time limit.
    #[error("no response within {0:?}")]
    TimedOut(Duration),
    /// `{"status":"error","message":...}`.
    #[error("refused: {0}")]
    Refused(String),
    /// `{"error":...,"code":...}`.
    #[error("JSON-RPC error {code}: {error}")]
    Rpc {
        /// The JSON-RPC code.
        code: i64,
        /// The server's text.
        error: String,
    },
    /// A response of an unexpected shape.
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

/// A broadcast.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    /// Another user's message.
    Chat {
        /// Who sent it.
        username: String,
        /// The text.
        message: String,
    },
    /// A join, a leave, a welcome.
    System {
        /// The announcement.
        message: String,
    },
    /// Something else with a `type` (a newer server's broadcast).
    Other(Value),
}

/// What `join_chat` answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    /// The name given: the one asked for, trimmed, or the server's
    /// de-duplicated one when it says so.
    pub username: String,
    /// The users listed in the response (may be empty: listing is optional).
    pub users: Vec<String>,
    /// The server's text.
    pub message: String,
}

type Slots = Arc<Mutex<VecDeque<oneshot::Sender<Value>>>>;

/// A connection to a chat server. Cheap to share behind an `Arc`; requests
/// from several tasks are answered in the order they were written.
pub struct ChatClient {
    writer: tokio::sync::Mutex<WriteHalf<MaybeTlsStream<TcpStream>>>,
    slots: Slots,
    timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
}

/// The broadcasts of one [`ChatClient`]; ends when the connection does.
pub struct ChatEvents(mpsc::Receiver<ChatEvent>);

impl ChatEvents {
    /// The next broadcast; `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<ChatEvent> {
        self.0.recv().await
    }

    /// A broadcast already received, without waiting.
    pub fn try_next(&mut self) -> Option<ChatEvent> {
        self.0.try_recv().ok()
    }
}

fn endpoint(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("tcp://{address}")
    }
}

impl ChatClient {
    /// Connects to `HOST:PORT` (or `tcp://` / `tls://HOST:PORT`) within
    /// `timeout`, which also bounds every later request.
    pub async fn connect(
        address: &str,
        timeout: Duration,
    ) -> Result<(ChatClient, ChatEvents), ChatError> {
        let stream = connect_tcp(&endpoint(address), &[], timeout).await?;
        let (read, write) = tokio::io::split(stream);
        let slots: Slots = Arc::default();
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let reader = tokio::spawn(read_loop(read, Arc::clone(&slots), events));
        let client = ChatClient {
            writer: tokio::sync::Mutex::new(write),
            slots,
            timeout,
            reader,
        };
        Ok((client, ChatEvents(receiver)))
    }

    /// Sends `request` as it is and returns the response, whatever it says.
    pub async fn request(&self, request: &Value) -> Result<Value, ChatError> {
        let mut bytes = serde_json::to_vec(request).unwrap_or_default();
        bytes.push(b'\n');
        self.request_bytes(&bytes).await
    }

    /// Writes `bytes` (one request) and returns its response.
    pub async fn request_bytes(&self, bytes: &[u8]) -> Result<Value, ChatError> {
        let (slot, response) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            lock(&self.slots).push_back(slot);
            let write = async {
                writer.write_all(bytes).await?;
                writer.flush().await
            };
            let written = tokio::time::timeout(self.timeout, write)
                .await
                .map_err(|_| ChatError::TimedOut(self.timeout))
                .and_then(|result| result.map_err(ChatError::from));
            if let Err(error) = written {
                // The slot is the newest (the writer lock is held): take it
                // back so later responses still pair with their requests.
                lock(&self.slots).pop_back();
                return Err(error);
            }
        }
        tokio::time::timeout(self.timeout, response)
            .await
            .map_err(|_| ChatError::TimedOut(self.timeout))?
            .map_err(|_| ChatError::Closed)
    }

    /// A request whose success is all that matters.
    async fn call(&self, request: Value) -> Result<Value, ChatError> {
        let response = self.request(&request).await?;
        match response.get("status").and_then(Value::as_str) {
            Some("success") => Ok(response),
            Some("error") => Err(ChatError::Refused(string(&response, "message"))),
            _ => match response.get("code").and_then(Value::as_i64) {
                Some(code) => Err(ChatError::Rpc {
                    code,
                    error: string(&response, "error"),
                }),
                None => Err(ChatError::Unexpected(response.to_string())),
            },
        }
    }

    /// Joins as `username`.
    pub async fn join(&self, username: &str) -> Result<Joined, ChatError> {
        let response = self
            .call(json!({"method": "join_chat", "params": {"username": username}}))
            .await?;
        let given = response.get("username").and_then(Value::as_str);
        Ok(Joined {
            username: given.map_or_else(|| username.trim().to_owned(), str::to_owned),
            users: names(&response),
            message: string(&response, "message"),
        })
    }

    /// Sends `message` to the others.
    pub async fn send(&self, message: &str) -> Result<(), ChatError> {
        self.call(json!({"method": "send_message", "params": {"message": message}}))
            .await
            .map(drop)
    }

    /// The joined users' names (from plain names or `{username, address}`).
    pub async fn users(&self) -> Result<Vec<String>, ChatError> {
        let response = self
            .call(json!({"method": "get_users", "params": {}}))
            .await?;
        Ok(names(&response))
    }

    /// Leaves the chat (the connection stays open).
    pub async fn leave(&self) -> Result<(), ChatError> {
        self.call(json!({"method": "leave_chat", "params": {}}))
            .await
            .map(drop)
    }

    /// Closes the write side (the server then ends the connection).
    pub async fn close(&self) -> Result<(), ChatError> {
        self.writer.lock().await.shutdown().await?;
        Ok(())
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock(slots: &Slots) -> std::sync::MutexGuard<'_, VecDeque<oneshot::Sender<Value>>> {
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn string(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The names in a response's `users`, plain or `{username, address}`.
fn names(response: &Value) -> Vec<String> {
    let users = response.get("users").and_then(Value::as_array);
    users
        .into_iter()
        .flatten()
        .filter_map(|user| {
            user.as_str()
                .or_else(|| user.get("username").and_then(Value::as_str))
        })
        .map(str::to_owned)
        .collect()
}

/// A broadcast has a `type` and no `status`; anything else answers a request.
fn event(value: Value) -> Result<ChatEvent, Value> {
    if value.get("status").is_some() || value.get("type").is_none() {
        return Err(value);
    }
    Ok(match value.get("type").and_then(Value::as_str) {
        Some("chat") => ChatEvent::Chat {
            username: string(&value, "username"),
            message: string(&value, "message"),
        },
        Some("system") => ChatEvent::System {
            message: string(&value, "message"),
        },
        _ => ChatEvent::Other(value),
    })
}

async fn read_loop(
    mut read: ReadHalf<MaybeTlsStream<TcpStream>>,
    slots: Slots,
    events: mpsc::Sender<ChatEvent>,
) {
    let mut decoder = JsonStreamDecoder::new(specwire_protocol::chat::MAX_MESSAGE_BYTES * 4);
    let mut buffer = BytesMut::with_capacity(4096);
    loop {
        while let Some(item) = decoder.decode(&mut buffer) {
            let value = match item {
                StreamItem::Value(bytes) => parse(&bytes),
                StreamItem::Junk | StreamItem::TooLarge { .. } => Value::Null,
            };
            match event(value) {
                // Nobody reading events is no reason to stop answering.
                Ok(event) => drop(events.send(event).await),
                Err(response) => {
                    if let Some(slot) = lock(&slots).pop_front() {
                        let _ = slot.send(response);
                    }
                }
            }
        }
        match read.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Waiting requests see the connection closed.
    lock(&slots).clear();
}

fn parse(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}
