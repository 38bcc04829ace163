"""pyasynq on a real Redis Cluster (3 masters, 3 replicas): the client, server, inspector
and cancellation work across slots owned by different nodes, with no CROSSSLOT."""

from __future__ import annotations

import threading
import time

import pytest
from topology import ClusterTopology

import pyasynq
from pyasynq.connection import ClusterOptions, parse_url

QUEUES = ["critical", "default", "low", "élevé", "q:with:colons"]


def _flush(topo: ClusterTopology) -> None:
    for n in topo.nodes:
        if n.alive() and n.client().execute_command("ROLE")[0] == b"master":
            n.client().flushall()


def test_url_is_parsed() -> None:
    o = parse_url("redis-cluster://user:pw@h1:7000,h2:7001")
    assert isinstance(o, ClusterOptions)
    assert list(o.nodes) == [("h1", 7000), ("h2", 7001)]
    assert o.username == "user" and o.password == "pw" and not o.tls
    assert "pw" not in repr(o)
    assert parse_url("rediss-cluster://h1:7000").tls  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="database 0"):
        parse_url("redis-cluster://h1:7000/3")


def test_queues_span_several_masters(cluster: ClusterTopology) -> None:
    owners = {cluster.master_for_key(f"asynq:{{{q}}}:pending").port for q in QUEUES}
    assert len(owners) >= 2, "the test queues should live on different masters"


def test_enqueue_process_and_inspect_across_nodes(cluster: ClusterTopology) -> None:
    _flush(cluster)
    url = cluster.url()
    seen: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    mux = pyasynq.ServeMux()

    @mux.handler("t")
    async def handle(task: pyasynq.Task) -> None:
        with lock:
            seen.append((pyasynq.current_task().queue, task.payload or b""))

    with pyasynq.Client(url) as client:
        for q in QUEUES:
            for i in range(10):
                client.enqueue(pyasynq.Task("t", f"{q}-{i}".encode()), queue=q, retention=60)
        results = client.enqueue_many(
            [(pyasynq.Task("t", f"batch-{i}".encode()), pyasynq.Options(queue=QUEUES[i % 5]))
             for i in range(25)]
        )  # fmt: skip
        assert all(r.error is None for r in results)
    server = pyasynq.Server(
        url, queues={q: 1 for q in QUEUES}, concurrency=8, task_check_interval=0.05
    )
    server.start(mux)
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 75 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert len(seen) == 75
    with pyasynq.Inspector(url) as insp:
        assert sorted(insp.queues()) == sorted(QUEUES)
        total = 0
        for q in QUEUES:
            info = insp.get_queue_info(q)
            assert info.pending == 0 and info.active == 0
            assert info.completed == 10  # the batch was enqueued without retention
            total += info.processed
            assert len(insp.list_completed_tasks(q, page_size=100)) == 10
        assert total == 75
        slot = insp.cluster_key_slot("critical")
        nodes = insp.cluster_nodes("critical")
        assert (
            nodes
            and nodes[0].addr == f"127.0.0.1:{cluster.master_for_key('asynq:{critical}:x').port}"
        )
        assert 0 <= slot < 16384


def test_cancel_reaches_a_server_on_the_cluster(cluster: ClusterTopology) -> None:
    _flush(cluster)
    url = cluster.url()
    started = threading.Event()
    mux = pyasynq.ServeMux()

    @mux.handler("slow")
    async def slow(task: pyasynq.Task) -> None:
        import asyncio

        started.set()
        await asyncio.sleep(30)

    server = pyasynq.Server(url, queues={"low": 1}, concurrency=2, task_check_interval=0.05)
    server.start(mux)
    try:
        with pyasynq.Client(url) as client:
            info = client.enqueue(pyasynq.Task("slow"), queue="low", max_retry=0)
        assert started.wait(20)
        with pyasynq.Inspector(url) as insp:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                insp.cancel_processing(info.id)
                archived = insp.list_archived_tasks("low")
                if archived:
                    assert archived[0].last_err == "context canceled"
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the cancel did not reach the server")
    finally:
        server.shutdown()


def _replica_of(cluster: ClusterTopology, master_port: int):  # type: ignore[no-untyped-def]
    for n in cluster.nodes:
        if not n.alive():
            continue
        role = n.client().execute_command("ROLE")
        if role[0] == b"slave" and int(role[2]) == master_port:
            return n
    raise AssertionError(f"no replica of {master_port}")


def test_durable_enqueue_on_the_cluster(cluster: ClusterTopology) -> None:
    _flush(cluster)
    with pyasynq.Client(cluster.url(), wait_replicas=1, wait_timeout=2) as client:
        for q in QUEUES:
            info = client.enqueue(pyasynq.Task("t", b"d"), queue=q)
            master = cluster.master_for_key(f"asynq:{{{q}}}:pending")
            replica = _replica_of(cluster, master.port)
            pipe = replica.client().pipeline(transaction=False)
            pipe.execute_command("READONLY")
            pipe.hget(f"asynq:{{{q}}}:t:{info.id}", "state")
            # WAIT returned 1, so the replica has the task when enqueue returns.
            assert pipe.execute()[1] == b"pending"
        with pytest.raises(pyasynq.ReplicationError):
            client.enqueue(pyasynq.Task("t", b"e"), queue="low", wait_replicas=2)
