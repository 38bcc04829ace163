# Generated from pyasynq/_async by scripts/unasync.py: do not edit.
"""Client: the distributor. Enqueues tasks with asynq's options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Self

from pyasynq._rdb.ops.base import Command, Op
from pyasynq._rdb.ops.enqueue import Prepared, enqueue_result, prepare
from pyasynq.clock import Clock, RealClock
from pyasynq.errors import BrokerError, PyAsynqError
from pyasynq.options import Duration, Options, When
from pyasynq.task import EnqueueResult, Task, TaskInfo

from .broker import Broker
from .connection import Target


class Client:
    """Enqueues tasks into Redis for any asynq-compatible worker (pyasynq or Go).

    ``redis`` is a URL (``redis://``, ``rediss://``, ``unix://``) or an existing
    ``redis.Redis``, which pyasynq then never closes.
    """

    def __init__(self, redis: Target, *, clock: Clock | None = None) -> None:
        self._broker = Broker(redis)
        self._clock: Clock = clock or RealClock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._broker!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the caller handed it in)."""
        self._broker.close()

    def ping(self) -> None:
        """Raise BrokerError unless Redis answers."""
        self._broker.ping()

    def enqueue(
        self,
        task: Task,
        *,
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
        headers: Mapping[str, str] | None = None,
    ) -> TaskInfo:
        """Store ``task``; options given here override the task's own.

        Raises TaskIDConflictError when ``task_id`` is taken in the queue and
        DuplicateTaskError when a ``unique`` task with the same type and payload exists.
        """
        options = Options(
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
            headers=headers,
        )
        p = _prepare(task, options, self._clock.now_ns())
        registered, reply = self._broker.run_many([p.register_queue, p.call])
        _outcome(reply, registered)
        return p.info

    def enqueue_many(self, tasks: Iterable[Task | tuple[Task, Options]]) -> list[EnqueueResult]:
        """Enqueue many tasks in one pipelined round trip. Each item is a Task (its own
        options apply) or ``(task, Options(...))``. Results are in input order; a task that
        failed has ``error`` set and does not stop the others."""
        now_ns = self._clock.now_ns()
        prepared = []
        for item in tasks:
            if isinstance(item, tuple):
                if len(item) != 2 or not isinstance(item[1], Options):
                    raise TypeError(
                        f"enqueue_many takes Task or (Task, Options(...)) items, got {item!r}"
                    )
                task, options = item
            else:
                task, options = item, Options()
            prepared.append(_prepare(task, options, now_ns))
        queues = list(dict.fromkeys(p.register_queue.args for p in prepared))
        ops: list[Op] = [*(Command(args) for args in queues), *(p.call for p in prepared)]
        replies = self._broker.run_many(ops)
        registered = dict(zip(queues, replies, strict=False))
        results = []
        for p, reply in zip(prepared, replies[len(queues) :], strict=True):
            try:
                _outcome(reply, registered[p.register_queue.args])
                results.append(EnqueueResult(p.info))
            except PyAsynqError as exc:
                results.append(EnqueueResult(None, exc))
        return results


def _outcome(reply: object, registered: object) -> None:
    """Raise for a failed enqueue script, then for a failed SADD of the queue: a task
    whose queue is missing from asynq:queues is invisible to the Inspector, CLI and
    asynqmon, so that must not pass silently."""
    if isinstance(reply, BrokerError):
        raise reply
    enqueue_result(reply)
    if isinstance(registered, BrokerError):
        raise BrokerError(
            f"the task was stored, but registering its queue in asynq:queues failed: {registered}"
        )


def _prepare(task: Task, options: Options, now_ns: int) -> Prepared:
    if not isinstance(task, Task):
        raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
    return prepare(task, options, now_ns)
