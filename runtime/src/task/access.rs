//! Who may use a provider: API keys (`Authenticate`, checked by
//! [`ApiKeys`], the provider's [`Authenticator`]) and per-client access
//! control lists (`FORBIDDEN`).
//!
//! ```
//! use specwire_runtime::task::AccessPolicy;
//!
//! let policy = AccessPolicy::api_keys(["secret"])
//!     .grant("reporting-client", "ImageProcessingService", "resizeImage")
//!     .grant("admin", "*", "*");
//! assert!(policy.requires_authentication());
//! assert!(policy.key_is_valid("secret"));
//! assert!(policy.allows(Some("reporting-client"), "ImageProcessingService", "resizeImage"));
//! assert!(!policy.allows(Some("reporting-client"), "ImageProcessingService", "applyFilter"));
//! assert!(policy.allows(Some("admin"), "DiagnosticsService", "noop"));
//! ```

use std::collections::HashMap;

use crate::net::{ApiKeys, AuthError, Authenticator, Credential, Identity};

/// API keys and grants. The default policy lets everyone do everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    keys: ApiKeys,
    /// `None`: every authenticated client may run every operation.
    grants: Option<HashMap<String, Vec<Grant>>>,
}

/// Permission to run `operation` of `service` (`*` matches any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// A `serviceName` or `*`.
    pub service: String,
    /// An `operation` or `*`.
    pub operation: String,
}

impl Grant {
    fn matches(&self, service: &str, operation: &str) -> bool {
        (self.service == "*" || self.service == service)
            && (self.operation == "*" || self.operation == operation)
    }
}

impl AccessPolicy {
    /// Open access: no authentication, no ACL.
    pub fn open() -> AccessPolicy {
        AccessPolicy::default()
    }

    /// Clients must authenticate with one of `keys` before anything else.
    pub fn api_keys<I, S>(keys: I) -> AccessPolicy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AccessPolicy {
            keys: ApiKeys::new(keys),
            grants: None,
        }
    }

    /// Adds a grant for `client_id`. Once any grant exists, a client may
    /// only run what it was granted (`FORBIDDEN` otherwise).
    pub fn grant(
        mut self,
        client_id: impl Into<String>,
        service: impl Into<String>,
        operation: impl Into<String>,
    ) -> AccessPolicy {
        self.grants
            .get_or_insert_with(HashMap::new)
            .entry(client_id.into())
            .or_default()
            .push(Grant {
                service: service.into(),
                operation: operation.into(),
            });
        self
    }

    /// Whether the first message of a connection must be `Authenticate`.
    pub fn requires_authentication(&self) -> bool {
        self.keys.required()
    }

    /// Whether `key` is one of the API keys (any key when none are set).
    pub fn key_is_valid(&self, key: &str) -> bool {
        self.keys.is_valid(key)
    }

    /// Whether `client_id` may run `operation` of `service`. With an ACL, a
    /// client without an id may run nothing.
    pub fn allows(&self, client_id: Option<&str>, service: &str, operation: &str) -> bool {
        let Some(grants) = &self.grants else {
            return true;
        };
        client_id
            .and_then(|id| grants.get(id))
            .is_some_and(|list| list.iter().any(|grant| grant.matches(service, operation)))
    }

    /// Parses an ACL file: a JSON object mapping client ids to lists of
    /// `"Service/operation"` grants (`*` for any part).
    ///
    /// ```json
    /// {"reporting-client": ["ImageProcessingService/resizeImage"], "admin": ["*/*"]}
    /// ```
    pub fn with_acl_json(mut self, text: &str) -> Result<AccessPolicy, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| format!("ACL is not JSON: {error}"))?;
        let object = value
            .as_object()
            .ok_or("ACL must be a JSON object of client id → [\"Service/operation\", ...]")?;
        // An ACL file that grants nothing still turns the ACL on.
        self.grants.get_or_insert_with(HashMap::new);
        for (client, list) in object {
            let list = list
                .as_array()
                .ok_or_else(|| format!("ACL entry `{client}` must be a list of grants"))?;
            for grant in list {
                let text = grant
                    .as_str()
                    .ok_or_else(|| format!("ACL entry `{client}`: grants are strings"))?;
                let (service, operation) = text.split_once('/').ok_or_else(|| {
                    format!("ACL entry `{client}`: `{text}` is not `Service/operation`")
                })?;
                self = self.grant(client.clone(), service, operation);
            }
        }
        Ok(self)
    }
}

/// The policy's API keys decide who is authenticated.
impl Authenticator for AccessPolicy {
    fn required(&self) -> bool {
        self.keys.required()
    }

    fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        self.keys.authenticate(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_policy_allows_everything() {
        let policy = AccessPolicy::open();
        assert!(!policy.requires_authentication());
        assert!(policy.key_is_valid("anything"));
        assert!(policy.allows(None, "S", "op"));
    }

    #[test]
    fn acl_restricts_clients() {
        let policy = AccessPolicy::api_keys(["k"])
            .with_acl_json(r#"{"a": ["S/op"], "b": ["*/op2"], "c": []}"#)
            .unwrap();
        assert!(policy.allows(Some("a"), "S", "op"));
        assert!(!policy.allows(Some("a"), "S", "op2"));
        assert!(policy.allows(Some("b"), "T", "op2"));
        assert!(!policy.allows(Some("c"), "S", "op"));
        assert!(!policy.allows(Some("zz"), "S", "op"));
        assert!(!policy.allows(None, "S", "op"));
        assert!(!policy.key_is_valid("wrong"));
    }

    #[test]
    fn bad_acl_files_are_explained() {
        let policy = AccessPolicy::open();
        assert!(policy
            .clone()
            .with_acl_json("[")
            .unwrap_err()
            .contains("not JSON"));
        assert!(policy
            .clone()
            .with_acl_json("[]")
            .unwrap_err()
            .contains("object"));
        assert!(policy
            .clone()
            .with_acl_json(r#"{"a": "S/op"}"#)
            .unwrap_err()
            .contains("list"));
        assert!(policy
            .with_acl_json(r#"{"a": ["S"]}"#)
            .unwrap_err()
            .contains("Service/operation"));
    }
}
