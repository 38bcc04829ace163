"""Helpers for the server tests: fast timings, a polling wait, a collecting logger and a
registry of started servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pyasynq.mux import Handler, ServeMux
from pyasynq.server import Server

# asynq's timings shrunk ~25x: leases expire within a second, shutdown waits one.
FAST: dict[str, Any] = {
    "concurrency": 4,
    "heartbeat_interval": 0.2,
    "lease_duration": 1,
    "task_check_interval": 0.05,
    "delayed_task_check_interval": 0.1,
    "recoverer_interval": 0.5,
    "shutdown_timeout": 1,
    "janitor_interval": 0.2,
    "syncer_interval": 0.2,
    "subscriber_retry_interval": 0.2,
}


def wait_for(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class ListLogger:
    """A user logger with asynq's five methods that keeps every message."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _add(self, level: str, msg: str) -> None:
        with self._lock:
            self.lines.append((level, msg))

    def debug(self, msg: str) -> None:
        self._add("debug", msg)

    def info(self, msg: str) -> None:
        self._add("info", msg)

    def warn(self, msg: str) -> None:
        self._add("warn", msg)

    def error(self, msg: str) -> None:
        self._add("error", msg)

    def fatal(self, msg: str) -> None:
        self._add("fatal", msg)

    def find(self, text: str, level: str | None = None) -> list[str]:
        with self._lock:
            return [m for lv, m in self.lines if text in m and level in (None, lv)]


class Servers:
    """Starts servers with the fast timings and shuts every one down at the end."""

    def __init__(self, redis_url: str, log: ListLogger) -> None:
        self.redis_url = redis_url
        self.log = log
        self.started: list[Server] = []

    def make(self, **options: Any) -> Server:
        cfg = {**FAST, "logger": self.log, "log_level": "debug", **options}
        srv = Server(self.redis_url, **cfg)
        self.started.append(srv)
        return srv

    def start(self, handler: ServeMux | Handler, **options: Any) -> Server:
        srv = self.make(**options)
        srv.start(handler)
        return srv

    def close(self) -> None:
        for srv in self.started:
            srv.shutdown()


class Gate:
    """A handler-side barrier: ``entered`` is set when a handler arrives, ``release``
    lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.left = threading.Event()

    def wait_entered(self, timeout: float = 5.0) -> None:
        assert self.entered.wait(timeout), "the handler did not start"
