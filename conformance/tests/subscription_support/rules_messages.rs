//! The faults that act on messages: what the client sends (refused,
//! swallowed, mended, subscriptions changed behind its back) and what the
//! hub sends (edited, dropped, duplicated, held back).

use super::*;

/// The client messages the profile knows.
const CLIENT_TYPES: &[&str] = &["system_status", "ping", "pong", "publish"];

/// A subscription reply made by the proxy.
fn reply(action: &str, (kind, id): &Res) -> String {
    json!({"type": "system_status", "id": new_id(), "timestamp": now_rfc3339(),
           "data": {"action": action, "resourceType": kind, "resourceId": id, "status": "success"}})
    .to_string()
}

fn request(action: &str, (kind, id): &Res) -> String {
    json!({"type": "system_status", "id": new_id(), "timestamp": now_rfc3339(),
           "data": {"action": action, "resourceType": kind, "resourceId": id}})
    .to_string()
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Whether `value` has members beyond `known`.
fn has_extra(value: &Value, known: &[&str]) -> bool {
    value
        .as_object()
        .is_some_and(|object| object.keys().any(|key| !known.contains(&key.as_str())))
}

impl ConnState {
    /// Whether an event is held back ([`Fault::Reorder`]).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Releases what is held.
    pub fn release(&mut self) -> Vec<Action> {
        self.held.drain(..).map(Action::ToClient).collect()
    }

    /// What becomes of a client message.
    pub fn on_client(&mut self, text: &str) -> Vec<Action> {
        let forward = vec![Action::ToHub(text.to_owned())];
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return match self.fault {
                Fault::SwallowMalformed => Vec::new(),
                _ => forward,
            };
        };
        let kind = value["type"].as_str().unwrap_or("");
        let action = str_at(&value, "/data/action");
        match self.fault {
            Fault::RefuseIdLess if value.get("id").is_none() => {
                return vec![Action::ToClient(error("Invalid message format"))]
            }
            Fault::RefuseExtraFields
                if has_extra(&value, &["type", "id", "timestamp", "data"])
                    || (kind == "system_status"
                        && has_extra(
                            &value["data"],
                            &["action", "resourceType", "resourceId"],
                        )) =>
            {
                return vec![Action::ToClient(error("Invalid message format"))]
            }
            Fault::SwallowUnknownType if !CLIENT_TYPES.contains(&kind) => return Vec::new(),
            Fault::SwallowBadFields
                if action == Some("subscribe")
                    && (!value["data"]["resourceId"].is_string()
                        || !matches!(
                            str_at(&value, "/data/resourceType"),
                            Some("experiment" | "task" | "project" | "user" | "system" | "worker")
                        )) =>
            {
                return Vec::new()
            }
            _ => {}
        }
        if kind == "publish" {
            return self.publish(value, forward);
        }
        if !CLIENT_TYPES.contains(&kind) && self.fault == Fault::ForgetOnUnknownType {
            let mut actions = forward;
            for resource in self.explicit.drain() {
                self.swallow.push(resource.1.clone());
                actions.push(Action::ToHub(request("unsubscribe", &resource)));
            }
            return actions;
        }
        let resource = match (
            str_at(&value, "/data/resourceType"),
            str_at(&value, "/data/resourceId"),
        ) {
            (Some(kind), Some(id)) => res(kind, id),
            _ => return forward,
        };
        match action {
            Some("subscribe") => self.subscribe(resource, forward),
            Some("unsubscribe") => {
                if self.fault == Fault::UnsubscribeIgnored && resource.0 == "experiment" {
                    return vec![Action::ToClient(reply("unsubscribed", &resource))];
                }
                self.explicit.remove(&resource);
                self.unsubscribed.insert(resource);
                forward
            }
            _ => forward,
        }
    }

    fn subscribe(&mut self, resource: Res, mut forward: Vec<Action>) -> Vec<Action> {
        if self.fault == Fault::ResubscribeIgnored && self.unsubscribed.contains(&resource) {
            return vec![Action::ToClient(reply("subscribed", &resource))];
        }
        if self.fault == Fault::LeakWorkersToExperiments && resource.0 == "experiment" {
            self.hidden += 1;
            let hidden = res("system", &format!("proxy-hidden-{}", self.hidden));
            self.swallow.push(hidden.1.clone());
            forward.push(Action::ToHub(request("subscribe", &hidden)));
        }
        self.explicit.insert(resource);
        forward
    }

    fn publish(&mut self, mut value: Value, forward: Vec<Action>) -> Vec<Action> {
        let event = &value["data"];
        if let (Some(id), Some(project), Some(owner)) = (
            str_at(event, "/data/experiment/id"),
            str_at(event, "/data/experiment/projectId"),
            str_at(event, "/data/experiment/ownerId"),
        ) {
            if let Ok(mut hierarchy) = self.shared.hierarchy.lock() {
                hierarchy.insert(id.to_owned(), (project.to_owned(), owner.to_owned()));
            }
        }
        let valid = Message::decode_from(event.clone(), Some(Direction::ServerToClient)).is_ok();
        match self.fault {
            Fault::ErrorAfterPublish if valid => {
                let mut actions = forward;
                actions.push(Action::ToClient(error("Publish failed")));
                actions
            }
            Fault::MendInvalidEvent if !valid => {
                if value["data"]["data"]["experiment"]["status"].is_number() {
                    value["data"]["data"]["experiment"]["status"] = json!("RUNNING");
                }
                vec![Action::ToHub(value.to_string())]
            }
            _ => forward,
        }
    }

    /// The levels (resource types) of the connection's explicit
    /// subscriptions an event matches, and whether its path's resource
    /// matches it.
    fn matches(&self, event: &Value) -> (Vec<String>, bool) {
        let kind = event["type"].as_str().unwrap_or("");
        let mut routes: Vec<Res> = Vec::new();
        let experiment = if kind.starts_with("task_") {
            if let Some(task) =
                str_at(event, "/data/task/id").or_else(|| str_at(event, "/data/taskId"))
            {
                routes.push(res("task", task));
            }
            str_at(event, "/data/task/experimentId").or_else(|| str_at(event, "/data/experimentId"))
        } else if kind.starts_with("experiment_") {
            str_at(event, "/data/experiment/id").or_else(|| str_at(event, "/data/experimentId"))
        } else {
            None
        };
        if let Some(experiment) = experiment {
            routes.push(res("experiment", experiment));
            let parents = self
                .shared
                .hierarchy
                .lock()
                .ok()
                .and_then(|hierarchy| hierarchy.get(experiment).cloned());
            if let Some((project, owner)) = parents {
                routes.push(res("project", &project));
                routes.push(res("user", &owner));
            }
        }
        if kind.starts_with("worker_") {
            if let Some(worker) = str_at(event, "/data/worker/id") {
                routes.push(res("worker", worker));
            }
        }
        let mut levels: Vec<String> = routes
            .iter()
            .filter(|route| self.explicit.contains(*route))
            .map(|route| route.0.clone())
            .collect();
        if kind.starts_with("worker_") && self.explicit.iter().any(|(kind, _)| kind == "system") {
            levels.push("system".into());
        }
        let via_path = self
            .path_resource
            .as_ref()
            .is_some_and(|path| routes.contains(path));
        (levels, via_path)
    }

    /// Whether the routing fault drops `event` on this connection.
    fn dropped(&self, event: &Value) -> bool {
        let kind = event["type"].as_str().unwrap_or("");
        let family = kind.split('_').next().unwrap_or("");
        if kind == "system_status" && event["data"].get("action").is_none() {
            return self.fault == Fault::SystemOnlyToSubscribers
                && !self.explicit.iter().any(|(kind, _)| kind == "system");
        }
        let (levels, via_path) = self.matches(event);
        if via_path || levels.len() != 1 {
            return false;
        }
        let rule = match self.fault {
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
        family == rule.0 && levels[0] == rule.1
    }

    /// What becomes of a hub message.
    pub fn on_hub(&mut self, text: &str) -> Vec<Action> {
        let mut actions = self.release();
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            actions.push(Action::ToClient(text.to_owned()));
            return actions;
        };
        let kind = value["type"].as_str().unwrap_or("").to_owned();
        if let Some(id) = str_at(&value, "/data/resourceId") {
            if value["data"].get("action").is_some() {
                if let Some(at) = self.swallow.iter().position(|swallowed| swallowed == id) {
                    self.swallow.remove(at);
                    return actions;
                }
            }
        }
        let event = events::id_prefix(&value).is_some();
        if event && self.dropped(&value) {
            return actions;
        }
        match (self.fault, kind.as_str()) {
            (Fault::InvalidErrorData, "error") => value["data"] = json!("oops"),
            (Fault::PongWithoutTimestamp, "pong") => {
                if let Some(object) = value.as_object_mut() {
                    object.remove("timestamp");
                }
            }
            (Fault::PongWrongId, "pong") => value["id"] = json!("pong-123"),
            (Fault::DropServerPings, "ping") => return actions,
            (Fault::EventIdsRewritten, _) if event => value["id"] = json!(new_id()),
            (Fault::ReplyWrongResource, "system_status")
                if str_at(&value, "/data/action") == Some("subscribed") =>
            {
                let id = format!("{}-other", str_at(&value, "/data/resourceId").unwrap_or(""));
                value["data"]["resourceId"] = json!(id);
            }
            (Fault::UnsubscribedSaysSubscribed, "system_status")
                if str_at(&value, "/data/action") == Some("unsubscribed") =>
            {
                value["data"]["action"] = json!("subscribed");
            }
            (Fault::UnknownTypeText, "error")
                if str_at(&value, "/error")
                    .is_some_and(|text| text.starts_with("Unknown message type")) =>
            {
                value["error"] = json!("Unsupported message");
            }
            (Fault::TamperEvent, "experiment_updated") => {
                value["data"]["experiment"]["status"] = json!("PAUSED");
            }
            (Fault::DuplicatePerMatch, _) if event => {
                let (levels, _) = self.matches(&value);
                for _ in 1..levels.len() {
                    actions.push(Action::ToClient(value.to_string()));
                }
            }
            (Fault::Reorder, "task_progress")
                if self
                    .matches(&value)
                    .0
                    .iter()
                    .any(|level| level == "experiment") =>
            {
                self.held.push_back(value.to_string());
                return actions;
            }
            _ => {}
        }
        let held = std::mem::take(&mut actions);
        actions.push(Action::ToClient(value.to_string()));
        actions.extend(held);
        actions
    }
}
