//! One provider connection's task logic: a [`WsSession`] that runs every
//! text frame through the [inbound pipeline](crate::net::inbound), answers
//! each rejection with the task family's `Error`, enforces `Authenticate`
//! and the ACL, and hands valid requests to the [store](super::store) and
//! the [runner](super::runner).
//!
//! Every problem is an `Error` reply; the connection stays open.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::Value;
use specwire_protocol::task::{self as protocol, Message};
use specwire_protocol::{DecodeError, Direction};

use super::handler::{codes, Task, TaskError};
use super::messages;
use super::runner::{start, Shared};
use super::store::{Admission, Cancellation, Lookup, Requester, Subscriber};
use crate::net::{Authenticator, Credential, Inbound, Outbox, Rejection, Text, WsSession};

pub(super) struct Session {
    shared: Arc<Shared>,
    subscriber: Subscriber,
    /// The authenticated `clientId`.
    client_id: Option<String>,
    authenticated: bool,
    inbound: Inbound,
}

/// `messageId` and `payload.taskId` of a message, when they are usable
/// ids (1–256 characters): what an `Error` reply names. A broken id is not
/// echoed, or the reply itself would break the schema.
fn ids(value: &Value) -> (Option<&str>, Option<&str>) {
    let usable = |id: &&str| !id.is_empty() && id.chars().count() <= 256;
    let message_id = value
        .get("messageId")
        .and_then(Value::as_str)
        .filter(usable);
    let task_id = value
        .get("payload")
        .and_then(|payload| payload.get("taskId"))
        .and_then(Value::as_str)
        .filter(usable);
    (message_id, task_id)
}

/// The `messageId` of a client message.
fn message_id(message: &Message) -> &str {
    match message {
        Message::Authenticate(m) => &m.message_id.0,
        Message::AssignTask(m) => &m.message_id.0,
        Message::CancelTask(m) => &m.message_id.0,
        Message::GetStatus(m) => &m.message_id.0,
        Message::GetResult(m) => &m.message_id.0,
        Message::Ack(m) => &m.message_id.0,
        Message::TaskStatusUpdate(m) => &m.message_id.0,
        Message::TaskResult(m) => &m.message_id.0,
        Message::TaskFailed(m) => &m.message_id.0,
        Message::Error(m) => &m.message_id.0,
    }
}

impl WsSession for Session {
    fn on_text(&mut self, text: &str) {
        self.handle_text(text);
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        self.error(
            codes::INVALID_MESSAGE,
            &format!(
                "binary frame of {} bytes: task messages are JSON text frames",
                bytes.len()
            ),
            None,
            None,
        );
    }
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>, connection: u64, outbox: Outbox<Text>) -> Session {
        Session {
            subscriber: Subscriber { connection, outbox },
            client_id: None,
            authenticated: !shared.access.required(),
            inbound: Inbound::new(&shared.limits, Direction::ClientToServer),
            shared,
        }
    }

    fn send(&self, text: String) {
        // Fails only when the connection is already gone.
        let _ = self.subscriber.outbox.send(text.into());
    }

    fn error(&self, code: &str, message: &str, related: Option<&str>, task_id: Option<&str>) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.send(messages::error(code, message, related, task_id));
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            owner: self
                .client_id
                .as_deref()
                .filter(|_| self.shared.access.required()),
            subscriber: &self.subscriber,
        }
    }

    fn handle_text(&mut self, text: &str) {
        match self.inbound.receive::<Message>(text) {
            Ok(message) => {
                let related = message_id(&message).to_owned();
                self.handle(message, Some(&related));
            }
            Err(rejection) => self.reject(&rejection),
        }
    }

    /// The task family's `Error` for each inbound rejection.
    fn reject(&self, rejection: &Rejection) {
        let (related, task_id) = rejection.value().map_or((None, None), ids);
        match rejection {
            Rejection::TooLarge { size, limit } => self.error(
                codes::MESSAGE_TOO_LARGE,
                &format!("message of {size} bytes is over the {limit}-byte limit"),
                None,
                None,
            ),
            Rejection::RateLimited => self.error(
                codes::RATE_LIMITED,
                "too many messages on this connection; slow down",
                None,
                None,
            ),
            Rejection::NotJson(error) => self.error(
                codes::INVALID_MESSAGE,
                &format!("not JSON: {error}"),
                None,
                None,
            ),
            Rejection::Unrecognised { value } => match value.get("type").and_then(Value::as_str) {
                Some(name) => self.error(
                    codes::UNKNOWN_TYPE,
                    &format!("unknown message type `{name}`"),
                    related,
                    task_id,
                ),
                None => self.error(
                    codes::INVALID_MESSAGE,
                    "a task message is a JSON object with a string `type`",
                    related,
                    task_id,
                ),
            },
            Rejection::WrongDirection { message, .. } => self.error(
                codes::UNKNOWN_TYPE,
                &format!("`{message}` is sent by providers, not to them"),
                related,
                task_id,
            ),
            Rejection::Invalid { message, error, .. } => {
                let detail = match &**error {
                    DecodeError::Invalid { violations, .. } => violations
                        .iter()
                        .take(3)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                self.error(
                    codes::INVALID_MESSAGE,
                    &format!("invalid {message}: {detail}"),
                    related,
                    task_id,
                );
            }
        }
    }

    /// Checks a key (from `Authenticate` or inline in `AssignTask`); the
    /// client id it proves.
    fn key_proves(&self, key: &str, client_id: Option<&str>) -> Option<Option<String>> {
        self.shared
            .access
            .authenticate(&Credential::ApiKey { key, client_id })
            .ok()
            .map(|identity| identity.client_id)
    }

    fn ack(&self, acknowledgment_id: Option<&protocol::AcknowledgmentId>, task_id: Option<&str>) {
        if let Some(id) = acknowledgment_id {
            self.send(messages::ack(id, task_id));
        }
    }

    fn handle(&mut self, message: Message, related: Option<&str>) {
        if let Message::Authenticate(auth) = &message {
            let proven = self.key_proves(&auth.payload.api_key, Some(&auth.payload.client_id.0));
            if let Some(client_id) = proven {
                self.authenticated = true;
                self.client_id = client_id;
                self.ack(auth.acknowledgment_id.as_ref(), None);
            } else {
                self.authenticated = !self.shared.access.required();
                self.client_id = None;
                self.error(codes::UNAUTHORIZED, "invalid API key", related, None);
            }
            return;
        }
        if !self.authenticated {
            // Seed §7: a key inside AssignTask authenticates too.
            let proven = match &message {
                Message::AssignTask(assign) => assign.payload.api_key.as_deref().and_then(|key| {
                    let client_id = assign.payload.callback_client_id.as_ref();
                    self.key_proves(key, client_id.map(|id| id.0.as_str()))
                }),
                _ => None,
            };
            match proven {
                Some(client_id) => {
                    self.authenticated = true;
                    self.client_id = client_id;
                }
                None => {
                    let task_id = match &message {
                        Message::AssignTask(m) => Some(m.payload.task_id.0.as_str()),
                        Message::CancelTask(m) => Some(m.payload.task_id.0.as_str()),
                        Message::GetStatus(m) => Some(m.payload.task_id.0.as_str()),
                        Message::GetResult(m) => Some(m.payload.task_id.0.as_str()),
                        _ => None,
                    };
                    return self.error(
                        codes::UNAUTHORIZED,
                        "authenticate first: send Authenticate with a valid API key",
                        related,
                        task_id,
                    );
                }
            }
        }
        match message {
            Message::AssignTask(assign) => self.assign(assign, related),
            Message::CancelTask(cancel) => {
                let task_id = cancel.payload.task_id.0.as_str();
                self.ack(cancel.acknowledgment_id.as_ref(), Some(task_id));
                match self.shared.store.cancel(task_id, &self.requester()) {
                    Cancellation::Cancelled => {}
                    Cancellation::AlreadyFinished => self.error(
                        codes::TASK_ALREADY_FINISHED,
                        &format!("task {task_id} already ended"),
                        related,
                        Some(task_id),
                    ),
                    Cancellation::NotFound => self.not_found(task_id, related),
                }
            }
            Message::GetStatus(query) => {
                let task_id = query.payload.task_id.0.as_str();
                self.ack(query.acknowledgment_id.as_ref(), Some(task_id));
                if self.shared.store.lookup(task_id, false, &self.requester()) == Lookup::NotFound {
                    self.not_found(task_id, related);
                }
            }
            Message::GetResult(query) => {
                let task_id = query.payload.task_id.0.as_str();
                self.ack(query.acknowledgment_id.as_ref(), Some(task_id));
                match self.shared.store.lookup(task_id, true, &self.requester()) {
                    Lookup::Sent => {}
                    Lookup::NotReady => self.error(
                        codes::RESULT_NOT_READY,
                        &format!("task {task_id} has not ended yet"),
                        related,
                        Some(task_id),
                    ),
                    Lookup::NotFound => self.not_found(task_id, related),
                }
            }
            // Provider → client messages were refused before decoding, and
            // Authenticate was handled above.
            Message::Authenticate(_)
            | Message::Ack(_)
            | Message::TaskStatusUpdate(_)
            | Message::TaskResult(_)
            | Message::TaskFailed(_)
            | Message::Error(_) => {}
        }
    }

    fn not_found(&self, task_id: &str, related: Option<&str>) {
        self.error(
            codes::TASK_NOT_FOUND,
            &format!("no task {task_id} here"),
            related,
            Some(task_id),
        );
    }

    fn assign(&mut self, assign: protocol::AssignTask, related: Option<&str>) {
        let payload = assign.payload;
        let task_id = payload.task_id.0.as_str();
        let requester = self.requester();
        let store = &self.shared.store;
        if store.is_foreign(task_id, requester.owner) {
            return self.error(
                codes::INVALID_MESSAGE,
                &format!("taskId {task_id} belongs to another client"),
                related,
                Some(task_id),
            );
        }
        self.ack(assign.acknowledgment_id.as_ref(), Some(task_id));
        match store.attach_if_known(task_id, &requester) {
            Some(Admission::Foreign) => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                )
            }
            Some(_) => return,
            None => {}
        }
        let client_id = self
            .client_id
            .clone()
            .or_else(|| payload.callback_client_id.as_ref().map(|id| id.0.clone()));
        let service_name = payload.service_name.0.as_str();
        let operation = payload.operation.0.as_str();
        let parameters = payload.task_parameters.map(|p| p.0).unwrap_or_default();
        let refuse = |failure: TaskError| {
            if let Admission::Foreign =
                store.refuse(task_id, client_id.as_deref(), failure, &requester)
            {
                self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                );
            }
        };
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return refuse(TaskError::new(
                codes::SHUTTING_DOWN,
                "the provider is shutting down; assign the task elsewhere",
            ));
        }
        let Some(service) = self.shared.services.get(service_name) else {
            let mut offered: Vec<_> = self.shared.services.keys().map(String::as_str).collect();
            offered.sort_unstable();
            return refuse(TaskError::new(
                codes::UNKNOWN_OPERATION,
                format!(
                    "no service {service_name} here (offered: {})",
                    offered.join(", ")
                ),
            ));
        };
        if !self
            .shared
            .access
            .allows(client_id.as_deref(), service_name, operation)
        {
            return refuse(TaskError::new(
                codes::FORBIDDEN,
                format!(
                    "client {} may not run {service_name}/{operation}",
                    client_id.as_deref().unwrap_or("(anonymous)")
                ),
            ));
        }
        let Some(spec) = service.description().find(operation) else {
            let offered: Vec<_> = service
                .description()
                .operations
                .iter()
                .map(|op| op.name.as_str())
                .collect();
            return refuse(TaskError::new(
                codes::UNKNOWN_OPERATION,
                format!(
                    "{service_name} has no operation {operation} (offered: {})",
                    offered.join(", ")
                ),
            ));
        };
        let unadvertised = match spec.check(&parameters) {
            Ok(unadvertised) => unadvertised,
            Err(problem) => return refuse(TaskError::invalid_parameters(problem)),
        };
        // PROFILE.md: parameters not advertised are allowed but warned about.
        let note = (!unadvertised.is_empty()).then(|| {
            tracing::warn!(
                task_id,
                ?unadvertised,
                "task has parameters the operation does not advertise"
            );
            format!(
                "ignoring parameters {service_name}/{operation} does not advertise: {}",
                unadvertised.join(", ")
            )
        });
        let cancel = match store.admit(task_id, client_id.as_deref(), note, &requester) {
            Admission::Accepted(cancel) => cancel,
            Admission::Known => return,
            Admission::Foreign => {
                return self.error(
                    codes::INVALID_MESSAGE,
                    &format!("taskId {task_id} belongs to another client"),
                    related,
                    Some(task_id),
                )
            }
        };
        let task = Task {
            task_id: task_id.to_owned(),
            operation: operation.to_owned(),
            parameters,
            client_id,
        };
        self.shared.counters.runs.fetch_add(1, Ordering::Relaxed);
        start(Arc::clone(&self.shared), Arc::clone(service), task, cancel);
    }
}

#[cfg(test)]
mod tests {
    //! The message pipeline without a network: arbitrary text, and valid
    //! and schema-mutated client messages, go through one session; every
    //! reply must be a valid provider message and nothing may panic.

    use super::*;
    use crate::net::Limits;
    use crate::task::access::AccessPolicy;
    use crate::task::handler::{ServiceDescription, TaskContext, TaskHandler};
    use crate::task::runner::Counters;
    use crate::task::store::{Retention, TaskStore};
    use crate::task::{BoxFuture, Operation, TaskOutput};
    use proptest::prelude::*;
    use specwire_protocol::task::SCHEMA;
    use specwire_protocol::JsonProtocol;
    use std::time::Duration;
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;

    struct Noop(ServiceDescription);

    impl TaskHandler for Noop {
        fn description(&self) -> &ServiceDescription {
            &self.0
        }

        fn run(&self, _: Task, _: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
            Box::pin(async { Ok(TaskOutput::new()) })
        }
    }

    fn shared() -> Arc<Shared> {
        let service: Arc<dyn TaskHandler> = Arc::new(Noop(
            ServiceDescription::new("S", "1").operation(Operation::new("op")),
        ));
        let shutdown = CancellationToken::new();
        Arc::new(Shared {
            services: [("S".to_owned(), service)].into_iter().collect(),
            access: AccessPolicy::open(),
            limits: Limits::default(),
            store: TaskStore::new(
                Retention {
                    keep_for: Duration::from_secs(60),
                    max_finished: 100,
                },
                2,
                shutdown,
            ),
            slots: Arc::new(Semaphore::new(2)),
            cancel_grace: Duration::from_millis(10),
            counters: Counters::default(),
            shutting_down: Default::default(),
            dropped: Default::default(),
        })
    }

    /// Feeds `text` to a fresh session; returns the replies' types.
    fn replies(text: &str) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _context = runtime.enter();
        let shared = shared();
        let outbox = Outbox::new();
        let mut session = Session::new(shared, 1, outbox.clone());
        session.inbound = Inbound::new(
            &Limits {
                messages_per_second: None,
                ..Limits::default()
            },
            Direction::ClientToServer,
        );
        session.handle_text(text);
        let mut kinds = Vec::new();
        for reply in outbox.take() {
            let value: Value = serde_json::from_str(&reply).unwrap();
            let message = Message::decode_from(value, Some(Direction::ServerToClient))
                .unwrap_or_else(|error| panic!("invalid reply {reply}: {error}"));
            kinds.push(message.name().to_owned());
        }
        kinds
    }

    fn client_message(valid: bool) -> BoxedStrategy<Value> {
        let root: Value = serde_json::from_str(SCHEMA).unwrap();
        let names = [
            "Authenticate",
            "AssignTask",
            "CancelTask",
            "GetStatus",
            "GetResult",
        ];
        let strategies: Vec<BoxedStrategy<Value>> = names
            .iter()
            .map(|name| {
                if valid {
                    specwire_testkit::valid_value_for_def(&root, name).unwrap()
                } else {
                    specwire_testkit::invalid_value_for_def(&root, name)
                        .unwrap()
                        .prop_map(|(value, _)| value)
                        .boxed()
                }
            })
            .collect();
        proptest::strategy::Union::new(strategies).boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_gets_exactly_one_error(text in any::<String>()) {
            let kinds = replies(&text);
            // Arbitrary text is never a valid client message.
            prop_assert_eq!(kinds, vec!["Error".to_owned()]);
        }

        #[test]
        fn arbitrary_bytes_as_text_get_exactly_one_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            prop_assume!(serde_json::from_str::<Value>(&text).map_or(true, |v| !v.is_object()));
            prop_assert_eq!(replies(&text), vec!["Error".to_owned()]);
        }

        #[test]
        fn schema_breaking_messages_get_one_error(value in client_message(false)) {
            prop_assert_eq!(replies(&value.to_string()), vec!["Error".to_owned()]);
        }

        #[test]
        fn valid_messages_get_valid_replies(value in client_message(true)) {
            let kinds = replies(&value.to_string());
            let acknowledged = value.get("acknowledgmentId").is_some();
            if acknowledged {
                prop_assert_eq!(kinds.first().map(String::as_str), Some("Ack"), "{}", value);
            }
            match value["type"].as_str() {
                Some("Authenticate") => prop_assert_eq!(kinds.len(), usize::from(acknowledged)),
                // Unknown service (random names): TaskFailed, or Accepted for "S"/"op".
                Some("AssignTask") => prop_assert!(kinds.iter().any(|kind| kind == "TaskFailed" || kind == "TaskStatusUpdate"), "{:?}", kinds),
                // Nothing is known in a fresh provider.
                _ => prop_assert_eq!(kinds.last().map(String::as_str), Some("Error")),
            }
        }
    }
}
