"""The running part of a Scheduler: fires due entries, writes heartbeats, cleans up.

It lives on one event loop and is driven by :meth:`Engine.step`, which does what is due
at the clock's "now" and says how long until something is due again; the Scheduler's
loop sleeps that long (or until woken by register/unregister/shutdown). Tests drive
``step`` directly with a fake clock.

Each due tick runs as its own asyncio task (robfig/cron runs each job in a goroutine),
so a slow enqueue or hook does not delay the other entries.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from pyasynq._rdb.codec import SchedulerEnqueueEvent
from pyasynq._rdb.ops import Op, scheduler, state
from pyasynq._rdb.ops.enqueue import prepare, wake
from pyasynq.clock import Clock
from pyasynq.errors import BrokerError, TaskIDConflictError
from pyasynq.log import Logger
from pyasynq.options import Options
from pyasynq.task import TaskInfo, TaskState

from .config import SchedulerConfig
from .entries import Entry, tick_task_id

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker

__all__ = ["Engine", "EntryTable"]

_NS = 1_000_000_000
ENQUEUE_ATTEMPTS = 3  # a tick is retried on a Redis error; the marker keeps it single
CLOSE_TIMEOUT = 10.0  # seconds to let running enqueues finish at shutdown


class EntryTable:
    """The registered entries, shared by the caller's threads and the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._removed: list[Entry] = []

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.id] = entry

    def remove(self, entry_id: str) -> Entry:
        with self._lock:
            entry = self._entries.pop(entry_id)
            self._removed.append(entry)
            return entry

    def snapshot(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def take_removed(self) -> list[Entry]:
        with self._lock:
            out, self._removed = self._removed, []
            return out

    def __contains__(self, entry_id: object) -> bool:
        with self._lock:
            return entry_id in self._entries


class Engine:
    def __init__(
        self,
        scheduler_id: str,
        *,
        table: EntryTable,
        broker: AsyncBroker,
        config: SchedulerConfig,
        clock: Clock,
        log: Logger,
    ) -> None:
        self.id = scheduler_id
        self.table = table
        self.broker = broker
        self.config = config
        self.clock = clock
        self.log = log
        self.location: tzinfo = config.tz()
        self.heartbeat = config.seconds("heartbeat_interval")
        self.entries_ttl = config.entries_ttl()
        self.marker_ttl = max(1, int(config.seconds("tick_marker_ttl")))
        # The @every anchor outlives a restart of every scheduler by a little.
        self.anchor_ttl = max(60, 3 * self.entries_ttl)
        self.next_beat_ns: int | None = None  # None: beat at the next step
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat_task: asyncio.Task[None] | None = None

    # -- one step ---------------------------------------------------------------------

    async def step(self) -> float:
        """Do what is due now; return the seconds until something is due again."""
        await self._drop_removed()
        entries = self.table.snapshot()
        await self._activate([e for e in entries if not e.active])
        now_ns = self.clock.now_ns()
        for e in entries:
            due = e.active and e.next_s is not None and e.next_s * _NS <= now_ns
            if due and e.id in self.table:  # not unregistered meanwhile
                self._fire_due(e, now_ns)
        if self.next_beat_ns is None or now_ns >= self.next_beat_ns:
            self.next_beat_ns = now_ns + int(self.heartbeat * _NS)
            if self._beat_task is None or self._beat_task.done():
                self._beat_task = self._spawn(self.beat(now_ns))
        upcoming = [self.next_beat_ns]
        upcoming += [e.next_s * _NS for e in entries if e.active and e.next_s is not None]
        return max(0.0, (min(upcoming) - now_ns) / _NS)

    def _fire_due(self, e: Entry, now_ns: int) -> None:
        fire = e.next_s
        assert fire is not None
        e.next_s = e.next_after(now_ns, self.location)
        late = now_ns / _NS - fire
        if late >= self.marker_ttl:
            # Past the marker's life another scheduler's enqueue is no longer visible.
            self.log.warn(
                "Scheduler entry %s: skipping the tick at %d, reached %.0f s late (more "
                "than tick_marker_ttl); another scheduler may have enqueued it",
                e.id,
                fire,
                late,
            )
            return
        e.prev_s = fire
        self._spawn(self.fire(e, fire))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _activate(self, entries: list[Entry]) -> None:
        """Schedule newly registered entries: first fire after now (robfig), @every ones
        on the interval grid shared with the other schedulers of the entry."""
        if not entries:
            return
        now_ns = self.clock.now_ns()
        every = [e for e in entries if e.every]
        for e in every:
            e.anchor = now_ns // _NS  # robfig: start rounded down to the second
        if every:
            await self._sync_anchors(every)
        for e in entries:
            e.next_s = e.next_after(now_ns, self.location)
            e.active = True

    async def _sync_anchors(self, entries: list[Entry]) -> list[Entry]:
        """Propose each entry's anchor and adopt the one Redis holds. Returns the entries
        whose anchor changed."""
        ops: list[Op] = []
        for e in entries:
            assert e.anchor is not None
            ops += scheduler.every_anchor(e.queue, e.identity, e.anchor, self.anchor_ttl)
        try:
            replies = await self.broker.run_many(ops)
        except BrokerError as exc:
            self.log.warn("Scheduler could not share @every anchors: %s", exc)
            return []
        changed = []
        for i, e in enumerate(entries):
            try:
                anchor = scheduler.every_anchor_result(replies[3 * i : 3 * i + 3])
            except BrokerError as exc:
                self.log.warn("Scheduler could not share the anchor of entry %s: %s", e.id, exc)
                continue
            if anchor != e.anchor:
                e.anchor = anchor
                changed.append(e)
        return changed

    async def _drop_removed(self) -> None:
        removed = self.table.take_removed()
        if removed:
            # Go keeps an unregistered entry's history until shutdown, when it no longer
            # knows the entry; deleting it now keeps it from staying forever.
            await self._run_logged(
                [state.delete_scheduler_history(e.id) for e in removed],
                "Could not clear scheduler history",
            )

    # -- firing -----------------------------------------------------------------------

    async def fire(self, e: Entry, fire: int) -> None:
        """Enqueue tick ``fire`` (Unix s) of ``e`` unless another scheduler did; then the
        hooks and the history, as Go's enqueue job does."""
        cfg = self.config
        await self._hook("pre_enqueue", cfg.pre_enqueue, e.task, e.options)
        opts = e.options
        if not e.explicit_task_id:
            opts = opts.merged(Options(task_id=tick_task_id(e.identity, fire)))
        info: TaskInfo | None = None
        error: BaseException | None = None
        try:
            info = await self._enqueue(e, fire, opts)
            if info is None:
                self.log.debug(
                    "Scheduler entry %s: the tick at %d was enqueued by another scheduler",
                    e.id,
                    fire,
                )
                return
        except TaskIDConflictError as exc:
            if not e.explicit_task_id:  # the tick's own id: another scheduler has it
                self.log.debug("Scheduler entry %s: the tick at %d exists already", e.id, fire)
                return
            error = exc
        except Exception as exc:
            error = exc
        await self._hook("post_enqueue", cfg.post_enqueue, info, error)
        if error is not None:
            self.log.warn("Scheduler could not enqueue %s (entry %s): %s", e.task, e.id, error)
            await self._hook(
                "enqueue_error_handler", cfg.enqueue_error_handler, e.task, e.options, error
            )
            return
        assert info is not None
        self.log.debug(
            "Scheduler enqueued a task: id=%s type=%s queue=%s", info.id, info.type, info.queue
        )
        event = SchedulerEnqueueEvent(task_id=info.id, enqueue_time_ns=self.clock.now_ns())
        try:
            await self.broker.run(state.record_scheduler_enqueue_event(e.id, event))
        except BrokerError as exc:
            self.log.warn(
                "Scheduler could not record enqueue event of enqueued task %s: %s", info.id, exc
            )

    async def _wake(self, queue: str) -> None:
        """Start the tick's task on idle pyasynq workers now, not at their next poll;
        best effort (they poll anyway)."""
        try:
            await self.broker.run(wake(queue))
        except BrokerError as exc:
            self.log.debug("Scheduler could not wake the workers of queue %r: %s", queue, exc)

    async def _enqueue(self, e: Entry, fire: int, opts: Options) -> TaskInfo | None:
        """The TaskInfo when this call stored the task, None when the tick was handled
        elsewhere. A Redis failure is retried: the marker makes a retry safe."""
        for attempt in range(1, ENQUEUE_ATTEMPTS + 1):
            p = prepare(e.task, opts, self.clock.now_ns())
            call = scheduler.scheduler_enqueue(
                p.call,
                queue=p.info.queue,
                entry_key=e.identity,
                fire_time=fire,
                marker_ttl=self.marker_ttl,
            )
            try:
                registered, reply = await self.broker.run_many([p.register_queue, call])
            except BrokerError:
                if attempt == ENQUEUE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * attempt)
                continue
            if isinstance(reply, BrokerError) and attempt < ENQUEUE_ATTEMPTS:
                await asyncio.sleep(0.5 * attempt)
                continue
            if not scheduler.scheduler_enqueue_result(reply):
                return None
            if p.info.state is TaskState.PENDING:
                await self._wake(p.info.queue)
            if isinstance(registered, BrokerError):
                self.log.warn(
                    "Task %s was stored, but registering queue %r in asynq:queues failed: %s",
                    p.info.id,
                    p.info.queue,
                    registered,
                )
            return p.info
        raise AssertionError("unreachable")

    async def _hook(self, name: str, fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self.log.error("Scheduler %s hook failed: %r", name, exc)

    # -- heartbeat and shutdown -------------------------------------------------------

    async def beat(self, now_ns: int | None = None) -> None:
        """Write the entries for ``asynq cron ls`` and refresh the @every anchors."""
        if now_ns is None:
            now_ns = self.clock.now_ns()
        active = [e for e in self.table.snapshot() if e.active]
        # robfig lists entries by next run (never-running ones last); LPUSH reverses that.
        active.sort(key=lambda e: (e.next_s is None, e.next_s or 0))
        wire = [e.to_wire() for e in active]
        ops = state.write_scheduler_entries(self.id, wire, now_ns / _NS, self.entries_ttl)
        await self._run_logged(ops, "Scheduler could not write heartbeat data")
        every = [e for e in active if e.every]
        if every:
            # Another scheduler's anchor won (e.g. after Redis lost the key): follow it.
            for e in await self._sync_anchors(every):
                e.next_s = e.next_after(self.clock.now_ns(), self.location)

    async def drain(self) -> None:
        """Wait for the enqueues and the heartbeat started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Let running enqueues finish, then remove the entries and their history."""
        running = [t for t in self._tasks if t is not self._beat_task]
        if self._beat_task is not None:
            self._beat_task.cancel()
        if running:
            _, pending = await asyncio.wait(running, timeout=CLOSE_TIMEOUT)
            for t in pending:
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ops: list[Op] = list(state.clear_scheduler_entries(self.id))
        entries = self.table.snapshot() + self.table.take_removed()
        ops += [state.delete_scheduler_history(e.id) for e in entries]
        await self._run_logged(ops, "Scheduler could not clear its state")

    async def _run_logged(self, ops: list[Op], what: str) -> None:
        try:
            replies = await self.broker.run_many(ops)
            state.check_replies(replies)
        except BrokerError as exc:
            self.log.warn("%s: %s", what, exc)
