//! `specwire token`: mint an HS256 JWT for a hub.

use std::process::ExitCode;
use std::time::Duration;

use specwire_runtime::net::jwt;

use crate::duration::parse_duration;
use crate::secret::SecretArgs;

/// Mint an HS256 JWT for a subscription hub and print it.
///
/// The token carries `sub` (the user), `exp` (now + --ttl), `iat`, and
/// `role` when given (`admin` may publish). The secret comes from
/// --secret-file, --secret or SPECWIRE_JWT_SECRET, as for `serve
/// subscription`.
///
/// Example: `specwire token --sub alice --secret-file hub.secret`
#[derive(clap::Args)]
pub struct Args {
    /// The user the token names (`sub`).
    #[arg(long, value_name = "USER")]
    sub: String,
    /// A role claim; `admin` may publish events.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    ttl: Duration,
    #[command(flatten)]
    secret: SecretArgs,
}

pub fn run(args: &Args) -> ExitCode {
    let minted = args.secret.load().and_then(|secret| {
        if args.sub.is_empty() {
            return Err("--sub must not be empty".to_owned());
        }
        jwt::mint(&secret, &args.sub, args.role.as_deref(), args.ttl).map_err(|e| e.to_string())
    });
    match minted {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("specwire token: {error}");
            ExitCode::from(2)
        }
    }
}
