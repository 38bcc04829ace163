"""pyasynq: sync Client.enqueue / enqueue_many; workers are ``python -m pyasynq worker``."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

import pyasynq
from benchmarks import _rec

mux = pyasynq.ServeMux()


@mux.handler("bench:noop")
async def noop(task: pyasynq.Task) -> None:
    _rec.done()


@mux.handler("bench:sleep")
async def sleep_1ms(task: pyasynq.Task) -> None:
    await asyncio.sleep(0.001)
    _rec.done()


@mux.handler("bench:lat")
async def lat(task: pyasynq.Task) -> None:
    _rec.started(int(task.payload or b"0"))


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


def run_worker(url: str, concurrency: int) -> NoReturn:
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
    ]
    os.execv(sys.executable, argv)
