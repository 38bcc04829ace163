"""Helpers for the interop tests: the Go programs (built once per session) and pyasynq
workers as real processes, each recording its handler events as JSON lines."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

HERE = Path(__file__).parent
GO_MODULE = HERE / "go"
PROGRAMS = ("producer", "server", "scheduler", "inspector")
T = TypeVar("T")

# asynq's own CLI (module github.com/hibiken/asynq/tools) is not served by the Go module
# proxy (404 for every version), so go/cmd/inspector reads and acts through the same
# asynq.Inspector the CLI is built on.


def no_go(msg: str) -> NoReturn:
    """Skip (locally) or fail (under CI=true) when Go cannot be used."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"interop tests cannot run under CI=true: {msg}", pytrace=False)
    pytest.skip(f"interop tests skipped: {msg}")


def find_go() -> str | None:
    """$PYASYNQ_GO, else `go` on PATH, else Go's default install directory."""
    for candidate in (os.environ.get("PYASYNQ_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _source_hash(go: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    h.update(version.stdout.encode())
    files = sorted(p for p in GO_MODULE.rglob("*") if p.suffix == ".go" or p.name in
                   ("go.mod", "go.sum"))  # fmt: skip
    for p in files:
        h.update(str(p.relative_to(GO_MODULE)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_programs() -> Path:
    """The directory holding the built Go programs, building them when the sources (or
    the Go version) changed since the last build. The cache lives under
    $PYASYNQ_INTEROP_CACHE, else ~/.cache/pyasynq-interop."""
    go = find_go()
    if go is None:
        no_go("no Go toolchain (no go in $PYASYNQ_GO, PATH, /usr/local/go/bin); install Go 1.24+")
    root = Path(os.environ.get("PYASYNQ_INTEROP_CACHE")
                or Path.home() / ".cache" / "pyasynq-interop")  # fmt: skip
    out = root / _source_hash(go)
    if all((out / p).is_file() for p in PROGRAMS):
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".build-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    res = subprocess.run([go, "build", "-o", f"{tmp}/", "./cmd/..."], cwd=GO_MODULE,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"go build of tests/interop/go failed (needs the Go module proxy or a "
                    f"filled module cache):\n{res.stderr}", pytrace=False)  # fmt: skip
    try:
        tmp.rename(out)
    except OSError:  # another session built the same sources first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def wait_for(fn: Callable[[], T], what: str, timeout: float = 20.0, every: float = 0.05) -> T:
    """Poll ``fn`` until it returns something truthy, or fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            out.append(json.loads(line))
    return out


class Proc:
    """A started Go program or pyasynq worker; ``record`` has its handler events."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], record: Path, log: Path):
        self.name, self.popen, self.record, self.log = name, popen, record, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [e for e in read_events(self.record) if (event is None or e.get("event") == event)
                and all(e.get(k) == v for k, v in match.items())]  # fmt: skip

    def wait_event(self, event: str, n: int = 1, timeout: float = 20, **match: Any) -> list[Any]:
        """Every event named ``event`` whose fields match, once there are ``n``; on a
        timeout the error carries the end of the process' log."""
        what = f"{n} {event!r} event(s) {match or ''} from {self.name} (pid {self.pid})"
        try:
            found = wait_for(lambda: len(self.events(event, **match)) >= n and
                             self.events(event, **match), what, timeout)  # fmt: skip
        except AssertionError as exc:
            state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise AssertionError(f"{exc}; it is {state}; its log ends:\n{tail}") from None
        return found

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (after SIGCONT, should it be stopped) and wait; SIGKILL if it hangs."""
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class Fleet:
    """Starts Go programs and pyasynq workers for one test and stops them all after it."""

    def __init__(self, bin_dir: Path, redis_url: str, tmp: Path) -> None:
        self.bin, self.url, self.tmp = bin_dir, redis_url, tmp
        self.procs: list[Proc] = []
        self._n = 0

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def _files(self, name: str) -> tuple[Path, Path]:
        self._n += 1
        return self.tmp / f"{name}-{self._n}.jsonl", self.tmp / f"{name}-{self._n}.log"

    def go(self, program: str, *args: str, ok: bool = True) -> Any:
        """Run a Go program to its end; its JSON output (a list when several lines)."""
        res = subprocess.run([str(self.bin / program), "-redis-url", self.url, *args],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        if ok and res.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} exited {res.returncode}: "
                                 f"{res.stdout}{res.stderr}")  # fmt: skip
        lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        return lines[0] if len(lines) == 1 else lines

    def inspect(self, *args: str, ok: bool = True) -> Any:
        """What Go's asynq.Inspector reads (or does): go/cmd/inspector's JSON."""
        return self.go("inspector", *args, ok=ok)

    def go_server(self, *flags: str, queues: Iterable[str] = ("default",),
                  handle: dict[str, str] | None = None) -> Proc:  # fmt: skip
        record, log = self._files("go-server")
        argv = [str(self.bin / "server"), "-redis-url", self.url, "-record", str(record)]
        argv += [f"-queue={q}" for q in queues]
        argv += flags
        argv += [f"-handle={t}={b}" for t, b in (handle or {}).items()]
        proc = self._start("go-server", argv, record, log, {})
        proc.wait_event("ready", timeout=30)
        return proc

    def go_scheduler(self, *entries: str) -> tuple[Proc, list[str]]:
        """A Go Scheduler with ``SPEC|TYPE|PAYLOAD|QUEUE`` entries, and their entry ids."""
        record, log = self._files("go-scheduler")
        argv = [str(self.bin / "scheduler"), "-redis-url", self.url]
        argv += [f"-entry={e}" for e in entries]
        # The scheduler prints its entries and then "ready" on stdout: that is its record.
        proc = self._start("go-scheduler", argv, record, log, {}, stdout_is_record=True)
        proc.wait_event("ready", timeout=30)
        ids = [e["entry_id"] for e in read_events(record) if "entry_id" in e]
        return proc, ids

    def py_worker(self, queues: Iterable[str] = ("default",), *, handle: dict[str, str] |
                  None = None, config: dict[str, Any] | None = None,
                  aggregate_type: str = "", wait: bool = True,
                  url: str | None = None) -> Proc:  # fmt: skip
        record, log = self._files("py-worker")
        env = {"INTEROP_HANDLE": json.dumps(handle or {}), "INTEROP_RECORD": str(record),
               "INTEROP_CONFIG": json.dumps(config or {}),
               "INTEROP_AGGREGATE_TYPE": aggregate_type}  # fmt: skip
        argv = [sys.executable, "-m", "pyasynq", "--redis-url", url or self.url, "worker",
                "py_app:handler", "--config", "py_app:config", "--log-level", "info"]  # fmt: skip
        for q in queues:
            argv += ["--queue", q]
        proc = self._start("py-worker", argv, record, log, env)
        if wait:
            wait_for(lambda: self._registered(proc.pid), f"pyasynq worker {proc.pid} to start")
        return proc

    def _registered(self, pid: int) -> bool:
        import pyasynq

        with pyasynq.Inspector(self.url) as insp:
            return any(s.pid == pid for s in insp.servers())

    def _start(self, name: str, argv: list[str], record: Path, log: Path, env: dict[str, str], *,
               stdout_is_record: bool = False) -> Proc:  # fmt: skip
        logf = log.open("wb")
        pythonpath = os.pathsep.join(filter(None, (str(HERE), os.environ.get("PYTHONPATH"))))
        out = record.open("wb") if stdout_is_record else logf
        popen = subprocess.Popen(argv, cwd=HERE, stdout=out, stderr=logf,
                                 env={**os.environ, "PYTHONPATH": pythonpath, **env})  # fmt: skip
        proc = Proc(name, popen, record, log)
        self.procs.append(proc)
        return proc


@contextlib.contextmanager
def fleet(bin_dir: Path, redis_url: str, tmp: Path) -> Iterator[Fleet]:
    f = Fleet(bin_dir, redis_url, tmp)
    try:
        yield f
    finally:
        f.close()


class HoldingProxy:
    """A TCP proxy to Redis that, once a client sends bytes containing ``trigger``, holds
    everything its clients send (buffered, in order) until :meth:`release`. A worker
    behind it is stalled mid-write: what it sent reaches Redis only when released, even
    if the worker has given up on the connection meanwhile."""

    def __init__(self, upstream_url: str, trigger: bytes) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(upstream_url)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 6379)
        self.trigger = trigger
        self.held: list[tuple[socket.socket, bytes]] = []
        self.holding = False
        self.released = False
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = upstream_url.replace(f":{self.upstream[1]}", f":{self.port}", 1)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def held_bytes(self) -> bytes:
        with self._lock:
            return b"".join(data for _, data in self.held)

    def release(self) -> None:
        with self._lock:
            for up, data in self.held:
                with contextlib.suppress(OSError):
                    up.sendall(data)
            self.held.clear()
            self.released = True

    def close(self) -> None:
        self.release()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._to_redis, args=(client, up), daemon=True).start()
            threading.Thread(target=self._to_client, args=(up, client), daemon=True).start()

    def _to_redis(self, client: socket.socket, up: socket.socket) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if data and not self.holding and self.trigger in data:
                    self.holding = True
                if data and self.holding and not self.released:
                    self.held.append((up, data))
                    continue
            if not data:
                break
            with contextlib.suppress(OSError):
                up.sendall(data)
        # The client is gone; what it sent is delivered (on release) before Redis sees EOF.
        wait_for(lambda: self.released or not self.holding, "the proxy's release",
                 timeout=600, every=0.1)  # fmt: skip
        with contextlib.suppress(OSError):
            up.shutdown(socket.SHUT_WR)

    def _to_client(self, up: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = up.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with contextlib.suppress(OSError):
                client.sendall(data)
        for s in (client, up):
            s.close()
