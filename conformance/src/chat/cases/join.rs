//! Joining: a free name, the announcement to the others, a taken name
//! (refused, or made unique with the joiner's port), names too long or
//! blank after trimming, and a 50-character name padded with spaces.

use serde_json::json;

use super::super::conn::{
    is_refusal, is_success, names, shown, shown_all, system_naming, text, users, ChatConn, User,
};
use super::super::requests::{self, padded_to};
use super::super::target::Ctx;
use crate::session::Msg;
use crate::verdict::{fail, Stop};

/// `chat.join.success`.
pub(super) async fn success(ctx: &mut Ctx) -> Result<(), Stop> {
    // A space and a non-ASCII letter inside: any characters make a name.
    let name = format!("Zoë {}", ctx.fresh("s"));
    let mut conn = ctx.connect(&format!("client {name}")).await?;
    let outcome = async {
        let response = conn
            .request(&requests::join(&name), &format!("`join_chat` as {name:?}"))
            .await?;
        if is_success(&response) {
            return Ok(());
        }
        fail(format!(
            "`join_chat` as {name:?} (a fresh name of {} characters) got {}, not `status: success`",
            name.chars().count(),
            shown(&response)
        ))
    }
    .await;
    conn.disconnect();
    outcome
}

/// `chat.join.announced`.
pub(super) async fn announced(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut first, _) = ctx.joined("w").await?;
    let (mut second, _) = ctx.joined("w").await?;
    let name = ctx.fresh("j");
    let mut joiner = ctx.connect(&format!("client {name}")).await?;
    let outcome = async {
        let given = joiner.join(&name).await?;
        for (which, watcher) in [("first", &mut first), ("second", &mut second)] {
            let seen = watcher.sync().await?;
            if !seen.iter().any(|msg| system_naming(msg, &given)) {
                return fail(format!(
                    "the {which} client joined before {given} got no `system` broadcast naming it before the response to a later `get_users` (got: {})",
                    shown_all(&seen.iter().collect::<Vec<_>>())
                ));
            }
        }
        Ok(())
    }
    .await;
    for conn in [&mut first, &mut second, &mut joiner] {
        conn.disconnect();
    }
    outcome
}

/// `chat.join.taken`.
pub(super) async fn taken(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut holder, name) = ctx.joined("t").await?;
    let mut second = ctx
        .connect(&format!("a second client asking for {name}"))
        .await?;
    let outcome = async {
        let response = second
            .request(
                &requests::join(&name),
                &format!("`join_chat` as {name:?} (taken)"),
            )
            .await?;
        if is_refusal(&response) {
            return Ok(());
        }
        if !is_success(&response) {
            return fail(format!(
                "`join_chat` with the taken name {name:?} got {}: neither `status: error` nor success",
                shown(&response)
            ));
        }
        let (_, listing) = holder.sync_with_response().await?;
        judge_suffixed(&name, &response, &listing)
    }
    .await;
    holder.disconnect();
    second.disconnect();
    outcome
}

/// A successful join with the taken `name`: the name given (the
/// response's `username`, else the one new name `listing` has that begins
/// with `name`) must be `name` followed by a port number, and that user's
/// port when the listing has addresses.
fn judge_suffixed(name: &str, response: &Msg, listing: &Msg) -> Result<(), Stop> {
    let listed = users(listing).unwrap_or_default();
    let holders = listed.iter().filter(|user| user.name == name).count();
    if holders > 1 {
        return fail(format!(
            "a second client joined with the taken name {name:?} and `get_users` lists it {holders} times"
        ));
    }
    let given = match text(response, "username") {
        Some(given) => given.to_owned(),
        None => {
            let candidates: Vec<&User> = listed
                .iter()
                .filter(|user| user.name != name && user.name.starts_with(name))
                .collect();
            match candidates.as_slice() {
                [user] => user.name.clone(),
                _ => {
                    return fail(format!(
                        "`join_chat` with the taken name {name:?} succeeded ({}), but the response has no `username` and `get_users` lists {} other name(s) beginning with it (users: {:?})",
                        shown(response),
                        candidates.len(),
                        names(&listed)
                    ))
                }
            }
        }
    };
    let Some(port) = port_suffix(name, &given) else {
        return fail(format!(
            "`join_chat` with the taken name {name:?} was given {given:?}: not the name followed by a port number"
        ));
    };
    let address = listed
        .iter()
        .find(|user| user.name == given)
        .and_then(|user| user.address.as_deref());
    match address.and_then(|address| address.rsplit_once(':')) {
        Some((_, listed_port)) if listed_port.parse::<u16>().ok() != Some(port) => fail(format!(
            "the taken name {name:?} was given {given:?}, but `get_users` lists that user at {}: not its port",
            address.unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// The port in `given` when it is `name`, at most one separator (`_`,
/// `-`, `#`, `.`, `:`) and a port number.
fn port_suffix(name: &str, given: &str) -> Option<u16> {
    let rest = given.strip_prefix(name)?;
    let digits = rest.strip_prefix(['_', '-', '#', '.', ':']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|port| *port > 0)
}

/// Fails unless each of `usernames` (labelled) is refused on `conn`.
async fn refused_names(
    conn: &mut ChatConn,
    usernames: &[(&str, serde_json::Value)],
) -> Result<(), Stop> {
    for (label, username) in usernames {
        let what = format!("`join_chat` with {label}");
        let response = conn
            .request_invalid(&requests::join_invalid(username), &what)
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

/// `chat.join.too-long`.
pub(super) async fn too_long(ctx: &mut Ctx) -> Result<(), Stop> {
    let long = padded_to(&ctx.fresh("l"), 51);
    let padded = padded_to(&ctx.fresh("l"), 51);
    let mut conn = ctx.connect("a client asking for too-long names").await?;
    let outcome = async {
        refused_names(
            &mut conn,
            &[
                ("a name of 51 characters", json!(long)),
                (
                    "a name of 51 characters padded with spaces",
                    json!(format!("  {padded} ")),
                ),
            ],
        )
        .await?;
        let (mut lister, _) = ctx.joined("ll").await?;
        let listing = lister.sync_with_response().await;
        lister.disconnect();
        let listed = users(&listing?.1).unwrap_or_default();
        let found: Vec<&str> = names(&listed)
            .into_iter()
            .filter(|listed| *listed == long || *listed == padded)
            .collect();
        if found.is_empty() {
            Ok(())
        } else {
            fail(format!(
                "after refusing them, `get_users` lists the too-long name(s) {found:?}"
            ))
        }
    }
    .await;
    conn.disconnect();
    outcome
}

/// `chat.join.blank`.
pub(super) async fn blank(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut conn = ctx.connect("a client asking for blank names").await?;
    let outcome = refused_names(
        &mut conn,
        &[
            ("an empty name", json!("")),
            ("a name of spaces, tabs and a newline", json!(" \t\n ")),
        ],
    )
    .await;
    conn.disconnect();
    outcome
}

/// `chat.join.padded`.
pub(super) async fn padded(ctx: &mut Ctx) -> Result<(), Stop> {
    let name = padded_to(&ctx.fresh("p"), 50);
    let username = format!("   {name}  ");
    let mut conn = ctx.connect(&format!("client {name}")).await?;
    let outcome = async {
        let what = "`join_chat` with a name of 50 characters padded with spaces";
        let response = conn.request(&requests::join(&username), what).await?;
        if is_success(&response) {
            Ok(())
        } else {
            fail(format!(
                "{what} ({} characters before trimming) got {}, not `status: success`",
                username.chars().count(),
                shown(&response)
            ))
        }
    }
    .await;
    conn.disconnect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_suffix_is_digits_after_at_most_one_separator() {
        assert_eq!(port_suffix("Alice", "Alice_54321"), Some(54321));
        assert_eq!(port_suffix("Alice", "Alice54321"), Some(54321));
        assert_eq!(port_suffix("Alice", "Alice#1"), Some(1));
        for given in [
            "Alice",
            "Alice_",
            "Alice__1",
            "Alice_x1",
            "Alice_99999",
            "Bob_1",
            "Alice_0",
        ] {
            assert_eq!(port_suffix("Alice", given), None, "{given}");
        }
    }
}
