//! Timestamps and identifiers for outgoing messages.

use std::time::SystemTime;

/// The current time as an RFC 3339 UTC timestamp with milliseconds
/// (`2025-07-02T11:45:05.123Z`), the form every specwire JSON family uses.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `at` as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// A fresh random identifier (UUID v4), for `messageId`, `taskId`,
/// `clientId` and `serviceId`.
///
/// The bits come from a fast thread-local generator, not the kernel: these
/// ids must be unique, not unguessable, and a `getrandom` call per message
/// was a measurable share of a round trip (BENCHMARKS.md).
pub fn new_id() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
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
    fn ids_are_unique_v4_uuids() {
        let id = new_id();
        assert_ne!(id, new_id());
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
