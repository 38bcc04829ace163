"""Enqueue options: validation, merging (task defaults < enqueue call) and resolution into
the concrete values written to Redis.

Durations are seconds (``int``/``float``) or :class:`~datetime.timedelta`; points in time
are Unix seconds or timezone-aware :class:`~datetime.datetime`. Go asynq truncates
timeouts, retention and unique TTLs to whole seconds; so do we, and a value that would
truncate to nothing is refused instead of silently meaning something else.
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeAlias

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


def _utf8(value: str, what: str) -> None:
    """Refuse a lone surrogate (text decoded with ``surrogateescape``, say): it has no
    UTF-8 form, so Redis could never store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {value!r} holds a lone surrogate ({value[exc.start]!r}) that UTF-8 "
            "cannot encode; decode the text it came from without surrogateescape"
        ) from None


def check_name(value: object, what: str, *, queue: bool = False) -> str:
    """A queue, type, task id or group name: non-blank text without control characters.
    Unicode is fine (Go asynq accepts it). Queue names may not hold braces, which would
    move their keys out of the queue's Redis Cluster hash slot."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    # Printable ASCII holds no control character: skip the per-character look-up.
    if not (value.isascii() and value.isprintable()):
        _utf8(value, what)
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
        if self.max_retry is not None and self.max_retry < 0:
            # Go's MaxRetry(n) quietly makes a negative n 0; a mistake here should be seen.
            raise ValueError(
                f"max_retry must be 0 (no retry: archive at the first failure) or more, "
                f"got {self.max_retry}"
            )
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
                _utf8(k, "header name")
                _utf8(v, f"header {k!r}")

    def merged(self, override: Options) -> Options:
        """These options with every field ``override`` gives replacing ours; headers are
        merged key by key, the override winning."""
        m = _Merged(self, override)  # the one place that knows the merge rules
        return replace(self, **{name: getattr(m, name) for name in _Merged.__slots__})

    def resolve(self, now: float) -> Resolved:
        """Concrete values for a task enqueued at Unix time ``now``."""
        return _resolve(self, now, self.headers)


NO_OPTIONS = Options()
"""The options of a task or call that gives none; shared, so a check for "nothing
given" is an identity test (the instance is immutable)."""


def given(**fields: Any) -> Options:
    """``Options(**fields)``, or :data:`NO_OPTIONS` when every field is None (the common
    case, which the enqueue path then spots by identity)."""
    for value in fields.values():
        if value is not None:
            return Options(**fields)
    return NO_OPTIONS


def resolve_merged(
    base: Options,
    override: Options,
    now: float,
    headers: Mapping[str, str] | None = None,
    new_id: Callable[[], str] | None = None,
) -> Resolved:
    """``base.merged(override).resolve(now)``, with ``headers`` (a task's own) below both
    sets of options, without building the merged Options: both are validated already.
    ``new_id`` makes the task id when none is given (default: :func:`new_task_id`)."""
    merged: Options | _Merged
    if override is NO_OPTIONS:
        merged = base
    elif base is NO_OPTIONS:
        merged = override
    else:
        merged = _Merged(base, override)
    if headers and merged.headers:
        headers = {**headers, **merged.headers}
    elif merged.headers is not None:
        headers = merged.headers
    return _resolve(merged, now, headers, new_id)


class _Merged:
    """The fields of ``base.merged(override)``, read like an Options by :func:`_resolve`."""

    __slots__ = (
        "deadline",
        "group",
        "headers",
        "max_retry",
        "process_at",
        "process_in",
        "queue",
        "retention",
        "task_id",
        "timeout",
        "unique",
    )

    def __init__(self, base: Options, override: Options) -> None:
        o, b = override, base
        self.queue = b.queue if o.queue is None else o.queue
        self.max_retry = b.max_retry if o.max_retry is None else o.max_retry
        self.task_id = b.task_id if o.task_id is None else o.task_id
        self.timeout = b.timeout if o.timeout is None else o.timeout
        self.deadline = b.deadline if o.deadline is None else o.deadline
        self.unique = b.unique if o.unique is None else o.unique
        self.retention = b.retention if o.retention is None else o.retention
        self.group = b.group if o.group is None else o.group
        if o.process_at is not None or o.process_in is not None:
            # The later of ProcessAt/ProcessIn wins in asynq; the call is later.
            self.process_at, self.process_in = o.process_at, o.process_in
        else:
            self.process_at, self.process_in = b.process_at, b.process_in
        if b.headers and o.headers:
            self.headers: Mapping[str, str] | None = {**b.headers, **o.headers}
        else:
            self.headers = b.headers if o.headers is None else o.headers


def _resolve(
    o: Options | _Merged,
    now: float,
    headers: Mapping[str, str] | None,
    new_id: Callable[[], str] | None = None,
) -> Resolved:
    timeout = int(_seconds(o.timeout, "timeout")) if o.timeout is not None else 0
    deadline = int(_unix(o.deadline, "deadline")) if o.deadline is not None else 0
    if timeout == 0 and deadline == 0:
        timeout = DEFAULT_TIMEOUT
    if o.process_at is not None:
        process_at = _unix(o.process_at, "process_at")
    elif o.process_in is not None:
        process_at = now + _seconds(o.process_in, "process_in")
    else:
        process_at = now
    max_retry = DEFAULT_MAX_RETRY if o.max_retry is None else o.max_retry
    unique = _seconds(o.unique, "unique") if o.unique is not None else 0.0
    return Resolved(
        queue=o.queue or DEFAULT_QUEUE,
        max_retry=max_retry,
        task_id=o.task_id or (new_id or new_task_id)(),
        timeout=timeout,
        deadline=deadline,
        unique_ttl=int(unique),
        process_at=process_at,
        retention=int(_seconds(o.retention, "retention")) if o.retention else 0,
        group=o.group or "",
        headers=dict(headers or {}),
        unique_seconds=unique,
    )


def new_task_id() -> str:
    """A random (version 4) UUID string, as Go asynq's default task id; like
    ``str(uuid.uuid4())``, at less than half its cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def uuid4_strings(n: int) -> list[str]:
    """``n`` random version 4 UUID strings, from one read of the OS' random source."""
    h = os.urandom(16 * n).hex()
    # Version nibble 4; variant bits 10 (the nibble becomes 8, 9, a or b).
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-"
        f"{_VARIANT[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


_VARIANT = {f"{v:x}": f"{8 | (v & 3):x}" for v in range(16)}


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
