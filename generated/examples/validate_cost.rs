//! Runs one decode path many times, for instruction counting:
//!
//! ```text
//! cargo build --release -p specwire-protocol --example validate_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/validate_cost specwire AssignTask 20000
//! ```
//!
//! Instruction counts do not depend on what else the machine is doing, so
//! the ratio of two paths is repeatable where wall-clock times on a shared
//! 2-core machine are not. `BENCHMARKS.md` uses both.
//!
//! `validate_cost compare AssignTask 3` times the baseline and specwire
//! paths in alternating batches for about 3 seconds, so both see the same
//! machine conditions, and prints the median time of each and their ratio.

use specwire_protocol::JsonProtocol;
use std::hint::black_box;

use serde_json::Value;
use specwire_protocol::task;

const ASSIGN_TASK: &str = include_str!("../benches/data/AssignTask.json");
const TASK_STATUS_UPDATE: &str = include_str!("../benches/data/TaskStatusUpdate.json");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: validate_cost baseline|specwire|typed AssignTask|TaskStatusUpdate COUNT\n       validate_cost compare AssignTask|TaskStatusUpdate SECONDS";
    let (Some(path), Some(message), Some(count)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let count: u64 = count.parse().unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2);
    });
    let bytes = match message.as_str() {
        "AssignTask" => ASSIGN_TASK.as_bytes(),
        "TaskStatusUpdate" => TASK_STATUS_UPDATE.as_bytes(),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    <task::Message as JsonProtocol>::family()
        .warm_up()
        .expect("validators compile");
    if path == "compare" {
        compare(bytes, count);
        return;
    }
    let mut ok = 0u64;
    for _ in 0..count {
        ok += match path.as_str() {
            "baseline" => serde_json::from_slice::<Value>(black_box(bytes)).is_ok(),
            "specwire" => task::Message::from_slice(black_box(bytes)).is_ok(),
            "typed" => serde_json::from_slice::<task::AssignTask>(black_box(bytes)).is_ok(),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        } as u64;
    }
    println!("{path} {message}: {ok}/{count} decoded");
}

/// Alternates batches of the two paths for `seconds`; prints medians.
fn compare(bytes: &[u8], seconds: u64) {
    const BATCH: u32 = 2_000;
    let mut baseline = Vec::new();
    let mut specwire = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed().as_secs() < seconds.max(1) {
        let t = std::time::Instant::now();
        for _ in 0..BATCH {
            black_box(serde_json::from_slice::<Value>(black_box(bytes)).is_ok());
        }
        baseline.push(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
        let t = std::time::Instant::now();
        for _ in 0..BATCH {
            black_box(task::Message::from_slice(black_box(bytes)).is_ok());
        }
        specwire.push(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, s) = (median(&mut baseline), median(&mut specwire));
    println!(
        "baseline {b:.0} ns/msg, specwire {s:.0} ns/msg, ratio {:.2} ({} batch pairs of {BATCH})",
        s / b,
        baseline.len()
    );
}
