//! Per-connection limits: message size and message rate.

use std::time::{Duration, Instant};

/// Limits a provider applies to each connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Messages larger than this get `Error` `MESSAGE_TOO_LARGE` and are
    /// not processed; the connection stays open. PROFILE.md: 1 MiB.
    pub max_message_bytes: usize,
    /// Frames larger than this close the connection (code 1009): reading
    /// them at all would cost too much memory.
    pub max_frame_bytes: usize,
    /// Sustained messages per second per connection (`None`: unlimited).
    /// Messages over the rate get `Error` `RATE_LIMITED` and are dropped.
    pub messages_per_second: Option<f64>,
    /// How many messages may arrive at once above the rate.
    pub burst: u32,
    /// Connections beyond this are refused.
    pub max_connections: usize,
    /// How long a WebSocket (and TLS) handshake may take.
    pub handshake_timeout: Duration,
    /// A connection silent this long gets a ping; silent for twice this
    /// long, it is closed.
    pub keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: specwire_protocol::task::MAX_MESSAGE_BYTES,
            max_frame_bytes: 16 * 1024 * 1024,
            messages_per_second: Some(1000.0),
            burst: 1000,
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// A token bucket.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(rate: f64, burst: u32) -> RateLimiter {
        let capacity = f64::from(burst.max(1));
        RateLimiter {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_burst_then_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10.0, 5);
        let admitted = (0..20).filter(|_| limiter.admit(start)).count();
        assert_eq!(admitted, 5);
        // 0.5 s later, 5 more tokens.
        let later = start + Duration::from_millis(500);
        let admitted = (0..20).filter(|_| limiter.admit(later)).count();
        assert_eq!(admitted, 5);
        // Time going backwards (clock quirks) adds nothing and never panics.
        assert!(!limiter.admit(start));
    }
}
