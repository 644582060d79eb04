//! The networking core on loopback, with trivial sessions: a WebSocket
//! echo service (paths, refusals, a plain HTTP page, limits, handshake
//! timeout, outbox policy, shutdown) and a TCP line echo over a codec.
//!
//! Every wait is bounded; nothing sleeps to synchronise.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use specwire_runtime::net::http::{response, Request, Response, StatusCode};
use specwire_runtime::net::{
    self, tcp, ws, Limits, Outbox, Peer, Server, ServerConfig, TcpService, TcpSession, Text,
    WsService, WsSession,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_util::codec::LinesCodec;

use support::{eventually, within, SelfSigned, PATIENCE};

// WebSocket ---------------------------------------------------------------------------------

/// Echoes on `/echo`; `/end` ends the connection after echoing; `/burst`
/// queues three answers into an outbox of two. A plain GET gets a page.
struct Echo;

struct EchoSession {
    outbox: Outbox<Text>,
    path: String,
}

impl WsService for Echo {
    type Session = EchoSession;

    fn accept(
        &self,
        request: &Request,
        _: Peer,
        outbox: Outbox<Text>,
    ) -> Result<EchoSession, Response> {
        match request.uri().path() {
            path @ ("/echo" | "/end" | "/burst") => Ok(EchoSession {
                outbox,
                path: path.to_owned(),
            }),
            "/bearer" if net::http::bearer_token(request) == Some("t0k3n") => Ok(EchoSession {
                outbox,
                path: "/echo".to_owned(),
            }),
            _ => Err(response(StatusCode::NOT_FOUND, "no such path")),
        }
    }

    fn http(&self, request: &Request, _: Peer) -> Option<Response> {
        (request.uri().path() == "/").then(|| response(StatusCode::OK, "<h1>hello</h1>"))
    }
}

impl WsSession for EchoSession {
    fn on_text(&mut self, text: &str) {
        match self.path.as_str() {
            "/burst" => {
                for n in 0..3 {
                    let _ = self.outbox.send(format!("{text}{n}").into());
                }
            }
            "/end" => {
                let _ = self.outbox.send(text.to_owned().into());
                self.outbox.end();
            }
            _ => {
                let _ = self.outbox.send(text.to_owned().into());
            }
        }
    }
}

async fn echo_server(change: impl FnOnce(&mut Limits)) -> Server {
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    change(&mut config.limits);
    ws::serve(config, Arc::new(Echo)).await.expect("bind")
}

async fn connect(server: &Server, path: &str) -> net::WsStream {
    let url = format!("{}{path}", server.endpoint());
    let (ws, _) = within("connect", net::connect(&url, &[], PATIENCE))
        .await
        .expect("connect");
    ws
}

/// A WebSocket connection from a given loopback address.
async fn connect_from(server: &Server, ip: Ipv4Addr) -> Result<(), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .map_err(|e| e.to_string())?;
    let stream = socket
        .connect(server.local_addr())
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("{}/echo", server.endpoint());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Frame::text("hi"))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Frame::Text(text))) if text.as_str() == "hi" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

async fn next_text(ws: &mut net::WsStream) -> String {
    match within("a frame", ws.next()).await {
        Some(Ok(Frame::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends `text` and expects it back.
async fn round_trip(ws: &mut net::WsStream, text: &str) {
    within("send", ws.send(Frame::text(text))).await.unwrap();
    assert_eq!(next_text(ws).await, text);
}

/// Reads until the close frame; its code and reason.
async fn close_frame(ws: &mut net::WsStream) -> (CloseCode, String) {
    loop {
        match within("the close frame", ws.next()).await {
            Some(Ok(Frame::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_echoes_and_unknown_paths_are_refused_with_their_status() {
    let server = echo_server(|_| {}).await;
    let mut ws = connect(&server, "/echo").await;
    round_trip(&mut ws, "one").await;
    let url = format!("{}/nope", server.endpoint());
    match within("refusal", net::connect(&url, &[], PATIENCE)).await {
        Err(error) => assert_eq!(error.http_status(), Some(404), "{error}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_bearer_token_reaches_the_service_in_the_header() {
    let server = echo_server(|_| {}).await;
    let url = format!("{}/bearer", server.endpoint());
    let connector = net::Connector::new(url, &[], PATIENCE).expect("a connector");
    let refused = within("refusal", connector.clone().connect()).await;
    assert_eq!(
        refused.err().and_then(|error| error.http_status()),
        Some(404)
    );
    let (mut ws, _) = within("connect", connector.with_bearer("t0k3n").connect())
        .await
        .expect("accepted with the header");
    round_trip(&mut ws, "with a bearer").await;
}

#[tokio::test]
async fn a_plain_get_gets_the_service_s_page_and_others_no_answer() {
    let server = echo_server(|_| {}).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    within("the page", stream.read_to_string(&mut page))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.ends_with("<h1>hello</h1>"), "{page}");

    let mut other = TcpStream::connect(server.local_addr()).await.unwrap();
    other
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = within("the hang-up", other.read_to_end(&mut rest)).await;
    assert!(rest.is_empty() || read.is_err(), "{rest:?}");
}

#[tokio::test]
async fn connections_are_limited_per_ip_and_in_all() {
    let server = echo_server(|limits| {
        limits.max_connections_per_ip = 1;
        limits.max_connections = 2;
    })
    .await;
    let first = connect(&server, "/echo").await;
    let local = Ipv4Addr::new(127, 0, 0, 1);
    assert!(within("same IP", connect_from(&server, local))
        .await
        .is_err());
    // Another loopback address has a place of its own...
    let second = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(second), 0)).unwrap();
        let stream = socket.connect(server.local_addr()).await.unwrap();
        let url = format!("{}/echo", server.endpoint());
        within("second IP", tokio_tungstenite::client_async(url, stream))
            .await
            .expect("a second address is admitted")
            .0
    };
    within("send", held.send(Frame::text("x"))).await.unwrap();
    assert!(matches!(
        within("echo", held.next()).await,
        Some(Ok(Frame::Text(_)))
    ));
    // ...until the total is reached.
    let third = Ipv4Addr::new(127, 0, 0, 3);
    assert!(within("total", connect_from(&server, third)).await.is_err());
    assert_eq!(server.connections(), 2);
    drop(first);
    eventually("a place to free up", || server.connections() == 1).await;
    within("a freed place", connect_from(&server, local))
        .await
        .expect("admitted again");
}

#[tokio::test]
async fn a_connection_without_a_handshake_is_closed_in_time() {
    let server = echo_server(|limits| limits.handshake_timeout = Duration::from_millis(100)).await;
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = within("the hang-up", silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    eventually("the slot to be free", || server.connections() == 0).await;
}

#[tokio::test]
async fn a_full_outbox_closes_the_connection_after_what_fit() {
    let server = echo_server(|limits| limits.max_queued = 2).await;
    let mut ws = connect(&server, "/burst").await;
    within("send", ws.send(Frame::text("m"))).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "m0");
    assert_eq!(next_text(&mut ws).await, "m1");
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("outbox full"), "{reason}");
}

#[tokio::test]
async fn a_session_may_end_its_connection() {
    let server = echo_server(|_| {}).await;
    let mut ws = connect(&server, "/end").await;
    round_trip(&mut ws, "bye").await;
    assert_eq!(close_frame(&mut ws).await.0, CloseCode::Normal);
}

#[tokio::test]
async fn silent_peers_are_pinged_then_closed() {
    let server = echo_server(|limits| limits.keepalive = Duration::from_millis(100)).await;
    // A raw connection that completes the handshake, then never reads.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = String::new();
    let mut reader = BufReader::new(&mut stream);
    within("the 101", reader.read_line(&mut head))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    eventually("the silent peer to be dropped", || {
        server.connections() == 0
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_politely_and_ends_within_the_grace_period() {
    let server = echo_server(|_| {}).await;
    let mut polite = connect(&server, "/echo").await;
    // This one never reads again: it does not answer the close.
    let _rude = connect(&server, "/echo").await;
    let grace = Duration::from_millis(200);
    let shutdown = server.shutdown(grace);
    let ((), (code, reason)) = tokio::join!(
        async {
            // Well under the close handshake's own limit (2 s): the grace
            // period cut the rude connection short.
            tokio::time::timeout(Duration::from_millis(1500), shutdown)
                .await
                .expect("shutdown within its grace period")
        },
        close_frame(&mut polite)
    );
    assert_eq!(code, CloseCode::Away);
    assert_eq!(reason, "server shutting down");
    assert_eq!(server.connections(), 0);
}

// TCP ---------------------------------------------------------------------------------------

struct Lines;

struct LineSession(Outbox<String>);

impl TcpService for Lines {
    type Codec = LinesCodec;
    type Out = String;
    type Session = LineSession;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64)
    }

    fn accept(&self, _: Peer, outbox: Outbox<String>) -> Option<LineSession> {
        Some(LineSession(outbox))
    }
}

impl TcpSession for LineSession {
    type Frame = String;

    fn on_frame(&mut self, line: String) {
        if line == "quit" {
            self.0.end();
        } else {
            let _ = self.0.send(line.to_uppercase());
        }
    }
}

async fn line_server(change: impl FnOnce(&mut Limits)) -> Server {
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    change(&mut config.limits);
    tcp::serve(config, Arc::new(Lines)).await.expect("bind")
}

async fn tcp_client(server: &Server) -> BufReader<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let stream = within(
        "connect",
        net::connect_tcp(&server.endpoint(), &[], PATIENCE),
    )
    .await
    .expect("connect");
    BufReader::new(stream)
}

async fn line(reader: &mut (impl AsyncBufReadExt + Unpin)) -> String {
    let mut line = String::new();
    within("a line", reader.read_line(&mut line)).await.unwrap();
    line
}

#[tokio::test]
async fn the_tcp_loop_frames_with_its_codec() {
    let server = line_server(|_| {}).await;
    assert!(server.endpoint().starts_with("tcp://"));
    let mut client = tcp_client(&server).await;
    client.get_mut().write_all(b"a\nbc\n").await.unwrap();
    assert_eq!(line(&mut client).await, "A\n");
    assert_eq!(line(&mut client).await, "BC\n");
    client.get_mut().write_all(b"quit\n").await.unwrap();
    assert_eq!(line(&mut client).await, "", "closed after quit");
}

#[tokio::test]
async fn a_codec_error_closes_the_tcp_connection() {
    let server = line_server(|_| {}).await;
    let mut client = tcp_client(&server).await;
    client.get_mut().write_all(&[b'x'; 100]).await.unwrap();
    client.get_mut().write_all(b"\n").await.ok();
    let mut rest = Vec::new();
    let _ = within("the hang-up", client.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{rest:?}");
    eventually("the slot to be free", || server.connections() == 0).await;
}

#[tokio::test]
async fn tcp_connections_are_limited_and_shut_down() {
    let server = line_server(|limits| limits.max_connections = 1).await;
    let mut first = tcp_client(&server).await;
    first.get_mut().write_all(b"x\n").await.unwrap();
    assert_eq!(line(&mut first).await, "X\n");
    let mut second = tcp_client(&server).await;
    assert_eq!(line(&mut second).await, "", "refused");
    within("shutdown", server.shutdown(Duration::from_secs(1))).await;
    assert_eq!(line(&mut first).await, "", "closed on shutdown");
}

#[tokio::test]
async fn silent_tcp_peers_are_closed() {
    let server = line_server(|limits| limits.keepalive = Duration::from_millis(50)).await;
    let mut client = tcp_client(&server).await;
    assert_eq!(line(&mut client).await, "", "closed for silence");
}

#[tokio::test]
async fn the_tcp_loop_serves_tls_and_clients_check_the_certificate() {
    let certificate = SelfSigned::new();
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.tls = Some(
        specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
            .expect("the test certificate loads"),
    );
    let server = tcp::serve(config, Arc::new(Lines)).await.expect("bind");
    assert!(
        server.endpoint().starts_with("tls://"),
        "{}",
        server.endpoint()
    );

    let trusted = within(
        "a TLS connection",
        net::connect_tcp(
            &server.endpoint(),
            std::slice::from_ref(&certificate.cert),
            PATIENCE,
        ),
    )
    .await
    .expect("the server's certificate is trusted");
    let mut client = BufReader::new(trusted);
    client.get_mut().write_all(b"secret\n").await.unwrap();
    assert_eq!(line(&mut client).await, "SECRET\n");

    let refused = within(
        "a TLS handshake without the root",
        net::connect_tcp(&server.endpoint(), &[], PATIENCE),
    )
    .await
    .expect_err("a self-signed certificate is not trusted by default");
    assert!(refused.is_untrusted_certificate(), "{refused}");
}
