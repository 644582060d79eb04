//! The device hub's web console in a real browser: `specwire serve device`,
//! simulated devices (`specwire simulate devices`), and the page served at
//! `GET /` driven in headless Chromium by `web/console-test.mjs`
//! (playwright-core). The browser is set up by `web/setup-browser-env`;
//! `SPECWIRE_SKIP_BROWSER_TESTS=1` skips these tests.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use specwire_testsupport::{browser_env, scratch, BrowserEnv, Pipe, Running};
use support::{serve_device, specwire};

/// The longest a browser run may take in all: each of its own waits is
/// bounded by `--timeout`, this bounds the whole.
const BROWSER_PATIENCE: Duration = Duration::from_secs(180);

/// The console's address for the hub at `endpoint` (`ws://ADDR`).
fn console_url(endpoint: &str) -> String {
    let address = endpoint
        .strip_prefix("ws://")
        .expect("the hub listens on ws://");
    format!("http://{address}/")
}

/// `GET path` from the hub at `endpoint`, as JSON.
fn get_json(endpoint: &str, path: &str) -> Value {
    let address = endpoint.trim_start_matches("ws://");
    let mut stream = TcpStream::connect(address).expect("connect to the hub");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{path}: {error}: {body}"))
}

/// Polls `/devices.json` until `check` holds for it, for at most 10 s.
fn devices_until(endpoint: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let devices = get_json(endpoint, "/devices.json")
            .as_array()
            .expect("devices.json is an array")
            .clone();
        if check(&devices) {
            return devices;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; devices.json: {devices:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last data of `id` in a `/devices.json` list.
fn last_data<'a>(devices: &'a [Value], id: &str) -> Option<&'a str> {
    devices
        .iter()
        .find(|device| device["id"] == id)
        .and_then(|device| device["lastData"].as_str())
}

/// Runs `web/console-test.mjs` with `args`; its JSON result (checked
/// `ok`), with everything it said in the failure message otherwise.
fn run_console_test(browser: &BrowserEnv, out: &Path, args: &[&str]) -> Value {
    let mut command = browser.node("console-test.mjs");
    command.arg("--out").arg(out).args(args);
    let started = Instant::now();
    let (status, stdout, stderr) = Running::start(&mut command).finish_within(BROWSER_PATIENCE);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!("console-test.mjs printed no JSON ({status}):\n{stdout}\n{stderr}")
        });
    eprintln!(
        "console-test.mjs took {:.1} s: {result}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success() && result["ok"] == true,
        "the console test failed ({status}): {}\nconsole errors: {}\nstream errors: {}\nfailure screenshot: {}\nstderr:\n{stderr}",
        result["error"],
        result["consoleErrors"],
        result["streamErrors"],
        result["failureScreenshot"],
    );
    result
}

/// Checks the screenshot is a PNG and prints its path.
fn screenshot_of(result: &Value) -> String {
    let path = result["screenshot"]
        .as_str()
        .expect("a screenshot path")
        .to_owned();
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{path} is not a PNG"
    );
    println!("screenshot: {path}");
    path
}

/// A colour no earlier run used, so the line it causes is this run's.
fn fresh_colour() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:06x}", (nanos ^ std::process::id()) & 0xff_ffff)
}

#[test]
fn a_command_sent_from_the_console_reaches_the_simulated_device() {
    let Some(browser) = browser_env() else { return };
    let (_hub, endpoint) = serve_device(&[]);
    let _devices = Running::start(specwire().args([
        "simulate", "devices", "--target", &endpoint, "--count", "3", "--rate", "2", "--prefix",
        "web",
    ]));
    // A subscriber of our own, subscribed once data reaches it.
    let mut watcher = Running::start(specwire().args(["device", "watch", "--target", &endpoint]));
    watcher.wait_for(Pipe::Stdout, |line| line.starts_with("web-"));

    let out = scratch("device-console");
    let colour = fresh_colour();
    let result = run_console_test(
        &browser,
        &out,
        &[
            "--url",
            &console_url(&endpoint),
            "--device",
            "web-0002",
            "--command",
            "led",
            "--param",
            &colour,
            "--expect-devices",
            "3",
        ],
    );

    // The page loaded and listed the devices.
    assert_eq!(result["title"], "specwire device console");
    assert_eq!(result["devicesListed"], 3, "{result}");
    assert_eq!(result["row"][0], "web-0002", "{result}");
    // The page sent the command, and the device's answer came back to it.
    let applied = format!("web-0002:applied=led:{colour}");
    assert_eq!(result["sent"], format!("cmd:web-0002:led:{colour}"));
    assert_eq!(result["applied"], applied.as_str(), "{result}");
    assert!(
        result["rowAfter"][1]
            .as_str()
            .is_some_and(|data| data.contains(&format!("led={colour}"))),
        "{result}"
    );
    screenshot_of(&result);

    // From the Rust side: our subscriber saw the device apply it, and the
    // hub's list shows the device's readings with the new colour, and only
    // that device's.
    watcher.wait_for(Pipe::Stdout, |line| line == applied);
    let devices = devices_until(&endpoint, "web-0002 to report the colour", |devices| {
        last_data(devices, "web-0002").is_some_and(|data| data.contains(&format!("led={colour}")))
    });
    for other in ["web-0001", "web-0003"] {
        let data = last_data(&devices, other).unwrap_or_else(|| panic!("{other} is listed"));
        assert!(
            !data.contains(&colour),
            "{other} got the command too: {data}"
        );
    }
}

/// The acceptance point of the device family: a thousand simulated devices
/// on one hub, all listed by the console in headless Chromium, and a
/// command to one of them still goes through.
/// About 10 s on a 2-core machine (5 s for the devices to register, 5 s in
/// the browser), 13 s with both cores busy elsewhere.
#[test]
fn a_thousand_simulated_devices_are_listed_by_the_console() {
    let Some(browser) = browser_env() else { return };
    let started = Instant::now();
    let (_hub, endpoint) = serve_device(&[]);
    let mut devices = Running::start(specwire().args([
        "simulate", "devices", "--target", &endpoint, "--count", "1000", "--rate", "1",
    ]));
    devices.wait_for(Pipe::Stderr, |line| line.contains(" 1000/1000 connected"));
    let listed = devices_until(&endpoint, "1000 registered devices", |devices| {
        devices.len() == 1000
    });
    assert_eq!(listed.len(), 1000);
    eprintln!(
        "1000 devices registered after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let out = scratch("device-console-1000");
    let colour = fresh_colour();
    let result = run_console_test(
        &browser,
        &out,
        &[
            "--url",
            &console_url(&endpoint),
            "--expect-devices",
            "1000",
            "--device",
            "sim-0500",
            "--param",
            &colour,
            "--filter-stream",
            "--screenshot",
            "console-1000.png",
            "--timeout",
            "60000",
            "--deadline",
            "150000",
        ],
    );
    assert_eq!(result["devicesListed"], 1000, "{result}");
    assert_eq!(result["countsText"], "1000 devices", "{result}");
    assert_eq!(
        result["applied"],
        format!("sim-0500:applied=led:{colour}").as_str(),
        "{result}"
    );
    screenshot_of(&result);
    eprintln!(
        "the whole run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
