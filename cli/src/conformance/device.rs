//! `specwire conformance device`: the device suite's options.

use std::path::PathBuf;
use std::time::Duration;

use specwire_conformance::device::{DeviceSuite, DeviceTarget};
use specwire_protocol::conformance::CaseSpec;
use specwire_runtime::device::Registry;

use super::common::Common;
use super::SuiteArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub(super) struct DeviceArgs {
    /// The hub: ws://HOST:PORT or wss://HOST:PORT (a path, if the hub
    /// wants one, is kept).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    #[command(flatten)]
    hub: DeviceSettings,
    /// Trust this PEM CA certificate for wss:// (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// How long a reply or a delivery may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// First seed of the generated sessions (default: random; printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long device.generated.sessions may take in all: its sessions,
    /// and shrinking a failing one (a failure found is reported, with its
    /// replay bundle, however far shrinking got).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    session_budget: Duration,
    /// Where replay bundles of failed cases are written.
    #[arg(long, default_value = "specwire-replays", value_name = "DIR")]
    replay_dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// What only a device hub needs: its registry and the durations the
/// liveness cases depend on (`specwire conformance replay` takes these
/// too).
#[derive(clap::Args)]
pub(super) struct DeviceSettings {
    /// The hub's command registry (`commands.json`, the file or
    /// http(s):// URL the hub loads): the suite sends only commands it
    /// lists, with parameter values of their types, and names one it does
    /// not list for the unknown-command cases.
    #[arg(long, value_name = "FILE|URL")]
    registry: Option<String>,
    /// The hub's interval between its `ping`s to a device (the profile's
    /// is 10 s): runs device.liveness.hub-ping, which waits up to twice
    /// that.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ping_interval: Option<Duration>,
    /// How long the hub lets a device stay silent before dropping it (the
    /// profile's is 30 s): runs device.liveness.any-frame and
    /// device.liveness.stale-drop, which take 1.5 to 2 times that.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    stale_timeout: Option<Duration>,
}

impl DeviceSettings {
    /// The target at `endpoint` with these settings (the rest defaults).
    pub(super) async fn target(&self, endpoint: &str) -> Result<DeviceTarget, String> {
        if !(endpoint.starts_with("ws://") || endpoint.starts_with("wss://")) {
            return Err(format!(
                "--target `{endpoint}` is not a ws:// or wss:// URL"
            ));
        }
        let source = self.registry.as_deref().ok_or(
            "--registry FILE|URL is required: the hub's commands.json (schema/device/commands.json for `specwire serve device` with the shipped registry)",
        )?;
        let (registry, warnings) = Registry::load(source)
            .await
            .map_err(|error| format!("--registry: {error}"))?;
        for warning in &warnings {
            eprintln!("specwire: warning: {source}: {warning}");
        }
        for (flag, value) in [
            ("--ping-interval", self.ping_interval),
            ("--stale-timeout", self.stale_timeout),
        ] {
            if value.is_some_and(|value| value.is_zero()) {
                return Err(format!("{flag} must be above zero"));
            }
        }
        let mut target = DeviceTarget::new(endpoint, &registry);
        if target.commands.all().is_empty() {
            eprintln!(
                "specwire: warning: {source}: every command is called ping, pong or error; the command cases will skip"
            );
        }
        target.ping_interval = self.ping_interval;
        target.stale_timeout = self.stale_timeout;
        Ok(target)
    }
}

impl SuiteArgs for DeviceArgs {
    type Suite = DeviceSuite;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn target(&self) -> Result<DeviceTarget, String> {
        let endpoint = self
            .target
            .clone()
            .ok_or("--target ws://HOST:PORT is required")?;
        let mut target = self.hub.target(&endpoint).await?;
        target.extra_roots = self.ca_cert.clone();
        target.reply_timeout = self.timeout;
        if let Some(seed) = self.seed {
            target.seed = seed;
        }
        target.session_budget = self.session_budget;
        target.replay_dir = Some(self.replay_dir.clone());
        eprintln!("specwire: generated sessions start at seed {}", target.seed);
        Ok(target)
    }

    fn announce(&self, target: &DeviceTarget, plan: &[&'static CaseSpec]) {
        super::common::announce_skips(&[
            ("--ping-interval", target.ping_interval.is_none()),
            ("--stale-timeout", target.stale_timeout.is_none()),
        ]);
        eprintln!(
            "specwire: {} cases; whatever the hub does, the run ends within {} (limits from --timeout, --ping-interval, --stale-timeout, --session-budget)",
            plan.len(),
            super::common::whole_seconds(specwire_conformance::suite::run_bound::<DeviceSuite>(target, plan))
        );
    }
}
