"""The periodic components: forwarder (3.12), janitor (3.14), heartbeater (3.13, 3.19),
health check, aggregator (3.15) and the start-up maxmemory-policy warning."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import conformance as cf
import pytest
import redis
from rdb.helpers import (
    make_msg,
    queue_state,
    seed_completed,
    seed_retry,
    seed_scheduled,
    task_fields,
)

from pyasynq import BrokerError, Client, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_server_info
from pyasynq._rdb.ops import state
from pyasynq._sync.broker import Broker
from pyasynq.embedded import EmbeddedRedis
from pyasynq.server import Server

from .support import Gate, ListLogger, Servers, wait_for

Q = "default"


def pause(broker: Broker, q: str = Q) -> None:
    state.pause_result(q, broker.run(state.pause(q, time.time())))


# --------------------------------------------------------------------------- forwarder


def test_forwarder_moves_due_scheduled_and_retry_tasks(
    servers: Servers, broker: Broker, r: redis.Redis
) -> None:
    now = time.time()
    seed_scheduled(r, make_msg("s-due"), process_at=now - 1)
    seed_scheduled(r, make_msg("s-later"), process_at=now + 3600)
    seed_retry(r, make_msg("r-due"), retry_at=now - 1)
    seed_retry(r, make_msg("r-grouped", group_key="g"), retry_at=now - 1, group="g")
    pause(broker)  # the processor leaves pending alone; forwarding goes on
    servers.start(lambda t: None)
    wait_for(lambda: len(queue_state(r)["pending"]) == 2, what="2 forwarded")
    qs = queue_state(r)
    assert sorted(qs["pending"]) == ["r-due", "s-due"]
    assert qs["scheduled"] == [("s-later", pytest.approx(now + 3600, abs=1))]
    assert qs["retry"] == []
    for tid in ("r-due", "s-due"):
        f = task_fields(r, Q, tid)
        assert f["state"] == "pending"
        assert abs(int(f["pending_since"]) / 1e9 - time.time()) < 3  # nanoseconds
    # A task whose hash names a group goes back to its group, not to pending.
    assert r.zrange(keys.group_key(Q, "g"), 0, -1) == [b"r-grouped"]
    assert task_fields(r, Q, "r-grouped")["state"] == "aggregating"
    assert qs["groups"] == []  # like Go, forwarding does not SADD groups


def test_forwarded_tasks_are_processed(servers: Servers, client: Client, r: redis.Redis) -> None:
    ran: list[str] = []
    client.enqueue(Task("t"), task_id="later", process_in=1)
    assert queue_state(r)["scheduled"]
    servers.start(lambda t: ran.append("later"))
    wait_for(lambda: ran, timeout=4, what="the scheduled task to run")
    assert ran == ["later"]


# --------------------------------------------------------------------------- janitor


def test_janitor_deletes_completed_tasks_whose_retention_ended(
    servers: Servers, r: redis.Redis
) -> None:
    now = time.time()
    for i in range(5):
        seed_completed(r, make_msg(f"old{i}"), expires_at=now - 10)
    seed_completed(r, make_msg("kept"), expires_at=now + 3600)
    servers.start(lambda t: None, janitor_batch_size=2)
    wait_for(lambda: len(queue_state(r)["completed"]) == 1, what="expired completed gone")
    assert queue_state(r)["completed"][0][0] == "kept"
    assert [k for k in r.scan_iter("asynq:{default}:t:*")] == [b"asynq:{default}:t:kept"]


# --------------------------------------------------------------------------- heartbeater


def server_keys(srv: Server) -> tuple[str, str]:
    rt = srv.runtime
    assert rt is not None
    return rt.identity.server_key, rt.identity.workers_key


def server_info(r: redis.Redis, srv: Server) -> Any:
    data = r.get(server_keys(srv)[0])
    return None if data is None else decode_server_info(data)


def test_heartbeat_writes_server_and_worker_info_as_go(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    """The same server and task as the server_running_state fixture; the decoded
    ServerInfo and WorkerInfo must equal Go's after normalising host, pid, ids and times."""
    fixture = cf.load_fixture("server_running_state")
    gate = Gate()

    def block(task: Task) -> None:
        gate.entered.set()
        gate.release.wait(10)

    t0 = time.time()
    client.enqueue(
        Task("slow:task", b'{"sleep":"long"}'), queue="critical", task_id="t-slow", timeout=600
    )
    srv = servers.start(
        block, queues={"critical": 6, "default": 3}, concurrency=3, heartbeat_interval=1,
        lease_duration=2,
    )  # fmt: skip
    skey, wkey = server_keys(srv)
    wait_for(lambda: r.hexists(wkey, "t-slow"), what="the worker in a heartbeat")
    rt = srv.runtime
    assert rt is not None
    ours = cf.Normaliser.for_now(t0, rt.identity.host, rt.identity.pid)
    go = cf.Normaliser.for_fixture(fixture)
    expected = {k["key"]: k for k in fixture["keys"]}

    def go_value(prefix: str) -> Any:
        [key] = [k for k in expected if k.startswith(prefix)]
        return expected[key]["value"]

    info = cf.decoded_fields("asynq.ServerInfo", r.get(skey))
    assert (
        cf.diff(
            go.decoded("asynq.ServerInfo", go_value("asynq:servers:{")["decoded"]),
            ours.decoded("asynq.ServerInfo", info),
        )
        == []
    )
    worker = cf.decoded_fields("asynq.WorkerInfo", r.hget(wkey, "t-slow"))
    assert (
        cf.diff(
            go.decoded("asynq.WorkerInfo", go_value("asynq:workers:{")["t-slow"]["decoded"]),
            ours.decoded("asynq.WorkerInfo", worker),
        )
        == []
    )
    # TTL = 2 x heartbeat interval on both keys; registry scores = expiry.
    for key in (skey, wkey):
        assert 1000 < r.pttl(key) <= 2000
    for registry, key in ((keys.ALL_SERVERS, skey), (keys.ALL_WORKERS, wkey)):
        assert r.zscore(registry, key) == pytest.approx(time.time() + 2, abs=1.1)
    gate.release.set()


def test_status_goes_new_active_stopped_closed_and_shutdown_clears_state(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    gate = Gate()

    def block(task: Task) -> None:
        gate.entered.set()
        gate.release.wait(10)

    srv = servers.make(shutdown_timeout=5)
    assert srv.status == "new"
    srv.start(block)
    skey, wkey = server_keys(srv)
    wait_for(lambda: server_info(r, srv), what="first heartbeat")
    assert server_info(r, srv).status == "active" and srv.status == "active"
    assert r.zscore(keys.ALL_SERVERS, skey) is not None
    client.enqueue(Task("t"), task_id="run")
    gate.wait_entered()
    wait_for(lambda: server_info(r, srv).active_worker_count == 1, what="1 active worker")
    srv.stop()
    wait_for(lambda: server_info(r, srv).status == "stopped", what="status stopped")
    assert srv.status == "stopped"
    done = threading.Thread(target=srv.shutdown)
    done.start()
    # While shutdown waits for the running task, heartbeats report "closed".
    wait_for(lambda: server_info(r, srv).status == "closed", what="status closed")
    assert r.hexists(wkey, "run")
    gate.release.set()
    done.join(5)
    assert not done.is_alive()
    assert srv.status == "closed"
    assert r.exists(skey, wkey) == 0
    assert r.zscore(keys.ALL_SERVERS, skey) is None and r.zscore(keys.ALL_WORKERS, wkey) is None
    assert int(r.get(keys.processed_total_key(Q)) or 0) == 1  # the task finished


# --------------------------------------------------------------------------- health check


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(persistent=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.single_node("stops a one-node Redis of its own")
def test_health_check_reports_none_then_the_error(own_redis: EmbeddedRedis) -> None:
    calls: list[BaseException | None] = []
    log = ListLogger()
    srv = Server(
        own_redis.url, logger=log, health_check_func=calls.append, health_check_interval=0.1,
        heartbeat_interval=0.2, lease_duration=1, shutdown_timeout=1,
    )  # fmt: skip
    srv.start(lambda t: None)
    try:
        wait_for(lambda: calls, what="a health check")
        assert calls[0] is None
        own_redis.stop()
        wait_for(lambda: calls[-1] is not None, what="a failed health check")
        assert isinstance(calls[-1], BrokerError)
        assert all(c is None or isinstance(c, BrokerError) for c in calls)
    finally:
        t = time.monotonic()
        srv.shutdown()
        assert time.monotonic() - t < 3  # a dead Redis does not stall the shutdown


async def test_async_health_check_func(servers: Servers) -> None:
    called = threading.Event()

    async def check(err: BaseException | None) -> None:
        assert err is None
        called.set()

    servers.start(lambda t: None, health_check_func=check, health_check_interval=0.1)
    assert called.wait(3)


# --------------------------------------------------------------------------- aggregator


def aggregate(group: str, tasks: list[Task]) -> Task:
    payload = b"[" + b",".join(t.payload or b"" for t in tasks) + b"]"
    # The queue given here is overridden: the aggregate goes to the group's queue.
    return Task("agg", payload, task_id=f"agg-{group}", retention=3600, queue="elsewhere")


async def aggregate_async(group: str, tasks: list[Task]) -> Task:
    return aggregate(group, tasks)


@pytest.mark.parametrize("fn", [aggregate, aggregate_async], ids=["sync", "async"])
def test_aggregator_turns_a_group_into_one_task(
    fn: Any, servers: Servers, client: Client, r: redis.Redis
) -> None:
    for i, g in ((1, "g1"), (2, "g1"), (3, "g1"), (9, "g2")):
        client.enqueue(Task.from_json("item", {"n": i}), group=g, task_id=f"m{i}")
    woken = r.pubsub()
    woken.subscribe(keys.WAKE_CHANNEL)
    assert woken.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    got: dict[str, bytes] = {}
    servers.start(
        lambda t: got.__setitem__(t.type + ":" + str(len(got)), t.payload or b""),
        group_aggregator=fn,
        group_grace_period=1,
    )
    wait_for(lambda: len(queue_state(r)["completed"]) == 2, timeout=6, what="2 aggregates done")
    assert sorted(got.values()) == [b'[{"n":1},{"n":2},{"n":3}]', b'[{"n":9}]']
    assert all(k.startswith("agg:") for k in got)
    qs = queue_state(r)
    assert [m for m, _ in qs["completed"]] == ["agg-g1", "agg-g2"]
    assert qs["groups"] == [] and qs["aggregation_sets"] == []
    assert r.exists(*(keys.task_key(Q, f"m{i}") for i in (1, 2, 3, 9))) == 0
    assert r.exists(keys.group_key(Q, "g1"), keys.group_key(Q, "g2")) == 0
    assert not r.exists(keys.pending_key("elsewhere"))
    # The aggregates woke idle workers of their queue (grouped items never do): the
    # first one, and the second unless the first was still pending (then no worker of
    # the queue is idle, and the enqueue script does not publish).
    wakes = []
    while (m := woken.get_message(timeout=0.5)) is not None:
        wakes.append(m["data"])
    woken.close()
    assert wakes in ([Q.encode()], [Q.encode(), Q.encode()])


# --------------------------------------------------------------------------- maxmemory


@pytest.mark.single_node("CONFIG SET maxmemory-policy on the one server")
def test_warns_when_redis_may_evict_task_keys(servers: Servers, r: redis.Redis) -> None:
    original = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        servers.start(lambda t: None)
    finally:
        r.config_set("maxmemory-policy", original)
    [line] = servers.log.find("maxmemory-policy", "warn")
    assert "'allkeys-lru'" in line and "noeviction" in line


def test_no_warning_with_noeviction(servers: Servers, r: redis.Redis) -> None:
    assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    servers.start(lambda t: None)
    assert servers.log.find("Starting processing")
    assert not servers.log.find("maxmemory-policy")


# --------------------------------------------------------------------------- syncer


@pytest.mark.single_node("stops and restarts a one-node Redis of its own")
def test_syncer_retries_a_write_that_failed_while_redis_was_down(tmp_path: Any) -> None:
    """The handler's outcome cannot be written (Redis is down); the syncer retries it
    until Redis is back, within the lease; dequeuing resumes too."""
    redis_server = EmbeddedRedis(tmp_path, persistent=True).start()
    port = redis_server.port
    log = ListLogger()
    rc = redis.Redis(port=port)
    client = Client(redis_server.url)
    client.enqueue(Task("t"), task_id="first")
    client.close()
    ran: list[str] = []

    def handler(task: Task) -> None:
        ran.append(task.type)
        if len(ran) == 1:
            redis_server.stop()  # the outcome write will fail

    srv = Server(
        redis_server.url, logger=log, log_level="debug", heartbeat_interval=0.5,
        lease_duration=5, syncer_interval=0.1, task_check_interval=0.05, shutdown_timeout=1,
    )  # fmt: skip
    srv.start(handler)
    try:
        wait_for(lambda: log.find("task first: write failed, will retry"), what="failed write")
        restarted = EmbeddedRedis(tmp_path, port=port, persistent=True).start()
        try:
            wait_for(lambda: not rc.exists(keys.task_key(Q, "first")), what="the synced done write")
            assert rc.get(keys.processed_total_key(Q)) == b"1"
            assert rc.llen(keys.active_key(Q)) == 0 and rc.zcard(keys.lease_key(Q)) == 0
            c2 = Client(restarted.url)
            c2.enqueue(Task("t"), task_id="second")
            c2.close()
            wait_for(lambda: rc.get(keys.processed_total_key(Q)) == b"2", what="second task")
        finally:
            srv.shutdown()
            restarted.stop()
    finally:
        srv.shutdown()
        rc.close()
        redis_server.stop()


# --------------------------------------------------------------------------- fake clock


def test_times_come_from_the_servers_clock(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    """With a FakeClock every time the server writes is the clock's: retry score,
    last_failed_at, the daily stats key; the janitor expires by it too."""
    from pyasynq import FakeClock

    clock = FakeClock(1_900_000_000.5)  # 2030-03-17
    seed_completed(r, make_msg("done"), expires_at=1_900_000_010)

    def fail(task: Task) -> None:
        raise ValueError("x")

    client.enqueue(Task("t"), task_id="f")
    srv = servers.make(clock=clock, retry_delay_func=lambda n, e, t: 100)
    srv.start(fail)
    score = wait_for(lambda: r.zscore(keys.retry_key(Q), "f"), what="f in retry")
    assert score == 1_900_000_100
    assert task_fields(r, Q, "f")["msg"].last_failed_at == 1_900_000_000
    assert r.get("asynq:{default}:failed:2030-03-17") == b"1"
    assert r.ttl("asynq:{default}:failed:2030-03-17") > 90 * 86400  # EXPIREAT fake + 90 d
    assert [m for m, _ in queue_state(r)["completed"]] == ["done"]
    clock.advance(20)
    wait_for(lambda: queue_state(r)["completed"] == [], what="the janitor, by the clock")
