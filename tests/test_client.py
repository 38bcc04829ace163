"""Client and AsyncClient: options, merging, enqueue_many, errors, connections, validation.

Most tests run twice, once per client: the ``client`` fixture hands out a small driver
that calls ``pyasynq.Client`` directly or runs ``pyasynq.AsyncClient`` on an event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import targets

import pyasynq
from pyasynq import Options, Task, TaskInfo, TaskState
from pyasynq._rdb import codec, keys
from pyasynq._rdb.ops.enqueue import enqueue_call
from pyasynq.embedded import EmbeddedRedis, free_port
from pyasynq.errors import BrokerError, DuplicateTaskError, TaskIDConflictError


class AsyncDriver:
    """AsyncClient behind the sync Client's method names, on a private event loop."""

    def __init__(self, target: Any, **kw: Any) -> None:
        self._runner = asyncio.Runner()
        self.inner = pyasynq.AsyncClient(target, **kw)

    def enqueue(self, task: Task, **kw: Any) -> TaskInfo:
        return self._runner.run(self.inner.enqueue(task, **kw))

    def enqueue_many(self, items: Any) -> list[pyasynq.EnqueueResult]:
        return self._runner.run(self.inner.enqueue_many(items))

    def ping(self) -> None:
        self._runner.run(self.inner.ping())

    def close(self) -> None:
        try:
            self._runner.run(self.inner.aclose())
        finally:
            self._runner.close()

    def run(self, coro: Any) -> Any:
        return self._runner.run(coro)


Make = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Make]:
    """``make(target=redis_url, **kw)``: a Client or an AsyncDriver, closed at teardown."""
    made: list[Any] = []

    def factory(target: Any = redis_url, **kw: Any) -> Any:
        c = pyasynq.Client(target, **kw) if request.param == "sync" else AsyncDriver(target, **kw)
        made.append(c)
        return c

    factory.kind = request.param  # type: ignore[attr-defined]
    yield factory
    for c in made:
        c.close()


@pytest.fixture
def client(make: Make, r: redis.Redis) -> Any:
    return make()


def msg(r: redis.Redis, queue: str, task_id: str) -> codec.TaskMessage:
    data = r.hget(keys.task_key(queue, task_id), "msg")
    assert data is not None, f"no task {task_id} in {queue}"
    return codec.decode_task(data)


def hash_of(r: redis.Redis, queue: str, task_id: str) -> dict[str, bytes]:
    return {k.decode(): v for k, v in r.hgetall(keys.task_key(queue, task_id)).items()}


# ------------------------------------------------------------------------------ options


def test_defaults(client: Any, r: redis.Redis) -> None:
    before = time.time()
    info = client.enqueue(Task("email:send", b'{"to":"a"}'))
    after = time.time()
    assert info.state is TaskState.PENDING
    assert (info.queue, info.max_retry, info.timeout) == ("default", 25, timedelta(minutes=30))
    assert info.deadline is None and info.group == "" and info.retention is None
    assert info.next_process_at is not None
    assert before - 1 <= info.next_process_at.timestamp() <= after + 1
    assert uuid.UUID(info.id).version == 4
    h = hash_of(r, "default", info.id)
    assert set(h) == {"msg", "state", "pending_since"}
    assert h["state"] == b"pending"
    # Redis's time, as estimated from one TIME (within half its round trip).
    assert (before - 0.05) * 1e9 <= int(h["pending_since"]) <= (after + 0.05) * 1e9
    m = msg(r, "default", info.id)
    assert (m.type, m.payload, m.id, m.queue, m.retry, m.timeout) == (
        "email:send",
        b'{"to":"a"}',
        info.id,
        "default",
        25,
        1800,
    )
    assert r.lrange(keys.pending_key("default"), 0, -1) == [info.id.encode()]
    assert r.smembers(keys.ALL_QUEUES) == {b"default"}


def test_every_plain_option(client: Any, r: redis.Redis) -> None:
    deadline = datetime(2100, 1, 1, tzinfo=UTC)
    info = client.enqueue(
        Task("report", b"p"),
        queue="critical",
        max_retry=10,
        task_id="t-1",
        timeout=timedelta(minutes=2),
        deadline=deadline,
        retention=timedelta(hours=24),
        headers={"trace-id": "abc"},
    )
    assert info.id == "t-1" and info.queue == "critical" and info.max_retry == 10
    assert info.timeout == timedelta(minutes=2) and info.deadline == deadline
    assert info.retention == timedelta(hours=24) and info.headers == {"trace-id": "abc"}
    m = msg(r, "critical", "t-1")
    assert (m.retry, m.timeout, m.deadline, m.retention) == (10, 120, 4102444800, 86400)
    assert m.headers == {"trace-id": "abc"} and m.unique_key == "" and m.group_key == ""
    assert r.lrange(keys.pending_key("critical"), 0, -1) == [b"t-1"]
    assert r.smembers(keys.ALL_QUEUES) == {b"critical"}


def test_max_retry_negative_is_refused_before_writing(client: Any, r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="max_retry must be 0"):
        client.enqueue(Task("t"), task_id="a", max_retry=-3)
    assert r.keys("asynq:*") == []
    assert client.enqueue(Task("t"), task_id="a", max_retry=0).max_retry == 0
    assert msg(r, "default", "a").retry == 0


def test_deadline_only_has_no_timeout(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("t"), task_id="a", deadline=time.time() + 60)
    m = msg(r, "default", "a")
    assert m.timeout == 0
    assert abs(m.deadline - (time.time() + 60)) < 2


def test_unique(client: Any, r: redis.Redis) -> None:
    info = client.enqueue(Task("email:send", b"x"), task_id="u1", unique=3600)
    lock = keys.unique_key("default", "email:send", b"x")
    assert r.get(lock) == b"u1"
    assert 3598 <= r.ttl(lock) <= 3600
    assert hash_of(r, "default", "u1")["unique_key"] == lock.encode()
    assert msg(r, "default", "u1").unique_key == lock
    assert info.state is TaskState.PENDING
    with pytest.raises(DuplicateTaskError, match=r"^task already exists$"):
        client.enqueue(Task("email:send", b"x"), task_id="u2", unique=3600)
    assert not r.exists(keys.task_key("default", "u2"))
    # Another payload, another queue, a nil payload: independent locks.
    client.enqueue(Task("email:send", b"y"), task_id="u3", unique=60)
    client.enqueue(Task("email:send", b"x"), task_id="u4", unique=60, queue="other")
    client.enqueue(Task("email:send"), task_id="u5", unique=60)
    client.enqueue(Task("email:send", b""), task_id="u6", unique=60)
    assert r.get("asynq:{default}:unique:email:send:") == b"u5"
    assert r.get("asynq:{default}:unique:email:send:d41d8cd98f00b204e9800998ecf8427e") == b"u6"


def test_process_in_schedules(client: Any, r: redis.Redis) -> None:
    before = time.time()
    info = client.enqueue(Task("t", b"x"), task_id="s1", process_in=10)
    assert info.state is TaskState.SCHEDULED
    assert info.next_process_at is not None
    assert abs(info.next_process_at.timestamp() - (before + 10)) < 2
    [(member, score)] = r.zrange(keys.scheduled_key("default"), 0, -1, withscores=True)
    assert member == b"s1" and abs(score - (before + 10)) < 2 and score == int(score)
    assert hash_of(r, "default", "s1").keys() == {"msg", "state"}
    assert hash_of(r, "default", "s1")["state"] == b"scheduled"
    assert not r.exists(keys.pending_key("default"))


def test_process_at(client: Any, r: redis.Redis) -> None:
    at = datetime(2100, 1, 1, tzinfo=UTC)
    info = client.enqueue(Task("t"), task_id="s1", process_at=at)
    assert (info.state, info.next_process_at) == (TaskState.SCHEDULED, at)
    assert r.zscore(keys.scheduled_key("default"), "s1") == 4102444800
    # In the past: straight to pending, next_process_at = now.
    info = client.enqueue(Task("t"), task_id="p1", process_at=time.time() - 3600)
    assert info.state is TaskState.PENDING
    assert info.next_process_at is not None
    assert abs(info.next_process_at.timestamp() - time.time()) < 2
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"p1"]


def test_scheduled_unique_lock_covers_the_wait(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"x"), task_id="s1", process_in=100, unique=60)
    lock = keys.unique_key("default", "t", b"x")
    assert r.get(lock) == b"s1"
    assert 157 <= r.ttl(lock) <= 160
    assert hash_of(r, "default", "s1")["unique_key"] == lock.encode()
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("t", b"x"), task_id="s2", process_in=100, unique=60)


def test_scheduled_unique_lock_truncates_only_the_sum(client: Any, r: redis.Redis) -> None:
    # Go: int((process-at + 1.5 s) - now) = 11 for ProcessIn(10 s), Unique(1.5 s).
    client.enqueue(Task("t", b"x"), task_id="s1", process_in=10, unique=1.5)
    pttl = r.pttl(keys.unique_key("default", "t", b"x"))
    assert 10_500 < pttl <= 11_000
    call = enqueue_call(
        codec.TaskMessage(type="t", id="i", queue="q", unique_key="k"),
        now_ns=1_000 * 10**9,
        process_at=1_010.0,
        unique_ttl=1.5,
    )
    assert (call.script, call.args[1]) == ("schedule_unique", 11)
    call = enqueue_call(
        codec.TaskMessage(type="t", id="i", queue="q", unique_key="k"),
        now_ns=1_000 * 10**9,
        process_at=1_000.0,
        unique_ttl=1.9,
    )
    assert (call.script, call.args[1]) == ("enqueue_unique", 1)


def test_group(client: Any, r: redis.Redis) -> None:
    before = int(time.time())
    info = client.enqueue(Task("digest", b"a"), task_id="g-a", group="g1")
    assert (info.state, info.group, info.next_process_at) == (TaskState.AGGREGATING, "g1", None)
    h = hash_of(r, "default", "g-a")
    assert h.keys() == {"msg", "state", "group"}
    assert (h["state"], h["group"]) == (b"aggregating", b"g1")
    assert msg(r, "default", "g-a").group_key == "g1"
    [(member, score)] = r.zrange(keys.group_key("default", "g1"), 0, -1, withscores=True)
    assert member == b"g-a" and before <= score <= time.time()
    assert r.smembers(keys.groups_key("default")) == {b"g1"}


def test_group_unique_hash_has_no_unique_key(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("digest", b"a"), task_id="g-a", group="g1", unique=60)
    lock = keys.unique_key("default", "digest", b"a")
    assert r.get(lock) == b"g-a" and 58 <= r.ttl(lock) <= 60
    assert "unique_key" not in hash_of(r, "default", "g-a")
    assert msg(r, "default", "g-a").unique_key == lock
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("digest", b"a"), task_id="g-b", group="g1", unique=60)


def test_group_with_future_process_at_is_scheduled_without_group_field(
    client: Any, r: redis.Redis
) -> None:
    info = client.enqueue(Task("digest"), task_id="g-s", group="g1", process_in=3600)
    assert info.state is TaskState.SCHEDULED and info.group == "g1"
    assert "group" not in hash_of(r, "default", "g-s")
    assert msg(r, "default", "g-s").group_key == "g1"
    assert not r.exists(keys.groups_key("default"))


def test_pending_order_newest_at_head(client: Any, r: redis.Redis) -> None:
    for tid in ("a", "b", "c"):
        client.enqueue(Task("t"), task_id=tid)
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"c", b"b", b"a"]


def test_unicode_names(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("メール:送信", "hé".encode()), queue="élevé", task_id="tâche-1", group="グ")
    m = msg(r, "élevé", "tâche-1")
    assert (m.type, m.queue, m.id, m.group_key) == ("メール:送信", "élevé", "tâche-1", "グ")
    assert r.smembers(keys.ALL_QUEUES) == {"élevé".encode()}


def test_task_from_json(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task.from_json("t", {"to": "é", "n": 1}), task_id="j")
    assert msg(r, "default", "j").payload == '{"to":"é","n":1}'.encode()


# -------------------------------------------------------------------------- merging


def test_task_defaults_are_overridden_at_enqueue(client: Any, r: redis.Redis) -> None:
    task = Task(
        "t",
        b"x",
        headers={"a": "task", "b": "task"},
        queue="low",
        max_retry=3,
        timeout=60,
        retention=10,
        process_in=3600,
        task_id="from-task",
    )
    info = client.enqueue(
        task,
        queue="high",
        headers={"b": "call", "c": "call"},
        process_at=time.time() - 1,
        task_id="from-call",
    )
    assert info.state is TaskState.PENDING  # process_in of the task was replaced
    assert (info.queue, info.id, info.max_retry) == ("high", "from-call", 3)
    assert info.headers == {"a": "task", "b": "call", "c": "call"}
    m = msg(r, "high", "from-call")
    assert (m.retry, m.timeout, m.retention) == (3, 60, 10)
    assert m.headers == {"a": "task", "b": "call", "c": "call"}
    assert r.lrange(keys.pending_key("high"), 0, -1) == [b"from-call"]
    assert not r.exists(keys.scheduled_key("high"), keys.task_key("low", "from-task"))
    assert task.headers == {"a": "task", "b": "task"}  # the task is not changed


def test_task_options_alone_apply(client: Any, r: redis.Redis) -> None:
    task = Task("t", queue="low", process_in=60, unique=30, task_id="x")
    info = client.enqueue(task)
    assert (info.state, info.queue) == (TaskState.SCHEDULED, "low")
    assert r.get(keys.unique_key("low", "t", None)) == b"x"
    # The same task object again: the lock holds.
    with pytest.raises(DuplicateTaskError):
        client.enqueue(task)


def test_process_in_at_the_call_replaces_process_at_of_the_task(
    client: Any, r: redis.Redis
) -> None:
    task = Task("t", process_at=datetime(2100, 1, 1, tzinfo=UTC), task_id="x")
    client.enqueue(task, process_in=10)
    score = r.zscore(keys.scheduled_key("default"), "x")
    assert score is not None and abs(score - (time.time() + 10)) < 2


# ---------------------------------------------------------------------- enqueue_many


def test_enqueue_many_mixed_results_in_order(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"held"), task_id="held", unique=60)
    results = client.enqueue_many(
        [
            Task("t", b"1", task_id="a"),
            (Task("t", b"2"), Options(task_id="a")),  # conflicts with the first
            (Task("t", b"3"), Options(task_id="b", queue="other")),
            (Task("t", b"held"), Options(task_id="c", unique=60)),  # duplicate
            (Task("t", b"4"), Options(task_id="d", process_in=100)),
            Task("t", b"5", task_id="e", group="g"),
            Task("t", b"6", task_id="f"),
        ]
    )
    assert [type(x.error) for x in results] == [
        type(None),
        TaskIDConflictError,
        type(None),
        DuplicateTaskError,
        type(None),
        type(None),
        type(None),
    ]
    ok = [x.info for x in results if x.info is not None]
    assert [i.id for i in ok] == ["a", "b", "d", "e", "f"]
    assert [i.state for i in ok] == [
        TaskState.PENDING,
        TaskState.PENDING,
        TaskState.SCHEDULED,
        TaskState.AGGREGATING,
        TaskState.PENDING,
    ]
    assert results[1].info is None and results[3].info is None
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"f", b"a", b"held"]
    assert msg(r, "default", "a").payload == b"1"  # not overwritten by the conflict
    assert r.lrange(keys.pending_key("other"), 0, -1) == [b"b"]
    assert r.zrange(keys.scheduled_key("default"), 0, -1) == [b"d"]
    assert r.zrange(keys.group_key("default", "g"), 0, -1) == [b"e"]
    assert not r.exists(keys.task_key("default", "c"))
    assert r.smembers(keys.ALL_QUEUES) == {b"default", b"other"}


def test_enqueue_many_empty(client: Any, r: redis.Redis) -> None:
    assert client.enqueue_many([]) == []
    assert r.dbsize() == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(["not a task"], id="str"),
        pytest.param([(Task("t"), {"queue": "q"})], id="dict-options"),
        pytest.param([(Task("t"),)], id="1-tuple"),
        pytest.param([(Task("t"), Options(), Options())], id="3-tuple"),
    ],
)
def test_enqueue_many_bad_item_writes_nothing(client: Any, r: redis.Redis, bad: list[Any]) -> None:
    with pytest.raises(TypeError):
        client.enqueue_many([Task("t", task_id="ok"), *bad])
    assert r.dbsize() == 0


def test_enqueue_many_conflicts_inside_the_call_and_with_stored_tasks(
    client: Any, r: redis.Redis
) -> None:
    client.enqueue(Task("t", b"old"), task_id="old")
    results = client.enqueue_many(
        [
            Task("t", b"1", task_id="a"),
            Task("t", b"2", task_id="old"),
            Task("t", b"3", task_id="a"),
            Task("t", b"4", task_id="b"),
        ]
    )
    assert [type(x.error) for x in results] == [
        type(None),
        TaskIDConflictError,
        TaskIDConflictError,
        type(None),
    ]
    assert [x.info.id if x.info else None for x in results] == ["a", None, None, "b"]
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"b", b"a", b"old"]
    assert (msg(r, "default", "a").payload, msg(r, "default", "old").payload) == (b"1", b"old")


def test_enqueue_many_mixed_queues_in_order(client: Any, r: redis.Redis) -> None:
    queues = ["q1", "q2", "q1", "default", "q2", "q1"]
    results = client.enqueue_many(
        [(Task("t", b"%d" % i), Options(queue=q)) for i, q in enumerate(queues)]
    )
    infos = [x.info for x in results]
    assert all(i is not None for i in infos)
    assert [i.queue for i in infos] == queues
    assert [i.payload for i in infos] == [b"%d" % i for i in range(len(queues))]
    for q in set(queues):
        ids = [i.id.encode() for i in infos if i.queue == q]
        assert r.lrange(keys.pending_key(q), 0, -1) == ids[::-1]
    for i in infos:
        assert msg(r, i.queue, i.id).queue == i.queue
    assert r.smembers(keys.ALL_QUEUES) == {b"q1", b"q2", b"default"}


def test_enqueue_many_keeps_the_input_order_when_an_id_is_reused(
    client: Any, r: redis.Redis
) -> None:
    # Storing one by one: z pending, a scheduled, then a pending "a" conflicts.
    results = client.enqueue_many(
        [
            Task("t", task_id="z"),
            (Task("t"), Options(task_id="a", process_in=60)),
            Task("t", task_id="a"),
            Task("t", task_id="b"),
        ]
    )
    assert [type(x.error) for x in results] == [
        type(None),
        type(None),
        TaskIDConflictError,
        type(None),
    ]
    assert r.zrange(keys.scheduled_key("default"), 0, -1) == [b"a"]
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"b", b"z"]


def test_enqueue_many_splits_a_big_input_into_batches(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("t"), queue="q0")  # the first call learns the topology
    seen = spy(client)
    n = 2_345
    results = client.enqueue_many([Task("t", b"%d" % i) for i in range(n)])
    ids = [x.info.id for x in results if x.info is not None]
    assert len(ids) == n and len(set(ids)) == n
    assert r.lrange(keys.pending_key("default"), 0, -1) == [i.encode() for i in reversed(ids)]
    assert msg(r, "default", ids[1234]).payload == b"1234"
    [(how, ops)] = seen
    batches = [op for op in ops if getattr(op, "script", None) == "enqueue_batch"]
    # pending + tasks (+ asynq:queues outside a cluster)
    sizes = [len(op.keys) - (1 if targets.CLUSTER else 2) for op in batches]
    assert sizes == [1000, 1000, 345]
    assert how == "run_many" and len(ops) == 3 + (1 if targets.CLUSTER else 0)


def test_enqueue_many_infos_are_those_of_enqueue(client: Any, r: redis.Redis) -> None:
    cases: list[dict[str, Any]] = [
        {},
        {"queue": "q", "max_retry": 3, "timeout": 60, "retention": 3600},
        {"deadline": datetime(2100, 1, 1, tzinfo=UTC), "headers": {"a": "b"}},
        {"unique": 60},
        {"process_at": datetime(2100, 1, 1, tzinfo=UTC)},
        {"group": "g"},
    ]
    task = Task("t", b"x", headers={"h": "1"})
    for i, kw in enumerate(cases):
        one = client.enqueue(task, task_id=f"one-{i}", **kw)
        r.delete(keys.unique_key(one.queue, "t", b"x"))
        [res] = client.enqueue_many([(task, Options(task_id=f"many-{i}", **kw))])
        assert res.error is None and res.info is not None
        many = res.info
        assert many.id == f"many-{i}"
        assert dataclasses.replace(many, id=one.id, next_process_at=None) == dataclasses.replace(
            one, next_process_at=None
        )
        assert (many.next_process_at is None) == (one.next_process_at is None)
        stored_one, stored_many = msg(r, one.queue, one.id), msg(r, many.queue, many.id)
        stored_many.id = one.id
        assert stored_many == stored_one


# ---------------------------------------------------------- one command per enqueue


def spy(client: Any) -> list[tuple[str, list[Any]]]:
    """Record the operations the client's broker is asked to run."""
    broker = (client.inner if hasattr(client, "inner") else client)._broker
    seen: list[tuple[str, list[Any]]] = []

    def recording(name: str, run: Any) -> Any:
        def wrapper(*a: Any) -> Any:
            seen.append((name, [a[0]] if name == "run" else list(a[0])))
            return run(*a)

        return wrapper

    for name in ("run", "run_many", "run_durable"):
        setattr(broker, name, recording(name, getattr(broker, name)))
    return seen


def op_names(ops: list[Any]) -> list[str]:
    return [getattr(op, "script", None) or str(op.args[0]) for op in ops]


@pytest.mark.parametrize(
    ("kw", "script"),
    [
        ({}, "enqueue"),
        ({"unique": 60}, "enqueue_unique"),
        ({"process_in": 60}, "schedule"),
        ({"process_in": 60, "unique": 60}, "schedule_unique"),
        ({"group": "g"}, "add_to_group"),
        ({"group": "g", "unique": 60}, "add_to_group_unique"),
    ],
)
def test_enqueue_is_one_script_call_that_registers_the_queue(
    client: Any, r: redis.Redis, kw: dict[str, Any], script: str
) -> None:
    client.enqueue(Task("t"), queue="q0")  # the first call learns the topology
    seen = spy(client)
    client.enqueue(Task("t"), queue="q1", task_id="a", **kw)
    if targets.CLUSTER:
        # asynq:queues is in another slot: its SADD goes in the same round trip.
        assert [(how, op_names(ops)) for how, ops in seen] == [("run_many", ["SADD", script])]
    else:
        [(how, [call])] = seen
        assert (how, call.script, call.keys[-1]) == ("run", script, keys.ALL_QUEUES)
    assert r.smembers(keys.ALL_QUEUES) == {b"q0", b"q1"}
    assert r.exists(keys.task_key("q1", "a"))


def test_the_topology_is_learnt_once(client: Any, r: redis.Redis) -> None:
    seen = spy(client)
    client.enqueue(Task("t"))
    client.enqueue_many([Task("t"), Task("t")])
    client.enqueue(Task("t"), queue="q1")
    asked = [ops for how, ops in seen if op_names(ops) == ["INFO"]]
    # Asked once: a plain client learns the topology and, as a cluster client does,
    # whether Redis may evict task data (issue 14, item 6), from the same INFO.
    assert len(asked) == 1
    # Redis's clock is read once, not per enqueue.
    times = [ops for how, ops in seen if op_names(ops) == ["TIME"]]
    assert len(times) == 1
    assert len(seen) == 3 + len(asked) + len(times)


def test_wake_up_is_published_for_new_pending_tasks_only(client: Any, r: redis.Redis) -> None:
    # Queue names of this test alone: on a cluster, another test's publish relayed late over
    # the bus could otherwise look like one of ours.
    q = f"w{uuid.uuid4().hex[:8]}-"
    p = r.pubsub()
    p.subscribe(keys.WAKE_CHANNEL)
    assert p.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    client.enqueue(Task("t"), queue=q + "q1", task_id="a")
    client.enqueue(Task("t", b"u"), queue=q + "q2", unique=60)
    client.enqueue(Task("t"), queue=q + "q3", process_in=60)
    client.enqueue(Task("t"), queue=q + "q4", group="g")
    with pytest.raises(TaskIDConflictError):
        client.enqueue(Task("t"), queue=q + "q1", task_id="a")
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("t", b"u"), queue=q + "q2", unique=60)
    results = client.enqueue_many(
        [
            *(Task("t", queue=q + "q5") for _ in range(3)),
            (Task("t", b"v"), Options(queue=q + "q6", unique=60)),
            (Task("t"), Options(queue=q + "q7", process_in=60)),
            (Task("t"), Options(queue=q + "q8", group="g")),
            (Task("t"), Options(queue=q + "q1", task_id="a")),  # a conflict: nothing new in q1
        ]
    )
    assert [x.error is None for x in results] == [True] * 6 + [False]
    got = []
    # A cluster relays a publish from another node over its bus: wait for the four
    # expected messages, then a little longer for any that should not be there.
    give_up = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < give_up:
        if (m := p.get_message(timeout=0.5)) is not None and m["data"].startswith(q.encode()):
            got.append(m["data"])
    while (m := p.get_message(timeout=0.5)) is not None:
        if m["data"].startswith(q.encode()):
            got.append(m["data"])
    p.close()
    # One per stored pending task or batch (a cluster may deliver them in any order).
    assert sorted(got) == [f"{q}{n}".encode() for n in ("q1", "q2", "q5", "q6")]


@pytest.mark.parametrize("info", [True, False], ids=["with-info", "without-info"])
def test_a_user_without_channel_rights_still_enqueues(
    make: Make, redis_url: str, r: redis.Redis, info: bool
) -> None:
    # The wake-up is best effort: an ACL that refuses the channel must not refuse the task.
    # Without INFO the client cannot learn the topology and sends the SADD beside.
    user, password = f"pyasynq-{uuid.uuid4().hex[:8]}", "s3cret-Pa55"
    for node in targets.nodes(r):
        node.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["asynq:*"],
            channels=["other"],
            commands=["+@all"] if info else ["+@all", "-info"],
        )
    try:
        c = make(targets.with_credentials(redis_url, user, password))
        c.enqueue(Task("t"), task_id="one")
        c.enqueue(Task("t", b"u"), task_id="unique", unique=60)
        [res] = c.enqueue_many([Task("t", task_id="many")])
        assert res.error is None
        assert r.lrange(keys.pending_key("default"), 0, -1) == [b"many", b"unique", b"one"]
        # Without INFO the SADD went beside the scripts (the safe way, also right here).
        assert (c.inner if hasattr(c, "inner") else c)._cluster is (targets.CLUSTER or not info)
    finally:
        for node in targets.nodes(r):
            node.acl_deluser(user)


# ------------------------------------------------------------------------ typed errors


def test_task_id_conflict(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"1"), task_id="x")
    with pytest.raises(TaskIDConflictError, match=r"^task ID conflicts with another task$"):
        client.enqueue(Task("t", b"2"), task_id="x")
    with pytest.raises(TaskIDConflictError):
        client.enqueue(Task("t", b"3"), task_id="x", process_in=60)
    with pytest.raises(TaskIDConflictError):
        client.enqueue(Task("t", b"4"), task_id="x", group="g")
    # Unique + conflicting id: Go leaves the fresh lock behind; so do we.
    with pytest.raises(TaskIDConflictError):
        client.enqueue(Task("t", b"5"), task_id="x", unique=60)
    assert r.get(keys.unique_key("default", "t", b"5")) == b"x"
    assert msg(r, "default", "x").payload == b"1"
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"x"]
    # Same id in another queue is fine.
    client.enqueue(Task("t"), task_id="x", queue="other")


def test_errors_are_pyasynq_errors() -> None:
    assert issubclass(TaskIDConflictError, pyasynq.PyAsynqError)
    assert issubclass(DuplicateTaskError, pyasynq.PyAsynqError)
    assert issubclass(BrokerError, pyasynq.PyAsynqError)


def test_redis_failure_is_broker_error(client: Any, r: redis.Redis) -> None:
    r.set(keys.pending_key("default"), "not a list")
    with pytest.raises(BrokerError, match="WRONGTYPE"):
        client.enqueue(Task("t"), task_id="x")


def test_failed_queue_registration_is_not_silent(client: Any, r: redis.Redis) -> None:
    # A task whose queue is not in asynq:queues is invisible to Inspector/CLI/asynqmon.
    r.set(keys.ALL_QUEUES, "not a set")
    # Either order: a script keeps Redis' error code first, the separate SADD of a
    # cluster is reported by the client after the fact.
    both = r"asynq:queues.*WRONGTYPE|WRONGTYPE.*asynq:queues"
    with pytest.raises(BrokerError, match=both):
        client.enqueue(Task("t"), task_id="x")
    with pytest.raises(BrokerError, match=both):
        client.enqueue(Task("t"), task_id="s", process_in=60)
    results = client.enqueue_many(
        [Task("t", task_id="y"), Task("t", task_id="z"), Task("t", task_id="w", process_in=60)]
    )
    for res in results:
        assert isinstance(res.error, BrokerError) and res.info is None
        assert re.search(both, str(res.error))
    assert len({id(res.error) for res in results}) == 3
    if not targets.CLUSTER:
        # The scripts register the queue first and store nothing when that fails.
        assert r.keys("asynq:{*") == []


# ---------------------------------------------------------------------- connections


@pytest.mark.single_node("a Redis Cluster has only database 0")
def test_url_with_a_database_number(make: Make, redis_url: str, r: redis.Redis) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/3"
    r3 = redis.Redis.from_url(url)
    r3.flushdb()
    try:
        c = make(url)
        c.enqueue(Task("t"), task_id="in-3")
        assert r3.lrange(keys.pending_key("default"), 0, -1) == [b"in-3"]
        assert r.dbsize() == 0
        assert repr(c.inner if hasattr(c, "inner") else c).endswith("/3>>")
    finally:
        r3.flushdb()
        r3.close()


@pytest.mark.single_node("runs its own one-node Redis on a unix socket")
def test_unix_socket_url(make: Make, tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = EmbeddedRedis(
        tmp_path / "data",
        persistent=False,
        extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"],
    ).start()
    try:
        c = make(f"unix://{sock}?db=2")
        c.ping()
        c.enqueue(Task("t"), task_id="via-socket")
        direct = redis.Redis(unix_socket_path=str(sock), db=2)
        assert direct.lrange(keys.pending_key("default"), 0, -1) == [b"via-socket"]
        direct.close()
    finally:
        server.stop()


def test_username_and_password(make: Make, redis_url: str, r: redis.Redis) -> None:
    user, password = f"pyasynq-{uuid.uuid4().hex[:8]}", "s3cret-Pa55"
    for node in targets.nodes(r):  # ACLs are per node, also in a cluster
        node.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["asynq:*"],
            commands=["+@all"],
        )
    try:
        c = make(targets.with_credentials(redis_url, user, password))
        c.ping()
        c.enqueue(Task("t"), task_id="acl")
        assert r.lrange(keys.pending_key("default"), 0, -1) == [b"acl"]
        with pytest.raises(BrokerError) as err:
            # On a cluster, the sync client already fails when made: redis-py's sync
            # RedisCluster connects at once.
            bad = make(targets.with_credentials(redis_url, user, f"wrong-{password}"))
            bad.ping()
        assert password not in str(err.value)
    finally:
        for node in targets.nodes(r):
            node.acl_deluser(user)


def test_rediss_requires_certificate_verification(make: Make) -> None:
    c = make("rediss://user:pw@redis.example.invalid:6380/2")
    inner = c.inner if hasattr(c, "inner") else c
    pool = inner._broker.redis.connection_pool
    conn = pool.make_connection()
    if make.kind == "sync":  # type: ignore[attr-defined]
        assert isinstance(conn, redis.connection.SSLConnection)
        assert conn.cert_reqs == ssl.CERT_REQUIRED and conn.check_hostname
    else:
        assert isinstance(conn, aioredis.connection.SSLConnection)
        assert conn.ssl_context.cert_reqs == ssl.CERT_REQUIRED
        assert conn.ssl_context.check_hostname
    kw = pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == ("redis.example.invalid", 6380, 2)
    assert "pw" not in repr(inner)


@pytest.mark.parametrize(
    ("target", "exc"),
    [
        ("http://localhost:6379", ValueError),
        ("redis-sentinel://localhost:26379", ValueError),
        ("redis://localhost:6379/0?decode_responses=True", ValueError),
        (6379, TypeError),
    ],
)
def test_bad_targets(make: Make, target: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        make(target)


def test_sync_client_refuses_an_async_redis(redis_url: str) -> None:
    with pytest.raises(TypeError, match="redis-py client"):
        pyasynq.Client(targets.async_client(redis_url))


def test_decode_responses_client_is_refused(redis_url: str) -> None:
    rc = targets.sync_client(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        pyasynq.Client(rc)
    rc.close()


def test_handed_in_sync_client_is_not_closed(redis_url: str, r: redis.Redis) -> None:
    rc = targets.sync_client(redis_url)
    ident = rc.client_id()
    with pyasynq.Client(rc) as c:
        c.enqueue(Task("t"), task_id="x")
    c.close()  # twice is fine
    assert rc.client_id() == ident  # same connection: nothing was disconnected
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"x"]
    rc.close()


async def test_handed_in_async_client_is_not_closed(redis_url: str, r: redis.Redis) -> None:
    rc = targets.async_client(redis_url)
    ident = await rc.client_id()
    async with pyasynq.AsyncClient(rc) as c:
        await c.enqueue(Task("t"), task_id="x")
    await c.aclose()
    assert await rc.client_id() == ident
    assert r.lrange(keys.pending_key("default"), 0, -1) == [b"x"]
    await rc.aclose()


def pooled_connections(client: Any) -> list[Any]:
    """The pooled connections of a redis-py client (of every node of a cluster): idle, or
    kept by the broker's script lane (checked out of the pool)."""
    pools = (
        [n.redis_connection.connection_pool for n in client.get_nodes()]
        if isinstance(client, redis.RedisCluster)
        else [client.connection_pool]
    )
    return [
        conn for pool in pools for conn in [*pool._available_connections, *pool._in_use_connections]
    ]


def test_owned_client_is_closed(redis_url: str, r: redis.Redis) -> None:
    c = pyasynq.Client(redis_url)
    c.enqueue(Task("t"), task_id="x")
    conns = pooled_connections(c._broker.redis)
    if not targets.CLUSTER:
        assert len(conns) == 1
    assert conns and all(conn._sock is not None for conn in conns)
    c.close()
    assert all(conn._sock is None for conn in conns)  # disconnected


async def test_async_client_natively(redis_url: str, r: redis.Redis) -> None:
    async with pyasynq.AsyncClient(redis_url) as c:
        await c.ping()
        infos = await asyncio.gather(*(c.enqueue(Task("t"), task_id=f"t{i}") for i in range(5)))
    assert {i.id for i in infos} == {f"t{i}" for i in range(5)}
    assert r.llen(keys.pending_key("default")) == 5


def test_ping_against_a_dead_port_hides_the_password(make: Make) -> None:
    port = free_port()
    c = make(f"redis://admin:hunter2-secret@127.0.0.1:{port}/0")
    with pytest.raises(BrokerError) as err:
        c.ping()
    assert "hunter2" not in str(err.value)
    assert f"127.0.0.1:{port}" in str(err.value)
    with pytest.raises(BrokerError) as err:
        c.enqueue(Task("t"))
    assert "hunter2" not in str(err.value)
    inner = c.inner if hasattr(c, "inner") else c
    assert "hunter2" not in repr(inner)


# --------------------------------------------------------------- bad input, nothing written


BAD_CALLS: list[Any] = [
    pytest.param(lambda c: c.enqueue(Task("")), ValueError, "blank", id="blank-type"),
    pytest.param(lambda c: c.enqueue(Task("  \t")), ValueError, "blank", id="space-type"),
    pytest.param(lambda c: c.enqueue(Task("t"), queue=""), ValueError, "blank", id="blank-queue"),
    pytest.param(lambda c: c.enqueue(Task("t"), queue=" "), ValueError, "blank", id="space-queue"),
    pytest.param(lambda c: c.enqueue(Task("t"), task_id=""), ValueError, "blank", id="blank-id"),
    pytest.param(lambda c: c.enqueue(Task("t"), group="  "), ValueError, "blank", id="blank-group"),
    pytest.param(lambda c: c.enqueue(Task("t"), unique=0.5), ValueError, "unique", id="unique<1s"),
    pytest.param(lambda c: c.enqueue(Task("t"), unique=0), ValueError, "unique", id="unique=0"),
    pytest.param(
        lambda c: c.enqueue(Task("t", "text")), TypeError, "Task.from_json", id="str-payload"
    ),
    pytest.param(
        lambda c: c.enqueue(Task("t", {"a": 1})), TypeError, "Task.from_json", id="dict-payload"
    ),
    pytest.param(lambda c: c.enqueue(Task("t"), queue="a{b}"), ValueError, "brace", id="brace"),
    pytest.param(lambda c: c.enqueue(Task("t"), queue="a}"), ValueError, "brace", id="brace2"),
    pytest.param(lambda c: c.enqueue(Task("a\nb")), ValueError, "control", id="ctl-type"),
    pytest.param(lambda c: c.enqueue(Task("t"), queue="q\x00"), ValueError, "control", id="ctl-q"),
    pytest.param(lambda c: c.enqueue(Task("t"), task_id="i\r"), ValueError, "control", id="ctl-id"),
    pytest.param(
        lambda c: c.enqueue(Task("t"), group="g\x1b"), ValueError, "control", id="ctl-group"
    ),
    pytest.param(
        lambda c: c.enqueue(Task("t"), process_at=datetime(2100, 1, 1)),
        ValueError,
        "timezone",
        id="naive-datetime",
    ),
    pytest.param(
        lambda c: c.enqueue(Task("t"), process_at=1.0, process_in=1.0),
        ValueError,
        "not both",
        id="at-and-in",
    ),
    pytest.param(lambda c: c.enqueue("t"), TypeError, "Task", id="not-a-task"),
    pytest.param(
        lambda c: c.enqueue(Task("t"), headers={"k": 1}), TypeError, "headers", id="headers"
    ),
    pytest.param(lambda c: c.enqueue(Task("t"), max_retry="3"), TypeError, "max_retry", id="mr"),
    pytest.param(
        lambda c: c.enqueue(Task("t"), max_retry=2**31), ValueError, "max_retry", id="mr-big"
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD_CALLS)
def test_bad_input_is_refused_before_anything_is_written(
    client: Any, r: redis.Redis, call: Callable[[Any], Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        call(client)
    assert r.dbsize() == 0


def test_unicode_names_are_accepted_and_other_braces_too(client: Any, r: redis.Redis) -> None:
    client.enqueue(Task("型{x}"), queue="ü:q", task_id="{id}", group="g{1}")
    assert r.zrange(keys.group_key("ü:q", "g{1}"), 0, -1) == [b"{id}"]


@pytest.mark.single_node("starts a replica of its own")
def test_an_enqueue_on_a_demoted_master_fails_with_redis_own_readonly_error() -> None:
    # After a failover a connection may still point at the old master, now a replica.
    # The script's first write (the push) fails there; the error must keep Redis' READONLY
    # code, which redis-py's Sentinel connections act on by reconnecting to the new master.
    with (
        EmbeddedRedis(persistent=False) as master,
        EmbeddedRedis(
            persistent=False, extra_args=["--replicaof", "127.0.0.1", str(master.port)]
        ) as replica,
        pyasynq.Client(replica.url, failover_timeout=0) as c,
    ):
        with pytest.raises(BrokerError) as err:
            c.enqueue(Task("t"))
        cause = err.value.__cause__
        assert isinstance(cause, redis.exceptions.ReadOnlyError), repr(cause)
        assert "read only replica" in str(err.value)
