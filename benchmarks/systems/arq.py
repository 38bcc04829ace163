"""arq: async jobs, ``max_jobs`` = C. The worker polls the queue every ``poll_delay``
(0.5 s by default), and keeps each job's result for an hour by default; both left as is."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import run_worker as arq_run_worker

from benchmarks import _driver, _rec


async def noop(ctx: dict[str, Any]) -> None:
    _rec.done()


async def sleep_1ms(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.001)
    _rec.done()


async def lat(ctx: dict[str, Any], i: int) -> None:
    _rec.started(i)


_NAMES = {"noop": "noop", "sleep": "sleep_1ms", "lat": "lat"}


class WorkerSettings:
    functions = [noop, sleep_1ms, lat]  # noqa: RUF012


async def connect(url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(url))


async def enqueue(pool: ArqRedis, kind: str, i: int) -> None:
    if kind == "lat":
        await pool.enqueue_job("lat", i)
    else:
        await pool.enqueue_job(_NAMES[kind])


async def enqueue_batch(pool: ArqRedis, kind: str, ids: list[int]) -> None:
    await _driver.gather_batch(enqueue, pool, kind, ids)


NO_BATCH_API = True  # enqueue_batch is asyncio.gather over enqueue_job


async def close(pool: ArqRedis) -> None:
    await pool.aclose()


def run_worker(url: str, concurrency: int) -> NoReturn:
    logging.basicConfig(level=logging.WARNING)
    arq_run_worker(
        WorkerSettings,
        redis_settings=RedisSettings.from_dsn(url),  # type: ignore[arg-type]
        max_jobs=concurrency,
    )
    raise SystemExit(0)
