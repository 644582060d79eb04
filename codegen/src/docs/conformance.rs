//! The conformance page (every catalog by family and section), and each
//! family page's share of it.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};

use super::rich::Rich;
use crate::model::{Case, Conformance, Level};

/// The conformance catalog's page (`conformance.md`, `.html`).
pub(super) const CONFORMANCE_PAGE: &str = "conformance";

/// Page names no family may take.
pub(super) const FIXED_PAGES: &[&str] = &["uart", "index", CONFORMANCE_PAGE];

/// What the conformance page needs of a family page.
pub(super) struct CatalogFamily<'a> {
    pub(super) family: &'a str,
    pub(super) title: &'a str,
    pub(super) transport: &'a str,
}

#[derive(Debug)]
pub(super) struct ConformancePage {
    /// "45 cases (37 MUST, 8 SHOULD)".
    pub(super) counts: String,
    /// One `specwire conformance` command per family with cases.
    pub(super) commands: Vec<String>,
    pub(super) families: Vec<CatalogFamilyView>,
}

#[derive(Debug)]
pub(super) struct CatalogFamilyView {
    pub(super) family: String,
    pub(super) title: String,
    pub(super) cases: usize,
    /// "36 cases (30 MUST, 6 SHOULD)"; empty without cases.
    pub(super) counts: String,
    pub(super) command: String,
    pub(super) needs: Vec<NeedView>,
    pub(super) sections: Vec<CatalogSectionView>,
}

#[derive(Debug, Clone)]
pub(super) struct NeedView {
    pub(super) name: String,
    pub(super) description: Rich,
}

#[derive(Debug)]
pub(super) struct CatalogSectionView {
    /// `<family>.<section>`: the anchor, and the IDs' common prefix.
    pub(super) anchor: String,
    pub(super) title: String,
    pub(super) cases: Vec<CaseView>,
}

#[derive(Debug)]
pub(super) struct CaseView {
    pub(super) id: String,
    pub(super) level: &'static str,
    pub(super) title: Rich,
    pub(super) spec: Rich,
    pub(super) source: Rich,
    pub(super) accepts: Rich,
    pub(super) needs: Vec<NeedView>,
}

/// A family page's "Conformance" section: its cases, linked to the catalog.
#[derive(Debug, Default)]
pub(super) struct FamilyCases {
    pub(super) counts: String,
    pub(super) command: String,
    pub(super) cases: Vec<CaseLink>,
}

#[derive(Debug)]
pub(super) struct CaseLink {
    pub(super) id: String,
    pub(super) level: &'static str,
    pub(super) title: Rich,
}

pub(super) fn level_counts(cases: &[&Case]) -> String {
    let must = cases.iter().filter(|c| c.level == Level::Must).count();
    let plural = if cases.len() == 1 { "" } else { "s" };
    format!(
        "{} case{plural} ({must} {}, {} {})",
        cases.len(),
        Level::Must.as_str(),
        cases.len() - must,
        Level::Should.as_str()
    )
}

/// The command that runs a family's cases against an implementation: its
/// WebSocket URL, its address, or for a UDP broadcast family the port it
/// listens on.
pub(super) fn run_command(family: &str, transport: &str) -> String {
    let target = match transport {
        "websocket" => "--target ws://HOST:PORT",
        "udp-broadcast" => "--discovery-port PORT",
        _ => "--target HOST:PORT",
    };
    format!("specwire conformance {family} {target}")
}

pub(super) fn conformance_page(
    families: &[CatalogFamily<'_>],
    catalogs: &[Conformance],
) -> Result<ConformancePage> {
    let mut given = BTreeSet::new();
    for catalog in catalogs {
        ensure!(
            families.iter().any(|f| f.family == catalog.family),
            "conformance cases are given for `{}`, which is not a family",
            catalog.family
        );
        ensure!(
            given.insert(catalog.family.as_str()),
            "the conformance cases of `{}` are given twice",
            catalog.family
        );
    }
    let mut ids = BTreeSet::new();
    let mut views = Vec::with_capacity(families.len());
    let mut commands = Vec::new();
    for f in families {
        let catalog = catalogs.iter().find(|c| c.family == f.family);
        let cases: Vec<&Case> = catalog
            .map(|c| c.cases.iter().collect())
            .unwrap_or_default();
        let command = run_command(f.family, f.transport);
        let mut view = CatalogFamilyView {
            family: f.family.to_string(),
            title: f.title.to_string(),
            cases: cases.len(),
            counts: String::new(),
            command: command.clone(),
            needs: Vec::new(),
            sections: Vec::new(),
        };
        if let (Some(catalog), false) = (catalog, cases.is_empty()) {
            let what = format!("the conformance cases of `{}`", f.family);
            view.counts = level_counts(&cases);
            commands.push(command);
            view.needs = catalog
                .needs
                .iter()
                .map(|n| NeedView {
                    name: n.name.clone(),
                    description: Rich::from_md(&n.description),
                })
                .collect();
            for case in &cases {
                ensure!(
                    ids.insert(case.id.as_str()),
                    "case `{}` is given twice",
                    case.id
                );
                ensure!(
                    catalog.section(&case.section).is_some(),
                    "{what}: case `{}` is in section `{}`, which is not declared",
                    case.id,
                    case.section
                );
            }
            for section in &catalog.sections {
                let mut rows = Vec::new();
                for case in cases.iter().filter(|c| c.section == section.id) {
                    let mut needs = Vec::with_capacity(case.needs.len());
                    for name in &case.needs {
                        let need =
                            view.needs
                                .iter()
                                .find(|n| &n.name == name)
                                .with_context(|| {
                                    format!(
                                        "{what}: case `{}` needs `{name}`, which is not declared",
                                        case.id
                                    )
                                })?;
                        needs.push(need.clone());
                    }
                    rows.push(CaseView {
                        id: case.id.clone(),
                        level: case.level.as_str(),
                        title: Rich::from_md(&case.title),
                        spec: Rich::from_md(&case.spec),
                        source: Rich::from_md(&case.source),
                        accepts: Rich::from_md(&case.accepts),
                        needs,
                    });
                }
                view.sections.push(CatalogSectionView {
                    anchor: format!("{}.{}", f.family, section.id),
                    title: section.title.clone(),
                    cases: rows,
                });
            }
        }
        views.push(view);
    }
    let all: Vec<&Case> = catalogs.iter().flat_map(|c| &c.cases).collect();
    Ok(ConformancePage {
        counts: level_counts(&all),
        commands,
        families: views,
    })
}

pub(super) fn family_cases(page: &ConformancePage, family: &str) -> FamilyCases {
    let Some(view) = page.families.iter().find(|f| f.family == family) else {
        return FamilyCases::default();
    };
    FamilyCases {
        counts: view.counts.clone(),
        command: view.command.clone(),
        cases: view
            .sections
            .iter()
            .flat_map(|s| &s.cases)
            .map(|c| CaseLink {
                id: c.id.clone(),
                level: c.level,
                title: c.title.clone(),
            })
            .collect(),
    }
}
