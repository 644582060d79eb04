//! Rich text: Markdown source plus the same text as segments for HTML, and
//! the Markdown escaping every page needs.

use std::fmt::Write as _;

use serde_json::Value;

/// Text with inline code and links. `md` is the Markdown form; `segs` the same
/// content for the HTML templates, which escape every segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Rich {
    pub(super) md: String,
    pub(super) segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seg {
    pub(super) text: String,
    pub(super) code: bool,
    /// Link target; empty when the segment is not a link.
    pub(super) href: String,
}

impl Rich {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Markdown from the schemas: only code spans are interpreted, the rest is
    /// shown as written.
    pub(super) fn from_md(src: &str) -> Self {
        let mut r = Rich {
            md: src.to_string(),
            segs: Vec::new(),
        };
        for (code, text) in split_code_spans(src) {
            r.push_seg(text, code, String::new());
        }
        r
    }

    /// Plain text written by this module (no Markdown specials in it).
    pub(super) fn text(mut self, t: &str) -> Self {
        self.md.push_str(t);
        self.push_seg(t.to_string(), false, String::new());
        self
    }

    pub(super) fn code(mut self, t: &str) -> Self {
        self.md.push_str(&md_code(t));
        self.push_seg(t.to_string(), true, String::new());
        self
    }

    /// A link whose text is an identifier (message, struct, layout name).
    pub(super) fn link(mut self, t: &str, href: &str, code: bool) -> Self {
        let label = if code { md_code(t) } else { t.to_string() };
        let _ = write!(self.md, "[{label}]({href})");
        self.push_seg(t.to_string(), code, href.to_string());
        self
    }

    pub(super) fn append(mut self, other: &Rich) -> Self {
        self.md.push_str(&other.md);
        for s in &other.segs {
            self.push_seg(s.text.clone(), s.code, s.href.clone());
        }
        self
    }

    pub(super) fn push_seg(&mut self, text: String, code: bool, href: String) {
        if text.is_empty() {
            return;
        }
        // Adjacent plain text is merged so the HTML stays compact.
        if !code && href.is_empty() {
            if let Some(last) = self.segs.last_mut() {
                if !last.code && last.href.is_empty() {
                    last.text.push_str(&text);
                    return;
                }
            }
        }
        self.segs.push(Seg { text, code, href });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.md.is_empty()
    }
}

/// Splits Markdown into plain text and code spans (CommonMark rules: a run of
/// n backticks opens, the next run of exactly n closes; unmatched runs are
/// literal).
pub(super) fn split_code_spans(src: &str) -> Vec<(bool, String)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let open = i;
        while i < b.len() && b[i] == b'`' {
            i += 1;
        }
        let n = i - open;
        let mut j = i;
        let mut close = None;
        while j < b.len() {
            if b[j] == b'`' {
                let run = j;
                while j < b.len() && b[j] == b'`' {
                    j += 1;
                }
                if j - run == n {
                    close = Some(run);
                    break;
                }
            } else {
                j += 1;
            }
        }
        if let Some(close) = close {
            // Backticks are ASCII, so these byte offsets are char boundaries.
            if open > text_start {
                out.push((false, src[text_start..open].to_string()));
            }
            let mut content = src[i..close].replace(['\n', '\r'], " ");
            if content.len() >= 2
                && content.starts_with(' ')
                && content.ends_with(' ')
                && !content.trim().is_empty()
            {
                content = content[1..content.len() - 1].to_string();
            }
            out.push((true, content));
            i = close + n;
            text_start = i;
        }
    }
    if text_start < src.len() {
        out.push((false, src[text_start..].to_string()));
    }
    out
}

/// A Markdown code span holding `t` exactly, whatever backticks it contains.
pub(super) fn md_code(t: &str) -> String {
    if t.is_empty() {
        return "(empty)".to_string();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in t.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = t.starts_with('`')
        || t.ends_with('`')
        || (t.starts_with(' ') && t.ends_with(' ') && !t.trim().is_empty());
    let pad = if pad { " " } else { "" };
    format!("{fence}{pad}{t}{pad}{fence}")
}

/// Escapes a Markdown table cell. GFM splits cells on `|` before parsing code
/// spans, so `\|` is needed inside code spans too.
pub(super) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// A fence for a fenced code block that `content` cannot close early.
pub(super) fn md_fence(content: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in content.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}
pub(super) fn compact_json(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn pretty_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
pub(super) fn byte_size(n: u64) -> String {
    // Masks rather than `%` or `is_multiple_of` (Rust 1.87; the workspace
    // supports 1.85): both units are powers of two.
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    if n >= MIB && n & (MIB - 1) == 0 {
        format!("{n} bytes ({} MiB)", n / MIB)
    } else if n >= KIB && n & (KIB - 1) == 0 {
        format!("{n} bytes ({} KiB)", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// The anchor of a message's section on its family page.
pub(super) fn message_anchor(name: &str) -> String {
    format!("msg-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_split_like_commonmark() {
        let segs = split_code_spans("a `b` c ``d`e`` `unclosed");
        assert_eq!(
            segs,
            vec![
                (false, "a ".to_string()),
                (true, "b".to_string()),
                (false, " c ".to_string()),
                (true, "d`e".to_string()),
                (false, " `unclosed".to_string()),
            ]
        );
    }

    #[test]
    fn md_code_survives_backticks() {
        assert_eq!(md_code("a"), "`a`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x"), "`` `x ``");
        let spans = split_code_spans(&md_code("`x"));
        assert_eq!(spans, vec![(true, "`x".to_string())]);
    }

    #[test]
    fn cells_escape_pipes_and_newlines() {
        assert_eq!(md_cell("a | b\nc"), "a \\| b<br>c");
    }
}
