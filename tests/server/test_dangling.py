"""Ids without task data behind them (evicted by Redis, or edited by hand) cost the
workers nothing and are reported once (issue 14, item 7): dequeue skips any number of them
at full speed with one summarised warning, and an id in active with no lease entry is given
one, so the recoverer takes it out of active instead of leaving it there forever."""

from __future__ import annotations

import threading
import time

import redis
from rdb.helpers import make_msg, queue_state, seed_active, task_fields

from pyasynq import Client, Task
from pyasynq._rdb import keys

from .support import Servers, wait_for

Q = "default"


def test_a_thousand_dangling_ids_do_not_hold_up_the_tasks_behind_them(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    # They used to be skipped 10 per poll: 1,000 in front of 100 tasks delayed them ~100 s.
    r.rpush(keys.pending_key(Q), *[f"gone{i}" for i in range(1000)])  # the tail: first
    for i in range(100):
        client.enqueue(Task("t", b"%d" % i), queue=Q)
    done = []
    lock = threading.Lock()

    def handler(task: Task) -> None:
        with lock:
            done.append(task)

    servers.start(handler, task_check_interval=1.0, concurrency=10)
    wait_for(lambda: len(done) == 100, timeout=10, what="the 100 tasks behind the ids")
    [line] = servers.log.find("with no task data", "warn")
    assert "queue default: skipped 1000 task id(s)" in line
    assert "evicted by Redis or deleted by hand" in line
    assert len(queue_state(r)["quarantine"]) == 1000


def test_an_active_id_without_a_lease_is_recovered(servers: Servers, r: redis.Redis) -> None:
    now = time.time()
    seed_active(r, make_msg("nolease", retry=3), lease_expiry=now + 60)
    r.zrem(keys.lease_key(Q), "nolease")  # as if evicted
    r.lpush(keys.active_key(Q), "ghost")  # no hash, no lease
    servers.start(lambda t: None, retry_delay_func=lambda n, e, t: 600, queues={Q: 1})
    wait_for(lambda: r.zscore(keys.retry_key(Q), "nolease"), what="nolease in retry")
    wait_for(lambda: queue_state(r)["active"] == [], what="active emptied")
    assert task_fields(r, Q, "nolease")["state"] == "retry"
    assert queue_state(r)["quarantine"] == {"ghost": "no task hash"}
    [line] = servers.log.find("had no lease", "warn")
    assert "2 task id(s) in active of queue default" in line
    assert "nolease" in line and "ghost" in line
