//! `specwire serve device`: the device hub and its web console.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use specwire_runtime::device::{DeviceHub, DeviceHubConfig, Registry};
use specwire_runtime::net::Limits;

use super::TlsArgs;
use crate::duration::parse_duration;
use crate::file_limit::raise_file_limit;
use crate::signals::wait_for_stop_signal;

#[derive(clap::Args)]
pub(crate) struct DeviceArgs {
    /// Address to listen on. Other than loopback exposes the hub (and its
    /// console) to the network.
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// The command registry (`commands.json`): a file or an http(s):// URL,
    /// loaded once at start-up.
    #[arg(long, value_name = "FILE|URL")]
    registry: String,
    /// How often each device gets the text `ping`.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    ping_interval: Duration,
    /// A device silent this long is dropped.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    stale_timeout: Duration,
    /// Lines per second a connection may send before `error:rate limit
    /// exceeded` (0: no limit).
    #[arg(long, default_value_t = 200.0, value_name = "N")]
    rate_limit: f64,
    /// Connections in all.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    max_connections: usize,
    /// Connections per IP address.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    ip_limit: usize,
    /// Lines that may wait for one connection; one that falls further
    /// behind is closed with 1013.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    queue: usize,
    #[command(flatten)]
    tls: TlsArgs,
    /// On shutdown, how long connections get to close.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
}

pub(super) async fn serve_device(args: DeviceArgs) -> Result<(), String> {
    raise_file_limit();
    let (registry, warnings) = Registry::load(&args.registry)
        .await
        .map_err(|error| error.to_string())?;
    for warning in &warnings {
        eprintln!("specwire: warning: {}: {warning}", args.registry);
    }
    let count = registry.commands().count();
    let defaults = DeviceHubConfig::new(registry);
    let config = DeviceHubConfig {
        bind: args.bind,
        ping_interval: args.ping_interval,
        stale_timeout: args.stale_timeout,
        tls: args.tls.config()?,
        limits: Limits {
            messages_per_second: (args.rate_limit > 0.0).then_some(args.rate_limit),
            burst: args.rate_limit.clamp(1.0, 1_000_000.0) as u32,
            max_connections: args.max_connections,
            max_connections_per_ip: args.ip_limit,
            max_queued: args.queue.max(1),
            ..defaults.limits.clone()
        },
        ..defaults
    };
    let hub = DeviceHub::start(config)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.bind))?;
    eprintln!(
        "specwire: {count} command(s) from {}; ping every {}, stale after {}",
        args.registry,
        humantime::format_duration(args.ping_interval),
        humantime::format_duration(args.stale_timeout)
    );
    eprintln!("specwire: web console at {}", hub.console_url());
    // The one line scripts and tests wait for.
    println!("listening on {}", hub.endpoint());
    let _ = std::io::stdout().flush();

    wait_for_stop_signal().await;
    let stats = hub.stats();
    hub.shutdown(args.grace).await;
    eprintln!(
        "specwire: stopped after {} registration(s), {} data line(s), {} command(s), {} stale device(s) dropped",
        stats.registrations, stats.data_lines, stats.commands, stats.stale_dropped
    );
    Ok(())
}
