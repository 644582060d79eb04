//! specwire's conformance suite: checks an implementation of a specwire
//! family, in any language, given only its endpoint.
//!
//! The cases, their IDs, levels (MUST/SHOULD) and spec sentences are data
//! in `schema/<family>/conformance.json` (generated into
//! `specwire_protocol::conformance`); this crate implements each by ID.
//! A case checks one spec point, accepts every outcome the spec allows, and
//! ends in a [`Verdict`](verdict::Verdict): pass, fail, skip (with the
//! missing option) or harness error, kept apart. Every message the target
//! sends is validated against the schema, and every frame goes into the
//! case's [`Transcript`](transcript::Transcript).
//!
//! - [`suite`]: the [`Suite`](suite::Suite) trait a family implements,
//!   and the one runner over it (`plan`, `run`, `run_bound`, `replay`),
//!   the case registry, the case context every family embeds.
//! - [`session`]: a connection generic over the family's protocol
//!   (WebSocket or TCP) that records and validates every message.
//! - [`task`]: a task provider at `ws://` or `wss://`.
//! - [`discovery`]: the UDP discovery side of a provider.
//! - [`subscription`]: an event hub at `ws://` or `wss://`, given its JWT secret.
//! - [`device`]: a device hub at `ws://` or `wss://`, given its command
//!   registry (text lines, checked against the device grammar).
//! - [`chat`]: a chat server at `HOST:PORT` (a TCP stream of JSON objects).
//! - [`runner`]: selection (`--only`, `--skip`), observers, expected failures.
//! - [`report`]: the JSON, JUnit and HTML reports, the terminal summary, the
//!   exit status.
//! - [`replay`]: bundles of failed cases that `specwire conformance replay` runs again.

pub mod chat;
pub mod device;
pub mod discovery;
pub mod replay;
pub mod report;
pub mod runner;
pub mod session;
pub mod subscription;
pub mod suite;
pub mod task;
pub mod transcript;
pub mod verdict;

/// The suites the catalog has, with their case counts: a family's own
/// (`task`), or one per kind of implementation for a family with a catalog
/// per suite (`uart-module`, `uart-gateway`); a family without cases yet is
/// listed with 0.
pub fn families() -> Vec<(&'static str, usize)> {
    use specwire_protocol::conformance::{cases_of, CASES};
    let mut suites = Vec::new();
    for family in specwire_protocol::FAMILIES {
        let mut names: Vec<&'static str> = CASES
            .iter()
            .map(|case| case.family)
            .filter(|name| {
                name == family
                    || name
                        .strip_prefix(family)
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .collect();
        names.dedup();
        if names.is_empty() {
            names.push(family);
        }
        suites.extend(names.into_iter().map(|name| (name, cases_of(name).count())));
    }
    suites
}
