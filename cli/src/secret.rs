//! Where a JWT secret comes from on the command line: `--secret-file F`,
//! else `--secret S` (which shows in `ps`, so it is for tests and
//! throwaway runs), else the `SPECWIRE_JWT_SECRET` environment variable.

use std::path::PathBuf;

use specwire_runtime::net::jwt::{Secret, SECRET_VARIABLE};

/// The secret's sources; flatten into a command's arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SecretArgs {
    /// File holding the HS256 secret (a trailing newline is ignored).
    /// Without it, the SPECWIRE_JWT_SECRET environment variable is used.
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    /// The HS256 secret itself. Visible to every user in `ps`: prefer
    /// --secret-file or SPECWIRE_JWT_SECRET.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
}

impl SecretArgs {
    /// The secret, or a message saying how to give one.
    pub fn load(&self) -> Result<Secret, String> {
        if let Some(path) = &self.secret_file {
            return Secret::from_file(path).map_err(|error| error.to_string());
        }
        if let Some(secret) = &self.secret {
            return Secret::from_text(secret, "--secret").map_err(|error| error.to_string());
        }
        if let Ok(value) = std::env::var(SECRET_VARIABLE) {
            return Secret::from_text(&value, SECRET_VARIABLE).map_err(|error| error.to_string());
        }
        Err(format!(
            "no JWT secret: give --secret-file FILE, set {SECRET_VARIABLE}, or (for tests) --secret S"
        ))
    }

    /// Whether any source is given (the environment included).
    pub fn given(&self) -> bool {
        self.secret_file.is_some()
            || self.secret.is_some()
            || std::env::var_os(SECRET_VARIABLE).is_some()
    }
}
