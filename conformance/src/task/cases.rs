//! The task family's cases, one function per catalog ID
//! (`schema/task/conformance.json`).
//!
//! Each case checks its own spec point and no other, so a target with one
//! fault fails one case: a case that needs a task to end waits for the end
//! and reports only what its point is about (whether the messages were
//! valid is `task.envelope.valid-replies`'s business, whether there was
//! exactly one terminal is `task.lifecycle.single-terminal`'s).

use serde_json::{json, Value};
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::{self, Assignment};

use super::session::{Conn, Event, Msg};
use super::target::{Ctx, Recipe};
use crate::verdict::{check, fail, Stop};

/// A case body.
pub type CaseFn =
    for<'a, 't> fn(&'a mut Ctx<'t>) -> futures_util::future::BoxFuture<'a, Result<(), Stop>>;

/// The implementation of catalog case `id`.
pub fn implementation(id: &str) -> Option<CaseFn> {
    macro_rules! cases {
        ($($id:literal => $body:ident,)*) => {
            match id {
                $($id => Some(|ctx| Box::pin($body(ctx))),)*
                _ => None,
            }
        };
    }
    cases! {
        "task.envelope.valid-replies" => valid_replies,
        "task.envelope.unknown-fields-ignored" => unknown_fields_ignored,
        "task.envelope.large-message" => large_message,
        "task.ack.first-reply" => ack_first_reply,
        "task.ack.task-id" => ack_task_id,
        "task.lifecycle.single-terminal" => single_terminal,
        "task.lifecycle.monotonic-progress" => monotonic_progress,
        "task.lifecycle.nothing-after-terminal" => nothing_after_terminal,
        "task.lifecycle.task-failed" => task_failed,
        "task.assign.unknown-operation" => unknown_operation,
        "task.assign.unknown-service" => unknown_service,
        "task.assign.invalid-parameters" => invalid_parameters,
        "task.assign.broken-envelope" => broken_envelope,
        "task.idempotency.reassign-finished" => reassign_finished,
        "task.cancel.finished" => cancel_finished,
        "task.cancel.finished-code" => cancel_finished_code,
        "task.cancel.unknown" => cancel_unknown,
        "task.cancel.race" => cancel_race,
        "task.query.status-unknown" => status_unknown,
        "task.query.result-unknown" => result_unknown,
        "task.query.status-finished" => status_finished,
        "task.query.result-finished" => result_finished,
        "task.query.result-failed" => result_failed,
        "task.errors.malformed-json" => malformed_json,
        "task.errors.wrong-types" => wrong_types,
        "task.errors.unknown-type" => unknown_type,
        "task.errors.nothing-lost" => nothing_lost,
        "task.errors.related-message-id" => related_message_id,
        "task.auth.required-first" => auth_required_first,
        "task.auth.wrong-key" => auth_wrong_key,
        "task.auth.accepted" => auth_accepted,
        "task.auth.forbidden" => auth_forbidden,
        "task.websocket.ping" => websocket_ping,
        "task.websocket.close" => websocket_close,
        "task.generated.sessions" => generated_sessions,
    }
}

/// Cases that must run after every other: they judge the whole run.
pub const RUN_LAST: &[&str] = &["task.envelope.valid-replies"];

fn task_id() -> String {
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

/// Messages about `task_id` up to and including its first terminal one.
async fn until_terminal(
    ctx: &Ctx<'_>,
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
    ctx: &Ctx<'_>,
    conn: &mut Conn,
    recipe: &Recipe,
) -> Result<(Assignment, Msg, Vec<Msg>), Stop> {
    let assignment = assignment(recipe, &ctx.target.client_id);
    conn.send(&messages::assign(&assignment, None).text).await?;
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

/// A task for an operation no target offers, of the target's service: it
/// ends at once in `TaskFailed UNKNOWN_OPERATION`, so every target can be
/// given a task without a recipe.
pub(crate) fn unknown_operation_task(ctx: &Ctx<'_>) -> Assignment {
    Assignment {
        task_id: task_id(),
        service: service_or_placeholder(ctx),
        operation: "specwireNoSuchOperation".into(),
        parameters: Default::default(),
        client_id: Some(ctx.target.client_id.clone()),
    }
}

fn service_or_placeholder(ctx: &Ctx<'_>) -> String {
    ctx.target
        .service_name()
        .unwrap_or_else(|| "SpecwireConformanceService".into())
}

// ---- envelope ---------------------------------------------------------

async fn valid_replies(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    // Exercise the common replies once more, then judge everything the
    // target sent during the whole run.
    let mut conn = ctx.connect().await?;
    conn.send(&messages::get_status(&task_id()).text).await?;
    let unknown = unknown_operation_task(ctx);
    conn.send(&messages::assign(&unknown, Some("ack-valid-replies")).text)
        .await?;
    if let Ok(recipe) = ctx.succeeds() {
        let _ = run_task(ctx, &mut conn, &recipe).await;
    }
    let _ = conn.barrier(ctx.target.settle).await;
    let invalid = ctx.invalid_messages();
    check(invalid.is_empty(), || {
        let shown: Vec<&str> = invalid.iter().take(5).map(String::as_str).collect();
        format!(
            "{} message(s) from the target break the schema, e.g.: {}",
            invalid.len(),
            shown.join(" | ")
        )
    })
}

async fn unknown_fields_ignored(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let id = task_id();
    let mut probe: Value = serde_json::from_str(&messages::get_status(&id).text)
        .map_err(|error| Stop::Harness(error.to_string()))?;
    probe["x-conformance-extra"] = json!({"ignored": true});
    probe["payload"]["x-extra"] = json!(1);
    conn.send_value(&probe).await?;
    let message_id = probe["messageId"].as_str().unwrap_or_default().to_owned();
    let (reply, _) = conn
        .expect(
            "an answer to a GetStatus with extra fields",
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) || msg.related() == Some(&message_id),
        )
        .await?;
    check(
        !reply.is_error(Some("INVALID_MESSAGE")) && !reply.is_error(Some("UNKNOWN_TYPE")),
        || {
            format!(
            "a GetStatus with unknown extra fields was refused with {} instead of being answered",
            reply.describe()
        )
        },
    )
}

async fn large_message(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut probe: Value = serde_json::from_str(&messages::get_status(&task_id()).text)
        .map_err(|error| Stop::Harness(error.to_string()))?;
    probe["x-padding"] = Value::String("x".repeat(1_100_000));
    conn.send_value(&probe).await?;
    // Any answer (an Error, or the GetStatus answer); then still usable.
    let _ = conn.collect(ctx.target.settle).await?;
    conn.still_open("a 1.1 MB message").await
}

// ---- ack --------------------------------------------------------------

async fn ack_first_reply(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut probe: Value = serde_json::from_str(&messages::get_status(&task_id()).text)
        .map_err(|error| Stop::Harness(error.to_string()))?;
    let acknowledgment_id = format!("ack-{}", new_id());
    probe["acknowledgmentId"] = json!(acknowledgment_id);
    conn.send_value(&probe).await?;
    let first = match conn.next(ctx.target.reply_timeout).await {
        Some(Event::Message(msg)) => msg,
        Some(Event::Closed(_)) => {
            return fail("the target closed the connection instead of acknowledging")
        }
        _ => {
            return fail(format!(
                "no reply within {:?} to a GetStatus carrying an acknowledgmentId",
                ctx.target.reply_timeout
            ))
        }
    };
    check(first.kind() == "Ack", || {
        format!(
            "the first reply to a GetStatus with an acknowledgmentId was {}, not an Ack",
            first.describe()
        )
    })?;
    check(
        first.acknowledgment_id() == Some(acknowledgment_id.as_str()),
        || {
            format!(
                "the Ack carries acknowledgmentId {:?}, not the message's {acknowledgment_id:?}",
                first.acknowledgment_id()
            )
        },
    )?;
    if let Ok(recipe) = ctx.succeeds() {
        let assignment = assignment(&recipe, &ctx.target.client_id);
        let acknowledgment_id = format!("ack-{}", new_id());
        conn.send(&messages::assign(&assignment, Some(&acknowledgment_id)).text)
            .await?;
        let task = assignment.task_id.clone();
        let ack = acknowledgment_id.clone();
        let (first, _) = conn
            .expect(
                "a reply to an AssignTask with an acknowledgmentId",
                ctx.target.reply_timeout,
                |msg| msg.is_about(&task) || msg.acknowledgment_id() == Some(&ack),
            )
            .await?;
        check(
            first.kind() == "Ack" && first.acknowledgment_id() == Some(&acknowledgment_id),
            || {
                format!(
                    "the first reply to an AssignTask with an acknowledgmentId was {}, not its Ack",
                    first.describe()
                )
            },
        )?;
        let _ = until_terminal(ctx, &mut conn, &assignment.task_id).await;
    }
    Ok(())
}

async fn ack_task_id(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let assignment = unknown_operation_task(ctx);
    let acknowledgment_id = format!("ack-{}", new_id());
    conn.send(&messages::assign(&assignment, Some(&acknowledgment_id)).text)
        .await?;
    let (ack, _) = conn
        .expect("the Ack", ctx.target.reply_timeout, |msg| {
            msg.kind() == "Ack" && msg.acknowledgment_id() == Some(&acknowledgment_id)
        })
        .await?;
    let named = ack.task_id();
    check(named == Some(assignment.task_id.as_str()), || match named {
        None => "the Ack of an AssignTask does not name the task (payload.taskId)".into(),
        Some(other) => format!("the Ack names task {other}, not {}", assignment.task_id),
    })
}

// ---- lifecycle ---------------------------------------------------------

async fn single_terminal(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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

async fn monotonic_progress(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.send(&messages::assign(&assignment, None).text).await?;
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

async fn nothing_after_terminal(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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

async fn task_failed(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.fails()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.send(&messages::assign(&assignment, None).text).await?;
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

async fn refused_at_once(
    ctx: &mut Ctx<'_>,
    assignment: Assignment,
    code: &str,
    what: &str,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    conn.send(&messages::assign(&assignment, None).text).await?;
    let id = assignment.task_id.clone();
    let (reply, _) = conn
        .expect(
            &format!("a TaskFailed for {what}"),
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) && (msg.is_terminal() || msg.kind() == "Error"),
        )
        .await?;
    check(
        reply.kind() == "TaskFailed" && reply.error_code() == Some(code),
        || {
            let hint = if reply.error_code() == Some("FORBIDDEN") {
                " (is the suite's --client-id granted by the target's ACL?)"
            } else {
                ""
            };
            format!(
                "{what} was answered with {}, not TaskFailed {code}{hint}",
                reply.describe()
            )
        },
    )
}

async fn unknown_operation(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let assignment = unknown_operation_task(ctx);
    refused_at_once(ctx, assignment, "UNKNOWN_OPERATION", "an unknown operation").await
}

async fn unknown_service(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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
    refused_at_once(ctx, assignment, "UNKNOWN_OPERATION", "an unknown service").await
}

async fn invalid_parameters(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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
    )
    .await
}

async fn broken_envelope(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let message_id = new_id();
    let no_task_id = json!({
        "type": "AssignTask", "messageId": message_id, "timestamp": specwire_runtime::clock::now_rfc3339(),
        "payload": {"serviceName": service_or_placeholder(ctx), "operation": "noop", "taskParameters": {}}
    });
    conn.send_value(&no_task_id).await?;
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

async fn reassign_finished(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    let text = messages::assign(&assignment, None).text;
    conn.send(&text).await?;
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

// ---- cancel --------------------------------------------------------------

/// Runs a task to its end, cancels it, and returns what came after.
async fn cancel_after_end(ctx: &mut Ctx<'_>) -> Result<(String, Vec<Msg>), Stop> {
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

async fn cancel_finished(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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

async fn cancel_finished_code(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let (id, after) = cancel_after_end(ctx).await?;
    // Only the code is this case's point: no Error at all is cancel.finished's.
    match after.iter().find(|msg| msg.kind() == "Error") {
        Some(error) => check(error.error_code() == Some("TASK_ALREADY_FINISHED"), || {
            format!(
                "CancelTask for finished task {id} got {}, not TASK_ALREADY_FINISHED",
                error.describe()
            )
        }),
        None => Ok(()),
    }
}

async fn expect_error(
    ctx: &mut Ctx<'_>,
    message: messages::Built,
    id: &str,
    code: &str,
    what: &str,
) -> Result<Msg, Stop> {
    let mut conn = ctx.connect().await?;
    conn.send(&message.text).await?;
    let message_id = message.message_id.clone();
    let (reply, _) = conn
        .expect(
            &format!("an answer to {what}"),
            ctx.target.reply_timeout,
            |msg| msg.is_about(id) || msg.related() == Some(&message_id),
        )
        .await?;
    check(reply.is_error(Some(code)), || {
        format!(
            "{what} was answered with {}, not Error {code}",
            reply.describe()
        )
    })?;
    Ok(reply)
}

async fn cancel_unknown(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
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
    .map(|_| ())
}

async fn cancel_race(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    let id = assignment.task_id.clone();
    conn.send(&messages::assign(&assignment, None).text).await?;
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

async fn status_unknown(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let id = task_id();
    expect_error(
        ctx,
        messages::get_status(&id),
        &id,
        "TASK_NOT_FOUND",
        "GetStatus for an unknown task",
    )
    .await
    .map(|_| ())
}

async fn result_unknown(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let id = task_id();
    expect_error(
        ctx,
        messages::get_result(&id),
        &id,
        "TASK_NOT_FOUND",
        "GetResult for an unknown task",
    )
    .await
    .map(|_| ())
}

/// Runs `recipe` to any end, then asks for its status or result.
/// `expected` is the message kind the query must get (`None`: any terminal
/// message).
async fn query_finished(
    ctx: &mut Ctx<'_>,
    recipe: Recipe,
    result: bool,
    expected: Option<&str>,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.send(&messages::assign(&assignment, None).text).await?;
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
            |msg| msg.is_about(&id) || msg.related() == Some(&message_id),
        )
        .await?;
    let fits = match expected {
        Some(kind) => reply.kind() == kind,
        None => reply.is_terminal(),
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

async fn status_finished(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    query_finished(ctx, recipe, false, None).await
}

async fn result_finished(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    query_finished(ctx, recipe, true, Some("TaskResult")).await
}

async fn result_failed(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.fails()?;
    query_finished(ctx, recipe, true, Some("TaskFailed")).await
}

// ---- errors ------------------------------------------------------------------

async fn bad_message(ctx: &mut Ctx<'_>, text: &str, code: &str, what: &str) -> Result<Msg, Stop> {
    let mut conn = ctx.connect().await?;
    conn.send(text).await?;
    let (reply, _) = conn
        .expect(
            &format!("an Error for {what}"),
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error",
        )
        .await?;
    check(reply.is_error(Some(code)), || {
        format!(
            "{what} was answered with {}, not Error {code}",
            reply.describe()
        )
    })?;
    conn.still_open(what).await?;
    Ok(reply)
}

async fn malformed_json(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    bad_message(
        ctx,
        "{\"type\": \"GetStatus\", \"payload\": {",
        "INVALID_MESSAGE",
        "malformed JSON",
    )
    .await
    .map(|_| ())
}

async fn wrong_types(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let text = json!({
        "type": "GetStatus", "messageId": new_id(), "timestamp": specwire_runtime::clock::now_rfc3339(),
        "payload": {"taskId": 42}
    })
    .to_string();
    bad_message(
        ctx,
        &text,
        "INVALID_MESSAGE",
        "a GetStatus whose taskId is a number",
    )
    .await
    .map(|_| ())
}

fn unknown_type_message() -> (String, String) {
    let message_id = new_id();
    let text = json!({
        "type": "SpecwireNoSuchMessage", "messageId": message_id,
        "timestamp": specwire_runtime::clock::now_rfc3339(), "payload": {}
    })
    .to_string();
    (message_id, text)
}

async fn unknown_type(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let (_, text) = unknown_type_message();
    bad_message(ctx, &text, "UNKNOWN_TYPE", "an unknown message type")
        .await
        .map(|_| ())
}

async fn nothing_lost(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.send(&messages::assign(&assignment, None).text).await?;
    conn.send("{ this is not JSON").await?;
    let (_, text) = unknown_type_message();
    conn.send(&text).await?;
    until_terminal(ctx, &mut conn, &assignment.task_id)
        .await
        .map(|_| ())
        .map_err(|stop| match stop {
            Stop::Fail(reason) => Stop::Fail(format!(
                "a task accepted just before two bad messages was lost: {reason}"
            )),
            other => other,
        })
}

async fn related_message_id(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let (message_id, text) = unknown_type_message();
    conn.send(&text).await?;
    let (reply, _) = conn
        .expect(
            "an Error for an unknown message type",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error",
        )
        .await?;
    check(reply.related() == Some(message_id.as_str()), || {
        format!("the Error does not name the message it answers (relatedMessageId {:?}, expected {message_id:?})", reply.related())
    })
}

// ---- auth --------------------------------------------------------------------

async fn auth_required_first(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    ctx.api_key()?;
    let mut conn = ctx.connect_raw().await?;
    let id = task_id();
    let query = messages::get_status(&id);
    conn.send(&query.text).await?;
    let (reply, _) = conn
        .expect(
            "an answer to GetStatus before Authenticate",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error" || msg.is_about(&id),
        )
        .await?;
    check(reply.is_error(Some("UNAUTHORIZED")), || {
        format!(
            "GetStatus before Authenticate was answered with {}, not Error UNAUTHORIZED",
            reply.describe()
        )
    })?;
    conn.still_open("a message before Authenticate").await
}

async fn auth_wrong_key(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let key = ctx.api_key()?;
    let mut conn = ctx.connect_raw().await?;
    let wrong = format!("{key}-wrong-{}", new_id());
    let message = messages::authenticate(&wrong, &ctx.target.client_id, Some("ack-wrong-key"));
    conn.send(&message.text).await?;
    let (reply, _) = conn
        .expect(
            "an answer to Authenticate with a wrong key",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error" || msg.kind() == "Ack",
        )
        .await?;
    check(reply.is_error(Some("UNAUTHORIZED")), || {
        format!(
            "Authenticate with a wrong key was answered with {}, not Error UNAUTHORIZED",
            reply.describe()
        )
    })
}

async fn auth_accepted(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let key = ctx.api_key()?;
    let mut conn = ctx.connect_raw().await?;
    let acknowledgment_id = format!("ack-{}", new_id());
    let message = messages::authenticate(&key, &ctx.target.client_id, Some(&acknowledgment_id));
    conn.send(&message.text).await?;
    let (reply, _) = conn
        .expect(
            "an answer to Authenticate",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Error" || msg.kind() == "Ack",
        )
        .await?;
    check(
        reply.kind() == "Ack" && reply.acknowledgment_id() == Some(&acknowledgment_id),
        || {
            format!(
                "Authenticate with the right key was answered with {}, not its Ack",
                reply.describe()
            )
        },
    )?;
    let id = task_id();
    conn.send(&messages::get_status(&id).text).await?;
    let (reply, _) = conn
        .expect(
            "an answer to GetStatus after Authenticate",
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) || msg.kind() == "Error",
        )
        .await?;
    check(!reply.is_error(Some("UNAUTHORIZED")), || {
        "after a successful Authenticate, GetStatus still got UNAUTHORIZED".into()
    })
}

async fn auth_forbidden(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let key = ctx.api_key()?;
    let client = ctx.target.forbidden_client.clone().ok_or_else(|| {
        Stop::Skip("needs --forbidden-client ID: a client id the target's ACL denies the `succeeds` operation".into())
    })?;
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect_raw().await?;
    let message = messages::authenticate(&key, &client, Some("ack-forbidden"));
    conn.send(&message.text).await?;
    // A refused key is task.auth.accepted's failure; here it only means
    // this case cannot be carried out.
    let (answer, _) = conn
        .expect(
            "an answer to Authenticate",
            ctx.target.reply_timeout,
            |msg| msg.kind() == "Ack" || msg.kind() == "Error",
        )
        .await
        .map_err(|stop| match stop {
            Stop::Fail(reason) => {
                Stop::Harness(format!("could not authenticate as {client}: {reason}"))
            }
            other => other,
        })?;
    if answer.kind() != "Ack" {
        return Err(Stop::Harness(format!(
            "could not authenticate as {client}: {}",
            answer.describe()
        )));
    }
    let assignment = assignment(&recipe, &client);
    conn.send(&messages::assign(&assignment, None).text).await?;
    let id = assignment.task_id.clone();
    let (reply, _) = conn
        .expect(
            "an answer to a forbidden AssignTask",
            ctx.target.reply_timeout,
            |msg| msg.is_about(&id) && (msg.is_terminal() || msg.kind() == "Error"),
        )
        .await?;
    check(
        reply.kind() == "TaskFailed" && reply.error_code() == Some("FORBIDDEN"),
        || {
            format!(
                "client {client}'s forbidden task was answered with {}, not TaskFailed FORBIDDEN",
                reply.describe()
            )
        },
    )
}

// ---- websocket -----------------------------------------------------------------

async fn websocket_ping(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let payload = b"specwire-conformance";
    conn.ping(payload).await?;
    let deadline = tokio::time::Instant::now() + ctx.target.reply_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn.next(left).await {
            Some(Event::Pong(data)) => {
                return check(data == payload, || {
                    "the pong does not carry the ping's payload".into()
                })
            }
            Some(Event::Message(_)) => {}
            Some(Event::Closed(_)) => {
                return fail("the target closed the connection instead of answering a ping")
            }
            None => return fail(format!("no pong within {:?}", ctx.target.reply_timeout)),
        }
    }
}

async fn websocket_close(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    conn.close().await?;
    let deadline = tokio::time::Instant::now() + ctx.target.reply_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn.next(left).await {
            Some(Event::Closed(Some(_))) => return Ok(()),
            Some(Event::Closed(None)) => {
                return fail("the target dropped the connection without a close frame")
            }
            Some(_) => {}
            None => {
                return fail(format!(
                    "no close frame within {:?}",
                    ctx.target.reply_timeout
                ))
            }
        }
    }
}

async fn generated_sessions(ctx: &mut Ctx<'_>) -> Result<(), Stop> {
    super::generated::sessions(ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_case_has_an_implementation() {
        let missing: Vec<&str> = specwire_protocol::conformance::cases_of("task")
            .map(|spec| spec.id)
            .filter(|id| implementation(id).is_none())
            .collect();
        assert!(missing.is_empty(), "no implementation for {missing:?}");
        for id in RUN_LAST {
            assert!(specwire_protocol::conformance::case(id).is_some(), "{id}");
        }
        assert!(implementation("task.no.such-case").is_none());
    }
}
