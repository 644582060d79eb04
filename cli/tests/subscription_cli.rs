//! The subscription family from the command line: `serve subscription`,
//! `token`, `subscribe`, `publish` and `demo subscription`, as separate
//! processes talking over loopback.

mod support;

use std::io::Write;
use std::process::Stdio;

use specwire_testsupport::{scratch, Pipe, Running};
use support::{output, serve_subscription, specwire};

/// A secret file in a fresh scratch directory.
fn secret_file(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let path = dir.join("hub.secret");
    std::fs::write(&path, "cli test secret\n").unwrap();
    path
}

const EVENT: &str = r#"{"type":"experiment_progress","id":"exp_e1_1","timestamp":"2024-01-15T10:32:00Z","data":{"experimentId":"e1","totalTasks":10,"completedTasks":5,"failedTasks":0,"runningTasks":1,"progressPercent":50.0,"lastUpdated":"2024-01-15T10:32:00Z"}}"#;

#[test]
fn token_needs_a_secret_and_takes_it_from_file_flag_or_environment() {
    let (code, _, stderr) = output(
        specwire()
            .args(["token", "--sub", "alice"])
            .env_remove("SPECWIRE_JWT_SECRET"),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--secret-file"), "{stderr}");
    let file = secret_file("token-secret");
    let (code, from_file, _) = output(
        specwire()
            .args(["token", "--sub", "alice", "--secret-file"])
            .arg(&file),
    );
    assert_eq!(code, 0);
    assert_eq!(from_file.trim().split('.').count(), 3, "{from_file}");
    let (code, from_env, _) = output(
        specwire()
            .args(["token", "--sub", "alice", "--role", "admin"])
            .env("SPECWIRE_JWT_SECRET", "cli test secret"),
    );
    assert_eq!(code, 0);
    assert_ne!(from_env, from_file, "the role is in the token");
}

#[test]
fn published_events_reach_a_piped_subscriber_as_ndjson() {
    let secret = secret_file("pubsub");
    let (hub, endpoint) = serve_subscription(&secret, &[]);
    let mut subscriber = Running::start(
        specwire()
            .args([
                "subscribe",
                &format!("{endpoint}/ws/experiments/e1"),
                "--count",
                "1",
                "--duration",
                "20s",
                "--secret-file",
            ])
            .arg(&secret),
    );
    subscriber.wait_for(Pipe::Stderr, |line| line.contains("subscribed to"));
    let events = secret.with_file_name("events.ndjson");
    std::fs::write(&events, format!("{EVENT}\n")).unwrap();
    let (code, _, stderr) = output(
        specwire()
            .args(["publish", "--target", &endpoint, "--secret-file"])
            .arg(&secret)
            .arg(&events),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("published 1 event"), "{stderr}");
    let (status, stdout, stderr) = subscriber.finish();
    assert!(status.success(), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["id"], "exp_e1_1");
    hub.signal("TERM");
    let (status, _, stderr) = hub.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 event(s) published"), "{stderr}");
}

#[test]
fn publish_checks_events_before_sending_and_needs_an_admin() {
    let secret = secret_file("publish-checks");
    let (_hub, endpoint) = serve_subscription(&secret, &[]);
    // An invalid event: nothing is sent, exit 1.
    let mut child = specwire()
        .args(["publish", "--target", &endpoint, "--secret-file"])
        .arg(&secret)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let broken = EVENT.replace("50.0", "250.0");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{EVENT}\n{broken}\n").as_bytes())
        .unwrap();
    let finished = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert_eq!(finished.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("event 2"), "{stderr}");
    // A token without the admin role is refused by the hub: exit 1.
    let user = output_of_token(&secret, None);
    let events = secret.with_file_name("one.json");
    std::fs::write(&events, EVENT).unwrap();
    let (code, _, stderr) = output(
        specwire()
            .args(["publish", "--target", &endpoint, "--token", &user])
            .arg(&events),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Forbidden"), "{stderr}");
}

fn output_of_token(secret: &std::path::Path, role: Option<&str>) -> String {
    let mut command = specwire();
    command
        .args(["token", "--sub", "someone", "--secret-file"])
        .arg(secret);
    if let Some(role) = role {
        command.args(["--role", role]);
    }
    output(&mut command).1.trim().to_owned()
}

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let (code, _, stderr) = output(
        specwire()
            .args(["serve", "subscription", "--bind", "127.0.0.1:0"])
            .env_remove("SPECWIRE_JWT_SECRET"),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no JWT secret"), "{stderr}");
}

#[test]
fn the_demo_runs_and_checks_its_routing() {
    let (code, stdout, stderr) = output(specwire().args(["demo", "subscription"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("every event reached exactly the subscribers"),
        "{stdout}"
    );
}
