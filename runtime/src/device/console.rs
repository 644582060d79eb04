//! The web console and its JSON, served on the hub's own port to plain
//! HTTP `GET`s: `/` is one self-contained page (no CDN, no build step)
//! that connects back over WebSocket, `/commands.json` the registry, and
//! `/devices.json` the registered devices with their last data.

use crate::net::http::{header, response, HeaderValue, Request, Response, StatusCode};

use super::hub::Shared;

/// The page (`console.html` beside this file).
pub const PAGE: &str = include_str!("console.html");

fn with_type(mut answer: Response, content_type: &'static str) -> Response {
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// The answer to a plain HTTP request.
pub(crate) fn answer(request: &Request, shared: &Shared) -> Response {
    if request.method() != "GET" && request.method() != "HEAD" {
        return response(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match request.uri().path() {
        "/" | "/index.html" | "/console" => {
            with_type(response(StatusCode::OK, PAGE), "text/html; charset=utf-8")
        }
        "/commands.json" => with_type(
            response(StatusCode::OK, shared.registry.document()),
            "application/json",
        ),
        "/devices.json" => {
            let devices = shared.table().devices();
            let body = serde_json::to_string(&devices).unwrap_or_else(|_| "[]".to_owned());
            with_type(response(StatusCode::OK, body), "application/json")
        }
        _ => response(
            StatusCode::NOT_FOUND,
            "not here: the console is at /, the registry at /commands.json, devices at /devices.json; WebSocket clients connect to any path\n",
        ),
    }
}
