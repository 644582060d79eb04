#!/usr/bin/env python3
"""An interop peer for the uart family's module side (seed 004, PROFILE.md "uart (seed 004)").

    uart_module_check.py --port PATH [--nodes 3] [--timeout 5] [--settle 0.3]
                         [--schema schema/uart/protocol.json]

Plays the gateway against a root module (``specwire simulate uart-module``) over a serial port,
with ``pyserial`` and nothing of specwire's: its own byte stuffing, its own resynchronising
frame decoder, its own reading of the bodies. The data-type and opcode tables come from the
schema document (``--schema``), the one thing it shares with specwire.

The scripted run, each step a check:

1. ``open``: the port opens as a serial port (115200 8N1, raw). pyserial empties the input
   buffer on opening, so the NODs the module sent at its start are gone (as they would be for a
   gateway started after the module): the nodes are learnt from ``NINFO`` and checked against
   ``NET`` and the NODs after ``RST-R``.
2. Module commands, one outstanding at a time, each answered by exactly one frame:
   ``SEND-``/``SENDI`` to a node -> ``S`` alone; to an address that is not a node -> ``F`` with
   ``len(1) msg`` (``len`` matching, UTF-8); ``BCAST 0x0000`` -> ``S``; ``BCAST`` to any other
   address -> ``F``; ``CLEAN`` -> ``S``; ``STATE`` -> ``S`` and the module's bytes; ``NINFO`` ->
   ``S count(1) (addr(2) uuid(16))*`` listing nodes ``0x0001..=N`` with distinct UUIDs; an unknown five-byte name
   and a gateway-only command (``ACT-C``) -> ``F``.
3. ``one-reply-each``: a last ``STATE`` gets ``S``, then no stray ``S``/``F`` for ``--settle``.
4. ``data-update``: every node sends ``M DATA_UPDATE`` with ``count(1) (id(1) data)*``: every id
   of the table once, each value the table's length, no trailing bytes, values in range.
5. ``net``: ``M NET`` from the root lists every node with the UUID ``NINFO`` gave.
6. ``rst-r`` / ``rst-then-nod``: ``RST-R`` -> ``S``, then ``M RST`` (no payload) and a NOD per
   node (the UUIDs ``NINFO`` gave), before any other message.

Output: one JSON line per check ``{"check", "ok", "detail"}``, then a summary line. Exit status 0
when every check passed, 1 when one failed, 2 on a usage error or when the port cannot be opened.
Every wait is bounded by ``--timeout``; the whole run by a watchdog (an alarm).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, NoReturn, TextIO

import serial

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

START, END, ESC, ESC_XOR = 0xFF, 0xFE, 0xFA, 0xFA
KIND_SUCCESS, KIND_FAILURE, KIND_MESSAGE = ord("S"), ord("F"), ord("M")
ROOT = 0x0000


def escape(body: bytes) -> bytes:
    """The frame for a body: FF, the body with FF/FE/FA sent as FA (byte ^ FA), FE."""
    out = bytearray([START])
    for byte in body:
        if byte in (START, END, ESC):
            out += bytes([ESC, byte ^ ESC_XOR])
        else:
            out.append(byte)
    out.append(END)
    return bytes(out)


class FrameDecoder:
    """A streaming decoder that resynchronises on the next FF and counts dropped frames."""

    def __init__(self) -> None:
        self.state = "hunt"
        self.body = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for byte in data:
            if byte == START:
                if self.state in ("body", "escape"):
                    self.dropped += 1
                self.state, self.body = "body", bytearray()
            elif self.state == "hunt" or self.state == "skip":
                if byte == END:
                    self.state = "hunt"
            elif self.state == "escape":
                value = byte ^ ESC_XOR
                if value in (START, END, ESC):
                    self.body.append(value)
                    self.state = "body"
                else:
                    self.dropped += 1
                    self.state = "skip"
            elif byte == ESC:
                self.state = "escape"
            elif byte == END:
                if self.body:
                    frames.append(bytes(self.body))
                else:
                    self.dropped += 1
                self.state = "hunt"
            else:
                self.body.append(byte)
        return frames


def show(data: bytes | None) -> str:
    if data is None:
        return "nothing"
    return data[:48].hex(" ") + (" ..." if len(data) > 48 else "")


class Tables:
    """The schema's data-type and opcode tables."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.data_types = {entry["id"]: entry for entry in schema["dataTypes"]}
        self.opcodes = {entry["name"]: entry["code"] for entry in schema["opcodes"]}

    def value(self, data_id: int, data: bytes) -> int:
        kind = self.data_types[data_id]["valueType"]
        return int.from_bytes(data, "big", signed=kind.startswith("i"))


class Line:
    """The gateway's end of the serial line."""

    def __init__(self, port: str, timeout: float) -> None:
        self.serial = serial.Serial(port, 115200, timeout=0.05)
        self.timeout = timeout
        self.decoder = FrameDecoder()
        self.bodies: deque[bytes] = deque()
        self.messages: deque[bytes] = deque()

    def send(self, body: bytes) -> None:
        self.serial.write(escape(body))
        self.serial.flush()

    def body(self, wait: float | None = None) -> bytes | None:
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        while not self.bodies:
            if time.monotonic() >= deadline:
                return None
            self.bodies.extend(self.decoder.feed(self.serial.read(4096)))
        return self.bodies.popleft()

    def reply(self, wait: float | None = None) -> bytes | None:
        """The next S/F body; M bodies before it are kept in `messages`."""
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        while True:
            body = self.body(max(0.0, deadline - time.monotonic()))
            if body is None or body[0] != KIND_MESSAGE:
                return body
            self.messages.append(body)

    def message(self) -> bytes | None:
        """The next M body (those already seen first); S/F bodies here are an error."""
        if self.messages:
            return self.messages.popleft()
        body = self.body()
        if body is not None and body[0] != KIND_MESSAGE:
            raise ValueError(f"a reply nobody asked for: {show(body)}")
        return body


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
        line = {"summary": True, "passed": self.passed, "failed": self.failed, **extra}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


def parse_nod(body: bytes, nod: int) -> tuple[int, int, bytes] | None:
    """(src, addr, uuid) of an M NOD body, or None."""
    if len(body) != 1 + 2 + 1 + 2 + 16 or body[3] != nod:
        return None
    return int.from_bytes(body[1:3], "big"), int.from_bytes(body[4:6], "big"), body[6:]


def parse_nodes(payload: bytes) -> dict[int, bytes] | None:
    """count(1) (addr(2) uuid(16))* -> {addr: uuid}, or None when the layout is wrong."""
    if not payload or len(payload) != 1 + payload[0] * 18:
        return None
    entries = payload[1:]
    return {
        int.from_bytes(entries[i : i + 2], "big"): entries[i + 2 : i + 18] for i in range(0, len(entries), 18)
    }


class Run:
    def __init__(self, args: argparse.Namespace, line: Line, tables: Tables, report: Report) -> None:
        self.args = args
        self.line = line
        self.tables = tables
        self.report = report
        self.nodes = list(range(1, args.nodes + 1))
        self.uuids: dict[int, bytes] = {}

    def check(self, name: str, ok: bool, detail: str) -> bool:
        return self.report.check(name, ok, detail)

    def expect_nods(self, name: str) -> None:
        nod = self.tables.opcodes["NOD"]
        seen: dict[int, bytes] = {}
        for _ in self.nodes:
            body = self.line.message()
            parsed = parse_nod(body, nod) if body else None
            if parsed is None or parsed[0] != ROOT:
                self.check(name, False, f"a NOD from the root was due, got {show(body)}")
                return
            seen[parsed[1]] = parsed[2]
        self.check(name, seen == self.uuids, f"NODs for {sorted(seen)}")

    def command(self, name: str, body: bytes, want: str, result: bytes | None = b"") -> bytes | None:
        """Sends a command; checks its reply kind (and, for S, the result when given)."""
        self.line.send(body)
        reply = self.line.reply()
        if reply is None:
            self.check(name, False, f"no reply to {show(body)} within {self.args.timeout:g}s")
            return None
        if want == "S":
            ok = reply[0] == KIND_SUCCESS and (result is None or reply[1:] == result)
        else:
            ok = (
                reply[0] == KIND_FAILURE
                and len(reply) >= 2
                and reply[1] == len(reply) - 2
                and reply[2:].decode("utf-8", "replace").isprintable()
            )
        detail = f"{body[:5].decode('ascii', 'replace')} -> {show(reply)}"
        if reply[0] == KIND_FAILURE and len(reply) >= 2:
            detail += f" ({reply[2:].decode('utf-8', 'replace')!r})"
        self.check(name, ok, detail)
        return reply

    def commands(self) -> None:
        unknown = (self.args.nodes + 1).to_bytes(2, "big")
        self.command("send-known", b"SEND-\x00\x01hi", "S")
        self.command("sendi-known", b"SENDI\x00\x02\xff\xfe\xfa", "S")
        self.command("send-unknown", b"SEND-" + unknown + b"hi", "F")
        self.command("sendi-unknown", b"SENDI\x7f\xffhi", "F")
        self.command("bcast", b"BCAST\x00\x00to everyone", "S")
        self.command("bcast-bad-address", b"BCAST\x00\x01x", "F")
        self.command("clean", b"CLEAN", "S")
        self.command("state", b"STATE", "S", result=None)
        reply = self.command("ninfo", b"NINFO", "S", result=None)
        if reply is not None and reply[0] == KIND_SUCCESS:
            nodes = parse_nodes(reply[1:]) or {}
            ok = sorted(nodes) == self.nodes and len(set(nodes.values())) == len(nodes)
            ok = ok and all(len(uuid) == 16 for uuid in nodes.values())
            self.check("ninfo", ok, f"NINFO lists {sorted(nodes)}")
            self.uuids = nodes
        self.command("unknown-command", b"XYZZY", "F")
        self.command("gateway-command", b"ACT-C", "F")
        self.line.send(b"STATE")
        first = self.line.reply()
        stray = self.line.reply(self.args.settle)
        self.check(
            "one-reply-each",
            first is not None and first[0] == KIND_SUCCESS and stray is None,
            f"last STATE -> {show(first)}, then {show(stray)}",
        )

    def data_and_net(self) -> None:
        update, net = self.tables.opcodes["DATA_UPDATE"], self.tables.opcodes["NET"]
        pending = set(self.nodes)
        problems: list[str] = []
        net_ok: bool | None = None
        deadline = time.monotonic() + self.args.timeout
        while (pending or net_ok is None) and time.monotonic() < deadline:
            body = self.line.message()
            if body is None or len(body) < 4:
                continue
            src, opcode, payload = int.from_bytes(body[1:3], "big"), body[3], body[4:]
            if opcode == update:
                problem = self.data_problem(src, payload)
                if problem:
                    problems.append(problem)
                pending.discard(src)
            elif opcode == net and net_ok is None:
                net_ok = src == ROOT and parse_nodes(payload) == self.uuids
        detail = "; ".join(problems[:3]) or f"from every node; still waiting for {sorted(pending)}"
        self.check("data-update", not pending and not problems, detail)
        self.check("net", bool(net_ok), "NET lists every node" if net_ok else f"NET seen: {net_ok}")

    def data_problem(self, src: int, payload: bytes) -> str | None:
        if src not in self.nodes:
            return f"DATA_UPDATE from {src:#06x}, not a node"
        if not payload:
            return "empty DATA_UPDATE"
        count, at, ids = payload[0], 1, []
        for _ in range(count):
            if at >= len(payload) or payload[at] not in self.tables.data_types:
                return f"unknown data id in {show(payload)}"
            data_id = payload[at]
            length = self.tables.data_types[data_id]["length"]
            data = payload[at + 1 : at + 1 + length]
            if len(data) != length:
                return f"data id {data_id} cut short"
            value = self.tables.value(data_id, data)
            name = self.tables.data_types[data_id]["name"]
            if name == "battery" and not 0 <= value <= 100 or name == "humidity" and not 0 <= value <= 10000:
                return f"{name} = {value} is out of range"
            ids.append(data_id)
            at += 1 + length
        if at != len(payload):
            return f"{len(payload) - at} trailing bytes"
        if sorted(ids) != sorted(self.tables.data_types):
            return f"ids {ids}, the table has {sorted(self.tables.data_types)}"
        return None

    def restart(self) -> None:
        reply = self.command("rst-r", b"RST-R", "S")
        if reply is None:
            return
        self.line.messages.clear()  # those came before the S
        body = self.line.message()
        rst = bytes([KIND_MESSAGE]) + ROOT.to_bytes(2, "big") + bytes([self.tables.opcodes["RST"]])
        if not self.check("rst-then-nod", body == rst, f"after S: {show(body)}"):
            return
        self.expect_nods("rst-then-nod")

    def run(self) -> None:
        self.commands()
        self.data_and_net()
        self.restart()


class Parser(argparse.ArgumentParser):
    """Exits with status 2 on usage errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"uart_module_check: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(description="Interop gateway-side check of a uart root module over a serial port.")
    parser.add_argument("--port", required=True, help="the serial port (the simulator's --pty-link)")
    parser.add_argument("--nodes", type=int, default=3, help="nodes the module has, 0x0001..=N (3)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per step (default 5)")
    parser.add_argument("--settle", type=float, default=0.3, help="seconds watched for stray replies (0.3)")
    default_schema = Path(__file__).resolve().parent.parent / "schema" / "uart" / "protocol.json"
    parser.add_argument("--schema", type=Path, default=default_schema, help="the uart schema document")
    args = parser.parse_args(argv)
    if not args.timeout > 0 or args.settle < 0 or not 1 <= args.nodes <= 255:
        parser.error("--timeout must be positive, --settle not negative, --nodes 1 to 255")
    return args


def main(args: argparse.Namespace, out: TextIO) -> int:
    report = Report(out)
    try:
        tables = Tables(json.loads(args.schema.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as error:
        print(f"uart_module_check: cannot read {args.schema}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        line = Line(args.port, args.timeout)
    except (serial.SerialException, OSError) as error:
        report.check("open", False, f"{args.port}: {error}")
        report.summary(port=args.port)
        return EXIT_USAGE
    report.check("open", True, f"{args.port} -> {os.path.realpath(args.port)}")

    def watchdog(_signum: int, _frame: Any) -> None:
        raise TimeoutError("watchdog")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(int(args.timeout * 12 + 10))
    try:
        Run(args, line, tables, report).run()
    except TimeoutError:
        report.check("watchdog", False, "the run did not finish in time")
    except ValueError as error:
        report.check("protocol", False, str(error))
    finally:
        signal.alarm(0)
        line.serial.close()
    report.summary(port=args.port, dropped_frames=line.decoder.dropped)
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(parse_args(sys.argv[1:]), sys.stdout))
