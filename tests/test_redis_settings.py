"""Redis settings that lose tasks are said out loud (issue 14, items 6 and 8): what each
eviction policy and persistence setting means, read from a real redis-server, and the
Client's one warning when Redis may evict task data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyasynq import AsyncClient, Client, Task
from pyasynq._rdb.ops.settings import RedisSettings, settings_from
from pyasynq._sync.broker import Broker
from pyasynq.embedded import EmbeddedRedis


@pytest.fixture
def lru_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of its own with maxmemory-policy allkeys-lru and AOF on."""
    with EmbeddedRedis(tmp_path, extra_args=["--maxmemory-policy", "allkeys-lru"]) as srv:
        yield srv.url


def test_allkeys_policies_evict_tasks_and_volatile_ones_only_ttl_keys() -> None:
    lru = RedisSettings(policy="allkeys-lru")
    assert lru.evicts_tasks
    assert "deletes task data" in (lru.eviction_warning() or "")
    volatile = RedisSettings(policy="volatile-ttl")
    assert not volatile.evicts_tasks
    w = volatile.eviction_warning() or ""
    assert "Task data has none and is kept" in w and "uniqueness locks" in w
    assert RedisSettings(policy="noeviction").eviction_warning() is None
    assert RedisSettings().eviction_warning() is None  # INFO refused: say nothing


@pytest.mark.parametrize(
    ("aof", "save", "persistence"),
    [
        (False, "", "none"),
        (True, "", "aof"),
        (False, "3600 1", "rdb"),
        (True, "3600 1", "aof+rdb"),
        (False, None, "unknown"),  # CONFIG GET refused: the RDB schedule is unknown
        (None, "", "unknown"),
    ],
)
def test_persistence(aof: bool | None, save: str | None, persistence: str) -> None:
    s = RedisSettings(aof=aof, rdb_save=save)
    assert s.persistence == persistence
    assert (s.persistence_warning() is not None) == (persistence == "none")


def test_settings_from_info_and_config_replies() -> None:
    info = {"maxmemory": 1024, "maxmemory_policy": "allkeys-lfu", "aof_enabled": 1}
    s = settings_from(info, {"save": "900 1"})
    assert s == RedisSettings(maxmemory=1024, policy="allkeys-lfu", aof=True, rdb_save="900 1")
    per_node = {"127.0.0.1:7000": {"maxmemory_policy": "noeviction", "aof_enabled": 0}}
    assert settings_from(per_node, [b"save", b""]).persistence == "none"
    assert settings_from(None, None) == RedisSettings()


def test_broker_reads_the_settings_of_a_real_server(redis_url: str) -> None:
    b = Broker(redis_url)
    try:
        s = b.redis_settings()
    finally:
        b.close()
    # The test server runs with `--save ""` and no AOF (tests/conftest.py).
    assert s.policy is not None and s.maxmemory is not None
    assert s.persistence in ("none", "unknown")  # unknown: a REDIS_URL that hides CONFIG


def test_client_warns_once_when_redis_may_evict_task_data(
    lru_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with Client(lru_url) as client:
        client.enqueue(Task("t"))
        client.enqueue(Task("t"))
        client.enqueue_many([Task("t")])
    lines = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(lines) == 1
    assert "'allkeys-lru'" in lines[0] and "tasks are lost" in lines[0]
    assert "noeviction" in lines[0]


async def test_async_client_warns_on_first_enqueue_many(
    lru_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with AsyncClient(lru_url) as client:
        await client.enqueue_many([Task("t")])
    assert [r for r in caplog.records if "'allkeys-lru'" in r.getMessage()]


def test_client_says_nothing_with_noeviction(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with Client(redis_url) as client:
        client.enqueue(Task("t"))
    assert not [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
