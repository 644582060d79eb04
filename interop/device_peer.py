#!/usr/bin/env python3
"""An interop peer for the device family (seed 002, PROFILE.md "device (seed 002)").

    device_peer.py --endpoint ws://127.0.0.1:PORT [--timeout 5] [--settle 0.2]
                   [--ping-wait SECONDS] [--stale-timeout SECONDS]
                   [--command say] [--bare-command reset] [--prefix py]

Built on ``websockets`` only, sharing no code with specwire. It plays every role the profile has,
each on its own connection to the hub: two devices (``A`` and ``B``), a subscriber, a commanding
client, and (with ``--stale-timeout``) a third device ``C`` that falls silent. One scripted run:

1. ``ping`` -> ``pong``; ``id:<A>``, ``id:<B>`` and ``s`` are not answered;
2. data lines (with ``:`` in them) from ``A`` and ``B`` reach the subscriber as
   ``<deviceId>:<data>``, unchanged and in order, and nobody else;
3. ``cmd:<A>:<command>:<parameters>`` (parameters with ``:``) reaches ``A`` alone as
   ``<command>:<parameters>``; ``cmd:all:...`` reaches ``A`` and ``B``; ``cmd:<B>:<bare>``
   (no parameters) reaches ``B`` as ``<bare>``; the commanding client gets no answer;
4. an unknown command (to one device and to ``all``) and an unknown target are answered
   ``error:<reason>`` and nothing reaches any device; data from a connection that is not a
   device is answered ``error:``;
5. with ``--ping-wait``: the hub's ``ping`` reaches device ``A``, whose ``pong`` is neither
   answered nor broadcast (the hub takes it as a sign of life);
6. with ``--stale-timeout`` (the hub's, in seconds): ``C`` registers and then sends nothing; the
   hub must close it after that long (not much sooner, not much later), forget it (a ``cmd:`` to
   it is an unknown target), and keep ``A``, which only answered pings meanwhile;
7. every connection closes with 1000.

Silence is proved, not waited for: after a line that must not be answered (or forwarded), the
connection sends ``ping`` and the first thing it receives must be ``pong``. Devices answer the
hub's ``ping`` with ``pong`` throughout (except ``C``), and those pings are not counted as
replies. After that, each check still listens ``--settle`` seconds for strays.

Output: one JSON line per check ``{"check", "ok", "detail"}``, then a summary line. Exit status 0
when every check passed, 1 when one failed, 2 on a usage error or when the hub cannot be reached.
Every wait is bounded by ``--timeout``; a watchdog bounds the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from typing import Any, NoReturn, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
QUOTE_LIMIT = 160


def quote(frame: str | bytes | None) -> str:
    """A short printable quotation of a frame."""
    if frame is None:
        return "nothing"
    shown = repr(frame[:QUOTE_LIMIT])
    return shown + ("..." if len(frame) > QUOTE_LIMIT else "")


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
        line = {"summary": "device interop", "ok": self.failed == 0, "passed": self.passed, "failed": self.failed}
        line.update(extra)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


class Peer:
    """One connection, read by a task of its own into a queue.

    Once it is a device (``device`` set before its ``id:`` goes out), the hub's ``ping`` lines
    are counted and, if ``answer_pings``, answered with ``pong`` at once; they never reach the
    queue. Everything else does.
    """

    def __init__(self, name: str, ws: ClientConnection, answer_pings: bool = True) -> None:
        self.name = name
        self.ws = ws
        self.answer_pings = answer_pings
        self.device = False
        self.hub_pings = 0
        self.pinged = asyncio.Event()
        self.closed = asyncio.Event()
        self.closed_at: float | None = None
        self.received = 0
        #: When this side last sent a frame (pongs to the hub included).
        self.last_sent = time.monotonic()
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                self.received += 1
                if self.device and frame == "ping":
                    self.hub_pings += 1
                    if self.answer_pings:
                        self.last_sent = time.monotonic()
                        await self.ws.send("pong")
                    self.pinged.set()
                    continue
                self.queue.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()

    async def send(self, text: str) -> bool:
        self.last_sent = time.monotonic()
        try:
            await self.ws.send(text)
            return True
        except ConnectionClosed:
            return False

    async def next(self, timeout: float) -> str | bytes | None:
        """The next frame within ``timeout``; None on timeout or when the connection is gone."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        getter = asyncio.ensure_future(self.queue.get())
        closing = asyncio.ensure_future(self.closed.wait())
        done, _ = await asyncio.wait({getter, closing}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        if not self.queue.empty():
            return self.queue.get_nowait()
        return None

    def drain(self) -> list[str | bytes]:
        frames = []
        while not self.queue.empty():
            frames.append(self.queue.get_nowait())
        return frames

    def gone(self) -> str:
        if self.closed.is_set():
            return f" (connection closed: {self.ws.close_code} {self.ws.close_reason!r})"
        return ""


class Run:
    """The scripted session."""

    def __init__(self, args: argparse.Namespace, report: Report) -> None:
        self.args = args
        self.report = report
        self.timeout: float = args.timeout
        self.settle: float = args.settle
        tag = secrets.token_hex(3)
        self.ids = {name: f"{args.prefix}-{name}-{tag}" for name in ("a", "b", "c")}
        self.peers: dict[str, Peer] = {}

    def check(self, name: str, ok: bool, detail: str) -> bool:
        return self.report.check(name, ok, detail)

    async def open(self, name: str, answer_pings: bool = True) -> Peer | None:
        try:
            ws = await asyncio.wait_for(
                connect(self.args.endpoint, open_timeout=self.timeout, max_size=2**20), self.timeout
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.check(f"connect:{name}", False, f"{type(exc).__name__}: {exc}")
            return None
        peer = Peer(name, ws, answer_pings)
        self.peers[name] = peer
        self.check(f"connect:{name}", True, f"connected to {self.args.endpoint}")
        return peer

    async def quiet(self, peer: Peer) -> tuple[bool, str]:
        """Proves ``peer`` got nothing so far: its ``ping`` is answered ``pong`` first; strays
        within ``--settle`` afterwards fail too."""
        if not await peer.send("ping"):
            return False, f"{peer.name}: could not send ping{peer.gone()}"
        before = []
        while True:
            frame = await peer.next(self.timeout)
            if frame is None:
                return False, f"{peer.name}: no pong within {self.timeout:g}s{peer.gone()}" + (
                    f" after {', '.join(quote(f) for f in before)}" if before else ""
                )
            if frame == "pong":
                break
            before.append(frame)
        if self.settle > 0:
            await asyncio.sleep(self.settle)
        after = peer.drain()
        if before or after:
            stray = [quote(f) for f in before] + [f"{quote(f)} (after the pong)" for f in after]
            return False, f"{peer.name} received {', '.join(stray)}"
        return True, f"{peer.name}: ping answered pong, nothing else"

    async def all_quiet(self, name: str, peers: list[Peer], what: str) -> bool:
        results = await asyncio.gather(*(self.quiet(peer) for peer in peers))
        ok = all(result for result, _ in results)
        return self.check(name, ok, f"{what}: " + "; ".join(detail for _, detail in results))

    async def expect(self, peer: Peer, want: str) -> tuple[bool, str]:
        frame = await peer.next(self.timeout)
        if frame == want:
            return True, f"{peer.name} received {quote(frame)}"
        return False, f"{peer.name} expected {quote(want)}, received {quote(frame)}{peer.gone()}"

    async def expect_error(self, peer: Peer, name: str, line: str) -> bool:
        if not await peer.send(line):
            return self.check(name, False, f"could not send {quote(line)}{peer.gone()}")
        frame = await peer.next(self.timeout)
        ok = isinstance(frame, str) and frame.startswith("error:") and len(frame) > len("error:")
        return self.check(name, ok, f"{quote(line)} answered {quote(frame)}{peer.gone()}")

    async def run(self) -> None:
        a_id, b_id = self.ids["a"], self.ids["b"]
        commander = await self.open("commander")
        subscriber = await self.open("subscriber")
        a = await self.open("device-a")
        b = await self.open("device-b")
        if None in (commander, subscriber, a, b):
            return
        assert commander and subscriber and a and b

        # 1. ping, registration and subscription.
        await commander.send("ping")
        ok, detail = await self.expect(commander, "pong")
        self.check("ping-pong", ok, detail)
        for peer, device in ((a, a_id), (b, b_id)):
            peer.device = True
            await peer.send(f"id:{device}")
            ok, detail = await self.quiet(peer)
            self.check(f"register-silent:{peer.name}", ok, f"id:{device} then {detail}")
        await subscriber.send("s")
        ok, detail = await self.quiet(subscriber)
        self.check("subscribe-silent", ok, f"s then {detail}")

        # 2. Data to the subscriber, unchanged and in order.
        data = "temp=21.5;note=a:b::c: d"
        await a.send(data)
        ok, detail = await self.expect(subscriber, f"{a_id}:{data}")
        self.check("data-broadcast", ok, detail)
        lines = [f"seq={n};t=12:00:0{n};x=:" for n in range(5)]
        for line in lines:
            await b.send(line)
        got = [await subscriber.next(self.timeout) for _ in lines]
        want = [f"{b_id}:{line}" for line in lines]
        self.check(
            "data-order",
            got == want,
            f"{len(lines)} lines from {b_id}: received {', '.join(quote(f) for f in got)}",
        )
        await self.all_quiet("data-to-subscribers-only", [a, b, commander, subscriber], "after the data")

        # 3. Commands.
        command, bare = self.args.command, self.args.bare_command
        parameters = "time: 12:00:00"
        await commander.send(f"cmd:{a_id}:{command}:{parameters}")
        ok, detail = await self.expect(a, f"{command}:{parameters}")
        self.check("cmd-one", ok, detail)
        await self.all_quiet("cmd-one-only", [commander, b, subscriber], "no answer, nothing forwarded elsewhere")
        parameters = "a:b: c:"
        await commander.send(f"cmd:all:{command}:{parameters}")
        results = [await self.expect(peer, f"{command}:{parameters}") for peer in (a, b)]
        self.check("cmd-all", all(ok for ok, _ in results), "; ".join(detail for _, detail in results))
        await self.all_quiet("cmd-all-silent", [commander, subscriber, a, b], "no answer, no second copy")
        await commander.send(f"cmd:{b_id}:{bare}")
        ok, detail = await self.expect(b, bare)
        self.check("cmd-no-parameters", ok, detail)
        await self.all_quiet("cmd-no-parameters-only", [commander, a], "no answer, nothing to the other device")

        # 4. Refusals: answered `error:`, nothing forwarded.
        unknown = f"fly-{secrets.token_hex(2)}"
        await self.expect_error(commander, "cmd-unknown-command", f"cmd:{a_id}:{unknown}:high:er")
        await self.expect_error(commander, "cmd-unknown-command-all", f"cmd:all:{unknown}")
        await self.expect_error(commander, "cmd-unknown-target", f"cmd:nobody-{secrets.token_hex(3)}:{command}:hi")
        await self.all_quiet("refused-not-forwarded", [a, b, subscriber], "after the refused commands")
        await self.expect_error(commander, "not-a-device", "temp=1:2")
        await self.all_quiet("not-a-device-not-broadcast", [subscriber, commander], "after data from a non-device")

        # 5. The hub's ping.
        if self.args.ping_wait > 0:
            try:
                await asyncio.wait_for(a.pinged.wait(), self.args.ping_wait)
                self.check("hub-ping", True, f"{a.name} received the hub's ping and answered pong")
                await self.all_quiet("hub-ping-pong-silent", [a, subscriber], "the device's pong is life, not data")
            except TimeoutError:
                self.check("hub-ping", False, f"no ping from the hub within {self.args.ping_wait:g}s{a.gone()}")

        # 6. A silent device is dropped; one that answers pings stays.
        if self.args.stale_timeout > 0:
            await self.stale(commander, a, b)

    async def stale(self, commander: Peer, a: Peer, b: Peer) -> None:
        stale = self.args.stale_timeout
        c_id = self.ids["c"]
        c = await self.open("device-c", answer_pings=False)
        if c is None:
            return
        c.device = True
        await c.send(f"id:{c_id}")
        ok, detail = await self.quiet(c)
        self.check("register-silent:device-c", ok, f"id:{c_id} then {detail}")
        silent_since = c.last_sent
        # Nothing more from C: it must be closed after `stale` s (plus the hub's sweep step).
        bound = stale * 2 + 2 + self.timeout
        try:
            await asyncio.wait_for(c.closed.wait(), bound)
        except TimeoutError:
            self.check("stale-drop", False, f"{c_id} still open {bound:g}s after it fell silent ({c.hub_pings} pings)")
            return
        closed_after = (c.closed_at or time.monotonic()) - silent_since
        early = closed_after < stale * 0.9
        self.check(
            "stale-drop",
            not early,
            f"{c_id} closed {closed_after:.2f}s after its last frame (stale timeout {stale:g}s), "
            f"close {c.ws.close_code} {c.ws.close_reason!r}, {c.hub_pings} unanswered pings"
            + ("; too early" if early else ""),
        )
        await self.expect_error(commander, "stale-forgotten", f"cmd:{c_id}:{self.args.bare_command}")
        await commander.send(f"cmd:{self.ids['a']}:{self.args.bare_command}")
        ok, detail = await self.expect(a, self.args.bare_command)
        self.check(
            "alive-answering-pings",
            ok and a.hub_pings > 0,
            f"after {closed_after:.2f}s of answering {a.hub_pings} pings only: {detail}",
        )
        await self.all_quiet("alive-answering-pings-only", [b, commander], "nothing else")

    async def close(self) -> None:
        """Close every connection with 1000; the hub must answer the close handshake."""
        for name, peer in self.peers.items():
            if peer.closed.is_set():
                continue
            try:
                await asyncio.wait_for(peer.ws.close(code=1000, reason="done"), self.timeout)
                await asyncio.wait_for(peer.closed.wait(), self.timeout)
            except TimeoutError:
                peer.ws.transport.abort()
                self.check(f"close-handshake:{name}", False, f"close did not finish within {self.timeout:g}s")
                continue
            code = peer.ws.close_code
            self.check(f"close-handshake:{name}", code == 1000, f"the hub answered close {code}")


class Parser(argparse.ArgumentParser):
    """Exits with status 2 on usage errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"device_peer: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(description="Interop peer for specwire's device family (devices, subscriber, commander).")
    parser.add_argument("--endpoint", required=True, help="ws://HOST:PORT of the hub")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per step (default 5)")
    parser.add_argument(
        "--settle", type=float, default=0.2, help="seconds a silent connection is watched after its pong (0.2)"
    )
    parser.add_argument(
        "--ping-wait", type=float, default=0.0, help="wait this long for the hub's ping (default 0: do not)"
    )
    parser.add_argument(
        "--stale-timeout",
        type=float,
        default=0.0,
        help="the hub's stale timeout in seconds: check that a silent device is dropped (default 0: do not)",
    )
    parser.add_argument("--command", default="say", help="a registry command taking a string parameter (say)")
    parser.add_argument("--bare-command", default="reset", help="a registry command without parameters (reset)")
    parser.add_argument("--prefix", default="py", help="device ids are PREFIX-a-XXXXXX, ... (py)")
    args = parser.parse_args(argv)
    if not args.timeout > 0 or args.settle < 0 or args.ping_wait < 0 or args.stale_timeout < 0:
        parser.error("--timeout must be positive; --settle, --ping-wait and --stale-timeout not negative")
    if not args.endpoint.startswith(("ws://", "wss://")):
        parser.error("--endpoint must be a ws:// or wss:// URL")
    for option, value in (("--command", args.command), ("--bare-command", args.bare_command), ("--prefix", args.prefix)):
        if not value or ":" in value or any(c.isspace() for c in value):
            parser.error(f"{option} must be non-empty, without ':' or white space")
    return args


async def main(args: argparse.Namespace, out: TextIO) -> int:
    report = Report(out)
    run = Run(args, report)
    budget = args.timeout * 60 + args.ping_wait + args.stale_timeout * 3 + 10
    try:
        await asyncio.wait_for(run.run(), budget)
    except TimeoutError:
        report.check("watchdog", False, f"the run did not finish within {budget:g}s")
    reached = len(run.peers) >= 4
    try:
        await asyncio.wait_for(run.close(), args.timeout * (len(run.peers) + 1))
    except TimeoutError:
        report.check("watchdog", False, "closing did not finish")
    for peer in run.peers.values():
        peer.ws.transport.abort()
        peer.reader.cancel()
    report.summary(
        endpoint=args.endpoint,
        devices=run.ids,
        connections=len(run.peers),
        received=sum(peer.received for peer in run.peers.values()),
    )
    if not reached:
        return EXIT_USAGE
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]), sys.stdout)))
