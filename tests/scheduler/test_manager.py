"""PeriodicTaskManager: entries follow the provider; provider failures keep them."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from pyasynq import Task
from pyasynq._rdb import keys
from pyasynq.scheduler import PeriodicTaskConfig, PeriodicTaskManager

A = PeriodicTaskConfig("@every 1s", Task("a"), {"queue": "q"})
B = PeriodicTaskConfig("*/5 * * * *", Task("b", b"{}"), {"max_retry": 3, "timeout": 90})
C = PeriodicTaskConfig("@daily", Task("c"))


def specs(mgr: PeriodicTaskManager) -> dict[str, str]:
    return {e.task.type: e.id for e in mgr.scheduler.entries()}


class Box:
    """A provider whose answer the test changes, or makes fail."""

    def __init__(self, configs: list[Any]) -> None:
        self.configs = configs
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self) -> list[Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.configs)


async def test_sync_adds_and_removes(redis_url: str) -> None:
    box = Box([A, B])
    mgr = PeriodicTaskManager(redis_url, box)
    assert await mgr.sync() is True
    first = specs(mgr)
    assert set(first) == {"a", "b"}
    assert set(mgr.entry_ids) == {A.identity(), B.identity()}
    # Unchanged configs keep their entries (an equal config, options in another order).
    box.configs = [
        PeriodicTaskConfig("*/5 * * * *", Task("b", b"{}"), {"timeout": 90, "max_retry": 3}),
        C,
    ]
    assert await mgr.sync() is True
    second = specs(mgr)
    assert set(second) == {"b", "c"}
    assert second["b"] == first["b"]
    # A changed option is another config: replaced.
    box.configs = [PeriodicTaskConfig("*/5 * * * *", Task("b", b"{}"), {"max_retry": 4}), C]
    await mgr.sync()
    assert specs(mgr)["b"] != first["b"] and specs(mgr)["c"] == second["c"]
    box.configs = []
    await mgr.sync()
    assert mgr.scheduler.entries() == [] and mgr.entry_ids == {}


async def test_a_provider_error_keeps_the_current_entries(redis_url: str) -> None:
    box = Box([A, B])
    mgr = PeriodicTaskManager(redis_url, box)
    await mgr.sync()
    before = specs(mgr)
    box.error = RuntimeError("config store down")
    assert await mgr.sync() is False
    assert specs(mgr) == before
    box.error = None
    box.configs = [A, "not a config"]
    assert await mgr.sync() is False  # an invalid answer is refused whole
    box.configs = [A, PeriodicTaskConfig("", Task("x"))]
    assert await mgr.sync() is False
    assert specs(mgr) == before


async def test_a_config_with_a_bad_spec_is_skipped(redis_url: str) -> None:
    mgr = PeriodicTaskManager(
        redis_url, [A, PeriodicTaskConfig("61 * * * *", Task("bad")), C], log_level="fatal"
    )
    assert await mgr.sync() is True
    assert set(specs(mgr)) == {"a", "c"}


class SyncObject:
    def get_configs(self) -> list[PeriodicTaskConfig]:
        return [A]


class AsyncObject:
    async def get_configs(self) -> list[PeriodicTaskConfig]:
        return [B]


async def async_function() -> list[PeriodicTaskConfig]:
    return [C]


@pytest.mark.parametrize(
    ("provider", "types"),
    [
        (SyncObject(), {"a"}),
        (AsyncObject(), {"b"}),
        (async_function, {"c"}),
        (lambda: (x for x in [A, C]), {"a", "c"}),
        ([A, B], {"a", "b"}),
        ((), set()),
    ],
)
async def test_provider_kinds(redis_url: str, provider: Any, types: set[str]) -> None:
    mgr = PeriodicTaskManager(redis_url, provider)
    assert await mgr.sync() is True
    assert set(specs(mgr)) == types


def test_provider_and_interval_are_checked(redis_url: str) -> None:
    with pytest.raises(TypeError, match="provider"):
        PeriodicTaskManager(redis_url, None)
    with pytest.raises(TypeError, match="get_configs"):
        PeriodicTaskManager(redis_url, 42)
    with pytest.raises(ValueError, match="sync_interval"):
        PeriodicTaskManager(redis_url, [A], sync_interval=0)
    with pytest.raises(ValueError, match="location"):
        PeriodicTaskManager(redis_url, [A], location="Nowhere/None")


def test_start_syncs_periodically_and_shutdown_cleans_up(redis_url: str, r: redis.Redis) -> None:
    box = Box([A])
    mgr = PeriodicTaskManager(redis_url, box, sync_interval=0.1, heartbeat_interval=0.2)
    mgr.start()
    try:
        assert set(specs(mgr)) == {"a"}  # the initial sync ran before start() returned
        box.configs = [C]
        deadline = time.monotonic() + 5
        while set(specs(mgr)) != {"c"} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(specs(mgr)) == {"c"}
        assert box.calls >= 2
    finally:
        mgr.shutdown()
    assert r.zcard(keys.ALL_SCHEDULERS) == 0


def test_start_raises_when_the_first_sync_fails(redis_url: str) -> None:
    box = Box([A])
    box.error = RuntimeError("no configs today")
    mgr = PeriodicTaskManager(redis_url, box)
    with pytest.raises(RuntimeError, match="no configs today") as err:
        mgr.start()
    assert "initial call" in "".join(err.value.__notes__)
    assert mgr.scheduler.entries() == []
