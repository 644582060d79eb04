//! The task family: a provider that runs [`TaskHandler`]s for clients over
//! WebSocket, and a client that assigns tasks to one.

mod handler;

pub use handler::{
    codes, json_type, BoxFuture, Operation, ParamType, Parameter, Progress, ServiceDescription,
    Task, TaskContext, TaskError, TaskHandler, TaskOutput,
};
