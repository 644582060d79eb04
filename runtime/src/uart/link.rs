//! The gateway's side of the UART: the serial port, one command
//! outstanding at a time, `M` frames handed on as they arrive, and a port
//! that disappears reopened with backoff.
//!
//! The `serialport` crate's API is blocking, so each open port gets a
//! reader thread (reads with a short timeout, so that it notices when it
//! should stop) and a writer thread; the link's own task owns the state:
//! the frame decoder, the outstanding command and its deadline.
//!
//! A command's reply is the next `S` or `F` frame. None within the module
//! timeout (2 s) answers the command `F module timeout`; an `S`/`F` that
//! arrives while no command is outstanding (the late reply of a timed-out
//! one) is dropped and counted. While the port is gone, commands are
//! answered `F serial port unavailable` at once.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use specwire_wire::frame::{encoded_frame, FrameDecoder};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::net::Backoff;

/// Commands that may wait for the module; beyond that they are answered
/// `F gateway busy`.
pub const COMMAND_QUEUE: usize = 64;

/// How the link runs.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// The serial device (or pty).
    pub path: PathBuf,
    /// Its baud rate.
    pub baud: u32,
    /// How long the module may take to answer a command.
    pub module_timeout: Duration,
    /// Reopening a port that is gone.
    pub reopen: Backoff,
}

impl LinkConfig {
    /// 115200 baud, the schema's module timeout, backoff up to 5 s.
    pub fn new(path: impl Into<PathBuf>) -> LinkConfig {
        LinkConfig {
            path: path.into(),
            baud: 115_200,
            module_timeout: specwire_protocol::uart::MODULE_TIMEOUT,
            reopen: Backoff::default(),
        }
    }
}

/// Counters, readable while the link runs.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Frames decoded from the port.
    pub frames_in: AtomicU64,
    /// Frames written to the port.
    pub frames_out: AtomicU64,
    /// Frames dropped by the decoder (bad escapes, cut short, oversized).
    pub frames_dropped: AtomicU64,
    /// Commands answered `module timeout`.
    pub timeouts: AtomicU64,
    /// `S`/`F` frames with no command outstanding.
    pub late_replies: AtomicU64,
    /// Frames of no known kind.
    pub unknown_frames: AtomicU64,
    /// Times the port was (re)opened.
    pub opened: AtomicU64,
    /// Whether the port is open now.
    pub open: AtomicBool,
}

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// What the link reports as it runs, on its own task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// An `M` body (kind byte included), in arrival order.
    Message(&'a [u8]),
    /// The port is open (again).
    Opened,
    /// The port disappeared, or could not be opened (the first failure of
    /// a run of retries only), and why.
    Lost(&'a str),
}

/// A command waiting for its reply.
struct Pending {
    body: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

/// The link to the module. Dropping it stops the link.
pub struct Link {
    commands: mpsc::Sender<Pending>,
    counters: Arc<LinkCounters>,
    task: tokio::task::JoinHandle<()>,
}

/// An `F` reply body with `message` (cut to 255 bytes at a character
/// boundary).
pub fn failure(message: &str) -> Vec<u8> {
    let mut end = message.len().min(255);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut body = vec![b'F', end as u8];
    body.extend_from_slice(&message.as_bytes()[..end]);
    body
}

impl Link {
    /// Starts the link; `on_event` gets every `M` body (kind byte
    /// included) in arrival order, and the port's comings and goings, on
    /// the link's task.
    pub fn start(config: LinkConfig, on_event: impl FnMut(LinkEvent<'_>) + Send + 'static) -> Link {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let counters = Arc::new(LinkCounters::default());
        let task = tokio::spawn(run(config, receiver, Arc::clone(&counters), on_event));
        Link {
            commands,
            counters,
            task,
        }
    }

    /// Sends a command body to the module; its reply body (`S...` or
    /// `F...`), or the gateway's own `F` (timeout, port gone, busy).
    pub async fn command(&self, body: Vec<u8>) -> Vec<u8> {
        let (reply, answer) = oneshot::channel();
        if self.commands.try_send(Pending { body, reply }).is_err() {
            return failure("gateway busy");
        }
        answer.await.unwrap_or_else(|_| failure("gateway stopping"))
    }

    /// The counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the port's threads report.
enum FromPort {
    Bytes(Vec<u8>),
    Gone(String),
}

/// An open port: its reader's reports and its writer's queue.
struct OpenPort {
    from_port: mpsc::Receiver<FromPort>,
    to_port: std::sync::mpsc::SyncSender<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl Drop for OpenPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn open(config: &LinkConfig) -> Result<OpenPort, String> {
    let port = serialport::new(config.path.to_string_lossy(), config.baud)
        .timeout(Duration::from_millis(100))
        .open()
        .map_err(|error| format!("cannot open {}: {error}", config.path.display()))?;
    let mut reader = port
        .try_clone()
        .map_err(|error| format!("cannot use {}: {error}", config.path.display()))?;
    let mut writer = port;
    let stop = Arc::new(AtomicBool::new(false));
    let (report, from_port) = mpsc::channel(64);
    let reading = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut buffer = vec![0; 4096];
        while !reading.load(Ordering::Relaxed) {
            let sent = match reader.read(&mut buffer) {
                Ok(0) => report.blocking_send(FromPort::Gone("the port closed".to_owned())),
                Ok(n) => report.blocking_send(FromPort::Bytes(buffer[..n].to_vec())),
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => report.blocking_send(FromPort::Gone(error.to_string())),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    let (to_port, frames) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        for frame in frames {
            if writer
                .write_all(&frame)
                .and_then(|()| writer.flush())
                .is_err()
            {
                return;
            }
        }
    });
    Ok(OpenPort {
        from_port,
        to_port,
        stop,
    })
}

async fn run(
    config: LinkConfig,
    mut commands: mpsc::Receiver<Pending>,
    counters: Arc<LinkCounters>,
    mut on_event: impl FnMut(LinkEvent<'_>),
) {
    let mut attempt = 0;
    loop {
        match open(&config) {
            Ok(port) => {
                attempt = 0;
                count(&counters.opened, 1);
                counters.open.store(true, Ordering::Relaxed);
                tracing::info!(port = %config.path.display(), "serial port open");
                on_event(LinkEvent::Opened);
                let why = serve_port(&config, port, &mut commands, &counters, &mut on_event).await;
                counters.open.store(false, Ordering::Relaxed);
                match why {
                    Some(reason) => {
                        tracing::warn!(port = %config.path.display(), %reason, "serial port lost; reopening");
                        on_event(LinkEvent::Lost(&reason));
                    }
                    None => return,
                }
            }
            Err(reason) => {
                if attempt == 0 {
                    tracing::warn!(%reason, "serial port unavailable; retrying");
                    on_event(LinkEvent::Lost(&reason));
                }
            }
        }
        attempt += 1;
        // While the port is gone, commands are answered at once.
        let retry = tokio::time::sleep(config.reopen.delay(attempt));
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = &mut retry => break,
                command = commands.recv() => match command {
                    Some(command) => drop(command.reply.send(failure("serial port unavailable"))),
                    None => return,
                },
            }
        }
    }
}

/// Serves an open port until it is lost (the reason) or the link is
/// dropped (`None`).
async fn serve_port(
    config: &LinkConfig,
    mut port: OpenPort,
    commands: &mut mpsc::Receiver<Pending>,
    counters: &LinkCounters,
    on_event: &mut impl FnMut(LinkEvent<'_>),
) -> Option<String> {
    let mut decoder = FrameDecoder::new();
    let mut outstanding: Option<oneshot::Sender<Vec<u8>>> = None;
    let deadline = tokio::time::sleep(config.module_timeout);
    tokio::pin!(deadline);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    loop {
        tokio::select! {
            report = port.from_port.recv() => match report {
                Some(FromPort::Bytes(bytes)) => {
                    let before = decoder.stats();
                    decoder.decode(&bytes, |body| bodies.push(body.to_vec()));
                    let after = decoder.stats();
                    let dropped = (after.dropped_bad_escape + after.dropped_truncated + after.dropped_oversize + after.dropped_empty)
                        - (before.dropped_bad_escape + before.dropped_truncated + before.dropped_oversize + before.dropped_empty);
                    count(&counters.frames_dropped, dropped);
                    count(&counters.frames_in, bodies.len() as u64);
                    for body in bodies.drain(..) {
                        match body.first() {
                            Some(b'S' | b'F') => match outstanding.take() {
                                Some(reply) => drop(reply.send(body)),
                                None => count(&counters.late_replies, 1),
                            },
                            Some(b'M') => on_event(LinkEvent::Message(&body)),
                            _ => count(&counters.unknown_frames, 1),
                        }
                    }
                }
                Some(FromPort::Gone(reason)) => {
                    if let Some(reply) = outstanding.take() {
                        let _ = reply.send(failure("serial port unavailable"));
                    }
                    return Some(reason);
                }
                None => return Some("the reader stopped".to_owned()),
            },
            command = commands.recv(), if outstanding.is_none() => {
                let command = command?;
                if port.to_port.try_send(encoded_frame(&command.body)).is_err() {
                    let _ = command.reply.send(failure("serial port unavailable"));
                    return Some("the writer stopped".to_owned());
                }
                count(&counters.frames_out, 1);
                outstanding = Some(command.reply);
                deadline.as_mut().reset(Instant::now() + config.module_timeout);
            }
            () = &mut deadline, if outstanding.is_some() => {
                if let Some(reply) = outstanding.take() {
                    let _ = reply.send(failure("module timeout"));
                }
                count(&counters.timeouts, 1);
            }
        }
    }
}
