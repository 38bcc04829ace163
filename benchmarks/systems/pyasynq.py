"""pyasynq: sync Client.enqueue / enqueue_many; workers are ``python -m pyasynq worker``."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

import redis.asyncio

import pyasynq
from benchmarks import _rec
from benchmarks._driver import burn

mux = pyasynq.ServeMux()


@mux.handler("bench:noop")
async def noop(task: pyasynq.Task) -> None:
    _rec.done()


@mux.handler("bench:sleep")
async def sleep_1ms(task: pyasynq.Task) -> None:
    await asyncio.sleep(0.001)
    _rec.done()


# The "Redis I/O" drain: one round trip per task on a client the benchmark owns (made in
# the worker's loop at the first task; its pool grows to the concurrency).
_io: list[redis.asyncio.Redis] = []


@mux.handler("bench:io")
async def io(task: pyasynq.Task) -> None:
    if not _io:
        _io.append(redis.asyncio.Redis.from_url(os.environ["BENCH_IO_URL"]))
    await _io[0].incr("bench:io")
    _rec.done()


# The same round trip on the client the worker lends to handlers (docs/handlers.md).
@mux.handler("bench:io-lent")
async def io_lent(task: pyasynq.Task) -> None:
    await pyasynq.current_task().redis.incr("bench:io")
    _rec.done()


@mux.handler("bench:lat")
async def lat(task: pyasynq.Task) -> None:
    _rec.started(int(task.payload or b"0"))


# benchmarks/scale.py: tasks that stay in flight, and a CPU-bound handler
HOLD_SECONDS = float(os.environ.get("BENCH_HOLD_SECONDS", "0.5"))
CPU_LOOPS = int(os.environ.get("BENCH_CPU_LOOPS", "0"))


@mux.handler("bench:hold")
async def hold(task: pyasynq.Task) -> None:
    await asyncio.sleep(HOLD_SECONDS)
    _rec.done()


@mux.handler("bench:cpu")
def cpu(task: pyasynq.Task) -> None:
    # sync: pyasynq runs it on a worker thread, which holds the GIL while it burns
    burn(CPU_LOOPS)
    _rec.done()


def connect(url: str) -> pyasynq.Client:
    return pyasynq.Client(url)


def enqueue(client: pyasynq.Client, kind: str, i: int) -> None:
    client.enqueue(pyasynq.Task(f"bench:{kind}", b"%d" % i if kind == "lat" else b""))


def enqueue_batch(client: pyasynq.Client, kind: str, ids: list[int]) -> None:
    for result in client.enqueue_many([pyasynq.Task(f"bench:{kind}", b"") for _ in ids]):
        if result.error is not None:
            raise result.error


def close(client: pyasynq.Client) -> None:
    client.close()


def run_worker(url: str, concurrency: int, *extra: str) -> NoReturn:
    argv = [
        sys.executable,
        "-m",
        "pyasynq",
        "--redis-url",
        url,
        "worker",
        "benchmarks.systems.pyasynq:mux",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warn",
        *extra,
    ]
    os.environ["BENCH_IO_URL"] = url  # for the bench:io handler, in the worker process
    if os.environ.get("BENCH_PYASYNQ_PROCESSES"):  # benchmarks/scale.py: the supervisor
        argv += ["--processes", os.environ["BENCH_PYASYNQ_PROCESSES"]]
    os.execv(sys.executable, argv)
