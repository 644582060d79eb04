//! Names in the uart document: identifier checks and case conversion.

use std::collections::BTreeSet;

use anyhow::{bail, ensure, Result};

pub fn check_type_ident(name: &str) -> Result<()> {
    let mut chars = name.chars();
    ensure!(
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric()),
        "`{name}` is not a PascalCase identifier"
    );
    Ok(())
}

/// `dataId` -> `data_id`.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `temperature` / `air_quality` -> `Temperature` / `AirQuality`.
pub fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

pub fn single_char(s: &str) -> Result<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => bail!("`char` must be exactly one character, got {s:?}"),
    }
}

/// Names seen so far in one namespace; `add` fails on a repeat.
pub struct Unique<T: Ord + std::fmt::Debug> {
    what: &'static str,
    seen: BTreeSet<T>,
}

impl<T: Ord + std::fmt::Debug> Unique<T> {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            seen: BTreeSet::new(),
        }
    }

    pub fn add(&mut self, value: T) -> Result<()> {
        let message = format!("duplicate {} {value:?}", self.what);
        ensure!(self.seen.insert(value), message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_helpers() {
        assert_eq!(snake("dataId"), "data_id");
        assert_eq!(pascal("air_quality"), "AirQuality");
    }
}
