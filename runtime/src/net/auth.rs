//! Authentication as a trait: a server checks a [`Credential`], wherever
//! the family carries it (a key in an in-band message such as task's
//! `Authenticate`, or a bearer token from the WebSocket handshake, see
//! [`http::bearer_token`](super::http::bearer_token)), and learns the
//! [`Identity`] it proves.
//!
//! [`ApiKeys`] is the implementation for shared API keys;
//! [`Jwt`](super::jwt::Jwt) verifies HS256 bearer tokens.
//!
//! ```
//! use specwire_runtime::net::{ApiKeys, Authenticator, Credential};
//!
//! let keys = ApiKeys::new(["secret"]);
//! assert!(keys.required());
//! let identity = keys
//!     .authenticate(&Credential::ApiKey { key: "secret", client_id: Some("alice") })
//!     .unwrap();
//! assert_eq!(identity.client_id.as_deref(), Some("alice"));
//! assert!(keys.authenticate(&Credential::ApiKey { key: "guess", client_id: None }).is_err());
//! ```

use std::collections::HashSet;

/// What a client presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// An API key, with the client id the client names itself by.
    ApiKey {
        /// The key.
        key: &'a str,
        /// The claimed client id.
        client_id: Option<&'a str>,
    },
    /// A bearer token (a JWT), from the handshake or a message.
    Bearer(&'a str),
}

/// Who a credential proved the client to be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The client's id, when the credential names one (a JWT's `sub`).
    pub client_id: Option<String>,
    /// The client's role, when the credential names one (a JWT's `role`).
    pub role: Option<String>,
}

impl Identity {
    /// Whether the role is `admin`.
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
}

/// Why a credential was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The credential is wrong (unknown key, bad signature, expired).
    #[error("{0}")]
    Invalid(String),
    /// This authenticator does not take this kind of credential.
    #[error("this kind of credential is not accepted here")]
    Unsupported,
}

/// Checks credentials.
pub trait Authenticator: Send + Sync {
    /// Whether a client must authenticate before anything else.
    fn required(&self) -> bool;

    /// Checks `credential`; the identity it proves, or why not.
    fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError>;
}

/// Shared API keys. With none, authentication is not required and any key
/// is accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeys {
    keys: HashSet<String>,
}

impl ApiKeys {
    /// Accepts exactly `keys` (everything when empty).
    pub fn new<I, S>(keys: I) -> ApiKeys
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ApiKeys {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `key` is one of the keys (any key when none are set).
    pub fn is_valid(&self, key: &str) -> bool {
        self.keys.is_empty() || self.keys.contains(key)
    }
}

impl Authenticator for ApiKeys {
    fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// A key in a message, or sent as a bearer token.
    fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let (key, client_id) = match *credential {
            Credential::ApiKey { key, client_id } => (key, client_id),
            Credential::Bearer(token) => (token, None),
        };
        if self.is_valid(key) {
            Ok(Identity {
                client_id: client_id.map(str::to_owned),
                role: None,
            })
        } else {
            Err(AuthError::Invalid("invalid API key".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_means_open() {
        let open = ApiKeys::default();
        assert!(!open.required());
        assert_eq!(
            open.authenticate(&Credential::Bearer("anything")),
            Ok(Identity::default())
        );
    }

    #[test]
    fn keys_are_checked_whichever_way_they_come() {
        let keys = ApiKeys::new(["k"]);
        assert!(keys.authenticate(&Credential::Bearer("k")).is_ok());
        assert_eq!(
            keys.authenticate(&Credential::Bearer("x")),
            Err(AuthError::Invalid("invalid API key".into()))
        );
    }
}
