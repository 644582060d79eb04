//! The messages the hub writes itself (events are the publishers'), each
//! with an `id` and a `timestamp` as the profile requires.
//!
//! Ids are `<kind>-<hub tag>-<n>`: a random tag per hub and a counter, so
//! they are unique without a random number per message.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::resource::{kind_name, Resource};
use crate::clock::now_rfc3339;
use crate::net::Text;

/// The profile's error texts.
pub mod text {
    /// No token in the query or the `Authorization` header.
    pub const AUTHENTICATION_REQUIRED: &str = "Authentication required";
    /// A token with a bad signature, another algorithm, expired, no `sub`.
    pub const INVALID_TOKEN: &str = "Invalid or expired token";
    /// Over the connection's message rate.
    pub const RATE_LIMITED: &str = "Rate limit exceeded";
    /// Not JSON, not an object, or fields of the wrong shape.
    pub const INVALID_FORMAT: &str = "Invalid message format";
    /// A `type` the hub does not take.
    pub const UNKNOWN_TYPE: &str = "Unknown message type";
    /// A `publish` without an admin token.
    pub const FORBIDDEN_PUBLISH: &str = "Forbidden: publishing needs an admin token";
}

/// Makes the hub's message ids.
#[derive(Debug)]
pub(crate) struct Ids {
    tag: String,
    next: AtomicU64,
}

impl Ids {
    pub(crate) fn new() -> Ids {
        Ids {
            tag: format!("{:06x}", fastrand::u32(..) & 0xff_ffff),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn next(&self, kind: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{kind}-{}-{n}", self.tag)
    }
}

fn text(value: &Value) -> Text {
    Text::from(value.to_string())
}

/// An `error` with the profile's `message` text; `detail`, when given,
/// goes into `data.detail` so the text itself stays exactly the profile's.
pub(crate) fn error(ids: &Ids, message: &str, detail: Option<&str>) -> Text {
    let mut value = json!({
        "type": "error",
        "id": ids.next("error"),
        "timestamp": now_rfc3339(),
        "error": message,
    });
    if let Some(detail) = detail {
        value["data"] = json!({ "detail": shorten(detail) });
    }
    text(&value)
}

/// Details longer than this are cut (a schema error can quote a whole
/// `oneOf`).
const MAX_DETAIL: usize = 400;

fn shorten(detail: &str) -> String {
    if detail.len() <= MAX_DETAIL {
        return detail.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &detail[..end])
}

/// The reply to a subscribe (`subscribed`) or unsubscribe
/// (`unsubscribed`); `refusal` makes it `status: error`.
pub(crate) fn subscription_reply(
    ids: &Ids,
    action: &str,
    resource: &Resource,
    refusal: Option<&str>,
) -> Text {
    let mut data = json!({
        "action": action,
        "resourceType": kind_name(resource.kind),
        "resourceId": resource.id,
        "status": if refusal.is_some() { "error" } else { "success" },
    });
    if let Some(reason) = refusal {
        data["message"] = json!(reason);
    }
    text(&json!({
        "type": "system_status",
        "id": ids.next("sub"),
        "timestamp": now_rfc3339(),
        "data": data,
    }))
}

/// The answer to a client `ping`: its `id`, or a fresh one.
pub(crate) fn pong(ids: &Ids, ping_id: Option<&str>) -> Text {
    let id = ping_id.map_or_else(|| ids.next("pong"), str::to_owned);
    text(&json!({ "type": "pong", "id": id, "timestamp": now_rfc3339() }))
}

/// The heartbeat.
pub(crate) fn ping(ids: &Ids) -> Text {
    text(&json!({ "type": "ping", "id": ids.next("ping"), "timestamp": now_rfc3339() }))
}

#[cfg(test)]
mod tests {
    use specwire_protocol::subscription::{Message, ResourceType};
    use specwire_protocol::{Direction, JsonProtocol};

    use super::*;

    fn decode(text: &Text) -> Message {
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        Message::decode_from(value, Some(Direction::ServerToClient)).unwrap()
    }

    #[test]
    fn every_hub_message_is_valid_and_has_id_and_timestamp() {
        let ids = Ids::new();
        let resource = Resource::new(ResourceType::Experiment, "e-1");
        let samples = [
            (error(&ids, text::INVALID_FORMAT, Some("line 1")), "Error"),
            (error(&ids, text::RATE_LIMITED, None), "Error"),
            (
                subscription_reply(&ids, "subscribed", &resource, None),
                "SubscriptionResponse",
            ),
            (
                subscription_reply(&ids, "unsubscribed", &resource, Some("no")),
                "SubscriptionResponse",
            ),
            (pong(&ids, Some("p-1")), "ServerPong"),
            (pong(&ids, None), "ServerPong"),
            (ping(&ids), "ServerPing"),
        ];
        for (text, name) in samples {
            assert_eq!(decode(&text).name(), name, "{}", text.as_str());
        }
        assert!(pong(&ids, Some("p-1")).as_str().contains("\"id\":\"p-1\""));
        assert_ne!(ids.next("x"), ids.next("x"));
    }
}
