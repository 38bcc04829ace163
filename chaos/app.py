"""The worker app the fault suite runs (``pyasynq worker chaos.app:mux --config
chaos.app:config``). Every handler start and finish is appended to
``$CHAOS_RUN_DIR/events-<pid>.log`` with one ``write(2)`` on an ``O_APPEND`` descriptor:
the kernel has the line as soon as the call returns, so it survives a SIGKILL of this
process and anything Redis loses. Lines: ``S <task id> <unix time>`` / ``F ...``.

Timings come from the environment (set by the harness), so scenarios can be short."""

from __future__ import annotations

import asyncio
import os
import time

import pyasynq
from pyasynq.config import ServerConfig

_fd: int | None = None


def _record(kind: str, tid: str) -> None:
    global _fd  # noqa: PLW0603 - one file per worker process
    if _fd is None:
        path = os.path.join(os.environ["CHAOS_RUN_DIR"], f"events-{os.getpid()}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # The true time, for a worker run under libfaketime (the harness says its offset).
    now = time.time() - float(os.environ.get("CHAOS_CLOCK_OFFSET", "0"))
    os.write(_fd, f"{kind} {tid} {now:.4f}\n".encode())


def _ms(task: pyasynq.Task) -> float:
    return float(task.payload or b"0") / 1000


mux = pyasynq.ServeMux()


@mux.handler("chaos:work")
async def work(task: pyasynq.Task) -> None:
    """Sleeps ``payload`` milliseconds without blocking the loop."""
    tid = pyasynq.current_task().id
    _record("S", tid)
    if task.payload:
        await asyncio.sleep(_ms(task))
    _record("F", tid)


@mux.handler("chaos:cpu")
def cpu(task: pyasynq.Task) -> None:
    """Spins ``payload`` milliseconds in a sync handler, holding the GIL most of the time."""
    tid = pyasynq.current_task().id
    _record("S", tid)
    end = time.monotonic() + _ms(task)
    x = 0
    while time.monotonic() < end:
        for i in range(20_000):
            x += i * i
    _record("F", tid)


def _no_delay(retried: int, error: BaseException, task: pyasynq.Task) -> float:
    return 0.0


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


config = ServerConfig(
    concurrency=int(_env("CHAOS_CONCURRENCY", 20)),
    lease_duration=_env("CHAOS_LEASE", 2.0),
    heartbeat_interval=_env("CHAOS_HEARTBEAT", 0.4),
    recoverer_interval=_env("CHAOS_RECOVERER", 0.5),
    shutdown_timeout=_env("CHAOS_SHUTDOWN_TIMEOUT", 3.0),
    task_check_interval=0.05,
    delayed_task_check_interval=0.2,
    retry_delay_func=_no_delay,
    max_crash_recoveries=None,
)
