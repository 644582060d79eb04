//! `specwire task assign`: discover a provider, assign one task, follow it
//! to its end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use specwire_protocol::discovery::SettingType;
use specwire_runtime::discovery::{RepositoryConfig, ServiceEntry, ServiceRepository};
use specwire_runtime::task::{
    ClientConfig, ClientError, TaskClient, TaskEvent, TaskHandle, TaskOutcome,
};

use crate::discovery_args::DiscoveryArgs;
use crate::duration::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Assign one task and wait for its outcome.
    ///
    /// Without --endpoint the provider is found by UDP discovery: an
    /// `Online` instance before a busy one, the lowest load first, one that
    /// offers --op. Shows progress (a bar on a terminal, lines otherwise)
    /// and prints the result data as JSON. Ctrl-C cancels the task on the
    /// provider. Exit status: 0 completed, 1 failed, cancelled or
    /// unreachable, 2 usage error.
    Assign(AssignArgs),
}

#[derive(clap::Args)]
struct AssignArgs {
    /// The service (`serviceName`), e.g. ImageProcessingService.
    #[arg(long)]
    service: String,
    /// The operation, e.g. resizeImage.
    #[arg(long = "op", value_name = "OPERATION")]
    operation: String,
    /// A task parameter (repeatable). `k=v` takes the type the provider
    /// advertises for `k` (string, int, float, bool), or guesses it from
    /// `v` when unknown; `k:=JSON` sets any JSON value.
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Connect to this provider instead of discovering one.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Authenticate with this API key.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Client id (default: a new UUID).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// Trust this PEM CA certificate for wss:// (e.g. a self-signed provider).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// How long to wait for a provider to be discovered.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    discovery_timeout: Duration,
    /// Give up on the task after this long (it is cancelled on the provider).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Connection attempts (with exponential backoff) before a provider
    /// counts as unreachable.
    #[arg(long, default_value_t = 5, value_name = "N")]
    retries: u32,
    /// Do not retry on another discovered provider when the chosen one
    /// becomes unreachable.
    #[arg(long)]
    no_failover: bool,
    /// Progress display: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Progress {
    Auto,
    Bar,
    Lines,
    None,
}

pub fn run(args: Args) -> ExitCode {
    let Command::Assign(args) = args.command;
    crate::run_async("specwire task assign", async {
        let (code, message) = match assign(args).await {
            Ok(code) => return code,
            Err(Failure::Usage(message)) => (2, message),
            Err(Failure::Run(message)) => (1, message),
        };
        eprintln!("specwire task assign: {message}");
        ExitCode::from(code)
    })
}

enum Failure {
    Usage(String),
    Run(String),
}

/// Parses `--param`s, typed by the advertised settings when known.
fn parameters(
    params: &[String],
    types: &HashMap<String, SettingType>,
) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for param in params {
        if let Some((key, json)) = param.split_once(":=") {
            let value = serde_json::from_str(json)
                .map_err(|error| format!("--param {param}: `{json}` is not JSON: {error}"))?;
            map.insert(key.to_owned(), value);
            continue;
        }
        let Some((key, text)) = param.split_once('=') else {
            return Err(format!("--param `{param}` is not K=V or K:=JSON"));
        };
        if key.is_empty() {
            return Err(format!("--param `{param}` has an empty name"));
        }
        let value = match types.get(key) {
            Some(SettingType::String) => Value::String(text.to_owned()),
            Some(SettingType::Int) => Value::from(text.parse::<i64>().map_err(|_| {
                format!("--param {key}: the provider expects an integer, not `{text}`")
            })?),
            Some(SettingType::Float) => {
                let number = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                Value::Number(number.ok_or_else(|| {
                    format!("--param {key}: the provider expects a number, not `{text}`")
                })?)
            }
            Some(SettingType::Bool) => Value::Bool(text.parse::<bool>().map_err(|_| {
                format!("--param {key}: the provider expects true or false, not `{text}`")
            })?),
            // Unknown: numbers and booleans as such, anything else a string.
            None => match serde_json::from_str::<Value>(text) {
                Ok(value @ (Value::Number(_) | Value::Bool(_))) => value,
                _ => Value::String(text.to_owned()),
            },
        };
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

fn setting_types(entry: &ServiceEntry, operation: &str) -> HashMap<String, SettingType> {
    entry
        .advertisement
        .capabilities
        .iter()
        .filter(|capability| capability.key == operation)
        .flat_map(|capability| capability.settings.iter())
        .flat_map(|setting| setting.0.iter().map(|(kind, name)| (name.clone(), *kind)))
        .collect()
}

async fn assign(args: AssignArgs) -> Result<ExitCode, Failure> {
    let targets = args.discovery.targets().map_err(Failure::Usage)?;
    let repository = match &args.endpoint {
        Some(_) => None,
        None => {
            let config = RepositoryConfig {
                port: args.discovery.discovery_port,
                bind: args.discovery.discovery_bind,
                targets,
                ..RepositoryConfig::default()
            };
            Some(ServiceRepository::start(config).map_err(|error| {
                Failure::Run(format!(
                    "discovery on UDP port {}: {error}",
                    args.discovery.discovery_port
                ))
            })?)
        }
    };
    let mut tried: Vec<String> = Vec::new();
    loop {
        let (endpoint, types) = match (&args.endpoint, &repository) {
            (Some(endpoint), _) => (endpoint.clone(), HashMap::new()),
            (None, Some(repository)) => {
                let entry = find_provider(repository, &args, &tried).await?;
                eprintln!(
                    "specwire: {} {} at {} ({}, load {:.2})",
                    entry.service_name(),
                    entry.service_id(),
                    entry.endpoint(),
                    entry.advertisement.status,
                    entry.load()
                );
                tried.push(entry.service_id().to_owned());
                (
                    entry.endpoint().to_owned(),
                    setting_types(&entry, &args.operation),
                )
            }
            (None, None) => return Err(Failure::Usage("no endpoint and no discovery".into())),
        };
        let params = parameters(&args.params, &types).map_err(Failure::Usage)?;
        match run_task(&args, &endpoint, params).await {
            Err(ClientError::Unavailable { .. }) | Err(ClientError::Lost { .. })
                if repository.is_some() && !args.no_failover =>
            {
                eprintln!("specwire: {endpoint} became unreachable; trying another provider");
                continue;
            }
            result => return report(result),
        }
    }
}

async fn find_provider(
    repository: &ServiceRepository,
    args: &AssignArgs,
    tried: &[String],
) -> Result<ServiceEntry, Failure> {
    let deadline = tokio::time::Instant::now() + args.discovery_timeout;
    let mut events = repository.subscribe();
    // One pick per run: round-robin across runs is the repository's job.
    let mut round_robin = 0;
    loop {
        let candidates: Vec<ServiceEntry> = repository
            .services()
            .into_iter()
            .filter(|entry| !tried.iter().any(|id| id == entry.service_id()))
            .collect();
        if let Some(entry) = specwire_runtime::discovery::select_instance(
            &candidates,
            &args.service,
            Some(&args.operation),
            std::time::Instant::now(),
            repository.expiry(),
            &mut round_robin,
        ) {
            return Ok(entry.clone());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => {
                let what = if tried.is_empty() { "no" } else { "no other" };
                return Err(Failure::Run(format!(
                    "{what} provider of {} offering {} answered within {} on UDP port {} (is `specwire serve task` running? use --endpoint to skip discovery)",
                    args.service,
                    args.operation,
                    humantime::format_duration(args.discovery_timeout),
                    args.discovery.discovery_port
                )));
            }
        }
    }
}

fn report(result: Result<TaskOutcome, ClientError>) -> Result<ExitCode, Failure> {
    match result {
        Ok(TaskOutcome::Completed(data)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Value::Object(data)).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(TaskOutcome::Failed(failure)) => Err(Failure::Run(format!("task failed: {failure}"))),
        Ok(TaskOutcome::Cancelled { progress }) => {
            Err(Failure::Run(format!("task cancelled at {progress}%")))
        }
        Err(error) => Err(Failure::Run(error.to_string())),
    }
}

async fn run_task(
    args: &AssignArgs,
    endpoint: &str,
    params: Map<String, Value>,
) -> Result<TaskOutcome, ClientError> {
    let mut config = ClientConfig::new(endpoint);
    config.api_key = args.api_key.clone();
    config.extra_roots = args.ca_cert.clone();
    config.connect_attempts = args.retries.max(1);
    if let Some(id) = &args.client_id {
        config.client_id = id.clone();
    }
    let client = TaskClient::connect(config).await?;
    let task = client
        .assign(&args.service, &args.operation, Value::Object(params))
        .await?;
    eprintln!("specwire: task {} assigned", task.task_id());
    let outcome = follow(task, args).await;
    client.close().await;
    outcome
}

/// Shows progress until the end; Ctrl-C or --timeout cancels the task.
async fn follow(mut task: TaskHandle, args: &AssignArgs) -> Result<TaskOutcome, ClientError> {
    let mode = match args.progress {
        Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
        Progress::Auto => Progress::Lines,
        other => other,
    };
    let bar = (mode == Progress::Bar).then(|| {
        let bar = ProgressBar::new(100);
        let style = ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let started = Instant::now();
    let deadline = args
        .timeout
        .map(|timeout| tokio::time::Instant::now() + timeout);
    let mut cancelling = false;
    let outcome = loop {
        let timer = async {
            match deadline {
                Some(deadline) if !cancelling => tokio::time::sleep_until(deadline).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            event = task.next() => match event {
                Some(TaskEvent::Progress(update)) => {
                    let note = update.message.clone().unwrap_or_default();
                    match &bar {
                        Some(bar) => {
                            bar.set_position(u64::from(update.progress));
                            bar.set_message(format!("{} {note}", update.status));
                        }
                        None if mode == Progress::Lines => eprintln!(
                            "progress {:>3}% {} {note} ({:.1}s)",
                            update.progress,
                            update.status,
                            started.elapsed().as_secs_f64()
                        ),
                        None => {}
                    }
                }
                Some(TaskEvent::Finished(outcome)) => break outcome,
                None => break Err(ClientError::Closed),
            },
            _ = tokio::signal::ctrl_c(), if !cancelling => {
                cancelling = true;
                eprintln!("specwire: cancelling task {} (Ctrl-C again to quit at once)", task.task_id());
                task.cancel();
                // A second Ctrl-C exits without waiting.
                tokio::spawn(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                });
            }
            () = timer => {
                cancelling = true;
                eprintln!("specwire: --timeout reached; cancelling task {}", task.task_id());
                task.cancel();
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if outcome.is_ok() {
        eprintln!(
            "specwire: task ended after {:.2}s",
            started.elapsed().as_secs_f64()
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_follow_advertised_types_or_guess() {
        let types: HashMap<String, SettingType> = [
            ("width".to_owned(), SettingType::Int),
            ("name".to_owned(), SettingType::String),
            ("size".to_owned(), SettingType::Float),
            ("keep".to_owned(), SettingType::Bool),
        ]
        .into_iter()
        .collect();
        let params: Vec<String> = [
            "width=10",
            "name=123",
            "size=1.5",
            "keep=true",
            "other=7",
            "path=/a b",
            "raw:={\"x\":[1]}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let map = parameters(&params, &types).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"width": 10, "name": "123", "size": 1.5, "keep": true, "other": 7, "path": "/a b", "raw": {"x": [1]}})
        );
        assert!(parameters(&["width=wide".into()], &types)
            .unwrap_err()
            .contains("integer"));
        assert!(parameters(&["novalue".into()], &types)
            .unwrap_err()
            .contains("K=V"));
        assert!(parameters(&["=1".into()], &types)
            .unwrap_err()
            .contains("empty name"));
        assert!(parameters(&["x:={".into()], &types)
            .unwrap_err()
            .contains("not JSON"));
    }
}
