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

/// What the conformance page needs of a family page, or of one of its
/// suites when the family has several catalogs (`uart-module`).
pub(super) struct CatalogFamily {
    /// The catalog's name: the family, or `<family>-<suite>`.
    pub(super) family: String,
    pub(super) title: String,
    /// The command that runs it.
    pub(super) command: String,
}

impl CatalogFamily {
    /// The entries of `family` (page title `title`, carried by
    /// `transport`): one per catalog named `family` or `family-<suite>`,
    /// or the family alone when it has none. A suite's target option comes
    /// from its name: a `module` is on a serial port.
    pub(super) fn of(
        family: &str,
        title: &str,
        transport: &str,
        catalogs: &[Conformance],
    ) -> Vec<CatalogFamily> {
        let suites: Vec<&str> = catalogs
            .iter()
            .filter_map(|c| suite_of(&c.family, family))
            .collect();
        if suites.iter().all(|suite| suite.is_empty()) {
            return vec![CatalogFamily {
                family: family.into(),
                title: title.into(),
                command: run_command(family, transport),
            }];
        }
        suites
            .into_iter()
            .filter(|suite| !suite.is_empty())
            .map(|suite| CatalogFamily {
                family: format!("{family}-{suite}"),
                title: format!("{title}: {suite}s"),
                command: run_command(
                    &format!("{family} {suite}"),
                    if suite == "module" {
                        "serial"
                    } else {
                        transport
                    },
                ),
            })
            .collect()
    }
}

/// `Some("")` when `catalog` is `family`'s own catalog, `Some(suite)` for
/// `family-suite`, `None` otherwise.
fn suite_of<'a>(catalog: &'a str, family: &str) -> Option<&'a str> {
    let rest = catalog.strip_prefix(family)?;
    match rest.strip_prefix('-') {
        Some(suite) => Some(suite),
        None => rest.is_empty().then_some(""),
    }
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

/// A family page's "Conformance" section: its cases (of every suite it
/// has), linked to the catalog.
#[derive(Debug, Default)]
pub(super) struct FamilyCases {
    pub(super) counts: String,
    /// Where the catalog page lists them (its first suite's anchor).
    pub(super) anchor: String,
    pub(super) commands: Vec<String>,
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
    counts_line(cases.len(), must)
}

/// "36 cases (30 MUST, 6 SHOULD)".
fn counts_line(cases: usize, must: usize) -> String {
    let plural = if cases == 1 { "" } else { "s" };
    format!(
        "{cases} case{plural} ({must} {}, {} {})",
        Level::Must.as_str(),
        cases - must,
        Level::Should.as_str()
    )
}

/// The command that runs a family's cases against an implementation: its
/// WebSocket URL, its address, its serial port, or for a UDP broadcast
/// family the port it listens on.
pub(super) fn run_command(family: &str, transport: &str) -> String {
    let target = match transport {
        "websocket" => "--target ws://HOST:PORT",
        "udp-broadcast" => "--discovery-port PORT",
        "serial" => "--serial PATH",
        _ => "--target HOST:PORT",
    };
    format!("specwire conformance {family} {target}")
}

pub(super) fn conformance_page(
    families: &[CatalogFamily],
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
        let command = f.command.clone();
        let mut view = CatalogFamilyView {
            family: f.family.clone(),
            title: f.title.clone(),
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
    let views: Vec<&CatalogFamilyView> = page
        .families
        .iter()
        .filter(|f| suite_of(&f.family, family).is_some() && f.cases > 0)
        .collect();
    let Some(first) = views.first() else {
        return FamilyCases::default();
    };
    let cases: Vec<CaseLink> = views
        .iter()
        .flat_map(|view| &view.sections)
        .flat_map(|s| &s.cases)
        .map(|c| CaseLink {
            id: c.id.clone(),
            level: c.level,
            title: c.title.clone(),
        })
        .collect();
    let must = cases
        .iter()
        .filter(|c| c.level == Level::Must.as_str())
        .count();
    FamilyCases {
        counts: counts_line(cases.len(), must),
        anchor: first.family.clone(),
        commands: views.iter().map(|view| view.command.clone()).collect(),
        cases,
    }
}
