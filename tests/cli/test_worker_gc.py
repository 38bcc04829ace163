"""`pyasynq worker` tunes the collector before it serves (cli/worker.py tune_gc): the
default young threshold cost a tenth of a no-op task's CPU (docs/benchmarks.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from pyasynq.cli import worker
from pyasynq.config import ServerConfig
from pyasynq.server import Server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_worker_serves_with_a_frozen_heap_and_a_raised_young_threshold(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    seen: dict[str, Any] = {}

    def fake_run(self: Server, handler: Any, exits: bool = False) -> list[Any]:
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()
        return []

    monkeypatch.setattr(Server, "_run", fake_run)
    code, stranded = worker._run_one("redis://127.0.0.1:1", ServerConfig(), lambda t: None)
    assert (code, stranded) == (0, False)
    assert seen["threshold"] == (worker.GC_YOUNG_THRESHOLD, 10, 10)
    assert seen["frozen"] > 1000  # the modules loaded so far: pyasynq, redis, ...


def test_a_higher_threshold_set_by_the_user_is_kept(restore_gc: None) -> None:
    gc.set_threshold(50_000, 20, 20)
    worker.tune_gc()
    assert gc.get_threshold() == (50_000, 20, 20)
