//! The suite against an implementation this project's runtime did not
//! make: the alternatives provider (`alternatives/`), one switch at a time,
//! each showing a behaviour PROFILE.md or the seeds allow but the reference
//! provider does not choose. Every switch must pass every case: no
//! failure (MUST or SHOULD), no harness error, no skip when everything the
//! cases need is given, and no case anywhere near its time limit.
//!
//! The task suite runs with an API key and an ACL (so every case runs);
//! one plain run shows the open variant. The discovery suite runs against
//! the provider's own advertiser at two heartbeat periods and with `Busy`
//! and `Degraded` in use, keeping it busy through its endpoint.

mod alternatives;
mod task_support;

use std::time::{Duration, Instant};

use alternatives::{AltConfig, AltProvider, Switch, SERVICE};
use serde_json::json;
use specwire_conformance::discovery::{self, DiscoveryTarget, LoadPlan};
use specwire_conformance::runner::Selection;
use specwire_conformance::task::{self, Recipes, TaskTarget};
use specwire_conformance::verdict::CaseResult;
use specwire_testsupport::free_udp_port;
use task_support::{explain, with_verdict, API_KEY, FORBIDDEN_CLIENT, SUITE_CLIENT};

/// How long the `succeeds` task sleeps: the profile's "0.3 s" provider.
const SLEEP_MS: u64 = 300;

fn recipes() -> Recipes {
    let recipes = json!({
        "succeeds": {"serviceName": SERVICE, "operation": "sleep",
                     "taskParameters": {"durationMs": SLEEP_MS, "steps": 3}},
        "fails": {"serviceName": SERVICE, "operation": "fail",
                  "taskParameters": {"code": "ALT_TEST_FAILURE"}}
    });
    Recipes::from_json(&recipes.to_string()).expect("the recipes parse")
}

/// The provider's configuration for `switch`: with the suite's key and an
/// ACL when `keyed`.
fn config(switch: Switch, keyed: bool) -> AltConfig {
    let mut config = AltConfig::new(switch);
    if keyed {
        config.api_keys = vec![API_KEY.to_owned()];
        config.grants = vec![
            (SUITE_CLIENT.into(), "*".into(), "*".into()),
            (FORBIDDEN_CLIENT.into(), SERVICE.into(), "noop".into()),
        ];
    }
    config
}

fn target(provider: &AltProvider, keyed: bool) -> TaskTarget {
    let mut target = TaskTarget::new(provider.endpoint());
    target.recipes = recipes();
    target.service = Some(SERVICE.into());
    target.advertisement =
        Some(serde_json::from_value(provider.advertisement()).expect("a valid advertisement"));
    target.reply_timeout = Duration::from_secs(2);
    target.task_timeout = Duration::from_secs(10);
    target.settle = Duration::from_millis(100);
    if keyed {
        target.api_key = Some(API_KEY.into());
        target.client_id = SUITE_CLIENT.into();
        target.forbidden_client = Some(FORBIDDEN_CLIENT.into());
    }
    target
}

/// No failure, no harness error, exactly `skipped` skipped, and no case
/// that took more than half its limit (a responsive target never makes a
/// case wait that long).
fn assert_clean(
    label: &str,
    results: &[CaseResult],
    skipped: &[&str],
    limit: impl Fn(&str) -> Duration,
) {
    let explained = explain(results);
    assert!(
        with_verdict(results, "fail").is_empty()
            && with_verdict(results, "harness-error").is_empty(),
        "{label}: the suite must pass an allowed alternative:{explained}"
    );
    assert_eq!(
        with_verdict(results, "skip"),
        skipped,
        "{label}: skipped:{explained}"
    );
    for result in results {
        assert!(
            result.duration < limit(result.spec.id) / 2,
            "{label}: {} took {:?}, near its limit",
            result.spec.id,
            result.duration
        );
    }
}

async fn task_run(switch: Switch, keyed: bool) {
    let provider = AltProvider::start(config(switch, keyed)).await;
    let target = target(&provider, keyed);
    let started = Instant::now();
    let results = task::run(&target, &Selection::default(), &mut ()).await;
    eprintln!(
        "{switch:?} (keyed: {keyed}): {} cases in {:?}",
        results.len(),
        started.elapsed()
    );
    let skipped: &[&str] = if keyed {
        &[]
    } else {
        &[
            "task.auth.required-first",
            "task.auth.wrong-key",
            "task.auth.accepted",
            "task.auth.forbidden",
        ]
    };
    assert_clean(&format!("{switch:?}"), &results, skipped, |id| {
        task::case_limit(&target, id)
    });
    assert_eq!(
        results.len(),
        specwire_protocol::conformance::cases_of("task").count()
    );
    provider.shutdown().await;
}

macro_rules! task_switches {
    ($($name:ident: $switch:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                task_run(Switch::$switch, true).await;
            }
        )*

        /// Every task switch has its test above.
        #[test]
        fn every_task_switch_is_run() {
            let run = [$(Switch::$switch),*];
            for switch in Switch::ALL {
                let discovery_only = matches!(switch, Switch::BusyWhenLoaded | Switch::Degraded);
                assert!(discovery_only || run.contains(switch), "{switch:?} has no task-suite test");
            }
        }
    };
}

task_switches! {
    plain_keyed: Plain,
    no_ack_for_rejected_messages: NoAckForRejected,
    no_status_updates: NoStatusUpdates,
    all_status_updates: AllStatusUpdates,
    a_cancel_that_loses_the_race: CancelLosesRace,
    a_cancel_that_loses_the_race_silently: CancelLosesRaceSilently,
    another_code_for_cancelling_a_finished_task: FinishedCancelCode,
    reassign_answered_with_the_stored_terminal: ReassignStoredTerminal,
    error_codes_beyond_the_standard_list: CustomErrorCodes,
    extra_fields_in_every_message: ExtraFields,
    timestamps_with_offsets_and_fractions: OffsetTimestamps,
    an_api_key_inside_assign_task_too: ApiKeyInAssign,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_without_authentication() {
    task_run(Switch::Plain, false).await;
}

// ---- discovery -------------------------------------------------------------

async fn discovery_run(switch: Switch, heartbeat: Duration) {
    let port = free_udp_port();
    let mut config = config(switch, false);
    config.discovery_port = Some(port);
    config.heartbeat = heartbeat;
    config.capacity = 2;
    let provider = AltProvider::start(config).await;
    let recipe = Recipes::from_json(&format!(
        r#"{{"succeeds": {{"serviceName": "{SERVICE}", "operation": "sleep", "taskParameters": {{"durationMs": 1500}}}}}}"#
    ))
    .expect("the recipe parses")
    .succeeds
    .expect("a succeeds task");
    let target = DiscoveryTarget {
        heartbeat_wait: Duration::from_secs(2),
        listen: Duration::from_millis(2000),
        load: Some(LoadPlan {
            recipe,
            tasks: 4,
            api_key: None,
            client_id: "alternatives-discovery".into(),
        }),
        ..DiscoveryTarget::new(port)
    };
    let started = Instant::now();
    let results = discovery::run(&target, &Selection::default(), &mut ()).await;
    eprintln!(
        "discovery {switch:?}, heartbeat {heartbeat:?}: {:?}",
        started.elapsed()
    );
    assert_clean(
        &format!("discovery {switch:?} {heartbeat:?}"),
        &results,
        &[],
        |_| Duration::from_secs(60),
    );
    provider.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_a_fast_heartbeat() {
    discovery_run(Switch::Plain, Duration::from_millis(150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_a_slow_heartbeat() {
    // Within the suite's 2 s wait, but seldom: requests and heartbeats
    // rarely overlap.
    discovery_run(Switch::Plain, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_busy_when_loaded() {
    discovery_run(Switch::BusyWhenLoaded, Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_degraded() {
    discovery_run(Switch::Degraded, Duration::from_millis(400)).await;
}
