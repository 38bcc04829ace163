"""Processing: what the server's processor, forwarder, recoverer, janitor and result writer
send (wire spec 3.6 to 3.14 and 3.18).

pyasynq extensions, invisible to Go (Go ignores unknown hash fields and never reads
``asynq:{q}:pyasynq:quarantine``):

* **Fencing.** :func:`dequeue` stores the attempt token and the lease expiry it set in the
  task hash field ``attempt`` (``"<token> <expiry>"``); :func:`extend_leases` moves the
  expiry with the lease. :func:`done`, :func:`mark_complete`, :func:`requeue`,
  :func:`retry`, :func:`archive` and :func:`extend_leases` take the token back; when it is
  non-empty and the hash holds another token, none, or another expiry than the task's
  current lease score, the script changes nothing and answers ``LEASE LOST`` (mapped to
  :class:`~pyasynq.errors.LeaseExpiredError`): the task was taken over after this worker's
  lease ran out, by a pyasynq worker (new token), pyasynq's recoverer (field deleted) or Go
  (whose recoverer keeps ``attempt`` but drops the lease, and whose dequeue leases the task
  at a later score). An empty token skips the check; the recoverer, which acts on expired
  leases, passes one. Every successful write deletes ``attempt``.
* **Crash counter.** ``retry``/``archive`` with ``crashed=True`` (the recoverer, when
  ``ServerConfig.max_crash_recoveries`` is set) add 1 to the hash field ``crashes``;
  :func:`list_lease_expired` reports it, so a task that keeps killing its worker can be
  archived after a few recoveries.
* **Quarantine.** An id without a task hash, or whose ``msg`` cannot be decoded, is taken
  out of circulation and recorded (id -> reason) instead of blocking the queue.

Writes answer 1 or an error reply. With ``broker.run_many`` the error arrives as a
:class:`~pyasynq.errors.BrokerError` reply; pass it to the ``*_result`` function. With
``broker.run`` it is raised; translate it with :func:`map_error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pyasynq.errors import BrokerError, LeaseExpiredError, TaskGoneError

from .. import keys
from ..codec import TaskMessage, decode_task, encode_task
from .base import LEASE_DURATION, MAX_INT64, STATS_TTL, Arg, Call, Command

ARCHIVE_MAX_SIZE = 10_000  # Go's maxArchiveSize; at most 9,999 remain after a trim
ARCHIVE_MAX_AGE = 90 * 24 * 3600  # archived tasks older than this are dropped
JANITOR_BATCH_SIZE = 100
DEQUEUE_MANY_MAX = 1000
# Dangling ids (no task data: evicted, or deleted by hand) one dequeue call may skip:
# 5 ms or more of Redis time (about 10 us each), so Redis stays responsive; the processor
# calls again at once while a call skips this many.
DANGLING_MAX = 500

LEASE_LOST = "LEASE LOST"
NOT_FOUND = "NOT FOUND"


@dataclass(frozen=True, slots=True)
class Leased:
    """A task read from the active side of a queue: just dequeued, or with an expired lease.

    ``msg`` is None when the task cannot be run, and ``problem`` says why (no task hash,
    undecodable ``msg``, a ``msg`` naming another task or queue); pass the id and the
    problem to :func:`quarantine`. ``crashes`` is the pyasynq crash counter (always 0 for a
    dequeued task's reply). ``pending_since`` is when a dequeued task became pending (Unix
    seconds, from the hash field of that name), None when unknown (a requeued task)."""

    task_id: str
    msg: TaskMessage | None
    problem: str = ""
    crashes: int = 0
    pending_since: float | None = field(default=None, compare=False)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _check(queue: str, task_id: str, data: object) -> tuple[TaskMessage | None, str]:
    if data is None:
        return None, "no task hash"
    if not isinstance(data, bytes):
        return None, f"msg is {type(data).__name__}, not bytes"
    try:
        msg = decode_task(data)
    except BrokerError as exc:
        return None, f"undecodable msg: {exc}"
    if msg.id != task_id or msg.queue != queue:
        return None, f"msg names task {msg.id!r} in queue {msg.queue!r}"
    return msg, ""


def _quarantine_reason(reason: str) -> str:
    return reason[:200]


# --- errors ---------------------------------------------------------------------------


def map_error(exc: BrokerError) -> BrokerError:
    """The typed error for a write script's error reply: ``LEASE LOST`` becomes
    LeaseExpiredError, ``NOT FOUND`` TaskGoneError; anything else is returned unchanged."""
    if isinstance(exc, LeaseExpiredError | TaskGoneError):
        return exc
    text = str(exc)
    if text == LEASE_LOST or text.endswith(": " + LEASE_LOST):
        return LeaseExpiredError()
    if text == NOT_FOUND or text.endswith(": " + NOT_FOUND):
        return TaskGoneError()
    return exc


DEFINITIVE_ERRORS = (LeaseExpiredError, TaskGoneError)
"""Write errors that retrying cannot fix: the task is no longer this worker's."""


def check_write(reply: object) -> None:
    """Map the reply of any task write (done, mark_complete, requeue, retry, archive):
    None on success, else raise LeaseExpiredError, TaskGoneError or BrokerError."""
    if isinstance(reply, BrokerError):
        raise map_error(reply) from reply
    if reply != 1:
        raise BrokerError(f"unexpected reply {reply!r} from a task write")


done_result = check_write
"""Map the reply of :func:`done`: None, or LeaseExpiredError / TaskGoneError / BrokerError."""
mark_complete_result = check_write
"""Map the reply of :func:`mark_complete` (``INTERNAL`` stays a plain BrokerError)."""
requeue_result = check_write
"""Map the reply of :func:`requeue`."""
retry_result = check_write
"""Map the reply of :func:`retry`."""
archive_result = check_write
"""Map the reply of :func:`archive`."""


# --- dequeue (3.6) ----------------------------------------------------------------------


def dequeue(
    queue: str,
    now: float,
    token: str,
    *,
    lease_duration: int = LEASE_DURATION,
    max_skip: int = DANGLING_MAX,
) -> Call:
    """Take the oldest pending task of ``queue`` and lease it until ``now`` +
    ``lease_duration``; ``token`` is this attempt's fencing token (see the module doc).

    Ids with no task hash behind them (evicted, or deleted by hand) are quarantined and
    skipped, up to ``max_skip`` per call; :func:`skipped_ids` says how many. See
    :func:`dequeue_result`."""
    if max_skip < 1:
        raise ValueError(f"max_skip must be at least 1, got {max_skip}")
    args: list[Arg] = [int(now) + lease_duration, *_prefix(queue), token, max_skip]
    return Call("dequeue", _dequeue_keys(queue), args)


def _dequeue_keys(queue: str) -> list[str]:
    return [
        keys.pending_key(queue),
        keys.paused_key(queue),
        keys.active_key(queue),
        keys.lease_key(queue),
        keys.quarantine_key(queue),
    ]


def _prefix(queue: str) -> list[Arg]:
    return [keys.task_key_prefix(queue)]


def skipped_ids(reply: object) -> int:
    """How many dangling ids (no task data) a :func:`dequeue` or :func:`dequeue_many`
    call skipped. When it is the call's ``max_skip``, more may follow: dequeue again."""
    if isinstance(reply, list) and len(reply) % 3 == 1 and isinstance(reply[-1], int):
        return reply[-1]
    return 0


def dequeue_result(queue: str, reply: object) -> Leased | None:
    """None when nothing was dequeued, else the task. A task whose ``msg`` is unusable
    comes back with ``msg=None`` and a ``problem``: it is active and leased, and the caller
    should :func:`quarantine` it."""
    if reply is None:
        return None
    if not isinstance(reply, list) or len(reply) != 4:
        raise BrokerError(f"unexpected dequeue reply {reply!r}")
    if reply[0] is None:
        return None  # only dangling ids were found
    task_id = _text(reply[0])
    msg, problem = _check(queue, task_id, reply[1])
    return Leased(task_id, msg, problem, pending_since=_since(reply[2]))


def _since(value: object) -> float | None:
    """pending_since (decimal ns) as Unix seconds; None when absent or unreadable."""
    try:
        ns = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return ns / 1e9 if ns > 0 else None


def dequeue_many(
    queue: str,
    now: float,
    token: str,
    n: int,
    *,
    lease_duration: int = LEASE_DURATION,
    max_skip: int = DANGLING_MAX,
) -> Call:
    """Like :func:`dequeue` for up to ``n`` tasks at once, all sharing ``token``.

    Reply: a flat ``[id1, msg1, since1, id2, msg2, since2, ..., skipped]``, oldest first. See
    :func:`dequeue_many_result` and :func:`skipped_ids`."""
    if not 1 <= n <= DEQUEUE_MANY_MAX:
        raise ValueError(f"n must be between 1 and {DEQUEUE_MANY_MAX}, got {n}")
    if max_skip < 1:
        raise ValueError(f"max_skip must be at least 1, got {max_skip}")
    args: list[Arg] = [int(now) + lease_duration, *_prefix(queue), token, n, max_skip]
    return Call("dequeue_many", _dequeue_keys(queue), args)


def dequeue_many_result(queue: str, reply: object) -> list[Leased]:
    """The dequeued tasks, oldest first (unusable ones with ``msg=None``, see
    :func:`dequeue_result`)."""
    if not isinstance(reply, list) or len(reply) % 3 != 1:
        raise BrokerError(f"unexpected dequeue_many reply {reply!r}")
    out = []
    for i in range(0, len(reply) - 1, 3):
        task_id = _text(reply[i])
        msg, problem = _check(queue, task_id, reply[i + 1])
        out.append(Leased(task_id, msg, problem, pending_since=_since(reply[i + 2])))
    return out


# --- outcomes (3.7 to 3.11) -------------------------------------------------------------


def _stats_expiry(now: float) -> int:
    return int(now) + STATS_TTL


def done(msg: TaskMessage, now: float, token: str) -> Call:
    """Success without retention: delete the task, count it as processed, release its
    uniqueness lock if it still holds the task id. Reply 1; see :func:`done_result`."""
    q = msg.queue
    ks = [
        keys.active_key(q),
        keys.lease_key(q),
        keys.task_key(q, msg.id),
        keys.processed_key(q, now),
        keys.processed_total_key(q),
    ]
    if msg.unique_key:  # never pass an empty key (Redis Cluster routing)
        ks.append(msg.unique_key)
    return Call("done", ks, [msg.id, _stats_expiry(now), MAX_INT64, token])


def done_many(queue: str, now: float, tasks: Sequence[tuple[TaskMessage, str]]) -> Call:
    """:func:`done` for each ``(msg, token)`` of ``queue`` in one call: the same writes,
    fencing and replies, one per task. See :func:`done_many_result`.

    Arguments are packed tight (ids, then runs of equal tokens, then the few locks):
    packing them is the client's main cost per task, and a dequeue's tasks share a token."""
    if not tasks:
        raise ValueError("done_many needs at least one task")
    ks = [
        keys.active_key(queue),
        keys.lease_key(queue),
        keys.processed_key(queue, now),
        keys.processed_total_key(queue),
        keys.waiting_key(queue),
    ]
    args: list[Arg] = [_stats_expiry(now), MAX_INT64, keys.task_key_prefix(queue), len(tasks)]
    runs: list[Arg] = []
    locks: list[Arg] = []
    last, run = None, 0
    for i, (msg, token) in enumerate(tasks, 1):
        if msg.queue != queue:
            raise ValueError(f"task {msg.id} is in queue {msg.queue!r}, not {queue!r}")
        args.append(msg.id)
        if token != last and run:
            runs += [last or "", run]
            run = 0
        last, run = token, run + 1
        if msg.unique_key:
            locks += [i, msg.unique_key]
    runs += [last or "", run]
    return Call("done_many", ks, [*args, *runs, *locks])


def done_many_result(reply: object, n: int) -> list[object]:
    """One element per task of :func:`done_many`, in order: 1, or the LeaseExpiredError /
    TaskGoneError :func:`done` would have raised, so that :func:`check_write` maps each as
    it maps a single done reply. A failed call (a BrokerError reply) is every task's."""
    if isinstance(reply, BrokerError):
        return [reply] * n
    if not isinstance(reply, list) or len(reply) != n:
        err = BrokerError(f"unexpected done_many reply {reply!r}")
        return [err] * n
    out: list[object] = []
    for r in reply:
        if r == 1:
            out.append(1)
        else:
            text = _text(r)
            out.append(map_error(BrokerError(f"done failed: {text}")))
    return out


def mark_complete(msg: TaskMessage, now: float, token: str) -> Call:
    """Success with retention: store ``msg`` with ``completed_at`` = now as completed until
    now + retention, count it, release its lock. Reply 1; see :func:`mark_complete_result`."""
    q = msg.queue
    completed = replace(msg, completed_at=int(now))
    ks = [
        keys.active_key(q),
        keys.lease_key(q),
        keys.completed_key(q),
        keys.task_key(q, msg.id),
        keys.processed_key(q, now),
        keys.processed_total_key(q),
    ]
    if msg.unique_key:
        ks.append(msg.unique_key)
    args: list[Arg] = [
        msg.id,
        _stats_expiry(now),
        int(now) + msg.retention,
        encode_task(completed),
        MAX_INT64,
        token,
    ]
    return Call("mark_complete", ks, args)


def requeue(msg: TaskMessage, token: str) -> Call:
    """Shutdown abort: put the active task back at the tail of pending (next to run),
    state pending, no pending_since, no counters. Reply 1; see :func:`requeue_result`."""
    q = msg.queue
    ks = [keys.active_key(q), keys.lease_key(q), keys.pending_key(q), keys.task_key(q, msg.id)]
    return Call("requeue", ks, [msg.id, token])


def _failure_keys(q: str, now: float) -> list[str]:
    return [
        keys.processed_key(q, now),
        keys.failed_key(q, now),
        keys.processed_total_key(q),
        keys.failed_total_key(q),
    ]


def retry(  # noqa: PLR0917 (the signature the server components were promised)
    msg: TaskMessage,
    now: float,
    retry_at: float,
    err_msg: str,
    is_failure: bool,
    token: str,
    *,
    crashed: bool = False,
    lease_cutoff: float | None = None,
) -> Call:
    """Failure with retries left: store the task in retry until ``retry_at``.

    As Go's client side does, ``msg`` gets ``error_msg`` and ``last_failed_at`` = now, and
    ``retried`` + 1 when ``is_failure``; only then do the processed/failed counters move.
    ``crashed`` (recoverer only) adds 1 to the hash's ``crashes`` counter. ``lease_cutoff``
    (recoverer only: the cutoff of its :func:`list_lease_expired`) makes the write fail with
    LEASE LOST if the lease was renewed since, by a worker that leased the task again after
    another recoverer got there first. The uniqueness lock is kept. Reply 1; see
    :func:`retry_result`."""
    q = msg.queue
    new = replace(
        msg,
        error_msg=err_msg,
        last_failed_at=int(now),
        retried=msg.retried + 1 if is_failure else msg.retried,
    )
    ks = [
        keys.task_key(q, msg.id),
        keys.active_key(q),
        keys.lease_key(q),
        keys.retry_key(q),
        *_failure_keys(q, now),
    ]
    args: list[Arg] = [
        msg.id,
        encode_task(new),
        int(retry_at),
        _stats_expiry(now),
        int(is_failure),
        MAX_INT64,
        token,
        int(crashed),
        "" if lease_cutoff is None else int(lease_cutoff),
    ]
    return Call("retry", ks, args)


def archive(
    msg: TaskMessage,
    now: float,
    err_msg: str,
    token: str,
    *,
    crashed: bool = False,
    max_size: int = ARCHIVE_MAX_SIZE,
    max_age: int = ARCHIVE_MAX_AGE,
    lease_cutoff: float | None = None,
) -> Call:
    """Failure for good: store the task in archived (score now) with ``error_msg`` and
    ``last_failed_at`` = now (``retried`` unchanged), count it as processed and failed.

    The archive is then trimmed: tasks archived more than ``max_age`` seconds ago, and the
    oldest beyond ``max_size`` - 1, are removed with their hashes. ``crashed`` (recoverer
    only) adds 1 to ``crashes``; ``lease_cutoff`` (recoverer only) as in :func:`retry`.
    The uniqueness lock is kept. Reply 1; see :func:`archive_result`."""
    if max_size < 2:
        raise ValueError(f"max_size must be at least 2, got {max_size}")
    q = msg.queue
    new = replace(msg, error_msg=err_msg, last_failed_at=int(now))
    ks = [
        keys.task_key(q, msg.id),
        keys.active_key(q),
        keys.lease_key(q),
        keys.archived_key(q),
        *_failure_keys(q, now),
    ]
    args: list[Arg] = [
        msg.id,
        encode_task(new),
        int(now),
        int(now) - max_age,
        max_size,
        _stats_expiry(now),
        MAX_INT64,
        keys.task_key_prefix(q),
        token,
        int(crashed),
        "" if lease_cutoff is None else int(lease_cutoff),
    ]
    return Call("archive", ks, args)


# --- forwarder (3.12) -------------------------------------------------------------------


def forward(queue: str, source: Literal["scheduled", "retry"], now_ns: int) -> Call:
    """Move up to 100 due tasks from ``source`` to pending (or to their group when the hash
    has a ``group``). Reply: how many ids left the source; repeat until 0."""
    if source == "scheduled":
        src = keys.scheduled_key(queue)
    elif source == "retry":
        src = keys.retry_key(queue)
    else:
        raise ValueError(f"source must be 'scheduled' or 'retry', got {source!r}")
    args: list[Arg] = [
        now_ns // 1_000_000_000,
        keys.task_key_prefix(queue),
        now_ns,
        keys.group_key_prefix(queue),
    ]
    return Call("forward", [src, keys.pending_key(queue), keys.quarantine_key(queue)], args)


def count_result(reply: object) -> int:
    """An integer reply (forward, delete_expired_completed, ...)."""
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, int):
        raise BrokerError(f"expected an integer reply, got {reply!r}")
    return reply


forward_result = count_result


# --- leases and recovery (3.13) ---------------------------------------------------------


def extend_lease(queue: str, task_ids: Sequence[str], expires_at: float) -> Command:
    """Heartbeat: push the lease of ``task_ids`` (all in ``queue``) to ``expires_at``.
    ``ZADD XX`` only updates ids still leased; the reply (0) carries no information."""
    if not task_ids:
        raise ValueError("extend_lease needs at least one task id")
    score = int(expires_at)
    args: list[Arg] = ["ZADD", keys.lease_key(queue), "XX"]
    for tid in task_ids:
        args += [score, tid]
    return Command(tuple(args))


def extend_leases(queue: str, tasks: Sequence[tuple[str, str]], expires_at: float) -> Call:
    """Heartbeat, fenced: push the lease of each ``(task_id, token)`` in ``queue`` to
    ``expires_at`` if the task is still leased and still fenced by the token (``attempt``
    records the token and the current lease score), and record the new expiry in the
    fence. The reply, through :func:`extend_leases_result`, is the ids extended: the others
    were lost."""
    if not tasks:
        raise ValueError("extend_leases needs at least one task")
    args: list[Arg] = [int(expires_at), keys.task_key_prefix(queue)]
    for tid, token in tasks:
        args += [tid, token]
    return Call("extend_leases", [keys.lease_key(queue)], args)


def extend_leases_result(reply: object) -> list[str]:
    if not isinstance(reply, list):
        raise BrokerError(f"extend_leases: unexpected reply {reply!r}")
    return [_text(x) for x in reply]


def list_lease_expired(queue: str, cutoff: float) -> Call:
    """The tasks of ``queue`` whose lease expired at or before ``cutoff`` (Go: now - 30 s).

    Reply: flat triples ``[id, msg or nil, crashes, ...]`` in lease order; msg is nil when
    the id has no task hash (Go skips those, pyasynq reports them for quarantine), crashes
    is the ``crashes`` hash field as an integer (0 when absent). See
    :func:`list_lease_expired_result`."""
    return Call("list_lease_expired", [keys.lease_key(queue)], [int(cutoff), *_prefix(queue)])


def list_lease_expired_result(queue: str, reply: object) -> list[Leased]:
    """One :class:`Leased` per expired lease; unusable ones have ``msg=None`` and a
    ``problem`` and should go to :func:`quarantine`."""
    if not isinstance(reply, list) or len(reply) % 3:
        raise BrokerError(f"unexpected list_lease_expired reply {reply!r}")
    out = []
    for i in range(0, len(reply), 3):
        task_id = _text(reply[i])
        if int(reply[i + 2]) < 0:  # the script's mark for a task key of another type
            out.append(Leased(task_id, None, "task key is not a hash"))
            continue
        msg, problem = _check(queue, task_id, reply[i + 1])
        out.append(Leased(task_id, msg, problem, int(reply[i + 2])))
    return out


ORPHAN_SCAN_MAX = 10_000  # active ids lease_orphans looks at per call


def lease_orphans(queue: str, now: float, scan: int = ORPHAN_SCAN_MAX) -> Call:
    """Give every id in ``queue``'s active list that has no lease entry (evicted, or
    edited by hand) a lease ending at ``now``, so that :func:`list_lease_expired` finds it
    once the recoverer's grace has passed. Looks at the ``scan`` oldest active ids.
    Reply, through :func:`lease_orphans_result`: the ids that got a lease."""
    if scan < 1:
        raise ValueError(f"scan must be at least 1, got {scan}")
    return Call("lease_orphans", [keys.active_key(queue), keys.lease_key(queue)], [int(now), scan])


def lease_orphans_result(reply: object) -> list[str]:
    if not isinstance(reply, list):
        raise BrokerError(f"lease_orphans: unexpected reply {reply!r}")
    return [_text(x) for x in reply]


# --- quarantine (pyasynq) ---------------------------------------------------------------


def quarantine(queue: str, task_id: str, reason: str) -> Call:
    """Take a task that cannot be processed out of active and lease (and the container its
    hash's state names), record ``reason`` under its id in ``asynq:{q}:pyasynq:quarantine``
    and leave its hash alone. Reply 1 when it was removed from somewhere, else 0."""
    q = queue
    ks = [
        keys.task_key(q, task_id),
        keys.active_key(q),
        keys.lease_key(q),
        keys.pending_key(q),
        keys.scheduled_key(q),
        keys.retry_key(q),
        keys.archived_key(q),
        keys.completed_key(q),
        keys.quarantine_key(q),
    ]
    return Call("quarantine", ks, [task_id, _quarantine_reason(reason), keys.group_key_prefix(q)])


def quarantine_result(reply: object) -> bool:
    """True when the task was quarantined, False when it was in no container."""
    return count_result(reply) == 1


def list_quarantine(queue: str) -> Command:
    """The quarantine record of ``queue``; see :func:`list_quarantine_result`."""
    return Command(("HGETALL", keys.quarantine_key(queue)))


def list_quarantine_result(reply: object) -> dict[str, str]:
    """Task id -> reason."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    if isinstance(reply, list):  # raw RESP2 flat array
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}
    raise BrokerError(f"unexpected HGETALL reply {reply!r}")


# --- janitor (3.14) ---------------------------------------------------------------------


def delete_expired_completed(queue: str, now: float, batch: int = JANITOR_BATCH_SIZE) -> Call:
    """Delete up to ``batch`` completed tasks whose retention ended at or before ``now``.
    Reply: how many; repeat until 0."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return Call(
        "delete_expired_completed",
        [keys.completed_key(queue)],
        [int(now), keys.task_key_prefix(queue), batch],
    )


delete_expired_completed_result = count_result


# --- result writer (3.18) ---------------------------------------------------------------


def write_result(queue: str, task_id: str, data: bytes) -> Command:
    """ResultWriter.Write: store ``data`` in the task hash field ``result`` (a plain HSET
    that overwrites any earlier result)."""
    return Command(("HSET", keys.task_key(queue, task_id), "result", data))
