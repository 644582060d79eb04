//! Cases about the envelope and validity (schemas, ids and timestamps,
//! client messages without them, extra fields, event id formats) and
//! about malformed and unknown messages.

use serde_json::json;
use specwire_protocol::subscription::Message;
use specwire_protocol::{Direction, JsonProtocol};
use specwire_runtime::clock::{new_id, now_rfc3339};

use super::super::events::{self, EventKind, Kind, Resource};
use super::super::observed::envelope_fault;
use super::super::target::Auth;
use super::*;
use crate::verdict::{check, fail};

/// Gives the run one of each kind of server message the cases judge at
/// the end: a pong, a subscription reply, an `error` for malformed JSON,
/// an auth refusal, an event.
async fn exercise(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    let _ = conn
        .request(
            "subscribe",
            &Resource::new(Kind::Experiment, experiment.id.clone()),
        )
        .await;
    let event =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    let _ = reaches(&mut conn, &mut admin, &[], &[event], "of an experiment").await;
    conn.send_invalid(MALFORMED).await?;
    let _ = conn.still_open("malformed JSON").await;
    let user = ctx.fresh("user");
    let path = format!("/ws/tasks/{}", ctx.fresh("task"));
    if let Ok(super::super::target::Opened::Conn(mut refused)) =
        ctx.open(&path, &Auth::None, &user).await
    {
        let timeout = ctx.target.reply_timeout;
        let _ = refused.until_closed(timeout).await;
    }
    Ok(())
}

/// `text` (a message that broke its schema) with its `id` and `timestamp`
/// made right, if they were what was wrong: then it validates.
fn only_envelope_wrong(text: &str) -> bool {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    if envelope_fault(&value).is_none() {
        return false;
    }
    value["id"] = json!(new_id());
    value["timestamp"] = json!(now_rfc3339());
    Message::decode_from(value, Some(Direction::ServerToClient)).is_ok()
}

pub(super) async fn valid_messages(ctx: &mut Ctx) -> Result<(), Stop> {
    exercise(ctx).await?;
    let invalid: Vec<(String, String)> = ctx
        .observed()
        .invalid_messages()
        .into_iter()
        .filter(|(text, _)| !only_envelope_wrong(text))
        .collect();
    check(invalid.is_empty(), || {
        let shown: Vec<String> = invalid
            .iter()
            .take(5)
            .map(|(text, problem)| format!("{problem}: {text}"))
            .collect();
        format!(
            "{} message(s) from the server break their schema, e.g.: {}",
            invalid.len(),
            shown.join(" | ")
        )
    })
}

pub(super) async fn id_timestamp(ctx: &mut Ctx) -> Result<(), Stop> {
    exercise(ctx).await?;
    let problems = ctx.observed().envelope_problems();
    check(problems.is_empty(), || {
        let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
        format!(
            "{} server message(s) without a proper `id` and `timestamp`, e.g.: {}",
            problems.len(),
            shown.join(" | ")
        )
    })
}

pub(super) async fn event_id_format(ctx: &mut Ctx) -> Result<(), Stop> {
    exercise(ctx).await?;
    let events = ctx.observed().events();
    if events.is_empty() {
        return Err(Stop::Skip(
            "nothing to judge: no event arrived in the run".into(),
        ));
    }
    let wrong: Vec<String> = events
        .iter()
        .filter_map(|event| {
            let prefix = events::id_prefix(event)?;
            let id = event
                .get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let formatted = id.strip_prefix(&prefix).is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            });
            (!formatted)
                .then(|| format!("{} id {id:?} (expected {prefix}<timestamp>)", event["type"]))
        })
        .collect();
    check(wrong.is_empty(), || {
        let shown: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
        format!(
            "{} of {} events have ids outside the seed's formats, e.g.: {}",
            wrong.len(),
            events.len(),
            shown.join(" | ")
        )
    })
}

/// Sends `subscribe` and `ping` (raw, as the case built them) and checks
/// that the first gets a subscription reply and the second a `pong`.
async fn served(
    ctx: &mut Ctx,
    subscribe: serde_json::Value,
    ping: serde_json::Value,
    what: &str,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    conn.send(&subscribe).await?;
    let timeout = ctx.target.reply_timeout;
    let (reply, _) = conn
        .expect(
            &format!("an answer to a subscribe {what}"),
            timeout,
            |msg| msg.action().is_some() || msg.kind() == "error",
        )
        .await?;
    check(reply.action().is_some(), || {
        format!(
            "a subscribe {what} was answered with {}, not a subscription reply",
            describe(&reply)
        )
    })?;
    conn.send(&ping).await?;
    let (reply, _) = conn
        .expect(&format!("an answer to a ping {what}"), timeout, |msg| {
            msg.kind() == "pong" || msg.kind() == "error"
        })
        .await?;
    check(reply.kind() == "pong", || {
        format!(
            "a ping {what} was answered with {}, not a pong",
            describe(&reply)
        )
    })
}

pub(super) async fn client_omits_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let experiment = ctx.fresh("exp");
    let subscribe = json!({"type": "system_status",
                           "data": {"action": "subscribe", "resourceType": "experiment",
                                    "resourceId": experiment}});
    served(
        ctx,
        subscribe,
        json!({"type": "ping"}),
        "without `id` and `timestamp`",
    )
    .await
}

pub(super) async fn extra_fields_ignored(ctx: &mut Ctx) -> Result<(), Stop> {
    let experiment = ctx.fresh("exp");
    let mut subscribe = events::request("subscribe", &Resource::new(Kind::Experiment, experiment));
    subscribe["x-conformance-extra"] = json!({"ignored": true});
    subscribe["data"]["x-extra"] = json!(1);
    let mut ping = events::ping(&format!("ping-{}", events::label()));
    ping["x-conformance-extra"] = json!([1, 2]);
    served(ctx, subscribe, ping, "with unknown extra members").await
}

// ---- errors -----------------------------------------------------------------

/// `text` gets an `error` (returned) and the connection stays served.
async fn bad_message(ctx: &mut Ctx, text: &str, what: &str) -> Result<Msg, Stop> {
    let mut conn = ctx.connect().await?;
    conn.send_invalid(text).await?;
    let timeout = ctx.target.reply_timeout;
    let (reply, _) = conn
        .expect(&format!("an `error` for {what}"), timeout, |msg| {
            msg.kind() == "error" || msg.action().is_some() || msg.kind() == "pong"
        })
        .await?;
    check(reply.kind() == "error", || {
        format!(
            "{what} was answered with {}, not an `error`",
            describe(&reply)
        )
    })?;
    conn.still_open(what).await?;
    Ok(reply)
}

pub(super) async fn malformed_json(ctx: &mut Ctx) -> Result<(), Stop> {
    bad_message(ctx, MALFORMED, "malformed JSON")
        .await
        .map(|_| ())
}

pub(super) async fn unknown_type(ctx: &mut Ctx) -> Result<(), Stop> {
    bad_message(ctx, &unknown_type_message(), "a message of an unknown type")
        .await
        .map(|_| ())
}

pub(super) async fn bad_fields(ctx: &mut Ctx) -> Result<(), Stop> {
    let number = json!({"type": "system_status", "id": new_id(), "timestamp": now_rfc3339(),
                        "data": {"action": "subscribe", "resourceType": "experiment",
                                 "resourceId": 42}});
    bad_message(
        ctx,
        &number.to_string(),
        "a subscribe whose resourceId is a number",
    )
    .await?;
    let kind = json!({"type": "system_status", "id": new_id(), "timestamp": now_rfc3339(),
                      "data": {"action": "subscribe", "resourceType": "galaxy",
                               "resourceId": ctx.fresh("galaxy")}});
    bad_message(
        ctx,
        &kind.to_string(),
        "a subscribe of resource type `galaxy`",
    )
    .await?;
    Ok(())
}

pub(super) async fn nothing_lost(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    subscribe_twice(&mut conn, &experiment).await?;
    conn.send_invalid(MALFORMED).await?;
    conn.send_invalid(&unknown_type_message()).await?;
    // Both are read before the ping: the publish comes after them.
    conn.still_open("malformed JSON and an unknown type")
        .await
        .map_err(|stop| match stop {
            Stop::Fail(reason) => Stop::Skip(format!(
                "nothing to judge: {reason} (subscription.errors.* report that)"
            )),
            other => other,
        })?;
    let event =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    reaches(
        &mut conn,
        &mut admin,
        &[],
        &[event],
        "of an experiment subscribed before two bad messages",
    )
    .await
    .map(|_| ())
    .map_err(|stop| match stop {
        Stop::Fail(reason) => Stop::Fail(format!(
            "a subscription made before two bad messages was lost: {reason}"
        )),
        other => other,
    })
}

pub(super) async fn seed_texts(ctx: &mut Ctx) -> Result<(), Stop> {
    let texts = [
        (
            MALFORMED.to_owned(),
            "malformed JSON",
            "Invalid message format",
        ),
        (
            unknown_type_message(),
            "an unknown type",
            "Unknown message type",
        ),
    ];
    let mut judged = 0;
    for (text, what, expected) in texts {
        // A connection of its own, so the `error` before the pong is this
        // message's.
        let mut conn = ctx.connect().await?;
        conn.send_invalid(&text).await?;
        let before = conn.still_open(what).await.map_err(|stop| {
            super::super::session::nothing_to_judge(stop, "subscription.errors.*")
        })?;
        let Some(got) = before.iter().find_map(|msg| msg.error_text()) else {
            ctx.note(&format!(
                "no `error` for {what}: nothing to judge (subscription.errors.* report that)"
            ));
            continue;
        };
        judged += 1;
        if !got.starts_with(expected) {
            return fail(format!(
                "the `error` for {what} says {got:?}, not the seed's {expected:?}"
            ));
        }
    }
    if judged == 0 {
        return Err(Stop::Skip(
            "nothing to judge: neither bad message got an `error` (subscription.errors.* report that)".into(),
        ));
    }
    Ok(())
}
