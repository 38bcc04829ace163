"""What every operation builds: a script call or a plain command, run by a broker."""

from __future__ import annotations

from dataclasses import dataclass

Arg = str | bytes | int | float

MAX_INT64 = 9223372036854775807  # counters wrap to 1 here, as in Go asynq
STATS_TTL = 90 * 24 * 3600  # daily counters expire 90 days after their first increment
LEASE_DURATION = 30  # seconds, asynq's rdb.LeaseDuration


@dataclass(frozen=True, slots=True)
class Call:
    """One Lua script invocation: the script's name in ``lua/``, its KEYS and its ARGV."""

    script: str
    keys: list[str]
    args: list[Arg]


@dataclass(frozen=True, slots=True)
class Command:
    """One plain Redis command, for single-key writes and reads outside scripts."""

    args: tuple[Arg, ...]


Op = Call | Command
