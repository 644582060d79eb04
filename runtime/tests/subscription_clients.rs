//! The hub with clients that misbehave or lose it: a subscriber that stops
//! reading (bounded queue, closed with 1013, others unaffected), the
//! reconnecting `Subscriber` (re-subscribes, reports the gap), a refused
//! token ending the stream, and the hub over TLS.

mod hub_support;

use std::time::Duration;

use hub_support::events;
use hub_support::*;
use serde_json::json;
use specwire_runtime::net::Limits;
use specwire_runtime::subscription::{HubConfig, Subscriber, SubscriberConfig, Update};
use specwire_testsupport::{within_for, SelfSigned};

/// An event padded to about `size` bytes (extra fields are forwarded).
fn padded_event(id: &str, size: usize) -> String {
    let mut event = events::experiment_progress(id, "e1");
    event["data"]["padding"] = json!("x".repeat(size));
    event.to_string()
}

#[tokio::test]
async fn a_stalled_subscriber_is_closed_and_costs_a_bounded_queue() {
    let hub = hub(HubConfig {
        queue: 32,
        limits: Limits {
            // Long: the overflow, not the timeout, must end the stalled connection.
            write_timeout: Duration::from_secs(60),
            ..config().limits
        },
        ..config()
    })
    .await;
    // Connected, then never read from again.
    let stalled = connect(&hub, "/ws/experiments/e1", &user_token("slow")).await;
    let mut healthy = connect(&hub, "/ws/experiments/e1", &user_token("fast")).await;
    // Each event is read by the healthy subscriber before the next is
    // published, so only the stalled one falls behind: it fills the
    // kernel's buffers (a few MB), then its queue, and is closed.
    let mut published = 0usize;
    while hub.stats().slow_closed == 0 {
        assert!(published < 4000, "the stalled subscriber was never closed");
        published += 1;
        let id = format!("e-{published}");
        hub.publish_json(&padded_event(&id, 16 * 1024)).unwrap();
        assert_eq!(healthy.non_ping().await["id"], id.as_str());
    }
    // From now on the stalled connection is never queued to again: the hub
    // holds nothing more for it.
    let before = hub.stats().delivered;
    for n in 0..100 {
        let id = format!("after-{n}");
        hub.publish_json(&padded_event(&id, 1024)).unwrap();
        assert_eq!(healthy.non_ping().await["id"], id.as_str());
    }
    assert_eq!(
        hub.stats().delivered - before,
        100,
        "only the healthy subscriber"
    );
    assert_eq!(hub.stats().slow_closed, 1);
    // The stalled connection is dropped after the write timeout.
    eventually("the stalled connection to go", || {
        hub.stats().connections == 1
    })
    .await;
    drop(stalled);
}

#[tokio::test]
async fn the_subscriber_resubscribes_after_a_reconnect_and_says_so() {
    let first = hub(config()).await;
    let address = first.local_addr();
    let url = format!("{}/ws/experiments/e1", first.endpoint());
    let mut subscriber = Subscriber::start(
        SubscriberConfig::new(url, user_token("alice")).subscribe("task:t-1".parse().unwrap()),
    )
    .unwrap();
    expect_connected(&mut subscriber, false).await;
    expect_subscribed(&mut subscriber).await;
    first
        .publish_json(&events::task("task_created", "one", "t-1", "other").to_string())
        .unwrap();
    assert_eq!(next_event_id(&mut subscriber).await, "one");

    first.shutdown(Duration::from_secs(2)).await;
    match within("the break", subscriber.next()).await {
        Some(Update::Disconnected { .. }) => {}
        other => panic!("expected a disconnect, got {other:?}"),
    }
    let second = hub(HubConfig {
        bind: address,
        ..config()
    })
    .await;
    expect_connected(&mut subscriber, true).await;
    expect_subscribed(&mut subscriber).await;
    // The extra subscription was sent again: a task-only event arrives.
    second
        .publish_json(&events::task("task_created", "two", "t-1", "other").to_string())
        .unwrap();
    assert_eq!(next_event_id(&mut subscriber).await, "two");
}

async fn expect_connected(subscriber: &mut Subscriber, reconnect: bool) {
    loop {
        match within_for(Duration::from_secs(15), "a connection", subscriber.next()).await {
            Some(Update::Connected {
                reconnect: again, ..
            }) => {
                assert_eq!(again, reconnect);
                return;
            }
            Some(Update::Disconnected { .. }) => {}
            other => panic!("expected Connected, got {other:?}"),
        }
    }
}

/// The reply to the extra subscription.
async fn expect_subscribed(subscriber: &mut Subscriber) {
    match within("the subscription's reply", subscriber.next()).await {
        Some(Update::Reply(reply)) => {
            assert_eq!(serde_json::to_value(reply.data.status).unwrap(), "success");
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The next event's id, after the replies to subscriptions.
async fn next_event_id(subscriber: &mut Subscriber) -> String {
    loop {
        match within("an event", subscriber.next()).await {
            Some(Update::Event(event)) => {
                let value = specwire_protocol::JsonProtocol::to_value(&*event).unwrap();
                return value["id"].as_str().unwrap().to_owned();
            }
            Some(Update::Reply(reply)) => {
                assert_eq!(serde_json::to_value(reply.data.status).unwrap(), "success");
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_token_ends_the_stream() {
    let hub = hub(config()).await;
    let url = format!("{}/ws/user", hub.endpoint());
    let mut subscriber = Subscriber::start(SubscriberConfig::new(url, "not.a.token")).unwrap();
    loop {
        match within("the refusal", subscriber.next()).await {
            Some(Update::Refused(reason)) => {
                assert_eq!(reason, "Invalid or expired token");
                break;
            }
            Some(Update::Connected { .. } | Update::Error(_)) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(within("the end", subscriber.next()).await.is_none());
}

#[tokio::test]
async fn the_hub_serves_wss() {
    let certificate = SelfSigned::new();
    let hub = hub(HubConfig {
        tls: Some(
            specwire_runtime::tls::server_config(&certificate.cert, &certificate.key).unwrap(),
        ),
        ..config()
    })
    .await;
    assert!(hub.endpoint().starts_with("wss://"));
    let config = SubscriberConfig {
        extra_roots: vec![certificate.cert.clone()],
        ..SubscriberConfig::new(
            format!("{}/ws/experiments/e1", hub.endpoint()),
            user_token("alice"),
        )
    };
    let mut subscriber = Subscriber::start(config).unwrap();
    expect_connected(&mut subscriber, false).await;
    hub.publish_json(&events::experiment_progress("secure", "e1").to_string())
        .unwrap();
    assert_eq!(next_event_id(&mut subscriber).await, "secure");
}
