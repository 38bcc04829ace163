"""Every enqueue option crosses the language line: written by one side's client, read by
the other side's Inspector and honoured by the other side's server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys
from pyasynq.errors import DuplicateTaskError, TaskIDConflictError

from .support import Fleet, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.single_node]

HEADERS = {"trace": "abc-123", "tenant": "t1"}


def _approx(a: float, b: float, tol: float = 1.0) -> bool:
    return abs(a - b) <= tol


def test_python_options_read_and_honoured_by_go(go: Fleet, r: redis.Redis) -> None:
    q = "opts"
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    # The Go server starts first, on a paused queue: it is up before the delayed tasks are
    # due, and runs nothing before Go's Inspector has read the tasks as Python wrote them.
    assert go.inspect("pause", q) == {"ok": True}
    handle = {"opt:full": "result=got {payload}", "opt:fail": "fail=always", "opt:slow": "sleep=5s"}
    srv = go.go_server(queues=[q], handle=handle)
    with pyasynq.Client(go.url) as c:
        full = c.enqueue(pyasynq.Task("opt:full", b'{"n":1}', headers=HEADERS), queue=q,
                         max_retry=7, timeout=30, deadline=deadline, retention=600,
                         task_id="full-1")  # fmt: skip
        t0 = time.time()
        later = c.enqueue(pyasynq.Task("opt:later", b"in"), queue=q, process_in=3)
        at = c.enqueue(pyasynq.Task("opt:at", b"at"), queue=q, process_at=t0 + 3.5)
        uniq = c.enqueue(pyasynq.Task("opt:uniq", b"u"), queue=q, unique=60)
        grouped = [c.enqueue(pyasynq.Task("opt:grp", f"g{i}".encode()), queue=q, group="g1")
                   for i in range(3)]  # fmt: skip
        retried = c.enqueue(pyasynq.Task("opt:fail", b"f"), queue=q, max_retry=1)
        short = c.enqueue(pyasynq.Task("opt:slow", b"s"), queue=q, timeout=1, max_retry=0)
        dl_only = c.enqueue(pyasynq.Task("opt:dl", b"d"), queue=q, deadline=deadline)

    # Go's Inspector reads every option as written.
    t = go.inspect("task", q, full.id)
    assert (t["id"], t["queue"], t["type"], t["payload"]) == ("full-1", q, "opt:full", '{"n":1}')
    assert (t["state"], t["headers"], t["max_retry"], t["retried"]) == ("pending", HEADERS, 7, 0)
    assert (t["timeout"], t["retention"], t["deadline"]) == (30, 600, deadline.timestamp())
    # Go's scheduled set holds whole Unix seconds: process_in=3 is due 3 s after the enqueue,
    # truncated to the second.
    t = go.inspect("task", q, later.id)
    later_at = t["next_process_at"]
    assert t["state"] == "scheduled" and int(t0) + 2 <= later_at <= int(t0 + 3) + 1
    t = go.inspect("task", q, at.id)
    assert t["state"] == "scheduled" and t["next_process_at"] == int(t0 + 3.5)
    assert sorted(x["id"] for x in go.inspect("tasks", q, "aggregating", "g1")) == sorted(
        g.id for g in grouped
    )
    assert go.inspect("groups", q) == [{"group": "g1", "size": 3}]
    # The unique lock Python took is the one Go's client checks, with the same TTL.
    ukey = keys.unique_key(q, "opt:uniq", b"u")
    assert r.get(ukey) == uniq.id.encode() and 58 <= r.ttl(ukey) <= 60
    dup = go.go("producer", "-type", "opt:uniq", "-payload", "u", "-queue", q, "-unique", "1m",
                ok=False)  # fmt: skip
    assert dup["duplicate"] is True, dup
    clash = go.go("producer", "-type", "x", "-queue", q, "-task-id", "full-1", ok=False)
    assert clash["conflict"] is True, clash

    # Go's server honours them.
    assert go.inspect("unpause", q) == {"ok": True}
    done = srv.wait_event("done", 5)
    ran = {e["id"]: e for e in srv.events("done")}
    assert set(ran) >= {full.id, later.id, at.id, uniq.id, dl_only.id}
    assert ran[dl_only.id]["deadline"] == deadline.timestamp()  # no timeout: the deadline
    f = ran[full.id]
    assert (f["payload"], f["headers"], f["max_retry"], f["queue"]) == ('{"n":1}', HEADERS, 7, q)
    start = srv.events("start", id=full.id)[0]["t"]
    assert _approx(f["deadline"], start + 30)  # the 30 s timeout, inside the 1 h deadline
    assert srv.events("start", id=later.id)[0]["t"] >= later_at
    assert srv.events("start", id=at.id)[0]["t"] >= int(t0 + 3.5)
    assert done
    # max_retry 1: two attempts, then archived; timeout 1 s: the handler's context ends.
    srv.wait_event("fail", 2, id=retried.id)
    wait_for(lambda: go.inspect("task", q, retried.id)["state"] == "archived", "archived")
    assert go.inspect("task", q, retried.id)["retried"] == 1
    srv.wait_event("canceled", id=short.id)
    slow = wait_for(lambda: (t := go.inspect("task", q, short.id))["state"] == "archived" and t,
                    "the timed-out task archived")  # fmt: skip
    assert slow["last_err"] == "context deadline exceeded"
    # Retention: the completed task stays, with Go's result, for 600 s.
    t = go.inspect("task", q, full.id)
    assert (t["state"], t["result"], t["retention"]) == ("completed", 'got {"n":1}', 600)
    assert _approx(r.zscore(keys.completed_key(q), full.id), t["completed_at"] + 600)
    # The unique lock is released once Go finished the task: both clients may enqueue again.
    assert r.exists(ukey) == 0
    assert "id" in go.go("producer", "-type", "opt:uniq", "-payload", "u", "-queue", q,
                         "-unique", "1m")  # fmt: skip
    with pyasynq.Client(go.url) as c, pytest.raises(DuplicateTaskError):
        c.enqueue(pyasynq.Task("opt:uniq", b"u"), queue=q, unique=60)


def test_go_options_read_and_honoured_by_pyasynq(go: Fleet, r: redis.Redis) -> None:
    q = "gopts"
    deadline = int(time.time()) + 3600

    def produce(*args: str) -> dict:
        return go.go("producer", "-queue", q, *args)

    # The worker starts first, on a paused queue, so that it is up before the delayed
    # tasks are due (a Python process takes a while to start) and runs nothing before
    # the Inspector has read the tasks as Go wrote them.
    with pyasynq.Inspector(go.url) as insp:
        insp.pause_queue(q)
    w = go.py_worker([q], handle={"opt:full": "result=py {payload}", "opt:fail": "fail=always",
                                  "opt:slow": "sleep=5"})  # fmt: skip

    full = produce(
        "-type",
        "opt:full",
        "-payload",
        '{"n":2}',
        "-header",
        "trace=abc-123",
        "-header",
        "tenant=t1",
        "-max-retry",
        "7",
        "-timeout",
        "30s",
        "-deadline",
        str(deadline),
        "-retention",
        "10m",
        "-task-id",
        "gfull-1",
    )
    t0 = time.time()
    later = produce("-type", "opt:later", "-payload", "in", "-process-in", "3s")
    at = produce("-type", "opt:at", "-payload", "at", "-process-at", str(t0 + 3.5))
    uniq = produce("-type", "opt:uniq", "-payload", "u", "-unique", "1m")
    grouped = produce("-type", "opt:grp", "-payload", "g{i}", "-group", "g1", "-count", "3")
    retried = produce("-type", "opt:fail", "-payload", "f", "-max-retry", "1")
    short = produce("-type", "opt:slow", "-payload", "s", "-timeout", "1s", "-max-retry", "0")
    dl_only = produce("-type", "opt:dl", "-payload", "d", "-deadline", str(deadline))
    assert full["state"] == "pending" and later["state"] == "scheduled"

    with pyasynq.Inspector(go.url) as insp:
        t = insp.get_task_info(q, "gfull-1")
        assert (t.type, t.payload, t.headers, t.state) == ("opt:full", b'{"n":2}', HEADERS,
                                                           pyasynq.TaskState.PENDING)  # fmt: skip
        assert (t.max_retry, t.retried, t.timeout, t.retention) == (
            7,
            0,
            timedelta(seconds=30),
            timedelta(minutes=10),
        )
        assert t.deadline == datetime.fromtimestamp(deadline, UTC)
        t = insp.get_task_info(q, later["id"])
        later_at = t.next_process_at.timestamp()
        assert t.state == "scheduled" and later_at == int(later["next_process_at"])
        assert int(t0) + 2 <= later_at <= int(t0 + 3) + 1
        t = insp.get_task_info(q, at["id"])
        assert t.state == "scheduled" and t.next_process_at.timestamp() == int(t0 + 3.5)
        assert sorted(x.id for x in insp.list_aggregating_tasks(q, "g1")) == sorted(
            g["id"] for g in grouped
        )
        assert [(g.group, g.size) for g in insp.groups(q)] == [("g1", 3)]
    ukey = keys.unique_key(q, "opt:uniq", b"u")
    assert r.get(ukey) == uniq["id"].encode() and 58 <= r.ttl(ukey) <= 60
    with pyasynq.Client(go.url) as c:
        with pytest.raises(DuplicateTaskError):
            c.enqueue(pyasynq.Task("opt:uniq", b"u"), queue=q, unique=60)
        with pytest.raises(TaskIDConflictError):
            c.enqueue(pyasynq.Task("x"), queue=q, task_id="gfull-1")

    with pyasynq.Inspector(go.url) as insp:
        insp.unpause_queue(q)
    w.wait_event("done", 5)
    ran = {e["id"]: e for e in w.events("done")}
    assert set(ran) >= {full["id"], later["id"], at["id"], uniq["id"], dl_only["id"]}
    assert ran[dl_only["id"]]["deadline"] == deadline  # no timeout: the deadline
    f = ran[full["id"]]
    assert (f["payload"], f["headers"], f["max_retry"], f["queue"]) == ('{"n":2}', HEADERS, 7, q)
    start = w.events("start", id=full["id"])[0]["t"]
    assert _approx(f["deadline"], start + 30)
    assert w.events("start", id=later["id"])[0]["t"] >= later_at
    assert w.events("start", id=at["id"])[0]["t"] >= int(t0 + 3.5)
    w.wait_event("fail", 2, id=retried["id"])
    wait_for(lambda: go.inspect("task", q, retried["id"])["state"] == "archived", "archived")
    assert go.inspect("task", q, retried["id"])["retried"] == 1
    w.wait_event("canceled", id=short["id"])
    wait_for(lambda: go.inspect("task", q, short["id"])["state"] == "archived", "timed out task")
    # What pyasynq wrote, Go's Inspector reads: result, completion, retention.
    t = go.inspect("task", q, "gfull-1")
    assert (t["state"], t["result"], t["retention"]) == ("completed", 'py {"n":2}', 600)
    assert _approx(r.zscore(keys.completed_key(q), "gfull-1"), t["completed_at"] + 600)
    assert r.exists(ukey) == 0
    assert "id" in go.go("producer", "-type", "opt:uniq", "-payload", "u", "-queue", q,
                         "-unique", "1m")  # fmt: skip
