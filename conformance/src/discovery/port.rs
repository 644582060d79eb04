//! Whether the discovery port can be shared, seen from the provider's own
//! host: the profile says every participant binds it with `SO_REUSEADDR`
//! and `SO_REUSEPORT`, and that cannot be seen on the wire.
//!
//! On Linux, a UDP bind beside existing sockets succeeds when both sockets
//! have `SO_REUSEADDR`, or both have `SO_REUSEPORT` and the same owner. So
//! a probe socket with *only* `SO_REUSEADDR` binds exactly when every
//! socket on the port has `SO_REUSEADDR`, and one with *only*
//! `SO_REUSEPORT` exactly when every socket on the port has `SO_REUSEPORT`
//! (and belongs to the suite's user). One catch: the kernel walks the
//! port's sockets newest first and lets a `SO_REUSEPORT` socket in at the
//! first one with `SO_REUSEPORT` of the same user, without looking
//! further. So the suite closes its own socket on the port while probing,
//! and a participant that bound the port *after* the target, with
//! `SO_REUSEPORT`, can hide the target's lack of it (the `SO_REUSEADDR`
//! probe has no such blind spot).
//!
//! When a probe is refused, [`holders`] names the sockets on the port and,
//! where `/proc` shows it, the processes holding them.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// The one reuse option a probe socket sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// `SO_REUSEADDR` alone.
    Address,
    /// `SO_REUSEPORT` alone.
    Port,
}

impl Reuse {
    /// The option's name.
    pub fn name(self) -> &'static str {
        match self {
            Reuse::Address => "SO_REUSEADDR",
            Reuse::Port => "SO_REUSEPORT",
        }
    }
}

/// Binds a UDP socket with only `reuse` to `address:port`, and closes it
/// again: `Ok` when the port can be shared that way.
pub fn probe(address: IpAddr, port: u16, reuse: Reuse) -> io::Result<()> {
    let address = SocketAddr::new(address, port);
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    match reuse {
        Reuse::Address => socket.set_reuse_address(true)?,
        Reuse::Port => set_reuse_port(&socket)?,
    }
    socket.bind(&address.into())
}

#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn set_reuse_port(_: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

/// Whether `ip` is an address of this host: a socket can be bound to it.
pub fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A socket bound to the discovery port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its local address, as the kernel shows it.
    pub local: String,
    /// The user owning it.
    pub uid: u32,
    /// The process holding it, when `/proc` shows it: `pid (command)`.
    pub process: Option<String>,
    /// Whether the suite itself holds it.
    pub own: bool,
}

impl Holder {
    /// `ADDRESS (uid U, pid P (command))`, for reasons.
    pub fn describe(&self) -> String {
        format!(
            "{} (uid {}{})",
            self.local,
            self.uid,
            self.process
                .as_ref()
                .map_or_else(String::new, |process| format!(", pid {process}"))
        )
    }
}

/// The UDP sockets bound to `port` on this host (Linux; elsewhere none are
/// known).
pub fn holders(port: u16) -> Vec<Holder> {
    #[cfg(target_os = "linux")]
    {
        linux::holders(port)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        Vec::new()
    }
}

/// The user the suite runs as, when it can be told.
pub fn own_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::Holder;

    /// One line of `/proc/net/udp{,6}`: local address, port, uid, inode.
    pub(super) fn parse_line(line: &str) -> Option<(String, u16, u32, u64)> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, port) = fields.get(1)?.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let uid = fields.get(7)?.parse().ok()?;
        let inode = fields.get(9)?.parse().ok()?;
        Some((address_text(address)?, port, uid, inode))
    }

    /// The kernel prints an address as 32-bit words read in host order:
    /// each word's native bytes are the address's bytes.
    fn address_text(hex: &str) -> Option<String> {
        let words: Vec<u32> = (0..hex.len() / 8)
            .map(|index| u32::from_str_radix(hex.get(index * 8..index * 8 + 8)?, 16).ok())
            .collect::<Option<_>>()?;
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_ne_bytes()).collect();
        match bytes.len() {
            4 => Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()),
            16 => {
                let octets: [u8; 16] = bytes.try_into().ok()?;
                Some(format!("[{}]", Ipv6Addr::from(octets)))
            }
            _ => None,
        }
    }

    /// Socket inode → `pid (command)`, for the processes `/proc` lets us
    /// look into.
    fn socket_owners(wanted: &[u64]) -> HashMap<u64, String> {
        let mut owners = HashMap::new();
        let Ok(processes) = std::fs::read_dir("/proc") else {
            return owners;
        };
        for process in processes.flatten() {
            let name = process.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let target = target.to_string_lossy();
                let inode = target
                    .strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|inode| inode.parse::<u64>().ok());
                if let Some(inode) = inode.filter(|inode| wanted.contains(inode)) {
                    let command = std::fs::read_to_string(process.path().join("comm"))
                        .map(|command| command.trim().to_owned())
                        .unwrap_or_default();
                    owners.insert(inode, format!("{pid} ({command})"));
                }
            }
        }
        owners
    }

    pub(super) fn holders(port: u16) -> Vec<Holder> {
        let mut found = Vec::new();
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            found.extend(
                text.lines()
                    .skip(1)
                    .filter_map(parse_line)
                    .filter(|(_, bound, _, _)| *bound == port),
            );
        }
        let inodes: Vec<u64> = found.iter().map(|(_, _, _, inode)| *inode).collect();
        let owners = socket_owners(&inodes);
        let own = format!("{} (", std::process::id());
        found
            .into_iter()
            .map(|(local, port, uid, inode)| {
                let process = owners.get(&inode).cloned();
                Holder {
                    local: format!("{local}:{port}"),
                    uid,
                    own: process.as_ref().is_some_and(|p| p.starts_with(&own)),
                    process,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_lines_parse() {
        let line = "  812: 00000000:C351 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0";
        assert_eq!(
            linux::parse_line(line),
            Some(("0.0.0.0".into(), 50001, 0, 4242))
        );
        let loopback = "  1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 7 2 0 0";
        assert_eq!(
            linux::parse_line(loopback),
            Some(("127.0.0.1".into(), 53, 1000, 7))
        );
        assert_eq!(linux::parse_line("garbage"), None);
    }

    #[test]
    fn probes_tell_which_option_a_socket_lacks() {
        let wildcard = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        // A socket with SO_REUSEADDR only, on a port of its own.
        let holder = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        holder.set_reuse_address(true).unwrap();
        holder
            .bind(&SocketAddr::new(wildcard, 0).into())
            .expect("bind");
        let port = holder
            .local_addr()
            .unwrap()
            .as_socket()
            .expect("an IP socket")
            .port();
        assert!(probe(wildcard, port, Reuse::Address).is_ok());
        let refused = probe(wildcard, port, Reuse::Port).expect_err("it lacks SO_REUSEPORT");
        assert_eq!(refused.kind(), io::ErrorKind::AddrInUse);
        #[cfg(target_os = "linux")]
        {
            let holders = holders(port);
            let mine = holders.iter().find(|holder| holder.own).expect("listed");
            assert!(mine.describe().contains(&port.to_string()), "{mine:?}");
            assert_eq!(Some(mine.uid), own_uid());
        }
    }

    #[test]
    fn local_addresses() {
        assert!(is_local(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(is_local(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
        // TEST-NET-3: never a local address.
        assert!(!is_local(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))));
    }
}
