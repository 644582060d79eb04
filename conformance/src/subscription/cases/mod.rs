//! The subscription family's cases, one function per catalog ID
//! (`schema/subscription/conformance.json`), filed by topic: [`access`]
//! (authentication, paths), [`envelope`] (validity, ids, extra fields,
//! malformed and unknown messages), [`subscribe`] (subscribe,
//! unsubscribe, the publish API), [`routing`] (the routing table level by
//! level, once per connection, order), [`limits`] (connection and rate
//! limits, ping and heartbeat); the generated sessions are in
//! [`generated`](super::generated).
//!
//! Each case checks its own spec point and no other, so a server with one
//! fault fails one case: a case that needs a subscription or a publish as
//! a tool takes any answer to it (the answer's content is another case's
//! point), and proves that an event did not arrive with a later event
//! that did ([`Conn::window`]).

mod access;
mod envelope;
mod limits;
mod routing;
mod subscribe;

use serde_json::Value;

use super::events::label_of;
use super::generated;
use super::session::{describe, Conn, Event, Msg, SubMsg};
use super::target::Ctx;
use crate::suite::Registry;
use crate::verdict::Stop;

/// The subscription cases, one per catalog ID.
pub(crate) static CASES: Registry<Ctx> = crate::cases!(Ctx {
    "subscription.auth.query-token" => access::query_token,
    "subscription.auth.header-token" => access::header_token,
    "subscription.auth.missing-token" => access::missing_token,
    "subscription.auth.bad-signature" => access::bad_signature,
    "subscription.auth.expired" => access::expired,
    "subscription.auth.alg-none" => access::alg_none,
    "subscription.auth.other-algorithm" => access::other_algorithm,
    "subscription.auth.no-subject" => access::no_subject,
    "subscription.path.unknown-404" => access::unknown_path,
    "subscription.path.resource-subscribed" => access::resource_subscribed,
    "subscription.envelope.valid-messages" => envelope::valid_messages,
    "subscription.envelope.id-timestamp" => envelope::id_timestamp,
    "subscription.envelope.client-omits-id" => envelope::client_omits_id,
    "subscription.envelope.extra-fields-ignored" => envelope::extra_fields_ignored,
    "subscription.envelope.event-id-format" => envelope::event_id_format,
    "subscription.subscribe.reply" => subscribe::reply,
    "subscription.subscribe.unsubscribe-reply" => subscribe::unsubscribe_reply,
    "subscription.subscribe.unsubscribe-stops" => subscribe::unsubscribe_stops,
    "subscription.routing.task-to-task" => routing::task_to_task,
    "subscription.routing.task-to-experiment" => routing::task_to_experiment,
    "subscription.routing.task-to-project" => routing::task_to_project,
    "subscription.routing.task-to-user" => routing::task_to_user,
    "subscription.routing.experiment-to-experiment" => routing::experiment_to_experiment,
    "subscription.routing.experiment-to-project" => routing::experiment_to_project,
    "subscription.routing.experiment-to-user" => routing::experiment_to_user,
    "subscription.routing.worker-to-worker" => routing::worker_to_worker,
    "subscription.routing.worker-to-system" => routing::worker_to_system,
    "subscription.routing.system-to-all" => routing::system_to_all,
    "subscription.routing.only-matching" => routing::only_matching,
    "subscription.routing.once-per-connection" => routing::once_per_connection,
    "subscription.routing.publication-order" => routing::publication_order,
    "subscription.heartbeat.client-ping" => limits::client_ping,
    "subscription.heartbeat.server-ping" => limits::server_ping,
    "subscription.errors.malformed-json" => envelope::malformed_json,
    "subscription.errors.unknown-type" => envelope::unknown_type,
    "subscription.errors.bad-fields" => envelope::bad_fields,
    "subscription.errors.nothing-lost" => envelope::nothing_lost,
    "subscription.errors.seed-texts" => envelope::seed_texts,
    "subscription.limits.per-user" => limits::per_user,
    "subscription.limits.per-ip" => limits::per_ip,
    "subscription.limits.rate" => limits::rate,
    "subscription.publish.accepted" => subscribe::publish_accepted,
    "subscription.publish.event-intact" => subscribe::event_intact,
    "subscription.publish.invalid-event" => subscribe::invalid_event,
    "subscription.publish.non-admin-refused" => subscribe::non_admin_refused,
    "subscription.generated.sessions" => generated::sessions,
});

/// Cases that must run after every other: they judge the whole run.
pub(crate) const RUN_LAST: &[&str] = &[
    "subscription.envelope.valid-messages",
    "subscription.envelope.id-timestamp",
    "subscription.envelope.event-id-format",
];

/// Text that is not JSON.
pub(crate) const MALFORMED: &str = "{\"type\": \"system_status\", \"data\": {";

/// A message of a type no family has.
pub(crate) fn unknown_type_message() -> String {
    serde_json::json!({
        "type": "specwire_no_such_message",
        "id": specwire_runtime::clock::new_id(),
        "timestamp": specwire_runtime::clock::now_rfc3339()
    })
    .to_string()
}

/// The labels of `events`.
fn labels(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| label_of(event).map(str::to_owned))
        .collect()
}

/// The messages among `seen` carrying one of `labels`, described.
fn carrying(seen: &[Msg], labels: &[String]) -> Vec<String> {
    seen.iter()
        .filter(|msg| {
            msg.label()
                .is_some_and(|label| labels.iter().any(|l| l == label))
        })
        .map(describe)
        .collect()
}

/// Has `admin` publish `setup` and then `events`, and checks that every
/// one of `events` reaches `conn` (`what` names the route for reasons).
async fn reaches(
    conn: &mut Conn,
    admin: &mut Conn,
    setup: &[Value],
    events: &[Value],
    what: &str,
) -> Result<Vec<Msg>, Stop> {
    for event in setup.iter().chain(events) {
        admin.publish(event).await?;
    }
    let labels = labels(events);
    conn.until_labels(&labels, &format!("events {what}")).await
}

/// Subscribes `conn` to `experiment` and to its project, so that the
/// events of a case that only needs them delivered (a tool, not its
/// point) match two levels of the table, never one alone.
async fn subscribe_twice(
    conn: &mut Conn,
    experiment: &super::events::Experiment,
) -> Result<(), Stop> {
    use super::events::{Kind, Resource};
    conn.subscribe(&Resource::new(Kind::Experiment, experiment.id.clone()))
        .await?;
    conn.subscribe(&Resource::new(Kind::Project, experiment.project.clone()))
        .await
}

/// Connections that must close cleanly before the next case counts
/// connections: each starts the close handshake and waits (bounded) for
/// the server's answer.
async fn close_all(conns: &mut [Conn]) {
    for conn in conns.iter_mut() {
        let _ = conn.close().await;
    }
    for conn in conns.iter_mut() {
        let timeout = conn.timeout;
        let _ = conn.until_closed(timeout).await;
    }
}
