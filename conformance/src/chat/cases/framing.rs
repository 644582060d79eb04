//! The stream's framing: a request in pieces or byte by byte, several in
//! one write with and without white space, pretty-printed objects, and
//! the `\n` after each object the server sends.
//!
//! The requests counted are `get_users` on a joined connection, each
//! answered with a `users` list; after them the case sends `leave_chat`,
//! whose response (a `status` without `users`) marks the end: every
//! response before it answers one of the counted requests. So a request
//! lost or split in two shows as a wrong count, without waiting. Pieces
//! meant to reach the server apart are written [`PAUSE`] apart with the
//! socket's delay off.

use std::time::Duration;

use specwire_protocol::chat::Message as Chat;

use super::super::conn::{chat_carrying, is_success, shown, shown_all, ChatConn};
use super::super::requests::{self, GET_USERS};
use super::super::target::Ctx;
use crate::session::{Msg, Session};
use crate::verdict::{check, fail, Stop};

/// Between pieces of one request.
const PAUSE: Duration = Duration::from_millis(3);
/// Between bytes of one request.
const BYTE_PAUSE: Duration = Duration::from_millis(1);

/// `get_users` cut in five pieces: inside a key, between a key and its
/// value, inside a string, before the closing braces; the first is at
/// least eight bytes long, every piece at least four.
const PIECES: [&str; 5] = [
    r#"{"method""#,
    r#": "get"#,
    r#"_users", "pa"#,
    r#"rams""#,
    r#": {}}"#,
];

/// Whether `msg` is the marker's response: a `status` without `users`.
fn is_marker(msg: &Msg) -> bool {
    msg.value.get("status").is_some() && msg.value.get("users").is_none()
}

/// Sends `leave_chat` and returns the responses that came before its
/// response: up to the first that looks like it (a `status` without
/// `users`), or, for a server whose `leave_chat` response has `users`
/// too, the one after the `expected` answers.
async fn answers_before_marker(conn: &mut ChatConn, expected: usize) -> Result<Vec<Msg>, Stop> {
    conn.send(&requests::leave()).await?;
    let mut answers = Vec::new();
    loop {
        let msg = conn
            .response("the requests written, then a `leave_chat` marking their end")
            .await?;
        if is_marker(&msg) || answers.len() == expected {
            return Ok(answers);
        }
        answers.push(msg);
    }
}

/// Fails unless `answers` are `expected` answers to `get_users` (each a
/// `status`, none an `error`+`code`).
fn answered(answers: &[Msg], expected: usize, what: &str) -> Result<(), Stop> {
    let all: Vec<&Msg> = answers.iter().collect();
    let statuses = answers
        .iter()
        .filter(|msg| msg.value.get("status").is_some())
        .count();
    check(answers.len() == expected && statuses == expected, || {
        format!(
            "{what} should get {expected} response(s) to `get_users`, got {} before the response to a later `leave_chat`: {}",
            answers.len(),
            shown_all(&all)
        )
    })
}

/// Checks `text` is a request the schema accepts (a harness error
/// otherwise): the framing cases compose valid requests in odd ways.
fn checked(text: &str) -> Result<(), Stop> {
    match Session::<Chat>::refuse(text) {
        Some(problem) => Err(Stop::Harness(problem)),
        None => Ok(()),
    }
}

/// Runs `body` on a connection joined for the case, then closes it.
async fn on_joined<F>(ctx: &mut Ctx, what: &str, body: F) -> Result<(), Stop>
where
    F: for<'a> FnOnce(&'a mut ChatConn) -> futures_util::future::BoxFuture<'a, Result<(), Stop>>,
{
    let (mut conn, _) = ctx.joined(what).await?;
    let outcome = body(&mut conn).await;
    conn.disconnect();
    outcome
}

/// `chat.framing.split`.
pub(super) async fn split(ctx: &mut Ctx) -> Result<(), Stop> {
    checked(&PIECES.concat())?;
    on_joined(ctx, "split", |conn| {
        Box::pin(async move {
            for (n, piece) in PIECES.iter().enumerate() {
                if n > 0 {
                    tokio::time::sleep(PAUSE).await;
                }
                conn.write(piece.as_bytes()).await?;
            }
            conn.write(b"\n").await?;
            let answers = answers_before_marker(conn, 1).await?;
            answered(&answers, 1, "a `get_users` written in 5 pieces")
        })
    })
    .await
}

/// `chat.framing.byte-by-byte`.
pub(super) async fn byte_by_byte(ctx: &mut Ctx) -> Result<(), Stop> {
    on_joined(ctx, "bytes", |conn| {
        Box::pin(async move {
            for (n, byte) in GET_USERS.bytes().enumerate() {
                if n > 0 {
                    tokio::time::sleep(BYTE_PAUSE).await;
                }
                conn.write(&[byte]).await?;
            }
            conn.write(b"\n").await?;
            let answers = answers_before_marker(conn, 1).await?;
            answered(
                &answers,
                1,
                &format!(
                    "a `get_users` written one byte at a time ({} writes)",
                    GET_USERS.len()
                ),
            )
        })
    })
    .await
}

/// `chat.framing.several-in-one-write`.
pub(super) async fn several_in_one_write(ctx: &mut Ctx) -> Result<(), Stop> {
    on_joined(ctx, "several", |conn| {
        Box::pin(async move {
            conn.write(format!("{GET_USERS}\n{GET_USERS}\n{GET_USERS}\n").as_bytes())
                .await?;
            // The marker goes once the server has read the write.
            let first = conn.response("three `get_users` in one write").await?;
            let mut answers = vec![first];
            answers.extend(answers_before_marker(conn, 2).await?);
            answered(
                &answers,
                3,
                "three `get_users` in one write, each ended by `\\n`,",
            )
        })
    })
    .await
}

/// `chat.framing.no-separator`.
pub(super) async fn no_separator(ctx: &mut Ctx) -> Result<(), Stop> {
    on_joined(ctx, "nosep", |conn| {
        Box::pin(async move {
            conn.write(format!("{GET_USERS}{GET_USERS}{GET_USERS}\n").as_bytes())
                .await?;
            let answers = answers_before_marker(conn, 3).await?;
            answered(
                &answers,
                3,
                "three `get_users` back to back (`}{`) in one write",
            )
        })
    })
    .await
}

/// `chat.framing.whitespace`.
pub(super) async fn whitespace(ctx: &mut Ctx) -> Result<(), Stop> {
    let together = format!("  \t{GET_USERS} \r\n\n\t {GET_USERS}\t\r\n  \n{GET_USERS}  \r\n");
    let apart = [format!("\r\n{GET_USERS} \n"), format!("\t {GET_USERS}\t\n")];
    on_joined(ctx, "space", |conn| {
        Box::pin(async move {
            conn.write(together.as_bytes()).await?;
            for write in &apart {
                conn.write(write.as_bytes()).await?;
            }
            let answers = answers_before_marker(conn, 5).await?;
            answered(
                &answers,
                5,
                "five `get_users` with spaces, tabs, `\\r\\n` and blank lines around them (three in one write, two in a write each)",
            )
        })
    })
    .await
}

/// `chat.framing.pretty`.
pub(super) async fn pretty(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut watcher, _) = ctx.joined("pw").await?;
    let name = ctx.fresh("pretty");
    let marker = ctx.fresh("m");
    let join = pretty_printed(&requests::join(&name), "\n")?;
    let send = pretty_printed(&requests::send(&format!("pretty {marker}")), "\r\n")?;
    let mut conn = ctx
        .connect("a client writing pretty-printed requests")
        .await?;
    let outcome = async {
        for (what, text) in [("`join_chat`", &join), ("`send_message` (`\\r\\n` line ends)", &send)] {
            conn.write(format!("{text}\n").as_bytes()).await?;
            let response = conn.response(&format!("a pretty-printed {what}")).await?;
            if !is_success(&response) {
                return fail(format!(
                    "a pretty-printed {what} over {} lines got {}, not `status: success`",
                    text.lines().count(),
                    shown(&response)
                ));
            }
        }
        let seen = watcher.sync().await?;
        check(
            seen.iter().any(|msg| chat_carrying(msg, &marker)),
            || {
                format!(
                    "the pretty-printed `send_message` was answered but its text did not reach another joined client (got: {})",
                    shown_all(&seen.iter().collect::<Vec<_>>())
                )
            },
        )
    }
    .await;
    conn.disconnect();
    watcher.disconnect();
    outcome
}

/// `request` pretty-printed with `line_end` between its lines, checked.
fn pretty_printed(request: &serde_json::Value, line_end: &str) -> Result<String, Stop> {
    let text = serde_json::to_string_pretty(request)
        .map_err(|error| Stop::Harness(error.to_string()))?
        .replace('\n', line_end);
    checked(&text)?;
    Ok(text)
}

/// `chat.framing.newline`: a short exchange of its own, then judged over
/// the whole run.
pub(super) async fn newline(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut first, _) = ctx.joined("nl").await?;
    let (mut second, _) = ctx.joined("nl").await?;
    let marker = ctx.fresh("m");
    let exchange = async {
        first
            .request(
                &requests::send(&format!("newline {marker}")),
                "`send_message`",
            )
            .await?;
        second.sync().await?;
        first.request(&requests::leave(), "`leave_chat`").await?;
        second.sync().await?;
        first.sync().await
    }
    .await;
    first.disconnect();
    second.disconnect();
    exchange?;
    let endings = ctx.shared.endings();
    ctx.note(&format!(
        "{} object(s) of the server were followed by `\\n`, {} by something else",
        endings.newline,
        endings.other.len()
    ));
    if endings.other.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = endings
        .other
        .iter()
        .take(5)
        .map(|text| text.chars().take(120).collect())
        .collect();
    fail(format!(
        "{} of the {} objects the server sent (where the bytes after them were seen) were not followed by `\\n`: {}",
        endings.other.len(),
        endings.other.len() + endings.newline,
        shown.join("; ")
    ))
}
