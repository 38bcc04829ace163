"""The forwarder, recoverer, quarantine, janitor and result-writer ops (wire spec 3.12 to
3.14, 3.18): every reply and the exact Redis state each one leaves."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import Command
from pyasynq._rdb.ops import processing as p
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, LeaseExpiredError

from .helpers import (
    make_msg,
    queue_state,
    run_write,
    seed_active,
    seed_aggregating,
    seed_archived,
    seed_completed,
    seed_pending,
    seed_retry,
    seed_scheduled,
    snapshot,
    task_fields,
    task_hash,
    task_msg,
)

Q = "default"


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def now() -> float:
    return float(int(time.time()))


# --------------------------------------------------------------------------- forward


def test_forward_moves_due_scheduled_tasks_to_pending(b, r, now):
    now_ns = int(now) * 1_000_000_000 + 123
    seed_scheduled(r, make_msg("first"), process_at=now - 20)
    seed_scheduled(r, make_msg("second"), process_at=now)
    seed_scheduled(r, make_msg("later"), process_at=now + 1)
    r.hset(keys.task_key(Q, "first"), "attempt", "stale")

    assert p.forward_result(b.run(p.forward(Q, "scheduled", now_ns))) == 2

    s = queue_state(r)
    assert s["pending"] == ["second", "first"]  # the earliest due is the oldest (tail)
    assert s["scheduled"] == [("later", now + 1)]
    for tid in ("first", "second"):
        f = task_fields(r, Q, tid)
        assert f["state"] == "pending" and f["pending_since"] == str(now_ns)
        assert "attempt" not in f
    assert p.forward_result(b.run(p.forward(Q, "scheduled", now_ns))) == 0


def test_forward_moves_due_retry_tasks(b, r, now):
    seed_retry(r, make_msg("t1"), retry_at=now - 1)
    assert p.forward_result(b.run(p.forward(Q, "retry", int(now * 1e9)))) == 1
    assert queue_state(r)["pending"] == ["t1"]
    assert queue_state(r)["retry"] == []


def test_forward_sends_group_tasks_to_their_group(b, r, now):
    seed_retry(r, make_msg("t1", group_key="g1"), retry_at=now - 5, group="g1")
    assert p.forward_result(b.run(p.forward(Q, "retry", int(now) * 10**9))) == 1
    assert r.zrange(keys.group_key(Q, "g1"), 0, -1, withscores=True) == [(b"t1", now)]
    f = task_fields(r, Q, "t1")
    assert f["state"] == "aggregating" and "pending_since" not in f
    s = queue_state(r)
    assert s["pending"] == [] and s["retry"] == []
    assert s["groups"] == []  # as in Go: the forwarder does not SADD groups


def test_forward_takes_at_most_100_per_call(b, r, now):
    pipe = r.pipeline(transaction=False)
    for i in range(150):
        pipe.hset(keys.task_key(Q, f"t{i}"), mapping={"msg": b"x", "state": "scheduled"})
        pipe.zadd(keys.scheduled_key(Q), {f"t{i}": now - 1})
    pipe.execute()
    call = p.forward(Q, "scheduled", int(now) * 10**9)
    assert [p.forward_result(b.run(call)) for _ in range(3)] == [100, 50, 0]
    assert r.llen(keys.pending_key(Q)) == 150


def test_forward_quarantines_ids_without_a_hash(b, r, now):
    r.zadd(keys.scheduled_key(Q), {"ghost": now - 1})
    assert p.forward_result(b.run(p.forward(Q, "scheduled", int(now) * 10**9))) == 1
    s = queue_state(r)
    assert s["scheduled"] == [] and s["pending"] == []
    assert s["quarantine"] == {"ghost": "no task hash"}
    assert task_hash(r, Q, "ghost") == {}


def test_forward_rejects_an_unknown_source():
    with pytest.raises(ValueError):
        p.forward(Q, "archived", 0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- leases


def test_extend_lease_updates_only_leased_ids(b, r, now):
    seed_active(r, make_msg("t1"), lease_expiry=now + 1)
    seed_active(r, make_msg("t2"), lease_expiry=now + 2)
    op = p.extend_lease(Q, ["t1", "t2", "gone"], now + 30)
    assert op == Command(
        (
            "ZADD",
            keys.lease_key(Q),
            "XX",
            int(now) + 30,
            "t1",
            int(now) + 30,
            "t2",
            int(now) + 30,
            "gone",
        )
    )
    b.run(op)
    assert queue_state(r)["lease"] == [("t1", now + 30), ("t2", now + 30)]


def test_extend_lease_needs_ids():
    with pytest.raises(ValueError):
        p.extend_lease(Q, [], 0)


def test_list_lease_expired_reports_every_expired_lease(b, r, now):
    cutoff = now - 30
    seed_active(r, make_msg("t1"), lease_expiry=cutoff - 1, attempt="w1")
    seed_active(r, make_msg("t2"), lease_expiry=cutoff, crashes=2)
    seed_active(r, make_msg("t3"), lease_expiry=cutoff + 1)
    r.zadd(keys.lease_key(Q), {"ghost": cutoff - 2})
    r.hset(keys.task_key(Q, "bad"), mapping={"msg": b"\xff", "state": "active"})
    r.zadd(keys.lease_key(Q), {"bad": cutoff - 3})
    before = snapshot(r)

    got = p.list_lease_expired_result(Q, b.run(p.list_lease_expired(Q, cutoff)))

    assert [g.task_id for g in got] == ["bad", "ghost", "t1", "t2"]
    bad, ghost, t1, t2 = got
    assert bad.msg is None and bad.problem.startswith("undecodable msg")
    assert ghost == p.Leased("ghost", None, "no task hash", 0)
    assert t1 == p.Leased("t1", make_msg("t1"), "", 0)
    assert t2 == p.Leased("t2", make_msg("t2"), "", 2)
    assert snapshot(r) == before  # a read


def test_list_lease_expired_of_an_empty_queue(b, r, now):
    assert p.list_lease_expired_result(Q, b.run(p.list_lease_expired(Q, now))) == []


def test_recovering_an_expired_lease_fences_out_the_dead_worker(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now - 31, attempt="w1")
    [lease] = p.list_lease_expired_result(Q, b.run(p.list_lease_expired(Q, now - 30)))
    assert lease.msg is not None
    run_write(
        b, p.retry(lease.msg, now, now + 5, "asynq: task lease expired", True, "", crashed=True)
    )
    # The task runs again under a new token; the old worker's late write is refused.
    r.zadd(keys.retry_key(Q), {"t1": now - 1})
    b.run(p.forward(Q, "retry", int(now) * 10**9))
    again = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "w2")))
    assert again is not None and again.msg is not None
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.done(m, now, "w1"))
    assert snapshot(r) == before
    run_write(b, p.done(again.msg, now, "w2"))
    assert task_hash(r, Q, "t1") == {}


def _recover(b: Broker, msg: TaskMessage, now: float, cutoff: float | None) -> None:
    run_write(b, p.retry(msg, now, now - 1, "asynq: task lease expired", True, "",
                         crashed=True, lease_cutoff=cutoff))  # fmt: skip


def test_a_recoverer_with_a_stale_listing_leaves_a_task_leased_again_alone(b, r, now):
    """Every worker's recoverer lists the same expired lease. The first recovers the task,
    a worker leases it again, then the second writes from its stale listing: fenced on its
    cutoff, the write is refused and the new owner keeps the task (chaos worker-sigkill:
    the task ran twice, the second owner's outcome dropped)."""
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now - 31, attempt="dead-w")
    cutoff = now - 30
    [first] = p.list_lease_expired_result(Q, b.run(p.list_lease_expired(Q, cutoff)))
    [second] = p.list_lease_expired_result(Q, b.run(p.list_lease_expired(Q, cutoff)))
    assert first.msg is not None and second.msg is not None
    _recover(b, first.msg, now, cutoff)
    b.run(p.forward(Q, "retry", int(now) * 10**9))
    again = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "w2")))
    assert again is not None and again.msg is not None
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        _recover(b, second.msg, now, cutoff)
    assert snapshot(r) == before
    run_write(b, p.done(again.msg, now, "w2"))  # the new owner's outcome goes through
    assert task_hash(r, Q, "t1") == {}


@pytest.mark.parametrize("write", ["retry", "archive"])
def test_a_recoverer_write_needs_the_lease_still_expired(b, r, now, write):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now - 10, attempt="w1")
    before = snapshot(r)
    ops = {
        "retry": lambda cutoff: p.retry(m, now, now, "x", True, "", lease_cutoff=cutoff),
        "archive": lambda cutoff: p.archive(m, now, "x", "", lease_cutoff=cutoff),
    }
    with pytest.raises(LeaseExpiredError):  # the lease (now - 10) is after the cutoff
        run_write(b, ops[write](now - 11))
    assert snapshot(r) == before
    run_write(b, ops[write](now - 10))  # at the cutoff: expired
    assert queue_state(r)["active"] == []


# --------------------------------------------------------------------------- quarantine


def test_quarantine_takes_an_active_task_out_and_keeps_its_hash(b, r, now):
    r.hset(keys.task_key(Q, "bad"), mapping={"msg": b"\xff", "state": "active"})
    r.lpush(keys.active_key(Q), "bad")
    r.zadd(keys.lease_key(Q), {"bad": now + 30})
    seed_active(r, make_msg("ok"), lease_expiry=now + 30)

    assert p.quarantine_result(b.run(p.quarantine(Q, "bad", "undecodable msg")))

    s = queue_state(r)
    assert s["active"] == ["ok"] and s["lease"] == [("ok", now + 30)]
    assert s["quarantine"] == {"bad": "undecodable msg"}
    assert task_hash(r, Q, "bad") == {"msg": b"\xff", "state": b"active"}
    assert p.list_quarantine_result(b.run(p.list_quarantine(Q))) == {"bad": "undecodable msg"}


@pytest.mark.parametrize("state", ["pending", "scheduled", "retry", "archived", "completed"])
def test_quarantine_removes_the_task_from_its_states_container(b, r, now, state):
    m = make_msg("t1")
    seeders = {
        "pending": lambda: seed_pending(r, m),
        "scheduled": lambda: seed_scheduled(r, m, process_at=now),
        "retry": lambda: seed_retry(r, m, retry_at=now),
        "archived": lambda: seed_archived(r, m, archived_at=now),
        "completed": lambda: seed_completed(r, m, expires_at=now),
    }
    seeders[state]()
    seed_pending(r, make_msg("other"))
    assert p.quarantine_result(b.run(p.quarantine(Q, "t1", "why")))
    s = queue_state(r)
    assert s["pending"] == ["other"]
    assert all(s[c] == [] for c in ("scheduled", "retry", "archived", "completed"))
    assert s["quarantine"] == {"t1": "why"}
    assert task_fields(r, Q, "t1")["state"] == state


def test_quarantine_removes_an_aggregating_task_from_its_group(b, r, now):
    seed_aggregating(r, make_msg("t1"), group="g1", added_at=now)
    assert p.quarantine_result(b.run(p.quarantine(Q, "t1", "why")))
    assert r.zcard(keys.group_key(Q, "g1")) == 0


def test_quarantine_of_an_id_without_hash_looks_everywhere(b, r, now):
    r.lpush(keys.pending_key(Q), "ghost")
    r.zadd(keys.retry_key(Q), {"ghost": now})
    assert p.quarantine_result(b.run(p.quarantine(Q, "ghost", "no task hash")))
    s = queue_state(r)
    assert s["pending"] == [] and s["retry"] == []
    assert s["quarantine"] == {"ghost": "no task hash"}


def test_quarantine_of_an_unknown_id_changes_nothing(b, r, now):
    seed_pending(r, make_msg("t1"))
    before = snapshot(r)
    assert not p.quarantine_result(b.run(p.quarantine(Q, "nobody", "why")))
    assert snapshot(r) == before


def test_quarantine_shortens_long_reasons():
    call = p.quarantine(Q, "t1", "x" * 1000)
    assert call.args[1] == "x" * 200


# --------------------------------------------------------------------------- janitor


def test_delete_expired_completed_in_batches(b, r, now):
    seed_completed(r, make_msg("old"), expires_at=now - 10)
    seed_completed(r, make_msg("edge"), expires_at=now)
    seed_completed(r, make_msg("kept"), expires_at=now + 1)
    call = p.delete_expired_completed(Q, now, batch=1)
    results = [p.delete_expired_completed_result(b.run(call)) for _ in range(3)]
    assert results == [1, 1, 0]
    assert queue_state(r)["completed"] == [("kept", now + 1)]
    assert task_hash(r, Q, "old") == {} and task_hash(r, Q, "edge") == {}
    assert task_hash(r, Q, "kept") != {}


def test_delete_expired_completed_default_batch(b, r, now):
    for i in range(120):
        seed_completed(r, make_msg(f"t{i}"), expires_at=now - 1)
    call = p.delete_expired_completed(Q, now)
    assert [b.run(call) for _ in range(3)] == [100, 20, 0]


def test_delete_expired_completed_rejects_a_bad_batch():
    with pytest.raises(ValueError):
        p.delete_expired_completed(Q, 0, batch=0)


def test_count_result_passes_errors_through():
    with pytest.raises(BrokerError):
        p.count_result(BrokerError("x"))
    with pytest.raises(BrokerError):
        p.count_result(b"1")


# --------------------------------------------------------------------------- result writer


def test_write_result_stores_and_overwrites_the_result(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    b.run(p.write_result(Q, "t1", b"first"))
    b.run(p.write_result(Q, "t1", b"\x00second"))
    h = task_hash(r, Q, "t1")
    assert h["result"] == b"\x00second"
    assert h["state"] == b"active" and task_msg(r, Q, "t1") == m
