//! The task family's cases, one function per catalog ID
//! (`schema/task/conformance.json`), filed by topic: [`envelope`]
//! (envelope, acknowledgments, malformed messages), [`lifecycle`] (a
//! task's end and progress, tasks that cannot run, re-assigning),
//! [`queries`] (`CancelTask`, `GetStatus`, `GetResult`), [`access`]
//! (authentication, the WebSocket layer); the generated sessions are in
//! [`generated`](super::generated).
//!
//! Each case checks its own spec point and no other, so a target with one
//! fault fails one case: a case that needs a task to end waits for the end
//! and reports only what its point is about (whether the messages were
//! valid is `task.envelope.valid-replies`'s business, whether there was
//! exactly one terminal is `task.lifecycle.single-terminal`'s). And each
//! accepts every outcome the profile allows (the catalog's `accepts`): a
//! message with one outstanding request on a fresh connection takes any
//! `Error` as its answer, named or not, since `relatedMessageId` and an
//! `Error`'s `taskId` are optional.

mod access;
mod envelope;
mod lifecycle;
mod queries;

use specwire_runtime::task::messages::Assignment;

use super::generated;
use super::session::{Conn, Msg, Outgoing, TaskMsg};
use super::stimuli::{
    assignment, service_or_placeholder, task_id, unknown_operation_task, unknown_type_message,
};
use super::target::{Ctx, Recipe};
use crate::suite::Registry;
use crate::verdict::Stop;

/// The task cases, one per catalog ID.
pub(crate) static CASES: Registry<Ctx> = crate::cases!(Ctx {
    "task.envelope.valid-replies" => envelope::valid_replies,
    "task.envelope.unknown-fields-ignored" => envelope::unknown_fields_ignored,
    "task.envelope.large-message" => envelope::large_message,
    "task.ack.first-reply" => envelope::ack_first_reply,
    "task.ack.task-id" => envelope::ack_task_id,
    "task.lifecycle.single-terminal" => lifecycle::single_terminal,
    "task.lifecycle.monotonic-progress" => lifecycle::monotonic_progress,
    "task.lifecycle.nothing-after-terminal" => lifecycle::nothing_after_terminal,
    "task.lifecycle.task-failed" => lifecycle::task_failed,
    "task.assign.unknown-operation" => lifecycle::unknown_operation,
    "task.assign.unknown-service" => lifecycle::unknown_service,
    "task.assign.invalid-parameters" => lifecycle::invalid_parameters,
    "task.assign.broken-envelope" => lifecycle::broken_envelope,
    "task.idempotency.reassign-finished" => lifecycle::reassign_finished,
    "task.cancel.finished" => queries::cancel_finished,
    "task.cancel.unknown" => queries::cancel_unknown,
    "task.cancel.race" => queries::cancel_race,
    "task.query.status-unknown" => queries::status_unknown,
    "task.query.result-unknown" => queries::result_unknown,
    "task.query.status-finished" => queries::status_finished,
    "task.query.result-finished" => queries::result_finished,
    "task.query.result-failed" => queries::result_failed,
    "task.errors.malformed-json" => envelope::malformed_json,
    "task.errors.wrong-types" => envelope::wrong_types,
    "task.errors.unknown-type" => envelope::unknown_type,
    "task.errors.nothing-lost" => envelope::nothing_lost,
    "task.errors.related-message-id" => envelope::related_message_id,
    "task.auth.required-first" => access::auth_required_first,
    "task.auth.wrong-key" => access::auth_wrong_key,
    "task.auth.accepted" => access::auth_accepted,
    "task.auth.forbidden" => access::auth_forbidden,
    "task.websocket.ping" => access::websocket_ping,
    "task.websocket.close" => access::websocket_close,
    "task.generated.sessions" => generated::sessions,
});

/// Cases that must run after every other: they judge the whole run.
pub(crate) const RUN_LAST: &[&str] = &["task.envelope.valid-replies"];

/// Messages about `task_id` up to and including its first terminal one.
async fn until_terminal(
    ctx: &Ctx,
    conn: &mut Conn,
    task_id: &str,
) -> Result<(Msg, Vec<Msg>), Stop> {
    let (terminal, before) = conn
        .expect(
            &format!("a terminal message for task {task_id}"),
            ctx.target.task_timeout,
            |msg| msg.is_about(task_id) && msg.is_terminal(),
        )
        .await?;
    conn.ended(task_id);
    let about: Vec<Msg> = before
        .into_iter()
        .filter(|msg| msg.is_about(task_id))
        .collect();
    Ok((terminal, about))
}

/// Runs `recipe` to its end on `conn`: the assignment, its terminal
/// message and the messages about it before that. A `succeeds` task that
/// does not end in `TaskResult` (or a `fails` task that does not end in
/// `TaskFailed`) stops the case with a harness error: the recipe, the
/// client id or the ACL does not fit this target, and the case's point
/// cannot be judged.
async fn run_task(
    ctx: &Ctx,
    conn: &mut Conn,
    recipe: &Recipe,
) -> Result<(Assignment, Msg, Vec<Msg>), Stop> {
    let assignment = assignment(recipe, &ctx.target.client_id);
    conn.assign(&assignment, None).await?;
    let (terminal, before) = until_terminal(ctx, conn, &assignment.task_id).await?;
    let expected = if Some(recipe) == ctx.target.recipes.fails.as_ref()
        || ctx.fails().ok().as_ref() == Some(recipe)
    {
        "TaskFailed"
    } else {
        "TaskResult"
    };
    if terminal.kind() != expected {
        return Err(Stop::Harness(format!(
            "the {} task ({}/{}) ended with {}, not {expected}: check --tasks, --client-id and the target's ACL",
            if expected == "TaskResult" { "`succeeds`" } else { "`fails`" },
            assignment.service,
            assignment.operation,
            terminal.describe()
        )));
    }
    Ok((assignment, terminal, before))
}

/// Sends `outgoing` on a fresh connection and takes the first `Error` (or
/// the first message about `task`, when given, so a wrong kind of answer
/// is named) as its answer; fails unless that is `Error code`. Returns the
/// connection and the answer.
async fn refused_with(
    ctx: &mut Ctx,
    outgoing: Outgoing<'_>,
    task: Option<&str>,
    code: &str,
    what: &str,
) -> Result<(Conn, Msg), Stop> {
    let mut conn = ctx.connect().await?;
    conn.send_outgoing(outgoing).await?;
    let (reply, _) = conn
        .expect(
            &format!("an answer to {what}"),
            ctx.target.reply_timeout,
            |msg| msg.is_error(None) || task.is_some_and(|id| msg.is_about(id)),
        )
        .await?;
    if !reply.is_error(Some(code)) {
        return Err(Stop::Fail(format!(
            "{what} was answered with {}, not Error {code}",
            reply.describe()
        )));
    }
    Ok((conn, reply))
}

/// A `Fail` that only says nothing came in time becomes a skip naming the
/// case that reports the absence: the point of the caller cannot be
/// judged. Other stops pass through.
fn nothing_to_judge(stop: Stop, reporter: &str) -> Stop {
    match stop {
        Stop::Fail(reason) if reason.starts_with("no ") => Stop::Skip(format!(
            "nothing to judge: {reason} ({reporter} reports that)"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_answer_is_nothing_to_judge_but_other_stops_pass_through() {
        let skipped = nothing_to_judge(Stop::Fail("no Ack within 1s".into()), "task.x.y");
        assert!(matches!(&skipped, Stop::Skip(reason) if reason.contains("task.x.y")));
        let failed = nothing_to_judge(Stop::Fail("the Ack came late".into()), "task.x.y");
        assert_eq!(failed, Stop::Fail("the Ack came late".into()));
        let harness = nothing_to_judge(Stop::Harness("down".into()), "task.x.y");
        assert_eq!(harness, Stop::Harness("down".into()));
    }
}
