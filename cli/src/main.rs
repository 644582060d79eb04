//! `specwire`: one binary for the whole toolkit. Each subcommand is thin
//! glue over a library crate; this file only parses arguments.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;

/// Protocol schemas turned into working, verifiable software.
#[derive(Parser)]
#[command(name = "specwire", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate messages against the family schemas.
    ///
    /// Reads one JSON message, several concatenated JSON values or NDJSON;
    /// device frames one per line; uart frames as hex text. Each message is
    /// recognised by its discriminator and reported as `valid family/Message`
    /// or with every error (JSON Pointer of the member, rule, expected value).
    /// Exit status: 0 all valid, 1 any invalid, 2 usage error or unreadable input.
    Validate(validate::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap uses 0 for --help/--version and 2 for usage errors.
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    match cli.command {
        Command::Validate(args) => validate::run(&args),
    }
}
