//! JSON Web Tokens signed with HS256: minting, and verifying as an
//! [`Authenticator`].
//!
//! Verification pins the algorithm: a token whose header names anything
//! but `HS256` (`none`, `HS384`, `RS256`, ...) is invalid, whatever its
//! signature. `exp` and `sub` are required; `exp` is checked with
//! [`LEEWAY`] of clock skew. An optional `role` claim (`"admin"`) travels
//! into the [`Identity`].
//!
//! The shared secret is a [`Secret`]: read it from a file or an
//! environment variable rather than a command-line flag (flags show in
//! `ps`).
//!
//! ```
//! use std::time::Duration;
//! use specwire_runtime::net::jwt::{Jwt, Secret};
//! use specwire_runtime::net::{Authenticator, Credential};
//!
//! let jwt = Jwt::hs256(&Secret::new(b"correct horse".to_vec()));
//! let token = jwt.mint("alice", Some("admin"), Duration::from_secs(60)).unwrap();
//! let identity = jwt.authenticate(&Credential::Bearer(&token)).unwrap();
//! assert_eq!(identity.client_id.as_deref(), Some("alice"));
//! assert!(identity.is_admin());
//!
//! let other = Jwt::hs256(&Secret::new(b"another secret".to_vec()));
//! assert!(other.authenticate(&Credential::Bearer(&token)).is_err());
//! ```

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::auth::{AuthError, Authenticator, Credential, Identity};

/// Clock skew allowed when checking `exp`.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// The environment variable the CLI reads a JWT secret from.
pub const SECRET_VARIABLE: &str = "SPECWIRE_JWT_SECRET";

/// A shared HMAC secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("reading the secret file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is empty (after trimming a trailing newline).
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl Secret {
    /// A secret of these bytes.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The file's content, without a trailing newline (as `echo` leaves).
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let mut bytes = std::fs::read(path).map_err(|source| SecretError::File {
            path: path.display().to_string(),
            source,
        })?;
        while bytes
            .last()
            .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
        {
            bytes.pop();
        }
        Secret::non_empty(bytes, &path.display().to_string())
    }

    /// A secret given as text (an environment variable's value, a flag).
    pub fn from_text(text: &str, origin: &str) -> Result<Secret, SecretError> {
        Secret::non_empty(text.as_bytes().to_vec(), origin)
    }

    fn non_empty(bytes: Vec<u8>, origin: &str) -> Result<Secret, SecretError> {
        if bytes.is_empty() {
            Err(SecretError::Empty(origin.to_owned()))
        } else {
            Ok(Secret(bytes))
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The claims a token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// `"admin"` may publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Its signature, algorithm, format or claims are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// It expired.
    #[error("the token expired")]
    Expired,
}

/// A token for `sub` (with `role`) valid for `ttl`, signed with `secret`.
pub fn mint(
    secret: &Secret,
    sub: &str,
    role: Option<&str>,
    ttl: Duration,
) -> Result<String, TokenError> {
    Jwt::hs256(secret).mint(sub, role, ttl)
}

/// HS256 tokens with one secret.
#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Jwt(HS256)")
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Jwt {
    /// Mints and verifies with `secret`, HS256 only.
    pub fn hs256(secret: &Secret) -> Jwt {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY.as_secs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        Jwt {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A token for `sub` (with `role`, when given) valid for `ttl`.
    pub fn mint(&self, sub: &str, role: Option<&str>, ttl: Duration) -> Result<String, TokenError> {
        let now = unix_now();
        self.mint_claims(&Claims {
            sub: sub.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            role: role.map(str::to_owned),
        })
    }

    /// A token carrying exactly `claims`.
    pub fn mint_claims(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| TokenError::Invalid(error.to_string()))
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.sub.is_empty() => {
                Err(TokenError::Invalid("empty `sub`".to_owned()))
            }
            Ok(data) => Ok(data.claims),
            Err(error) => match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                _ => Err(TokenError::Invalid(error.to_string())),
            },
        }
    }
}

impl Authenticator for Jwt {
    fn required(&self) -> bool {
        true
    }

    /// A bearer token; the identity is its `sub` and `role`.
    fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let Credential::Bearer(token) = *credential else {
            return Err(AuthError::Unsupported);
        };
        let claims = self
            .verify(token)
            .map_err(|error| AuthError::Invalid(error.to_string()))?;
        Ok(Identity {
            client_id: Some(claims.sub),
            role: claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, Header};

    fn jwt() -> Jwt {
        Jwt::hs256(&Secret::new(b"s3cret".to_vec()))
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn a_minted_token_verifies_and_carries_its_claims() {
        let token = jwt().mint("alice", None, Duration::from_secs(60)).unwrap();
        let claims = jwt().verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, None);
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let claims = Claims {
            sub: "alice".into(),
            exp: unix_now() - 3600,
            iat: None,
            role: None,
        };
        let token = jwt().mint_claims(&claims).unwrap();
        assert!(matches!(jwt().verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn other_algorithms_and_alg_none_are_refused() {
        let claims = Claims {
            sub: "mallory".into(),
            exp: unix_now() + 3600,
            iat: None,
            role: Some("admin".into()),
        };
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(matches!(jwt().verify(&hs384), Err(TokenError::Invalid(_))));
        let payload = serde_json::to_vec(&claims).unwrap();
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#] {
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(&payload));
            assert!(
                matches!(jwt().verify(&unsigned), Err(TokenError::Invalid(_))),
                "{header}"
            );
        }
    }

    #[test]
    fn tokens_without_sub_or_exp_or_with_garbage_are_refused() {
        let no_sub = format!(
            "{}.{}.sig",
            b64(br#"{"alg":"HS256"}"#),
            b64(format!(r#"{{"exp":{}}}"#, unix_now() + 60).as_bytes())
        );
        for token in ["", "x", "a.b.c", no_sub.as_str()] {
            assert!(jwt().verify(token).is_err(), "{token}");
        }
        let empty_sub = jwt().mint("", None, Duration::from_secs(60)).unwrap();
        assert!(jwt().verify(&empty_sub).is_err());
    }

    #[test]
    fn secrets_from_files_lose_their_trailing_newline_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("specwire-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().as_bytes(), b"s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            Secret::from_file(&path),
            Err(SecretError::Empty(_))
        ));
        assert!(Secret::from_file(&dir.join("missing")).is_err());
        assert_eq!(
            format!("{:?}", Secret::new(b"abc".to_vec())),
            "Secret(3 bytes)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
