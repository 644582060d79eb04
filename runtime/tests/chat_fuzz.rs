//! Bad input into a live chat server over raw TCP, split and coalesced at
//! random: requests generated from the schema (specwire-testkit), the same
//! broken by one mutation, random bytes, junk text, truncated objects,
//! huge strings, deep nesting, invalid UTF-8 and values serde_json refuses,
//! requests carrying the discriminators of other messages, and one object
//! over the size limit per connection. Several connections at once, each
//! stream cut into writes of random sizes (1 byte to 64 KiB, so objects are
//! split anywhere and several go in one write).
//!
//! Judged against a model written here, independently of the server: a
//! reference framer (white space skipped, a value from `{`/`[` to where
//! brackets of its kind balance outside strings, a junk run up to `\n`,
//! `{` or `[`, a value over the limit) gives the items of each stream, and
//! each item must get exactly one response, in order: -32700 for junk and
//! what is not JSON, -32600 for what is not a request object and for the
//! value over the limit, -32601 for an unknown method, -32602 for missing
//! or mistyped params, `status: error` for a length rule, for requests
//! before `join_chat` and a second join, and `success` otherwise (a join
//! may also be refused when another connection has the name). A last
//! request on each stream proves the connection is open and in step.
//! Meanwhile two well-behaved clients keep talking: every message of one
//! reaches the other, in order, and `get_users` keeps answering.
//!
//! Seeded: set `SPECWIRE_FUZZ_SEED` to replay a run; the seed is printed
//! when the test fails.

use std::ops::Range;
use std::time::Duration;

use fastrand::Rng;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use specwire_runtime::chat::{ChatClient, ChatConfig, ChatEvent, ChatEvents, ChatServer};
use specwire_testsupport::wait::{within, within_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Fuzz connections, and inputs (units) each sends before its last probe.
const CONNECTIONS: usize = 4;
const UNITS: usize = 200;
/// The server's limit on one value.
const LIMIT: usize = specwire_protocol::chat::MAX_MESSAGE_BYTES;
/// The request names the schema has.
const REQUESTS: [&str; 4] = ["JoinChat", "SendMessage", "GetUsers", "LeaveChat"];

fn seed() -> u64 {
    std::env::var("SPECWIRE_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Prints the seed if the test fails (panics) while it is alive.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("chat_fuzz failed with SPECWIRE_FUZZ_SEED={}", self.0);
        }
    }
}

// ---------------------------------------------------------------- the model

/// One thing the reference framer finds in a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Value(Range<usize>),
    Junk,
    TooLarge,
}

/// The framer's state at the end of a stream, when inside a value.
struct Open {
    in_string: bool,
    escaped: bool,
    close: u8,
    depth: usize,
}

impl Open {
    /// Bytes that complete the value (as something that is not JSON, mostly).
    fn closer(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        if self.escaped {
            bytes.push(b'n');
        }
        if self.in_string {
            bytes.push(b'"');
        }
        bytes.extend(std::iter::repeat_n(self.close, self.depth));
        bytes
    }
}

/// The items of `stream`, and the open value at its end, if any.
fn frame(stream: &[u8]) -> (Vec<Item>, Option<Open>) {
    let mut items = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let byte = stream[at];
        if matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
            at += 1;
            continue;
        }
        if byte != b'{' && byte != b'[' {
            items.push(Item::Junk);
            while at < stream.len() && !matches!(stream[at], b'\n' | b'{' | b'[') {
                at += 1;
            }
            continue;
        }
        let (start, close) = (at, if byte == b'{' { b'}' } else { b']' });
        let mut open = Open {
            in_string: false,
            escaped: false,
            close,
            depth: 0,
        };
        let mut end = None;
        while at < stream.len() {
            let b = stream[at];
            at += 1;
            if open.escaped {
                open.escaped = false;
            } else if open.in_string {
                open.escaped = b == b'\\';
                open.in_string = b != b'"';
            } else if b == b'"' {
                open.in_string = true;
            } else if b == byte {
                open.depth += 1;
            } else if b == close {
                open.depth -= 1;
                if open.depth == 0 {
                    end = Some(at);
                    break;
                }
            }
        }
        match end {
            Some(end) if end - start > LIMIT => items.push(Item::TooLarge),
            Some(end) => items.push(Item::Value(start..end)),
            None => return (items, Some(open)),
        }
    }
    (items, None)
}

/// ECMAScript `\s`, as the schema's length patterns trim.
fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| {
        matches!(
            c,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202f}'
                    | '\u{205f}'
                    | '\u{3000}'
                    | '\u{feff}'
        )
    })
}

/// What an item asks of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    /// A JSON-RPC error with this code, whatever the state.
    Code(i64),
    /// `join_chat`: the trimmed name when it has a valid length.
    Join(Option<String>),
    /// `send_message`: whether the text has a valid length.
    Send(bool),
    Users,
    Leave,
}

fn classify(item: &Item, stream: &[u8]) -> Request {
    let range = match item {
        Item::Junk => return Request::Code(-32700),
        Item::TooLarge => return Request::Code(-32600),
        Item::Value(range) => range.clone(),
    };
    let Ok(value) = serde_json::from_slice::<Value>(&stream[range]) else {
        return Request::Code(-32700);
    };
    let Some(method) = value.get("method").and_then(Value::as_str) else {
        return Request::Code(-32600); // not an object, or no string method
    };
    let params = value.get("params");
    let text = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_str);
    let count = |text: &str| trim(text).chars().count();
    match method {
        "join_chat" => match text("username") {
            Some(name) if params.is_some_and(Value::is_object) => Request::Join(
                (1..=50)
                    .contains(&count(name))
                    .then(|| trim(name).to_owned()),
            ),
            _ => Request::Code(-32602),
        },
        "send_message" => match text("message") {
            Some(message) if params.is_some_and(Value::is_object) => {
                Request::Send((1..=1000).contains(&count(message)))
            }
            _ => Request::Code(-32602),
        },
        "get_users" | "leave_chat" if params != Some(&json!({})) => Request::Code(-32602),
        "get_users" => Request::Users,
        "leave_chat" => Request::Leave,
        _ => Request::Code(-32601),
    }
}

/// Checks `response` against what `request` allows in state `joined`, and
/// moves the state on.
fn judge(request: &Request, joined: &mut bool, response: &Value) -> Result<(), String> {
    let status = response.get("status").and_then(Value::as_str);
    let code = response.get("code").and_then(Value::as_i64);
    let error =
        status == Some("error") && response["message"].as_str().is_some_and(|m| !m.is_empty());
    let success = status == Some("success");
    let ok = match request {
        Request::Code(wanted) => {
            code == Some(*wanted) && response["error"].as_str().is_some_and(|e| !e.is_empty())
        }
        Request::Join(Some(name)) if !*joined => {
            if success {
                *joined = true;
                response["username"] == *name || response.get("username").is_none()
            } else {
                error // taken by another connection
            }
        }
        Request::Join(_) | Request::Send(false) => error,
        Request::Send(true) => success == *joined && error != *joined,
        Request::Users if *joined => {
            let users = response["users"].as_array().map(Vec::len);
            success && users.is_some() && response["count"].as_u64() == users.map(|n| n as u64)
        }
        Request::Leave if *joined => {
            *joined = !success;
            success
        }
        Request::Users | Request::Leave => error,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{request:?} (joined: {joined}) answered {response}"
        ))
    }
}

// ---------------------------------------------------------------- the inputs

/// Generators of schema-valid and single-mutation requests.
struct Schema {
    runner: TestRunner,
    valid: Vec<proptest::strategy::BoxedStrategy<Value>>,
    invalid: Vec<proptest::strategy::BoxedStrategy<(Value, specwire_testkit::Mutation)>>,
}

impl Schema {
    fn new(seed: u64) -> Schema {
        let bundle: Value = serde_json::from_str(specwire_protocol::chat::SCHEMA).unwrap();
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
        Schema {
            runner: TestRunner::new_with_rng(Config::default(), rng),
            valid: REQUESTS
                .iter()
                .map(|name| specwire_testkit::valid_value_for_def(&bundle, name).unwrap())
                .collect(),
            // GetUsers and LeaveChat can be broken too (their params are `{}`).
            invalid: REQUESTS
                .iter()
                .filter_map(|name| specwire_testkit::invalid_value_for_def(&bundle, name).ok())
                .collect(),
        }
    }

    fn valid(&mut self, which: usize) -> Value {
        let strategy = &self.valid[which % self.valid.len()];
        strategy.new_tree(&mut self.runner).unwrap().current()
    }

    fn invalid(&mut self, which: usize) -> Value {
        let strategy = &self.invalid[which % self.invalid.len()];
        strategy.new_tree(&mut self.runner).unwrap().current().0
    }
}

const JUNK: &[&str] = &[
    "hello world",
    "42",
    "true",
    "null",
    "\"just a string\"",
    "}}}",
    "]",
    "-",
    "method: join_chat",
    "\u{feff}",
    "\0\0\0",
];

const NOT_JSON: &[&[u8]] = &[
    b"{\"method\":\"send_message\",\"params\":{\"message\":\"\xff\xfe\"}}",
    b"{\"method\":\"join_chat\",\"params\":{\"username\":\"\\ud800\"}}",
    b"{\"method\":\"get_users\",\"params\":{},\"n\":NaN}",
    b"{\"method\":\"get_users\",\"params\":{},\"n\":1e400}",
    b"{\"method\":\"get_users\" \"params\":{}}",
    b"{\"method\":\"get_users\",\"params\":{},}",
    b"{'method':'get_users'}",
    b"{\"a\":\"\\x\"}",
    b"{\"a\":\"tab\there\"}",
    b"{]}",
    b"[}]",
];

const NOT_REQUESTS: &[&str] = &[
    "[]",
    "[1, 2, 3]",
    "{}",
    "{\"method\": 5}",
    "{\"method\": null, \"params\": {}}",
    "{\"params\": {\"username\": \"x\"}}",
    "{\"type\": \"chat\", \"message\": \"hi\", \"username\": \"x\"}",
    "{\"status\": \"success\"}",
    "{\"error\": \"Parse error\", \"code\": -32700}",
    "{\"method\": \"delete_everything\", \"params\": {}}",
    "{\"method\": \"JOIN_CHAT\", \"params\": {\"username\": \"x\"}}",
    "{\"method\": \"join_chat\", \"params\": \"Alice\"}",
    "{\"method\": \"get_users\", \"params\": []}",
    "{\"method\": \"leave_chat\", \"params\": {\"now\": true}}",
    "{\"method\": \"send_message\", \"params\": {\"message\": 7}}",
];

/// Random bytes, brackets excepted (which would open a value that swallows
/// what follows: see [`opener`]), ending at a newline.
fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..rng.usize(1..64))
        .map(|_| match rng.u8(..) {
            b'{' | b'[' => b'x',
            byte => byte,
        })
        .collect();
    bytes.push(b'\n');
    bytes
}

/// Something that leaves a value open, to swallow what follows until its
/// brackets balance (outside what it takes for strings): a request cut
/// short, or random bytes with brackets.
fn opener(schema: &mut Schema, rng: &mut Rng) -> Vec<u8> {
    if rng.bool() {
        let mut bytes = schema.valid(rng.usize(..4)).to_string().into_bytes();
        bytes.truncate(rng.usize(1..bytes.len()));
        bytes
    } else {
        let mut bytes: Vec<u8> = (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect();
        bytes.insert(rng.usize(..=bytes.len()), b'{');
        bytes
    }
}

/// Nesting `depth` deep: arrays, or objects with a `method`-less key.
fn deep(rng: &mut Rng) -> Vec<u8> {
    let depth = rng.usize(1..300);
    if rng.bool() {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
    } else {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()
    }
}

/// Strings at and around the length limits, and long ones.
fn huge(rng: &mut Rng) -> Vec<u8> {
    let text = |n: usize| "é".repeat(n);
    let value = match rng.u8(..6) {
        0 => json!({"method": "send_message", "params": {"message": text(1000)}}),
        1 => {
            json!({"method": "send_message", "params": {"message": format!("  {}\t", text(1001))}})
        }
        2 => json!({"method": "join_chat", "params": {"username": text(50)}}),
        3 => json!({"method": "join_chat", "params": {"username": text(51)}}),
        4 => {
            json!({"method": "send_message", "params": {"message": "m".repeat(rng.usize(10_000..200_000))}})
        }
        _ => {
            json!({"method": "get_users", "params": {}, "padding": "p".repeat(rng.usize(10_000..200_000))})
        }
    };
    value.to_string().into_bytes()
}

/// A valid request carrying members other messages are recognised by.
fn with_discriminators(schema: &mut Schema, rng: &mut Rng) -> Vec<u8> {
    let mut value = schema.valid(rng.usize(..4));
    let (key, extra) = match rng.u8(..4) {
        0 => ("type", json!("chat")),
        1 => ("status", json!("success")),
        2 => ("code", json!(-32601)),
        _ => ("username", json!("SYSTEM")),
    };
    value[key] = extra;
    value.to_string().into_bytes()
}

/// One input.
fn unit(schema: &mut Schema, rng: &mut Rng) -> Vec<u8> {
    match rng.u8(..100) {
        0..=29 => schema.valid(rng.usize(..4)).to_string().into_bytes(),
        30..=49 => schema.invalid(rng.usize(..4)).to_string().into_bytes(),
        50..=59 => random_bytes(rng),
        60..=66 => JUNK[rng.usize(..JUNK.len())].as_bytes().to_vec(),
        67..=74 => {
            // Truncated, then closed: one value that is not JSON.
            let mut bytes = schema.valid(rng.usize(..4)).to_string().into_bytes();
            bytes.truncate(rng.usize(1..bytes.len()));
            if let (_, Some(open)) = frame(&bytes) {
                bytes.extend(open.closer());
            }
            bytes
        }
        75..=79 => deep(rng),
        80..=83 => huge(rng),
        84..=88 => with_discriminators(schema, rng),
        89..=93 => NOT_JSON[rng.usize(..NOT_JSON.len())].to_vec(),
        _ => NOT_REQUESTS[rng.usize(..NOT_REQUESTS.len())]
            .as_bytes()
            .to_vec(),
    }
}

/// A connection's whole stream: a join, the units (one of them over the
/// size limit, one in the last fifth an [`opener`]), what closes a value
/// left open, and a last request.
fn stream(schema: &mut Schema, rng: &mut Rng, index: usize) -> Vec<u8> {
    let mut stream =
        json!({"method": "join_chat", "params": {"username": format!("fuzz-{index}")}})
            .to_string()
            .into_bytes();
    let oversized = rng.usize(..UNITS);
    let open_at = rng.usize(UNITS * 4 / 5..UNITS);
    for n in 0..UNITS {
        stream.extend_from_slice(match rng.u8(..4) {
            0 => b"",
            1 => b" ",
            2 => b"\r\n\t ",
            _ => b"\n",
        });
        if n == open_at {
            stream.extend(opener(schema, rng));
        } else if n == oversized {
            let padding = "z".repeat(LIMIT);
            stream.extend(
                json!({"method": "send_message", "params": {"message": padding}})
                    .to_string()
                    .bytes(),
            );
        } else {
            stream.extend(unit(schema, rng));
        }
    }
    if let (_, Some(open)) = frame(&stream) {
        stream.extend(open.closer());
    }
    stream.extend_from_slice(b"\n{\"method\":\"get_users\",\"params\":{}}\n");
    stream
}

// ---------------------------------------------------------------- the run

/// Writes `stream` in writes of random sizes while another task reads;
/// returns the responses (broadcasts skipped) once `expected` have come.
async fn drive(
    server: std::net::SocketAddr,
    stream: Vec<u8>,
    expected: usize,
    seed: u64,
) -> Vec<Value> {
    let socket = TcpStream::connect(server).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let (mut read, mut write) = socket.into_split();
    let writer = tokio::spawn(async move {
        let mut rng = Rng::with_seed(seed);
        let mut at = 0;
        while at < stream.len() {
            let size = match rng.u8(..10) {
                0..=2 => rng.usize(1..8),
                3..=7 => rng.usize(1..512),
                _ => rng.usize(1..65_536),
            };
            let end = (at + size).min(stream.len());
            write.write_all(&stream[at..end]).await.unwrap();
            at = end;
            if rng.u8(..4) == 0 {
                tokio::task::yield_now().await;
            }
        }
        write
    });
    let mut responses = Vec::new();
    let mut buffer = Vec::new();
    while responses.len() < expected {
        buffer.reserve(64 * 1024);
        let n = read.read_buf(&mut buffer).await.unwrap();
        assert!(
            n > 0,
            "the server closed a fuzz connection after {} responses",
            responses.len()
        );
        let mut objects = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
        for object in objects.by_ref() {
            match object {
                Ok(object) => {
                    if object.get("status").is_some() || object.get("code").is_some() {
                        responses.push(object);
                    } else {
                        assert!(
                            object.get("type").is_some(),
                            "neither response nor broadcast: {object}"
                        );
                    }
                }
                Err(error) if error.is_eof() => break,
                Err(error) => panic!("the server wrote something that is not JSON: {error}"),
            }
        }
        let used = objects.byte_offset();
        buffer.drain(..used);
    }
    let _write = writer.await.unwrap();
    responses
}

/// The well-behaved pair: one talks, the other must hear every message in
/// order, and `get_users` keeps answering, until `done` and 20 rounds.
async fn well_behaved(server: &ChatServer, mut done: watch::Receiver<bool>) -> usize {
    let address = server.local_addr().to_string();
    let (talker, _talker_events) = ChatClient::connect(&address, Duration::from_secs(5))
        .await
        .unwrap();
    let (watcher, mut events) = ChatClient::connect(&address, Duration::from_secs(5))
        .await
        .unwrap();
    talker.join("well-behaved talker").await.unwrap();
    watcher.join("well-behaved watcher").await.unwrap();
    let mut round = 0;
    while round < 20 || !*done.borrow_and_update() {
        let text = format!("round {round}");
        within("the talker's message answered", talker.send(&text))
            .await
            .unwrap();
        within(
            "the talker's message at the watcher",
            next_from_talker(&mut events, &text),
        )
        .await;
        if round % 5 == 0 {
            let users = within("get_users answered", watcher.users()).await.unwrap();
            assert!(
                users.iter().any(|name| name == "well-behaved talker"),
                "{users:?}"
            );
        }
        round += 1;
    }
    round
}

/// Skips other broadcasts (fuzz connections that joined talk too) up to
/// the talker's next message, which must be `text`.
async fn next_from_talker(events: &mut ChatEvents, text: &str) {
    loop {
        match events.next().await {
            Some(ChatEvent::Chat { username, message }) if username == "well-behaved talker" => {
                assert_eq!(message, text, "the talker's messages out of order");
                return;
            }
            Some(_) => {}
            None => panic!("the watcher's connection ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_split_anywhere_gets_one_answer_per_object_and_harms_no_one() {
    let seed = seed();
    let _guard = SeedOnFailure(seed);
    eprintln!("chat_fuzz: SPECWIRE_FUZZ_SEED={seed}");
    let server = ChatServer::start(ChatConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut schema = Schema::new(seed);
    let mut rng = Rng::with_seed(seed);
    let (done, done_rx) = watch::channel(false);
    let mut runs = Vec::new();
    for index in 0..CONNECTIONS {
        let bytes = stream(&mut schema, &mut rng, index);
        let (items, open) = frame(&bytes);
        assert!(open.is_none(), "the model left a value open");
        let requests: Vec<Request> = items.iter().map(|item| classify(item, &bytes)).collect();
        let run = drive(server.local_addr(), bytes, requests.len(), rng.u64(..));
        runs.push((requests, tokio::spawn(run)));
    }
    let talking = well_behaved(&server, done_rx);
    let judging = async {
        let mut total = 0;
        for (index, (requests, run)) in runs.into_iter().enumerate() {
            let responses = within_for(
                Duration::from_secs(120),
                "a fuzz connection's responses",
                run,
            )
            .await
            .unwrap();
            assert_eq!(responses.len(), requests.len(), "connection {index}");
            let mut joined = false;
            for (n, (request, response)) in requests.iter().zip(&responses).enumerate() {
                if let Err(wrong) = judge(request, &mut joined, response) {
                    panic!(
                        "connection {index}, object {n} of {}: {wrong}",
                        requests.len()
                    );
                }
            }
            total += requests.len();
            eprintln!(
                "chat_fuzz: connection {index}: {} objects judged",
                requests.len()
            );
        }
        done.send_replace(true);
        total
    };
    let (rounds, total) = tokio::join!(talking, judging);
    assert!(
        total >= CONNECTIONS * UNITS / 2,
        "only {total} objects reached the server"
    );
    assert!(rounds >= 20);
    let stats = server.stats();
    assert_eq!(stats.slow_closed, 0, "{stats:?}");
    server.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn the_model_frames_as_the_profile_says() {
    let stream = b" {\"a\":\"}\"} junk\n[1,[2]]x{]} {\"b\"";
    let (items, open) = frame(stream);
    assert_eq!(
        items,
        [
            Item::Value(1..10),
            Item::Junk,
            Item::Value(16..23),
            Item::Junk,
            Item::Value(24..27)
        ]
    );
    let open = open.expect("the last value is open");
    assert_eq!(open.closer(), b"}");
    let mut joined = false;
    let request = br#"{"method":"join_chat","params":{"username":" \u00a0Al "}}"#;
    let join = classify(&Item::Value(0..request.len()), request);
    assert_eq!(join, Request::Join(Some("Al".to_owned())));
    judge(
        &join,
        &mut joined,
        &json!({"status": "success", "username": "Al"}),
    )
    .unwrap();
    assert!(joined);
    assert!(judge(
        &Request::Users,
        &mut joined,
        &json!({"status": "success", "users": ["Al"], "count": 2})
    )
    .is_err());
    assert_eq!(classify(&Item::Value(0..2), b"[]"), Request::Code(-32600));
    assert_eq!(classify(&Item::Junk, b""), Request::Code(-32700));
}
