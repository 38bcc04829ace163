"""Proving that Lua scripts keep to one Redis Cluster slot.

Redis Cluster rejects a script whose *declared* keys span slots (CROSSSLOT), but Redis
7.0 on one node does not stop a script from touching *undeclared* keys of other slots;
on a real cluster those keys may live on another node. So :func:`assert_single_slot`
watches the node with MONITOR while the code under test runs, asks the server for the
keys of every command a script issued (COMMAND GETKEYS) and checks that all keys of one
invocation hash to one slot (CLUSTER KEYSLOT).

:func:`cluster_node` starts a one-node cluster (all 16384 slots) for this.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from pyasynq._rdb import scripts
from pyasynq.embedded import EmbeddedRedis, free_port

SCRIPT_COMMANDS = {b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"}


@contextmanager
def cluster_node(data_dir: Path, timeout: float = 10.0) -> Iterator[str]:
    """A redis-server in cluster mode owning every slot; yields its URL."""
    for attempt in range(3):
        # The bus port defaults to port + 10000, which overflows for ports above 55535.
        server = EmbeddedRedis(
            data_dir,
            persistent=False,
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(data_dir / f"nodes-{attempt}.conf"),
                "--cluster-port", str(free_port()),
            ],
        )  # fmt: skip
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:  # a port taken between choosing and binding, three times
                raise
    try:
        r = redis.Redis.from_url(server.url)
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + timeout
        while b"cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        r.close()
        yield server.url
    finally:
        server.stop()


# ------------------------------------------------------------------------ MONITOR lines

_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a", ord("b"): b"\b"}


def parse_monitor_line(line: bytes) -> tuple[str, list[bytes]]:
    """``+<time> [<db> <source>] "ARG" "ARG" ...`` -> (source, args). Source is ``lua`` for
    commands a script issued."""
    if line.startswith(b"+"):
        line = line[1:]
    open_, close = line.index(b"["), line.index(b"]")
    source = line[open_ + 1 : close].split(b" ", 1)[1].decode()
    args: list[bytes] = []
    i, n = close + 1, len(line)
    while i < n:
        if line[i] == ord(" "):
            i += 1
            continue
        if line[i] != ord('"'):
            raise ValueError(f"cannot parse MONITOR line {line!r}")
        i += 1
        out = bytearray()
        while line[i] != ord('"'):
            c = line[i]
            if c == ord("\\"):
                nxt = line[i + 1]
                if nxt == ord("x"):
                    out.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                out += _ESCAPES.get(nxt, bytes([nxt]))
                i += 2
                continue
            out.append(c)
            i += 1
        args.append(bytes(out))
        i += 1
    return source, args


class Monitor:
    """A raw MONITOR connection (redis-py's monitor mangles binary arguments)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.sock.sendall(b"MONITOR\r\n")
        if self.readline() != b"+OK":
            raise RuntimeError("MONITOR was refused")

    def readline(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("MONITOR connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------ invocations


@dataclass
class Invocation:
    """One command sent by a client and, for a script, the commands the script issued."""

    command: list[bytes]
    issued: list[list[bytes]] = field(default_factory=list)
    keys: set[bytes] = field(default_factory=set)
    slots: set[int] = field(default_factory=set)

    @property
    def is_script(self) -> bool:
        return self.command[0].upper() in SCRIPT_COMMANDS

    @property
    def script(self) -> str | None:
        """The pyasynq script name, for EVALSHA of a script shipped in ``lua/``."""
        if self.command[0].upper() != b"EVALSHA":
            return None
        by_sha = {scripts.sha(name): name for name in scripts.names()}
        return by_sha.get(self.command[1].decode().lower())

    def __repr__(self) -> str:
        name = self.script or self.command[0].decode()
        return f"<{name} keys={sorted(self.keys)} slots={sorted(self.slots)}>"


def command_keys(r: redis.Redis, args: list[bytes]) -> list[bytes]:
    try:
        found = r.command_getkeys(*args)
    except redis.ResponseError:  # a command without key arguments
        return []
    return list(found)


def capture(url: str, run: Callable[[str], object]) -> list[Invocation]:
    """Every command the node executed while ``run(url)`` ran, grouped by invocation,
    with the keys each touched and their slots."""
    r = redis.Redis.from_url(url)
    kw = r.connection_pool.connection_kwargs
    mon = Monitor(kw["host"], kw["port"])
    marker = f"slots-marker-{uuid.uuid4()}".encode()
    try:
        run(url)
        r.echo(marker)
        invocations: list[Invocation] = []
        while True:
            source, args = parse_monitor_line(mon.readline())
            if [args[0].upper(), *args[1:]] == [b"ECHO", marker]:
                break
            if source == "lua":
                if not invocations or not invocations[-1].is_script:
                    raise AssertionError(f"script command {args!r} outside a script")
                invocations[-1].issued.append(args)
            else:
                invocations.append(Invocation(args))
        for inv in invocations:
            for cmd in [inv.command, *inv.issued]:
                inv.keys.update(command_keys(r, cmd))
            inv.slots = {int(r.execute_command("CLUSTER", "KEYSLOT", k)) for k in inv.keys}
        return invocations
    finally:
        mon.close()
        r.close()


def assert_single_slot(url: str, run: Callable[[str], object]) -> list[Invocation]:
    """Run ``run(url)`` against a cluster node and fail unless every invocation (a script
    with all the keys it touched, or a plain command) stays in one slot. Returns the
    invocations so a test can check which slot and which scripts ran."""
    invocations = capture(url, run)
    bad = [inv for inv in invocations if len(inv.slots) > 1]
    assert not bad, "commands touching more than one slot:\n" + "\n".join(
        f"{inv!r} issued {inv.issued!r}" for inv in bad
    )
    return invocations


def keyslot(url: str, key: str) -> int:
    r = redis.Redis.from_url(url)
    try:
        return int(r.execute_command("CLUSTER", "KEYSLOT", key))
    finally:
        r.close()
