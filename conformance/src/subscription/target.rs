//! What the suite knows about the target (where it is, the secret its
//! tokens are signed with, its limits, how long to wait) and a case's
//! view of it: fresh names, tokens, and connections opened on any path
//! with the token in the query, in the header, or not at all.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::events::{self, Resource};
use super::observed::Observed;
use super::session::Conn;
use super::tokens;
use crate::session::{Link, Session};
use crate::suite::CaseContext;
use crate::verdict::Stop;
use specwire_runtime::net::{ConnectError, Connector};

/// The target and how to test it.
#[derive(Clone)]
pub struct SubscriptionTarget {
    /// `ws://HOST:PORT` or `wss://HOST:PORT` (no path: the suite adds the
    /// paths).
    pub endpoint: String,
    /// The HS256 secret the target verifies tokens with.
    pub secret: Vec<u8>,
    /// Extra CA certificates (PEM) for `wss://`.
    pub extra_roots: Vec<PathBuf>,
    /// How long to wait for the server's JSON heartbeat (`None`: the
    /// heartbeat case is skipped).
    pub ping_wait: Option<Duration>,
    /// The server's connections-per-user limit, if known.
    pub user_limit: Option<u32>,
    /// The server's connections-per-IP limit, if known.
    pub ip_limit: Option<u32>,
    /// The server's messages-per-second limit on one connection, if known
    /// (the suite then stays under half of it, but in the rate case).
    pub rate_limit: Option<u32>,
    /// How long a reply or a delivery may take.
    pub reply_timeout: Duration,
    /// First seed of the generated sessions.
    pub seed: u64,
    /// How long `subscription.generated.sessions` may take in all.
    pub session_budget: Duration,
    /// Where replay bundles of failed cases go (`None`: not written).
    pub replay_dir: Option<PathBuf>,
}

impl fmt::Debug for SubscriptionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTarget")
            .field("endpoint", &self.endpoint)
            .field("secret", &"(hidden)")
            .field("ping_wait", &self.ping_wait)
            .field("user_limit", &self.user_limit)
            .field("ip_limit", &self.ip_limit)
            .field("rate_limit", &self.rate_limit)
            .field("reply_timeout", &self.reply_timeout)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl SubscriptionTarget {
    /// Defaults for `endpoint` and `secret`: 5 s replies, no limits known,
    /// no heartbeat wait, a 20 s budget for the generated sessions.
    pub fn new(endpoint: impl Into<String>, secret: impl Into<Vec<u8>>) -> SubscriptionTarget {
        SubscriptionTarget {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            secret: secret.into(),
            extra_roots: Vec::new(),
            ping_wait: None,
            user_limit: None,
            ip_limit: None,
            rate_limit: None,
            reply_timeout: Duration::from_secs(5),
            seed: fastrand::u64(..),
            session_budget: Duration::from_secs(20),
            replay_dir: None,
        }
    }
}

/// Where a connection's token goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `?token=...`.
    Query(String),
    /// `Authorization: Bearer ...`.
    Header(String),
    /// No token at all.
    None,
}

/// How a handshake ended.
pub enum Opened {
    /// Upgraded: a connection.
    Conn(Box<Conn>),
    /// Refused with this HTTP status.
    Refused(u16),
}

/// A case's view of the target: names, tokens, connections, and the
/// [`CaseContext`] (transcript, notes, the run's log) it derefs to.
pub struct Ctx {
    /// The target.
    pub target: Arc<SubscriptionTarget>,
    case: CaseContext,
    observed: Arc<Observed>,
    prefix: String,
    names: u32,
}

crate::embeds_case_context!(Ctx);

impl Ctx {
    pub(crate) fn new(
        target: Arc<SubscriptionTarget>,
        case: CaseContext,
        observed: Arc<Observed>,
    ) -> Ctx {
        let prefix = format!("c{:06x}", fastrand::u32(..0x100_0000));
        Ctx {
            target,
            case,
            observed,
            prefix,
            names: 0,
        }
    }

    /// What the run has learnt so far.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// A fresh resource id or user name, `what` in it: no other case and
    /// no other run uses it.
    pub fn fresh(&mut self, what: &str) -> String {
        self.names += 1;
        format!("{}-{what}{}", self.prefix, self.names)
    }

    /// A valid token for `user` (an admin's with `admin`).
    pub fn token(&self, user: &str, admin: bool) -> Result<String, Stop> {
        tokens::mint(&self.target.secret, user, admin.then_some("admin")).map_err(Stop::Harness)
    }

    /// A token for `user` wrong in the way `bad` says.
    pub fn bad_token(&self, user: &str, bad: tokens::Bad) -> Result<String, Stop> {
        tokens::bad(&self.target.secret, user, bad).map_err(Stop::Harness)
    }

    /// Opens `path` (`/ws/...`) as `user` with the token where `auth`
    /// says; a handshake the server refuses with an HTTP status is
    /// [`Opened::Refused`]. A target that cannot be reached is a harness
    /// error; after a few in a row the run stops trying.
    pub async fn open(&mut self, path: &str, auth: &Auth, user: &str) -> Result<Opened, Stop> {
        if let Some(reason) = self.log().blocked() {
            return Err(Stop::Harness(reason));
        }
        let id = self.next_connection();
        let mut url = format!("{}{path}", self.target.endpoint);
        let mut bearer = None;
        match auth {
            Auth::Query(token) => {
                url.push(if path.contains('?') { '&' } else { '?' });
                url.push_str("token=");
                url.push_str(token);
            }
            Auth::Header(token) => bearer = Some(token.clone()),
            Auth::None => {}
        }
        let timeout = self.target.reply_timeout;
        self.log()
            .waiting_for(&format!("a WebSocket handshake for {path}"));
        let shown = match auth {
            Auth::Query(_) => "the token in the query",
            Auth::Header(_) => "the token in the header",
            Auth::None => "no token",
        };
        let connecting = async {
            let connector = Connector::new(url.as_str(), &self.target.extra_roots, timeout)?;
            match bearer {
                Some(token) => connector.with_bearer(token).connect().await,
                None => connector.connect().await,
            }
        };
        let ws = match connecting.await {
            Ok((ws, _)) => ws,
            Err(error) => {
                if let Some(status) = error.http_status() {
                    self.log().connected();
                    self.note_on(
                        id,
                        &format!("{path} with {shown}: refused with HTTP {status}"),
                    );
                    return Ok(Opened::Refused(status));
                }
                let reason = match error {
                    ConnectError::Tls(error) => error,
                    ConnectError::TimedOut => format!(
                        "cannot connect to {}: no WebSocket handshake within {timeout:?}",
                        self.target.endpoint
                    ),
                    other => format!("cannot connect to {}: {other}", self.target.endpoint),
                };
                self.log().connect_failed(&reason);
                return Err(Stop::Harness(reason));
            }
        };
        self.log().connected();
        let session = Session::new(
            Link::WebSocket(Box::new(ws)),
            id,
            self.shared_transcript(),
            Arc::clone(self.log()),
            timeout,
        );
        let conn = Conn::new(
            session,
            Arc::clone(&self.observed),
            self.target.rate_limit,
            user,
        );
        conn.note(&format!("connected to {path} as {user} with {shown}"));
        Ok(Opened::Conn(Box::new(conn)))
    }

    /// Opens `path` as `user` and expects the upgrade: a refusal is a
    /// failure (`what` says of what).
    pub async fn open_conn(
        &mut self,
        path: &str,
        auth: &Auth,
        user: &str,
        what: &str,
    ) -> Result<Conn, Stop> {
        match self.open(path, auth, user).await? {
            Opened::Conn(conn) => Ok(*conn),
            Opened::Refused(status) => Err(Stop::Fail(format!(
                "{what}: the handshake for {path} was refused with HTTP {status}"
            ))),
        }
    }

    /// A tool connection for `user`: `/ws/tasks/{marker}` with the token in
    /// the query, its marker task fresh (see [`Conn::window`]). A refusal
    /// is a harness error: cases that judge connecting open their own.
    pub async fn connect_as(&mut self, user: &str, admin: bool) -> Result<Conn, Stop> {
        let marker = self.fresh("marker");
        let token = self.token(user, admin)?;
        let path = format!("/ws/tasks/{marker}");
        match self.open(&path, &Auth::Query(token), user).await? {
            Opened::Conn(conn) => {
                let mut conn = *conn;
                conn.marker = Some(marker);
                Ok(conn)
            }
            Opened::Refused(status) => Err(Stop::Harness(format!(
                "the target refused {path} with HTTP {status}: subscription.path.* and subscription.auth.* judge that"
            ))),
        }
    }

    /// A tool connection of a fresh user; returns it.
    pub async fn connect(&mut self) -> Result<Conn, Stop> {
        let user = self.fresh("user");
        self.connect_as(&user, false).await
    }

    /// A connection of a fresh admin user, to publish with.
    pub async fn admin(&mut self) -> Result<Conn, Stop> {
        let user = self.fresh("admin");
        self.connect_as(&user, true).await
    }

    /// A fresh experiment in a fresh project, owned by `owner` (a fresh
    /// user when `None`).
    pub fn experiment(&mut self, owner: Option<&str>) -> events::Experiment {
        events::Experiment {
            id: self.fresh("exp"),
            project: self.fresh("proj"),
            owner: owner.map_or_else(|| self.fresh("owner"), str::to_owned),
        }
    }

    /// A fresh resource of `kind` (`user`: a fresh user).
    pub fn resource(&mut self, kind: events::Kind) -> Resource {
        let id = self.fresh(kind.as_str());
        Resource::new(kind, id)
    }
}
