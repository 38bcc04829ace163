"""Go's Inspector (what the Go `asynq` CLI and asynqmon are built on) reads and acts on
state that pyasynq's client, worker and scheduler wrote."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

import pyasynq
from pyasynq.errors import TaskNotFoundError

from .support import Fleet, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.single_node]

QUEUE_FIELDS = ("size", "groups", "pending", "active", "scheduled", "retry", "archived",
                "completed", "aggregating", "processed", "failed", "processed_total",
                "failed_total", "paused")  # fmt: skip


def _ids(tasks: list[dict]) -> set[str]:
    return {t["id"] for t in tasks}


def test_go_inspector_reads_pyasynq_state(go: Fleet) -> None:
    q, idle = "ops", "ops-idle"
    w = go.py_worker([q], handle={"op:arch": "fail=always", "op:retry": "fail=always",
                                  "op:long": "sleep=60"},
                     config={"retry_delay": 3600})  # fmt: skip
    with pyasynq.Client(go.url) as c:
        ok = [c.enqueue(pyasynq.Task("op:ok", f"ok{i}".encode()), queue=q, retention=600)
              for i in range(2)]  # fmt: skip
        arch = [c.enqueue(pyasynq.Task("op:arch", f"a{i}".encode()), queue=q, max_retry=0)
                for i in range(2)]  # fmt: skip
        retry = c.enqueue(pyasynq.Task("op:retry", b"r"), queue=q, max_retry=5)
        long = c.enqueue(pyasynq.Task("op:long", b"long"), queue=q)
        sched = [c.enqueue(pyasynq.Task("op:later", f"s{i}".encode()), queue=q, process_in=3600)
                 for i in range(2)]  # fmt: skip
        grp = [c.enqueue(pyasynq.Task("op:grp", f"g{i}".encode()), queue=q, group="g")
               for i in range(2)]  # fmt: skip
        pend = [c.enqueue(pyasynq.Task("op:idle", f"p{i}".encode()), queue=idle)
                for i in range(3)]  # fmt: skip
    w.wait_event("start", id=long.id)
    want = {"size": 10, "groups": 1, "pending": 0, "active": 1, "scheduled": 2, "retry": 1,
            "archived": 2, "completed": 2, "aggregating": 2, "processed": 5, "failed": 3,
            "processed_total": 5, "failed_total": 3, "paused": False}  # fmt: skip
    insp = pyasynq.Inspector(go.url)
    try:
        wait_for(lambda: {f: getattr(insp.get_queue_info(q), f) for f in QUEUE_FIELDS} == want,
                 "pyasynq to settle the queue")  # fmt: skip
        # Stats and queue info: every figure the same, as pyasynq's Inspector has it.
        stats = {row["queue"]: row for row in go.inspect("stats")}
        assert sorted(stats) == sorted(insp.queues()) == [q, idle]
        assert {f: stats[q][f] for f in QUEUE_FIELDS} == want
        assert stats[idle]["pending"] == stats[idle]["size"] == 3
        [today] = go.inspect("history", q, "1")
        [py_today] = insp.history(q, 1)
        assert (today["processed"], today["failed"]) == (py_today.processed, py_today.failed)
        assert (today["processed"], today["failed"], today["date"]) == (
            5,
            3,
            datetime.now(UTC).date().isoformat(),
        )
        # Task lists per state and one task in full.
        expect = {"active": {long.id}, "scheduled": {t.id for t in sched},
                  "retry": {retry.id}, "archived": {t.id for t in arch},
                  "completed": {t.id for t in ok}}  # fmt: skip
        for state, ids in expect.items():
            assert _ids(go.inspect("tasks", q, state)) == ids, state
            assert {t.id for t in insp.list_tasks(q, state)} == ids, state
        assert _ids(go.inspect("tasks", q, "aggregating", "g")) == {t.id for t in grp}
        assert _ids(go.inspect("tasks", idle, "pending")) == {t.id for t in pend}
        got, py = go.inspect("task", q, arch[0].id), insp.get_task_info(q, arch[0].id)
        assert (got["state"], got["retried"], got["max_retry"]) == ("archived", 0, 0)
        assert got["last_err"] == py.last_err == "RuntimeError: interop: op:arch fails on attempt 1"
        assert got["last_failed_at"] == py.last_failed_at.timestamp()
        got = go.inspect("task", q, retry.id)
        assert (got["state"], got["retried"]) == ("retry", 1)
        assert got["next_process_at"] == insp.get_task_info(q, retry.id).next_process_at.timestamp()
        assert go.inspect("groups", q) == [{"group": "g", "size": 2}]
        # Servers: the pyasynq worker, with the task it is running.
        # (a heartbeat after the task started lists it among the server's workers)
        [srv] = wait_for(lambda: (s := go.inspect("servers")) and s[0]["active_workers"] and s,
                         "the running task in the server's workers")  # fmt: skip
        [py_srv] = insp.servers()
        assert (srv["pid"], srv["host"], srv["id"]) == (w.pid, py_srv.host, py_srv.id)
        assert (srv["concurrency"], srv["queues"], srv["status"]) == (10, {q: 1}, "active")
        [busy] = srv["active_workers"]
        assert (busy["task_id"], busy["task_type"], busy["queue"], busy["task_payload"]) == (
            long.id,
            "op:long",
            q,
            "long",
        )
    finally:
        insp.close()


def test_go_inspector_reads_a_pyasynq_scheduler(go: Fleet) -> None:
    sched = pyasynq.Scheduler(go.url, heartbeat_interval=1)
    entry = sched.register("@every 1s", pyasynq.Task("cron:py", b"tick"), queue="crons")
    sched.start()
    try:
        [e] = wait_for(lambda: go.inspect("cron"), "the scheduler's entries")
        assert (e["id"], e["spec"], e["type"], e["payload"]) == (entry, "@every 1s", "cron:py",
                                                                 "tick")  # fmt: skip
        assert 'Queue("crons")' in e["opts"]
        events = wait_for(lambda: go.inspect("cron-history", entry), "an enqueue", timeout=10)
        with pyasynq.Inspector(go.url) as insp:
            py_events = insp.list_scheduler_enqueue_events(entry)
        n = min(len(events), len(py_events))  # the scheduler may tick between the two reads
        assert [x["task_id"] for x in events[-n:]] == [x.task_id for x in py_events[-n:]]
        tick = go.inspect("task", "crons", events[0]["task_id"])
        assert (tick["type"], tick["payload"], tick["state"]) == ("cron:py", "tick", "pending")
    finally:
        sched.shutdown()


def test_go_inspector_actions_on_pyasynq_tasks(go: Fleet) -> None:
    q = "acts"
    with pyasynq.Client(go.url) as c:
        p = [c.enqueue(pyasynq.Task("a:p", f"p{i}".encode()), queue=q) for i in range(4)]
        s = [c.enqueue(pyasynq.Task("a:s", f"s{i}".encode()), queue=q, process_in=3600)
             for i in range(3)]  # fmt: skip
    insp = pyasynq.Inspector(go.url)
    try:
        assert go.inspect("archive", q, p[0].id) == {"ok": True}
        assert insp.get_task_info(q, p[0].id).state == "archived"
        assert go.inspect("run", q, p[0].id) == {"ok": True}
        assert insp.get_task_info(q, p[0].id).state == "pending"
        assert go.inspect("delete", q, p[1].id) == {"ok": True}
        with pytest.raises(TaskNotFoundError):
            insp.get_task_info(q, p[1].id)
        assert go.inspect("delete", q, p[1].id, ok=False)["not_found"] is True
        assert go.inspect("archive-all", q, "scheduled") == {"n": 3}
        info = insp.get_queue_info(q)
        assert (info.scheduled, info.archived, info.pending) == (0, 3, 3)
        assert {t.id for t in insp.list_archived_tasks(q)} == {t.id for t in s}
        assert go.inspect("run-all", q, "archived") == {"n": 3}
        assert insp.get_queue_info(q).pending == 6
        assert go.inspect("delete-all", q, "pending") == {"n": 6}
        assert insp.get_queue_info(q).size == 0
        assert go.inspect("delete-queue", q) == {"ok": True}
        assert q not in insp.queues()
    finally:
        insp.close()


def test_go_pause_is_honoured_and_go_cancel_reaches_a_pyasynq_handler(go: Fleet) -> None:
    paused, free = "acts-paused", "acts-free"
    # Strict priority: an idle worker always looks at the paused queue first.
    w = go.py_worker([f"{paused}=2", f"{free}=1"], handle={"a:long": "sleep=60"},
                     config={"strict_priority": True})  # fmt: skip
    assert go.inspect("pause", paused) == {"ok": True}
    with pyasynq.Client(go.url) as c:
        held = c.enqueue(pyasynq.Task("a:held", b"h"), queue=paused)
        probe = c.enqueue(pyasynq.Task("a:probe", b"p"), queue=free)
        w.wait_event("done", id=probe.id)
        with pyasynq.Inspector(go.url) as insp:
            assert insp.get_queue_info(paused).paused is True
            assert insp.get_task_info(paused, held.id).state == "pending"
        assert w.events("start", id=held.id) == []
        assert go.inspect("unpause", paused) == {"ok": True}
        w.wait_event("done", id=held.id)

        long = c.enqueue(pyasynq.Task("a:long", b"l"), queue=free, max_retry=0)
    w.wait_event("start", id=long.id)
    t0 = time.monotonic()
    assert go.inspect("cancel", long.id) == {"ok": True}
    w.wait_event("canceled", id=long.id, timeout=10)
    assert time.monotonic() - t0 < 10
    got = wait_for(lambda: (t := go.inspect("task", free, long.id))["state"] == "archived" and t,
                   "the canceled task archived")  # fmt: skip
    assert got["retried"] == 0 and got["last_err"]
