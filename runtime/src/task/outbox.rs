//! A connection's queue of outgoing JSON texts.
//!
//! The task table pushes to it from any thread; the connection's own task
//! drains it. It is a mutex-guarded `VecDeque` and a `Notify` rather than
//! a tokio channel because an idle connection should cost little memory:
//! an unbounded channel allocates its first block of slots up front.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<VecDeque<String>>,
    ready: Notify,
    closed: AtomicBool,
}

/// The sending and receiving side of one connection's outgoing queue.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outbox(Arc<Shared>);

/// The connection is gone: nothing more will be sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues `text`; fails once the connection closed the outbox.
    pub(crate) fn send(&self, text: String) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        self.0
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(text);
        // Stores a permit when nobody waits, so a wake-up is never lost.
        self.0.ready.notify_one();
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Marks the connection gone; later sends fail.
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
    }

    /// Everything queued so far, oldest first.
    pub(crate) fn take(&self) -> VecDeque<String> {
        std::mem::take(
            &mut *self
                .0
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Waits until something may have been queued.
    pub(crate) async fn ready(&self) {
        self.0.ready.notified().await;
    }
}

/// Closes the outbox when the connection's task ends, however it ends.
pub(crate) struct CloseOnDrop(pub(crate) Outbox);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_texts_arrive_in_order_and_wake_the_reader() {
        let outbox = Outbox::new();
        let sender = outbox.clone();
        // Sent before anyone waits: the permit makes `ready` return.
        sender.send("a".into()).unwrap();
        sender.send("b".into()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.ready())
            .await
            .unwrap();
        assert_eq!(outbox.take(), ["a", "b"]);
        assert!(outbox.take().is_empty());
        {
            let _guard = CloseOnDrop(outbox.clone());
        }
        assert_eq!(sender.send("c".into()), Err(Closed));
        assert!(sender.is_closed());
    }
}
