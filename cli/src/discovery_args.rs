//! Discovery options shared by `serve`, `discover` and `task assign`.

use std::net::{IpAddr, SocketAddr};

use specwire_runtime::discovery::{interface_broadcasts, loopback_broadcast};

/// Where discovery datagrams go and on which port.
#[derive(clap::Args, Clone, Debug)]
pub struct DiscoveryArgs {
    /// UDP discovery port, shared by every provider and client on the network.
    #[arg(long, default_value_t = specwire_protocol::discovery::DEFAULT_PORT, value_name = "PORT")]
    pub discovery_port: u16,
    /// Where to send discovery datagrams (repeatable): an address
    /// (`192.168.1.255`, port = --discovery-port), `ADDR:PORT`, or
    /// `interfaces` for the broadcast address of every IPv4 interface.
    /// Default: 127.255.255.255, which reaches this host only.
    #[arg(long = "discovery-target", value_name = "ADDR")]
    pub discovery_targets: Vec<String>,
    /// Address the discovery socket binds (must receive broadcasts).
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
    pub discovery_bind: IpAddr,
}

impl DiscoveryArgs {
    /// The target list, resolved.
    pub fn targets(&self) -> Result<Vec<SocketAddr>, String> {
        let port = self.discovery_port;
        if self.discovery_targets.is_empty() {
            return Ok(vec![loopback_broadcast(port)]);
        }
        let mut targets = Vec::new();
        for target in &self.discovery_targets {
            if target == "interfaces" {
                let found = interface_broadcasts()
                    .map_err(|error| format!("listing network interfaces: {error}"))?;
                if found.is_empty() {
                    return Err(
                        "--discovery-target interfaces: no IPv4 interface has a broadcast address"
                            .into(),
                    );
                }
                targets.extend(
                    found
                        .into_iter()
                        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port)),
                );
            } else if let Ok(address) = target.parse::<SocketAddr>() {
                targets.push(address);
            } else if let Ok(ip) = target.parse::<IpAddr>() {
                targets.push(SocketAddr::new(ip, port));
            } else {
                return Err(format!(
                    "--discovery-target `{target}` is not an address, ADDR:PORT or `interfaces`"
                ));
            }
        }
        Ok(targets)
    }
}
