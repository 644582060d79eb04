//! What the suite knows about the target: where it is, how to authenticate,
//! which tasks succeed and fail there, what it advertises.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use specwire_protocol::discovery::ServiceAdvertisement;

use super::observed::Observed;
use super::session::{Conn, Msg};
use crate::session::{Link, Session};
use crate::suite::CaseContext;
use crate::verdict::Stop;
use specwire_runtime::net::{connect, ConnectError};

/// One way to make a task on this target: `operation` of `service` with
/// `taskParameters`.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// `serviceName`; defaults to the target's (`--service` or its
    /// advertisement).
    pub service: Option<String>,
    /// `operation`.
    pub operation: String,
    /// `taskParameters`.
    pub parameters: Map<String, Value>,
}

/// `--tasks FILE`: how to make a task succeed and fail on this target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recipes {
    /// A task that ends in `TaskResult`.
    pub succeeds: Option<Recipe>,
    /// A task that ends in `TaskFailed`.
    pub fails: Option<Recipe>,
}

impl Recipes {
    /// Parses `{"succeeds": {"operation", "taskParameters", "serviceName"?},
    /// "fails": {...}}` (either part optional).
    pub fn from_json(text: &str) -> Result<Recipes, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let object = value
            .as_object()
            .ok_or("must be a JSON object with `succeeds` and/or `fails`")?;
        for key in object.keys() {
            if key != "succeeds" && key != "fails" {
                return Err(format!(
                    "unknown key `{key}` (expected `succeeds`, `fails`)"
                ));
            }
        }
        let part = |name: &str| -> Result<Option<Recipe>, String> {
            let Some(part) = object.get(name) else {
                return Ok(None);
            };
            let operation = part
                .get("operation")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`{name}.operation` must be a string"))?;
            let parameters = match part.get("taskParameters") {
                None => Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(_) => return Err(format!("`{name}.taskParameters` must be an object")),
            };
            let service = match part.get("serviceName") {
                None => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => return Err(format!("`{name}.serviceName` must be a string")),
            };
            Ok(Some(Recipe {
                service,
                operation: operation.to_owned(),
                parameters,
            }))
        };
        Ok(Recipes {
            succeeds: part("succeeds")?,
            fails: part("fails")?,
        })
    }
}

/// The target and how to test it.
#[derive(Clone, Debug)]
pub struct TaskTarget {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub endpoint: String,
    /// Authenticate with this key (and run the auth cases).
    pub api_key: Option<String>,
    /// `clientId` the suite authenticates as.
    pub client_id: String,
    /// A client id the target's ACL denies the `succeeds` operation.
    pub forbidden_client: Option<String>,
    /// Extra CA certificates (PEM) for `wss://`.
    pub extra_roots: Vec<PathBuf>,
    /// `serviceName` to use (else from the advertisement or the recipes).
    pub service: Option<String>,
    /// The target's advertisement, when discovery found it.
    pub advertisement: Option<ServiceAdvertisement>,
    /// How to make tasks succeed and fail.
    pub recipes: Recipes,
    /// How long a reply may take.
    pub reply_timeout: Duration,
    /// How long a `succeeds`/`fails` task may take to end.
    pub task_timeout: Duration,
    /// How long to keep listening for messages that must not come.
    pub settle: Duration,
    /// First seed of the generated sessions.
    pub seed: u64,
    /// How long `task.generated.sessions` may take in all: sessions, and
    /// shrinking a failing one. When it runs out, the failure found so far
    /// is reported (with its replay bundle) as it is.
    pub session_budget: Duration,
    /// Where replay bundles of failed cases go (`None`: not written).
    pub replay_dir: Option<PathBuf>,
}

impl TaskTarget {
    /// Defaults for `endpoint`: 5 s replies, 30 s tasks, 300 ms settle, a
    /// 30 s budget for the generated sessions.
    pub fn new(endpoint: impl Into<String>) -> TaskTarget {
        TaskTarget {
            endpoint: endpoint.into(),
            api_key: None,
            client_id: format!("specwire-conformance-{}", specwire_runtime::clock::new_id()),
            forbidden_client: None,
            extra_roots: Vec::new(),
            service: None,
            advertisement: None,
            recipes: Recipes::default(),
            reply_timeout: Duration::from_secs(5),
            task_timeout: Duration::from_secs(30),
            settle: Duration::from_millis(300),
            seed: fastrand::u64(..),
            session_budget: Duration::from_secs(30),
            replay_dir: None,
        }
    }

    /// The `serviceName` the suite uses for tasks.
    pub fn service_name(&self) -> Option<String> {
        self.service
            .clone()
            .or_else(|| {
                self.advertisement
                    .as_ref()
                    .map(|ad| ad.service_name.clone())
            })
            .or_else(|| {
                [&self.recipes.succeeds, &self.recipes.fails]
                    .into_iter()
                    .flatten()
                    .find_map(|recipe| recipe.service.clone())
            })
    }
}

/// A case's view of the target: connections, recipes, and the
/// [`CaseContext`] (transcript, notes, the run's log) it derefs to.
pub struct Ctx {
    /// The target.
    pub target: Arc<TaskTarget>,
    case: CaseContext,
    observed: Arc<Observed>,
}

crate::embeds_case_context!(Ctx);

impl Ctx {
    pub(crate) fn new(target: Arc<TaskTarget>, case: CaseContext, observed: Arc<Observed>) -> Ctx {
        Ctx {
            target,
            case,
            observed,
        }
    }

    /// What the run has learnt about the target so far.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// Opens a connection without authenticating. A target that cannot be
    /// reached is a harness error, not a failure; after a few such errors
    /// in a row the run stops trying ([`Observed::connect_failed`]).
    pub async fn connect_raw(&mut self) -> Result<Conn, Stop> {
        if let Some(reason) = self.log().blocked() {
            return Err(Stop::Harness(reason));
        }
        let opened = self.open().await;
        match &opened {
            Ok(_) => self.log().connected(),
            Err(Stop::Harness(reason)) => self.log().connect_failed(reason),
            Err(_) => {}
        }
        opened
    }

    async fn open(&mut self) -> Result<Conn, Stop> {
        let id = self.next_connection();
        let endpoint = self.target.endpoint.clone();
        let timeout = self.target.reply_timeout;
        self.log()
            .waiting_for(&format!("a WebSocket handshake with {endpoint}"));
        let ws = match connect(&endpoint, &self.target.extra_roots, timeout).await {
            Ok((ws, _)) => ws,
            Err(ConnectError::Tls(error)) => return Err(Stop::Harness(error)),
            Err(ConnectError::TimedOut) => {
                return Err(Stop::Harness(format!(
                    "cannot connect to {endpoint}: no WebSocket handshake within {timeout:?}"
                )))
            }
            Err(error) => {
                return Err(Stop::Harness(format!(
                    "cannot connect to {endpoint}: {error}"
                )))
            }
        };
        let session = Session::new(
            Link::WebSocket(Box::new(ws)),
            id,
            self.shared_transcript(),
            std::sync::Arc::clone(self.log()),
            timeout,
        );
        let conn = Conn::new(session, Arc::clone(&self.observed));
        conn.note(&format!("connected to {endpoint}"));
        Ok(conn)
    }

    /// Opens a connection and, when an API key was given, authenticates
    /// (waiting for the answer). Cases that are not about authentication
    /// use this. If authentication itself fails, that is a harness error
    /// here, and every later call fails the same way at once (the auth
    /// cases, which use [`connect_raw`](Ctx::connect_raw), report it).
    ///
    /// Any `Ack` is taken as acceptance: whether it carries the right
    /// `acknowledgmentId` is `task.ack.first-reply`'s point, not a reason
    /// to stop every case.
    pub async fn connect(&mut self) -> Result<Conn, Stop> {
        if let Some(reason) = self.observed.authentication_failed() {
            return Err(Stop::Harness(reason));
        }
        let mut conn = self.connect_raw().await?;
        let Some(key) = &self.target.api_key else {
            return Ok(conn);
        };
        let acknowledgment_id = specwire_runtime::clock::new_id();
        let message = specwire_runtime::task::messages::authenticate(
            key,
            &self.target.client_id,
            Some(&acknowledgment_id),
        );
        conn.send(&message.text).await?;
        // Only Authenticate was sent on this connection: any Ack or Error
        // answers it, named or not.
        let answered = |msg: &Msg| msg.kind() == "Ack" || msg.kind() == "Error";
        let timeout = self.target.reply_timeout;
        let refused = |reason: String| {
            format!("could not authenticate with --api-key (see task.auth.*): {reason}")
        };
        let answer = match conn
            .expect("an answer to Authenticate", timeout, answered)
            .await
        {
            Ok((answer, _)) => answer,
            Err(Stop::Fail(reason)) => {
                let reason = refused(reason);
                self.observed.fail_authentication(reason.clone());
                return Err(Stop::Harness(reason));
            }
            Err(other) => return Err(other),
        };
        if answer.kind() != "Ack" {
            let reason = refused(answer.describe());
            self.observed.fail_authentication(reason.clone());
            return Err(Stop::Harness(reason));
        }
        if answer.acknowledgment_id() != Some(acknowledgment_id.as_str()) {
            conn.note("the Ack of Authenticate does not carry the acknowledgmentId sent (task.ack.first-reply judges that); authenticated all the same");
        }
        Ok(conn)
    }

    /// The `succeeds` recipe, or a skip naming the option.
    pub fn succeeds(&self) -> Result<Recipe, Stop> {
        self.recipe(self.target.recipes.succeeds.as_ref(), "succeeds")
    }

    /// The `fails` recipe, or a skip naming the option.
    pub fn fails(&self) -> Result<Recipe, Stop> {
        self.recipe(self.target.recipes.fails.as_ref(), "fails")
    }

    fn recipe(&self, recipe: Option<&Recipe>, part: &str) -> Result<Recipe, Stop> {
        let mut recipe = recipe.cloned().ok_or_else(|| {
            Stop::Skip(format!(
                "needs a `{part}` task: pass --tasks FILE with {{\"{part}\": {{\"operation\": ..., \"taskParameters\": {{...}}}}}}"
            ))
        })?;
        if recipe.service.is_none() {
            recipe.service = Some(self.target.service_name().ok_or_else(|| {
                Stop::Skip(format!(
                    "the `{part}` task names no serviceName and none is known: pass --service NAME or --discovery-port"
                ))
            })?);
        }
        Ok(recipe)
    }

    /// The API key, or a skip.
    pub fn api_key(&self) -> Result<String, Stop> {
        self.target.api_key.clone().ok_or_else(|| {
            Stop::Skip("needs --api-key KEY (a target that requires authentication)".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_parse_and_explain_mistakes() {
        let recipes = Recipes::from_json(
            r#"{"succeeds": {"operation": "noop"}, "fails": {"operation": "fail", "taskParameters": {"code": "X"}, "serviceName": "S"}}"#,
        )
        .unwrap();
        assert_eq!(recipes.succeeds.unwrap().operation, "noop");
        assert_eq!(recipes.fails.unwrap().service.as_deref(), Some("S"));
        assert!(Recipes::from_json("{}").unwrap().succeeds.is_none());
        assert!(Recipes::from_json("[").unwrap_err().contains("not JSON"));
        assert!(Recipes::from_json(r#"{"succeed": {}}"#)
            .unwrap_err()
            .contains("succeed"));
        assert!(Recipes::from_json(r#"{"fails": {}}"#)
            .unwrap_err()
            .contains("operation"));
        assert!(
            Recipes::from_json(r#"{"fails": {"operation": "x", "taskParameters": 3}}"#)
                .unwrap_err()
                .contains("object")
        );
    }
}
