#!/usr/bin/env python3
"""A minimal device-family hub: specwire's Python benchmark baseline for `serve device`.

What the seed's ``socket-server`` (seed 002: Python ``websockets``, asyncio) would be, small but
honest: ``websockets`` + ``asyncio`` + ``json``, nothing else. It does the same job as
``specwire serve device``:

    minimal_device_hub.py --port 0 --registry schema/device/commands.json [--host 127.0.0.1]
                          [--ping-interval 10] [--stale-timeout 30] [--rate-limit 200]

prints exactly one line, ``listening on ws://HOST:PORT`` (the real port with ``--port 0``), then
serves until SIGTERM or SIGINT and exits with status 0 (2 when it cannot bind or load the
registry).

* The registry (``commands.json``: ``{"commands": [{"name": ...}, ...]}``) is read once at
  start-up from a file or an ``http(s)://`` URL; only the command names are used.
* One text frame is one line. ``id:<deviceId>`` registers the connection as a device (a newer
  connection takes an id over; ``all`` is refused); ``s`` subscribes it to broadcasts; ``ping``
  gets ``pong``; ``cmd:<target>:<command>[:<parameters>]`` sends ``<command>[:<parameters>]``
  (parameters are everything after the third ``:``) to the device ``target`` or to every device
  for ``all``. None of these is answered otherwise.
* A ``cmd:`` naming a command not in the registry, or a target that is not a registered device,
  gets ``error:<reason>`` and nothing is sent.
* Any other text from a device is its data: every subscriber gets ``<deviceId>:<data>``, sent
  with ``websockets.broadcast`` (the library's fan-out: a write to each connection's transport,
  no waiting on slow readers). From a connection that is not a device: ``error:<reason>``.
  A device's ``pong`` is a sign of life, not data. Empty or binary frames get ``error:``.
* Every ``--ping-interval`` seconds each device gets the text ``ping``; a device that sent no
  frame for ``--stale-timeout`` seconds is dropped (close 1001) at that tick.
* ``--rate-limit`` lines per second per connection (token bucket, burst = rate; ``0`` = off):
  over it, each line gets ``error:rate limit exceeded``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import urllib.request
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

#: The largest line accepted (the profile's 64 KiB).
MAX_LINE = 65536


def load_registry(source: str) -> set[str]:
    """The command names of ``commands.json`` from a file or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (http(s) only)
            document: Any = json.loads(response.read())
    else:
        with open(source, encoding="utf-8") as file:
            document = json.load(file)
    commands = document.get("commands") if isinstance(document, dict) else None
    if not isinstance(commands, list):
        raise ValueError(f"{source}: no \"commands\" list")
    names = {
        command["name"]
        for command in commands
        if isinstance(command, dict) and isinstance(command.get("name"), str)
    }
    if not names:
        raise ValueError(f"{source}: no commands")
    return names


def is_id(text: str) -> bool:
    """A device id: non-empty, no ``:`` and no white space."""
    return text != "" and ":" not in text and not any(c.isspace() for c in text)


class Conn:
    """One connection: its device id (if registered), last sign of life and rate bucket."""

    __slots__ = ("device", "refilled", "seen", "tokens", "ws")

    def __init__(self, ws: ServerConnection, rate: float) -> None:
        self.ws = ws
        self.device: str | None = None
        self.seen = time.monotonic()
        self.tokens = rate
        self.refilled = self.seen


class Hub:
    """Devices by id, subscribers, the registry."""

    def __init__(self, commands: set[str], rate: float) -> None:
        self.commands = commands
        self.rate = rate
        self.devices: dict[str, Conn] = {}
        self.subscribers: set[ServerConnection] = set()

    def allowed(self, conn: Conn) -> bool:
        """Token bucket: whether one more line fits the rate limit."""
        if not self.rate:
            return True
        moment = time.monotonic()
        conn.tokens = min(self.rate, conn.tokens + (moment - conn.refilled) * self.rate)
        conn.refilled = moment
        if conn.tokens < 1:
            return False
        conn.tokens -= 1
        return True

    def handle(self, conn: Conn, text: str) -> str | None:
        """One line; returns the answer for the sender, if any."""
        if text == "":
            return "error:empty line"
        if not self.allowed(conn):
            return "error:rate limit exceeded"
        if text.startswith("id:"):
            device = text[3:]
            if not is_id(device):
                return f"error:bad device id: {device!r}"
            if device == "all":
                return "error:`all` is reserved for commands to every device"
            if conn.device is not None and self.devices.get(conn.device) is conn:
                del self.devices[conn.device]
            older = self.devices.get(device)
            if older is not None and older is not conn:
                older.device = None
            conn.device = device
            self.devices[device] = conn
            return None
        if text == "s":
            self.subscribers.add(conn.ws)
            return None
        if text == "ping":
            return "pong"
        if text.startswith("cmd:"):
            parts = text.split(":", 3)
            if len(parts) < 3 or not is_id(parts[1]) or not is_id(parts[2]):
                return "error:malformed command: cmd:<target>:<command>[:<parameters>]"
            target, command = parts[1], parts[2]
            if command not in self.commands:
                return f"error:unknown command: {command}"
            line = command if len(parts) == 3 else f"{command}:{parts[3]}"
            if target == "all":
                broadcast([device.ws for device in self.devices.values()], line)
                return None
            device_conn = self.devices.get(target)
            if device_conn is None:
                return f"error:unknown target: {target}"
            broadcast([device_conn.ws], line)
            return None
        if conn.device is None:
            return "error:not a device: register with id:<deviceId> before sending data"
        broadcast(self.subscribers, f"{conn.device}:{text}")
        return None

    async def connection(self, ws: ServerConnection) -> None:
        """Serve one connection until it closes."""
        conn = Conn(ws, self.rate)
        try:
            async for text in ws:
                conn.seen = time.monotonic()
                if isinstance(text, bytes):
                    reply: str | None = "error:binary frames are not lines"
                elif text == "pong" and conn.device is not None:
                    continue  # the answer to our ping: life, not data
                else:
                    reply = self.handle(conn, text)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.subscribers.discard(ws)
            if conn.device is not None and self.devices.get(conn.device) is conn:
                del self.devices[conn.device]

    async def heartbeat(self, interval: float, stale: float) -> None:
        """Every ``interval`` s: drop devices silent for ``stale`` s, ping the others."""
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            alive = []
            for device, conn in list(self.devices.items()):
                if now - conn.seen > stale:
                    del self.devices[device]
                    conn.device = None
                    asyncio.create_task(conn.ws.close(1001, "stale"))
                else:
                    alive.append(conn.ws)
            broadcast(alive, "ping")


async def main(args: argparse.Namespace, commands: set[str]) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    hub = Hub(commands, args.rate_limit)
    async with serve(hub.connection, args.host, args.port, max_size=MAX_LINE) as server:
        bound_port = server.sockets[0].getsockname()[1]
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"listening on ws://{shown_host}:{bound_port}", flush=True)
        heartbeat = asyncio.create_task(hub.heartbeat(args.ping_interval, args.stale_timeout))
        await stop
        heartbeat.cancel()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Minimal device-family hub (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    parser.add_argument("--registry", required=True, help="commands.json: a file or an http(s) URL")
    parser.add_argument("--ping-interval", type=float, default=10.0, help="seconds between pings (10)")
    parser.add_argument(
        "--stale-timeout", type=float, default=30.0, help="seconds of silence that drop a device (30)"
    )
    parser.add_argument("--rate-limit", type=float, default=200.0, help="lines/s per connection, 0: off (200)")
    args = parser.parse_args(argv)
    if args.ping_interval <= 0 or args.stale_timeout <= 0:
        parser.error("--ping-interval and --stale-timeout must be positive")
    if args.rate_limit < 0:
        parser.error("--rate-limit must be 0 or more")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    try:
        registry = load_registry(arguments.registry)
    except (OSError, ValueError) as exc:
        print(f"minimal_device_hub: cannot load the registry: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(main(arguments, registry))
    except OSError as exc:
        print(f"minimal_device_hub: cannot listen on {arguments.host}:{arguments.port}: {exc}", file=sys.stderr)
        sys.exit(2)
