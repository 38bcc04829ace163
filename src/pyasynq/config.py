"""Server configuration: a frozen, keyword-only dataclass validated at construction.

Defaults are asynq's (wire spec sections 4 and 8). The timing fields that asynq hard-codes
(heartbeat, lease, recoverer, syncer) are configuration here so tests and tight deployments
can shorten them.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import reduce
from typing import Any

from ._eventloop import EventLoopName
from ._eventloop import check as _check_loop
from .connection import ClusterOptions, SentinelOptions, parse_url
from .limits import Limit
from .log import LogLevel
from .options import check_name
from .task import Task

__all__ = ["ServerConfig", "default_retry_delay"]

RetryDelayFunc = Callable[[int, BaseException, Task], "float | timedelta"]
ErrorHandler = Callable[[Task, BaseException], "Awaitable[None] | None"]
GroupAggregator = Callable[[str, list[Task]], "Task | Awaitable[Task]"]
HealthCheckFunc = Callable[["BaseException | None"], "Awaitable[None] | None"]
# (TaskMessage, handler seconds, error or None); see pyasynq._server.metrics_hook.
TaskDoneHook = Callable[[Any, float, "BaseException | None"], None]
# (TaskMessage, seconds it waited in pending); see pyasynq._server.metrics_hook.
TaskStartHook = Callable[[Any, float], None]


def default_retry_delay(retried: int, error: BaseException, task: Task) -> float:
    """asynq's default backoff: n⁴ + 15 + rand[0, 29]·(n + 1) seconds, n = retries so far."""
    n = retried
    return float(n**4 + 15 + random.randint(0, 29) * (n + 1))


def _default_is_failure(error: BaseException) -> bool:
    return True


def _secs(value: float | timedelta, what: str, *, minimum: float = 0.0) -> float:
    s = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
        raise TypeError(f"{what} must be seconds (a number) or a timedelta, got {value!r}")
    if s < minimum or (minimum == 0 and s <= 0):
        need = f"at least {minimum}" if minimum else "positive"
        raise ValueError(f"{what} must be {need} seconds, got {s}")
    return float(s)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything a Server can be told. Durations are seconds or timedeltas.

    ``max_crash_recoveries`` (pyasynq only; default None, off): when set to N >= 1, a task
    that pyasynq's recoverer has found N times with an expired lease (its worker died or
    stalled while running it) is archived, even with retries left, so a task that kills its
    worker cannot do so ``max_retry`` times. Off, the recoverer does what asynq's does:
    retry (a failure: ``retried`` + 1) until ``max_retry`` is spent, then archive, so a
    fleet of Go and pyasynq servers treats every task alike. When set, it counts only
    pyasynq's recoveries (hash field ``crashes``; Go's recoverer neither reads nor writes
    it) and applies to every task of the served queues, Go-dequeued ones included; see
    docs/redis-schema.md.
    """

    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    queues: Mapping[str, int] = field(default_factory=lambda: {"default": 1})
    strict_priority: bool = False
    retry_delay_func: RetryDelayFunc = default_retry_delay
    is_failure: Callable[[BaseException], bool] = _default_is_failure
    error_handler: ErrorHandler | None = None
    logger: Any = None  # stdlib Logger or any object with asynq's five levels
    log_level: LogLevel | str = LogLevel.INFO
    shutdown_timeout: float | timedelta = 8.0
    health_check_func: HealthCheckFunc | None = None
    health_check_interval: float | timedelta = 15.0
    task_check_interval: float | timedelta = 1.0
    delayed_task_check_interval: float | timedelta = 5.0
    group_grace_period: float | timedelta = 60.0
    group_max_delay: float | timedelta = 0.0
    group_max_size: int = 0
    group_aggregator: GroupAggregator | None = None
    janitor_interval: float | timedelta = 8.0
    janitor_batch_size: int = 100
    # asynq's internal constants, configurable here.
    heartbeat_interval: float | timedelta = 5.0
    lease_duration: float | timedelta = 30.0
    recoverer_interval: float | timedelta = 60.0
    syncer_interval: float | timedelta = 5.0
    subscriber_retry_interval: float | timedelta = 5.0
    max_crash_recoveries: int | None = None  # off: asynq's rule (see the docstring)
    # pyasynq only: how often the offset to Redis's clock (TIME) is measured again; leases,
    # schedules and retries use Redis's time. None: the host's clock, as Go asynq does.
    clock_sync_interval: float | timedelta | None = 10.0
    # Fleet-wide limits per task type (exact type -> Limit), enforced in Redis per queue
    # across every pyasynq worker; they win over a limit given to mux.handle. docs/limits.md.
    limits: Mapping[str, Limit] = field(default_factory=dict)
    # Metrics: on_task_done is called once per handler run with its outcome,
    # on_task_start when a dequeued task starts, with its queue wait; with metrics_port
    # the worker serves pyasynq.metrics.WorkerMetrics on /metrics.
    on_task_done: TaskDoneHook | None = None
    on_task_start: TaskStartHook | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The loop Server.run()/start() create (serve() uses the caller's): "auto" takes
    # uvloop when it is installed (pip install 'pyasynq[uvloop]'), else asyncio's.
    event_loop: EventLoopName = "auto"
    # Where current_task().redis (the client lent to async def handlers) connects: None,
    # the worker's own Redis over connections of its own; else a URL, SentinelOptions or
    # ClusterOptions (a Redis of the handlers' own). docs/handlers.md.
    handler_redis: str | SentinelOptions | ClusterOptions | None = None

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise TypeError(f"concurrency must be an int, got {self.concurrency!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if not isinstance(self.queues, Mapping) or not self.queues:
            raise ValueError("queues must be a non-empty mapping of queue name to priority")
        for name, prio in self.queues.items():
            check_name(name, "queue", queue=True)
            if isinstance(prio, bool) or not isinstance(prio, int):
                raise TypeError(f"priority of queue {name!r} must be an int, got {prio!r}")
        if not any(p > 0 for p in self.queues.values()):
            raise ValueError("at least one queue needs a positive priority")
        for fname in ("retry_delay_func", "is_failure"):
            if not callable(getattr(self, fname)):
                raise TypeError(f"{fname} must be callable")
        for fname in (
            "error_handler", "health_check_func", "group_aggregator", "on_task_done",
            "on_task_start",
        ):  # fmt: skip
            value = getattr(self, fname)
            if value is not None and not callable(value):
                raise TypeError(f"{fname} must be callable or None")
        LogLevel.parse(self.log_level)
        _secs(self.shutdown_timeout, "shutdown_timeout")
        _secs(self.health_check_interval, "health_check_interval")
        _secs(self.task_check_interval, "task_check_interval")
        _secs(self.delayed_task_check_interval, "delayed_task_check_interval")
        _secs(self.group_grace_period, "group_grace_period", minimum=1.0)
        if _seconds(self.group_max_delay) < 0:
            raise ValueError("group_max_delay must be 0 (no limit) or positive")
        _int(self.group_max_size, "group_max_size")
        if self.group_max_size < 0:
            raise ValueError("group_max_size must be 0 (no limit) or positive")
        _secs(self.janitor_interval, "janitor_interval")
        _int(self.janitor_batch_size, "janitor_batch_size")
        if self.janitor_batch_size < 1:
            raise ValueError("janitor_batch_size must be at least 1")
        hb = _secs(self.heartbeat_interval, "heartbeat_interval")
        lease = _secs(self.lease_duration, "lease_duration")
        if lease < 2 * hb:
            raise ValueError(
                f"lease_duration ({lease}s) must be at least twice heartbeat_interval ({hb}s), "
                "or leases expire between extensions"
            )
        _secs(self.recoverer_interval, "recoverer_interval")
        _secs(self.syncer_interval, "syncer_interval")
        _secs(self.subscriber_retry_interval, "subscriber_retry_interval")
        if self.clock_sync_interval is not None:
            _secs(self.clock_sync_interval, "clock_sync_interval")
        if self.max_crash_recoveries is not None:
            _int(self.max_crash_recoveries, "max_crash_recoveries")
            if self.max_crash_recoveries < 1:
                raise ValueError(
                    "max_crash_recoveries must be at least 1, or None to turn the limit off"
                )
        _check_limits(self.limits)
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        _check_loop(self.event_loop)
        _check_handler_redis(self.handler_redis)

    def seconds(self, name: str) -> float:
        """A duration field as float seconds."""
        return _seconds(getattr(self, name))

    def normalized_queues(self) -> dict[str, int]:
        """Queues with priority > 0, priorities divided by their GCD (asynq's rule)."""
        qs = {q: p for q, p in self.queues.items() if p > 0}
        g = reduce(math.gcd, qs.values())
        return {q: p // g for q, p in qs.items()}

    def positive_queues(self) -> dict[str, int]:
        """Queues as reported in ServerInfo: priority > 0, not GCD-normalised."""
        return {q: p for q, p in self.queues.items() if p > 0}


def _check_handler_redis(value: object) -> None:
    if value is None or isinstance(value, SentinelOptions | ClusterOptions):
        return
    if not isinstance(value, str):
        raise TypeError(
            "handler_redis must be a Redis URL, SentinelOptions, ClusterOptions or None "
            f"(the worker's own Redis), got {type(value).__name__}"
        )
    parse_url(value)  # a bad URL fails here, not in the first handler that asks


def _check_limits(limits: object) -> None:
    if not isinstance(limits, Mapping):
        raise TypeError("limits must be a mapping of task type to pyasynq.Limit")
    for ttype, lim in limits.items():
        if not isinstance(ttype, str) or not ttype.strip():
            raise ValueError(f"limits keys must be non-blank task types, got {ttype!r}")
        if not isinstance(lim, Limit):
            raise TypeError(f"limits[{ttype!r}] must be a pyasynq.Limit, got {lim!r}")


def _int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
