"""The life cycle (wire spec 5.5): stop, graceful shutdown with requeue, a server runs
once, start-up failures, serve() in a running loop, and run() with signals."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
import redis
from rdb.helpers import queue_state, task_hash

from pyasynq import BrokerError, Client, ServerClosedError, Task
from pyasynq._rdb import keys
from pyasynq.context import current_task
from pyasynq.embedded import free_port
from pyasynq.mux import ServeMux
from pyasynq.server import Server

from .support import FAST, Gate, ListLogger, Servers, wait_for

Q = "default"


def processed(r: redis.Redis) -> int:
    return int(r.get(keys.processed_total_key(Q)) or 0)


def test_running_tasks_finish_within_the_shutdown_timeout(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    started = threading.Event()

    async def handler(task: Task) -> None:
        started.set()
        await asyncio.sleep(0.3)

    client.enqueue(Task("t"), task_id="a")
    srv = servers.start(handler, shutdown_timeout=5)
    assert started.wait(5)
    t = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - t < 1.5
    assert processed(r) == 1
    assert not r.exists(keys.task_key(Q, "a"))


def test_tasks_still_running_at_the_timeout_are_requeued_at_the_tail(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    sync_gate = Gate()
    async_started = threading.Event()
    mux = ServeMux()

    @mux.handler("sync")
    def blocked(task: Task) -> None:
        sync_gate.entered.set()
        sync_gate.release.wait(10)  # ignores the shutdown

    @mux.handler("async")
    async def waiting(task: Task) -> None:
        async_started.set()
        await asyncio.sleep(30)

    client.enqueue(Task("sync"), task_id="A")
    client.enqueue(Task("async"), task_id="B")
    client.enqueue(Task("sync"), task_id="C")
    srv = servers.start(mux, concurrency=2, shutdown_timeout=1)
    sync_gate.wait_entered()
    assert async_started.wait(5)
    skey, wkey = srv.runtime.identity.server_key, srv.runtime.identity.workers_key  # type: ignore[union-attr]
    wait_for(lambda: r.hlen(wkey) == 2, what="both workers in a heartbeat")
    t = time.monotonic()
    srv.shutdown()
    took = time.monotonic() - t
    sync_gate.release.set()
    assert 1.0 <= took < 2.0
    qs = queue_state(r)
    assert qs["pending"][0] == "C" and sorted(qs["pending"][1:]) == ["A", "B"]
    assert qs["active"] == [] and qs["lease"] == []
    for tid in ("A", "B"):
        assert set(task_hash(r, Q, tid)) == {"msg", "state"}  # no pending_since, no attempt
        assert task_hash(r, Q, tid)["state"] == b"pending"
    assert "pending_since" in task_hash(r, Q, "C")
    assert r.exists(keys.processed_total_key(Q), keys.failed_total_key(Q)) == 0
    assert r.exists(skey, wkey) == 0
    assert r.zcard(keys.ALL_SERVERS) == 0 and r.zcard(keys.ALL_WORKERS) == 0
    # The requeued tasks are the next to run.
    order: list[str] = []
    servers.start(lambda task: order.append(current_task().id), concurrency=1)
    wait_for(lambda: len(order) == 3, what="3 runs")
    assert order[2] == "C"


def test_stop_stops_dequeuing_while_running_tasks_finish(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate = Gate()

    def handler(task: Task) -> None:
        if current_task().id == "first":
            gate.entered.set()
            gate.release.wait(10)

    client.enqueue(Task("t"), task_id="first")
    srv = servers.start(handler)
    gate.wait_entered()
    srv.stop()
    srv.stop()  # idempotent
    assert srv.status == "stopped"
    client.enqueue(Task("t"), task_id="second")
    gate.release.set()
    wait_for(lambda: processed(r) == 1, what="the running task to finish")
    # Nothing new is taken: give the processor many check intervals to (wrongly) do so.
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: queue_state(r)["pending"] != ["second"], timeout=0.5)
    srv.shutdown()
    assert queue_state(r)["pending"] == ["second"]


def test_a_server_runs_once(servers: Servers, client: Client) -> None:
    srv = servers.start(lambda t: None)
    with pytest.raises(ServerClosedError, match="runs once"):
        srv.start(lambda t: None)
    srv.shutdown()
    srv.shutdown()  # idempotent
    assert srv.status == "closed"
    with pytest.raises(ServerClosedError):
        srv.start(lambda t: None)


def test_start_against_an_unreachable_redis_raises_at_once() -> None:
    srv = Server(f"redis://127.0.0.1:{free_port()}/0", logger=ListLogger(), **FAST)
    t = time.monotonic()
    with pytest.raises(BrokerError, match="cannot reach Redis"):
        srv.start(lambda t: None)
    assert time.monotonic() - t < 2
    assert srv.status == "closed"
    srv.shutdown()  # harmless
    with pytest.raises(ServerClosedError):
        srv.start(lambda t: None)


async def test_serve_in_a_running_loop_and_ashutdown(
    redis_url: str, r: redis.Redis, client: Client
) -> None:
    ran = asyncio.Event()

    async def handler(task: Task) -> None:
        ran.set()

    srv = Server(redis_url, logger=ListLogger(), **FAST)
    serving = asyncio.create_task(srv.serve(handler))
    client.enqueue(Task("t"), task_id="x")
    await asyncio.wait_for(ran.wait(), 5)
    with pytest.raises(RuntimeError, match="ashutdown"):
        srv.shutdown()  # would block the very loop the server runs on
    await asyncio.wait_for(srv.ashutdown(), 5)
    await asyncio.wait_for(serving, 1)
    assert srv.status == "closed"
    assert r.zcard(keys.ALL_SERVERS) == 0


async def test_shutdown_before_serve_starts_ends_serve_at_once(
    redis_url: str, r: redis.Redis
) -> None:
    srv = Server(redis_url, logger=ListLogger(), **FAST)
    await srv.ashutdown()
    await asyncio.wait_for(srv.serve(lambda t: None), 5)
    assert srv.status == "closed"


def test_run_handles_sigtstp_then_sigterm(redis_url: str, r: redis.Redis, client: Client) -> None:
    """run() blocks in this (main) thread; a helper thread sends the signals."""
    log = ListLogger()
    srv = Server(redis_url, logger=log, **FAST)
    client.enqueue(Task("t"), task_id="x")
    seen: list[str] = []

    def drive() -> None:
        wait_for(lambda: processed(r) == 1, what="a processed task")
        os.kill(os.getpid(), signal.SIGTSTP)
        wait_for(lambda: srv.status == "stopped", what="stopped")
        seen.append(srv.status)
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=drive)
    helper.start()
    t = time.monotonic()
    srv.run(lambda task: None)
    helper.join()
    assert time.monotonic() - t < 5
    assert seen == ["stopped"]
    assert srv.status == "closed"
    assert log.find("Stopping processor") and log.find("Exiting")
    assert r.zcard(keys.ALL_SERVERS) == 0
