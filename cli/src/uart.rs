//! `specwire uart`: a local client of a uart gateway. Each command is one
//! request on its own connection (the gateway closes it after the reply),
//! except `listen`, which becomes the gateway's listener.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use specwire_protocol::uart::{
    ActiveCount, Broadcast, Clean, Command, Count, DataValues, GetData, NetworkInfo, NodeList,
    NodeState, NodeStatus, Reply, RestartRoot, Send, SendTracked,
};
use specwire_runtime::uart::client::{listen, request};
use specwire_runtime::uart::describe::{addr, message_json, message_text};
use specwire_runtime::uart::table::DataTypeTable;
use specwire_wire::{parse_hex, to_hex};

use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's local API, HOST:PORT.
    #[arg(
        long,
        default_value = "127.0.0.1:50010",
        value_name = "HOST:PORT",
        global = true
    )]
    target: String,
    /// Print frame bodies as hex instead of decoding them.
    #[arg(long, global = true)]
    raw: bool,
    /// `text` (one line per frame or item) or `json` (one JSON value per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    format: Format,
    /// The data-type table, when the deployment's differs from the
    /// schema's (the file `serve uart-gateway --data-types` takes).
    #[arg(long, value_name = "FILE", global = true)]
    data_types: Option<PathBuf>,
    /// Connection and reply time limit (relayed commands wait for the
    /// module: keep it above the gateway's module timeout).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION", global = true)]
    timeout: Duration,
    #[command(subcommand)]
    command: UartCommand,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Subcommand)]
enum UartCommand {
    /// Become the gateway's listener and print every M frame (a newer
    /// listener replaces this one, which then exits 0). `--count N` stops
    /// after N frames.
    Listen {
        /// Stop after this many frames.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// The nodes in one state: A (active), D (disconnected), N (never announced).
    Nstat {
        /// A, D or N.
        #[arg(value_parser = parse_state)]
        state: NodeState,
    },
    /// The latest value of a data type (a name from the table, or an id)
    /// from one node or every node.
    Get {
        /// `temperature`, `battery`, ... or the id.
        data_type: String,
        /// The node, hex (`0x0102`) or decimal; every node when left out.
        #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
        node: Option<u16>,
    },
    /// How many nodes are active.
    Active,
    /// The network as JSON (the gateway's NINFO).
    Ninfo,
    /// SEND-: a payload (hex) to one node, without delivery tracking.
    Send {
        /// The node.
        #[arg(value_parser = parse_addr)]
        node: u16,
        /// The payload, hex (`01 02 ff` or `0102ff`).
        payload: String,
    },
    /// SENDI: a payload (hex) to one node, delivery tracked by the module.
    Sendi {
        /// The node.
        #[arg(value_parser = parse_addr)]
        node: u16,
        /// The payload, hex.
        payload: String,
    },
    /// BCAST: a payload (hex) to every node.
    Bcast {
        /// The payload, hex.
        payload: String,
    },
    /// RST-R: restart the root module.
    Reset,
    /// CLEAN: clear the network from the module's persistent memory.
    Clean,
}

fn parse_state(text: &str) -> Result<NodeState, String> {
    match text {
        "A" | "a" => Ok(NodeState::Active),
        "D" | "d" => Ok(NodeState::Disconnected),
        "N" | "n" => Ok(NodeState::NeverAnnounced),
        _ => Err("a state is A (active), D (disconnected) or N (never announced)".to_owned()),
    }
}

fn parse_addr(text: &str) -> Result<u16, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("`{text}` is not a node address (0x0102 or 258)"))
}

fn hex_payload(text: &str) -> Result<Vec<u8>, String> {
    parse_hex(text).map_err(|error| format!("payload `{text}`: {error}"))
}

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire uart", async move {
        match uart(args).await {
            Ok(code) => code,
            Err(Failure::Usage(error)) => {
                eprintln!("specwire uart: {error}");
                ExitCode::from(2)
            }
            Err(Failure::Unreachable(error)) => {
                eprintln!("specwire uart: {error}");
                ExitCode::from(3)
            }
        }
    })
}

/// Why a command could not be carried out.
enum Failure {
    /// Arguments the gateway cannot be asked (exit 2).
    Usage(String),
    /// No gateway, or a reply it should not have sent (exit 3).
    Unreachable(String),
}

impl From<String> for Failure {
    fn from(error: String) -> Failure {
        Failure::Unreachable(error)
    }
}

/// Prints one item as text or JSON.
fn emit(format: Format, text: String, json: Value) {
    match format {
        Format::Text => println!("{text}"),
        Format::Json => println!("{json}"),
    }
}

async fn uart(args: Args) -> Result<ExitCode, Failure> {
    let table = match &args.data_types {
        Some(path) => {
            DataTypeTable::load(path).map_err(|error| Failure::Usage(error.to_string()))?
        }
        None => DataTypeTable::schema_default(),
    };
    let command = match args.command {
        UartCommand::Listen { count } => {
            return Ok(listen_to(
                &args.target,
                args.timeout,
                count,
                args.raw,
                args.format,
                &table,
            )
            .await?)
        }
        UartCommand::Nstat { state } => Command::NodeStatus(NodeStatus { state }),
        UartCommand::Get {
            ref data_type,
            node,
        } => {
            let row = table
                .rows()
                .find(|row| row.name == *data_type || row.id.to_string() == *data_type)
                .ok_or_else(|| {
                    let names: Vec<&str> = table.rows().map(|row| row.name.as_str()).collect();
                    Failure::Usage(format!(
                        "no data type `{data_type}` (the table has {})",
                        names.join(", ")
                    ))
                })?;
            Command::GetData(GetData {
                data_id: row.id,
                addr: node.unwrap_or(0),
            })
        }
        UartCommand::Active => Command::ActiveCount(ActiveCount),
        UartCommand::Ninfo => Command::NetworkInfo(NetworkInfo),
        UartCommand::Send {
            node,
            payload: ref text,
        } => Command::Send(Send {
            dst: node,
            payload: hex_payload(text).map_err(Failure::Usage)?,
        }),
        UartCommand::Sendi {
            node,
            payload: ref text,
        } => Command::SendTracked(SendTracked {
            dst: node,
            payload: hex_payload(text).map_err(Failure::Usage)?,
        }),
        UartCommand::Bcast { payload: ref text } => Command::Broadcast(Broadcast {
            payload: hex_payload(text).map_err(Failure::Usage)?,
        }),
        UartCommand::Reset => Command::RestartRoot(RestartRoot),
        UartCommand::Clean => Command::Clean(Clean),
    };
    let reply = request(&args.target, &command, args.timeout)
        .await
        .map_err(|error| format!("{}: {error}", args.target))?;
    if args.raw {
        emit(args.format, to_hex(&reply), json!({"raw": to_hex(&reply)}));
        return Ok(ExitCode::SUCCESS);
    }
    match Reply::decode(&reply) {
        Ok(Reply::Success(result)) => {
            show_success(&command, &result, &table, args.format)?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reply::Failure { message }) => {
            eprintln!("specwire uart: {} failed: {message}", command.name());
            Ok(ExitCode::from(1))
        }
        _ => Err(Failure::Unreachable(format!(
            "unexpected reply {}",
            to_hex(&reply)
        ))),
    }
}

/// A success reply, laid out by its command.
fn show_success(
    command: &Command,
    result: &[u8],
    table: &DataTypeTable,
    format: Format,
) -> Result<(), String> {
    let bad = |error: specwire_protocol::uart::DecodeError| {
        format!("a malformed {} reply: {error}", command.name())
    };
    match command {
        Command::NodeStatus(_) => {
            for node in NodeList::decode(result).map_err(bad)?.nodes {
                let uuid = node.uuid.to_string();
                emit(
                    format,
                    format!("{}  {uuid}", addr(node.addr)),
                    json!({"node": addr(node.addr), "uuid": uuid}),
                );
            }
        }
        Command::GetData(_) => {
            let values = DataValues::decode(result).map_err(bad)?;
            let row = table.get(values.data_id);
            let name = row.map_or_else(|| values.data_id.to_string(), |row| row.name.clone());
            for value in values.values {
                let shown = row.map_or_else(|| to_hex(&value.data), |row| row.show(&value.data));
                let scaled = row.and_then(|row| row.scaled(&value.data));
                emit(
                    format,
                    format!("{}  {name}  {shown}", addr(value.addr)),
                    json!({"node": addr(value.addr), "name": name, "raw": to_hex(&value.data), "value": scaled, "text": shown}),
                );
            }
        }
        Command::ActiveCount(_) => {
            let count = Count::decode(result).map_err(bad)?.count;
            emit(format, count.to_string(), json!({"active": count}));
        }
        Command::NetworkInfo(_) => {
            let info: Value = serde_json::from_slice(result)
                .map_err(|error| format!("NINFO is not JSON: {error}"))?;
            let pretty = serde_json::to_string_pretty(&info).unwrap_or_default();
            emit(format, pretty, info);
        }
        _ => emit(
            format,
            "ok".to_owned(),
            json!({"ok": true, "result": to_hex(result)}),
        ),
    }
    Ok(())
}

async fn listen_to(
    target: &str,
    timeout: Duration,
    count: Option<u64>,
    raw: bool,
    format: Format,
    table: &DataTypeTable,
) -> Result<ExitCode, String> {
    let mut listener = listen(target, timeout)
        .await
        .map_err(|error| format!("{target}: {error}"))?;
    eprintln!("specwire uart: listening on {target}");
    let mut seen = 0;
    while count.is_none_or(|count| seen < count) {
        let body = tokio::select! {
            body = listener.next() => body.map_err(|error| error.to_string())?,
            () = crate::signals::wait_for_stop_signal() => break,
        };
        let Some(body) = body else {
            eprintln!(
                "specwire uart: the gateway closed the listening connection (a newer listener?)"
            );
            break;
        };
        seen += 1;
        if raw {
            emit(format, to_hex(&body), json!({"raw": to_hex(&body)}));
        } else {
            emit(
                format,
                message_text(&body, table),
                message_json(&body, table),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
