"""Server/scheduler state (wire spec 3.19) and pause/unpause (3.17)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import conformance as cf
import pytest
import redis

from pyasynq import Task
from pyasynq._rdb import codec, keys
from pyasynq._rdb.codec import (
    GO_ZERO_TIME_NS,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    WorkerInfo,
)
from pyasynq._rdb.ops import Call, Command, state
from pyasynq._rdb.ops import processing as p
from pyasynq._rdb.ops.enqueue import enqueue_result, prepare
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, QueueStateError
from pyasynq.options import Options

from .helpers import all_keys, list_ids, zset_items

NS = 1_000_000_000
SID = "7a4e8846-c901-4945-8020-c3d309b9e776"


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def now() -> float:
    return float(int(time.time()))


def server_info(now: float, **kw: Any) -> ServerInfo:
    base: dict[str, Any] = {
        "host": "h",
        "pid": 42,
        "server_id": SID,
        "concurrency": 4,
        "queues": {"default": 1},
        "status": "active",
        "start_time_ns": int(now) * NS,
    }
    base.update(kw)
    return ServerInfo(**base)


def worker(task_id: str, now: float) -> WorkerInfo:
    return WorkerInfo(
        host="h",
        pid=42,
        server_id=SID,
        task_id=task_id,
        task_type="t",
        task_payload=b"p",
        queue="default",
        start_time_ns=int(now) * NS,
        deadline_ns=(int(now) + 60) * NS,
    )


def run_all(b: Broker, ops: list[Any]) -> None:
    state.check_replies(b.run_many(ops))


# --------------------------------------------------------------------------- servers


def test_write_server_state(b, r, now):
    info = server_info(now, active_worker_count=2)
    ops = state.write_server_state(info, [worker("t1", now), worker("t2", now)], now, 10)
    skey, wkey = keys.server_info_key("h", 42, SID), keys.workers_key("h", 42, SID)
    assert ops[:2] == [
        Command(("ZADD", keys.ALL_SERVERS, int(now) + 10, skey)),
        Command(("ZADD", keys.ALL_WORKERS, int(now) + 10, wkey)),
    ]

    run_all(b, ops)

    assert zset_items(r, keys.ALL_SERVERS) == [(skey, now + 10)]
    assert zset_items(r, keys.ALL_WORKERS) == [(wkey, now + 10)]
    assert codec.decode_server_info(r.get(skey)) == info
    assert 9 <= r.ttl(skey) <= 10
    workers = {k.decode(): codec.decode_worker_info(v) for k, v in r.hgetall(wkey).items()}
    assert workers == {"t1": worker("t1", now), "t2": worker("t2", now)}
    assert 9 <= r.ttl(wkey) <= 10


def test_write_server_state_replaces_the_workers(b, r, now):
    run_all(b, state.write_server_state(server_info(now), [worker("t1", now)], now, 10))
    run_all(b, state.write_server_state(server_info(now), [worker("t2", now)], now + 5, 10))
    wkey = keys.workers_key("h", 42, SID)
    assert [k.decode() for k in r.hkeys(wkey)] == ["t2"]
    assert zset_items(r, keys.ALL_WORKERS) == [(wkey, now + 15)]
    run_all(b, state.write_server_state(server_info(now), [], now + 10, 10))
    assert r.exists(wkey) == 0  # idle: no workers hash at all, as in Go
    assert r.exists(keys.server_info_key("h", 42, SID)) == 1


def test_write_server_state_needs_a_ttl(now):
    with pytest.raises(ValueError):
        state.write_server_state(server_info(now), [], now, 0)


def test_clear_server_state(b, r, now):
    run_all(b, state.write_server_state(server_info(now), [worker("t1", now)], now, 10))
    r.zadd(keys.ALL_SERVERS, {"asynq:servers:{other}": now + 10})
    run_all(b, state.clear_server_state("h", 42, SID))
    assert zset_items(r, keys.ALL_SERVERS) == [("asynq:servers:{other}", now + 10)]
    assert all_keys(r) == [keys.ALL_SERVERS]


def test_check_replies_raises_the_first_error():
    err = BrokerError("x")
    with pytest.raises(BrokerError):
        state.check_replies([1, err, 1])
    state.check_replies([1, 0, None])


# --------------------------------------------------------------------------- schedulers


def entry(eid: str, now: float) -> SchedulerEntry:
    return SchedulerEntry(
        id=eid,
        spec="@every 2s",
        task_type="t",
        enqueue_options=['Queue("q")'],
        next_enqueue_time_ns=(int(now) + 2) * NS,
        prev_enqueue_time_ns=GO_ZERO_TIME_NS,
    )


def test_write_scheduler_entries(b, r, now):
    sid = "h:42:sched"
    run_all(b, state.write_scheduler_entries(sid, [entry("e1", now), entry("e2", now)], now, 20))
    key = keys.scheduler_entries_key(sid)
    assert zset_items(r, keys.ALL_SCHEDULERS) == [(key, now + 20)]
    stored = [codec.decode_scheduler_entry(x) for x in r.lrange(key, 0, -1)]
    assert stored == [entry("e2", now), entry("e1", now)]  # each LPUSHed
    assert 19 <= r.ttl(key) <= 20
    run_all(b, state.write_scheduler_entries(sid, [entry("e3", now)], now + 10, 20))
    assert [codec.decode_scheduler_entry(x).id for x in r.lrange(key, 0, -1)] == ["e3"]
    run_all(b, state.write_scheduler_entries(sid, [], now + 20, 20))
    assert r.exists(key) == 0


def test_clear_scheduler_entries(b, r, now):
    run_all(b, state.write_scheduler_entries("s1", [entry("e1", now)], now, 20))
    run_all(b, state.clear_scheduler_entries("s1"))
    assert all_keys(r) == []


def test_record_scheduler_enqueue_event(b, r, now):
    ev = SchedulerEnqueueEvent(task_id="t1", enqueue_time_ns=int(now) * NS + 5)
    assert b.run(state.record_scheduler_enqueue_event("e1", ev)) == 1
    hkey = keys.scheduler_history_key("e1")
    [(member, score)] = r.zrange(hkey, 0, -1, withscores=True)
    assert codec.decode_scheduler_event(member) == ev
    assert score == now
    assert r.ttl(hkey) == -1


def test_scheduler_history_is_capped(b, r, now):
    hkey = keys.scheduler_history_key("e1")
    r.zadd(hkey, {f"old{i}": now - 1000 + i for i in range(1000)})
    ev = SchedulerEnqueueEvent(task_id="new", enqueue_time_ns=int(now) * NS)
    b.run(state.record_scheduler_enqueue_event("e1", ev))
    assert r.zcard(hkey) == 1000
    assert r.zscore(hkey, "old0") is None and r.zscore(hkey, "old1") is not None
    for i, tid in enumerate("abcd", start=1):
        ev = SchedulerEnqueueEvent(tid, i * NS)
        b.run(state.record_scheduler_enqueue_event("e2", ev, cap=3))
    hkey2 = keys.scheduler_history_key("e2")
    ids = [codec.decode_scheduler_event(m).task_id for m in r.zrange(hkey2, 0, -1)]
    assert ids == ["b", "c", "d"]  # the oldest made room


def test_record_scheduler_enqueue_event_validates():
    with pytest.raises(ValueError):
        state.record_scheduler_enqueue_event("e1", SchedulerEnqueueEvent("t"))
    with pytest.raises(ValueError):
        state.record_scheduler_enqueue_event("e1", SchedulerEnqueueEvent("t", 1), cap=0)


def test_delete_scheduler_history(b, r, now):
    b.run(state.record_scheduler_enqueue_event("e1", SchedulerEnqueueEvent("t", NS)))
    assert b.run(state.delete_scheduler_history("e1")) == 1
    assert all_keys(r) == []


# --------------------------------------------------------------------------- readers


def test_list_registry_returns_live_members_and_drops_dead_ones(b, r, now):
    r.zadd(
        keys.ALL_SERVERS,
        {"dead": now - 1, "dying": now - 0.5, "edge": now, "live": now + 10},
    )
    got = state.list_registry_result(b.run(state.list_registry(keys.ALL_SERVERS, now)))
    assert got == ["edge", "live"]
    # <= now - 1 is removed; the sliver between now - 1 and now is left, as in Go.
    assert [m for m, _ in zset_items(r, keys.ALL_SERVERS)] == ["dying", "edge", "live"]


def test_list_registry_only_reads_registries():
    with pytest.raises(ValueError):
        state.list_registry("asynq:queues", 0)
    assert isinstance(state.list_registry(keys.ALL_SCHEDULERS, 0), Call)


def test_readers_decode_and_skip_missing_or_bad_records(b, r, now):
    info = server_info(now)
    run_all(b, state.write_server_state(info, [worker("t1", now)], now, 10))
    skey, wkey = keys.server_info_key("h", 42, SID), keys.workers_key("h", 42, SID)
    assert state.server_info_result(b.run(state.get_server_info(skey))) == info
    assert state.server_info_result(b.run(state.get_server_info("asynq:servers:{x}"))) is None
    r.set("asynq:servers:{bad}", b"\xff\xff")
    assert state.server_info_result(b.run(state.get_server_info("asynq:servers:{bad}"))) is None

    r.hset(wkey, "bad", b"\xff\xff")
    assert state.workers_result(b.run(state.get_workers(wkey))) == [worker("t1", now)]
    assert state.workers_result(b.run(state.get_workers("asynq:workers:{gone}"))) == []

    run_all(b, state.write_scheduler_entries("s1", [entry("e1", now)], now, 20))
    ekey = keys.scheduler_entries_key("s1")
    r.rpush(ekey, b"\xff\xff")
    assert state.scheduler_entries_result(b.run(state.get_scheduler_entries(ekey))) == [
        entry("e1", now)
    ]
    assert state.scheduler_entries_result(b.run(state.get_scheduler_entries("nope"))) == []


def test_list_registry_result_rejects_errors():
    with pytest.raises(BrokerError):
        state.list_registry_result(BrokerError("x"))
    with pytest.raises(BrokerError):
        state.list_registry_result(b"x")


# --------------------------------------------------------------------------- pause


def test_pause_and_unpause(b, r, now):
    state.pause_result("q", b.run(state.pause("q", now)))
    assert r.get(keys.paused_key("q")) == str(int(now)).encode()
    assert r.ttl(keys.paused_key("q")) == -1
    with pytest.raises(QueueStateError, match=r'^queue "q" is already paused$'):
        state.pause_result("q", b.run(state.pause("q", now + 5)))
    assert r.get(keys.paused_key("q")) == str(int(now)).encode()  # first pause kept

    state.unpause_result("q", b.run(state.unpause("q")))
    assert r.exists(keys.paused_key("q")) == 0
    with pytest.raises(QueueStateError, match=r'^queue "q" is not paused$'):
        state.unpause_result("q", b.run(state.unpause("q")))


def test_pause_results_pass_broker_errors_through():
    with pytest.raises(BrokerError):
        state.pause_result("q", BrokerError("x"))
    with pytest.raises(BrokerError):
        state.unpause_result("q", BrokerError("x"))


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("q", '"q"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("tab\there", '"tab\\there"'),
        ("\x01", '"\\x01"'),
        ("ünïcode:队列", '"ünïcode:队列"'),
        ("\u200b", '"\\u200b"'),
    ],
)
def test_go_quote(name, quoted):
    assert state.go_quote(name) == quoted


# --------------------------------------------------------------------------- Go fixtures


def need_fixture(name: str) -> dict[str, Any]:
    if not (cf.fixtures_dir() / f"{name}.json").is_file():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"conformance fixtures not found at {cf.fixtures_dir()}")
        pytest.skip(f"no {name} fixture")
    return cf.load_fixture(name)


class Shift:
    """Moves the fixture's times onto our clock: same offsets from "now"."""

    def __init__(self, fixture: Mapping[str, Any], now: float) -> None:
        self.delta = int(now) * NS - fixture["now"]["unix_ns"]

    def ns(self, ts: int | None) -> int | None:
        if ts is None or abs(ts + self.delta - int(time.time()) * NS) > 400 * 24 * 3600 * NS:
            return ts  # absent, Go zero time, or a fixed date: unchanged
        return ts + self.delta

    def seconds(self, value: float) -> float:
        return value + self.delta / NS


def value_of(fixture: Mapping[str, Any], key_prefix: str) -> dict[str, Any]:
    """The one fixture key named ``key_prefix`` exactly, or else starting with it."""
    exact = [k for k in fixture["keys"] if k["key"] == key_prefix]
    [entry] = exact or [k for k in fixture["keys"] if k["key"].startswith(key_prefix)]
    return entry


def compare(r: redis.Redis, fixture: Mapping[str, Any], now: float) -> None:
    dump = cf.dump_keyspace(r)
    for entry in dump:
        if entry["type"] == "hash" and ":t:" in entry["key"]:
            entry["value"].pop("attempt", None)  # pyasynq's fencing token
    gen = fixture["generator"]
    problems = cf.compare_keys(
        fixture["keys"],
        cf.Normaliser.for_fixture(fixture),
        dump,
        cf.Normaliser.for_now(now, gen["hostname"], int(gen["pid"])),
    )
    assert problems == [], f"{fixture['scenario']} differs from Go asynq:\n" + "\n".join(problems)


def enqueue_fixture_task(b: Broker, fixture: Mapping[str, Any], now: float, i: int) -> None:
    op = [o for o in fixture["operations"] if o["op"] == "enqueue"][i]
    task, kw = cf.enqueue_call(op, now)
    pre = prepare(task, Options(**kw), int(now * NS))
    b.run(pre.register_queue)
    enqueue_result(b.run(pre.call))


def test_server_running_state_fixture(b: Broker, r: redis.Redis) -> None:
    fixture = need_fixture("server_running_state")
    now = float(int(time.time()))
    shift = Shift(fixture, now)
    enqueue_fixture_task(b, fixture, now, 0)
    got = p.dequeue_result("critical", b.run(p.dequeue("critical", now, "tok")))
    assert got is not None and got.msg is not None
    # The dump follows the second heartbeat, 5 s after start: lease extended, state written.
    beat = now + 5
    b.run(p.extend_lease("critical", [got.task_id], beat + 30))
    info_fields = value_of(fixture, "asynq:servers:{")["value"]["decoded"]
    info = cf.fields_to_message("asynq.ServerInfo", info_fields)
    info.start_time_ns = shift.ns(info.start_time_ns)
    workers = []
    for blob in value_of(fixture, "asynq:workers:{")["value"].values():
        w = cf.fields_to_message("asynq.WorkerInfo", blob["decoded"])
        w.start_time_ns, w.deadline_ns = shift.ns(w.start_time_ns), shift.ns(w.deadline_ns)
        workers.append(w)
    run_all(b, state.write_server_state(info, workers, beat, 10))

    compare(r, fixture, now)

    # And the Inspector side reads it back.
    [skey] = state.list_registry_result(b.run(state.list_registry(keys.ALL_SERVERS, beat)))
    assert state.server_info_result(b.run(state.get_server_info(skey))) == info
    [wkey] = state.list_registry_result(b.run(state.list_registry(keys.ALL_WORKERS, beat)))
    assert state.workers_result(b.run(state.get_workers(wkey))) == workers


def test_scheduler_entries_fixture(b: Broker, r: redis.Redis) -> None:
    fixture = need_fixture("scheduler_entries")
    now = float(int(time.time()))
    shift = Shift(fixture, now)
    start = next(o for o in fixture["operations"] if o["op"] == "scheduler_start")
    ttl = 2 * start["heartbeat_interval_s"]

    # The @every 2s entry fired twice (tasks with random ids, taken from the dump).
    history = [k for k in fixture["keys"] if k["key"].startswith("asynq:scheduler_history:")]
    for h in history:
        entry_id = h["key"].removeprefix("asynq:scheduler_history:")
        for item in h["value"]:
            ev = cf.fields_to_message("asynq.SchedulerEnqueueEvent", item["member"]["decoded"])
            ev.enqueue_time_ns = shift.ns(ev.enqueue_time_ns)
            enqueued_at = ev.enqueue_time_ns / NS
            msg_fields = value_of(fixture, f"asynq:{{default}}:t:{ev.task_id}")["value"]["msg"]
            msg = cf.fields_to_message("asynq.TaskMessage", msg_fields["decoded"])
            pre = prepare(
                _task_for(msg), Options(task_id=msg.id, queue=msg.queue), int(enqueued_at * NS)
            )
            b.run(pre.register_queue)
            enqueue_result(b.run(pre.call))
            b.run(state.record_scheduler_enqueue_event(entry_id, ev))

    entries_key = value_of(fixture, "asynq:schedulers:{")
    sid = entries_key["key"].removeprefix("asynq:schedulers:{").removesuffix("}")
    entries = []
    for blob in reversed(entries_key["value"]):  # LPUSH order: the last pushed is the head
        e = cf.fields_to_message("asynq.SchedulerEntry", blob["decoded"])
        e.next_enqueue_time_ns = shift.ns(e.next_enqueue_time_ns)
        e.prev_enqueue_time_ns = shift.ns(e.prev_enqueue_time_ns)
        entries.append(e)
    [registry] = value_of(fixture, "asynq:schedulers")["value"]
    beat = shift.seconds(registry["score"]) - ttl
    run_all(b, state.write_scheduler_entries(sid, entries, beat, ttl))

    compare(r, fixture, now)
    assert list_ids(r, "asynq:{default}:pending")  # the replay did enqueue


def _task_for(msg: codec.TaskMessage) -> Task:
    return Task(msg.type, msg.payload or None)
