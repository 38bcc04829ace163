"""The scheduler engine, driven step by step with a FakeClock against a real Redis:
what it writes (as Go writes it), hooks, unregister, and one enqueue per tick across
schedulers."""

from __future__ import annotations

import os
import socket
from typing import Any

import conformance as cf
import pytest
import redis

from pyasynq import Task, TaskIDConflictError
from pyasynq._rdb import codec, keys
from pyasynq._rdb.codec import GO_ZERO_TIME_NS
from pyasynq._scheduler.entries import tick_task_id
from pyasynq.options import Options
from pyasynq.task import TaskInfo

from .conftest import FIXTURE_START, Harness

NS = 1_000_000_000
T0 = int(FIXTURE_START)  # 1795846614


def entries_of(r: redis.Redis, scheduler_id: str) -> list[codec.SchedulerEntry]:
    key = keys.scheduler_entries_key(scheduler_id)
    return [codec.decode_scheduler_entry(x) for x in r.lrange(key, 0, -1)]


def history(r: redis.Redis, entry_id: str) -> list[tuple[codec.SchedulerEnqueueEvent, float]]:
    items = r.zrange(keys.scheduler_history_key(entry_id), 0, -1, withscores=True)
    return [(codec.decode_scheduler_event(m), s) for m, s in items]


def pending(r: redis.Redis, queue: str = "default") -> list[str]:
    return [x.decode() for x in r.lrange(keys.pending_key(queue), 0, -1)]


def go_keys(r: redis.Redis) -> list[dict[str, Any]]:
    """The keyspace without pyasynq's own scheduler keys (tick markers, anchors)."""
    return [k for k in cf.dump_keyspace(r) if ":pyasynq:" not in k["key"]]


# --------------------------------------------------------------------------- as Go writes


async def test_keyspace_matches_go_scheduler_fixture(harness: Harness, r: redis.Redis) -> None:
    """Replays the scheduler_entries fixture: same entries, TTLs, history and tasks."""
    fixture = cf.load_fixture("scheduler_entries")
    start = fixture["now"]["unix_ns"] / NS
    d = harness.make(start=start, heartbeat_interval=3)
    d.register("@every 2s", Task("metrics:collect"))  # nil payload, no options
    d.register(
        "*/5 * * * *",
        Task("report:rollup", b'{"window":"5m"}'),
        queue="cron",
        max_retry=3,
        timeout=90,
    )
    await d.at(start)  # entries scheduled, first heartbeat
    await d.at(T0 + 2.0016)  # @every fires
    await d.at(start + 3)  # heartbeat: prev = T0+2, next = T0+4
    await d.at(T0 + 4.0017)  # @every fires again; dump as Go did right after
    ours = cf.Normaliser.for_now(start, host=socket.gethostname(), pid=os.getpid())
    problems = cf.compare_keys(
        fixture["keys"], cf.Normaliser.for_fixture(fixture), go_keys(r), ours
    )
    assert problems == []


async def test_entries_record(harness: Harness, r: redis.Redis) -> None:
    d = harness.make(heartbeat_interval=4)
    cron_id = d.register("*/5 * * * *", Task("a"), queue="cron", max_retry=3, timeout=90)
    every_id = d.register("@every 2s", Task("b", b"x"))
    await d.at(FIXTURE_START)
    key = keys.scheduler_entries_key(d.scheduler.id)
    assert d.scheduler.id.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert r.ttl(key) == 8  # 2 x heartbeat
    assert r.zrange(keys.ALL_SCHEDULERS, 0, -1, withscores=True) == [(key.encode(), T0 + 8)]
    cron, every = entries_of(r, d.scheduler.id)  # head first: the later next run
    assert cron == codec.SchedulerEntry(
        id=cron_id,
        spec="*/5 * * * *",
        task_type="a",
        task_payload=b"",
        enqueue_options=['Queue("cron")', "MaxRetry(3)", "Timeout(1m30s)"],
        next_enqueue_time_ns=1795846800 * NS,
        prev_enqueue_time_ns=GO_ZERO_TIME_NS,  # Go's zero time: never ran
    )
    assert (every.id, every.task_payload, every.enqueue_options) == (every_id, b"x", [])
    assert (every.next_enqueue_time_ns, every.prev_enqueue_time_ns) == (
        (T0 + 2) * NS,
        GO_ZERO_TIME_NS,
    )
    # The next heartbeat is due one interval later, and rewrites the list.
    # step() says how long until something is due: the @every tick at T0 + 4.
    assert await d.at(T0 + 2.5) == pytest.approx(1.5)
    await d.at(FIXTURE_START + 4)  # fires the tick at T0 + 4, then beats
    cron, every = entries_of(r, d.scheduler.id)
    assert every.prev_enqueue_time_ns == (T0 + 4) * NS
    assert every.next_enqueue_time_ns == (T0 + 6) * NS
    info = {e.id: e for e in d.scheduler.entries()}
    assert (
        info[every_id].prev_enqueue_at is not None
        and info[every_id].prev_enqueue_at.timestamp() == T0 + 4
    )
    assert info[cron_id].prev_enqueue_at is None


async def test_task_options_show_in_the_entry(harness: Harness, r: redis.Redis) -> None:
    d = harness.make()
    task = Task("t", queue="low", max_retry=1, retention=60)
    d.register("@hourly", task, max_retry=5, headers={"k": "v"})
    await d.at(FIXTURE_START)
    (e,) = entries_of(r, d.scheduler.id)
    # The task's own defaults not overridden, then the call's options.
    assert e.enqueue_options == [
        'Queue("low")',
        "Retention(1m0s)",
        "MaxRetry(5)",
        'Header(["k","v"])',
    ]


async def test_history_written_as_go(harness: Harness, r: redis.Redis) -> None:
    d = harness.make()
    eid = d.register("@every 1s", Task("t"), queue="q")
    await d.at(FIXTURE_START)
    await d.at(T0 + 1.25)
    ((event, score),) = history(r, eid)
    (tid,) = pending(r, "q")
    now_ns = d.clock.now_ns()
    assert event == codec.SchedulerEnqueueEvent(task_id=tid, enqueue_time_ns=now_ns)
    assert score == T0 + 1  # enqueue time, whole seconds
    assert r.ttl(keys.scheduler_history_key(eid)) == -1  # no TTL, as Go
    fields = r.hgetall(keys.task_key("q", tid))
    assert fields[b"state"] == b"pending"
    assert int(fields[b"pending_since"]) == now_ns
    msg = codec.decode_task(fields[b"msg"])
    assert (msg.type, msg.queue, msg.id, msg.retry, msg.timeout) == ("t", "q", tid, 25, 1800)
    assert tid == tick_task_id(d.scheduler._table.snapshot()[0].identity, T0 + 1)
    assert r.smembers(keys.ALL_QUEUES) == {b"q"}


async def test_history_is_capped_at_1000(harness: Harness, r: redis.Redis) -> None:
    d = harness.make()
    eid = d.register("@every 1s", Task("t"))
    hkey = keys.scheduler_history_key(eid)
    r.zadd(hkey, {f"old-{i}".encode(): i for i in range(1000)})
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    assert r.zcard(hkey) == 1000
    assert r.zscore(hkey, b"old-0") is None  # the oldest went
    assert r.zrange(hkey, -1, -1, withscores=True)[0][1] == T0 + 1


async def test_shutdown_removes_entries_and_history(harness: Harness, r: redis.Redis) -> None:
    d = harness.make()
    a = d.register("@every 1s", Task("a"))
    b = d.register("@every 1s", Task("b"))
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    assert r.exists(keys.scheduler_history_key(a), keys.scheduler_history_key(b)) == 2
    await d.engine.close()
    assert r.exists(keys.scheduler_history_key(a), keys.scheduler_history_key(b)) == 0
    assert r.exists(keys.scheduler_entries_key(d.scheduler.id)) == 0
    assert r.zcard(keys.ALL_SCHEDULERS) == 0
    assert len(pending(r)) == 2  # the tasks stay


# --------------------------------------------------------------------------- hooks


async def test_hooks_sync_and_async(harness: Harness, r: redis.Redis) -> None:
    calls: list[Any] = []

    def pre(task: Task, options: Options) -> None:
        calls.append(("pre", task.type, options.queue))

    async def post(info: TaskInfo | None, error: BaseException | None) -> None:
        calls.append(("post", info.id if info else None, error))

    d = harness.make(pre_enqueue=pre, post_enqueue=post)
    d.register("@every 1s", Task("t"), queue="q")
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    (tid,) = pending(r, "q")
    assert calls == [("pre", "t", "q"), ("post", tid, None)]


async def test_enqueue_error_reaches_post_hook_and_error_handler(
    harness: Harness, r: redis.Redis
) -> None:
    posts: list[Any] = []
    errors: list[Any] = []
    d = harness.make(
        post_enqueue=lambda info, err: posts.append((info, err)),
        enqueue_error_handler=lambda task, opts, err: errors.append((task.type, opts.task_id, err)),
    )
    # An explicit task id is kept, as Go: the second tick conflicts with the first task.
    eid = d.register("@every 1s", Task("t"), task_id="fixed")
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    await d.at(T0 + 2)
    assert pending(r) == ["fixed"]
    assert posts[0][0].id == "fixed" and posts[0][1] is None
    assert posts[1][0] is None and isinstance(posts[1][1], TaskIDConflictError)
    assert [(t, i) for t, i, _ in errors] == [("t", "fixed")]
    assert isinstance(errors[0][2], TaskIDConflictError)
    assert len(history(r, eid)) == 1  # only successes are recorded


async def test_a_failing_hook_does_not_stop_the_enqueue(harness: Harness, r: redis.Redis) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("hook bug")

    d = harness.make(pre_enqueue=boom, post_enqueue=boom)
    eid = d.register("@every 1s", Task("t"))
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    assert len(pending(r)) == 1
    assert len(history(r, eid)) == 1


# --------------------------------------------------------------------------- unregister


async def test_unregister(harness: Harness, r: redis.Redis) -> None:
    d = harness.make()
    keep = d.register("@every 1s", Task("keep"))
    drop = d.register("@every 1s", Task("drop"))
    await d.at(FIXTURE_START)
    await d.at(T0 + 1)
    assert r.exists(keys.scheduler_history_key(drop)) == 1
    d.scheduler.unregister(drop)
    with pytest.raises(KeyError, match="no scheduler entry"):
        d.scheduler.unregister(drop)
    await d.at(T0 + 2)
    await d.at(FIXTURE_START + 3)  # heartbeat (and keep's third tick)
    assert [e.id for e in entries_of(r, d.scheduler.id)] == [keep]
    assert r.exists(keys.scheduler_history_key(drop)) == 0  # deleted with the entry
    types = [codec.decode_task(r.hget(keys.task_key("default", t), "msg")).type for t in pending(r)]
    assert sorted(types) == ["drop", "keep", "keep", "keep"]
    assert [e.id for e in d.scheduler.entries()] == [keep]


# --------------------------------------------------------------------------- replicas


async def test_a_pending_tick_wakes_idle_workers_once(harness: Harness, r: redis.Redis) -> None:
    woken = r.pubsub()
    woken.subscribe(keys.WAKE_CHANNEL)
    assert woken.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    replicas = [harness.make() for _ in range(2)]
    for d in replicas:
        d.register("@every 1s", Task("now", b"p"), queue="q")
        d.register("@every 1s", Task("later", b"p"), queue="q2", process_in=60)
    for t in (FIXTURE_START, T0 + 1, T0 + 2):
        for d in replicas:
            await d.at(t)
    wakes = []
    while (m := woken.get_message(timeout=0.5)) is not None:
        wakes.append(m["data"])
    woken.close()
    # One per enqueued pending tick (not per replica); a scheduled task wakes nobody.
    assert len(pending(r, "q")) == 2
    assert wakes == [b"q", b"q"]


async def test_replicas_enqueue_each_tick_once(harness: Harness, r: redis.Redis) -> None:
    posts: list[str] = []
    replicas = [harness.make(post_enqueue=lambda info, err, n=n: posts.append(n)) for n in range(3)]
    ids = [d.register("@every 1s", Task("t", b"p"), queue="q") for d in replicas]
    for t in (FIXTURE_START, T0 + 1, T0 + 2, T0 + 3):
        for d in replicas:
            await d.at(t)
    tids = pending(r, "q")
    assert len(tids) == 3 == len(set(tids))
    identity = replicas[0].scheduler._table.snapshot()[0].identity
    assert set(tids) == {tick_task_id(identity, T0 + k) for k in (1, 2, 3)}
    # History and post hooks only where the task was enqueued: here the first replica.
    assert [len(history(r, i)) for i in ids] == [3, 0, 0]
    assert posts == [0, 0, 0]
    # Every replica advanced its entry all the same.
    for d in replicas:
        assert d.scheduler.entries()[0].prev_enqueue_at.timestamp() == T0 + 3  # type: ignore[union-attr]


async def test_a_late_replica_does_not_enqueue_a_processed_tick(
    harness: Harness, r: redis.Redis
) -> None:
    a, b = harness.make(), harness.make()
    for d in (a, b):
        d.register("@every 10s", Task("t"))
        await d.at(FIXTURE_START)
    await a.at(T0 + 10)
    (tid,) = pending(r)
    r.delete(keys.task_key("default", tid), keys.pending_key("default"))  # processed
    await b.at(T0 + 10 + 300)  # 5 minutes late, still within the marker's life
    assert pending(r) == []
    marker = keys.scheduler_tick_key("default", a.scheduler._table.snapshot()[0].identity, T0 + 10)
    assert r.get(marker) == tid.encode()
    assert 590 <= r.ttl(marker) <= 600


async def test_a_tick_older_than_the_marker_is_skipped(harness: Harness, r: redis.Redis) -> None:
    d = harness.make(tick_marker_ttl=60)
    eid = d.register("@every 10s", Task("t"))
    await d.at(FIXTURE_START)
    await d.at(T0 + 10 + 61)
    assert pending(r) == []
    assert history(r, eid) == []
    await d.at(T0 + 80)  # the following tick runs normally
    assert len(pending(r)) == 1


async def test_replicas_with_an_explicit_task_id(harness: Harness, r: redis.Redis) -> None:
    errors: list[Any] = []
    a = harness.make(enqueue_error_handler=lambda *x: errors.append(x))
    b = harness.make(enqueue_error_handler=lambda *x: errors.append(x))
    for d in (a, b):
        d.register("@every 1s", Task("t"), task_id="only")
        await d.at(FIXTURE_START)
    await a.at(T0 + 1)
    await b.at(T0 + 1)
    assert pending(r) == ["only"]
    assert errors == []  # the second replica saw the tick's marker: no conflict reported


async def test_every_anchor_is_shared(harness: Harness, r: redis.Redis) -> None:
    """Schedulers started at different times fire an @every entry at the same instants:
    those of the first one (robfig's start + k x interval)."""
    a, b = harness.make(start=100.3), harness.make(start=102.7)
    a.register("@every 5s", Task("t"))
    b.register("@every 5s", Task("t"))
    await a.at(100.3)
    await b.at(102.7)
    assert a.scheduler.entries()[0].next_enqueue_at.timestamp() == 105  # type: ignore[union-attr]
    assert b.scheduler.entries()[0].next_enqueue_at.timestamp() == 105  # type: ignore[union-attr]
    for t in (105.01, 110.02):
        await b.at(t)
        await a.at(t)
    assert len(pending(r)) == 2
    # Alone (no anchor stored), a scheduler keeps robfig's start + interval.
    r.flushdb()
    c = harness.make(start=200.6)
    c.register("@every 5s", Task("t"))
    await c.at(200.6)
    assert c.scheduler.entries()[0].next_enqueue_at.timestamp() == 205  # type: ignore[union-attr]


async def test_cron_entries_of_replicas_share_fire_times(harness: Harness, r: redis.Redis) -> None:
    a, b = harness.make(location="Europe/Paris"), harness.make(location="Europe/Paris")
    for d in (a, b):
        d.register("*/5 * * * *", Task("t"))
        await d.at(FIXTURE_START)
    await a.at(1795846800.4)
    await b.at(1795846801.9)  # a little later
    assert len(pending(r)) == 1


async def test_a_changed_anchor_is_followed_at_the_next_heartbeat(
    harness: Harness, r: redis.Redis
) -> None:
    a = harness.make(start=100.3, heartbeat_interval=3)
    a.register("@every 5s", Task("t"))
    await a.at(100.3)
    (entry,) = a.scheduler._table.snapshot()
    key = keys.scheduler_anchor_key("default", entry.identity)
    assert r.get(key) == b"100"
    r.set(key, 102)  # e.g. Redis lost the key and another scheduler stored its start
    await a.at(103.4)  # heartbeat
    assert a.scheduler.entries()[0].next_enqueue_at.timestamp() == 107  # type: ignore[union-attr]
    assert 0 < r.ttl(key) <= 60
