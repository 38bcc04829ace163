"""Huey (RedisHuey, blocking BRPOP reads). One consumer process with C worker threads;
tasks are sync, so the 1 ms task sleeps in its thread."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn

from huey import RedisHuey

from benchmarks import _rec

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@huey.task(name="noop")
def noop() -> None:
    _rec.done()


@huey.task(name="sleep_1ms")
def sleep_1ms() -> None:
    time.sleep(0.001)
    _rec.done()


@huey.task(name="lat")
def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


def connect(url: str) -> RedisHuey:
    return huey


def enqueue(h: RedisHuey, kind: str, i: int) -> None:
    if kind == "lat":
        lat(i)
    else:
        _TASKS[kind]()


def enqueue_batch(h: RedisHuey, kind: str, ids: list[int]) -> None:
    _TASKS[kind].map([() for _ in ids])


def close(h: RedisHuey) -> None:
    pass


def run_worker(url: str, concurrency: int) -> NoReturn:
    exe = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
    os.environ["BENCH_REDIS_URL"] = url
    os.execv(
        exe, [exe, "benchmarks.systems.huey.huey", "-w", str(concurrency), "-k", "thread", "-q"]
    )
