"""Cron specs exactly as Go asynq reads them: robfig/cron v3's standard parser.

Accepted: five fields (minute hour day-of-month month day-of-week) with ``*``, ``?``,
lists ``a,b``, ranges ``a-b``, steps ``/n`` (``5/15`` means ``5-59/15``) and month/day
names (``jan``, ``MON``; case-insensitive); the descriptors ``@yearly``/``@annually``,
``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly`` and ``@every <Go
duration>``; and an optional ``CRON_TZ=<zone>`` or ``TZ=<zone>`` prefix.

Why not croniter: it accepts more than robfig (seconds and year fields, ``L``, ``W``,
``#``, ``H``, 7 for Sunday), so a spec Go rejects would run here, and its day-of-month /
day-of-week rule and daylight-saving handling differ from robfig's in edge cases. This
module follows robfig's algorithm instead (bit sets; ``Next`` walks month, day, hour,
minute, second with Go's ``time.Date`` normalisation), so a spec means the same instants
in both. A field is "starred" (``*``/``?``, or a ``*`` range with step 1): if either day
field is starred both must match, otherwise either may (Vixie cron's OR).

Deliberate differences: a field that names no value at all (``,``) is refused instead of
silently never firing; a zone prefix with nothing after it is an error (Go panics).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

from .goformat import parse_go_duration_ns

__all__ = ["CronSpecError", "EverySchedule", "Schedule", "SpecSchedule", "load_location", "parse"]

_NS = 1_000_000_000
_STAR = 1 << 63  # robfig's starBit: the field was given as "*" or "?"
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_WRAPS = 10_000  # robfig stops after five years; this only guards against a bug
_HINT = (
    "use five fields (minute hour day-of-month month day-of-week), a descriptor "
    "(@yearly, @monthly, @weekly, @daily, @hourly) or @every <duration> such as @every 1m30s"
)


class CronSpecError(ValueError):
    """A cron spec Go asynq (robfig/cron v3) would not accept."""


_MONTH_NAMES = {
    n: i + 1
    for i, n in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DOW_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclass(frozen=True, slots=True)
class _Bounds:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day of month", 1, 31),
    _Bounds("month", 1, 12, _MONTH_NAMES),
    _Bounds("day of week", 0, 6, _DOW_NAMES),
)


def _bits(lo: int, hi: int, step: int = 1) -> int:
    out = 0
    for i in range(lo, hi + 1, step):
        out |= 1 << i
    return out


def _all(b: _Bounds) -> int:
    return _bits(b.lo, b.hi) | _STAR


@dataclass(frozen=True, slots=True)
class SpecSchedule:
    """A crontab schedule as bit sets (bit n set = value n matches), robfig's
    SpecSchedule. ``tz`` is the spec's own zone (``CRON_TZ=``); None means the
    scheduler's location."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    tz: tzinfo | None = None

    def next(self, after_ns: int, location: tzinfo) -> int | None:
        """The first activation strictly after ``after_ns`` (Unix ns), as Unix seconds;
        None when there is none within five years (e.g. 30 February)."""
        loc = self.tz or location
        try:
            return self._next(after_ns // _NS + 1, loc)
        except (OverflowError, ValueError):  # past year 9999
            return None

    def _next(self, t: int, loc: tzinfo) -> int | None:  # noqa: PLR0915 (robfig's one loop)
        added = False
        year_limit = _wall(t, loc).year + 5
        for _ in range(_MAX_WRAPS):
            w = _wall(t, loc)
            if w.year > year_limit:
                return None
            wrapped = False
            while not (self.month >> w.month) & 1:
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, 1, 0, 0, 0, loc)
                    w = _wall(t, loc)
                t = _go_date(w.year, w.month + 1, w.day, w.hour, w.minute, w.second, loc)
                w = _wall(t, loc)
                if w.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(w):
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, w.day, 0, 0, 0, loc)
                    w = _wall(t, loc)
                t = _go_date(w.year, w.month, w.day + 1, w.hour, w.minute, w.second, loc)
                w = _wall(t, loc)
                if w.hour != 0:  # midnight skipped or repeated by a DST change
                    t += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                    w = _wall(t, loc)
                if w.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (self.hour >> w.hour) & 1:
                if not added:
                    added = True
                    t = _go_date(w.year, w.month, w.day, w.hour, 0, 0, loc)
                t += 3600
                w = _wall(t, loc)
                if w.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (self.minute >> w.minute) & 1:
                if not added:
                    added = True
                    t -= t % 60  # Go's Truncate(time.Minute): on absolute time
                t += 60
                w = _wall(t, loc)
                if w.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (self.second >> w.second) & 1:
                added = True
                t += 1
                w = _wall(t, loc)
                if w.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t
        return None

    def _day_matches(self, w: datetime) -> bool:
        dom = bool((self.dom >> w.day) & 1)
        dow = bool((self.dow >> ((w.weekday() + 1) % 7)) & 1)  # Go: Sunday = 0
        if self.dom & _STAR or self.dow & _STAR:
            return dom and dow
        return dom or dow


@dataclass(frozen=True, slots=True)
class EverySchedule:
    """``@every <duration>``: robfig's ConstantDelaySchedule. The delay is whole seconds
    (shorter durations become 1 s, fractions are dropped)."""

    delay: int

    def next(self, after_ns: int, anchor: int | None = None) -> int:
        """robfig: ``after`` rounded down to the second, plus the delay. With ``anchor``
        (Unix s), the first ``anchor + k * delay`` after ``after_ns`` instead, so every
        scheduler that shares the anchor fires at the same instants, and a late wake-up
        does not shift the phase."""
        floor = after_ns // _NS
        if anchor is None:
            return floor + self.delay
        return anchor + ((floor - anchor) // self.delay + 1) * self.delay


Schedule = SpecSchedule | EverySchedule


def _wall(t: int, loc: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, loc)


def _offset(t: int, loc: tzinfo) -> int:
    off = _wall(t, loc).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _go_date(  # noqa: PLR0917 (Go's time.Date signature)
    year: int, month: int, day: int, hour: int, minute: int, sec: int, loc: tzinfo
) -> int:
    """Go's ``time.Date``: out-of-range months and days roll over; a wall time in a DST
    gap or overlap is resolved as Go does (the zone in effect at the wall time read as
    UTC, corrected once if the result falls outside that zone period)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    local = days * 86_400 + hour * 3600 + minute * 60 + sec
    off = _offset(local, loc)
    if off != 0 and _offset(local - off, loc) != off:
        off = _offset(local - off, loc)
    return local - off


def load_location(name: str) -> tzinfo:
    """Go's ``time.LoadLocation``: ``""`` and ``UTC`` are UTC, ``Local`` the system zone,
    anything else an IANA name."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        try:
            with open("/etc/localtime", "rb") as f:
                return ZoneInfo.from_file(f, key="Local")
        except OSError:
            return UTC
    if os.path.isabs(name) or ".." in name:  # ZoneInfo takes keys, never paths
        raise CronSpecError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise CronSpecError(f"unknown time zone {name}") from exc


def parse(spec: str) -> Schedule:
    """Parse ``spec``; raise :class:`CronSpecError` with robfig's reason and the spec."""
    if not isinstance(spec, str):
        raise TypeError(f"a cron spec must be a str, got {type(spec).__name__}")
    try:
        return _parse(spec)
    except CronSpecError as exc:
        raise CronSpecError(f"invalid cron spec {spec!r}: {exc}") from None


def _parse(spec: str) -> Schedule:
    if not spec:
        raise CronSpecError(f"empty spec string; {_HINT}")
    tz: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        if space < 0:
            raise CronSpecError("a schedule must follow the time zone, e.g. CRON_TZ=UTC 0 9 * * *")
        name = spec[spec.find("=") + 1 : space]
        try:
            tz = load_location(name)
        except CronSpecError as exc:
            raise CronSpecError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip()
    if spec.startswith("@"):
        return _descriptor(spec, tz)
    fields = spec.split()
    if len(fields) != 5:
        raise CronSpecError(
            f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]; {_HINT}"
        )
    minute, hour, dom, month, dow = (_field(f, b) for f, b in zip(fields, _FIELDS, strict=True))
    return SpecSchedule(1, minute, hour, dom, month, dow, tz)


def _descriptor(spec: str, tz: tzinfo | None) -> Schedule:
    minute, hour, dom, month, dow = _FIELDS
    first = (1, 1 << minute.lo)  # second 0, minute 0
    if spec in ("@yearly", "@annually"):
        return SpecSchedule(*first, 1 << hour.lo, 1 << dom.lo, 1 << month.lo, _all(dow), tz)
    if spec == "@monthly":
        return SpecSchedule(*first, 1 << hour.lo, 1 << dom.lo, _all(month), _all(dow), tz)
    if spec == "@weekly":
        return SpecSchedule(*first, 1 << hour.lo, _all(dom), _all(month), 1 << dow.lo, tz)
    if spec in ("@daily", "@midnight"):
        return SpecSchedule(*first, 1 << hour.lo, _all(dom), _all(month), _all(dow), tz)
    if spec == "@hourly":
        return SpecSchedule(*first, _all(hour), _all(dom), _all(month), _all(dow), tz)
    if spec.startswith("@every "):
        try:
            ns = parse_go_duration_ns(spec[len("@every ") :])
        except ValueError as exc:
            raise CronSpecError(
                f"failed to parse duration {spec}: {exc} (Go duration syntax: 1h2m3.5s, "
                "1m30s, 500ms)"
            ) from None
        return EverySchedule(max(ns, _NS) // _NS)  # under a second counts as one
    raise CronSpecError(f"unrecognized descriptor: {spec}; {_HINT}")


def _field(text: str, b: _Bounds) -> int:
    bits = 0
    for expr in (e for e in text.split(",") if e):  # Go's FieldsFunc drops empty items
        try:
            bits |= _range(expr, b)
        except CronSpecError as exc:
            raise CronSpecError(f"{b.name} field: {exc}") from None
    if not bits & ~_STAR:
        raise CronSpecError(f"the {b.name} field {text!r} names no value")
    return bits


_INT = re.compile(r"[+-]?[0-9]+")


def _int(expr: str) -> int:
    if not _INT.fullmatch(expr):
        raise CronSpecError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}"')
    n = int(expr)
    if n < 0:
        raise CronSpecError(f"negative number ({n}) not allowed: {expr}")
    if n > 2**63 - 1:
        raise CronSpecError(f'failed to parse int from {expr}: value out of range "{expr}"')
    return n


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _int(expr)


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = b.lo, b.hi, _STAR  # like robfig, "*-5" is just "*"
    else:
        start = _int_or_name(low_high[0], b.names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b.names)
        else:
            raise CronSpecError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_high) == 1:  # "N/step" means "N-max/step"
            end = b.hi
        if step > 1:
            extra = 0
    else:
        raise CronSpecError(f"too many slashes: {expr}")
    if start < b.lo:
        raise CronSpecError(f"beginning of range ({start}) below minimum ({b.lo}): {expr}")
    if end > b.hi:
        raise CronSpecError(f"end of range ({end}) above maximum ({b.hi}): {expr}")
    if start > end:
        raise CronSpecError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronSpecError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra
