"""Fleet-wide limits (issue 17 item 3): the scripts that admit, park, release and wake,
checked on the stored state; then real servers in this process sharing a cap. The
cross-process measurement is in test_limits_fleet.py."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from rdb.helpers import list_ids, task_fields, zset_items

import pyasynq
from pyasynq import Client, Limit, ServeMux, Task
from pyasynq._rdb import keys
from pyasynq._rdb.ops import limiter as ops
from pyasynq._rdb.ops import processing
from pyasynq._sync.broker import Broker

from .support import Servers, wait_for

Q = "default"
NOW = 1_700_000_000.0
CAP2 = ops.Spec(concurrency=2, rate=0, per=1.0)


def _enqueue(client: Client, n: int, ttype: str = "email:send") -> list[str]:
    return [client.enqueue(Task(ttype, b"%d" % i), task_id=f"t{i}").id for i in range(n)]


def _take(b: Broker, token: str, now: float = NOW) -> str:
    got = processing.dequeue_result(Q, b.run(processing.dequeue(Q, now, token)))
    assert got is not None and got.msg is not None
    return got.msg.id


def _acquire(b: Broker, spec: ops.Spec, tid: str, token: str, now: float = NOW) -> ops.Acquired:
    op = ops.acquire(Q, "email:send", spec, task_id=tid, token=token, now=now)
    return ops.acquire_result(b.run(op))


def _wake(b: Broker, spec: ops.Spec, now: float = NOW, **kw: Any) -> ops.Woken:
    return ops.wake_result(Q, b.run(ops.wake(Q, "email:send", spec, int(now * 1e9), **kw)))


def test_cap_admits_up_to_the_cap_and_parks_the_rest(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 3)
    admitted = [_acquire(broker, CAP2, _take(broker, f"k{i}"), f"k{i}") for i in range(3)]
    assert [a.started for a in admitted] == [True, True, False]
    assert admitted[2].parked_until == NOW + ops.WAIT_FALLBACK
    running = keys.limit_key(Q, "email:send", "running")
    assert sorted(i for i, _ in zset_items(r, running)) == ["t0", "t1"]
    # The parked task is an ordinary scheduled task to asynq: state, set, no lease.
    assert task_fields(r, Q, "t2")["state"] == "scheduled"
    assert "attempt" not in task_fields(r, Q, "t2")
    assert [i for i, _ in zset_items(r, keys.scheduled_key(Q))] == ["t2"]
    assert list_ids(r, keys.active_key(Q)) == ["t1", "t0"]
    assert "t2" not in [i for i, _ in zset_items(r, keys.lease_key(Q))]
    assert [i for i, _ in zset_items(r, keys.limit_key(Q, "email:send", "waiting"))] == ["t2"]


def test_release_wakes_the_oldest_waiter_to_the_front_with_a_reserved_slot(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 4)  # t0, t1 run; t2, t3 wait
    for i in range(4):
        _acquire(broker, CAP2, _take(broker, f"k{i}"), f"k{i}")
    client.enqueue(Task("other"), task_id="fresh")
    woken = _wake(broker, CAP2, NOW + 1, task_id="t0", token="k0")
    assert woken.woken == 1
    assert list_ids(r, keys.pending_key(Q))[-1] == "t2"  # the tail is dequeued next
    assert task_fields(r, Q, "t2")["state"] == "pending"
    assert [i for i, _ in zset_items(r, keys.scheduled_key(Q))] == ["t3"]
    running = dict(zset_items(r, keys.limit_key(Q, "email:send", "running")))
    assert set(running) == {"t1", "t2"} and running["t2"] == NOW + 1 + ops.RESERVE
    # Its reservation admits it even though the cap is full.
    assert _take(broker, "k5", NOW + 1) == "t2"
    assert _acquire(broker, CAP2, "t2", "k5", NOW + 1).started


def test_a_stale_release_keeps_the_new_holders_slot(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 1)
    _acquire(broker, CAP2, _take(broker, "old"), "old")
    # The lease was lost and another worker dequeued the task again.
    broker.run(processing.requeue(processing.decode_task(
        r.hget(keys.task_key(Q, "t0"), "msg") or b""), "old"))  # fmt: skip
    assert _acquire(broker, CAP2, _take(broker, "new"), "new").started
    _wake(broker, CAP2, task_id="t0", token="old")
    assert [i for i, _ in zset_items(r, keys.limit_key(Q, "email:send", "running"))] == ["t0"]
    _wake(broker, CAP2, task_id="t0", token="new")
    assert zset_items(r, keys.limit_key(Q, "email:send", "running")) == []


def test_a_crashed_holder_frees_its_slot_when_its_lease_expires(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 3)
    for i in range(3):
        _acquire(broker, CAP2, _take(broker, f"k{i}"), f"k{i}")
    # Still leased (the heartbeat moved the lease on): the holder stays.
    later = NOW + 31
    r.zadd(keys.lease_key(Q), {"t0": later + 30, "t1": later + 30})
    assert _wake(broker, CAP2, later).woken == 0
    # t0's worker died: nothing extends its lease. Once it has expired for as long as the
    # recoverer waits (the lease duration: 30 s here), the wake-up prunes t0 and wakes t2,
    # while t1's lease moved on.
    r.zadd(keys.lease_key(Q), {"t1": later + 90})
    assert _wake(broker, CAP2, later + 30 + 29).woken == 0
    assert _wake(broker, CAP2, later + 30 + 31).woken == 1
    assert list_ids(r, keys.pending_key(Q)) == ["t2"]


def test_rate_limit_parks_until_the_window_frees_a_start(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    rate = ops.Spec(concurrency=0, rate=2, per=10.0)
    _enqueue(client, 3)
    got = [_acquire(broker, rate, _take(broker, f"k{i}"), f"k{i}", NOW + i) for i in range(3)]
    assert [g.started for g in got] == [True, True, False]
    assert got[2].parked_until == NOW + 10.0  # the first start leaves the window then
    assert zset_items(r, keys.scheduled_key(Q)) == [("t2", NOW + 10)]
    assert _wake(broker, rate, NOW + 5) == ops.Woken(0, 5.0)
    assert _wake(broker, rate, NOW + 10).woken == 1
    assert list_ids(r, keys.pending_key(Q)) == ["t2"]


def test_a_task_no_longer_ours_is_left_alone(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 1)
    tid = _take(broker, "mine")
    assert _acquire(broker, CAP2, tid, "not-mine") == ops.Acquired(False, None)
    assert task_fields(r, Q, tid)["state"] == "active"


def test_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="concurrency=N, rate=N"):
        Limit()
    with pytest.raises(ValueError, match="at least 1"):
        Limit(concurrency=0)
    with pytest.raises(ValueError, match="positive"):
        Limit(rate=5, per=0)
    with pytest.raises(TypeError, match=r"pyasynq\.Limit"):
        pyasynq.ServerConfig(limits={"x": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"pyasynq\.Limit"):
        ServeMux().handle("x", lambda t: None, limit=5)  # type: ignore[arg-type]


class Meter:
    """Handler-side count of tasks running at once, and the most seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.done = 0

    async def handler(self, task: Task) -> None:
        import asyncio

        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        await asyncio.sleep(0.02)
        with self.lock:
            self.now -= 1
            self.done += 1


@pytest.mark.parametrize("where", ["config", "mux"])
def test_servers_share_a_cap(servers: Servers, client: Client, r: redis.Redis, where: str) -> None:
    meter = Meter()
    mux = ServeMux()
    options: dict[str, Any] = {"concurrency": 10}
    if where == "config":
        mux.handle("email:send", meter.handler)
        options["limits"] = {"email:send": Limit(concurrency=3)}
    else:
        mux.handle("email:", meter.handler, limit=Limit(concurrency=3))  # a pattern's limit
    for _ in range(3):
        servers.start(mux, **options)
    n = 60
    for i in range(n):
        ttype = "email:verify" if where == "mux" and i % 2 else "email:send"
        client.enqueue(Task(ttype, b"%d" % i))
    wait_for(lambda: meter.done == n, timeout=30, what="every task to run")
    assert 1 <= meter.most <= 3
    name = "email:send" if where == "config" else "email:"
    wait_for(lambda: r.zcard(keys.limit_key(Q, name, "running")) == 0, timeout=5,
             what="every slot to be released")  # fmt: skip
    assert r.zcard(keys.limit_key(Q, name, "waiting")) == 0
    assert client_counts(r) == n


def client_counts(r: redis.Redis) -> int:
    return int(r.get(keys.processed_total_key(Q)) or 0)


def test_rate_limited_servers_start_at_most_rate_per_window(
    servers: Servers, client: Client
) -> None:
    starts: list[float] = []
    lock = threading.Lock()

    async def handler(task: Task) -> None:
        with lock:
            starts.append(time.time())

    mux = ServeMux()
    mux.handle("api:call", handler, limit=Limit(rate=10, per=0.5))
    for _ in range(2):
        servers.start(mux, concurrency=10)
    n = 40
    for i in range(n):
        client.enqueue(Task("api:call", b"%d" % i))
    wait_for(lambda: len(starts) == n, timeout=30, what="every task to run")
    starts.sort()
    # The limiter counts starts when it admits them; a handler begins a little later, by
    # a varying lag (SLACK bounds it). So any window of per - SLACK seconds, seen from the
    # handlers, holds at most `rate` starts, and n starts span at least n / rate - 1 windows.
    slack = 0.1
    worst = max(sum(1 for t in starts if s <= t < s + 0.5 - slack) for s in starts)
    assert worst <= 10
    assert starts[-1] - starts[0] >= (n / 10 - 1) * 0.5 - slack


def test_a_failed_limit_check_puts_the_task_back_and_says_so(
    servers: Servers, client: Client, log: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyasynq._server import limiter as component
    from pyasynq.errors import BrokerError

    real = ops.acquire_result
    failures = [BrokerError("connection reset")]

    def flaky(reply: object) -> ops.Acquired:
        if failures:
            raise failures.pop()
        return real(reply)

    monkeypatch.setattr(component.ops, "acquire_result", flaky)
    monkeypatch.setattr(component, "ADMIT_RETRY_DELAY", 0.05)
    ran: list[str] = []

    async def handler(task: Task) -> None:
        ran.append(task.payload.decode())

    mux = ServeMux()
    mux.handle("email:send", handler, limit=Limit(concurrency=1))
    servers.start(mux)
    info = client.enqueue(Task("email:send", b"x"))
    wait_for(lambda: ran == ["x"], timeout=10, what="the task to run after the failed check")
    [line] = log.find("checking its limit failed")
    assert info.id in line and "connection reset" in line and "put back in pending" in line


def test_release_hands_the_first_waiter_to_a_worker_with_a_free_slot(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 4)  # t0, t1 run; t2, t3 wait
    for i in range(4):
        _acquire(broker, CAP2, _take(broker, f"k{i}"), f"k{i}")
    woken = _wake(broker, CAP2, NOW + 1, task_id="t0", token="k0", take_token="h1",
                  lease_until=int(NOW) + 31)  # fmt: skip
    assert woken.taken is not None and woken.taken.msg is not None
    assert (woken.woken, woken.taken.task_id) == (1, "t2")
    # Leased to the caller as a dequeue would, and admitted: a holder until its lease.
    fields = task_fields(r, Q, "t2")
    assert fields["state"] == "active" and fields["attempt"] == f"h1 {int(NOW) + 31}"
    assert "t2" in list_ids(r, keys.active_key(Q))
    assert dict(zset_items(r, keys.lease_key(Q)))["t2"] == int(NOW) + 31
    running = dict(zset_items(r, keys.limit_key(Q, "email:send", "running")))
    assert set(running) == {"t1", "t2"} and running["t2"] == int(NOW) + 31
    assert list_ids(r, keys.pending_key(Q)) == []
    assert [i for i, _ in zset_items(r, keys.scheduled_key(Q))] == ["t3"]
    # Its outcome is fenced by the hand-over token.
    msg = woken.taken.msg
    processing.check_write(broker.run(processing.done(msg, NOW + 2, "h1")))


def test_no_hand_over_while_the_queue_is_paused(
    client: Client, broker: Broker, r: redis.Redis
) -> None:
    _enqueue(client, 3)
    for i in range(3):
        _acquire(broker, CAP2, _take(broker, f"k{i}"), f"k{i}")
    r.set(keys.paused_key(Q), 1)
    woken = _wake(broker, CAP2, NOW + 1, task_id="t0", token="k0", take_token="h1",
                  lease_until=int(NOW) + 31)  # fmt: skip
    assert woken.taken is None and woken.woken == 1
    assert list_ids(r, keys.pending_key(Q)) == ["t2"]  # woken the ordinary way
