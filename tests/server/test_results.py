"""Awaiting a task's result (Client.wait_result) and handler progress, with real servers.

Outcomes are announced by the pyasynq scripts that write them (to the channels a waiter
registered in the task hash's ``pyasynq:notify``); a task finished without announcement
(by a Go server, here imitated with Go's own writes) is found by polling. Runs on both
topologies (``make test-cluster`` includes tests/server)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

import pyasynq
from pyasynq import (
    AsyncClient,
    Client,
    PyAsynqError,
    ResultTimeoutError,
    SkipRetry,
    Task,
    TaskFailedError,
    TaskNotFoundError,
    TaskProgress,
    current_task,
)
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_task, encode_task
from pyasynq._rdb.ops import Command, processing, results
from pyasynq._sync.broker import Broker
from pyasynq.errors import LeaseExpiredError
from pyasynq.mux import ServeMux

from .support import Gate, Servers, wait_for

Q = "results"
NOTIFY = "pyasynq:notify"
PROGRESS = "pyasynq:progress"


class Waiting:
    """``client.wait_result`` in a thread: its return value or exception, and the
    progress events it saw."""

    def __init__(self, client: Client, task_id: str, timeout: float = 15.0) -> None:
        self.value: bytes | None = None
        self.error: BaseException | None = None
        self.progress: list[TaskProgress] = []
        self.done = threading.Event()

        def run() -> None:
            try:
                self.value = client.wait_result(
                    task_id, queue=Q, timeout=timeout, on_progress=self.progress.append
                )
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        threading.Thread(target=run, daemon=True).start()

    def result(self, timeout: float = 15.0) -> bytes | None:
        assert self.done.wait(timeout), "wait_result did not return"
        if self.error is not None:
            raise self.error
        return self.value


def registered(r: redis.Redis, task_id: str) -> bool:
    return bool(r.hget(keys.task_key(Q, task_id), NOTIFY))


def holding_mux(gate: Gate, result: bytes = b"done") -> ServeMux:
    mux = ServeMux()

    @mux.handler("hold")
    def hold(task: Task) -> None:
        current_task().progress(0.5, "half way")
        gate.entered.set()
        assert gate.release.wait(10)
        task.result_writer.write_sync(result)

    return mux


# --------------------------------------------------------------------------- results


def test_wait_result_returns_what_the_handler_wrote(servers: Servers, client: Client) -> None:
    mux = ServeMux()

    @mux.handler("echo")
    async def echo(task: Task) -> None:
        await task.result_writer.write(b"got " + (task.payload or b""))

    servers.start(mux, queues={Q: 1})
    info = client.enqueue(Task("echo", b"abc"), queue=Q, retention=60)
    assert client.wait_result(info.id, queue=Q, timeout=10) == b"got abc"
    empty = client.enqueue(Task("echo"), queue=Q, retention=60)
    assert client.wait_result(empty.id, queue=Q, timeout=10) == b"got "


def test_a_waiter_gets_the_result_of_a_task_without_retention_from_the_announcement(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate = Gate()
    servers.start(holding_mux(gate, b"gone but told"), queues={Q: 1})
    info = client.enqueue(Task("hold"), queue=Q)
    gate.wait_entered()
    w = Waiting(client, info.id)
    wait_for(lambda: registered(r, info.id), what="the waiter's registration")
    gate.release.set()
    assert w.result() == b"gone but told"
    assert not r.exists(keys.task_key(Q, info.id))  # no retention: the task is deleted
    # Too late: the task is gone and so is its result; the error says to use retention.
    with pytest.raises(TaskNotFoundError, match="retention"):
        client.wait_result(info.id, queue=Q, timeout=5)


def test_a_task_archived_raises_its_error(servers: Servers, client: Client) -> None:
    mux = ServeMux()

    @mux.handler("fail")
    def fail(task: Task) -> None:
        raise SkipRetry("the input is bad")

    servers.start(mux, queues={Q: 1})
    info = client.enqueue(Task("fail"), queue=Q, max_retry=3)
    with pytest.raises(TaskFailedError, match="the input is bad") as caught:
        client.wait_result(info.id, queue=Q, timeout=10)
    assert caught.value.task_id == info.id and caught.value.queue == Q


def test_a_retried_task_is_awaited_until_it_succeeds(servers: Servers, client: Client) -> None:
    attempts: list[int] = []
    mux = ServeMux()

    @mux.handler("flaky")
    def flaky(task: Task) -> None:
        attempts.append(current_task().retry_count)
        if len(attempts) < 3:
            raise RuntimeError(f"attempt {len(attempts)} fails")
        task.result_writer.write_sync(b"third time")

    servers.start(mux, queues={Q: 1}, retry_delay_func=lambda n, e, t: 0.05)
    info = client.enqueue(Task("flaky"), queue=Q, max_retry=5, retention=60)
    assert client.wait_result(info.id, queue=Q, timeout=15) == b"third time"
    assert attempts == [0, 1, 2]


def test_a_timeout_raises_a_timeout_error_and_the_task_goes_on(client: Client) -> None:
    info = client.enqueue(Task("nobody:serves:this"), queue=Q, retention=60)
    t0 = time.monotonic()
    with pytest.raises(ResultTimeoutError, match="pending") as caught:
        client.wait_result(info.id, queue=Q, timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 3
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, PyAsynqError)


def test_an_unknown_task_raises_task_not_found(client: Client) -> None:
    with pytest.raises(TaskNotFoundError):
        client.wait_result("no-such-task", queue=Q, timeout=2)


def test_bad_arguments_are_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="timeout"):
        client.wait_result("x", queue=Q, timeout=-1)
    with pytest.raises(TypeError, match="on_progress"):
        client.wait_result("x", queue=Q, on_progress="no")  # type: ignore[arg-type]


def finish_like_go(b: Broker, queue: str, task_id: str, result: bytes) -> None:
    """What a Go server does to complete a task with retention (wire spec 3.6, 3.18, 3.8):
    dequeue, HSET result, then Go's markAsComplete: no PUBLISH, and the hash keeps any
    pyasynq field."""
    key = keys.task_key(queue, task_id)
    assert b.run(processing.dequeue(queue, time.time(), "go-token")) is not None
    msg = decode_task(b.run(Command(("HGET", key, "msg"))))
    msg.completed_at = int(time.time())
    for args in (
        ("HSET", key, "result", result),
        ("LREM", keys.active_key(queue), 0, task_id),
        ("ZREM", keys.lease_key(queue), task_id),
        ("ZADD", keys.completed_key(queue), int(time.time()) + 60, task_id),
        ("HSET", key, "msg", encode_task(msg), "state", "completed"),
    ):
        b.run(Command(args))


def test_a_task_finished_without_announcement_is_found_by_polling(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    info = client.enqueue(Task("go:work"), queue=Q, retention=60)
    w = Waiting(client, info.id)
    wait_for(lambda: registered(r, info.id), what="the waiter's registration")
    t0 = time.monotonic()
    finish_like_go(broker, Q, info.id, b"from go")
    assert w.result() == b"from go"
    assert time.monotonic() - t0 < 4  # the first polls come every 1 s, then 2 s


async def test_async_waiters_share_one_subscription_and_one_connection(
    redis_url: str, r: redis.Redis
) -> None:
    n = 300
    async with AsyncClient(redis_url) as producer:
        infos = [await producer.enqueue(Task("x"), queue=Q, retention=60) for _ in range(n)]
    aclient = AsyncClient(redis_url)
    try:
        waits = [asyncio.create_task(aclient.wait_result(i.id, queue=Q, timeout=20)) for i in infos]
        await asyncio.to_thread(
            wait_for, lambda: all(registered(r, i.id) for i in infos), 10, "registrations"
        )
        listener = aclient._results
        assert listener is not None
        channels = {c for c in _channels(r) if c.startswith(results.CHANNEL_PREFIX)}
        assert channels == {listener.channel}  # one subscription for every waiter
        pool = getattr(aclient._broker.redis, "connection_pool", None)
        if pool is not None:  # single node: the polls of all waiters share a pipeline
            assert len(pool._available_connections) + len(pool._in_use_connections) <= 3
        b = Broker(redis_url)
        try:
            for _ in infos[: n // 2]:  # half announced by pyasynq's script, half found by polls
                m = processing.dequeue_result(Q, b.run(processing.dequeue(Q, time.time(), "t")))
                assert m is not None and m.msg is not None
                b.run(processing.write_result(Q, m.task_id, m.task_id.encode()))
                processing.check_write(b.run(processing.mark_complete(m.msg, time.time(), "t")))
            for i in infos[n // 2 :]:
                finish_like_go(b, Q, i.id, i.id.encode())
        finally:
            b.close()
        got = await asyncio.gather(*waits)
        assert got == [i.id.encode() for i in infos]
    finally:
        await aclient.aclose()


def _channels(r: Any) -> set[str]:
    nodes = r.get_primaries() if hasattr(r, "get_primaries") else None
    if nodes is None:
        return {c.decode() for c in r.pubsub_channels()}
    out: set[str] = set()
    for node in nodes:
        out |= {c.decode() for c in r.execute_command("PUBSUB CHANNELS", target_nodes=node)}
    return out


def test_the_listener_resubscribes_and_waiters_poll_after_a_disconnect(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate = Gate()
    servers.start(holding_mux(gate, b"after reconnect"), queues={Q: 1})
    info = client.enqueue(Task("hold"), queue=Q, retention=60)
    gate.wait_entered()
    w = Waiting(client, info.id)
    wait_for(lambda: registered(r, info.id), what="the waiter's registration")
    killed = _kill_subscribers(r)
    assert killed >= 1
    gate.release.set()
    assert w.result() == b"after reconnect"


def _kill_subscribers(r: Any) -> int:
    nodes = r.get_primaries() if hasattr(r, "get_primaries") else [None]
    n = 0
    for node in nodes:
        kw = {"target_nodes": node} if node is not None else {}
        n += int(r.execute_command("CLIENT KILL TYPE pubsub", **kw))
    return n


# --------------------------------------------------------------------------- progress


def test_progress_is_seen_by_the_inspector_and_by_a_waiter(
    servers: Servers, client: Client, r: redis.Redis, redis_url: str
) -> None:
    gate = Gate()
    servers.start(holding_mux(gate), queues={Q: 1})
    info = client.enqueue(Task("hold"), queue=Q, retention=60)
    w = Waiting(client, info.id)
    gate.wait_entered()
    with pyasynq.Inspector(redis_url) as insp:
        got = wait_for(lambda: insp.get_task_info(Q, info.id).progress, what="progress")
        assert (got.fraction, got.message) == (0.5, "half way")
        assert got.updated_at is not None
        [active] = insp.list_active_tasks(Q)
        assert active.progress == got
    wait_for(lambda: w.progress, what="the waiter's progress event")
    gate.release.set()
    assert w.result() == b"done"
    assert [(p.fraction, p.message) for p in w.progress] == [(0.5, "half way")]


def test_progress_is_coalesced_to_ten_writes_a_second_and_the_last_value_wins(
    servers: Servers, client: Client, redis_url: str
) -> None:
    gate = Gate()
    mux = ServeMux()

    took: list[float] = []

    @mux.handler("busy")
    async def busy(task: Task) -> None:
        t0 = time.monotonic()
        for i in range(1, 101):
            current_task().progress(i / 100, f"step {i}")
            await asyncio.sleep(0.005)
        took.append(time.monotonic() - t0)
        gate.entered.set()
        await asyncio.to_thread(gate.release.wait, 10)

    servers.start(mux, queues={Q: 1})
    info = client.enqueue(Task("busy"), queue=Q, retention=60)
    w = Waiting(client, info.id)
    gate.wait_entered()
    with pyasynq.Inspector(redis_url) as insp:
        wait_for(
            lambda: (p := insp.get_task_info(Q, info.id).progress) and p.fraction == 1.0,
            what="the last progress",
        )
    wait_for(lambda: w.progress and w.progress[-1].fraction == 1.0, what="the last event")
    gate.release.set()
    w.result()
    # One write per 0.1 s at most (plus the first, at once): far fewer than 100 reports.
    assert 2 <= len(w.progress) <= took[0] / 0.1 + 2, (len(w.progress), took)
    assert w.progress[-1].message == "step 100"


def test_progress_from_a_stale_worker_is_refused(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    info = client.enqueue(Task("x"), queue=Q)
    leased = processing.dequeue_result(Q, broker.run(processing.dequeue(Q, time.time(), "mine")))
    assert leased is not None
    value = results.encode_progress(0.3, "ours", time.time())
    processing.check_write(broker.run(results.report_progress(Q, info.id, "mine", value)))
    stale = results.encode_progress(0.9, "stale", time.time())
    with pytest.raises(LeaseExpiredError):
        try:
            broker.run(results.report_progress(Q, info.id, "old-token", stale))
        except pyasynq.BrokerError as exc:
            raise processing.map_error(exc) from exc
    assert r.hget(keys.task_key(Q, info.id), PROGRESS) == value.encode()
    # A task that is gone gets no stub hash from a late report.
    r.delete(keys.task_key(Q, "ghost"))
    with pytest.raises(pyasynq.BrokerError, match="LEASE LOST"):
        broker.run(results.report_progress(Q, "ghost", "mine", value))
    assert not r.exists(keys.task_key(Q, "ghost"))


def test_progress_arguments_are_checked(servers: Servers, client: Client) -> None:
    errors: list[BaseException] = []
    mux = ServeMux()

    @mux.handler("bad")
    def bad(task: Task) -> None:
        for args in ((1.5, ""), (-0.1, ""), ("half", ""), (0.5, 3)):
            try:
                current_task().progress(*args)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                errors.append(exc)

    servers.start(mux, queues={Q: 1})
    info = client.enqueue(Task("bad"), queue=Q, retention=60)
    client.wait_result(info.id, queue=Q, timeout=10)
    assert [type(e) for e in errors] == [ValueError, ValueError, TypeError, TypeError]


def test_done_many_announces_only_while_someone_waits_on_the_queue(
    client: Client, broker: Broker, r: Any
) -> None:
    chan = results.channel("probe")
    ids = [client.enqueue(Task("x"), queue=Q).id for _ in range(4)]
    for tid in ids:  # as a waiter that has since gone: the field stays, the flag expires
        r.hset(keys.task_key(Q, tid), NOTIFY, chan)
    sub = r.pubsub()
    sub.subscribe(chan)
    wait_for(lambda: sub.get_message(timeout=0.1), what="the subscription")

    def finish_two() -> None:
        now = time.time()
        got = []
        for tok in ("a", "b"):
            m = processing.dequeue_result(Q, broker.run(processing.dequeue(Q, now, tok)))
            assert m is not None and m.msg is not None
            got.append((m.msg, tok))
        replies = processing.done_many_result(broker.run(processing.done_many(Q, now, got)), 2)
        assert replies == [1, 1]

    finish_two()  # no asynq:{q}:pyasynq:waiting: the batch sends nothing
    # A waiter's read sets the queue's flag: now the batch announces each task.
    assert results.outcome(broker.run(results.watch(Q, ids[2], chan))).state == "pending"
    assert r.ttl(keys.waiting_key(Q)) > 0
    finish_two()
    notes = []
    deadline = time.monotonic() + 5
    while len(notes) < 2 and time.monotonic() < deadline:
        m = sub.get_message(timeout=0.1)
        if m and m["type"] == "message":
            notes.append(results.parse_notice(m["data"]))
    sub.close()
    assert sorted(key for _, key, _ in notes) == sorted(keys.task_key(Q, t) for t in ids[2:])
    assert {kind for kind, _, _ in notes} == {"completed"}


def test_closing_the_client_ends_its_listener_thread(client: Client, redis_url: str) -> None:
    c = Client(redis_url)
    with pytest.raises(TaskNotFoundError):
        c.wait_result("nothing-here", queue=Q, timeout=5)
    listener = c._results
    assert listener is not None and listener._thread is not None
    thread = listener._thread
    assert thread.is_alive()
    c.close()
    assert not thread.is_alive()


def test_progress_outside_a_server_and_after_the_context_ended() -> None:
    from datetime import UTC, datetime

    from pyasynq._server.base import Flag
    from pyasynq.context import ResultWriter, TaskContext

    done = Flag()
    writer = ResultWriter("t1", None, None, done)  # type: ignore[arg-type]
    ctx = TaskContext(
        id="t1", type="x", queue=Q, retry_count=0, max_retry=0,
        deadline=datetime.now(UTC), result_writer=writer, _done=done,
    )  # fmt: skip
    ctx.progress(0.5, "checked, recorded nowhere")  # no server: validated only
    with pytest.raises(ValueError, match="from 0 to 1"):
        ctx.progress(2)
    done.set()
    with pytest.raises(RuntimeError, match="context is done"):
        ctx.progress(0.9)


async def test_async_waiters_survive_a_lost_subscription(
    servers: Servers, redis_url: str, r: redis.Redis
) -> None:
    gate = Gate()
    servers.start(holding_mux(gate, b"async after reconnect"), queues={Q: 1})
    aclient = AsyncClient(redis_url)
    try:
        info = await aclient.enqueue(Task("hold"), queue=Q, retention=60)
        await asyncio.to_thread(gate.wait_entered)
        seen: list[TaskProgress] = []

        async def on_progress(p: TaskProgress) -> None:
            seen.append(p)

        waiting = asyncio.create_task(
            aclient.wait_result(info.id, queue=Q, timeout=20, on_progress=on_progress)
        )
        await asyncio.to_thread(wait_for, lambda: registered(r, info.id), 5, "registration")
        assert _kill_subscribers(r) >= 1
        gate.release.set()
        assert await waiting == b"async after reconnect"
        assert [(p.fraction, p.message) for p in seen] == [(0.5, "half way")]
    finally:
        await aclient.aclose()
