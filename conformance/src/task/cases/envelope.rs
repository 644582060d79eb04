//! Cases about the envelope, acknowledgments and malformed messages.

use serde_json::{json, Value};
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages::{self, Built};

use super::super::session::{Conn, Msg};
use super::super::target::Ctx;
use super::*;
use crate::verdict::{check, Stop};

// ---- envelope ---------------------------------------------------------

pub(super) async fn valid_replies(ctx: &mut Ctx) -> Result<(), Stop> {
    // Exercise the common replies once more, then judge everything the
    // target sent during the whole run.
    let mut conn = ctx.connect().await?;
    conn.send(&messages::get_status(&task_id()).text).await?;
    let unknown = unknown_operation_task(ctx);
    conn.assign(&unknown, Some("ack-valid-replies")).await?;
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

/// `message` as a JSON value, to add members to.
fn editable(message: &Built) -> Result<Value, Stop> {
    serde_json::from_str(&message.text).map_err(|error| Stop::Harness(error.to_string()))
}

pub(super) async fn unknown_fields_ignored(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let id = task_id();
    let query = messages::get_status(&id);
    let mut probe = editable(&query)?;
    probe["x-conformance-extra"] = json!({"ignored": true});
    probe["payload"]["x-extra"] = json!(1);
    conn.send_value(&probe).await?;
    let (reply, _) = conn
        .expect(
            "an answer to a GetStatus with extra fields",
            ctx.target.reply_timeout,
            |msg| {
                msg.is_about(&id) || msg.related() == Some(&query.message_id) || msg.is_error(None)
            },
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

pub(super) async fn large_message(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut probe = editable(&messages::get_status(&task_id()))?;
    probe["x-padding"] = Value::String("x".repeat(1_100_000));
    conn.send_value(&probe).await?;
    // Any answer (an Error, or the GetStatus answer); then still usable.
    let _ = conn.collect(ctx.target.settle).await?;
    conn.still_open("a 1.1 MB message").await
}

// ---- ack --------------------------------------------------------------

/// A message every reading of the profile acknowledges, with
/// `acknowledgment_id`: the `succeeds` task's `AssignTask`, or, without
/// one, a `GetStatus` of a task the target knows (one that ended at once
/// for an unknown operation). Returns the message, the task it names and
/// what it is, for reasons.
async fn acknowledged_by_all(
    ctx: &Ctx,
    conn: &mut Conn,
    acknowledgment_id: &str,
) -> Result<(Built, String, &'static str), Stop> {
    if let Ok(recipe) = ctx.succeeds() {
        let assignment = assignment(&recipe, &ctx.target.client_id);
        let message = messages::assign(&assignment, Some(acknowledgment_id));
        return Ok((
            message,
            assignment.task_id,
            "the `succeeds` task's AssignTask",
        ));
    }
    let known = unknown_operation_task(ctx);
    conn.assign(&known, None).await?;
    until_terminal(ctx, conn, &known.task_id)
        .await
        .map_err(|stop| nothing_to_judge(stop, "task.assign.unknown-operation"))?;
    let mut query = editable(&messages::get_status(&known.task_id))?;
    query["acknowledgmentId"] = json!(acknowledgment_id);
    let message = Built {
        message_id: query["messageId"].as_str().unwrap_or_default().to_owned(),
        text: query.to_string(),
    };
    Ok((message, known.task_id, "a GetStatus of a known task"))
}

pub(super) async fn ack_first_reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    // A message every reading acknowledges: its Ack comes first.
    let acknowledgment_id = format!("ack-{}", new_id());
    let (message, task, what) = acknowledged_by_all(ctx, &mut conn, &acknowledgment_id).await?;
    conn.send(&message.text).await?;
    let (first, _) = conn
        .expect(
            &format!("a reply to {what} with an acknowledgmentId"),
            ctx.target.reply_timeout,
            |msg| {
                msg.kind() == "Ack"
                    || msg.is_about(&task)
                    || msg.related() == Some(&message.message_id)
            },
        )
        .await?;
    check(first.kind() == "Ack", || {
        format!(
            "the first reply to {what} with an acknowledgmentId was {}, not its Ack",
            first.describe()
        )
    })?;
    check(
        first.acknowledgment_id() == Some(acknowledgment_id.as_str()),
        || {
            format!(
                "the Ack of {what} carries acknowledgmentId {:?}, not the message's {acknowledgment_id:?}",
                first.acknowledgment_id()
            )
        },
    )?;
    // A message the target may reject: an Ack is optional, but one that
    // comes must come before the Error.
    let unknown = task_id();
    let mut query = editable(&messages::get_status(&unknown))?;
    let rejected_ack = format!("ack-{}", new_id());
    query["acknowledgmentId"] = json!(rejected_ack);
    let message_id = query["messageId"].as_str().unwrap_or_default().to_owned();
    conn.send_value(&query).await?;
    let answered = |msg: &Msg| {
        msg.kind() != "Ack"
            && (msg.is_about(&unknown) || msg.related() == Some(&message_id) || msg.is_error(None))
    };
    let (answer, _) = match conn
        .expect(
            "an answer to a GetStatus of an unknown task",
            ctx.target.reply_timeout,
            answered,
        )
        .await
    {
        Ok(answered) => answered,
        Err(Stop::Fail(reason)) if reason.starts_with("no ") => {
            ctx.note(&format!("the order of a rejected message's Ack cannot be judged: {reason} (task.query.status-unknown reports that)"));
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    let late: Vec<Msg> = conn
        .collect(ctx.target.settle)
        .await?
        .into_iter()
        .filter(|msg| msg.kind() == "Ack" && msg.acknowledgment_id() == Some(&rejected_ack))
        .collect();
    check(late.is_empty(), || {
        format!(
            "the Ack of a GetStatus of an unknown task came after the answer to it ({}); an Ack, when sent, comes first",
            answer.describe()
        )
    })
}

pub(super) async fn ack_task_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let recipe = ctx.succeeds().ok();
    let assignment = match &recipe {
        Some(recipe) => assignment(recipe, &ctx.target.client_id),
        None => unknown_operation_task(ctx),
    };
    let acknowledgment_id = format!("ack-{}", new_id());
    conn.assign(&assignment, Some(&acknowledgment_id)).await?;
    let id = assignment.task_id.clone();
    let (first, _) = conn
        .expect(
            "the Ack or the end of the task",
            ctx.target.task_timeout,
            |msg| {
                (msg.kind() == "Ack" && msg.acknowledgment_id() == Some(&acknowledgment_id))
                    || (msg.is_about(&id) && msg.is_terminal())
            },
        )
        .await
        .map_err(|stop| nothing_to_judge(stop, "task.lifecycle.single-terminal"))?;
    if first.kind() != "Ack" {
        return Err(Stop::Skip(match recipe {
            Some(_) => "nothing to judge: no Ack with the acknowledgmentId sent (task.ack.first-reply reports that)".into(),
            None => "nothing to judge: the target sent no Ack for an AssignTask it refused, which is allowed; pass --tasks with a `succeeds` task to judge the Ack of a task that runs".into(),
        }));
    }
    match first.task_id() {
        None => {
            ctx.note("the Ack names no task (payload.taskId is optional)");
            Ok(())
        }
        Some(named) => check(named == id, || {
            format!("the Ack of an AssignTask for task {id} names task {named}")
        }),
    }
}

// ---- errors -------------------------------------------------------------

/// `text` gets `Error code`, and the connection stays usable.
async fn bad_message(ctx: &mut Ctx, text: &str, code: &str, what: &str) -> Result<(), Stop> {
    let (mut conn, _) = refused_with(ctx, Outgoing::Invalid(text), None, code, what).await?;
    conn.still_open(what).await
}

pub(super) async fn malformed_json(ctx: &mut Ctx) -> Result<(), Stop> {
    bad_message(
        ctx,
        "{\"type\": \"GetStatus\", \"payload\": {",
        "INVALID_MESSAGE",
        "malformed JSON",
    )
    .await
}

pub(super) async fn wrong_types(ctx: &mut Ctx) -> Result<(), Stop> {
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
}

pub(super) async fn unknown_type(ctx: &mut Ctx) -> Result<(), Stop> {
    let (_, text) = unknown_type_message();
    bad_message(ctx, &text, "UNKNOWN_TYPE", "an unknown message type").await
}

pub(super) async fn nothing_lost(ctx: &mut Ctx) -> Result<(), Stop> {
    let recipe = ctx.succeeds()?;
    let mut conn = ctx.connect().await?;
    let assignment = assignment(&recipe, &ctx.target.client_id);
    conn.assign(&assignment, None).await?;
    conn.send_invalid("{ this is not JSON").await?;
    let (_, text) = unknown_type_message();
    conn.send_invalid(&text).await?;
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

pub(super) async fn related_message_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let (message_id, text) = unknown_type_message();
    conn.send_invalid(&text).await?;
    let (reply, _) = conn
        .expect(
            "an Error for an unknown message type",
            ctx.target.reply_timeout,
            |msg| msg.is_error(None),
        )
        .await
        .map_err(|stop| nothing_to_judge(stop, "task.errors.unknown-type"))?;
    match reply.related() {
        None => {
            ctx.note("the Error names no message (relatedMessageId is optional)");
            Ok(())
        }
        Some(related) => check(related == message_id, || {
            format!("the Error answering message {message_id:?} names another, {related:?}, in relatedMessageId")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_message_keeps_its_members() {
        let message = messages::get_status("t-1");
        let mut value = editable(&message).unwrap();
        value["extra"] = json!(1);
        assert_eq!(value["payload"]["taskId"], "t-1");
        assert_eq!(value["messageId"], message.message_id.as_str());
    }
}
