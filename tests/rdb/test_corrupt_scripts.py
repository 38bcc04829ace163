"""Every Lua script fed corrupt state: it answers an error (mapped to a BrokerError) or
handles the state, and never leaves a half-done write behind (a Lua script that fails
midway keeps what it wrote before the failure: Redis has no rollback). Redis stays up.

One table row per script (``SCRIPTS``; a test checks it covers every file in
``_rdb/lua/``), run against each corruption in ``CORRUPTIONS`` of a queue that holds a
task in every state. The scripts the worker runs on its hot path must also *handle* a
corrupt task (quarantine it with a reason and go on to the next one): see the tests at
the end."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from pyasynq._rdb import keys, scripts
from pyasynq._rdb.codec import (
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    TaskMessage,
    WorkerInfo,
)
from pyasynq._rdb.ops import (
    Call,
    aggregation,
    enqueue,
    inspect,
    limiter,
    processing,
    results,
    scheduler,
    snooze,
    state,
)
from pyasynq._sync.broker import Broker
from pyasynq.errors import BrokerError, LeaseExpiredError, TaskGoneError

from .helpers import (
    make_msg,
    seed_active,
    seed_aggregating,
    seed_archived,
    seed_completed,
    seed_pending,
    seed_retry,
    seed_scheduled,
)

pytestmark = pytest.mark.single_node("snapshots the whole keyspace of one node")

Q = "default"
NOW = time.time()
IDS = {"pending": "p1", "active": "a1", "scheduled": "s1", "retry": "r1", "archived": "x1",
       "completed": "c1", "aggregating": "g1"}  # fmt: skip
TOKEN = "tok"


def msg(state: str) -> TaskMessage:
    return make_msg(IDS[state])


def seed(r: redis.Redis) -> None:
    seed_pending(r, make_msg("p0"))
    seed_pending(r, msg("pending"))
    seed_active(r, msg("active"), lease_expiry=NOW - 100, attempt=TOKEN)
    seed_scheduled(r, msg("scheduled"), process_at=NOW - 1)
    seed_retry(r, msg("retry"), retry_at=NOW - 1)
    seed_archived(r, msg("archived"), archived_at=NOW - 1)
    seed_completed(r, msg("completed"), expires_at=NOW - 1)
    seed_aggregating(r, msg("aggregating"), group="grp", added_at=NOW - 1000)
    r.zadd(keys.aggregation_set_key(Q, "grp", "set1"), {"g1": NOW - 1000})
    r.zadd(keys.all_aggregation_sets_key(Q), {keys.aggregation_set_key(Q, "grp", "set1"): NOW - 1})
    r.sadd(keys.ALL_QUEUES, Q)


def _enqueue(script: str) -> Callable[[], Call]:
    def build() -> Call:
        m = make_msg("new", group_key="grp" if "group" in script else "")
        unique = "unique" in script
        if unique:
            m.unique_key = keys.unique_key(Q, m.type, m.payload)
        at = NOW + 60 if script.startswith("schedule") else 0
        call = enqueue.enqueue_call(
            m, now_ns=int(NOW * 1e9), process_at=at, unique_ttl=60 if unique else 0
        )
        assert call.script == script
        return call

    return build


def _batch() -> Call:
    from pyasynq import Options, Task

    plan = enqueue.plan_many(
        [(Task("t", b"1"), Options(queue=Q, task_id=f"b{i}")) for i in range(3)],
        int(NOW * 1e9),
        cluster=False,
    )
    return _first(plan.ops)


def _first(ops: object) -> Call:
    found = [op for op in ops if isinstance(op, Call)]  # type: ignore[attr-defined]
    return found[0]


server = ServerInfo(host="h", pid=1, server_id="s", queues={Q: 1})
worker = WorkerInfo(host="h", pid=1, server_id="s", task_id="a1", queue=Q)
entry = SchedulerEntry(id="e", spec="@every 1s", task_type="t")

LIMIT = limiter.Spec(concurrency=2, rate=10, per=1.0)

# script -> how to build a realistic call on the seeded queue.
SCRIPTS: dict[str, Callable[[], Call]] = {
    **{
        s: _enqueue(s)
        for s in (
            "enqueue",
            "enqueue_unique",
            "schedule",
            "schedule_unique",
            "add_to_group",
            "add_to_group_unique",
        )
    },
    "enqueue_batch": _batch,
    "scheduler_enqueue": lambda: scheduler.scheduler_enqueue(
        _enqueue("enqueue")(), queue=Q, entry_key="e", fire_time=int(NOW), marker_ttl=60
    ),
    "dequeue": lambda: processing.dequeue(Q, NOW, TOKEN),
    "dequeue_many": lambda: processing.dequeue_many(Q, NOW, TOKEN, 10),
    "done": lambda: processing.done(msg("active"), NOW, TOKEN),
    "done_many": lambda: processing.done_many(Q, NOW, [(msg("active"), TOKEN)]),
    "mark_complete": lambda: processing.mark_complete(msg("active"), NOW, TOKEN),
    "requeue": lambda: processing.requeue(msg("active"), TOKEN),
    "retry": lambda: processing.retry(msg("active"), NOW, NOW + 10, "boom", True, TOKEN),
    "archive": lambda: processing.archive(msg("active"), NOW, "boom", TOKEN),
    "forward": lambda: processing.forward(Q, "scheduled", int(NOW * 1e9)),
    "extend_leases": lambda: processing.extend_leases(Q, [("a1", TOKEN)], NOW + 30),
    "list_lease_expired": lambda: processing.list_lease_expired(Q, NOW),
    "lease_orphans": lambda: processing.lease_orphans(Q, NOW),
    "quarantine": lambda: processing.quarantine(Q, "a1", "test"),
    "delete_expired_completed": lambda: processing.delete_expired_completed(Q, NOW),
    "aggregation_check": lambda: aggregation.check_group(
        Q, "grp", "set2", NOW, grace_period=1, max_size=1
    ),
    "read_aggregation_set": lambda: aggregation.read_aggregation_set(Q, "grp", "set1"),
    "delete_aggregation_set": lambda: aggregation.delete_aggregation_set(Q, "grp", "set1"),
    "reclaim_stale_aggregation_sets": lambda: aggregation.reclaim_stale_aggregation_sets(Q, NOW),
    "inspect_current_stats": lambda: inspect.current_stats(Q, now=NOW),
    "inspect_memory_usage": lambda: inspect.memory_usage(Q),
    "inspect_task_info": lambda: inspect.get_task_info(Q, "a1", now=NOW),
    "inspect_list_tail": lambda: inspect.list_tasks(Q, "pending", now=NOW),
    "inspect_list_zset": lambda: inspect.list_tasks(Q, "scheduled", now=NOW),
    "inspect_groups": lambda: inspect.groups(Q),
    "inspect_run_task": lambda: inspect.run_task(Q, "s1"),
    "inspect_archive_task": lambda: inspect.archive_task(Q, "p1", now=NOW),
    "inspect_delete_task": lambda: inspect.delete_task(Q, "p1"),
    "inspect_update_payload": lambda: inspect.update_task_payload(Q, "p1", msg("pending"), b"n"),
    "inspect_run_all": lambda: inspect.run_all(Q, "scheduled"),
    "inspect_archive_all": lambda: inspect.archive_all(Q, "retry", now=NOW),
    "inspect_archive_all_pending": lambda: inspect.archive_all(Q, "pending", now=NOW),
    "inspect_delete_all": lambda: inspect.delete_all(Q, "archived"),
    "inspect_delete_all_pending": lambda: inspect.delete_all(Q, "pending"),
    "inspect_delete_queue": lambda: inspect.delete_queue(Q, force=True, token="t0"),
    "inspect_purge_deleted": lambda: inspect.purge_deleted(Q),
    "write_server_state": lambda: _first(state.write_server_state(server, [worker], NOW, 60)),
    "write_scheduler_entries": lambda: _first(
        state.write_scheduler_entries("sch", [entry], NOW, 60)
    ),
    "record_scheduler_event": lambda: state.record_scheduler_enqueue_event(
        "e", SchedulerEnqueueEvent(task_id="x", enqueue_time_ns=int(NOW * 1e9))
    ),
    "list_registry": lambda: state.list_registry(keys.ALL_SERVERS, NOW),
    "snooze": lambda: snooze.snooze(msg("active"), NOW + 30, TOKEN),
    "watch_result": lambda: results.watch(Q, "a1", "pyasynq:result:test"),
    "report_progress": lambda: results.report_progress(
        Q, "a1", TOKEN, results.encode_progress(0.5, "half", NOW)
    ),
    "limit_acquire": lambda: limiter.acquire(Q, "t", LIMIT, task_id="a1", token=TOKEN, now=NOW),
    "limit_wake": lambda: limiter.wake(Q, "t", LIMIT, int(NOW * 1e9), task_id="a1", token=TOKEN),
}


def _task_keys(r: redis.Redis) -> list[bytes]:
    return [k for k in r.scan_iter(match=keys.task_key_prefix(Q) + "*")]


def _containers() -> list[str]:
    return [
        keys.pending_key(Q), keys.active_key(Q), keys.lease_key(Q), keys.scheduled_key(Q),
        keys.retry_key(Q), keys.archived_key(Q), keys.completed_key(Q), keys.groups_key(Q),
        keys.group_key(Q, "grp"), keys.all_aggregation_sets_key(Q),
    ]  # fmt: skip


def hash_is_a_string(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.delete(k)
        r.set(k, b"not a hash")


def msg_garbage(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.hset(k, "msg", b"\xff\xfe\x00garbage\x80")


def msg_truncated(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.hset(k, "msg", r.hget(k, "msg")[:7])  # type: ignore[index]


def msg_missing(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.hdel(k, "msg", "state")


def hashes_gone(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.delete(k)


def containers_wrong_type(r: redis.Redis) -> None:
    for k in _containers():
        r.delete(k)
        r.set(k, b"not a container")


def extreme_scores(r: redis.Redis) -> None:
    for k in (keys.lease_key(Q), keys.scheduled_key(Q), keys.retry_key(Q),
              keys.completed_key(Q), keys.archived_key(Q)):  # fmt: skip
        for member, score in zip(r.zrange(k, 0, -1), ("-inf", "inf", -1e300, 1e300), strict=False):
            r.zadd(k, {member: score})
        r.zadd(k, {b"ghost": "-inf"})  # an id with no hash at all


def fields_wrong(r: redis.Redis) -> None:
    for k in _task_keys(r):
        r.hset(k, mapping={"state": "nonsense", "attempt": "x", "crashes": "many",
                           "pending_since": "soon", "group": "", "unique_key": ""})  # fmt: skip


CORRUPTIONS = [hash_is_a_string, msg_garbage, msg_truncated, msg_missing, hashes_gone,
               containers_wrong_type, extreme_scores, fields_wrong]  # fmt: skip


def snapshot(r: redis.Redis) -> dict[bytes, bytes | None]:
    return {k: r.dump(k) for k in r.scan_iter(count=1000)}


def test_the_table_covers_every_script() -> None:
    assert sorted(SCRIPTS) == scripts.names()


@pytest.fixture(scope="module")
def b(redis_url: str) -> Broker:
    broker = Broker(redis_url)
    yield broker
    broker.close()


# Known gap: with one of the queue's own containers of the wrong type (someone SET
# asynq:{q}:groups, say: every call on that queue then fails), this script fails after
# writing the new task's hash. Nothing else is touched and no other queue is affected.
# Strict: a fix makes the test fail until the entry is removed (enqueue_batch was fixed by
# reading the pending list's length first).
PARTIAL_ON_BROKEN_CONTAINER = {"scheduler_enqueue"}


def _cases() -> list[object]:
    out = []
    for script in sorted(SCRIPTS):
        for corrupt in CORRUPTIONS:
            marks = []
            if corrupt is containers_wrong_type and script in PARTIAL_ON_BROKEN_CONTAINER:
                marks.append(pytest.mark.xfail(strict=True, reason="known gap, see above"))
            out.append(
                pytest.param(script, corrupt, marks=marks, id=f"{script}-{corrupt.__name__}")
            )
    return out


@pytest.mark.parametrize(("script", "corrupt"), _cases())
def test_a_script_on_corrupt_state_fails_whole_or_copes(
    r: redis.Redis, b: Broker, script: str, corrupt: Callable[[redis.Redis], None]
) -> None:
    seed(r)
    corrupt(r)
    call = SCRIPTS[script]()
    assert call.script == script
    before = snapshot(r)
    try:
        b.run(call)
    except BrokerError as exc:
        if isinstance(processing.map_error(exc), LeaseExpiredError | TaskGoneError):
            return  # answers, not failures: as in Go, removals made before the check stay
        # An error reply: the state must be as it was (no half-done write).
        after = snapshot(r)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert not changed, f"{script} failed ({exc}) after changing {changed}"
    assert r.ping()
