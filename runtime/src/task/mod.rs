//! The task family: a [`Provider`] that runs [`TaskHandler`]s for clients
//! over WebSocket, and a [`TaskClient`] that assigns tasks to one.
//!
//! Both are task logic over [`net`](crate::net): the provider is a
//! [`WsService`](crate::net::WsService) whose sessions
//! ([`session`](self)) turn inbound rejections into `Error` replies and run
//! requests against the task table; the client connects and reconnects
//! with [`net::retry`](crate::net::retry).

mod access;
mod client;
mod handler;
pub mod messages;
mod provider;
mod runner;
mod session;
mod store;

pub use crate::net::{Backoff, Limits};
pub use access::{AccessPolicy, Grant};
pub use client::{
    ClientConfig, ClientError, StatusUpdate, TaskClient, TaskEvent, TaskHandle, TaskOutcome,
};
pub use handler::{
    codes, json_type, BoxFuture, Operation, ParamType, Parameter, Progress, ServiceDescription,
    Task, TaskContext, TaskError, TaskHandler, TaskOutput,
};
pub use provider::{Provider, ProviderConfig, ProviderStats};
