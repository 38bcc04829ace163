"""Handlers for the end-to-end tests, run by real worker processes
(``python -m pyasynq worker e2e_app:mux --config e2e_app:config``).

Each run is recorded in Redis so the test can count runs per task and trace every
duplicate to a worker process that was killed: ``e2e:starts`` is a list of
``<task id> <pid>`` entries written when a handler starts.
"""

from __future__ import annotations

import asyncio
import os
import random

import redis.asyncio as aioredis

import pyasynq
from pyasynq.config import ServerConfig
from pyasynq.context import current_task

_redis: aioredis.Redis | None = None


def _conn() -> aioredis.Redis:
    global _redis  # noqa: PLW0603 - one connection per worker process
    if _redis is None:
        _redis = aioredis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    return _redis


mux = pyasynq.ServeMux()


@mux.handler("e2e:work")
async def work(task: pyasynq.Task) -> None:
    tid = current_task().id
    await _conn().rpush("e2e:starts", f"{tid} {os.getpid()}")
    # A little work, so that kills land on tasks in flight.
    await asyncio.sleep(random.uniform(0, 0.004))


def no_delay(retried: int, error: BaseException, task: pyasynq.Task) -> float:
    return 0.0


config = ServerConfig(
    concurrency=int(os.environ.get("E2E_CONCURRENCY", "20")),
    heartbeat_interval=0.3,
    lease_duration=1.5,
    recoverer_interval=0.5,
    delayed_task_check_interval=0.2,
    task_check_interval=0.1,
    shutdown_timeout=2,
    retry_delay_func=no_delay,
    max_crash_recoveries=1000,
)


@mux.handler("e2e:cpu")
def burn_cpu(task: pyasynq.Task) -> None:
    """A sync handler that holds the CPU (and the GIL, in bursts) for the given seconds."""
    import time

    r = __import__("redis").Redis.from_url(os.environ["E2E_REDIS_URL"])
    r.rpush("e2e:cpu-starts", f"{current_task().id} {os.getpid()}")
    end = time.monotonic() + float(task.payload or b"0")
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(2000))
    r.rpush("e2e:cpu-done", current_task().id)
