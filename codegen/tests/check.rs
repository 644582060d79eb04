//! `generated/` must match `schema/`, and the check must notice when not.
//!
//! The first test is the one that makes a stale `generated/` fail the
//! normal test suite; the others prove the check can fail, on a scratch
//! copy of the tree.

use std::fs;
use std::path::{Path, PathBuf};

use specwire_codegen::{check, Stale};
use specwire_testsupport::workspace;

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

/// A small conformance catalog for `family`, with `cases` spliced in.
fn catalog(family: &str, cases: &str) -> String {
    format!(
        r#"{{
  "family": "{family}",
  "sections": [
    {{ "id": "join", "title": "Joining" }},
    {{ "id": "leave", "title": "Leaving" }}
  ],
  "needs": {{
    "two-clients": "`--clients 2`: a second client."
  }},
  "cases": [{cases}]
}}"#
    )
}

fn case(id: &str, section: &str, extra: &str) -> String {
    format!(
        r#"{{ "id": "{id}", "level": "MUST", "section": "{section}", "title": "A title", "spec": "A sentence.", "source": "PROFILE.md#x", "accepts": "Only that."{extra} }}"#
    )
}

fn problems_with_catalog(name: &str, family_dir: &str, text: &str) -> String {
    let root = scratch(name);
    fs::write(
        root.join("schema")
            .join(family_dir)
            .join("conformance.json"),
        text,
    )
    .expect("write");
    let report = check(&root).expect("check runs");
    report.problems.join("\n")
}

#[test]
fn conformance_problems_are_all_reported_by_name() {
    let cases = [
        case("chat.join.ok", "join", ""),
        case("chat.join.ok", "join", ""),
        case("chat.part.bye", "part", ""),
        case("chat.join.crowd", "join", r#", "needs": ["three-clients"]"#),
        case("chat.leave.misfiled", "join", ""),
    ]
    .join(",\n");
    let problems = problems_with_catalog("conformance", "chat", &catalog("chat", &cases));
    let file = "schema/chat/conformance.json";
    for expected in [
        format!("{file}: case id chat.join.ok is not unique (already used in {file})"),
        format!("{file}: case chat.part.bye: section \"part\" is not declared in `sections`"),
        format!("{file}: case chat.join.crowd: need \"three-clients\" is not declared in `needs`"),
        format!("{file}: case chat.leave.misfiled: the id must start with \"chat.join.\""),
    ] {
        assert!(
            problems.contains(&expected),
            "no {expected:?} in:\n{problems}"
        );
    }
    // One problem each, nothing else.
    let listed = problems
        .lines()
        .filter(|line| line.trim_start().starts_with("schema/chat/"))
        .count();
    assert_eq!(listed, 4, "{problems}");
}

#[test]
fn a_case_id_used_in_two_families_is_a_problem() {
    let root = scratch("conformance-twice");
    fs::write(
        root.join("schema/chat/conformance.json"),
        catalog("chat", &case("chat.join.ok", "join", "")),
    )
    .expect("write");
    fs::write(
        root.join("schema/device/conformance.json"),
        catalog("device", &case("chat.join.ok", "join", "")),
    )
    .expect("write");
    let report = check(&root).expect("check runs");
    let problems = report.problems.join("\n");
    assert!(
        problems.contains(
            "schema/device/conformance.json: case id chat.join.ok is not unique (already used in schema/chat/conformance.json)"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("schema/device/conformance.json: case chat.join.ok: the id must start with \"device.join.\""),
        "{problems}"
    );
}

#[test]
fn a_conformance_file_breaking_its_meta_schema_is_a_problem() {
    let cases = [
        case("chat.join.ok", "join", "").replace("MUST", "MAY"),
        case("chat.join.Upper", "join", ""),
        case("chat.join.extra", "join", r#", "owner": "me""#),
    ]
    .join(",\n");
    let problems = problems_with_catalog("conformance-meta", "chat", &catalog("chat", &cases));
    let lines: Vec<&str> = problems
        .lines()
        .filter(|line| {
            line.contains("schema/chat/conformance.json") && line.contains("meta-schema")
        })
        .collect();
    for pointer in ["/cases/0/level", "/cases/1/id", "/cases/2"] {
        assert!(
            lines
                .iter()
                .any(|line| line.contains(&format!("at \"{pointer}\""))),
            "no meta-schema problem at {pointer}:\n{problems}"
        );
    }
}

#[test]
fn a_conformance_family_that_is_not_its_folder_is_a_problem() {
    let problems = problems_with_catalog(
        "conformance-family",
        "chat",
        &catalog("device", &case("device.join.ok", "join", "")),
    );
    assert!(
        problems.contains(
            "schema/chat/conformance.json: family is \"device\" but the file's folder and name make it \"chat\""
        ),
        "{problems}"
    );
}

#[test]
fn a_new_conformance_catalog_is_generated_into_code_and_docs() {
    let root = scratch("conformance-new");
    let cases = [
        case("chat.join.ok", "join", r#", "needs": ["two-clients"]"#),
        case("chat.leave.bye", "leave", "").replace("MUST", "SHOULD"),
    ]
    .join(",\n");
    fs::write(
        root.join("schema/chat/conformance.json"),
        catalog("chat", &cases),
    )
    .expect("write");
    let report = check(&root).expect("check runs");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for path in [
        "generated/src/conformance.rs",
        "generated/docs/conformance.md",
        "generated/docs/conformance.html",
        "generated/docs/chat.md",
        "generated/docs/chat.html",
        "generated/docs/index.md",
    ] {
        assert!(
            report.stale.contains(&Stale::Differs(PathBuf::from(path))),
            "{path} not stale: {:?}",
            report.stale
        );
    }
    specwire_codegen::regenerate(&root).expect("regenerate");
    let code = fs::read_to_string(root.join("generated/src/conformance.rs")).expect("read");
    // Catalog order: chat comes first, as in FAMILIES.
    let cases_table = &code[code.find("pub static CASES").expect("CASES")..];
    let first_id = cases_table
        .split("id: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next());
    assert_eq!(first_id, Some("chat.join.ok"), "{cases_table}");
    assert!(code.contains("needs: &[\"two-clients\"]"), "{code}");
    assert!(code.contains("level: Level::Should"), "{code}");
    let chat = fs::read_to_string(root.join("generated/docs/chat.md")).expect("read");
    assert!(
        chat.contains("| [`chat.join.ok`](conformance.md#chat.join.ok) | MUST | A title |"),
        "{chat}"
    );
    let page = fs::read_to_string(root.join("generated/docs/conformance.md")).expect("read");
    assert!(
        page.contains("specwire conformance chat --target HOST:PORT"),
        "{page}"
    );
    assert!(
        page.contains("`two-clients`: `--clients 2`: a second client."),
        "{page}"
    );
    assert!(check(&root).expect("check runs").is_clean());
}

#[test]
fn a_conformance_file_that_is_not_json_is_a_problem_not_an_abort() {
    let root = scratch("conformance-json");
    fs::write(root.join("schema/chat/conformance.json"), "{ \"family\": ").expect("write");
    // Another problem elsewhere is still found: loading went on.
    edit(
        &root.join("schema/discovery/manifest.json"),
        "\"direction\": \"broadcast\"",
        "\"direction\": \"sideways\"",
    );
    let problems = check(&root).expect("check runs").problems.join("\n");
    assert!(
        problems.contains("conformance.json is not valid JSON"),
        "{problems}"
    );
    assert!(
        problems.contains("schema/discovery/manifest.json"),
        "{problems}"
    );
}

#[test]
fn without_any_catalog_the_module_is_still_generated() {
    let root = scratch("conformance-none");
    for entry in fs::read_dir(root.join("schema")).expect("read schema/") {
        let _ = fs::remove_file(
            entry
                .expect("a schema/ entry")
                .path()
                .join("conformance.json"),
        );
    }
    let files = specwire_codegen::generate(&root).expect("generate");
    let code = &files
        .iter()
        .find(|f| f.path == Path::new("generated/src/conformance.rs"))
        .expect("conformance.rs")
        .contents;
    assert!(
        code.contains("pub static CASES: &[CaseSpec] = &[];"),
        "{code}"
    );
    assert!(
        !code.contains("match id") && !code.contains("match family"),
        "no lone `_` arms: {code}"
    );
    assert!(code.contains("//! No cases yet."), "{code}");
    let page = &files
        .iter()
        .find(|f| f.path == Path::new("generated/docs/conformance.md"))
        .expect("conformance.md")
        .contents;
    assert!(
        page.contains("No family has conformance cases yet."),
        "{page}"
    );
}

#[test]
fn a_report_schema_is_checked_but_is_not_a_family() {
    let root = scratch("reports");
    fs::create_dir_all(root.join("schema/reports")).expect("mkdir");
    fs::write(
        root.join("schema/reports/broken.schema.json"),
        r#"{ "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "objekt" }"#,
    )
    .expect("write");
    let problems = check(&root).expect("check runs").problems.join("\n");
    assert!(
        problems.contains(
            "schema/reports/broken.schema.json: not a valid JSON Schema 2020-12 document"
        ),
        "{problems}"
    );
    assert!(!problems.contains("a family folder needs"), "{problems}");
}

#[test]
fn a_family_may_have_one_catalog_per_suite() {
    let root = scratch("suites");
    let uart = root.join("schema/uart");
    fs::write(
        uart.join("conformance.module.json"),
        catalog("uart-module", &case("uart-module.join.ok", "join", "")),
    )
    .expect("write");
    fs::write(
        uart.join("conformance.gateway.json"),
        catalog("uart-gw", &case("uart-gw.leave.ok", "leave", "")),
    )
    .expect("write");
    let problems = check(&root).expect("check runs").problems.join("\n");
    assert!(
        problems.contains(
            "schema/uart/conformance.gateway.json: family is \"uart-gw\" but the file's folder and name make it \"uart-gateway\""
        ),
        "{problems}"
    );

    fs::write(
        uart.join("conformance.gateway.json"),
        catalog("uart-gateway", &case("uart-gateway.leave.ok", "leave", "")),
    )
    .expect("write");
    let files = specwire_codegen::generate(&root).expect("generate");
    let text = |name: &str| {
        files
            .iter()
            .find(|file| file.path.ends_with(name))
            .map(|file| file.contents.clone())
            .unwrap_or_else(|| panic!("no {name} generated"))
    };
    let catalog_rs = text("conformance.rs");
    for needle in ["\"uart-gateway\" =>", "\"uart-module\" =>"] {
        assert!(catalog_rs.contains(needle), "no {needle} in conformance.rs");
    }
    let page = text("conformance.md");
    for needle in [
        "specwire conformance uart module --serial PATH",
        "specwire conformance uart gateway --target HOST:PORT",
    ] {
        assert!(page.contains(needle), "no {needle} in conformance.md");
    }
    let uart_page = text("uart.md");
    assert!(
        uart_page.contains(
            "2 cases (2 MUST, 0 SHOULD) in the [conformance catalog](conformance.md#uart-gateway)"
        ),
        "{uart_page}"
    );
}
