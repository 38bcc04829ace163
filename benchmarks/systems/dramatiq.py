"""Dramatiq with its Redis broker, default middleware. One worker process (``--processes 1``
under dramatiq's own supervisor) with C threads; actors are sync, so the 1 ms task sleeps
in its thread."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks import _rec

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop() -> None:
    _rec.done()


@dramatiq.actor(actor_name="sleep_1ms")
def sleep_1ms() -> None:
    time.sleep(0.001)
    _rec.done()


@dramatiq.actor(actor_name="lat")
def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


def connect(url: str) -> RedisBroker:
    return broker


def enqueue(b: RedisBroker, kind: str, i: int) -> None:
    if kind == "lat":
        lat.send(i)
    else:
        _TASKS[kind].send()


def enqueue_batch(b: RedisBroker, kind: str, ids: list[int]) -> None:
    actor = _TASKS[kind]
    dramatiq.group(actor.message() for _ in ids).run()


def close(b: RedisBroker) -> None:
    b.close()


def run_worker(url: str, concurrency: int) -> NoReturn:
    exe = os.path.join(os.path.dirname(sys.executable), "dramatiq")
    os.environ["BENCH_REDIS_URL"] = url
    os.execv(
        exe, [exe, "benchmarks.systems.dramatiq", "--processes", "1", "--threads", str(concurrency)]
    )
