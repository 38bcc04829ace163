"""Group aggregation across languages: tasks grouped by one side's client are aggregated
by the other side's server (by size, and by the grace period)."""

from __future__ import annotations

import pytest

import pyasynq

from .support import Fleet, Proc

pytestmark = [pytest.mark.interop, pytest.mark.single_node]


def _batches(p: Proc) -> list[list[str]]:
    return sorted(sorted(e["payload"].split(",")) for e in p.events("done", type="agg:batch"))


def _aggregations(p: Proc) -> list[tuple[str, int]]:
    return sorted((e["group"], e["size"]) for e in p.events("aggregate"))


def test_python_groups_aggregated_by_go(go: Fleet) -> None:
    q = "agg"
    srv = go.go_server("-aggregate-type=agg:batch", "-group-max-size=3",
                       "-group-grace-period=1s", queues=[q])  # fmt: skip
    with pyasynq.Client(go.url) as c:
        for i in range(3):
            c.enqueue(pyasynq.Task("agg:item", f"a{i}".encode()), queue=q, group="full")
        for i in range(2):
            c.enqueue(pyasynq.Task("agg:item", f"b{i}".encode()), queue=q, group="quiet")
    srv.wait_event("done", 2, type="agg:batch")
    # "full" reached GroupMaxSize; "quiet" was aggregated after its 1 s grace period.
    assert _batches(srv) == [["a0", "a1", "a2"], ["b0", "b1"]]
    assert _aggregations(srv) == [("full", 3), ("quiet", 2)]
    assert srv.events("start", type="agg:item") == []
    assert go.inspect("groups", q) == []
    assert go.inspect("queue", q)["aggregating"] == 0


def test_go_groups_aggregated_by_pyasynq(go: Fleet) -> None:
    q = "agg"
    w = go.py_worker([q], aggregate_type="agg:batch",
                     config={"group_max_size": 3, "group_grace_period": 1})  # fmt: skip
    go.go("producer", "-queue", q, "-type", "agg:item", "-payload", "a{i}", "-group", "full",
          "-count", "3")  # fmt: skip
    go.go("producer", "-queue", q, "-type", "agg:item", "-payload", "b{i}", "-group", "quiet",
          "-count", "2")  # fmt: skip
    w.wait_event("done", 2, type="agg:batch")
    assert _batches(w) == [["a0", "a1", "a2"], ["b0", "b1"]]
    assert _aggregations(w) == [("full", 3), ("quiet", 2)]
    assert w.events("start", type="agg:item") == []
    with pyasynq.Inspector(go.url) as insp:
        assert insp.groups(q) == []
        assert insp.get_queue_info(q).aggregating == 0
