//! What a server allows each connection and all of them together: message
//! size and rate, connections in all and per address, handshake time,
//! keepalive, and how much may wait to be sent.
//!
//! One [`Limits`] configures both the servers ([`ws`](super::ws),
//! [`tcp`](super::tcp)) and the [inbound pipeline](super::inbound). Start
//! from the defaults and change what differs:
//!
//! ```
//! use std::time::Duration;
//! use specwire_runtime::net::Limits;
//!
//! let limits = Limits {
//!     max_connections_per_ip: 64,
//!     keepalive: Duration::from_secs(10),
//!     ..Limits::default()
//! };
//! assert_eq!(limits.max_message_bytes, 1 << 20);
//! ```

use std::time::{Duration, Instant};

/// Limits a server applies to its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Messages larger than this are refused
    /// ([`Rejection::TooLarge`](super::Rejection::TooLarge)) and not
    /// processed; the connection stays open. PROFILE.md: 1 MiB.
    pub max_message_bytes: usize,
    /// Frames larger than this close the connection (code 1009): reading
    /// them at all would cost too much memory.
    pub max_frame_bytes: usize,
    /// Sustained messages per second per connection (`None`: unlimited).
    /// Messages over the rate are refused
    /// ([`Rejection::RateLimited`](super::Rejection::RateLimited)).
    pub messages_per_second: Option<f64>,
    /// How many messages may arrive at once above the rate.
    pub burst: u32,
    /// Connections beyond this are refused (closed before any handshake).
    pub max_connections: usize,
    /// Connections from one IP address beyond this are refused likewise.
    pub max_connections_per_ip: usize,
    /// How long a WebSocket (and TLS) handshake may take.
    pub handshake_timeout: Duration,
    /// A connection silent this long gets a ping (WebSocket); silent for
    /// twice this long, it is closed.
    pub keepalive: Duration,
    /// Messages that may wait in a connection's [`Outbox`](super::Outbox).
    /// A peer that reads so slowly that more pile up is disconnected (see
    /// the outbox's full policy).
    pub max_queued: usize,
    /// A write to the peer that takes longer than this (the peer stopped
    /// reading and the socket's buffers are full) drops the connection.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 1 << 20,
            max_frame_bytes: 16 * 1024 * 1024,
            messages_per_second: Some(1000.0),
            burst: 1000,
            max_connections: 16_384,
            max_connections_per_ip: 16_384,
            handshake_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            max_queued: 65_536,
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// A fresh rate limiter for one connection (`None` when unlimited).
    pub(crate) fn rate_limiter(&self) -> Option<RateLimiter> {
        self.messages_per_second
            .map(|rate| RateLimiter::new(rate, self.burst))
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

    #[test]
    fn the_default_message_size_is_the_task_profile_s() {
        assert_eq!(
            Limits::default().max_message_bytes,
            specwire_protocol::task::MAX_MESSAGE_BYTES
        );
    }
}
