//! The index page: every family in one table, and the conformance counts.

use super::conformance::ConformancePage;
use super::family::FamilyPage;
use super::uart::UartPage;

#[derive(Debug)]
pub(super) struct IndexPage {
    pub(super) rows: Vec<IndexRow>,
    /// "45 cases (37 MUST, 8 SHOULD)".
    pub(super) conformance_counts: String,
    /// The families that have cases.
    pub(super) conformance_families: Vec<String>,
}

#[derive(Debug)]
pub(super) struct IndexRow {
    pub(super) family: String,
    pub(super) title: String,
    pub(super) encoding: String,
    pub(super) transport: String,
    pub(super) port: String,
    pub(super) messages: String,
}

pub(super) fn index_page(
    pages: &[FamilyPage],
    uart: &UartPage,
    conformance: &ConformancePage,
) -> IndexPage {
    let mut rows: Vec<IndexRow> = pages
        .iter()
        .map(|p| IndexRow {
            family: p.family.clone(),
            title: p.title.clone(),
            encoding: p.encoding.clone(),
            transport: p.transport.kind.clone(),
            port: p.transport.port.to_string(),
            messages: p.messages.len().to_string(),
        })
        .collect();
    rows.push(IndexRow {
        family: uart.family.clone(),
        title: uart.title.clone(),
        encoding: "binary".into(),
        transport: uart.transport_summary.clone(),
        port: uart
            .local_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "—".into()),
        messages: format!(
            "{} commands, {} opcodes",
            uart.commands.len(),
            uart.opcodes.len()
        ),
    });
    rows.sort_by(|a, b| a.family.cmp(&b.family));
    IndexPage {
        rows,
        conformance_counts: conformance.counts.clone(),
        conformance_families: conformance
            .families
            .iter()
            .filter(|f| f.cases > 0)
            .map(|f| f.family.clone())
            .collect(),
    }
}
