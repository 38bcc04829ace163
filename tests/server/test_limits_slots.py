"""The limit scripts stay in their queue's Redis Cluster slot: the MONITOR-based proof of
tests/slots.py, run on a one-node cluster over a park, a wake and a start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import slots

import pyasynq
from pyasynq._rdb import keys
from pyasynq._rdb.ops import limiter as ops
from pyasynq._rdb.ops import processing
from pyasynq._sync.broker import Broker

LIMIT_SCRIPTS = {"limit_acquire", "limit_wake"}
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with slots.cluster_node(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


def _drive(queue: str, name: str) -> object:
    spec = ops.Spec(concurrency=1, rate=5, per=1.0)

    def run(url: str) -> None:
        with pyasynq.Client(url) as client:
            for i in range(3):
                client.enqueue(pyasynq.Task(name), queue=queue, task_id=f"x{i}")
        b = Broker(url)
        try:
            for i in range(3):
                got = processing.dequeue_result(
                    queue, b.run(processing.dequeue(queue, NOW, f"k{i}"))
                )
                assert got is not None and got.msg is not None
                op = ops.acquire(queue, name, spec, task_id=got.msg.id, token=f"k{i}", now=NOW)
                ops.acquire_result(b.run(op))
            woken = ops.wake_result(queue, b.run(ops.wake(queue, name, spec, int(NOW * 1e9),
                                                   task_id="x0", token="k0")))  # fmt: skip
            assert woken.woken == 1
            # The hand-over form: x1 (woken, reserved) finishes, x2 goes to the caller.
            b.run(ops.acquire(queue, name, spec, task_id="x1", token="k1", now=NOW))
            op = ops.wake(queue, name, spec, int(NOW * 1e9), task_id="x1", token="k1",
                          take_token="h", lease_until=int(NOW) + 30)  # fmt: skip
            assert ops.wake_result(queue, b.run(op)).taken is not None
        finally:
            b.close()

    return run


@pytest.mark.parametrize(("queue", "name"), [("default", "email:send"), ("é:q", "a{b}:c")])
def test_limit_scripts_stay_in_the_queues_slot(node: str, queue: str, name: str) -> None:
    redis.Redis.from_url(node).flushall()
    invocations = slots.assert_single_slot(node, _drive(queue, name))  # type: ignore[arg-type]
    ran = {inv.script for inv in invocations if inv.is_script}
    assert ran >= LIMIT_SCRIPTS
    want = slots.keyslot(node, keys.pending_key(queue))
    for inv in invocations:
        if inv.is_script and inv.script in LIMIT_SCRIPTS:
            assert inv.slots == {want}, inv
