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
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
