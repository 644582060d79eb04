//! Opening a WebSocket to a target (`ws://` or `wss://`, the platform's
//! roots plus extra CA certificates), within a timeout: written once for
//! every family's suite.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket to the target.
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The TLS client configuration could not be made (an unreadable CA
    /// certificate).
    Tls(String),
    /// The connection or the handshake failed.
    Handshake(String),
    /// No handshake within the timeout.
    Timeout,
}

/// Whether a handshake failed because the target's certificate was not
/// trusted (untrusted, expired or misnamed): rustls reports those as
/// "invalid peer certificate: ...".
pub fn untrusted(handshake_error: &str) -> bool {
    handshake_error.contains("invalid peer certificate")
}

/// Opens a WebSocket to `endpoint` within `timeout`, trusting
/// `extra_roots` beside the platform's roots for `wss://`. Returns the
/// stream and the handshake's HTTP status.
pub async fn websocket(
    endpoint: &str,
    extra_roots: &[PathBuf],
    timeout: Duration,
) -> Result<(WebSocket, u16), ConnectError> {
    let connector = if endpoint.starts_with("wss://") {
        let config = specwire_runtime::tls::client_config(extra_roots)
            .map_err(|error| ConnectError::Tls(error.to_string()))?;
        Some(tokio_tungstenite::Connector::Rustls(config))
    } else {
        None
    };
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(endpoint, None, true, connector);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((ws, response))) => Ok((ws, response.status().as_u16())),
        Ok(Err(error)) => Err(ConnectError::Handshake(error.to_string())),
        Err(_) => Err(ConnectError::Timeout),
    }
}
