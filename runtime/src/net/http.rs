//! The HTTP request that opens a WebSocket connection, read by hand so
//! that a service sees it before any answer is sent: it may refuse the
//! upgrade with a status (401, 404), or answer a plain `GET` with a page
//! of its own on the same port.
//!
//! ```
//! use specwire_runtime::net::http::{bearer_token, response, Request, StatusCode};
//!
//! let request = Request::get("/stream?token=abc.def").body(()).unwrap();
//! assert_eq!(bearer_token(&request), Some("abc.def"));
//! let refusal = response(StatusCode::NOT_FOUND, "no such path");
//! assert_eq!(refusal.status(), 404);
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::http;

pub use http::{header, HeaderValue, StatusCode};

/// The request a connection opened with (method, URI with path and
/// query, headers; no body).
pub type Request = http::Request<()>;

/// An answer to a request that is not upgraded: a refusal or a page.
pub type Response = http::Response<String>;

/// The longest request head read: a longer one closes the connection.
const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may have (as many as tungstenite allows).
const MAX_HEADERS: usize = 124;

/// A response with `status` and a plain-text `body`.
pub fn response(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = http::Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A bearer token from the request: the `token` query parameter, else an
/// `Authorization: Bearer ...` header. (JWTs need no URL decoding.)
pub fn bearer_token(request: &Request) -> Option<&str> {
    let from_query = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .filter(|token| !token.is_empty())
    });
    from_query.or_else(|| {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    })
}

/// Reads one request head; returns it and whatever was read after it.
pub(crate) async fn read_request<S>(stream: &mut S) -> Result<(Request, Vec<u8>), String>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if buffer.len() >= MAX_HEAD {
            return Err(format!("request head over {MAX_HEAD} bytes"));
        }
        let read = stream
            .read_buf(&mut buffer)
            .await
            .map_err(|error| format!("reading the request: {error}"))?;
        if read == 0 {
            return Err("connection closed before a request".to_owned());
        }
        if let Some((request, used)) = parse(&buffer)? {
            let tail = if used < buffer.len() {
                buffer.split_off(used)
            } else {
                Vec::new()
            };
            return Ok((request, tail));
        }
    }
}

fn parse(buffer: &[u8]) -> Result<Option<(Request, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut headers);
    let used = match raw.parse(buffer) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("bad request: {error}")),
    };
    let version = match raw.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let mut builder = http::Request::builder()
        .method(raw.method.unwrap_or("GET"))
        .uri(raw.path.unwrap_or("/"))
        .version(version);
    for header in raw.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let request = builder
        .body(())
        .map_err(|error| format!("bad request: {error}"))?;
    Ok(Some((request, used)))
}

/// Writes `response` (with `Content-Length` and `Connection: close`) and
/// shuts the stream down.
pub(crate) async fn answer<S>(stream: &mut S, response: &Response) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(value.as_bytes()));
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body().len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body().as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_whole_or_not_at_all() {
        let text = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nrest";
        let (request, used) = parse(text).unwrap().unwrap();
        assert_eq!(request.uri().path(), "/a");
        assert_eq!(request.uri().query(), Some("b=c"));
        assert_eq!(request.headers()["upgrade"], "websocket");
        assert_eq!(&text[used..], b"rest");
        assert!(parse(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
        assert!(parse(b"\x00\x01 nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn bearer_tokens_come_from_the_query_or_the_header() {
        let header = Request::get("/")
            .header("Authorization", "Bearer xyz")
            .body(())
            .unwrap();
        assert_eq!(bearer_token(&header), Some("xyz"));
        let both = Request::get("/?a=1&token=q")
            .header("Authorization", "Bearer h")
            .body(())
            .unwrap();
        assert_eq!(bearer_token(&both), Some("q"));
        let basic = Request::get("/")
            .header("Authorization", "Basic abc")
            .body(())
            .unwrap();
        assert_eq!(bearer_token(&basic), None);
        assert_eq!(
            bearer_token(&Request::get("/?token=").body(()).unwrap()),
            None
        );
    }

    #[tokio::test]
    async fn an_answer_is_a_complete_http_response() {
        let (mut server, mut client) = tokio::io::duplex(1024);
        let page = response(StatusCode::OK, "hello");
        answer(&mut server, &page).await.unwrap();
        drop(server);
        let mut text = String::new();
        client.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    }
}
