"""Cron specs as Go asynq (robfig/cron v3) reads them: parsing, errors, next fire times."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pyasynq._scheduler import cron
from pyasynq._scheduler.cron import CronSpecError, EverySchedule, SpecSchedule

NS = 1_000_000_000
NY = ZoneInfo("America/New_York")


def at(iso: str) -> int:
    """Unix ns of an ISO time."""
    return int(datetime.fromisoformat(iso).timestamp()) * NS


def nxt(spec: str, after: str, location: object = UTC) -> str | None:
    s = cron.parse(spec)
    assert isinstance(s, SpecSchedule)
    t = s.next(at(after), location)  # type: ignore[arg-type]
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat()


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        # The scheduler_entries fixture: Go computed next = 06:20:00 for */5.
        ("*/5 * * * *", "2026-11-28T06:16:54.295+00:00", "2026-11-28T06:20:00+00:00"),
        ("* * * * *", "2026-11-28T06:16:54+00:00", "2026-11-28T06:17:00+00:00"),
        ("* * * * *", "2026-11-28T06:17:00+00:00", "2026-11-28T06:18:00+00:00"),  # strictly after
        ("5/15 * * * *", "2026-11-28T06:21:00+00:00", "2026-11-28T06:35:00+00:00"),
        ("0 0 * * *", "2026-12-31T23:59:59+00:00", "2027-01-01T00:00:00+00:00"),
        ("0 12 * JAN-mar sun", "2026-11-28T00:00:00+00:00", "2027-01-03T12:00:00+00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
        ("0 0 ? * ?", "2026-11-28T06:00:00+00:00", "2026-11-29T00:00:00+00:00"),
        ("*/1 */1 * * *", "2026-11-28T06:00:30+00:00", "2026-11-28T06:01:00+00:00"),
        ("59 23 31 12 *", "2026-01-01T00:00:00+00:00", "2026-12-31T23:59:00+00:00"),
        # Day of month OR day of week when both are restricted (Vixie cron)...
        ("0 0 1,15 * 3", "2021-11-07T01:10:00+00:00", "2021-11-10T00:00:00+00:00"),
        ("0 0 13 * 5", "2021-11-07T00:00:00+00:00", "2021-11-12T00:00:00+00:00"),
        # ...a step over * counts as restricted (robfig clears the star bit)...
        ("0 0 */10 * 5", "2021-11-07T00:00:00+00:00", "2021-11-11T00:00:00+00:00"),
        # ...and AND when one of them is *.
        ("0 0 * * 3", "2021-11-07T00:00:00+00:00", "2021-11-10T00:00:00+00:00"),
        ("0 0 1 * *", "2021-11-07T00:00:00+00:00", "2021-12-01T00:00:00+00:00"),
        # Descriptors.
        ("@yearly", "2021-11-07T01:10:00+00:00", "2022-01-01T00:00:00+00:00"),
        ("@annually", "2021-11-07T01:10:00+00:00", "2022-01-01T00:00:00+00:00"),
        ("@monthly", "2021-11-07T01:10:00+00:00", "2021-12-01T00:00:00+00:00"),
        ("@weekly", "2021-11-07T01:10:00+00:00", "2021-11-14T00:00:00+00:00"),
        ("@daily", "2021-11-07T01:10:00+00:00", "2021-11-08T00:00:00+00:00"),
        ("@midnight", "2021-11-07T01:10:00+00:00", "2021-11-08T00:00:00+00:00"),
        ("@hourly", "2021-11-07T01:10:00+00:00", "2021-11-07T02:00:00+00:00"),
        # A zone prefix overrides the scheduler's location.
        ("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-11-28T06:16:54+00:00", "2026-11-29T00:00:00+00:00"),
        ("TZ=America/New_York 0 9 * * *", "2026-11-28T06:16:54+00:00", "2026-11-28T14:00:00+00:00"),
        ("CRON_TZ=UTC @daily", "2021-11-07T01:10:00+00:00", "2021-11-08T00:00:00+00:00"),
        ("TZ=Europe/Paris   @daily", "2021-11-07T01:10:00+00:00", "2021-11-07T23:00:00+00:00"),
    ],
)
def test_next_fire_time(spec: str, after: str, expected: str) -> None:
    assert nxt(spec, after) == expected


def test_next_in_the_scheduler_location() -> None:
    # Saturday 06:16 UTC = 01:16 EST: the next weekday 09:00 in New York is Monday.
    assert nxt("0 9 * * mon-fri", "2026-11-28T06:16:54+00:00", NY) == "2026-11-30T14:00:00+00:00"
    assert nxt("@daily", "2026-11-28T06:16:54+00:00", NY) == "2026-11-29T05:00:00+00:00"
    # The prefix wins over the location.
    assert (
        nxt("CRON_TZ=UTC 0 9 * * *", "2026-11-28T06:16:54+00:00", NY) == "2026-11-28T09:00:00+00:00"
    )


def test_daylight_saving_as_robfig() -> None:
    # 2021-03-14 02:30 does not exist in New York: robfig skips that day.
    assert nxt("30 2 * * *", "2021-03-13T17:00:00+00:00", NY) == "2021-03-15T06:30:00+00:00"
    # 01:30 happens twice on 2021-11-07: robfig fires on both.
    assert nxt("30 1 * * *", "2021-11-07T04:00:00+00:00", NY) == "2021-11-07T05:30:00+00:00"
    assert nxt("30 1 * * *", "2021-11-07T05:40:00+00:00", NY) == "2021-11-07T06:30:00+00:00"
    # Midnight is kept through the change.
    assert nxt("@daily", "2021-03-13T06:00:00+00:00", NY) == "2021-03-14T05:00:00+00:00"
    assert nxt("@daily", "2021-03-14T06:00:00+00:00", NY) == "2021-03-15T04:00:00+00:00"


def test_a_spec_that_never_fires_has_no_next_time() -> None:
    assert nxt("0 0 30 2 *", "2021-11-07T01:10:00+00:00") is None


@pytest.mark.parametrize(
    ("spec", "delay"),
    [
        ("@every 2s", 2),
        ("@every 1m30s", 90),
        ("@every 1h", 3600),
        ("@every 1.5s", 1),  # fractions of a second are dropped
        ("@every 500ms", 1),  # below a second counts as one
        ("@every 0s", 1),
        ("@every -5s", 1),
        ("@every 2500ms", 2),
        ("TZ=Asia/Tokyo @every 5s", 5),
    ],
)
def test_every(spec: str, delay: int) -> None:
    s = cron.parse(spec)
    assert s == EverySchedule(delay)


def test_every_next_is_robfig_constant_delay() -> None:
    s = EverySchedule(2)
    # The fixture: Go started at ...614.295 and first enqueued at ...616.
    assert s.next(1795846614295457034) == 1795846616
    assert s.next(1795846616_001_000_000) == 1795846618
    # With an anchor: the anchor's grid, whenever this scheduler looks.
    s5 = EverySchedule(5)
    assert s5.next(100 * NS, anchor=100) == 105
    assert s5.next(102_700_000_000, anchor=100) == 105
    assert s5.next(105 * NS, anchor=100) == 110
    assert s5.next(117_900_000_000, anchor=100) == 120  # late: the phase is kept
    assert s5.next(98 * NS, anchor=100) == 100


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("0 * * * * *", "expected exactly 5 fields, found 6: [0 * * * * *]"),
        ("60 * * * *", "minute field: end of range (60) above maximum (59): 60"),
        ("* 24 * * *", "hour field: end of range (24) above maximum (23): 24"),
        ("* * 0 * *", "day of month field: beginning of range (0) below minimum (1): 0"),
        ("* * * 13 *", "month field: end of range (13) above maximum (12): 13"),
        ("* * * * 7", "day of week field: end of range (7) above maximum (6): 7"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("1/2/3 * * * *", "too many slashes: 1/2/3"),
        ("x * * * *", "failed to parse int from x"),
        ("* * * foo *", "failed to parse int from foo"),
        ("* * * * L", "failed to parse int from L"),
        ("* * * * 5#2", "failed to parse int from 5#2"),
        (", * * * *", "the minute field ',' names no value"),
        ("@foo", "unrecognized descriptor: @foo"),
        ("@Daily", "unrecognized descriptor: @Daily"),
        ("@every", "unrecognized descriptor: @every"),
        ("@every 1x", 'failed to parse duration @every 1x: time: unknown unit "x"'),
        ("@every 10", 'time: missing unit in duration "10"'),
        ("TZ=Nowhere/Atlantis * * * * *", "provided bad location Nowhere/Atlantis"),
        ("CRON_TZ=../etc/passwd * * * * *", "provided bad location ../etc/passwd"),
        ("TZ=UTC", "a schedule must follow the time zone"),
        ("TZ=UTC 1 2 3", "expected exactly 5 fields, found 3: [1 2 3]"),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: str, reason: str) -> None:
    with pytest.raises(CronSpecError) as err:
        cron.parse(spec)
    assert str(err.value).startswith(f"invalid cron spec {spec!r}: ")
    assert reason in str(err.value)
    assert isinstance(err.value, ValueError)


def test_a_spec_must_be_text() -> None:
    with pytest.raises(TypeError):
        cron.parse(5)  # type: ignore[arg-type]


def test_load_location() -> None:
    assert cron.load_location("") is UTC
    assert cron.load_location("UTC") is UTC
    assert cron.load_location("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert cron.load_location("Local") is not None
    with pytest.raises(CronSpecError):
        cron.load_location("Mars/Olympus")
