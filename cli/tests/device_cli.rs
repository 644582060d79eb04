//! The device family from the command line: `serve device`, `device
//! watch`, `device send`, `simulate devices` and `demo device`, as
//! separate processes over loopback.

mod support;

use specwire_testsupport::{scratch, Pipe, Running};
use support::{output, serve_device, specwire};

#[test]
fn a_bad_or_missing_registry_stops_the_hub_with_a_clear_error() {
    let dir = scratch("device-registry");
    let empty = dir.join("empty.json");
    std::fs::write(&empty, r#"{"commands": []}"#).unwrap();
    let cases = [
        (empty.display().to_string(), "lists no commands"),
        (
            dir.join("missing.json").display().to_string(),
            "cannot read the command registry",
        ),
        (
            "http://127.0.0.1:9/commands.json".to_owned(),
            "cannot read the command registry",
        ),
    ];
    for (registry, expected) in cases {
        let (code, _, stderr) = output(specwire().args([
            "serve",
            "device",
            "--bind",
            "127.0.0.1:0",
            "--registry",
            &registry,
        ]));
        assert_eq!(code, 2, "{registry}: {stderr}");
        assert!(stderr.contains(expected), "{registry}: {stderr}");
    }
}

#[test]
fn a_registry_beyond_the_schema_is_served_with_warnings() {
    let dir = scratch("device-registry-extra");
    let registry = dir.join("commands.json");
    std::fs::write(&registry, r#"{"commands": [{"name": "spin", "description": "x", "parameters": [{"name": "rpm", "type": "uint16"}]}], "vendor": "acme"}"#).unwrap();
    let mut hub = Running::start(
        specwire()
            .args(["serve", "device", "--bind", "127.0.0.1:0", "--registry"])
            .arg(&registry),
    );
    let warning = hub.wait_for(Pipe::Stderr, |line| line.contains("uint16"));
    assert!(warning.contains("opaque text"), "{warning}");
    let _ = hub.endpoint();
}

#[test]
fn send_reports_accepted_and_refused_commands_and_watch_prints_data() {
    let (_hub, endpoint) = serve_device(&[]);
    let swarm = Running::start(specwire().args([
        "simulate",
        "devices",
        "--target",
        &endpoint,
        "--count",
        "3",
        "--rate",
        "20",
        "--duration",
        "30s",
    ]));
    let mut watcher = Running::start(specwire().args(["device", "watch", "--target", &endpoint]));
    // A line from each simulated device: they are registered.
    for device in ["sim-0001:", "sim-0002:", "sim-0003:"] {
        watcher.wait_for(Pipe::Stdout, |line| line.starts_with(device));
    }
    let (code, _, stderr) = output(specwire().args([
        "device", "send", "--target", &endpoint, "sim-0001", "led", "00ff00",
    ]));
    assert_eq!(code, 0, "{stderr}");
    watcher.wait_for(Pipe::Stdout, |line| line == "sim-0001:applied=led:00ff00");
    let (code, _, stderr) =
        output(specwire().args(["device", "send", "--target", &endpoint, "all", "say", "a:b"]));
    assert_eq!(code, 0, "{stderr}");
    watcher.wait_for(Pipe::Stdout, |line| line == "sim-0003:applied=say:a:b");
    let (code, _, stderr) =
        output(specwire().args(["device", "send", "--target", &endpoint, "sim-0001", "fly"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown command: fly"), "{stderr}");
    let (code, _, stderr) =
        output(specwire().args(["device", "send", "--target", &endpoint, "nobody", "reset"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown target: nobody"), "{stderr}");
    swarm.signal("INT");
    let (status, stdout, _) = swarm.finish();
    assert!(status.success());
    assert!(
        stdout.contains("3/3 connected") || stdout.contains("commands applied"),
        "{stdout}"
    );
}

#[test]
fn send_to_an_unreachable_hub_exits_3() {
    let (code, _, stderr) = output(specwire().args([
        "device",
        "send",
        "--target",
        "ws://127.0.0.1:9",
        "x",
        "reset",
    ]));
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn the_demo_runs_and_checks_itself() {
    let (code, stdout, stderr) = output(specwire().args(["demo", "device"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("applied by device") || stdout.contains("applied by lamp-0001"),
        "{stdout}"
    );
}
