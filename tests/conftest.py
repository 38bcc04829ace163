"""Test fixtures: a real Redis for everything that touches Redis.

``REDIS_URL`` wins; otherwise one redis-server (or the embedded Valkey) is started on a free
loopback port for the whole session, persistence off. Under CI=true a missing server fails
the run instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from pyasynq.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        server = EmbeddedRedis(persistent=False).start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Redis server for the tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client on a flushed database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def ar(redis_url: str, r: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    """An async client on the same flushed database."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
