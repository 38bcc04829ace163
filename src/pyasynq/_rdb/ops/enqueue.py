"""Enqueue: the distributor's writes (wire spec 3.1 to 3.5)."""

from __future__ import annotations

from dataclasses import dataclass

from pyasynq.errors import DuplicateTaskError, TaskIDConflictError
from pyasynq.options import Options
from pyasynq.task import Task, TaskInfo, TaskState, task_info_from

from .. import keys
from ..codec import TaskMessage, encode_task
from .base import Arg, Call, Command


def enqueue_call(msg: TaskMessage, *, now_ns: int, process_at: float, unique_ttl: float) -> Call:
    """The script that stores ``msg``: pending, scheduled (process-at in the future) or
    aggregating (a group); each with a uniqueness lock when ``unique_ttl`` (seconds, >= 1
    when given) > 0. ``process_at`` is Unix seconds, ``now_ns`` Unix nanoseconds. Lock TTLs
    are sent as whole seconds, truncated like Go."""
    q, tid = msg.queue, msg.id
    lock_ttl = int(unique_ttl)
    data = encode_task(msg)
    now = now_ns / 1_000_000_000
    tkey = keys.task_key(q, tid)
    if process_at > now:
        at = int(process_at)
        if unique_ttl > 0:
            # The lock must outlive the wait plus the unique TTL (Go: processAt+ttl-now).
            ttl = int(process_at + unique_ttl - now)
            return Call(
                "schedule_unique",
                [msg.unique_key, tkey, keys.scheduled_key(q)],
                [tid, ttl, at, data],
            )
        return Call("schedule", [tkey, keys.scheduled_key(q)], [data, at, tid])
    if msg.group_key:
        gkeys = [tkey, keys.group_key(q, msg.group_key), keys.groups_key(q)]
        args: list[Arg] = [data, tid, int(now), msg.group_key]
        if unique_ttl > 0:
            return Call("add_to_group_unique", [*gkeys, msg.unique_key], [*args, lock_ttl])
        return Call("add_to_group", gkeys, args)
    if unique_ttl > 0:
        return Call(
            "enqueue_unique",
            [msg.unique_key, tkey, keys.pending_key(q)],
            [tid, lock_ttl, data, now_ns],
        )
    return Call("enqueue", [tkey, keys.pending_key(q)], [data, tid, now_ns])


def enqueue_result(reply: object) -> None:
    """Map an enqueue script's reply: 1 ok, 0 id conflict, -1 duplicate unique task."""
    if reply == 1:
        return
    if reply == 0:
        raise TaskIDConflictError()
    if reply == -1:
        raise DuplicateTaskError()
    raise ValueError(f"unexpected enqueue reply {reply!r}")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A task ready to be written: the SADD of its queue, its script call, and the
    TaskInfo to return once the script said yes."""

    register_queue: Command
    call: Call
    info: TaskInfo
    task_key: str
    msg: bytes  # the encoded TaskMessage, to recognise our own write after a retry


def prepare(task: Task, options: Options, now_ns: int) -> Prepared:
    """Merge the task's default options with the call's and build the write."""
    opts = task.options.merged(options)
    if task.headers:
        opts = Options(headers=task.headers).merged(opts)
    now = now_ns / 1_000_000_000
    r = opts.resolve(now)
    msg = TaskMessage(
        type=task.type,
        payload=task.payload or b"",
        id=r.task_id,
        queue=r.queue,
        retry=r.max_retry,
        timeout=r.timeout,
        deadline=r.deadline,
        unique_key=keys.unique_key(r.queue, task.type, task.payload) if r.unique_ttl else "",
        retention=r.retention,
        group_key=r.group,
        headers=r.headers,
    )
    call = enqueue_call(msg, now_ns=now_ns, process_at=r.process_at, unique_ttl=r.unique_seconds)
    if r.process_at > now:
        state, next_at = TaskState.SCHEDULED, r.process_at
    elif r.group:
        state, next_at = TaskState.AGGREGATING, 0.0
    else:
        state, next_at = TaskState.PENDING, now
    info = task_info_from(msg, state, next_process_at=next_at)
    return Prepared(
        Command(("SADD", keys.ALL_QUEUES, r.queue)),
        call,
        info,
        keys.task_key(r.queue, msg.id),
        encode_task(msg),
    )
