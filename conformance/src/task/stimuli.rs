//! The stimuli the task suite sends that are not one case's own: fresh
//! task ids, assignments of a recipe or of an unknown operation, and a
//! message of an unknown type. Built with the runtime's message builders
//! where one exists.

use serde_json::json;
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::Assignment;

use super::target::{Ctx, Recipe};

/// A fresh task id.
pub(crate) fn task_id() -> String {
    format!("conformance-{}", new_id())
}

/// An `AssignTask` for `recipe` with a fresh task id.
pub(crate) fn assignment(recipe: &Recipe, client_id: &str) -> Assignment {
    Assignment {
        task_id: task_id(),
        service: recipe.service.clone().unwrap_or_default(),
        operation: recipe.operation.clone(),
        parameters: recipe.parameters.clone(),
        client_id: Some(client_id.to_owned()),
    }
}

/// A task for an operation no target offers, of the target's service: it
/// ends at once in `TaskFailed UNKNOWN_OPERATION`, so every target can be
/// given a task without a recipe.
pub(crate) fn unknown_operation_task(ctx: &Ctx) -> Assignment {
    Assignment {
        task_id: task_id(),
        service: service_or_placeholder(ctx),
        operation: "specwireNoSuchOperation".into(),
        parameters: Default::default(),
        client_id: Some(ctx.target.client_id.clone()),
    }
}

pub(crate) fn service_or_placeholder(ctx: &Ctx) -> String {
    ctx.target
        .service_name()
        .unwrap_or_else(|| "SpecwireConformanceService".into())
}

/// A message of a type no family has: its `messageId` and text.
pub(crate) fn unknown_type_message() -> (String, String) {
    let message_id = new_id();
    let text = json!({
        "type": "SpecwireNoSuchMessage", "messageId": message_id,
        "timestamp": specwire_runtime::clock::now_rfc3339(), "payload": {}
    })
    .to_string();
    (message_id, text)
}
