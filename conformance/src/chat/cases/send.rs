//! Sending: the broadcast to every other joined client, none back to the
//! sender, messages too long or blank after trimming, and 1000 characters
//! padded with white space.

use serde_json::json;

use super::super::conn::{
    chat_carrying, is_refusal, is_success, nothing_to_judge, shown, shown_all, text, ChatConn,
};
use super::super::requests::{self, padded_to};
use super::super::target::Ctx;
use crate::session::Msg;
use crate::verdict::{fail, Stop};

/// Sends `message` from `sender`; fails unless it is answered success.
async fn sent(sender: &mut ChatConn, message: &str, what: &str) -> Result<(), Stop> {
    let response = sender.request(&requests::send(message), what).await?;
    if is_success(&response) {
        Ok(())
    } else {
        fail(format!(
            "{what} got {}, not `status: success`",
            shown(&response)
        ))
    }
}

/// The `chat` broadcast carrying `marker` among what `watcher` got before
/// the response to a later `get_users`; fails naming `which` when none.
async fn delivered(watcher: &mut ChatConn, marker: &str, which: &str) -> Result<Msg, Stop> {
    let seen = watcher.sync().await?;
    let all: Vec<&Msg> = seen.iter().collect();
    match seen.iter().find(|msg| chat_carrying(msg, marker)) {
        Some(msg) => Ok(msg.clone()),
        None => fail(format!(
            "{which} got no `chat` broadcast of the message before the response to a later `get_users` (got: {})",
            shown_all(&all)
        )),
    }
}

/// Whether a broadcast's text is `message` as sent or trimmed.
fn same_text(broadcast: &Msg, message: &str) -> bool {
    text(broadcast, "message").is_some_and(|got| got == message || got == message.trim())
}

/// `chat.send.broadcast`.
pub(super) async fn broadcast(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut sender, name) = ctx.joined("s").await?;
    let (mut first, _) = ctx.joined("w").await?;
    let (mut second, _) = ctx.joined("w").await?;
    let marker = ctx.fresh("m");
    let message = format!("  hello {marker}, with spaces around  ");
    let outcome = async {
        sent(&mut sender, &message, "`send_message` from a joined client").await?;
        for (which, watcher) in [
            ("the first other client", &mut first),
            ("the second other client", &mut second),
        ] {
            let got = delivered(watcher, &marker, which).await?;
            if !same_text(&got, &message) {
                return fail(format!(
                    "{which} got {}: its `message` is neither {message:?} as sent nor trimmed",
                    shown(&got)
                ));
            }
            if text(&got, "username") != Some(name.as_str()) {
                return fail(format!(
                    "{which} got {}: its `username` is not the sender's, {name:?}",
                    shown(&got)
                ));
            }
        }
        Ok(())
    }
    .await;
    for conn in [&mut sender, &mut first, &mut second] {
        conn.disconnect();
    }
    outcome
}

/// `chat.send.not-to-sender`.
pub(super) async fn not_to_sender(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut sender, _) = ctx.joined("s").await?;
    let (mut watcher, _) = ctx.joined("w").await?;
    let marker = ctx.fresh("m");
    let outcome = async {
        sender
            .request(
                &requests::send(&format!("echo? {marker}")),
                "`send_message`",
            )
            .await?;
        delivered(&mut watcher, &marker, "another joined client")
            .await
            .map_err(|stop| match stop {
                Stop::Fail(reason) => nothing_to_judge(
                    Stop::Fail(format!("no broadcast to judge by: {reason}")),
                    "chat.send.broadcast",
                ),
                other => other,
            })?;
        let seen = sender.sync().await?;
        let echoed: Vec<&Msg> = seen
            .iter()
            .filter(|msg| chat_carrying(msg, &marker))
            .collect();
        if echoed.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "the sender got its own message back: {}",
                shown_all(&echoed)
            ))
        }
    }
    .await;
    sender.disconnect();
    watcher.disconnect();
    outcome
}

/// Fails unless each of `messages` (labelled) is refused from `sender`.
async fn refused_messages(sender: &mut ChatConn, messages: &[(&str, String)]) -> Result<(), Stop> {
    for (label, message) in messages {
        let what = format!("`send_message` with {label}");
        let response = sender
            .request_invalid(&requests::send_invalid(&json!(message)), &what)
            .await?;
        if !is_refusal(&response) {
            return fail(format!(
                "{what} got {}, not `status: error`",
                shown(&response)
            ));
        }
    }
    Ok(())
}

/// `chat.send.too-long`.
pub(super) async fn too_long(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut sender, _) = ctx.joined("s").await?;
    let long = padded_to(&ctx.fresh("m"), 1001);
    let padded = format!(" {} \n", padded_to(&ctx.fresh("m"), 1001));
    let outcome = refused_messages(
        &mut sender,
        &[
            ("1001 characters", long),
            ("1001 characters padded with white space", padded),
        ],
    )
    .await;
    sender.disconnect();
    outcome
}

/// `chat.send.blank`.
pub(super) async fn blank(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut sender, _) = ctx.joined("s").await?;
    let outcome = refused_messages(
        &mut sender,
        &[
            ("an empty message", String::new()),
            (
                "a message of spaces, tabs and newlines",
                " \t\n \n".to_owned(),
            ),
        ],
    )
    .await;
    sender.disconnect();
    outcome
}

/// `chat.send.padded`.
pub(super) async fn padded(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut sender, _) = ctx.joined("s").await?;
    let (mut watcher, _) = ctx.joined("w").await?;
    let marker = ctx.fresh("m");
    let body = padded_to(&format!("{marker} "), 1000);
    let message = format!("  \n{body} \n ");
    let outcome = async {
        sent(
            &mut sender,
            &message,
            "`send_message` with 1000 characters padded with white space",
        )
        .await?;
        let got = delivered(&mut watcher, &marker, "another joined client").await?;
        if same_text(&got, &message) {
            Ok(())
        } else {
            fail(format!(
                "another joined client got {}: its `message` is neither the 1000 characters nor the message as sent",
                shown(&got)
            ))
        }
    }
    .await;
    sender.disconnect();
    watcher.disconnect();
    outcome
}
