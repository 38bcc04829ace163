"""taskiq with taskiq-redis' RedisStreamBroker (streams + consumer group, acknowledged
after the task: taskiq-redis' reliable broker). One worker process (``--workers 1``)
with ``--max-async-tasks`` C."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, NoReturn

from taskiq_redis import RedisStreamBroker

from benchmarks import _driver, _rec

broker = RedisStreamBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@broker.task(task_name="noop")
async def noop() -> None:
    _rec.done()


@broker.task(task_name="sleep_1ms")
async def sleep_1ms() -> None:
    await asyncio.sleep(0.001)
    _rec.done()


@broker.task(task_name="lat")
async def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


async def connect(url: str) -> RedisStreamBroker:
    await broker.startup()
    return broker


async def enqueue(b: RedisStreamBroker, kind: str, i: int) -> None:
    if kind == "lat":
        await lat.kiq(i)
    else:
        await _TASKS[kind].kiq()


async def enqueue_batch(b: RedisStreamBroker, kind: str, ids: list[int]) -> None:
    await _driver.gather_batch(enqueue, b, kind, ids)


NO_BATCH_API = True  # enqueue_batch is asyncio.gather over kiq()


async def close(b: RedisStreamBroker) -> None:
    await b.shutdown()


def run_worker(url: str, concurrency: int) -> NoReturn:
    exe = os.path.join(os.path.dirname(sys.executable), "taskiq")
    os.environ["BENCH_REDIS_URL"] = url
    os.execv(
        exe,
        [
            exe,
            "worker",
            "benchmarks.systems.taskiq:broker",
            "--workers",
            "1",
            "--max-async-tasks",
            str(concurrency),
            "--log-level",
            "WARNING",
        ],
    )
