"""Keeping a :class:`~pyasynq.clock.RedisClock` in step with Redis: the first measurement
at start (a host clock far off is worth a warning) and the refreshes after it. A failure
(``TIME`` refused by an ACL) is logged once and leaves the clock as it was: until a
measurement succeeds it reads the host's clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyasynq.clock import Clock, RedisClock
from pyasynq.errors import BrokerError

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker

SKEW_WARNING = 1.0  # seconds between this host's clock and Redis's worth a warning


async def start(clock: Clock, broker: AsyncBroker, log: Any, who: str) -> None:
    """First measurement of ``clock`` (a no-op for other clocks)."""
    if not isinstance(clock, RedisClock) or not await _update(clock, broker, log):
        return
    if abs(clock.skew) > SKEW_WARNING:
        log.warn(
            "This host's clock is %.1f s %s Redis's: this pyasynq %s corrects for it and "
            "uses Redis's time (leases, scheduled tasks, retries, cron ticks); Go asynq "
            "processes sharing these queues use their host's clock, so keep hosts in sync "
            "(NTP) where they run",
            abs(clock.skew), "behind" if clock.skew > 0 else "ahead of", who,
        )  # fmt: skip


async def refresh(clock: RedisClock, broker: AsyncBroker, log: Any, jump: float) -> None:
    """Measure the offset again; a move of more than ``jump`` seconds (Redis's clock was
    stepped, or this host was suspended) is logged, once per move."""
    before = clock.synced_at
    if not await _update(clock, broker, log) or before is None:
        return
    if abs(clock.moved) > jump:
        log.warn(
            "Redis's clock moved %.1f s against this host's (more than %g s): times written "
            "from now on follow Redis's new time; check the Redis host's clock (NTP)",
            clock.moved, jump,
        )  # fmt: skip


async def _update(clock: RedisClock, broker: AsyncBroker, log: Any) -> bool:
    try:
        samples = await broker.clock_samples()
    except BrokerError as exc:
        clock.checked()  # try again one interval later, not on every call
        if not clock.failing:
            clock.failing = True
            log.warn(
                "could not read Redis's clock (TIME), so times follow this host's clock "
                "until it can (allow +time for this user: docs/security.md): %s", exc,
            )  # fmt: skip
        return False
    clock.failing = False
    clock.update(samples)
    return True
