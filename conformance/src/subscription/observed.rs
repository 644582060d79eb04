//! What one run of the subscription suite has learnt about the target
//! beside the generic [`RunLog`](crate::suite::RunLog), shared by every case
//! and connection: the messages that broke their schema (kept as text, so
//! the validity case can tell an `id`/`timestamp` fault from any other),
//! messages without a proper `id` or `timestamp`, and the events received
//! (their ids, for the SHOULD on id formats).

use std::sync::Mutex;

use serde_json::Value;

use crate::suite::lock;

/// How many records of each kind are kept: enough to judge and to show.
const KEEP: usize = 512;

fn push<T>(records: &Mutex<Vec<T>>, record: T) {
    let mut records = lock(records);
    if records.len() < KEEP {
        records.push(record);
    }
}

/// The subscription run's shared observations.
#[derive(Debug, Default)]
pub struct Observed {
    invalid: Mutex<Vec<(String, String)>>,
    envelope: Mutex<Vec<String>>,
    events: Mutex<Vec<Value>>,
}

impl Observed {
    /// A message of the target broke its schema: its text and the problem.
    pub fn invalid(&self, text: &str, problem: &str) {
        push(&self.invalid, (text.to_owned(), problem.to_owned()));
    }

    /// Every schema-breaking message so far, with its problem.
    pub fn invalid_messages(&self) -> Vec<(String, String)> {
        lock(&self.invalid).clone()
    }

    /// A message without a proper `id` or `timestamp`.
    pub fn envelope_problem(&self, problem: String) {
        push(&self.envelope, problem);
    }

    /// Every `id`/`timestamp` problem so far.
    pub fn envelope_problems(&self) -> Vec<String> {
        lock(&self.envelope).clone()
    }

    /// An event arrived.
    pub fn event(&self, event: &Value) {
        push(&self.events, event.clone());
    }

    /// Every event received so far.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.events).clone()
    }
}

/// What is wrong with the `id` and `timestamp` of a server message, if
/// anything: a non-empty string `id`, and a `timestamp` that is an RFC
/// 3339 date-time with a zone.
pub fn envelope_fault(message: &Value) -> Option<String> {
    if !message.is_object() {
        return None;
    }
    let mut faults = Vec::new();
    match message.get("id") {
        Some(Value::String(id)) if !id.is_empty() => {}
        Some(other) => faults.push(format!("its `id` is {other}")),
        None => faults.push("it has no `id`".to_owned()),
    }
    match message.get("timestamp") {
        Some(Value::String(stamp)) if chrono::DateTime::parse_from_rfc3339(stamp).is_ok() => {}
        Some(other) => faults.push(format!(
            "its `timestamp` {other} is not an RFC 3339 date-time with a zone"
        )),
        None => faults.push("it has no `timestamp`".to_owned()),
    }
    (!faults.is_empty()).then(|| faults.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_timestamps_are_judged_as_the_profile_says() {
        let good = json!({"type": "pong", "id": "p", "timestamp": "2024-01-15T10:30:00.123+02:00"});
        assert_eq!(envelope_fault(&good), None);
        let zone_less = json!({"type": "pong", "id": "p", "timestamp": "2024-01-15T10:30:00"});
        assert!(envelope_fault(&zone_less).unwrap().contains("with a zone"));
        let bare = json!({"type": "pong"});
        let fault = envelope_fault(&bare).unwrap();
        assert!(
            fault.contains("no `id`") && fault.contains("no `timestamp`"),
            "{fault}"
        );
        assert!(envelope_fault(&json!({"id": "", "timestamp": 3})).is_some());
        assert_eq!(envelope_fault(&Value::Null), None);
    }
}
