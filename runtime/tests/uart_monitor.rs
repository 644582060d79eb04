//! The gateway's WebSocket monitor over a real pty, and the serial port
//! disappearing under the gateway: every monitor message is checked
//! against the `monitor` schema; the unplugged port is reported on the
//! monitor, answered `F` on the API, and reopened when it returns.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use specwire_protocol::monitor::Message;
use specwire_protocol::uart::{ActiveCount, Command, RestartRoot};
use specwire_protocol::JsonProtocol;
use specwire_runtime::net::{Backoff, ServerConfig};
use specwire_runtime::uart::client::request;
use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig};
use specwire_testsupport::{temp_dir, within, within_for};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn simulator(link: &Path) -> ModuleSimulator {
    ModuleSimulator::start(SimulatorConfig {
        nodes: 3,
        data_interval: Duration::from_millis(50),
        net_interval: Duration::from_millis(200),
        ..SimulatorConfig::new(link)
    })
    .expect("start the simulator")
}

async fn gateway(link: &Path) -> Gateway {
    let mut config = GatewayConfig::new(link);
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.monitor = Some(ServerConfig::new("127.0.0.1:0".parse().unwrap()));
    // Quick reopening, so the test does not wait for the default backoff.
    config.link.reopen = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        ..Backoff::default()
    };
    Gateway::start(config).await.expect("start the gateway")
}

async fn connect(gateway: &Gateway) -> Ws {
    let url = format!("ws://{}/", gateway.monitor_addr().expect("a monitor"));
    let (ws, _) = within(
        "the monitor's handshake",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect to the monitor");
    ws
}

/// The next monitor message, checked against the schema.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = within("a monitor message", ws.next())
            .await
            .expect("the monitor closed")
            .expect("a WebSocket frame");
        if let WsMessage::Text(text) = frame {
            if let Err(error) = Message::from_slice(text.as_bytes()) {
                panic!("a monitor message breaks the monitor schema: {error}\n{text}");
            }
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// Reads until a message of `kind` satisfying `wanted` arrives.
async fn until(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    within_for(Duration::from_secs(10), what, async {
        loop {
            let message = next(ws).await;
            if wanted(&message) {
                return message;
            }
        }
    })
    .await
}

#[tokio::test]
async fn the_monitor_sends_a_snapshot_then_every_frame_and_change_all_within_the_schema() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let _module = simulator(&link);
    let gateway = gateway(&link).await;

    let mut ws = connect(&gateway).await;
    let snapshot = next(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["link"]["path"], link.display().to_string());

    // Every kind of event the module causes: its frames, new nodes, values.
    let frame = until(&mut ws, "a DATA_UPDATE frame", |m| {
        m["type"] == "frame" && m["message"]["opcode"] == "DATA_UPDATE"
    })
    .await;
    assert!(frame["raw"].as_str().unwrap().starts_with("4d"), "{frame}");
    // The frame's changes follow it: its data, from the same node.
    let data = next(&mut ws).await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["node"], frame["message"]["src"]);
    assert_eq!(data["values"], frame["message"]["values"]);

    // What a client sends is ignored and the connection stays.
    ws.send(WsMessage::text("hello?")).await.unwrap();
    until(&mut ws, "a frame after a client's text", |m| {
        m["type"] == "frame"
    })
    .await;

    // A second client gets the store as it is now: the nodes with values.
    let mut second = connect(&gateway).await;
    let snapshot = next(&mut second).await;
    let nodes = snapshot["network"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{snapshot}");
    assert!(snapshot["counters"]["framesIn"].as_u64().unwrap() > 0);
    assert_eq!(snapshot["link"]["open"], true);
}

#[tokio::test]
async fn other_paths_are_refused_and_plain_http_gets_the_snapshot() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let _module = simulator(&link);
    let gateway = gateway(&link).await;
    let monitor = gateway.monitor_addr().unwrap();

    let refused = tokio_tungstenite::connect_async(format!("ws://{monitor}/ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404, got {other:?}"),
    }

    let mut stream = TcpStream::connect(monitor).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within("the HTTP answer", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let snapshot = Message::from_slice(body.as_bytes()).expect("a valid snapshot");
    assert!(matches!(snapshot, Message::Snapshot(_)));
}

#[tokio::test]
async fn an_unplugged_port_is_reported_answered_f_and_reopened_when_it_returns() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let module = simulator(&link);
    let gateway = gateway(&link).await;
    let mut ws = connect(&gateway).await;
    until(&mut ws, "a frame through the first port", |m| {
        m["type"] == "frame"
    })
    .await;
    let api = gateway.local_addr().to_string();
    let reset = || {
        request(
            &api,
            &Command::RestartRoot(RestartRoot {}),
            Duration::from_secs(5),
        )
    };
    assert_eq!(within("RST-R", reset()).await.unwrap(), b"S");

    // Unplug: the module's pty goes away under the gateway.
    module.stop().await;
    let lost = until(&mut ws, "the port reported gone", |m| m["type"] == "link").await;
    assert_eq!(lost["link"]["open"], false, "{lost}");
    assert!(lost["link"]["detail"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let reply = within("RST-R while unplugged", reset()).await.unwrap();
    assert_eq!(reply, b"F\x17serial port unavailable");

    // Plug it back in (a new pty at the same path): reopened, working.
    let _module = simulator(&link);
    let opened = until(&mut ws, "the port reported open", |m| {
        m["type"] == "link" && m["link"]["open"] == true
    })
    .await;
    assert!(opened["link"].get("detail").is_none());
    until(&mut ws, "a frame through the new port", |m| {
        m["type"] == "frame"
    })
    .await;
    assert_eq!(
        within("RST-R after replugging", reset()).await.unwrap(),
        b"S"
    );
    assert!(
        gateway
            .link_counters()
            .opened
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

/// Serial noise (bit flips and dropped bytes on the module's line): the
/// gateway keeps answering, counts what it dropped, and stores nothing
/// from a frame it could tell was corrupt. The protocol has no checksum,
/// so a flipped bit inside a value byte makes a well-formed frame no
/// receiver can tell from a real one; what can be told (bad escapes, a
/// frame cut short by the next `0xFF`, a payload that does not split by
/// the data-type table) never reaches the store.
#[tokio::test]
async fn with_a_noisy_line_the_gateway_keeps_working_and_stores_nothing_detectably_corrupt() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let module = ModuleSimulator::start(SimulatorConfig {
        nodes: 4,
        data_interval: Duration::from_millis(10),
        net_interval: Duration::from_millis(100),
        noise: 0.01,
        seed: 11,
        ..SimulatorConfig::new(&link)
    })
    .expect("start the simulator");
    let gateway = gateway(&link).await;
    let mut ws = connect(&gateway).await;
    next(&mut ws).await;

    let table = specwire_runtime::uart::table::DataTypeTable::schema_default();
    let (mut frames, mut unreadable) = (0u32, 0u64);
    let mut stored_from_unreadable = Vec::new();
    let mut last_unreadable = false;
    within_for(
        Duration::from_secs(30),
        "400 frames through the noise",
        async {
            while frames < 400 {
                let message = next(&mut ws).await;
                match message["type"].as_str() {
                    Some("frame") => {
                        frames += 1;
                        last_unreadable = message["message"].get("error").is_some();
                        unreadable += u64::from(last_unreadable);
                    }
                    Some("data") if last_unreadable => stored_from_unreadable.push(message),
                    _ => {}
                }
            }
        },
    )
    .await;
    assert!(
        stored_from_unreadable.is_empty(),
        "{stored_from_unreadable:?}"
    );
    let counters = gateway.link_counters();
    let dropped = counters
        .frames_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        dropped + unreadable > 0,
        "the noise is seen ({:?})",
        module.stats()
    );
    // Every stored value has its type's length: no corrupt split got in.
    gateway.with_store(|store| {
        for node in store.nodes() {
            for (id, samples) in &node.history {
                let row = table.get(*id).expect("only known data ids are stored");
                assert!(samples.iter().all(|sample| sample.raw.len() == row.length));
            }
        }
    });
    // And the gateway still answers, locally and through the noisy line
    // (a reply may be hit by the noise too: one intact `S` is enough).
    let api = gateway.local_addr().to_string();
    let active = within(
        "ACT-C",
        request(
            &api,
            &Command::ActiveCount(ActiveCount {}),
            Duration::from_secs(5),
        ),
    )
    .await
    .unwrap();
    assert_eq!(active.first(), Some(&b'S'));
    within_for(
        Duration::from_secs(30),
        "an intact reply through the noise",
        async {
            loop {
                let reply = request(
                    &api,
                    &Command::RestartRoot(RestartRoot {}),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
                if reply == b"S" {
                    break;
                }
            }
        },
    )
    .await;
}
