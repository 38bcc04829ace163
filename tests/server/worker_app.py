"""Handlers that misbehave, run by real worker processes in test_worker_process.py
(``python -m pyasynq worker worker_app:mux --config worker_app:config``).

Handlers record what they did in Redis (``app:started``, ``app:done``: lists of task ids)
so the test can follow them from outside the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time

import redis

import pyasynq
from pyasynq.config import ServerConfig
from pyasynq.context import current_task

mux = pyasynq.ServeMux()


def _note(key: str) -> None:
    redis.Redis.from_url(os.environ["APP_REDIS_URL"]).rpush(key, current_task().id)


@mux.handler("fail:key")
def fail_key(task: pyasynq.Task) -> None:
    raise KeyError("missing")


@mux.handler("exit:async")
async def exit_async(task: pyasynq.Task) -> None:
    raise SystemExit(3)


@mux.handler("exit:sync")
def exit_sync(task: pyasynq.Task) -> None:
    raise KeyboardInterrupt


@mux.handler("ok")
def ok(task: pyasynq.Task) -> None:
    _note("app:done")


@mux.handler("stubborn")
async def stubborn(task: pyasynq.Task) -> None:
    """Swallows every cancellation and runs on."""
    _note("app:started")
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)


@mux.handler("thread:leak")
def thread_leak(task: pyasynq.Task) -> None:
    """Leaves a non-daemon thread behind that never ends by itself."""
    threading.Thread(target=time.sleep, args=(3600,), name="leaky-poller", daemon=False).start()
    _note("app:done")


@mux.handler("stuck:sync")
def stuck_sync(task: pyasynq.Task) -> None:
    _note("app:started")
    time.sleep(3600)


@mux.handler("to_thread:stuck")
async def to_thread_stuck(task: pyasynq.Task) -> None:
    """Waits on a thread of the loop's default executor, which are non-daemon."""
    _note("app:started")
    await asyncio.to_thread(time.sleep, 3600)


@mux.handler("blocks:loop")
async def blocks_loop(task: pyasynq.Task) -> None:
    """Blocking code in an async handler: nothing else runs on the loop meanwhile."""
    _note("app:started")
    time.sleep(3600)  # noqa: ASYNC251 - the mistake under test


@mux.handler("lent:incr")
async def lent_incr(task: pyasynq.Task) -> None:
    """One INCR on the client the worker lends to handlers."""
    await current_task().redis.incr("app:lent")


def later(retried: int, error: BaseException, task: pyasynq.Task) -> float:
    return 3600.0  # failed tasks wait in retry, where the test looks at them


config = ServerConfig(
    concurrency=4,
    heartbeat_interval=0.2,
    lease_duration=2,
    task_check_interval=0.05,
    delayed_task_check_interval=0.2,
    shutdown_timeout=1,
    retry_delay_func=later,
)
