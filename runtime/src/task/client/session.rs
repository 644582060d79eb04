//! The background task behind a [`TaskClient`](super::TaskClient): one
//! connection at a time, acks and re-sends, polls, reconnects with
//! [`net::retry`](crate::net::retry) and recovery by `GetStatus`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use specwire_protocol::task::{Message, TaskStatusUpdatePayloadStatus};
use specwire_protocol::{Direction, JsonProtocol};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::super::handler::{codes, TaskError};
use super::super::messages::{self, Assignment};
use super::types::{ClientConfig, ClientError, Command, StatusUpdate, TaskEvent, TaskOutcome};
use crate::clock::new_id;
use crate::net::{self, Attempt, Connector, RetryError, WsStream};

struct OpenTask {
    assignment: Assignment,
    acknowledgment_id: String,
    acknowledged: bool,
    sends: u32,
    /// When to re-send (unacknowledged) or poll (acknowledged).
    due: Instant,
    progress: u8,
    events: mpsc::UnboundedSender<TaskEvent>,
    accepted: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// Whether a `GetStatus` after a reconnect is outstanding: a
    /// `TASK_NOT_FOUND` then means the provider lost the task.
    recovering: bool,
    /// The caller asked to cancel: sent again after a reconnect, since the
    /// first `CancelTask` may have been lost with the connection.
    cancel_requested: bool,
}

pub(super) struct Session {
    config: ClientConfig,
    pub(super) client_id: String,
    connector: Connector,
    ws: Option<WsStream>,
    tasks: HashMap<String, OpenTask>,
    by_ack: HashMap<String, String>,
    /// `messageId` → `taskId` of messages sent, for `relatedMessageId`.
    by_message: HashMap<String, String>,
    /// Set when going on is pointless (bad API key).
    fatal: Option<ClientError>,
}

impl Session {
    pub(super) fn new(config: ClientConfig, connector: Connector) -> Session {
        Session {
            client_id: config.client_id.clone(),
            config,
            connector,
            ws: None,
            tasks: HashMap::new(),
            by_ack: HashMap::new(),
            by_message: HashMap::new(),
            fatal: None,
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut idle_deadline = Instant::now() + self.config.keepalive;
        let mut pinged = false;
        let mut commands_open = true;
        loop {
            if !commands_open && self.tasks.is_empty() {
                self.close_socket().await;
                return;
            }
            if self.ws.is_none() && (!self.tasks.is_empty() || !commands_open) {
                if let Err(error) = self.reconnect().await {
                    self.fail_all(error);
                    continue;
                }
                idle_deadline = Instant::now() + self.config.keepalive;
                pinged = false;
            }
            let next_due = self
                .tasks
                .values()
                .map(|task| task.due)
                .min()
                .unwrap_or(idle_deadline)
                .min(idle_deadline);
            let frame = async {
                match self.ws.as_mut() {
                    Some(ws) => ws.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv(), if commands_open => match command {
                    Some(Command::Close { done }) => {
                        self.close_socket().await;
                        self.fail_all(ClientError::Closed);
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.command(command).await,
                    None => commands_open = false,
                },
                frame = frame => match frame {
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + self.config.keepalive;
                        pinged = false;
                        if let Frame::Text(text) = frame {
                            self.receive(text.as_str());
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "connection to provider failed");
                        self.ws = None;
                    }
                    None => self.ws = None,
                },
                () = tokio::time::sleep_until(next_due) => {
                    let now = Instant::now();
                    if now >= idle_deadline {
                        if pinged {
                            tracing::debug!("provider silent; reconnecting");
                            self.ws = None;
                        } else if let Some(ws) = self.ws.as_mut() {
                            pinged = true;
                            if ws.send(Frame::Ping(Vec::new().into())).await.is_err() {
                                self.ws = None;
                            }
                        }
                        idle_deadline = now + self.config.keepalive;
                    }
                    self.tick(now).await;
                }
            }
        }
    }

    async fn close_socket(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "client closing".into(),
            };
            let closing = async {
                ws.close(Some(frame)).await.ok()?;
                while let Some(Ok(_)) = ws.next().await {}
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
        }
    }

    /// Connects and authenticates, retrying with backoff; then re-sends
    /// unacknowledged tasks and asks about acknowledged ones.
    pub(super) async fn reconnect(&mut self) -> Result<(), ClientError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        let this = &*self;
        let connected = net::retry(
            &self.config.backoff,
            self.config.connect_attempts,
            |attempt| async move {
                this.connect_once().await.map_err(|error| match error {
                    ClientError::Unauthorized(_) => Attempt::Fatal(error),
                    error => {
                        tracing::debug!(attempt, %error, "connection attempt failed");
                        Attempt::Retry(error)
                    }
                })
            },
        )
        .await;
        match connected {
            Ok(ws) => {
                self.ws = Some(ws);
                self.resume().await;
                Ok(())
            }
            Err(RetryError::Fatal(error)) => {
                self.fatal = Some(error.clone());
                Err(error)
            }
            Err(RetryError::Exhausted { attempts, last }) => Err(ClientError::Unavailable {
                endpoint: self.config.endpoint.clone(),
                attempts,
                last_error: last.to_string(),
            }),
        }
    }

    async fn connect_once(&self) -> Result<WsStream, ClientError> {
        let (mut ws, _) = self
            .connector
            .connect()
            .await
            .map_err(|error| ClientError::Config(error.to_string()))?;
        if let Some(key) = &self.config.api_key {
            let acknowledgment_id = new_id();
            let message = messages::authenticate(key, &self.client_id, Some(&acknowledgment_id));
            ws.send(Frame::text(message.text))
                .await
                .map_err(|error| ClientError::Config(error.to_string()))?;
            let answer = async {
                while let Some(frame) = ws.next().await {
                    let Ok(Frame::Text(text)) = frame else {
                        continue;
                    };
                    match Message::from_slice(text.as_bytes()) {
                        Ok(Message::Ack(ack))
                            if ack.payload.acknowledgment_id.0 == acknowledgment_id =>
                        {
                            return Ok(());
                        }
                        Ok(Message::Error(error)) => {
                            return Err(ClientError::Unauthorized(format!(
                                "{}: {}",
                                error.payload.error_code.0, error.payload.error_message
                            )));
                        }
                        _ => {}
                    }
                }
                Err(ClientError::Config(
                    "connection closed during authentication".into(),
                ))
            };
            tokio::time::timeout(self.config.connect_timeout, answer)
                .await
                .map_err(|_| ClientError::Config("no answer to Authenticate".into()))??;
        }
        Ok(ws)
    }

    /// After a (re)connect: unacknowledged tasks are sent again, the others
    /// are asked about.
    async fn resume(&mut self) {
        let now = Instant::now();
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for task_id in ids {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if task.acknowledged {
                task.recovering = true;
                task.due = now + self.config.poll_interval;
                let cancel = task.cancel_requested;
                let message = messages::get_status(&task_id);
                self.send(&task_id, message).await;
                if cancel {
                    let message = messages::cancel(&task_id, Some(&self.client_id), None);
                    self.send(&task_id, message).await;
                }
            } else {
                self.send_assign(&task_id, now).await;
            }
        }
    }

    async fn send(&mut self, task_id: &str, message: messages::Built) {
        self.by_message
            .insert(message.message_id, task_id.to_owned());
        if let Some(ws) = self.ws.as_mut() {
            if let Err(error) = ws.send(Frame::text(message.text)).await {
                tracing::debug!(%error, "send failed; reconnecting");
                self.ws = None;
            }
        }
    }

    async fn send_assign(&mut self, task_id: &str, now: Instant) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.sends >= self.config.assign_attempts.max(1) {
            let attempts = task.sends;
            return self.finish(
                task_id,
                Err(ClientError::NotAcknowledged {
                    task_id: task_id.to_owned(),
                    attempts,
                }),
            );
        }
        task.sends += 1;
        task.due = now + self.config.ack_timeout;
        let message = messages::assign(&task.assignment, Some(&task.acknowledgment_id));
        self.send(task_id, message).await;
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Assign {
                assignment,
                events,
                accepted,
            } => {
                if let Some(error) = &self.fatal {
                    let _ = accepted.send(Err(error.clone()));
                    return;
                }
                let task_id = assignment.task_id.clone();
                let acknowledgment_id = new_id();
                self.by_ack
                    .insert(acknowledgment_id.clone(), task_id.clone());
                self.tasks.insert(
                    task_id.clone(),
                    OpenTask {
                        assignment,
                        acknowledgment_id,
                        acknowledged: false,
                        sends: 0,
                        due: Instant::now(),
                        progress: 0,
                        events,
                        accepted: Some(accepted),
                        recovering: false,
                        cancel_requested: false,
                    },
                );
                if self.ws.is_some() {
                    self.send_assign(&task_id, Instant::now()).await;
                }
            }
            Command::Cancel { task_id } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.cancel_requested = true;
                    let message = messages::cancel(&task_id, Some(&self.client_id), None);
                    self.send(&task_id, message).await;
                }
            }
            Command::Close { .. } => {}
        }
    }

    /// Timers: re-send unacknowledged tasks, poll quiet ones.
    async fn tick(&mut self, now: Instant) {
        let due: Vec<(String, bool)> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.due <= now)
            .map(|(id, task)| (id.clone(), task.acknowledged))
            .collect();
        for (task_id, acknowledged) in due {
            if self.ws.is_none() {
                return;
            }
            if acknowledged {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.due = now + self.config.poll_interval;
                }
                let message = messages::get_status(&task_id);
                self.send(&task_id, message).await;
            } else {
                self.send_assign(&task_id, now).await;
            }
        }
    }

    fn acknowledge(&mut self, task_id: &str) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            if !task.acknowledged {
                task.acknowledged = true;
                task.due = Instant::now() + self.config.poll_interval;
            }
            if let Some(accepted) = task.accepted.take() {
                let _ = accepted.send(Ok(()));
            }
        }
    }

    /// Something was heard about the task: it is alive, poll later.
    fn heard(&mut self, task_id: &str) {
        self.acknowledge(task_id);
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.recovering = false;
            task.due = Instant::now() + self.config.poll_interval;
        }
    }

    fn receive(&mut self, text: &str) {
        let message = match serde_json::from_str::<Value>(text)
            .map_err(specwire_protocol::DecodeError::NotJson)
            .and_then(|value| Message::decode_from(value, Some(Direction::ServerToClient)))
        {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "provider sent a message that breaks the schema; ignored");
                return;
            }
        };
        match message {
            Message::Ack(ack) => {
                let task_id = ack
                    .payload
                    .task_id
                    .map(|id| id.0)
                    .or_else(|| self.by_ack.get(&ack.payload.acknowledgment_id.0).cloned());
                if let Some(task_id) = task_id {
                    self.acknowledge(&task_id);
                }
            }
            Message::TaskStatusUpdate(update) => {
                let task_id = update.payload.task_id.0.as_str();
                let progress = update
                    .payload
                    .progress_percentage
                    .map_or(0, |p| u8::try_from(p.0.clamp(0, 100)).unwrap_or(100));
                if update.payload.status == TaskStatusUpdatePayloadStatus::Cancelled {
                    return self.finish(task_id, Ok(TaskOutcome::Cancelled { progress }));
                }
                self.heard(task_id);
                if let Some(task) = self.tasks.get_mut(task_id) {
                    // Repeated states (after GetStatus polls) are not news.
                    if progress < task.progress {
                        return;
                    }
                    task.progress = progress;
                    let _ = task.events.send(TaskEvent::Progress(StatusUpdate {
                        status: update.payload.status,
                        progress,
                        message: update.payload.message,
                        remaining_seconds: update.payload.estimated_time_remaining_seconds,
                    }));
                }
            }
            Message::TaskResult(result) => {
                let task_id = result.payload.task_id.0;
                self.finish(
                    &task_id,
                    Ok(TaskOutcome::Completed(result.payload.result_data)),
                );
            }
            Message::TaskFailed(failed) => {
                let payload = failed.payload;
                let failure = TaskError {
                    code: payload.error_code.0,
                    message: payload.error_message,
                    details: payload.details,
                };
                self.finish(&payload.task_id.0, Ok(TaskOutcome::Failed(failure)));
            }
            Message::Error(error) => self.error(error.payload),
            _ => {}
        }
    }

    fn error(&mut self, payload: specwire_protocol::task::ErrorPayload) {
        let task_id = payload.task_id.map(|id| id.0).or_else(|| {
            payload
                .related_message_id
                .as_ref()
                .and_then(|id| self.by_message.get(id).cloned())
        });
        let code = payload.error_code.0;
        let Some(task_id) = task_id else {
            tracing::warn!(%code, message = %payload.error_message, "provider error");
            if code == codes::UNAUTHORIZED {
                let error = ClientError::Unauthorized(payload.error_message);
                self.fatal = Some(error.clone());
                self.fail_all(error);
            }
            return;
        };
        let Some(task) = self.tasks.get(&task_id) else {
            return;
        };
        match code.as_str() {
            // Still running: keep waiting (and polling).
            codes::RESULT_NOT_READY | codes::TASK_ALREADY_FINISHED => self.heard(&task_id),
            // Re-sent on the next ack timeout.
            codes::RATE_LIMITED => {}
            codes::TASK_NOT_FOUND if task.acknowledged => {
                if task.recovering || task.acknowledged {
                    self.finish(
                        &task_id,
                        Err(ClientError::Lost {
                            task_id: task_id.clone(),
                        }),
                    );
                }
            }
            _ => self.finish(
                &task_id,
                Err(ClientError::Refused {
                    task_id: task_id.clone(),
                    code,
                    message: payload.error_message,
                }),
            ),
        }
    }

    fn finish(&mut self, task_id: &str, outcome: Result<TaskOutcome, ClientError>) {
        let Some(mut task) = self.tasks.remove(task_id) else {
            return;
        };
        self.by_ack.remove(&task.acknowledgment_id);
        self.by_message.retain(|_, id| id != task_id);
        match task.accepted.take() {
            // Refused before it was acknowledged: `assign` returns the error.
            Some(accepted) if outcome.is_err() => {
                let _ = accepted.send(outcome.clone().map(|_| ()));
            }
            Some(accepted) => {
                let _ = accepted.send(Ok(()));
            }
            None => {}
        }
        let _ = task.events.send(TaskEvent::Finished(outcome));
    }

    fn fail_all(&mut self, error: ClientError) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for task_id in ids {
            self.finish(&task_id, Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    fn session_with_task() -> (Session, mpsc::UnboundedReceiver<TaskEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let config = ClientConfig::new("ws://127.0.0.1:9");
        let connector = Connector::new(&config.endpoint, &[], config.connect_timeout).unwrap();
        let mut session = Session::new(
            ClientConfig {
                client_id: "c".into(),
                ..config
            },
            connector,
        );
        session.tasks.insert(
            "t".into(),
            OpenTask {
                assignment: Assignment {
                    task_id: "t".into(),
                    service: "S".into(),
                    operation: "op".into(),
                    parameters: Map::new(),
                    client_id: None,
                },
                acknowledgment_id: "a".into(),
                acknowledged: true,
                sends: 1,
                due: Instant::now(),
                progress: 0,
                events,
                accepted: None,
                recovering: false,
                cancel_requested: false,
            },
        );
        (session, receiver)
    }

    fn provider_message() -> BoxedStrategy<Value> {
        let root: Value = serde_json::from_str(specwire_protocol::task::SCHEMA).unwrap();
        let names = [
            "Ack",
            "TaskStatusUpdate",
            "TaskResult",
            "TaskFailed",
            "Error",
        ];
        let strategies: Vec<BoxedStrategy<Value>> = names
            .iter()
            .map(|name| {
                specwire_testkit::valid_value_for_def(&root, name)
                    .unwrap()
                    .prop_map(|mut value| {
                        // Half of them about the open task.
                        if let Some(task_id) = value.pointer_mut("/payload/taskId") {
                            if fastrand::bool() {
                                *task_id = Value::from("t");
                            }
                        }
                        value
                    })
                    .boxed()
            })
            .collect();
        proptest::strategy::Union::new(strategies).boxed()
    }

    proptest! {
        #[test]
        fn arbitrary_provider_text_never_panics(text in any::<String>()) {
            let (mut session, _events) = session_with_task();
            session.receive(&text);
            prop_assert!(session.tasks.contains_key("t"));
        }

        #[test]
        fn provider_messages_keep_the_event_stream_well_formed(values in proptest::collection::vec(provider_message(), 1..8)) {
            let (mut session, mut events) = session_with_task();
            for value in &values {
                session.receive(&value.to_string());
            }
            let mut seen = Vec::new();
            while let Ok(event) = events.try_recv() {
                seen.push(event);
            }
            // At most one Finished, always last, and progress never goes down.
            let finished = seen.iter().filter(|e| matches!(e, TaskEvent::Finished(_))).count();
            prop_assert!(finished <= 1);
            if finished == 1 {
                prop_assert!(matches!(seen.last(), Some(TaskEvent::Finished(_))));
                prop_assert!(!session.tasks.contains_key("t"));
            }
            let progress: Vec<u8> = seen
                .iter()
                .filter_map(|e| match e { TaskEvent::Progress(update) => Some(update.progress), _ => None })
                .collect();
            prop_assert!(progress.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", progress);
        }
    }
}
