//! The device hub: a WebSocket server for devices and clients speaking
//! the device line grammar, with the web console on the same port.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use specwire_protocol::device as protocol;
use tokio_util::sync::CancellationToken;

use super::console;
use super::registry::Registry;
use super::session::DeviceSession;
use super::table::{now_ms, DeviceInfo, Fanout, Table};
use crate::net::http::{Request, Response};
use crate::net::{self, Limits, Outbox, Peer, Server, ServerConfig, Text, WsService};

/// How a device hub runs.
#[derive(Clone, Debug)]
pub struct DeviceHubConfig {
    /// Where to listen. Default `127.0.0.1:5000`; port 0 picks one.
    pub bind: SocketAddr,
    /// The commands a `cmd:` may name.
    pub registry: Arc<Registry>,
    /// How often each device gets the text `ping`.
    pub ping_interval: Duration,
    /// A device silent this long is dropped.
    pub stale_timeout: Duration,
    /// Serve `wss://` with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Frame size, rate, connections, queue per connection (full: the
    /// connection is closed with 1013), keepalive.
    pub limits: Limits,
}

impl DeviceHubConfig {
    /// Defaults around `registry`.
    pub fn new(registry: Registry) -> DeviceHubConfig {
        DeviceHubConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 5000)),
            registry: Arc::new(registry),
            ping_interval: Duration::from_secs(10),
            stale_timeout: Duration::from_secs(30),
            tls: None,
            limits: Limits {
                max_message_bytes: protocol::MAX_MESSAGE_BYTES,
                max_frame_bytes: 4 * protocol::MAX_MESSAGE_BYTES,
                messages_per_second: Some(200.0),
                burst: 200,
                max_queued: 4096,
                ..Limits::default()
            },
        }
    }
}

/// Counters, for tests, logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceHubStats {
    /// Connections open now.
    pub connections: usize,
    /// Registered devices now.
    pub devices: usize,
    /// Subscribed connections now.
    pub subscribers: usize,
    /// `id:` lines accepted, ever.
    pub registrations: u64,
    /// Data lines broadcast.
    pub data_lines: u64,
    /// Commands delivered.
    pub commands: u64,
    /// Lines queued to connections (broadcasts and commands).
    pub delivered: u64,
    /// `error:` answers.
    pub errors: u64,
    /// Devices dropped as stale.
    pub stale_dropped: u64,
    /// Connections closed because their queue was full.
    pub slow_closed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub registrations: AtomicU64,
    pub data_lines: AtomicU64,
    pub commands: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub stale_dropped: AtomicU64,
    pub slow_closed: AtomicU64,
}

/// What every session shares.
pub(crate) struct Shared {
    pub registry: Arc<Registry>,
    pub limits: Limits,
    pub counters: Counters,
    table: Mutex<Table>,
}

impl Shared {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn count(&self, fanout: Fanout) {
        self.counters
            .delivered
            .fetch_add(fanout.delivered as u64, Ordering::Relaxed);
        if fanout.overflowed > 0 {
            self.counters
                .slow_closed
                .fetch_add(fanout.overflowed as u64, Ordering::Relaxed);
        }
    }
}

/// A running device hub. Dropping it aborts every connection;
/// [`DeviceHub::shutdown`] is the graceful way.
pub struct DeviceHub {
    server: Server,
    shared: Arc<Shared>,
    sweeper: CancellationToken,
}

struct DeviceService(Arc<Shared>);

impl WsService for DeviceService {
    type Session = DeviceSession;

    const SHUTDOWN_REASON: &'static str = "hub shutting down";
    const OVERFLOW_CLOSE: (u16, &'static str) = (1013, "reading too slowly: queue full");

    fn accept(
        &self,
        _: &Request,
        peer: Peer,
        outbox: Outbox<Text>,
    ) -> Result<DeviceSession, Response> {
        Ok(DeviceSession::new(Arc::clone(&self.0), peer.id, outbox))
    }

    fn http(&self, request: &Request, _: Peer) -> Option<Response> {
        Some(console::answer(request, &self.0))
    }
}

impl DeviceHub {
    /// Binds and starts serving.
    pub async fn start(config: DeviceHubConfig) -> io::Result<DeviceHub> {
        let shared = Arc::new(Shared {
            registry: config.registry,
            limits: config.limits.clone(),
            counters: Counters::default(),
            table: Mutex::new(Table::default()),
        });
        let server_config = ServerConfig {
            bind: config.bind,
            tls: config.tls,
            limits: config.limits,
        };
        let server =
            net::ws::serve(server_config, Arc::new(DeviceService(Arc::clone(&shared)))).await?;
        let sweeper = CancellationToken::new();
        tokio::spawn(sweep_loop(
            Arc::clone(&shared),
            config.ping_interval,
            config.stale_timeout,
            sweeper.clone(),
        ));
        tracing::info!(local_addr = %server.local_addr(), scheme = server.scheme(), "device hub listening");
        Ok(DeviceHub {
            server,
            shared,
            sweeper,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `ws://ADDR` or `wss://ADDR`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The web console's URL (`http://ADDR/` or `https://ADDR/`).
    pub fn console_url(&self) -> String {
        let scheme = if self.server.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/", self.server.local_addr())
    }

    /// The registered devices.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.shared.table().devices()
    }

    /// Counters.
    pub fn stats(&self) -> DeviceHubStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (connections, devices, subscribers) = self.shared.table().counts();
        DeviceHubStats {
            connections,
            devices,
            subscribers,
            registrations: load(&c.registrations),
            data_lines: load(&c.data_lines),
            commands: load(&c.commands),
            delivered: load(&c.delivered),
            errors: load(&c.errors),
            stale_dropped: load(&c.stale_dropped),
            slow_closed: load(&c.slow_closed),
        }
    }

    /// Stops accepting and closes every connection with the close
    /// handshake (bounded by `grace`).
    pub async fn shutdown(self, grace: Duration) {
        self.sweeper.cancel();
        self.server.shutdown(grace).await;
    }
}

impl Drop for DeviceHub {
    fn drop(&mut self) {
        self.sweeper.cancel();
        self.server.abort();
    }
}

/// Pings every device each `ping_interval` and drops the ones silent for
/// `stale`, checking often enough that a drop is at most a tenth late.
async fn sweep_loop(
    shared: Arc<Shared>,
    ping_interval: Duration,
    stale: Duration,
    stop: CancellationToken,
) {
    let step =
        (ping_interval.min(stale) / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping = Text::from("ping");
    let mut next_ping = tokio::time::Instant::now() + ping_interval;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        let pinging = now >= next_ping;
        if pinging {
            next_ping = now + ping_interval;
        }
        let gone = shared
            .table()
            .sweep(pinging.then_some(&ping), stale, now_ms());
        if !gone.is_empty() {
            tracing::info!(devices = ?gone, "dropped stale devices");
            shared
                .counters
                .stale_dropped
                .fetch_add(gone.len() as u64, Ordering::Relaxed);
        }
    }
}
