//! `specwire demo subscription`: the event hub on loopback. Three
//! subscribers at different levels, an admin publishing over its own
//! connection, and who got what, checked against the routing table.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use specwire_protocol::JsonProtocol;
use specwire_runtime::net::Connector;
use specwire_runtime::subscription::{
    token, Hub, HubConfig, Secret, Subscriber, SubscriberConfig, Update,
};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::step;

const TIME: &str = "2024-01-15T10:30:00Z";

/// The demo's subscribers: name, user, path, extra subscription.
const SUBSCRIBERS: [(&str, &str, &str, Option<&str>); 3] = [
    ("dashboard", "bob", "/ws/experiments/exp-1", None),
    ("alice", "alice", "/ws/user", None),
    ("ops", "carol", "/ws/projects/proj-2", Some("system:all")),
];

/// One published event, and who should get it.
struct Publication {
    event: Value,
    reaches: &'static [&'static str],
    why: &'static str,
}

fn experiment(id: &str, project: &str, owner: &str) -> Value {
    let body = json!({"id": id, "name": "Parameter Sweep", "status": "CREATED", "ownerId": owner, "projectId": project});
    let summary =
        json!({"id": id, "name": "Parameter Sweep", "status": "CREATED", "ownerId": owner});
    json!({"type": "experiment_created", "id": format!("exp_{id}_1642248600"), "timestamp": TIME,
           "data": {"experiment": body, "summary": summary}})
}

fn publications() -> Vec<Publication> {
    let task = json!({"id": "t-1", "experimentId": "exp-1", "status": "CREATED", "command": "python sweep.py", "workerId": null});
    let task_summary =
        json!({"id": "t-1", "experimentId": "exp-1", "status": "CREATED", "workerId": null});
    let worker = json!({"id": "w-1", "computeResourceId": "cluster-a", "experimentId": "exp-1", "status": "RUNNING", "currentTaskId": null});
    let worker_summary = json!({"id": "w-1", "computeResourceId": "cluster-a", "experimentId": "exp-1", "status": "RUNNING"});
    vec![
        Publication {
            event: experiment("exp-1", "proj-1", "alice"),
            reaches: &["dashboard", "alice"],
            why: "experiment exp-1 → its subscribers, project proj-1's, owner alice's",
        },
        Publication {
            event: json!({"type": "task_created", "id": "task_t-1_1642248601", "timestamp": TIME,
                          "data": {"task": task, "summary": task_summary}}),
            reaches: &["dashboard", "alice"],
            why:
                "task t-1 → its experiment exp-1, and (learnt from the last event) proj-1 and alice",
        },
        Publication {
            event: json!({"type": "task_progress", "id": "task_t-1_1642248660", "timestamp": TIME, "data": {
                "taskId": "t-1", "experimentId": "exp-1", "status": "RUNNING", "progressPercent": 40.0,
                "workerId": "w-1", "lastUpdated": TIME}}),
            reaches: &["dashboard", "alice"],
            why: "task progress → the same chain",
        },
        Publication {
            event: experiment("exp-2", "proj-2", "dave"),
            reaches: &["ops"],
            why: "another experiment, in proj-2 → only the proj-2 subscriber",
        },
        Publication {
            event: json!({"type": "worker_registered", "id": "worker_w-1_1642248700", "timestamp": TIME,
                          "data": {"worker": worker, "summary": worker_summary}}),
            reaches: &["ops"],
            why: "worker w-1 → worker and system subscribers",
        },
        Publication {
            event: json!({"type": "system_status", "id": "system_1642248800", "timestamp": TIME, "data": {
                "totalConnections": 4, "activeConnections": 4, "totalMessages": 12,
                "messagesPerSecond": 0.5, "averageLatency": "0.001s", "uptime": "1s"}}),
            reaches: &["dashboard", "alice", "ops"],
            why: "system event → every connection",
        },
    ]
}

fn random_secret() -> Secret {
    let text = format!(
        "{}{}",
        specwire_runtime::clock::new_id(),
        specwire_runtime::clock::new_id()
    );
    Secret::new(text.into_bytes())
}

fn mint(secret: &Secret, user: &str, role: Option<&str>) -> Result<String, String> {
    token::mint(secret, user, role, Duration::from_secs(600)).map_err(|error| error.to_string())
}

/// Waits for `subscriber` to be connected (and its extra subscription
/// answered).
async fn ready(subscriber: &mut Subscriber, replies: usize) -> Result<(), String> {
    let mut waiting = replies + 1;
    while waiting > 0 {
        match subscriber.next().await {
            Some(Update::Connected { .. }) | Some(Update::Reply(_)) => waiting -= 1,
            Some(Update::Refused(reason)) => return Err(reason),
            Some(_) => {}
            None => return Err("the subscriber stopped".to_owned()),
        }
    }
    Ok(())
}

/// The event ids `subscriber` got, up to the last publication's.
async fn received(subscriber: &mut Subscriber, last: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    while let Some(update) = subscriber.next().await {
        if let Update::Event(event) = update {
            let value = event.to_value().map_err(|error| error.to_string())?;
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            let done = id == last;
            ids.push(id);
            if done {
                return Ok(ids);
            }
        }
    }
    Err("the subscriber stopped".to_owned())
}

pub(super) async fn demo() -> Result<(), String> {
    step(
        1,
        "Start the event hub on loopback with a fresh HS256 secret",
    );
    let secret = random_secret();
    let hub = Hub::start(HubConfig {
        bind: "127.0.0.1:0".parse().map_err(|_| "bad address")?,
        secret: secret.clone(),
        ..HubConfig::default()
    })
    .await
    .map_err(|error| format!("starting the hub: {error}"))?;
    println!("    listening on {}", hub.endpoint());

    step(2, "Three subscribers connect, each with its own token");
    let mut subscribers = Vec::new();
    for (name, user, path, extra) in SUBSCRIBERS {
        let mut config = SubscriberConfig::new(
            format!("{}{path}", hub.endpoint()),
            mint(&secret, user, None)?,
        );
        if let Some(resource) = extra {
            config = config.subscribe(resource.parse().map_err(|e| format!("{e}"))?);
        }
        let mut subscriber = Subscriber::start(config).map_err(|error| error.to_string())?;
        ready(&mut subscriber, usize::from(extra.is_some())).await?;
        let also = extra
            .map(|r| format!(", then subscribes to {r}"))
            .unwrap_or_default();
        println!("    {name:<10} user {user:<6} connects to {path}{also}");
        subscribers.push((name, subscriber));
    }

    step(
        3,
        "An admin (token role: admin) publishes events over its own connection",
    );
    let connector = Connector::new(
        format!("{}/ws/user", hub.endpoint()),
        &[],
        Duration::from_secs(5),
    )
    .map_err(|error| error.to_string())?
    .with_bearer(mint(&secret, "publisher", Some("admin"))?);
    let (mut admin, _) = connector
        .connect()
        .await
        .map_err(|error| error.to_string())?;
    let publications = publications();
    for publication in &publications {
        let frame = json!({"type": "publish", "data": publication.event}).to_string();
        admin
            .send(Frame::text(frame))
            .await
            .map_err(|error| error.to_string())?;
        println!(
            "    → {:<19} {}",
            publication.event["type"].as_str().unwrap_or("?"),
            publication.why
        );
    }

    step(4, "Who got what (each in publication order, once)");
    let last = publications
        .last()
        .map(|p| p.event["id"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let mut wrong = Vec::new();
    for (name, subscriber) in &mut subscribers {
        let got = tokio::time::timeout(Duration::from_secs(10), received(subscriber, last))
            .await
            .map_err(|_| format!("{name} did not get the system event within 10 s"))??;
        let expected: Vec<String> = publications
            .iter()
            .filter(|p| p.reaches.contains(name))
            .map(|p| p.event["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let verdict = if got == expected {
            "as the routing table says"
        } else {
            "WRONG"
        };
        println!(
            "    {name:<10} {} event(s): {}  ({verdict})",
            got.len(),
            got.join(", ")
        );
        if got != expected {
            wrong.push(format!("{name} got {got:?}, expected {expected:?}"));
        }
    }
    let stats = hub.stats();
    println!(
        "\n    hub: {} published, {} delivered, {} connections",
        stats.published, stats.delivered, stats.connections
    );
    let _ = admin.close(None).await;
    drop(subscribers);
    hub.shutdown(Duration::from_secs(2)).await;
    if wrong.is_empty() {
        println!("\nDone: every event reached exactly the subscribers the routing table names.");
        Ok(())
    } else {
        Err(format!(
            "routing differs from the table: {}",
            wrong.join("; ")
        ))
    }
}
