"""Reading the enqueue-option strings a Go scheduler stores in ``SchedulerEntry``
(wire spec 2.2): each is a Go option's ``String()`` form, e.g. ``Queue("cron")``,
``MaxRetry(3)``, ``Timeout(1m30s)``, ``Deadline(Fri Jan  1 00:00:00 UTC 2100)``,
``Header(["k","v"])``.

Go's Inspector parses them back and silently drops what it cannot read; so does
:func:`parse_option_strings`. It also keeps ``TaskID`` and ``Group``, which Go drops:
they are what the scheduler enqueues with, and dropping them would hide it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pyasynq.options import Options

__all__ = ["go_unquote", "parse_go_duration", "parse_go_unix_date", "parse_option_strings"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """A Go ``time.Duration`` string (``1h0m0s``, ``1m30s``, ``500ms``, ``0s``, ``-2h``)."""
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"not a Go duration: {text!r}")
    return timedelta(seconds=sign * total)


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\"\'])')


def go_unquote(text: str) -> str:
    """Go's ``strconv.Unquote`` for the ``%q`` form of a string (or a backquoted raw
    string). ``\\x``/octal escapes are bytes, joined and decoded as UTF-8 as in Go."""
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1]
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError(f"not a Go quoted string: {text!r}")
    body = text[1:-1]
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(body):
        chunk = body[pos : m.start()]
        if "\\" in chunk or '"' in chunk:
            raise ValueError(f"bad escape in Go quoted string: {text!r}")
        out += chunk.encode()
        esc = m.group(1)
        if esc[0] == "x":
            out.append(int(esc[1:], 16))
        elif esc[0] in "uU":
            out += chr(int(esc[1:], 16)).encode()
        elif esc[0].isdigit():
            out.append(int(esc, 8) & 0xFF)
        else:
            out += _SIMPLE_ESCAPES[esc].encode()
        pos = m.end()
    rest = body[pos:]
    if "\\" in rest or '"' in rest:
        raise ValueError(f"bad escape in Go quoted string: {text!r}")
    out += rest.encode()
    return out.decode("utf-8", "replace")


_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
}
_UNIX_DATE = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)? (\S+) (-?\d{4,})"
)


def parse_go_unix_date(text: str) -> datetime:
    """A time in Go's ``time.UnixDate`` layout (``Mon Jan _2 15:04:05 MST 2006``), as an
    aware UTC datetime. A zone abbreviation counts as UTC, as Go's parser does for an
    abbreviation the local zone does not define; ``+hhmm``/``-hhmm`` offsets are honoured."""
    m = _UNIX_DATE.fullmatch(text.strip())
    if m is None or m.group(1) not in _MONTHS:
        raise ValueError(f"not a Go UnixDate time: {text!r}")
    zone = m.group(7)
    if re.fullmatch(r"[+-]\d{4}", zone):
        minutes = int(zone[1:3]) * 60 + int(zone[3:])
        tz = timezone(timedelta(minutes=-minutes if zone[0] == "-" else minutes))
    elif re.fullmatch(r"[A-Za-z]{1,6}", zone):
        tz = UTC
    else:
        raise ValueError(f"unknown time zone {zone!r} in {text!r}")
    frac = m.group(6) or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    local = datetime(
        int(m.group(8)),
        _MONTHS[m.group(1)],
        int(m.group(2)),
        int(m.group(3)),
        int(m.group(4)),
        int(m.group(5)),
        micro,
        tzinfo=tz,
    )
    return local.astimezone(UTC)


def _atoi(arg: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", arg):
        raise ValueError(f"not an integer: {arg!r}")
    return int(arg)


def _retry_count(arg: str) -> int:
    return max(0, _atoi(arg))  # Go's MaxRetry(n) makes a negative n 0


def _header(arg: str) -> dict[str, str]:
    pair = json.loads(arg)
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
        raise ValueError(f"not a header pair: {arg!r}")
    return {pair[0]: pair[1]}


# option name -> (Options field, parser of the text between the parentheses)
_PARSERS: dict[str, tuple[str, Any]] = {
    "Queue": ("queue", go_unquote),
    "MaxRetry": ("max_retry", _retry_count),
    "Timeout": ("timeout", parse_go_duration),
    "Deadline": ("deadline", parse_go_unix_date),
    "Unique": ("unique", parse_go_duration),
    "ProcessAt": ("process_at", parse_go_unix_date),
    "ProcessIn": ("process_in", parse_go_duration),
    "Retention": ("retention", parse_go_duration),
    "TaskID": ("task_id", go_unquote),
    "Group": ("group", go_unquote),
    "Header": ("headers", _header),
}


def parse_option_strings(strings: Iterable[str]) -> Options:
    """The options the strings describe. Unknown, malformed or invalid ones are skipped;
    later ones win (ProcessAt and ProcessIn replace each other); headers accumulate."""
    values: dict[str, Any] = {}
    for s in strings:
        open_at = s.find("(")
        if open_at < 0 or not s.endswith(")"):
            continue
        parser = _PARSERS.get(s[:open_at])
        if parser is None:
            continue
        name, parse = parser
        try:
            value = parse(s[open_at + 1 : -1])
            Options(**{name: value})  # the same validation as at enqueue time
        except (ValueError, TypeError):
            continue
        if name == "headers":
            value = {**values.get("headers", {}), **value}
        elif name in ("process_at", "process_in"):
            values.pop("process_in" if name == "process_at" else "process_at", None)
        values[name] = value
    return Options(**values)
