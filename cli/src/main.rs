//! `specwire`: one binary for the whole toolkit. Each subcommand is thin
//! glue over a library crate; this file only parses arguments.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat;
mod conformance;
mod demo;
mod device;
mod discover;
mod discovery_args;
mod duration;
mod file_limit;
mod secret;
mod serve;
mod signals;
mod simulate;
mod subscription;
mod task;
mod uart;
mod validate;

/// Protocol schemas turned into working, verifiable software.
#[derive(Parser)]
#[command(name = "specwire", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate messages against the family schemas.
    ///
    /// Reads one JSON message, several concatenated JSON values or NDJSON;
    /// device frames one per line; uart frames as hex text. Each message is
    /// recognised by its discriminator and reported as `valid family/Message`
    /// or with every error (JSON Pointer of the member, rule, expected value).
    /// Exit status: 0 all valid, 1 any invalid, 2 usage error or unreadable input.
    Validate(validate::Args),
    /// Run a reference server: `specwire serve task` (task services over
    /// WebSocket, advertised over UDP discovery), `specwire serve
    /// subscription` (the event hub), `specwire serve device` (the device
    /// hub), `specwire serve chat` (JSON chat over raw TCP).
    Serve(serve::Args),
    /// List the services that answer UDP discovery (`--watch` for a live view).
    Discover(discover::Args),
    /// Work with tasks: `specwire task assign` runs one on a discovered
    /// (or given) provider.
    Task(task::Args),
    /// Talk to a device hub: `specwire device watch --target URL` prints
    /// the stream, `specwire device send --target URL DEVICE|all COMMAND
    /// [PARAMS]` sends a command.
    Device(device::Args),
    /// Talk on a chat server: `specwire chat --target HOST:PORT --username
    /// NAME` (interactive on a terminal: messages from others appear above
    /// the line being typed; `/users`, `/quit`), or `--send TEXT` from a
    /// script.
    Chat(chat::Args),
    /// Talk to a uart gateway's local API: `specwire uart --target
    /// HOST:PORT listen | nstat A|D|N | get DATATYPE [--node ADDR] | active |
    /// ninfo | send ADDR HEX | sendi ADDR HEX | bcast HEX | reset | clean`,
    /// frames decoded with names, hex addresses and scaled values.
    Uart(uart::Args),
    /// Simulate peers: `specwire simulate devices --target URL --count N`
    /// runs a swarm of virtual devices against a device hub.
    Simulate(simulate::Args),
    /// Mint a JWT for a subscription hub: `specwire token --sub alice
    /// --secret-file F` (`--role admin` may publish).
    Token(subscription::token::Args),
    /// Follow a subscription hub's events: `specwire subscribe
    /// ws://HOST:PORT/ws/experiments/ID --secret-file F` (NDJSON when
    /// piped).
    Subscribe(subscription::subscribe::Args),
    /// Publish events to a subscription hub from JSON or NDJSON, each
    /// checked against its schema first: `specwire publish --target
    /// ws://HOST:PORT --secret-file F events.ndjson`.
    Publish(subscription::publish::Args),
    /// Check an implementation (any language) against the spec: `specwire
    /// conformance task --target ws://HOST:PORT`. Exit status: 0 no MUST
    /// case failed, 1 a MUST case failed, 2 usage error, 3 cases could not
    /// be carried out (target unreachable, ...).
    Conformance(conformance::Args),
    /// A guided end-to-end run on loopback: `specwire demo task` serves,
    /// discovers and assigns real image tasks, then shuts down.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap uses 0 for --help/--version and 2 for usage errors.
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Discover(args) => discover::run(args),
        Command::Task(args) => task::run(args),
        Command::Device(args) => device::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Uart(args) => uart::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Token(args) => subscription::token::run(&args),
        Command::Subscribe(args) => subscription::subscribe::run(args),
        Command::Publish(args) => subscription::publish::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Conformance(args) => conformance::run(args),
    }
}

/// Runs an async subcommand on a multi-threaded tokio runtime.
pub(crate) fn run_async(
    command: &str,
    future: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("{command}: cannot start the async runtime: {error}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr; `SPECWIRE_LOG=debug` (or `info`, `trace`) shows more.
fn init_logging() {
    let level = match std::env::var("SPECWIRE_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
