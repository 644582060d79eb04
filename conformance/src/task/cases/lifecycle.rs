//! Cases about the life of a task: its end, progress, tasks that cannot
//! run, and re-assigning a finished one.

use serde_json::json;
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::Assignment;

use super::super::session::Msg;
use super::super::target::Ctx;
use super::*;
use crate::verdict::{check, fail, Stop};

// ---- lifecycle ---------------------------------------------------------

pub(super) async fn single_terminal(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let (assignment, terminal, _) = run_task(ctx, &mut conn, &recipe).await?;
    let after = conn.barrier(ctx.target.settle).await?;
    let more: Vec<String> = after
        .iter()
        .filter(|msg| msg.is_about(&assignment.task_id) && msg.is_terminal())
        .map(Msg::describe)
        .collect();
    check(more.is_empty(), || {
        format!(
            "task {} ended with {}, then sent {} more terminal message(s): {}",
            assignment.task_id,
            terminal.describe(),
            more.len(),
            more.join(", ")
        )
    })
}

pub(super) async fn monotonic_progress(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.assign(&assignment, None).await?;
    let id = assignment.task_id.clone();
    // What arrived until the end (or the timeout: the progress seen so far
    // is still judged; a task that never ends is another case's failure).
    let updates = match until_terminal(ctx, &mut conn, &id).await {
        Ok((_, before)) => before,
        Err(Stop::Fail(_)) => {
            ctx.note("the task did not end in time; judging the progress seen so far");
            Vec::new()
        }
        Err(other) => return Err(other),
    };
    let progress: Vec<i64> = updates.iter().filter_map(Msg::progress).collect();
    match progress.windows(2).find(|pair| pair[1] < pair[0]) {
        Some(pair) => fail(format!(
            "progressPercentage went down from {} to {} (sequence: {progress:?})",
            pair[0], pair[1]
        )),
        None => Ok(()),
    }
}

pub(super) async fn nothing_after_terminal(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let (assignment, terminal, _) = match run_task(ctx, &mut conn, &recipe).await {
        Ok(done) => done,
        Err(Stop::Fail(reason)) => {
            // No end, nothing after it: task.lifecycle.single-terminal
            // reports a task that does not end.
            ctx.note(&format!("nothing to judge: {reason}"));
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    let after = conn.barrier(ctx.target.settle).await?;
    // A repeated terminal message is single-terminal's failure; anything
    // else about the task is this one's.
    let late: Vec<String> = after
        .iter()
        .filter(|msg| msg.is_about(&assignment.task_id) && !msg.is_terminal())
        .map(Msg::describe)
        .collect();
    check(late.is_empty(), || {
        format!(
            "after its terminal {} the target still sent about task {}: {}",
            terminal.describe(),
            assignment.task_id,
            late.join(", ")
        )
    })
}

pub(super) async fn task_failed(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.fails()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.assign(&assignment, None).await?;
    let (terminal, _) = until_terminal(ctx, &mut conn, &assignment.task_id).await?;
    check(terminal.kind() == "TaskFailed", || {
        format!(
            "the `fails` task ended with {}, not TaskFailed",
            terminal.describe()
        )
    })?;
    check(
        terminal.status() == Some("Failed") && terminal.error_code().is_some(),
        || "the TaskFailed lacks status Failed or an errorCode".into(),
    )
}

// ---- assign -------------------------------------------------------------

/// How a refusal with `FORBIDDEN` is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forbidden {
    /// As an answer: a provider may check authorization first, and a
    /// client granted only named operations is not authorised for one that
    /// does not exist.
    Accepted,
    /// As a sign that the suite's client id is not granted the operation:
    /// the point cannot be judged.
    NotJudged,
}

async fn refused_at_once(
    ctx: &mut Ctx,
    assignment: Assignment,
    code: &str,
    what: &str,
    forbidden: Forbidden,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    conn.assign(&assignment, None).await?;
    let id = assignment.task_id.clone();
    let (reply, _) = conn
        .expect(
            &format!("a TaskFailed for {what}"),
            ctx.target.reply_timeout,
            |msg| (msg.is_about(&id) && msg.is_terminal()) || msg.is_error(None),
        )
        .await?;
    if reply.kind() == "TaskFailed" && reply.error_code() == Some("FORBIDDEN") {
        return match forbidden {
            Forbidden::Accepted => {
                conn.note("FORBIDDEN: the target checks authorization first (allowed)");
                Ok(())
            }
            Forbidden::NotJudged => Err(Stop::Harness(format!(
                "{what} was refused with FORBIDDEN: the suite's --client-id {} is not granted {}/{} by the target's ACL",
                ctx.target.client_id, assignment.service, assignment.operation
            ))),
        };
    }
    check(
        reply.kind() == "TaskFailed" && reply.error_code() == Some(code),
        || {
            format!(
                "{what} was answered with {}, not TaskFailed {code}",
                reply.describe()
            )
        },
    )
}

pub(super) async fn unknown_operation(ctx: &mut Ctx) -> Result<(), Stop> {
    let assignment = unknown_operation_task(ctx);
    refused_at_once(
        ctx,
        assignment,
        "UNKNOWN_OPERATION",
        "an unknown operation",
        Forbidden::Accepted,
    )
    .await
}

pub(super) async fn unknown_service(ctx: &mut Ctx) -> Result<(), Stop> {
    let operation = ctx
        .target
        .recipes
        .succeeds
        .as_ref()
        .map_or("noop".to_owned(), |recipe| recipe.operation.clone());
    let assignment = Assignment {
        task_id: task_id(),
        service: "SpecwireNoSuchService".into(),
        operation,
        parameters: Default::default(),
        client_id: Some(ctx.target.client_id.clone()),
    };
    refused_at_once(
        ctx,
        assignment,
        "UNKNOWN_OPERATION",
        "an unknown service",
        Forbidden::Accepted,
    )
    .await
}

pub(super) async fn invalid_parameters(ctx: &mut Ctx) -> Result<(), Stop> {
    let advertisement = ctx.target.advertisement.clone().ok_or_else(|| {
        Stop::Skip("needs the target's advertisement: pass --discovery-port (and --service if it offers several)".into())
    })?;
    // An advertised setting, and a value of another JSON type.
    let typed = advertisement.capabilities.iter().find_map(|capability| {
        capability.settings.iter().find_map(|setting| {
            setting.0.iter().next().map(|(kind, name)| {
                let wrong = match kind.to_string().as_str() {
                    "string" => json!(12345),
                    _ => json!("not-a-number"),
                };
                (capability.key.clone(), name.clone(), wrong)
            })
        })
    });
    let Some((operation, name, wrong)) = typed else {
        return Err(Stop::Skip(
            "the advertisement has no typed setting to break".into(),
        ));
    };
    let mut parameters = serde_json::Map::new();
    parameters.insert(name.clone(), wrong);
    let assignment = Assignment {
        task_id: task_id(),
        service: advertisement.service_name.clone(),
        operation: operation.clone(),
        parameters,
        client_id: Some(ctx.target.client_id.clone()),
    };
    ctx.note(&format!(
        "{operation}: `{name}` gets a value of the wrong type"
    ));
    refused_at_once(
        ctx,
        assignment,
        "INVALID_PARAMETERS",
        "a parameter of the wrong type",
        Forbidden::NotJudged,
    )
    .await
}

pub(super) async fn broken_envelope(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let message_id = new_id();
    let no_task_id = json!({
        "type": "AssignTask", "messageId": message_id, "timestamp": specwire_runtime::clock::now_rfc3339(),
        "payload": {"serviceName": service_or_placeholder(ctx), "operation": "noop", "taskParameters": {}}
    });
    conn.send_invalid(&no_task_id.to_string()).await?;
    let (reply, _) = conn
        .expect(
            "an Error for an AssignTask without taskId",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error" || msg.is_terminal() || msg.kind() == "TaskStatusUpdate",
        )
        .await?;
    check(reply.is_error(Some("INVALID_MESSAGE")), || {
        format!(
            "an AssignTask without taskId was answered with {}, not Error INVALID_MESSAGE",
            reply.describe()
        )
    })?;
    conn.still_open("an AssignTask without taskId").await
}

// ---- idempotency --------------------------------------------------------

pub(super) async fn reassign_finished(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    let text = conn.assign(&assignment, None).await?.text;
    let id = assignment.task_id.clone();
    let (first, _) = until_terminal(ctx, &mut conn, &id).await?;
    // Whatever the first run still sends is other cases' business.
    conn.barrier(ctx.target.settle).await?;
    // The very same message again.
    conn.send(&text).await?;
    let after = conn.barrier(ctx.target.settle).await?;
    let about: Vec<&Msg> = after.iter().filter(|msg| msg.is_about(&id)).collect();
    let restarted: Vec<String> = about
        .iter()
        .filter(|msg| !msg.is_terminal() && msg.kind() == "TaskStatusUpdate")
        .map(|msg| msg.describe())
        .collect();
    check(restarted.is_empty(), || {
        format!(
            "re-sending the AssignTask of finished task {id} started it again: {}",
            restarted.join(", ")
        )
    })?;
    let terminals: Vec<&&Msg> = about.iter().filter(|msg| msg.is_terminal()).collect();
    check(terminals.len() <= 1, || {
        format!(
            "re-sending the AssignTask of finished task {id} gave {} terminal messages",
            terminals.len()
        )
    })?;
    if let Some(again) = terminals.first() {
        check(again.kind() == first.kind(), || {
            format!(
                "the task ended with {}, but the re-assign was answered with {}",
                first.describe(),
                again.describe()
            )
        })?;
        if first.kind() == "TaskResult" {
            check(
                again.payload().get("resultData") == first.payload().get("resultData"),
                || {
                    "the re-assign's TaskResult has other resultData than the first: the task ran again".into()
                },
            )?;
        }
    } else {
        check(!about.is_empty(), || {
            format!("re-sending the AssignTask of finished task {id} got no answer with the task's state")
        })?;
    }
    Ok(())
}
