//! Cases about `CancelTask`, `GetStatus` and `GetResult`.

use specwire_runtime::task::messages;

use super::super::session::Msg;
use super::super::target::{Ctx, Recipe};
use super::*;
use crate::verdict::{check, Stop};

// ---- cancel --------------------------------------------------------------

/// Runs a task to its end, cancels it, and returns what came after.
async fn cancel_after_end(ctx: &mut Ctx) -> Result<(String, Vec<Msg>), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let (assignment, _, _) = run_task(ctx, &mut conn, &recipe).await?;
    let id = assignment.task_id.clone();
    conn.barrier(ctx.target.settle).await?;
    conn.send(&messages::cancel(&id, Some(&ctx.target.client_id), None).text)
        .await?;
    // Wait for something about the task (the Error), then settle.
    let first = conn
        .expect(
            "an answer to the CancelTask",
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) || msg.kind() == "Error",
        )
        .await?
        .0;
    let mut after = vec![first];
    after.extend(conn.barrier(ctx.target.settle).await?);
    Ok((id, after))
}

pub(super) async fn cancel_finished(ctx: &mut Ctx) -> Result<(), Stop> {
    let (id, after) = cancel_after_end(ctx).await?;
    let terminals: Vec<String> = after
        .iter()
        .filter(|msg| msg.is_about(&id) && msg.is_terminal())
        .map(Msg::describe)
        .collect();
    check(terminals.is_empty(), || {
        format!(
            "CancelTask for finished task {id} was answered with a second terminal message: {}",
            terminals.join(", ")
        )
    })?;
    check(after.iter().any(|msg| msg.kind() == "Error"), || {
        format!("CancelTask for finished task {id} got no Error")
    })
}

/// `message` about unknown task `id` gets `Error code`.
async fn expect_error(
    ctx: &mut Ctx,
    message: messages::Built,
    id: &str,
    code: &str,
    what: &str,
) -> Result<(), Stop> {
    refused_with(ctx, Outgoing::Valid(&message.text), Some(id), code, what)
        .await
        .map(|_| ())
}

pub(super) async fn cancel_unknown(ctx: &mut Ctx) -> Result<(), Stop> {
    let id = task_id();
    let message = messages::cancel(&id, Some(&ctx.target.client_id), None);
    expect_error(
        ctx,
        message,
        &id,
        "TASK_NOT_FOUND",
        "CancelTask for an unknown task",
    )
    .await
}

pub(super) async fn cancel_race(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    let id = assignment.task_id.clone();
    conn.assign(&assignment, None).await?;
    conn.send(&messages::cancel(&id, Some(&ctx.target.client_id), None).text)
        .await?;
    let (terminal, before) = until_terminal(ctx, &mut conn, &id).await?;
    let after = conn.barrier(ctx.target.settle).await?;
    let more: Vec<String> = after
        .iter()
        .filter(|msg| msg.is_about(&id) && msg.is_terminal())
        .map(Msg::describe)
        .collect();
    check(more.is_empty(), || {
        format!(
            "task {id}, cancelled at once, ended with {} and then again with {}",
            terminal.describe(),
            more.join(", ")
        )
    })?;
    if terminal.status() == Some("Cancelled") {
        let last = before.iter().filter_map(Msg::progress).max();
        if let (Some(last), Some(at)) = (last, terminal.progress()) {
            check(at >= last, || {
                format!(
                    "the Cancelled update carries progress {at}, below the last reported {last}"
                )
            })?;
        }
    }
    Ok(())
}

// ---- query -----------------------------------------------------------------

pub(super) async fn status_unknown(ctx: &mut Ctx) -> Result<(), Stop> {
    let id = task_id();
    expect_error(
        ctx,
        messages::get_status(&id),
        &id,
        "TASK_NOT_FOUND",
        "GetStatus for an unknown task",
    )
    .await
}

pub(super) async fn result_unknown(ctx: &mut Ctx) -> Result<(), Stop> {
    let id = task_id();
    expect_error(
        ctx,
        messages::get_result(&id),
        &id,
        "TASK_NOT_FOUND",
        "GetResult for an unknown task",
    )
    .await
}

/// Runs `recipe` to any end, then asks for its status or result.
/// `expected` is the message kind the query must get (`None`: the terminal
/// message the task ended with).
async fn query_finished(
    ctx: &mut Ctx,
    recipe: Recipe,
    result: bool,
    expected: Option<&str>,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.assign(&assignment, None).await?;
    let id = assignment.task_id.clone();
    let (terminal, _) = until_terminal(ctx, &mut conn, &id).await?;
    conn.barrier(ctx.target.settle).await?;
    let query = if result {
        messages::get_result(&id)
    } else {
        messages::get_status(&id)
    };
    let name = if result { "GetResult" } else { "GetStatus" };
    conn.send(&query.text).await?;
    let message_id = query.message_id.clone();
    let (reply, _) = conn
        .expect(
            &format!("an answer to {name} for finished task {id}"),
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) || msg.related() == Some(&message_id) || msg.is_error(None),
        )
        .await?;
    let fits = match expected {
        Some(kind) => reply.kind() == kind,
        // The terminal message it ended with, not just any.
        None => {
            reply.is_terminal()
                && reply.kind() == terminal.kind()
                && reply.status() == terminal.status()
        }
    };
    check(fits, || {
        format!(
            "{name} for task {id}, which ended with {}, was answered with {}, not {}",
            terminal.describe(),
            reply.describe(),
            expected.unwrap_or("its terminal message")
        )
    })
}

pub(super) async fn status_finished(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    query_finished(ctx, recipe, false, None).await
}

pub(super) async fn result_finished(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    query_finished(ctx, recipe, true, Some("TaskResult")).await
}

pub(super) async fn result_failed(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.fails()?;
    query_finished(ctx, recipe, true, Some("TaskFailed")).await
}
