"""What every component shares, and the one shape they all have.

A component is constructed with the :class:`Runtime` and exposes ``async run()``, which
loops until ``runtime.stopping`` (or its own stop event) is set, calling ``exec()`` every
``interval`` seconds. Components never talk to each other directly: they share the
runtime's broker, config, logger, clock and the table of active workers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import Op, processing
from pyasynq.clock import Clock
from pyasynq.config import ServerConfig
from pyasynq.errors import BrokerError
from pyasynq.log import Logger

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker


class Flag:
    """A set-once boolean with threading.Event's set()/is_set(), without its Condition and
    lock (a threading.Event per task was a measurable share of a no-op task's cost):
    nobody waits on it (the waker wakes the worker), and a bool store is atomic."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass(slots=True)
class ActiveTask:
    """One task being processed here. Written by the processor on the event loop, read
    and updated by the heartbeater thread, so mutable fields are guarded by ``Workers``'
    lock."""

    msg: TaskMessage
    token: str
    started: float  # Unix s
    deadline: float  # Unix s: when the handler's context ends
    lease_until: float  # Unix s: our view of the lease; writes are refused past it
    cancel: Flag = field(default_factory=Flag)  # the handler's context ended
    lease_lost: Flag = field(default_factory=Flag)
    cancel_requested: bool = False
    waker: Any = None  # callable(reason) the heartbeater/subscriber use to wake the worker


class Workers:
    """The table of active tasks, shared between the event loop and the heartbeater."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, ActiveTask] = {}

    def add(self, t: ActiveTask) -> None:
        with self._lock:
            self._tasks[t.msg.id] = t

    def remove(self, task_id: str) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    def get(self, task_id: str) -> ActiveTask | None:
        with self._lock:
            return self._tasks.get(task_id)

    def snapshot(self) -> list[ActiveTask]:
        with self._lock:
            return list(self._tasks.values())

    def extend(self, task_ids: list[str], until: float) -> None:
        with self._lock:
            for tid in task_ids:
                t = self._tasks.get(tid)
                if t is not None:
                    t.lease_until = until

    def lease_valid(self, task_id: str, now: float) -> bool:
        with self._lock:
            t = self._tasks.get(task_id)
            return t is not None and now < t.lease_until

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)


@dataclass
class Identity:
    host: str = field(default_factory=lambda: socket.gethostname() or "unknown-host")
    pid: int = field(default_factory=os.getpid)
    server_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def server_key(self) -> str:
        return keys.server_info_key(self.host, self.pid, self.server_id)

    @property
    def workers_key(self) -> str:
        return keys.workers_key(self.host, self.pid, self.server_id)


class Runtime:
    """Shared state of one running server."""

    def __init__(
        self,
        config: ServerConfig,
        broker: AsyncBroker,
        log: Logger,
        clock: Clock,
        redis_target: Any,
    ) -> None:
        self.config = config
        self.broker = broker
        self.log = log
        self.clock = clock
        self.redis_target = redis_target  # for components that need their own connection
        self.identity = Identity()
        self.workers = Workers()
        self.queues = list(config.normalized_queues())
        self.stopping = asyncio.Event()  # no new work (Stop)
        self.closing = asyncio.Event()  # everything ends (Shutdown)
        self.wake: Callable[[], None] | None = None  # the processor's notify()
        self.status = "new"
        self.started_at = clock.now()


async def run_write(rt: Runtime, op: Op) -> None:
    """Run a task write (done, retry, ...) and raise its typed error: LeaseExpiredError
    or TaskGoneError (definitive), or another BrokerError (worth retrying)."""
    try:
        reply = await rt.broker.run(op)
    except BrokerError as exc:
        raise processing.map_error(exc) from exc
    processing.check_write(reply)


class Component:
    """Base of every periodic component."""

    name = "component"

    def __init__(self, rt: Runtime, interval: float, *, run_at_start: bool = False) -> None:
        self.rt = rt
        self.interval = interval
        self.run_at_start = run_at_start
        self.done = asyncio.Event()

    async def run(self) -> None:
        """Call ``exec`` every ``interval`` until the server closes; errors are logged and
        never end the loop."""
        first = True
        while not self.done.is_set():
            if not (first and self.run_at_start):
                try:
                    await asyncio.wait_for(self.done.wait(), self.interval)
                    break
                except TimeoutError:
                    pass
            first = False
            try:
                await self.exec()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.rt.log.warn("%s: %s", self.name, exc)

    async def exec(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.done.set()
