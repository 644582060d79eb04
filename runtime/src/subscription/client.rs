//! The subscriber: a connection to a hub that survives the hub going away.
//!
//! It connects (retrying with [`Backoff`] and jitter), subscribes every
//! resource it was asked to (again after each reconnect), answers the
//! hub's JSON pings, and yields a stream of [`Update`]s: typed events, and
//! [`Update::Connected`] each time a connection is up, whose `reconnect`
//! flag tells a fresh start from a resumption after a break, when events
//! may have been missed. A quiet stream is just silence; a break always
//! shows as [`Update::Disconnected`] then `Connected { reconnect: true }`.
//!
//! A refused token (an `error` then close 1008) ends the stream with
//! [`Update::Refused`]: retrying the same token cannot help.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use specwire_runtime::subscription::{Subscriber, SubscriberConfig, Update};
//!
//! let mut subscriber = Subscriber::start(SubscriberConfig::new(
//!     "ws://127.0.0.1:8081/ws/experiments/exp-1",
//!     "eyJhbGciOiJIUzI1NiJ9...",
//! ).subscribe("task:t-1".parse()?))?;
//! while let Some(update) = subscriber.next().await {
//!     match update {
//!         Update::Event(event) => println!("{event:?}"),
//!         Update::Connected { reconnect: true, .. } => println!("back; events may have been missed"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_protocol::subscription::{Message, SubscriptionResponse};
use specwire_protocol::{Direction, JsonProtocol};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::resource::{kind_name, Resource};
use crate::net::{Backoff, ConnectError, Connector, WsStream};

/// Updates waiting for the caller; when full, reading from the hub waits
/// (and a hub whose queue for us fills closes us: a reconnect, reported).
const UPDATES: usize = 1024;

/// Where and how to subscribe.
#[derive(Clone, Debug)]
pub struct SubscriberConfig {
    /// `ws://HOST:PORT/ws/...` (or `wss://`), without the token.
    pub url: String,
    /// The JWT, sent as `Authorization: Bearer`.
    pub token: String,
    /// Subscribed by message after every (re)connect, besides the path's.
    pub subscriptions: Vec<Resource>,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Time limit of one connection attempt.
    pub connect_timeout: Duration,
    /// Extra CA certificates (PEM) for `wss://`.
    pub extra_roots: Vec<PathBuf>,
}

impl SubscriberConfig {
    /// Subscribes to `url`'s resource with `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> SubscriberConfig {
        SubscriberConfig {
            url: url.into(),
            token: token.into(),
            subscriptions: Vec::new(),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            extra_roots: Vec::new(),
        }
    }

    /// Also subscribes to `resource`.
    pub fn subscribe(mut self, resource: Resource) -> SubscriberConfig {
        self.subscriptions.push(resource);
        self
    }
}

/// What the subscriber saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A connection is up and every subscription was sent (their
    /// [`Reply`](Update::Reply)s follow). `reconnect`: there was a
    /// connection before this one, so events published in between were
    /// missed.
    Connected {
        /// Connections made before this one.
        reconnect: bool,
        /// Failed attempts before this connection.
        attempts: u32,
    },
    /// An event (or any other message from the hub but pings, pongs and
    /// subscription replies). Boxed: events are large, the other updates
    /// small.
    Event(Box<Message>),
    /// The hub's reply to a subscribe or unsubscribe.
    Reply(Box<SubscriptionResponse>),
    /// An `error` from the hub; the connection stays.
    Error(String),
    /// The connection broke; reconnecting after a backoff.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The hub refused the token (or a connection limit): the stream ends.
    Refused(String),
}

/// A running subscriber. Dropping it closes the connection.
#[derive(Debug)]
pub struct Subscriber {
    updates: mpsc::Receiver<Update>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
enum Command {
    Subscribe(Resource),
    Unsubscribe(Resource),
}

impl Subscriber {
    /// Starts connecting in the background.
    pub fn start(config: SubscriberConfig) -> Result<Subscriber, ConnectError> {
        let connector = Connector::new(
            config.url.clone(),
            &config.extra_roots,
            config.connect_timeout,
        )?
        .with_bearer(config.token.clone());
        let (updates_tx, updates) = mpsc::channel(UPDATES);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(connector, config, updates_tx, commands_rx));
        Ok(Subscriber {
            updates,
            commands,
            task,
        })
    }

    /// The next update; `None` once the subscriber stopped (refused).
    pub async fn next(&mut self) -> Option<Update> {
        self.updates.recv().await
    }

    /// Subscribes to `resource` now and after every reconnect.
    pub fn subscribe(&self, resource: Resource) {
        let _ = self.commands.send(Command::Subscribe(resource));
    }

    /// Stops subscribing to `resource`.
    pub fn unsubscribe(&self, resource: Resource) {
        let _ = self.commands.send(Command::Unsubscribe(resource));
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn subscription(action: &str, resource: &Resource) -> String {
    json!({
        "type": "system_status",
        "data": {"action": action, "resourceType": kind_name(resource.kind), "resourceId": resource.id},
    })
    .to_string()
}

/// How one connection ended.
enum End {
    /// Broke: reconnect.
    Broken(String),
    /// Refused: stop.
    Refused(String),
    /// The caller is gone: stop.
    Dropped,
}

async fn run(
    connector: Connector,
    mut config: SubscriberConfig,
    updates: mpsc::Sender<Update>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut connections = 0u32;
    let mut failures = 0u32;
    loop {
        let ws = match connector.connect().await {
            Ok((ws, _)) => ws,
            Err(error) => {
                if error.is_untrusted_certificate() {
                    let _ = updates.send(Update::Refused(error.to_string())).await;
                    return;
                }
                tokio::time::sleep(config.backoff.delay(failures)).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        let connected = Update::Connected {
            reconnect: connections > 0,
            attempts: failures,
        };
        connections += 1;
        failures = 0;
        let end = session(ws, &mut config, connected, &updates, &mut commands).await;
        match end {
            End::Broken(reason) => {
                if updates.send(Update::Disconnected { reason }).await.is_err() {
                    return;
                }
                tokio::time::sleep(config.backoff.delay(0)).await;
            }
            End::Refused(reason) => {
                let _ = updates.send(Update::Refused(reason)).await;
                return;
            }
            End::Dropped => return,
        }
    }
}

/// One connection: subscribe everything, then relay until it ends.
async fn session(
    mut ws: WsStream,
    config: &mut SubscriberConfig,
    connected: Update,
    updates: &mpsc::Sender<Update>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> End {
    for resource in &config.subscriptions {
        if let Err(error) = ws
            .send(Frame::text(subscription("subscribe", resource)))
            .await
        {
            return End::Broken(error.to_string());
        }
    }
    if updates.send(connected).await.is_err() {
        return End::Dropped;
    }
    let mut last_error = None;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(Frame::Close(close))) => {
                        let code = close.as_ref().map(|frame| u16::from(frame.code));
                        if code == Some(1008) {
                            let reason = last_error.take().unwrap_or_else(|| "refused by the hub (1008)".to_owned());
                            return End::Refused(reason);
                        }
                        return End::Broken(match close {
                            Some(frame) => format!("closed by the hub: {} {}", u16::from(frame.code), frame.reason),
                            None => "closed by the hub".to_owned(),
                        });
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return End::Broken(error.to_string()),
                    None => return End::Broken("connection closed".to_owned()),
                };
                let update = match decode(text.as_str()) {
                    Ok(Message::ServerPing(ping)) => {
                        let pong = json!({"type": "pong", "id": ping.id}).to_string();
                        if let Err(error) = ws.send(Frame::text(pong)).await {
                            return End::Broken(error.to_string());
                        }
                        continue;
                    }
                    Ok(Message::ServerPong(_)) => continue,
                    Ok(Message::SubscriptionResponse(reply)) => Update::Reply(Box::new(reply)),
                    Ok(Message::Error(error)) => {
                        last_error = Some(error.error.clone());
                        Update::Error(error.error)
                    }
                    Ok(event) => Update::Event(Box::new(event)),
                    Err(error) => Update::Error(format!("the hub sent an invalid message: {error}")),
                };
                if updates.send(update).await.is_err() {
                    return End::Dropped;
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return End::Dropped };
                let text = match command {
                    Command::Subscribe(resource) => {
                        let text = subscription("subscribe", &resource);
                        if !config.subscriptions.contains(&resource) {
                            config.subscriptions.push(resource);
                        }
                        text
                    }
                    Command::Unsubscribe(resource) => {
                        config.subscriptions.retain(|known| *known != resource);
                        subscription("unsubscribe", &resource)
                    }
                };
                if let Err(error) = ws.send(Frame::text(text)).await {
                    return End::Broken(error.to_string());
                }
            }
        }
    }
}

fn decode(text: &str) -> Result<Message, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    Message::decode_from(value, Some(Direction::ServerToClient)).map_err(|error| error.to_string())
}
