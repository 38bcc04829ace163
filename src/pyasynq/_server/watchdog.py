"""The last resort of a shutdown: a handler that blocks the event loop itself.

An ``async def`` handler that runs blocking code (``time.sleep``, CPU work) holds the
loop, so the shutdown the signal asked for cannot even start. ``Server.run`` arms this
watchdog when SIGTERM/SIGINT arrives (the Python-level signal handler still runs while a
handler's Python code blocks the loop); when the server has not finished
``shutdown_timeout + GRACE`` seconds later, the watchdog's thread requeues the tasks still
active over a connection of its own (fenced by their attempt tokens, so a write the loop
makes meanwhile cannot be undone) and ends the process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from pyasynq._rdb.ops import processing
from pyasynq.connection import ClusterOptions, SentinelOptions

if TYPE_CHECKING:
    from .base import Runtime

GRACE = 5.0  # seconds after shutdown_timeout: the usual shutdown's writes and stops fit in it


class Watchdog:
    """Started with the server; :meth:`arm` (from a signal handler) starts the count,
    :meth:`cancel` ends the thread."""

    def __init__(self, target: Any, finished: threading.Event, exit_code: int = 1) -> None:
        self._target = target
        self._finished = finished
        self._exit_code = exit_code
        self._armed = threading.Event()
        self._cancelled = threading.Event()
        self._after = 0.0
        # Started ahead: a signal handler only sets an event, it starts no thread.
        self._thread = threading.Thread(target=self._main, name="pyasynq-watchdog", daemon=True)
        self._thread.start()
        self.rt: Runtime | None = None

    def arm(self, seconds: float) -> None:
        """Fire in ``seconds`` unless the server finished first; later calls change nothing."""
        if not self._armed.is_set():
            self._after = seconds
            self._armed.set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._armed.set()

    def _main(self) -> None:
        self._armed.wait()
        if self._cancelled.wait(self._after) or self._finished.is_set():
            return
        self._fire()

    def _fire(self) -> None:
        rt = self.rt
        if rt is None:
            return
        active = rt.workers.snapshot()
        tasks = ", ".join(f'{t.msg.id} (type "{t.msg.type}")' for t in active) or "none"
        waited = rt.config.seconds("shutdown_timeout") + GRACE
        rt.log.error(
            "shutdown has not finished %gs after the signal: the event loop is blocked (an "
            "async def handler running blocking code? run that in a def handler); "
            "requeueing the active tasks [%s] and exiting", waited, tasks,
        )  # fmt: skip
        self._requeue(rt, active)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self._exit_code)

    def _requeue(self, rt: Runtime, active: list[Any]) -> None:
        if not active:
            return
        from pyasynq._sync.broker import Broker

        if not isinstance(self._target, str | SentinelOptions | ClusterOptions):
            rt.log.error(
                "watchdog: the server was given a client object, which cannot be used from "
                "this thread; the tasks return to the queue when their leases expire"
            )
            return
        try:
            broker = Broker(self._target)
        except Exception as exc:
            rt.log.error(
                "watchdog: cannot connect to requeue (%s); the tasks return to the queue "
                "when their leases expire", exc,
            )  # fmt: skip
            return
        try:
            for t in active:
                try:
                    processing.check_write(broker.run(processing.requeue(t.msg, t.token)))
                except Exception as exc:
                    rt.log.warn("watchdog: task %s not requeued: %s", t.msg.id, exc)
        finally:
            broker.close()
