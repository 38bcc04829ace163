"""streaQ (Redis streams, coredis): async tasks, one worker process with ``concurrency`` = C;
``Worker.enqueue_many`` (one pipeline) as the batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, NoReturn

from streaq import Worker

from benchmarks import _rec

worker = Worker(
    redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "32")),
)


@worker.task
async def noop() -> None:
    _rec.done()


@worker.task
async def sleep_1ms() -> None:
    await asyncio.sleep(0.001)
    _rec.done()


@worker.task
async def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


async def connect(url: str) -> contextlib.AsyncExitStack:
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(worker)
    return stack


async def enqueue(stack: Any, kind: str, i: int) -> None:
    if kind == "lat":
        await lat.enqueue(i)
    else:
        await _TASKS[kind].enqueue()


async def enqueue_batch(stack: Any, kind: str, ids: list[int]) -> None:
    task = _TASKS[kind]
    await worker.enqueue_many([task.enqueue() for _ in ids])


async def close(stack: contextlib.AsyncExitStack) -> None:
    await stack.aclose()


def run_worker(url: str, concurrency: int) -> NoReturn:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("streaq").setLevel(logging.WARNING)
    if worker.concurrency != concurrency:  # the harness sets BENCH_CONCURRENCY
        raise SystemExit(f"BENCH_CONCURRENCY={worker.concurrency}, expected {concurrency}")
    worker.run_sync()
    raise SystemExit(0)
