"""Limits on how many tasks of one type run across the whole fleet, and how often they start.

A :class:`Limit` is configured per task type on the server (``ServerConfig.limits``) or on a
handler (``mux.handle(pattern, fn, limit=...)``) and enforced in Redis, so it holds across
every pyasynq worker process serving the queue. See docs/limits.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Limit"]


@dataclass(frozen=True, kw_only=True)
class Limit:
    """A fleet-wide limit on one task type, kept per queue.

    ``concurrency``: at most this many tasks of the type run at once in the queue, across
    every pyasynq worker. ``rate`` and ``per``: at most ``rate`` of them start in any window
    of ``per`` seconds. Either or both may be set. A task that cannot start waits in Redis
    (in the queue's scheduled set), without holding a worker slot, and starts as soon as
    capacity frees; a crashed worker's capacity frees when its task's lease expires.

    Args:
        concurrency: the most tasks of the type running at once (None: no cap).
        rate: the most starts in any window of ``per`` seconds (None: no rate limit).
        per: the window of ``rate``, in seconds or as a timedelta (default 1 second).

    Raises:
        ValueError: when neither limit is set, or a value is not positive.
    """

    concurrency: int | None = None
    rate: int | None = None
    per: float | timedelta = 1.0

    def __post_init__(self) -> None:
        for name in ("concurrency", "rate"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Limit {name} must be an int or None, got {value!r}")
            if value < 1:
                raise ValueError(f"Limit {name} must be at least 1, got {value}")
        if self.concurrency is None and self.rate is None:
            raise ValueError("a Limit needs concurrency=N, rate=N (per=seconds), or both")
        per = self.per.total_seconds() if isinstance(self.per, timedelta) else self.per
        if isinstance(per, bool) or not isinstance(per, int | float) or not math.isfinite(per):
            raise TypeError(f"Limit per must be seconds or a timedelta, got {self.per!r}")
        if per <= 0:
            raise ValueError(f"Limit per must be positive seconds, got {per}")

    @property
    def window(self) -> float:
        """``per`` as float seconds."""
        return self.per.total_seconds() if isinstance(self.per, timedelta) else float(self.per)
