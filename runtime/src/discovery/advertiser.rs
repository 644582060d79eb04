//! The provider side of discovery: an [`Advertiser`] broadcasts a
//! `ServiceAdvertisement` for each of a provider's services on start-up,
//! on every change of its [`Presence`], as a heartbeat, and in answer to
//! every `ClientServiceDiscoveryRequest`; on a graceful
//! [`shutdown`](Advertiser::shutdown) it announces `Offline`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use specwire_runtime::discovery::{AdvertisedService, Advertiser, AdvertiserConfig, Presence};
//! use specwire_runtime::task::{Operation, ServiceDescription};
//! use specwire_protocol::discovery::ServiceAdvertisementStatus;
//!
//! let description = ServiceDescription::new("EchoService", "1.0.0").operation(Operation::new("echo"));
//! let service = AdvertisedService::new(description, "ws://127.0.0.1:8080");
//! let (presence, presence_rx) = tokio::sync::watch::channel(Presence::IDLE);
//! let advertiser = Advertiser::start(AdvertiserConfig::default(), vec![service], presence_rx)?;
//!
//! // Announced to everyone at once, not only at the next heartbeat.
//! presence.send_replace(Presence { status: ServiceAdvertisementStatus::Busy, load: 0.8 });
//!
//! advertiser.shutdown().await; // announces `Offline`
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use specwire_protocol::discovery::{
    ClientId, ClientServiceDiscoveryRequest, Message, ServiceAdvertisement,
    ServiceAdvertisementDiscoveryType, ServiceAdvertisementStatus, Timestamp, DEFAULT_PORT,
};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::socket::{
    bind_discovery_socket, decode_datagram, encode_message, loopback_broadcast,
    pause_after_receive_error, send_to_all, Counters, DiscoveryStats, RECEIVE_BUFFER_BYTES,
};
use super::Presence;
use crate::clock::now_rfc3339;
use crate::task::ServiceDescription;

/// Where and how often an [`Advertiser`] advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertiserConfig {
    /// The discovery port, bound and sent to (default 50001).
    pub port: u16,
    /// The address to bind (default `0.0.0.0`; a unicast address would not
    /// receive broadcast requests).
    pub bind: IpAddr,
    /// Where advertisements go. Empty (the default) means
    /// `127.255.255.255:port`, which reaches this host only; for a LAN add
    /// the [`interface_broadcasts`](super::interface_broadcasts).
    pub targets: Vec<SocketAddr>,
    /// Time between heartbeats (default 30 s). A change of presence is
    /// announced at once and starts a new interval.
    pub heartbeat: Duration,
}

impl AdvertiserConfig {
    /// The defaults, on `port`.
    pub fn new(port: u16) -> AdvertiserConfig {
        AdvertiserConfig {
            port,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            targets: Vec::new(),
            heartbeat: Duration::from_secs(30),
        }
    }

    /// The targets in use: [`targets`](Self::targets), or the loopback
    /// broadcast address on [`port`](Self::port) when that is empty.
    pub fn effective_targets(&self) -> Vec<SocketAddr> {
        if self.targets.is_empty() {
            vec![loopback_broadcast(self.port)]
        } else {
            self.targets.clone()
        }
    }
}

impl Default for AdvertiserConfig {
    fn default() -> AdvertiserConfig {
        AdvertiserConfig::new(DEFAULT_PORT)
    }
}

/// One service instance an [`Advertiser`] announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisedService {
    /// `serviceId`: unique per instance (1–256 characters).
    pub service_id: String,
    /// Name, version and operations (`serviceName`, `serviceVersion`,
    /// `capabilities`).
    pub description: ServiceDescription,
    /// `endpoint`: `ws://host:port` or `wss://host:port`, where clients
    /// connect.
    pub endpoint: String,
}

impl AdvertisedService {
    /// A service instance with a fresh random `serviceId`.
    pub fn new(description: ServiceDescription, endpoint: impl Into<String>) -> AdvertisedService {
        AdvertisedService::with_id(crate::clock::new_id(), description, endpoint)
    }

    /// A service instance with the given `serviceId` (e.g. one kept across
    /// restarts).
    pub fn with_id(
        service_id: impl Into<String>,
        description: ServiceDescription,
        endpoint: impl Into<String>,
    ) -> AdvertisedService {
        AdvertisedService {
            service_id: service_id.into(),
            description,
            endpoint: endpoint.into(),
        }
    }

    /// The advertisement of this service in `presence`, timestamped now.
    /// The load is clamped into 0.0–1.0 (NaN counts as 0.0), so the message
    /// stays valid whatever the provider reports. `responds_to` is the
    /// `clientId` of the request being answered; heartbeats and
    /// announcements have none.
    pub fn advertisement(
        &self,
        presence: Presence,
        responds_to: Option<&ClientId>,
    ) -> ServiceAdvertisement {
        ServiceAdvertisement {
            capabilities: self.description.capabilities(),
            discovery_type: ServiceAdvertisementDiscoveryType::ServiceAdvertisement,
            endpoint: self.endpoint.clone(),
            load: clamp_load(presence.load),
            responds_to_client_id: responds_to.cloned(),
            service_id: self.service_id.clone(),
            service_name: self.description.name.clone(),
            service_version: self.description.version.clone(),
            status: presence.status,
            timestamp: Timestamp(now_rfc3339()),
        }
    }
}

/// `load` forced into the schema's 0.0–1.0.
fn clamp_load(load: f64) -> f64 {
    if load.is_nan() {
        0.0
    } else {
        load.clamp(0.0, 1.0)
    }
}

/// A running advertiser: a tokio task on one discovery socket that
/// advertises every service of one provider.
///
/// [`shutdown`](Advertiser::shutdown) announces `Offline` and stops.
/// Dropping it stops the task without a word, which to everyone else looks
/// like a provider that was killed: its entries expire after three missed
/// heartbeats.
#[derive(Debug)]
pub struct Advertiser {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Advertiser {
    /// Binds the discovery socket and starts advertising `services` with
    /// the presence `presence` holds; the first advertisement goes out at
    /// once. If the presence sender is dropped, the last presence is kept.
    ///
    /// Fails with `InvalidInput` when there is no service, two services
    /// share a `serviceId`, the heartbeat is zero, or an advertisement
    /// would break the schema (an empty name, an endpoint that is not
    /// `ws://` or `wss://`, ...) or not fit in a datagram; otherwise with
    /// the bind error. Must be called from within a tokio runtime.
    pub fn start(
        config: AdvertiserConfig,
        services: Vec<AdvertisedService>,
        mut presence: watch::Receiver<Presence>,
    ) -> io::Result<Advertiser> {
        check(&config, &services)?;
        // Marked seen: the start-up advertisement carries it.
        let current = *presence.borrow_and_update();
        let socket = bind_discovery_socket(config.bind, config.port)?;
        let local_addr = socket.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let task = AdvertiserTask {
            own_ids: services.iter().map(|s| s.service_id.clone()).collect(),
            targets: config.effective_targets(),
            socket,
            services,
            heartbeat: config.heartbeat,
            current,
            presence: Some(presence),
            counters: Arc::clone(&counters),
        };
        tracing::debug!(%local_addr, services = task.services.len(), "advertiser started");
        Ok(Advertiser {
            local_addr,
            counters,
            stop: Some(stop),
            task: Some(tokio::spawn(task.run(stopped))),
        })
    }

    /// The address the discovery socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the advertiser received and sent so far.
    pub fn stats(&self) -> DiscoveryStats {
        self.counters.snapshot()
    }

    /// Announces `Offline` for every service (to the targets) and stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The task may already be gone (it only ends on this signal or
            // a panic); then there is nobody to tell.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "advertiser task failed");
            }
        }
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Refuses a configuration that could only produce invalid messages or
/// panic later.
fn check(config: &AdvertiserConfig, services: &[AdvertisedService]) -> io::Result<()> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    if services.is_empty() {
        return Err(invalid("an advertiser needs at least one service".into()));
    }
    if config.heartbeat.is_zero() {
        return Err(invalid("the heartbeat interval must not be zero".into()));
    }
    let mut ids = HashSet::new();
    for service in services {
        if !ids.insert(service.service_id.as_str()) {
            return Err(invalid(format!(
                "serviceId `{}` is advertised twice",
                service.service_id
            )));
        }
        // The largest variant: an answer, with the longest client id.
        let longest_client = ClientId("c".repeat(256));
        let sample = service.advertisement(Presence::IDLE, Some(&longest_client));
        encode_message(sample).map_err(|problem| {
            invalid(format!(
                "service `{}` cannot be advertised: {problem}",
                service.service_id
            ))
        })?;
    }
    Ok(())
}

/// The state of a running advertiser, owned by its task.
struct AdvertiserTask {
    socket: UdpSocket,
    targets: Vec<SocketAddr>,
    services: Vec<AdvertisedService>,
    own_ids: HashSet<String>,
    heartbeat: Duration,
    /// `None` once the sender is gone.
    presence: Option<watch::Receiver<Presence>>,
    current: Presence,
    counters: Arc<Counters>,
}

impl AdvertiserTask {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        // After a late tick the next one is a full interval later, so the
        // gap between heartbeats is never shorter than configured.
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; RECEIVE_BUFFER_BYTES];
        loop {
            tokio::select! {
                biased;
                // Whether the handle sent the signal or was dropped, stop;
                // only an explicit shutdown says goodbye.
                signal = &mut stop => {
                    if signal.is_ok() {
                        let offline = Presence {
                            status: ServiceAdvertisementStatus::Offline,
                            ..self.current
                        };
                        self.announce(offline, None, None).await;
                        tracing::debug!("advertiser stopped after announcing Offline");
                    }
                    return;
                }
                change = next_change(&mut self.presence) => match change {
                    Some(presence) => {
                        self.current = presence;
                        self.announce(presence, None, None).await;
                        heartbeat.reset();
                    }
                    None => {
                        tracing::debug!("presence sender dropped; keeping the last presence");
                        self.presence = None;
                    }
                },
                _ = heartbeat.tick() => {
                    self.announce(self.current, None, None).await;
                }
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => self.handle_datagram(&buffer, length, source).await,
                    Err(error) => pause_after_receive_error(&error).await,
                },
            }
        }
    }

    async fn handle_datagram(&self, buffer: &[u8], length: usize, source: SocketAddr) {
        Counters::bump(&self.counters.datagrams_received);
        match decode_datagram(buffer, length) {
            Err(error) => {
                Counters::bump(&self.counters.invalid_datagrams);
                tracing::debug!(%source, %error, "ignored a datagram that is not a valid discovery message");
            }
            Ok(Message::ClientServiceDiscoveryRequest(request)) => {
                self.answer(&request, source).await;
            }
            Ok(Message::ServiceAdvertisement(advertisement)) => {
                if self.own_ids.contains(&advertisement.service_id) {
                    Counters::bump(&self.counters.own_messages_ignored);
                } else {
                    Counters::bump(&self.counters.other_messages_ignored);
                    tracing::trace!(%source, service_id = %advertisement.service_id, "ignored another provider's advertisement");
                }
            }
        }
    }

    /// Answers a request at once: to every target, and by unicast to the
    /// requester, which may listen on an ephemeral port no broadcast
    /// reaches.
    async fn answer(&self, request: &ClientServiceDiscoveryRequest, source: SocketAddr) {
        tracing::debug!(%source, client_id = %request.client_id, "answering a discovery request");
        Counters::bump(&self.counters.requests_answered);
        let unicast = (!self.targets.contains(&source)).then_some(source);
        self.announce(self.current, Some(&request.client_id), unicast)
            .await;
    }

    /// Sends one advertisement per service in `presence` to the targets
    /// (and `extra`, if any).
    async fn announce(
        &self,
        presence: Presence,
        responds_to: Option<&ClientId>,
        extra: Option<SocketAddr>,
    ) {
        let mut destinations = self.targets.clone();
        destinations.extend(extra);
        for service in &self.services {
            let advertisement = service.advertisement(presence, responds_to);
            match encode_message(advertisement) {
                Ok(datagram) => {
                    let sent = send_to_all(&self.socket, &datagram, &destinations).await;
                    self.counters.record_sends(sent, destinations.len());
                }
                // `start` checked every service, so this is a bug; say so
                // rather than send something invalid.
                Err(problem) => {
                    tracing::error!(service_id = %service.service_id, %problem, "advertisement not sent");
                }
            }
        }
    }
}

/// The next presence, or `None` once the sender is dropped; never ready
/// after that (the caller clears `presence`).
async fn next_change(presence: &mut Option<watch::Receiver<Presence>>) -> Option<Presence> {
    match presence {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(*receiver.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Operation, ParamType, Parameter};
    use specwire_protocol::JsonProtocol;

    fn service(endpoint: &str) -> AdvertisedService {
        let description = ServiceDescription::new("ImageProcessingService", "1.2.0").operation(
            Operation::new("resizeImage").parameter(Parameter::required("width", ParamType::Int)),
        );
        AdvertisedService::with_id("svc-1", description, endpoint)
    }

    #[test]
    fn advertisements_validate_and_carry_the_description() {
        let advertisement = service("ws://127.0.0.1:8080").advertisement(Presence::IDLE, None);
        let bytes = encode_message(advertisement).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["serviceName"], "ImageProcessingService");
        assert_eq!(value["serviceVersion"], "1.2.0");
        assert_eq!(value["capabilities"][0]["key"], "resizeImage");
        assert_eq!(value["status"], "Online");
        assert!(value.get("respondsToClientId").is_none());
        assert!(matches!(
            Message::from_slice(&bytes),
            Ok(Message::ServiceAdvertisement(_))
        ));
    }

    #[test]
    fn load_is_clamped_into_range() {
        let svc = service("ws://h:1");
        for (given, sent) in [
            (-0.5, 0.0),
            (1.7, 1.0),
            (0.25, 0.25),
            (f64::NAN, 0.0),
            (f64::INFINITY, 1.0),
        ] {
            let presence = Presence {
                status: ServiceAdvertisementStatus::Busy,
                load: given,
            };
            let advertisement = svc.advertisement(presence, None);
            assert_eq!(advertisement.load, sent, "load {given}");
            assert!(encode_message(advertisement).is_ok());
        }
    }

    #[test]
    fn answers_name_the_client() {
        let client = ClientId("client-7".into());
        let advertisement = service("wss://h:1/x").advertisement(Presence::IDLE, Some(&client));
        let value = serde_json::to_value(&advertisement).unwrap();
        assert_eq!(value["respondsToClientId"], "client-7");
    }

    #[test]
    fn start_refuses_what_cannot_be_advertised() {
        let config = AdvertiserConfig::default();
        assert!(check(&config, &[]).is_err());
        assert!(check(&config, &[service("http://h:1")]).is_err());
        assert!(check(&config, &[service("ws://h:1"), service("ws://h:2")]).is_err());
        let unnamed = AdvertisedService::with_id("x", ServiceDescription::new("", "1"), "ws://h:1");
        assert!(check(&config, &[unnamed]).is_err());
        let zero = AdvertiserConfig {
            heartbeat: Duration::ZERO,
            ..AdvertiserConfig::default()
        };
        assert!(check(&zero, &[service("ws://h:1")]).is_err());
        assert!(check(&config, &[service("ws://h:1")]).is_ok());
    }

    #[test]
    fn empty_targets_mean_loopback_broadcast_on_the_port() {
        let config = AdvertiserConfig::new(4242);
        assert_eq!(config.effective_targets(), vec![loopback_broadcast(4242)]);
    }
}
