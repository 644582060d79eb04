//! The room: `get_users` and its `count`, leaving (announced, and no more
//! broadcasts afterwards), disconnecting without `leave_chat`, and
//! requests before `join_chat`.

use super::super::conn::{
    chat_carrying, is_refusal, is_success, names, nothing_to_judge, shown, shown_all,
    system_naming, users, ChatConn,
};
use super::super::requests;
use super::super::target::Ctx;
use crate::session::Msg;
use crate::verdict::{fail, Stop};

/// `chat.users.listed`.
pub(super) async fn listed(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut caller, me) = ctx.joined("u").await?;
    let (mut other, them) = ctx.joined("u").await?;
    let outcome = async {
        let (_, response) = caller.sync_with_response().await?;
        let Some(listed) = users(&response).filter(|_| is_success(&response)) else {
            return fail(format!(
                "`get_users` from a joined client got {}, not `status: success` with `users`",
                shown(&response)
            ));
        };
        let listed = names(&listed);
        let missing: Vec<&str> = [me.as_str(), them.as_str()]
            .into_iter()
            .filter(|name| !listed.contains(name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "`get_users` lists {listed:?}: {missing:?} missing (the caller is {me:?}, another joined client {them:?})"
            ))
        }
    }
    .await;
    caller.disconnect();
    other.disconnect();
    outcome
}

/// `chat.users.count`.
pub(super) async fn count(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut caller, _) = ctx.joined("u").await?;
    let (mut other, _) = ctx.joined("u").await?;
    let outcome = async {
        let (_, response) = caller.sync_with_response().await?;
        let Some(entries) = response.value.get("users").and_then(|users| users.as_array()) else {
            return Err(Stop::Skip(format!(
                "nothing to judge: `get_users` got {} without `users` (chat.users.listed reports that)",
                shown(&response)
            )));
        };
        match response.value.get("count") {
            Some(count) if count.as_u64() == Some(entries.len() as u64) => Ok(()),
            Some(count) => fail(format!(
                "`get_users` lists {} users but says `count: {count}`",
                entries.len()
            )),
            None => fail(format!(
                "`get_users` lists {} users without a `count`: {}",
                entries.len(),
                shown(&response)
            )),
        }
    }
    .await;
    caller.disconnect();
    other.disconnect();
    outcome
}

/// Fails unless each watcher got a `system` broadcast naming `name`
/// before the response to a later `get_users`.
async fn told(watchers: &mut [&mut ChatConn], name: &str, event: &str) -> Result<(), Stop> {
    for (n, watcher) in watchers.iter_mut().enumerate() {
        let seen = watcher.sync().await?;
        if !seen.iter().any(|msg| system_naming(msg, name)) {
            return fail(format!(
                "other joined client #{} got no `system` broadcast naming {name} after it {event}, before the response to a later `get_users` (got: {})",
                n + 1,
                shown_all(&seen.iter().collect::<Vec<_>>())
            ));
        }
    }
    Ok(())
}

/// `chat.leave.announced`.
pub(super) async fn leave_announced(ctx: &mut Ctx) -> Result<(), Stop> {
    // The leaver joins first: the others never hear of its join.
    let (mut leaver, name) = ctx.joined("l").await?;
    let (mut first, _) = ctx.joined("w").await?;
    let (mut second, _) = ctx.joined("w").await?;
    let outcome = async {
        let response = leaver.request(&requests::leave(), "`leave_chat`").await?;
        if !is_success(&response) {
            return fail(format!(
                "`leave_chat` from a joined client got {}, not `status: success`",
                shown(&response)
            ));
        }
        told(&mut [&mut first, &mut second], &name, "sent `leave_chat`").await
    }
    .await;
    for conn in [&mut leaver, &mut first, &mut second] {
        conn.disconnect();
    }
    outcome
}

/// `chat.leave.no-more-broadcasts`.
pub(super) async fn no_more_broadcasts(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut leaver, _) = ctx.joined("l").await?;
    let (mut sender, _) = ctx.joined("s").await?;
    let marker = ctx.fresh("m");
    let late = ctx.fresh("j");
    let mut joiner = ctx.connect(&format!("client {late}")).await?;
    let outcome = async {
        let response = leaver.request(&requests::leave(), "`leave_chat`").await?;
        if !is_success(&response) {
            return Err(Stop::Skip(format!(
                "nothing to judge: `leave_chat` got {} (chat.leave.announced reports that)",
                shown(&response)
            )));
        }
        sender
            .request(
                &requests::send(&format!("after the leave {marker}")),
                "`send_message`",
            )
            .await?;
        let late = joiner.join(&late).await?;
        let seen = leaver.sync().await?;
        let stray: Vec<&Msg> = seen
            .iter()
            .filter(|msg| chat_carrying(msg, &marker) || system_naming(msg, &late))
            .collect();
        if stray.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "a client that left got broadcasts afterwards: {}",
                shown_all(&stray)
            ))
        }
    }
    .await;
    for conn in [&mut leaver, &mut sender, &mut joiner] {
        conn.disconnect();
    }
    outcome
}

/// `chat.leave.disconnect`.
pub(super) async fn disconnect(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut gone, name) = ctx.joined("d").await?;
    let (mut first, _) = ctx.joined("w").await?;
    let (mut second, _) = ctx.joined("w").await?;
    let outcome = async {
        // Both others are joined before the close: the server has handled
        // their joins (answered) before it can notice it.
        gone.disconnect();
        let what = format!(
            "a `system` broadcast naming {name} (it closed its connection without `leave_chat`)"
        );
        for watcher in [&mut first, &mut second] {
            watcher
                .expect_broadcast(&what, |msg| system_naming(msg, &name))
                .await?;
        }
        let (_, listing) = first
            .sync_with_response()
            .await
            .map_err(|stop| nothing_to_judge(stop, "chat.users.listed"))?;
        let listed = users(&listing).unwrap_or_default();
        if names(&listed).contains(&name.as_str()) {
            return fail(format!(
                "{name} was announced as having left but `get_users` still lists it"
            ));
        }
        Ok(())
    }
    .await;
    first.disconnect();
    second.disconnect();
    outcome
}

/// `chat.state.join-first`.
pub(super) async fn join_first(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut watcher, _) = ctx.joined("w").await?;
    let marker = ctx.fresh("m");
    let mut early = ctx.connect("a client that never joins").await?;
    let outcome = async {
        for (what, request) in [
            (
                "`send_message`",
                requests::send(&format!("before joining {marker}")),
            ),
            ("`get_users`", requests::get_users()),
            ("`leave_chat`", requests::leave()),
        ] {
            let what = format!("{what} before `join_chat`");
            let response = early.request(&request, &what).await?;
            if !is_refusal(&response) {
                return fail(format!(
                    "{what} got {}, not `status: error`",
                    shown(&response)
                ));
            }
        }
        let seen = watcher.sync().await?;
        let stray: Vec<&Msg> = seen
            .iter()
            .filter(|msg| chat_carrying(msg, &marker))
            .collect();
        if stray.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "a message sent before `join_chat` was broadcast: {}",
                shown_all(&stray)
            ))
        }
    }
    .await;
    watcher.disconnect();
    early.disconnect();
    outcome
}
