"""Inspector scripts and ops (wire spec 3.20) against a real Redis.

Tasks are seeded with plain redis commands (or the enqueue script through the Broker) and
every op is run through the sync Broker; assertions read the resulting Redis state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import conformance as cf
import pytest
import redis
import slots
from redis.crc import key_slot

from pyasynq._async.broker import AsyncBroker
from pyasynq._rdb import keys, scripts
from pyasynq._rdb.codec import TaskMessage, decode_task, encode_task
from pyasynq._rdb.ops import Call
from pyasynq._rdb.ops import inspect as ops
from pyasynq._rdb.ops.enqueue import enqueue_call, enqueue_result
from pyasynq._sync.broker import Broker
from pyasynq.embedded import EmbeddedRedis, free_port
from pyasynq.errors import (
    BrokerError,
    QueueNotEmptyError,
    QueueNotFoundError,
    QueueStateError,
    TaskNotFoundError,
    TaskStateError,
)
from pyasynq.task import TaskState

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
Q = "default"


@pytest.fixture
def broker(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    b = Broker(redis_url)
    yield b
    b.close()


def tkey(tid: str, q: str = Q) -> str:
    return keys.task_key(q, tid)


def put(
    r: redis.Redis,
    tid: str,
    state: str,
    *,
    q: str = Q,
    score: float = NOW,
    group: str | None = None,
    unique: str | None = None,
    result: bytes | None = None,
    pending_since: int | None = None,
    payload: bytes | None = None,
) -> TaskMessage:
    """Store a task the way asynq's scripts leave it in ``state``."""
    msg = TaskMessage(
        type="email:send",
        payload=payload if payload is not None else f"payload-{tid}".encode(),
        id=tid,
        queue=q,
        retry=25,
        timeout=1800,
        unique_key=unique or "",
        group_key=group or "",
    )
    fields: dict[str, Any] = {"msg": encode_task(msg), "state": state}
    if group:
        fields["group"] = group
    if unique:
        fields["unique_key"] = unique
    if result is not None:
        fields["result"] = result
    if pending_since is not None:
        fields["pending_since"] = pending_since
    r.hset(tkey(tid, q), mapping=fields)
    if state in ("pending", "active"):
        r.lpush(keys.queue_prefix(q) + state, tid)
        if state == "active":
            r.zadd(keys.lease_key(q), {tid: score})
    elif state == "aggregating":
        assert group
        r.zadd(keys.group_key(q, group), {tid: score})
        r.sadd(keys.groups_key(q), group)
    else:
        r.zadd(keys.queue_prefix(q) + state, {tid: score})
    r.sadd(keys.ALL_QUEUES, q)
    return msg


def state_of(r: redis.Redis, tid: str, q: str = Q) -> bytes | None:
    value: bytes | None = r.hget(tkey(tid, q), "state")
    return value


def ids(values: list[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def zids(r: redis.Redis, key: str) -> list[str]:
    return ids(r.zrange(key, 0, -1))


def drain(broker: Broker, make: Callable[[], Call], batch: int) -> tuple[int, int]:
    """Run a bulk op until a batch comes back short: (total taken, script calls)."""
    total = calls = 0
    while True:
        n = ops.bulk_result(broker.run(make()))
        calls += 1
        total += n
        if ops.bulk_finished(n, batch):
            return total, calls


def seed_many(
    r: redis.Redis, state: str, n: int, *, q: str = Q, group: str | None = None, prefix: str = "t"
) -> None:
    """n tasks <prefix>00000.. in ``state`` (scores NOW+i), pipelined."""
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        tid = f"{prefix}{i:05d}"
        msg = TaskMessage(
            type="bulk", payload=b"x", id=tid, queue=q, retry=25, group_key=group or ""
        )
        fields = {"msg": encode_task(msg), "state": state}
        if state == "pending":
            fields["pending_since"] = str(int(NOW * 1e9))
            pipe.lpush(keys.pending_key(q), tid)
        elif state == "aggregating":
            assert group
            fields["group"] = group
            pipe.zadd(keys.group_key(q, group), {tid: NOW + i})
        else:
            pipe.zadd(keys.queue_prefix(q) + state, {tid: NOW + i})
        pipe.hset(tkey(tid, q), mapping=fields)
    if group:
        pipe.sadd(keys.groups_key(q), group)
    pipe.sadd(keys.ALL_QUEUES, q)
    pipe.execute()


# --------------------------------------------------------------------------- queues


def test_check_queue_and_list_queues(broker: Broker, r: redis.Redis) -> None:
    with pytest.raises(QueueNotFoundError, match="'nope'"):
        ops.check_queue_result(broker.run(ops.check_queue("nope")), "nope")
    r.sadd(keys.ALL_QUEUES, "zeta", "alpha", "ünïcode", "default")
    ops.check_queue_result(broker.run(ops.check_queue("alpha")), "alpha")
    assert ops.list_queues_result(broker.run(ops.list_queues())) == [
        "alpha",
        "default",
        "zeta",
        "ünïcode",
    ]
    assert broker.run(ops.unregister_queue("zeta")) == 1
    assert ops.list_queues_result(broker.run(ops.list_queues())) == ["alpha", "default", "ünïcode"]


# --------------------------------------------------------------------------- stats


def test_current_stats_empty_queue(broker: Broker, r: redis.Redis) -> None:
    s = ops.current_stats_result(broker.run(ops.current_stats(Q, now=NOW)), queue=Q, now=NOW)
    assert s == ops.QueueStats(
        queue=Q,
        pending=0,
        active=0,
        scheduled=0,
        retry=0,
        archived=0,
        completed=0,
        aggregating=0,
        processed=0,
        failed=0,
        processed_total=0,
        failed_total=0,
        paused=False,
        groups=0,
        latency=0.0,
        timestamp=NOW,
    )
    assert s.size == 0


def test_current_stats_counts_everything(broker: Broker, r: redis.Redis) -> None:
    oldest_ns = int((NOW - 42.5) * 1e9)
    put(r, "p1", "pending", pending_since=oldest_ns)  # first LPUSH: the tail, the oldest
    put(r, "p2", "pending", pending_since=int(NOW * 1e9))
    put(r, "p3", "pending", pending_since=int(NOW * 1e9))
    put(r, "a1", "active")
    put(r, "s1", "scheduled", score=NOW + 10)
    put(r, "s2", "scheduled", score=NOW + 20)
    put(r, "r1", "retry")
    put(r, "x1", "archived")
    put(r, "c1", "completed")
    put(r, "c2", "completed")
    put(r, "g1a", "aggregating", group="g1")
    put(r, "g1b", "aggregating", group="g1")
    put(r, "g2a", "aggregating", group="g2")
    big = 9223372036854775806  # beyond 2^53: must come back exact
    r.set(keys.processed_key(Q, NOW), 5)
    r.set(keys.failed_key(Q, NOW), 2)
    r.set(keys.processed_key(Q, NOW - 86400), 99)  # yesterday: not today's count
    r.set(keys.processed_total_key(Q), big)
    r.set(keys.failed_total_key(Q), 7)
    r.set(keys.paused_key(Q), int(NOW))
    s = ops.current_stats_result(broker.run(ops.current_stats(Q, now=NOW)), queue=Q, now=NOW)
    assert (s.pending, s.active, s.scheduled, s.retry, s.archived, s.completed) == (
        3,
        1,
        2,
        1,
        1,
        2,
    )
    assert (s.aggregating, s.groups) == (3, 2)
    assert (s.processed, s.failed, s.processed_total, s.failed_total) == (5, 2, big, 7)
    assert s.paused is True
    assert s.latency == pytest.approx(42.5, abs=1e-6)
    assert s.size == 13
    assert s.timestamp == NOW


def test_current_stats_latency_zero_without_pending_since(broker: Broker, r: redis.Redis) -> None:
    put(r, "p1", "pending")  # e.g. requeued or run by hand: no pending_since
    put(r, "p2", "pending", pending_since=int((NOW - 100) * 1e9))
    s = ops.current_stats_result(broker.run(ops.current_stats(Q, now=NOW)), queue=Q, now=NOW)
    assert s.pending == 2
    assert s.latency == 0.0


def _mem(r: redis.Redis, key: str) -> int:
    value = r.memory_usage(key)
    return int(value) if value is not None else 0


def test_memory_usage_empty_is_zero(broker: Broker, r: redis.Redis) -> None:
    assert ops.memory_usage_result(broker.run(ops.memory_usage(Q))) == 0


def test_memory_usage_matches_the_sampling_model(broker: Broker, r: redis.Redis) -> None:
    for i in range(3):
        put(r, f"p{i}", "pending", payload=b"x" * (100 * (i + 1)))
    put(r, "s0", "scheduled")
    put(r, "g0", "aggregating", group="g")
    put(r, "g1", "aggregating", group="g")
    expected = 0.0
    p = [_mem(r, tkey(f"p{i}")) for i in range(3)]
    expected += sum(p) / 3 * 3 + _mem(r, keys.pending_key(Q))
    expected += _mem(r, tkey("s0")) + _mem(r, keys.scheduled_key(Q))
    expected += (_mem(r, tkey("g0")) + _mem(r, tkey("g1"))) / 2 * 2
    got = ops.memory_usage_result(broker.run(ops.memory_usage(Q)))
    assert abs(got - int(expected)) <= 1  # float rounding only
    assert got > 300


def test_memory_usage_skips_dangling_ids(broker: Broker, r: redis.Redis) -> None:
    # Only ids without hashes: nothing to sample, only the containers' own memory counts.
    r.lpush(keys.pending_key(Q), "ghost1", "ghost2")
    r.zadd(keys.retry_key(Q), {"ghost3": NOW})
    r.zadd(keys.group_key(Q, "g"), {"ghost4": NOW})
    r.sadd(keys.groups_key(Q), "g")
    expected = _mem(r, keys.pending_key(Q)) + _mem(r, keys.retry_key(Q))
    assert ops.memory_usage_result(broker.run(ops.memory_usage(Q))) == expected
    # With one real hash next to a ghost, the average is over the real one only.
    put(r, "real", "pending")
    expected = _mem(r, tkey("real")) * 3 + _mem(r, keys.pending_key(Q)) + _mem(r, keys.retry_key(Q))
    assert ops.memory_usage_result(broker.run(ops.memory_usage(Q))) == expected


def test_memory_usage_samples_at_most_n_tasks(broker: Broker, r: redis.Redis) -> None:
    # 25 pending tasks: only the 20 at the head are sampled, their average counts 25 times.
    for i in range(25):
        put(r, f"p{i:02d}", "pending", payload=b"y" * (10 if i < 5 else 1000))
    head = ids(r.lrange(keys.pending_key(Q), 0, 19))
    avg = sum(_mem(r, tkey(t)) for t in head) / 20
    expected = int(avg * 25 + _mem(r, keys.pending_key(Q)))
    assert ops.memory_usage_result(broker.run(ops.memory_usage(Q, sample=20))) == expected
    with pytest.raises(ValueError, match="positive"):
        ops.memory_usage(Q, sample=0)


def test_history(broker: Broker, r: redis.Redis) -> None:
    now = datetime(2024, 3, 1, 0, 0, 30, tzinfo=UTC).timestamp()  # just after UTC midnight
    r.set("asynq:{default}:processed:2024-03-01", 10)
    r.set("asynq:{default}:failed:2024-03-01", 1)
    r.set("asynq:{default}:processed:2024-02-28", 7)
    r.set("asynq:{default}:failed:2024-02-27", 3)  # outside the 3-day window
    reply = broker.run(ops.history(Q, 3, now=now))
    got = ops.history_result(reply, queue=Q, days=3, now=now)
    assert got == [
        ops.DailyStats(Q, date(2024, 3, 1), 10, 1),
        ops.DailyStats(Q, date(2024, 2, 29), 0, 0),
        ops.DailyStats(Q, date(2024, 2, 28), 7, 0),
    ]
    one = ops.history_result(broker.run(ops.history(Q, 1, now=now)), queue=Q, days=1, now=now)
    assert one == [ops.DailyStats(Q, date(2024, 3, 1), 10, 1)]
    with pytest.raises(ValueError, match="positive"):
        ops.history(Q, 0, now=now)


# --------------------------------------------------------------------------- task info


def _info(broker: Broker, tid: str, now: float = NOW, q: str = Q) -> Any:
    reply = broker.run(ops.get_task_info(q, tid, now=now))
    return ops.get_task_info_result(reply, queue=q, task_id=tid)


def test_get_task_info_per_state(broker: Broker, r: redis.Redis) -> None:
    put(r, "p", "pending", pending_since=123)
    put(r, "s", "scheduled", score=NOW + 3600)
    put(r, "rt", "retry", score=NOW + 60)
    put(r, "x", "archived", score=NOW - 5)
    put(r, "c", "completed", score=NOW + 99, result=b"\x00ok\xff")
    put(r, "g", "aggregating", group="grp")
    put(r, "a", "active", score=NOW + 30)
    put(r, "o", "active", score=NOW)  # lease expired right now: orphaned
    expected = {
        "p": (TaskState.PENDING, NOW),
        "s": (TaskState.SCHEDULED, NOW + 3600),
        "rt": (TaskState.RETRY, NOW + 60),
        "x": (TaskState.ARCHIVED, None),
        "c": (TaskState.COMPLETED, None),
        "g": (TaskState.AGGREGATING, None),
        "a": (TaskState.ACTIVE, None),
        "o": (TaskState.ACTIVE, None),
    }
    for tid, (state, next_at) in expected.items():
        info = _info(broker, tid)
        assert info.id == tid
        assert info.queue == Q
        assert info.type == "email:send"
        assert info.payload == f"payload-{tid}".encode()
        assert info.state is state
        assert info.max_retry == 25
        got = info.next_process_at.timestamp() if info.next_process_at else None
        assert got == next_at, tid
        assert info.is_orphaned is (tid == "o")
    assert _info(broker, "c").result == b"\x00ok\xff"
    assert _info(broker, "p").result == b""
    assert _info(broker, "g").group == "grp"


def test_get_task_info_not_found(broker: Broker, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    with pytest.raises(TaskNotFoundError, match=r"'nope'.*'default'"):
        _info(broker, "nope")
    # A stub hash without msg (a late result write after deletion) is no task either.
    r.hset(tkey("stub"), "result", b"late")
    with pytest.raises(TaskNotFoundError):
        _info(broker, "stub")


def test_get_task_message_for_update(broker: Broker, r: redis.Redis) -> None:
    put(r, "s", "scheduled", unique="asynq:{default}:unique:email:send:abc")
    reply = broker.run(ops.get_task_info(Q, "s", now=NOW))
    msg = ops.get_task_message_result(reply, queue=Q, task_id="s")
    assert msg.unique_key == "asynq:{default}:unique:email:send:abc"
    assert msg.timeout == 1800


# --------------------------------------------------------------------------- listing


def _list(broker: Broker, state: str, *, group: str | None = None, **kw: Any) -> list[str]:
    reply = broker.run(ops.list_tasks(Q, state, now=NOW, group=group, **kw))
    return [t.id for t in ops.list_tasks_result(reply, state=state, now=NOW)]


def test_list_pending_pages_oldest_first(broker: Broker, r: redis.Redis) -> None:
    for i in range(5):
        put(r, f"p{i}", "pending")  # p0 is the oldest (the tail)
    assert _list(broker, "pending") == ["p0", "p1", "p2", "p3", "p4"]
    assert _list(broker, "pending", page_size=2, page=1) == ["p0", "p1"]
    assert _list(broker, "pending", page_size=2, page=2) == ["p2", "p3"]
    assert _list(broker, "pending", page_size=2, page=3) == ["p4"]
    assert _list(broker, "pending", page_size=2, page=4) == []
    assert _list(broker, "pending", page_size=5, page=1) == ["p0", "p1", "p2", "p3", "p4"]
    assert _list(broker, "pending", page_size=5, page=2) == []
    assert _list(broker, "pending", page_size=100, page=1) == ["p0", "p1", "p2", "p3", "p4"]
    assert _list(broker, "pending", page_size=1, page=5) == ["p4"]
    reply = broker.run(ops.list_tasks(Q, "pending", now=NOW))
    infos = ops.list_tasks_result(reply, state="pending", now=NOW)
    assert all(t.state is TaskState.PENDING for t in infos)
    assert all(t.next_process_at and t.next_process_at.timestamp() == NOW for t in infos)


def test_list_default_page_size_is_30(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "scheduled", 35)
    assert len(_list(broker, "scheduled")) == 30
    assert _list(broker, "scheduled", page=2) == [f"t{i:05d}" for i in range(30, 35)]


def test_list_active_flags_orphans(broker: Broker, r: redis.Redis) -> None:
    put(r, "a0", "active", score=NOW - 1)  # lease expired
    put(r, "a1", "active", score=NOW + 30)
    put(r, "a2", "active", score=NOW)  # expires now: orphaned (<= now)
    r.lpush(keys.active_key(Q), "ghost")  # dangling id: skipped
    reply = broker.run(ops.list_tasks(Q, TaskState.ACTIVE, now=NOW))
    infos = ops.list_tasks_result(reply, state=TaskState.ACTIVE, now=NOW)
    assert [(t.id, t.is_orphaned) for t in infos] == [("a0", True), ("a1", False), ("a2", True)]
    assert all(t.next_process_at is None for t in infos)


def test_list_zsets_by_score_with_results(broker: Broker, r: redis.Redis) -> None:
    put(r, "s2", "scheduled", score=NOW + 20)
    put(r, "s1", "scheduled", score=NOW + 10)
    put(r, "s3", "scheduled", score=NOW + 30)
    r.zadd(keys.scheduled_key(Q), {"ghost": NOW + 15})
    assert _list(broker, "scheduled") == ["s1", "s2", "s3"]
    # Pages are rank ranges: the dangling id takes a rank but is not listed (as in Go).
    assert _list(broker, "scheduled", page_size=2, page=1) == ["s1"]
    assert _list(broker, "scheduled", page_size=2, page=2) == ["s2", "s3"]
    reply = broker.run(ops.list_tasks(Q, "scheduled", now=NOW))
    infos = ops.list_tasks_result(reply, state="scheduled", now=NOW)
    assert [t.next_process_at.timestamp() for t in infos if t.next_process_at] == [
        NOW + 10,
        NOW + 20,
        NOW + 30,
    ]
    put(r, "c1", "completed", score=NOW + 5, result=b"done")
    put(r, "c0", "completed", score=NOW + 1)
    reply = broker.run(ops.list_tasks(Q, "completed", now=NOW))
    infos = ops.list_tasks_result(reply, state="completed", now=NOW)
    assert [(t.id, t.result, t.next_process_at) for t in infos] == [
        ("c0", b"", None),
        ("c1", b"done", None),
    ]
    put(r, "rt", "retry", score=NOW + 7)
    put(r, "x", "archived", score=NOW - 7)
    assert _list(broker, "retry") == ["rt"]
    assert _list(broker, "archived") == ["x"]


def test_list_aggregating_per_group(broker: Broker, r: redis.Redis) -> None:
    put(r, "b", "aggregating", group="g1", score=NOW + 2)
    put(r, "a", "aggregating", group="g1", score=NOW + 1)
    put(r, "c", "aggregating", group="g2")
    reply = broker.run(ops.list_tasks(Q, "aggregating", now=NOW, group="g1"))
    infos = ops.list_tasks_result(reply, state="aggregating", now=NOW)
    assert [(t.id, t.group, t.state) for t in infos] == [
        ("a", "g1", TaskState.AGGREGATING),
        ("b", "g1", TaskState.AGGREGATING),
    ]
    assert _list(broker, "aggregating", group="none") == []


def test_list_skips_undecodable_msg(broker: Broker, r: redis.Redis) -> None:
    put(r, "s1", "scheduled", score=NOW + 1)
    r.hset(tkey("bad"), mapping={"msg": b"\xff\xff\xff", "state": "scheduled"})
    r.zadd(keys.scheduled_key(Q), {"bad": NOW + 2})
    assert _list(broker, "scheduled") == ["s1"]


def test_list_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="page_size"):
        ops.list_tasks(Q, "pending", now=NOW, page_size=0)
    with pytest.raises(ValueError, match="start at 1"):
        ops.list_tasks(Q, "pending", now=NOW, page=0)
    with pytest.raises(ValueError, match="group"):
        ops.list_tasks(Q, "aggregating", now=NOW)
    with pytest.raises(ValueError, match="group"):
        ops.list_tasks(Q, "pending", now=NOW, group="g")
    with pytest.raises(ValueError, match="unknown task state 'done'"):
        ops.list_tasks(Q, "done", now=NOW)


# --------------------------------------------------------------------------- groups


def test_groups_with_sizes(broker: Broker, r: redis.Redis) -> None:
    assert ops.groups_result(broker.run(ops.groups(Q))) == []
    put(r, "a", "aggregating", group="zz")
    put(r, "b", "aggregating", group="aa")
    put(r, "c", "aggregating", group="aa")
    assert ops.groups_result(broker.run(ops.groups(Q))) == [
        ops.GroupInfo("aa", 2),
        ops.GroupInfo("zz", 1),
    ]


# --------------------------------------------------------------------------- run one task


def _run(broker: Broker, tid: str) -> None:
    ops.run_task_result(broker.run(ops.run_task(Q, tid)), queue=Q, task_id=tid)


@pytest.mark.parametrize("state", ["scheduled", "retry", "archived", "completed"])
def test_run_task_from_zset(broker: Broker, r: redis.Redis, state: str) -> None:
    put(r, "old", "pending", pending_since=1)
    put(r, "t", state)
    put(r, "other", state)
    _run(broker, "t")
    assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["t", "old"]  # LPUSHed at the head
    assert state_of(r, "t") == b"pending"
    assert r.hget(tkey("t"), "pending_since") is None  # Go does not set it on run
    assert zids(r, keys.queue_prefix(Q) + state) == ["other"]


def test_run_task_from_group(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "aggregating", group="g")
    put(r, "b", "aggregating", group="g")
    _run(broker, "a")
    assert zids(r, keys.group_key(Q, "g")) == ["b"]
    assert r.smembers(keys.groups_key(Q)) == {b"g"}
    _run(broker, "b")
    assert not r.exists(keys.group_key(Q, "g"))
    assert r.smembers(keys.groups_key(Q)) == set()  # emptied group leaves the set
    assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["b", "a"]
    assert r.hget(tkey("b"), "group") == b"g"  # Go keeps the field


def test_run_task_errors(broker: Broker, r: redis.Redis) -> None:
    put(r, "p", "pending")
    put(r, "a", "active")
    with pytest.raises(TaskNotFoundError):
        _run(broker, "missing")
    with pytest.raises(TaskStateError, match="already pending"):
        _run(broker, "p")
    with pytest.raises(TaskStateError, match="already running"):
        _run(broker, "a")
    # Hash says scheduled but the id is not in the scheduled zset: refuse, change nothing.
    r.hset(tkey("lost"), mapping={"msg": b"", "state": "scheduled"})
    with pytest.raises(BrokerError, match="inconsistent"):
        _run(broker, "lost")
    assert state_of(r, "lost") == b"scheduled"
    assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["p"]
    assert ids(r.lrange(keys.active_key(Q), 0, -1)) == ["a"]


# --------------------------------------------------------------------------- archive one task


def _archive(broker: Broker, tid: str, now: float = NOW) -> None:
    ops.archive_task_result(broker.run(ops.archive_task(Q, tid, now=now)), queue=Q, task_id=tid)


@pytest.mark.parametrize("state", ["pending", "scheduled", "retry", "completed"])
def test_archive_task(broker: Broker, r: redis.Redis, state: str) -> None:
    put(r, "t", state, pending_since=777 if state == "pending" else None)
    put(r, "other", state)
    _archive(broker, "t")
    assert r.zrange(keys.archived_key(Q), 0, -1, withscores=True) == [(b"t", NOW)]
    assert state_of(r, "t") == b"archived"
    if state == "pending":
        assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["other"]
        assert r.hget(tkey("t"), "pending_since") == b"777"  # Go keeps the stale field
    else:
        assert zids(r, keys.queue_prefix(Q) + state) == ["other"]


def test_archive_task_from_group(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "aggregating", group="g")
    _archive(broker, "a")
    assert state_of(r, "a") == b"archived"
    assert not r.exists(keys.group_key(Q, "g"))
    assert r.smembers(keys.groups_key(Q)) == set()


def test_archive_task_errors(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "active")
    put(r, "x", "archived", score=NOW - 10)
    with pytest.raises(TaskNotFoundError):
        _archive(broker, "missing")
    with pytest.raises(TaskStateError, match="already archived"):
        _archive(broker, "x")
    with pytest.raises(TaskStateError, match=r"running.*cancel"):
        _archive(broker, "a")
    r.hset(tkey("lost"), mapping={"msg": b"", "state": "pending"})
    with pytest.raises(BrokerError, match="inconsistent"):
        _archive(broker, "lost")
    assert state_of(r, "lost") == b"pending"
    assert r.zrange(keys.archived_key(Q), 0, -1, withscores=True) == [(b"x", NOW - 10)]


def test_archive_task_trims_without_deleting_hashes(broker: Broker, r: redis.Redis) -> None:
    cutoff = NOW - ops.ARCHIVE_MAX_AGE
    put(r, "ancient", "archived", score=cutoff)  # exactly at the cutoff: trimmed
    put(r, "recent", "archived", score=cutoff + 1)
    # Fill up to the size limit with bare ids; the lowest ranks are trimmed.
    r.zadd(keys.archived_key(Q), {f"f{i:05d}": NOW - 1000 for i in range(ops.ARCHIVE_MAX_SIZE)})
    put(r, "t", "scheduled")
    _archive(broker, "t")
    members = zids(r, keys.archived_key(Q))
    assert len(members) == ops.ARCHIVE_MAX_SIZE - 1
    assert "ancient" not in members
    assert "recent" not in members  # lowest rank left by the size trim
    assert members[-1] == "t"
    assert r.exists(tkey("ancient")) and r.exists(tkey("recent"))  # hashes are kept


# --------------------------------------------------------------------------- delete one task


def _delete(broker: Broker, tid: str) -> None:
    ops.delete_task_result(broker.run(ops.delete_task(Q, tid)), queue=Q, task_id=tid)


@pytest.mark.parametrize("state", ["pending", "scheduled", "retry", "archived", "completed"])
def test_delete_task(broker: Broker, r: redis.Redis, state: str) -> None:
    lock = keys.unique_key(Q, "email:send", b"t")
    put(r, "t", state, unique=lock)
    put(r, "other", state)
    r.set(lock, "t", ex=3600)
    _delete(broker, "t")
    assert not r.exists(tkey("t"))
    assert not r.exists(lock)  # owned lock released
    if state == "pending":
        assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["other"]
    else:
        assert zids(r, keys.queue_prefix(Q) + state) == ["other"]


def test_delete_task_keeps_a_lock_it_does_not_own(broker: Broker, r: redis.Redis) -> None:
    lock = keys.unique_key(Q, "email:send", b"t")
    put(r, "t", "scheduled", unique=lock)
    r.set(lock, "someone-else", ex=3600)
    _delete(broker, "t")
    assert not r.exists(tkey("t"))
    assert r.get(lock) == b"someone-else"


def test_delete_task_from_group(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "aggregating", group="g")
    put(r, "b", "aggregating", group="g")
    _delete(broker, "a")
    assert r.smembers(keys.groups_key(Q)) == {b"g"}
    _delete(broker, "b")
    assert r.smembers(keys.groups_key(Q)) == set()
    assert not r.exists(tkey("a"), tkey("b"), keys.group_key(Q, "g"))


def test_delete_task_errors(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "active")
    with pytest.raises(TaskNotFoundError):
        _delete(broker, "missing")
    with pytest.raises(TaskStateError, match=r"running.*cancel"):
        _delete(broker, "a")
    assert r.exists(tkey("a"))
    r.hset(tkey("lost"), mapping={"msg": b"", "state": "retry"})
    with pytest.raises(BrokerError, match="inconsistent"):
        _delete(broker, "lost")
    assert r.exists(tkey("lost"))


def test_unexpected_replies_are_broker_errors() -> None:
    with pytest.raises(BrokerError, match="unexpected"):
        ops.run_task_result(7, queue=Q, task_id="t")
    with pytest.raises(BrokerError, match="unexpected"):
        ops.archive_task_result(b"x", queue=Q, task_id="t")
    with pytest.raises(BrokerError, match="unexpected"):
        ops.delete_task_result(-9, queue=Q, task_id="t")
    with pytest.raises(BrokerError, match="unexpected"):
        ops.update_task_payload_result(2, queue=Q, task_id="t")
    with pytest.raises(BrokerError, match="unexpected"):
        ops.delete_queue_result(0, queue=Q)
    with pytest.raises(BrokerError, match="unexpected"):
        ops.current_stats_result([1, 2], queue=Q, now=NOW)
    with pytest.raises(BrokerError, match="unexpected"):
        ops.bulk_result(None)


# --------------------------------------------------------------------------- update payload


def test_update_task_payload(broker: Broker, r: redis.Redis) -> None:
    lock = keys.unique_key(Q, "email:send", b"payload-s")
    put(r, "s", "scheduled", score=NOW + 60, unique=lock, result=b"r")
    r.hset(tkey("s"), mapping={"group": "g", "pending_since": "5"})
    before = r.hgetall(tkey("s"))
    reply = broker.run(ops.get_task_info(Q, "s", now=NOW))
    msg = ops.get_task_message_result(reply, queue=Q, task_id="s")
    out = broker.run(ops.update_task_payload(Q, "s", msg, b'{"new":1}'))
    ops.update_task_payload_result(out, queue=Q, task_id="s")
    after = r.hgetall(tkey("s"))
    assert decode_task(after.pop(b"msg")) == TaskMessage(
        type="email:send",
        payload=b'{"new":1}',
        id="s",
        queue=Q,
        retry=25,
        timeout=1800,
        unique_key=lock,
    )
    before.pop(b"msg")
    assert after == before  # state, pending_since, group, unique_key, result untouched
    assert r.zscore(keys.scheduled_key(Q), "s") == NOW + 60


def test_update_task_payload_errors(broker: Broker, r: redis.Redis) -> None:
    msg = put(r, "p", "pending")
    old = r.hget(tkey("p"), "msg")
    with pytest.raises(TaskStateError, match="not scheduled"):
        ops.update_task_payload_result(
            broker.run(ops.update_task_payload(Q, "p", msg, b"new")), queue=Q, task_id="p"
        )
    assert r.hget(tkey("p"), "msg") == old
    gone = TaskMessage(type="t", id="gone", queue=Q)
    with pytest.raises(TaskNotFoundError):
        ops.update_task_payload_result(
            broker.run(ops.update_task_payload(Q, "gone", gone, b"new")), queue=Q, task_id="gone"
        )
    assert not r.exists(tkey("gone"))


# --------------------------------------------------------------------------- bulk operations


def test_run_all_scheduled_in_batches(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "scheduled", 2500)
    put(r, "old", "pending")
    total, calls = drain(broker, lambda: ops.run_all(Q, "scheduled", batch=1000), 1000)
    assert (total, calls) == (2500, 3)
    assert not r.exists(keys.scheduled_key(Q))
    pending = ids(r.lrange(keys.pending_key(Q), 0, -1))
    # Lowest score first in line (at the tail, after the task already pending).
    assert pending[::-1] == ["old"] + [f"t{i:05d}" for i in range(2500)]
    assert {state_of(r, f"t{i:05d}") for i in range(0, 2500, 97)} == {b"pending"}
    assert r.hget(tkey("t00000"), "pending_since") is None


@pytest.mark.parametrize("state", ["retry", "archived"])
def test_run_all_retry_and_archived(broker: Broker, r: redis.Redis, state: str) -> None:
    seed_many(r, state, 5)
    assert drain(broker, lambda: ops.run_all(Q, state, batch=2), 2) == (5, 3)
    assert not r.exists(keys.queue_prefix(Q) + state)
    assert r.llen(keys.pending_key(Q)) == 5


def test_run_all_aggregating_keeps_group_until_empty(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "aggregating", 3, group="g")
    put(r, "other", "aggregating", group="h")
    n = ops.bulk_result(broker.run(ops.run_all(Q, "aggregating", group="g", batch=2)))
    assert n == 2
    assert r.smembers(keys.groups_key(Q)) == {b"g", b"h"}
    assert drain(broker, lambda: ops.run_all(Q, "aggregating", group="g", batch=2), 2) == (1, 1)
    assert r.smembers(keys.groups_key(Q)) == {b"h"}
    assert not r.exists(keys.group_key(Q, "g"))
    assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["t00002", "t00001", "t00000"]


def test_run_all_drops_dangling_ids(broker: Broker, r: redis.Redis) -> None:
    put(r, "real", "retry", score=NOW + 1)
    r.zadd(keys.retry_key(Q), {"ghost": NOW})
    assert drain(broker, lambda: ops.run_all(Q, "retry"), ops.BULK_BATCH) == (2, 1)
    assert ids(r.lrange(keys.pending_key(Q), 0, -1)) == ["real"]
    assert not r.exists(tkey("ghost"))  # no stub hash created
    assert not r.exists(keys.retry_key(Q))


def test_archive_all_pending_in_batches(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "pending", 2500)
    total, calls = drain(broker, lambda: ops.archive_all(Q, "pending", now=NOW, batch=1000), 1000)
    assert (total, calls) == (2500, 3)
    assert not r.exists(keys.pending_key(Q))
    assert r.zcard(keys.archived_key(Q)) == 2500
    assert set(r.zrange(keys.archived_key(Q), 0, -1, withscores=True)[:3]) <= {
        (f"t{i:05d}".encode(), NOW) for i in range(2500)
    }
    assert state_of(r, "t01234") == b"archived"
    assert r.hget(tkey("t01234"), "pending_since") is not None  # stale field kept, as Go


@pytest.mark.parametrize("state", ["scheduled", "retry"])
def test_archive_all_zsets(broker: Broker, r: redis.Redis, state: str) -> None:
    seed_many(r, state, 5)
    assert drain(broker, lambda: ops.archive_all(Q, state, now=NOW, batch=3), 3) == (5, 2)
    assert not r.exists(keys.queue_prefix(Q) + state)
    assert r.zrange(keys.archived_key(Q), 0, -1, withscores=True) == [
        (f"t{i:05d}".encode(), NOW) for i in range(5)
    ]


def test_archive_all_aggregating(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "aggregating", 3, group="g")
    assert drain(
        broker, lambda: ops.archive_all(Q, "aggregating", now=NOW, group="g", batch=2), 2
    ) == (3, 2)
    assert not r.exists(keys.group_key(Q, "g"))
    assert r.smembers(keys.groups_key(Q)) == set()
    assert r.zcard(keys.archived_key(Q)) == 3
    assert state_of(r, "t00002") == b"archived"


def test_archive_all_trim_equals_one_final_trim(broker: Broker, r: redis.Redis) -> None:
    # 9,000 already archived (at NOW - 10) plus 2,500 archived now, in 3 batches: the
    # archive must keep exactly the 9,999 highest (score, member) entries.
    existing = {f"e{i:05d}": NOW - 10 for i in range(9000)}
    r.zadd(keys.archived_key(Q), existing)
    r.zadd(keys.archived_key(Q), {"too-old": NOW - ops.ARCHIVE_MAX_AGE})
    seed_many(r, "retry", 2500)
    assert drain(broker, lambda: ops.archive_all(Q, "retry", now=NOW, batch=1000), 1000) == (
        2500,
        3,
    )
    everything = [(m, NOW - 10) for m in sorted(existing)] + [
        (f"t{i:05d}", NOW) for i in range(2500)
    ]
    expected = everything[-(ops.ARCHIVE_MAX_SIZE - 1) :]
    got = [(m.decode(), s) for m, s in r.zrange(keys.archived_key(Q), 0, -1, withscores=True)]
    assert got == expected
    assert r.exists(tkey("t00000"))  # trimming never deletes hashes here


def test_delete_all_releases_owned_locks(broker: Broker, r: redis.Redis) -> None:
    for state in ("scheduled", "retry", "archived", "completed"):
        r.flushdb()
        mine = keys.unique_key(Q, "email:send", b"a")
        theirs = keys.unique_key(Q, "email:send", b"b")
        put(r, "a", state, unique=mine)
        put(r, "b", state, unique=theirs)
        put(r, "c", state)
        r.set(mine, "a")
        r.set(theirs, "not-b")
        assert drain(broker, lambda s=state: ops.delete_all(Q, s, batch=2), 2) == (3, 2)
        assert not r.exists(tkey("a"), tkey("b"), tkey("c"), keys.queue_prefix(Q) + state)
        assert not r.exists(mine)
        assert r.get(theirs) == b"not-b"


def test_delete_all_scheduled_in_batches(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "scheduled", 2500)
    assert drain(broker, lambda: ops.delete_all(Q, "scheduled", batch=1000), 1000) == (2500, 3)
    assert r.dbsize() == 1  # only asynq:queues is left
    assert r.smembers(keys.ALL_QUEUES) == {b"default"}


def test_delete_all_pending_keeps_locks(broker: Broker, r: redis.Redis) -> None:
    lock = keys.unique_key(Q, "email:send", b"payload-u")
    put(r, "u", "pending", unique=lock)
    r.set(lock, "u")
    seed_many(r, "pending", 4)
    assert drain(broker, lambda: ops.delete_all(Q, "pending", batch=2), 2) == (5, 3)
    assert not r.exists(keys.pending_key(Q), tkey("u"), tkey("t00003"))
    assert r.get(lock) == b"u"  # Go does not release locks on DeleteAllPending


def test_delete_all_aggregating(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "aggregating", 3, group="g")
    put(r, "h1", "aggregating", group="h")
    assert ops.bulk_result(broker.run(ops.delete_all(Q, "aggregating", group="g", batch=2))) == 2
    assert r.smembers(keys.groups_key(Q)) == {b"g", b"h"}
    assert drain(broker, lambda: ops.delete_all(Q, "aggregating", group="g", batch=2), 2) == (
        1,
        1,
    )
    assert r.smembers(keys.groups_key(Q)) == {b"h"}
    assert not r.exists(keys.group_key(Q, "g"), tkey("t00000"), tkey("t00002"))
    assert r.exists(tkey("h1"))


def test_bulk_on_empty_source_is_zero(broker: Broker, r: redis.Redis) -> None:
    for call in (
        ops.run_all(Q, "scheduled"),
        ops.run_all(Q, "aggregating", group="g"),
        ops.archive_all(Q, "pending", now=NOW),
        ops.archive_all(Q, "retry", now=NOW),
        ops.delete_all(Q, "completed"),
        ops.delete_all(Q, "pending"),
        ops.purge_deleted(Q),
    ):
        assert ops.bulk_result(broker.run(call)) == 0
    assert r.dbsize() == 0


def test_bulk_builders_reject_bad_states() -> None:
    with pytest.raises(ValueError, match="not pending"):
        ops.run_all(Q, "pending")
    with pytest.raises(ValueError, match="not completed"):
        ops.run_all(Q, "completed")
    with pytest.raises(ValueError, match="not archived"):
        ops.archive_all(Q, "archived", now=NOW)
    with pytest.raises(ValueError, match="not active"):
        ops.delete_all(Q, "active")
    with pytest.raises(ValueError, match="group="):
        ops.delete_all(Q, "aggregating")
    with pytest.raises(ValueError, match="only to aggregating"):
        ops.run_all(Q, "retry", group="g")
    with pytest.raises(ValueError, match="only to aggregating"):
        ops.archive_all(Q, "pending", now=NOW, group="g")
    with pytest.raises(ValueError, match="batch"):
        ops.delete_all(Q, "retry", batch=0)


# --------------------------------------------------------------------------- delete queue


def _delete_queue(broker: Broker, force: bool, batch: int = ops.BULK_BATCH) -> int:
    """The whole flow the Inspector runs; returns the number of purge calls."""
    ops.check_queue_result(broker.run(ops.check_queue(Q)), Q)
    ops.delete_queue_result(broker.run(ops.delete_queue(Q, force=force)), queue=Q)
    broker.run(ops.unregister_queue(Q))
    return drain(broker, lambda: ops.purge_deleted(Q, batch=batch), batch)[1]


def test_delete_empty_queue(broker: Broker, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q, "other")
    r.zadd(keys.lease_key(Q), {"stale": NOW})
    put(r, "c", "completed")
    r.set(keys.paused_key(Q), 1)
    r.set(keys.processed_total_key(Q), 3)
    _delete_queue(broker, force=False)
    assert r.smembers(keys.ALL_QUEUES) == {b"other"}
    assert not r.exists(keys.lease_key(Q))
    # Like Go: completed tasks, the paused flag and counters are left behind.
    assert r.exists(tkey("c"), keys.completed_key(Q), keys.paused_key(Q)) == 3
    assert r.get(keys.processed_total_key(Q)) == b"3"


@pytest.mark.parametrize("state", ["pending", "active", "scheduled", "retry", "archived"])
def test_delete_non_empty_queue_without_force(broker: Broker, r: redis.Redis, state: str) -> None:
    put(r, "t", state)
    before = cf.dump_keyspace(r)
    with pytest.raises(QueueNotEmptyError, match="force=True"):
        _delete_queue(broker, force=False)
    assert cf.dump_keyspace(r) == before


def test_force_delete_refuses_active_tasks(broker: Broker, r: redis.Redis) -> None:
    put(r, "a", "active")
    put(r, "p", "pending")
    before = cf.dump_keyspace(r)
    with pytest.raises(QueueStateError, match="active tasks"):
        _delete_queue(broker, force=True)
    assert cf.dump_keyspace(r) == before


def test_delete_queue_not_found(broker: Broker, r: redis.Redis) -> None:
    with pytest.raises(QueueNotFoundError):
        _delete_queue(broker, force=True)


def test_force_delete_big_queue_detaches_then_purges(broker: Broker, r: redis.Redis) -> None:
    for state, n in (("pending", 1000), ("scheduled", 700), ("retry", 500), ("archived", 300)):
        seed_many(r, state, n, prefix=state[0])
    lock = keys.unique_key(Q, "email:send", b"x")
    r.set(lock, "s00001")
    put(r, "c", "completed")
    put(r, "g", "aggregating", group="grp")
    r.zadd(keys.lease_key(Q), {"stale": NOW})
    # Step 1: one script detaches everything; the queue looks empty at once.
    reply = broker.run(ops.delete_queue(Q, force=True, token="tok"))
    ops.delete_queue_result(reply, queue=Q)
    for k in (keys.pending_key(Q), keys.scheduled_key(Q), keys.retry_key(Q), keys.archived_key(Q)):
        assert not r.exists(k)
    assert not r.exists(keys.lease_key(Q))
    trash = {f"asynq:{{default}}:pyasynq:deleted:tok:{s}".encode() for s in
             ("pending", "scheduled", "retry", "archived")}  # fmt: skip
    assert r.smembers(keys.deleted_key(Q)) == trash
    stats = ops.current_stats_result(broker.run(ops.current_stats(Q, now=NOW)), queue=Q, now=NOW)
    assert (stats.pending, stats.scheduled, stats.retry, stats.archived) == (0, 0, 0, 0)
    assert r.exists(tkey("p00000"))  # hashes not yet purged
    broker.run(ops.unregister_queue(Q))
    # Step 2: purge in bounded batches.
    total, calls = drain(broker, lambda: ops.purge_deleted(Q, batch=1000), 1000)
    assert (total, calls) == (2500, 3)
    assert not r.exists(keys.deleted_key(Q), *trash)
    left = sorted(k.decode() for k in r.keys("*"))
    assert left == sorted(
        [
            keys.completed_key(Q),
            keys.group_key(Q, "grp"),
            keys.groups_key(Q),
            lock,
            tkey("c"),
            tkey("g"),
        ]
    )


def test_purge_resumes_after_an_interrupted_delete(broker: Broker, r: redis.Redis) -> None:
    seed_many(r, "scheduled", 5)
    ops.delete_queue_result(broker.run(ops.delete_queue(Q, force=True)), queue=Q)
    assert ops.bulk_result(broker.run(ops.purge_deleted(Q, batch=2))) == 2
    assert not r.exists(tkey("t00000"), tkey("t00001"))
    assert r.exists(tkey("t00002"), tkey("t00003"), tkey("t00004")) == 3
    # ... the process dies here; later the queue gets a task and is deleted again.
    seed_many(r, "retry", 1, prefix="fresh")
    # The purge takes the 3 leftovers and the new one: 2 + 2, then an empty call.
    assert _delete_queue(broker, force=True, batch=2) == 3
    assert r.keys("*") == []


def test_force_delete_of_empty_queue(broker: Broker, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    assert _delete_queue(broker, force=True) == 1
    assert r.keys("*") == []


# --------------------------------------------------------------------------- plain commands


def test_cancel_publishes_the_task_id(broker: Broker, r: redis.Redis) -> None:
    assert ops.cancel_result(broker.run(ops.cancel("t1"))) == 0
    sub = r.pubsub()
    sub.subscribe(keys.CANCEL_CHANNEL)
    assert sub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    assert ops.cancel_result(broker.run(ops.cancel("t1"))) == 1
    message = sub.get_message(timeout=5)
    assert message is not None
    assert (message["channel"], message["data"]) == (b"asynq:cancel", b"t1")
    sub.close()


def test_cluster_key_slot(broker: Broker, tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="cluster support disabled"):
        broker.run(ops.cluster_key_slot(Q))
    # An explicit bus port: the default (port + 10000) overflows for high ephemeral ports.
    extra = ["--cluster-enabled", "yes", "--cluster-port", str(free_port())]
    extra += ["--cluster-config-file", str(tmp_path / "nodes.conf")]
    with EmbeddedRedis(persistent=False, extra_args=extra) as server:
        clustered = Broker(server.url)
        try:
            for q in ("default", "critical", "a}b", "ünï"):
                slot = ops.cluster_key_slot_result(clustered.run(ops.cluster_key_slot(q)))
                assert slot == key_slot(keys.pending_key(q).encode())
        finally:
            clustered.close()


# --------------------------------------------------------------------------- enqueue + fixtures


def test_ops_read_what_the_enqueue_scripts_wrote(broker: Broker, r: redis.Redis) -> None:
    msg = TaskMessage(type="t", payload=b"p", id="e1", queue=Q, retry=3)
    enqueue_result(
        broker.run(enqueue_call(msg, now_ns=int(NOW * 1e9), process_at=NOW, unique_ttl=0))
    )
    later = TaskMessage(type="t", payload=b"p", id="e2", queue=Q, retry=3)
    call = enqueue_call(later, now_ns=int(NOW * 1e9), process_at=NOW + 60, unique_ttl=0)
    enqueue_result(broker.run(call))
    r.sadd(keys.ALL_QUEUES, Q)
    s = ops.current_stats_result(
        broker.run(ops.current_stats(Q, now=NOW + 2)), queue=Q, now=NOW + 2
    )
    assert (s.pending, s.scheduled, s.latency) == (1, 1, pytest.approx(2.0))
    info = _info(broker, "e2")
    assert info.state is TaskState.SCHEDULED
    assert info.next_process_at == datetime.fromtimestamp(NOW + 60, UTC)
    _run(broker, "e2")
    assert _list(broker, "pending") == ["e1", "e2"]


def _restore(r: redis.Redis, fixture: dict[str, Any]) -> None:
    """Write a fixture's keyspace into Redis as it was dumped (no Go needed)."""
    for k in fixture["keys"]:
        key, value = k["key"], k["value"]
        if k["type"] == "string":
            r.set(key, cf.blob_bytes(value))
        elif k["type"] == "hash":
            r.hset(key, mapping={f: cf.blob_bytes(v) for f, v in value.items()})
        elif k["type"] == "list":
            r.rpush(key, *[cf.blob_bytes(v) for v in value])
        elif k["type"] == "set":
            r.sadd(key, *[cf.blob_bytes(v) for v in value])
        elif k["type"] == "zset":
            r.zadd(key, {cf.blob_bytes(v["member"]): v["score"] for v in value})


FIXTURES = [
    name
    for name in (
        "paused_queue",
        "enqueue_group",
        "enqueue_process_in",
        "enqueue_unique",
        "failed_then_retry",
        "processed_with_retention_and_result",
        "skip_retry_to_archive",
        "server_running_state",
    )
    if (cf.fixtures_dir() / f"{name}.json").is_file()
]


@pytest.mark.parametrize("name", FIXTURES)
def test_conformance_fixture_reads(broker: Broker, r: redis.Redis, name: str) -> None:
    """Every task of a Go-written keyspace reads back with its state, counts add up."""
    fixture = cf.load_fixture(name)
    _restore(r, fixture)
    now = float(fixture["dumped_at"]["unix"])
    by_key = {k["key"]: k for k in fixture["keys"]}
    queues = ops.list_queues_result(broker.run(ops.list_queues()))
    assert queues == sorted(cf.blob_bytes(v).decode() for v in by_key["asynq:queues"]["value"])
    for q in queues:
        stats = ops.current_stats_result(
            broker.run(ops.current_stats(q, now=now)), queue=q, now=now
        )

        def size(suffix: str, q: str = q) -> int:
            entry = by_key.get(keys.queue_prefix(q) + suffix)
            return len(entry["value"]) if entry else 0

        assert stats.paused is (keys.paused_key(q) in by_key)
        assert (stats.pending, stats.active) == (size("pending"), size("active"))
        assert (stats.scheduled, stats.retry) == (size("scheduled"), size("retry"))
        assert (stats.archived, stats.completed) == (size("archived"), size("completed"))
        groups = ops.groups_result(broker.run(ops.groups(q)))
        assert stats.groups == len(groups)
        assert stats.aggregating == sum(g.size for g in groups)
        assert [g.size for g in groups] == [size(f"g:{g.group}") for g in groups]
        listed = 0
        for state in ("pending", "active", "scheduled", "retry", "archived", "completed"):
            reply = broker.run(ops.list_tasks(q, state, now=now, page_size=1000))
            listed += len(ops.list_tasks_result(reply, state=state, now=now))
        assert listed == stats.size - stats.aggregating
    task_keys = [k for k in fixture["keys"] if ":t:" in k["key"] and k["type"] == "hash"]
    assert task_keys
    for k in task_keys:
        q = keys.queue_from_key(k["key"])
        assert q is not None
        tid = k["key"][len(keys.task_key_prefix(q)) :]
        info = _info(broker, tid, now=now, q=q)
        assert info.state.value == k["value"]["state"]["text"]
        decoded = k["value"]["msg"]["decoded"]
        assert (info.type, info.payload) == (decoded["type"], cf.blob_bytes(decoded["payload"]))
        assert info.max_retry == decoded["retry"]
        if "result" in k["value"]:
            assert info.result == cf.blob_bytes(k["value"]["result"])
        if info.state in (TaskState.SCHEDULED, TaskState.RETRY):
            zset = by_key[keys.queue_prefix(q) + info.state.value]["value"]
            score = next(z["score"] for z in zset if z["member"]["text"] == tid)
            assert info.next_process_at is not None
            assert info.next_process_at.timestamp() == score


async def test_ops_run_on_the_async_broker(redis_url: str, r: redis.Redis) -> None:
    seed_many(r, "archived", 5)
    broker = AsyncBroker(redis_url)
    try:
        calls = total = 0
        while True:
            n = ops.bulk_result(await broker.run(ops.run_all(Q, "archived", batch=2)))
            calls, total = calls + 1, total + n
            if ops.bulk_finished(n, 2):
                break
        reply = await broker.run(ops.list_tasks(Q, "pending", now=NOW, page_size=3, page=2))
    finally:
        await broker.aclose()
    assert (total, calls) == (5, 3)
    assert [t.id for t in ops.list_tasks_result(reply, state="pending", now=NOW)] == [
        "t00003",
        "t00004",
    ]


# --------------------------------------------------------------------------- Redis Cluster


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node cluster owning every slot (explicit bus port, see test_cluster_key_slot)."""
    data = tmp_path_factory.mktemp("inspect-cluster")
    extra = ["--cluster-enabled", "yes", "--cluster-port", str(free_port())]
    extra += ["--cluster-config-file", str(data / "nodes.conf")]
    with EmbeddedRedis(data, persistent=False, extra_args=extra) as server:
        r = redis.Redis.from_url(server.url)
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10  # bounded poll until the node serves its slots
        while b"cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster never became ok"
            time.sleep(0.05)
        r.close()
        yield server.url


def _every_op(q: str) -> Callable[[str], None]:
    def run(url: str) -> None:
        b = Broker(url)
        try:
            b.run(ops.current_stats(q, now=NOW))
            b.run(ops.memory_usage(q))
            b.run(ops.history(q, 3, now=NOW))
            b.run(ops.get_task_info(q, "s", now=NOW))
            b.run(ops.get_task_info(q, "a", now=NOW))
            for state in ("pending", "active", "scheduled", "completed"):
                b.run(ops.list_tasks(q, state, now=NOW))
            b.run(ops.list_tasks(q, "aggregating", now=NOW, group="g:é"))
            b.run(ops.groups(q))
            msg = ops.get_task_message_result(
                b.run(ops.get_task_info(q, "s", now=NOW)), queue=q, task_id="s"
            )
            b.run(ops.update_task_payload(q, "s", msg, b"new"))
            b.run(ops.run_task(q, "r"))
            b.run(ops.archive_task(q, "s", now=NOW))
            b.run(ops.delete_task(q, "u"))
            b.run(ops.run_all(q, "aggregating", group="g:é"))
            b.run(ops.archive_all(q, "pending", now=NOW))
            b.run(ops.archive_all(q, "scheduled", now=NOW))
            b.run(ops.delete_all(q, "archived"))
            b.run(ops.delete_all(q, "pending"))
            b.run(ops.delete_all(q, "aggregating", group="g2"))
            b.run(ops.run_all(q, "retry"))
            b.run(ops.delete_queue(q, force=False))
            b.run(ops.delete_queue(q, force=True))
            b.run(ops.purge_deleted(q))
        finally:
            b.close()

    return run


@pytest.mark.parametrize("q", ["default", "élevé:q", "q:with:colons", "a}b"])
def test_every_inspect_script_stays_in_the_queue_slot(cluster_url: str, q: str) -> None:
    r = redis.Redis.from_url(cluster_url)
    r.flushall()
    put(r, "p", "pending", q=q, pending_since=1)
    put(r, "p2", "pending", q=q)
    put(r, "a", "active", q=q)
    put(r, "s", "scheduled", q=q)
    put(r, "r", "retry", q=q)
    put(r, "x", "archived", q=q)
    put(r, "c", "completed", q=q)
    put(r, "u", "retry", q=q, unique=keys.unique_key(q, "email:send", b"u"))
    r.set(keys.unique_key(q, "email:send", b"u"), "u")
    put(r, "g", "aggregating", q=q, group="g:é")
    put(r, "g2", "aggregating", q=q, group="g2")
    r.close()
    invocations = slots.assert_single_slot(cluster_url, _every_op(q))
    want = slots.keyslot(cluster_url, keys.pending_key(q))
    ran = set()
    for inv in invocations:
        if inv.is_script or inv.command[0].upper() == b"MGET":
            assert inv.slots == {want}, inv
        if inv.script:
            ran.add(inv.script)
    assert ran == {name for name in scripts.names() if name.startswith("inspect_")}
