"""pyasynq again, its worker on asyncio's own loop (``--loop asyncio``): what pyasynq does
without the uvloop extra, beside the default row (``event_loop="auto"`` takes uvloop)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from benchmarks.systems.pyasynq import close, connect, enqueue, enqueue_batch, mux

__all__ = ["close", "connect", "enqueue", "enqueue_batch", "mux", "run_worker"]


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
        "--loop",
        "asyncio",
    ]
    os.execv(sys.executable, argv)
