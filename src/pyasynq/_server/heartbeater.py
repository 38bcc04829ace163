"""Heartbeater: publishes the server and worker state and extends the leases of running
tasks (wire spec 3.13 and 3.19).

It runs on its own thread, with its own event loop and connection pool, so that a handler
that blocks the server's event loop (CPU-bound code in an ``async def``) or hogs the GIL in
a sync handler cannot stop the leases from being extended while the process is alive.
Leases are extended only up to the task's deadline: a handler that overruns it loses its
lease, and pyasynq's fenced writes keep a stale worker from overwriting the task later.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import TYPE_CHECKING

from pyasynq import _clocksync, _eventloop
from pyasynq._rdb.codec import ServerInfo, WorkerInfo
from pyasynq._rdb.ops import processing, state
from pyasynq.clock import RedisClock
from pyasynq.errors import BrokerError, RedisOutOfMemoryError

from .base import ActiveTask, Runtime

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker

_NS = 1_000_000_000


class Heartbeater:
    name = "heartbeater"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.interval = rt.config.seconds("heartbeat_interval")
        self.lease = rt.config.seconds("lease_duration")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0
        self._full = False  # the last state write was refused because Redis is full
        sync = rt.config.clock_sync_interval
        self._sync = None if sync is None else rt.config.seconds("clock_sync_interval")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="pyasynq-heartbeater", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop beating and clear the server state from Redis (the last shutdown step)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        _eventloop.run(self._loop(), self.rt.config.event_loop)

    async def _loop(self) -> None:
        broker = self.rt.broker.clone()
        try:
            while True:
                try:
                    await self.beat(broker)
                except Exception as exc:
                    self.rt.log.warn("heartbeater: %s", exc)
                # This loop serves only the heartbeater, so a blocking wait is fine here.
                if self._stop.wait(self.interval):
                    break
            try:
                ident = self.rt.identity
                ops = state.clear_server_state(ident.host, ident.pid, ident.server_id)
                state.check_replies(await broker.run_many(ops))
            except BrokerError as exc:
                self.rt.log.warn("heartbeater: could not clear server state: %s", exc)
        finally:
            await broker.aclose()
            # A redis-py client built on a given pool does not close that pool on
            # aclose(); the clone's pool is ours alone, so close its connections here.
            pool = getattr(broker.redis, "connection_pool", None)
            if pool is not None:
                await pool.disconnect()

    async def beat(self, broker: AsyncBroker) -> None:
        rt = self.rt
        clock = rt.clock
        if self._sync is not None and isinstance(clock, RedisClock) and clock.due(self._sync):
            await _clocksync.refresh(clock, broker, rt.log, self.lease)
        now = clock.now()
        tasks = rt.workers.snapshot()
        ident = rt.identity
        info = ServerInfo(
            host=ident.host,
            pid=ident.pid,
            server_id=ident.server_id,
            concurrency=rt.config.concurrency,
            queues=rt.config.positive_queues(),
            strict_priority=rt.config.strict_priority,
            status=rt.status,
            start_time_ns=int(rt.started_at * _NS),
            active_worker_count=len(tasks),
        )
        workers = [
            WorkerInfo(
                host=ident.host,
                pid=ident.pid,
                server_id=ident.server_id,
                task_id=t.msg.id,
                task_type=t.msg.type,
                task_payload=t.msg.payload,
                queue=t.msg.queue,
                start_time_ns=int(t.started * _NS),
                deadline_ns=int(t.deadline * _NS),
            )
            for t in tasks
        ]
        # Whole seconds (SETEX), never shorter than two intervals.
        ttl = max(1, math.ceil(2 * self.interval))
        try:
            state.check_replies(
                await broker.run_many(state.write_server_state(info, workers, now, ttl))
            )
        except RedisOutOfMemoryError as exc:  # once per episode, not every beat
            if not self._full:
                rt.log.warn(
                    "heartbeater: could not write the server state (not repeated while "
                    "Redis stays full; tasks are still processed): %s", exc,
                )  # fmt: skip
            self._full = True
        except BrokerError as exc:  # the leases matter more: extend them anyway
            rt.log.warn("heartbeater: could not write the server state: %s", exc)
        else:
            self._full = False
        await self.extend_leases(broker, tasks, now)
        self.beats += 1

    async def extend_leases(self, broker: AsyncBroker, tasks: list[ActiveTask], now: float) -> None:
        by_queue: dict[str, list[ActiveTask]] = defaultdict(list)
        for t in tasks:
            if now >= t.lease_until:
                # Too late: someone else may own it now. Tell the worker to give up.
                t.lease_lost.set()
                if t.waker is not None:
                    t.waker()
            elif now < t.deadline:
                by_queue[t.msg.queue].append(t)
        until = now + self.lease
        for q, group in by_queue.items():
            op = processing.extend_leases(q, [(t.msg.id, t.token) for t in group], until)
            try:
                extended = processing.extend_leases_result(await broker.run(op))
            except BrokerError as exc:  # one queue's failure must not cost the others
                self.rt.log.warn("heartbeater: could not extend leases in %s: %s", q, exc)
                continue
            self.rt.workers.extend(extended, until)
