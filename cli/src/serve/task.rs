//! `specwire serve task`: the reference task provider
//! (ImageProcessingService and DiagnosticsService), advertised over UDP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use specwire_runtime::discovery::{AdvertisedService, Advertiser, AdvertiserConfig};
use specwire_runtime::task::{AccessPolicy, Limits, Provider, ProviderConfig};

use super::TlsArgs;
use crate::discovery_args::DiscoveryArgs;
use crate::duration::parse_duration;
use crate::file_limit::raise_file_limit;
use crate::signals::wait_for_stop_signal;

/// What every server takes: where it listens, TLS, and its limits.
///
/// The display orders keep each flag where `serve task --help` always
/// showed it, between the subcommand's own flags.
#[derive(clap::Args)]
pub(super) struct ServerArgs {
    /// Address to listen on. Other than loopback exposes the provider to
    /// the network.
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        value_name = "ADDR:PORT",
        display_order = 0
    )]
    bind: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Messages per second per connection before RATE_LIMITED (0: no limit).
    #[arg(long, default_value_t = 1000.0, value_name = "N", display_order = 23)]
    rate_limit: f64,
    /// Largest message accepted, in bytes (bigger ones get MESSAGE_TOO_LARGE).
    #[arg(long, default_value_t = specwire_protocol::task::MAX_MESSAGE_BYTES, value_name = "BYTES", display_order = 24)]
    max_message: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 16_384, value_name = "N", display_order = 25)]
    max_connections: usize,
    /// On shutdown, how long running tasks may take to finish.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION", display_order = 27)]
    grace: Duration,
}

impl ServerArgs {
    /// The connection and message limits.
    fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message,
            messages_per_second: (self.rate_limit > 0.0).then_some(self.rate_limit),
            burst: self.rate_limit.clamp(1.0, 1_000_000.0) as u32,
            max_connections: self.max_connections,
            ..Limits::default()
        }
    }
}

#[derive(clap::Args)]
pub(super) struct TaskArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Host name or address put in the advertised endpoint (default: the
    /// bound address; needed when binding 0.0.0.0).
    #[arg(long, value_name = "HOST", display_order = 1)]
    advertise_host: Option<String>,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Do not advertise over UDP.
    #[arg(long, display_order = 15)]
    no_discovery: bool,
    /// Time between heartbeat advertisements.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION", display_order = 16)]
    heartbeat: Duration,
    /// Require `Authenticate` with this API key (repeatable).
    #[arg(long = "api-key", value_name = "KEY", display_order = 17)]
    api_keys: Vec<String>,
    /// Per-client ACL: a JSON file mapping client ids to
    /// ["Service/operation", ...] grants (`*` matches any part).
    #[arg(long, value_name = "FILE", display_order = 18)]
    acl: Option<PathBuf>,
    /// Tasks run at once; more wait as Queued (default: CPU count).
    #[arg(long, value_name = "N", display_order = 22)]
    capacity: Option<usize>,
    /// Confine ImageProcessingService's inputPath/outputPath to this
    /// directory (relative paths are taken from it; paths outside get
    /// FORBIDDEN). Without it the service reads and writes anywhere this
    /// user may: fine on loopback, risky on a network.
    #[arg(long, value_name = "DIR", display_order = 26)]
    files_root: Option<PathBuf>,
}

fn access_policy(args: &TaskArgs) -> Result<AccessPolicy, String> {
    let mut policy = AccessPolicy::api_keys(args.api_keys.iter().cloned());
    if let Some(path) = &args.acl {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("--acl {}: {error}", path.display()))?;
        policy = policy
            .with_acl_json(&text)
            .map_err(|error| format!("--acl {}: {error}", path.display()))?;
    }
    Ok(policy)
}

pub(super) async fn serve_task(args: TaskArgs) -> Result<(), String> {
    raise_file_limit();
    let server = &args.server;
    let defaults = ProviderConfig::default();
    let config = ProviderConfig {
        bind: server.bind,
        access: access_policy(&args)?,
        limits: server.limits(),
        tls: server.tls.config()?,
        capacity: args.capacity.unwrap_or(defaults.capacity).max(1),
        ..defaults
    };
    if let Some(root) = &args.files_root {
        if !root.is_dir() {
            return Err(format!("--files-root {}: not a directory", root.display()));
        }
    } else if !args.server.bind.ip().is_loopback() {
        eprintln!(
            "specwire: warning: serving {} without --files-root lets any client read and overwrite image files anywhere this user can",
            args.server.bind
        );
    }
    let services = specwire_services::reference_services_confined(args.files_root.clone());
    let provider = Provider::start(config, services)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.server.bind))?;
    let endpoint = match &args.advertise_host {
        Some(host) => provider.endpoint_for(host),
        None => provider.endpoint(),
    };
    let services = provider.services();
    let advertiser = if args.no_discovery {
        None
    } else {
        let targets = args.discovery.targets()?;
        let config = AdvertiserConfig {
            port: args.discovery.discovery_port,
            bind: args.discovery.discovery_bind,
            targets: targets.clone(),
            heartbeat: args.heartbeat,
        };
        let advertised = services
            .iter()
            .map(|service| AdvertisedService::new(service.clone(), endpoint.clone()))
            .collect();
        let advertiser =
            Advertiser::start(config, advertised, provider.presence()).map_err(|error| {
                format!(
                    "discovery on UDP port {}: {error}",
                    args.discovery.discovery_port
                )
            })?;
        let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
        eprintln!(
            "specwire: advertising on UDP {} to {} every {}",
            args.discovery.discovery_port,
            targets.join(", "),
            humantime::format_duration(args.heartbeat)
        );
        Some(advertiser)
    };
    for service in &services {
        let operations: Vec<&str> = service
            .operations
            .iter()
            .map(|op| op.name.as_str())
            .collect();
        eprintln!(
            "specwire: {} {}: {}",
            service.name,
            service.version,
            operations.join(", ")
        );
    }
    if !args.api_keys.is_empty() {
        eprintln!(
            "specwire: clients must authenticate ({} API key(s))",
            args.api_keys.len()
        );
    }
    // The one line scripts and tests wait for.
    println!("listening on {}", provider.endpoint());
    let _ = std::io::stdout().flush();

    wait_for_stop_signal().await;
    eprintln!(
        "specwire: shutting down (running tasks get {})",
        humantime::format_duration(args.server.grace)
    );
    let stats = provider.stats();
    provider.shutdown(args.server.grace).await;
    if let Some(advertiser) = advertiser {
        advertiser.shutdown().await;
    }
    eprintln!(
        "specwire: stopped after {} task run(s), {} error reply(ies)",
        stats.runs, stats.errors
    );
    Ok(())
}
