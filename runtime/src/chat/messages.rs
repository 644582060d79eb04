//! What the chat server writes: responses, JSON-RPC errors and broadcasts,
//! each serialized once and ended with `\n` (the profile's SHOULD), and
//! the rules for usernames and message texts.

use bytes::Bytes;
use serde_json::{json, Value};

/// The texts the server answers with.
pub mod text {
    /// `join_chat` with a name someone has (under [`NamePolicy::Refuse`](super::super::NamePolicy::Refuse)).
    pub const NAME_TAKEN: &str = "Username already taken";
    /// A username empty or longer than 50 characters after trimming.
    pub const BAD_USERNAME: &str = "Username must be 1 to 50 characters after trimming white space";
    /// A message longer than 1000 characters after trimming (the seed's text).
    pub const MESSAGE_TOO_LONG: &str = "Message too long";
    /// A message empty after trimming.
    pub const MESSAGE_EMPTY: &str = "Message cannot be empty";
    /// `send_message`, `get_users` or `leave_chat` before `join_chat`.
    pub const NOT_JOINED: &str = "Join the chat first";
    /// Over the connection's message rate, when one is set.
    pub const RATE_LIMITED: &str = "Rate limit exceeded";
}

/// The seed's JSON-RPC error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcCode {
    /// -32700: the bytes are not JSON.
    ParseError,
    /// -32600: JSON, but not a request (not an object, no `method`, too large).
    InvalidRequest,
    /// -32601: a `method` the server does not have.
    MethodNotFound,
    /// -32602: `params` missing or of the wrong shape.
    InvalidParams,
    /// -32603: the server failed.
    InternalError,
}

impl RpcCode {
    /// The number on the wire.
    pub fn code(self) -> i64 {
        match self {
            RpcCode::ParseError => -32700,
            RpcCode::InvalidRequest => -32600,
            RpcCode::MethodNotFound => -32601,
            RpcCode::InvalidParams => -32602,
            RpcCode::InternalError => -32603,
        }
    }

    /// The seed's name for it.
    pub fn text(self) -> &'static str {
        match self {
            RpcCode::ParseError => "Parse error",
            RpcCode::InvalidRequest => "Invalid request",
            RpcCode::MethodNotFound => "Method not found",
            RpcCode::InvalidParams => "Invalid params",
            RpcCode::InternalError => "Internal error",
        }
    }
}

/// One JSON object ready to write: the value, then `\n`.
pub(crate) fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// `{"status":"success", "message": ...}` plus `extra` members.
pub(crate) fn success(message: &str, extra: Value) -> Bytes {
    let mut value = json!({"status": "success", "message": message});
    if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
    }
    line(&value)
}

/// `{"status":"error","message": ...}`.
pub(crate) fn refusal(message: &str) -> Bytes {
    line(&json!({"status": "error", "message": message}))
}

/// `{"error": ..., "code": ...}`, the code's text followed by `detail`.
pub(crate) fn rpc_error(code: RpcCode, detail: Option<&str>) -> Bytes {
    let error = match detail {
        Some(detail) => format!("{}: {detail}", code.text()),
        None => code.text().to_owned(),
    };
    line(&json!({"error": error, "code": code.code()}))
}

/// A chat message from `username` to the others.
pub(crate) fn chat(username: &str, message: &str) -> Bytes {
    line(&json!({"type": "chat", "message": message, "username": username}))
}

/// A system announcement.
pub(crate) fn system(message: &str) -> Bytes {
    line(&json!({"type": "system", "message": message, "username": "SYSTEM"}))
}

/// White space as the schema's patterns mean it (ECMAScript `\s`): what
/// the length rules trim before counting, so the server and its schema
/// agree on every name.
pub fn is_pattern_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `text` without leading and trailing [pattern white space](is_pattern_space).
pub fn trim(text: &str) -> &str {
    text.trim_matches(is_pattern_space)
}

/// The longest username, in characters after trimming.
pub const MAX_USERNAME_CHARS: usize = 50;
/// The longest message, in characters after trimming.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The trimmed username, or why it is refused.
pub fn check_username(username: &str) -> Result<&str, &'static str> {
    let name = trim(username);
    let chars = name.chars().count();
    if (1..=MAX_USERNAME_CHARS).contains(&chars) {
        Ok(name)
    } else {
        Err(text::BAD_USERNAME)
    }
}

/// The trimmed message, or why it is refused.
pub fn check_message(message: &str) -> Result<&str, &'static str> {
    let trimmed = trim(message);
    match trimmed.chars().count() {
        0 => Err(text::MESSAGE_EMPTY),
        n if n > MAX_MESSAGE_CHARS => Err(text::MESSAGE_TOO_LONG),
        _ => Ok(trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_after_trimming_pattern_space() {
        assert_eq!(check_username("  Bob \u{feff}"), Ok("Bob"));
        assert_eq!(check_username(" \t "), Err(text::BAD_USERNAME));
        let fifty = "é".repeat(50);
        assert_eq!(check_username(&format!("  {fifty}  ")), Ok(fifty.as_str()));
        assert!(check_username(&"x".repeat(51)).is_err());
        assert_eq!(check_message("\u{3000}"), Err(text::MESSAGE_EMPTY));
        assert_eq!(
            check_message(&"y".repeat(1001)),
            Err(text::MESSAGE_TOO_LONG)
        );
        assert!(check_message(&format!(" {} ", "y".repeat(1000))).is_ok());
    }

    #[test]
    fn every_written_object_ends_with_a_newline_and_has_the_seed_s_codes() {
        let error = rpc_error(RpcCode::MethodNotFound, Some("`shout`"));
        assert_eq!(
            &error[..],
            b"{\"error\":\"Method not found: `shout`\",\"code\":-32601}\n"
        );
        let codes: Vec<i64> = [
            RpcCode::ParseError,
            RpcCode::InvalidRequest,
            RpcCode::MethodNotFound,
            RpcCode::InvalidParams,
            RpcCode::InternalError,
        ]
        .iter()
        .map(|code| code.code())
        .collect();
        assert_eq!(codes, [-32700, -32600, -32601, -32602, -32603]);
        assert!(success("ok", json!({"count": 1})).ends_with(b"}\n"));
    }
}
