#!/usr/bin/env python3
"""A minimal task-family provider: specwire's Python benchmark baseline.

This is the kind of provider the seed's Python demo would be (seed 000 §8: ``websockets``,
``asyncio``, ``json``, ``uuid.uuid4()``): no schema validation, no progress, no
authentication, no cancellation. Every ``AssignTask`` completes at once with an empty result.

    minimal_provider.py --port 0 [--host 127.0.0.1]

prints exactly one line, ``listening on ws://HOST:PORT`` (with the real port when
``--port 0``), then serves until SIGTERM or SIGINT and exits with status 0.

Behaviour, per text message (``json.loads``):

* ``AssignTask`` -> ``Ack`` (only if the message has an ``acknowledgmentId``), then
  ``TaskResult`` (status ``Completed``, ``resultData`` ``{}``) with the same ``taskId``; the
  result is stored by ``taskId`` (shared by all connections of the process).
* ``GetStatus`` / ``GetResult`` -> the stored ``TaskResult``, or ``Error`` ``TASK_NOT_FOUND``.
* anything else -> ``Error`` ``UNKNOWN_TYPE`` (so ``CancelTask`` and ``Authenticate`` too).
* text that is not a JSON object, or an ``AssignTask`` without a string ``taskId`` ->
  ``Error`` ``INVALID_MESSAGE`` (the connection stays open).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

#: Stored ``TaskResult`` messages by ``taskId``.
RESULTS: dict[str, dict[str, Any]] = {}


def now() -> str:
    """Return the current UTC time as an RFC 3339 timestamp with a ``Z`` zone."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(message_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Wrap ``payload`` in the task family's envelope."""
    return {
        "type": message_type,
        "messageId": str(uuid.uuid4()),
        "timestamp": now(),
        "payload": payload,
    }


def error(code: str, text: str, related: Any = None, task_id: Any = None) -> dict[str, Any]:
    """Build an ``Error`` message."""
    payload: dict[str, Any] = {"errorCode": code, "errorMessage": text}
    if isinstance(related, str):
        payload["relatedMessageId"] = related
    if isinstance(task_id, str):
        payload["taskId"] = task_id
    return envelope("Error", payload)


def handle(text: str) -> list[dict[str, Any]]:
    """Return the replies to one received text message, in order."""
    try:
        message = json.loads(text)
    except ValueError:
        return [error("INVALID_MESSAGE", "not JSON")]
    if not isinstance(message, dict):
        return [error("INVALID_MESSAGE", "not a JSON object")]
    message_type = message.get("type")
    message_id = message.get("messageId")
    payload = message.get("payload")
    task_id = payload.get("taskId") if isinstance(payload, dict) else None

    if message_type == "AssignTask":
        if not isinstance(task_id, str):
            return [error("INVALID_MESSAGE", "AssignTask without a taskId", message_id)]
        replies = []
        ack_id = message.get("acknowledgmentId")
        if ack_id is not None:
            replies.append(envelope("Ack", {"acknowledgmentId": ack_id, "taskId": task_id}))
        result = envelope("TaskResult", {"taskId": task_id, "status": "Completed", "resultData": {}})
        RESULTS[task_id] = result
        replies.append(result)
        return replies
    if message_type in ("GetStatus", "GetResult"):
        stored = RESULTS.get(task_id) if isinstance(task_id, str) else None
        if stored is None:
            return [error("TASK_NOT_FOUND", f"unknown task {task_id!r}", message_id, task_id)]
        return [envelope("TaskResult", stored["payload"])]
    return [error("UNKNOWN_TYPE", f"unknown message type {message_type!r}", message_id)]


async def connection(websocket: ServerConnection) -> None:
    """Serve one client connection until it closes."""
    try:
        async for text in websocket:
            if isinstance(text, bytes):
                replies = [error("INVALID_MESSAGE", "binary frames are not used")]
            else:
                replies = handle(text)
            for reply in replies:
                await websocket.send(json.dumps(reply))
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    """Serve on ``host:port`` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    async with serve(connection, host, port) as server:
        bound_port = server.sockets[0].getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        print(f"listening on ws://{shown_host}:{bound_port}", flush=True)
        await stop


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Minimal task-family provider (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    try:
        asyncio.run(main(arguments.host, arguments.port))
    except OSError as exc:
        print(f"minimal_provider: cannot listen on {arguments.host}:{arguments.port}: {exc}", file=sys.stderr)
        sys.exit(2)
