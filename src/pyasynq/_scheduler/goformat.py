"""Go's text forms, for what a scheduler writes into ``SchedulerEntry`` (wire spec 2.2).

Go asynq stores each enqueue option as its ``Option.String()``: ``MaxRetry(3)``,
``Queue("cron")`` (Go ``%q`` quoting), ``Timeout(1m30s)`` (Go duration text),
``Deadline(Fri Jan  1 00:00:00 UTC 2100)`` (Go ``time.UnixDate``), ``Unique(1h0m0s)``,
``ProcessAt(..)``, ``ProcessIn(..)``, ``Retention(..)``, ``Group("g")``, ``TaskID("x")`` and
``Header(["k","v"])`` (Go ``json.Marshal`` of the pair). Go's Inspector and CLI parse them
back (``pyasynq._rdb.goopts`` is our reader); these functions are the writer.

Times are written in UTC: Go's parser reads a zone abbreviation it does not know as UTC,
so any other zone would not survive the round trip.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pyasynq._rdb.ops.state import go_quote
from pyasynq.options import Duration, Options, When

__all__ = [
    "duration_ns",
    "go_duration",
    "go_header",
    "go_quote",
    "go_unix_date",
    "option_string",
    "option_strings",
    "parse_go_duration_ns",
]

_NS = 1_000_000_000


def duration_ns(value: Duration) -> int:
    """A duration (seconds or timedelta) as integer nanoseconds, exactly for timedeltas."""
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * _NS + value.microseconds * 1000
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"a duration must be seconds or a timedelta, got {value!r}")
    return round(value * _NS)


def _frac(value: int, digits: int) -> str:
    """``value / 10**digits`` with the fraction's trailing zeros (and a bare point)
    dropped, as Go's duration formatter prints it."""
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``1h0m0s``, ``1m30s``, ``1.5s``, ``500ms``,
    ``1.5µs``, ``100ns``, ``0s``, ``-2s``."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < _NS:  # below a second Go switches to the largest unit that keeps u >= 1
        if u < 1000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_frac(u, 3)}µs"  # U+00B5, as Go writes it
        return f"{sign}{_frac(u, 6)}ms"
    seconds = _frac(u % (60 * _NS), 9)
    minutes_total = u // (60 * _NS)
    if minutes_total == 0:
        return f"{sign}{seconds}s"
    hours, minutes = divmod(minutes_total, 60)
    if hours == 0:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{hours}h{minutes}m{seconds}s"


_UNITS_NS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": _NS, "m": 60 * _NS}
_UNITS_NS["h"] = 3600 * _NS
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration_ns(text: str) -> int:
    """Go's ``time.ParseDuration``, exactly, in nanoseconds: ``[-+]`` then one or more
    ``<decimal><unit>`` with units ns, us/µs/μs, ms, s, m, h; ``0`` alone is allowed.
    Raises ValueError with Go's message."""
    orig, s = text, text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    total = 0
    while s:
        m = _PART.match(s)
        assert m is not None  # the pattern matches the empty string
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:  # no digits before or after the point
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        # The unit runs up to the next digit or point; Go rejects anything unknown.
        if unit not in _UNITS_NS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        scale = _UNITS_NS[unit]
        value = int(whole or "0") * scale
        if frac:  # Go keeps the fraction's precision down to a nanosecond
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        if total > 2**63 - 1:
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        s = s[m.end() :]
    return -total if neg else total


def _utc(value: When) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a point in time must be timezone-aware")
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def go_unix_date(value: When) -> str:
    """Go's ``time.UnixDate`` layout (``Mon Jan _2 15:04:05 MST 2006``) in UTC, whole
    seconds (the layout has no fraction)."""
    t = _utc(value)
    # Names from tables, not strftime: %a/%b follow the process locale.
    day, month = _DAYS[t.weekday()], _MONTHS[t.month - 1]
    return f"{day} {month} {t.day:2d} {t:%H:%M:%S} UTC {t.year:04d}"


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def go_header(key: str, value: str) -> str:
    """``Header(<json.Marshal([key, value])>)``. Go's encoder escapes ``<``, ``>``, ``&``,
    U+2028 and U+2029 and keeps other non-ASCII text as is."""
    text = json.dumps([key, value], ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"Header({text})"


def option_string(name: str, value: Any) -> list[str]:
    """The Go strings of one :class:`~pyasynq.options.Options` field (``headers`` gives
    one ``Header`` per pair, in order)."""
    if name == "queue":
        return [f"Queue({go_quote(value)})"]
    if name == "max_retry":
        return [f"MaxRetry({max(0, int(value))})"]  # Go clamps a negative count to 0
    if name == "task_id":
        return [f"TaskID({go_quote(value)})"]
    if name == "group":
        return [f"Group({go_quote(value)})"]
    if name in ("timeout", "unique", "process_in", "retention"):
        label = {"timeout": "Timeout", "unique": "Unique"}.get(name)
        label = label or {"process_in": "ProcessIn", "retention": "Retention"}[name]
        return [f"{label}({go_duration(duration_ns(value))})"]
    if name in ("deadline", "process_at"):
        label = "Deadline" if name == "deadline" else "ProcessAt"
        return [f"{label}({go_unix_date(value)})"]
    if name == "headers":
        return [go_header(k, v) for k, v in dict(value).items()]
    raise ValueError(f"not an enqueue option: {name!r}")


def option_strings(options: Options | Mapping[str, Any], order: Iterable[str] = ()) -> list[str]:
    """The Go strings of every option that is set: first those named in ``order`` (the
    order the user gave them), then the rest in :class:`Options` field order."""
    given = options if isinstance(options, Mapping) else _as_dict(options)
    names = [n for n in order if given.get(n) is not None]
    names += [n for n in _FIELDS if n not in names and given.get(n) is not None]
    out: list[str] = []
    for n in names:
        out += option_string(n, given[n])
    return out


_FIELDS = [f for f in Options.__dataclass_fields__]


def _as_dict(options: Options) -> dict[str, Any]:
    return {f: getattr(options, f) for f in _FIELDS}
