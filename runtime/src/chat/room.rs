//! The room: who has joined, under which name, and the fan-out. One table
//! behind one mutex; every join, leave and broadcast happens under it, so
//! all connections see the room's events in one order, and a response
//! queued under the lock is ordered with the broadcasts around it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::net::{Outbox, SendError};

/// A joined connection.
#[derive(Debug)]
struct Member {
    name: String,
    address: SocketAddr,
    outbox: Outbox<Bytes>,
}

/// What a fan-out did, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fanout {
    /// Copies queued.
    pub delivered: usize,
    /// Connections whose queue was full (they are being closed).
    pub overflowed: usize,
}

/// The joined connections.
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// By join order (a sequence number), so listings are in join order.
    members: BTreeMap<u64, Member>,
    /// Connection id → sequence number.
    by_connection: HashMap<u64, u64>,
    /// Name → connection id.
    names: HashMap<String, u64>,
    next_sequence: u64,
}

impl Room {
    /// Whether `name` is in use.
    pub(crate) fn is_taken(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Joins `connection` as `name` (not taken: the caller checked).
    pub(crate) fn join(
        &mut self,
        connection: u64,
        name: &str,
        address: SocketAddr,
        outbox: Outbox<Bytes>,
    ) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.members.insert(
            sequence,
            Member {
                name: name.to_owned(),
                address,
                outbox,
            },
        );
        self.by_connection.insert(connection, sequence);
        self.names.insert(name.to_owned(), connection);
    }

    /// Removes `connection`; its name, when it had joined.
    pub(crate) fn leave(&mut self, connection: u64) -> Option<String> {
        let sequence = self.by_connection.remove(&connection)?;
        let member = self.members.remove(&sequence)?;
        self.names.remove(&member.name);
        Some(member.name)
    }

    /// Joined connections.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The names and addresses, in join order.
    pub(crate) fn users(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.members
            .values()
            .map(|member| (member.name.as_str(), member.address))
    }

    /// Queues `bytes` to every member but `except`.
    pub(crate) fn broadcast(&self, bytes: &Bytes, except: Option<u64>) -> Fanout {
        let skip = except.and_then(|connection| self.by_connection.get(&connection));
        let mut fanout = Fanout::default();
        for (sequence, member) in &self.members {
            if Some(sequence) == skip {
                continue;
            }
            match member.outbox.send(bytes.clone()) {
                Ok(()) => fanout.delivered += 1,
                Err(SendError::Full) => fanout.overflowed += 1,
                // Closing already: its session's end removes it.
                Err(SendError::Closed) => {}
            }
        }
        fanout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_skip_the_sender_and_listings_keep_join_order() {
        let mut room = Room::default();
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let outboxes: Vec<Outbox<Bytes>> = (0..3).map(|_| Outbox::with_capacity(1)).collect();
        for (connection, name) in [(10, "b"), (11, "a"), (12, "c")] {
            let outbox = outboxes[(connection - 10) as usize].clone();
            room.join(connection, name, address, outbox);
        }
        let names: Vec<&str> = room.users().map(|(name, _)| name).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let fanout = room.broadcast(&Bytes::from_static(b"x"), Some(11));
        assert_eq!(
            fanout,
            Fanout {
                delivered: 2,
                overflowed: 0
            }
        );
        assert!(outboxes[1].take().is_empty());
        // `b`'s queue (capacity 1) is still full: it overflows.
        outboxes[2].take();
        let fanout = room.broadcast(&Bytes::from_static(b"y"), None);
        assert_eq!(
            fanout,
            Fanout {
                delivered: 2,
                overflowed: 1
            }
        );
        assert_eq!(room.leave(11).as_deref(), Some("a"));
        assert!(!room.is_taken("a") && room.is_taken("b"));
        assert_eq!(room.leave(11), None);
        assert_eq!(room.len(), 2);
    }
}
