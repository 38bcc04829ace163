# Generated from pyasynq/_async by scripts/unasync.py: do not edit.
"""Client: the distributor. Enqueues tasks with asynq's options."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from time import monotonic
from types import TracebackType
from typing import Self

from pyasynq._rdb import keys
from pyasynq._rdb.ops.base import Command, Op
from pyasynq._rdb.ops.enqueue import Prepared, enqueue_result, prepare
from pyasynq.clock import Clock, RealClock
from pyasynq.errors import (
    BrokerError,
    DuplicateTaskError,
    PyAsynqError,
    ReplicationError,
    TaskIDConflictError,
)
from pyasynq.options import Duration, Options, When
from pyasynq.task import EnqueueResult, Task, TaskInfo, TaskState

from .broker import Broker, is_transient
from .connection import Target


class Client:
    """Enqueues tasks into Redis for any asynq-compatible worker (pyasynq or Go).

    ``redis`` is a URL (``redis://``, ``rediss://``, ``unix://``) or an existing
    ``redis.Redis``, which pyasynq then never closes.
    """

    def __init__(
        self,
        redis: Target,
        *,
        clock: Clock | None = None,
        failover_timeout: float = 10.0,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if failover_timeout < 0 or wait_replicas < 0 or wait_timeout <= 0:
            raise ValueError("failover_timeout and wait_replicas must be >= 0 and wait_timeout > 0")
        self._broker = Broker(redis)
        self._clock: Clock = clock or RealClock()
        self._failover_timeout = failover_timeout
        self._wait_replicas = wait_replicas
        self._wait_timeout = wait_timeout

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
        wait_replicas: int | None = None,
    ) -> TaskInfo:
        """Store ``task``; options given here override the task's own.

        Raises TaskIDConflictError when ``task_id`` is taken in the queue and
        DuplicateTaskError when a ``unique`` task with the same type and payload exists.

        During a failover the write is retried with backoff for up to the client's
        ``failover_timeout``; a retry that finds our own write already stored counts as
        success. ``wait_replicas=N`` (default: the client's) makes the call return only
        once N replicas have the task, and raise ReplicationError otherwise: use it when an
        acknowledged task must survive the loss of the master.
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
        replicas = self._wait_replicas if wait_replicas is None else wait_replicas
        if replicas < 0:
            raise ValueError("wait_replicas must not be negative")
        self._store(p, replicas)
        return p.info

    def _store(self, p: Prepared, replicas: int) -> None:
        give_up = monotonic() + self._failover_timeout
        delay = 0.05
        retried = False
        while True:
            try:
                ops: list[Op] = [p.register_queue, p.call]
                if p.info.state is TaskState.PENDING:
                    ops.append(_wake(p.info.queue))
                if replicas:
                    replies = self._broker.run_durable(ops, replicas, self._wait_timeout)
                    acked = replies[-1]
                else:
                    replies = self._broker.run_many(ops)
                registered, reply = replies[0], replies[1]
                try:
                    _outcome(reply, registered)
                except (TaskIDConflictError, DuplicateTaskError):
                    # After a lost reply our first attempt may have landed: that is success.
                    if not (retried and self._is_ours(p)):
                        raise
                if replicas:
                    _check_acked(acked, replicas, self._wait_timeout)
                return
            except BrokerError as exc:
                if not is_transient(exc) or monotonic() + delay > give_up:
                    raise
            retried = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _is_ours(self, p: Prepared) -> bool:
        stored = self._broker.run(Command(("HGET", p.task_key, "msg")))
        return bool(stored == p.msg)

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
        woken = dict.fromkeys(p.info.queue for p in prepared if p.info.state is TaskState.PENDING)
        ops: list[Op] = [
            *(Command(args) for args in queues),
            *(p.call for p in prepared),
            *(_wake(q) for q in woken),
        ]
        replies = self._broker.run_many(ops)
        registered = dict(zip(queues, replies, strict=False))
        results = []
        calls = replies[len(queues) : len(queues) + len(prepared)]
        for p, reply in zip(prepared, calls, strict=True):
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


def _wake(queue: str) -> Command:
    """Tell idle pyasynq workers that ``queue`` has new pending work (Go ignores it)."""
    return Command(("PUBLISH", keys.WAKE_CHANNEL, queue))


def _check_acked(acked: object, replicas: int, timeout: float) -> None:
    if isinstance(acked, BrokerError):
        raise acked
    if not isinstance(acked, int) or acked < replicas:
        raise ReplicationError(
            f"the task is stored on the master, but only {acked} of {replicas} replicas "
            f"confirmed it within {timeout}s; it could be lost if the master fails now. "
            "Check the replicas (INFO replication), or retry with the same task_id"
        )


def _prepare(task: Task, options: Options, now_ns: int) -> Prepared:
    if not isinstance(task, Task):
        raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
    return prepare(task, options, now_ns)
