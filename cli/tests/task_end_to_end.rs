//! `specwire serve task`, `discover`, `task assign` and `demo task` as a
//! user runs them: separate processes on loopback, a private discovery
//! port per test, every wait bounded.

mod support;

use std::path::Path;

use specwire_testsupport::{free_udp_port, scratch, Pipe, Running, SelfSigned};
use support::{serve_task, serve_task_alone, specwire};

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

fn write_png(path: &Path, width: u32, height: u32) {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 77])
    });
    image.save(path).unwrap();
}

#[test]
fn serve_discover_and_resize_a_real_image() {
    let port = free_udp_port();
    let dir = scratch("resize");
    let input = dir.join("in.png");
    let output = dir.join("out.png");
    write_png(&input, 200, 150);
    let mut provider = serve_task(port, &[]);
    let endpoint = provider.endpoint();

    let discovered = Running::start(specwire().args([
        "discover",
        "--discovery-port",
        &port.to_string(),
        "--count",
        "2",
        "--wait",
        "15s",
        "--format",
        "json",
    ]));
    let (status, stdout, stderr) = discovered.finish();
    assert!(status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DiagnosticsService", "ImageProcessingService"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|entry| entry["endpoint"] == endpoint.as_str() && entry["status"] == "Online"));

    let assigned = Running::start(specwire().args([
        "task",
        "assign",
        "--discovery-port",
        &port.to_string(),
        "--service",
        "ImageProcessingService",
        "--op",
        "resizeImage",
        "--param",
        &format!("inputPath={}", input.display()),
        "--param",
        &format!("outputPath={}", output.display()),
        "--param",
        "width=64",
        "--param",
        "height=40",
    ]));
    let (status, stdout, stderr) = assigned.finish();
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Not a terminal: progress comes as plain lines.
    assert!(stderr.contains("progress"), "{stderr}");
    assert!(stderr.contains("resizing"), "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["width"], 64);
    assert_eq!(result["height"], 40);
    assert_eq!(png_size(&output), (64, 40));

    // The seed's failure: a missing input file.
    let missing = Running::start(specwire().args([
        "task",
        "assign",
        "--endpoint",
        &endpoint,
        "--service",
        "ImageProcessingService",
        "--op",
        "resizeImage",
        "--param",
        &format!("inputPath={}", dir.join("missing.png").display()),
        "--param",
        &format!("outputPath={}", dir.join("never.png").display()),
        "--param",
        "width=1",
        "--param",
        "height=1",
    ]));
    let (status, _, stderr) = missing.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FILE_NOT_FOUND"), "{stderr}");

    provider.signal("TERM");
    let (status, _, stderr) = provider.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped after 2 task run(s)"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_provider_killed_mid_task_never_leaves_the_client_hanging() {
    let port = free_udp_port();
    let mut first = serve_task(port, &[]);
    let first_endpoint = first.endpoint();
    let mut second = serve_task(port, &[]);
    let second_endpoint = second.endpoint();

    let mut client = Running::start(specwire().args([
        "task",
        "assign",
        "--discovery-port",
        &port.to_string(),
        "--service",
        "DiagnosticsService",
        "--op",
        "sleep",
        "--param",
        "durationMs=2000",
        "--param",
        "steps=20",
        "--retries",
        "2",
    ]));
    // Which provider was chosen?
    let chosen = client.wait_for(Pipe::Stderr, |line| line.contains(" at ws://"));
    // Kill it once the task is running there.
    client.wait_for(Pipe::Stderr, |line| line.contains("Processing"));
    let (victim, survivor, survivor_endpoint) = if chosen.contains(&first_endpoint) {
        (first, second, second_endpoint)
    } else {
        assert!(chosen.contains(&second_endpoint), "{chosen}");
        (second, first, first_endpoint)
    };
    drop(victim); // SIGKILL: no Offline, no close frames.
    let (status, stdout, stderr) = client.finish();
    // The client fails over to the other provider and completes there.
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("trying another provider"), "{stderr}");
    assert!(stderr.contains(&survivor_endpoint), "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["sleptMs"], 2000);
    // The survivor ran it exactly once.
    survivor.signal("TERM");
    let (status, _, stderr) = survivor.finish();
    assert!(status.success());
    assert!(stderr.contains("stopped after 1 task run(s)"), "{stderr}");
}

#[test]
fn without_failover_a_killed_provider_is_reported() {
    let port = free_udp_port();
    let mut provider = serve_task(port, &["--no-discovery"]);
    let endpoint = provider.endpoint();
    let mut client = Running::start(specwire().args([
        "task",
        "assign",
        "--endpoint",
        &endpoint,
        "--service",
        "DiagnosticsService",
        "--op",
        "sleep",
        "--param",
        "durationMs=60000",
        "--retries",
        "2",
    ]));
    client.wait_for(Pipe::Stderr, |line| line.contains("Processing"));
    drop(provider);
    let (status, _, stderr) = client.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unavailable after 2 attempts"), "{stderr}");
}

#[test]
fn discover_watch_sees_offline_and_expiry() {
    let port = free_udp_port();
    let port_text = port.to_string();
    let mut watch = Running::start(specwire().args([
        "discover",
        "--discovery-port",
        &port_text,
        "--watch",
        "--format",
        "json",
        "--heartbeat",
        "200ms",
    ]));
    // A provider that stops gracefully says Offline.
    let mut graceful = serve_task(port, &["--heartbeat", "200ms"]);
    let graceful_endpoint = graceful.endpoint();
    watch.wait_for(Pipe::Stdout, |line| {
        line.contains("\"added\"") && line.contains(&graceful_endpoint)
    });
    graceful.signal("TERM");
    watch.wait_for(Pipe::Stdout, |line| {
        line.contains("\"offline\"") && line.contains(&graceful_endpoint)
    });
    // A provider that is killed goes silent and expires after 3 missed
    // heartbeats.
    let mut killed = serve_task(port, &["--heartbeat", "200ms"]);
    let killed_endpoint = killed.endpoint();
    watch.wait_for(Pipe::Stdout, |line| {
        line.contains("\"added\"") && line.contains(&killed_endpoint)
    });
    drop(killed);
    let expired = watch.wait_for(Pipe::Stdout, |line| {
        line.contains("\"expired\"") && line.contains(&killed_endpoint)
    });
    let event: serde_json::Value = serde_json::from_str(&expired).unwrap();
    assert_eq!(event["service"]["status"], "Online");
    let _ = graceful.finish();
}

#[test]
fn api_keys_and_tls_from_the_command_line() {
    let certificate = SelfSigned::new();
    let (cert, key) = (&certificate.cert, &certificate.key);
    let (provider, endpoint) = serve_task_alone(&[
        "--api-key",
        "s3cret",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(endpoint.starts_with("wss://127.0.0.1:"), "{endpoint}");
    let assign = |extra: &[&str]| {
        let mut command = specwire();
        command.args([
            "task",
            "assign",
            "--endpoint",
            &endpoint,
            "--service",
            "DiagnosticsService",
            "--op",
            "echo",
            "--param",
            "word=hello",
            "--retries",
            "1",
        ]);
        command.args(extra);
        Running::start(&mut command).finish()
    };
    let cert_text = cert.to_str().unwrap();
    let (status, stdout, stderr) = assign(&["--ca-cert", cert_text, "--api-key", "s3cret"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["word"],
        "hello"
    );
    let (status, _, stderr) = assign(&["--ca-cert", cert_text, "--api-key", "wrong"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("refused authentication"), "{stderr}");
    // Without trusting the certificate, the TLS handshake fails cleanly.
    let (status, _, stderr) = assign(&["--api-key", "s3cret"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("unavailable"), "{stderr}");
    provider.signal("INT");
    let (status, _, _) = provider.finish();
    assert!(status.success());
}

#[test]
fn serve_explains_bad_configuration() {
    let cases: [(&[&str], &str); 3] = [
        (&["--tls-cert", "/nonexistent/cert.pem"], "--tls-key"),
        (
            &[
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "/nonexistent/cert.pem",
        ),
        (
            &["--acl", "/nonexistent/acl.json"],
            "--acl /nonexistent/acl.json",
        ),
    ];
    for (extra, expected) in cases {
        let mut command = specwire();
        command.args(["serve", "task", "--bind", "127.0.0.1:0", "--no-discovery"]);
        command.args(extra);
        let (status, _, stderr) = Running::start(&mut command).finish();
        assert_eq!(status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}

#[test]
fn task_assign_explains_bad_parameters_and_missing_providers() {
    let port = free_udp_port().to_string();
    let (status, _, stderr) = Running::start(specwire().args([
        "task",
        "assign",
        "--service",
        "S",
        "--op",
        "o",
        "--param",
        "novalue",
        "--endpoint",
        "ws://127.0.0.1:9",
    ]))
    .finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("K=V"), "{stderr}");
    let (status, _, stderr) = Running::start(specwire().args([
        "task",
        "assign",
        "--service",
        "NoSuchService",
        "--op",
        "o",
        "--discovery-port",
        &port,
        "--discovery-timeout",
        "300ms",
    ]))
    .finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no provider of NoSuchService"), "{stderr}");
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = scratch("demo");
    let (status, stdout, stderr) =
        Running::start(specwire().args(["demo", "task", "--dir", dir.to_str().unwrap()])).finish();
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("FILE_NOT_FOUND"), "{stdout}");
    assert!(stdout.contains("is Offline"), "{stdout}");
    assert_eq!(png_size(&dir.join("resized.png")), (320, 240));
    assert!(dir.join("blurred.jpg").exists());
    let _ = std::fs::remove_dir_all(dir);
}
