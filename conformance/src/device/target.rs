//! What the suite knows about the hub (where it is, its command registry,
//! its ping interval and stale timeout, how long to wait) and a case's
//! view of it: fresh device ids and markers, and connections opened as a
//! plain client, a subscriber or a registered device.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use specwire_runtime::device::Registry;
use specwire_runtime::net::{ConnectError, Connector};

use super::commands::Commands;
use super::conn::LineConn;
use crate::suite::CaseContext;
use crate::verdict::Stop;

/// The hub and how to test it.
#[derive(Clone)]
pub struct DeviceTarget {
    /// `ws://HOST:PORT` or `wss://HOST:PORT` (a path, if any, is kept).
    pub endpoint: String,
    /// The commands the hub accepts (its `commands.json`).
    pub commands: Commands,
    /// Extra CA certificates (PEM) for `wss://`.
    pub extra_roots: Vec<PathBuf>,
    /// The hub's interval between its `ping`s to a device (`None`:
    /// `device.liveness.hub-ping` is skipped).
    pub ping_interval: Option<Duration>,
    /// How long the hub lets a device stay silent (`None`: the stale
    /// cases are skipped).
    pub stale_timeout: Option<Duration>,
    /// How long a reply or a delivery may take.
    pub reply_timeout: Duration,
    /// First seed of the generated sessions.
    pub seed: u64,
    /// How long `device.generated.sessions` may take in all.
    pub session_budget: Duration,
    /// Where replay bundles of failed cases go (`None`: not written).
    pub replay_dir: Option<PathBuf>,
}

impl fmt::Debug for DeviceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceTarget")
            .field("endpoint", &self.endpoint)
            .field("commands", &self.commands.all().len())
            .field("ping_interval", &self.ping_interval)
            .field("stale_timeout", &self.stale_timeout)
            .field("reply_timeout", &self.reply_timeout)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl DeviceTarget {
    /// Defaults for `endpoint` and the hub's `registry`: 5 s replies, no
    /// ping interval or stale timeout known, a 20 s budget for the
    /// generated sessions, a random seed.
    pub fn new(endpoint: impl Into<String>, registry: &Registry) -> DeviceTarget {
        DeviceTarget {
            endpoint: endpoint.into(),
            commands: Commands::of(registry),
            extra_roots: Vec::new(),
            ping_interval: None,
            stale_timeout: None,
            reply_timeout: Duration::from_secs(5),
            seed: fastrand::u64(..),
            session_budget: Duration::from_secs(20),
            replay_dir: None,
        }
    }
}

/// A case's view of the hub: fresh names, connections, and the
/// [`CaseContext`] (transcript, notes, the run's log) it derefs to.
pub struct Ctx {
    /// The target.
    pub target: Arc<DeviceTarget>,
    case: CaseContext,
    prefix: String,
    names: u32,
    base: u32,
}

crate::embeds_case_context!(Ctx);

impl Ctx {
    pub(crate) fn new(target: Arc<DeviceTarget>, case: CaseContext) -> Ctx {
        let prefix = format!("c{:06x}", fastrand::u32(..0x100_0000));
        Ctx {
            target,
            case,
            prefix,
            names: 0,
            base: fastrand::u32(..9_000_000),
        }
    }

    /// A fresh device id (or other name) with `what` in it: no other case
    /// and no other run uses it, and no fresh name begins with another.
    pub fn fresh(&mut self, what: &str) -> String {
        self.names += 1;
        format!("{}-{what}{:04}", self.prefix, self.names)
    }

    /// A fresh number for a marker (below 10 000 000; no other marker of
    /// the case has it).
    pub fn marker(&mut self) -> u32 {
        self.names += 1;
        self.base + self.names % 1_000_000
    }

    /// The registry's commands.
    pub fn commands(&self) -> &Commands {
        &self.target.commands
    }

    /// Opens a connection (`role` says what for, in the transcript). A
    /// hub that cannot be reached is a harness error; after a few in a
    /// row the run stops trying.
    pub async fn connect(&mut self, role: &str) -> Result<LineConn, Stop> {
        if let Some(reason) = self.log().blocked() {
            return Err(Stop::Harness(reason));
        }
        let id = self.next_connection();
        let timeout = self.target.reply_timeout;
        let endpoint = self.target.endpoint.clone();
        self.log()
            .waiting_for(&format!("a WebSocket handshake with {endpoint}"));
        let connecting = async {
            Connector::new(endpoint.as_str(), &self.target.extra_roots, timeout)?
                .connect()
                .await
        };
        let ws = match connecting.await {
            Ok((ws, _)) => ws,
            Err(error) => {
                let reason = match error {
                    ConnectError::Tls(error) => error,
                    ConnectError::TimedOut => format!(
                        "cannot connect to {endpoint}: no WebSocket handshake within {}",
                        humantime::format_duration(timeout)
                    ),
                    other => format!("cannot connect to {endpoint}: {other}"),
                };
                self.log().connect_failed(&reason);
                return Err(Stop::Harness(reason));
            }
        };
        self.log().connected();
        let conn = LineConn::new(
            ws,
            id,
            self.shared_transcript(),
            std::sync::Arc::clone(self.log()),
            timeout,
        );
        conn.note(&format!("connected as {role}"));
        Ok(conn)
    }

    /// A connection that sent `s`, confirmed by a `ping` answered after
    /// it (what came before the `pong` is `device.subscribe.no-reply`'s
    /// point).
    pub async fn subscriber(&mut self) -> Result<LineConn, Stop> {
        let mut conn = self.connect("a subscriber").await?;
        conn.send("s").await?;
        conn.sync().await?;
        Ok(conn)
    }

    /// A new connection registered as device `id`, confirmed by a `ping`
    /// answered after it; it answers the hub's `ping`s.
    pub async fn device_as(&mut self, id: &str) -> Result<LineConn, Stop> {
        let mut conn = self.connect(&format!("device {id}")).await?;
        conn.answer_pings = true;
        conn.send(&format!("id:{id}")).await?;
        conn.sync().await?;
        Ok(conn)
    }

    /// A new device with a fresh id; returns it and its id.
    pub async fn device(&mut self) -> Result<(LineConn, String), Stop> {
        let id = self.fresh("dev");
        let conn = self.device_as(&id).await?;
        Ok((conn, id))
    }
}

/// Closes every connection in `conns` with the close handshake (bounded
/// waits), so the hub has let them go before the next case.
pub async fn close_all(conns: &mut [&mut LineConn]) {
    for conn in conns.iter_mut() {
        conn.close().await;
    }
}
