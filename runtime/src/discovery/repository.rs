//! The client side of discovery: a [`ServiceRepository`] asks providers to
//! advertise (at start-up, every refresh interval and on
//! [`refresh`](ServiceRepository::refresh)), keeps the latest
//! advertisement of every service instance it hears, expires instances
//! that miss three heartbeats, and [`select`](ServiceRepository::select)s
//! one for a service name and operation.
//!
//! Selection (PROFILE.md): never `Offline` or expired; `Online` before
//! `Busy` and `Degraded` (which rank the same); lowest `load`; the instance
//! must advertise the operation; round-robin among equals. The rule itself
//! is the pure function [`select_instance`].
//!
//! Entry life: an advertisement for an unknown `serviceId` adds an entry
//! ([`RepositoryEvent::Added`]); later ones replace it, with
//! [`RepositoryEvent::Updated`] when anything but the timestamp and
//! `respondsToClientId` changed. An `Offline` advertisement keeps the entry,
//! marked `Offline` and never selected ([`RepositoryEvent::Offline`]), so
//! that [`services`](ServiceRepository::services) shows it went away and a
//! restart under the same id is an update. Any entry not heard from for
//! the expiry time (3 × heartbeat) is removed ([`RepositoryEvent::Expired`]).
//! An `Offline` advertisement for an unknown instance adds nothing.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use specwire_runtime::discovery::{RepositoryConfig, ServiceRepository};
//!
//! let repository = ServiceRepository::start(RepositoryConfig::default())?;
//! match repository
//!     .wait_for("ImageProcessingService", Some("resizeImage"), Duration::from_secs(3))
//!     .await
//! {
//!     Some(instance) => println!("connect to {}", instance.endpoint()),
//!     None => println!("no instance answered"),
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use specwire_protocol::discovery::{
    ClientId, ClientServiceDiscoveryRequest, ClientServiceDiscoveryRequestDiscoveryType, Message,
    ServiceAdvertisement, ServiceAdvertisementStatus, Timestamp, DEFAULT_PORT,
};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::socket::{
    bind_discovery_socket, decode_datagram, encode_message, loopback_broadcast,
    pause_after_receive_error, send_to_all, Counters, DiscoveryStats, RECEIVE_BUFFER_BYTES,
};
use crate::clock::{new_id, now_rfc3339};

/// How many events a slow subscriber may fall behind before it sees
/// `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// Where a [`ServiceRepository`] listens and asks, and its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryConfig {
    /// The discovery port, bound and sent to (default 50001).
    pub port: u16,
    /// The address to bind (default `0.0.0.0`; a unicast address would not
    /// receive broadcast advertisements).
    pub bind: IpAddr,
    /// Where requests go. Empty (the default) means
    /// `127.255.255.255:port`, which reaches this host only; for a LAN add
    /// the [`interface_broadcasts`](super::interface_broadcasts).
    pub targets: Vec<SocketAddr>,
    /// `clientId` of the requests (default a fresh UUID).
    pub client_id: String,
    /// The providers' heartbeat interval (default 30 s).
    pub heartbeat: Duration,
    /// How long an instance may stay silent before it expires; `None` (the
    /// default) means three heartbeats.
    pub expiry: Option<Duration>,
    /// Time between requests (default 5 minutes).
    pub refresh_interval: Duration,
}

impl RepositoryConfig {
    /// The defaults, on `port`.
    pub fn new(port: u16) -> RepositoryConfig {
        RepositoryConfig {
            port,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            targets: Vec::new(),
            client_id: new_id(),
            heartbeat: Duration::from_secs(30),
            expiry: None,
            refresh_interval: Duration::from_secs(300),
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

    /// The expiry in use: [`expiry`](Self::expiry), or three heartbeats.
    pub fn effective_expiry(&self) -> Duration {
        self.expiry.unwrap_or(self.heartbeat.saturating_mul(3))
    }
}

impl Default for RepositoryConfig {
    fn default() -> RepositoryConfig {
        RepositoryConfig::new(DEFAULT_PORT)
    }
}

/// What the repository knows about one service instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntry {
    /// The latest advertisement received.
    pub advertisement: ServiceAdvertisement,
    /// Where it came from.
    pub source: SocketAddr,
    /// When it was received (for expiry).
    pub last_seen: Instant,
    /// When it was received, as wall-clock time (for display).
    pub last_seen_at: SystemTime,
}

impl ServiceEntry {
    /// An entry for `advertisement`, received from `source` just now.
    pub fn new(advertisement: ServiceAdvertisement, source: SocketAddr) -> ServiceEntry {
        ServiceEntry {
            advertisement,
            source,
            last_seen: Instant::now(),
            last_seen_at: SystemTime::now(),
        }
    }

    /// `serviceId`.
    pub fn service_id(&self) -> &str {
        &self.advertisement.service_id
    }

    /// `serviceName`.
    pub fn service_name(&self) -> &str {
        &self.advertisement.service_name
    }

    /// `endpoint`: where to connect.
    pub fn endpoint(&self) -> &str {
        &self.advertisement.endpoint
    }

    /// `status`.
    pub fn status(&self) -> ServiceAdvertisementStatus {
        self.advertisement.status
    }

    /// `load`.
    pub fn load(&self) -> f64 {
        self.advertisement.load
    }

    /// Whether the instance advertises `operation` (a capability `key`).
    pub fn offers(&self, operation: &str) -> bool {
        self.advertisement
            .capabilities
            .iter()
            .any(|capability| capability.key == operation)
    }

    /// Whether the instance has been silent for `expiry` or longer at `now`.
    pub fn is_expired(&self, now: Instant, expiry: Duration) -> bool {
        now.saturating_duration_since(self.last_seen) >= expiry
    }

    /// Whether `other` says something different about the instance:
    /// anything but the timestamp and `respondsToClientId` (which change
    /// with every message), or another source address.
    fn differs_from(&self, other: &ServiceEntry) -> bool {
        let (a, b) = (&self.advertisement, &other.advertisement);
        self.source != other.source
            || a.status != b.status
            || a.load != b.load
            || a.endpoint != b.endpoint
            || a.service_name != b.service_name
            || a.service_version != b.service_version
            || a.capabilities != b.capabilities
    }
}

/// A change in the repository, from [`ServiceRepository::subscribe`].
#[derive(Clone, Debug, PartialEq)]
pub enum RepositoryEvent {
    /// A service instance was heard for the first time (or again after it
    /// expired).
    Added(ServiceEntry),
    /// An instance's advertisement changed: status (including coming back
    /// from `Offline`), load, endpoint, version, capabilities or source.
    Updated {
        /// The entry before (boxed to keep the event small).
        previous: Box<ServiceEntry>,
        /// The entry now.
        current: ServiceEntry,
    },
    /// An instance announced `Offline`. Its entry stays, never selected,
    /// until it expires.
    Offline(ServiceEntry),
    /// An instance was silent for the expiry time and was removed.
    Expired(ServiceEntry),
}

impl RepositoryEvent {
    /// The entry the event is about (the current one for `Updated`).
    pub fn entry(&self) -> &ServiceEntry {
        match self {
            RepositoryEvent::Added(entry)
            | RepositoryEvent::Offline(entry)
            | RepositoryEvent::Expired(entry) => entry,
            RepositoryEvent::Updated { current, .. } => current,
        }
    }

    /// `serviceId` of the instance.
    pub fn service_id(&self) -> &str {
        self.entry().service_id()
    }
}

/// How good a status is for selection: lower is better; `None` is never
/// selected.
fn status_rank(status: ServiceAdvertisementStatus) -> Option<u8> {
    match status {
        ServiceAdvertisementStatus::Online => Some(0),
        ServiceAdvertisementStatus::Busy | ServiceAdvertisementStatus::Degraded => Some(1),
        ServiceAdvertisementStatus::Offline => None,
    }
}

/// Selects an instance of `service_name` from `entries` (PROFILE.md):
/// never `Offline` or expired at `now` (silent for `expiry`); the best
/// status (`Online`, then `Busy`/`Degraded` alike); among those the lowest
/// `load`; it must advertise `operation` when one is given. Instances equal
/// in status rank and load take turns: `round_robin` picks among them
/// (ordered by `serviceId`) and is advanced on every successful selection.
pub fn select_instance<'a>(
    entries: &'a [ServiceEntry],
    service_name: &str,
    operation: Option<&str>,
    now: Instant,
    expiry: Duration,
    round_robin: &mut u64,
) -> Option<&'a ServiceEntry> {
    let candidates: Vec<(u8, &ServiceEntry)> = entries
        .iter()
        .filter(|entry| entry.service_name() == service_name)
        .filter(|entry| !entry.is_expired(now, expiry))
        .filter(|entry| operation.is_none_or(|operation| entry.offers(operation)))
        .filter_map(|entry| status_rank(entry.status()).map(|rank| (rank, entry)))
        .collect();
    let best_rank = candidates.iter().map(|(rank, _)| *rank).min()?;
    let best_load = candidates
        .iter()
        .filter(|(rank, _)| *rank == best_rank)
        .map(|(_, entry)| entry.load())
        .min_by(f64::total_cmp)?;
    let mut equals: Vec<&ServiceEntry> = candidates
        .into_iter()
        .filter(|(rank, entry)| *rank == best_rank && entry.load().total_cmp(&best_load).is_eq())
        .map(|(_, entry)| entry)
        .collect();
    equals.sort_by(|a, b| a.service_id().cmp(b.service_id()));
    let index = usize::try_from(*round_robin % equals.len() as u64).unwrap_or(0);
    *round_robin = round_robin.wrapping_add(1);
    equals.get(index).copied()
}

/// A running service repository: a tokio task on one discovery socket,
/// and the entries it keeps. Dropping it (or
/// [`shutdown`](ServiceRepository::shutdown)) stops the task.
#[derive(Debug)]
pub struct ServiceRepository {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

/// What the handle and the task share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<RepositoryEvent>,
    counters: Counters,
    refresh: Notify,
    client_id: ClientId,
    expiry: Duration,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, ServiceEntry>,
    /// One round-robin counter per service name.
    round_robin: HashMap<String, u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked (every
        // update is a single insert or remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: RepositoryEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

impl ServiceRepository {
    /// Binds the discovery socket, sends the first request and starts
    /// listening.
    ///
    /// Fails with `InvalidInput` when the client id would break the schema
    /// (empty or longer than 256 characters) or the refresh interval or
    /// expiry is zero; otherwise with the bind error. Must be called from
    /// within a tokio runtime.
    pub fn start(config: RepositoryConfig) -> io::Result<ServiceRepository> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let expiry = config.effective_expiry();
        if config.refresh_interval.is_zero() || expiry.is_zero() {
            return Err(invalid(
                "the refresh interval and the expiry must not be zero".into(),
            ));
        }
        let client_id = ClientId(config.client_id.clone());
        encode_message(request(&client_id))
            .map_err(|problem| invalid(format!("unusable client id: {problem}")))?;
        let socket = bind_discovery_socket(config.bind, config.port)?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            events: broadcast::channel(EVENT_CAPACITY).0,
            counters: Counters::default(),
            refresh: Notify::new(),
            client_id,
            expiry,
        });
        let task = RepositoryTask {
            socket,
            targets: config.effective_targets(),
            refresh_interval: config.refresh_interval,
            shared: Arc::clone(&shared),
        };
        tracing::debug!(%local_addr, client_id = %shared.client_id, "service repository started");
        Ok(ServiceRepository {
            shared,
            local_addr,
            task: Some(tokio::spawn(task.run())),
        })
    }

    /// The `clientId` of this repository's requests.
    pub fn client_id(&self) -> &ClientId {
        &self.shared.client_id
    }

    /// The address the discovery socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How long an instance may stay silent before it expires.
    pub fn expiry(&self) -> Duration {
        self.shared.expiry
    }

    /// What the repository received and sent so far.
    pub fn stats(&self) -> DiscoveryStats {
        self.shared.counters.snapshot()
    }

    /// Every known, unexpired instance (including `Offline` ones), ordered
    /// by service name and id.
    pub fn services(&self) -> Vec<ServiceEntry> {
        let now = Instant::now();
        let state = self.shared.lock();
        let mut entries: Vec<ServiceEntry> = state
            .entries
            .values()
            .filter(|entry| !entry.is_expired(now, self.shared.expiry))
            .cloned()
            .collect();
        entries.sort_by(|a, b| {
            (a.service_name(), a.service_id()).cmp(&(b.service_name(), b.service_id()))
        });
        entries
    }

    /// The instance with `service_id`, if known and unexpired.
    pub fn service(&self, service_id: &str) -> Option<ServiceEntry> {
        let state = self.shared.lock();
        state
            .entries
            .get(service_id)
            .filter(|entry| !entry.is_expired(Instant::now(), self.shared.expiry))
            .cloned()
    }

    /// Selects an instance of `service_name` offering `operation` (any
    /// operation when `None`) by [`select_instance`], taking turns among
    /// equally good instances.
    pub fn select(&self, service_name: &str, operation: Option<&str>) -> Option<ServiceEntry> {
        let mut state = self.shared.lock();
        let state = &mut *state;
        let entries: Vec<ServiceEntry> = state
            .entries
            .values()
            .filter(|entry| entry.service_name() == service_name)
            .cloned()
            .collect();
        let counter = state
            .round_robin
            .entry(service_name.to_owned())
            .or_default();
        select_instance(
            &entries,
            service_name,
            operation,
            Instant::now(),
            self.shared.expiry,
            counter,
        )
        .cloned()
    }

    /// Waits until an instance can be [`select`](Self::select)ed and
    /// returns it, or `None` after `timeout`. Wakes on repository events,
    /// not by polling. Does not send a request itself: the repository
    /// asked at start-up; call [`refresh`](Self::refresh) to ask again.
    pub async fn wait_for(
        &self,
        service_name: &str,
        operation: Option<&str>,
        timeout: Duration,
    ) -> Option<ServiceEntry> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribe before looking, so an entry added in between still
        // wakes us.
        let mut events = self.subscribe();
        loop {
            if let Some(entry) = self.select(service_name, operation) {
                return Some(entry);
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_elapsed) => return None,
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    }

    /// Changes from now on: instances added, updated, gone `Offline` or
    /// expired.
    pub fn subscribe(&self) -> broadcast::Receiver<RepositoryEvent> {
        self.shared.events.subscribe()
    }

    /// Sends a `ClientServiceDiscoveryRequest` now (from the repository's
    /// task; this does not wait for it).
    pub fn refresh(&self) {
        self.shared.refresh.notify_one();
    }

    /// Stops the task and waits until it has released the socket.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // An abort is the expected outcome; anything else is logged.
            if let Err(error) = task.await {
                if !error.is_cancelled() {
                    tracing::warn!(%error, "service repository task failed");
                }
            }
        }
    }
}

impl Drop for ServiceRepository {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A request from `client_id`, timestamped now.
fn request(client_id: &ClientId) -> ClientServiceDiscoveryRequest {
    ClientServiceDiscoveryRequest {
        client_id: client_id.clone(),
        discovery_type: ClientServiceDiscoveryRequestDiscoveryType::ClientServiceDiscoveryRequest,
        timestamp: Timestamp(now_rfc3339()),
    }
}

/// The repository's task: owns the socket.
struct RepositoryTask {
    socket: UdpSocket,
    targets: Vec<SocketAddr>,
    refresh_interval: Duration,
    shared: Arc<Shared>,
}

impl RepositoryTask {
    async fn run(self) {
        let mut refresh = tokio::time::interval(self.refresh_interval);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; RECEIVE_BUFFER_BYTES];
        loop {
            let next_expiry = self.next_expiry();
            tokio::select! {
                // The first tick is immediate: the start-up request.
                _ = refresh.tick() => self.send_request().await,
                () = self.shared.refresh.notified() => {
                    self.send_request().await;
                    refresh.reset();
                }
                () = sleep_until(next_expiry) => self.expire_due(Instant::now()),
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => self.handle_datagram(&buffer, length, source),
                    Err(error) => pause_after_receive_error(&error).await,
                },
            }
        }
    }

    async fn send_request(&self) {
        match encode_message(request(&self.shared.client_id)) {
            Ok(datagram) => {
                tracing::debug!(client_id = %self.shared.client_id, "sending a discovery request");
                let sent = send_to_all(&self.socket, &datagram, &self.targets).await;
                self.shared.counters.record_sends(sent, self.targets.len());
            }
            // `start` checked the client id, so this is a bug.
            Err(problem) => tracing::error!(%problem, "discovery request not sent"),
        }
    }

    /// When the next entry expires, if any.
    fn next_expiry(&self) -> Option<Instant> {
        let state = self.shared.lock();
        state
            .entries
            .values()
            .map(|entry| entry.last_seen + self.shared.expiry)
            .min()
    }

    /// Removes the entries silent for the expiry time at `now`.
    fn expire_due(&self, now: Instant) {
        let mut state = self.shared.lock();
        let due: Vec<String> = state
            .entries
            .values()
            .filter(|entry| entry.is_expired(now, self.shared.expiry))
            .map(|entry| entry.service_id().to_owned())
            .collect();
        for service_id in due {
            if let Some(entry) = state.entries.remove(&service_id) {
                tracing::debug!(%service_id, service_name = %entry.service_name(), "service instance expired");
                self.shared.emit(RepositoryEvent::Expired(entry));
            }
        }
    }

    fn handle_datagram(&self, buffer: &[u8], length: usize, source: SocketAddr) {
        let counters = &self.shared.counters;
        Counters::bump(&counters.datagrams_received);
        match decode_datagram(buffer, length) {
            Err(error) => {
                Counters::bump(&counters.invalid_datagrams);
                tracing::debug!(%source, %error, "ignored a datagram that is not a valid discovery message");
            }
            Ok(Message::ClientServiceDiscoveryRequest(request)) => {
                if request.client_id == self.shared.client_id {
                    Counters::bump(&counters.own_messages_ignored);
                } else {
                    Counters::bump(&counters.other_messages_ignored);
                }
            }
            Ok(Message::ServiceAdvertisement(advertisement)) => {
                Counters::bump(&counters.advertisements_accepted);
                // Expire first, so an instance silent for too long comes
                // back as `Added`, the same as if the timer had run.
                self.expire_due(Instant::now());
                self.accept(ServiceEntry::new(advertisement, source));
            }
        }
    }

    /// Takes in an advertisement and emits what it changed.
    fn accept(&self, current: ServiceEntry) {
        let mut state = self.shared.lock();
        let service_id = current.service_id().to_owned();
        let offline = current.status() == ServiceAdvertisementStatus::Offline;
        let Some(previous) = state.entries.get(&service_id).cloned() else {
            if offline {
                tracing::debug!(%service_id, "ignored Offline from an unknown instance");
                return;
            }
            tracing::debug!(%service_id, service_name = %current.service_name(), endpoint = %current.endpoint(), "service instance added");
            state.entries.insert(service_id, current.clone());
            self.shared.emit(RepositoryEvent::Added(current));
            return;
        };
        let changed = previous.differs_from(&current);
        state.entries.insert(service_id.clone(), current.clone());
        if !changed {
            return;
        }
        if offline && previous.status() != ServiceAdvertisementStatus::Offline {
            tracing::debug!(%service_id, "service instance went Offline");
            self.shared.emit(RepositoryEvent::Offline(current));
        } else {
            self.shared.emit(RepositoryEvent::Updated {
                previous: Box::new(previous),
                current,
            });
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::discovery::{Capability, ServiceAdvertisementDiscoveryType};

    const EXPIRY: Duration = Duration::from_secs(90);

    fn entry(
        id: &str,
        name: &str,
        status: ServiceAdvertisementStatus,
        load: f64,
        operations: &[&str],
    ) -> ServiceEntry {
        let advertisement = ServiceAdvertisement {
            capabilities: operations
                .iter()
                .map(|key| Capability {
                    key: (*key).to_owned(),
                    settings: Vec::new(),
                })
                .collect(),
            discovery_type: ServiceAdvertisementDiscoveryType::ServiceAdvertisement,
            endpoint: format!("ws://{id}:1"),
            load,
            responds_to_client_id: None,
            service_id: id.to_owned(),
            service_name: name.to_owned(),
            service_version: "1".to_owned(),
            status,
            timestamp: Timestamp("2025-07-02T11:45:05Z".to_owned()),
        };
        ServiceEntry::new(advertisement, "127.0.0.1:50001".parse().unwrap())
    }

    fn pick(
        entries: &[ServiceEntry],
        operation: Option<&str>,
        counter: &mut u64,
    ) -> Option<String> {
        select_instance(entries, "S", operation, Instant::now(), EXPIRY, counter)
            .map(|entry| entry.service_id().to_owned())
    }

    use ServiceAdvertisementStatus::{Busy, Degraded, Offline, Online};

    #[test]
    fn online_comes_before_busy_and_degraded_whatever_the_load() {
        let entries = [
            entry("busy", "S", Busy, 0.0, &["op"]),
            entry("degraded", "S", Degraded, 0.0, &["op"]),
            entry("online", "S", Online, 0.9, &["op"]),
        ];
        assert_eq!(
            pick(&entries, Some("op"), &mut 0).as_deref(),
            Some("online")
        );
    }

    #[test]
    fn busy_and_degraded_rank_alike_and_are_used_when_nothing_is_online() {
        let entries = [
            entry("busy", "S", Busy, 0.5, &["op"]),
            entry("degraded", "S", Degraded, 0.2, &["op"]),
        ];
        assert_eq!(pick(&entries, None, &mut 0).as_deref(), Some("degraded"));
    }

    #[test]
    fn lowest_load_wins_within_a_status() {
        let entries = [
            entry("a", "S", Online, 0.7, &["op"]),
            entry("b", "S", Online, 0.1, &["op"]),
            entry("c", "S", Online, 0.4, &["op"]),
        ];
        assert_eq!(pick(&entries, None, &mut 0).as_deref(), Some("b"));
    }

    #[test]
    fn the_operation_must_be_advertised() {
        let entries = [
            entry("idle", "S", Online, 0.0, &["other"]),
            entry("loaded", "S", Online, 0.9, &["op", "other"]),
        ];
        assert_eq!(
            pick(&entries, Some("op"), &mut 0).as_deref(),
            Some("loaded")
        );
        assert_eq!(pick(&entries, Some("missing"), &mut 0), None);
        assert_eq!(pick(&entries, None, &mut 0).as_deref(), Some("idle"));
    }

    #[test]
    fn only_the_requested_service_name_is_considered() {
        let entries = [entry("other", "T", Online, 0.0, &["op"])];
        assert_eq!(pick(&entries, None, &mut 0), None);
    }

    #[test]
    fn equals_take_turns_and_worse_instances_are_skipped() {
        let entries = [
            entry("c", "S", Online, 0.2, &["op"]),
            entry("a", "S", Online, 0.2, &["op"]),
            entry("worse-load", "S", Online, 0.3, &["op"]),
            entry("worse-status", "S", Busy, 0.0, &["op"]),
            entry("b", "S", Online, 0.2, &["op"]),
        ];
        let mut counter = 0;
        let picks: Vec<String> = (0..6)
            .filter_map(|_| pick(&entries, Some("op"), &mut counter))
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
        assert_eq!(counter, 6);
    }

    #[test]
    fn offline_and_expired_instances_are_never_selected() {
        let mut stale = entry("stale", "S", Online, 0.0, &["op"]);
        let now = Instant::now();
        stale.last_seen = now.checked_sub(EXPIRY).unwrap();
        let entries = [stale, entry("gone", "S", Offline, 0.0, &["op"])];
        let mut counter = 0;
        assert!(select_instance(&entries, "S", None, now, EXPIRY, &mut counter).is_none());
        assert_eq!(
            counter, 0,
            "a failed selection does not advance the counter"
        );
        let fresh = entry("fresh", "S", Degraded, 1.0, &["op"]);
        let entries = [entries[0].clone(), entries[1].clone(), fresh];
        let chosen = select_instance(&entries, "S", None, now, EXPIRY, &mut counter);
        assert_eq!(chosen.map(ServiceEntry::service_id), Some("fresh"));
    }

    #[test]
    fn changes_are_told_apart_from_repeats() {
        let first = entry("a", "S", Online, 0.1, &["op"]);
        let mut repeat = first.clone();
        repeat.advertisement.timestamp = Timestamp("2025-07-02T11:46:05Z".into());
        repeat.advertisement.responds_to_client_id = Some(ClientId("c".into()));
        assert!(!first.differs_from(&repeat));
        let mut loaded = first.clone();
        loaded.advertisement.load = 0.2;
        assert!(first.differs_from(&loaded));
        let mut moved = first.clone();
        moved.advertisement.endpoint = "ws://elsewhere:1".into();
        assert!(first.differs_from(&moved));
    }

    #[test]
    fn expiry_defaults_to_three_heartbeats() {
        let mut config = RepositoryConfig::new(1);
        config.heartbeat = Duration::from_millis(200);
        assert_eq!(config.effective_expiry(), Duration::from_millis(600));
        config.expiry = Some(Duration::from_secs(1));
        assert_eq!(config.effective_expiry(), Duration::from_secs(1));
        assert_eq!(config.effective_targets(), vec![loopback_broadcast(1)]);
    }
}
