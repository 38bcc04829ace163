"""Redis' limit on one value: ``proto-max-bulk-len``. Redis reads a longer argument as a
protocol error and drops the connection mid-send, which looks like a network failure
(and was retried as one); the client checks the size first and says what the limit is."""

from __future__ import annotations

from typing import Any

from pyasynq.errors import BrokerError

from .base import Command

DEFAULT_MAX_BULK = 512 * 1024 * 1024
"""Redis' default proto-max-bulk-len, assumed when CONFIG GET is not allowed."""

SMALLEST_MAX_BULK = 1024 * 1024
"""Redis refuses a proto-max-bulk-len below 1 MB: anything smaller always fits."""


def max_bulk() -> Command:
    """Ask Redis for its proto-max-bulk-len. See :func:`max_bulk_result`."""
    return Command(("CONFIG", "GET", "proto-max-bulk-len"))


def max_bulk_result(reply: object) -> int:
    """The limit from a CONFIG GET reply (a dict from redis-py, a flat list from a raw
    client), or :data:`DEFAULT_MAX_BULK` when CONFIG was refused or said nothing."""
    if isinstance(reply, BrokerError):
        return DEFAULT_MAX_BULK
    pairs: dict[Any, Any] = {}
    if isinstance(reply, dict):
        pairs = reply
    elif isinstance(reply, list | tuple):
        pairs = dict(zip(reply[::2], reply[1::2], strict=False))
    for key, value in pairs.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name == "proto-max-bulk-len":
            try:
                return max(int(value), SMALLEST_MAX_BULK)
            except (TypeError, ValueError):
                break
    return DEFAULT_MAX_BULK


def too_big(what: str, size: int, limit: int, where: str) -> ValueError:
    """The error for a value of ``size`` bytes above ``limit`` at Redis ``where``."""
    return ValueError(
        f"{what} is {_mb(size)} encoded, above the {_mb(limit)} Redis at {where} accepts in "
        "one value (proto-max-bulk-len): keep large data elsewhere (a file or object "
        "store) and put a reference to it in the payload"
    )


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n % (1024 * 1024) else f"{n // (1024 * 1024)} MB"
