"""How values are shown: payload views, previews, spans and the chart's geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pyasynq.web import present
from pyasynq.web.security import BasicAuth, cross_site_reason, is_loopback


def test_bytes_view_picks_json_then_text_then_hex() -> None:
    v = present.bytes_view(b'{"a":[1,2],"b":"\xc3\xa9"}')
    assert v.best == "json" and v.json == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "é"\n}'
    assert v.text == '{"a":[1,2],"b":"é"}'
    v = present.bytes_view(b"plain <b>text</b>\nline 2")
    assert v.best == "text" and v.json is None
    v = present.bytes_view(b"\x00\x01\xff")
    assert v.best == "hex" and v.text is None
    assert v.hex == "00000000  00 01 ff" + " " * 39 + "  ..."
    assert present.bytes_view(b"\x07bell").best == "hex"  # valid UTF-8, not printable
    assert present.bytes_view(b"").size == 0


def test_big_payloads_are_cut_for_the_page() -> None:
    data = b"x" * (present.SHOW_LIMIT + 10)
    v = present.bytes_view(data)
    assert v.truncated and v.size == len(data)
    assert v.text is not None and len(v.text) == present.SHOW_LIMIT
    assert len(v.hex.splitlines()) == present.SHOW_LIMIT // 16


def test_hex_dump_lines() -> None:
    dump = present.hex_dump(bytes(range(0x41, 0x41 + 20)))
    assert dump.splitlines() == [
        "00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP",
        "00000010  51 52 53 54" + " " * 36 + "  QRST",
    ]


def test_preview() -> None:
    assert present.preview(b"short") == "short"
    assert present.preview(b"a\nb") == "a\\nb"
    assert present.preview(b"\x00\x01") == "hex:0001"
    assert present.preview(b"y" * 100, 10) == "y" * 9 + "…"


def test_spans_and_times() -> None:
    assert [present.fmt_span(s) for s in (0, 0.25, 4.5, 45, 90, 7500, 3 * 86400 + 4 * 3600)] == [
        "0s", "250ms", "4.5s", "45s", "1m30s", "2h5m", "3d4h"
    ]  # fmt: skip
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert present.fmt_rel(now + timedelta(minutes=4), now) == "in 4m"
    assert present.fmt_rel(now - timedelta(seconds=90), now) == "1m30s ago"
    assert present.fmt_time(now) == "2024-05-01 12:00:00 UTC"
    assert present.fmt_bytes(1536) == "1.5 KiB" and present.fmt_bytes(10) == "10 B"
    assert present.error_rate(0, 0) == "-" and present.error_rate(8, 2) == "25.0%"


def test_history_chart_stacks_failed_on_succeeded_oldest_left() -> None:
    days = [(date(2024, 5, 3), 100, 20), (date(2024, 5, 1), 50, 0), (date(2024, 5, 2), 0, 0)]
    c = present.history_chart(days)
    assert [b.day.day for b in c.bars] == [1, 2, 3]
    assert c.y_ticks[-1][1] == "100"  # the scale's top
    first, empty, last = c.bars
    assert first.ok_h == round(c.plot_h * 0.5, 1) and first.fail_h == 0
    assert empty.ok_h == 0 and empty.fail_h == 0
    assert last.ok_h == round(c.plot_h * 0.8, 1) and last.fail_h == round(c.plot_h * 0.2, 1)
    assert last.fail_y + last.fail_h == last.ok_y  # failed sits on top of succeeded
    assert first.x < empty.x < last.x
    assert (c.total_processed, c.total_failed) == (150, 20)
    assert present.sum_by_day([days[:1], days[:1]]) == [(date(2024, 5, 3), 200, 40)]
    assert [t for _, t in present.history_chart([]).y_ticks] == ["0", "5", "10"]


def test_security_helpers() -> None:
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "evil.example", "10.0.0.1", "", None))
    assert cross_site_reason({}, "h") is None  # non-browser clients send neither header
    assert cross_site_reason({"origin": "https://h:8"}, "h:8") is None  # TLS proxy in front
    assert cross_site_reason({"sec-fetch-site": "cross-site"}, "h")
    auth = BasicAuth("u", "p")
    assert auth.check("Basic dTpw") and not auth.check("basic dTpx") and not auth.check(None)
