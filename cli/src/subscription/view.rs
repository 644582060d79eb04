//! One line per event for a terminal: time, type (coloured by kind) and
//! what changed, e.g.
//!
//! ```text
//! 10:31:00  task_updated         task t-456 RUNNING on worker-789 (experiment exp-123)
//! ```

use anstyle::{AnsiColor, Style};
use specwire_protocol::subscription::Message;

/// The colour of an event type: experiments blue, tasks cyan, workers
/// magenta, system yellow, failures red, completions green.
fn style(kind: &str) -> Style {
    let colour = if kind.ends_with("_failed") || kind == "error" {
        AnsiColor::Red
    } else if kind.ends_with("_completed") {
        AnsiColor::Green
    } else if kind.starts_with("experiment") {
        AnsiColor::Blue
    } else if kind.starts_with("task") {
        AnsiColor::Cyan
    } else if kind.starts_with("worker") {
        AnsiColor::Magenta
    } else {
        AnsiColor::Yellow
    };
    Style::new().fg_color(Some(colour.into())).bold()
}

/// `HH:MM:SS` of an RFC 3339 timestamp (the whole text if it is odd).
fn clock(timestamp: &str) -> &str {
    timestamp.get(11..19).unwrap_or(timestamp)
}

fn optional(value: Option<&str>) -> String {
    value.map(|v| format!(" on {v}")).unwrap_or_default()
}

/// What an event says, in a few words.
pub fn summary(message: &Message) -> (String, &str, String) {
    use Message as M;
    let experiment = |e: &specwire_protocol::subscription::Experiment| {
        format!(
            "experiment {} \"{}\" {} (project {}, owner {})",
            *e.id, e.name, *e.status, *e.project_id, *e.owner_id
        )
    };
    let task = |t: &specwire_protocol::subscription::Task| {
        let error = t
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        format!(
            "task {} {}{} (experiment {}){error}",
            *t.id,
            *t.status,
            optional(t.worker_id.as_deref()),
            *t.experiment_id
        )
    };
    let worker = |w: &specwire_protocol::subscription::Worker| {
        let doing = w
            .current_task_id
            .as_deref()
            .map(|t| format!(" running {t}"))
            .unwrap_or_default();
        format!(
            "worker {} {}{doing} (compute {})",
            *w.id, *w.status, *w.compute_resource_id
        )
    };
    let (kind, timestamp, text): (&str, &str, String) = match message {
        M::ExperimentCreated(e) => (
            "experiment_created",
            &e.timestamp,
            experiment(&e.data.experiment),
        ),
        M::ExperimentUpdated(e) => (
            "experiment_updated",
            &e.timestamp,
            experiment(&e.data.experiment),
        ),
        M::ExperimentCompleted(e) => (
            "experiment_completed",
            &e.timestamp,
            experiment(&e.data.experiment),
        ),
        M::ExperimentFailed(e) => (
            "experiment_failed",
            &e.timestamp,
            experiment(&e.data.experiment),
        ),
        M::ExperimentProgress(e) => {
            let d = &e.data;
            let text = format!(
                "experiment {} {:.0}% ({} of {} done, {} failed, {} running)",
                *d.experiment_id,
                d.progress_percent.0,
                *d.completed_tasks,
                *d.total_tasks,
                *d.failed_tasks,
                *d.running_tasks
            );
            ("experiment_progress", &e.timestamp, text)
        }
        M::TaskCreated(e) => ("task_created", &e.timestamp, task(&e.data.task)),
        M::TaskUpdated(e) => ("task_updated", &e.timestamp, task(&e.data.task)),
        M::TaskCompleted(e) => ("task_completed", &e.timestamp, task(&e.data.task)),
        M::TaskFailed(e) => ("task_failed", &e.timestamp, task(&e.data.task)),
        M::TaskProgress(e) => {
            let d = &e.data;
            let text = format!(
                "task {} {:.0}% {}{} (experiment {})",
                *d.task_id,
                d.progress_percent.0,
                *d.status,
                optional(d.worker_id.as_deref()),
                *d.experiment_id
            );
            ("task_progress", &e.timestamp, text)
        }
        M::WorkerRegistered(e) => ("worker_registered", &e.timestamp, worker(&e.data.worker)),
        M::WorkerUpdated(e) => ("worker_updated", &e.timestamp, worker(&e.data.worker)),
        M::WorkerOffline(e) => ("worker_offline", &e.timestamp, worker(&e.data.worker)),
        M::SystemStatus(e) => {
            let d = &e.data;
            let text = format!(
                "system {} connections ({} active), {} msg/s, latency {}, up {}",
                *d.total_connections,
                *d.active_connections,
                d.messages_per_second,
                d.average_latency,
                d.uptime
            );
            ("system_status", &e.timestamp, text)
        }
        other => {
            let name = specwire_protocol::JsonProtocol::name(other);
            (name, "", String::new())
        }
    };
    (clock(timestamp).to_owned(), kind, text)
}

/// The line for `message`, coloured when `colour`.
pub fn line(message: &Message, colour: bool) -> String {
    let (time, kind, text) = summary(message);
    if colour {
        let style = style(kind);
        format!("{time}  {style}{kind:<21}{style:#}{text}")
    } else {
        format!("{time}  {kind:<21}{text}")
    }
}

/// A resource type's name.
pub fn summary_kind(kind: specwire_protocol::subscription::ResourceType) -> &'static str {
    specwire_runtime::subscription::resource::kind_name(kind)
}

/// A generated enum's wire spelling (`subscribed`, `success`).
pub fn word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}
