"""A registered periodic task (asynq's scheduler entry) and its identity.

The identity is what makes replicas agree. It is asynq's PeriodicTaskConfig hash:
sha256 over the cron spec, the task type, the payload and the sorted enqueue-option
strings (plus the task's own headers, when it has any, which Go's hash leaves out).
Every scheduler that registers the same periodic task computes the same identity, so
the same (identity, fire time) names the same tick everywhere.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from pyasynq._rdb.codec import GO_ZERO_TIME_NS, SchedulerEntry
from pyasynq.options import Options
from pyasynq.task import Task

from .cron import EverySchedule, Schedule, SpecSchedule
from .goformat import option_strings

__all__ = ["Entry", "EntryInfo", "entry_identity", "entry_option_strings", "tick_task_id"]

_NS = 1_000_000_000
_FIELDS = list(Options.__dataclass_fields__)
# Namespace of the task ids of scheduled ticks (UUIDv5 of "<identity>:<fire time>").
_TICK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "pyasynq:scheduler:tick")


def entry_option_strings(task: Task, options: Options, order: Iterable[str] = ()) -> list[str]:
    """The Go option strings an entry shows: the task's own default options that the
    call does not override (in field order), then the call's options in the order given.
    Go's Inspector reads them back as the options the task is enqueued with."""
    given = [n for n in order if getattr(options, n) is not None]
    given += [n for n in _FIELDS if n not in given and getattr(options, n) is not None]
    skip = set(given)
    if skip & {"process_at", "process_in"}:
        skip |= {"process_at", "process_in"}  # the later of the two wins in asynq
    defaults = {n: getattr(task.options, n) for n in _FIELDS if n not in skip}
    call = {n: getattr(options, n) for n in given}
    return option_strings(defaults) + option_strings(call, given)


def entry_identity(spec: str, task: Task, strings: Iterable[str]) -> str:
    """asynq's PeriodicTaskConfig hash (hex sha256 of spec, type, payload and the sorted
    option strings), extended with the task headers when there are any."""
    h = hashlib.sha256()
    h.update(spec.encode())
    h.update(task.type.encode())
    h.update(task.payload or b"")
    for s in sorted(strings):
        h.update(s.encode())
    if task.headers:
        h.update(json.dumps(task.headers, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def tick_task_id(identity: str, fire_time: int) -> str:
    """The task id of one tick: a UUID (v5), so the task looks like any other, and the
    same on every scheduler."""
    return str(uuid.uuid5(_TICK_NAMESPACE, f"{identity}:{fire_time}"))


@dataclass(eq=False)
class Entry:
    """One registered periodic task. The scheduling fields are only touched by the
    scheduler's event loop."""

    id: str
    spec: str
    schedule: Schedule
    task: Task
    options: Options
    option_strings: list[str]
    identity: str
    queue: str
    next_s: int | None = None  # next fire time (Unix s); None: not scheduled / never
    prev_s: int | None = None  # last fire time; None: never (Go's zero time on the wire)
    anchor: int | None = None  # @every: shared start of the intervals
    active: bool = False
    explicit_task_id: bool = field(default=False)

    @property
    def every(self) -> bool:
        return isinstance(self.schedule, EverySchedule)

    def next_after(self, now_ns: int, location: tzinfo) -> int | None:
        if isinstance(self.schedule, EverySchedule):
            return self.schedule.next(now_ns, self.anchor)
        assert isinstance(self.schedule, SpecSchedule)
        return self.schedule.next(now_ns, location)

    def to_wire(self) -> SchedulerEntry:
        return SchedulerEntry(
            id=self.id,
            spec=self.spec,
            task_type=self.task.type,
            task_payload=self.task.payload or b"",
            enqueue_options=list(self.option_strings),
            next_enqueue_time_ns=_ns(self.next_s),
            prev_enqueue_time_ns=_ns(self.prev_s),
        )

    def info(self) -> EntryInfo:
        return EntryInfo(
            id=self.id,
            spec=self.spec,
            task=self.task,
            options=self.options,
            raw_options=tuple(self.option_strings),
            next_enqueue_at=_dt(self.next_s),
            prev_enqueue_at=_dt(self.prev_s),
        )


def _ns(seconds: int | None) -> int:
    return GO_ZERO_TIME_NS if seconds is None else seconds * _NS


def _dt(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """A registered entry as :meth:`Scheduler.entries` reports it; the field names are
    those of the Inspector's ``SchedulerEntry``. ``options`` are the ones given to
    ``register``, ``raw_options`` the Go option strings written to Redis; the times are
    None before the first run is scheduled / before the first run."""

    id: str
    spec: str
    task: Task
    options: Options
    raw_options: tuple[str, ...]
    next_enqueue_at: datetime | None
    prev_enqueue_at: datetime | None

    def __repr__(self) -> str:
        return f"EntryInfo(id={self.id!r}, spec={self.spec!r}, task={self.task!r})"
