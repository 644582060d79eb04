//! What the suite publishes and subscribes to: resources, the fourteen
//! event kinds built valid per their schemas (each carrying a unique
//! label in one of its free text members, so a delivery is recognised
//! whatever the server does to ids), and the subscription requests.
//!
//! Ids follow the seed's formats (`exp_{experimentId}_{timestamp}`,
//! `task_{taskId}_{timestamp}`, `worker_{workerId}_{timestamp}`,
//! `system_{timestamp}`), so a server that keeps them keeps the format.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use specwire_runtime::clock::now_rfc3339;

/// A subscribable resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `experiment`.
    Experiment,
    /// `task`.
    Task,
    /// `project`.
    Project,
    /// `user`.
    User,
    /// `system`.
    System,
    /// `worker`.
    Worker,
}

impl Kind {
    /// Every resource type.
    pub const ALL: [Kind; 6] = [
        Kind::Experiment,
        Kind::Task,
        Kind::Project,
        Kind::User,
        Kind::System,
        Kind::Worker,
    ];

    /// The `resourceType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Experiment => "experiment",
            Kind::Task => "task",
            Kind::Project => "project",
            Kind::User => "user",
            Kind::System => "system",
            Kind::Worker => "worker",
        }
    }
}

/// A resource: its type and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    /// Its type.
    pub kind: Kind,
    /// Its id.
    pub id: String,
}

impl Resource {
    /// `kind:id`.
    pub fn new(kind: Kind, id: impl Into<String>) -> Resource {
        Resource {
            kind,
            id: id.into(),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// An event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `experiment_created`.
    ExperimentCreated,
    /// `experiment_updated`.
    ExperimentUpdated,
    /// `experiment_progress`.
    ExperimentProgress,
    /// `experiment_completed`.
    ExperimentCompleted,
    /// `experiment_failed`.
    ExperimentFailed,
    /// `task_created`.
    TaskCreated,
    /// `task_updated`.
    TaskUpdated,
    /// `task_progress`.
    TaskProgress,
    /// `task_completed`.
    TaskCompleted,
    /// `task_failed`.
    TaskFailed,
    /// `worker_registered`.
    WorkerRegistered,
    /// `worker_updated`.
    WorkerUpdated,
    /// `worker_offline`.
    WorkerOffline,
    /// `system_status` (the health event).
    SystemStatus,
}

impl EventKind {
    /// The experiment events.
    pub const EXPERIMENT: [EventKind; 5] = [
        EventKind::ExperimentCreated,
        EventKind::ExperimentUpdated,
        EventKind::ExperimentProgress,
        EventKind::ExperimentCompleted,
        EventKind::ExperimentFailed,
    ];
    /// The task events.
    pub const TASK: [EventKind; 5] = [
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskProgress,
        EventKind::TaskCompleted,
        EventKind::TaskFailed,
    ];
    /// The worker events.
    pub const WORKER: [EventKind; 3] = [
        EventKind::WorkerRegistered,
        EventKind::WorkerUpdated,
        EventKind::WorkerOffline,
    ];

    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ExperimentCreated => "experiment_created",
            EventKind::ExperimentUpdated => "experiment_updated",
            EventKind::ExperimentProgress => "experiment_progress",
            EventKind::ExperimentCompleted => "experiment_completed",
            EventKind::ExperimentFailed => "experiment_failed",
            EventKind::TaskCreated => "task_created",
            EventKind::TaskUpdated => "task_updated",
            EventKind::TaskProgress => "task_progress",
            EventKind::TaskCompleted => "task_completed",
            EventKind::TaskFailed => "task_failed",
            EventKind::WorkerRegistered => "worker_registered",
            EventKind::WorkerUpdated => "worker_updated",
            EventKind::WorkerOffline => "worker_offline",
            EventKind::SystemStatus => "system_status",
        }
    }

    /// The status a lifecycle event of this kind carries.
    fn status(self) -> &'static str {
        match self {
            EventKind::ExperimentCreated | EventKind::TaskCreated => "CREATED",
            EventKind::ExperimentCompleted | EventKind::TaskCompleted => "COMPLETED",
            EventKind::ExperimentFailed | EventKind::TaskFailed => "FAILED",
            EventKind::WorkerOffline => "OFFLINE",
            _ => "RUNNING",
        }
    }
}

/// An experiment, with what routing needs: its project and owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its id.
    pub id: String,
    /// `projectId`.
    pub project: String,
    /// `ownerId`.
    pub owner: String,
}

/// A fresh label: unique in this process and across processes in
/// practice (a random run part and a counter).
pub fn label() -> String {
    static RUN: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let run = RUN.get_or_init(|| fastrand::u32(..));
    format!("L{run:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The seconds part of event ids.
fn seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn envelope(kind: EventKind, id: String, data: Value) -> Value {
    json!({"type": kind.as_str(), "id": id, "timestamp": now_rfc3339(), "data": data})
}

/// An experiment event of `kind` (one of [`EventKind::EXPERIMENT`]) about
/// `experiment`, labelled `label`.
pub fn experiment_event(kind: EventKind, experiment: &Experiment, label: &str) -> Value {
    let id = format!("exp_{}_{}", experiment.id, seconds());
    let data = if kind == EventKind::ExperimentProgress {
        json!({
            "experimentId": experiment.id, "totalTasks": 10, "completedTasks": 4,
            "failedTasks": 1, "runningTasks": 2, "progressPercent": 40.0,
            "estimatedTimeRemaining": label, "lastUpdated": now_rfc3339()
        })
    } else {
        let status = kind.status();
        json!({
            "experiment": {"id": experiment.id, "name": label, "status": status,
                           "ownerId": experiment.owner, "projectId": experiment.project},
            "summary": {"id": experiment.id, "name": label, "status": status,
                        "ownerId": experiment.owner}
        })
    };
    envelope(kind, id, data)
}

/// A task event of `kind` (one of [`EventKind::TASK`]) about task `task`
/// of experiment `experiment`, labelled `label`.
pub fn task_event(kind: EventKind, task: &str, experiment: &str, label: &str) -> Value {
    let id = format!("task_{task}_{}", seconds());
    let data = if kind == EventKind::TaskProgress {
        json!({
            "taskId": task, "experimentId": experiment, "status": "RUNNING",
            "progressPercent": 50.0, "currentStage": label, "workerId": null,
            "lastUpdated": now_rfc3339()
        })
    } else {
        let status = kind.status();
        let mut task_value = json!({"id": task, "experimentId": experiment, "status": status,
                                    "command": label, "workerId": null});
        let mut summary = json!({"id": task, "experimentId": experiment, "status": status,
                                 "workerId": null});
        if kind == EventKind::TaskFailed {
            task_value["error"] = json!("conformance failure");
            summary["error"] = json!("conformance failure");
        }
        json!({"task": task_value, "summary": summary})
    };
    envelope(kind, id, data)
}

/// A worker event of `kind` (one of [`EventKind::WORKER`]) about `worker`,
/// labelled `label` (its `computeResourceId`).
pub fn worker_event(kind: EventKind, worker: &str, label: &str) -> Value {
    let id = format!("worker_{worker}_{}", seconds());
    let status = kind.status();
    let data = json!({
        "worker": {"id": worker, "computeResourceId": label, "experimentId": "conformance",
                   "status": status, "currentTaskId": null},
        "summary": {"id": worker, "computeResourceId": label, "experimentId": "conformance",
                    "status": status}
    });
    envelope(kind, id, data)
}

/// A `system_status` event labelled `label` (its `uptime`).
pub fn system_event(label: &str) -> Value {
    let data = json!({
        "totalConnections": 1, "activeConnections": 1, "totalMessages": 1,
        "messagesPerSecond": 0.5, "averageLatency": "0.01s", "uptime": label
    });
    envelope(
        EventKind::SystemStatus,
        format!("system_{}", seconds()),
        data,
    )
}

/// The label of an event the suite published, wherever its kind keeps it.
pub fn label_of(event: &Value) -> Option<&str> {
    let data = event.get("data")?;
    let pointer = match event.get("type")?.as_str()? {
        "experiment_progress" => "/estimatedTimeRemaining",
        kind if kind.starts_with("experiment_") => "/experiment/name",
        "task_progress" => "/currentStage",
        kind if kind.starts_with("task_") => "/task/command",
        kind if kind.starts_with("worker_") => "/worker/computeResourceId",
        "system_status" if data.get("action").is_none() => "/uptime",
        _ => return None,
    };
    data.pointer(pointer)?.as_str()
}

/// The admin's `publish` of `event`.
pub fn publish(event: &Value) -> Value {
    json!({"type": "publish", "id": specwire_runtime::clock::new_id(),
           "timestamp": now_rfc3339(), "data": event})
}

/// A subscribe (`subscribe`) or unsubscribe request for `resource`, with
/// an `id` and a `timestamp`.
pub fn request(action: &str, resource: &Resource) -> Value {
    json!({"type": "system_status", "id": specwire_runtime::clock::new_id(),
           "timestamp": now_rfc3339(),
           "data": {"action": action, "resourceType": resource.kind.as_str(),
                    "resourceId": resource.id}})
}

/// A client `ping` with `id`.
pub fn ping(id: &str) -> Value {
    json!({"type": "ping", "id": id, "timestamp": now_rfc3339()})
}

/// The format an event's id should follow, as a prefix and a decimal
/// timestamp after it: `None` for what is not an event.
pub fn id_prefix(event: &Value) -> Option<String> {
    let data = event.get("data")?;
    let text = |pointer: &str| data.pointer(pointer).and_then(Value::as_str);
    match event.get("type")?.as_str()? {
        "experiment_progress" => Some(format!("exp_{}_", text("/experimentId")?)),
        kind if kind.starts_with("experiment_") => {
            Some(format!("exp_{}_", text("/experiment/id")?))
        }
        "task_progress" => Some(format!("task_{}_", text("/taskId")?)),
        kind if kind.starts_with("task_") => Some(format!("task_{}_", text("/task/id")?)),
        kind if kind.starts_with("worker_") => Some(format!("worker_{}_", text("/worker/id")?)),
        "system_status" if data.get("action").is_none() => Some("system_".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use specwire_protocol::subscription::Message;
    use specwire_protocol::{Direction, JsonProtocol};

    fn valid(value: &Value, direction: Direction) {
        if let Err(error) = Message::decode_from(value.clone(), Some(direction)) {
            panic!("{error}: {value}");
        }
    }

    #[test]
    fn every_event_validates_keeps_its_label_and_follows_the_id_format() {
        let experiment = Experiment {
            id: "e-1".into(),
            project: "p-1".into(),
            owner: "u-1".into(),
        };
        let mut events = Vec::new();
        for kind in EventKind::EXPERIMENT {
            events.push(experiment_event(kind, &experiment, &label()));
        }
        for kind in EventKind::TASK {
            events.push(task_event(kind, "t-1", "e-1", &label()));
        }
        for kind in EventKind::WORKER {
            events.push(worker_event(kind, "w-1", &label()));
        }
        events.push(system_event(&label()));
        let mut labels = std::collections::BTreeSet::new();
        for event in &events {
            valid(event, Direction::ServerToClient);
            valid(&publish(event), Direction::ClientToServer);
            assert!(labels.insert(label_of(event).expect("a label").to_owned()));
            let id = event["id"].as_str().unwrap();
            let prefix = id_prefix(event).expect("an event");
            let rest = id.strip_prefix(&prefix).expect(&prefix);
            assert!(rest.bytes().all(|b| b.is_ascii_digit()), "{id}");
        }
        assert_eq!(labels.len(), 14);
        for kind in Kind::ALL {
            let resource = Resource::new(kind, "r-1");
            valid(&request("subscribe", &resource), Direction::ClientToServer);
            valid(
                &request("unsubscribe", &resource),
                Direction::ClientToServer,
            );
        }
        valid(&ping("p-1"), Direction::ClientToServer);
        let reply = json!({"type": "system_status", "id": "x", "timestamp": now_rfc3339(),
                           "data": {"action": "subscribed", "resourceType": "task",
                                    "resourceId": "t", "status": "success"}});
        assert_eq!(label_of(&reply), None);
        assert_eq!(id_prefix(&reply), None);
    }
}
