"""Seed and read asynq state directly in Redis, for tests.

Seeds write exactly what Go asynq leaves in Redis for a task in each state (hash fields,
container membership), through ``pyasynq._rdb.keys`` and the codec, so tests can start
from any state without running the path that leads there. Readers return the stored
state decoded into plain Python values (str ids, float scores, TaskMessage), ready for
``==`` in asserts.

    msg = make_msg("t1")
    seed_active(r, msg, lease_expiry=now + 30, attempt="tok")
    ...
    assert queue_state(r, "default")["retry"] == [("t1", now + 60)]
    assert task_fields(r, "default", "t1")["state"] == "retry"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage, decode_task, encode_task
from pyasynq._rdb.ops import STATS_TTL, Call, processing
from pyasynq._sync.broker import Broker

DEFAULT_QUEUE = "default"
DAY = 24 * 3600


def make_msg(task_id: str = "t1", **fields: Any) -> TaskMessage:
    """A TaskMessage with Go's enqueue defaults (queue default, retry 25, timeout 1800 s)
    and the type ``test:task``; any field can be overridden."""
    base: dict[str, Any] = {
        "type": "test:task",
        "payload": b'{"n":1}',
        "id": task_id,
        "queue": DEFAULT_QUEUE,
        "retry": 25,
        "timeout": 1800,
    }
    base.update(fields)
    return TaskMessage(**base)


def unique_msg(task_id: str = "t1", **fields: Any) -> TaskMessage:
    """Like :func:`make_msg`, with ``unique_key`` set as Go's client computes it."""
    msg = make_msg(task_id, **fields)
    msg.unique_key = keys.unique_key(msg.queue, msg.type, msg.payload)
    return msg


# --------------------------------------------------------------------------- seeding


def _hset(r: redis.Redis, msg: TaskMessage, state: str, **extra: Any) -> None:
    mapping: dict[str, Any] = {"msg": encode_task(msg), "state": state}
    mapping.update({k: v for k, v in extra.items() if v is not None})
    r.hset(keys.task_key(msg.queue, msg.id), mapping=mapping)
    r.sadd(keys.ALL_QUEUES, msg.queue)


def fence(token: str, lease_expiry: float) -> str:
    """The ``attempt`` field pyasynq's dequeue writes: ``"<token> <lease expiry>"``, the
    expiry as Redis prints the lease score."""
    score = int(lease_expiry) if float(lease_expiry).is_integer() else lease_expiry
    return f"{token} {score}"


def seed_unique_lock(r: redis.Redis, msg: TaskMessage, *, ttl: int = 3600) -> None:
    """The uniqueness lock for ``msg`` (its ``unique_key``), owned by ``msg.id``."""
    assert msg.unique_key, "the message has no unique_key"
    r.set(msg.unique_key, msg.id, ex=ttl)


def seed_pending(r: redis.Redis, msg: TaskMessage, *, pending_since_ns: int | None = None) -> None:
    """LPUSHed onto pending (the head: the newest) with state=pending and pending_since."""
    _hset(r, msg, "pending", pending_since=pending_since_ns, unique_key=msg.unique_key or None)
    r.lpush(keys.pending_key(msg.queue), msg.id)


def seed_active(
    r: redis.Redis,
    msg: TaskMessage,
    *,
    lease_expiry: float,
    attempt: str | None = None,
    crashes: int | None = None,
) -> None:
    """In active (head) and lease, state=active; ``attempt``/``crashes`` are pyasynq's
    fencing token and crash counter fields (the token is stored as pyasynq's dequeue
    stores it, with the lease expiry: see :func:`fence`)."""
    _hset(
        r,
        msg,
        "active",
        attempt=None if attempt is None else fence(attempt, lease_expiry),
        crashes=crashes,
        unique_key=msg.unique_key or None,
    )
    r.lpush(keys.active_key(msg.queue), msg.id)
    r.zadd(keys.lease_key(msg.queue), {msg.id: lease_expiry})


def seed_scheduled(r: redis.Redis, msg: TaskMessage, *, process_at: float) -> None:
    """In scheduled with score process-at, state=scheduled (no group field, as Go)."""
    _hset(r, msg, "scheduled", unique_key=msg.unique_key or None)
    r.zadd(keys.scheduled_key(msg.queue), {msg.id: process_at})


def seed_retry(r: redis.Redis, msg: TaskMessage, *, retry_at: float, **extra: Any) -> None:
    """In retry with score retry-at, state=retry; ``extra`` adds hash fields (``group``)."""
    _hset(r, msg, "retry", unique_key=msg.unique_key or None, **extra)
    r.zadd(keys.retry_key(msg.queue), {msg.id: retry_at})


def seed_archived(r: redis.Redis, msg: TaskMessage, *, archived_at: float) -> None:
    """In archived with score archived-at, state=archived."""
    _hset(r, msg, "archived", unique_key=msg.unique_key or None)
    r.zadd(keys.archived_key(msg.queue), {msg.id: archived_at})


def seed_completed(r: redis.Redis, msg: TaskMessage, *, expires_at: float) -> None:
    """In completed with score = completed_at + retention, state=completed."""
    _hset(r, msg, "completed")
    r.zadd(keys.completed_key(msg.queue), {msg.id: expires_at})


def seed_aggregating(r: redis.Redis, msg: TaskMessage, *, group: str, added_at: float) -> None:
    """In group zset ``g:<group>`` with score added-at, state=aggregating, field group,
    and the group name in ``groups``."""
    if not msg.group_key:
        msg.group_key = group
    _hset(r, msg, "aggregating", group=group)
    r.zadd(keys.group_key(msg.queue, group), {msg.id: added_at})
    r.sadd(keys.groups_key(msg.queue), group)


# --------------------------------------------------------------------------- reading


def _s(b: bytes | str) -> str:
    return b.decode("utf-8") if isinstance(b, bytes) else b


def task_hash(r: redis.Redis, queue: str, task_id: str) -> dict[str, bytes]:
    """The raw task hash; {} when it does not exist."""
    return {_s(k): v for k, v in r.hgetall(keys.task_key(queue, task_id)).items()}


def task_fields(r: redis.Redis, queue: str, task_id: str) -> dict[str, Any]:
    """The task hash with ``msg`` decoded to a TaskMessage and every other field as text."""
    out: dict[str, Any] = {}
    for k, v in task_hash(r, queue, task_id).items():
        out[k] = decode_task(v) if k == "msg" else v.decode("utf-8", "replace")
    return out


def task_msg(r: redis.Redis, queue: str, task_id: str) -> TaskMessage | None:
    data = r.hget(keys.task_key(queue, task_id), "msg")
    return None if data is None else decode_task(data)


def list_ids(r: redis.Redis, key: str) -> list[str]:
    """A list's members, head first."""
    return [_s(x) for x in r.lrange(key, 0, -1)]


def zset_items(r: redis.Redis, key: str) -> list[tuple[str, float]]:
    """A zset's (member, score) pairs by ascending score."""
    return [(_s(m), s) for m, s in r.zrange(key, 0, -1, withscores=True)]


def queue_state(r: redis.Redis, queue: str = DEFAULT_QUEUE) -> dict[str, Any]:
    """Every container of a queue: lists as id lists (head first), zsets as (id, score)
    lists, ``groups`` as a sorted list, ``paused`` as text or None, ``quarantine`` as a
    dict id -> reason."""
    return {
        "pending": list_ids(r, keys.pending_key(queue)),
        "active": list_ids(r, keys.active_key(queue)),
        "lease": zset_items(r, keys.lease_key(queue)),
        "scheduled": zset_items(r, keys.scheduled_key(queue)),
        "retry": zset_items(r, keys.retry_key(queue)),
        "archived": zset_items(r, keys.archived_key(queue)),
        "completed": zset_items(r, keys.completed_key(queue)),
        "groups": sorted(_s(g) for g in r.smembers(keys.groups_key(queue))),
        "aggregation_sets": zset_items(r, keys.all_aggregation_sets_key(queue)),
        "paused": _opt_text(r.get(keys.paused_key(queue))),
        "quarantine": {_s(k): _s(v) for k, v in r.hgetall(keys.quarantine_key(queue)).items()},
    }


def _opt_text(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


@dataclass
class Counter:
    value: int | None  # None: the key does not exist
    ttl: int | None = None  # seconds; None: no TTL (or no key)


@dataclass
class Counters:
    processed: Counter = field(default_factory=lambda: Counter(None))
    failed: Counter = field(default_factory=lambda: Counter(None))
    processed_today: Counter = field(default_factory=lambda: Counter(None))
    failed_today: Counter = field(default_factory=lambda: Counter(None))


def _counter(r: redis.Redis, key: str) -> Counter:
    v = r.get(key)
    if v is None:
        return Counter(None)
    ttl = r.ttl(key)
    return Counter(int(v), ttl if ttl >= 0 else None)


def counters(r: redis.Redis, queue: str, now: float) -> Counters:
    """The processed/failed counters of ``queue``; the daily ones for the UTC date of
    ``now``."""
    return Counters(
        processed=_counter(r, keys.processed_total_key(queue)),
        failed=_counter(r, keys.failed_total_key(queue)),
        processed_today=_counter(r, keys.processed_key(queue, now)),
        failed_today=_counter(r, keys.failed_key(queue, now)),
    )


def all_keys(r: redis.Redis) -> list[str]:
    return sorted(_s(k) for k in r.scan_iter(count=1000))


# --------------------------------------------------------------------------- asserting


def snapshot(r: redis.Redis) -> dict[str, object]:
    """Everything in the database, to prove an operation changed nothing."""
    out: dict[str, object] = {}
    for k in all_keys(r):
        t = r.type(k).decode()
        if t == "hash":
            out[k] = r.hgetall(k)
        elif t == "list":
            out[k] = r.lrange(k, 0, -1)
        elif t == "zset":
            out[k] = r.zrange(k, 0, -1, withscores=True)
        elif t == "set":
            out[k] = r.smembers(k)
        else:
            out[k] = (r.get(k), r.ttl(k))
    return out


def assert_ttl_90_days(r: redis.Redis, key: str) -> None:
    ttl = r.ttl(key)
    assert STATS_TTL - 5 <= ttl <= STATS_TTL, f"{key} ttl {ttl}"


def run_write(b: Broker, op: Call) -> None:
    """Run a task write the way a server would with run_many, mapping the reply."""
    [reply] = b.run_many([op])
    processing.check_write(reply)
