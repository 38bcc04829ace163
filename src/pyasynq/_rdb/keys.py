"""Redis key names, exactly as Go asynq v0.26 spells them.

Every per-queue key starts with ``asynq:{<queue>}:``. The braces are a Redis Cluster hash
tag, so all keys of one queue live in one slot and one Lua script may touch them together.
The comment after each builder names the Redis type stored under the key.
"""

from __future__ import annotations

import functools
import hashlib
import math
from datetime import UTC, datetime

# Global registries (no hash tag: each one hashes on its whole name).
ALL_QUEUES = "asynq:queues"  # SET of queue names
ALL_SERVERS = "asynq:servers"  # ZSET server-info key -> expiry time
ALL_WORKERS = "asynq:workers"  # ZSET workers key -> expiry time
ALL_SCHEDULERS = "asynq:schedulers"  # ZSET scheduler-entries key -> expiry time
CANCEL_CHANNEL = "asynq:cancel"  # Pub/Sub channel, message = task id
# pyasynq only: clients announce new pending work here (message = queue name) so idle
# pyasynq workers dequeue at once instead of at their next poll. Go ignores it; Go clients
# do not send it, and workers still poll for their tasks.
WAKE_CHANNEL = "pyasynq:wake"


def queue_prefix(qname: str) -> str:
    return f"asynq:{{{qname}}}:"


def task_key_prefix(qname: str) -> str:
    return f"asynq:{{{qname}}}:t:"


def task_key(qname: str, task_id: str) -> str:  # HASH msg/state/pending_since/...
    return f"asynq:{{{qname}}}:t:{task_id}"


def pending_key(qname: str) -> str:  # LIST of ids, LPUSH new, pop from the tail
    return f"asynq:{{{qname}}}:pending"


def active_key(qname: str) -> str:  # LIST of ids
    return f"asynq:{{{qname}}}:active"


def lease_key(qname: str) -> str:  # ZSET id -> lease expiry (Unix s)
    return f"asynq:{{{qname}}}:lease"


def scheduled_key(qname: str) -> str:  # ZSET id -> process-at (Unix s)
    return f"asynq:{{{qname}}}:scheduled"


def retry_key(qname: str) -> str:  # ZSET id -> retry-at (Unix s)
    return f"asynq:{{{qname}}}:retry"


def archived_key(qname: str) -> str:  # ZSET id -> archived-at (Unix s)
    return f"asynq:{{{qname}}}:archived"


def completed_key(qname: str) -> str:  # ZSET id -> expiry (completed-at + retention)
    return f"asynq:{{{qname}}}:completed"


def paused_key(qname: str) -> str:  # STRING Unix s when paused; present <=> paused
    return f"asynq:{{{qname}}}:paused"


def processed_total_key(qname: str) -> str:  # STRING int, all-time
    return f"asynq:{{{qname}}}:processed"


def failed_total_key(qname: str) -> str:  # STRING int, all-time
    return f"asynq:{{{qname}}}:failed"


def _utc_date(unix_seconds: float) -> str:
    return _utc_date_of(math.floor(unix_seconds))


@functools.lru_cache(maxsize=8)
def _utc_date_of(second: int) -> str:
    # Cached per second: every finished task names its daily counter, and formatting the
    # date each time was a measurable share of the worker's time.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d")


def processed_key(qname: str, unix_seconds: float) -> str:  # STRING int, daily (UTC date)
    return f"asynq:{{{qname}}}:processed:{_utc_date(unix_seconds)}"


def failed_key(qname: str, unix_seconds: float) -> str:  # STRING int, daily (UTC date)
    return f"asynq:{{{qname}}}:failed:{_utc_date(unix_seconds)}"


def processed_key_for_date(qname: str, date: str) -> str:
    return f"asynq:{{{qname}}}:processed:{date}"


def failed_key_for_date(qname: str, date: str) -> str:
    return f"asynq:{{{qname}}}:failed:{date}"


def unique_key(qname: str, task_type: str, payload: bytes | None) -> str:  # STRING owner id
    """The uniqueness lock. A ``None`` payload (Go's nil) leaves nothing after the type;
    an empty payload hashes to md5("")."""
    if payload is None:
        return f"asynq:{{{qname}}}:unique:{task_type}:"
    return f"asynq:{{{qname}}}:unique:{task_type}:{hashlib.md5(payload).hexdigest()}"


def groups_key(qname: str) -> str:  # SET of group names with aggregating tasks
    return f"asynq:{{{qname}}}:groups"


def group_key_prefix(qname: str) -> str:
    return f"asynq:{{{qname}}}:g:"


def group_key(qname: str, gname: str) -> str:  # ZSET id -> time added (Unix s)
    return f"asynq:{{{qname}}}:g:{gname}"


def aggregation_set_key(qname: str, gname: str, set_id: str) -> str:  # ZSET id -> group score
    return f"asynq:{{{qname}}}:g:{gname}:{set_id}"


def all_aggregation_sets_key(qname: str) -> str:  # ZSET set key -> deadline (Unix s)
    return f"asynq:{{{qname}}}:aggregation_sets"


def quarantine_key(qname: str) -> str:  # HASH task id -> reason (pyasynq only)
    """Tasks pyasynq took out of circulation (dangling id, undecodable msg). Go never
    reads it; it shares the queue's hash tag so scripts may write it."""
    return f"asynq:{{{qname}}}:pyasynq:quarantine"


def waiting_key(qname: str) -> str:  # STRING "1" with a TTL (pyasynq only)
    """Present while some client waits for a task of the queue (``wait_result``): each
    wait's reads renew it (60 s TTL). ``done_many`` looks for announcements to send only
    when it exists, so batches of a queue nobody waits on pay nothing. Go never reads it."""
    return f"asynq:{{{qname}}}:pyasynq:waiting"


def deleted_key(qname: str) -> str:  # SET of trash containers awaiting purge (pyasynq only)
    """Registry of containers a forced queue deletion detached; their task hashes are
    deleted in batches afterwards. Go asynq has no such key and never reads it."""
    return f"asynq:{{{qname}}}:pyasynq:deleted"


def deleted_prefix(qname: str, token: str) -> str:  # + pending/scheduled/retry/archived
    return f"asynq:{{{qname}}}:pyasynq:deleted:{token}:"


def server_info_key(host: str, pid: int, server_id: str) -> str:  # STRING ServerInfo proto
    return f"asynq:servers:{{{host}:{pid}:{server_id}}}"


def workers_key(host: str, pid: int, server_id: str) -> str:  # HASH task id -> WorkerInfo
    return f"asynq:workers:{{{host}:{pid}:{server_id}}}"


def scheduler_entries_key(scheduler_id: str) -> str:  # LIST of SchedulerEntry proto
    return f"asynq:schedulers:{{{scheduler_id}}}"


def scheduler_history_key(entry_id: str) -> str:  # ZSET SchedulerEnqueueEvent -> time
    return f"asynq:scheduler_history:{entry_id}"


def scheduler_tick_key(qname: str, entry_key: str, fire_time: int) -> str:  # STRING task id
    """pyasynq only: the marker that one tick (entry identity, fire time in Unix s) of a
    periodic task was enqueued, so other schedulers of the same entry skip it. Short TTL;
    Go never reads it. Shares the queue's hash tag so the enqueue script may set it."""
    return f"asynq:{{{qname}}}:pyasynq:tick:{entry_key}:{fire_time}"


def scheduler_anchor_key(qname: str, entry_key: str) -> str:  # STRING Unix s
    """pyasynq only: the shared start of an ``@every`` entry's intervals, so every
    scheduler running the entry fires at the same instants. Go never reads it."""
    return f"asynq:{{{qname}}}:pyasynq:every:{entry_key}"


def semaphore_key(scope: str) -> str:  # ZSET id -> deadline (x/rate semaphore)
    return f"asynq:sema:{scope}"


def queue_from_key(key: str) -> str | None:
    """The queue name inside a per-queue key, or None for a global key."""
    if not key.startswith("asynq:{"):
        return None
    end = key.find("}:", len("asynq:{"))
    if end < 0:
        return None
    return key[len("asynq:{") : end]


def limit_key(qname: str, name: str, part: str) -> str:  # pyasynq only, see below
    """One part of the fleet-wide limit ``name`` (a task type or handler pattern) in a
    queue: ``running`` (ZSET task id -> lease expiry: the tasks holding a slot),
    ``starts`` (ZSET "<id> <token>" -> start time, the rate window) or ``waiting`` (ZSET
    task id -> time parked: tasks waiting in scheduled for capacity). Go never reads them."""
    return f"asynq:{{{qname}}}:pyasynq:limit:{name}:{part}"


def limits_key(qname: str) -> str:  # HASH limit name -> "<cap> <rate> <per> <seen>" (pyasynq)
    """The limits pyasynq servers enforce in the queue, as last written by one of them
    (for the Inspector). Go never reads it."""
    return f"asynq:{{{qname}}}:pyasynq:limits"
