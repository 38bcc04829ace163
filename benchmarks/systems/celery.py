"""Celery with its Redis broker (kombu), no result backend. One worker process with the
threads pool of C threads; gossip, mingle and heartbeat off (the usual advice for speed)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn

import celery

from benchmarks import _rec

app = celery.Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


@app.task(name="bench.noop")
def noop() -> None:
    _rec.done()


@app.task(name="bench.sleep")
def sleep_1ms() -> None:
    time.sleep(0.001)  # Celery tasks are sync: a thread of the pool sleeps
    _rec.done()


@app.task(name="bench.lat")
def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


def connect(url: str) -> celery.Celery:
    app.conf.broker_url = url
    return app


def enqueue(client: celery.Celery, kind: str, i: int) -> None:
    if kind == "lat":
        lat.delay(i)
    else:
        _TASKS[kind].delay()


def enqueue_batch(client: celery.Celery, kind: str, ids: list[int]) -> None:
    sig = _TASKS[kind]
    celery.group(sig.si() for _ in ids).apply_async()


def close(client: celery.Celery) -> None:
    client.close()


def run_worker(url: str, concurrency: int) -> NoReturn:
    exe = os.path.join(os.path.dirname(sys.executable), "celery")
    os.execv(
        exe,
        [
            exe,
            "-A",
            "benchmarks.systems.celery:app",
            "-b",
            url,
            "worker",
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
    )
