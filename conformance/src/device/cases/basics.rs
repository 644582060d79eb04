//! Registration, subscription, `ping`, refused lines and the grammar of
//! the hub's lines.

use super::super::conn::{carrying, not_pings, quoted, LineConn};
use super::super::target::{close_all, Ctx};
use crate::verdict::{check, fail, Stop};

/// Fails unless nothing but hub `ping`s came before the `pong` of a
/// `ping` sent after `what`.
async fn silent_after(conn: &mut LineConn, what: &str) -> Result<(), Stop> {
    let before = conn.sync().await?;
    let replies = not_pings(&before);
    check(replies.is_empty(), || {
        format!("`{what}` was answered: {}", quoted(&replies))
    })
}

/// `device.register.no-reply`.
pub(super) async fn register_no_reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let id = ctx.fresh("dev");
    let mut conn = ctx.connect(&format!("device {id}")).await?;
    conn.answer_pings = true;
    let line = format!("id:{id}");
    conn.send(&line).await?;
    let outcome = silent_after(&mut conn, &line).await;
    conn.close().await;
    outcome
}

/// `device.subscribe.no-reply`.
pub(super) async fn subscribe_no_reply(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect("a subscriber").await?;
    conn.send("s").await?;
    let outcome = silent_after(&mut conn, "s").await;
    conn.close().await;
    outcome
}

/// Sends two `ping`s on `conn` and checks each answer is exactly `pong`.
async fn two_pongs(conn: &mut LineConn, on: &str) -> Result<(), Stop> {
    conn.send("ping").await?;
    conn.send("ping").await?;
    let timeout = conn.timeout;
    for n in ["first", "second"] {
        let (pong, _) = conn
            .expect(&format!("an answer to the {n} `ping`"), timeout, |line| {
                line.is_pong()
            })
            .await?;
        if pong.text != "pong" {
            return fail(format!(
                "the {n} `ping` on {on} was answered {:?}, not `pong`",
                pong.text
            ));
        }
    }
    Ok(())
}

/// `device.ping.pong`.
pub(super) async fn pong(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut plain = ctx.connect("a plain connection").await?;
    let mut watcher = ctx.connect("a subscriber").await?;
    watcher.send("s").await?;
    let id = ctx.fresh("dev");
    let mut device = ctx.connect(&format!("device {id}")).await?;
    device.answer_pings = true;
    device.send(&format!("id:{id}")).await?;
    let mut outcome = two_pongs(&mut plain, "a new connection").await;
    if outcome.is_ok() {
        outcome = two_pongs(&mut watcher, "a subscriber").await;
    }
    if outcome.is_ok() {
        outcome = two_pongs(&mut device, "a registered device").await;
    }
    close_all(&mut [&mut plain, &mut watcher, &mut device]).await;
    outcome
}

/// A data-like line from a connection that is no device.
const NOT_DEVICE_LINE: &str = "temp=21.5";

/// Sends `line` then a `ping` on `conn`; fails unless an `error:` comes
/// first.
async fn refused_with_error(conn: &mut LineConn, line: &str, from: &str) -> Result<(), Stop> {
    conn.send(line).await?;
    let (seen, closed) = conn.handled().await?;
    if seen.iter().any(|line| line.is_error()) {
        return Ok(());
    }
    let texts: Vec<&str> = seen.iter().map(|line| line.text.as_str()).collect();
    let after = if closed {
        "the hub closed the connection".to_owned()
    } else {
        "the `pong` of a later `ping` came".to_owned()
    };
    fail(format!(
        "{line:?} from {from} got no `error:` before {after} (got: {})",
        if texts.is_empty() {
            "nothing".to_owned()
        } else {
            quoted(&texts)
        }
    ))
}

/// `device.errors.not-a-device`.
pub(super) async fn not_a_device(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut plain = ctx.connect("a plain connection").await?;
    let mut watcher = ctx.subscriber().await?;
    let mut outcome = refused_with_error(&mut plain, NOT_DEVICE_LINE, "a new connection").await;
    if outcome.is_ok() {
        outcome = refused_with_error(&mut watcher, NOT_DEVICE_LINE, "a subscriber").await;
    }
    close_all(&mut [&mut plain, &mut watcher]).await;
    outcome
}

/// `device.errors.stays-open`.
pub(super) async fn stays_open(ctx: &mut Ctx) -> Result<(), Stop> {
    let Some(tool) = ctx.commands().tool().cloned() else {
        return Err(Stop::Skip("the registry has no usable command".into()));
    };
    let mut watcher = ctx.subscriber().await?;
    let (mut device, _) = ctx.device().await?;
    let tag = ctx.fresh("cmd").replace('-', "");
    let unknown = ctx.commands().unknown(&tag);
    let nobody = ctx.fresh("nobody");
    let parameters = tool.parameters(0);
    let refused = [
        NOT_DEVICE_LINE.to_owned(),
        format!("cmd:all:{unknown}"),
        tool.line(&nobody, parameters.as_deref()),
    ];
    let outcome = async {
        for line in &refused {
            watcher.send(line).await?;
            watcher.handled().await?;
            if watcher.is_closed() {
                return fail(format!("the hub closed the connection after {line:?}"));
            }
        }
        watcher.sync().await?;
        let data = format!("m{}=1", ctx.marker());
        device.send(&data).await?;
        let timeout = watcher.timeout;
        watcher
            .expect(
                "the data of a device, after the refused lines",
                timeout,
                |line| line.text.contains(&data),
            )
            .await
            .map(|_| ())
    }
    .await;
    close_all(&mut [&mut watcher, &mut device]).await;
    outcome
}

/// `device.register.duplicate-id` (SHOULD).
pub(super) async fn duplicate_id(ctx: &mut Ctx) -> Result<(), Stop> {
    let Some(tool) = ctx.commands().tool().cloned() else {
        return Err(Stop::Skip("the registry has no usable command".into()));
    };
    let (mut older, id) = ctx.device().await?;
    // The newer connection may be refused, even closed: the profile
    // leaves it open.
    let mut newer = ctx.connect(&format!("device {id} again")).await?;
    newer.answer_pings = true;
    newer.send(&format!("id:{id}")).await?;
    let _ = newer.handled().await;
    let mut sender = ctx.connect("a client").await?;
    let parameters = tool.parameters(ctx.marker());
    let expected = tool.delivered(parameters.as_deref());
    let outcome = async {
        // The older connection has seen whatever the newer one's `id:` did
        // to it before answering this.
        if !older.is_closed() {
            let _ = older.sync().await;
        }
        sender.send(&tool.line(&id, parameters.as_deref())).await?;
        sender.handled().await?;
        let mut reached = Vec::new();
        for (name, conn) in [("the older", &mut older), ("the newer", &mut newer)] {
            let seen = if conn.is_closed() {
                Vec::new()
            } else {
                conn.sync().await.unwrap_or_default()
            };
            if !carrying(&seen, &expected).is_empty() {
                reached.push(name);
            }
        }
        match reached.as_slice() {
            [_] => Ok(()),
            [] => fail(format!(
                "after a second `id:{id}`, a command to {id} reached neither connection"
            )),
            _ => fail(format!(
                "after a second `id:{id}`, a command to {id} reached both connections"
            )),
        }
    }
    .await;
    close_all(&mut [&mut older, &mut newer, &mut sender]).await;
    outcome
}

/// `device.grammar.hub-lines`: judged over the whole run.
pub(super) async fn hub_lines(ctx: &mut Ctx) -> Result<(), Stop> {
    let invalid = ctx.invalid_messages();
    if invalid.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = invalid.iter().take(10).map(String::as_str).collect();
    fail(format!(
        "{} line(s) of the hub match no server-to-client pattern of the device grammar: {}",
        invalid.len(),
        shown.join("; ")
    ))
}
