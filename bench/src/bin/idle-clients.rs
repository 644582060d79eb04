//! `idle-clients`: what an idle WebSocket connection costs a provider in
//! memory.
//!
//! What it measures: the provider's resident memory (`VmRSS` from
//! `/proc/PID/status`; `RssAnon` beside it) before any connection, and again
//! with N idle connections open, each verified live, after `--hold`. The
//! report gives the delta per connection in bytes, plus the memory after all
//! connections are closed again (what was not given back).
//!
//! How: it raises its own `RLIMIT_NOFILE` soft limit to the hard limit,
//! opens the N connections with at most `--concurrency` handshakes in
//! flight, then checks every one: a WebSocket ping must be answered by a
//! pong (`--verify ping`, the default, touches nothing but the WebSocket
//! layer), or a `GetStatus` for an unknown task by an `Error`
//! (`--verify get-status`, the whole message path), or, for a device hub
//! (seed 002), `id:idle-<uuid>` then the text `ping` by the text `pong`
//! (`--verify device`: each connection is then a registered device; the
//! hub's own `ping`s are not answered, so keep `--hold` under its stale
//! timeout), or, for a chat server (seed 003, `--endpoint tcp://HOST:PORT`),
//! `join_chat` as `idle-<n>-<run>` over raw TCP (`--verify chat`: each
//! connection is then a joined user; it reads and drops every join
//! announcement of those after it, N²/2 of them in all, so that the
//! server's queues are empty when it is measured; a second `join_chat` must
//! then be refused, and one `get_users` must count N). It warns when the
//! provider's own open-file limit is below N. At the end it closes every
//! connection with the close handshake.
//!
//! ```sh
//! cargo build --release -p specwire-bench
//! target/release/idle-clients --endpoint ws://127.0.0.1:PORT --clients 10000 --pid PID \
//!     [--hold 2s] [--concurrency 256] [--verify ping|get-status|device] [--label NAME] [--json] \
//!     [--path /ws/experiments/E --secret-file SECRET]
//! target/release/idle-clients --endpoint tcp://127.0.0.1:PORT --verify chat --clients 10000 --pid PID
//! ```
//!
//! For a subscription hub (seed 001), `--path /ws/experiments/E` (or any of
//! the hub's paths) is appended to the endpoint and `--secret`/
//! `--secret-file` gives each connection its own HS256 token (`sub`
//! `idle-<n>`) in `?token=`; every connection is then an authenticated
//! subscriber. Start the hub with its per-user/per-IP/total limits above N.
//!
//! Every await is bounded by `--timeout`, and the whole run by a hard cap.
//! Loopback endpoints only. `bench/run-task-bench` runs it for the specwire
//! provider at 1,000 and 10,000 connections and for the Python baseline at
//! 1,000; `bench/run-hub-bench` likewise for the subscription hubs,
//! `bench/run-device-bench` and `bench/run-chat-bench` for theirs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use specwire_bench::chat::{loopback_tcp, IdleChat};
use specwire_bench::{
    check_loopback, hub_token, memory, open_files_limit, parse_duration, raise_open_files_limit,
    read_secret, Memory,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Memory per idle connection of a provider.
#[derive(Parser, Debug)]
#[command(name = "idle-clients", version)]
struct Args {
    /// The provider, e.g. ws://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    endpoint: String,
    /// How many idle connections to open.
    #[arg(long)]
    clients: usize,
    /// The provider's process id (its /proc/PID/status is read).
    #[arg(long)]
    pid: u32,
    /// How long to keep all connections open before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    hold: Duration,
    /// Handshakes (and checks, and closes) in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// How each connection is checked to be live.
    #[arg(long, value_enum, default_value_t = Verify::Ping)]
    verify: Verify,
    /// Bound on each handshake, check and close.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// A name for the provider, copied into the report.
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON line instead of the human-readable report.
    #[arg(long)]
    json: bool,
    /// A path appended to the endpoint, e.g. `/ws/experiments/e1` for a
    /// subscription hub.
    #[arg(long, default_value = "")]
    path: String,
    /// A subscription hub's HS256 secret: each connection gets its own
    /// token (`sub` `idle-<n>`) in `?token=`.
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the hub's secret (trailing newlines are dropped).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Verify {
    /// A WebSocket ping, answered with a pong.
    Ping,
    /// A `GetStatus` for an unknown task, answered with an `Error`.
    GetStatus,
    /// `id:idle-<uuid>` (a device registers), then the text `ping`,
    /// answered with the text `pong` (device hubs, seed 002).
    Device,
    /// Raw TCP (`--endpoint tcp://...`): `join_chat`, every broadcast read;
    /// a second `join_chat` refused, one `get_users` counting N (chat
    /// servers, seed 003).
    Chat,
}

fn config() -> WebSocketConfig {
    // These connections only send one small message each: small buffers
    // keep the client's own memory low (tungstenite's default read buffer
    // is 128 KiB, touched in full on the first read).
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
}

async fn connect(endpoint: &str, timeout: Duration) -> Result<Ws, String> {
    let connecting = tokio_tungstenite::connect_async_with_config(endpoint, Some(config()), true);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err(format!("connect: no handshake within {timeout:?}")),
    }
}

async fn verify(ws: &mut Ws, how: Verify, timeout: Duration) -> Result<(), String> {
    let check = async {
        match how {
            Verify::Ping => ws
                .send(Frame::Ping(b"idle-clients".to_vec().into()))
                .await
                .map_err(|error| format!("ping: {error}"))?,
            Verify::GetStatus => {
                let text = format!(
                    r#"{{"type":"GetStatus","messageId":"{}","timestamp":"{}","payload":{{"taskId":"{}"}}}}"#,
                    uuid::Uuid::new_v4(),
                    humantime::format_rfc3339_millis(SystemTime::now()),
                    uuid::Uuid::new_v4()
                );
                ws.send(Frame::text(text))
                    .await
                    .map_err(|error| format!("GetStatus: {error}"))?
            }
            Verify::Chat => return Err("--verify chat speaks raw TCP, not WebSocket".to_owned()),
            Verify::Device => {
                let id = format!("id:idle-{}", uuid::Uuid::new_v4().simple());
                for line in [id, "ping".to_owned()] {
                    ws.send(Frame::text(line))
                        .await
                        .map_err(|error| format!("device: {error}"))?;
                }
            }
        }
        loop {
            match ws.next().await {
                None => return Err("closed by the provider".to_owned()),
                Some(Err(error)) => return Err(format!("receive: {error}")),
                Some(Ok(Frame::Pong(_))) if how == Verify::Ping => return Ok(()),
                Some(Ok(Frame::Text(text))) if how == Verify::GetStatus => {
                    let value: serde_json::Value = serde_json::from_str(text.as_str())
                        .map_err(|error| format!("unparseable reply: {error}"))?;
                    return match value.get("type").and_then(|kind| kind.as_str()) {
                        Some("Error") => Ok(()),
                        other => Err(format!("expected an Error, got {other:?}")),
                    };
                }
                Some(Ok(Frame::Text(text))) if how == Verify::Device => match text.as_str() {
                    "pong" => return Ok(()),
                    // The hub's own ping to its devices.
                    "ping" => continue,
                    other => return Err(format!("expected pong, got `{other}`")),
                },
                Some(Ok(Frame::Close(close))) => return Err(format!("closed: {close:?}")),
                Some(Ok(_)) => continue,
            }
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

struct Outcome {
    before: Memory,
    after: Memory,
    closed: Memory,
    connected: usize,
    verified: usize,
    failures: Vec<String>,
    failed: usize,
    connect_time: Duration,
}

/// The URL of each connection: the endpoint, `--path`, and a token of its
/// own when a secret is given.
fn urls(args: &Args, secret: Option<&[u8]>) -> Vec<String> {
    let base = format!("{}{}", args.endpoint.trim_end_matches('/'), args.path);
    // Valid for the whole run, however long the hold.
    let ttl = args.hold + 10 * args.timeout + Duration::from_secs(3600);
    (0..args.clients)
        .map(|index| match secret {
            Some(secret) => format!(
                "{base}?token={}",
                hub_token(secret, &format!("idle-{index}"), false, ttl)
            ),
            None if args.path.is_empty() => args.endpoint.clone(),
            None => base.clone(),
        })
        .collect()
}

async fn measure(args: &Args, urls: &[String]) -> Result<Outcome, String> {
    if args.verify == Verify::Chat {
        return measure_chat(args).await;
    }
    let before = memory(args.pid)?;
    let started = Instant::now();
    let results: Vec<Result<Ws, String>> = futures_util::stream::iter(urls)
        .map(|url| connect(url, args.timeout))
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let connect_time = started.elapsed();
    let mut failures = Vec::new();
    let mut failed = 0;
    let mut connections = Vec::with_capacity(args.clients);
    for result in results {
        match result {
            Ok(ws) => connections.push(ws),
            Err(error) => {
                failed += 1;
                if failures.len() < 5 {
                    failures.push(error);
                }
            }
        }
    }
    let connected = connections.len();
    let checks: Vec<Result<(), String>> = futures_util::stream::iter(
        connections
            .iter_mut()
            .map(|ws| verify(ws, args.verify, args.timeout)),
    )
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    let mut verified = 0;
    for check in checks {
        match check {
            Ok(()) => verified += 1,
            Err(error) => {
                failed += 1;
                if failures.len() < 5 {
                    failures.push(error);
                }
            }
        }
    }
    tokio::time::sleep(args.hold).await;
    let after = memory(args.pid)?;
    let timeout = args.timeout;
    futures_util::stream::iter(connections.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(timeout, ws.close(None)).await;
        // Wait (bounded) for the provider's side of the close handshake.
        let drain = async { while let Some(Ok(_)) = ws.next().await {} };
        let _ = tokio::time::timeout(timeout, drain).await;
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect::<Vec<()>>()
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = memory(args.pid)?;
    Ok(Outcome {
        before,
        after,
        closed,
        connected,
        verified,
        failures,
        failed,
        connect_time,
    })
}

/// `--verify chat`: N joined raw-TCP connections (see the module docs).
async fn measure_chat(args: &Args) -> Result<Outcome, String> {
    let address = loopback_tcp(&args.endpoint)?;
    let before = memory(args.pid)?;
    let started = Instant::now();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut idle =
        IdleChat::open(address, args.clients, args.concurrency, args.timeout, &tag).await;
    let connect_time = started.elapsed();
    let (verified, counted) = idle.verify().await;
    if verified == idle.joined && counted != Some(args.clients as u64) {
        idle.failed += 1;
        idle.failures.push(format!(
            "get_users counted {counted:?} users, not {}",
            args.clients
        ));
    }
    tokio::time::sleep(args.hold).await;
    let after = memory(args.pid)?;
    let (connected, failed, failures) = (idle.joined, idle.failed, idle.failures.clone());
    idle.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = memory(args.pid)?;
    Ok(Outcome {
        before,
        after,
        closed,
        connected,
        verified,
        failures,
        failed,
        connect_time,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let checked = match args.verify {
        Verify::Chat => loopback_tcp(&args.endpoint).map(|_| ()),
        _ => check_loopback(&args.endpoint),
    };
    if let Err(error) = checked {
        eprintln!("idle-clients: {error}");
        return ExitCode::from(2);
    }
    if args.clients == 0 {
        eprintln!("idle-clients: --clients must be at least 1");
        return ExitCode::from(2);
    }
    if !(args.path.is_empty() || args.path.starts_with('/')) {
        eprintln!("idle-clients: --path must start with /");
        return ExitCode::from(2);
    }
    let secret = if args.secret.is_some() || args.secret_file.is_some() {
        match read_secret(args.secret.as_deref(), args.secret_file.as_deref()) {
            Ok(secret) => Some(secret),
            Err(error) => {
                eprintln!("idle-clients: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let urls = urls(&args, secret.as_deref());
    let own_limit = match raise_open_files_limit() {
        Ok(limit) => limit,
        Err(error) => {
            eprintln!("idle-clients: {error}");
            return ExitCode::from(2);
        }
    };
    if own_limit < args.clients as u64 + 64 {
        eprintln!(
            "idle-clients: warning: this process may open only {own_limit} files, fewer than {} connections need",
            args.clients
        );
    }
    let provider_limit = open_files_limit(args.pid);
    if let Some(limit) = provider_limit {
        if limit < args.clients as u64 + 64 {
            eprintln!(
                "idle-clients: warning: the provider (pid {}) may open only {limit} files, fewer than {} connections need; raise its limit (ulimit -n) before starting it",
                args.pid, args.clients
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("idle-clients: cannot start the tokio runtime: {error}");
            return ExitCode::from(2);
        }
    };
    // Handshakes, checks and closes each at most ceil(N / concurrency)
    // timeouts deep, plus the hold.
    let rounds = args.clients.div_ceil(args.concurrency.max(1)) as u32;
    let hard_cap = args.hold + 4 * rounds * args.timeout + Duration::from_secs(10);
    let outcome =
        runtime.block_on(async { tokio::time::timeout(hard_cap, measure(&args, &urls)).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => {
            eprintln!("idle-clients: {error}");
            return ExitCode::from(1);
        }
        Err(_) => {
            eprintln!("idle-clients: the run did not end within its hard cap of {hard_cap:?}");
            return ExitCode::from(1);
        }
    };
    let per =
        |after: u64, before: u64| (after as f64 - before as f64) / outcome.verified.max(1) as f64;
    let rss_per = per(outcome.after.rss, outcome.before.rss);
    let anon_per = per(outcome.after.rss_anon, outcome.before.rss_anon);
    if args.json {
        let line = json!({
            "tool": "idle-clients",
            "label": args.label,
            "endpoint": args.endpoint,
            "path": args.path,
            "pid": args.pid,
            "clients": args.clients,
            "connected": outcome.connected,
            "verified": outcome.verified,
            "failed": outcome.failed,
            "failures": outcome.failures,
            "verify": format!("{:?}", args.verify),
            "connect_s": (outcome.connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "provider_open_files_limit": provider_limit,
            "rss_before": outcome.before.rss,
            "rss_after": outcome.after.rss,
            "rss_after_close": outcome.closed.rss,
            "rss_anon_before": outcome.before.rss_anon,
            "rss_anon_after": outcome.after.rss_anon,
            "vm_data_before": outcome.before.data,
            "vm_data_after": outcome.after.data,
            "rss_per_connection": rss_per.round(),
            "rss_anon_per_connection": anon_per.round(),
        });
        println!("{line}");
    } else {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        println!(
            "idle-clients {}{} (pid {}): {} of {} connections open and verified ({:?}) in {:.2} s",
            args.endpoint,
            args.label
                .as_deref()
                .map(|label| format!(" ({label})"))
                .unwrap_or_default(),
            args.pid,
            outcome.verified,
            args.clients,
            args.verify,
            outcome.connect_time.as_secs_f64()
        );
        println!(
            "  VmRSS {:.1} MiB -> {:.1} MiB ({:.0} bytes per connection; RssAnon {:.0}); {:.1} MiB after closing",
            mib(outcome.before.rss),
            mib(outcome.after.rss),
            rss_per,
            anon_per,
            mib(outcome.closed.rss)
        );
        for failure in &outcome.failures {
            println!("    e.g. {failure}");
        }
    }
    if outcome.failed > 0 {
        eprintln!(
            "idle-clients: {} connection(s) failed to open or to answer",
            outcome.failed
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
