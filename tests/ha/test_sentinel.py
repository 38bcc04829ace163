"""pyasynq through Redis Sentinel: every component connects with asynq's
redis-sentinel:// URI or SentinelOptions, and durable enqueue waits for the replica."""

from __future__ import annotations

import time

import pytest
from topology import SentinelTopology

import pyasynq
from pyasynq.connection import SentinelOptions, parse_url


def _flush(topo: SentinelTopology) -> None:
    topo.current_master().client().flushall()


def test_url_is_parsed_like_asynq() -> None:
    o = parse_url("redis-sentinel://:s3cret@h1:26380,h2/2?master=mymaster&password=rpw")
    assert isinstance(o, SentinelOptions)
    assert o.master_name == "mymaster"
    assert list(o.sentinels) == [("h1", 26380), ("h2", 26379)]
    assert o.db == 2
    assert o.sentinel_password == "s3cret"
    assert o.password == "rpw"
    assert "s3cret" not in repr(o) and "rpw" not in repr(o)
    with pytest.raises(ValueError, match="master"):
        parse_url("redis-sentinel://h1:26379")


def test_client_server_and_inspector_through_sentinel(sentinel: SentinelTopology) -> None:
    _flush(sentinel)
    url = sentinel.url()
    done: list[bytes] = []
    mux = pyasynq.ServeMux()
    mux.handle("t", lambda task: done.append(task.payload or b""))
    with pyasynq.Client(url) as client:
        for i in range(20):
            client.enqueue(pyasynq.Task("t", str(i).encode()))
    server = pyasynq.Server(url, concurrency=4, task_check_interval=0.05)
    server.start(mux)
    try:
        deadline = time.monotonic() + 20
        while len(done) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert sorted(done) == sorted(str(i).encode() for i in range(20))
    with pyasynq.Inspector(url) as insp:
        assert insp.queues() == ["default"]
        info = insp.get_queue_info("default")
        assert info.processed == 20 and info.pending == 0


def test_durable_enqueue_waits_for_the_replica(sentinel: SentinelTopology) -> None:
    _flush(sentinel)
    opts = SentinelOptions(master_name=sentinel.master_name, sentinels=sentinel.sentinel_addrs())
    with pyasynq.Client(opts, wait_replicas=1, wait_timeout=2) as client:
        info = client.enqueue(pyasynq.Task("t", b"x"))
        replica = next(n for n in sentinel.nodes if n is not sentinel.current_master())
        assert replica.client().hget(f"asynq:{{default}}:t:{info.id}", "state") == b"pending"
        # Two replicas are more than this deployment has: a clear error, task kept.
        with pytest.raises(pyasynq.ReplicationError, match="only 1 of 2 replicas"):
            client.enqueue(pyasynq.Task("t", b"y"), task_id="t-2", wait_replicas=2)
    assert sentinel.current_master().client().exists("asynq:{default}:t:t-2") == 1


def test_secrets_stay_out_of_errors(sentinel: SentinelTopology) -> None:
    opts = SentinelOptions(
        master_name="no-such-master",
        sentinels=sentinel.sentinel_addrs(),
        password="hunter2-secret",
        socket_timeout=0.5,
    )
    client = pyasynq.Client(opts, failover_timeout=0)
    try:
        with pytest.raises(pyasynq.BrokerError) as info:
            client.ping()
        assert "hunter2-secret" not in str(info.value)
        assert "hunter2-secret" not in repr(client)
    finally:
        client.close()


def test_close_releases_the_sentinel_connections(sentinel: SentinelTopology) -> None:
    client = pyasynq.Client(sentinel.url())
    client.ping()
    manager = client._broker.redis.connection_pool.sentinel_manager
    assert any(s.connection_pool._created_connections for s in manager.sentinels)
    client.close()
    for s in manager.sentinels:
        pool = s.connection_pool
        assert not pool._in_use_connections
        assert all(c._sock is None for c in pool._available_connections)
