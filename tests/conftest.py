"""Test fixtures: a real Redis for everything that touches Redis.

``REDIS_URL`` wins; otherwise one redis-server (or the embedded Valkey) is started on a free
loopback port for the whole session, persistence off. Under CI=true a missing server fails
the run instead of skipping.

``PYASYNQ_TEST_TOPOLOGY=cluster`` (``make test-cluster``) runs the same tests against a real
Redis Cluster of three masters on loopback: ``redis_url`` is its ``redis-cluster://`` URL
(or ``REDIS_URL`` when that is one), ``r``/``ar`` are cluster clients with every primary
flushed (see ``targets.py``), and tests marked ``single_node`` are skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import NoReturn

import pytest
import redis
import redis.asyncio as aioredis
from targets import CLUSTER, async_client, crossslot_errors, flush, sync_client

from pyasynq.embedded import EmbeddedRedis


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CLUSTER:
        return
    for item in items:
        marker = item.get_closest_marker("single_node")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            reason = "single node only (PYASYNQ_TEST_TOPOLOGY=cluster)"
            item.add_marker(pytest.mark.skip(reason=f"{reason}: {why}" if why else reason))


def _no_server(msg: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _cluster_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url and url.startswith(("redis-cluster://", "rediss-cluster://")):
        yield url
        return
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _no_server("PYASYNQ_TEST_TOPOLOGY=cluster needs redis-server and redis-cli")
    from topology import ClusterTopology

    # No replicas: these suites test pyasynq on a keyspace split over three nodes; the
    # failover tests (tests/ha) bring their own replicas.
    with ClusterTopology(masters=3, replicas=0) as topo:
        yield topo.url()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if CLUSTER:
        yield from _cluster_url()
        return
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        server = EmbeddedRedis(persistent=False).start()
    except RuntimeError as exc:
        _no_server(f"no Redis server for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_crossslot(request: pytest.FixtureRequest) -> Iterator[None]:
    """On the cluster, fail any test during which a node replied CROSSSLOT (a command or
    script whose keys span slots): pyasynq must never send one."""
    if not CLUSTER:
        yield
        return
    url = request.getfixturevalue("redis_url")
    before = crossslot_errors(url)
    yield
    errors = crossslot_errors(url) - before
    assert errors == 0, f"{errors} CROSSSLOT error(s) on the cluster during this test"


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client on a flushed database (a RedisCluster on the cluster topology)."""
    client = sync_client(redis_url)
    flush(client)
    yield client
    client.close()


@pytest.fixture
async def ar(redis_url: str, r: redis.Redis) -> AsyncIterator[aioredis.Redis]:
    """An async client on the same flushed database."""
    client = async_client(redis_url)
    yield client
    await client.aclose()
