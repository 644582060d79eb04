//! The simulator's counters: atomics while it runs, a snapshot for readers.

use std::sync::atomic::{AtomicU64, Ordering};

use specwire_protocol::uart::{DataUpdate, NetworkStatus, NodeConnected, Reply, RootReset};

/// Commands answered, by command (each got exactly one `S` or `F`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandCounts {
    /// `SEND-`.
    pub send: u64,
    /// `SENDI`.
    pub send_tracked: u64,
    /// `BCAST`.
    pub broadcast: u64,
    /// `RST-R`.
    pub restart_root: u64,
    /// `CLEAN`.
    pub clean: u64,
    /// `STATE`.
    pub state: u64,
    /// `NINFO`.
    pub network_info: u64,
    /// Bodies that did not decode as a command, and gateway-only commands.
    pub rejected: u64,
}

impl CommandCounts {
    /// Every command answered.
    pub fn total(&self) -> u64 {
        self.send
            + self.send_tracked
            + self.broadcast
            + self.restart_root
            + self.clean
            + self.state
            + self.network_info
            + self.rejected
    }
}

/// `M` frames put on the line, by opcode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// `RST`.
    pub root_reset: u64,
    /// `DATA_UPDATE`.
    pub data_update: u64,
    /// `NET`.
    pub network_status: u64,
    /// `NOD`.
    pub node_connected: u64,
}

impl MessageCounts {
    /// Every `M` frame sent.
    pub fn total(&self) -> u64 {
        self.root_reset + self.data_update + self.network_status + self.node_connected
    }
}

/// Counters, read while the simulator runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimulatorStats {
    /// Commands answered, by command.
    pub commands: CommandCounts,
    /// `S` replies sent.
    pub succeeded: u64,
    /// `F` replies sent.
    pub failed: u64,
    /// `M` frames put on the line, by opcode.
    pub messages: MessageCounts,
    /// Periodic `M` frames dropped because the line was backed up.
    pub messages_dropped: u64,
    /// Frames received from the gateway.
    pub frames_received: u64,
    /// Frames from the gateway its decoder dropped (bad escape, cut short,
    /// empty, too long).
    pub frames_rejected: u64,
    /// Bytes put on the line (after noise).
    pub bytes_sent: u64,
    /// Bytes that had one bit flipped by the noise.
    pub bytes_flipped: u64,
    /// Bytes the noise dropped.
    pub bytes_dropped: u64,
}

impl SimulatorStats {
    /// Bytes the noise corrupted (flipped or dropped).
    pub fn bytes_corrupted(&self) -> u64 {
        self.bytes_flipped + self.bytes_dropped
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) send: AtomicU64,
    pub(super) send_tracked: AtomicU64,
    pub(super) broadcast: AtomicU64,
    pub(super) restart_root: AtomicU64,
    pub(super) clean: AtomicU64,
    pub(super) state: AtomicU64,
    pub(super) network_info: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) root_reset: AtomicU64,
    pub(super) data_update: AtomicU64,
    pub(super) network_status: AtomicU64,
    pub(super) node_connected: AtomicU64,
    pub(super) messages_dropped: AtomicU64,
    pub(super) frames_received: AtomicU64,
    pub(super) frames_rejected: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) bytes_flipped: AtomicU64,
    pub(super) bytes_dropped: AtomicU64,
}

pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> SimulatorStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SimulatorStats {
            commands: CommandCounts {
                send: get(&self.send),
                send_tracked: get(&self.send_tracked),
                broadcast: get(&self.broadcast),
                restart_root: get(&self.restart_root),
                clean: get(&self.clean),
                state: get(&self.state),
                network_info: get(&self.network_info),
                rejected: get(&self.rejected),
            },
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            messages: MessageCounts {
                root_reset: get(&self.root_reset),
                data_update: get(&self.data_update),
                network_status: get(&self.network_status),
                node_connected: get(&self.node_connected),
            },
            messages_dropped: get(&self.messages_dropped),
            frames_received: get(&self.frames_received),
            frames_rejected: get(&self.frames_rejected),
            bytes_sent: get(&self.bytes_sent),
            bytes_flipped: get(&self.bytes_flipped),
            bytes_dropped: get(&self.bytes_dropped),
        }
    }

    /// Counts a body the writer put on the line.
    pub(super) fn sent(&self, body: &[u8]) {
        let counter = match body {
            [Reply::SUCCESS, ..] => &self.succeeded,
            [Reply::FAILURE, ..] => &self.failed,
            [Reply::MESSAGE, _, _, RootReset::OPCODE, ..] => &self.root_reset,
            [Reply::MESSAGE, _, _, DataUpdate::OPCODE, ..] => &self.data_update,
            [Reply::MESSAGE, _, _, NetworkStatus::OPCODE, ..] => &self.network_status,
            [Reply::MESSAGE, _, _, NodeConnected::OPCODE, ..] => &self.node_connected,
            _ => return,
        };
        add(counter, 1);
    }
}
