//! One device hub connection: the line grammar, with `error:` for what
//! cannot be handled and silence for what was accepted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use specwire_protocol::device::{Line, LineProtocol};
use specwire_protocol::Direction;

use super::hub::Shared;
use super::table::{ConnectionId, LastSeen, Registered};
use crate::net::{Inbound, Outbox, Rejection, Text, WsSession};

pub(crate) struct DeviceSession {
    shared: Arc<Shared>,
    id: ConnectionId,
    outbox: Outbox<Text>,
    last_seen: Arc<LastSeen>,
    inbound: Inbound,
}

impl DeviceSession {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: ConnectionId,
        outbox: Outbox<Text>,
    ) -> DeviceSession {
        let last_seen = Arc::new(LastSeen::default());
        last_seen.touch();
        shared
            .table()
            .add(id, outbox.clone(), Arc::clone(&last_seen));
        let inbound = Inbound::new(&shared.limits, Direction::ClientToServer);
        DeviceSession {
            shared,
            id,
            outbox,
            last_seen,
            inbound,
        }
    }

    fn send(&self, text: &'static str) {
        let _ = self.outbox.send(Text::from(text));
    }

    fn error(&self, reason: &str) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        let _ = self.outbox.send(Text::from(format!("error:{reason}")));
    }

    fn handle(&mut self, text: &str) {
        if let Err(rejection) = self.inbound.admit(text.len()) {
            return match rejection {
                Rejection::RateLimited => self.error("rate limit exceeded"),
                Rejection::TooLarge { size, limit } => self.error(&format!(
                    "frame of {size} bytes is over the {limit}-byte limit"
                )),
                _ => self.error("frame refused"),
            };
        }
        let line = match Line::parse_from(text, Some(Direction::ClientToServer)) {
            Ok(line) => line,
            Err(error) => return self.error(&error.to_string()),
        };
        match line {
            Line::Register(register) => self.register(&register.device_id),
            Line::Subscribe => self.shared.table().subscribe(self.id),
            Line::Ping => self.send("pong"),
            Line::Command(command) => self.command(
                &command.target,
                &command.command,
                command.parameters.as_deref(),
            ),
            Line::DeviceData(data) => self.data(&data.data),
            // Client-to-server parsing yields nothing else.
            other => self.error(&format!("{} is not sent to the hub", other.name())),
        }
    }

    fn register(&self, device: &str) {
        if device == "all" {
            return self.error("`all` is reserved for commands to every device");
        }
        let registered = self.shared.table().register(self.id, device);
        if let Registered::Replaced(older) = registered {
            let _ = older.send(Text::from(format!(
                "error:device id {device} was registered by a newer connection"
            )));
            older.end_with(1000, "replaced by a newer connection");
        }
        self.shared
            .counters
            .registrations
            .fetch_add(1, Ordering::Relaxed);
    }

    fn command(&self, target: &str, command: &str, parameters: Option<&str>) {
        if self.shared.registry.command(command).is_none() {
            return self.error(&format!("unknown command: {command}"));
        }
        let text = Text::from(match parameters {
            Some(parameters) => format!("{command}:{parameters}"),
            None => command.to_owned(),
        });
        match self.shared.table().command(target, &text) {
            Some(fanout) => {
                self.shared.count(fanout);
                self.shared
                    .counters
                    .commands
                    .fetch_add(1, Ordering::Relaxed);
            }
            None => self.error(&format!("unknown target: {target}")),
        }
    }

    fn data(&self, data: &str) {
        let fanout = self.shared.table().broadcast(self.id, data);
        match fanout {
            Some(fanout) => {
                self.shared.count(fanout);
                self.shared.counters.data_lines.fetch_add(1, Ordering::Relaxed);
            }
            None => self.error("not a device: register with id:<deviceId> before sending data, or send s, ping or cmd:"),
        }
    }
}

impl WsSession for DeviceSession {
    fn on_text(&mut self, text: &str) {
        self.last_seen.touch();
        // A device's answer to the hub's ping is a sign of life, not data.
        if text == "pong" && self.shared.table().device_of(self.id).is_some() {
            return;
        }
        self.handle(text);
    }

    fn on_binary(&mut self, _: &[u8]) {
        self.last_seen.touch();
        self.error("binary frames are not lines: send text frames");
    }

    fn on_close(&mut self) {
        self.shared.table().remove(self.id);
    }
}
