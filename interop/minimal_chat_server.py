#!/usr/bin/env python3
"""A minimal chat server (seed 003): specwire's Python baseline for ``specwire serve chat``.

The seed's own design, standard library only: one thread, ``selectors.DefaultSelector()``,
non-blocking sockets, a buffer per client, handlers registered by method name, broadcasts to the
other joined clients. It is also an independent implementation of PROFILE.md "chat (seed 003)"
that the conformance suite is run against, so it takes the seed's alternatives where the profile
allows two:

* a name already taken gets the joiner's port appended (``Alice_54321``);
* ``get_users`` (and the join response) list ``{"username", "address"}`` objects;
* the joiner gets ``{"type":"system","message":"Welcome to the chat, NAME!"}`` after its response.

    minimal_chat_server.py --port 0 [--host 127.0.0.1] [--max-send-buffer BYTES]

prints exactly one line, ``listening on tcp://HOST:PORT`` (the real port with ``--port 0``), then
serves until SIGTERM or SIGINT and exits with status 0 (2 when it cannot bind).

The stream (PROFILE.md): JSON objects, optionally separated by white space, any number per read,
any split over reads. Framing is a resumable scanner (strings and escapes tracked, so a ``}``
inside a string is text), then the value is parsed with ``json.JSONDecoder().raw_decode``:

* white space (space, tab, CR, LF) between values is skipped;
* a value starts at ``{`` or ``[`` and ends where the brackets of that kind balance (the other
  kind is not counted: ``{]}`` is one value, and not JSON); it gets exactly one
  response: ``-32700`` when it is not JSON (also: invalid UTF-8, ``NaN``, a number out of
  double range, an unpaired surrogate escape, nesting deeper than 127, as serde_json refuses
  them), ``-32600`` when it is not an object or has no string ``method``, ``-32601`` for an
  unknown method, ``-32602`` when ``params`` is missing or of the wrong type (``get_users`` and
  ``leave_chat`` take ``{}`` only), else the method's ``status`` response;
* a run of bytes that cannot start a value (``42``, ``hello``, a stray ``}``) is one ``-32700``;
  the run ends at a line feed, ``{`` or ``[``;
* a value over 1 MiB gets ``-32600`` ``Request too large`` once it crosses the limit; the rest of
  it is skipped without being kept.

Business rules: user names and messages are trimmed (the schema's ``\\s``, ECMA-262 white space)
and must then be 1-50 / 1-1000 characters, else ``{"status":"error"}``; ``send_message``,
``get_users`` and ``leave_chat`` before ``join_chat`` and a second ``join_chat`` get
``status: error``. A chat broadcast carries the trimmed text. A client that disconnects while
joined is announced as having left. Every object sent ends with ``\\n``.

Slow readers: what cannot be written at once waits in the client's send buffer; one that grows
over ``--max-send-buffer`` bytes (default 4 MiB) drops the client (announced as left when
joined). No idle timeout: the protocol has no heartbeat.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import selectors
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

MAX_VALUE = 1 << 20
MAX_DEPTH = 127
MAX_NAME = 50
MAX_MESSAGE = 1000
RECV_SIZE = 65536

#: ECMA-262 ``\s``: what the schema's patterns trim.
ECMA_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_STRUCTURAL = re.compile(rb'[{}\[\]"]')
_IN_STRING = re.compile(rb'["\\]')
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_JUNK_END = re.compile(rb"[\n{\[]")

PARSE_ERROR = {"error": "Parse error", "code": -32700}
TOO_LARGE = {"error": "Request too large", "code": -32600}


def rpc_error(code: int, text: str) -> dict[str, Any]:
    return {"error": text, "code": code}


def status_error(text: str) -> dict[str, Any]:
    return {"status": "error", "message": text}


class BadJson(ValueError):
    """A value Python's json would take but serde_json (specwire's parser) refuses."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadJson(f"number out of range: {text}")
    return number


def _integer(text: str) -> int:
    number = int(text)
    if len(text) > 300:
        try:
            float(number)
        except OverflowError:
            raise BadJson(f"number out of range: {text[:20]}...") from None
    return number


def _no_constant(text: str) -> Any:
    raise BadJson(f"not JSON: {text}")


DECODER = json.JSONDecoder(parse_float=_finite, parse_int=_integer, parse_constant=_no_constant)


def _check_strings(value: Any) -> None:
    """Unpaired surrogate escapes (``"\\ud800"``) are not Unicode text: refuse them."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse(frame: bytes) -> Any:
    """One framed value; raises ValueError (JSONDecodeError, UnicodeError, BadJson) if not JSON."""
    text = frame.decode("utf-8")
    value, end = DECODER.raw_decode(text)
    if end != len(text):
        raise BadJson("trailing characters")
    _check_strings(value)
    return value


class Framer:
    """Splits one connection's bytes into values, junk runs and too-large values, resumably.

    ``feed`` appends bytes; ``items`` yields ``("value", bytes)``, ``("junk", None)`` or
    ``("too-large", None)`` for what is complete, keeping only the unfinished value's bytes.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0  # scan position in buf
        self.in_value = False
        self.open = 0x7B  # the value's opening bracket: only its own kind can end it
        self.depth = 0  # brackets of that kind open
        self.nesting = 0  # brackets of both kinds open, for the depth limit
        self.max_depth = 0
        self.in_string = False
        self.escape = False
        self.in_junk = False
        self.skipping = False  # inside a value over the limit: scanned, not kept
        self.skipped = 0  # bytes of that value already dropped

    def feed(self, data: bytes) -> None:
        self.buf += data

    def items(self):  # noqa: C901 (one state machine)
        buf = self.buf
        while True:
            if not self.in_value:
                if self.in_junk:
                    found = _JUNK_END.search(buf, self.pos)
                    if found is None:
                        del buf[:]
                        self.pos = 0
                        return
                    self.in_junk = False
                    self.pos = found.start()
                found = _NOT_SPACE.search(buf, self.pos)
                if found is None:
                    del buf[:]
                    self.pos = 0
                    return
                start = found.start()
                del buf[:start]
                self.pos = 0
                if buf[0] in b"{[":
                    self.in_value = True
                    self.open = buf[0]
                    self.depth = 0
                    self.nesting = 0
                    self.max_depth = 0
                    self.skipped = 0
                else:
                    self.in_junk = True
                    self.pos = 1
                    yield ("junk", None)
                    continue
            end = self._scan()
            if end is None:
                if not self.skipping and self.skipped + len(buf) > MAX_VALUE:
                    self.skipping = True
                    yield ("too-large", None)
                if self.skipping:
                    self.skipped += self.pos
                    del buf[: self.pos]
                    self.pos = 0
                return
            self.in_value = False
            if self.skipping:
                self.skipping = False
                del buf[:end]
                self.pos = 0
                continue
            if end > MAX_VALUE:
                yield ("too-large", None)
                del buf[:end]
                self.pos = 0
                continue
            frame = bytes(buf[:end])
            del buf[:end]
            self.pos = 0
            if self.max_depth > MAX_DEPTH:
                yield ("deep", None)
            else:
                yield ("value", frame)

    def _scan(self) -> int | None:
        """Advances through the current value; its end (exclusive), or None if not complete."""
        buf = self.buf
        pos = self.pos
        length = len(buf)
        while pos < length:
            if self.in_string:
                if self.escape:
                    self.escape = False
                    pos += 1
                    continue
                found = _IN_STRING.search(buf, pos)
                if found is None:
                    pos = length
                    break
                pos = found.end()
                if buf[found.start()] == 0x5C:  # backslash
                    self.escape = True
                else:
                    self.in_string = False
                continue
            found = _STRUCTURAL.search(buf, pos)
            if found is None:
                pos = length
                break
            pos = found.end()
            char = buf[found.start()]
            if char == 0x22:  # "
                self.in_string = True
            elif char in b"{[":
                self.nesting += 1
                self.max_depth = max(self.max_depth, self.nesting)
                self.depth += char == self.open
            else:
                self.nesting -= 1
                if char == self.open + 2:  # } is { + 2, ] is [ + 2
                    self.depth -= 1
                    if self.depth == 0:
                        self.pos = pos
                        return pos
        self.pos = pos
        return None


class Client:
    """One connection: its socket, address, framer, pending output and name once joined."""

    __slots__ = ("address", "framer", "name", "out", "sock", "writing")

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self.framer = Framer()
        self.out = bytearray()
        self.writing = False
        self.name: str | None = None


#: A method's handler: the client and its ``params``; returns the response, or None when it
#: sent the response itself (before its broadcasts).
Handler = Callable[["Client", Any], "dict[str, Any] | None"]


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def trimmed(value: str) -> str:
    return value.strip(ECMA_SPACE)


def system(text: str) -> dict[str, Any]:
    return {"type": "system", "message": text, "username": "SYSTEM"}


class RpcServer:
    """Transport: the selector loop, sockets, buffers, routing and broadcasting."""

    def __init__(self, listener: socket.socket, max_send_buffer: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.listener = listener
        self.max_send_buffer = max_send_buffer
        self.clients: dict[socket.socket, Client] = {}
        self.handlers: dict[str, Handler] = {}
        self.on_disconnect: Callable[[Client], None] = lambda client: None
        #: Work put off until after the current batch of events: announcing a disconnect may
        #: close other clients (a failed send), whose announcements must not recurse.
        self.later: deque[Callable[[], None]] = deque()
        self.running = True
        self.wake_read, self.wake_write = socket.socketpair()
        for end in (self.wake_read, self.wake_write):
            end.setblocking(False)
        signal.set_wakeup_fd(self.wake_write.fileno(), warn_on_full_buffer=False)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "wake")

    def register_handler(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    def stop(self) -> None:
        self.running = False

    def serve(self) -> None:
        while self.running:
            for key, events in self.selector.select():
                if key.data == "accept":
                    self.accept()
                elif key.data == "wake":
                    try:
                        self.wake_read.recv(512)
                    except BlockingIOError:
                        pass
                else:
                    client = key.data
                    if events & selectors.EVENT_WRITE and client.sock in self.clients:
                        self.flush(client)
                    if events & selectors.EVENT_READ and client.sock in self.clients:
                        self.read(client)
            while self.later:
                self.later.popleft()()
        for client in list(self.clients.values()):
            client.sock.close()
        self.selector.close()
        self.listener.close()

    def accept(self) -> None:
        for _ in range(64):
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of files: try again on the next event
                print(f"minimal_chat_server: accept: {exc}", file=sys.stderr)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host, port = peer[0], peer[1]
            client = Client(sock, f"{host}:{port}")
            self.clients[sock] = client
            self.selector.register(sock, selectors.EVENT_READ, client)

    def read(self, client: Client) -> None:
        try:
            data = client.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.disconnect(client)
            return
        client.framer.feed(data)
        for kind, frame in client.framer.items():
            if kind == "value":
                response = self.dispatch(client, frame)
            elif kind == "too-large":
                response = TOO_LARGE
            else:  # junk, or nested deeper than serde_json parses
                response = PARSE_ERROR
            if response is not None:
                self.send(client, encode(response))
            if client.sock not in self.clients:
                return

    def dispatch(self, client: Client, frame: bytes) -> dict[str, Any] | None:
        """The response to one value; None when the handler sent it (and its broadcasts) itself."""
        try:
            request = parse(frame)
        except (ValueError, RecursionError):
            return PARSE_ERROR
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return rpc_error(-32600, "Invalid Request")
        handler = self.handlers.get(request["method"])
        if handler is None:
            return rpc_error(-32601, "Method not found")
        return handler(client, request.get("params"))

    def send(self, client: Client, data: bytes) -> None:
        """Writes what the socket takes now; buffers the rest (bounded)."""
        if client.sock not in self.clients:
            return
        if not client.out:
            try:
                sent = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.disconnect(client)
                return
            if sent == len(data):
                return
            data = data[sent:]
        client.out += data
        if len(client.out) > self.max_send_buffer:
            self.disconnect(client)  # too slow a reader
            return
        if not client.writing:
            client.writing = True
            self.selector.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.disconnect(client)
            return
        del client.out[:sent]
        if not client.out and client.writing:
            client.writing = False
            self.selector.modify(client.sock, selectors.EVENT_READ, client)

    def broadcast(self, message: dict[str, Any], exclude: Client | None, joined: list[Client]) -> None:
        data = encode(message)
        for client in joined:
            if client is not exclude:
                self.send(client, data)

    def disconnect(self, client: Client) -> None:
        if self.clients.pop(client.sock, None) is None:
            return
        self.selector.unregister(client.sock)
        client.sock.close()
        self.on_disconnect(client)


class ChatServer:
    """Business logic: users, validation, the four methods."""

    def __init__(self, rpc: RpcServer) -> None:
        self.rpc = rpc
        self.users: dict[str, Client] = {}  # name -> client, in join order
        rpc.register_handler("join_chat", self.join_chat)
        rpc.register_handler("send_message", self.send_message)
        rpc.register_handler("get_users", self.get_users)
        rpc.register_handler("leave_chat", self.leave_chat)
        rpc.on_disconnect = self.disconnected

    def user_list(self) -> list[dict[str, str]]:
        return [{"username": name, "address": client.address} for name, client in self.users.items()]

    def others(self, message: dict[str, Any], sender: Client) -> None:
        self.rpc.broadcast(message, sender, list(self.users.values()))

    def join_chat(self, client: Client, params: Any) -> dict[str, Any] | None:
        if not isinstance(params, dict) or not isinstance(params.get("username"), str):
            return rpc_error(-32602, "Invalid params: username (a string) is required")
        if client.name is not None:
            return status_error(f"Already joined as {client.name}")
        name = trimmed(params["username"])
        if not name:
            return status_error("Username cannot be empty")
        if len(name) > MAX_NAME:
            return status_error(f"Username too long (max {MAX_NAME} characters)")
        if name in self.users:
            name = f"{name}_{client.address.rsplit(':', 1)[1]}"
            if name in self.users:
                return status_error("Username already taken")
        self.users[name] = client
        client.name = name
        response = {
            "status": "success",
            "message": f"Joined chat as {name}",
            "username": name,
            "users": self.user_list(),
        }
        self.rpc.send(client, encode(response))
        self.others(system(f"{name} has joined the chat!"), client)
        # After the response: the welcome is the joiner's first broadcast.
        self.rpc.send(client, encode(system(f"Welcome to the chat, {name}!")))
        return None

    def send_message(self, client: Client, params: Any) -> dict[str, Any] | None:
        if not isinstance(params, dict) or not isinstance(params.get("message"), str):
            return rpc_error(-32602, "Invalid params: message (a string) is required")
        if client.name is None:
            return status_error("Join the chat first")
        text = trimmed(params["message"])
        if not text:
            return status_error("Message cannot be empty")
        if len(text) > MAX_MESSAGE:
            return status_error("Message too long")
        self.rpc.send(client, encode({"status": "success", "message": "Message sent successfully"}))
        self.others({"type": "chat", "message": text, "username": client.name}, client)
        return None

    def get_users(self, client: Client, params: Any) -> dict[str, Any]:
        if params != {}:
            return rpc_error(-32602, "Invalid params: get_users takes {}")
        if client.name is None:
            return status_error("Join the chat first")
        users = self.user_list()
        return {"status": "success", "message": "Users retrieved successfully", "users": users, "count": len(users)}

    def leave_chat(self, client: Client, params: Any) -> dict[str, Any] | None:
        if params != {}:
            return rpc_error(-32602, "Invalid params: leave_chat takes {}")
        if client.name is None:
            return status_error("Join the chat first")
        name = client.name
        del self.users[name]
        client.name = None
        self.rpc.send(client, encode({"status": "success", "message": "Left chat successfully"}))
        self.others(system(f"{name} has left the chat!"), client)
        return None

    def disconnected(self, client: Client) -> None:
        if client.name is not None and self.users.get(client.name) is client:
            name = client.name
            del self.users[name]
            client.name = None
            # Sending may fail and disconnect another client: announced after this event.
            self.rpc.later.append(lambda: self.others(system(f"{name} has left the chat!"), client))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Minimal chat server (seed 003; benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--max-send-buffer", type=int, default=4 << 20, help="bytes queued for a client before it is dropped (4 MiB)"
    )
    args = parser.parse_args(argv)
    if args.max_send_buffer < 1:
        parser.error("--max-send-buffer must be positive")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, args.port))
        listener.listen(1024)
    except OSError as exc:
        print(f"minimal_chat_server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    rpc = RpcServer(listener, args.max_send_buffer)
    ChatServer(rpc)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: rpc.stop())
    port = listener.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on tcp://{shown}:{port}", flush=True)
    rpc.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
