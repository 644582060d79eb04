//! What the suite knows about the chat server (where it is, how long to
//! wait, the generated sessions' seed and budget), what the cases of one
//! run share (how the server's objects ended), and a case's view of it:
//! fresh names and markers, connections, joined clients.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;

use super::conn::ChatConn;
use crate::session::{Ending, Link, Session};
use crate::suite::{lock, CaseContext};
use crate::verdict::Stop;

/// The server and how to test it.
#[derive(Clone, Debug)]
pub struct ChatTarget {
    /// `HOST:PORT`.
    pub address: String,
    /// How long a response or a broadcast may take.
    pub reply_timeout: Duration,
    /// First seed of the generated sessions.
    pub seed: u64,
    /// How long `chat.generated.sessions` may take in all.
    pub session_budget: Duration,
    /// Where replay bundles of failed cases go (`None`: not written).
    pub replay_dir: Option<PathBuf>,
}

impl ChatTarget {
    /// Defaults for `target` (`HOST:PORT` or `tcp://HOST:PORT`): 5 s
    /// replies, a 20 s budget for the generated sessions, a random seed.
    pub fn new(target: &str) -> Result<ChatTarget, String> {
        let address = target.strip_prefix("tcp://").unwrap_or(target);
        let valid = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid || address.contains('/') {
            return Err(format!(
                "`{target}` is not HOST:PORT (or tcp://HOST:PORT), e.g. 127.0.0.1:65432"
            ));
        }
        Ok(ChatTarget {
            address: address.to_owned(),
            reply_timeout: Duration::from_secs(5),
            seed: fastrand::u64(..),
            session_budget: Duration::from_secs(20),
            replay_dir: None,
        })
    }

    /// `tcp://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.address)
    }
}

/// What the cases of one run share: how every object the server sent
/// ended, for `chat.framing.newline`.
#[derive(Debug, Default)]
pub struct ChatShared {
    endings: Mutex<Endings>,
}

/// The server's objects whose ending was seen.
#[derive(Clone, Debug, Default)]
pub struct Endings {
    /// How many were followed directly by `\n`.
    pub newline: usize,
    /// The others, as received.
    pub other: Vec<String>,
}

impl ChatShared {
    /// Adds the endings a connection saw.
    pub fn record(&self, endings: Vec<Ending>) {
        let mut all = lock(&self.endings);
        for ending in endings {
            if ending.newline {
                all.newline += 1;
            } else {
                all.other.push(ending.text);
            }
        }
    }

    /// Every ending seen so far.
    pub fn endings(&self) -> Endings {
        lock(&self.endings).clone()
    }
}

/// A case's view of the server: fresh names, connections, and the
/// [`CaseContext`] (transcript, notes, the run's log) it derefs to.
pub struct Ctx {
    /// The target.
    pub target: Arc<ChatTarget>,
    /// What the run's cases share.
    pub shared: Arc<ChatShared>,
    case: CaseContext,
    prefix: String,
    names: u32,
}

crate::embeds_case_context!(Ctx);

impl Ctx {
    pub(crate) fn new(target: Arc<ChatTarget>, case: CaseContext, shared: Arc<ChatShared>) -> Ctx {
        let prefix = format!("c{:06x}", fastrand::u32(..0x100_0000));
        Ctx {
            target,
            shared,
            case,
            prefix,
            names: 0,
        }
    }

    /// A fresh username (or marker) with `what` in it: no other case and
    /// no other run uses it, no fresh name begins with another, and it is
    /// at most 20 characters long (`c1a2b3c-what0001` for a short `what`).
    pub fn fresh(&mut self, what: &str) -> String {
        self.names += 1;
        format!("{}-{what}{:04}", self.prefix, self.names)
    }

    /// Opens a connection (`role` says what for, in the transcript). A
    /// server that cannot be reached is a harness error; after a few in a
    /// row the run stops trying.
    pub async fn connect(&mut self, role: &str) -> Result<ChatConn, Stop> {
        if let Some(reason) = self.log().blocked() {
            return Err(Stop::Harness(reason));
        }
        let id = self.next_connection();
        let timeout = self.target.reply_timeout;
        let address = self.target.address.clone();
        self.log()
            .waiting_for(&format!("a TCP connection to {address}"));
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(self.unreachable(format!("cannot connect to {address}: {error}")))
            }
            Err(_) => {
                return Err(self.unreachable(format!(
                    "cannot connect to {address}: no connection within {}",
                    humantime::format_duration(timeout)
                )))
            }
        };
        self.log().connected();
        // Every write is a segment of its own: the framing cases depend on it.
        let _ = stream.set_nodelay(true);
        let session = Session::new(
            Link::tcp(stream, specwire_protocol::chat::MAX_MESSAGE_BYTES),
            id,
            self.shared_transcript(),
            Arc::clone(self.log()),
            timeout,
        );
        let conn = ChatConn::new(session, id, Arc::clone(&self.shared));
        conn.note(&format!("connected as {role}"));
        Ok(conn)
    }

    fn unreachable(&self, reason: String) -> Stop {
        self.log().connect_failed(&reason);
        Stop::Harness(reason)
    }

    /// A new connection joined under a fresh name with `what` in it;
    /// returns it and the name the server gave.
    pub async fn joined(&mut self, what: &str) -> Result<(ChatConn, String), Stop> {
        let name = self.fresh(what);
        let mut conn = self.connect(&format!("client {name}")).await?;
        let given = conn.join(&name).await?;
        Ok((conn, given))
    }
}
