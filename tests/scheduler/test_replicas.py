"""Many scheduler processes, one enqueue per tick: real ``pyasynq scheduler`` processes
with the same ``@every 1s`` entry, one of them SIGKILLed and restarted while they run.
Every tick of the run must be enqueued exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from pyasynq import Task
from pyasynq._rdb import codec, keys
from pyasynq._scheduler.entries import tick_task_id
from pyasynq.scheduler import PeriodicTaskConfig

APP = """
from pyasynq import Task
from pyasynq.scheduler import PeriodicTaskConfig

configs = [PeriodicTaskConfig("@every 1s", Task("tick:every", b"{}"), {"queue": "ticks"})]
"""
CONFIG = PeriodicTaskConfig("@every 1s", Task("tick:every", b"{}"), {"queue": "ticks"})


class Replicas:
    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        (tmp_path / "periodic_app.py").write_text(APP)
        self.dir = tmp_path
        self.url = redis_url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.spawned = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.spawned += 1
        log = (self.dir / f"scheduler-{self.spawned}.log").open("wb")
        argv = [sys.executable, "-m", "pyasynq", "--redis-url", self.url, "scheduler"]
        argv += ["periodic_app:configs", "--heartbeat-interval", "0.5"]
        p = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(p)
        return p

    def kill(self, p: subprocess.Popen[bytes]) -> None:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        self.procs.remove(p)

    def stop_all(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return [p.wait(20) for p in self.procs]

    def logs(self) -> str:
        return "\n".join(f.read_text() for f in sorted(self.dir.glob("scheduler-*.log")))


def wait_for(pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def run_replicas(
    tmp_path: Path, redis_url: str, r: redis.Redis, seconds: float, every: float
) -> None:
    reps = Replicas(tmp_path, redis_url)
    try:
        for _ in range(3):
            reps.spawn()
        # All three are up once each has written its entries.
        wait_for(lambda: r.zcard(keys.ALL_SCHEDULERS) >= 3, 20)
        started = time.time()
        first_tick = int(started) + 1
        next_kill = started + every
        rng = random.Random(7)
        kills = 0
        # No kill in the last seconds: a replica restarted then would still be starting
        # (no signal handlers yet) when the run ends.
        last_kill = started + seconds - 3
        while next_kill <= last_kill:
            sleep_until(next_kill)
            reps.kill(rng.choice(reps.procs))  # SIGKILL: no cleanup at all
            kills += 1
            reps.spawn()
            next_kill += every
        sleep_until(started + seconds)
        last_tick = int(time.time()) - 1
        time.sleep(0.7)  # the last tick's enqueue finishes
        ids = [x.decode() for x in r.lrange(keys.pending_key("ticks"), 0, -1)]
        events = Counter(
            codec.decode_scheduler_event(m).task_id
            for k in r.scan_iter(match="asynq:scheduler_history:*")
            for m in r.zrange(k, 0, -1)
        )
        codes = reps.stop_all()
    finally:
        for p in reps.procs:
            if p.poll() is None:
                p.kill()
    assert kills >= 1
    identity = CONFIG.identity()
    expected = {tick_task_id(identity, t): t for t in range(first_tick, last_tick + 1)}
    counts = Counter(ids)
    assert [i for i, n in counts.items() if n > 1] == [], "a tick was enqueued twice"
    missed = sorted(t for i, t in expected.items() if i not in counts)
    assert missed == [], f"ticks never enqueued: {missed}\n{reps.logs()}"
    # Nothing else was enqueued: every task is the tick of a second around the run.
    around = {tick_task_id(identity, t) for t in range(first_tick - 30, last_tick + 30)}
    assert set(ids) <= around
    # Each enqueue is in the history of exactly one scheduler (a SIGKILL between the
    # enqueue and the history write may lose one record).
    assert max(events.values()) == 1
    assert len(set(expected) - set(events)) <= kills
    assert codes == [0, 0, 0], f"exit codes {codes}\n{reps.logs()}"
    assert r.zcard(keys.ALL_SCHEDULERS) <= kills  # the killed ones' records expire later


def test_three_replicas_one_enqueue_per_tick(
    tmp_path: Path, redis_url: str, r: redis.Redis
) -> None:
    run_replicas(tmp_path, redis_url, r, seconds=8, every=3)


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_three_replicas_for_a_minute_with_kills(
    tmp_path: Path, redis_url: str, r: redis.Redis
) -> None:
    """The issue's acceptance run: a minute, one replica SIGKILLed and restarted every
    few seconds."""
    run_replicas(tmp_path, redis_url, r, seconds=60, every=4)
