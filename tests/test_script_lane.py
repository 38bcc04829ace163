"""The broker's script lane (issue 20, item 1): script calls on a kept connection, packed
in one C call, bypassing redis-py's per-command path. It must write what the general path
writes and ride out what redis-py rode out: NOSCRIPT, a dropped connection, a replica."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import targets

import pyasynq
from pyasynq import Task
from pyasynq._async.lane import Lane
from pyasynq._rdb import keys
from pyasynq.clock import FakeClock
from pyasynq.embedded import EmbeddedRedis
from pyasynq.errors import BrokerError

single_node = pytest.mark.single_node("the lane is for plain (and Sentinel) clients")

ARGS: tuple[Any, ...] = (
    "EVALSHA",
    "0" * 40,
    2,
    "asynq:{ü:q}:t:{id}",
    "asynq:{ü:q}:pending",
    b"\x00\xff msg",
    "{id}",
    1_765_000_000_123_456_789,
    "ü:q",
    "",
    2**63 - 1,
    1.5,
)


def test_the_lane_packs_what_redis_py_packs() -> None:
    client = redis.Redis()
    lane = Lane.of(client)
    assert lane is not None and lane.pack is not None  # hiredis, utf-8
    conn = client.connection_pool.make_connection()
    assert lane.pack(ARGS) == b"".join(conn.pack_command(*ARGS))


@single_node
def test_the_lane_is_left_out_where_the_general_path_must_stay(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url, single_connection_client=True) as one:
        assert Lane.of(one) is None
    latin = Lane.of(redis.Redis(encoding="latin-1"))
    assert latin is not None and latin.pack is None  # redis-py's packer, its encoding
    assert Lane.of(aioredis.Redis()) is not None


def stored(r: redis.Redis) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for key in r.keys("asynq:*"):
        kind = r.type(key)
        if kind == b"hash":
            out[key] = r.hgetall(key)
        elif kind == b"list":
            out[key] = r.lrange(key, 0, -1)
        elif kind == b"set":
            out[key] = r.smembers(key)
        else:
            out[key] = kind
    return out


@single_node
def test_the_lane_writes_what_the_general_path_writes(redis_url: str, r: redis.Redis) -> None:
    def run(lane: bool) -> dict[bytes, Any]:
        r.flushall()
        with pyasynq.Client(redis_url, clock=FakeClock(1_765_000_000.5)) as c:
            if not lane:
                c._broker._lane = None
            for i in range(3):
                c.enqueue(Task("t", b"p%d" % i), task_id=f"id{i}", queue="ü")
            c.enqueue(Task("t", b"u"), task_id="u", unique=60)
            c.enqueue(Task("t", b"s"), task_id="s", process_in=60)
            c.enqueue(Task("t", b"g"), task_id="g", group="grp")
        return stored(r)

    with_lane, without = run(True), run(False)
    assert with_lane == without
    assert len(with_lane[keys.pending_key("ü").encode()]) == 3


@single_node
def test_enqueues_share_one_kept_connection(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as c:
        c.enqueue(Task("t"))
        r.config_resetstat()
        before = r.info("stats")["total_connections_received"]
        for _ in range(20):
            c.enqueue(Task("t"))
        assert r.info("stats")["total_connections_received"] == before
        assert r.info("commandstats")["cmdstat_evalsha"]["calls"] == 20
        lane = c._broker._lane
        assert lane is not None and len(lane._idle) == 1


@single_node
def test_noscript_loads_the_script_and_sends_again(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as c:
        c.enqueue(Task("t"))
        r.script_flush()
        c.enqueue(Task("t"))
        assert r.llen(keys.pending_key("default")) == 2


@single_node
async def test_noscript_async(redis_url: str, r: redis.Redis) -> None:
    async with pyasynq.AsyncClient(redis_url) as c:
        await c.enqueue(Task("t"))
        r.script_flush()
        await c.enqueue(Task("t"))
        assert r.llen(keys.pending_key("default")) == 2


def kill_others(r: redis.Redis) -> int:
    return int(r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))


@single_node
def test_a_dropped_connection_is_replaced_and_the_task_stored_once(
    redis_url: str, r: redis.Redis
) -> None:
    with pyasynq.Client(redis_url, failover_timeout=0) as c:
        c.enqueue(Task("t"))
        assert kill_others(r) >= 1
        info = c.enqueue(Task("t"))
        assert r.lrange(keys.pending_key("default"), 0, 0) == [info.id.encode()]
        assert r.llen(keys.pending_key("default")) == 2


@single_node
async def test_a_dropped_connection_async(redis_url: str, r: redis.Redis) -> None:
    async with pyasynq.AsyncClient(redis_url, failover_timeout=0) as c:
        await c.enqueue(Task("t"))
        assert kill_others(r) >= 1
        await c.enqueue(Task("t"))
        assert r.llen(keys.pending_key("default")) == 2


@single_node
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_replica_fails_with_readonly_then_the_master_again_works(
    is_async: bool,
) -> None:
    # The kept connection points at a server that becomes a replica (a failover): the
    # error keeps Redis' READONLY code; once it is a master again, enqueues work.
    with (
        EmbeddedRedis(persistent=False) as master,
        EmbeddedRedis(persistent=False) as node,
    ):
        admin = redis.Redis.from_url(node.url)
        if is_async:
            ac = pyasynq.AsyncClient(node.url, failover_timeout=0)

            async def enqueue() -> None:
                await ac.enqueue(Task("t"))
        else:
            sc = pyasynq.Client(node.url, failover_timeout=0)

            async def enqueue() -> None:
                sc.enqueue(Task("t"))

        try:
            await enqueue()
            admin.replicaof("127.0.0.1", master.port)
            with pytest.raises(BrokerError) as err:
                await enqueue()
            assert isinstance(err.value.__cause__, redis.exceptions.ReadOnlyError)
            admin.replicaof("NO", "ONE")
            await enqueue()
            assert admin.llen(keys.pending_key("default")) >= 1
        finally:
            if is_async:
                await ac.aclose()
            else:
                sc.close()
            admin.close()


@pytest.mark.skipif(targets.CLUSTER, reason="a Cluster keeps the general path")
def test_threads_sharing_a_client_each_use_their_own_connection(
    redis_url: str, r: redis.Redis
) -> None:
    n, each = 8, 50
    with pyasynq.Client(redis_url) as c:
        c.enqueue(Task("warm"))
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(each):
                    c.enqueue(Task("t"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert r.llen(keys.pending_key("default")) == n * each + 1
        lane = c._broker._lane
        assert lane is not None and len(lane._idle) <= 4  # the rest went back to the pool


@single_node
def test_a_pipeline_on_the_lane_keeps_each_reply_and_error(redis_url: str, r: redis.Redis) -> None:
    from pyasynq._rdb.ops import Command
    from pyasynq._sync.broker import Broker

    r.set("s", "a string")
    b = Broker(redis_url)
    try:
        replies = b.run_many([Command(("SET", "x", "1")), Command(("LPUSH", "s", "v")),
                              Command(("GET", "x"))])  # fmt: skip
        assert replies[0] is True or replies[0] == b"OK"
        assert isinstance(replies[1], BrokerError) and "WRONGTYPE" in str(replies[1])
        assert replies[2] == b"1"
        assert b._lane is not None and len(b._lane._idle) == 1  # kept after an error reply
    finally:
        b.close()


@single_node
@pytest.mark.parametrize("trouble", ["noscript", "killed"])
def test_enqueue_many_rides_out_noscript_and_a_killed_connection(
    redis_url: str, r: redis.Redis, trouble: str
) -> None:
    with pyasynq.Client(redis_url, failover_timeout=0) as c:
        c.enqueue_many([Task("t"), Task("t")])
        if trouble == "noscript":
            r.script_flush()
        else:
            assert kill_others(r) >= 1
        results = c.enqueue_many([Task("t"), Task("t", b"p"), Task("t")])
        assert [res.error for res in results] == [None, None, None]
        assert r.llen(keys.pending_key("default")) == 5


@single_node
async def test_coalesced_enqueues_ride_out_a_killed_connection(
    redis_url: str, r: redis.Redis
) -> None:
    import asyncio

    async with pyasynq.AsyncClient(redis_url, failover_timeout=0) as c:
        await asyncio.gather(*(c.enqueue(Task("t")) for _ in range(50)))
        assert kill_others(r) >= 1
        await asyncio.gather(*(c.enqueue(Task("t")) for _ in range(50)))
        assert r.llen(keys.pending_key("default")) == 100


@single_node
@pytest.mark.parametrize("many", [False, True])
def test_a_dead_redis_is_tried_as_often_as_by_the_general_path(
    many: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lane must not add its own connect attempts (each with redis-py's retries) in
    # front of the general path's: an outage would take twice as long to report.
    def attempts(lane: bool) -> int:
        with EmbeddedRedis(persistent=False) as server:
            c = pyasynq.Client(server.url, failover_timeout=0)
            try:
                c.enqueue(Task("t"))
                if not lane:
                    c._broker._lane = None
                server.stop()
                with pytest.raises(BrokerError):  # the kept connection finds Redis gone
                    c.enqueue(Task("t"))
                count = [0]
                real = redis.connection.Connection._connect

                def counted(self: Any) -> Any:
                    count[0] += 1
                    return real(self)

                with monkeypatch.context() as m:
                    m.setattr(redis.connection.Connection, "_connect", counted)
                    with pytest.raises(BrokerError):
                        if many:
                            c.enqueue_many([Task("t"), Task("t")])
                        else:
                            c.enqueue(Task("t"))
                return count[0]
            finally:
                c.close()

    general = attempts(lane=False)
    assert general >= 1
    assert attempts(lane=True) == general
