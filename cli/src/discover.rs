//! `specwire discover`: list the task services that answer on UDP
//! discovery, once or live.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::json;
use specwire_runtime::discovery::{
    RepositoryConfig, RepositoryEvent, ServiceEntry, ServiceRepository,
};
use tokio::sync::broadcast::error::RecvError;

use crate::discovery_args::DiscoveryArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// How long to collect answers before printing (without --watch).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    wait: Duration,
    /// Stop collecting as soon as this many services are known.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Keep running and show every change (a live table on a terminal,
    /// one line per event otherwise) until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// The providers' heartbeat interval; entries expire after three
    /// missed heartbeats.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    heartbeat: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire discover", async {
        discover(args).await.unwrap_or_else(|error| {
            eprintln!("specwire discover: {error}");
            ExitCode::from(2)
        })
    })
}

async fn discover(args: Args) -> Result<ExitCode, String> {
    let config = RepositoryConfig {
        port: args.discovery.discovery_port,
        bind: args.discovery.discovery_bind,
        targets: args.discovery.targets()?,
        heartbeat: args.heartbeat,
        ..RepositoryConfig::default()
    };
    let repository = ServiceRepository::start(config)
        .map_err(|error| format!("UDP port {}: {error}", args.discovery.discovery_port))?;
    if args.watch {
        watch(&repository, args.format).await;
        repository.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    // Collect answers for --wait (the request went out at start-up), or
    // until --count services are known.
    let enough = async {
        let Some(count) = args.count else {
            return std::future::pending().await;
        };
        let mut events = repository.subscribe();
        while repository.services().len() < count {
            if let Err(RecvError::Closed) = events.recv().await {
                return std::future::pending().await;
            }
        }
    };
    tokio::select! {
        () = tokio::time::sleep(args.wait) => {}
        () = enough => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let services = sorted(repository.services());
    repository.shutdown().await;
    print_services(&services, args.format);
    if services.is_empty() {
        eprintln!(
            "specwire discover: no service answered within {} on UDP port {}",
            humantime::format_duration(args.wait),
            args.discovery.discovery_port
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn sorted(mut services: Vec<ServiceEntry>) -> Vec<ServiceEntry> {
    services.sort_by(|a, b| {
        (a.service_name(), a.service_id()).cmp(&(b.service_name(), b.service_id()))
    });
    services
}

async fn watch(repository: &ServiceRepository, format: Format) {
    let live = format == Format::Table && std::io::stdout().is_terminal();
    let mut events = repository.subscribe();
    // Redraw at least every second on a terminal so "last seen" stays true.
    let mut redraw = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = redraw.tick(), if live => draw(repository),
            event = events.recv() => match event {
                Ok(event) if live => { let _ = event; draw(repository) }
                Ok(event) => print_event(&event, format),
                Err(RecvError::Lagged(missed)) => eprintln!("specwire discover: missed {missed} events"),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn draw(repository: &ServiceRepository) {
    let services = sorted(repository.services());
    let mut out = std::io::stdout().lock();
    // Clear the screen and home the cursor, then the table.
    let _ = write!(out, "\x1b[2J\x1b[H");
    let _ = writeln!(
        out,
        "specwire discover --watch ({} services, Ctrl-C to stop)\n",
        services.len()
    );
    let _ = write!(out, "{}", table(&services));
    let _ = out.flush();
}

fn print_event(event: &RepositoryEvent, format: Format) {
    let (kind, entry) = match event {
        RepositoryEvent::Added(entry) => ("added", entry),
        RepositoryEvent::Updated { current, .. } => ("updated", current),
        RepositoryEvent::Offline(entry) => ("offline", entry),
        RepositoryEvent::Expired(entry) => ("expired", entry),
    };
    match format {
        Format::Json => println!("{}", json!({"event": kind, "service": entry_json(entry)})),
        Format::Table => println!(
            "{kind:<8} {} {} {} {:?} load {:.2}",
            entry.service_name(),
            entry.service_id(),
            entry.endpoint(),
            entry.status(),
            entry.load()
        ),
    }
    let _ = std::io::stdout().flush();
}

fn entry_json(entry: &ServiceEntry) -> serde_json::Value {
    json!({
        "serviceName": entry.service_name(),
        "serviceId": entry.service_id(),
        "serviceVersion": entry.advertisement.service_version,
        "endpoint": entry.endpoint(),
        "status": entry.advertisement.status.to_string(),
        "load": entry.load(),
        "operations": operations(entry),
        "lastSeen": humantime::format_rfc3339_millis(entry.last_seen_at).to_string(),
        "source": entry.source.to_string(),
    })
}

fn operations(entry: &ServiceEntry) -> Vec<String> {
    entry
        .advertisement
        .capabilities
        .iter()
        .map(|capability| capability.key.clone())
        .collect()
}

fn print_services(services: &[ServiceEntry], format: Format) {
    match format {
        Format::Json => {
            let list: Vec<_> = services.iter().map(entry_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        Format::Table => print!("{}", table(services)),
    }
}

fn ago(at: SystemTime) -> String {
    let elapsed = SystemTime::now().duration_since(at).unwrap_or_default();
    format!("{:.1}s ago", elapsed.as_secs_f64())
}

/// The services as an aligned text table.
pub(crate) fn table(services: &[ServiceEntry]) -> String {
    let header = [
        "NAME",
        "ID",
        "ENDPOINT",
        "STATUS",
        "LOAD",
        "OPERATIONS",
        "LAST SEEN",
    ];
    let rows: Vec<[String; 7]> = services
        .iter()
        .map(|entry| {
            [
                entry.service_name().to_owned(),
                entry.service_id().to_owned(),
                entry.endpoint().to_owned(),
                entry.advertisement.status.to_string(),
                format!("{:.2}", entry.load()),
                operations(entry).join(","),
                ago(entry.last_seen_at),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header, &mut out);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells, &mut out);
    }
    out
}
