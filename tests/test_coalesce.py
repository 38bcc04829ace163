"""AsyncClient coalescing: concurrent enqueues share round trips, each keeps its outcome.

The round trips are counted on the client's broker (``run`` is one call on its own,
``run_many`` one pipeline); what was stored is read from Redis.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.exceptions
import targets

import pyasynq
from pyasynq import Task
from pyasynq._rdb import keys
from pyasynq.errors import BrokerError, TaskIDConflictError


class Counted:
    """Counts the round trips a client's broker makes; can fail the next pipelines."""

    def __init__(self, client: pyasynq.AsyncClient) -> None:
        broker = client._broker
        self.single = 0
        self.pipelines: list[int] = []  # ops per pipeline
        self.fail_next = 0
        run, run_many = broker.run, broker.run_many

        async def counted_run(op: Any) -> Any:
            self.single += 1
            return await run(op)

        async def counted_run_many(ops: Any) -> Any:
            self.pipelines.append(len(ops))
            shared = any(getattr(op, "script", "") == "enqueue_batch" for op in ops)
            if self.fail_next and shared:  # a coalesced pipeline, not a lone call
                self.fail_next -= 1
                err = BrokerError("pipeline failed: Connection reset by peer")
                err.__cause__ = redis.exceptions.ConnectionError("Connection reset by peer")
                raise err
            return await run_many(ops)

        broker.run = counted_run  # type: ignore[method-assign]
        broker.run_many = counted_run_many  # type: ignore[method-assign]

    @property
    def round_trips(self) -> int:
        return self.single + len(self.pipelines)


@pytest.fixture
async def client(redis_url: str, r: redis.Redis) -> AsyncIterator[pyasynq.AsyncClient]:
    c = pyasynq.AsyncClient(redis_url, failover_timeout=2.0)
    await c.ping()
    await c.enqueue(Task("warm:up"))  # learn the topology, load the script
    r.flushall()
    yield c
    await c.aclose()


def pending(r: redis.Redis, queue: str = "default") -> set[str]:
    return {x.decode() for x in r.lrange(keys.pending_key(queue), 0, -1)}  # type: ignore[union-attr]


async def test_concurrent_enqueues_share_round_trips(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    counted = Counted(client)
    infos = await asyncio.gather(*(client.enqueue(Task("t", str(i).encode())) for i in range(300)))
    assert len({i.id for i in infos}) == 300
    assert pending(r) == {i.id for i in infos}
    # The first call goes alone; the 299 that arrived meanwhile share a pipeline or few,
    # in which the plain enqueues of a queue share one enqueue_batch script call (in a
    # Cluster, each call is a pipeline of its SADD and its script).
    assert counted.round_trips <= 5, (counted.single, counted.pipelines)
    assert sum(counted.pipelines) <= 4 * 2
    lone, merged = (r.hgetall(keys.task_key("default", infos[i].id)) for i in (0, 7))
    assert lone.keys() == merged.keys() == {b"msg", b"state", b"pending_since"}
    assert merged[b"state"] == b"pending" and b"7" in merged[b"msg"]


async def test_queues_and_kinds_mixed_in_a_burst(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    calls = [client.enqueue(Task("t"), queue=f"q{i % 3}", task_id=f"id{i}") for i in range(30)]
    calls.insert(10, client.enqueue(Task("t"), queue="q1", task_id="id4", process_in=60))
    calls.insert(20, client.enqueue(Task("t"), queue="q2", task_id="late", group="g"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    # id4 (q1) came first in the burst as a pending task; the scheduled one reusing it
    # in q1 conflicts, as one by one.
    assert isinstance(results[10], TaskIDConflictError)
    assert all(isinstance(x, pyasynq.TaskInfo) for i, x in enumerate(results) if i != 10)
    for q in range(3):
        assert pending(r, f"q{q}") == {f"id{i}" for i in range(30) if i % 3 == q}
    assert r.smembers(keys.ALL_QUEUES) == {b"q0", b"q1", b"q2"}
    assert r.hget(keys.task_key("q2", "late"), "state") == b"aggregating"


async def test_a_lone_enqueue_is_sent_at_once_as_one_call(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    counted = Counted(client)
    for _ in range(3):
        await client.enqueue(Task("t"))
    assert counted.round_trips == 3
    assert all(n <= 2 for n in counted.pipelines)  # a Cluster's SADD beside the script


async def test_coalesce_off_sends_each_call_on_its_own(redis_url: str, r: redis.Redis) -> None:
    async with pyasynq.AsyncClient(redis_url, coalesce=False) as c:
        await c.enqueue(Task("warm:up"))
        counted = Counted(c)
        await asyncio.gather(*(c.enqueue(Task("t")) for _ in range(50)))
    assert counted.round_trips == 50
    assert r.llen(keys.pending_key("default")) == 51


async def test_each_caller_gets_its_own_result_or_error(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    counted = Counted(client)
    calls = [client.enqueue(Task("t"), task_id="first")]  # sent alone
    calls += [client.enqueue(Task("t"), task_id=f"id-{i}") for i in range(20)]
    calls += [client.enqueue(Task("t"), task_id="first") for _ in range(5)]  # conflicts
    calls += [client.enqueue(Task("t"), queue="other", unique=60) for _ in range(2)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert counted.pipelines  # the rest did share round trips
    assert results[0].id == "first"  # type: ignore[union-attr]
    assert [x.id for x in results[1:21]] == [f"id-{i}" for i in range(20)]  # type: ignore[union-attr]
    conflicts = results[21:26]
    assert all(isinstance(e, TaskIDConflictError) for e in conflicts)
    assert len({id(e) for e in conflicts}) == 5  # each caller raises its own
    unique = results[26:]
    assert sum(isinstance(x, pyasynq.TaskInfo) for x in unique) == 1
    assert sum(isinstance(x, pyasynq.DuplicateTaskError) for x in unique) == 1
    assert pending(r) == {"first", *(f"id-{i}" for i in range(20))}
    assert r.smembers(keys.ALL_QUEUES) == {b"default", b"other"}


async def test_a_failed_pipeline_is_retried_by_each_caller(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    counted = Counted(client)
    counted.fail_next = 1  # a failover-type error on the first shared pipeline
    infos = await asyncio.gather(*(client.enqueue(Task("t")) for _ in range(40)))
    assert pending(r) == {i.id for i in infos}
    assert len(counted.pipelines) >= 2  # the failed one, then the retries


async def test_a_refused_pipeline_fails_each_caller_with_its_own_error(
    client: pyasynq.AsyncClient, r: redis.Redis
) -> None:
    counted = Counted(client)
    counted.fail_next = 1
    client._failover_timeout = 0  # no retry: the error reaches the callers
    results = await asyncio.gather(
        *(client.enqueue(Task("t")) for _ in range(10)), return_exceptions=True
    )
    errors = [e for e in results if not isinstance(e, pyasynq.TaskInfo)]
    assert len(errors) >= 9  # all but the lone first call (a pipeline too in a Cluster)
    assert all(isinstance(e, BrokerError) and "Connection reset" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == len(errors)
    assert r.llen(keys.pending_key("default")) == 10 - len(errors)


async def test_a_cancelled_caller_is_not_sent(client: pyasynq.AsyncClient, r: redis.Redis) -> None:
    first = asyncio.ensure_future(client.enqueue(Task("t"), task_id="a"))
    await asyncio.sleep(0)  # "a" is in flight: the next ones wait
    gone = asyncio.ensure_future(client.enqueue(Task("t"), task_id="gone"))
    kept = asyncio.ensure_future(client.enqueue(Task("t"), task_id="kept"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, kept)
    assert gone.cancelled()
    assert pending(r) == {"a", "kept"}


async def test_hooks_see_each_call_of_a_coalesced_burst(redis_url: str, r: redis.Redis) -> None:
    from contextlib import contextmanager

    from pyasynq.hooks import Enqueueing

    seen: list[tuple[str | None, str | None]] = []

    @contextmanager
    def hook(ev: Enqueueing) -> Any:
        try:
            yield
        finally:
            seen.append(
                (ev.info.id if ev.info else None, type(ev.error).__name__ if ev.error else None)
            )

    async with pyasynq.AsyncClient(redis_url, enqueue_hooks=[hook]) as c:
        await asyncio.gather(
            *(c.enqueue(Task("t"), task_id=i) for i in ["x", "y", "x", "z", "x"]),
            return_exceptions=True,
        )
    assert sorted(seen, key=str) == sorted(
        [("x", None), ("y", None), ("z", None), (None, "TaskIDConflictError"),
         (None, "TaskIDConflictError")],
        key=str,
    )  # fmt: skip


async def test_a_first_burst_reads_the_topology_once(redis_url: str, r: redis.Redis) -> None:
    # 500 first calls at once: one INFO between them, not one per caller (each on its own
    # pooled connection: redis-py's asyncio pool holds 100).
    async with pyasynq.AsyncClient(redis_url) as c:
        infos = await asyncio.gather(*(c.enqueue(Task("t")) for _ in range(500)))
    assert pending(r) == {i.id for i in infos}


def test_merge_keeps_the_order_around_other_ops() -> None:
    from pyasynq._rdb.ops.base import Call, Command
    from pyasynq._rdb.ops.enqueue import SHARED, WHOLE, merge_enqueues

    def plain(tid: str) -> Call:
        return Call(
            "enqueue",
            [keys.task_key("q", tid), keys.pending_key("q"), keys.ALL_QUEUES],
            [b"m", tid, 1, "q", keys.WAKE_CHANNEL],
        )

    other = Call("schedule", [keys.task_key("q", "b"), keys.scheduled_key("q")], [b"m", 9, "b"])
    sadd = Command(("SADD", keys.ALL_QUEUES, "q"))
    ops, where = merge_enqueues([[plain("a")], [plain("b")], [other], [sadd, plain("b")], [sadd]])
    # a and b share a batch; the schedule runs after it; the second b starts a new batch.
    assert [op.script if isinstance(op, Call) else op.args[0] for op in ops] == [
        "enqueue_batch",
        "schedule",
        "SADD",
        "enqueue_batch",
    ]
    assert where == [[(0, 0)], [(0, 1)], [(1, WHOLE)], [(2, SHARED), (3, 0)], [(2, SHARED)]]
    first = ops[0]
    assert isinstance(first, Call)
    assert first.keys[-1] == keys.ALL_QUEUES and first.args[3:] == ["a", b"m", "b", b"m"]


# The calls left on the dead loop are collected at the end, where redis-py's pool, reset
# under them, complains while they unwind: that noise is not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.skipif(targets.CLUSTER, reason="resets a plain connection pool")
def test_a_client_outlives_an_event_loop_closed_mid_burst(redis_url: str, r: redis.Redis) -> None:
    # A loop closed with calls in flight must not leave the client waiting for them.
    c = pyasynq.AsyncClient(redis_url)
    loop = asyncio.new_event_loop()

    left: list[asyncio.Future[pyasynq.TaskInfo]] = []

    async def burst() -> None:
        left.extend(asyncio.ensure_future(c.enqueue(Task("t"))) for _ in range(5))
        await asyncio.sleep(0)

    loop.run_until_complete(burst())
    loop.close()  # the five never finish

    async def later() -> pyasynq.TaskInfo:
        # A fresh connection pool for this loop (the old one's sockets belong to the old).
        c._broker.redis.connection_pool.reset()
        return await asyncio.wait_for(c.enqueue(Task("t"), task_id="after"), 10)

    assert asyncio.run(later()).id == "after"
    assert r.hget(keys.task_key("default", "after"), "state") == b"pending"
    left.clear()
    gc.collect()  # here, not in a later test


async def test_callers_waiting_on_a_cancelled_topology_read_go_on(
    redis_url: str, r: redis.Redis
) -> None:
    async with pyasynq.AsyncClient(redis_url) as c:
        first = asyncio.ensure_future(c.enqueue(Task("t"), task_id="first"))
        await asyncio.sleep(0)  # first is reading the topology (INFO)
        others = [asyncio.ensure_future(c.enqueue(Task("t"), task_id=f"o{i}")) for i in range(3)]
        await asyncio.sleep(0)  # ... and the others wait for that read
        first.cancel()
        done = await asyncio.wait_for(asyncio.gather(*others), 10)
    assert first.cancelled()
    assert [i.id for i in done] == ["o0", "o1", "o2"]
    assert pending(r) == {"o0", "o1", "o2"}
