//! The case table of a family: one entry per catalog ID, made with
//! [`cases!`](crate::cases), checked against the catalog in both
//! directions by [`check`].

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::cases_of;

use crate::verdict::Stop;

/// A case body over the family's context `C`.
pub type CaseFn<C> = for<'a> fn(&'a mut C) -> BoxFuture<'a, Result<(), Stop>>;

/// One implemented case.
pub struct Case<C: 'static> {
    /// Its catalog ID.
    pub id: &'static str,
    /// Its body.
    pub run: CaseFn<C>,
}

/// A family's implemented cases.
pub struct Registry<C: 'static>(pub &'static [Case<C>]);

impl<C> Registry<C> {
    /// The implementation of case `id`.
    pub fn get(&self, id: &str) -> Option<CaseFn<C>> {
        self.0
            .iter()
            .find(|case| case.id == id)
            .map(|case| case.run)
    }

    /// The IDs implemented, in table order.
    pub fn ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|case| case.id)
    }
}

/// A family's case table: `cases!(Ctx { "id" => path::to::body, ... })`,
/// each body an `async fn(&mut Ctx) -> Result<(), Stop>`.
#[macro_export]
macro_rules! cases {
    ($ctx:ty { $($id:literal => $body:path,)* }) => {
        $crate::suite::Registry::<$ctx>(&[$(
            $crate::suite::Case { id: $id, run: |ctx| ::std::boxed::Box::pin($body(ctx)) },
        )*])
    };
}

/// Checks `registry` against the catalog of `family`: the catalog has
/// cases, every catalog ID has exactly one implementation, every
/// implementation a catalog ID of the family, and every ID in `last` is
/// one of them. Returns every problem found.
pub fn check<C>(family: &str, registry: &Registry<C>, last: &[&str]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let catalog: Vec<&str> = cases_of(family).map(|spec| spec.id).collect();
    if catalog.is_empty() {
        problems.push(format!("the {family} catalog has no cases"));
    }
    let mut implemented: BTreeMap<&str, usize> = BTreeMap::new();
    for id in registry.ids() {
        *implemented.entry(id).or_default() += 1;
    }
    for id in &catalog {
        match implemented.get(id).copied().unwrap_or(0) {
            1 => {}
            0 => problems.push(format!("{id} has no implementation")),
            n => problems.push(format!("{id} has {n} implementations")),
        }
    }
    for id in implemented.keys() {
        if !catalog.contains(id) {
            problems.push(format!(
                "{id} is implemented but not in the {family} catalog"
            ));
        }
    }
    for id in last {
        if !catalog.contains(id) {
            problems.push(format!("{id} runs last but is not in the {family} catalog"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(_: &mut ()) -> Result<(), Stop> {
        Ok(())
    }

    #[test]
    fn the_check_goes_both_ways_and_refuses_an_empty_catalog() {
        static EMPTY: Registry<()> = crate::cases!(() {});
        let problems = check("no-such-family", &EMPTY, &[]).unwrap_err();
        assert_eq!(problems, ["the no-such-family catalog has no cases"]);

        static EXTRA: Registry<()> = crate::cases!(() {
            "discovery.no.such-case" => body,
            "discovery.advertisement.valid" => body,
            "discovery.advertisement.valid" => body,
        });
        let problems = check("discovery", &EXTRA, &["discovery.not.there"]).unwrap_err();
        let text = problems.join("\n");
        assert!(
            text.contains("discovery.no.such-case is implemented but not in the discovery catalog"),
            "{text}"
        );
        assert!(
            text.contains("discovery.advertisement.valid has 2 implementations"),
            "{text}"
        );
        assert!(
            text.contains("discovery.heartbeat.interval has no implementation"),
            "{text}"
        );
        assert!(text.contains("discovery.not.there runs last"), "{text}");
        assert!(EXTRA.get("discovery.no.such-case").is_some());
        assert!(EXTRA.get("discovery.other").is_none());
    }
}
