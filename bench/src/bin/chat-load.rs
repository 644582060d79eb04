//! `chat-load`: chat messages from a few senders to many joined receivers
//! through a chat server (seed 003, raw TCP): broadcasts delivered per
//! second and delivery latency.
//!
//! What it measures: R receivers (default 1,000) and S senders (default 4)
//! connect and `join_chat` (`cl-r<n>-<run>`, `cl-s<n>-<run>`); every
//! receiver then sends `get_users` and must count R + S users (its answer
//! also proves that every join announcement before it has been read). The
//! senders then `send_message` texts carrying the sender, a run-wide
//! sequence number and the send time (`cl s=<sender> n=<seq> t=<ns> xxx...`,
//! `--size` characters in all), and every receiver gets each one as a
//! `{"type":"chat"}` broadcast. Each receiver checks that it gets each
//! message once, with the sender's name, and each sender's messages in the
//! order sent; each sender checks that every `send_message` is answered
//! `success` (the senders also get each other's broadcasts, which are read
//! and not counted). The report gives deliveries per second (one message at
//! one receiver; measured messages × R over the time from the first measured
//! send to the last delivery), messages per second (the same ÷ R), send →
//! delivery latency percentiles (exact, nearest rank, over the deliveries to
//! `--latency-receivers` receivers spread evenly over the join order, so
//! that the samples stay in memory), and the server's CPU time per delivery
//! (`--pid`, /proc/PID/stat) beside chat-load's own.
//!
//! Flow control: at most `--window` messages are in flight (sent, not yet
//! delivered to every receiver); the senders take turns as fast as the
//! window allows (closed loop), or with `--rate` send that many messages
//! per second between them (the window still bounds it). A server that
//! bounds each connection's queue never sees one grow past the window.
//!
//! ```sh
//! cargo build --release -p specwire-bench
//! target/release/chat-load --target tcp://127.0.0.1:PORT [--receivers 1000] [--senders 4] \
//!     [--messages 20000] [--warmup-messages 200] [--window 32] [--rate MESSAGES_PER_SECOND] \
//!     [--size 64] [--duration 10s] [--timeout 10s] [--latency-receivers 100] [--pid SERVER_PID] \
//!     [--label NAME] [--json]
//! ```
//!
//! It stops by itself: after `--messages` measured messages or `--duration`
//! of sending, whichever comes first; every connect, request and wait is
//! bounded by `--timeout`, and a hard cap ends the run regardless. A refusal,
//! a closed connection, a message lost, repeated, out of order or with the
//! wrong sender fails the run (exit status 1). The receivers are read on a
//! thread (and runtime) of their own. Loopback targets only.
//! `bench/run-chat-bench` runs it against `specwire serve chat` and the
//! Python baseline (`interop/minimal_chat_server.py`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use specwire_bench::chat::{loopback_tcp, request, split_objects, Conn, Incoming};
use specwire_bench::{
    cpu_time, ensure_open_files, micros, parse_duration, percentiles, run_bounded, Deliveries,
    Percentiles,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{watch, Semaphore};

/// Chat messages from a few senders to many receivers through a chat server.
#[derive(Parser, Debug)]
#[command(name = "chat-load", version)]
struct Args {
    /// The server, e.g. tcp://127.0.0.1:65432 (loopback only).
    #[arg(long)]
    target: String,
    /// Joined receivers.
    #[arg(long, default_value_t = 1000)]
    receivers: usize,
    /// Joined senders.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Measured messages to send (over all senders).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Unmeasured messages sent first.
    #[arg(long, default_value_t = 200)]
    warmup_messages: u64,
    /// Messages in flight at most (sent, not yet delivered to every receiver).
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Messages per second over all senders (default: as fast as the window allows).
    #[arg(long, value_name = "MESSAGES_PER_SECOND")]
    rate: Option<f64>,
    /// Characters per message text (at least 40).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Stop sending after this long even if not all messages are out.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Bound on each connect and request, on a free window slot and on the
    /// last messages' delivery.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Receivers whose deliveries are timed (spread evenly over the join order).
    #[arg(long, default_value_t = 100)]
    latency_receivers: usize,
    /// Connects (with their join) in flight at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Threads of the senders' tokio runtime (1: a current-thread runtime);
    /// the receivers have one thread of their own.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id: its CPU time over the measured window is
    /// reported per delivery.
    #[arg(long)]
    pid: Option<u32>,
    /// A name for the server, copied into the report.
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON line instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

/// Run-wide state shared by the senders and the receivers.
struct Run {
    tag: String,
    receivers: usize,
    senders: usize,
    warmup: u64,
    /// Warm-up plus measured messages: the most that are sent.
    total: u64,
    size: usize,
    epoch: Instant,
    /// Deliveries per message so far (index: sequence number).
    delivered: Vec<AtomicU32>,
    window: Semaphore,
    next_seq: AtomicU64,
    sent: AtomicU64,
    /// How many messages went out, once sending is over (u64::MAX before).
    published: AtomicU64,
    first_send: AtomicU64,
    last_delivery: AtomicU64,
    /// CPU times (server, own) when the first measured message went out.
    cpu_start: Mutex<Option<(Option<Duration>, Option<Duration>)>>,
    server_pid: Option<u32>,
    errors: AtomicU64,
    examples: Mutex<Vec<String>>,
    failed: AtomicBool,
    /// Receivers joined / whose `get_users` was answered.
    joined: AtomicUsize,
    synced: AtomicUsize,
    /// 0: joining, 1: receivers send `get_users`, 2: send.
    phase: watch::Sender<u8>,
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
        if !self.failed.swap(true, Ordering::AcqRel) {
            self.window.add_permits(Semaphore::MAX_PERMITS / 2);
        }
        self.phase.send_replace(2);
        self.stop.send_replace(true);
    }

    fn receiver_name(&self, index: usize) -> String {
        format!("cl-r{index}-{}", self.tag)
    }

    fn sender_name(&self, index: usize) -> String {
        format!("cl-s{index}-{}", self.tag)
    }

    /// The text sender `sender` sends as message `seq`, `size` characters.
    fn text(&self, sender: usize, seq: u64, sent_ns: u64) -> String {
        let mut text = format!("cl s={sender} n={seq} t={sent_ns} ");
        let pad = self.size.saturating_sub(text.len());
        text.extend(std::iter::repeat_n('x', pad));
        text
    }
}

/// `(sender, sequence number, send time)` from a message text.
fn parse_text(text: &str) -> Option<(usize, u64, u64)> {
    let mut fields = text.strip_prefix("cl ")?.split(' ');
    let sender = fields.next()?.strip_prefix("s=")?.parse().ok()?;
    let seq = fields.next()?.strip_prefix("n=")?.parse().ok()?;
    let sent = fields.next()?.strip_prefix("t=")?.parse().ok()?;
    Some((sender, seq, sent))
}

/// One receiver's reading state.
struct Receiver {
    index: usize,
    timed: bool,
    /// Per sender: 1 + the last sequence number received (0: none yet).
    last: Vec<u64>,
    received: u64,
    samples: Vec<u64>,
    /// The `get_users` count, once answered.
    synced: Option<u64>,
}

impl Receiver {
    /// One object from the server.
    fn take(&mut self, run: &Run, object: Incoming<'_>) -> Result<(), String> {
        let index = self.index;
        if object.is_response() {
            return match (object.is_success(), object.count, self.synced) {
                (true, Some(count), None) => {
                    self.synced = Some(count);
                    Ok(())
                }
                _ => Err(format!("receiver {index}: response {}", object.describe())),
            };
        }
        if object.kind.as_deref() != Some("chat") {
            return Ok(()); // join announcements (and a welcome)
        }
        let now = run.since_epoch();
        let text = object.message.as_deref().unwrap_or_default();
        let Some((sender, seq, sent)) = parse_text(text) else {
            return Err(format!("receiver {index}: unexpected chat `{text:.80}`"));
        };
        if sender >= run.senders
            || seq >= run.total
            || self.last[sender] > seq
            || object.username.as_deref() != Some(run.sender_name(sender).as_str())
        {
            return Err(format!(
                "receiver {index}: message {seq} from sender {sender} ({:?}) repeated, out of order or mislabelled",
                object.username
            ));
        }
        self.last[sender] = seq + 1;
        self.received += 1;
        if seq >= run.warmup {
            if self.timed {
                self.samples.push(now.saturating_sub(sent));
            }
            run.last_delivery.fetch_max(now, Ordering::AcqRel);
        }
        if run.delivered[seq as usize].fetch_add(1, Ordering::AcqRel) + 1 == run.receivers as u32 {
            run.window.add_permits(1);
        }
        Ok(())
    }
}

/// Reads one receiver's connection: the join announcements while the
/// others join, its `get_users` answer, then every message until all that
/// were sent are in (bounded by the timeout after the stop).
async fn receive(
    run: Arc<Run>,
    mut conn: Conn,
    mut receiver: Receiver,
    timeout: Duration,
) -> (Receiver, Conn) {
    let mut phase = run.phase.subscribe();
    let mut stop = run.stop.subscribe();
    let mut deadline: Option<Instant> = None;
    let mut asked = false;
    loop {
        if run.failed.load(Ordering::Relaxed) {
            break;
        }
        if deadline.is_some() && receiver.received >= run.published.load(Ordering::Acquire) {
            break;
        }
        if !asked && *phase.borrow() >= 1 {
            asked = true;
            if let Err(error) = conn
                .stream
                .write_all(&request("get_users", json!({})))
                .await
            {
                run.error(format!("receiver {}: get_users: {error}", receiver.index));
                break;
            }
        }
        conn.buffer.reserve(16 * 1024);
        let read = tokio::select! {
            read = conn.stream.read_buf(&mut conn.buffer) => read,
            _ = phase.changed(), if !asked => continue,
            _ = stop.wait_for(|stopped| *stopped), if deadline.is_none() => {
                deadline = Some(Instant::now() + timeout);
                continue;
            }
            _ = sleep_until(deadline) => {
                run.error(format!(
                    "receiver {}: {} of {} messages within {timeout:?} after the last send",
                    receiver.index, receiver.received, run.published.load(Ordering::Acquire)
                ));
                break;
            }
        };
        match read {
            Ok(0) => {
                run.error(format!(
                    "receiver {}: the server closed the connection",
                    receiver.index
                ));
                break;
            }
            Ok(_) => {}
            Err(error) => {
                run.error(format!("receiver {}: {error}", receiver.index));
                break;
            }
        }
        let was_synced = receiver.synced.is_some();
        let used = split_objects(&conn.buffer, |object| receiver.take(&run, object));
        match used {
            Ok(used) => drop(conn.buffer.drain(..used)),
            Err(error) => {
                run.error(error);
                break;
            }
        }
        if !was_synced && receiver.synced.is_some() {
            run.synced.fetch_add(1, Ordering::AcqRel);
        }
    }
    (receiver, conn)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What the receivers' thread returns.
#[derive(Default)]
struct Received {
    samples: Vec<u64>,
    /// The `get_users` counts.
    counts: Vec<u64>,
    /// The connections, still open: closing them makes the server announce
    /// each leave to the others, which is not to be measured.
    open: Vec<std::net::TcpStream>,
}

/// Connects and joins the receivers on a thread and runtime of their own
/// and reads them there.
fn start_receivers(
    run: Arc<Run>,
    address: SocketAddr,
    args: &Args,
) -> std::thread::JoinHandle<Received> {
    let (count, concurrency, timeout) = (args.receivers, args.concurrency.max(1), args.timeout);
    let every = count.div_ceil(args.latency_receivers.clamp(1, count));
    std::thread::spawn(move || {
        let runtime = match specwire_bench::runtime(1) {
            Ok(runtime) => runtime,
            Err(error) => {
                run.error(format!("the receivers' runtime: {error}"));
                return Received::default();
            }
        };
        runtime.block_on(async {
            let mut readers = tokio::task::JoinSet::new();
            let gate = Arc::new(Semaphore::new(concurrency));
            for index in 0..count {
                let (run, gate) = (Arc::clone(&run), Arc::clone(&gate));
                readers.spawn(async move {
                    let permit = gate.acquire_owned().await.ok();
                    let joined = match Conn::connect(address, timeout).await {
                        Ok(mut conn) => conn
                            .join(&run.receiver_name(index), timeout)
                            .await
                            .map(|()| conn),
                        Err(error) => Err(error),
                    };
                    drop(permit);
                    let conn = match joined {
                        Ok(conn) => conn,
                        Err(error) => {
                            run.error(format!("receiver {index}: {error}"));
                            return None;
                        }
                    };
                    run.joined.fetch_add(1, Ordering::AcqRel);
                    let receiver = Receiver {
                        index,
                        timed: index % every == 0,
                        last: vec![0; run.senders],
                        received: 0,
                        samples: Vec::new(),
                        synced: None,
                    };
                    Some(receive(run, conn, receiver, timeout).await)
                });
            }
            let mut received = Received::default();
            while let Some(done) = readers.join_next().await {
                if let Ok(Some((receiver, conn))) = done {
                    received.samples.extend_from_slice(&receiver.samples);
                    received.counts.extend(receiver.synced);
                    received.open.extend(conn.stream.into_std().ok());
                }
            }
            received
        })
    })
}

/// One sender's reading side: every response must be `success`; the other
/// senders' broadcasts are read and dropped. Ends when the run stops and
/// every request it sent was answered, or at the deadline.
async fn sender_responses(
    run: Arc<Run>,
    index: usize,
    mut read: OwnedReadHalf,
    mut buffer: Vec<u8>,
    sent: Arc<AtomicU64>,
    timeout: Duration,
) {
    let mut answered = 0u64;
    let mut stop = run.stop.subscribe();
    let mut deadline: Option<Instant> = None;
    loop {
        let mut failure = None;
        let used = split_objects(&buffer, |object| {
            if object.is_response() {
                answered += 1;
                if !object.is_success() && failure.is_none() {
                    failure = Some(format!(
                        "sender {index}: send_message answered {}",
                        object.describe()
                    ));
                }
            }
            Ok(())
        });
        match (used, failure) {
            (Ok(used), None) => drop(buffer.drain(..used)),
            (Err(error), _) | (_, Some(error)) => return run.error(error),
        }
        if run.failed.load(Ordering::Relaxed)
            || (deadline.is_some() && answered >= sent.load(Ordering::Acquire))
        {
            return;
        }
        buffer.reserve(16 * 1024);
        tokio::select! {
            read = read.read_buf(&mut buffer) => match read {
                Ok(0) => return run.error(format!("sender {index}: the server closed the connection")),
                Ok(_) => {}
                Err(error) => return run.error(format!("sender {index}: {error}")),
            },
            _ = stop.wait_for(|stopped| *stopped), if deadline.is_none() => {
                deadline = Some(Instant::now() + timeout);
            }
            _ = sleep_until(deadline) => {
                return run.error(format!("sender {index}: {answered} of {} requests answered within {timeout:?}", sent.load(Ordering::Acquire)));
            }
        }
    }
}

/// One sender: a message whenever its tick (with `--rate`) and a window
/// slot allow, until the total is out, the duration has passed or the run
/// failed.
async fn send_messages(
    run: Arc<Run>,
    index: usize,
    mut write: OwnedWriteHalf,
    sent: Arc<AtomicU64>,
    interval: Option<Duration>,
    args: (Duration, Duration),
) -> OwnedWriteHalf {
    let (timeout, duration) = args;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tick =
        interval.map(|interval| start + interval.mul_f64(index as f64 / run.senders as f64));
    while !run.stopping() && Instant::now() < deadline {
        if let (Some(interval), Some(at)) = (interval, tick.as_mut()) {
            tokio::time::sleep_until((*at).min(deadline).into()).await;
            *at = (*at + interval).max(Instant::now());
        }
        match tokio::time::timeout(timeout, run.window.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => break,
            Err(_) => {
                run.error(format!("sender {index}: no free window slot within {timeout:?} (messages are not delivered)"));
                break;
            }
        }
        let seq = run.next_seq.fetch_add(1, Ordering::AcqRel);
        if seq >= run.total || run.stopping() {
            run.window.add_permits(1);
            break;
        }
        let now = run.since_epoch();
        if seq == run.warmup {
            let server = run.server_pid.and_then(|pid| cpu_time(pid).ok());
            let own = cpu_time(std::process::id()).ok();
            *run.cpu_start.lock().unwrap_or_else(|p| p.into_inner()) = Some((server, own));
            run.first_send.store(now, Ordering::Release);
        }
        let bytes = request(
            "send_message",
            json!({"message": run.text(index, seq, now)}),
        );
        match tokio::time::timeout(timeout, write.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                run.error(format!("sender {index}: send: {error}"));
                break;
            }
            Err(_) => {
                run.error(format!("sender {index}: send blocked for {timeout:?}"));
                break;
            }
        }
        sent.fetch_add(1, Ordering::AcqRel);
        run.sent.fetch_add(1, Ordering::AcqRel);
    }
    write
}

struct Summary {
    receivers: usize,
    senders: usize,
    deliveries: u64,
    measured_messages: u64,
    expected_deliveries: u64,
    window: Duration,
    samples: Vec<u64>,
    user_counts: Vec<u64>,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    errors: u64,
    examples: Vec<String>,
    setup_time: Duration,
}

/// Waits (bounded) until `counter` reaches `wanted` or the run fails.
async fn await_count(run: &Run, counter: &AtomicUsize, wanted: usize, bound: Duration, what: &str) {
    let waiting = async {
        while counter.load(Ordering::Acquire) < wanted && !run.failed.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(bound, waiting).await.is_err() {
        run.error(format!(
            "{what}: {} of {wanted} within {bound:?}",
            counter.load(Ordering::Acquire)
        ));
    }
}

fn new_run(args: &Args) -> Arc<Run> {
    let total = args.warmup_messages + args.messages;
    Arc::new(Run {
        tag: format!("{:06x}", run_tag_seed() & 0xff_ffff),
        receivers: args.receivers,
        senders: args.senders,
        warmup: args.warmup_messages,
        total,
        size: args.size,
        epoch: Instant::now(),
        delivered: (0..total).map(|_| AtomicU32::new(0)).collect(),
        window: Semaphore::new(args.window),
        next_seq: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        published: AtomicU64::new(u64::MAX),
        first_send: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        cpu_start: Mutex::new(None),
        server_pid: args.pid,
        errors: AtomicU64::new(0),
        examples: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        joined: AtomicUsize::new(0),
        synced: AtomicUsize::new(0),
        phase: watch::channel(0).0,
        stop: watch::channel(false).0,
    })
}

/// A per-run tag from the clock and the process id.
fn run_tag_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 20)
}

async fn load(args: &Args, address: SocketAddr) -> Summary {
    let run = new_run(args);
    let started = Instant::now();
    let timeout = args.timeout;
    let receiver_thread = start_receivers(Arc::clone(&run), address, args);
    let rounds = args.receivers.div_ceil(args.concurrency.max(1)) as u32 + 1;
    await_count(
        &run,
        &run.joined,
        args.receivers,
        timeout * rounds,
        "receivers joined",
    )
    .await;

    // The senders join after the receivers; each gets a reading task.
    let mut writers = Vec::new();
    let mut readers = tokio::task::JoinSet::new();
    for index in 0..args.senders {
        let mut conn = match Conn::connect(address, timeout).await {
            Ok(conn) => conn,
            Err(error) => {
                run.error(format!("sender {index}: {error}"));
                break;
            }
        };
        if let Err(error) = conn.join(&run.sender_name(index), timeout).await {
            run.error(format!("sender {index}: {error}"));
            break;
        }
        let (read, write) = conn.stream.into_split();
        let sent = Arc::new(AtomicU64::new(0));
        readers.spawn(sender_responses(
            Arc::clone(&run),
            index,
            read,
            conn.buffer,
            Arc::clone(&sent),
            timeout,
        ));
        writers.push((index, write, sent));
    }
    // Every receiver asks get_users: its answer comes after every join announcement.
    run.phase.send_replace(1);
    await_count(
        &run,
        &run.synced,
        args.receivers,
        timeout * 2,
        "get_users answered",
    )
    .await;
    let setup_time = started.elapsed();

    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.senders as f64 / rate));
    let mut sending = tokio::task::JoinSet::new();
    for (index, write, sent) in writers {
        sending.spawn(send_messages(
            Arc::clone(&run),
            index,
            write,
            sent,
            interval,
            (timeout, args.duration),
        ));
    }
    let mut open = Vec::new();
    let bound = args.duration + 2 * timeout;
    let all_sent = async {
        while let Some(done) = sending.join_next().await {
            open.extend(done.ok());
        }
    };
    if tokio::time::timeout(bound, all_sent).await.is_err() {
        run.error(format!("the senders did not stop within {bound:?}"));
    }
    let sent = run.sent.load(Ordering::Acquire);
    run.published.store(sent, Ordering::Release);
    run.stop.send_replace(true);

    let joined = tokio::task::spawn_blocking(move || receiver_thread.join());
    let received = match tokio::time::timeout(timeout * 2, joined).await {
        Ok(Ok(Ok(received))) => received,
        _ => {
            run.error("the receivers did not finish".to_owned());
            Received::default()
        }
    };
    let _ = tokio::time::timeout(timeout * 2, async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    // CPU times before any connection closes (each close is a leave announced to all).
    let (server_start, own_start) = run
        .cpu_start
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or((None, None));
    let delta = |start: Option<Duration>, end: Option<Duration>| Some(end?.saturating_sub(start?));
    let server_cpu = delta(server_start, args.pid.and_then(|pid| cpu_time(pid).ok()));
    let client_cpu = delta(own_start, cpu_time(std::process::id()).ok());
    drop(open);
    drop(received.open);
    let (samples, user_counts) = (received.samples, received.counts);
    let measured_messages = sent.saturating_sub(args.warmup_messages);
    let wanted_users = (args.receivers + args.senders) as u64;
    if let Some(count) = user_counts.iter().find(|&&count| count != wanted_users) {
        run.error(format!(
            "get_users counted {count} users, not {wanted_users}"
        ));
    }
    let first = run.first_send.load(Ordering::Acquire);
    let last = run.last_delivery.load(Ordering::Acquire);
    let examples = run
        .examples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Summary {
        receivers: run.joined.load(Ordering::Acquire),
        senders: args.senders,
        deliveries: measured_messages * run.receivers as u64
            - missing(&run, args.warmup_messages, sent),
        measured_messages,
        expected_deliveries: measured_messages * args.receivers as u64,
        window: Duration::from_nanos(last.saturating_sub(first)),
        samples,
        user_counts,
        server_cpu,
        client_cpu,
        errors: run.errors.load(Ordering::Relaxed),
        examples,
        setup_time,
    }
}

/// Deliveries of measured messages that did not happen.
fn missing(run: &Run, from: u64, to: u64) -> u64 {
    (from..to)
        .map(|seq| {
            let got = u64::from(run.delivered[seq as usize].load(Ordering::Acquire));
            (run.receivers as u64).saturating_sub(got)
        })
        .sum()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let address = match loopback_tcp(&args.target) {
        Ok(address) => address,
        Err(error) => {
            eprintln!("chat-load: --target {error}");
            return ExitCode::from(2);
        }
    };
    if args.receivers == 0
        || args.senders == 0
        || args.threads == 0
        || args.window == 0
        || args.messages == 0
    {
        eprintln!("chat-load: --receivers, --senders, --threads, --window and --messages must be at least 1");
        return ExitCode::from(2);
    }
    if args.receivers > u32::MAX as usize / 2
        || args.warmup_messages + args.messages > 10_000_000
        || !(40..=1000).contains(&args.size)
    {
        eprintln!("chat-load: too many receivers or messages (at most 10,000,000), or --size outside 40..=1000");
        return ExitCode::from(2);
    }
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        eprintln!("chat-load: --rate must be a positive number");
        return ExitCode::from(2);
    }
    ensure_open_files("chat-load", (args.receivers + args.senders) as u64);
    let rounds = args.receivers.div_ceil(args.concurrency.max(1)) as u32 + 1;
    let hard_cap = args.duration + (rounds + 10) * args.timeout + Duration::from_secs(10);
    let mut summary = match run_bounded(args.threads, hard_cap, load(&args, address)) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("chat-load: {error}");
            return ExitCode::from(1);
        }
    };
    let latency = percentiles(&mut summary.samples);
    print_report(&args, &summary, &latency);
    summary.deliveries().verdict("chat-load")
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
    let messages_per_s = deliveries_per_s / summary.receivers.max(1) as f64;
    let per_delivery = |cpu| counted.cpu_per_delivery_us(cpu);
    let cores = |cpu| counted.cores(cpu);
    if args.json {
        let line = json!({
            "tool": "chat-load",
            "label": args.label,
            "target": args.target,
            "receivers": args.receivers,
            "joined_receivers": summary.receivers,
            "senders": summary.senders,
            "messages": summary.measured_messages,
            "warmup_messages": args.warmup_messages,
            "window": args.window,
            "rate": args.rate,
            "size": args.size,
            "threads": args.threads,
            "setup_s": (summary.setup_time.as_secs_f64() * 1000.0).round() / 1000.0,
            "window_s": (seconds * 1000.0).round() / 1000.0,
            "deliveries": summary.deliveries,
            "expected_deliveries": summary.expected_deliveries,
            "deliveries_per_s": deliveries_per_s.round(),
            "messages_per_s": messages_per_s.round(),
            "latency_samples": latency.count,
            "p50_us": micros(latency.p50),
            "p90_us": micros(latency.p90),
            "p99_us": micros(latency.p99),
            "max_us": micros(latency.max),
            "mean_us": micros(latency.mean),
            "server_cpu_us_per_delivery": per_delivery(summary.server_cpu),
            "server_cpu_cores": cores(summary.server_cpu),
            "client_cpu_us_per_delivery": per_delivery(summary.client_cpu),
            "client_cpu_cores": cores(summary.client_cpu),
            "user_counts_checked": summary.user_counts.len(),
            "errors": summary.errors,
            "error_examples": summary.examples,
        });
        println!("{line}");
        return;
    }
    println!(
        "chat-load {}{}: {} of {} receivers, {} senders, {} messages{} after {} warm-up, window {}, setup {:.2} s",
        args.target,
        args.label.as_deref().map(|label| format!(" ({label})")).unwrap_or_default(),
        summary.receivers,
        args.receivers,
        summary.senders,
        summary.measured_messages,
        args.rate.map(|rate| format!(" at {rate}/s")).unwrap_or_default(),
        args.warmup_messages,
        args.window,
        summary.setup_time.as_secs_f64()
    );
    println!(
        "  deliveries: {} of {} in {seconds:.2} s = {deliveries_per_s:.0}/s ({messages_per_s:.0} messages/s to every receiver)",
        summary.deliveries, summary.expected_deliveries
    );
    println!(
        "  send→delivery µs ({} samples): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
        latency.count,
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
        "  CPU: server {}; chat-load {}",
        show(summary.server_cpu),
        show(summary.client_cpu)
    );
    println!("  errors: {}", summary.errors);
    for example in &summary.examples {
        println!("    e.g. {example}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_sender_sequence_and_time() {
        let args = Args::parse_from(["chat-load", "--target", "tcp://127.0.0.1:1", "--size", "80"]);
        let run = new_run(&args);
        let text = run.text(3, 1234, 987_654_321);
        assert_eq!(text.chars().count(), 80);
        assert_eq!(parse_text(&text), Some((3, 1234, 987_654_321)));
        assert_eq!(parse_text("hello"), None);
    }
}
