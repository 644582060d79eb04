//! The task client: acks and retries against a scripted fake provider,
//! recovery through dropped connections (a TCP proxy between client and
//! provider), authentication, cancellation, progress and concurrency
//! against the real provider.
//!
//! Nothing sleeps to synchronise: every wait is for a message, an event or
//! a condition, bounded by `support::PATIENCE`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use specwire_protocol::task::TaskStatusUpdatePayloadStatus as Status;
use specwire_runtime::task::messages::{self, TaskReport, TaskState};
use specwire_runtime::task::{
    AccessPolicy, ClientError, StatusUpdate, TaskClient, TaskEvent, TaskHandle, TaskOutcome,
};

use support::*;

/// The next event of `task`, bounded.
async fn next_event(task: &mut TaskHandle) -> TaskEvent {
    within("the next task event", task.next())
        .await
        .expect("a task has events until Finished")
}

/// Skips events until progress reaches `wanted`; returns that update.
async fn progress_until(task: &mut TaskHandle, wanted: u8) -> StatusUpdate {
    loop {
        match next_event(task).await {
            TaskEvent::Progress(update) if update.progress >= wanted => return update,
            TaskEvent::Progress(_) => {}
            TaskEvent::Finished(outcome) => panic!("finished early: {outcome:?}"),
        }
    }
}

async fn outcome(task: TaskHandle) -> Result<TaskOutcome, ClientError> {
    within("the task's outcome", task.outcome()).await
}

async fn connect(config: specwire_runtime::task::ClientConfig) -> TaskClient {
    within("the client to connect", TaskClient::connect(config))
        .await
        .expect("connect")
}

fn done() -> Result<TaskOutcome, ClientError> {
    Ok(TaskOutcome::Completed(object(json!({"done": true}))))
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value["payload"][name]
        .as_str()
        .or_else(|| value[name].as_str())
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

// 1. Acks and retries ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_assign_is_resent_with_the_same_ids() {
    let mut fake = FakeProvider::start().await;
    let mut config = client_config(fake.endpoint());
    config.ack_timeout = Duration::from_millis(200);
    let client = connect(config).await;
    let id = task_id();

    let script = async {
        let first = fake.recv().await;
        let first_at = Instant::now();
        assert_eq!(kind(&first), "AssignTask");
        // Ignored. The client re-sends after its ack timeout.
        let second = fake.recv().await;
        let waited = first_at.elapsed();
        assert_eq!(kind(&second), "AssignTask");
        assert!(
            waited >= Duration::from_millis(150),
            "re-sent after {waited:?}"
        );
        assert_eq!(field(&first, "taskId"), id);
        assert_eq!(field(&second, "taskId"), id);
        let ack = field(&first, "acknowledgmentId").to_owned();
        assert_eq!(field(&second, "acknowledgmentId"), ack);
        assert_ne!(field(&first, "messageId"), field(&second, "messageId"));
        assert_eq!(first["payload"]["serviceName"], SERVICE);
        assert_eq!(first["payload"]["operation"], "echo");
        assert_eq!(first["payload"]["taskParameters"], json!({"text": "x"}));
        assert_eq!(first["payload"]["callbackClientId"], client.client_id());
        fake.send(messages::ack(&ack, Some(&id)));
    };
    let (assigned, ()) = tokio::join!(
        within(
            "the assignment",
            client.assign_with_id(&id, SERVICE, "echo", json!({"text": "x"}))
        ),
        script
    );
    let mut task = assigned.expect("acknowledged on the second send");
    assert_eq!(task.task_id(), id);

    let processing = TaskState::Processing;
    fake.send(messages::report(&TaskReport {
        task_id: &id,
        state: &processing,
        progress: 40,
        note: Some("working"),
        client_id: None,
    }));
    let update = progress_until(&mut task, 40).await;
    assert_eq!(update.status, Status::Processing);
    assert_eq!(update.message.as_deref(), Some("working"));

    let completed = TaskState::Completed(object(json!({"echo": "x"})));
    fake.send(messages::report(&TaskReport {
        task_id: &id,
        state: &completed,
        progress: 100,
        note: None,
        client_id: None,
    }));
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Completed(object(json!({"echo": "x"}))))
    );
    // Acknowledged: no further sends of the task.
    assert!(fake.drain().iter().all(|value| kind(value) != "AssignTask"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assign_never_acknowledged_fails_after_its_attempts() {
    let mut fake = FakeProvider::start().await;
    let mut config = client_config(fake.endpoint());
    config.ack_timeout = Duration::from_millis(100);
    config.assign_attempts = 3;
    let client = connect(config).await;
    let id = task_id();
    let result = within(
        "the assignment to give up",
        client.assign_with_id(&id, SERVICE, "noop", json!({})),
    )
    .await;
    match result {
        Err(error) => assert_eq!(
            error,
            ClientError::NotAcknowledged {
                task_id: id.clone(),
                attempts: 3
            }
        ),
        Ok(_) => panic!("assign succeeded without an ack"),
    }
    let mut sends = Vec::new();
    for _ in 0..3 {
        sends.push(fake.recv().await);
    }
    let ack = field(&sends[0], "acknowledgmentId").to_owned();
    for send in &sends {
        assert_eq!(kind(send), "AssignTask");
        assert_eq!(field(send, "taskId"), id);
        assert_eq!(field(send, "acknowledgmentId"), ack);
    }
    assert!(fake.drain().is_empty(), "no fourth send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assign_answered_with_an_error_is_refused() {
    let mut fake = FakeProvider::start().await;
    let client = connect(client_config(fake.endpoint())).await;
    let id = task_id();
    let script = async {
        let assign = fake.recv().await;
        fake.send(messages::error(
            "INVALID_MESSAGE",
            "no thanks",
            Some(field(&assign, "messageId")),
            None,
        ));
    };
    let (result, ()) = tokio::join!(
        within(
            "the refusal",
            client.assign_with_id(&id, SERVICE, "noop", json!({}))
        ),
        script
    );
    match result {
        Err(ClientError::Refused {
            task_id,
            code,
            message,
        }) => {
            assert_eq!(task_id, id);
            assert_eq!(code, "INVALID_MESSAGE");
            assert_eq!(message, "no thanks");
        }
        Err(other) => panic!("expected Refused, got {other:?}"),
        Ok(_) => panic!("expected Refused, got a task"),
    }
}

// 2. Recovery through a dropped connection ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_survives_a_cut_connection() {
    let (provider, service) = start_provider(|config| {
        config.access = AccessPolicy::api_keys(["k1"]);
    })
    .await;
    let proxy = Proxy::start(provider.local_addr()).await;
    let mut config = client_config(proxy.endpoint());
    config.api_key = Some("k1".into());
    let client = connect(config).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    assert_eq!(*proxy.accepted().borrow(), 1);

    proxy.cut();
    // The client reconnects (authenticating again) and asks with
    // GetStatus: the answer is the task's state, still 10%.
    let update = match next_event(&mut task).await {
        TaskEvent::Progress(update) => update,
        other => panic!("expected the recovered state, got {other:?}"),
    };
    assert_eq!(update.status, Status::Processing);
    assert_eq!(update.progress, 10);
    assert!(*proxy.accepted().borrow() >= 2, "the client reconnected");

    service.open(task.task_id());
    let id = task.task_id().to_owned();
    assert_eq!(outcome(task).await, done());
    assert_eq!(service.runs(&id), 1);
    assert_eq!(provider.stats().runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_detected_by_keepalive_and_replaced() {
    let (provider, service) = start_provider(|_| {}).await;
    let proxy = Proxy::start(provider.local_addr()).await;
    let mut config = client_config(proxy.endpoint());
    config.keepalive = Duration::from_millis(200);
    let client = connect(config).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;

    // The connection stays open but nothing gets through: pings go
    // unanswered, and the client replaces the connection.
    proxy.freeze();
    let update = match next_event(&mut task).await {
        TaskEvent::Progress(update) => update,
        other => panic!("expected the recovered state, got {other:?}"),
    };
    assert_eq!(update.progress, 10);
    assert!(*proxy.accepted().borrow() >= 2);
    service.open(task.task_id());
    let id = task.task_id().to_owned();
    assert_eq!(outcome(task).await, done());
    assert_eq!(service.runs(&id), 1);
}

// 3. Provider gone ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_provider_ends_the_task_as_unavailable() {
    let (provider, _service) = start_provider(|_| {}).await;
    let mut config = client_config(provider.endpoint());
    config.connect_attempts = 3;
    config.connect_timeout = Duration::from_secs(1);
    let client = connect(config).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    drop(provider);
    match within_for(Duration::from_secs(10), "the task to fail", task.outcome()).await {
        Err(ClientError::Unavailable { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_refuses_reconnects_ends_the_task_as_unavailable() {
    let (provider, service) = start_provider(|_| {}).await;
    let proxy = Proxy::start(provider.local_addr()).await;
    let mut config = client_config(proxy.endpoint());
    config.connect_attempts = 3;
    let client = connect(config).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    proxy.refuse(true);
    proxy.cut();
    match within_for(Duration::from_secs(10), "the task to fail", task.outcome()).await {
        Err(ClientError::Unavailable {
            attempts, endpoint, ..
        }) => {
            assert_eq!(attempts, 3);
            assert_eq!(endpoint, proxy.endpoint());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(*proxy.accepted().borrow() >= 4, "three attempts were made");

    // Once the provider is reachable again, the same client works.
    proxy.refuse(false);
    let task = within(
        "a new assignment",
        client.assign(SERVICE, "noop", json!({})),
    )
    .await
    .expect("assigned");
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Completed(object(json!({}))))
    );
    assert_eq!(service.total_runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_is_unavailable() {
    // A port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = client_config(format!("ws://127.0.0.1:{port}"));
    config.connect_attempts = 2;
    match within("the connection to fail", TaskClient::connect(config)).await {
        Err(ClientError::Unavailable { attempts, .. }) => assert_eq!(attempts, 2),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

// 4. Provider lost the task --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_forgot_the_task_ends_it_as_lost() {
    let (first, _first_service) = start_provider(|_| {}).await;
    let proxy = Proxy::start(first.local_addr()).await;
    let client = connect(client_config(proxy.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;

    let (second, second_service) = start_provider(|_| {}).await;
    proxy.retarget(second.local_addr());
    proxy.cut();
    let id = task.task_id().to_owned();
    assert_eq!(
        outcome(task).await,
        Err(ClientError::Lost {
            task_id: id.clone()
        })
    );
    assert_eq!(second_service.runs(&id), 0, "a lost task is not re-run");
}

// 5. Authentication -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_unauthorized_and_the_right_one_works() {
    let (provider, service) = start_provider(|config| {
        config.access = AccessPolicy::api_keys(["k1"])
            .grant("reporter", SERVICE, "noop")
            .grant("other", "*", "*");
    })
    .await;

    let mut config = client_config(provider.endpoint());
    config.api_key = Some("wrong".into());
    config.client_id = "reporter".into();
    match within("the refusal", TaskClient::connect(config)).await {
        Err(ClientError::Unauthorized(message)) => {
            assert!(message.contains("UNAUTHORIZED"), "{message}")
        }
        Err(other) => panic!("expected Unauthorized, got {other:?}"),
        Ok(_) => panic!("a wrong key was accepted"),
    }

    // No key at all: the provider refuses the first task.
    let mut config = client_config(provider.endpoint());
    config.client_id = "reporter".into();
    let anonymous = connect(config).await;
    let refused = within("the refusal", anonymous.assign(SERVICE, "noop", json!({}))).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Unauthorized(_)) | Err(ClientError::Refused { .. })
        ),
        "{:?}",
        refused.err()
    );

    let mut config = client_config(provider.endpoint());
    config.api_key = Some("k1".into());
    config.client_id = "reporter".into();
    let client = connect(config).await;
    assert_eq!(client.client_id(), "reporter");
    let task = within("the assignment", client.assign(SERVICE, "noop", json!({})))
        .await
        .expect("assigned");
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Completed(object(json!({}))))
    );
    let forbidden = within(
        "the assignment",
        client.assign(SERVICE, "echo", json!({"text": "x"})),
    )
    .await
    .expect("assigned");
    match outcome(forbidden).await {
        Ok(TaskOutcome::Failed(failure)) => assert_eq!(failure.code, "FORBIDDEN"),
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }
    assert_eq!(service.total_runs(), 1);
}

// 6. Cancel -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_ends_it_as_cancelled_at_its_progress() {
    let (provider, service) = start_provider(|_| {}).await;
    let client = connect(client_config(provider.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    task.cancel();
    let id = task.task_id().to_owned();
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Cancelled { progress: 10 })
    );
    service.wait_cancelled(&id).await;
    assert_eq!(service.runs(&id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_lost_with_the_connection_is_sent_again() {
    let (provider, service) = start_provider(|_| {}).await;
    let proxy = Proxy::start(provider.local_addr()).await;
    let client = connect(client_config(proxy.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;

    // The CancelTask goes into a connection that is already dead (frozen:
    // it reaches the proxy and goes no further), then the connection drops.
    proxy.freeze();
    let mut received = proxy.client_bytes();
    let before = *received.borrow_and_update();
    task.cancel();
    within(
        "the CancelTask to be written",
        received.wait_for(|bytes| *bytes > before),
    )
    .await
    .unwrap();
    proxy.cut();

    let id = task.task_id().to_owned();
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Cancelled { progress: 10 })
    );
    service.wait_cancelled(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_client_ends_open_tasks_as_closed() {
    let (provider, _service) = start_provider(|_| {}).await;
    let client = connect(client_config(provider.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    within("the client to close", client.close()).await;
    assert_eq!(outcome(task).await, Err(ClientError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_shutdown_ends_the_task_as_cancelled() {
    let (provider, _service) = start_provider(|_| {}).await;
    let client = connect(client_config(provider.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    progress_until(&mut task, 10).await;
    let shutdown = tokio::spawn(provider.shutdown(Duration::ZERO));
    assert_eq!(
        outcome(task).await,
        Ok(TaskOutcome::Cancelled { progress: 10 })
    );
    within("the shutdown", shutdown).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_assigns_are_sent_again_until_acknowledged() {
    let (provider, service) = start_provider(|config| {
        config.limits.messages_per_second = Some(4.0);
        config.limits.burst = 1;
    })
    .await;
    let mut config = client_config(provider.endpoint());
    config.ack_timeout = Duration::from_millis(250);
    config.assign_attempts = 12;
    let client = connect(config).await;
    let (a, b, c) = tokio::join!(
        client.assign(SERVICE, "echo", json!({"text": "a"})),
        client.assign(SERVICE, "echo", json!({"text": "b"})),
        client.assign(SERVICE, "echo", json!({"text": "c"})),
    );
    for (task, text) in [(a, "a"), (b, "b"), (c, "c")] {
        let task = task.expect("acknowledged in the end");
        assert_eq!(
            outcome(task).await,
            Ok(TaskOutcome::Completed(object(json!({"echo": text}))))
        );
    }
    assert_eq!(service.total_runs(), 3);
    assert!(provider.stats().errors >= 1, "some sends were rate limited");
}

// 7. Progress and concurrency -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_never_goes_down_and_finished_is_last() {
    let (provider, service) = start_provider(|_| {}).await;
    let client = connect(client_config(provider.endpoint())).await;
    let mut task = within("the assignment", client.assign(SERVICE, "gated", json!({})))
        .await
        .expect("assigned");
    let mut events = Vec::new();
    within("every event", async {
        while let Some(event) = task.next().await {
            if let TaskEvent::Progress(update) = &event {
                if update.progress == 10 {
                    service.open(task.task_id());
                }
            }
            events.push(event);
        }
    })
    .await;
    let progress: Vec<u8> = events
        .iter()
        .filter_map(|event| match event {
            TaskEvent::Progress(update) => Some(update.progress),
            TaskEvent::Finished(_) => None,
        })
        .collect();
    assert!(
        progress.windows(2).all(|pair| pair[0] <= pair[1]),
        "{progress:?}"
    );
    assert!(
        progress.contains(&10) && progress.contains(&60),
        "{progress:?}"
    );
    let finished = events
        .iter()
        .filter(|event| matches!(event, TaskEvent::Finished(_)))
        .count();
    assert_eq!(finished, 1, "{events:#?}");
    assert_eq!(events.last(), Some(&TaskEvent::Finished(done())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_tasks_on_one_client_all_end_right() {
    let (provider, service) = start_provider(|_| {}).await;
    let client = Arc::new(connect(client_config(provider.endpoint())).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = Arc::clone(&client);
        tasks.spawn(async move {
            let (operation, parameters) = if i % 4 == 0 {
                ("fail", json!({}))
            } else {
                ("echo", json!({"text": format!("text {i}")}))
            };
            let task = client
                .assign(SERVICE, operation, parameters)
                .await
                .expect("assigned");
            (i, task.outcome().await)
        });
    }
    let mut ended = 0;
    within("every task to end", async {
        while let Some(joined) = tasks.join_next().await {
            let (i, outcome) = joined.expect("the task ran");
            if i % 4 == 0 {
                match outcome {
                    Ok(TaskOutcome::Failed(failure)) => assert_eq!(failure.code, "SIMULATED"),
                    other => panic!("{i}: {other:?}"),
                }
            } else {
                assert_eq!(
                    outcome,
                    Ok(TaskOutcome::Completed(object(
                        json!({"echo": format!("text {i}")})
                    ))),
                    "{i}"
                );
            }
            ended += 1;
        }
    })
    .await;
    assert_eq!(ended, 20);
    assert_eq!(service.total_runs(), 20);
    assert_eq!(provider.stats().runs, 20);
}

// 8. Configuration errors --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_and_parameters_are_config_errors() {
    for endpoint in [
        "",
        "127.0.0.1:8080",
        "http://127.0.0.1:8080",
        "ftp://127.0.0.1",
        "WebSocket please",
    ] {
        match within("the refusal", TaskClient::connect(client_config(endpoint))).await {
            Err(ClientError::Config(_)) => {}
            Err(other) => panic!("{endpoint:?}: expected Config, got {other:?}"),
            Ok(_) => panic!("{endpoint:?}: connected"),
        }
    }

    // TLS setup with a root that does not exist.
    let mut config = client_config("wss://127.0.0.1:1");
    config.extra_roots = vec!["/nonexistent/specwire/cert.pem".into()];
    match within("the refusal", TaskClient::connect(config)).await {
        Err(ClientError::Config(message)) => assert!(message.contains("cert.pem"), "{message}"),
        Err(other) => panic!("expected Config, got {other:?}"),
        Ok(_) => panic!("connected"),
    }

    // Parameters that are not an object.
    let (provider, service) = start_provider(|_| {}).await;
    let client = connect(client_config(provider.endpoint())).await;
    for parameters in [json!([1, 2]), json!("text"), json!(3)] {
        match within("the refusal", client.assign(SERVICE, "noop", parameters)).await {
            Err(ClientError::Config(_)) => {}
            Err(other) => panic!("expected Config, got {other:?}"),
            Ok(_) => panic!("assigned"),
        }
    }
    assert_eq!(service.total_runs(), 0);
}
