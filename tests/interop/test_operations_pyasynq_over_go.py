"""pyasynq's CLI and Inspector read and act on what a Go asynq server, client and
scheduler wrote (the mirror of test_operations_go_over_pyasynq)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import pyasynq

from .support import Fleet, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.single_node]

QUEUE_FIELDS = ("size", "groups", "pending", "active", "scheduled", "retry", "archived",
                "completed", "aggregating", "processed", "failed", "processed_total",
                "failed_total", "paused")  # fmt: skip
Cli = Callable[..., Any]


def test_pyasynq_reads_a_go_server(go: Fleet, cli: Cli) -> None:
    q = "gops"
    srv = go.go_server("-retry-delay=1h", queues=[q], handle={
        "op:arch": "fail=always", "op:retry": "fail=always", "op:long": "sleep=60s"})  # fmt: skip
    ok = go.go("producer", "-queue", q, "-type", "op:ok", "-payload", "ok{i}", "-count", "2",
               "-retention", "10m")  # fmt: skip
    arch = go.go("producer", "-queue", q, "-type", "op:arch", "-payload", "a{i}", "-count", "2",
                 "-max-retry", "0")  # fmt: skip
    retry = go.go("producer", "-queue", q, "-type", "op:retry", "-payload", "r", "-max-retry", "5")
    long = go.go("producer", "-queue", q, "-type", "op:long", "-payload", "long")
    sched = go.go("producer", "-queue", q, "-type", "op:later", "-payload", "s{i}", "-count", "2",
                  "-process-in", "1h")  # fmt: skip
    grp = go.go("producer", "-queue", q, "-type", "op:grp", "-payload", "g{i}", "-count", "2",
                "-group", "g")  # fmt: skip
    srv.wait_event("start", id=long["id"])
    want = {"size": 10, "groups": 1, "pending": 0, "active": 1, "scheduled": 2, "retry": 1,
            "archived": 2, "completed": 2, "aggregating": 2, "processed": 5, "failed": 3,
            "processed_total": 5, "failed_total": 3, "paused": False}  # fmt: skip
    got = wait_for(lambda: (i := go.inspect("queue", q)) and
                   {f: i[f] for f in QUEUE_FIELDS} == want and i,
                   "Go to settle the queue")  # fmt: skip
    # The same figures through pyasynq's Inspector, `pyasynq queue inspect` and `stats`.
    [cli_info] = cli("queue", "inspect", q)
    [row] = cli("stats")["queues"]
    with pyasynq.Inspector(go.url) as insp:
        info = insp.get_queue_info(q)
        assert {f: getattr(info, f) for f in QUEUE_FIELDS} == want
        [py_today] = insp.history(q, 1)
    assert {f: cli_info[f] for f in QUEUE_FIELDS} == want
    assert {f: row[f] for f in QUEUE_FIELDS if f in row} == {f: want[f] for f in row
                                                             if f in QUEUE_FIELDS}  # fmt: skip
    assert (py_today.processed, py_today.failed) == (5, 3) == (got["processed"], got["failed"])
    [day] = cli("queue", "history", q, "--days", "1")
    assert (day["processed"], day["failed"], day["date"]) == (
        5,
        3,
        datetime.now(UTC).date().isoformat(),
    )
    # Task lists per state, one task in full, groups.
    expect = {"active": {long["id"]}, "scheduled": {t["id"] for t in sched},
              "retry": {retry["id"]}, "archived": {t["id"] for t in arch},
              "completed": {t["id"] for t in ok}}  # fmt: skip
    for state, ids in expect.items():
        assert {t["id"] for t in cli("task", "ls", "-q", q, "-s", state)} == ids, state
        assert {t["id"] for t in go.inspect("tasks", q, state)} == ids, state
    assert {t["id"] for t in cli("task", "ls", "-q", q, "-s", "aggregating", "-g", "g")} == {
        t["id"] for t in grp
    }
    one = cli("task", "inspect", "-q", q, "-i", arch[0]["id"])
    assert (one["state"], one["retried"], one["max_retry"]) == ("archived", 0, 0)
    assert one["last_err"] == "interop: op:arch fails on attempt 1"
    assert one["last_err"] == go.inspect("task", q, arch[0]["id"])["last_err"]
    done = cli("task", "inspect", "-q", q, "-i", ok[0]["id"])
    assert (done["state"], done["retention_seconds"]) == ("completed", 600)
    assert [(g["group"], g["size"]) for g in cli("group", "ls", "-q", q)] == [("g", 2)]
    # Servers: the Go server and the task it is running.
    [s] = wait_for(lambda: (x := cli("server", "ls")) and x[0]["active_workers"] and x,
                   "the running task in the Go server's workers")  # fmt: skip
    assert (s["pid"], s["concurrency"], s["queues"], s["status"]) == (srv.pid, 10, {q: 1},
                                                                      "active")  # fmt: skip
    [busy] = s["active_workers"]
    assert (busy["task_id"], busy["task_type"], busy["queue"]) == (long["id"], "op:long", q)


def test_pyasynq_reads_a_go_scheduler(go: Fleet, cli: Cli) -> None:
    _, [entry] = go.go_scheduler("@every 1s|cron:go|tick|gcrons")
    [e] = wait_for(lambda: cli("cron", "ls"), "the Go scheduler's entries")
    assert (e["id"], e["spec"], e["task_type"]) == (entry, "@every 1s", "cron:go")
    assert e["raw_options"] == ['Queue("gcrons")']
    hist = wait_for(lambda: cli("cron", "history", entry), "an enqueue by the Go scheduler",
                    timeout=10)  # fmt: skip
    with pyasynq.Inspector(go.url) as insp:
        [py_e] = insp.scheduler_entries()
        assert (py_e.id, py_e.task_payload, py_e.options.queue) == (entry, b"tick", "gcrons")
        first = hist[0]["task_id"]
        t = insp.get_task_info("gcrons", first)
        assert (t.type, t.payload, t.state) == ("cron:go", b"tick", "pending")
    go_ids = [x["task_id"] for x in go.inspect("cron-history", entry)]
    assert first in go_ids


def test_pyasynq_actions_on_a_go_server(go: Fleet, cli: Cli) -> None:
    q, paused, free = "gacts", "gacts-paused", "gacts-free"
    srv = go.go_server("-strict", queues=[q, f"{paused}=2", f"{free}=1"],
                       handle={"a:fail": "fail=always", "a:long": "sleep=60s"})  # fmt: skip
    [failed] = [go.go("producer", "-queue", q, "-type", "a:fail", "-max-retry", "0")]
    srv.wait_event("fail", id=failed["id"])
    wait_for(lambda: go.inspect("task", q, failed["id"])["state"] == "archived", "archived")
    # `pyasynq task run` sends the archived task back; the Go server runs it again.
    cli("task", "run", "-q", q, "-i", failed["id"], as_json=False)
    srv.wait_event("fail", 2, id=failed["id"])
    wait_for(lambda: go.inspect("task", q, failed["id"])["state"] == "archived", "archived")
    # Bulk verbs on tasks a Go client wrote.
    go.go("producer", "-queue", q, "-type", "a:later", "-count", "3", "-process-in", "1h")
    cli("task", "archiveall", "-q", q, "-s", "scheduled", as_json=False)
    info = go.inspect("queue", q)
    assert (info["scheduled"], info["archived"]) == (0, 4)
    cli("task", "runall", "-q", q, "-s", "archived", as_json=False)  # the Go server runs them
    srv.wait_event("done", 3, type="a:later")
    wait_for(lambda: go.inspect("task", q, failed["id"])["state"] == "archived", "archived")
    assert len(srv.events("fail", id=failed["id"])) == 3
    one = go.go("producer", "-queue", q, "-type", "a:later", "-process-in", "1h")
    cli("task", "archive", "-q", q, "-i", one["id"], as_json=False)
    assert go.inspect("task", q, one["id"])["state"] == "archived"
    cli("task", "delete", "-q", q, "-i", one["id"], as_json=False)
    assert go.inspect("task", q, one["id"], ok=False)["not_found"] is True
    cli("task", "deleteall", "-q", q, "-s", "archived", as_json=False)
    assert go.inspect("queue", q)["size"] == 0

    # `pyasynq queue pause` is honoured by the Go server (strict: it looks there first).
    cli("queue", "pause", "--allow-unknown", paused, as_json=False)  # before its first task
    held = go.go("producer", "-queue", paused, "-type", "a:held")
    probe = go.go("producer", "-queue", free, "-type", "a:probe")
    srv.wait_event("done", id=probe["id"])
    assert go.inspect("task", paused, held["id"])["state"] == "pending"
    assert go.inspect("queue", paused)["paused"] is True
    assert srv.events("start", id=held["id"]) == []
    cli("queue", "unpause", paused, as_json=False)
    srv.wait_event("done", id=held["id"])

    # `pyasynq task cancel` reaches the running Go handler.
    long = go.go("producer", "-queue", free, "-type", "a:long", "-max-retry", "0")
    srv.wait_event("start", id=long["id"])
    cli("task", "cancel", long["id"], as_json=False)
    [ev] = srv.wait_event("canceled", id=long["id"], timeout=10)
    assert ev["error"] == "context canceled"
    got = wait_for(lambda: (t := go.inspect("task", free, long["id"]))["state"] == "archived"
                   and t, "the canceled task archived")  # fmt: skip
    assert got["last_err"] == "context canceled"
