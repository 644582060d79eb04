//! The tokens the suite presents: valid HS256 tokens it mints with the
//! target's secret (`sub`, `exp`, `iat`, `role: "admin"` for publishers),
//! and the bad ones the auth cases need, crafted here: signed with another
//! secret, expired, unsigned (`alg: none`), signed with HS384, without
//! `sub`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// How long a minted token lives: far longer than any run.
const LIFETIME: Duration = Duration::from_secs(3600);

/// A bad token, by what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// HS256, signed with a secret that is not the target's.
    WrongSecret,
    /// HS256, the right secret, expired an hour ago.
    Expired,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS384 with the right secret.
    Hs384,
    /// HS256, the right secret, an `exp`, no `sub`.
    NoSubject,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The claims of a token for `sub` (none when `None`) expiring at `exp`.
fn claims(sub: Option<&str>, role: Option<&str>, exp: u64) -> Value {
    let mut claims = Map::new();
    if let Some(sub) = sub {
        claims.insert("sub".into(), json!(sub));
    }
    if let Some(role) = role {
        claims.insert("role".into(), json!(role));
    }
    claims.insert("iat".into(), json!(now().saturating_sub(1)));
    claims.insert("exp".into(), json!(exp));
    Value::Object(claims)
}

fn sign(algorithm: Algorithm, secret: &[u8], claims: &Value) -> Result<String, String> {
    encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|error| format!("minting a token: {error}"))
}

/// A valid HS256 token for user `sub` (with claim `role` when given).
pub fn mint(secret: &[u8], sub: &str, role: Option<&str>) -> Result<String, String> {
    let exp = now() + LIFETIME.as_secs();
    sign(Algorithm::HS256, secret, &claims(Some(sub), role, exp))
}

/// A token for `sub` that the target must refuse, wrong in the way `bad`
/// says and right otherwise.
pub fn bad(secret: &[u8], sub: &str, bad: Bad) -> Result<String, String> {
    let exp = now() + LIFETIME.as_secs();
    match bad {
        Bad::WrongSecret => {
            let mut other = secret.to_vec();
            other.extend_from_slice(b"-not-the-secret");
            sign(Algorithm::HS256, &other, &claims(Some(sub), None, exp))
        }
        Bad::Expired => {
            let past = now().saturating_sub(LIFETIME.as_secs());
            sign(Algorithm::HS256, secret, &claims(Some(sub), None, past))
        }
        Bad::Hs384 => sign(Algorithm::HS384, secret, &claims(Some(sub), None, exp)),
        Bad::NoSubject => sign(Algorithm::HS256, secret, &claims(None, None, exp)),
        Bad::AlgNone => {
            let encode = |value: &Value| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
            };
            let header = json!({"alg": "none", "typ": "JWT"});
            Ok(format!(
                "{}.{}.",
                encode(&header),
                encode(&claims(Some(sub), None, exp))
            ))
        }
    }
}

/// The claims of `token`, unverified (for test proxies and notes).
pub fn claims_of(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    fn verify(token: &str, secret: &[u8]) -> Result<Value, String> {
        decode::<Value>(
            token,
            &DecodingKey::from_secret(secret),
            &Validation::new(Algorithm::HS256),
        )
        .map(|data| data.claims)
        .map_err(|error| error.to_string())
    }

    #[test]
    fn minted_tokens_verify_and_bad_ones_do_not() {
        let secret = b"conformance secret";
        let good = mint(secret, "alice", Some("admin")).unwrap();
        let claims = verify(&good, secret).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["role"], "admin");
        assert_eq!(claims_of(&good), Some(claims));
        for kind in [
            Bad::WrongSecret,
            Bad::Expired,
            Bad::AlgNone,
            Bad::Hs384,
            Bad::NoSubject,
        ] {
            let token = bad(secret, "alice", kind).unwrap();
            let verified = verify(&token, secret);
            match kind {
                // A missing `sub` passes the signature check: the server
                // must refuse it for naming no user.
                Bad::NoSubject => {
                    assert!(verified.unwrap().get("sub").is_none());
                }
                _ => assert!(verified.is_err(), "{kind:?} verified"),
            }
        }
        let none = bad(secret, "bob", Bad::AlgNone).unwrap();
        assert!(none.ends_with('.'));
        assert_eq!(claims_of(&none).unwrap()["sub"], "bob");
    }
}
