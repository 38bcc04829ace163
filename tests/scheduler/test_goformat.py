"""Go's text forms of durations, times and enqueue options (``Option.String()``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import conformance as cf
import pytest

from pyasynq._rdb.goopts import parse_go_unix_date, parse_option_strings
from pyasynq._scheduler.goformat import (
    duration_ns,
    go_duration,
    go_header,
    go_unix_date,
    option_strings,
    parse_go_duration_ns,
)
from pyasynq.options import Options

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_000, "1µs"),
        (1_500, "1.5µs"),
        (1_000_000, "1ms"),
        (500_000_000, "500ms"),
        (1_234_567, "1.234567ms"),
        (NS, "1s"),
        (10 * NS, "10s"),
        (int(1.5 * NS), "1.5s"),
        (60 * NS, "1m0s"),
        (90 * NS, "1m30s"),
        (120 * NS, "2m0s"),
        (1800 * NS, "30m0s"),
        (3600 * NS, "1h0m0s"),
        (86400 * NS, "24h0m0s"),
        (3723 * NS + 500_000_000, "1h2m3.5s"),
        (3600 * NS + 1, "1h0m0.000000001s"),
        (-2 * NS, "-2s"),
        (-1500, "-1.5µs"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text
    assert parse_go_duration_ns(text) == ns  # and Go's parser reads it back


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1h2m3.5s", 3723 * NS + NS // 2),
        ("1m30s", 90 * NS),
        ("500ms", NS // 2),
        ("2us", 2000),
        ("2µs", 2000),
        ("2μs", 2000),
        ("7ns", 7),
        ("0", 0),
        ("+5s", 5 * NS),
        ("-1.5h", -5400 * NS),
        (".5s", NS // 2),
        ("1.s", NS),
        ("1h1h", 7200 * NS),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        (".s", 'time: invalid duration ".s"'),
        (" 1s", 'time: invalid duration " 1s"'),
        ("1s ", 'time: unknown unit "s " in duration "1s "'),
        ("-", 'time: invalid duration "-"'),
    ],
)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_go_duration_ns(text)
    assert str(err.value) == message


def test_duration_ns_is_exact_for_timedeltas() -> None:
    assert duration_ns(timedelta(days=1, seconds=3, microseconds=7)) == (86403 * NS + 7000)
    assert duration_ns(90) == 90 * NS
    assert duration_ns(0.5) == NS // 2
    with pytest.raises(TypeError):
        duration_ns("90")  # type: ignore[arg-type]


def test_go_unix_date() -> None:
    assert go_unix_date(datetime(2100, 1, 1, tzinfo=UTC)) == "Fri Jan  1 00:00:00 UTC 2100"
    assert go_unix_date(1795843005) == "Sat Nov 28 05:16:45 UTC 2026"
    # Another zone is written in UTC (Go reads unknown abbreviations as UTC).
    paris = timezone(timedelta(hours=1))
    assert go_unix_date(datetime(2026, 1, 10, 13, 5, 9, tzinfo=paris)) == (
        "Sat Jan 10 12:05:09 UTC 2026"
    )
    assert parse_go_unix_date(go_unix_date(1795843005.9)).timestamp() == 1795843005
    with pytest.raises(ValueError):
        go_unix_date(datetime(2026, 1, 1))  # naive


def test_go_header_escapes_like_go_json() -> None:
    assert go_header("trace-id", "abc123") == 'Header(["trace-id","abc123"])'
    assert go_header("a<b>", "x&y") == 'Header(["a\\u003cb\\u003e","x\\u0026y"])'
    assert go_header("k", 'q"\\\n\t') == 'Header(["k","q\\"\\\\\\n\\t"])'
    assert go_header("k", "é\u2028") == 'Header(["k","é\\u2028"])'


def test_option_strings_of_every_option() -> None:
    opts = Options(
        queue='cr"on',
        max_retry=0,
        task_id="t-1",
        timeout=90,
        deadline=datetime(2100, 1, 1, tzinfo=UTC),
        unique=timedelta(hours=1),
        process_in=10,
        retention=timedelta(hours=24),
        group="g",
        headers={"trace-id": "abc123", "tenant": "globex"},
    )
    assert option_strings(opts) == [
        'Queue("cr\\"on")',
        "MaxRetry(0)",
        'TaskID("t-1")',
        "Timeout(1m30s)",
        "Deadline(Fri Jan  1 00:00:00 UTC 2100)",
        "Unique(1h0m0s)",
        "ProcessIn(10s)",
        "Retention(24h0m0s)",
        'Group("g")',
        'Header(["trace-id","abc123"])',
        'Header(["tenant","globex"])',
    ]
    # The given order comes first, the rest in field order.
    assert option_strings({"timeout": 90, "queue": "cron", "max_retry": 3}, ["timeout"]) == [
        "Timeout(1m30s)",
        'Queue("cron")',
        "MaxRetry(3)",
    ]
    assert option_strings(Options(process_at=4102444800)) == [
        "ProcessAt(Fri Jan  1 00:00:00 UTC 2100)"
    ]


def _fixture_enqueues() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in cf.fixture_names():
        fixture = cf.load_fixture(name)
        for op in fixture["operations"]:
            if op["op"] == "enqueue" and op.get("option_strings") is not None:
                out.append((name, {"op": op, "now": fixture["now"]["unix"]}))
    return out


ENQUEUES = _fixture_enqueues() if cf.fixtures_dir().is_dir() else []


@pytest.mark.skipif(not ENQUEUES, reason="no conformance fixtures")
def test_option_strings_match_every_fixture() -> None:
    """Every enqueue the Go fixtures record, with its options turned into strings by us,
    gives Go's ``option_strings`` (same order, same text)."""
    checked = 0
    for name, item in ENQUEUES:
        op = item["op"]
        expected: list[str] = op["option_strings"]
        kinds = {s.split("(", 1)[0] for s in expected}
        if {"ProcessAt", "ProcessIn"} <= kinds:
            continue  # the replayer keeps only the later of the two
        _, kw = cf.enqueue_call(op, item["now"])
        order = [_FIELD_OF[s.split("(", 1)[0]] for s in expected]
        got = option_strings(kw, list(dict.fromkeys(order)))
        # The fixture keeps header options in a JSON object: their order is lost.
        assert _split(got) == _split(expected), name
        checked += 1
    assert checked >= 5


def _split(strings: list[str]) -> tuple[list[str], set[str]]:
    return [s for s in strings if not s.startswith("Header(")], {
        s for s in strings if s.startswith("Header(")
    }


_FIELD_OF = {
    "Queue": "queue",
    "MaxRetry": "max_retry",
    "TaskID": "task_id",
    "Timeout": "timeout",
    "Deadline": "deadline",
    "Unique": "unique",
    "ProcessAt": "process_at",
    "ProcessIn": "process_in",
    "Retention": "retention",
    "Group": "group",
    "Header": "headers",
}


def test_option_strings_read_back_by_the_inspector_parser() -> None:
    opts = Options(
        queue="q é",
        max_retry=7,
        timeout=timedelta(minutes=2),
        deadline=4102444800,
        unique=3600,
        retention=60,
        group="grp",
        task_id="id-1",
        headers={"k": "v<1>"},
    )
    back = parse_option_strings(option_strings(opts))
    assert back.queue == "q é"
    assert back.max_retry == 7
    assert back.timeout == timedelta(minutes=2)
    assert back.deadline == datetime(2100, 1, 1, tzinfo=UTC)
    assert back.unique == timedelta(hours=1)
    assert back.retention == timedelta(minutes=1)
    assert (back.group, back.task_id, back.headers) == ("grp", "id-1", {"k": "v<1>"})
