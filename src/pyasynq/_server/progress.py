"""Progress: stores what handlers report with ``current_task().progress(...)``.

A handler may report as often as it likes, from ``async def`` code on the event loop or
from a ``def`` handler's thread; reporting never blocks. Reports are coalesced per task:
at most one write every ``MIN_GAP`` seconds, the latest value winning, and the last one is
always written (unless the task ended first). Each write is fenced by the task's attempt
token (``report_progress.lua``), so a worker that lost its lease cannot overwrite the
progress of the attempt that took over, and goes out with the processor's other task
writes (one pipelined round trip).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from pyasynq._rdb.ops import Op, processing, results
from pyasynq.errors import BrokerError

from .base import Runtime

MIN_GAP = 0.1  # seconds between two progress writes of one task (at most 10 a second)


class ProgressReporter:
    """Coalesces and writes progress reports (see the module docstring)."""

    def __init__(self, rt: Runtime, send: Callable[[Op], Awaitable[object]]) -> None:
        self.rt = rt
        self._send = send
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, str, float]] = {}  # guarded by _lock
        self._last: dict[str, float] = {}  # task id -> loop time of its last write
        self._writes: set[asyncio.Task[None]] = set()
        self._warned: set[str] = set()  # tasks whose failed write was logged (once each)

    def report(self, task_id: str, fraction: float, message: str) -> None:
        """Record a report from any thread; it is written within MIN_GAP seconds."""
        fraction, message = results.check_progress(fraction, message)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            armed = task_id in self._latest
            self._latest[task_id] = (fraction, message, self.rt.clock.now())
        if armed:
            return  # a write is already due: it takes the latest value
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._arm(task_id)
        else:
            loop.call_soon_threadsafe(self._arm, task_id)

    def _arm(self, task_id: str) -> None:
        assert self._loop is not None
        due = self._last.get(task_id, float("-inf")) + MIN_GAP
        if due <= self._loop.time():
            self._fire(task_id)
        else:
            self._loop.call_at(due, self._fire, task_id)

    def _fire(self, task_id: str) -> None:
        assert self._loop is not None
        with self._lock:
            value = self._latest.pop(task_id, None)
        active = self.rt.workers.get(task_id)
        if value is None or active is None:
            return  # the task ended: its outcome is what counts now
        now = self._loop.time()
        if len(self._last) > 1024:  # forget tasks that have not reported lately
            self._last = {k: t for k, t in self._last.items() if now - t < MIN_GAP}
        self._last[task_id] = now
        op = results.report_progress(
            active.msg.queue, task_id, active.token, results.encode_progress(*value)
        )
        t = self._loop.create_task(self._write(task_id, op))
        self._writes.add(t)
        t.add_done_callback(self._writes.discard)

    async def _write(self, task_id: str, op: Op) -> None:
        try:
            processing.check_write(await self._send(op))
        except processing.DEFINITIVE_ERRORS:
            pass  # the lease is gone or the task finished; the processor reports that
        except BrokerError as exc:
            if task_id in self._warned:
                return
            if len(self._warned) > 1024:
                self._warned.clear()
            self._warned.add(task_id)
            self.rt.log.warn(
                "task %s: progress not stored (Redis failed: %s); later reports of this "
                "task are tried again but not logged", task_id, exc,
            )  # fmt: skip
