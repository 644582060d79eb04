//! Replay bundles: what a failed case did, written so that `specwire
//! conformance replay FILE` runs it again against a target.
//!
//! A bundle holds the case ID, the target, the reason it failed, the
//! transcript of frames sent and received, and for a generated case the
//! seed and the (shrunk) steps, which replay runs exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::task::generated::Step;
use crate::transcript::Entry;

/// The bundle format's name and version.
pub const FORMAT: &str = "specwire-conformance-replay/1";

/// A failed case, replayable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
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
    pub steps: Option<Vec<Step>>,
    /// Frames sent and received while it failed.
    pub transcript: Vec<Entry>,
}

impl Bundle {
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
    pub fn read(path: &Path) -> Result<Bundle, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let bundle: Bundle = serde_json::from_str(&text)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Bundle::read(&path).unwrap(), bundle);
        std::fs::write(&path, r#"{"format": "other", "family": "", "case": "", "target": "", "reason": "", "transcript": []}"#).unwrap();
        assert!(Bundle::read(&path).unwrap_err().contains("expected"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
