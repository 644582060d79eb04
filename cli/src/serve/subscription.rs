//! `specwire serve subscription`: the event hub.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use specwire_runtime::net::Limits;
use specwire_runtime::subscription::{Hub, HubConfig};

use super::TlsArgs;
use crate::duration::parse_duration;
use crate::file_limit::raise_file_limit;
use crate::secret::SecretArgs;
use crate::signals::wait_for_stop_signal;

#[derive(clap::Args)]
pub(crate) struct HubArgs {
    /// Address to listen on. Other than loopback exposes the hub to the
    /// network.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    #[command(flatten)]
    secret: SecretArgs,
    /// How often every connection gets a JSON `ping`.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    ping_interval: Duration,
    /// Connections per user (the token's `sub`).
    #[arg(long, default_value_t = 10, value_name = "N")]
    user_limit: usize,
    /// Connections per IP address.
    #[arg(long, default_value_t = 50, value_name = "N")]
    ip_limit: usize,
    /// Connections in all.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_connections: usize,
    /// Messages per second a connection may send before `Rate limit
    /// exceeded` (0: no limit).
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    rate_limit: f64,
    /// Messages that may wait for one subscriber; one that falls further
    /// behind is closed with 1013.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    queue: usize,
    #[command(flatten)]
    tls: TlsArgs,
    /// On shutdown, how long connections get to close.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
}

pub(super) async fn serve_hub(args: HubArgs) -> Result<(), String> {
    raise_file_limit();
    let secret = args.secret.load()?;
    let defaults = HubConfig::default();
    let config = HubConfig {
        bind: args.bind,
        secret,
        ping_interval: args.ping_interval,
        user_limit: args.user_limit,
        ip_limit: args.ip_limit,
        max_connections: args.max_connections,
        rate_limit: (args.rate_limit > 0.0).then_some(args.rate_limit),
        queue: args.queue.max(1),
        tls: args.tls.config()?,
        limits: Limits {
            // Above the profile's 1 MiB messages are refused with an error;
            // frames this large close the connection.
            max_frame_bytes: 16 * 1024 * 1024,
            ..defaults.limits.clone()
        },
        ..defaults
    };
    let hub = Hub::start(config)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.bind))?;
    eprintln!(
        "specwire: limits {} per user, {} per IP, {} in all; {} messages/s per connection; ping every {}",
        args.user_limit,
        args.ip_limit,
        args.max_connections,
        if args.rate_limit > 0.0 { args.rate_limit.to_string() } else { "unlimited".to_owned() },
        humantime::format_duration(args.ping_interval)
    );
    // The one line scripts and tests wait for.
    println!("listening on {}", hub.endpoint());
    let _ = std::io::stdout().flush();

    wait_for_stop_signal().await;
    let stats = hub.stats();
    eprintln!(
        "specwire: shutting down ({} connection(s) open)",
        stats.connections
    );
    hub.shutdown(args.grace).await;
    eprintln!(
        "specwire: stopped after {} event(s) published, {} delivered, {} slow subscriber(s) closed, {} refused token(s)",
        stats.published, stats.delivered, stats.slow_closed, stats.refused_auth
    );
    Ok(())
}
