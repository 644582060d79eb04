//! A swarm of virtual devices, as the seed's `socket-simulator`: each
//! connects (retrying with backoff), registers as `<prefix>-<n>`, sends
//! plausible sensor readings at a steady rate, answers the hub's `ping`,
//! and applies the commands it receives, showing that it did in its data
//! (`led=ff0000`, `say=hello`, and an `applied=<command>` line at once).
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use specwire_runtime::device::swarm::{Swarm, SwarmConfig};
//!
//! let swarm = Swarm::start(SwarmConfig::new("ws://127.0.0.1:5000", 100));
//! tokio::time::sleep(Duration::from_secs(10)).await;
//! println!("{:?}", swarm.stats());
//! swarm.stop().await;
//! # }
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_util::sync::CancellationToken;

use crate::net::{Backoff, Connector, WsStream};

/// What the swarm does.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// The hub, `ws://HOST:PORT` or `wss://`.
    pub target: String,
    /// Devices.
    pub count: usize,
    /// Data lines per second, per device.
    pub rate: f64,
    /// Device ids are `<prefix>-<n>` (from 1, zero-padded).
    pub prefix: String,
    /// Time limit of one connection attempt.
    pub connect_timeout: Duration,
    /// Devices connecting at the same moment (the rest wait their turn).
    pub connect_concurrency: usize,
}

impl SwarmConfig {
    /// `count` devices on `target`, one line per second each.
    pub fn new(target: impl Into<String>, count: usize) -> SwarmConfig {
        SwarmConfig {
            target: target.into(),
            count,
            rate: 1.0,
            prefix: "sim".to_owned(),
            connect_timeout: Duration::from_secs(10),
            connect_concurrency: 64,
        }
    }
}

/// Counters, read while the swarm runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmStats {
    /// Devices connected and registered now.
    pub connected: usize,
    /// Data lines sent.
    pub sent: u64,
    /// Commands received (and applied).
    pub commands: u64,
    /// Hub pings answered.
    pub pings: u64,
    /// Connections lost or refused (each retried).
    pub failures: u64,
    /// `error:` lines from the hub.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicUsize,
    sent: AtomicU64,
    commands: AtomicU64,
    pings: AtomicU64,
    failures: AtomicU64,
    errors: AtomicU64,
}

/// A running swarm; dropping it stops every device at once.
pub struct Swarm {
    counters: Arc<Counters>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Swarm {
    /// Starts every device (in the current tokio runtime).
    pub fn start(config: SwarmConfig) -> Swarm {
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(
            config.connect_concurrency.max(1),
        ));
        let width = config.count.to_string().len().max(4);
        let mut tasks = JoinSet::new();
        for n in 1..=config.count {
            let device = VirtualDevice {
                id: format!("{}-{n:0width$}", config.prefix),
                config: config.clone(),
                counters: Arc::clone(&counters),
                state: State::new(n),
            };
            tasks.spawn(device.run(stop.clone(), Arc::clone(&gate)));
        }
        Swarm {
            counters,
            stop,
            tasks,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> SwarmStats {
        let c = &self.counters;
        SwarmStats {
            connected: c.connected.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            pings: c.pings.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Closes every device's connection (with the close handshake, a
    /// second at most) and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A device's visible state, changed by commands.
#[derive(Debug)]
struct State {
    temperature: f64,
    humidity: f64,
    battery: f64,
    led: String,
    said: String,
    phase: f64,
}

impl State {
    fn new(n: usize) -> State {
        State {
            temperature: 19.0 + (n % 7) as f64 * 0.5,
            humidity: 40.0 + (n % 11) as f64,
            battery: 100.0,
            led: "000000".to_owned(),
            said: String::new(),
            phase: n as f64,
        }
    }

    /// The next reading: slow drifts and a little noise.
    fn reading(&mut self) -> String {
        self.phase += 0.1;
        self.battery = (self.battery - 0.01).max(0.0);
        let temperature = self.temperature + self.phase.sin() * 0.8 + fastrand::f64() * 0.1;
        let humidity = self.humidity + (self.phase * 0.7).cos() * 2.0;
        let mut line = format!(
            "temp={temperature:.2};hum={humidity:.1};batt={:.0};led={}",
            self.battery, self.led
        );
        if !self.said.is_empty() {
            line.push_str(";say=");
            line.push_str(&self.said);
        }
        line
    }

    /// Applies `command[:parameters]`; what to report.
    fn apply(&mut self, line: &str) -> String {
        let (command, parameters) = line.split_once(':').unwrap_or((line, ""));
        match command {
            "led" => self.led = parameters.chars().take(16).collect(),
            "say" => self.said = parameters.chars().take(64).collect(),
            "reset" => {
                self.led = "000000".to_owned();
                self.said.clear();
            }
            // Commands the simulator does not model still show up.
            _ => {}
        }
        format!("applied={line}")
    }
}

struct VirtualDevice {
    id: String,
    config: SwarmConfig,
    counters: Arc<Counters>,
    state: State,
}

impl VirtualDevice {
    async fn run(mut self, stop: CancellationToken, gate: Arc<tokio::sync::Semaphore>) {
        let Ok(connector) =
            Connector::new(self.config.target.clone(), &[], self.config.connect_timeout)
        else {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let backoff = Backoff::default();
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let connected = {
                let _turn = gate.acquire().await;
                tokio::select! {
                    result = connector.connect() => result,
                    () = stop.cancelled() => return,
                }
            };
            match connected {
                Ok((ws, _)) => {
                    failures = 0;
                    self.session(ws, &stop).await;
                }
                Err(_) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.delay(failures)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One connection: register, then send and answer until it ends.
    async fn session(&mut self, mut ws: WsStream, stop: &CancellationToken) {
        if ws
            .send(Frame::text(format!("id:{}", self.id)))
            .await
            .is_err()
        {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.connected.fetch_add(1, Ordering::Relaxed);
        let period = Duration::from_secs_f64(1.0 / self.config.rate.max(0.001));
        // Spread the first readings so the swarm does not send in step.
        let first = tokio::time::Instant::now() + period.mul_f64(fastrand::f64());
        let mut ticks = tokio::time::interval_at(first, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let outgoing = tokio::select! {
                _ = ticks.tick() => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    self.state.reading()
                }
                frame = ws.next() => match frame {
                    Some(Ok(Frame::Text(text))) => match self.answer(text.as_str()) {
                        Some(reply) => reply,
                        None => continue,
                    },
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
                () = stop.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    break;
                }
            };
            if ws.send(Frame::text(outgoing)).await.is_err() {
                break;
            }
        }
        self.counters.connected.fetch_sub(1, Ordering::Relaxed);
        if !stop.is_cancelled() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What to send back for a line from the hub, if anything.
    fn answer(&mut self, text: &str) -> Option<String> {
        if text == "ping" {
            self.counters.pings.fetch_add(1, Ordering::Relaxed);
            return Some("pong".to_owned());
        }
        if text == "pong" {
            return None;
        }
        if text.starts_with("error:") {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        Some(self.state.apply(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_change_what_the_device_reports() {
        let mut state = State::new(3);
        assert!(state.reading().contains("led=000000"));
        assert_eq!(state.apply("led:ff0000"), "applied=led:ff0000");
        assert_eq!(state.apply("say:time: 12:00"), "applied=say:time: 12:00");
        let reading = state.reading();
        assert!(
            reading.contains("led=ff0000") && reading.ends_with("say=time: 12:00"),
            "{reading}"
        );
        state.apply("reset");
        assert!(state.reading().contains("led=000000"));
    }
}
