//! The fault proxy: a WebSocket proxy in front of the reference provider
//! that breaks exactly one spec point ([`Fault`]). Faults of the WebSocket
//! layer are applied to raw bytes here; faults of messages in
//! [`rewrite`](super::rewrite).

use super::rewrite::serve_messages;
use super::*;

// ---------------------------------------------------------------------------
// The fault proxy
// ---------------------------------------------------------------------------

/// One deliberate fault: the provider behind the proxy breaks exactly one
/// spec point and stays valid otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A transparent proxy: the control.
    None,
    /// `Error` messages carry a timestamp that is not a date-time.
    InvalidErrorTimestamp,
    /// A client message with unknown top-level members is refused with
    /// `Error INVALID_MESSAGE` (by the proxy, not forwarded).
    RefuseUnknownFields,
    /// `Ack`s (but `Authenticate`'s) come after the next message.
    LateAck,
    /// The first live `TaskResult` of a task is sent twice.
    DuplicateResult,
    /// Before the first live `TaskResult`, an update with a lower progress.
    ProgressGoesBack,
    /// After a task's first terminal message, a `Processing` update.
    UpdateAfterTerminal,
    /// A `fail` task's live `TaskFailed` is delivered as `Cancelled`.
    FailedAsCancelled,
    /// `UNKNOWN_OPERATION` for an unknown operation of a known service
    /// becomes `INTERNAL`.
    UnknownOperationCode,
    /// `UNKNOWN_OPERATION` for an unknown service becomes `INTERNAL`.
    UnknownServiceCode,
    /// `TaskFailed INVALID_PARAMETERS` becomes `INTERNAL`.
    InvalidParametersCode,
    /// `INVALID_MESSAGE` answering a schema-breaking `AssignTask` becomes
    /// `INTERNAL`.
    BrokenEnvelopeCode,
    /// A repeated `AssignTask` of a finished task runs it again (upstream
    /// under a new task id, mapped back).
    ReassignRunsAgain,
    /// `CancelTask` of a finished task is answered with `Cancelled`.
    CancelFinishedTerminates,
    /// `TASK_NOT_FOUND` answering `CancelTask` becomes `INTERNAL`.
    CancelUnknownCode,
    /// After a live `Cancelled`, a `TaskResult` for the task.
    ResultAfterCancel,
    /// `TASK_NOT_FOUND` answering `GetStatus` becomes `INTERNAL`.
    StatusUnknownCode,
    /// `TASK_NOT_FOUND` answering `GetResult` becomes `INTERNAL`.
    ResultUnknownCode,
    /// `GetStatus` of a finished task is answered with `Processing`.
    StatusFinishedProcessing,
    /// `GetResult` of a completed task gets `Error RESULT_NOT_READY`.
    ResultFinishedNotReady,
    /// `GetResult` of a failed task gets `Error RESULT_NOT_READY`.
    ResultFailedNotReady,
    /// `INVALID_MESSAGE` answering text that is not JSON becomes
    /// `UNKNOWN_TYPE`.
    MalformedJsonCode,
    /// `INVALID_MESSAGE` answering a schema-breaking message other than
    /// `AssignTask` becomes `INTERNAL`.
    WrongTypesCode,
    /// `UNKNOWN_TYPE` becomes `INVALID_MESSAGE`.
    UnknownTypeCode,
    /// The `TaskResult` of a task that was running when text that is not
    /// JSON arrived is dropped.
    LoseResultOnGarbage,
    /// Any terminal message (`Cancelled` too) of a task that was running
    /// when text that is not JSON arrived is dropped.
    LoseEndOnGarbage,
    /// The proxy authenticates upstream itself on connect: messages before
    /// `Authenticate` are served.
    ServeBeforeAuthenticate,
    /// A wrong key in `Authenticate` is replaced by the right one.
    AcceptWrongKey,
    /// `Authenticate` is refused with `Error UNAUTHORIZED`, whatever the key.
    RefuseRightKey,
    /// `TaskFailed FORBIDDEN` becomes `UNKNOWN_OPERATION`.
    ForbiddenCode,
    /// Pings never reach the provider, so no pong comes back.
    NoPong,
    /// A close frame from the client drops the TCP connection: no close
    /// frame back.
    NoCloseReply,
    /// A `CancelTask` of a task assigned twice on the connection closes it.
    CloseOnReassignThenCancel,
    // SHOULD points: the same precision, for the warnings.
    /// A message over 1 MiB drops the connection.
    DropOnLargeMessage,
    /// `Ack`s that name a task name another one.
    AckWrongTaskId,
    /// `Error`s that name a message name another one.
    ErrorWrongRelated,
    // Hostile, for the time bounds (not a single spec point).
    /// Every `Ack` spells `acknowledgmentId` as `acknowledgementId`.
    MisspelledAck,
}

impl Fault {
    /// Faults that need the WebSocket frames themselves: the proxy passes
    /// bytes through and inspects the client's frames.
    fn is_raw(self) -> bool {
        matches!(self, Fault::NoPong | Fault::NoCloseReply)
    }
}

/// A WebSocket proxy in front of a provider, applying one [`Fault`].
pub struct FaultProxy {
    acceptor: Acceptor,
}

/// What the proxy knows about the provider behind it.
#[derive(Clone, Debug)]
pub(super) struct Upstream {
    pub(super) endpoint: String,
    pub(super) addr: SocketAddr,
    /// The services it serves.
    pub(super) services: HashSet<String>,
    /// Its API key, if it requires one.
    pub(super) api_key: Option<String>,
    /// A client id its ACL grants everything.
    pub(super) client_id: String,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `provider` (plain
    /// `ws://`), which requires `api_key` (if any).
    pub async fn start(provider: &Provider, api_key: Option<&str>, fault: Fault) -> FaultProxy {
        let upstream = Arc::new(Upstream {
            endpoint: provider.endpoint(),
            addr: provider.local_addr(),
            services: provider
                .services()
                .into_iter()
                .map(|service| service.name)
                .collect(),
            api_key: api_key.map(str::to_owned),
            client_id: SUITE_CLIENT.to_owned(),
        });
        let acceptor = Acceptor::start(move |stream| {
            let upstream = Arc::clone(&upstream);
            async move {
                if fault.is_raw() {
                    serve_raw(stream, upstream.addr, fault).await;
                } else {
                    serve_messages(stream, upstream, fault).await;
                }
            }
        })
        .await;
        FaultProxy { acceptor }
    }

    /// `ws://ADDR` of the proxy.
    pub fn endpoint(&self) -> String {
        self.acceptor.endpoint()
    }
}

// ---- raw mode: bytes through, client frames inspected ---------------------

/// Passes bytes both ways; in the client → provider direction, after the
/// HTTP upgrade request, parses the (masked) frames and drops pings
/// ([`Fault::NoPong`]) or drops the connection on a close frame
/// ([`Fault::NoCloseReply`]).
async fn serve_raw(client: TcpStream, upstream: SocketAddr, fault: Fault) {
    let Some(provider) = specwire_testsupport::accept::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut provider_read, mut provider_write) = provider.into_split();
    let down = async {
        let _ = tokio::io::copy(&mut provider_read, &mut client_write).await;
    };
    let up = async {
        let mut buffer: Vec<u8> = Vec::new();
        let mut upgraded = false;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            buffer.extend_from_slice(&chunk[..read]);
            if !upgraded {
                let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
                    continue;
                };
                let request: Vec<u8> = buffer.drain(..end + 4).collect();
                if provider_write.write_all(&request).await.is_err() {
                    return;
                }
                upgraded = true;
            }
            while let Some((opcode, length)) = frame_at(&buffer) {
                let frame: Vec<u8> = buffer.drain(..length).collect();
                match (fault, opcode) {
                    (Fault::NoPong, 0x9) => continue,
                    (Fault::NoCloseReply, 0x8) => return,
                    _ => {
                        if provider_write.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    // Either side ending ends both: the sockets drop here.
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}

/// The opcode and total length of the complete frame at the start of
/// `buffer`, if it holds one.
fn frame_at(buffer: &[u8]) -> Option<(u8, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    let masked = buffer[1] & 0x80 != 0;
    let (payload, mut header) = match buffer[1] & 0x7f {
        126 => {
            let bytes = buffer.get(2..4)?;
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if masked {
        header += 4;
    }
    let total = header + usize::try_from(payload).ok()?;
    (buffer.len() >= total).then_some((opcode, total))
}
