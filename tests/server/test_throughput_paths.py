"""The processor's batched paths: several free slots filled by one dequeue_many call, and
outcome writes pipelined by WriteBatcher, each with its own fenced reply."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import redis
from rdb.helpers import queue_state, task_fields
from targets import CLUSTER

from pyasynq import Client, Task
from pyasynq._async.broker import AsyncBroker
from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import Op, processing
from pyasynq._server.processor import Deadlines, WriteBatcher
from pyasynq.errors import BrokerError, LeaseExpiredError, TaskGoneError

from .support import Servers, wait_for

Q = "default"


class CountingBroker(AsyncBroker):
    """Records how many round trips carried which ops."""

    def __init__(self, redis: Any) -> None:
        super().__init__(redis)
        self.trips: list[list[str]] = []

    async def run(self, op: Op) -> Any:
        self.trips.append([getattr(op, "script", "command")])
        return await super().run(op)

    async def run_many(self, ops: Sequence[Op]) -> list[Any]:
        self.trips.append([getattr(op, "script", "command") for op in ops])
        return await super().run_many(ops)


async def lease_tasks(
    client: Client, b: AsyncBroker, ids: list[str], token: str
) -> list[TaskMessage]:
    for tid in ids:
        client.enqueue(Task("t", tid.encode()), task_id=tid)
    op = processing.dequeue_many(Q, time.time(), token, len(ids))
    leased = processing.dequeue_many_result(Q, await b.run(op))
    assert [x.task_id for x in leased] == ids
    return [x.msg for x in leased if x.msg is not None]


async def test_writes_ready_together_share_one_round_trip_with_their_own_replies(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    b = CountingBroker(redis_url)
    try:
        ok1, lost, ok2 = await lease_tasks(client, b, ["a", "b", "c"], "tok-1")
        # "b" was recovered and dequeued again elsewhere: its hash carries a newer token.
        r.hset(keys.task_key(Q, "b"), "attempt", "tok-2")
        batcher = WriteBatcher(b)
        now = time.time()
        b.trips.clear()
        replies = await asyncio.gather(
            *(batcher.run(processing.done(m, now, "tok-1")) for m in (ok1, lost, ok2))
        )
        assert b.trips == [["done", "done", "done"]]
        processing.check_write(replies[0])
        processing.check_write(replies[2])
        with pytest.raises(LeaseExpiredError):
            processing.check_write(replies[1])
        state = queue_state(r, Q)
        assert state["active"] == ["b"]  # the fenced write changed nothing
        assert task_fields(r, Q, "b")["attempt"] == "tok-2"
        assert not r.exists(keys.task_key(Q, "a"), keys.task_key(Q, "c"))
        assert int(r.get(keys.processed_total_key(Q)) or 0) == 2
        # Gone tasks answer NOT FOUND, still one reply per op.
        (gone,) = await asyncio.gather(batcher.run(processing.done(ok1, now, "tok-1")))
        with pytest.raises(TaskGoneError):
            processing.check_write(gone)
    finally:
        await b.aclose()


async def test_done_writes_of_one_queue_merge_into_one_done_many_call(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    b = CountingBroker(redis_url)
    try:
        ok1, lost, ok2, gone = await lease_tasks(client, b, ["a", "b", "c", "d"], "tok-1")
        r.hset(keys.task_key(Q, "b"), "attempt", "tok-2")  # b was dequeued again elsewhere
        r.delete(keys.task_key(Q, "d"))  # d's hash vanished
        batcher = WriteBatcher(b)
        now = time.time()
        b.trips.clear()
        replies = await asyncio.gather(
            *(
                batcher.run(processing.done(m, now, "tok-1"), (m, now, "tok-1"))
                for m in (ok1, lost, ok2, gone)
            )
        )
        assert b.trips == [["done_many"]]
        assert replies[0] == 1 and replies[2] == 1
        with pytest.raises(LeaseExpiredError):
            processing.check_write(replies[1])
        with pytest.raises(TaskGoneError):
            processing.check_write(replies[3])
        state = queue_state(r, Q)
        assert state["active"] == ["b"] and [t for t, _ in state["lease"]] == ["b"]
        assert task_fields(r, Q, "b")["attempt"] == "tok-2"
        assert int(r.get(keys.processed_total_key(Q)) or 0) == 2
        assert int(r.get(keys.processed_key(Q, now)) or 0) == 2
    finally:
        await b.aclose()


async def _done_kinds(
    b: AsyncBroker, way: str, now: float, pairs: list[tuple[TaskMessage, str]]
) -> list[object]:
    """Finish ``pairs`` through one done_many call ("many") or one done per task, and
    name each outcome: 1, or the type of the error it maps to."""
    if way == "many":
        reply = await b.run(processing.done_many(Q, now, pairs))
        replies = processing.done_many_result(reply, len(pairs))
    else:
        replies = await b.run_many([processing.done(m, now, t) for m, t in pairs])
    return [
        type(processing.map_error(g)).__name__ if isinstance(g, BrokerError) else g for g in replies
    ]


def _snapshot(r: redis.Redis) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k in sorted(r.keys("*")):
        t = r.type(k)
        if t == b"string":
            out[k] = (r.get(k), r.ttl(k))
        elif t == b"hash":
            out[k] = r.hgetall(k)
        elif t == b"list":
            out[k] = r.lrange(k, 0, -1)
        elif t == b"zset":
            out[k] = r.zrange(k, 0, -1, withscores=True)
        else:
            out[k] = t
    return out


@pytest.mark.parametrize("waited", [False, True], ids=["unwaited", "waited"])
@pytest.mark.parametrize("total", [None, "41", str(2**63 - 3), str(2**63 - 1)])
async def test_done_many_leaves_exactly_the_state_of_one_done_per_task(
    redis_url: str, r: redis.Redis, client: Client, total: str | None, waited: bool
) -> None:
    """Same tasks, same tokens: once through done_many, once through done one by one;
    covers the fenced, gone, uniquely locked (own and foreign lock) cases and the all-time
    counter from absent, far from MaxInt64 (one INCRBY) and at or near it (wraps to 1).
    ``waited``: with the queue's waiting flag set, done_many reads the fence's `attempt`
    in the same HMGET as the waiters' fields; without it, on its own."""
    b = AsyncBroker(redis_url)
    now = 1_700_000_000.0
    results = []
    try:
        for way in ("many", "single"):
            r.flushdb()
            if total is not None:
                r.set(keys.processed_total_key(Q), total)
            client.enqueue(Task("u", b"1"), task_id="u1", unique=timedelta(hours=1))
            client.enqueue(Task("u", b"2"), task_id="u2", unique=timedelta(hours=1))
            for tid in ("a", "b", "c"):
                client.enqueue(Task("t", tid.encode()), task_id=tid)
            op = processing.dequeue_many(Q, now, "tok", 5)
            leased = processing.dequeue_many_result(Q, await b.run(op))
            msgs = {x.task_id: x.msg for x in leased if x.msg is not None}
            u2 = msgs["u2"]
            assert u2 is not None and u2.unique_key
            r.set(u2.unique_key, "someone-else")  # a lock this task no longer holds
            r.hset(keys.task_key(Q, "b"), "attempt", "other")
            r.delete(keys.task_key(Q, "c"))
            if waited:
                r.set(keys.waiting_key(Q), 1)
            order = ["u1", "a", "b", "u2", "c"]
            pairs = [(msgs[t], "tok") for t in order]
            results.append((await _done_kinds(b, way, now, pairs), _snapshot(r)))
    finally:
        await b.aclose()
    (many_kinds, many_state), (single_kinds, single_state) = results
    assert many_kinds == [1, 1, "LeaseExpiredError", 1, "TaskGoneError"]
    assert many_kinds == single_kinds
    assert many_state == single_state
    counted = many_state[keys.processed_total_key(Q).encode()][0]
    expected = {
        None: b"3",
        "41": b"44",
        str(2**63 - 3): b"1",
        str(2**63 - 1): b"3",
    }  # MAX-3 +2 = MAX, then wraps
    assert counted == expected[total], counted


async def test_done_many_matches_one_done_per_task_across_token_runs_and_locks(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    """Tasks of several dequeues (so runs of different tokens, one skipped with ""), a
    stale token, and locks at scattered positions: the same replies and state as done
    one by one."""
    b = AsyncBroker(redis_url)
    now = 1_700_000_000.0
    order = ["a", "u1", "b", "c", "u2", "d"]
    tokens = {"a": "t1", "u1": "t1", "b": "t2", "c": "", "u2": "t2", "d": "stale"}
    results = []
    try:
        for way in ("many", "single"):
            r.flushdb()
            msgs: dict[str, TaskMessage] = {}
            for tid in order:  # one dequeue per task, each with its own token
                uniq = timedelta(hours=1) if tid.startswith("u") else None
                client.enqueue(Task("t", tid.encode()), task_id=tid, unique=uniq)
                dq = processing.dequeue(Q, now, {"c": "t3", "d": "t4"}.get(tid, tokens[tid]))
                got = processing.dequeue_result(Q, await b.run(dq))
                assert got is not None and got.msg is not None
                msgs[tid] = got.msg
            pairs = [(msgs[t], tokens[t]) for t in order]
            results.append((await _done_kinds(b, way, now, pairs), _snapshot(r)))
    finally:
        await b.aclose()
    (many_kinds, many_state), (single_kinds, single_state) = results
    assert many_kinds == [1, 1, 1, 1, 1, "LeaseExpiredError"]
    assert many_kinds == single_kinds
    assert many_state == single_state
    assert not any(k.startswith(b"asynq:{default}:unique:") for k in many_state)  # released


async def test_writes_arriving_during_a_round_trip_go_in_the_next_one(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    b = CountingBroker(redis_url)
    try:
        msgs = await lease_tasks(client, b, ["a", "b", "c"], "tok")
        batcher = WriteBatcher(b)
        now = time.time()
        b.trips.clear()
        first = asyncio.ensure_future(batcher.run(processing.done(msgs[0], now, "tok")))
        await asyncio.sleep(0)  # the flusher has sent "a" alone and waits for its reply
        rest = [batcher.run(processing.done(m, now, "tok")) for m in msgs[1:]]
        replies = await asyncio.gather(first, *rest)
        assert replies == [1, 1, 1]
        assert b.trips == [["done"], ["done", "done"]]
        assert queue_state(r, Q)["active"] == []
    finally:
        await b.aclose()


async def test_a_failed_round_trip_gives_every_write_a_retryable_error() -> None:
    b = AsyncBroker("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        batcher = WriteBatcher(b)
        msg = TaskMessage(id="x", type="t", queue=Q)
        replies = await asyncio.gather(
            *(batcher.run(processing.done(msg, time.time(), "tok")) for _ in range(3))
        )
        for reply in replies:
            assert isinstance(reply, BrokerError)
            with pytest.raises(BrokerError) as info:
                processing.check_write(reply)
            assert not isinstance(info.value, LeaseExpiredError | TaskGoneError)
    finally:
        await b.aclose()


def test_free_slots_are_filled_by_one_dequeue_and_the_bound_holds(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    for i in range(12):
        client.enqueue(Task("t", b""), task_id=f"t{i:02}")
    release = threading.Event()
    started: list[str] = []
    lock = threading.Lock()

    def handler(task: Task) -> None:
        with lock:
            started.append(task.type)
        release.wait(5)

    servers.start(handler, concurrency=5)
    wait_for(lambda: len(started) == 5, what="5 handlers")
    state = queue_state(r, Q)
    assert len(started) == 5
    assert len(state["active"]) == 5 and len(state["pending"]) == 7
    # The five came from one dequeue_many call: one attempt token, one lease each.
    tokens = {task_fields(r, Q, tid)["attempt"].split()[0] for tid in state["active"]}
    assert len(tokens) == 1
    assert sorted(tid for tid, _ in state["lease"]) == sorted(state["active"])
    release.set()
    wait_for(lambda: int(r.get(keys.processed_total_key(Q)) or 0) == 12, what="12 processed")
    final = queue_state(r, Q)
    assert final["active"] == [] and final["pending"] == [] and final["lease"] == []


class _ManualLoop:
    """Just enough of an event loop for Deadlines: a settable clock and recorded timers."""

    def __init__(self) -> None:
        self.now = 1000.002
        self.timers: list[tuple[float, asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, asyncio.get_running_loop())
        self.timers.append((when, handle))
        return handle


async def test_deadlines_share_one_timer_per_slice_and_fire_only_live_handlers() -> None:
    loop = _ManualLoop()
    d = Deadlines()
    real = asyncio.get_running_loop()
    a, b, c, late = (real.create_future() for _ in range(4))
    ka = d.add(loop, 5.0, a)  # type: ignore[arg-type]
    loop.now += 0.001  # started a moment later: same 10 ms slice
    kb = d.add(loop, 5.0, b)  # type: ignore[arg-type]
    kc = d.add(loop, 5.0, c)  # type: ignore[arg-type]
    kl = d.add(loop, 9.0, late)  # type: ignore[arg-type]
    assert ka == kb == kc != kl
    assert len(loop.timers) == 2
    when, handle = loop.timers[0]
    assert 1005.003 <= when < 1005.002 + Deadlines.RESOLUTION  # never early
    d.remove(kb, b)  # b's handler finished first
    handle._run()  # the slice's timer fires
    assert a.done() and c.done() and not b.done() and not late.done()
    d.remove(kl, late)  # the last task of a slice takes its timer with it
    assert loop.timers[1][1].cancelled()
    d.remove(ka, a)  # already fired: nothing left to remove, no error


async def test_a_refill_rides_behind_the_done_writes_and_is_adopted_first(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    b = CountingBroker(redis_url)
    try:
        done_msgs = await lease_tasks(client, b, ["a", "b", "c"], "tok-1")
        for tid in ("d", "e"):
            client.enqueue(Task("t", tid.encode()), task_id=tid)
        seen: list[Any] = []
        futures: list[asyncio.Future[object]] = []

        def refill(queue: str, n: int) -> tuple[Op, Any]:
            assert (queue, n) == (Q, 3)

            def adopt(reply: object) -> None:
                # The callers' futures are still open: new tasks count before old ones leave.
                assert futures and not any(f.done() for f in futures)
                seen.extend(processing.dequeue_many_result(Q, reply))

            return processing.dequeue_many(Q, time.time(), "tok-2", n), adopt

        batcher = WriteBatcher(b, refill=refill)
        now = time.time()
        b.trips.clear()
        runs = [asyncio.ensure_future(batcher.run(None, (m, now, "tok-1"))) for m in done_msgs]
        futures.extend(runs)
        replies = await asyncio.gather(*runs)
        assert replies == [1, 1, 1]
        assert b.trips == [["done_many", "dequeue_many"]]  # one round trip, done first
        assert [x.task_id for x in seen] == ["d", "e"]  # two left: fewer than asked
        state = queue_state(r, Q)
        assert sorted(state["active"]) == ["d", "e"] and state["pending"] == []
        assert {task_fields(r, Q, t)["attempt"].split()[0] for t in ("d", "e")} == {"tok-2"}
    finally:
        await b.aclose()


def _record_trips(server: Any) -> list[list[str]]:
    """Op names per pipelined round trip of a running server's writes."""
    broker = server.runtime.broker
    trips: list[list[str]] = []
    inner = broker.run_many

    async def run_many(ops: Sequence[Op]) -> list[Any]:
        trips.append([getattr(op, "script", "command") for op in ops])
        return await inner(ops)

    broker.run_many = run_many
    return trips


@pytest.mark.parametrize("queues", [{"default": 1}, {"default": 1, "other": 1}])
def test_one_queue_servers_refill_with_their_writes_and_keep_the_bound(
    servers: Servers, client: Client, r: redis.Redis, queues: dict[str, int]
) -> None:
    lock = threading.Lock()
    now_running = peak = 0

    async def handler(task: Task) -> None:
        nonlocal now_running, peak
        with lock:
            now_running += 1
            peak = max(peak, now_running)
        await asyncio.sleep(0.002)
        with lock:
            now_running -= 1

    server = servers.start(handler, concurrency=4, queues=queues)
    trips = _record_trips(server)
    active_peak = 0
    client.enqueue_many([Task("t") for _ in range(60)])
    give_up = time.monotonic() + 20
    while int(r.get(keys.processed_total_key(Q)) or 0) < 60 and time.monotonic() < give_up:
        active_peak = max(active_peak, int(r.llen(keys.active_key(Q))))
    assert int(r.get(keys.processed_total_key(Q)) or 0) == 60
    assert peak <= 4 and active_peak <= 4
    fused = [t for t in trips if "dequeue_many" in t]
    if len(queues) == 1:
        assert fused, trips
        assert all(
            t.index("dequeue_many") > t.index("done_many") for t in fused if "done_many" in t
        )
    else:  # several queues: dequeues follow the queue order, never the writes
        assert not fused, trips


def test_shutdown_waits_for_tasks_a_refill_brought_in(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    # No-op tasks keep a write (and its refill) in flight nearly all the time, so the
    # shutdown usually lands while tasks are being leased behind the writes (the debug
    # log says so); those start after it and take a while. Whatever the interleaving, a
    # graceful shutdown must leave each task done or pending, none active.
    stopping = threading.Event()

    async def handler(task: Task) -> None:
        if stopping.is_set():
            await asyncio.sleep(0.3)

    for _ in range(5):
        client.enqueue_many([Task("t") for _ in range(1000)])
    server = servers.start(handler, concurrency=8, shutdown_timeout=5)
    wait_for(lambda: int(r.get(keys.processed_total_key(Q)) or 0) >= 300, what="300 processed")
    stopping.set()
    server.shutdown()
    state = queue_state(r, Q)
    assert state["active"] == [] and state["lease"] == []  # nothing left half-done
    done = int(r.get(keys.processed_total_key(Q)) or 0)
    assert done + len(state["pending"]) == 5000


def _commands_run(r: redis.Redis) -> dict[str, int]:
    """Redis commands run since the last CONFIG RESETSTAT, scripts' inner calls included
    (commandstats counts those), without the script calls themselves and a new
    connection's and this count's own commands."""
    skip = {"evalsha", "eval", "script|load", "hello", "client|setinfo", "select", "ping",
            "config|resetstat", "info"}  # fmt: skip
    stats = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    return {k: n for k, n in calls.items() if k not in skip}


@pytest.mark.skipif(CLUSTER, reason="commandstats of one node")
async def test_the_drain_costs_five_redis_commands_per_task_each_way(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    """dequeue_many: RPOPLPUSH, HMGET (msg and pending_since), HSET, HDEL, ZADD per task;
    done_many: HGET attempt, ZSCORE (the fence), LREM, ZREM, DEL per task. Plus a few per
    call (the paused and waiting flags, the counters). A regression guard: each command
    inside a script is CPU that every worker's task pays in Redis."""
    ids = [f"t{i}" for i in range(10)]
    for tid in ids:
        client.enqueue(Task("t", tid.encode()), task_id=tid)
    b = AsyncBroker(redis_url)
    try:
        now = time.time()
        r.config_resetstat()
        leased = processing.dequeue_many_result(
            Q, await b.run(processing.dequeue_many(Q, now, "tok", len(ids)))
        )
        dequeue = _commands_run(r)
        msgs = [x.msg for x in leased if x.msg is not None]
        assert len(msgs) == len(ids)
        r.config_resetstat()
        reply = await b.run(processing.done_many(Q, now, [(m, "tok") for m in msgs]))
        assert processing.done_many_result(reply, len(ids)) == [1] * len(ids)
        done = _commands_run(r)
    finally:
        await b.aclose()
    per_task = ("rpoplpush", "hmget", "hset", "hdel", "zadd")
    assert dequeue == {**{c: len(ids) for c in per_task}, "exists": 1}
    per_task = ("hget", "zscore", "lrem", "zrem", "del")
    assert done == {**{c: len(ids) for c in per_task}, "exists": 1, "incrby": 2,
                    "expireat": 1, "get": 1}  # fmt: skip
