"""A mixed fleet: a Go asynq server and a pyasynq worker drain one queue together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import pyasynq

from .support import Fleet, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.single_node]

N_OK, N_FAIL, MAX_RETRY = 1800, 200, 2


def test_mixed_fleet_every_task_ends_once(go: Fleet, cli: Callable[..., Any]) -> None:
    q = "fleet"
    # Both servers are up before the tasks arrive; both fail "fleet:fail" on every attempt
    # and retry at once.
    gsrv = go.go_server("-concurrency=10", queues=[q], handle={"fleet:fail": "fail=always"})
    pyw = go.py_worker([q], handle={"fleet:fail": "fail=always"}, config={"concurrency": 10})

    tasks = [pyasynq.Task("fleet:ok", f"ok{i}".encode(), queue=q, retention=3600)
             for i in range(N_OK)]  # fmt: skip
    tasks += [pyasynq.Task("fleet:fail", f"fail{i}".encode(), queue=q, max_retry=MAX_RETRY)
              for i in range(N_FAIL)]  # fmt: skip
    with pyasynq.Client(go.url) as c:
        results = c.enqueue_many(tasks)
    assert all(res.info is not None for res in results)
    ids = [res.info.id for res in results if res.info is not None]
    ok_ids, fail_ids = set(ids[:N_OK]), set(ids[N_OK:])

    insp = pyasynq.Inspector(go.url)
    try:
        info = wait_for(lambda: (i := insp.get_queue_info(q)).completed + i.archived
                        == N_OK + N_FAIL and i.active == 0 and i, "the fleet to drain",
                        timeout=150, every=0.5)  # fmt: skip
        py_archived = {t.id for t in insp.list_archived_tasks(q, page_size=1000)}
    finally:
        insp.close()

    # Exactly once: every ok task done once (by either side), every failing task run
    # max_retry + 1 times and never done.
    done = Counter(e["id"] for p in (gsrv, pyw) for e in p.events("done"))
    fails = Counter(e["id"] for p in (gsrv, pyw) for e in p.events("fail"))
    assert set(done) == ok_ids and set(done.values()) == {1}
    assert set(fails) == fail_ids and set(fails.values()) == {MAX_RETRY + 1}
    by_go, by_py = len(gsrv.events("start")), len(pyw.events("start"))
    assert by_go > 0 and by_py > 0 and by_go + by_py == N_OK + N_FAIL * (MAX_RETRY + 1)

    # Go's Inspector, pyasynq's Inspector and pyasynq's CLI see the same figures.
    want = {"size": N_OK + N_FAIL, "pending": 0, "active": 0, "scheduled": 0, "retry": 0,
            "archived": N_FAIL, "completed": N_OK, "aggregating": 0,
            "processed": N_OK + N_FAIL * 3, "failed": N_FAIL * 3,
            "processed_total": N_OK + N_FAIL * 3, "failed_total": N_FAIL * 3}  # fmt: skip
    go_info = go.inspect("queue", q)
    [cli_info] = cli("queue", "inspect", q)
    [stats_row] = [row for row in cli("stats")["queues"] if row["queue"] == q]
    for name, value in want.items():
        assert go_info[name] == value, name
        assert getattr(info, name) == value, name
        assert cli_info[name] == value, name
        if name in stats_row:
            assert stats_row[name] == value, name
    go_archived = {t["id"] for t in go.inspect("tasks", q, "archived")}
    cli_archived = {t["id"] for t in cli("task", "ls", "-q", q, "-s", "archived", "--size", "1000")}
    assert go_archived == py_archived == cli_archived == fail_ids
    one = go.inspect("task", q, min(fail_ids))
    assert (one["state"], one["retried"], one["max_retry"]) == ("archived", MAX_RETRY, MAX_RETRY)
    print(f"\nmixed fleet: {N_OK + N_FAIL} tasks, Go ran {by_go} attempts, pyasynq {by_py}")
