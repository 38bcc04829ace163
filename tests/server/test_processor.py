"""The processor (wire spec 5.1 to 5.4): queue order, the concurrency bound, every outcome
of a handler and the Redis state it leaves, deadlines, cancellation and what a handler
can learn about its task."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import redis
from rdb.helpers import counters, queue_state, task_fields, task_msg

from pyasynq import Client, RevokeTask, SkipRetry, Task
from pyasynq._rdb import keys
from pyasynq._rdb.ops import inspect
from pyasynq._server.processor import queue_order
from pyasynq._sync.broker import Broker
from pyasynq.context import current_task
from pyasynq.mux import ServeMux

from .support import Gate, Servers, wait_for

Q = "default"


def processed(r: redis.Redis, q: str = Q) -> int:
    return int(r.get(keys.processed_total_key(q)) or 0)


# --------------------------------------------------------------------------- queue order


def test_weighted_order_puts_each_queue_first_in_proportion_to_its_priority() -> None:
    prio = {"critical": 6, "default": 3, "low": 1}
    rng = random.Random(20240601)
    n = 30_000
    firsts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for _ in range(n):
        order = queue_order(prio, False, rng)
        assert sorted(order) == sorted(prio)  # always a permutation of every queue
        firsts[order[0]] += 1
        seconds[order[1]] += 1
    for q, p in prio.items():
        assert abs(firsts[q] / n - p / 10) < 0.015, (q, firsts[q] / n)
    # Second place: P(default second) = P(c first) * 3/4 + P(l first) * 3/9.
    assert abs(seconds["default"] / n - (0.6 * 0.75 + 0.1 * 3 / 9)) < 0.015


def test_strict_and_single_queue_orders_are_fixed() -> None:
    prio = {"low": 1, "critical": 6, "default": 3}
    assert queue_order(prio, True) == ["critical", "default", "low"]
    assert queue_order({"only": 7}, False) == ["only"]


def test_strict_priority_drains_the_higher_queue_first(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    for i in range(4):
        client.enqueue(Task("t", b"low"), queue="low", task_id=f"l{i}")
        client.enqueue(Task("t", b"high"), queue="high", task_id=f"h{i}")
    order: list[str] = []
    servers.start(
        lambda t: order.append(current_task().id),
        queues={"low": 1, "high": 5},
        strict_priority=True,
        concurrency=1,
    )
    wait_for(lambda: len(order) == 8, what="8 tasks")
    assert order == ["h0", "h1", "h2", "h3", "l0", "l1", "l2", "l3"]


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_never_more_than_concurrency_handlers_at_once(
    kind: str, servers: Servers, client: Client, r: redis.Redis
) -> None:
    lock = threading.Lock()
    now_running = 0
    peak = 0

    def enter() -> None:
        nonlocal now_running, peak
        with lock:
            now_running += 1
            peak = max(peak, now_running)

    def leave() -> None:
        nonlocal now_running
        with lock:
            now_running -= 1

    async def async_handler(task: Task) -> None:
        enter()
        await asyncio.sleep(0.03)
        leave()

    def sync_handler(task: Task) -> None:
        enter()
        time.sleep(0.03)
        leave()

    for i in range(15):
        client.enqueue(Task("t"), task_id=f"c{i}")
    servers.start(async_handler if kind == "async" else sync_handler, concurrency=3)
    wait_for(lambda: processed(r) == 15, what="15 processed")
    assert peak == 3


# --------------------------------------------------------------------------- success


def test_success_without_retention_deletes_the_task_and_counts_it(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    client.enqueue(Task("t", b"x"), task_id="ok", unique=3600)
    lock = keys.unique_key(Q, "t", b"x")
    assert r.get(lock) == b"ok"
    servers.start(lambda t: None)
    wait_for(lambda: processed(r) == 1, what="processed")
    assert not r.exists(keys.task_key(Q, "ok"))
    assert not r.exists(lock)  # the uniqueness lock is released
    c = counters(r, Q, time.time())
    assert (c.processed.value, c.processed_today.value, c.failed.value) == (1, 1, None)
    assert queue_state(r)["active"] == [] and queue_state(r)["lease"] == []


def test_success_with_retention_marks_complete_and_keeps_the_result(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    mux = ServeMux()

    @mux.handler("async")
    async def a(task: Task) -> None:
        assert await task.result_writer.write(b"first") == 5
        assert await current_task().result_writer.write(b"async result") == 12

    @mux.handler("sync")
    def s(task: Task) -> None:
        assert current_task().result_writer.write_sync(b"sync result") == 11
        assert task.result_writer.task_id == "rs"

    client.enqueue(Task("async"), task_id="ra", retention=3600)
    client.enqueue(Task("sync"), task_id="rs", retention=timedelta(minutes=30))
    t0 = time.time()
    servers.start(mux)
    wait_for(lambda: len(queue_state(r)["completed"]) == 2, what="2 completed")
    completed = dict(queue_state(r)["completed"])
    for tid, retention, result in (("ra", 3600, b"async result"), ("rs", 1800, b"sync result")):
        f = task_fields(r, Q, tid)
        assert f["state"] == "completed"
        assert f["result"] == result.decode()
        assert set(f) == {"msg", "state", "result"}  # no pyasynq field left behind
        msg = f["msg"]
        assert t0 - 1 <= msg.completed_at <= time.time()
        assert completed[tid] == msg.completed_at + retention
    assert processed(r) == 2


def test_write_sync_from_an_async_handler_is_refused_instead_of_deadlocking(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    errors: list[str] = []

    async def handler(task: Task) -> None:
        try:
            task.result_writer.write_sync(b"x")
        except RuntimeError as exc:
            errors.append(str(exc))

    client.enqueue(Task("t"), task_id="w")
    servers.start(handler)
    wait_for(lambda: processed(r) == 1, what="processed")
    assert errors and "await write()" in errors[0]


# --------------------------------------------------------------------------- failures


def test_error_goes_to_retry_with_the_retry_delay_func(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    calls: list[tuple[int, str, str, bytes | None]] = []

    def delay(n: int, err: BaseException, task: Task) -> timedelta:
        calls.append((n, str(err), task.type, task.payload))
        return timedelta(seconds=500 + n)

    def handler(task: Task) -> None:
        raise ValueError("boom: upstream unavailable")

    client.enqueue(Task("flaky", b"p"), task_id="f", max_retry=5)
    servers.start(handler, retry_delay_func=delay)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "f"), what="f in retry")
    f = task_fields(r, Q, "f")
    msg = f["msg"]
    assert set(f) == {"msg", "state"} and f["state"] == "retry"
    assert (msg.retried, msg.retry, msg.error_msg) == (
        1,
        5,
        "ValueError: boom: upstream unavailable",
    )
    assert abs(msg.last_failed_at - time.time()) < 3
    assert r.zscore(keys.retry_key(Q), "f") == int(msg.last_failed_at) + 500
    assert calls == [(0, "boom: upstream unavailable", "flaky", b"p")]
    c = counters(r, Q, time.time())
    assert (c.processed.value, c.failed.value, c.processed_today.value) == (1, 1, 1)
    assert c.failed_today.value == 1


def test_is_failure_false_retries_without_counting(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    class RateLimited(Exception):
        pass

    def handler(task: Task) -> None:
        raise RateLimited("slow down")

    client.enqueue(Task("t"), task_id="rl", max_retry=3)
    servers.start(
        handler,
        is_failure=lambda e: not isinstance(e, RateLimited),
        retry_delay_func=lambda n, e, t: 600,
    )
    wait_for(lambda: r.zscore(keys.retry_key(Q), "rl"), what="rl in retry")
    msg = task_msg(r, Q, "rl")
    assert msg is not None
    assert (msg.retried, msg.error_msg) == (0, "RateLimited: slow down")
    assert msg.last_failed_at > 0
    assert r.exists(keys.processed_total_key(Q), keys.failed_total_key(Q)) == 0
    assert r.exists(keys.processed_key(Q, time.time()), keys.failed_key(Q, time.time())) == 0


def test_retries_exhausted_archives(servers: Servers, client: Client, r: redis.Redis) -> None:
    runs: list[int] = []

    def handler(task: Task) -> None:
        runs.append(current_task().retry_count)
        raise RuntimeError(f"attempt {len(runs)} failed")

    client.enqueue(Task("t"), task_id="x", max_retry=1)
    servers.start(handler, retry_delay_func=lambda n, e, t: 0)
    wait_for(lambda: r.zscore(keys.archived_key(Q), "x"), what="x archived")
    msg = task_msg(r, Q, "x")
    assert msg is not None
    assert runs == [0, 1]
    assert (msg.retried, msg.error_msg) == (1, "RuntimeError: attempt 2 failed")
    assert task_fields(r, Q, "x")["state"] == "archived"
    assert r.zscore(keys.archived_key(Q), "x") == pytest.approx(time.time(), abs=3)
    assert int(r.get(keys.failed_total_key(Q)) or 0) == 2


@pytest.mark.parametrize("chained", [False, True])
def test_skip_retry_archives_at_once(
    chained: bool, servers: Servers, client: Client, r: redis.Redis
) -> None:
    def handler(task: Task) -> None:
        if chained:
            raise ValueError("invalid payload: skip retry for the task") from SkipRetry()
        raise SkipRetry("invalid payload: skip retry for the task")

    client.enqueue(Task("t"), task_id="s", max_retry=10)
    servers.start(handler)
    wait_for(lambda: r.zscore(keys.archived_key(Q), "s"), what="s archived")
    msg = task_msg(r, Q, "s")
    assert msg is not None
    # SkipRetry's own message is stored as written; another exception gets its type.
    text = "invalid payload: skip retry for the task"
    assert (msg.retried, msg.error_msg) == (0, f"ValueError: {text}" if chained else text)
    c = counters(r, Q, time.time())
    assert (c.processed.value, c.failed.value) == (1, 1)


@pytest.mark.parametrize("detached", [False, True])
def test_skip_retry_in_the_implicit_context_counts_unless_detached(
    detached: bool, servers: Servers, client: Client, r: redis.Redis
) -> None:
    def handler(task: Task) -> None:
        try:
            raise SkipRetry()
        except SkipRetry:
            if detached:
                raise KeyError("converted") from None
            raise KeyError("while handling")  # noqa: B904 - the implicit context is the point

    client.enqueue(Task("t"), task_id="s2")
    servers.start(handler, retry_delay_func=lambda n, e, t: 600)
    where = keys.retry_key(Q) if detached else keys.archived_key(Q)
    wait_for(lambda: r.zscore(where, "s2"), what=f"s2 in {where}")


@pytest.mark.parametrize("chained", [False, True])
def test_revoke_task_is_done_without_failure(
    chained: bool, servers: Servers, client: Client, r: redis.Redis
) -> None:
    def handler(task: Task) -> None:
        if chained:
            raise LookupError("user deleted") from RevokeTask()
        raise RevokeTask("user deleted: revoke task")

    client.enqueue(Task("t", b"u"), task_id="rv", unique=3600, retention=3600)
    servers.start(handler)
    wait_for(lambda: processed(r) == 1, what="processed")
    assert not r.exists(keys.task_key(Q, "rv"))  # Done, even with retention
    assert not r.exists(keys.unique_key(Q, "t", b"u"))
    assert queue_state(r)["completed"] == []
    assert r.exists(keys.failed_total_key(Q), keys.failed_key(Q, time.time())) == 0


def test_error_handler_sees_task_and_error_before_the_write(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    seen: list[tuple[str, bytes | None, BaseException, str]] = []
    raised: list[BaseException] = []

    def handler(task: Task) -> None:
        exc = ValueError("nope")
        raised.append(exc)
        raise exc

    async def on_error(task: Task, err: BaseException) -> None:
        state = r.hget(keys.task_key(Q, "e"), "state")
        seen.append((task.type, task.payload, err, state.decode() if state else ""))

    client.enqueue(Task("kind", b"pl"), task_id="e")
    servers.start(handler, error_handler=on_error, retry_delay_func=lambda n, e, t: 60)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "e"), what="e in retry")
    assert seen == [("kind", b"pl", raised[0], "active")]


def test_a_failing_error_handler_or_delay_func_does_not_strand_the_task(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    def bad(*args: Any) -> Any:
        raise ZeroDivisionError("oops")

    def handler(task: Task) -> None:
        raise ValueError("x")

    client.enqueue(Task("t"), task_id="b")
    servers.start(handler, error_handler=bad, retry_delay_func=bad, is_failure=bad)
    score = wait_for(lambda: r.zscore(keys.retry_key(Q), "b"), what="b in retry")
    msg = task_msg(r, Q, "b")
    assert msg is not None and msg.retried == 1  # is_failure failed: counted as failure
    assert 15 <= score - msg.last_failed_at <= 15 + 29  # asynq's default delay for n = 0
    assert servers.log.find("retry_delay_func failed", "error")
    assert servers.log.find("error handler failed", "error")


# --------------------------------------------------------------------------- deadlines


def test_async_handler_past_its_deadline_is_cancelled(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    cancelled = threading.Event()

    async def handler(task: Task) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client.enqueue(Task("t"), task_id="d", timeout=1)
    t0 = time.monotonic()
    servers.start(handler, retry_delay_func=lambda n, e, t: 600)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "d"), what="d in retry")
    assert 0.9 < time.monotonic() - t0 < 2.5
    msg = task_msg(r, Q, "d")
    assert msg is not None and msg.error_msg == "context deadline exceeded"
    assert cancelled.wait(2)


def test_deadline_option_is_enforced_too(servers: Servers, client: Client, r: redis.Redis) -> None:
    async def handler(task: Task) -> None:
        await asyncio.sleep(30)

    # No timeout: the absolute deadline (whole seconds) ends the handler.
    client.enqueue(Task("t"), task_id="dl", deadline=int(time.time()) + 2, timeout=0)
    servers.start(handler, retry_delay_func=lambda n, e, t: 600)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "dl"), timeout=4, what="dl in retry")
    msg = task_msg(r, Q, "dl")
    assert msg is not None and msg.error_msg == "context deadline exceeded"


def test_already_expired_deadline_fails_without_running(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    ran: list[str] = []
    client.enqueue(Task("t"), task_id="old", deadline=time.time() - 10, max_retry=0)
    servers.start(lambda t: ran.append("x"))
    wait_for(lambda: r.zscore(keys.archived_key(Q), "old"), what="old archived")
    msg = task_msg(r, Q, "old")
    assert msg is not None and msg.error_msg == "context deadline exceeded"
    assert ran == []


def test_sync_handler_ignoring_its_deadline_is_abandoned(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate = Gate()
    late_write: list[str] = []
    cancelled_seen: list[bool] = []
    mux = ServeMux()

    @mux.handler("stuck")
    def stuck(task: Task) -> None:
        gate.entered.set()
        gate.release.wait(20)  # ignores its deadline
        ctx = current_task()
        cancelled_seen.append(ctx.cancelled)
        try:
            ctx.result_writer.write_sync(b"too late")
        except RuntimeError as exc:
            late_write.append(str(exc))
        finally:
            gate.left.set()

    @mux.handler("quick")
    def quick(task: Task) -> None:
        pass

    client.enqueue(Task("stuck"), task_id="A", timeout=1)
    servers.start(mux, concurrency=1, retry_delay_func=lambda n, e, t: 600)
    gate.wait_entered()
    client.enqueue(Task("quick"), task_id="B")
    # The task fails at its deadline while its thread is still blocked ...
    wait_for(lambda: r.zscore(keys.retry_key(Q), "A"), what="A in retry")
    before = task_fields(r, Q, "A")
    assert before["msg"].error_msg == "context deadline exceeded"
    # ... and its slot is free: B runs (concurrency 1) while A's handler still runs.
    wait_for(lambda: processed(r) == 2, what="B processed")
    assert not gate.left.is_set()
    gate.release.set()
    assert gate.left.wait(5)
    # The late return writes nothing: no result, state and counters unchanged.
    client.enqueue(Task("quick"), task_id="C")
    wait_for(lambda: processed(r) == 3, what="C processed")
    assert task_fields(r, Q, "A") == before
    assert cancelled_seen == [True]
    assert late_write and "context is done" in late_write[0]


# --------------------------------------------------------------------------- cancellation


def subscribed(r: redis.Redis) -> bool:
    return bool(dict(r.pubsub_numsub(keys.CANCEL_CHANNEL)).get(keys.CANCEL_CHANNEL.encode()))


def test_cancel_over_pubsub_fails_the_task_with_context_canceled(
    servers: Servers, client: Client, broker: Broker, r: redis.Redis
) -> None:
    gate = Gate()
    mux = ServeMux()

    @mux.handler("async")
    async def a(task: Task) -> None:
        gate.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            gate.left.set()
            raise

    sync_gate = Gate()

    @mux.handler("sync")
    def s(task: Task) -> None:
        sync_gate.entered.set()
        ctx = current_task()
        wait_for(lambda: ctx.cancelled, timeout=10, what="cancelled flag")
        sync_gate.left.set()

    servers.start(mux, retry_delay_func=lambda n, e, t: 600)
    wait_for(lambda: subscribed(r), what="the subscriber")
    client.enqueue(Task("async"), task_id="ca")
    client.enqueue(Task("sync"), task_id="cs")
    gate.wait_entered()
    sync_gate.wait_entered()
    assert inspect.cancel_result(broker.run(inspect.cancel("ca"))) >= 1
    assert inspect.cancel_result(broker.run(inspect.cancel("cs"))) >= 1
    assert broker.run(inspect.cancel("not-running-here")) >= 1  # ignored
    for tid in ("ca", "cs"):
        wait_for(lambda tid=tid: r.zscore(keys.retry_key(Q), tid), what=f"{tid} in retry")
        msg = task_msg(r, Q, tid)
        assert msg is not None and msg.error_msg == "context canceled"
    assert gate.left.wait(2) and sync_gate.left.wait(2)


# --------------------------------------------------------------------------- task context


def test_current_task_describes_the_running_task(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    seen: list[dict[str, Any]] = []

    def handler(task: Task) -> None:
        ctx = current_task()
        seen.append(
            {
                "id": ctx.id,
                "type": ctx.type,
                "queue": ctx.queue,
                "retry_count": ctx.retry_count,
                "max_retry": ctx.max_retry,
                "deadline": ctx.deadline.timestamp(),
                "cancelled": ctx.cancelled,
                "left": ctx.seconds_left(),
            }
        )
        if ctx.retry_count == 0 and ctx.id == "c1":
            raise ValueError("again")

    t0 = time.time()
    client.enqueue(Task("kind"), task_id="c1", queue="critical", max_retry=7, timeout=60)
    client.enqueue(
        Task("kind"), task_id="c2", queue="critical", timeout=600, deadline=int(t0) + 100
    )
    servers.start(handler, queues={"critical": 1}, retry_delay_func=lambda n, e, t: 0)
    wait_for(lambda: len(seen) == 3, what="3 runs")
    by = {(s["id"], s["retry_count"]): s for s in seen}
    first, second, c2 = by[("c1", 0)], by[("c1", 1)], by[("c2", 0)]
    assert (first["queue"], first["max_retry"], first["type"]) == ("critical", 7, "kind")
    assert first["deadline"] == pytest.approx(t0 + 60, abs=2)
    assert second["max_retry"] == 7
    assert c2["deadline"] == int(t0) + 100  # min(now + timeout, deadline)
    assert c2["max_retry"] == 25
    assert not first["cancelled"] and 55 < first["left"] <= 60


def test_current_task_outside_a_handler_raises() -> None:
    with pytest.raises(LookupError, match="only available inside a task handler"):
        current_task()
