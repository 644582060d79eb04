//! Cases about subscribe and unsubscribe (their replies, and that an
//! unsubscribe takes effect) and about the publish API (a valid publish
//! taken silently, the event routed intact, invalid events and non-admin
//! publishers refused).

use super::super::events::{self, EventKind, Kind, Resource};
use super::*;
use crate::verdict::{check, fail};

/// A resource of every type for `conn`: its own user, fresh others.
fn one_of_each(ctx: &mut Ctx, conn: &Conn) -> Vec<Resource> {
    Kind::ALL
        .into_iter()
        .map(|kind| match kind {
            Kind::User => Resource::new(Kind::User, conn.user.clone()),
            _ => ctx.resource(kind),
        })
        .collect()
}

/// Checks that `reply` answers `action` of `resource` as the profile says.
fn judge_reply(reply: &Msg, action: &str, resource: &Resource) -> Result<(), Stop> {
    let expected = format!("{action}d");
    let wanted = reply.action() == Some(expected.as_str())
        && reply.data_str("resourceType") == Some(resource.kind.as_str())
        && reply.data_str("resourceId") == Some(resource.id.as_str())
        && reply.data_str("status") == Some("success");
    check(wanted, || {
        format!(
            "{action} {resource} was answered with {}, not system_status {expected} {resource} success",
            describe(reply)
        )
    })
}

pub(super) async fn reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    for resource in one_of_each(ctx, &conn) {
        let reply = conn.request("subscribe", &resource).await?;
        judge_reply(&reply, "subscribe", &resource)?;
    }
    Ok(())
}

pub(super) async fn unsubscribe_reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    for resource in one_of_each(ctx, &conn) {
        conn.subscribe(&resource).await?;
        let reply = conn.request("unsubscribe", &resource).await?;
        judge_reply(&reply, "unsubscribe", &resource)?;
    }
    Ok(())
}

pub(super) async fn unsubscribe_stops(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    let task = ctx.fresh("task");
    let resource = Resource::new(Kind::Experiment, experiment.id.clone());
    // The task too, so that the first event matches two subscriptions.
    conn.subscribe(&Resource::new(Kind::Task, task.clone()))
        .await?;
    conn.subscribe(&resource).await?;
    let before = events::task_event(
        EventKind::TaskUpdated,
        &task,
        &experiment.id,
        &events::label(),
    );
    reaches(&mut conn, &mut admin, &[], &[before], "of a subscribed experiment's task")
        .await
        .map_err(|stop| match stop {
            Stop::Fail(reason) => Stop::Skip(format!(
                "nothing to judge: the subscriptions did not take effect: {reason} (subscription.routing.* report that)"
            )),
            other => other,
        })?;
    conn.unsubscribe(&resource).await?;
    let after =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    admin.publish(&after).await?;
    let window = conn.window(&mut admin).await?;
    let leaked = carrying(&window, &labels(&[after]));
    check(leaked.is_empty(), || {
        format!(
            "after `unsubscribed` for {resource}, its event still arrived: {}",
            leaked.join(", ")
        )
    })
}

// ---- publish ----------------------------------------------------------------

pub(super) async fn publish_accepted(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    let event =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    admin.publish(&event).await?;
    let before = admin.still_open("a valid publish").await?;
    match before.iter().find(|msg| msg.kind() == "error") {
        Some(error) => fail(format!(
            "an admin's valid publish of experiment_updated was answered with {}",
            describe(error)
        )),
        None => Ok(()),
    }
}

pub(super) async fn event_intact(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    subscribe_twice(&mut conn, &experiment).await?;
    let task = ctx.fresh("task");
    let published = [
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label()),
        events::task_event(
            EventKind::TaskFailed,
            &task,
            &experiment.id,
            &events::label(),
        ),
    ];
    let seen = reaches(
        &mut conn,
        &mut admin,
        &[],
        &published,
        "of a subscribed experiment",
    )
    .await
    .map_err(|stop| super::super::session::nothing_to_judge(stop, "subscription.routing.*"))?;
    for event in &published {
        let label = label_of(event);
        let Some(delivered) = seen.iter().find(|msg| msg.label() == label) else {
            continue;
        };
        check(
            delivered.value.get("type") == event.get("type")
                && delivered.value.get("data") == event.get("data"),
            || {
                format!(
                    "the {} delivered is not the one published: published data {}, delivered {}",
                    event["type"], event["data"], delivered.text
                )
            },
        )?;
    }
    Ok(())
}

pub(super) async fn invalid_event(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    conn.subscribe(&Resource::new(Kind::Experiment, experiment.id.clone()))
        .await?;
    let mut event =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    event["data"]["experiment"]["status"] = serde_json::json!(42);
    admin
        .send_invalid(&events::publish(&event).to_string())
        .await?;
    let timeout = ctx.target.reply_timeout;
    let answer = admin
        .expect("an `error` for an invalid event", timeout, |msg| {
            msg.kind() == "error" || msg.kind() == "pong"
        })
        .await;
    match answer {
        Ok((reply, _)) if reply.kind() == "error" => {}
        Ok((reply, _)) => {
            return fail(format!(
                "an invalid event (status 42) was answered with {}, not an `error`",
                describe(&reply)
            ))
        }
        Err(Stop::Fail(reason)) => {
            return fail(format!(
                "an admin's publish of an invalid event (status 42) got no `error`: {reason}"
            ))
        }
        Err(other) => return Err(other),
    }
    let window = conn.window(&mut admin).await?;
    let leaked = carrying(&window, &labels(&[event]));
    check(leaked.is_empty(), || {
        format!(
            "an invalid event was routed all the same: {}",
            leaked.join(", ")
        )
    })
}

pub(super) async fn non_admin_refused(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let mut publisher = ctx.connect().await?;
    let experiment = ctx.experiment(None);
    conn.subscribe(&Resource::new(Kind::Experiment, experiment.id.clone()))
        .await?;
    let event =
        events::experiment_event(EventKind::ExperimentUpdated, &experiment, &events::label());
    publisher.publish(&event).await?;
    let timeout = ctx.target.reply_timeout;
    let answer = publisher
        .expect(
            "an `error` for a publish without the admin role",
            timeout,
            |msg| msg.kind() == "error",
        )
        .await;
    if let Err(stop) = answer {
        return match stop {
            Stop::Fail(reason) => fail(format!(
                "a publish with a token without `role: \"admin\"` was not refused: {reason}"
            )),
            other => Err(other),
        };
    }
    let window = conn.window(&mut admin).await?;
    let leaked = carrying(&window, &labels(&[event]));
    check(leaked.is_empty(), || {
        format!(
            "an event published without the admin role was routed: {}",
            leaked.join(", ")
        )
    })
}
