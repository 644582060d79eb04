//! Formatting generated Rust: prettyplease for a stable layout of any token
//! stream, then rustfmt so the files pass `cargo fmt --check` like
//! hand-written code. Both are deterministic.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use proc_macro2::TokenStream;

/// Formats `tokens` as a Rust file whose first line is `header`.
pub fn rust_file(
    tokens: TokenStream,
    header: &str,
    workspace: &Path,
    what: &str,
) -> Result<String> {
    let file: syn::File = syn::parse2(tokens)
        .with_context(|| format!("{what}: generated tokens do not parse as Rust"))?;
    let pretty = prettyplease::unparse(&file);
    let formatted = rustfmt(&pretty, workspace).with_context(|| format!("rustfmt on {what}"))?;
    Ok(format!("{header}\n\n{}", separate_items(&formatted)))
}

/// Puts a blank line between consecutive items at the top level and one
/// level in (impl and module bodies), as a person would write them.
/// rustfmt keeps blank lines, so the result stays `cargo fmt`-clean.
pub(crate) fn separate_items(source: &str) -> String {
    const ITEM_STARTS: &[&str] = &[
        "///",
        "#[",
        "pub ",
        "pub(",
        "fn ",
        "impl",
        "static ",
        "const ",
        "mod ",
        "enum ",
        "struct ",
        "type ",
        "trait ",
        "use ",
        "unsafe impl",
    ];
    let mut out = String::with_capacity(source.len() + source.len() / 16);
    let mut previous: Option<&str> = None;
    for line in source.lines() {
        if let Some(prev) = previous {
            let indent = line.len() - line.trim_start().len();
            let prev_indent = prev.len() - prev.trim_start().len();
            let prev_trimmed = prev.trim();
            let ends_item = !prev_trimmed.starts_with("//")
                && (prev_trimmed == "}"
                    || prev_trimmed == "};"
                    || prev_trimmed.ends_with(";")
                    || prev_trimmed.ends_with("{}"));
            let starts_item = ITEM_STARTS
                .iter()
                .any(|start| line.trim_start().starts_with(start));
            let both_use =
                prev_trimmed.starts_with("use ") && line.trim_start().starts_with("use ");
            let after_inner_docs =
                prev_trimmed.starts_with("//!") && !line.trim_start().starts_with("//!");
            if after_inner_docs
                || (indent <= 4 && indent == prev_indent && ends_item && starts_item && !both_use)
            {
                out.push('\n');
            }
        }
        out.push_str(line);
        out.push('\n');
        previous = Some(line);
    }
    out
}

fn rustfmt(source: &str, workspace: &Path) -> Result<String> {
    let mut child = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_owned()))
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .current_dir(workspace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (install it with `rustup component add rustfmt`)")?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    let input = source.to_owned();
    // Write from another thread: rustfmt may fill its stdout pipe before it
    // has read all of a large input.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("waiting for rustfmt")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer thread panicked"))?
        .context("writing to rustfmt")?;
    if !output.status.success() {
        bail!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("rustfmt printed non-UTF-8")
}

#[cfg(test)]
mod tests {
    use super::separate_items;

    #[test]
    fn items_are_separated_but_doc_comments_stay_whole() {
        let source = "use a;\nuse b;\nconst X: u8 = 1;\n/// Ends with a semicolon;\n/// and goes on.\nfn f() {\n    let x = 1;\n    let y = 2;\n}\nimpl T {\n    fn g() {}\n    fn h() {}\n}\n";
        let expected = "use a;\nuse b;\n\nconst X: u8 = 1;\n\n/// Ends with a semicolon;\n/// and goes on.\nfn f() {\n    let x = 1;\n    let y = 2;\n}\n\nimpl T {\n    fn g() {}\n\n    fn h() {}\n}\n";
        assert_eq!(separate_items(source), expected);
    }
}
