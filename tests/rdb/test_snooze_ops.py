"""snooze.lua (pyasynq): a leased task goes to the scheduled set with its ``msg`` (retried,
error_msg, last_failed_at) untouched and no counter moved; fenced like every outcome write.
The processor's side (Snooze raised by handlers) is in tests/server/test_snooze.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import encode_task
from pyasynq._rdb.ops import processing
from pyasynq._rdb.ops.snooze import snooze
from pyasynq._sync.broker import Broker
from pyasynq.errors import LeaseExpiredError, TaskGoneError

from .helpers import (
    counters,
    make_msg,
    queue_state,
    run_write,
    seed_active,
    seed_unique_lock,
    snapshot,
    task_fields,
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


def test_snooze_schedules_the_task_and_leaves_msg_and_counters_alone(b, r, now):
    msg = unique_msg("t1", retried=2, error_msg="earlier failure", last_failed_at=int(now) - 60)
    seed_active(r, msg, lease_expiry=now + 30, attempt="tok")
    seed_unique_lock(r, msg)
    stored = r.hget(keys.task_key(Q, "t1"), "msg")
    run_write(b, snooze(msg, now + 30, "tok"))
    st = queue_state(r, Q)
    assert st["active"] == [] and st["lease"] == []
    assert st["scheduled"] == [("t1", now + 30)]
    fields = task_fields(r, Q, "t1")
    assert fields["state"] == "scheduled"
    assert fields["snoozed"] == "1"
    assert "attempt" not in fields
    # Byte for byte what was stored: retried, error_msg and last_failed_at are Go's to keep.
    assert r.hget(keys.task_key(Q, "t1"), "msg") == stored == encode_task(msg)
    c = counters(r, Q, now)
    assert c.processed.value is None and c.failed.value is None
    assert c.processed_today.value is None and c.failed_today.value is None
    assert r.get(msg.unique_key) == b"t1"  # the lock stays with the task


def test_each_snooze_adds_one_to_the_count(b, r, now):
    msg = make_msg("t1")
    for n in (1, 2):
        seed_active(r, msg, lease_expiry=now + 30, attempt=f"tok{n}")
        r.zrem(keys.scheduled_key(Q), "t1")
        run_write(b, snooze(msg, now + 5, f"tok{n}"))
        assert task_fields(r, Q, "t1")["snoozed"] == str(n)


def test_run_at_is_rounded_up_to_a_whole_second(b, r, now):
    msg = make_msg("t1")
    seed_active(r, msg, lease_expiry=now + 30, attempt="tok")
    run_write(b, snooze(msg, now + 0.2, "tok"))
    assert queue_state(r, Q)["scheduled"] == [("t1", now + 1)]


def test_a_stale_token_changes_nothing(b, r, now):
    msg = make_msg("t1")
    seed_active(r, msg, lease_expiry=now + 30, attempt="new")
    before = snapshot(r)
    with pytest.raises(LeaseExpiredError):
        run_write(b, snooze(msg, now + 30, "old"))
    assert snapshot(r) == before


def test_a_task_no_longer_active_is_not_found(b, r, now):
    msg = make_msg("t1")
    seed_active(r, msg, lease_expiry=now + 30)
    r.lrem(keys.active_key(Q), 0, "t1")
    with pytest.raises(TaskGoneError):
        run_write(b, snooze(msg, now + 30, ""))


def test_the_forwarder_moves_a_snoozed_task_back_to_pending(b, r, now):
    msg = make_msg("t1")
    seed_active(r, msg, lease_expiry=now + 30, attempt="tok")
    run_write(b, snooze(msg, now + 5, "tok"))
    assert processing.forward_result(b.run(processing.forward(Q, "scheduled", int(now * 1e9)))) == 0
    moved = b.run(processing.forward(Q, "scheduled", int((now + 5) * 1e9)))
    assert processing.forward_result(moved) == 1
    assert queue_state(r, Q)["pending"] == ["t1"]
    assert task_fields(r, Q, "t1")["state"] == "pending"
