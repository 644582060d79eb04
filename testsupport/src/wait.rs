//! Bounded waits: the only way tests wait.
//!
//! A test waits for a message, an event or a condition, never for a fixed
//! time; every wait fails the test with what it waited for once its limit
//! passes, so a hang is a clear failure instead of a stuck CI job.

use std::future::Future;
use std::time::Duration;

/// The longest any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_for(PATIENCE, what, future).await
}

/// Awaits `future`, failing the test after `limit`.
pub async fn within_for<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits until `condition` holds, re-checking every 10 ms, failing the test
/// after [`PATIENCE`]: for counters, which have no event to wait on.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 1s waiting for nothing")]
    async fn a_wait_that_never_ends_fails_with_its_reason() {
        within_for(
            Duration::from_secs(1),
            "nothing",
            std::future::pending::<()>(),
        )
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_once_the_condition_holds() {
        let mut calls = 0;
        eventually("the third call", || {
            calls += 1;
            calls == 3
        })
        .await;
        assert_eq!(calls, 3);
    }
}
