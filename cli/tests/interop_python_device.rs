//! Interop with a peer this project did not write: a Python peer built on
//! `websockets` alone (interop/device_peer.py) plays two devices, a
//! subscriber, a commanding client and a device that falls silent against
//! `specwire serve device`, and checks the data broadcast, commands to one
//! device and to `all` (parameters with `:`, and none), the `error:`
//! answers that forward nothing, the silence after accepted lines, the
//! hub's pings and the stale drop.
//!
//! The same peer runs against the Python baseline hub
//! (interop/minimal_device_hub.py), which must do the same job for the
//! benchmark to be fair.
//!
//! The virtualenv comes from `interop/setup-python-env` (PyPI the first
//! time). Set `SPECWIRE_SKIP_PYTHON_INTEROP=1` to skip where Python or
//! PyPI is unavailable; CI does not set it.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use specwire_testsupport::{interop_python, scratch, workspace, Running};
use support::specwire;

/// Every check a full run reports as passed.
const CHECKS: &[&str] = &[
    "connect:commander",
    "connect:subscriber",
    "connect:device-a",
    "connect:device-b",
    "connect:device-c",
    "ping-pong",
    "register-silent:device-a",
    "register-silent:device-b",
    "register-silent:device-c",
    "subscribe-silent",
    "data-broadcast",
    "data-order",
    "data-to-subscribers-only",
    "cmd-one",
    "cmd-one-only",
    "cmd-all",
    "cmd-all-silent",
    "cmd-no-parameters",
    "cmd-no-parameters-only",
    "cmd-unknown-command",
    "cmd-unknown-command-all",
    "cmd-unknown-target",
    "refused-not-forwarded",
    "not-a-device",
    "not-a-device-not-broadcast",
    "hub-ping",
    "hub-ping-pong-silent",
    "stale-drop",
    "stale-forgotten",
    "alive-answering-pings",
    "alive-answering-pings-only",
    "close-handshake:commander",
    "close-handshake:subscriber",
    "close-handshake:device-a",
    "close-handshake:device-b",
];

/// Runs the Python peer; returns whether it passed and its JSON-line report.
/// The peer bounds every step by `--timeout` and its whole run by a watchdog.
fn python_peer(python: &Path, endpoint: &str, extra: &[&str]) -> (bool, String) {
    let output = Command::new(python)
        .arg(workspace().join("interop/device_peer.py"))
        .args(["--endpoint", endpoint, "--timeout", "5"])
        // The hub under test pings every 200 ms and drops after 1 s.
        .args(["--ping-wait", "5", "--stale-timeout", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run interop/device_peer.py");
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

fn assert_full_pass(ok: bool, report: &str) {
    let failed = checks(report, false);
    assert!(
        ok && failed.is_empty(),
        "failed checks {failed:#?}\nfull report:\n{report}"
    );
    let passed = checks(report, true);
    for wanted in CHECKS {
        assert!(
            passed.iter().any(|name| name == wanted),
            "no passed check {wanted}\n{report}"
        );
    }
}

fn serve_device(registry: &Path) -> (Running, String) {
    let mut command = specwire();
    command.args(["serve", "device", "--bind", "127.0.0.1:0", "--registry"]);
    command.arg(registry);
    command.args(["--ping-interval", "200ms", "--stale-timeout", "1s"]);
    let mut hub = Running::start(&mut command);
    let endpoint = hub.endpoint();
    (hub, endpoint)
}

#[test]
fn a_python_peer_gets_what_the_profile_gives_from_serve_device() {
    let Some(python) = interop_python() else {
        return;
    };
    let (hub, endpoint) = serve_device(&workspace().join("schema/device/commands.json"));
    assert!(endpoint.starts_with("ws://127.0.0.1:"), "{endpoint}");

    let (ok, report) = python_peer(&python, &endpoint, &[]);
    assert_full_pass(ok, &report);

    // Stopped by its PID, the hub exits cleanly and counts what it did.
    hub.signal("TERM");
    let (status, _stdout, stderr) = hub.finish();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("1 stale device(s) dropped"),
        "the peer's silent device: {stderr}"
    );
}

#[test]
fn the_peer_fails_where_the_registry_lacks_its_command() {
    let Some(python) = interop_python() else {
        return;
    };
    // A registry without `say`: the peer's commands with parameters are
    // refused, and it says so.
    let dir = scratch("interop-device");
    let registry = dir.join("commands.json");
    std::fs::write(
        &registry,
        r#"{"commands": [{"name": "reset", "description": "Restart.", "parameters": []}]}"#,
    )
    .unwrap();
    let (_hub, endpoint) = serve_device(&registry);
    // Shorter waits: some replies are due never to come.
    let (ok, report) = python_peer(&python, &endpoint, &["--timeout", "2"]);
    assert!(!ok, "{report}");
    let failed = checks(&report, false);
    assert!(
        failed.iter().any(|name| name == "cmd-one") && failed.iter().any(|name| name == "cmd-all"),
        "{failed:?}\n{report}"
    );
    // What does not depend on `say` still passes.
    let passed = checks(&report, true);
    for wanted in ["data-broadcast", "cmd-no-parameters", "stale-drop"] {
        assert!(
            passed.iter().any(|name| name == wanted),
            "{wanted}\n{report}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_python_baseline_hub_does_the_same_job() {
    let Some(python) = interop_python() else {
        return;
    };
    let mut command = Command::new(&python);
    command
        .arg(workspace().join("interop/minimal_device_hub.py"))
        .args(["--port", "0", "--registry"])
        .arg(workspace().join("schema/device/commands.json"))
        .args(["--ping-interval", "0.2", "--stale-timeout", "1"]);
    let mut hub = Running::start(&mut command);
    let endpoint = hub.endpoint();
    let (ok, report) = python_peer(&python, &endpoint, &[]);
    assert_full_pass(ok, &report);
    hub.signal("TERM");
    let (status, _stdout, stderr) = hub.finish();
    assert!(status.success(), "{status:?}\n{stderr}");
}
