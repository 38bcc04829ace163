"""A full Redis (maxmemory reached, policy noeviction) keeps draining (issue 14, item 5):
the worker's scripts run although Redis refuses writes that need memory, while enqueues
fail at once with an error that says what to do, and store nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rdb.helpers import queue_state

from pyasynq import Client, Options, RedisOutOfMemoryError, Task
from pyasynq._rdb import keys
from pyasynq.embedded import EmbeddedRedis

from .support import ListLogger, Servers, wait_for

Q = "default"
ROOM = 2_000_000  # bytes of maxmemory above what the empty server uses


@pytest.fixture
def full_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of its own whose maxmemory is 2 MB above its empty size."""
    srv = EmbeddedRedis(tmp_path, persistent=False, extra_args=["--maxmemory-policy", "noeviction"])
    srv.start()
    try:
        r = redis.Redis.from_url(srv.url)
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + ROOM)
        r.close()
        yield srv.url
    finally:
        srv.stop()


def fill(client: Client) -> int:
    """Enqueue until Redis is full; the number of tasks stored."""
    n = 0
    with pytest.raises(RedisOutOfMemoryError) as err:
        while n < 100_000:
            client.enqueue(Task("t", b"x" * 500), queue=Q)
            n += 1
    assert "Redis is out of memory (maxmemory " in str(err.value)
    assert "policy noeviction" in str(err.value)
    assert "raise maxmemory, or let the workers drain the queues" in str(err.value)
    return n


def test_a_full_redis_refuses_enqueues_cleanly_and_workers_drain_it(full_url: str) -> None:
    r = redis.Redis.from_url(full_url)
    client = Client(full_url)
    log = ListLogger()
    servers = Servers(full_url, log)
    try:
        stored = fill(client)
        assert stored > 100
        # Used memory wobbles around the limit (client buffers): put it well below.
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 200_000)
        # A refused task leaves nothing behind, whichever way it was sent.
        with pytest.raises(RedisOutOfMemoryError):
            client.enqueue(Task("t", b"refused"), queue=Q, task_id="refused")
        [res] = client.enqueue_many([(Task("t", b"refused"), Options(task_id="refused2"))])
        assert isinstance(res.error, RedisOutOfMemoryError)
        before = r.dbsize()
        for how in ({"unique": 60}, {"process_in": 60}, {"group": "g"}):
            with pytest.raises(RedisOutOfMemoryError):
                client.enqueue(Task("t", b"refused"), queue=Q, **how)  # type: ignore[arg-type]
        assert r.dbsize() == before  # no lock, no zset, no group left behind
        assert not r.exists(keys.task_key(Q, "refused"), keys.task_key(Q, "refused2"))
        s = queue_state(r)
        assert len(s["pending"]) == stored and "refused" not in s["pending"]

        done = []
        lock = threading.Lock()

        def handler(task: Task) -> None:
            with lock:
                done.append(task)

        servers.start(handler, queues={Q: 1}, concurrency=10)
        wait_for(lambda: len(done) == stored, timeout=20, what=f"all {stored} tasks run")
        wait_for(lambda: queue_state(r)["active"] == [], what="active empty")
        assert not log.find("dequeue failed")
        assert len(log.find("could not write the server state")) <= 1  # once, not each beat
        # Memory was freed: enqueueing works again.
        client.enqueue(Task("t", b"after"), queue=Q, task_id="after")
        assert r.exists(keys.task_key(Q, "after"))
    finally:
        servers.close()
        client.close()
        r.close()
