//! specwire's code generator: `schema/` in, `generated/` out.
//!
//! [`generate`] loads the schema tree ([`model`]), bundles each family into
//! one document ([`model::bundle`]), and renders every output file in memory:
//! Rust types with typify plus tagged message enums and validators
//! ([`rust_json`]), the device line parsers ([`rust_text`]), the uart codecs
//! ([`uart`]), the conformance case catalog ([`conformance`]) and the docs
//! ([`docs`]). [`regenerate`] writes them; [`check`] compares them with what
//! is on disk and names every stale file. Both run the same code, so a
//! passing check means a regenerate would change nothing.
//!
//! ```no_run
//! let report = specwire_codegen::check(std::path::Path::new(".")).unwrap();
//! for stale in &report.stale {
//!     eprintln!("stale: {stale}");
//! }
//! ```

pub mod conformance;
pub mod docs;
pub mod model;
pub mod rust_json;
pub mod rust_text;
pub mod uart;

mod format;
mod output;

pub use output::{check, generate, regenerate, CheckReport, GeneratedFile, Stale, HEADER};
