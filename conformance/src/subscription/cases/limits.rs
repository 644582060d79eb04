//! Cases about the connection limits (per user, per IP), the rate limit,
//! the client's `ping` and the server's JSON heartbeat. The limits and the
//! heartbeat need to be told the server's settings (`--user-limit`,
//! `--ip-limit`, `--rate-limit`, `--ping-wait`) and are skipped without.

use super::super::events;
use super::super::target::Auth;
use super::*;
use crate::verdict::{check, fail};

pub(super) async fn client_ping(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect().await?;
    let id = format!("ping-{}", events::label());
    conn.send(&events::ping(&id)).await?;
    let timeout = ctx.target.reply_timeout;
    let (pong, _) = conn
        .expect("a pong", timeout, |msg| msg.kind() == "pong")
        .await?;
    check(pong.id() == Some(id.as_str()), || {
        format!(
            "the pong answering ping {id:?} carries id {:?}",
            pong.id().unwrap_or("(none)")
        )
    })
}

pub(super) async fn server_ping(ctx: &mut Ctx) -> Result<(), Stop> {
    let wait = ctx
        .target
        .ping_wait
        .filter(|wait| !wait.is_zero())
        .ok_or_else(|| {
            Stop::Skip("needs --ping-wait D (above zero): how long to wait for the server's JSON heartbeat (the profile's interval is 30 s: pass 35s)".into())
        })?;
    let mut conn = ctx.connect().await?;
    // The connection answers it (same id) as it reads.
    let (ping, _) = conn
        .expect("a ping from the server (--ping-wait)", wait, |msg| {
            msg.kind() == "ping"
        })
        .await?;
    check(ping.id().is_some(), || {
        format!("the server's ping has no id: {}", ping.text)
    })?;
    conn.still_open("answering the server's ping")
        .await
        .map(|_| ())
}

/// How a connection over a limit went.
enum Admission {
    /// Served: a `ping` answered.
    Served(Conn),
    /// Refused: what came before the close.
    Refused(Vec<Msg>),
}

/// Opens a tool-like connection for `user` and finds out whether it is
/// served (a `ping` answered) or refused (closed, after messages).
async fn admit(ctx: &mut Ctx, user: &str) -> Result<Admission, Stop> {
    let token = ctx.token(user, false)?;
    let path = format!("/ws/tasks/{}", ctx.fresh("task"));
    let mut conn = ctx
        .open_conn(
            &path,
            &Auth::Query(token),
            user,
            "a connection under the limits",
        )
        .await?;
    let id = format!("ping-{}", events::label());
    // A refused connection may be closed before the ping goes out.
    let _ = conn.send(&events::ping(&id)).await;
    let timeout = ctx.target.reply_timeout;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn.next(left).await {
            Some(Event::Message(msg)) if msg.kind() == "pong" => {
                return Ok(Admission::Served(conn))
            }
            Some(Event::Message(msg)) => seen.push(msg),
            Some(Event::Pong(_)) => {}
            Some(Event::Closed(_)) => return Ok(Admission::Refused(seen)),
            None => {
                return fail(format!(
                    "a connection was neither served (a pong) nor closed within {}",
                    humantime::format_duration(timeout)
                ))
            }
        }
    }
}

/// A refusal must carry an `error` before its close.
fn judge_refusal(seen: &[Msg], what: &str) -> Result<(), Stop> {
    check(seen.iter().any(|msg| msg.kind() == "error"), || {
        let described: Vec<String> = seen.iter().map(describe).collect();
        format!(
            "{what} was closed without an `error` message (got: [{}])",
            described.join(", ")
        )
    })
}

pub(super) async fn per_user(ctx: &mut Ctx) -> Result<(), Stop> {
    let limit = ctx.target.user_limit.ok_or_else(|| {
        Stop::Skip("needs --user-limit N: the server's limit of connections per user".into())
    })?;
    let user = ctx.fresh("user");
    let mut served = Vec::new();
    for n in 1..=limit {
        match admit(ctx, &user).await? {
            Admission::Served(conn) => served.push(conn),
            Admission::Refused(seen) => {
                close_all(&mut served).await;
                let described: Vec<String> = seen.iter().map(describe).collect();
                return fail(format!(
                    "connection {n} of one user was refused though --user-limit is {limit} (got: [{}])",
                    described.join(", ")
                ));
            }
        }
    }
    let over = admit(ctx, &user).await?;
    let result = match over {
        Admission::Served(conn) => {
            served.push(conn);
            fail(format!(
                "connection {} of one user was served though --user-limit is {limit}",
                limit + 1
            ))
        }
        Admission::Refused(seen) => {
            judge_refusal(&seen, &format!("connection {} of one user", limit + 1))
        }
    };
    if result.is_ok() && ctx.target.ip_limit.is_none_or(|ip| ip > limit + 1) {
        let other = ctx.fresh("user");
        match admit(ctx, &other).await? {
            Admission::Served(conn) => served.push(conn),
            Admission::Refused(_) => {
                close_all(&mut served).await;
                return fail(format!(
                    "with {limit} connections of one user open, another user's connection was refused: the limit is not per user"
                ));
            }
        }
    }
    close_all(&mut served).await;
    result
}

/// Tries the per-IP limit once: `Ok(None)` when it held, `Ok(Some(n))`
/// when connection `n` (at most the limit) was refused early.
async fn try_ip_limit(ctx: &mut Ctx, limit: u32) -> Result<Option<u32>, Stop> {
    let mut served = Vec::new();
    for n in 1..=limit + 1 {
        let user = ctx.fresh("user");
        match admit(ctx, &user).await? {
            Admission::Served(conn) if n <= limit => served.push(conn),
            Admission::Served(conn) => {
                served.push(conn);
                close_all(&mut served).await;
                return fail(format!(
                    "connection {n} from one address (each of another user) was served though --ip-limit is {limit}"
                ));
            }
            Admission::Refused(seen) if n > limit => {
                close_all(&mut served).await;
                judge_refusal(&seen, &format!("connection {n} from one address"))?;
                return Ok(None);
            }
            Admission::Refused(_) => {
                close_all(&mut served).await;
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

/// How many times the per-IP case starts over when it is refused early
/// (connections of earlier cases may still be closing).
const IP_ATTEMPTS: u32 = 3;

pub(super) async fn per_ip(ctx: &mut Ctx) -> Result<(), Stop> {
    let limit = ctx.target.ip_limit.ok_or_else(|| {
        Stop::Skip("needs --ip-limit N: the server's limit of connections per IP".into())
    })?;
    let mut early = Vec::new();
    for _ in 0..IP_ATTEMPTS {
        match try_ip_limit(ctx, limit).await? {
            None => return Ok(()),
            Some(n) => {
                ctx.note(&format!(
                    "connection {n} was refused early; starting over (connections of earlier cases may still count)"
                ));
                early.push(n);
            }
        }
    }
    fail(format!(
        "connections from one address were refused before --ip-limit {limit} was reached, {IP_ATTEMPTS} times (at connection {})",
        early
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(super) async fn rate(ctx: &mut Ctx) -> Result<(), Stop> {
    let limit = ctx.target.rate_limit.ok_or_else(|| {
        Stop::Skip(
            "needs --rate-limit N: the server's limit of messages per second on a connection"
                .into(),
        )
    })?;
    let mut conn = ctx.connect().await?;
    conn.unpaced();
    let count = 2 * limit + 10;
    for n in 0..count {
        let id = format!("rate-{n}");
        if conn.send(&events::ping(&id)).await.is_err() {
            break;
        }
    }
    let timeout = ctx.target.reply_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut pongs, mut limited, mut other_errors) = (0, 0, Vec::new());
    while limited == 0 || pongs == 0 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn.next(left).await {
            Some(Event::Message(msg)) if msg.kind() == "pong" => pongs += 1,
            Some(Event::Message(msg)) => match msg.error_text() {
                Some(text) if text.starts_with("Rate limit exceeded") => limited += 1,
                Some(text) => other_errors.push(text.to_owned()),
                None => {}
            },
            Some(Event::Pong(_)) => {}
            Some(Event::Closed(_)) | None => break,
        }
    }
    check(limited > 0, || {
        format!(
            "{count} pings sent at once (--rate-limit {limit}/s) got {pongs} pongs and no `error` \"Rate limit exceeded\"{}",
            if other_errors.is_empty() {
                String::new()
            } else {
                format!(" (other errors: {})", other_errors.join(", "))
            }
        )
    })?;
    check(pongs > 0, || {
        format!("of {count} pings sent at once, none was answered: the first are within any rate")
    })?;
    Ok(())
}
