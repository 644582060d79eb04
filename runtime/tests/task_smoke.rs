//! Smoke test: a provider and a client on loopback.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use specwire_runtime::task::{
    BoxFuture, ClientConfig, Operation, ParamType, Parameter, Provider, ProviderConfig,
    ServiceDescription, Task, TaskClient, TaskContext, TaskError, TaskEvent, TaskHandler,
    TaskOutcome, TaskOutput,
};

struct Echo(ServiceDescription);

impl TaskHandler for Echo {
    fn description(&self) -> &ServiceDescription {
        &self.0
    }

    fn run(&self, task: Task, context: TaskContext) -> BoxFuture<Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            context.progress(50, "half");
            let mut output = TaskOutput::new();
            output.insert("echo".into(), task.parameters["text"].clone());
            Ok(output)
        })
    }
}

#[tokio::test]
async fn assign_and_get_result() {
    let service = Echo(ServiceDescription::new("EchoService", "1").operation(
        Operation::new("echo").parameter(Parameter::required("text", ParamType::String)),
    ));
    let config = ProviderConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..ProviderConfig::default()
    };
    let provider = Provider::start(config, vec![Arc::new(service)])
        .await
        .unwrap();
    let run = async {
        let client = TaskClient::connect(ClientConfig::new(provider.endpoint()))
            .await
            .unwrap();
        let mut task = client
            .assign("EchoService", "echo", json!({"text": "hi"}))
            .await
            .unwrap();
        let mut events = Vec::new();
        while let Some(event) = task.next().await {
            events.push(event);
        }
        let last = events.last().cloned();
        let mut expected = TaskOutput::new();
        expected.insert("echo".into(), json!("hi"));
        assert_eq!(
            last,
            Some(TaskEvent::Finished(Ok(TaskOutcome::Completed(expected))))
        );
        let refused = client
            .assign("EchoService", "nope", json!({}))
            .await
            .unwrap();
        match refused.outcome().await {
            Ok(TaskOutcome::Failed(failure)) => assert_eq!(failure.code, "UNKNOWN_OPERATION"),
            other => panic!("{other:?}"),
        }
        client.close().await;
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap();
    assert_eq!(provider.stats().runs, 1);
    provider.shutdown(Duration::from_secs(1)).await;
}
