//! `specwire simulate devices`: a swarm of virtual devices against a hub,
//! with a live summary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use specwire_runtime::device::swarm::{Swarm, SwarmConfig, SwarmStats};

use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Virtual devices on a device hub, as the seed's socket-simulator.
    ///
    /// Each registers as `<prefix>-<n>`, sends sensor readings
    /// (`temp=21.53;hum=40.2;batt=97;led=000000`) at --rate per second,
    /// answers the hub's pings, and applies commands (`led`, `say`,
    /// `reset`; any other is acknowledged), showing it in an
    /// `applied=<command>` line and in its later readings. A dropped
    /// connection is retried with backoff. Shows progress and a live
    /// summary; stops after --duration or on Ctrl-C.
    ///
    /// Example: `specwire simulate devices --target ws://127.0.0.1:5000
    /// --count 1000 --rate 2 --duration 1m`
    Devices(DevicesArgs),
}

#[derive(clap::Args)]
struct DevicesArgs {
    /// The hub, ws://HOST:PORT.
    #[arg(long, value_name = "URL")]
    target: String,
    /// How many devices.
    #[arg(long, default_value_t = 10, value_name = "N")]
    count: usize,
    /// Data lines per second per device (`2`, `0.5`, or `2/s`).
    #[arg(long, default_value = "1", value_parser = parse_rate, value_name = "R/s")]
    rate: f64,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Device ids are PREFIX-0001, PREFIX-0002, ...
    #[arg(long, default_value = "sim", value_name = "PREFIX")]
    prefix: String,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1000.0 => Ok(rate),
        _ => Err(format!(
            "`{text}`: a rate above 0 and at most 1000 per second, like 2 or 0.5/s"
        )),
    }
}

pub fn run(args: Args) -> ExitCode {
    let What::Devices(args) = args.what;
    if args.count == 0 {
        eprintln!("specwire simulate devices: --count must be at least 1");
        return ExitCode::from(2);
    }
    crate::file_limit::raise_file_limit();
    crate::run_async("specwire simulate devices", simulate(args))
}

fn summary(stats: &SwarmStats, count: usize, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    format!(
        "{}/{count} connected, {} lines sent ({:.0}/s), {} commands applied, {} pings answered, {} reconnects, {} errors",
        stats.connected,
        stats.sent,
        stats.sent as f64 / seconds,
        stats.commands,
        stats.pings,
        stats.failures,
        stats.errors
    )
}

async fn simulate(args: DevicesArgs) -> ExitCode {
    let config = SwarmConfig {
        rate: args.rate,
        prefix: args.prefix.clone(),
        ..SwarmConfig::new(args.target.clone(), args.count)
    };
    let started = Instant::now();
    let swarm = Swarm::start(config);
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar = indicatif::ProgressBar::new(args.count as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} devices connected {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let deadline = args
        .duration
        .map(|duration| tokio::time::Instant::now() + duration);
    let stop = crate::signals::wait_for_stop_signal();
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(Duration::from_millis(if terminal { 250 } else { 5000 }));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => break,
            () = async { match deadline { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => break,
        }
        let stats = swarm.stats();
        let line = summary(&stats, args.count, started.elapsed());
        if terminal {
            bar.set_position(stats.connected as u64);
            bar.set_message(line);
        } else {
            eprintln!("specwire: {line}");
        }
    }
    let stats = swarm.stats();
    bar.finish_and_clear();
    swarm.stop().await;
    println!("{}", summary(&stats, args.count, started.elapsed()));
    if stats.sent == 0 {
        eprintln!(
            "specwire simulate devices: no device got to send anything (is the hub at {}?)",
            args.target
        );
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
