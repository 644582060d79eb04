//! Interop with a peer this project did not write: a Python client built
//! on the `websockets` library (interop/task_client.py) runs a scripted
//! session against `specwire serve task` and checks every reply against
//! the schemas with Python's `jsonschema`.
//!
//! The virtualenv comes from `interop/setup-python-env` (PyPI the first
//! time). Set `SPECWIRE_SKIP_PYTHON_INTEROP=1` to skip where Python or
//! PyPI is unavailable; CI does not set it.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use specwire_testsupport::{interop_python, scratch, workspace};
use support::serve_task_alone;

/// Runs the Python client; returns its JSON-line report.
fn python_client(python: &Path, endpoint: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(python)
        .arg(workspace().join("interop/task_client.py"))
        .args(["--endpoint", endpoint, "--timeout", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run interop/task_client.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

fn failed_checks(report: &str) -> Vec<String> {
    report
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|check| check["ok"] == false)
        .map(|check| check.to_string())
        .collect()
}

#[test]
fn a_python_websockets_client_gets_spec_conformant_replies() {
    let Some(python) = interop_python() else {
        return;
    };
    let dir = scratch("interop");
    let input = dir.join("in.png");
    image::RgbImage::from_fn(120, 90, |x, y| image::Rgb([x as u8, y as u8, 9]))
        .save(&input)
        .unwrap();

    let (_provider, endpoint) = serve_task_alone(&[]);
    let resize = serde_json::json!({
        "inputPath": input, "outputPath": dir.join("out.png"), "width": 60, "height": 45
    })
    .to_string();
    let missing = serde_json::json!({
        "inputPath": dir.join("missing.png"), "outputPath": dir.join("x.png"), "width": 1, "height": 1
    })
    .to_string();
    let sessions: [&[&str]; 4] = [
        &[
            "--service",
            "DiagnosticsService",
            "--operation",
            "echo",
            "--params",
            r#"{"word": "hi"}"#,
            "--expect",
            "completed",
        ],
        &[
            "--service",
            "ImageProcessingService",
            "--operation",
            "resizeImage",
            "--params",
            &resize,
            "--expect",
            "completed",
        ],
        &[
            "--service",
            "ImageProcessingService",
            "--operation",
            "resizeImage",
            "--params",
            &missing,
            "--expect-error-code",
            "FILE_NOT_FOUND",
        ],
        &[
            "--service",
            "ImageProcessingService",
            "--operation",
            "noSuchOperation",
            "--expect-error-code",
            "UNKNOWN_OPERATION",
        ],
    ];
    for session in sessions {
        let (ok, report) = python_client(&python, &endpoint, session);
        assert!(
            ok,
            "{session:?}: failed checks {:#?}\nfull report:\n{report}",
            failed_checks(&report)
        );
        assert!(report.lines().count() > 10, "{report}");
    }
    assert!(dir.join("out.png").exists());

    // With an API key the session authenticates first; a wrong key fails.
    let (_guarded, guarded) = serve_task_alone(&["--api-key", "k1"]);
    let echo = [
        "--service",
        "DiagnosticsService",
        "--operation",
        "noop",
        "--expect",
        "completed",
    ];
    let (ok, report) = python_client(
        &python,
        &guarded,
        &[&echo[..], &["--api-key", "k1"]].concat(),
    );
    assert!(ok, "failed checks {:#?}\n{report}", failed_checks(&report));
    let (ok, report) = python_client(
        &python,
        &guarded,
        &[&echo[..], &["--api-key", "wrong"]].concat(),
    );
    assert!(!ok, "{report}");
    assert!(
        failed_checks(&report)
            .iter()
            .any(|check| check.contains("authenticate")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
