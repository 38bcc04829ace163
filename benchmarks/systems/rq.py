"""RQ with SimpleWorker (runs jobs in the worker process; the default Worker forks per
job). RQ runs one job at a time per process: its concurrency is the number of processes."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn

from redis import Redis
from rq import Queue

from benchmarks import _rec


def noop() -> None:
    _rec.done()


def sleep_1ms() -> None:
    time.sleep(0.001)
    _rec.done()


def lat(i: int) -> None:
    _rec.started(i)


_TASKS: dict[str, Any] = {"noop": noop, "sleep": sleep_1ms, "lat": lat}


def connect(url: str) -> Queue:
    return Queue("default", connection=Redis.from_url(url))


def enqueue(q: Queue, kind: str, i: int) -> None:
    if kind == "lat":
        q.enqueue(lat, i)
    else:
        q.enqueue(_TASKS[kind])


def enqueue_batch(q: Queue, kind: str, ids: list[int]) -> None:
    fn = _TASKS[kind]
    q.enqueue_many([Queue.prepare_data(fn) for _ in ids])  # one pipeline


def close(q: Queue) -> None:
    q.connection.close()


def run_worker(url: str, concurrency: int) -> NoReturn:
    exe = os.path.join(os.path.dirname(sys.executable), "rq")
    os.execv(
        exe,
        [
            exe,
            "worker",
            "--url",
            url,
            "-w",
            "rq.worker.SimpleWorker",
            "--logging_level",
            "WARNING",
            "--disable-job-desc-logging",
            "default",
        ],
    )
