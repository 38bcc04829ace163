"""Issue 17 item 3, measured with real worker processes: four `pyasynq worker` processes of
concurrency 50 share a cap of 5 on ``email:send``. The handlers count themselves in Redis
while they run; the most ever seen at once must not pass the cap (a correctness property,
sampled at every start), and every task runs once. The throughput figures are in
benchmarks/limits.py (``make bench-limits``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from targets import sync_client

from pyasynq import Client, Task
from pyasynq._rdb import keys

from .limits_app import DONE, MOST
from .support import wait_for

HERE = Path(__file__).parent
PROCESSES, CONCURRENCY, CAP, TASKS = 4, 50, 5, 150


def worker(redis_url: str, log: Path, cap: int = CAP) -> subprocess.Popen[bytes]:
    env = {**os.environ, "APP_REDIS_URL": redis_url, "PYTHONPATH": str(HERE),
           "APP_CONCURRENCY": str(CONCURRENCY), "APP_CAP": str(cap)}  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "worker",
             "limits_app:mux", "--config", "limits_app:config", "--log-level", "warn"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
def fleet(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [worker(redis_url, tmp_path / f"worker{i}.log") for i in range(PROCESSES)]
    try:
        wait_for(lambda: r.zcard(keys.ALL_SERVERS) == PROCESSES, timeout=30,
                 what="the workers to start")  # fmt: skip
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for i in range(PROCESSES):
            log = (tmp_path / f"worker{i}.log").read_text(errors="replace")
            assert "ERROR" not in log and "Traceback" not in log, log


def test_four_workers_of_concurrency_50_never_run_more_than_the_cap(
    fleet: list[subprocess.Popen[bytes]], redis_url: str, r: redis.Redis
) -> None:
    meter = sync_client(redis_url)
    try:
        with Client(redis_url) as client:
            for i in range(TASKS):
                client.enqueue(Task("email:send", b"%d" % i))
        wait_for(lambda: int(meter.get(DONE) or 0) >= TASKS, timeout=60,
                 what="every task to run")  # fmt: skip
        most = int(meter.get(MOST) or 0)
        assert most <= CAP, f"{most} email:send ran at once, above the cap of {CAP}"
        assert most >= 2, "the cap was never shared: the fleet ran one task at a time"
        assert int(meter.get(DONE) or 0) == TASKS  # each once
        wait_for(lambda: r.zcard(keys.limit_key("default", "email:send", "running")) == 0,
                 timeout=10, what="every slot to be given back")  # fmt: skip
        assert r.zcard(keys.limit_key("default", "email:send", "waiting")) == 0
        assert r.zcard(keys.scheduled_key("default")) == 0
    finally:
        meter.close()


def test_a_killed_workers_slot_frees_when_its_lease_expires(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Cap 1: worker A holds the slot with a long task and is SIGKILLed; worker B starts
    the waiting tasks once A's lease has expired (lease 2 s, plus as long again)."""
    meter = sync_client(redis_url)
    a = worker(redis_url, tmp_path / "a.log", cap=1)
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: r.zcard(keys.ALL_SERVERS) == 1, timeout=30, what="worker A to start")
        with Client(redis_url) as client:
            client.enqueue(Task("email:send", b"slow"))
            wait_for(lambda: int(meter.get(MOST) or 0) == 1, timeout=20, what="A to hold the slot")
            for i in range(3):
                client.enqueue(Task("email:send", b"%d" % i))
        waiting = keys.limit_key("default", "email:send", "waiting")
        wait_for(lambda: r.zcard(waiting) == 3, timeout=20, what="three tasks to wait")
        a.kill()
        a.wait(10)
        b = worker(redis_url, tmp_path / "b.log", cap=1)
        wait_for(lambda: int(meter.get(DONE) or 0) == 3, timeout=60,
                 what="B to run the waiting tasks after A's lease expired")  # fmt: skip
        assert r.zcard(waiting) == 0
    finally:
        meter.close()
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
