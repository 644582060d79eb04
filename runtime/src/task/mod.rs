//! The task family: a [`Provider`] that runs [`TaskHandler`]s for clients
//! over WebSocket, and a [`TaskClient`] that assigns tasks to one.

mod access;
mod client;
mod handler;
mod limits;
pub mod messages;
mod outbox;
mod provider;
mod store;

pub use access::{AccessPolicy, Grant};
pub use client::{
    Backoff, ClientConfig, ClientError, StatusUpdate, TaskClient, TaskEvent, TaskHandle,
    TaskOutcome,
};
pub use handler::{
    codes, json_type, BoxFuture, Operation, ParamType, Parameter, Progress, ServiceDescription,
    Task, TaskContext, TaskError, TaskHandler, TaskOutput,
};
pub use limits::Limits;
pub use provider::{Provider, ProviderConfig, ProviderStats};
