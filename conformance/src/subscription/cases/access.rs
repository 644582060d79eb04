//! Cases about authentication and paths: tokens in the query and the
//! header, the refusals of missing and bad tokens, unknown paths, and the
//! path's resource subscribed on connect.

use super::super::events::{self, EventKind};
use super::super::target::{Auth, Opened};
use super::super::tokens::Bad;
use super::*;
use crate::verdict::{check, fail};

/// The four paths, each with the resource it names: fresh ids, and
/// `/ws/user` for `user`.
fn paths(ctx: &mut Ctx) -> Vec<String> {
    vec![
        format!("/ws/tasks/{}", ctx.fresh("task")),
        format!("/ws/experiments/{}", ctx.fresh("exp")),
        format!("/ws/projects/{}", ctx.fresh("proj")),
        "/ws/user".to_owned(),
    ]
}

/// On each path, a valid token where `place` puts it is accepted: no
/// `error`, no close, a `ping` answered.
async fn accepted_on_every_path(
    ctx: &mut Ctx,
    place: fn(String) -> Auth,
    what: &str,
) -> Result<(), Stop> {
    for path in paths(ctx) {
        let user = ctx.fresh("user");
        let auth = place(ctx.token(&user, false)?);
        let mut conn = ctx
            .open_conn(&path, &auth, &user, &format!("a valid token in {what}"))
            .await?;
        let before = conn
            .still_open(&format!(
                "connecting to {path} with a valid token in {what}"
            ))
            .await?;
        if let Some(error) = before.iter().find(|msg| msg.kind() == "error") {
            return fail(format!(
                "a valid token in {what} on {path} got {}",
                describe(error)
            ));
        }
    }
    Ok(())
}

pub(super) async fn query_token(ctx: &mut Ctx) -> Result<(), Stop> {
    accepted_on_every_path(ctx, Auth::Query, "the query (`?token=`)").await
}

pub(super) async fn header_token(ctx: &mut Ctx) -> Result<(), Stop> {
    accepted_on_every_path(ctx, Auth::Header, "the `Authorization: Bearer` header").await
}

/// A connection with `auth` gets exactly one `error` `expected`, then a
/// close with code 1008.
async fn refused(ctx: &mut Ctx, auth: Auth, expected: &str, what: &str) -> Result<(), Stop> {
    let user = ctx.fresh("user");
    let path = format!("/ws/tasks/{}", ctx.fresh("task"));
    let mut conn = match ctx.open(&path, &auth, &user).await? {
        Opened::Conn(conn) => *conn,
        Opened::Refused(status) => {
            return fail(format!(
                "{what}: the handshake was refused with HTTP {status}; the profile wants the upgrade, one `error` {expected:?} and a close 1008"
            ))
        }
    };
    let timeout = ctx.target.reply_timeout;
    let (seen, closed) = conn.until_closed(timeout).await;
    let described: Vec<String> = seen.iter().map(describe).collect();
    let Some(code) = closed else {
        return fail(format!(
            "{what}: the connection was not closed within {} (got: {})",
            humantime::format_duration(timeout),
            if described.is_empty() {
                "nothing".into()
            } else {
                described.join(", ")
            }
        ));
    };
    check(
        seen.len() == 1 && seen[0].error_text() == Some(expected),
        || {
            format!(
                "{what}: expected exactly one `error` {expected:?} before the close, got [{}]",
                described.join(", ")
            )
        },
    )?;
    check(code == Some(1008), || {
        format!(
            "{what}: the close after the `error` has {}, not 1008",
            code.map_or("no code".into(), |code| format!("code {code}"))
        )
    })
}

pub(super) async fn missing_token(ctx: &mut Ctx) -> Result<(), Stop> {
    refused(ctx, Auth::None, "Authentication required", "no token").await
}

async fn bad(ctx: &mut Ctx, kind: Bad, what: &str) -> Result<(), Stop> {
    let user = ctx.fresh("user");
    let token = ctx.bad_token(&user, kind)?;
    refused(ctx, Auth::Query(token), "Invalid or expired token", what).await
}

pub(super) async fn bad_signature(ctx: &mut Ctx) -> Result<(), Stop> {
    bad(ctx, Bad::WrongSecret, "a token signed with another secret").await
}

pub(super) async fn expired(ctx: &mut Ctx) -> Result<(), Stop> {
    bad(ctx, Bad::Expired, "a token expired an hour ago").await
}

pub(super) async fn alg_none(ctx: &mut Ctx) -> Result<(), Stop> {
    bad(ctx, Bad::AlgNone, "an unsigned token (`alg: none`)").await
}

pub(super) async fn other_algorithm(ctx: &mut Ctx) -> Result<(), Stop> {
    bad(ctx, Bad::Hs384, "a token signed with HS384").await
}

pub(super) async fn no_subject(ctx: &mut Ctx) -> Result<(), Stop> {
    bad(ctx, Bad::NoSubject, "a token without `sub`").await
}

pub(super) async fn unknown_path(ctx: &mut Ctx) -> Result<(), Stop> {
    let user = ctx.fresh("user");
    let paths = [
        format!("/ws/workers/{}", ctx.fresh("worker")),
        format!("/ws/user/{user}"),
        "/ws/experiments".to_owned(),
        "/".to_owned(),
    ];
    for path in paths {
        let token = ctx.token(&user, false)?;
        match ctx.open(&path, &Auth::Query(token), &user).await? {
            Opened::Refused(404) => {}
            Opened::Refused(status) => {
                return fail(format!("{path} was refused with HTTP {status}, not 404"))
            }
            Opened::Conn(conn) => {
                conn.note("upgraded: the path should have been refused");
                return fail(format!(
                    "{path} is not one of the profile's paths, but the handshake was upgraded instead of refused with HTTP 404"
                ));
            }
        }
    }
    Ok(())
}

pub(super) async fn resource_subscribed(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut admin = ctx.admin().await?;
    let task = ctx.fresh("task");
    let experiment = ctx.fresh("exp");
    let in_project = ctx.experiment(None);
    let user = ctx.fresh("user");
    let owned = ctx.experiment(Some(&user));
    let label = || events::label();
    // (path, token place, the event its resource gets, what)
    let cases = [
        (
            format!("/ws/tasks/{task}"),
            false,
            events::task_event(EventKind::TaskProgress, &task, &ctx.fresh("exp"), &label()),
        ),
        (
            format!("/ws/experiments/{experiment}"),
            false,
            events::experiment_event(
                EventKind::ExperimentProgress,
                &events::Experiment {
                    id: experiment.clone(),
                    project: ctx.fresh("proj"),
                    owner: ctx.fresh("owner"),
                },
                &label(),
            ),
        ),
        (
            format!("/ws/projects/{}", in_project.project),
            false,
            events::experiment_event(EventKind::ExperimentCreated, &in_project, &label()),
        ),
        (
            "/ws/user".to_owned(),
            true,
            events::experiment_event(EventKind::ExperimentCreated, &owned, &label()),
        ),
    ];
    let mut conns = Vec::new();
    for (path, header, _) in &cases {
        let owner = if *header {
            user.clone()
        } else {
            ctx.fresh("user")
        };
        let token = ctx.token(&owner, false)?;
        let auth = if *header {
            Auth::Header(token)
        } else {
            Auth::Query(token)
        };
        let mut conn = ctx
            .open_conn(path, &auth, &owner, "a valid token")
            .await
            .map_err(|stop| match stop {
                Stop::Fail(reason) => {
                    Stop::Harness(format!("{reason} (subscription.auth.* judges that)"))
                }
                other => other,
            })?;
        // The path's subscription is in place once the server reads.
        conn.still_open(&format!("connecting to {path}")).await?;
        conns.push(conn);
    }
    for (_, _, event) in &cases {
        admin.publish(event).await?;
    }
    for ((path, _, event), conn) in cases.iter().zip(conns.iter_mut()) {
        let Some(label) = label_of(event) else {
            return Err(Stop::Harness(
                "an event without a label (a suite bug)".into(),
            ));
        };
        let kind = event["type"].as_str().unwrap_or("event");
        conn.until_labels(&[label.to_owned()], &format!("the {kind} of {path}'s resource"))
            .await
            .map_err(|stop| match stop {
                Stop::Fail(reason) => Stop::Fail(format!(
                    "a connection to {path}, which sent no subscribe, did not get its resource's {kind}: {reason}"
                )),
                other => other,
            })?;
    }
    Ok(())
}
