//! Cases about the routing table, one level at a time (task → experiment
//! → project → user; worker → system; system → all), events reaching no
//! one else, once per connection, and publication order.
//!
//! The suite drives routing through the publish API only, so a task
//! event's project and owner are told by an `experiment_created`
//! published first.

use serde_json::Value;

use super::super::events::{self, EventKind, Experiment, Kind, Resource};
use super::*;
use crate::verdict::check;

fn task_events(task: &str, experiment: &str) -> Vec<Value> {
    EventKind::TASK
        .into_iter()
        .map(|kind| events::task_event(kind, task, experiment, &events::label()))
        .collect()
}

fn experiment_events(experiment: &Experiment) -> Vec<Value> {
    EventKind::EXPERIMENT
        .into_iter()
        .map(|kind| events::experiment_event(kind, experiment, &events::label()))
        .collect()
}

fn created(experiment: &Experiment) -> Value {
    events::experiment_event(EventKind::ExperimentCreated, experiment, &events::label())
}

/// A connection subscribed to what `level` picks of a fresh experiment
/// owned by the connection's user (and a task in it) gets every event of
/// `kinds`.
async fn level(
    ctx: &mut Ctx,
    subscribe: fn(&Experiment, &str) -> Resource,
    tasks: bool,
    what: &str,
) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(Some(&conn.user.clone()));
    let task = ctx.fresh("task");
    conn.subscribe(&subscribe(&experiment, &task)).await?;
    let (setup, published) = if tasks {
        (
            vec![created(&experiment)],
            task_events(&task, &experiment.id),
        )
    } else {
        (Vec::new(), experiment_events(&experiment))
    };
    reaches(&mut conn, &mut admin, &setup, &published, what)
        .await
        .map(|_| ())
}

pub(super) async fn task_to_task(ctx: &mut Ctx) -> Result<(), Stop> {
    level(
        ctx,
        |_, task| Resource::new(Kind::Task, task),
        true,
        "of a subscribed task",
    )
    .await
}

pub(super) async fn task_to_experiment(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::Experiment, experiment.id.clone());
    level(ctx, pick, true, "of a task of a subscribed experiment").await
}

pub(super) async fn task_to_project(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::Project, experiment.project.clone());
    level(ctx, pick, true, "of a task in a subscribed project").await
}

pub(super) async fn task_to_user(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::User, experiment.owner.clone());
    level(
        ctx,
        pick,
        true,
        "of a task of the subscribed user's experiment",
    )
    .await
}

pub(super) async fn experiment_to_experiment(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::Experiment, experiment.id.clone());
    level(ctx, pick, false, "of a subscribed experiment").await
}

pub(super) async fn experiment_to_project(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::Project, experiment.project.clone());
    level(ctx, pick, false, "of an experiment in a subscribed project").await
}

pub(super) async fn experiment_to_user(ctx: &mut Ctx) -> Result<(), Stop> {
    let pick =
        |experiment: &Experiment, _: &str| Resource::new(Kind::User, experiment.owner.clone());
    level(ctx, pick, false, "of the subscribed user's experiment").await
}

/// A connection subscribed to `to` gets the three events of a fresh worker.
async fn worker(ctx: &mut Ctx, to: Kind, what: &str) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let worker = ctx.fresh("worker");
    let resource = match to {
        Kind::Worker => Resource::new(Kind::Worker, worker.clone()),
        kind => ctx.resource(kind),
    };
    conn.subscribe(&resource).await?;
    let published: Vec<Value> = EventKind::WORKER
        .into_iter()
        .map(|kind| events::worker_event(kind, &worker, &events::label()))
        .collect();
    reaches(&mut conn, &mut admin, &[], &published, what)
        .await
        .map(|_| ())
}

pub(super) async fn worker_to_worker(ctx: &mut Ctx) -> Result<(), Stop> {
    worker(ctx, Kind::Worker, "of a subscribed worker").await
}

pub(super) async fn worker_to_system(ctx: &mut Ctx) -> Result<(), Stop> {
    worker(ctx, Kind::System, "of a worker, to a `system` subscriber").await
}

pub(super) async fn system_to_all(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut admin = ctx.admin().await?;
    let mut plain = ctx.connect().await?;
    let mut experiment = ctx.connect().await?;
    let subscribed = ctx.resource(Kind::Experiment);
    experiment.subscribe(&subscribed).await?;
    let mut system = ctx.connect().await?;
    let resource = ctx.resource(Kind::System);
    system.subscribe(&resource).await?;
    let event = events::system_event(&events::label());
    admin.publish(&event).await?;
    let wanted = labels(&[event]);
    for (conn, what) in [
        (
            &mut plain,
            "a connection subscribed only to its path's task",
        ),
        (&mut experiment, "a connection subscribed to an experiment"),
        (&mut system, "a connection subscribed to `system`"),
    ] {
        conn.until_labels(&wanted, &format!("the system_status event at {what}"))
            .await?;
    }
    Ok(())
}

pub(super) async fn only_matching(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut admin = ctx.admin().await?;
    // One connection subscribed at every level of one experiment...
    let mut all = ctx.connect().await?;
    let mine = ctx.experiment(Some(&all.user.clone()));
    let my_task = ctx.fresh("task");
    for resource in [
        Resource::new(Kind::Task, my_task),
        Resource::new(Kind::Experiment, mine.id.clone()),
        Resource::new(Kind::Project, mine.project.clone()),
        Resource::new(Kind::User, mine.owner.clone()),
    ] {
        all.subscribe(&resource).await?;
    }
    // ... one to a task only, one to `system` only.
    let mut task_only = ctx.connect().await?;
    let below = ctx.experiment(None);
    let below_task = ctx.fresh("task");
    task_only
        .subscribe(&Resource::new(Kind::Task, below_task.clone()))
        .await?;
    let mut system_only = ctx.connect().await?;
    system_only.subscribe(&ctx.resource(Kind::System)).await?;
    // Events of another experiment in another project of another user, of
    // another task, of a worker, and of the task-only connection's
    // experiment: none reaches a connection it does not name.
    let other = ctx.experiment(None);
    let other_task = ctx.fresh("task");
    let stray_task = ctx.fresh("task");
    let worker = ctx.fresh("worker");
    let stray = vec![
        created(&other),
        events::task_event(
            EventKind::TaskCreated,
            &other_task,
            &other.id,
            &events::label(),
        ),
        events::experiment_event(EventKind::ExperimentProgress, &other, &events::label()),
        events::task_event(
            EventKind::TaskUpdated,
            &stray_task,
            &mine.id.replace("exp", "elsewhere"),
            &events::label(),
        ),
        events::worker_event(EventKind::WorkerUpdated, &worker, &events::label()),
    ];
    let above = created(&below);
    for event in stray.iter().chain([&above]) {
        admin.publish(event).await?;
    }
    let stray_labels = labels(&stray);
    let mut below_labels = stray_labels.clone();
    below_labels.extend(labels(std::slice::from_ref(&above)));
    for (conn, unwanted, what) in [
        (
            &mut all,
            &stray_labels,
            "a connection subscribed to a task, its experiment, project and user",
        ),
        (
            &mut task_only,
            &below_labels,
            "a connection subscribed to a task only (events go up the table, not down)",
        ),
    ] {
        let window = conn.window(&mut admin).await?;
        let leaked = carrying(&window, unwanted);
        check(leaked.is_empty(), || {
            format!(
                "{what} got events the table does not route to it: {}",
                leaked.join(", ")
            )
        })?;
    }
    let window = system_only.window(&mut admin).await?;
    let not_worker: Vec<String> = stray
        .iter()
        .filter(|event| !event["type"].as_str().unwrap_or("").starts_with("worker_"))
        .filter_map(|event| label_of(event).map(str::to_owned))
        .collect();
    let leaked = carrying(&window, &not_worker);
    check(leaked.is_empty(), || {
        format!(
            "a connection subscribed to `system` got task or experiment events: {}",
            leaked.join(", ")
        )
    })
}

pub(super) async fn once_per_connection(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(Some(&conn.user.clone()));
    let task = ctx.fresh("task");
    for resource in [
        Resource::new(Kind::Task, task.clone()),
        Resource::new(Kind::Experiment, experiment.id.clone()),
        Resource::new(Kind::Project, experiment.project.clone()),
        Resource::new(Kind::User, experiment.owner.clone()),
    ] {
        conn.subscribe(&resource).await?;
    }
    let published = [
        created(&experiment),
        events::task_event(
            EventKind::TaskUpdated,
            &task,
            &experiment.id,
            &events::label(),
        ),
    ];
    for event in &published {
        admin.publish(event).await?;
    }
    let window = conn.window(&mut admin).await?;
    for event in &published {
        let label = label_of(event);
        let count = window.iter().filter(|msg| msg.label() == label).count();
        check(count == 1, || {
            format!(
                "the {} matching {} of the connection's subscriptions arrived {count} times, not once",
                event["type"],
                if event["type"] == "experiment_created" { 3 } else { 4 }
            )
        })?;
    }
    Ok(())
}

pub(super) async fn publication_order(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let mut admin = ctx.admin().await?;
    let experiment = ctx.experiment(None);
    let task = ctx.fresh("task");
    subscribe_twice(&mut conn, &experiment).await?;
    let published: Vec<Value> = (0..12)
        .map(|n| {
            if n % 2 == 0 {
                events::task_event(
                    EventKind::TaskProgress,
                    &task,
                    &experiment.id,
                    &events::label(),
                )
            } else {
                events::experiment_event(
                    EventKind::ExperimentProgress,
                    &experiment,
                    &events::label(),
                )
            }
        })
        .collect();
    let seen = reaches(
        &mut conn,
        &mut admin,
        &[created(&experiment)],
        &published,
        "of a subscribed experiment",
    )
    .await
    .map_err(|stop| super::super::session::nothing_to_judge(stop, "subscription.routing.*"))?;
    let wanted = labels(&published);
    let order: Vec<&str> = seen
        .iter()
        .filter_map(|msg| msg.label())
        .filter(|label| wanted.iter().any(|w| w == label))
        .collect();
    let mut first_seen: Vec<&str> = Vec::new();
    for label in order {
        if !first_seen.contains(&label) {
            first_seen.push(label);
        }
    }
    check(first_seen == wanted, || {
        let position = |label: &str| wanted.iter().position(|w| w == label).map_or(0, |p| p + 1);
        let got: Vec<String> = first_seen
            .iter()
            .map(|label| format!("#{}", position(label)))
            .collect();
        format!(
            "12 events published in a row arrived in another order: {}",
            got.join(" ")
        )
    })
}
