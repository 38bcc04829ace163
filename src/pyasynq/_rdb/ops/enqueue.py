"""Enqueue: the distributor's writes (wire spec 3.1 to 3.5).

One task is one script call (:func:`prepare`). Many tasks (:func:`plan_many`) are one
pipeline in which the plain pending tasks of a queue share ``enqueue_batch`` calls of up
to :data:`BATCH_SIZE` tasks, and every other task keeps its own script call.

Outside a Redis Cluster the scripts also register the queue in ``asynq:queues`` (asynq
does it on every enqueue) and announce new pending work on ``pyasynq:wake``: one command
per enqueue instead of three. In a Cluster ``asynq:queues`` lives in another slot, so the
caller sends the SADD beside the script (``register_queue``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyasynq.errors import BrokerError, DuplicateTaskError, PyAsynqError, TaskIDConflictError
from pyasynq.options import (
    DEFAULT_MAX_RETRY,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    NO_OPTIONS,
    Options,
    Resolved,
    resolve_merged,
    uuid4_strings,
)
from pyasynq.task import EnqueueResult, Task, TaskInfo, TaskState

from .. import keys
from ..codec import TaskMessage, encode_task, split_at_id, with_id
from .base import Arg, Call, Command, Op

BATCH_SIZE = 1000
"""Tasks per ``enqueue_batch`` call: Redis runs a script alone, so calls stay short."""

_PENDING_SCRIPTS = frozenset({"enqueue", "enqueue_unique"})
_DEFAULT_TIMEOUT = timedelta(seconds=DEFAULT_TIMEOUT)


def enqueue_call(
    msg: TaskMessage,
    *,
    now_ns: int,
    process_at: float,
    unique_ttl: float,
    data: bytes | None = None,
    register: bool = False,
    wake: bool = False,
) -> Call:
    """The script that stores ``msg``: pending, scheduled (process-at in the future) or
    aggregating (a group); each with a uniqueness lock when ``unique_ttl`` (seconds, >= 1
    when given) > 0. ``process_at`` is Unix seconds, ``now_ns`` Unix nanoseconds. Lock TTLs
    are sent as whole seconds, truncated like Go. ``data`` is ``msg`` encoded, if known.

    ``register`` makes the script add the queue to ``asynq:queues`` first (never in a
    Cluster); ``wake`` makes a pending task's script publish the queue on ``pyasynq:wake``
    once stored (ignored for the other kinds)."""
    call = _bare_call(
        msg, now_ns, process_at, unique_ttl, encode_task(msg) if data is None else data
    )
    pending = call.script in _PENDING_SCRIPTS
    if register or (wake and pending):
        # The optional tail every enqueue script reads: KEYS asynq:queues; ARGV queue
        # name, then (pending scripts) the wake channel.
        if register:
            call.keys.append(keys.ALL_QUEUES)
        call.args.append(msg.queue)
        if pending:
            call.args.append(keys.WAKE_CHANNEL if wake else "")
    return call


def _bare_call(
    msg: TaskMessage, now_ns: int, process_at: float, unique_ttl: float, data: bytes
) -> Call:
    q, tid = msg.queue, msg.id
    lock_ttl = int(unique_ttl)
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


def enqueue_outcome(reply: object, registered: object = None) -> None:
    """Raise for a failed enqueue script, then for a failed SADD of the queue sent beside
    it (a Cluster): a task whose queue is missing from asynq:queues is invisible to the
    Inspector, CLI and asynqmon, so that must not pass silently. (A script that registers
    the queue itself fails as a whole, before storing anything.)"""
    if isinstance(reply, BrokerError):
        raise reply
    enqueue_result(reply)
    if isinstance(registered, BrokerError):
        raise BrokerError(
            f"the task was stored, but registering its queue in asynq:queues failed: {registered}"
        )


def wake(queue: str) -> Command:
    """Tell idle pyasynq workers that ``queue`` has new pending work (Go workers poll),
    for writers whose script does not publish it itself."""
    return Command(("PUBLISH", keys.WAKE_CHANNEL, queue))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A task ready to be written: the SADD of its queue (to send beside the script when
    the script does not register the queue itself), its script call, and the TaskInfo to
    return once the script said yes."""

    register_queue: Command
    call: Call
    info: TaskInfo
    task_key: str
    msg: bytes  # the encoded TaskMessage, to recognise our own write after a retry


def prepare(
    task: Task, options: Options, now_ns: int, *, register: bool = False, wake: bool = False
) -> Prepared:
    """Merge the task's default options with the call's and build the write;
    ``register`` and ``wake`` as in :func:`enqueue_call`."""
    if options is NO_OPTIONS and task.options is NO_OPTIONS and not task.headers:
        return _prepare_default(task, now_ns, register, wake)
    now = now_ns / 1_000_000_000
    r = resolve_merged(task.options, options, now, task.headers)
    msg = _message(task, r)
    data = encode_task(msg)
    call = enqueue_call(
        msg,
        now_ns=now_ns,
        process_at=r.process_at,
        unique_ttl=r.unique_seconds,
        data=data,
        register=register,
        wake=wake,
    )
    if r.process_at > now:
        state, next_at = TaskState.SCHEDULED, _dt(r.process_at)
    elif r.group:
        state, next_at = TaskState.AGGREGATING, None
    else:
        state, next_at = TaskState.PENDING, _dt(now)
    return Prepared(
        Command(("SADD", keys.ALL_QUEUES, r.queue)),
        call,
        _info(r, task, state, next_at),
        keys.task_key(r.queue, r.task_id),
        data,
    )


def _prepare_default(task: Task, now_ns: int, register: bool, wake: bool) -> Prepared:
    """:func:`prepare` for a task with no option anywhere (asynq's defaults, pending now):
    nothing to merge, resolve or validate, and the message encoded by hand around a
    constant tail. Builds what the general path would (a test compares them)."""
    tid = _next_id()
    payload = task.payload or b""
    data = with_id(_default_head(task.type, payload), _TAIL, tid)
    ckeys = [_TASK_PREFIX + tid, _PENDING_DEFAULT]
    args: list[Arg] = [data, tid, now_ns]
    if register or wake:
        if register:
            ckeys.append(keys.ALL_QUEUES)
        args += (DEFAULT_QUEUE, keys.WAKE_CHANNEL if wake else "")
    info = TaskInfo(
        id=tid,
        queue=DEFAULT_QUEUE,
        type=task.type,
        payload=payload,
        state=TaskState.PENDING,
        max_retry=DEFAULT_MAX_RETRY,
        timeout=_DEFAULT_TIMEOUT,
        next_process_at=datetime.fromtimestamp(now_ns / 1_000_000_000, UTC),
        headers={},
    )
    return Prepared(_REGISTER_DEFAULT, Call("enqueue", ckeys, args), info, ckeys[0], data)


def _default_head(type_: str, payload: bytes) -> bytes:
    """A default task's TaskMessage up to its id: fields type (1) and payload (2); then
    ``with_id(head, _TAIL, id)`` is the whole message (see codec.split_at_id)."""
    head = _TYPE_FIELDS.get(type_)
    if head is None:
        if len(_TYPE_FIELDS) >= 1024:  # task types are few; don't grow without bound
            _TYPE_FIELDS.clear()
        head = _TYPE_FIELDS[type_] = _field(b"\x0a", type_.encode())
    return head + _field(b"\x12", payload) if payload else head


def _field(tag: bytes, raw: bytes) -> bytes:
    """A protobuf length-delimited field (proto3 writes none for an empty value)."""
    n = len(raw)
    if not n:
        return b""
    if n < 0x80:
        return b"%b%c%b" % (tag, n, raw)
    size = bytearray()
    while n > 0x7F:
        size.append(n & 0x7F | 0x80)
        n >>= 7
    size.append(n)
    return b"".join((tag, size, raw))


# What a default task's TaskMessage holds after its type (1), payload (2) and id (3).
_TAIL = encode_task(
    TaskMessage(queue=DEFAULT_QUEUE, retry=DEFAULT_MAX_RETRY, timeout=DEFAULT_TIMEOUT)
)
_TYPE_FIELDS: dict[str, bytes] = {}
_TASK_PREFIX = keys.task_key(DEFAULT_QUEUE, "")
_PENDING_DEFAULT = keys.pending_key(DEFAULT_QUEUE)

_ids: list[str] = []  # task ids made ahead: one read of the OS' random source per 64


def _next_id() -> str:
    """A new random task id, as :func:`~pyasynq.options.new_task_id` (list.pop is atomic:
    threads sharing a client never get the same one)."""
    try:
        return _ids.pop()
    except IndexError:
        _ids.extend(uuid4_strings(64))
        return _ids.pop()


if hasattr(os, "register_at_fork"):
    # A forked child must not hand out the ids its parent also holds.
    os.register_at_fork(after_in_child=_ids.clear)


_REGISTER_DEFAULT = Command(("SADD", keys.ALL_QUEUES, DEFAULT_QUEUE))


def _message(task: Task, r: Resolved) -> TaskMessage:
    return TaskMessage(
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


def _info(r: Resolved, task: Task, state: TaskState, next_at: datetime | None) -> TaskInfo:
    return TaskInfo(
        id=r.task_id,
        queue=r.queue,
        type=task.type,
        payload=task.payload or b"",
        state=state,
        max_retry=r.max_retry,
        timeout=_td(r.timeout),
        deadline=_dt(r.deadline),
        group=r.group,
        next_process_at=next_at,
        retention=_td(r.retention),
        headers=r.headers,  # a fresh dict of its own (Options.resolve copies)
    )


def _dt(unix_seconds: float) -> datetime | None:
    return datetime.fromtimestamp(unix_seconds, UTC) if unix_seconds else None


def _td(seconds: int) -> timedelta | None:
    if seconds == DEFAULT_TIMEOUT:
        return _DEFAULT_TIMEOUT  # timedelta is immutable: one will do
    return timedelta(seconds=seconds) if seconds else None


# --------------------------------------------------------------------------- many tasks


@dataclass(slots=True)
class EnqueuePlan:
    """The writes of many tasks, to run as one pipeline (:func:`plan_many`), and how to
    read the replies back (:func:`plan_results`)."""

    ops: list[Op]
    infos: list[TaskInfo]  # per task, in input order
    replies: list[tuple[int, int]]  # per task: op index, index in that op's reply (-1: all)
    registrations: list[int]  # per task: op index of its queue's SADD, -1 when none


def plan_many(items: Sequence[tuple[Task, Options]], now_ns: int, *, cluster: bool) -> EnqueuePlan:
    """Build the writes for ``items`` (task, call options), enqueued at ``now_ns``.

    Plain pending tasks (no uniqueness, group or future process-at) go into one
    ``enqueue_batch`` call per queue and :data:`BATCH_SIZE` tasks; the others get their
    own script call. Outside a ``cluster`` the scripts register their queue; in one, a
    SADD per queue goes into the pipeline. The pipeline has the outcome of storing the
    tasks one by one in input order: a pending task that reuses the id of a task of
    another kind earlier in the input starts a new batch, so it still finds that task."""
    planner = _Planner(len(items), now_ns, cluster)
    fast, general = planner.fast, planner.general
    for task, options in items:
        if options is NO_OPTIONS and task.options is NO_OPTIONS and not task.headers:
            fast(task)
        else:
            general(task, options)
    return planner.finish()


_BATCH_ARGS = 3  # ARGV of enqueue_batch before the tasks: now, queue, wake channel


class _Planner:
    __slots__ = (
        "cluster",
        "next_id",
        "now",
        "now_dt",
        "now_ns",
        "open",
        "plan",
        "sadd",
        "taken",
        "templates",
    )

    def __init__(self, n: int, now_ns: int, cluster: bool) -> None:
        self.plan = EnqueuePlan([], [], [], [])
        self.now_ns = now_ns
        self.now = now_ns / 1_000_000_000
        self.now_dt = datetime.fromtimestamp(self.now, UTC)
        self.next_id = uuid4_strings(n).pop  # one read of the random source for all
        self.cluster = cluster
        self.sadd: dict[str, int] = {}  # queue -> op index of its SADD (cluster)
        self.open: dict[str, tuple[Call, int, str]] = {}  # queue -> batch, op index, key prefix
        self.taken: dict[str, set[str]] = {}  # queue -> ids of single calls since it opened
        self.templates: dict[object, tuple[bytes, bytes]] = {}  # message shape -> split_at_id

    def fast(self, task: Task) -> None:
        """A task with no options anywhere: asynq's defaults, pending now."""
        tid = self.next_id()
        payload = task.payload or b""
        shape = (task.type, payload)
        parts = self.templates.get(shape)
        if parts is None:
            parts = self.templates[shape] = (_default_head(task.type, payload), _TAIL)
        info = TaskInfo(
            id=tid,
            queue=DEFAULT_QUEUE,
            type=task.type,
            payload=payload,
            state=TaskState.PENDING,
            max_retry=DEFAULT_MAX_RETRY,
            timeout=_DEFAULT_TIMEOUT,
            next_process_at=self.now_dt,
            headers={},
        )
        self._batched(DEFAULT_QUEUE, tid, with_id(*parts, tid), info, fresh=True)

    def general(self, task: Task, options: Options) -> None:
        now = self.now
        r = resolve_merged(task.options, options, now, task.headers, self.next_id)
        if r.process_at > now or r.group or r.unique_ttl:
            msg = _message(task, r)
            call = enqueue_call(
                msg,
                now_ns=self.now_ns,
                process_at=r.process_at,
                unique_ttl=r.unique_seconds,
                register=not self.cluster,
                wake=True,
            )
            if r.process_at > now:
                state, next_at = TaskState.SCHEDULED, _dt(r.process_at)
            elif r.group:
                state, next_at = TaskState.AGGREGATING, None
            else:
                state, next_at = TaskState.PENDING, self.now_dt
            self._single(call, r.queue, r.task_id, _info(r, task, state, next_at))
            return
        payload = task.payload or b""
        headers = tuple(sorted(r.headers.items())) if r.headers else ()
        shape = (
            task.type,
            payload,
            r.queue,
            r.max_retry,
            r.timeout,
            r.deadline,
            r.retention,
            headers,
        )
        parts = self.templates.get(shape)
        if parts is None:
            parts = self.templates[shape] = split_at_id(_message(task, r))
        info = _info(r, task, TaskState.PENDING, self.now_dt)
        self._batched(r.queue, r.task_id, with_id(*parts, r.task_id), info, fresh=False)

    def _registration(self, queue: str) -> int:
        if not self.cluster:
            return -1
        index = self.sadd.get(queue)
        if index is None:
            index = self.sadd[queue] = len(self.plan.ops)
            self.plan.ops.append(Command(("SADD", keys.ALL_QUEUES, queue)))
        return index

    def _batched(self, queue: str, tid: str, data: bytes, info: TaskInfo, *, fresh: bool) -> None:
        plan = self.plan
        plan.registrations.append(self._registration(queue))
        slot = self.open.get(queue)
        if (
            slot is None
            or len(slot[0].keys) > BATCH_SIZE
            # An id of its own that a single call since the batch opened has taken: the
            # task must run after that call, as it comes after it in the input.
            or (not fresh and tid in self.taken.get(queue, ()))
        ):
            call = Call(
                "enqueue_batch", [keys.pending_key(queue)], [self.now_ns, queue, keys.WAKE_CHANNEL]
            )
            slot = self.open[queue] = (call, len(plan.ops), keys.task_key_prefix(queue))
            self.taken.pop(queue, None)
            plan.ops.append(call)
        call, index, prefix = slot
        plan.replies.append((index, (len(call.args) - _BATCH_ARGS) >> 1))
        call.keys.append(prefix + tid)
        call.args.append(tid)
        call.args.append(data)
        plan.infos.append(info)

    def _single(self, call: Call, queue: str, tid: str, info: TaskInfo) -> None:
        plan = self.plan
        plan.registrations.append(self._registration(queue))
        if queue in self.open:
            self.taken.setdefault(queue, set()).add(tid)
        plan.replies.append((len(plan.ops), -1))
        plan.ops.append(call)
        plan.infos.append(info)

    def finish(self) -> EnqueuePlan:
        if not self.cluster:
            # enqueue_batch takes asynq:queues after the task hashes (registers first).
            for op in self.plan.ops:
                if isinstance(op, Call) and op.script == "enqueue_batch":
                    op.keys.append(keys.ALL_QUEUES)
        return self.plan


def plan_results(plan: EnqueuePlan, replies: Sequence[object]) -> list[EnqueueResult]:
    """Each task's outcome from the pipeline's ``replies`` (a reply or a BrokerError per
    op), in input order. A failed op fails each of its tasks with an error of its own."""
    results: list[EnqueueResult] = []
    add = results.append
    for info, (op, pos), reg in zip(plan.infos, plan.replies, plan.registrations, strict=True):
        reply = replies[op]
        if pos >= 0 and not isinstance(reply, BrokerError):
            if not isinstance(reply, list) or len(reply) <= pos:
                raise ValueError(f"unexpected enqueue_batch reply {reply!r}")
            reply = reply[pos]
        registered = replies[reg] if reg >= 0 else None
        if reply == 1 and not isinstance(registered, BrokerError):
            add(EnqueueResult(info))
            continue
        try:
            enqueue_outcome(_own(reply), _own(registered))
        except PyAsynqError as exc:
            add(EnqueueResult(None, exc))
        else:
            add(EnqueueResult(info))
    return results


def _own(reply: object) -> object:
    """A copy of a BrokerError shared by several tasks, so no two results hold the same
    exception object (raising one would change the other's traceback)."""
    if isinstance(reply, BrokerError):
        err = type(reply)(str(reply))  # the same kind (RedisOutOfMemoryError, ...)
        err.__cause__ = reply.__cause__
        return err
    return reply


# --------------------------------------------------------------------------- coalescing


WHOLE = -1
SHARED = -2


def merge_enqueues(groups: Sequence[Sequence[Op]]) -> tuple[list[Op], list[list[tuple[int, int]]]]:
    """The ops of many callers (each a sequence of ops, see ``pyasynq._coalesce``) as one
    pipeline in which consecutive plain ``enqueue`` calls of a queue share an
    ``enqueue_batch`` call: one script, one registration and one wake-up instead of one
    each. Returns the pipeline and, per caller and op, where its reply is: (op index,
    index in that op's reply, or :data:`WHOLE`, or :data:`SHARED`: the whole reply of an
    op that serves several callers).

    The outcome is the one of running the callers' ops in order: enqueue_batch stores its
    tasks one after the other as enqueue.lua would (a reused id gets 0), any other op
    closes the open batches so that what follows it runs after it, and a SADD of
    asynq:queues (sent beside the script in a Cluster) touches no task key."""
    ops: list[Op] = []
    where: list[list[tuple[int, int]]] = []
    open_: dict[tuple[object, ...], Call] = {}  # (pending key, registers, queue, wake) -> batch
    at: dict[int, int] = {}  # id(batch) -> its op index
    registering: list[Call] = []  # batches that register their queue
    sadds: dict[object, int] = {}  # queue -> op index of its SADD asynq:queues
    for group in groups:
        mine: list[tuple[int, int]] = []
        for op in group:
            if isinstance(op, Call) and op.script == "enqueue" and len(op.args) == 5:
                # enqueue.lua: KEYS task hash, pending[, asynq:queues]; ARGV msg, id, now,
                # queue, wake channel.
                data, tid, now, queue, channel = op.args
                shape = (op.keys[1], len(op.keys) == 3, queue, channel)
                batch = open_.get(shape)
                if batch is None or len(batch.keys) > BATCH_SIZE:
                    batch = Call("enqueue_batch", [op.keys[1]], [now, queue, channel])
                    open_[shape] = batch
                    at[id(batch)] = len(ops)
                    ops.append(batch)
                    if shape[1]:
                        registering.append(batch)
                mine.append((at[id(batch)], (len(batch.args) - _BATCH_ARGS) >> 1))
                batch.keys.append(op.keys[0])
                batch.args.append(tid)
                batch.args.append(data)
                continue
            if isinstance(op, Command) and op.args[:2] == ("SADD", keys.ALL_QUEUES):
                # One SADD of a queue per pipeline does for all its callers.
                index = sadds.get(op.args[2])
                if index is None:
                    index = sadds[op.args[2]] = len(ops)
                    ops.append(op)
                mine.append((index, SHARED))
                continue
            open_.clear()  # what comes next runs after this op
            mine.append((len(ops), WHOLE))
            ops.append(op)
        where.append(mine)
    for batch in registering:
        batch.keys.append(keys.ALL_QUEUES)  # enqueue_batch: after the task hashes
    return ops, where
