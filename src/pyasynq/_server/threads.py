"""Runs plain ``def`` handlers on worker threads.

A thread cannot be killed, so a sync handler that overruns its deadline is *abandoned*:
the processor stops waiting, fails the task and frees the concurrency slot, while the
thread runs on. The runner then starts a fresh thread for the next task instead of
waiting for the stuck one, so abandoned handlers never shrink the pool. Idle threads
beyond ``size`` exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class ThreadRunner:
    def __init__(self, size: int, name: str = "pyasynq-worker") -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._closed = False
        # What each thread runs now (the caller's context), for the shutdown report.
        self._running: dict[int, tuple[str, contextvars.Context]] = {}

    @property
    def threads(self) -> int:
        with self._lock:
            return self._threads

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on a worker thread, with the caller's contextvars."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        ctx = contextvars.copy_context()
        self._submit((fut, loop, ctx, fn, args))
        return await fut

    def _submit(self, job: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread runner is closed")
            self._jobs.put(job)
            if self._idle > 0:
                self._idle -= 1
                return
            self._threads += 1
        t = threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True)
        t.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            fut, loop, ctx, fn, args = job
            me = threading.get_ident()
            self._running[me] = (threading.current_thread().name, ctx)
            try:
                result, error = ctx.run(fn, *args), None
            except BaseException as exc:
                result, error = None, exc
            del self._running[me]
            # An abandoned handler may return after the server's loop closed: then nobody
            # waits for the result any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set, fut, result, error)
            with self._lock:
                if self._closed or self._idle >= self._size:
                    self._threads -= 1
                    return
                self._idle += 1

    def busy(self) -> list[tuple[str, contextvars.Context]]:
        """(thread name, the caller's context) for each thread running a function now."""
        return list(self._running.values())

    def close(self) -> None:
        """Let idle threads exit; busy (possibly abandoned) ones finish on their own."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
            self._threads -= idle
        for _ in range(idle):
            self._jobs.put(_STOP)


def _set(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the waiter gave up (deadline, cancel, shutdown)
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
