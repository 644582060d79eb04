//! Tests of the subscription suite itself.
//!
//! - Recall and no false alarms: the suite passes against the reference
//!   hub, plain and over TLS; without the options some cases need,
//!   exactly those skip; an untrusted certificate is a harness error.
//! - Stability: repeated runs give identical verdicts.
//! - The catalog and the implementations match.
//! - Precision: for each MUST case (and the SHOULD ones), a hub with one
//!   deliberate fault (a [`FaultProxy`] in front of the reference hub, or
//!   the hub run with other limits than the suite is told) fails that
//!   case and no other; every other case keeps its verdict (pass). The
//!   generated sessions see the routing table as a whole, so for a
//!   routing fault the run's seed is one whose sessions never meet it
//!   ([`seed_avoiding`]), and for their own fault one whose first session
//!   does.

mod subscription_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use specwire_conformance::subscription::generated::{self, matching, Slot, Step};
use specwire_conformance::subscription::{
    events::EventKind, SubscriptionSuite, SubscriptionTarget,
};
use specwire_conformance::verdict::CaseResult;
use subscription_support::*;

/// The cases that need options: skipped without them.
const OPTIONAL: &[&str] = &[
    "subscription.heartbeat.server-ping",
    "subscription.limits.per-user",
    "subscription.limits.per-ip",
    "subscription.limits.rate",
];

/// Runs the whole suite against `target`; nothing fails, nothing is a
/// harness error, the skipped cases are exactly `skipped`. Returns the
/// verdicts.
async fn expect_clean_run(
    what: &str,
    target: &SubscriptionTarget,
    skipped: &[&str],
) -> BTreeMap<&'static str, &'static str> {
    let started = Instant::now();
    let results = run_results(target, &[]).await;
    let verdicts = assert_clean(what, "subscription", target.seed, &results, skipped);
    eprintln!("{what}: {} cases in {:?}", results.len(), started.elapsed());
    verdicts
}

async fn reference_run(certificate: Option<&SelfSigned>) {
    let hub = start_reference(certificate).await;
    let endpoint = hub.endpoint();
    let scheme = if certificate.is_some() { "wss" } else { "ws" };
    assert!(endpoint.starts_with(&format!("{scheme}://")), "{endpoint}");
    let mut target = target(&endpoint);
    if let Some(certificate) = certificate {
        target.extra_roots = vec![certificate.cert.clone()];
    }
    expect_clean_run(&format!("{scheme}://"), &target, &[]).await;
    hub.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes_plain_and_over_tls() {
    let certificate = SelfSigned::new();
    tokio::join!(reference_run(None), reference_run(Some(&certificate)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_options_exactly_the_cases_that_need_them_skip() {
    let hub = start_reference(None).await;
    let mut target = SubscriptionTarget::new(hub.endpoint(), SECRET.to_vec());
    target.reply_timeout = Duration::from_secs(2);
    target.seed = DEFAULT_SEED;
    expect_clean_run("no options", &target, OPTIONAL).await;
    hub.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_stable() {
    let hub = start_reference(None).await;
    let mut stable = Stable::default();
    for run in 0..3 {
        let mut target = target(&hub.endpoint());
        // Another generated-session seed each run: any seed must pass.
        target.seed = DEFAULT_SEED + run * 1000;
        stable.check(
            run,
            expect_clean_run(&format!("run {run}"), &target, &[]).await,
        );
    }
    hub.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn the_catalog_and_the_implementations_match() {
    assert_catalog_matches::<SubscriptionSuite>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_the_certificate_is_a_harness_error_not_a_failure() {
    let certificate = SelfSigned::new();
    let hub = start_reference(Some(&certificate)).await;
    let results = run_results(&target(&hub.endpoint()), &["subscription.routing"]).await;
    assert_all_harness_errors(&results);
    hub.shutdown(Duration::from_secs(1)).await;
}

// ---------------------------------------------------------------------------
// Precision: one fault, one failing case
// ---------------------------------------------------------------------------

/// Whether the generated session `steps` meets `fault`: whether a hub
/// with the fault delivers to it otherwise than the model.
fn meets(fault: Fault, steps: &[Step]) -> bool {
    let mut held = BTreeSet::new();
    let mut faulty = BTreeSet::new();
    let mut unsubscribed = BTreeSet::new();
    let mut hidden_system = false;
    for step in steps {
        match step {
            Step::Subscribe(slot) => {
                held.insert(*slot);
                if !(fault == Fault::ResubscribeIgnored && unsubscribed.contains(slot)) {
                    faulty.insert(*slot);
                }
                hidden_system |= matches!(slot, Slot::Experiment(_));
            }
            Step::Unsubscribe(slot) => {
                held.remove(slot);
                unsubscribed.insert(*slot);
                if !(fault == Fault::UnsubscribeIgnored && matches!(slot, Slot::Experiment(_))) {
                    faulty.remove(slot);
                }
            }
            Step::UnknownType if fault == Fault::ForgetOnUnknownType => faulty.clear(),
            Step::Publish(kind, slot) => {
                let wanted = generated::delivered(*kind, *slot, &held);
                let mut with_fault = faulty.clone();
                if fault == Fault::LeakWorkersToExperiments && hidden_system {
                    with_fault.insert(Slot::System);
                }
                let mut got = generated::delivered(*kind, *slot, &with_fault);
                if got && drops(fault, *kind, *slot, &with_fault) {
                    got = false;
                }
                if wanted != got {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Whether a routing fault drops an event of `kind` about `slot` at a
/// connection holding `held` (the proxy's rule in the model's terms).
fn drops(fault: Fault, kind: EventKind, slot: Slot, held: &BTreeSet<Slot>) -> bool {
    if kind == EventKind::SystemStatus {
        return fault == Fault::SystemOnlyToSubscribers && !held.contains(&Slot::System);
    }
    let (matched, _) = matching(kind, slot, held);
    let [only] = matched.as_slice() else {
        return false;
    };
    let family = kind.as_str().split('_').next().unwrap_or("");
    let level = match only {
        Slot::Task(_) => "task",
        Slot::Experiment(_) => "experiment",
        Slot::Project(_) => "project",
        Slot::OwnUser => "user",
        Slot::Worker => "worker",
        Slot::System => "system",
    };
    let rule = match fault {
        Fault::DropTaskViaTask => ("task", "task"),
        Fault::DropTaskViaExperiment => ("task", "experiment"),
        Fault::DropTaskViaProject => ("task", "project"),
        Fault::DropTaskViaUser => ("task", "user"),
        Fault::DropExperimentViaExperiment => ("experiment", "experiment"),
        Fault::DropExperimentViaProject => ("experiment", "project"),
        Fault::DropExperimentViaUser => ("experiment", "user"),
        Fault::DropWorkerViaWorker => ("worker", "worker"),
        Fault::DropWorkerViaSystem => ("worker", "system"),
        _ => return false,
    };
    (family, level) == rule
}

fn sessions_of(seed: u64) -> impl Iterator<Item = Vec<Step>> {
    (seed..seed + generated::SESSIONS).map(|seed| generated::steps(seed, generated::LENGTH))
}

/// The first seed from [`DEFAULT_SEED`] whose sessions never meet `fault`.
fn seed_avoiding(fault: Fault) -> u64 {
    (DEFAULT_SEED..DEFAULT_SEED + 20_000)
        .find(|&seed| sessions_of(seed).all(|steps| !meets(fault, &steps)))
        .unwrap_or_else(|| panic!("no seed's sessions avoid {fault:?}"))
}

/// The first seed from [`DEFAULT_SEED`] whose first session meets `fault`.
fn seed_meeting(fault: Fault) -> u64 {
    (DEFAULT_SEED..DEFAULT_SEED + 20_000)
        .find(|&seed| meets(fault, &generated::steps(seed, generated::LENGTH)))
        .unwrap_or_else(|| panic!("no seed's first session meets {fault:?}"))
}

/// Runs the suite against the reference hub run with `settings`, behind a
/// proxy applying `fault`; returns the results.
async fn faulty_run(fault: Fault, settings: Settings, seed: u64) -> Vec<CaseResult> {
    let hub = start_hub(settings, None).await;
    let proxy = FaultProxy::start(&hub, fault).await;
    let mut target = target(&proxy.endpoint());
    target.seed = seed;
    let started = Instant::now();
    let results = run_results(&target, &[]).await;
    eprintln!(
        "MATRIX {fault:?} {settings:?} -> {:?} in {:?}",
        with_verdict(&results, "fail"),
        started.elapsed()
    );
    drop(proxy);
    hub.shutdown(Duration::from_secs(1)).await;
    results
}

async fn check_fault(fault: Fault, expected: &[&str]) {
    let results = faulty_run(fault, Settings::default(), seed_avoiding(fault)).await;
    assert_only(&results, &format!("{fault:?}"), expected);
}

macro_rules! fault_tests {
    ($($name:ident: $fault:ident => [$($case:literal),* $(,)?];)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check_fault(Fault::$fault, &[$($case),*]).await;
            }
        )*
    };
}

fault_tests! {
    transparent_proxy_changes_nothing: None => [];
    fault_query_token: QueryTokenOnUser => ["subscription.auth.query-token"];
    fault_header_token: HeaderTokenOnExperiments => ["subscription.auth.header-token"];
    fault_missing_token: MissingTokenText => ["subscription.auth.missing-token"];
    fault_bad_signature: AcceptWrongSecret => ["subscription.auth.bad-signature"];
    fault_expired: AcceptExpired => ["subscription.auth.expired"];
    fault_alg_none: AcceptAlgNone => ["subscription.auth.alg-none"];
    fault_other_algorithm: AcceptHs384 => ["subscription.auth.other-algorithm"];
    fault_no_subject: AcceptNoSubject => ["subscription.auth.no-subject"];
    fault_unknown_path: UnknownPathServed => ["subscription.path.unknown-404"];
    fault_resource_subscribed: ProjectPathNotSubscribed => ["subscription.path.resource-subscribed"];
    fault_valid_messages: InvalidErrorData => ["subscription.envelope.valid-messages"];
    fault_id_timestamp: PongWithoutTimestamp => ["subscription.envelope.id-timestamp"];
    fault_client_omits_id: RefuseIdLess => ["subscription.envelope.client-omits-id"];
    fault_extra_fields: RefuseExtraFields => ["subscription.envelope.extra-fields-ignored"];
    fault_subscribe_reply: ReplyWrongResource => ["subscription.subscribe.reply"];
    fault_unsubscribe_reply: UnsubscribedSaysSubscribed => ["subscription.subscribe.unsubscribe-reply"];
    fault_unsubscribe_stops: UnsubscribeIgnored => ["subscription.subscribe.unsubscribe-stops"];
    fault_task_to_task: DropTaskViaTask => ["subscription.routing.task-to-task"];
    fault_task_to_experiment: DropTaskViaExperiment => ["subscription.routing.task-to-experiment"];
    fault_task_to_project: DropTaskViaProject => ["subscription.routing.task-to-project"];
    fault_task_to_user: DropTaskViaUser => ["subscription.routing.task-to-user"];
    fault_experiment_to_experiment: DropExperimentViaExperiment => ["subscription.routing.experiment-to-experiment"];
    fault_experiment_to_project: DropExperimentViaProject => ["subscription.routing.experiment-to-project"];
    fault_experiment_to_user: DropExperimentViaUser => ["subscription.routing.experiment-to-user"];
    fault_worker_to_worker: DropWorkerViaWorker => ["subscription.routing.worker-to-worker"];
    fault_worker_to_system: DropWorkerViaSystem => ["subscription.routing.worker-to-system"];
    fault_system_to_all: SystemOnlyToSubscribers => ["subscription.routing.system-to-all"];
    fault_only_matching: LeakWorkersToExperiments => ["subscription.routing.only-matching"];
    fault_once_per_connection: DuplicatePerMatch => ["subscription.routing.once-per-connection"];
    fault_publication_order: Reorder => ["subscription.routing.publication-order"];
    fault_client_ping: PongWrongId => ["subscription.heartbeat.client-ping"];
    fault_server_ping: DropServerPings => ["subscription.heartbeat.server-ping"];
    fault_malformed_json: SwallowMalformed => ["subscription.errors.malformed-json"];
    fault_unknown_type: SwallowUnknownType => ["subscription.errors.unknown-type"];
    fault_bad_fields: SwallowBadFields => ["subscription.errors.bad-fields"];
    fault_nothing_lost: ForgetOnUnknownType => ["subscription.errors.nothing-lost"];
    fault_publish_accepted: ErrorAfterPublish => ["subscription.publish.accepted"];
    fault_event_intact: TamperEvent => ["subscription.publish.event-intact"];
    fault_invalid_event: MendInvalidEvent => ["subscription.publish.invalid-event"];
    fault_non_admin_refused: EveryoneAdmin => ["subscription.publish.non-admin-refused"];
    // SHOULD cases: a failure there is a warning, but precision holds too.
    fault_event_id_format: EventIdsRewritten => ["subscription.envelope.event-id-format"];
    fault_seed_texts: UnknownTypeText => ["subscription.errors.seed-texts"];
}

/// The limits: the hub runs with one limit above what the suite is told
/// (or none), so the case about it sees a connection or a message served
/// that should have been refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_faults_fail_their_case_only() {
    let defaults = Settings::default();
    let faults = [
        (
            Settings {
                user_limit: USER_LIMIT + 1,
                ..defaults
            },
            "subscription.limits.per-user",
        ),
        (
            Settings {
                ip_limit: IP_LIMIT + 1,
                ..defaults
            },
            "subscription.limits.per-ip",
        ),
        (
            Settings {
                rate_limit: None,
                ..defaults
            },
            "subscription.limits.rate",
        ),
    ];
    for (settings, case) in faults {
        let results = faulty_run(Fault::None, settings, DEFAULT_SEED).await;
        assert_only(&results, &format!("{settings:?}"), &[case]);
    }
}

/// The generated sessions' own fault: a resource subscribed again after
/// an unsubscribe is acknowledged but not subscribed. No single case
/// subscribes a resource twice; a session does, and the failure comes
/// with a shrunk session whose replay bundle fails again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_generated_sessions_shrinks_and_replays() {
    let fault = Fault::ResubscribeIgnored;
    let hub = start_reference(None).await;
    let proxy = FaultProxy::start(&hub, fault).await;
    let replays = specwire_testsupport::temp_dir();
    let mut target = target(&proxy.endpoint());
    target.seed = seed_meeting(fault);
    target.replay_dir = Some(replays.path().to_path_buf());
    let results = run_results(&target, &[]).await;
    eprintln!("MATRIX {fault:?} -> {:?}", with_verdict(&results, "fail"));
    assert_only(
        &results,
        "ResubscribeIgnored",
        &["subscription.generated.sessions"],
    );
    let bundle = replay_bundle::<Step>(&results, "subscription.generated.sessions");
    let steps = bundle.steps.clone().expect("the session's steps");
    let original = generated::steps(target.seed, generated::LENGTH);
    assert!(steps.len() < original.len(), "shrunk: {steps:?}");
    assert!(
        meets(fault, &steps),
        "the shrunk session still meets the fault: {steps:?}"
    );
    let replayed = specwire_conformance::subscription::replay(&target, &bundle)
        .await
        .expect("the bundle replays");
    assert_eq!(replayed.verdict.name(), "fail", "{:?}", replayed.verdict);
    drop(proxy);
    hub.shutdown(Duration::from_secs(1)).await;
}
