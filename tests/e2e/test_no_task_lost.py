"""No task is lost when workers die: real worker processes under a supervisor
(``pyasynq worker --processes``) are SIGKILLed again and again while they drain 10,000
tasks. Every task must complete, and every task that ran more than once must have been
running in a process that was killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys

HERE = Path(__file__).parent
N_TASKS = 10_000


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def _start_supervisor(redis_url: str, processes: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "E2E_REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "worker", "e2e_app:mux",
         "--config", "e2e_app:config", "--processes", str(processes), "--log-level", "error"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_children(sup: subprocess.Popen[bytes], n: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(sup.pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"supervisor did not start {n} workers")


def _remaining(r: redis.Redis) -> int:
    q = "default"
    return (
        r.llen(keys.pending_key(q))
        + r.llen(keys.active_key(q))
        + r.zcard(keys.retry_key(q))
        + r.zcard(keys.scheduled_key(q))
    )


def test_sigkilled_workers_lose_no_task(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as client:
        batch = [pyasynq.Task("e2e:work", str(i).encode(), max_retry=1000) for i in range(N_TASKS)]
        for start in range(0, N_TASKS, 1000):
            results = client.enqueue_many(batch[start : start + 1000])
            assert all(res.error is None for res in results)
    ids = {k.decode().rsplit(":", 1)[1] for k in r.scan_iter(match="asynq:{default}:t:*")}
    assert len(ids) == N_TASKS

    sup = _start_supervisor(redis_url, processes=3)
    killed: set[int] = set()
    rng = random.Random(7)
    try:
        _wait_children(sup, 3)
        deadline = time.monotonic() + 240
        kills = 0
        while time.monotonic() < deadline:
            left = _remaining(r)
            if left == 0:
                break
            # Kill while there is work in flight, a dozen times, spread over the run.
            if kills < 12 and r.llen(keys.active_key("default")) > 0:
                victims = _children(sup.pid)
                if victims:
                    pid = rng.choice(victims)
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                    kills += 1
            time.sleep(rng.uniform(0.15, 0.4))
        else:
            pytest.fail(f"tasks left after the deadline: {_remaining(r)}")
        assert kills >= 5, "the run ended before enough workers were killed"
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(30)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
        for pid in _children(sup.pid):
            os.kill(pid, signal.SIGKILL)

    # Every task ran and was acknowledged: no hash, nothing archived, all counted.
    assert not list(r.scan_iter(match="asynq:{default}:t:*", count=1000))
    assert r.zcard(keys.archived_key("default")) == 0
    starts: dict[str, list[int]] = defaultdict(list)
    for entry in r.lrange("e2e:starts", 0, -1):
        tid, pid = entry.decode().split()
        starts[tid].append(int(pid))
    assert set(starts) == ids, "some tasks never ran"
    duplicates = {tid: pids for tid, pids in starts.items() if len(pids) > 1}
    for tid, pids in duplicates.items():
        # Every run but the last was cut short by a kill.
        assert set(pids[:-1]) <= killed, f"task {tid} ran twice without a kill: {pids}"
    print(
        f"\n{N_TASKS} tasks, {len(killed)} workers SIGKILLed, {len(duplicates)} tasks re-run "
        f"(all in flight at a kill), 0 lost"
    )
