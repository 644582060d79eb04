//! `specwire device watch` and `specwire device send`: a device hub from
//! the command line.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::net::{Connector, WsStream};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(clap::Subcommand)]
enum DeviceCommand {
    /// Subscribe to a device hub and print every device line
    /// (`<deviceId>:<data>`), one per line; errors on stderr.
    ///
    /// Example: `specwire device watch --target ws://127.0.0.1:5000`
    Watch(WatchArgs),
    /// Send one command to a device (or `all`) and report whether the hub
    /// accepted it: exit 0 accepted, 1 refused (`error:` from the hub,
    /// e.g. an unknown command or target), 3 hub unreachable.
    ///
    /// PARAMS are joined with `:` (a parameter may itself contain `:`).
    /// Example: `specwire device send --target ws://127.0.0.1:5000 lamp-1
    /// led ff0000`
    Send(SendArgs),
}

#[derive(clap::Args)]
struct WatchArgs {
    /// The hub, ws://HOST:PORT.
    #[arg(long, value_name = "URL")]
    target: String,
    /// Stop after this many lines.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

#[derive(clap::Args)]
struct SendArgs {
    /// The hub, ws://HOST:PORT.
    #[arg(long, value_name = "URL")]
    target: String,
    /// The device id, or `all`.
    #[arg(value_name = "DEVICE|all")]
    device: String,
    /// A command the hub's registry names.
    #[arg(value_name = "COMMAND")]
    command: String,
    /// Parameters, joined with `:`.
    #[arg(value_name = "PARAMS")]
    parameters: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        DeviceCommand::Watch(args) => crate::run_async("specwire device watch", async move {
            let limit = args.duration;
            let watching = watch(args);
            let result = match limit {
                Some(limit) => tokio::time::timeout(limit, watching)
                    .await
                    .unwrap_or(Ok(())),
                None => tokio::select! {
                    result = watching => result,
                    () = crate::signals::wait_for_stop_signal() => Ok(()),
                },
            };
            finish("specwire device watch", result)
        }),
        DeviceCommand::Send(args) => crate::run_async("specwire device send", async move {
            finish("specwire device send", send(args).await)
        }),
    }
}

fn finish(command: &str, result: Result<(), (u8, String)>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{command}: {message}");
            ExitCode::from(code)
        }
    }
}

async fn connect(target: &str) -> Result<WsStream, (u8, String)> {
    let connector =
        Connector::new(target, &[], Duration::from_secs(10)).map_err(|e| (2, e.to_string()))?;
    let (ws, _) = connector.connect().await.map_err(|e| (3, e.to_string()))?;
    Ok(ws)
}

async fn watch(args: WatchArgs) -> Result<(), (u8, String)> {
    let mut ws = connect(&args.target).await?;
    ws.send(Frame::text("s"))
        .await
        .map_err(|e| (3, e.to_string()))?;
    eprintln!("specwire: watching {}", args.target);
    let mut stdout = std::io::stdout().lock();
    let terminal = stdout.is_terminal();
    let mut lines = 0u64;
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Frame::Text(text)) => text,
            Ok(Frame::Close(close)) => {
                let why = close
                    .map(|frame| frame.reason.to_string())
                    .unwrap_or_default();
                return Err((3, format!("the hub closed the connection {why}")));
            }
            Ok(_) => continue,
            Err(error) => return Err((3, error.to_string())),
        };
        let text = text.as_str();
        if text == "ping" || text == "pong" {
            continue;
        }
        if let Some(reason) = text.strip_prefix("error:") {
            eprintln!("specwire: the hub says: {reason}");
            continue;
        }
        let shown = if terminal {
            let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            format!("{}  {text}", time.get(11..19).unwrap_or(&time))
        } else {
            text.to_owned()
        };
        writeln!(stdout, "{shown}")
            .and_then(|()| stdout.flush())
            .map_err(|e| (3, e.to_string()))?;
        lines += 1;
        if args.count.is_some_and(|count| lines >= count) {
            return Ok(());
        }
    }
    Err((3, "the connection ended".to_owned()))
}

async fn send(args: SendArgs) -> Result<(), (u8, String)> {
    let mut line = format!("cmd:{}:{}", args.device, args.command);
    if !args.parameters.is_empty() {
        line.push(':');
        line.push_str(&args.parameters.join(":"));
    }
    let mut ws = connect(&args.target).await?;
    // The hub answers nothing to an accepted command; a `ping` after it
    // is answered `pong` only once the command was handled, so an
    // `error:` before the `pong` is the command's.
    for text in [line.as_str(), "ping"] {
        ws.send(Frame::text(text.to_owned()))
            .await
            .map_err(|e| (3, e.to_string()))?;
    }
    let answer = async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Frame::Text(text)) if text.as_str() == "pong" => return Ok(()),
                Ok(Frame::Text(text)) => {
                    if let Some(reason) = text.as_str().strip_prefix("error:") {
                        return Err((1, format!("refused: {reason}")));
                    }
                }
                Ok(_) => {}
                Err(error) => return Err((3, error.to_string())),
            }
        }
        Err((3, "the connection ended before the hub answered".to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .map_err(|_| (3, "no answer within 10 s".to_owned()))??;
    let _ = ws.close(None).await;
    eprintln!("specwire: sent {line}");
    Ok(())
}
