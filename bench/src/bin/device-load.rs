//! `device-load`: data lines from many devices to a few subscribers through
//! a device hub (seed 002): lines delivered per second and line latency.
//!
//! What it measures: N devices (default 1,000), each on its own WebSocket
//! connection registered with `id:<prefix>-<n>`, send data lines; S
//! subscribers (default 10), each on its own connection after `s`, receive
//! every line as `<deviceId>:<data>`. Each line carries its device, a
//! run-wide sequence number and its send time
//! (`d=<n>;n=<seq>;t=<nanoseconds since the run's start>;temp=...`), so
//! every subscriber measures each line's latency (send → delivery; exact
//! nearest-rank percentiles over every delivery) and checks that it gets
//! each line once, with the sender's id in front, and each device's lines in
//! the order sent. The report gives deliveries per second (the lines
//! delivered, summed over the subscribers, over the time from the first
//! measured send to the last delivery), lines per second (the same over S),
//! the latencies, and the hub's CPU time per delivery (`--pid`, from
//! /proc/PID/stat) beside device-load's own.
//!
//! Flow control: at most `--window` lines are in flight (sent, not yet
//! delivered to every subscriber). Without `--rate` the devices send as fast
//! as the window allows (each device waits its turn for a free slot, so they
//! take turns), a closed loop that finds the rate the hub sustains without
//! letting a queue grow (a hub that bounds its per-connection queue would
//! otherwise close a subscriber as too slow). `--rate R` has each device
//! send R lines per second instead (evenly phased across devices; a late
//! line is not made up for), which shows latency below saturation; the
//! window still bounds it.
//!
//! Devices answer the hub's `ping` with `pong`. Before measuring, every
//! device and subscriber has sent `ping` after its `id:` or `s` and had its
//! `pong` (so the hub has taken it in); then `--warmup-lines` unmeasured
//! lines go first. The subscribers are read on a thread (and runtime) of
//! their own, so that their reading is not queued behind the devices'
//! sending.
//!
//! ```sh
//! cargo build --release -p specwire-bench
//! target/release/device-load --target ws://127.0.0.1:PORT \
//!     [--devices 1000] [--subscribers 10] [--lines 100000] [--warmup-lines 2000] \
//!     [--window 512] [--rate PER_DEVICE_PER_SECOND] [--duration 10s] [--timeout 10s] \
//!     [--threads 1] [--pid HUB_PID] [--label NAME] [--json]
//! ```
//!
//! It stops by itself: after `--lines` measured lines or `--duration` of
//! sending, whichever comes first; every connect, send and wait is bounded
//! by `--timeout`, and a hard cap ends the process regardless. An `error:`
//! line from the hub (e.g. `rate limit exceeded`: run the hub with
//! `--rate-limit 0`), a connection the hub closes, a line lost, repeated,
//! out of order or mislabelled fails the run (exit status 1). Loopback
//! targets only. `bench/run-device-bench` runs it against specwire's hub and
//! the Python baseline (`interop/minimal_device_hub.py`), interleaved.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use specwire_bench::{
    check_loopback, cpu_time, ensure_open_files, micros, parse_duration, percentiles, run_bounded,
    Deliveries, Percentiles,
};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Data lines from many devices to a few subscribers through a device hub.
#[derive(Parser, Debug)]
#[command(name = "device-load", version)]
struct Args {
    /// The hub, e.g. ws://127.0.0.1:5000 (loopback only).
    #[arg(long)]
    target: String,
    /// Device connections.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Subscriber connections (each gets every line).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Measured lines to send (over all devices).
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// Unmeasured lines sent first.
    #[arg(long, default_value_t = 2000)]
    warmup_lines: u64,
    /// Lines in flight at most (sent, not yet delivered to every subscriber).
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Lines per second per device (default: as fast as the window allows).
    #[arg(long, value_name = "PER_DEVICE_PER_SECOND")]
    rate: Option<f64>,
    /// Stop sending after this long even if not all lines are out.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Bound on each connect and send, on a free window slot and on the
    /// last lines' delivery.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Device ids are PREFIX-00000, PREFIX-00001, ...
    #[arg(long, default_value = "dl")]
    prefix: String,
    /// Handshakes (with registration) in flight at once while connecting.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Threads of the devices' tokio runtime (1: a current-thread runtime);
    /// the subscribers have one more thread of their own.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The hub's process id: its CPU time over the measured window is
    /// reported per delivery.
    #[arg(long)]
    pid: Option<u32>,
    /// A name for the hub, copied into the report.
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON line instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

/// Run-wide state shared by the devices and the subscribers.
struct Run {
    subscribers: usize,
    warmup: u64,
    /// Warm-up plus measured lines: the most that are sent.
    total: u64,
    prefix: String,
    /// The run's clock: send times in lines are nanoseconds since this.
    epoch: Instant,
    /// Deliveries per line so far (index: sequence number).
    delivered: Vec<AtomicU32>,
    /// One permit per line that may be in flight.
    window: Semaphore,
    /// The next sequence number to send.
    next_seq: AtomicU64,
    /// Lines sent so far.
    sent: AtomicU64,
    /// Set when sending is over: how many lines went out (u64::MAX before).
    published: AtomicU64,
    /// When the first measured line was sent, in nanoseconds since `epoch`.
    first_send: AtomicU64,
    /// When the last delivery of a measured line arrived.
    last_delivery: AtomicU64,
    /// CPU times (hub, own) when the first measured line went out.
    cpu_start: Mutex<Option<(Option<Duration>, Option<Duration>)>>,
    hub_pid: Option<u32>,
    errors: AtomicU64,
    examples: Mutex<Vec<String>>,
    failed: AtomicBool,
    /// Subscribers registered (ping answered after `s`).
    subscribed: AtomicUsize,
    /// True once the devices may send.
    go: watch::Sender<bool>,
    /// True once sending is over (or the run failed).
    stop: watch::Sender<bool>,
}

impl Run {
    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.failed.load(Ordering::Relaxed)
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        if examples.len() < 5 && !examples.contains(&what) {
            examples.push(what);
        }
        // Unblock the devices and the subscribers, once: the run is over
        // (a second batch of permits would overflow the semaphore).
        if !self.failed.swap(true, Ordering::AcqRel) {
            self.window.add_permits(Semaphore::MAX_PERMITS / 2);
        }
        self.go.send_replace(true);
        self.stop.send_replace(true);
    }
}

fn client_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
}

async fn connect(url: &str, read_buffer: usize, timeout: Duration) -> Result<Ws, String> {
    let connecting =
        tokio_tungstenite::connect_async_with_config(url, Some(client_config(read_buffer)), true);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err(format!("connect: no handshake within {timeout:?}")),
    }
}

async fn send<S>(ws: &mut S, text: String, timeout: Duration) -> Result<(), String>
where
    S: futures_util::Sink<Frame, Error = WsError> + Unpin,
{
    match tokio::time::timeout(timeout, ws.send(Frame::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("send: {error}")),
        Err(_) => Err(format!("send blocked for {timeout:?}")),
    }
}

/// Sends `line`, then `ping`, and waits for the `pong` (answering the hub's
/// pings meanwhile): once it comes, the hub has taken `line` in. Anything
/// else (an `error:`) fails.
async fn introduce(ws: &mut Ws, line: String, timeout: Duration) -> Result<(), String> {
    send(ws, line.clone(), timeout).await?;
    send(ws, "ping".to_owned(), timeout).await?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Frame::Text(text))) => match text.as_str() {
                    "pong" => return Ok(()),
                    "ping" => send(ws, "pong".to_owned(), timeout).await?,
                    other => return Err(format!("`{line}` answered `{other}`")),
                },
                Some(Ok(Frame::Close(close))) => {
                    return Err(format!("closed after `{line}`: {close:?}"))
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(format!("after `{line}`: {error}")),
                None => return Err(format!("the hub ended the connection after `{line}`")),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| Err(format!("no pong within {timeout:?} after `{line}`")))
}

/// The data line device `device` sends as line `seq`.
fn data_line(device: usize, seq: u64, sent_ns: u64) -> String {
    format!(
        "d={device};n={seq};t={sent_ns};temp={}.{:02};hum=40.2;batt=97",
        18 + seq % 7,
        seq % 100
    )
}

/// `(device, sequence number, send time)` from a broadcast
/// `<prefix>-<device>:d=<device>;n=<seq>;t=<ns>;...`, checking that the id in
/// front is the sender's.
fn parse_broadcast(text: &str, prefix: &str) -> Option<(usize, u64, u64)> {
    let (id, data) = text.split_once(':')?;
    let mut fields = data.split(';');
    let device: usize = fields.next()?.strip_prefix("d=")?.parse().ok()?;
    let seq: u64 = fields.next()?.strip_prefix("n=")?.parse().ok()?;
    let sent: u64 = fields.next()?.strip_prefix("t=")?.parse().ok()?;
    let number: usize = id.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()?;
    (number == device).then_some((device, seq, sent))
}

fn device_id(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// One device: waits for the start, then sends a line whenever its tick
/// (with `--rate`) and a window slot allow, answering the hub's pings.
/// Returns its connection, still open, to be closed after the measurement.
async fn run_device(
    run: Arc<Run>,
    index: usize,
    ws: Ws,
    devices: usize,
    interval: Option<Duration>,
    timeout: Duration,
    duration: Duration,
) -> Option<Ws> {
    let (mut sink, mut stream) = ws.split();
    let mut go = run.go.subscribe();
    if go.wait_for(|go| *go).await.is_err() || run.stopping() {
        return sink.reunite(stream).ok();
    }
    let start = Instant::now();
    let deadline = start + duration;
    // Devices spread evenly over the first interval.
    let mut next_tick =
        interval.map(|interval| start + interval.mul_f64(index as f64 / devices.max(1) as f64));
    loop {
        if run.stopping() || Instant::now() >= deadline {
            break;
        }
        // Wait for the tick, then for a slot; answer pings meanwhile.
        let (tick, window) = (next_tick, &run.window);
        let ready = async move {
            if let Some(tick) = tick {
                tokio::time::sleep_until(tick.min(deadline).into()).await;
                if Instant::now() >= deadline {
                    return Err(None);
                }
            }
            match tokio::time::timeout(timeout, window.acquire()).await {
                Ok(Ok(permit)) => {
                    permit.forget();
                    Ok(())
                }
                Ok(Err(_)) => Err(None),
                Err(_) => Err(Some(format!(
                    "device {index}: no free window slot within {timeout:?} (lines are not delivered)"
                ))),
            }
        };
        tokio::pin!(ready);
        let ready = loop {
            tokio::select! {
                biased;
                frame = stream.next() => match frame {
                    Some(Ok(Frame::Text(text))) => match text.as_str() {
                        "ping" => {
                            if let Err(error) = send(&mut sink, "pong".to_owned(), timeout).await {
                                run.error(format!("device {index}: pong: {error}"));
                                return None;
                            }
                        }
                        other if other.starts_with("error:") => {
                            run.error(format!("device {index}: the hub answered `{other}`"));
                            return None;
                        }
                        _ => {}
                    },
                    Some(Ok(Frame::Close(close))) => {
                        run.error(format!("device {index}: closed by the hub: {close:?}"));
                        return None;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        run.error(format!("device {index}: {error}"));
                        return None;
                    }
                    None => {
                        run.error(format!("device {index}: the hub ended the connection"));
                        return None;
                    }
                },
                ready = &mut ready => break ready,
            }
        };
        match ready {
            Ok(()) => {}
            Err(None) => break,
            Err(Some(error)) => {
                run.error(error);
                break;
            }
        }
        if let (Some(interval), Some(tick)) = (interval, next_tick.as_mut()) {
            // A late line is not made up for with a burst.
            *tick = (*tick + interval).max(Instant::now());
        }
        let seq = run.next_seq.fetch_add(1, Ordering::AcqRel);
        if seq >= run.total || run.stopping() {
            run.window.add_permits(1);
            break;
        }
        if seq == run.warmup {
            let hub = run.hub_pid.and_then(|pid| cpu_time(pid).ok());
            let own = cpu_time(std::process::id()).ok();
            *run.cpu_start.lock().unwrap_or_else(|p| p.into_inner()) = Some((hub, own));
        }
        let sent = run.since_epoch();
        if seq == run.warmup {
            run.first_send.store(sent, Ordering::Release);
        }
        if let Err(error) = send(&mut sink, data_line(index, seq, sent), timeout).await {
            run.error(format!("device {index}: {error}"));
            return None;
        }
        run.sent.fetch_add(1, Ordering::AcqRel);
    }
    sink.reunite(stream).ok()
}

struct ReaderReport {
    samples: Vec<u64>,
    ws: Option<Ws>,
}

/// One subscriber: reads until it has every line sent or the run fails;
/// once sending is over, what is still due must come within `timeout`.
async fn read_lines(
    run: Arc<Run>,
    index: usize,
    mut ws: Ws,
    devices: usize,
    timeout: Duration,
) -> ReaderReport {
    let mut samples = Vec::new();
    let mut stop = run.stop.subscribe();
    let mut deadline: Option<Instant> = None;
    // Per device: 1 + the last sequence number received (0: none yet).
    let mut last = vec![0u64; devices];
    let mut received = 0u64;
    loop {
        if run.failed.load(Ordering::Relaxed) {
            break;
        }
        if deadline.is_some() && received >= run.published.load(Ordering::Acquire) {
            break;
        }
        let frame = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                Ok(frame) => frame,
                Err(_) => {
                    run.error(format!(
                        "subscriber {index}: {received} of {} lines received within {timeout:?} after the last send",
                        run.published.load(Ordering::Acquire)
                    ));
                    break;
                }
            },
            None => tokio::select! {
                frame = ws.next() => frame,
                _ = stop.wait_for(|stopped| *stopped) => {
                    deadline = Some(Instant::now() + timeout);
                    continue;
                }
            },
        };
        let text = match frame {
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Close(close))) => {
                run.error(format!("subscriber {index}: closed by the hub: {close:?}"));
                return ReaderReport { samples, ws: None };
            }
            Some(Ok(Frame::Binary(_))) => {
                run.error(format!("subscriber {index}: a binary frame"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                run.error(format!("subscriber {index}: {error}"));
                return ReaderReport { samples, ws: None };
            }
            None => {
                run.error(format!("subscriber {index}: the hub ended the connection"));
                return ReaderReport { samples, ws: None };
            }
        };
        let now = run.since_epoch();
        let Some((device, seq, sent)) = parse_broadcast(text.as_str(), &run.prefix) else {
            let shown: String = text.as_str().chars().take(120).collect();
            run.error(format!("subscriber {index}: unexpected line `{shown}`"));
            break;
        };
        if device >= devices || seq >= run.total || last[device] > seq {
            run.error(format!(
                "subscriber {index}: line {seq} of device {device} repeated, out of order or unknown"
            ));
            break;
        }
        last[device] = seq + 1;
        received += 1;
        if seq >= run.warmup {
            samples.push(now.saturating_sub(sent));
            run.last_delivery.fetch_max(now, Ordering::AcqRel);
        }
        if run.delivered[seq as usize].fetch_add(1, Ordering::AcqRel) + 1 == run.subscribers as u32
        {
            run.window.add_permits(1);
        }
    }
    ReaderReport {
        samples,
        ws: Some(ws),
    }
}

/// Connects and subscribes the subscribers on a thread and runtime of their
/// own and reads them there; the receiver gets how many subscribed, the
/// thread returns their latencies.
fn start_subscribers(
    run: Arc<Run>,
    url: String,
    count: usize,
    devices: usize,
    timeout: Duration,
) -> (
    std::thread::JoinHandle<Vec<u64>>,
    tokio::sync::oneshot::Receiver<usize>,
) {
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                run.error(format!("the subscribers' runtime: {error}"));
                let _ = subscribed_tx.send(0);
                return Vec::new();
            }
        };
        runtime.block_on(async {
            let mut readers = Vec::new();
            for index in 0..count {
                // Subscribers read many small frames: a larger buffer.
                let subscribed = match connect(&url, 64 * 1024, timeout).await {
                    Ok(mut ws) => introduce(&mut ws, "s".to_owned(), timeout)
                        .await
                        .map(|()| ws),
                    Err(error) => Err(error),
                };
                match subscribed {
                    Ok(ws) => {
                        run.subscribed.fetch_add(1, Ordering::AcqRel);
                        readers.push(read_lines(Arc::clone(&run), index, ws, devices, timeout));
                    }
                    Err(error) => run.error(format!("subscriber {index}: {error}")),
                }
            }
            let _ = subscribed_tx.send(readers.len());
            let reports = futures_util::future::join_all(readers).await;
            let mut samples = Vec::new();
            for report in reports {
                samples.extend_from_slice(&report.samples);
                if let Some(mut ws) = report.ws {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                }
            }
            samples
        })
    });
    (thread, subscribed_rx)
}

struct Summary {
    devices: usize,
    subscribers: usize,
    deliveries: u64,
    measured_lines: u64,
    expected_deliveries: u64,
    window: Duration,
    samples: Vec<u64>,
    hub_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    errors: u64,
    examples: Vec<String>,
    connect_time: Duration,
}

async fn load(args: &Args) -> Summary {
    let total = args.warmup_lines + args.lines;
    let run = Arc::new(Run {
        subscribers: args.subscribers,
        warmup: args.warmup_lines,
        total,
        prefix: args.prefix.clone(),
        epoch: Instant::now(),
        delivered: (0..total).map(|_| AtomicU32::new(0)).collect(),
        window: Semaphore::new(args.window),
        next_seq: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        published: AtomicU64::new(u64::MAX),
        first_send: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        cpu_start: Mutex::new(None),
        hub_pid: args.pid,
        errors: AtomicU64::new(0),
        examples: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        subscribed: AtomicUsize::new(0),
        go: watch::channel(false).0,
        stop: watch::channel(false).0,
    });
    let started = Instant::now();
    let timeout = args.timeout;

    // Subscribers first (on their thread), then the devices.
    let (subscriber_thread, subscribed) = start_subscribers(
        Arc::clone(&run),
        args.target.clone(),
        args.subscribers,
        args.devices,
        timeout,
    );
    let bound = timeout * (args.subscribers as u32 + 1);
    let subscribers = match tokio::time::timeout(bound, subscribed).await {
        Ok(Ok(count)) => count,
        _ => {
            run.error(format!(
                "the subscribers did not subscribe within {bound:?}"
            ));
            0
        }
    };
    let prefix = args.prefix.clone();
    let results: Vec<(usize, Result<Ws, String>)> = futures_util::stream::iter(0..args.devices)
        .map(|index| {
            let id = device_id(&prefix, index);
            let target = args.target.clone();
            async move {
                let registered = match connect(&target, 4096, timeout).await {
                    Ok(mut ws) => introduce(&mut ws, format!("id:{id}"), timeout)
                        .await
                        .map(|()| ws),
                    Err(error) => Err(error),
                };
                (index, registered)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let connect_time = started.elapsed();
    let interval = args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let mut devices = tokio::task::JoinSet::new();
    let mut connected = 0;
    for (index, result) in results {
        match result {
            Ok(ws) => {
                connected += 1;
                devices.spawn(run_device(
                    Arc::clone(&run),
                    index,
                    ws,
                    args.devices,
                    interval,
                    timeout,
                    args.duration,
                ));
            }
            Err(error) => run.error(format!("device {index}: {error}")),
        }
    }

    // Send: everyone starts at once; wait (bounded) for every device to end.
    run.go.send_replace(true);
    let mut open = Vec::new();
    let sending = async {
        while let Some(joined) = devices.join_next().await {
            match joined {
                Ok(ws) => open.extend(ws),
                Err(error) => run.error(format!("a device task failed: {error}")),
            }
        }
    };
    let bound = args.duration + 2 * timeout;
    if tokio::time::timeout(bound, sending).await.is_err() {
        run.error(format!("the devices did not stop within {bound:?}"));
        devices.abort_all();
    }
    let sent = run.sent.load(Ordering::Acquire);
    run.published.store(sent, Ordering::Release);
    run.stop.send_replace(true);

    // Wait for the subscribers (each bounded by the timeout after the stop).
    let joined = tokio::task::spawn_blocking(move || subscriber_thread.join());
    let mut samples = Vec::new();
    match tokio::time::timeout(timeout * 2, joined).await {
        Ok(Ok(Ok(got))) => samples = got,
        Ok(_) => run.error("the subscriber thread failed".to_owned()),
        Err(_) => run.error(format!(
            "the subscribers did not finish within {:?}",
            timeout * 2
        )),
    }
    let (hub_start, own_start) = run
        .cpu_start
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or((None, None));
    let delta = |start: Option<Duration>, end: Option<Duration>| Some(end?.saturating_sub(start?));
    let hub_cpu = delta(hub_start, args.pid.and_then(|pid| cpu_time(pid).ok()));
    let client_cpu = delta(own_start, cpu_time(std::process::id()).ok());
    futures_util::stream::iter(open.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect::<Vec<()>>()
    .await;

    let measured_lines = sent.saturating_sub(args.warmup_lines);
    let first = run.first_send.load(Ordering::Acquire);
    let last = run.last_delivery.load(Ordering::Acquire);
    let examples = run
        .examples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Summary {
        devices: connected,
        subscribers,
        deliveries: samples.len() as u64,
        measured_lines,
        expected_deliveries: measured_lines * subscribers as u64,
        window: Duration::from_nanos(last.saturating_sub(first)),
        samples,
        hub_cpu,
        client_cpu,
        errors: run.errors.load(Ordering::Relaxed),
        examples,
        connect_time,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = check_loopback(&args.target) {
        eprintln!("device-load: {}", error.replace("--endpoint", "--target"));
        return ExitCode::from(2);
    }
    if args.devices == 0
        || args.subscribers == 0
        || args.threads == 0
        || args.window == 0
        || args.lines == 0
    {
        eprintln!(
            "device-load: --devices, --subscribers, --threads, --window and --lines must be at least 1"
        );
        return ExitCode::from(2);
    }
    if args.subscribers > u32::MAX as usize / 2 || args.warmup_lines + args.lines > 100_000_000 {
        eprintln!("device-load: too many subscribers or lines (at most 100,000,000 lines)");
        return ExitCode::from(2);
    }
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        eprintln!("device-load: --rate must be a positive number");
        return ExitCode::from(2);
    }
    if args.prefix.is_empty() || args.prefix.contains([':', ' ', '\t', '\n']) {
        eprintln!("device-load: --prefix must be non-empty, without ':' or white space");
        return ExitCode::from(2);
    }
    let connections = (args.devices + args.subscribers) as u64;
    ensure_open_files("device-load", connections);
    // Connecting (ceil(N / concurrency) handshakes deep, plus the
    // subscribers one by one), sending, and the drain.
    let rounds = args.devices.div_ceil(args.concurrency.max(1)) + args.subscribers;
    let hard_cap = args.duration + (rounds as u32 + 6) * args.timeout + Duration::from_secs(10);
    let mut summary = match run_bounded(args.threads, hard_cap, load(&args)) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("device-load: {error}");
            return ExitCode::from(1);
        }
    };
    let latency = percentiles(&mut summary.samples);
    print_report(&args, &summary, &latency);
    summary.deliveries().verdict("device-load")
}

impl Summary {
    fn deliveries(&self) -> Deliveries<'_> {
        Deliveries {
            measured: self.deliveries,
            expected: self.expected_deliveries,
            window: self.window,
            errors: self.errors,
            examples: &self.examples,
        }
    }
}

fn print_report(args: &Args, summary: &Summary, latency: &Percentiles) {
    let counted = summary.deliveries();
    let seconds = summary.window.as_secs_f64();
    let deliveries_per_s = counted.per_second();
    let lines_per_s = deliveries_per_s / summary.subscribers.max(1) as f64;
    let per_delivery = |cpu| counted.cpu_per_delivery_us(cpu);
    let cores = |cpu| counted.cores(cpu);
    let offered = args.rate.map(|rate| rate * summary.devices as f64);
    if args.json {
        let line = json!({
            "tool": "device-load",
            "label": args.label,
            "target": args.target,
            "devices": args.devices,
            "connected_devices": summary.devices,
            "subscribers": summary.subscribers,
            "lines": summary.measured_lines,
            "warmup_lines": args.warmup_lines,
            "window": args.window,
            "rate_per_device": args.rate,
            "offered_lines_per_s": offered,
            "threads": args.threads,
            "connect_s": (summary.connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "window_s": (seconds * 1000.0).round() / 1000.0,
            "deliveries": summary.deliveries,
            "expected_deliveries": summary.expected_deliveries,
            "deliveries_per_s": deliveries_per_s.round(),
            "lines_per_s": lines_per_s.round(),
            "p50_us": micros(latency.p50),
            "p90_us": micros(latency.p90),
            "p99_us": micros(latency.p99),
            "max_us": micros(latency.max),
            "mean_us": micros(latency.mean),
            "hub_cpu_us_per_delivery": per_delivery(summary.hub_cpu),
            "hub_cpu_cores": cores(summary.hub_cpu),
            "client_cpu_us_per_delivery": per_delivery(summary.client_cpu),
            "client_cpu_cores": cores(summary.client_cpu),
            "errors": summary.errors,
            "error_examples": summary.examples,
        });
        println!("{line}");
    } else {
        println!(
            "device-load {}{}: {} of {} devices, {} of {} subscribers, {} lines{} after {} warm-up, window {}",
            args.target,
            args.label
                .as_deref()
                .map(|label| format!(" ({label})"))
                .unwrap_or_default(),
            summary.devices,
            args.devices,
            summary.subscribers,
            args.subscribers,
            summary.measured_lines,
            args.rate
                .map(|rate| format!(" at {rate}/s per device"))
                .unwrap_or_default(),
            args.warmup_lines,
            args.window
        );
        println!(
            "  deliveries: {} of {} in {:.2} s = {:.0}/s ({:.0} lines/s to every subscriber)",
            summary.deliveries, summary.expected_deliveries, seconds, deliveries_per_s, lines_per_s
        );
        println!(
            "  send→delivery µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
            micros(latency.p50),
            micros(latency.p90),
            micros(latency.p99),
            micros(latency.max),
            micros(latency.mean)
        );
        let show = |cpu: Option<Duration>| match (per_delivery(cpu), cores(cpu)) {
            (Some(per), Some(cores)) => format!("{per:.2} µs per delivery ({cores:.2} cores)"),
            _ => "-".to_owned(),
        };
        println!(
            "  CPU: hub {}; device-load {}",
            show(summary.hub_cpu),
            show(summary.client_cpu)
        );
        println!("  errors: {}", summary.errors);
        for example in &summary.examples {
            println!("    e.g. {example}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_the_broadcast() {
        let line = data_line(42, 1234, 987_654_321);
        let broadcast = format!("{}:{line}", device_id("dl", 42));
        assert_eq!(
            parse_broadcast(&broadcast, "dl"),
            Some((42, 1234, 987_654_321))
        );
        // The id in front must be the sender's.
        let wrong = format!("{}:{line}", device_id("dl", 43));
        assert_eq!(parse_broadcast(&wrong, "dl"), None);
        assert_eq!(parse_broadcast(&line, "dl"), None);
        assert_eq!(parse_broadcast("pong", "dl"), None);
    }
}
