//! The kinds of a conformance case catalog: the support crate of the
//! generated catalog.
//!
//! Every `schema/<family>/conformance.json` lists the cases of the
//! conformance suite by stable ID. Codegen turns them into static tables in
//! `specwire_protocol::conformance` (`CASES`, `SECTIONS`, `NEEDS` and lookups
//! by ID and family) whose entries are the types defined here, the way
//! typify's generated code leans on a hand-written support crate: generated
//! code holds data, this module holds the kinds. The generated module
//! re-exports them, so `specwire_protocol::conformance::CaseSpec` is this
//! [`CaseSpec`].
//!
//! ```
//! use specwire_wire::catalog::{CaseSpec, Level};
//!
//! static CASE: CaseSpec = CaseSpec {
//!     id: "chat.join.ok",
//!     family: "chat",
//!     section: "join",
//!     level: Level::Must,
//!     title: "A join is answered",
//!     spec: "The server MUST answer `join_chat`.",
//!     source: "PROFILE.md",
//!     accepts: "Any answer.",
//!     needs: &[],
//! };
//! assert!(CASE.id.starts_with(&format!("{}.{}.", CASE.family, CASE.section)));
//! assert_eq!(CASE.level.to_string(), "MUST");
//! ```

use std::fmt;

/// How binding a case's spec point is (RFC 2119).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    /// `MUST`: an absolute requirement.
    #[serde(rename = "MUST")]
    Must,
    /// `SHOULD`: recommended; there may be reasons to differ.
    #[serde(rename = "SHOULD")]
    Should,
}

impl Level {
    /// `MUST` or `SHOULD`, as the spec writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group of a family's cases; `id` is the second part of their IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Section {
    /// The family.
    pub family: &'static str,
    /// The section's part of a case ID.
    pub id: &'static str,
    /// Its heading in the docs.
    pub title: &'static str,
}

/// Something a case needs from the run beyond the target's address
/// (an option, a task that succeeds, ...). A case whose needs the
/// run does not meet is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Need {
    /// The family.
    pub family: &'static str,
    /// The name cases list in [`CaseSpec::needs`].
    pub name: &'static str,
    /// What to pass for it (Markdown).
    pub description: &'static str,
}

/// One conformance case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CaseSpec {
    /// Stable ID, `<family>.<section>.<name>`, unique across families.
    pub id: &'static str,
    /// The family the case checks.
    pub family: &'static str,
    /// The [`Section`] id.
    pub section: &'static str,
    /// How binding the spec point is.
    pub level: Level,
    /// What the case checks, as one sentence.
    pub title: &'static str,
    /// The spec sentence it checks, quoted (Markdown code spans).
    pub spec: &'static str,
    /// Where the sentence comes from.
    pub source: &'static str,
    /// What passes: every outcome the spec allows for this point
    /// (Markdown).
    pub accepts: &'static str,
    /// Names of the family's [`Need`]s; empty when the target alone
    /// is enough.
    pub needs: &'static [&'static str],
}
