//! `specwire conformance subscription`: the subscription suite's options.

use std::path::PathBuf;
use std::time::Duration;

use specwire_conformance::subscription::{SubscriptionSuite, SubscriptionTarget};
use specwire_protocol::conformance::CaseSpec;

use super::common::Common;
use super::SuiteArgs;
use crate::duration::parse_duration;
use crate::secret::SecretArgs;

#[derive(clap::Args)]
pub(super) struct SubscriptionArgs {
    #[command(flatten)]
    target: HubArgs,
    /// Where replay bundles of failed cases are written.
    #[arg(long, default_value = "specwire-replays", value_name = "DIR")]
    replay_dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// How to reach and exercise an event hub.
#[derive(clap::Args)]
pub(super) struct HubArgs {
    /// The hub: ws://HOST:PORT or wss://HOST:PORT, without a path (the
    /// suite opens /ws/tasks/..., /ws/user, ... itself).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    #[command(flatten)]
    hub: HubSettings,
    /// Trust this PEM CA certificate for wss:// (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// How long a reply or a delivery may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// First seed of the generated sessions (default: random; printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long subscription.generated.sessions may take in all: its
    /// sessions, and shrinking a failing one (a failure found is reported,
    /// with its replay bundle, however far shrinking got).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    session_budget: Duration,
}

/// What only a hub needs: its secret and the settings cases depend on
/// (`specwire conformance replay` takes these too).
#[derive(clap::Args)]
pub(super) struct HubSettings {
    #[command(flatten)]
    secret: SecretArgs,
    /// How long to wait for the hub's JSON heartbeat `ping` (the profile's
    /// interval is 30 s: pass 35s). 0 or absent skips
    /// subscription.heartbeat.server-ping.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ping_wait: Option<Duration>,
    /// The hub's limit of messages per second on one connection: runs
    /// subscription.limits.rate, and the suite keeps every other case
    /// under half of it.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// The hub's limit of connections per user (the profile's default is
    /// 10): runs subscription.limits.per-user.
    #[arg(long, value_name = "N")]
    user_limit: Option<u32>,
    /// The hub's limit of connections per IP (the profile's default is 50):
    /// runs subscription.limits.per-ip.
    #[arg(long, value_name = "N")]
    ip_limit: Option<u32>,
}

impl HubSettings {
    /// The target at `endpoint` with these settings (the rest defaults).
    pub(super) fn target(&self, endpoint: &str) -> Result<SubscriptionTarget, String> {
        let Some(rest) = endpoint
            .strip_prefix("ws://")
            .or_else(|| endpoint.strip_prefix("wss://"))
        else {
            return Err(format!(
                "--target `{endpoint}` is not a ws:// or wss:// URL"
            ));
        };
        if rest.trim_end_matches('/').contains('/') {
            return Err(format!(
                "--target `{endpoint}` has a path: give the hub's ws://HOST:PORT only (the suite opens the profile's paths itself)"
            ));
        }
        for (flag, value) in [
            ("--rate-limit", self.rate_limit),
            ("--user-limit", self.user_limit),
            ("--ip-limit", self.ip_limit),
        ] {
            if value == Some(0) {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let secret = self.secret.load()?;
        let mut target = SubscriptionTarget::new(endpoint, secret.as_bytes().to_vec());
        target.ping_wait = self.ping_wait.filter(|wait| !wait.is_zero());
        target.rate_limit = self.rate_limit;
        target.user_limit = self.user_limit;
        target.ip_limit = self.ip_limit;
        Ok(target)
    }
}

impl HubArgs {
    fn hub_target(&self) -> Result<SubscriptionTarget, String> {
        let endpoint = self
            .target
            .clone()
            .ok_or("--target ws://HOST:PORT is required")?;
        let mut target = self.hub.target(&endpoint)?;
        target.extra_roots = self.ca_cert.clone();
        target.reply_timeout = self.timeout;
        if let Some(seed) = self.seed {
            target.seed = seed;
        }
        target.session_budget = self.session_budget;
        Ok(target)
    }
}

impl SuiteArgs for SubscriptionArgs {
    type Suite = SubscriptionSuite;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn target(&self) -> Result<SubscriptionTarget, String> {
        let mut target = self.target.hub_target()?;
        target.replay_dir = Some(self.replay_dir.clone());
        eprintln!("specwire: generated sessions start at seed {}", target.seed);
        Ok(target)
    }

    fn announce(&self, target: &SubscriptionTarget, plan: &[&'static CaseSpec]) {
        super::common::announce_skips(&[
            ("--ping-wait", target.ping_wait.is_none()),
            ("--rate-limit", target.rate_limit.is_none()),
            ("--user-limit", target.user_limit.is_none()),
            ("--ip-limit", target.ip_limit.is_none()),
        ]);
        eprintln!(
            "specwire: {} cases; whatever the hub does, the run ends within {} (limits from --timeout, --ping-wait, --session-budget)",
            plan.len(),
            super::common::whole_seconds(specwire_conformance::suite::run_bound::<SubscriptionSuite>(target, plan))
        );
    }
}
