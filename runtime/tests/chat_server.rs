//! The chat server over real loopback sockets: requests and their order,
//! broadcasts, the error replies, both alternatives the profile allows,
//! and the slow-reader policy.

use std::time::Duration;

use bytes::BytesMut;
use serde_json::{json, Value};
use specwire_protocol::chat::Message;
use specwire_protocol::JsonProtocol;
use specwire_runtime::chat::{
    messages, ChatClient, ChatConfig, ChatEvent, ChatServer, NamePolicy, UserListing,
};
use specwire_testsupport::wait::{eventually, within};
use specwire_wire::json::stream::{JsonStreamDecoder, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(configure: impl FnOnce(&mut ChatConfig)) -> ChatServer {
    let mut config = ChatConfig::new("127.0.0.1:0".parse().unwrap());
    configure(&mut config);
    ChatServer::start(config).await.unwrap()
}

/// A raw connection: bytes out, every object in checked against the schema.
struct Raw {
    stream: TcpStream,
    buffer: BytesMut,
    decoder: JsonStreamDecoder,
}

impl Raw {
    async fn connect(server: &ChatServer) -> Raw {
        Raw {
            stream: TcpStream::connect(server.local_addr()).await.unwrap(),
            buffer: BytesMut::new(),
            decoder: JsonStreamDecoder::new(1 << 20),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        within("an object from the server", async {
            loop {
                if let Some(item) = self.decoder.decode(&mut self.buffer) {
                    let StreamItem::Value(bytes) = item else {
                        panic!("the server wrote {item:?}")
                    };
                    assert!(
                        self.buffer.first() == Some(&b'\n'),
                        "every object ends with a newline"
                    );
                    if let Err(error) = Message::from_slice(&bytes) {
                        panic!("the server's message breaks the schema: {error}");
                    }
                    return serde_json::from_slice(&bytes).unwrap();
                }
                let read = self.stream.read_buf(&mut self.buffer).await.unwrap();
                assert!(read > 0, "the server closed the connection");
            }
        })
        .await
    }

    async fn request(&mut self, request: Value) -> Value {
        self.write(request.to_string().as_bytes()).await;
        self.next().await
    }
}

async fn client(server: &ChatServer) -> (ChatClient, specwire_runtime::chat::ChatEvents) {
    ChatClient::connect(&server.local_addr().to_string(), Duration::from_secs(5))
        .await
        .unwrap()
}

async fn next_event(events: &mut specwire_runtime::chat::ChatEvents) -> ChatEvent {
    within("a broadcast", events.next())
        .await
        .expect("the connection stays open")
}

fn system(message: &str) -> ChatEvent {
    ChatEvent::System {
        message: message.to_owned(),
    }
}

#[tokio::test]
async fn a_session_joins_talks_lists_and_leaves_and_the_others_hear_of_it() {
    let server = server(|_| {}).await;
    let (alice, mut alice_events) = client(&server).await;
    let (bob, mut bob_events) = client(&server).await;
    let joined = alice.join("  Alice ").await.unwrap();
    assert_eq!(joined.username, "Alice");
    assert_eq!(joined.users, ["Alice"]);
    bob.join("Bob").await.unwrap();
    assert_eq!(
        next_event(&mut alice_events).await,
        system("Bob has joined the chat!")
    );
    bob.send("  hello there ").await.unwrap();
    assert_eq!(
        next_event(&mut alice_events).await,
        ChatEvent::Chat {
            username: "Bob".into(),
            message: "hello there".into()
        }
    );
    assert_eq!(bob.users().await.unwrap(), ["Alice", "Bob"]);
    alice.leave().await.unwrap();
    assert_eq!(
        next_event(&mut bob_events).await,
        system("Alice has left the chat!")
    );
    // Bob heard nothing of his own: the first thing he got was Alice leaving.
    // Alice, gone, hears nothing more, but may join again on the same connection.
    bob.send("anyone?").await.unwrap();
    alice.join("Alice").await.unwrap();
    assert_eq!(
        next_event(&mut bob_events).await,
        system("Alice has joined the chat!")
    );
    let first_after_leaving = within("get_users", alice.users()).await.unwrap();
    assert_eq!(first_after_leaving, ["Bob", "Alice"]);
    // Everything sent before that response has been read: nothing else came.
    assert_eq!(alice_events.try_next(), None);
    assert_eq!(bob_events.try_next(), None);
    assert_eq!(server.stats().joined, 2);
}

#[tokio::test]
async fn a_disconnect_without_leaving_is_announced_and_frees_the_name() {
    let server = server(|_| {}).await;
    let (alice, mut alice_events) = client(&server).await;
    alice.join("Alice").await.unwrap();
    let mut bob = Raw::connect(&server).await;
    let joined = bob
        .request(json!({"method": "join_chat", "params": {"username": "Bob"}}))
        .await;
    assert_eq!(joined["status"], "success");
    assert_eq!(
        next_event(&mut alice_events).await,
        system("Bob has joined the chat!")
    );
    drop(bob);
    assert_eq!(
        next_event(&mut alice_events).await,
        system("Bob has left the chat!")
    );
    let (bob_again, _) = client(&server).await;
    bob_again.join("Bob").await.unwrap();
}

#[tokio::test]
async fn pipelined_split_and_coalesced_requests_are_answered_in_order() {
    let server = server(|_| {}).await;
    let mut raw = Raw::connect(&server).await;
    let requests = concat!(
        "{\"method\":\"get_users\",\"params\":{}}",
        "{\"method\": \"join_chat\",\n \"params\": {\"username\": \"Ann\"}}\n\n",
        " \t{\"method\":\"nope\",\"params\":{}}",
        "{\"method\":\"send_message\",\"params\":{\"message\":\"hi\"}}",
        "not json\n",
        "{\"method\":\"get_users\",\"params\":{}}\n",
    );
    // Byte by byte: one request split over many writes, several in one.
    for byte in requests.as_bytes().chunks(1) {
        raw.write(byte).await;
    }
    let status = |value: &Value| value["status"].as_str().map(str::to_owned);
    assert_eq!(raw.next().await["message"], messages::text::NOT_JOINED);
    assert_eq!(status(&raw.next().await).as_deref(), Some("success"));
    assert_eq!(raw.next().await["code"], -32601);
    assert_eq!(status(&raw.next().await).as_deref(), Some("success"));
    assert_eq!(raw.next().await["code"], -32700);
    let users = raw.next().await;
    assert_eq!(users["users"], json!(["Ann"]));
    assert_eq!(users["count"], 1);
}

#[tokio::test]
async fn protocol_faults_get_the_seed_s_codes_and_the_connection_stays() {
    let server = server(|_| {}).await;
    let mut raw = Raw::connect(&server).await;
    let cases: [(&str, Value); 9] = [
        (
            "{\"method\": \"join_chat\", \"params\": {\"username\": tru}}",
            json!(-32700),
        ),
        ("[1, 2]", json!(-32600)),
        ("{\"params\": {}}", json!(-32600)),
        ("{\"method\": 7}", json!(-32600)),
        ("{\"method\": \"shout\", \"params\": {}}", json!(-32601)),
        (
            "{\"method\": \"join_chat\", \"params\": {\"username\": 42}}",
            json!(-32602),
        ),
        ("{\"method\": \"join_chat\"}", json!(-32602)),
        ("{\"method\": \"get_users\", \"params\": []}", json!(-32602)),
        ("{\"status\": \"success\"}", json!(-32600)),
    ];
    for (request, code) in cases {
        raw.write(request.as_bytes()).await;
        let answer = raw.next().await;
        assert_eq!(answer["code"], code, "{request} got {answer}");
    }
    let refusals = [
        (
            json!({"username": " \u{3000} "}),
            messages::text::BAD_USERNAME,
        ),
        (
            json!({"username": "x".repeat(51)}),
            messages::text::BAD_USERNAME,
        ),
    ];
    for (params, text) in refusals {
        let answer = raw
            .request(json!({"method": "join_chat", "params": params}))
            .await;
        assert_eq!(answer, json!({"status": "error", "message": text}));
    }
    let joined = raw
        .request(
            json!({"method": "join_chat", "params": {"username": format!(" {} ", "é".repeat(50))}}),
        )
        .await;
    assert_eq!(joined["status"], "success", "{joined}");
    for (message, text) in [
        (" ".repeat(3), messages::text::MESSAGE_EMPTY),
        ("m".repeat(1001), messages::text::MESSAGE_TOO_LONG),
    ] {
        let answer = raw
            .request(json!({"method": "send_message", "params": {"message": message}}))
            .await;
        assert_eq!(answer, json!({"status": "error", "message": text}));
    }
    let again = raw
        .request(json!({"method": "join_chat", "params": {"username": "Other"}}))
        .await;
    assert_eq!(again["status"], "error");
    let sent = raw
        .request(json!({"method": "send_message", "params": {"message": format!(" {} ", "m".repeat(1000))}}))
        .await;
    assert_eq!(sent["status"], "success");
}

#[tokio::test]
async fn a_taken_name_is_refused_by_default_and_suffixed_when_configured() {
    let server_refusing = server(|_| {}).await;
    let (first, _) = client(&server_refusing).await;
    first.join("Sam").await.unwrap();
    let (second, _) = client(&server_refusing).await;
    let refused = second.join(" Sam ").await.unwrap_err();
    assert_eq!(refused.to_string(), "refused: Username already taken");

    let alternative = server(|config| {
        config.names = NamePolicy::SuffixPort;
        config.users = UserListing::WithAddress;
        config.welcome = true;
    })
    .await;
    let (first, _) = client(&alternative).await;
    first.join("Sam").await.unwrap();
    let mut second = Raw::connect(&alternative).await;
    let port = second.stream.local_addr().unwrap().port();
    let joined = second
        .request(json!({"method": "join_chat", "params": {"username": "Sam"}}))
        .await;
    let name = format!("Sam_{port}");
    assert_eq!(joined["username"], name.as_str());
    assert_eq!(joined["users"][1]["username"], name.as_str());
    assert_eq!(
        joined["users"][1]["address"],
        second.stream.local_addr().unwrap().to_string()
    );
    let welcome = second.next().await;
    assert_eq!(welcome["type"], "system");
    assert_eq!(welcome["message"], format!("Welcome to the chat, {name}!"));
    let users = second
        .request(json!({"method": "get_users", "params": {}}))
        .await;
    assert_eq!(users["count"], 2);
    assert!(users["users"][0]["address"].is_string());
}

#[tokio::test]
async fn a_reader_that_falls_behind_is_disconnected_and_announced_as_left() {
    let server = server(|config| config.server.limits.max_queued = 64).await;
    let (talker, mut talker_events) = client(&server).await;
    talker.join("Talker").await.unwrap();
    // Joins and then never reads.
    let mut sleeper = Raw::connect(&server).await;
    sleeper
        .write(b"{\"method\":\"join_chat\",\"params\":{\"username\":\"Sleeper\"}}")
        .await;
    assert_eq!(
        next_event(&mut talker_events).await,
        system("Sleeper has joined the chat!")
    );
    // Large messages fill the sleeper's socket buffers, then its queue.
    let text = "z".repeat(1000);
    let mut sent = 0;
    loop {
        talker.send(&text).await.unwrap();
        sent += 1;
        if let Some(event) = talker_events.try_next() {
            assert_eq!(event, system("Sleeper has left the chat!"));
            break;
        }
        assert!(sent < 100_000, "the sleeper was never disconnected");
    }
    eventually("the slow reader counted", || {
        server.stats().slow_closed == 1
    })
    .await;
    assert_eq!(talker.users().await.unwrap(), ["Talker"]);
    // What was queued before the overflow is in order; then the end.
    let mut received = 0;
    loop {
        let read = within(
            "the sleeper's stream",
            sleeper.stream.read_buf(&mut sleeper.buffer),
        )
        .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while let Some(item) = sleeper.decoder.decode(&mut sleeper.buffer) {
                    assert!(matches!(item, StreamItem::Value(_)));
                    received += 1;
                }
            }
        }
    }
    assert!(received > 0 && received < sent + 2, "{received} of {sent}");
}

#[tokio::test]
async fn the_length_rules_agree_with_the_schema_on_every_kind_of_white_space() {
    let spaces = [
        '\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
        '\u{200a}', '\u{200b}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{feff}', '\u{180e}',
    ];
    for space in spaces {
        for name in [
            format!("{space}"),
            format!("{space}Bo{space}"),
            format!("{}{space}", "n".repeat(50)),
        ] {
            let request = json!({"method": "join_chat", "params": {"username": name}});
            let schema_accepts = Message::decode(request.clone()).is_ok();
            let server_accepts = messages::check_username(&name).is_ok();
            assert_eq!(
                schema_accepts, server_accepts,
                "{name:?} (U+{:04X}): schema {schema_accepts}, server {server_accepts}",
                space as u32
            );
        }
    }
}
