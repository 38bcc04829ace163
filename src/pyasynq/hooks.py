"""Enqueue hooks: code that runs around every enqueue of a client (tracing, audit).

``AsyncClient(url, enqueue_hooks=[hook])`` (and ``Client``) calls ``hook(ev)`` for each
task it enqueues, with an :class:`Enqueueing`, and uses what it returns as a context
manager around the write to Redis::

    @contextlib.contextmanager
    def stamp(ev: pyasynq.Enqueueing) -> Iterator[None]:
        ev.headers["sent-by"] = "billing"   # stored with the task, overriding its own
        yield
        log.info("%s: %s", ev.task.type, ev.info.id if ev.info else ev.error)

Hooks enter in list order before the task is encoded and exit (in reverse) once Redis
answered, with ``info`` or ``error`` set. In ``enqueue_many`` every task gets its own
Enqueueing and all hooks exit after the one round trip. An exception from a hook's
enter fails the enqueue before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeAlias

from .task import Task, TaskInfo

__all__ = ["EnqueueHook", "Enqueueing"]


@dataclass(slots=True)
class Enqueueing:
    """One enqueue as a hook sees it.

    ``queue`` is the queue the call or the task names, None for the default one (the
    stored queue is ``info.queue``). ``headers`` starts empty: entries a hook adds are
    stored with the task over the task's and the call's own.
    """

    task: Task
    queue: str | None
    headers: dict[str, str] = field(default_factory=dict)
    info: TaskInfo | None = None  # set once Redis stored the task
    error: BaseException | None = None  # set when the enqueue failed


EnqueueHook: TypeAlias = Callable[[Enqueueing], AbstractContextManager[object]]
