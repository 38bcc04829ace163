"""Options: validation, merging (task defaults < enqueue call) and resolution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyasynq._rdb.goopts import parse_option_strings
from pyasynq.options import (
    DEFAULT_MAX_RETRY,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    Options,
    check_name,
)
from pyasynq.task import Task

NOW = 1_700_000_000.25


def test_defaults() -> None:
    r = Options().resolve(NOW)
    assert (DEFAULT_QUEUE, DEFAULT_MAX_RETRY, DEFAULT_TIMEOUT) == ("default", 25, 1800)
    assert r.queue == "default"
    assert r.max_retry == 25
    assert r.timeout == 1800
    assert r.deadline == 0
    assert r.unique_ttl == 0
    assert r.retention == 0
    assert r.group == ""
    assert r.headers == {}
    assert r.process_at == NOW
    assert str(uuid.UUID(r.task_id)) == r.task_id
    assert uuid.UUID(r.task_id).version == 4
    assert Options().resolve(NOW).task_id != r.task_id


@pytest.mark.parametrize("given", [0, 3, 2**31 - 1])
def test_max_retry_is_stored_as_given(given: int) -> None:
    assert Options(max_retry=given).resolve(NOW).max_retry == given


@pytest.mark.parametrize("bad", [-1, -3, -(2**40)])
def test_max_retry_negative_is_refused(bad: int) -> None:
    # Go's MaxRetry(n) makes a negative n 0 without a word; here it is a clear error.
    with pytest.raises(ValueError, match=r"max_retry must be 0 \(no retry"):
        Options(max_retry=bad)
    with pytest.raises(ValueError, match="max_retry must be 0"):
        Task("t", max_retry=bad)


def test_a_negative_max_retry_written_by_go_reads_as_zero() -> None:
    # What Go's parser makes of the string, even though Go never writes one.
    assert parse_option_strings(["MaxRetry(-2)"]).max_retry == 0


@pytest.mark.parametrize("bad", [2**31, 10**20])
def test_max_retry_beyond_int32_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="max_retry"):
        Options(max_retry=bad)


@pytest.mark.parametrize("bad", [True, 1.0, "3", None.__class__])
def test_max_retry_must_be_int(bad: object) -> None:
    with pytest.raises(TypeError, match="max_retry"):
        Options(max_retry=bad)  # type: ignore[arg-type]


def test_default_timeout_only_when_neither_timeout_nor_deadline() -> None:
    assert Options(timeout=60).resolve(NOW).timeout == 60
    r = Options(deadline=NOW + 100).resolve(NOW)
    assert (r.timeout, r.deadline) == (0, int(NOW + 100))
    r = Options(timeout=60, deadline=NOW + 100).resolve(NOW)
    assert (r.timeout, r.deadline) == (60, int(NOW + 100))
    # Timeout(0) means "not given" in Go: the default applies again.
    assert Options(timeout=0).resolve(NOW).timeout == 1800
    assert Options(timeout=timedelta(0)).resolve(NOW).timeout == 1800


def test_durations_truncate_to_whole_seconds() -> None:
    r = Options(timeout=90.9, retention=1.999, unique=1.5).resolve(NOW)
    assert (r.timeout, r.retention, r.unique_ttl) == (90, 1, 1)
    r = Options(timeout=timedelta(minutes=2, milliseconds=700)).resolve(NOW)
    assert r.timeout == 120
    assert Options(retention=timedelta(hours=24)).resolve(NOW).retention == 86400
    assert Options(retention=0.5).resolve(NOW).retention == 0
    assert Options(deadline=1_700_000_011.9).resolve(NOW).deadline == 1_700_000_011


@pytest.mark.parametrize("bad", [0.5, 0.999, -1, timedelta(milliseconds=500)])
def test_sub_second_or_negative_timeout_is_refused(bad: float | timedelta) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Options(timeout=bad)


@pytest.mark.parametrize("bad", [0, 0.999, -5, timedelta(milliseconds=999)])
def test_unique_below_one_second_is_refused(bad: float | timedelta) -> None:
    with pytest.raises(ValueError, match="unique"):
        Options(unique=bad)


def test_unique_of_one_second_is_fine() -> None:
    assert Options(unique=1).resolve(NOW).unique_ttl == 1
    assert Options(unique=timedelta(hours=1)).resolve(NOW).unique_ttl == 3600


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="retention"):
        Options(retention=-1)


@pytest.mark.parametrize("field", ["deadline", "process_at"])
def test_naive_datetime_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Options(**{field: datetime(2030, 1, 1)})


def test_aware_datetimes_of_any_zone() -> None:
    at = datetime(2100, 1, 1, tzinfo=UTC)
    plus2 = datetime(2100, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert Options(deadline=at).resolve(NOW).deadline == 4102444800
    assert Options(deadline=plus2).resolve(NOW).deadline == 4102444800
    assert Options(process_at=at).resolve(NOW).process_at == 4102444800


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"timeout": "60"}, TypeError),
        ({"timeout": True}, TypeError),
        ({"timeout": float("nan")}, ValueError),
        ({"process_in": float("inf")}, ValueError),
        ({"deadline": "tomorrow"}, TypeError),
        ({"process_at": float("nan")}, ValueError),
        ({"headers": {"k": 1}}, TypeError),
        ({"headers": {1: "v"}}, TypeError),
        ({"headers": [("k", "v")]}, TypeError),
        ({"queue": 5}, TypeError),
        ({"task_id": b"id"}, TypeError),
    ],
)
def test_wrong_types_and_values(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Options(**kwargs)  # type: ignore[arg-type]


def test_process_in_and_process_at() -> None:
    assert Options(process_in=10).resolve(NOW).process_at == NOW + 10
    assert Options(process_in=timedelta(seconds=-5)).resolve(NOW).process_at == NOW - 5
    assert Options(process_at=NOW + 3).resolve(NOW).process_at == NOW + 3
    with pytest.raises(ValueError, match="not both"):
        Options(process_in=1, process_at=NOW)


@pytest.mark.parametrize("field", ["queue", "task_id", "group"])
@pytest.mark.parametrize("bad", ["", "   ", "\t\n"])
def test_blank_names_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match="blank"):
        Options(**{field: bad})


@pytest.mark.parametrize("field", ["queue", "task_id", "group"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "tab\there", "del\x7f", "c1\x85"])
def test_control_characters_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        Options(**{field: bad})


@pytest.mark.parametrize("bad", ["a{b", "a}b", "{x}"])
def test_braces_in_queue_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="brace"):
        Options(queue=bad)
    # Braces elsewhere do not move keys out of the queue's slot.
    assert Options(task_id=bad, group=bad).resolve(NOW).task_id == bad


def test_unicode_and_colons_are_fine() -> None:
    r = Options(queue="élevé:q", task_id="tâche-1", group="グループ").resolve(NOW)
    assert (r.queue, r.task_id, r.group) == ("élevé:q", "tâche-1", "グループ")
    assert check_name("メール:送信", "task type") == "メール:送信"


def test_merge_override_wins_field_by_field() -> None:
    base = Options(queue="low", max_retry=3, timeout=60, retention=10, group="g")
    merged = base.merged(Options(queue="high", timeout=5))
    assert merged == Options(queue="high", max_retry=3, timeout=5, retention=10, group="g")
    assert base.merged(Options()) == base
    assert Options().merged(base) == base


def test_merge_headers_key_by_key_override_wins() -> None:
    base = Options(headers={"tenant": "acme", "x": "1"})
    merged = base.merged(Options(headers={"tenant": "globex", "y": "2"}))
    assert merged.headers == {"tenant": "globex", "x": "1", "y": "2"}
    assert base.headers == {"tenant": "acme", "x": "1"}  # not mutated
    assert Options().merged(base).headers == base.headers
    assert base.merged(Options()).headers == base.headers


def test_merge_process_in_and_process_at_replace_each_other() -> None:
    at_task = Options(process_at=NOW + 100)
    merged = at_task.merged(Options(process_in=5))
    assert (merged.process_at, merged.process_in) == (None, 5)
    assert merged.resolve(NOW).process_at == NOW + 5
    in_task = Options(process_in=100)
    merged = in_task.merged(Options(process_at=NOW + 7))
    assert (merged.process_at, merged.process_in) == (NOW + 7, None)
    # Neither given at the call: the task's choice stays.
    assert in_task.merged(Options(queue="q")).process_in == 100


def test_options_are_frozen() -> None:
    o = Options(queue="q")
    with pytest.raises(AttributeError):
        o.queue = "other"  # type: ignore[misc]
