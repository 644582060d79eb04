//! The alternatives provider's UDP discovery side (seed 000 §4, PROFILE.md
//! discovery): one socket on the shared discovery port, heartbeats,
//! answers to requests (to the loopback broadcast address and by unicast
//! to the requester) and `Offline` at shutdown.
//!
//! It only ever sends to `127.255.255.255` and to the address a request
//! came from, never to `255.255.255.255` or a real interface.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{tasks, Shared, Switch, SERVICE};

/// Reaches every socket bound to the port on this host, and nothing else.
const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);
/// One JSON object per datagram, at most 64 KiB.
const DATAGRAM: usize = 64 * 1024;
/// Longest `stop` waits for the `Offline` advertisement to go out.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The running discovery side.
pub(super) struct Advertiser {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Advertiser {
    /// Binds 0.0.0.0:`port` (shared with every other participant) before
    /// returning, so requests sent after `start` are seen.
    pub(super) fn start(shared: Arc<Shared>, port: u16) -> io::Result<Advertiser> {
        let socket = bind(port)?;
        let (stop, stopping) = oneshot::channel();
        let task = tokio::spawn(advertise(shared, socket, port, stopping));
        Ok(Advertiser { stop, task })
    }

    /// Broadcasts `Offline` once, then frees the port.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The discovery socket: wildcard address, SO_REUSEADDR + SO_REUSEPORT so
/// several participants share the port, SO_BROADCAST to send to
/// `127.255.255.255`.
fn bind(port: u16) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// The advertisement now: `status` overrides the computed one (`Offline`),
/// `responds_to` is the requester's client id on an answer.
pub(super) fn advertisement(
    shared: &Shared,
    status: Option<&str>,
    responds_to: Option<&str>,
) -> Value {
    let running = shared.tasks.running();
    let status = status.unwrap_or(match shared.switch() {
        Switch::Degraded => "Degraded",
        Switch::BusyWhenLoaded if running > 0 => "Busy",
        _ => "Online",
    });
    let mut message = Map::new();
    message.insert("discoveryType".into(), "ServiceAdvertisement".into());
    message.insert("serviceId".into(), shared.service_id.as_str().into());
    message.insert("serviceName".into(), SERVICE.into());
    message.insert("serviceVersion".into(), "0.1.0".into());
    message.insert("endpoint".into(), shared.endpoint.as_str().into());
    message.insert("capabilities".into(), tasks::capabilities());
    message.insert("status".into(), status.into());
    message.insert("load".into(), shared.tasks.load().clamp(0.0, 1.0).into());
    message.insert("timestamp".into(), shared.timestamp().into());
    if let Some(client) = responds_to {
        message.insert("respondsToClientId".into(), client.into());
    }
    if shared.switch() == Switch::ExtraFields {
        message.insert("x-alt-trace".into(), json!({"hop": 1}));
    }
    Value::Object(message)
}

/// The `clientId` of a `ClientServiceDiscoveryRequest`; None for anything
/// else (our own advertisements come back too). An id that could not be
/// echoed validly (empty, over 256 characters) is not answered.
fn request_client(datagram: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(datagram).ok()?;
    if value.get("discoveryType")?.as_str()? != "ClientServiceDiscoveryRequest" {
        return None;
    }
    let client = value.get("clientId")?.as_str()?;
    (!client.is_empty() && client.chars().count() <= 256).then(|| client.to_owned())
}

/// Announces itself at start-up, then heartbeats; answers requests at
/// once; says `Offline` when told to stop.
async fn advertise(
    shared: Arc<Shared>,
    socket: UdpSocket,
    port: u16,
    mut stopping: oneshot::Receiver<()>,
) {
    let broadcast = SocketAddr::V4(SocketAddrV4::new(LOOPBACK_BROADCAST, port));
    let send = |value: &Value, to: SocketAddr| {
        let bytes = value.to_string().into_bytes();
        let socket = &socket;
        // A failed send is a lost datagram, as UDP allows.
        async move {
            let _ = socket.send_to(&bytes, to).await;
        }
    };
    // The start-up announcement, before any request is answered.
    send(&advertisement(&shared, None, None), broadcast).await;
    let period = shared.config.heartbeat.max(Duration::from_millis(1));
    let first = tokio::time::Instant::now() + period;
    let mut heartbeat = tokio::time::interval_at(first, period);
    // After a stall, the next heartbeat comes a full period later, not in a burst.
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut buffer = vec![0u8; DATAGRAM];
    loop {
        tokio::select! {
            _ = heartbeat.tick() => send(&advertisement(&shared, None, None), broadcast).await,
            received = socket.recv_from(&mut buffer) => {
                let Ok((length, source)) = received else { continue };
                let Some(client) = request_client(&buffer[..length]) else { continue };
                let answer = advertisement(&shared, None, Some(&client));
                send(&answer, broadcast).await;
                send(&answer, source).await;
            }
            _ = &mut stopping => break,
        }
    }
    send(&advertisement(&shared, Some("Offline"), None), broadcast).await;
}
