//! Parse + validate + decode of task messages against a bare serde_json
//! parse of the same bytes (the baseline), in one run.
//!
//! `cargo bench -p specwire-protocol --bench validate`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use specwire_protocol::task;
use specwire_protocol::JsonProtocol;

const ASSIGN_TASK: &str = include_str!("data/AssignTask.json");

const TASK_STATUS_UPDATE: &str = include_str!("data/TaskStatusUpdate.json");

/// A message name, its JSON text, and a bare typed parse of it.
type Case = (&'static str, &'static str, fn(&[u8]) -> bool);

fn bench(c: &mut Criterion) {
    <task::Message as JsonProtocol>::family()
        .warm_up()
        .expect("validators compile");
    let cases: [Case; 2] = [
        ("AssignTask", ASSIGN_TASK, |b| {
            serde_json::from_slice::<task::AssignTask>(b).is_ok()
        }),
        ("TaskStatusUpdate", TASK_STATUS_UPDATE, |b| {
            serde_json::from_slice::<task::TaskStatusUpdate>(b).is_ok()
        }),
    ];
    for (name, text, typed) in cases {
        let bytes = text.as_bytes();
        assert!(task::Message::from_slice(bytes).is_ok());
        let mut group = c.benchmark_group(format!("task/{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("baseline: serde_json parse to Value", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).expect("json"))
        });
        group.bench_function("specwire: parse + validate + decode", |b| {
            b.iter(|| task::Message::from_slice(black_box(bytes)).expect("valid"))
        });
        group.bench_function("reference: serde_json parse to typed struct", |b| {
            b.iter(|| typed(black_box(bytes)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
