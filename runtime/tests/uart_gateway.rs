//! The uart gateway end to end over a real pty: the module simulator on
//! one side, the gateway's serial link on the other, and local clients on
//! the TCP API speaking frames: requests answered from the store, module
//! commands relayed, the timeout, the listener rules.

use std::time::Duration;

use bytes::BytesMut;
use specwire_protocol::uart::{
    encode_frame, Command, Count, DataValues, GetData, NodeList, NodeState, NodeStatus, Reply,
    Send, SendTracked, UnsolicitedMessage,
};
use specwire_runtime::net::frame_codec::FrameCodec;
use specwire_runtime::uart::gateway::{Gateway, GatewayConfig};
use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig};
use specwire_testsupport::{eventually, temp_dir, within, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

struct Setup {
    gateway: Gateway,
    simulator: ModuleSimulator,
    _dir: TempDir,
}

async fn setup(slow_node: Option<(u16, Duration)>, module_timeout: Duration) -> Setup {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let simulator = ModuleSimulator::start(SimulatorConfig {
        nodes: 3,
        data_interval: Duration::from_millis(100),
        net_interval: Duration::from_millis(300),
        slow_node,
        ..SimulatorConfig::new(&link)
    })
    .expect("start the simulator");
    let mut config = GatewayConfig::new(&link);
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.link.module_timeout = module_timeout;
    let gateway = Gateway::start(config).await.expect("start the gateway");
    Setup {
        gateway,
        simulator,
        _dir: dir,
    }
}

/// A local connection: frames out, frames in.
struct Client {
    stream: TcpStream,
    codec: FrameCodec,
    buffer: BytesMut,
}

impl Client {
    async fn connect(gateway: &Gateway) -> Client {
        Client {
            stream: TcpStream::connect(gateway.local_addr()).await.unwrap(),
            codec: FrameCodec::default(),
            buffer: BytesMut::new(),
        }
    }

    async fn send(&mut self, body: &[u8]) {
        self.stream.write_all(&encode_frame(body)).await.unwrap();
    }

    /// The next frame's body; `None` once the gateway closed.
    async fn next(&mut self) -> Option<Vec<u8>> {
        within("a frame from the gateway", async {
            loop {
                if let Some(body) = self.codec.decode(&mut self.buffer).unwrap() {
                    return Some(body);
                }
                if self.stream.read_buf(&mut self.buffer).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
    }
}

/// One request connection: the reply, and the gateway closes it.
async fn request(gateway: &Gateway, command: &Command) -> Vec<u8> {
    let mut client = Client::connect(gateway).await;
    client.send(&command.encode()).await;
    let reply = client.next().await.expect("a reply");
    assert_eq!(
        client.next().await,
        None,
        "the gateway closes a request connection"
    );
    reply
}

fn success(reply: &[u8]) -> &[u8] {
    match Reply::decode(reply) {
        Ok(Reply::Success(_)) => &reply[1..],
        other => panic!("expected S, got {other:?}"),
    }
}

#[tokio::test]
async fn the_store_answers_what_the_module_reported() {
    let setup = setup(None, Duration::from_secs(2)).await;
    let gateway = &setup.gateway;
    // NET every 300 ms makes every node active, whatever was missed at start.
    eventually("three active nodes", || {
        gateway.with_store(|store| store.active_count()) == 3
    })
    .await;
    let count = request(gateway, &Command::ActiveCount(Default::default())).await;
    assert_eq!(Count::decode(success(&count)).unwrap().count, 3);
    let active = request(
        gateway,
        &Command::NodeStatus(NodeStatus {
            state: NodeState::Active,
        }),
    )
    .await;
    let nodes = NodeList::decode(success(&active)).unwrap();
    let addrs: Vec<u16> = nodes.nodes.iter().map(|node| node.addr).collect();
    assert_eq!(addrs, [1, 2, 3]);
    assert!(nodes.nodes.iter().all(|node| !node.uuid.is_nil()));

    eventually("temperatures from every node", || {
        gateway.with_store(|store| store.latest(1, 0).len()) == 3
    })
    .await;
    let values = request(
        gateway,
        &Command::GetData(GetData {
            data_id: 1,
            addr: 0,
        }),
    )
    .await;
    let values = DataValues::decode(success(&values)).unwrap();
    assert_eq!(
        (values.data_id, values.length, values.values.len()),
        (1, 2, 3)
    );
    let one = request(
        gateway,
        &Command::GetData(GetData {
            data_id: 3,
            addr: 2,
        }),
    )
    .await;
    let one = DataValues::decode(success(&one)).unwrap();
    assert_eq!(one.values.len(), 1);
    assert_eq!(one.values[0].addr, 2);

    let info = request(gateway, &Command::NetworkInfo(Default::default())).await;
    let info: serde_json::Value = serde_json::from_slice(success(&info)).unwrap();
    assert_eq!(info["activeCount"], 3);
    assert_eq!(info["nodes"][0]["addr"], "0x0001");
    assert!(info["nodes"][0]["data"]["temperature"]["text"]
        .as_str()
        .unwrap()
        .ends_with("°C"));

    let unknown = request(
        gateway,
        &Command::GetData(GetData {
            data_id: 99,
            addr: 0,
        }),
    )
    .await;
    assert!(matches!(Reply::decode(&unknown), Ok(Reply::Failure { .. })));
    setup.simulator.stop().await;
}

#[tokio::test]
async fn module_commands_are_relayed_and_a_slow_module_times_out() {
    let setup = setup(
        Some((2, Duration::from_millis(1500))),
        Duration::from_millis(400),
    )
    .await;
    let gateway = &setup.gateway;
    let sent = request(
        gateway,
        &Command::Send(Send {
            dst: 1,
            payload: b"hello".to_vec(),
        }),
    )
    .await;
    assert_eq!(sent, b"S");
    let unknown_node = request(
        gateway,
        &Command::Send(Send {
            dst: 0x0777,
            payload: vec![1],
        }),
    )
    .await;
    assert!(matches!(
        Reply::decode(&unknown_node),
        Ok(Reply::Failure { .. })
    ));
    let slow = request(
        gateway,
        &Command::SendTracked(SendTracked {
            dst: 2,
            payload: vec![1, 2],
        }),
    )
    .await;
    assert_eq!(
        Reply::decode(&slow).unwrap(),
        Reply::Failure {
            message: "module timeout".to_owned()
        }
    );
    // The slow node's late `S` is not taken for the next command's reply.
    eventually("the late reply dropped", || {
        gateway
            .link_counters()
            .late_replies
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    let again = request(
        gateway,
        &Command::Send(Send {
            dst: 3,
            payload: vec![9],
        }),
    )
    .await;
    assert_eq!(again, b"S");
    let bad = {
        let mut client = Client::connect(gateway).await;
        client.send(b"NOPE!").await;
        client.next().await.expect("a reply")
    };
    assert!(matches!(Reply::decode(&bad), Ok(Reply::Failure { .. })));
    setup.simulator.stop().await;
}

#[tokio::test]
async fn the_listener_gets_every_m_frame_and_a_newer_one_replaces_it() {
    let setup = setup(None, Duration::from_secs(2)).await;
    let gateway = &setup.gateway;
    let mut first = Client::connect(gateway).await;
    first.send(b"LSTN-").await;
    assert_eq!(first.next().await.as_deref(), Some(&b"S"[..]));
    for _ in 0..3 {
        let body = first.next().await.expect("an M frame");
        assert_eq!(body[0], b'M');
        UnsolicitedMessage::decode(&body[1..]).expect("a well-formed M body");
    }
    let mut second = Client::connect(gateway).await;
    second.send(b"LSTN-").await;
    assert_eq!(second.next().await.as_deref(), Some(&b"S"[..]));
    // The first is closed (after what was queued for it).
    within("the first listener closed", async {
        while first.next().await.is_some() {}
    })
    .await;
    let body = second
        .next()
        .await
        .expect("an M frame for the newer listener");
    assert_eq!(body[0], b'M');
    setup.simulator.stop().await;
}
