"""The scheduler's own Redis operations: the tick-guarded enqueue script and the shared
@every anchor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import conformance as cf
import pytest
import redis

from pyasynq import Task
from pyasynq._rdb import keys
from pyasynq._rdb.ops import Command
from pyasynq._rdb.ops.enqueue import prepare
from pyasynq._rdb.ops.scheduler import (
    every_anchor,
    every_anchor_result,
    scheduler_enqueue,
    scheduler_enqueue_result,
)
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, DuplicateTaskError, TaskIDConflictError
from pyasynq.options import Options

NOW_NS = 1_795_846_614_295_457_034
ENTRY = "e" * 64


@pytest.fixture
def broker(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    b = Broker(redis_url)
    yield b
    b.close()


def state(r: redis.Redis) -> list[dict[str, Any]]:
    """The keyspace without the tick markers, TTLs rounded."""
    return [k for k in cf.dump_keyspace(r) if ":pyasynq:tick:" not in k["key"]]


VARIANTS = {
    "enqueue": {},
    "enqueue_unique": {"unique": 60},
    "schedule": {"process_in": 100},
    "schedule_unique": {"process_in": 100, "unique": 60},
    "add_to_group": {"group": "g"},
    "add_to_group_unique": {"group": "g", "unique": 60},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_task_is_written_exactly_as_the_plain_enqueue(
    broker: Broker, r: redis.Redis, variant: str
) -> None:
    task = Task("tick", b'{"n":1}', headers={"h": "v"})
    p = prepare(task, Options(task_id="tid", queue="q", **VARIANTS[variant]), NOW_NS)
    assert p.call.script == variant
    assert broker.run(p.call) == 1
    plain = state(r)
    r.flushdb()
    call = scheduler_enqueue(p.call, queue="q", entry_key=ENTRY, fire_time=100, marker_ttl=30)
    assert call.keys[0] == keys.scheduler_tick_key("q", ENTRY, 100)
    assert all(k.startswith("asynq:{q}:") for k in call.keys)  # one cluster slot
    assert scheduler_enqueue_result(broker.run(call)) is True
    assert state(r) == plain
    marker = keys.scheduler_tick_key("q", ENTRY, 100)
    assert r.get(marker) == b"tid"
    assert 29 <= r.ttl(marker) <= 30
    # The same tick again: nothing is written.
    assert broker.run(call) == 2
    assert scheduler_enqueue_result(2) is False
    assert state(r) == plain
    # Another tick with the same task id: the wrapped script's answer, and the marker.
    again = scheduler_enqueue(p.call, queue="q", entry_key=ENTRY, fire_time=101, marker_ttl=30)
    reply = broker.run(again)
    assert reply == (-1 if "unique" in variant else 0)
    assert r.get(keys.scheduler_tick_key("q", ENTRY, 101)) == b"tid"


def test_result_mapping() -> None:
    assert scheduler_enqueue_result(1) is True
    assert scheduler_enqueue_result(2) is False
    with pytest.raises(TaskIDConflictError):
        scheduler_enqueue_result(0)
    with pytest.raises(DuplicateTaskError):
        scheduler_enqueue_result(-1)
    with pytest.raises(BrokerError):
        scheduler_enqueue_result(7)
    err = BrokerError("boom")
    with pytest.raises(BrokerError, match="boom"):
        scheduler_enqueue_result(err)


def test_only_enqueue_operations_can_be_wrapped() -> None:
    p = prepare(Task("t"), Options(), NOW_NS)
    with pytest.raises(ValueError, match="not an enqueue operation"):
        scheduler_enqueue(
            type(p.call)("done", [], []), queue="q", entry_key=ENTRY, fire_time=1, marker_ttl=5
        )
    with pytest.raises(ValueError, match="marker_ttl"):
        scheduler_enqueue(p.call, queue="q", entry_key=ENTRY, fire_time=1, marker_ttl=0)


def test_an_unknown_operation_is_an_error_reply(broker: Broker, r: redis.Redis) -> None:
    p = prepare(Task("t"), Options(task_id="x"), NOW_NS)
    call = scheduler_enqueue(p.call, queue="default", entry_key=ENTRY, fire_time=1, marker_ttl=5)
    call.args[1] = "nope"
    with pytest.raises(BrokerError, match="unknown operation nope"):
        broker.run(call)
    assert r.keys() == []


def test_every_anchor_first_proposal_wins(broker: Broker, r: redis.Redis) -> None:
    first = broker.run_many(every_anchor("q", ENTRY, 100, 60))
    assert every_anchor_result(first) == 100
    second = broker.run_many(every_anchor("q", ENTRY, 250, 90))
    assert every_anchor_result(second) == 100
    key = keys.scheduler_anchor_key("q", ENTRY)
    assert key.startswith("asynq:{q}:")
    assert 89 <= r.ttl(key) <= 90  # refreshed by every proposal
    r.delete(key)  # e.g. a flushed Redis: the next proposal restores it
    assert every_anchor_result(broker.run_many(every_anchor("q", ENTRY, 250, 90))) == 250
    with pytest.raises(BrokerError):
        every_anchor_result([True, 1, b"junk"])
    with pytest.raises(ValueError):
        every_anchor("q", ENTRY, 1, 0)
    assert broker.run(Command(("GET", key))) == b"250"
