//! What the suite knows about the target (where its discovery traffic is,
//! which service to judge, how long to wait) and a case's view of it: the
//! sockets, the transcript, and what the whole run has seen.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use specwire_protocol::discovery::{
    ClientId, ClientServiceDiscoveryRequest, ClientServiceDiscoveryRequestDiscoveryType, Message,
    Timestamp,
};
use specwire_protocol::JsonProtocol;
use specwire_runtime::clock::{new_id, now_rfc3339};
use specwire_runtime::discovery::{bind_discovery_socket, RECEIVE_BUFFER_BYTES};
use tokio::net::UdpSocket;

use super::wire::{Datagram, Exchange, Until, Via};
use crate::suite::{lock, CaseContext};
use crate::transcript::{hex, Direction};
use crate::verdict::Stop;

/// The target and how to test it.
#[derive(Clone, Debug)]
pub struct DiscoveryTarget {
    /// The UDP discovery port the target uses (the profile's default is
    /// 50001).
    pub port: u16,
    /// Where requests are sent: a broadcast address that reaches the target
    /// (default `127.255.255.255`, this host only), or its unicast address.
    pub target_address: IpAddr,
    /// Judge only advertisements whose `serviceName` is this; others on the
    /// shared port are recorded and ignored.
    pub service: Option<String>,
    /// How long the heartbeat cases wait for an unsolicited advertisement
    /// (default 35 s: the profile's 30 s heartbeat and some slack). Zero
    /// skips them.
    pub heartbeat_wait: Duration,
    /// The spec's limit for answering a request (1 s).
    pub reply_timeout: Duration,
    /// How long the suite listens for answers after a request (default
    /// 3 s), so a late answer is told from none. Never shorter than
    /// `reply_timeout`.
    pub listen: Duration,
    /// How long the suite keeps listening once what a case waits for has
    /// come, for the rest of a burst (other services, the unicast copy).
    pub settle: Duration,
    /// How long a WebSocket handshake with an advertised endpoint may take.
    pub connect_timeout: Duration,
    /// Extra CA certificates (PEM) trusted for `wss://` endpoints.
    pub extra_roots: Vec<PathBuf>,
    /// How to keep the provider busy through its advertised endpoint, so
    /// `discovery.advertisement.load-range` sees a busy provider's load
    /// (`None`: only an idle one is seen).
    pub load: Option<LoadPlan>,
}

/// How the suite keeps a provider busy: `tasks` runs of `recipe` at once
/// on its advertised endpoint, as `client_id` (authenticated with
/// `api_key`, when given).
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// A task that runs for a while (the `succeeds` task of `--tasks`).
    pub recipe: crate::task::Recipe,
    /// How many at once.
    pub tasks: usize,
    /// The API key, if the provider requires one.
    pub api_key: Option<String>,
    /// The client id to assign them as.
    pub client_id: String,
}

impl DiscoveryTarget {
    /// Defaults for `port`: requests to `127.255.255.255`, 35 s heartbeat
    /// wait, 1 s answer limit, 3 s listening, 300 ms settle, 5 s WebSocket
    /// handshakes.
    pub fn new(port: u16) -> DiscoveryTarget {
        DiscoveryTarget {
            port,
            target_address: IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)),
            service: None,
            heartbeat_wait: Duration::from_secs(35),
            reply_timeout: Duration::from_secs(1),
            listen: Duration::from_secs(3),
            settle: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(5),
            extra_roots: Vec::new(),
            load: None,
        }
    }

    /// Where requests go.
    pub fn destination(&self) -> SocketAddr {
        SocketAddr::new(self.target_address, self.port)
    }

    /// How long the suite listens after a request.
    pub fn window(&self) -> Duration {
        self.listen.max(self.reply_timeout)
    }

    /// `udp://ADDRESS:PORT` (and the service), for reports.
    pub fn describe(&self) -> String {
        let mut text = format!("udp://{}", self.destination());
        if let Some(service) = &self.service {
            text.push_str(&format!(" (service {service})"));
        }
        text
    }
}

/// What the unsolicited advertisements (heartbeats) the run waited for
/// were; the first heartbeat case to run waits, the other reuses it.
#[derive(Clone, Debug)]
pub(crate) struct Heartbeats {
    /// The case that waited.
    pub observed_by: &'static str,
    /// How long it waited.
    pub waited: Duration,
    /// The advertisements that answered no request the suite knows of.
    pub unsolicited: Vec<Datagram>,
}

/// What the whole discovery run has seen, shared by every case (schema
/// breaks are in the run's [`RunLog`](crate::suite::RunLog)).
#[derive(Debug, Default)]
pub struct RunState {
    /// Advertisements of the service(s) under test seen so far.
    pub(crate) advertisements: usize,
    /// Their `load` values in range (0.0–1.0).
    pub(crate) loads: Vec<f64>,
    /// Their `load` values out of range or not numbers, described.
    pub(crate) bad_loads: Vec<String>,
    /// Requests sent by the suite or seen on the shared port: `clientId` →
    /// when.
    pub(crate) requests: HashMap<String, Instant>,
    /// The heartbeat observation, once made.
    pub(crate) heartbeats: Option<Heartbeats>,
}

/// A socket of the suite and its number in the transcript.
pub(crate) struct Listener {
    pub socket: UdpSocket,
    pub connection: u32,
    pub local: SocketAddr,
}

/// A case's view of the target: its sockets, the run, and the
/// [`CaseContext`] (transcript, notes, the run's log) it derefs to.
pub struct Ctx {
    /// The target.
    pub target: Arc<DiscoveryTarget>,
    case: CaseContext,
    run: Arc<Mutex<RunState>>,
    shared: Option<Listener>,
}

crate::embeds_case_context!(Ctx);

/// Receive errors in a row after which a case gives up.
const MAX_RECEIVE_ERRORS: u32 = 50;

impl Ctx {
    pub(crate) fn new(
        target: Arc<DiscoveryTarget>,
        case: CaseContext,
        run: Arc<Mutex<RunState>>,
    ) -> Ctx {
        Ctx {
            target,
            case,
            run,
            shared: None,
        }
    }

    pub(crate) fn run(&self) -> MutexGuard<'_, RunState> {
        lock(&self.run)
    }

    /// Every schema-breaking datagram of the target seen in the run so far.
    pub fn invalid_datagrams(&self) -> Vec<String> {
        self.invalid_messages()
    }

    /// How many advertisements of the service(s) under test the run saw.
    pub fn advertisements_seen(&self) -> usize {
        self.run().advertisements
    }

    /// The wildcard address of the target address's family.
    pub(crate) fn wildcard(&self) -> IpAddr {
        match self.target.target_address {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    fn register(&mut self, socket: UdpSocket, what: &str) -> Result<Listener, Stop> {
        let local = socket
            .local_addr()
            .map_err(|error| Stop::Harness(format!("UDP socket: {error}")))?;
        let connection = self.next_connection();
        self.note_on(connection, &format!("UDP {local}: {what}"));
        Ok(Listener {
            socket,
            connection,
            local,
        })
    }

    /// A fresh ephemeral socket that may send broadcasts. Deliberately
    /// without `SO_REUSEADDR`: on Linux, a reusable socket bound to port 0
    /// may be given a port another reusable socket holds (a discovery port,
    /// say), and would then receive its broadcasts as if unicast.
    async fn bind_ephemeral(&mut self) -> Result<Listener, Stop> {
        let address = SocketAddr::new(self.wildcard(), 0);
        let socket = UdpSocket::bind(address)
            .await
            .map_err(|error| Stop::Harness(format!("cannot bind UDP {address}: {error}")))?;
        if address.is_ipv4() {
            socket
                .set_broadcast(true)
                .map_err(|error| Stop::Harness(format!("SO_BROADCAST: {error}")))?;
        }
        self.register(
            socket,
            "an ephemeral socket: sends the request; unicast answers arrive here",
        )
    }

    /// Binds the shared discovery port (`SO_REUSEADDR`, `SO_REUSEPORT`), on
    /// which broadcasts arrive, unless it is bound already.
    pub(crate) fn ensure_shared(&mut self) -> Result<(), Stop> {
        if self.shared.is_none() {
            let port = self.target.port;
            let socket = bind_discovery_socket(self.wildcard(), port).map_err(|error| {
                Stop::Harness(format!(
                    "cannot bind UDP {}:{port}: {error}",
                    self.wildcard()
                ))
            })?;
            let listener = self.register(
                socket,
                "the shared discovery port (broadcasts: heartbeats, answers to the targets)",
            )?;
            self.shared = Some(listener);
        }
        Ok(())
    }

    /// Closes the suite's socket on the shared port (the next case that
    /// listens binds it again). The port probes need it gone: the kernel
    /// stops looking at the sockets on a port at the first one that lets a
    /// `SO_REUSEPORT` socket in, and the suite's own would be that one.
    pub(crate) fn release_shared(&mut self) {
        if let Some(shared) = self.shared.take() {
            self.note_on(
                shared.connection,
                "closed for the port probes (it would let them in)",
            );
        }
    }

    /// The next datagram on the shared port or on `direct`, before
    /// `deadline`; `None` when the time is up. Every datagram goes into the
    /// transcript and is checked against the schema.
    pub(crate) async fn receive(
        &mut self,
        direct: Option<&Listener>,
        deadline: Instant,
    ) -> Result<Option<Datagram>, Stop> {
        self.ensure_shared()?;
        let mut errors = 0;
        loop {
            let Some(shared) = self.shared.as_ref() else {
                return Err(Stop::Harness("the shared discovery socket is gone".into()));
            };
            let mut shared_buffer = vec![0u8; RECEIVE_BUFFER_BYTES];
            let mut direct_buffer = vec![0u8; RECEIVE_BUFFER_BYTES];
            let receiving = async {
                tokio::select! {
                    received = shared.socket.recv_from(&mut shared_buffer) => (Via::Shared, shared.connection, received),
                    received = async {
                        match direct {
                            Some(listener) => listener.socket.recv_from(&mut direct_buffer).await,
                            None => std::future::pending().await,
                        }
                    } => (Via::Direct, direct.map_or(0, |listener| listener.connection), received),
                }
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            let Ok((via, connection, received)) =
                tokio::time::timeout_at(deadline, receiving).await
            else {
                return Ok(None);
            };
            let at = Instant::now();
            match received {
                Ok((length, source)) => {
                    let buffer = match via {
                        Via::Shared => &shared_buffer,
                        Via::Direct => &direct_buffer,
                    };
                    let bytes = buffer.get(..length).unwrap_or(buffer);
                    let datagram = Datagram::parse(at, via, source, bytes);
                    return Ok(Some(self.accept(connection, datagram, bytes)));
                }
                Err(error) => {
                    errors += 1;
                    self.note_on(connection, &format!("receive failed: {error}"));
                    if errors >= MAX_RECEIVE_ERRORS {
                        return Err(Stop::Harness(format!("UDP receive keeps failing: {error}")));
                    }
                }
            }
        }
    }

    /// Records `datagram`, decides whether it is an advertisement of the
    /// service under test, and logs it for `discovery.advertisement.valid`
    /// if it is the target's and breaks the schema.
    fn accept(&mut self, connection: u32, mut datagram: Datagram, bytes: &[u8]) -> Datagram {
        let data = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => hex(bytes),
        };
        self.record(Direction::Received, connection, "datagram", &data);
        let kind = datagram.discovery_type().map(str::to_owned);
        let under_test = match (&self.target.service, datagram.service_name()) {
            (None, _) => true,
            (Some(wanted), Some(name)) => wanted == name,
            (Some(_), None) => false,
        };
        match kind.as_deref() {
            Some("ClientServiceDiscoveryRequest") => {
                if let Some(id) = datagram.client_id() {
                    self.run()
                        .requests
                        .entry(id.to_owned())
                        .or_insert(datagram.at);
                }
                if let Some(problem) = &datagram.invalid {
                    let text = format!("a request of another client breaks the schema (not the target's: not judged): {problem}");
                    self.note_on(connection, &text);
                }
            }
            Some("ServiceAdvertisement") if under_test => {
                datagram.advertisement = true;
                let mut run = self.run();
                run.advertisements += 1;
                match datagram
                    .value
                    .get("load")
                    .and_then(serde_json::Value::as_f64)
                {
                    Some(load) if (0.0..=1.0).contains(&load) => run.loads.push(load),
                    _ => run.bad_loads.push(format!(
                        "{} has load {}",
                        datagram.describe(),
                        datagram
                            .value
                            .get("load")
                            .map_or_else(|| "absent".to_owned(), serde_json::Value::to_string)
                    )),
                }
                drop(run);
                self.log_invalid(connection, &datagram);
            }
            Some("ServiceAdvertisement") => {
                self.note_on(
                    connection,
                    "not the service under test (--service): ignored",
                );
            }
            _ if self.target.service.is_some() && datagram.via == Via::Shared => {
                self.note_on(
                    connection,
                    "not a discovery message, and not attributable to the service under test: ignored",
                );
            }
            _ => self.log_invalid(connection, &datagram),
        }
        datagram
    }

    fn log_invalid(&mut self, connection: u32, datagram: &Datagram) {
        if let Some(problem) = &datagram.invalid {
            self.invalid(
                connection,
                "datagram",
                problem,
                format!("{problem} (from {}): {}", datagram.source, datagram.text),
            );
        }
    }

    /// Sends a `ClientServiceDiscoveryRequest` with a fresh `clientId` from
    /// a fresh ephemeral socket to the target address, and listens on that
    /// socket and the shared port: until `until` holds and
    /// [`settle`](DiscoveryTarget::settle) more, at most the listening
    /// window.
    pub(crate) async fn exchange(&mut self, until: Until) -> Result<Exchange, Stop> {
        self.ensure_shared()?;
        let direct = self.bind_ephemeral().await?;
        let client_id = format!("specwire-conformance-{}", new_id());
        let request = ClientServiceDiscoveryRequest {
            client_id: ClientId(client_id.clone()),
            discovery_type:
                ClientServiceDiscoveryRequestDiscoveryType::ClientServiceDiscoveryRequest,
            timestamp: Timestamp(now_rfc3339()),
        };
        let text = Message::from(request)
            .to_json()
            .map_err(|error| Stop::Harness(format!("cannot encode the request: {error}")))?;
        if let Some(problem) =
            crate::session::refused::<Message>(&text, specwire_protocol::Direction::Broadcast)
        {
            return Err(Stop::Harness(problem));
        }
        let destination = self.target.destination();
        self.note_on(direct.connection, &format!("request to {destination}"));
        self.record(Direction::Sent, direct.connection, "datagram", &text);
        let sent_at = Instant::now();
        direct
            .socket
            .send_to(text.as_bytes(), destination)
            .await
            .map_err(|error| Stop::Harness(format!("cannot send to {destination}: {error}")))?;
        self.run().requests.insert(client_id.clone(), sent_at);
        let mut exchange = Exchange {
            client_id,
            sent_at,
            source: direct.local,
            window: self.target.window(),
            datagrams: Vec::new(),
        };
        let mut deadline = sent_at + exchange.window;
        let mut met = false;
        while let Some(datagram) = self.receive(Some(&direct), deadline).await? {
            exchange.datagrams.push(datagram);
            if !met && exchange.meets(until) {
                met = true;
                deadline = deadline.min(Instant::now() + self.target.settle);
            }
        }
        let summary = format!(
            "listened {} ms: {} answer(s), {} unicast to the request's source, {} advertisement(s) in all",
            sent_at.elapsed().as_millis(),
            exchange.answers().count(),
            exchange.unicast().count(),
            exchange.advertisements().count()
        );
        self.note_on(direct.connection, &summary);
        Ok(exchange)
    }

    /// The run's heartbeat observation: made now if no case made it yet.
    /// Listens on the shared port only (sending nothing) until an
    /// advertisement arrives that answers no request the suite knows of,
    /// and [`settle`](DiscoveryTarget::settle) more, at most
    /// [`heartbeat_wait`](DiscoveryTarget::heartbeat_wait).
    pub(crate) async fn heartbeats(&mut self) -> Result<Heartbeats, Stop> {
        if self.target.heartbeat_wait.is_zero() {
            return Err(Stop::Skip(
                "needs --heartbeat-wait above zero (how long to wait for a heartbeat)".into(),
            ));
        }
        let cached = self.run().heartbeats.clone();
        if let Some(heartbeats) = cached {
            self.note(&format!(
                "reusing the heartbeats {} waited {} ms for: {} unsolicited advertisement(s)",
                heartbeats.observed_by,
                heartbeats.waited.as_millis(),
                heartbeats.unsolicited.len()
            ));
            for heartbeat in &heartbeats.unsolicited {
                self.note(&format!("observed then: {}", heartbeat.text));
            }
            return Ok(heartbeats);
        }
        self.ensure_shared()?;
        let started = Instant::now();
        let mut deadline = started + self.target.heartbeat_wait;
        let mut unsolicited = Vec::new();
        let window = self.target.window();
        while let Some(datagram) = self.receive(None, deadline).await? {
            if !datagram.advertisement {
                continue;
            }
            if let Some(id) = datagram.responds_to() {
                let asked = self.run().requests.get(id).copied();
                if let Some(asked) = asked {
                    if datagram.at.saturating_duration_since(asked) <= window {
                        self.note(&format!(
                            "an answer to the request of {id} (seen {} ms before): not a heartbeat",
                            datagram.at.saturating_duration_since(asked).as_millis()
                        ));
                        continue;
                    }
                }
                if datagram.at.saturating_duration_since(started) < self.target.reply_timeout {
                    self.note(&format!(
                        "respondsToClientId {id}: may answer a request sent before the suite listened; not judged"
                    ));
                    continue;
                }
            }
            if unsolicited.is_empty() {
                deadline = deadline.min(Instant::now() + self.target.settle);
            }
            unsolicited.push(datagram);
        }
        let heartbeats = Heartbeats {
            observed_by: self.case.case(),
            waited: started.elapsed(),
            unsolicited,
        };
        self.note(&format!(
            "listened {} ms: {} unsolicited advertisement(s)",
            heartbeats.waited.as_millis(),
            heartbeats.unsolicited.len()
        ));
        self.run().heartbeats = Some(heartbeats.clone());
        Ok(heartbeats)
    }
}
