//! `specwire demo chat`: the chat server on loopback, three clients, and
//! what each hears, checked: broadcasts reach the others and never the
//! sender, a client that drops its connection is announced as having
//! left, protocol faults get JSON-RPC errors and the connection stays.

use std::time::Duration;

use serde_json::{json, Value};
use specwire_runtime::chat::{ChatClient, ChatConfig, ChatEvent, ChatEvents, ChatServer};

use super::step;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(server: &ChatServer) -> Result<(ChatClient, ChatEvents), String> {
    ChatClient::connect(&server.local_addr().to_string(), TIMEOUT)
        .await
        .map_err(|error| error.to_string())
}

/// The next broadcast, which must be `expected`.
async fn hear(who: &str, events: &mut ChatEvents, expected: ChatEvent) -> Result<(), String> {
    let event = tokio::time::timeout(TIMEOUT, events.next())
        .await
        .map_err(|_| format!("{who} heard nothing within {TIMEOUT:?}"))?
        .ok_or_else(|| format!("{who}'s connection closed"))?;
    if event != expected {
        return Err(format!("{who} heard {event:?}, expected {expected:?}"));
    }
    match &event {
        ChatEvent::Chat { username, message } => println!("    {who} hears <{username}> {message}"),
        ChatEvent::System { message } => println!("    {who} hears * {message}"),
        ChatEvent::Other(value) => println!("    {who} hears {value}"),
    }
    Ok(())
}

fn system(message: &str) -> ChatEvent {
    ChatEvent::System {
        message: message.to_owned(),
    }
}

fn chat(username: &str, message: &str) -> ChatEvent {
    ChatEvent::Chat {
        username: username.to_owned(),
        message: message.to_owned(),
    }
}

/// Nothing more has arrived for `who` (a response just read proves the
/// server wrote everything queued before it).
fn heard_nothing_else(who: &str, events: &mut ChatEvents) -> Result<(), String> {
    match events.try_next() {
        None => Ok(()),
        Some(event) => Err(format!("{who} also heard {event:?}")),
    }
}

fn error_reply(response: &Value) -> String {
    response.to_string()
}

pub(super) async fn demo() -> Result<(), String> {
    step(1, "Start the chat server on loopback");
    let server = ChatServer::start(ChatConfig::new(
        "127.0.0.1:0".parse().map_err(|_| "bad address")?,
    ))
    .await
    .map_err(|error| format!("starting the server: {error}"))?;
    println!("    listening on {}", server.endpoint());

    step(
        2,
        "Alice, Bob and Carol join; each join is announced to the others",
    );
    let (alice, mut alice_events) = connect(&server).await?;
    let (bob, mut bob_events) = connect(&server).await?;
    let (carol, mut carol_events) = connect(&server).await?;
    let joined = alice.join("Alice").await.map_err(|e| e.to_string())?;
    println!("    Alice: {}", joined.message);
    bob.join("Bob").await.map_err(|e| e.to_string())?;
    hear(
        "Alice",
        &mut alice_events,
        system("Bob has joined the chat!"),
    )
    .await?;
    carol.join("  Carol  ").await.map_err(|e| e.to_string())?;
    hear(
        "Alice",
        &mut alice_events,
        system("Carol has joined the chat!"),
    )
    .await?;
    hear("Bob", &mut bob_events, system("Carol has joined the chat!")).await?;
    let refused = bob.join("Alice").await;
    println!(
        "    a second join on Bob's connection: {}",
        refused.map_or_else(|e| e.to_string(), |_| "accepted?!".to_owned())
    );

    step(3, "Alice says hello: Bob and Carol hear it, Alice does not");
    alice
        .send("Hello everyone!")
        .await
        .map_err(|e| e.to_string())?;
    hear("Bob", &mut bob_events, chat("Alice", "Hello everyone!")).await?;
    hear("Carol", &mut carol_events, chat("Alice", "Hello everyone!")).await?;
    let users = alice.users().await.map_err(|e| e.to_string())?;
    println!("    get_users: {}", users.join(", "));
    heard_nothing_else("Alice", &mut alice_events)?;

    step(
        4,
        "Protocol faults get JSON-RPC errors; the connection stays open",
    );
    let faults: [(&str, &[u8]); 3] = [
        ("not JSON", b"{\"method\": oops}\n"),
        (
            "an unknown method",
            b"{\"method\": \"shout\", \"params\": {}}\n",
        ),
        (
            "a username that is not a string",
            b"{\"method\": \"join_chat\", \"params\": {\"username\": 7}}\n",
        ),
    ];
    for (what, bytes) in faults {
        let response = carol
            .request_bytes(bytes)
            .await
            .map_err(|e| e.to_string())?;
        if response.get("code").is_none() {
            return Err(format!("{what} got {response}"));
        }
        println!("    {what}  →  {}", error_reply(&response));
    }
    let long = "x".repeat(1001);
    let refused = carol
        .request(&json!({"method": "send_message", "params": {"message": long}}))
        .await;
    println!(
        "    a message of 1001 characters  →  {}",
        refused.map_or_else(|e| e.to_string(), |r| r.to_string())
    );

    step(
        5,
        "Carol's connection drops without leave_chat: the others are told",
    );
    drop(carol);
    drop(carol_events);
    hear(
        "Alice",
        &mut alice_events,
        system("Carol has left the chat!"),
    )
    .await?;
    hear("Bob", &mut bob_events, system("Carol has left the chat!")).await?;

    step(6, "Bob leaves properly");
    bob.leave().await.map_err(|e| e.to_string())?;
    hear("Alice", &mut alice_events, system("Bob has left the chat!")).await?;
    let users = alice.users().await.map_err(|e| e.to_string())?;
    println!("    get_users: {}", users.join(", "));
    heard_nothing_else("Alice", &mut alice_events)?;

    let stats = server.stats();
    println!(
        "\n    server: {} messages, {} broadcast copies delivered, {} error replies",
        stats.messages, stats.delivered, stats.errors
    );
    server.shutdown(Duration::from_secs(2)).await;
    println!("\nDone: every broadcast reached the others and never its sender; every fault was answered.");
    Ok(())
}
