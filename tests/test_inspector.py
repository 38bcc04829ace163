"""The Inspector (AsyncInspector and its generated twin Inspector) against a real Redis.

State is seeded three ways: with pyasynq.Client, with the seed helpers of tests/rdb (what
Go asynq leaves for a task in each state), and by loading keyspaces Go asynq wrote (the
conformance fixtures). Time comes from a FakeClock, so orphan flags, latency, daily
counters and registry expiry are exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import conformance as cf
import pytest
import redis
import slots
import targets
from rdb.helpers import (
    make_msg,
    queue_state,
    seed_active,
    seed_aggregating,
    seed_archived,
    seed_completed,
    seed_pending,
    seed_retry,
    seed_scheduled,
    task_fields,
    task_hash,
    unique_msg,
)
from redis.crc import key_slot

import pyasynq
from pyasynq import AsyncClient, FakeClock, Options, Task, TaskState
from pyasynq._async.inspector import AsyncInspector
from pyasynq._rdb import codec, keys
from pyasynq._rdb.goopts import (
    go_unquote,
    parse_go_duration,
    parse_go_unix_date,
    parse_option_strings,
)
from pyasynq._rdb.ops import state
from pyasynq._sync.broker import Broker
from pyasynq._sync.inspector import Inspector
from pyasynq.errors import (
    BrokerError,
    QueueNotEmptyError,
    QueueNotFoundError,
    QueueStateError,
    TaskNotFoundError,
    TaskStateError,
)
from pyasynq.inspection import (
    ClusterNode,
    DailyStats,
    GroupInfo,
    QueueInfo,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    WorkerInfo,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NOW_DT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
NS = 1_000_000_000
Q = "default"
BATCH = 1000  # ops.inspect.BULK_BATCH


def dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def insp(redis_url: str, r: redis.Redis, clock: FakeClock) -> AsyncIterator[AsyncInspector]:
    i = AsyncInspector(redis_url, clock=clock)
    yield i
    await i.aclose()


@pytest.fixture
def sinsp(redis_url: str, r: redis.Redis, clock: FakeClock) -> Iterator[Inspector]:
    with Inspector(redis_url, clock=clock) as i:
        yield i


@pytest.fixture
def client(redis_url: str, r: redis.Redis, clock: FakeClock) -> Iterator[pyasynq.Client]:
    with pyasynq.Client(redis_url, clock=clock) as c:
        yield c


@pytest.fixture
def broker(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    b = Broker(redis_url)
    yield b
    b.close()


def seed_bulk(
    r: redis.Redis, st: str, n: int, *, q: str = Q, group: str | None = None
) -> list[str]:
    """``n`` tasks in state ``st`` (ids b00000, b00001, ... in processing order),
    written in one pipeline the way the seed helpers write one."""
    ids = [f"b{i:05d}" for i in range(n)]
    pipe = r.pipeline(transaction=False)
    for i, tid in enumerate(ids):
        msg = make_msg(tid, queue=q, group_key=group or "")
        fields: dict[str, Any] = {"msg": codec.encode_task(msg), "state": st}
        if group:
            fields["group"] = group
        pipe.hset(keys.task_key(q, tid), mapping=fields)
        if st == "pending":
            pipe.lpush(keys.pending_key(q), tid)
        elif st == "aggregating":
            assert group
            pipe.zadd(keys.group_key(q, group), {tid: NOW + i})
        else:
            pipe.zadd(keys.queue_prefix(q) + st, {tid: NOW + i})
    if group:
        pipe.sadd(keys.groups_key(q), group)
    pipe.sadd(keys.ALL_QUEUES, q)
    pipe.execute()
    return ids


def task_keys(r: redis.Redis, q: str = Q) -> list[bytes]:
    return list(r.scan_iter(match=keys.task_key_prefix(q) + "*", count=1000))


def load_keyspace(r: redis.Redis, fixture: dict[str, Any]) -> None:
    """Write a conformance fixture's dumped keyspace (what Go asynq left) into Redis."""
    for k in fixture["keys"]:
        name, value = k["key"], k["value"]
        if k["type"] == "string":
            r.set(name, cf.blob_bytes(value))
        elif k["type"] == "hash":
            r.hset(name, mapping={f: cf.blob_bytes(v) for f, v in value.items()})
        elif k["type"] == "list":
            r.rpush(name, *(cf.blob_bytes(v) for v in value))
        elif k["type"] == "set":
            r.sadd(name, *(cf.blob_bytes(v) for v in value))
        elif k["type"] == "zset":
            r.zadd(name, {cf.blob_bytes(e["member"]): e["score"] for e in value})
        else:
            raise AssertionError(f"unknown key type {k['type']}")


# --------------------------------------------------------------------------- construction


def connected_ids(r: redis.Redis, node: tuple[str, int] | None) -> set[str]:
    """Ids of the connections open on Redis (on a cluster: on ``node``; ids are per node)."""
    where = {} if node is None else {"target_nodes": r.get_node(*node)}
    return {str(c["id"]) for c in r.client_list(**where)}


async def test_context_manager_closes_an_owned_pool(redis_url: str, r: redis.Redis) -> None:
    async with AsyncInspector(redis_url) as i:
        await i.ping()
        assert await i.queues() == []
        ident = str(await i._broker.redis.client_id())
        node = None  # on a cluster, CLIENT ID goes to the client's default node
        if targets.CLUSTER:
            default = i._broker.redis.get_default_node()
            node = (default.host, int(default.port))
        assert ident in connected_ids(r, node)
    deadline = time.monotonic() + 5
    while ident in connected_ids(r, node):  # the server notices the closed socket
        assert time.monotonic() < deadline, "the inspector's connection stayed open"
        await asyncio.sleep(0.01)


async def test_a_client_handed_in_is_never_closed(redis_url: str, r: redis.Redis) -> None:
    own = targets.async_client(redis_url)
    ident = await own.client_id()
    async with AsyncInspector(own) as i:
        await i.ping()
    assert await own.client_id() == ident  # same connection: nothing was disconnected
    await own.aclose()


def test_sync_twin_with_a_client_handed_in(redis_url: str, r: redis.Redis) -> None:
    own = targets.sync_client(redis_url)
    with Inspector(own) as i:
        i.ping()
        assert "Inspector" in repr(i) and "AsyncInspector" not in repr(i)
    assert own.ping()
    own.close()


async def test_ping_fails_with_broker_error_when_redis_is_down() -> None:
    async with AsyncInspector("redis://127.0.0.1:1/0") as i:
        with pytest.raises(BrokerError, match="cannot reach Redis"):
            await i.ping()


def test_bad_targets() -> None:
    with pytest.raises(ValueError, match="scheme"):
        AsyncInspector("http://localhost")
    with pytest.raises(TypeError):
        AsyncInspector(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- queues


async def test_queues_are_sorted(insp: AsyncInspector, client: pyasynq.Client) -> None:
    assert await insp.queues() == []
    for q in ("zeta", "alpha", "mid"):
        client.enqueue(Task("t"), queue=q)
    assert await insp.queues() == ["alpha", "mid", "zeta"]


async def test_get_queue_info_counts_every_state(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_pending(r, make_msg("p1"), pending_since_ns=int((NOW - 12.5) * NS))
    seed_pending(r, make_msg("p2"), pending_since_ns=int((NOW - 1) * NS))
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    seed_scheduled(r, make_msg("s1"), process_at=NOW + 60)
    seed_retry(r, make_msg("r1"), retry_at=NOW + 60)
    seed_archived(r, make_msg("x1"), archived_at=NOW - 60)
    seed_completed(r, make_msg("c1"), expires_at=NOW + 3600)
    seed_aggregating(r, make_msg("g1a"), group="g1", added_at=NOW)
    seed_aggregating(r, make_msg("g1b"), group="g1", added_at=NOW)
    seed_aggregating(r, make_msg("g2a"), group="g2", added_at=NOW)
    r.set(keys.processed_key(Q, NOW), 5)
    r.set(keys.failed_key(Q, NOW), 2)
    r.set(keys.processed_key(Q, NOW - 86400), 99)  # yesterday: not today's count
    r.set(keys.processed_total_key(Q), 10)
    r.set(keys.failed_total_key(Q), 3)
    r.set(keys.paused_key(Q), int(NOW))

    info = await insp.get_queue_info(Q)

    assert info.memory_usage > 0
    assert info == QueueInfo(
        queue=Q,
        memory_usage=info.memory_usage,
        latency=timedelta(seconds=12.5),  # the oldest pending task (the tail)
        size=10,
        groups=2,
        pending=2,
        active=1,
        scheduled=1,
        retry=1,
        archived=1,
        completed=1,
        aggregating=3,
        processed=5,
        failed=2,
        processed_total=10,
        failed_total=3,
        paused=True,
        timestamp=NOW_DT,
    )


async def test_get_queue_info_of_a_fresh_queue(
    insp: AsyncInspector, client: pyasynq.Client, clock: FakeClock
) -> None:
    client.enqueue(Task("t"), process_in=60)  # scheduled: no pending latency
    clock.advance(30)
    info = await insp.get_queue_info(Q)
    assert (info.size, info.scheduled, info.pending) == (1, 1, 0)
    assert info.latency == timedelta(0)
    assert (info.processed, info.failed, info.processed_total, info.failed_total) == (0, 0, 0, 0)
    assert info.paused is False
    assert info.timestamp == dt(NOW + 30)


async def test_latency_follows_the_clock(
    insp: AsyncInspector, client: pyasynq.Client, clock: FakeClock
) -> None:
    client.enqueue(Task("t"))
    clock.advance(42)
    assert (await insp.get_queue_info(Q)).latency == timedelta(seconds=42)


async def test_history_counts_per_utc_day(insp: AsyncInspector, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    r.set(keys.processed_key(Q, NOW), 7)
    r.set(keys.failed_key(Q, NOW), 1)
    r.set(keys.processed_key(Q, NOW - 2 * 86400), 3)
    assert await insp.history(Q, 3) == [
        DailyStats(Q, date(2023, 11, 14), 7, 1),
        DailyStats(Q, date(2023, 11, 13), 0, 0),
        DailyStats(Q, date(2023, 11, 12), 3, 0),
    ]
    assert len(await insp.history(Q)) == 7
    with pytest.raises(ValueError, match="days"):
        await insp.history(Q, 0)


async def test_groups(insp: AsyncInspector, client: pyasynq.Client) -> None:
    for g, n in (("beta", 1), ("alpha", 2)):
        for _ in range(n):
            client.enqueue(Task("t"), group=g)
    client.enqueue(Task("t"))  # not grouped
    assert await insp.groups(Q) == [GroupInfo("alpha", 2), GroupInfo("beta", 1)]


async def test_pause_and_unpause(insp: AsyncInspector, r: redis.Redis) -> None:
    await insp.pause_queue("q1")
    assert r.get(keys.paused_key("q1")) == str(int(NOW)).encode()
    assert r.ttl(keys.paused_key("q1")) == -1
    with pytest.raises(QueueStateError, match=r'^queue "q1" is already paused$'):
        await insp.pause_queue("q1")
    await insp.unpause_queue("q1")
    assert r.exists(keys.paused_key("q1")) == 0
    with pytest.raises(QueueStateError, match=r'^queue "q1" is not paused$'):
        await insp.unpause_queue("q1")


async def test_paused_flag_in_queue_info(insp: AsyncInspector, client: pyasynq.Client) -> None:
    client.enqueue(Task("t"))
    await insp.pause_queue(Q)
    assert (await insp.get_queue_info(Q)).paused is True
    await insp.unpause_queue(Q)
    assert (await insp.get_queue_info(Q)).paused is False


# --------------------------------------------------------------------------- deleting queues


async def test_delete_an_empty_queue(insp: AsyncInspector, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q, "other")
    await insp.delete_queue(Q)
    assert await insp.queues() == ["other"]
    with pytest.raises(QueueNotFoundError):
        await insp.delete_queue(Q)


async def test_delete_queue_refuses_a_non_empty_queue(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_retry(r, make_msg("r1"), retry_at=NOW)
    before = queue_state(r)
    with pytest.raises(QueueNotEmptyError):
        await insp.delete_queue(Q)
    assert queue_state(r) == before
    assert await insp.queues() == [Q]


async def test_delete_queue_with_force_removes_every_task(
    insp: AsyncInspector, r: redis.Redis
) -> None:
    seed_bulk(r, "pending", 2500)  # more than one purge batch
    seed_scheduled(r, make_msg("s1"), process_at=NOW)
    seed_archived(r, make_msg("x1"), archived_at=NOW)
    await insp.delete_queue(Q, force=True)
    assert await insp.queues() == []
    assert task_keys(r) == []
    state_after = queue_state(r)
    assert state_after["pending"] == state_after["scheduled"] == state_after["archived"] == []
    # No trash left behind by the batched purge.
    assert list(r.scan_iter(match=keys.queue_prefix(Q) + "pyasynq:*")) == []


async def test_delete_queue_never_removes_active_tasks(
    insp: AsyncInspector, r: redis.Redis
) -> None:
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    seed_pending(r, make_msg("p1"))
    before = queue_state(r)
    with pytest.raises(QueueStateError, match="active"):
        await insp.delete_queue(Q, force=True)
    assert queue_state(r) == before
    assert await insp.queues() == [Q]


# --------------------------------------------------------------------------- queue not found


NOT_FOUND_CALLS: list[tuple[str, Callable[[AsyncInspector], Any]]] = [
    ("groups", lambda i: i.groups("nope")),
    ("get_queue_info", lambda i: i.get_queue_info("nope")),
    ("history", lambda i: i.history("nope", 3)),
    ("delete_queue", lambda i: i.delete_queue("nope", force=True)),
    ("get_task_info", lambda i: i.get_task_info("nope", "t1")),
    ("list_pending_tasks", lambda i: i.list_pending_tasks("nope")),
    ("list_active_tasks", lambda i: i.list_active_tasks("nope")),
    ("list_scheduled_tasks", lambda i: i.list_scheduled_tasks("nope")),
    ("list_retry_tasks", lambda i: i.list_retry_tasks("nope")),
    ("list_archived_tasks", lambda i: i.list_archived_tasks("nope")),
    ("list_completed_tasks", lambda i: i.list_completed_tasks("nope")),
    ("list_aggregating_tasks", lambda i: i.list_aggregating_tasks("nope", "g")),
    ("delete_task", lambda i: i.delete_task("nope", "t1")),
    ("run_task", lambda i: i.run_task("nope", "t1")),
    ("archive_task", lambda i: i.archive_task("nope", "t1")),
    ("update_task_payload", lambda i: i.update_task_payload("nope", "t1", b"x")),
    ("delete_all_pending_tasks", lambda i: i.delete_all_pending_tasks("nope")),
    ("delete_all_scheduled_tasks", lambda i: i.delete_all_scheduled_tasks("nope")),
    ("delete_all_retry_tasks", lambda i: i.delete_all_retry_tasks("nope")),
    ("delete_all_archived_tasks", lambda i: i.delete_all_archived_tasks("nope")),
    ("delete_all_completed_tasks", lambda i: i.delete_all_completed_tasks("nope")),
    ("delete_all_aggregating_tasks", lambda i: i.delete_all_aggregating_tasks("nope", "g")),
    ("run_all_scheduled_tasks", lambda i: i.run_all_scheduled_tasks("nope")),
    ("run_all_retry_tasks", lambda i: i.run_all_retry_tasks("nope")),
    ("run_all_archived_tasks", lambda i: i.run_all_archived_tasks("nope")),
    ("run_all_aggregating_tasks", lambda i: i.run_all_aggregating_tasks("nope", "g")),
    ("archive_all_pending_tasks", lambda i: i.archive_all_pending_tasks("nope")),
    ("archive_all_scheduled_tasks", lambda i: i.archive_all_scheduled_tasks("nope")),
    ("archive_all_retry_tasks", lambda i: i.archive_all_retry_tasks("nope")),
    ("archive_all_aggregating_tasks", lambda i: i.archive_all_aggregating_tasks("nope", "g")),
]


@pytest.mark.parametrize(
    "call", [c for _, c in NOT_FOUND_CALLS], ids=[n for n, _ in NOT_FOUND_CALLS]
)
async def test_unknown_queue(
    insp: AsyncInspector, r: redis.Redis, call: Callable[[AsyncInspector], Any]
) -> None:
    # Keys of the queue exist, but it is not registered in asynq:queues.
    seed_bulk(r, "pending", 2, q="nope")
    seed_scheduled(r, make_msg("s1", queue="nope"), process_at=NOW)
    seed_aggregating(r, make_msg("g1", queue="nope"), group="g", added_at=NOW)
    r.srem(keys.ALL_QUEUES, "nope")
    before = queue_state(r, "nope")
    with pytest.raises(QueueNotFoundError, match="'nope' does not exist"):
        await call(insp)
    assert queue_state(r, "nope") == before
    assert len(task_keys(r, "nope")) == 4
    assert r.exists(keys.paused_key("nope")) == 0


@pytest.mark.parametrize("bad", ["", "   "])
async def test_blank_names_are_refused(insp: AsyncInspector, bad: str) -> None:
    with pytest.raises(ValueError, match="queue must not be blank"):
        await insp.get_queue_info(bad)
    with pytest.raises(ValueError, match="task_id must not be blank"):
        await insp.get_task_info(Q, bad)
    with pytest.raises(ValueError, match="group must not be blank"):
        await insp.list_aggregating_tasks(Q, bad)
    with pytest.raises(ValueError, match="entry_id must not be blank"):
        await insp.list_scheduler_enqueue_events(bad)


async def test_non_str_names_are_refused(insp: AsyncInspector) -> None:
    with pytest.raises(TypeError, match="queue must be a str"):
        await insp.pause_queue(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task_id must be a str"):
        await insp.cancel_processing(1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading tasks


async def test_get_task_info_in_every_state(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_pending(r, make_msg("p1"))
    seed_active(r, make_msg("a-live"), lease_expiry=NOW + 30)
    seed_active(r, make_msg("a-dead"), lease_expiry=NOW - 1)
    seed_scheduled(r, make_msg("s1"), process_at=NOW + 60)
    seed_retry(
        r,
        make_msg("r1", retried=2, error_msg="boom", last_failed_at=int(NOW) - 5),
        retry_at=NOW + 90,
    )
    seed_archived(r, make_msg("x1", error_msg="gone"), archived_at=NOW - 60)
    seed_completed(
        r, make_msg("c1", retention=3600, completed_at=int(NOW) - 10), expires_at=NOW + 3590
    )
    r.hset(keys.task_key(Q, "c1"), "result", b"\x00result")
    seed_aggregating(r, make_msg("g1"), group="grp", added_at=NOW)

    p = await insp.get_task_info(Q, "p1")
    assert (p.state, p.next_process_at, p.is_orphaned) == (TaskState.PENDING, NOW_DT, False)
    assert (p.type, p.payload, p.max_retry, p.timeout) == (
        "test:task",
        b'{"n":1}',
        25,
        timedelta(seconds=1800),
    )
    live = await insp.get_task_info(Q, "a-live")
    assert (live.state, live.is_orphaned, live.next_process_at) == (TaskState.ACTIVE, False, None)
    assert (await insp.get_task_info(Q, "a-dead")).is_orphaned is True
    s = await insp.get_task_info(Q, "s1")
    assert (s.state, s.next_process_at) == (TaskState.SCHEDULED, dt(NOW + 60))
    rt = await insp.get_task_info(Q, "r1")
    assert (rt.state, rt.next_process_at, rt.retried, rt.last_err, rt.last_failed_at) == (
        TaskState.RETRY,
        dt(NOW + 90),
        2,
        "boom",
        dt(NOW - 5),
    )
    x = await insp.get_task_info(Q, "x1")
    assert (x.state, x.next_process_at, x.last_err) == (TaskState.ARCHIVED, None, "gone")
    c = await insp.get_task_info(Q, "c1")
    assert (c.state, c.result, c.completed_at, c.retention) == (
        TaskState.COMPLETED,
        b"\x00result",
        dt(NOW - 10),
        timedelta(hours=1),
    )
    g = await insp.get_task_info(Q, "g1")
    assert (g.state, g.group, g.next_process_at) == (TaskState.AGGREGATING, "grp", None)


async def test_get_task_info_of_a_missing_task(insp: AsyncInspector, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    with pytest.raises(TaskNotFoundError, match="'nope' does not exist in queue 'default'"):
        await insp.get_task_info(Q, "nope")


async def test_reads_what_the_client_enqueued(insp: AsyncInspector, client: pyasynq.Client) -> None:
    infos = [
        client.enqueue(
            Task("email:send", b'{"to":"a@b.c"}', headers={"k": "v"}),
            task_id="plain",
            max_retry=3,
            timeout=60,
            deadline=NOW + 3600,
            retention=600,
        ),
        client.enqueue(Task("later"), task_id="sched", process_in=120, unique=300),
        client.enqueue(Task("agg", b"1"), task_id="grouped", group="g"),
    ]
    for info in infos:
        got = await insp.get_task_info(Q, info.id)
        assert got == info
    assert [t.id for t in await insp.list_pending_tasks(Q)] == ["plain"]
    assert await insp.list_scheduled_tasks(Q) == [infos[1]]
    assert await insp.list_aggregating_tasks(Q, "g") == [infos[2]]


async def test_list_pending_pages_oldest_first(
    insp: AsyncInspector, client: pyasynq.Client
) -> None:
    ids = [f"t{i:02d}" for i in range(35)]
    for tid in ids:  # enqueued in this order: t00 is the oldest
        client.enqueue(Task("t"), task_id=tid)
    page1 = await insp.list_pending_tasks(Q)
    assert [t.id for t in page1] == ids[:30]  # default page size 30
    assert all(t.state is TaskState.PENDING and t.next_process_at == NOW_DT for t in page1)
    assert [t.id for t in await insp.list_pending_tasks(Q, page=2)] == ids[30:]
    assert [t.id for t in await insp.list_pending_tasks(Q, page_size=4, page=3)] == ids[8:12]
    assert await insp.list_pending_tasks(Q, page_size=10, page=5) == []


async def test_list_active_flags_orphans(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_active(r, make_msg("old"), lease_expiry=NOW - 5)  # its worker is gone
    seed_active(r, make_msg("edge"), lease_expiry=NOW)  # expires right now
    seed_active(r, make_msg("live"), lease_expiry=NOW + 25)
    got = await insp.list_active_tasks(Q)
    assert [(t.id, t.is_orphaned) for t in got] == [
        ("old", True),
        ("edge", True),
        ("live", False),
    ]
    assert all(t.state is TaskState.ACTIVE for t in got)


@pytest.mark.parametrize(
    ("st", "lister", "has_next"),
    [
        ("scheduled", "list_scheduled_tasks", True),
        ("retry", "list_retry_tasks", True),
        ("archived", "list_archived_tasks", False),
        ("completed", "list_completed_tasks", False),
    ],
)
async def test_zset_lists_page_by_score(
    insp: AsyncInspector, r: redis.Redis, st: str, lister: str, has_next: bool
) -> None:
    ids = seed_bulk(r, st, 5)  # scores NOW, NOW + 1, ...
    r.hset(keys.task_key(Q, ids[1]), "result", b"out")
    got = await getattr(insp, lister)(Q, page_size=2, page=1)
    assert [t.id for t in got] == ids[:2]
    assert [t.state for t in got] == [TaskState(st)] * 2
    assert got[1].result == b"out"
    expected_next = [dt(NOW), dt(NOW + 1)] if has_next else [None, None]
    assert [t.next_process_at for t in got] == expected_next
    assert [t.id for t in await getattr(insp, lister)(Q, page_size=2, page=3)] == ids[4:]
    assert await getattr(insp, lister)(Q, page_size=2, page=4) == []


async def test_list_tasks_by_state_name(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_bulk(r, "retry", 3)
    seed_bulk(r, "aggregating", 2, q="other", group="g")
    assert len(await insp.list_tasks(Q, "retry")) == 3
    assert len(await insp.list_tasks(Q, TaskState.RETRY, page_size=2)) == 2
    assert len(await insp.list_tasks("other", "aggregating", group="g")) == 2
    assert await insp.list_tasks("other", "aggregating", group="none") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state": "bogus"}, "unknown task state"),
        ({"state": "pending", "page": 0}, "page numbers start at 1"),
        ({"state": "pending", "page_size": 0}, "page_size must be at least 1"),
        ({"state": "aggregating"}, "pass group="),
        ({"state": "pending", "group": "g"}, "pass group="),
    ],
)
async def test_list_tasks_refuses_bad_arguments(
    insp: AsyncInspector, r: redis.Redis, kwargs: dict[str, Any], message: str
) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    with pytest.raises(ValueError, match=message):
        await insp.list_tasks(Q, **kwargs)


async def test_lists_skip_undecodable_tasks(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_pending(r, make_msg("good"))
    seed_pending(r, make_msg("bad"))
    r.hset(keys.task_key(Q, "bad"), "msg", b"\xff\xff not protobuf")
    assert [t.id for t in await insp.list_pending_tasks(Q)] == ["good"]


# --------------------------------------------------------------------------- one task


async def test_run_task(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_archived(r, make_msg("x1"), archived_at=NOW)
    seed_aggregating(r, make_msg("g1"), group="grp", added_at=NOW)
    await insp.run_task(Q, "x1")
    await insp.run_task(Q, "g1")
    s = queue_state(r)
    assert (s["archived"], s["groups"], s["pending"]) == ([], [], ["g1", "x1"])
    assert task_fields(r, Q, "x1")["state"] == "pending"
    with pytest.raises(TaskStateError, match="already pending"):
        await insp.run_task(Q, "x1")
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    with pytest.raises(TaskStateError, match="already running"):
        await insp.run_task(Q, "a1")
    with pytest.raises(TaskNotFoundError):
        await insp.run_task(Q, "nope")


async def test_archive_task(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_pending(r, make_msg("p1"))
    seed_retry(r, make_msg("r1"), retry_at=NOW + 5)
    await insp.archive_task(Q, "p1")
    await insp.archive_task(Q, "r1")
    s = queue_state(r)
    assert (s["pending"], s["retry"]) == ([], [])
    assert s["archived"] == [("p1", NOW), ("r1", NOW)]
    assert task_fields(r, Q, "r1")["state"] == "archived"
    with pytest.raises(TaskStateError, match="already archived"):
        await insp.archive_task(Q, "p1")
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    with pytest.raises(TaskStateError, match="running"):
        await insp.archive_task(Q, "a1")
    with pytest.raises(TaskNotFoundError):
        await insp.archive_task(Q, "nope")


async def test_delete_task_releases_its_unique_lock(
    insp: AsyncInspector, client: pyasynq.Client, r: redis.Redis
) -> None:
    info = client.enqueue(Task("u", b"x"), unique=600, process_in=60)
    lock = keys.unique_key(Q, "u", b"x")
    assert r.get(lock) == info.id.encode()
    await insp.delete_task(Q, info.id)
    assert task_hash(r, Q, info.id) == {}
    assert r.exists(lock) == 0
    assert queue_state(r)["scheduled"] == []
    with pytest.raises(TaskNotFoundError):
        await insp.delete_task(Q, info.id)


async def test_delete_task_refuses_active_tasks(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    with pytest.raises(TaskStateError, match="running"):
        await insp.delete_task(Q, "a1")
    assert task_fields(r, Q, "a1")["state"] == "active"


async def test_update_task_payload(insp: AsyncInspector, r: redis.Redis) -> None:
    msg = unique_msg("s1", headers={"h": "1"}, retry=4)
    seed_scheduled(r, msg, process_at=NOW + 60)
    await insp.update_task_payload(Q, "s1", b'{"n":2}')
    stored = task_fields(r, Q, "s1")
    assert stored["msg"].payload == b'{"n":2}'
    assert stored["msg"].unique_key == msg.unique_key
    assert (stored["msg"].retry, stored["msg"].headers) == (4, {"h": "1"})
    assert stored["state"] == "scheduled"
    assert (await insp.get_task_info(Q, "s1")).payload == b'{"n":2}'


async def test_update_task_payload_only_for_scheduled_tasks(
    insp: AsyncInspector, r: redis.Redis
) -> None:
    seed_pending(r, make_msg("p1"))
    with pytest.raises(TaskStateError, match="not scheduled"):
        await insp.update_task_payload(Q, "p1", b"new")
    assert task_fields(r, Q, "p1")["msg"].payload == b'{"n":1}'
    with pytest.raises(TaskNotFoundError):
        await insp.update_task_payload(Q, "nope", b"new")
    with pytest.raises(TypeError, match="payload must be bytes"):
        await insp.update_task_payload(Q, "p1", "text")  # type: ignore[arg-type]


async def test_cancel_processing_publishes_the_task_id(
    insp: AsyncInspector, r: redis.Redis
) -> None:
    assert await insp.cancel_processing("t1") == 0  # nobody listens
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(keys.CANCEL_CHANNEL)
    deadline = time.monotonic() + 5
    while r.pubsub_numsub(keys.CANCEL_CHANNEL)[0][1] < 1:
        assert time.monotonic() < deadline, "subscription never registered"
        sub.get_message(timeout=0.05)
    assert await insp.cancel_processing("t1") == 1
    msg = None
    while msg is None and time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.1)
    assert msg is not None and msg["data"] == b"t1"
    sub.close()


# --------------------------------------------------------------------------- bulk


def progress_sink() -> tuple[list[int], Callable[[int], None]]:
    seen: list[int] = []
    return seen, seen.append


BULK = [
    # (method, source state, group, destination: container the tasks end in or None)
    ("delete_all_pending_tasks", "pending", None, None),
    ("delete_all_scheduled_tasks", "scheduled", None, None),
    ("delete_all_retry_tasks", "retry", None, None),
    ("delete_all_archived_tasks", "archived", None, None),
    ("delete_all_completed_tasks", "completed", None, None),
    ("delete_all_aggregating_tasks", "aggregating", "g", None),
    ("run_all_scheduled_tasks", "scheduled", None, "pending"),
    ("run_all_retry_tasks", "retry", None, "pending"),
    ("run_all_archived_tasks", "archived", None, "pending"),
    ("run_all_aggregating_tasks", "aggregating", "g", "pending"),
    ("archive_all_pending_tasks", "pending", None, "archived"),
    ("archive_all_scheduled_tasks", "scheduled", None, "archived"),
    ("archive_all_retry_tasks", "retry", None, "archived"),
    ("archive_all_aggregating_tasks", "aggregating", "g", "archived"),
]


@pytest.mark.parametrize("case", BULK, ids=[b[0] for b in BULK])
async def test_bulk_in_batches_with_progress(
    insp: AsyncInspector, r: redis.Redis, case: tuple[str, str, str | None, str | None]
) -> None:
    method, src, group, dst = case
    n = 2345
    ids = seed_bulk(r, src, n, group=group)
    seen, on_progress = progress_sink()
    args = (Q, group) if group else (Q,)
    assert await getattr(insp, method)(*args, on_progress=on_progress) == n
    assert seen == [1000, 2000, n]
    s = queue_state(r)
    source = s["groups"] if group else s[src]
    assert source == []
    if dst is None:
        assert task_keys(r) == []
    else:
        moved = s[dst]
        assert len(moved) == n
        moved_ids = moved if dst == "pending" else [m for m, _ in moved]
        assert set(moved_ids) == set(ids)
        assert task_fields(r, Q, ids[-1])["state"] == dst
    if group:
        assert r.exists(keys.group_key(Q, group)) == 0


async def test_bulk_on_an_exact_multiple_of_the_batch(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_bulk(r, "retry", 3000)
    seen, on_progress = progress_sink()
    assert await insp.run_all_retry_tasks(Q, on_progress=on_progress) == 3000
    assert seen == [1000, 2000, 3000]  # the empty last batch is not reported
    assert r.llen(keys.pending_key(Q)) == 3000


async def test_bulk_keeps_processing_order(insp: AsyncInspector, r: redis.Redis) -> None:
    ids = seed_bulk(r, "scheduled", 1500)  # b00000 is due first
    await insp.run_all_scheduled_tasks(Q)
    # The tail of pending runs first: the earliest scheduled task must be there.
    oldest_first = [t.id for t in await insp.list_pending_tasks(Q, page_size=1500)]
    assert oldest_first == ids


async def test_bulk_on_an_empty_source(insp: AsyncInspector, r: redis.Redis) -> None:
    r.sadd(keys.ALL_QUEUES, Q)
    seen, on_progress = progress_sink()
    assert await insp.delete_all_archived_tasks(Q, on_progress=on_progress) == 0
    assert await insp.archive_all_pending_tasks(Q) == 0
    assert seen == []


async def test_bulk_generic_and_refused_states(insp: AsyncInspector, r: redis.Redis) -> None:
    seed_bulk(r, "retry", 3)
    assert await insp.archive_all_tasks(Q, "retry") == 3
    assert await insp.run_all_tasks(Q, TaskState.ARCHIVED) == 3
    assert await insp.delete_all_tasks(Q, "pending") == 3
    with pytest.raises(ValueError, match="not active"):
        await insp.delete_all_tasks(Q, "active")
    with pytest.raises(ValueError, match="not pending"):
        await insp.run_all_tasks(Q, "pending")
    with pytest.raises(ValueError, match="not archived"):
        await insp.archive_all_tasks(Q, "archived")
    with pytest.raises(ValueError, match="pass group="):
        await insp.run_all_tasks(Q, "aggregating")


async def test_archive_all_stamps_one_time(
    insp: AsyncInspector, r: redis.Redis, clock: FakeClock
) -> None:
    seed_bulk(r, "pending", 1200)
    clock.set(NOW + 77)
    await insp.archive_all_pending_tasks(Q)
    assert {score for _, score in queue_state(r)["archived"]} == {NOW + 77}


async def test_a_failing_progress_callback_stops_the_loop(
    insp: AsyncInspector, r: redis.Redis
) -> None:
    seed_bulk(r, "archived", 2500)

    def boom(done: int) -> None:
        raise RuntimeError(f"stop at {done}")

    with pytest.raises(RuntimeError, match="stop at 1000"):
        await insp.delete_all_archived_tasks(Q, on_progress=boom)
    assert r.zcard(keys.archived_key(Q)) == 1500  # the first batch is done, no more


# --------------------------------------------------------------------------- servers


def server_info(sid: str, **kw: Any) -> codec.ServerInfo:
    base: dict[str, Any] = {
        "host": "host-a",
        "pid": 100,
        "server_id": sid,
        "concurrency": 8,
        "queues": {"critical": 6, "default": 3},
        "strict_priority": False,
        "status": "active",
        "start_time_ns": int(NOW - 600) * NS + 123_456_789,
        "active_worker_count": 0,
    }
    base.update(kw)
    return codec.ServerInfo(**base)


def worker_info(sid: str, task_id: str, started: float) -> codec.WorkerInfo:
    return codec.WorkerInfo(
        host="host-a",
        pid=100,
        server_id=sid,
        task_id=task_id,
        task_type="email:send",
        task_payload=b"{}",
        queue=Q,
        start_time_ns=int(started * NS),
        deadline_ns=int((started + 1800) * NS),
    )


async def test_servers_with_their_workers(insp: AsyncInspector, broker: Broker) -> None:
    assert await insp.servers() == []
    a = server_info("s-a", active_worker_count=2)
    b = server_info("s-b", host="host-b", pid=7, strict_priority=True, status="stopped")
    workers = [worker_info("s-a", "late", NOW - 5), worker_info("s-a", "early", NOW - 50)]
    state.check_replies(broker.run_many(state.write_server_state(a, workers, NOW, 10)))
    state.check_replies(broker.run_many(state.write_server_state(b, [], NOW, 10)))
    got = await insp.servers()
    assert got == [
        ServerInfo(
            id="s-a",
            host="host-a",
            pid=100,
            concurrency=8,
            queues={"critical": 6, "default": 3},
            strict_priority=False,
            started=NOW_DT - timedelta(seconds=600) + timedelta(microseconds=123_456),
            status="active",
            active_workers=[
                WorkerInfo("early", "email:send", b"{}", Q, dt(NOW - 50), dt(NOW - 50 + 1800)),
                WorkerInfo("late", "email:send", b"{}", Q, dt(NOW - 5), dt(NOW - 5 + 1800)),
            ],
        ),
        ServerInfo(
            id="s-b",
            host="host-b",
            pid=7,
            concurrency=8,
            queues={"critical": 6, "default": 3},
            strict_priority=True,
            started=NOW_DT - timedelta(seconds=600) + timedelta(microseconds=123_456),
            status="stopped",
            active_workers=[],
        ),
    ]


async def test_servers_skip_dead_and_missing_ones(
    insp: AsyncInspector, broker: Broker, r: redis.Redis, clock: FakeClock
) -> None:
    old = server_info("old")
    state.check_replies(broker.run_many(state.write_server_state(old, [], NOW - 100, 10)))
    gone = server_info("gone")
    state.check_replies(
        broker.run_many(state.write_server_state(gone, [worker_info("gone", "t", NOW)], NOW, 10))
    )
    r.delete(keys.server_info_key("host-a", 100, "gone"))  # registered, record lost
    assert await insp.servers() == []  # and the orphan worker is not shown either
    assert r.zscore(keys.ALL_SERVERS, keys.server_info_key("host-a", 100, "old")) is None


async def test_servers_written_by_go(
    insp: AsyncInspector, r: redis.Redis, clock: FakeClock
) -> None:
    fixture = cf.load_fixture("server_running_state")
    load_keyspace(r, fixture)
    clock.set(fixture["dumped_at"]["unix"])
    [srv] = await insp.servers()
    assert (srv.host, srv.pid, srv.concurrency, srv.status) == ("vm", 2653, 3, "active")
    assert srv.queues == {"critical": 6, "default": 3}
    assert srv.strict_priority is False
    assert srv.started == datetime(2026, 11, 28, 6, 16, 48, 231078, tzinfo=UTC)
    [w] = srv.active_workers
    assert (w.task_id, w.task_type, w.task_payload, w.queue) == (
        "t-slow",
        "slow:task",
        b'{"sleep":"long"}',
        "critical",
    )
    assert w.deadline == datetime(2026, 11, 28, 6, 26, 48, 232408, tzinfo=UTC)
    [active] = await insp.list_active_tasks("critical")
    assert (active.id, active.is_orphaned) == ("t-slow", False)


async def test_completed_tasks_written_by_go(
    insp: AsyncInspector, r: redis.Redis, clock: FakeClock
) -> None:
    fixture = cf.load_fixture("processed_with_retention_and_result")
    load_keyspace(r, fixture)
    clock.set(fixture["dumped_at"]["unix"])
    info = await insp.get_queue_info(Q)
    assert (info.completed, info.size, info.processed, info.processed_total) == (2, 2, 2, 2)
    done = await insp.list_completed_tasks(Q)
    assert [t.id for t in done] == ["t-ret-plain", "t-ret-result"]
    assert done[0].result == b""
    assert done[1].result != b""
    assert done[1].completed_at == dt(fixture["now"]["unix"])


# --------------------------------------------------------------------------- schedulers


def entry(eid: str, next_at: float, **kw: Any) -> codec.SchedulerEntry:
    base: dict[str, Any] = {
        "id": eid,
        "spec": "@every 30s",
        "task_type": "report",
        "task_payload": b"p",
        "enqueue_options": ['Queue("reports")', "MaxRetry(2)"],
        "next_enqueue_time_ns": int(next_at * NS),
        "prev_enqueue_time_ns": codec.GO_ZERO_TIME_NS,
    }
    base.update(kw)
    return codec.SchedulerEntry(**base)


async def test_scheduler_entries(insp: AsyncInspector, broker: Broker) -> None:
    assert await insp.scheduler_entries() == []
    e1 = entry("e1", NOW + 30, prev_enqueue_time_ns=int(NOW) * NS)
    e2 = entry("e2", NOW + 5, enqueue_options=[], spec="*/5 * * * *")
    e3 = entry("e3", NOW + 10)
    for sid, entries in (("sch-1", [e1, e2]), ("sch-2", [e3])):
        state.check_replies(broker.run_many(state.write_scheduler_entries(sid, entries, NOW, 20)))
    state.check_replies(
        broker.run_many(state.write_scheduler_entries("dead", [entry("e4", NOW)], NOW - 60, 20))
    )
    got = await insp.scheduler_entries()
    assert [e.id for e in got] == ["e2", "e3", "e1"]  # next to enqueue first
    assert got[2] == SchedulerEntry(
        id="e1",
        spec="@every 30s",
        task_type="report",
        task_payload=b"p",
        options=Options(queue="reports", max_retry=2),
        raw_options=('Queue("reports")', "MaxRetry(2)"),
        next_enqueue_at=dt(NOW + 30),
        prev_enqueue_at=NOW_DT,
    )
    assert got[1].prev_enqueue_at is None  # Go's zero time: never enqueued
    assert got[0].options == Options()
    task = got[2].task
    assert (task.type, task.payload) == ("report", b"p")


async def test_scheduler_entries_written_by_go(
    insp: AsyncInspector, r: redis.Redis, clock: FakeClock
) -> None:
    fixture = cf.load_fixture("scheduler_entries")
    load_keyspace(r, fixture)
    clock.set(fixture["dumped_at"]["unix"])
    every, cron = await insp.scheduler_entries()  # @every 2s comes due first
    registered = {e["cronspec"]: e for e in fixture["operations"][1]["entries"]}
    assert (every.spec, every.id) == ("@every 2s", registered["@every 2s"]["entry_id"])
    assert (every.task_type, every.task_payload, every.options) == (
        "metrics:collect",
        b"",
        Options(),
    )
    assert every.prev_enqueue_at is not None
    assert (cron.spec, cron.id) == ("*/5 * * * *", registered["*/5 * * * *"]["entry_id"])
    assert cron.raw_options == ('Queue("cron")', "MaxRetry(3)", "Timeout(1m30s)")
    assert cron.options == Options(queue="cron", max_retry=3, timeout=timedelta(seconds=90))
    assert cron.prev_enqueue_at is None
    assert cron.next_enqueue_at == datetime(2026, 11, 28, 6, 20, tzinfo=UTC)

    events = await insp.list_scheduler_enqueue_events(every.id)
    assert len(events) == 2
    assert events[0].enqueued_at is not None and events[1].enqueued_at is not None
    assert events[0].enqueued_at > events[1].enqueued_at  # newest first
    pending = {t.id for t in await insp.list_pending_tasks(Q)}
    assert {e.task_id for e in events} == pending
    assert await insp.list_scheduler_enqueue_events(cron.id) == []


async def test_scheduler_enqueue_events_pages_newest_first(
    insp: AsyncInspector, broker: Broker
) -> None:
    for i in range(5):
        ev = codec.SchedulerEnqueueEvent(f"t{i}", int(NOW + i) * NS)
        broker.run(state.record_scheduler_enqueue_event("e1", ev))
    page1 = await insp.list_scheduler_enqueue_events("e1", page_size=2)
    assert page1 == [
        SchedulerEnqueueEvent("t4", dt(NOW + 4)),
        SchedulerEnqueueEvent("t3", dt(NOW + 3)),
    ]
    page3 = await insp.list_scheduler_enqueue_events("e1", page_size=2, page=3)
    assert [e.task_id for e in page3] == ["t0"]
    assert len(await insp.list_scheduler_enqueue_events("e1")) == 5
    with pytest.raises(ValueError, match="page numbers start at 1"):
        await insp.list_scheduler_enqueue_events("e1", page=0)


# --------------------------------------------------------------------------- cluster


@pytest.mark.single_node("checks the error on a plain Redis")
async def test_cluster_methods_on_a_plain_redis(insp: AsyncInspector) -> None:
    with pytest.raises(BrokerError, match="is not a Redis Cluster"):
        await insp.cluster_key_slot(Q)
    with pytest.raises(BrokerError, match="is not a Redis Cluster"):
        await insp.cluster_nodes(Q)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with slots.cluster_node(tmp_path_factory.mktemp("inspector-cluster")) as url:
            yield url
    except RuntimeError as exc:
        if __import__("os").environ.get("CI") == "true":
            raise
        pytest.skip(f"no redis-server for a cluster node: {exc}")


@pytest.mark.single_node("runs its own one-node cluster (tests/ha checks three masters)")
async def test_cluster_key_slot_and_nodes(cluster_url: str) -> None:
    node = redis.Redis.from_url(cluster_url)
    node_id = node.execute_command("CLUSTER", "MYID").decode()
    port = node.connection_pool.connection_kwargs["port"]
    node.close()
    async with AsyncInspector(cluster_url) as i:
        for q in ("default", "critical", "q:with:colons"):
            slot = await i.cluster_key_slot(q)
            assert slot == key_slot(keys.pending_key(q).encode())
            assert await i.cluster_nodes(q) == [ClusterNode(node_id, f"127.0.0.1:{port}")]


# --------------------------------------------------------------------------- sync twin


def test_sync_inspector(sinsp: Inspector, client: pyasynq.Client, r: redis.Redis) -> None:
    for i in range(1500):
        client.enqueue(Task("t"), task_id=f"t{i:04d}")
    client.enqueue(Task("t"), queue="other", process_in=60, task_id="s1")
    assert sinsp.queues() == [Q, "other"]
    info = sinsp.get_queue_info(Q)
    assert (info.pending, info.size, info.latency) == (1500, 1500, timedelta(0))
    assert [t.id for t in sinsp.list_pending_tasks(Q, page_size=2, page=2)] == ["t0002", "t0003"]
    assert sinsp.get_task_info("other", "s1").next_process_at == dt(NOW + 60)
    sinsp.pause_queue(Q)
    with pytest.raises(QueueStateError):
        sinsp.pause_queue(Q)
    seen: list[int] = []
    assert sinsp.archive_all_pending_tasks(Q, on_progress=seen.append) == 1500
    assert seen == [1000, 1500]
    assert sinsp.history(Q, 1) == [DailyStats(Q, date(2023, 11, 14), 0, 0)]
    with pytest.raises(QueueNotEmptyError):
        sinsp.delete_queue(Q)
    assert sinsp.delete_all_archived_tasks(Q) == 1500
    sinsp.delete_queue(Q)
    with pytest.raises(QueueNotFoundError):
        sinsp.list_archived_tasks(Q)
    with pytest.raises(TaskNotFoundError):
        sinsp.delete_task("other", "nope")
    sinsp.run_task("other", "s1")
    assert sinsp.servers() == []
    assert sinsp.scheduler_entries() == []


async def test_async_client_and_inspector_together(
    redis_url: str, r: redis.Redis, clock: FakeClock
) -> None:
    async with AsyncClient(redis_url, clock=clock) as c, AsyncInspector(redis_url) as i:
        info = await c.enqueue(Task("t", b"x"), task_id="a1", retention=60)
        got = await i.get_task_info(Q, "a1")
        assert (got.id, got.payload, got.retention) == (info.id, b"x", timedelta(seconds=60))


# --------------------------------------------------------------------------- option strings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0),
        ("0", 0),
        ("1m30s", 90),
        ("30m0s", 1800),
        ("1h0m0s", 3600),
        ("24h0m0s", 86400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("1h2m3.25s", 3723.25),
        ("-2m", -120),
        ("3µs", 3e-6),
        ("2000ns", 2e-6),
    ],
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "1h 2m", "h1", "--1s", "1.2.3s"])
def test_parse_go_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"cron"', "cron"),
        ('"a\\"b\\\\c"', 'a"b\\c'),
        ('"tab\\there\\n"', "tab\there\n"),
        ('"\\x41\\101\\u00e9\\U0001F600"', "AAé😀"),
        ('"élevé:q"', "élevé:q"),
        ("`raw \\n`", "raw \\n"),
    ],
)
def test_go_unquote(text: str, value: str) -> None:
    assert go_unquote(text) == value


@pytest.mark.parametrize("text", ["cron", '"open', '"a"b"', '"bad\\q"', '"trailing\\"'])
def test_go_unquote_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        go_unquote(text)


def test_parse_go_unix_date() -> None:
    assert parse_go_unix_date("Fri Jan  1 00:00:00 UTC 2100") == datetime(2100, 1, 1, tzinfo=UTC)
    assert parse_go_unix_date("Tue Nov 14 22:13:20 UTC 2023") == NOW_DT
    assert parse_go_unix_date("Tue Nov 14 23:13:20 +0100 2023") == NOW_DT
    assert parse_go_unix_date("Tue Nov 14 22:13:20.5 UTC 2023") == NOW_DT + timedelta(
        milliseconds=500
    )
    for bad in ("2023-11-14T22:13:20Z", "Tue Foo 14 22:13:20 UTC 2023", "Tue Nov 14 UTC 2023"):
        with pytest.raises(ValueError):
            parse_go_unix_date(bad)


def test_parse_option_strings() -> None:
    got = parse_option_strings(
        [
            'Queue("critical")',
            "MaxRetry(10)",
            "Timeout(2m0s)",
            "Deadline(Fri Jan  1 00:00:00 UTC 2100)",
            "Unique(1h0m0s)",
            "Retention(24h0m0s)",
            'TaskID("t-1")',
            'Group("g")',
            'Header(["trace-id","abc)123"])',
            'Header(["tenant","globex"])',
            "ProcessIn(10s)",
        ]
    )
    assert got == Options(
        queue="critical",
        max_retry=10,
        timeout=timedelta(minutes=2),
        deadline=datetime(2100, 1, 1, tzinfo=UTC),
        unique=timedelta(hours=1),
        retention=timedelta(hours=24),
        task_id="t-1",
        group="g",
        headers={"trace-id": "abc)123", "tenant": "globex"},
        process_in=timedelta(seconds=10),
    )


def test_parse_option_strings_skips_what_it_cannot_read() -> None:
    got = parse_option_strings(
        [
            "Queue(cron)",  # unquoted
            "MaxRetry(three)",
            "MaxRetry( 3)",
            "Timeout(500ms)",  # asynq stores whole seconds: refused at enqueue too
            "Unique(0s)",
            "Frobnicate(1)",
            "Header([1,2])",
            "Retention(1h",
            "nonsense",
            "MaxRetry(4)",
        ]
    )
    assert got == Options(max_retry=4)


def test_parse_option_strings_last_schedule_wins() -> None:
    at = parse_option_strings(["ProcessIn(1m0s)", "ProcessAt(Tue Nov 14 22:13:20 UTC 2023)"])
    assert at == Options(process_at=NOW_DT)
    after = parse_option_strings(["ProcessAt(Tue Nov 14 22:13:20 UTC 2023)", "ProcessIn(5s)"])
    assert after == Options(process_in=timedelta(seconds=5))
    assert parse_option_strings(["MaxRetry(1)", "MaxRetry(2)"]) == Options(max_retry=2)


def _enqueue_ops_with_option_strings() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in cf.fixture_names():
        for op in cf.load_fixture(name)["operations"]:
            if op["op"] == "enqueue" and op.get("option_strings"):
                out.append((name, op))
    return out


def test_parse_option_strings_written_by_go() -> None:
    """Every Go ``Option.String()`` in the fixtures parses back to the option values the
    generator recorded."""
    cases = _enqueue_ops_with_option_strings()
    assert cases
    fields = {
        "queue": "queue",
        "max_retry": "max_retry",
        "task_id": "task_id",
        "group": "group",
        "header_options": "headers",
    }
    seconds = {
        "timeout_s": "timeout",
        "retention_s": "retention",
        "unique_ttl_s": "unique",
        "process_in_s": "process_in",
    }
    for name, op in cases:
        got = parse_option_strings(op["option_strings"])
        want = op["options"]
        where = f"{name}: {op['option_strings']}"
        if "max_retry" in want:  # MaxRetry(n) clamps a negative n to 0 in Go
            assert got.max_retry == max(0, want["max_retry"]), where
        for src, attr in fields.items():
            if src in want and src != "max_retry":
                assert getattr(got, attr) == want[src], where
        for src, attr in seconds.items():
            if src in want:
                assert getattr(got, attr) == timedelta(seconds=want[src]), where
        for src, attr in (("deadline_unix", "deadline"), ("process_at_unix", "process_at")):
            if src in want and getattr(got, attr) is not None:
                assert getattr(got, attr) == dt(want[src]), where


# --------------------------------------------------------------------------- misc


def test_repr_names_the_server(redis_url: str) -> None:
    if targets.CLUSTER:
        want = {f"{h}:{p}" for h, p in targets.cluster_options(redis_url).nodes}
        with Inspector(redis_url) as i:
            prefix, _, rest = repr(i).partition("<Broker cluster ")
            assert prefix == "<Inspector " and rest.endswith(">>")
            assert set(rest.removesuffix(">>").split(",")) == want
        return
    kw = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    with Inspector(redis_url) as i:
        assert repr(i) == f"<Inspector <Broker {kw['host']}:{kw['port']}/{kw.get('db', 0)}>>"


def test_public_types_are_frozen() -> None:
    info = WorkerInfo("t", "type", b"", Q, None, None)
    with pytest.raises(AttributeError):
        info.task_id = "x"  # type: ignore[misc]
