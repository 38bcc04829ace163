"""The Redis client a worker lends to handlers (``current_task().redis``): concurrent
callers' commands leave in one write, each caller gets its own reply or error, a lost
connection gives errors (or redis-py's retry), never a hang; the worker makes it on first
use and closes it at shutdown; a real worker process drains tasks whose handlers use it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError, ResponseError

from pyasynq import Client, Task, current_task
from pyasynq._async.connection import connect
from pyasynq._rdb import keys
from pyasynq._server.lender import CoalescingRedis, Lender, lend
from pyasynq.config import ServerConfig
from pyasynq.log import Logger
from pyasynq.mux import ServeMux

from .support import Servers, wait_for

single_node = pytest.mark.single_node(
    "the coalescing client is a plain redis.asyncio.Redis (a Cluster gets RedisCluster)"
)


class CountingConnection(Connection):
    """Counts the writes of all its instances (one per command or per pipeline)."""

    writes = 0
    made = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        CountingConnection.made += 1

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(redis_url: str, r: redis.Redis) -> AsyncIterator[CoalescingRedis]:
    CountingConnection.writes = CountingConnection.made = 0
    pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = CoalescingRedis.from_pool(pool)
    await client.ping()  # connected: the writes counted below are the commands'
    CountingConnection.writes = 0
    yield client
    await client.aclose()


@single_node
async def test_concurrent_commands_leave_in_one_write(counted: CoalescingRedis) -> None:
    replies = await asyncio.gather(*(counted.incr("n") for _ in range(50)))
    assert sorted(replies) == list(range(1, 51))
    assert CountingConnection.writes == 1
    assert CountingConnection.made == 1  # one connection, not one per concurrent caller
    # A lone command goes alone, and the next round is a new write.
    assert await counted.get("n") == b"50"
    assert CountingConnection.writes == 2


@single_node
async def test_each_caller_gets_its_own_reply_or_error(counted: CoalescingRedis) -> None:
    await counted.set("s", "text")
    CountingConnection.writes = 0
    got = await asyncio.gather(
        counted.incr("n"),
        counted.lpush("s", "x"),  # WRONGTYPE, for this caller only
        counted.get("s"),
        counted.hset("h", mapping={"a": "1"}),
        counted.hgetall("h"),  # its response callback still applies (a dict)
        return_exceptions=True,
    )
    assert CountingConnection.writes == 1
    assert got[0] == 1
    assert isinstance(got[1], ResponseError) and "WRONGTYPE" in str(got[1])
    assert got[2] == b"text"
    assert got[3] == 1
    assert got[4] == {b"a": b"1"}


@single_node
async def test_blocking_commands_go_straight_through(counted: CoalescingRedis) -> None:
    blocked = asyncio.ensure_future(counted.blpop(["empty"], timeout=2))
    # The INCR issued while BLPOP blocks is not held behind it.
    assert await asyncio.wait_for(counted.incr("n"), 1.0) == 1
    assert not blocked.done()
    await counted.rpush("empty", "x")
    assert await asyncio.wait_for(blocked, 5.0) == (b"empty", b"x")


@single_node
async def test_pipelines_and_transactions_are_redis_pys_own(counted: CoalescingRedis) -> None:
    async with counted.pipeline(transaction=True) as pipe:
        pipe.incr("n").incr("n")
        assert await pipe.execute() == [1, 2]
    assert await counted.get("n") == b"2"


@single_node
async def test_a_cancelled_caller_leaves_without_failing_the_others(
    counted: CoalescingRedis,
) -> None:
    gone = asyncio.ensure_future(counted.incr("gone"))
    kept = asyncio.ensure_future(counted.incr("kept"))
    await asyncio.sleep(0)  # both queued for this iteration's round
    gone.cancel()
    assert await asyncio.wait_for(kept, 5.0) == 1
    assert gone.cancelled()


class Proxy:
    """A TCP proxy to Redis that cuts the first ``cuts`` connections as soon as they send
    a command (the command never reaches Redis)."""

    def __init__(self, target_port: int, cuts: int) -> None:
        self.target_port = target_port
        self.cuts = cuts
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cuts > 0:
            self.cuts -= 1
            await reader.read(1)
            writer.transport.abort()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5.0)


@single_node
@pytest.mark.parametrize("callers", [1, 10])
async def test_a_lost_connection_fails_each_caller_not_hangs(
    redis_url: str, r: redis.Redis, callers: int
) -> None:
    port = int(r.connection_pool.connection_kwargs["port"])
    proxy = Proxy(port, cuts=1000)  # every connection is cut
    client, owned = connect(f"redis://127.0.0.1:{await proxy.start()}/0")
    lent = lend(client, own=owned)  # pyasynq's retry policy: a few quick reconnects
    try:
        got = await asyncio.wait_for(
            asyncio.gather(*(lent.incr("n") for _ in range(callers)), return_exceptions=True),
            20.0,
        )
    finally:
        await lent.aclose()
        await proxy.close()
    assert all(isinstance(e, ConnectionError) for e in got), got
    assert len({id(e) for e in got}) == callers  # each caller raises its own exception


@single_node
async def test_a_connection_cut_mid_flight_is_retried_once_per_command(
    redis_url: str, r: redis.Redis
) -> None:
    port = int(r.connection_pool.connection_kwargs["port"])
    proxy = Proxy(port, cuts=1)  # the round's first write is lost, the retry goes through
    client, owned = connect(f"redis://127.0.0.1:{await proxy.start()}/0")
    lent = lend(client, own=owned)
    try:
        got = await asyncio.wait_for(asyncio.gather(*(lent.incr("n") for _ in range(10))), 20)
    finally:
        await lent.aclose()
        await proxy.close()
    assert sorted(got) == list(range(1, 11))
    assert r.get("n") == b"10"  # none ran twice


async def test_the_lender_makes_the_client_once_and_none_after_shutdown(
    redis_url: str, r: redis.Redis
) -> None:
    worker, _ = connect(redis_url)
    lender = Lender(worker, None, Logger())
    try:
        lent = lender.client()
        assert lender.client() is lent
        assert lent is not worker  # connections of its own
        assert await lent.set("k", "v")
        await lender.aclose()
        with pytest.raises(RuntimeError, match="the worker has shut down"):
            lender.client()
    finally:
        await worker.aclose()


# -- in a worker ---------------------------------------------------------------------

Q = "default"


def test_async_handlers_share_the_lent_client_closed_at_shutdown(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    mux = ServeMux()
    seen: list[Any] = []

    @mux.handler("lent:incr")
    async def incr(task: Task) -> None:
        lent = current_task().redis
        seen.append(lent)
        await lent.incr("lent:n")

    srv = servers.start(mux, concurrency=8)
    for _ in range(100):
        client.enqueue(Task("lent:incr", b""), queue=Q)
    wait_for(lambda: r.get("lent:n") == b"100", timeout=20, what="100 INCRs")
    assert len({id(c) for c in seen}) == 1  # one client for all handlers
    lent = seen[0]
    srv.shutdown()
    if isinstance(lent, RedisCluster):  # on a Cluster: a plain client, not coalesced
        return
    assert isinstance(lent, CoalescingRedis)
    pool = lent.connection_pool
    assert not pool._in_use_connections
    assert not any(c.is_connected for c in pool._available_connections)


def test_a_def_handler_is_told_to_use_its_own_client(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    mux = ServeMux()

    @mux.handler("lent:sync")
    def sync(task: Task) -> None:
        try:
            current_task().redis  # noqa: B018 - the property raises
        except RuntimeError as exc:
            r.set("lent:error", str(exc))

    servers.start(mux)
    client.enqueue(Task("lent:sync", b""), queue=Q)
    error = wait_for(lambda: r.get("lent:error"), timeout=10, what="the handler's error")
    assert b"def handler" in error and b"redis.Redis client of its own" in error


def test_handler_redis_takes_another_url(
    servers: Servers, client: Client, r: redis.Redis, redis_url: str
) -> None:
    mux = ServeMux()

    @mux.handler("lent:db")
    async def other(task: Task) -> None:
        await current_task().redis.set("lent:where", "db1")

    if "cluster" in redis_url:
        pytest.skip("a Cluster has one database")
    other_db = redis_url.rsplit("/", 1)[0] + "/1"
    db1 = redis.Redis.from_url(other_db)
    db1.delete("lent:where")
    servers.start(mux, handler_redis=other_db)
    client.enqueue(Task("lent:db", b""), queue=Q)
    try:
        assert wait_for(lambda: db1.get("lent:where"), timeout=10, what="the write") == b"db1"
        assert r.get("lent:where") is None
    finally:
        db1.delete("lent:where")
        db1.close()


def test_handler_redis_is_checked_when_configured() -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL scheme"):
        ServerConfig(handler_redis="http://localhost")
    with pytest.raises(TypeError, match="handler_redis must be"):
        ServerConfig(handler_redis=42)  # type: ignore[arg-type]


@pytest.mark.single_node("a real worker process; the topology is not under test")
def test_a_worker_process_drains_tasks_whose_handlers_use_the_lent_client(
    redis_url: str, r: redis.Redis, client: Client, tmp_path: Path
) -> None:
    here = Path(__file__).parent
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "APP_REDIS_URL": redis_url, "PYTHONPATH": str(here)}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "worker",
             "worker_app:mux", "--config", "worker_app:config"],
            cwd=here, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: r.zcard(keys.ALL_SERVERS) or proc.poll() is not None, timeout=20,
                 what="the worker to start")  # fmt: skip
        for _ in range(200):
            client.enqueue(Task("lent:incr", b""), queue=Q)
        wait_for(lambda: r.get("app:lent") == b"200", timeout=30, what="200 tasks drained")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log_path.read_text()
