//! Bad input into a live hub: random bytes, random JSON, and valid client
//! messages mutated field by field, from a user and from an admin. Every
//! frame gets at most an answer, never a panic or a dropped connection;
//! a bystander subscriber still gets its events afterwards.
//!
//! Seeded: set `SPECWIRE_FUZZ_SEED` to replay a run (the seed is printed).

mod hub_support;

use fastrand::Rng;
use hub_support::events;
use hub_support::*;
use serde_json::{json, Map, Value};

/// Frames per connection (two connections: user and admin).
const FRAMES: usize = 300;

fn seed() -> u64 {
    std::env::var("SPECWIRE_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Valid client messages to mutate.
fn valid_messages() -> Vec<Value> {
    vec![
        json!({"type": "system_status", "data": {"action": "subscribe", "resourceType": "task", "resourceId": "t1"}}),
        json!({"type": "system_status", "data": {"action": "unsubscribe", "resourceType": "experiment", "resourceId": "e1"}}),
        json!({"type": "ping", "id": "p1", "timestamp": "2024-01-15T10:30:00Z"}),
        json!({"type": "pong", "id": "x"}),
        json!({"type": "publish", "data": events::task("task_updated", "t", "t1", "e1")}),
        json!({"type": "publish", "data": events::experiment("experiment_created", "x", "e1", "p1", "o1")}),
        json!({"type": "publish", "data": events::worker("worker_offline", "w", "w1")}),
        json!({"type": "publish", "data": events::system("s")}),
    ]
}

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.u8(..8) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.f64() * 1e6 - 5e5),
        4 => json!(""),
        5 => json!("x".repeat(rng.usize(..300))),
        6 => json!([1, "two", null]),
        _ => json!({"nested": {"deep": [rng.u32(..)]}}),
    }
}

/// One mutation somewhere in `value`: a member dropped, retyped or added.
fn mutate(value: &mut Value, rng: &mut Rng) {
    let Value::Object(members) = value else {
        *value = random_scalar(rng);
        return;
    };
    let keys: Vec<String> = members.keys().cloned().collect();
    if keys.is_empty() || rng.u8(..6) == 0 {
        members.insert(format!("extra{}", rng.u8(..)), random_scalar(rng));
        return;
    }
    let key = &keys[rng.usize(..keys.len())];
    match rng.u8(..4) {
        0 => {
            members.remove(key);
        }
        1 => {
            members.insert(key.clone(), random_scalar(rng));
        }
        _ => {
            if let Some(inner) = members.get_mut(key) {
                mutate(inner, rng);
            }
        }
    }
}

fn random_frame(rng: &mut Rng, valid: &[Value]) -> String {
    match rng.u8(..10) {
        // Random bytes, as text.
        0 => {
            let bytes: Vec<u8> = (0..rng.usize(..200)).map(|_| rng.u8(..)).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Random JSON of the wrong shape.
        1 => random_scalar(rng).to_string(),
        // A valid message cut short.
        2 => {
            let text = valid[rng.usize(..valid.len())].to_string();
            text[..rng.usize(..text.len())].to_owned()
        }
        // A valid message, mutated one to three times.
        _ => {
            let mut value = valid[rng.usize(..valid.len())].clone();
            for _ in 0..=rng.usize(..3) {
                mutate(&mut value, rng);
            }
            if rng.u8(..5) == 0 {
                if let Value::Object(members) = &mut value {
                    let mut shuffled = Map::new();
                    for (key, member) in members.iter().rev() {
                        shuffled.insert(key.clone(), member.clone());
                    }
                    *members = shuffled;
                }
            }
            value.to_string()
        }
    }
}

/// Sends `FRAMES` random frames over `client`, then a ping that must be
/// answered: every frame before it got its answer (or none) and the
/// connection is still there.
async fn fuzz(client: &mut Client, rng: &mut Rng) {
    let valid = valid_messages();
    for _ in 0..FRAMES {
        client.send_text(&random_frame(rng, &valid)).await;
    }
    client.send(json!({"type": "ping", "id": "survivor"})).await;
    loop {
        match client.next().await {
            Next::Message(value) if value["type"] == "pong" && value["id"] == "survivor" => return,
            Next::Message(value) => {
                let kind = value["type"].as_str().unwrap_or_default();
                assert!(
                    !kind.is_empty(),
                    "every answer has a type (schema-checked by the client): {value}"
                );
            }
            Next::Closed(code) => panic!("the hub closed a fuzzed connection ({code:?})"),
        }
    }
}

#[tokio::test]
async fn random_and_mutated_frames_never_break_the_hub() {
    let seed = seed();
    eprintln!("SPECWIRE_FUZZ_SEED={seed}");
    let mut rng = Rng::with_seed(seed);
    let hub = hub(config()).await;
    let mut bystander = connect(&hub, "/ws/experiments/e1", &user_token("bystander")).await;
    let mut user = connect(&hub, "/ws/tasks/t1", &user_token("fuzzer")).await;
    let mut admin = connect(&hub, "/ws/user", &admin_token()).await;
    fuzz(&mut user, &mut rng).await;
    fuzz(&mut admin, &mut rng).await;
    // Nothing but these three connections, all alive, and the bystander
    // still gets what is published (after whatever the admin's valid
    // mutants published).
    assert_eq!(hub.stats().connections, 3);
    hub.publish_json(&events::experiment_progress("after-the-storm", "e1").to_string())
        .unwrap();
    let ids = bystander.events_until("after-the-storm").await;
    assert_eq!(ids.last().map(String::as_str), Some("after-the-storm"));
    let stats = hub.stats();
    assert!(stats.errors >= FRAMES as u64 / 2, "{stats:?}");
    eprintln!("{} frames, {stats:?}", 2 * FRAMES);
}
