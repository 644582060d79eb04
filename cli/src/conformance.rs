//! `specwire conformance`: run a family's conformance suite against an
//! implementation that is already running.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use specwire_conformance::discovery::{DiscoveryTarget, LoadPlan};
use specwire_conformance::replay::Bundle;
use specwire_conformance::report::Report;
use specwire_conformance::runner::{ExpectedFailures, Observer, Selection};
use specwire_conformance::task::{Recipes, TaskTarget};
use specwire_conformance::verdict::{CaseResult, Verdict};
use specwire_protocol::conformance::{case, cases_of, CaseSpec};

use crate::discovery_args::parse_duration;

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
    /// The subscription family (no cases yet).
    Subscription(Pending),
    /// The device family (no cases yet).
    Device(Pending),
    /// The chat family (no cases yet).
    Chat(Pending),
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
}

#[derive(clap::Args)]
struct Pending {
    #[command(flatten)]
    common: Common,
}

/// Options every family's suite takes.
#[derive(clap::Args)]
struct Common {
    /// List the cases (ID, level, title) and exit.
    #[arg(long)]
    list: bool,
    /// Run only cases whose ID starts with this prefix (repeatable;
    /// whole segments: `task.cancel` matches `task.cancel.unknown`).
    #[arg(long, value_name = "PREFIX")]
    only: Vec<String>,
    /// Do not run cases whose ID starts with this prefix (repeatable).
    #[arg(long, value_name = "PREFIX")]
    skip: Vec<String>,
    /// Cases known to fail on this target: one ID per line, `#` comments.
    /// They do not fail the run; any that pass are reported as stale.
    #[arg(long, value_name = "FILE")]
    expect_fail: Option<PathBuf>,
    /// Write a report: `json:PATH` (its schema: schema/reports/conformance-report.schema.json),
    /// `junit:PATH` or `html:PATH` (repeatable).
    #[arg(long, value_name = "FORMAT:PATH")]
    report: Vec<String>,
    /// Write a JUnit XML report (same as --report junit:PATH).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report, each failure with its transcript
    /// (same as --report html:PATH).
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Do not colour the terminal summary.
    #[arg(long)]
    no_color: bool,
}

#[derive(clap::Args)]
struct TaskArgs {
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
struct TargetArgs {
    /// The provider: ws://HOST:PORT or wss://HOST:PORT.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
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

#[derive(clap::Args)]
struct DiscoveryArgs {
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

fn list(family: &str) -> ExitCode {
    let cases: Vec<&CaseSpec> = cases_of(family).collect();
    if cases.is_empty() {
        println!("no conformance cases for {family} yet");
    }
    for spec in cases {
        let needs = if spec.needs.is_empty() {
            String::new()
        } else {
            format!("  (needs: {})", spec.needs.join(", "))
        };
        println!(
            "{:<6} {:<45} {}{needs}",
            spec.level.as_str(),
            spec.id,
            spec.title
        );
    }
    ExitCode::SUCCESS
}

async fn dispatch(args: Args) -> Result<ExitCode, String> {
    match args.family {
        Family::Task(task) => run_task(task).await,
        Family::Discovery(discovery) => run_discovery(discovery).await,
        Family::Replay(replay) => run_replay(replay).await,
        Family::Subscription(pending)
        | Family::Device(pending)
        | Family::Chat(pending)
        | Family::Uart(pending) => {
            let _ = pending;
            Err(
                "this family has no conformance cases yet (see generated/docs/conformance.md)"
                    .into(),
            )
        }
    }
}

fn selection(common: &Common) -> Selection {
    Selection {
        only: common.only.clone(),
        skip: common.skip.clone(),
    }
}

fn expected(common: &Common, family: &str) -> Result<ExpectedFailures, String> {
    match &common.expect_fail {
        None => Ok(ExpectedFailures::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("--expect-fail {}: {error}", path.display()))?;
            ExpectedFailures::parse(&text, |id| {
                case(id).is_some_and(|spec| spec.family == family)
            })
            .map_err(|error| format!("--expect-fail {}: {error}", path.display()))
        }
    }
}

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReportFormat {
    Json,
    Junit,
    Html,
}

/// Report destinations, checked before the run so a typo does not cost one.
fn report_paths(common: &Common) -> Result<Vec<(ReportFormat, PathBuf)>, String> {
    let mut paths: Vec<(ReportFormat, PathBuf)> = common
        .report
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some(("json", path)) if !path.is_empty() => {
                Ok((ReportFormat::Json, PathBuf::from(path)))
            }
            Some(("junit", path)) if !path.is_empty() => {
                Ok((ReportFormat::Junit, PathBuf::from(path)))
            }
            Some(("html", path)) if !path.is_empty() => {
                Ok((ReportFormat::Html, PathBuf::from(path)))
            }
            _ => Err(format!(
                "--report {spec}: expected json:PATH, junit:PATH or html:PATH"
            )),
        })
        .collect::<Result<_, _>>()?;
    paths.extend(
        common
            .junit
            .iter()
            .map(|path| (ReportFormat::Junit, path.clone())),
    );
    paths.extend(
        common
            .html
            .iter()
            .map(|path| (ReportFormat::Html, path.clone())),
    );
    Ok(paths)
}

fn write_reports(report: &Report, paths: &[(ReportFormat, PathBuf)]) -> Result<(), String> {
    for (format, path) in paths {
        let text = match format {
            ReportFormat::Json => report.to_json(),
            ReportFormat::Junit => report.to_junit(),
            ReportFormat::Html => report.to_html(),
        };
        write_file(path, &text)?;
        eprintln!("specwire: wrote {}", path.display());
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("{}: {error}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Progress on stderr: a bar on a terminal, a line per case otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar }
    }
}

impl Observer for Progress {
    fn started(&mut self, spec: &'static CaseSpec, index: usize, total: usize) {
        match &self.bar {
            Some(bar) => bar.set_message(spec.id),
            None => eprintln!("[{}/{total}] {}", index + 1, spec.id),
        }
    }

    fn finished(&mut self, result: &CaseResult) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        } else {
            eprintln!(
                "      {} ({:.0} ms)",
                result.verdict.name(),
                result.duration.as_secs_f64() * 1000.0
            );
        }
    }
}

fn finish(
    report: &Report,
    common: &Common,
    paths: &[(ReportFormat, PathBuf)],
) -> Result<ExitCode, String> {
    let colour = !common.no_color
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    print!("{}", report.to_text(colour));
    write_reports(report, paths)?;
    Ok(ExitCode::from(report.exit_code()))
}

impl TargetArgs {
    /// The task target these options describe (`endpoint` overrides
    /// `--target`).
    async fn task_target(&self, endpoint: Option<&str>) -> Result<TaskTarget, String> {
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

async fn run_task(args: TaskArgs) -> Result<ExitCode, String> {
    if args.common.list {
        return Ok(list("task"));
    }
    let paths = report_paths(&args.common)?;
    let expected = expected(&args.common, "task")?;
    let mut target = args.target.task_target(None).await?;
    target.replay_dir = Some(args.replay_dir.clone());
    eprintln!("specwire: generated sessions start at seed {}", target.seed);
    let selection = selection(&args.common);
    let plan = specwire_conformance::task::plan(&selection);
    let total = plan.len();
    let seconds = |duration: Duration| {
        humantime::format_duration(Duration::from_secs(duration.as_secs_f64().ceil() as u64))
    };
    eprintln!(
        "specwire: {total} cases; whatever the target does, a case ends within {} ({} within {}) and the run within {} (limits from --timeout, --task-timeout, --settle, --session-budget)",
        seconds(specwire_conformance::task::case_limit(&target, "")),
        specwire_conformance::task::GENERATED,
        seconds(specwire_conformance::task::case_limit(
            &target,
            specwire_conformance::task::GENERATED
        )),
        seconds(specwire_conformance::task::run_bound(&target, &plan))
    );
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut progress = Progress::new(total);
    let results = specwire_conformance::task::run(&target, &selection, &mut progress).await;
    let report = Report::new(
        "task",
        &target.endpoint,
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
    finish(&report, &args.common, &paths)
}

async fn run_replay(args: ReplayArgs) -> Result<ExitCode, String> {
    let bundle = Bundle::read(&args.file)?;
    if bundle.family != "task" {
        return Err(format!(
            "{}: replay of {} bundles is not supported yet",
            args.file.display(),
            bundle.family
        ));
    }
    let endpoint = args
        .target
        .target
        .clone()
        .unwrap_or_else(|| bundle.target.clone());
    let target = args.target.task_target(Some(&endpoint)).await?;
    println!(
        "replaying {} against {endpoint} (it failed with: {})",
        bundle.case, bundle.reason
    );
    if let Some(steps) = &bundle.steps {
        let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
        println!("steps: {}", steps.join(", "));
    }
    let result = specwire_conformance::task::replay(&target, &bundle).await?;
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

async fn run_discovery(args: DiscoveryArgs) -> Result<ExitCode, String> {
    if args.common.list {
        return Ok(list("discovery"));
    }
    let port = args
        .discovery_port
        .ok_or("--discovery-port PORT is required")?;
    let paths = report_paths(&args.common)?;
    let expected = expected(&args.common, "discovery")?;
    let mut target = DiscoveryTarget::new(port);
    target.target_address = args.target_address;
    target.heartbeat_wait = args.heartbeat_wait;
    target.service = args.service.clone();
    target.listen = args.listen;
    target.extra_roots = args.ca_cert.clone();
    target.load = args.load_plan()?;
    let selection = selection(&args.common);
    let total = specwire_conformance::discovery::plan(&selection).len();
    if !args.heartbeat_wait.is_zero() {
        eprintln!(
            "specwire: the heartbeat cases wait up to {} (--heartbeat-wait)",
            humantime::format_duration(args.heartbeat_wait)
        );
    }
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut progress = Progress::new(total);
    let results = specwire_conformance::discovery::run(&target, &selection, &mut progress).await;
    let report = Report::new(
        "discovery",
        &target.describe(),
        started_at,
        started.elapsed(),
        &results,
        &expected,
    );
    finish(&report, &args.common, &paths)
}
