//! `specwire serve uart-gateway`: the gateway between a serial-attached
//! mesh root module and local clients.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use specwire_runtime::net::ServerConfig;
use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
use specwire_runtime::uart::table::DataTypeTable;

use crate::duration::parse_duration;
use crate::signals::wait_for_stop_signal;

#[derive(clap::Args)]
pub(crate) struct UartGatewayArgs {
    /// The module's serial port (`/dev/ttyUSB0`, or a pty link from
    /// `specwire simulate uart-module`). Without it the machine's serial
    /// ports are listed: the only one is used; with several, name one.
    #[arg(long, value_name = "PATH")]
    serial: Option<PathBuf>,
    /// The serial port's baud rate.
    #[arg(long, default_value_t = 115_200, value_name = "BAUD")]
    baud: u32,
    /// The local API's address (frames over TCP). Other than loopback
    /// exposes the module to the network.
    #[arg(long, default_value = "127.0.0.1:50010", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// The data-type table (`{"dataTypes": [...]}`, the rows of
    /// schema/uart/protocol.json's `dataTypes`) when the deployment's
    /// differs from the schema's.
    #[arg(long, value_name = "FILE")]
    data_types: Option<PathBuf>,
    /// Values kept per node and data type.
    #[arg(long, default_value_t = 100, value_name = "N")]
    history: usize,
    /// How long the module may take to answer a relayed command before the
    /// client gets `F module timeout`.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    module_timeout: Duration,
    /// Also serve the WebSocket monitor: a read-only JSON feed of every
    /// `M` frame and node change for dashboards and browsers (the
    /// `monitor` schema). `--monitor` alone listens on 127.0.0.1:50011; a
    /// plain HTTP GET there answers the current snapshot.
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:50011")]
    monitor: Option<SocketAddr>,
}

/// The serial port to use: the one given, or the only one the machine has.
fn pick_port(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path);
    }
    let ports = serialport::available_ports()
        .map_err(|error| format!("cannot list serial ports ({error}); name one with --serial"))?;
    match ports.as_slice() {
        [] => Err("no serial port found; name one with --serial PATH".to_owned()),
        [only] => {
            eprintln!(
                "specwire: using {}, the only serial port found",
                only.port_name
            );
            Ok(PathBuf::from(&only.port_name))
        }
        several => {
            let names: Vec<&str> = several.iter().map(|port| port.port_name.as_str()).collect();
            Err(format!(
                "{} serial ports found ({}); name one with --serial",
                names.len(),
                names.join(", ")
            ))
        }
    }
}

pub(super) async fn serve_uart_gateway(args: UartGatewayArgs) -> Result<(), String> {
    let serial = pick_port(args.serial)?;
    let mut config = GatewayConfig::new(&serial);
    config.link.baud = args.baud;
    config.link.module_timeout = args.module_timeout;
    config.server.bind = args.bind;
    config.history = args.history;
    config.monitor = args.monitor.map(ServerConfig::new);
    if let Some(path) = &args.data_types {
        config.table = DataTypeTable::load(path).map_err(|error| error.to_string())?;
    }
    let rows = config.table.rows().count();
    let gateway = Gateway::start(config)
        .await
        .map_err(|error| match args.monitor {
            Some(monitor) => format!("cannot listen on {} and {monitor}: {error}", args.bind),
            None => format!("cannot listen on {}: {error}", args.bind),
        })?;
    eprintln!(
        "specwire: module on {} at {} baud; {rows} data type(s); try `specwire uart --target {} nstat A`",
        serial.display(),
        args.baud,
        gateway.local_addr()
    );
    println!("listening on tcp://{}", gateway.local_addr());
    if let Some(monitor) = gateway.monitor_addr() {
        println!("monitor on ws://{monitor}/");
    }
    let _ = std::io::stdout().flush();

    wait_for_stop_signal().await;
    let link = gateway.link_counters();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    eprintln!(
        "specwire: stopped after {} frame(s) in, {} out, {} dropped (bad escapes, cut short), {} module timeout(s), {} request(s)",
        load(&link.frames_in),
        load(&link.frames_out),
        load(&link.frames_dropped),
        load(&link.timeouts),
        load(&gateway.api_counters().requests)
    );
    gateway.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
