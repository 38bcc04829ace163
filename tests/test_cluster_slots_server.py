"""Every script the server, the recoverer, the aggregator, the heartbeater and the
scheduler run stays in one Redis Cluster slot, its queue's (or, for server and scheduler
state, its own hash tag's): the same MONITOR-based proof as tests/test_cluster_slots.py,
applied to the processing side. Together with that file, tests/rdb/test_inspect.py and
tests/scheduler/test_slots.py, every script in lua/ is covered (checked below)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import slots

import pyasynq
from pyasynq._rdb import codec, keys, scripts
from pyasynq._rdb.ops import aggregation, processing, snooze, state
from pyasynq._sync.broker import Broker

QUEUES = ["default", "élevé:q", "q:with:colons"]
NOW = 1_700_000_000.0

# What this file runs; the rest is covered by the files named in the docstring.
SERVER_SCRIPTS = {
    "dequeue", "dequeue_many", "done", "done_many", "mark_complete", "requeue", "retry", "archive",
    "forward", "extend_leases", "list_lease_expired", "quarantine", "lease_orphans",
    "delete_expired_completed", "aggregation_check", "read_aggregation_set",
    "delete_aggregation_set", "reclaim_stale_aggregation_sets", "write_server_state",
    "write_scheduler_entries", "record_scheduler_event", "list_registry", "snooze",
}  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with slots.cluster_node(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


def lifecycle(queue: str) -> Callable[[str], None]:
    """Seed a queue with the client, then drive every server-side script on it."""

    def run(url: str) -> None:
        with pyasynq.Client(url) as client:
            for i in range(8):
                client.enqueue(pyasynq.Task("t", b"%d" % i), queue=queue, task_id=f"p{i}")
            client.enqueue(pyasynq.Task("t", b"u"), queue=queue, task_id="u", unique=60)
            client.enqueue(pyasynq.Task("t"), queue=queue, task_id="s", process_at=NOW - 5)
            for i in range(3):
                client.enqueue(pyasynq.Task("t", b"g"), queue=queue, group="grp", task_id=f"g{i}")
        b = Broker(url)
        try:
            _drive(b, queue)
        finally:
            b.close()

    return run


def _take(b: Broker, queue: str, token: str) -> codec.TaskMessage:
    leased = processing.dequeue_result(queue, b.run(processing.dequeue(queue, NOW, token)))
    assert leased is not None and leased.msg is not None
    return leased.msg


def _drive(b: Broker, queue: str) -> None:
    m1 = _take(b, queue, "a1")
    processing.check_write(b.run(processing.done(m1, NOW, "a1")))
    m0a, m0b = _take(b, queue, "a0"), _take(b, queue, "a0b")
    b.run(processing.done_many(queue, NOW, [(m0a, "a0"), (m0b, "a0b")]))
    m2 = _take(b, queue, "a2")
    m2.retention = 60
    processing.check_write(b.run(processing.mark_complete(m2, NOW, "a2")))
    m3 = _take(b, queue, "a3")
    processing.check_write(b.run(processing.requeue(m3, "a3")))
    m4 = _take(b, queue, "a4")
    b.run(processing.extend_leases(queue, [(m4.id, "a4")], NOW + 30))
    processing.check_write(b.run(processing.retry(m4, NOW, NOW - 1, "boom", True, "a4")))
    m5 = _take(b, queue, "a5")
    processing.check_write(b.run(processing.archive(m5, NOW, "boom", "a5")))
    m7 = _take(b, queue, "a7")
    processing.check_write(b.run(snooze.snooze(m7, NOW - 1, "a7")))
    many = processing.dequeue_many_result(
        queue, b.run(processing.dequeue_many(queue, NOW, "a6", 10))
    )
    assert many, "dequeue_many found nothing"
    for source in ("scheduled", "retry"):
        b.run(processing.forward(queue, source, int(NOW * 1e9)))  # type: ignore[arg-type]
    b.run(processing.list_lease_expired(queue, NOW + 3600))
    b.run(processing.lease_orphans(queue, NOW))
    b.run(processing.quarantine(queue, many[0].task_id, "test"))
    b.run(processing.delete_expired_completed(queue, NOW + 3600, 100))
    b.run(processing.write_result(queue, m2.id, b"r"))
    set_id = "set-1"
    b.run(aggregation.check_group(queue, "grp", set_id, NOW + 3600, grace_period=1))
    b.run(aggregation.read_aggregation_set(queue, "grp", set_id))
    b.run(aggregation.reclaim_stale_aggregation_sets(queue, NOW + 3600))
    b.run(aggregation.check_group(queue, "grp", "set-2", NOW + 3600, grace_period=1))
    b.run(aggregation.delete_aggregation_set(queue, "grp", "set-2"))
    info = codec.ServerInfo(host="h", pid=1, server_id="sid", queues={queue: 1})
    worker = codec.WorkerInfo(host="h", pid=1, server_id="sid", task_id="x", queue=queue)
    state.check_replies(b.run_many(state.write_server_state(info, [worker], NOW, 10)))
    b.run(state.list_registry(keys.ALL_SERVERS, NOW))
    state.check_replies(b.run_many(state.clear_server_state("h", 1, "sid")))
    entry = codec.SchedulerEntry(id="e", spec="@every 1s", task_type="t")
    state.check_replies(b.run_many(state.write_scheduler_entries("h:1:s", [entry], NOW, 20)))
    event = codec.SchedulerEnqueueEvent(task_id="x", enqueue_time_ns=int(NOW * 1e9))
    b.run(state.record_scheduler_enqueue_event("e", event))


@pytest.mark.parametrize("queue", QUEUES)
def test_server_scripts_stay_in_one_slot(node: str, queue: str) -> None:
    import redis

    redis.Redis.from_url(node).flushall()
    invocations = slots.assert_single_slot(node, lifecycle(queue))
    ran = {inv.script for inv in invocations if inv.is_script}
    assert ran >= SERVER_SCRIPTS, f"not run: {sorted(SERVER_SCRIPTS - ran)}"
    want = slots.keyslot(node, keys.pending_key(queue))
    for inv in invocations:
        if inv.is_script and inv.script not in {
            "write_server_state", "write_scheduler_entries", "record_scheduler_event",
            "list_registry",
        }:  # fmt: skip
            assert inv.slots == {want}, inv


def test_every_script_is_covered_by_a_slot_test() -> None:
    enqueue = {
        "enqueue",
        "enqueue_unique",
        "schedule",
        "schedule_unique",
        "add_to_group",
        "add_to_group_unique",
        "enqueue_batch",
    }  # fmt: skip  (tests/test_cluster_slots.py)
    inspector = {
        n for n in scripts.names() if n.startswith("inspect_")
    }  # tests/rdb/test_inspect.py
    scheduler = {"scheduler_enqueue"}  # tests/scheduler/test_slots.py
    waiting = {"watch_result", "report_progress"}  # tests/test_cluster_slots_results.py
    limits = {"limit_acquire", "limit_wake"}  # tests/server/test_limits_slots.py
    assert (
        set(scripts.names()) == SERVER_SCRIPTS | enqueue | inspector | scheduler | waiting | limits
    )
