//! Datagrams as a case sees them, and one request with what arrived after
//! it.
//!
//! A datagram is parsed leniently: a case reads only the fields its spec
//! point is about, whether or not the rest of the datagram validates
//! (validity is `discovery.advertisement.valid`'s business), so one fault
//! fails one case.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use specwire_protocol::discovery::MAX_MESSAGE_BYTES;

/// Which of the suite's sockets a datagram arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The shared discovery port: broadcasts (heartbeats, answers sent to
    /// the provider's targets).
    Shared,
    /// The ephemeral socket that sent the request: only a unicast to the
    /// request's source address arrives there.
    Direct,
}

impl Via {
    /// `broadcast on the shared port` or `unicast to the request's source`.
    pub fn describe(self) -> &'static str {
        match self {
            Via::Shared => "on the shared port",
            Via::Direct => "by unicast to the request's source",
        }
    }
}

/// A datagram from the network, parsed but not trusted.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// When it arrived.
    pub at: Instant,
    /// Which socket it arrived on.
    pub via: Via,
    /// Who sent it.
    pub source: SocketAddr,
    /// The text (lossy UTF-8).
    pub text: String,
    /// The JSON value (`Null` when the text was not JSON).
    pub value: Value,
    /// Why it is not a valid discovery message, if it is not (leaving out
    /// `load` and the settings' shape, which their own cases judge).
    pub invalid: Option<String>,
    /// A `ServiceAdvertisement` (by its `discoveryType`, valid or not) of
    /// the service under test.
    pub advertisement: bool,
}

/// Where a schema rule is its own case's point, not
/// `discovery.advertisement.valid`'s: `load` (0.0–1.0) is
/// `discovery.advertisement.load-range`'s, each setting's shape
/// `discovery.advertisement.settings-types`'s. So one fault fails one case.
fn judged_elsewhere(instance_path: &str) -> bool {
    if instance_path == "/load" {
        return true;
    }
    let mut segments = instance_path.split('/').skip(1);
    segments.next() == Some("capabilities")
        && segments.next().is_some()
        && segments.next() == Some("settings")
        && segments.next().is_some()
}

/// Why `value` is not a valid discovery message, leaving out the rules
/// other cases judge; `None` when nothing else is wrong.
fn schema_problem(value: &Value) -> Option<String> {
    use specwire_protocol::{discovery::Message, DecodeError, JsonProtocol};
    match Message::recognise(value, None) {
        Ok(_) => None,
        Err(DecodeError::Invalid {
            family,
            message,
            violations,
        }) => {
            let rest: Vec<String> = violations
                .iter()
                .filter(|violation| !judged_elsewhere(&violation.instance_path))
                .map(ToString::to_string)
                .collect();
            (!rest.is_empty()).then(|| format!("invalid {family}/{message}: {}", rest.join("; ")))
        }
        Err(other) => Some(other.to_string()),
    }
}

impl Datagram {
    /// Parses and validates `bytes` (see [`schema_problem`]).
    pub fn parse(at: Instant, via: Via, source: SocketAddr, bytes: &[u8]) -> Datagram {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (value, invalid) = if bytes.len() > MAX_MESSAGE_BYTES {
            (
                Value::Null,
                Some(format!(
                    "a datagram of {} bytes is longer than {MAX_MESSAGE_BYTES}",
                    bytes.len()
                )),
            )
        } else {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => {
                    let invalid = schema_problem(&value);
                    (value, invalid)
                }
                Err(error) => (Value::Null, Some(format!("not JSON: {error}"))),
            }
        };
        Datagram {
            at,
            via,
            source,
            text,
            value,
            invalid,
            advertisement: false,
        }
    }

    /// A string field, if it is one.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.value.get(name).and_then(Value::as_str)
    }

    /// `discoveryType`.
    pub fn discovery_type(&self) -> Option<&str> {
        self.str_field("discoveryType")
    }

    /// `clientId` of a request.
    pub fn client_id(&self) -> Option<&str> {
        self.str_field("clientId")
    }

    /// `serviceName`.
    pub fn service_name(&self) -> Option<&str> {
        self.str_field("serviceName")
    }

    /// `respondsToClientId`, when it is a string.
    pub fn responds_to(&self) -> Option<&str> {
        self.str_field("respondsToClientId")
    }

    /// `respondsToClientId` as it was sent, for reasons: `absent`, or the
    /// JSON value.
    pub fn responds_to_shown(&self) -> String {
        self.value
            .get("respondsToClientId")
            .map_or_else(|| "absent".to_owned(), Value::to_string)
    }

    /// `status`.
    pub fn status(&self) -> Option<&str> {
        self.str_field("status")
    }

    /// `endpoint`.
    pub fn endpoint(&self) -> Option<&str> {
        self.str_field("endpoint")
    }

    /// `serviceName (serviceId ...) from ADDRESS`, for reasons.
    pub fn describe(&self) -> String {
        format!(
            "{} (serviceId {}) from {} {}",
            self.service_name().unwrap_or("an unnamed service"),
            self.str_field("serviceId").unwrap_or("?"),
            self.source,
            self.via.describe()
        )
    }
}

/// When an exchange has what a case waits for (it then listens
/// [`settle`](super::DiscoveryTarget::settle) more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// An answer: an advertisement naming the request's `clientId`, or any
    /// advertisement unicast to the request's source.
    FirstAnswer,
    /// An advertisement unicast to the request's source.
    FirstUnicast,
    /// An advertisement naming the request's `clientId` on the shared
    /// port (sent to the provider's targets).
    FirstOnShared,
}

/// One request and what arrived in the listening window after it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request's `clientId`.
    pub client_id: String,
    /// When it was sent.
    pub sent_at: Instant,
    /// The socket it was sent from (unicast answers come back here).
    pub source: SocketAddr,
    /// How long the suite listens at most.
    pub window: Duration,
    /// Everything that arrived, in order.
    pub datagrams: Vec<Datagram>,
}

impl Exchange {
    /// Advertisements of the service under test.
    pub fn advertisements(&self) -> impl Iterator<Item = &Datagram> {
        self.datagrams
            .iter()
            .filter(|datagram| datagram.advertisement)
    }

    /// Whether `datagram` answers this request: it names the request's
    /// `clientId`, or it came by unicast to the socket that sent the request
    /// (a fresh one, so nothing else is sent there). A broadcast naming
    /// another client answers someone else.
    pub fn is_answer(&self, datagram: &Datagram) -> bool {
        datagram.advertisement
            && (datagram.via == Via::Direct || datagram.responds_to() == Some(&self.client_id))
    }

    /// The answers, in order of arrival.
    pub fn answers(&self) -> impl Iterator<Item = &Datagram> {
        self.datagrams
            .iter()
            .filter(|datagram| self.is_answer(datagram))
    }

    /// Advertisements unicast to the request's source.
    pub fn unicast(&self) -> impl Iterator<Item = &Datagram> {
        self.advertisements()
            .filter(|datagram| datagram.via == Via::Direct)
    }

    /// Answers that arrived on the shared port (sent to the provider's
    /// targets) naming the request's `clientId`.
    pub fn to_targets(&self) -> impl Iterator<Item = &Datagram> {
        self.advertisements().filter(|datagram| {
            datagram.via == Via::Shared && datagram.responds_to() == Some(&self.client_id)
        })
    }

    /// How long after the request `datagram` came.
    pub fn after(&self, datagram: &Datagram) -> Duration {
        datagram.at.saturating_duration_since(self.sent_at)
    }

    /// Whether what `until` waits for has come.
    pub fn meets(&self, until: Until) -> bool {
        match until {
            Until::FirstAnswer => self.answers().next().is_some(),
            Until::FirstUnicast => self.unicast().next().is_some(),
            Until::FirstOnShared => self.to_targets().next().is_some(),
        }
    }

    /// Why nothing answered, for reasons.
    pub fn nothing_answered(&self) -> String {
        let others = self.advertisements().count();
        format!(
            "no answer to request {} within {}: nothing arrived by unicast at the request's source (port {}) and no advertisement named the request's clientId{}",
            self.client_id,
            humantime::format_duration(self.window),
            self.source.port(),
            if others == 0 {
                " (no advertisement arrived at all)".to_owned()
            } else {
                format!(" ({others} other advertisement(s) arrived on the shared port)")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn advertisement() -> Value {
        json!({
            "discoveryType": "ServiceAdvertisement", "serviceId": "s-1", "serviceName": "S",
            "serviceVersion": "1.0.0", "endpoint": "ws://127.0.0.1:1",
            "capabilities": [{"key": "op", "settings": [{"int": "n"}]}],
            "status": "Online", "load": 0.5, "timestamp": "2026-12-03T10:00:00Z"
        })
    }

    #[test]
    fn rules_other_cases_judge_are_left_out() {
        assert_eq!(schema_problem(&advertisement()), None);
        let mut percent = advertisement();
        percent["load"] = json!(50);
        assert_eq!(schema_problem(&percent), None, "load-range's point");
        let mut setting = advertisement();
        setting["capabilities"][0]["settings"][0] = json!({"double": "n"});
        assert_eq!(schema_problem(&setting), None, "settings-types' point");
        // Anything else is still a schema break, and shown alone.
        let mut both = percent.clone();
        both["status"] = json!("Asleep");
        let problem = schema_problem(&both).expect("status is not an enum value");
        assert!(
            problem.contains("/status") && !problem.contains("/load"),
            "{problem}"
        );
        let mut not_array = advertisement();
        not_array["capabilities"][0]["settings"] = json!("n");
        assert!(
            schema_problem(&not_array).is_some(),
            "a settings member that is no list"
        );
        assert!(judged_elsewhere("/capabilities/3/settings/0/int"));
        assert!(!judged_elsewhere("/capabilities/3/settings"));
        assert!(!judged_elsewhere("/loadFactor"));
    }
}
