//! `specwire publish`: send events to a hub through an admin connection.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use specwire_protocol::subscription::Message;
use specwire_protocol::{Direction, JsonProtocol};
use specwire_runtime::net::Connector;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::token_or_mint;
use crate::secret::SecretArgs;

/// Publish events to a subscription hub.
///
/// Reads events from FILE (or stdin, `-`): one JSON event, several
/// concatenated, or NDJSON. Each is checked against its schema first
/// (an invalid one is reported and nothing is sent), then sent as
/// `{"type":"publish","data":EVENT}` over one admin connection. The hub
/// answers refused events with an `error`; a final ping makes sure every
/// answer is in before the command exits.
///
/// The token must carry `role: admin`: --token, or minted from the secret
/// (--secret-file, --secret or SPECWIRE_JWT_SECRET).
///
/// Exit status: 0 all published, 1 an event was invalid or refused, 2
/// usage error or unreadable input, 3 the hub could not be reached.
///
/// Example: `specwire publish --target ws://127.0.0.1:8081 --secret-file
/// hub.secret events.ndjson`
#[derive(clap::Args)]
pub struct Args {
    /// The hub: ws://HOST:PORT (the admin connects to /ws/user) or a URL
    /// with a path.
    #[arg(long, value_name = "URL")]
    target: String,
    /// An admin JWT (else one is minted from the secret).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    secret: SecretArgs,
    /// Events: a JSON or NDJSON file, `-` for stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    input: PathBuf,
    /// Extra CA certificate (PEM) to trust for wss:// (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    extra_roots: Vec<PathBuf>,
}

/// How publishing went wrong, with its exit status.
struct Failure(u8, String);

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire publish", async {
        match publish(args).await {
            Ok(count) => {
                eprintln!("specwire: published {count} event(s)");
                ExitCode::SUCCESS
            }
            Err(Failure(code, message)) => {
                eprintln!("specwire publish: {message}");
                ExitCode::from(code)
            }
        }
    })
}

/// The events in `text`, each checked; the first problem stops it.
fn read_events(text: &str) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    for (index, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let number = index + 1;
        let value = value.map_err(|error| format!("event {number}: not JSON: {error}"))?;
        let message = Message::decode_from(value.clone(), Some(Direction::ServerToClient))
            .map_err(|error| format!("event {number}: {error}"))?;
        let name = message.name();
        if matches!(
            name,
            "SubscriptionResponse" | "ServerPing" | "ServerPong" | "Error"
        ) {
            return Err(format!("event {number}: a `{name}` is not an event"));
        }
        events.push(value);
    }
    if events.is_empty() {
        return Err("no events in the input".to_owned());
    }
    Ok(events)
}

fn read_input(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| format!("stdin: {error}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
    }
}

/// The URL the admin connects to: the target's own path, or `/ws/user`.
fn admin_url(target: &str) -> String {
    let after_scheme = target.split_once("://").map_or(target, |(_, rest)| rest);
    if after_scheme.contains('/') {
        target.to_owned()
    } else {
        format!("{}/ws/user", target.trim_end_matches('/'))
    }
}

async fn publish(args: Args) -> Result<usize, Failure> {
    let text = read_input(&args.input).map_err(|error| Failure(2, error))?;
    let events = read_events(&text).map_err(|error| Failure(1, error))?;
    let token = token_or_mint(
        args.token.as_deref(),
        &args.secret,
        "specwire-publisher",
        Some("admin"),
    )
    .map_err(|error| Failure(2, error))?;
    let connector = Connector::new(
        admin_url(&args.target),
        &args.extra_roots,
        Duration::from_secs(10),
    )
    .map_err(|error| Failure(2, error.to_string()))?
    .with_bearer(token);
    let (mut ws, _) = connector
        .connect()
        .await
        .map_err(|error| Failure(3, error.to_string()))?;
    for event in &events {
        let frame = json!({"type": "publish", "data": event}).to_string();
        ws.send(Frame::text(frame))
            .await
            .map_err(|error| Failure(3, error.to_string()))?;
    }
    // Answers come in order: every `error` about the events arrives before
    // the pong of a ping sent after them.
    let marker = format!("specwire-publish-{}", std::process::id());
    ws.send(Frame::text(
        json!({"type": "ping", "id": marker}).to_string(),
    ))
    .await
    .map_err(|error| Failure(3, error.to_string()))?;
    let mut refused = Vec::new();
    let answers = async {
        while let Some(frame) = ws.next().await {
            let Ok(Frame::Text(text)) = frame else {
                if let Ok(Frame::Close(close)) = frame {
                    let why =
                        close.map(|frame| format!("{} {}", u16::from(frame.code), frame.reason));
                    return Err(format!(
                        "the hub closed the connection ({})",
                        why.unwrap_or_default()
                    ));
                }
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            match value["type"].as_str() {
                Some("pong") if value["id"] == marker.as_str() => return Ok(()),
                Some("error") => refused.push(format!(
                    "{} {}",
                    value["error"].as_str().unwrap_or("?"),
                    value["data"]["detail"].as_str().unwrap_or("")
                )),
                _ => {}
            }
        }
        Err("the connection ended before the hub answered".to_owned())
    };
    tokio::time::timeout(Duration::from_secs(30), answers)
        .await
        .map_err(|_| Failure(3, "no answer from the hub within 30 s".to_owned()))?
        .map_err(|error| {
            Failure(
                if refused.is_empty() { 3 } else { 1 },
                format!("{error}; refused: {}", refused.join("; ")),
            )
        })?;
    let _ = ws.close(None).await;
    if refused.is_empty() {
        Ok(events.len())
    } else {
        Err(Failure(
            1,
            format!(
                "{} of {} event(s) refused: {}",
                refused.len(),
                events.len(),
                refused.join("; ")
            ),
        ))
    }
}
