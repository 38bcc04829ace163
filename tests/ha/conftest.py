"""Real Sentinel and Cluster topologies on loopback, one per test module."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from topology import ClusterTopology, SentinelTopology


def _need_binaries() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server and redis-cli are needed for the HA tests")
        pytest.skip("redis-server/redis-cli not installed")


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelTopology]:
    _need_binaries()
    with SentinelTopology(replicas=1, sentinels=3) as topo:
        yield topo


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterTopology]:
    _need_binaries()
    with ClusterTopology(masters=3, replicas=1) as topo:
        yield topo
