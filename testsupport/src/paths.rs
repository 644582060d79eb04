//! Where the workspace is, for tests that read `schema/`, `examples/` or
//! run the project's scripts, and scratch directories for their files.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `schema/` and `Cargo.toml`).
pub fn workspace() -> PathBuf {
    // This crate sits one level below the root, like every crate here.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsupport sits inside the workspace")
        .to_path_buf()
}

/// A fresh temporary directory, removed on drop: for files a test makes
/// and checks itself.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("specwire-test-")
        .tempdir()
        .expect("make a temporary directory")
}

/// An empty directory for one test, `specwire-test-PID-NAME` under the
/// system's temporary directory: the process id keeps test binaries apart,
/// `name` the tests of one binary. Emptied when made; the test removes it
/// when done (kept on failure, to look at).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("specwire-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make a scratch directory");
    dir
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workspace_holds_the_schema() {
        assert!(super::workspace().join("schema").is_dir());
    }

    #[test]
    fn a_scratch_directory_starts_empty() {
        let dir = super::scratch("paths-self-test");
        std::fs::write(dir.join("file"), "x").unwrap();
        let again = super::scratch("paths-self-test");
        assert_eq!(std::fs::read_dir(&again).unwrap().count(), 0);
        std::fs::remove_dir_all(again).unwrap();
    }
}
