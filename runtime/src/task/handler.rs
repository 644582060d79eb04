//! What a service implements: [`TaskHandler`], and the description of its
//! operations that the runtime checks parameters against and advertises.
//!
//! The runtime owns the protocol (envelopes, acks, idempotency, status and
//! result queries, cancellation, auth, limits); a handler only runs one task
//! and reports progress. A minimal handler:
//!
//! ```
//! use specwire_runtime::task::{
//!     BoxFuture, Operation, Parameter, ParamType, ServiceDescription, Task, TaskContext,
//!     TaskError, TaskHandler, TaskOutput,
//! };
//!
//! struct Echo(ServiceDescription);
//!
//! impl TaskHandler for Echo {
//!     fn description(&self) -> &ServiceDescription {
//!         &self.0
//!     }
//!
//!     fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
//!         Box::pin(async move {
//!             context.progress(50, "echoing");
//!             let mut output = TaskOutput::new();
//!             output.insert("echo".into(), task.parameters["text"].clone());
//!             Ok(output)
//!         })
//!     }
//! }
//!
//! let echo = Echo(ServiceDescription::new("EchoService", "1.0.0").operation(
//!     Operation::new("echo").parameter(Parameter::required("text", ParamType::String)),
//! ));
//! assert_eq!(echo.description().operations[0].name, "echo");
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A boxed, sendable future: what [`TaskHandler::run`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A completed task's `resultData`.
pub type TaskOutput = Map<String, Value>;

/// The JSON type of a parameter, as advertised in a capability's
/// `settings` (`{"<type>": "<name>"}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A JSON number without a fractional part.
    Int,
    /// Any JSON number.
    Float,
    /// `true` or `false`.
    Bool,
}

impl ParamType {
    /// The settings key (`string`, `int`, `float`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
        }
    }

    /// The type called `name` in a settings entry.
    pub fn from_name(name: &str) -> Option<ParamType> {
        match name {
            "string" => Some(ParamType::String),
            "int" => Some(ParamType::Int),
            "float" => Some(ParamType::Float),
            "bool" => Some(ParamType::Bool),
            _ => None,
        }
    }

    /// Whether `value` has this type. An `int` accepts `3` and `3.0`
    /// (JSON does not tell them apart), not `3.5`.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Bool => value.is_boolean(),
            ParamType::Float => value.is_number(),
            ParamType::Int => {
                value.is_i64()
                    || value.is_u64()
                    || value
                        .as_f64()
                        .is_some_and(|number| number.fract() == 0.0 && number.is_finite())
            }
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One parameter of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// The `taskParameters` key.
    pub name: String,
    /// Its JSON type.
    pub kind: ParamType,
    /// Whether an `AssignTask` without it fails with `INVALID_PARAMETERS`.
    /// (Advertisements do not carry this; it is the provider's own rule.)
    pub required: bool,
}

impl Parameter {
    /// A parameter every task of the operation must give.
    pub fn required(name: impl Into<String>, kind: ParamType) -> Parameter {
        Parameter {
            name: name.into(),
            kind,
            required: true,
        }
    }

    /// A parameter a task may leave out.
    pub fn optional(name: impl Into<String>, kind: ParamType) -> Parameter {
        Parameter {
            name: name.into(),
            kind,
            required: false,
        }
    }
}

/// One operation of a service: its name (the capability `key`) and
/// parameters (the capability `settings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The `operation` of an `AssignTask`.
    pub name: String,
    /// What a task may pass, in advertisement order.
    pub parameters: Vec<Parameter>,
}

impl Operation {
    /// An operation without parameters.
    pub fn new(name: impl Into<String>) -> Operation {
        Operation {
            name: name.into(),
            parameters: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub fn parameter(mut self, parameter: Parameter) -> Operation {
        self.parameters.push(parameter);
        self
    }

    /// Checks `parameters` against this operation: every given parameter
    /// this operation names has its type, and every required one is there.
    /// Returns the problem as an `INVALID_PARAMETERS` message. Parameters
    /// the operation does not name are allowed (PROFILE.md) and returned
    /// in `unknown` so the caller can warn.
    pub fn check(&self, parameters: &Map<String, Value>) -> Result<Vec<String>, String> {
        for parameter in &self.parameters {
            match parameters.get(&parameter.name) {
                Some(value) if !parameter.kind.accepts(value) => {
                    return Err(format!(
                        "parameter `{}` must be {} ({}), got {}",
                        parameter.name,
                        article(parameter.kind),
                        parameter.kind,
                        json_type(value)
                    ));
                }
                None if parameter.required => {
                    return Err(format!(
                        "parameter `{}` ({}) is required",
                        parameter.name, parameter.kind
                    ));
                }
                _ => {}
            }
        }
        Ok(parameters
            .keys()
            .filter(|key| !self.parameters.iter().any(|p| &p.name == *key))
            .cloned()
            .collect())
    }
}

fn article(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Int => "an integer",
        ParamType::Float => "a number",
        ParamType::String => "a string",
        ParamType::Bool => "a boolean",
    }
}

/// The JSON type name of `value`, for error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A service: what it is called, its version and its operations. The
/// provider advertises it and checks tasks against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDescription {
    /// `serviceName`.
    pub name: String,
    /// `serviceVersion`.
    pub version: String,
    /// The operations, in advertisement order.
    pub operations: Vec<Operation>,
}

impl ServiceDescription {
    /// A service without operations.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> ServiceDescription {
        ServiceDescription {
            name: name.into(),
            version: version.into(),
            operations: Vec::new(),
        }
    }

    /// Adds an operation.
    pub fn operation(mut self, operation: Operation) -> ServiceDescription {
        self.operations.push(operation);
        self
    }

    /// The operation called `name`.
    pub fn find(&self, name: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|operation| operation.name == name)
    }

    /// The advertisement's `capabilities`.
    pub fn capabilities(&self) -> Vec<specwire_protocol::discovery::Capability> {
        use specwire_protocol::discovery::{Capability, Setting, SettingType};
        self.operations
            .iter()
            .map(|operation| Capability {
                key: operation.name.clone(),
                settings: operation
                    .parameters
                    .iter()
                    .map(|parameter| {
                        let kind = match parameter.kind {
                            ParamType::String => SettingType::String,
                            ParamType::Int => SettingType::Int,
                            ParamType::Float => SettingType::Float,
                            ParamType::Bool => SettingType::Bool,
                        };
                        Setting([(kind, parameter.name.clone())].into_iter().collect())
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A service the provider runs tasks for.
///
/// [`run`](TaskHandler::run) is called once per accepted task, after the
/// runtime checked authorisation and the parameters against
/// [`description`](TaskHandler::description). Blocking work belongs in
/// `tokio::task::spawn_blocking`.
pub trait TaskHandler: Send + Sync + 'static {
    /// The service's name, version and operations.
    fn description(&self) -> &ServiceDescription;

    /// Runs one task to its end. `Ok` becomes `TaskResult`, `Err`
    /// becomes `TaskFailed`. After a cancellation the value is ignored.
    fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>>;
}

/// A task as the handler sees it: already authorised and checked against
/// the operation's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// The client's `taskId`.
    pub task_id: String,
    /// The `operation`.
    pub operation: String,
    /// `taskParameters` (empty when the message had none).
    pub parameters: Map<String, Value>,
    /// The authenticated `clientId`, or the task's `callbackClientId`.
    pub client_id: Option<String>,
}

/// A progress report from a running task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 0–100. The runtime never lets reported progress go down.
    pub percent: u8,
    /// What the task is doing (`message` of the `TaskStatusUpdate`).
    pub message: Option<String>,
}

/// What a running task gets besides its parameters: a progress sink and a
/// cancellation token.
#[derive(Clone, Debug)]
pub struct TaskContext {
    progress: ProgressSink,
    cancel: CancellationToken,
}

/// Where progress reports go.
#[derive(Clone)]
enum ProgressSink {
    /// A channel (tests of a handler, or any caller of [`TaskContext::new`]).
    Channel(mpsc::UnboundedSender<Progress>),
    /// Straight into the provider's task table: no channel, no forwarding
    /// task per running task.
    Direct(std::sync::Arc<dyn Fn(Progress) + Send + Sync>),
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgressSink::Channel(_) => f.write_str("Channel"),
            ProgressSink::Direct(_) => f.write_str("Direct"),
        }
    }
}

impl TaskContext {
    /// A context that sends progress to `progress` and is cancelled through
    /// `cancel`. Tests of a handler use this.
    pub fn new(
        progress: mpsc::UnboundedSender<Progress>,
        cancel: CancellationToken,
    ) -> TaskContext {
        TaskContext {
            progress: ProgressSink::Channel(progress),
            cancel,
        }
    }

    /// A context whose progress reports call `report` (the provider's way).
    pub(crate) fn direct(
        report: std::sync::Arc<dyn Fn(Progress) + Send + Sync>,
        cancel: CancellationToken,
    ) -> TaskContext {
        TaskContext {
            progress: ProgressSink::Direct(report),
            cancel,
        }
    }

    /// Reports progress (clamped to 100). Reports after the task ended,
    /// or lower than an earlier one, are dropped by the runtime.
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        let message = message.into();
        let progress = Progress {
            percent: percent.min(100),
            message: (!message.is_empty()).then_some(message),
        };
        match &self.progress {
            // A closed receiver means the task already ended (e.g. cancelled).
            ProgressSink::Channel(sender) => {
                let _ = sender.send(progress);
            }
            ProgressSink::Direct(report) => report(progress),
        }
    }

    /// The token the runtime cancels when the client sends `CancelTask` or
    /// the provider shuts down. Long work should check it or select on
    /// [`CancellationToken::cancelled`].
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the task has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Why a task failed: becomes `TaskFailed` (`errorCode`, `errorMessage`,
/// `details`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// `errorCode`: a standard code or a service-specific one
    /// (`FILE_NOT_FOUND`), upper case.
    pub code: String,
    /// `errorMessage`, for people.
    pub message: String,
    /// `details`, optional.
    pub details: Option<String>,
}

impl TaskError {
    /// A failure with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> TaskError {
        TaskError {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> TaskError {
        self.details = Some(details.into());
        self
    }

    /// `INVALID_PARAMETERS`.
    pub fn invalid_parameters(message: impl Into<String>) -> TaskError {
        TaskError::new(codes::INVALID_PARAMETERS, message)
    }

    /// `INTERNAL`.
    pub fn internal(message: impl Into<String>) -> TaskError {
        TaskError::new(codes::INTERNAL, message)
    }

    /// `CANCELLED`: what a handler returns when it stops because its
    /// token was cancelled (the runtime has already sent the terminal
    /// `Cancelled` update, so this value is not sent).
    pub fn cancelled() -> TaskError {
        TaskError::new(codes::CANCELLED, "the task was cancelled")
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(details) = &self.details {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {}

/// The standard error codes (PROFILE.md, task).
pub mod codes {
    /// Broken JSON, or a message that does not match its schema.
    pub const INVALID_MESSAGE: &str = "INVALID_MESSAGE";
    /// A `type` the family does not have, or one only providers send.
    pub const UNKNOWN_TYPE: &str = "UNKNOWN_TYPE";
    /// Not authenticated, or a wrong API key.
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    /// Authenticated but not allowed this service and operation.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// Too many messages on this connection.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The service or operation is not offered here.
    pub const UNKNOWN_OPERATION: &str = "UNKNOWN_OPERATION";
    /// Parameters of the wrong type, or a required one missing.
    pub const INVALID_PARAMETERS: &str = "INVALID_PARAMETERS";
    /// No task with that id.
    pub const TASK_NOT_FOUND: &str = "TASK_NOT_FOUND";
    /// `GetResult` for a task still running.
    pub const RESULT_NOT_READY: &str = "RESULT_NOT_READY";
    /// `CancelTask` for a task that already ended.
    pub const TASK_ALREADY_FINISHED: &str = "TASK_ALREADY_FINISHED";
    /// The task was cancelled.
    pub const CANCELLED: &str = "CANCELLED";
    /// The provider failed.
    pub const INTERNAL: &str = "INTERNAL";
    /// A message larger than the provider accepts (specwire's own code).
    pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
    /// An `AssignTask` that reached a provider that is stopping (specwire's
    /// own code): assign it elsewhere.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resize() -> Operation {
        Operation::new("resizeImage")
            .parameter(Parameter::required("inputPath", ParamType::String))
            .parameter(Parameter::required("width", ParamType::Int))
            .parameter(Parameter::optional("quality", ParamType::Float))
    }

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn types_accept_their_json() {
        assert!(ParamType::Int.accepts(&json!(3)));
        assert!(ParamType::Int.accepts(&json!(3.0)));
        assert!(!ParamType::Int.accepts(&json!(3.5)));
        assert!(!ParamType::Int.accepts(&json!("3")));
        assert!(ParamType::Float.accepts(&json!(3)));
        assert!(ParamType::Bool.accepts(&json!(false)));
        assert!(!ParamType::String.accepts(&json!(null)));
    }

    #[test]
    fn check_reports_wrong_types_and_missing_required() {
        let op = resize();
        assert_eq!(
            op.check(&params(json!({"inputPath": "a.png", "width": 10}))),
            Ok(vec![])
        );
        let wrong = op.check(&params(json!({"inputPath": "a.png", "width": "10"})));
        assert_eq!(
            wrong,
            Err("parameter `width` must be an integer (int), got a string".into())
        );
        let missing = op.check(&params(json!({"width": 10})));
        assert_eq!(
            missing,
            Err("parameter `inputPath` (string) is required".into())
        );
        assert_eq!(
            op.check(&params(json!({"inputPath": "a", "width": 1, "extra": 1}))),
            Ok(vec!["extra".to_string()])
        );
    }

    #[test]
    fn capabilities_list_settings_in_order() {
        let service = ServiceDescription::new("S", "1").operation(resize());
        let value = serde_json::to_value(service.capabilities()).unwrap();
        assert_eq!(
            value,
            json!([{"key": "resizeImage", "settings": [
                {"string": "inputPath"}, {"int": "width"}, {"float": "quality"}
            ]}])
        );
    }
}
