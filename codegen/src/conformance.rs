//! Rust for the conformance case catalog: every `<family>/conformance.json`
//! becomes entries of the static tables in `generated/src/conformance.rs`.
//!
//! The tables are in catalog order (families as `FAMILIES`, then file
//! order), so each family's cases, sections and needs are one contiguous
//! run; the lookups by family return those runs as slices, and `case` is a
//! `match` on the ID.

use std::ops::Range;

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::model::{Case, Level, SchemaTree};

/// A family's entries in the tables: one contiguous run in each.
struct Runs<'a> {
    family: &'a str,
    sections: Range<usize>,
    needs: Range<usize>,
    cases: Range<usize>,
}

/// The catalogs' entries as table rows, with each family's runs.
struct Tables<'a> {
    sections: Vec<TokenStream>,
    needs: Vec<TokenStream>,
    cases: Vec<TokenStream>,
    case_ids: Vec<&'a str>,
    runs: Vec<Runs<'a>>,
}

fn tables(tree: &SchemaTree) -> Tables<'_> {
    let mut tables = Tables {
        sections: Vec::new(),
        needs: Vec::new(),
        cases: Vec::new(),
        case_ids: Vec::new(),
        runs: Vec::new(),
    };
    for catalog in &tree.conformance {
        let family = catalog.family.as_str();
        let section_start = tables.sections.len();
        for section in &catalog.sections {
            let (id, title) = (&section.id, &section.title);
            tables
                .sections
                .push(quote! { Section { family: #family, id: #id, title: #title } });
        }
        let need_start = tables.needs.len();
        for need in &catalog.needs {
            let (name, description) = (&need.name, &need.description);
            tables
                .needs
                .push(quote! { Need { family: #family, name: #name, description: #description } });
        }
        let case_start = tables.cases.len();
        for case in &catalog.cases {
            tables.cases.push(case_tokens(family, case));
            tables.case_ids.push(case.id.as_str());
        }
        tables.runs.push(Runs {
            family,
            sections: section_start..tables.sections.len(),
            needs: need_start..tables.needs.len(),
            cases: case_start..tables.cases.len(),
        });
    }
    tables
}

fn case_tokens(family: &str, case: &Case) -> TokenStream {
    let (id, section, title, spec, source, accepts) = (
        &case.id,
        &case.section,
        &case.title,
        &case.spec,
        &case.source,
        &case.accepts,
    );
    let level = match case.level {
        Level::Must => quote!(Level::Must),
        Level::Should => quote!(Level::Should),
    };
    let case_needs = &case.needs;
    quote! {
        CaseSpec {
            id: #id,
            family: #family,
            section: #section,
            level: #level,
            title: #title,
            spec: #spec,
            source: #source,
            accepts: #accepts,
            needs: &[#(#case_needs),*],
        }
    }
}

/// The doc line counting the catalog's cases.
fn count_doc(tree: &SchemaTree, cases: usize) -> String {
    let with_cases: Vec<&str> = tree
        .conformance
        .iter()
        .filter(|catalog| !catalog.cases.is_empty())
        .map(|catalog| catalog.family.as_str())
        .collect();
    if with_cases.is_empty() {
        " No cases yet.".to_string()
    } else {
        format!(
            " {} case{} ({} MUST, {} SHOULD) in {} {}: {}.",
            cases,
            if cases == 1 { "" } else { "s" },
            count(tree, Level::Must),
            count(tree, Level::Should),
            with_cases.len(),
            if with_cases.len() == 1 {
                "family"
            } else {
                "families"
            },
            with_cases
                .iter()
                .map(|family| format!("`{family}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Generates the `conformance` module.
pub fn generate(tree: &SchemaTree) -> TokenStream {
    let Tables {
        sections,
        needs,
        cases,
        case_ids,
        runs,
    } = tables(tree);
    let indices: Vec<Literal> = (0..case_ids.len()).map(Literal::usize_unsuffixed).collect();
    let range = |range: &Range<usize>| {
        let (start, end) = (
            Literal::usize_unsuffixed(range.start),
            Literal::usize_unsuffixed(range.end),
        );
        quote!(#start..#end)
    };
    let run_families: Vec<&str> = runs.iter().map(|run| run.family).collect();
    let family = quote!(family);
    let section_lookup = lookup(
        &family,
        &run_families,
        runs.iter().map(|run| range(&run.sections)).collect(),
        quote!(0..0),
    );
    let need_lookup = lookup(
        &family,
        &run_families,
        runs.iter().map(|run| range(&run.needs)).collect(),
        quote!(0..0),
    );
    let case_lookup_by_family = lookup(
        &family,
        &run_families,
        runs.iter().map(|run| range(&run.cases)).collect(),
        quote!(0..0),
    );
    let case_lookup = lookup(
        &quote!(id),
        &case_ids,
        indices.iter().map(|index| quote!(Some(#index))).collect(),
        quote!(None),
    );

    let count_doc = count_doc(tree, case_ids.len());

    quote! {
        //! The conformance case catalog: every case of the conformance
        //! suite, by stable ID (`<family>.<section>.<name>`), with its
        //! level, the spec sentence it checks and where that comes from.
        //!
        //! Generated from `schema/<family>/conformance.json`; see
        //! `generated/docs/conformance.md`. The suite implements each case
        //! by its ID, and a test of the conformance crate ties the two
        //! together.
        //!
        #![doc = #count_doc]
        //!
        //! ```
        //! use specwire_protocol::conformance::{self, Level};
        //!
        //! for case in conformance::CASES {
        //!     assert!(case.id.starts_with(&format!("{}.{}.", case.family, case.section)));
        //!     assert!(conformance::section(case.family, case.section).is_some());
        //! }
        //! if let Some(first) = conformance::CASES.first() {
        //!     assert_eq!(conformance::case(first.id), Some(first));
        //!     assert!(conformance::cases_of(first.family).any(|case| case == first));
        //! }
        //! assert_eq!(conformance::case("no.such.case"), None);
        //! assert_eq!(Level::Must.to_string(), "MUST");
        //! ```

        pub use specwire_wire::catalog::{CaseSpec, Level, Need, Section};

        /// Every section, in catalog order.
        pub static SECTIONS: &[Section] = &[#(#sections),*];

        /// Every need, in catalog order.
        pub static NEEDS: &[Need] = &[#(#needs),*];

        /// Every case, in catalog order: families as [`crate::FAMILIES`],
        /// then the order of their `conformance.json`.
        pub static CASES: &[CaseSpec] = &[#(#cases),*];

        /// The case with ID `id`.
        pub fn case(id: &str) -> Option<&'static CaseSpec> {
            let index: Option<usize> = #case_lookup;
            index.and_then(|index| CASES.get(index))
        }

        /// The cases of `family`, in catalog order (none for a family
        /// without a catalog or an unknown name).
        pub fn cases_of(family: &str) -> impl Iterator<Item = &'static CaseSpec> {
            let run: std::ops::Range<usize> = #case_lookup_by_family;
            CASES[run].iter()
        }

        /// The sections of `family`, in catalog order.
        pub fn sections_of(family: &str) -> impl Iterator<Item = &'static Section> {
            let run: std::ops::Range<usize> = #section_lookup;
            SECTIONS[run].iter()
        }

        /// The needs of `family`, in catalog order.
        pub fn needs_of(family: &str) -> impl Iterator<Item = &'static Need> {
            let run: std::ops::Range<usize> = #need_lookup;
            NEEDS[run].iter()
        }

        /// Section `id` of `family`.
        pub fn section(family: &str, id: &str) -> Option<&'static Section> {
            sections_of(family).find(|section| section.id == id)
        }

        /// Need `name` of `family`.
        pub fn need(family: &str, name: &str) -> Option<&'static Need> {
            needs_of(family).find(|need| need.name == name)
        }
    }
}

/// `match scrutinee { key => value, ..., _ => fallback }`, or just the
/// fallback when there are no keys (a lone `_` arm is not idiomatic).
fn lookup(
    scrutinee: &TokenStream,
    keys: &[&str],
    values: Vec<TokenStream>,
    fallback: TokenStream,
) -> TokenStream {
    if keys.is_empty() {
        return quote!({
            let _ = #scrutinee;
            #fallback
        });
    }
    quote! {
        match #scrutinee {
            #(#keys => #values,)*
            _ => #fallback,
        }
    }
}

fn count(tree: &SchemaTree, level: Level) -> usize {
    tree.conformance
        .iter()
        .flat_map(|catalog| &catalog.cases)
        .filter(|case| case.level == level)
        .count()
}
