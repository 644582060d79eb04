//! Interop with a peer this project did not write: interop/chat_client.py,
//! raw sockets and `json.JSONDecoder().raw_decode` as in the seed's
//! testing examples, runs several concurrent clients against the chat
//! server on 127.0.0.1:0 and checks what each gets: responses in order,
//! the JSON-RPC codes, the length rules, join and leave announcements
//! (also of a client that just disconnects), everyone else's messages
//! once and in order, never its own, `count == len(users)`. Its requests
//! go out with and without a trailing newline and split over several
//! writes (one cut inside a UTF-8 character).
//!
//! The same peer runs against the Python baseline server
//! (interop/minimal_chat_server.py), which takes the seed's alternatives,
//! so that the benchmark compares two servers doing the same job, and
//! against an echo server, which it must fail.
//!
//! The virtualenv comes from `interop/setup-python-env` (PyPI the first
//! time). Set `SPECWIRE_SKIP_PYTHON_INTEROP=1` to skip where Python or
//! PyPI is unavailable; CI does not set it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use specwire_runtime::chat::{ChatConfig, ChatServer, NamePolicy, UserListing};
use specwire_testsupport::wait::{eventually, within_for};
use specwire_testsupport::{interop_python, workspace, Acceptor, Running};
use tokio::io::AsyncWriteExt;

/// Every check a full run reports as passed.
const CHECKS: &[&str] = &[
    "before-join:send_message",
    "before-join:get_users",
    "before-join:leave_chat",
    "rpc-errors",
    "validation",
    "join-username",
    "join-users",
    "name-taken",
    "join-twice",
    "join-announcements",
    "send-message",
    "message-validation",
    "chat-broadcasts",
    "no-echo",
    "get-users",
    "disconnect-announced",
    "leave-announcements",
    "leave",
    "welcome-at-most-once",
    "after-leave",
    "no-broadcast-after-leave",
    "client-completed",
];

const CLIENTS: usize = 8;
const MESSAGES: usize = 5;

/// The peer's whole run is bounded by its own watchdog; this bounds the
/// wait for it once more.
const PEER_LIMIT: Duration = Duration::from_secs(180);

/// The peer's report: its exit status and its JSON lines.
struct Report {
    ok: bool,
    text: String,
}

impl Report {
    fn checks(&self) -> Vec<Value> {
        self.text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("check").is_some())
            .collect()
    }

    fn detail(&self, check: &str) -> String {
        self.checks()
            .into_iter()
            .find(|line| line["check"] == check)
            .and_then(|line| line["detail"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn assert_full_pass(&self) {
        let checks = self.checks();
        let failed: Vec<&Value> = checks.iter().filter(|c| c["ok"] != true).collect();
        assert!(
            self.ok && failed.is_empty(),
            "failed checks {failed:#?}\nfull report:\n{}",
            self.text
        );
        for wanted in CHECKS {
            assert!(
                checks.iter().any(|c| c["check"] == *wanted),
                "no check {wanted}\n{}",
                self.text
            );
        }
    }
}

/// Runs interop/chat_client.py against `endpoint` (off the runtime's
/// threads: the server under test may share them).
async fn chat_client(python: &Path, endpoint: &str, extra: &[&str]) -> Report {
    let mut command = Command::new(python);
    command
        .arg(workspace().join("interop/chat_client.py"))
        .args(["--endpoint", endpoint, "--timeout", "5"])
        .args(["--clients", &CLIENTS.to_string()])
        .args(["--messages", &MESSAGES.to_string()])
        .args(extra)
        .stdin(Stdio::null());
    let run = tokio::task::spawn_blocking(move || command.output().expect("run chat_client.py"));
    let output = within_for(PEER_LIMIT, "interop/chat_client.py", run)
        .await
        .expect("the peer's thread");
    Report {
        ok: output.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

async fn server(configure: impl FnOnce(&mut ChatConfig)) -> ChatServer {
    let mut config = ChatConfig::new("127.0.0.1:0".parse().unwrap());
    configure(&mut config);
    ChatServer::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_swarm_gets_what_the_profile_gives_from_the_chat_server() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = server(|_| {}).await;
    let endpoint = server.endpoint();
    assert!(endpoint.starts_with("tcp://127.0.0.1:"), "{endpoint}");

    let report = chat_client(&python, &endpoint, &[]).await;
    report.assert_full_pass();
    // Our defaults: a taken name refused, plain names, no welcome.
    assert!(
        report.detail("name-taken").contains("refused"),
        "{}",
        report.text
    );
    assert!(
        report.detail("welcome-at-most-once").contains("no welcome"),
        "{}",
        report.text
    );
    // Everyone left or disconnected; every message was taken in once.
    eventually("every client gone", || {
        let stats = server.stats();
        stats.joined == 0 && stats.connections == 0
    })
    .await;
    assert_eq!(server.stats().messages, (CLIENTS * MESSAGES) as u64);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_swarm_passes_with_the_seed_s_alternatives() {
    let Some(python) = interop_python() else {
        return;
    };
    let server = server(|config| {
        config.names = NamePolicy::SuffixPort;
        config.users = UserListing::WithAddress;
        config.welcome = true;
    })
    .await;
    let report = chat_client(&python, &server.endpoint(), &["--prefix", "alt"]).await;
    report.assert_full_pass();
    assert!(
        report.detail("name-taken").contains("given"),
        "{}",
        report.text
    );
    assert!(
        report
            .detail("welcome-at-most-once")
            .contains("Welcome to the chat"),
        "{}",
        report.text
    );
    assert!(
        report.detail("join-users").contains("address"),
        "{}",
        report.text
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_baseline_server_does_the_same_job() {
    let Some(python) = interop_python() else {
        return;
    };
    let mut command = Command::new(&python);
    command
        .arg(workspace().join("interop/minimal_chat_server.py"))
        .args(["--port", "0"]);
    let mut baseline = Running::start(&mut command);
    let endpoint = baseline.endpoint();
    assert!(endpoint.starts_with("tcp://127.0.0.1:"), "{endpoint}");
    let report = chat_client(&python, &endpoint, &[]).await;
    report.assert_full_pass();
    // The seed's alternatives: suffixed names, addresses, a welcome.
    assert!(
        report.detail("name-taken").contains("given"),
        "{}",
        report.text
    );
    assert!(
        report.detail("welcome-at-most-once").contains("Welcome"),
        "{}",
        report.text
    );
    baseline.signal("TERM");
    let (status, _stdout, stderr) = baseline.finish();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.is_empty(), "the baseline complained:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_fails_against_a_server_that_echoes() {
    let Some(python) = interop_python() else {
        return;
    };
    // Echoes every request back: nothing it gets is a response.
    let echo = Acceptor::start(|mut stream| async move {
        let (mut read, mut write) = stream.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
        let _ = write.shutdown().await;
    })
    .await;
    let endpoint = format!("tcp://{}", echo.addr());
    let report = chat_client(&python, &endpoint, &["--clients", "2", "--timeout", "1"]).await;
    assert!(!report.ok, "{}", report.text);
    let failed: Vec<Value> = report
        .checks()
        .into_iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert!(
        failed
            .iter()
            .any(|c| c["check"] == "well-formed" || c["check"] == "client-completed"),
        "{}",
        report.text
    );
}
