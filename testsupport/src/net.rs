//! Ports for tests: each test binds port 0, and each discovery test gets
//! a private discovery port so that parallel tests never hear each other.

use std::net::UdpSocket;

/// A UDP port on loopback nobody uses now (bound, read, released): a
/// private discovery port for one test.
pub fn free_udp_port() -> u16 {
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket");
    probe.local_addr().expect("the probe's address").port()
}
