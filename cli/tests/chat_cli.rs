//! The chat family from the command line: `serve chat`, `chat` (piped and
//! `--send`) and `demo chat`, as separate processes over loopback.

mod support;

use specwire_testsupport::{Pipe, Running};
use support::{output, specwire};

/// `specwire serve chat` on a free port with `extra` options, and its
/// `HOST:PORT`.
fn serve_chat(extra: &[&str]) -> (Running, String) {
    let mut command = specwire();
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

/// `specwire chat` as `username`, reading lines from the test, once joined.
fn join(target: &str, username: &str) -> Running {
    let mut client = Running::start_with_stdin(specwire().args([
        "chat",
        "--target",
        target,
        "--username",
        username,
    ]));
    client.wait_for(Pipe::Stderr, |line| line.contains("joined"));
    client
}

fn send(target: &str, username: &str, texts: &[&str]) -> (i32, String) {
    let mut command = specwire();
    command.args(["chat", "--target", target, "--username", username]);
    for text in texts {
        command.args(["--send", text]);
    }
    let (code, _, stderr) = output(&mut command);
    (code, stderr)
}

#[test]
fn a_piped_client_hears_the_others_and_sends_its_lines() {
    let (server, target) = serve_chat(&[]);
    let mut listener = join(&target, "Lis");

    let (code, stderr) = send(&target, "Bot", &["hello", "  twice  "]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("also here: Lis"), "{stderr}");
    listener.wait_for(Pipe::Stdout, |line| line == "* Bot has joined the chat!");
    listener.wait_for(Pipe::Stdout, |line| line == "<Bot> hello");
    listener.wait_for(Pipe::Stdout, |line| line == "<Bot> twice");
    listener.wait_for(Pipe::Stdout, |line| line == "* Bot has left the chat!");

    listener.write_line("/users");
    listener.wait_for(Pipe::Stdout, |line| line == "* 1 here: Lis");
    let mut other = join(&target, "Other");
    listener.wait_for(Pipe::Stdout, |line| line == "* Other has joined the chat!");
    listener.write_line("a line from the pipe");
    other.wait_for(Pipe::Stdout, |line| line == "<Lis> a line from the pipe");
    other.close_stdin();
    listener.wait_for(Pipe::Stdout, |line| line == "* Other has left the chat!");
    let (status, _, stderr) = other.finish();
    assert!(status.success(), "{stderr}");
    listener.close_stdin();
    let (status, _, stderr) = listener.finish();
    assert!(status.success(), "{stderr}");
    server.signal("INT");
    let (status, _, stderr) = server.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped after 3 message(s)"), "{stderr}");
}

#[test]
fn refusals_exit_1_and_an_unreachable_server_exits_3() {
    let (_server, target) = serve_chat(&[]);
    let (code, stderr) = send(&target, "   ", &["x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Username must be 1 to 50"), "{stderr}");
    let long = "m".repeat(1001);
    let (code, stderr) = send(&target, "Long", &[&long]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Message too long"), "{stderr}");
    let _holder = join(&target, "Taken");
    let (code, stderr) = send(&target, "Taken", &["x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Username already taken"), "{stderr}");
    let (code, stderr) = send("127.0.0.1:9", "x", &["x"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn the_server_s_alternatives_are_flags() {
    let (_server, target) =
        serve_chat(&["--on-taken", "suffix", "--users", "address", "--welcome"]);
    let mut holder = join(&target, "Dup");
    holder.wait_for(Pipe::Stdout, |line| line == "* Welcome to the chat, Dup!");
    let (code, stderr) = send(&target, "Dup", &["two"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("as Dup_"), "{stderr}");
    holder.wait_for(Pipe::Stdout, |line| {
        line.starts_with("<Dup_") && line.ends_with("> two")
    });
    holder.close_stdin();
    let (status, _, stderr) = holder.finish();
    assert!(status.success(), "{stderr}");
}

#[test]
fn the_demo_runs_and_checks_itself() {
    let (code, stdout, stderr) = output(specwire().args(["demo", "chat"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Carol has left the chat!"), "{stdout}");
    assert!(stdout.contains("-32601"), "{stdout}");
}
