"""The processor's scripts (wire spec 3.6 to 3.11): dequeue and the five task writes,
every reply and error, and the exact Redis state each one leaves. The fencing token and
crash counter (pyasynq extensions) are covered with them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage, encode_task
from pyasynq._rdb.ops import MAX_INT64
from pyasynq._rdb.ops import processing as p
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, LeaseExpiredError, TaskGoneError

from .helpers import (
    DAY,
    all_keys,
    assert_ttl_90_days,
    counters,
    fence,
    make_msg,
    queue_state,
    run_write,
    seed_active,
    seed_archived,
    seed_pending,
    seed_retry,
    seed_scheduled,
    seed_unique_lock,
    snapshot,
    task_fields,
    task_hash,
    unique_msg,
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


# --------------------------------------------------------------------------- dequeue


def test_dequeue_moves_the_oldest_pending_task_to_active(b, r, now):
    m1, m2 = make_msg("t1"), make_msg("t2")
    seed_pending(r, m1, pending_since_ns=123)
    seed_pending(r, m2, pending_since_ns=456)

    got = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok-1")))

    assert got == p.Leased("t1", m1, "")
    s = queue_state(r)
    assert s["pending"] == ["t2"]
    assert s["active"] == ["t1"]
    assert s["lease"] == [("t1", now + 30)]
    assert task_hash(r, Q, "t1") == {
        "msg": encode_task(m1),
        "state": b"active",
        "attempt": fence("tok-1", now + 30).encode(),
    }
    assert task_fields(r, Q, "t2")["pending_since"] == "456"


def test_dequeue_pushes_onto_the_head_of_active(b, r, now):
    seed_active(r, make_msg("old"), lease_expiry=now + 10)
    seed_pending(r, make_msg("t1"))
    p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok", lease_duration=60)))
    assert queue_state(r)["active"] == ["t1", "old"]
    assert ("t1", now + 60) in queue_state(r)["lease"]


def test_dequeue_of_an_empty_queue_returns_none_and_writes_nothing(b, r, now):
    assert p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok"))) is None
    assert all_keys(r) == []


def test_dequeue_of_a_paused_queue_returns_none(b, r, now):
    seed_pending(r, make_msg("t1"))
    r.set(keys.paused_key(Q), int(now))
    before = snapshot(r)
    assert p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok"))) is None
    assert snapshot(r) == before


def test_dequeue_with_an_empty_token_stores_no_attempt(b, r, now):
    m = make_msg("t1")
    seed_pending(r, m)
    r.hset(keys.task_key(Q, "t1"), "attempt", "stale")
    p.dequeue_result(Q, b.run(p.dequeue(Q, now, "")))
    assert "attempt" not in task_hash(r, Q, "t1")


def test_dequeue_quarantines_ids_without_a_hash_and_takes_the_next(b, r, now):
    seed_pending(r, make_msg("t1"))
    r.rpush(keys.pending_key(Q), "ghost")  # tail: popped first
    r.hset(keys.task_key(Q, "nomsg"), "state", "pending")
    r.rpush(keys.pending_key(Q), "nomsg")  # popped before ghost

    got = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok")))

    assert got is not None and got.task_id == "t1"
    s = queue_state(r)
    assert s["quarantine"] == {"ghost": "no task hash", "nomsg": "no msg field"}
    assert s["pending"] == [] and s["active"] == ["t1"] and s["lease"] == [("t1", now + 30)]
    assert task_hash(r, Q, "nomsg") == {"state": b"pending"}  # left for inspection
    assert task_hash(r, Q, "ghost") == {}


def test_dequeue_skips_at_most_max_skip_dangling_ids_per_call(b, r, now):
    seed_pending(r, make_msg("t1"))
    for i in range(11):
        r.rpush(keys.pending_key(Q), f"ghost{i}")
    reply = b.run(p.dequeue(Q, now, "tok", max_skip=10))
    assert p.dequeue_result(Q, reply) is None
    assert p.skipped_ids(reply) == 10
    assert len(queue_state(r)["quarantine"]) == 10
    assert queue_state(r)["pending"] == ["t1", "ghost0"]  # popped from the tail
    reply = b.run(p.dequeue(Q, now, "tok", max_skip=10))
    got = p.dequeue_result(Q, reply)
    assert got is not None and got.task_id == "t1"
    assert p.skipped_ids(reply) == 1


def test_dequeue_skips_hundreds_of_dangling_ids_in_one_call(b, r, now):
    # Evicted task data (or ids pushed by hand) in front of a good task: one call gets
    # past all of them (it was 10 per call, one call per poll).
    seed_pending(r, make_msg("t1"))
    n = p.DANGLING_MAX - 1
    r.rpush(keys.pending_key(Q), *[f"ghost{i}" for i in range(n)])
    reply = b.run(p.dequeue(Q, now, "tok"))
    got = p.dequeue_result(Q, reply)
    assert got is not None and got.task_id == "t1"
    assert p.skipped_ids(reply) == n
    s = queue_state(r)
    assert len(s["quarantine"]) == n and s["pending"] == []
    assert s["active"] == ["t1"]


def test_dequeue_many_reports_the_dangling_ids_it_skipped(b, r, now):
    seed_pending(r, make_msg("t1"))
    r.rpush(keys.pending_key(Q), "ghost")
    reply = b.run(p.dequeue_many(Q, now, "tok", 5))
    assert [x.task_id for x in p.dequeue_many_result(Q, reply)] == ["t1"]
    assert p.skipped_ids(reply) == 1
    assert queue_state(r)["quarantine"] == {"ghost": "no task hash"}


def test_dequeue_reports_an_undecodable_msg_for_quarantine(b, r, now):
    r.hset(keys.task_key(Q, "bad"), mapping={"msg": b"\xff\xff\xff", "state": "pending"})
    r.lpush(keys.pending_key(Q), "bad")
    got = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok")))
    assert got is not None
    assert got.task_id == "bad" and got.msg is None
    assert got.problem.startswith("undecodable msg")
    assert queue_state(r)["active"] == ["bad"]  # still leased until quarantined


def test_dequeue_reports_a_msg_that_names_another_task(b, r, now):
    r.hset(keys.task_key(Q, "a"), mapping={"msg": encode_task(make_msg("b")), "state": "pending"})
    r.lpush(keys.pending_key(Q), "a")
    got = p.dequeue_result(Q, b.run(p.dequeue(Q, now, "tok")))
    assert got is not None and got.msg is None
    assert got.problem == "msg names task 'b' in queue 'default'"


def test_dequeue_result_rejects_a_malformed_reply():
    with pytest.raises(BrokerError):
        p.dequeue_result(Q, b"just-a-msg")
    with pytest.raises(BrokerError):
        p.dequeue_result(Q, [b"id", b"msg"])


def test_dequeue_many_takes_up_to_n_oldest_first(b, r, now):
    msgs = [make_msg(f"t{i}") for i in range(3)]
    for m in msgs:
        seed_pending(r, m)

    got = p.dequeue_many_result(Q, b.run(p.dequeue_many(Q, now, "tok", 2)))

    assert [g.task_id for g in got] == ["t0", "t1"]
    assert [g.msg for g in got] == msgs[:2]
    s = queue_state(r)
    assert s["pending"] == ["t2"]
    assert s["active"] == ["t1", "t0"]
    assert s["lease"] == [("t0", now + 30), ("t1", now + 30)]
    for tid in ("t0", "t1"):
        assert task_fields(r, Q, tid)["attempt"] == fence("tok", now + 30)
        assert task_fields(r, Q, tid)["state"] == "active"
        assert "pending_since" not in task_fields(r, Q, tid)


def test_dequeue_many_stops_when_the_queue_runs_dry(b, r, now):
    seed_pending(r, make_msg("t1"))
    r.rpush(keys.pending_key(Q), "ghost")
    got = p.dequeue_many_result(Q, b.run(p.dequeue_many(Q, now, "tok", 10)))
    assert [g.task_id for g in got] == ["t1"]
    assert queue_state(r)["quarantine"] == {"ghost": "no task hash"}
    assert p.dequeue_many_result(Q, b.run(p.dequeue_many(Q, now, "tok", 10))) == []


def test_dequeue_many_of_a_paused_queue_returns_nothing(b, r, now):
    seed_pending(r, make_msg("t1"))
    r.set(keys.paused_key(Q), int(now))
    assert p.dequeue_many_result(Q, b.run(p.dequeue_many(Q, now, "tok", 5))) == []
    assert queue_state(r)["pending"] == ["t1"]


@pytest.mark.parametrize("n", [0, -1, p.DEQUEUE_MANY_MAX + 1])
def test_dequeue_many_rejects_a_bad_count(n):
    with pytest.raises(ValueError):
        p.dequeue_many(Q, 0, "tok", n)


# --------------------------------------------------------------------------- done


def test_done_deletes_the_task_and_counts_it(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now + 30, attempt="tok")

    run_write(b, p.done(m, now, "tok"))

    assert task_hash(r, Q, "t1") == {}
    s = queue_state(r)
    assert s["active"] == [] and s["lease"] == []
    c = counters(r, Q, now)
    assert c.processed.value == 1 and c.processed.ttl is None
    assert c.processed_today.value == 1
    assert_ttl_90_days(r, keys.processed_key(Q, now))
    assert c.failed.value is None and c.failed_today.value is None


def test_done_passes_the_unique_key_only_when_there_is_one(now):
    assert len(p.done(make_msg("t1"), now, "").keys) == 5
    m = unique_msg("t1")
    assert p.done(m, now, "").keys[-1] == m.unique_key
    assert len(p.mark_complete(make_msg("t1", retention=5), now, "").keys) == 6
    assert len(p.mark_complete(unique_msg("t1", retention=5), now, "").keys) == 7
    for call in (p.done(m, now, ""), p.mark_complete(m, now, "")):
        assert all(call.keys), "an empty key would break Redis Cluster routing"


def test_done_releases_the_unique_lock_it_owns(b, r, now):
    m = unique_msg("t1")
    seed_active(r, m, lease_expiry=now + 30)
    seed_unique_lock(r, m)
    run_write(b, p.done(m, now, ""))
    assert r.exists(m.unique_key) == 0


def test_done_keeps_a_unique_lock_owned_by_another_task(b, r, now):
    m = unique_msg("t1")
    seed_active(r, m, lease_expiry=now + 30)
    r.set(m.unique_key, "someone-else", ex=100)
    run_write(b, p.done(m, now, ""))
    assert r.get(m.unique_key) == b"someone-else"


def test_daily_counter_gets_its_expiry_only_on_the_first_increment(b, r, now):
    daily = keys.processed_key(Q, now)
    r.set(daily, 5)  # no TTL: a later increment must not add one
    m1, m2 = make_msg("t1"), make_msg("t2")
    seed_active(r, m1, lease_expiry=now)
    seed_active(r, m2, lease_expiry=now)
    run_write(b, p.done(m1, now, ""))
    assert r.get(daily) == b"6" and r.ttl(daily) == -1
    r.expire(daily, 100)
    run_write(b, p.done(m2, now, ""))
    assert r.get(daily) == b"7" and 95 <= r.ttl(daily) <= 100


@pytest.mark.parametrize(("before", "after"), [(MAX_INT64, 1), (MAX_INT64 - 1, MAX_INT64)])
def test_done_wraps_the_processed_total_at_max_int64(b, r, now, before, after):
    r.set(keys.processed_total_key(Q), before)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    run_write(b, p.done(m, now, ""))
    assert int(r.get(keys.processed_total_key(Q))) == after


def test_done_not_in_active_is_not_found_and_changes_nothing(b, r, now):
    m = make_msg("t1")
    seed_retry(r, m, retry_at=now + 60)
    before = snapshot(r)
    with pytest.raises(TaskGoneError):
        run_write(b, p.done(m, now, ""))
    assert snapshot(r) == before


def test_done_with_a_token_on_a_recovered_task_is_fenced(b, r, now):
    # The recoverer moved the task to retry and dropped `attempt`: our token lost it.
    m = make_msg("t1")
    seed_retry(r, m, retry_at=now + 60)
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.done(m, now, "tok"))
    assert snapshot(r) == before


def test_done_without_a_lease_is_not_found_after_leaving_active(b, r, now):
    # Go checks after each removal, so the LREM stays done.
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    r.zrem(keys.lease_key(Q), "t1")
    with pytest.raises(TaskGoneError):
        run_write(b, p.done(m, now, ""))
    assert queue_state(r)["active"] == []
    assert task_fields(r, Q, "t1")["state"] == "active"
    assert counters(r, Q, now).processed.value is None


def test_done_without_a_hash_is_not_found_and_counts_nothing(b, r, now):
    m = make_msg("t1")
    r.lpush(keys.active_key(Q), "t1")
    r.zadd(keys.lease_key(Q), {"t1": now})
    with pytest.raises(TaskGoneError):
        run_write(b, p.done(m, now, ""))
    s = queue_state(r)
    assert s["active"] == [] and s["lease"] == []
    assert counters(r, Q, now).processed.value is None


def test_done_with_another_attempts_token_is_lease_lost_and_changes_nothing(b, r, now):
    m = unique_msg("t1")
    seed_active(r, m, lease_expiry=now + 30, attempt="new-owner")
    seed_unique_lock(r, m)
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.done(m, now, "old-owner"))
    assert snapshot(r) == before


def test_done_with_an_empty_token_skips_the_fence(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now + 30, attempt="someone")
    run_write(b, p.done(m, now, ""))
    assert task_hash(r, Q, "t1") == {}


def test_done_on_a_hash_without_attempt_is_fenced(b, r, now):
    # The task was re-dequeued by a worker that does not fence (Go): not ours any more.
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now + 30)
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.done(m, now, "tok"))
    assert snapshot(r) == before
    run_write(b, p.done(m, now, ""))  # an empty token (the recoverer's) is not fenced
    assert task_hash(r, Q, "t1") == {}


def test_errors_raised_by_broker_run_map_the_same_way(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now + 30, attempt="x")
    with pytest.raises(BrokerError) as info:
        b.run(p.done(m, now, "y"))
    assert isinstance(p.map_error(info.value), LeaseExpiredError)
    r.hset(keys.task_key(Q, "t1"), "attempt", fence("y", now + 30))
    r.delete(keys.active_key(Q))
    with pytest.raises(BrokerError) as info:
        b.run(p.done(m, now, "y"))
    assert isinstance(p.map_error(info.value), TaskGoneError)
    other = BrokerError("done failed: something else")
    assert p.map_error(other) is other
    assert set(p.DEFINITIVE_ERRORS) == {LeaseExpiredError, TaskGoneError}


def test_check_write_rejects_an_unexpected_reply():
    with pytest.raises(BrokerError):
        p.check_write(0)
    p.check_write(1)


# --------------------------------------------------------------------------- mark_complete


def test_mark_complete_keeps_the_task_as_completed(b, r, now):
    m = unique_msg("t1", retention=3600)
    seed_active(r, m, lease_expiry=now + 30, attempt="tok")
    seed_unique_lock(r, m)
    r.hset(keys.task_key(Q, "t1"), "result", b"\x00rows")

    run_write(b, p.mark_complete(m, now, "tok"))

    s = queue_state(r)
    assert s["active"] == [] and s["lease"] == []
    assert s["completed"] == [("t1", now + 3600)]
    f = task_fields(r, Q, "t1")
    assert f["state"] == "completed"
    assert f["msg"] == TaskMessage(**{**_fields(m), "completed_at": int(now)})
    assert task_hash(r, Q, "t1")["result"] == b"\x00rows"
    assert "attempt" not in f
    c = counters(r, Q, now)
    assert c.processed.value == 1 and c.processed_today.value == 1 and c.failed.value is None
    assert_ttl_90_days(r, keys.processed_key(Q, now))
    assert r.exists(m.unique_key) == 0


def _fields(m: TaskMessage) -> dict[str, object]:
    return {name: getattr(m, name) for name in m.__slots__}


def test_mark_complete_wraps_the_processed_total(b, r, now):
    r.set(keys.processed_total_key(Q), MAX_INT64)
    m = make_msg("t1", retention=10)
    seed_active(r, m, lease_expiry=now)
    run_write(b, p.mark_complete(m, now, ""))
    assert r.get(keys.processed_total_key(Q)) == b"1"


def test_mark_complete_already_completed_is_internal(b, r, now):
    m = make_msg("t1", retention=10)
    seed_active(r, m, lease_expiry=now)
    r.zadd(keys.completed_key(Q), {"t1": now})
    with pytest.raises(BrokerError) as info:
        run_write(b, p.mark_complete(m, now, ""))
    assert type(info.value) is BrokerError
    assert str(info.value).endswith("INTERNAL")
    s = queue_state(r)
    # As in Go the ZADD itself went through (score updated) before the check failed.
    assert s["active"] == [] and s["lease"] == [] and s["completed"] == [("t1", now + 10)]
    assert task_fields(r, Q, "t1")["state"] == "active"
    assert counters(r, Q, now).processed.value is None


def test_mark_complete_not_active_is_not_found(b, r, now):
    m = make_msg("t1", retention=10)
    seed_retry(r, m, retry_at=now)
    before = snapshot(r)
    with pytest.raises(TaskGoneError):
        run_write(b, p.mark_complete(m, now, ""))
    assert snapshot(r) == before


def test_mark_complete_without_lease_is_not_found(b, r, now):
    m = make_msg("t1", retention=10)
    seed_active(r, m, lease_expiry=now)
    r.delete(keys.lease_key(Q))
    with pytest.raises(TaskGoneError):
        run_write(b, p.mark_complete(m, now, ""))
    assert queue_state(r)["completed"] == []


def test_mark_complete_with_another_token_is_lease_lost(b, r, now):
    m = make_msg("t1", retention=10)
    seed_active(r, m, lease_expiry=now, attempt="a")
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.mark_complete(m, now, "b"))
    assert snapshot(r) == before


# --------------------------------------------------------------------------- requeue


def test_requeue_puts_the_task_next_in_line(b, r, now):
    seed_pending(r, make_msg("waiting"), pending_since_ns=1)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now + 30, attempt="tok")

    run_write(b, p.requeue(m, "tok"))

    s = queue_state(r)
    assert s["pending"] == ["waiting", "t1"]  # tail = next popped
    assert s["active"] == [] and s["lease"] == []
    assert task_hash(r, Q, "t1") == {"msg": encode_task(m), "state": b"pending"}
    assert counters(r, Q, now).processed.value is None


def test_requeue_not_active_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_pending(r, m)
    before = snapshot(r)
    with pytest.raises(TaskGoneError):
        run_write(b, p.requeue(m, ""))
    assert snapshot(r) == before


def test_requeue_without_lease_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    r.delete(keys.lease_key(Q))
    with pytest.raises(TaskGoneError):
        run_write(b, p.requeue(m, ""))
    assert queue_state(r)["pending"] == []


def test_requeue_with_another_token_is_lease_lost(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now, attempt="a")
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.requeue(m, "b"))
    assert snapshot(r) == before


# --------------------------------------------------------------------------- retry


def test_retry_after_a_failure(b, r, now):
    m = unique_msg("t1", retried=2, error_msg="old", last_failed_at=1)
    seed_active(r, m, lease_expiry=now + 30, attempt="tok")
    seed_unique_lock(r, m)

    run_write(b, p.retry(m, now, now + 3600, "boom", True, "tok"))

    s = queue_state(r)
    assert s["active"] == [] and s["lease"] == []
    assert s["retry"] == [("t1", now + 3600)]
    f = task_fields(r, Q, "t1")
    assert f["state"] == "retry"
    assert f["msg"] == TaskMessage(
        **{**_fields(m), "retried": 3, "error_msg": "boom", "last_failed_at": int(now)}
    )
    assert "attempt" not in f and "crashes" not in f
    c = counters(r, Q, now)
    assert (c.processed.value, c.failed.value) == (1, 1)
    assert (c.processed_today.value, c.failed_today.value) == (1, 1)
    assert c.processed.ttl is None and c.failed.ttl is None
    assert_ttl_90_days(r, keys.processed_key(Q, now))
    assert_ttl_90_days(r, keys.failed_key(Q, now))
    assert r.get(m.unique_key) == b"t1"  # kept


def test_retry_that_is_not_a_failure_counts_nothing(b, r, now):
    m = make_msg("t1", retried=2)
    seed_active(r, m, lease_expiry=now + 30)
    run_write(b, p.retry(m, now, now + 10, "later", False, ""))
    f = task_fields(r, Q, "t1")
    assert f["msg"].retried == 2
    assert f["msg"].error_msg == "later" and f["msg"].last_failed_at == int(now)
    assert queue_state(r)["retry"] == [("t1", now + 10)]
    c = counters(r, Q, now)
    assert c.processed.value is c.failed.value is c.processed_today.value is None


def test_retry_wraps_both_totals_together(b, r, now):
    r.set(keys.processed_total_key(Q), MAX_INT64)
    r.set(keys.failed_total_key(Q), 77)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    run_write(b, p.retry(m, now, now, "x", True, ""))
    assert r.get(keys.processed_total_key(Q)) == b"1"
    assert r.get(keys.failed_total_key(Q)) == b"1"


def test_retry_by_the_recoverer_counts_a_crash(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now - 60, attempt="dead-worker", crashes=2)
    run_write(b, p.retry(m, now, now + 5, "asynq: task lease expired", True, "", crashed=True))
    f = task_fields(r, Q, "t1")
    assert f["crashes"] == "3"
    assert "attempt" not in f


def test_retry_not_active_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_scheduled(r, m, process_at=now)
    before = snapshot(r)
    with pytest.raises(TaskGoneError):
        run_write(b, p.retry(m, now, now, "x", True, ""))
    assert snapshot(r) == before


def test_retry_without_lease_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    r.delete(keys.lease_key(Q))
    with pytest.raises(TaskGoneError):
        run_write(b, p.retry(m, now, now, "x", True, ""))
    assert queue_state(r)["retry"] == []
    assert counters(r, Q, now).failed.value is None


def test_retry_with_another_token_is_lease_lost(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now, attempt="a")
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.retry(m, now, now, "x", True, "b", crashed=True))
    assert snapshot(r) == before


# --------------------------------------------------------------------------- archive


def test_archive_keeps_the_failed_task(b, r, now):
    m = unique_msg("t1", retried=25)
    seed_active(r, m, lease_expiry=now + 30, attempt="tok")
    seed_unique_lock(r, m)

    run_write(b, p.archive(m, now, "gave up", "tok"))

    s = queue_state(r)
    assert s["active"] == [] and s["lease"] == []
    assert s["archived"] == [("t1", now)]
    f = task_fields(r, Q, "t1")
    assert f["state"] == "archived"
    assert f["msg"] == TaskMessage(
        **{**_fields(m), "error_msg": "gave up", "last_failed_at": int(now)}
    )
    assert "attempt" not in f
    c = counters(r, Q, now)
    assert (c.processed.value, c.failed.value) == (1, 1)
    assert (c.processed_today.value, c.failed_today.value) == (1, 1)
    assert_ttl_90_days(r, keys.processed_key(Q, now))
    assert_ttl_90_days(r, keys.failed_key(Q, now))
    assert r.get(m.unique_key) == b"t1"


def test_archive_drops_tasks_older_than_90_days_with_their_hashes(b, r, now):
    cutoff = now - 90 * DAY
    for tid, at in [("ancient", cutoff - 1), ("edge", cutoff), ("recent", cutoff + 1)]:
        seed_archived(r, make_msg(tid), archived_at=at)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)

    run_write(b, p.archive(m, now, "x", ""))

    assert queue_state(r)["archived"] == [("recent", cutoff + 1), ("t1", now)]
    assert task_hash(r, Q, "ancient") == {} and task_hash(r, Q, "edge") == {}
    assert task_hash(r, Q, "recent") != {}


def test_archive_caps_the_archive_below_max_size(b, r, now):
    for i in range(3):
        seed_archived(r, make_msg(f"a{i}"), archived_at=now - 10 + i)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)

    run_write(b, p.archive(m, now, "x", "", max_size=3))

    # 4 members, ranks 0..(4-3) removed: max_size - 1 remain, the newest.
    assert [i for i, _ in queue_state(r)["archived"]] == ["a2", "t1"]
    assert task_hash(r, Q, "a0") == {} and task_hash(r, Q, "a1") == {}


def test_archive_at_the_real_cap_leaves_9999(b, r, now):
    pipe = r.pipeline(transaction=False)
    for i in range(p.ARCHIVE_MAX_SIZE - 1):
        pipe.hset(keys.task_key(Q, f"a{i}"), "state", "archived")
        pipe.zadd(keys.archived_key(Q), {f"a{i}": now - 100})
    pipe.execute()
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    run_write(b, p.archive(m, now, "x", ""))
    assert r.zcard(keys.archived_key(Q)) == 9999
    assert r.zscore(keys.archived_key(Q), "t1") == now
    assert r.exists(keys.task_key(Q, "a0")) == 0  # the lowest rank went, hash too
    assert r.exists(keys.task_key(Q, "a1")) == 1


def test_archive_by_the_recoverer_counts_a_crash(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now - 60, attempt="dead")
    run_write(b, p.archive(m, now, "asynq: task lease expired", "", crashed=True))
    assert task_fields(r, Q, "t1")["crashes"] == "1"


def test_archive_wraps_both_totals(b, r, now):
    r.set(keys.processed_total_key(Q), MAX_INT64)
    r.set(keys.failed_total_key(Q), 5)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    run_write(b, p.archive(m, now, "x", ""))
    assert r.get(keys.processed_total_key(Q)) == b"1"
    assert r.get(keys.failed_total_key(Q)) == b"1"


def test_archive_not_active_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_pending(r, m)
    before = snapshot(r)
    with pytest.raises(TaskGoneError):
        run_write(b, p.archive(m, now, "x", ""))
    assert snapshot(r) == before


def test_archive_without_lease_is_not_found(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    r.delete(keys.lease_key(Q))
    with pytest.raises(TaskGoneError):
        run_write(b, p.archive(m, now, "x", ""))
    assert queue_state(r)["archived"] == []


def test_archive_with_another_token_is_lease_lost(b, r, now):
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now, attempt="a")
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, p.archive(m, now, "x", "b"))
    assert snapshot(r) == before


def test_archive_rejects_a_cap_that_would_drop_the_task_itself():
    with pytest.raises(ValueError):
        p.archive(make_msg("t1"), 0, "x", "", max_size=1)


@pytest.mark.parametrize("write", ["retry", "archive"])
def test_failure_counters_get_their_expiry_only_on_the_first_increment(b, r, now, write):
    r.set(keys.processed_key(Q, now), 5)
    r.set(keys.failed_key(Q, now), 3)
    m = make_msg("t1")
    seed_active(r, m, lease_expiry=now)
    op = p.retry(m, now, now, "x", True, "") if write == "retry" else p.archive(m, now, "x", "")
    run_write(b, op)
    assert r.get(keys.processed_key(Q, now)) == b"6" and r.ttl(keys.processed_key(Q, now)) == -1
    assert r.get(keys.failed_key(Q, now)) == b"4" and r.ttl(keys.failed_key(Q, now)) == -1


# --------------------------------------------------------------------------- lease_orphans


def test_lease_orphans_leases_active_ids_that_have_no_lease(b, r, now):
    seed_active(r, make_msg("held"), lease_expiry=now + 30)
    seed_active(r, make_msg("orphan"), lease_expiry=now + 30)
    r.zrem(keys.lease_key(Q), "orphan")
    r.lpush(keys.active_key(Q), "ghost")
    got = p.lease_orphans_result(b.run(p.lease_orphans(Q, now)))
    assert sorted(got) == ["ghost", "orphan"]
    s = queue_state(r)
    assert sorted(s["lease"]) == [("ghost", now), ("held", now + 30), ("orphan", now)]
    assert p.lease_orphans_result(b.run(p.lease_orphans(Q, now))) == []


def test_lease_orphans_looks_at_the_oldest_scan_ids(b, r, now):
    r.lpush(keys.active_key(Q), "old", "new")  # "old" at the tail
    assert p.lease_orphans_result(b.run(p.lease_orphans(Q, now, scan=1))) == ["old"]
    with pytest.raises(ValueError, match="scan"):
        p.lease_orphans(Q, now, scan=0)
