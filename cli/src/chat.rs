//! `specwire chat`: a line client for any chat server.
//!
//! On a terminal, the line being typed is edited with rustyline, and
//! messages from others are printed above it through rustyline's external
//! printer, so they never garble what is being typed. With stdin piped,
//! each line read is sent as a message and broadcasts are printed as they
//! come. `--send TEXT` sends one message (or several) and leaves.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use rustyline::error::ReadlineError;
use rustyline::ExternalPrinter as _;
use specwire_runtime::chat::{ChatClient, ChatError, ChatEvent, ChatEvents};
use tokio::sync::mpsc;

use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// The chat server, HOST:PORT (or tcp:// / tls://HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:65432", value_name = "HOST:PORT")]
    target: String,
    /// The name to join as (1 to 50 characters after trimming).
    #[arg(long, value_name = "NAME")]
    username: String,
    /// Send this message, leave and exit (repeat for several messages, in
    /// order). Exit 0 when every message was accepted, 1 when the join or a
    /// message was refused, 3 when the server cannot be reached.
    #[arg(long, value_name = "TEXT")]
    send: Vec<String>,
    /// Connection and response time limit.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
}

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire chat", async move {
        match chat(args).await {
            Ok(code) => code,
            Err(Failure::Refused(error)) => {
                eprintln!("specwire chat: {error}");
                ExitCode::from(1)
            }
            Err(Failure::Unreachable(error)) => {
                eprintln!("specwire chat: {error}");
                ExitCode::from(3)
            }
        }
    })
}

enum Failure {
    /// The server answered no.
    Refused(String),
    /// No server, or it went away.
    Unreachable(String),
}

impl From<ChatError> for Failure {
    fn from(error: ChatError) -> Failure {
        match error {
            ChatError::Refused(_) | ChatError::Rpc { .. } => Failure::Refused(error.to_string()),
            _ => Failure::Unreachable(error.to_string()),
        }
    }
}

async fn chat(args: Args) -> Result<ExitCode, Failure> {
    let (client, events) = ChatClient::connect(&args.target, args.timeout).await?;
    let joined = client.join(&args.username).await?;
    let others: Vec<&String> = joined
        .users
        .iter()
        .filter(|name| **name != joined.username)
        .collect();
    eprintln!(
        "specwire chat: joined {} as {}; {}",
        args.target,
        joined.username,
        match others.len() {
            0 => "nobody else is here".to_owned(),
            _ => format!("also here: {}", join_names(&others)),
        }
    );
    if !args.send.is_empty() {
        for text in &args.send {
            client.send(text).await?;
        }
        eprintln!("specwire chat: sent {} message(s)", args.send.len());
        client.leave().await?;
        return Ok(ExitCode::SUCCESS);
    }
    let (lines, output) = if std::io::stdin().is_terminal() {
        terminal_input(&joined.username).map_err(Failure::Unreachable)?
    } else {
        piped_input()
    };
    converse(&client, events, lines, output).await
}

fn join_names(names: &[&String]) -> String {
    names
        .iter()
        .map(|name| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the client's own output goes: above the prompt on a terminal.
type Output = Box<dyn FnMut(String) + Send>;

/// What the user typed, line by line; `None` at the end of input.
type Lines = mpsc::Receiver<String>;

/// A rustyline editor on its own thread, and a printer that writes above
/// the line being edited.
fn terminal_input(username: &str) -> Result<(Lines, Output), String> {
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|error| format!("cannot use the terminal: {error}"))?;
    let mut printer = editor
        .create_external_printer()
        .map_err(|error| format!("cannot use the terminal: {error}"))?;
    eprintln!("specwire chat: type a message and Enter; /users lists who is here, /quit leaves");
    let (sender, lines) = mpsc::channel(16);
    let prompt = format!("{username}> ");
    std::thread::spawn(move || loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                if sender.blocking_send(line).is_err() {
                    return;
                }
            }
            // Ctrl-C, Ctrl-D: the conversation ends (dropping the sender).
            Err(ReadlineError::Interrupted | ReadlineError::Eof) | Err(_) => return,
        }
    });
    let output: Output = Box::new(move |text| {
        if printer.print(text.clone()).is_err() {
            println!("{text}");
        }
    });
    Ok((lines, output))
}

/// Lines from a pipe, on a blocking thread.
fn piped_input() -> (Lines, Output) {
    let (sender, lines) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if sender.blocking_send(line).is_err() {
                return;
            }
        }
    });
    (lines, Box::new(|text| println!("{text}")))
}

/// Sends what is typed and prints what arrives until `/quit`, the end of
/// input, or the server closing.
async fn converse(
    client: &ChatClient,
    mut events: ChatEvents,
    mut lines: Lines,
    mut output: Output,
) -> Result<ExitCode, Failure> {
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                match line.trim() {
                    "" => {}
                    "/quit" | "/exit" => break,
                    "/users" => {
                        let users = client.users().await?;
                        output(format!("* {} here: {}", users.len(), users.join(", ")));
                    }
                    "/help" => output("* /users lists who is here; /quit leaves".to_owned()),
                    _ => match client.send(&line).await {
                        Ok(()) => {}
                        // Too long, empty: say so and carry on.
                        Err(ChatError::Refused(reason)) => output(format!("! {reason}")),
                        Err(error) => return Err(error.into()),
                    },
                }
            }
            event = events.next() => match event {
                Some(event) => output(show(&event)),
                None => {
                    return Err(Failure::Unreachable("the server closed the connection".to_owned()))
                }
            },
        }
    }
    client.leave().await?;
    let _ = client.close().await;
    Ok(ExitCode::SUCCESS)
}

/// One broadcast as a line.
fn show(event: &ChatEvent) -> String {
    match event {
        ChatEvent::Chat { username, message } => format!("<{username}> {message}"),
        ChatEvent::System { message } => format!("* {message}"),
        ChatEvent::Other(value) => format!("? {value}"),
    }
}
