//! A local client of a uart gateway: one request per connection, or the
//! listening connection.
//!
//! ```no_run
//! use std::time::Duration;
//! use specwire_protocol::uart::{ActiveCount, Command};
//! use specwire_runtime::uart::client::{listen, request};
//!
//! # async fn run() -> std::io::Result<()> {
//! let reply = request("127.0.0.1:50010", &Command::ActiveCount(ActiveCount), Duration::from_secs(5)).await?;
//! println!("{reply:?}");
//! let mut listener = listen("127.0.0.1:50010", Duration::from_secs(5)).await?;
//! while let Some(body) = listener.next().await? {
//!     println!("M body of {} bytes", body.len());
//! }
//! # Ok(()) }
//! ```

use std::io;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_protocol::uart::Command;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::net::frame_codec::FrameCodec;

async fn connect(address: &str, timeout: Duration) -> io::Result<Framed<TcpStream, FrameCodec>> {
    let address = address.strip_prefix("tcp://").unwrap_or(address);
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {address} timed out"),
            )
        })??;
    let _ = stream.set_nodelay(true);
    Ok(Framed::new(stream, FrameCodec::default()))
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no {what} within the time limit"),
    )
}

/// Sends `command` on a new connection and returns the reply body
/// (`S...` or `F...`). `timeout` bounds the connect and the reply (give
/// relayed commands more than the gateway's module timeout).
pub async fn request(address: &str, command: &Command, timeout: Duration) -> io::Result<Vec<u8>> {
    let mut framed = connect(address, timeout).await?;
    framed.send(command.encode()).await?;
    match tokio::time::timeout(timeout, framed.next()).await {
        Err(_) => Err(timed_out("reply")),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the gateway closed without a reply",
        )),
        Ok(Some(body)) => body,
    }
}

/// The listening connection: `LSTN-` answered `S`, then every `M` body.
pub struct Listener(Framed<TcpStream, FrameCodec>);

impl Listener {
    /// The next `M` body; `None` when the gateway closed the connection
    /// (a newer listener replaced this one, or it stopped).
    pub async fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.0.next().await.transpose()
    }
}

/// Connects and becomes the gateway's listener.
pub async fn listen(address: &str, timeout: Duration) -> io::Result<Listener> {
    let mut framed = connect(address, timeout).await?;
    framed.send(b"LSTN-".to_vec()).await?;
    match tokio::time::timeout(timeout, framed.next()).await {
        Err(_) => Err(timed_out("answer to LSTN-")),
        Ok(Some(Ok(body))) if body == b"S" => Ok(Listener(framed)),
        Ok(Some(Ok(body))) => Err(io::Error::other(format!(
            "LSTN- refused: {}",
            String::from_utf8_lossy(body.get(2..).unwrap_or_default())
        ))),
        Ok(Some(Err(error))) => Err(error),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the gateway closed the connection",
        )),
    }
}
