//! What each [`Fault`] does: to the handshake (tokens refused or
//! accepted that should not be, paths served or not), to what the client
//! sends (messages refused or swallowed, subscriptions changed behind its
//! back) and to what the hub sends (messages edited, dropped, duplicated,
//! reordered). One fault breaks one spec point; the rest passes through.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use specwire_conformance::subscription::{events, tokens};
use specwire_protocol::subscription::Message;
use specwire_protocol::{Direction, JsonProtocol};
use specwire_runtime::clock::{new_id, now_rfc3339};

use super::proxy::Shared;
use super::SECRET;

/// One deliberate fault: the hub behind the proxy breaks exactly one
/// spec point and stays right otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A transparent proxy: the control.
    None,
    /// A query token on `/ws/user` is refused as invalid.
    QueryTokenOnUser,
    /// A header token on `/ws/experiments/{id}` is refused as invalid.
    HeaderTokenOnExperiments,
    /// No token: `error` "Unauthorized" (not the profile's text), close 1008.
    MissingTokenText,
    /// A token signed with another secret is accepted.
    AcceptWrongSecret,
    /// An expired token is accepted.
    AcceptExpired,
    /// An `alg: none` token is accepted.
    AcceptAlgNone,
    /// An HS384 token is accepted.
    AcceptHs384,
    /// A token without `sub` is accepted.
    AcceptNoSubject,
    /// `/ws/workers/{id}` is served (as some task's path).
    UnknownPathServed,
    /// `/ws/projects/{id}` is served without subscribing the project.
    ProjectPathNotSubscribed,
    /// `error` messages carry `data` as a string (the schema wants an object).
    InvalidErrorData,
    /// `pong`s lack a `timestamp`.
    PongWithoutTimestamp,
    /// A client message without `id` is refused with an `error`.
    RefuseIdLess,
    /// A client message with unknown members is refused with an `error`.
    RefuseExtraFields,
    /// Events get a UUID for an id (a SHOULD).
    EventIdsRewritten,
    /// `subscribed` replies name another resource id.
    ReplyWrongResource,
    /// `unsubscribed` replies say `subscribed`.
    UnsubscribedSaysSubscribed,
    /// Unsubscribing an experiment is acknowledged but not done.
    UnsubscribeIgnored,
    /// Task events matching only an explicit task subscription are lost.
    DropTaskViaTask,
    /// Task events matching only an experiment subscription are lost.
    DropTaskViaExperiment,
    /// Task events matching only a project subscription are lost.
    DropTaskViaProject,
    /// Task events matching only a user subscription are lost.
    DropTaskViaUser,
    /// Experiment events matching only an experiment subscription are lost.
    DropExperimentViaExperiment,
    /// Experiment events matching only a project subscription are lost.
    DropExperimentViaProject,
    /// Experiment events matching only a user subscription are lost.
    DropExperimentViaUser,
    /// Worker events matching only a worker subscription are lost.
    DropWorkerViaWorker,
    /// Worker events matching only a system subscription are lost.
    DropWorkerViaSystem,
    /// System events reach only connections subscribed to `system`.
    SystemOnlyToSubscribers,
    /// Subscribing an experiment also subscribes `system`, unseen: worker
    /// events leak to experiment subscribers.
    LeakWorkersToExperiments,
    /// An event matching several subscriptions arrives once per match.
    DuplicatePerMatch,
    /// A `task_progress` reaching an experiment subscriber is held back
    /// behind the next event.
    Reorder,
    /// `pong`s carry `pong-123`, not the ping's id.
    PongWrongId,
    /// The hub's JSON `ping`s never arrive.
    DropServerPings,
    /// Text that is not JSON gets no answer.
    SwallowMalformed,
    /// A message of an unknown type gets no answer.
    SwallowUnknownType,
    /// A subscribe with wrong field types gets no answer.
    SwallowBadFields,
    /// A message of an unknown type drops the connection's subscriptions.
    ForgetOnUnknownType,
    /// The `error` for an unknown type says "Unsupported message" (a SHOULD).
    UnknownTypeText,
    /// A valid publish gets an `error` (and is routed all the same).
    ErrorAfterPublish,
    /// A routed `experiment_updated` has another status than published.
    TamperEvent,
    /// An invalid event is mended and routed, with no `error`.
    MendInvalidEvent,
    /// Tokens without the admin role get it.
    EveryoneAdmin,
    /// Subscribing again what was unsubscribed on the connection is
    /// acknowledged but not done.
    ResubscribeIgnored,
}

/// The client's handshake, as the proxy read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query_token: Option<String>,
    pub bearer: Option<String>,
}

impl Request {
    /// The path and query to request upstream.
    pub fn target(&self) -> String {
        match &self.query_token {
            Some(token) => format!("{}?token={token}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What becomes of a handshake.
pub enum Handshake {
    /// Upgrade, then refuse with this `error` text and a close 1008.
    Refuse(String),
    /// Connect upstream with this request.
    Upstream(Request, Box<ConnState>),
}

/// What the proxy does with a message.
pub enum Action {
    ToClient(String),
    ToHub(String),
}

/// An `error` message with `text`.
pub fn error(text: &str) -> String {
    json!({"type": "error", "id": new_id(), "timestamp": now_rfc3339(), "error": text}).to_string()
}

/// What is wrong with a token, as the hub would see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Valid,
    WrongSecret,
    Expired,
    AlgNone,
    Hs384,
    NoSubject,
    Other,
}

fn classify(token: &str) -> TokenKind {
    use base64::Engine;
    let header = token
        .split('.')
        .next()
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match header.as_ref().and_then(|header| header["alg"].as_str()) {
        Some("none") => return TokenKind::AlgNone,
        Some("HS384") => return TokenKind::Hs384,
        _ => {}
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    match decode::<Value>(token, &DecodingKey::from_secret(SECRET), &validation) {
        Ok(data) if data.claims.get("sub").is_some() => TokenKind::Valid,
        Ok(_) => TokenKind::NoSubject,
        Err(error) => match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenKind::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenKind::WrongSecret,
            _ => TokenKind::Other,
        },
    }
}

/// A valid token standing for `token`: same `sub` (or `anonymous`), same
/// role (or `admin` when `admin`).
fn remint(token: &str, admin: bool) -> String {
    let claims = tokens::claims_of(token).unwrap_or(Value::Null);
    let sub = claims["sub"].as_str().unwrap_or("anonymous");
    let role = if admin {
        Some("admin")
    } else {
        claims["role"].as_str()
    };
    tokens::mint(SECRET, sub, role).unwrap_or_default()
}

/// A resource `(type, id)`.
type Res = (String, String);

fn res(kind: &str, id: &str) -> Res {
    (kind.to_owned(), id.to_owned())
}

/// One proxied connection's state.
pub struct ConnState {
    fault: Fault,
    shared: Arc<Shared>,
    path_resource: Option<Res>,
    explicit: HashSet<Res>,
    unsubscribed: HashSet<Res>,
    /// Subscription replies to drop, by resource id (the proxy's own
    /// requests).
    swallow: Vec<String>,
    held: VecDeque<String>,
    hidden: u32,
}

impl ConnState {
    /// Applies the fault to the handshake.
    pub fn handshake(shared: &Arc<Shared>, mut request: Request) -> Handshake {
        let fault = shared.fault;
        let token = request
            .query_token
            .clone()
            .or_else(|| request.bearer.clone());
        let refuse = |text: &str| Handshake::Refuse(text.to_owned());
        match fault {
            Fault::QueryTokenOnUser
                if request.path == "/ws/user" && request.query_token.is_some() =>
            {
                return refuse("Invalid or expired token")
            }
            Fault::HeaderTokenOnExperiments
                if request.path.starts_with("/ws/experiments/") && request.bearer.is_some() =>
            {
                return refuse("Invalid or expired token")
            }
            Fault::MissingTokenText if token.is_none() && request.path.starts_with("/ws/") => {
                return refuse("Unauthorized")
            }
            Fault::UnknownPathServed if request.path.starts_with("/ws/workers/") => {
                request.path = format!("/ws/tasks/proxied-{}", new_id());
            }
            Fault::ProjectPathNotSubscribed if request.path.starts_with("/ws/projects/") => {
                request.path = format!("/ws/tasks/proxied-{}", new_id());
            }
            _ => {}
        }
        if let Some(token) = &token {
            let kind = classify(token);
            let mend = matches!(
                (fault, kind),
                (Fault::AcceptWrongSecret, TokenKind::WrongSecret)
                    | (Fault::AcceptExpired, TokenKind::Expired)
                    | (Fault::AcceptAlgNone, TokenKind::AlgNone)
                    | (Fault::AcceptHs384, TokenKind::Hs384)
                    | (Fault::AcceptNoSubject, TokenKind::NoSubject)
            );
            let admin = fault == Fault::EveryoneAdmin && kind == TokenKind::Valid;
            if mend || admin {
                let fresh = remint(token, admin);
                if request.query_token.is_some() {
                    request.query_token = Some(fresh);
                } else {
                    request.bearer = Some(fresh);
                }
            }
        }
        let user = token
            .as_deref()
            .and_then(tokens::claims_of)
            .and_then(|claims| claims["sub"].as_str().map(str::to_owned));
        let path_resource = path_resource(&request.path, user.as_deref());
        let state = ConnState {
            fault,
            shared: Arc::clone(shared),
            path_resource,
            explicit: HashSet::new(),
            unsubscribed: HashSet::new(),
            swallow: Vec::new(),
            held: VecDeque::new(),
            hidden: 0,
        };
        Handshake::Upstream(request, Box::new(state))
    }
}

/// The resource a path names.
fn path_resource(path: &str, user: Option<&str>) -> Option<Res> {
    let mut parts = path.trim_start_matches("/ws/").splitn(2, '/');
    let kind = match parts.next()? {
        "tasks" => "task",
        "experiments" => "experiment",
        "projects" => "project",
        "user" => return user.map(|user| res("user", user)),
        _ => return None,
    };
    Some(res(kind, parts.next()?))
}

#[path = "rules_messages.rs"]
mod messages;
