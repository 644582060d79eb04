//! Tests of the chat suite itself.
//!
//! - Recall and no false alarms: the suite passes against the reference
//!   server with its default choices and with every alternative the
//!   profile allows (a taken name suffixed with the port, users with
//!   addresses, a welcome to the joiner), well within 10 s, and against an
//!   independent Python server (interop/minimal_chat_server.py).
//! - Stability: repeated runs against one server give identical verdicts.
//! - The catalog and the implementations match.
//! - Precision: for each MUST case (and the SHOULD ones), a server with
//!   one deliberate fault (a [`FaultProxy`] in front of the reference
//!   server) fails that case and no other.

mod chat_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chat_support::*;
use specwire_conformance::chat::generated::{self, Slot, Slots, Step};
use specwire_conformance::chat::ChatTarget;
use specwire_conformance::verdict::CaseResult;

/// Runs the whole suite against `target`; nothing fails, nothing is a
/// harness error, nothing is skipped. Returns the verdicts.
async fn expect_clean_run(what: &str, target: &ChatTarget) -> BTreeMap<&'static str, &'static str> {
    let started = Instant::now();
    let results = run_results(target, &[]).await;
    let took = started.elapsed();
    let verdicts = assert_clean(what, "chat", target.seed, &results, &[]);
    let mut by_time: Vec<&CaseResult> = results.iter().collect();
    by_time.sort_by_key(|result| std::cmp::Reverse(result.duration));
    let slowest: Vec<String> = by_time
        .iter()
        .take(4)
        .map(|result| format!("{} {:?}", result.spec.id, result.duration))
        .collect();
    eprintln!(
        "{what}: {} cases in {took:?} (slowest: {})",
        results.len(),
        slowest.join(", ")
    );
    assert!(took < Duration::from_secs(10), "{what}: {took:?}");
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes_with_its_defaults() {
    let server = start_server(Choices::Default).await;
    expect_clean_run("defaults", &target(&server.local_addr().to_string())).await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_passes_with_every_alternative() {
    let server = start_server(Choices::Alternatives).await;
    expect_clean_run("alternatives", &target(&server.local_addr().to_string())).await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// A server this project did not write the suite for: the Python selector
/// server in interop/, which takes the seed's own alternatives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_python_server_passes() {
    let Some(python) = specwire_testsupport::interop_python() else {
        return;
    };
    let mut command = std::process::Command::new(&python);
    command
        .arg(specwire_testsupport::workspace().join("interop/minimal_chat_server.py"))
        .args(["--port", "0"]);
    let mut server = specwire_testsupport::Running::start(&mut command);
    let endpoint = server.endpoint();
    let address = endpoint.trim_start_matches("tcp://");
    expect_clean_run("python", &target(address)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_stable_over_runs_against_one_server() {
    let server = start_server(Choices::Default).await;
    let mut stable = Stable::default();
    for run in 0..3 {
        let mut target = target(&server.local_addr().to_string());
        // Another generated-session seed each run: any seed must pass.
        target.seed = DEFAULT_SEED + run * 1000;
        stable.check(run, expect_clean_run(&format!("run {run}"), &target).await);
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn the_catalog_and_the_implementations_match() {
    assert_catalog_matches::<specwire_conformance::chat::ChatSuite>();
}

// ---------------------------------------------------------------------------
// Precision: one fault, one failing case
// ---------------------------------------------------------------------------

/// The generated sessions judge every broadcast and listing of a
/// sequence, so a fault in one may meet them too, depending on the drawn
/// steps: those faults let them fail as well (but not be skipped or a
/// harness error).
const SESSIONS_MAY_FAIL: &[&str] = &["chat.generated.sessions"];

/// Runs the suite against the reference server (defaults) behind a proxy
/// applying `fault`; returns the results.
async fn faulty_run(
    fault: Fault,
    seed: u64,
    replays: Option<&std::path::Path>,
) -> (Vec<CaseResult>, ChatTarget) {
    let server = start_server(Choices::Default).await;
    let proxy = FaultProxy::start(server.local_addr(), fault).await;
    let mut target = target(&proxy.address());
    target.seed = seed;
    target.replay_dir = replays.map(std::path::Path::to_path_buf);
    let started = Instant::now();
    let results = run_results(&target, &[]).await;
    eprintln!(
        "MATRIX {fault:?} -> {:?} in {:?}",
        with_verdict(&results, "fail"),
        started.elapsed()
    );
    drop(proxy);
    server.shutdown(Duration::from_secs(1)).await;
    (results, target)
}

async fn check_fault(fault: Fault, expected: &[&str], may_fail: &[&str]) {
    let (results, _) = faulty_run(fault, DEFAULT_SEED, None).await;
    assert_only_allowing(&results, &format!("{fault:?}"), expected, may_fail);
}

macro_rules! fault_tests {
    ($($name:ident: $fault:ident => [$($case:literal),* $(,)?] $(allowing $may:expr)?;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_mut, unused_assignments)]
                let mut may_fail: &[&str] = &[];
                $(may_fail = $may;)?
                check_fault(Fault::$fault, &[$($case),*], may_fail).await;
            }
        )*
    };
}

fault_tests! {
    transparent_proxy_changes_nothing: None => [];
    fault_split: NoReassembly => ["chat.framing.split"];
    fault_byte_by_byte: DropTinyReads => ["chat.framing.byte-by-byte"];
    fault_several_in_one_write: FirstOfReadOnly => ["chat.framing.several-in-one-write"];
    fault_no_separator: SeveralPerLine => ["chat.framing.no-separator"];
    fault_whitespace: StrayWhitespaceError => ["chat.framing.whitespace"];
    fault_pretty: MultiLineUnsupported => ["chat.framing.pretty"];
    fault_join_success: RefuseNonAscii => ["chat.join.success"];
    fault_join_announced: JoinNotAnnounced => ["chat.join.announced"] allowing SESSIONS_MAY_FAIL;
    fault_join_taken: TakenAccepted => ["chat.join.taken"];
    fault_join_too_long: AcceptLongNames => ["chat.join.too-long"];
    fault_join_blank: AcceptBlankNames => ["chat.join.blank"];
    fault_join_padded: RefusePaddedNames => ["chat.join.padded"];
    fault_send_broadcast: BroadcastWrongName => ["chat.send.broadcast"];
    fault_send_not_to_sender: EchoToSender => ["chat.send.not-to-sender"] allowing SESSIONS_MAY_FAIL;
    fault_send_too_long: AcceptLongMessages => ["chat.send.too-long"];
    fault_send_blank: AcceptBlankMessages => ["chat.send.blank"];
    fault_send_padded: RefusePaddedMessages => ["chat.send.padded"];
    fault_users_listed: UsersWithoutSelf => ["chat.users.listed"] allowing SESSIONS_MAY_FAIL;
    fault_users_count: DropCount => ["chat.users.count"];
    fault_leave_announced: LeaveNotAnnounced => ["chat.leave.announced"] allowing SESSIONS_MAY_FAIL;
    fault_leave_no_more_broadcasts: BroadcastToLeft => ["chat.leave.no-more-broadcasts"] allowing SESSIONS_MAY_FAIL;
    fault_leave_disconnect: DisconnectNotAnnounced => ["chat.leave.disconnect"] allowing SESSIONS_MAY_FAIL;
    fault_state_join_first: ServeBeforeJoin => ["chat.state.join-first"];
    fault_rpc_parse_error: ParseErrorCode => ["chat.rpc.parse-error"];
    fault_rpc_unknown_method: UnknownMethodCode => ["chat.rpc.unknown-method"];
    fault_rpc_bad_params: BadParamsCode => ["chat.rpc.bad-params"];
    fault_order_pipelined: SwapPipelined => ["chat.order.pipelined"];
    fault_schema_valid: SystemLowercase => ["chat.schema.valid"];
    // SHOULD cases: a failure there is a warning, but precision holds too.
    fault_framing_newline: NoNewline => ["chat.framing.newline"];
    fault_rpc_stays_open: CloseOnParseError => ["chat.rpc.stays-open"];
}

/// Whether the generated session `steps` meets the sessions' own fault
/// ([`Fault::DeafAfterRejoin`]): a client that left and joined again on
/// its connection is owed a message.
fn meets(steps: &[Step]) -> bool {
    let mut slots = Slots::default();
    let mut rejoined = BTreeSet::new();
    for step in steps {
        if !slots.allows(*step) {
            continue;
        }
        match *step {
            Step::Join(c) if slots.0[usize::from(c)] == Slot::Open => {
                rejoined.insert(c);
            }
            Step::Disconnect(c) => {
                rejoined.remove(&c);
            }
            Step::Send(c)
                if rejoined
                    .iter()
                    .any(|r| *r != c && slots.0[usize::from(*r)] == Slot::Joined) =>
            {
                return true;
            }
            _ => {}
        }
        slots.apply(*step);
    }
    false
}

/// The first seed from [`DEFAULT_SEED`] whose first session meets the
/// sessions' own fault.
fn seed_meeting() -> u64 {
    (DEFAULT_SEED..DEFAULT_SEED + 20_000)
        .find(|&seed| meets(&generated::steps(seed)))
        .expect("a seed whose first session meets the fault")
}

/// The generated sessions' own fault: a client that left and joined again
/// on the same connection gets no messages. No single case joins twice on
/// one connection; a session does, and the failure comes with a shrunk
/// session whose replay bundle fails again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_generated_sessions_shrinks_and_replays() {
    let replays = specwire_testsupport::temp_dir();
    let seed = seed_meeting();
    let (results, target) = faulty_run(Fault::DeafAfterRejoin, seed, Some(replays.path())).await;
    assert_only(&results, "DeafAfterRejoin", &["chat.generated.sessions"]);
    let bundle = replay_bundle::<Step>(&results, "chat.generated.sessions");
    let steps = bundle.steps.clone().expect("the session's steps");
    assert!(
        steps.len() < generated::steps(seed).len(),
        "shrunk: {steps:?}"
    );
    assert!(
        meets(&steps),
        "the shrunk session still meets the fault: {steps:?}"
    );
    // The proxy is gone with its run: replay against a new one.
    let server = start_server(Choices::Default).await;
    let proxy = FaultProxy::start(server.local_addr(), Fault::DeafAfterRejoin).await;
    let mut again = target.clone();
    again.address = proxy.address();
    let replayed = specwire_conformance::chat::replay(&again, &bundle)
        .await
        .expect("the bundle replays");
    assert_eq!(replayed.verdict.name(), "fail", "{:?}", replayed.verdict);
    drop(proxy);
    server.shutdown(Duration::from_secs(1)).await;
}
