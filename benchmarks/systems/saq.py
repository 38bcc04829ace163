"""SAQ (Redis queue): async jobs, one worker process with ``concurrency`` = C."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn

from saq import Queue, Worker

from benchmarks import _driver, _rec


async def noop(ctx: Any) -> None:
    _rec.done()


async def sleep_1ms(ctx: Any) -> None:
    await asyncio.sleep(0.001)
    _rec.done()


async def lat(ctx: Any, *, i: int) -> None:
    _rec.started(i)


_NAMES = {"noop": "noop", "sleep": "sleep_1ms", "lat": "lat"}


async def connect(url: str) -> Queue:
    q = Queue.from_url(url)
    await q.connect()
    return q


async def enqueue(q: Queue, kind: str, i: int) -> None:
    if kind == "lat":
        await q.enqueue("lat", i=i)
    else:
        await q.enqueue(_NAMES[kind])


async def enqueue_batch(q: Queue, kind: str, ids: list[int]) -> None:
    await _driver.gather_batch(enqueue, q, kind, ids)


NO_BATCH_API = True  # enqueue_batch is asyncio.gather over Queue.enqueue


async def close(q: Queue) -> None:
    await q.disconnect()


def run_worker(url: str, concurrency: int) -> NoReturn:
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        q = Queue.from_url(url)
        worker = Worker(q, functions=[noop, sleep_1ms, lat], concurrency=concurrency)
        try:
            await q.connect()
            await worker.start()
        finally:
            await q.disconnect()

    asyncio.run(main())
    raise SystemExit(0)
