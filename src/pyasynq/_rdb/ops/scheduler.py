"""A scheduler's own writes (pyasynq only; the state Go reads is in ``ops.state``).

* :func:`scheduler_enqueue` wraps an ordinary enqueue (``ops.enqueue.enqueue_call``) so
  that one tick of a periodic task is enqueued at most once by all the schedulers that run
  the same entry: the first one sets a short-lived tick marker in the same script call,
  the others find it and write nothing. The task itself is byte-for-byte what the wrapped
  script writes.
* :func:`every_anchor` shares the start of an ``@every`` entry's intervals between those
  schedulers, so they all fire at the same instants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyasynq.errors import BrokerError, DuplicateTaskError, TaskIDConflictError

from .. import keys
from .base import Call, Command, Op

__all__ = [
    "ALREADY_ENQUEUED",
    "every_anchor",
    "every_anchor_result",
    "scheduler_enqueue",
    "scheduler_enqueue_result",
]

ALREADY_ENQUEUED = 2  # script reply: another scheduler handled this tick

_WRAPPABLE = frozenset(
    {
        "enqueue",
        "enqueue_unique",
        "schedule",
        "schedule_unique",
        "add_to_group",
        "add_to_group_unique",
    }
)


def scheduler_enqueue(
    enqueue: Call, *, queue: str, entry_key: str, fire_time: int, marker_ttl: int
) -> Call:
    """The tick ``fire_time`` (Unix s) of entry ``entry_key`` (its identity, the same on
    every scheduler), enqueued by the wrapped ``enqueue`` call unless another scheduler
    already did. The marker lives ``marker_ttl`` seconds. See
    :func:`scheduler_enqueue_result`."""
    if enqueue.script not in _WRAPPABLE:
        raise ValueError(f"not an enqueue operation: {enqueue.script!r}")
    if marker_ttl < 1:
        raise ValueError(f"marker_ttl must be at least 1 second, got {marker_ttl}")
    marker = keys.scheduler_tick_key(queue, entry_key, fire_time)
    return Call(
        "scheduler_enqueue",
        [marker, *enqueue.keys],
        [int(marker_ttl), enqueue.script, *enqueue.args],
    )


def scheduler_enqueue_result(reply: object) -> bool:
    """True when this call stored the task, False when another scheduler had handled the
    tick. Raises TaskIDConflictError (0), DuplicateTaskError (-1) or the BrokerError."""
    if isinstance(reply, BrokerError):
        raise reply
    if reply == 1:
        return True
    if reply == ALREADY_ENQUEUED:
        return False
    if reply == 0:
        raise TaskIDConflictError()
    if reply == -1:
        raise DuplicateTaskError()
    raise BrokerError(f"unexpected scheduler_enqueue reply {reply!r}")


def every_anchor(queue: str, entry_key: str, anchor: int, ttl: int) -> list[Op]:
    """Propose ``anchor`` (Unix s) as the shared start of an ``@every`` entry's intervals
    and refresh its TTL: SET NX, EXPIRE, GET (pipelined; single-key commands). The GET
    says which anchor won; see :func:`every_anchor_result`."""
    if ttl < 1:
        raise ValueError(f"ttl must be at least 1 second, got {ttl}")
    key = keys.scheduler_anchor_key(queue, entry_key)
    return [
        Command(("SET", key, int(anchor), "NX", "EX", int(ttl))),
        Command(("EXPIRE", key, int(ttl))),
        Command(("GET", key)),
    ]


def every_anchor_result(replies: Sequence[object]) -> int:
    """The anchor every scheduler of the entry uses (the GET reply)."""
    for reply in replies:
        if isinstance(reply, BrokerError):
            raise reply
    value = replies[-1]
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if isinstance(text, int) or (isinstance(text, str) and re.fullmatch(r"-?[0-9]+", text)):
        return int(text)
    raise BrokerError(f"unexpected @every anchor {value!r}")
