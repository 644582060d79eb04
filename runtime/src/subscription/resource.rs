//! Resources, the paths that name them, and where an event goes.
//!
//! # How an event names the resources above it
//!
//! The seed's routing table sends a task event to the task's, its
//! experiment's, that experiment's project's and its owner's subscribers.
//! A task event names its task and experiment itself (`task.id`,
//! `task.experimentId`, or `taskId`/`experimentId` in `task_progress`) but
//! not the project or owner. Those come from what the hub learnt: every
//! experiment lifecycle event (`experiment_created`, `_updated`,
//! `_completed`, `_failed`) carries `experiment.projectId` and
//! `experiment.ownerId`, and the hub remembers the latest pair per
//! experiment (at most [`HubConfig::known_experiments`], oldest forgotten
//! first). A task or `experiment_progress` event for an experiment the hub
//! has not heard of reaches only the task's and experiment's subscribers.
//! This is written into `schema/subscription/manifest.json` too.
//!
//! [`HubConfig::known_experiments`]: super::HubConfig::known_experiments

use std::fmt;
use std::str::FromStr;

use specwire_protocol::subscription::{PublishData, ResourceType};

/// One subscribable thing: `experiment:exp-1`, `user:alice`, `system:all`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// What kind.
    pub kind: ResourceType,
    /// Which one.
    pub id: String,
}

impl Resource {
    /// `kind:id`.
    pub fn new(kind: ResourceType, id: impl Into<String>) -> Resource {
        Resource {
            kind,
            id: id.into(),
        }
    }

    /// The resource a connection path names: `/ws/experiments/{id}`,
    /// `/ws/tasks/{id}`, `/ws/projects/{id}`, or `/ws/user` (the token's
    /// user, `user`). `None` for any other path (a 404).
    pub fn from_path(path: &str, user: &str) -> Option<Resource> {
        if path == "/ws/user" || path == "/ws/user/" {
            return Some(Resource::new(ResourceType::User, user));
        }
        let rest = path.strip_prefix("/ws/")?;
        let (collection, id) = rest.split_once('/')?;
        let kind = match collection {
            "experiments" => ResourceType::Experiment,
            "tasks" => ResourceType::Task,
            "projects" => ResourceType::Project,
            _ => return None,
        };
        valid_id(id).then(|| Resource::new(kind, id))
    }

    /// Whether `path` is one the hub serves (checked before the token, so
    /// an unknown path is a 404 whatever the credentials).
    pub fn is_known_path(path: &str) -> bool {
        Resource::from_path(path, "-").is_some()
    }
}

/// Ids in paths: 1 to 256 bytes (the schema's bounds), no `/`.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.contains('/')
}

/// The `type` names of the resource kinds.
pub fn kind_name(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Experiment => "experiment",
        ResourceType::Task => "task",
        ResourceType::Project => "project",
        ResourceType::User => "user",
        ResourceType::System => "system",
        ResourceType::Worker => "worker",
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", kind_name(self.kind), self.id)
    }
}

/// Why `kind:id` text is not a resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a resource: write KIND:ID with KIND one of experiment, task, project, user, system, worker (e.g. task:t-1)")]
pub struct ParseResourceError(String);

impl FromStr for Resource {
    type Err = ParseResourceError;

    fn from_str(text: &str) -> Result<Resource, ParseResourceError> {
        let error = || ParseResourceError(text.to_owned());
        let (kind, id) = text.split_once(':').ok_or_else(error)?;
        let kind = match kind {
            "experiment" => ResourceType::Experiment,
            "task" => ResourceType::Task,
            "project" => ResourceType::Project,
            "user" => ResourceType::User,
            "system" => ResourceType::System,
            "worker" => ResourceType::Worker,
            _ => return Err(error()),
        };
        if id.is_empty() || id.len() > 256 {
            return Err(error());
        }
        Ok(Resource::new(kind, id))
    }
}

/// Where one event goes, before what the hub learnt is added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EventRoute {
    /// Resources named by the event itself.
    pub resources: Vec<Resource>,
    /// The experiment whose learnt project and owner also get it.
    pub experiment: Option<String>,
    /// Every connection subscribed to a `system` resource gets it.
    pub system_subscribers: bool,
    /// Every connection gets it (system events).
    pub everyone: bool,
    /// What this event teaches: experiment → (project, owner).
    pub learn: Option<(String, String, String)>,
}

/// The route of a published event.
pub(crate) fn route(event: &PublishData) -> EventRoute {
    use PublishData as E;
    let experiment_event = |experiment: &specwire_protocol::subscription::Experiment| {
        let id = experiment.id.to_string();
        let project = experiment.project_id.to_string();
        let owner = experiment.owner_id.to_string();
        EventRoute {
            resources: vec![
                Resource::new(ResourceType::Experiment, id.clone()),
                Resource::new(ResourceType::Project, project.clone()),
                Resource::new(ResourceType::User, owner.clone()),
            ],
            learn: Some((id, project, owner)),
            ..EventRoute::default()
        }
    };
    let task_event = |task: &str, experiment: &str| EventRoute {
        resources: vec![
            Resource::new(ResourceType::Task, task),
            Resource::new(ResourceType::Experiment, experiment),
        ],
        experiment: Some(experiment.to_owned()),
        ..EventRoute::default()
    };
    let worker_event = |worker: &str| EventRoute {
        resources: vec![Resource::new(ResourceType::Worker, worker)],
        system_subscribers: true,
        ..EventRoute::default()
    };
    match event {
        E::ExperimentCreated(e) => experiment_event(&e.data.experiment),
        E::ExperimentUpdated(e) => experiment_event(&e.data.experiment),
        E::ExperimentCompleted(e) => experiment_event(&e.data.experiment),
        E::ExperimentFailed(e) => experiment_event(&e.data.experiment),
        E::ExperimentProgress(e) => EventRoute {
            resources: vec![Resource::new(
                ResourceType::Experiment,
                e.data.experiment_id.to_string(),
            )],
            experiment: Some(e.data.experiment_id.to_string()),
            ..EventRoute::default()
        },
        E::TaskCreated(e) => task_event(&e.data.task.id, &e.data.task.experiment_id),
        E::TaskUpdated(e) => task_event(&e.data.task.id, &e.data.task.experiment_id),
        E::TaskCompleted(e) => task_event(&e.data.task.id, &e.data.task.experiment_id),
        E::TaskFailed(e) => task_event(&e.data.task.id, &e.data.task.experiment_id),
        E::TaskProgress(e) => task_event(&e.data.task_id, &e.data.experiment_id),
        E::WorkerRegistered(e) => worker_event(&e.data.worker.id),
        E::WorkerUpdated(e) => worker_event(&e.data.worker.id),
        E::WorkerOffline(e) => worker_event(&e.data.worker.id),
        E::SystemStatus(_) => EventRoute {
            everyone: true,
            ..EventRoute::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources_and_nothing_else() {
        let cases = [
            ("/ws/experiments/exp-1", Some("experiment:exp-1")),
            ("/ws/tasks/t-1", Some("task:t-1")),
            ("/ws/projects/p", Some("project:p")),
            ("/ws/user", Some("user:alice")),
            ("/ws/experiments/", None),
            ("/ws/experiments/a/b", None),
            ("/ws/workers/w-1", None),
            ("/ws/users/bob", None),
            ("/", None),
            ("/ws", None),
            ("/ws/tasks", None),
        ];
        for (path, expected) in cases {
            let got = Resource::from_path(path, "alice").map(|r| r.to_string());
            assert_eq!(got.as_deref(), expected, "{path}");
        }
        let long = format!("/ws/tasks/{}", "x".repeat(257));
        assert!(Resource::from_path(&long, "alice").is_none());
    }

    #[test]
    fn resources_parse_from_and_print_as_kind_colon_id() {
        for text in ["task:t-1", "system:all", "user:a:b"] {
            assert_eq!(text.parse::<Resource>().unwrap().to_string(), text);
        }
        for text in ["task", "tasks:t", "task:", ":x"] {
            assert!(text.parse::<Resource>().is_err(), "{text}");
        }
    }
}
