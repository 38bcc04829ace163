"""Every exception pyasynq raises, in one place.

Hierarchy::

    PyAsynqError
    ├── BrokerError                  Redis failed or answered something unexpected
    │   ├── LeaseExpiredError        the task's lease ran out; a write was refused
    │   ├── RedisOutOfMemoryError    Redis is full (maxmemory) and refused a write
    │   ├── ReplicationError         a durable enqueue reached fewer replicas than asked
    │   └── TaskGoneError            a worker's write found the task no longer active
    ├── TaskIDConflictError          another task already uses this task id in the queue
    ├── DuplicateTaskError           a unique task with the same queue/type/payload exists
    ├── QueueNotFoundError           the queue is not in asynq:queues
    ├── QueueNotEmptyError           delete_queue without force on a non-empty queue
    ├── TaskNotFoundError            no such task in the queue
    ├── TaskFailedError              an awaited task failed for good (it was archived)
    ├── ResultTimeoutError           an awaited task did not finish in time (a TimeoutError)
    ├── TaskStateError               the operation does not apply to the task's state
    ├── QueueStateError              pause a paused queue, unpause a running one
    └── ServerClosedError            the server was shut down

    SkipRetry, RevokeTask, Snooze    handler signals, not failures of pyasynq

Bad arguments raise ``ValueError`` or ``TypeError`` at the call site, before anything
is written to Redis.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = [
    "BrokerError",
    "DuplicateTaskError",
    "LeaseExpiredError",
    "PyAsynqError",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "QueueStateError",
    "RedisOutOfMemoryError",
    "ReplicationError",
    "ResultTimeoutError",
    "RevokeTask",
    "ServerClosedError",
    "SkipRetry",
    "Snooze",
    "TaskFailedError",
    "TaskGoneError",
    "TaskIDConflictError",
    "TaskNotFoundError",
    "TaskStateError",
]


class PyAsynqError(Exception):
    """Root of every pyasynq error."""


class BrokerError(PyAsynqError):
    """Redis failed, or answered in a way the protocol does not allow."""


class LeaseExpiredError(BrokerError):
    """The worker no longer owns the task: its lease expired (asynq: task lease expired)."""

    def __init__(self, message: str = "asynq: task lease expired") -> None:
        super().__init__(message)


class TaskGoneError(BrokerError):
    """A write after processing found the task no longer active or leased (the script
    answered ``NOT FOUND``): someone else, e.g. the recoverer or the Inspector, moved it."""

    def __init__(self, message: str = "task is no longer active (NOT FOUND)") -> None:
        super().__init__(message)


class RedisOutOfMemoryError(BrokerError):
    """Redis is full (used memory above ``maxmemory`` with the ``noeviction`` policy) and
    refused a write that needs memory, such as an enqueue; nothing was stored. Workers keep
    draining a full Redis, so retrying later can succeed."""


class ReplicationError(BrokerError):
    """A durable enqueue (``wait_replicas``) was not confirmed by enough replicas in time.
    The task is on the master and may still be lost if the master fails before it
    replicates."""


class TaskIDConflictError(PyAsynqError):
    """The task id is already used by another task in the same queue."""

    def __init__(self, message: str = "task ID conflicts with another task") -> None:
        super().__init__(message)


class DuplicateTaskError(PyAsynqError):
    """A unique task with the same queue, type and payload holds the uniqueness lock."""

    def __init__(self, message: str = "task already exists") -> None:
        super().__init__(message)


class QueueNotFoundError(PyAsynqError):
    """The queue does not exist (it is not in ``asynq:queues``)."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {queue!r} does not exist")
        self.queue = queue


class QueueNotEmptyError(PyAsynqError):
    """A queue with tasks was deleted without ``force``."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {queue!r} is not empty; pass force=True to delete it anyway")
        self.queue = queue


class TaskNotFoundError(PyAsynqError):
    """No task with this id in this queue."""

    def __init__(self, queue: str, task_id: str, hint: str = "") -> None:
        text = f"task {task_id!r} does not exist in queue {queue!r}"
        super().__init__(f"{text}: {hint}" if hint else text)
        self.queue = queue
        self.task_id = task_id


class TaskFailedError(PyAsynqError):
    """An awaited task failed for good: it was archived (retries exhausted, SkipRetry, or
    archived by hand). ``error`` is its last error message; ``retried`` how many retries
    it had."""

    def __init__(self, queue: str, task_id: str, error: str, retried: int = 0) -> None:
        super().__init__(
            f"task {task_id!r} in queue {queue!r} failed and was archived after "
            f"{retried} retries: {error or '(no error message)'}; run it again with "
            f"`pyasynq task run -q {queue} -i {task_id}` once the cause is fixed"
        )
        self.queue = queue
        self.task_id = task_id
        self.error = error
        self.retried = retried


class ResultTimeoutError(PyAsynqError, TimeoutError):
    """An awaited task did not finish within the timeout. It goes on (nothing was
    cancelled): wait again, or look at it with ``pyasynq task inspect``."""


class TaskStateError(PyAsynqError):
    """The operation does not apply to a task in its current state."""


class QueueStateError(PyAsynqError):
    """Pausing a paused queue, or unpausing a queue that is not paused."""


class ServerClosedError(PyAsynqError):
    """The server was shut down and cannot be started again."""


class SkipRetry(Exception):
    """Raise (or chain) from a handler to archive the task at once, without retries."""

    def __init__(self, message: str = "skip retry for the task") -> None:
        super().__init__(message)


class RevokeTask(Exception):
    """Raise (or chain) from a handler to drop the task: neither retried nor archived."""

    def __init__(self, message: str = "revoke task") -> None:
        super().__init__(message)


class Snooze(Exception):
    """Raise from a handler to run the task again after ``delay``, for "not yet"
    conditions (a resource not ready, a rate limit hit upstream): not a failure.

    The task waits in the scheduled set, as a task enqueued with ``process_in`` does,
    and runs again once the delay has passed. Unlike a retry, nothing about the attempt
    is recorded on the task: its retry count, last error and the failed counters stay as
    they were, and the error handler is not called. A task can snooze any number of
    times; its deadline, if it has one, still applies.

    Args:
        delay: Seconds (``int``/``float``) or a ``timedelta``, at least 0. The task runs
            again no earlier than that (whole seconds, rounded up).

    Raises:
        TypeError: ``delay`` is neither a number nor a timedelta.
        ValueError: ``delay`` is negative or not finite.
    """

    def __init__(self, delay: float | timedelta) -> None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, int | float) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise TypeError(
                f"Snooze(delay) takes seconds (int or float) or a timedelta, got {delay!r}"
            )
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"Snooze delay must be a finite number of seconds >= 0, got {delay!r}")
        self.delay = seconds
        """How long to wait before the next run, in seconds."""
        super().__init__(f"snooze for {seconds:g}s")
