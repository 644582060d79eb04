//! `generated/` must match `schema/`, and the check must notice when not.
//!
//! The first test is the one that makes a stale `generated/` fail the
//! normal test suite; the others prove the check can fail, on a scratch
//! copy of the tree.

use std::fs;
use std::path::{Path, PathBuf};

use specwire_codegen::{check, Stale};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

#[test]
fn generated_matches_schema() {
    let report = check(&workspace()).expect("check runs");
    let mut lines: Vec<String> = report.problems.clone();
    lines.extend(report.stale.iter().map(|s| format!("stale: {s}")));
    assert!(
        report.is_clean(),
        "generated/ is out of step with schema/; run `cargo xtask regenerate`:\n{}",
        lines.join("\n")
    );
    assert!(report.files > 20, "only {} files generated", report.files);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A scratch copy of `schema/` and `generated/src` + `generated/docs`.
fn scratch(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{name}"));
    let _ = fs::remove_dir_all(&root);
    copy_dir(&workspace().join("schema"), &root.join("schema"));
    for dir in ["generated/src", "generated/docs"] {
        copy_dir(&workspace().join(dir), &root.join(dir));
    }
    root
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn a_changed_description_makes_the_generated_files_stale() {
    let root = scratch("description");
    edit(
        &root.join("schema/task/defs.schema.json"),
        "Progress 0–100; never decreases for one task.",
        "Progress 0–100, never decreasing.",
    );
    let report = check(&root).expect("check runs");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let stale: Vec<String> = report.stale.iter().map(ToString::to_string).collect();
    assert!(
        report.stale.contains(&Stale::Differs(PathBuf::from(
            "generated/src/task/types.rs"
        ))),
        "{stale:?}"
    );
    assert!(
        report
            .stale
            .contains(&Stale::Differs(PathBuf::from("generated/docs/task.md"))),
        "{stale:?}"
    );
    assert!(
        stale.iter().all(|s| s.contains("task")),
        "only task files change: {stale:?}"
    );
}

#[test]
fn regenerate_then_check_is_clean_and_extra_files_are_named() {
    let root = scratch("regenerate");
    edit(
        &root.join("schema/chat/manifest.json"),
        "A JSON request/response chat",
        "A JSON chat",
    );
    fs::write(root.join("generated/src/leftover.rs"), "// old\n").expect("write");
    let changed = specwire_codegen::regenerate(&root).expect("regenerate");
    assert!(
        changed.contains(&Stale::Extra(PathBuf::from("generated/src/leftover.rs"))),
        "{changed:?}"
    );
    assert!(!root.join("generated/src/leftover.rs").exists());
    let report = check(&root).expect("check runs");
    assert!(
        report.is_clean(),
        "{:?} {:?}",
        report.problems,
        report.stale
    );
}

#[test]
fn a_broken_example_is_a_problem_that_names_it() {
    let root = scratch("example");
    edit(
        &root.join("schema/task/manifest.json"),
        "\"progressPercentage\": 75",
        "\"progressPercentage\": 175",
    );
    let report = check(&root).expect("check runs");
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("schema/task/manifest.json examples["),
        "{problems}"
    );
    assert!(problems.contains("TaskStatusUpdate"), "{problems}");
    assert!(
        problems.contains("/payload/progressPercentage"),
        "{problems}"
    );
}

#[test]
fn a_manifest_breaking_its_meta_schema_is_a_problem() {
    let root = scratch("meta");
    edit(
        &root.join("schema/discovery/manifest.json"),
        "\"direction\": \"broadcast\"",
        "\"direction\": \"sideways\"",
    );
    let report = check(&root).expect("check runs");
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("schema/discovery/manifest.json"),
        "{problems}"
    );
    assert!(problems.contains("meta-schema"), "{problems}");
}

#[test]
fn an_invalid_message_schema_is_a_problem() {
    let root = scratch("schema");
    edit(
        &root.join("schema/task/GetStatus.schema.json"),
        "\"type\": \"object\"",
        "\"type\": \"objekt\"",
    );
    let report = check(&root).expect("check runs");
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("not a valid JSON Schema 2020-12 document"),
        "{problems}"
    );
}

#[test]
fn generation_is_deterministic() {
    let first = specwire_codegen::generate(&workspace()).expect("generate");
    let second = specwire_codegen::generate(&workspace()).expect("generate");
    assert_eq!(first, second);
    for file in &first {
        let first_line = file.contents.lines().next().unwrap_or_default();
        assert!(
            first_line.contains("generated by `cargo xtask regenerate`, do not edit"),
            "{} starts with {first_line:?}",
            file.path.display()
        );
    }
}
