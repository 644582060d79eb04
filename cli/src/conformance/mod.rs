//! `specwire conformance`: run a family's conformance suite against an
//! implementation that is already running.

//!
//! One path from parsed arguments to a run and its reports
//! ([`run_suite`]), generic over the family: a family is a
//! [`Suite`](specwire_conformance::suite::Suite) and a small arguments
//! struct implementing [`SuiteArgs`].

mod chat;
mod common;
mod device;
mod discovery;
mod subscription;
mod task;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use specwire_conformance::chat::ChatSuite;
use specwire_conformance::device::DeviceSuite;
use specwire_conformance::replay::Bundle;
use specwire_conformance::report::Report;
use specwire_conformance::subscription::SubscriptionSuite;
use specwire_conformance::suite::Suite;
use specwire_conformance::task::TaskSuite;
use specwire_conformance::verdict::Verdict;
use specwire_protocol::conformance::CaseSpec;

use chat::ChatArgs;
use common::{expected, finish, list, report_paths, selection, Common, Progress};
use device::{DeviceArgs, DeviceSettings};
use discovery::DiscoveryArgs;
use subscription::{HubSettings, SubscriptionArgs};
use task::{TargetArgs, TaskArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    family: Family,
}

#[derive(clap::Subcommand)]
enum Family {
    /// Check a task provider at ws:// or wss:// (seed 000 §5–7, PROFILE.md).
    Task(TaskArgs),
    /// Check the UDP discovery side of a provider.
    Discovery(DiscoveryArgs),
    /// Check an event hub at ws:// or wss:// (seed 001, PROFILE.md), given its JWT secret
    ///
    /// The suite mints its own tokens with the secret (--secret-file F, the
    /// SPECWIRE_JWT_SECRET environment variable, or --secret S), crafts the
    /// bad ones (another secret, expired, `alg: none`, HS384, no `sub`), and
    /// drives routing through the profile's publish API: an admin token
    /// (claim `role: "admin"`) sends `{"type":"publish","data":<event>}`, so
    /// any hub that implements the profile can be checked. Every case uses
    /// resource ids of its own; an event that must not arrive is shown not
    /// to by a later event that does (events arrive in publication order).
    ///
    /// Cases that need to know the hub's settings are skipped without them:
    /// --ping-wait (the JSON heartbeat), --rate-limit, --user-limit and
    /// --ip-limit (the limits). `--list` shows every case with its level
    /// and needs.
    ///
    /// Example, against `specwire serve subscription` with its defaults:
    ///
    ///   specwire conformance subscription --target ws://127.0.0.1:8081 \
    ///     --secret-file secret.txt --ping-wait 35s --rate-limit 50 \
    ///     --user-limit 10 --ip-limit 50 --html report.html
    ///
    /// Exit status: 0 every MUST case passed (SHOULD failures are warnings),
    /// 1 a MUST case failed, 2 usage error, 3 a harness error.
    #[command(verbatim_doc_comment)]
    Subscription(SubscriptionArgs),
    /// Check a device hub at ws:// or wss:// (seed 002, PROFILE.md), given its command registry
    ///
    /// Devices register with `id:<deviceId>`, clients subscribe with `s`,
    /// `ping` gets `pong`, device data reaches every subscriber as
    /// `<deviceId>:<data>`, and `cmd:<target>:<command>:<parameters>` goes
    /// to one device or `all`. The suite learns the hub's commands from
    /// --registry (the `commands.json` the hub loads) and sends only those,
    /// with parameter values of their types. Every line it sends is checked
    /// against the device grammar, and every line the hub sends too
    /// (device.grammar.hub-lines). Every case uses device ids of its own;
    /// that nothing was answered or forwarded is shown by the `pong` of a
    /// later `ping`, never by waiting, so the suite takes well under a
    /// second against a local hub.
    ///
    /// The liveness cases take as long as the hub's own durations, which
    /// the suite cannot guess: --ping-interval D (device.liveness.hub-ping
    /// waits up to 2 D) and --stale-timeout D (device.liveness.any-frame
    /// and device.liveness.stale-drop take 1.5 D to 2 D). Without them those
    /// cases are skipped. With the profile's 10 s and 30 s the run takes
    /// about 90 s; a hub started with shorter ones is quicker.
    /// `--list` shows every case with its level and needs.
    ///
    /// Example, against a hub started with
    /// `specwire serve device --registry schema/device/commands.json --ping-interval 200ms --stale-timeout 1s`:
    ///
    ///   specwire conformance device --target ws://127.0.0.1:5000 \
    ///     --registry schema/device/commands.json \
    ///     --ping-interval 200ms --stale-timeout 1s --html report.html
    ///
    /// A failed case writes a replay bundle (--replay-dir); run it again
    /// with `specwire conformance replay BUNDLE --registry FILE`.
    ///
    /// Exit status: 0 every MUST case passed (SHOULD failures are warnings),
    /// 1 a MUST case failed, 2 usage error, 3 a harness error.
    #[command(verbatim_doc_comment)]
    Device(DeviceArgs),
    /// Check a chat server over TCP (seed 003, PROFILE.md): HOST:PORT
    ///
    /// The stream is JSON objects one after the other: `join_chat`,
    /// `send_message`, `get_users` and `leave_chat` requests, answered in
    /// request order, and `chat`/`system` broadcasts to the other joined
    /// clients. The suite checks the stream's framing (a request in pieces,
    /// byte by byte, several in one write with and without white space,
    /// pretty-printed; the server's `\n` after each object, a SHOULD),
    /// joining (a taken name may be refused or suffixed with the joiner's
    /// port; both pass), the name and message lengths after trimming,
    /// broadcasts (to every other joined client, never back to the sender,
    /// not to a client that left; a disconnect announced as a leave),
    /// `get_users` (plain names or {username, address}; `count`), requests
    /// before joining, the JSON-RPC codes, pipelined order, and every
    /// object against the chat schema; then random sessions of several
    /// clients judged against a model of the room.
    ///
    /// Every case uses usernames and message markers of its own, so runs
    /// can repeat against one server that others use too. That a broadcast
    /// did not arrive is shown by the response to a later request (they
    /// come in order), never by waiting: against a local server the whole
    /// run takes well under a second. Only a disconnect is waited for, up
    /// to --timeout. `--list` shows every case with its level.
    ///
    /// Example, against `specwire serve chat` on its default address:
    ///
    ///   specwire conformance chat --target 127.0.0.1:65432 --html report.html
    ///
    /// A failed case writes a replay bundle (--replay-dir); run it again
    /// with `specwire conformance replay BUNDLE`.
    ///
    /// Exit status: 0 every MUST case passed (SHOULD failures are warnings),
    /// 1 a MUST case failed, 2 usage error, 3 a harness error.
    #[command(verbatim_doc_comment)]
    Chat(ChatArgs),
    /// The uart family (no cases yet).
    Uart(Pending),
    /// Run a replay bundle (written for a failed case) again against a
    /// target; exit 1 when it fails again, 0 when it passes now.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The bundle (`specwire-replays/<case>-<seed>.json`).
    file: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// For a subscription bundle: the hub's secret and settings.
    #[command(flatten)]
    hub: HubSettings,
    /// For a device bundle: the hub's registry and durations.
    #[command(flatten)]
    device: DeviceSettings,
}

#[derive(clap::Args)]
struct Pending {
    #[command(flatten)]
    common: Common,
}

/// A family's arguments: how they make its suite's target.
trait SuiteArgs {
    /// The family's suite.
    type Suite: Suite;

    /// The options every suite takes.
    fn common(&self) -> &Common;

    /// The target these arguments describe.
    fn target(&self) -> impl Future<Output = Result<<Self::Suite as Suite>::Target, String>>;

    /// Says on stderr what the run will take, before it starts.
    fn announce(&self, target: &<Self::Suite as Suite>::Target, plan: &[&'static CaseSpec]);
}

pub fn run(args: Args) -> ExitCode {
    crate::run_async("specwire conformance", async {
        match dispatch(args).await {
            Ok(code) => code,
            Err(message) => {
                eprintln!("specwire conformance: {message}");
                ExitCode::from(2)
            }
        }
    })
}

async fn dispatch(args: Args) -> Result<ExitCode, String> {
    match args.family {
        Family::Task(task) => run_suite(task).await,
        Family::Discovery(discovery) => run_suite(discovery).await,
        Family::Replay(replay) => run_replay(replay).await,
        Family::Subscription(subscription) => run_suite(subscription).await,
        Family::Device(device) => run_suite(device).await,
        Family::Chat(chat) => run_suite(chat).await,
        Family::Uart(pending) => {
            let _ = pending;
            Err(
                "this family has no conformance cases yet (see generated/docs/conformance.md)"
                    .into(),
            )
        }
    }
}

/// Runs the suite `args` describe and writes its reports.
async fn run_suite<A: SuiteArgs>(args: A) -> Result<ExitCode, String> {
    let family = A::Suite::FAMILY;
    let common = args.common();
    if common.list {
        return Ok(list(family));
    }
    let paths = report_paths(common)?;
    let expected = expected(common, family)?;
    let target = args.target().await?;
    let selection = selection(common);
    let plan = specwire_conformance::suite::plan::<A::Suite>(&selection);
    args.announce(&target, &plan);
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut progress = Progress::new(plan.len());
    let results =
        specwire_conformance::suite::run::<A::Suite>(&target, &selection, &mut progress).await;
    let report = Report::new(
        family,
        &A::Suite::describe(&target),
        started_at,
        started.elapsed(),
        &results,
        &expected,
    );
    for result in &results {
        if let Some(path) = &result.replay {
            eprintln!("specwire: {} failed; replay bundle: {path}", result.spec.id);
        }
    }
    finish(&report, common, &paths)
}

async fn run_replay(args: ReplayArgs) -> Result<ExitCode, String> {
    let bundle = Bundle::read(&args.file)?;
    let endpoint = args
        .target
        .target
        .clone()
        .unwrap_or_else(|| bundle.target.clone());
    println!(
        "replaying {} against {endpoint} (it failed with: {})",
        bundle.case, bundle.reason
    );
    if let Some(steps) = &bundle.steps {
        let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
        println!("steps: {}", steps.join(", "));
    }
    let result = match bundle.family.as_str() {
        "task" => {
            let target = args.target.task_target(Some(&endpoint)).await?;
            specwire_conformance::suite::replay::<TaskSuite>(&target, &bundle.clone().typed()?)
                .await?
        }
        "subscription" => {
            let mut target = args.hub.target(&endpoint)?;
            args.target
                .shared_into(&mut target.extra_roots, &mut target.reply_timeout);
            specwire_conformance::suite::replay::<SubscriptionSuite>(
                &target,
                &bundle.clone().typed()?,
            )
            .await?
        }
        "device" => {
            let mut target = args.device.target(&endpoint).await?;
            args.target
                .shared_into(&mut target.extra_roots, &mut target.reply_timeout);
            specwire_conformance::suite::replay::<DeviceSuite>(&target, &bundle.clone().typed()?)
                .await?
        }
        "chat" => {
            let mut unused = Vec::new();
            let mut timeout = std::time::Duration::ZERO;
            args.target.shared_into(&mut unused, &mut timeout);
            let target = chat::chat_target(&endpoint, timeout)?;
            specwire_conformance::suite::replay::<ChatSuite>(&target, &bundle.clone().typed()?)
                .await?
        }
        family => {
            return Err(format!(
                "{}: replay of {family} bundles is not supported yet",
                args.file.display()
            ))
        }
    };
    for line in result.transcript.lines() {
        println!("{line}");
    }
    match &result.verdict {
        Verdict::Fail { reason } => {
            println!("{}: FAIL again: {reason}", bundle.case);
            Ok(ExitCode::from(1))
        }
        Verdict::Pass => {
            println!("{}: passes now", bundle.case);
            Ok(ExitCode::SUCCESS)
        }
        other => {
            println!(
                "{}: {}: {}",
                bundle.case,
                other.name(),
                other.reason().unwrap_or("")
            );
            Ok(ExitCode::from(3))
        }
    }
}
