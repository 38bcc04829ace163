"""The enqueue writes below the client: the scripts' optional registration and wake-up,
``enqueue_batch``, the encoding shared by a batch's tasks, and :func:`plan_many`.

The client-level behaviour (both topologies, both clients) is in tests/test_client.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from pyasynq import Options, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage, decode_task, encode_task, split_at_id, with_id
from pyasynq._rdb.ops.base import Call, Command
from pyasynq._rdb.ops.enqueue import (
    BATCH_SIZE,
    enqueue_call,
    plan_many,
    plan_results,
    prepare,
)
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, DuplicateTaskError, TaskIDConflictError
from pyasynq.options import NO_OPTIONS, new_task_id, uuid4_strings

from .helpers import list_ids, make_msg, task_hash

Q = "default"
NOW_NS = 1_700_000_000_123_456_789
NOW = NOW_NS / 1e9

# The registration declares asynq:queues beside the queue's keys: one plain node only.
single_node = pytest.mark.single_node("asynq:queues is in another slot than the queue's keys")


# Redis' own error first (clients act on its code), then what the script was doing.
REGISTRATION_FAILED = r"WRONGTYPE.*registering the queue in asynq:queues; nothing stored"


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def wake(r: redis.Redis) -> Iterator[redis.client.PubSub]:
    """A subscription to pyasynq:wake; ``drain(wake)`` returns what arrived."""
    p = r.pubsub()
    p.subscribe(keys.WAKE_CHANNEL)
    assert p.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    yield p
    p.close()


def drain(p: redis.client.PubSub) -> list[bytes]:
    got = []
    while (m := p.get_message(timeout=0.3)) is not None:
        got.append(m["data"])
    return got


def batch_call(queue: str, tasks: list[tuple[str, bytes]], *, register: bool, wake: bool) -> Call:
    """An enqueue_batch call as plan_many builds it."""
    call = Call(
        "enqueue_batch",
        [keys.pending_key(queue), *(keys.task_key(queue, tid) for tid, _ in tasks)],
        [NOW_NS, queue, keys.WAKE_CHANNEL if wake else ""],
    )
    for tid, data in tasks:
        call.args.extend((tid, data))
    if register:
        call.keys.append(keys.ALL_QUEUES)
    return call


def data(tid: str, queue: str = Q) -> bytes:
    return encode_task(make_msg(tid, queue=queue))


# ----------------------------------------------------------------- the shared encoding


@pytest.mark.parametrize(
    "msg",
    [
        TaskMessage(type="t", id="x"),
        make_msg("0f8fad5b-d9cb-469f-a165-70867728950e"),
        TaskMessage(
            type="メール",
            payload=b"\x00" * 300,
            id="tâche-" + "é" * 80,  # a two-byte length
            queue="q",
            retry=3,
            timeout=60,
            deadline=4102444800,
            unique_key="asynq:{q}:unique:x",
            retention=86400,
            group_key="g",
            headers={"b": "2", "a": "1"},
        ),
        TaskMessage(type="t", id="i" * 20000, payload=b""),
    ],
    ids=["minimal", "defaults", "every-field", "long-id"],
)
def test_split_encoding_equals_encode_task(msg: TaskMessage) -> None:
    head, tail = split_at_id(msg)
    assert with_id(head, tail, msg.id) == encode_task(msg)
    assert decode_task(with_id(head, tail, msg.id)) == msg


def test_uuid4_strings_are_random_version_4_uuids() -> None:
    import uuid

    ids = [*uuid4_strings(500), new_task_id()]
    assert len(set(ids)) == len(ids)
    for s in ids:
        u = uuid.UUID(s)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, s)
    # Every variant nibble (8, 9, a, b) turns up: the two random bits are kept.
    assert {s[19] for s in uuid4_strings(400)} == set("89ab")


# ------------------------------------------------------------------------ enqueue_batch


def test_batch_stores_each_task_as_enqueue_does_in_order(b: Broker, r: redis.Redis) -> None:
    tasks = [(f"t{i}", data(f"t{i}")) for i in range(3)]
    assert b.run(batch_call(Q, tasks, register=False, wake=False)) == [1, 1, 1]
    assert list_ids(r, keys.pending_key(Q)) == ["t2", "t1", "t0"]  # LPUSH per task, in order
    for tid, d in tasks:
        assert task_hash(r, Q, tid) == {
            "msg": d,
            "state": b"pending",
            "pending_since": str(NOW_NS).encode(),
        }
    assert not r.exists(keys.ALL_QUEUES)


def test_batch_conflicts_inside_the_call_and_with_stored_tasks(b: Broker, r: redis.Redis) -> None:
    r.hset(keys.task_key(Q, "old"), "msg", b"before")
    tasks = [("a", data("a")), ("old", data("old")), ("a", b"second a"), ("c", data("c"))]
    assert b.run(batch_call(Q, tasks, register=False, wake=False)) == [1, 0, 0, 1]
    assert list_ids(r, keys.pending_key(Q)) == ["c", "a"]
    assert task_hash(r, Q, "a")["msg"] == data("a")  # the first one stays
    assert task_hash(r, Q, "old") == {"msg": b"before"}  # untouched


def test_batch_of_more_ids_than_one_lpush_takes(b: Broker, r: redis.Redis) -> None:
    n = 2 * BATCH_SIZE + 7  # the script pushes 1,000 ids per LPUSH
    tasks = [(f"t{i}", b"m") for i in range(n)]
    assert b.run(batch_call(Q, tasks, register=False, wake=False)) == [1] * n
    assert list_ids(r, keys.pending_key(Q)) == [f"t{i}" for i in reversed(range(n))]


@single_node
def test_batch_registers_the_queue_and_wakes_once(b: Broker, r: redis.Redis, wake) -> None:
    tasks = [("a", data("a", "q1")), ("b", data("b", "q1"))]
    assert b.run(batch_call("q1", tasks, register=True, wake=True)) == [1, 1]
    assert r.smembers(keys.ALL_QUEUES) == {b"q1"}
    assert drain(wake) == [b"q1"]
    # Nothing stored (all conflicts) into an empty pending list: still registered, but no
    # wake-up. (Registration happens when the pending list is empty: docs/redis-schema.md.)
    r.delete(keys.ALL_QUEUES, keys.pending_key("q1"))
    assert b.run(batch_call("q1", tasks, register=True, wake=True)) == [0, 0]
    assert r.smembers(keys.ALL_QUEUES) == {b"q1"}
    assert drain(wake) == []


def test_batch_without_a_channel_does_not_publish(b: Broker, r: redis.Redis, wake) -> None:
    assert b.run(batch_call(Q, [("a", b"m")], register=False, wake=False)) == [1]
    assert drain(wake) == []


@single_node
def test_batch_with_a_failed_registration_stores_nothing(b: Broker, r: redis.Redis) -> None:
    r.set(keys.ALL_QUEUES, "not a set")
    with pytest.raises(BrokerError, match=REGISTRATION_FAILED):
        b.run(batch_call(Q, [("a", b"m"), ("b", b"m")], register=True, wake=True))
    assert r.keys("asynq:{*") == []


# ------------------------------------------------------- registration in the one-task scripts

VARIANTS = {
    "enqueue": {},
    "enqueue_unique": {"unique": 60},
    "schedule": {"process_in": 60},
    "schedule_unique": {"process_in": 60, "unique": 60},
    "add_to_group": {"group": "g"},
    "add_to_group_unique": {"group": "g", "unique": 60},
}
PENDING = {"enqueue", "enqueue_unique"}


def one(variant: str, tid: str, *, register: bool, wake: bool, payload: bytes = b"p") -> Call:
    opts = Options(task_id=tid, queue="q1", **VARIANTS[variant])  # type: ignore[arg-type]
    call = prepare(Task("t", payload), opts, NOW_NS, register=register, wake=wake).call
    assert call.script == variant
    return call


@single_node
@pytest.mark.parametrize("variant", VARIANTS)
def test_script_registers_the_queue_and_wakes_for_pending_only(
    variant: str, b: Broker, r: redis.Redis, wake
) -> None:
    assert b.run(one(variant, "a", register=True, wake=True)) == 1
    assert r.smembers(keys.ALL_QUEUES) == {b"q1"}
    assert drain(wake) == ([b"q1"] if variant in PENDING else [])
    # The same id again: not stored, so no wake-up (a unique variant needs another payload
    # to reach the id check).
    assert b.run(one(variant, "a", register=True, wake=True, payload=b"other")) == 0
    assert drain(wake) == []
    if "unique" in variant:
        assert b.run(one(variant, "b", register=True, wake=True)) == -1
        assert drain(wake) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_script_without_the_tail_neither_registers_nor_wakes(
    variant: str, b: Broker, r: redis.Redis, wake
) -> None:
    call = one(variant, "a", register=False, wake=False)
    assert keys.ALL_QUEUES not in call.keys
    assert b.run(call) == 1
    assert not r.exists(keys.ALL_QUEUES)
    assert drain(wake) == []


@pytest.mark.parametrize("variant", sorted(PENDING))
def test_pending_script_wakes_without_registering(
    variant: str, b: Broker, r: redis.Redis, wake
) -> None:
    # A Cluster: the SADD goes beside the script, the wake-up stays in it.
    call = one(variant, "a", register=False, wake=True)
    assert keys.ALL_QUEUES not in call.keys
    assert b.run(call) == 1
    assert not r.exists(keys.ALL_QUEUES)
    assert drain(wake) == [b"q1"]


@single_node
@pytest.mark.parametrize("variant", VARIANTS)
def test_script_with_a_failed_registration_stores_nothing(
    variant: str, b: Broker, r: redis.Redis
) -> None:
    r.set(keys.ALL_QUEUES, "not a set")
    with pytest.raises(BrokerError, match=REGISTRATION_FAILED):
        b.run(one(variant, "a", register=True, wake=True))
    assert r.keys("asynq:{*") == []


def test_register_and_wake_only_extend_the_plain_call() -> None:
    msg = make_msg("a", queue="q1")
    bare = enqueue_call(msg, now_ns=NOW_NS, process_at=NOW, unique_ttl=0)
    full = enqueue_call(msg, now_ns=NOW_NS, process_at=NOW, unique_ttl=0, register=True, wake=True)
    assert full.keys == [*bare.keys, keys.ALL_QUEUES]
    assert full.args == [*bare.args, "q1", keys.WAKE_CHANNEL]
    later = enqueue_call(msg, now_ns=NOW_NS, process_at=NOW + 9, unique_ttl=0, wake=True)
    assert later.script == "schedule" and later.args == [encode_task(msg), int(NOW + 9), "a"]


# ---------------------------------------------------------------------------- plan_many


def scripts(ops: list[Call | Command]) -> list[str]:
    return [op.script if isinstance(op, Call) else str(op.args[0]) for op in ops]


def test_plan_batches_plain_pending_tasks_per_queue_and_1000() -> None:
    items = [(Task("t"), NO_OPTIONS) for _ in range(BATCH_SIZE + 1)]
    items.insert(1, (Task("t"), Options(queue="q2")))
    plan = plan_many(items, NOW_NS, cluster=False)
    assert scripts(plan.ops) == ["enqueue_batch", "enqueue_batch", "enqueue_batch"]
    first, other, second = plan.ops
    assert isinstance(first, Call) and isinstance(second, Call) and isinstance(other, Call)
    assert len(first.keys) == 1 + BATCH_SIZE + 1  # pending, the tasks, asynq:queues
    assert first.keys[0] == keys.pending_key(Q) and first.keys[-1] == keys.ALL_QUEUES
    assert second.keys == [
        keys.pending_key(Q),
        keys.task_key(Q, plan.infos[-1].id),
        keys.ALL_QUEUES,
    ]
    assert other.args[:3] == [NOW_NS, "q2", keys.WAKE_CHANNEL]
    assert plan.replies[:3] == [(0, 0), (1, 0), (0, 1)]
    assert plan.replies[-1] == (2, 0)
    assert plan.registrations == [-1] * len(items)


def test_plan_in_a_cluster_sends_one_sadd_per_queue_beside_the_scripts() -> None:
    items = [
        (Task("t"), NO_OPTIONS),
        (Task("t"), Options(queue="q2", process_in=60)),
        (Task("t"), Options(queue="q2")),
        (Task("t"), NO_OPTIONS),
    ]
    plan = plan_many(items, NOW_NS, cluster=True)
    assert scripts(plan.ops) == ["SADD", "enqueue_batch", "SADD", "schedule", "enqueue_batch"]
    assert all(keys.ALL_QUEUES not in op.keys for op in plan.ops if isinstance(op, Call))
    assert plan.registrations == [0, 2, 2, 0]
    assert [op.args for op in plan.ops if isinstance(op, Command)] == [
        ("SADD", keys.ALL_QUEUES, Q),
        ("SADD", keys.ALL_QUEUES, "q2"),
    ]


def test_plan_keeps_the_input_order_where_an_id_is_reused_across_kinds() -> None:
    items = [
        (Task("t"), Options(task_id="z")),
        (Task("t"), Options(task_id="a", process_in=60)),  # a single call: runs after the batch
        (Task("t"), Options(task_id="a")),  # must see the scheduled "a": a new batch
        (Task("t"), Options(task_id="b")),
    ]
    plan = plan_many(items, NOW_NS, cluster=False)
    assert scripts(plan.ops) == ["enqueue_batch", "schedule", "enqueue_batch"]
    assert plan.replies == [(0, 0), (1, -1), (2, 0), (2, 1)]


@pytest.mark.parametrize(
    "item",
    [
        (Task("t", b"x"), NO_OPTIONS),
        (Task("t"), NO_OPTIONS),
        (Task("t", b"x", headers={"h": "1"}), NO_OPTIONS),
        (Task("t", b"x", queue="q", max_retry=3), Options(timeout=60, retention=3600)),
        (Task("t", b"x"), Options(deadline=4102444800, headers={"a": "b"})),
        (Task("t", b"x"), Options(unique=60)),
        (Task("t", b"x"), Options(process_in=60, unique=60)),
        (Task("t", b"x"), Options(group="g")),
        (Task("t", b"x"), Options(process_at=datetime(2100, 1, 1, tzinfo=UTC))),
    ],
    ids=["fast", "nil-payload", "headers", "options", "deadline", "unique", "later", "group", "at"],
)
def test_plan_writes_and_reports_what_prepare_does(item: tuple[Task, Options]) -> None:
    plan = plan_many([item], NOW_NS, cluster=False)
    [op] = plan.ops
    assert isinstance(op, Call)
    [info] = plan.infos
    task, options = item
    one = prepare(task, options.merged(Options(task_id=info.id)), NOW_NS, register=True, wake=True)
    assert info == one.info
    if op.script == "enqueue_batch":
        assert op.args[3:] == [info.id, one.msg]
        assert op.keys == [one.call.keys[1], one.call.keys[0], keys.ALL_QUEUES]
    else:
        assert (op.script, op.keys, op.args) == (one.call.script, one.call.keys, one.call.args)


def test_plan_results_map_replies_in_input_order() -> None:
    items = [
        (Task("t"), Options(task_id="a")),
        (Task("t"), Options(task_id="b", unique=60)),
        (Task("t"), Options(task_id="c")),
        (Task("t"), Options(task_id="d", queue="q2")),
    ]
    plan = plan_many(items, NOW_NS, cluster=True)
    assert scripts(plan.ops) == ["SADD", "enqueue_batch", "enqueue_unique", "SADD", "enqueue_batch"]
    down = BrokerError("enqueue_batch failed: boom")
    results = plan_results(plan, [1, [1, 0], -1, BrokerError("SADD failed: nope"), down])
    assert [r.info.id if r.info else None for r in results] == ["a", None, None, None]
    assert isinstance(results[1].error, DuplicateTaskError)
    assert isinstance(results[2].error, TaskIDConflictError)
    assert isinstance(results[3].error, BrokerError) and "boom" in str(results[3].error)
    assert results[3].error is not down  # each result holds an exception of its own


def test_plan_results_copy_a_batch_failure_for_each_task() -> None:
    plan = plan_many([(Task("t"), NO_OPTIONS)] * 3, NOW_NS, cluster=False)
    down = BrokerError("enqueue_batch failed: WRONGTYPE")
    errors = [r.error for r in plan_results(plan, [down])]
    assert all(isinstance(e, BrokerError) and str(e) == str(down) for e in errors)
    assert len({id(e) for e in errors}) == 3


def test_plan_results_refuse_a_reply_of_the_wrong_shape() -> None:
    plan = plan_many([(Task("t"), NO_OPTIONS)], NOW_NS, cluster=False)
    with pytest.raises(ValueError, match="enqueue_batch reply"):
        plan_results(plan, [1])


def test_batch_infos_match_what_redis_stores(b: Broker, r: redis.Redis) -> None:
    items = [(Task("t", b"%d" % i), NO_OPTIONS) for i in range(5)]
    items.append((Task("t", headers={"k": "v"}), Options(queue="q2", retention=60)))
    plan = plan_many(items, time.time_ns(), cluster=True)
    results = plan_results(plan, b.run_many(plan.ops))
    for res in results:
        assert res.error is None and res.info is not None
        m = decode_task(task_hash(r, res.info.queue, res.info.id)["msg"])
        assert (m.id, m.queue, m.type, m.payload, m.retry, m.retention, m.headers) == (
            res.info.id,
            res.info.queue,
            res.info.type,
            res.info.payload,
            res.info.max_retry,
            res.info.retention.total_seconds() if res.info.retention else 0,
            res.info.headers,
        )
