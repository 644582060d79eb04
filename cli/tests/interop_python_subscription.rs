//! Interop with a peer this project did not write: a Python peer built on
//! `websockets`, `PyJWT` and `jsonschema` (interop/subscription_client.py)
//! mints its own tokens, connects to `specwire serve subscription` at every
//! level, subscribes, publishes through an admin connection and checks the
//! routing, the replies, the errors and the refusals, validating every
//! message against `schema/subscription/`.
//!
//! The virtualenv comes from `interop/setup-python-env` (PyPI the first
//! time). Set `SPECWIRE_SKIP_PYTHON_INTEROP=1` to skip where Python or
//! PyPI is unavailable; CI does not set it.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use specwire_testsupport::{interop_python, scratch, workspace, Running};
use support::specwire;

const SECRET: &str = "interop-subscription-secret-0123456789abcdef";

/// Runs the Python peer; returns whether it passed and its JSON-line report.
/// The peer bounds every step by `--timeout` and its whole run by a watchdog.
fn python_peer(python: &Path, endpoint: &str, secret_args: &[&str]) -> (bool, String) {
    let output = Command::new(python)
        .arg(workspace().join("interop/subscription_client.py"))
        .args(["--endpoint", endpoint, "--timeout", "5"])
        .args(secret_args)
        .stdin(Stdio::null())
        .output()
        .expect("run interop/subscription_client.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

fn checks(report: &str, ok: bool) -> Vec<String> {
    report
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|check| check.get("check").is_some() && check["ok"] == ok)
        .map(|check| check["check"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_python_peer_gets_the_routing_table_and_the_replies_the_profile_gives() {
    let Some(python) = interop_python() else {
        return;
    };
    let dir = scratch("interop-subscription");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let secret_path = secret_file.to_str().unwrap();

    let mut hub = Running::start(specwire().args([
        "serve",
        "subscription",
        "--bind",
        "127.0.0.1:0",
        "--secret-file",
        secret_path,
        // So that the run sees the hub's JSON pings (and answers them).
        "--ping-interval",
        "1s",
    ]));
    let endpoint = hub.endpoint();
    assert!(endpoint.starts_with("ws://127.0.0.1:"), "{endpoint}");

    let (ok, report) = python_peer(
        &python,
        &endpoint,
        &["--secret-file", secret_path, "--server-ping-wait", "5"],
    );
    let failed = checks(&report, false);
    assert!(
        ok && failed.is_empty(),
        "failed checks {failed:#?}\nfull report:\n{report}"
    );
    // Every level was reached and every kind of check ran.
    let passed = checks(&report, true);
    for wanted in [
        "connect:task",
        "connect:experiment",
        "connect:project",
        "connect:user",
        "routing:task",
        "routing:experiment",
        "routing:project",
        "routing:user",
        "routing:system",
        "routing:worker",
        "routing:bystander",
        "routing:admin",
        "subscribe:system:system:all",
        "subscribe:worker:worker:w1",
        "unsubscribe:worker:experiment:e9",
        "subscribe-other-user-refused",
        "ping-id",
        "ping-no-id",
        "malformed-json",
        "unknown-type",
        "schema-violation",
        "publish-not-admin",
        "publish-invalid-event",
        "auth-missing",
        "auth-expired",
        "auth-alg-none",
        "path-404:/ws/galaxies/g1",
        "server-ping",
        "schema:admin",
        "close-handshake",
    ] {
        assert!(
            passed.iter().any(|name| name == wanted),
            "no passed check {wanted}\n{report}"
        );
    }

    // The same peer with the wrong secret is refused everywhere: it fails.
    let (ok, report) = python_peer(&python, &endpoint, &["--secret", "not the hub's secret"]);
    assert!(!ok, "{report}");
    let failed = checks(&report, false);
    assert!(
        failed.iter().any(|name| name.starts_with("routing:")),
        "{failed:?}\n{report}"
    );

    // Stopped by its PID, the hub exits cleanly.
    hub.signal("TERM");
    let (status, _stdout, stderr) = hub.finish();
    assert!(status.success(), "{status:?}\n{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
