//! `specwire validate` as a user runs it: exit codes, messages, bad input.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use specwire_testsupport::workspace;

fn specwire(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = support::specwire()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn specwire");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    // Feed stdin from a thread so a large input cannot deadlock on a full
    // stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    output
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn manifest_examples(family: &str) -> Vec<serde_json::Value> {
    let path = workspace()
        .join("schema")
        .join(family)
        .join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("manifest")).expect("json");
    manifest["examples"].as_array().expect("examples").clone()
}

#[test]
fn every_json_example_is_valid_as_ndjson_and_concatenated() {
    for family in ["discovery", "task", "subscription", "chat"] {
        let values: Vec<String> = manifest_examples(family)
            .iter()
            .map(|e| e["value"].to_string())
            .collect();
        for (separator, label) in [("\n", "ndjson"), ("", "concatenated"), ("\n\n  ", "spaced")] {
            let input = values.join(separator);
            let output = specwire(&["validate", "--family", family], input.as_bytes());
            let (stdout, stderr) = text(&output);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{family} {label}:\n{stdout}{stderr}"
            );
            assert_eq!(
                stdout.lines().filter(|l| l.starts_with("valid ")).count(),
                values.len(),
                "{stdout}"
            );
            assert!(
                stdout.ends_with(&format!("{} valid, 0 invalid\n", values.len())),
                "{stdout}"
            );
        }
    }
}

#[test]
fn a_single_message_prints_one_line() {
    let output = specwire(
        &["validate"],
        br#"{"type":"GetStatus","messageId":"m","timestamp":"2025-07-02T11:51:00Z","payload":{"taskId":"t"}}"#,
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output).0, "valid task/GetStatus\n");
}

#[test]
fn invalid_message_names_path_rule_and_expected_value() {
    let input = br#"{"type":"TaskStatusUpdate","messageId":"x","timestamp":"2025-07-02T12:00:00Z","payload":{"taskId":"t","status":"Processing","progressPercentage":101}}"#;
    let output = specwire(&["validate"], input);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout,
        "invalid task/TaskStatusUpdate\n  /payload/progressPercentage: 101 is greater than the maximum of 100 [maximum, expected 100]\n"
    );
}

#[test]
fn json_format_is_machine_readable() {
    let input = b"{\"discoveryType\":\"ClientServiceDiscoveryRequest\",\"clientId\":\"c\",\"timestamp\":\"2025-07-02T11:45:00Z\"}\n{\"discoveryType\":\"ClientServiceDiscoveryRequest\",\"timestamp\":\"2025-07-02T11:45:00Z\"}";
    let output = specwire(&["validate", "--format", "json"], input);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(report["valid"], 1);
    assert_eq!(report["invalid"], 1);
    assert_eq!(
        report["results"][0]["message"],
        "ClientServiceDiscoveryRequest"
    );
    assert_eq!(report["results"][1]["line"], 2);
    assert_eq!(report["results"][1]["violations"][0]["keyword"], "required");
    assert_eq!(report["results"][1]["violations"][0]["instancePath"], "");
}

#[test]
fn bad_input_gets_one_clear_line_and_the_right_exit_code() {
    // Not JSON: invalid (1), the scan goes on with the next line.
    let output = specwire(
        &["validate", "--family", "chat"],
        b"{oops\n{\"method\":\"get_users\",\"params\":{}}\n",
    );
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "invalid chat (#1, line 1): not JSON: key must be a string (line 1, column 2)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("valid chat/GetUsers (#2, line 2)"),
        "{stdout}"
    );

    // Unknown type.
    let output = specwire(&["validate", "--family", "task"], br#"{"type":"Nope"}"#);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output).0,
        "invalid task: unknown task message: no message has /type = \"Nope\"\n"
    );

    // Empty input: usage-level error (2).
    let output = specwire(&["validate"], b"  \n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output).1, "error: standard input is empty\n");

    // Binary garbage.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let output = specwire(&["validate"], &garbage);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).0.contains("not JSON: binary data at byte 0"),
        "{:?}",
        text(&output)
    );

    // Unreadable file.
    let output = specwire(&["validate", "/nonexistent/specwire-input.json"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output)
        .1
        .starts_with("error: cannot read /nonexistent/specwire-input.json"));

    // Unknown family.
    let output = specwire(&["validate", "--family", "nope"], b"{}");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("unknown family \"nope\""));
}

#[test]
fn a_100_mb_file_is_refused_without_reading_it_whole() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("specwire-100mb.json");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(100 * 1000 * 1000).expect("sparse file");
    let output = specwire(&["validate", path.to_str().expect("utf-8 path")], b"");
    let _ = std::fs::remove_file(&path);
    assert_eq!(output.status.code(), Some(2));
    let (_, stderr) = text(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is 100000000 bytes, over the 67108864-byte input limit"),
        "{stderr}"
    );
}

#[test]
fn a_huge_single_value_on_stdin_is_refused() {
    let mut input = b"{\"type\":\"Error\",\"messageId\":\"".to_vec();
    input.resize(input.len() + 70 * 1024 * 1024, b'a');
    let output = specwire(&["validate"], &input);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output)
        .1
        .contains("over the 67108864-byte input limit"));
}

#[test]
fn message_flag_skips_recognition() {
    let output = specwire(
        &[
            "validate",
            "--family",
            "subscription",
            "--message",
            "ServerPing",
        ],
        br#"{"type":"ping"}"#,
    );
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.starts_with("invalid subscription/ServerPing\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\"id\" is a required property"), "{stdout}");
}

#[test]
fn device_lines_validate_one_per_line() {
    let output = specwire(
        &[
            "validate",
            "--family",
            "device",
            "--direction",
            "client-to-server",
        ],
        b"id:lamp-1\r\ns\ncmd:all:led:ff0000\nping\n",
    );
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("valid device/Register (#1, line 1)"));
    assert!(stdout.contains("valid device/Command (#3, line 3)"));
    let output = specwire(
        &[
            "validate",
            "--family",
            "device",
            "--direction",
            "server-to-client",
        ],
        b":leading colon\n",
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn uart_hex_frames_validate() {
    // A SEND- command, a data update with an escaped byte, garbage, and a
    // frame with a bad escape.
    let input = "00 13\nff 53 45 4e 44 2d 01 02 68 69 fe\nff 4d 00 07 02 01 01 00 fa 05 fe\nff 53 fa 07 fe\n";
    let output = specwire(&["validate", "--family", "uart"], input.as_bytes());
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("valid uart/Command/SEND-"), "{stdout}");
    assert!(stdout.contains("valid uart/Reply/M/DataUpdate"), "{stdout}");
    assert!(
        stdout.contains("frame dropped: with a bad escape"),
        "{stdout}"
    );

    let output = specwire(&["validate", "--family", "uart"], b"zz");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.starts_with("error: uart input is not hex"));
}

#[test]
fn shipped_example_from_the_readme_is_valid() {
    let path = workspace().join("examples/task-session.ndjson");
    let output = specwire(&["validate", path.to_str().expect("path")], b"");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
}
