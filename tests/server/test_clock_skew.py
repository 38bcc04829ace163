"""Workers whose clocks are off keep Redis's time (issue 19): beside an on-time worker,
one 300 s ahead and one 300 s behind (libfaketime) run no task twice and start no task
scheduled with ``process_in`` before its time by Redis's clock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pyasynq import Client, Task
from pyasynq._rdb import keys

from .support import wait_for

pytestmark = pytest.mark.single_node("real worker processes under libfaketime")

HERE = Path(__file__).parent
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
TASKS = 60
LATER = 3.0  # process_in of the scheduled tasks, seconds


def _skewed(offset: int) -> list[str]:
    if offset == 0:
        return []
    # env(1) execs, so the worker is the process we signal; monotonic time stays true.
    # FORCE_MONOTONIC_FIX=0: libfaketime's default "fix" of pthread_cond_timedwait delays
    # the GIL's handoff by up to a second under load (see chaos/scenarios.py clock_skew).
    return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={offset:+d}s",
            "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_FORCE_MONOTONIC_FIX=0"]  # fmt: skip


@pytest.fixture
def workers(redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[dict[int, Path]]:
    if LIBFAKETIME is None:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime)")
    env = {**os.environ, "APP_REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[int, Path] = {}
    for offset in (300, -300, 0):
        logs[offset] = tmp_path / f"worker{offset:+d}.log"
        with logs[offset].open("wb") as out:
            procs.append(subprocess.Popen(
                [*_skewed(offset), sys.executable, "-m", "pyasynq", "--redis-url", redis_url,
                 "worker", "skew_app:mux", "--config", "skew_app:config"],
                cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    try:
        # Read the records raw: on old code a worker behind writes ones that look expired.
        wait_for(lambda: r.zcard(keys.ALL_SERVERS) == 3 or any(p.poll() is not None for p in procs),
                 timeout=30, what="three workers to start")  # fmt: skip
        assert all(p.poll() is None for p in procs), [p.read_text() for p in logs.values()]
        yield logs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _redis_now(r: redis.Redis) -> float:
    sec, usec = r.time()
    return float(sec) + usec / 1e6


def test_skewed_workers_run_nothing_twice_and_nothing_early(
    workers: dict[int, Path], redis_url: str, r: redis.Redis
) -> None:
    before = _redis_now(r)
    with Client(redis_url) as c:
        for i in range(5):
            c.enqueue(Task("skew"), task_id=f"later{i}", process_in=LATER)
        for i in range(TASKS):
            c.enqueue(Task("skew"), task_id=f"now{i}")
    want = TASKS + 5

    def finished() -> bool:
        return r.llen("skew:runs") >= want and not r.llen(keys.active_key("default"))

    wait_for(finished, timeout=60, what=f"{want} runs and no active task")
    # Let the skewed workers' recoverers look at leases for a few more rounds: a lease
    # judged by a clock 300 s off would be taken now (recoverer_interval is 0.2 s).
    started = _redis_now(r)
    wait_for(lambda: _redis_now(r) - started > 1.0, timeout=5, what="a second of Redis time")
    runs = [line.decode().split() for line in r.lrange("skew:runs", 0, -1)]
    twice = {tid: n for tid, n in Counter(tid for tid, *_ in runs).items() if n > 1}
    # By Redis's clock. Scores are whole seconds (as in asynq): a task is due from the
    # start of the second that now + process_in falls in.
    early = {
        tid for tid, at, *_ in runs if tid.startswith("later") and float(at) < int(before + LATER)
    }
    assert not twice and not early, f"ran more than once: {twice}; started early: {early}"
    assert len(runs) == want
    # A handler's seconds_left() counts by the same clock as its deadline: about the
    # default timeout (30 min), not 5 minutes more or less.
    lefts = [float(left) for *_, left in runs]
    assert all(1790 < left <= 1800 for left in lefts), sorted(lefts)
    for offset in (300, -300):
        log = workers[offset].read_text()
        side = "ahead of" if offset > 0 else "behind"
        assert f"This host's clock is 300.0 s {side} Redis's" in log, log
        assert log.count("This host's clock is") == 1, log
    assert "This host's clock is" not in workers[0].read_text()
