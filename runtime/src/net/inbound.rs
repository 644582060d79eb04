//! The inbound pipeline: every received JSON message goes through the
//! same checks, in the same order, for every family:
//!
//! size → rate → JSON → recognise → schema → decode
//!
//! [`Inbound::receive`] runs them and returns either the decoded message
//! of the family `P` or a [`Rejection`] saying which check failed. Each
//! family turns a rejection into its own error reply (the task provider
//! into an `Error` with `MESSAGE_TOO_LARGE`, `RATE_LIMITED`,
//! `INVALID_MESSAGE` or `UNKNOWN_TYPE`); the rejections that happen after
//! parsing carry the parsed value, so the reply can name the message it
//! answers.
//!
//! One `Inbound` per connection: it holds that connection's rate limiter.
//!
//! ```
//! use specwire_protocol::task::Message;
//! use specwire_protocol::Direction;
//! use specwire_runtime::net::{Inbound, Limits, Rejection};
//!
//! let mut inbound = Inbound::new(&Limits::default(), Direction::ClientToServer);
//! match inbound.receive::<Message>("{\"type\": \"Ack\"}") {
//!     Err(Rejection::WrongDirection { message, .. }) => assert_eq!(message, "Ack"),
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(inbound.receive::<Message>("[1"), Err(Rejection::NotJson(_))));
//! ```

use std::time::Instant;

use serde_json::Value;
use specwire_wire::json::{DecodeError, Direction, JsonProtocol};

use super::limits::{Limits, RateLimiter};

/// Why a received message was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// Larger than [`Limits::max_message_bytes`].
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Over the connection's [rate](Limits::messages_per_second).
    RateLimited,
    /// Not JSON text.
    NotJson(serde_json::Error),
    /// No message of the family matches its discriminator (no `type`, or
    /// an unknown one).
    Unrecognised {
        /// The parsed message.
        value: Value,
    },
    /// A message of the family, but one sent the other way (a provider's
    /// message sent to the provider).
    WrongDirection {
        /// The parsed message.
        value: Value,
        /// The message it is.
        message: &'static str,
    },
    /// The message breaks its schema (or, a bug, its Rust type).
    Invalid {
        /// The parsed message.
        value: Value,
        /// The message it is.
        message: &'static str,
        /// [`DecodeError::Invalid`] with every violation, or
        /// [`DecodeError::TypeMismatch`] (boxed: rejections are the rare
        /// path, and results stay small).
        error: Box<DecodeError>,
    },
}

impl Rejection {
    /// The parsed message, when parsing got that far.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Rejection::Unrecognised { value }
            | Rejection::WrongDirection { value, .. }
            | Rejection::Invalid { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// One connection's inbound checks.
#[derive(Debug)]
pub struct Inbound {
    max_message_bytes: usize,
    limiter: Option<RateLimiter>,
    direction: Direction,
}

impl Inbound {
    /// Checks for one connection, receiving messages sent in `direction`.
    pub fn new(limits: &Limits, direction: Direction) -> Inbound {
        Inbound {
            max_message_bytes: limits.max_message_bytes,
            limiter: limits.rate_limiter(),
            direction,
        }
    }

    /// Size, then rate (a message refused for its size does not count).
    pub fn admit(&mut self, size: usize) -> Result<(), Rejection> {
        if size > self.max_message_bytes {
            return Err(Rejection::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        match &mut self.limiter {
            Some(limiter) => {
                if limiter.admit(Instant::now()) {
                    Ok(())
                } else {
                    Err(Rejection::RateLimited)
                }
            }
            None => Ok(()),
        }
    }

    /// Every check, then the decoded message.
    pub fn receive<P: JsonProtocol>(&mut self, text: &str) -> Result<P, Rejection> {
        self.admit(text.len())?;
        let value: Value = serde_json::from_str(text).map_err(Rejection::NotJson)?;
        classify(value, text, self.direction)
    }
}

/// Recognise → schema → decode, for a value already parsed from `text`.
fn classify<P: JsonProtocol>(
    value: Value,
    text: &str,
    direction: Direction,
) -> Result<P, Rejection> {
    let index = match P::recognise(&value, Some(direction)) {
        Ok(index) => index,
        Err(DecodeError::UnknownMessage { .. }) => {
            // Off the hot path: is it a message sent the other way?
            let family = P::family();
            return Err(match family.candidates(&value, None).first() {
                Some(&index) => Rejection::WrongDirection {
                    value,
                    message: family.messages[index].name,
                },
                None => Rejection::Unrecognised { value },
            });
        }
        Err(error) => {
            let message = match &error {
                DecodeError::Invalid { message, .. }
                | DecodeError::TypeMismatch { message, .. } => message,
                _ => "?",
            };
            return Err(Rejection::Invalid {
                value,
                message,
                error: Box::new(error),
            });
        }
    };
    P::from_validated(index, value).map_err(|source| {
        let error = P::family().type_mismatch(index, source);
        Rejection::Invalid {
            // The value went into the failed decode: parse it again, on
            // this path only (the schema accepted what the type did not).
            value: serde_json::from_str(text).unwrap_or(Value::Null),
            message: P::family()
                .messages
                .get(index)
                .map_or("?", |spec| spec.name),
            error: Box::new(error),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use specwire_protocol::task::Message;

    fn inbound() -> Inbound {
        Inbound::new(
            &Limits {
                messages_per_second: None,
                ..Limits::default()
            },
            Direction::ClientToServer,
        )
    }

    fn get_status() -> Value {
        serde_json::json!({
            "type": "GetStatus", "messageId": "m1", "timestamp": "2024-01-01T00:00:00Z",
            "payload": {"taskId": "t1"}
        })
    }

    #[test]
    fn a_valid_message_is_decoded() {
        let message: Message = inbound().receive(&get_status().to_string()).unwrap();
        assert_eq!(message.name(), "GetStatus");
    }

    #[test]
    fn each_check_has_its_rejection() {
        let mut small = Inbound::new(
            &Limits {
                max_message_bytes: 10,
                ..Limits::default()
            },
            Direction::ClientToServer,
        );
        assert!(matches!(
            small.receive::<Message>(&"x".repeat(11)),
            Err(Rejection::TooLarge {
                size: 11,
                limit: 10
            })
        ));
        let mut inbound = inbound();
        assert!(matches!(
            inbound.receive::<Message>("{"),
            Err(Rejection::NotJson(_))
        ));
        for unknown in [r#"{"type":"Nope"}"#, "[]", r#"{"type":3}"#, "{}"] {
            match inbound.receive::<Message>(unknown) {
                Err(rejection @ Rejection::Unrecognised { .. }) => {
                    assert!(rejection.value().is_some())
                }
                other => panic!("{unknown}: {other:?}"),
            }
        }
        match inbound.receive::<Message>(r#"{"type":"TaskResult"}"#) {
            Err(Rejection::WrongDirection { message, .. }) => assert_eq!(message, "TaskResult"),
            other => panic!("{other:?}"),
        }
        let mut broken = get_status();
        broken["payload"]["taskId"] = Value::from(7);
        match inbound.receive::<Message>(&broken.to_string()) {
            Err(Rejection::Invalid {
                message,
                error,
                value,
            }) => {
                let DecodeError::Invalid { violations, .. } = *error else {
                    panic!("{error:?}")
                };
                assert_eq!(message, "GetStatus");
                assert!(!violations.is_empty());
                assert_eq!(value, broken);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rate_is_checked_after_the_size() {
        let mut limited = Inbound::new(
            &Limits {
                max_message_bytes: 100,
                messages_per_second: Some(0.001),
                burst: 1,
                ..Limits::default()
            },
            Direction::ClientToServer,
        );
        let text = get_status().to_string();
        assert!(matches!(
            limited.receive::<Message>(&"x".repeat(200)),
            Err(Rejection::TooLarge { .. })
        ));
        assert!(limited.receive::<Message>(&text).is_ok());
        assert!(matches!(
            limited.receive::<Message>(&text),
            Err(Rejection::RateLimited)
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_rejected_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let result = inbound().receive::<Message>(&text);
            prop_assert!(result.is_err());
        }

        #[test]
        fn arbitrary_text_is_rejected_not_panicked_on(text in any::<String>()) {
            prop_assert!(inbound().receive::<Message>(&text).is_err());
        }
    }
}
