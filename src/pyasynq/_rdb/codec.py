"""Protobuf encoding of asynq's wire messages, byte-compatible with Go asynq.

The generated module (``proto/asynq_pb2.py``) stays private to this file: the rest of
pyasynq sees plain dataclasses. Timestamps are carried as integer nanoseconds since the
Unix epoch so nothing is lost on a round trip; ``None`` means the Timestamp field is
absent, and Go's zero ``time.Time`` (asynq's "never") is :data:`GO_ZERO_TIME_NS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from pyasynq.errors import BrokerError

from .proto import asynq_pb2 as pb

GO_ZERO_TIME_SECONDS = -62135596800
GO_ZERO_TIME_NS = GO_ZERO_TIME_SECONDS * 1_000_000_000
_NS = 1_000_000_000


@dataclass(slots=True)
class TaskMessage:
    """asynq.TaskMessage: the task as stored in the ``msg`` field of its hash."""

    type: str = ""
    payload: bytes = b""
    id: str = ""
    queue: str = ""
    retry: int = 0
    retried: int = 0
    error_msg: str = ""
    timeout: int = 0
    deadline: int = 0
    unique_key: str = ""
    last_failed_at: int = 0
    retention: int = 0
    completed_at: int = 0
    group_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ServerInfo:
    host: str = ""
    pid: int = 0
    server_id: str = ""
    concurrency: int = 0
    queues: dict[str, int] = field(default_factory=dict)
    strict_priority: bool = False
    status: str = ""
    start_time_ns: int | None = None
    active_worker_count: int = 0


@dataclass(slots=True)
class WorkerInfo:
    host: str = ""
    pid: int = 0
    server_id: str = ""
    task_id: str = ""
    task_type: str = ""
    task_payload: bytes = b""
    queue: str = ""
    start_time_ns: int | None = None
    deadline_ns: int | None = None


@dataclass(slots=True)
class SchedulerEntry:
    id: str = ""
    spec: str = ""
    task_type: str = ""
    task_payload: bytes = b""
    enqueue_options: list[str] = field(default_factory=list)
    next_enqueue_time_ns: int | None = None
    prev_enqueue_time_ns: int | None = None


@dataclass(slots=True)
class SchedulerEnqueueEvent:
    task_id: str = ""
    enqueue_time_ns: int | None = None


def _set_ts(ts: Timestamp, ns: int | None) -> None:
    if ns is None:
        return
    seconds, nanos = divmod(ns, _NS)
    ts.seconds = seconds
    ts.nanos = nanos
    # An all-zero Timestamp must still be present on the wire (Go writes `42 00`).
    ts.SetInParent()


def _get_ts(parent: object, name: str) -> int | None:
    if not parent.HasField(name):  # type: ignore[attr-defined]
        return None
    ts: Timestamp = getattr(parent, name)
    return ts.seconds * _NS + ts.nanos


def _parse(message: object, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)  # type: ignore[attr-defined]
    except DecodeError as exc:
        raise BrokerError(f"cannot decode {what}: {exc}") from exc


def encode_task(m: TaskMessage) -> bytes:
    # Only the fields that are set: each keyword costs protobuf time, and proto3 writes
    # nothing for a zero value anyway (same bytes, about half the time).
    kw: dict[str, object] = {"type": m.type, "payload": m.payload, "id": m.id, "queue": m.queue}
    if m.retry:
        kw["retry"] = m.retry
    if m.retried:
        kw["retried"] = m.retried
    if m.error_msg:
        kw["error_msg"] = m.error_msg
    if m.timeout:
        kw["timeout"] = m.timeout
    if m.deadline:
        kw["deadline"] = m.deadline
    if m.unique_key:
        kw["unique_key"] = m.unique_key
    if m.last_failed_at:
        kw["last_failed_at"] = m.last_failed_at
    if m.retention:
        kw["retention"] = m.retention
    if m.completed_at:
        kw["completed_at"] = m.completed_at
    if m.group_key:
        kw["group_key"] = m.group_key
    if m.headers:
        kw["headers"] = m.headers
    return pb.TaskMessage(**kw).SerializeToString(deterministic=True)  # type: ignore[arg-type]


def split_at_id(m: TaskMessage) -> tuple[bytes, bytes]:
    """The encoding of ``m`` without its id, cut where the id goes: ``with_id(head, tail,
    task_id)`` is then ``encode_task`` of ``m`` with that id. Deterministic encoding writes
    fields in number order (type 1, payload 2, id 3, then the rest), so many tasks that
    differ only in their id share one encoding and cost a concatenation each."""
    head = pb.TaskMessage(type=m.type, payload=m.payload).SerializeToString(deterministic=True)
    rest = replace(m, type="", payload=b"", id="")
    return head, encode_task(rest)


def with_id(head: bytes, tail: bytes, task_id: str) -> bytes:
    """The TaskMessage ``head`` + field 3 (``task_id``) + ``tail`` (see split_at_id)."""
    raw = task_id.encode()
    n = len(raw)
    if n < 0x80:
        return b"%b\x1a%c%b%b" % (head, n, raw, tail) if n else head + tail
    size = bytearray()
    while n > 0x7F:
        size.append(n & 0x7F | 0x80)
        n >>= 7
    size.append(n)
    return b"".join((head, b"\x1a", size, raw, tail))


def decode_task(data: bytes) -> TaskMessage:
    p = pb.TaskMessage()
    _parse(p, data, "TaskMessage")
    # Positional, in field order, and no copy of an empty map: this runs once per task
    # dequeued, and keywords and dict() of a protobuf map cost more than the parse.
    h = p.headers
    return TaskMessage(
        p.type, p.payload, p.id, p.queue, p.retry, p.retried, p.error_msg, p.timeout,
        p.deadline, p.unique_key, p.last_failed_at, p.retention, p.completed_at, p.group_key,
        dict(h) if h else {},
    )  # fmt: skip


def encode_server_info(m: ServerInfo) -> bytes:
    p = pb.ServerInfo(
        host=m.host,
        pid=m.pid,
        server_id=m.server_id,
        concurrency=m.concurrency,
        queues=m.queues,
        strict_priority=m.strict_priority,
        status=m.status,
        active_worker_count=m.active_worker_count,
    )
    _set_ts(p.start_time, m.start_time_ns)
    return p.SerializeToString(deterministic=True)


def decode_server_info(data: bytes) -> ServerInfo:
    p = pb.ServerInfo()
    _parse(p, data, "ServerInfo")
    return ServerInfo(
        host=p.host,
        pid=p.pid,
        server_id=p.server_id,
        concurrency=p.concurrency,
        queues=dict(p.queues),
        strict_priority=p.strict_priority,
        status=p.status,
        start_time_ns=_get_ts(p, "start_time"),
        active_worker_count=p.active_worker_count,
    )


def encode_worker_info(m: WorkerInfo) -> bytes:
    p = pb.WorkerInfo(
        host=m.host,
        pid=m.pid,
        server_id=m.server_id,
        task_id=m.task_id,
        task_type=m.task_type,
        task_payload=m.task_payload,
        queue=m.queue,
    )
    _set_ts(p.start_time, m.start_time_ns)
    _set_ts(p.deadline, m.deadline_ns)
    return p.SerializeToString(deterministic=True)


def decode_worker_info(data: bytes) -> WorkerInfo:
    p = pb.WorkerInfo()
    _parse(p, data, "WorkerInfo")
    return WorkerInfo(
        host=p.host,
        pid=p.pid,
        server_id=p.server_id,
        task_id=p.task_id,
        task_type=p.task_type,
        task_payload=p.task_payload,
        queue=p.queue,
        start_time_ns=_get_ts(p, "start_time"),
        deadline_ns=_get_ts(p, "deadline"),
    )


def encode_scheduler_entry(m: SchedulerEntry) -> bytes:
    p = pb.SchedulerEntry(
        id=m.id,
        spec=m.spec,
        task_type=m.task_type,
        task_payload=m.task_payload,
        enqueue_options=m.enqueue_options,
    )
    _set_ts(p.next_enqueue_time, m.next_enqueue_time_ns)
    _set_ts(p.prev_enqueue_time, m.prev_enqueue_time_ns)
    return p.SerializeToString(deterministic=True)


def decode_scheduler_entry(data: bytes) -> SchedulerEntry:
    p = pb.SchedulerEntry()
    _parse(p, data, "SchedulerEntry")
    return SchedulerEntry(
        id=p.id,
        spec=p.spec,
        task_type=p.task_type,
        task_payload=p.task_payload,
        enqueue_options=list(p.enqueue_options),
        next_enqueue_time_ns=_get_ts(p, "next_enqueue_time"),
        prev_enqueue_time_ns=_get_ts(p, "prev_enqueue_time"),
    )


def encode_scheduler_event(m: SchedulerEnqueueEvent) -> bytes:
    p = pb.SchedulerEnqueueEvent(task_id=m.task_id)
    _set_ts(p.enqueue_time, m.enqueue_time_ns)
    return p.SerializeToString(deterministic=True)


def decode_scheduler_event(data: bytes) -> SchedulerEnqueueEvent:
    p = pb.SchedulerEnqueueEvent()
    _parse(p, data, "SchedulerEnqueueEvent")
    return SchedulerEnqueueEvent(task_id=p.task_id, enqueue_time_ns=_get_ts(p, "enqueue_time"))
