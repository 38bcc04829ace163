"""Aggregation scripts (wire spec 3.15): check, read, delete and reclaim aggregation sets."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import conformance as cf
import pytest
import redis

from pyasynq import Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import encode_task
from pyasynq._rdb.ops import Call, Command
from pyasynq._rdb.ops import aggregation as agg
from pyasynq._rdb.ops import processing as p
from pyasynq._rdb.ops.enqueue import enqueue_result, prepare
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError
from pyasynq.options import Options

from .helpers import (
    all_keys,
    make_msg,
    queue_state,
    seed_aggregating,
    seed_unique_lock,
    task_hash,
    unique_msg,
    zset_items,
)

Q = "default"
SET = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def now() -> float:
    return float(int(time.time()))


def check(b: Broker, group: str, now: float, set_id: str = SET, **kw: int) -> bool:
    kw.setdefault("grace_period", 60)
    return agg.check_group_result(b.run(agg.check_group(Q, group, set_id, now, **kw)))


def seed_group(r: redis.Redis, group: str, scores: dict[str, float]) -> None:
    for tid, at in scores.items():
        seed_aggregating(r, make_msg(tid), group=group, added_at=at)


# --------------------------------------------------------------------------- check


def test_check_of_an_empty_group_is_0(b, r, now):
    r.sadd(keys.groups_key(Q), "g1")
    assert not check(b, "g1", now)
    assert all_keys(r) == [keys.groups_key(Q)]


def test_check_of_a_group_still_in_its_grace_period_is_0(b, r, now):
    seed_group(r, "g1", {"t1": now - 100, "t2": now - 59})
    assert not check(b, "g1", now)
    assert zset_items(r, keys.group_key(Q, "g1")) == [("t1", now - 100), ("t2", now - 59)]
    assert r.exists(keys.aggregation_set_key(Q, "g1", SET)) == 0
    assert queue_state(r)["aggregation_sets"] == []


def test_check_after_the_grace_period_takes_the_whole_group(b, r, now):
    seed_group(r, "g1", {"t1": now - 100, "t2": now - 60})
    seed_group(r, "g2", {"x": now})

    assert check(b, "g1", now)

    set_key = keys.aggregation_set_key(Q, "g1", SET)
    assert zset_items(r, set_key) == [("t1", now - 100), ("t2", now - 60)]
    assert r.exists(keys.group_key(Q, "g1")) == 0
    s = queue_state(r)
    assert s["groups"] == ["g2"]  # g1 is empty now
    assert s["aggregation_sets"] == [(set_key, now + agg.AGGREGATION_SET_TIMEOUT)]
    assert task_hash(r, Q, "t1")["state"] == b"aggregating"  # states do not change


def test_check_with_max_size_takes_the_oldest_members(b, r, now):
    seed_group(r, "g1", {"t1": now - 3, "t2": now - 2, "t3": now - 1})
    assert check(b, "g1", now, max_size=2)
    assert zset_items(r, keys.aggregation_set_key(Q, "g1", SET)) == [
        ("t1", now - 3),
        ("t2", now - 2),
    ]
    assert zset_items(r, keys.group_key(Q, "g1")) == [("t3", now - 1)]
    assert queue_state(r)["groups"] == ["g1"]  # not empty: stays


def test_check_below_max_size_waits(b, r, now):
    seed_group(r, "g1", {"t1": now - 3})
    assert not check(b, "g1", now, max_size=2)


def test_check_with_max_delay_fires_on_the_oldest_member(b, r, now):
    seed_group(r, "g1", {"t1": now - 300, "t2": now})
    assert not check(b, "g1", now)  # no max delay: the new member restarts the grace
    assert not check(b, "g1", now, max_delay=301)
    assert check(b, "g1", now, max_delay=300)
    assert r.zcard(keys.aggregation_set_key(Q, "g1", SET)) == 2


def test_check_with_max_size_and_another_criterion_still_caps_the_set(b, r, now):
    seed_group(r, "g1", {"t1": now - 100, "t2": now - 99, "t3": now - 98})
    assert check(b, "g1", now, max_size=5, grace_period=10)
    assert check(b, "g1", now, set_id="s2", max_size=5, grace_period=10) is False
    assert r.zcard(keys.aggregation_set_key(Q, "g1", SET)) == 3


def test_check_validates_its_limits():
    with pytest.raises(ValueError):
        agg.check_group(Q, "g", SET, 0, grace_period=0)
    with pytest.raises(ValueError):
        agg.check_group(Q, "g", SET, 0, grace_period=1, max_size=-1)


def test_list_groups(b, r, now):
    seed_group(r, "b", {"t1": now})
    seed_group(r, "a:x", {"t2": now})
    assert agg.list_groups_result(b.run(agg.list_groups(Q))) == ["a:x", "b"]
    assert agg.list_groups(Q) == Command(("SMEMBERS", keys.groups_key(Q)))


# --------------------------------------------------------------------------- read / delete


def test_read_set_returns_msgs_in_group_order_and_the_deadline(b, r, now):
    seed_group(r, "g1", {"t2": now - 5, "t1": now - 5, "t0": now - 9})
    r.zadd(keys.group_key(Q, "g1"), {"ghost": now - 7})
    r.hset(keys.task_key(Q, "bad"), mapping={"msg": b"\xff", "state": "aggregating"})
    r.zadd(keys.group_key(Q, "g1"), {"bad": now - 6})
    assert check(b, "g1", now, grace_period=5)

    got = agg.read_aggregation_set_result(b.run(agg.read_aggregation_set(Q, "g1", SET)))

    assert got is not None
    assert got.deadline == int(now) + agg.AGGREGATION_SET_TIMEOUT
    assert [m.id for m in got.messages] == ["t0", "t1", "t2"]  # score, then id
    assert got.messages[0] == make_msg("t0", group_key="g1")
    assert got.undecodable == 1


def test_read_set_that_is_not_registered_is_none(b, r, now):
    assert agg.read_aggregation_set_result(b.run(agg.read_aggregation_set(Q, "g1", SET))) is None


def test_read_set_rejects_a_malformed_reply():
    with pytest.raises(BrokerError):
        agg.read_aggregation_set_result([1])


def test_delete_set_drops_members_and_the_set(b, r, now):
    m = unique_msg("t1", group_key="g1")
    seed_aggregating(r, m, group="g1", added_at=now - 100)
    seed_unique_lock(r, m)
    seed_group(r, "g1", {"t2": now - 100})
    seed_group(r, "g2", {"other": now})
    assert check(b, "g1", now)

    n = agg.delete_aggregation_set_result(b.run(agg.delete_aggregation_set(Q, "g1", SET)))

    assert n == 2
    assert task_hash(r, Q, "t1") == {} and task_hash(r, Q, "t2") == {}
    assert r.exists(keys.aggregation_set_key(Q, "g1", SET)) == 0
    assert queue_state(r)["aggregation_sets"] == []
    assert r.get(m.unique_key) == b"t1"  # as in Go: not released
    assert task_hash(r, Q, "other") != {}


def test_delete_of_a_missing_set_is_0(b, r, now):
    assert b.run(agg.delete_aggregation_set(Q, "g1", SET)) == 0


# --------------------------------------------------------------------------- reclaim


def test_reclaim_gives_stale_sets_back_to_their_groups(b, r, now):
    seed_group(r, "a:b", {"t1": now - 200, "t2": now - 150})
    seed_group(r, "g2", {"t3": now - 100})
    assert check(b, "a:b", now - 120, set_id="stale", grace_period=10)  # deadline now
    assert check(b, "g2", now - 10, set_id="fresh", grace_period=10)  # deadline now + 110
    assert queue_state(r)["groups"] == []

    assert (
        agg.reclaim_stale_aggregation_sets_result(b.run(agg.reclaim_stale_aggregation_sets(Q, now)))
        == 1
    )

    assert zset_items(r, keys.group_key(Q, "a:b")) == [("t1", now - 200), ("t2", now - 150)]
    assert r.exists(keys.aggregation_set_key(Q, "a:b", "stale")) == 0
    s = queue_state(r)
    assert s["aggregation_sets"] == [(keys.aggregation_set_key(Q, "g2", "fresh"), now + 110)]
    assert s["groups"] == ["a:b"]  # pyasynq re-adds it so the aggregator sees it again
    assert r.zcard(keys.aggregation_set_key(Q, "g2", "fresh")) == 1


def test_reclaim_of_an_empty_set_registry_is_0(b, r, now):
    assert b.run(agg.reclaim_stale_aggregation_sets(Q, now)) == 0


def test_reclaim_of_a_registered_set_that_vanished(b, r, now):
    set_key = keys.aggregation_set_key(Q, "g1", SET)
    r.zadd(keys.all_aggregation_sets_key(Q), {set_key: now - 1})
    assert b.run(agg.reclaim_stale_aggregation_sets(Q, now)) == 1
    assert all_keys(r) == []  # nothing re-created, no empty group added


def test_builders_use_one_queues_keys():
    for call in (
        agg.check_group(Q, "g", SET, 0, grace_period=1),
        agg.read_aggregation_set(Q, "g", SET),
        agg.delete_aggregation_set(Q, "g", SET),
        agg.reclaim_stale_aggregation_sets(Q, 0),
    ):
        assert isinstance(call, Call)
        assert {keys.queue_from_key(k) for k in call.keys} == {Q}


# --------------------------------------------------------------------------- Go fixture


def test_aggregation_fixture(b: Broker, r: redis.Redis) -> None:
    if not (cf.fixtures_dir() / "aggregation.json").is_file():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"conformance fixtures not found at {cf.fixtures_dir()}")
        pytest.skip("no aggregation fixture")
    fixture = cf.load_fixture("aggregation")
    now = float(int(time.time()))
    for op in fixture["operations"]:
        if op["op"] == "enqueue":
            task, kw = cf.enqueue_call(op, now)
            pre = prepare(task, Options(**kw), int(now * 1e9))
            b.run(pre.register_queue)
            enqueue_result(b.run(pre.call))
    server = next(op for op in fixture["operations"] if op["op"] == "server_start")
    grace = server["config"]["group_grace_period_s"]
    later = now + grace  # the aggregator's tick after the grace period

    for i, group in enumerate(agg.list_groups_result(b.run(agg.list_groups(Q)))):
        set_id = f"00000000-0000-4000-8000-00000000000{i}"
        assert agg.check_group_result(
            b.run(agg.check_group(Q, group, set_id, later, grace_period=grace))
        )
        got = agg.read_aggregation_set_result(b.run(agg.read_aggregation_set(Q, group, set_id)))
        assert got is not None and got.undecodable == 0
        payload = b"[" + b",".join(m.payload for m in got.messages) + b"]"
        task = Task("notify:aggregated", payload)
        pre = prepare(
            task, Options(task_id=f"agg-{group}", retention=3600, queue=Q), int(later * 1e9)
        )
        enqueue_result(b.run(pre.call))
        b.run(agg.delete_aggregation_set(Q, group, set_id))

    while (got := p.dequeue_result(Q, b.run(p.dequeue(Q, later, "tok")))) is not None:
        assert got.msg is not None
        p.check_write(b.run(p.mark_complete(got.msg, later, "tok")))

    problems = cf.compare_keys(
        fixture["keys"],
        cf.Normaliser.for_fixture(fixture),
        cf.dump_keyspace(r),
        cf.Normaliser.for_now(now),
    )
    assert problems == [], "aggregation differs from Go asynq:\n" + "\n".join(problems)


def test_msgs_of_a_set_are_the_stored_bytes(b, r, now):
    m = make_msg("t1", group_key="g1")
    seed_aggregating(r, m, group="g1", added_at=now - 100)
    assert check(b, "g1", now)
    raw = b.run(agg.read_aggregation_set(Q, "g1", SET))
    assert raw == [int(now) + agg.AGGREGATION_SET_TIMEOUT, [encode_task(m)]]
