"""Scheduler configuration: a frozen, keyword-only dataclass validated at construction.
Defaults are asynq's SchedulerOpts (wire spec 4 and 8)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

from pyasynq.log import LogLevel
from pyasynq.options import Options
from pyasynq.task import Task, TaskInfo

from .cron import load_location

__all__ = ["EnqueueErrorHandler", "PostEnqueueFunc", "PreEnqueueFunc", "SchedulerConfig"]

PreEnqueueFunc = Callable[[Task, Options], "Awaitable[None] | None"]
PostEnqueueFunc = Callable[["TaskInfo | None", "BaseException | None"], "Awaitable[None] | None"]
EnqueueErrorHandler = Callable[[Task, Options, BaseException], "Awaitable[None] | None"]


def _seconds(value: float | timedelta, what: str, minimum: float) -> float:
    s = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
        raise TypeError(f"{what} must be seconds (a number) or a timedelta, got {value!r}")
    if s < minimum:
        raise ValueError(f"{what} must be at least {minimum} seconds, got {s}")
    return float(s)


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """Everything a Scheduler can be told. Durations are seconds or timedeltas.

    * ``location``: time zone of cron specs without a ``CRON_TZ=`` prefix (IANA name or
      tzinfo; asynq's Location, default UTC).
    * ``pre_enqueue(task, options)``, ``post_enqueue(info, error)``,
      ``enqueue_error_handler(task, options, error)``: asynq's PreEnqueueFunc,
      PostEnqueueFunc and EnqueueErrorHandler; plain or ``async`` functions. Keep them
      quick: they run on the scheduler's event loop. ``options`` are the options given to
      ``register``. With several schedulers running the same entry, ``pre_enqueue`` runs on
      each, the others only on the one that enqueued the tick (or failed to).
    * ``heartbeat_interval``: how often the entries are written for ``asynq cron ls``
      (asynq's HeartbeatInterval, 10 s; they live twice as long).
    * ``tick_marker_ttl``: how long the marker that a tick was enqueued is kept (pyasynq;
      10 min). A scheduler that reaches a tick later than this skips it, since it can no
      longer tell whether another scheduler enqueued it.
    * ``clock_sync_interval``: how often the offset to Redis's clock (``TIME``) is measured
      again (pyasynq; 10 s). Ticks fire by Redis's time, so a scheduler on a host whose
      clock is off fires on time. None: the host's clock, as Go asynq does.
    """

    location: str | tzinfo = "UTC"
    pre_enqueue: PreEnqueueFunc | None = None
    post_enqueue: PostEnqueueFunc | None = None
    enqueue_error_handler: EnqueueErrorHandler | None = None
    heartbeat_interval: float | timedelta = 10.0
    logger: Any = None  # stdlib Logger or any object with asynq's five levels
    log_level: LogLevel | str = LogLevel.INFO
    tick_marker_ttl: float | timedelta = 600.0
    clock_sync_interval: float | timedelta | None = 10.0

    def __post_init__(self) -> None:
        self.tz()  # validates the name
        for name in ("pre_enqueue", "post_enqueue", "enqueue_error_handler"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None, got {value!r}")
        LogLevel.parse(self.log_level)
        _seconds(self.heartbeat_interval, "heartbeat_interval", 0.001)
        _seconds(self.tick_marker_ttl, "tick_marker_ttl", 1.0)
        if self.clock_sync_interval is not None:
            _seconds(self.clock_sync_interval, "clock_sync_interval", 0.001)

    def tz(self) -> tzinfo:
        """``location`` as a tzinfo."""
        if isinstance(self.location, tzinfo):
            return self.location
        if not isinstance(self.location, str):
            raise TypeError(f"location must be a time zone name or a tzinfo, got {self.location!r}")
        try:
            return load_location(self.location)
        except ValueError:
            raise ValueError(
                f"location {self.location!r} is not a known time zone; use an IANA name such "
                "as 'Europe/Paris', 'UTC' or 'Local'"
            ) from None

    def seconds(self, name: str) -> float:
        """A duration field as float seconds."""
        value = getattr(self, name)
        return float(value.total_seconds() if isinstance(value, timedelta) else value)

    def entries_ttl(self) -> int:
        """TTL of the entries record: twice the heartbeat, whole seconds (at least 1, as
        go-redis sends it)."""
        return max(1, int(2 * self.seconds("heartbeat_interval")))
