//! The requests the suite sends, built as JSON values (valid ones are
//! checked against the schema when sent), and the texts of the
//! deliberately invalid ones.

use serde_json::{json, Value};

/// `join_chat` as `name`.
pub fn join(name: &str) -> Value {
    json!({"method": "join_chat", "params": {"username": name}})
}

/// `send_message` with `message`.
pub fn send(message: &str) -> Value {
    json!({"method": "send_message", "params": {"message": message}})
}

/// `get_users`.
pub fn get_users() -> Value {
    json!({"method": "get_users", "params": {}})
}

/// `leave_chat`.
pub fn leave() -> Value {
    json!({"method": "leave_chat", "params": {}})
}

/// A method no server has (deliberately invalid: the schema knows no
/// such request).
pub const UNKNOWN_METHOD: &str = r#"{"method": "no_such_method", "params": {}}"#;

/// `get_users` as compact text, for the framing cases to cut up and join.
pub const GET_USERS: &str = r#"{"method": "get_users", "params": {}}"#;

/// Objects whose brackets balance but whose text is not JSON.
pub const NOT_JSON: [&str; 2] = [
    r#"{"method": "get_users" "params": {}}"#,
    "{method: get_users}",
];

/// `text` padded to exactly `length` characters with `x` (or cut).
pub fn padded_to(text: &str, length: usize) -> String {
    let mut padded: String = text.chars().take(length).collect();
    while padded.chars().count() < length {
        padded.push('x');
    }
    padded
}

/// A deliberately invalid `join_chat` (the name breaks the schema's
/// `Username`, or is not a string), as text.
pub fn join_invalid(username: &Value) -> String {
    json!({"method": "join_chat", "params": {"username": username}}).to_string()
}

/// A deliberately invalid `send_message`, as text.
pub fn send_invalid(message: &Value) -> String {
    json!({"method": "send_message", "params": {"message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;
    use specwire_protocol::chat::Message as Chat;

    #[test]
    fn the_valid_requests_are_valid_and_the_invalid_ones_are_not() {
        for request in [join(" Zoë x "), send("hi"), get_users(), leave()] {
            assert_eq!(
                Session::<Chat>::refuse(&request.to_string()),
                None,
                "{request}"
            );
        }
        assert_eq!(Session::<Chat>::refuse(GET_USERS), None);
        assert_eq!(
            Session::<Chat>::refuse(&join(&format!("  {}  ", padded_to("a", 50))).to_string()),
            None
        );
        for text in [
            UNKNOWN_METHOD.to_owned(),
            join_invalid(&json!(padded_to("a", 51))),
            join_invalid(&json!(" \t\n ")),
            join_invalid(&json!(42)),
            send_invalid(&json!(padded_to("a", 1001))),
            send_invalid(&json!("")),
        ] {
            assert!(Session::<Chat>::refuse(&text).is_some(), "{text}");
        }
        for text in NOT_JSON {
            assert!(serde_json::from_str::<Value>(text).is_err());
        }
        assert_eq!(padded_to("ab", 4), "abxx");
        assert_eq!(padded_to("abcdef", 4), "abcd");
    }
}
