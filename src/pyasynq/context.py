"""What a handler can learn about the task it is running (asynq's GetTaskID,
GetRetryCount, GetMaxRetry, GetQueueName, the context deadline and the ResultWriter)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = ["ResultWriter", "TaskContext", "current_task"]

_build_lock = threading.Lock()  # a TaskContext or ResultWriter is built once per task


class Done(Protocol):
    """Whether the task's context has ended (a threading.Event fits)."""

    def is_set(self) -> bool: ...


class ResultWriter:
    """Stores bytes as the task's result (hash field ``result``; the last write wins).

    Usable from ``async def`` handlers (``await writer.write(data)``) and from plain ``def``
    handlers (``writer.write_sync(data)``). Writing after the task's deadline or
    cancellation raises RuntimeError, as in asynq.
    """

    def __init__(
        self,
        task_id: str,
        write: Callable[[bytes], Awaitable[None]],
        write_sync: Callable[[bytes], None],
        done: Done,
    ) -> None:
        self._task_id = task_id
        self._write = write
        self._write_sync = write_sync
        self._done = done

    @property
    def task_id(self) -> str:
        """The id of the task whose result this writes."""
        return self._task_id

    def _check(self, data: object) -> bytes:
        if self._done.is_set():
            raise RuntimeError(
                f"cannot write the result of task {self._task_id}: its context is done "
                "(deadline exceeded or canceled)"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("result must be bytes")
        return bytes(data)

    async def write(self, data: bytes) -> int:
        """Store ``data`` as the task's result (from ``async def`` handlers); returns its
        length."""
        b = self._check(data)
        await self._write(b)
        return len(b)

    def write_sync(self, data: bytes) -> int:
        """Store ``data`` as the task's result (from plain ``def`` handlers, which run on
        worker threads); returns its length."""
        b = self._check(data)
        self._write_sync(b)
        return len(b)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running task's identity and limits."""

    id: str
    type: str
    queue: str
    retry_count: int
    max_retry: int
    deadline: datetime
    result_writer: ResultWriter
    _done: Done = field(repr=False)
    _progress: Any = field(default=None, repr=False, compare=False)
    _lender: Any = field(default=None, repr=False, compare=False)
    _now: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """True once the task's deadline passed, it was canceled, or the server is
        shutting down: long-running sync handlers should check this and return."""
        return self._done.is_set()

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the task got: visible in ``Inspector.get_task_info``, ``pyasynq
        task inspect``, the dashboard, and to ``Client.wait_result(on_progress=...)``.

        Never blocks; call it as often as you like, from ``async def`` or ``def``
        handlers: at most ten reports a second per task are written, the latest winning.

        Args:
            fraction: How much is done, from 0 to 1.
            message: A short note (e.g. ``"resized 4/10"``; cut at 1,000 characters).

        Raises:
            ValueError: ``fraction`` is outside 0..1.
            TypeError: ``fraction`` is not a number or ``message`` not a str.
            RuntimeError: The task's context is done (deadline exceeded or canceled).
        """
        if self._done.is_set():
            raise RuntimeError(
                f"cannot report progress of task {self.id}: its context is done "
                "(deadline exceeded or canceled)"
            )
        if self._progress is None:
            from ._rdb.ops.results import check_progress

            check_progress(fraction, message)  # validated, recorded nowhere (no server)
            return
        self._progress.report(self.id, fraction, message)

    @property
    def redis(self) -> Any:
        """A ``redis.asyncio.Redis`` client the worker lends to ``async def`` handlers.

        The commands of handlers running at once that are issued in the same event-loop
        iteration leave in one pipeline, each caller still getting its own reply or
        error: cheaper than a client of the handler's own (see docs/handlers.md). It
        reaches the worker's Redis over connections of its own, or
        ``ServerConfig.handler_redis`` when set; on Redis Cluster it is a plain
        ``RedisCluster``. Made on first use, closed by the worker at shutdown: do not
        close it.

        Raises:
            RuntimeError: Outside a worker, or from a ``def`` handler (it runs on a
                thread: use a ``redis.Redis`` client of your own there).
        """
        if self._lender is None:
            raise RuntimeError(
                f"task {self.id}: no worker lends a Redis client here (this TaskContext "
                "was not made by a pyasynq Server); use a client of your own"
            )
        return self._lender.client()

    def seconds_left(self) -> float:
        """Seconds until the task's deadline (negative once it passed), by the server's
        clock (Redis's time), as the deadline was set."""
        return self.deadline.timestamp() - self._now()


class LazyContext:
    """What the worker sets for a running task instead of its TaskContext: the context and
    the ResultWriter are built on first use (most handlers never ask for either; building
    both cost a no-op task ~6 µs) and then kept, so every caller gets the same object.
    Subclasses say how to build them."""

    __slots__ = ("_ctx", "_writer")

    def __init__(self) -> None:
        self._ctx: TaskContext | None = None
        self._writer: ResultWriter | None = None

    def _build_writer(self) -> ResultWriter:
        raise NotImplementedError

    def _build_context(self, writer: ResultWriter) -> TaskContext:
        raise NotImplementedError

    def result_writer(self) -> ResultWriter:
        """The task's ResultWriter, built on the first call."""
        w = self._writer
        if w is None:
            # A def handler's thread and the event loop may ask at once: build under a
            # lock (taken only the first time), so both get the same object.
            with _build_lock:
                w = self._writer
                if w is None:
                    w = self._writer = self._build_writer()
        return w

    def context(self) -> TaskContext:
        """The task's TaskContext, built on the first call."""
        ctx = self._ctx
        if ctx is None:
            writer = self.result_writer()
            with _build_lock:
                ctx = self._ctx
                if ctx is None:
                    ctx = self._ctx = self._build_context(writer)
        return ctx


_current: contextvars.ContextVar[TaskContext | LazyContext] = contextvars.ContextVar("pyasynq_task")


def current_task() -> TaskContext:
    """The task the calling handler is running; raises LookupError outside a handler."""
    try:
        v = _current.get()
    except LookupError:
        raise LookupError("current_task() is only available inside a task handler") from None
    return v if isinstance(v, TaskContext) else v.context()


def set_current(
    ctx: TaskContext | LazyContext,
) -> contextvars.Token[TaskContext | LazyContext]:
    return _current.set(ctx)


def peek(value: TaskContext | LazyContext | None) -> TaskContext | None:
    """The TaskContext a value of the context variable stands for (built if need be)."""
    return value.context() if isinstance(value, LazyContext) else value
