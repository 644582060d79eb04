#!/usr/bin/env python3
"""A strict interop peer for the subscription family (seed 001, PROFILE.md "subscription").

    subscription_client.py --endpoint ws://127.0.0.1:PORT (--secret S | --secret-file F)
                           [--timeout SECONDS] [--server-ping-wait SECONDS] [--schema-dir PATH]

Built on ``websockets``, ``PyJWT`` and ``jsonschema`` only. It mints its own HS256 tokens (users
and an admin with claim ``role: admin``) from the hub's secret, then drives one scripted run:

1. connections at every level: ``/ws/tasks/{id}``, ``/ws/experiments/{id}``,
   ``/ws/projects/{id}`` (token in ``Authorization: Bearer``), ``/ws/user``, plus a ``system``
   and a ``worker`` subscription made by message, a bystander and the admin;
2. subscribe / unsubscribe by message (replies checked, unsubscribing twice is fine, another
   user's ``user`` resource is refused unless admin), client ``ping`` with and without ``id``;
3. garbage (bad JSON, a non-object, an unknown type, a schema violation, a non-admin
   ``publish``, an invalid event from the admin): one ``error`` each, the connection stays;
4. a scripted sequence of events published through the admin connection, then a marker system
   event; every connection must receive exactly the events the routing table gives it (task ->
   experiment -> project/user of the experiment as learnt from the latest experiment lifecycle
   event; worker -> system; system -> all), each once, in publication order, unchanged;
5. refused tokens (missing, bad signature, expired, ``alg: none``, HS384, no ``sub``, not a JWT):
   one ``error`` then close 1008; an unknown path: HTTP 404 in the handshake;
6. with ``--server-ping-wait``, a server ``ping`` answered with a ``pong`` carrying its id.

Every received message is validated against the schema its discriminator picks (the manifest's
match rules, the most specific winning) from ``schema/subscription/``; every message sent is
validated too. Output: one JSON line per check ``{"check", "ok", "detail"}``, then a summary
line. Exit status 0 when every check passed, 1 when one failed, 2 on a usage error or when the
hub cannot be reached. Every wait is bounded by ``--timeout``; a watchdog bounds the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import quote as url_quote

import jwt
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema" / "subscription"
POLICY_VIOLATION = 1008
QUOTE_LIMIT = 160

EVENT_TYPES = {
    "experiment_created",
    "experiment_updated",
    "experiment_progress",
    "experiment_completed",
    "experiment_failed",
    "task_created",
    "task_updated",
    "task_progress",
    "task_completed",
    "task_failed",
    "worker_registered",
    "worker_updated",
    "worker_offline",
}
EXPERIMENT_LIFECYCLE = {
    "experiment_created",
    "experiment_updated",
    "experiment_completed",
    "experiment_failed",
}

# PyJWT warns about short HMAC keys; the secret is the hub's to choose.
warnings.filterwarnings("ignore", module="jwt")

# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------

RFC3339_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$"
)
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time")
def is_rfc3339_date_time(instance: object) -> bool:
    """Whether ``instance`` is an RFC 3339 ``date-time`` with a zone; non-strings pass."""
    if not isinstance(instance, str):
        return True
    match = RFC3339_DATE_TIME.match(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset_hour, offset_minute = match.group(7), match.group(8)
    if hour > 23 or minute > 59 or second > 60:
        return False
    if offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59):
        return False
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    return True


class SchemaSetError(Exception):
    """The schema directory cannot be loaded."""


def rewrite_refs(node: Any, where: str) -> Any:
    """Rewrite ``other.schema.json#/$defs/X`` and ``#/$defs/X`` to ``#/$defs/X`` (one bundle)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                _, _, fragment = value.partition("#")
                if not fragment.startswith("/$defs/") or "/" in fragment[len("/$defs/") :]:
                    raise SchemaSetError(f"{where}: $ref {value!r} does not name a definition")
                out[key] = "#" + fragment
            else:
                out[key] = rewrite_refs(value, where)
        return out
    if isinstance(node, list):
        return [rewrite_refs(item, where) for item in node]
    return node


def pointer(document: Any, path: str) -> tuple[bool, Any]:
    """Resolve a JSON pointer; (found, value)."""
    node = document
    for token in path.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return False, None
    return True, node


class SchemaSet:
    """The family's messages: schemas bundled into one document, and the manifest's match rules.

    The message schemas refer to each other's definitions (``Publish`` to ``#/$defs/TaskCreated``),
    so, as the schema README says, they are bundled: every message schema and every ``$defs``
    entry of every file becomes ``$defs/<Name>`` of one document.
    """

    def __init__(self, directory: Path) -> None:
        manifest_path = directory / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaSetError(f"{manifest_path}: {exc}") from exc
        defs: dict[str, Any] = {}

        def add(name: str, schema: Any, where: str) -> None:
            if name in defs:
                raise SchemaSetError(f"{where}: definition {name!r} twice in the family")
            defs[name] = schema

        def load(file: str) -> dict[str, Any]:
            path = directory / file
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                Draft202012Validator.check_schema(document)
            except (OSError, ValueError, SchemaError) as exc:
                raise SchemaSetError(f"{path}: {exc}") from exc
            for name, schema in document.pop("$defs", {}).items():
                add(name, rewrite_refs(schema, file), file)
            return document

        definitions = manifest.get("definitions")
        if definitions:
            load(definitions)
        #: (name, direction, match rules)
        self.messages: list[tuple[str, str, list[dict[str, Any]]]] = []
        for entry in manifest.get("messages", []):
            document = load(entry["schema"])
            for key in ("$schema", "$id"):
                document.pop(key, None)
            add(entry["name"], rewrite_refs(document, entry["schema"]), entry["schema"])
            self.messages.append((entry["name"], entry.get("direction", "unknown"), entry.get("match", [])))
        bundle = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}
        self.validators: dict[str, Draft202012Validator] = {}
        for name, _, _ in self.messages:
            validator = Draft202012Validator(
                {**bundle, "$ref": f"#/$defs/{name}"}, format_checker=FORMAT_CHECKER
            )
            self.validators[name] = validator
        # Resolve every $ref now (an example of each message is not at hand): validating an empty
        # object walks at least the top of each schema; unresolvable refs deeper would raise later
        # and be reported as schema failures.
        for name, validator in self.validators.items():
            try:
                list(validator.iter_errors({}))
            except Exception as exc:  # any resolution failure means a broken schema set
                raise SchemaSetError(f"message {name}: {exc}") from exc

    def recognise(self, message: Any, direction: str) -> str | None:
        """The message ``direction`` whose match rules fit ``message`` best (most rules)."""
        best: tuple[int, str] | None = None
        for name, message_direction, rules in self.messages:
            if message_direction != direction:
                continue
            fits = True
            for rule in rules:
                found, value = pointer(message, rule["pointer"])
                wrong_value = "const" in rule and (not found or value != rule["const"])
                if wrong_value or (rule.get("present") is True and not found):
                    fits = False
                    break
            if fits and (best is None or len(rules) > best[0]):
                best = (len(rules), name)
        return best[1] if best else None

    def problems(self, message: Any, direction: str) -> tuple[str | None, list[str]]:
        """(message name, what is wrong) for ``message`` sent in ``direction``."""
        if not isinstance(message, dict):
            return None, [f"not a JSON object but {type(message).__name__}"]
        name = self.recognise(message, direction)
        if name is None:
            return None, [f"no {direction} message has type {message.get('type')!r}"]
        errors = sorted(self.validators[name].iter_errors(message), key=lambda e: list(e.absolute_path))
        problems = []
        for error in errors[:3]:
            where = "".join(f"/{part}" for part in error.absolute_path) or "/"
            problems.append(f"{where}: {error.message[:200]}")
        if len(errors) > 3:
            problems.append(f"... and {len(errors) - 3} more")
        return name, problems


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def now() -> str:
    """The current UTC time as an RFC 3339 timestamp with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quote(text: str | bytes) -> str:
    """A short printable quotation."""
    shown = repr(text[:QUOTE_LIMIT])
    return shown + ("..." if len(text) > QUOTE_LIMIT else "")


class Report:
    """One JSON line per check, then a summary."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        self.out.write(json.dumps({"check": name, "ok": ok, "detail": detail}) + "\n")
        self.out.flush()
        return ok

    def summary(self, **extra: Any) -> None:
        line = {
            "summary": "subscription interop",
            "ok": self.failed == 0,
            "passed": self.passed,
            "failed": self.failed,
        }
        line.update(extra)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


class Tokens:
    """HS256 tokens minted with PyJWT from the hub's secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def mint(self, sub: str, *, admin: bool = False, ttl: int = 3600) -> str:
        issued = int(time.time())
        claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + ttl}
        if admin:
            claims["role"] = "admin"
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def refused(self) -> list[tuple[str, str | None, str]]:
        """(check name, token or None, the error the hub must send) for tokens it must refuse."""
        issued = int(time.time())
        claims = {"sub": "mallory", "iat": issued, "exp": issued + 3600}
        other_secret = "not-" + self.secret + "-but-another-secret"
        return [
            ("auth-missing", None, "Authentication required"),
            (
                "auth-bad-signature",
                jwt.encode(claims, other_secret, algorithm="HS256"),
                "Invalid or expired token",
            ),
            (
                "auth-expired",
                jwt.encode(
                    {**claims, "iat": issued - 7200, "exp": issued - 3600}, self.secret, algorithm="HS256"
                ),
                "Invalid or expired token",
            ),
            ("auth-alg-none", jwt.encode(claims, None, algorithm="none"), "Invalid or expired token"),
            ("auth-hs384", jwt.encode(claims, self.secret, algorithm="HS384"), "Invalid or expired token"),
            (
                "auth-no-sub",
                jwt.encode({"iat": issued, "exp": issued + 3600}, self.secret, algorithm="HS256"),
                "Invalid or expired token",
            ),
            ("auth-not-a-jwt", "not.a.jwt", "Invalid or expired token"),
        ]


# --------------------------------------------------------------------------------------------
# A connection
# --------------------------------------------------------------------------------------------


@dataclass
class Received:
    """A message received from the hub."""

    index: int
    text: str | bytes
    message: dict[str, Any] | None
    name: str | None

    def describe(self) -> str:
        if self.message is None:
            return f"#{self.index} {quote(self.text)}"
        kind = self.message.get("type")
        data = self.message.get("data") if isinstance(self.message.get("data"), dict) else {}
        if kind == "error":
            return f"#{self.index} error({self.message.get('error')!r})"
        if self.name == "SubscriptionResponse":
            return (
                f"#{self.index} {data.get('action')}({data.get('resourceType')}:{data.get('resourceId')}, "
                f"{data.get('status')}{', ' + repr(data.get('message')) if 'message' in data else ''})"
            )
        return f"#{self.index} {kind}(id={self.message.get('id')!r})"


def describe_all(messages: list[Received]) -> str:
    return ", ".join(m.describe() for m in messages) if messages else "nothing"


@dataclass(eq=False)
class Peer:
    """One connection to the hub: a reader sorts what arrives into events, replies and pings."""

    name: str
    sub: str
    path: str
    admin: bool
    ws: ClientConnection
    schemas: SchemaSet
    #: Resource keys this connection is subscribed to, as the routing model sees them.
    keys: set[str] = field(default_factory=set)
    events: list[Received] = field(default_factory=list)
    replies: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    server_pings: list[Received] = field(default_factory=list)
    pong_failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    count: int = 0
    closed: str | None = None
    marker: str | None = None
    marker_seen: asyncio.Event = field(default_factory=asyncio.Event)
    ping_seen: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self.read(), name=f"reader {self.name}")

    async def read(self) -> None:
        try:
            async for text in self.ws:
                self.count += 1
                self.sort(text)
        except ConnectionClosed as exc:
            self.closed = str(exc) or "closed"
        else:
            self.closed = f"closed: {self.ws.close_code} {self.ws.close_reason!r}"
        self.marker_seen.set()
        self.ping_seen.set()

    def sort(self, text: str | bytes) -> None:
        message: Any = None
        if isinstance(text, bytes):
            problems: list[str] = ["a binary frame; the family sends JSON text frames"]
            name = None
        else:
            try:
                message = json.loads(text)
            except ValueError as exc:
                name, problems = None, [f"not JSON ({exc})"]
            else:
                name, problems = self.schemas.problems(message, "server-to-client")
        received = Received(self.count, text, message if isinstance(message, dict) else None, name)
        if problems:
            self.problems.append(f"{received.describe()}: {'; '.join(problems)}; text {quote(text)}")
        kind = received.message.get("type") if received.message is not None else None
        if name == "ServerPing" or (kind == "ping" and name is None):
            self.server_pings.append(received)
            ping_id = received.message.get("id") if received.message else None
            if isinstance(ping_id, str) and ping_id:
                asyncio.create_task(self.answer_ping(ping_id))
            else:
                self.pong_failures.append(f"{received.describe()} has no id to answer")
            self.ping_seen.set()
        elif kind in EVENT_TYPES or name == "SystemStatus":
            self.events.append(received)
            if (
                self.marker is not None
                and received.message is not None
                and received.message.get("id") == self.marker
            ):
                self.marker_seen.set()
        else:
            self.replies.put_nowait(received)

    async def answer_ping(self, ping_id: str) -> None:
        try:
            await self.send({"type": "pong", "id": ping_id, "timestamp": now()}, timeout=5)
        except Exception as exc:  # reported; never raised from a callback
            self.pong_failures.append(f"answering ping {ping_id!r}: {exc}")

    async def send(self, message: dict[str, Any] | str, *, timeout: float, validate: bool = True) -> bool:
        """Send a message (an object is checked against its schema first); False when closed."""
        if isinstance(message, dict):
            if validate:
                name, problems = self.schemas.problems(message, "client-to-server")
                if problems:
                    raise AssertionError(f"subscription_client built an invalid {name}: {problems}")
            text = json.dumps(message)
        else:
            text = message
        try:
            await asyncio.wait_for(self.ws.send(text), timeout)
        except (ConnectionClosed, TimeoutError) as exc:
            self.closed = self.closed or f"send failed: {type(exc).__name__} {exc}"
            return False
        return True

    async def reply(self, timeout: float) -> Received | None:
        """The next non-event, non-ping message, or None after ``timeout`` or a close."""
        if self.closed is not None and self.replies.empty():
            return None
        try:
            return await asyncio.wait_for(self.replies.get(), timeout)
        except TimeoutError:
            return None

    def drain(self) -> list[Received]:
        """Replies waiting unread."""
        left = []
        while not self.replies.empty():
            left.append(self.replies.get_nowait())
        return left


# --------------------------------------------------------------------------------------------
# Events and the routing model
# --------------------------------------------------------------------------------------------


class Events:
    """Builds seed-shaped events with unique ids."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.serial = 0

    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}_{int(time.time())}{self.serial:03d}_{self.run}"

    def experiment(self, kind: str, experiment_id: str, project: str, owner: str) -> dict[str, Any]:
        status = {
            "experiment_created": "CREATED",
            "experiment_completed": "COMPLETED",
            "experiment_failed": "FAILED",
        }
        experiment = {
            "id": experiment_id,
            "name": "Parameter Sweep",
            "status": status.get(kind, "RUNNING"),
            "ownerId": owner,
            "projectId": project,
        }
        summary = {key: experiment[key] for key in ("id", "name", "status", "ownerId")}
        return {
            "type": kind,
            "id": self._id(f"exp_{experiment_id}"),
            "timestamp": now(),
            "data": {"experiment": experiment, "summary": summary},
        }

    def experiment_progress(self, experiment_id: str) -> dict[str, Any]:
        return {
            "type": "experiment_progress",
            "id": self._id(f"exp_{experiment_id}"),
            "timestamp": now(),
            "data": {
                "experimentId": experiment_id,
                "totalTasks": 100,
                "completedTasks": 45,
                "failedTasks": 5,
                "runningTasks": 10,
                "progressPercent": 45.0,
                "estimatedTimeRemaining": "1h 30m",
                "lastUpdated": now(),
            },
        }

    def task(self, kind: str, task_id: str, experiment_id: str) -> dict[str, Any]:
        status = {"task_created": "CREATED", "task_completed": "COMPLETED", "task_failed": "FAILED"}
        task: dict[str, Any] = {
            "id": task_id,
            "experimentId": experiment_id,
            "status": status.get(kind, "RUNNING"),
            "command": "python script.py --param1 value1",
            "workerId": None if kind == "task_created" else "worker-789",
        }
        if kind == "task_failed":
            task["error"] = "Script execution failed"
        summary = {key: value for key, value in task.items() if key != "command"}
        return {
            "type": kind,
            "id": self._id(f"task_{task_id}"),
            "timestamp": now(),
            "data": {"task": task, "summary": summary},
        }

    def task_progress(self, task_id: str, experiment_id: str) -> dict[str, Any]:
        return {
            "type": "task_progress",
            "id": self._id(f"task_{task_id}"),
            "timestamp": now(),
            "data": {
                "taskId": task_id,
                "experimentId": experiment_id,
                "status": "RUNNING",
                "progressPercent": 75.0,
                "currentStage": "RUNNING",
                "workerId": "worker-789",
                "startedAt": now(),
                "estimatedCompletion": now(),
                "lastUpdated": now(),
            },
        }

    def worker(self, kind: str, worker_id: str) -> dict[str, Any]:
        worker = {
            "id": worker_id,
            "computeResourceId": "compute-123",
            "experimentId": "exp-123",
            "status": "OFFLINE" if kind == "worker_offline" else "RUNNING",
            "currentTaskId": None,
        }
        summary = {key: worker[key] for key in ("id", "computeResourceId", "experimentId", "status")}
        return {
            "type": kind,
            "id": self._id(f"worker_{worker_id}"),
            "timestamp": now(),
            "data": {"worker": worker, "summary": summary},
        }

    def system(self) -> dict[str, Any]:
        return {
            "type": "system_status",
            "id": self._id("system"),
            "timestamp": now(),
            "data": {
                "totalConnections": 9,
                "activeConnections": 9,
                "totalMessages": 42,
                "messagesPerSecond": 1.5,
                "averageLatency": "0.001s",
                "uptime": "1m 2s",
            },
        }


class Routing:
    """The profile's routing table, kept independently of any hub."""

    def __init__(self) -> None:
        self.experiments: dict[str, tuple[str, str]] = {}

    def reaches(self, event: dict[str, Any], peer: Peer) -> bool:
        """Whether ``event`` (published now) reaches ``peer``; learns experiment lifecycles."""
        kind, data = event["type"], event["data"]
        if kind == "system_status":
            return True
        keys: set[str] = set()
        if kind in EXPERIMENT_LIFECYCLE:
            experiment = data["experiment"]
            keys = {
                f"experiment:{experiment['id']}",
                f"project:{experiment['projectId']}",
                f"user:{experiment['ownerId']}",
            }
        elif kind == "experiment_progress" or kind.startswith("task_"):
            if kind == "experiment_progress":
                experiment_id = data["experimentId"]
            elif kind == "task_progress":
                experiment_id = data["experimentId"]
                keys.add(f"task:{data['taskId']}")
            else:
                experiment_id = data["task"]["experimentId"]
                keys.add(f"task:{data['task']['id']}")
            keys.add(f"experiment:{experiment_id}")
            if experiment_id in self.experiments:
                project, owner = self.experiments[experiment_id]
                keys |= {f"project:{project}", f"user:{owner}"}
        elif kind.startswith("worker_"):
            keys = {f"worker:{data['worker']['id']}"}
            if any(key.startswith("system:") for key in peer.keys):
                return True
        return bool(keys & peer.keys)

    def learn(self, event: dict[str, Any]) -> None:
        if event["type"] in EXPERIMENT_LIFECYCLE:
            experiment = event["data"]["experiment"]
            self.experiments[experiment["id"]] = (experiment["projectId"], experiment["ownerId"])


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Run:
    """The scripted run and its checks."""

    def __init__(self, args: argparse.Namespace, schemas: SchemaSet, report: Report) -> None:
        self.args = args
        self.timeout: float = args.timeout
        self.schemas = schemas
        self.report = report
        self.tokens = Tokens(args.secret)
        self.peers: dict[str, Peer] = {}
        self.events = Events()
        self.routing = Routing()
        #: peer name -> the events (objects) it must receive, in order.
        self.expected: dict[str, list[dict[str, Any]]] = {}
        #: Ids of events the hub must not route anywhere.
        self.rejected: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

    def url(self, path: str, token: str | None) -> str:
        base = self.args.endpoint.rstrip("/") + path
        return base if token is None else f"{base}?token={url_quote(token, safe='')}"

    async def open(
        self, name: str, sub: str, path: str, *, admin: bool = False, header: bool = False
    ) -> Peer | None:
        """Connect ``name`` as ``sub`` at ``path``; reports ``connect:<name>``."""
        token = self.tokens.mint(sub, admin=admin)
        headers = {"Authorization": f"Bearer {token}"} if header else None
        url = self.url(path, None if header else token)
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                open_timeout=self.timeout,
                close_timeout=self.timeout / 2,
                proxy=None,
                compression=None,
                ping_interval=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self.report.check(f"connect:{name}", False, f"{path} as {sub}: {type(exc).__name__}: {exc}")
            return None
        peer = Peer(name=name, sub=sub, path=path, admin=admin, ws=ws, schemas=self.schemas)
        if path == "/ws/user":
            peer.keys.add(f"user:{sub}")
        else:
            kind, _, resource = path.removeprefix("/ws/").partition("/")
            peer.keys.add(f"{kind.removesuffix('s')}:{resource}")
        peer.start()
        self.peers[name] = peer
        how = "Authorization: Bearer" if header else "?token="
        self.report.check(
            f"connect:{name}", True, f"{path} as {sub}{' (admin)' if admin else ''}, token in {how}"
        )
        return peer

    async def exchange(
        self, peer: Peer, message: dict[str, Any] | str, *, validate: bool = True
    ) -> Received | None:
        if not await peer.send(message, timeout=self.timeout, validate=validate):
            return None
        return await peer.reply(self.timeout)

    def ending(self, peer: Peer) -> str:
        return f" (connection closed: {peer.closed})" if peer.closed else ""

    # -- steps -----------------------------------------------------------------------------

    async def subscription(
        self,
        peer: Peer,
        action: str,
        resource_type: str,
        resource_id: str,
        *,
        expect: str = "success",
        check: str | None = None,
    ) -> None:
        """Subscribe or unsubscribe by message; the reply must echo the resource and give ``expect``."""
        name = check or f"{action}:{peer.name}:{resource_type}:{resource_id}"
        request = {
            "type": "system_status",
            "data": {"action": action, "resourceType": resource_type, "resourceId": resource_id},
        }
        got = await self.exchange(peer, request)
        problems = []
        if got is None:
            problems.append(f"no reply within {self.timeout:g}s{self.ending(peer)}")
        elif got.name != "SubscriptionResponse":
            problems.append(f"got {got.describe()}, not a subscription response")
        else:
            assert got.message is not None
            data = got.message["data"]
            wanted = {"subscribe": "subscribed", "unsubscribe": "unsubscribed"}[action]
            if data.get("action") != wanted:
                problems.append(f"action {data.get('action')!r}, expected {wanted!r}")
            if (data.get("resourceType"), data.get("resourceId")) != (resource_type, resource_id):
                problems.append(
                    f"resource {data.get('resourceType')}:{data.get('resourceId')}, expected {resource_type}:{resource_id}"
                )
            if data.get("status") != expect:
                problems.append(f"status {data.get('status')!r}, expected {expect!r}")
        if got is not None and not problems:
            key = f"{resource_type}:{resource_id}"
            if expect == "success" and action == "subscribe":
                peer.keys.add(key)
            elif expect == "success":
                peer.keys.discard(key)
        detail = got.describe() if got is not None else ""
        self.report.check(name, not problems, detail if not problems else "; ".join(problems))

    async def ping(self, peer: Peer, with_id: bool) -> None:
        ping_id = f"ping-{uuid.uuid4()}"
        message: dict[str, Any] = (
            {"type": "ping", "id": ping_id, "timestamp": now()} if with_id else {"type": "ping"}
        )
        got = await self.exchange(peer, message)
        name = "ping-id" if with_id else "ping-no-id"
        if got is None:
            self.report.check(name, False, f"no pong within {self.timeout:g}s{self.ending(peer)}")
        elif got.name != "ServerPong" or got.message is None:
            self.report.check(name, False, f"got {got.describe()}, not a pong")
        elif with_id:
            ok = got.message.get("id") == ping_id
            self.report.check(
                name, ok, f"pong id {got.message.get('id')!r}" + ("" if ok else f", expected {ping_id!r}")
            )
        else:
            pong_id = got.message.get("id")
            ok = isinstance(pong_id, str) and pong_id != ""
            self.report.check(name, ok, f"pong with a fresh id {pong_id!r}")

    async def garbage(self, peer: Peer, name: str, text: dict[str, Any] | str, prefix: str) -> None:
        """Something the hub must answer with one ``error`` whose text starts with ``prefix``."""
        got = await self.exchange(peer, text, validate=False)
        problems = []
        if got is None:
            problems.append(f"no error within {self.timeout:g}s{self.ending(peer)}")
        elif got.message is None or got.message.get("type") != "error":
            problems.append(f"got {got.describe()}, not an error")
        elif not str(got.message.get("error", "")).startswith(prefix):
            problems.append(f"error {got.message.get('error')!r} does not start with {prefix!r}")
        sent = text if isinstance(text, str) else json.dumps(text)
        detail = f"sent {quote(sent)}; got {got.describe() if got else 'nothing'}"
        self.report.check(
            name, not problems, detail if not problems else "; ".join(problems) + f" ({detail})"
        )

    async def publish(self, event: dict[str, Any]) -> None:
        """Publish a valid event through the admin; note who must receive it."""
        admin = self.peers["admin"]
        for peer in self.peers.values():
            if self.routing.reaches(event, peer):
                self.expected.setdefault(peer.name, []).append(event)
        self.routing.learn(event)
        if not await admin.send(
            {"type": "publish", "id": f"pub-{uuid.uuid4()}", "timestamp": now(), "data": event},
            timeout=self.timeout,
        ):
            raise ConnectionError(f"the admin connection closed: {admin.closed}")

    async def routing_checks(self) -> None:
        """Publish the scripted events, then check what each connection received."""
        events = self.events
        script = [
            events.experiment("experiment_created", "e1", "p1", "alice"),
            events.task("task_created", "t1", "e1"),
            events.task_progress("t1", "e1"),
            events.experiment_progress("e1"),
            events.worker("worker_registered", "w1"),
            events.worker("worker_updated", "w2"),
            events.task("task_completed", "t7", "e7"),  # experiment e7 never announced
            events.experiment("experiment_updated", "e2", "p2", "bob"),
            events.experiment("experiment_completed", "e9", "p9", "zed"),  # e9 was unsubscribed
            events.task("task_failed", "t1", "e1"),
            events.system(),
            events.experiment("experiment_updated", "e1", "p3", "alice"),  # e1 moves to p3
            events.task("task_updated", "t1", "e1"),  # so this reaches p3, not p1
            events.worker("worker_offline", "w1"),
            events.experiment("experiment_failed", "e1", "p3", "alice"),
        ]
        try:
            for event in script:
                await self.publish(event)
            # Invalid events from the admin: an error each, nothing routed.
            admin = self.peers["admin"]
            invalid = events.task("task_created", "t1", "e1")
            del invalid["data"]["task"]
            self.rejected.append(invalid["id"])
            await self.garbage(admin, "publish-invalid-event", {"type": "publish", "data": invalid}, "")
            unknown = events.system()
            unknown["type"] = "galaxy_exploded"
            self.rejected.append(unknown["id"])
            await self.garbage(admin, "publish-unknown-event", {"type": "publish", "data": unknown}, "")
            marker = events.system()
            for peer in self.peers.values():
                peer.marker = marker["id"]
            await self.publish(marker)
        except ConnectionError as exc:
            self.report.check("publish", False, str(exc))
        else:
            self.report.check(
                "publish", True, f"{len(script) + 1} valid events published through the admin connection"
            )
        waits = [asyncio.wait_for(peer.marker_seen.wait(), self.timeout) for peer in self.peers.values()]
        await asyncio.gather(*waits, return_exceptions=True)
        for peer in self.peers.values():
            self.check_routing(peer)

    def check_routing(self, peer: Peer) -> None:
        expected = self.expected.get(peer.name, [])
        received = [r for r in peer.events if r.message is not None]
        want_ids = [event["id"] for event in expected]
        got_ids = [r.message["id"] if r.message else None for r in received]
        problems = []
        if peer.marker not in got_ids:
            problems.append(f"the marker event did not arrive within {self.timeout:g}s{self.ending(peer)}")
        if got_ids != want_ids:
            missing = [i for i in want_ids if i not in got_ids]
            extra = [i for i in got_ids if i not in want_ids]
            duplicated = sorted({i for i in got_ids if got_ids.count(i) > 1})
            if missing:
                problems.append(f"missing {missing}")
            if extra:
                problems.append(f"not for this connection {extra}")
            if duplicated:
                problems.append(f"more than once {duplicated}")
            if not (missing or extra or duplicated):
                problems.append(f"out of order: got {got_ids}, expected {want_ids}")
        by_id = {event["id"]: event for event in expected}
        altered = [
            r.message["id"]
            for r in received
            if r.message and r.message.get("id") in by_id and r.message != by_id[r.message["id"]]
        ]
        if altered:
            problems.append(f"changed on the way {altered}")
        rejected = [i for i in got_ids if i in self.rejected]
        if rejected:
            problems.append(f"routed an event the hub refused {rejected}")
        stray = peer.drain()
        if stray:
            problems.append(f"unexpected replies {describe_all(stray)}")
        kinds = ", ".join(f"{event['type']}" for event in expected)
        detail = f"subscribed to {sorted(peer.keys)}; {len(want_ids)} events in order, each once: {kinds}"
        self.report.check(
            f"routing:{peer.name}",
            not problems,
            detail if not problems else "; ".join(problems) + f" ({detail})",
        )

    async def refused(self, name: str, token: str | None, text: str) -> None:
        """A refused token: the upgrade, one ``error`` with ``text``, then close 1008."""
        try:
            ws = await connect(
                self.url("/ws/experiments/e1", token),
                open_timeout=self.timeout,
                close_timeout=self.timeout / 2,
                proxy=None,
                compression=None,
                ping_interval=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self.report.check(
                name,
                False,
                f"the upgrade was refused ({type(exc).__name__}: {exc}); expected an error message then close 1008",
            )
            return
        problems: list[str] = []
        messages: list[str] = []
        code: int | None = None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    while True:
                        text_frame = await ws.recv()
                        messages.append(text_frame if isinstance(text_frame, str) else repr(text_frame))
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else None
        except TimeoutError:
            problems.append(f"the hub did not close within {self.timeout:g}s")
            ws.transport.abort()
        if not messages:
            problems.append("no error message before the close")
        else:
            try:
                first = json.loads(messages[0])
            except ValueError:
                first = None
            _, schema_problems = self.schemas.problems(first, "server-to-client")
            if schema_problems:
                problems.append(f"invalid message: {'; '.join(schema_problems)}")
            if not isinstance(first, dict) or first.get("type") != "error" or first.get("error") != text:
                problems.append(f"first message {quote(messages[0])}, expected an error {text!r}")
            if len(messages) > 1:
                problems.append(f"{len(messages) - 1} more messages: {quote(' '.join(messages[1:]))}")
        if code != POLICY_VIOLATION and not any("did not close" in p for p in problems):
            problems.append(f"close code {code}, expected {POLICY_VIOLATION}")
        detail = f"error {text!r} then close {code}"
        self.report.check(name, not problems, detail if not problems else "; ".join(problems))

    async def not_found(self) -> None:
        token = self.tokens.mint("alice")
        for path in ("/ws/galaxies/g1", "/ws/experiments/e1/extra", "/"):
            try:
                ws = await connect(
                    self.url(path, token),
                    open_timeout=self.timeout,
                    proxy=None,
                    compression=None,
                    ping_interval=None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.report.check(f"path-404:{path}", status == 404, f"HTTP {status} in the handshake")
                continue
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.report.check(
                    f"path-404:{path}", False, f"{type(exc).__name__}: {exc}; expected HTTP 404"
                )
                continue
            await ws.close()
            self.report.check(f"path-404:{path}", False, "the upgrade was accepted; expected HTTP 404")

    async def server_ping(self, wait: float) -> None:
        peer = self.peers.get("task")
        if peer is None:
            return
        try:
            await asyncio.wait_for(peer.ping_seen.wait(), wait)
        except TimeoutError:
            pass
        if not peer.server_pings:
            self.report.check("server-ping", False, f"no JSON ping from the hub within {wait:g}s")
            return
        ping = peer.server_pings[0]
        ok = ping.message is not None and isinstance(ping.message.get("id"), str) and not peer.pong_failures
        detail = f"{ping.describe()} answered with a pong carrying its id"
        self.report.check(
            "server-ping", ok, detail if ok else "; ".join(peer.pong_failures) or ping.describe()
        )

    # -- the script --------------------------------------------------------------------------

    async def run(self) -> None:
        connections = [
            ("task", "alice", "/ws/tasks/t1", {}),
            ("experiment", "alice", "/ws/experiments/e1", {}),
            ("project", "bob", "/ws/projects/p1", {"header": True}),
            ("user", "alice", "/ws/user", {}),
            ("system", "carol", "/ws/user", {}),
            ("worker", "dave", "/ws/user", {}),
            ("bystander", "erin", "/ws/experiments/e-other", {}),
            ("admin", "root", "/ws/user", {"admin": True}),
        ]
        for name, sub, path, options in connections:
            await self.open(name, sub, path, **options)
        if "admin" not in self.peers:
            self.report.check("run", False, "not run: the admin connection could not be opened")
            return
        peers = self.peers

        # Subscriptions by message.
        if (peer := peers.get("experiment")) is not None:
            await self.subscription(peer, "subscribe", "task", "t1")  # overlaps with its path's e1
            await self.subscription(peer, "subscribe", "project", "p1")
        if (peer := peers.get("system")) is not None:
            await self.subscription(peer, "subscribe", "system", "all")
        if (peer := peers.get("worker")) is not None:
            await self.subscription(peer, "subscribe", "worker", "w1")
            await self.subscription(peer, "subscribe", "experiment", "e7")
            await self.subscription(peer, "subscribe", "experiment", "e9")
            await self.subscription(peer, "unsubscribe", "experiment", "e9")
            await self.subscription(peer, "unsubscribe", "experiment", "e9", check="unsubscribe-twice")
            await self.subscription(
                peer, "unsubscribe", "project", "never-subscribed", check="unsubscribe-not-subscribed"
            )
        if (peer := peers.get("user")) is not None:
            await self.subscription(
                peer, "subscribe", "user", "bob", expect="error", check="subscribe-other-user-refused"
            )
        await self.subscription(
            peers["admin"], "subscribe", "user", "bob", check="subscribe-other-user-admin"
        )

        # Client pings.
        if (peer := peers.get("task")) is not None:
            await self.ping(peer, with_id=True)
            await self.ping(peer, with_id=False)

        # Garbage: an error each, the connection stays open.
        if (peer := peers.get("bystander")) is not None:
            await self.garbage(
                peer,
                "malformed-json",
                '{"type": "system_status", "data": {"action": "subscr',
                "Invalid message format",
            )
            await self.garbage(peer, "not-an-object", "[1, 2, 3]", "Invalid message format")
            await self.garbage(
                peer,
                "unknown-type",
                {"type": "specwire_no_such_message", "id": "x-1"},
                "Unknown message type",
            )
            await self.garbage(
                peer,
                "schema-violation",
                {
                    "type": "system_status",
                    "data": {"action": "subscribe", "resourceType": "galaxy", "resourceId": "g1"},
                },
                "Invalid message format",
            )
            stray = self.events.system()
            self.rejected.append(stray["id"])
            await self.garbage(peer, "publish-not-admin", {"type": "publish", "data": stray}, "Forbidden")
            got = await self.exchange(peer, {"type": "ping", "id": "still-open"})
            ok = got is not None and got.message is not None and got.message.get("type") == "pong"
            self.report.check(
                "still-open",
                ok,
                "a ping after the garbage is answered"
                if ok
                else f"got {got.describe() if got else 'nothing'}{self.ending(peer)}",
            )

        await self.routing_checks()

        for name, token, text in self.tokens.refused():
            await self.refused(name, token, text)
        await self.not_found()
        if self.args.server_ping_wait > 0:
            await self.server_ping(self.args.server_ping_wait)

        for peer in self.peers.values():
            detail = f"{peer.count} messages received, all valid"
            self.report.check(
                f"schema:{peer.name}",
                not peer.problems,
                detail if not peer.problems else "; ".join(peer.problems[:3]),
            )
        await self.close()

    async def close(self) -> None:
        """Close every connection with 1000; the admin's close handshake is checked."""
        for name, peer in self.peers.items():
            try:
                await asyncio.wait_for(peer.ws.close(code=1000, reason="done"), self.timeout)
            except TimeoutError:
                peer.ws.transport.abort()
                if name == "admin":
                    self.report.check(
                        "close-handshake", False, f"close did not finish within {self.timeout:g}s"
                    )
                continue
            if peer.reader is not None:
                await asyncio.wait({peer.reader}, timeout=self.timeout)
            if name == "admin":
                code = peer.ws.close_code
                self.report.check(
                    "close-handshake", code == 1000, f"the hub answered close {code} {peer.ws.close_reason!r}"
                )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """Exits with status 2 on usage errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"subscription_client: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(description="Strict interop peer for specwire's subscription family.")
    parser.add_argument("--endpoint", required=True, help="ws://HOST:PORT of the hub")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret", help="the hub's HS256 secret")
    secret.add_argument("--secret-file", type=Path, help="a file holding it (a trailing newline is dropped)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per step (default 5)")
    parser.add_argument(
        "--server-ping-wait",
        type=float,
        default=0.0,
        help="wait this long for a server ping (default 0: do not)",
    )
    parser.add_argument(
        "--schema-dir", type=Path, default=DEFAULT_SCHEMA_DIR, help="the subscription schemas"
    )
    args = parser.parse_args(argv)
    if args.secret_file is not None:
        try:
            args.secret = args.secret_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            parser.error(f"--secret-file: {exc}")
    if not args.secret:
        parser.error("the secret is empty")
    if not args.timeout > 0 or args.server_ping_wait < 0:
        parser.error("--timeout must be positive and --server-ping-wait not negative")
    if not args.endpoint.startswith(("ws://", "wss://")):
        parser.error("--endpoint must be a ws:// or wss:// URL")
    return args


async def main(args: argparse.Namespace, out: TextIO) -> int:
    try:
        schemas = SchemaSet(args.schema_dir)
    except SchemaSetError as exc:
        print(f"subscription_client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = Report(out)
    run = Run(args, schemas, report)
    budget = args.timeout * 40 + args.server_ping_wait + 10
    try:
        await asyncio.wait_for(run.run(), budget)
    except TimeoutError:
        report.check("watchdog", False, f"the run did not finish within {budget:g}s")
        for peer in run.peers.values():
            peer.ws.transport.abort()
    reached = bool(run.peers)
    report.summary(
        endpoint=args.endpoint, connections=len(run.peers), received=sum(p.count for p in run.peers.values())
    )
    if not reached:
        return EXIT_USAGE
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]), sys.stdout)))
