//! `hub-load`: fan-out throughput and publish→delivery latency of a
//! subscription hub (seed 001).
//!
//! What it measures: N subscribers (default 1,000), each on its own
//! WebSocket connection with its own HS256 token, all interested in one
//! experiment `E` but at different levels so that the hub's routing is real:
//! by default a third connect to `/ws/experiments/E`, a third to
//! `/ws/projects/P` and a third to `/ws/user` as `E`'s owner (`--mix`). The
//! hub learns `E` → (`P`, owner) from an `experiment_created` published
//! first; the load is then `task_progress` events for a task of `E`, so each
//! reaches every subscriber through the task → experiment → project/user
//! table. One admin connection (token with `role: admin`) publishes them as
//! `{"type":"publish","data":<event>}`.
//!
//! Each event's `id` carries its sequence number and its send time
//! (`task_<task>_hl<seq>_<nanoseconds since the run's start>`), so every
//! subscriber measures publish→delivery latency of every delivery (exact
//! nearest-rank percentiles over all of them) and checks that it gets each
//! event once, in order. The report gives deliveries per second (all
//! subscribers' measured deliveries / the time from the first measured send
//! to the last delivery), events per second (the same over N), the
//! latencies, each event's first-delivery latency (the hub's reaction time
//! without the fan-out and without this client reading N sockets one after
//! the other, which puts a floor of N × its per-delivery cost under the
//! last subscriber's latency), and the hub's CPU time per delivery (`--pid`,
//! from /proc/PID/stat) beside hub-load's own.
//!
//! Flow control: at most `--window` events are in flight (published and not
//! yet delivered to every subscriber), so the default run is a closed loop
//! that finds the rate the hub sustains without letting a queue grow (a hub
//! that bounds its per-connection queue would otherwise close subscribers
//! as too slow). `--rate R` paces the events at R per second instead (still
//! within the window), which shows latency below saturation.
//!
//! Before measuring, the publisher repeats `experiment_updated` for `E`
//! until every subscriber has received one (so none is still being
//! registered), then sends `--warmup-events` unmeasured events.
//!
//! ```sh
//! cargo build --release -p specwire-bench
//! target/release/hub-load --target ws://127.0.0.1:PORT --secret-file SECRET \
//!     [--subscribers 1000] [--events 5000] [--warmup-events 200] [--window 32] \
//!     [--rate PER_SECOND] [--mix experiment,project,user] [--duration 60s] \
//!     [--timeout 10s] [--threads 1] [--pid HUB_PID] [--label NAME] [--json]
//! ```
//!
//! It stops by itself: after `--events` measured events or `--duration` of
//! publishing, whichever comes first; every connect, send and wait is
//! bounded by `--timeout`, and a hard cap ends the process regardless. A
//! subscriber that is closed, misses an event or gets one twice or out of
//! order, or an `error` answer to a publish, fails the run (exit status 1).
//! Loopback targets only. `bench/run-hub-bench` runs it against specwire's
//! hub and the Python baseline (`interop/minimal_hub.py`), interleaved.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use specwire_bench::{
    check_loopback, cpu_time, ensure_open_files, hub_token, micros, parse_duration, percentiles,
    read_secret, run_bounded, Deliveries, Percentiles,
};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Fan-out throughput and latency of a subscription hub.
#[derive(Parser, Debug)]
#[command(name = "hub-load", version)]
struct Args {
    /// The hub, e.g. ws://127.0.0.1:8081 (loopback only).
    #[arg(long)]
    target: String,
    /// The hub's HS256 secret.
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the hub's secret (trailing newlines are dropped).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Measured events to publish.
    #[arg(long, default_value_t = 5000)]
    events: u64,
    /// Unmeasured events published first.
    #[arg(long, default_value_t = 200)]
    warmup_events: u64,
    /// Events in flight at most (published, not yet delivered to everyone).
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Pace the events at this many per second (default: as fast as the
    /// window allows).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// How subscribers connect, cycled over: `experiment` (/ws/experiments/E),
    /// `project` (/ws/projects/P), `user` (/ws/user as E's owner), `task`
    /// (/ws/tasks/T).
    #[arg(long, default_value = "experiment,project,user", value_delimiter = ',')]
    mix: Vec<Level>,
    /// Stop publishing after this long even if not all events are out.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Bound on each connect and send, and on each event's full delivery.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Subscribers (spread over the mix) read on a thread of their own, so
    /// that their latency is the hub's and not this client's: the others
    /// are read one after the other, which adds up to N × hub-load's own
    /// cost per delivery to the last ones' latency. 0: none.
    #[arg(long, default_value_t = 10)]
    probes: usize,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Threads of hub-load's tokio runtime (1: a current-thread runtime).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Level {
    Experiment,
    Project,
    User,
    Task,
}

const EXPERIMENT: &str = "e-hub-load";
const PROJECT: &str = "p-hub-load";
const OWNER: &str = "u-hub-load-owner";
const TASK: &str = "t-hub-load";
const ADMIN: &str = "hub-load-admin";
/// What every measured event's id starts with: `task_<TASK>_hl`.
const MARK: &str = "task_t-hub-load_hl";

/// Run-wide state shared by the publisher and the subscribers.
struct Run {
    subscribers: usize,
    warmup: u64,
    /// The run's clock: send times in event ids are nanoseconds since this.
    epoch: Instant,
    /// Deliveries per event so far (index: sequence number).
    delivered: Vec<AtomicU32>,
    /// Each event's earliest delivery latency, in nanoseconds.
    first: Vec<AtomicU64>,
    /// One permit per event that may be in flight.
    window: Semaphore,
    /// Subscribers that have received any event (the readiness barrier).
    ready: AtomicUsize,
    /// Events published so far (set when publishing ends: the total).
    published: AtomicU64,
    /// When the first measured event was sent, in nanoseconds since `epoch`.
    first_send: AtomicU64,
    /// When the last delivery of a measured event arrived.
    last_delivery: AtomicU64,
    errors: AtomicU64,
    examples: Mutex<Vec<String>>,
    failed: AtomicBool,
    /// True once publishing is over (or the run failed).
    stop: watch::Sender<bool>,
}

impl Run {
    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        if examples.len() < 5 && !examples.contains(&what) {
            examples.push(what);
        }
        // Unblock the publisher and the subscribers, once: the run is over
        // (a second batch of permits would overflow the semaphore).
        if !self.failed.swap(true, Ordering::AcqRel) {
            self.window.add_permits(Semaphore::MAX_PERMITS / 2);
        }
        self.stop.send_replace(true);
    }
}

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

async fn connect(url: &str, timeout: Duration) -> Result<Ws, String> {
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err(format!("connect: no handshake within {timeout:?}")),
    }
}

/// The path and the token's `sub` of subscriber `index`.
fn subscriber(mix: &[Level], index: usize) -> (String, String) {
    match mix[index % mix.len()] {
        Level::Experiment => (
            format!("/ws/experiments/{EXPERIMENT}"),
            format!("hl-{index}"),
        ),
        Level::Project => (format!("/ws/projects/{PROJECT}"), format!("hl-{index}")),
        Level::User => ("/ws/user".to_owned(), OWNER.to_owned()),
        Level::Task => (format!("/ws/tasks/{TASK}"), format!("hl-{index}")),
    }
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn experiment_event(kind: &str, serial: u64) -> String {
    let status = if kind == "experiment_created" {
        "CREATED"
    } else {
        "RUNNING"
    };
    let now = timestamp();
    format!(
        concat!(
            r#"{{"type":"publish","data":{{"type":"{kind}","id":"exp_{e}_{serial}","timestamp":"{now}","#,
            r#""data":{{"experiment":{{"id":"{e}","name":"hub-load","status":"{status}","ownerId":"{o}","projectId":"{p}"}},"#,
            r#""summary":{{"id":"{e}","name":"hub-load","status":"{status}","ownerId":"{o}"}}}}}}}}"#
        ),
        kind = kind,
        e = EXPERIMENT,
        serial = serial,
        now = now,
        status = status,
        o = OWNER,
        p = PROJECT
    )
}

fn progress_event(seq: u64, sent_ns: u64) -> String {
    let now = timestamp();
    format!(
        concat!(
            r#"{{"type":"publish","data":{{"type":"task_progress","id":"{mark}{seq}_{sent}","timestamp":"{now}","#,
            r#""data":{{"taskId":"{t}","experimentId":"{e}","status":"RUNNING","progressPercent":{pct},"#,
            r#""currentStage":"RUNNING","workerId":"worker-hub-load","startedAt":"{now}","#,
            r#""estimatedCompletion":"{now}","lastUpdated":"{now}"}}}}}}"#
        ),
        mark = MARK,
        seq = seq,
        sent = sent_ns,
        now = now,
        t = TASK,
        e = EXPERIMENT,
        pct = seq % 101
    )
}

/// `(sequence number, send time)` from an event's text, if it is one of ours.
fn parse_mark(text: &str) -> Option<(u64, u64)> {
    let start = text.find(MARK)? + MARK.len();
    let rest = &text[start..];
    let (seq, rest) = rest.split_once('_')?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((seq.parse().ok()?, rest[..end].parse().ok()?))
}

struct ReaderReport {
    samples: Vec<u64>,
    /// The connection, still open, to close once the hub's CPU time is read.
    ws: Option<Ws>,
}

/// One subscriber: reads until it has every published event or the run
/// fails; once publishing is over, what is still due must come within
/// `timeout`.
async fn read_events(run: Arc<Run>, index: usize, mut ws: Ws, timeout: Duration) -> ReaderReport {
    let mut samples = Vec::new();
    let mut stop = run.stop.subscribe();
    let mut deadline: Option<Instant> = None;
    let mut ready = false;
    let mut next_seq = 0u64;
    loop {
        if run.failed.load(Ordering::Relaxed) {
            break;
        }
        if deadline.is_some() && next_seq >= run.published.load(Ordering::Acquire) {
            break;
        }
        let frame = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                Ok(frame) => frame,
                Err(_) => {
                    run.error(format!(
                        "subscriber {index}: event {next_seq} not received within {timeout:?} after the last publish"
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
        let frame = match frame {
            None => {
                run.error(format!("subscriber {index}: the hub closed the connection"));
                return ReaderReport { samples, ws: None };
            }
            Some(Err(error)) => {
                run.error(format!("subscriber {index}: {error}"));
                return ReaderReport { samples, ws: None };
            }
            Some(Ok(frame)) => frame,
        };
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Close(close) => {
                run.error(format!("subscriber {index}: closed by the hub: {close:?}"));
                return ReaderReport { samples, ws: None };
            }
            Frame::Binary(_) => {
                run.error(format!("subscriber {index}: a binary frame"));
                break;
            }
            _ => continue,
        };
        let now = run.since_epoch();
        if !ready {
            ready = true;
            run.ready.fetch_add(1, Ordering::AcqRel);
        }
        let Some((seq, sent)) = parse_mark(text.as_str()) else {
            // The readiness probes, server pings, ...
            continue;
        };
        if seq != next_seq {
            run.error(format!(
                "subscriber {index}: event {seq} arrived when {next_seq} was due (lost, repeated or out of order)"
            ));
            break;
        }
        next_seq += 1;
        if seq >= run.warmup {
            let latency = now.saturating_sub(sent);
            samples.push(latency);
            run.first[seq as usize].fetch_min(latency, Ordering::AcqRel);
            run.last_delivery.fetch_max(now, Ordering::AcqRel);
        }
        let slot = &run.delivered[seq as usize];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 == run.subscribers as u32 {
            run.window.add_permits(1);
        }
    }
    ReaderReport {
        samples,
        ws: Some(ws),
    }
}

/// Reads the admin connection: any `error` there means a publish was refused.
async fn watch_admin(run: Arc<Run>, mut stream: SplitStream<Ws>) {
    let mut stop = run.stop.subscribe();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match frame {
            Some(Ok(Frame::Text(text))) => {
                if text.as_str().contains(r#""type":"error""#)
                    || text.as_str().contains(r#""type": "error""#)
                {
                    run.error(format!("the hub refused a publish: {}", text.as_str()));
                    return;
                }
            }
            Some(Ok(Frame::Close(close))) => {
                run.error(format!("the admin connection was closed: {close:?}"));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                run.error(format!("the admin connection failed: {error}"));
                return;
            }
            None => {
                run.error("the admin connection ended".to_owned());
                return;
            }
        }
    }
}

async fn send(
    sink: &mut SplitSink<Ws, Frame>,
    text: String,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, sink.send(Frame::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("publish: {error}")),
        Err(_) => Err(format!("publish: send blocked for {timeout:?}")),
    }
}

/// Connects the probe subscribers on a thread and runtime of their own and
/// reads them there; the receiver gets how many connected, the thread
/// returns their latencies (which it also adds to the run's).
fn start_probes(
    run: Arc<Run>,
    probes: Vec<(usize, String)>,
    timeout: Duration,
) -> (
    std::thread::JoinHandle<Vec<u64>>,
    tokio::sync::oneshot::Receiver<usize>,
) {
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                run.error(format!("the probes' runtime: {error}"));
                let _ = connected_tx.send(0);
                return Vec::new();
            }
        };
        runtime.block_on(async {
            let mut readers = Vec::new();
            for (index, url) in probes {
                match connect(&url, timeout).await {
                    Ok(ws) => readers.push(read_events(Arc::clone(&run), index, ws, timeout)),
                    Err(error) => run.error(format!("probe subscriber {index}: {error}")),
                }
            }
            let _ = connected_tx.send(readers.len());
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
    (thread, connected_rx)
}

struct Summary {
    connected: usize,
    /// Latencies at the probe subscribers (see `--probes`).
    probe: Percentiles,
    deliveries: u64,
    measured_events: u64,
    expected_deliveries: u64,
    window: Duration,
    samples: Vec<u64>,
    /// Over events: the latency of each event's first delivery.
    first_delivery: Percentiles,
    hub_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    errors: u64,
    examples: Vec<String>,
    connect_time: Duration,
}

/// Teaches the hub E's project and owner, and waits until every
/// subscriber gets events (each is registered): `experiment_updated` until
/// all have one.
async fn teach(run: &Run, sink: &mut SplitSink<Ws, Frame>, args: &Args, connected: usize) {
    let mut failure = None;
    if !run.failed.load(Ordering::Relaxed) {
        let give_up = Instant::now() + args.timeout;
        let mut serial = 0;
        loop {
            let kind = if serial == 0 {
                "experiment_created"
            } else {
                "experiment_updated"
            };
            if let Err(error) = send(sink, experiment_event(kind, serial), args.timeout).await {
                failure = Some(error);
                break;
            }
            serial += 1;
            let probe_until = Instant::now() + Duration::from_millis(200);
            while run.ready.load(Ordering::Acquire) < connected && Instant::now() < probe_until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if run.ready.load(Ordering::Acquire) >= connected || run.failed.load(Ordering::Relaxed)
            {
                break;
            }
            if Instant::now() >= give_up {
                failure = Some(format!(
                    "only {} of {connected} subscribers received an event within {:?}",
                    run.ready.load(Ordering::Acquire),
                    args.timeout
                ));
                break;
            }
        }
    }
    if let Some(failure) = failure {
        run.error(failure);
    }
}

/// Publishes the warm-up, then the measured events, each after a window
/// permit (and at `--rate` when given). Returns how many were published
/// and the hub's and this process's CPU time when measuring began.
async fn publish_events(
    run: &Run,
    sink: &mut SplitSink<Ws, Frame>,
    args: &Args,
    connected: usize,
    total: u64,
) -> (u64, Option<Duration>, Option<Duration>) {
    let own = std::process::id();
    let mut hub_cpu_start = None;
    let mut own_cpu_start = None;
    let publish_until = Instant::now() + args.duration;
    let interval = args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let mut next_send = Instant::now();
    let mut published = 0u64;
    while published < total && !run.failed.load(Ordering::Relaxed) && Instant::now() < publish_until
    {
        match tokio::time::timeout(args.timeout, run.window.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => break,
            Err(_) => {
                let oldest = published.saturating_sub(args.window as u64);
                let got = run.delivered[oldest as usize].load(Ordering::Acquire);
                run.error(format!(
                    "event {oldest} reached {got} of {connected} subscribers within {:?}",
                    args.timeout
                ));
                break;
            }
        }
        if run.failed.load(Ordering::Relaxed) {
            break;
        }
        if let Some(interval) = interval {
            tokio::time::sleep_until(next_send.into()).await;
            // Late sends are not made up for with a burst.
            next_send = (next_send + interval).max(Instant::now());
        }
        if published == args.warmup_events {
            hub_cpu_start = args.pid.and_then(|pid| cpu_time(pid).ok());
            own_cpu_start = cpu_time(own).ok();
        }
        let sent = run.since_epoch();
        if published == args.warmup_events {
            run.first_send.store(sent, Ordering::Release);
        }
        if let Err(error) = send(sink, progress_event(published, sent), args.timeout).await {
            run.error(error);
            break;
        }
        published += 1;
        run.published.store(published, Ordering::Release);
    }
    (published, hub_cpu_start, own_cpu_start)
}

async fn load(args: &Args, secret: &[u8]) -> Summary {
    let total = args.warmup_events + args.events;
    let run = Arc::new(Run {
        subscribers: args.subscribers,
        warmup: args.warmup_events,
        epoch: Instant::now(),
        delivered: (0..total).map(|_| AtomicU32::new(0)).collect(),
        first: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
        window: Semaphore::new(args.window),
        ready: AtomicUsize::new(0),
        published: AtomicU64::new(0),
        first_send: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        examples: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        stop: watch::channel(false).0,
    });
    let base = args.target.trim_end_matches('/').to_owned();
    let ttl = args.duration + 20 * args.timeout + Duration::from_secs(600);

    // Connect the admin, then the subscribers.
    let summary = |run: &Run, connected: usize, connect_time: Duration| Summary {
        connected,
        probe: Percentiles::default(),
        deliveries: 0,
        measured_events: 0,
        expected_deliveries: 0,
        window: Duration::ZERO,
        samples: Vec::new(),
        first_delivery: Percentiles::default(),
        hub_cpu: None,
        client_cpu: None,
        errors: run.errors.load(Ordering::Relaxed),
        examples: run
            .examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        connect_time,
    };
    let admin_url = format!(
        "{base}/ws/user?token={}",
        hub_token(secret, ADMIN, true, ttl)
    );
    let admin = match connect(&admin_url, args.timeout).await {
        Ok(ws) => ws,
        Err(error) => {
            run.error(format!("admin: {error}"));
            return summary(&run, 0, Duration::ZERO);
        }
    };
    let started = Instant::now();
    let mix = args.mix.clone();
    let urls: Vec<String> = (0..args.subscribers)
        .map(|index| {
            let (path, sub) = subscriber(&mix, index);
            format!("{base}{path}?token={}", hub_token(secret, &sub, false, ttl))
        })
        .collect();
    let timeout = args.timeout;
    // The probes connect and read on their own thread and runtime (a
    // socket is served by the runtime that opened it).
    let probes: Vec<usize> = (0..args.probes.min(args.subscribers))
        .map(|probe| probe * args.subscribers / args.probes.min(args.subscribers))
        .collect();
    let (probe_thread, probes_connected) = start_probes(
        Arc::clone(&run),
        probes
            .iter()
            .map(|&index| (index, urls[index].clone()))
            .collect(),
        timeout,
    );
    let results: Vec<(usize, Result<Ws, String>)> = futures_util::stream::iter(
        urls.iter()
            .enumerate()
            .filter(|(index, _)| !probes.contains(index)),
    )
    .map(|(index, url)| async move { (index, connect(url, timeout).await) })
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    let probes_connected =
        match tokio::time::timeout(timeout + Duration::from_secs(1), probes_connected).await {
            Ok(Ok(count)) => count,
            _ => {
                run.error("the probe subscribers did not connect".to_owned());
                0
            }
        };
    let connect_time = started.elapsed();
    let mut readers = tokio::task::JoinSet::new();
    let mut connected = probes_connected;
    for (index, result) in results {
        match result {
            Ok(ws) => {
                connected += 1;
                readers.spawn(read_events(Arc::clone(&run), index, ws, timeout));
            }
            Err(error) => run.error(format!("subscriber {index}: {error}")),
        }
    }
    let (mut sink, stream) = admin.split();
    let watcher = tokio::spawn(watch_admin(Arc::clone(&run), stream));

    teach(&run, &mut sink, args, connected).await;
    let (published, hub_cpu_start, own_cpu_start) =
        publish_events(&run, &mut sink, args, connected, total).await;
    let own = std::process::id();
    run.stop.send_replace(true);

    // Wait for the subscribers (each bounded by the timeout after the stop).
    let mut samples = Vec::new();
    let mut open = Vec::new();
    let drain = async {
        while let Some(joined) = readers.join_next().await {
            match joined {
                Ok(report) => {
                    samples.extend_from_slice(&report.samples);
                    open.extend(report.ws);
                }
                Err(error) => run.error(format!("a subscriber task failed: {error}")),
            }
        }
    };
    let joined = tokio::task::spawn_blocking(move || probe_thread.join());
    let mut probe_samples = Vec::new();
    let drain = async {
        drain.await;
        match joined.await {
            Ok(Ok(samples)) => probe_samples = samples,
            _ => run.error("the probe thread failed".to_owned()),
        }
    };
    if tokio::time::timeout(args.timeout * 2, drain).await.is_err() {
        run.error(format!(
            "the subscribers did not finish within {:?}",
            args.timeout * 2
        ));
        readers.abort_all();
    }
    // Every delivery counts in the latency over all; the probes' alone too.
    samples.extend_from_slice(&probe_samples);
    let delta = |start: Option<Duration>, end: Option<Duration>| Some(end?.saturating_sub(start?));
    let hub_cpu = delta(hub_cpu_start, args.pid.and_then(|pid| cpu_time(pid).ok()));
    let client_cpu = delta(own_cpu_start, cpu_time(own).ok());
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    watcher.abort();
    futures_util::stream::iter(open.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect::<Vec<()>>()
    .await;

    let measured_events = published.saturating_sub(args.warmup_events);
    let first = run.first_send.load(Ordering::Acquire);
    let last = run.last_delivery.load(Ordering::Acquire);
    // A run that failed during the warm-up measured nothing.
    let measured = args.warmup_events.min(published) as usize..published as usize;
    let mut firsts: Vec<u64> = run.first[measured]
        .iter()
        .map(|first| first.load(Ordering::Acquire))
        .filter(|&first| first != u64::MAX)
        .collect();
    let first_delivery = percentiles(&mut firsts);
    let examples = run
        .examples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Summary {
        connected,
        probe: percentiles(&mut probe_samples),
        deliveries: samples.len() as u64,
        measured_events,
        expected_deliveries: measured_events * connected as u64,
        window: Duration::from_nanos(last.saturating_sub(first)),
        samples,
        first_delivery,
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
        eprintln!("hub-load: {}", error.replace("--endpoint", "--target"));
        return ExitCode::from(2);
    }
    let secret = match read_secret(args.secret.as_deref(), args.secret_file.as_deref()) {
        Ok(secret) => secret,
        Err(error) => {
            eprintln!("hub-load: {error}");
            return ExitCode::from(2);
        }
    };
    if args.subscribers == 0 || args.threads == 0 || args.window == 0 || args.events == 0 {
        eprintln!("hub-load: --subscribers, --threads, --window and --events must be at least 1");
        return ExitCode::from(2);
    }
    if args.subscribers > u32::MAX as usize / 2 {
        eprintln!("hub-load: too many subscribers");
        return ExitCode::from(2);
    }
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        eprintln!("hub-load: --rate must be a positive number");
        return ExitCode::from(2);
    }
    ensure_open_files("hub-load", args.subscribers as u64);
    // Connecting (ceil(N / concurrency) handshakes deep), the barrier,
    // publishing, and the drain.
    let rounds = args.subscribers.div_ceil(args.concurrency.max(1)) as u32;
    let hard_cap = args.duration + (rounds + 6) * args.timeout + Duration::from_secs(10);
    let mut summary = match run_bounded(args.threads, hard_cap, load(&args, &secret)) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("hub-load: {error}");
            return ExitCode::from(1);
        }
    };
    let latency = percentiles(&mut summary.samples);
    print_report(&args, &summary, &latency);
    summary.deliveries().verdict("hub-load")
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
    let events_per_s = deliveries_per_s / summary.connected.max(1) as f64;
    let per_delivery = |cpu| counted.cpu_per_delivery_us(cpu);
    let cores = |cpu| counted.cores(cpu);
    let mix: Vec<String> = args
        .mix
        .iter()
        .map(|level| format!("{level:?}").to_lowercase())
        .collect();
    if args.json {
        let line = json!({
            "tool": "hub-load",
            "label": args.label,
            "target": args.target,
            "subscribers": args.subscribers,
            "connected": summary.connected,
            "mix": mix,
            "events": summary.measured_events,
            "warmup_events": args.warmup_events,
            "window": args.window,
            "rate": args.rate,
            "threads": args.threads,
            "connect_s": (summary.connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "window_s": (seconds * 1000.0).round() / 1000.0,
            "deliveries": summary.deliveries,
            "expected_deliveries": summary.expected_deliveries,
            "deliveries_per_s": deliveries_per_s.round(),
            "events_per_s": (events_per_s * 10.0).round() / 10.0,
            "p50_us": micros(latency.p50),
            "p90_us": micros(latency.p90),
            "p99_us": micros(latency.p99),
            "max_us": micros(latency.max),
            "mean_us": micros(latency.mean),
            "probes": args.probes.min(args.subscribers),
            "probe_p50_us": micros(summary.probe.p50),
            "probe_p99_us": micros(summary.probe.p99),
            "probe_max_us": micros(summary.probe.max),
            "first_delivery_p50_us": micros(summary.first_delivery.p50),
            "first_delivery_p99_us": micros(summary.first_delivery.p99),
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
            "hub-load {}{}: {} of {} subscribers ({}), {} events{} after {} warm-up, window {}",
            args.target,
            args.label
                .as_deref()
                .map(|label| format!(" ({label})"))
                .unwrap_or_default(),
            summary.connected,
            args.subscribers,
            mix.join("/"),
            summary.measured_events,
            args.rate
                .map(|rate| format!(" at {rate}/s"))
                .unwrap_or_default(),
            args.warmup_events,
            args.window
        );
        println!(
            "  deliveries: {} of {} in {:.2} s = {:.0}/s ({:.1} events/s to every subscriber)",
            summary.deliveries,
            summary.expected_deliveries,
            seconds,
            deliveries_per_s,
            events_per_s
        );
        println!(
            "  publish→delivery µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
            micros(latency.p50),
            micros(latency.p90),
            micros(latency.p99),
            micros(latency.max),
            micros(latency.mean)
        );
        println!(
            "  at the {} probe subscribers (read on a thread of their own) µs: p50 {:.1}  p99 {:.1}  max {:.1}",
            args.probes.min(args.subscribers),
            micros(summary.probe.p50),
            micros(summary.probe.p99),
            micros(summary.probe.max)
        );
        println!(
            "  each event's first delivery µs: p50 {:.1}  p99 {:.1}",
            micros(summary.first_delivery.p50),
            micros(summary.first_delivery.p99)
        );
        let show = |cpu: Option<Duration>| match (per_delivery(cpu), cores(cpu)) {
            (Some(per), Some(cores)) => format!("{per:.2} µs per delivery ({cores:.2} cores)"),
            _ => "-".to_owned(),
        };
        println!(
            "  CPU: hub {}; hub-load {}",
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
    fn marks_round_trip_through_event_text() {
        let text = progress_event(42, 123_456_789);
        assert_eq!(parse_mark(&text), Some((42, 123_456_789)));
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["data"]["data"]["taskId"], TASK);
        assert!(parse_mark(&experiment_event("experiment_created", 0)).is_none());
        let created: serde_json::Value =
            serde_json::from_str(&experiment_event("experiment_created", 0)).unwrap();
        assert_eq!(created["data"]["data"]["experiment"]["projectId"], PROJECT);
        // Re-serialised with spaces, the id is still found.
        let spaced = serde_json::to_string_pretty(&event["data"]).unwrap();
        assert_eq!(parse_mark(&spaced), Some((42, 123_456_789)));
    }

    #[test]
    fn subscribers_cycle_through_the_mix() {
        let mix = [Level::Experiment, Level::Project, Level::User];
        assert_eq!(subscriber(&mix, 0).0, "/ws/experiments/e-hub-load");
        assert_eq!(subscriber(&mix, 4).0, "/ws/projects/p-hub-load");
        assert_eq!(
            subscriber(&mix, 5),
            ("/ws/user".to_owned(), OWNER.to_owned())
        );
    }
}
