//! `specwire conformance task`: the task suite's options.

use std::path::PathBuf;
use std::time::Duration;

use specwire_conformance::suite::Suite;
use specwire_conformance::task::{Recipes, TaskSuite, TaskTarget};
use specwire_protocol::conformance::CaseSpec;

use super::common::Common;
use super::SuiteArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub(super) struct TaskArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Where replay bundles of failed cases are written.
    #[arg(long, default_value = "specwire-replays", value_name = "DIR")]
    replay_dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// How to reach and exercise a task provider.
#[derive(clap::Args)]
pub(super) struct TargetArgs {
    /// The provider: ws://HOST:PORT or wss://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub(super) target: Option<String>,
    /// Authenticate with this API key, and run the auth cases.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// The clientId the suite authenticates as (default: a new
    /// `specwire-conformance-...` id); with an ACL, one it grants.
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// A client id the target's ACL denies the `succeeds` operation (runs
    /// task.auth.forbidden).
    #[arg(long, value_name = "ID")]
    forbidden_client: Option<String>,
    /// Trust this PEM CA certificate for wss:// (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// The serviceName to assign tasks to (else from the advertisement).
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// How to make a task succeed and fail here: JSON
    /// {"succeeds": {"operation": ..., "taskParameters": {...}}, "fails": {...}}.
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
    /// Learn the target's advertisement (service name, operations, typed
    /// settings) from UDP discovery on this port.
    #[arg(long, value_name = "PORT")]
    discovery_port: Option<u16>,
    /// How long to listen for the advertisement.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    discovery_wait: Duration,
    /// How long a reply may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// How long a `succeeds`/`fails` task may take to end.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    task_timeout: Duration,
    /// How long to listen for messages that must not come.
    #[arg(long, default_value = "300ms", value_parser = parse_duration, value_name = "DURATION")]
    settle: Duration,
    /// First seed of the generated sessions (default: random; printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long task.generated.sessions may take in all: its sessions, and
    /// shrinking a failing one (a failure found is reported, with its replay
    /// bundle, however far shrinking got). Its waits are paced on the
    /// target's own round trips and task durations.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    session_budget: Duration,
}

impl TargetArgs {
    /// What a replay of another family's bundle takes from these options:
    /// the CA certificates and the reply timeout.
    pub(super) fn shared_into(&self, extra_roots: &mut Vec<PathBuf>, timeout: &mut Duration) {
        extra_roots.clone_from(&self.ca_cert);
        *timeout = self.timeout;
    }

    /// The task target these options describe (`endpoint` overrides
    /// `--target`).
    pub(super) async fn task_target(&self, endpoint: Option<&str>) -> Result<TaskTarget, String> {
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| self.target.clone())
            .ok_or("--target ws://HOST:PORT is required")?;
        if !(endpoint.starts_with("ws://") || endpoint.starts_with("wss://")) {
            return Err(format!(
                "--target `{endpoint}` is not a ws:// or wss:// URL"
            ));
        }
        let mut target = TaskTarget::new(&endpoint);
        target.api_key = self.api_key.clone();
        target.forbidden_client = self.forbidden_client.clone();
        if let Some(id) = &self.client_id {
            target.client_id = id.clone();
        }
        target.extra_roots = self.ca_cert.clone();
        target.service = self.service.clone();
        target.reply_timeout = self.timeout;
        target.task_timeout = self.task_timeout;
        target.settle = self.settle;
        if let Some(seed) = self.seed {
            target.seed = seed;
        }
        target.session_budget = self.session_budget;
        if let Some(path) = &self.tasks {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("--tasks {}: {error}", path.display()))?;
            target.recipes = Recipes::from_json(&text)
                .map_err(|error| format!("--tasks {}: {error}", path.display()))?;
        }
        if let Some(port) = self.discovery_port {
            target.advertisement = specwire_conformance::task::find_advertisement(
                port,
                &endpoint,
                self.service.as_deref(),
                self.discovery_wait,
            )
            .await?;
            match &target.advertisement {
                Some(ad) => eprintln!(
                    "specwire: {} advertises {} at {endpoint}",
                    ad.service_name,
                    ad.capabilities
                        .iter()
                        .map(|c| c.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => eprintln!(
                    "specwire: no advertisement for {endpoint} on UDP {port} within {}",
                    humantime::format_duration(self.discovery_wait)
                ),
            }
        }
        Ok(target)
    }
}

impl SuiteArgs for TaskArgs {
    type Suite = TaskSuite;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn target(&self) -> Result<TaskTarget, String> {
        let mut target = self.target.task_target(None).await?;
        target.replay_dir = Some(self.replay_dir.clone());
        eprintln!("specwire: generated sessions start at seed {}", target.seed);
        Ok(target)
    }

    fn announce(&self, target: &TaskTarget, plan: &[&'static CaseSpec]) {
        let seconds = super::common::whole_seconds;
        let generated = TaskSuite::generated().unwrap_or("the generated case");
        eprintln!(
            "specwire: {} cases; whatever the target does, a case ends within {} ({generated} within {}) and the run within {} (limits from --timeout, --task-timeout, --settle, --session-budget)",
            plan.len(),
            seconds(TaskSuite::case_limit(target, "")),
            seconds(TaskSuite::case_limit(target, generated)),
            seconds(specwire_conformance::suite::run_bound::<TaskSuite>(target, plan))
        );
    }
}
