//! One hub connection: its subscriptions by message, pings, publishing
//! (admins), and an `error` for everything else, keeping the connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use specwire_protocol::subscription::{Message, ResourceType};
use specwire_protocol::{Direction, JsonProtocol};

use super::hub::Shared;
use super::messages::{self, text, Ids};
use super::resource::Resource;
use super::table::ConnectionId;
use crate::net::{Identity, Inbound, Outbox, Rejection, Text, WsSession};

/// The close code after a refused token or a connection limit.
const POLICY: u16 = 1008;

pub(crate) struct HubSession {
    /// `None` for a refused connection: it gets its error and closes.
    admitted: Option<Admitted>,
}

struct Admitted {
    shared: Arc<Shared>,
    id: ConnectionId,
    outbox: Outbox<Text>,
    identity: Identity,
    inbound: Inbound,
}

/// `data` of a `publish`, as the publisher wrote it.
#[derive(Deserialize)]
struct RawPublish<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

/// The `type`s clients send: a message with one of these that is not
/// recognised is malformed, not of an unknown type.
const CLIENT_TYPES: &[&str] = &["system_status", "ping", "pong", "publish"];

impl HubSession {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: ConnectionId,
        outbox: Outbox<Text>,
        identity: Identity,
    ) -> HubSession {
        let inbound = Inbound::new(&shared.limits, Direction::ClientToServer);
        HubSession {
            admitted: Some(Admitted {
                shared,
                id,
                outbox,
                identity,
                inbound,
            }),
        }
    }

    /// A connection refused after the upgrade: one `error`, then close
    /// 1008. It is in no table and gets no event.
    pub(crate) fn refuse(outbox: Outbox<Text>, ids: &Ids, reason: &'static str) -> HubSession {
        let _ = outbox.send(messages::error(ids, reason, None));
        outbox.end_with(POLICY, reason);
        HubSession { admitted: None }
    }
}

impl WsSession for HubSession {
    fn on_text(&mut self, text: &str) {
        if let Some(admitted) = &mut self.admitted {
            admitted.receive(text);
        }
    }

    fn on_binary(&mut self, _: &[u8]) {
        if let Some(admitted) = &mut self.admitted {
            if admitted.inbound.admit(0).is_ok() {
                admitted.error(
                    text::INVALID_FORMAT,
                    Some("binary frames carry no messages: send JSON in text frames"),
                );
            } else {
                admitted.error(text::RATE_LIMITED, None);
            }
        }
    }

    fn on_close(&mut self) {
        if let Some(admitted) = &self.admitted {
            admitted.shared.table().remove(admitted.id);
        }
    }
}

impl Admitted {
    fn send(&self, text: Text) {
        // Fails only when the connection is already closing.
        let _ = self.outbox.send(text);
    }

    fn error(&self, message: &str, detail: Option<&str>) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.send(messages::error(&self.shared.ids, message, detail));
    }

    fn receive(&mut self, text: &str) {
        let message = match self.inbound.receive::<Message>(text) {
            Ok(message) => message,
            Err(rejection) => return self.reject(&rejection),
        };
        let ids = &self.shared.ids;
        match message {
            Message::Subscribe(subscribe) => {
                let resource =
                    Resource::new(subscribe.data.resource_type, subscribe.data.resource_id.0);
                let refusal = self.refusal(&resource);
                if refusal.is_none() {
                    self.shared.table().subscribe(self.id, resource.clone());
                }
                self.send(messages::subscription_reply(
                    ids,
                    "subscribed",
                    &resource,
                    refusal.as_deref(),
                ));
            }
            Message::Unsubscribe(unsubscribe) => {
                let resource = Resource::new(
                    unsubscribe.data.resource_type,
                    unsubscribe.data.resource_id.0,
                );
                self.shared.table().unsubscribe(self.id, &resource);
                self.send(messages::subscription_reply(
                    ids,
                    "unsubscribed",
                    &resource,
                    None,
                ));
            }
            Message::ClientPing(ping) => self.send(messages::pong(
                ids,
                ping.id.as_deref().map(|id| id.as_str()),
            )),
            // The heartbeat's answer: liveness is the WebSocket layer's job
            // (the seed's own clients never answer), so nothing to do.
            Message::ClientPong(_) => {}
            Message::Publish(publish) => self.publish(publish.data, text),
            // Inbound only yields client-to-server messages.
            other => self.error(text::UNKNOWN_TYPE, Some(other.name())),
        }
    }

    /// Why `resource` may not be subscribed, if it may not: another
    /// user's `user` resource needs an admin token.
    fn refusal(&self, resource: &Resource) -> Option<String> {
        let own = self.identity.client_id.as_deref() == Some(resource.id.as_str());
        (resource.kind == ResourceType::User && !own && !self.identity.is_admin()).then(|| {
            format!(
                "forbidden: only your own user resource (user:{}) may be subscribed",
                self.identity.client_id.as_deref().unwrap_or("")
            )
        })
    }

    fn publish(&self, event: specwire_protocol::subscription::PublishData, text: &str) {
        if !self.identity.is_admin() {
            return self.error(text::FORBIDDEN_PUBLISH, None);
        }
        // The event as the publisher wrote it: validated already (the
        // `publish` message's schema holds every event's), routed as is.
        match serde_json::from_str::<RawPublish<'_>>(text) {
            Ok(raw) => {
                self.shared.publish(&event, raw.data.get());
            }
            Err(error) => self.error(text::INVALID_FORMAT, Some(&error.to_string())),
        }
    }

    fn reject(&self, rejection: &Rejection) {
        match rejection {
            Rejection::RateLimited => self.error(text::RATE_LIMITED, None),
            Rejection::TooLarge { size, limit } => self.error(
                text::INVALID_FORMAT,
                Some(&format!("{size} bytes is over the {limit}-byte limit")),
            ),
            Rejection::NotJson(error) => {
                self.error(text::INVALID_FORMAT, Some(&format!("not JSON: {error}")))
            }
            Rejection::Unrecognised { value } | Rejection::WrongDirection { value, .. } => {
                match value.get("type").and_then(Value::as_str) {
                    // A type clients send, in a shape no client message has.
                    Some(kind) if CLIENT_TYPES.contains(&kind) => self.error(
                        text::INVALID_FORMAT,
                        Some(&format!("a `{kind}` message of no known shape (system_status needs data.action subscribe or unsubscribe)")),
                    ),
                    Some(kind) => self.error(
                        text::UNKNOWN_TYPE,
                        Some(&format!("clients do not send `{kind}`; admins publish events as {{\"type\":\"publish\",\"data\":<event>}}")),
                    ),
                    None => self.error(
                        text::INVALID_FORMAT,
                        Some("a message is a JSON object with a string `type`"),
                    ),
                }
            }
            // Publishing is refused before the event is looked at.
            Rejection::Invalid {
                message: "Publish", ..
            } if !self.identity.is_admin() => self.error(text::FORBIDDEN_PUBLISH, None),
            Rejection::Invalid { error, .. } => {
                self.error(text::INVALID_FORMAT, Some(&error.to_string()))
            }
        }
    }
}
