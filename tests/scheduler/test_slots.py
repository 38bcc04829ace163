"""The scheduler's scripts and commands stay in their queue's Redis Cluster slot."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
import slots

from pyasynq import Task
from pyasynq._rdb import keys
from pyasynq._rdb.ops.enqueue import prepare
from pyasynq._rdb.ops.scheduler import every_anchor, scheduler_enqueue
from pyasynq._sync.broker import Broker
from pyasynq.options import Options

from .test_ops import VARIANTS

pytestmark = pytest.mark.single_node("MONITOR slot checks on a one-node cluster of its own")

QUEUES = ["default", "élevé:q"]
ENTRY = "ab" * 32


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with slots.cluster_node(tmp_path_factory.mktemp("cluster")) as url:
            yield url
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no redis-server for a cluster node: {exc}")


@pytest.fixture
def node(cluster_url: str) -> Iterator[str]:
    r = redis.Redis.from_url(cluster_url)
    r.flushall()
    r.close()
    yield cluster_url


@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_scheduler_enqueue_in_one_slot(node: str, queue: str, variant: str) -> None:
    def run(url: str) -> None:
        opts = Options(task_id="t1", queue=queue, **VARIANTS[variant])
        p = prepare(Task("t", b"x"), opts, 1_700_000_000 * 10**9)
        call = scheduler_enqueue(p.call, queue=queue, entry_key=ENTRY, fire_time=5, marker_ttl=9)
        b = Broker(url)
        try:
            assert b.run(call) == 1
            assert b.run(call) == 2
            b.run_many(every_anchor(queue, ENTRY, 100, 60))
        finally:
            b.close()

    invocations = slots.assert_single_slot(node, run)
    want = slots.keyslot(node, keys.pending_key(queue))
    scripted = [inv for inv in invocations if inv.is_script]
    assert {inv.script for inv in scripted} == {"scheduler_enqueue"}
    for inv in invocations:
        if inv.keys:
            assert inv.slots == {want}, inv
