//! JSON-RPC errors (parse errors, unknown methods, bad params, and the
//! connection afterwards), pipelined requests answered in order, and the
//! schema of everything the server sent.

use serde_json::json;

use super::super::conn::{code, is_success, shown, ChatConn};
use super::super::requests::{self, padded_to, NOT_JSON, UNKNOWN_METHOD};
use super::super::target::Ctx;
use crate::session::Msg;
use crate::verdict::{fail, Stop};

/// Sends deliberately invalid `text` (`what`) on `conn` and fails unless
/// the response is `{"error", "code": expected}`.
async fn coded(conn: &mut ChatConn, text: &str, what: &str, expected: i64) -> Result<(), Stop> {
    let response = conn.request_invalid(text, what).await?;
    if code(&response) == Some(expected) {
        Ok(())
    } else {
        fail(format!(
            "{what} got {}, not `{{\"error\": ..., \"code\": {expected}}}`",
            shown(&response)
        ))
    }
}

/// `chat.rpc.parse-error`.
pub(super) async fn parse_error(ctx: &mut Ctx) -> Result<(), Stop> {
    // A connection each: what the server does after a parse error is
    // `chat.rpc.stays-open`'s point.
    for text in NOT_JSON {
        let mut conn = ctx
            .connect("a client sending an object that is not JSON")
            .await?;
        let outcome = coded(&mut conn, text, &format!("{text:?}"), -32700).await;
        conn.disconnect();
        outcome?;
    }
    Ok(())
}

/// `chat.rpc.unknown-method`.
pub(super) async fn unknown_method(ctx: &mut Ctx) -> Result<(), Stop> {
    let name = ctx.fresh("r");
    let mut conn = ctx.connect(&format!("client {name}")).await?;
    let outcome = async {
        coded(
            &mut conn,
            UNKNOWN_METHOD,
            "an unknown method before joining",
            -32601,
        )
        .await?;
        conn.join(&name).await?;
        coded(
            &mut conn,
            UNKNOWN_METHOD,
            "an unknown method after joining",
            -32601,
        )
        .await
    }
    .await;
    conn.disconnect();
    outcome
}

/// `chat.rpc.bad-params`.
pub(super) async fn bad_params(ctx: &mut Ctx) -> Result<(), Stop> {
    let mut fresh = ctx.connect("a client joining with a number").await?;
    let outcome = coded(
        &mut fresh,
        &requests::join_invalid(&json!(42)),
        "`join_chat` with `username: 42` on a new connection",
        -32602,
    )
    .await;
    fresh.disconnect();
    outcome?;
    let (mut joined, _) = ctx.joined("b").await?;
    let outcome = coded(
        &mut joined,
        &requests::send_invalid(&json!(["hi"])),
        "`send_message` with `message: [\"hi\"]` on a joined connection",
        -32602,
    )
    .await;
    joined.disconnect();
    outcome
}

/// `chat.rpc.stays-open`.
pub(super) async fn stays_open(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut conn, name) = ctx.joined("o").await?;
    let outcome = async {
        let faults = [
            ("a parse error", NOT_JSON[0].to_owned()),
            ("an unknown method", UNKNOWN_METHOD.to_owned()),
            ("bad params", requests::send_invalid(&json!(42))),
        ];
        let mut after = Vec::new();
        for (label, text) in &faults {
            after.push(*label);
            let answered = conn.request_invalid(text, label).await;
            if conn.is_closed() {
                return fail(format!(
                    "the server closed the connection after {}",
                    after.join(", then ")
                ));
            }
            // The response's content is the other rpc cases' point.
            answered.map_err(|stop| {
                super::super::conn::nothing_to_judge(stop, "the other chat.rpc cases")
            })?;
        }
        // Joined or not shows in the status (a client not joined is
        // refused); whom it lists is `chat.users.listed`'s point.
        let (_, response) = conn.sync_with_response().await?;
        if is_success(&response) {
            Ok(())
        } else {
            fail(format!(
                "after {}, `get_users` got {}, not `status: success`: the client ({name:?}) is no longer joined",
                after.join(", "),
                shown(&response)
            ))
        }
    }
    .await;
    conn.disconnect();
    outcome
}

/// What a response is, for comparing orders: its `status` (and whether it
/// has `users`), or its `code`.
fn shape(msg: &Msg) -> String {
    if let Some(status) = msg.value.get("status") {
        let users = if msg.value.get("users").is_some() {
            " with users"
        } else {
            ""
        };
        return format!("status {status}{users}");
    }
    match msg.value.get("code") {
        Some(code) => format!("code {code}"),
        None => "something else".to_owned(),
    }
}

/// `chat.order.pipelined`.
pub(super) async fn pipelined(ctx: &mut Ctx) -> Result<(), Stop> {
    let (mut conn, _) = ctx.joined("p").await?;
    let outcome = async {
        let mut requests_sent = Vec::new();
        for round in ["one at a time", "pipelined"] {
            let marker = ctx.fresh("m");
            let batch = [
                (requests::get_users().to_string(), "`get_users`"),
                (
                    requests::send_invalid(&json!(padded_to(&marker, 1001))),
                    "a too-long `send_message`",
                ),
                (requests::send(&format!("in order {marker}")).to_string(), "`send_message`"),
                (UNKNOWN_METHOD.to_owned(), "an unknown method"),
                (requests::get_users().to_string(), "`get_users`"),
            ];
            let mut shapes = Vec::new();
            if round == "pipelined" {
                let text: String = batch.iter().map(|(text, _)| format!("{text}\n")).collect();
                conn.write(text.as_bytes()).await?;
            }
            for (text, what) in &batch {
                if round == "one at a time" {
                    conn.send_invalid(text).await?;
                }
                shapes.push(shape(&conn.response(&format!("{what} ({round})")).await?));
            }
            requests_sent.push((batch.map(|(_, what)| what), shapes));
        }
        let (whats, alone) = &requests_sent[0];
        let (_, together) = &requests_sent[1];
        if alone == together {
            return Ok(());
        }
        fail(format!(
            "five requests ({}) in one write were answered [{}]; one at a time they are answered [{}]: the responses are not in request order",
            whats.join(", "),
            together.join(", "),
            alone.join(", ")
        ))
    }
    .await;
    conn.disconnect();
    outcome
}

/// `chat.schema.valid`: judged over the whole run.
pub(super) async fn schema_valid(ctx: &mut Ctx) -> Result<(), Stop> {
    let invalid = ctx.invalid_messages();
    if invalid.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = invalid.iter().take(10).map(String::as_str).collect();
    fail(format!(
        "{} object(s) the server sent break the chat schema: {}",
        invalid.len(),
        shown.join("; ")
    ))
}
