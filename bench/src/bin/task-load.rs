//! `task-load`: round-trip throughput and latency of a task provider.
//!
//! What it measures: N clients, each on its own WebSocket connection, each
//! running one task at a time in a closed loop. A round trip is one
//! `AssignTask` (fresh `taskId`, `messageId` and `acknowledgmentId`, RFC 3339
//! `timestamp`, `taskParameters` `{}` or `--params`) from the moment it is sent until that
//! task's terminal message arrives (`TaskResult`, or `TaskFailed` /
//! `TaskStatusUpdate` `Cancelled`, which count as errors); the `Ack` and any
//! non-terminal `TaskStatusUpdate` on the way are read and skipped. After a
//! warm-up, every round trip's latency is recorded; the report gives round
//! trips per second over the measured window, exact nearest-rank p50, p90,
//! p99 and max from the sorted samples (and p50/p99 of the first reply, the
//! `Ack`, to tell the parse-and-acknowledge part from the task's run), and
//! the errors (`Error`,
//! `TaskFailed`, `Cancelled`, a timeout, a connection that fails or closes).
//! More than 1 % errors aborts the run (exit status 1).
//!
//! By default the loop is closed: each client sends its next task as soon
//! as the last one ended, so with N clients the mean latency is N /
//! throughput. `--rate R` opens it: the clients together offer R round
//! trips per second, evenly spaced (a client that falls behind sends late,
//! never two tasks at once), which shows latency below saturation. With
//! `--pid PID` the provider's CPU time over the measured window (from
//! `/proc/PID/stat`, 10 ms resolution) is reported per round trip, beside
//! task-load's own: on a shared machine, CPU per round trip is steadier
//! than throughput.
//!
//! The client speaks raw JSON over tokio-tungstenite and knows nothing of
//! specwire, so the same tool drives the specwire provider and the Python
//! baseline (`interop/minimal_provider.py`) alike.
//!
//! ```sh
//! cargo build --release -p specwire-bench
//! target/release/task-load --endpoint ws://127.0.0.1:PORT --clients 64 --duration 5s \
//!     [--warmup 1s] [--max-requests M] [--service DiagnosticsService --operation noop] \
//!     [--params '{"durationMs":10}'] \
//!     [--rate PER_SECOND] [--pid PROVIDER_PID] [--timeout 5s] [--threads 1] \
//!     [--label NAME] [--json]
//! ```
//!
//! Nothing can hang: connecting, sending and waiting for each task are
//! bounded by `--timeout`, the clients stop at the end of `--duration` (an
//! unfinished round trip is dropped, not counted), and a hard cap of
//! warm-up + duration + 2 × timeout + 5 s ends the process regardless.
//! Loopback endpoints only. `bench/run-task-bench` runs it against both
//! providers, interleaved, and prints the ratios.

use std::borrow::Cow;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use specwire_bench::{
    check_loopback, cpu_time, micros, parse_duration, percentiles, run_bounded, Percentiles,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Closed-loop AssignTask round trips against a task provider.
#[derive(Parser, Debug)]
#[command(name = "task-load", version)]
struct Args {
    /// The provider, e.g. ws://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    endpoint: String,
    /// Concurrent clients, one connection and one task in flight each.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How long to measure (after the warm-up).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Round trips before measuring starts are not recorded.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Stop after this many measured round trips (in all).
    #[arg(long, value_name = "M")]
    max_requests: Option<u64>,
    /// Open loop: offer this many round trips per second in all, spread
    /// evenly over the clients (each still has at most one task in flight,
    /// and sends late rather than twice when it falls behind). Without it,
    /// every client sends its next task as soon as the last one ends.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// `serviceName` of every task.
    #[arg(long, default_value = "DiagnosticsService")]
    service: String,
    /// `operation` of every task.
    #[arg(long, default_value = "noop")]
    operation: String,
    /// `taskParameters` of every task: a JSON object.
    #[arg(long, default_value = "{}", value_parser = parse_parameters, value_name = "JSON")]
    params: String,
    /// Bound on connecting, and on each round trip.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Threads of the client's tokio runtime (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The provider's process id: its CPU time during the measured window
    /// (from /proc/PID/stat) is reported per round trip, beside this
    /// client's own.
    #[arg(long)]
    pid: Option<u32>,
    /// A name for the provider, copied into the report.
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON line instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

/// `--params`: a JSON object, kept as compact JSON.
fn parse_parameters(text: &str) -> Result<String, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.is_object() => Ok(value.to_string()),
        Ok(_) => Err("taskParameters must be a JSON object".to_owned()),
        Err(error) => Err(format!("not JSON: {error}")),
    }
}

/// Run-wide settings and counters shared by the clients.
struct Run {
    endpoint: String,
    /// `serviceName` and `operation`, already JSON string literals, and
    /// `taskParameters` as compact JSON.
    service: String,
    operation: String,
    parameters: String,
    timeout: Duration,
    /// Round trips sent from here on are recorded.
    measure_from: Instant,
    /// The end of the measured window.
    deadline: Instant,
    max_requests: Option<u64>,
    /// Time between one client's sends, with --rate.
    interval: Option<Duration>,
    recorded: AtomicU64,
    attempts: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    /// When `--max-requests` was reached.
    stopped_at: Mutex<Option<Instant>>,
    abort: Mutex<Option<String>>,
}

impl Run {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error; more than 1 % of the attempts (once there are 100)
    /// stops the run.
    fn error(&self, report: &mut ClientReport, what: String) {
        let errors = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if report.examples.len() < 3 && !report.examples.contains(&what) {
            report.examples.push(what);
        }
        let attempts = self.attempts.load(Ordering::Relaxed).max(1);
        if attempts >= 100 && errors * 100 > attempts {
            let mut abort = self.abort.lock().unwrap_or_else(|p| p.into_inner());
            abort.get_or_insert_with(|| {
                format!("{errors} errors in {attempts} attempts (over 1 %)")
            });
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct ClientReport {
    /// Latencies of the measured round trips, in nanoseconds.
    samples: Vec<u64>,
    /// Time from sending to the first reply (the `Ack`), same order.
    first_replies: Vec<u64>,
    /// Frames received during the measured round trips.
    frames: u64,
    /// The first few errors, as text.
    examples: Vec<String>,
}

/// How one round trip ended.
enum Step {
    /// `TaskResult` for the task.
    Completed,
    /// The provider answered with `Error`, `TaskFailed` or `Cancelled`; the
    /// connection is fine.
    Refused(String),
    /// Timed out, or the connection failed: it is dropped.
    Broken(String),
    /// The measured window ended while waiting: neither counted nor an error.
    Over,
}

/// What the client looks at in a received message.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    #[serde(default, borrow)]
    task_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error_code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error_message: Option<Cow<'a, str>>,
}

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

async fn connect(run: &Run) -> Result<Ws, String> {
    let connecting =
        tokio_tungstenite::connect_async_with_config(&run.endpoint, Some(client_config()), true);
    match tokio::time::timeout(run.timeout, connecting).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err(format!("connect: no handshake within {:?}", run.timeout)),
    }
}

fn assign_task(run: &Run, task_id: &str) -> String {
    let message_id = uuid::Uuid::new_v4();
    let acknowledgment_id = uuid::Uuid::new_v4();
    let timestamp = humantime::format_rfc3339_micros(SystemTime::now());
    format!(
        concat!(
            r#"{{"type":"AssignTask","messageId":"{}","timestamp":"{}","acknowledgmentId":"{}","#,
            r#""payload":{{"taskId":"{}","serviceName":{},"operation":{},"taskParameters":{}}}}}"#
        ),
        message_id,
        timestamp,
        acknowledgment_id,
        task_id,
        run.service,
        run.operation,
        run.parameters
    )
}

/// Sends one `AssignTask` and reads until its terminal message.
/// What a round trip saw on the way: frames received, and when the first
/// one arrived.
#[derive(Default)]
struct Trace {
    frames: u64,
    first_reply: Option<Instant>,
}

async fn round_trip(ws: &mut Ws, run: &Run, trace: &mut Trace) -> Step {
    let task_id = uuid::Uuid::new_v4().to_string();
    let text = assign_task(run, &task_id);
    let give_up = Instant::now() + run.timeout;
    let until = give_up.min(run.deadline);
    let exchange = async {
        if let Err(error) = ws.send(Frame::text(text)).await {
            return Step::Broken(format!("send: {error}"));
        }
        loop {
            let frame = match ws.next().await {
                None => return Step::Broken("the provider closed the connection".into()),
                Some(Err(error)) => return Step::Broken(format!("receive: {error}")),
                Some(Ok(frame)) => frame,
            };
            let text = match frame {
                Frame::Text(text) => text,
                Frame::Close(close) => {
                    return Step::Broken(format!("the provider closed the connection: {close:?}"))
                }
                // tungstenite answers pings itself.
                Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => continue,
                Frame::Binary(_) => return Step::Broken("unexpected binary frame".into()),
            };
            trace.frames += 1;
            trace.first_reply.get_or_insert_with(Instant::now);
            let message: Incoming<'_> = match serde_json::from_str(text.as_str()) {
                Ok(message) => message,
                Err(error) => return Step::Broken(format!("unparseable message: {error}")),
            };
            let payload = message.payload.unwrap_or_default();
            let ours = payload.task_id.as_deref() == Some(task_id.as_str());
            let describe = |kind: &str| {
                format!(
                    "{kind} {}: {}",
                    payload.error_code.as_deref().unwrap_or("-"),
                    payload.error_message.as_deref().unwrap_or("-")
                )
            };
            match message.kind.as_ref() {
                "TaskResult" if ours => return Step::Completed,
                "TaskFailed" if ours => return Step::Refused(describe("TaskFailed")),
                "TaskStatusUpdate" if ours && payload.status.as_deref() == Some("Cancelled") => {
                    return Step::Refused("TaskStatusUpdate Cancelled".into())
                }
                // One task in flight per connection: any Error is about it.
                "Error" => return Step::Refused(describe("Error")),
                // Ack, non-terminal updates, anything about another task.
                _ => continue,
            }
        }
    };
    match tokio::time::timeout_at(until.into(), exchange).await {
        Ok(step) => step,
        Err(_) if Instant::now() >= run.deadline => Step::Over,
        Err(_) => Step::Broken(format!("no terminal message within {:?}", run.timeout)),
    }
}

async fn client(run: Arc<Run>, mut ws: Option<Ws>, mut next_send: Instant) -> ClientReport {
    let mut report = ClientReport::default();
    while !run.stopping() && Instant::now() < run.deadline {
        if let Some(interval) = run.interval {
            if next_send >= run.deadline {
                break;
            }
            tokio::time::sleep_until(next_send.into()).await;
            next_send = (next_send + interval).max(Instant::now());
        }
        let connection = match ws.as_mut() {
            Some(connection) => connection,
            None => {
                run.attempt();
                match connect(&run).await {
                    Ok(connection) => ws.insert(connection),
                    Err(error) => {
                        run.error(&mut report, error);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        run.attempt();
        let mut trace = Trace::default();
        let start = Instant::now();
        match round_trip(connection, &run, &mut trace).await {
            Step::Completed => {
                let end = Instant::now();
                if start < run.measure_from || end > run.deadline {
                    continue;
                }
                if let Some(max) = run.max_requests {
                    let done = run.recorded.fetch_add(1, Ordering::Relaxed);
                    if done >= max {
                        break;
                    }
                    if done + 1 == max {
                        *run.stopped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(end);
                        run.stop.store(true, Ordering::Relaxed);
                    }
                }
                report
                    .samples
                    .push(u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX));
                report.frames += trace.frames;
                let first = trace.first_reply.unwrap_or(end);
                report
                    .first_replies
                    .push(u64::try_from((first - start).as_nanos()).unwrap_or(u64::MAX));
            }
            Step::Refused(what) => run.error(&mut report, what),
            Step::Broken(what) => {
                run.error(&mut report, what);
                ws = None;
            }
            Step::Over => break,
        }
    }
    if let Some(mut connection) = ws {
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(None)).await;
    }
    report
}

struct Summary {
    window: Duration,
    samples: Vec<u64>,
    first_replies: Vec<u64>,
    frames: u64,
    attempts: u64,
    errors: u64,
    examples: Vec<String>,
    abort: Option<String>,
    /// CPU time used in the measured window by the provider (with --pid)
    /// and by this process.
    provider_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
}

/// CPU time of the provider (if given) and of this process over the
/// measured window.
async fn sample_cpu(run: Arc<Run>, pid: Option<u32>) -> (Option<Duration>, Option<Duration>) {
    let own = std::process::id();
    tokio::time::sleep_until(run.measure_from.into()).await;
    let provider_start = pid.and_then(|pid| cpu_time(pid).ok());
    let own_start = cpu_time(own).ok();
    while !run.stopping() && Instant::now() < run.deadline {
        let left = run.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(10))).await;
    }
    let provider_end = pid.and_then(|pid| cpu_time(pid).ok());
    let own_end = cpu_time(own).ok();
    let delta = |start: Option<Duration>, end: Option<Duration>| Some(end?.saturating_sub(start?));
    (
        delta(provider_start, provider_end),
        delta(own_start, own_end),
    )
}

async fn load(args: &Args) -> Summary {
    let quote = |text: &str| serde_json::to_string(text).expect("a string serializes");
    let mut run = Run {
        endpoint: args.endpoint.clone(),
        service: quote(&args.service),
        operation: quote(&args.operation),
        parameters: args.params.clone(),
        timeout: args.timeout,
        measure_from: Instant::now(),
        deadline: Instant::now(),
        max_requests: args.max_requests,
        interval: args
            .rate
            .map(|rate| Duration::from_secs_f64(args.clients as f64 / rate)),
        recorded: AtomicU64::new(0),
        attempts: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        stopped_at: Mutex::new(None),
        abort: Mutex::new(None),
    };
    // Connect everyone first (64 at a time), so that the handshakes are not
    // part of the warm-up's load.
    let mut early = ClientReport::default();
    let connections: Vec<Result<Ws, String>> = futures_util::stream::iter(0..args.clients)
        .map(|_| connect(&run))
        .buffered(64)
        .collect()
        .await;
    let now = Instant::now();
    run.measure_from = now + args.warmup;
    run.deadline = run.measure_from + args.duration;
    let run = Arc::new(run);
    let sampler = tokio::spawn(sample_cpu(Arc::clone(&run), args.pid));
    let mut clients = tokio::task::JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        run.attempt();
        // With --rate, the clients' sends are spread evenly over an interval.
        let first_send = now
            + run.interval.map_or(Duration::ZERO, |interval| {
                interval * index as u32 / args.clients as u32
            });
        let connection = match connection {
            Ok(ws) => Some(ws),
            Err(error) => {
                run.error(&mut early, error);
                None
            }
        };
        clients.spawn(client(Arc::clone(&run), connection, first_send));
    }
    let mut samples = Vec::new();
    let mut first_replies = Vec::new();
    let mut frames = 0;
    let mut examples = early.examples;
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(report) => {
                samples.extend_from_slice(&report.samples);
                first_replies.extend_from_slice(&report.first_replies);
                frames += report.frames;
                examples.extend(report.examples);
            }
            Err(error) => examples.push(format!("a client task failed: {error}")),
        }
    }
    let end = run
        .stopped_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(run.deadline)
        .min(run.deadline);
    let mut distinct: Vec<String> = Vec::new();
    for example in examples {
        if distinct.len() < 5 && !distinct.contains(&example) {
            distinct.push(example);
        }
    }
    let examples = distinct;
    let (provider_cpu, client_cpu) = sampler.await.unwrap_or((None, None));
    let abort = run.abort.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Summary {
        window: end.saturating_duration_since(run.measure_from),
        samples,
        first_replies,
        frames,
        attempts: run.attempts.load(Ordering::Relaxed),
        errors: run.errors.load(Ordering::Relaxed),
        examples,
        abort,
        provider_cpu,
        client_cpu,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = check_loopback(&args.endpoint) {
        eprintln!("task-load: {error}");
        return ExitCode::from(2);
    }
    if args.clients == 0 || args.threads == 0 {
        eprintln!("task-load: --clients and --threads must be at least 1");
        return ExitCode::from(2);
    }
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        eprintln!("task-load: --rate must be a positive number");
        return ExitCode::from(2);
    }
    let hard_cap = args.warmup + args.duration + 2 * args.timeout + Duration::from_secs(5);
    let mut summary = match run_bounded(args.threads, hard_cap, load(&args)) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("task-load: {error}");
            return ExitCode::from(1);
        }
    };
    if summary.abort.is_none() && summary.errors * 100 > summary.attempts.max(1) {
        summary.abort = Some(format!(
            "{} errors in {} attempts (over 1 %)",
            summary.errors, summary.attempts
        ));
    }
    let latency = percentiles(&mut summary.samples);
    let first_reply = percentiles(&mut summary.first_replies);
    print_report(&args, &summary, &latency, &first_reply);
    if let Some(reason) = &summary.abort {
        eprintln!("task-load: aborted: {reason}");
        return ExitCode::from(1);
    }
    if latency.count == 0 {
        eprintln!("task-load: no round trip completed in the measured window");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Prints the run's figures, as one JSON line with `--json`.
fn print_report(args: &Args, summary: &Summary, latency: &Percentiles, first_reply: &Percentiles) {
    let seconds = summary.window.as_secs_f64();
    let throughput = if seconds > 0.0 {
        latency.count as f64 / seconds
    } else {
        0.0
    };
    let frames_per_trip = if latency.count > 0 {
        summary.frames as f64 / latency.count as f64
    } else {
        0.0
    };
    let per_trip = |cpu: Option<Duration>| {
        cpu.filter(|_| latency.count > 0).map(|cpu| {
            micros(u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX) / latency.count as u64)
        })
    };
    let cores = |cpu: Option<Duration>| {
        cpu.filter(|_| seconds > 0.0)
            .map(|cpu| (cpu.as_secs_f64() / seconds * 100.0).round() / 100.0)
    };
    if args.json {
        let line = json!({
            "tool": "task-load",
            "label": args.label,
            "endpoint": args.endpoint,
            "service": args.service,
            "operation": args.operation,
            "clients": args.clients,
            "rate": args.rate,
            "threads": args.threads,
            "warmup_s": args.warmup.as_secs_f64(),
            "window_s": (seconds * 1000.0).round() / 1000.0,
            "round_trips": latency.count,
            "round_trips_per_s": throughput.round(),
            "p50_us": micros(latency.p50),
            "p90_us": micros(latency.p90),
            "p99_us": micros(latency.p99),
            "max_us": micros(latency.max),
            "mean_us": micros(latency.mean),
            "first_reply_p50_us": micros(first_reply.p50),
            "first_reply_p99_us": micros(first_reply.p99),
            "frames_per_round_trip": (frames_per_trip * 100.0).round() / 100.0,
            "provider_cpu_us_per_round_trip": per_trip(summary.provider_cpu),
            "provider_cpu_cores": cores(summary.provider_cpu),
            "client_cpu_us_per_round_trip": per_trip(summary.client_cpu),
            "client_cpu_cores": cores(summary.client_cpu),
            "attempts": summary.attempts,
            "errors": summary.errors,
            "error_examples": summary.examples,
            "aborted": summary.abort,
        });
        println!("{line}");
    } else {
        println!(
            "task-load {}{}: {} client(s){}, {}/{}, {:.2} s measured after {:?} warm-up",
            args.endpoint,
            args.label
                .as_deref()
                .map(|label| format!(" ({label})"))
                .unwrap_or_default(),
            args.clients,
            args.rate
                .map(|rate| format!(" offering {rate}/s"))
                .unwrap_or_default(),
            args.service,
            args.operation,
            seconds,
            args.warmup
        );
        println!(
            "  round trips: {} = {:.0}/s ({:.2} frames received per round trip)",
            latency.count, throughput, frames_per_trip
        );
        println!(
            "  latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
            micros(latency.p50),
            micros(latency.p90),
            micros(latency.p99),
            micros(latency.max),
            micros(latency.mean)
        );
        println!(
            "  first reply (Ack) µs: p50 {:.1}  p99 {:.1}",
            micros(first_reply.p50),
            micros(first_reply.p99)
        );
        let show = |cpu: Option<Duration>| match (per_trip(cpu), cores(cpu)) {
            (Some(per), Some(cores)) => format!("{per:.1} µs per round trip ({cores:.2} cores)"),
            _ => "-".to_owned(),
        };
        println!(
            "  CPU: provider {}; task-load {}",
            show(summary.provider_cpu),
            show(summary.client_cpu)
        );
        println!(
            "  errors: {} of {} attempts",
            summary.errors, summary.attempts
        );
        for example in &summary.examples {
            println!("    e.g. {example}");
        }
    }
}
