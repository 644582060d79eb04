//! Cases about authentication, authorization and the WebSocket layer.

use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages;

use super::super::session::Event;
use super::super::target::Ctx;
use super::*;
use crate::verdict::{check, fail, Stop};

// ---- auth --------------------------------------------------------------------

pub(super) async fn auth_required_first(ctx: &mut Ctx) -> Result<(), Stop> {
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

pub(super) async fn auth_wrong_key(ctx: &mut Ctx) -> Result<(), Stop> {
    let key = ctx.api_key()?;
    let mut conn = ctx.connect_raw().await?;
    let wrong = format!("{key}-wrong-{}", new_id());
    let message = messages::authenticate(&wrong, &ctx.target.client_id, Some("ack-wrong-key"));
    conn.send(&message.text).await?;
    // An Ack may come first (a provider may acknowledge what it then
    // refuses); the refusal is the Error.
    let refused = conn
        .expect(
            "an Error for Authenticate with a wrong key",
            ctx.target.reply_timeout,
            |msg| msg.is_error(None),
        )
        .await;
    let reply = match refused {
        Ok((reply, _)) => reply,
        Err(Stop::Fail(reason)) if reason.contains("(got: Ack") => {
            return fail(format!(
                "Authenticate with a wrong key was acknowledged and never refused: {reason}"
            ))
        }
        Err(other) => return Err(other),
    };
    check(reply.is_error(Some("UNAUTHORIZED")), || {
        format!(
            "Authenticate with a wrong key was answered with {}, not Error UNAUTHORIZED",
            reply.describe()
        )
    })
}

pub(super) async fn auth_accepted(ctx: &mut Ctx) -> Result<(), Stop> {
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
    // Any Ack accepts: whether it names the right acknowledgmentId is
    // task.ack.first-reply's point.
    check(reply.kind() == "Ack", || {
        format!(
            "Authenticate with the right key was answered with {}, not an Ack",
            reply.describe()
        )
    })?;
    if reply.acknowledgment_id() != Some(&acknowledgment_id) {
        conn.note(
            "the Ack does not carry the acknowledgmentId sent (task.ack.first-reply judges that)",
        );
    }
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

pub(super) async fn auth_forbidden(ctx: &mut Ctx) -> Result<(), Stop> {
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
    conn.assign(&assignment, None).await?;
    let id = assignment.task_id.clone();
    let (reply, _) = conn
        .expect(
            "an answer to a forbidden AssignTask",
            ctx.target.reply_timeout,
            |msg| (msg.is_about(&id) && msg.is_terminal()) || msg.is_error(None),
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

pub(super) async fn websocket_ping(ctx: &mut Ctx) -> Result<(), Stop> {
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

pub(super) async fn websocket_close(ctx: &mut Ctx) -> Result<(), Stop> {
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
