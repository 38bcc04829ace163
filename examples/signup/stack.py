"""Runs the whole example on one machine: the SMTP sink (in this process), the API
(uvicorn) and N worker processes, all on loopback, with their logs in one directory.
The demo and the tests drive it; ``stop()`` ends everything it started.

    with Stack(run_dir, redis_url=..., database_url=..., settings={...}) as stack:
        stack.start_sink(refuse_for=2.0)
        stack.start_api()
        stack.start_workers(2)
        ...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from pyasynq.embedded import free_port

from .smtp_sink import MailStore, SmtpSink

ROOT = Path(__file__).resolve().parents[2]  # the checkout that holds examples/


class StackError(RuntimeError):
    """A part of the example did not start; the message says which and shows its log."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


class Stack:
    def __init__(
        self,
        run_dir: Path,
        *,
        redis_url: str,
        database_url: str,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.database_url = database_url
        self.settings = dict(settings or {})
        self.sink: SmtpSink | None = None
        self._store: MailStore | None = None
        self.smtp_port = 0
        self.api: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    # -- the parts ------------------------------------------------------------------

    @property
    def mail_store(self) -> MailStore:
        """The sink's messages (readable after stop() too)."""
        assert self._store is not None, "start_sink() first"
        return self._store

    def start_sink(self, *, refuse_for: float = 0.0, delay: float = 0.0) -> SmtpSink:
        self.smtp_port = free_port()
        self.sink = SmtpSink(
            self.run_dir / "mail.sqlite", port=self.smtp_port, refuse_for=refuse_for, delay=delay
        ).start()
        self._store = self.sink.store
        return self.sink

    def env(self) -> dict[str, str]:
        """The environment of the API and the workers: one deployment's settings."""
        env = dict(os.environ)
        env.update(
            PYASYNQ_REDIS_URL=self.redis_url,
            REDIS_URL=self.redis_url,
            DATABASE_URL=self.database_url,
            SIGNUP_SMTP_HOST="127.0.0.1",
            SIGNUP_SMTP_PORT=str(self.smtp_port),
            SIGNUP_PUBLIC_URL=self.api_url or "http://127.0.0.1:8000",
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.settings)
        return env

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.run_dir / log_name).open("ab")
        self._logs.append(log)
        # A session of its own: Ctrl-C in the terminal reaches only the demo, which then
        # stops the parts in order.
        return subprocess.Popen(
            argv, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def start_api(self, *, wait: bool = True) -> str:
        """Start the API on a free port; its URL. ``wait=False``: call wait_api() later."""
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "uvicorn", "examples.signup.api:app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
        self.api = self._spawn(argv, "api.log")
        if wait:
            self.wait_api()
        return self.api_url

    def wait_api(self, *, timeout: float = 30.0) -> None:
        assert self.api is not None, "start_api() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise StackError(f"the API exited ({self.api.returncode}):\n" + self._api_log())
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise StackError(f"the API did not answer in {timeout}s:\n" + self._api_log())

    def _api_log(self) -> str:
        return _tail(self.run_dir / "api.log")

    def worker_log(self, index: int) -> Path:
        return self.run_dir / f"worker-{index + 1}.log"

    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        proc = self._spawn(
            [sys.executable, "-m", "examples.signup.worker"], self.worker_log(index).name
        )
        self.workers.append(proc)
        return proc

    def start_workers(self, n: int, *, timeout: float = 30.0) -> list[int]:
        """Start ``n`` worker processes and wait until each is processing; their pids."""
        first = len(self.workers)
        for _ in range(n):
            self.start_worker()
        deadline = time.monotonic() + timeout
        for i in range(first, first + n):
            proc, log = self.workers[i], self.worker_log(i)
            while 'msg="Starting processing"' not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    raise StackError(f"worker {i + 1} exited ({proc.returncode}):\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise StackError(f"worker {i + 1} did not start in {timeout}s:\n{_tail(log)}")
                time.sleep(0.05)
        return [p.pid for p in self.workers[first:]]

    def kill_worker(self, index: int) -> int:
        """SIGKILL a worker (no graceful shutdown: its tasks stay leased); its pid."""
        proc = self.workers[index]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return proc.pid

    # -- stopping -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the workers (graceful, then kill), the API and the sink. Idempotent.
        A second Ctrl-C meanwhile cannot cut it short and leave processes behind."""
        if threading.current_thread() is threading.main_thread():
            saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                self._stop()
            finally:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)
        else:
            self._stop()

    def _stop(self) -> None:
        procs = [*self.workers, *([self.api] if self.api is not None else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
