//! Timestamps and identifiers for outgoing messages.

use std::time::SystemTime;

/// The current time as an RFC 3339 UTC timestamp with milliseconds
/// (`2025-07-02T11:45:05.123Z`), the form every specwire JSON family uses.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A fresh random identifier (UUID v4), for `messageId`, `taskId`,
/// `clientId` and `serviceId`.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let stamp = now_rfc3339();
        assert!(stamp.ends_with('Z'), "{stamp}");
        assert!(humantime::parse_rfc3339(&stamp).is_ok(), "{stamp}");
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(new_id(), new_id());
    }
}
