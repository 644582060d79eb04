//! The device family's suite: cases against a device hub's WebSocket
//! endpoint (seed 002, PROFILE.md's device section), given the hub's
//! command registry (`commands.json`).
//!
//! Every line is a WebSocket text frame of the device grammar
//! (`schema/device/manifest.json`): the suite checks each line it sends
//! against the client-to-server patterns and each line the hub sends
//! against the server-to-client ones ([`conn`]). It learns which commands
//! the hub accepts, and their parameter types, from the registry
//! ([`commands`]). Every case uses device ids of its own and proves that
//! a line did not arrive, or was not answered, with the `pong` of a later
//! `ping` (a hub answers one connection's lines in order), never by
//! waiting. Only the liveness cases take time: as long as the hub's
//! configured ping interval and stale timeout say (`--ping-interval`,
//! `--stale-timeout`; without them they are skipped).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use specwire_conformance::{device, runner::Selection};
//! use specwire_runtime::device::Registry;
//!
//! let (registry, _) = Registry::load("schema/device/commands.json").await?;
//! let mut target = device::DeviceTarget::new("ws://127.0.0.1:5003", &registry);
//! target.ping_interval = Some(std::time::Duration::from_secs(10));
//! let results = device::run(&target, &Selection::default(), &mut ()).await;
//! # Ok(()) }
//! ```

mod cases;
pub mod commands;
pub mod conn;
pub mod generated;
mod target;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use specwire_protocol::conformance::CaseSpec;

pub use target::{close_all, Ctx, DeviceTarget};

use crate::replay::Bundle;
use crate::runner::{Observer, Selection};
use crate::suite::{CaseContext, Registry, Run, Suite};
use crate::verdict::{CaseResult, Stop};

/// The family name.
pub const FAMILY: &str = "device";

/// The device family's suite.
pub struct DeviceSuite;

impl Suite for DeviceSuite {
    const FAMILY: &'static str = FAMILY;
    const RUN_LAST: &'static [&'static str] = cases::RUN_LAST;
    type Target = DeviceTarget;
    type Shared = ();
    type Ctx = Ctx;
    type Step = generated::Step;

    fn registry() -> &'static Registry<Ctx> {
        &cases::CASES
    }

    fn context(target: Arc<DeviceTarget>, case: CaseContext, _: Arc<()>) -> Ctx {
        Ctx::new(target, case)
    }

    fn describe(target: &DeviceTarget) -> String {
        target.endpoint.clone()
    }

    /// Every wait inside a case is bounded by the reply timeout, and no
    /// case waits for more than twenty in a row; the liveness cases add
    /// what `--ping-interval` and `--stale-timeout` make them wait, the
    /// generated case its session budget and one more session.
    fn case_limit(target: &DeviceTarget, id: &str) -> Duration {
        let ordinary = target.reply_timeout * 20;
        let interval = target.ping_interval.unwrap_or_default();
        let stale = target.stale_timeout.unwrap_or_default();
        match id {
            "device.liveness.hub-ping" => ordinary + interval * 4,
            "device.liveness.any-frame" => ordinary + stale * 2,
            "device.liveness.stale-drop" => ordinary + stale * 2,
            _ if Some(id) == Self::generated() => {
                target.session_budget + generated::session_bound(target.reply_timeout)
            }
            _ => ordinary,
        }
    }

    fn preflight_limit(target: &DeviceTarget) -> Duration {
        target.reply_timeout * 3
    }

    async fn preflight(run: &Run<Self>) -> Result<(), String> {
        preflight(run).await
    }

    fn replay_dir(target: &DeviceTarget) -> Option<&Path> {
        target.replay_dir.as_deref()
    }

    fn seed(target: &DeviceTarget) -> Option<u64> {
        Some(target.seed)
    }

    fn replay_steps<'a>(
        ctx: &'a mut Ctx,
        steps: &'a [generated::Step],
    ) -> BoxFuture<'a, Result<(), Stop>> {
        generated::boxed(ctx, steps)
    }
}

/// The device cases `selection` admits, in the order they run.
pub fn plan(selection: &Selection) -> Vec<&'static CaseSpec> {
    crate::suite::plan::<DeviceSuite>(selection)
}

/// Runs the selected cases against `target` ([`crate::suite::run`]).
pub async fn run(
    target: &DeviceTarget,
    selection: &Selection,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    crate::suite::run::<DeviceSuite>(target, selection, observer).await
}

/// Runs a replay bundle's case again against `target`
/// ([`crate::suite::replay`]).
pub async fn replay(
    target: &DeviceTarget,
    bundle: &Bundle<generated::Step>,
) -> Result<CaseResult, String> {
    crate::suite::replay::<DeviceSuite>(target, bundle).await
}

/// Checks the hub can be reached and answers a `ping` with anything:
/// otherwise every case would fail for the same reason, one timeout
/// after the other.
async fn preflight(run: &Run<DeviceSuite>) -> Result<(), String> {
    let mut ctx = run.context("preflight");
    let describe = |stop: Stop| match stop {
        Stop::Harness(reason) | Stop::Fail(reason) | Stop::Skip(reason) => reason,
    };
    let mut conn = ctx
        .connect("a preflight connection")
        .await
        .map_err(describe)?;
    conn.send("ping").await.map_err(describe)?;
    let timeout = run.target.reply_timeout;
    let answer = conn.expect("any answer to `ping`", timeout, |_| true).await;
    conn.close().await;
    match answer {
        Ok(_) => Ok(()),
        Err(Stop::Fail(reason)) if reason.starts_with("no ") => Err(format!(
            "the target upgraded a WebSocket connection but answered no `ping` within {}: it does not speak the device protocol there, or it is stuck",
            humantime::format_duration(timeout)
        )),
        Err(stop) => Err(describe(stop)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_case_has_one_implementation_and_every_implementation_a_case() {
        crate::suite::assert_registry_matches_catalog::<DeviceSuite>();
        assert_eq!(DeviceSuite::generated(), Some("device.generated.sessions"));
        assert!(DeviceSuite::registry().get("device.no.such-case").is_none());
    }
}
