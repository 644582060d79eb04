//! A simulated mesh root module on a pseudo-terminal, for a uart gateway
//! to talk to without hardware (PROFILE.md, "uart (seed 004)").
//!
//! [`ModuleSimulator::start`] opens a [`Pty`] and links its slave at
//! [`SimulatorConfig::pty_link`]; a gateway opens that path as its serial
//! port. The module then behaves as the seed's root module:
//!
//! - **Commands.** Every frame from the gateway is decoded with the
//!   generated [`Command`](specwire_protocol::uart::Command) decoder and
//!   answered with exactly one `S` or `F len msg` frame, in the order the
//!   commands came: `SEND-`/`SENDI` to a node of the network → `S`, to any
//!   other address → `F unknown node 0x....`; `BCAST` → `S`; `RST-R` → `S`,
//!   then `M RST` and `M NOD` for every node; `CLEAN` → `S`; `STATE` →
//!   `S A` (the module's own bytes: one
//!   [`NodeState`](specwire_protocol::uart::NodeState) byte, the root is
//!   active); `NINFO` → `S` and the network as raw bytes, laid out as a
//!   [`NodeList`](specwire_protocol::uart::NodeList)
//!   (`count(1) (addr(2) uuid(16))*`), which the gateway turns into JSON. A
//!   body that does not decode, and a gateway-only command (`NSTAT`,
//!   `[GET]`, `ACT-C`, `LSTN-`), gets `F` with the reason.
//! - **Slow node.** With [`SimulatorConfig::slow_node`] `(addr, delay)`,
//!   `SENDI` to that node is confirmed only after `delay` (past the
//!   gateway's 2 s module timeout if you like). Commands sent meanwhile
//!   wait and are answered afterwards, in order; `M` frames keep flowing.
//! - **Messages.** `M NOD` for every node at start (source
//!   [`ROOT_ADDR`]); `M DATA_UPDATE` from every node every
//!   `data_interval` with a value for every data type of the schema's
//!   table ([`DataType::ALL`](specwire_protocol::uart::DataType::ALL):
//!   temperature, humidity, battery, light, pressure, counter; plausible
//!   values that drift, big-endian); `M NET` listing every node every
//!   `net_interval`.
//! - **Noise.** With [`SimulatorConfig::noise`] `p`, each byte the module
//!   puts on the line (frames already escaped) has probability `p` of
//!   being corrupted: half of those get one bit flipped, half are dropped.
//!   The gateway's decoder has to resynchronise; seeded, so a run repeats.
//!
//! Nodes are `0x0001..=nodes`, with UUIDs (version 4 layout) drawn from
//! [`SimulatorConfig::seed`]. The outbound queue is bounded: while nobody
//! reads the line (no gateway yet) and the kernel's buffer is full,
//! periodic `M` frames are dropped and counted; replies are never dropped.
//! See [`pty`](super::pty) for what a gateway finds when it opens the port
//! after the module has been talking for a while.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::time::Duration;
//! use specwire_runtime::uart::{ModuleSimulator, SimulatorConfig};
//!
//! let simulator = ModuleSimulator::start(SimulatorConfig {
//!     nodes: 5,
//!     data_interval: Duration::from_millis(500),
//!     slow_node: Some((0x0003, Duration::from_secs(3))),
//!     ..SimulatorConfig::new("/tmp/uart-module")
//! })?;
//! println!("module on {}", simulator.link().display());
//! // ... a gateway opens /tmp/uart-module ...
//! let stats = simulator.stats();
//! println!("{} commands answered, {} M frames", stats.commands.total(), stats.messages.total());
//! simulator.stop().await;
//! # Ok(()) }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use specwire_protocol::uart::{encode_frame_into, frame_decoder, NodeEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pty::Pty;

mod model;
mod module;
mod stats;

pub use stats::{CommandCounts, MessageCounts, SimulatorStats};

use model::{Network, Noise};
use module::Module;
use stats::{add, Counters};

/// The source address of the root module's own messages (`RST`, `NET`, `NOD`).
pub const ROOT_ADDR: u16 = 0x0000;

/// Frames waiting for the line, at most (replies and messages together).
const OUTBOUND_FRAMES: usize = 256;

/// Commands decoded but not yet answered, at most; the reader then stops
/// reading and the gateway's writes wait in the kernel.
const INBOUND_COMMANDS: usize = 32;

/// What the simulated module does.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Where the pty's slave is linked: the path a gateway opens.
    pub pty_link: PathBuf,
    /// Nodes in the network, addresses `0x0001..=nodes` (at most 255: a
    /// `NET` message counts them in one byte).
    pub nodes: u16,
    /// How often every node sends a `DATA_UPDATE`.
    pub data_interval: Duration,
    /// How often the root sends `NET`.
    pub net_interval: Duration,
    /// Probability (0..=1) that a byte the module sends is corrupted (a
    /// flipped bit or a dropped byte, evenly).
    pub noise: f64,
    /// A node whose `SENDI` confirmation takes this long.
    pub slow_node: Option<(u16, Duration)>,
    /// Seeds the node UUIDs, the readings and the noise.
    pub seed: u64,
}

impl SimulatorConfig {
    /// Three nodes, data every second, `NET` every 5 s, a clean line, no
    /// slow node, seed 1.
    pub fn new(pty_link: impl Into<PathBuf>) -> SimulatorConfig {
        SimulatorConfig {
            pty_link: pty_link.into(),
            nodes: 3,
            data_interval: Duration::from_secs(1),
            net_interval: Duration::from_secs(5),
            noise: 0.0,
            slow_node: None,
            seed: 1,
        }
    }

    fn check(&self) -> io::Result<()> {
        let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        if self.nodes > 255 {
            return invalid(format!(
                "{} nodes: a NET message lists at most 255",
                self.nodes
            ));
        }
        if self.data_interval.is_zero() || self.net_interval.is_zero() {
            return invalid("the data and net intervals must be above zero".to_owned());
        }
        if !(0.0..=1.0).contains(&self.noise) {
            return invalid(format!(
                "noise {} is not a probability (0 to 1)",
                self.noise
            ));
        }
        if let Some((addr, _)) = self.slow_node {
            if addr == 0 || addr > self.nodes {
                return invalid(format!(
                    "slow node {addr:#06x} is not one of the nodes 0x0001..={:#06x}",
                    self.nodes
                ));
            }
        }
        Ok(())
    }
}

/// A running module simulator; dropping it stops it (the link goes once
/// its tasks have ended), [`stop`](Self::stop) also waits for that.
pub struct ModuleSimulator {
    counters: Arc<Counters>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    link: PathBuf,
    tty_path: PathBuf,
    nodes: Vec<NodeEntry>,
}

impl ModuleSimulator {
    /// Opens the pty, links it, queues the start-up `NOD`s and starts
    /// answering (in the current tokio runtime). Fails on a bad config
    /// ([`io::ErrorKind::InvalidInput`]), a link path that holds something
    /// other than a symlink, or a pty that cannot be made.
    pub fn start(config: SimulatorConfig) -> io::Result<ModuleSimulator> {
        config.check()?;
        let pty = Pty::open(&config.pty_link)?;
        let link = pty.link().to_path_buf();
        let tty_path = pty.tty_path().to_path_buf();
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let network = Network::new(config.nodes, config.seed);
        let nodes = network.entries();
        let (line_in, line_out) = tokio::io::split(pty);
        let (commands_tx, commands_rx) = mpsc::channel(INBOUND_COMMANDS);
        let (frames_tx, frames_rx) = mpsc::channel(OUTBOUND_FRAMES);
        let noise = Noise::new(config.noise, config.seed);
        let module = Module {
            network,
            slow_node: config.slow_node,
            out: frames_tx,
            counters: Arc::clone(&counters),
            stop: stop.clone(),
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(read_commands(
            line_in,
            commands_tx,
            Arc::clone(&counters),
            stop.clone(),
        ));
        tasks.spawn(write_frames(
            line_out,
            frames_rx,
            noise,
            Arc::clone(&counters),
            stop.clone(),
        ));
        tasks.spawn(module.run(commands_rx, config.data_interval, config.net_interval));
        Ok(ModuleSimulator {
            counters,
            stop,
            tasks,
            link,
            tty_path,
            nodes,
        })
    }

    /// The counters now.
    pub fn stats(&self) -> SimulatorStats {
        self.counters.snapshot()
    }

    /// The path a gateway opens (the configured link).
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The pty slave's own path (`/dev/pts/N`).
    pub fn tty_path(&self) -> &Path {
        &self.tty_path
    }

    /// The network's nodes, in address order.
    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    /// Stops answering and sending, waits for the tasks (a second at
    /// most) and so removes the link.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for ModuleSimulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads the gateway's bytes, cuts them into frames and queues the bodies.
async fn read_commands(
    mut line: ReadHalf<Pty>,
    commands: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut decoder = frame_decoder();
    let mut buf = vec![0u8; 4096];
    let mut bodies = Vec::new();
    loop {
        let n = tokio::select! {
            read = line.read(&mut buf) => match read {
                Ok(0) => return,
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "uart simulator: reading the pty failed; no more commands");
                    return;
                }
            },
            () = stop.cancelled() => return,
        };
        let before = decoder.stats();
        decoder.decode(&buf[..n], |body| bodies.push(body.to_vec()));
        let after = decoder.stats();
        add(&counters.frames_received, after.frames - before.frames);
        add(
            &counters.frames_rejected,
            after.dropped() - before.dropped(),
        );
        for body in bodies.drain(..) {
            tokio::select! {
                sent = commands.send(body) => if sent.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Puts each queued body on the line as a frame, through the noise.
async fn write_frames(
    mut line: WriteHalf<Pty>,
    mut frames: mpsc::Receiver<Vec<u8>>,
    mut noise: Noise,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut wire = Vec::new();
    loop {
        let body = tokio::select! {
            body = frames.recv() => match body {
                Some(body) => body,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        wire.clear();
        encode_frame_into(&body, &mut wire);
        let (flipped, dropped) = noise.apply(&mut wire);
        add(&counters.bytes_flipped, flipped);
        add(&counters.bytes_dropped, dropped);
        tokio::select! {
            written = line.write_all(&wire) => if let Err(error) = written {
                tracing::warn!(%error, "uart simulator: writing the pty failed; no more output");
                return;
            },
            () = stop.cancelled() => return,
        }
        add(&counters.bytes_sent, wire.len() as u64);
        counters.sent(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_outside_the_protocol_are_refused() {
        let base = SimulatorConfig::new("/tmp/x");
        assert!(base.check().is_ok());
        for bad in [
            SimulatorConfig {
                nodes: 256,
                ..base.clone()
            },
            SimulatorConfig {
                noise: 1.5,
                ..base.clone()
            },
            SimulatorConfig {
                data_interval: Duration::ZERO,
                ..base.clone()
            },
            SimulatorConfig {
                slow_node: Some((4, Duration::from_secs(1))),
                ..base.clone()
            },
        ] {
            assert_eq!(
                bad.check().map_err(|e| e.kind()),
                Err(io::ErrorKind::InvalidInput)
            );
        }
    }
}
