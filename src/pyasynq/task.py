"""The user-facing value types: Task, TaskInfo and TaskState."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .context import LazyContext
from .options import Duration, Options, When, check_name, given

__all__ = ["EnqueueResult", "Task", "TaskInfo", "TaskProgress", "TaskState"]


class TaskState(StrEnum):
    """A task's state; the value is what Redis stores in the hash field ``state``."""

    ACTIVE = "active"
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RETRY = "retry"
    ARCHIVED = "archived"
    COMPLETED = "completed"
    AGGREGATING = "aggregating"


def _check_payload(payload: object) -> bytes | None:
    if payload is None:
        return None
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes, got {type(payload).__name__}; for JSON use "
        "Task.from_json(type, obj) or json.dumps(obj).encode()"
    )


class Task:
    """A unit of work: a type name, an opaque payload, headers, and default enqueue options.

    Options given here are defaults; the same options given to ``enqueue`` override them.
    A payload of ``None`` is Go's nil payload, which differs from ``b""`` only in the
    uniqueness key.

    Args:
        type: The task type, which picks the handler (e.g. ``"email:welcome"``).
        payload: The task's data as bytes (``Task.from_json`` encodes an object as JSON).
        headers: String metadata carried with the task.
        queue: Default for ``Client.enqueue``'s option of the same name; so are
            ``max_retry``, ``task_id``, ``timeout``, ``deadline``, ``unique``,
            ``process_at``, ``process_in``, ``retention`` and ``group`` (see
            ``help(pyasynq.Client.enqueue)``).
    """

    __slots__ = ("_result_writer", "headers", "options", "payload", "type")

    def __init__(
        self,
        type: str,
        payload: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        queue: str | None = None,
        max_retry: int | None = None,
        task_id: str | None = None,
        timeout: Duration | None = None,
        deadline: When | None = None,
        unique: Duration | None = None,
        process_at: When | None = None,
        process_in: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
    ) -> None:
        self.type = check_name(type, "task type")
        self.payload = _check_payload(payload)
        if headers is not None:
            Options(headers=headers)  # validates str -> str
        self.headers: dict[str, str] = {} if headers is None else dict(headers)
        self.options = given(
            queue=queue,
            max_retry=max_retry,
            task_id=task_id,
            timeout=timeout,
            deadline=deadline,
            unique=unique,
            process_at=process_at,
            process_in=process_in,
            retention=retention,
            group=group,
        )
        self._result_writer: Any = None

    @classmethod
    def from_json(cls, type: str, obj: Any, **options: Any) -> Task:
        """A task whose payload is ``obj`` as compact UTF-8 JSON."""
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(type, data, **options)

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload or b"null")

    @property
    def result_writer(self) -> Any:
        """Inside a handler: the ResultWriter of the running task; else None."""
        w = self._result_writer
        return w.result_writer() if isinstance(w, LazyContext) else w

    def __repr__(self) -> str:
        size = 0 if self.payload is None else len(self.payload)
        return f"Task(type={self.type!r}, payload=<{size} bytes>)"


def _dt(unix_seconds: int | float) -> datetime | None:
    return None if not unix_seconds else datetime.fromtimestamp(unix_seconds, UTC)


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """The last progress a handler reported (``current_task().progress(...)``).

    Attributes:
        fraction: How much is done, from 0 to 1.
        message: What the handler said about it (may be empty).
        updated_at: When it was reported (None if unknown).
    """

    fraction: float
    message: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What is known about a stored task (asynq's TaskInfo)."""

    id: str
    queue: str
    type: str
    payload: bytes
    state: TaskState
    max_retry: int
    retried: int = 0
    last_err: str = ""
    last_failed_at: datetime | None = None
    timeout: timedelta | None = None
    deadline: datetime | None = None
    group: str = ""
    next_process_at: datetime | None = None
    is_orphaned: bool = False
    retention: timedelta | None = None
    completed_at: datetime | None = None
    result: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    progress: TaskProgress | None = None  # pyasynq: the last progress its handler reported


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """One task's outcome in ``enqueue_many``: ``info`` when stored, else ``error``."""

    info: TaskInfo | None
    error: Exception | None = None


def task_info_from(
    msg: Any,
    state: TaskState,
    *,
    next_process_at: float = 0,
    result: bytes = b"",
    is_orphaned: bool = False,
    progress: TaskProgress | None = None,
) -> TaskInfo:
    """Build a TaskInfo from a decoded TaskMessage (``pyasynq._rdb.codec.TaskMessage``)."""
    return TaskInfo(
        id=msg.id,
        queue=msg.queue,
        type=msg.type,
        payload=msg.payload,
        state=state,
        max_retry=msg.retry,
        retried=msg.retried,
        last_err=msg.error_msg,
        last_failed_at=_dt(msg.last_failed_at),
        timeout=timedelta(seconds=msg.timeout) if msg.timeout else None,
        deadline=_dt(msg.deadline),
        group=msg.group_key,
        next_process_at=_dt(next_process_at),
        is_orphaned=is_orphaned,
        retention=timedelta(seconds=msg.retention) if msg.retention else None,
        completed_at=_dt(msg.completed_at),
        result=result,
        headers=dict(msg.headers),
        progress=progress,
    )
