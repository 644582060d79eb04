//! `DiagnosticsService`: operations that do nothing, echo, sleep or fail on
//! request, so benchmarks, tests and a third party's conformance run can
//! make a task against the reference provider succeed, take time, report
//! progress, be cancelled or fail, at will.
//!
//! | operation | parameters | result |
//! | --- | --- | --- |
//! | `noop` | none | `{}` at once, no progress (the round-trip benchmark's task) |
//! | `echo` | any (none advertised) | the `taskParameters` object itself |
//! | `sleep` | `durationMs` (int, required, 0–600000); `steps` (int, 1–100, default 10) | sleeps `durationMs` in `steps` equal steps, reporting progress after each; `{"sleptMs": durationMs}` |
//! | `fail` | `code` (string matching `^[A-Z][A-Z0-9_]*$`, default `SIMULATED_FAILURE`); `message` (string, default "Simulated failure."); `details` (string, optional) | always fails with them |
//!
//! `sleep` stops as soon as its task is cancelled (it waits on the
//! cancellation token, not by polling). Out-of-range values fail the task
//! with `INVALID_PARAMETERS`.
//!
//! ```
//! use specwire_runtime::task::{Task, TaskContext, TaskHandler};
//! use specwire_services::DiagnosticsService;
//! use tokio_util::sync::CancellationToken;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let service = DiagnosticsService::new();
//! let (progress, _reports) = tokio::sync::mpsc::unbounded_channel();
//! let task = Task {
//!     task_id: "t1".into(),
//!     operation: "fail".into(),
//!     parameters: serde_json::json!({"code": "DISK_FULL"}).as_object().cloned().unwrap(),
//!     client_id: None,
//! };
//! let error = service
//!     .run(task, TaskContext::new(progress, CancellationToken::new()))
//!     .await
//!     .unwrap_err();
//! assert_eq!(error.code, "DISK_FULL");
//! # });
//! ```

use std::future::ready;
use std::time::Duration;

use serde_json::{Map, Value};
use specwire_runtime::task::{
    codes as standard, BoxFuture, Operation, ParamType, Parameter, ServiceDescription, Task,
    TaskContext, TaskError, TaskHandler, TaskOutput,
};

use crate::{codes, params};

/// The advertised `serviceName`.
pub const SERVICE_NAME: &str = "DiagnosticsService";

/// The advertised `serviceVersion`: this crate's version.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest `sleep` accepted, in milliseconds (10 minutes).
pub const MAX_SLEEP_MS: i64 = 600_000;

/// The most progress steps `sleep` accepts.
pub const MAX_SLEEP_STEPS: i64 = 100;

/// `sleep`'s steps when a task does not give `steps`.
pub const DEFAULT_SLEEP_STEPS: i64 = 10;

/// `fail`'s message when a task does not give one.
pub const DEFAULT_FAILURE_MESSAGE: &str = "Simulated failure.";

/// The diagnostics service. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct DiagnosticsService {
    description: ServiceDescription,
}

impl DiagnosticsService {
    /// The service with its four operations.
    pub fn new() -> Self {
        let description = ServiceDescription::new(SERVICE_NAME, SERVICE_VERSION)
            .operation(Operation::new("noop"))
            .operation(Operation::new("echo"))
            .operation(
                Operation::new("sleep")
                    .parameter(Parameter::required("durationMs", ParamType::Int))
                    .parameter(Parameter::optional("steps", ParamType::Int)),
            )
            .operation(
                Operation::new("fail")
                    .parameter(Parameter::optional("code", ParamType::String))
                    .parameter(Parameter::optional("message", ParamType::String))
                    .parameter(Parameter::optional("details", ParamType::String)),
            );
        DiagnosticsService { description }
    }
}

impl Default for DiagnosticsService {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskHandler for DiagnosticsService {
    fn description(&self) -> &ServiceDescription {
        &self.description
    }

    fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
        // Everything but `sleep` is answered with a ready future: no task,
        // no timer, one allocation for the box.
        match task.operation.as_str() {
            "noop" => Box::pin(ready(Ok(TaskOutput::new()))),
            "echo" => Box::pin(ready(Ok(task.parameters))),
            "fail" => Box::pin(ready(Err(failure(&task.parameters)))),
            "sleep" => match sleep_parameters(&task.parameters) {
                Ok((duration_ms, steps)) => Box::pin(sleep(duration_ms, steps, context)),
                Err(error) => Box::pin(ready(Err(error))),
            },
            other => Box::pin(ready(Err(TaskError::new(
                standard::UNKNOWN_OPERATION,
                format!("{SERVICE_NAME} has no operation `{other}`"),
            )))),
        }
    }
}

/// `durationMs` and `steps`, range-checked.
fn sleep_parameters(parameters: &Map<String, Value>) -> Result<(u64, u32), TaskError> {
    let duration_ms = params::required_int_in(parameters, "durationMs", 0..=MAX_SLEEP_MS)?;
    let steps =
        params::int_in(parameters, "steps", 1..=MAX_SLEEP_STEPS)?.unwrap_or(DEFAULT_SLEEP_STEPS);
    // Both in range, so the conversions are exact.
    Ok((duration_ms as u64, steps as u32))
}

async fn sleep(
    duration_ms: u64,
    steps: u32,
    context: TaskContext,
) -> Result<TaskOutput, TaskError> {
    let total = Duration::from_millis(duration_ms);
    let start = tokio::time::Instant::now();
    for step in 1..=steps {
        // Deadlines from the start, so the steps do not drift.
        let deadline = start + total * step / steps;
        tokio::select! {
            // A task cancelled before it starts must not sleep a step first.
            biased;
            () = context.cancellation().cancelled() => return Err(TaskError::cancelled()),
            () = tokio::time::sleep_until(deadline) => {}
        }
        let slept = duration_ms * u64::from(step) / u64::from(steps);
        // step ≤ steps, so the percentage is at most 100.
        let percent = (u64::from(step) * 100 / u64::from(steps)) as u8;
        context.progress(percent, format!("slept {slept} of {duration_ms} ms"));
    }
    let mut output = TaskOutput::new();
    output.insert("sleptMs".into(), duration_ms.into());
    Ok(output)
}

/// The error `fail` fails with (or `INVALID_PARAMETERS` if its own
/// parameters are bad).
fn failure(parameters: &Map<String, Value>) -> TaskError {
    let parse = || -> Result<TaskError, TaskError> {
        let code = params::string(parameters, "code")?.unwrap_or(codes::SIMULATED_FAILURE);
        if !is_error_code(code) {
            return Err(TaskError::invalid_parameters(format!(
                "parameter `code` must match ^[A-Z][A-Z0-9_]*$, got {code:?}"
            )));
        }
        let message = params::string(parameters, "message")?.unwrap_or(DEFAULT_FAILURE_MESSAGE);
        let mut error = TaskError::new(code, message);
        if let Some(details) = params::string(parameters, "details")? {
            error = error.with_details(details);
        }
        Ok(error)
    };
    parse().unwrap_or_else(|error| error)
}

/// Whether `code` has the shape of an error code: `^[A-Z][A-Z0-9_]*$`.
fn is_error_code(code: &str) -> bool {
    let mut bytes = code.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_uppercase())
        && bytes.all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_upper_snake_case() {
        for good in ["A", "SIMULATED_FAILURE", "E2", "X_", "FILE_NOT_FOUND"] {
            assert!(is_error_code(good), "{good}");
        }
        for bad in ["", "a", "_A", "2A", "A-B", "Ab", "A B", "É"] {
            assert!(!is_error_code(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn error_code_check_matches_the_pattern(code in "\\PC{0,8}") {
            let expected = code.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            proptest::prop_assert_eq!(is_error_code(&code), expected);
        }
    }
}
