"""Shared helpers for the Go-asynq conformance fixtures (``shared/conformance/*.json``).

What is here, in the order a test uses it:

* finding and loading fixtures (:func:`fixture_names`, :func:`load_fixture`,
  :func:`load_golden`); the folder is ``$PYASYNQ_CONFORMANCE_DIR`` or ``../shared/conformance``
  next to the repository, so a held-back set with the same schema can be pointed at;
* protobuf values in the fixtures' form (:func:`decoded_fields`, :func:`fields_to_bytes`),
  built on ``pyasynq._rdb.codec`` so they exercise our codec;
* :func:`dump_keyspace`: the whole keyspace in the fixtures' ``keys`` form;
* :class:`Normaliser` and :func:`compare_keys`: both sides turned into one comparable shape
  (times relative to each side's "now", random UUIDs and host:pid replaced by placeholders,
  daily-stats dates replaced), then a strict structural diff that lists every difference;
* :class:`Replayer`: replays a fixture's ``operations`` with pyasynq and reports every
  mismatch. Operations it cannot replay yet raise :class:`Unsupported`; processing
  fixtures extend it by adding ``op_<name>`` methods (server_start, wait_until, ...).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

import pyasynq
from pyasynq import errors
from pyasynq._rdb import codec, keys

# --------------------------------------------------------------------------- loading


def fixtures_dir() -> Path:
    env = os.environ.get("PYASYNQ_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "conformance"


def load_fixture(name: str) -> dict[str, Any]:
    with (fixtures_dir() / f"{name}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def load_golden() -> list[dict[str, Any]]:
    with (fixtures_dir() / "golden-messages.json").open(encoding="utf-8") as f:
        messages: list[dict[str, Any]] = json.load(f)["messages"]
    return messages


def fixture_names(allowed_ops: Iterable[str] | None = None) -> list[str]:
    """Scenario names, optionally only those whose operations are all in ``allowed_ops``."""
    allowed = set(allowed_ops) if allowed_ops is not None else None
    names = []
    for path in sorted(fixtures_dir().glob("*.json")):
        if path.name == "golden-messages.json":
            continue
        if allowed is not None:
            ops = {op["op"] for op in load_fixture(path.stem)["operations"]}
            if not ops <= allowed:
                continue
        names.append(path.stem)
    return names


def fixture_ops(name: str) -> list[str]:
    return [op["op"] for op in load_fixture(name)["operations"]]


# --------------------------------------------------------------------------- blobs and protobuf


def blob(data: bytes) -> dict[str, Any]:
    """A Redis byte string in the fixtures' form."""
    try:
        text: str | None = data.decode("utf-8")
        if not text.isprintable():
            text = None
    except UnicodeDecodeError:
        text = None
    return {"b64": base64.b64encode(data).decode("ascii"), "text": text}


def blob_bytes(b: Mapping[str, Any]) -> bytes:
    return base64.b64decode(b["b64"])


def _ts_out(ns: int | None) -> dict[str, int] | None:
    if ns is None:
        return None
    seconds, nanos = divmod(ns, 1_000_000_000)
    return {"seconds": seconds, "nanos": nanos}


def _ts_in(ts: Mapping[str, int] | None) -> int | None:
    if ts is None:
        return None
    return int(ts["seconds"]) * 1_000_000_000 + int(ts["nanos"])


# proto name -> (dataclass, encoder, decoder, bytes fields, timestamp fields)
_PROTOS: dict[str, tuple[type, Callable[[Any], bytes], Callable[[bytes], Any], set[str], set[str]]]
_PROTOS = {
    "asynq.TaskMessage": (
        codec.TaskMessage,
        codec.encode_task,
        codec.decode_task,
        {"payload"},
        set(),
    ),
    "asynq.ServerInfo": (
        codec.ServerInfo,
        codec.encode_server_info,
        codec.decode_server_info,
        set(),
        {"start_time"},
    ),
    "asynq.WorkerInfo": (
        codec.WorkerInfo,
        codec.encode_worker_info,
        codec.decode_worker_info,
        {"task_payload"},
        {"start_time", "deadline"},
    ),
    "asynq.SchedulerEntry": (
        codec.SchedulerEntry,
        codec.encode_scheduler_entry,
        codec.decode_scheduler_entry,
        {"task_payload"},
        {"next_enqueue_time", "prev_enqueue_time"},
    ),
    "asynq.SchedulerEnqueueEvent": (
        codec.SchedulerEnqueueEvent,
        codec.encode_scheduler_event,
        codec.decode_scheduler_event,
        set(),
        {"enqueue_time"},
    ),
}
PROTO_NAMES = sorted(_PROTOS)


def fields_to_message(proto: str, fields: Mapping[str, Any]) -> Any:
    """The codec dataclass for a message given in the fixtures' ``fields`` form."""
    cls, _, _, byte_fields, ts_fields = _PROTOS[proto]
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        if name in byte_fields:
            kwargs[name] = blob_bytes(value)
        elif name in ts_fields:
            kwargs[f"{name}_ns"] = _ts_in(value)
        elif isinstance(value, dict):
            kwargs[name] = dict(value)
        elif isinstance(value, list):
            kwargs[name] = list(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def message_to_fields(proto: str, message: Any) -> dict[str, Any]:
    """A codec dataclass in the fixtures' form: every declared field by its proto name."""
    _, _, _, byte_fields, ts_fields = _PROTOS[proto]
    out: dict[str, Any] = {}
    for name in message.__slots__:
        value = getattr(message, name)
        if name.endswith("_ns") and name[:-3] in ts_fields:
            out[name[:-3]] = _ts_out(value)
        elif name in byte_fields:
            out[name] = blob(value)
        elif isinstance(value, dict):
            out[name] = dict(value)
        elif isinstance(value, list):
            out[name] = list(value)
        else:
            out[name] = value
    return out


def fields_to_bytes(proto: str, fields: Mapping[str, Any]) -> bytes:
    return _PROTOS[proto][1](fields_to_message(proto, fields))


def decoded_fields(proto: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` with pyasynq's codec into the fixtures' ``decoded`` form."""
    return message_to_fields(proto, _PROTOS[proto][2](data))


# --------------------------------------------------------------------------- dumping


def proto_of(key: str, type_: str, where: str | None = None) -> str | None:
    """Which protobuf message a value holds, as the fixtures mark it. ``where`` is the
    hash field name for hashes; for lists, sets and zsets it is ignored."""
    q = keys.queue_from_key(key)
    if q is not None:
        if type_ == "hash" and where == "msg" and key.startswith(keys.task_key_prefix(q)):
            return "asynq.TaskMessage"
        return None
    if type_ == "string" and key.startswith("asynq:servers:{"):
        return "asynq.ServerInfo"
    if type_ == "hash" and key.startswith("asynq:workers:{"):
        return "asynq.WorkerInfo"
    if type_ == "list" and key.startswith("asynq:schedulers:{"):
        return "asynq.SchedulerEntry"
    if type_ == "zset" and key.startswith("asynq:scheduler_history:"):
        return "asynq.SchedulerEnqueueEvent"
    return None


def _value_blob(data: bytes, proto: str | None) -> dict[str, Any]:
    b = blob(data)
    if proto is not None:
        b["proto"] = proto
        b["decoded"] = decoded_fields(proto, data)
    return b


def dump_keyspace(r: redis.Redis) -> list[dict[str, Any]]:
    """Every key of the client's database in the fixtures' ``keys`` form, sorted by name."""
    out = []
    for raw in sorted(r.scan_iter(count=1000)):
        key = raw.decode("utf-8")
        type_ = r.type(raw).decode()
        pttl = r.pttl(raw)
        value: Any
        if type_ == "string":
            value = _value_blob(r.get(raw), proto_of(key, type_))
        elif type_ == "hash":
            value = {
                f.decode("utf-8"): _value_blob(v, proto_of(key, type_, f.decode("utf-8")))
                for f, v in sorted(r.hgetall(raw).items())
            }
        elif type_ == "list":
            value = [_value_blob(v, proto_of(key, type_)) for v in r.lrange(raw, 0, -1)]
        elif type_ == "set":
            value = [_value_blob(v, proto_of(key, type_)) for v in sorted(r.smembers(raw))]
        elif type_ == "zset":
            value = [
                {"member": _value_blob(m, proto_of(key, type_)), "score": s}
                for m, s in r.zrange(raw, 0, -1, withscores=True)
            ]
        else:
            raise AssertionError(f"unexpected Redis type {type_} for {key}")
        ttl = round(pttl / 1000) if pttl >= 0 else None
        out.append(
            {"key": key, "type": type_, "has_ttl": ttl is not None, "ttl_s": ttl, "value": value}
        )
    return out


# --------------------------------------------------------------------------- normalising


@dataclass(frozen=True)
class Rel:
    """A point in time as seconds after the side's "now" (or a TTL in seconds); compared
    with a tolerance."""

    seconds: float
    kind: str  # "time" or "ttl"

    def __repr__(self) -> str:
        return f"Rel({self.kind} {self.seconds:+.3f}s)"


# Values this close to "now" are treated as times; further ones (2100-01-01, 0, the Go
# zero time, counters) must match exactly.
TIME_WINDOW_S = 100 * 24 * 3600
# TaskMessage integer fields that hold Unix seconds.
TASK_TIME_FIELDS = frozenset({"deadline", "last_failed_at", "completed_at"})
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DAILY_RE = re.compile(r":(processed|failed):(\d{4}-\d{2}-\d{2})$")
_INT_RE = re.compile(r"-?\d+")


@dataclass
class Normaliser:
    """Turns one side's keyspace (fixture or ours) into a comparable shape.

    ``now`` is that side's scenario start (Unix seconds, float), ``date`` its UTC date for
    daily stats keys, ``host``/``pid`` the process that owns server/worker/scheduler keys.
    """

    now: float
    date: str
    host: str = ""
    pid: int = -1
    uuids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_fixture(cls, fixture: Mapping[str, Any]) -> Normaliser:
        gen = fixture.get("generator", {})
        return cls(
            now=fixture["now"]["unix_ns"] / 1e9,
            date=fixture["now"]["date_utc"],
            host=gen.get("hostname", ""),
            pid=int(gen.get("pid", -1)),
        )

    @classmethod
    def for_now(cls, now: float, host: str = "", pid: int = -1) -> Normaliser:
        date = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        return cls(now=now, date=date, host=host, pid=pid)

    # -- scalars

    def seconds(self, value: float) -> Rel | float:
        if abs(value - self.now) <= TIME_WINDOW_S:
            return Rel(value - self.now, "time")
        return value

    def text(self, s: str) -> Any:
        if _INT_RE.fullmatch(s):
            n = int(s)
            if abs(n - self.now) <= TIME_WINDOW_S:
                return Rel(n - self.now, "time")
            if abs(n / 1e9 - self.now) <= TIME_WINDOW_S:  # nanoseconds (pending_since)
                return Rel(n / 1e9 - self.now, "time")
            return s
        if self.host and self.pid >= 0:
            s = s.replace(f"{self.host}:{self.pid}:", "<host>:<pid>:")
        m = DAILY_RE.search(s)
        if m and m.group(2) == self.date:
            s = s[: m.start(2)] + "<today>"
        return UUID_RE.sub(self._uuid, s)

    def plain(self, value: Any) -> Any:
        """Strings inside decoded messages: placeholders only (no time guessing)."""
        if isinstance(value, str):
            if self.host and self.pid >= 0:
                value = value.replace(f"{self.host}:{self.pid}:", "<host>:<pid>:")
            return UUID_RE.sub(self._uuid, value)
        if isinstance(value, dict):
            return {self.plain(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.plain(v) for v in value]
        return value

    def _uuid(self, m: re.Match[str]) -> str:
        return self.uuids.setdefault(m.group(0), f"<uuid{len(self.uuids) + 1}>")

    # -- values

    def decoded(self, proto: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        ts_fields = _PROTOS[proto][4]
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name in ts_fields:
                out[name] = self._timestamp(value)
            elif proto == "asynq.TaskMessage" and name in TASK_TIME_FIELDS:
                out[name] = self.seconds(value)
            elif name == "host" and value == self.host and self.host:
                out[name] = "<host>"
            elif name == "pid" and value == self.pid:
                out[name] = "<pid>"
            elif isinstance(value, dict) and "b64" in value:
                out[name] = {"bytes": value["b64"]}
            else:
                out[name] = self.plain(value)
        return out

    def _timestamp(self, ts: Mapping[str, int] | None) -> Any:
        if ts is None:
            return None
        seconds = ts["seconds"] + ts["nanos"] / 1e9
        rel = self.seconds(seconds)
        return rel if isinstance(rel, Rel) else dict(ts)

    def blob(self, b: Mapping[str, Any]) -> Any:
        if "decoded" in b:
            return {"proto": b["proto"], "decoded": self.decoded(b["proto"], b["decoded"])}
        if b.get("text") is not None:
            return self.text(b["text"])
        return {"bytes": b["b64"]}

    def entry(self, k: Mapping[str, Any]) -> dict[str, Any]:
        type_, v = k["type"], k["value"]
        value: Any
        if type_ == "string":
            value = self.blob(v)
        elif type_ == "hash":
            value = {self.text(f): self.blob(x) for f, x in v.items()}
        elif type_ == "list":  # order matters: head first
            value = [self.blob(x) for x in v]
        elif type_ == "set":  # order does not
            value = sorted((self.blob(x) for x in v), key=_masked)
        elif type_ == "zset":  # content by member; the scores fix the order
            value = sorted(
                ({"member": self.blob(x["member"]), "score": self.seconds(x["score"])} for x in v),
                key=lambda e: _masked(e["member"]),
            )
        else:
            raise AssertionError(f"unknown type {type_}")
        ttl = Rel(float(k["ttl_s"]), "ttl") if k["has_ttl"] else None
        return {"type": type_, "ttl": ttl, "value": value}

    def keyspace(self, entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        entries = list(entries)
        # Number the random UUIDs in a stable order: containers first (lists keep their
        # order, zsets go by score), then the rest by key name with UUIDs masked.
        order = sorted(
            entries,
            key=lambda k: (k["type"] not in ("list", "zset"), UUID_RE.sub("<uuid>", k["key"])),
        )
        for k in order:
            self._collect_uuids(k)
        return {self.text(k["key"]): self.entry(k) for k in entries}

    def _collect_uuids(self, obj: Any) -> None:
        if isinstance(obj, str):
            for m in UUID_RE.finditer(obj):
                self._uuid(m)
        elif isinstance(obj, Mapping):
            if obj.get("type") == "zset" and isinstance(obj.get("value"), list):
                for x in sorted(obj["value"], key=lambda e: e["score"]):
                    self._collect_uuids(x)
                self._collect_uuids(obj["key"])
                return
            for k, v in obj.items():
                self._collect_uuids(k)
                self._collect_uuids(v)
        elif isinstance(obj, list):
            for x in obj:
                self._collect_uuids(x)


def _masked(obj: Any) -> str:
    """A sort key that ignores time values (so ties keep their input order)."""
    return json.dumps(obj, sort_keys=True, default=lambda o: "<rel>")


def diff(expected: Any, actual: Any, path: str = "", tolerance: float = 2.0) -> list[str]:
    """Every difference between two normalised structures, as ``path: ...`` lines."""
    if isinstance(expected, Rel) or isinstance(actual, Rel):
        if (
            isinstance(expected, Rel)
            and isinstance(actual, Rel)
            and expected.kind == actual.kind
            and abs(expected.seconds - actual.seconds) <= tolerance
        ):
            return []
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(expected.keys() - actual.keys(), key=str):
            out.append(f"{path}/{k}: missing (expected {expected[k]!r})")
        for k in sorted(actual.keys() - expected.keys(), key=str):
            out.append(f"{path}/{k}: unexpected {actual[k]!r}")
        for k in sorted(expected.keys() & actual.keys(), key=str):
            out += diff(expected[k], actual[k], f"{path}/{k}", tolerance)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} items {expected!r}, got {actual!r}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += diff(e, a, f"{path}[{i}]", tolerance)
        return out
    if type(expected) is not type(actual) and not (
        isinstance(expected, int | float) and isinstance(actual, int | float)
    ):
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def compare_keys(
    expected: Iterable[Mapping[str, Any]],
    expected_side: Normaliser,
    actual: Iterable[Mapping[str, Any]],
    actual_side: Normaliser,
    tolerance: float = 2.0,
) -> list[str]:
    """Differences between a fixture's ``keys`` and a :func:`dump_keyspace` result."""
    return diff(expected_side.keyspace(expected), actual_side.keyspace(actual), "", tolerance)


# --------------------------------------------------------------------------- replaying


class Unsupported(Exception):
    """An operation pyasynq cannot replay yet (the test skips with this message)."""


# Go sentinel -> our exception type. "" = some error without a sentinel.
ERROR_TYPES: dict[str, type[Exception]] = {
    "ErrDuplicateTask": errors.DuplicateTaskError,
    "ErrTaskIDConflict": errors.TaskIDConflictError,
    "ErrQueueNotFound": errors.QueueNotFoundError,
    "ErrQueueNotEmpty": errors.QueueNotEmptyError,
    "ErrTaskNotFound": errors.TaskNotFoundError,
    "": errors.PyAsynqError,
}
# Exceptions whose text must equal Go's, as the fixtures record it.
SAME_TEXT_AS_GO = (errors.DuplicateTaskError, errors.TaskIDConflictError)

ENQUEUE_OPTION_KEYS = frozenset(
    {
        "queue",
        "max_retry",
        "timeout_s",
        "deadline_unix",
        "deadline_rel_now_s",
        "retention_s",
        "unique_ttl_s",
        "process_in_s",
        "process_at_unix",
        "process_at_rel_now_s",
        "task_id",
        "group",
        "header_options",
    }
)


def enqueue_call(op: Mapping[str, Any], now: float) -> tuple[pyasynq.Task, dict[str, Any]]:
    """The pyasynq Task and ``enqueue`` keyword arguments for a fixture ``enqueue`` op.
    Times the fixture computed from its now (``*_rel_now_s``) are recomputed from ``now``."""
    payload = None if op["payload_is_nil"] else base64.b64decode(op["payload_b64"])
    task = pyasynq.Task(op["type"], payload, headers=op.get("task_headers"))
    o = op.get("options", {})
    unknown = set(o) - ENQUEUE_OPTION_KEYS
    if unknown:
        raise AssertionError(f"fixture uses enqueue options the replayer lacks: {unknown}")
    kw: dict[str, Any] = {}
    simple = {
        "queue": "queue",
        "max_retry": "max_retry",
        "timeout_s": "timeout",
        "retention_s": "retention",
        "unique_ttl_s": "unique",
        "task_id": "task_id",
        "group": "group",
        "header_options": "headers",
    }
    for src, dst in simple.items():
        if src in o:
            kw[dst] = o[src]
    if kw.get("max_retry", 0) < 0:
        # Go's MaxRetry(n) makes a negative n 0; pyasynq refuses one (ValueError).
        kw["max_retry"] = 0
    if "deadline_rel_now_s" in o:
        kw["deadline"] = int(now) + o["deadline_rel_now_s"]
    elif "deadline_unix" in o:
        kw["deadline"] = o["deadline_unix"]
    process_at: float | None = None
    if "process_at_rel_now_s" in o:
        process_at = int(now) + o["process_at_rel_now_s"]
    elif "process_at_unix" in o:
        process_at = o["process_at_unix"]
    if process_at is not None and "process_in_s" in o:
        # Go: the later of ProcessAt/ProcessIn wins; option_strings keep the order.
        strings = op.get("option_strings", [])
        last_at = max(i for i, s in enumerate(strings) if s.startswith("ProcessAt("))
        last_in = max(i for i, s in enumerate(strings) if s.startswith("ProcessIn("))
        if last_at > last_in:
            kw["process_at"] = process_at
        else:
            kw["process_in"] = o["process_in_s"]
    elif process_at is not None:
        kw["process_at"] = process_at
    elif "process_in_s" in o:
        kw["process_in"] = o["process_in_s"]
    return task, kw


def _unix(dt: datetime | None) -> int:
    return int(dt.timestamp()) if dt is not None else 0


def _secs(td: timedelta | None) -> int:
    return int(td.total_seconds()) if td is not None else 0


def task_info_fields(info: pyasynq.TaskInfo) -> dict[str, Any]:
    """Our TaskInfo in the fixtures' ``task_info`` form (0 for absent times)."""
    return {
        "completed_at_unix": _unix(info.completed_at),
        "deadline_unix": _unix(info.deadline),
        "group": info.group,
        "headers": dict(info.headers),
        "id": info.id,
        "is_orphaned": info.is_orphaned,
        "last_err": info.last_err,
        "last_failed_at_unix": _unix(info.last_failed_at),
        "max_retry": info.max_retry,
        "next_process_at_unix": _unix(info.next_process_at),
        "payload_b64": base64.b64encode(info.payload).decode("ascii"),
        "queue": info.queue,
        "result_b64": base64.b64encode(info.result).decode("ascii"),
        "retention_s": _secs(info.retention),
        "retried": info.retried,
        "state": str(info.state),
        "timeout_s": _secs(info.timeout),
        "type": info.type,
    }


def normalise_task_info(info: Mapping[str, Any], side: Normaliser) -> dict[str, Any]:
    return {
        k: side.seconds(v) if k.endswith("_unix") and v else side.text(v) if k == "id" else v
        for k, v in info.items()
    }


class Replayer:
    """Replays a fixture's operations against the Redis at ``redis_url`` (database of
    ``r``) with pyasynq, checking each result; :meth:`run` returns every mismatch.

    Each operation ``op`` is handled by the method ``op_<op>``; add methods in a subclass
    to replay more of the vocabulary (server_start, wait_until, ...).
    """

    def __init__(self, fixture: Mapping[str, Any], redis_url: str, r: redis.Redis) -> None:
        self.fixture = fixture
        self.redis_url = redis_url
        self.r = r
        self.problems: list[str] = []
        self.now = time.time()
        self.expected_side = Normaliser.for_fixture(fixture)
        self.actual_side = Normaliser.for_now(self.now)
        self.client = pyasynq.Client(redis_url)
        self.dump: list[dict[str, Any]] | None = None

    def run(self) -> list[str]:
        try:
            for i, op in enumerate(self.fixture["operations"]):
                handler = getattr(self, f"op_{op['op']}", None)
                if handler is None:
                    raise Unsupported(f"operation {op['op']!r} cannot be replayed yet")
                handler(f"operations[{i}] {op['op']}", op)
        finally:
            self.client.close()
        return self.problems

    def op_flushall(self, where: str, op: Mapping[str, Any]) -> None:
        self.r.flushdb()
        self.now = time.time()
        self.actual_side = Normaliser.for_now(self.now)

    def op_enqueue(self, where: str, op: Mapping[str, Any]) -> None:
        task, kw = enqueue_call(op, self.now)
        try:
            info = self.client.enqueue(task, **kw)
        except errors.PyAsynqError as exc:
            self.check_error(where, op["result"], exc)
            return
        self.check_ok(where, op["result"])
        expected = op["result"].get("task_info")
        if expected is not None:
            self.problems += diff(
                normalise_task_info(expected, self.expected_side),
                normalise_task_info(task_info_fields(info), self.actual_side),
                f"{where} task_info",
            )

    def op_inspector(self, where: str, op: Mapping[str, Any]) -> None:
        # TODO(inspector): replay with pyasynq.Inspector once it exists: call the
        # snake_case method (PauseQueue -> pause_queue) with ``op["args"]``, check the
        # error like op_enqueue and compare ``result.value`` with the returned count.
        raise Unsupported(f"inspector {op['method']} needs pyasynq's Inspector")

    def op_dump(self, where: str, op: Mapping[str, Any]) -> None:
        self.dump = dump_keyspace(self.r)
        self.problems += [
            f"{where} keys{p}"
            for p in compare_keys(
                self.fixture["keys"], self.expected_side, self.dump, self.actual_side
            )
        ]

    # -- result checks

    def check_ok(self, where: str, result: Mapping[str, Any]) -> None:
        if not result["ok"]:
            self.problems.append(
                f"{where}: expected error {result.get('error_is')!r} "
                f"({result.get('error')!r}), but it succeeded"
            )

    def check_error(self, where: str, result: Mapping[str, Any], exc: Exception) -> None:
        if result["ok"]:
            self.problems.append(f"{where}: expected success, got {exc!r}")
            return
        want = ERROR_TYPES[result.get("error_is", "")]
        if not isinstance(exc, want):
            self.problems.append(f"{where}: expected {want.__name__}, got {exc!r}")
        elif isinstance(exc, SAME_TEXT_AS_GO) and str(exc) != result["error"]:
            self.problems.append(f"{where}: error text {str(exc)!r} != Go's {result['error']!r}")
