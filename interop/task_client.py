#!/usr/bin/env python3
"""A strict, conformance-minded interop client for the task family (seed 000 §5-7, PROFILE.md).

    task_client.py --endpoint ws://127.0.0.1:PORT --service NAME --operation OP
                   [--params JSON] [--api-key KEY] [--client-id ID]
                   [--expect completed|failed|any] [--expect-error-code CODE]
                   [--timeout SECONDS] [--settle SECONDS] [--schema-dir PATH]

It runs one scripted session on one WebSocket connection and checks the provider's side of it:

1. ``Authenticate`` (only with ``--api-key``), which must be acknowledged;
2. ``AssignTask`` with a fresh task id: the ``Ack`` first, updates with never-decreasing
   progress, exactly one terminal message, the right ``taskId`` everywhere, the outcome asked
   for by ``--expect`` / ``--expect-error-code``;
3. the same ``AssignTask`` again (idempotency), ``GetStatus``, ``GetResult``, ``CancelTask``
   on the finished task, ``GetResult`` for an unknown task, malformed JSON, an unknown
   ``type``, a last ``GetStatus`` and the close handshake.

Every received message is validated against the schema (``schema/task/``) of the message its
``type`` names. Output: one JSON line per check, ``{"check": ..., "ok": ..., "detail": ...}``,
then one summary line ``{"summary": ..., "ok": ..., "passed": N, "failed": M, ...}``.
Exit status: 0 when every check passed, 1 when one failed, 2 on a usage or connection error.
Every wait is bounded by ``--timeout`` (per step), so a run never hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn, TextIO

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema" / "task"

#: Messages that end a task (a ``TaskStatusUpdate`` is terminal only with status ``Cancelled``).
TERMINAL_TYPES = ("TaskResult", "TaskFailed")
#: Messages whose payload must carry the task's id.
TASK_TYPES = ("TaskStatusUpdate", "TaskResult", "TaskFailed")
#: Error codes that cannot be right for a ``CancelTask`` of a task the provider has finished.
WRONG_CANCEL_CODES = ("UNKNOWN_TYPE", "INVALID_MESSAGE", "TASK_NOT_FOUND")
#: How much of a received text a detail quotes.
QUOTE_LIMIT = 120

# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------

RFC3339_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$"
)

#: ``format`` is asserted only for ``date-time``, the one format the task schemas use. It is
#: checked here rather than with jsonschema's optional extra to keep the requirements small.
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time")
def is_rfc3339_date_time(instance: object) -> bool:
    """Return whether ``instance`` is an RFC 3339 ``date-time`` (zone required); non-strings pass."""
    if not isinstance(instance, str):
        return True
    match = RFC3339_DATE_TIME.match(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset_hour, offset_minute = match.group(7), match.group(8)
    if second > 60 or (offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59)):
        return False
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # 60 is a leap second
    except ValueError:
        return False
    return True


def find_refs(node: Any) -> list[str]:
    """Return every ``$ref`` value inside a schema document."""
    refs: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                refs.append(value)
            else:
                refs.extend(find_refs(value))
    elif isinstance(node, list):
        for item in node:
            refs.extend(find_refs(item))
    return refs


class SchemaSetError(Exception):
    """The schema directory cannot be loaded."""


class SchemaSet:
    """The task family's message schemas, resolved through one ``referencing`` registry."""

    def __init__(self, directory: Path) -> None:
        """Load every ``*.schema.json`` in ``directory`` and the manifest's message list."""
        if not directory.is_dir():
            raise SchemaSetError(f"schema directory {directory} does not exist")
        files = sorted(directory.glob("*.schema.json"))
        if not files:
            raise SchemaSetError(f"no *.schema.json files in {directory}")
        resources: list[tuple[str, Resource[Any]]] = []
        uris: dict[str, str] = {}
        for path in files:
            try:
                contents = json.loads(path.read_text(encoding="utf-8"))
                Draft202012Validator.check_schema(contents)
            except (OSError, ValueError, SchemaError) as exc:
                raise SchemaSetError(f"{path}: {exc}") from exc
            # The files have no `$id`: each is registered under its own file URI, so that
            # "defs.schema.json#/$defs/X" resolves against it to the sibling file.
            uri = path.resolve().as_uri()
            uris[path.name] = uri
            resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
        registry: Registry[Any] = Registry().with_resources(resources).crawl()

        #: message name -> (schema file name, direction)
        self.messages: dict[str, tuple[str, str]] = {}
        manifest = directory / "manifest.json"
        if manifest.is_file():
            try:
                listed = json.loads(manifest.read_text(encoding="utf-8"))["messages"]
                for entry in listed:
                    self.messages[entry["name"]] = (entry["schema"], entry.get("direction", "unknown"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise SchemaSetError(f"{manifest}: {exc}") from exc
        else:
            for path in files:
                if path.name != "defs.schema.json":
                    self.messages[path.name.removesuffix(".schema.json")] = (path.name, "unknown")

        self.validators: dict[str, Draft202012Validator] = {}
        for name, (schema_file, _direction) in self.messages.items():
            if schema_file not in uris:
                raise SchemaSetError(f"message {name}: schema {schema_file} not found in {directory}")
            self.validators[name] = Draft202012Validator(
                {"$ref": uris[schema_file]}, registry=registry, format_checker=FORMAT_CHECKER
            )
        # Resolve every $ref once now, so that a broken schema set fails at start-up.
        for uri, resource in resources:
            resolver = registry.resolver(base_uri=uri)
            for ref in find_refs(resource.contents):
                try:
                    resolver.lookup(ref)
                except Unresolvable as exc:
                    raise SchemaSetError(f"{uri}: unresolvable $ref {ref!r}: {exc}") from exc

    def problems(self, message: Any, *, sent_by: str) -> list[str]:
        """Return what is wrong with ``message`` (empty when it is a valid message from ``sent_by``)."""
        if not isinstance(message, dict):
            return [f"not a JSON object but {type(message).__name__}"]
        message_type = message.get("type")
        if not isinstance(message_type, str):
            return ["no string `type`"]
        if message_type not in self.validators:
            return [f"unknown type {message_type!r}"]
        problems = []
        direction = self.messages[message_type][1]
        wanted = "server-to-client" if sent_by == "provider" else "client-to-server"
        if direction not in (wanted, "unknown"):
            problems.append(f"{message_type} is a {direction} message, not sent by the {sent_by}")
        errors = sorted(
            self.validators[message_type].iter_errors(message), key=lambda e: list(e.absolute_path)
        )
        for error in errors[:3]:
            pointer = "".join(f"/{part}" for part in error.absolute_path) or "/"
            problems.append(f"{pointer}: {error.message}")
        if len(errors) > 3:
            problems.append(f"... and {len(errors) - 3} more")
        return problems


# --------------------------------------------------------------------------------------------
# Messages and reporting
# --------------------------------------------------------------------------------------------


def now() -> str:
    """Return the current UTC time as an RFC 3339 timestamp with a ``Z`` zone."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """Return a fresh uuid4 string."""
    return str(uuid.uuid4())


def envelope(message_type: str, payload: dict[str, Any], ack_id: str | None = None) -> dict[str, Any]:
    """Build a client message with a fresh ``messageId`` and the current timestamp."""
    message: dict[str, Any] = {"type": message_type, "messageId": new_id(), "timestamp": now()}
    if ack_id is not None:
        message["acknowledgmentId"] = ack_id
    message["payload"] = payload
    return message


def quote(text: str | bytes) -> str:
    """Return a short printable quotation of received data."""
    shown = repr(text[:QUOTE_LIMIT])
    return shown + ("..." if len(text) > QUOTE_LIMIT else "")


@dataclass(eq=False)
class Received:
    """One frame received from the provider."""

    index: int
    data: str | bytes
    message: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        """The message's ``type``, if it has a string one."""
        value = self.message.get("type") if self.message is not None else None
        return value if isinstance(value, str) else None

    @property
    def payload(self) -> dict[str, Any]:
        """The message's ``payload`` (empty when missing or not an object)."""
        value = self.message.get("payload") if self.message is not None else None
        return value if isinstance(value, dict) else {}

    @property
    def task_id(self) -> Any:
        """``payload.taskId`` (``None`` when absent)."""
        return self.payload.get("taskId")

    @property
    def status(self) -> Any:
        """``payload.status`` (``None`` when absent)."""
        return self.payload.get("status")

    @property
    def error_code(self) -> Any:
        """``payload.errorCode`` (``None`` when absent)."""
        return self.payload.get("errorCode")

    def is_terminal(self) -> bool:
        """Whether this is a terminal message: TaskResult, TaskFailed or TaskStatusUpdate Cancelled."""
        return self.type in TERMINAL_TYPES or (self.type == "TaskStatusUpdate" and self.status == "Cancelled")

    def is_task_message(self) -> bool:
        """Whether this is a TaskStatusUpdate, TaskResult or TaskFailed."""
        return self.type in TASK_TYPES

    def state(self) -> tuple[Any, ...]:
        """What identifies a task state: type, status and (for failures) the error code."""
        return (self.type, self.status, self.error_code if self.type == "TaskFailed" else None)

    def describe(self) -> str:
        """A short human-readable description."""
        if self.message is None:
            kind = "binary frame" if isinstance(self.data, bytes) else "text"
            return f"#{self.index} {kind} {quote(self.data)}"
        payload = self.payload
        if self.type == "Ack":
            text = f"Ack(acknowledgmentId={payload.get('acknowledgmentId')!r}"
            text += f", taskId={self.task_id!r})" if "taskId" in payload else ")"
        elif self.type == "TaskStatusUpdate":
            text = f"TaskStatusUpdate({self.status}, progress={payload.get('progressPercentage')})"
        elif self.type == "TaskResult":
            text = f"TaskResult({self.status})"
        elif self.type == "TaskFailed":
            text = f"TaskFailed({self.error_code}: {payload.get('errorMessage')!r})"
        elif self.type == "Error":
            text = f"Error({self.error_code}: {payload.get('errorMessage')!r})"
        else:
            text = f"{self.type or 'untyped object'}"
        return f"#{self.index} {text}"


def describe_all(messages: list[Received]) -> str:
    """Describe a list of received messages."""
    return ", ".join(m.describe() for m in messages) if messages else "nothing"


class Report:
    """Prints one JSON line per check and the summary."""

    def __init__(self, out: TextIO) -> None:
        """Report to ``out``."""
        self.out = out
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        """Record and print one check; return ``ok``."""
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        self.out.write(json.dumps({"check": name, "ok": ok, "detail": detail}) + "\n")
        self.out.flush()
        return ok

    def summary(self, **extra: Any) -> None:
        """Print the final summary line."""
        line = {
            "summary": "task interop",
            "ok": self.failed == 0,
            "passed": self.passed,
            "failed": self.failed,
        }
        line.update(extra)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


# --------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """What one step received, and how its wait ended."""

    messages: list[Received]
    timed_out: bool = False
    closed: str | None = None

    def ending(self) -> str:
        """A note on how the wait ended badly, or an empty string."""
        if self.closed is not None:
            return f"; the connection closed: {self.closed}"
        if self.timed_out:
            return "; timed out waiting"
        return ""


class Session:
    """A WebSocket connection whose every received message is parsed, validated and reported."""

    def __init__(
        self, websocket: ClientConnection, schemas: SchemaSet, report: Report, timeout: float, settle: float
    ) -> None:
        """Wrap an open connection."""
        self.websocket = websocket
        self.schemas = schemas
        self.report = report
        self.timeout = timeout
        self.settle = settle
        self.closed: str | None = None
        self.count = 0

    @staticmethod
    def clock() -> float:
        """The event loop's monotonic clock."""
        return asyncio.get_running_loop().time()

    def note_closed(self, exc: ConnectionClosed) -> None:
        """Remember how the provider closed the connection."""
        if self.closed is None:
            # e.g. "received 1003 (unsupported data) bad json; then sent 1003 (unsupported data)"
            # or "sent 1002 (protocol error) ...; no close frame received"
            self.closed = str(exc) or "no close frame received (1006)"

    async def send(self, message: dict[str, Any] | str, *, validate: bool = True) -> bool:
        """Send a message (an object is checked against its schema first); False if closed."""
        if isinstance(message, dict):
            if validate:
                problems = self.schemas.problems(message, sent_by="client")
                if problems:
                    raise AssertionError(f"task_client built an invalid {message.get('type')}: {problems}")
            text = json.dumps(message)
        else:
            text = message
        try:
            await asyncio.wait_for(self.websocket.send(text), self.timeout)
        except ConnectionClosed as exc:
            self.note_closed(exc)
            return False
        except TimeoutError:
            self.closed = f"sending blocked for more than {self.timeout:g}s"
            return False
        return True

    async def receive(self, deadline: float) -> Received | None:
        """Receive, validate and report one message; None on timeout or when closed."""
        remaining = deadline - self.clock()
        if remaining <= 0 or self.closed is not None:
            return None
        try:
            data = await asyncio.wait_for(self.websocket.recv(), remaining)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.note_closed(exc)
            return None
        self.count += 1
        received = Received(self.count, data)
        if isinstance(data, bytes):
            received.problems = ["binary frame; the task family sends one JSON object per text frame"]
        else:
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                received.problems = [f"not JSON ({exc})"]
            else:
                if isinstance(parsed, dict):
                    received.message = parsed
                received.problems = self.schemas.problems(parsed, sent_by="provider")
        if received.problems:
            detail = f"{received.describe()}: " + "; ".join(received.problems)
            if received.message is not None:
                detail += f"; message: {quote(data)}"
            self.report.check("schema", False, detail)
        else:
            self.report.check("schema", True, f"{received.describe()} is a valid {received.type}")
        return received

    async def exchange(
        self,
        outgoing: dict[str, Any] | str,
        done: Callable[[list[Received]], bool],
        *,
        settle: bool = False,
        validate: bool = True,
    ) -> Exchange:
        """Send ``outgoing``, then receive until ``done(received)``, the step's timeout or a close.

        With ``settle``, keep listening for ``--settle`` seconds more (within the step's time)
        to catch messages that must not come, such as a second terminal message.
        """
        if self.closed is not None or not await self.send(outgoing, validate=validate):
            return Exchange([], closed=self.closed)
        deadline = self.clock() + self.timeout
        result = Exchange([])
        while not done(result.messages):
            received = await self.receive(deadline)
            if received is None:
                result.closed = self.closed
                result.timed_out = self.closed is None
                return result
            result.messages.append(received)
        if settle and self.settle > 0:
            quiet_until = min(deadline, self.clock() + self.settle)
            while (received := await self.receive(quiet_until)) is not None:
                result.messages.append(received)
            result.closed = self.closed
        return result


# --------------------------------------------------------------------------------------------
# The conformance run
# --------------------------------------------------------------------------------------------


def has_error(messages: list[Received]) -> bool:
    """Whether an ``Error`` was received."""
    return any(m.type == "Error" for m in messages)


class Run:
    """The scripted session and its checks."""

    def __init__(self, session: Session, report: Report, args: argparse.Namespace) -> None:
        """Prepare a run; nothing is sent yet."""
        self.session = session
        self.report = report
        self.args = args
        self.task_id = new_id()
        self.client_id: str = args.client_id
        self.assign: dict[str, Any] | None = None
        self.assign_text = ""
        self.terminal: Received | None = None

    # -- helpers -------------------------------------------------------------------------------

    def about_task(self, message: Received) -> bool:
        """Whether a message is about this run's task."""
        return bool(message.task_id == self.task_id)

    def wrong_task_ids(self, messages: list[Received]) -> list[str]:
        """Describe messages that carry (or, being task messages, lack) a task id other than the task's."""
        return [
            f"{message.describe()} has taskId {message.task_id!r}"
            for message in messages
            if (message.is_task_message() or "taskId" in message.payload) and message.task_id != self.task_id
        ]

    def check_error_reply(
        self,
        name: str,
        result: Exchange,
        request_id: str | None,
        good: Callable[[Any], str | None],
        task_id: str | None = None,
        ignore: Callable[[Received], bool] = lambda message: False,
    ) -> bool:
        """Check that a step got exactly one ``Error`` whose code ``good`` accepts (None = fine).

        Messages for which ``ignore`` is true are left to another check.
        """
        replies = result.messages
        errors = [m for m in replies if m.type == "Error"]
        problems = []
        if not errors:
            problems.append("no Error reply")
        else:
            error = errors[0]
            reason = good(error.error_code)
            if reason:
                problems.append(reason)
            related = error.payload.get("relatedMessageId")
            if request_id is not None and related is not None and related != request_id:
                problems.append(f"relatedMessageId {related!r} is not the request's messageId {request_id!r}")
            if task_id is not None and "taskId" in error.payload and error.task_id != task_id:
                problems.append(f"Error taskId {error.task_id!r}, expected {task_id!r}")
        others = [m for m in replies if not (errors and m is errors[0]) and not ignore(m)]
        if others:
            problems.append(f"unexpected: {describe_all(others)}")
        got = f"received {describe_all(replies)}{result.ending()}"
        return self.report.check(
            name, not problems, got if not problems else "; ".join(problems) + f" ({got})"
        )

    def check_state_reply(self, name: str, result: Exchange, allow_error_for_cancelled: bool = False) -> bool:
        """Check that a step got exactly one message giving the task's terminal state."""
        assert self.terminal is not None
        replies = result.messages
        problems = []
        matching = [m for m in replies if self.about_task(m) and m.state() == self.terminal.state()]
        accepted = matching[:1]
        if not matching and allow_error_for_cancelled and self.terminal.type == "TaskStatusUpdate":
            errors = [m for m in replies if m.type == "Error" and m.error_code not in WRONG_CANCEL_CODES]
            accepted = errors[:1]
        if not accepted:
            want = f"{self.terminal.type} ({self.terminal.status})"
            problems.append(f"expected the task's terminal state {want}")
        others = [m for m in replies if not (accepted and m is accepted[0])]
        if others:
            problems.append(f"unexpected: {describe_all(others)}")
        problems.extend(self.wrong_task_ids(replies))
        got = f"received {describe_all(replies)}{result.ending()}"
        return self.report.check(
            name, not problems, got if not problems else "; ".join(problems) + f" ({got})"
        )

    def not_run(self, names: list[str], why: str) -> None:
        """Report checks that could not run."""
        for name in names:
            self.report.check(name, False, f"not run: {why}")

    # -- steps ---------------------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Authenticate and expect the Ack."""
        ack_id = new_id()
        message = envelope("Authenticate", {"apiKey": self.args.api_key, "clientId": self.client_id}, ack_id)
        result = await self.session.exchange(
            message, lambda got: any(m.type in ("Ack", "Error") for m in got), settle=False
        )
        replies = result.messages
        first = replies[0] if replies else None
        problems = []
        if first is None:
            problems.append("no reply")
        elif first.type != "Ack":
            problems.append(f"first reply {first.describe()} is not an Ack")
        elif first.payload.get("acknowledgmentId") != ack_id:
            problems.append(
                f"Ack acknowledgmentId {first.payload.get('acknowledgmentId')!r}, expected {ack_id!r}"
            )
        if len(replies) > 1:
            problems.append(f"unexpected: {describe_all(replies[1:])}")
        got = f"received {describe_all(replies)}{result.ending()}"
        self.report.check(
            "authenticate", not problems, got if not problems else "; ".join(problems) + f" ({got})"
        )

    async def assign_task(self) -> None:
        """Assign the task and follow it to its terminal message."""
        ack_id = new_id()
        payload: dict[str, Any] = {
            "taskId": self.task_id,
            "serviceName": self.args.service,
            "operation": self.args.operation,
            "taskParameters": self.args.params,
            "callbackClientId": self.client_id,
        }
        self.assign = envelope("AssignTask", payload, ack_id)
        self.assign_text = json.dumps(self.assign)

        def done(got: list[Received]) -> bool:
            return has_error(got) or any(m.is_terminal() and self.about_task(m) for m in got)

        result = await self.session.exchange(self.assign, done, settle=True)
        replies = result.messages
        ending = result.ending()

        # assign-ack: the Ack comes before any other reply about the task.
        problems = []
        acks = [m for m in replies if m.type == "Ack"]
        if not replies:
            problems.append("no reply")
        elif replies[0].type != "Ack":
            problems.append(f"{replies[0].describe()} came before any Ack")
        if not acks:
            problems.append("no Ack")
        else:
            ack = acks[0]
            if ack.payload.get("acknowledgmentId") != ack_id:
                problems.append(
                    f"Ack acknowledgmentId {ack.payload.get('acknowledgmentId')!r}, expected {ack_id!r}"
                )
            if "taskId" in ack.payload and ack.task_id != self.task_id:
                problems.append(f"Ack taskId {ack.task_id!r}, expected {self.task_id!r}")
            if len(acks) > 1:
                problems.append(f"{len(acks)} Acks for one AssignTask")
        detail = f"acknowledgmentId {ack_id}" if not problems else "; ".join(problems)
        self.report.check("assign-ack", not problems, detail + ending)

        # assign-task-id: every message about the task carries its id.
        wrong = self.wrong_task_ids(replies)
        about = [m for m in replies if m.is_task_message() or "taskId" in m.payload]
        detail = f"{len(about)} messages carry taskId {self.task_id}" if not wrong else "; ".join(wrong)
        self.report.check("assign-task-id", not wrong, detail)

        # assign-progress: progressPercentage never decreases.
        progress = [
            m.payload["progressPercentage"]
            for m in replies
            if m.type == "TaskStatusUpdate"
            and self.about_task(m)
            and isinstance(m.payload.get("progressPercentage"), int)
        ]
        drops = [f"{a} -> {b}" for a, b in pairwise(progress) if b < a]
        shown = " -> ".join(str(p) for p in progress) if progress else "no progress values"
        self.report.check(
            "assign-progress",
            not drops,
            shown if not drops else f"progress decreased ({', '.join(drops)}): {shown}",
        )

        # assign-terminal: exactly one terminal message, and nothing about the task after it.
        problems = []
        terminals = [m for m in replies if m.is_terminal() and self.about_task(m)]
        if not terminals:
            problems.append("no terminal message (TaskResult, TaskFailed or TaskStatusUpdate Cancelled)")
        elif len(terminals) > 1:
            problems.append(f"{len(terminals)} terminal messages: {describe_all(terminals)}")
        if terminals:
            self.terminal = terminals[0]
            position = replies.index(terminals[0])
            after = [m for m in replies[position + 1 :] if m not in terminals]
            if after:
                problems.append(f"after the terminal message: {describe_all(after)}")
        errors = [m for m in replies if m.type == "Error"]
        if errors:
            problems.append(f"Error reply: {describe_all(errors)}")
        strays = [m for m in replies if m.type not in ("Ack", "Error") and not self.about_task(m)]
        if strays:
            problems.append(f"not about the task: {describe_all(strays)}")
        updates = sum(1 for m in replies if m.type == "TaskStatusUpdate" and not m.is_terminal())
        detail = f"{updates} updates then {terminals[0].describe()}" if not problems else "; ".join(problems)
        self.report.check("assign-terminal", not problems, detail + ending)

        # assign-outcome: the terminal outcome matches --expect / --expect-error-code.
        expect: str = self.args.expect
        code: str | None = self.args.expect_error_code
        outcome = self.outcome()
        if self.terminal is None:
            ok, detail = False, f"no terminal message; expected {expect}"
        elif expect == "completed":
            ok = self.terminal.type == "TaskResult"
            detail = f"{self.terminal.describe()}; expected completed"
        elif expect == "failed":
            ok = self.terminal.type == "TaskFailed" and (code is None or self.terminal.error_code == code)
            detail = f"{self.terminal.describe()}; expected failed" + (f" with {code}" if code else "")
        else:
            ok, detail = True, f"{outcome}: {self.terminal.describe()}"
        self.report.check("assign-outcome", ok, detail)

    def outcome(self) -> str:
        """The terminal outcome as a word."""
        if self.terminal is None:
            return "none"
        return {"TaskResult": "completed", "TaskFailed": "failed"}.get(self.terminal.type or "", "cancelled")

    async def resend_assign(self) -> None:
        """Send the very same AssignTask again: acknowledged again, answered with the terminal state."""
        assert self.assign is not None and self.terminal is not None
        ack_id = self.assign["acknowledgmentId"]

        def done(got: list[Received]) -> bool:
            return has_error(got) or any(m.is_terminal() for m in got)

        result = await self.session.exchange(self.assign_text, done, settle=True)
        replies = result.messages
        ending = result.ending()

        problems = []
        if not replies:
            problems.append("no reply")
        elif replies[0].type != "Ack":
            problems.append(f"{replies[0].describe()} came before any Ack")
        acks = [m for m in replies if m.type == "Ack"]
        if acks and acks[0].payload.get("acknowledgmentId") != ack_id:
            problems.append(
                f"Ack acknowledgmentId {acks[0].payload.get('acknowledgmentId')!r}, expected {ack_id!r}"
            )
        elif acks and "taskId" in acks[0].payload and acks[0].task_id != self.task_id:
            problems.append(f"Ack taskId {acks[0].task_id!r}, expected {self.task_id!r}")
        if not acks:
            problems.append("the repeated AssignTask was not acknowledged again")
        elif len(acks) > 1:
            problems.append(f"{len(acks)} Acks")
        detail = f"acknowledged again ({ack_id})" if not problems else "; ".join(problems)
        self.report.check("resend-ack", not problems, detail + ending)

        problems = []
        others = [m for m in replies if m.type != "Ack"]
        same = [m for m in others if self.about_task(m) and m.state() == self.terminal.state()]
        progress = [m for m in others if m.type == "TaskStatusUpdate" and not m.is_terminal()]
        if progress:
            problems.append(f"the task started again (new progress: {describe_all(progress)})")
        if not same:
            problems.append(
                f"no {self.terminal.type} ({self.terminal.status}) giving the task's current state"
            )
        extra = [m for m in others if m not in same[:1] and m not in progress]
        if extra:
            problems.append(f"unexpected: {describe_all(extra)}")
        problems.extend(self.wrong_task_ids(replies))
        got = f"received {describe_all(replies)}{ending}"
        self.report.check(
            "resend-state", not problems, got if not problems else "; ".join(problems) + f" ({got})"
        )

    async def get_status(self, name: str) -> None:
        """GetStatus: answered with the terminal message.

        For ``still-open`` without a terminal state to compare, any reply proves the point.
        """
        message = envelope("GetStatus", {"taskId": self.task_id})

        def done(got: list[Received]) -> bool:
            return has_error(got) or any(self.about_task(m) and m.is_task_message() for m in got)

        result = await self.session.exchange(message, done, settle=name == "still-open")
        if self.terminal is not None:
            self.check_state_reply(name, result)
        else:
            ok = bool(result.messages) and result.closed is None
            got = f"received {describe_all(result.messages)}{result.ending()}"
            verdict = "the connection answers" if ok else "no answer to GetStatus"
            self.report.check(name, ok, f"{verdict} (no terminal state to compare); {got}")

    async def get_result(self) -> None:
        """GetResult: answered with the TaskResult/TaskFailed."""
        message = envelope("GetResult", {"taskId": self.task_id})

        def done(got: list[Received]) -> bool:
            return has_error(got) or any(self.about_task(m) and m.is_task_message() for m in got)

        result = await self.session.exchange(message, done)
        self.check_state_reply("get-result", result, allow_error_for_cancelled=True)

    async def cancel_finished(self) -> None:
        """CancelTask on the finished task: an Error, never a second terminal message."""
        message = envelope("CancelTask", {"taskId": self.task_id, "originalClientId": self.client_id})

        def done(got: list[Received]) -> bool:
            return has_error(got) or any(m.is_task_message() for m in got)

        result = await self.session.exchange(message, done, settle=True)

        def good(code: Any) -> str | None:
            if code in WRONG_CANCEL_CODES:
                return f"errorCode {code} is wrong for a finished task (e.g. TASK_ALREADY_FINISHED)"
            return None

        self.check_error_reply(
            "cancel-finished-error",
            result,
            message["messageId"],
            good,
            self.task_id,
            Received.is_task_message,
        )
        terminals = [m for m in result.messages if m.is_task_message()]
        detail = (
            "no task message" if not terminals else f"a task message after the end: {describe_all(terminals)}"
        )
        self.report.check("cancel-finished-no-terminal", not terminals, detail + result.ending())

    async def unknown_task(self) -> None:
        """GetResult for a task nobody assigned: Error TASK_NOT_FOUND."""
        unknown = new_id()
        message = envelope("GetResult", {"taskId": unknown})
        result = await self.session.exchange(message, lambda got: any(m.type != "Ack" for m in got))
        self.check_error_reply(
            "unknown-task", result, message["messageId"], expect_code("TASK_NOT_FOUND"), unknown
        )

    async def malformed_json(self) -> None:
        """Text that is not JSON: Error INVALID_MESSAGE, the connection stays open."""
        text = '{"type": "GetStatus", "messageId": "specwire-malformed", "payload": {"taskId": '
        result = await self.session.exchange(
            text, lambda got: any(m.type != "Ack" for m in got), settle=False, validate=False
        )
        self.check_error_reply("malformed-json", result, None, expect_code("INVALID_MESSAGE"))

    async def unknown_type(self) -> None:
        """A well-formed envelope with an unknown ``type``: Error UNKNOWN_TYPE."""
        message = envelope("SpecwireNoSuchMessage", {"taskId": self.task_id})
        result = await self.session.exchange(
            message, lambda got: any(m.type != "Ack" for m in got), settle=False, validate=False
        )
        self.check_error_reply("unknown-type", result, message["messageId"], expect_code("UNKNOWN_TYPE"))

    async def close(self) -> None:
        """Close with code 1000 and expect the provider's close frame."""
        websocket = self.session.websocket
        if self.session.closed is not None:
            self.report.check(
                "close-handshake", False, f"the provider had closed the connection: {self.session.closed}"
            )
            return
        try:
            await asyncio.wait_for(
                websocket.close(code=1000, reason="specwire interop done"), self.args.timeout
            )
        except TimeoutError:
            self.report.check("close-handshake", False, f"close did not finish within {self.args.timeout:g}s")
            return
        code, reason = websocket.close_code, websocket.close_reason
        ok = code == 1000
        detail = (
            f"provider answered close frame {code} {reason!r}" if code != 1006 else "no close frame (1006)"
        )
        self.report.check("close-handshake", ok, detail)

    # -- the script ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every step in order; after a closed connection the rest are reported as not run."""
        steps: list[tuple[list[str], Callable[[], Any], bool]] = []
        if self.args.api_key is not None:
            steps.append((["authenticate"], self.authenticate, False))
        steps += [
            (
                ["assign-ack", "assign-task-id", "assign-progress", "assign-terminal", "assign-outcome"],
                self.assign_task,
                False,
            ),
            (["resend-ack", "resend-state"], self.resend_assign, True),
            (["get-status"], lambda: self.get_status("get-status"), True),
            (["get-result"], self.get_result, True),
            (["cancel-finished-error", "cancel-finished-no-terminal"], self.cancel_finished, True),
            (["unknown-task"], self.unknown_task, False),
            (["malformed-json"], self.malformed_json, False),
            (["unknown-type"], self.unknown_type, False),
            (["still-open"], lambda: self.get_status("still-open"), False),
        ]
        for names, step, needs_terminal in steps:
            if self.session.closed is not None:
                self.not_run(names, f"the connection closed ({self.session.closed})")
            elif needs_terminal and self.terminal is None:
                self.not_run(names, "the task reached no terminal message")
            else:
                await step()
        await self.close()


def expect_code(wanted: str) -> Callable[[Any], str | None]:
    """An error-code test that accepts only ``wanted``."""

    def good(code: Any) -> str | None:
        return None if code == wanted else f"errorCode {code!r}, expected {wanted}"

    return good


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An argument parser that exits with status 2 and a clear message."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and exit with status 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"task_client: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = Parser(description="Strict interop client for specwire's task family.")
    parser.add_argument("--endpoint", required=True, help="ws://HOST:PORT of the provider")
    parser.add_argument("--service", required=True, help="serviceName for AssignTask")
    parser.add_argument("--operation", required=True, help="operation for AssignTask")
    parser.add_argument("--params", default="{}", help="taskParameters as a JSON object (default {})")
    parser.add_argument("--api-key", help="authenticate first with this API key")
    parser.add_argument(
        "--client-id", default=None, help="clientId / callbackClientId (default: a fresh uuid4)"
    )
    parser.add_argument(
        "--expect",
        choices=("completed", "failed", "any"),
        default=None,
        help="expected outcome (default any)",
    )
    parser.add_argument(
        "--expect-error-code", help="expect TaskFailed with this errorCode (implies --expect failed)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per step (default 10)")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.3,
        help="seconds to listen for messages that must not come (default 0.3)",
    )
    parser.add_argument("--schema-dir", type=Path, default=DEFAULT_SCHEMA_DIR, help="the task schemas")
    args = parser.parse_args(argv)
    try:
        args.params = json.loads(args.params)
    except ValueError as exc:
        parser.error(f"--params is not JSON: {exc}")
    if not isinstance(args.params, dict):
        parser.error("--params must be a JSON object")
    if args.expect_error_code is not None:
        if args.expect not in (None, "failed"):
            parser.error("--expect-error-code needs --expect failed (or no --expect)")
        args.expect = "failed"
    args.expect = args.expect or "any"
    if not args.timeout > 0:
        parser.error("--timeout must be positive")
    if args.settle < 0:
        parser.error("--settle must not be negative")
    if not args.endpoint.startswith(("ws://", "wss://")):
        parser.error("--endpoint must be a ws:// or wss:// URL")
    args.client_id = args.client_id or f"specwire-interop-{new_id()}"
    if args.api_key == "":
        parser.error("--api-key must not be empty")
    return args


async def main(args: argparse.Namespace, out: TextIO) -> int:
    """Run the interop session; return the exit status."""
    try:
        schemas = SchemaSet(args.schema_dir)
    except SchemaSetError as exc:
        print(f"task_client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = Report(out)
    try:
        websocket = await connect(args.endpoint, open_timeout=args.timeout, close_timeout=args.timeout / 2)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        report.check("connect", False, f"cannot connect to {args.endpoint}: {type(exc).__name__}: {exc}")
        report.summary(endpoint=args.endpoint, outcome="none", expected=args.expect)
        return EXIT_USAGE
    report.check("connect", True, f"connected to {args.endpoint}")
    session = Session(websocket, schemas, report, args.timeout, args.settle)
    run = Run(session, report, args)
    # Every wait inside is bounded; this outer bound is only a safety net.
    budget = args.timeout * 16 + args.settle * 8 + 5
    try:
        await asyncio.wait_for(run.run(), budget)
    except TimeoutError:
        report.check("watchdog", False, f"the run did not finish within {budget:g}s")
        websocket.transport.abort()
    report.summary(
        endpoint=args.endpoint,
        taskId=run.task_id,
        outcome=run.outcome(),
        expected=args.expect,
        received=session.count,
    )
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]), sys.stdout)))
