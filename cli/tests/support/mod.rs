//! What the cli tests share: the `specwire` binary under test and the
//! reference provider started with it (`specwire serve task`). Process
//! handling (output lines, bounded waits, kill on drop) is
//! `specwire_testsupport::Running`.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use specwire_testsupport::Running;

/// The `specwire` binary under test, with `NO_COLOR` set.
pub fn specwire() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_specwire"));
    command.env("NO_COLOR", "1");
    command
}

/// Runs `command` to its end with stdin closed: exit code, stdout, stderr.
pub fn output(command: &mut Command) -> (i32, String, String) {
    let output = command.stdin(Stdio::null()).output().expect("run specwire");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `specwire serve task` on `127.0.0.1:0`, advertising on the private
/// discovery port `discovery_port`, with `extra` options.
pub fn serve_task(discovery_port: u16, extra: &[&str]) -> Running {
    let port = discovery_port.to_string();
    let mut command = specwire();
    command.args([
        "serve",
        "task",
        "--bind",
        "127.0.0.1:0",
        "--discovery-port",
        &port,
    ]);
    command.args(extra);
    Running::start(&mut command)
}

/// `specwire serve task` on `127.0.0.1:0` without discovery, with `extra`
/// options, once it listens, and its endpoint.
pub fn serve_task_alone(extra: &[&str]) -> (Running, String) {
    let mut command = specwire();
    command.args(["serve", "task", "--bind", "127.0.0.1:0", "--no-discovery"]);
    command.args(extra);
    let mut provider = Running::start(&mut command);
    let endpoint = provider.endpoint();
    (provider, endpoint)
}

/// `specwire serve subscription` on `127.0.0.1:0` with the secret in
/// `secret_file` and `extra` options, once it listens, and its endpoint.
pub fn serve_subscription(secret_file: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let mut command = specwire();
    command.args([
        "serve",
        "subscription",
        "--bind",
        "127.0.0.1:0",
        "--secret-file",
    ]);
    command.arg(secret_file);
    command.args(extra);
    let mut hub = Running::start(&mut command);
    let endpoint = hub.endpoint();
    (hub, endpoint)
}

/// `specwire serve device` on `127.0.0.1:0` with the project's registry
/// (`schema/device/commands.json`) and `extra` options, once it listens,
/// and its endpoint (`ws://127.0.0.1:PORT`).
pub fn serve_device(extra: &[&str]) -> (Running, String) {
    let registry = specwire_testsupport::workspace().join("schema/device/commands.json");
    let mut command = specwire();
    command.args(["serve", "device", "--bind", "127.0.0.1:0", "--registry"]);
    command.arg(registry);
    command.args(extra);
    let mut hub = Running::start(&mut command);
    let endpoint = hub.endpoint();
    (hub, endpoint)
}
