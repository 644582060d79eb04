//! A connection's queue of outgoing messages.
//!
//! Anything may push to it, from any thread (a session answering, a task
//! table reporting progress, a hub fanning out); the connection's own task
//! drains it and writes in order. It is a mutex-guarded `VecDeque` and a
//! `Notify` rather than a tokio channel because an idle connection should
//! cost little memory: a channel allocates its first block of slots up
//! front.
//!
//! # Full policy
//!
//! The queue holds at most [`Limits::max_queued`](super::Limits::max_queued)
//! messages. A send beyond that fails with [`SendError::Full`], and the
//! connection is closed after writing what is queued (WebSocket close code
//! 1008, "outbox full"): a peer that reads this slowly cannot keep up, and
//! dropping single messages would break the order and completeness every
//! family promises. Senders treat `Full` like `Closed` (the peer is gone).
//! When the connection's write is stalled at that moment (the peer stopped
//! reading), the connection is dropped at once instead: no close frame
//! could get through.
//!
//! ```
//! use specwire_runtime::net::{Outbox, SendError};
//!
//! let outbox: Outbox = Outbox::with_capacity(2);
//! outbox.send("a".to_owned())?;
//! outbox.send("b".to_owned())?;
//! assert_eq!(outbox.send("c".to_owned()), Err(SendError::Full));
//! assert!(outbox.overflowed());
//! # Ok::<(), SendError>(())
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Sink, SinkExt};
use tokio::sync::Notify;

const OPEN: u8 = 0;
/// The session asked to close once the queue is written.
const ENDING: u8 = 1;
/// A send found the queue full.
const OVERFLOWED: u8 = 2;
/// The connection is gone.
const CLOSED: u8 = 3;

#[derive(Debug)]
struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    ready: Notify,
    state: AtomicU8,
    /// The close code and reason [`Outbox::end_with`] asked for.
    ending: Mutex<Option<(u16, &'static str)>>,
    /// Woken when a send finds the queue full.
    overflow: Notify,
}

/// The sending and receiving side of one connection's outgoing queue
/// (texts by default). Clones share the queue.
#[derive(Debug)]
pub struct Outbox<T = String>(Arc<Shared<T>>);

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Outbox<T> {
        Outbox(Arc::clone(&self.0))
    }
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is gone (or closing): nothing more will be sent.
    #[error("the connection is closed")]
    Closed,
    /// The peer reads too slowly; the connection is being closed.
    #[error("the connection's outbox is full")]
    Full,
}

impl<T> Default for Outbox<T> {
    fn default() -> Outbox<T> {
        Outbox::with_capacity(super::Limits::default().max_queued)
    }
}

impl<T> Outbox<T> {
    /// An open outbox with the default capacity.
    pub fn new() -> Outbox<T> {
        Outbox::default()
    }

    /// An open outbox holding at most `capacity` messages (at least one).
    pub fn with_capacity(capacity: usize) -> Outbox<T> {
        Outbox(Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            state: AtomicU8::new(OPEN),
            ending: Mutex::new(None),
            overflow: Notify::new(),
        }))
    }

    /// Queues `message`; fails once the connection is closing or gone, or
    /// when the queue is full (which closes the connection).
    pub fn send(&self, message: T) -> Result<(), SendError> {
        if self.0.state.load(Ordering::Acquire) != OPEN {
            return Err(SendError::Closed);
        }
        {
            let mut queue = self
                .0
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if queue.len() >= self.0.capacity {
                drop(queue);
                let _ = self.0.state.compare_exchange(
                    OPEN,
                    OVERFLOWED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                self.0.ready.notify_one();
                self.0.overflow.notify_one();
                return Err(SendError::Full);
            }
            queue.push_back(message);
        }
        // Stores a permit when nobody waits, so a wake-up is never lost.
        self.0.ready.notify_one();
        Ok(())
    }

    /// Whether sends fail now (the connection is closing or gone).
    pub fn is_closed(&self) -> bool {
        self.0.state.load(Ordering::Acquire) != OPEN
    }

    /// Asks the connection to close (normally) once everything queued so
    /// far is written; later sends fail.
    pub fn end(&self) {
        self.end_with(1000, "");
    }

    /// Like [`end`](Self::end), with a WebSocket close `code` and `reason`
    /// (1008 after a refused token, say). Raw TCP connections just close.
    pub fn end_with(&self, code: u16, reason: &'static str) {
        // The reason is stored under its lock before the state changes, so
        // whoever sees `ENDING` and then takes the lock finds it.
        {
            let mut ending = self
                .0
                .ending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if self
                .0
                .state
                .compare_exchange(OPEN, ENDING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                *ending = Some((code, reason));
            }
        }
        self.0.ready.notify_one();
    }

    /// The close code and reason [`end_with`](Self::end_with) asked for.
    pub fn end_reason(&self) -> Option<(u16, &'static str)> {
        *self
            .0
            .ending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a send found the queue full.
    pub fn overflowed(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == OVERFLOWED
    }

    /// Returns once a send has found the queue full.
    pub async fn overflowed_now(&self) {
        while !self.overflowed() {
            self.0.overflow.notified().await;
        }
    }

    /// Whether [`end`](Self::end) was called.
    pub fn ending(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == ENDING
    }

    /// Marks the connection gone; later sends fail.
    pub(crate) fn close(&self) {
        self.0.state.store(CLOSED, Ordering::Release);
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> VecDeque<T> {
        std::mem::take(
            &mut *self
                .0
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Waits until something may have been queued (or the state changed).
    pub async fn ready(&self) {
        self.0.ready.notified().await;
    }
}

/// Writes everything queued to `sink` (each message through `wrap`), in
/// one flush, within `timeout`. A peer that stops reading fills the
/// socket's buffers and stalls the write; the write fails (and the
/// connection is dropped) when the outbox overflows meanwhile or the
/// timeout passes, whichever is first, so what a stalled peer costs stays
/// bounded and its end does not wait for the timeout.
pub(crate) async fn write_queued<T, U, K>(
    sink: &mut K,
    outbox: &Outbox<T>,
    wrap: impl Fn(T) -> U,
    timeout: std::time::Duration,
) -> Result<(), String>
where
    K: Sink<U> + Unpin,
    K::Error: std::fmt::Display,
{
    let queued = outbox.take();
    if queued.is_empty() {
        return Ok(());
    }
    let write = async {
        for message in queued {
            sink.feed(wrap(message))
                .await
                .map_err(|error| error.to_string())?;
        }
        sink.flush().await.map_err(|error| error.to_string())
    };
    let stalled = |_| format!("write stalled for {timeout:?}: the peer is not reading");
    if outbox.overflowed() {
        // Writing what was queued before the overflow, then the close.
        return tokio::time::timeout(timeout, write)
            .await
            .map_err(stalled)?;
    }
    tokio::select! {
        written = tokio::time::timeout(timeout, write) => written.map_err(stalled)?,
        () = outbox.overflowed_now() => Err("the outbox overflowed while a write was stalled: the peer reads too slowly".to_owned()),
    }
}

/// Closes the outbox when the connection's task ends, however it ends.
pub(crate) struct CloseOnDrop<T>(pub(crate) Outbox<T>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_texts_arrive_in_order_and_wake_the_reader() {
        let outbox: Outbox = Outbox::new();
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
        assert_eq!(sender.send("c".into()), Err(SendError::Closed));
        assert!(sender.is_closed());
    }

    #[test]
    fn a_full_outbox_refuses_and_stays_refusing() {
        let outbox = Outbox::with_capacity(1);
        outbox.send(1).unwrap();
        assert_eq!(outbox.send(2), Err(SendError::Full));
        assert!(outbox.overflowed());
        // Draining does not reopen it: the connection is being closed.
        assert_eq!(outbox.take(), [1]);
        assert_eq!(outbox.send(3), Err(SendError::Closed));
    }

    #[test]
    fn ending_refuses_later_sends() {
        let outbox = Outbox::with_capacity(4);
        outbox.send(1).unwrap();
        outbox.end();
        assert!(outbox.ending());
        assert_eq!(outbox.end_reason(), Some((1000, "")));
        assert_eq!(outbox.send(2), Err(SendError::Closed));
        assert_eq!(outbox.take(), [1]);
        // The first ending wins.
        outbox.end_with(1008, "later");
        assert_eq!(outbox.end_reason(), Some((1000, "")));
    }
}
