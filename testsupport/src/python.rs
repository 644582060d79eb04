//! The Python interop peers' virtualenv.
//!
//! Interop tests run peers this project did not write (the `websockets`
//! package, ...). `interop/setup-python-env` makes the virtualenv once, in
//! `target/interop-venv`, idempotently, and prints its python's path last.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::paths::workspace;

/// The variable that skips the Python interop tests (machines without
/// PyPI access and without a prepared virtualenv).
pub const SKIP_VARIABLE: &str = "SPECWIRE_SKIP_PYTHON_INTEROP";

/// The virtualenv's python, made if needed; `None` when
/// [`SKIP_VARIABLE`] is set (the test then returns early). Fails the test
/// when the setup script fails, saying how to skip.
pub fn interop_python() -> Option<PathBuf> {
    if std::env::var_os(SKIP_VARIABLE).is_some() {
        eprintln!("{SKIP_VARIABLE} is set: skipping the Python interop test");
        return None;
    }
    let root = workspace();
    let output = Command::new(root.join("interop/setup-python-env"))
        .env("SPECWIRE_PYTHON_ENV", root.join("target/interop-venv"))
        .stdin(Stdio::null())
        .output()
        .expect("run interop/setup-python-env");
    assert!(
        output.status.success(),
        "interop/setup-python-env failed (set {SKIP_VARIABLE}=1 to skip):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout
        .lines()
        .last()
        .expect("interop/setup-python-env prints the python path last")
        .trim()
        .to_owned();
    Some(PathBuf::from(path))
}
