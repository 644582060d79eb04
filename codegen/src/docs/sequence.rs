//! Sequences: a Mermaid block for Markdown, an inline SVG for HTML.

use std::collections::BTreeSet;

use anyhow::{anyhow, ensure, Result};

use super::rich::{message_anchor, Rich};
use crate::model::Sequence;

#[derive(Debug)]
pub(super) struct SequenceView {
    pub(super) title: String,
    pub(super) mermaid: Vec<String>,
    pub(super) steps: Vec<StepView>,
    pub(super) svg: SvgView,
}

#[derive(Debug)]
pub(super) struct StepView {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) message: Rich,
    pub(super) note: String,
}

#[derive(Debug)]
pub(super) struct SvgView {
    pub(super) width: i64,
    pub(super) height: i64,
    pub(super) title: String,
    pub(super) boxes: Vec<SvgBox>,
    pub(super) lifelines: Vec<SvgLine>,
    pub(super) arrows: Vec<SvgArrow>,
}

#[derive(Debug)]
pub(super) struct SvgBox {
    pub(super) x: i64,
    pub(super) y: i64,
    pub(super) w: i64,
    pub(super) h: i64,
    pub(super) cx: i64,
    pub(super) text_y: i64,
    pub(super) name: String,
}

#[derive(Debug)]
pub(super) struct SvgLine {
    pub(super) x1: i64,
    pub(super) y1: i64,
    pub(super) x2: i64,
    pub(super) y2: i64,
}

#[derive(Debug)]
pub(super) struct SvgArrow {
    /// `points` of the polyline (two points, or four for a self-message).
    pub(super) line: String,
    /// `points` of the arrowhead triangle.
    pub(super) head: String,
    pub(super) label_x: i64,
    pub(super) anchor: &'static str,
    pub(super) message_y: i64,
    pub(super) note_y: i64,
    pub(super) message: String,
    pub(super) note: String,
    /// Free-text steps (not a message of the family) are drawn in regular weight.
    pub(super) weight: &'static str,
}

/// Layout metrics in px. Text widths are estimated from character counts; the
/// estimates are generous so labels do not overlap the neighbouring lifeline.
pub(super) const SVG_MARGIN: i64 = 16;
pub(super) const SVG_BOX_H: i64 = 32;
pub(super) const SVG_ROW_H: i64 = 50;
pub(super) const SVG_FIRST_ROW: i64 = 46;
pub(super) const SVG_MESSAGE_CHAR_W: i64 = 8;
pub(super) const SVG_NOTE_CHAR_W: i64 = 7;

pub(super) fn text_width(s: &str, per_char: i64) -> i64 {
    // Clamped so absurd inputs cannot overflow the arithmetic below.
    let n = i64::try_from(s.chars().count().min(2000)).unwrap_or(2000);
    n * per_char
}

pub(super) fn sequence_view(s: &Sequence, names: &BTreeSet<String>) -> Result<SequenceView> {
    let title = s.title.clone();
    let participants = &s.participants;
    ensure!(
        participants.len() >= 2,
        "a sequence needs at least two participants"
    );
    for (i, p) in participants.iter().enumerate() {
        // The names go into Mermaid unquoted.
        ensure!(
            p.starts_with(|c: char| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric()),
            "participant {p:?} must match ^[A-Za-z][A-Za-z0-9]*$"
        );
        ensure!(
            !participants[..i].contains(p),
            "participant `{p}` is listed twice"
        );
    }
    let index_of = |p: &str| participants.iter().position(|q| q == p);

    let mut mermaid = vec!["sequenceDiagram".to_string()];
    for p in participants {
        mermaid.push(format!("    participant {p}"));
    }
    let mut steps = Vec::new();
    let mut raw = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        let what = format!("`steps[{i}]`");
        let (from, to, message) = (step.from.as_str(), step.to.as_str(), step.message.as_str());
        let note = step.note.as_deref().unwrap_or("");
        let fi = index_of(from).ok_or_else(|| anyhow!("{what}: `{from}` is not a participant"))?;
        let ti = index_of(to).ok_or_else(|| anyhow!("{what}: `{to}` is not a participant"))?;
        let label = if note.is_empty() {
            message.to_string()
        } else {
            format!("{message} ({note})")
        };
        mermaid.push(format!("    {from}->>{to}: {}", mermaid_text(&label)));
        let message_rich = if names.contains(message) {
            Rich::new().link(message, &format!("#{}", message_anchor(message)), true)
        } else {
            Rich::from_md(message)
        };
        steps.push(StepView {
            from: from.to_string(),
            to: to.to_string(),
            message: message_rich,
            note: note.to_string(),
        });
        raw.push((
            fi,
            ti,
            message.to_string(),
            note.to_string(),
            names.contains(message),
        ));
    }
    ensure!(!raw.is_empty(), "a sequence needs at least one step");
    let svg = layout_svg(&title, participants, &raw);
    Ok(SequenceView {
        title,
        mermaid,
        steps,
        svg,
    })
}

/// Mermaid message text: `;` ends a statement and `#` starts an entity code,
/// `<`/`>` would be taken as HTML, so all four become entity codes.
pub(super) fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One step for the layout: from, to, label, note, whether it is a message.
pub(super) type RawStep = (usize, usize, String, String, bool);

pub(super) fn layout_svg(title: &str, participants: &[String], steps: &[RawStep]) -> SvgView {
    let n = i64::try_from(participants.len()).unwrap_or(i64::MAX / 4);
    let box_w = participants
        .iter()
        .map(|p| text_width(p, SVG_MESSAGE_CHAR_W) + 28)
        .max()
        .unwrap_or(0)
        .max(96);
    let label_w = |m: &str, note: &str| {
        text_width(m, SVG_MESSAGE_CHAR_W)
            .max(text_width(note, SVG_NOTE_CHAR_W) + 2 * SVG_NOTE_CHAR_W)
    };
    // Column gap: wide enough for the boxes and for every label over the span
    // of its arrow. A self-message needs room to the right of its lifeline.
    let mut gap = (box_w + 24).max(150);
    let mut extra_right = 0;
    for (from, to, m, note, _) in steps {
        let need = label_w(m, note) + 28;
        if from == to {
            let need = need + 44;
            if *from + 1 < participants.len() {
                gap = gap.max(need);
            } else {
                extra_right = extra_right.max(need - box_w / 2);
            }
        } else {
            let span = i64::try_from(from.abs_diff(*to)).unwrap_or(1).max(1);
            gap = gap.max((need + span - 1) / span);
        }
    }
    let x_of = |i: usize| SVG_MARGIN + box_w / 2 + i64::try_from(i).unwrap_or(0) * gap;
    let width = 2 * SVG_MARGIN + box_w + (n - 1) * gap + extra_right.max(0);
    let rows = i64::try_from(steps.len()).unwrap_or(0);
    let first_y = SVG_MARGIN + SVG_BOX_H + SVG_FIRST_ROW;
    let last_y = first_y + (rows - 1) * SVG_ROW_H;
    let bottom_box_y = last_y + 24;
    let height = bottom_box_y + SVG_BOX_H + SVG_MARGIN;

    let mut boxes = Vec::new();
    let mut lifelines = Vec::new();
    for (i, p) in participants.iter().enumerate() {
        let cx = x_of(i);
        for y in [SVG_MARGIN, bottom_box_y] {
            boxes.push(SvgBox {
                x: cx - box_w / 2,
                y,
                w: box_w,
                h: SVG_BOX_H,
                cx,
                text_y: y + SVG_BOX_H / 2 + 5,
                name: p.clone(),
            });
        }
        lifelines.push(SvgLine {
            x1: cx,
            y1: SVG_MARGIN + SVG_BOX_H,
            x2: cx,
            y2: bottom_box_y,
        });
    }
    let mut arrows = Vec::new();
    for (k, (from, to, message, note, is_message)) in steps.iter().enumerate() {
        let weight = if *is_message { "600" } else { "400" };
        let y = first_y + i64::try_from(k).unwrap_or(0) * SVG_ROW_H;
        let x1 = x_of(*from);
        let x2 = x_of(*to);
        let (message_y, note_y) = if note.is_empty() {
            (y - 8, y - 8)
        } else {
            (y - 24, y - 8)
        };
        let arrow = if from == to {
            // A loop to the right of the lifeline, label beside it.
            let top = y - 14;
            SvgArrow {
                line: format!(
                    "{x1},{top} {},{top} {},{y} {},{y}",
                    x1 + 36,
                    x1 + 36,
                    x1 + 8
                ),
                head: format!("{x1},{y} {},{} {},{}", x1 + 10, y - 5, x1 + 10, y + 5),
                label_x: x1 + 44,
                anchor: "start",
                message_y: message_y + 4,
                note_y: note_y + 4,
                message: message.clone(),
                note: if note.is_empty() {
                    String::new()
                } else {
                    format!("({note})")
                },
                weight,
            }
        } else {
            let dir = if x2 > x1 { 1 } else { -1 };
            let tip = x2 - dir;
            SvgArrow {
                line: format!("{x1},{y} {},{y}", tip - 8 * dir),
                head: format!(
                    "{tip},{y} {},{} {},{}",
                    tip - 10 * dir,
                    y - 5,
                    tip - 10 * dir,
                    y + 5
                ),
                label_x: (x1 + x2) / 2,
                anchor: "middle",
                message_y,
                note_y,
                message: message.clone(),
                note: if note.is_empty() {
                    String::new()
                } else {
                    format!("({note})")
                },
                weight,
            }
        };
        arrows.push(arrow);
    }
    SvgView {
        width,
        height,
        title: title.to_string(),
        boxes,
        lifelines,
        arrows,
    }
}
