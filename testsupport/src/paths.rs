//! Where the workspace is, for tests that read `schema/`, `examples/` or
//! run the project's scripts.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `schema/` and `Cargo.toml`).
pub fn workspace() -> PathBuf {
    // This crate sits one level below the root, like every crate here.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsupport sits inside the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workspace_holds_the_schema() {
        assert!(super::workspace().join("schema").is_dir());
    }
}
