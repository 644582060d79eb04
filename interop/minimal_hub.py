#!/usr/bin/env python3
"""A minimal subscription-family hub: specwire's Python benchmark baseline for `serve subscription`.

What a small but honest Python implementation of seed 001 would be: ``websockets`` + ``asyncio`` +
``json`` + ``PyJWT``, no schema validation library. It does the same job as specwire's hub:

    minimal_hub.py --port 0 [--host 127.0.0.1] (--secret S | --secret-file F)
                   [--user-limit 10] [--ip-limit 50] [--max-connections 1000]
                   [--rate-limit 50] [--ping-interval 30]

prints exactly one line, ``listening on ws://HOST:PORT`` (the real port with ``--port 0``), then
serves until SIGTERM or SIGINT and exits with status 0 (2 when it cannot bind).

* Paths ``/ws/experiments/{id}``, ``/ws/tasks/{id}``, ``/ws/projects/{id}``, ``/ws/user``; any
  other path gets HTTP 404 in the handshake. The path's resource is subscribed on connect.
* Token from ``?token=`` or ``Authorization: Bearer``, checked with ``jwt.decode`` (HS256 only,
  ``sub`` and ``exp`` required). Missing: one ``error`` "Authentication required", then close
  1008; invalid or expired: "Invalid or expired token", then close 1008.
* Limits per user (``sub``), per IP and in all (``0`` = no limit): one ``error`` and close 1008.
  ``--rate-limit`` messages per second per connection (token bucket, burst = rate; ``0`` = off):
  over it, each message gets ``error`` "Rate limit exceeded".
* ``system_status`` with ``data.action`` subscribe/unsubscribe -> ``system_status`` reply with
  ``subscribed``/``unsubscribed`` and ``status`` success (error for another user's ``user``
  resource unless the token has ``role: admin``). ``ping`` -> ``pong`` with the ping's id.
  ``pong`` is ignored. A JSON ``ping`` goes to every connection every ``--ping-interval`` s.
* ``publish`` (admin only): the event's ``type`` and routing fields are checked by hand (no
  jsonschema: validating each event with it would cost more than everything else here), then
  the re-serialised event is sent with ``websockets.broadcast`` (the library's fan-out: a
  synchronous write to each connection, no backpressure) to every connection subscribed to the
  event's resource or one above it, once per connection, in publication order:
  task -> experiment -> project/user of the experiment (learnt from the latest experiment
  lifecycle event), worker -> system subscribers, system event -> every connection.
* Bad JSON, a message that is not an object or misses required fields: ``error`` "Invalid message
  format" (what is wrong in ``data.detail``); an unknown ``type``: "Unknown message type". The
  connection stays open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

PATH = re.compile(r"^/ws/(?:(experiments|tasks|projects)/([^/]+)|(user))/?$")
PATH_RESOURCE = {"experiments": "experiment", "tasks": "task", "projects": "project"}
RESOURCE_TYPES = {"experiment", "task", "project", "user", "system", "worker"}
EXPERIMENT_LIFECYCLE = {
    "experiment_created",
    "experiment_updated",
    "experiment_completed",
    "experiment_failed",
}
TASK_EVENTS = {"task_created", "task_updated", "task_progress", "task_completed", "task_failed"}
WORKER_EVENTS = {"worker_registered", "worker_updated", "worker_offline"}
POLICY_VIOLATION = 1008


def now() -> str:
    """The current UTC time as an RFC 3339 timestamp with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(message_type: str, **fields: Any) -> str:
    """A server message with a fresh ``id`` and the current ``timestamp``, as JSON text."""
    return json.dumps({"type": message_type, "id": str(uuid.uuid4()), "timestamp": now(), **fields})


def error(text: str, detail: str | None = None) -> str:
    """An ``error`` message as JSON text; the seed's exact text, a detail in ``data.detail``."""
    if detail is None:
        return message("error", error=text)
    return message("error", error=text, data={"detail": detail})


def is_id(value: Any) -> bool:
    """Whether ``value`` is a usable resource id."""
    return isinstance(value, str) and value != ""


class Client:
    """One authenticated connection and its subscriptions."""

    __slots__ = ("admin", "ip", "keys", "refilled", "sub", "tokens", "ws")

    def __init__(self, ws: ServerConnection, sub: str, admin: bool, ip: str, rate: float) -> None:
        self.ws = ws
        self.sub = sub
        self.admin = admin
        self.ip = ip
        self.keys: set[str] = set()
        self.tokens = rate
        self.refilled = time.monotonic()


class Hub:
    """Subscriptions, the learnt experiment map and the limits."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.secret: str = args.secret
        self.user_limit: int = args.user_limit
        self.ip_limit: int = args.ip_limit
        self.max_connections: int = args.max_connections
        self.rate: float = args.rate_limit
        #: "experiment:e1" -> the clients subscribed to it.
        self.index: dict[str, set[Client]] = {}
        #: Clients subscribed to any ``system`` resource.
        self.system: set[Client] = set()
        self.clients: set[Client] = set()
        self.per_user: dict[str, int] = {}
        self.per_ip: dict[str, int] = {}
        #: experiment id -> (project id, owner id), from experiment lifecycle events.
        self.experiments: dict[str, tuple[str, str]] = {}

    # -- connections ------------------------------------------------------------------------

    def refusal(self, sub: str, ip: str) -> str | None:
        """Why a new connection of ``sub`` from ``ip`` is over a limit, or None."""
        if self.max_connections and len(self.clients) >= self.max_connections:
            return f"Connection limit exceeded: {self.max_connections} connections in all"
        if self.user_limit and self.per_user.get(sub, 0) >= self.user_limit:
            return f"Connection limit exceeded: {self.user_limit} connections per user"
        if self.ip_limit and self.per_ip.get(ip, 0) >= self.ip_limit:
            return f"Connection limit exceeded: {self.ip_limit} connections per IP"
        return None

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.per_user[client.sub] = self.per_user.get(client.sub, 0) + 1
        self.per_ip[client.ip] = self.per_ip.get(client.ip, 0) + 1

    def remove(self, client: Client) -> None:
        for key in list(client.keys):
            self.unsubscribe(client, key)
        self.clients.discard(client)
        for counts, name in ((self.per_user, client.sub), (self.per_ip, client.ip)):
            counts[name] -= 1
            if counts[name] == 0:
                del counts[name]

    def subscribe(self, client: Client, key: str) -> None:
        client.keys.add(key)
        self.index.setdefault(key, set()).add(client)
        if key.startswith("system:"):
            self.system.add(client)

    def unsubscribe(self, client: Client, key: str) -> None:
        client.keys.discard(key)
        members = self.index.get(key)
        if members is not None:
            members.discard(client)
            if not members:
                del self.index[key]
        if key.startswith("system:") and not any(k.startswith("system:") for k in client.keys):
            self.system.discard(client)

    # -- messages ---------------------------------------------------------------------------

    def handle(self, client: Client, text: str | bytes) -> str | None:
        """The reply to one received message (None: no reply)."""
        try:
            received = json.loads(text)
        except ValueError:
            return error("Invalid message format")
        if not isinstance(received, dict):
            return error("Invalid message format", "not a JSON object")
        kind = received.get("type")
        data = received.get("data")
        if kind == "ping":
            ping_id = received.get("id")
            return json.dumps(
                {"type": "pong", "id": ping_id if is_id(ping_id) else str(uuid.uuid4()), "timestamp": now()}
            )
        if kind == "pong":
            return None
        if kind == "system_status":
            return self.subscription(client, data)
        if kind == "publish":
            if not client.admin:
                return error("Forbidden: publishing needs an admin token")
            return self.publish(data)
        if not isinstance(kind, str):
            return error("Invalid message format", "no string type")
        return error("Unknown message type")

    def subscription(self, client: Client, data: Any) -> str:
        """A subscribe or unsubscribe request."""
        if not isinstance(data, dict) or data.get("action") not in ("subscribe", "unsubscribe"):
            return error("Invalid message format", "data.action must be subscribe or unsubscribe")
        resource_type, resource_id = data.get("resourceType"), data.get("resourceId")
        if resource_type not in RESOURCE_TYPES or not is_id(resource_id):
            return error("Invalid message format", "resourceType or resourceId")
        subscribing = data["action"] == "subscribe"
        reply = {
            "action": "subscribed" if subscribing else "unsubscribed",
            "resourceType": resource_type,
            "resourceId": resource_id,
            "status": "success",
        }
        key = f"{resource_type}:{resource_id}"
        if subscribing and resource_type == "user" and resource_id != client.sub and not client.admin:
            reply["status"] = "error"
            reply["message"] = "Forbidden: another user's events"
        elif subscribing:
            self.subscribe(client, key)
        else:
            self.unsubscribe(client, key)
        return message("system_status", data=reply)

    def publish(self, event: Any) -> str | None:
        """Route an admin's event; an ``error`` when it lacks what routing needs."""
        if not isinstance(event, dict):
            return error("Invalid message format", "publish needs an event in data")
        kind, data = event.get("type"), event.get("data")
        if (
            not is_id(event.get("id"))
            or not isinstance(event.get("timestamp"), str)
            or not isinstance(data, dict)
        ):
            return error("Invalid message format", "an event needs id, timestamp and data")
        keys: list[str] = []
        to_system = False
        if kind in EXPERIMENT_LIFECYCLE:
            experiment = data.get("experiment")
            if not isinstance(experiment, dict) or not all(
                is_id(experiment.get(k)) for k in ("id", "projectId", "ownerId")
            ):
                return error("Invalid message format", f"{kind} needs data.experiment.id, projectId, ownerId")
            project, owner = experiment["projectId"], experiment["ownerId"]
            self.experiments[experiment["id"]] = (project, owner)
            keys = [f"experiment:{experiment['id']}", f"project:{project}", f"user:{owner}"]
        elif kind == "experiment_progress" or kind in TASK_EVENTS:
            if kind == "experiment_progress":
                task_id, experiment_id = None, data.get("experimentId")
            elif kind == "task_progress":
                task_id, experiment_id = data.get("taskId"), data.get("experimentId")
            else:
                task = data.get("task")
                task = task if isinstance(task, dict) else {}
                task_id, experiment_id = task.get("id"), task.get("experimentId")
            if not is_id(experiment_id) or (kind != "experiment_progress" and not is_id(task_id)):
                return error("Invalid message format", f"{kind} needs its task and experiment ids")
            if task_id is not None:
                keys.append(f"task:{task_id}")
            keys.append(f"experiment:{experiment_id}")
            learnt = self.experiments.get(experiment_id)
            if learnt is not None:
                keys += [f"project:{learnt[0]}", f"user:{learnt[1]}"]
        elif kind in WORKER_EVENTS:
            worker = data.get("worker")
            if not isinstance(worker, dict) or not is_id(worker.get("id")):
                return error("Invalid message format", f"{kind} needs data.worker.id")
            keys = [f"worker:{worker['id']}"]
            to_system = True
        elif kind == "system_status":
            if "action" in data:
                return error("Invalid message format", "a system_status event has no data.action")
            broadcast([client.ws for client in self.clients], json.dumps(event, separators=(",", ":")))
            return None
        else:
            return error("Invalid message format", "unknown event type")
        targets: set[Client] = set()
        for key in keys:
            members = self.index.get(key)
            if members:
                targets |= members
        if to_system:
            targets |= self.system
        if targets:
            broadcast([client.ws for client in targets], json.dumps(event, separators=(",", ":")))
        return None

    def allowed(self, client: Client) -> bool:
        """Token bucket: whether one more message fits the rate limit."""
        if not self.rate:
            return True
        moment = time.monotonic()
        client.tokens = min(self.rate, client.tokens + (moment - client.refilled) * self.rate)
        client.refilled = moment
        if client.tokens < 1:
            return False
        client.tokens -= 1
        return True

    # -- the connection handler ---------------------------------------------------------------

    async def refuse(self, ws: ServerConnection, text: str) -> None:
        try:
            await ws.send(error(text))
            await ws.close(POLICY_VIOLATION, text[:120])
        except ConnectionClosed:
            pass

    async def connection(self, ws: ServerConnection) -> None:
        """Serve one connection: authenticate, subscribe the path, then answer messages."""
        request = ws.request
        assert request is not None
        url = urlsplit(request.path)
        match = PATH.match(url.path)
        assert match is not None  # checked in the handshake
        token = (parse_qs(url.query).get("token") or [None])[0]
        if token is None:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                token = header[len("Bearer ") :].strip()
        if not token:
            await self.refuse(ws, "Authentication required")
            return
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.InvalidTokenError:
            claims = None
        if claims is None or not is_id(claims.get("sub")):
            await self.refuse(ws, "Invalid or expired token")
            return
        sub = claims["sub"]
        ip = ws.remote_address[0] if ws.remote_address else "?"
        refusal = self.refusal(sub, ip)
        if refusal is not None:
            await self.refuse(ws, refusal)
            return
        client = Client(ws, sub, claims.get("role") == "admin", ip, self.rate)
        self.add(client)
        if match.group(3):
            self.subscribe(client, f"user:{sub}")
        else:
            self.subscribe(client, f"{PATH_RESOURCE[match.group(1)]}:{match.group(2)}")
        try:
            async for text in ws:
                if not self.allowed(client):
                    reply: str | None = error("Rate limit exceeded")
                else:
                    reply = self.handle(client, text)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.remove(client)

    async def heartbeat(self, interval: float) -> None:
        """A JSON ``ping`` to every connection every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            broadcast([client.ws for client in self.clients], message("ping"))


def check_path(connection: ServerConnection, request: Any) -> Any:
    """Refuse unknown paths in the handshake with 404."""
    if PATH.match(urlsplit(request.path).path) is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
    return None


async def main(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    hub = Hub(args)
    # The library's own keepalive pings every 20 s find dead peers; the JSON ping is the seed's.
    async with serve(hub.connection, args.host, args.port, process_request=check_path) as server:
        bound_port = server.sockets[0].getsockname()[1]
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"listening on ws://{shown_host}:{bound_port}", flush=True)
        heartbeat = asyncio.create_task(hub.heartbeat(args.ping_interval))
        await stop
        heartbeat.cancel()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Minimal subscription-family hub (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret", help="the HS256 secret")
    secret.add_argument("--secret-file", help="a file holding the HS256 secret (trailing newline dropped)")
    parser.add_argument("--user-limit", type=int, default=10, help="connections per user, 0: none (10)")
    parser.add_argument("--ip-limit", type=int, default=50, help="connections per IP, 0: none (50)")
    parser.add_argument(
        "--max-connections", type=int, default=1000, help="connections in all, 0: none (1000)"
    )
    parser.add_argument(
        "--rate-limit", type=float, default=50.0, help="messages/s per connection, 0: off (50)"
    )
    parser.add_argument("--ping-interval", type=float, default=30.0, help="seconds between JSON pings (30)")
    args = parser.parse_args(argv)
    if args.secret_file is not None:
        with open(args.secret_file, encoding="utf-8") as file:
            args.secret = file.read().rstrip("\r\n")
    if not args.secret:
        parser.error("the secret is empty")
    if args.ping_interval <= 0:
        parser.error("--ping-interval must be positive")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    try:
        asyncio.run(main(arguments))
    except OSError as exc:
        print(f"minimal_hub: cannot listen on {arguments.host}:{arguments.port}: {exc}", file=sys.stderr)
        sys.exit(2)
