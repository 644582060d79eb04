//! `cargo xtask`: project automation that needs no extra tools.
//!
//! - `cargo xtask regenerate`: rewrite `generated/` from `schema/`.
//! - `cargo xtask check`: fail, naming each file, when `generated/` is stale
//!   or a schema, manifest, example or conformance case catalog is invalid.
//!   CI and the test suite run the same check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  regenerate   rewrite generated/ (Rust code and docs) from schema/
  check        exit 1 when generated/ is stale or schema/ has problems";

fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let started = Instant::now();
    match args.first().map(String::as_str) {
        Some("regenerate") => match specwire_codegen::regenerate(&root) {
            Ok(changes) if changes.is_empty() => {
                println!(
                    "generated/ is up to date ({:.1}s)",
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Ok(changes) => {
                for change in &changes {
                    println!("updated: {change}");
                }
                println!(
                    "{} file(s) updated ({:.1}s)",
                    changes.len(),
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some("check") => match specwire_codegen::check(&root) {
            Ok(report) if report.is_clean() => {
                println!(
                    "generated/ matches schema/ ({} files, {:.1}s)",
                    report.files,
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Ok(report) => {
                for problem in &report.problems {
                    eprintln!("error: {problem}");
                }
                for stale in &report.stale {
                    eprintln!("stale: {stale}");
                }
                if !report.stale.is_empty() {
                    eprintln!("run `cargo xtask regenerate` and commit the result");
                }
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
