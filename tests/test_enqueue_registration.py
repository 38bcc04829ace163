"""The enqueue scripts register the queue and wake idle workers only when the queue's
pending list was empty (issue 20, item 1): a non-empty pending list means an earlier
enqueue registered the queue and woke the workers, and removing a queue deletes its
pending list, so the next enqueue registers it again."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import redis
import targets

import pyasynq
from pyasynq import Options, Task
from pyasynq._rdb import keys


def wakes(p: Any, want: int) -> list[bytes]:
    """The wake-ups published, waiting for ``want`` and then a little for any extra."""
    got: list[bytes] = []
    give_up = time.monotonic() + 10
    while len(got) < want and time.monotonic() < give_up:
        if (m := p.get_message(timeout=0.5)) is not None:
            got.append(m["data"])
    while (m := p.get_message(timeout=0.3)) is not None:
        got.append(m["data"])
    return got


@pytest.fixture
def sub(r: redis.Redis) -> Any:
    p = r.pubsub()
    p.subscribe(keys.WAKE_CHANNEL)
    assert p.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    yield p
    p.close()


def test_one_wake_up_per_empty_to_non_empty(redis_url: str, r: redis.Redis, sub: Any) -> None:
    with pyasynq.Client(redis_url) as c:
        for _ in range(3):
            c.enqueue(Task("t"), queue="q1")
        c.enqueue(Task("t", b"u"), queue="q1", unique=60)
        c.enqueue_many([(Task("t"), Options(queue="q1")) for _ in range(3)])
        assert wakes(sub, 1) == [b"q1"]  # the list held tasks after the first
        r.delete(keys.pending_key("q1"))  # a worker took them all
        c.enqueue_many([(Task("t"), Options(queue="q1")) for _ in range(2)])
        c.enqueue(Task("t"), queue="q1")
        assert wakes(sub, 1) == [b"q1"]
        r.delete(keys.pending_key("q1"))
        c.enqueue(Task("t", b"v"), queue="q1", unique=60)
        assert wakes(sub, 1) == [b"q1"]


@pytest.mark.skipif(targets.CLUSTER, reason="in a Cluster the client sends the SADD beside")
def test_registration_only_when_the_pending_list_is_empty(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as c:
        c.enqueue(Task("t"), queue="q1")
        assert r.smembers(keys.ALL_QUEUES) == {b"q1"}
        r.config_resetstat()
        for _ in range(5):
            c.enqueue(Task("t"), queue="q1")
        stats = r.info("commandstats")
        assert "cmdstat_sadd" not in stats and "cmdstat_publish" not in stats
        assert stats["cmdstat_evalsha"]["calls"] == 5
        # The steady state is three commands: LPUSH's reply says whether the list was
        # empty, so the script reads no LLEN.
        inner = {k[len("cmdstat_") :]: v["calls"] for k, v in stats.items()}
        inner.pop("evalsha")
        inner.pop("config|resetstat", None)
        assert inner == {"exists": 5, "lpush": 5, "hset": 5}


@pytest.mark.skipif(targets.CLUSTER, reason="in a Cluster the client sends the SADD beside")
@pytest.mark.parametrize("unique", [None, 60])
def test_a_failed_registration_leaves_no_task_and_no_wake_up(
    redis_url: str, r: redis.Redis, sub: Any, unique: int | None
) -> None:
    # The push comes before the registration now: a failed SADD must take it back, or a
    # task would be stored that Go's Inspector cannot see (its queue is not listed).
    r.set(keys.ALL_QUEUES, "not a set")
    with pyasynq.Client(redis_url, failover_timeout=0) as c:
        with pytest.raises(pyasynq.BrokerError, match=r"WRONGTYPE.*nothing stored"):
            c.enqueue(Task("t"), queue="q1", unique=unique)
        assert r.keys("asynq:{*") == []
        assert wakes(sub, 0) == []
        r.delete(keys.ALL_QUEUES)
        c.enqueue(Task("t"), queue="q1", unique=unique)
        assert r.smembers(keys.ALL_QUEUES) == {b"q1"}
        assert r.llen(keys.pending_key("q1")) == 1


def test_a_removed_queue_is_registered_again(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as c, pyasynq.Inspector(redis_url) as i:
        c.enqueue(Task("t"), queue="q1")
        c.enqueue(Task("t"), queue="q1")
        i.delete_queue("q1", force=True)
        assert b"q1" not in r.smembers(keys.ALL_QUEUES)
        c.enqueue(Task("t"), queue="q1")
        assert b"q1" in r.smembers(keys.ALL_QUEUES)
        assert i.queues() == ["q1"]


@pytest.mark.parametrize("register", [True, False])
@pytest.mark.parametrize("payload", [b"", b"x", b"x" * 127, b"x" * 128, b"x" * 300, b"\0" * 70000])
@pytest.mark.parametrize("type_", ["t", "型" * 43, "a" * 128])
def test_the_default_fast_path_builds_what_the_general_one_does(
    register: bool, payload: bytes, type_: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast path encodes the message by hand (lengths of one, two and three varint
    # bytes here); the general one through protobuf.
    from pyasynq._rdb.ops import enqueue
    from pyasynq._rdb.ops.enqueue import prepare
    from pyasynq.options import NO_OPTIONS, given

    now = time.time_ns()
    assert given() is NO_OPTIONS  # what enqueue() passes when no option is given
    with monkeypatch.context() as m:
        m.setattr(enqueue, "resolve_merged", None)  # the fast path resolves nothing
        fast = prepare(Task(type_, payload), NO_OPTIONS, now, register=register, wake=True)
    # The same task through option resolution (a task id given takes the general path).
    general = prepare(
        Task(type_, payload), Options(task_id=fast.info.id), now, register=register, wake=True
    )
    assert fast == general


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_pending_task_ids() -> None:
    # Ids are made 64 at a time; a child must not hand out the ones its parent holds.
    from pyasynq._rdb.ops import enqueue

    enqueue._next_id()
    ahead = set(enqueue._ids)
    assert ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, enqueue._next_id().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    os.close(read)
    assert status == 0
    assert len(child_id) == 36 and child_id not in ahead
