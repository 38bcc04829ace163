"""Inspector operations (wire spec 3.20): what the Inspector, the CLI, the metrics
collector and the web dashboard read and change.

Every builder returns a :class:`Call` (a ``lua/inspect_*.lua`` script) or a
:class:`Command`; every ``*_result`` turns the reply into a value or a typed error.

Queue existence lives in the global SET ``asynq:queues``, another Redis Cluster slot than
the queue's keys, so no script can check it: like Go asynq, the caller first runs
:func:`check_queue` and raises through :func:`check_queue_result` (for read-only ops the
two may be pipelined; for writes run the check first).

Bulk operations (run/archive/delete all) go further than Go asynq: each script call moves
at most ``batch`` tasks and returns how many ids it took off the source, so Redis stays
responsive and memory flat with any number of tasks. The caller loops::

    total = 0
    while True:
        n = bulk_result(await broker.run(call))
        total += n
        if bulk_finished(n, batch):
            break

Pass the same ``now`` to every batch of an archive-all so the trimmed archive is the one
a single Go script would leave.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pyasynq.errors import (
    BrokerError,
    QueueNotEmptyError,
    QueueNotFoundError,
    QueueStateError,
    TaskNotFoundError,
    TaskStateError,
)
from pyasynq.task import TaskInfo, TaskState, task_info_from

from .. import keys
from ..codec import TaskMessage, decode_task, encode_task
from .base import Arg, Call, Command
from .results import parse_progress

DEFAULT_PAGE_SIZE = 30  # Go Inspector's default
BULK_BATCH = 1000  # ids per bulk script call
ARCHIVE_MAX_SIZE = 10_000  # trimming keeps at most 9,999 archived ids, as in Go
ARCHIVE_MAX_AGE = 90 * 24 * 3600  # archived entries older than this are trimmed
MEMORY_TASK_SAMPLE = 20  # task hashes sampled per container for memory usage
MEMORY_GROUP_SAMPLE = 5  # groups sampled for memory usage

_DAY = 24 * 3600
_ZSET_STATES = (TaskState.SCHEDULED, TaskState.RETRY, TaskState.ARCHIVED, TaskState.COMPLETED)


# --- small reply helpers ------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _int(value: object) -> int:
    """A counter or score from a reply; nil counts as 0. Scores may come as floats."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = _text(value)
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def _list(reply: object, script: str) -> list[object]:
    if not isinstance(reply, list):
        raise BrokerError(f"unexpected reply {reply!r} from {script}")
    return reply


def _code(reply: object, script: str) -> int:
    if not isinstance(reply, int):
        raise BrokerError(f"unexpected reply {reply!r} from {script}")
    return reply


def _state(state: TaskState | str) -> TaskState:
    try:
        return TaskState(state)
    except ValueError:
        names = ", ".join(s.value for s in TaskState)
        raise ValueError(f"unknown task state {state!r}; use one of {names}") from None


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise ValueError(f"batch must be a positive number of tasks, got {batch}")


def _inconsistent(queue: str, task_id: str) -> BrokerError:
    return BrokerError(
        f"task {task_id!r} in queue {queue!r} is not in the container its state names; "
        "the Redis data is inconsistent and nothing was changed"
    )


# --- queues ---------------------------------------------------------------------------------


def check_queue(queue: str) -> Command:
    """Whether ``queue`` is registered in ``asynq:queues``."""
    return Command(("SISMEMBER", keys.ALL_QUEUES, queue))


def check_queue_result(reply: object, queue: str) -> None:
    """Raise QueueNotFoundError unless the queue is registered."""
    if not reply:
        raise QueueNotFoundError(queue)


def list_queues() -> Command:
    return Command(("SMEMBERS", keys.ALL_QUEUES))


def list_queues_result(reply: object) -> list[str]:
    """Queue names, sorted."""
    if not isinstance(reply, list | set):  # redis-py turns SMEMBERS into a set
        raise BrokerError(f"unexpected reply {reply!r} from SMEMBERS")
    return sorted(_text(q) for q in reply)


def unregister_queue(queue: str) -> Command:
    """SREM the queue from ``asynq:queues``: the last step of a queue deletion."""
    return Command(("SREM", keys.ALL_QUEUES, queue))


# --- stats ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's counters at one instant (asynq's rdb.Stats without memory usage)."""

    queue: str
    pending: int
    active: int
    scheduled: int
    retry: int
    archived: int
    completed: int
    aggregating: int
    processed: int  # today (UTC), successes and failures
    failed: int  # today (UTC)
    processed_total: int
    failed_total: int
    paused: bool
    groups: int
    latency: float  # seconds since the oldest pending task was enqueued; 0 if unknown
    timestamp: float  # the ``now`` the stats were taken at (Unix seconds)

    @property
    def size(self) -> int:
        """Tasks in the queue, all states together."""
        return (
            self.pending
            + self.active
            + self.scheduled
            + self.retry
            + self.archived
            + self.completed
            + self.aggregating
        )


def current_stats(queue: str, *, now: float) -> Call:
    """Sizes, counters, pause flag and latency of ``queue``; ``now`` picks the daily keys."""
    return Call(
        "inspect_current_stats",
        [
            keys.pending_key(queue),
            keys.active_key(queue),
            keys.scheduled_key(queue),
            keys.retry_key(queue),
            keys.archived_key(queue),
            keys.completed_key(queue),
            keys.processed_key(queue, now),
            keys.failed_key(queue, now),
            keys.processed_total_key(queue),
            keys.failed_total_key(queue),
            keys.paused_key(queue),
            keys.groups_key(queue),
        ],
        [keys.task_key_prefix(queue), keys.group_key_prefix(queue)],
    )


def current_stats_result(reply: object, *, queue: str, now: float) -> QueueStats:
    r = _list(reply, "inspect_current_stats")
    if len(r) != 14:
        raise BrokerError(f"unexpected reply {reply!r} from inspect_current_stats")
    since_ns = _int(r[11])
    return QueueStats(
        queue=queue,
        pending=_int(r[0]),
        active=_int(r[1]),
        scheduled=_int(r[2]),
        retry=_int(r[3]),
        archived=_int(r[4]),
        completed=_int(r[5]),
        processed=_int(r[6]),
        failed=_int(r[7]),
        processed_total=_int(r[8]),
        failed_total=_int(r[9]),
        paused=bool(_int(r[10])),
        groups=_int(r[12]),
        aggregating=_int(r[13]),
        # As in Go: measured from the tail task's pending_since; no field means no latency.
        latency=now - since_ns / 1e9 if since_ns else 0.0,
        timestamp=now,
    )


def memory_usage(
    queue: str, *, sample: int = MEMORY_TASK_SAMPLE, group_sample: int = MEMORY_GROUP_SAMPLE
) -> Call:
    """Approximate bytes used by ``queue`` (sampled MEMORY USAGE, as Go asynq does)."""
    if sample < 1:
        raise ValueError(f"sample must be a positive number of tasks, got {sample}")
    return Call(
        "inspect_memory_usage",
        [
            keys.active_key(queue),
            keys.pending_key(queue),
            keys.scheduled_key(queue),
            keys.retry_key(queue),
            keys.archived_key(queue),
            keys.completed_key(queue),
            keys.groups_key(queue),
        ],
        [keys.task_key_prefix(queue), sample, max(group_sample, 0), keys.group_key_prefix(queue)],
    )


def memory_usage_result(reply: object) -> int:
    return _code(reply, "inspect_memory_usage")


@dataclass(frozen=True, slots=True)
class DailyStats:
    """Processed and failed counts of one UTC day."""

    queue: str
    date: date
    processed: int
    failed: int


def _history_days(days: int, now: float) -> list[float]:
    if days < 1:
        raise ValueError(f"the number of days must be positive, got {days}")
    return [now - i * _DAY for i in range(days)]


def history(queue: str, days: int, *, now: float) -> Command:
    """Daily counters for today back ``days`` - 1 days (UTC): one MGET, keys in one slot."""
    args: list[Arg] = ["MGET"]
    for t in _history_days(days, now):
        args += [keys.processed_key(queue, t), keys.failed_key(queue, t)]
    return Command(tuple(args))


def history_result(reply: object, *, queue: str, days: int, now: float) -> list[DailyStats]:
    """Newest day first."""
    r = _list(reply, "MGET")
    stamps = _history_days(days, now)
    if len(r) != 2 * len(stamps):
        raise BrokerError(f"unexpected reply {reply!r} from MGET")
    return [
        DailyStats(
            queue=queue,
            date=datetime.fromtimestamp(t, UTC).date(),
            processed=_int(r[2 * i]),
            failed=_int(r[2 * i + 1]),
        )
        for i, t in enumerate(stamps)
    ]


# --- reading tasks --------------------------------------------------------------------------


def get_task_info(queue: str, task_id: str, *, now: float) -> Call:
    """One task with its state, result and next process time. Check the queue first."""
    return Call(
        "inspect_task_info",
        [keys.task_key(queue, task_id), keys.lease_key(queue)],
        [task_id, int(now), keys.queue_prefix(queue)],
    )


def _task_info_parts(reply: object, queue: str, task_id: str) -> list[object]:
    if reply is None:
        raise TaskNotFoundError(queue, task_id)
    r = _list(reply, "inspect_task_info")
    if len(r) != 6:
        raise BrokerError(f"unexpected reply {reply!r} from inspect_task_info")
    return r


def get_task_info_result(reply: object, *, queue: str, task_id: str) -> TaskInfo:
    """The TaskInfo, or TaskNotFoundError when the task hash is gone."""
    msg = get_task_message_result(reply, queue=queue, task_id=task_id)
    r = _task_info_parts(reply, queue, task_id)
    try:
        state = TaskState(_text(r[1]))
    except ValueError:
        raise BrokerError(f"task {task_id!r} has an unknown state {r[1]!r}") from None
    return task_info_from(
        msg,
        state,
        next_process_at=_int(r[2]),
        result=_bytes(r[3]),
        is_orphaned=bool(r[4]),
        progress=parse_progress(r[5]),
    )


def get_task_message_result(reply: object, *, queue: str, task_id: str) -> TaskMessage:
    """The decoded TaskMessage inside a :func:`get_task_info` reply (for payload updates)."""
    r = _task_info_parts(reply, queue, task_id)
    return decode_task(_bytes(r[0]))


def list_tasks(
    queue: str,
    state: TaskState | str,
    *,
    now: float,
    page_size: int = DEFAULT_PAGE_SIZE,
    page: int = 1,
    group: str | None = None,
) -> Call:
    """One page (1-based) of the tasks in ``state``. Pending and active are listed oldest
    first (from the list's tail), the zsets by ascending score; aggregating tasks are
    listed per ``group``. Check the queue first."""
    st = _state(state)
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    if page < 1:
        raise ValueError(f"page numbers start at 1, got {page}")
    if (st is TaskState.AGGREGATING) != (group is not None):
        raise ValueError("pass group= for aggregating tasks, and only for them")
    start = page_size * (page - 1)
    stop = start + page_size - 1
    prefix = keys.task_key_prefix(queue)
    if st in (TaskState.PENDING, TaskState.ACTIVE):
        container = keys.pending_key(queue) if st is TaskState.PENDING else keys.active_key(queue)
        return Call(
            "inspect_list_tail",
            [container, keys.lease_key(queue)],
            [start, stop, prefix, int(now), 1 if st is TaskState.ACTIVE else 0],
        )
    if st is TaskState.AGGREGATING:
        assert group is not None
        zset = keys.group_key(queue, group)
    else:
        zset = keys.queue_prefix(queue) + st.value
    return Call("inspect_list_zset", [zset], [start, stop, prefix])


def list_tasks_result(reply: object, *, state: TaskState | str, now: float) -> list[TaskInfo]:
    """TaskInfos in listing order; entries whose msg cannot be decoded are skipped (as Go)."""
    st = _state(state)
    r = _list(reply, "inspect_list_*")
    tail = st in (TaskState.PENDING, TaskState.ACTIVE)  # inspect_list_tail: 4 per task
    step = 4 if tail else 3
    if len(r) % step:
        raise BrokerError(f"unexpected reply {reply!r} from inspect_list_*")
    out: list[TaskInfo] = []
    for i in range(0, len(r), step):
        try:
            msg = decode_task(_bytes(r[i]))
        except BrokerError:
            continue
        progress = None
        if tail:
            result, orphaned = _bytes(r[i + 1]), bool(r[i + 2])
            progress = parse_progress(r[i + 3])
            next_at = now if st is TaskState.PENDING else 0
        else:
            result, orphaned = _bytes(r[i + 2]), False
            scored = st in (TaskState.SCHEDULED, TaskState.RETRY)
            next_at = _int(r[i + 1]) if scored else 0
        out.append(
            task_info_from(
                msg,
                st,
                next_process_at=next_at,
                result=result,
                is_orphaned=orphaned,
                progress=progress,
            )
        )
    return out


def groups(queue: str) -> Call:
    """The queue's groups with their sizes."""
    return Call("inspect_groups", [keys.groups_key(queue)], [keys.group_key_prefix(queue)])


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group of aggregating tasks: its name and how many tasks wait in it."""

    group: str
    size: int


def groups_result(reply: object) -> list[GroupInfo]:
    """Sorted by group name."""
    r = _list(reply, "inspect_groups")
    found = [GroupInfo(_text(r[i]), _int(r[i + 1])) for i in range(0, len(r) - 1, 2)]
    return sorted(found, key=lambda g: g.group)


# --- one task -------------------------------------------------------------------------------


def _task_reply(
    reply: object,
    script: str,
    queue: str,
    task_id: str,
    refused: dict[int, str],
    *,
    inconsistent: bool = True,
) -> None:
    """The reply of a one-task script: 1 done, 0 no such task, a code of ``refused`` (the
    task's state does not allow it), -3 the hash names a container without the id."""
    code = _code(reply, script)
    if code == 1:
        return
    if code == 0:
        raise TaskNotFoundError(queue, task_id)
    if code in refused:
        raise TaskStateError(refused[code])
    if code == -3 and inconsistent:
        raise _inconsistent(queue, task_id)
    raise BrokerError(f"unexpected reply {reply!r} from {script}")


def run_task(queue: str, task_id: str) -> Call:
    """Move a scheduled/retry/archived/completed/aggregating task to pending."""
    return Call(
        "inspect_run_task",
        [keys.task_key(queue, task_id), keys.pending_key(queue), keys.groups_key(queue)],
        [task_id, keys.queue_prefix(queue), keys.group_key_prefix(queue)],
    )


def run_task_result(reply: object, *, queue: str, task_id: str) -> None:
    where = f"task {task_id!r} in queue {queue!r}"
    _task_reply(reply, "inspect_run_task", queue, task_id, {
        -1: f"{where} is already running; wait for it to finish, or cancel it, before "
            "running it again",
        -2: f"{where} is already pending; a worker will run it when it reaches the front "
            "of the queue",
    })  # fmt: skip


def archive_task(queue: str, task_id: str, *, now: float) -> Call:
    """Archive a task that is neither active nor archived; the archive is then trimmed."""
    t = int(now)
    return Call(
        "inspect_archive_task",
        [keys.task_key(queue, task_id), keys.archived_key(queue), keys.groups_key(queue)],
        [
            task_id,
            t,
            t - ARCHIVE_MAX_AGE,
            ARCHIVE_MAX_SIZE,
            keys.queue_prefix(queue),
            keys.group_key_prefix(queue),
        ],
    )


def archive_task_result(reply: object, *, queue: str, task_id: str) -> None:
    where = f"task {task_id!r} in queue {queue!r}"
    _task_reply(reply, "inspect_archive_task", queue, task_id, {
        -1: f"{where} is already archived",
        -2: f"{where} is running and cannot be archived; cancel it first (it is retried "
            "or archived when its handler gives up)",
    })  # fmt: skip


def delete_task(queue: str, task_id: str) -> Call:
    """Delete a task that is not active, releasing its uniqueness lock if it owns it."""
    return Call(
        "inspect_delete_task",
        [keys.task_key(queue, task_id), keys.groups_key(queue)],
        [task_id, keys.queue_prefix(queue), keys.group_key_prefix(queue)],
    )


def delete_task_result(reply: object, *, queue: str, task_id: str) -> None:
    where = f"task {task_id!r} in queue {queue!r}"
    _task_reply(reply, "inspect_delete_task", queue, task_id, {
        -1: f"{where} is running and cannot be deleted; cancel it first, then delete it "
            "once it has left the active state",
    })  # fmt: skip


def update_task_payload(queue: str, task_id: str, msg: TaskMessage, payload: bytes) -> Call:
    """Rewrite a scheduled task's msg with ``payload``; ``msg`` is the message as read by
    :func:`get_task_info` (every other field, the unique key included, is kept)."""
    new = dataclasses.replace(msg, payload=payload)
    return Call("inspect_update_payload", [keys.task_key(queue, task_id)], [encode_task(new)])


def update_task_payload_result(reply: object, *, queue: str, task_id: str) -> None:
    where = f"task {task_id!r} in queue {queue!r}"
    _task_reply(reply, "inspect_update_payload", queue, task_id, {
        -1: f"{where} is not scheduled; only a scheduled task's payload can be updated",
    }, inconsistent=False)  # fmt: skip


def _source(queue: str, st: TaskState, group: str | None, allowed: tuple[TaskState, ...]) -> str:
    if st not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise ValueError(f"this operation applies to {names} tasks, not {st.value}")
    if st is TaskState.AGGREGATING:
        if not group:
            raise ValueError("pass group= to act on aggregating tasks")
        return keys.group_key(queue, group)
    if group is not None:
        raise ValueError("group= applies only to aggregating tasks")
    return keys.queue_prefix(queue) + st.value


def run_all(
    queue: str, state: TaskState | str, *, group: str | None = None, batch: int = BULK_BATCH
) -> Call:
    """One batch of RunAll{Scheduled,Retry,Archived,Aggregating}."""
    st = _state(state)
    _check_batch(batch)
    allowed = (TaskState.SCHEDULED, TaskState.RETRY, TaskState.ARCHIVED, TaskState.AGGREGATING)
    src = _source(queue, st, group, allowed)
    return Call(
        "inspect_run_all",
        [src, keys.pending_key(queue), keys.groups_key(queue)],
        [keys.task_key_prefix(queue), batch, group or ""],
    )


def archive_all(
    queue: str,
    state: TaskState | str,
    *,
    now: float,
    group: str | None = None,
    batch: int = BULK_BATCH,
) -> Call:
    """One batch of ArchiveAll{Pending,Scheduled,Retry,Aggregating}."""
    st = _state(state)
    _check_batch(batch)
    t = int(now)
    prefix = keys.task_key_prefix(queue)
    if st is TaskState.PENDING and group is None:
        return Call(
            "inspect_archive_all_pending",
            [keys.pending_key(queue), keys.archived_key(queue)],
            [t, t - ARCHIVE_MAX_AGE, ARCHIVE_MAX_SIZE, prefix, batch],
        )
    allowed = (TaskState.PENDING, TaskState.SCHEDULED, TaskState.RETRY, TaskState.AGGREGATING)
    src = _source(queue, st, group, allowed)
    return Call(
        "inspect_archive_all",
        [src, keys.archived_key(queue), keys.groups_key(queue)],
        [t, t - ARCHIVE_MAX_AGE, ARCHIVE_MAX_SIZE, prefix, batch, group or ""],
    )


def delete_all(
    queue: str, state: TaskState | str, *, group: str | None = None, batch: int = BULK_BATCH
) -> Call:
    """One batch of DeleteAll{Pending,Scheduled,Retry,Archived,Completed,Aggregating}.
    Like Go, owned uniqueness locks are released except for pending and aggregating."""
    st = _state(state)
    _check_batch(batch)
    prefix = keys.task_key_prefix(queue)
    if st is TaskState.PENDING and group is None:
        return Call("inspect_delete_all_pending", [keys.pending_key(queue)], [prefix, batch])
    src = _source(queue, st, group, (*_ZSET_STATES, TaskState.PENDING, TaskState.AGGREGATING))
    release = 0 if st is TaskState.AGGREGATING else 1
    return Call(
        "inspect_delete_all", [src, keys.groups_key(queue)], [prefix, batch, release, group or ""]
    )


def bulk_result(reply: object) -> int:
    """How many ids one bulk batch took off its source."""
    return _code(reply, "inspect bulk script")


def bulk_finished(taken: int, batch: int) -> bool:
    """A batch that took fewer ids than it could found the source drained."""
    return taken < batch


# --- deleting a queue -----------------------------------------------------------------------


def delete_queue(queue: str, *, force: bool, token: str | None = None) -> Call:
    """Delete the queue's tasks, all or nothing (see lua/inspect_delete_queue.lua). After a
    success, run :func:`unregister_queue`, then :func:`purge_deleted` until it is
    :func:`bulk_finished`. ``token`` names this call's trash keys (random by default)."""
    return Call(
        "inspect_delete_queue",
        [
            keys.pending_key(queue),
            keys.active_key(queue),
            keys.scheduled_key(queue),
            keys.retry_key(queue),
            keys.archived_key(queue),
            keys.lease_key(queue),
            keys.deleted_key(queue),
        ],
        [1 if force else 0, keys.deleted_prefix(queue, token or uuid.uuid4().hex)],
    )


def delete_queue_result(reply: object, *, queue: str) -> None:
    code = _code(reply, "inspect_delete_queue")
    if code == 1:
        return
    if code == -1:
        raise QueueNotEmptyError(queue)
    if code == -2:
        raise QueueStateError(
            f"queue {queue!r} has active tasks and cannot be deleted, even with force; "
            "wait for them to finish (or cancel them) and try again"
        )
    raise BrokerError(f"unexpected reply {reply!r} from inspect_delete_queue")


def purge_deleted(queue: str, *, batch: int = BULK_BATCH) -> Call:
    """One batch of deleting the task hashes a forced queue deletion detached; read the
    reply with :func:`bulk_result`."""
    _check_batch(batch)
    return Call(
        "inspect_purge_deleted", [keys.deleted_key(queue)], [keys.task_key_prefix(queue), batch]
    )


# --- plain commands -------------------------------------------------------------------------


def cancel(task_id: str) -> Command:
    """Ask every server to cancel ``task_id`` if it runs it (best effort, PUBLISH)."""
    return Command(("PUBLISH", keys.CANCEL_CHANNEL, task_id))


def cancel_result(reply: object) -> int:
    """How many subscribers (servers) received the request."""
    return _code(reply, "PUBLISH")


def cluster_key_slot(queue: str) -> Command:
    """The Redis Cluster slot of the queue (of its pending key, as Go asynq computes it)."""
    return Command(("CLUSTER", "KEYSLOT", keys.pending_key(queue)))


def cluster_key_slot_result(reply: object) -> int:
    return _code(reply, "CLUSTER KEYSLOT")
