//! The task provider's connection-level behaviour: limits (rate, size,
//! frames, connections), handler panics, capacity and presence, the
//! WebSocket keepalive and close handshake, shutdown, TLS. The protocol's
//! message flows are in `task_provider.rs`.
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
use specwire_runtime::task::{ClientError, Limits, TaskClient, TaskOutcome};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;

use support::*;

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
