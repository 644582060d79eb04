//! The chat family (seed 003) over raw TCP, as the load tools speak it:
//! independent of specwire's own client so that it measures any server
//! the same way.
//!
//! The stream is JSON objects back to back (both servers end each with
//! `\n`, but nothing here relies on it): [`split_objects`] takes every
//! complete object off a buffer with serde_json's stream deserializer,
//! borrowing the strings it can, and leaves a partial one for the next
//! read.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

/// `tcp://HOST:PORT` or `HOST:PORT` on the loopback interface, resolved;
/// the load tools never point traffic anywhere else.
pub fn loopback_tcp(endpoint: &str) -> Result<SocketAddr, String> {
    let rest = endpoint.strip_prefix("tcp://").unwrap_or(endpoint);
    let rest = rest.trim_end_matches('/');
    let address: SocketAddr = match rest.parse() {
        Ok(address) => address,
        Err(_) => match rest.strip_prefix("localhost:").map(str::parse::<u16>) {
            Some(Ok(port)) => SocketAddr::from(([127, 0, 0, 1], port)),
            _ => return Err(format!("{endpoint}: expected tcp://HOST:PORT")),
        },
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "{endpoint}: not a loopback address; the load tools only run against 127.0.0.1"
        ));
    }
    if address.port() == 0 {
        return Err(format!("{endpoint}: no port"));
    }
    Ok(address)
}

/// What the tools read of a server's object: a response (`status`, or
/// `error` + `code`) or a broadcast (`type`); other members are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub count: Option<u64>,
}

impl Incoming<'_> {
    /// A response to a request (as opposed to a broadcast).
    pub fn is_response(&self) -> bool {
        self.status.is_some() || self.code.is_some()
    }

    /// `status: success`.
    pub fn is_success(&self) -> bool {
        self.status.as_deref() == Some("success")
    }

    /// A short description, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?} message {:?} error {:?} code {:?}",
            self.status.as_deref(),
            self.message
                .as_deref()
                .map(|m| m.chars().take(80).collect::<String>()),
            self.error.as_deref(),
            self.code
        )
    }
}

/// Hands every complete object at the front of `buffer` to `each`; returns
/// how many bytes they took (the caller drops them). A partial object at
/// the end waits for the next read; anything that is not JSON is an error.
pub fn split_objects<'a>(
    buffer: &'a [u8],
    mut each: impl FnMut(Incoming<'a>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut objects = serde_json::Deserializer::from_slice(buffer).into_iter::<Incoming<'a>>();
    let mut used = 0;
    loop {
        match objects.next() {
            None => return Ok(buffer.len()),
            Some(Ok(object)) => {
                used = objects.byte_offset();
                each(object)?;
            }
            Some(Err(error)) if error.is_eof() => return Ok(used),
            Some(Err(error)) => {
                let shown = String::from_utf8_lossy(&buffer[used..buffer.len().min(used + 120)]);
                return Err(format!(
                    "the server sent something that is not JSON ({error}): {shown}"
                ));
            }
        }
    }
}

/// A request, `\n`-terminated.
pub fn request(method: &str, params: serde_json::Value) -> Vec<u8> {
    let mut bytes = json!({"method": method, "params": params})
        .to_string()
        .into_bytes();
    bytes.push(b'\n');
    bytes
}

/// What a response said, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub success: bool,
    pub count: Option<u64>,
    pub describe: String,
}

/// A connection for the setup steps (join, a checked request), which
/// reads until the response and skips the broadcasts before it.
pub struct Conn {
    pub stream: TcpStream,
    pub buffer: Vec<u8>,
}

impl Conn {
    /// Connects within `timeout` (`TCP_NODELAY` set).
    pub async fn connect(address: SocketAddr, timeout: Duration) -> Result<Conn, String> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(format!("connect: {error}")),
            Err(_) => return Err(format!("connect: not within {timeout:?}")),
        };
        stream
            .set_nodelay(true)
            .map_err(|error| format!("TCP_NODELAY: {error}"))?;
        Ok(Conn {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `bytes` and waits for the next response (within `timeout`).
    pub async fn call(&mut self, bytes: &[u8], timeout: Duration) -> Result<Response, String> {
        let exchange = async {
            self.stream
                .write_all(bytes)
                .await
                .map_err(|error| format!("send: {error}"))?;
            self.response().await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no response within {timeout:?}")))
    }

    /// Reads until a response arrives; broadcasts before it are skipped,
    /// what follows it stays in the buffer.
    pub async fn response(&mut self) -> Result<Response, String> {
        loop {
            let mut objects =
                serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Incoming<'_>>();
            let mut used = 0;
            let mut found = None;
            while let Some(object) = objects.next() {
                match object {
                    Ok(object) if object.is_response() => {
                        found = Some(Response {
                            success: object.is_success(),
                            count: object.count,
                            describe: object.describe(),
                        });
                        break;
                    }
                    Ok(_) => {}
                    Err(error) if error.is_eof() => break,
                    Err(error) => {
                        return Err(format!(
                            "the server sent something that is not JSON: {error}"
                        ))
                    }
                }
                used = objects.byte_offset();
            }
            if found.is_some() {
                used = objects.byte_offset();
            }
            self.buffer.drain(..used);
            if let Some(response) = found {
                return Ok(response);
            }
            self.buffer.reserve(4096);
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) => return Err("the server closed the connection".to_owned()),
                Ok(_) => {}
                Err(error) => return Err(format!("receive: {error}")),
            }
        }
    }

    /// `join_chat` as `name`; a refusal is an error.
    pub async fn join(&mut self, name: &str, timeout: Duration) -> Result<(), String> {
        let response = self
            .call(&request("join_chat", json!({"username": name})), timeout)
            .await?;
        if response.success {
            Ok(())
        } else {
            Err(format!("join_chat {name}: {}", response.describe))
        }
    }
}

/// What an idle chat connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Joined: reading and dropping broadcasts.
    Hold,
    /// Prove it is live: a second `join_chat` must be refused.
    Verify,
    Close,
}

/// What one idle connection reports.
enum Event {
    Joined(Result<(), String>),
    /// `Ok(Some(count))` from the connection that asked `get_users`.
    Verified(Result<Option<u64>, String>),
}

/// N joined connections that send nothing, each draining what the server
/// sends it (the join announcements of everyone after it), for
/// `idle-clients --verify chat`.
pub struct IdleChat {
    phase: watch::Sender<Phase>,
    events: mpsc::UnboundedReceiver<Event>,
    tasks: tokio::task::JoinSet<()>,
    /// Connections joined, failed, and the first failures.
    pub joined: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl IdleChat {
    /// Connects and joins `clients` connections (`idle-<n>-<tag>`), at most
    /// `concurrency` at a time, each bounded by `timeout`.
    pub async fn open(
        address: SocketAddr,
        clients: usize,
        concurrency: usize,
        timeout: Duration,
        tag: &str,
    ) -> IdleChat {
        let (phase, _) = watch::channel(Phase::Hold);
        let (report, events) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..clients {
            let name = format!("idle-{index}-{tag}");
            let (gate, phase, report) = (Arc::clone(&gate), phase.subscribe(), report.clone());
            // The last to join asks get_users: it must count everyone.
            let ask = index + 1 == clients;
            tasks.spawn(idle_connection(
                address, name, timeout, gate, phase, report, ask,
            ));
        }
        let mut idle = IdleChat {
            phase,
            events,
            tasks,
            joined: 0,
            failed: 0,
            failures: Vec::new(),
        };
        for _ in 0..clients {
            match idle.events.recv().await {
                Some(Event::Joined(Ok(()))) => idle.joined += 1,
                Some(Event::Joined(Err(error))) => idle.fail(error),
                Some(Event::Verified(_)) | None => break,
            }
        }
        idle
    }

    fn fail(&mut self, error: String) {
        self.failed += 1;
        if self.failures.len() < 5 {
            self.failures.push(error);
        }
    }

    /// Every joined connection proves it is live; returns how many did and
    /// what `get_users` counted.
    pub async fn verify(&mut self) -> (usize, Option<u64>) {
        self.phase.send_replace(Phase::Verify);
        let (mut verified, mut counted) = (0, None);
        for _ in 0..self.joined {
            match self.events.recv().await {
                Some(Event::Verified(Ok(count))) => {
                    verified += 1;
                    counted = counted.or(count);
                }
                Some(Event::Verified(Err(error))) => self.fail(error),
                Some(Event::Joined(_)) | None => break,
            }
        }
        (verified, counted)
    }

    /// Closes every connection (each close is a leave the server announces
    /// to those still joined).
    pub async fn close(mut self) {
        self.phase.send_replace(Phase::Close);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Drops every complete line of `buffer` (both servers end each object
/// with `\n`): what is left starts at an object.
fn drop_lines(buffer: &mut Vec<u8>) {
    if let Some(last) = buffer.iter().rposition(|&byte| byte == b'\n') {
        buffer.drain(..=last);
    }
}

/// Reads and drops until the phase moves on; the new phase.
async fn drain(conn: &mut Conn, phase: &mut watch::Receiver<Phase>) -> Result<Phase, String> {
    loop {
        let now = *phase.borrow_and_update();
        if now != Phase::Hold {
            return Ok(now);
        }
        conn.buffer.reserve(4096);
        tokio::select! {
            read = conn.stream.read_buf(&mut conn.buffer) => match read {
                Ok(0) => return Err("the server closed the connection".to_owned()),
                Ok(_) => drop_lines(&mut conn.buffer),
                Err(error) => return Err(format!("receive: {error}")),
            },
            changed = phase.changed() => if changed.is_err() { return Ok(Phase::Close) },
        }
    }
}

async fn idle_connection(
    address: SocketAddr,
    name: String,
    timeout: Duration,
    gate: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    report: mpsc::UnboundedSender<Event>,
    ask_users: bool,
) {
    let permit = gate.acquire_owned().await;
    let joined = match Conn::connect(address, timeout).await {
        Ok(mut conn) => conn.join(&name, timeout).await.map(|()| conn),
        Err(error) => Err(error),
    };
    drop(permit);
    let mut conn = match joined {
        Ok(conn) => {
            let _ = report.send(Event::Joined(Ok(())));
            conn
        }
        Err(error) => {
            let _ = report.send(Event::Joined(Err(format!("{name}: {error}"))));
            return;
        }
    };
    match drain(&mut conn, &mut phase).await {
        Ok(Phase::Verify) => {}
        Ok(_) => return,
        Err(error) => {
            let _ = report.send(Event::Verified(Err(format!("{name}: {error}"))));
            return;
        }
    }
    let verified = verify_idle(&mut conn, &name, timeout, ask_users).await;
    let _ = report.send(Event::Verified(verified));
    // Hold (reading) until told to close.
    while let Ok(Phase::Verify | Phase::Hold) = drain_any(&mut conn, &mut phase).await {}
}

/// A second `join_chat` must be refused (the connection is joined and
/// live); with `ask_users`, `get_users` too.
async fn verify_idle(
    conn: &mut Conn,
    name: &str,
    timeout: Duration,
    ask_users: bool,
) -> Result<Option<u64>, String> {
    let again = conn
        .call(&request("join_chat", json!({"username": name})), timeout)
        .await
        .map_err(|error| format!("{name}: {error}"))?;
    if again.success {
        return Err(format!(
            "{name}: a second join_chat succeeded: not joined before?"
        ));
    }
    if !ask_users {
        return Ok(None);
    }
    let users = conn
        .call(&request("get_users", json!({})), timeout)
        .await
        .map_err(|error| format!("{name}: get_users: {error}"))?;
    match (users.success, users.count) {
        (true, Some(count)) => Ok(Some(count)),
        _ => Err(format!("{name}: get_users answered {}", users.describe)),
    }
}

/// Reads and drops until the phase changes (whatever it was).
async fn drain_any(conn: &mut Conn, phase: &mut watch::Receiver<Phase>) -> Result<Phase, String> {
    loop {
        conn.buffer.reserve(4096);
        tokio::select! {
            read = conn.stream.read_buf(&mut conn.buffer) => match read {
                Ok(0) => return Err("closed".to_owned()),
                Ok(_) => drop_lines(&mut conn.buffer),
                Err(error) => return Err(format!("receive: {error}")),
            },
            changed = phase.changed() => {
                return match changed {
                    Ok(()) if *phase.borrow_and_update() != Phase::Close => Ok(Phase::Hold),
                    _ => Ok(Phase::Close),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_split_anywhere() {
        let stream = br#"{"type":"chat","message":"a \"q\"","username":"u"}
{"status":"success","count":2}{"error":"Parse error","code":-32700}"#;
        for cut in 0..stream.len() {
            let mut seen = Vec::new();
            let mut buffer = stream[..cut].to_vec();
            let used = split_objects(&buffer, |o| {
                seen.push((o.kind.as_deref().map(str::to_owned), o.is_response()));
                Ok(())
            })
            .unwrap();
            buffer.drain(..used);
            buffer.extend_from_slice(&stream[cut..]);
            let used = split_objects(&buffer, |o| {
                seen.push((o.kind.as_deref().map(str::to_owned), o.is_response()));
                Ok(())
            })
            .unwrap();
            assert_eq!(used, buffer.len());
            assert_eq!(
                seen,
                [(Some("chat".to_owned()), false), (None, true), (None, true)],
                "cut at {cut}"
            );
        }
        assert!(split_objects(b"{\"a\":1} junk", |_| Ok(())).is_err());
    }

    #[test]
    fn only_loopback_tcp() {
        assert!(loopback_tcp("tcp://127.0.0.1:65432").is_ok());
        assert!(loopback_tcp("127.0.0.1:1").is_ok());
        assert!(loopback_tcp("tcp://localhost:5").is_ok());
        assert!(loopback_tcp("tcp://[::1]:5").is_ok());
        assert!(loopback_tcp("tcp://10.0.0.1:5").is_err());
        assert!(loopback_tcp("tcp://127.0.0.1").is_err());
        assert!(loopback_tcp("tcp://127.0.0.1:0").is_err());
    }
}
