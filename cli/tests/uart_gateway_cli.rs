//! The uart gateway from the command line: `simulate uart-module` on a
//! pty, `serve uart-gateway` on its link, and `specwire uart` asking the
//! gateway, as separate processes.

mod support;

use std::time::{Duration, Instant};

use specwire_protocol::JsonProtocol;
use specwire_testsupport::{browser_env, temp_dir, Pipe, Running, PATIENCE};
use support::{output, specwire};

fn uart(target: &str, args: &[&str]) -> (i32, String, String) {
    output(specwire().args(["uart", "--target", target]).args(args))
}

#[test]
fn the_client_reads_the_store_relays_commands_and_listens() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let mut module = Running::start(
        specwire()
            .args(["simulate", "uart-module", "--pty-link"])
            .arg(&link)
            .args([
                "--nodes",
                "2",
                "--data-interval",
                "200ms",
                "--net-interval",
                "300ms",
            ]),
    );
    module.wait_for(Pipe::Stdout, |line| line.starts_with("module on "));
    let mut gateway = Running::start(
        specwire()
            .args(["serve", "uart-gateway", "--bind", "127.0.0.1:0"])
            .args(["--monitor", "127.0.0.1:0", "--serial"])
            .arg(&link),
    );
    let endpoint = gateway.endpoint();
    let target = endpoint.trim_start_matches("tcp://");
    let monitor = gateway.wait_for(Pipe::Stdout, |line| line.starts_with("monitor on ws://"));
    let monitor = monitor
        .trim_start_matches("monitor on ws://")
        .trim_end_matches('/');
    let snapshot = http_get(monitor);
    assert!(snapshot.contains(r#""type":"snapshot""#), "{snapshot}");

    // The nodes become active as NET arrives; ask until they are.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, stdout, stderr) = uart(target, &["active"]);
        assert_eq!(code, 0, "{stderr}");
        if stdout.trim() == "2" {
            break;
        }
        assert!(Instant::now() < deadline, "never 2 active nodes: {stdout}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stdout, stderr) = uart(target, &["nstat", "A"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().count() == 2 && stdout.starts_with("0x0001  "),
        "{stdout}"
    );

    let (code, stdout, stderr) = uart(target, &["get", "battery", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(value["name"], "battery");
        assert!(value["text"].as_str().unwrap().ends_with(" %"), "{line}");
    }

    assert_eq!(uart(target, &["send", "0x0001", "01 02 ff"]).0, 0);
    let (code, _, stderr) = uart(target, &["send", "0x0777", "01"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("SEND- failed"), "{stderr}");
    let (code, _, stderr) = uart(target, &["get", "nothing"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(uart("127.0.0.1:9", &["active"]).0, 3);

    let (code, stdout, stderr) = uart(target, &["listen", "--count", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.lines().all(|line| line.starts_with("0x000")),
        "{stdout}"
    );

    gateway.signal("TERM");
    let (status, _, stderr) = gateway.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("frame(s) in"), "{stderr}");
}

/// A dashboard's view: a page in headless Chromium (`web/monitor-test.mjs`)
/// opens the monitor's WebSocket and reads it; every message it got is
/// checked against the monitor schema. Skipped with
/// `SPECWIRE_SKIP_BROWSER_TESTS=1`.
#[test]
fn a_page_in_chromium_reads_the_monitor() {
    let Some(browser) = browser_env() else { return };
    let dir = temp_dir();
    let link = dir.path().join("module");
    let mut module = Running::start(
        specwire()
            .args(["simulate", "uart-module", "--pty-link"])
            .arg(&link)
            .args(["--nodes", "2", "--data-interval", "100ms"]),
    );
    module.wait_for(Pipe::Stdout, |line| line.starts_with("module on "));
    let mut gateway = Running::start(
        specwire()
            .args(["serve", "uart-gateway", "--bind", "127.0.0.1:0"])
            .args(["--monitor", "127.0.0.1:0", "--serial"])
            .arg(&link),
    );
    let monitor = gateway.wait_for(Pipe::Stdout, |line| line.starts_with("monitor on ws://"));
    let url = monitor.trim_start_matches("monitor on ").to_owned();

    let mut page = browser.node("monitor-test.mjs");
    page.args(["--url", &url, "--count", "12", "--timeout", "20000"]);
    let (status, stdout, stderr) =
        Running::start(&mut page).finish_within(Duration::from_secs(120));
    let result: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!("monitor-test.mjs printed no JSON ({status}):\n{stdout}\n{stderr}")
        });
    assert!(
        status.success() && result["ok"] == true,
        "{result}\n{stderr}"
    );
    let messages = result["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 12);
    assert_eq!(messages[0]["type"], "snapshot");
    for message in messages {
        let text = message.to_string();
        if let Err(error) = specwire_protocol::monitor::Message::from_slice(text.as_bytes()) {
            panic!("the browser got a message outside the monitor schema: {error}\n{text}");
        }
    }
    assert!(messages.iter().any(|m| m["type"] == "data"), "{result}");
}

/// A plain HTTP `GET /` to the monitor: the response.
fn http_get(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the monitor");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the monitor's answer");
    answer
}

#[test]
fn the_uart_demo_and_the_demo_of_every_family_run_and_check_themselves() {
    let (code, stdout, stderr) = output(specwire().args(["demo", "uart"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("F module timeout (as expected)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = output(specwire().arg("demo"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("All five demos passed"), "{stdout}");
}
