//! The task provider at the protocol level: a raw WebSocket client sends
//! task messages and checks every reply's order and content (and that it
//! validates against the task schema). PROFILE.md "task" and seed 000
//! §5–7 are the reference.
//!
//! Nothing sleeps to synchronise: every wait is for a message, a frame or
//! a condition, bounded by `support::PATIENCE`.

mod support;

use serde_json::{json, Value};
use specwire_runtime::clock::new_id;
use specwire_runtime::task::messages;
use specwire_runtime::task::AccessPolicy;
use tokio_tungstenite::tungstenite::Message as Frame;

use support::*;

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
