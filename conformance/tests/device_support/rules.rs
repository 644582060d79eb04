//! What each [`Fault`] does: one deliberate deviation from one spec
//! point of the device profile, applied by the fault proxy to the lines
//! between the suite and the reference hub (or, for the liveness
//! points, to its pings and connections).

use std::sync::Arc;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::proxy::{lock, Shared};

/// One deliberate deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing changes.
    None,
    /// `id:` is answered `ok`.
    ReplyToRegister,
    /// `s` is answered `ok`.
    ReplyToSubscribe,
    /// `ping` is answered `PONG`.
    PongUppercase,
    /// Broadcasts lose their `<deviceId>:` prefix.
    BroadcastWithoutPrefix,
    /// Device data also reaches connections that are neither devices nor
    /// subscribers.
    BroadcastToClients,
    /// Device data is sent back to its device.
    EchoToSender,
    /// A command to one device reaches it twice.
    DuplicateSingle,
    /// A command to device `X` also reaches devices whose id begins with
    /// `X`.
    PrefixTarget,
    /// A command to `all` skips devices that also subscribed.
    AllSkipsSubscribed,
    /// Parameters are cut at their first `:`.
    TruncateColonParams,
    /// A command without parameters arrives as `<command>:`.
    TrailingColonNoParams,
    /// An accepted `cmd:` is answered `ok`.
    ReplyToCommand,
    /// An unknown command gets no `error:`.
    SwallowUnknownCommandError,
    /// An unknown command is forwarded to its target(s) anyway.
    ForwardUnknownCommand,
    /// An unknown target gets no `error:`.
    SwallowUnknownTargetError,
    /// A command to an unknown target is sent to `all` (with an `error:`).
    UnknownTargetToAll,
    /// Text from a non-device gets no `error:`.
    SwallowNotADeviceError,
    /// Every `error:` line is followed by a line of no grammar.
    InvalidAfterError,
    /// The hub's `ping`s to devices are dropped.
    DropHubPings,
    /// A device that leaves a hub `ping` unanswered for the stale timeout
    /// is dropped, whatever else it sends.
    PongOnlyLiveness,
    /// After a connection got an `error:`, its accepted commands are
    /// dropped.
    IgnoreCommandsAfterError,
    /// A connection is closed after its `error:` for an unknown target.
    CloseAfterUnknownTarget,
}

/// What to do with a line.
pub enum Action {
    /// Send this text to the client.
    ToClient(String),
    /// Send this frame to the hub.
    ToHub(Frame),
    /// Close both sides (the client with 1001).
    Close,
}

fn to_hub(text: &str) -> Action {
    Action::ToHub(Frame::text(text.to_owned()))
}

/// A client line, as the proxy reads it.
enum Client<'a> {
    Register(&'a str),
    Subscribe,
    Ping,
    Pong,
    Command {
        target: &'a str,
        command: &'a str,
        /// `<command>[:<parameters>]`.
        delivered: &'a str,
        parameters: Option<&'a str>,
    },
    Other,
}

fn read(text: &str) -> Client<'_> {
    if let Some(id) = text.strip_prefix("id:") {
        return Client::Register(id);
    }
    match text {
        "s" => return Client::Subscribe,
        "ping" => return Client::Ping,
        "pong" => return Client::Pong,
        _ => {}
    }
    if let Some(rest) = text.strip_prefix("cmd:") {
        if let Some((target, delivered)) = rest.split_once(':') {
            let (command, parameters) = match delivered.split_once(':') {
                Some((command, parameters)) => (command, Some(parameters)),
                None => (delivered, None),
            };
            return Client::Command {
                target,
                command,
                delivered,
                parameters,
            };
        }
    }
    Client::Other
}

/// One connection's state.
pub struct ConnState {
    id: u64,
    shared: Arc<Shared>,
    device: Option<String>,
    subscribed: bool,
    errored: bool,
    /// When an unanswered hub `ping` makes the device stale
    /// ([`Fault::PongOnlyLiveness`]).
    stale_at: Option<Instant>,
}

impl ConnState {
    pub fn new(id: u64, shared: Arc<Shared>) -> ConnState {
        ConnState {
            id,
            shared,
            device: None,
            subscribed: false,
            errored: false,
            stale_at: None,
        }
    }

    /// When the proxy closes this connection, if a fault says so.
    pub fn deadline(&self) -> Option<Instant> {
        self.stale_at
    }

    fn fault(&self) -> Fault {
        self.shared.fault
    }

    /// A line from the client.
    pub fn on_client(&mut self, text: &str) -> Vec<Action> {
        let mut actions = vec![to_hub(text)];
        match read(text) {
            Client::Register(id) => {
                self.device = Some(id.to_owned());
                let id = id.to_owned();
                self.shared.update(self.id, |peer| peer.device = Some(id));
                if self.fault() == Fault::ReplyToRegister {
                    actions.push(Action::ToClient("ok".into()));
                }
            }
            Client::Subscribe => {
                self.subscribed = true;
                self.shared.update(self.id, |peer| peer.subscribed = true);
                if self.fault() == Fault::ReplyToSubscribe {
                    actions.push(Action::ToClient("ok".into()));
                }
            }
            Client::Pong => self.stale_at = None,
            Client::Ping => {}
            Client::Command {
                target,
                command,
                delivered,
                parameters,
            } => return self.command(text, target, command, delivered, parameters),
            Client::Other => {
                if let Some(device) = self.device.clone() {
                    self.data(&device, text);
                }
            }
        }
        actions
    }

    /// Device data from this connection.
    fn data(&self, device: &str, data: &str) {
        let line = format!("{device}:{data}");
        let me = self.id;
        let targets = match self.fault() {
            Fault::BroadcastToClients => self
                .shared
                .select(|id, peer| id != me && peer.device.is_none() && !peer.subscribed),
            Fault::EchoToSender => vec![me],
            _ => Vec::new(),
        };
        for id in targets {
            self.shared.inject(id, &line);
        }
    }

    fn command(
        &mut self,
        text: &str,
        target: &str,
        command: &str,
        delivered: &str,
        parameters: Option<&str>,
    ) -> Vec<Action> {
        let known = self.shared.commands.iter().any(|name| name == command);
        let to_all = target == "all";
        let addressed = to_all || self.shared.is_device(target);
        let mut actions = vec![to_hub(text)];
        let watch = |what: Option<String>| {
            lock(&self.shared.watched).insert(delivered.to_owned(), what);
        };
        match self.fault() {
            Fault::DuplicateSingle if known && !to_all => watch(Some(delivered.to_owned())),
            Fault::AllSkipsSubscribed if known && to_all => watch(None),
            Fault::TruncateColonParams => {
                if let Some((first, _)) = parameters.and_then(|p| p.split_once(':')) {
                    watch(Some(format!("{command}:{first}")));
                }
            }
            Fault::TrailingColonNoParams if parameters.is_none() => {
                watch(Some(format!("{command}:")));
            }
            Fault::PrefixTarget if known && !to_all => {
                let others = self.shared.select(|_, peer| {
                    peer.device
                        .as_deref()
                        .is_some_and(|id| id != target && id.starts_with(target))
                });
                for id in others {
                    self.shared.inject(id, delivered);
                }
            }
            Fault::ReplyToCommand if known && addressed => {
                actions.push(Action::ToClient("ok".into()));
            }
            Fault::ForwardUnknownCommand if !known && addressed => {
                let devices = self.shared.select(|_, peer| {
                    peer.device
                        .as_deref()
                        .is_some_and(|id| to_all || id == target)
                });
                for id in devices {
                    self.shared.inject(id, delivered);
                }
            }
            Fault::UnknownTargetToAll if known && !addressed => {
                actions = vec![
                    to_hub(&format!("cmd:all:{delivered}")),
                    Action::ToClient(format!("error:unknown target: {target}")),
                ];
            }
            Fault::IgnoreCommandsAfterError if known && addressed && self.errored => {
                actions.clear();
            }
            _ => {}
        }
        actions
    }

    /// A line from the hub.
    pub fn on_hub(&mut self, text: &str) -> Vec<Action> {
        if text.starts_with("error:") {
            self.errored = true;
        }
        let fault = self.fault();
        let swallowed = match fault {
            Fault::SwallowUnknownCommandError => text.starts_with("error:unknown command"),
            Fault::SwallowUnknownTargetError => text.starts_with("error:unknown target"),
            Fault::SwallowNotADeviceError => text.starts_with("error:not a device"),
            Fault::DropHubPings => text == "ping" && self.device.is_some(),
            _ => false,
        };
        if swallowed {
            return Vec::new();
        }
        if fault == Fault::PongOnlyLiveness
            && text == "ping"
            && self.device.is_some()
            && self.stale_at.is_none()
        {
            self.stale_at = Some(Instant::now() + super::STALE_TIMEOUT);
        }
        let mut line = text.to_owned();
        if fault == Fault::PongUppercase && text == "pong" {
            line = "PONG".into();
        }
        if fault == Fault::BroadcastWithoutPrefix && self.subscribed {
            if let Some((device, data)) = text.split_once(':') {
                if self.shared.is_device(device) {
                    line = data.to_owned();
                }
            }
        }
        let mut actions = Vec::new();
        if self.device.is_some() {
            let watched = lock(&self.shared.watched).get(text).cloned();
            match (fault, watched) {
                (Fault::DuplicateSingle, Some(Some(_))) => {
                    actions.push(Action::ToClient(line.clone()));
                }
                (Fault::AllSkipsSubscribed, Some(None)) if self.subscribed => return Vec::new(),
                (Fault::TruncateColonParams | Fault::TrailingColonNoParams, Some(Some(new))) => {
                    line = new;
                }
                _ => {}
            }
        }
        actions.push(Action::ToClient(line));
        if fault == Fault::InvalidAfterError && text.starts_with("error:") {
            actions.push(Action::ToClient(" (see the line above)".into()));
        }
        if fault == Fault::CloseAfterUnknownTarget && text.starts_with("error:unknown target") {
            actions.push(Action::Close);
        }
        actions
    }
}
