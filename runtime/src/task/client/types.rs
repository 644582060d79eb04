//! What a [`TaskClient`](super::TaskClient) is configured with and what it
//! reports: its configuration, its errors, task events and outcomes.

use std::path::PathBuf;
use std::time::Duration;

use specwire_protocol::task::TaskStatusUpdatePayloadStatus;
use tokio::sync::{mpsc, oneshot};

use super::super::handler::{TaskError, TaskOutput};
use super::super::messages::Assignment;
use crate::clock::new_id;
use crate::net::Backoff;

/// How a client connects and retries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub endpoint: String,
    /// `clientId` for `Authenticate` and `callbackClientId`.
    pub client_id: String,
    /// Sent in `Authenticate` first thing on every connection.
    pub api_key: Option<String>,
    /// Extra CA certificates (PEM) to trust for `wss://`.
    pub extra_roots: Vec<PathBuf>,
    /// Connection and handshake time limit per attempt.
    pub connect_timeout: Duration,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// Consecutive failed connection attempts before open tasks fail with
    /// [`ClientError::Unavailable`].
    pub connect_attempts: u32,
    /// How long to wait for an `Ack` before re-sending.
    pub ack_timeout: Duration,
    /// How many times an `AssignTask` is sent before giving up.
    pub assign_attempts: u32,
    /// A task not heard about for this long gets a `GetStatus`.
    pub poll_interval: Duration,
    /// A connection silent this long gets a ping; silent twice as long, it
    /// is considered dead and replaced.
    pub keepalive: Duration,
}

impl ClientConfig {
    /// Defaults for `endpoint`: a new client id, no key, 8 connection
    /// attempts, 2 s ack timeout, 5 sends, 5 s polls.
    pub fn new(endpoint: impl Into<String>) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            client_id: new_id(),
            api_key: None,
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            connect_attempts: 8,
            ack_timeout: Duration::from_secs(2),
            assign_attempts: 5,
            poll_interval: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Why a client or a task could not go on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a `ws://` or `wss://` URL, or TLS setup failed.
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached after every attempt.
    #[error("provider {endpoint} unavailable after {attempts} attempts: {last_error}")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// Connection attempts made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// The provider refused the API key.
    #[error("provider refused authentication: {0}")]
    Unauthorized(String),
    /// The provider never acknowledged the task.
    #[error("task {task_id} was not acknowledged after {attempts} sends")]
    NotAcknowledged {
        /// The task.
        task_id: String,
        /// Sends made.
        attempts: u32,
    },
    /// The provider answered the task with an `Error`.
    #[error("provider refused task {task_id}: {code}: {message}")]
    Refused {
        /// The task.
        task_id: String,
        /// `errorCode`.
        code: String,
        /// `errorMessage`.
        message: String,
    },
    /// After a reconnect the provider no longer knew the task (restarted).
    #[error("provider lost task {task_id} (it answered TASK_NOT_FOUND after a reconnect)")]
    Lost {
        /// The task.
        task_id: String,
    },
    /// The client was closed before the task ended.
    #[error("the client was closed")]
    Closed,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutcome {
    /// `TaskResult`: its `resultData`.
    Completed(TaskOutput),
    /// `TaskFailed`.
    Failed(TaskError),
    /// `TaskStatusUpdate` `Cancelled`, with the last progress.
    Cancelled {
        /// Progress when it was cancelled.
        progress: u8,
    },
}

/// A non-terminal `TaskStatusUpdate`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// `Accepted`, `Queued` or `Processing`.
    pub status: TaskStatusUpdatePayloadStatus,
    /// 0–100, never lower than an earlier update's.
    pub progress: u8,
    /// The provider's note.
    pub message: Option<String>,
    /// `estimatedTimeRemainingSeconds`.
    pub remaining_seconds: Option<f64>,
}

/// What happens to a task.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// Progress; any number of these.
    Progress(StatusUpdate),
    /// The end; always the last event.
    Finished(Result<TaskOutcome, ClientError>),
}

pub(super) enum Command {
    Assign {
        assignment: Assignment,
        events: mpsc::UnboundedSender<TaskEvent>,
        accepted: oneshot::Sender<Result<(), ClientError>>,
    },
    Cancel {
        task_id: String,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}
