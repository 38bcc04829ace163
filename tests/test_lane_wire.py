"""The async lane's wire (issue 20): one kept connection driven by pyasynq's own asyncio
Protocol, shared by concurrent calls. Replies must reach their own callers in order,
through cancellations, a server that stops answering and one that drops the connection."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

import pyasynq
from pyasynq import Task
from pyasynq._async.lane import Lane
from pyasynq._rdb import keys
from pyasynq._wire import AsyncWire
from pyasynq.embedded import EmbeddedRedis

pytestmark = pytest.mark.single_node("the lane is for plain (and Sentinel) clients")

# Busy for ARGV[1] ms: keeps the replies behind it in flight (server-side, no sleep here).
SLOW = (
    "local t = redis.call('TIME') local stop = t[1] * 1000000 + t[2] + ARGV[1] * 1000 "
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop return 'slow'"
)


@pytest.fixture
async def lane(redis_url: str) -> AsyncIterator[Lane]:
    client = aioredis.Redis.from_url(redis_url)
    lane = Lane.of(client)
    assert lane is not None
    try:
        yield lane
    finally:
        await lane.aclose()
        await client.aclose()


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    lane: Lane, r: redis.Redis
) -> None:
    await lane.call(("PING",))
    assert isinstance(lane._wire, AsyncWire)
    before = r.info("stats")["total_connections_received"]

    async def one(i: int) -> None:
        if i % 3:
            assert await lane.call(("ECHO", f"m{i}")) == f"m{i}".encode()
        else:
            got = await lane.call_many([("ECHO", f"a{i}"), ("LPUSH", "s", "x"), ("ECHO", f"b{i}")])
            assert got[0] == f"a{i}".encode() and got[2] == f"b{i}".encode()

    r.set("s", "a string")  # LPUSH answers WRONGTYPE: an error reply in the middle
    await asyncio.gather(*(one(i) for i in range(300)))
    assert r.info("stats")["total_connections_received"] == before  # all on the one wire
    assert not lane._wire.closed


async def test_error_replies_raise_redis_py_classes_and_keep_the_wire(lane: Lane) -> None:
    with pytest.raises(redis.exceptions.NoScriptError):
        await lane.call(("EVALSHA", "0" * 40, 0))
    r0 = await lane.call_many([("EVALSHA", "0" * 40, 0), ("PING",)])
    assert isinstance(r0[0], redis.exceptions.NoScriptError) and r0[1] in (b"PONG", True)
    wire = lane._wire
    assert wire is not None and not wire.closed
    assert await lane.call(("ECHO", "x")) == b"x"
    assert lane._wire is wire


async def test_a_cancelled_caller_does_not_shift_the_replies(lane: Lane) -> None:
    await lane.call(("PING",))
    slow = asyncio.create_task(lane.call(("EVAL", SLOW, 0, 200)))
    cancelled = asyncio.create_task(lane.call(("ECHO", "cancelled")))
    await asyncio.sleep(0)  # both written, both waiting for their reply
    cancelled.cancel()
    after = asyncio.create_task(lane.call(("ECHO", "after")))
    assert await after == b"after"
    assert await slow == b"slow"
    assert cancelled.cancelled()
    assert await lane.call(("ECHO", "next")) == b"next"


async def test_a_server_that_stops_answering_fails_callers_within_the_timeout() -> None:
    with EmbeddedRedis(persistent=False) as server:
        assert server.process is not None
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.5)
        lane = Lane.of(client)
        assert lane is not None
        try:
            await lane.call(("PING",))
            wire = lane._wire
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                calls = [lane.call(("ECHO", f"m{i}")) for i in range(5)]
                results = await asyncio.wait_for(
                    asyncio.gather(*calls, return_exceptions=True), timeout=10
                )
                assert time.monotonic() - started < 5
                assert all(isinstance(x, redis.exceptions.TimeoutError) for x in results)
                assert wire is not None and wire.closed
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert await lane.call(("ECHO", "back")) == b"back"  # a fresh wire
            assert lane._wire is not wire
        finally:
            await lane.aclose()
            await client.aclose()


async def test_a_connection_closed_mid_flight_fails_every_waiter(
    lane: Lane, r: redis.Redis
) -> None:
    await lane.call(("PING",))
    blocked = asyncio.create_task(lane.call(("BLPOP", "nothing-comes", 10)))
    behind = [asyncio.create_task(lane.call(("ECHO", f"m{i}"))) for i in range(5)]
    deadline = time.monotonic() + 5
    while r.info("clients")["blocked_clients"] < 1:  # BLPOP has reached the server
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert int(r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")) >= 1
    results = await asyncio.wait_for(
        asyncio.gather(blocked, *behind, return_exceptions=True), timeout=5
    )
    assert all(isinstance(x, redis.exceptions.ConnectionError) for x in results), results
    assert await lane.call(("ECHO", "again")) == b"again"


async def test_the_async_client_enqueues_on_the_wire(redis_url: str, r: redis.Redis) -> None:
    async with pyasynq.AsyncClient(redis_url) as c:
        await asyncio.gather(*(c.enqueue(Task("t")) for _ in range(100)))
        lane = c._broker._lane
        assert lane is not None and isinstance(lane._wire, AsyncWire)
    assert r.llen(keys.pending_key("default")) == 100


async def test_a_wait_does_not_hold_up_the_calls_sharing_the_wire(lane: Lane) -> None:
    await lane.call(("PING",))
    # No replica will acknowledge: WAIT holds its connection for the whole timeout.
    durable = asyncio.create_task(lane.call_many([("SET", "k", "v"), ("WAIT", 1, 2000)]))
    assert await asyncio.wait_for(lane.call(("ECHO", "meanwhile")), timeout=1.5) == b"meanwhile"
    assert not durable.done()
    assert (await durable)[1] == 0
