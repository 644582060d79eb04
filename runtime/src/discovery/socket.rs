//! The UDP side of discovery: binding the shared discovery port, sending one
//! datagram to a list of targets, decoding received datagrams, and the
//! traffic counters both the advertiser and the repository expose.
//!
//! Every participant on a host binds the same port on the wildcard address
//! with `SO_REUSEADDR` and `SO_REUSEPORT`, so providers and clients can run
//! side by side; broadcasts reach all of them, while a unicast datagram to
//! the shared port reaches only one (the kernel picks it). A socket bound to
//! `127.0.0.1` would not receive broadcasts at all, hence `0.0.0.0`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::net::{IpAddr, Ipv4Addr};
//! use specwire_runtime::discovery::{bind_discovery_socket, loopback_broadcast, send_to_all};
//!
//! let socket = bind_discovery_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50001)?;
//! let request = br#"{"discoveryType":"ClientServiceDiscoveryRequest","clientId":"c1","timestamp":"2025-07-02T11:45:00Z"}"#;
//! send_to_all(&socket, request, &[loopback_broadcast(50001)]).await;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use specwire_protocol::discovery::{Message, MAX_MESSAGE_BYTES};
use specwire_protocol::JsonProtocol;
use specwire_wire::json::DecodeError;
use tokio::net::UdpSocket;

/// Size of a receive buffer: one byte more than the largest UDP payload, so
/// a datagram longer than [`MAX_MESSAGE_BYTES`] (possible over IPv6) shows
/// up as too long instead of being silently truncated into garbage.
pub const RECEIVE_BUFFER_BYTES: usize = 65_536;

/// The kernel receive buffer we ask for: a few full-size datagrams, so a
/// burst of answers is not dropped while the task is busy. Best effort.
const SOCKET_RECEIVE_BUFFER: usize = 1 << 20;

/// Binds the discovery socket: `bind:port` with `SO_REUSEADDR`,
/// `SO_REUSEPORT` (where the platform has it) and, for IPv4,
/// `SO_BROADCAST`; non-blocking and registered with tokio.
///
/// `bind` is normally `0.0.0.0` ([`Ipv4Addr::UNSPECIFIED`]): a socket
/// bound to a unicast address such as `127.0.0.1` does not receive
/// broadcasts. Port 0 picks an ephemeral port.
///
/// Must be called from within a tokio runtime.
pub fn bind_discovery_socket(bind: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let address = SocketAddr::new(bind, port);
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    socket.set_reuse_port(true)?;
    if bind.is_ipv4() {
        socket.set_broadcast(true)?;
    }
    // A smaller buffer only means datagrams may be dropped under a burst,
    // which discovery tolerates (heartbeats repeat), so failure is fine.
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_RECEIVE_BUFFER) {
        tracing::debug!(%error, "could not enlarge the discovery receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// `127.255.255.255:port`: the loopback broadcast address, which reaches
/// every discovery socket bound to the wildcard address on this host. The
/// default target of the advertiser and the repository.
pub fn loopback_broadcast(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)), port)
}

/// The IPv4 broadcast addresses of this host's interfaces that are not
/// down, without loopback (use [`loopback_broadcast`] for that) and
/// point-to-point links (which have none), deduplicated, in interface
/// order. Add the discovery port to get targets for a LAN.
pub fn interface_broadcasts() -> io::Result<Vec<Ipv4Addr>> {
    use if_addrs::{IfAddr, IfOperStatus};
    let mut broadcasts = Vec::new();
    for interface in if_addrs::get_if_addrs()? {
        // Linux reports many working virtual interfaces as `Unknown`, so
        // only the states that certainly mean "down" are skipped.
        let down = matches!(
            interface.oper_status,
            IfOperStatus::Down | IfOperStatus::NotPresent | IfOperStatus::LowerLayerDown
        );
        if down || interface.is_loopback() || interface.is_p2p() {
            continue;
        }
        if let IfAddr::V4(address) = &interface.addr {
            if let Some(broadcast) = address.broadcast {
                if !broadcasts.contains(&broadcast) {
                    broadcasts.push(broadcast);
                }
            }
        }
    }
    Ok(broadcasts)
}

/// Sends `datagram` to every target and returns how many sends succeeded.
/// A failure for one target is logged (`warn`) and does not stop the
/// others: one unreachable network must not silence discovery on the rest.
pub async fn send_to_all(socket: &UdpSocket, datagram: &[u8], targets: &[SocketAddr]) -> usize {
    let mut sent = 0;
    for target in targets {
        match socket.send_to(datagram, target).await {
            Ok(_) => sent += 1,
            Err(error) => tracing::warn!(%target, %error, "discovery datagram not sent"),
        }
    }
    sent
}

/// Why a received datagram was dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatagramError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("datagram of {0} bytes or more is longer than {MAX_MESSAGE_BYTES}")]
    TooLong(usize),
    /// Not JSON, not a discovery message, or breaking its schema.
    #[error(transparent)]
    Invalid(#[from] DecodeError),
}

/// Decodes and validates one received datagram (`length` bytes of `buffer`).
pub(crate) fn decode_datagram(buffer: &[u8], length: usize) -> Result<Message, DatagramError> {
    if length > MAX_MESSAGE_BYTES {
        return Err(DatagramError::TooLong(length));
    }
    let bytes = buffer.get(..length).unwrap_or(buffer);
    Ok(Message::from_slice(bytes)?)
}

/// Serializes `message` for sending, after checking it against its schema
/// and the size limit: nothing invalid leaves this crate. The error says
/// what is wrong, for the caller to report.
pub(crate) fn encode_message(message: impl Into<Message>) -> Result<Vec<u8>, String> {
    let message = message.into();
    let value = serde_json::to_value(&message).map_err(|error| error.to_string())?;
    Message::recognise(&value, None).map_err(|error| error.to_string())?;
    let bytes = serde_json::to_vec(&value).map_err(|error| error.to_string())?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{} of {} bytes is longer than the {MAX_MESSAGE_BYTES} a datagram can carry",
            message.name(),
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Backs off briefly after a failed receive, so a socket error that repeats
/// (it should not, but some platforms report ICMP errors on receive) cannot
/// turn the task into a busy loop.
pub(crate) async fn pause_after_receive_error(error: &io::Error) {
    tracing::warn!(%error, "discovery receive failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// What a discovery participant did with its traffic, since it started.
/// Read with [`Advertiser::stats`](super::Advertiser::stats) or
/// [`ServiceRepository::stats`](super::ServiceRepository::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Datagrams received, whatever they held.
    pub datagrams_received: u64,
    /// Datagrams dropped because they were not a valid discovery message:
    /// not JSON, not a known `discoveryType`, breaking the schema, or too
    /// long.
    pub invalid_datagrams: u64,
    /// Valid messages this participant sent itself and heard back (its own
    /// broadcasts loop back to it).
    pub own_messages_ignored: u64,
    /// Valid messages meant for the other role: advertisements an
    /// advertiser hears, requests of other clients a repository hears.
    pub other_messages_ignored: u64,
    /// Requests answered (advertiser).
    pub requests_answered: u64,
    /// Advertisements taken into the repository (repository).
    pub advertisements_accepted: u64,
    /// Datagrams sent, counting each target separately.
    pub datagrams_sent: u64,
    /// Sends that failed, counting each target separately.
    pub send_errors: u64,
}

/// The live counters behind [`DiscoveryStats`], shared between a
/// participant's task and its handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub datagrams_received: AtomicU64,
    pub invalid_datagrams: AtomicU64,
    pub own_messages_ignored: AtomicU64,
    pub other_messages_ignored: AtomicU64,
    pub requests_answered: AtomicU64,
    pub advertisements_accepted: AtomicU64,
    pub datagrams_sent: AtomicU64,
    pub send_errors: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a [`send_to_all`] of `sent` successes out of `attempted`.
    pub fn record_sends(&self, sent: usize, attempted: usize) {
        self.datagrams_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        self.send_errors
            .fetch_add(attempted.saturating_sub(sent) as u64, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> DiscoveryStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DiscoveryStats {
            datagrams_received: read(&self.datagrams_received),
            invalid_datagrams: read(&self.invalid_datagrams),
            own_messages_ignored: read(&self.own_messages_ignored),
            other_messages_ignored: read(&self.other_messages_ignored),
            requests_answered: read(&self.requests_answered),
            advertisements_accepted: read(&self.advertisements_accepted),
            datagrams_sent: read(&self.datagrams_sent),
            send_errors: read(&self.send_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn two_sockets_share_a_port_and_both_get_a_broadcast() {
        let port = free_port();
        let wildcard = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let first = bind_discovery_socket(wildcard, port).unwrap();
        let second = bind_discovery_socket(wildcard, port).unwrap();
        let sender = bind_discovery_socket(wildcard, 0).unwrap();
        let targets = [loopback_broadcast(port)];
        assert_eq!(send_to_all(&sender, b"hello", &targets).await, 1);
        for socket in [&first, &second] {
            let mut buffer = [0u8; 16];
            let received =
                tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
                    .await
                    .expect("broadcast within 5 s")
                    .unwrap();
            assert_eq!(&buffer[..received.0], b"hello");
        }
    }

    #[tokio::test]
    async fn a_failed_target_does_not_stop_the_others() {
        let receiver = bind_discovery_socket(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).unwrap();
        let sender = bind_discovery_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap();
        // An IPv6 target on an IPv4 socket fails at once.
        let bad: SocketAddr = "[::1]:9".parse().unwrap();
        let good = receiver.local_addr().unwrap();
        assert_eq!(send_to_all(&sender, b"x", &[bad, good]).await, 1);
        let mut buffer = [0u8; 4];
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(5), receiver.recv_from(&mut buffer))
                .await
                .expect("datagram within 5 s")
                .unwrap();
        assert_eq!(&buffer[..length], b"x");
    }

    #[test]
    fn decode_rejects_garbage_and_overlong_datagrams() {
        assert!(matches!(
            decode_datagram(b"not json", 8),
            Err(DatagramError::Invalid(DecodeError::NotJson(_)))
        ));
        assert!(matches!(
            decode_datagram(br#"{"discoveryType":"ServiceAdvertisement"}"#, 40),
            Err(DatagramError::Invalid(_))
        ));
        let long = vec![b' '; RECEIVE_BUFFER_BYTES];
        assert!(matches!(
            decode_datagram(&long, RECEIVE_BUFFER_BYTES),
            Err(DatagramError::TooLong(_))
        ));
        let request = br#"{"discoveryType":"ClientServiceDiscoveryRequest","clientId":"c","timestamp":"2025-07-02T11:45:00Z"}"#;
        assert!(matches!(
            decode_datagram(request, request.len()),
            Ok(Message::ClientServiceDiscoveryRequest(_))
        ));
    }

    #[test]
    fn interface_broadcasts_lists_no_loopback() {
        let broadcasts = interface_broadcasts().unwrap();
        assert!(broadcasts.iter().all(|address| !address.is_loopback()));
    }
}
