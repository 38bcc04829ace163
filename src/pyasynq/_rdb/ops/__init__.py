"""Sans-I/O operations. Each builder returns the :class:`Call` (a Lua script with its KEYS
and ARGV) or :class:`Command` to run, and each ``*_result`` function turns the reply into a
value or a typed error. Brokers only execute them, so the wire logic exists once for the
async core and its sync twin."""

from .base import LEASE_DURATION, MAX_INT64, STATS_TTL, Arg, Call, Command, Op

__all__ = ["LEASE_DURATION", "MAX_INT64", "STATS_TTL", "Arg", "Call", "Command", "Op"]
