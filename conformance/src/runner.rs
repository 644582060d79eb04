//! Choosing cases (`--only`, `--skip`), following a run, and known
//! failures (`--expect-fail`).

use std::collections::BTreeSet;

use specwire_protocol::conformance::CaseSpec;

use crate::verdict::CaseResult;

/// Which cases run: those matching an `--only` prefix (all when none),
/// minus those matching a `--skip` prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// ID prefixes to run.
    pub only: Vec<String>,
    /// ID prefixes not to run.
    pub skip: Vec<String>,
}

impl Selection {
    /// Whether case `id` runs.
    pub fn admits(&self, id: &str) -> bool {
        let matches = |prefix: &String| {
            let prefix = prefix.trim_end_matches('.');
            id == prefix
                || id
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        (self.only.is_empty() || self.only.iter().any(matches)) && !self.skip.iter().any(matches)
    }
}

/// Follows a run: the CLI shows progress with it.
pub trait Observer {
    /// Case `index` of `total` starts.
    fn started(&mut self, spec: &'static CaseSpec, index: usize, total: usize);
    /// A case ended.
    fn finished(&mut self, result: &CaseResult);
}

/// No observer.
impl Observer for () {
    fn started(&mut self, _: &'static CaseSpec, _: usize, _: usize) {}
    fn finished(&mut self, _: &CaseResult) {}
}

/// Cases known to fail on the target (`--expect-fail FILE`: one ID per
/// line, `#` comments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedFailures(pub BTreeSet<String>);

impl ExpectedFailures {
    /// Parses the file's text; unknown IDs are an error (a typo would
    /// silently expect nothing).
    pub fn parse(text: &str, known: impl Fn(&str) -> bool) -> Result<ExpectedFailures, String> {
        let mut ids = BTreeSet::new();
        for (number, line) in text.lines().enumerate() {
            let id = line.split('#').next().unwrap_or("").trim();
            if id.is_empty() {
                continue;
            }
            if !known(id) {
                return Err(format!(
                    "line {}: `{id}` is not a case ID (see --list)",
                    number + 1
                ));
            }
            ids.insert(id.to_owned());
        }
        Ok(ExpectedFailures(ids))
    }

    /// Whether `id` is expected to fail.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_select_whole_segments() {
        let selection = Selection {
            only: vec!["task.cancel".into(), "task.auth.wrong-key".into()],
            skip: vec!["task.cancel.race".into()],
        };
        assert!(selection.admits("task.cancel.finished"));
        assert!(!selection.admits("task.cancel.race"));
        assert!(selection.admits("task.auth.wrong-key"));
        assert!(!selection.admits("task.auth.accepted"));
        // `task.can` is not a segment of `task.cancel`.
        let partial = Selection {
            only: vec!["task.can".into()],
            skip: vec![],
        };
        assert!(!partial.admits("task.cancel.finished"));
        assert!(Selection::default().admits("anything"));
    }

    #[test]
    fn expected_failures_reject_unknown_ids() {
        let known = |id: &str| id.starts_with("task.");
        let parsed =
            ExpectedFailures::parse("# known\ntask.a.b\n\ntask.c.d # flaky\n", known).unwrap();
        assert!(parsed.contains("task.a.b") && parsed.contains("task.c.d"));
        assert!(ExpectedFailures::parse("tsk.a.b", known)
            .unwrap_err()
            .contains("line 1"));
    }
}
