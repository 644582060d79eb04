//! `specwire conformance` as a third-party implementer runs it: against the
//! reference provider (passes), against a provider this project did not
//! write (the Python baseline, which fails some MUST points), reports, known
//! failures, replay bundles and usage errors.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use specwire_testsupport::{free_udp_port, interop_python, scratch, workspace, Running};
use support::{serve_device, serve_task, serve_task_alone};

fn specwire(args: &[&str]) -> Output {
    support::specwire()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run specwire")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tasks_file(dir: &Path, succeeds: serde_json::Value) -> PathBuf {
    let path = dir.join("tasks.json");
    std::fs::write(&path, serde_json::json!({"succeeds": succeeds}).to_string()).unwrap();
    path
}

#[test]
fn the_list_names_every_task_case() {
    let output = specwire(&["conformance", "task", "--list"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    for spec in specwire_protocol::conformance::cases_of("task") {
        assert!(listed.contains(spec.id), "{} missing from --list", spec.id);
    }
}

#[test]
fn the_reference_provider_conforms_and_reports_are_written() {
    let dir = scratch("reference");
    let (_provider, endpoint) = serve_task_alone(&[]);
    let tasks = std::fs::write(
        dir.join("tasks.json"),
        r#"{"succeeds": {"serviceName": "DiagnosticsService", "operation": "sleep", "taskParameters": {"durationMs": 100, "steps": 2}},
            "fails": {"serviceName": "DiagnosticsService", "operation": "fail", "taskParameters": {"code": "SIMULATED"}}}"#,
    );
    tasks.unwrap();
    let json = dir.join("report.json");
    let junit = dir.join("junit.xml");
    let html = dir.join("report.html");
    let output = specwire(&[
        "conformance",
        "task",
        "--target",
        &endpoint,
        "--tasks",
        dir.join("tasks.json").to_str().unwrap(),
        "--service",
        "DiagnosticsService",
        "--report",
        &format!("json:{}", json.display()),
        "--junit",
        junit.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["fail"], 0);
    assert_eq!(report["summary"]["harnessError"], 0);
    // The report validates against its own schema.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("schema/reports/conformance-report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuites"));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("task.lifecycle.single-terminal"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_discovery_suite_passes_the_reference_provider_busy_and_idle() {
    let dir = scratch("discovery");
    let port = free_udp_port();
    let mut provider = serve_task(port, &["--heartbeat", "500ms", "--capacity", "2"]);
    // Started once it says where it listens.
    provider.endpoint();
    let port = port.to_string();
    let tasks = tasks_file(
        &dir,
        serde_json::json!({"serviceName": "DiagnosticsService", "operation": "sleep",
                           "taskParameters": {"durationMs": 1500}}),
    );
    let json = dir.join("report.json");
    let output = specwire(&[
        "conformance",
        "discovery",
        "--discovery-port",
        &port,
        "--heartbeat-wait",
        "3s",
        "--tasks",
        tasks.to_str().unwrap(),
        "--load-tasks",
        "4",
        "--report",
        &format!("json:{}", json.display()),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let total = specwire_protocol::conformance::cases_of("discovery").count();
    assert_eq!(report["summary"]["pass"], total, "{}", text(&output));
    // Without --tasks, the busy provider's load cannot be seen: that case
    // skips and says which option it needs.
    let output = specwire(&[
        "conformance",
        "discovery",
        "--discovery-port",
        &port,
        "--heartbeat-wait",
        "3s",
        "--only",
        "discovery.advertisement.load-range",
    ]);
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("skip") && shown.contains("--tasks"),
        "{shown}"
    );
    // The task options belong to --tasks.
    let output = specwire(&[
        "conformance",
        "discovery",
        "--discovery-port",
        &port,
        "--api-key",
        "k",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--tasks"), "{}", text(&output));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_third_party_provider_fails_by_case_id_and_the_bundle_replays() {
    let Some(python) = interop_python() else {
        return;
    };
    let mut command = Command::new(python);
    command
        .arg(workspace().join("interop/minimal_provider.py"))
        .args(["--port", "0"]);
    let mut provider = Running::start(&mut command);
    let endpoint = provider.endpoint();
    let dir = scratch("python");
    let tasks = tasks_file(
        &dir,
        serde_json::json!({"serviceName": "AnyService", "operation": "anything"}),
    );
    let replays = dir.join("replays");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "conformance",
            "task",
            "--target",
            &endpoint,
            "--tasks",
            tasks.to_str().unwrap(),
            "--replay-dir",
            replays.to_str().unwrap(),
            // The same generated sessions in every run: their schema-drawn
            // messages decide what this provider gets wrong.
            "--seed",
            "1",
        ];
        args.extend_from_slice(extra);
        specwire(&args)
    };
    // The minimal provider answers CancelTask with UNKNOWN_TYPE: a MUST failure.
    let output = run(&[]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("FAIL   MUST   task.cancel.unknown"),
        "{shown}"
    );
    assert!(shown.contains("task.lifecycle.single-terminal"), "{shown}");
    let bundle = std::fs::read_dir(&replays)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().contains("task.cancel.unknown"))
        .expect("a replay bundle for task.cancel.unknown");
    // The bundle reproduces the failure.
    let replayed = specwire(&["conformance", "replay", bundle.to_str().unwrap()]);
    assert_eq!(replayed.status.code(), Some(1), "{}", text(&replayed));
    assert!(
        text(&replayed).contains("FAIL again"),
        "{}",
        text(&replayed)
    );

    // Known failures listed in --expect-fail do not fail the run; a listed
    // case that passes is reported as stale.
    let failing: Vec<String> = shown
        .lines()
        .filter(|line| line.trim_start().starts_with("FAIL   MUST"))
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let expect = dir.join("expected-failures.txt");
    std::fs::write(
        &expect,
        format!("# known\n{}\ntask.websocket.ping\n", failing.join("\n")),
    )
    .unwrap();
    let output = run(&["--expect-fail", expect.to_str().unwrap()]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("FAIL (expected)"), "{shown}");
    assert!(shown.contains("stale"), "{shown}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_errors_are_explained() {
    let dir = scratch("usage");
    let bad_expect = dir.join("bad.txt");
    std::fs::write(&bad_expect, "task.no.such-case\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["conformance", "task"], "--target"),
        (
            &["conformance", "task", "--target", "http://127.0.0.1:1"],
            "not a ws://",
        ),
        (
            &[
                "conformance",
                "task",
                "--target",
                "ws://127.0.0.1:1",
                "--report",
                "xml:x",
            ],
            "json:PATH",
        ),
        (
            &[
                "conformance",
                "task",
                "--target",
                "ws://127.0.0.1:1",
                "--expect-fail",
                bad_expect.to_str().unwrap(),
            ],
            "not a case ID",
        ),
        (&["conformance", "uart", "--list"], "no conformance cases"),
    ];
    for (args, expected) in cases {
        let output = specwire(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    // An unreachable target is a harness error (exit 3), not a failure.
    let output = specwire(&[
        "conformance",
        "task",
        "--target",
        "ws://127.0.0.1:9",
        "--only",
        "task.query",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("cannot connect"),
        "{}",
        text(&output)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `specwire serve subscription` with `secret` in a file, its limits and a
/// fast heartbeat, and its endpoint.
fn serve_subscription(secret: &Path) -> (Running, String) {
    let mut command = support::specwire();
    command.args([
        "serve",
        "subscription",
        "--bind",
        "127.0.0.1:0",
        "--secret-file",
        secret.to_str().unwrap(),
        "--ping-interval",
        "300ms",
        "--user-limit",
        "3",
        "--ip-limit",
        "20",
        "--rate-limit",
        "40",
    ]);
    let mut hub = Running::start(&mut command);
    let endpoint = hub.endpoint();
    (hub, endpoint)
}

#[test]
fn the_reference_hub_conforms_to_the_subscription_suite() {
    let dir = scratch("subscription");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "cli-test-secret\n").unwrap();
    let (_hub, endpoint) = serve_subscription(&secret);
    let listed = specwire(&["conformance", "subscription", "--list"]);
    for spec in specwire_protocol::conformance::cases_of("subscription") {
        assert!(text(&listed).contains(spec.id), "{} missing", spec.id);
    }
    let json = dir.join("report.json");
    let output = specwire(&[
        "conformance",
        "subscription",
        "--target",
        &endpoint,
        "--secret-file",
        secret.to_str().unwrap(),
        "--ping-wait",
        "3s",
        "--user-limit",
        "3",
        "--ip-limit",
        "20",
        "--rate-limit",
        "40",
        "--report",
        &format!("json:{}", json.display()),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = specwire_protocol::conformance::cases_of("subscription").count();
    assert_eq!(report["summary"]["pass"], cases, "{report:#}");
    // Without the limits and the heartbeat wait, exactly those cases skip;
    // the secret may come from the environment.
    let output = support::specwire()
        .args(["conformance", "subscription", "--target", &endpoint])
        .env("SPECWIRE_JWT_SECRET", "cli-test-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("{cases} cases: {} passed", cases - 4)),
        "{}",
        text(&output)
    );
    // A bundle of a subscription case replays against the hub (it passes
    // there now).
    let bundle = dir.join("bundle.json");
    let written = serde_json::json!({
        "format": "specwire-conformance-replay/1", "family": "subscription",
        "case": "subscription.routing.task-to-project", "target": endpoint,
        "reason": "an earlier failure", "transcript": []
    });
    std::fs::write(&bundle, written.to_string()).unwrap();
    let output = specwire(&[
        "conformance",
        "replay",
        bundle.to_str().unwrap(),
        "--secret-file",
        secret.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("passes now"), "{}", text(&output));
    // A wrong secret is a harness error that says so, not a failure.
    let output = specwire(&[
        "conformance",
        "subscription",
        "--target",
        &endpoint,
        "--secret",
        "not-the-secret",
        "--only",
        "subscription.routing.task-to-task",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("--secret"), "{}", text(&output));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn subscription_usage_errors_are_explained() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["conformance", "subscription", "--secret", "s"],
            "--target",
        ),
        (
            &[
                "conformance",
                "subscription",
                "--target",
                "ws://127.0.0.1:1/ws/user",
                "--secret",
                "s",
            ],
            "has a path",
        ),
        (
            &[
                "conformance",
                "subscription",
                "--target",
                "ws://127.0.0.1:1",
                "--secret",
                "s",
                "--user-limit",
                "0",
            ],
            "at least 1",
        ),
    ];
    for (args, expected) in cases {
        let output = specwire(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    let output = support::specwire()
        .args([
            "conformance",
            "subscription",
            "--target",
            "ws://127.0.0.1:1",
        ])
        .env_remove("SPECWIRE_JWT_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("no JWT secret"), "{}", text(&output));
}

#[test]
fn the_reference_hub_conforms_to_the_device_suite() {
    let dir = scratch("device");
    let registry = workspace().join("schema/device/commands.json");
    let registry = registry.to_str().unwrap();
    let (_hub, endpoint) = serve_device(&["--ping-interval", "200ms", "--stale-timeout", "1s"]);
    let listed = specwire(&["conformance", "device", "--list"]);
    for spec in specwire_protocol::conformance::cases_of("device") {
        assert!(text(&listed).contains(spec.id), "{} missing", spec.id);
    }
    let json = dir.join("report.json");
    let output = specwire(&[
        "conformance",
        "device",
        "--target",
        &endpoint,
        "--registry",
        registry,
        "--ping-interval",
        "200ms",
        "--stale-timeout",
        "1s",
        "--replay-dir",
        dir.join("replays").to_str().unwrap(),
        "--report",
        &format!("json:{}", json.display()),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = specwire_protocol::conformance::cases_of("device").count();
    assert_eq!(report["summary"]["pass"], cases, "{report:#}");
    // Without the hub's durations, exactly the three liveness cases skip,
    // and say which option they need.
    let output = specwire(&[
        "conformance",
        "device",
        "--target",
        &endpoint,
        "--registry",
        registry,
        "--replay-dir",
        dir.join("replays").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let shown = text(&output);
    assert!(
        shown.contains(&format!("{cases} cases: {} passed", cases - 3)),
        "{shown}"
    );
    assert!(shown.contains("--stale-timeout"), "{shown}");
    // A bundle of a device case replays against the hub (it passes there
    // now); the registry comes with the replay.
    let bundle = dir.join("bundle.json");
    let written = serde_json::json!({
        "format": "specwire-conformance-replay/1", "family": "device",
        "case": "device.command.to-all", "target": endpoint,
        "reason": "an earlier failure", "transcript": []
    });
    std::fs::write(&bundle, written.to_string()).unwrap();
    let output = specwire(&[
        "conformance",
        "replay",
        bundle.to_str().unwrap(),
        "--registry",
        registry,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("passes now"), "{}", text(&output));
    // Without the registry, a replay is a usage error that says so.
    let output = specwire(&["conformance", "replay", bundle.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--registry"), "{}", text(&output));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_usage_errors_are_explained() {
    let registry = workspace().join("schema/device/commands.json");
    let registry = registry.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["conformance", "device", "--registry", registry],
            "--target",
        ),
        (
            &["conformance", "device", "--target", "ws://127.0.0.1:1"],
            "--registry",
        ),
        (
            &[
                "conformance",
                "device",
                "--target",
                "ws://127.0.0.1:1",
                "--registry",
                "no-such-registry.json",
            ],
            "no-such-registry.json",
        ),
        (
            &[
                "conformance",
                "device",
                "--target",
                "ws://127.0.0.1:1",
                "--registry",
                registry,
                "--stale-timeout",
                "0s",
            ],
            "above zero",
        ),
    ];
    for (args, expected) in cases {
        let output = specwire(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    // A hub that is not there is a harness error (exit 3), not a failure.
    let output = specwire(&[
        "conformance",
        "device",
        "--target",
        "ws://127.0.0.1:1",
        "--registry",
        registry,
        "--timeout",
        "1s",
        "--replay-dir",
        scratch("device-unreachable").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("cannot connect"),
        "{}",
        text(&output)
    );
}

/// `specwire serve chat` on `127.0.0.1:0` with `extra` options, once it
/// listens, and its `HOST:PORT`.
fn serve_chat(extra: &[&str]) -> (Running, String) {
    let mut command = support::specwire();
    command.args(["serve", "chat", "--bind", "127.0.0.1:0"]);
    command.args(extra);
    let mut server = Running::start(&mut command);
    let endpoint = server.endpoint();
    let address = endpoint
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("a tcp:// endpoint, got {endpoint}"))
        .to_owned();
    (server, address)
}

#[test]
fn the_reference_server_conforms_to_the_chat_suite_with_either_choice() {
    let dir = scratch("chat");
    let listed = specwire(&["conformance", "chat", "--list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    for spec in specwire_protocol::conformance::cases_of("chat") {
        assert!(text(&listed).contains(spec.id), "{} missing", spec.id);
    }
    let cases = specwire_protocol::conformance::cases_of("chat").count();
    for choices in [
        &[][..],
        &["--on-taken", "suffix", "--users", "address", "--welcome"][..],
    ] {
        let (_server, address) = serve_chat(choices);
        let json = dir.join("report.json");
        let junit = dir.join("report.xml");
        let output = specwire(&[
            "conformance",
            "chat",
            "--target",
            &address,
            "--replay-dir",
            dir.join("replays").to_str().unwrap(),
            "--report",
            &format!("json:{}", json.display()),
            "--junit",
            junit.to_str().unwrap(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{choices:?}: {}",
            text(&output)
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["summary"]["pass"], cases, "{choices:?}: {report:#}");
        assert!(std::fs::read_to_string(&junit)
            .unwrap()
            .contains("chat.order.pipelined"));
        // A bundle of a chat case replays against the server (it passes
        // there now), `tcp://` or not.
        let bundle = dir.join("bundle.json");
        let written = serde_json::json!({
            "format": "specwire-conformance-replay/1", "family": "chat",
            "case": "chat.leave.announced", "target": format!("tcp://{address}"),
            "reason": "an earlier failure", "transcript": []
        });
        std::fs::write(&bundle, written.to_string()).unwrap();
        let output = specwire(&["conformance", "replay", bundle.to_str().unwrap()]);
        assert!(output.status.success(), "{}", text(&output));
        assert!(text(&output).contains("passes now"), "{}", text(&output));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn chat_usage_errors_are_explained() {
    let cases: [(&[&str], &str); 3] = [
        (&["conformance", "chat"], "--target HOST:PORT"),
        (
            &["conformance", "chat", "--target", "ws://127.0.0.1:1"],
            "not HOST:PORT",
        ),
        (
            &[
                "conformance",
                "chat",
                "--target",
                "127.0.0.1:1",
                "--timeout",
                "0s",
            ],
            "above zero",
        ),
    ];
    for (args, expected) in cases {
        let output = specwire(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    // A server that is not there is a harness error (exit 3), not a failure.
    let output = specwire(&[
        "conformance",
        "chat",
        "--target",
        "127.0.0.1:1",
        "--timeout",
        "1s",
        "--replay-dir",
        scratch("chat-unreachable").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("cannot connect"),
        "{}",
        text(&output)
    );
}
