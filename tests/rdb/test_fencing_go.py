"""Fencing with Go workers in the fleet: a pyasynq worker that lost its lease must not change
a task that Go asynq took over, although Go's scripts never touch pyasynq's ``attempt``.

Go's side is run by hand, command by command, as asynq v0.26 runs it (wire spec 3.6, 3.10,
3.11, 3.12): its recoverer retries (or archives) a lease that expired 30 s ago or more, its
forwarder moves the task back to pending, its dequeue leases it until now + 30 s. ``attempt``
survives all of that; the lease score does not, and pyasynq's fence is "<token> <the lease
expiry this attempt wrote>".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage, encode_task
from pyasynq._rdb.ops import Call
from pyasynq._rdb.ops import processing as p
from pyasynq._sync.broker import Broker
from pyasynq.errors import LeaseExpiredError, TaskGoneError

from .helpers import make_msg, queue_state, run_write, seed_pending, snapshot, task_fields

Q = "default"
LEASE_EXPIRED = "asynq: task lease expired"


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def now() -> float:
    return float(int(time.time()))


# Go asynq's transitions, by hand --------------------------------------------------------


def go_recover(r: redis.Redis, msg: TaskMessage, now: float, *, is_failure: bool = True) -> None:
    """Go's recoverer on a lease-expired task with retries left (rdb.Retry)."""
    new = replace(
        msg,
        error_msg=LEASE_EXPIRED,
        last_failed_at=int(now),
        retried=msg.retried + 1 if is_failure else msg.retried,
    )
    assert r.lrem(keys.active_key(Q), 0, msg.id) == 1
    assert r.zrem(keys.lease_key(Q), msg.id) == 1
    r.zadd(keys.retry_key(Q), {msg.id: now})
    r.hset(keys.task_key(Q, msg.id), mapping={"msg": encode_task(new), "state": "retry"})


def go_archive(r: redis.Redis, msg: TaskMessage, now: float) -> None:
    """Go's recoverer on a lease-expired task without retries left (rdb.Archive)."""
    new = replace(msg, error_msg=LEASE_EXPIRED, last_failed_at=int(now))
    assert r.lrem(keys.active_key(Q), 0, msg.id) == 1
    assert r.zrem(keys.lease_key(Q), msg.id) == 1
    r.zadd(keys.archived_key(Q), {msg.id: now})
    r.hset(keys.task_key(Q, msg.id), mapping={"msg": encode_task(new), "state": "archived"})


def go_forward(r: redis.Redis, task_id: str, now: float) -> None:
    """Go's forwarder: retry -> pending, state pending, pending_since."""
    assert r.zrem(keys.retry_key(Q), task_id) == 1
    r.lpush(keys.pending_key(Q), task_id)
    key = keys.task_key(Q, task_id)
    r.hset(key, mapping={"state": "pending", "pending_since": int(now * 1e9)})


def go_dequeue(r: redis.Redis, now: float) -> str:
    """Go's dequeue: RPOPLPUSH pending -> active, state active, no pending_since, a lease."""
    tid = r.rpoplpush(keys.pending_key(Q), keys.active_key(Q)).decode()
    key = keys.task_key(Q, tid)
    r.hset(key, "state", "active")
    r.hdel(key, "pending_since")
    r.zadd(keys.lease_key(Q), {tid: now + 30})
    return tid


def stale_pyasynq_then_go_takeover(
    r: redis.Redis, b: Broker, msg: TaskMessage, now: float, *, is_failure: bool = True
) -> TaskMessage:
    """A pyasynq worker dequeues ``msg`` with token "stale", stalls past its lease; Go
    recovers the task, forwards it and runs it. Returns the msg the pyasynq worker holds."""
    seed_pending(r, msg)
    [leased] = p.dequeue_many_result(Q, b.run(p.dequeue_many(Q, now, "stale", 1)))
    assert leased.msg == msg
    go_recover(r, msg, now + 61, is_failure=is_failure)
    go_forward(r, msg.id, now + 61)
    assert go_dequeue(r, now + 61) == msg.id
    return msg


# The stale worker's writes -----------------------------------------------------------------

WRITES: dict[str, Callable[[TaskMessage, float], Call]] = {
    "done": lambda m, now: p.done(m, now, "stale"),
    "done_many": lambda m, now: p.done_many(Q, now, [(m, "stale")]),
    "mark_complete": lambda m, now: p.mark_complete(replace(m, retention=60), now, "stale"),
    "requeue": lambda m, now: p.requeue(m, "stale"),
    "retry": lambda m, now: p.retry(m, now, now + 10, "boom", True, "stale"),
    "archive": lambda m, now: p.archive(m, now, "boom", "stale"),
}


def _reply(b: Broker, name: str, op: Call) -> BaseException | None:
    [reply] = b.run_many([op])
    if name == "done_many":
        [reply] = p.done_many_result(reply, 1)
    try:
        p.check_write(reply)
    except (LeaseExpiredError, TaskGoneError) as exc:
        return exc
    return None


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_stale_write_after_a_go_takeover_is_refused_and_changes_nothing(b, r, now, write):
    msg = stale_pyasynq_then_go_takeover(r, b, make_msg("t1", retry=5), now)
    before = snapshot(r)

    err = _reply(b, write, WRITES[write](msg, now + 62))

    assert isinstance(err, LeaseExpiredError)
    assert snapshot(r) == before
    # Go's run is intact: active, leased by Go, msg as Go's recoverer left it.
    state = queue_state(r)
    assert state["active"] == ["t1"] and state["lease"] == [("t1", now + 91)]
    f = task_fields(r, Q, "t1")
    assert f["state"] == "active" and f["msg"].retried == 1


def test_a_go_recovery_that_is_no_failure_still_breaks_the_fence(b, r, now):
    # IsFailure false: retried stays; Go's new lease still breaks the fence.
    msg = stale_pyasynq_then_go_takeover(r, b, make_msg("t1"), now, is_failure=False)
    before = snapshot(r)
    assert isinstance(_reply(b, "done", WRITES["done"](msg, now + 62)), LeaseExpiredError)
    assert snapshot(r) == before


def test_the_stale_heartbeat_does_not_extend_gos_lease(b, r, now):
    stale_pyasynq_then_go_takeover(r, b, make_msg("t1"), now)
    before = snapshot(r)

    got = p.extend_leases_result(b.run(p.extend_leases(Q, [("t1", "stale")], now + 500)))

    assert got == []
    assert snapshot(r) == before
    assert queue_state(r)["lease"] == [("t1", now + 91)]


def test_a_go_worker_extending_its_lease_keeps_the_stale_worker_out(b, r, now):
    # Go's heartbeat: ZADD lease XX now + 30, a score the stale worker never wrote.
    msg = stale_pyasynq_then_go_takeover(r, b, make_msg("t1"), now)
    r.zadd(keys.lease_key(Q), {"t1": now + 95}, xx=True)
    before = snapshot(r)
    assert isinstance(_reply(b, "done_many", WRITES["done_many"](msg, now + 66)), LeaseExpiredError)
    assert snapshot(r) == before


def test_a_stale_write_after_go_archived_the_task_changes_nothing(b, r, now):
    msg = make_msg("t1", retry=0)
    seed_pending(r, msg)
    b.run(p.dequeue(Q, now, "stale"))
    go_archive(r, msg, now + 61)
    before = snapshot(r)

    err = _reply(b, "retry", WRITES["retry"](msg, now + 62))

    assert isinstance(err, LeaseExpiredError)
    assert snapshot(r) == before


def test_the_same_worker_still_writes_after_extending_its_lease(b, r, now):
    # The control: each extension moves the lease and the fence together, atomically, so
    # the worker's outcome never races its own heartbeat.
    msg = make_msg("t1")
    seed_pending(r, msg)
    b.run(p.dequeue(Q, now, "mine"))
    for until in (now + 40, now + 50):
        extended = p.extend_leases_result(b.run(p.extend_leases(Q, [("t1", "mine")], until)))
        assert extended == ["t1"]
        assert task_fields(r, Q, "t1")["attempt"] == f"mine {int(until)}"
    run_write(b, p.done(msg, now, "mine"))
    assert task_fields(r, Q, "t1") == {}
    assert queue_state(r)["active"] == []


def test_a_go_dequeue_after_a_pyasynq_recovery_fences_the_stale_worker(b, r, now):
    # pyasynq's recoverer (empty token) drops `attempt`; Go then dequeues the task.
    msg = make_msg("t1")
    seed_pending(r, msg)
    b.run(p.dequeue(Q, now, "stale"))
    run_write(b, p.retry(msg, now + 61, now + 61, LEASE_EXPIRED, True, "", crashed=True))
    go_forward(r, "t1", now + 61)
    go_dequeue(r, now + 61)
    before = snapshot(r)

    assert isinstance(_reply(b, "done", WRITES["done"](msg, now + 62)), LeaseExpiredError)
    assert snapshot(r) == before
