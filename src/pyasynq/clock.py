"""Where pyasynq gets "now". Every time-dependent decision goes through a Clock so
tests can move time instead of sleeping.

A Server, Scheduler or Client that is given no clock keeps Redis's time
(:class:`RedisClock`): a lease's expiry, a scheduled task's score and a cron tick are
then compared with the same clock on every host, however far a host's own clock is off."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "RealClock", "RedisClock", "estimate_offset"]

_NS = 1_000_000_000


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


def estimate_offset(samples: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """The offset between a local clock and Redis's, from ``TIME`` samples.

    Args:
        samples: ``(sent, redis, received)`` in nanoseconds: the local clock just before
            ``TIME`` was sent, Redis's answer, the local clock when it arrived.

    Returns:
        ``(offset, rtt)`` in nanoseconds, from the sample with the shortest round trip (the
        one least delayed one way more than the other): Redis's time is taken to be the
        middle of that round trip, so local time + offset = Redis's time.

    Raises:
        ValueError: no samples.
    """
    if not samples:
        raise ValueError("estimate_offset needs at least one (sent, redis, received) sample")
    sent, redis, received = min(samples, key=lambda s: s[2] - s[0])
    return redis - (sent + received) // 2, received - sent


class RedisClock:
    """Redis's time, kept locally: the host's monotonic clock plus an offset measured with
    Redis ``TIME`` (:meth:`update`), so a host whose wall clock is off (or is stepped)
    still writes and compares times as Redis sees them. Until the first update it reads
    the host's wall clock. Reading it costs one addition; the owner (Server, Scheduler,
    Client) refreshes the offset every ``clock_sync_interval``."""

    def __init__(self) -> None:
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._offset = self._offset_ns / _NS
        self.skew = 0.0  # seconds Redis's clock is ahead of this host's wall clock
        self.rtt = 0.0  # seconds: the round trip of the sample last used
        self.synced_at: float | None = None  # time.monotonic() of the last update
        self.moved = 0.0  # seconds the last update moved this clock
        self.failing = False  # the last attempt to read Redis's clock failed
        self._checked: float | None = None  # time.monotonic() of the last attempt

    def now(self) -> float:
        """Redis's time in Unix seconds."""
        return time.monotonic() + self._offset

    def now_ns(self) -> int:
        """Redis's time in Unix nanoseconds."""
        return time.monotonic_ns() + self._offset_ns

    def update(self, samples: Sequence[tuple[int, int, int]]) -> float:
        """Take a new offset from ``TIME`` samples (see :func:`estimate_offset`).

        Args:
            samples: ``(sent, redis, received)`` nanoseconds, local times from
                ``time.monotonic_ns()``.

        Returns:
            How far this clock moved, in seconds (0.0 on the first update).
        """
        offset, rtt = estimate_offset(samples)
        moved = 0.0 if self.synced_at is None else (offset - self._offset_ns) / _NS
        self.moved = moved
        self._offset_ns = offset
        self._offset = offset / _NS
        self.skew = (offset - (time.time_ns() - time.monotonic_ns())) / _NS
        self.rtt = rtt / _NS
        self.synced_at = self._checked = time.monotonic()
        return moved

    def checked(self) -> None:
        """Note an attempt to measure that failed: :meth:`due` waits an interval again."""
        self._checked = time.monotonic()

    def due(self, interval: float) -> bool:
        """Whether the last measurement (or attempt) is ``interval`` seconds old, or none
        was made."""
        return self._checked is None or time.monotonic() - self._checked >= interval
