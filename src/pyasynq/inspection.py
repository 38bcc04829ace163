"""What the Inspector returns: queue, server, worker and scheduler snapshots (asynq's
QueueInfo, DailyStats, GroupInfo, ServerInfo, WorkerInfo, SchedulerEntry,
SchedulerEnqueueEvent and ClusterNode). Tasks are :class:`pyasynq.TaskInfo`.

Points in time are aware UTC datetimes and spans are timedeltas, as in TaskInfo; a time
Go records as its zero time ("never") is ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ._rdb import codec
from ._rdb.goopts import parse_option_strings
from ._rdb.ops.inspect import DailyStats, GroupInfo, QueueStats
from ._rdb.ops.inspect_extra import ClusterNode
from .options import Options
from .task import Task

__all__ = [
    "ClusterNode",
    "DailyStats",
    "GroupInfo",
    "LimitInfo",
    "QueueInfo",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "ServerInfo",
    "WorkerInfo",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt_ns(ns: int | None) -> datetime | None:
    """A protobuf Timestamp (ns since the epoch) as a datetime; absent or Go's zero
    time is None. Sub-microsecond digits are dropped (datetime's resolution)."""
    if ns is None or ns == codec.GO_ZERO_TIME_NS:
        return None
    return _EPOCH + timedelta(microseconds=ns // 1000)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue at one instant (asynq's QueueInfo)."""

    queue: str
    memory_usage: int  # approximate bytes, from sampling (MEMORY USAGE)
    latency: timedelta  # age of the oldest pending task; 0 when there is none
    size: int  # tasks in all states together
    groups: int  # number of groups with aggregating tasks
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
    timestamp: datetime  # when the snapshot was taken


@dataclass(frozen=True, slots=True)
class LimitInfo:
    """A fleet-wide limit in one queue, as pyasynq servers last reported it (pyasynq only;
    see docs/limits.md).

    ``name`` is the task type (or the handler pattern) limited. ``concurrency``/``rate``
    are None when not set. ``running`` counts the tasks holding a slot (including a
    woken waiter's reserved slot, and for up to a lease duration a crashed worker's),
    ``started`` the starts in the current rate window, ``waiting`` the tasks parked in
    scheduled until capacity frees. ``reported`` is when a server last enforced it.
    """

    queue: str
    name: str
    concurrency: int | None
    rate: int | None
    per: float
    running: int
    started: int
    waiting: int
    reported: datetime


def queue_info_from(stats: QueueStats, memory_usage: int) -> QueueInfo:
    return QueueInfo(
        queue=stats.queue,
        memory_usage=memory_usage,
        latency=timedelta(seconds=stats.latency),
        size=stats.size,
        groups=stats.groups,
        pending=stats.pending,
        active=stats.active,
        scheduled=stats.scheduled,
        retry=stats.retry,
        archived=stats.archived,
        completed=stats.completed,
        aggregating=stats.aggregating,
        processed=stats.processed,
        failed=stats.failed,
        processed_total=stats.processed_total,
        failed_total=stats.failed_total,
        paused=stats.paused,
        timestamp=datetime.fromtimestamp(stats.timestamp, UTC),
    )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A task a server is running right now."""

    task_id: str
    task_type: str
    task_payload: bytes
    queue: str
    started: datetime | None
    deadline: datetime | None  # when the worker must be done with the task


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """A running server (from its last heartbeat) and its busy workers."""

    id: str
    host: str
    pid: int
    concurrency: int
    queues: dict[str, int]  # queue -> priority, as configured
    strict_priority: bool
    started: datetime | None
    status: str  # "active", "stopped", ...
    active_workers: list[WorkerInfo] = field(default_factory=list)


def server_infos_from(
    servers: Iterable[codec.ServerInfo], workers: Iterable[codec.WorkerInfo]
) -> list[ServerInfo]:
    """Servers sorted by host, pid and id, each with its workers (oldest first); workers
    of servers not listed are dropped, as Go does."""
    busy: dict[str, list[WorkerInfo]] = {}
    for w in workers:
        busy.setdefault(w.server_id, []).append(
            WorkerInfo(
                task_id=w.task_id,
                task_type=w.task_type,
                task_payload=w.task_payload,
                queue=w.queue,
                started=_dt_ns(w.start_time_ns),
                deadline=_dt_ns(w.deadline_ns),
            )
        )
    out = []
    for s in servers:
        mine = busy.get(s.server_id, [])
        mine.sort(key=lambda w: (w.started or _EPOCH, w.task_id))
        out.append(
            ServerInfo(
                id=s.server_id,
                host=s.host,
                pid=s.pid,
                concurrency=s.concurrency,
                queues=dict(s.queues),
                strict_priority=s.strict_priority,
                started=_dt_ns(s.start_time_ns),
                status=s.status,
                active_workers=mine,
            )
        )
    out.sort(key=lambda s: (s.host, s.pid, s.id))
    return out


@dataclass(frozen=True, slots=True)
class SchedulerEntry:
    """A periodic task registered with a running scheduler."""

    id: str
    spec: str  # cron spec, e.g. "*/5 * * * *" or "@every 30s"
    task_type: str
    task_payload: bytes
    options: Options  # parsed from raw_options; unreadable ones are left out
    raw_options: tuple[str, ...]  # as stored: Go option strings such as 'Queue("cron")'
    next_enqueue_at: datetime | None
    prev_enqueue_at: datetime | None  # None until the first enqueue

    @property
    def task(self) -> Task:
        """The task the entry enqueues (options not included: see ``options``)."""
        return Task(self.task_type, self.task_payload)


def scheduler_entry_from(e: codec.SchedulerEntry) -> SchedulerEntry:
    return SchedulerEntry(
        id=e.id,
        spec=e.spec,
        task_type=e.task_type,
        task_payload=e.task_payload,
        options=parse_option_strings(e.enqueue_options),
        raw_options=tuple(e.enqueue_options),
        next_enqueue_at=_dt_ns(e.next_enqueue_time_ns),
        prev_enqueue_at=_dt_ns(e.prev_enqueue_time_ns),
    )


@dataclass(frozen=True, slots=True)
class SchedulerEnqueueEvent:
    """One enqueue done by a scheduler entry."""

    task_id: str
    enqueued_at: datetime | None


def enqueue_event_from(e: codec.SchedulerEnqueueEvent) -> SchedulerEnqueueEvent:
    return SchedulerEnqueueEvent(task_id=e.task_id, enqueued_at=_dt_ns(e.enqueue_time_ns))
