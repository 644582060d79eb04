//! What the suite knows about the target: where it is, how to authenticate,
//! which tasks succeed and fail there, what it advertises.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use specwire_protocol::discovery::ServiceAdvertisement;

use super::session::{Conn, InvalidLog};
use crate::transcript::{Direction, Transcript};
use crate::verdict::Stop;

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
    /// Where replay bundles of failed cases go (`None`: not written).
    pub replay_dir: Option<PathBuf>,
}

impl TaskTarget {
    /// Defaults for `endpoint`: 5 s replies, 30 s tasks, 300 ms settle.
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

/// A case's view of the target: connections, recipes and the transcript.
pub struct Ctx<'t> {
    /// The target.
    pub target: &'t TaskTarget,
    transcript: Arc<Mutex<Transcript>>,
    invalid: InvalidLog,
    connections: u32,
    /// Set by a failed generated case: the seed and (shrunk) steps, for
    /// the replay bundle.
    pub(crate) failed_session: Option<(u64, Vec<super::generated::Step>)>,
}

impl<'t> Ctx<'t> {
    pub(crate) fn new(target: &'t TaskTarget, invalid: InvalidLog) -> Ctx<'t> {
        Ctx {
            target,
            transcript: Arc::new(Mutex::new(Transcript::new())),
            invalid,
            connections: 0,
            failed_session: None,
        }
    }

    /// The transcript so far.
    pub fn transcript(&self) -> Transcript {
        self.transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Every schema-breaking message seen in the run so far.
    pub fn invalid_messages(&self) -> Vec<String> {
        self.invalid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A remark in the transcript.
    pub fn note(&self, text: &str) {
        self.transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(Direction::Note, 0, "note", text);
    }

    /// Opens a connection without authenticating. A target that cannot be
    /// reached is a harness error, not a failure.
    pub async fn connect_raw(&mut self) -> Result<Conn, Stop> {
        self.connections += 1;
        let id = self.connections;
        let connector = if self.target.endpoint.starts_with("wss://") {
            let config = specwire_runtime::tls::client_config(&self.target.extra_roots)
                .map_err(|error| Stop::Harness(error.to_string()))?;
            Some(tokio_tungstenite::Connector::Rustls(config))
        } else {
            None
        };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            self.target.endpoint.as_str(),
            None,
            true,
            connector,
        );
        let ws = match tokio::time::timeout(self.target.reply_timeout, connecting).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(error)) => {
                return Err(Stop::Harness(format!(
                    "cannot connect to {}: {error}",
                    self.target.endpoint
                )))
            }
            Err(_) => {
                return Err(Stop::Harness(format!(
                    "cannot connect to {}: no WebSocket handshake within {:?}",
                    self.target.endpoint, self.target.reply_timeout
                )))
            }
        };
        let conn = Conn::new(
            ws,
            id,
            Arc::clone(&self.transcript),
            Arc::clone(&self.invalid),
            self.target.reply_timeout,
        );
        conn.note(&format!("connected to {}", self.target.endpoint));
        Ok(conn)
    }

    /// Opens a connection and, when an API key was given, authenticates
    /// (waiting for the `Ack`). Cases that are not about authentication use
    /// this; if authentication itself fails, that is a harness error here
    /// (the auth cases report it).
    pub async fn connect(&mut self) -> Result<Conn, Stop> {
        let mut conn = self.connect_raw().await?;
        if let Some(key) = &self.target.api_key {
            let acknowledgment_id = specwire_runtime::clock::new_id();
            let message = specwire_runtime::task::messages::authenticate(
                key,
                &self.target.client_id,
                Some(&acknowledgment_id),
            );
            conn.send(&message.text).await?;
            let message_id = message.message_id.clone();
            let answered = |msg: &super::session::Msg| {
                (msg.kind() == "Ack" && msg.acknowledgment_id() == Some(&acknowledgment_id))
                    || (msg.kind() == "Error" && msg.related() == Some(&message_id))
            };
            let timeout = self.target.reply_timeout;
            let (answer, _) = conn
                .expect("an answer to Authenticate", timeout, answered)
                .await
                .map_err(|stop| match stop {
                    Stop::Fail(reason) => Stop::Harness(format!(
                        "could not authenticate with --api-key (see task.auth.*): {reason}"
                    )),
                    other => other,
                })?;
            if answer.kind() != "Ack" {
                return Err(Stop::Harness(format!(
                    "could not authenticate with --api-key (see task.auth.*): {}",
                    answer.describe()
                )));
            }
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
