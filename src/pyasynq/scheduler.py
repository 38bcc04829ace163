"""Scheduler: enqueues registered tasks on cron schedules (asynq's Scheduler), and the
PeriodicTaskManager that keeps a scheduler's entries in sync with a config provider.

    scheduler = pyasynq.Scheduler("redis://localhost:6379/0", location="Europe/Paris")
    scheduler.register("*/5 * * * *", pyasynq.Task("report:rollup"), queue="cron")
    scheduler.register("@every 30s", pyasynq.Task("metrics:collect"))
    scheduler.run()  # blocks; SIGTERM/SIGINT shut it down

Same life cycle as the Server: ``run()`` blocks and handles signals, ``start()`` runs on a
background thread, ``shutdown()`` stops it from any thread (``await ashutdown()`` from
async code), ``await serve()`` runs it in the current event loop.

What Go's tools see is what Go writes (wire spec 3.19): the entries list with TTL 2 x
heartbeat under ``asynq:schedulers:{<host>:<pid>:<uuid>}``, one history zset per entry
(capped at 1000, deleted at shutdown), and ordinary tasks. So ``asynq cron ls`` and
``asynq cron history`` show a pyasynq scheduler.

Exactly once with replicas (asynq enqueues once per scheduler per tick)
-----------------------------------------------------------------------
Run a scheduler on every replica of a service and each tick is still enqueued once.
Mechanisms considered:

* a leader lease in Redis (one scheduler enqueues, the others wait to take over): a tick
  is missed or doubled while the lease changes hands, unless ticks are also deduplicated;
* Go's ``Unique`` lock: keyed on queue, type and payload, not on the tick; it also blocks
  the next tick while a task is still queued, and users may need it for their own purpose;
* a deterministic task id per (entry identity, fire time): asynq's enqueue already refuses
  a second task with the same id, atomically and in the queue's own slot; every
  scheduler tries every tick, so no tick is missed while one of them is alive.

pyasynq uses the third, plus a short-lived tick marker written by the same script call,
because a task without retention is deleted once processed and a very late scheduler
would otherwise enqueue the tick again. The identity is asynq's PeriodicTaskConfig hash
(spec, type, payload, sorted option strings), the task id a UUIDv5 of identity and fire
time; an explicit ``task_id`` is respected as Go would. ``@every`` intervals start from a
shared anchor in Redis (the first scheduler's start), so replicas fire at the same
instants. Hooks after the enqueue and the history run only on the scheduler that
enqueued. See docs/scheduler.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from . import _clocksync
from ._async.broker import AsyncBroker
from ._async.connection import Target
from ._scheduler import cron
from ._scheduler.config import SchedulerConfig
from ._scheduler.engine import Engine, EntryTable
from ._scheduler.entries import Entry, EntryInfo, entry_identity, entry_option_strings
from .clock import Clock, RealClock, RedisClock
from .embedded import default_url
from .errors import BrokerError, ServerClosedError
from .log import Logger
from .options import DEFAULT_QUEUE, Options
from .task import Task

__all__ = [
    "CronSpecError",
    "EntryInfo",
    "PeriodicTaskConfig",
    "PeriodicTaskManager",
    "Scheduler",
    "SchedulerConfig",
]

CronSpecError = cron.CronSpecError
STARTUP_TIMEOUT = 5.0  # seconds to wait for Redis at start
MAX_SLEEP = 1.0  # re-read the wall clock at least this often (clock jumps, NTP)
_OPTION_NAMES = frozenset(Options.__dataclass_fields__)

Setup = Callable[[], Coroutine[Any, Any, None]]


def _scheduler_id() -> str:
    host = socket.gethostname() or "unknown-host"
    return f"{host}:{os.getpid()}:{uuid.uuid4()}"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Scheduler:
    """Enqueues registered tasks on their cron schedules.

    ``Scheduler(redis, **config)`` takes a Redis URL or ``redis.asyncio.Redis`` and the
    fields of :class:`SchedulerConfig` (``location=``, ``pre_enqueue=``, ``post_enqueue=``,
    ``enqueue_error_handler=``, ``heartbeat_interval=``, ``logger=``, ...), or
    ``config=SchedulerConfig(...)``. Without ``redis``: ``$PYASYNQ_REDIS_URL``,
    ``$REDIS_URL``, else the shared embedded Redis of ``./.pyasynq/redis``.
    """

    def __init__(
        self,
        redis: Target | None = None,
        *,
        config: SchedulerConfig | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise TypeError("give either config=SchedulerConfig(...) or keyword options, not both")
        self.config = config or SchedulerConfig(**options)
        self.id = _scheduler_id()  # <host>:<pid>:<uuid>, as Go's
        self.location = self.config.tz()
        self.log = Logger(self.config.logger, self.config.log_level)
        self._redis = redis if redis is not None else default_url()
        self._clock: Clock = clock or (
            RealClock() if self.config.clock_sync_interval is None else RedisClock()
        )
        self._table = EntryTable()
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._start_error: BaseException | None = None
        self._state = "new"
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._shutdown_flag = False

    def __repr__(self) -> str:
        return f"<Scheduler {self.id} {self._state}>"

    # -- entries ------------------------------------------------------------------------

    def register(self, cronspec: str, task: Task, **options: Any) -> str:
        """Enqueue ``task`` on the schedule ``cronspec`` with the given enqueue options
        (``queue=``, ``max_retry=``, ``timeout=``, ...; they override the task's own).
        Returns the entry id. Raises CronSpecError (a ValueError) for a spec Go would
        refuse. Safe from any thread, before or after start."""
        if not isinstance(task, Task):
            raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
        schedule = cron.parse(cronspec)
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"unknown enqueue option(s) {', '.join(unknown)}; use "
                f"{', '.join(sorted(_OPTION_NAMES))}"
            )
        opts = Options(**options)
        strings = entry_option_strings(task, opts, options)
        effective = task.options.merged(opts)
        entry = Entry(
            id=str(uuid.uuid4()),
            spec=cronspec,
            schedule=schedule,
            task=task,
            options=opts,
            option_strings=strings,
            identity=entry_identity(cronspec, task, strings),
            queue=effective.queue or DEFAULT_QUEUE,
            explicit_task_id=effective.task_id is not None,
        )
        self._table.add(entry)
        self._wake_up()
        return entry.id

    def unregister(self, entry_id: str) -> None:
        """Remove a registered entry; its enqueue history is deleted. Raises KeyError for
        an unknown id (Go: "asynq: no scheduler entry found")."""
        try:
            self._table.remove(entry_id)
        except KeyError:
            raise KeyError(f"no scheduler entry with id {entry_id!r}") from None
        self._wake_up()

    def entries(self) -> list[EntryInfo]:
        """The registered entries with their next and previous fire times."""
        return [e.info() for e in self._table.snapshot()]

    # -- life cycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Start, then block until SIGTERM/SIGINT, then shut down."""
        asyncio.run(self.serve(signals=True))

    def start(self) -> None:
        """Start on a background thread; return once running. Raises BrokerError when
        Redis cannot be reached."""
        self._start_thread(None, None)

    def shutdown(self) -> None:
        """Stop firing, let running enqueues finish, remove the entries and their history
        from Redis, and return. Safe from any thread except the scheduler's own loop
        (there, ``await scheduler.ashutdown()``)."""
        loop = self._loop
        if loop is None:
            self._shutdown_flag = True  # not started: serve() ends at once
            return
        if _running_loop() is loop:
            raise RuntimeError(
                "shutdown() would block the scheduler's own event loop; use "
                "`await scheduler.ashutdown()` there"
            )
        self._request_shutdown_threadsafe()
        if self._thread is not None:
            self._thread.join()
        else:
            self._finished.wait()

    async def ashutdown(self) -> None:
        """:meth:`shutdown` for async code, from the scheduler's loop or any other."""
        loop = self._loop
        if loop is None:
            self._shutdown_flag = True
            return
        if _running_loop() is not loop:
            await asyncio.to_thread(self.shutdown)
            return
        self._request_shutdown()
        assert self._closed is not None
        await self._closed.wait()

    async def serve(self, *, signals: bool = False) -> None:
        """Run the scheduler in the current event loop until shutdown."""
        self._claim()
        await self._serve_claimed(signals=signals)

    # -- internals ----------------------------------------------------------------------

    def _claim(self) -> None:
        if self._state != "new":
            raise ServerClosedError("a Scheduler runs once; create a new one to start again")
        self._state = "starting"

    def _start_thread(self, setup: Setup | None, background: Setup | None) -> None:
        self._claim()

        def main() -> None:
            try:
                asyncio.run(self._serve_claimed(False, setup, background))
            except BaseException as exc:
                if self._start_error is None:
                    self.log.error("scheduler stopped by an unexpected error: %r", exc)

        self._thread = threading.Thread(target=main, name="pyasynq-scheduler", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(wake.set)

    def _request_shutdown(self) -> None:
        if self._stop is not None and self._wake is not None:
            self._stop.set()
            self._wake.set()

    def _request_shutdown_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._request_shutdown)

    async def _serve_claimed(
        self, signals: bool, setup: Setup | None = None, background: Setup | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop, self._closed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        if self._shutdown_flag:
            self._request_shutdown()
        try:
            broker = AsyncBroker(self._redis)
        except BaseException as exc:
            self._fail_start(exc)
            raise
        try:
            await self._startup(broker, setup)
        except BaseException as exc:
            await broker.aclose()
            self._fail_start(exc)
            raise
        engine = self._engine
        assert engine is not None
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._request_shutdown)
        extra = asyncio.create_task(background()) if background is not None else None
        self._state = "running"
        try:
            await self._loop_until_stopped(engine)
        finally:
            self.log.info("Scheduler shutting down")
            if extra is not None:
                extra.cancel()
                await asyncio.gather(extra, return_exceptions=True)
            try:
                await engine.close()
            finally:
                await broker.aclose()
                self._state = "closed"
                self._started.set()  # shut down before the first step
                self._closed.set()
                self._finished.set()
                self.log.info("Scheduler stopped")

    async def _startup(self, broker: AsyncBroker, setup: Setup | None) -> None:
        try:
            await asyncio.wait_for(broker.ping(), STARTUP_TIMEOUT)
        except TimeoutError:
            raise BrokerError(
                f"cannot reach Redis at {broker}: no answer within {STARTUP_TIMEOUT} s"
            ) from None
        await _clocksync.start(self._clock, broker, self.log, "scheduler")
        if setup is not None:
            await setup()
        self.log.info("Scheduler starting")
        self.log.info("Scheduler timezone is set to %s", self.location)
        self._engine = Engine(
            self.id,
            table=self._table,
            broker=broker,
            config=self.config,
            clock=self._clock,
            log=self.log,
        )

    async def _loop_until_stopped(self, engine: Engine) -> None:
        assert self._wake is not None and self._stop is not None
        sync = self.config.clock_sync_interval
        every = None if sync is None else self.config.seconds("clock_sync_interval")
        clock = self._clock
        while not self._stop.is_set():
            self._wake.clear()
            if every is not None and isinstance(clock, RedisClock) and clock.due(every):
                await _clocksync.refresh(clock, engine.broker, self.log, 1.0)
            try:
                delay = await engine.step()
            except Exception as exc:  # a bug must not end the schedule
                self.log.error("Scheduler step failed: %r", exc)
                delay = MAX_SLEEP
            self._started.set()  # after the first step: entries have their next run
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, MAX_SLEEP))

    def _fail_start(self, exc: BaseException) -> None:
        self._start_error = exc
        self._state = "closed"
        self._started.set()
        self._finished.set()
        if self._closed is not None:
            self._closed.set()


from ._scheduler.manager import PeriodicTaskConfig, PeriodicTaskManager  # noqa: E402
