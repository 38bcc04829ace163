"""Results and progress (pyasynq only): what a waiter and a reporting handler send.

* **Waiting.** A waiter subscribes to its own Pub/Sub channel (:func:`channel`), then runs
  :func:`watch`: one script that reads the task's state and, unless the task is already
  completed or archived, adds the channel to the task hash field ``pyasynq:notify``. The
  pyasynq scripts that write a final outcome (done, done_many, mark_complete, archive)
  PUBLISH it to every channel in that field; :func:`parse_notice` reads the message. A Go
  server writes the same outcomes without publishing, so waiters also poll with
  :func:`watch` (see :func:`outcome`).
* **Progress.** :func:`report_progress` stores a running task's progress as JSON in the
  hash field ``pyasynq:progress``, fenced by the attempt token like every worker write, and
  publishes it to the same channels.

Classic PUBLISH (not SPUBLISH) is used: in a Redis Cluster it reaches every node, so a
waiter subscribed on any node hears it, on Redis 6 as on 7. Go never reads either field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pyasynq.errors import BrokerError
from pyasynq.task import TaskProgress

from .. import keys
from ..codec import TaskMessage, decode_task
from .base import Call

CHANNEL_PREFIX = "pyasynq:result:"
MAX_CHANNELS = 16  # channels one task keeps in pyasynq:notify; older ones drop out
MAX_MESSAGE = 1000  # characters of a progress message that are kept
WAITING_TTL = 60  # seconds asynq:{q}:pyasynq:waiting outlives the last read of a waiter

COMPLETED = "completed"
ARCHIVED = "archived"
PROGRESS = "progress"


def channel(listener_id: str) -> str:
    """The Pub/Sub channel of one result listener."""
    return CHANNEL_PREFIX + listener_id


def watch(queue: str, task_id: str, chan: str) -> Call:
    """Read the task's state and register ``chan`` for its outcome; see :func:`outcome`."""
    return Call(
        "watch_result",
        [keys.task_key(queue, task_id), keys.waiting_key(queue)],
        [chan, MAX_CHANNELS, WAITING_TTL],
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a waiter learned: ``final`` once the task completed (``result``) or was
    archived (``msg`` carries its error); ``gone`` when the task hash does not exist;
    else the task still runs or waits, with its last ``progress``."""

    state: str
    result: bytes = b""
    msg: TaskMessage | None = None
    progress: TaskProgress | None = None

    @property
    def final(self) -> bool:
        return self.state in (COMPLETED, ARCHIVED)

    @property
    def gone(self) -> bool:
        return self.state == ""


GONE = Outcome("")


def outcome(reply: object) -> Outcome:
    """The :func:`watch` reply as an :class:`Outcome`."""
    if isinstance(reply, BrokerError):
        raise reply
    if reply is None:
        return GONE
    if not isinstance(reply, list) or len(reply) != 4:
        raise BrokerError(f"unexpected watch_result reply {reply!r}")
    state = _text(reply[0])
    msg = decode_task(bytes(reply[1])) if state == ARCHIVED else None
    result = bytes(reply[2]) if reply[2] else b""
    return Outcome(state, result, msg, parse_progress(reply[3]))


def parse_notice(data: bytes) -> tuple[str, str, bytes]:
    """A published message as ``(kind, task key, data)``: kind is ``completed`` (data:
    the result), ``archived`` (data: the encoded TaskMessage) or ``progress`` (data: the
    JSON progress). Raises ValueError on anything else."""
    kind, _, rest = data.partition(b":")
    size, _, rest = rest.partition(b":")
    n = int(size)
    if len(rest) < n or kind not in (b"completed", b"archived", b"progress"):
        raise ValueError(f"not a pyasynq result notice: {data[:80]!r}")
    return kind.decode(), rest[:n].decode("utf-8", "replace"), rest[n:]


def notice_outcome(kind: str, data: bytes) -> Outcome:
    """The :class:`Outcome` a ``completed`` or ``archived`` notice carries."""
    if kind == COMPLETED:
        return Outcome(COMPLETED, data)
    return Outcome(ARCHIVED, msg=decode_task(data))


def parse_progress(value: object) -> TaskProgress | None:
    """The stored ``pyasynq:progress`` JSON as a TaskProgress; None when absent or
    unreadable."""
    if not value or not isinstance(value, bytes | str):
        return None
    try:
        d = json.loads(value)
        at = d.get("at")
        return TaskProgress(
            fraction=float(d["fraction"]),
            message=str(d.get("message", "")),
            updated_at=datetime.fromtimestamp(float(at), UTC) if at else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def check_progress(fraction: float, message: str) -> tuple[float, str]:
    """Validate what a handler reports: ``fraction`` in [0, 1], ``message`` a string (cut
    to MAX_MESSAGE characters)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
    if not (0.0 <= float(fraction) <= 1.0) or math.isnan(fraction):
        raise ValueError(f"progress fraction must be from 0 to 1, got {fraction!r}")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be a str, got {type(message).__name__}")
    return float(fraction), message[:MAX_MESSAGE]


def encode_progress(fraction: float, message: str, at: float) -> str:
    return json.dumps(
        {"fraction": fraction, "message": message, "at": round(at, 3)},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def report_progress(queue: str, task_id: str, token: str, value: str) -> Call:
    """Store ``value`` (see :func:`encode_progress`) as the task's progress if ``token``
    still fences it. Reply 1, or the LEASE LOST error (see processing.map_error)."""
    if not token:
        raise ValueError("report_progress needs the attempt token")
    return Call(
        "report_progress",
        [keys.task_key(queue, task_id), keys.lease_key(queue)],
        [task_id, token, value],
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
