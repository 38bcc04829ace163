"""Worker handlers for the failover tests. Runs are recorded in files, not in Redis,
because a failover may drop Redis writes: ``<E2E_RUN_DIR>/<pid>.log`` gets one line
``start|end <task id> <unix time>`` per event."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyasynq
from pyasynq.config import ServerConfig

_log = None


def _write(kind: str, tid: str) -> None:
    global _log  # noqa: PLW0603 - one file per worker process
    if _log is None:
        path = Path(os.environ["E2E_RUN_DIR"]) / f"{os.getpid()}.log"
        _log = path.open("a", buffering=1)
    _log.write(f"{kind} {tid} {time.time():.3f}\n")


mux = pyasynq.ServeMux()


@mux.handler("ha:work")
async def work(task: pyasynq.Task) -> None:
    tid = pyasynq.current_task().id
    _write("start", tid)
    _write("end", tid)


def no_delay(retried: int, error: BaseException, task: pyasynq.Task) -> float:
    return 0.0


config = ServerConfig(
    concurrency=10,
    heartbeat_interval=0.5,
    lease_duration=3,
    recoverer_interval=1,
    delayed_task_check_interval=0.3,
    task_check_interval=0.1,
    shutdown_timeout=3,
    retry_delay_func=no_delay,
    max_crash_recoveries=1000,
)
