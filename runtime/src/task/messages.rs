//! Builders for every task message the runtime sends, as JSON text.
//!
//! Each builder fills the generated `specwire_protocol::task` type, so the
//! structure is the schema's; ids and timestamps are fresh per message.
//! Tests check every built message against the schema.

use serde_json::Map;
use specwire_protocol::task::{
    Ack, AckPayload, AckType, AcknowledgmentId, AssignTask, AssignTaskPayload, AssignTaskType,
    Authenticate, AuthenticatePayload, AuthenticateType, CancelTask, CancelTaskPayload,
    CancelTaskType, ClientId, Error, ErrorCode, ErrorPayload, ErrorType, GetResult,
    GetResultPayload, GetResultType, GetStatus, GetStatusPayload, GetStatusType, Message,
    MessageId, Operation, ProgressPercentage, ServiceName, TaskFailed, TaskFailedPayload,
    TaskFailedPayloadStatus, TaskFailedType, TaskId, TaskParameters, TaskResult, TaskResultPayload,
    TaskResultPayloadStatus, TaskResultType, TaskStatusUpdate, TaskStatusUpdatePayload,
    TaskStatusUpdatePayloadStatus, TaskStatusUpdateType, Timestamp,
};

use specwire_protocol::JsonProtocol;

use super::handler::{TaskError, TaskOutput};
use crate::clock::{new_id, now_rfc3339};

fn message_id() -> MessageId {
    MessageId(new_id())
}

fn timestamp() -> Timestamp {
    Timestamp(now_rfc3339())
}

/// `Ack` for `acknowledgment_id`, naming the task when there is one.
pub fn ack(acknowledgment_id: &str, task_id: Option<&str>) -> String {
    Message::Ack(Ack {
        message_id: message_id(),
        timestamp: timestamp(),
        type_: AckType::Ack,
        payload: AckPayload {
            acknowledgment_id: AcknowledgmentId(acknowledgment_id.to_owned()),
            task_id: task_id.map(|id| TaskId(id.to_owned())),
        },
    })
    .encoded()
}

/// `Error` with `code` and `message`; `related` is the `messageId` it
/// answers, `task_id` the task it concerns.
pub fn error(code: &str, message: &str, related: Option<&str>, task_id: Option<&str>) -> String {
    Message::Error(Error {
        message_id: message_id(),
        timestamp: timestamp(),
        type_: ErrorType::Error,
        payload: ErrorPayload {
            error_code: ErrorCode(code.to_owned()),
            error_message: message.to_owned(),
            related_message_id: related.map(str::to_owned),
            task_id: task_id.map(|id| TaskId(id.to_owned())),
        },
    })
    .encoded()
}

/// The state of a task that has not ended, or how it ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    /// Accepted, not started yet (`Accepted`/`Queued`).
    Waiting(TaskStatusUpdatePayloadStatus),
    /// Running.
    Processing,
    /// Ended: `TaskResult`.
    Completed(TaskOutput),
    /// Ended: `TaskFailed`.
    Failed(TaskError),
    /// Ended: `TaskStatusUpdate` `Cancelled`.
    Cancelled,
}

impl TaskState {
    /// Whether this is a terminal state.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskState::Completed(_) | TaskState::Failed(_) | TaskState::Cancelled
        )
    }
}

/// What a provider knows about a task, enough to build the message that
/// reports its state.
#[derive(Clone, Debug)]
pub struct TaskReport<'a> {
    /// `taskId`.
    pub task_id: &'a str,
    /// The state.
    pub state: &'a TaskState,
    /// Last progress (0–100).
    pub progress: u8,
    /// Last progress note.
    pub note: Option<&'a str>,
    /// `originalClientId` to echo.
    pub client_id: Option<&'a str>,
}

/// The message reporting `report`: `TaskStatusUpdate` while the task runs
/// or after it was cancelled, `TaskResult` or `TaskFailed` after it ended.
pub fn report(report: &TaskReport<'_>) -> String {
    let client = report.client_id.map(|id| ClientId(id.to_owned()));
    let task_id = TaskId(report.task_id.to_owned());
    let status = match report.state {
        TaskState::Completed(output) => {
            return Message::TaskResult(TaskResult {
                message_id: message_id(),
                timestamp: timestamp(),
                type_: TaskResultType::TaskResult,
                payload: TaskResultPayload {
                    original_client_id: client,
                    result_data: output.clone(),
                    status: TaskResultPayloadStatus::Completed,
                    task_id,
                },
            })
            .encoded();
        }
        TaskState::Failed(failure) => {
            return Message::TaskFailed(TaskFailed {
                message_id: message_id(),
                timestamp: timestamp(),
                type_: TaskFailedType::TaskFailed,
                payload: TaskFailedPayload {
                    details: failure.details.clone(),
                    error_code: ErrorCode(failure.code.clone()),
                    error_message: failure.message.clone(),
                    original_client_id: client,
                    status: TaskFailedPayloadStatus::Failed,
                    task_id,
                },
            })
            .encoded();
        }
        TaskState::Waiting(status) => *status,
        TaskState::Processing => TaskStatusUpdatePayloadStatus::Processing,
        TaskState::Cancelled => TaskStatusUpdatePayloadStatus::Cancelled,
    };
    Message::TaskStatusUpdate(TaskStatusUpdate {
        message_id: message_id(),
        timestamp: timestamp(),
        type_: TaskStatusUpdateType::TaskStatusUpdate,
        payload: TaskStatusUpdatePayload {
            estimated_time_remaining_seconds: None,
            message: report.note.map(str::to_owned),
            original_client_id: client,
            progress_percentage: Some(ProgressPercentage(i64::from(report.progress))),
            status,
            task_id,
        },
    })
    .encoded()
}

/// A client message and its `messageId` (to match an `Error`'s
/// `relatedMessageId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// `messageId`.
    pub message_id: String,
    /// The JSON text.
    pub text: String,
}

fn built(message: Message) -> Built {
    let message_id = match &message {
        Message::Authenticate(m) => m.message_id.0.clone(),
        Message::AssignTask(m) => m.message_id.0.clone(),
        Message::CancelTask(m) => m.message_id.0.clone(),
        Message::GetStatus(m) => m.message_id.0.clone(),
        Message::GetResult(m) => m.message_id.0.clone(),
        Message::Ack(m) => m.message_id.0.clone(),
        Message::TaskStatusUpdate(m) => m.message_id.0.clone(),
        Message::TaskResult(m) => m.message_id.0.clone(),
        Message::TaskFailed(m) => m.message_id.0.clone(),
        Message::Error(m) => m.message_id.0.clone(),
    };
    Built {
        message_id,
        text: message.encoded(),
    }
}

/// Client side: `Authenticate`.
pub fn authenticate(api_key: &str, client_id: &str, acknowledgment_id: Option<&str>) -> Built {
    built(Message::Authenticate(Authenticate {
        acknowledgment_id: acknowledgment_id.map(|id| AcknowledgmentId(id.to_owned())),
        message_id: message_id(),
        timestamp: timestamp(),
        type_: AuthenticateType::Authenticate,
        payload: AuthenticatePayload {
            api_key: api_key.to_owned(),
            client_id: ClientId(client_id.to_owned()),
        },
    }))
}

/// What an `AssignTask` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// `taskId`: the same on every retry.
    pub task_id: String,
    /// `serviceName`.
    pub service: String,
    /// `operation`.
    pub operation: String,
    /// `taskParameters`.
    pub parameters: Map<String, serde_json::Value>,
    /// `callbackClientId`.
    pub client_id: Option<String>,
}

/// Client side: `AssignTask`.
pub fn assign(assignment: &Assignment, acknowledgment_id: Option<&str>) -> Built {
    built(Message::AssignTask(AssignTask {
        acknowledgment_id: acknowledgment_id.map(|id| AcknowledgmentId(id.to_owned())),
        message_id: message_id(),
        timestamp: timestamp(),
        type_: AssignTaskType::AssignTask,
        payload: AssignTaskPayload {
            api_key: None,
            callback_client_id: assignment.client_id.clone().map(ClientId),
            operation: Operation(assignment.operation.clone()),
            service_name: ServiceName(assignment.service.clone()),
            task_id: TaskId(assignment.task_id.clone()),
            task_parameters: Some(TaskParameters(assignment.parameters.clone())),
        },
    }))
}

/// Client side: `CancelTask`.
pub fn cancel(task_id: &str, client_id: Option<&str>, acknowledgment_id: Option<&str>) -> Built {
    built(Message::CancelTask(CancelTask {
        acknowledgment_id: acknowledgment_id.map(|id| AcknowledgmentId(id.to_owned())),
        message_id: message_id(),
        timestamp: timestamp(),
        type_: CancelTaskType::CancelTask,
        payload: CancelTaskPayload {
            original_client_id: client_id.map(|id| ClientId(id.to_owned())),
            task_id: TaskId(task_id.to_owned()),
        },
    }))
}

/// Client side: `GetStatus`.
pub fn get_status(task_id: &str) -> Built {
    built(Message::GetStatus(GetStatus {
        acknowledgment_id: None,
        message_id: message_id(),
        timestamp: timestamp(),
        type_: GetStatusType::GetStatus,
        payload: GetStatusPayload {
            task_id: TaskId(task_id.to_owned()),
        },
    }))
}

/// Client side: `GetResult`.
pub fn get_result(task_id: &str) -> Built {
    built(Message::GetResult(GetResult {
        acknowledgment_id: None,
        message_id: message_id(),
        timestamp: timestamp(),
        type_: GetResultType::GetResult,
        payload: GetResultPayload {
            task_id: TaskId(task_id.to_owned()),
        },
    }))
}

/// The JSON text of a message this module built.
trait Encoded {
    fn encoded(&self) -> String;
}

impl Encoded for Message {
    fn encoded(&self) -> String {
        // The generated types are plain data with string keys, which
        // serde_json always serializes; a failure would be a codegen bug.
        self.to_json()
            .expect("generated task messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid(text: &str) -> &'static str {
        let message =
            Message::from_slice(text.as_bytes()).unwrap_or_else(|error| panic!("{text}: {error}"));
        message.name()
    }

    #[test]
    fn every_built_message_validates() {
        let failure = TaskError::new("FILE_NOT_FOUND", "Input file not found.")
            .with_details("Could not locate 'x'.");
        let mut output = TaskOutput::new();
        output.insert("outputImagePath".into(), json!("/tmp/x.png"));
        let states = [
            TaskState::Waiting(TaskStatusUpdatePayloadStatus::Accepted),
            TaskState::Waiting(TaskStatusUpdatePayloadStatus::Queued),
            TaskState::Processing,
            TaskState::Completed(output),
            TaskState::Completed(TaskOutput::new()),
            TaskState::Failed(failure),
            TaskState::Cancelled,
        ];
        let names: Vec<_> = states
            .iter()
            .map(|state| {
                valid(&report(&TaskReport {
                    task_id: "t-1",
                    state,
                    progress: 40,
                    note: Some("working"),
                    client_id: Some("c-1"),
                }))
            })
            .collect();
        assert_eq!(
            names,
            [
                "TaskStatusUpdate",
                "TaskStatusUpdate",
                "TaskStatusUpdate",
                "TaskResult",
                "TaskResult",
                "TaskFailed",
                "TaskStatusUpdate"
            ]
        );
        assert_eq!(valid(&ack("a-1", Some("t-1"))), "Ack");
        assert_eq!(valid(&ack("a-1", None)), "Ack");
        assert_eq!(
            valid(&error(
                "TASK_NOT_FOUND",
                "no task t-9",
                Some("m-1"),
                Some("t-9")
            )),
            "Error"
        );
        assert_eq!(
            valid(&authenticate("k", "c-1", Some("a")).text),
            "Authenticate"
        );
        let assignment = Assignment {
            task_id: "t-1".into(),
            service: "S".into(),
            operation: "op".into(),
            parameters: Map::new(),
            client_id: Some("c-1".into()),
        };
        let built = assign(&assignment, Some("a-2"));
        assert!(built.text.contains(&built.message_id));
        assert_eq!(valid(&built.text), "AssignTask");
        assert_eq!(valid(&cancel("t-1", Some("c-1"), None).text), "CancelTask");
        assert_eq!(valid(&get_status("t-1").text), "GetStatus");
        assert_eq!(valid(&get_result("t-1").text), "GetResult");
    }
}
