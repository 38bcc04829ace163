"""A tiny blocking RESP2 client (stdlib only) for the orchestrator: INFO, FLUSHALL,
BGREWRITEAOF. The orchestrator runs before any peer venv exists, so it needs no redis-py."""

from __future__ import annotations

import socket
from typing import Any


class RespError(Exception):
    pass


class Resp:
    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def call(self, *args: str | bytes | int) -> Any:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self._sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RespError(f"unexpected reply {line!r}")

    def info(self, section: str) -> dict[str, str]:
        text = self.call("INFO", section)
        out: dict[str, str] = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and ":" in line:
                k, _, v = line.partition(":")
                out[k] = v
        return out


def command_calls(info: dict[str, str]) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls}. Commands run inside Lua scripts count
    too (Redis 7 records them), as well as the EVALSHA/FCALL that ran them."""
    calls: dict[str, int] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            calls[key[len("cmdstat_") :]] = int(fields["calls"])
    return calls
