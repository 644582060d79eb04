//! `specwire demo uart`: a simulated root module on a pseudo-terminal,
//! the gateway on it, a listener, a few requests and the WebSocket
//! monitor, checked.

use std::time::Duration;

use futures_util::StreamExt;
use specwire_protocol::uart::{
    ActiveCount, Command, Count, DataValues, GetData, NodeList, NodeState, NodeStatus, Reply, Send,
    SendTracked,
};
use specwire_protocol::JsonProtocol;
use specwire_runtime::net::ServerConfig;
use specwire_runtime::uart::client::{listen, request};
use specwire_runtime::uart::describe::{addr, message_text};
use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
use specwire_runtime::uart::table::DataTypeTable;
use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig};

use super::step;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn ask(target: &str, command: Command) -> Result<Vec<u8>, String> {
    let reply = request(target, &command, TIMEOUT)
        .await
        .map_err(|error| format!("{}: {error}", command.name()))?;
    match Reply::decode(&reply) {
        Ok(Reply::Success(_)) => Ok(reply[1..].to_vec()),
        Ok(Reply::Failure { message }) => Err(format!("{} failed: {message}", command.name())),
        _ => Err(format!("{}: an unexpected reply", command.name())),
    }
}

pub(super) async fn demo() -> Result<(), String> {
    step(
        1,
        "A simulated root module on a pseudo-terminal (3 nodes; node 0x0003 is slow)",
    );
    let dir = std::env::temp_dir().join(format!("specwire-demo-uart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let link = dir.join("module");
    let simulator = ModuleSimulator::start(SimulatorConfig {
        nodes: 3,
        data_interval: Duration::from_millis(200),
        net_interval: Duration::from_millis(500),
        slow_node: Some((3, Duration::from_secs(1))),
        ..SimulatorConfig::new(&link)
    })
    .map_err(|error| format!("starting the simulator: {error}"))?;
    println!(
        "    module on {} ({})",
        link.display(),
        simulator.tty_path().display()
    );

    step(
        2,
        "The gateway opens it as its serial port and serves the local API",
    );
    let mut config = GatewayConfig::new(&link);
    config.server.bind = "127.0.0.1:0".parse().map_err(|_| "bad address")?;
    config.link.module_timeout = Duration::from_millis(500);
    config.monitor = Some(ServerConfig::new(
        "127.0.0.1:0".parse().map_err(|_| "bad address")?,
    ));
    let gateway = Gateway::start(config)
        .await
        .map_err(|error| format!("starting the gateway: {error}"))?;
    let target = gateway.local_addr().to_string();
    println!("    local API on tcp://{target} (module timeout 500 ms)");
    let monitor = gateway.monitor_addr().ok_or("the monitor did not start")?;
    println!("    monitor on ws://{monitor}/");

    step(
        3,
        "A listener (LSTN-) sees the module's M frames, decoded with the data-type table",
    );
    let mut listener = listen(&target, TIMEOUT)
        .await
        .map_err(|error| error.to_string())?;
    let table = DataTypeTable::schema_default();
    for _ in 0..3 {
        let body = tokio::time::timeout(TIMEOUT, listener.next())
            .await
            .map_err(|_| "no M frame within 5 s")?
            .map_err(|error| error.to_string())?
            .ok_or("the gateway closed the listener")?;
        println!("    {}", message_text(&body, &table));
    }

    step(
        4,
        "Requests answered from the node store: ACT-C, NSTAT A, [GET] temperature",
    );
    ask_the_store(&target, &table).await?;

    step(
        5,
        "Module commands are relayed: SEND- to 0x0001, then SENDI to the slow 0x0003",
    );
    ask(
        &target,
        Command::Send(Send {
            dst: 1,
            payload: b"hello".to_vec(),
        }),
    )
    .await?;
    println!("    SEND- 0x0001 \"hello\": S");
    match ask(
        &target,
        Command::SendTracked(SendTracked {
            dst: 3,
            payload: vec![1],
        }),
    )
    .await
    {
        Err(error) if error.ends_with("module timeout") => {
            println!("    SENDI 0x0003: F module timeout (as expected)")
        }
        other => {
            return Err(format!(
                "SENDI to the slow node: expected a module timeout, got {other:?}"
            ))
        }
    }

    step(
        6,
        "A dashboard on the WebSocket monitor: a snapshot, then the module's frames as JSON",
    );
    watch_the_monitor(&format!("ws://{monitor}/")).await?;

    let link_counters = gateway.link_counters();
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "\n    gateway: {} frames in, {} out, {} timeout(s), {} late reply(ies) dropped",
        load(&link_counters.frames_in),
        load(&link_counters.frames_out),
        load(&link_counters.timeouts),
        load(&link_counters.late_replies)
    );
    gateway.shutdown(Duration::from_secs(1)).await;
    simulator.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nDone: the store answered, commands reached the module, the slow node timed out, the monitor showed it all.");
    Ok(())
}

/// ACT-C until the three nodes are active, then NSTAT A and [GET].
async fn ask_the_store(target: &str, table: &DataTypeTable) -> Result<(), String> {
    let active = async {
        loop {
            let count = ask(target, Command::ActiveCount(ActiveCount)).await?;
            let count = Count::decode(&count)
                .map_err(|error| error.to_string())?
                .count;
            if count == 3 {
                return Ok::<u8, String>(count);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let count = tokio::time::timeout(Duration::from_secs(10), active)
        .await
        .map_err(|_| "the three nodes never became active")??;
    println!("    ACT-C: {count} active nodes");
    let nodes = ask(
        target,
        Command::NodeStatus(NodeStatus {
            state: NodeState::Active,
        }),
    )
    .await?;
    for node in NodeList::decode(&nodes)
        .map_err(|error| error.to_string())?
        .nodes
    {
        println!("    NSTAT A: {}  {}", addr(node.addr), node.uuid);
    }
    let temperature = table.get(1).ok_or("no temperature in the table")?;
    let values = ask(
        target,
        Command::GetData(GetData {
            data_id: 1,
            addr: 0,
        }),
    )
    .await?;
    for value in DataValues::decode(&values)
        .map_err(|error| error.to_string())?
        .values
    {
        println!(
            "    [GET] temperature: {}  {}",
            addr(value.addr),
            temperature.show(&value.data)
        );
    }
    Ok(())
}

/// The monitor's first messages, each checked against the `monitor` schema.
async fn watch_the_monitor(url: &str) -> Result<(), String> {
    use specwire_protocol::monitor::Message;
    use tokio_tungstenite::tungstenite::Message as Frame;

    let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "the monitor did not answer within 5 s")?
        .map_err(|error| format!("the monitor: {error}"))?;
    let mut shown = 0;
    while shown < 4 {
        let frame = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .map_err(|_| "no monitor message within 5 s")?
            .ok_or("the monitor closed")?
            .map_err(|error| format!("the monitor: {error}"))?;
        let Frame::Text(text) = frame else { continue };
        let message = Message::from_slice(text.as_bytes())
            .map_err(|error| format!("a monitor message breaks its schema: {error}"))?;
        let line = match &message {
            Message::Snapshot(snapshot) => format!(
                "snapshot: port open {}, {} node(s), {} active",
                snapshot.link.open,
                snapshot.network.nodes.len(),
                snapshot.network.active_count
            ),
            Message::Frame(frame) => format!(
                "frame {} from {}",
                frame.message.opcode, frame.message.src.0
            ),
            Message::NodeChanged(node) => format!("node {} is {:?}", node.node.0, node.state),
            Message::DataReceived(data) => {
                format!("data from {}: {} value(s)", data.node.0, data.values.len())
            }
            Message::LinkChanged(link) => format!("link open {}", link.link.open),
            Message::Lagged(lagged) => format!("lagged, {} skipped", lagged.skipped),
        };
        println!("    {line}  (valid monitor/{})", message.name());
        shown += 1;
    }
    Ok(())
}
