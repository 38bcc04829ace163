"""The recoverer (wire spec 3.13): tasks whose lease expired go to retry or the archive,
a task that keeps killing its worker is archived after max_crash_recoveries, and records
that cannot be processed are quarantined without stopping anything else (issue 3, item 5).
Stale aggregation sets go back to their groups (3.15)."""

from __future__ import annotations

import time

import pytest
import redis
from rdb.helpers import (
    counters,
    fence,
    make_msg,
    queue_state,
    seed_active,
    seed_aggregating,
    task_fields,
    task_hash,
)

from pyasynq import Client, Task
from pyasynq._rdb import keys
from pyasynq._rdb.ops import processing, state
from pyasynq._sync.broker import Broker

from .support import Servers, wait_for

Q = "default"
GARBLED = b"\x0a\xff\x01"  # field 1 claims 255 bytes, has 1: not a TaskMessage


def never_runs(task: Task) -> None:
    raise AssertionError("the recoverer's tasks must not be run in these tests")


def test_expired_lease_goes_to_retry(servers: Servers, r: redis.Redis) -> None:
    now = time.time()
    seed_active(r, make_msg("x", retry=3, retried=1), lease_expiry=now - 5, attempt="dead-w")
    seed_active(r, make_msg("fresh"), lease_expiry=now + 30, attempt="live-w")
    servers.start(never_runs, retry_delay_func=lambda n, e, t: 600 + n, queues={Q: 1})
    score = wait_for(lambda: r.zscore(keys.retry_key(Q), "x"), what="x in retry")
    f = task_fields(r, Q, "x")
    msg = f["msg"]
    assert (msg.retried, msg.error_msg) == (2, "asynq: task lease expired")
    assert score == int(msg.last_failed_at) + 601
    # max_crash_recoveries is off by default: nothing counted, as Go's recoverer.
    assert f["state"] == "retry" and "crashes" not in f and "attempt" not in f
    c = counters(r, Q, now)
    assert (c.processed.value, c.failed.value) == (1, 1)
    # A lease that has not expired (lease_duration ago) is left alone.
    assert queue_state(r)["active"] == ["fresh"]
    assert task_hash(r, Q, "fresh")["attempt"] == fence("live-w", now + 30).encode()


def test_expired_lease_with_no_retries_left_is_archived(servers: Servers, r: redis.Redis) -> None:
    seed_active(r, make_msg("x", retry=2, retried=2), lease_expiry=time.time() - 5)
    servers.start(never_runs)
    wait_for(lambda: r.zscore(keys.archived_key(Q), "x"), what="x archived")
    f = task_fields(r, Q, "x")
    assert (f["msg"].retried, f["msg"].error_msg) == (2, "asynq: task lease expired")
    assert f["state"] == "archived"


def test_a_task_that_keeps_killing_its_worker_is_archived(
    servers: Servers, broker: Broker, r: redis.Redis
) -> None:
    """Each "crash" = the task is active with a lease nobody renews. The forwarder puts
    it back after each recovery; with max_crash_recoveries=2 the second recovery archives
    it although 25 retries are left."""
    seed_active(r, make_msg("k"), lease_expiry=time.time() - 5)
    state.pause_result(Q, broker.run(state.pause(Q, time.time())))  # keep our server off it
    servers.start(
        never_runs,
        max_crash_recoveries=2,
        recoverer_interval=0.1,
        retry_delay_func=lambda n, e, t: 0,
    )
    wait_for(lambda: queue_state(r)["pending"] == ["k"], what="k back in pending")
    assert task_fields(r, Q, "k")["crashes"] == "1"
    # A worker takes it (what the dequeue script does; the queue is paused for ours) and dies.
    take_and_die(r, "k", {"attempt": "w2"})
    wait_for(lambda: r.zscore(keys.archived_key(Q), "k"), what="k archived")
    f = task_fields(r, Q, "k")
    assert f["msg"].error_msg == (
        "asynq: task lease expired (2 times: the task may be killing its worker)"
    )
    assert f["msg"].retried == 1 and f["crashes"] == "2"


def take_and_die(r: redis.Redis, task_id: str, fields: dict[str, str]) -> None:
    """A worker dequeues the pending task and dies: its lease is never renewed. One MULTI
    in the queue's slot (also on a cluster, whose pipelines refuse RPOPLPUSH; LMOVE RIGHT
    LEFT is the same move). ``fields``: what the worker's dequeue adds (Go's: nothing)."""
    with r.pipeline(transaction=True) as p:
        p.lmove(keys.pending_key(Q), keys.active_key(Q), "RIGHT", "LEFT")
        p.hset(keys.task_key(Q, task_id), mapping={"state": "active", **fields})
        p.hdel(keys.task_key(Q, task_id), "pending_since")
        p.zadd(keys.lease_key(Q), {task_id: time.time() - 5})
        p.execute()


def test_by_default_a_task_go_workers_keep_losing_is_retried_until_max_retry(
    servers: Servers, broker: Broker, r: redis.Redis
) -> None:
    """asynq's rule in a mixed fleet: Go workers dequeue the task (no pyasynq fields) and
    die four times; pyasynq's recoverer retries it three times (retried 1, 2, 3 = retry)
    and archives it the fourth, never counting crashes."""
    seed_active(r, make_msg("g", retry=3), lease_expiry=time.time() - 5)
    state.pause_result(Q, broker.run(state.pause(Q, time.time())))  # keep our server off it
    servers.start(never_runs, recoverer_interval=0.1, retry_delay_func=lambda n, e, t: 0)
    for retried in (1, 2, 3):
        wait_for(lambda: queue_state(r)["pending"] == ["g"], what="g back in pending")
        assert task_fields(r, Q, "g")["msg"].retried == retried
        take_and_die(r, "g", {})
    wait_for(lambda: r.zscore(keys.archived_key(Q), "g"), what="g archived")
    f = task_fields(r, Q, "g")
    assert f["msg"].error_msg == "asynq: task lease expired"
    assert f["msg"].retried == 3 and "crashes" not in f


def test_malformed_pending_records_are_quarantined_and_the_rest_runs(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    client.enqueue(Task("t"), task_id="good1")
    # Oldest first (the tail): an id without a hash, a hash whose msg does not decode.
    r.rpush(keys.pending_key(Q), "ghost")
    r.hset(keys.task_key(Q, "garbled"), mapping={"msg": GARBLED, "state": "pending"})
    r.rpush(keys.pending_key(Q), "garbled")
    client.enqueue(Task("t"), task_id="good2")
    ran: list[str] = []
    servers.start(lambda t: ran.append(t.type), concurrency=1)
    wait_for(lambda: len(ran) == 2, what="both good tasks")
    wait_for(lambda: len(queue_state(r)["quarantine"]) == 2, what="2 quarantined")
    qs = queue_state(r)
    assert qs["quarantine"]["ghost"] == "no task hash"
    assert qs["quarantine"]["garbled"].startswith("undecodable msg")
    assert qs["pending"] == [] and qs["active"] == [] and qs["lease"] == []
    assert r.hget(keys.task_key(Q, "garbled"), "msg") == GARBLED  # kept for a human
    assert servers.log.find("task garbled in default: undecodable msg", "error")


def test_malformed_active_records_are_quarantined_by_the_recoverer(
    servers: Servers, r: redis.Redis
) -> None:
    past = time.time() - 5
    r.lpush(keys.active_key(Q), "lost")  # an id whose hash is gone
    r.zadd(keys.lease_key(Q), {"lost": past})
    r.hset(keys.task_key(Q, "bad"), mapping={"msg": GARBLED, "state": "active"})
    r.lpush(keys.active_key(Q), "bad")
    r.zadd(keys.lease_key(Q), {"bad": past})
    other = make_msg("other-queue-msg", queue="elsewhere")  # msg names another queue
    r.hset(keys.task_key(Q, "misfiled"), mapping={"msg": _encode(other), "state": "active"})
    r.lpush(keys.active_key(Q), "misfiled")
    r.zadd(keys.lease_key(Q), {"misfiled": past})
    seed_active(r, make_msg("ok"), lease_expiry=past)
    servers.start(never_runs, retry_delay_func=lambda n, e, t: 600)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "ok"), what="ok in retry")
    qs = queue_state(r)
    assert set(qs["quarantine"]) == {"lost", "bad", "misfiled"}
    assert qs["quarantine"]["lost"] == "no task hash"
    assert qs["quarantine"]["bad"].startswith("undecodable msg")
    assert "elsewhere" in qs["quarantine"]["misfiled"]
    assert qs["active"] == [] and qs["lease"] == []


def _encode(msg: object) -> bytes:
    from pyasynq._rdb.codec import encode_task

    return encode_task(msg)  # type: ignore[arg-type]


def test_stale_aggregation_sets_go_back_to_their_group(servers: Servers, r: redis.Redis) -> None:
    now = int(time.time())
    seed_aggregating(r, make_msg("m1"), group="g", added_at=now - 50)
    set_key = keys.aggregation_set_key(Q, "g", "set-1")
    r.zadd(set_key, {"m1": now - 50})
    r.zrem(keys.group_key(Q, "g"), "m1")
    r.srem(keys.groups_key(Q), "g")
    r.zadd(keys.all_aggregation_sets_key(Q), {set_key: now - 1})  # deadline passed
    servers.start(never_runs)
    wait_for(lambda: r.zcard(keys.all_aggregation_sets_key(Q)) == 0, what="set reclaimed")
    assert r.zrange(keys.group_key(Q, "g"), 0, -1, withscores=True) == [(b"m1", int(now - 50))]
    assert not r.exists(set_key)
    assert r.smembers(keys.groups_key(Q)) == {b"g"}


def test_a_stale_listing_does_not_take_a_task_back_from_its_new_owner(
    servers: Servers, broker: Broker, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers' recoverers list the same expired lease (chaos worker-sigkill). Between
    our recoverer's listing and its write, the other one recovers the task and a worker
    leases it again: our write must be refused, not send the task back to retry while its
    new owner runs it (which then ran it twice, its outcome refused)."""
    now = time.time()
    seed_active(r, make_msg("x"), lease_expiry=now - 5, attempt="dead-w")
    listed = processing.list_lease_expired_result

    def race(queue: str, reply: object) -> list[processing.Leased]:
        found = listed(queue, reply)
        if any(item.task_id == "x" for item in found) and not r.exists(keys.retry_key(Q)):
            # The other worker: recover x, forward it, lease it for 60 s.
            [item] = [i for i in found if i.task_id == "x"]
            assert item.msg is not None
            broker.run(processing.retry(item.msg, now, now - 1, "asynq: task lease expired",
                                        True, ""))  # fmt: skip
            broker.run(processing.forward(Q, "retry", time.time_ns()))
            leased = processing.dequeue_result(
                Q, broker.run(processing.dequeue(Q, time.time(), "w2", lease_duration=60))
            )
            assert leased is not None and leased.task_id == "x"
        return found

    monkeypatch.setattr(processing, "list_lease_expired_result", race)
    servers.start(never_runs, recoverer_interval=0.1)
    wait_for(lambda: servers.log.find("recoverer: task x: "), what="the refused write")
    assert queue_state(r)["active"] == ["x"] and r.zcard(keys.retry_key(Q)) == 0
    assert task_hash(r, Q, "x")["attempt"].startswith(b"w2 ")
    assert not servers.log.find("task x in default had an expired lease")
