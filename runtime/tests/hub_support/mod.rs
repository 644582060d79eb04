//! Helpers for the subscription hub tests: a hub on an ephemeral loopback
//! port, tokens, sample events, and a raw WebSocket client that checks
//! every message the hub sends against its schema.
//!
//! Nothing here sleeps to synchronise: every wait is for a message or a
//! condition, bounded by [`PATIENCE`].

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_protocol::subscription::Message;
use specwire_protocol::{Direction, JsonProtocol};
use specwire_runtime::subscription::{token, Hub, HubConfig, Secret};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[allow(unused_imports)]
pub use specwire_testsupport::{eventually, within, PATIENCE};

pub const SECRET: &[u8] = b"hub test secret";

pub fn secret() -> Secret {
    Secret::new(SECRET.to_vec())
}

/// A config on 127.0.0.1 port 0 with the test secret and no rate limit.
pub fn config() -> HubConfig {
    HubConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        secret: secret(),
        rate_limit: None,
        ..HubConfig::default()
    }
}

pub async fn hub(config: HubConfig) -> Hub {
    within("the hub to start", Hub::start(config))
        .await
        .expect("start the hub")
}

pub fn user_token(sub: &str) -> String {
    token::mint(&secret(), sub, None, Duration::from_secs(600)).unwrap()
}

pub fn admin_token() -> String {
    token::mint(&secret(), "admin", Some("admin"), Duration::from_secs(600)).unwrap()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw client.
pub struct Client {
    ws: Ws,
    pub received: Vec<Value>,
}

/// Connects to `path` with `token` in the query.
pub async fn connect(hub: &Hub, path: &str, token: &str) -> Client {
    let url = format!("{}{path}?token={token}", hub.endpoint());
    try_connect(&url, None).await.expect("connect")
}

/// Connects to `url`, with a bearer header when given; the handshake's
/// error as text.
pub async fn try_connect(url: &str, bearer: Option<&str>) -> Result<Client, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (ws, _) = within(
        "the WebSocket handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|error| match error {
        tungstenite::Error::Http(response) => format!("HTTP {}", response.status()),
        other => other.to_string(),
    })?;
    Ok(Client {
        ws,
        received: Vec::new(),
    })
}

/// What came next.
#[derive(Debug)]
pub enum Next {
    Message(Value),
    Closed(Option<u16>),
}

impl Client {
    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        within("a send", self.ws.send(Frame::text(text.to_owned())))
            .await
            .expect("send");
    }

    /// The next message (checked against its schema) or the close.
    pub async fn next(&mut self) -> Next {
        loop {
            match within("a message from the hub", self.ws.next()).await {
                Some(Ok(Frame::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    let decoded =
                        Message::decode_from(value.clone(), Some(Direction::ServerToClient));
                    assert!(decoded.is_ok(), "invalid hub message {value}: {decoded:?}");
                    assert!(
                        value["id"].is_string() && value["timestamp"].is_string(),
                        "{value}"
                    );
                    self.received.push(value.clone());
                    return Next::Message(value);
                }
                Some(Ok(Frame::Close(frame))) => {
                    return Next::Closed(frame.map(|frame| u16::from(frame.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    /// The next message, which must be one (not a close).
    pub async fn message(&mut self) -> Value {
        match self.next().await {
            Next::Message(value) => value,
            Next::Closed(code) => panic!("closed ({code:?}) where a message was expected"),
        }
    }

    /// The next message that is not a heartbeat ping.
    pub async fn non_ping(&mut self) -> Value {
        loop {
            let value = self.message().await;
            if value["type"] != "ping" {
                return value;
            }
        }
    }

    pub async fn subscribe(&mut self, kind: &str, id: &str) -> Value {
        self.send(json!({"type": "system_status", "data": {"action": "subscribe", "resourceType": kind, "resourceId": id}}))
            .await;
        let reply = self.non_ping().await;
        assert_eq!(reply["data"]["action"], "subscribed", "{reply}");
        reply
    }

    /// Publishes `event` through this (admin) connection.
    pub async fn publish(&mut self, event: &Value) {
        self.send(json!({"type": "publish", "data": event})).await;
    }

    /// Events (ids) up to and including the one with id `marker`.
    pub async fn events_until(&mut self, marker: &str) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let value = self.non_ping().await;
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            ids.push(id.clone());
            if id == marker {
                return ids;
            }
        }
    }
}

/// Sample events, valid against the schemas.
pub mod events {
    use super::*;

    const T: &str = "2024-01-15T10:30:00Z";

    pub fn experiment(kind: &str, id: &str, experiment: &str, project: &str, owner: &str) -> Value {
        let body = json!({"id": experiment, "name": "sweep", "status": "RUNNING", "ownerId": owner, "projectId": project});
        let summary =
            json!({"id": experiment, "name": "sweep", "status": "RUNNING", "ownerId": owner});
        json!({"type": kind, "id": id, "timestamp": T, "data": {"experiment": body, "summary": summary}})
    }

    pub fn experiment_progress(id: &str, experiment: &str) -> Value {
        json!({"type": "experiment_progress", "id": id, "timestamp": T, "data": {
            "experimentId": experiment, "totalTasks": 10, "completedTasks": 5, "failedTasks": 0,
            "runningTasks": 1, "progressPercent": 50.0, "lastUpdated": T}})
    }

    pub fn task(kind: &str, id: &str, task: &str, experiment: &str) -> Value {
        let body = json!({"id": task, "experimentId": experiment, "status": "RUNNING", "command": "run", "workerId": null});
        let summary =
            json!({"id": task, "experimentId": experiment, "status": "RUNNING", "workerId": null});
        json!({"type": kind, "id": id, "timestamp": T, "data": {"task": body, "summary": summary}})
    }

    pub fn worker(kind: &str, id: &str, worker: &str) -> Value {
        let body = json!({"id": worker, "computeResourceId": "c", "experimentId": "e", "status": "RUNNING", "currentTaskId": null});
        let summary = json!({"id": worker, "computeResourceId": "c", "experimentId": "e", "status": "RUNNING"});
        json!({"type": kind, "id": id, "timestamp": T, "data": {"worker": body, "summary": summary}})
    }

    pub fn system(id: &str) -> Value {
        json!({"type": "system_status", "id": id, "timestamp": T, "data": {
            "totalConnections": 1, "activeConnections": 1, "totalMessages": 1,
            "messagesPerSecond": 1.0, "averageLatency": "0.05s", "uptime": "1m"}})
    }
}
