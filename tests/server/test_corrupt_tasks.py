"""Corrupt task records in front of good tasks (issue 19, item 3): each is quarantined
with a reason, logged, and never blocks the tasks behind it, whether the worker meets it
in pending (dequeue) or with an expired lease in active (the recoverer)."""

from __future__ import annotations

import threading
import time

import redis
from rdb.helpers import make_msg, queue_state, seed_active

from pyasynq import Client, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import encode_task

from .support import Servers, wait_for

Q = "default"

# id -> what to store under its task key, and the reason the quarantine records.
CORRUPT = {
    "str": (b"a string, not a hash", "task key holds a string, not a hash"),
    "garbage": ({"msg": b"\xff\xfe\x00garbage", "state": "pending"}, "undecodable msg"),
    "truncated": (
        {"msg": encode_task(make_msg("truncated"))[:9], "state": "pending"},
        "undecodable msg",
    ),
    "nomsg": ({"state": "pending"}, "no msg field"),
    "other": (
        {"msg": encode_task(make_msg("someone-else")), "state": "pending"},
        "msg names task 'someone-else'",
    ),
}


def _store(r: redis.Redis, task_id: str, value: object) -> None:
    key = keys.task_key(Q, task_id)
    if isinstance(value, bytes):
        r.set(key, value)
    else:
        r.hset(key, mapping=value)  # type: ignore[arg-type]


def _all_quarantined(r: redis.Redis) -> dict[str, str]:
    def full() -> dict[str, str] | None:
        q: dict[str, str] = queue_state(r)["quarantine"]
        return q if len(q) == len(CORRUPT) else None

    found: dict[str, str] = wait_for(full, what="every corrupt task quarantined")
    return found


def _collect() -> tuple[list[bytes], object]:
    done: list[bytes] = []
    lock = threading.Lock()

    def handler(task: Task) -> None:
        with lock:
            done.append(task.payload or b"")

    return done, handler


def test_corrupt_pending_tasks_are_quarantined_and_the_rest_run(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    for task_id, (value, _) in CORRUPT.items():
        _store(r, task_id, value)
        r.rpush(keys.pending_key(Q), task_id)  # the tail: dequeued first
    for i in range(20):
        client.enqueue(Task("t", b"%d" % i), queue=Q)
    done, handler = _collect()
    servers.start(handler, queues={Q: 1})
    wait_for(lambda: len(done) == 20, what="the 20 good tasks behind the corrupt ones")
    quarantine = _all_quarantined(r)
    for task_id, (_, reason) in CORRUPT.items():
        assert reason in quarantine[task_id], (task_id, quarantine[task_id])
    wait_for(
        lambda: not any(queue_state(r)[k] for k in ("pending", "active", "lease")),
        what="pending, active and lease emptied",
    )


def test_corrupt_tasks_with_expired_leases_do_not_stop_the_recoverer(
    servers: Servers, r: redis.Redis
) -> None:
    now = time.time()
    for task_id, (value, _) in CORRUPT.items():
        _store(r, task_id, value)
        r.lpush(keys.active_key(Q), task_id)
        r.zadd(keys.lease_key(Q), {task_id: now - 100})
    seed_active(r, make_msg("good", retry=3), lease_expiry=now - 100)  # a dead worker's
    servers.start(lambda t: None, queues={Q: 1}, retry_delay_func=lambda n, e, t: 600)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "good"), what="the good task recovered")
    quarantine = _all_quarantined(r)
    assert "not a hash" in quarantine["str"]
    state = queue_state(r)
    assert state["active"] == [] and state["lease"] == []
    assert servers.log.find("quarantined", "error")
