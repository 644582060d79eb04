//! `specwire demo [FAMILY]`: a family end to end in one command, on
//! loopback, narrated, and checked: a demo that sees something other than
//! what the spec promises exits 1. Without a family, every family runs in
//! turn.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

mod chat;
mod device;
mod subscription;
mod task;
mod uart;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Without a family: every family in turn (discovery and task,
    /// subscription, device, chat, uart), each checked.
    #[command(subcommand)]
    family: Option<Family>,
}

#[derive(clap::Subcommand)]
enum Family {
    /// Discovery + task end to end on loopback: serve, discover, assign
    /// resizeImage and applyFilter on a generated image, shut down.
    Task(task::TaskArgs),
    /// The event hub on loopback: subscribers at the experiment, user and
    /// another project's level, an admin publishing experiment, task,
    /// worker and system events, and who got what, checked against the
    /// routing table.
    Subscription,
    /// The device hub on loopback: five virtual devices, a watcher, a
    /// command to one device and to all, unknown ones refused.
    Device,
    /// The chat server on loopback: three clients join, talk, list users;
    /// protocol faults are answered; a dropped connection is announced as
    /// having left.
    Chat,
    /// The uart gateway on a simulated root module (a pseudo-terminal): a
    /// listener, requests answered from the store, relayed commands and a
    /// module timeout.
    Uart,
}

pub fn run(args: Args) -> ExitCode {
    let Some(family) = args.family else {
        return run_all();
    };
    match family {
        Family::Task(args) => run_demo("task", task::demo(args)),
        Family::Subscription => run_demo("subscription", subscription::demo()),
        Family::Device => run_demo("device", device::demo()),
        Family::Chat => run_demo("chat", chat::demo()),
        Family::Uart => run_demo("uart", uart::demo()),
    }
}

/// A family's name and its demo.
type Demo = (&'static str, fn() -> ExitCode);

/// Every family's demo in turn; stops at the first that fails.
fn run_all() -> ExitCode {
    let demos: [Demo; 5] = [
        ("task", || {
            run_demo("task", task::demo(task::TaskArgs::default()))
        }),
        ("subscription", || {
            run_demo("subscription", subscription::demo())
        }),
        ("device", || run_demo("device", device::demo())),
        ("chat", || run_demo("chat", chat::demo())),
        ("uart", || run_demo("uart", uart::demo())),
    ];
    let started = std::time::Instant::now();
    for (name, demo) in demos {
        println!("\n=== {name} ===");
        let code = demo();
        if code != ExitCode::SUCCESS {
            eprintln!("specwire demo: the {name} demo failed; the rest did not run");
            return code;
        }
    }
    println!(
        "\nAll five demos passed in {:.1} s: discovery and task, subscription, device, chat, uart.",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Runs a demo with a time limit; its error, if any, on stderr.
fn run_demo(family: &str, demo: impl Future<Output = Result<(), String>>) -> ExitCode {
    let command = format!("specwire demo {family}");
    crate::run_async(&command, async {
        match tokio::time::timeout(Duration::from_secs(60), demo).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                eprintln!("{command}: {error}");
                ExitCode::from(1)
            }
            Err(_) => {
                eprintln!("{command}: did not finish within 60 s");
                ExitCode::from(1)
            }
        }
    })
}

/// A numbered step of the narration.
fn step(number: u32, text: &str) {
    println!("\n[{number}] {text}");
}
