"""What a worker says about a task whose handler failed, and the error text it stores.

One line per failed attempt, written where the outcome is decided (the processor's
``_finish``), so no other layer repeats it: who (task id, type, queue), what became of
it (retry n/max and when, archived, revoked) and the error as stored in ``error_msg``.
A snooze (not a failure) gets its one line too, at info. A failed retry is a warning,
an archived task an error. The traceback rides with the line the first time an error is
raised from a given line of code (per process), and every time when debug logging is on:
a failure that repeats stays one line per attempt.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pyasynq import mux as _mux
from pyasynq.errors import LeaseExpiredError, RevokeTask, SkipRetry
from pyasynq.log import LogLevel
from pyasynq.mux import HandlerNotFoundError

if TYPE_CHECKING:
    from pyasynq._rdb.codec import TaskMessage
    from pyasynq.log import ExcInfo, Logger
    from pyasynq.mux import ServeMux


class DeadlineExceeded(Exception):
    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class Aborted(Exception):
    """The shutdown timeout fired while the handler ran: requeue the task."""


class Canceled(Exception):
    def __init__(self) -> None:
        super().__init__("context canceled")


# Conditions asynq has too, and its signals: stored with their text alone, as a Go server
# writes it ("context deadline exceeded", a SkipRetry's own message).
_ASYNQ_TEXT: tuple[type[BaseException], ...] = (
    DeadlineExceeded, Canceled, LeaseExpiredError, HandlerNotFoundError, SkipRetry, RevokeTask,
)  # fmt: skip
# ... whose traceback says nothing: raised by the worker itself, or a deliberate signal.
_NO_TRACEBACK = _ASYNQ_TEXT
MAX_SITES = 1000  # distinct raising lines remembered for the first-time traceback
# The worker's own frames between the event loop and the handler, left out of tracebacks.
_OWN_FILES = frozenset(str(Path(__file__).with_name(n)) for n in ("processor.py", "threads.py")) | {
    str(Path(_mux.__file__))
}


def error_text(exc: BaseException) -> str:
    """The task's ``error_msg``: the exception as Python's last traceback line shows it,
    with the short type name (``KeyError: 'missing'``); asynq's own conditions and
    signals keep their text."""
    text = str(exc)
    if isinstance(exc, _ASYNQ_TEXT):
        return text or type(exc).__name__
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3.5h``: how long until a retry, for a log line."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class FailureLog:
    """Writes the one line per failed attempt (see the module docstring)."""

    def __init__(self, log: Logger, mux: ServeMux) -> None:
        self._log = log
        self._mux = mux
        self._sites: set[tuple[str, str, int]] = set()

    def retrying(self, msg: TaskMessage, err: BaseException, delay: float, counted: bool) -> None:
        when = duration(delay)
        if counted:
            self._emit(LogLevel.WARN, msg, err, f"retry {msg.retried + 1}/{msg.retry} in {when}")
        else:  # is_failure said it is none: expected, so no warning
            self._emit(LogLevel.INFO, msg, err, f"retry in {when} (not counted as a failure)")

    def archived(self, msg: TaskMessage, err: BaseException, skip: bool) -> None:
        again = f" (to run it again: pyasynq task run -q {msg.queue} -i {msg.id})"
        if skip:
            self._emit(LogLevel.WARN, msg, err, "SkipRetry, archived without retrying", again)
        else:
            outcome = f"retry exhausted ({msg.retried}/{msg.retry}), archived"
            self._emit(LogLevel.ERROR, msg, err, outcome, again)

    def snoozed(self, msg: TaskMessage, delay: float) -> None:
        """A handler's Snooze: expected, so info, and no error text."""
        who = f'task {msg.id} (type "{msg.type}", queue "{msg.queue}")'
        self._log.info("%s snoozed for %s", who, duration(delay))

    def revoked(self, msg: TaskMessage, err: BaseException) -> None:
        self._emit(LogLevel.WARN, msg, err, "RevokeTask, deleted without retrying")

    def _emit(
        self, level: LogLevel, msg: TaskMessage, err: BaseException, outcome: str, hint: str = ""
    ) -> None:
        if isinstance(err, LeaseExpiredError) or not self._log.enabled(level):
            return  # a lost lease is told where the write is given up (Processor._write)
        who = f'task {msg.id} (type "{msg.type}", queue "{msg.queue}")'
        if isinstance(err, HandlerNotFoundError):
            line = f"{who}: no handler for type {_quoted(msg.type)} {self._known()}; {outcome}"
        else:
            line = f"{who} failed; {outcome}: {error_text(err)}"
            if not isinstance(err, Exception):
                line += (
                    f" (raised by the handler, {type(err).__name__} fails only this task;"
                    " the worker keeps running)"
                )
        line += hint
        self._log.log(level, "%s", line, exc=self._traceback(err))

    def _known(self) -> str:
        patterns = self._mux.patterns()
        if not patterns:
            return "(this worker's ServeMux has no handlers)"
        shown = ", ".join(_quoted(p) for p in patterns[:10])
        more = f" and {len(patterns) - 10} more" if len(patterns) > 10 else ""
        return f"(this worker's ServeMux has {shown}{more})"

    def _traceback(self, err: BaseException) -> ExcInfo:
        """The traceback to go with the line, if it does (see the module docstring)."""
        tb = err.__traceback__
        if tb is None or isinstance(err, _NO_TRACEBACK):
            return None
        if not self._log.enabled(LogLevel.DEBUG):
            last = tb
            while last.tb_next is not None:
                last = last.tb_next
            site = (type(err).__qualname__, last.tb_frame.f_code.co_filename, last.tb_lineno)
            if site in self._sites:
                return None
            if len(self._sites) >= MAX_SITES:
                self._sites.clear()
            self._sites.add(site)
        return type(err), err, _users_frames(tb)


def _users_frames(tb: TracebackType) -> TracebackType:
    """A copy of ``tb`` without the worker's own frames (the exception keeps its own)."""
    kept = []
    cur: TracebackType | None = tb
    while cur is not None:
        if cur.tb_frame.f_code.co_filename not in _OWN_FILES:
            kept.append(cur)
        cur = cur.tb_next
    if not kept:
        return tb
    out: TracebackType | None = None
    for t in reversed(kept):
        out = TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    assert out is not None
    return out


def _quoted(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'
