//! The subscription family's client commands: `specwire token`,
//! `specwire subscribe` and `specwire publish`.

pub mod publish;
pub mod subscribe;
pub mod token;
mod view;

use std::time::Duration;

use specwire_runtime::net::jwt;

use crate::secret::SecretArgs;

/// A token given with `--token`, or minted from the secret for `sub`
/// (with `role`).
pub(crate) fn token_or_mint(
    token: Option<&str>,
    secret: &SecretArgs,
    sub: &str,
    role: Option<&str>,
) -> Result<String, String> {
    if let Some(token) = token {
        return Ok(token.to_owned());
    }
    if !secret.given() {
        return Err(format!(
            "no token: give --token T, or a secret to mint one (--secret-file FILE, --secret S or {})",
            jwt::SECRET_VARIABLE
        ));
    }
    let secret = secret.load()?;
    jwt::mint(&secret, sub, role, Duration::from_secs(3600)).map_err(|error| error.to_string())
}
