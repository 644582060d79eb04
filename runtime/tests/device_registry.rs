//! Loading the device registry from an `http://` URL: served, missing,
//! invalid, and a server that never answers (bounded).

use specwire_runtime::device::{Registry, RegistryError};
use specwire_testsupport::within_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-route HTTP server on 127.0.0.1:0 answering every request with
/// `status` and `body`; its base URL.
async fn serve(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

async fn load(url: &str) -> Result<(Registry, Vec<String>), RegistryError> {
    within_for(
        std::time::Duration::from_secs(20),
        "the registry",
        Registry::load(url),
    )
    .await
}

#[tokio::test]
async fn a_registry_is_fetched_over_http() {
    let base = serve("200 OK", include_str!("../../schema/device/commands.json")).await;
    let (registry, warnings) = load(&format!("{base}/static/commands.json")).await.unwrap();
    assert!(warnings.is_empty());
    assert!(registry.command("led").is_some());
    assert_eq!(registry.origin(), format!("{base}/static/commands.json"));
}

#[tokio::test]
async fn http_errors_and_bad_documents_are_clear() {
    let missing = serve("404 Not Found", "{}").await;
    let error = load(&format!("{missing}/commands.json")).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("404"), "{error}");

    let empty = serve("200 OK", r#"{"commands": []}"#).await;
    let error = load(&format!("{empty}/commands.json")).await.unwrap_err();
    assert!(error.to_string().contains("lists no commands"), "{error}");

    // Nothing listens here any more.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let error = load(&format!("http://{closed}/commands.json"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error}"
    );
}
