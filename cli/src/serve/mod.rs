//! `specwire serve FAMILY`: run a family's reference server until Ctrl-C
//! or SIGTERM. Each prints `listening on URL` on stdout once ready (the
//! line scripts and tests wait for); everything else goes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod chat;
mod device;
mod subscription;
mod task;
mod uart;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    family: Family,
}

#[derive(clap::Subcommand)]
enum Family {
    /// Serve the task family: the reference ImageProcessingService
    /// (resizeImage, applyFilter, convertFormat on real image files) and
    /// DiagnosticsService (noop, echo, sleep, fail), advertised over UDP
    /// discovery.
    ///
    /// Prints `listening on ws://ADDR` once ready. Ctrl-C (or SIGTERM)
    /// stops gracefully: running tasks get up to --grace to finish, the
    /// rest are cancelled, `Offline` is advertised and connections are
    /// closed with the close handshake.
    Task(task::TaskArgs),
    /// Serve the subscription family: the event hub.
    ///
    /// Clients connect to /ws/experiments/{id}, /ws/tasks/{id},
    /// /ws/projects/{id} or /ws/user with an HS256 JWT (`?token=` or
    /// `Authorization: Bearer`; `specwire token` makes one), subscribe to
    /// more resources by message, and get every event routed to them
    /// (task → experiment → project → user; worker → system; system → all).
    /// Events come from admin connections (token claim `role: admin`,
    /// `specwire publish`).
    ///
    /// The secret comes from --secret-file, else --secret (visible in
    /// `ps`: for tests), else the SPECWIRE_JWT_SECRET environment variable.
    /// Prints `listening on ws://ADDR` once ready; Ctrl-C (or SIGTERM)
    /// closes every connection with the close handshake.
    Subscription(subscription::HubArgs),
    /// Serve the device family: the device hub and its web console.
    ///
    /// Devices connect over WebSocket and register with `id:<deviceId>`;
    /// any other line from a device is data, relayed to every subscriber
    /// (`s`) as `<deviceId>:<data>`; `cmd:<target>:<command>:<parameters>`
    /// goes to one device or `all` when the registry (--registry, a file or
    /// an http(s):// URL) names the command. The same port serves the web
    /// console to a browser at http://ADDR/.
    ///
    /// Prints `listening on ws://ADDR` once ready; Ctrl-C (or SIGTERM)
    /// closes every connection with the close handshake.
    Device(device::DeviceArgs),
    /// Serve the chat family: JSON requests over raw TCP.
    ///
    /// Clients send `join_chat`, `send_message`, `get_users` and
    /// `leave_chat` as JSON objects (back to back or one per line, split
    /// over reads or several per read); each gets one response, in
    /// request order. Messages and joins/leaves are broadcast to the other
    /// joined clients; a client that disconnects without `leave_chat` is
    /// announced as having left. Parse errors, unknown methods and bad
    /// params get `{"error","code"}` with JSON-RPC codes; the connection
    /// stays open. Talk to it with `specwire chat`.
    ///
    /// Prints `listening on tcp://ADDR` once ready; Ctrl-C (or SIGTERM)
    /// writes what is queued and closes every connection.
    Chat(chat::ChatArgs),
    /// Serve the uart family: the gateway between a serial-attached mesh
    /// root module and local clients.
    ///
    /// The module's `M` frames fill a node store (states A/D/N from NOD,
    /// NET and RST; a time-stamped history of each data type). Local
    /// clients connect over TCP and speak the UART's frames: a first frame
    /// `LSTN-` makes the connection the listener (every later `M` frame,
    /// verbatim; a newer listener replaces it); any other first frame is
    /// one request and one reply: `NSTAT`, `[GET]`, `ACT-C` and `NINFO`
    /// from the store, module commands relayed one at a time (`F module
    /// timeout` after --module-timeout). A port that disappears is reopened
    /// with backoff; meanwhile relayed commands get `F`.
    ///
    /// Prints `listening on tcp://ADDR` once ready.
    UartGateway(uart::UartGatewayArgs),
}

/// TLS for a server: both flags or neither.
#[derive(clap::Args)]
pub(crate) struct TlsArgs {
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key", display_order = 20)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", display_order = 21)]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The TLS configuration of --tls-cert and --tls-key, if given.
    pub(crate) fn config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => specwire_runtime::tls::server_config(cert, key)
                .map(Some)
                .map_err(|error| error.to_string()),
            _ => Ok(None),
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    match args.family {
        Family::Task(args) => crate::run_async("specwire serve task", async {
            exit("specwire serve task", task::serve_task(args).await)
        }),
        Family::Device(args) => crate::run_async("specwire serve device", async {
            exit("specwire serve device", device::serve_device(args).await)
        }),
        Family::UartGateway(args) => crate::run_async("specwire serve uart-gateway", async {
            exit(
                "specwire serve uart-gateway",
                uart::serve_uart_gateway(args).await,
            )
        }),
        Family::Chat(args) => crate::run_async("specwire serve chat", async {
            exit("specwire serve chat", chat::serve_chat(args).await)
        }),
        Family::Subscription(args) => crate::run_async("specwire serve subscription", async {
            exit(
                "specwire serve subscription",
                subscription::serve_hub(args).await,
            )
        }),
    }
}

fn exit(command: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{command}: {error}");
            ExitCode::from(2)
        }
    }
}
