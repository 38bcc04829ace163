"""pyasynq again, its worker on asyncio's own loop (``--loop asyncio``): what pyasynq does
without the uvloop extra, beside the default row (``event_loop="auto"`` takes uvloop)."""

from __future__ import annotations

from typing import NoReturn

from benchmarks.systems import pyasynq
from benchmarks.systems.pyasynq import close, connect, enqueue, enqueue_batch, mux

__all__ = ["close", "connect", "enqueue", "enqueue_batch", "mux", "run_worker"]


def run_worker(url: str, concurrency: int) -> NoReturn:
    pyasynq.run_worker(url, concurrency, "--loop", "asyncio")
