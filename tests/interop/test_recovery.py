"""Crash recovery and stalled workers across languages.

One setup serves the four cases, because Go's lease is fixed: asynq v0.26 leases tasks for
30 s, and its recoverer (run when a server starts, then every minute) only takes tasks
whose lease expired more than 30 s ago. So at one instant a pyasynq worker is SIGKILLed
and another SIGSTOPped (1 s leases, see py_app.py), and a Go server is SIGKILLed and
another SIGSTOPped; a pyasynq worker is started at once to recover the Go tasks (its
recoverer takes a lease 1 s after it expired), and a Go server is started once the
pyasynq leases are 30 s past. About 35 s in all, shared by the four tests.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from targets import flush, sync_client

import pyasynq
from pyasynq._rdb import keys, scripts

from .support import Fleet, HoldingProxy, Proc, fleet, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.single_node]

N_CRASH = 3
MIDWRITE = "midwrite-1"
NOT_FOUND = "NOT FOUND"


@dataclass
class Scene:
    go: Fleet
    r: redis.Redis
    ids: dict[str, list[str]]  # queue -> task ids
    py_killed: Proc
    py_stalled: Proc
    go_killed: Proc
    go_stalled: Proc
    py_rescuer: Proc
    go_rescuer: Proc
    py_midwrite: Proc
    proxy: HoldingProxy
    gates: Path  # Go's handlers for rs:py and rm:py hold their task until gates/<type> exists

    def open_gate(self, task_type: str) -> None:
        (self.gates / task_type).touch()


def _enqueue(c: pyasynq.Client, q: str, kind: str, n: int) -> list[str]:
    return [c.enqueue(pyasynq.Task(kind, f"{q}-{i}".encode()), queue=q, max_retry=3,
                      retention=600).id for i in range(n)]  # fmt: skip


@pytest.fixture(scope="module")
def scene(
    go_bin: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    r = sync_client(redis_url)
    flush(r)
    tmp = tmp_path_factory.mktemp("recovery")
    gates = tmp / "gates"
    gates.mkdir()
    with fleet(go_bin, redis_url, tmp) as go:
        with pyasynq.Client(redis_url) as c:
            ids = {"py-crash": _enqueue(c, "py-crash", "rc:py", N_CRASH),
                   "py-stall": _enqueue(c, "py-stall", "rs:py", 1),
                   "go-crash": _enqueue(c, "go-crash", "rc:go", N_CRASH),
                   "go-stall": _enqueue(c, "go-stall", "rs:go", 1)}  # fmt: skip
            c.enqueue(pyasynq.Task("rm:py", b"midwrite"), queue="py-midwrite", max_retry=3,
                      retention=600, task_id=MIDWRITE)  # fmt: skip
        # This worker reaches Redis through a proxy that holds all it sends from its first
        # write naming the task (a heartbeat): its outcome, sent while its own lease is
        # still valid (3 s lease, 0.2 s handler), is stuck on the way to Redis.
        proxy = HoldingProxy(redis_url, trigger=MIDWRITE.encode())
        py_midwrite = go.py_worker(["py-midwrite"], handle={"rm:py": "sleep=0.2"},
                                   config={"lease_duration": 3, "heartbeat_interval": 1},
                                   url=proxy.url)  # fmt: skip
        py_killed = go.py_worker(["py-crash"], handle={"rc:py": "sleep=600"})
        py_stalled = go.py_worker(["py-stall"], handle={"rs:py": "sleep=5"})
        go_killed = go.go_server(queues=["go-crash"], handle={"rc:go": "sleep=600s"})
        go_stalled = go.go_server(queues=["go-stall"], handle={"rs:go": "sleep=5s"})
        for p, n in ((py_killed, N_CRASH), (py_stalled, 1), (go_killed, N_CRASH), (go_stalled, 1),
                     (py_midwrite, 1)):  # fmt: skip
            p.wait_event("start", n)
        # The handler returned and its outcome (done or mark_complete) is held in the proxy.
        py_midwrite.wait_event("done")
        outcome = {scripts.sha(name).encode() for name in ("mark_complete", "done", "done_many")}
        wait_for(lambda: any(sha in proxy.held_bytes() for sha in outcome),
                 "the outcome write to be held in the proxy")  # fmt: skip
        py_midwrite.signal(signal.SIGSTOP)
        py_killed.signal(signal.SIGKILL)
        go_killed.signal(signal.SIGKILL)
        py_stalled.signal(signal.SIGSTOP)
        go_stalled.signal(signal.SIGSTOP)
        py_rescuer = go.py_worker(["go-crash", "go-stall"], handle={"*": "result=py {payload}"})

        def py_leases_old_enough() -> bool:
            scores = [s for q in ("py-crash", "py-stall", "py-midwrite")
                      for _, s in r.zrange(keys.lease_key(q), 0, -1, withscores=True)]  # fmt: skip
            return len(scores) == N_CRASH + 2 and max(scores) < time.time() - 30

        wait_for(py_leases_old_enough, "the pyasynq leases to be 30 s past", timeout=60, every=0.2)
        go_rescuer = go.go_server(queues=["py-crash", "py-stall", "py-midwrite"], handle={
            "rc:py": "result=go {payload}", "rs:py": f"wait={gates}/rs:py,result=go {{payload}}",
            "rm:py": f"wait={gates}/rm:py,result=go {{payload}}"})  # fmt: skip
        try:
            yield Scene(go, r, ids, py_killed, py_stalled, go_killed, go_stalled, py_rescuer,
                        go_rescuer, py_midwrite, proxy, gates)  # fmt: skip
        finally:
            proxy.close()
    r.close()


def test_sigkilled_pyasynq_worker_tasks_finished_by_go(scene: Scene) -> None:
    ids = scene.ids["py-crash"]
    done = scene.go_rescuer.wait_event("done", N_CRASH, timeout=30, type="rc:py")
    assert sorted(e["id"] for e in done) == sorted(ids)
    assert {e["retried"] for e in done} == {1}  # the recovery counted as a retry
    assert {e["id"] for e in scene.py_killed.events("start")} == set(ids)
    assert scene.py_killed.events("done") == []
    for tid in ids:
        t = wait_for(lambda tid=tid: (x := scene.go.inspect("task", "py-crash", tid))["state"]
                     == "completed" and x, "Go to complete the task")  # fmt: skip
        assert (t["retried"], t["last_err"]) == (1, "asynq: task lease expired")
        assert t["result"] == f"go {t['payload']}"
    assert NOT_FOUND not in scene.go_rescuer.log_text()


def test_sigkilled_go_server_tasks_finished_by_pyasynq(scene: Scene) -> None:
    ids = scene.ids["go-crash"]
    done = scene.py_rescuer.wait_event("done", N_CRASH, timeout=30, type="rc:go")
    assert sorted(e["id"] for e in done) == sorted(ids)
    assert {e["retried"] for e in done} == {1}
    assert {e["id"] for e in scene.go_killed.events("start")} == set(ids)
    assert scene.go_killed.events("done") == []
    with pyasynq.Inspector(scene.go.url) as insp:
        for tid in ids:
            t = wait_for(lambda tid=tid: (x := insp.get_task_info("go-crash", tid)).state
                         == "completed" and x, "pyasynq to complete the task")  # fmt: skip
            assert (t.retried, t.last_err) == (1, "asynq: task lease expired")
            assert t.result == b"py " + t.payload


def test_stalled_go_server_task_taken_over_by_pyasynq(scene: Scene) -> None:
    [tid] = scene.ids["go-stall"]
    [done] = scene.py_rescuer.wait_event("done", timeout=30, type="rs:go")
    assert (done["id"], done["retried"]) == (tid, 1)
    wait_for(lambda: scene.go.inspect("task", "go-stall", tid)["state"] == "completed",
             "pyasynq to complete the task")  # fmt: skip
    # The Go server wakes up past its lease: it must not touch the task again.
    scene.go_stalled.signal(signal.SIGCONT)
    scene.go_stalled.wait_event("start", timeout=10)  # (it had started before the stop)
    wait_for(lambda: scene.go_stalled.events("done") or scene.go_stalled.events("canceled"),
             "the resumed Go handler to return", timeout=15)  # fmt: skip
    scene.go_stalled.stop()  # a clean shutdown: any write it would make is made by now
    t = scene.go.inspect("task", "go-stall", tid)
    assert (t["state"], t["retried"], t["result"]) == ("completed", 1, "py go-stall-0")
    info = scene.go.inspect("queue", "go-stall")
    assert (info["completed"], info["size"], info["retry"], info["active"]) == (1, 1, 0, 0)
    assert NOT_FOUND not in scene.go_stalled.log_text()


def test_stalled_pyasynq_worker_task_taken_over_by_go(scene: Scene) -> None:
    [tid] = scene.ids["py-stall"]
    [start] = scene.go_rescuer.wait_event("start", timeout=30, type="rs:py")
    assert (start["id"], start["retried"]) == (tid, 1)
    # Go holds the task; the stalled pyasynq worker wakes up and finishes its own, stale
    # run of it. Its lease is long gone by its own clock: it must write nothing.
    scene.py_stalled.signal(signal.SIGCONT)
    scene.py_stalled.wait_event("done", timeout=10, id=tid)
    wait_for(lambda: f"task {tid}: lease expired before its outcome was written"
             in scene.py_stalled.log_text(), "the stale worker to drop its outcome")  # fmt: skip
    assert scene.go.inspect("task", "py-stall", tid)["state"] == "active"
    scene.open_gate("rs:py")
    [done] = scene.go_rescuer.wait_event("done", timeout=15, type="rs:py")
    assert (done["id"], done["retried"]) == (tid, 1)
    t = wait_for(lambda: (x := scene.go.inspect("task", "py-stall", tid))["state"] == "completed"
                 and x, "Go to complete the task", timeout=10)  # fmt: skip
    assert (t["retried"], t["result"]) == (1, "go py-stall-0")
    assert t["completed_at"] >= int(done["t"])
    info = scene.go.inspect("queue", "py-stall")
    assert (info["completed"], info["size"], info["retry"], info["active"]) == (1, 1, 0, 0)
    log = scene.go_rescuer.log_text()
    assert NOT_FOUND not in log, log


def test_pyasynq_worker_stalled_mid_write_cannot_touch_the_task_go_took_over(
    scene: Scene,
) -> None:
    [start] = scene.go_rescuer.wait_event("start", timeout=30, type="rm:py")
    assert (start["id"], start["retried"]) == (MIDWRITE, 1)
    # Go holds the task. The stalled worker's outcome, fenced by a token Go's scripts
    # never touch, reaches Redis now; then the worker resumes. The outcome must be
    # refused: on main it completes the task under Go's feet, and Go's own outcome then
    # fails with NOT FOUND.
    scene.proxy.release()  # the stale write lands while the worker is still stopped
    scene.py_midwrite.signal(signal.SIGCONT)
    wait_for(lambda: scene.go.inspect("task", "py-midwrite", MIDWRITE)["state"] != "active"
             or f"task {MIDWRITE}:" in scene.py_midwrite.log_text(),
             "the stale outcome's reply")  # fmt: skip
    assert scene.go.inspect("task", "py-midwrite", MIDWRITE)["state"] == "active"
    scene.open_gate("rm:py")
    [done] = scene.go_rescuer.wait_event("done", timeout=15, type="rm:py")
    t = wait_for(lambda: (x := scene.go.inspect("task", "py-midwrite", MIDWRITE))["state"]
                 == "completed" and x, "Go to complete the task", timeout=10)  # fmt: skip
    # Completed by Go: after Go's handler returned, with Go's msg and result.
    assert (t["retried"], t["result"]) == (1, "go midwrite")
    assert t["completed_at"] >= int(done["t"])
    log = scene.go_rescuer.log_text()
    assert NOT_FOUND not in log, log
