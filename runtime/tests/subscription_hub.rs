//! The subscription hub, end to end over loopback: authentication, paths,
//! subscriptions, the routing table, pings, errors that keep the
//! connection, limits, and slow subscribers.

mod hub_support;

use std::time::Duration;

use hub_support::events;
use hub_support::*;
use serde_json::json;
use specwire_runtime::subscription::token::{Claims, Jwt};
use specwire_runtime::subscription::HubConfig;

async fn expect_refused(client: &mut Client, text: &str) {
    let error = client.message().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"], text, "{error}");
    assert!(matches!(client.next().await, Next::Closed(Some(1008))));
}

#[tokio::test]
async fn tokens_are_required_checked_and_pinned_to_hs256() {
    let hub = hub(config()).await;
    let base = format!("{}/ws/experiments/e1", hub.endpoint());
    let mut missing = try_connect(&base, None).await.unwrap();
    expect_refused(&mut missing, "Authentication required").await;

    let expired = Jwt::hs256(&secret())
        .mint_claims(&Claims {
            sub: "alice".into(),
            exp: 1_000_000,
            iat: None,
            role: None,
        })
        .unwrap();
    let wrong_secret = specwire_runtime::subscription::token::mint(
        &specwire_runtime::subscription::Secret::new(b"other".to_vec()),
        "alice",
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    let alg_none = {
        let good = user_token("alice");
        let payload = good.split('.').nth(1).unwrap().to_owned();
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    for token in [expired, wrong_secret, alg_none, "garbage".to_owned()] {
        let mut client = try_connect(&format!("{base}?token={token}"), None)
            .await
            .unwrap();
        expect_refused(&mut client, "Invalid or expired token").await;
    }
    let stats = hub.stats();
    assert_eq!((stats.refused_auth, stats.connections), (5, 0));

    // The header works as well as the query.
    let mut header = try_connect(&base, Some(&user_token("alice")))
        .await
        .unwrap();
    header.send(json!({"type": "ping", "id": "p-1"})).await;
    let pong = header.non_ping().await;
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_str()),
        (Some("pong"), Some("p-1"))
    );
}

#[tokio::test]
async fn unknown_paths_are_404_in_the_handshake() {
    let hub = hub(config()).await;
    let token = user_token("alice");
    for path in [
        "/",
        "/ws",
        "/ws/workers/w1",
        "/ws/experiments/",
        "/ws/tasks/a/b",
    ] {
        let url = format!("{}{path}?token={token}", hub.endpoint());
        let error = try_connect(&url, None).await.err();
        assert_eq!(error.as_deref(), Some("HTTP 404 Not Found"), "{path}");
    }
}

#[tokio::test]
async fn events_follow_the_routing_table_once_and_in_order() {
    let hub = hub(config()).await;
    let mut admin = connect(&hub, "/ws/user", &admin_token()).await;
    let mut task = connect(&hub, "/ws/tasks/t1", &user_token("a")).await;
    let mut experiment = connect(&hub, "/ws/experiments/e1", &user_token("b")).await;
    let mut project = connect(&hub, "/ws/projects/p1", &user_token("c")).await;
    let mut owner = connect(&hub, "/ws/user", &user_token("olive")).await;
    let mut system = connect(&hub, "/ws/projects/none", &user_token("d")).await;
    system.subscribe("system", "all").await;
    let mut worker = connect(&hub, "/ws/projects/none", &user_token("e")).await;
    worker.subscribe("worker", "w1").await;
    // Subscribed to the task, its experiment and its project: once each.
    let mut overlap = connect(&hub, "/ws/tasks/t1", &user_token("f")).await;
    overlap.subscribe("experiment", "e1").await;
    overlap.subscribe("project", "p1").await;

    let published = [
        events::task("task_created", "before-learning", "t1", "e1"),
        events::experiment("experiment_created", "exp-created", "e1", "p1", "olive"),
        events::task("task_updated", "task-updated", "t1", "e1"),
        events::experiment_progress("exp-progress", "e1"),
        events::task("task_created", "other-task", "t2", "e1"),
        events::worker("worker_registered", "worker-w1", "w1"),
        events::worker("worker_updated", "worker-w2", "w2"),
        events::system("system-1"),
    ];
    for event in &published {
        admin.publish(event).await;
    }
    let everything = [
        "before-learning",
        "exp-created",
        "task-updated",
        "exp-progress",
        "other-task",
    ];
    let expectations: [(&mut Client, &[&str]); 7] = [
        (&mut task, &["before-learning", "task-updated", "system-1"]),
        (
            &mut experiment,
            &[everything.as_slice(), &["system-1"]].concat(),
        ),
        (
            &mut project,
            &[
                "exp-created",
                "task-updated",
                "exp-progress",
                "other-task",
                "system-1",
            ],
        ),
        (
            &mut owner,
            &[
                "exp-created",
                "task-updated",
                "exp-progress",
                "other-task",
                "system-1",
            ],
        ),
        (&mut system, &["worker-w1", "worker-w2", "system-1"]),
        (&mut worker, &["worker-w1", "system-1"]),
        (
            &mut overlap,
            &[everything.as_slice(), &["system-1"]].concat(),
        ),
    ];
    for (client, expected) in expectations {
        assert_eq!(client.events_until("system-1").await, expected);
    }
    assert_eq!(admin.events_until("system-1").await, ["system-1"]);
    assert_eq!(hub.stats().published, 8);
}

#[tokio::test]
async fn subscriptions_are_answered_and_can_be_dropped() {
    let hub = hub(config()).await;
    let mut admin = connect(&hub, "/ws/user", &admin_token()).await;
    let mut client = connect(&hub, "/ws/user", &user_token("alice")).await;
    let reply = client.subscribe("task", "t9").await;
    assert_eq!(reply["type"], "system_status");
    assert_eq!(reply["data"]["status"], "success");
    assert_eq!(reply["data"]["resourceType"], "task");
    assert_eq!(reply["data"]["resourceId"], "t9");
    // Another user's resource is refused; one's own is fine.
    let bob = client.subscribe("user", "bob").await;
    assert_eq!(bob["data"]["status"], "error", "{bob}");
    assert_eq!(
        client.subscribe("user", "alice").await["data"]["status"],
        "success"
    );

    client
        .send(json!({"type": "system_status", "data": {"action": "unsubscribe", "resourceType": "task", "resourceId": "t9"}}))
        .await;
    let reply = client.non_ping().await;
    assert_eq!(reply["data"]["action"], "unsubscribed");
    assert_eq!(reply["data"]["status"], "success");
    admin
        .publish(&events::task("task_created", "gone", "t9", "e9"))
        .await;
    admin.publish(&events::system("marker")).await;
    assert_eq!(client.events_until("marker").await, ["marker"]);
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays() {
    let hub = hub(config()).await;
    let mut client = connect(&hub, "/ws/experiments/e1", &user_token("alice")).await;
    let cases = [
        ("{not json", "Invalid message format"),
        ("[1, 2]", "Invalid message format"),
        (r#"{"type": "dance"}"#, "Unknown message type"),
        (
            r#"{"type": "system_status", "data": {"action": "subscribe", "resourceType": "galaxy", "resourceId": "x"}}"#,
            "Invalid message format",
        ),
        (
            r#"{"type": "system_status", "data": {"action": "bogus"}}"#,
            "Invalid message format",
        ),
        (r#"{"type": "ping", "id": 7}"#, "Invalid message format"),
        (
            r#"{"type": "task_created", "id": "x", "timestamp": "2024-01-15T10:30:00Z"}"#,
            "Unknown message type",
        ),
        (
            r#"{"type": "publish", "data": {"type": "system_status"}}"#,
            "Forbidden: publishing needs an admin token",
        ),
    ];
    for (text, expected) in cases {
        client.send_text(text).await;
        let reply = client.non_ping().await;
        assert_eq!(reply["type"], "error", "{text}: {reply}");
        assert_eq!(reply["error"], expected, "{text}: {reply}");
    }
    // Extra fields are ignored, and the connection still works.
    client
        .send(json!({"type": "ping", "id": "still-here", "extra": {"x": 1}}))
        .await;
    assert_eq!(client.non_ping().await["id"], "still-here");
}

#[tokio::test]
async fn invalid_published_events_are_refused_whole() {
    let hub = hub(config()).await;
    let mut admin = connect(&hub, "/ws/user", &admin_token()).await;
    let mut subscriber = connect(&hub, "/ws/experiments/e1", &user_token("alice")).await;
    let mut broken = events::experiment_progress("broken", "e1");
    broken["data"]["progressPercent"] = json!(250);
    admin.publish(&broken).await;
    let error = admin.non_ping().await;
    assert_eq!(error["error"], "Invalid message format", "{error}");
    admin
        .publish(&events::experiment_progress("fine", "e1"))
        .await;
    assert_eq!(subscriber.events_until("fine").await, ["fine"]);
    // In process: the same checks.
    assert!(hub.publish_json(&broken.to_string()).is_err());
    assert!(hub
        .publish_json(r#"{"type":"ping","id":"x","timestamp":"2024-01-15T10:30:00Z"}"#)
        .is_err());
    assert_eq!(
        hub.publish_json(&events::system("s").to_string()).unwrap(),
        2
    );
}

#[tokio::test]
async fn the_hub_pings_and_client_pings_get_their_id_back() {
    let hub = hub(HubConfig {
        ping_interval: Duration::from_millis(100),
        ..config()
    })
    .await;
    let mut client = connect(&hub, "/ws/user", &user_token("alice")).await;
    let ping = client.message().await;
    assert_eq!(ping["type"], "ping");
    client.send(json!({"type": "pong", "id": ping["id"]})).await;
    let second = client.message().await;
    assert_eq!(second["type"], "ping");
    assert_ne!(second["id"], ping["id"]);
    client.send(json!({"type": "ping"})).await;
    let pong = client.non_ping().await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn connection_limits_refuse_with_an_error_and_1008() {
    let hub = hub(HubConfig {
        user_limit: 2,
        ip_limit: 3,
        ..config()
    })
    .await;
    let alice = user_token("alice");
    let _first = connect(&hub, "/ws/user", &alice).await;
    let _second = connect(&hub, "/ws/user", &alice).await;
    let mut third = connect(&hub, "/ws/user", &alice).await;
    let error = third.message().await;
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("Connection limit exceeded"),
        "{error}"
    );
    assert!(matches!(third.next().await, Next::Closed(Some(1008))));
    let _bob = connect(&hub, "/ws/user", &user_token("bob")).await;
    let mut carol = connect(&hub, "/ws/user", &user_token("carol")).await;
    assert!(carol.message().await["error"]
        .as_str()
        .unwrap()
        .contains("address"));
    assert_eq!(hub.stats().refused_limit, 2);
}

#[tokio::test]
async fn the_rate_limit_answers_and_keeps_the_connection() {
    let hub = hub(HubConfig {
        rate_limit: Some(5.0),
        ..config()
    })
    .await;
    let mut client = connect(&hub, "/ws/user", &user_token("alice")).await;
    for n in 0..20 {
        client
            .send(json!({"type": "ping", "id": format!("p{n}")}))
            .await;
    }
    let mut limited = 0;
    for _ in 0..20 {
        let reply = client.non_ping().await;
        if reply["type"] == "error" {
            assert_eq!(reply["error"], "Rate limit exceeded");
            limited += 1;
        }
    }
    assert!(limited >= 10, "{limited} of 20 limited");
}
