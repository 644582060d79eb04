//! The fault proxy's message mode: one upstream connection per client
//! connection, every message inspected, and the one [`Fault`] applied to
//! what the provider says.

use super::proxy::Upstream;
use super::*;

// ---- message mode: one upstream connection per client connection ----------

/// What the proxy does with one message.
#[derive(Debug)]
enum Action {
    ToClient(String),
    ToProvider(String),
    /// Drop both connections without a word.
    Drop,
}

/// How the provider ended a task, as seen on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    Failed,
    Cancelled,
}

/// What the proxy knows about a task assigned on this connection.
#[derive(Clone, Debug, Default)]
struct TaskInfo {
    service: String,
    operation: String,
    /// Times the client assigned it.
    assigned: u32,
    /// Its first (live) terminal message, once seen.
    ended: Option<Ending>,
    /// Highest progress reported.
    progress: u8,
    /// Was running when text that is not JSON arrived.
    doomed: bool,
}

/// What a client message was, for mapping the provider's `Error` replies
/// (by `relatedMessageId`) to the situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Cancel,
    Status,
    Result,
    /// An `AssignTask` that breaks the schema.
    BrokenAssign,
    /// Another client message that breaks the schema.
    BrokenOther,
}

/// A provider message, as the fault rules read it.
struct Seen {
    kind: String,
    task_id: Option<String>,
    /// `task_id`, or empty.
    id: String,
    /// `errorCode`, or empty.
    code: String,
    related: Option<String>,
    /// What the client message it answers (by `relatedMessageId`) was.
    asked: Option<Asked>,
    /// How the task ended, when this is its first terminal message.
    live_end: Option<Ending>,
    /// The task it is about, when assigned on this connection.
    task: Option<TaskInfo>,
}

/// What the fault does to one provider message.
enum Rewrite {
    /// Forward it (edited in place, perhaps) after `before`.
    Forward { before: Vec<Action> },
    /// Send these instead.
    Replace(Vec<Action>),
    /// Hold it back until the next message ([`Fault::LateAck`]).
    Hold,
}

/// One connection's state.
struct ConnState {
    fault: Fault,
    upstream: Arc<Upstream>,
    tasks: HashMap<String, TaskInfo>,
    asked: HashMap<String, Asked>,
    /// `acknowledgmentId`s of `Authenticate` messages.
    auth_acks: HashSet<String>,
    /// `Ack`s held back ([`Fault::LateAck`]).
    held: Vec<String>,
    /// Texts that were not JSON, not yet answered.
    garbage_pending: usize,
    /// Upstream task id → the client's ([`Fault::ReassignRunsAgain`]).
    aliases: HashMap<String, String>,
}

fn set_code(value: &mut Value, code: &str) -> String {
    value["payload"]["errorCode"] = json!(code);
    value.to_string()
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn report(task_id: &str, state: &TaskState, progress: u8) -> String {
    messages::report(&TaskReport {
        task_id,
        state,
        progress,
        note: None,
        client_id: None,
    })
}

impl ConnState {
    fn new(fault: Fault, upstream: Arc<Upstream>) -> ConnState {
        ConnState {
            fault,
            upstream,
            tasks: HashMap::new(),
            asked: HashMap::new(),
            auth_acks: HashSet::new(),
            held: Vec::new(),
            garbage_pending: 0,
            aliases: HashMap::new(),
        }
    }

    /// What to send upstream as soon as the connection is open.
    fn opening(&self) -> Vec<Action> {
        match (self.fault, &self.upstream.api_key) {
            (Fault::ServeBeforeAuthenticate, Some(key)) => {
                // No acknowledgmentId: the provider answers nothing.
                let message = messages::authenticate(key, &self.upstream.client_id, None);
                vec![Action::ToProvider(message.text)]
            }
            _ => Vec::new(),
        }
    }

    fn finished(&self, task_id: &str) -> Option<Ending> {
        self.tasks.get(task_id).and_then(|task| task.ended)
    }

    fn on_client(&mut self, text: String) -> Vec<Action> {
        let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
            return self.on_garbage(text);
        };
        let kind = str_at(&value, "/type").unwrap_or_default().to_owned();
        let message_id = str_at(&value, "/messageId").unwrap_or_default().to_owned();
        let task_id = str_at(&value, "/payload/taskId").map(str::to_owned);
        let valid = Message::decode_from(value.clone(), Some(Direction::ClientToServer)).is_ok();
        if !valid {
            let client_kind = matches!(
                kind.as_str(),
                "Authenticate" | "AssignTask" | "CancelTask" | "GetStatus" | "GetResult"
            );
            if client_kind {
                let asked = if kind == "AssignTask" {
                    Asked::BrokenAssign
                } else {
                    Asked::BrokenOther
                };
                self.asked.insert(message_id.clone(), asked);
            }
            return vec![Action::ToProvider(text)];
        }
        let id = task_id.clone().unwrap_or_default();
        let answered = match kind.as_str() {
            "Authenticate" => self.on_authenticate(&mut value, &message_id),
            "AssignTask" => self.on_assign(&mut value, &id),
            "CancelTask" => self.on_cancel(&id, &message_id),
            "GetStatus" => self.on_get_status(&id, &message_id),
            "GetResult" => self.on_get_result(&id, &message_id),
            _ => None,
        };
        answered
            .or_else(|| self.refuse(&text, &value, &message_id, task_id.as_deref()))
            .unwrap_or_else(|| vec![Action::ToProvider(text)])
    }

    /// Text that is not JSON: forwarded; under the garbage faults, every
    /// running task is doomed.
    fn on_garbage(&mut self, text: String) -> Vec<Action> {
        self.garbage_pending += 1;
        if matches!(
            self.fault,
            Fault::LoseResultOnGarbage | Fault::LoseEndOnGarbage
        ) {
            for task in self.tasks.values_mut() {
                if task.ended.is_none() {
                    task.doomed = true;
                }
            }
        }
        vec![Action::ToProvider(text)]
    }

    /// A valid `Authenticate`: what the key faults do instead of
    /// forwarding it, if anything.
    fn on_authenticate(&mut self, value: &mut Value, message_id: &str) -> Option<Vec<Action>> {
        if let Some(ack) = str_at(value, "/acknowledgmentId") {
            self.auth_acks.insert(ack.to_owned());
        }
        let key = self.upstream.api_key.clone().unwrap_or_default();
        match self.fault {
            Fault::AcceptWrongKey if str_at(value, "/payload/apiKey") != Some(&key) => {
                value["payload"]["apiKey"] = json!(key);
                Some(vec![Action::ToProvider(value.to_string())])
            }
            Fault::RefuseRightKey => {
                let error =
                    messages::error("UNAUTHORIZED", "invalid API key", Some(message_id), None);
                Some(vec![Action::ToClient(error)])
            }
            _ => None,
        }
    }

    /// A valid `AssignTask` of task `id`: recorded; run again under an
    /// alias by [`Fault::ReassignRunsAgain`].
    fn on_assign(&mut self, value: &mut Value, id: &str) -> Option<Vec<Action>> {
        let task = self.tasks.entry(id.to_owned()).or_default();
        task.assigned += 1;
        if task.assigned == 1 {
            task.service = str_at(value, "/payload/serviceName")
                .unwrap_or_default()
                .into();
            task.operation = str_at(value, "/payload/operation")
                .unwrap_or_default()
                .into();
        }
        if self.fault == Fault::ReassignRunsAgain && task.ended.is_some() {
            let alias = format!("{id}-again-{}", new_id());
            self.aliases.insert(alias.clone(), id.to_owned());
            value["payload"]["taskId"] = json!(alias);
            return Some(vec![Action::ToProvider(value.to_string())]);
        }
        None
    }

    /// A valid `CancelTask` of task `id`.
    fn on_cancel(&mut self, id: &str, message_id: &str) -> Option<Vec<Action>> {
        self.asked.insert(message_id.to_owned(), Asked::Cancel);
        if self.fault == Fault::CloseOnReassignThenCancel
            && self.tasks.get(id).is_some_and(|task| task.assigned > 1)
        {
            return Some(vec![Action::Drop]);
        }
        if self.fault == Fault::CancelFinishedTerminates {
            return self.finished_as(id, &TaskState::Cancelled);
        }
        None
    }

    /// A valid `GetStatus` of task `id`.
    fn on_get_status(&mut self, id: &str, message_id: &str) -> Option<Vec<Action>> {
        self.asked.insert(message_id.to_owned(), Asked::Status);
        if self.fault == Fault::StatusFinishedProcessing {
            return self.finished_as(id, &TaskState::Processing);
        }
        None
    }

    /// When task `id` has finished: a report that it is in `state`, at
    /// its last progress, for the client (instead of the provider's
    /// answer).
    fn finished_as(&self, id: &str, state: &TaskState) -> Option<Vec<Action>> {
        self.finished(id)?;
        let progress = self.tasks[id].progress;
        Some(vec![Action::ToClient(report(id, state, progress))])
    }

    /// A valid `GetResult` of task `id`.
    fn on_get_result(&mut self, id: &str, message_id: &str) -> Option<Vec<Action>> {
        self.asked.insert(message_id.to_owned(), Asked::Result);
        let not_ready = matches!(
            (self.fault, self.finished(id)),
            (Fault::ResultFinishedNotReady, Some(Ending::Completed))
                | (Fault::ResultFailedNotReady, Some(Ending::Failed))
        );
        not_ready.then(|| {
            let error = messages::error(
                "RESULT_NOT_READY",
                "the result is not ready",
                Some(message_id),
                Some(id),
            );
            vec![Action::ToClient(error)]
        })
    }

    /// Any valid client message the proxy itself refuses: too large
    /// ([`Fault::DropOnLargeMessage`]) or with unknown members
    /// ([`Fault::RefuseUnknownFields`]).
    fn refuse(
        &self,
        text: &str,
        value: &Value,
        message_id: &str,
        task_id: Option<&str>,
    ) -> Option<Vec<Action>> {
        if self.fault == Fault::DropOnLargeMessage && text.len() > 1024 * 1024 {
            return Some(vec![Action::Drop]);
        }
        if self.fault != Fault::RefuseUnknownFields {
            return None;
        }
        let envelope = [
            "type",
            "messageId",
            "timestamp",
            "payload",
            "acknowledgmentId",
        ];
        let extra = value
            .as_object()
            .is_some_and(|object| object.keys().any(|key| !envelope.contains(&key.as_str())));
        extra.then(|| {
            let error = messages::error(
                "INVALID_MESSAGE",
                "unknown members",
                Some(message_id),
                task_id,
            );
            vec![Action::ToClient(error)]
        })
    }

    fn on_provider(&mut self, text: String) -> Vec<Action> {
        let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
            return vec![Action::ToClient(text)];
        };
        let seen = self.observe(&mut value);
        let rewrite = match self.recode(&seen) {
            Some(code) => Rewrite::Replace(vec![Action::ToClient(set_code(&mut value, code))]),
            None => self.rewrite(&seen, &mut value),
        };
        let mut out = match rewrite {
            Rewrite::Hold => {
                self.held.push(value.to_string());
                return Vec::new();
            }
            Rewrite::Replace(instead) => instead,
            Rewrite::Forward { mut before } => {
                before.push(Action::ToClient(value.to_string()));
                before
            }
        };
        // Held Acks go out after the message that followed them.
        out.extend(self.held.drain(..).map(Action::ToClient));
        out
    }

    /// Reads a provider message (speaking of the client's task id where
    /// a task was run again under an alias) and records what it says about
    /// a task assigned on this connection.
    fn observe(&mut self, value: &mut Value) -> Seen {
        // Replies about a task run again under another id speak of the
        // client's task.
        if let Some(original) = str_at(value, "/payload/taskId").and_then(|id| self.aliases.get(id))
        {
            value["payload"]["taskId"] = json!(original.clone());
        }
        let kind = str_at(value, "/type").unwrap_or_default().to_owned();
        let task_id = str_at(value, "/payload/taskId").map(str::to_owned);
        let status = str_at(value, "/payload/status").unwrap_or_default();
        let code = str_at(value, "/payload/errorCode")
            .unwrap_or_default()
            .to_owned();
        let related = str_at(value, "/payload/relatedMessageId").map(str::to_owned);
        let asked = related
            .as_deref()
            .and_then(|id| self.asked.get(id))
            .copied();
        let ending = match (kind.as_str(), status) {
            ("TaskResult", _) => Some(Ending::Completed),
            ("TaskFailed", _) => Some(Ending::Failed),
            ("TaskStatusUpdate", "Cancelled") => Some(Ending::Cancelled),
            _ => None,
        };
        // The first terminal message of a task assigned on this connection:
        // the live one, not a reply to a query or a re-assign.
        let mut live_end = None;
        let mut task = None;
        if let Some(info) = task_id.as_ref().and_then(|id| self.tasks.get_mut(id)) {
            if let Some(progress) = value
                .pointer("/payload/progressPercentage")
                .and_then(Value::as_u64)
            {
                info.progress = info.progress.max(progress.min(100) as u8);
            }
            if info.ended.is_none() {
                if let Some(ending) = ending {
                    info.ended = Some(ending);
                    live_end = Some(ending);
                }
            }
            task = Some(info.clone());
        }
        Seen {
            id: task_id.clone().unwrap_or_default(),
            kind,
            task_id,
            code,
            related,
            asked,
            live_end,
            task,
        }
    }

    /// The error code the fault puts in place of the provider's, if it
    /// changes this message's.
    fn recode(&mut self, seen: &Seen) -> Option<&'static str> {
        let Seen {
            kind, code, asked, ..
        } = seen;
        let error = kind == "Error";
        let failed = kind == "TaskFailed";
        match self.fault {
            Fault::UnknownOperationCode | Fault::UnknownServiceCode
                if failed && code == "UNKNOWN_OPERATION" =>
            {
                let known = seen
                    .task
                    .as_ref()
                    .is_some_and(|task| self.upstream.services.contains(&task.service));
                (known == (self.fault == Fault::UnknownOperationCode)).then_some("INTERNAL")
            }
            Fault::InvalidParametersCode if failed && code == "INVALID_PARAMETERS" => {
                Some("INTERNAL")
            }
            Fault::BrokenEnvelopeCode
                if error && code == "INVALID_MESSAGE" && *asked == Some(Asked::BrokenAssign) =>
            {
                Some("INTERNAL")
            }
            Fault::WrongTypesCode
                if error && code == "INVALID_MESSAGE" && *asked == Some(Asked::BrokenOther) =>
            {
                Some("INTERNAL")
            }
            Fault::CancelUnknownCode | Fault::StatusUnknownCode | Fault::ResultUnknownCode
                if error && code == "TASK_NOT_FOUND" =>
            {
                let wanted = match self.fault {
                    Fault::CancelUnknownCode => Asked::Cancel,
                    Fault::StatusUnknownCode => Asked::Status,
                    _ => Asked::Result,
                };
                (*asked == Some(wanted)).then_some("INTERNAL")
            }
            Fault::MalformedJsonCode
                if error
                    && code == "INVALID_MESSAGE"
                    && seen.related.is_none()
                    && self.garbage_pending > 0 =>
            {
                self.garbage_pending -= 1;
                Some("UNKNOWN_TYPE")
            }
            Fault::UnknownTypeCode if error && code == "UNKNOWN_TYPE" => Some("INVALID_MESSAGE"),
            Fault::ForbiddenCode if failed && code == "FORBIDDEN" => Some("UNKNOWN_OPERATION"),
            _ => None,
        }
    }

    /// What the fault does to this provider message, other than changing
    /// its error code: edit it, hold it, add to it or replace it.
    fn rewrite(&mut self, seen: &Seen, value: &mut Value) -> Rewrite {
        let Seen {
            kind,
            task_id,
            id,
            related,
            live_end,
            task,
            ..
        } = seen;
        let progress = task.as_ref().map_or(0, |task| task.progress);
        let forward = Rewrite::Forward { before: Vec::new() };
        match self.fault {
            Fault::InvalidErrorTimestamp if kind == "Error" => {
                value["timestamp"] = json!("not a timestamp");
                forward
            }
            Fault::AckWrongTaskId if kind == "Ack" && task_id.is_some() => {
                value["payload"]["taskId"] = json!(format!("not-{id}"));
                forward
            }
            Fault::MisspelledAck if kind == "Ack" => {
                if let Some(payload) = value["payload"].as_object_mut() {
                    if let Some(id) = payload.remove("acknowledgmentId") {
                        payload.insert("acknowledgementId".into(), id);
                    }
                }
                forward
            }
            Fault::ErrorWrongRelated if kind == "Error" && related.is_some() => {
                value["payload"]["relatedMessageId"] = json!(new_id());
                forward
            }
            Fault::LateAck if kind == "Ack" => {
                let ack = str_at(value, "/payload/acknowledgmentId").unwrap_or_default();
                if self.auth_acks.contains(ack) {
                    forward
                } else {
                    Rewrite::Hold
                }
            }
            Fault::DuplicateResult if *live_end == Some(Ending::Completed) => {
                let mut again = value.clone();
                again["messageId"] = json!(new_id());
                Rewrite::Replace(vec![
                    Action::ToClient(value.to_string()),
                    Action::ToClient(again.to_string()),
                ])
            }
            Fault::ProgressGoesBack if *live_end == Some(Ending::Completed) && progress > 0 => {
                let back = report(id, &TaskState::Processing, progress / 2);
                Rewrite::Forward {
                    before: vec![Action::ToClient(back)],
                }
            }
            Fault::UpdateAfterTerminal if live_end.is_some() => Rewrite::Replace(vec![
                Action::ToClient(value.to_string()),
                Action::ToClient(report(id, &TaskState::Processing, progress)),
            ]),
            Fault::FailedAsCancelled
                if *live_end == Some(Ending::Failed)
                    && task.as_ref().is_some_and(|task| task.operation == "fail") =>
            {
                let cancelled = report(id, &TaskState::Cancelled, progress);
                Rewrite::Replace(vec![Action::ToClient(cancelled)])
            }
            Fault::ResultAfterCancel if *live_end == Some(Ending::Cancelled) => {
                let completed = TaskState::Completed(TaskOutput::new());
                Rewrite::Replace(vec![
                    Action::ToClient(value.to_string()),
                    Action::ToClient(report(id, &completed, 100)),
                ])
            }
            Fault::LoseResultOnGarbage | Fault::LoseEndOnGarbage
                if task.as_ref().is_some_and(|task| task.doomed)
                    && (*live_end == Some(Ending::Completed)
                        || (live_end.is_some() && self.fault == Fault::LoseEndOnGarbage)) =>
            {
                Rewrite::Replace(Vec::new())
            }
            _ => forward,
        }
    }

    /// Held `Ack`s, when nothing followed them in time.
    fn release(&mut self) -> Vec<Action> {
        self.held.drain(..).map(Action::ToClient).collect()
    }
}

/// How long a held `Ack` waits for a message to follow it.
const HOLD: Duration = Duration::from_millis(100);

pub(super) async fn serve_messages(stream: TcpStream, upstream: Arc<Upstream>, fault: Fault) {
    let Ok(Ok(mut client)) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::accept_async(stream)).await
    else {
        return;
    };
    // No Nagle: small messages in a row must not wait for delayed ACKs.
    let connecting =
        tokio_tungstenite::connect_async_with_config(upstream.endpoint.as_str(), None, true);
    let Ok(Ok((mut provider, _))) = tokio::time::timeout(PATIENCE, connecting).await else {
        let _ = client.close(None).await;
        return;
    };
    let mut state = ConnState::new(fault, upstream);
    let mut actions = state.opening();
    loop {
        for action in actions.drain(..) {
            let sent = match action {
                Action::ToClient(text) => client.send(Frame::text(text)).await,
                Action::ToProvider(text) => provider.send(Frame::text(text)).await,
                Action::Drop => return,
            };
            if sent.is_err() {
                return;
            }
        }
        let holding = !state.held.is_empty();
        tokio::select! {
            frame = client.next() => match frame {
                Some(Ok(Frame::Text(text))) => actions = state.on_client(text.as_str().to_owned()),
                Some(Ok(Frame::Binary(bytes))) => {
                    if provider.send(Frame::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Close(_))) => {
                    // Reading on flushes tungstenite's close reply; then
                    // the client ends the stream.
                    let drain = async { while let Some(Ok(_)) = client.next().await {} };
                    let _ = tokio::time::timeout(PATIENCE, drain).await;
                    let _ = tokio::time::timeout(PATIENCE, provider.close(None)).await;
                    return;
                }
                // tungstenite answers pings itself.
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
            frame = provider.next() => match frame {
                Some(Ok(Frame::Text(text))) => actions = state.on_provider(text.as_str().to_owned()),
                Some(Ok(Frame::Binary(bytes))) => {
                    if client.send(Frame::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Close(frame))) => {
                    let _ = tokio::time::timeout(PATIENCE, client.close(frame)).await;
                    return;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
            () = tokio::time::sleep(HOLD), if holding => actions = state.release(),
        }
    }
}
