//! The uart module simulator seen from where a gateway sits: its pty link
//! opened with the `serialport` crate, real frames written and read, every
//! reply and message checked with the generated decoders
//! (`specwire_protocol::uart`). Plus a peer this project did not write:
//! interop/uart_module_check.py, on pyserial.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use specwire_protocol::uart::{
    encode_frame, frame_decoder, Command, DataType, DecoderStats, Notification, Reply,
    SuccessReply, UnsolicitedMessage,
};
use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig, ROOT_ADDR};
use specwire_testsupport::{eventually, interop_python, temp_dir, within, workspace, TempDir};
use tokio::sync::mpsc;

/// The gateway's end of the line: a serial port on the simulator's link, a
/// thread reading it into a resynchronising frame decoder.
struct Port {
    port: Box<dyn serialport::SerialPort>,
    bodies: mpsc::Receiver<Vec<u8>>,
    /// `M` frames that arrived while waiting for a reply.
    messages: Vec<UnsolicitedMessage>,
    decoder: Arc<Mutex<DecoderStats>>,
    bytes: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Port {
    fn open(path: &Path) -> Port {
        let port = serialport::new(path.to_string_lossy(), 115_200)
            .timeout(Duration::from_millis(20))
            .open()
            .unwrap_or_else(|error| panic!("open {} as a serial port: {error}", path.display()));
        let mut reader = port.try_clone().expect("clone the port for reading");
        let (tx, bodies) = mpsc::channel(4096);
        let decoder = Arc::new(Mutex::new(DecoderStats::default()));
        let bytes = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (stats, count, stop) = (Arc::clone(&decoder), Arc::clone(&bytes), Arc::clone(&done));
        let reader = std::thread::spawn(move || {
            let mut frames = frame_decoder();
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(error) if error.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(_) => return,
                };
                count.fetch_add(n as u64, Ordering::Relaxed);
                let mut closed = false;
                frames.decode(&buf[..n], |body| {
                    closed |= tx.blocking_send(body.to_vec()).is_err()
                });
                *stats.lock().expect("decoder stats") = frames.stats();
                if closed {
                    return;
                }
            }
        });
        Port {
            port,
            bodies,
            messages: Vec::new(),
            decoder,
            bytes,
            done,
            reader: Some(reader),
        }
    }

    fn send(&mut self, body: &[u8]) {
        self.port
            .write_all(&encode_frame(body))
            .expect("write a frame");
    }

    async fn next_body(&mut self, what: &str) -> Vec<u8> {
        within(what, self.bodies.recv())
            .await
            .expect("the reading thread stopped")
    }

    /// The next `S`/`F` reply; `M` frames before it go to `messages`.
    async fn reply(&mut self, to: &str) -> Reply {
        loop {
            let body = self.next_body(&format!("the reply to {to}")).await;
            match Reply::decode(&body) {
                Ok(Reply::Message(message)) => self.messages.push(message),
                Ok(reply) => return reply,
                Err(error) => panic!("undecodable body {body:02x?} waiting for {to}: {error}"),
            }
        }
    }

    /// The next `M` frame (taking the oldest already seen first).
    async fn message(&mut self, what: &str) -> UnsolicitedMessage {
        if !self.messages.is_empty() {
            return self.messages.remove(0);
        }
        let body = self.next_body(what).await;
        match Reply::decode(&body) {
            Ok(Reply::Message(message)) => message,
            other => panic!("{other:?} where {what} was due"),
        }
    }

    fn decoder(&self) -> DecoderStats {
        *self.decoder.lock().expect("decoder stats")
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // Close the port for real (the reader's clone too), as a gateway
        // that exits would: the flock goes with the last descriptor.
        self.done.store(true, Ordering::Relaxed);
        self.bodies.close();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn config(dir: &TempDir) -> SimulatorConfig {
    SimulatorConfig {
        // Long enough that no periodic message interleaves unless a test wants it.
        data_interval: Duration::from_secs(3600),
        net_interval: Duration::from_secs(3600),
        ..SimulatorConfig::new(dir.path().join("module"))
    }
}

fn node_connected(message: &UnsolicitedMessage) -> (u16, u16, uuid::Uuid) {
    match &message.body {
        Notification::NodeConnected(nod) => (message.src, nod.addr, nod.uuid),
        other => panic!("{other:?} where a NOD was due"),
    }
}

async fn expect_nods(port: &mut Port, simulator: &ModuleSimulator, when: &str) {
    for node in simulator.nodes() {
        let message = port
            .message(&format!("the NOD of node {} {when}", node.addr))
            .await;
        assert_eq!(
            node_connected(&message),
            (ROOT_ADDR, node.addr, node.uuid),
            "{when}"
        );
    }
}

#[tokio::test]
async fn every_module_command_gets_one_reply_of_its_layout() {
    let dir = temp_dir();
    let simulator = ModuleSimulator::start(config(&dir)).expect("start the simulator");
    assert_eq!(
        std::fs::read_link(simulator.link()).expect("the link"),
        simulator.tty_path()
    );
    let mut port = Port::open(simulator.link());
    expect_nods(&mut port, &simulator, "at start").await;
    let uuids: Vec<_> = simulator.nodes().to_vec();
    assert_eq!(uuids.len(), 3);
    assert_eq!(uuids.iter().map(|n| n.addr).collect::<Vec<_>>(), [1, 2, 3]);

    // (body, expected kind, a piece of the failure message)
    let cases: &[(&[u8], u8, &str)] = &[
        (b"SEND-\x00\x01hello", b'S', ""),
        (b"SEND-\x00\x03", b'S', ""),
        (b"SENDI\x00\x02\xff\xfe\xfa", b'S', ""),
        (b"SEND-\x00\x09hi", b'F', "unknown node 0x0009"),
        (b"SENDI\x01\x00hi", b'F', "unknown node 0x0100"),
        (b"BCAST\x00\x00to all", b'S', ""),
        (b"BCAST\x00\x01x", b'F', "Broadcast.dst"),
        (b"CLEAN", b'S', ""),
        (b"STATE", b'S', ""),
        (b"NINFO", b'S', ""),
        (b"SEND", b'F', "command name"),
        (b"HELLOworld", b'F', "unknown command"),
        (b"CLEANx", b'F', "trailing"),
        (b"NSTATA", b'F', "gateway"),
        (b"[GET]\x01\x00\x00", b'F', "gateway"),
        (b"ACT-C", b'F', "gateway"),
        (b"LSTN-", b'F', "gateway"),
    ];
    for &(body, kind, reason) in cases {
        let what = String::from_utf8_lossy(body).into_owned();
        port.send(body);
        let reply = port.reply(&what).await;
        assert_eq!(reply.kind_byte(), kind, "{what}: {reply:?}");
        match (&reply, Command::decode(body)) {
            (Reply::Success(result), Ok(Command::NetworkInfo(_))) => {
                // The module's own raw bytes: the network as a node list.
                let list = specwire_protocol::uart::NodeList::decode(result).expect("NINFO bytes");
                assert_eq!(list.nodes, uuids);
            }
            (Reply::Success(result), Ok(command)) => {
                let typed = command
                    .decode_success(result)
                    .expect("the command's layout");
                if let Command::State(_) = command {
                    assert_eq!(typed, SuccessReply::Bytes(b"A".to_vec()));
                } else {
                    assert_eq!(typed, SuccessReply::Empty, "{what}");
                }
            }
            (Reply::Failure { message }, _) => {
                assert!(message.contains(reason), "{what}: {message}");
                assert!(message.len() <= 255);
            }
            (other, _) => panic!("{what}: {other:?}"),
        }
    }
    assert!(
        port.messages.is_empty(),
        "no message interleaved: {:?}",
        port.messages
    );

    // RST-R: S, then RST, then the NODs again.
    port.send(b"RST-R");
    assert_eq!(port.reply("RST-R").await, Reply::Success(Vec::new()));
    let reset = port.message("RST after RST-R").await;
    assert_eq!(
        (reset.src, reset.body),
        (ROOT_ADDR, Notification::RootReset(Default::default()))
    );
    expect_nods(&mut port, &simulator, "after RST-R").await;

    // Pipelined (more than the gateway would do): replies come in order.
    for body in [&b"STATE"[..], b"SEND-\x00\x07", b"CLEAN", b"NSTATD"] {
        port.send(body);
    }
    let kinds = [b'S', b'F', b'S', b'F'];
    for (n, kind) in kinds.into_iter().enumerate() {
        assert_eq!(
            port.reply(&format!("pipelined #{n}")).await.kind_byte(),
            kind
        );
    }

    // Exactly one reply per command: the counters agree, and nothing else arrives
    // before the answer to one more command.
    let answered = (cases.len() + 1 + kinds.len()) as u64;
    eventually("every command counted", || {
        let stats = simulator.stats();
        stats.commands.total() == answered && stats.succeeded + stats.failed == answered
    })
    .await;
    port.send(b"STATE");
    assert_eq!(
        port.reply("a last STATE").await,
        Reply::Success(b"A".to_vec())
    );
    let stats = simulator.stats();
    assert_eq!(stats.commands.total(), answered + 1);
    assert_eq!((stats.commands.send, stats.commands.send_tracked), (4, 2));
    assert_eq!(stats.commands.rejected, 9);
    assert_eq!(stats.messages.node_connected, 6);
    assert_eq!(stats.messages.root_reset, 1);
    assert_eq!(stats.frames_received, answered + 1);
    assert_eq!(port.decoder().dropped(), 0);

    // The gateway closes the port and opens it again: the module carries on.
    drop(port);
    let mut port = Port::open(simulator.link());
    port.send(b"SENDI\x00\x01again");
    assert_eq!(
        port.reply("SENDI after a reopen").await,
        Reply::Success(Vec::new())
    );

    let link = simulator.link().to_path_buf();
    simulator.stop().await;
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is removed on stop"
    );
}

#[tokio::test]
async fn data_updates_and_network_status_follow_the_schema_tables() {
    let dir = temp_dir();
    let simulator = ModuleSimulator::start(SimulatorConfig {
        nodes: 4,
        data_interval: Duration::from_millis(50),
        net_interval: Duration::from_millis(120),
        seed: 42,
        ..config(&dir)
    })
    .expect("start the simulator");
    let mut port = Port::open(simulator.link());
    expect_nods(&mut port, &simulator, "at start").await;
    // Readings per node, in arrival order.
    let mut readings: Vec<Vec<Vec<(DataType, i64)>>> = vec![Vec::new(); 4];
    let mut net = 0;
    while net < 2 || readings.iter().any(|r| r.len() < 5) {
        let message = port.message("DATA_UPDATE and NET messages").await;
        match message.body {
            Notification::DataUpdate(update) => {
                let slot = usize::from(message.src)
                    .checked_sub(1)
                    .and_then(|i| readings.get_mut(i))
                    .unwrap_or_else(|| panic!("DATA_UPDATE from {:#06x}", message.src));
                let values: Vec<(DataType, i64)> = update
                    .entries
                    .iter()
                    .map(|entry| {
                        let value = entry.value().expect("a value of the table's type");
                        let kind = entry.data_type().expect("an id in the table");
                        assert_eq!(entry.data.len(), kind.length());
                        (kind, number(value))
                    })
                    .collect();
                let kinds: Vec<DataType> = values.iter().map(|(kind, _)| *kind).collect();
                assert_eq!(
                    kinds,
                    DataType::ALL,
                    "every data type of the table, in order"
                );
                slot.push(values);
            }
            Notification::NetworkStatus(status) => {
                assert_eq!(message.src, ROOT_ADDR);
                assert_eq!(status.nodes, simulator.nodes());
                net += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for node in &readings {
        for reading in node {
            for &(kind, value) in reading {
                let plausible = match kind {
                    DataType::Temperature => (-4000..=8500).contains(&value),
                    DataType::Humidity => (0..=10_000).contains(&value),
                    DataType::Battery => (0..=100).contains(&value),
                    DataType::Light => (0..=100_000).contains(&value),
                    DataType::Pressure => (90_000..=110_000).contains(&value),
                    DataType::Counter => value >= 0,
                };
                assert!(plausible, "{kind:?} = {value}");
            }
        }
        let counters: Vec<i64> = node.iter().map(|r| r[5].1).collect();
        assert!(
            counters.windows(2).all(|w| w[0] <= w[1]),
            "a monotonic counter: {counters:?}"
        );
        assert!(node.windows(2).any(|w| w[0] != w[1]), "readings change");
    }
    simulator.stop().await;
}

fn number(value: specwire_protocol::uart::DataValue) -> i64 {
    use specwire_protocol::uart::DataValue as V;
    match value {
        V::Temperature(v) => i64::from(v),
        V::Humidity(v) | V::Light(v) => i64::from(v),
        V::Battery(v) => i64::from(v),
        V::Pressure(v) | V::Counter(v) => i64::from(v),
    }
}

#[tokio::test]
async fn a_slow_node_delays_its_confirmation_and_later_replies_keep_their_order() {
    let dir = temp_dir();
    let delay = Duration::from_millis(700);
    let simulator = ModuleSimulator::start(SimulatorConfig {
        slow_node: Some((2, delay)),
        data_interval: Duration::from_millis(100),
        ..config(&dir)
    })
    .expect("start the simulator");
    let mut port = Port::open(simulator.link());
    expect_nods(&mut port, &simulator, "at start").await;
    // Another node answers at once.
    let started = Instant::now();
    port.send(b"SENDI\x00\x01quick");
    assert_eq!(
        port.reply("SENDI to node 1").await,
        Reply::Success(Vec::new())
    );
    assert!(started.elapsed() < delay, "{:?}", started.elapsed());
    // The slow one: its S comes after the delay, the next command's after it.
    port.messages.clear();
    let started = Instant::now();
    port.send(b"SENDI\x00\x02slow");
    port.send(b"SEND-\x00\x09");
    assert_eq!(
        port.reply("SENDI to the slow node").await,
        Reply::Success(Vec::new())
    );
    let waited = started.elapsed();
    assert!(
        waited >= delay,
        "confirmed after {waited:?}, before {delay:?}"
    );
    assert!(
        port.messages
            .iter()
            .any(|m| matches!(m.body, Notification::DataUpdate(_))),
        "messages keep flowing while a confirmation is due"
    );
    assert!(
        matches!(port.reply("SEND- after it").await, Reply::Failure { message } if message.contains("0x0009"))
    );
    // SEND- to the slow node is not tracked, so not slow.
    let started = Instant::now();
    port.send(b"SEND-\x00\x02");
    assert_eq!(
        port.reply("SEND- to the slow node").await,
        Reply::Success(Vec::new())
    );
    assert!(started.elapsed() < delay);
    simulator.stop().await;
}

#[tokio::test]
async fn on_a_noisy_line_the_decoder_resynchronises_and_most_frames_arrive() {
    let dir = temp_dir();
    let simulator = ModuleSimulator::start(SimulatorConfig {
        nodes: 5,
        data_interval: Duration::from_millis(20),
        noise: 0.005,
        seed: 9,
        ..config(&dir)
    })
    .expect("start the simulator");
    let mut port = Port::open(simulator.link());
    eventually("300 messages sent", || {
        simulator.stats().messages.total() >= 300
    })
    .await;
    let sent = simulator.stats();
    let bytes = Arc::clone(&port.bytes);
    eventually("every byte sent so far received", || {
        bytes.load(Ordering::Relaxed) >= sent.bytes_sent
    })
    .await;
    let (mut good, mut bad) = (0u64, 0u64);
    while let Ok(body) = port.bodies.try_recv() {
        match Reply::decode(&body) {
            Ok(Reply::Message(_)) => good += 1,
            _ => bad += 1,
        }
    }
    let decoder = port.decoder();
    assert!(sent.bytes_corrupted() > 0, "{sent:?}");
    assert!(
        decoder.dropped() + decoder.garbage_bytes + bad > 0,
        "the corruption is seen: {decoder:?}, {bad} bad bodies"
    );
    let total = sent.messages.total();
    assert!(
        good * 10 >= total * 7,
        "{good} good frames of {total} sent ({bad} bad bodies, {decoder:?}, {sent:?})"
    );
    // The line still works both ways. A reply may be hit by the noise too,
    // so ask several times; one intact answer is enough.
    for _ in 0..20 {
        port.send(b"STATE");
    }
    loop {
        let body = port.next_body("an intact reply to STATE").await;
        if Reply::decode(&body) == Ok(Reply::Success(b"A".to_vec())) {
            break;
        }
    }
    simulator.stop().await;
}

#[tokio::test]
async fn a_link_path_holding_a_file_is_refused() {
    let dir = temp_dir();
    let path = dir.path().join("module");
    std::fs::write(&path, "not a tty").expect("a regular file");
    let error = ModuleSimulator::start(SimulatorConfig::new(&path))
        .err()
        .expect("refused");
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), "not a tty");
}

/// Runs interop/uart_module_check.py; returns whether it passed and its report.
fn python_check(python: &Path, link: &Path, nodes: u16) -> (bool, String) {
    let output = Process::new(python)
        .arg(workspace().join("interop/uart_module_check.py"))
        .arg("--port")
        .arg(link)
        .args(["--nodes", &nodes.to_string(), "--timeout", "5"])
        .arg("--schema")
        .arg(workspace().join("schema/uart/protocol.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run interop/uart_module_check.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// Every check a full run of the Python peer reports as passed.
const PYTHON_CHECKS: &[&str] = &[
    "open",
    "send-known",
    "sendi-known",
    "send-unknown",
    "sendi-unknown",
    "bcast",
    "bcast-bad-address",
    "clean",
    "state",
    "ninfo",
    "unknown-command",
    "gateway-command",
    "one-reply-each",
    "data-update",
    "net",
    "rst-r",
    "rst-then-nod",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyserial_peer_gets_what_the_profile_gives() {
    let Some(python) = interop_python() else {
        return;
    };
    let dir = temp_dir();
    let simulator = ModuleSimulator::start(SimulatorConfig {
        nodes: 3,
        data_interval: Duration::from_millis(200),
        net_interval: Duration::from_millis(500),
        ..SimulatorConfig::new(dir.path().join("module"))
    })
    .expect("start the simulator");
    let link: PathBuf = simulator.link().to_path_buf();
    let (ok, report) = tokio::task::spawn_blocking(move || python_check(&python, &link, 3))
        .await
        .expect("the peer's thread");
    let checks = |passed: bool| -> Vec<String> {
        report
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|check| check.get("check").is_some() && check["ok"] == passed)
            .filter_map(|check| check["check"].as_str().map(str::to_owned))
            .collect()
    };
    let failed = checks(false);
    assert!(ok && failed.is_empty(), "failed {failed:#?}\n{report}");
    let passed = checks(true);
    for wanted in PYTHON_CHECKS {
        assert!(
            passed.iter().any(|name| name == wanted),
            "no passed check {wanted}\n{report}"
        );
    }
    assert!(simulator.stats().commands.total() >= 13);
    simulator.stop().await;
}
