//! The task client: assigns tasks to one provider and follows them to
//! their end, through dropped connections.
//!
//! A [`TaskClient`] owns one connection, run by a background session task:
//! it connects with exponential backoff and jitter, authenticates, and
//! sends every `AssignTask` with an `acknowledgmentId`, re-sending the same
//! `taskId` until it is acknowledged (at-least-once delivery; the
//! provider's idempotency makes it one run). After a dropped connection it
//! reconnects and asks for each open task's state with `GetStatus`, then
//! keeps polling tasks it has not heard about for a while. Every task
//! ends in an outcome or a [`ClientError`]: the session never leaves a
//! caller waiting forever.
//!
//! ```no_run
//! # async fn run() -> Result<(), specwire_runtime::task::ClientError> {
//! use specwire_runtime::task::{ClientConfig, TaskClient, TaskEvent};
//!
//! let client = TaskClient::connect(ClientConfig::new("ws://127.0.0.1:8080")).await?;
//! let mut task = client
//!     .assign("DiagnosticsService", "sleep", serde_json::json!({"durationMs": 500}))
//!     .await?;
//! while let Some(event) = task.next().await {
//!     match event {
//!         TaskEvent::Progress(update) => println!("{}%", update.progress),
//!         TaskEvent::Finished(outcome) => println!("{outcome:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```

mod session;
mod types;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::messages::Assignment;
use crate::clock::new_id;
use crate::net::Connector;
use session::Session;
use types::Command;
pub use types::{ClientConfig, ClientError, StatusUpdate, TaskEvent, TaskOutcome};

/// A connection to one provider. Cheap to share behind an `Arc`; every
/// method may be called concurrently.
pub struct TaskClient {
    commands: mpsc::UnboundedSender<Command>,
    client_id: String,
}

/// One assigned task: its events, and a way to cancel it.
pub struct TaskHandle {
    task_id: String,
    events: mpsc::UnboundedReceiver<TaskEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl TaskHandle {
    /// The `taskId`.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The next event; `None` after [`TaskEvent::Finished`].
    pub async fn next(&mut self) -> Option<TaskEvent> {
        self.events.recv().await
    }

    /// Asks the provider to cancel the task; its end still arrives as an
    /// event (`Cancelled`, or the outcome it reached first).
    pub fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel {
            task_id: self.task_id.clone(),
        });
    }

    /// Waits for the end, skipping progress.
    pub async fn outcome(mut self) -> Result<TaskOutcome, ClientError> {
        while let Some(event) = self.events.recv().await {
            if let TaskEvent::Finished(outcome) = event {
                return outcome;
            }
        }
        Err(ClientError::Closed)
    }
}

impl TaskClient {
    /// Connects (with retries) and authenticates; fails when the provider
    /// stays unreachable or refuses the key.
    pub async fn connect(config: ClientConfig) -> Result<TaskClient, ClientError> {
        let connector = Connector::new(
            config.endpoint.as_str(),
            &config.extra_roots,
            config.connect_timeout,
        )
        .map_err(|error| ClientError::Config(error.to_string()))?;
        let mut session = Session::new(config, connector);
        session.reconnect().await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let client_id = session.client_id.clone();
        tokio::spawn(session.run(receiver));
        Ok(TaskClient {
            commands,
            client_id,
        })
    }

    /// The `clientId` this client uses.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Assigns a task with a fresh `taskId`; returns once the provider
    /// acknowledged it (or answered about it).
    pub async fn assign(
        &self,
        service: &str,
        operation: &str,
        parameters: Value,
    ) -> Result<TaskHandle, ClientError> {
        self.assign_with_id(&new_id(), service, operation, parameters)
            .await
    }

    /// As [`assign`](Self::assign) with the caller's `taskId` (re-using one
    /// is how a caller resumes a task after a restart).
    pub async fn assign_with_id(
        &self,
        task_id: &str,
        service: &str,
        operation: &str,
        parameters: Value,
    ) -> Result<TaskHandle, ClientError> {
        let parameters = match parameters {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ClientError::Config(format!(
                    "task parameters must be a JSON object, not {}",
                    super::handler::json_type(&other)
                )))
            }
        };
        let (events, receiver) = mpsc::unbounded_channel();
        let (accepted, accepted_rx) = oneshot::channel();
        let assignment = Assignment {
            task_id: task_id.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            parameters,
            client_id: Some(self.client_id.clone()),
        };
        self.commands
            .send(Command::Assign {
                assignment,
                events,
                accepted,
            })
            .map_err(|_| ClientError::Closed)?;
        accepted_rx.await.map_err(|_| ClientError::Closed)??;
        Ok(TaskHandle {
            task_id: task_id.to_owned(),
            events: receiver,
            commands: self.commands.clone(),
        })
    }

    /// Closes the connection with the close handshake. Tasks still open
    /// end with [`ClientError::Closed`].
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Close { done }).is_ok() {
            let _ = wait.await;
        }
    }
}
