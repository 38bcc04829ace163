"""Server and scheduler state (wire spec 3.19) and queue pause/unpause (3.17).

Heartbeats write a record with a TTL and list its key in a registry zset
(``asynq:servers``, ``asynq:workers``, ``asynq:schedulers``) scored by its expiry.
Readers list the live registry members (:func:`list_registry`, which also drops the dead
ones), then fetch each record with :func:`get_server_info`, :func:`get_workers` or
:func:`get_scheduler_entries`; missing or undecodable records are skipped.

Multi-op builders return a list to be sent with ``broker.run_many``; check the replies
with :func:`check_replies`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyasynq.errors import BrokerError, QueueStateError

from .. import keys
from ..codec import (
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    WorkerInfo,
    decode_scheduler_entry,
    decode_server_info,
    decode_worker_info,
    encode_scheduler_entry,
    encode_scheduler_event,
    encode_server_info,
    encode_worker_info,
)
from .base import Arg, Call, Command, Op

SCHEDULER_HISTORY_MAX = 1000  # events kept per scheduler entry


def check_replies(replies: Sequence[object]) -> None:
    """Raise the first error among the replies of a multi-op write."""
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply


def _ttl(ttl: int) -> int:
    if ttl < 1:
        raise ValueError(f"ttl must be at least 1 second, got {ttl}")
    return int(ttl)


# --- servers and workers ----------------------------------------------------------------


def write_server_state(
    info: ServerInfo, workers: Sequence[WorkerInfo], now: float, ttl: int
) -> list[Op]:
    """A server heartbeat: register the server and workers keys in their registries with
    score now + ``ttl``, then (one script) SETEX the ServerInfo and rewrite the workers hash
    (task id -> WorkerInfo) with the same TTL."""
    ttl = _ttl(ttl)
    skey = keys.server_info_key(info.host, info.pid, info.server_id)
    wkey = keys.workers_key(info.host, info.pid, info.server_id)
    expires = int(now) + ttl
    args: list[Arg] = [ttl, encode_server_info(info)]
    for w in workers:
        args += [w.task_id, encode_worker_info(w)]
    return [
        Command(("ZADD", keys.ALL_SERVERS, expires, skey)),
        Command(("ZADD", keys.ALL_WORKERS, expires, wkey)),
        Call("write_server_state", [skey, wkey], args),
    ]


def clear_server_state(host: str, pid: int, server_id: str) -> list[Op]:
    """On shutdown: unregister the server and delete its info and workers keys (one DEL:
    both keys share the ``{host:pid:id}`` hash tag, so one slot)."""
    skey = keys.server_info_key(host, pid, server_id)
    wkey = keys.workers_key(host, pid, server_id)
    return [
        Command(("ZREM", keys.ALL_SERVERS, skey)),
        Command(("ZREM", keys.ALL_WORKERS, wkey)),
        Command(("DEL", skey, wkey)),
    ]


# --- schedulers -------------------------------------------------------------------------


def write_scheduler_entries(
    scheduler_id: str, entries: Sequence[SchedulerEntry], now: float, ttl: int
) -> list[Op]:
    """A scheduler heartbeat: register its entries key (score now + ``ttl``) and rewrite the
    list of SchedulerEntry with that TTL."""
    ttl = _ttl(ttl)
    key = keys.scheduler_entries_key(scheduler_id)
    args: list[Arg] = [ttl, *(encode_scheduler_entry(e) for e in entries)]
    return [
        Command(("ZADD", keys.ALL_SCHEDULERS, int(now) + ttl, key)),
        Call("write_scheduler_entries", [key], args),
    ]


def clear_scheduler_entries(scheduler_id: str) -> list[Op]:
    """On shutdown: unregister the scheduler and delete its entries list."""
    key = keys.scheduler_entries_key(scheduler_id)
    return [Command(("ZREM", keys.ALL_SCHEDULERS, key)), Command(("DEL", key))]


def record_scheduler_enqueue_event(
    entry_id: str, event: SchedulerEnqueueEvent, *, cap: int = SCHEDULER_HISTORY_MAX
) -> Call:
    """Log that entry ``entry_id`` enqueued a task (score = enqueue time in Unix seconds),
    keeping at most ``cap`` events. Reply 1."""
    if event.enqueue_time_ns is None:
        raise ValueError("the event needs an enqueue time")
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    score = event.enqueue_time_ns // 1_000_000_000
    return Call(
        "record_scheduler_event",
        [keys.scheduler_history_key(entry_id)],
        [score, encode_scheduler_event(event), cap],
    )


def delete_scheduler_history(entry_id: str) -> Command:
    """On scheduler shutdown: drop the enqueue history of one entry."""
    return Command(("DEL", keys.scheduler_history_key(entry_id)))


# --- readers ----------------------------------------------------------------------------


def list_registry(registry: str, now: float) -> Call:
    """The live members (full key names) of ``registry`` (``keys.ALL_SERVERS``,
    ``ALL_WORKERS`` or ``ALL_SCHEDULERS``): score >= now. Members scored <= now - 1 are
    removed. See :func:`list_registry_result`."""
    if registry not in (keys.ALL_SERVERS, keys.ALL_WORKERS, keys.ALL_SCHEDULERS):
        raise ValueError(f"not a registry key: {registry!r}")
    return Call("list_registry", [registry], [int(now)])


def list_registry_result(reply: object) -> list[str]:
    """Key names, by ascending expiry."""
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, list):
        raise BrokerError(f"unexpected list_registry reply {reply!r}")
    return [m.decode() if isinstance(m, bytes) else str(m) for m in reply]


def get_server_info(key: str) -> Command:
    """Fetch a ServerInfo record by its key name; see :func:`server_info_result`."""
    return Command(("GET", key))


def server_info_result(reply: object) -> ServerInfo | None:
    """The ServerInfo, or None when the key expired or does not decode."""
    if not isinstance(reply, bytes):
        return None
    try:
        return decode_server_info(reply)
    except BrokerError:
        return None


def get_workers(key: str) -> Command:
    """Fetch a server's WorkerInfo records by the workers key name; see
    :func:`workers_result`."""
    return Command(("HVALS", key))


def workers_result(reply: object) -> list[WorkerInfo]:
    """The decodable WorkerInfo records (none when the key expired)."""
    out = []
    for data in reply if isinstance(reply, list) else []:
        try:
            out.append(decode_worker_info(data))
        except BrokerError:
            continue
    return out


def get_scheduler_entries(key: str) -> Command:
    """Fetch a scheduler's entries by the entries key name; see
    :func:`scheduler_entries_result`."""
    return Command(("LRANGE", key, 0, -1))


def scheduler_entries_result(reply: object) -> list[SchedulerEntry]:
    """The decodable SchedulerEntry records (none when the key expired)."""
    out = []
    for data in reply if isinstance(reply, list) else []:
        try:
            out.append(decode_scheduler_entry(data))
        except BrokerError:
            continue
    return out


# --- pause / unpause (3.17) -------------------------------------------------------------


def go_quote(s: str) -> str:
    """``s`` as Go's ``%q`` prints it, for error texts that must match Go's."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def pause(queue: str, now: float) -> Command:
    """Pause ``queue``: SETNX ``paused`` = now (Unix s, no TTL). See :func:`pause_result`."""
    return Command(("SETNX", keys.paused_key(queue), int(now)))


def pause_result(queue: str, reply: object) -> None:
    """Raise QueueStateError when the queue was already paused."""
    if isinstance(reply, BrokerError):
        raise reply
    if reply != 1:  # 1 or True: the flag was set now
        raise QueueStateError(f"queue {go_quote(queue)} is already paused")


def unpause(queue: str) -> Command:
    """Unpause ``queue``: DEL ``paused``. See :func:`unpause_result`."""
    return Command(("DEL", keys.paused_key(queue)))


def unpause_result(queue: str, reply: object) -> None:
    """Raise QueueStateError when the queue was not paused."""
    if isinstance(reply, BrokerError):
        raise reply
    if reply != 1:
        raise QueueStateError(f"queue {go_quote(queue)} is not paused")
