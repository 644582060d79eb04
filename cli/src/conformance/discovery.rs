//! `specwire conformance discovery`: the discovery suite's options.

use std::path::PathBuf;
use std::time::Duration;

use specwire_conformance::discovery::{DiscoverySuite, DiscoveryTarget, LoadPlan};
use specwire_conformance::task::Recipes;
use specwire_protocol::conformance::CaseSpec;

use super::common::Common;
use super::SuiteArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub(super) struct DiscoveryArgs {
    /// The UDP discovery port the target uses.
    #[arg(long, value_name = "PORT")]
    discovery_port: Option<u16>,
    /// Where requests are sent (the broadcast address reaching the target).
    #[arg(long, default_value = "127.255.255.255", value_name = "ADDR")]
    target_address: std::net::IpAddr,
    /// How long to wait for a heartbeat (0 skips the heartbeat cases).
    #[arg(long, default_value = "35s", value_parser = parse_duration, value_name = "DURATION")]
    heartbeat_wait: Duration,
    /// Only judge advertisements of this service.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// How long to collect answers after each request.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    listen: Duration,
    /// Trust this PEM CA certificate when checking wss:// endpoints (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// A task that runs for a while on the provider (the `succeeds` part of
    /// the task suite's --tasks file): discovery.advertisement.load-range
    /// runs several at once through the advertised endpoint, to see the
    /// load a busy provider advertises. Without it only an idle provider is
    /// seen, and that case skips.
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
    /// How many of the `succeeds` task to run at once to keep it busy.
    #[arg(long, default_value_t = 8, value_name = "N")]
    load_tasks: usize,
    /// API key for the provider's task endpoint, when it requires one.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// The clientId to assign those tasks as (default: a new
    /// `specwire-conformance-...` id).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    #[command(flatten)]
    common: Common,
}

impl DiscoveryArgs {
    /// The load plan of --tasks, if given.
    fn load_plan(&self) -> Result<Option<LoadPlan>, String> {
        let Some(path) = &self.tasks else {
            if self.api_key.is_some() || self.client_id.is_some() {
                return Err("--api-key and --client-id are for the tasks of --tasks FILE".into());
            }
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("--tasks {}: {error}", path.display()))?;
        let recipes = Recipes::from_json(&text)
            .map_err(|error| format!("--tasks {}: {error}", path.display()))?;
        let recipe = recipes.succeeds.ok_or_else(|| {
            format!(
                "--tasks {}: needs a `succeeds` task (one that runs for a while)",
                path.display()
            )
        })?;
        if self.load_tasks == 0 {
            return Err("--load-tasks must be at least 1".into());
        }
        Ok(Some(LoadPlan {
            recipe,
            tasks: self.load_tasks,
            api_key: self.api_key.clone(),
            client_id: self.client_id.clone().unwrap_or_else(|| {
                format!("specwire-conformance-{}", specwire_runtime::clock::new_id())
            }),
        }))
    }
}

impl SuiteArgs for DiscoveryArgs {
    type Suite = DiscoverySuite;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn target(&self) -> Result<DiscoveryTarget, String> {
        let port = self
            .discovery_port
            .ok_or("--discovery-port PORT is required")?;
        let mut target = DiscoveryTarget::new(port);
        target.target_address = self.target_address;
        target.heartbeat_wait = self.heartbeat_wait;
        target.service = self.service.clone();
        target.listen = self.listen;
        target.extra_roots = self.ca_cert.clone();
        target.load = self.load_plan()?;
        Ok(target)
    }

    fn announce(&self, _: &DiscoveryTarget, _: &[&'static CaseSpec]) {
        if !self.heartbeat_wait.is_zero() {
            eprintln!(
                "specwire: the heartbeat cases wait up to {} (--heartbeat-wait)",
                humantime::format_duration(self.heartbeat_wait)
            );
        }
    }
}
