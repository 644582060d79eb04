//! The client side: connecting (`ws://`, `wss://`, `tcp://`, `tls://`)
//! with a time limit, TLS through [`tls`](crate::tls), exponential
//! [`Backoff`] with jitter, and a [`retry`] loop for reconnecting.
//!
//! ```no_run
//! use std::time::Duration;
//! use specwire_runtime::net::{self, Attempt, Backoff};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One connection, trusting an extra CA (a self-signed provider's).
//! let (ws, response) = net::connect("wss://127.0.0.1:8443", &["ca.pem".into()], Duration::from_secs(5)).await?;
//! println!("HTTP {}", response.status());
//!
//! // Up to 5 attempts with backoff; an error that retrying cannot fix stops at once.
//! let connector = net::Connector::new("ws://127.0.0.1:8080", &[], Duration::from_secs(5))?;
//! let ws = net::retry(&Backoff::default(), 5, |_| async {
//!     connector.connect().await.map(|(ws, _)| ws).map_err(Attempt::Retry)
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket connection.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server's answer to a WebSocket handshake.
pub type HandshakeResponse = http::Response<Option<Vec<u8>>>;

/// Exponential backoff with jitter between connection attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per failure.
    pub factor: f64,
    /// Each delay is scaled by a random factor in `1 - jitter ..= 1`, so
    /// many clients do not retry in step.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX).min(64);
        let base = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let scale = 1.0 - jitter * fastrand::f64();
        Duration::from_secs_f64((capped * scale).max(0.0))
    }
}

/// Why a connection could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not a URL of the expected kind.
    #[error("{0}")]
    Endpoint(String),
    /// TLS could not be set up (an unreadable CA certificate, a bad server
    /// name).
    #[error("{0}")]
    Tls(String),
    /// No connection (and handshake) within the time limit.
    #[error("connection timed out")]
    TimedOut,
    /// The connection or its handshake failed.
    #[error("{0}")]
    Failed(String),
}

impl ConnectError {
    /// Whether the handshake failed because the server's certificate was
    /// not trusted (untrusted, expired or misnamed): rustls reports those as
    /// "invalid peer certificate: ...".
    pub fn is_untrusted_certificate(&self) -> bool {
        matches!(self, ConnectError::Failed(text) if text.contains("invalid peer certificate"))
    }

    /// The HTTP status of a refused handshake (`404` for a path the server
    /// does not serve), when the server answered with one instead of
    /// upgrading: tungstenite reports those as "HTTP error: 404 Not Found".
    pub fn http_status(&self) -> Option<u16> {
        let ConnectError::Failed(text) = self else {
            return None;
        };
        let status = text.strip_prefix("HTTP error: ")?;
        status.get(..3)?.parse().ok()
    }
}

/// Connects to one WebSocket endpoint, again and again: the TLS
/// configuration is built once.
#[derive(Clone, Debug)]
pub struct Connector {
    endpoint: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    bearer: Option<String>,
}

impl Connector {
    /// For `ws://` or `wss://` `endpoint`, trusting the platform's roots
    /// and `extra_roots` (PEM files), each attempt bounded by `timeout`.
    pub fn new(
        endpoint: impl Into<String>,
        extra_roots: &[PathBuf],
        timeout: Duration,
    ) -> Result<Connector, ConnectError> {
        let endpoint = endpoint.into();
        let tls = if endpoint.starts_with("wss://") {
            Some(tls_config(extra_roots)?)
        } else if endpoint.starts_with("ws://") {
            None
        } else {
            return Err(ConnectError::Endpoint(format!(
                "endpoint `{endpoint}` is not a ws:// or wss:// URL"
            )));
        };
        Ok(Connector {
            endpoint,
            tls,
            timeout,
            bearer: None,
        })
    }

    /// Sends `token` in an `Authorization: Bearer` header with every
    /// handshake (kept out of the URL, so out of access logs).
    pub fn with_bearer(mut self, token: impl Into<String>) -> Connector {
        self.bearer = Some(token.into());
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One attempt: TCP, TLS and the WebSocket handshake, within the time
    /// limit.
    pub async fn connect(&self) -> Result<(WsStream, HandshakeResponse), ConnectError> {
        let connector = self
            .tls
            .as_ref()
            .map(|config| tokio_tungstenite::Connector::Rustls(Arc::clone(config)));
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self
            .endpoint
            .as_str()
            .into_client_request()
            .map_err(|error| ConnectError::Endpoint(format!("`{}`: {error}", self.endpoint)))?;
        if let Some(token) = &self.bearer {
            let value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ConnectError::Endpoint("the token is not a valid header value".into())
            })?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(client_config()),
            true,
            connector,
        );
        tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| ConnectError::TimedOut)?
            .map_err(|error| ConnectError::Failed(error.to_string()))
    }
}

/// Client connections' buffers: tungstenite's default read buffer is
/// 128 KiB per connection, which a swarm of a thousand simulated devices
/// (or any client holding many connections) pays in full; messages larger
/// than the buffer still arrive, over more reads.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
}

/// Connects once to a `ws://` or `wss://` endpoint (trusting
/// `extra_roots` besides the platform's roots), within `timeout`.
pub async fn connect(
    endpoint: &str,
    extra_roots: &[PathBuf],
    timeout: Duration,
) -> Result<(WsStream, HandshakeResponse), ConnectError> {
    Connector::new(endpoint, extra_roots, timeout)?
        .connect()
        .await
}

/// Connects once to `tcp://HOST:PORT` or `tls://HOST:PORT` (TLS trusting
/// `extra_roots` besides the platform's roots), within `timeout`.
pub async fn connect_tcp(
    endpoint: &str,
    extra_roots: &[PathBuf],
    timeout: Duration,
) -> Result<MaybeTlsStream<TcpStream>, ConnectError> {
    let (secure, address) = if let Some(address) = endpoint.strip_prefix("tls://") {
        (true, address)
    } else if let Some(address) = endpoint.strip_prefix("tcp://") {
        (false, address)
    } else {
        return Err(ConnectError::Endpoint(format!(
            "endpoint `{endpoint}` is not a tcp:// or tls:// URL"
        )));
    };
    let tls = secure.then(|| tls_config(extra_roots)).transpose()?;
    let connecting = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|error| ConnectError::Failed(error.to_string()))?;
        let _ = stream.set_nodelay(true);
        let Some(config) = tls else {
            return Ok(MaybeTlsStream::Plain(stream));
        };
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| ConnectError::Tls(format!("server name `{host}`: {error}")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|error| ConnectError::Failed(format!("TLS handshake: {error}")))?;
        Ok(MaybeTlsStream::Rustls(stream))
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| ConnectError::TimedOut)?
}

fn tls_config(extra_roots: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    crate::tls::client_config(extra_roots).map_err(|error| ConnectError::Tls(error.to_string()))
}

/// How one attempt of [`retry`] ended, when it failed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth trying again after a delay.
    Retry(E),
    /// Trying again cannot help (a refused key): stop now.
    Fatal(E),
}

/// Why [`retry`] gave up.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum RetryError<E> {
    /// An attempt failed in a way retrying cannot fix.
    #[error("{0}")]
    Fatal(E),
    /// Every attempt failed; the last error.
    #[error("{attempts} attempts failed; the last: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: E,
    },
}

/// Runs `attempt` (given the attempt number, from 0) up to `attempts`
/// times (at least once), sleeping `backoff.delay(n)` before retry `n`,
/// until it succeeds or fails fatally.
pub async fn retry<T, E, F, Fut>(
    backoff: &Backoff,
    attempts: u32,
    mut attempt: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let attempts = attempts.max(1);
    let mut number = 0;
    loop {
        match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(Attempt::Fatal(error)) => return Err(RetryError::Fatal(error)),
            Err(Attempt::Retry(error)) => {
                number += 1;
                if number >= attempts {
                    return Err(RetryError::Exhausted {
                        attempts,
                        last: error,
                    });
                }
                tokio::time::sleep(backoff.delay(number - 1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
        };
        for attempt in 0..100 {
            let delay = backoff.delay(attempt);
            let base = (0.1 * 2f64.powi(attempt.min(60) as i32)).min(1.0);
            assert!(delay.as_secs_f64() <= base + 1e-9, "{attempt}: {delay:?}");
            assert!(
                delay.as_secs_f64() >= base * 0.5 - 1e-9,
                "{attempt}: {delay:?}"
            );
        }
        let fixed = Backoff {
            jitter: 0.0,
            ..backoff
        };
        assert_eq!(fixed.delay(0), Duration::from_millis(100));
        assert_eq!(fixed.delay(3), Duration::from_millis(800));
        assert_eq!(fixed.delay(10), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_base() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            factor: 3.0,
            jitter: 7.0, // clamped to 1
        };
        for attempt in 0..50 {
            let delay = backoff.delay(attempt);
            assert!(delay <= Duration::from_millis(40), "{delay:?}");
        }
    }

    #[tokio::test]
    async fn retry_stops_on_success_fatal_or_exhaustion() {
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            ..Backoff::default()
        };
        let mut calls = 0;
        let result: Result<u32, RetryError<&str>> = retry(&backoff, 5, |n| {
            calls += 1;
            async move {
                if n < 2 {
                    Err(Attempt::Retry("again"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(2));
        assert_eq!(calls, 3);

        let fatal: Result<(), _> =
            retry(&backoff, 5, |_| async { Err(Attempt::Fatal("no")) }).await;
        assert_eq!(fatal, Err(RetryError::Fatal("no")));

        let exhausted: Result<(), _> =
            retry(&backoff, 3, |_| async { Err(Attempt::Retry("down")) }).await;
        assert_eq!(
            exhausted,
            Err(RetryError::Exhausted {
                attempts: 3,
                last: "down"
            })
        );
    }

    #[test]
    fn a_refused_handshake_tells_its_status() {
        let refused = ConnectError::Failed("HTTP error: 404 Not Found".into());
        assert_eq!(refused.http_status(), Some(404));
        assert_eq!(
            ConnectError::Failed("connection refused".into()).http_status(),
            None
        );
        assert_eq!(ConnectError::TimedOut.http_status(), None);
    }

    #[tokio::test]
    async fn bad_endpoints_are_endpoint_errors() {
        let timeout = Duration::from_secs(1);
        assert!(matches!(
            connect("http://x", &[], timeout).await,
            Err(ConnectError::Endpoint(_))
        ));
        assert!(matches!(
            connect_tcp("ws://x:1", &[], timeout).await,
            Err(ConnectError::Endpoint(_))
        ));
    }
}
