//! `specwire simulate devices`: a swarm of virtual devices against a hub,
//! with a live summary. `specwire simulate uart-module`: a uart root module
//! on a pseudo-terminal, for a gateway to open as its serial port.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use specwire_runtime::device::swarm::{Swarm, SwarmConfig, SwarmStats};
use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig, SimulatorStats};

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
    /// A uart mesh root module on a pseudo-terminal, as a gateway's serial
    /// port (PROFILE.md, "uart (seed 004)").
    ///
    /// Links the pty's slave at --pty-link (a stale symlink there is
    /// replaced, anything else refused; the link goes on exit) and prints
    /// `module on PATH` when ready. Open that path as the serial port (any
    /// baud rate; raw, 8 bits). The module answers every frame with one
    /// `S` or `F len msg` frame, in order: `SEND-`/`SENDI` to a node and
    /// `BCAST 0x0000` -> `S`, to an unknown node -> `F`; `RST-R` -> `S`,
    /// then `M RST` and a `NOD` per node; `CLEAN` -> `S`; `STATE` -> `S A`;
    /// `NINFO` -> `S count (addr uuid)*`; anything else -> `F`. It sends
    /// `M NOD` per node at start (source 0x0000), `M DATA_UPDATE` from every
    /// node each --data-interval (every data type of the schema's table),
    /// `M NET` each --net-interval. Nodes are 0x0001..=N, UUIDs from --seed.
    ///
    /// --slow-node 0x0002:3 confirms `SENDI` to node 2 only after 3 s (past
    /// a gateway's 2 s module timeout); later commands wait their turn.
    /// --noise 0.001 corrupts that share of the bytes the module sends (a
    /// flipped bit or a dropped byte), so the gateway must resynchronise.
    /// Runs until Ctrl-C or SIGTERM, then prints its counters on stderr.
    ///
    /// Example: `specwire simulate uart-module --pty-link /tmp/uart-module
    /// --nodes 5 --data-interval 500ms --slow-node 3:2.5 --noise 0.001`
    UartModule(UartModuleArgs),
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

#[derive(clap::Args)]
struct UartModuleArgs {
    /// Where to link the pty: the path a gateway opens (e.g. /tmp/uart-module).
    #[arg(long, value_name = "PATH")]
    pty_link: std::path::PathBuf,
    /// Nodes in the mesh, addresses 0x0001..=N (at most 255).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=255))]
    nodes: u16,
    /// How often every node sends a DATA_UPDATE (`1s`, `250ms`).
    #[arg(long, default_value = "1s", value_parser = parse_interval, value_name = "DURATION")]
    data_interval: Duration,
    /// How often the root sends NET (`5s`).
    #[arg(long, default_value = "5s", value_parser = parse_interval, value_name = "DURATION")]
    net_interval: Duration,
    /// Share of the module's output bytes corrupted, 0 to 1 (`0.001`, or `0.1%`).
    #[arg(long, default_value = "0", value_parser = parse_noise, value_name = "RATE")]
    noise: f64,
    /// Delay SENDI confirmations to one node: ADDR:SECONDS (`0x0002:3`, `2:2.5s`).
    #[arg(long, value_parser = parse_slow_node, value_name = "ADDR:SECONDS")]
    slow_node: Option<(u16, Duration)>,
    /// Seeds the node UUIDs, the readings and the noise (the same seed, the same run).
    #[arg(long, default_value_t = 1, value_name = "N")]
    seed: u64,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        interval if interval.is_zero() => Err(format!("`{text}`: an interval above zero")),
        interval => Ok(interval),
    }
}

fn parse_noise(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&(rate / scale)) => Ok(rate / scale),
        _ => Err(format!(
            "`{text}`: a probability from 0 to 1 (0.001) or a percentage (0.1%)"
        )),
    }
}

fn parse_slow_node(text: &str) -> Result<(u16, Duration), String> {
    let usage = || format!("`{text}`: ADDR:SECONDS, like 0x0002:3 or 2:2.5s");
    let (addr, delay) = text.split_once(':').ok_or_else(usage)?;
    let addr = match addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => addr.parse::<u16>(),
    }
    .map_err(|_| usage())?;
    let delay = parse_duration(delay).map_err(|_| usage())?;
    Ok((addr, delay))
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
    let args = match args.what {
        What::Devices(args) => args,
        What::UartModule(args) => {
            return crate::run_async("specwire simulate uart-module", simulate_uart_module(args))
        }
    };
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

async fn simulate_uart_module(args: UartModuleArgs) -> ExitCode {
    let config = SimulatorConfig {
        nodes: args.nodes,
        data_interval: args.data_interval,
        net_interval: args.net_interval,
        noise: args.noise,
        slow_node: args.slow_node,
        seed: args.seed,
        ..SimulatorConfig::new(args.pty_link.clone())
    };
    let simulator = match ModuleSimulator::start(config) {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!(
                "specwire simulate uart-module: cannot start on {}: {error}",
                args.pty_link.display()
            );
            return ExitCode::from(if error.kind() == std::io::ErrorKind::InvalidInput {
                2
            } else {
                1
            });
        }
    };
    println!("module on {}", simulator.link().display());
    eprintln!(
        "specwire: {} nodes ({}), pty {}; Ctrl-C stops",
        simulator.nodes().len(),
        simulator
            .nodes()
            .iter()
            .map(|node| format!("{:#06x} {}", node.addr, node.uuid))
            .collect::<Vec<_>>()
            .join(", "),
        simulator.tty_path().display()
    );
    crate::signals::wait_for_stop_signal().await;
    let stats = simulator.stats();
    simulator.stop().await;
    eprintln!("{}", uart_summary(&stats));
    ExitCode::SUCCESS
}

fn uart_summary(stats: &SimulatorStats) -> String {
    let c = &stats.commands;
    let m = &stats.messages;
    format!(
        "specwire simulate uart-module: {} commands answered ({} S, {} F): \
         SEND- {}, SENDI {}, BCAST {}, RST-R {}, CLEAN {}, STATE {}, NINFO {}, rejected {}; \
         {} M frames sent (NOD {}, DATA_UPDATE {}, NET {}, RST {}), {} dropped while the line was backed up; \
         {} frames received ({} bad); {} bytes sent, {} corrupted ({} flipped, {} dropped)",
        c.total(),
        stats.succeeded,
        stats.failed,
        c.send,
        c.send_tracked,
        c.broadcast,
        c.restart_root,
        c.clean,
        c.state,
        c.network_info,
        c.rejected,
        m.total(),
        m.node_connected,
        m.data_update,
        m.network_status,
        m.root_reset,
        stats.messages_dropped,
        stats.frames_received,
        stats.frames_rejected,
        stats.bytes_sent,
        stats.bytes_corrupted(),
        stats.bytes_flipped,
        stats.bytes_dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uart_module_arguments() {
        assert_eq!(parse_noise("0.001"), Ok(0.001));
        assert_eq!(parse_noise("10%"), Ok(0.1));
        assert!(parse_noise("1.5").is_err() && parse_noise("-0.1").is_err());
        assert_eq!(parse_slow_node("0x0002:3"), Ok((2, Duration::from_secs(3))));
        assert_eq!(
            parse_slow_node("7:2.5s"),
            Ok((7, Duration::from_millis(2500)))
        );
        assert!(parse_slow_node("2").unwrap_err().contains("ADDR:SECONDS"));
        assert!(parse_slow_node("0x10000:1").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
