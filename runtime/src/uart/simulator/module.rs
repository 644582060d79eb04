//! The root module itself: answers commands in order, one at a time, and
//! sends the periodic messages.

use std::sync::Arc;
use std::time::Duration;

use specwire_protocol::uart::{
    Command, DataEntry, DataUpdate, NetworkStatus, NodeConnected, NodeList, NodeState,
    Notification, Reply, RootReset, UnsolicitedMessage,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::Network;
use super::stats::{add, Counters};
use super::ROOT_ADDR;

/// How the module answers one command.
struct Answer {
    reply: Reply,
    /// Wait this long before replying (the slow node's `SENDI`).
    delay: Duration,
    /// After the reply, restart: `RST`, then a `NOD` per node.
    restart: bool,
}

impl Answer {
    fn success(result: Vec<u8>) -> Answer {
        Answer {
            reply: Reply::Success(result),
            delay: Duration::ZERO,
            restart: false,
        }
    }

    fn failure(message: impl Into<String>) -> Answer {
        let mut message = message.into();
        // The length is one byte; keep the message whole characters.
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        Answer {
            reply: Reply::Failure { message },
            delay: Duration::ZERO,
            restart: false,
        }
    }
}

/// The output queue went away or the simulator is stopping.
struct Stopped;

/// The root module: answers commands in order and sends the periodic
/// messages.
pub(super) struct Module {
    pub(super) network: Network,
    pub(super) slow_node: Option<(u16, Duration)>,
    pub(super) out: mpsc::Sender<Vec<u8>>,
    pub(super) counters: Arc<Counters>,
    pub(super) stop: CancellationToken,
}

impl Module {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Vec<u8>>,
        data_interval: Duration,
        net_interval: Duration,
    ) {
        if self.announce_nodes().await.is_err() {
            return;
        }
        let start = Instant::now();
        let mut data = tokio::time::interval_at(start + data_interval, data_interval);
        data.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut net = tokio::time::interval_at(start + net_interval, net_interval);
        net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One command at a time: while a reply waits, later commands wait too.
        let mut pending: Option<(Instant, Answer)> = None;
        loop {
            let due = pending.as_ref().map(|(at, _)| *at);
            let step = tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep_until(due.unwrap_or(start)), if due.is_some() => {
                    match pending.take() {
                        Some((_, answer)) => self.deliver(answer).await,
                        None => Ok(()),
                    }
                }
                body = commands.recv(), if due.is_none() => {
                    let Some(body) = body else { return };
                    let answer = self.answer(&body);
                    if answer.delay.is_zero() {
                        self.deliver(answer).await
                    } else {
                        pending = Some((Instant::now() + answer.delay, answer));
                        Ok(())
                    }
                }
                _ = data.tick() => self.data_updates(),
                _ = net.tick() => self.network_status(),
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// The answer to one command body (counted by command).
    fn answer(&self, body: &[u8]) -> Answer {
        let counters = &self.counters;
        let command = match Command::decode(body) {
            Ok(command) => command,
            Err(error) => {
                add(&counters.rejected, 1);
                return Answer::failure(format!("bad command: {error}"));
            }
        };
        match command {
            Command::Send(send) => {
                add(&counters.send, 1);
                self.to_node(send.dst)
            }
            Command::SendTracked(send) => {
                add(&counters.send_tracked, 1);
                let mut answer = self.to_node(send.dst);
                if let Some((slow, delay)) = self.slow_node {
                    if slow == send.dst {
                        answer.delay = delay;
                    }
                }
                answer
            }
            Command::Broadcast(_) => {
                add(&counters.broadcast, 1);
                Answer::success(Vec::new())
            }
            Command::RestartRoot(_) => {
                add(&counters.restart_root, 1);
                Answer {
                    restart: true,
                    ..Answer::success(Vec::new())
                }
            }
            Command::Clean(_) => {
                add(&counters.clean, 1);
                Answer::success(Vec::new())
            }
            Command::State(_) => {
                add(&counters.state, 1);
                Answer::success(vec![NodeState::Active.value()])
            }
            Command::NetworkInfo(_) => {
                add(&counters.network_info, 1);
                match (NodeList {
                    nodes: self.network.entries(),
                })
                .encode()
                {
                    Ok(bytes) => Answer::success(bytes),
                    Err(error) => Answer::failure(format!("network info: {error}")),
                }
            }
            other => {
                add(&counters.rejected, 1);
                Answer::failure(format!(
                    "{} is the gateway's command, not the module's",
                    other.name()
                ))
            }
        }
    }

    fn to_node(&self, dst: u16) -> Answer {
        if self.network.knows(dst) {
            Answer::success(Vec::new())
        } else {
            Answer::failure(format!("unknown node {dst:#06x}"))
        }
    }

    /// Sends the reply, then restarts if the command asked for it.
    async fn deliver(&mut self, answer: Answer) -> Result<(), Stopped> {
        let body = answer.reply.encode().map_err(|_| Stopped)?;
        self.send(body).await?;
        if answer.restart {
            self.send_message(ROOT_ADDR, RootReset.into()).await?;
            self.announce_nodes().await?;
        }
        Ok(())
    }

    /// A `NOD` for every node.
    async fn announce_nodes(&mut self) -> Result<(), Stopped> {
        for entry in self.network.entries() {
            let connected = NodeConnected {
                addr: entry.addr,
                uuid: entry.uuid,
            };
            self.send_message(ROOT_ADDR, connected.into()).await?;
        }
        Ok(())
    }

    /// A `DATA_UPDATE` from every node (dropped while the line is backed up).
    fn data_updates(&mut self) -> Result<(), Stopped> {
        let updates: Vec<(u16, DataUpdate)> = self
            .network
            .nodes
            .iter_mut()
            .map(|node| {
                let entries = node.sensors.reading().into_iter().map(DataEntry::from);
                (
                    node.entry.addr,
                    DataUpdate {
                        entries: entries.collect(),
                    },
                )
            })
            .collect();
        for (src, update) in updates {
            self.offer_message(src, update.into())?;
        }
        Ok(())
    }

    /// `NET` with every node (dropped while the line is backed up).
    fn network_status(&mut self) -> Result<(), Stopped> {
        let status = NetworkStatus {
            nodes: self.network.entries(),
        };
        self.offer_message(ROOT_ADDR, status.into())
    }

    /// Queues a message, waiting for room: a reply or a restart's messages.
    async fn send_message(&mut self, src: u16, body: Notification) -> Result<(), Stopped> {
        let body = message_body(src, body)?;
        self.send(body).await
    }

    /// Queues a periodic message if there is room; counts it dropped if not.
    fn offer_message(&mut self, src: u16, body: Notification) -> Result<(), Stopped> {
        let body = message_body(src, body)?;
        match self.out.try_send(body) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                add(&self.counters.messages_dropped, 1);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stopped),
        }
    }

    async fn send(&mut self, body: Vec<u8>) -> Result<(), Stopped> {
        tokio::select! {
            sent = self.out.send(body) => sent.map_err(|_| Stopped),
            () = self.stop.cancelled() => Err(Stopped),
        }
    }
}

/// An `M` body: kind, source, opcode, payload.
fn message_body(src: u16, body: Notification) -> Result<Vec<u8>, Stopped> {
    // Encoding fails only for more than 255 items, which `check` rules out.
    Reply::Message(UnsolicitedMessage { src, body })
        .encode()
        .map_err(|_| Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> (Module, mpsc::Receiver<Vec<u8>>) {
        let (out, frames) = mpsc::channel(4);
        let module = Module {
            network: Network::new(3, 7),
            slow_node: Some((2, Duration::from_secs(3))),
            out,
            counters: Arc::default(),
            stop: CancellationToken::new(),
        };
        (module, frames)
    }

    #[test]
    fn commands_get_the_documented_answers() {
        let (module, _frames) = module();
        let ask = |body: &[u8]| {
            let answer = module.answer(body);
            (answer.reply, answer.delay, answer.restart)
        };
        let ok = Reply::Success(Vec::new());
        assert_eq!(ask(b"SEND-\x00\x01hi"), (ok.clone(), Duration::ZERO, false));
        assert_eq!(
            ask(b"SENDI\x00\x02hi"),
            (ok.clone(), Duration::from_secs(3), false)
        );
        let unknown = Reply::Failure {
            message: "unknown node 0x0009".to_owned(),
        };
        assert_eq!(ask(b"SENDI\x00\x09").0, unknown);
        assert_eq!(ask(b"BCAST\x00\x00x"), (ok.clone(), Duration::ZERO, false));
        assert!(matches!(ask(b"BCAST\x00\x01x").0, Reply::Failure { .. }));
        assert_eq!(ask(b"RST-R"), (ok.clone(), Duration::ZERO, true));
        assert_eq!(ask(b"STATE").0, Reply::Success(b"A".to_vec()));
        let Reply::Success(info) = ask(b"NINFO").0 else {
            panic!("NINFO succeeds")
        };
        assert_eq!(NodeList::decode(&info).map(|list| list.nodes.len()), Ok(3));
        assert!(
            matches!(ask(b"ACT-C").0, Reply::Failure { message } if message.contains("gateway"))
        );
        assert!(matches!(ask(b"HELLO").0, Reply::Failure { .. }));
        assert!(matches!(ask(b"SE").0, Reply::Failure { .. }));
        let stats = module.counters.snapshot();
        assert_eq!(stats.commands.total(), 11);
        assert_eq!(stats.commands.rejected, 4);
    }
}
