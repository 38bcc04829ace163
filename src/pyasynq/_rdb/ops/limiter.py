"""Fleet-wide limits (pyasynq only): a concurrency cap and a rate limit per task type, per
queue, kept in the queue's hash slot under ``asynq:{q}:pyasynq:limit:<name>:*``.

:func:`acquire` runs right after a dequeue, only for tasks whose type has a limit: it lets
the task start (recording it as a holder, or its start in the rate window) or parks it in
the scheduled set with asynq's state, indexed as a waiter. :func:`wake` releases a task's
slot when its handler ends and moves as many waiters back to the front of pending as there
is room for; the server's limiter component also calls it without a task, every second and
when the rate window next frees, which is what frees the slots of crashed workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyasynq.errors import BrokerError

from .. import keys
from .base import LEASE_DURATION, Arg, Call, Command
from .processing import Leased, dequeue_result

WAIT_FALLBACK = 60.0  # seconds a parked task stays in scheduled if nothing wakes it
RESERVE = 5.0  # seconds a woken waiter's slot is held for it until it is dequeued


@dataclass(frozen=True, slots=True)
class Spec:
    """The numbers of a limit as the scripts take them: 0 = not set."""

    concurrency: int
    rate: int
    per: float


@dataclass(frozen=True, slots=True)
class Acquired:
    """What :func:`acquire_result` found: ``started`` (run it now), ``parked_until`` (Unix
    s: waiting in scheduled), or neither (the task is no longer ours)."""

    started: bool
    parked_until: float | None = None


@dataclass(frozen=True, slots=True)
class Woken:
    """What :func:`wake_result` found: how many waiters went back to pending, and in how
    many seconds the rate window next frees a start (None when it is not rate-bound)."""

    woken: int
    next_free: float | None
    taken: Leased | None = None  # the waiter handed over to the caller, leased to it


def _parts(queue: str, name: str) -> list[str]:
    return [keys.limit_key(queue, name, p) for p in ("running", "starts", "waiting")]


def acquire(
    queue: str, name: str, spec: Spec, *, task_id: str, token: str, now: float,
    wait_fallback: float = WAIT_FALLBACK, grace: float = LEASE_DURATION,
) -> Call:  # fmt: skip
    """Start the dequeued task ``task_id`` (leased with ``token``) under limit ``name``,
    or park it. See lua/limit_acquire.lua."""
    ks = [
        *_parts(queue, name), keys.active_key(queue), keys.lease_key(queue),
        keys.scheduled_key(queue),
    ]  # fmt: skip
    args: list[Arg] = [
        repr(now), spec.concurrency, spec.rate, repr(spec.per), keys.task_key_prefix(queue),
        int(now + wait_fallback), task_id, token, repr(float(grace)),
    ]  # fmt: skip
    return Call("limit_acquire", ks, args)


def acquire_result(reply: object) -> Acquired:
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, list) or not reply:
        raise BrokerError(f"unexpected limit_acquire reply {reply!r}")
    code = int(reply[0])
    if code == 1:
        return Acquired(True)
    if code == 0:
        return Acquired(False, float(reply[1]))
    return Acquired(False)


def wake(
    queue: str, name: str, spec: Spec, now_ns: int, *, task_id: str = "", token: str = "",
    channel: str = keys.WAKE_CHANNEL, reserve: float = RESERVE, grace: float = LEASE_DURATION,
    take_token: str = "", lease_until: int = 0,
) -> Call:  # fmt: skip
    """Release ``task_id``'s slot (when given) and wake waiters; with ``take_token``, the
    first waiter is leased to the caller until ``lease_until`` and returned (see
    :func:`wake_result`). See lua/limit_wake.lua."""
    ks = [
        *_parts(queue, name), keys.lease_key(queue), keys.scheduled_key(queue),
        keys.pending_key(queue), keys.limits_key(queue),
    ]  # fmt: skip
    if take_token:
        ks += [keys.active_key(queue), keys.paused_key(queue)]
    args: list[Arg] = [
        repr(now_ns / 1e9), now_ns, spec.concurrency, spec.rate, repr(spec.per),
        keys.task_key_prefix(queue), repr(reserve), name, channel, queue, task_id, token,
        repr(float(grace)), take_token, lease_until,
    ]  # fmt: skip
    return Call("limit_wake", ks, args)


def wake_result(queue: str, reply: object) -> Woken:
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, list) or len(reply) not in (2, 4):
        raise BrokerError(f"unexpected limit_wake reply {reply!r}")
    nxt = float(reply[1])
    taken = dequeue_result(queue, [reply[2], reply[3], "", 0]) if len(reply) == 4 else None
    return Woken(int(reply[0]), None if nxt < 0 else nxt, taken)


# --- reading (Inspector) -----------------------------------------------------------------


def read_registry(queue: str) -> Command:
    """The limits pyasynq servers enforce in ``queue``: HGETALL of the registry."""
    return Command(("HGETALL", keys.limits_key(queue)))


def registry_result(reply: object) -> dict[str, tuple[int, int, float, float]]:
    """name -> (concurrency, rate, per, last seen Unix s), from HGETALL."""
    if isinstance(reply, BrokerError):
        raise reply
    pairs = reply.items() if isinstance(reply, dict) else []
    out: dict[str, tuple[int, int, float, float]] = {}
    for k, v in pairs:
        name = k.decode() if isinstance(k, bytes) else str(k)
        text = v.decode() if isinstance(v, bytes) else str(v)
        try:
            cap, rate, per, seen = text.split()
            out[name] = (int(cap), int(rate), float(per), float(seen))
        except ValueError:
            continue
    return out


def usage(queue: str, name: str, now: float, per: float) -> list[Command]:
    """Holders (pruned every second by the servers), starts in the current window, waiters."""
    running, starts, waiting = _parts(queue, name)
    return [
        Command(("ZCARD", running)),
        Command(("ZCOUNT", starts, f"({now - per!r}", "+inf")),
        Command(("ZCARD", waiting)),
    ]
