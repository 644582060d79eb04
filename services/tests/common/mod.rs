//! Helpers shared by the integration tests: building tasks, running a
//! handler and collecting its progress reports, making test images.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

use serde_json::{Map, Value};
use specwire_runtime::task::{Progress, Task, TaskContext, TaskError, TaskHandler, TaskOutput};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A JSON object literal as a parameter map.
pub fn params(value: Value) -> Map<String, Value> {
    value
        .as_object()
        .cloned()
        .expect("parameters must be an object")
}

pub fn task(operation: &str, parameters: Value) -> Task {
    Task {
        task_id: format!("test-{operation}"),
        operation: operation.into(),
        parameters: params(parameters),
        client_id: Some("test-client".into()),
    }
}

/// What one run produced.
pub struct Run {
    pub result: Result<TaskOutput, TaskError>,
    pub progress: Vec<Progress>,
}

impl Run {
    pub fn ok(&self) -> &TaskOutput {
        match &self.result {
            Ok(output) => output,
            Err(error) => panic!("task failed: {error}"),
        }
    }

    pub fn err(&self) -> &TaskError {
        match &self.result {
            Ok(output) => panic!("task succeeded: {output:?}"),
            Err(error) => error,
        }
    }

    pub fn percents(&self) -> Vec<u8> {
        self.progress.iter().map(|p| p.percent).collect()
    }

    /// At least `n` reports, never decreasing.
    pub fn assert_progress(&self, n: usize) {
        let percents = self.percents();
        assert!(percents.len() >= n, "only {percents:?}");
        assert!(
            percents.windows(2).all(|w| w[0] <= w[1]),
            "decreasing: {percents:?}"
        );
        assert!(percents.iter().all(|p| *p <= 100), "{percents:?}");
    }
}

/// Runs `task` to its end with a fresh token.
pub async fn run(handler: &dyn TaskHandler, task: Task) -> Run {
    run_with(handler, task, CancellationToken::new()).await
}

/// Runs `task` to its end with `cancel` as its token.
pub async fn run_with(handler: &dyn TaskHandler, task: Task, cancel: CancellationToken) -> Run {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = handler.run(task, TaskContext::new(tx, cancel)).await;
    let mut progress = Vec::new();
    while let Ok(report) = rx.try_recv() {
        progress.push(report);
    }
    Run { result, progress }
}

/// A `width`×`height` RGB PNG with a gradient (so filters change it).
pub fn write_png(path: &Path, width: u32, height: u32) {
    gradient(width, height).save(path).expect("write test PNG");
}

pub fn gradient(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// The file names in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}
