"""The app of test_clock_skew.py, run by worker processes whose clocks libfaketime moves
(``python -m pyasynq worker skew_app:mux --config skew_app:config``).

Each handler start is noted in Redis (``skew:runs``: ``<task id> <Redis TIME> <pid>
<seconds left>``), so the test counts runs and sees when, by Redis's clock, each started."""

from __future__ import annotations

import os
import time

import redis

import pyasynq
from pyasynq.config import ServerConfig
from pyasynq.context import current_task

mux = pyasynq.ServeMux()
_r = redis.Redis.from_url(os.environ["APP_REDIS_URL"])


@mux.handler("skew")
def run(task: pyasynq.Task) -> None:
    sec, usec = _r.time()
    ctx = current_task()
    left = ctx.seconds_left()
    _r.rpush("skew:runs", f"{ctx.id} {sec + usec / 1e6:.6f} {os.getpid()} {left:.3f}")
    time.sleep(0.3)  # in flight while the other workers' recoverers look at its lease


# Short lease and recoverer, so leases that look expired are found within the test.
config = ServerConfig(
    concurrency=4,
    queues={"default": 1},
    lease_duration=2.0,
    heartbeat_interval=0.4,
    recoverer_interval=0.2,
    task_check_interval=0.05,
    delayed_task_check_interval=0.1,
    clock_sync_interval=1.0,
    shutdown_timeout=2.0,
)
