"""Where pyasynq gets "now". Every time-dependent decision goes through a Clock so
tests can move time instead of sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "RealClock"]


@runtime_checkable
class Clock(Protocol):
    """Where a client, server or scheduler reads the time (``clock=`` argument): any
    object with ``now()`` and ``now_ns()``."""

    def now(self) -> float:
        """Unix time in seconds."""
        ...

    def now_ns(self) -> int:
        """Unix time in nanoseconds."""
        ...


class RealClock:
    """The wall clock."""

    def now(self) -> float:
        """Unix time in seconds (``time.time()``)."""
        return time.time()

    def now_ns(self) -> int:
        """Unix time in nanoseconds (``time.time_ns()``)."""
        return time.time_ns()


class FakeClock:
    """A clock that only moves when told to; safe to share between threads."""

    def __init__(self, start: float | None = None) -> None:
        self._ns = time.time_ns() if start is None else int(start * 1_000_000_000)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The clock's time, Unix seconds."""
        with self._lock:
            return self._ns / 1_000_000_000

    def now_ns(self) -> int:
        """The clock's time, Unix nanoseconds."""
        with self._lock:
            return self._ns

    def set(self, unix_seconds: float) -> None:
        """Jump to ``unix_seconds``."""
        with self._lock:
            self._ns = int(unix_seconds * 1_000_000_000)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        with self._lock:
            self._ns += int(seconds * 1_000_000_000)
