#!/usr/bin/env python3
"""An interop peer for the chat family (seed 003, PROFILE.md "chat (seed 003)"): N raw-socket clients.

    chat_client.py --endpoint tcp://127.0.0.1:PORT [--clients 8] [--messages 5] [--timeout 5]
                   [--prefix py]

Standard library only, sharing no code with specwire, written as the seed's "Testing Examples"
are: ``socket`` and ``json.JSONDecoder().raw_decode`` over a receive buffer (several objects per
read, one object split over reads). Each client is a thread with its own connection; together
they run one scripted session and check what every one of them gets:

1. client 0, before joining: ``send_message``, ``get_users`` and ``leave_chat`` get
   ``status: error``; then, coalesced into one ``sendall``, bad JSON (-32700), a JSON array and an
   object without ``method`` (-32600), an unknown method (-32601), ``join_chat`` without params and
   with a number for a name (-32602), a blank name and a 51-character one (``status: error``):
   one response each, in order;
2. the clients join one after another (each after the previous one's response); the join response
   is a success, its ``username`` (when given) is the name asked for and its ``users`` (when
   given) are exactly the clients joined so far; client 0 then tries its own name from another
   connection (refused ``status: error``, or given another name, announced, and left again) and
   a second ``join_chat`` on its own connection (``status: error``);
3. every client sees ``NAME has joined the chat!`` for each client that joined after it, and for
   no one else (never itself); a ``Welcome to the chat, NAME!`` to itself is allowed, once;
4. each client sends ``--messages`` messages (non-ASCII text; some end with ``\\n``, some do not,
   some are split over three ``sendall``s, one of them inside a UTF-8 character; some are padded
   with spaces): each gets a success, in order, and every other client receives each one once,
   with the sender's name, in the order sent (the text as sent or trimmed); no client gets its
   own; an empty and a 1001-character message get ``status: error``;
5. ``get_users``: ``count == len(users)``, and the users are exactly the clients;
6. the last client disconnects without ``leave_chat``: everyone else sees it announced as left;
7. the others leave one after another: each sees the leaves before its own (not its own), gets a
   success, and then ``status: error`` for ``get_users`` and no broadcast at all.

Every message received must be a response (``status``, or ``error`` + ``code``) or a broadcast
(``type``, no ``status``); anything else fails the ``well-formed`` check.

Output: one JSON line per check ``{"check", "ok", "detail"}`` (a check covers every client: the
detail says how many passed and quotes the first failures), then a summary line. Exit status 0
when every check passed, 1 when one failed, 2 on a usage error or when the server cannot be
reached. Every wait is bounded by ``--timeout``; a watchdog bounds the run.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
QUOTE = 200
#: Pause between the parts of a request split over several ``sendall``s, so that they reach the
#: server as separate reads (traffic shape, not synchronisation).
SPLIT_GAP = 0.005


class Failure(Exception):
    """A step that cannot go on (a timeout, a closed connection)."""


def quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= QUOTE else text[:QUOTE] + "..."


class Report:
    """Checks aggregated over the clients, printed at the end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checks: dict[str, dict[str, Any]] = {}

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        with self.lock:
            entry = self.checks.setdefault(name, {"passed": 0, "failed": 0, "example": "", "failures": []})
            if ok:
                entry["passed"] += 1
                entry["example"] = entry["example"] or detail
            else:
                entry["failed"] += 1
                if len(entry["failures"]) < 3:
                    entry["failures"].append(detail)
        return ok

    def emit(self, out: Any, summary: dict[str, Any]) -> bool:
        failed = 0
        with self.lock:
            for name, entry in self.checks.items():
                ok = entry["failed"] == 0
                failed += not ok
                counts = f"{entry['passed']} passed, {entry['failed']} failed"
                shown = entry["failures"] if entry["failures"] else [entry["example"]]
                detail = "; ".join([counts, *[text for text in shown if text]])
                out.write(json.dumps({"check": name, "ok": ok, "detail": detail}, ensure_ascii=False) + "\n")
            summary = {**summary, "ok": failed == 0, "checks": len(self.checks), "failed": failed}
        out.write(json.dumps(summary) + "\n")
        out.flush()
        return failed == 0


def is_response(message: dict[str, Any]) -> bool:
    return "status" in message or ("error" in message and "code" in message)


def is_broadcast(message: dict[str, Any]) -> bool:
    return "type" in message and "status" not in message


class Conn:
    """One raw TCP connection: requests out, responses in order, broadcasts kept aside."""

    def __init__(self, host: str, port: int, timeout: float, report: Report, who: str) -> None:
        self.timeout = timeout
        self.report = report
        self.who = who
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise Failure(f"{who}: cannot connect to {host}:{port}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.decoder = json.JSONDecoder()
        self.buffer = ""
        self.responses: list[dict[str, Any]] = []
        self.broadcasts: list[dict[str, Any]] = []
        #: ``Welcome to the chat, NAME!`` messages, kept apart: allowed at any point after a join.
        self.welcomes: list[str] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, message: Any, newline: bool = True, parts: int = 1) -> None:
        """Sends one request, ``\\n``-terminated or not, in ``parts`` ``sendall``s."""
        data = (json.dumps(message, ensure_ascii=False) + ("\n" if newline else "")).encode()
        self.send_bytes(data, parts)

    def send_bytes(self, data: bytes, parts: int = 1) -> None:
        cuts = [len(data) * k // parts for k in range(1, parts)]
        if parts > 1:
            # One cut inside a multi-byte character when there is one.
            wide = next((i for i, byte in enumerate(data) if byte >= 0xC0), None)
            if wide is not None:
                cuts[0] = wide + 1
        cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
        start = 0
        try:
            for cut in [*cuts, len(data)]:
                self.sock.sendall(data[start:cut])
                start = cut
                if cut != len(data):
                    time.sleep(SPLIT_GAP)
        except OSError as exc:
            raise Failure(f"{self.who}: send: {exc}") from exc

    def _receive(self, deadline: float) -> None:
        """Reads once (bounded by ``deadline``) and decodes every complete object."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise
        except OSError as exc:
            raise Failure(f"{self.who}: receive: {exc}") from exc
        if not data:
            raise Failure(f"{self.who}: the server closed the connection")
        self.buffer += self.utf8.decode(data)
        while True:
            self.buffer = self.buffer.lstrip()
            if not self.buffer:
                return
            try:
                message, end = self.decoder.raw_decode(self.buffer)
            except json.JSONDecodeError:
                if len(self.buffer) > 1 << 20:
                    raise Failure(f"{self.who}: 1 MiB that is not JSON: {quote(self.buffer)}") from None
                return  # an object split over reads: wait for the rest
            self.buffer = self.buffer[end:]
            self._sort(message)

    def _sort(self, message: Any) -> None:
        if isinstance(message, dict) and is_response(message):
            self.responses.append(message)
        elif isinstance(message, dict) and is_broadcast(message):
            text = message.get("message")
            if message.get("type") == "system" and isinstance(text, str) and text.startswith("Welcome to the chat, "):
                self.welcomes.append(text)
            else:
                self.broadcasts.append(message)
        else:
            self.report.check("well-formed", False, f"{self.who}: neither response nor broadcast: {quote(message)}")

    def response(self, what: str) -> dict[str, Any]:
        """The next response, waiting up to the timeout."""
        deadline = time.monotonic() + self.timeout
        while not self.responses:
            try:
                self._receive(deadline)
            except TimeoutError:
                raise Failure(f"{self.who}: no response to {what} within {self.timeout} s") from None
        return self.responses.pop(0)

    def request(self, method: str, params: Any, newline: bool = True, parts: int = 1) -> dict[str, Any]:
        self.send({"method": method, "params": params}, newline, parts)
        return self.response(method)

    def wait_broadcast(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first kept broadcast that matches (removed), waiting up to the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            for index, message in enumerate(self.broadcasts):
                if predicate(message):
                    return self.broadcasts.pop(index)
            try:
                self._receive(deadline)
            except TimeoutError:
                raise Failure(f"{self.who}: no {what} within {self.timeout} s") from None

    def take_system(self, text: str) -> bool:
        """Removes the kept system broadcast ``text``, if there is one."""
        for index, message in enumerate(self.broadcasts):
            if message.get("type") == "system" and message.get("message") == text:
                del self.broadcasts[index]
                return True
        return False


def success(response: dict[str, Any]) -> bool:
    return response.get("status") == "success"


def status_error(response: dict[str, Any]) -> bool:
    return response.get("status") == "error" and isinstance(response.get("message"), str)


def names_of(users: Any) -> list[str] | None:
    """User names from a list of names or of ``{username, address}`` objects."""
    if not isinstance(users, list):
        return None
    names = []
    for user in users:
        if isinstance(user, str):
            names.append(user)
        elif isinstance(user, dict) and isinstance(user.get("username"), str) and isinstance(user.get("address"), str):
            names.append(user["username"])
        else:
            return None
    return names


class Session:
    """What the client threads share: names, the join/leave chain, barriers."""

    def __init__(self, args: argparse.Namespace, host: str, port: int, report: Report) -> None:
        self.args = args
        self.host = host
        self.port = port
        self.report = report
        run = secrets.token_hex(3)
        self.names = [f"{args.prefix}{index}-{run}" for index in range(args.clients)]
        self.joined = [threading.Event() for _ in self.names]
        self.left = [threading.Event() for _ in self.names]
        self.barrier = threading.Barrier(args.clients, timeout=args.timeout * 4)

    def after(self, events: list[threading.Event], index: int, what: str) -> None:
        if index > 0 and not events[index - 1].wait(self.args.timeout * 2):
            raise Failure(f"client {index}: client {index - 1} did not {what}")

    def sync(self) -> None:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            raise Failure("another client failed") from None

    def texts(self, index: int) -> list[str]:
        name = self.names[index]
        return [
            ("  " if j % 4 == 3 else "") + f"{name} #{j}: héllo ✓ 🎉 {{\"not\": [json]}}" + (" \t" if j % 4 == 3 else "")
            for j in range(self.args.messages)
        ]


def pre_join_checks(conn: Conn, report: Report) -> None:
    """Client 0 before it joins: state errors, then JSON-RPC errors coalesced into one write."""
    for method, params in (("send_message", {"message": "too early"}), ("get_users", {}), ("leave_chat", {})):
        response = conn.request(method, params)
        report.check(f"before-join:{method}", status_error(response), f"got {quote(response)}")
    batch = [
        (b'{"method": "send_message", "params": {"message": }}\n', "code", -32700),
        (b"[1, 2, 3]\n", "code", -32600),
        (b'{"params": {}}', "code", -32600),
        (b'{"method": "no_such_method", "params": {}}', "code", -32601),
        (b'{"method": "join_chat"}\n', "code", -32602),
        (b'{"method": "join_chat", "params": {"username": 5}}', "code", -32602),
        (b'{"method": "join_chat", "params": {"username": "   "}}\n', "status", "error"),
        (b'{"method": "join_chat", "params": {"username": "' + b"n" * 51 + b'"}}', "status", "error"),
    ]
    conn.send_bytes(b"".join(request for request, _, _ in batch))
    for request, key, wanted in batch:
        response = conn.response(request.decode().strip())
        name = "rpc-errors" if key == "code" else "validation"
        report.check(
            name,
            response.get(key) == wanted and (key != "code" or isinstance(response.get("error"), str)),
            f"{quote(request.decode().strip())} -> {quote(response)} (wanted {key} {wanted})",
        )


def duplicate_name_check(session: Session, conn: Conn, name: str) -> None:
    """Client 0's name from another connection: refused, or another name (announced, then left)."""
    report = session.report
    other = Conn(session.host, session.port, session.args.timeout, report, "client 0's twin")
    try:
        response = other.request("join_chat", {"username": name})
        if status_error(response):
            report.check("name-taken", True, f"refused: {quote(response)}")
            return
        given = response.get("username")
        if not (success(response) and isinstance(given, str) and given != name):
            report.check("name-taken", False, f"a second {name!r} got {quote(response)}")
            return
        joined = conn.take_system(f"{given} has joined the chat!") or bool(
            conn.wait_broadcast(lambda m: m.get("message") == f"{given} has joined the chat!", f"{given}'s join")
        )
        left = other.request("leave_chat", {})
        conn.wait_broadcast(lambda m: m.get("message") == f"{given} has left the chat!", f"{given}'s leave")
        report.check("name-taken", joined and success(left), f"given {given!r}, announced, left")
    finally:
        other.close()


def join(session: Session, index: int, conn: Conn) -> None:
    report, name = session.report, session.names[index]
    session.after(session.joined, index, "join")
    response = conn.request("join_chat", {"username": name}, newline=index % 2 == 0, parts=1 + index % 3)
    if not success(response):
        raise Failure(f"client {index}: join_chat {name!r} got {quote(response)}")
    given = response.get("username", name)
    report.check("join-username", given == name, f"asked {name!r}, given {quote(given)}")
    if "users" in response:
        names = names_of(response["users"])
        report.check(
            "join-users",
            names is not None and sorted(names) == sorted(session.names[: index + 1]),
            f"client {index}: users {quote(response['users'])}",
        )
    if index == 0:
        duplicate_name_check(session, conn, name)
        again = conn.request("join_chat", {"username": name + "x"})
        report.check("join-twice", status_error(again), f"got {quote(again)}")
    session.joined[index].set()


def check_announcements(session: Session, index: int, conn: Conn) -> None:
    """After every join: the joins after this client's, no others; one welcome at most."""
    report, names = session.report, session.names
    for later in names[index + 1 :]:
        text = f"{later} has joined the chat!"
        if not conn.take_system(text):
            conn.wait_broadcast(lambda m, text=text: m.get("type") == "system" and m.get("message") == text, text)
    stray = [m for m in conn.broadcasts if m.get("type") == "system"]
    report.check(
        "join-announcements",
        not stray,
        f"client {index}: joins of all {len(names) - index - 1} later clients; unexpected: {quote(stray)}",
    )
    conn.broadcasts = [m for m in conn.broadcasts if m.get("type") != "system"]


def chat(session: Session, index: int, conn: Conn) -> None:
    """Sends this client's messages, then expects everyone else's, each once and in order."""
    report, names, args = session.report, session.names, session.args
    for j, text in enumerate(session.texts(index)):
        response = conn.request("send_message", {"message": text}, newline=j % 3 == 0, parts=3 if j % 3 == 2 else 1)
        report.check("send-message", success(response), f"client {index} #{j}: {quote(response)}")
    for bad in (" \t ", "m" * 1001):
        response = conn.request("send_message", {"message": bad})
        report.check("message-validation", status_error(response), f"{len(bad)} characters: {quote(response)}")
    session.sync()  # everyone has sent; what follows is in flight or here
    expected = {name: session.texts(k) for k, name in enumerate(names) if k != index}
    total = sum(len(texts) for texts in expected.values())
    got: dict[str, list[str]] = {name: [] for name in expected}
    echoes = 0
    deadline = time.monotonic() + args.timeout
    while sum(len(texts) for texts in got.values()) < total:
        chats = [m for m in conn.broadcasts if m.get("type") == "chat"]
        conn.broadcasts = [m for m in conn.broadcasts if m.get("type") != "chat"]
        for message in chats:
            sender = message.get("username")
            if sender == names[index]:
                echoes += 1
            elif sender in got:
                got[sender].append(message.get("message"))
            else:
                report.check("chat-broadcasts", False, f"client {index}: from an unknown sender: {quote(message)}")
        if sum(len(texts) for texts in got.values()) >= total:
            break
        try:
            conn._receive(deadline)
        except TimeoutError:
            break
    wrong = [
        f"from {sender}: {quote(got[sender])}"
        for sender, texts in expected.items()
        if len(got[sender]) != len(texts) or any(m not in (t, t.strip()) for m, t in zip(got[sender], texts))
    ]
    report.check(
        "chat-broadcasts",
        not wrong,
        f"client {index}: {total} messages from {len(expected)} others, once each, in order"
        + (f"; wrong: {'; '.join(wrong[:2])}" if wrong else ""),
    )
    report.check("no-echo", echoes == 0, f"client {index}: {echoes} of its own messages came back")


def users(session: Session, index: int, conn: Conn) -> None:
    response = conn.request("get_users", {}, newline=False)
    names = names_of(response.get("users"))
    ok = (
        success(response)
        and names is not None
        and response.get("count") == len(names)
        and sorted(names) == sorted(session.names)
    )
    session.report.check("get-users", ok, f"client {index}: {quote(response)}")


def leave(session: Session, index: int, conn: Conn) -> None:
    """The last client drops its connection; the others leave in turn, seeing the earlier leaves."""
    report, names = session.report, session.names
    last = len(names) - 1
    if index == last and last > 0:
        conn.close()
        return
    if last > 0:
        text = f"{names[last]} has left the chat!"
        conn.wait_broadcast(lambda m: m.get("type") == "system" and m.get("message") == text, text)
        report.check("disconnect-announced", True, f"client {index} saw {names[last]} leave")
    session.after(session.left, index, "leave")
    for earlier in names[:index]:
        text = f"{earlier} has left the chat!"
        if not conn.take_system(text):
            conn.wait_broadcast(lambda m, text=text: m.get("type") == "system" and m.get("message") == text, text)
    stray = list(conn.broadcasts)
    report.check("leave-announcements", not stray, f"client {index}: unexpected {quote(stray)}")
    conn.broadcasts.clear()
    response = conn.request("leave_chat", {}, parts=2)
    report.check("leave", success(response), f"client {index}: {quote(response)}")
    session.left[index].set()


def after_leave(session: Session, index: int, conn: Conn) -> None:
    welcome = f"Welcome to the chat, {session.names[index]}!"
    session.report.check(
        "welcome-at-most-once",
        conn.welcomes in ([], [welcome]),
        f"client {index}: {quote(conn.welcomes) if conn.welcomes else 'no welcome'}",
    )
    if index == len(session.names) - 1 and index > 0:
        return
    response = conn.request("get_users", {})
    session.report.check("after-leave", status_error(response), f"client {index}: get_users got {quote(response)}")
    session.report.check(
        "no-broadcast-after-leave", not conn.broadcasts, f"client {index}: got {quote(conn.broadcasts)}"
    )


def client(session: Session, index: int) -> None:
    report = session.report
    conn: Conn | None = None
    try:
        conn = Conn(session.host, session.port, session.args.timeout, report, f"client {index}")
        if index == 0:
            pre_join_checks(conn, report)
        join(session, index, conn)
        session.sync()
        check_announcements(session, index, conn)
        chat(session, index, conn)
        session.sync()
        users(session, index, conn)
        session.sync()
        leave(session, index, conn)
        session.sync()
        after_leave(session, index, conn)
        report.check("client-completed", True, f"{session.args.clients} clients")
    except Failure as exc:
        report.check("client-completed", False, str(exc))
        session.barrier.abort()
        for event in (*session.joined, *session.left):
            event.set()  # release the chain: the others fail fast on the broken barrier
    finally:
        if conn is not None:
            conn.close()


def parse_endpoint(text: str) -> tuple[str, int]:
    rest = text.removeprefix("tcp://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--endpoint {text}: expected tcp://HOST:PORT or HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Chat-family interop peer: N raw-socket clients.")
    parser.add_argument("--endpoint", required=True, help="tcp://HOST:PORT or HOST:PORT")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--messages", type=int, default=5, help="messages each client sends (5)")
    parser.add_argument("--timeout", type=float, default=5.0, help="bound on every wait, in seconds (5)")
    parser.add_argument("--prefix", default="py", help="user names are PREFIX<n>-<random>")
    args = parser.parse_args(argv)
    try:
        host, port = parse_endpoint(args.endpoint)
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.clients <= 500 or not 1 <= args.messages <= 1000 or args.timeout <= 0:
        parser.error("--clients 1..500, --messages 1..1000, --timeout > 0")
    if not args.prefix or any(c.isspace() for c in args.prefix) or len(args.prefix) > 30:
        parser.error("--prefix: 1..30 characters, no white space")
    try:
        socket.create_connection((host, port), timeout=args.timeout).close()
    except OSError as exc:
        print(f"chat_client: cannot reach {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = Report()
    session = Session(args, host, port, report)
    threads = [threading.Thread(target=client, args=(session, i), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    # Watchdog: each phase is bounded by the timeout; the chains by a few per client.
    limit = args.timeout * (12 + 2 * args.clients)
    for thread in threads:
        thread.join(max(0.0, started + limit - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        report.check("watchdog", False, f"{hung} client(s) still running after {limit:.0f} s")
    summary = {
        "summary": "chat interop",
        "endpoint": args.endpoint,
        "clients": args.clients,
        "messages": args.messages,
        "seconds": round(time.monotonic() - started, 3),
    }
    ok = report.emit(sys.stdout, summary)
    if hung:
        sys.stdout.flush()
        os._exit(EXIT_FAILED)
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
