//! What went over the wire during a case: every frame or datagram sent and
//! received, with times, so a failure can be read (and replayed) later.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Which way an entry went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the suite to the target.
    Sent,
    /// From the target to the suite.
    Received,
    /// The suite's own remark (a connection opened or closed, a wait that
    /// ran out).
    Note,
}

/// One frame, datagram or remark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the case started.
    #[serde(rename = "atMs")]
    pub at_ms: f64,
    /// Which way.
    pub direction: Direction,
    /// The suite's connection (1, 2, ...) it happened on; 0 for notes that
    /// concern none.
    pub connection: u32,
    /// `text`, `binary`, `ping`, `pong`, `close`, `datagram`, `note`.
    pub kind: String,
    /// The text (binary data as hex, truncated past 4 KiB).
    pub data: String,
}

/// A case's transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    started: Instant,
    entries: Vec<Entry>,
}

impl Default for Transcript {
    fn default() -> Transcript {
        Transcript::new()
    }
}

/// Longest text kept per entry: a 1 MiB probe should not make a 1 MiB report.
const KEEP: usize = 4096;

impl Transcript {
    /// An empty transcript starting now.
    pub fn new() -> Transcript {
        Transcript {
            started: Instant::now(),
            entries: Vec::new(),
        }
    }

    /// Records an entry.
    pub fn record(&mut self, direction: Direction, connection: u32, kind: &str, data: &str) {
        let data = if data.len() > KEEP {
            let mut end = KEEP;
            while !data.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes in all)", &data[..end], data.len())
        } else {
            data.to_owned()
        };
        self.entries.push(Entry {
            at_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            direction,
            connection,
            kind: kind.to_owned(),
            data,
        });
    }

    /// A remark of the suite's own.
    pub fn note(&mut self, connection: u32, text: &str) {
        self.record(Direction::Note, connection, "note", text);
    }

    /// Appends the entries of `other` (another part of the same case, on
    /// its own clock), each at its own time on this transcript's clock and
    /// on connection `renumber(connection)`.
    pub fn absorb(&mut self, other: &Transcript, renumber: impl Fn(u32) -> u32) {
        let offset = if other.started >= self.started {
            (other.started - self.started).as_secs_f64() * 1000.0
        } else {
            -((self.started - other.started).as_secs_f64() * 1000.0)
        };
        self.entries.extend(other.entries.iter().map(|entry| Entry {
            at_ms: entry.at_ms + offset,
            connection: renumber(entry.connection),
            ..entry.clone()
        }));
        // Both parts ran at once: keep the whole in time order.
        self.entries.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries as readable lines (`  12.3 ms  #1 →  {...}`).
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| {
                let arrow = match entry.direction {
                    Direction::Sent => "→",
                    Direction::Received => "←",
                    Direction::Note => "·",
                };
                let kind = if entry.kind == "text" || entry.kind == "note" {
                    String::new()
                } else {
                    format!("[{}] ", entry.kind)
                };
                format!(
                    "{:>9.1} ms  #{} {arrow} {kind}{}",
                    entry.at_ms, entry.connection, entry.data
                )
            })
            .collect()
    }
}

/// Lowercase hex of `bytes`, for binary frames and datagrams.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
