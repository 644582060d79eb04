//! The task provider at the protocol level: a raw WebSocket client sends
//! task messages and checks every reply's order and content (and that it
//! validates against the task schema). PROFILE.md "task" and seed 000
//! §5–7 are the reference.
//!
//! Nothing sleeps to synchronise: every wait is for a message, a frame or
//! a condition, bounded by `support::PATIENCE`.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use specwire_protocol::discovery::ServiceAdvertisementStatus;
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages;
use specwire_runtime::task::{AccessPolicy, ClientError, Limits, TaskClient, TaskOutcome};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;

use support::*;

/// Receives the updates of `task` until one with `progress` arrives;
/// returns them all (each checked to be a non-terminal update of `task`).
async fn updates_until(client: &mut WsClient, task: &str, wanted: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    within(&format!("{task} to reach {wanted}%"), async {
        loop {
            let value = client.recv().await;
            assert_eq!(kind(&value), "TaskStatusUpdate", "{value}");
            assert_eq!(task_of(&value), task, "{value}");
            assert!(
                matches!(status(&value), "Accepted" | "Queued" | "Processing"),
                "{value}"
            );
            let reached = progress(&value) >= wanted;
            seen.push(value);
            if reached {
                return seen;
            }
        }
    })
    .await
}

/// Assigns a gated task with an ack and waits until it reports 10%.
async fn start_gated(client: &mut WsClient) -> String {
    let id = task_id();
    let ack = new_id();
    client
        .send(&assign(&id, "gated", json!({}), Some(&ack)))
        .await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    updates_until(client, &id, 10).await;
    id
}

fn assert_non_decreasing(updates: &[Value]) {
    let values: Vec<i64> = updates.iter().map(progress).collect();
    assert!(
        values.windows(2).all(|pair| pair[0] <= pair[1]),
        "progress went down: {values:?}"
    );
}

// 1. Lifecycle ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_is_ack_then_updates_then_exactly_one_terminal() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    let ack = new_id();
    client
        .send(&assign(&id, "gated", json!({}), Some(&ack)))
        .await;

    let first = client.recv().await;
    assert_ack(&first, &ack, Some(&id));
    // No `Accepted` without a note: the handler's first progress report
    // is the first update.
    let mut updates = updates_until(&mut client, &id, 10).await;
    assert_update(&updates[0], &id, "Processing");
    assert_eq!(status(updates.last().unwrap()), "Processing");

    service.open(&id);
    let (more, terminal) = client.recv_until("the TaskResult", is_terminal).await;
    for update in &more {
        assert_update(update, &id, "Processing");
    }
    updates.extend(more);
    assert_non_decreasing(&updates);
    assert_eq!(progress(updates.last().unwrap()), 60);
    assert_result(&terminal, &id, json!({"done": true}));

    // Nothing about the task follows its terminal message: the next message
    // is the answer to GetStatus, and after it nothing else is queued.
    let reply = client.request(&messages::get_status(&id)).await;
    assert_result(&reply, &id, json!({"done": true}));
    client.assert_quiet().await;
    assert_eq!(service.runs(&id), 1);
    assert_eq!(provider.stats().runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_tasks_complete_or_fail_with_the_handlers_outcome() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;

    let id = task_id();
    let ack = new_id();
    client
        .send(&assign(&id, "echo", json!({"text": "hello"}), Some(&ack)))
        .await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    let (updates, terminal) = client.recv_until("echo's result", is_terminal).await;
    // Done on its first poll: Ack, then the outcome, nothing between.
    assert!(updates.is_empty(), "{updates:?}");
    for update in &updates {
        assert_eq!(task_of(update), id);
        assert_eq!(kind(update), "TaskStatusUpdate");
    }
    assert_non_decreasing(&updates);
    assert_result(&terminal, &id, json!({"echo": "hello"}));

    // Without an acknowledgmentId there is no Ack.
    let id = task_id();
    client.send(&assign(&id, "fail", json!({}), None)).await;
    let (updates, terminal) = client.recv_until("fail's end", is_terminal).await;
    assert!(
        updates.iter().all(|v| kind(v) == "TaskStatusUpdate"),
        "{updates:#?}"
    );
    assert_failed(&terminal, &id, "SIMULATED");
    assert_eq!(payload(&terminal)["details"], "the test asked for it");
    assert_eq!(payload(&terminal)["errorMessage"], "simulated failure");
    client.assert_quiet().await;
    assert_eq!(service.total_runs(), 2);
}

// 2. Idempotency ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_assign_is_acknowledged_and_answered_never_run_twice() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    let ack = new_id();
    let built = assign(&id, "gated", json!({}), Some(&ack));
    client.send(&built).await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    updates_until(&mut client, &id, 10).await;

    // While it runs: Ack again, then its current state.
    client.send(&built).await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    let state = client.recv().await;
    assert_update(&state, &id, "Processing");
    assert_eq!(progress(&state), 10);
    assert_eq!(service.runs(&id), 1);

    // The same from a second connection.
    let mut other = WsClient::connect(&provider.endpoint()).await;
    other.send(&built).await;
    assert_ack(&other.recv().await, &ack, Some(&id));
    let state = other.recv().await;
    assert_update(&state, &id, "Processing");
    assert_eq!(progress(&state), 10);
    client.assert_quiet().await;
    other.assert_quiet().await;
    assert_eq!(service.runs(&id), 1);

    // Both connections hear the end, once.
    service.open(&id);
    for connection in [&mut client, &mut other] {
        let (before, terminal) = connection.recv_until("the result", is_terminal).await;
        assert!(before
            .iter()
            .all(|v| kind(v) == "TaskStatusUpdate" && task_of(v) == id));
        assert_result(&terminal, &id, json!({"done": true}));
        connection.assert_quiet().await;
    }

    // After the end: Ack and the result again, on either connection.
    for connection in [&mut client, &mut other] {
        connection.send(&built).await;
        assert_ack(&connection.recv().await, &ack, Some(&id));
        assert_result(&connection.recv().await, &id, json!({"done": true}));
        connection.assert_quiet().await;
    }
    assert_eq!(service.runs(&id), 1);
    assert_eq!(provider.stats().runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_refused_assign_is_answered_with_the_same_failure() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    let built = assign(&id, "echo", json!({"text": 5}), Some("a-1"));
    for _ in 0..2 {
        client.send(&built).await;
        assert_ack(&client.recv().await, "a-1", Some(&id));
        assert_failed(&client.recv().await, &id, "INVALID_PARAMETERS");
    }
    client.assert_quiet().await;
    assert_eq!(service.runs(&id), 0);
}

// 3. GetStatus / GetResult -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_result_queries_follow_the_task() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;

    // Unknown.
    let unknown = format!("unknown-{}", new_id());
    for query in [
        messages::get_status(&unknown),
        messages::get_result(&unknown),
    ] {
        let reply = client.request(&query).await;
        assert_error(
            &reply,
            "TASK_NOT_FOUND",
            Some(&query.message_id),
            Some(&unknown),
        );
    }

    // Running.
    let id = start_gated(&mut client).await;
    let reply = client.request(&messages::get_status(&id)).await;
    assert_update(&reply, &id, "Processing");
    assert_eq!(progress(&reply), 10);
    // A query that asks for an Ack gets it before the answer.
    let mut acked: Value = serde_json::from_str(&messages::get_status(&id).text).unwrap();
    acked["acknowledgmentId"] = json!("status-ack");
    client.send_json(&acked).await;
    assert_ack(&client.recv().await, "status-ack", Some(&id));
    assert_update(&client.recv().await, &id, "Processing");
    let query = messages::get_result(&id);
    let reply = client.request(&query).await;
    assert_error(
        &reply,
        "RESULT_NOT_READY",
        Some(&query.message_id),
        Some(&id),
    );
    client.assert_quiet().await;

    // Finished.
    service.open(&id);
    let (_, terminal) = client.recv_until("the result", is_terminal).await;
    assert_result(&terminal, &id, json!({"done": true}));
    for query in [messages::get_status(&id), messages::get_result(&id)] {
        assert_result(&client.request(&query).await, &id, json!({"done": true}));
    }

    // Failed.
    let failed = task_id();
    client.send(&assign(&failed, "fail", json!({}), None)).await;
    let (_, terminal) = client.recv_until("the failure", is_terminal).await;
    assert_failed(&terminal, &failed, "SIMULATED");
    for query in [messages::get_status(&failed), messages::get_result(&failed)] {
        assert_failed(&client.request(&query).await, &failed, "SIMULATED");
    }

    // A query from another connection sees the same.
    let mut other = WsClient::connect(&provider.endpoint()).await;
    assert_result(
        &other.request(&messages::get_result(&id)).await,
        &id,
        json!({"done": true}),
    );
    client.assert_quiet().await;
    other.assert_quiet().await;
}

// 4. Cancel ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_running_task_once() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = start_gated(&mut client).await;

    let cancel = messages::cancel(&id, None, Some("cancel-ack"));
    client.send(&cancel).await;
    assert_ack(&client.recv().await, "cancel-ack", Some(&id));
    let cancelled = client.recv().await;
    assert_update(&cancelled, &id, "Cancelled");
    assert_eq!(progress(&cancelled), 10, "carries the last progress");
    service.wait_cancelled(&id).await;

    // A second cancel is an Error, never a second terminal message.
    let again = messages::cancel(&id, None, None);
    let reply = client.request(&again).await;
    assert_error(
        &reply,
        "TASK_ALREADY_FINISHED",
        Some(&again.message_id),
        Some(&id),
    );
    client.assert_quiet().await;

    // Its state stays Cancelled.
    let state = client.request(&messages::get_status(&id)).await;
    assert_update(&state, &id, "Cancelled");
    assert_eq!(progress(&state), 10);
    let result = client.request(&messages::get_result(&id)).await;
    assert!(
        is_terminal(&result) && task_of(&result) == id,
        "GetResult of a cancelled task: {result}"
    );

    // Unknown task.
    let unknown = format!("unknown-{}", new_id());
    let query = messages::cancel(&unknown, None, None);
    let reply = client.request(&query).await;
    assert_error(
        &reply,
        "TASK_NOT_FOUND",
        Some(&query.message_id),
        Some(&unknown),
    );

    // A task that completed.
    let done = task_id();
    client.send(&assign(&done, "noop", json!({}), None)).await;
    let (_, terminal) = client.recv_until("noop's result", is_terminal).await;
    assert_result(&terminal, &done, json!({}));
    let query = messages::cancel(&done, None, None);
    let reply = client.request(&query).await;
    assert_error(
        &reply,
        "TASK_ALREADY_FINISHED",
        Some(&query.message_id),
        Some(&done),
    );
    client.assert_quiet().await;
    assert_eq!(service.runs(&id), 1);
    assert_eq!(service.runs(&done), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_another_connection_reaches_every_subscriber() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut owner = WsClient::connect(&provider.endpoint()).await;
    let id = start_gated(&mut owner).await;
    let mut other = WsClient::connect(&provider.endpoint()).await;
    let cancelled = other.request(&messages::cancel(&id, None, None)).await;
    assert_update(&cancelled, &id, "Cancelled");
    let heard = owner.recv().await;
    assert_update(&heard, &id, "Cancelled");
    assert_eq!(progress(&heard), 10);
    service.wait_cancelled(&id).await;
    owner.assert_quiet().await;
    other.assert_quiet().await;
}

// 5. Malformed messages -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_the_connection_stays_open() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    // A task already accepted must not be lost because of what follows.
    let running = start_gated(&mut client).await;

    let stamp = "2025-07-02T11:50:00Z";
    let number_id = {
        let built = assign(&task_id(), "noop", json!({}), Some("a-num"));
        let mut value: Value = serde_json::from_str(&built.text).unwrap();
        value["payload"]["taskId"] = json!(42);
        (value.to_string(), built.message_id)
    };
    let no_task_id = {
        let built = assign(&task_id(), "noop", json!({}), None);
        let mut value: Value = serde_json::from_str(&built.text).unwrap();
        value["payload"].as_object_mut().unwrap().remove("taskId");
        (value.to_string(), built.message_id)
    };
    let cases: Vec<(&str, String, &str, Option<String>)> =
        vec![
        ("not JSON", "{this is not json".into(), "INVALID_MESSAGE", None),
        ("a JSON array", "[1, 2, 3]".into(), "INVALID_MESSAGE", None),
        ("a JSON string", "\"AssignTask\"".into(), "INVALID_MESSAGE", None),
        (
            "an object without type",
            json!({"messageId": "m-1", "timestamp": stamp, "payload": {}}).to_string(),
            "INVALID_MESSAGE",
            Some("m-1".into()),
        ),
        (
            "a type that is not a string",
            json!({"type": 7, "messageId": "m-2", "timestamp": stamp, "payload": {}}).to_string(),
            "INVALID_MESSAGE",
            Some("m-2".into()),
        ),
        (
            "an unknown type",
            json!({"type": "LaunchRockets", "messageId": "m-3", "timestamp": stamp, "payload": {}})
                .to_string(),
            "UNKNOWN_TYPE",
            Some("m-3".into()),
        ),
        (
            "a provider-only type",
            json!({"type": "Ack", "messageId": "m-4", "timestamp": stamp,
                   "payload": {"acknowledgmentId": "x"}})
            .to_string(),
            "UNKNOWN_TYPE",
            Some("m-4".into()),
        ),
        (
            "AssignTask with a numeric taskId",
            number_id.0,
            "INVALID_MESSAGE",
            Some(number_id.1),
        ),
        (
            "AssignTask without taskId",
            no_task_id.0,
            "INVALID_MESSAGE",
            Some(no_task_id.1),
        ),
    ];
    for (what, text, code, related) in cases {
        client.send_text(text).await;
        let reply = client.recv().await;
        assert_eq!(kind(&reply), "Error", "{what}: {reply}");
        assert_error(&reply, code, related.as_deref(), None);
        // Still served.
        client.assert_quiet().await;
    }

    client
        .send_frame(Frame::Binary(b"{\"type\":\"GetStatus\"}".to_vec().into()))
        .await;
    assert_error(&client.recv().await, "INVALID_MESSAGE", None, None);
    client.assert_quiet().await;

    // Nothing in there was an acknowledged message: no Ack went out, and
    // the running task is intact.
    let state = client.request(&messages::get_status(&running)).await;
    assert_update(&state, &running, "Processing");
    service.open(&running);
    let (_, terminal) = client.recv_until("the result", is_terminal).await;
    assert_result(&terminal, &running, json!({"done": true}));
    assert_eq!(service.total_runs(), 1);
}

// 6. Refusals -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_cannot_run_fail_at_once() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let cases = [
        (
            assignment(&task_id(), "launchRockets", json!({})),
            "UNKNOWN_OPERATION",
        ),
        (
            assignment_to(&task_id(), "NoSuchService", "noop", json!({})),
            "UNKNOWN_OPERATION",
        ),
        (
            assignment(&task_id(), "echo", json!({"text": 5})),
            "INVALID_PARAMETERS",
        ),
        (
            assignment(&task_id(), "echo", json!({"text": null})),
            "INVALID_PARAMETERS",
        ),
        (
            assignment(&task_id(), "echo", json!({})),
            "INVALID_PARAMETERS",
        ),
    ];
    for (assignment, code) in cases {
        let id = assignment.task_id.clone();
        let ack = new_id();
        client
            .send(&messages::assign(&assignment, Some(&ack)))
            .await;
        assert_ack(&client.recv().await, &ack, Some(&id));
        let failed = client.recv().await;
        assert_failed(&failed, &id, code);
        assert!(
            !payload(&failed)["errorMessage"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{failed}"
        );
        client.assert_quiet().await;
        // Remembered like any other ended task.
        assert_failed(&client.request(&messages::get_status(&id)).await, &id, code);
    }
    assert_eq!(service.total_runs(), 0);
    assert_eq!(provider.stats().runs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unadvertised_parameters_are_accepted_with_a_warning() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    let ack = new_id();
    client
        .send(&assign(
            &id,
            "echo",
            json!({"text": "hi", "colour": "blue"}),
            Some(&ack),
        ))
        .await;
    assert_ack(&client.recv().await, &ack, Some(&id));
    let accepted = client.recv().await;
    assert_update(&accepted, &id, "Accepted");
    let note = payload(&accepted)["message"].as_str().unwrap_or_default();
    assert!(note.contains("colour"), "the warning names it: {accepted}");
    let (_, terminal) = client.recv_until("the result", is_terminal).await;
    assert_result(&terminal, &id, json!({"echo": "hi"}));
    assert_eq!(service.runs(&id), 1);
}

// 7. Authentication and authorisation --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_comes_first_and_keeps_the_connection_open() {
    let (provider, service) = start_provider(|config| {
        config.access = AccessPolicy::api_keys(["k1"]);
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;

    let probe = format!("t-{}", new_id());
    let query = messages::get_status(&probe);
    let reply = client.request(&query).await;
    assert_error(
        &reply,
        "UNAUTHORIZED",
        Some(&query.message_id),
        Some(&probe),
    );

    let early = task_id();
    let built = assign(&early, "noop", json!({}), Some("early-ack"));
    let reply = client.request(&built).await;
    assert_error(
        &reply,
        "UNAUTHORIZED",
        Some(&built.message_id),
        Some(&early),
    );

    let wrong = messages::authenticate("k2", "mallory", Some("auth-wrong"));
    let reply = client.request(&wrong).await;
    assert_error(&reply, "UNAUTHORIZED", Some(&wrong.message_id), None);
    client.assert_quiet().await;
    assert_eq!(service.runs(&early), 0);

    let right = messages::authenticate("k1", "alice", Some("auth-right"));
    let reply = client.request(&right).await;
    assert_ack(&reply, "auth-right", None);
    assert!(payload(&reply).get("taskId").is_none(), "{reply}");

    let id = task_id();
    client
        .send(&assign(&id, "noop", json!({}), Some("a")))
        .await;
    assert_ack(&client.recv().await, "a", Some(&id));
    let (_, terminal) = client.recv_until("noop's result", is_terminal).await;
    assert_result(&terminal, &id, json!({}));
    assert_eq!(payload(&terminal)["originalClientId"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_inside_assign_task_authenticates() {
    let (provider, service) = start_provider(|config| {
        config.access = AccessPolicy::api_keys(["k1"]);
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;

    let refused = task_id();
    let built = assign_with_key(&refused, "noop", "nope", "alice");
    let reply = client.request(&built).await;
    assert_error(
        &reply,
        "UNAUTHORIZED",
        Some(&built.message_id),
        Some(&refused),
    );
    assert_eq!(service.runs(&refused), 0);

    let id = task_id();
    client
        .send(&assign_with_key(&id, "noop", "k1", "alice"))
        .await;
    let (_, terminal) = client.recv_until("noop's result", is_terminal).await;
    assert_result(&terminal, &id, json!({}));
    // The connection is authenticated from now on.
    let reply = client.request(&messages::get_status(&id)).await;
    assert_result(&reply, &id, json!({}));
    client.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_forbids_per_client_service_and_operation_and_tasks_are_private() {
    let (provider, service) = start_provider(|config| {
        config.access = AccessPolicy::api_keys(["k1"])
            .grant("alice", SERVICE, "noop")
            .grant("alice", SERVICE, "gated")
            .grant("bob", "*", "*");
    })
    .await;
    let login = |client_id: &'static str| {
        let endpoint = provider.endpoint();
        async move {
            let mut client = WsClient::connect(&endpoint).await;
            let auth = messages::authenticate("k1", client_id, Some("login"));
            assert_ack(&client.request(&auth).await, "login", None);
            client
        }
    };
    let mut alice = login("alice").await;
    let mut bob = login("bob").await;
    let mut carol = login("carol").await;

    // alice may not echo; carol has no grants at all.
    for (client, who) in [(&mut alice, "alice"), (&mut carol, "carol")] {
        let id = task_id();
        client
            .send(&assign(&id, "echo", json!({"text": "x"}), Some("e")))
            .await;
        assert_ack(&client.recv().await, "e", Some(&id));
        let failed = client.recv().await;
        assert_failed(&failed, &id, "FORBIDDEN");
        assert!(
            payload(&failed)["errorMessage"]
                .as_str()
                .unwrap()
                .contains(who),
            "{failed}"
        );
        assert_eq!(service.runs(&id), 0);
    }

    // alice's noop runs.
    let id = task_id();
    alice.send(&assign(&id, "noop", json!({}), None)).await;
    let (_, terminal) = alice.recv_until("noop's result", is_terminal).await;
    assert_result(&terminal, &id, json!({}));

    // alice's gated task is invisible to bob.
    let private = start_gated(&mut alice).await;
    for query in [
        messages::get_status(&private),
        messages::get_result(&private),
        messages::cancel(&private, None, None),
    ] {
        let reply = bob.request(&query).await;
        assert_error(
            &reply,
            "TASK_NOT_FOUND",
            Some(&query.message_id),
            Some(&private),
        );
    }
    // Re-assigning alice's taskId does not let bob see or run it.
    bob.send(&assign(&private, "gated", json!({}), None)).await;
    for value in bob.barrier().await {
        assert_eq!(kind(&value), "Error", "bob learns nothing: {value}");
    }
    assert_eq!(service.runs(&private), 1);

    // alice's task is untouched.
    alice.assert_quiet().await;
    let state = alice.request(&messages::get_status(&private)).await;
    assert_update(&state, &private, "Processing");
    service.open(&private);
    let (_, terminal) = alice.recv_until("the result", is_terminal).await;
    assert_result(&terminal, &private, json!({"done": true}));
    bob.assert_quiet().await;
}

// 8. Limits ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_messages_are_rate_limited_and_the_connection_stays_open() {
    let (provider, _service) = start_provider(|config| {
        config.limits = Limits {
            messages_per_second: Some(1.0),
            burst: 3,
            ..Limits::default()
        };
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let queries: Vec<_> = (0..5)
        .map(|i| messages::get_status(&format!("t-{i}-{}", new_id())))
        .collect();
    for query in &queries {
        client.send(query).await;
    }
    for query in &queries[..3] {
        let reply = client.recv().await;
        assert_error(&reply, "TASK_NOT_FOUND", Some(&query.message_id), None);
    }
    // The burst is spent; at one message a second the next comes in later.
    assert_error(&client.recv().await, "RATE_LIMITED", None, None);
    let fifth = client.recv().await;
    assert!(
        matches!(error_code(&fifth), "RATE_LIMITED" | "TASK_NOT_FOUND"),
        "{fifth}"
    );

    // Still open: pings are answered at once...
    client
        .send_frame(Frame::Ping(b"still there?".to_vec().into()))
        .await;
    within("the pong", async {
        loop {
            match client.next_frame().await {
                Some(Ok(Frame::Pong(data))) => break assert_eq!(&data[..], b"still there?"),
                Some(Ok(Frame::Text(text))) => {
                    panic!("unexpected {}", text.as_str())
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await;
    // ...and once the bucket refills, messages are served again (asking
    // every 250 ms: waiting for the rate, not synchronising).
    within("a message to be served again", async {
        loop {
            let query = messages::get_status("after-the-limit");
            let reply = client.request(&query).await;
            if error_code(&reply) == "TASK_NOT_FOUND" {
                assert_error(&reply, "TASK_NOT_FOUND", Some(&query.message_id), None);
                break;
            }
            assert_error(&reply, "RATE_LIMITED", None, None);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_the_connection_stays_open() {
    let (provider, service) = start_provider(|config| {
        config.limits = Limits {
            max_message_bytes: 1000,
            max_frame_bytes: 64 * 1024,
            ..Limits::default()
        };
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let running = start_gated(&mut client).await;
    let mut big: Value =
        serde_json::from_str(&assign(&task_id(), "noop", json!({}), None).text).expect("JSON");
    big["payload"]["taskParameters"]["padding"] = json!("x".repeat(5000));
    let text = big.to_string();
    assert!(text.len() > 5000);
    client.send_text(text).await;
    assert_error(&client.recv().await, "MESSAGE_TOO_LARGE", None, None);
    client.assert_quiet().await;
    // A message just under the limit is fine.
    let reply = client.request(&messages::get_status(&running)).await;
    assert_update(&reply, &running, "Processing");
    service.open(&running);
    let (_, terminal) = client.recv_until("the result", is_terminal).await;
    assert_result(&terminal, &running, json!({"done": true}));
    assert_eq!(service.total_runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_hard_limit_closes_the_connection() {
    let (provider, _service) = start_provider(|config| {
        config.limits = Limits {
            max_message_bytes: 1000,
            max_frame_bytes: 64 * 1024,
            ..Limits::default()
        };
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let huge = format!("\"{}\"", "x".repeat(100 * 1024));
    // The provider may already be gone while this is written.
    let _ = within(
        "the huge frame to be sent",
        client.inner().send(Frame::text(huge)),
    )
    .await;
    if let Some(Some(frame)) = client.closed().await {
        assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    }
    // The provider goes on serving others.
    let mut other = WsClient::connect(&provider.endpoint()).await;
    other.assert_quiet().await;
}

// 9. Panics ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_task_and_the_provider_goes_on() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    client
        .send(&assign(&id, "panic", json!({}), Some("p")))
        .await;
    assert_ack(&client.recv().await, "p", Some(&id));
    let (_, terminal) = client.recv_until("the failure", is_terminal).await;
    assert_failed(&terminal, &id, "INTERNAL");

    let next = task_id();
    client
        .send(&assign(&next, "echo", json!({"text": "alive"}), None))
        .await;
    let (_, terminal) = client.recv_until("echo's result", is_terminal).await;
    assert_result(&terminal, &next, json!({"echo": "alive"}));
    assert_eq!(service.runs(&id), 1);
    let mut presence = provider.presence();
    within(
        "the provider to be idle",
        presence.wait_for(|p| p.load == 0.0),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panicking_before_its_future_exists_fails_its_task() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = task_id();
    client
        .send(&assign(&id, "panic_early", json!({}), Some("p")))
        .await;
    assert_ack(&client.recv().await, "p", Some(&id));
    let (_, terminal) = client.recv_until("the failure", is_terminal).await;
    assert_failed(&terminal, &id, "INTERNAL");
    assert_eq!(service.runs(&id), 1);
    let mut presence = provider.presence();
    within(
        "the provider to be idle",
        presence.wait_for(|p| p.load == 0.0),
    )
    .await
    .unwrap();
}

// 10. Capacity ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_beyond_capacity_queue_and_presence_follows_the_load() {
    let (provider, service) = start_provider(|config| config.capacity = 1).await;
    let mut presence = provider.presence();
    assert_eq!(presence.borrow().status, ServiceAdvertisementStatus::Online);
    assert_eq!(presence.borrow().load, 0.0);

    let mut first = WsClient::connect(&provider.endpoint()).await;
    let a = start_gated(&mut first).await;
    within(
        "Busy",
        presence.wait_for(|p| p.status == ServiceAdvertisementStatus::Busy && p.load == 1.0),
    )
    .await
    .unwrap();

    // The second waits as Queued.
    let mut second = WsClient::connect(&provider.endpoint()).await;
    let b = task_id();
    second
        .send(&assign(&b, "gated", json!({}), Some("b")))
        .await;
    assert_ack(&second.recv().await, "b", Some(&b));
    assert_update(&second.recv().await, &b, "Queued");
    second.assert_quiet().await;
    assert_eq!(service.runs(&b), 0);

    // A third, cancelled while queued, never runs.
    let mut third = WsClient::connect(&provider.endpoint()).await;
    let c = task_id();
    third.send(&assign(&c, "gated", json!({}), None)).await;
    assert_update(&third.recv().await, &c, "Queued");
    let cancelled = third.request(&messages::cancel(&c, None, None)).await;
    assert_update(&cancelled, &c, "Cancelled");
    assert_eq!(progress(&cancelled), 0);

    // The first ends; the second runs.
    service.open(&a);
    let (_, terminal) = first.recv_until("a's result", is_terminal).await;
    assert_result(&terminal, &a, json!({"done": true}));
    let updates = updates_until(&mut second, &b, 10).await;
    assert_eq!(status(&updates[0]), "Processing", "{updates:#?}");
    assert_eq!(presence.borrow().status, ServiceAdvertisementStatus::Busy);

    service.open(&b);
    let (_, terminal) = second.recv_until("b's result", is_terminal).await;
    assert_result(&terminal, &b, json!({"done": true}));
    within(
        "Online again",
        presence.wait_for(|p| p.status == ServiceAdvertisementStatus::Online && p.load == 0.0),
    )
    .await
    .unwrap();
    third.assert_quiet().await;
    assert_eq!(service.runs(&a), 1);
    assert_eq!(service.runs(&b), 1);
    assert_eq!(service.runs(&c), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_forgotten_beyond_max_finished() {
    let (provider, service) = start_provider(|config| config.max_finished = 1).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let first = task_id();
    let second = task_id();
    for id in [&first, &second] {
        client.send(&assign(id, "noop", json!({}), None)).await;
        let (_, terminal) = client.recv_until("noop's result", is_terminal).await;
        assert_result(&terminal, id, json!({}));
    }
    let query = messages::get_status(&first);
    assert_error(
        &client.request(&query).await,
        "TASK_NOT_FOUND",
        Some(&query.message_id),
        Some(&first),
    );
    assert_result(
        &client.request(&messages::get_status(&second)).await,
        &second,
        json!({}),
    );
    assert_eq!(service.total_runs(), 2);
}

// 11. WebSocket -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ping_gets_a_pong() {
    let (provider, _service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    client
        .send_frame(Frame::Ping(b"hello".to_vec().into()))
        .await;
    match client.next_frame().await {
        Some(Ok(Frame::Pong(data))) => assert_eq!(&data[..], b"hello"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_pings_idle_connections() {
    let (provider, _service) = start_provider(|config| {
        config.limits = Limits {
            keepalive: Duration::from_millis(200),
            ..Limits::default()
        };
    })
    .await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    // Two pings in a row: the first one's pong (sent by tungstenite as we
    // read on) kept the connection alive.
    for _ in 0..2 {
        match client.next_frame().await {
            Some(Ok(Frame::Ping(_))) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    client.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_pings_is_closed() {
    let (provider, _service) = start_provider(|config| {
        config.limits.keepalive = Duration::from_millis(200);
    })
    .await;
    let proxy = Proxy::start(provider.local_addr()).await;
    let mut client = WsClient::connect(&proxy.endpoint()).await;
    client.assert_quiet().await;
    assert_eq!(provider.stats().connections, 1);
    // Nothing gets through any more: pings go unanswered.
    proxy.freeze();
    eventually("the provider to drop the connection", || {
        provider.stats().connections == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_a_close() {
    let (provider, _service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    client.assert_quiet().await;
    within("the close to be sent", client.inner().close(None))
        .await
        .expect("send close");
    let close = client.closed().await;
    assert!(close.is_some(), "the provider answered with a close frame");
    eventually("the connection to be gone", || {
        provider.stats().connections == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let (provider, _service) = start_provider(|config| {
        config.limits.max_connections = 1;
    })
    .await;
    let mut first = WsClient::connect(&provider.endpoint()).await;
    first.assert_quiet().await;
    let second = within(
        "the second connection to be refused",
        tokio_tungstenite::connect_async(provider.endpoint()),
    )
    .await;
    assert!(second.is_err(), "a second connection was accepted");
    first.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_handshake_is_dropped() {
    use tokio::io::AsyncReadExt;
    let (provider, _service) = start_provider(|config| {
        config.limits.handshake_timeout = Duration::from_millis(200);
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(provider.local_addr())
        .await
        .expect("TCP connect");
    let mut buffer = [0u8; 64];
    let read = within("the provider to hang up", silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_tasks_then_closes_with_going_away() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut presence = provider.presence();
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = start_gated(&mut client).await;

    let shutdown = tokio::spawn(provider.shutdown(Duration::ZERO));
    let cancelled = client.recv().await;
    assert_update(&cancelled, &id, "Cancelled");
    assert_eq!(progress(&cancelled), 10);
    let close = client.closed().await;
    let frame = close
        .expect("a close frame")
        .expect("the close frame has a code");
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(u16::from(frame.code), 1001);
    within("the shutdown to finish", shutdown)
        .await
        .expect("shutdown");
    service.wait_cancelled(&id).await;
    within(
        "Offline",
        presence.wait_for(|p| p.status == ServiceAdvertisementStatus::Offline),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_tasks_finish_within_the_grace_period() {
    let (provider, service) = start_provider(|_| {}).await;
    let mut presence = provider.presence();
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let id = start_gated(&mut client).await;

    // join! polls the shutdown first: it is waiting for the task when the
    // gate opens.
    let ((), ()) = tokio::join!(
        within("the shutdown", provider.shutdown(Duration::from_secs(10))),
        async {
            service.open(&id);
            let (before, terminal) = client.recv_until("the result", is_terminal).await;
            assert!(before.iter().all(|v| kind(v) == "TaskStatusUpdate"));
            assert_result(&terminal, &id, json!({"done": true}));
            let frame = client
                .closed()
                .await
                .expect("a close frame")
                .expect("with a code");
            assert_eq!(frame.code, CloseCode::Away);
        }
    );
    assert!(!service.saw_cancellation(&id));
    assert_eq!(
        presence.borrow_and_update().status,
        ServiceAdvertisementStatus::Offline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_on_an_open_provider_is_acknowledged() {
    let (provider, _service) = start_provider(|_| {}).await;
    let mut client = WsClient::connect(&provider.endpoint()).await;
    let auth = messages::authenticate("any", "someone", Some("hello"));
    assert_ack(&client.request(&auth).await, "hello", None);
    let id = task_id();
    client.send(&assign(&id, "noop", json!({}), None)).await;
    let (_, terminal) = client.recv_until("noop's result", is_terminal).await;
    assert_result(&terminal, &id, json!({}));
    assert_eq!(payload(&terminal)["originalClientId"], "someone");
}

// 12. TLS ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_self_signed_certificate() {
    let certificate = SelfSigned::new();
    let tls = specwire_runtime::tls::server_config(&certificate.cert, &certificate.key)
        .expect("a server configuration");
    let (provider, service) = start_provider(|config| config.tls = Some(tls)).await;
    assert!(
        provider.endpoint().starts_with("wss://"),
        "{}",
        provider.endpoint()
    );

    for endpoint in [provider.endpoint(), provider.endpoint_for("localhost")] {
        let mut config = client_config(endpoint.clone());
        config.extra_roots = vec![certificate.cert.clone()];
        let client = within("a TLS connection", TaskClient::connect(config))
            .await
            .unwrap_or_else(|error| panic!("{endpoint}: {error}"));
        let task = within(
            "the assignment",
            client.assign(SERVICE, "echo", json!({"text": "secret"})),
        )
        .await
        .expect("assigned");
        let outcome = within("the outcome", task.outcome()).await;
        assert_eq!(
            outcome,
            Ok(TaskOutcome::Completed(object(json!({"echo": "secret"}))))
        );
        within("the client to close", client.close()).await;
    }
    assert_eq!(service.total_runs(), 2);

    // Without the certificate as a root the handshake fails, promptly.
    let mut config = client_config(provider.endpoint());
    config.connect_attempts = 2;
    let refused = within("the refusal", TaskClient::connect(config)).await;
    match refused {
        Err(ClientError::Unavailable {
            attempts,
            last_error,
            ..
        }) => {
            assert_eq!(attempts, 2);
            assert!(
                last_error.to_lowercase().contains("certificate"),
                "{last_error}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }

    // Plain ws:// to a wss:// provider fails promptly too.
    let mut config = client_config(provider.endpoint().replacen("wss://", "ws://", 1));
    config.connect_attempts = 1;
    assert!(within("the refusal", TaskClient::connect(config))
        .await
        .is_err());
}
