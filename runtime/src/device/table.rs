//! The device hub's table: connections, which of them are devices (by
//! id) and which subscribe, each device's last data and last sign of life.
//!
//! One mutex guards it; broadcasts and commands queue shared buffers into
//! bounded outboxes under it, so every subscriber sees a device's data in
//! the order the device sent it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::net::{Outbox, SendError, Text};

pub(crate) type ConnectionId = u64;

/// Longest last-data text kept per device for the console.
const LAST_DATA_CHARS: usize = 200;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// When a connection last sent anything; updated without the table lock.
#[derive(Debug, Default)]
pub(crate) struct LastSeen(AtomicU64);

impl LastSeen {
    pub(crate) fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Connection {
    outbox: Outbox<Text>,
    device: Option<String>,
    subscriber: bool,
    last_seen: Arc<LastSeen>,
    last_data: String,
}

/// A registered device, for the console and `devices.json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// Its id.
    pub id: String,
    /// Its last data line (cut at 200 characters), if any.
    #[serde(rename = "lastData")]
    pub last_data: String,
    /// Last sign of life, milliseconds since the Unix epoch.
    #[serde(rename = "lastSeenMs")]
    pub last_seen_ms: u64,
}

/// What a fan-out did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fanout {
    pub delivered: usize,
    pub overflowed: usize,
}

impl Fanout {
    fn send(&mut self, outbox: &Outbox<Text>, text: &Text) {
        match outbox.send(text.clone()) {
            Ok(()) => self.delivered += 1,
            Err(SendError::Full) => self.overflowed += 1,
            Err(SendError::Closed) => {}
        }
    }
}

/// What registering an id did.
pub(crate) enum Registered {
    /// The id was free (or already this connection's).
    Fresh,
    /// Another connection held it; that one must go.
    Replaced(Outbox<Text>),
}

#[derive(Default)]
pub(crate) struct Table {
    connections: HashMap<ConnectionId, Connection>,
    devices: HashMap<String, ConnectionId>,
    subscribers: HashMap<ConnectionId, Outbox<Text>>,
}

impl Table {
    pub(crate) fn add(&mut self, id: ConnectionId, outbox: Outbox<Text>, last_seen: Arc<LastSeen>) {
        self.connections.insert(
            id,
            Connection {
                outbox,
                device: None,
                subscriber: false,
                last_seen,
                last_data: String::new(),
            },
        );
    }

    pub(crate) fn remove(&mut self, id: ConnectionId) {
        if let Some(connection) = self.connections.remove(&id) {
            if let Some(device) = connection.device {
                if self.devices.get(&device) == Some(&id) {
                    self.devices.remove(&device);
                }
            }
        }
        self.subscribers.remove(&id);
    }

    /// Makes `id` the device `device`: a newer connection takes an id
    /// over from an older one (a device that reconnected before its old
    /// connection timed out).
    pub(crate) fn register(&mut self, id: ConnectionId, device: &str) -> Registered {
        let mut outcome = Registered::Fresh;
        if let Some(&holder) = self.devices.get(device) {
            if holder != id {
                if let Some(old) = self.connections.get_mut(&holder) {
                    old.device = None;
                    outcome = Registered::Replaced(old.outbox.clone());
                }
            }
        }
        let Some(connection) = self.connections.get_mut(&id) else {
            return outcome;
        };
        if let Some(previous) = connection.device.replace(device.to_owned()) {
            if previous != device {
                self.devices.remove(&previous);
            }
        }
        connection.last_data.clear();
        self.devices.insert(device.to_owned(), id);
        outcome
    }

    /// The device id of connection `id`, if it registered.
    pub(crate) fn device_of(&self, id: ConnectionId) -> Option<&str> {
        self.connections.get(&id)?.device.as_deref()
    }

    pub(crate) fn subscribe(&mut self, id: ConnectionId) {
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.subscriber = true;
            self.subscribers.insert(id, connection.outbox.clone());
        }
    }

    /// `<device>:<data>` to every subscriber, remembering the data.
    pub(crate) fn broadcast(&mut self, id: ConnectionId, data: &str) -> Option<Fanout> {
        let connection = self.connections.get_mut(&id)?;
        let device = connection.device.as_deref()?;
        let text = Text::from(format!("{device}:{data}"));
        connection.last_data.clear();
        connection
            .last_data
            .extend(data.chars().take(LAST_DATA_CHARS));
        let mut fanout = Fanout::default();
        for outbox in self.subscribers.values() {
            fanout.send(outbox, &text);
        }
        Some(fanout)
    }

    /// `text` to device `target`, or to every device for `all`; `None`
    /// when there is no such device.
    pub(crate) fn command(&self, target: &str, text: &Text) -> Option<Fanout> {
        let mut fanout = Fanout::default();
        if target == "all" {
            for id in self.devices.values() {
                if let Some(connection) = self.connections.get(id) {
                    fanout.send(&connection.outbox, text);
                }
            }
            return Some(fanout);
        }
        let connection = self.connections.get(self.devices.get(target)?)?;
        fanout.send(&connection.outbox, text);
        Some(fanout)
    }

    /// Pings every device; ends (and forgets) those silent longer than
    /// `stale`. Returns the stale devices' ids.
    pub(crate) fn sweep(
        &mut self,
        ping: Option<&Text>,
        stale: Duration,
        now_ms: u64,
    ) -> Vec<String> {
        let stale_ms = stale.as_millis() as u64;
        let mut gone = Vec::new();
        for connection in self.connections.values_mut() {
            let Some(device) = &connection.device else {
                continue;
            };
            if now_ms.saturating_sub(connection.last_seen.ms()) > stale_ms {
                connection
                    .outbox
                    .end_with(1001, "stale: no frame within the stale timeout");
                gone.push(device.clone());
                connection.device = None;
            } else if let Some(ping) = ping {
                let _ = connection.outbox.send(ping.clone());
            }
        }
        for device in &gone {
            self.devices.remove(device);
        }
        gone
    }

    /// Every registered device, by id.
    pub(crate) fn devices(&self) -> Vec<DeviceInfo> {
        let mut devices: Vec<DeviceInfo> = self
            .devices
            .iter()
            .filter_map(|(device, id)| {
                let connection = self.connections.get(id)?;
                Some(DeviceInfo {
                    id: device.clone(),
                    last_data: connection.last_data.clone(),
                    last_seen_ms: connection.last_seen.ms(),
                })
            })
            .collect();
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        devices
    }

    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.connections.len(),
            self.devices.len(),
            self.subscribers.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(table: &mut Table, id: ConnectionId) -> Outbox<Text> {
        let outbox = Outbox::with_capacity(16);
        let seen = Arc::new(LastSeen::default());
        seen.touch();
        table.add(id, outbox.clone(), seen);
        outbox
    }

    #[test]
    fn data_reaches_subscribers_prefixed_and_commands_reach_devices() {
        let mut table = Table::default();
        let lamp = connect(&mut table, 1);
        let watcher = connect(&mut table, 2);
        table.register(1, "lamp-1");
        table.subscribe(2);
        table.broadcast(1, "temp=21.5").unwrap();
        assert_eq!(watcher.take()[0].as_str(), "lamp-1:temp=21.5");
        assert!(table.broadcast(2, "x").is_none(), "not a device");
        assert_eq!(
            table
                .command("lamp-1", &Text::from("led:ff0000"))
                .unwrap()
                .delivered,
            1
        );
        assert!(table.command("nobody", &Text::from("led")).is_none());
        assert_eq!(
            table
                .command("all", &Text::from("reset"))
                .unwrap()
                .delivered,
            1
        );
        assert_eq!(lamp.take().len(), 2);
        assert_eq!(table.devices()[0].last_data, "temp=21.5");
    }

    #[test]
    fn a_newer_connection_takes_an_id_over() {
        let mut table = Table::default();
        connect(&mut table, 1);
        connect(&mut table, 2);
        table.register(1, "lamp");
        assert!(matches!(table.register(2, "lamp"), Registered::Replaced(_)));
        assert_eq!(table.device_of(1), None);
        assert_eq!(table.device_of(2), Some("lamp"));
        // The old connection going away does not take the id with it.
        table.remove(1);
        assert_eq!(table.devices().len(), 1);
        // Renaming frees the old id.
        table.register(2, "lamp-2");
        assert_eq!(table.devices()[0].id, "lamp-2");
    }

    #[test]
    fn silent_devices_are_swept_and_others_pinged() {
        let mut table = Table::default();
        let quiet = connect(&mut table, 1);
        let lively = connect(&mut table, 2);
        table.register(1, "quiet");
        table.register(2, "lively");
        let now = now_ms();
        table
            .connections
            .get(&1)
            .unwrap()
            .last_seen
            .0
            .store(now - 60_000, Ordering::Relaxed);
        let gone = table.sweep(Some(&Text::from("ping")), Duration::from_secs(30), now);
        assert_eq!(gone, ["quiet"]);
        assert!(quiet.ending());
        assert_eq!(lively.take()[0].as_str(), "ping");
        assert_eq!(table.devices().len(), 1);
    }
}
