"""Snooze (pyasynq): a handler's "not yet". The task leaves ``active`` for the scheduled
set, exactly as a task enqueued with ``process_at`` waits there, so the forwarder (Go's
too) moves it back to pending when its time comes. Unlike a retry, ``msg`` is not
rewritten: ``retried``, ``error_msg`` and ``last_failed_at`` keep their values and no
counter moves. The task hash field ``snoozed`` counts the snoozes (Go ignores it).

Fenced like every outcome write (see :mod:`.processing`): the reply goes through
:func:`~.processing.check_write`.
"""

from __future__ import annotations

from pyasynq._rdb.codec import TaskMessage

from .. import keys
from .base import Arg, Call

__all__ = ["SNOOZED_FIELD", "snooze"]

SNOOZED_FIELD = "snoozed"
"""The task hash field that counts a task's snoozes."""


def snooze(msg: TaskMessage, run_at: float, token: str) -> Call:
    """Move the active task ``msg`` to the scheduled set until ``run_at`` (Unix seconds,
    rounded up to a whole second: a snooze never ends early), if ``token`` still fences
    it. Reply 1; see :func:`~.processing.check_write`."""
    q = msg.queue
    ks = [
        keys.task_key(q, msg.id),
        keys.active_key(q),
        keys.lease_key(q),
        keys.scheduled_key(q),
    ]
    at = int(run_at)
    if at < run_at:
        at += 1
    args: list[Arg] = [msg.id, at, token]
    return Call("snooze", ks, args)
