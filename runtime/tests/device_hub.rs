//! The device hub over loopback: registration, subscription, data
//! broadcast, commands, errors, silence for accepted lines, pings, stale
//! devices, id takeover, the console's HTTP side, slow readers, and 600
//! random and malformed lines.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::device::{DeviceHub, DeviceHubConfig, Registry};
use specwire_runtime::net::Limits;
use specwire_testsupport::{eventually, within};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn registry() -> Registry {
    let text = include_str!("../../schema/device/commands.json");
    Registry::parse(text.as_bytes(), "schema/device/commands.json")
        .unwrap()
        .0
}

fn config() -> DeviceHubConfig {
    DeviceHubConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        limits: Limits {
            messages_per_second: None,
            ..DeviceHubConfig::new(registry()).limits
        },
        ..DeviceHubConfig::new(registry())
    }
}

async fn hub(config: DeviceHubConfig) -> DeviceHub {
    within("the hub to start", DeviceHub::start(config))
        .await
        .unwrap()
}

struct Peer(Ws);

impl Peer {
    async fn connect(hub: &DeviceHub) -> Peer {
        let (ws, _) = within("connect", tokio_tungstenite::connect_async(hub.endpoint()))
            .await
            .unwrap();
        Peer(ws)
    }

    async fn device(hub: &DeviceHub, id: &str) -> Peer {
        let mut peer = Peer::connect(hub).await;
        peer.send(&format!("id:{id}")).await;
        peer.settle().await;
        peer
    }

    async fn subscriber(hub: &DeviceHub) -> Peer {
        let mut peer = Peer::connect(hub).await;
        peer.send("s").await;
        peer.settle().await;
        peer
    }

    async fn send(&mut self, text: &str) {
        within("send", self.0.send(Frame::text(text.to_owned())))
            .await
            .unwrap();
    }

    /// The next text frame, skipping the hub's pings; `None` at close.
    async fn next(&mut self) -> Option<String> {
        loop {
            match within("a frame", self.0.next()).await {
                Some(Ok(Frame::Text(text))) if text.as_str() == "ping" => continue,
                Some(Ok(Frame::Text(text))) => return Some(text.as_str().to_owned()),
                Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends `ping` and expects `pong` next: everything sent before was
    /// handled, and answered with nothing.
    async fn settle(&mut self) {
        self.send("ping").await;
        assert_eq!(
            self.next().await.as_deref(),
            Some("pong"),
            "silence, then pong"
        );
    }
}

#[tokio::test]
async fn data_goes_to_subscribers_only_with_the_device_prefix() {
    let hub = hub(config()).await;
    let mut watcher = Peer::subscriber(&hub).await;
    let mut bystander = Peer::connect(&hub).await;
    let mut lamp = Peer::device(&hub, "lamp-1").await;
    lamp.send("temp=21.5").await;
    lamp.send("a:b:c").await;
    assert_eq!(watcher.next().await.as_deref(), Some("lamp-1:temp=21.5"));
    assert_eq!(watcher.next().await.as_deref(), Some("lamp-1:a:b:c"));
    bystander.settle().await;
    lamp.settle().await;
    assert_eq!(hub.devices()[0].last_data, "a:b:c");
}

#[tokio::test]
async fn commands_reach_their_target_or_all_and_errors_reach_no_device() {
    let hub = hub(config()).await;
    let mut one = Peer::device(&hub, "one").await;
    let mut two = Peer::device(&hub, "two").await;
    let mut client = Peer::connect(&hub).await;
    client.send("cmd:one:led:ff0000").await;
    client.send("cmd:all:say:time: 12:00").await;
    client.send("cmd:two:reset").await;
    client.settle().await;
    assert_eq!(one.next().await.as_deref(), Some("led:ff0000"));
    assert_eq!(one.next().await.as_deref(), Some("say:time: 12:00"));
    assert_eq!(two.next().await.as_deref(), Some("say:time: 12:00"));
    assert_eq!(two.next().await.as_deref(), Some("reset"));
    client.send("cmd:one:fly:high").await;
    assert_eq!(
        client.next().await.as_deref(),
        Some("error:unknown command: fly")
    );
    client.send("cmd:nobody:led:00ff00").await;
    assert_eq!(
        client.next().await.as_deref(),
        Some("error:unknown target: nobody")
    );
    // Nothing of those reached a device: their next frame is the pong.
    one.settle().await;
    two.settle().await;
    assert_eq!(hub.stats().commands, 3);
}

#[tokio::test]
async fn lines_that_cannot_be_handled_get_errors_and_the_connection_stays() {
    let hub = hub(config()).await;
    let mut client = Peer::connect(&hub).await;
    for line in ["hello", "", "cmd:x", "id:", "pong"] {
        client.send(line).await;
        let reply = client.next().await.unwrap_or_default();
        assert!(reply.starts_with("error:"), "{line:?}: {reply}");
    }
    client.send("id:all").await;
    assert!(client.next().await.unwrap().starts_with("error:"));
    within("binary", client.0.send(Frame::binary(vec![1, 2, 3])))
        .await
        .unwrap();
    assert!(client.next().await.unwrap().starts_with("error:"));
    client.settle().await;
}

#[tokio::test]
async fn the_hub_pings_devices_and_drops_silent_ones() {
    let hub = hub(DeviceHubConfig {
        ping_interval: Duration::from_millis(100),
        stale_timeout: Duration::from_millis(400),
        ..config()
    })
    .await;
    let mut lively = Peer::device(&hub, "lively").await;
    let mut silent = Peer::device(&hub, "silent").await;
    // The lively device answers every ping; the silent one never reads.
    let answering = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(frame)) = lively.0.next().await {
            if frame.to_text().ok() == Some("ping") {
                pings += 1;
                lively.0.send(Frame::text("pong")).await.unwrap();
                if pings == 8 {
                    return pings;
                }
            }
        }
        pings
    });
    eventually("the silent device to be dropped", || {
        hub.stats().stale_dropped == 1
    })
    .await;
    let ids: Vec<String> = hub.devices().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["lively"]);
    assert_eq!(within("eight pings", answering).await.unwrap(), 8);
    // The dropped device's connection was closed.
    let mut closed = false;
    while let Some(Ok(frame)) = within("the close", silent.0.next()).await {
        if frame.is_close() {
            closed = true;
        }
    }
    assert!(closed);
}

#[tokio::test]
async fn a_second_connection_with_a_known_id_takes_it_over() {
    let hub = hub(config()).await;
    let mut old = Peer::device(&hub, "lamp").await;
    let mut new = Peer::device(&hub, "lamp").await;
    assert!(old.next().await.unwrap().contains("newer connection"));
    assert_eq!(old.next().await, None, "the older connection is closed");
    let mut client = Peer::connect(&hub).await;
    client.send("cmd:lamp:reset").await;
    assert_eq!(new.next().await.as_deref(), Some("reset"));
}

#[tokio::test]
async fn the_console_and_its_json_are_served_on_the_same_port() {
    let hub = hub(config()).await;
    let _lamp = Peer::device(&hub, "lamp-9").await;
    let get = |path: &'static str| {
        let address = hub.local_addr();
        async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
                .await
                .unwrap();
            let mut body = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut body)
                .await
                .unwrap();
            body
        }
    };
    let page = within("the page", get("/")).await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("<title>specwire device console</title>")
    );
    let commands = within("the registry", get("/commands.json")).await;
    assert!(commands.contains("\"led\""));
    let devices = within("the devices", get("/devices.json")).await;
    assert!(devices.contains("\"lamp-9\""));
    assert!(within("a 404", get("/nope"))
        .await
        .starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_with_a_bounded_queue() {
    let hub = hub(DeviceHubConfig {
        limits: Limits {
            max_queued: 64,
            // Long: the overflow, not the timeout, must end the stalled connection.
            write_timeout: Duration::from_secs(60),
            ..config().limits
        },
        ..config()
    })
    .await;
    let _stalled = Peer::subscriber(&hub).await;
    let mut healthy = Peer::subscriber(&hub).await;
    let mut device = Peer::device(&hub, "d").await;
    let payload = "x".repeat(16 * 1024);
    let mut sent = 0;
    while hub.stats().slow_closed == 0 {
        assert!(sent < 4000, "the stalled subscriber was never closed");
        sent += 1;
        device.send(&format!("{sent}:{payload}")).await;
        let line = healthy.next().await.unwrap();
        assert!(line.starts_with(&format!("d:{sent}:")));
    }
    assert_eq!(hub.stats().slow_closed, 1);
    eventually("the stalled subscriber to go", || {
        hub.stats().subscribers == 1
    })
    .await;
}

#[tokio::test]
async fn random_and_malformed_lines_never_break_the_hub() {
    let seed = fastrand::u64(..);
    eprintln!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let hub = hub(config()).await;
    let mut watcher = Peer::subscriber(&hub).await;
    let mut fuzzer = Peer::connect(&hub).await;
    let mut fuzzing_device = Peer::device(&hub, "d-fuzz").await;
    // `id:` becomes `id:f` or `id:d` by connection, so the two never
    // register the same id (which would close the older, by design).
    let pieces = [
        "id:", "cmd:", "all", "led", "say", "s", "ping", "pong", ":", "::", " ", "\n", "ü",
        "\u{0}", "error:", "x",
    ];
    for round in 0..600 {
        let line: String = if rng.u8(..5) == 0 {
            let bytes: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let own_id = if round % 2 == 0 { "id:f" } else { "id:d" };
            (0..rng.usize(1..6))
                .map(|_| match pieces[rng.usize(..pieces.len())] {
                    "id:" => own_id,
                    piece => piece,
                })
                .collect()
        };
        // Lines that would re-register the fuzzing connection under
        // another id are fine too; half go through the registered device.
        let peer = if round % 2 == 0 {
            &mut fuzzer
        } else {
            &mut fuzzing_device
        };
        peer.send(&line).await;
    }
    fuzzer.send("ping").await;
    fuzzing_device.send("ping").await;
    for peer in [&mut fuzzer, &mut fuzzing_device] {
        loop {
            match peer.next().await {
                Some(text) if text == "pong" => break,
                Some(_) => {}
                None => panic!("a fuzzed connection was closed"),
            }
        }
    }
    // The watcher is unaffected: a fresh device's data still reaches it.
    let mut marker = Peer::device(&hub, "marker").await;
    marker.send("after").await;
    loop {
        let line = watcher.next().await.expect("the watcher stays connected");
        if line == "marker:after" {
            break;
        }
    }
    assert!(hub.stats().connections >= 3);
}
