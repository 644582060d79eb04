//! `specwire conformance chat`: the chat suite's options.

use std::path::PathBuf;
use std::time::Duration;

use specwire_conformance::chat::{ChatSuite, ChatTarget};
use specwire_protocol::conformance::CaseSpec;

use super::common::Common;
use super::SuiteArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub(super) struct ChatArgs {
    /// The server: HOST:PORT (or tcp://HOST:PORT); the profile's default
    /// is 127.0.0.1:65432.
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// How long a response or a broadcast may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// First seed of the generated sessions (default: random; printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long chat.generated.sessions may take in all: its sessions, and
    /// shrinking a failing one (a failure found is reported, with its
    /// replay bundle, however far shrinking got).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    session_budget: Duration,
    /// Where replay bundles of failed cases are written.
    #[arg(long, default_value = "specwire-replays", value_name = "DIR")]
    replay_dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// The chat target at `endpoint` (`HOST:PORT` or `tcp://HOST:PORT`) with
/// `timeout` (`specwire conformance replay` uses it too).
pub(super) fn chat_target(endpoint: &str, timeout: Duration) -> Result<ChatTarget, String> {
    let mut target = ChatTarget::new(endpoint).map_err(|error| format!("--target {error}"))?;
    if timeout.is_zero() {
        return Err("--timeout must be above zero".into());
    }
    target.reply_timeout = timeout;
    Ok(target)
}

impl SuiteArgs for ChatArgs {
    type Suite = ChatSuite;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn target(&self) -> Result<ChatTarget, String> {
        let endpoint = self
            .target
            .as_deref()
            .ok_or("--target HOST:PORT is required (e.g. 127.0.0.1:65432)")?;
        let mut target = chat_target(endpoint, self.timeout)?;
        if let Some(seed) = self.seed {
            target.seed = seed;
        }
        target.session_budget = self.session_budget;
        target.replay_dir = Some(self.replay_dir.clone());
        eprintln!("specwire: generated sessions start at seed {}", target.seed);
        Ok(target)
    }

    fn announce(&self, target: &ChatTarget, plan: &[&'static CaseSpec]) {
        eprintln!(
            "specwire: {} cases; whatever the server does, the run ends within {} (limits from --timeout, --session-budget)",
            plan.len(),
            super::common::whole_seconds(specwire_conformance::suite::run_bound::<ChatSuite>(
                target, plan
            ))
        );
    }
}
