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

use std::hint::black_box;

use serde_json::Value;
use specwire_protocol::task;

const ASSIGN_TASK: &str = include_str!("../benches/data/AssignTask.json");
const TASK_STATUS_UPDATE: &str = include_str!("../benches/data/TaskStatusUpdate.json");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: validate_cost baseline|specwire|typed AssignTask|TaskStatusUpdate COUNT";
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
    task::warm_up().expect("validators compile");
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
