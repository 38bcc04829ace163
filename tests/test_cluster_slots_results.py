"""The result and progress scripts stay in their queue's Redis Cluster slot, and so do the
outcome scripts when they announce to waiters (their PUBLISH names a channel, not a
key): the MONITOR-based proof of tests/test_cluster_slots.py, on a one-node cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import slots

import pyasynq
from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import processing, results
from pyasynq._sync.broker import Broker

QUEUES = ["default", "élevé:q", "q:with:colons"]
RESULT_SCRIPTS = {"watch_result", "report_progress"}
ANNOUNCING = {"done", "done_many", "mark_complete", "archive"}
CHANNEL = results.channel("slot-test")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with slots.cluster_node(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


def lifecycle(queue: str) -> Callable[[str], None]:
    def run(url: str) -> None:
        with pyasynq.Client(url) as client:
            ids = [client.enqueue(pyasynq.Task("t"), queue=queue).id for _ in range(5)]
        b = Broker(url)
        try:
            for tid in ids:  # every task awaited: the outcome scripts publish
                assert not results.outcome(b.run(results.watch(queue, tid, CHANNEL))).final
            now = time.time()
            taken: list[TaskMessage] = []
            for tok in ("a", "b", "c", "d", "e"):
                leased = processing.dequeue_result(
                    queue, b.run(processing.dequeue(queue, now, tok))
                )
                assert leased is not None and leased.msg is not None
                taken.append(leased.msg)
            value = results.encode_progress(0.5, "half", now)
            processing.check_write(b.run(results.report_progress(queue, taken[0].id, "a", value)))
            processing.check_write(b.run(processing.done(taken[0], now, "a")))
            b.run(processing.done_many(queue, now, [(taken[1], "b"), (taken[2], "c")]))
            taken[3].retention = 60
            processing.check_write(b.run(processing.mark_complete(taken[3], now, "d")))
            processing.check_write(b.run(processing.archive(taken[4], now, "boom", "e")))
        finally:
            b.close()

    return run


@pytest.mark.parametrize("queue", QUEUES)
def test_result_scripts_stay_in_one_slot(node: str, queue: str) -> None:
    redis.Redis.from_url(node).flushall()
    invocations = slots.assert_single_slot(node, lifecycle(queue))
    want = slots.keyslot(node, keys.pending_key(queue))
    ran = {inv.script for inv in invocations if inv.is_script}
    assert ran >= RESULT_SCRIPTS | ANNOUNCING, sorted(RESULT_SCRIPTS | ANNOUNCING - ran)
    published = set()
    for inv in invocations:
        if inv.is_script:
            assert inv.slots == {want}, inv
            if any(cmd[0].upper() == b"PUBLISH" for cmd in inv.issued):
                published.add(inv.script)
    assert published & (ANNOUNCING | RESULT_SCRIPTS) == ANNOUNCING | {"report_progress"}
