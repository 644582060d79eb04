//! `specwire subscribe URL`: follow a hub's events on a terminal (one
//! coloured line per event) or as NDJSON when piped.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use specwire_protocol::JsonProtocol;
use specwire_runtime::subscription::{Resource, Subscriber, SubscriberConfig, Update};

use super::{token_or_mint, view};
use crate::duration::parse_duration;
use crate::secret::SecretArgs;

/// Follow a subscription hub's events.
///
/// Connects to URL (ws://HOST:PORT/ws/experiments/ID, /ws/tasks/ID,
/// /ws/projects/ID or /ws/user), subscribes to every --subscribe
/// resource too, and prints each event: one coloured line per event on a
/// terminal, the events' JSON one per line (NDJSON) when stdout is a pipe
/// or with --json. Reconnects with backoff when the hub goes away and
/// subscribes again; the break is reported on stderr, since events sent
/// meanwhile were missed.
///
/// The token is --token, or minted from the secret (--secret-file,
/// --secret or SPECWIRE_JWT_SECRET) for --user.
///
/// Example: `specwire subscribe ws://127.0.0.1:8081/ws/experiments/exp-1
/// --secret-file hub.secret --subscribe task:t-1`
#[derive(clap::Args)]
pub struct Args {
    /// The hub's URL with the resource path.
    #[arg(value_name = "URL")]
    url: String,
    /// A JWT (else one is minted from the secret).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    secret: SecretArgs,
    /// The user a minted token names (`/ws/user` follows this user).
    #[arg(long, default_value = "specwire-cli", value_name = "USER")]
    user: String,
    /// Also subscribe to KIND:ID (experiment, task, project, user,
    /// system, worker), e.g. `task:t-1`, `system:all`. Repeatable.
    #[arg(long = "subscribe", value_name = "KIND:ID")]
    subscriptions: Vec<Resource>,
    /// Print JSON lines even on a terminal.
    #[arg(long)]
    json: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Extra CA certificate (PEM) to trust for wss:// (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    extra_roots: Vec<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire subscribe", async {
        let limit = args.duration;
        let following = follow(args);
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, following)
                .await
                .unwrap_or(Ok(())),
            None => tokio::select! {
                result = following => result,
                () = crate::signals::wait_for_stop_signal() => Ok(()),
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("specwire subscribe: {error}");
                ExitCode::from(1)
            }
        }
    })
}

async fn follow(args: Args) -> Result<(), String> {
    let token = token_or_mint(args.token.as_deref(), &args.secret, &args.user, None)?;
    let config = SubscriberConfig {
        subscriptions: args.subscriptions.clone(),
        extra_roots: args.extra_roots.clone(),
        ..SubscriberConfig::new(args.url.clone(), token)
    };
    let mut subscriber = Subscriber::start(config).map_err(|error| error.to_string())?;
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let mut events = 0u64;
    let mut stdout = std::io::stdout().lock();
    while let Some(update) = subscriber.next().await {
        match update {
            Update::Connected { reconnect: false, .. } => eprintln!("specwire: subscribed to {}", args.url),
            Update::Connected { reconnect: true, attempts } => eprintln!(
                "specwire: reconnected after {attempts} failed attempt(s); events published meanwhile were missed"
            ),
            Update::Disconnected { reason } => eprintln!("specwire: connection lost ({reason}); reconnecting"),
            Update::Reply(reply) => {
                let data = &reply.data;
                let outcome = data.message.as_deref().unwrap_or("");
                eprintln!(
                    "specwire: {} {}:{}: {} {outcome}",
                    view::word(&data.action),
                    view::summary_kind(data.resource_type),
                    *data.resource_id,
                    view::word(&data.status)
                );
            }
            Update::Error(error) => eprintln!("specwire: the hub says: {error}"),
            Update::Refused(reason) => return Err(format!("refused: {reason}")),
            Update::Event(event) => {
                let line = if terminal {
                    view::line(&event, colour)
                } else {
                    event.to_json().map_err(|error| error.to_string())?
                };
                writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(|error| error.to_string())?;
                events += 1;
                if args.count.is_some_and(|count| events >= count) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
