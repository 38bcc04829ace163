"""Values as people read them: times, spans, sizes, payloads (text, JSON, hex) and the
processed/failed chart. Pure functions; the templates escape everything they return."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

SHOW_LIMIT = 64 * 1024  # bytes of a payload shown in the page; the rest is downloadable
HEX_WIDTH = 16


def fmt_time(dt: datetime | None) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_span(seconds: float) -> str:
    """A span rounded for people: 250ms, 45s, 1m30s, 2h5m, 3d4h."""
    s = abs(seconds)
    if s < 1:
        return f"{round(s * 1000)}ms" if s else "0s"
    if s < 60:
        return f"{s:.1f}s".replace(".0s", "s") if s < 10 else f"{s:.0f}s"
    total = round(s)
    if total < 3600:
        m, sec = divmod(total, 60)
        return f"{m}m{sec}s" if sec else f"{m}m"
    if total < 86400:
        h, rest = divmod(total, 3600)
        return f"{h}h{rest // 60}m" if rest // 60 else f"{h}h"
    d, rest = divmod(total, 86400)
    return f"{d}d{rest // 3600}h" if rest // 3600 else f"{d}d"


def fmt_delta(value: timedelta | None) -> str:
    return "-" if value is None else fmt_span(value.total_seconds())


def fmt_rel(dt: datetime | None, now: datetime) -> str:
    """``in 4m`` or ``3m ago``."""
    if dt is None:
        return ""
    seconds = (dt - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {fmt_span(seconds)}" if seconds > 0 else f"{fmt_span(seconds)} ago"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def error_rate(processed: int, failed: int) -> str:
    return "-" if not processed else f"{100 * failed / processed:.1f}%"


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BytesView:
    """One payload (or result) in the three ways the task page can show it."""

    size: int
    text: str | None  # None unless valid UTF-8
    json: str | None  # pretty-printed, None unless the whole value is JSON
    hex: str  # xxd-style dump of the first SHOW_LIMIT bytes
    truncated: bool  # only the first SHOW_LIMIT bytes are shown

    @property
    def best(self) -> str:
        if self.json is not None:
            return "json"
        if self.text is not None and _printable(self.text):
            return "text"
        return "hex"


def _printable(text: str) -> bool:
    return all(c.isprintable() or c in "\n\t\r" for c in text)


def bytes_view(data: bytes) -> BytesView:
    shown = data[:SHOW_LIMIT]
    text: str | None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    pretty = None
    if text is not None and text.strip():
        try:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
        except (ValueError, RecursionError):
            pretty = None
    if text is not None and len(data) > SHOW_LIMIT:
        text = shown.decode("utf-8", errors="replace")
    if pretty is not None and len(pretty) > SHOW_LIMIT:
        pretty = pretty[:SHOW_LIMIT]
    return BytesView(
        size=len(data),
        text=text,
        json=pretty,
        hex=hex_dump(shown),
        truncated=len(data) > SHOW_LIMIT,
    )


def hex_dump(data: bytes) -> str:
    """Offset, 16 bytes in hex, and their printable ASCII, one line per 16 bytes."""
    lines = []
    for off in range(0, len(data), HEX_WIDTH):
        chunk = data[off : off + HEX_WIDTH]
        hexpart = " ".join(f"{b:02x}" for b in chunk).ljust(HEX_WIDTH * 3 - 1)
        ascii_part = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:08x}  {hexpart}  {ascii_part}")
    return "\n".join(lines)


def preview(data: bytes, limit: int = 60) -> str:
    """A payload for a table cell: its text when printable UTF-8, else ``hex:...``."""
    head = data[: limit * 4]
    try:
        text = head.decode("utf-8")
        if not _printable(text):
            raise ValueError
        text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    except ValueError:
        text = "hex:" + data[:limit].hex()
    if len(text) > limit or len(data) > len(head):
        return text[: limit - 1] + "…"
    return text


# --- the processed/failed chart -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    fail_y: float
    fail_h: float
    day: date
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int  # plot area
    top: int
    plot_w: int
    plot_h: int
    bars: list[Bar]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_labels: list[tuple[float, str]]  # (x center, label)
    total_processed: int
    total_failed: int


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 10,
    so the half-way tick is a whole number)."""
    if value <= 10:
        return 10
    exp = int(10 ** math.floor(math.log10(value)))
    for m in (1, 2, 5, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp  # pragma: no cover


def history_chart(days: Iterable[tuple[date, int, int]], *, width: int = 1200) -> Chart:
    """Stacked bars, oldest day left: succeeded (processed - failed) below failed.
    ``days`` holds (date, processed, failed) in any order."""
    rows = sorted(days)
    height, left, top, right, bottom = 220, 48, 12, 8, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((max(p, f) for _, p, f in rows), default=0))
    slot = plot_w / max(len(rows), 1)
    bar_w = min(max(2.0, slot * 0.7), 56.0)
    bars = []
    for i, (day, processed, failed) in enumerate(rows):
        ok = max(processed - failed, 0)
        ok_h = plot_h * ok / peak
        fail_h = plot_h * failed / peak
        x = left + i * slot + (slot - bar_w) / 2
        base = top + plot_h
        bars.append(
            Bar(
                x=round(x, 1),
                width=round(bar_w, 1),
                ok_y=round(base - ok_h, 1),
                ok_h=round(ok_h, 1),
                fail_y=round(base - ok_h - fail_h, 1),
                fail_h=round(fail_h, 1),
                day=day,
                processed=processed,
                failed=failed,
            )
        )
    ticks = [(round(top + plot_h - plot_h * f, 1), _count(round(peak * f))) for f in (0, 0.5, 1)]
    every = max(1, math.ceil(len(rows) / 10))  # at most ~10 date labels
    labels = [
        (round(left + i * slot + slot / 2, 1), day.strftime("%b %d"))
        for i, (day, _, _) in enumerate(rows)
        if (len(rows) - 1 - i) % every == 0
    ]
    return Chart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        bars=bars,
        y_ticks=ticks,
        x_labels=labels,
        total_processed=sum(p for _, p, _ in rows),
        total_failed=sum(f for _, _, f in rows),
    )


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1000:
        return f"{n / 1000:g}k"
    return str(n)


def sum_by_day(histories: Sequence[Iterable[tuple[date, int, int]]]) -> list[tuple[date, int, int]]:
    """Add several queues' (date, processed, failed) rows day by day."""
    out: dict[date, list[int]] = {}
    for rows in histories:
        for day, processed, failed in rows:
            acc = out.setdefault(day, [0, 0])
            acc[0] += processed
            acc[1] += failed
    return [(d, p, f) for d, (p, f) in sorted(out.items())]
