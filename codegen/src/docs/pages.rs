//! The askama templates (`templates/docs/`), one per page kind and format,
//! and the clean-up every page gets.

use anyhow::{Context, Result};
use askama::Template;

use super::conformance::ConformancePage;
use super::family::FamilyPage;
use super::index::IndexPage;
use super::uart::UartPage;

/// One rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFile {
    /// Relative to `generated/docs`, e.g. `task.md`.
    pub path: String,
    pub contents: String,
}

/// A page in the navigation bar.
#[derive(Debug, Clone)]
pub(super) struct NavLink {
    pub(super) family: String,
    pub(super) title: String,
}

/// Every page, through its templates, each starting with `header`.
pub(super) fn render_pages(
    header: &str,
    nav: &[NavLink],
    pages: &[FamilyPage],
    uart: &UartPage,
    conformance: &ConformancePage,
    index: &IndexPage,
) -> Result<Vec<DocFile>> {
    let mut files = Vec::new();
    let mut push = |path: String, kind: Kind, body: askama::Result<String>| -> Result<()> {
        let body = body.with_context(|| format!("rendering docs page `{path}`"))?;
        files.push(DocFile {
            contents: tidy(header, &body, kind),
            path,
        });
        Ok(())
    };
    for p in pages {
        let md = FamilyMd { p, nav }.render();
        push(format!("{}.md", p.family), Kind::Markdown, md)?;
        let html = FamilyHtml { p, nav }.render();
        push(format!("{}.html", p.family), Kind::Html, html)?;
    }
    let p = uart;
    push(
        format!("{}.md", p.family),
        Kind::Markdown,
        UartMd { p, nav }.render(),
    )?;
    push(
        format!("{}.html", p.family),
        Kind::Html,
        UartHtml { p, nav }.render(),
    )?;
    let p = conformance;
    let page = super::conformance::CONFORMANCE_PAGE;
    push(
        format!("{page}.md"),
        Kind::Markdown,
        ConformanceMd { p, nav }.render(),
    )?;
    push(
        format!("{page}.html"),
        Kind::Html,
        ConformanceHtml { p, nav }.render(),
    )?;
    let p = index;
    push(
        "index.md".into(),
        Kind::Markdown,
        IndexMd { p, nav }.render(),
    )?;
    push(
        "index.html".into(),
        Kind::Html,
        IndexHtml { p, nav }.render(),
    )?;
    Ok(files)
}

#[derive(Template)]
#[template(path = "docs/family.md", escape = "none")]
struct FamilyMd<'a> {
    p: &'a FamilyPage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/family.html")]
struct FamilyHtml<'a> {
    p: &'a FamilyPage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/uart.md", escape = "none")]
struct UartMd<'a> {
    p: &'a UartPage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/uart.html")]
struct UartHtml<'a> {
    p: &'a UartPage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/conformance.md", escape = "none")]
struct ConformanceMd<'a> {
    p: &'a ConformancePage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/conformance.html")]
struct ConformanceHtml<'a> {
    p: &'a ConformancePage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/index.md", escape = "none")]
struct IndexMd<'a> {
    p: &'a IndexPage,
    nav: &'a [NavLink],
}

#[derive(Template)]
#[template(path = "docs/index.html")]
struct IndexHtml<'a> {
    p: &'a IndexPage,
    nav: &'a [NavLink],
}

/// Template filters (askama looks them up in a `filters` module next to the
/// template structs).
mod filters {
    /// A Markdown table cell: `|` would end the cell and a newline the row.
    pub fn cell<T: std::fmt::Display>(s: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::super::rich::md_cell(&s.to_string()))
    }
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Markdown,
    Html,
}

/// Final clean-up shared by every page: the header line, no trailing white
/// space, at most one blank line in a row outside code blocks (templates emit
/// a few extra around optional sections), exactly one final newline.
pub(super) fn tidy(header: &str, body: &str, kind: Kind) -> String {
    let mut out = String::with_capacity(header.len() + body.len());
    out.push_str(header);
    let mut in_code = false;
    let mut blank_run = 0usize;
    let mut started = false;
    for line in body.lines() {
        let line = line.trim_end();
        if line.is_empty() && !in_code {
            blank_run += 1;
            continue;
        }
        if started && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        started = true;
        out.push_str(line);
        out.push('\n');
        match kind {
            Kind::Markdown => {
                if line.trim_start().starts_with("```") {
                    in_code = !in_code;
                }
            }
            Kind::Html => {
                if line.contains("<pre") && !line.contains("</pre>") {
                    in_code = true;
                } else if in_code && line.contains("</pre>") {
                    in_code = false;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_trims_and_collapses_outside_code() {
        let out = tidy(
            "<!-- h -->\n",
            "\n# T  \n\n\n\ntext\n```\na\n\n\nb\n```\n\n",
            Kind::Markdown,
        );
        assert_eq!(out, "<!-- h -->\n# T\n\ntext\n```\na\n\n\nb\n```\n");
    }
}
