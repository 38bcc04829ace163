"""Enqueue options: validation, merging (task defaults < enqueue call) and resolution into
the concrete values written to Redis.

Durations are seconds (``int``/``float``) or :class:`~datetime.timedelta`; points in time
are Unix seconds or timezone-aware :class:`~datetime.datetime`. Go asynq truncates
timeouts, retention and unique TTLs to whole seconds; so do we, and a value that would
truncate to nothing is refused instead of silently meaning something else.
"""

from __future__ import annotations

import math
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import TypeAlias

__all__ = ["DEFAULT_MAX_RETRY", "DEFAULT_QUEUE", "DEFAULT_TIMEOUT", "Duration", "Options", "When"]

Duration: TypeAlias = float | timedelta
When: TypeAlias = float | datetime

DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRY = 25
DEFAULT_TIMEOUT = 1800  # seconds; used only when neither timeout nor deadline is given
MAX_INT32 = 2**31 - 1


def _seconds(value: Duration, what: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be seconds (int or float) or a timedelta, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


def _unix(value: When, what: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got a naive "
                "datetime"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be Unix seconds or an aware datetime, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite Unix time, got {value!r}")
    return float(value)


def check_name(value: object, what: str, *, queue: bool = False) -> str:
    """A queue, type, task id or group name: non-blank text without control characters.
    Unicode is fine (Go asynq accepts it). Queue names may not hold braces, which would
    move their keys out of the queue's Redis Cluster hash slot."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            raise ValueError(f"{what} {value!r} holds a control character ({ch!r}); remove it")
    if queue and ("{" in value or "}" in value):
        raise ValueError(
            f"queue name {value!r} holds a brace; braces would break the Redis Cluster hash "
            "tag asynq:{queue}: choose a name without '{' or '}'"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Enqueue options as given; ``None`` means "not given here"."""

    queue: str | None = None
    max_retry: int | None = None
    task_id: str | None = None
    timeout: Duration | None = None
    deadline: When | None = None
    unique: Duration | None = None
    process_at: When | None = None
    process_in: Duration | None = None
    retention: Duration | None = None
    group: str | None = None
    headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.queue is not None:
            check_name(self.queue, "queue", queue=True)
        if self.task_id is not None:
            check_name(self.task_id, "task_id")
        if self.group is not None:
            check_name(self.group, "group")
        if self.max_retry is not None and (
            isinstance(self.max_retry, bool) or not isinstance(self.max_retry, int)
        ):
            raise TypeError(f"max_retry must be an int, got {self.max_retry!r}")
        if self.max_retry is not None and self.max_retry > MAX_INT32:
            # The wire field is an int32; protobuf would fail later with a vaguer error.
            raise ValueError(f"max_retry must be at most {MAX_INT32}, got {self.max_retry}")
        if self.process_at is not None and self.process_in is not None:
            raise ValueError("give process_at or process_in, not both")
        if self.timeout is not None:
            t = _seconds(self.timeout, "timeout")
            if t < 0 or 0 < t < 1:
                raise ValueError(
                    f"timeout must be 0 (none) or at least 1 second, got {t}s: asynq stores "
                    "whole seconds"
                )
        if self.deadline is not None:
            _unix(self.deadline, "deadline")
        if self.unique is not None and _seconds(self.unique, "unique") < 1:
            raise ValueError("unique TTL must be at least 1 second")
        if self.process_at is not None:
            _unix(self.process_at, "process_at")
        if self.process_in is not None:
            _seconds(self.process_in, "process_in")
        if self.retention is not None and _seconds(self.retention, "retention") < 0:
            raise ValueError("retention must not be negative")
        if self.headers is not None:
            if not isinstance(self.headers, Mapping):
                raise TypeError("headers must be a mapping of str to str")
            for k, v in self.headers.items():
                if not isinstance(k, str) or not isinstance(v, str):
                    raise TypeError(f"headers must map str to str, got {k!r}: {v!r}")

    def merged(self, override: Options) -> Options:
        """These options with every field ``override`` gives replacing ours; headers are
        merged key by key, the override winning."""
        changes: dict[str, object] = {}
        for f in fields(override):
            value = getattr(override, f.name)
            if value is not None:
                changes[f.name] = value
        if "process_at" in changes or "process_in" in changes:
            # The later of ProcessAt/ProcessIn wins in asynq; the call is later.
            changes.setdefault("process_at", None)
            changes.setdefault("process_in", None)
        if self.headers and override.headers:
            changes["headers"] = {**self.headers, **override.headers}
        return replace(self, **changes)  # type: ignore[arg-type]

    def resolve(self, now: float) -> Resolved:
        """Concrete values for a task enqueued at Unix time ``now``."""
        timeout = int(_seconds(self.timeout, "timeout")) if self.timeout is not None else 0
        deadline = int(_unix(self.deadline, "deadline")) if self.deadline is not None else 0
        if timeout == 0 and deadline == 0:
            timeout = DEFAULT_TIMEOUT
        if self.process_at is not None:
            process_at = _unix(self.process_at, "process_at")
        elif self.process_in is not None:
            process_at = now + _seconds(self.process_in, "process_in")
        else:
            process_at = now
        max_retry = DEFAULT_MAX_RETRY if self.max_retry is None else max(0, self.max_retry)
        unique = _seconds(self.unique, "unique") if self.unique is not None else 0.0
        return Resolved(
            queue=self.queue or DEFAULT_QUEUE,
            max_retry=max_retry,
            task_id=self.task_id or str(uuid.uuid4()),
            timeout=timeout,
            deadline=deadline,
            unique_ttl=int(unique),
            process_at=process_at,
            retention=int(_seconds(self.retention, "retention")) if self.retention else 0,
            group=self.group or "",
            headers=dict(self.headers or {}),
            unique_seconds=unique,
        )


@dataclass(frozen=True, slots=True)
class Resolved:
    """Options turned into the values stored in Redis (seconds are whole, as in Go)."""

    queue: str
    max_retry: int
    task_id: str
    timeout: int
    deadline: int
    unique_ttl: int
    process_at: float
    retention: int
    group: str
    headers: dict[str, str]
    # The unique TTL before truncation: Go computes a scheduled task's lock TTL
    # (process-at + unique TTL - now) from it and truncates only the sum.
    unique_seconds: float = 0.0
