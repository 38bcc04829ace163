"""Leases hold while a handler is busy, however it is busy, and a worker that lost its
lease cannot write over the task afterwards (issue 3, items 4 and 5).

Each test runs two servers on the same Redis: the one that runs the task, and a second
one whose recoverer looks for expired leases every 0.1 s."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from rdb.helpers import task_fields, task_hash

from pyasynq import Client, Task
from pyasynq._rdb import keys
from pyasynq.mux import ServeMux

from .support import Gate, Servers, wait_for

Q = "default"
LEASE = 1.0
BUSY = 3 * LEASE


def aggressive_recoverer(servers: Servers) -> None:
    servers.start(lambda t: None, recoverer_interval=0.1, lease_duration=LEASE)


class Watch:
    """Polls Redis on a thread while a task runs: did it ever leave active, how far did
    its lease move?"""

    def __init__(self, r: redis.Redis, task_id: str) -> None:
        self.r, self.task_id = r, task_id
        self.states: set[str] = set()
        self.scores: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            state = self.r.hget(keys.task_key(Q, self.task_id), "state")
            if state is not None:
                self.states.add(state.decode())
            score = self.r.zscore(keys.lease_key(Q), self.task_id)
            if score is not None:
                self.scores.append(score)
            time.sleep(0.02)

    def __enter__(self) -> Watch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def processed(r: redis.Redis) -> int:
    return int(r.get(keys.processed_total_key(Q)) or 0)


@pytest.mark.parametrize("kind", ["sync-cpu", "async-blocking"])
def test_busy_handler_keeps_its_lease_and_runs_once(
    kind: str, servers: Servers, client: Client, r: redis.Redis
) -> None:
    runs: list[float] = []
    started = threading.Event()

    def burn(task: Task) -> None:
        runs.append(time.monotonic())
        started.set()
        end = time.monotonic() + BUSY
        n = 0
        while time.monotonic() < end:  # pure CPU, no sleep, no I/O
            n += 1

    async def block_loop(task: Task) -> None:
        runs.append(time.monotonic())
        started.set()
        time.sleep(BUSY)  # blocks this server's event loop  # noqa: ASYNC251

    client.enqueue(Task("busy"), task_id="busy")
    servers.start(burn if kind == "sync-cpu" else block_loop, lease_duration=LEASE)
    assert started.wait(5)
    aggressive_recoverer(servers)
    with Watch(r, "busy") as watch:
        wait_for(lambda: processed(r) == 1, timeout=BUSY + 5, what="busy processed")
    assert len(runs) == 1
    assert watch.states == {"active"}  # never recovered to retry
    assert not r.exists(keys.task_key(Q, "busy"))
    assert r.zcard(keys.retry_key(Q)) == 0
    # The heartbeater moved the lease forward while the handler ran.
    assert max(watch.scores) - min(watch.scores) >= BUSY - 1
    assert not servers.log.find("expired lease")


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_task(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate_a, gate_b = Gate(), Gate()

    def handler_a(task: Task) -> None:
        gate_a.entered.set()
        gate_a.release.wait(10)

    async def handler_b(task: Task) -> None:
        gate_b.entered.set()
        await asyncio.to_thread(gate_b.release.wait, 10)

    client.enqueue(Task("t"), task_id="T", max_retry=5)
    # Worker A: long heartbeat, so it does not renew the lease during the test, and its
    # own recoverer only runs at start.
    servers.start(
        handler_a, concurrency=1, heartbeat_interval=5, lease_duration=10, recoverer_interval=60
    )
    gate_a.wait_entered()
    attempt_a = task_hash(r, Q, "T")["attempt"]

    # A stalls past its lease (as seen by Redis); B recovers the task and runs it again.
    # (Repeated until B's recoverer takes it: A's first heartbeat may still be extending.)
    def lease_pushed_back() -> bool:
        if r.hget(keys.task_key(Q, "T"), "attempt") != attempt_a:
            return True
        r.zadd(keys.lease_key(Q), {"T": time.time() - 100}, xx=True)
        return False

    mux = ServeMux()
    mux.handle("t", handler_b)
    servers.start(
        mux, recoverer_interval=0.1, lease_duration=LEASE, retry_delay_func=lambda n, e, t: 0
    )
    wait_for(lease_pushed_back, what="B's recoverer to take T")
    gate_b.wait_entered()
    assert servers.log.find("recoverer: task T in default had an expired lease")
    before = task_hash(r, Q, "T")
    assert before["state"] == b"active" and before["attempt"] != attempt_a
    assert task_fields(r, Q, "T")["msg"].error_msg == "asynq: task lease expired"
    assert processed(r) == 1  # the recovery counted as a failure
    # A comes back and finishes: its write is fenced off.
    gate_a.release.set()
    wait_for(
        lambda: servers.log.find("task T: lease lost to another worker; outcome dropped", "warn"),
        what="A's refused write",
    )
    assert task_hash(r, Q, "T") == before
    assert r.lrange(keys.active_key(Q), 0, -1) == [b"T"]
    assert processed(r) == 1
    # B, the owner now, completes it.
    gate_b.release.set()
    wait_for(lambda: processed(r) == 2, what="B's done")
    assert not r.exists(keys.task_key(Q, "T"))
    assert r.llen(keys.active_key(Q)) == 0 and r.zcard(keys.lease_key(Q)) == 0


def test_heartbeater_fails_a_task_whose_lease_was_taken(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    """Same stall, but A's heartbeater notices first: A's local lease runs out because the
    fenced extension no longer succeeds, and A gives up the task without writing."""
    gate = Gate()
    errors: list[str] = []

    def handler(task: Task) -> None:
        gate.entered.set()
        gate.release.wait(10)
        gate.left.set()

    client.enqueue(Task("t"), task_id="L", max_retry=5)
    servers.start(
        handler,
        concurrency=1,
        lease_duration=LEASE,
        recoverer_interval=60,
        error_handler=lambda t, e: errors.append(str(e)),
        retry_delay_func=lambda n, e, t: 3600,
    )
    gate.wait_entered()
    # Someone else took the task over: a different attempt token in the hash.
    r.hset(keys.task_key(Q, "L"), "attempt", "someone-else")
    wait_for(lambda: errors, timeout=4, what="A's lease expiry")
    assert errors == ["asynq: task lease expired"]
    assert servers.log.find("task L: lease expired before its outcome was written")
    f = task_hash(r, Q, "L")
    assert f["state"] == b"active" and f["attempt"] == b"someone-else"
    assert processed(r) == 0
    gate.release.set()
