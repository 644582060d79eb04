//! Replay bundles: what a failed case did, written so that `specwire
//! conformance replay FILE` runs it again against a target.
//!
//! A bundle holds the case ID, the target, the reason it failed, the
//! transcript of frames sent and received, and for a generated case the
//! seed and the (shrunk) steps, which replay runs exactly.
//!
//! Any family writes and reads bundles: the `family` tag says whose it
//! is, and the steps are that family's step type in its JSON form. A
//! bundle is read as [`Bundle`] (steps as JSON values) to learn its family,
//! then made typed with [`Bundle::typed`] (or read as `Bundle<Step>` at
//! once when the family is known).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transcript::Entry;

/// The bundle format's name and version.
pub const FORMAT: &str = "specwire-conformance-replay/1";

/// A failed case, replayable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: DeserializeOwned"))]
pub struct Bundle<S = Value> {
    /// [`FORMAT`].
    pub format: String,
    /// The family.
    pub family: String,
    /// The case ID.
    pub case: String,
    /// The target it failed against.
    pub target: String,
    /// Why it failed.
    pub reason: String,
    /// The generated session's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The generated session's steps (after shrinking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<S>>,
    /// Frames sent and received while it failed.
    pub transcript: Vec<Entry>,
}

impl<S: Serialize + DeserializeOwned> Bundle<S> {
    /// Writes the bundle into `dir` (created if needed) as
    /// `<case>-<seed or time>.json`; returns the path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let tag = match self.seed {
            Some(seed) => seed.to_string(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis())
                .to_string(),
        };
        let path = dir.join(format!("{}-{tag}.json", self.case));
        let text = serde_json::to_string_pretty(self).map_err(|error| error.to_string())?;
        std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(path)
    }

    /// Reads a bundle, refusing other formats with a clear message.
    pub fn read(path: &Path) -> Result<Bundle<S>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let bundle: Bundle<S> = serde_json::from_str(&text)
            .map_err(|error| format!("{}: not a replay bundle: {error}", path.display()))?;
        if bundle.format != FORMAT {
            return Err(format!(
                "{}: format `{}`, expected `{FORMAT}`",
                path.display(),
                bundle.format
            ));
        }
        Ok(bundle)
    }
}

impl Bundle {
    /// The bundle with its steps read as family step type `T`.
    pub fn typed<T: DeserializeOwned>(self) -> Result<Bundle<T>, String> {
        let steps = match self.steps {
            None => None,
            Some(steps) => Some(
                steps
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<Vec<T>, _>>()
                    .map_err(|error| format!("a step is not a {} step: {error}", self.family))?,
            ),
        };
        Ok(Bundle {
            format: self.format,
            family: self.family,
            case: self.case,
            target: self.target,
            reason: self.reason,
            seed: self.seed,
            steps,
            transcript: self.transcript,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A family's steps, as the task family's look.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case", tag = "step", content = "arg")]
    enum Step {
        Assign,
        Cancel(usize),
        Garbage(String),
    }

    #[test]
    fn bundles_round_trip_through_files() {
        let dir = std::env::temp_dir().join(format!("specwire-replay-test-{}", std::process::id()));
        let bundle = Bundle {
            format: FORMAT.into(),
            family: "task".into(),
            case: "task.generated.sessions".into(),
            target: "ws://127.0.0.1:1".into(),
            reason: "why".into(),
            seed: Some(42),
            steps: Some(vec![
                Step::Assign,
                Step::Cancel(0),
                Step::Garbage("{".into()),
            ]),
            transcript: Vec::new(),
        };
        let path = bundle.write(&dir).unwrap();
        assert!(path.ends_with("task.generated.sessions-42.json"));
        assert_eq!(Bundle::<Step>::read(&path).unwrap(), bundle);
        let untyped = Bundle::read(&path).unwrap();
        assert_eq!(untyped.steps.as_ref().map(Vec::len), Some(3));
        assert_eq!(untyped.clone().typed::<Step>().unwrap(), bundle);
        assert!(untyped
            .typed::<u32>()
            .unwrap_err()
            .contains("not a task step"));
        std::fs::write(&path, r#"{"format": "other", "family": "", "case": "", "target": "", "reason": "", "transcript": []}"#).unwrap();
        assert!(Bundle::<Value>::read(&path)
            .unwrap_err()
            .contains("expected"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
